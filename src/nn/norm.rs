//! Batch normalization layers: [`BatchNorm1d`] and [`BatchNorm2d`] (one type,
//! [`BatchNorm`], for both), with their options [`BatchNormOptions`].

use crate::autograd::Var;
use crate::autograd::ops::norm::{BatchMoments, NormStats};
use crate::error::{Error, Result};
use crate::nn::module::{Mode, Module, python_bool};
use crate::param::{Param, Role};
use crate::tensor::{self, Elem, Tensor};
use ndarray::IxDyn;
use std::sync::{Mutex, MutexGuard};

/// The options of a batch normalization, PyTorch's keyword arguments with its defaults:
/// `eps = 1e-5`, `momentum = Some(0.1)`, `affine = true`, `track_running_stats = true`.
/// Each setter replaces one option; [`BatchNorm::with_options`] checks them.
///
/// # Examples
/// ```
/// use tapegrad::BatchNormOptions;
/// let options = BatchNormOptions::default().eps(1e-3).momentum(None).affine(false);
/// assert_eq!(options.eps, 1e-3);
/// assert_eq!(options.momentum, None);
/// assert!(!options.affine && options.track_running_stats);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormOptions {
    /// Added to the variance before its square root, for stability (`eps`).
    pub eps: f64,
    /// The weight of a batch in the running estimates,
    /// `running = (1 − momentum)·running + momentum·batch`; `None` gives their cumulative
    /// average over all batches seen (`momentum=None` in PyTorch).
    pub momentum: Option<f64>,
    /// Whether the layer learns a scale `γ` and a shift `β` per channel (`affine`).
    pub affine: bool,
    /// Whether the layer keeps running estimates of the mean and variance and normalizes by
    /// them in [`Mode::Eval`] (`track_running_stats`); without them it always normalizes by
    /// the batch's own statistics.
    pub track_running_stats: bool,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

impl BatchNormOptions {
    /// These options with `eps` replaced.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::BatchNormOptions;
    /// assert_eq!(BatchNormOptions::default().eps(1e-3).eps, 1e-3);
    /// ```
    pub fn eps(self, eps: f64) -> Self {
        BatchNormOptions { eps, ..self }
    }

    /// These options with `momentum` replaced (`None`: cumulative average).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::BatchNormOptions;
    /// assert_eq!(BatchNormOptions::default().momentum(Some(0.01)).momentum, Some(0.01));
    /// ```
    pub fn momentum(self, momentum: Option<f64>) -> Self {
        BatchNormOptions { momentum, ..self }
    }

    /// These options with `affine` replaced.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchNorm2d, BatchNormOptions, Module};
    /// let bn = BatchNorm2d::with_options(4, BatchNormOptions::default().affine(false))?;
    /// assert!(bn.weight().is_none() && bn.num_params() == 0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn affine(self, affine: bool) -> Self {
        BatchNormOptions { affine, ..self }
    }

    /// These options with `track_running_stats` replaced.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchNorm2d, BatchNormOptions, Module};
    /// let bn = BatchNorm2d::with_options(4, BatchNormOptions::default().track_running_stats(false))?;
    /// let mut buffers = 0;
    /// bn.visit_buffers(&mut |_, _| buffers += 1);
    /// assert_eq!(buffers, 0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn track_running_stats(self, track_running_stats: bool) -> Self {
        BatchNormOptions {
            track_running_stats,
            ..self
        }
    }
}

