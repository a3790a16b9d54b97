//! The one thread-count setting, shared by the matrix-product kernel and rayon.
//!
//! By default tapegrad uses rayon's global pool, whose size comes from the environment
//! variable `RAYON_NUM_THREADS` or else the number of cores. [`set_num_threads`] changes it
//! for both the `gemm` kernel and element-wise work. Results do not depend on scheduling
//! beyond float summation order, and the same thread count always gives the same numbers.
//!
//! The crate's own kernels and the training step split their work in halves with [`join`]
//! (and [`map_items`]), whose waiting side spins instead of sleeping, and keep the pool's
//! other threads awake around a training loop with [`in_pool`].

use crate::error::{Error, Result};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// 0 means "not set": use rayon's global pool size.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads matrix products and parallel element-wise work may use, like
/// `torch.set_num_threads`. The first call also sizes rayon's global pool when nothing has
/// built it yet; later calls can only lower the count below that pool's size.
///
/// The count may not exceed the CPUs this process may run on
/// ([`std::thread::available_parallelism`], which heeds CPU affinity and cgroup quotas):
/// the threads keep each other awake while a loop runs ([`in_pool`]), so more threads than
/// CPUs only take turns, and a step then waits for the scheduler (measured: 1,000 threads on 2
/// CPUs made training 870 times slower).
///
/// # Errors
/// [`Error::InvalidArgument`] when `n` is 0, more than the CPUs available, or larger than
/// an already built global pool.
///
/// # Examples
/// ```
/// tapegrad::set_num_threads(1)?;
/// assert_eq!(tapegrad::num_threads(), 1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidArgument {
            op: "set_num_threads",
            message: "needs at least 1 thread, got 0".into(),
        });
    }
    if let Ok(cpus) = std::thread::available_parallelism()
        && n > cpus.get()
    {
        return Err(Error::InvalidArgument {
            op: "set_num_threads",
            message: format!("expected at most the {cpus} CPUs this process may use, got {n}"),
        });
    }
    // Fails harmlessly when the global pool already exists.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    let pool = rayon::current_num_threads();
    if n > pool {
        return Err(Error::InvalidArgument {
            op: "set_num_threads",
            message: format!("rayon's global pool was already built with {pool} threads, got {n}"),
        });
    }
    THREADS.store(n, Ordering::Relaxed);
    Ok(())
}

/// The number of threads matrix products may use.
///
/// # Examples
/// ```
/// assert!(tapegrad::num_threads() >= 1); // rayon's pool size until set
/// tapegrad::set_num_threads(1)?;
/// assert_eq!(tapegrad::num_threads(), 1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// Runs `f` on a thread of the pool and returns its result (directly, when there is one
/// thread or the caller is already a pool thread), with the pool's other threads kept awake
/// while it runs.
///
/// Run a training loop this way to get the most from several cores. The work a step splits
/// off (a shard of the batch in [`TrainStep`](crate::TrainStep), a block of a matrix product)
/// is then taken up at once by the other threads, which wait for it spinning, as OpenMP's
/// threads do inside a parallel region, instead of sleeping and being woken for every piece:
/// a wake-up costs tens to hundreds of microseconds on a virtual machine, as much as a
/// whole product of a small layer. The price is that those threads keep their cores busy
/// while work keeps coming. A thread that finds no work for 2 ms goes back to rayon's
/// ordinary sleep, and the next training step wakes it again.
///
/// One loop at a time keeps the threads awake: while one runs, another caller's `f` runs on
/// the pool as any rayon work does (same numbers, without the spinning helpers). As in any
/// rayon pool, `f` must not block waiting for another thread's work in the pool: a pool
/// thread that waits may take up that other work itself, on top of its own.
///
/// # Examples
/// ```
/// let sum = tapegrad::in_pool(|| (1..=4).sum::<i32>());
/// assert_eq!(sum, 10);
/// ```
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let threads = num_threads();
    if threads == 1 || rayon::current_thread_index().is_some() {
        return f();
    }
    if LOOP_KEPT_AWAKE
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return rayon::scope(|_| f());
    }
    let _release_claim = StoreOnDrop(&LOOP_KEPT_AWAKE, false);
    rayon::scope(|_| {
        let kept = Arc::new(KeptAwake {
            owner: rayon::current_thread_index(),
            awake: (0..threads).map(|_| AtomicBool::new(false)).collect(),
            done: AtomicBool::new(false),
        });
        // set even when `f` panics, so that the helpers stop
        let _release_helpers = StoreOnDrop(&kept.done, true);
        let _forget_loop = ForgetLoopOnDrop(CURRENT_LOOP.replace(Some(Arc::clone(&kept))));
        kept.wake_helpers();
        f()
    })
}

