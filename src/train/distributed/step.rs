//! [`TrainStep::distributed`]: a training step with its batch split across the ranks, its
//! gradients summed by one all-reduce, and each batch's checks agreed by the ranks within
//! the step's first sum.

use super::{Distributed, SYNC_CHECK_EVERY, layout_hash, parameter_hash};
use crate::autograd::grad::Grad;
use crate::autograd::gradients::{Gradients, Leaf};
use crate::autograd::shard_group::CrossSum;
use crate::autograd::tape::Tape;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::tensor::{Elem, Tensor};
use crate::train::TrainStep;
use ndarray::Dimension;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A hash of a batch: its samples' bits and its targets.
fn batch_hash(batch: &Batch<'_>) -> u64 {
    let mut hasher = crc32fast::Hasher::new();
    for v in batch.x.iter() {
        hasher.update(&v.to_bits().to_le_bytes());
    }
    hasher.update(format!("{:?}", batch.targets).as_bytes());
    u64::from(hasher.finalize()) | ((batch.len() as u64) << 32)
}

impl TrainStep {
    /// This step runner with every batch split across the ranks of `world`: each rank runs
    /// its rows (`world.rows(B)`, split further into shards for its threads), the ranks
    /// sum their losses and gradients, and every rank applies the same update with its
    /// optimizer. Every rank must call [`TrainStep::run`] with the same batch (the same data
    /// and shuffle seed); the first step and every [`SYNC_CHECK_EVERY`]-th check that they
    /// do and that the parameters agree.
    ///
    /// The gradients travel **dense**: one `MPI_Allreduce` of one buffer holding the loss
    /// and every parameter's gradient, formed from this rank's factors by the same
    /// accumulating product the optimizer would have used. Sending a weight's factors
    /// instead (`Gᵀ·X`, an all-gather of `rows·(in + out)` numbers per rank) moves fewer
    /// bytes at small batches, and on 2 ranks of one machine it measured faster up to 128
    /// rows per rank for an MLP 784-256-256-10; but each rank then receives
    /// `(N−1)·rows·(in + out)` numbers, a volume that grows with the ranks where a ring
    /// all-reduce's (`2·(N−1)/N` times the gradient) does not, and every rank must compute
    /// the whole global batch's weight products for its update, work that no longer
    /// shrinks as ranks are added. The all-reduce runs after the backward pass (it does not
    /// overlap with it, as PyTorch's gradient buckets do).
    ///
    /// A step refused for a non-finite loss or gradient is refused on every rank (they all
    /// see the summed numbers), so [`OnDivergence`](crate::OnDivergence), schedules and
    /// early stopping behave as in one process. A batch that fails [`TrainStep::run`]'s
    /// checks on some ranks only (when the ranks' batches differ) is refused on every rank
    /// too: the rank that failed joins the step's first sum across the ranks with one more
    /// number, a 1 for its failure, so that the others learn of it there, at the cost of 8
    /// bytes per step and no collective more; then every rank returns its error and no rank
    /// updates (batch normalization's running statistics included). Its first sum must
    /// have as many numbers as the previous step's, so pass the same model at every step;
    /// until a step has run, and on every [`SYNC_CHECK_EVERY`]-th, the failure rides along
    /// with the check of hashes instead.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray::array, tensor, Dataset, Distributed, Linear, Loss, Sgd, TrainStep};
    /// let world = Distributed::init()?; // run alone: one rank, the whole batch
    /// let data = Dataset::from_floats(array![[1.0], [-1.0]], vec![1, 0])?;
    /// let run = |step: &mut TrainStep| -> tapegrad::Result<Vec<f32>> {
    ///     let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
    ///     step.run(&mut model, &mut Sgd::new(0.5)?, data.batches(2)?.next().unwrap(), &Loss::CrossEntropy)?;
    ///     Ok(model.weight().value().iter().copied().collect())
    /// };
    /// let alone = run(&mut TrainStep::new())?;
    /// assert_eq!(run(&mut TrainStep::new().distributed(world))?, alone);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn distributed(mut self, world: Distributed) -> Self {
        self.distributed = Some(StepSync::new(world));
        self
    }
}

/// What a [`TrainStep`](crate::TrainStep) keeps to run its steps across ranks.
#[derive(Debug)]
pub(crate) struct StepSync {
    world: Distributed,
    /// Steps run, for the periodic check.
    steps: u64,
    /// What the step's first sum across the ranks said, shared with [`StepSync::cross_sum`].
    first: Arc<FirstSum>,
    /// `[loss, one presence flag per parameter, every parameter's gradient]`, sent and
    /// summed in one all-reduce.
    send: Vec<Elem>,
    received: Vec<Elem>,
    /// The summed gradients' tensors, reused from step to step.
    tensors: Vec<Tensor>,
}

