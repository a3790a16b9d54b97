//! Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), as PyTorch's
//! `torch.optim.Adam` and `torch.optim.AdamW`.

use super::{Optimizer, OptimizerState, buffer, guard, invalid, non_negative};
use crate::autograd::gradients::Gradients;
use crate::error::Result;
use crate::nn::{Module, Param};
use crate::optim::schedule::{Clock, Schedule};
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayViewD, Zip};
use std::collections::BTreeMap;

/// How an [`Adam`] applies weight decay.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Decoupling {
    /// Adam's L2: `g ← g + wd·θ` before the moments.
    Coupled,
    /// AdamW: `θ ← θ·(1 − lr·wd)` apart from the moments.
    Decoupled,
}

/// Adam (<https://arxiv.org/abs/1412.6980>) and AdamW (<https://arxiv.org/abs/1711.05101>).
///
/// With step count `t` (from 1), `β₁, β₂` the moment decays, `ε` the stabilizer:
///
/// ```text
/// g ← g + wd·θ                         (Adam's L2, weights only by default)
/// θ ← θ·(1 − lr·wd)                     (AdamW instead, weights only by default)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
///
/// Defaults as PyTorch: `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e-8`; AdamW's default `wd = 0.01`.
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
#[derive(Debug, Clone)]
pub struct Adam {
    clock: Clock,
    /// Kept in f64, as PyTorch keeps them in Python floats: `1 − 0.999` in f32 is off by
    /// 1.3e-5 relative, which would show in the bias correction.
    betas: (f64, f64),
    eps: Elem,
    weight_decay: Elem,
    decoupling: Decoupling,
    moments: BTreeMap<String, (Tensor, Tensor)>,
    /// Where gradients kept as factors are formed, one slot per parameter, reused from step
    /// to step.
    scratch: Vec<Vec<Elem>>,
}

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's defaults, no weight decay.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless `lr` is finite and
    /// `> 0`.
    pub fn new(lr: Elem) -> Result<Self> {
        Ok(Adam {
            clock: Clock::new("adam", lr)?,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupling: Decoupling::Coupled,
            moments: BTreeMap::new(),
            scratch: Vec::new(),
        })
    }

    /// AdamW: Adam with decoupled weight decay `wd` (PyTorch's default is 0.01).
    ///
    /// # Errors
    /// As [`Adam::new`], and when `wd` is negative or not finite.
    pub fn adamw(lr: Elem, wd: Elem) -> Result<Self> {
        let mut adam = Self::new(lr)?.weight_decay(wd)?;
        adam.decoupling = Decoupling::Decoupled;
        Ok(adam)
    }

    /// Sets the moment decays `β₁, β₂`, each in `[0, 1)` (in `f64`, as PyTorch's Python
    /// floats).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) otherwise.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Result<Self> {
        for beta in [beta1, beta2] {
            if !(0.0..1.0).contains(&beta) {
                return invalid("adam", format!("betas must be in [0, 1), got {beta}"));
            }
        }
        self.betas = (beta1, beta2);
        Ok(self)
    }

    /// Sets `ε > 0`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless finite and `> 0`.
    pub fn eps(mut self, eps: Elem) -> Result<Self> {
        if !(eps > 0.0 && eps.is_finite()) {
            return invalid("adam", format!("eps must be finite and > 0, got {eps}"));
        }
        self.eps = eps;
        Ok(self)
    }

    /// Sets the weight decay `wd >= 0` (L2 for Adam, decoupled for AdamW).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless finite and `>= 0`.
    pub fn weight_decay(mut self, wd: Elem) -> Result<Self> {
        self.weight_decay = non_negative("adam", "weight decay", wd)?;
        Ok(self)
    }

    /// Sets the learning-rate schedule (constant by default).
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.clock = self.clock.with_schedule(schedule);
        self
    }
}

/// The factors of one Adam step, the same for every element.
#[derive(Debug, Clone, Copy)]
struct Rule {
    lr: Elem,
    /// Bias corrections `1 − β₁ᵗ`, `1 − β₂ᵗ`.
    c1: Elem,
    c2: Elem,
    b1: Elem,
    b2: Elem,
    one_minus_b1: Elem,
    one_minus_b2: Elem,
    eps: Elem,
}

impl Rule {
    /// The new `(θ, m, v)` of one element with gradient `g`, L2 factor `coupled` and
    /// decoupled factor `decoupled`.
    #[inline(always)]
    fn apply(
        &self,
        theta: Elem,
        m: Elem,
        v: Elem,
        g: Elem,
        coupled: Elem,
        decoupled: Elem,
    ) -> (Elem, Elem, Elem) {
        let g = g + coupled * theta;
        let theta = theta * (1.0 - self.lr * decoupled);
        let m = self.b1 * m + self.one_minus_b1 * g;
        let v = self.b2 * v + self.one_minus_b2 * g * g;
        let theta = theta - self.lr * (m / self.c1) / ((v / self.c2).sqrt() + self.eps);
        (theta, m, v)
    }
}

