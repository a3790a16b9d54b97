//! The training loop: epochs of shuffled mini-batches (or the full batch for gradient
//! descent) under any [`Loss`], per-epoch history with the validation metrics that fit the
//! targets, a progress callback, early stopping on a chosen metric, and the divergence
//! guard; plus [`evaluate`], which measures a model on unseen data in evaluation mode, and
//! [`Predictor`], which classifies new samples with the fitted scaler applied.

#[cfg(feature = "mpi")]
mod distributed;
mod evaluate;
mod infer;
mod plateau;
mod predict;
mod step;

#[cfg(feature = "mpi")]
pub use distributed::{Distributed, SYNC_CHECK_EVERY};
pub use evaluate::{Evaluation, Metric, evaluate, evaluate_with};
pub use infer::infer;
pub use plateau::Plateau;
pub use predict::{Predictions, Predictor, Samples};
pub use step::TrainStep;

use crate::autograd::tape::Tape;
use crate::data::{Augment, BatchTargets, Dataset, Targets};
use crate::diagnostics::ParamSnapshot;
use crate::error::{Error, Result};
use crate::nn::{Loss, Mode, Module};
use crate::optim::Optimizer;
use crate::tensor::Elem;
use crate::threads::in_pool;
use evaluate::evaluate_checked;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// What [`fit`] does when a step is refused because its loss, its gradients or its update
/// are NaN or infinite (see [`Optimizer::step`]). Either way the refused step changes
/// nothing.
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::Array2, tensor, Dataset, Error, FitConfig, Linear, OnDivergence, Sgd, fit};
/// // one sample so large that its logits overflow to infinity
/// let mut x = Array2::from_elem((8, 2), 1.0);
/// x[[5, 0]] = 3e38;
/// let data = Dataset::from_floats(x, vec![0, 1, 0, 1, 0, 1, 0, 1])?;
/// let model = || Linear::from_parts(tensor::from_vec(vec![2.0; 4], &[2, 2])?, None);
/// let stop = FitConfig { epochs: 1, batch_size: 4, ..FitConfig::default() };
/// let err = fit(&mut model()?, &mut Sgd::new(0.1)?, &data, None, &stop, &mut |_| {}).unwrap_err();
/// assert!(matches!(err, Error::Diverged { .. }));
/// let halve = FitConfig { on_divergence: OnDivergence::HalveLearningRate, ..stop };
/// let history = fit(&mut model()?, &mut Sgd::new(0.1)?, &data, None, &halve, &mut |_| {})?;
/// assert!(history.events[0].contains("halved to 0.05"));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDivergence {
    /// Return [`Error::Diverged`] naming the step.
    Stop,
    /// Skip the batch, halve the base learning rate, record why in
    /// [`History::events`], and go on. After 10 refused steps in a row (the rate divided by
    /// 1,024 without an accepted step in between), or an epoch in which every step was
    /// refused, return [`Error::Diverged`] as `Stop` does, with the rate reached and the
    /// largest parameter magnitude: the cause is then not the rate alone (parameters an
    /// earlier step already drove too far, say).
    HalveLearningRate,
}

/// Refused steps in a row after which [`OnDivergence::HalveLearningRate`] gives up.
const MAX_HALVINGS: usize = 10;

/// The largest absolute value among `model`'s parameters (NaN when one is NaN).
fn largest_magnitude(model: &dyn Module) -> f32 {
    let mut largest: f32 = 0.0;
    model.visit_params(&mut |_, p| {
        largest = p.value().iter().fold(
            largest,
            |m, v| {
                if v.is_nan() { f32::NAN } else { m.max(v.abs()) }
            },
        )
    });
    largest
}

/// Checks, before any step, that `data` (called `what` in messages) can go through `model`
/// and `loss`: it has samples, every stored feature is finite, the loss fits its targets,
/// the model runs on one sample (in evaluation mode, on an inference tape; when it does not,
/// the error names the input width of its first layer), and its output fits the target
/// (classes below the output width; float targets of the output's shape).
pub(crate) fn check_data(
    op: &'static str,
    what: &str,
    model: &dyn Module,
    data: &Dataset,
    loss: &Loss,
) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidArgument { op, message });
    if data.is_empty() {
        return invalid(format!("the {what} is empty, expected at least one sample"));
    }
    if let Some(found) = data.first_non_finite() {
        return invalid(format!("{what}: {found}, expected finite values"));
    }
    let mut first = data.batches(1)?;
    let first = first.next().expect("the data set has a sample");
    loss.check(&first.targets).map_err(|e| match e {
        Error::InvalidArgument { message, .. } => Error::InvalidArgument {
            op,
            message: format!("{what}: {message}"),
        },
        other => other,
    })?;
    // the layers' own shape checks find a sample that does not fit without running the
    // model (whose panic, caught, would still print); an image model (its first layer has
    // no input width) names the layer
    let mut input = vec![1];
    input.extend_from_slice(data.sample_shape());
    if let Err(e) = model.output_shape(&input) {
        return Err(match model.in_features() {
            Some(_) => sample_misfit(op, what, model, data, &e.to_string()),
            None => Error::Shape {
                op,
                expected: format!("{what} samples the model can take"),
                found: format!("samples of shape {:?}: {e}", data.sample_shape()),
            },
        });
    }
    let output = match trial_output(model, &first) {
        Ok(output) => output,
        Err(panic) => return Err(sample_misfit(op, what, model, data, &panic)),
    };
    match data.targets() {
        Targets::Classes { labels, .. } => {
            let classes = match output.as_slice() {
                [1, classes] => *classes,
                _ => {
                    return Err(Error::Shape {
                        op,
                        expected: format!(
                            "model outputs [batch, classes] for the {what}'s class labels"
                        ),
                        found: format!("output shape {output:?} for one sample"),
                    });
                }
            };
            if let Some((sample, label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
                return invalid(format!(
                    "{what} sample {sample} has label {label}, expected a label below {classes} \
                     (the model's last layer has {classes} outputs)"
                ));
            }
        }
        _ => {
            let mut expected = vec![1];
            expected.extend(data.target_shape());
            if output.iter().product::<usize>() != expected.iter().product::<usize>()
                || output.first() != Some(&1)
            {
                return Err(Error::Shape {
                    op,
                    expected: format!(
                        "model output of shape {expected:?}, or another shape of as many \
                         values, for one sample (the {what}'s targets are {:?} per sample)",
                        data.target_shape()
                    ),
                    found: format!("output shape {output:?}"),
                });
            }
        }
    }
    Ok(())
}

/// Checks what can be checked of a batch cheaply, where the model declares its widths
/// ([`Module::in_features`], [`Module::out_features`]): the last axis of the batch
/// `x_shape` (`[rows, ..., features]`) against the model's input width, and its class
/// `labels` against the model's output width. A step or pass that skipped this would panic
/// inside an op instead (and on a shard's thread, naming the row within the shard). A layer
/// of one's own may change widths without declaring it, so a batch the declared widths
/// refuse is refused only when [`Module::output_shape`] confirms it (a trial pass for such
/// layers, on this path only).
pub(crate) fn check_batch<M: Module + ?Sized>(
    op: &'static str,
    model: &M,
    x_shape: &[usize],
    labels: Option<&[usize]>,
) -> Result<()> {
    if let (Some(width), [.., features]) = (model.in_features(), x_shape)
        && *features != width
        && model.output_shape(x_shape).is_err()
    {
        return Err(Error::Shape {
            op,
            expected: format!(
                "samples of width {width} (the input width of the model's first layer)"
            ),
            found: format!("a batch of shape {x_shape:?}"),
        });
    }
    if let (Some(labels), Some(declared)) = (labels, model.out_features())
        && labels.iter().any(|&l| l >= declared)
    {
        // the model's own output width, when its shape check knows it
        let shape = model.output_shape(x_shape).ok();
        let classes = shape.and_then(|s| s.last().copied()).unwrap_or(declared);
        if let Some((row, label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "row {row} of the batch has label {label}, expected a label below \
                     {classes} (the model's last layer has {classes} outputs)"
                ),
            });
        }
    }
    Ok(())
}

