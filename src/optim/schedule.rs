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
///
/// # Examples
/// ```
/// use tapegrad::{Decay, DecayUnit, Schedule};
/// let milestones = Decay::MultiStep { milestones: vec![2, 5], gamma: 0.1 };
/// let s = Schedule::new(milestones, DecayUnit::Epoch)?;
/// assert_eq!(s.lr(1.0, 0, 1), 1.0);
/// assert!((s.lr(1.0, 0, 2) - 0.1).abs() < 1e-7);
/// assert!((s.lr(1.0, 0, 5) - 0.01).abs() < 1e-7);
/// let cosine = Schedule::new(Decay::Cosine { period: 10, min_factor: 0.0 }, DecayUnit::Step)?;
/// assert!((cosine.lr(1.0, 5, 0) - 0.5).abs() < 1e-6); // halfway down
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// `lr = lr0 · gamma^(number of milestones <= t)` (PyTorch `MultiStepLR`).
    MultiStep {
        /// The counts at which the rate is multiplied by `gamma`, increasing.
        milestones: Vec<u64>,
        /// Factor per milestone, in `(0, 1]`.
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
    /// `lr = min + (lr0 − min)·(1 + cos(π·t/period))/2`, with `min = lr0 · min_factor`:
    /// PyTorch's `CosineAnnealingLR` (`T_max = period`, `eta_min = min`) in its closed form,
    /// which goes on past the period, back up to `lr0` at `2·period`, and so on.
    Cosine {
        /// Units over which the rate falls from `lr0` to its minimum (at least 1).
        period: u64,
        /// The final rate as a fraction of `lr0`, in `[0, 1]`.
        min_factor: Elem,
    },
}

/// Where a reduction of the learning rate on a plateau stands (PyTorch's
/// `ReduceLROnPlateau.state_dict()` counters), kept by the optimizer so that a checkpoint
/// carries it: see [`Plateau`](crate::Plateau).
///
/// # Examples
/// ```
/// use tapegrad::{Optimizer, PlateauState, Sgd};
/// let mut sgd = Sgd::new(0.1)?;
/// let where_it_stands = PlateauState { best: 0.31, bad_epochs: 2, cooldown_left: 0 };
/// sgd.set_plateau(Some(where_it_stands));
/// // saved with the optimizer's state, so a resumed run goes on counting
/// assert_eq!(sgd.state()?.plateau, Some(where_it_stands));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// The best value of the watched metric so far.
    pub best: f64,
    /// Epochs since it last improved.
    pub bad_epochs: u64,
    /// Epochs of cooldown left after a reduction.
    pub cooldown_left: u64,
}

/// What the counter of a [`Schedule`] counts.
///
/// # Examples
/// ```
/// use tapegrad::{Decay, DecayUnit, Schedule};
/// let decay = Decay::Exponential { gamma: 0.5 };
/// let per_step = Schedule::new(decay.clone(), DecayUnit::Step)?;
/// let per_epoch = Schedule::new(decay, DecayUnit::Epoch)?;
/// // after 3 steps of the first epoch
/// assert!((per_step.lr(1.0, 3, 0) - 0.125).abs() < 1e-7);
/// assert_eq!(per_epoch.lr(1.0, 3, 0), 1.0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecayUnit {
    /// Optimizer steps (mini-batches).
    Step,
    /// Completed epochs.
    Epoch,
}

/// A [`Decay`] counted in steps or epochs, optionally after a linear warm-up
/// ([`Schedule::warmup`]).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    decay: Decay,
    unit: DecayUnit,
    /// Linear warm-up: (counter units, start factor).
    warmup: Option<(u64, Elem)>,
    /// Whether the decay starts after the warm-up ([`Schedule::warmup_then`]) rather than
    /// with it ([`Schedule::warmup`]).
    #[serde(default)]
    decay_after_warmup: bool,
}

impl Default for Schedule {
    /// A constant learning rate.
    fn default() -> Self {
        Schedule {
            decay: Decay::Constant,
            unit: DecayUnit::Step,
            warmup: None,
            decay_after_warmup: false,
        }
    }
}

