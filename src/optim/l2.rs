//! L2 regularization, `cost + λ·Σ W²`, as a term on the tape, and the rule for which
//! parameters it and weight decay apply to, by [`Role`].

use crate::autograd::tape::{Tape, Var};
use crate::nn::{Module, Param, Role};

/// Whether L2 regularization (and weight decay under `decay_biases(false)`) applies to
/// `param`, decided by its [`Role`] alone (never its name): weights and [`Role::Custom`]
/// parameters decay; biases and normalization scales and shifts do not (see [`Role`] for
/// why).
pub(crate) fn decays(param: &Param) -> bool {
    match param.role() {
        Role::Weight | Role::Custom(_) => true,
        Role::Bias | Role::NormScale | Role::NormShift => false,
    }
}

/// The L2 term `λ·Σ W²` over the model's parameters that decay by default (weights and
/// [`Role::Custom`] parameters, not biases or normalization parameters; see [`Role`]),
/// recorded on `tape` so that adding it to the loss regularizes through backpropagation.
/// Its gradient is `2λ·W`, so it equals the optimizers' decoupled `l2(λ)` option (weight
/// decay `2λ`) on the same step.
///
/// # Examples
/// ```
/// use tapegrad::{l2_penalty, tensor, Linear, Tape};
/// let layer = Linear::from_parts(tensor::from_vec(vec![1.0, -2.0], &[1, 2])?, None)?;
/// let tape = Tape::new();
/// assert_eq!(l2_penalty(&tape, &layer, 0.5).item(), 2.5); // 0.5 · (1 + 4)
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn l2_penalty<'t, M: Module + ?Sized>(tape: &'t Tape, model: &M, lambda: f32) -> Var<'t> {
    let mut total: Option<Var<'t>> = None;
    model.visit_params(&mut |_, param| {
        if decays(param) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tape, tensor};

    /// One parameter of each role, all holding 2, each named as a weight so that no rule
    /// can go by the name.
    struct EveryRole {
        params: Vec<Param>,
    }

    impl Module for EveryRole {
        fn forward<'t>(&self, x: Var<'t>, _mode: crate::Mode) -> Var<'t> {
            x
        }
        crate::walk!(params as "");
    }

    const ROLES: [Role; 5] = [
        Role::Weight,
        Role::Bias,
        Role::NormScale,
        Role::NormShift,
        Role::Custom("temperature"),
    ];

    fn every_role() -> EveryRole {
        let params = ROLES
            .iter()
            .map(|&role| Param::with_role("weight", role, tensor::full(&[1], 2.0)))
            .collect();
        EveryRole { params }
    }

    #[test]
    fn the_role_alone_decides_decay() {
        let decayed: Vec<bool> = every_role().params.iter().map(decays).collect();
        assert_eq!(decayed, [true, false, false, false, true]);
        // a plain `Param::new` is a weight whatever its name, and a bias is never one
        assert!(decays(&Param::new("bias", tensor::ones(&[1]))));
        assert!(!decays(&Param::bias(tensor::ones(&[1]))));
    }

    #[test]
    fn the_penalty_follows_the_roles() {
        let model = every_role();
        let tape = Tape::new();
        // λ·(2² + 2²): the weight and the custom parameter only
        assert_eq!(l2_penalty(&tape, &model, 0.5).item(), 4.0);
    }
}