/// Checks that float `targets` (value or multi-label, `[rows, ...]`) hold as many values
/// per row as `model`'s output for a batch of shape `x_shape`, as the losses on them need
/// (they are read in the output's shape, see [`Targets::Values`]); class
/// labels and a model that declares no output width ([`Module::out_features`]) pass. A
/// mismatch by the declared width is confirmed with [`Module::output_shape`] (a layer of
/// one's own may reshape without declaring it), so the usual case costs one lookup.
///
/// # Errors
/// [`Error::Shape`] naming the model's output shape and the targets' shape.
pub(crate) fn check_value_targets(
    op: &'static str,
    model: &dyn Module,
    x_shape: &[usize],
    targets: &BatchTargets<'_>,
) -> Result<()> {
    let shape = match targets {
        BatchTargets::Values(v) => v.shape(),
        BatchTargets::MultiLabel(y) => y.shape(),
        BatchTargets::Classes(_) => return Ok(()),
    };
    let Some(width) = model.out_features() else {
        return Ok(());
    };
    if shape[1..] == [width] {
        return Ok(());
    }
    let per_sample = |s: &[usize]| s[1..].iter().product::<usize>();
    match model.output_shape(x_shape) {
        Ok(output) if per_sample(&output) != per_sample(shape) => Err(Error::Shape {
            op,
            expected: format!("targets of the model's output shape {output:?}"),
            found: format!("targets of shape {shape:?}"),
        }),
        _ => Ok(()),
    }
}

/// The shape of `model`'s output for `batch` (one sample) in evaluation mode on an
/// inference tape, or the message of its panic on it (not printed).
fn trial_output(
    model: &dyn Module,
    batch: &crate::data::Batch<'_>,
) -> std::result::Result<Vec<usize>, String> {
    crate::nn::quietly(|| {
        let tape = Tape::inference();
        model
            .forward(tape.constant(batch.x.view()), Mode::Eval)
            .shape()
    })
}

/// The error for samples of `data` that `model` cannot take, naming the input width of its
/// first layer when it declares one ([`Module::in_features`]), else the `problem` it met.
fn sample_misfit(
    op: &'static str,
    what: &str,
    model: &dyn Module,
    data: &Dataset,
    problem: &str,
) -> Error {
    let sample_shape = data.sample_shape();
    let Some(width) = model.in_features() else {
        return Error::Shape {
            op,
            expected: format!("{what} samples the model can take"),
            found: format!(
                "samples of shape {sample_shape:?}, on which the model panics: {problem}"
            ),
        };
    };
    let (expected, found) = match sample_shape {
        [n] => (format!("samples of width {width}"), format!("width {n}")),
        _ => (
            format!("samples whose last axis is {width}"),
            format!(
                "samples of shape {sample_shape:?}; flatten them with \
                 Dataset::with_sample_shape or a Flatten layer"
            ),
        ),
    };
    Error::Shape {
        op,
        expected: format!("{what} {expected} (the input width of the model's first layer)"),
        found,
    }
}

/// The seed of epoch `epoch`'s augmentation: a function of the run's seed and the epoch
/// only, so a resumed run augments as the uninterrupted one, and the shuffles (drawn from
/// the seed's own stream) do not depend on whether there is augmentation.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng.next_u64()
}

/// Refuses a `watched` metric that evaluating on `valid` does not report, as `who` (early
/// stopping or the plateau) would watch it.
fn check_watched(who: &str, valid: &Dataset, watched: Metric) -> Result<()> {
    let problem = match watched {
        Metric::TopK(0) => "expected k ≥ 1",
        _ if !has_metric(valid.targets(), watched) => "which the validation targets do not have",
        _ => return Ok(()),
    };
    Err(Error::InvalidArgument {
        op: "fit",
        message: format!("{who} watches the validation {watched}, {problem}"),
    })
}

/// Whether evaluating on `targets` reports `metric`.
fn has_metric(targets: &Targets, metric: Metric) -> bool {
    matches!(
        (targets, metric),
        (_, Metric::Loss)
            | (Targets::Classes { .. }, Metric::Accuracy | Metric::TopK(_))
            | (Targets::MultiLabel(_), Metric::Accuracy)
            | (
                Targets::Values(_) | Targets::Inputs,
                Metric::Mse | Metric::Mae | Metric::R2
            )
    )
}

/// What early stopping watches ([`FitConfig::patience`]), and which way is better: as
/// Keras' `EarlyStopping(monitor=..., mode=...)` and Lightning's.
///
/// A tie is no improvement, so the earlier epoch stays the best (accuracy moves in steps of
/// one sample, so ties are common).
///
/// # Examples
/// ```
/// use tapegrad::{Goal, Metric, Monitor};
/// let mae = Monitor::Valid(Metric::Mae, Goal::Min);
/// assert!(mae.improves(0.1, 0.2) && !mae.improves(0.2, 0.1));
/// assert!(Monitor::ValidAccuracy.improves(0.9, 0.8));
/// assert_eq!(Monitor::metric(Metric::Accuracy), Monitor::Valid(Metric::Accuracy, Goal::Max));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// The validation loss; lower is better (`monitor="val_loss", mode="min"`).
    ValidLoss,
    /// The validation accuracy; higher is better (`monitor="val_accuracy", mode="max"`).
    ValidAccuracy,
    /// Any validation [`Metric`], in the given mode.
    Valid(Metric, Goal),
}

/// Which way a watched metric improves.
///
/// # Examples
/// ```
/// use tapegrad::{Goal, Metric, Monitor};
/// assert_eq!(Monitor::metric(Metric::Loss), Monitor::Valid(Metric::Loss, Goal::Min));
/// assert!(Monitor::Valid(Metric::Loss, Goal::Max).improves(2.0, 1.0)); // as asked, not as usual
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Smaller is better (`mode="min"`).
    Min,
    /// Larger is better (`mode="max"`).
    Max,
}

impl Monitor {
    /// Watches `metric` in the mode that fits it ([`Metric::higher_is_better`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Goal, Metric, Monitor};
    /// assert_eq!(Monitor::metric(Metric::R2), Monitor::Valid(Metric::R2, Goal::Max));
    /// ```
    pub fn metric(metric: Metric) -> Monitor {
        let goal = if metric.higher_is_better() {
            Goal::Max
        } else {
            Goal::Min
        };
        Monitor::Valid(metric, goal)
    }

    /// The watched metric.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Goal, Metric, Monitor};
    /// assert_eq!(Monitor::ValidAccuracy.watched(), Metric::Accuracy);
    /// assert_eq!(Monitor::Valid(Metric::TopK(5), Goal::Max).watched(), Metric::TopK(5));
    /// ```
    pub fn watched(self) -> Metric {
        match self {
            Monitor::ValidLoss => Metric::Loss,
            Monitor::ValidAccuracy => Metric::Accuracy,
            Monitor::Valid(metric, _) => metric,
        }
    }