/// The first sum across the ranks of each step (batch normalization's first moments, or
/// else the step's loss) carries one number more: how many ranks failed their checks of
/// the batch. A rank that failed takes part in that sum alone, and all learn of it there.
#[derive(Debug)]
struct FirstSum {
    /// How many values the first sum of the last step that every rank ran had (`None`
    /// before such a step): a rank that fails its checks sends that many zeros.
    len: AtomicUsize,
    /// Whether this step's first sum happened.
    done: AtomicBool,
    /// Whether some rank failed its checks this step: the step's other sums then stay on
    /// this rank, and no update is made.
    failed: AtomicBool,
}

/// [`FirstSum::len`] before any step.
const NO_FIRST_SUM: usize = usize::MAX;

impl FirstSum {
    /// The number of values of the last step's first sum, when a step was run.
    fn len(&self) -> Option<usize> {
        Some(self.len.load(Ordering::Acquire)).filter(|&n| n != NO_FIRST_SUM)
    }

    /// The sum over the ranks of `values`, a collective of the step: the step's first
    /// carries the number of ranks that failed; after a failure the others stay local.
    /// Returns whether `values` are the sums over the ranks.
    fn sum(&self, values: &mut [f64]) -> bool {
        if self.done.swap(true, Ordering::AcqRel) {
            if self.failed.load(Ordering::Acquire) {
                return false;
            }
            Distributed::sum_in_place(values, &mut Vec::new());
            return true;
        }
        let n = values.len();
        let mut with_failures = Vec::with_capacity(n + 1);
        with_failures.extend_from_slice(values);
        with_failures.push(0.0);
        Distributed::sum_in_place(&mut with_failures, &mut Vec::new());
        if with_failures[n] != 0.0 {
            // the values are left as they are: the step is dropped
            self.failed.store(true, Ordering::Release);
            return false;
        }
        self.len.store(n, Ordering::Release);
        values.copy_from_slice(&with_failures[..n]);
        true
    }

    /// Takes part in this step's first sum for a rank that failed its checks: as many
    /// zeros as the last step's first sum had, and a 1 for this rank's failure.
    fn join_failed(&self, len: usize) {
        let mut values = vec![0.0; len + 1];
        values[len] = 1.0;
        Distributed::sum_in_place(&mut values, &mut Vec::new());
    }
}

