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

    /// A reader of the whole vectors of a run of contiguous elements, in order
    /// ([`Lanes::stream`], [`Lanes::next`], [`Lanes::last`]).
    type Stream: Copy;
    /// Starts reading the `len` elements from `at` whole vector by whole vector: the `v`-th
    /// vector read ([`Lanes::next`], then [`Lanes::last`] for the last one) is what
    /// [`Lanes::load`] would return at `at + v·LANES`, for `v` below `len / LANES` (the last
    /// `len mod LANES` elements are the caller's).
    ///
    /// # Safety
    /// As [`Lanes::zero`], and the `len` elements from `at` are readable while the stream
    /// is read.
    unsafe fn stream(at: *const Elem, len: usize) -> Self::Stream;
    /// The stream's next whole vector, when another whole vector follows it (see
    /// [`Lanes::stream`]). AVX-512 reads the run's 64-byte lines with aligned loads and
    /// shifts their lanes into place (`vpermt2ps`): a run that is not 64-byte aligned
    /// streams from L2 about 1.5 times as fast as with loads that each straddle two lines.
    /// AVX2 loads in place.
    ///
    /// # Safety
    /// As [`Lanes::zero`]; at least two whole vectors of the run are left.
    unsafe fn next(stream: &mut Self::Stream) -> Self;
    /// The stream's last whole vector (see [`Lanes::next`]), which reads no element past it.
    ///
    /// # Safety
    /// As [`Lanes::zero`]; exactly one whole vector of the run is left.
    unsafe fn last(stream: &mut Self::Stream) -> Self;
}

/// The state of an AVX-512 [`Lanes::stream`]: the last line read and where the next is.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct LineStream {
    /// The next 64-byte line to read (aligned).
    line: *const Elem,
    /// The line read last, whose lanes from `shift` on start the next vector (at first the
    /// line holding the run's start, its lanes before the start and past the run's end read
    /// as 0).
    last: __m512,
    /// Lane `i` is `shift + i`: `vpermt2ps`' indices into the pair (last, next line).
    indices: __m512i,
    /// The lanes of the line after the run's last whole vector that belong to it.
    final_lanes: u16,
}

