//! Optimizers (GD/SGD with momentum, Adam/AdamW), learning-rate schedules, L2
//! regularization, and the divergence guard every optimizer runs before it changes anything.

mod adam;
mod l2;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use l2::l2_penalty;
pub use schedule::{Clock, Decay, DecayUnit, Schedule};
pub use sgd::Sgd;

use crate::autograd::grad::Grad;
use crate::autograd::gradients::Gradients;
use crate::error::{Error, Result};
use crate::nn::{Module, Param};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an optimizer must remember to go on exactly where it stopped: the counters its
/// schedule reads, the base learning rate (which [`fit`](crate::fit) may have halved), and
/// per-parameter buffers keyed by parameter name — the momentum buffer `[b]` of [`Sgd`], the
/// moments `[m, v]` of [`Adam`].
///
/// Hyperparameters (momentum, betas, weight decay, the schedule's rule) are not part of the
/// state: they come from the code that builds the optimizer, as in PyTorch's
/// `optimizer.load_state_dict`. Checkpoints store this state (see
/// [`Checkpoint::with_training`](crate::Checkpoint::with_training)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Which optimizer wrote it: `"sgd"` or `"adam"`.
    pub kind: String,
    /// The base learning rate.
    pub base_lr: f32,
    /// Steps taken.
    pub steps: u64,
    /// Epochs ended ([`Optimizer::end_epoch`] calls).
    pub epochs: u64,
    /// Buffers per parameter name, in the order the optimizer documents.
    pub buffers: BTreeMap<String, Vec<Tensor>>,
}

impl OptimizerState {
    /// Checks that the state was written by optimizer `kind` and that every entry holds
    /// `per_param` buffers.
    fn check(&self, kind: &'static str, per_param: usize) -> Result<()> {
        if self.kind != kind {
            return invalid(
                "optimizer state",
                format!("expected the state of \"{kind}\", found \"{}\"", self.kind),
            );
        }
        if let Some((name, b)) = self.buffers.iter().find(|(_, b)| b.len() != per_param) {
            return invalid(
                "optimizer state",
                format!(
                    "{kind}: expected {per_param} buffers for \"{name}\", found {}",
                    b.len()
                ),
            );
        }
        Ok(())
    }
}

/// An update rule: takes the model (`&mut`) and the gradients of one step.
///
/// Every built-in implementation checks the whole step before it changes anything, and
/// refuses it with [`Error::Diverged`], leaving the parameters, the optimizer state and the
/// step count bit for bit unchanged, when a gradient is NaN or infinite or when the update
/// could make a parameter or an optimizer buffer NaN or infinite (for instance a learning
/// rate so large that `lr·g` overflows). A parameter that is already non-finite before the
/// step is not the update's doing: its gradients are then not finite either, and the step is
/// refused for them.
pub trait Optimizer: Send {
    /// Updates every parameter of `model` that has a gradient in `grads`.
    ///
    /// # Errors
    /// [`Error::Diverged`] when a gradient is not finite or the update would make a value
    /// non-finite; nothing is changed then.
    fn step(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()>;

    /// The optimizer's learning-rate bookkeeping: base rate, schedule and counters.
    fn clock(&self) -> &Clock;

    /// The same, to change.
    fn clock_mut(&mut self) -> &mut Clock;

    /// The learning rate the next step will use (the base rate after the schedule).
    fn lr(&self) -> f32 {
        self.clock().lr()
    }

    /// The base learning rate the schedule starts from.
    fn base_lr(&self) -> f32 {
        self.clock().base_lr()
    }

    /// Changes the base learning rate (e.g. halving it after a divergence).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `> 0`.
    fn set_base_lr(&mut self, lr: f32) -> Result<()> {
        self.clock_mut().set_base_lr(lr)
    }

    /// Advances the epoch counter of per-epoch schedules (call once after each epoch).
    fn end_epoch(&mut self) {
        self.clock_mut().epochs += 1;
    }

    /// Number of steps taken so far.
    fn steps(&self) -> u64 {
        self.clock().steps()
    }

    /// The state to save in a checkpoint (see [`OptimizerState`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] from optimizers that cannot save their state (the
    /// default).
    fn state(&self) -> Result<OptimizerState> {
        invalid(
            "optimizer state",
            "expected an optimizer that saves its state, found one that does not".into(),
        )
    }

    /// Puts back a state taken by [`Optimizer::state`] from an optimizer of the same kind.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `state` comes from another kind of optimizer, holds
    /// the wrong number of buffers per parameter, a buffer with a non-finite value, an
    /// invalid learning rate, or a step or epoch count beyond 2⁵³; the optimizer is
    /// unchanged then.
    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        let _ = state;
        invalid(
            "optimizer state",
            "expected an optimizer that loads its state, found one that does not".into(),
        )
    }
}