/// Wakes the helpers of the loop this thread runs in [`in_pool`] that have gone back to
/// sleep (after a pause without work); does nothing outside such a loop.
pub(crate) fn keep_helpers_awake() {
    CURRENT_LOOP.with_borrow(|kept| {
        if let Some(kept) = kept {
            kept.wake_helpers();
        }
    });
}

/// Whether some [`in_pool`] call keeps the pool's threads awake now. Only one may: two loops
/// that each kept helpers could deadlock, each loop's thread waiting inside its own work
/// while running the other loop's helper, which ends only when that loop ends.
static LOOP_KEPT_AWAKE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The loop this thread runs in [`in_pool`], if any.
    static CURRENT_LOOP: RefCell<Option<Arc<KeptAwake>>> = const { RefCell::new(None) };
}

/// The state one [`in_pool`] loop shares with its helper threads.
struct KeptAwake {
    /// The pool thread that runs the loop itself.
    owner: Option<usize>,
    /// Per pool thread: whether a helper job is queued or running there.
    awake: Vec<AtomicBool>,
    /// Set when the loop has returned.
    done: AtomicBool,
}

impl KeptAwake {
    /// Queues a helper job on every thread (but the owner) that has none.
    fn wake_helpers(self: &Arc<Self>) {
        let mut asleep = false;
        for (index, awake) in self.awake.iter().enumerate() {
            if Some(index) != self.owner && !awake.swap(true, Ordering::AcqRel) {
                asleep = true;
            }
        }
        if !asleep {
            return;
        }
        // one job per pool thread, which no other thread can take, and not waited for
        let kept = Arc::clone(self);
        rayon::spawn_broadcast(move |thread| {
            let index = thread.index();
            if Some(index) != kept.owner && index < kept.awake.len() {
                kept.help();
                kept.awake[index].store(false, Ordering::Release);
            }
        });
    }

    /// Takes up the pool's work as soon as there is some, until the loop is done or no work
    /// has come for [`SPIN_BUDGET`].
    ///
    /// The time limit is what makes this safe: a thread may pick this job up while it waits
    /// inside a piece of the loop's own work that the loop in turn waits for; the loop then
    /// has nothing to hand out, and the helper steps aside after the budget.
    fn help(&self) {
        let mut idle_since = Instant::now();
        while !self.done.load(Ordering::Acquire) && idle_since.elapsed() < SPIN_BUDGET {
            if let Some(rayon::Yield::Executed) = rayon::yield_now() {
                idle_since = Instant::now();
            } else {
                // about a microsecond between looks, so that looking for work (which reads
                // the other threads' queues) does not slow down the thread that is working
                for _ in 0..IDLE_SPINS {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// `rayon::join(a, b)`, except for how the calling thread waits when another thread took
/// `b` and `a` is done first: spinning, and running whatever work the pool has meanwhile,
/// instead of rayon's wait, which after a few dozen yields puts the thread to sleep and
/// needs a wake-up when `b` ends. On a virtual machine that wake-up took about 20 µs per
/// join, measured at the end of each half of workload W1's 2-thread SGD update (which
/// itself takes about 120 µs), and a training step makes several such joins. The wait
/// spins only until `b` ends, which it does without waiting for the caller.
pub(crate) fn join<RA: Send, RB: Send>(
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    let b_done = AtomicBool::new(false);
    rayon::join(
        || {
            let ra = a();
            // `b` is still queued here (and then `yield_now` runs it) or runs elsewhere
            while !b_done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
            ra
        },
        || {
            // set also when `b` panics, so that `a`'s side stops waiting
            let _done = StoreOnDrop(&b_done, true);
            b()
        },
    )
}

/// `f(i, &mut items[i])` for every item, the items split in halves across the pool by
/// [`join`], and the results in item order (what `items.par_iter_mut().enumerate().map(f)
/// .collect()` gives, with [`join`]'s wait).
pub(crate) fn map_items<T: Send, R: Send>(
    items: &mut [T],
    f: &(impl Fn(usize, &mut T) -> R + Sync),
) -> Vec<R> {
    /// Fills `results` (as long as `items`) from `items`, the first of which is item
    /// `first`.
    fn fill<T: Send, R: Send>(
        items: &mut [T],
        first: usize,
        results: &mut [Option<R>],
        f: &(impl Fn(usize, &mut T) -> R + Sync),
    ) {
        match items {
            [] => {}
            [item] => results[0] = Some(f(first, item)),
            _ => {
                let middle = items.len() / 2;
                let (items_a, items_b) = items.split_at_mut(middle);
                let (results_a, results_b) = results.split_at_mut(middle);
                join(
                    || fill(items_a, first, results_a, f),
                    || fill(items_b, first + middle, results_b, f),
                );
            }
        }
    }
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    fill(items, 0, &mut results, f);
    results
        .into_iter()
        .map(|r| r.expect("internal error: every item was mapped"))
        .collect()
}

/// Stores its value in its flag when dropped.
struct StoreOnDrop<'a>(&'a AtomicBool, bool);

impl Drop for StoreOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Release);
    }
}

/// Restores [`CURRENT_LOOP`] when dropped.
struct ForgetLoopOnDrop(Option<Arc<KeptAwake>>);

impl Drop for ForgetLoopOnDrop {
    fn drop(&mut self) {
        CURRENT_LOOP.set(self.0.take());
    }
}

/// Pause instructions a kept-awake thread waits between looks for work.
const IDLE_SPINS: usize = 32;

/// How long a kept-awake thread spins without finding work before it goes back to rayon's
/// sleep: far longer than the gaps between a training step's parallel pieces, so training
/// never sees it, while a long pause of the loop (evaluation on one thread, a slow callback,
/// I/O) does not keep a core busy.
const SPIN_BUDGET: Duration = Duration::from_millis(2);

thread_local! {
    /// Set while a thread runs one shard of a batch split across the pool: its ops then stay
    /// on that thread, since every other thread is busy with a shard of its own.
    static IN_SHARD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every op it calls on the calling thread only (see [`IN_SHARD`]).
pub(crate) fn as_shard<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag as it was, also when `f` panics (the pool thread lives on).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_SHARD.set(self.0);
        }
    }
    let _restore = Restore(IN_SHARD.replace(true));
    f()
}