#[cfg(target_arch = "x86_64")]
impl LineStream {
    /// The vector made of the last line's lanes from the shift on and `line`'s (the next
    /// line's) before it; `line` becomes the last.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline(always)]
    unsafe fn shifted(&mut self, line: __m512) -> __m512 {
        // SAFETY: the caller's promise.
        let vector = unsafe { _mm512_permutex2var_ps(self.last, self.indices, line) };
        self.last = line;
        self.line = self.line.wrapping_add(16);
        vector
    }
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
    type Stream = *const Elem;
    #[inline(always)]
    unsafe fn stream(at: *const Elem, _len: usize) -> Self::Stream {
        at
    }
    #[inline(always)]
    unsafe fn next(stream: &mut Self::Stream) -> Self {
        // SAFETY: the caller's promise: whole vectors of the run are left from `*stream`.
        unsafe {
            let vector = Self::load(*stream);
            *stream = stream.add(Self::LANES);
            vector
        }
    }
    #[inline(always)]
    unsafe fn last(stream: &mut Self::Stream) -> Self {
        // SAFETY: as `next`.
        unsafe { Self::next(stream) }
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
    type Stream = LineStream;
    #[inline(always)]
    unsafe fn stream(at: *const Elem, len: usize) -> Self::Stream {
        let shift = at as usize % 64 / size_of::<Elem>();
        let line = at.wrapping_sub(shift);
        // lanes `shift..` of the first line, as far as the run goes
        let end = (shift + len).min(Self::LANES);
        let first = ((1u32 << end) - 1) & !((1u32 << shift) - 1);
        // SAFETY: the CPU has AVX-512F (the caller's promise); only lanes inside the run
        // are read, masked-off lanes are not accessed.
        unsafe {
            LineStream {
                line: line.wrapping_add(Self::LANES),
                last: _mm512_maskz_load_ps(first as u16, line),
                indices: _mm512_add_epi32(
                    _mm512_set1_epi32(shift as i32),
                    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                ),
                final_lanes: ((1u32 << shift) - 1) as u16,
            }
        }
    }
    #[inline(always)]
    unsafe fn next(stream: &mut Self::Stream) -> Self {
        // SAFETY: the CPU has AVX-512F (the caller's promise). The v-th vector of the run
        // is lanes `shift..` of line v and lanes `..shift` of line v + 1, which lies inside
        // the run while another whole vector follows this one (its last element is
        // `16·(v + 2) - shift - 1 < len`).
        unsafe { stream.shifted(_mm512_load_ps(stream.line)) }
    }
    #[inline(always)]
    unsafe fn last(stream: &mut Self::Stream) -> Self {
        // SAFETY: as `next`, but of the line after the last vector only the lanes `..shift`
        // lie inside the run, and only those are read (masked-off lanes are not accessed).
        unsafe { stream.shifted(_mm512_maskz_load_ps(stream.final_lanes, stream.line)) }
    }
}

/// Writes the transpose of `src` (`[n, m]`) into `dst` (`[m, n]`), both with contiguous
/// rows: blocks of 16×16 transposed in registers ([`transposed16`]), the edges element by
/// element.
///
/// # Safety
/// The CPU has AVX-512F.
///
/// # Panics
/// When the shapes do not match or a view's rows are not contiguous.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose_into(
    src: ndarray::ArrayView2<'_, Elem>,
    mut dst: ndarray::ArrayViewMut2<'_, Elem>,
) {
    let (m, n) = dst.dim();
    let strides = |s: &[isize]| (s[0] >= 0 && (s[1] == 1 || m < 2 || n < 2)).then_some(s[0]);
    let (Some(src_stride), Some(dst_stride)) = (strides(src.strides()), strides(dst.strides()))
    else {
        panic!("internal error: transposing views without contiguous rows");
    };
    assert_eq!(
        src.dim(),
        (n, m),
        "internal error: transposing {:?}",
        src.dim()
    );
    let (src_stride, dst_stride) = (src_stride as usize, dst_stride as usize);
    let (from, to) = (src.as_ptr(), dst.as_mut_ptr());
    let (whole_m, whole_n) = (m / 16 * 16, n / 16 * 16);
    // SAFETY (all accesses): `j·src_stride + i` with `i < m`, `j < n` is element `[j, i]`
    // of `src`, and `i·dst_stride + j` element `[i, j]` of `dst` (rows contiguous, checked).
    unsafe {
        for j0 in (0..whole_n).step_by(16) {
            for i0 in (0..whole_m).step_by(16) {
                let mut rows = [_mm512_setzero_ps(); 16];
                for (j, row) in rows.iter_mut().enumerate() {
                    *row = _mm512_loadu_ps(from.add((j0 + j) * src_stride + i0));
                }
                for (i, column) in transposed16(rows).into_iter().enumerate() {
                    _mm512_storeu_ps(to.add((i0 + i) * dst_stride + j0), column);
                }
            }
        }
        for i in 0..m {
            let first_column = if i < whole_m { whole_n } else { 0 };
            for j in first_column..n {
                *to.add(i * dst_stride + j) = *from.add(j * src_stride + i);
            }
        }
    }
}

