//! L2 regularization, `cost + λ·Σ W²`, as a term on the tape, and the rule for which
//! parameters it applies to (weights, not biases).

use crate::autograd::tape::{Tape, Var};
use crate::nn::Module;

/// Whether L2 regularization and weight decay apply to the parameter named `name` by
/// default: every parameter except biases (a name whose last dotted segment is `bias`), as
/// Caffe's `decay_mult: 0` on biases and common practice have it. A bias shifts a unit's
/// input rather than scaling it, so shrinking it does not make the function smoother.
///
/// # Examples
/// ```
/// use tapegrad::optim::decays_by_default;
/// assert!(decays_by_default("0.weight"));
/// assert!(!decays_by_default("2.bias"));
/// ```
pub fn decays_by_default(name: &str) -> bool {
    name.rsplit('.').next() != Some("bias")
}

/// The L2 term `λ·Σ W²` over the model's weights (biases excluded, see
/// [`decays_by_default`]), recorded on `tape` so that adding it to the loss regularizes
/// through backpropagation. Its gradient is `2λ·W`, so it equals the optimizers'
/// decoupled `l2(λ)` option (weight decay `2λ`) on the same step.
///
/// # Examples
/// ```
/// use tapegrad::{optim::l2_penalty, tensor, Linear, Tape};
/// let layer = Linear::from_parts(tensor::from_vec(vec![1.0, -2.0], &[1, 2])?, None)?;
/// let tape = Tape::new();
/// assert_eq!(l2_penalty(&tape, &layer, 0.5).item(), 2.5); // 0.5 · (1 + 4)
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn l2_penalty<'t, M: Module + ?Sized>(tape: &'t Tape, model: &M, lambda: f32) -> Var<'t> {
    let mut total: Option<Var<'t>> = None;
    model.visit_params(&mut |name, param| {
        if decays_by_default(name) {
            let term = tape.param(param).square().sum();
            total = Some(match total {
                Some(sum) => sum + term,
                None => term,
            });
        }
    });
    match total {
        Some(sum) => sum * lambda,
        None => tape.constant(crate::tensor::zeros(&[])),
    }
}
