//! [`Distributed`] (feature `mpi`): data parallelism across processes, on one machine or
//! several, with MPI. Each process (rank) takes its own slice of every batch, the ranks add
//! up their gradients with one all-reduce per step, and every rank applies the same update,
//! so the parameters stay the same on all of them (PyTorch's `DistributedDataParallel`).

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
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use ndarray::Dimension;
use std::ops::Range;
use std::sync::Arc;

/// Steps between two checks that every rank holds the same parameters (the first step is
/// always checked). A check hashes the parameters, buffers and batch and compares the
/// hashes of all ranks: a few microseconds per megabyte, next to a step of milliseconds.
pub const SYNC_CHECK_EVERY: u64 = 100;

/// This process's place among the processes MPI started (`mpirun -n N`), and the handle
/// that keeps MPI running: while a `Distributed` (or a clone) lives, MPI stays initialized,
/// and it is finalized when the last one is dropped.
///
/// Give it to [`FitConfig::distributed`](crate::FitConfig::distributed) (or to
/// [`TrainStep::distributed`](crate::TrainStep::distributed)) and run the program under
/// `mpirun`: every rank reads the same data, shuffles it with the same seed and so sees
/// the same global batches without talking; rank `r` of `N` trains on rows
/// `r·B/N .. (r+1)·B/N` of each batch of `B` rows (with [`set_num_threads`] threads of its
/// own, which split its rows further). The gradients are summed over the ranks with one
/// MPI all-reduce of every parameter's gradient (dense: see [`TrainStep::distributed`]), so
/// each rank applies the update of the whole batch, as one process would. Batch
/// normalization takes its statistics over the global batch (its moments are all-reduced
/// too, as PyTorch's `SyncBatchNorm` does).
///
/// Everything must be the same on every rank: the program, the model's initial parameters
/// (build it from the same seed), the data and the seed of the shuffle. The first step
/// and every [`SYNC_CHECK_EVERY`]-th step check that the ranks hold the same parameters and
/// batch, and return an error naming the ranks that differ.
///
/// Run without `mpirun`, a program is one rank of one (MPI's singleton start), and trains
/// as without MPI.
///
/// [`set_num_threads`]: crate::set_num_threads
///
/// # Examples
/// ```
/// use tapegrad::Distributed;
/// let world = Distributed::init()?; // without mpirun: rank 0 of 1
/// assert_eq!((world.rank(), world.size()), (0, 1));
/// assert!(world.is_root());
/// assert_eq!(world.rows(128), 0..128);
/// // a second initialization in the same process is refused; clone the handle instead
/// assert!(Distributed::init().is_err());
/// let clone = world.clone();
/// assert_eq!(clone.size(), 1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Clone)]
pub struct Distributed {
    /// Keeps MPI initialized; finalized when the last clone goes.
    _universe: Arc<Universe>,
    rank: usize,
    size: usize,
}

impl std::fmt::Debug for Distributed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Distributed(rank {} of {})", self.rank, self.size)
    }
}

impl Distributed {
    /// Initializes MPI (`MPI_Init_thread`, asking for `MPI_THREAD_SERIALIZED`: tapegrad calls
    /// MPI from its worker threads, one call at a time) and returns this process's place
    /// in `MPI_COMM_WORLD`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when MPI was already initialized in this process (clone the
    /// first handle instead), or when the MPI library cannot call from several threads one
    /// at a time.
    ///
    /// # Examples
    /// ```
    /// let world = tapegrad::Distributed::init()?;
    /// assert!(world.rank() < world.size());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn init() -> Result<Distributed> {
        let Some((universe, threading)) =
            mpi::initialize_with_threading(mpi::Threading::Serialized)
        else {
            return Err(Error::InvalidArgument {
                op: "distributed init",
                message: "MPI is already initialized in this process, expected one \
                          initialization; clone the first Distributed instead"
                    .into(),
            });
        };
        if threading < mpi::Threading::Serialized {
            return Err(Error::InvalidArgument {
                op: "distributed init",
                message: format!(
                    "the MPI library provides thread support {threading:?}, expected \
                     Serialized or Multiple (tapegrad calls MPI from its worker threads)"
                ),
            });
        }
        let world = universe.world();
        let (rank, size) = (world.rank(), world.size());
        Ok(Distributed {
            _universe: Arc::new(universe),
            rank: usize::try_from(rank).expect("internal error: negative MPI rank"),
            size: usize::try_from(size).expect("internal error: negative MPI size"),
        })
    }

    /// This process's rank, from 0.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(tapegrad::Distributed::init()?.rank(), 0); // run alone
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes (ranks).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(tapegrad::Distributed::init()?.size(), 1); // run alone
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is rank 0, the one that reports progress and writes checkpoints.
    ///
    /// # Examples
    /// ```
    /// assert!(tapegrad::Distributed::init()?.is_root()); // run alone
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// The rows of a batch of `batch_rows` rows that this rank trains on:
    /// `r·B/N .. (r+1)·B/N` for rank `r` of `N`, so the ranks' slices are disjoint, cover
    /// the batch, and differ in length by one row at most.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(tapegrad::Distributed::init()?.rows(10), 0..10); // one rank: all rows
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn rows(&self, batch_rows: usize) -> Range<usize> {
        rank_rows(self.rank, self.size, batch_rows)
    }

    /// Checks that every rank holds the same parameters and buffers (running statistics)
    /// as rank 0, bit for bit, by comparing hashes. Every rank must call it at the same
    /// point.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the ranks whose parameters differ from rank 0's
    /// (on every rank, so that all stop).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Distributed, Linear};
    /// let world = Distributed::init()?;
    /// let model = Linear::from_parts(tensor::ones(&[2, 3]), None)?;
    /// world.check_same_parameters(&model)?;
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn check_same_parameters(&self, model: &dyn Module) -> Result<()> {
        let hash = parameter_hash(model);
        let differ = self.ranks_differing(hash);
        if differ.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            op: "distributed check",
            message: format!(
                "the parameters of rank(s) {differ:?} differ from rank 0's, expected the \
                 same on all {} ranks; build the model from the same seed on every rank",
                self.size
            ),
        })
    }

    /// The ranks whose `hash` differs from rank 0's (the same answer on every rank).
    fn ranks_differing(&self, hash: u64) -> Vec<usize> {
        let world = SimpleCommunicator::world();
        let mut hashes = vec![0u64; self.size];
        world.all_gather_into(&hash, &mut hashes[..]);
        (1..self.size).filter(|&r| hashes[r] != hashes[0]).collect()
    }

    /// The sum over the ranks, in place.
    fn sum_in_place<T>(values: &mut [T], scratch: &mut Vec<T>)
    where
        T: mpi::datatype::Equivalence + Copy + Default,
    {
        let world = SimpleCommunicator::world();
        scratch.clear();
        scratch.resize(values.len(), T::default());
        world.all_reduce_into(&*values, &mut scratch[..], SystemOperation::sum());
        values.copy_from_slice(scratch);
    }
}

