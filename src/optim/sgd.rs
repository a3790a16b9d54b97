//! Gradient descent and stochastic gradient descent, with momentum (plain or Nesterov) and
//! dampening: one update rule, PyTorch's `torch.optim.SGD`.

use super::{
    Optim, ParamStep, SAFE_CHANGE, SAFE_VALUE, UpdateRule, buffer_slice, invalid, on_row_major,
};
use crate::autograd::grad::{ParamGrad, max_abs};
use crate::error::Result;
use crate::kernels::simd::with_simd;
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayViewD, ArrayViewMutD};

/// (Stochastic) gradient descent, `W := W − lr · ∂Cost/∂W`, with optional momentum,
/// Nesterov momentum, dampening, weight decay and a learning-rate schedule: [`SgdRule`]
/// under the shared driver [`Optim`] (which gives it weight decay, groups, clipping and the
/// schedule).
///
/// The update of each parameter `θ` with gradient `g`, as in PyTorch's `torch.optim.SGD`
/// (`μ` momentum, `τ` dampening, `wd` weight decay, `b` the momentum buffer, `lr` from the
/// schedule):
///
/// ```text
/// g ← g + wd·θ                       (every parameter; weights only under l2 or decay_biases(false))
/// b ← g on the first step, else μ·b + (1 − τ)·g
/// g ← g + μ·b  (Nesterov)   or   g ← b  (classical momentum)      when μ > 0
/// θ ← θ − lr·g
/// ```
///
/// **GD or SGD?** The rule is the same; what differs is the data behind the gradient.
/// Gradient descent ([`Sgd::gd`]) steps on the gradient of the cost over *all* training
/// samples (one step per epoch, from [`Dataset::full_batch`](crate::Dataset::full_batch));
/// stochastic gradient descent steps on the gradient over a mini-batch (many cheap, noisy
/// steps per epoch, from [`Dataset::batches`](crate::Dataset::batches)).
///
/// **L2.** The regularized cost `cost + λ·Σ W²` has gradient `g + 2λ·W`, so
/// [`Optim::l2`]`(λ)` sets weight decay `wd = 2λ`; [`Optim::weight_decay`] takes PyTorch's
/// `wd` directly. Either equals adding [`l2_penalty`](super::l2_penalty) to the loss.
///
/// Setters can come in any order: `Sgd::new(lr)?.nesterov().momentum(0.9)?` is
/// Nesterov momentum. Settings that contradict each other (Nesterov without momentum, or
/// with dampening, as PyTorch refuses) are refused by the first step.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Optimizer, Sgd, Tape, Module, Mode};
/// let mut model = Linear::from_parts(tensor::from_vec(vec![1.0], &[1, 1])?, None)?;
/// let mut sgd = Sgd::new(0.1)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![2.0], &[1, 1])?);
/// let loss = model.forward(x, Mode::Train).sum(); // L = w·2, ∂L/∂w = 2
/// sgd.step(&mut model, &loss.backward())?;
/// assert!((model.weight().value()[[0, 0]] - 0.8).abs() < 1e-7); // 1 − 0.1·2
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type Sgd = Optim<SgdRule>;

/// The update rule of [`Sgd`]: momentum `μ`, dampening `τ`, Nesterov or not. Its buffer per
/// parameter (when `μ > 0`) is the momentum buffer `[b]`.
///
/// # Examples
/// ```
/// use tapegrad::{Optim, Optimizer, Sgd, SgdRule, UpdateRule};
/// let plain = Sgd::new(0.1)?;
/// assert_eq!(plain.rule(), &SgdRule::default()); // no momentum, no buffer
/// assert_eq!((plain.rule().kind(), plain.rule().buffers()), ("sgd", 0));
/// assert_eq!(Sgd::new(0.1)?.momentum(0.9)?.rule().buffers(), 1); // [b]
/// assert_eq!(Optim::with_rule(SgdRule::default(), 0.1)?.lr(), plain.lr());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SgdRule {
    momentum: Elem,
    dampening: Elem,
    nesterov: bool,
}