    /// The watched value of an epoch (`None` without validation data, or when the
    /// validation targets have no such metric).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{EpochRecord, Metric, Monitor};
    /// let record = EpochRecord { epoch: 1, train_loss: 0.5, valid_loss: Some(0.3),
    ///     valid_accuracy: None, valid_metrics: vec![(Metric::Loss, 0.3)], lr: 0.1, seconds: 1.0,
    ///     samples_per_second: 10.0 };
    /// assert_eq!(Monitor::ValidLoss.value(&record), Some(0.3));
    /// assert_eq!(Monitor::ValidAccuracy.value(&record), None); // not reported
    /// ```
    pub fn value(self, record: &EpochRecord) -> Option<f64> {
        record.metric(self.watched())
    }

    /// Which way the watched metric improves.
    pub(crate) fn goal(self) -> Goal {
        match self {
            Monitor::ValidLoss => Goal::Min,
            Monitor::ValidAccuracy => Goal::Max,
            Monitor::Valid(_, goal) => goal,
        }
    }

    /// Whether `value` is better than `best`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Monitor;
    /// assert!(Monitor::ValidLoss.improves(0.3, 0.4));
    /// assert!(Monitor::ValidAccuracy.improves(0.9, 0.8));
    /// assert!(!Monitor::ValidAccuracy.improves(0.8, 0.8));
    /// ```
    pub fn improves(self, value: f64, best: f64) -> bool {
        match self.goal() {
            Goal::Min => value < best,
            Goal::Max => value > best,
        }
    }
}

/// Settings of [`fit`].
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, tensor, Dataset, FitConfig, Linear, Sgd, fit};
/// let config = FitConfig::default();
/// assert_eq!((config.epochs, config.batch_size, config.start_epoch), (10, 64, 0));
/// let data = Dataset::from_floats(array![[-1.0], [1.0]], vec![0, 1])?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// let short = FitConfig { epochs: 3, batch_size: 2, ..config };
/// assert_eq!(fit(&mut model, &mut Sgd::new(0.1)?, &data, None, &short, &mut |_| {})?.epochs.len(), 3);
/// // settings are checked before the first step
/// let done = FitConfig { start_epoch: 3, ..short };
/// assert!(fit(&mut model, &mut Sgd::new(0.1)?, &data, None, &done, &mut |_| {}).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// Passes over the training data, counted from the start of training (resumed runs
    /// included): training ends after epoch `epochs`. Default 10.
    pub epochs: usize,
    /// Epochs already done before this call (0 for a fresh run): [`fit`] trains epochs
    /// `start_epoch + 1 ..= epochs`. To resume from a checkpoint, restore the model and
    /// optimizer with [`Checkpoint::resume`](crate::checkpoint::Checkpoint::resume) and set this to the
    /// epochs it returns; with the same seed, the run then continues bit for bit as if it
    /// had never stopped (the shuffles of the skipped epochs are replayed, without
    /// training). Early stopping's patience counts from here. Default 0.
    pub start_epoch: usize,
    /// Samples per step; the training set's size gives full-batch gradient descent.
    /// Default 64.
    pub batch_size: usize,
    /// Seed of the shuffling order (a fresh order each epoch). Default 0.
    pub seed: u64,
    /// Whether each epoch draws its batches in a fresh random order (`shuffle=True` of
    /// PyTorch's `DataLoader`); `false` keeps the data set's order, as for a time series.
    /// Default `true`.
    pub shuffle: bool,
    /// Leave out a last batch smaller than `batch_size`. Default `false` (kept, as
    /// PyTorch's `DataLoader`).
    pub drop_last: bool,
    /// What to do with a step refused for a non-finite loss, gradient or update. Default
    /// [`OnDivergence::Stop`].
    pub on_divergence: OnDivergence,
    /// Early stopping: stop after this many epochs in which [`FitConfig::monitor`] did not
    /// improve, and restore the parameters of the best epoch. Needs validation data. An
    /// epoch whose watched value is NaN (R² of targets without spread) is never the best;
    /// the first such epoch is reported as an event. Default `None` (no early stopping).
    pub patience: Option<usize>,
    /// What early stopping watches. Default [`Monitor::ValidLoss`].
    pub monitor: Monitor,
    /// Lowering of the learning rate when a validation metric stops improving (PyTorch's
    /// `ReduceLROnPlateau`). Needs validation data. Default `None`.
    pub plateau: Option<Plateau>,
    /// Augmentation of the training batches (not of validation data), with new random
    /// changes each epoch, drawn from `seed` and the epoch number. Needs image samples
    /// `[C, H, W]`. Default `None`.
    pub augment: Option<Augment>,
    /// The criterion. Default `None`: the one that fits the training targets
    /// ([`Loss::default_for`]: cross-entropy for classes, MSE for float values and inputs,
    /// BCE with logits for multi-label targets).
    pub loss: Option<Loss>,
    /// Batch size of the validation pass. Default 1,000.
    pub eval_batch_size: usize,
    /// Data parallelism across processes (feature `mpi`): each rank trains on its slice of
    /// every batch and the ranks sum their gradients ([`Distributed`]). Only rank 0 calls
    /// `on_progress`; every rank returns the same [`History`] and ends with the same
    /// parameters. Before the first step the ranks compare their checks, data sets and
    /// settings (the optimizer's too) in one collective, and an error on one rank, or data
    /// or settings that differ, is the same error on every rank (see [`fit`]'s errors);
    /// after the last epoch they compare their parameters again. Every batch must have at least one
    /// row per rank: a last batch with fewer is refused up front unless `drop_last` leaves
    /// it out. Default `None` (this process alone).
    #[cfg(feature = "mpi")]
    pub distributed: Option<Distributed>,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 10,
            start_epoch: 0,
            batch_size: 64,
            seed: 0,
            shuffle: true,
            drop_last: false,
            on_divergence: OnDivergence::Stop,
            patience: None,
            monitor: Monitor::ValidLoss,
            plateau: None,
            augment: None,
            loss: None,
            eval_batch_size: 1000,
            #[cfg(feature = "mpi")]
            distributed: None,
        }
    }
}

/// One epoch's numbers.
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, tensor, Dataset, FitConfig, Linear, Sgd, fit};
/// let data = Dataset::from_floats(array![[-1.0], [1.0], [-2.0], [2.0]], vec![0, 1, 0, 1])?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// let config = FitConfig { epochs: 2, batch_size: 2, ..FitConfig::default() };
/// let history = fit(&mut model, &mut Sgd::new(0.5)?, &data, Some(&data), &config, &mut |_| {})?;
/// let (first, second) = (&history.epochs[0], &history.epochs[1]);
/// assert_eq!((first.epoch, second.epoch, first.lr), (1, 2, 0.5));
/// assert!(first.train_loss <= 2f64.ln() + 1e-6); // zero weights start at ln 2
/// assert!(second.valid_loss.unwrap() < first.train_loss);
/// assert_eq!(second.valid_accuracy, Some(1.0));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (in training mode, so with dropout).
    pub train_loss: f64,
    /// Validation loss in evaluation mode, if validation data was given.
    pub valid_loss: Option<f64>,
    /// Validation accuracy, if validation data was given and its targets have one.
    pub valid_accuracy: Option<f64>,
    /// Every validation metric the targets have ([`Evaluation::metrics`], plus the one
    /// early stopping watches), if validation data was given.
    pub valid_metrics: Vec<(Metric, f64)>,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Wall time of the epoch's training steps, in seconds.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_second: f64,
}

