//! RMSprop (Tieleman & Hinton 2012, lecture 6.5 of "Neural Networks for Machine Learning";
//! centered as Graves 2013), as PyTorch's `torch.optim.RMSprop`. Written only on the public
//! optimizer seam ([`UpdateRule`], [`ParamGrad`]), as a rule outside the crate would be.

use crate::{Elem, Error, Optim, ParamGrad, ParamStep, Result, Tensor, UpdateRule};
use ndarray::{ArrayViewD, ArrayViewMutD};

/// RMSprop: [`RmsPropRule`] under the shared driver [`Optim`].
///
/// With `α` the smoothing constant, `ε` the stabilizer, `μ` the momentum, `wd` the weight
/// decay, as PyTorch's `torch.optim.RMSprop`:
///
/// ```text
/// g ← g + wd·θ                        (every parameter; weights only under l2 or decay_biases(false))
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

    fn settings(&self) -> String {
        let (alpha, eps, momentum, centered) = (self.alpha, self.eps, self.momentum, self.centered);
        format!("alpha {alpha}, eps {eps}, momentum {momentum}, centered {centered}")
    }

    /// `[s]`, then `b` when `μ > 0`, then `a` when centered.
    fn buffers(&self) -> usize {
        1 + usize::from(self.momentum > 0.0) + usize::from(self.centered)
    }

    /// A dry run of the update, element by element, without writing or copying: whether
    /// every new value and buffer element would be finite (the default check updates copies).
    fn check(
        &mut self,
        theta: ArrayViewD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &[Tensor],
        at: &ParamStep<'_>,
    ) -> std::result::Result<(), String> {
        let step = self.element(at);
        let g = grad.row_major_in(&mut self.scratch);
        let theta = theta.as_standard_layout();
        let theta = theta.as_slice().expect("a row-major view is one slice");
        // at most three buffers, row-major (borrowed when they are): no allocation per step
        let buffers: [_; 3] =
            std::array::from_fn(|i| buffers.get(i).map(|b| b.as_standard_layout()));
        let buffer = |i: usize| buffers.get(i)?.as_ref()?.as_slice();
        // the first step has no buffers yet (they start at zero); a buffer the rule does not
        // keep reads `s` in its place, and comes back unchanged
        let zeros: Vec<Elem>;
        let s = match buffer(0) {
            Some(s) => s,
            None => {
                zeros = vec![0.0; theta.len()];
                &zeros
            }
        };
        let b = buffer(1).filter(|_| step.mu > 0.0).unwrap_or(s);
        let a = buffer(1 + usize::from(step.mu > 0.0))
            .filter(|_| step.centered)
            .unwrap_or(s);
        // the largest magnitude of each new value, as an integer: finite below the bits of
        // infinity (NaN above)
        let magnitude = |x: Elem| (x.to_bits() & 0x7fff_ffff) as i32;
        let mut largest = [0; 4];
        for ((((&t, &g), &s), &b), &a) in theta.iter().zip(g).zip(s).zip(b).zip(a) {
            let new = step.apply(t, g, s, b, a);
            for (largest, x) in largest.iter_mut().zip(new) {
                *largest = magnitude(x).max(*largest);
            }
        }
        // [θ, s, b, a], the buffers numbered as `buffers` lists them, unkept ones not checked
        let numbers = [
            Some(None),
            Some(Some(0)),
            (step.mu > 0.0).then_some(Some(1)),
            step.centered
                .then_some(Some(1 + usize::from(step.mu > 0.0))),
        ];
        let finite = |largest: i32| largest < Elem::INFINITY.to_bits() as i32;
        let failed = (largest.iter().zip(numbers))
            .find_map(|(&largest, number)| number.filter(|_| !finite(largest)));
        match failed {
            None => Ok(()),
            Some(None) => Err(format!(
                "the update of \"{}\" would make a value not finite (learning rate {:.3e})",
                at.name, at.lr
            )),
            Some(Some(i)) => Err(format!(
                "the update of \"{}\" would make buffer {i} not finite (learning rate {:.3e})",
                at.name, at.lr
            )),
        }
    }

    fn update(
        &mut self,
        mut theta: ArrayViewMutD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &mut [Tensor],
        at: &ParamStep<'_>,
    ) {
        // a loop over slices: the optimizer's parameters and buffers are row-major, but a
        // parameter given a transposed tensor is updated as a row-major copy, and a buffer
        // is put in row-major order (its values unchanged)
        let Some(theta) = theta.as_slice_mut() else {
            let mut copy = theta.as_standard_layout().into_owned();
            self.update(copy.view_mut(), grad, buffers, at);
            theta.assign(&copy);
            return;
        };
        for buffer in buffers.iter_mut().filter(|b| !b.is_standard_layout()) {
            *buffer = buffer.as_standard_layout().into_owned();
        }
        let step = self.element(at);
        let g = grad.row_major_in(&mut self.scratch);
        let mut slices = buffers.iter_mut().map(|b| {
            let slice = b.as_slice_mut().expect("a row-major buffer is one slice");
            assert_eq!(slice.len(), g.len(), "a buffer of the parameter's size");
            slice
        });
        let s = slices
            .next()
            .expect("the driver gives a square average per parameter");
        let b = (step.mu > 0.0).then(|| slices.next()).flatten();
        let a = step.centered.then(|| slices.next()).flatten();
        // one loop per set of buffers kept
        let t_g_s = theta.iter_mut().zip(g).zip(s.iter_mut());
        match (b, a) {
            (Some(b), Some(a)) => {
                for (((t, &g), s), (b, a)) in t_g_s.zip(b.iter_mut().zip(a)) {
                    [*t, *s, *b, *a] = step.apply(*t, g, *s, *b, *a);
                }
            }
            (Some(b), None) => {
                for (((t, &g), s), b) in t_g_s.zip(b) {
                    [*t, *s, *b, _] = step.apply(*t, g, *s, *b, 0.0);
                }
            }
            (None, Some(a)) => {
                for (((t, &g), s), a) in t_g_s.zip(a) {
                    [*t, *s, _, *a] = step.apply(*t, g, *s, 0.0, *a);
                }
            }
            (None, None) => {
                for ((t, &g), s) in t_g_s {
                    [*t, *s, _, _] = step.apply(*t, g, *s, 0.0, 0.0);
                }
            }
        }
    }
}