impl Sgd {
    /// Plain stochastic gradient descent with learning rate `lr`: no momentum, no decay.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless `lr` is finite and
    /// `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Optimizer, Sgd};
    /// assert_eq!(Sgd::new(0.1)?.lr(), 0.1);
    /// assert!(Sgd::new(0.0).is_err());
    /// assert!(Sgd::new(f32::INFINITY).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(lr: Elem) -> Result<Self> {
        Optim::with_rule(SgdRule::default(), lr)
    }

    /// Full-batch gradient descent, `W := W − lr · ∂Cost/∂W`: the same rule as
    /// [`Sgd::new`], meant to be stepped on gradients of the cost over the whole training
    /// set (see the type's docs).
    ///
    /// # Errors
    /// As [`Sgd::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut gd = Sgd::gd(0.5)?;
    /// let tape = Tape::new();
    /// let all_samples = tape.constant(tensor::from_vec(vec![1.0, 3.0], &[2, 1])?);
    /// // the cost over the whole training set: mean(w·x), ∂/∂w = mean(x) = 2
    /// let grads = model.forward(all_samples, Mode::Train).mean().backward();
    /// gd.step(&mut model, &grads)?;
    /// assert_eq!(model.weight().value()[[0, 0]], 0.0); // 1 − 0.5·2
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn gd(lr: Elem) -> Result<Self> {
        Self::new(lr)
    }

    /// Sets the momentum `μ ∈ [0, 1)` (0 turns it off).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `μ` is outside
    /// `[0, 1)`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut sgd = Sgd::new(0.1)?.momentum(0.9)?;
    /// for _ in 0..2 {
    ///     let tape = Tape::new();
    ///     let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    ///     sgd.step(&mut model, &grads)?;
    /// }
    /// // b = 2, then 0.9·2 + 2 = 3.8: θ = 1 − 0.1·2 − 0.1·3.8
    /// assert!((model.weight().value()[[0, 0]] - 0.42).abs() < 1e-6);
    /// assert!(Sgd::new(0.1)?.momentum(1.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn momentum(mut self, momentum: Elem) -> Result<Self> {
        if !(0.0..1.0).contains(&momentum) {
            return invalid("sgd", format!("momentum must be in [0, 1), got {momentum}"));
        }
        self.rule.momentum = momentum;
        Ok(self)
    }

    /// Sets the dampening `τ ∈ [0, 1]` of the momentum buffer, `b ← μ·b + (1 − τ)·g` (not on
    /// the first step, as PyTorch).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `τ` is outside
    /// `[0, 1]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut sgd = Sgd::new(0.1)?.momentum(0.9)?.dampening(0.5)?;
    /// for _ in 0..2 {
    ///     let tape = Tape::new();
    ///     let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    ///     sgd.step(&mut model, &grads)?;
    /// }
    /// // b = 2 (no dampening on the first step), then 0.9·2 + 0.5·2 = 2.8
    /// assert!((model.weight().value()[[0, 0]] - 0.52).abs() < 1e-6);
    /// assert!(Sgd::new(0.1)?.dampening(1.5).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn dampening(mut self, dampening: Elem) -> Result<Self> {
        if !(0.0..=1.0).contains(&dampening) {
            return invalid(
                "sgd",
                format!("dampening must be in [0, 1], got {dampening}"),
            );
        }
        self.rule.dampening = dampening;
        Ok(self)
    }

    /// Uses Nesterov momentum (`g ← g + μ·b` instead of `g ← b`). It needs momentum > 0 and
    /// no dampening (PyTorch's rule), which the first step checks, so the setters may come
    /// in any order.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let tape = Tape::new();
    /// let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// // Nesterov without momentum is refused by the step, and nothing changes
    /// assert!(Sgd::new(0.1)?.nesterov().step(&mut model, &grads).is_err());
    /// assert_eq!(model.weight().value()[[0, 0]], 1.0);
    /// // b = g = 2, g ← g + 0.9·b = 3.8
    /// Sgd::new(0.1)?.nesterov().momentum(0.9)?.step(&mut model, &grads)?;
    /// assert!((model.weight().value()[[0, 0]] - 0.62).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn nesterov(mut self) -> Self {
        self.rule.nesterov = true;
        self
    }
}

