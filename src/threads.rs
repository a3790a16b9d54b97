//! The one thread-count setting, shared by the matrix-product kernel and rayon.
//!
//! By default tapegrad uses rayon's global pool, whose size comes from the environment
//! variable `RAYON_NUM_THREADS` or else the number of cores. [`set_num_threads`] changes it
//! for both the `gemm` kernel and element-wise work. Results do not depend on scheduling
//! beyond float summation order, and the same thread count always gives the same numbers.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 means "not set": use rayon's global pool size.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads matrix products and parallel element-wise work may use, like
/// `torch.set_num_threads`. The first call also sizes rayon's global pool when nothing has
/// built it yet; later calls can only lower the count below that pool's size.
///
/// # Errors
/// [`Error::InvalidArgument`] when `n` is 0, or larger than an already built global pool.
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
/// thread or the caller is already a pool thread).
///
/// Run a training loop this way to get the most from several cores: the work a matrix
/// product or an element-wise op splits off is then taken up by the other pool threads while
/// the loop's own thread does its share, instead of the loop's thread handing everything
/// over and sleeping until it is done, which costs a thread wake-up per op. [`fit`](crate::fit)
/// runs its loop this way.
///
/// # Examples
/// ```
/// let sum = tapegrad::in_pool(|| (1..=4).sum::<i32>());
/// assert_eq!(sum, 10);
/// ```
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if num_threads() == 1 || rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// Element-wise work on fewer elements than this stays on one thread: below it, rayon's
/// fork-join costs more than the second core saves.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// Whether element-wise work over `len` elements should be split across threads.
/// Element-wise results do not depend on the split, so this never changes a number.
pub(crate) fn parallel(len: usize) -> bool {
    len >= PARALLEL_MIN_ELEMENTS && num_threads() > 1
}

/// Products with fewer multiply-adds than this run on one thread: below it, waking the
/// other threads costs more than they save (measured on workload W1's shapes).
const PARALLEL_MIN_MULTIPLY_ADDS: usize = 1 << 21;

/// The `gemm` crate's parallelism for a product of `multiply_adds` under the current setting.
pub(crate) fn gemm_parallelism(multiply_adds: usize) -> gemm::Parallelism {
    match num_threads() {
        n if n > 1 && multiply_adds >= PARALLEL_MIN_MULTIPLY_ADDS => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    }
}