impl RmsPropRule {
    /// The factors of one step for the parameter step `at`.
    fn element(&self, at: &ParamStep<'_>) -> Element {
        Element {
            alpha: self.alpha,
            one_minus_alpha: 1.0 - self.alpha,
            eps: self.eps,
            mu: self.momentum,
            centered: self.centered,
            lr: at.lr,
            wd: at.weight_decay,
        }
    }
}

/// The factors of one RMSprop step, the same for every element of a parameter.
#[derive(Clone, Copy)]
struct Element {
    alpha: Elem,
    one_minus_alpha: Elem,
    eps: Elem,
    mu: Elem,
    centered: bool,
    lr: Elem,
    wd: Elem,
}

impl Element {
    /// The new `[θ, s, b, a]` of one element `θ` with gradient `g`, square average `s`,
    /// momentum buffer `b` (used when `μ > 0`) and gradient average `a` (used when
    /// centered); a buffer not used comes back as it was.
    #[inline(always)]
    fn apply(&self, t: Elem, g: Elem, s: Elem, b: Elem, a: Elem) -> [Elem; 4] {
        let g = g + self.wd * t;
        let s = self.alpha * s + self.one_minus_alpha * g * g;
        let (a, d) = match self.centered {
            true => {
                // torch's lerp for a weight below 0.5: a + w·(g − a)
                let a = a + self.one_minus_alpha * (g - a);
                (a, (s - a * a).sqrt() + self.eps)
            }
            false => (a, s.sqrt() + self.eps),
        };
        match self.mu > 0.0 {
            true => {
                let b = self.mu * b + g / d;
                [t - self.lr * b, s, b, a]
            }
            false => [t - self.lr * (g / d), s, b, a],
        }
    }
}