impl EpochRecord {
    /// The value of a validation metric, if reported.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{EpochRecord, Metric};
    /// let record = EpochRecord { epoch: 3, train_loss: 0.5, valid_loss: Some(0.4),
    ///     valid_accuracy: Some(0.8), valid_metrics: vec![(Metric::Loss, 0.4), (Metric::Accuracy, 0.8)],
    ///     lr: 0.1, seconds: 1.0, samples_per_second: 10.0 };
    /// assert_eq!(record.metric(Metric::Accuracy), Some(0.8));
    /// assert_eq!(record.metric(Metric::R2), None);
    /// ```
    pub fn metric(&self, metric: Metric) -> Option<f64> {
        (self.valid_metrics.iter())
            .find(|(m, _)| *m == metric)
            .map(|(_, v)| *v)
    }
}

/// The per-epoch record of a [`fit`], printable and exportable as CSV.
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, tensor, Dataset, FitConfig, Linear, Sgd, fit};
/// let data = Dataset::from_floats(array![[-1.0], [1.0]], vec![0, 1])?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// let config = FitConfig { epochs: 4, batch_size: 2, ..FitConfig::default() };
/// let history = fit(&mut model, &mut Sgd::new(0.5)?, &data, None, &config, &mut |_| {})?;
/// assert_eq!(history.epochs.len(), 4);
/// assert!(history.epochs[3].train_loss < history.epochs[0].train_loss);
/// assert!(history.events.is_empty() && history.best_epoch.is_none());
/// assert_eq!(history.to_csv().lines().count(), 1 + 4); // header and one line per epoch
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct History {
    /// One record per completed epoch.
    pub epochs: Vec<EpochRecord>,
    /// What the loop did on its own (divergences handled, early stopping), in order.
    pub events: Vec<String>,
    /// The epoch whose parameters the model holds after early stopping restored them.
    pub best_epoch: Option<usize>,
}

impl History {
    /// The validation metrics beyond loss and accuracy that the first epoch reports (top-5
    /// accuracy, MSE, MAE, R²), the extra columns of the CSV and the table.
    fn extra_metrics(&self) -> Vec<Metric> {
        let first = self
            .epochs
            .first()
            .map_or(&[][..], |r| &r.valid_metrics[..]);
        (first.iter())
            .map(|(m, _)| *m)
            .filter(|m| !matches!(m, Metric::Loss | Metric::Accuracy))
            .collect()
    }

    /// The records as CSV with a header line; missing validation values are empty fields.
    /// Validation metrics beyond loss and accuracy follow as columns `valid_top5_accuracy`,
    /// `valid_mse`, `valid_mae`, `valid_r2`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{EpochRecord, History};
    /// let mut h = History::default();
    /// h.epochs.push(EpochRecord { epoch: 1, train_loss: 0.5, valid_loss: None,
    ///     valid_accuracy: None, valid_metrics: vec![], lr: 0.1, seconds: 2.0,
    ///     samples_per_second: 100.0 });
    /// assert_eq!(h.to_csv().lines().nth(1), Some("1,0.5,,,0.1,2,100"));
    /// ```
    pub fn to_csv(&self) -> String {
        let extra = self.extra_metrics();
        let mut csv = String::from(
            "epoch,train_loss,valid_loss,valid_accuracy,lr,seconds,samples_per_second",
        );
        for m in &extra {
            let name = m.to_string().replace("-", "").replace(' ', "_");
            let _ = write!(csv, ",valid_{name}");
        }
        csv.push('\n');
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for r in &self.epochs {
            let _ = write!(
                csv,
                "{},{},{},{},{},{},{}",
                r.epoch,
                r.train_loss,
                opt(r.valid_loss),
                opt(r.valid_accuracy),
                r.lr,
                r.seconds,
                r.samples_per_second
            );
            for m in &extra {
                let _ = write!(csv, ",{}", opt(r.metric(*m)));
            }
            csv.push('\n');
        }
        csv
    }

    /// Writes [`History::to_csv`] to `path` atomically, as
    /// [`Checkpoint::save`](crate::checkpoint::Checkpoint::save) does: into a temporary file
    /// in the same folder, synced, then renamed over `path`, so a write that fails (a full
    /// disk) leaves the previous file whole.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path: as [`Checkpoint::save`](crate::checkpoint::Checkpoint::save)
    /// (a missing folder, a read-only file, a path that is not a regular file, a failed write).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{EpochRecord, History};
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-history-{}.csv", std::process::id()));
    /// let mut history = History::default();
    /// history.epochs.push(EpochRecord { epoch: 1, train_loss: 0.25, valid_loss: None,
    ///     valid_accuracy: None, valid_metrics: vec![], lr: 0.1, seconds: 1.0,
    ///     samples_per_second: 50.0 });
    /// history.write_csv(&path)?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), history.to_csv());
    /// assert!(history.write_csv(path.join("no-such-folder/h.csv")).is_err());
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::checkpoint::write_atomically(
            "history write_csv",
            path.as_ref(),
            self.to_csv().as_bytes(),
            std::io::Write::write_all,
        )
    }
}

/// The per-epoch table, one line per epoch, then the events and the restored epoch:
///
/// ```text
/// epoch  train loss  valid loss  valid acc      lr  seconds  samples/s
///     1      0.5000           -          -  0.1000     2.00        100
/// ```
///
/// # Examples
/// ```
/// use tapegrad::{EpochRecord, History};
/// let mut h = History::default();
/// h.epochs.push(EpochRecord { epoch: 1, train_loss: 0.5, valid_loss: Some(0.25),
///     valid_accuracy: Some(0.9), valid_metrics: vec![], lr: 0.1, seconds: 2.0,
///     samples_per_second: 100.0 });
/// let table = h.to_string();
/// assert_eq!(table.lines().nth(1), Some(
///     "    1      0.5000      0.2500     90.00%  0.1000     2.00        100"));
/// ```
impl std::fmt::Display for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra = self.extra_metrics();
        write!(
            f,
            "epoch  train loss  valid loss  valid acc      lr  seconds  samples/s"
        )?;
        for m in &extra {
            write!(f, "  {:>10}", format!("valid {m}"))?;
        }
        writeln!(f)?;
        for r in &self.epochs {
            let loss = r.valid_loss.map_or("-".into(), |l| format!("{l:.4}"));
            let accuracy = (r.valid_accuracy).map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
            write!(
                f,
                "{:>5}  {:>10.4}  {loss:>10}  {accuracy:>9}  {:>6.4}  {:>7.2}  {:>9.0}",
                r.epoch, r.train_loss, r.lr, r.seconds, r.samples_per_second
            )?;
            for m in &extra {
                let value = r.metric(*m).map_or("-".into(), |v| format!("{v:.4}"));
                write!(f, "  {value:>10}")?;
            }
            writeln!(f)?;
        }
        for event in &self.events {
            writeln!(f, "{event}")?;
        }
        if let Some(epoch) = self.best_epoch {
            writeln!(f, "restored the parameters of epoch {epoch}")?;
        }
        Ok(())
    }
}