/// Batch normalization (Ioffe & Szegedy, 2015, <https://arxiv.org/abs/1502.03167>) over the
/// channels of axis 1, as PyTorch's `nn.BatchNorm1d` (`D = 1`: input `[N, C]` or
/// `[N, C, L]`) and `nn.BatchNorm2d` (`D = 2`: input `[N, C, H, W]`). Use the aliases
/// [`BatchNorm1d`] and [`BatchNorm2d`].
///
/// Per channel `c`: `y = γ_c·(x − μ_c)/√(σ²_c + eps) + β_c`.
/// - [`Mode::Train`]: `μ`, `σ²` are the batch's mean and biased variance over every axis but
///   the channels'; the running estimates move towards them,
///   `running_mean ← (1 − m)·running_mean + m·μ` and
///   `running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)` (the unbiased variance of the `M`
///   values per channel), and `num_batches_tracked` counts the batches.
/// - [`Mode::Eval`]: `μ`, `σ²` are the running estimates (the batch's own without
///   `track_running_stats`).
///
/// Under a data-parallel [`TrainStep`](crate::TrainStep) the statistics, and the sums the
/// backward pass takes over the batch, are those of the **whole batch**, not of one shard
/// (PyTorch's `SyncBatchNorm`): the shards then run at once, each on a thread of its own, and
/// add their per-channel sums together, so the numbers are those of one shard up to float
/// rounding. Only the first shard updates the running estimates.
///
/// Parameters: `weight` (`γ`, ones, [`Role::NormScale`]) and `bias` (`β`, zeros,
/// [`Role::NormShift`]), both `[C]`, when `affine`. Buffers ([`Module::visit_buffers`]):
/// `running_mean` (zeros), `running_var` (ones), both `[C]`, and `num_batches_tracked`
/// (shape `[]`), when `track_running_stats`: the names of PyTorch's `state_dict`, so a
/// checkpoint keeps them and an exported model loads into PyTorch.
///
/// A batch with one value per channel (`M = 1`) normalizes to `β` and leaves the running
/// estimates as they were (PyTorch refuses it in training).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, BatchNorm2d, Mode, Module, Tape};
/// let bn = BatchNorm2d::new(3)?;
/// let tape = Tape::new();
/// let x = tensor::from_vec((0..24).map(|v| v as f32).collect(), &[2, 3, 2, 2])?;
/// let y = bn.forward(tape.constant(x), Mode::Train).value();
/// // every channel now has mean 0 and variance 1 over the batch
/// let channel0: Vec<f32> = [0, 1, 2, 3, 12, 13, 14, 15].iter().map(|&i| y.as_slice().unwrap()[i]).collect();
/// assert!(channel0.iter().sum::<f32>().abs() < 1e-5);
/// assert!((channel0.iter().map(|v| v * v).sum::<f32>() / 8.0 - 1.0).abs() < 1e-3);
/// // the running mean moved 10% of the way to the batch mean of channel 0, 7.5
/// assert!((bn.running_mean().unwrap()[0] - 0.75).abs() < 1e-6);
/// let mut buffers = Vec::new();
/// bn.visit_buffers(&mut |name, _| buffers.push(name.to_string()));
/// assert_eq!(buffers, ["running_mean", "running_var", "num_batches_tracked"]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchNorm<const D: usize> {
    num_features: usize,
    options: BatchNormOptions,
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Option<Mutex<Tensor>>,
    running_var: Option<Mutex<Tensor>>,
    num_batches_tracked: Option<Mutex<Tensor>>,
}

/// Batch normalization of `[N, C]` or `[N, C, L]` inputs (`nn.BatchNorm1d`); see
/// [`BatchNorm`].
///
/// # Examples
/// ```
/// use tapegrad::{tensor, BatchNorm1d, Mode, Module, Tape};
/// let bn = BatchNorm1d::new(2)?;
/// let tape = Tape::new();
/// let x = tensor::from_vec(vec![1.0, 10.0, 3.0, 30.0], &[2, 2])?;
/// let y = bn.forward(tape.constant(x), Mode::Train).value();
/// // each column becomes (−1, 1): (x − mean)/std with the biased std
/// for (got, want) in y.iter().zip([-1.0, -1.0, 1.0, 1.0]) {
///     assert!((got - want).abs() < 1e-4);
/// }
/// assert_eq!(bn.describe(), "BatchNorm1d(2, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)");
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type BatchNorm1d = BatchNorm<1>;

