//! [`Distributed`] (feature `mpi`): data parallelism across processes, on one machine or
//! several, with MPI. Each process (rank) takes its own slice of every batch, the ranks add
//! up their gradients with one all-reduce per step, and every rank applies the same update,
//! so the parameters stay the same on all of them (PyTorch's `DistributedDataParallel`).

use crate::autograd::grad::Grad;
use crate::autograd::gradients::{Gradients, Leaf};
use crate::autograd::shard_group::CrossSum;
use crate::autograd::tape::Tape;
use crate::data::{Batch, Dataset, Targets};
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::tensor::{Elem, Tensor};
use crate::train::{FitConfig, TrainStep};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use ndarray::Dimension;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
/// # When ranks disagree or fail
/// A rank that stops while the others wait for it in a collective would leave them waiting
/// forever, so tapegrad agrees its failures across the ranks: every rank returns the same
/// error, naming the rank that failed and why.
/// - [`fit`](crate::fit) first compares, in one small collective, each rank's checks (of
///   its settings, its training and validation sets against the model), the lengths and
///   hashes of its data sets (samples, targets, scaler) and the settings that shape
///   training; a rank whose checks fail, or whose data or settings differ from rank 0's,
///   stops every rank before the first step.
/// - [`TrainStep::run`] checks each batch (its targets, the model's widths, a batch of at
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
        let hashes = self.gather(&[parameter_hash(model)]);
        let differ: Vec<usize> = (1..self.size).filter(|&r| hashes[r] != hashes[0]).collect();
        match differ.is_empty() {
            true => Ok(()),
            false => Err(self.parameters_differ(&differ)),
        }
    }

    /// The error for ranks `differ` whose parameters differ from rank 0's.
    fn parameters_differ(&self, differ: &[usize]) -> Error {
        Error::InvalidArgument {
            op: "distributed check",
            message: format!(
                "the parameters of rank(s) {differ:?} differ from rank 0's, expected the \
                 same on all {} ranks; build the model from the same seed on every rank",
                self.size
            ),
        }
    }

    /// Ends every rank of the job with exit status `code` (`MPI_Abort`): the way out for an
    /// error that only this rank has, where returning it from `main` would leave the other
    /// ranks waiting for this one (see [`Distributed`]). Errors of [`fit`](crate::fit) and
    /// [`TrainStep::run`] are returned on every rank at once and need it not.
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

