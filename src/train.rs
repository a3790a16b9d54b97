//! The training loop for classifiers: epochs of shuffled mini-batches (or the full batch
//! for gradient descent), softmax cross-entropy, per-epoch history with validation loss and
//! accuracy, a progress callback, early stopping, and the divergence guard; plus
//! [`evaluate`], which measures a model on unseen data in evaluation mode, and
//! [`Predictor`], which classifies new samples with the fitted scaler applied.

mod predict;
mod step;

pub use predict::{Predictions, Predictor, Samples};
pub use step::TrainStep;

use crate::autograd::tape::Tape;
use crate::data::Dataset;
use crate::diagnostics::ParamSnapshot;
use crate::error::{Error, Result};
use crate::metrics::{ConfusionMatrix, predictions};
use crate::nn::{Mode, Module};
use crate::optim::Optimizer;
use crate::tensor::Elem;
use crate::threads::in_pool;
use ndarray::Ix2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Loss, accuracy and confusion matrix of a model on a data set.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean softmax cross-entropy over all samples.
    pub loss: f64,
    /// Fraction of samples whose arg-max prediction is the label.
    pub accuracy: f64,
    /// Counts of (true class, predicted class).
    pub confusion: ConfusionMatrix,
}

/// Evaluates `model` on `data` in [`Mode::Eval`] (dropout off, every unit used) on an
/// inference tape, `batch_size` samples at a time.
///
/// # Errors
/// [`Error::InvalidArgument`] when `batch_size` is 0, or when `data` does not fit `model`
/// (see [`fit`]'s checks).
///
/// # Examples
/// ```
/// use tapegrad::{evaluate, ndarray::array, tensor, Dataset, Linear};
/// // a fixed classifier: class 1 when x > 0
/// let model = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
/// let data = Dataset::from_floats(array![[2.0], [-1.0], [3.0]], vec![1, 0, 0])?;
/// let eval = evaluate(&model, &data, 2)?;
/// assert!((eval.accuracy - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(eval.confusion.count(0, 1), 1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn evaluate(model: &dyn Module, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_data("evaluate", "data set", model, data)?;
    evaluate_checked(model, data, batch_size)
}

/// [`evaluate`] on data already checked against the model ([`fit`] checks its validation
/// set once, not every epoch).
fn evaluate_checked(model: &dyn Module, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    let mut confusion = ConfusionMatrix::new(data.num_classes());
    let mut total_loss = 0.0;
    let mut tape = Tape::inference();
    let mut batches = data.batches(batch_size)?;
    while let Some(batch) = batches.next() {
        tape.reset();
        let logits = model.forward(tape.constant(batch.x), Mode::Eval);
        let loss = logits.cross_entropy(batch.labels).item();
        total_loss += f64::from(loss) * batch.labels.len() as f64;
        let scores =
            logits
                .value()
                .into_dimensionality::<Ix2>()
                .map_err(|_| Error::InvalidArgument {
                    op: "evaluate",
                    message: format!(
                        "model output must be [batch, classes], got {:?}",
                        logits.shape()
                    ),
                })?;
        confusion.add(&predictions(&scores), batch.labels);
    }
    Ok(Evaluation {
        loss: total_loss / data.len() as f64,
        accuracy: confusion.accuracy(),
        confusion,
    })
}

/// What [`fit`] does when a step is refused because its loss, its gradients or its update
/// are NaN or infinite (see [`Optimizer::step`]). Either way the refused step changes
/// nothing.
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

/// Checks, before any step, that `data` (called `what` in messages) can go through `model`:
/// it has samples, its width is the model's input width, every label is one of the model's
/// outputs, and every stored feature is finite. Models that do not
/// declare their widths ([`Module::in_features`], [`Module::out_features`]) are checked
/// where they do.
fn check_data(op: &'static str, what: &str, model: &dyn Module, data: &Dataset) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidArgument { op, message });
    if data.is_empty() {
        return invalid(format!("the {what} is empty, expected at least one sample"));
    }
    if let Some(width) = model.in_features()
        && width != data.num_features()
    {
        return Err(Error::Shape {
            op,
            expected: format!(
                "{what} samples of width {width} (the input width of the model's first layer)"
            ),
            found: format!("width {}", data.num_features()),
        });
    }
    if let Some(classes) = model.out_features()
        && let Some((sample, label)) =
            (data.labels().iter().enumerate()).find(|(_, l)| **l >= classes)
    {
        return invalid(format!(
            "{what} sample {sample} has label {label}, expected a label below {classes} (the \
             model's last layer has {classes} outputs)"
        ));
    }
    if let Some(found) = data.first_non_finite() {
        return invalid(format!("{what}: {found}, expected finite values"));
    }
    Ok(())
}