impl Schedule {
    /// A schedule of `decay` counted in `unit`s.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a factor is outside its range (`gamma ∈ (0, 1]`,
    /// `k >= 0`, `min_factor ∈ [0, 1]`) or not finite, or `every`/`period` is 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Decay, DecayUnit, Schedule};
    /// let s = Schedule::new(Decay::Step { every: 3, gamma: 0.5 }, DecayUnit::Step)?;
    /// assert_eq!(s.lr(0.2, 2, 0), 0.2);
    /// assert!((s.lr(0.2, 3, 0) - 0.1).abs() < 1e-7);
    /// assert!(Schedule::new(Decay::Step { every: 0, gamma: 0.5 }, DecayUnit::Step).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(decay: Decay, unit: DecayUnit) -> Result<Self> {
        let bad = |message: String| {
            Err(Error::InvalidArgument {
                op: "schedule",
                message,
            })
        };
        match &decay {
            Decay::Constant => {}
            &Decay::MultiStep {
                ref milestones,
                gamma,
            } => {
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return bad(format!(
                        "multi-step decay needs increasing milestones, got {milestones:?}"
                    ));
                }
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return bad(format!("gamma must be in (0, 1], got {gamma}"));
                }
            }
            &Decay::Step { every, gamma } => {
                if every == 0 {
                    return bad("step decay needs every >= 1, got 0".into());
                }
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return bad(format!("gamma must be in (0, 1], got {gamma}"));
                }
            }
            &Decay::Exponential { gamma } => {
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return bad(format!("gamma must be in (0, 1], got {gamma}"));
                }
            }
            &Decay::InverseTime { k } => {
                if !(k >= 0.0 && k.is_finite()) {
                    return bad(format!("k must be finite and >= 0, got {k}"));
                }
            }
            &Decay::Cosine { period, min_factor } => {
                if period == 0 {
                    return bad("cosine decay needs period >= 1, got 0".into());
                }
                if !(0.0..=1.0).contains(&min_factor) {
                    return bad(format!("min_factor must be in [0, 1], got {min_factor}"));
                }
            }
        }
        Ok(Schedule {
            decay,
            unit,
            warmup: None,
            decay_after_warmup: false,
        })
    }

    /// Adds a linear warm-up over the first `units` counts: the decay's rate is multiplied by
    /// `start + (1 − start)·min(t, units)/units`, from `start_factor` at `t = 0` up to 1 at
    /// `t = units`. This is PyTorch's `LinearLR(start_factor, end_factor=1, total_iters=units)`
    /// chained with the decay (`ChainedScheduler`), which multiplies their factors, with one
    /// exception: PyTorch's `CosineAnnealingLR` with `eta_min > 0` (here `min_factor > 0`)
    /// updates its rate from the last one, warm-up included, so during the warm-up its rates
    /// differ from the product by up to about 1.5% (equal again once the warm-up is over);
    /// with `min_factor = 0` and every other decay they are the same.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Decay, DecayUnit, Schedule};
    /// let s = Schedule::new(Decay::Constant, DecayUnit::Step)?.warmup(4, 0.2)?;
    /// assert_eq!([0, 2, 4, 9].map(|t| s.lr(1.0, t, 0)), [0.2, 0.6, 1.0, 1.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `units` is 0 or `start_factor` is not in `(0, 1]`.
    pub fn warmup(mut self, units: u64, start_factor: Elem) -> Result<Self> {
        let bad = |message: String| {
            Err(Error::InvalidArgument {
                op: "schedule",
                message,
            })
        };
        if units == 0 {
            return bad("warm-up needs at least 1 unit, got 0".into());
        }
        if !(start_factor > 0.0 && start_factor <= 1.0) {
            return bad(format!(
                "warm-up start_factor must be in (0, 1], got {start_factor}"
            ));
        }
        self.warmup = Some((units, start_factor));
        self.decay_after_warmup = false;
        Ok(self)
    }

    /// A linear warm-up over the first `units` counts, from `start_factor` up to 1, and
    /// then the decay, counted from the warm-up's end: the rate is
    /// `start + (1 − start)·t/units` for `t < units`, then the decay's at `t − units`. This is
    /// PyTorch's `SequentialLR([LinearLR(start_factor, total_iters=units), decay],
    /// milestones=[units])`, the usual "warm-up, then cosine over the rest" (give the cosine
    /// the period that remains). [`Schedule::warmup`] instead runs the decay from `t = 0`
    /// under the warm-up.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Decay, DecayUnit, Schedule};
    /// // 2 epochs of warm-up from 0.5, then a cosine over the 4 epochs left, to 0
    /// let cosine = Decay::Cosine { period: 4, min_factor: 0.0 };
    /// let s = Schedule::new(cosine, DecayUnit::Epoch)?.warmup_then(2, 0.5)?;
    /// let rates = [0, 1, 2, 3, 4, 5, 6].map(|epoch| s.lr(1.0, 0, epoch));
    /// let expected = [0.5, 0.75, 1.0, 0.8535534, 0.5, 0.14644662, 0.0];
    /// assert!(rates.iter().zip(expected).all(|(r, e)| (r - e).abs() < 1e-6), "{rates:?}");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Schedule::warmup`].
    pub fn warmup_then(self, units: u64, start_factor: Elem) -> Result<Self> {
        let mut schedule = self.warmup(units, start_factor)?;
        schedule.decay_after_warmup = true;
        Ok(schedule)
    }

    /// The decay rule.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Decay, DecayUnit, Schedule};
    /// let s = Schedule::new(Decay::InverseTime { k: 0.5 }, DecayUnit::Step)?;
    /// assert_eq!(s.decay(), &Decay::InverseTime { k: 0.5 });
    /// assert_eq!(Schedule::default().decay(), &Decay::Constant);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn decay(&self) -> &Decay {
        &self.decay
    }

    /// What the counter counts.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Decay, DecayUnit, Schedule};
    /// let s = Schedule::new(Decay::Constant, DecayUnit::Epoch)?;
    /// assert_eq!(s.unit(), DecayUnit::Epoch);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn unit(&self) -> DecayUnit {
        self.unit
    }

    /// The learning rate after `step` optimizer steps and `epoch` completed epochs, for
    /// base rate `base`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Decay, DecayUnit, Schedule};
    /// let s = Schedule::new(Decay::Exponential { gamma: 0.9 }, DecayUnit::Epoch)?;
    /// assert_eq!(s.lr(0.1, 1000, 0), 0.1); // steps do not count for a per-epoch schedule
    /// assert!((s.lr(0.1, 1000, 2) - 0.081).abs() < 1e-7); // 0.1·0.9²
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn lr(&self, base: Elem, step: u64, epoch: u64) -> Elem {
        let t = match self.unit {
            DecayUnit::Step => step,
            DecayUnit::Epoch => epoch,
        };
        let decay_t = match (self.warmup, self.decay_after_warmup) {
            (Some((units, _)), true) => t.saturating_sub(units),
            _ => t,
        };
        let tf = decay_t as f64;
        let factor = match self.decay {
            Decay::Constant => 1.0,
            Decay::Step { every, gamma } => f64::from(gamma).powf((decay_t / every) as f64),
            Decay::MultiStep {
                ref milestones,
                gamma,
            } => {
                let passed = milestones.iter().filter(|&&m| m <= decay_t).count();
                f64::from(gamma).powi(passed as i32)
            }
            Decay::Exponential { gamma } => f64::from(gamma).powf(tf),
            Decay::InverseTime { k } => 1.0 / (1.0 + f64::from(k) * tf),
            Decay::Cosine { period, min_factor } => {
                let m = f64::from(min_factor);
                let progress = tf / period as f64;
                m + (1.0 - m) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
            }
        };
        let factor = match self.warmup {
            Some((units, start)) => {
                let start = f64::from(start);
                factor * (start + (1.0 - start) * t.min(units) as f64 / units as f64)
            }
            None => factor,
        };
        (f64::from(base) * factor) as Elem
    }
}