/// The threads an op may use here: 1 inside a shard, else [`num_threads`].
pub(crate) fn threads_for_ops() -> usize {
    if IN_SHARD.get() { 1 } else { num_threads() }
}

/// Element-wise work on fewer elements than this stays on one thread: below it, rayon's
/// fork-join costs more than the second core saves.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// Whether element-wise work over `len` elements should be split across threads.
/// Element-wise results do not depend on the split, so this never changes a number.
pub(crate) fn parallel(len: usize) -> bool {
    len >= PARALLEL_MIN_ELEMENTS && threads_for_ops() > 1
}

/// Into how many pieces, one per thread, work over `len` elements made of `items`
/// independent items (images, rows) should be split: 1 below the element-wise threshold of
/// [`parallel`] or inside a shard, else the threads ops may use, at most `items`.
pub(crate) fn pieces(len: usize, items: usize) -> usize {
    if parallel(len) {
        threads_for_ops().min(items).max(1)
    } else {
        1
    }
}

/// Into how many blocks of rows, one per thread, a batch of `rows` should be cut when each
/// block needs at least `min_rows`: 1 inside a shard or for a small batch.
pub(crate) fn shards(rows: usize, min_rows: usize) -> usize {
    threads_for_ops().min(rows / min_rows.max(1)).max(1)
}

/// Products with fewer multiply-adds than this run on one thread: below it, handing half
/// to another thread and waiting for it costs more than it saves. Measured on a 2-core
/// Xeon (AVX-512) with workload W2's batch-1 inference, whose second convolution is a
/// product of 3.6 million multiply-adds: split across 2 threads, 3,300 images/s; on one,
/// 4,400 (a limit of 2²¹ had been measured on an AVX2 EPYC with W1's shapes).
const PARALLEL_MIN_MULTIPLY_ADDS: usize = 1 << 22;

/// The threads a product of `multiply_adds` should be split across under the current
/// setting: 1 below [`PARALLEL_MIN_MULTIPLY_ADDS`] or inside a shard.
pub(crate) fn product_threads(multiply_adds: usize) -> usize {
    match multiply_adds >= PARALLEL_MIN_MULTIPLY_ADDS {
        true => threads_for_ops(),
        false => 1,
    }
}

/// Kernels that cut their output into independent blocks, each computed from operands read
/// in place (no per-thread copy, as the `gemm` crate's packing is), split work of at least
/// this many multiply-adds across threads. Measured on the 2-core Xeon with batch-1
/// inference on 2 threads, helpers kept awake by [`in_pool`]: handing half of workload W2's
/// direct second convolution's channels (3.6 million multiply-adds) and of its 3136 × 128
/// linear layer's columns (0.4 million, memory-bound) to the other core took W2 from
/// 6,500–7,000 to 7,300–9,000 images/s (its first convolution, 0.23 million, split too made
/// no difference beyond noise), and splitting W1's 784 × 256 layer (0.2 million) took W1
/// from 38,000–48,000 to 47,000–56,000 samples/s.
const PARALLEL_MIN_BLOCK_MULTIPLY_ADDS: usize = 1 << 17;

