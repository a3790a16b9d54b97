//! Running a loop compiled for the CPU's vector unit. The crate is compiled for the target's
//! baseline (SSE2 on x86-64, so that it runs on every such CPU); [`with_avx2`] runs a closure
//! compiled a second time with AVX2 and FMA enabled when the CPU has them, chosen once at
//! run time, so element-wise loops use 8-lane vectors where they can.

/// Runs `f`, compiled for AVX2 and FMA when the CPU has them (detected at run time), else as
/// compiled for the baseline target. The closure's loops are vectorized for whichever it
/// runs as. The numbers are the same either way: each basic operation rounds the same in
/// an SSE or an AVX lane, and Rust never fuses `a·b + c` into one FMA on its own.
///
/// Only code inlined into the AVX2 copy is compiled for AVX2: mark the closure
/// `#[inline(always)]` (`with_avx2(#[inline(always)] || …)`), or a closure with a long body
/// stays a separate function compiled for the baseline.
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// `f`, inlined into a function compiled with AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_avx2() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
            return unsafe { run(f) };
        }
    }
    f()
}

/// Whether this CPU has AVX2 and FMA (the standard library detects the features once and
/// caches them).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closure_runs_once_and_its_result_comes_back() {
        let mut calls = 0;
        let sum = with_avx2(|| {
            calls += 1;
            (1..=100).map(|v| v as f32).sum::<f32>()
        });
        assert_eq!((sum, calls), (5050.0, 1));
    }
}
