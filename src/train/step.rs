//! [`TrainStep`]: one training step — forward, loss, backward, optimizer update — with the
//! batch's rows split across the threads (data parallelism).

use crate::autograd::gradients::Gradients;
use crate::autograd::shard_group::{AbortOnPanic, CrossSum, ShardGroup, ShardMember};
use crate::autograd::tape::{StepRows, Tape};
use crate::data::{Batch, BatchTargets};
use crate::error::{Error, Result};
use crate::nn::{Loss, Mode, Module};
use crate::optim::Optimizer;
use crate::tensor::Elem;
use crate::threads::{as_shard, keep_helpers_awake, map_items, num_threads};
use ndarray::{ArrayViewD, Axis};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Batches are split into shards of at least this many rows: below it, a shard's products are
/// too thin to pay for the fork.
const MIN_SHARD_ROWS: usize = 32;

/// Numbers the steps of every [`TrainStep`] in the process, for [`StepRows::step`].
static NEXT_STEP: AtomicU64 = AtomicU64::new(0);

/// Runs training steps, keeping one [`Tape`] per thread whose buffers every step reuses.
///
/// A step splits the batch's rows into one shard per thread ([`set_num_threads`]; shards of
/// at least 32 rows). Each thread runs the forward pass, the loss and the backward pass of
/// its shard on its own tape, with every op on that thread; then the shards' gradients are
/// added up and the optimizer applies them (its products shared by the threads again). So
/// a step wakes the other threads twice instead of once per op (and not at all when the loop
/// runs in [`in_pool`](crate::in_pool), as [`fit`](crate::fit)'s does, which keeps them
/// awake). This is what PyTorch's `DistributedDataParallel` does across processes, here
/// inside one; with the cargo feature `mpi`, `TrainStep::distributed` splits each batch
/// across processes too, and each process's rows across its threads.
///
/// The loss must be a **mean over the rows** (as every built-in [`Loss`] is): each shard's
/// loss is weighted by its share of the rows, so the summed gradient is the gradient of the
/// whole batch's mean loss, as on one thread, up to float rounding. Rows are computed
/// independently, except by layers that take statistics over the batch: a
/// [`BatchNorm1d`](crate::BatchNorm1d) or [`BatchNorm2d`](crate::BatchNorm2d) normalizes by
/// the whole batch's statistics, not its shard's (PyTorch's `SyncBatchNorm`), its shards then
/// running at once and adding their sums; a layer of your own that reduces over the batch
/// axis sees only its shard's rows. The same seed and thread count give the same numbers;
/// another thread count splits the sums differently and so rounds differently.
///
/// Random layers draw per sample: a [`Dropout`](crate::Dropout) (or any layer drawing from a
/// [`SampleRng`](crate::SampleRng)) gives a sample the same mask in whichever shard it lands,
/// so a model with dropout runs data-parallel and still draws the same masks at any thread
/// count; one `Dropout` used twice in a forward pass draws a new mask the second time. Each
/// shard's tape knows its step and first row ([`Tape::step_rows`]).
///
/// [`set_num_threads`]: crate::set_num_threads
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, ChaCha8Rng, Dataset, Init, Linear, Loss, SeedableRng, Sgd, TrainStep};
/// let data = Dataset::from_floats(array![[1.0, 0.0], [0.0, 1.0]], vec![0, 1])?;
/// let mut model = Linear::new(2, 2, Init::default(), &mut ChaCha8Rng::seed_from_u64(0))?;
/// let mut sgd = Sgd::new(0.5)?;
/// let mut step = TrainStep::new();
/// let mut losses = Vec::new();
/// for _ in 0..20 {
///     let mut batches = data.batches(2)?;
///     while let Some(batch) = batches.next() {
///         losses.push(step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)?);
///     }
/// }
/// assert!(losses[19] < losses[0] / 2.0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct TrainStep {
    tapes: Vec<Tape>,
    /// Shards per batch; `None`: one per thread.
    shards: Option<usize>,
    /// Whether the model takes statistics over the batch (so its shards must run at once,
    /// each on a thread of its own, and wait for each other); `None` until a step with
    /// several shards has shown it.
    batch_coupled: Option<bool>,
    /// The sample shape a model without a declared input width (an image model) was last
    /// found to take ([`Module::output_shape`]), so the check runs once per shape.
    confirmed_sample: Option<Vec<usize>>,
    /// The ranks the batches are split across ([`TrainStep::distributed`]).
    #[cfg(feature = "mpi")]
    pub(super) distributed: Option<super::distributed::StepSync>,
}