/// The threads a kernel of [`PARALLEL_MIN_BLOCK_MULTIPLY_ADDS`]'s kind should split
/// `multiply_adds` across, with `blocks` independent blocks to hand out: 1 below that
/// threshold or inside a shard, else the threads ops may use, at most `blocks`.
pub(crate) fn block_threads(multiply_adds: usize, blocks: usize) -> usize {
    match multiply_adds >= PARALLEL_MIN_BLOCK_MULTIPLY_ADDS {
        true => threads_for_ops().min(blocks).max(1),
        false => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn join_returns_both_results_and_a_panic_on_either_side_reaches_the_caller() {
        let _ = set_num_threads(2);
        // inside a loop with a helper that takes `b` up, on a pool thread and outside the pool
        let sums = |items: u64| join(|| (0..items).sum::<u64>(), || (0..items).product::<u64>());
        assert_eq!(in_pool(|| sums(5)), (10, 0));
        assert_eq!(rayon::scope(|_| sums(4)), (6, 0));
        assert_eq!(sums(3), (3, 0));
        // `b` panics while `a`'s side waits for it, and the other way round
        for b_panics in [true, false] {
            let caught = std::panic::catch_unwind(|| {
                in_pool(|| join(|| assert!(b_panics, "a"), || assert!(!b_panics, "b")))
            });
            let message = caught.unwrap_err();
            let text = message
                .downcast_ref::<String>()
                .map(String::as_str)
                .or(message.downcast_ref::<&str>().copied());
            assert_eq!(text, Some(if b_panics { "b" } else { "a" }));
        }
    }

    #[test]
    fn map_items_maps_every_item_once_and_keeps_their_order() {
        let _ = set_num_threads(2);
        for len in [0, 1, 2, 5] {
            let mut items: Vec<usize> = (0..len).map(|i| 10 * i).collect();
            let results = in_pool(|| {
                map_items(&mut items, &|i, item| {
                    *item += 1;
                    (i, *item)
                })
            });
            let expected: Vec<(usize, usize)> = (0..len).map(|i| (i, 10 * i + 1)).collect();
            assert_eq!(results, expected, "{len} items");
            assert!(items.iter().enumerate().all(|(i, &v)| v == 10 * i + 1));
        }
    }

    #[test]
    fn a_panic_in_pool_reaches_the_caller_and_releases_the_helpers() {
        // two threads when the pool allows (it may already be built with one)
        let _ = set_num_threads(2);
        let caught = std::panic::catch_unwind(|| in_pool(|| panic!("inside the pool")));
        let message = caught.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"inside the pool"));
        // the pool still works
        assert_eq!(in_pool(|| 7), 7);
    }

    #[test]
    fn a_shard_that_panics_leaves_its_thread_free_to_split_work_again() {
        let _ = set_num_threads(2);
        let caught = std::panic::catch_unwind(|| as_shard(|| panic!("in a shard")));
        assert!(caught.is_err());
        assert!(!IN_SHARD.get());
        assert_eq!(as_shard(threads_for_ops), 1);
    }

    #[test]
    fn loops_in_pool_on_several_threads_at_once_all_finish() {
        // Each loop waits for stolen work many times; before one loop at a time kept the pool
        // awake, two loops could each take up the other's keep-awake job and wait forever.
        let _ = set_num_threads(2);
        let block_sum = |b: u64| {
            (0..20_000u64)
                .into_par_iter()
                .map(move |i| (i + b) % 3)
                .sum::<u64>()
        };
        let work = move || {
            (0..500)
                .map(|_| in_pool(|| (0..10u64).map(block_sum).sum::<u64>()))
                .sum::<u64>()
        };
        let expected: u64 = 500
            * (0..10u64)
                .map(|b| (0..20_000u64).map(|i| (i + b) % 3).sum::<u64>())
                .sum::<u64>();
        let (sender, finished) = std::sync::mpsc::channel();
        for _ in 0..3 {
            let sender = sender.clone();
            std::thread::spawn(move || sender.send(work()).unwrap());
        }
        for _ in 0..3 {
            let sum = finished
                .recv_timeout(Duration::from_secs(60))
                .expect("three loops in the pool at once did not finish within a minute");
            assert_eq!(sum, expected);
        }
    }

    #[test]
    fn in_pool_runs_nested_parallel_work_to_the_end() {
        // the loop's own thread waits for stolen work many times; it must never get stuck in
        // a keep-awake job of its own
        let expected: u64 = (0..100_000u64).map(|i| i * i % 7).sum();
        for _ in 0..20 {
            let sum = in_pool(|| {
                (0..100u64)
                    .map(|block| {
                        let range = block * 1000..(block + 1) * 1000;
                        range.into_par_iter().map(|i| i * i % 7).sum::<u64>()
                    })
                    .sum::<u64>()
            });
            assert_eq!(sum, expected);
        }
    }
}