/// `θ ← θ − rate·θ`, the weight-decay term of a step, on its own: folded into a factor
/// `1 − rate` it would be rounded to f32's spacing near 1 (6e-8), wrong by 19% at
/// `rate = 1e-7`.
pub(super) fn decay(theta: ArrayViewMutD<'_, Elem>, rate: Elem) {
    if rate != 0.0 {
        on_row_major(theta, |theta| {
            with_simd(
                #[inline(always)]
                || theta.iter_mut().for_each(|t| *t -= rate * *t),
            )
        });
    }
}

impl UpdateRule for SgdRule {
    fn kind(&self) -> &'static str {
        "sgd"
    }

    fn settings(&self) -> String {
        let SgdRule {
            momentum,
            dampening,
            nesterov,
        } = self;
        format!("momentum {momentum}, dampening {dampening}, nesterov {nesterov}")
    }

    /// The momentum buffer `[b]` when `μ > 0`, else none.
    fn buffers(&self) -> usize {
        usize::from(self.momentum > 0.0)
    }

    fn validate(&self) -> Result<()> {
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return invalid(
                "sgd",
                format!(
                    "nesterov needs momentum > 0 and dampening 0, got momentum {} and \
                     dampening {}",
                    self.momentum, self.dampening
                ),
            );
        }
        Ok(())
    }

    /// Checks, from bounds on the sizes involved, that the update keeps the parameter and
    /// its momentum buffer finite. Reads the parameter and the buffer only when a term of
    /// the update depends on their size.
    fn check(
        &mut self,
        theta: ArrayViewD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &[Tensor],
        at: &ParamStep<'_>,
    ) -> std::result::Result<(), String> {
        let name = at.name;
        let g = grad.finite_bound().unwrap_or(f64::INFINITY);
        let (lr, mu, wd) = (
            f64::from(at.lr),
            f64::from(self.momentum),
            f64::from(at.weight_decay),
        );
        let theta_max = || {
            max_abs(&theta)
                .map(f64::from)
                .ok_or_else(|| format!("\"{name}\" holds a value that is not finite"))
        };
        // how far the gradient terms may move a value, and the new momentum buffer's bound
        let (change, buffer) = if mu == 0.0 {
            (lr * g, 0.0)
        } else {
            let old = match buffers.first() {
                Some(b) => max_abs(b).map(f64::from).ok_or_else(|| {
                    format!("the momentum buffer of \"{name}\" holds a value that is not finite")
                })?,
                None => 0.0,
            };
            let decay = if wd > 0.0 { wd * theta_max()? } else { 0.0 };
            // (1 − τ) <= 1, so the undamped sum bounds the damped one
            let buffer = mu * old + g + decay;
            let change = if self.nesterov {
                lr * (g + mu * buffer)
            } else {
                lr * buffer
            };
            (change, buffer)
        };
        // the decay θ ← θ − lr·wd·θ on its own (plain and Nesterov) keeps |θ| when lr·wd <= 1
        let rate = if mu > 0.0 && !self.nesterov {
            0.0
        } else {
            lr * wd
        };
        let safe = buffer <= SAFE_VALUE
            && if rate <= 1.0 {
                change < SAFE_CHANGE
            } else {
                rate * theta_max()? + change <= SAFE_VALUE
            };
        if safe {
            return Ok(());
        }
        Err(format!(
            "the update of \"{name}\" could reach {:.3e} (learning rate {lr:.3e}, gradient up \
             to {g:.3e}{}), beyond what f32 holds",
            change.max(buffer),
            if mu > 0.0 {
                format!(", momentum buffer up to {buffer:.3e}")
            } else {
                String::new()
            }
        ))
    }

    fn update(
        &mut self,
        mut theta: ArrayViewMutD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &mut [Tensor],
        at: &ParamStep<'_>,
    ) {
        let (lr, wd, mu) = (at.lr, at.weight_decay, self.momentum);
        let Some(b) = buffers.first_mut().filter(|_| mu > 0.0) else {
            // θ ← θ − lr·wd·θ − lr·g, one product for factored g
            decay(theta.view_mut(), lr * wd);
            grad.scaled_add_to(theta, -lr);
            return;
        };
        // b ← μ·b + (1 − τ)·(g + wd·θ); on the first step b = g + wd·θ, as PyTorch starts it
        let (keep, take) = match at.first {
            true => (0.0, 1.0),
            false => (mu, 1.0 - self.dampening),
        };
        grad.mix_into(b.view_mut(), keep, take);
        let b = buffer_slice(b, theta.len());
        if wd != 0.0 {
            let wd = take * wd;
            on_row_major(theta.view_mut(), |theta| {
                with_simd(
                    #[inline(always)]
                    || b.iter_mut().zip(&*theta).for_each(|(b, &t)| *b += wd * t),
                )
            });
        }
        // θ ← θ − lr·b, or with Nesterov θ ← θ − lr·(g + wd·θ + μ·b) = θ − lr·wd·θ − lr·g −
        // lr·μ·b
        let rate = match self.nesterov {
            true => {
                decay(theta.view_mut(), lr * wd);
                grad.scaled_add_to(theta.view_mut(), -lr);
                lr * mu
            }
            false => lr,
        };
        on_row_major(theta, |theta| {
            with_simd(
                #[inline(always)]
                || theta.iter_mut().zip(&*b).for_each(|(t, &b)| *t -= rate * b),
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Linear, Mode, Module};
    use crate::optim::{Optimizer, OptimizerState, l2_penalty};
    use crate::{Tape, tensor};

    /// One weight [[w]] and a bias [b]; the loss is L = Σ x·w·c + b·c with fixed x and c, so
    /// ∂L/∂w = x·c = 3 and ∂L/∂b = c = 2 on every step.
    fn model() -> Linear {
        Linear::from_parts(
            tensor::from_vec(vec![1.0], &[1, 1]).unwrap(),
            Some(tensor::from_vec(vec![0.5], &[1]).unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn a_small_weight_decay_is_not_rounded_away() {
        // a zero gradient and lr·wd = 1e-7: every weight should shrink by 1e-7 of itself, and
        // Nesterov's first step by (1 + μ)·1e-7 (it adds μ·b with b = wd·θ)
        let (lr, wd) = (1e-3, 1e-4);
        let weights: Vec<Elem> = (0..4096).map(|i| 0.25 + (i as Elem) / 4096.0).collect();
        for nesterov in [false, true] {
            let w = tensor::from_vec(weights.clone(), &[64, 64]).unwrap();
            let mut layer = Linear::from_parts(w, None).unwrap();
            let mut sgd = Sgd::new(lr).unwrap().weight_decay(wd).unwrap();
            if nesterov {
                sgd = sgd.momentum(0.9).unwrap().nesterov();
            }
            let tape = Tape::new();
            let x = tape.constant(tensor::zeros(&[1, 64]));
            let grads = (layer.forward(x, Mode::Train).sum() * 0.0).backward();
            drop(tape);
            sgd.step(&mut layer, &grads).unwrap();
            let after = layer.weight().value();
            let shrunk: f64 = weights
                .iter()
                .zip(after.iter())
                .map(|(a, b)| f64::from(a - b))
                .sum();
            let rate = if nesterov { 1.9e-7 } else { 1e-7 };
            let expected: f64 = weights.iter().map(|&a| f64::from(a) * rate).sum();
            let ratio = shrunk / expected;
            assert!(
                (ratio - 1.0).abs() < 0.05,
                "nesterov {nesterov}: decay ratio {ratio}"
            );
        }
    }

    fn step(model: &mut Linear, opt: &mut dyn Optimizer) {
        let tape = Tape::new();
        let x = tape.constant(tensor::from_vec(vec![1.5], &[1, 1]).unwrap());
        let loss = model.forward(x, Mode::Train).sum() * 2.0;
        opt.step(model, &loss.backward()).unwrap();
    }

    /// Weight and bias after three steps of `opt` from [`model`].
    fn after_three_steps(mut opt: Sgd) -> (Elem, Elem) {
        let mut m = model();
        for _ in 0..3 {
            step(&mut m, &mut opt);
        }
        assert_eq!(opt.steps(), 3);
        weight_and_bias(&m)
    }

    fn weight_and_bias(m: &Linear) -> (Elem, Elem) {
        (m.weight().value()[[0, 0]], m.bias().unwrap().value()[[0]])
    }

    /// Three steps of torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=?, weight_decay=0.01)
    /// worked from its documented formulas, with bias excluded from decay:
    ///   w: g_t = 3 + 0.01·w_{t-1}; b_1 = g_1; b_t = 0.9·b_{t-1} + g_t
    ///      classical: w_t = w_{t-1} − 0.1·b_t
    ///      step 1: g = 3.01, b = 3.01, w = 1 − 0.301 = 0.699
    ///      step 2: g = 3.00699, b = 2.709 + 3.00699 = 5.71599, w = 0.699 − 0.571599 = 0.127401
    ///      step 3: g = 3.00127401, b = 5.144391 + 3.00127401 = 8.14566501, w = −0.687165501
    ///   bias (no decay, g = 2): b = 2, 3.8, 5.42; bias = 0.5 − 0.2 − 0.38 − 0.542 = −0.622
    #[test]
    fn momentum_matches_pytorch_trace() {
        let (w, b) = after_three_steps(
            Sgd::new(0.1)
                .unwrap()
                .momentum(0.9)
                .unwrap()
                .weight_decay(0.01)
                .unwrap()
                .decay_biases(false),
        );
        assert!((f64::from(w) - -0.687165501).abs() < 1e-6, "{w}");
        assert!((b - -0.622).abs() < 1e-6, "{b}");
    }

    /// Nesterov: g_t as above, b_t as above, w_t = w_{t-1} − 0.1·(g_t + 0.9·b_t)
    ///   step 1: g = 3.01, b = 3.01, w = 1 − 0.1·(3.01 + 2.709) = 0.4281
    ///   step 2: g = 3.004281, b = 2.709 + 3.004281 = 5.713281,
    ///           w = 0.4281 − 0.1·(3.004281 + 5.1419529) = −0.38652339
    ///   step 3: g = 2.9961347661, b = 5.1419529 + 2.9961347661 = 8.1380876661,
    ///           w = −0.38652339 − 0.1·(2.9961347661 + 7.3242788995) = −1.41856476
    ///   bias: g = 2: b = 2, 3.8, 5.42; bias = 0.5 − 0.1·(2+1.8) − 0.1·(2+3.42) − 0.1·(2+4.878)
    ///         = 0.5 − 0.38 − 0.542 − 0.6878 = −1.1098
    #[test]
    fn nesterov_matches_pytorch_trace() {
        let (w, b) = after_three_steps(
            Sgd::new(0.1)
                .unwrap()
                .nesterov()
                .weight_decay(0.01)
                .unwrap()
                .momentum(0.9)
                .unwrap()
                .decay_biases(false),
        );
        assert!((f64::from(w) - -1.41856476).abs() < 1e-6, "{w}");
        assert!((b - -1.1098).abs() < 1e-6, "{b}");
    }

    /// Plain SGD with weight decay 0.1 decaying biases too: θ ← θ − 0.1·(g + 0.1·θ)
    ///   w: 1 → 1 − 0.1·3.1 = 0.69 → 0.69 − 0.1·3.069 = 0.3831 → 0.3831 − 0.1·3.03831 = 0.079269
    ///   b: 0.5 → 0.5 − 0.1·2.05 = 0.295 → 0.295 − 0.1·2.0295 = 0.09205 → 0.09205 − 0.1·2.009205 = −0.1088705
    #[test]
    fn plain_sgd_with_decayed_biases_matches_trace() {
        let (w, b) = after_three_steps(
            Sgd::new(0.1)
                .unwrap()
                .weight_decay(0.1)
                .unwrap()
                .decay_biases(true),
        );
        assert!((w - 0.079269).abs() < 1e-6, "{w}");
        assert!((b - -0.1088705).abs() < 1e-6, "{b}");
    }

    #[test]
    fn l2_on_the_tape_equals_decoupled_weight_decay() {
        let lambda = 0.05;
        // on the tape: loss + λ·Σ W²
        let mut a = model();
        let mut plain = Sgd::new(0.1).unwrap();
        let tape = Tape::new();
        let x = tape.constant(tensor::from_vec(vec![1.5], &[1, 1]).unwrap());
        let loss = a.forward(x, Mode::Train).sum() * 2.0 + l2_penalty(&tape, &a, lambda);
        plain.step(&mut a, &loss.backward()).unwrap();
        // in the optimizer: l2(λ)
        let mut b = model();
        let mut decayed = Sgd::new(0.1).unwrap().l2(lambda).unwrap();
        step(&mut b, &mut decayed);
        assert_eq!(weight_and_bias(&a), weight_and_bias(&b));
        // w = 1 − 0.1·(3 + 2·0.05·1) = 0.69; the bias is not regularized
        assert!((weight_and_bias(&a).0 - 0.69).abs() < 1e-7);
        assert!((weight_and_bias(&a).1 - 0.3).abs() < 1e-7);
    }

    #[test]
    fn invalid_hyperparameters_are_errors() {
        let msg = |r: Result<Sgd>| r.unwrap_err().to_string();
        assert_eq!(
            msg(Sgd::new(0.0)),
            "sgd: learning rate must be finite and > 0, got 0"
        );
        assert!(Sgd::new(Elem::NAN).is_err() && Sgd::gd(-1.0).is_err());
        assert!(Sgd::new(Elem::INFINITY).is_err());
        assert_eq!(
            msg(Sgd::new(0.1).unwrap().momentum(1.0)),
            "sgd: momentum must be in [0, 1), got 1"
        );
        assert!(Sgd::new(0.1).unwrap().momentum(-0.1).is_err());
        assert_eq!(
            msg(Sgd::new(0.1).unwrap().dampening(1.5)),
            "sgd: dampening must be in [0, 1], got 1.5"
        );
        assert_eq!(
            msg(Sgd::new(0.1).unwrap().l2(-1.0)),
            "sgd: lambda must be finite and >= 0, got -1"
        );
        assert!(Sgd::new(0.1).unwrap().weight_decay(Elem::NAN).is_err());
        assert!(Sgd::new(0.1).unwrap().set_base_lr(0.0).is_err());
    }

    #[test]
    fn state_round_trip_gives_the_same_next_step() {
        let mut m = model();
        let mut opt = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        step(&mut m, &mut opt);
        let state = opt.state().unwrap();
        assert_eq!((state.steps, state.buffers.len()), (1, 2));
        let mut fresh = Sgd::new(0.5).unwrap().momentum(0.9).unwrap();
        fresh.load_state(state.clone()).unwrap();
        assert_eq!(fresh.base_lr(), 0.1);
        let mut m2 = m.clone();
        step(&mut m, &mut opt);
        step(&mut m2, &mut fresh);
        assert_eq!(weight_and_bias(&m), weight_and_bias(&m2));
        let adam_state = OptimizerState {
            kind: "adam".into(),
            ..state
        };
        let err = fresh.load_state(adam_state).unwrap_err().to_string();
        assert_eq!(
            err,
            "optimizer state: expected the state of \"sgd\", found \"adam\""
        );
    }

    #[test]
    fn non_finite_gradients_are_refused_and_nothing_changes() {
        let mut m = model();
        let mut opt = Sgd::new(0.1).unwrap().momentum(0.5).unwrap();
        step(&mut m, &mut opt);
        let before = weight_and_bias(&m);
        let tape = Tape::new();
        let x = tape.constant(tensor::from_vec(vec![Elem::INFINITY], &[1, 1]).unwrap());
        let loss = m.forward(x, Mode::Train).sum();
        let err = opt.step(&mut m, &loss.backward()).unwrap_err().to_string();
        assert!(err.contains("step 1"), "{err}");
        assert!(err.contains("the step changed nothing"), "{err}");
        assert_eq!(weight_and_bias(&m), before);
        assert_eq!(opt.steps(), 1);
    }
}