impl StepSync {
    pub(crate) fn new(world: Distributed) -> Self {
        StepSync {
            world,
            steps: 0,
            first: Arc::new(FirstSum {
                len: AtomicUsize::new(NO_FIRST_SUM),
                done: AtomicBool::new(false),
                failed: AtomicBool::new(false),
            }),
            send: Vec::new(),
            received: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// This rank's rows of a batch of `rows` rows, after agreeing with the other ranks on
    /// `checked`, this rank's checks of the batch (to which this adds that every rank gets a
    /// row), and, on the first step and every [`SYNC_CHECK_EVERY`]-th, that all ranks hold
    /// the same parameters and batch. A rank that failed still takes part in the step's
    /// first collective, so that every rank learns of it and returns its error.
    ///
    /// # Errors
    /// The same on every rank: the failures of the ranks whose checks failed, or the ranks
    /// whose parameters or batches differ.
    pub(crate) fn begin(
        &mut self,
        model: &dyn Module,
        batch: &Batch<'_>,
        checked: Result<()>,
    ) -> Result<Range<usize>> {
        const OP: &str = "distributed train step";
        let (rows, size) = (batch.len(), self.world.size);
        let checked = checked.and_then(|()| match rows < size {
            false => Ok(()),
            true => Err(Error::InvalidArgument {
                op: OP,
                message: format!(
                    "a batch of {rows} samples cannot be split over {size} ranks, expected at \
                     least one sample per rank"
                ),
            }),
        });
        // a step that checks (or one before any first sum) gathers hashes from every rank,
        // and whether each failed rides along; another learns it at its first sum
        let checking = self.steps.is_multiple_of(SYNC_CHECK_EVERY);
        match self.first.len().filter(|_| !checking) {
            None => {
                let record = match checked {
                    Ok(()) => [parameter_hash(model), batch_hash(batch), layout_hash(model)],
                    Err(_) => [0, 0, 0],
                };
                let records = self.world.agree(OP, checked, &record)?;
                let differ = |part: usize| -> Vec<usize> {
                    (1..size)
                        .filter(|&r| records[r][part] != records[0][part])
                        .collect()
                };
                let (parameters, batches, layouts) = (differ(0), differ(1), differ(2));
                if !parameters.is_empty() {
                    let steps = Some(self.steps);
                    return Err(self.world.parameters_differ(&parameters, &layouts, steps));
                }
                if !batches.is_empty() {
                    return Err(Error::InvalidArgument {
                        op: OP,
                        message: format!(
                            "the batch of rank(s) {batches:?} differs from rank 0's at step {}, \
                             expected the same data and shuffle seed on every rank",
                            self.steps
                        ),
                    });
                }
            }
            Some(len) => {
                if let Err(e) = checked {
                    self.first.join_failed(len);
                    return Err(self.world.failed(OP, Some(&e.to_string())));
                }
            }
        }
        self.first.done.store(false, Ordering::Release);
        self.first.failed.store(false, Ordering::Release);
        self.steps += 1;
        Ok(self.world.rows(rows))
    }

    /// The sum over the ranks that batch normalization's moments and the shards' losses
    /// go through.
    pub(crate) fn cross_sum(&self) -> CrossSum {
        // the closure keeps MPI initialized while a step may call it
        let (world, first) = (self.world.clone(), Arc::clone(&self.first));
        CrossSum(Arc::new(move |values: &mut [f64]| {
            let _initialized = &world;
            first.sum(values)
        }))
    }

    /// Sums this rank's weighted loss `value` and gradients `local` (`None` when its loss is
    /// not finite) over the ranks, and applies the sum with `optimizer`: the same update on
    /// every rank. Returns the loss of the whole batch.
    pub(crate) fn finish(
        &mut self,
        model: &mut dyn Module,
        optimizer: &mut dyn Optimizer,
        value: Elem,
        local: Option<Gradients>,
        tapes: &[Tape],
    ) -> Result<Elem> {
        if self.first.failed.load(Ordering::Acquire) {
            // a rank failed its checks at this step's first sum: no update, its error
            if let Some(local) = local {
                local.recycle_into(tapes);
            }
            return Err(self.world.failed("distributed train step", None));
        }
        let mut params = Vec::new();
        model.visit_params(&mut |_, p| params.push((p.id(), p.value().raw_dim())));
        let total: usize = params.iter().map(|(_, dim)| dim.size()).sum();
        let send = &mut self.send;
        send.clear();
        send.resize(1 + params.len() + total, 0.0);
        send[0] = value;
        if let Some(local) = local {
            let (flags, mut rest) = send[1..].split_at_mut(params.len());
            let mut i = 0;
            model.visit_params(&mut |_, p| {
                let (part, tail) = std::mem::take(&mut rest).split_at_mut(p.value().len());
                rest = tail;
                if let Some(g) = local.param_grad(p) {
                    flags[i] = 1.0;
                    let view = ndarray::ArrayViewMutD::from_shape(p.value().raw_dim(), part)
                        .expect("internal error: gradient slice shape");
                    g.scaled_add_to(view, 1.0);
                }
                i += 1;
            });
            local.recycle_into(tapes);
        }
        Distributed::sum_in_place(send, &mut self.received);
        let whole = send[0];
        if !whole.is_finite() {
            return Err(Error::Diverged {
                op: "train step",
                step: optimizer.steps(),
                what: format!(
                    "the loss is {whole} (summed over {} ranks)",
                    self.world.size
                ),
            });
        }
        // the summed gradients, as one process's step would hand them to the optimizer
        let (flags, mut rest) = send[1..].split_at(params.len());
        let mut leaves = Vec::new();
        let mut spare = std::mem::take(&mut self.tensors).into_iter();
        for (i, (id, dim)) in params.into_iter().enumerate() {
            let (part, tail) = rest.split_at(dim.size());
            rest = tail;
            if flags[i] == 0.0 {
                continue;
            }
            let mut tensor = match spare.next() {
                Some(t) if t.raw_dim() == dim => t,
                _ => Tensor::zeros(dim),
            };
            tensor
                .as_slice_mut()
                .expect("internal error: a new tensor is contiguous")
                .copy_from_slice(part);
            leaves.push(Leaf::new(i, Some(id), Grad::Dense(tensor)));
        }
        let grads = Gradients {
            tape: u64::MAX,
            generation: 0,
            leaves,
            formed: Default::default(),
        };
        let stepped = optimizer.step(model, &grads);
        self.tensors = (grads.leaves.into_iter())
            .filter_map(|leaf| match leaf.grad {
                Grad::Dense(t) => Some(t),
                _ => None,
            })
            .collect();
        stepped.map(|()| whole)
    }
}
