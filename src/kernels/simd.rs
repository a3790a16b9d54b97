//! Running a loop compiled for the CPU's widest vector unit. The crate is compiled for the
//! target's baseline (SSE2 on x86-64, so that it runs on every such CPU); [`with_simd`] runs
//! a closure compiled again with AVX-512 (16 lanes of `f32`), or else with AVX2 and FMA (8
//! lanes), whichever the CPU has, chosen once at run time. Hand-written kernels pick a
//! [`Unit`] and run one generic body over its [`Lanes`] vector type.

use crate::tensor::Elem;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

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

/// A vector of `f32` lanes (`__m512` for AVX-512F, `__m256` for AVX2 with FMA) and the
/// operations the hand-written kernels need, so that one generic loop nest serves both
/// units. Every method is inlined into a caller compiled for the vector's instruction set.
#[cfg(target_arch = "x86_64")]
pub(crate) trait Lanes: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// All lanes 0.
    ///
    /// # Safety
    /// The CPU has the vector's instruction set.
    unsafe fn zero() -> Self;
    /// All lanes `value`.
    ///
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn splat(value: Elem) -> Self;
    /// `LANES` elements from `at`.
    ///
    /// # Safety
    /// As [`Lanes::zero`], and `LANES` elements from `at` are readable.
    unsafe fn load(at: *const Elem) -> Self;
    /// Writes the lanes to `LANES` elements from `at`.
    ///
    /// # Safety
    /// As [`Lanes::zero`], and `LANES` elements from `at` are writable.
    unsafe fn store(self, at: *mut Elem);
    /// Writes the first `lanes` lanes (fewer than `LANES`) to `lanes` elements from `at`.
    ///
    /// # Safety
    /// As [`Lanes::zero`], and `lanes` elements from `at` are writable.
    unsafe fn store_first(self, at: *mut Elem, lanes: usize);
    /// `self·b + c`, one rounding per lane.
    ///
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn fmadd(self, b: Self, c: Self) -> Self;
    /// The sum of the lanes, added pairwise (halves, then quarters, …).
    ///
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn sum(self) -> Elem;
}

#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m256 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's promise (AVX).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(value: Elem) -> Self {
        // SAFETY: the caller's promise (AVX).
        unsafe { _mm256_set1_ps(value) }
    }
    #[inline(always)]
    unsafe fn load(at: *const Elem) -> Self {
        // SAFETY: the caller's promise.
        unsafe { _mm256_loadu_ps(at) }
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut Elem) {
        // SAFETY: the caller's promise.
        unsafe { _mm256_storeu_ps(at, self) }
    }
    #[inline(always)]
    unsafe fn store_first(self, at: *mut Elem, lanes: usize) {
        // SAFETY: the caller's promise (AVX2); masked-off lanes are not accessed.
        unsafe {
            let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), index);
            _mm256_maskstore_ps(at, mask, self)
        }
    }
    #[inline(always)]
    unsafe fn fmadd(self, b: Self, c: Self) -> Self {
        // SAFETY: the caller's promise (FMA).
        unsafe { _mm256_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> Elem {
        // SAFETY: the caller's promise (AVX).
        unsafe {
            let x = _mm_add_ps(
                _mm256_castps256_ps128(self),
                _mm256_extractf128_ps::<1>(self),
            );
            let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
            _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m512 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's promise (AVX-512F).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(value: Elem) -> Self {
        // SAFETY: the caller's promise (AVX-512F).
        unsafe { _mm512_set1_ps(value) }
    }
    #[inline(always)]
    unsafe fn load(at: *const Elem) -> Self {
        // SAFETY: the caller's promise.
        unsafe { _mm512_loadu_ps(at) }
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut Elem) {
        // SAFETY: the caller's promise.
        unsafe { _mm512_storeu_ps(at, self) }
    }
    #[inline(always)]
    unsafe fn store_first(self, at: *mut Elem, lanes: usize) {
        // SAFETY: the caller's promise (AVX-512F); masked-off lanes are not accessed.
        unsafe { _mm512_mask_storeu_ps(at, (1u16 << lanes) - 1, self) }
    }
    #[inline(always)]
    unsafe fn fmadd(self, b: Self, c: Self) -> Self {
        // SAFETY: the caller's promise (AVX-512F).
        unsafe { _mm512_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> Elem {
        // SAFETY: the caller's promise (AVX-512F).
        unsafe {
            let half = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self)));
            let x = _mm256_add_ps(_mm512_castps512_ps256(self), half);
            x.sum()
        }
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