impl TrainStep {
    /// A step runner that splits batches into one shard per thread. It makes its tapes on
    /// the first step.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray::array, tensor, Dataset, Linear, Loss, Sgd, TrainStep};
    /// let data = Dataset::from_floats(array![[1.0]], vec![1])?;
    /// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
    /// let mut step = TrainStep::new();
    /// let loss = step.run(&mut model, &mut Sgd::new(1.0)?, data.batches(1)?.next().unwrap(), &Loss::CrossEntropy)?;
    /// assert!((loss - 2f32.ln()).abs() < 1e-6); // logits [0, 0]
    /// // ∂L/∂W = (softmax − onehot)·x = [0.5, −0.5], so W = −1·[0.5, −0.5]
    /// assert_eq!(model.weight().value().as_slice(), Some(&[-0.5, 0.5][..]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A step runner that splits every batch into `shards` shards (still of at least 32 rows)
    /// whatever the thread count, so that how the batch's sums are split does not change
    /// with it (the matrix kernels may still split their own sums by thread).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `shards` is 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray::Array2, tensor, Dataset, Linear, Loss, Sgd, TrainStep};
    /// let x = Array2::from_shape_fn((128, 2), |(i, j)| ((i * 3 + j) % 5) as f32 - 2.0);
    /// let data = Dataset::from_floats(x, (0..128).map(|i| i % 2).collect())?;
    /// let run = |shards| -> tapegrad::Result<Vec<f32>> {
    ///     let mut model = Linear::from_parts(tensor::ones(&[2, 2]), None)?;
    ///     let mut batches = data.batches(128)?;
    ///     let batch = batches.next().unwrap();
    ///     TrainStep::with_shards(shards)?.run(&mut model, &mut Sgd::new(0.1)?, batch, &Loss::CrossEntropy)?;
    ///     Ok(model.weight().value().iter().copied().collect())
    /// };
    /// // 4 shards of 32 rows give the one-shard step, up to rounding
    /// let (one, four) = (run(1)?, run(4)?);
    /// assert!(one.iter().zip(&four).all(|(a, b)| (a - b).abs() < 1e-6));
    /// assert!(TrainStep::with_shards(0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_shards(shards: usize) -> Result<Self> {
        if shards == 0 {
            return Err(Error::InvalidArgument {
                op: "TrainStep::with_shards",
                message: "needs at least 1 shard, got 0".into(),
            });
        }
        Ok(TrainStep {
            shards: Some(shards),
            ..TrainStep::default()
        })
    }

    /// One step on `batch`: `loss(output, targets)` of `model`'s forward pass in
    /// [`Mode::Train`], its gradients, and `optimizer`'s update. Returns the batch's loss.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty batch, a loss that does not fit the batch's
    /// targets ([`Loss::check`]) or a class label the model has no output for (where it
    /// declares its output width, [`Module::out_features`]); [`Error::Shape`] when the batch
    /// has not one target per sample, samples of another width than the model's input
    /// width ([`Module::in_features`]), or float targets of another shape than the model's
    /// output (where it declares its output width; a [`Loss::Custom`] judges its targets
    /// itself); [`Error::Diverged`] when the loss is
    /// not finite (nothing is changed), and whatever `optimizer.step` returns (its guard
    /// refuses non-finite gradients and updates). Under `TrainStep::distributed`
    /// (feature `mpi`), a batch that fails these checks on some rank stops the step on every
    /// rank, with the same [`Error::InvalidArgument`] naming the ranks and their errors, and
    /// nothing changed on any.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray::array, tensor, Dataset, Linear, Loss, Sgd, TrainStep};
    /// let data = Dataset::from_floats(array![[1.0], [-1.0]], vec![1, 0])?;
    /// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
    /// let (mut step, mut sgd) = (TrainStep::new(), Sgd::new(0.5)?);
    /// let first = step.run(&mut model, &mut sgd, data.batches(2)?.next().unwrap(), &Loss::CrossEntropy)?;
    /// let second = step.run(&mut model, &mut sgd, data.batches(2)?.next().unwrap(), &Loss::CrossEntropy)?;
    /// assert!(second < first);
    /// // a loss that does not fit class targets is refused before anything changes
    /// assert!(step.run(&mut model, &mut sgd, data.batches(2)?.next().unwrap(), &Loss::Mse).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn run(
        &mut self,
        model: &mut dyn Module,
        optimizer: &mut dyn Optimizer,
        batch: Batch<'_>,
        loss: &Loss,
    ) -> Result<Elem> {
        let rows = batch.len();
        let checked = check_step_batch(&*model, &batch, loss)
            .and_then(|()| self.check_image_samples(&*model, batch.x.shape()));
        // the rows this process trains on: all, or its rank's slice (after the ranks agreed
        // on their checks)
        let here = self.rows_here(&*model, &batch, checked)?;
        let wanted = self.shards.unwrap_or_else(num_threads);
        let shards = wanted.min(here.len() / MIN_SHARD_ROWS).max(1);
        let across = self.cross_sum();
        let step = NEXT_STEP.fetch_add(1, Ordering::Relaxed);
        if self.tapes.len() < shards {
            self.tapes.resize_with(shards, Tape::new);
        }
        let tapes = &mut self.tapes[..shards];
        let model_ref: &dyn Module = &*model;
        let run_shard = |s: usize, tape: &mut Tape, member: Option<ShardMember>| {
            let n = here.len();
            let start = here.start + s * n / shards;
            let end = here.start + (s + 1) * n / shards;
            let x = batch.x.slice_axis(Axis(0), (start..end).into());
            tape.set_step_rows(Some(StepRows {
                step,
                first_row: start,
            }));
            tape.set_shard(member);
            let weight = match (shards, n == rows) {
                (1, true) => 1.0,
                _ => (end - start) as Elem / rows as Elem,
            };
            let targets = batch.targets.rows(start, end);
            let result = shard_gradients(tape, model_ref, x, &targets, weight, loss);
            tape.set_shard(None);
            result
        };
        let results = match tapes {
            // across ranks, a lone shard still sums (batch statistics, the loss) with them
            [tape] => {
                let lone = (across.clone()).map(|a| ShardGroup::across(1, true, Some(a)).member(0));
                vec![run_shard(0, tape, lone)]
            }
            // (never across ranks: there every step's shards wait, so that each rank makes
            // the same sums over the ranks whatever its number of shards)
            _ if self.batch_coupled == Some(false) && across.is_none() => {
                // the model took no statistics over the batch so far: shards on the pool
                let group = ShardGroup::new(shards, false);
                keep_helpers_awake();
                let results = map_items(tapes, &|s, tape| {
                    as_shard(|| run_shard(s, tape, Some(group.member(s))))
                });
                if group.needed_waiting() {
                    // it does now (another model, or a layer that was not used before): the
                    // shards' statistics were their own, so run the step again with shards
                    // that wait for each other
                    self.batch_coupled = Some(true);
                    run_waiting_shards(tapes, &run_shard, across).0
                } else {
                    results
                }
            }
            _ => {
                let (results, group) = run_waiting_shards(tapes, &run_shard, across);
                self.batch_coupled = Some(group.used());
                results
            }
        };
        let value: Elem = results.iter().map(|(value, _)| value).sum();
        let shard_grads: Option<Vec<Gradients>> = results.into_iter().map(|(_, g)| g).collect();
        #[cfg(feature = "mpi")]
        if let Some(sync) = &mut self.distributed {
            let local = shard_grads
                .filter(|_| value.is_finite())
                .map(Gradients::sum);
            return sync.finish(model, optimizer, value, local, tapes);
        }
        let Some(shard_grads) = shard_grads.filter(|_| value.is_finite()) else {
            return Err(Error::Diverged {
                op: "train step",
                step: optimizer.steps(),
                what: format!("the loss is {value}"),
            });
        };
        let grads = Gradients::sum(shard_grads);
        let stepped = optimizer.step(model, &grads);
        grads.recycle_into(tapes);
        stepped.map(|()| value)
    }

    /// The rows of a batch of `batch.len()` rows this process trains on, once `checked`,
    /// its checks, passed: all of them, or under [`TrainStep::distributed`] its rank's slice
    /// (after the ranks agreed on their checks, and the periodic check).
    fn rows_here(
        &mut self,
        model: &dyn Module,
        batch: &Batch<'_>,
        checked: Result<()>,
    ) -> Result<Range<usize>> {
        #[cfg(feature = "mpi")]
        if let Some(sync) = &mut self.distributed {
            return sync.begin(model, batch, checked);
        }
        let _ = model;
        checked.map(|()| 0..batch.len())
    }

    /// The sum over the other ranks that collectives across shards end with, if any.
    fn cross_sum(&self) -> Option<CrossSum> {
        #[cfg(feature = "mpi")]
        if let Some(sync) = &self.distributed {
            return Some(sync.cross_sum());
        }
        None
    }
}