/// `value` when it is finite and `>= 0`, else an [`Error::InvalidArgument`] of optimizer `op`
/// naming the hyperparameter `name` and the value.
fn non_negative(op: &'static str, name: &str, value: f32) -> Result<f32> {
    if value >= 0.0 && value.is_finite() {
        Ok(value)
    } else {
        invalid(op, format!("{name} must be finite and >= 0, got {value}"))
    }
}

/// `Err(Error::InvalidArgument)` for optimizer `op`.
fn invalid<T>(op: &'static str, message: String) -> Result<T> {
    Err(Error::InvalidArgument { op, message })
}

/// The per-parameter buffer of `name`, made by `make` on the parameter's first step (then
/// `true` is returned with it). Looks up before it inserts, so a step allocates no key.
fn buffer<'a, T>(
    buffers: &'a mut BTreeMap<String, T>,
    name: &str,
    make: impl FnOnce() -> T,
) -> (&'a mut T, bool) {
    let first = !buffers.contains_key(name);
    if first {
        buffers.insert(name.to_string(), make());
    }
    (buffers.get_mut(name).expect("inserted above"), first)
}

/// Adding a change smaller than this (2¹⁰² ≈ 5.1e30) to a finite `f32` always gives a finite
/// `f32`: a sum rounds to infinity only from `f32::MAX` plus half its spacing, `2¹²⁸ − 2¹⁰³`.
const SAFE_CHANGE: f64 = (1u128 << 102) as f64;

/// Half of `f32::MAX`: a bound on a new value under it leaves room for the rounding of the
/// arithmetic that computes it.
const SAFE_VALUE: f64 = f32::MAX as f64 / 2.0;

