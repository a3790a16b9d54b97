//! RMSprop (Tieleman & Hinton 2012, lecture 6.5 of "Neural Networks for Machine Learning";
//! centered as Graves 2013), as PyTorch's `torch.optim.RMSprop`. Written only on the public
//! optimizer seam ([`UpdateRule`], [`ParamGrad`]), as a rule outside the crate would be.

use crate::{Elem, Error, Optim, ParamGrad, ParamStep, Result, Tensor, UpdateRule};
use ndarray::ArrayViewMutD;

/// RMSprop: [`RmsPropRule`] under the shared driver [`Optim`].
///
/// With `α` the smoothing constant, `ε` the stabilizer, `μ` the momentum, `wd` the weight
/// decay, as PyTorch's `torch.optim.RMSprop`:
///
/// ```text
/// g ← g + wd·θ                        (weights only, not biases, unless decay_biases)
/// s ← α·s + (1 − α)·g²
/// a ← a + (1 − α)·(g − a);  d ← √(s − a²) + ε      (centered)
///                           d ← √s + ε             (otherwise)
/// b ← μ·b + g/d;  θ ← θ − lr·b        (μ > 0)
/// θ ← θ − lr·g/d                      (μ = 0)
/// ```
///
/// Its buffers per parameter are `[s, b, a]` (the square average, then the momentum buffer
/// when `μ > 0`, then the gradient average when centered), PyTorch's `square_avg`,
/// `momentum_buffer`, `grad_avg`. PyTorch's defaults: `α = 0.99`, `ε = 1e-8`, no momentum,
/// not centered. The LSUV paper (Mishkin & Matas 2015, <https://arxiv.org/abs/1511.06422>)
/// trains its MNIST and CIFAR nets with it.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, RmsProp, Tape};
/// let mut model = Linear::from_parts(tensor::from_vec(vec![1.0], &[1, 1])?, None)?;
/// let mut rmsprop = RmsProp::new(0.01)?.alpha(0.9)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![2.0], &[1, 1])?);
/// let grads = model.forward(x, Mode::Train).sum().backward(); // g = 2
/// rmsprop.step(&mut model, &grads)?;
/// // s = 0.1·4 = 0.4, θ = 1 − 0.01·2/(√0.4 + 1e-8)
/// let expected = 1.0 - 0.01 * 2.0 / 0.4f32.sqrt();
/// assert!((model.weight().value()[[0, 0]] - expected).abs() < 1e-6);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type RmsProp = Optim<RmsPropRule>;

/// The update rule of [`RmsProp`].
///
/// # Examples
/// ```
/// use tapegrad::{Optim, Optimizer, RmsProp, RmsPropRule, UpdateRule};
/// let plain = RmsProp::new(0.01)?;
/// assert_eq!((plain.rule().kind(), plain.rule().buffers()), ("rmsprop", 1)); // [s]
/// let full = RmsProp::new(0.01)?.momentum(0.9)?.centered(true);
/// assert_eq!(full.rule().buffers(), 3); // [s, b, a]
/// assert_eq!(Optim::with_rule(RmsPropRule::default(), 0.01)?.lr(), plain.lr());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RmsPropRule {
    alpha: Elem,
    eps: Elem,
    momentum: Elem,
    centered: bool,
    /// Where a gradient kept in parts is formed, reused from step to step.
    scratch: Vec<Elem>,
}

impl Default for RmsPropRule {
    /// PyTorch's defaults: `α = 0.99`, `ε = 1e-8`, no momentum, not centered.
    fn default() -> Self {
        RmsPropRule {
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            centered: false,
            scratch: Vec::new(),
        }
    }
}

fn invalid<T>(message: String) -> Result<T> {
    Err(Error::InvalidArgument {
        op: "rmsprop",
        message,
    })
}