impl TrainStep {
    /// For a model that declares no input width (an image model), its layers' shape checks
    /// ([`Module::output_shape`]) on the batch's shape, once per sample shape: a batch of
    /// another channel count or size is an error, not a panic inside a shard.
    fn check_image_samples(&mut self, model: &dyn Module, shape: &[usize]) -> Result<()> {
        let sample = &shape[1..];
        if model.in_features().is_some() || self.confirmed_sample.as_deref() == Some(sample) {
            return Ok(());
        }
        model.output_shape(shape).map_err(|e| Error::Shape {
            op: "train step",
            expected: "samples the model can take".into(),
            found: format!("a batch of shape {shape:?}: {e}"),
        })?;
        self.confirmed_sample = Some(sample.to_vec());
        Ok(())
    }
}

/// What [`TrainStep::run`] checks of `batch` before its step: one target per sample, a loss
/// that fits the targets, at least one sample, the widths the model declares, and float targets
/// of the output's shape.
fn check_step_batch(model: &dyn Module, batch: &Batch<'_>, loss: &Loss) -> Result<()> {
    let rows = batch.len();
    if batch.targets.len() != rows {
        return Err(Error::Shape {
            op: "train step",
            expected: format!("one target per sample ({rows} samples)"),
            found: format!("{} targets", batch.targets.len()),
        });
    }
    loss.check(&batch.targets)?;
    if rows == 0 {
        return Err(Error::InvalidArgument {
            op: "train step",
            message: "the batch is empty, expected at least one sample".into(),
        });
    }
    crate::train::check_batch("train step", model, batch.x.shape(), batch.targets.labels())?;
    if matches!(loss, Loss::Custom { .. }) {
        return Ok(());
    }
    crate::train::check_value_targets("train step", model, batch.x.shape(), &batch.targets)
}

