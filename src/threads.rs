//! The one thread-count setting, shared by the matrix-product kernel and rayon.
//!
//! By default tapegrad uses rayon's global pool, whose size comes from the environment
//! variable `RAYON_NUM_THREADS` or else the number of cores. [`set_num_threads`] changes it
//! for both the `gemm` kernel and element-wise work. Results do not depend on scheduling
//! beyond float summation order, and the same thread count always gives the same numbers.

use crate::error::{Error, Result};
use std::cell::Cell;
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
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// Runs `f` on a thread of the pool and returns its result (directly, when there is one
/// thread or the caller is already a pool thread), with the pool's other threads kept awake
/// until it returns.
///
/// Run a training loop this way to get the most from several cores. The work a step splits
/// off (a shard of the batch in [`TrainStep`](crate::TrainStep), a block of a matrix product)
/// is then taken up at once by the other threads, which wait for it spinning, as OpenMP's
/// threads do inside a parallel region, instead of sleeping and being woken for every piece:
/// a wake-up costs tens to hundreds of microseconds on a virtual machine, as much as a
/// whole product of a small layer. The price is that those threads keep their cores busy
/// while work keeps coming; after 2 ms without any they only look every 200 µs.
/// [`fit`](crate::fit) runs its loop this way.
///
/// As in any rayon pool, `f` must not block waiting for another thread's work in the pool
/// (such as another caller's loop): a pool thread that waits may take up that other work
/// itself, on top of its own.
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
    rayon::scope(|_| {
        let owner = rayon::current_thread_index();
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        // one job per pool thread, which no other thread can take (a thread that took a
        // second one would keep only one thread awake), and not waited for: should a helper
        // take up another caller's whole loop, this one still returns when `f` does
        rayon::spawn_broadcast(move |thread| {
            if Some(thread.index()) != owner && thread.index() < threads {
                keep_awake(&flag);
            }
        });
        // set even when `f` panics, so that the helpers stop
        let _release_helpers = SetOnDrop(&done);
        f()
    })
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Pause instructions a kept-awake thread waits between looks for work.
const IDLE_SPINS: usize = 32;

/// How long a kept-awake thread spins without finding work before it only looks every
/// [`IDLE_NAP`]: far longer than the gaps between a training step's parallel pieces, so
/// training never sees the naps, while a long pause of the loop (evaluation on one thread,
/// a slow callback, I/O) does not keep a core busy.
const SPIN_BUDGET: Duration = Duration::from_millis(2);

/// The sleep between looks for work of a thread idle for longer than [`SPIN_BUDGET`].
const IDLE_NAP: Duration = Duration::from_micros(200);

/// Takes up the pool's work as soon as there is some, until `done`.
fn keep_awake(done: &AtomicBool) {
    let mut idle_since = Instant::now();
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            idle_since = Instant::now();
        } else if idle_since.elapsed() < SPIN_BUDGET {
            // about a microsecond between looks, so that looking for work (which reads the
            // other threads' queues) does not slow down the thread that is working
            for _ in 0..IDLE_SPINS {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(IDLE_NAP);
        }
    }
}

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
fn threads_for_ops() -> usize {
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

/// Products with fewer multiply-adds than this run on one thread: below it, waking the
/// other threads costs more than they save (measured on workload W1's shapes).
const PARALLEL_MIN_MULTIPLY_ADDS: usize = 1 << 21;

/// The `gemm` crate's parallelism for a product of `multiply_adds` under the current setting.
pub(crate) fn gemm_parallelism(multiply_adds: usize) -> gemm::Parallelism {
    match threads_for_ops() {
        n if n > 1 && multiply_adds >= PARALLEL_MIN_MULTIPLY_ADDS => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

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
    fn two_loops_in_pool_at_once_both_finish() {
        let _ = set_num_threads(2);
        let work = || {
            (0..50)
                .map(|_| in_pool(|| (0..10_000u64).into_par_iter().map(|i| i % 3).sum::<u64>()))
                .sum::<u64>()
        };
        let other = std::thread::spawn(work);
        let expected = 50 * (0..10_000u64).map(|i| i % 3).sum::<u64>();
        assert_eq!(work(), expected);
        assert_eq!(other.join().unwrap(), expected);
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