/// The (L2, decoupled) weight-decay factors of `param`.
fn decay_of(weight_decay: Elem, decoupling: Decoupling, param: &Param) -> (Elem, Elem) {
    let wd = if super::l2::decays(param) {
        weight_decay
    } else {
        0.0
    };
    match decoupling {
        Decoupling::Coupled => (wd, 0.0),
        Decoupling::Decoupled => (0.0, wd),
    }
}

impl Optimizer for Adam {
    fn step(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()> {
        // t counts from 1; in f64, so that no counter overflows the bias corrections
        let t = self.clock.steps as f64 + 1.0;
        let (b1, b2) = self.betas;
        // bias corrections in f64, then every factor rounded once to f32
        let rule = Rule {
            lr: self.lr(),
            c1: (1.0 - b1.powf(t)) as Elem,
            c2: (1.0 - b2.powf(t)) as Elem,
            b1: b1 as Elem,
            b2: b2 as Elem,
            one_minus_b1: (1.0 - b1) as Elem,
            one_minus_b2: (1.0 - b2) as Elem,
            eps: self.eps,
        };
        let (weight_decay, decoupling) = (self.weight_decay, self.decoupling);
        let (step, moments) = (self.clock.steps, &mut self.moments);
        // pass 1: every gradient formed (factors in a scratch slot each) and every update
        // computed without being written, so that nothing changes unless all are finite
        let mut count = 0;
        model.visit_params(&mut |_, p| count += usize::from(grads.param_grad(p).is_some()));
        if self.scratch.len() < count {
            self.scratch.resize_with(count, Vec::new);
        }
        let mut slots = self.scratch.iter_mut();
        let mut formed: Vec<ArrayViewD<'_, Elem>> = Vec::with_capacity(count);
        guard("adam", step, &*model, grads, |name, param, grad, _| {
            let g = grad.formed_in(slots.next().expect("a slot per gradient"));
            let (coupled, decoupled) = decay_of(weight_decay, decoupling, param);
            let finite = |ok: [bool; 3], (t, m, v): (Elem, Elem, Elem)| {
                [
                    ok[0] & t.is_finite(),
                    ok[1] & m.is_finite(),
                    ok[2] & v.is_finite(),
                ]
            };
            if let Some((m, v)) = moments.get(name)
                && (m.shape() != g.shape() || v.shape() != g.shape())
            {
                return Err(format!(
                    "the moments of \"{name}\" have shapes {:?} and {:?}, its gradient {:?} (an \
                     optimizer state loaded for another model)",
                    m.shape(),
                    v.shape(),
                    g.shape()
                ));
            }
            let ok = match moments.get(name) {
                Some((m, v)) => Zip::from(param.value())
                    .and(m)
                    .and(v)
                    .and(&g)
                    .fold([true; 3], |ok, &t, &m, &v, &g| {
                        finite(ok, rule.apply(t, m, v, g, coupled, decoupled))
                    }),
                None => Zip::from(param.value())
                    .and(&g)
                    .fold([true; 3], |ok, &t, &g| {
                        finite(ok, rule.apply(t, 0.0, 0.0, g, coupled, decoupled))
                    }),
            };
            formed.push(g);
            match ok.iter().position(|ok| !ok) {
                None => Ok(()),
                Some(i) => Err(format!(
                    "the update of \"{name}\" would make {} not finite (learning rate {:.3e})",
                    ["a value", "a first moment", "a second moment"][i],
                    rule.lr
                )),
            }
        })?;
        // pass 2: the same updates, written
        let mut formed = formed.into_iter();
        model.visit_params_mut(&mut |name, param| {
            if grads.param_grad(param).is_none() {
                return;
            }
            let g = formed.next().expect("formed in pass 1, in the same order");
            let (coupled, decoupled) = decay_of(weight_decay, decoupling, param);
            let zeros = || Tensor::zeros(g.raw_dim());
            let ((m, v), _) = buffer(moments, name, || (zeros(), zeros()));
            Zip::from(param.value_mut())
                .and(m)
                .and(v)
                .and(&g)
                .for_each(|theta, m, v, &g| {
                    (*theta, *m, *v) = rule.apply(*theta, *m, *v, g, coupled, decoupled);
                });
        });
        self.clock.tick();
        Ok(())
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn clock_mut(&mut self) -> &mut Clock {
        &mut self.clock
    }

    /// The counters, the base rate and the moments `[m, v]` per parameter.
    fn state(&self) -> Result<OptimizerState> {
        let moments = self.moments.iter();
        Ok(self.clock.state(
            moments
                .map(|(name, (m, v))| (name.clone(), vec![m.clone(), v.clone()]))
                .collect(),
        ))
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        let buffers = self.clock.load(state, 2)?;
        self.moments = (buffers.into_iter())
            .filter_map(|(name, b)| {
                let mut b = b.into_iter();
                Some((name, (b.next()?, b.next()?)))
            })
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Linear, Mode};
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
        let (w, b) = run(Adam::new(0.1).unwrap().weight_decay(0.1).unwrap());
        assert!((f64::from(w) - 0.70158627).abs() < 1e-6, "{w}");
        assert!((b - 0.2).abs() < 1e-6, "{b}");
        let (w, b) = run(Adam::adamw(0.1, 0.1).unwrap());
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