/// Batch normalization of `[N, C, H, W]` inputs (`nn.BatchNorm2d`); see [`BatchNorm`].
///
/// # Examples
/// ```
/// use tapegrad::{tensor, BatchNorm2d, Mode, Module, Tape};
/// let bn = BatchNorm2d::new(4)?;
/// assert_eq!(bn.num_params(), 8); // γ and β per channel
/// let tape = Tape::new();
/// // in evaluation a fresh layer (running mean 0, variance 1) is almost the identity
/// let x = tensor::full(&[1, 4, 2, 2], 2.0);
/// let y = bn.forward(tape.constant(x), Mode::Eval).value();
/// assert!(y.iter().all(|v| (v - 2.0).abs() < 1e-4));
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type BatchNorm2d = BatchNorm<2>;

impl<const D: usize> BatchNorm<D> {
    /// A batch normalization of `num_features` channels with PyTorch's default options.
    ///
    /// # Errors
    /// As [`BatchNorm::with_options`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::BatchNorm2d;
    /// assert_eq!(BatchNorm2d::new(16)?.num_features(), 16);
    /// assert!(BatchNorm2d::new(0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(num_features: usize) -> Result<Self> {
        Self::with_options(num_features, BatchNormOptions::default())
    }

    /// A batch normalization of `num_features` channels with `options`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `num_features` is 0, `eps` is not finite and > 0, or
    /// `momentum` is not in `[0, 1]`:
    /// `batchnorm: momentum must be in [0, 1], got 1.5`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchNorm1d, BatchNormOptions, Module};
    /// let bn = BatchNorm1d::with_options(8, BatchNormOptions::default().affine(false))?;
    /// assert_eq!(bn.num_params(), 0);
    /// let err = BatchNorm1d::with_options(8, BatchNormOptions::default().momentum(Some(1.5)));
    /// assert_eq!(err.unwrap_err().to_string(), "batchnorm: momentum must be in [0, 1], got 1.5");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_options(num_features: usize, options: BatchNormOptions) -> Result<Self> {
        let invalid = |message: String| Error::InvalidArgument {
            op: "batchnorm",
            message,
        };
        if num_features == 0 {
            return Err(invalid("num_features must be at least 1, got 0".into()));
        }
        if !(options.eps.is_finite() && options.eps > 0.0) {
            return Err(invalid(format!(
                "eps must be finite and > 0, got {}",
                options.eps
            )));
        }
        if let Some(m) = options.momentum.filter(|m| !(0.0..=1.0).contains(m)) {
            return Err(invalid(format!("momentum must be in [0, 1], got {m}")));
        }
        let per_channel = |value: Elem| tensor::full(&[num_features], value);
        let buffer = |value: Tensor| options.track_running_stats.then(|| Mutex::new(value));
        Ok(BatchNorm {
            num_features,
            options,
            weight: (options.affine)
                .then(|| Param::with_role("weight", Role::NormScale, per_channel(1.0))),
            bias: (options.affine)
                .then(|| Param::with_role("bias", Role::NormShift, per_channel(0.0))),
            running_mean: buffer(per_channel(0.0)),
            running_var: buffer(per_channel(1.0)),
            num_batches_tracked: buffer(Tensor::zeros(IxDyn(&[]))),
        })
    }

    /// The number of channels `C`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::BatchNorm1d;
    /// assert_eq!(BatchNorm1d::new(64)?.num_features(), 64);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The options the layer was made with.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchNorm2d, BatchNormOptions};
    /// assert_eq!(BatchNorm2d::new(8)?.options(), BatchNormOptions::default());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn options(&self) -> BatchNormOptions {
        self.options
    }

    /// The scale `γ` (`weight`), when `affine`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, BatchNorm2d, Role};
    /// let bn = BatchNorm2d::new(3)?;
    /// let gamma = bn.weight().unwrap();
    /// assert_eq!((gamma.role(), gamma.value().to_owned()), (Role::NormScale, tensor::ones(&[3])));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight(&self) -> Option<&Param> {
        self.weight.as_ref()
    }

    /// The shift `β` (`bias`), when `affine`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, BatchNorm2d, Role};
    /// let bn = BatchNorm2d::new(3)?;
    /// let beta = bn.bias().unwrap();
    /// assert_eq!((beta.role(), beta.value().to_owned()), (Role::NormShift, tensor::zeros(&[3])));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// A copy of the running mean, when the layer tracks running statistics.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, BatchNorm1d, BatchNormOptions};
    /// assert_eq!(BatchNorm1d::new(2)?.running_mean(), Some(tensor::zeros(&[2])));
    /// let untracked = BatchNormOptions::default().track_running_stats(false);
    /// assert_eq!(BatchNorm1d::with_options(2, untracked)?.running_mean(), None);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn running_mean(&self) -> Option<Tensor> {
        self.running_mean.as_ref().map(|b| lock(b).clone())
    }

    /// A copy of the running (unbiased) variance, when the layer tracks running statistics.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, BatchNorm1d};
    /// assert_eq!(BatchNorm1d::new(2)?.running_var(), Some(tensor::ones(&[2])));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn running_var(&self) -> Option<Tensor> {
        self.running_var.as_ref().map(|b| lock(b).clone())
    }

    /// Checks that this layer accepts `shape`: `[N, C]` or `[N, C, L]` for `D = 1`,
    /// `[N, C, H, W]` for `D = 2`, with `C` its number of features.
    fn check_input(&self, shape: &[usize]) -> Result<()> {
        let axes_ok = match D {
            1 => matches!(shape.len(), 2 | 3),
            _ => shape.len() == D + 2,
        };
        if axes_ok && shape[1] == self.num_features {
            return Ok(());
        }
        let c = self.num_features;
        Err(Error::Shape {
            op: Self::name(),
            expected: match D {
                1 => format!("an input [N, {c}] or [N, {c}, L]"),
                _ => format!("an input [N, {c}, H, W]"),
            },
            found: format!("{shape:?}"),
        })
    }

    /// `BatchNorm1d` or `BatchNorm2d`.
    fn name() -> &'static str {
        match D {
            1 => "BatchNorm1d",
            _ => "BatchNorm2d",
        }
    }

    /// Moves the running estimates towards a training batch's statistics.
    fn update_running(&self, moments: &BatchMoments) {
        let (Some(mean), Some(var), Some(tracked)) = (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) else {
            return;
        };
        if !moments.update_running || moments.count < 2.0 {
            return;
        }
        let mut tracked = lock(tracked);
        tracked.map_inplace(|n| *n += 1.0);
        let batches = tracked.first().copied().unwrap_or(1.0) as f64;
        let factor = self.options.momentum.unwrap_or(1.0 / batches);
        let unbiased = moments.count / (moments.count - 1.0);
        let blend = |running: &mut Tensor, batch: &[f64], scale: f64| {
            for (r, &b) in running.iter_mut().zip(batch) {
                *r = ((1.0 - factor) * f64::from(*r) + factor * b * scale) as Elem;
            }
        };
        blend(&mut lock(mean), &moments.mean, 1.0);
        blend(&mut lock(var), &moments.var, unbiased);
    }
}

