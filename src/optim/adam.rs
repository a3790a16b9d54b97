//! Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), as PyTorch's
//! `torch.optim.Adam` and `torch.optim.AdamW`.

use super::{Optim, ParamStep, UpdateRule, buffer_slice, invalid, on_row_major, row_major};
use crate::autograd::grad::ParamGrad;
use crate::error::Result;
use crate::kernels::simd::with_simd;
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayViewD, ArrayViewMutD};
use std::borrow::Cow;

/// Adam (<https://arxiv.org/abs/1412.6980>) and AdamW (<https://arxiv.org/abs/1711.05101>):
/// [`AdamRule`] under the shared driver [`Optim`].
///
/// With step count `t` (from 1), `β₁, β₂` the moment decays, `ε` the stabilizer:
///
/// ```text
/// g ← g + wd·θ                         (Adam's L2)
/// θ ← θ − lr·wd·θ                       (AdamW instead)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
///
/// Weight decay reaches every parameter, as in PyTorch, unless
/// [`decay_biases(false)`](Optim::decay_biases) leaves out biases and normalization
/// parameters. AdamW's decay is applied as
/// `θ − (lr·wd)·θ`, not as PyTorch's `θ·(1 − lr·wd)`, whose factor rounds to f32's spacing
/// near 1 and so loses a small `lr·wd` (by 19% at `1e-7`).
///
/// Defaults as PyTorch: `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e-8`; AdamW's default `wd = 0.01`.
/// Its buffers per parameter are the moments `[m, v]`.
///
/// `t` counts each parameter's own steps, as PyTorch's `state["step"]`: a parameter that
/// first gets a gradient late — frozen until then
/// ([`Module::set_requires_grad`](crate::Module::set_requires_grad)), or unused — starts
/// from `t = 1`, so its first step moves it by about `lr`, as every parameter's first does.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Adam, Linear, Mode, Module, Optimizer, Tape};
/// let mut model = Linear::from_parts(tensor::from_vec(vec![1.0], &[1, 1])?, None)?;
/// let mut adam = Adam::new(0.1)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![2.0], &[1, 1])?);
/// let grads = model.forward(x, Mode::Train).sum().backward();
/// adam.step(&mut model, &grads)?;
/// // the first Adam step moves each weight by about lr, whatever the gradient's size
/// assert!((model.weight().value()[[0, 0]] - 0.9).abs() < 1e-6);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type Adam = Optim<AdamRule>;

/// The update rule of [`Adam`]: the moment decays, `ε`, and whether weight decay is
/// decoupled (AdamW).
///
/// # Examples
/// ```
/// use tapegrad::{Adam, AdamRule, Optim, Optimizer, UpdateRule};
/// let adam = Adam::new(1e-3)?;
/// assert_eq!((adam.rule().kind(), adam.rule().buffers()), ("adam", 2)); // [m, v]
/// let same = Optim::with_rule(AdamRule::default(), 1e-3)?; // what Adam::new builds
/// assert_eq!(same.lr(), adam.lr());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AdamRule {
    /// Kept in f64, as PyTorch keeps them in Python floats: `1 − 0.999` in f32 is off by
    /// 1.3e-5 relative, which would show in the bias correction.
    betas: (f64, f64),
    eps: Elem,
    decoupled: bool,
    /// Per parameter position: where a gradient kept in parts is formed in `check`, reused
    /// from step to step, and whether it was formed there this step (then `update` reads it
    /// instead of forming it again).
    scratch: Vec<(Vec<Elem>, bool)>,
}

