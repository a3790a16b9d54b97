//! [`Distributed`] (feature `mpi`): data parallelism across processes, on one machine or
//! several, with MPI. Each process (rank) takes its own slice of every batch, the ranks add
//! up their gradients with one all-reduce per step, and every rank applies the same update,
//! so the parameters stay the same on all of them (PyTorch's `DistributedDataParallel`).

use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::Elem;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use std::ops::Range;
use std::sync::Arc;

mod preflight;
mod step;

pub(crate) use step::StepSync;

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
/// MPI all-reduce of every parameter's gradient (dense: see [`TrainStep::distributed`](crate::TrainStep::distributed)), so
/// each rank applies the update of the whole batch, as one process would. Batch
/// normalization takes its statistics over the global batch (its moments are all-reduced
/// too, as PyTorch's `SyncBatchNorm` does).
///
/// Everything must be the same on every rank: the program, the model's initial parameters
/// (build it from the same seed), the data and the seed of the shuffle. The first step
/// and every [`SYNC_CHECK_EVERY`]-th step check that the ranks hold the same parameters and
/// batch, and return an error naming the ranks that differ.
///
/// # When ranks disagree or fail
/// A rank that stops while the others wait for it in a collective would leave them waiting
/// forever, so tapegrad agrees its failures across the ranks: every rank returns the same
/// error, naming the rank that failed and why.
/// - [`fit`](crate::fit) first compares, in one small collective, each rank's checks (of
///   its settings, its training and validation sets against the model), the lengths and
///   hashes of its data sets (samples, targets, scaler), the settings that shape training
///   and the optimizer's ([`Optimizer::settings`](crate::Optimizer::settings): rate,
///   schedule, momentum, weight decay, clipping, ...); a rank whose checks fail, or whose
///   data or settings differ from rank 0's, stops every rank before the first step. After
///   the last epoch it checks once more that the ranks hold the same parameters.
/// - [`TrainStep::run`](crate::TrainStep::run) checks each batch (its targets, the model's widths, a batch of at
///   least one row per rank); a rank whose batch fails still takes part in the step's first
///   sum across the ranks, which carries one more number for it, so all ranks learn of it
///   in the step and return its error without updating (no collective is added per step).
/// - A rank that **panics** ends every rank: dropping a `Distributed` (or a clone, such as
///   the one a `TrainStep` keeps) while its thread panics calls `MPI_Abort`, as
///   `python -m mpi4py` does for an uncaught exception.
/// - An **error of your own** on one rank, returned from `main` (with `?`), drops the handle
///   and so calls `MPI_Finalize`, which waits for the ranks still waiting in a collective
///   for this one: the job hangs. Errors from `fit` and `TrainStep::run` are on every rank
///   at once, so `?` on them ends all ranks together; on anything else that may fail on one
///   rank alone (a file missing on one host), call [`Distributed::abort`] instead.
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

impl Drop for Distributed {
    /// Ends every rank with `MPI_Abort` when this thread panics (and there are other
    /// ranks): they may be waiting for this one in a collective it will never reach, and
    /// `MPI_Finalize` would wait for them in turn.
    fn drop(&mut self) {
        if self.size > 1 && std::thread::panicking() {
            eprintln!(
                "tapegrad: rank {} of {} panicked; ending every rank with MPI_Abort (the \
                 others would wait for it forever)",
                self.rank, self.size
            );
            SimpleCommunicator::world().abort(PANIC_EXIT_CODE);
        }
    }
}