/// Forward, weighted loss and (when the loss is finite) backward of one shard on `tape`,
/// which is reset afterwards so that it no longer shares the parameters: the update then
/// writes them in place.
fn shard_gradients(
    tape: &mut Tape,
    model: &dyn Module,
    x: ArrayViewD<'_, Elem>,
    targets: &BatchTargets<'_>,
    weight: Elem,
    loss: &Loss,
) -> (Elem, Option<Gradients>) {
    tape.reset();
    let output = model.forward(tape.constant(x), Mode::Train);
    let shard_loss = loss.compute_checked(output, targets);
    let shard_loss = if weight == 1.0 {
        shard_loss
    } else {
        shard_loss * weight
    };
    let value = shard_loss.item();
    // under shards that share sums, all of them must agree on whether to go backward
    let whole = match tape.shard() {
        Some(member) => member.total_loss(f64::from(value)),
        None => f64::from(value),
    };
    let grads = whole.is_finite().then(|| shard_loss.backward());
    tape.reset();
    (value, grads)
}

/// One shard's forward, loss and backward: `(shard index, its tape, its handle on the
/// step's shards)` to `(weighted loss, gradients)`.
type ShardRun<'a> =
    dyn Fn(usize, &mut Tape, Option<ShardMember>) -> (Elem, Option<Gradients>) + Sync + 'a;