impl Distributed {
    /// [`fit`](crate::fit)'s agreement before its first step, on every rank: `checked` is
    /// this rank's outcome of fit's own checks, to which this adds that the last batch of an
    /// epoch has at least one row per rank. Then one collective compares every rank's
    /// outcome, the settings that shape training and the lengths and hashes of the training
    /// and validation sets.
    ///
    /// # Errors
    /// The same on every rank: the failures of the ranks that failed, or else the ranks
    /// whose data or settings differ from rank 0's, and what differs.
    pub(crate) fn agree_before_fit(
        &self,
        checked: Result<()>,
        train: &Dataset,
        valid: Option<&Dataset>,
        config: &FitConfig,
    ) -> Result<()> {
        let checked = checked.and_then(|()| self.check_last_batch(train.len(), config));
        if self.size == 1 {
            return checked;
        }
        let settings = settings_hashes(config);
        let mut record: Vec<u64> = settings.iter().map(|(_, hash)| *hash).collect();
        record.extend(fingerprint(Some(train)));
        record.extend(fingerprint(valid));
        let records = self.agree("fit", checked, &record)?;
        let ours = &records[0];
        let (train_at, valid_at) = (SETTINGS, SETTINGS + 1 + DATA_PARTS);
        let mut differences = Vec::new();
        for (rank, theirs) in records.iter().enumerate().skip(1) {
            let names: Vec<&str> = (settings.iter().zip(ours).zip(theirs))
                .filter(|((_, a), b)| a != b)
                .map(|(((name, _), _), _)| *name)
                .collect();
            if !names.is_empty() {
                differences.push(format!(
                    "rank {rank}'s settings differ from rank 0's in {}",
                    names.join(", ")
                ));
            }
            for (what, at) in [("training", train_at), ("validation", valid_at)] {
                let range = at..at + 1 + DATA_PARTS;
                let found = data_difference(rank, what, &ours[range.clone()], &theirs[range]);
                differences.extend(found);
            }
        }
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "{}; expected the same data and settings on every rank (each trains on its \
                 rows of the same global batches)",
                differences.join("; ")
            ),
        })
    }

    /// Refuses batches, or a last batch of an epoch, with fewer rows than there are ranks,
    /// which could not give each rank a row: PyTorch's `DistributedSampler` would pad the
    /// epoch with repeated samples instead, which trains on other batches than one process
    /// does.
    fn check_last_batch(&self, samples: usize, config: &FitConfig) -> Result<()> {
        let batch = config.batch_size;
        if (1..self.size).contains(&batch) {
            return Err(Error::InvalidArgument {
                op: "fit",
                message: format!(
                    "batches of {batch} samples cannot be split over {} ranks, expected a \
                     batch_size of at least {}",
                    self.size, self.size
                ),
            });
        }
        let last = samples.checked_rem(batch).unwrap_or(0);
        if config.drop_last || last == 0 || last >= self.size {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "the last batch of each epoch would hold {last} sample(s) ({samples} samples \
                 in batches of {batch}), fewer than the {} ranks that split every batch, \
                 expected at least one per rank; set drop_last: true to leave it out, or a \
                 batch size that leaves no last batch or one of at least {} samples",
                self.size, self.size
            ),
        })
    }
}

/// How many numbers [`fingerprint`] gives after its first (whether there is a data set).
const DATA_PARTS: usize = 5;

/// What the ranks compare of a data set before [`fit`](crate::fit) trains: whether there is
/// one, then its number of samples, a hash of its layout (sample shape, storage, kind and
/// shape of targets), of its stored samples, of its targets and of its scaler. All zero
/// without a data set.
fn fingerprint(data: Option<&Dataset>) -> [u64; 1 + DATA_PARTS] {
    let Some(data) = data else {
        return [0; 1 + DATA_PARTS];
    };
    let kind = match data.targets() {
        Targets::Classes { num_classes, .. } => format!("{num_classes} classes"),
        Targets::Values(_) => "values".into(),
        Targets::MultiLabel(_) => "multi-label".into(),
        Targets::Inputs => "inputs".into(),
    };
    let layout = format!(
        "{:?} {} {:?} {kind}",
        data.sample_shape(),
        data.stores_bytes(),
        data.target_shape()
    );
    let mut samples = Crc::default();
    match (data.bytes(), data.floats()) {
        (Some(bytes), _) => match bytes.as_slice() {
            Some(slice) => samples.bytes(slice),
            None => bytes.iter().for_each(|b| samples.push(&[*b])),
        },
        (_, Some(floats)) => floats.iter().for_each(|v| samples.push(&v.to_le_bytes())),
        (None, None) => {}
    }
    let mut targets = Crc::default();
    match data.targets() {
        Targets::Classes { labels, .. } => {
            (labels.iter()).for_each(|&l| targets.push(&(l as u64).to_le_bytes()))
        }
        Targets::Values(v) => v.iter().for_each(|v| targets.push(&v.to_le_bytes())),
        Targets::MultiLabel(y) => y.iter().for_each(|v| targets.push(&v.to_le_bytes())),
        Targets::Inputs => {}
    }
    let mut scaler = Crc::default();
    if let Some(s) = data.scaler() {
        scaler.bytes(format!("{:?}", s.kind()).as_bytes());
        (s.scale().iter().chain(s.shift())).for_each(|v| scaler.push(&v.to_le_bytes()));
    }
    let mut shape = Crc::default();
    shape.bytes(layout.as_bytes());
    [
        1,
        data.len() as u64,
        shape.finish(),
        samples.finish(),
        targets.finish(),
        scaler.finish(),
    ]
}

