//! Learning-rate schedules: the learning rate as a pure function of the step or epoch
//! count, so a checkpoint only needs the counters.
//!
//! A fixed learning rate that is too large makes gradient descent jump across a valley
//! again and again (a "ping-pong") or diverge; letting it decay over the
//! iterations shrinks the jumps until they settle.

use crate::error::{Error, Result};
use crate::optim::OptimizerState;
use crate::tensor::{Elem, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the learning rate decays with the counter `t` (steps or epochs, see [`DecayUnit`]);
/// `lr0` is the optimizer's base rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Decay {
    /// `lr = lr0`.
    Constant,
    /// `lr = lr0 · gamma^⌊t / every⌋` (PyTorch `StepLR`).
    Step {
        /// Counter units between decays (at least 1).
        every: u64,
        /// Factor per decay, in `(0, 1]`.
        gamma: Elem,
    },
    /// `lr = lr0 · gamma^t` (PyTorch `ExponentialLR`).
    Exponential {
        /// Factor per unit, in `(0, 1]`.
        gamma: Elem,
    },
    /// `lr = lr0 / (1 + k·t)` (inverse-time or "1/t" decay).
    InverseTime {
        /// Decay rate, `>= 0`.
        k: Elem,
    },
    /// `lr = min + (lr0 − min)·(1 + cos(π·t/period))/2` for `t <= period`, then `min`
    /// (PyTorch `CosineAnnealingLR` without restarts), with `min = lr0 · min_factor`.
    Cosine {
        /// Units over which the rate falls from `lr0` to its minimum (at least 1).
        period: u64,
        /// The final rate as a fraction of `lr0`, in `[0, 1]`.
        min_factor: Elem,
    },
}

/// What the counter of a [`Schedule`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecayUnit {
    /// Optimizer steps (mini-batches).
    Step,
    /// Completed epochs.
    Epoch,
}

/// A [`Decay`] counted in steps or epochs.
///
/// # Examples
/// ```
/// use tapegrad::{Decay, DecayUnit, Schedule};
/// let s = Schedule::new(Decay::InverseTime { k: 0.5 }, DecayUnit::Step)?;
/// assert_eq!(s.lr(0.1, 0, 0), 0.1);
/// assert_eq!(s.lr(0.1, 2, 0), 0.05); // 0.1 / (1 + 0.5·2)
/// let s = Schedule::new(Decay::Step { every: 10, gamma: 0.1 }, DecayUnit::Epoch)?;
/// assert!((s.lr(1.0, 500, 25) - 0.01).abs() < 1e-7);
/// assert!(Schedule::new(Decay::Exponential { gamma: 1.5 }, DecayUnit::Step).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    decay: Decay,
    unit: DecayUnit,
}

impl Default for Schedule {
    /// A constant learning rate.
    fn default() -> Self {
        Schedule {
            decay: Decay::Constant,
            unit: DecayUnit::Step,
        }
    }
}

