//! [`Plateau`]: lowering the learning rate when a validation metric stops improving, as
//! PyTorch's `ReduceLROnPlateau`.

use super::{Goal, Monitor};
use crate::error::{Error, Result};
use crate::optim::PlateauState;

/// Lowers the base learning rate when the watched validation metric has not improved for
/// `patience` epochs, as PyTorch's `torch.optim.lr_scheduler.ReduceLROnPlateau(mode,
/// factor, patience, threshold, threshold_mode="rel", cooldown, min_lr)` stepped once per
/// epoch with the metric. Set it in [`FitConfig::plateau`](crate::FitConfig::plateau); its
/// counters live in the optimizer ([`PlateauState`]), so a checkpoint carries them and a
/// resumed run reduces the rate where the uninterrupted one would.
///
/// Each epoch: the value improves when it beats the best by the relative `threshold`
/// (`v < best·(1 − threshold)` for a metric to minimize, `v > best·(1 + threshold)` to
/// maximize); otherwise one more bad epoch is counted. During the `cooldown` epochs after a
/// reduction bad epochs are not counted. After more than `patience` bad epochs, the rate
/// becomes `max(lr·factor, min_lr)` (unless that changes it by no more than 1e-8). The rate
/// lowered is the optimizer's base rate, from which its schedule and its groups' rates
/// follow.
///
/// # Examples
/// ```
/// use tapegrad::{Monitor, Plateau};
/// let plateau = Plateau { patience: 1, factor: 0.5, ..Plateau::default() };
/// let mut state = None;
/// let mut lrs = Vec::new();
/// let mut lr = 1.0;
/// for loss in [1.0, 0.8, 0.8, 0.8, 0.8] {
///     let (next, new_lr) = plateau.observe(state, loss, lr);
///     (state, lr) = (Some(next), new_lr);
///     lrs.push(lr);
/// }
/// assert_eq!(lrs, [1.0, 1.0, 1.0, 0.5, 0.5]);
/// assert_eq!(plateau.monitor, Monitor::ValidLoss);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plateau {
    /// The watched validation metric and its direction. Default [`Monitor::ValidLoss`].
    pub monitor: Monitor,
    /// The factor the rate is multiplied by, in `(0, 1)`. Default 0.1.
    pub factor: f32,
    /// Bad epochs tolerated before a reduction. Default 10.
    pub patience: usize,
    /// The relative improvement that counts, `>= 0`. Default 1e-4.
    pub threshold: f64,
    /// Epochs after a reduction during which bad epochs are not counted. Default 0.
    pub cooldown: usize,
    /// The lowest rate a reduction goes to, `>= 0`. Default 0.
    pub min_lr: f32,
}

impl Default for Plateau {
    /// PyTorch's defaults, watching the validation loss.
    fn default() -> Self {
        Plateau {
            monitor: Monitor::ValidLoss,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
        }
    }
}

