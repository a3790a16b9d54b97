//! Optimizers (GD/SGD with momentum, Adam/AdamW), learning-rate schedules, L2
//! regularization, and the divergence guard every optimizer runs before it changes anything.

mod adam;
mod l2;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use l2::{decays_by_default, l2_penalty};
pub use schedule::{Clock, Decay, DecayUnit, Schedule};
pub use sgd::Sgd;

use crate::autograd::gradients::Gradients;
use crate::error::{Error, Result};
use crate::nn::Module;
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
/// Every implementation checks all gradients first and refuses a step with a NaN or
/// infinite one, returning [`Error::Diverged`] with the parameters, the optimizer state
/// and the step count unchanged.
pub trait Optimizer: Send {
    /// Updates every parameter of `model` that has a gradient in `grads`.
    ///
    /// # Errors
    /// [`Error::Diverged`] when a gradient is not finite; nothing is changed then.
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
    /// the wrong number of buffers per parameter or an invalid learning rate; the optimizer
    /// is unchanged then.
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

/// Refuses a step whose gradients are not all finite.
fn check_finite(op: &'static str, step: u64, model: &dyn Module, grads: &Gradients) -> Result<()> {
    let mut bad = None;
    model.visit_params(&mut |name, param| {
        if bad.is_none() && grads.param_grad(param).is_some_and(|g| !g.is_finite()) {
            bad = Some(format!("the gradient of \"{name}\" is not finite"));
        }
    });
    match bad {
        None => Ok(()),
        Some(what) => Err(Error::Diverged { op, step, what }),
    }
}