impl Default for AdamRule {
    /// PyTorch's defaults, coupled decay.
    fn default() -> Self {
        AdamRule {
            betas: (0.9, 0.999),
            eps: 1e-8,
            decoupled: false,
            scratch: Vec::new(),
        }
    }
}

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's defaults, no weight decay.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless `lr` is finite and
    /// `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Adam, Optimizer};
    /// assert_eq!(Adam::new(1e-3)?.lr(), 1e-3);
    /// assert!(Adam::new(0.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(lr: Elem) -> Result<Self> {
        Optim::with_rule(AdamRule::default(), lr)
    }

    /// AdamW: Adam with decoupled weight decay `wd` (PyTorch's default is 0.01).
    ///
    /// # Errors
    /// As [`Adam::new`], and when `wd` is negative or not finite.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Adam, Linear, Mode, Module, Optimizer, Tape};
    /// let mut coupled = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut decoupled = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::full(&[1, 1], 2.0));
    /// let g1 = coupled.forward(x, Mode::Train).sum().backward();
    /// let g2 = decoupled.forward(x, Mode::Train).sum().backward();
    /// Adam::new(0.1)?.weight_decay(0.5)?.step(&mut coupled, &g1)?;
    /// Adam::adamw(0.1, 0.5)?.step(&mut decoupled, &g2)?;
    /// // Adam adds wd·θ to g, and its first step still moves θ by lr: 1 − 0.1
    /// assert!((coupled.weight().value()[[0, 0]] - 0.9).abs() < 1e-6);
    /// // AdamW shrinks θ by lr·wd·θ = 0.05 besides
    /// assert!((decoupled.weight().value()[[0, 0]] - 0.85).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn adamw(lr: Elem, wd: Elem) -> Result<Self> {
        let mut adam = Self::new(lr)?.weight_decay(wd)?;
        adam.rule.decoupled = true;
        Ok(adam)
    }

    /// Sets the moment decays `β₁, β₂`, each in `[0, 1)` (in `f64`, as PyTorch's Python
    /// floats).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) otherwise.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Adam, Linear, Mode, Module, Optimizer, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// // no averaging at all: each step is θ ← θ − lr·sign(g)
    /// let mut adam = Adam::new(0.1)?.betas(0.0, 0.0)?;
    /// for x in [2.0, -1.0] {
    ///     let tape = Tape::new();
    ///     let grads = model.forward(tape.constant(tensor::full(&[1, 1], x)), Mode::Train).sum().backward();
    ///     adam.step(&mut model, &grads)?;
    /// }
    /// assert!((model.weight().value()[[0, 0]] - 1.0).abs() < 1e-6); // down 0.1, then up 0.1
    /// assert!(Adam::new(0.1)?.betas(0.9, 1.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Result<Self> {
        for beta in [beta1, beta2] {
            if !(0.0..1.0).contains(&beta) {
                return invalid("adam", format!("betas must be in [0, 1), got {beta}"));
            }
        }
        self.rule.betas = (beta1, beta2);
        Ok(self)
    }

    /// Sets `ε > 0`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless finite and `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Adam, Linear, Mode, Module, Optimizer, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let tape = Tape::new();
    /// let grads = model.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// Adam::new(0.1)?.eps(2.0)?.step(&mut model, &grads)?;
    /// // first step: lr·g/(|g| + ε) = 0.1·2/(2 + 2)
    /// assert!((model.weight().value()[[0, 0]] - 0.95).abs() < 1e-6);
    /// assert!(Adam::new(0.1)?.eps(0.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn eps(mut self, eps: Elem) -> Result<Self> {
        if !(eps > 0.0 && eps.is_finite()) {
            return invalid("adam", format!("eps must be finite and > 0, got {eps}"));
        }
        self.rule.eps = eps;
        Ok(self)
    }
}

/// The factors of one Adam step, the same for every element of a parameter.
#[derive(Debug, Clone, Copy)]
struct Factors {
    lr: Elem,
    /// Bias corrections `1 − β₁ᵗ`, `1 − β₂ᵗ`.
    c1: Elem,
    c2: Elem,
    b1: Elem,
    b2: Elem,
    one_minus_b1: Elem,
    one_minus_b2: Elem,
    eps: Elem,
    /// L2 factor (Adam) and decoupled rate `lr·wd` (AdamW).
    coupled: Elem,
    decay_rate: Elem,
}