impl Plateau {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `factor` is not in `(0, 1)`, or `threshold` or
    /// `min_lr` is negative or not finite.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Plateau;
    /// assert!(Plateau::default().validate().is_ok());
    /// assert!(Plateau { factor: 1.0, ..Plateau::default() }.validate().is_err());
    /// assert!(Plateau { min_lr: -1e-3, ..Plateau::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| {
            Err(Error::InvalidArgument {
                op: "plateau",
                message,
            })
        };
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return bad(format!("factor must be in (0, 1), got {}", self.factor));
        }
        if !(self.threshold >= 0.0 && self.threshold.is_finite()) {
            return bad(format!(
                "threshold must be finite and >= 0, got {}",
                self.threshold
            ));
        }
        if !(self.min_lr >= 0.0 && self.min_lr.is_finite()) {
            return bad(format!(
                "min_lr must be finite and >= 0, got {}",
                self.min_lr
            ));
        }
        Ok(())
    }

    /// One epoch's step: from the counters `state` (`None` before the first epoch), the
    /// epoch's watched `value` and the current rate `lr`, the new counters and the rate for
    /// the next epoch.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Plateau;
    /// let plateau = Plateau { patience: 0, factor: 0.5, cooldown: 1, ..Plateau::default() };
    /// let (state, lr) = plateau.observe(None, 1.0, 0.1); // the first value is the best so far
    /// assert_eq!((state.best, state.bad_epochs, lr), (1.0, 0, 0.1));
    /// let (state, lr) = plateau.observe(Some(state), 1.0, lr); // no better: more than 0 bad epochs
    /// assert_eq!((state.cooldown_left, lr), (1, 0.05));
    /// let (state, lr) = plateau.observe(Some(state), 1.0, lr); // cooldown: not counted
    /// assert_eq!((state.bad_epochs, lr), (0, 0.05));
    /// ```
    pub fn observe(&self, state: Option<PlateauState>, value: f64, lr: f32) -> (PlateauState, f32) {
        let goal = self.monitor.goal();
        let mut s = state.unwrap_or(PlateauState {
            best: match goal {
                Goal::Min => f64::INFINITY,
                Goal::Max => f64::NEG_INFINITY,
            },
            bad_epochs: 0,
            cooldown_left: 0,
        });
        let better = match goal {
            Goal::Min => value < s.best * (1.0 - self.threshold),
            Goal::Max => value > s.best * (1.0 + self.threshold),
        };
        if better {
            s.best = value;
            s.bad_epochs = 0;
        } else {
            s.bad_epochs += 1;
        }
        if s.cooldown_left > 0 {
            s.cooldown_left -= 1;
            s.bad_epochs = 0;
        }
        let mut next = lr;
        if s.bad_epochs > self.patience as u64 {
            let reduced = (lr * self.factor).max(self.min_lr);
            if f64::from(lr) - f64::from(reduced) > 1e-8 && reduced > 0.0 {
                next = reduced;
            }
            s.cooldown_left = self.cooldown as u64;
            s.bad_epochs = 0;
        }
        (s, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Metric;

    fn lrs(plateau: &Plateau, metrics: &[f64]) -> Vec<f32> {
        let (mut state, mut lr) = (None, 1.0);
        (metrics.iter())
            .map(|&m| {
                let (s, next) = plateau.observe(state, m, lr);
                (state, lr) = (Some(s), next);
                lr
            })
            .collect()
    }

    /// ```text
    /// s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5,
    ///         patience=2, threshold=0.01, cooldown=1, min_lr=0.1)   # opt at lr 1.0
    /// for m in metrics: s.step(m); print(opt.param_groups[0]["lr"])
    /// ```
    #[test]
    fn matches_pytorch() {
        let plateau = Plateau {
            factor: 0.5,
            patience: 2,
            threshold: 0.01,
            cooldown: 1,
            min_lr: 0.1,
            ..Plateau::default()
        };
        let metrics = [
            1.0, 0.995, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85,
            0.85,
        ];
        let expected = [
            1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125,
            0.125,
        ];
        assert_eq!(lrs(&plateau, &metrics), expected);
        // mode="max", factor=0.1, patience=1:
        // [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.010000000000000002]
        let accuracy = Plateau {
            monitor: Monitor::metric(Metric::Accuracy),
            patience: 1,
            ..Plateau::default()
        };
        let found = lrs(&accuracy, &[0.5, 0.6, 0.6, 0.6, 0.7, 0.65, 0.69]);
        let expected = [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01];
        assert!(
            found
                .iter()
                .zip(expected)
                .all(|(f, e)| (f - e).abs() < 1e-8),
            "{found:?}"
        );
        // the floor
        let floor = Plateau {
            patience: 0,
            factor: 0.5,
            min_lr: 0.3,
            ..Plateau::default()
        };
        assert_eq!(lrs(&floor, &[1.0, 1.0, 1.0, 1.0]), [1.0, 0.5, 0.3, 0.3]);
    }

    #[test]
    fn bad_settings_are_errors() {
        let err = |p: Plateau| p.validate().unwrap_err().to_string();
        let factor = Plateau {
            factor: 1.0,
            ..Plateau::default()
        };
        assert_eq!(err(factor), "plateau: factor must be in (0, 1), got 1");
        let min = Plateau {
            min_lr: -1.0,
            ..Plateau::default()
        };
        assert_eq!(err(min), "plateau: min_lr must be finite and >= 0, got -1");
        assert!(Plateau::default().validate().is_ok());
    }
}