/// What early stopping watches ([`FitConfig::patience`]), and which way is better: as
/// Keras' `EarlyStopping(monitor=..., mode=...)` and Lightning's, with the mode that fits
/// the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// The validation loss; lower is better (`monitor="val_loss", mode="min"`).
    ValidLoss,
    /// The validation accuracy; higher is better (`monitor="val_accuracy", mode="max"`).
    /// Accuracy moves in steps of one sample, so ties are common: a tie is no improvement,
    /// and the earlier epoch stays the best.
    ValidAccuracy,
}

impl Monitor {
    /// The watched value of an epoch (`None` without validation data).
    pub fn value(self, record: &EpochRecord) -> Option<f64> {
        match self {
            Monitor::ValidLoss => record.valid_loss,
            Monitor::ValidAccuracy => record.valid_accuracy,
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
        match self {
            Monitor::ValidLoss => value < best,
            Monitor::ValidAccuracy => value > best,
        }
    }

    /// The metric's name in messages.
    fn name(self) -> &'static str {
        match self {
            Monitor::ValidLoss => "validation loss",
            Monitor::ValidAccuracy => "validation accuracy",
        }
    }
}

/// Settings of [`fit`].
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// Passes over the training data, counted from the start of training (resumed runs
    /// included): training ends after epoch `epochs`. Default 10.
    pub epochs: usize,
    /// Epochs already done before this call (0 for a fresh run): [`fit`] trains epochs
    /// `start_epoch + 1 ..= epochs`. To resume from a checkpoint, restore the model and
    /// optimizer with [`Checkpoint::resume`](crate::Checkpoint::resume) and set this to the
    /// epochs it returns; with the same seed, the run then continues bit for bit as if it
    /// had never stopped (the shuffles of the skipped epochs are replayed, without
    /// training). Early stopping's patience counts from here. Default 0.
    pub start_epoch: usize,
    /// Samples per step; the training set's size gives full-batch gradient descent.
    /// Default 64.
    pub batch_size: usize,
    /// Seed of the shuffling order (a fresh order each epoch). Default 0.
    pub seed: u64,
    /// Leave out a last batch smaller than `batch_size`. Default `false` (kept, as
    /// PyTorch's `DataLoader`).
    pub drop_last: bool,
    /// What to do with a step refused for a non-finite loss, gradient or update. Default
    /// [`OnDivergence::Stop`].
    pub on_divergence: OnDivergence,
    /// Early stopping: stop after this many epochs in which [`FitConfig::monitor`] did not
    /// improve, and restore the parameters of the best epoch. Needs validation data.
    /// Default `None` (no early stopping).
    pub patience: Option<usize>,
    /// What early stopping watches. Default [`Monitor::ValidLoss`].
    pub monitor: Monitor,
    /// Batch size of the validation pass. Default 1,000.
    pub eval_batch_size: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 10,
            start_epoch: 0,
            batch_size: 64,
            seed: 0,
            drop_last: false,
            on_divergence: OnDivergence::Stop,
            patience: None,
            monitor: Monitor::ValidLoss,
            eval_batch_size: 1000,
        }
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (in training mode, so with dropout).
    pub train_loss: f64,
    /// Validation loss in evaluation mode, if validation data was given.
    pub valid_loss: Option<f64>,
    /// Validation accuracy, if validation data was given.
    pub valid_accuracy: Option<f64>,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Wall time of the epoch's training steps, in seconds.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_second: f64,
}