impl Factors {
    /// The factors of `rule` for the parameter step `at`.
    fn of(rule: &AdamRule, at: &ParamStep<'_>) -> Self {
        // the parameter's own t, from 1; in f64, so that no counter overflows the bias
        // corrections
        let t = at.param_step as f64 + 1.0;
        let (b1, b2) = rule.betas;
        let (coupled, decay_rate) = match rule.decoupled {
            false => (at.weight_decay, 0.0),
            true => (0.0, at.lr * at.weight_decay),
        };
        // bias corrections in f64, then every factor rounded once to f32
        Factors {
            lr: at.lr,
            c1: (1.0 - b1.powf(t)) as Elem,
            c2: (1.0 - b2.powf(t)) as Elem,
            b1: b1 as Elem,
            b2: b2 as Elem,
            one_minus_b1: (1.0 - b1) as Elem,
            one_minus_b2: (1.0 - b2) as Elem,
            eps: rule.eps,
            coupled,
            decay_rate,
        }
    }

    /// The new `(θ, m, v)` of one element with gradient `g`.
    #[inline(always)]
    fn apply(&self, theta: Elem, m: Elem, v: Elem, g: Elem) -> (Elem, Elem, Elem) {
        let g = g + self.coupled * theta;
        let theta = theta - self.decay_rate * theta;
        let m = self.b1 * m + self.one_minus_b1 * g;
        let v = self.b2 * v + self.one_minus_b2 * g * g;
        let theta = theta - self.lr * (m / self.c1) / ((v / self.c2).sqrt() + self.eps);
        (theta, m, v)
    }
}