/// The learning-rate bookkeeping of an optimizer: the base rate, the schedule, and the step
/// and epoch counters the schedule reads.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
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
    pub(crate) fn new(op: &'static str, lr: Elem) -> Result<Self> {
        check_lr(op, lr)?;
        Ok(Clock {
            op,
            base_lr: lr,
            schedule: Schedule::default(),
            steps: 0,
            epochs: 0,
        })
    }

    /// The rate of the next step: the schedule applied to the base rate at these counters.
    pub(crate) fn lr(&self) -> Elem {
        self.lr_from(self.base_lr)
    }

    /// The schedule applied to base rate `base` at these counters.
    pub(crate) fn lr_from(&self, base: Elem) -> Elem {
        self.schedule.lr(base, self.steps, self.epochs)
    }

    /// Changes the base rate.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `> 0`.
    pub(crate) fn set_base_lr(&mut self, lr: Elem) -> Result<()> {
        check_lr(self.op, lr)?;
        self.base_lr = lr;
        Ok(())
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
        if let Some((name, own)) = (state.param_steps.iter()).find(|(_, own)| **own > state.steps) {
            return Err(Error::InvalidArgument {
                op: self.op,
                message: format!(
                    "optimizer state: expected at most the optimizer's {} steps for \"{name}\", \
                     found {own}",
                    state.steps
                ),
            });
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
    fn a_warm_up_before_the_decay_delays_it_and_one_under_it_does_not() {
        // torch: SequentialLR([LinearLR(0.1, total_iters=3), StepLR(2, 0.5)], [3]) against
        // ChainedScheduler([LinearLR(0.1, total_iters=3), StepLR(2, 0.5)])
        let step = Decay::Step {
            every: 2,
            gamma: 0.5,
        };
        let rates = |s: Schedule| (0..7).map(|t| s.lr(1.0, t, 0)).collect::<Vec<_>>();
        let before = rates(per_step(step.clone()).warmup_then(3, 0.1).unwrap());
        let under = rates(per_step(step).warmup(3, 0.1).unwrap());
        let close = |a: &[Elem], b: &[Elem]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(
            close(&before, &[0.1, 0.4, 0.7, 1.0, 1.0, 0.5, 0.5]),
            "{before:?}"
        );
        assert!(
            close(&under, &[0.1, 0.4, 0.35, 0.5, 0.25, 0.25, 0.125]),
            "{under:?}"
        );
        // the last call decides: warmup after warmup_then chains again
        let again = per_step(Decay::Exponential { gamma: 0.5 });
        let again = again.warmup_then(2, 0.5).unwrap().warmup(2, 0.5).unwrap();
        assert_eq!(again.lr(1.0, 2, 0), 0.25);
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
        assert!(close(cos.lr(1.0, 15, 0), 0.55)); // past the period, back up
        assert!(close(cos.lr(1.0, 20, 0), 1.0));
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