impl Schedule {
    /// A schedule of `decay` counted in `unit`s.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a factor is outside its range (`gamma ∈ (0, 1]`,
    /// `k >= 0`, `min_factor ∈ [0, 1]`) or not finite, or `every`/`period` is 0.
    pub fn new(decay: Decay, unit: DecayUnit) -> Result<Self> {
        let bad = |message: String| {
            Err(Error::InvalidArgument {
                op: "schedule",
                message,
            })
        };
        match decay {
            Decay::Constant => {}
            Decay::Step { every, gamma } => {
                if every == 0 {
                    return bad("step decay needs every >= 1, got 0".into());
                }
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return bad(format!("gamma must be in (0, 1], got {gamma}"));
                }
            }
            Decay::Exponential { gamma } => {
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return bad(format!("gamma must be in (0, 1], got {gamma}"));
                }
            }
            Decay::InverseTime { k } => {
                if !(k >= 0.0 && k.is_finite()) {
                    return bad(format!("k must be finite and >= 0, got {k}"));
                }
            }
            Decay::Cosine { period, min_factor } => {
                if period == 0 {
                    return bad("cosine decay needs period >= 1, got 0".into());
                }
                if !(0.0..=1.0).contains(&min_factor) {
                    return bad(format!("min_factor must be in [0, 1], got {min_factor}"));
                }
            }
        }
        Ok(Schedule { decay, unit })
    }

    /// The decay rule.
    pub fn decay(&self) -> Decay {
        self.decay
    }

    /// What the counter counts.
    pub fn unit(&self) -> DecayUnit {
        self.unit
    }

    /// The learning rate after `step` optimizer steps and `epoch` completed epochs, for
    /// base rate `base`.
    pub fn lr(&self, base: Elem, step: u64, epoch: u64) -> Elem {
        let t = match self.unit {
            DecayUnit::Step => step,
            DecayUnit::Epoch => epoch,
        };
        let tf = t as f64;
        let factor = match self.decay {
            Decay::Constant => 1.0,
            Decay::Step { every, gamma } => f64::from(gamma).powf((t / every) as f64),
            Decay::Exponential { gamma } => f64::from(gamma).powf(tf),
            Decay::InverseTime { k } => 1.0 / (1.0 + f64::from(k) * tf),
            Decay::Cosine { period, min_factor } => {
                let m = f64::from(min_factor);
                let progress = tf.min(period as f64) / period as f64;
                m + (1.0 - m) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
            }
        };
        (f64::from(base) * factor) as Elem
    }
}

/// The learning-rate bookkeeping every optimizer keeps: the base rate, the schedule, and the
/// step and epoch counters the schedule reads. An [`Optimizer`](crate::Optimizer) exposes it
/// through `clock()`, which gives it `lr`, `set_base_lr`, `end_epoch` and `steps`.
///
/// # Examples
/// ```
/// use tapegrad::{Clock, Decay, DecayUnit, Schedule};
/// let schedule = Schedule::new(Decay::Exponential { gamma: 0.5 }, DecayUnit::Step)?;
/// let clock = Clock::new("my_optimizer", 0.1)?.with_schedule(schedule);
/// assert_eq!((clock.lr(), clock.steps()), (0.1, 0));
/// assert!(Clock::new("my_optimizer", 0.0).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Clock {
    op: &'static str,
    pub(crate) base_lr: Elem,
    pub(crate) schedule: Schedule,
    pub(crate) steps: u64,
    pub(crate) epochs: u64,
}

impl Clock {
    /// A clock at step 0 for optimizer `op` (named in errors) with base rate `lr` and a
    /// constant schedule.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `> 0`.
    pub fn new(op: &'static str, lr: Elem) -> Result<Self> {
        check_lr(op, lr)?;
        Ok(Clock {
            op,
            base_lr: lr,
            schedule: Schedule::default(),
            steps: 0,
            epochs: 0,
        })
    }

    /// The same clock with `schedule`.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The rate of the next step: the schedule applied to the base rate at these counters.
    pub fn lr(&self) -> Elem {
        self.schedule.lr(self.base_lr, self.steps, self.epochs)
    }

    /// The base rate.
    pub fn base_lr(&self) -> Elem {
        self.base_lr
    }

    /// Steps counted so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Epochs counted so far.
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    /// Counts one more step (an optimizer calls this after each update it applies).
    pub fn tick(&mut self) {
        self.steps += 1;
    }

    /// Changes the base rate.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `> 0`.
    pub fn set_base_lr(&mut self, lr: Elem) -> Result<()> {
        check_lr(self.op, lr)?;
        self.base_lr = lr;
        Ok(())
    }

    /// The optimizer state with these counters and the given per-parameter buffers.
    pub(crate) fn state(&self, buffers: BTreeMap<String, Vec<Tensor>>) -> OptimizerState {
        OptimizerState {
            kind: self.op.into(),
            base_lr: self.base_lr,
            steps: self.steps,
            epochs: self.epochs,
            buffers,
        }
    }