impl UpdateRule for AdamRule {
    fn kind(&self) -> &'static str {
        "adam"
    }

    fn settings(&self) -> String {
        let (beta1, beta2) = self.betas;
        let (eps, decoupled) = (self.eps, self.decoupled);
        format!("betas ({beta1}, {beta2}), eps {eps}, decoupled weight decay {decoupled}")
    }

    /// The moments `[m, v]`.
    fn buffers(&self) -> usize {
        2
    }

    /// A dry run of the update, element by element, without writing; the gradient formed
    /// here (when kept in parts) is kept for [`UpdateRule::update`].
    fn check(
        &mut self,
        theta: ArrayViewD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &[Tensor],
        at: &ParamStep<'_>,
    ) -> std::result::Result<(), String> {
        let factors = Factors::of(self, at);
        if self.scratch.len() <= at.index {
            self.scratch.resize_with(at.index + 1, Default::default);
        }
        let (scratch, formed) = &mut self.scratch[at.index];
        let g = grad.row_major_in(scratch);
        let at_ptr = g.as_ptr();
        let theta = row_major(theta);
        let (m, v) = match buffers {
            [m, v] => (row_major(m.view()), row_major(v.view())),
            // the first step: both moments start at zero
            _ => (
                Cow::Owned(vec![0.0; g.len()]),
                Cow::Owned(vec![0.0; g.len()]),
            ),
        };
        // the largest magnitude of each new value, as an integer: finite below the bits of
        // infinity (NaN above); an integer maximum in locals vectorizes, where `is_finite`
        // flags did not
        let largest = with_simd(
            #[inline(always)]
            || {
                let magnitude = |x: Elem| (x.to_bits() & 0x7fff_ffff) as i32;
                let mut largest = (0, 0, 0);
                for (((&t, &m), &v), &g) in theta.iter().zip(&*m).zip(&*v).zip(g) {
                    let (t, m, v) = factors.apply(t, m, v, g);
                    largest.0 = magnitude(t).max(largest.0);
                    largest.1 = magnitude(m).max(largest.1);
                    largest.2 = magnitude(v).max(largest.2);
                }
                largest
            },
        );
        let finite = |largest: i32| largest < Elem::INFINITY.to_bits() as i32;
        let ok = [largest.0, largest.1, largest.2].map(finite);
        // formed here unless the view is of the gradient's own tensor
        *formed = std::ptr::eq(at_ptr, scratch.as_ptr());
        match ok.iter().position(|ok| !ok) {
            None => Ok(()),
            Some(i) => Err(format!(
                "the update of \"{}\" would make {} not finite (learning rate {:.3e})",
                at.name,
                ["a value", "a first moment", "a second moment"][i],
                at.lr
            )),
        }
    }

    fn update(
        &mut self,
        theta: ArrayViewMutD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &mut [Tensor],
        at: &ParamStep<'_>,
    ) {
        let factors = Factors::of(self, at);
        let [m, v] = buffers else {
            unreachable!("internal error: the driver gives Adam its two moments")
        };
        if self.scratch.len() <= at.index {
            self.scratch.resize_with(at.index + 1, Default::default);
        }
        let (scratch, formed) = &mut self.scratch[at.index];
        let g = match std::mem::take(formed) {
            // formed by `check` this step
            true => &scratch[..],
            false => grad.row_major_in(scratch),
        };
        let len = g.len();
        let (m, v) = (buffer_slice(m, len), buffer_slice(v, len));
        on_row_major(theta, |theta| {
            with_simd(
                #[inline(always)]
                || {
                    for (((t, m), v), &g) in theta.iter_mut().zip(m).zip(v).zip(g) {
                        (*t, *m, *v) = factors.apply(*t, *m, *v, g);
                    }
                },
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Linear, Mode, Module};
    use crate::optim::Optimizer;
    use crate::{Tape, tensor};

    /// A weight w = 1 and bias b = 0.5 under the loss L = w·x + b with x = w (so the
    /// gradient changes each step): ∂L/∂w = 2w, ∂L/∂b = 1.
    fn run(mut opt: Adam) -> (Elem, Elem) {
        let mut m = Linear::from_parts(
            tensor::from_vec(vec![1.0], &[1, 1]).unwrap(),
            Some(tensor::from_vec(vec![0.5], &[1]).unwrap()),
        )
        .unwrap();
        for _ in 0..3 {
            let tape = Tape::new();
            let w = tape.param(m.weight());
            let loss = m.forward(w, Mode::Train).sum();
            opt.step(&mut m, &loss.backward()).unwrap();
        }
        (m.weight().value()[[0, 0]], m.bias().unwrap().value()[[0]])
    }

    /// Reference values from PyTorch's documented Adam/AdamW formulas, evaluated in f64
    /// (lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1, bias not decayed):
    ///
    /// ```text
    /// def adam(w, b, wd, decoupled):
    ///     m = {"w": 0, "b": 0}; v = {"w": 0, "b": 0}
    ///     for t in (1, 2, 3):
    ///         for k, g in (("w", 2 * w), ("b", 1.0)):
    ///             p = w if k == "w" else b
    ///             d = wd if k == "w" else 0
    ///             if decoupled: p *= 1 - 0.1 * d
    ///             else: g += d * p
    ///             m[k] = 0.9 * m[k] + 0.1 * g; v[k] = 0.999 * v[k] + 0.001 * g * g
    ///             p -= 0.1 * (m[k] / (1 - 0.9**t)) / ((v[k] / (1 - 0.999**t)) ** 0.5 + 1e-8)
    ///             if k == "w": w = p
    ///             else: b = p
    ///     return w, b
    ///
    /// adam(1, 0.5, 0.1, False) == (0.70158627, 0.2); adam(1, 0.5, 0.1, True) == (0.67510122, 0.2)
    /// ```
    #[test]
    fn adam_and_adamw_match_pytorch_formulas() {
        // the reference decays the weight only
        let adam = Adam::new(0.1).unwrap().weight_decay(0.1).unwrap();
        let (w, b) = run(adam.decay_biases(false));
        assert!((f64::from(w) - 0.70158627).abs() < 1e-6, "{w}");
        assert!((b - 0.2).abs() < 1e-6, "{b}");
        let (w, b) = run(Adam::adamw(0.1, 0.1).unwrap().decay_biases(false));
        assert!((f64::from(w) - 0.67510122).abs() < 1e-6, "{w}");
        assert!((b - 0.2).abs() < 1e-6, "{b}");
    }

    #[test]
    fn state_round_trip_continues_the_same_trajectory() {
        let adam = || Adam::new(0.1).unwrap().weight_decay(0.1).unwrap();
        let (w, b) = run(adam());
        // three steps in one go, or one step, a state round trip into a fresh Adam, two more
        let mut m = Linear::from_parts(
            tensor::from_vec(vec![1.0], &[1, 1]).unwrap(),
            Some(tensor::from_vec(vec![0.5], &[1]).unwrap()),
        )
        .unwrap();
        let mut first = adam();
        let mut second = adam();
        for i in 0..3 {
            if i == 1 {
                second.load_state(first.state().unwrap()).unwrap();
            }
            let opt = if i == 0 { &mut first } else { &mut second };
            let tape = Tape::new();
            let x = tape.param(m.weight());
            let loss = m.forward(x, Mode::Train).sum();
            opt.step(&mut m, &loss.backward()).unwrap();
        }
        assert_eq!(
            (m.weight().value()[[0, 0]], m.bias().unwrap().value()[[0]]),
            (w, b)
        );
        let mut bad = first.state().unwrap();
        bad.buffers.values_mut().for_each(|b| {
            b.pop();
        });
        let err = second.load_state(bad).unwrap_err().to_string();
        assert!(err.contains("expected 2 buffers for"), "{err}");
    }

    #[test]
    fn a_parameter_unfrozen_late_counts_its_own_steps() {
        // as torch, where state["step"] is per parameter: the weight, frozen for two steps,
        // then takes a first step of lr·g/(|g| + ε) ≈ lr (with the optimizer's t = 3 it
        // would move by lr·(0.1/0.271)/√(0.001/0.002997) ≈ 0.064)
        let mut m = Linear::from_parts(
            tensor::from_vec(vec![1.0], &[1, 1]).unwrap(),
            Some(tensor::from_vec(vec![0.5], &[1]).unwrap()),
        )
        .unwrap();
        let step = |m: &mut Linear, opt: &mut Adam| {
            let tape = Tape::new();
            let x = tape.constant(tensor::from_vec(vec![2.0], &[1, 1]).unwrap());
            let loss = m.forward(x, Mode::Train).sum();
            opt.step(m, &loss.backward()).unwrap();
        };
        let mut adam = Adam::new(0.1).unwrap();
        m.weight_mut().set_requires_grad(false);
        step(&mut m, &mut adam);
        step(&mut m, &mut adam);
        m.weight_mut().set_requires_grad(true);
        step(&mut m, &mut adam);
        assert!(
            (m.weight().value()[[0, 0]] - 0.9).abs() < 1e-6,
            "{}",
            m.weight().value()
        );
        let state = adam.state().unwrap();
        assert_eq!(state.steps, 3);
        assert_eq!(state.param_steps, [("weight".to_string(), 1)].into());
        // a fresh Adam that loads the state goes on as this one does
        let mut resumed = Adam::new(0.1).unwrap();
        resumed.load_state(state.clone()).unwrap();
        let mut copy = m.clone();
        step(&mut m, &mut adam);
        step(&mut copy, &mut resumed);
        assert_eq!(m.weight().value(), copy.weight().value());
        assert_eq!(m.bias().unwrap().value(), copy.bias().unwrap().value());
        assert_eq!(adam.state().unwrap(), resumed.state().unwrap());
        // counts the state cannot hold are refused
        let mut ahead = state.clone();
        ahead.param_steps.insert("weight".into(), 4);
        let err = Adam::new(0.1).unwrap().load_state(ahead).unwrap_err();
        assert_eq!(
            err.to_string(),
            "adam: optimizer state: expected at most the optimizer's 3 steps for \"weight\", found 4"
        );
        let mut unknown = state;
        unknown.param_steps.insert("gamma".into(), 1);
        let err = Adam::new(0.1).unwrap().load_state(unknown).unwrap_err();
        assert_eq!(
            err.to_string(),
            "adam: optimizer state: expected the steps of a parameter with buffers, found 1 steps of \"gamma\", which has none"
        );
    }

    #[test]
    fn invalid_hyperparameters_are_errors() {
        assert!(Adam::new(0.0).is_err());
        assert!(Adam::adamw(0.1, -0.1).is_err());
        let err = Adam::new(0.1)
            .unwrap()
            .betas(0.9, 1.0)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "adam: betas must be in [0, 1), got 1");
        assert!(Adam::new(0.1).unwrap().eps(0.0).is_err());
    }
}
