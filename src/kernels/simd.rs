//! Running a loop compiled for the CPU's widest vector unit. The crate is compiled for the
//! target's baseline (SSE2 on x86-64, so that it runs on every such CPU); [`with_simd`] runs
//! a closure compiled again with AVX-512 (16 lanes of `f32`), or else with AVX2 and FMA (8
//! lanes), whichever the CPU has, chosen once at run time.

/// Runs `f`, compiled for AVX-512F when the CPU has it, else for AVX2 and FMA when it has
/// those (detected at run time), else as compiled for the baseline target. The closure's
/// loops are vectorized for whichever it runs as. The numbers are the same either way: each
/// basic operation rounds the same in an SSE, AVX or AVX-512 lane, and Rust never fuses
/// `a·b + c` into one FMA on its own.
///
/// Only code inlined into the vector copies is compiled for them: mark the closure
/// `#[inline(always)]` (`with_simd(#[inline(always)] || …)`), or a closure with a long body
/// stays a separate function compiled for the baseline.
#[inline(always)]
pub(crate) fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// `f`, inlined into a function compiled with AVX-512F (and AVX2 and FMA).
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        /// `f`, inlined into a function compiled with AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        let fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if fma && is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked at run time above).
            return unsafe { avx512(f) };
        }
        if fma {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// A vector unit of x86-64 that hand-written kernels (intrinsics) run on, found at run
/// time; on other targets there is none and those kernels' scalar code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// 16-lane AVX-512F vectors (with AVX2 and FMA, which every AVX-512 CPU has).
    Avx512,
    /// 8-lane AVX2 vectors with FMA.
    Avx2,
}

impl Unit {
    /// The widest unit this CPU has, if any (the standard library caches the answer).
    pub(crate) fn detect() -> Option<Unit> {
        Unit::all_here().first().copied()
    }

    /// Every unit this CPU has, widest first: the hand-written kernels' tests run each.
    pub(crate) fn all_here() -> &'static [Unit] {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            match (avx2, is_x86_feature_detected!("avx512f")) {
                (true, true) => &[Unit::Avx512, Unit::Avx2],
                (true, false) => &[Unit::Avx2],
                (false, _) => &[],
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closure_runs_once_and_its_result_comes_back() {
        let mut calls = 0;
        let sum = with_simd(|| {
            calls += 1;
            (1..=100).map(|v| v as f32).sum::<f32>()
        });
        assert_eq!((sum, calls), (5050.0, 1));
    }
}