/// The exit status of a rank ended by a panic (Rust's own for a panicking `main`).
const PANIC_EXIT_CODE: i32 = 101;

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
    /// (on every rank, so that all stop), and whether their names or shapes differ (another
    /// model) or only their values.
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
        self.check_parameters(model, None)
    }

    /// [`Distributed::check_same_parameters`] after `steps` steps of training, which the
    /// error names (`None`: not during training).
    pub(crate) fn check_parameters(&self, model: &dyn Module, steps: Option<u64>) -> Result<()> {
        let hashes = self.gather(&[parameter_hash(model), layout_hash(model)]);
        let differ = |part: usize| -> Vec<usize> {
            (1..self.size)
                .filter(|&r| hashes[2 * r + part] != hashes[part])
                .collect()
        };
        let (values, layouts) = (differ(0), differ(1));
        match values.is_empty() {
            true => Ok(()),
            false => Err(self.parameters_differ(&values, &layouts, steps)),
        }
    }

    /// The error for ranks `differ` whose parameters differ from rank 0's, `layouts` those
    /// among them whose parameters' names or shapes differ, after `steps` steps of training.
    fn parameters_differ(&self, differ: &[usize], layouts: &[usize], steps: Option<u64>) -> Error {
        let size = self.size;
        let message = match (layouts, steps) {
            ([_, ..], _) => format!(
                "the model of rank(s) {layouts:?} has other parameters or buffers (names or \
                 shapes) than rank 0's, expected the same model on all {size} ranks"
            ),
            ([], None | Some(0)) => format!(
                "the parameters of rank(s) {differ:?} differ from rank 0's, expected the same \
                 on all {size} ranks; build the model from the same seed (or load the same \
                 checkpoint) on every rank"
            ),
            ([], Some(steps)) => format!(
                "the parameters of rank(s) {differ:?} differ from rank 0's after {steps} \
                 steps, expected the same on all {size} ranks: the ranks drifted apart \
                 (optimizers of other settings, or floating-point code that rounds \
                 otherwise)"
            ),
        };
        Error::InvalidArgument {
            op: "distributed check",
            message,
        }
    }

    /// Ends every rank of the job with exit status `code` (`MPI_Abort`): the way out for an
    /// error that only this rank has, where returning it from `main` would leave the other
    /// ranks waiting for this one (see [`Distributed`]). Errors of [`fit`](crate::fit) and
    /// [`TrainStep::run`](crate::TrainStep::run) are returned on every rank at once and need
    /// it not.
    ///
    /// # Examples
    /// ```no_run
    /// use tapegrad::{Distributed, FitConfig};
    /// fn train(world: &Distributed) -> Result<(), Box<dyn std::error::Error>> {
    ///     let _bytes = std::fs::read("on-some-hosts-only.bin")?; // may fail on one rank alone
    ///     let config = FitConfig { distributed: Some(world.clone()), ..FitConfig::default() };
    ///     // fit(&mut model, &mut sgd, &train, None, &config, &mut |_| {})? fails on all or none
    ///     # let _ = config;
    ///     Ok(())
    /// }
    /// fn main() -> std::process::ExitCode {
    ///     let world = Distributed::init().expect("MPI");
    ///     match train(&world) {
    ///         Ok(()) => std::process::ExitCode::SUCCESS,
    ///         Err(e) => {
    ///             eprintln!("rank {}: {e}", world.rank());
    ///             world.abort(1) // every rank ends now, none waits for this one
    ///         }
    ///     }
    /// }
    /// ```
    pub fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }

    /// Every rank's `record` (of the same length on every rank), rank after rank.
    fn gather(&self, record: &[u64]) -> Vec<u64> {
        let world = SimpleCommunicator::world();
        let mut all = vec![0u64; record.len() * self.size];
        world.all_gather_into(record, &mut all[..]);
        all
    }

    /// Every rank's `record` after agreeing on `checked`, this rank's outcome so far: when
    /// some rank failed, every rank returns the same error naming the ranks that failed and
    /// why (one collective, a second one only when some rank failed).
    fn agree(
        &self,
        op: &'static str,
        checked: Result<()>,
        record: &[u64],
    ) -> Result<Vec<Vec<u64>>> {
        let mut mine = Vec::with_capacity(1 + record.len());
        mine.push(u64::from(checked.is_err()));
        mine.extend_from_slice(record);
        let all = self.gather(&mine);
        let records: Vec<&[u64]> = all.chunks(mine.len()).collect();
        if records.iter().all(|r| r[0] == 0) {
            return Ok(records.iter().map(|r| r[1..].to_vec()).collect());
        }
        let message = checked.err().map(|e| e.to_string());
        Err(self.failed(op, message.as_deref()))
    }

    /// The error every rank returns when some rank failed, after gathering what each rank
    /// that failed says (`failure`: this rank's, if it failed). Every rank must call it at
    /// the same point, once all know that some rank failed.
    fn failed(&self, op: &'static str, failure: Option<&str>) -> Error {
        let text = failure.unwrap_or_default().as_bytes();
        // lengths + 1, so that 0 says "did not fail"
        let lengths = self.gather(&[failure.map_or(0, |_| text.len() as u64 + 1)]);
        let counts: Vec<mpi::Count> = (lengths.iter())
            .map(|&l| mpi::Count::try_from(l.saturating_sub(1)).unwrap_or(mpi::Count::MAX))
            .collect();
        let displacements: Vec<mpi::Count> = (counts.iter())
            .scan(0, |at, &count| {
                let start = *at;
                *at += count;
                Some(start)
            })
            .collect();
        let mut all = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
        let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displacements[..]);
        SimpleCommunicator::world().all_gather_varcount_into(text, &mut partition);
        // each distinct reason once, with the ranks that gave it
        let mut reasons: Vec<(Vec<usize>, String)> = Vec::new();
        for (rank, (&length, &start)) in lengths.iter().zip(&displacements).enumerate() {
            if length > 0 {
                let start = start as usize;
                let reason = String::from_utf8_lossy(&all[start..start + length as usize - 1]);
                match reasons.iter_mut().find(|(_, r)| *r == reason) {
                    Some((ranks, _)) => ranks.push(rank),
                    None => reasons.push((vec![rank], reason.into_owned())),
                }
            }
        }
        let mut failed: Vec<usize> = reasons.iter().flat_map(|(r, _)| r.clone()).collect();
        failed.sort_unstable();
        let why = match &reasons[..] {
            [(_, reason)] => reason.clone(),
            _ => (reasons.iter())
                .map(|(ranks, reason)| format!("rank(s) {ranks:?}: {reason}"))
                .collect::<Vec<_>>()
                .join("; "),
        };
        Error::InvalidArgument {
            op,
            message: format!(
                "rank(s) {failed:?} of {} failed, so every rank stops: {why}",
                self.size
            ),
        }
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