/// How rank `rank`'s `what` (training or validation) set differs from rank 0's, from their
/// [`fingerprint`]s `ours` (rank 0's) and `theirs`; `None` when it does not.
fn data_difference(rank: usize, what: &str, ours: &[u64], theirs: &[u64]) -> Option<String> {
    let has = |present: u64| if present == 0 { "no" } else { "a" };
    if ours[0] != theirs[0] {
        return Some(format!(
            "rank {rank} has {} {what} set, rank 0 {}",
            has(theirs[0]),
            has(ours[0])
        ));
    }
    if ours[1] != theirs[1] {
        return Some(format!(
            "rank {rank}'s {what} set has {} samples, rank 0's {}",
            theirs[1], ours[1]
        ));
    }
    let parts = [
        "sample or target shapes",
        "sample values",
        "targets",
        "scaler",
    ];
    let differ: Vec<&str> = (parts.iter().zip(&ours[2..]).zip(&theirs[2..]))
        .filter(|((_, a), b)| a != b)
        .map(|((part, _), _)| *part)
        .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "rank {rank}'s {what} set differs from rank 0's in its {}",
            differ.join(", ")
        )
    })
}

/// How many settings [`settings_hashes`] gives.
const SETTINGS: usize = 12;

/// The settings of `config` that shape training, each named and hashed: ranks that differ
/// in one of them would train on other batches, or stop after other steps.
fn settings_hashes(config: &FitConfig) -> [(&'static str, u64); SETTINGS] {
    // every field named, so that a new one is not forgotten here
    let FitConfig {
        epochs,
        start_epoch,
        batch_size,
        seed,
        drop_last,
        on_divergence,
        patience,
        monitor,
        plateau,
        augment,
        loss,
        eval_batch_size,
        distributed: _,
    } = config;
    let hash = |value: &dyn std::fmt::Debug| {
        let mut crc = Crc::default();
        crc.bytes(format!("{value:?}").as_bytes());
        crc.finish()
    };
    [
        ("epochs", hash(epochs)),
        ("start_epoch", hash(start_epoch)),
        ("batch_size", hash(batch_size)),
        ("seed", hash(seed)),
        ("drop_last", hash(drop_last)),
        ("on_divergence", hash(on_divergence)),
        ("patience", hash(patience)),
        ("monitor", hash(monitor)),
        ("plateau", hash(plateau)),
        ("augment", hash(augment)),
        ("loss", hash(loss)),
        ("eval_batch_size", hash(eval_batch_size)),
    ]
}

/// A CRC-32 of bytes given a few at a time (each number's little-endian bytes), fed to the
/// hasher in blocks.
#[derive(Default)]
struct Crc {
    hasher: crc32fast::Hasher,
    block: Vec<u8>,
}

impl Crc {
    /// Adds a few bytes.
    fn push(&mut self, bytes: &[u8]) {
        self.block.extend_from_slice(bytes);
        if self.block.len() >= 1 << 14 {
            self.hasher.update(&self.block);
            self.block.clear();
        }
    }

    /// Adds many bytes.
    fn bytes(&mut self, bytes: &[u8]) {
        self.hasher.update(&self.block);
        self.block.clear();
        self.hasher.update(bytes);
    }

    fn finish(mut self) -> u64 {
        self.hasher.update(&self.block);
        u64::from(self.hasher.finalize())
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
                    Ok(()) => [parameter_hash(model), batch_hash(batch)],
                    Err(_) => [0, 0],
                };
                let records = self.world.agree(OP, checked, &record)?;
                let differ = |part: usize| -> Vec<usize> {
                    (1..size)
                        .filter(|&r| records[r][part] != records[0][part])
                        .collect()
                };
                let (parameters, batches) = (differ(0), differ(1));
                if !parameters.is_empty() {
                    return Err(self.world.parameters_differ(&parameters));
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

    /// 10 samples of 3 features and 2 classes.
    fn data() -> Dataset {
        let x = ndarray::Array2::from_shape_fn((10, 3), |(i, j)| (i * 3 + j) as f32 / 7.0);
        Dataset::from_floats(x, (0..10).map(|i| i % 2).collect()).unwrap()
    }

    #[test]
    fn a_fingerprint_sees_one_value_one_label_the_length_the_shape_and_the_scaler() {
        let base = fingerprint(Some(&data()));
        assert_eq!((base[0], base[1]), (1, 10));
        assert_eq!(base, fingerprint(Some(&data())));
        assert_eq!(fingerprint(None), [0; 1 + DATA_PARTS]);
        let mut x = data().floats().unwrap().to_owned();
        x[[7, 2]] = f32::from_bits(x[[7, 2]].to_bits() + 1);
        let x = x.into_dimensionality().unwrap();
        let value = Dataset::from_floats(x, data().labels().unwrap().to_vec()).unwrap();
        let mut labels = data().labels().unwrap().to_vec();
        labels[4] = 1;
        let label = Dataset::from_floats(
            data()
                .floats()
                .unwrap()
                .to_owned()
                .into_dimensionality()
                .unwrap(),
            labels,
        );
        let shorter = data().subset(&(0..9).collect::<Vec<_>>()).unwrap();
        let mut scaled = data();
        scaled
            .set_scaler(crate::Scaler::affine(3, 2.0, 0.0).unwrap())
            .unwrap();
        let describe = |other: &Dataset| {
            data_difference(1, "training", &base, &fingerprint(Some(other))).unwrap()
        };
        assert_eq!(
            describe(&value),
            "rank 1's training set differs from rank 0's in its sample values"
        );
        assert_eq!(
            describe(&label.unwrap()),
            "rank 1's training set differs from rank 0's in its targets"
        );
        assert_eq!(
            describe(&shorter),
            "rank 1's training set has 9 samples, rank 0's 10"
        );
        assert_eq!(
            describe(&scaled),
            "rank 1's training set differs from rank 0's in its scaler"
        );
        let wide = data().with_sample_shape(&[3, 1]).unwrap();
        assert_eq!(
            describe(&wide),
            "rank 1's training set differs from rank 0's in its sample or target shapes"
        );
        let none = data_difference(2, "validation", &base, &fingerprint(None));
        assert_eq!(none.unwrap(), "rank 2 has no validation set, rank 0 a");
        assert_eq!(data_difference(1, "training", &base, &base), None);
    }

    #[test]
    fn the_settings_hashes_see_each_setting_that_shapes_training() {
        let base = FitConfig::default();
        let hashes = settings_hashes(&base);
        let changed = [
            (
                "epochs",
                FitConfig {
                    epochs: 11,
                    ..base.clone()
                },
            ),
            (
                "batch_size",
                FitConfig {
                    batch_size: 63,
                    ..base.clone()
                },
            ),
            (
                "seed",
                FitConfig {
                    seed: 1,
                    ..base.clone()
                },
            ),
            (
                "drop_last",
                FitConfig {
                    drop_last: true,
                    ..base.clone()
                },
            ),
            (
                "patience",
                FitConfig {
                    patience: Some(2),
                    ..base.clone()
                },
            ),
            (
                "loss",
                FitConfig {
                    loss: Some(crate::Loss::Mse),
                    ..base.clone()
                },
            ),
        ];
        for (name, config) in changed {
            let differ: Vec<&str> = (settings_hashes(&config).iter().zip(&hashes))
                .filter(|(a, b)| a != b)
                .map(|((name, _), _)| *name)
                .collect();
            assert_eq!(differ, [name]);
        }
        assert_eq!(settings_hashes(&base.clone()), hashes);
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