    /// Takes the counters and base rate from `state` after checking it was written by this
    /// optimizer with `per_param` buffers per parameter; returns the buffers.
    pub(crate) fn load(
        &mut self,
        state: OptimizerState,
        per_param: usize,
    ) -> Result<BTreeMap<String, Vec<Tensor>>> {
        state.check(self.op, per_param)?;
        check_lr(self.op, state.base_lr)?;
        for (what, count) in [("steps", state.steps), ("epochs", state.epochs)] {
            if count > MAX_COUNT {
                return Err(Error::InvalidArgument {
                    op: self.op,
                    message: format!(
                        "optimizer state: expected at most {MAX_COUNT} {what}, found {count}"
                    ),
                });
            }
        }
        let buffers = state
            .buffers
            .iter()
            .flat_map(|(n, b)| b.iter().map(move |b| (n, b)));
        for (name, buffer) in buffers {
            if let Some((i, v)) = buffer.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::InvalidArgument {
                    op: self.op,
                    message: format!(
                        "optimizer state: buffer of \"{name}\" element {i}: expected a finite \
                         value, found {v}"
                    ),
                });
            }
        }
        self.base_lr = state.base_lr;
        self.steps = state.steps;
        self.epochs = state.epochs;
        Ok(state.buffers)
    }
}

/// The largest step or epoch count a loaded optimizer state may hold: 2⁵³, the last count
/// that `f64` (in which schedules and bias corrections are computed) still tells from the
/// next, and far beyond any real run.
const MAX_COUNT: u64 = 1 << 53;

/// Checks that a learning rate is finite and positive.
pub(crate) fn check_lr(op: &'static str, lr: Elem) -> Result<()> {
    if lr > 0.0 && lr.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            message: format!("learning rate must be finite and > 0, got {lr}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_step(decay: Decay) -> Schedule {
        Schedule::new(decay, DecayUnit::Step).unwrap()
    }

    #[test]
    fn formulas_at_hand_checked_points() {
        let close = |a: Elem, b: Elem| (a - b).abs() < 1e-7;
        assert_eq!(per_step(Decay::Constant).lr(0.3, 1000, 9), 0.3);
        let step = per_step(Decay::Step {
            every: 3,
            gamma: 0.5,
        });
        assert_eq!(
            [0, 2, 3, 5, 6].map(|t| step.lr(1.0, t, 0)),
            [1.0, 1.0, 0.5, 0.5, 0.25]
        );
        let exp = per_step(Decay::Exponential { gamma: 0.9 });
        assert!(close(exp.lr(1.0, 2, 0), 0.81));
        let inv = per_step(Decay::InverseTime { k: 0.1 });
        assert!(close(inv.lr(1.0, 10, 0), 0.5));
        let cos = per_step(Decay::Cosine {
            period: 10,
            min_factor: 0.1,
        });
        assert!(close(cos.lr(1.0, 0, 0), 1.0));
        assert!(close(cos.lr(1.0, 5, 0), 0.55)); // halfway: (1 + 0.1)/2
        assert!(close(cos.lr(1.0, 10, 0), 0.1));
        assert!(close(cos.lr(1.0, 99, 0), 0.1));
        let per_epoch = Schedule::new(Decay::Exponential { gamma: 0.5 }, DecayUnit::Epoch).unwrap();
        assert_eq!(per_epoch.lr(1.0, 12345, 2), 0.25);
    }

    #[test]
    fn invalid_factors_are_errors() {
        let bad = [
            Decay::Step {
                every: 0,
                gamma: 0.5,
            },
            Decay::Step {
                every: 1,
                gamma: 0.0,
            },
            Decay::Exponential { gamma: Elem::NAN },
            Decay::InverseTime { k: -1.0 },
            Decay::Cosine {
                period: 0,
                min_factor: 0.0,
            },
            Decay::Cosine {
                period: 5,
                min_factor: 2.0,
            },
        ];
        for decay in bad {
            let err = Schedule::new(decay, DecayUnit::Step)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("schedule: "), "{err}");
        }
        let err = Schedule::new(Decay::InverseTime { k: -1.0 }, DecayUnit::Step).unwrap_err();
        assert_eq!(
            err.to_string(),
            "schedule: k must be finite and >= 0, got -1"
        );
    }
}