impl RmsProp {
    /// RMSprop with learning rate `lr` and PyTorch's defaults.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Optimizer, RmsProp};
    /// assert_eq!(RmsProp::new(0.01)?.lr(), 0.01);
    /// assert!(RmsProp::new(-0.01).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(lr: Elem) -> Result<Self> {
        Optim::with_rule(RmsPropRule::default(), lr)
    }

    /// Sets the smoothing constant `α ∈ [0, 1)` of the square average.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] otherwise.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, RmsProp, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let tape = Tape::new();
    /// let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// // α = 0 keeps no history: s = g², so the step is lr·g/|g| = lr
    /// RmsProp::new(0.01)?.alpha(0.0)?.step(&mut model, &grads)?;
    /// assert!((model.weight().value()[[0, 0]] - 0.99).abs() < 1e-6);
    /// assert!(RmsProp::new(0.01)?.alpha(1.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn alpha(mut self, alpha: Elem) -> Result<Self> {
        if !(0.0..1.0).contains(&alpha) {
            return invalid(format!("alpha must be in [0, 1), got {alpha}"));
        }
        self.rule_mut().alpha = alpha;
        Ok(self)
    }

    /// Sets `ε > 0`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless finite and `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, RmsProp, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let tape = Tape::new();
    /// let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// // s = 0.01·4, so the step is lr·g/(√s + ε) = 0.01·2/(0.2 + 0.2)
    /// RmsProp::new(0.01)?.eps(0.2)?.step(&mut model, &grads)?;
    /// assert!((model.weight().value()[[0, 0]] - 0.95).abs() < 1e-6);
    /// assert!(RmsProp::new(0.01)?.eps(0.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn eps(mut self, eps: Elem) -> Result<Self> {
        if !(eps > 0.0 && eps.is_finite()) {
            return invalid(format!("eps must be finite and > 0, got {eps}"));
        }
        self.rule_mut().eps = eps;
        Ok(self)
    }

    /// Sets the momentum `μ ∈ [0, 1)` (0 turns it off).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] otherwise.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, RmsProp, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut rmsprop = RmsProp::new(0.01)?.alpha(0.0)?.momentum(0.5)?;
    /// for _ in 0..2 {
    ///     let tape = Tape::new();
    ///     let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    ///     rmsprop.step(&mut model, &grads)?;
    /// }
    /// // g/√s = 1 each step: b = 1, then 0.5·1 + 1 = 1.5; θ = 1 − 0.01·(1 + 1.5)
    /// assert!((model.weight().value()[[0, 0]] - 0.975).abs() < 1e-6);
    /// assert!(RmsProp::new(0.01)?.momentum(1.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn momentum(mut self, momentum: Elem) -> Result<Self> {
        if !(0.0..1.0).contains(&momentum) {
            return invalid(format!("momentum must be in [0, 1), got {momentum}"));
        }
        self.rule_mut().momentum = momentum;
        Ok(self)
    }

    /// Normalizes by an estimate of the gradient's variance, `s − a²`, instead of its raw
    /// second moment `s`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, RmsProp, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let tape = Tape::new();
    /// let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// RmsProp::new(0.01)?.centered(true).step(&mut model, &grads)?;
    /// // s = 0.01·g² = 0.04, a = 0.01·g = 0.02: θ = 1 − 0.01·2/√(s − a²)
    /// let expected = 1.0 - 0.02 / (0.04f32 - 0.0004).sqrt();
    /// assert!((model.weight().value()[[0, 0]] - expected).abs() < 1e-5);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn centered(mut self, centered: bool) -> Self {
        self.rule_mut().centered = centered;
        self
    }
}

impl UpdateRule for RmsPropRule {
    fn kind(&self) -> &'static str {
        "rmsprop"
    }

    /// `[s]`, then `b` when `μ > 0`, then `a` when centered.
    fn buffers(&self) -> usize {
        1 + usize::from(self.momentum > 0.0) + usize::from(self.centered)
    }

    fn update(
        &mut self,
        mut theta: ArrayViewMutD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &mut [Tensor],
        at: &ParamStep<'_>,
    ) {
        let (alpha, eps, mu, lr, wd) =
            (self.alpha, self.eps, self.momentum, at.lr, at.weight_decay);
        let one_minus_alpha = 1.0 - alpha;
        let g = grad.dense_in(&mut self.scratch);
        let (square_avg, rest) = buffers
            .split_first_mut()
            .expect("the driver gives a square average per parameter");
        let (momentum, grad_avg) = match (mu > 0.0, self.centered, rest) {
            (true, true, [b, a]) => (Some(b), Some(a)),
            (true, false, [b]) => (Some(b), None),
            (false, true, [a]) => (None, Some(a)),
            _ => (None, None),
        };
        let mut momentum = momentum.map(|b| b.iter_mut());
        let mut grad_avg = grad_avg.map(|a| a.iter_mut());
        for ((t, &g), s) in theta.iter_mut().zip(g.iter()).zip(square_avg.iter_mut()) {
            let g = g + wd * *t;
            *s = alpha * *s + one_minus_alpha * g * g;
            let d = match grad_avg.as_mut().and_then(Iterator::next) {
                Some(a) => {
                    // torch's lerp for a weight below 0.5: a + w·(g − a)
                    *a += one_minus_alpha * (g - *a);
                    (*s - *a * *a).sqrt() + eps
                }
                None => s.sqrt() + eps,
            };
            match momentum.as_mut().and_then(Iterator::next) {
                Some(b) => {
                    *b = mu * *b + g / d;
                    *t -= lr * *b;
                }
                None => *t -= lr * (g / d),
            }
        }
    }
}