/// The per-epoch record of a [`fit`], printable and exportable as CSV.
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
    /// The records as CSV with a header line; missing validation values are empty fields.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{EpochRecord, History};
    /// let mut h = History::default();
    /// h.epochs.push(EpochRecord { epoch: 1, train_loss: 0.5, valid_loss: None,
    ///     valid_accuracy: None, lr: 0.1, seconds: 2.0, samples_per_second: 100.0 });
    /// assert_eq!(h.to_csv().lines().nth(1), Some("1,0.5,,,0.1,2,100"));
    /// ```
    pub fn to_csv(&self) -> String {
        let mut csv = String::from(
            "epoch,train_loss,valid_loss,valid_accuracy,lr,seconds,samples_per_second\n",
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for r in &self.epochs {
            let _ = writeln!(
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
        }
        csv
    }

    /// Writes [`History::to_csv`] to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_csv()).map_err(|e| Error::io(path, e))
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
///     valid_accuracy: Some(0.9), lr: 0.1, seconds: 2.0, samples_per_second: 100.0 });
/// let table = h.to_string();
/// assert_eq!(table.lines().nth(1), Some(
///     "    1      0.5000      0.2500     90.00%  0.1000     2.00        100"));
/// ```
impl std::fmt::Display for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "epoch  train loss  valid loss  valid acc      lr  seconds  samples/s"
        )?;
        for r in &self.epochs {
            let loss = r.valid_loss.map_or("-".into(), |l| format!("{l:.4}"));
            let accuracy = (r.valid_accuracy).map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
            writeln!(
                f,
                "{:>5}  {:>10.4}  {loss:>10}  {accuracy:>9}  {:>6.4}  {:>7.2}  {:>9.0}",
                r.epoch, r.train_loss, r.lr, r.seconds, r.samples_per_second
            )?;
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

/// Trains a classifier with softmax cross-entropy: for each epoch, shuffled batches
/// (seeded), `loss.backward()`, `optimizer.step`; then validation in evaluation mode.
///
/// Per-epoch numbers go into the returned [`History`] and to `on_progress`, which also
/// hears each step (for a progress bar).
///
/// # Errors
/// Before the first step: [`Error::InvalidArgument`] for a batch size of 0, zero epochs, a
/// `start_epoch` not below `epochs`, `patience` without validation data, an empty training
/// or validation set, a label that is not one of the model's outputs or a feature that is
/// not finite (naming the data set and the sample); [`Error::Shape`] when the samples'
/// width is not the model's input width. While training: [`Error::Diverged`] when a step is
/// refused (its loss, gradients or update not finite) and `on_divergence` is
/// [`OnDivergence::Stop`], or when [`OnDivergence::HalveLearningRate`] gives up; the
/// parameters are then those of the last accepted step.
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

/// [`fit`] on the calling thread.
fn fit_here(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    valid: Option<&Dataset>,
    config: &FitConfig,
    on_progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<History> {
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
    if config.start_epoch >= config.epochs {
        return Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "start_epoch must be below epochs, got start_epoch {} with epochs {}",
                config.start_epoch, config.epochs
            ),
        });
    }
    check_data("fit", "training set", &*model, train)?;
    if let Some(valid) = valid {
        check_data("fit", "validation set", &*model, valid)?;
    }
    let mut history = History::default();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    for _ in 0..config.start_epoch {
        // replay the shuffles of the epochs done before, so epoch k shuffles alike whether
        // or not the run was resumed
        let _ = train.batches(config.batch_size)?.shuffled(&mut rng);
    }
    let mut train_step = TrainStep::new();
    let mut refused_in_a_row = 0;
    let mut last_refusal = String::new();
    let mut best: Option<(f64, usize, ParamSnapshot)> = None;
    for epoch in config.start_epoch + 1..=config.epochs {
        let start = Instant::now();
        let mut batches = train
            .batches(config.batch_size)?
            .shuffled(&mut rng)
            .drop_last(config.drop_last);
        let steps = batches.num_batches();
        let (mut loss_sum, mut counted, mut samples) = (0.0, 0usize, 0usize);
        let mut step = 0;
        while let Some(batch) = batches.next() {
            step += 1;
            let samples_in_batch = batch.labels.len();
            let outcome = train_step.run(model, optimizer, batch, |logits, labels| {
                logits.cross_entropy(labels)
            });
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
            .map(|v| evaluate_checked(&*model, v, config.eval_batch_size))
            .transpose()?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / counted as f64,
            valid_loss: evaluation.as_ref().map(|e| e.loss),
            valid_accuracy: evaluation.as_ref().map(|e| e.accuracy),
            lr,
            seconds,
            samples_per_second: samples as f64 / seconds,
        };
        on_progress(&Progress::Epoch(&record));
        history.epochs.push(record);
        let watched = config
            .monitor
            .value(history.epochs.last().expect("just pushed"));
        if let (Some(patience), Some(value)) = (config.patience, watched) {
            if (best.as_ref()).is_none_or(|(b, _, _)| config.monitor.improves(value, *b)) {
                best = Some((value, epoch, ParamSnapshot::of(&*model)));
            } else if epoch - best.as_ref().expect("set on the first epoch").1 >= patience {
                let event = format!(
                    "epoch {epoch}: no better {} for {patience} epochs; stopped early",
                    config.monitor.name()
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
    use crate::nn::{Init, Linear, Relu, Sequential};
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
        let spiky = Dataset::from_floats(x, train.labels().to_vec()).unwrap();
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
        let mut model = mlp(1);
        // a large lr makes the validation loss bounce, so some epoch is not the best
        let mut sgd = Sgd::new(2.0).unwrap();
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
        assert_eq!(now, best_loss);
        assert!(history.epochs.len() < 30, "stopped early");
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
        let now = evaluate(&model, &valid, 1000).unwrap().accuracy;
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
}