/// A buffer's value; a poisoned lock is still read (its tensor is whole whatever panicked).
fn lock(buffer: &Mutex<Tensor>) -> MutexGuard<'_, Tensor> {
    buffer.lock().unwrap_or_else(|e| e.into_inner())
}

impl<const D: usize> Module for BatchNorm<D> {
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
        if let Err(e) = self.check_input(&x.shape()) {
            panic!("{e}")
        }
        let tape = x.tape();
        let affine = match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => Some(Var::stack(&[tape.param(w), tape.param(b)], 0)),
            _ => None,
        };
        let eps = self.options.eps;
        match (&self.running_mean, &self.running_var) {
            (Some(mean), Some(var)) if mode == Mode::Eval => {
                let (mean, var) = (lock(mean).clone(), lock(var).clone());
                let stats = NormStats::Fixed {
                    mean: mean.as_slice().expect("a fresh [C] buffer"),
                    var: var.as_slice().expect("a fresh [C] buffer"),
                };
                x.batch_norm(affine, stats, eps).0
            }
            _ => {
                let (y, moments) = x.batch_norm(affine, NormStats::Batch, eps);
                if mode == Mode::Train
                    && let Some(moments) = moments
                {
                    self.update_running(&moments);
                }
                y
            }
        }
    }

    crate::walk!(weight, bias, running_mean, running_var, num_batches_tracked);

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input)?;
        Ok(input.to_vec())
    }

    fn describe(&self) -> String {
        let momentum = match self.options.momentum {
            Some(m) => m.to_string(),
            None => "None".into(),
        };
        format!(
            "{}({}, eps={:e}, momentum={momentum}, affine={}, track_running_stats={})",
            Self::name(),
            self.num_features,
            self.options.eps,
            python_bool(self.options.affine),
            python_bool(self.options.track_running_stats)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;
    use crate::autograd::ops::t;

    /// Two training batches of `[4, 2]` through `bn`; returns the running mean and variance.
    fn two_batches(bn: &BatchNorm1d) -> (Tensor, Tensor) {
        let tape = Tape::new();
        for x in [
            t(&[4, 2], &[1.0, 0.0, 2.0, 0.0, 3.0, 4.0, 6.0, 4.0]),
            t(&[4, 2], &[0.0, 1.0, 0.0, 1.0, 4.0, 1.0, 4.0, 1.0]),
        ] {
            bn.forward(tape.constant(x), Mode::Train);
        }
        (bn.running_mean().unwrap(), bn.running_var().unwrap())
    }

    #[test]
    fn running_statistics_follow_pytorch_with_momentum_and_cumulative_average() {
        // channel 0: batch means 3 and 2, unbiased variances 14/3 and 16/3;
        // channel 1: means 2 and 1, unbiased variances 16/3 and 0
        let bn = BatchNorm1d::new(2).unwrap();
        let (mean, var) = two_batches(&bn);
        let momentum = |first: f64, second: f64, start: f64| {
            let after_one = 0.9 * start + 0.1 * first;
            (0.9 * after_one + 0.1 * second) as f32
        };
        let expected_mean = [momentum(3.0, 2.0, 0.0), momentum(2.0, 1.0, 0.0)];
        let expected_var = [
            momentum(14.0 / 3.0, 16.0 / 3.0, 1.0),
            momentum(16.0 / 3.0, 0.0, 1.0),
        ];
        for c in 0..2 {
            assert!(
                (mean[c] - expected_mean[c]).abs() < 1e-6,
                "mean {c}: {}",
                mean[c]
            );
            assert!(
                (var[c] - expected_var[c]).abs() < 1e-5,
                "var {c}: {}",
                var[c]
            );
        }
        let mut tracked = Vec::new();
        bn.visit_buffers(&mut |name, b| tracked.push((name.to_string(), b.sum())));
        assert_eq!(tracked[2], ("num_batches_tracked".to_string(), 2.0));

        // momentum None: the plain average of the two batches' statistics
        let cumulative = BatchNormOptions::default().momentum(None);
        let bn = BatchNorm1d::with_options(2, cumulative).unwrap();
        let (mean, var) = two_batches(&bn);
        assert_eq!(mean.as_slice().unwrap(), &[2.5, 1.5]);
        assert!((var[0] - 5.0).abs() < 1e-5 && (var[1] - 8.0 / 3.0).abs() < 1e-5);
    }

    #[test]
    fn evaluation_uses_the_running_statistics_and_leaves_them_alone() {
        let bn = BatchNorm1d::new(2).unwrap();
        let (mean, var) = two_batches(&bn);
        let tape = Tape::new();
        let x = t(&[1, 2], &[5.0, -1.0]);
        let y = bn.forward(tape.constant(x.clone()), Mode::Eval).value();
        for c in 0..2 {
            let want = (x[[0, c]] - mean[c]) / (var[c] + 1e-5).sqrt();
            assert!((y[[0, c]] - want).abs() < 1e-6);
        }
        assert_eq!(bn.running_mean().unwrap(), mean);
        // without running statistics, evaluation normalizes by the batch as training does
        let untracked = BatchNormOptions::default().track_running_stats(false);
        let bn = BatchNorm1d::with_options(2, untracked).unwrap();
        let batch = t(&[2, 2], &[1.0, 5.0, 3.0, 7.0]);
        let y = bn.forward(tape.constant(batch), Mode::Eval).value();
        assert!((y[[0, 0]] + 1.0).abs() < 1e-4 && (y[[1, 1]] - 1.0).abs() < 1e-4);
    }

    #[test]
    fn one_value_per_channel_gives_the_shift_and_keeps_the_running_statistics() {
        let bn = BatchNorm2d::new(3).unwrap();
        let tape = Tape::new();
        let y = bn.forward(
            tape.constant(t(&[1, 3, 1, 1], &[4.0, -2.0, 9.0])),
            Mode::Train,
        );
        assert_eq!(y.value().as_slice().unwrap(), &[0.0, 0.0, 0.0]);
        assert_eq!(bn.running_mean().unwrap(), tensor::zeros(&[3]));
        assert_eq!(bn.running_var().unwrap(), tensor::ones(&[3]));
    }

    #[test]
    fn weight_and_bias_get_their_gradients_through_the_layer() {
        // L = Σ y·w_out: ∂L/∂β_c = Σ w_out over channel c, ∂L/∂γ_c = Σ w_out·x̂
        let bn = BatchNorm2d::new(2).unwrap();
        let tape = Tape::new();
        let x = tape.leaf(t(&[2, 2, 1, 2], &[1.0, 3.0, 0.0, 2.0, 5.0, 7.0, 4.0, 4.0]));
        let w_out = tape.constant(t(&[2, 2, 1, 2], &[1.0, 2.0, 0.5, 0.5, -1.0, 1.0, 3.0, 0.0]));
        let loss = (bn.forward(x, Mode::Train) * w_out).sum();
        let grads = loss.backward();
        let db = grads.param(bn.bias().unwrap()).unwrap();
        assert_eq!(db.as_slice().unwrap(), &[3.0, 4.0]);
        // channel 0 holds 1, 3, 5, 7: mean 4, biased variance 5
        let xhat = |v: f32| (v - 4.0) / (5.0f32 + 1e-5).sqrt();
        let dw0 = xhat(1.0) + 2.0 * xhat(3.0) - xhat(5.0) + xhat(7.0);
        let dw = grads.param(bn.weight().unwrap()).unwrap();
        assert!((dw[[0]] - dw0).abs() < 1e-5, "{} vs {dw0}", dw[[0]]);
        assert!(grads.get(x).is_some());
    }

    #[test]
    #[should_panic(expected = "BatchNorm2d: expected an input [N, 3, H, W], found [2, 4, 5, 5]")]
    fn a_wrong_channel_count_panics_naming_both_shapes() {
        let bn = BatchNorm2d::new(3).unwrap();
        let tape = Tape::new();
        bn.forward(tape.constant(tensor::zeros(&[2, 4, 5, 5])), Mode::Train);
    }

    #[test]
    fn options_are_checked() {
        let err = |o: BatchNormOptions| BatchNorm1d::with_options(4, o).unwrap_err().to_string();
        assert_eq!(
            err(BatchNormOptions::default().eps(0.0)),
            "batchnorm: eps must be finite and > 0, got 0"
        );
        assert_eq!(
            err(BatchNormOptions::default().momentum(Some(-0.1))),
            "batchnorm: momentum must be in [0, 1], got -0.1"
        );
        assert_eq!(
            BatchNorm2d::new(0).unwrap_err().to_string(),
            "batchnorm: num_features must be at least 1, got 0"
        );
    }
}