/// The transpose of the 16×16 block whose rows are `rows`: unpacks of pairs of rows
/// (2×2 blocks), of pairs of those (4×4), then two rounds of 128-bit lane shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) fn transposed16(rows: [__m512; 16]) -> [__m512; 16] {
    // pairs[2p], pairs[2p + 1]: rows 2p and 2p + 1 interleaved, columns 4l + {0, 1}
    // and 4l + {2, 3} of each 128-bit lane l
    let mut pairs = [_mm512_setzero_ps(); 16];
    for p in 0..8 {
        pairs[2 * p] = _mm512_unpacklo_ps(rows[2 * p], rows[2 * p + 1]);
        pairs[2 * p + 1] = _mm512_unpackhi_ps(rows[2 * p], rows[2 * p + 1]);
    }
    // quads[4q + c]: rows 4q..4q + 4 of columns c, c + 4, c + 8, c + 12 (one per lane)
    let mut quads = [_mm512_setzero_ps(); 16];
    for q in 0..4 {
        for half in 0..2 {
            let a = _mm512_castps_pd(pairs[4 * q + half]);
            let b = _mm512_castps_pd(pairs[4 * q + 2 + half]);
            quads[4 * q + 2 * half] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            quads[4 * q + 2 * half + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    }
    let mut columns = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        // lanes 0 and 2 (columns c, c + 8) or 1 and 3 (c + 4, c + 12) of rows 0..8 and
        // of rows 8..16, then the same lanes of those
        let low_even = _mm512_shuffle_f32x4::<0x88>(quads[c], quads[4 + c]);
        let low_odd = _mm512_shuffle_f32x4::<0xDD>(quads[c], quads[4 + c]);
        let high_even = _mm512_shuffle_f32x4::<0x88>(quads[8 + c], quads[12 + c]);
        let high_odd = _mm512_shuffle_f32x4::<0xDD>(quads[8 + c], quads[12 + c]);
        columns[c] = _mm512_shuffle_f32x4::<0x88>(low_even, high_even);
        columns[c + 8] = _mm512_shuffle_f32x4::<0xDD>(low_even, high_even);
        columns[c + 4] = _mm512_shuffle_f32x4::<0x88>(low_odd, high_odd);
        columns[c + 12] = _mm512_shuffle_f32x4::<0xDD>(low_odd, high_odd);
    }
    columns
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

    /// Every whole vector of a stream of `len` elements from `at`, written out in order.
    ///
    /// # Safety
    /// The CPU has `V`'s instruction set; `len` elements from `at` are readable.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn streamed<V: Lanes>(at: *const Elem, len: usize) -> Vec<Elem> {
        let mut out = vec![0.0; len / V::LANES * V::LANES];
        // SAFETY: the caller's promise; `out` holds the whole vectors.
        unsafe {
            let mut stream = V::stream(at, len);
            let vectors = len / V::LANES;
            for v in 0..vectors {
                let vector = match v + 1 < vectors {
                    true => V::next(&mut stream),
                    false => V::last(&mut stream),
                };
                vector.store(out.as_mut_ptr().add(v * V::LANES));
            }
        }
        out
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn streamed_avx512(run: &[Elem]) -> Vec<Elem> {
        // SAFETY: the CPU has AVX-512F (the caller found it); `run` is readable.
        unsafe { streamed::<__m512>(run.as_ptr(), run.len()) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn streamed_avx2(run: &[Elem]) -> Vec<Elem> {
        // SAFETY: the CPU has AVX2 (the caller found it); `run` is readable.
        unsafe { streamed::<__m256>(run.as_ptr(), run.len()) }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_stream_returns_the_runs_whole_vectors_at_every_alignment_and_length() {
        // 64-byte lines hold 16 elements: starts at every offset in a line, lengths around
        // whole vectors of 8 and 16 and below one
        let backing: Vec<Elem> = (0..200).map(|i| i as Elem * 0.5 - 7.0).collect();
        for &unit in Unit::all_here() {
            for start in 0..16 {
                for len in 0..70 {
                    let run = &backing[start..start + len];
                    // SAFETY: `all_here` found the unit on this CPU.
                    let out = unsafe {
                        match unit {
                            Unit::Avx512 => streamed_avx512(run),
                            Unit::Avx2 => streamed_avx2(run),
                        }
                    };
                    let whole = &run[..out.len()];
                    assert_eq!(out, whole, "{unit:?}, start {start}, length {len}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transposed16_transposes_a_16_by_16_block() {
        if Unit::detect() != Some(Unit::Avx512) {
            return;
        }
        let matrix: Vec<Elem> = (0..256).map(|v| v as Elem).collect();
        let mut columns = [[0.0; 16]; 16];
        // SAFETY: AVX-512F (checked above).
        unsafe {
            let rows = std::array::from_fn(|r| _mm512_loadu_ps(matrix[r * 16..].as_ptr()));
            for (column, vector) in columns.iter_mut().zip(transposed16(rows)) {
                _mm512_storeu_ps(column.as_mut_ptr(), vector);
            }
        }
        for (c, column) in columns.iter().enumerate() {
            let expected: Vec<Elem> = (0..16).map(|r| (r * 16 + c) as Elem).collect();
            assert_eq!(column.to_vec(), expected, "column {c}");
        }
    }
}