/// The divergence guard every optimizer runs before it changes anything. It refuses the step
/// with [`Error::Diverged`] (parameters, buffers and counters untouched) when a gradient is
/// not finite, or when `update(name, param, grad, bound)` — given a bound on the gradient's
/// largest absolute value — finds that the update could make a parameter or a buffer
/// non-finite, and says why.
fn guard<'g>(
    op: &'static str,
    step: u64,
    model: &dyn Module,
    grads: &'g Gradients,
    mut update: impl FnMut(&str, &Param, &'g Grad, f64) -> std::result::Result<(), String>,
) -> Result<()> {
    let mut refused = None;
    model.visit_params(&mut |name, param| {
        if refused.is_some() {
            return;
        }
        let Some(grad) = grads.param_grad(param) else {
            return;
        };
        refused = match grad.finite_bound() {
            None => Some(format!("the gradient of \"{name}\" is not finite")),
            Some(bound) => update(name, param, grad, bound).err(),
        };
    });
    match refused {
        None => Ok(()),
        Some(what) => Err(Error::Diverged { op, step, what }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Linear, Mode};
    use crate::{Tape, tensor};

    /// A weight of `w` and a bias of 0 under the loss `L = Σ x·w + b`: `∂L/∂w = x`.
    fn layer(w: f32) -> Linear {
        let weight = tensor::from_vec(vec![w; 4], &[2, 2]).unwrap();
        Linear::from_parts(weight, Some(tensor::zeros(&[2]))).unwrap()
    }

    /// One step of `opt` on `model` with input `x`.
    fn step(opt: &mut dyn Optimizer, model: &mut Linear, x: f32) -> Result<()> {
        let tape = Tape::new();
        let input = tape.constant(tensor::from_vec(vec![x; 2], &[1, 2]).unwrap());
        let grads = model.forward(input, Mode::Train).sum().backward();
        drop(tape);
        opt.step(model, &grads)
    }

    fn values(model: &Linear) -> Vec<u32> {
        let mut bits = Vec::new();
        model.visit_params(&mut |_, p| bits.extend(p.value().iter().map(|v| v.to_bits())));
        bits
    }

    /// Steps `opt` with input `x` and checks that the step is refused with `words` in its
    /// message, leaving parameters and optimizer state bit for bit as they were.
    fn assert_refused(opt: &mut dyn Optimizer, model: &mut Linear, x: f32, words: &str) {
        let (before, state) = (values(model), opt.state().unwrap());
        let err = step(opt, model, x).unwrap_err().to_string();
        assert!(err.contains(words), "{err}");
        assert!(err.contains("the step changed nothing"), "{err}");
        assert_eq!(values(model), before);
        assert_eq!(opt.state().unwrap(), state);
    }

    #[test]
    fn sgd_refuses_updates_that_overflow_and_takes_large_finite_ones() {
        // lr·g = 1e30·100 = 1e32: beyond 2¹⁰², what a finite f32 can take without overflow
        let mut sgd = Sgd::new(1e30).unwrap();
        let mut model = layer(1.0);
        assert_refused(
            &mut sgd,
            &mut model,
            100.0,
            "the update of \"weight\" could reach 1.000e32",
        );
        // lr·g = 5e29 keeps every value finite, so it is taken (however unwise)
        step(&mut sgd, &mut model, 0.5).unwrap();
        assert!(
            values(&model)
                .iter()
                .all(|b| f32::from_bits(*b).is_finite())
        );

        // momentum: the buffer grows past f32::MAX / 2 (0.9·3e38 + 3e38)
        let mut momentum = Sgd::new(1.0).unwrap().momentum(0.9).unwrap();
        let mut model = layer(1.0);
        step(&mut momentum, &mut model, 3e38).unwrap_err(); // lr·g alone overflows
        let mut model = layer(0.0);
        let mut tiny = Sgd::new(1e-30).unwrap().momentum(0.9).unwrap();
        step(&mut tiny, &mut model, 1e38).unwrap();
        assert_refused(
            &mut tiny,
            &mut model,
            1e38,
            "momentum buffer up to 1.900e38",
        );
    }

    #[test]
    fn sgd_reads_the_weights_when_decay_could_grow_them() {
        // lr·wd = 10 > 1: θ − 10·θ grows |θ| ninefold, fine for 1, not for 3e37
        let sgd = || {
            (Sgd::new(10.0)
                .unwrap()
                .weight_decay(1.0)
                .unwrap()
                .momentum(0.5))
            .unwrap()
            .nesterov()
            .unwrap()
        };
        step(&mut sgd(), &mut layer(1.0), 0.1).unwrap();
        assert_refused(
            &mut sgd(),
            &mut layer(3e37),
            0.1,
            "the update of \"weight\"",
        );
    }

    #[test]
    fn adam_refuses_updates_that_overflow() {
        // the first step moves each weight by about lr: −1e38 − f32::MAX overflows
        let mut adam = Adam::new(f32::MAX).unwrap();
        assert_refused(
            &mut adam,
            &mut layer(-1e38),
            1.0,
            "would make a value not finite",
        );
        // a second moment g² that overflows, with a modest learning rate
        let mut model = layer(1.0);
        let mut adam = Adam::new(0.1).unwrap();
        step(&mut adam, &mut model, 1.0).unwrap();
        assert_refused(
            &mut adam,
            &mut model,
            1e22,
            "would make a second moment not finite",
        );
    }

    #[test]
    fn loaded_counters_and_buffers_are_checked_and_huge_step_counts_stay_finite() {
        let mut adam = Adam::new(0.1).unwrap();
        let mut model = layer(1.0);
        step(&mut adam, &mut model, 1.0).unwrap();
        let state = adam.state().unwrap();

        // u32::MAX steps done: β^t underflows to 0 and the correction to 1, no overflow
        let mut resumed = Adam::new(0.1).unwrap();
        resumed
            .load_state(OptimizerState {
                steps: u64::from(u32::MAX),
                ..state.clone()
            })
            .unwrap();
        let before = model.weight().value()[[0, 0]];
        step(&mut resumed, &mut model, 1.0).unwrap();
        let after = model.weight().value()[[0, 0]];
        // bias corrections of 1: m/√v = 0.19/√0.001999 ≈ 4.25, so a step of about 0.425
        assert!((before - after - 0.425).abs() < 1e-3, "{before} → {after}");

        let err = (Adam::new(0.1).unwrap())
            .load_state(OptimizerState {
                steps: 1 << 60,
                ..state.clone()
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected at most 9007199254740992 steps, found 1152921504606846976"),
            "{err}"
        );
        // a state of another model's shapes is refused at the step, not a panic
        let mut other = state.clone();
        for b in other.buffers.get_mut("weight").unwrap() {
            *b = tensor::zeros(&[3, 2]);
        }
        let mut wrong = Adam::new(0.1).unwrap();
        wrong.load_state(other).unwrap();
        assert_refused(
            &mut wrong,
            &mut model,
            1.0,
            "the moments of \"weight\" have shapes [3, 2]",
        );
        let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        step(&mut sgd, &mut model, 1.0).unwrap();
        let mut other = sgd.state().unwrap();
        other.buffers.get_mut("bias").unwrap()[0] = tensor::zeros(&[5]);
        let mut wrong = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        wrong.load_state(other).unwrap();
        assert_refused(
            &mut wrong,
            &mut model,
            1.0,
            "the momentum buffer of \"bias\" has shape [5]",
        );

        let mut nan = state.clone();
        nan.buffers.get_mut("weight").unwrap()[1][[0, 1]] = f32::NAN;
        let err = Adam::new(0.1)
            .unwrap()
            .load_state(nan)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("buffer of \"weight\" element 1: expected a finite value, found NaN"),
            "{err}"
        );
    }
}