/// What [`fit`] reports to its callback as it goes.
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, tensor, Dataset, FitConfig, Linear, Progress, Sgd, fit};
/// let data = Dataset::from_floats(array![[-1.0], [1.0], [-2.0], [2.0], [3.0]], vec![0, 1, 0, 1, 1])?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// let config = FitConfig { epochs: 2, batch_size: 2, ..FitConfig::default() };
/// let (mut steps, mut epochs) = (Vec::new(), Vec::new());
/// fit(&mut model, &mut Sgd::new(0.1)?, &data, None, &config, &mut |p| match p {
///     Progress::Step { epoch, step, steps: of, .. } => steps.push((*epoch, *step, *of)),
///     Progress::Epoch(record) => epochs.push(record.epoch),
///     Progress::Event(_) => {}
/// })?;
/// assert_eq!(steps.len(), 6); // 3 batches of 5 samples, 2 epochs
/// assert_eq!(steps[5], (2, 3, 3));
/// assert_eq!(epochs, [1, 2]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug)]
pub enum Progress<'a> {
    /// A training step finished.
    Step {
        /// Epoch, from 1.
        epoch: usize,
        /// Step within the epoch, from 1.
        step: usize,
        /// Steps in this epoch.
        steps: usize,
        /// The step's loss.
        loss: f32,
        /// Training samples per second so far this epoch.
        samples_per_second: f64,
    },
    /// An epoch finished (validation included).
    Epoch(&'a EpochRecord),
    /// The loop handled something on its own (see [`History::events`]).
    Event(&'a str),
}

/// Trains `model` on `train` under [`FitConfig::loss`] (by default the loss that fits the
/// targets: softmax cross-entropy for class labels, MSE for float values): for each epoch,
/// shuffled batches (seeded, augmented if [`FitConfig::augment`] says so),
/// `loss.backward()`, `optimizer.step`; then validation in evaluation mode with the metrics
/// of the targets.
///
/// Per-epoch numbers go into the returned [`History`] and to `on_progress`, which also
/// hears each step (for a progress bar).
///
/// # Errors
/// Before the first step: [`Error::InvalidArgument`] for a batch size of 0, zero epochs, a
/// `start_epoch` not below `epochs`, `patience` without validation data, a model with no
/// parameter to train ([`Module::num_trainable_params`] 0), an empty training
/// or validation set, a label that is not one of the model's outputs or a feature that is
/// not finite (naming the data set and the sample); [`Error::Shape`] when the samples'
/// width is not the model's input width. While training: [`Error::Diverged`] when a step is
/// refused (its loss, gradients or update not finite) and `on_divergence` is
/// [`OnDivergence::Stop`], or when [`OnDivergence::HalveLearningRate`] gives up; the
/// parameters are then those of the last accepted step.
///
/// With `FitConfig::distributed` (feature `mpi`), every rank returns the same error, and
/// before the first step: when a rank fails one of the checks above, an
/// [`Error::InvalidArgument`] naming the ranks that failed and each one's error; when a
/// rank's training or validation set differs from rank 0's (its number of samples, its
/// sample values, targets, shapes or scaler, compared by hashes) or its settings do, one
/// naming the ranks and what differs; and when the batch size, or the last batch of an
/// epoch, would have fewer rows than there are ranks (set `drop_last`, or another batch
/// size). PyTorch's
/// `DistributedSampler` would instead pad such an epoch with repeated samples, which trains
/// on other batches than one process does; here `N` ranks train on the batches of one
/// process.
///
/// # Examples
/// ```
/// use tapegrad::prelude::*;
/// # fn main() -> tapegrad::Result<()> {
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// // two Gaussian blobs
/// let x = ndarray::Array2::from_shape_fn((200, 2), |(i, j)| {
///     let centre = if i % 2 == 0 { -2.0 } else { 2.0 };
///     centre + if j == 0 { 0.5 } else { -0.5 }
/// });
/// let noise = tensor::normal(&[200, 2], 0.0, 1.0, &mut rng)?;
/// let x = x + &noise.into_dimensionality::<ndarray::Ix2>().unwrap();
/// let data = Dataset::from_floats(x, (0..200).map(|i| i % 2).collect())?;
/// let mut model = Linear::new(2, 2, Init::default(), &mut rng)?;
/// let mut sgd = Sgd::new(0.1)?;
/// let config = FitConfig { epochs: 5, batch_size: 20, ..FitConfig::default() };
/// let history = fit(&mut model, &mut sgd, &data, Some(&data), &config, &mut |_| {})?;
/// assert!(history.epochs[4].valid_accuracy.unwrap() > 0.9);
/// # Ok(())
/// # }
/// ```
pub fn fit(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    valid: Option<&Dataset>,
    config: &FitConfig,
    on_progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<History> {
    in_pool(|| fit_here(model, optimizer, train, valid, config, on_progress))
}

/// What [`fit`] checks before its first step: the settings, and the training and validation
/// sets against `model` and `loss` ([`check_data`]).
fn check_fit(
    model: &dyn Module,
    train: &Dataset,
    valid: Option<&Dataset>,
    config: &FitConfig,
    loss: &Loss,
) -> Result<()> {
    if config.epochs == 0 {
        return Err(Error::InvalidArgument {
            op: "fit",
            message: "epochs must be at least 1, got 0".into(),
        });
    }
    if config.patience.is_some() && valid.is_none() {
        return Err(Error::InvalidArgument {
            op: "fit",
            message: "early stopping (patience) needs validation data, got none".into(),
        });
    }
    if model.num_trainable_params() == 0 {
        // PyTorch's backward raises on a loss that needs no gradient
        return Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "expected a model with a parameter to train, found {} parameters, none of \
                 them requiring a gradient (see Module::set_requires_grad)",
                model.num_params()
            ),
        });
    }
    if let Some(plateau) = &config.plateau {
        plateau.validate()?;
        let watched = plateau.monitor.watched();
        match valid {
            None => {
                return Err(Error::InvalidArgument {
                    op: "fit",
                    message: "reducing the rate on a plateau needs validation data, got none"
                        .into(),
                });
            }
            Some(valid) => check_watched("the plateau", valid, watched)?,
        }
    }
    if config.start_epoch >= config.epochs {
        return Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "start_epoch must be below epochs, got start_epoch {} with epochs {}",
                config.start_epoch, config.epochs
            ),
        });
    }
    check_data("fit", "training set", model, train, loss)?;
    if config.drop_last && train.len() < config.batch_size {
        return Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "drop_last leaves no batch: expected at least batch_size = {} training \
                 samples, found {}",
                config.batch_size,
                train.len()
            ),
        });
    }
    if let Some(augment) = &config.augment {
        train.batches(1)?.augmented(augment, 0)?;
    }
    if let Some(valid) = valid {
        check_data("fit", "validation set", model, valid, loss)?;
        if config.patience.is_some() {
            check_watched("early stopping", valid, config.monitor.watched())?;
        }
    }
    // a batch size of 0 is refused here, as every epoch's batches would
    train.batches(config.batch_size).map(drop)
}