/// A hash of the names and shapes of `model`'s parameters and buffers, in walk order.
fn layout_hash(model: &dyn Module) -> u64 {
    let mut hasher = crc32fast::Hasher::new();
    let mut add = |name: &str, shape: &[usize]| {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        for &n in shape {
            hasher.update(&(n as u64).to_le_bytes());
        }
    };
    model.visit_params(&mut |name, p| add(name, p.value().shape()));
    model.visit_buffers(&mut |name, b| add(name, b.shape()));
    u64::from(hasher.finalize())
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
        // the layout hash sees names and shapes, not values
        assert_eq!(layout_hash(&a), layout_hash(&b));
        let wide = Linear::from_parts(crate::tensor::ones(&[3, 2]), None).unwrap();
        assert_ne!(layout_hash(&a), layout_hash(&wide));
        let biased = Linear::from_parts(
            crate::tensor::ones(&[2, 3]),
            Some(crate::tensor::ones(&[2])),
        );
        assert_ne!(layout_hash(&a), layout_hash(&biased.unwrap()));
    }

    #[test]
    fn a_parameter_difference_says_whether_the_model_or_its_training_differs() {
        let world = Distributed::init().unwrap();
        let message =
            |layouts: &[usize], steps| world.parameters_differ(&[1], layouts, steps).to_string();
        assert!(message(&[1], Some(0)).contains("the model of rank(s) [1] has other parameters or buffers (names or shapes) than rank 0's"));
        assert!(
            message(&[], None)
                .contains("build the model from the same seed (or load the same checkpoint)")
        );
        assert!(message(&[], Some(0)).contains("build the model from the same seed"));
        assert!(message(&[], Some(100)).contains("differ from rank 0's after 100 steps"));
    }
}