/// Rows `r·B/N .. (r+1)·B/N` of a batch of `batch_rows` rows, for rank `rank` of `size`.
fn rank_rows(rank: usize, size: usize, batch_rows: usize) -> Range<usize> {
    rank * batch_rows / size..(rank + 1) * batch_rows / size
}

/// A hash of `model`'s parameters and buffers (their bits, in walk order).
fn parameter_hash(model: &dyn Module) -> u64 {
    let mut hasher = crc32fast::Hasher::new();
    let mut count = 0u64;
    let mut add = |t: ndarray::ArrayViewD<'_, Elem>| {
        count += t.len() as u64;
        for v in t.iter() {
            hasher.update(&v.to_bits().to_le_bytes());
        }
    };
    model.visit_params(&mut |_, p| add(p.value().view()));
    model.visit_buffers(&mut |_, b| add(b.view()));
    (u64::from(hasher.finalize()) << 32) ^ count
}

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
    /// early stopping behave as in one process.
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
    /// `[loss, one presence flag per parameter, every parameter's gradient]`, sent and
    /// summed in one all-reduce.
    send: Vec<Elem>,
    received: Vec<Elem>,
    /// The summed gradients' tensors, reused from step to step.
    tensors: Vec<Tensor>,
}

impl StepSync {
    pub(crate) fn new(world: Distributed) -> Self {
        StepSync {
            world,
            steps: 0,
            send: Vec::new(),
            received: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// This rank's rows of a batch of `rows` rows, after checking (on the first step and
    /// every [`SYNC_CHECK_EVERY`]-th) that all ranks hold the same parameters and batch.
    ///
    /// # Errors
    /// When some rank would get no row, or when the ranks' parameters or batches differ.
    pub(crate) fn begin(&mut self, model: &dyn Module, batch: &Batch<'_>) -> Result<Range<usize>> {
        let (rows, size) = (batch.len(), self.world.size);
        if rows < size {
            return Err(Error::InvalidArgument {
                op: "distributed train step",
                message: format!(
                    "a batch of {rows} samples cannot be split over {size} ranks, expected at \
                     least one sample per rank"
                ),
            });
        }
        if self.steps.is_multiple_of(SYNC_CHECK_EVERY) {
            self.world.check_same_parameters(model)?;
            let differ = self.world.ranks_differing(batch_hash(batch));
            if !differ.is_empty() {
                return Err(Error::InvalidArgument {
                    op: "distributed train step",
                    message: format!(
                        "the batch of rank(s) {differ:?} differs from rank 0's at step {}, \
                         expected the same data and shuffle seed on every rank",
                        self.steps
                    ),
                });
            }
        }
        self.steps += 1;
        Ok(self.world.rows(rows))
    }

    /// The sum over the ranks that batch normalization's moments and the shards' losses
    /// go through.
    pub(crate) fn cross_sum(&self) -> CrossSum {
        // the closure keeps MPI initialized while a step may call it
        let world = self.world.clone();
        CrossSum(Arc::new(move |values: &mut [f64]| {
            let _initialized = &world;
            Distributed::sum_in_place(values, &mut Vec::new());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_rows_are_disjoint_cover_the_batch_and_differ_by_one_at_most() {
        for size in 1..6 {
            for rows in size..40 {
                let slices: Vec<_> = (0..size).map(|r| rank_rows(r, size, rows)).collect();
                assert_eq!(slices[0].start, 0);
                assert_eq!(slices[size - 1].end, rows);
                for pair in slices.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let lens: Vec<_> = slices.iter().map(|s| s.len()).collect();
                let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(
                    max - min <= 1 && *min >= 1,
                    "{size} ranks, {rows} rows: {lens:?}"
                );
            }
        }
    }

    #[test]
    fn the_parameter_hash_sees_one_bit() {
        use crate::nn::Linear;
        let a = Linear::from_parts(crate::tensor::ones(&[2, 3]), None).unwrap();
        let mut w = crate::tensor::ones(&[2, 3]);
        w[[1, 2]] = f32::from_bits(1.0f32.to_bits() + 1);
        let b = Linear::from_parts(w, None).unwrap();
        assert_ne!(parameter_hash(&a), parameter_hash(&b));
        let c = Linear::from_parts(crate::tensor::ones(&[2, 3]), None).unwrap();
        assert_eq!(parameter_hash(&a), parameter_hash(&c));
    }
}