/// Runs one shard per tape, each on a thread of its own (the first on the calling thread),
/// so that the shards can wait for each other in a sum over the whole batch (batch
/// normalization). Returns their results in shard order and the group, which says whether
/// any shard asked for such a sum. A panic in a shard releases the others and reaches the
/// caller. `across` sums the collectives over the other ranks, if any.
fn run_waiting_shards(
    tapes: &mut [Tape],
    run_shard: &ShardRun<'_>,
    across: Option<CrossSum>,
) -> (Vec<(Elem, Option<Gradients>)>, Arc<ShardGroup>) {
    let group = ShardGroup::across(tapes.len(), true, across);
    let (first, rest) = tapes.split_first_mut().expect("at least one shard");
    let results = std::thread::scope(|scope| {
        let others: Vec<_> = rest
            .iter_mut()
            .enumerate()
            .map(|(i, tape)| {
                let (group, member) = (&*group, group.member(i + 1));
                scope.spawn(move || {
                    let _abort = AbortOnPanic(group);
                    as_shard(|| run_shard(i + 1, tape, Some(member)))
                })
            })
            .collect();
        let _abort = AbortOnPanic(&group);
        let mut results = vec![as_shard(|| run_shard(0, first, Some(group.member(0))))];
        for other in others {
            match other.join() {
                Ok(result) => results.push(result),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    });
    (results, group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Conv2dOptions;
    use crate::data::Dataset;
    use crate::nn::{
        BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Init, Linear, MaxPool2d, Relu,
        Sequential,
    };
    use crate::optim::Sgd;
    use crate::{ChaCha8Rng, SeedableRng, Tensor};
    use ndarray::Array2;

    fn data(rows: usize) -> Dataset {
        let x = Array2::from_shape_fn((rows, 12), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0);
        let labels = (0..rows).map(|i| (i * 5) % 3).collect();
        Dataset::from_floats(x, labels).unwrap()
    }

    fn mlp(dropout: bool) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut layers: Vec<Box<dyn Module>> = vec![
            Box::new(Linear::new(12, 16, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
        ];
        if dropout {
            layers.push(Box::new(Dropout::new(0.3, &mut rng).unwrap()));
        }
        layers.push(Box::new(
            Linear::new(16, 3, Init::default(), &mut rng).unwrap(),
        ));
        Sequential::new(layers).unwrap()
    }

    /// Parameters and losses after three steps of 96-row batches, split into `shards`.
    fn train(shards: usize, dropout: bool) -> (Vec<Tensor>, Vec<Elem>) {
        let (data, mut model) = (data(96), mlp(dropout));
        let mut sgd = Sgd::new(0.1).unwrap();
        let mut step = TrainStep::with_shards(shards).unwrap();
        let mut losses = Vec::new();
        for _ in 0..3 {
            let mut batches = data.batches(96).unwrap();
            let batch = batches.next().unwrap();
            let loss = step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy);
            losses.push(loss.unwrap());
        }
        let mut params = Vec::new();
        model.visit_params(&mut |_, p| params.push(p.value().to_owned()));
        (params, losses)
    }

    fn largest_difference(a: &[Tensor], b: &[Tensor]) -> f32 {
        let pairs = a.iter().zip(b).flat_map(|(a, b)| a.iter().zip(b.iter()));
        pairs.fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    #[test]
    fn shards_sum_to_the_whole_batch_gradient() {
        let (one, one_losses) = train(1, false);
        for shards in [2, 3] {
            let (split, split_losses) = train(shards, false);
            assert!(largest_difference(&one, &split) < 1e-5, "{shards} shards");
            for (a, b) in one_losses.iter().zip(&split_losses) {
                assert!((a - b).abs() < 1e-5, "{shards} shards: loss {a} vs {b}");
            }
            // and the same split gives the same bits
            assert_eq!(split, train(shards, false).0);
        }
        // the loss goes down
        assert!(one_losses[2] < one_losses[0]);
    }

    #[test]
    fn a_model_with_dropout_draws_the_same_masks_at_any_shard_count() {
        let (one, one_losses) = train(1, true);
        assert_ne!(one, train(1, false).0, "dropout changed nothing");
        for shards in [2, 3] {
            let (split, split_losses) = train(shards, true);
            assert!(largest_difference(&one, &split) < 1e-5, "{shards} shards");
            for (a, b) in one_losses.iter().zip(&split_losses) {
                assert!((a - b).abs() < 1e-5, "{shards} shards: loss {a} vs {b}");
            }
            assert_eq!(split, train(shards, true).0);
        }
    }

    #[test]
    fn dropout_masks_are_identical_at_one_and_two_shards() {
        // the masks of one step over a batch of ones, on one tape and split over shards
        let mask = |shards: usize| {
            let dropout = Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
            let tapes: Vec<Tape> = (0..shards).map(|_| Tape::new()).collect();
            let rows = 64;
            let mut masks = Vec::new();
            for (s, tape) in tapes.iter().enumerate() {
                let (start, end) = (s * rows / shards, (s + 1) * rows / shards);
                tape.set_step_rows(Some(StepRows {
                    step: 1,
                    first_row: start,
                }));
                let x = tape.constant(crate::tensor::ones(&[end - start, 40]));
                masks.extend(dropout.forward(x, Mode::Train).value().iter().copied());
            }
            masks
        };
        let one = mask(1);
        assert_eq!(one, mask(2));
        let dropped = one.iter().filter(|&&m| m == 0.0).count() as f32 / one.len() as f32;
        assert!((dropped - 0.5).abs() < 0.05, "dropped {dropped}");
    }

    /// A small CNN with both batch norms: conv, BatchNorm2d, ReLU, pool, flatten,
    /// BatchNorm1d, linear.
    fn batch_norm_cnn() -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let conv = Conv2d::new(
            2,
            4,
            [3, 3],
            Conv2dOptions::default().padding(1),
            Init::default(),
            &mut rng,
        );
        let layers: Vec<Box<dyn Module>> = vec![
            Box::new(conv.unwrap()),
            Box::new(BatchNorm2d::new(4).unwrap()),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
            Box::new(Flatten),
            Box::new(BatchNorm1d::new(36).unwrap()),
            Box::new(Linear::new(36, 3, Init::default(), &mut rng).unwrap()),
        ];
        Sequential::new(layers).unwrap()
    }

    fn images(rows: usize) -> Dataset {
        // uniform noise, each row shifted by its own offset: batch statistics vary by rows
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let noise = crate::tensor::uniform(&[rows, 72], -1.0, 1.0, &mut rng).unwrap();
        let x = Array2::from_shape_fn((rows, 72), |(i, j)| noise[[i, j]] + (i % 7) as f32 * 0.3);
        let labels = (0..rows).map(|i| (i * 5) % 3).collect();
        let data = Dataset::from_floats(x, labels).unwrap();
        data.with_sample_shape(&[2, 6, 6]).unwrap()
    }

    /// Parameters, buffers (running statistics) and evaluation outputs after three steps on
    /// a 96-image batch split into `shards`, with `step` (a fresh one unless given).
    fn train_batch_norm(
        shards: usize,
        step: Option<TrainStep>,
    ) -> (Vec<Tensor>, Vec<Tensor>, Tensor) {
        let (data, mut model) = (images(96), batch_norm_cnn());
        let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        let mut step = step.unwrap_or_else(|| TrainStep::with_shards(shards).unwrap());
        for _ in 0..3 {
            let mut batches = data.batches(96).unwrap();
            let batch = batches.next().unwrap();
            step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)
                .unwrap();
        }
        let (mut params, mut buffers) = (Vec::new(), Vec::new());
        model.visit_params(&mut |_, p| params.push(p.value().to_owned()));
        model.visit_buffers(&mut |_, b| buffers.push(b.clone()));
        let tape = Tape::inference();
        let mut batches = data.batches(96).unwrap();
        let x = tape.constant(batches.next().unwrap().x);
        (params, buffers, model.forward(x, Mode::Eval).value())
    }

    #[test]
    fn batch_norm_takes_the_whole_batch_statistics_at_any_shard_count() {
        let (params, buffers, output) = train_batch_norm(1, None);
        assert_eq!(buffers.len(), 6);
        assert_eq!(buffers[2].first(), Some(&3.0), "num_batches_tracked");
        for shards in [2, 3] {
            let (p, b, o) = train_batch_norm(shards, None);
            assert!(
                largest_difference(&params, &p) < 1e-6,
                "{shards} shards: parameters"
            );
            assert!(
                largest_difference(&buffers, &b) < 1e-6,
                "{shards} shards: running statistics"
            );
            assert!(
                largest_difference(std::slice::from_ref(&output), &[o]) < 1e-5,
                "{shards} shards: outputs"
            );
        }
        // and a shard's own statistics would not do: they normalize its rows otherwise
        let data = images(96);
        let mut batches = data.batches(96).unwrap();
        let x = batches.next().unwrap().x;
        let bn = BatchNorm2d::new(2).unwrap();
        let tape = Tape::inference();
        let whole = bn.forward(tape.constant(x.view()), Mode::Train).value();
        let half = x.slice_axis(ndarray::Axis(0), (0..48).into());
        let alone = bn.forward(tape.constant(half), Mode::Train).value();
        let whole_half = whole
            .slice_axis(ndarray::Axis(0), (0..48).into())
            .to_owned();
        assert!(largest_difference(&[whole_half], &[alone]) > 1e-3);
    }

    #[test]
    fn a_step_runner_first_used_without_batch_norm_still_syncs_a_model_with_it() {
        // an MLP step shows that model took no batch statistics; the batch-norm model's step
        // then runs again with shards that wait for each other
        let mut step = TrainStep::with_shards(2).unwrap();
        let (data, mut model) = (data(96), mlp(false));
        let mut sgd = Sgd::new(0.1).unwrap();
        for _ in 0..2 {
            let mut batches = data.batches(96).unwrap();
            step.run(
                &mut model,
                &mut sgd,
                batches.next().unwrap(),
                &Loss::CrossEntropy,
            )
            .unwrap();
        }
        assert_eq!(step.batch_coupled, Some(false));
        let reused = train_batch_norm(2, Some(step));
        let fresh = train_batch_norm(1, None);
        assert!(largest_difference(&reused.0, &fresh.0) < 1e-6);
        assert!(largest_difference(&reused.1, &fresh.1) < 1e-6);
    }

    #[test]
    fn a_shard_that_panics_under_batch_norm_ends_the_step_with_its_panic() {
        // 2 shards of 48 rows: the second gets 30 targets short, its loss panics
        struct PanicsOnShard;
        impl Module for PanicsOnShard {
            fn forward<'t>(&self, x: crate::Var<'t>, _mode: Mode) -> crate::Var<'t> {
                let first = x.tape().step_rows().map_or(0, |r| r.first_row);
                assert!(first == 0, "shard at row {first} fails");
                x
            }
            crate::walk!();
        }
        let model =
            Sequential::new(vec![Box::new(batch_norm_cnn()), Box::new(PanicsOnShard)]).unwrap();
        let mut model = model;
        let data = images(96);
        let mut sgd = Sgd::new(0.1).unwrap();
        let mut step = TrainStep::with_shards(2).unwrap();
        let mut batches = data.batches(96).unwrap();
        let batch = batches.next().unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)
        }));
        let message = outcome.unwrap_err();
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        assert!(
            text.contains("shard at row 48 fails") || text.contains("another shard"),
            "{text}"
        );
    }

    #[test]
    fn batches_too_small_to_split_run_whole() {
        // 40 rows: two shards would have 20 < 32 rows each, so both runs are one shard
        let data = data(40);
        let after_one_step = |shards: usize| {
            let mut model = mlp(false);
            let mut batches = data.batches(40).unwrap();
            let batch = batches.next().unwrap();
            let mut step = TrainStep::with_shards(shards).unwrap();
            let mut sgd = Sgd::new(0.1).unwrap();
            let loss = step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy);
            let mut params = Vec::new();
            model.visit_params(&mut |_, p| params.push(p.value().to_owned()));
            (loss.unwrap(), params)
        };
        assert_eq!(after_one_step(1), after_one_step(2));
    }

    #[test]
    fn a_label_the_model_has_no_output_for_or_samples_of_another_width_are_errors() {
        let mut model = mlp(false); // 12 inputs, 3 outputs
        let before = mlp(false);
        let mut sgd = Sgd::new(0.1).unwrap();
        let x = Array2::from_elem((64, 12), 0.5);
        let mut labels = vec![0; 64];
        labels[40] = 7; // in the second shard, its row 8
        let data = Dataset::from_floats(x, labels).unwrap();
        let narrow = Dataset::from_floats(Array2::from_elem((64, 10), 0.5), vec![0; 64]).unwrap();
        let mut step = TrainStep::with_shards(2).unwrap();
        let mut run = |data: &Dataset| {
            let mut batches = data.batches(64).unwrap();
            let batch = batches.next().unwrap();
            step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            run(&data),
            "train step: row 40 of the batch has label 7, expected a label below 3 (the \
             model's last layer has 3 outputs)"
        );
        assert_eq!(
            run(&narrow),
            "train step: expected samples of width 12 (the input width of the model's first \
             layer), found a batch of shape [64, 10]"
        );
        assert_eq!(sgd.steps(), 0);
        let (mut p, mut q) = (Vec::new(), Vec::new());
        model.visit_params(&mut |_, v| p.push(v.value().to_owned()));
        before.visit_params(&mut |_, v| q.push(v.value().to_owned()));
        assert_eq!(p, q);
    }

    #[test]
    fn a_frozen_layer_stays_and_the_others_train_across_shards() {
        let mut model = mlp(true);
        model.set_requires_grad(false);
        let mut last = Vec::new();
        model.visit_params_mut(&mut |name, p| {
            if name.starts_with('3') {
                p.set_requires_grad(true);
            }
            last.push((name.to_string(), p.value().to_owned()));
        });
        assert_eq!(model.num_trainable_params(), 16 * 3 + 3);
        let x = Array2::from_shape_fn((128, 12), |(i, j)| ((i * 7 + j) % 5) as f32 / 5.0);
        let data = Dataset::from_floats(x, (0..128).map(|i| i % 3).collect()).unwrap();
        let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        let mut step = TrainStep::with_shards(2).unwrap();
        for _ in 0..3 {
            let mut batches = data.batches(128).unwrap();
            let batch = batches.next().unwrap();
            step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)
                .unwrap();
        }
        let mut i = 0;
        model.visit_params(&mut |name, p| {
            let moved = p.value() != last[i].1;
            assert_eq!(moved, name.starts_with('3'), "{name}");
            i += 1;
        });
    }

    #[test]
    fn images_an_image_model_cannot_take_are_an_error_not_a_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut model = Sequential::new(vec![
            Box::new(
                crate::Conv2d::new(
                    1,
                    2,
                    [3, 3],
                    Conv2dOptions::default(),
                    Init::default(),
                    &mut rng,
                )
                .unwrap(),
            ),
            Box::new(crate::Flatten),
            Box::new(Linear::new(2 * 6 * 6, 3, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap();
        let mut sgd = Sgd::new(0.1).unwrap();
        let mut step = TrainStep::with_shards(2).unwrap();
        let labels = [0, 1, 2, 0];
        for (channels, ok) in [(1, true), (3, false), (1, true)] {
            let x = ndarray::Array4::<f32>::from_elem((4, channels, 8, 8), 0.5).into_dyn();
            let batch = Batch {
                x: x.view(),
                targets: BatchTargets::Classes(&labels),
            };
            let result = step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy);
            match ok {
                true => assert!(result.is_ok(), "{result:?}"),
                false => assert!(result.unwrap_err().to_string().starts_with(
                    "train step: expected samples the model can take, found a batch of \
                         shape [4, 3, 8, 8]: "
                )),
            }
        }
        assert_eq!(sgd.steps(), 2);
    }

    #[test]
    fn float_targets_of_another_shape_than_the_output_are_an_error_not_a_panic() {
        let mut model = mlp(false); // 12 inputs, 3 outputs
        let mut sgd = Sgd::new(0.1).unwrap();
        let x = Array2::from_elem((64, 12), 0.5).into_dyn();
        let mut step = TrainStep::with_shards(2).unwrap();
        for (loss, width) in [(Loss::Mse, 10), (Loss::BceWithLogits, 2), (Loss::L1, 3)] {
            let y = Array2::from_elem((64, width), 0.5).into_dyn();
            let batch = Batch {
                x: x.view(),
                targets: BatchTargets::Values(y.view()),
            };
            let result = step.run(&mut model, &mut sgd, batch, &loss);
            match width {
                3 => assert!(result.is_ok(), "{result:?}"),
                _ => assert_eq!(
                    result.unwrap_err().to_string(),
                    format!(
                        "train step: expected targets of the model's output shape [64, 3], \
                         found targets of shape [64, {width}]"
                    )
                ),
            }
        }
        assert_eq!(sgd.steps(), 1);
    }

    /// A layer of one's own that changes the width without declaring it: its input four
    /// times over along the last axis.
    struct FourTimes;

    impl Module for FourTimes {
        fn forward<'t>(&self, x: crate::Var<'t>, _mode: Mode) -> crate::Var<'t> {
            crate::Var::concat(&[x, x, x, x], 1)
        }
        fn visit_params(&self, _: &mut dyn FnMut(&str, &crate::Param)) {}
        fn visit_params_mut(&mut self, _: &mut dyn FnMut(&str, &mut crate::Param)) {}
    }

    #[test]
    fn undeclared_widths_of_a_layer_of_ones_own_are_not_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // widths 3 → 12 → 2 (declared input width 12), and 3 → 2 → 8 (declared output 2)
        let widening_first = Sequential::new(vec![
            Box::new(FourTimes),
            Box::new(Linear::new(12, 2, Init::default(), &mut rng).unwrap()),
        ]);
        let widening_last = Sequential::new(vec![
            Box::new(Linear::new(3, 2, Init::default(), &mut rng).unwrap()),
            Box::new(FourTimes),
        ]);
        let x = Array2::from_shape_fn((64, 3), |(i, j)| (i + j) as f32 / 64.0);
        let cases = [(widening_first.unwrap(), 1), (widening_last.unwrap(), 7)];
        for (mut model, top) in cases {
            let labels = (0..64).map(|i| i % (top + 1)).collect();
            let data = Dataset::from_floats(x.clone(), labels).unwrap();
            let mut batches = data.batches(64).unwrap();
            let mut sgd = Sgd::new(0.1).unwrap();
            let batch = batches.next().unwrap();
            let step = TrainStep::with_shards(2).unwrap().run(
                &mut model,
                &mut sgd,
                batch,
                &Loss::CrossEntropy,
            );
            assert!(step.is_ok(), "{}: {step:?}", model.describe());
            assert!(crate::infer(&model, &x.clone().into_dyn()).is_ok());
            let predictor = crate::Predictor::new(model, None).unwrap();
            assert_eq!(predictor.predict(&x).unwrap().classes.len(), 64);
        }
    }

    #[test]
    fn a_non_finite_loss_is_refused_and_changes_nothing() {
        let (data, mut model) = (data(64), mlp(false));
        let before = mlp(false);
        let mut sgd = Sgd::new(0.1).unwrap();
        let mut batches = data.batches(64).unwrap();
        let batch = batches.next().unwrap();
        let err = TrainStep::with_shards(2)
            .unwrap()
            .run(
                &mut model,
                &mut sgd,
                batch,
                &Loss::custom("inf", |z, y| z.cross_entropy(y.labels().unwrap()) / 0.0),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "train step: step 0 refused: the loss is inf; the step changed nothing (the parameters and the optimizer state are those of the last accepted step)"
        );
        assert_eq!(sgd.steps(), 0);
        let (mut p, mut q) = (Vec::new(), Vec::new());
        model.visit_params(&mut |_, v| p.push(v.value().to_owned()));
        before.visit_params(&mut |_, v| q.push(v.value().to_owned()));
        assert_eq!(p, q);
        assert!(TrainStep::with_shards(0).is_err());
    }
}