/// [`fit`] on the calling thread.
fn fit_here(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    valid: Option<&Dataset>,
    config: &FitConfig,
    on_progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<History> {
    let loss = (config.loss.clone()).unwrap_or_else(|| Loss::default_for(train.targets()));
    let checked = check_fit(&*model, train, valid, config, &loss);
    // across ranks, every rank learns of every rank's checks (and whether their data and
    // settings agree) before any collective of training
    #[cfg(feature = "mpi")]
    let checked = match &config.distributed {
        Some(world) => world.agree_before_fit(checked, train, valid, config, &optimizer.settings()),
        None => checked,
    };
    checked?;
    let mut history = History::default();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let epoch_batches = |rng: &mut ChaCha8Rng| {
        let batches = train.batches(config.batch_size)?;
        Ok::<_, Error>(match config.shuffle {
            true => batches.shuffled(rng),
            false => batches,
        })
    };
    for _ in 0..config.start_epoch {
        // replay the shuffles of the epochs done before, so epoch k shuffles alike whether
        // or not the run was resumed
        epoch_batches(&mut rng)?;
    }
    #[allow(unused_mut)]
    let mut train_step = TrainStep::new();
    #[cfg(feature = "mpi")]
    let mut others_quiet = |_: &Progress<'_>| {};
    #[cfg(feature = "mpi")]
    let on_progress: &mut (dyn FnMut(&Progress<'_>) + Send) = match &config.distributed {
        Some(world) => {
            train_step = train_step.distributed(world.clone());
            if world.is_root() {
                on_progress
            } else {
                &mut others_quiet
            }
        }
        None => on_progress,
    };
    let mut refused_in_a_row = 0;
    let mut last_refusal = String::new();
    let mut best: Option<(f64, usize, ParamSnapshot)> = None;
    let mut nan_reported = false;
    for epoch in config.start_epoch + 1..=config.epochs {
        let start = Instant::now();
        let mut batches = epoch_batches(&mut rng)?.drop_last(config.drop_last);
        if let Some(augment) = &config.augment {
            batches = batches.augmented(augment, epoch_seed(config.seed, epoch))?;
        }
        let steps = batches.num_batches();
        let (mut loss_sum, mut counted, mut samples) = (0.0, 0usize, 0usize);
        let mut step = 0;
        while let Some(batch) = batches.next() {
            step += 1;
            let samples_in_batch = batch.len();
            let outcome = train_step.run(model, optimizer, batch, &loss);
            let value = match (outcome, config.on_divergence) {
                (Ok(value), _) => {
                    loss_sum += f64::from(value);
                    counted += 1;
                    samples += samples_in_batch;
                    refused_in_a_row = 0;
                    value
                }
                (Err(Error::Diverged { what, .. }), OnDivergence::HalveLearningRate)
                    if refused_in_a_row < MAX_HALVINGS =>
                {
                    refused_in_a_row += 1;
                    let lr = optimizer.base_lr() / 2.0;
                    optimizer.set_base_lr(lr)?;
                    history.events.push(format!(
                        "epoch {epoch}, batch {step}: step refused because {what}; base learning rate halved to {lr}"
                    ));
                    last_refusal = what;
                    on_progress(&Progress::Event(
                        history.events.last().expect("just pushed"),
                    ));
                    Elem::NAN
                }
                (Err(Error::Diverged { op, step: at, what }), on_divergence) => {
                    let gave_up = match on_divergence {
                        OnDivergence::Stop => String::new(),
                        OnDivergence::HalveLearningRate => format!(
                            "; gave up after halving the base learning rate {MAX_HALVINGS} \
                             times without an accepted step (it is now {}); the largest \
                             parameter magnitude is {:.3e}",
                            optimizer.base_lr(),
                            largest_magnitude(&*model)
                        ),
                    };
                    return Err(Error::Diverged {
                        op,
                        step: at,
                        what: format!("{what} (epoch {epoch}, batch {step}){gave_up}"),
                    });
                }
                (Err(e), _) => return Err(e),
            };
            on_progress(&Progress::Step {
                epoch,
                step,
                steps,
                loss: value,
                samples_per_second: samples as f64 / start.elapsed().as_secs_f64(),
            });
        }
        if counted == 0 {
            return Err(Error::Diverged {
                op: "fit",
                step: optimizer.steps(),
                what: format!(
                    "every step of epoch {epoch} was refused, the last because {last_refusal}; \
                     the largest parameter magnitude is {:.3e}",
                    largest_magnitude(&*model)
                ),
            });
        }
        let seconds = start.elapsed().as_secs_f64();
        let lr = optimizer.lr();
        optimizer.end_epoch();
        let evaluation = valid
            .map(|v| evaluate_checked(&*model, v, &loss, config.eval_batch_size))
            .transpose()?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / counted as f64,
            valid_loss: evaluation.as_ref().map(|e| e.loss),
            valid_accuracy: evaluation.as_ref().and_then(|e| e.accuracy),
            valid_metrics: evaluation.as_ref().map_or_else(Vec::new, |e| {
                let mut metrics = e.metrics();
                let watched = config.monitor.watched();
                if let Some(value) = e.metric(watched)
                    && !metrics.iter().any(|(m, _)| *m == watched)
                {
                    metrics.push((watched, value));
                }
                metrics
            }),
            lr,
            seconds,
            samples_per_second: samples as f64 / seconds,
        };
        if let Some(plateau) = &config.plateau
            && let Some(value) =
                (evaluation.as_ref()).and_then(|e| e.metric(plateau.monitor.watched()))
        {
            let lr = optimizer.base_lr();
            let (state, next) = plateau.observe(optimizer.plateau(), value, lr);
            optimizer.set_plateau(Some(state));
            if next != lr {
                optimizer.set_base_lr(next)?;
                history.events.push(format!(
                    "epoch {epoch}: the validation {} is on a plateau; base learning rate \
                     reduced to {next}",
                    plateau.monitor.watched()
                ));
                on_progress(&Progress::Event(
                    history.events.last().expect("just pushed"),
                ));
            }
        }
        on_progress(&Progress::Epoch(&record));
        history.epochs.push(record);
        let watched = config
            .monitor
            .value(history.epochs.last().expect("just pushed"));
        if let (Some(_), Some(value)) = (config.patience, watched)
            && value.is_nan()
            && !nan_reported
        {
            // no epoch can be told better or worse by it: say so once
            nan_reported = true;
            history.events.push(format!(
                "epoch {epoch}: the validation {} is NaN; early stopping skips such epochs \
                 (none of them is kept as the best)",
                config.monitor.watched()
            ));
            on_progress(&Progress::Event(
                history.events.last().expect("just pushed"),
            ));
        }
        if let (Some(patience), Some(value)) = (config.patience, watched.filter(|v| !v.is_nan())) {
            if (best.as_ref()).is_none_or(|(b, _, _)| config.monitor.improves(value, *b)) {
                best = Some((value, epoch, ParamSnapshot::of(&*model)));
            } else if epoch - best.as_ref().expect("set on the first epoch").1 >= patience {
                let event = format!(
                    "epoch {epoch}: no better validation {} for {patience} epochs; stopped early",
                    config.monitor.watched()
                );
                history.events.push(event);
                on_progress(&Progress::Event(
                    history.events.last().expect("just pushed"),
                ));
                break;
            }
        }
    }
    if let Some((_, epoch, values)) = best {
        values.restore(model)?;
        history.best_epoch = Some(epoch);
    }
    // the ranks end with the same parameters, or all say they do not
    #[cfg(feature = "mpi")]
    if let Some(world) = &config.distributed {
        world.check_parameters(&*model, Some(optimizer.steps()))?;
    }
    // the optimizers refuse every update that would make a parameter non-finite; this holds
    // fit to it whatever the optimizer
    let largest = largest_magnitude(&*model);
    if !largest.is_finite() {
        return Err(Error::Diverged {
            op: "fit",
            step: optimizer.steps(),
            what: format!("after training a parameter is {largest}"),
        });
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{BatchNorm1d, Init, Linear, Relu, Sequential};
    use crate::optim::Sgd;
    use crate::tensor;
    use ndarray::Array2;

    /// Two classes separated by the sign of x₀ + x₁, with some overlap.
    fn blobs(n: usize, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = tensor::normal(&[n, 2], 0.0, 1.0, &mut rng).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let x = Array2::from_shape_fn((n, 2), |(i, j)| {
            noise[[i, j]] + if labels[i] == 1 { 1.5 } else { -1.5 }
        });
        Dataset::from_floats(x, labels).unwrap()
    }

    fn mlp(seed: u64) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Sequential::new(vec![
            Box::new(Linear::new(2, 8, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
            Box::new(Linear::new(8, 2, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap()
    }

    #[test]
    fn fit_records_history_and_learns() {
        let (train, valid) = (blobs(400, 1), blobs(200, 2));
        let mut model = mlp(0);
        let mut sgd = Sgd::new(0.1).unwrap();
        let config = FitConfig {
            epochs: 4,
            batch_size: 32,
            ..FitConfig::default()
        };
        let mut steps = 0;
        let history = fit(
            &mut model,
            &mut sgd,
            &train,
            Some(&valid),
            &config,
            &mut |p| {
                if let Progress::Step { .. } = p {
                    steps += 1;
                }
            },
        )
        .unwrap();
        assert_eq!(steps, 4 * 13);
        assert_eq!(history.epochs.len(), 4);
        let last = history.epochs.last().unwrap();
        assert!(last.train_loss < history.epochs[0].train_loss);
        assert!(last.valid_accuracy.unwrap() > 0.85, "{last:?}");
        assert_eq!(history.to_csv().lines().count(), 5);
    }

    #[test]
    fn without_shuffling_fit_steps_through_the_data_in_order() {
        let train = blobs(50, 4);
        let params = |m: &Sequential| {
            let mut all = Vec::new();
            m.visit_params(&mut |_, p| all.extend(p.value().iter().copied()));
            all
        };
        let by_fit = |shuffle: bool| {
            let mut model = mlp(1);
            let config = FitConfig {
                epochs: 2,
                batch_size: 16,
                shuffle,
                ..FitConfig::default()
            };
            fit(
                &mut model,
                &mut Sgd::new(0.1).unwrap(),
                &train,
                None,
                &config,
                &mut |_| {},
            )
            .unwrap();
            params(&model)
        };
        // the same steps by hand, batches in the data set's order
        let mut by_hand = mlp(1);
        let (mut sgd, mut step) = (Sgd::new(0.1).unwrap(), TrainStep::new());
        for _ in 0..2 {
            let mut batches = train.batches(16).unwrap();
            while let Some(batch) = batches.next() {
                (step.run(&mut by_hand, &mut sgd, batch, &Loss::CrossEntropy)).unwrap();
            }
        }
        assert_eq!(by_fit(false), params(&by_hand));
        assert_ne!(by_fit(true), params(&by_hand));
    }

    #[test]
    fn same_seed_gives_bit_identical_parameters() {
        let train = blobs(300, 3);
        let run = || {
            let mut model = mlp(7);
            let mut sgd = Sgd::new(0.05).unwrap().momentum(0.9).unwrap();
            let config = FitConfig {
                epochs: 2,
                batch_size: 16,
                seed: 11,
                ..FitConfig::default()
            };
            fit(&mut model, &mut sgd, &train, None, &config, &mut |_| {}).unwrap();
            ParamSnapshot::of(&model)
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn a_resumed_run_continues_bit_for_bit() {
        let train = blobs(100, 8);
        let sgd = || Sgd::new(0.05).unwrap().momentum(0.9).unwrap();
        // trains `model` with `opt` from epoch `start` to epoch `epochs`
        let run = |model: &mut Sequential, opt: &mut Sgd, epochs, start_epoch| {
            let config = FitConfig {
                epochs,
                start_epoch,
                batch_size: 16,
                seed: 5,
                ..FitConfig::default()
            };
            fit(model, opt, &train, None, &config, &mut |_| {}).unwrap()
        };
        let mut model = mlp(2);
        run(&mut model, &mut sgd(), 3, 0);
        // 1 epoch, then a fresh optimizer with the same state and 2 more from epoch 1
        let mut resumed = mlp(2);
        let mut first = sgd();
        run(&mut resumed, &mut first, 1, 0);
        let mut second = sgd();
        second.load_state(first.state().unwrap()).unwrap();
        let history = run(&mut resumed, &mut second, 3, 1);
        assert_eq!(history.epochs[0].epoch, 2);
        assert_eq!(ParamSnapshot::of(&model), ParamSnapshot::of(&resumed));
    }

    #[test]
    fn divergence_stops_or_halves_the_learning_rate() {
        let train = blobs(64, 4);
        let config = FitConfig {
            epochs: 1,
            batch_size: 64,
            ..FitConfig::default()
        };
        // a learning rate so large that the loss overflows
        let mut model = mlp(0);
        let mut sgd = Sgd::new(1e30).unwrap();
        let stop = FitConfig {
            epochs: 3,
            ..config.clone()
        };
        let err = fit(&mut model, &mut sgd, &train, None, &stop, &mut |_| {}).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Diverged { .. }), "{text}");
        assert!(text.contains("the step changed nothing"), "{text}");
        // the refused step left the parameters finite
        assert!(largest_magnitude(&model).is_finite());
        // halving cannot undo the accepted first step (lr·g just under 2¹⁰²), so the next
        // epoch's only step is refused too, and fit says so instead of returning Ok
        let halve = FitConfig {
            epochs: 3,
            on_divergence: OnDivergence::HalveLearningRate,
            ..config
        };
        let (mut model, mut sgd) = (mlp(0), Sgd::new(1e30).unwrap());
        let err = fit(&mut model, &mut sgd, &train, None, &halve, &mut |_| {}).unwrap_err();
        assert!(
            err.to_string()
                .contains("every step of epoch 2 was refused"),
            "{err}"
        );

        // one sample whose loss overflows: its batch is refused each epoch, the rate halved,
        // and training goes on
        let mut x = Array2::from_shape_fn((64, 2), |(i, j)| (i + j) as f32 / 64.0);
        x[[5, 0]] = 3e38;
        let spiky = Dataset::from_floats(x, train.labels().unwrap().to_vec()).unwrap();
        let (mut model, mut sgd) = (mlp(0), Sgd::new(0.1).unwrap());
        let eight = FitConfig {
            batch_size: 8,
            ..halve
        };
        let history = fit(&mut model, &mut sgd, &spiky, None, &eight, &mut |_| {}).unwrap();
        assert_eq!(history.events.len(), 3, "{:?}", history.events);
        assert!(
            history.events[0].contains("halved to 0.05"),
            "{:?}",
            history.events
        );
        assert_eq!(sgd.base_lr(), 0.1 / 8.0);
        assert_eq!(history.epochs.len(), 3);
    }

    #[test]
    fn early_stopping_restores_the_best_epoch() {
        let (train, valid) = (blobs(64, 5), blobs(400, 6));
        // with a batch norm, whose running statistics are restored too (evaluation reads
        // them, so parameters alone would give another validation loss)
        let with_batch_norm = || {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            Sequential::new(vec![
                Box::new(Linear::new(2, 8, Init::default(), &mut rng).unwrap()),
                Box::new(BatchNorm1d::new(8).unwrap()),
                Box::new(Relu),
                Box::new(Linear::new(8, 2, Init::default(), &mut rng).unwrap()),
            ])
            .unwrap()
        };
        for (mut model, lr) in [(mlp(1), 2.0), (with_batch_norm(), 1.0)] {
            // a large lr makes the validation loss bounce, so some epoch is not the best
            let mut sgd = Sgd::new(lr).unwrap();
            let config = FitConfig {
                epochs: 30,
                batch_size: 8,
                patience: Some(2),
                ..FitConfig::default()
            };
            let history = fit(
                &mut model,
                &mut sgd,
                &train,
                Some(&valid),
                &config,
                &mut |_| {},
            )
            .unwrap();
            let best = history.best_epoch.unwrap();
            let best_loss = history.epochs[best - 1].valid_loss.unwrap();
            assert!(
                history
                    .epochs
                    .iter()
                    .all(|r| r.valid_loss.unwrap() >= best_loss)
            );
            let now = evaluate(&model, &valid, config.eval_batch_size)
                .unwrap()
                .loss;
            assert_eq!(now, best_loss, "{}", model.describe());
            assert!(history.epochs.len() < 30, "stopped early");
            assert!(
                best < history.epochs.len(),
                "the last epoch was not the best"
            );
        }
    }

    #[test]
    fn a_model_with_nothing_to_train_is_refused() {
        let data = blobs(16, 1);
        let mut model = mlp(1);
        model.set_requires_grad(false);
        let err = fit(
            &mut model,
            &mut Sgd::new(0.1).unwrap(),
            &data,
            None,
            &FitConfig::default(),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("fit: expected a model with a parameter to train, found "),
            "{err}"
        );
        assert!(err.contains("none of them requiring a gradient"), "{err}");
    }

    #[test]
    fn early_stopping_says_once_that_a_nan_metric_cannot_be_compared_and_keeps_no_best() {
        // R² of one validation sample is NaN (its targets have no spread)
        let x = Array2::from_shape_fn((32, 2), |(i, j)| ((i * 3 + j) % 7) as f32 / 7.0);
        let y = x
            .sum_axis(ndarray::Axis(1))
            .insert_axis(ndarray::Axis(1))
            .into_dyn();
        let train = Dataset::new(x.clone(), Targets::Values(y.clone())).unwrap();
        let one = x.slice(ndarray::s![..1, ..]).to_owned();
        let valid = Dataset::new(
            one,
            Targets::Values(y.slice(ndarray::s![..1, ..]).to_owned().into_dyn()),
        )
        .unwrap();
        let config = FitConfig {
            epochs: 5,
            batch_size: 8,
            patience: Some(2),
            monitor: Monitor::metric(crate::Metric::R2),
            ..FitConfig::default()
        };
        let mut model =
            crate::nn::Linear::new(2, 1, Init::default(), &mut ChaCha8Rng::seed_from_u64(0))
                .unwrap();
        let history = fit(
            &mut model,
            &mut Sgd::new(0.1).unwrap(),
            &train,
            Some(&valid),
            &config,
            &mut |_| {},
        )
        .unwrap();
        let r2 = |r: &EpochRecord| {
            (r.valid_metrics.iter())
                .find(|(m, _)| *m == crate::Metric::R2)
                .map(|m| m.1)
        };
        assert!(
            history
                .epochs
                .iter()
                .all(|r| r2(r).is_some_and(f64::is_nan))
        );
        assert_eq!((history.epochs.len(), history.best_epoch), (5, None));
        assert_eq!(
            history.events,
            [
                "epoch 1: the validation r2 is NaN; early stopping skips such epochs (none of \
              them is kept as the best)"
            ]
        );
    }

    #[test]
    fn early_stopping_can_watch_validation_accuracy() {
        let (train, valid) = (blobs(64, 5), blobs(400, 6));
        let config = FitConfig {
            epochs: 30,
            batch_size: 8,
            patience: Some(3),
            monitor: Monitor::ValidAccuracy,
            ..FitConfig::default()
        };
        let (mut model, mut sgd) = (mlp(1), Sgd::new(2.0).unwrap());
        let history = fit(
            &mut model,
            &mut sgd,
            &train,
            Some(&valid),
            &config,
            &mut |_| {},
        );
        let history = history.unwrap();
        let best = history.best_epoch.unwrap();
        let accuracy = |r: &EpochRecord| r.valid_accuracy.unwrap();
        let best_accuracy = accuracy(&history.epochs[best - 1]);
        // the first epoch with the highest accuracy, whatever its loss
        let first_best = (history.epochs.iter()).position(|r| accuracy(r) == best_accuracy);
        assert_eq!(first_best, Some(best - 1));
        assert!(history.epochs.iter().all(|r| accuracy(r) <= best_accuracy));
        let now = evaluate(&model, &valid, 1000).unwrap().accuracy.unwrap();
        assert_eq!(now, best_accuracy);
        assert!(
            history
                .events
                .last()
                .unwrap()
                .contains("no better validation accuracy for 3 epochs"),
            "{:?}",
            history.events
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let data = blobs(10, 0);
        let mut model = mlp(0);
        let mut sgd = Sgd::new(0.1).unwrap();
        let run =
            |config: FitConfig, valid: Option<&Dataset>, model: &mut Sequential, sgd: &mut Sgd| {
                fit(model, sgd, &data, valid, &config, &mut |_| {})
                    .unwrap_err()
                    .to_string()
            };
        let zero = FitConfig {
            batch_size: 0,
            ..FitConfig::default()
        };
        assert!(run(zero, None, &mut model, &mut sgd).contains("batch_size must be at least 1"));
        let no_epochs = FitConfig {
            epochs: 0,
            ..FitConfig::default()
        };
        assert!(run(no_epochs, None, &mut model, &mut sgd).contains("epochs must be at least 1"));
        let patience = FitConfig {
            patience: Some(1),
            ..FitConfig::default()
        };
        assert!(run(patience, None, &mut model, &mut sgd).contains("needs validation data"));
        let done = FitConfig {
            epochs: 3,
            start_epoch: 3,
            ..FitConfig::default()
        };
        assert!(
            run(done, None, &mut model, &mut sgd)
                .contains("start_epoch must be below epochs, got start_epoch 3 with epochs 3")
        );
    }

    #[test]
    fn an_image_model_names_the_layer_its_samples_do_not_fit() {
        use crate::nn::{Conv2d, Flatten};
        let mut rng = crate::ChaCha8Rng::seed_from_u64(0);
        let conv = Conv2d::new(
            1,
            2,
            [3, 3],
            crate::Conv2dOptions::default(),
            Init::default(),
            &mut rng,
        );
        let mut model = Sequential::new(vec![
            Box::new(conv.unwrap()),
            Box::new(Flatten),
            Box::new(Linear::new(2 * 4 * 4, 2, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap();
        // two-channel 6×6 images into a one-channel convolution
        let x = Array2::from_elem((4, 72), 0.5);
        let data = Dataset::from_floats(x, vec![0, 1, 0, 1])
            .unwrap()
            .with_sample_shape(&[2, 6, 6])
            .unwrap();
        let mut sgd = Sgd::new(0.1).unwrap();
        let config = FitConfig {
            epochs: 1,
            batch_size: 2,
            ..FitConfig::default()
        };
        let err = fit(&mut model, &mut sgd, &data, None, &config, &mut |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fit: expected training set samples the model can take, found samples of shape [2, 6, 6]: \
             sequential: expected at layer 0 (Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0))) \
             a 4-D input [N, 1, H, W], found [1, 2, 6, 6]"
        );
    }
}
