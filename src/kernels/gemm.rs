//! The matrix product kernel: a strided wrapper around the pure-Rust `gemm` crate, used by
//! the autograd ops (matmul, batched matmul), factored gradients and anything else that
//! multiplies matrices; and, for the product of a few rows with a matrix read by contiguous
//! columns (a linear layer's `x·Wᵀ` at a small batch on an inference tape, a convolution's
//! weight gradient of few output channels), a kernel of dot products ([`product`],
//! [`add_product`]).

use crate::tensor::Elem;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Ix2};

/// Products of at most this many rows whose right operand's columns are contiguous (`x·Wᵀ`
/// with `W` row-major) take the dot-product kernel in [`add_product`], and in [`product`] on
/// a CPU without AVX-512F. Measured on workload W1's first layer (`k = 784`, `n = 256`, one
/// AVX2 core of a busy 2-CPU EPYC VM): the `gemm` crate's kernel, which vectorizes along the
/// rows, reached 4 GFLOP/s at 2 rows, 9 at 4, 19 at 16 and 28 at 32, the dot products 15 at
/// 1 row, 30 at 2 and 35 to 42 from 4 rows to 64; from 64 rows on, `gemm` caught up.
const FEW_ROWS: usize = 32;

/// [`FEW_ROWS`] for [`product`] on AVX-512F when the dot products would not run on more
/// threads than `gemm`: its 16-lane kernels catch up much sooner. W1's forward pass on one core of a Zen 4
/// EPYC (AVX-512, interleaved batch sizes) ran batches of 8 rows at 129k samples/s by dot
/// products and 86k by `gemm`, batches of 16 at 130k and 177k, and of 32 at 127k and 181k.
/// On two cores, batches of 16 (3.2 million multiply-adds in the first layer), which the dot
/// products split over both cores and `gemm` does not, ran at 221k and 178k; batches of 32,
/// which both split, at 228k and 238k.
const FEW_ROWS_AVX512: usize = 8;

/// `dst = lhs·rhs`, overwriting `dst`, with the kernel that suits the shape: for at most
/// [`FEW_ROWS`] rows ([`FEW_ROWS_AVX512`] on AVX-512F, as a rule) read along contiguous rows of `lhs` and contiguous columns of `rhs`, on
/// a CPU with AVX-512F (16 lanes) or AVX2 and FMA (8 lanes), dot products of whole vectors,
/// so that a few rows use the whole vector width; else [`gemm`].
///
/// In the dot-product kernel, each element is one dot product whose order of summation
/// depends only on `k` and the vector width, so a row's result does not depend on how many
/// other rows are in the product or on how the columns are split across threads. It rounds
/// differently from `gemm`, though, which is why the autograd op calls it on inference tapes
/// only.
///
/// # Panics
/// If the shapes do not chain (an internal error: callers check shapes first).
pub(crate) fn product(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    dst: ArrayViewMut2<'_, Elem>,
) {
    multiply(lhs, rhs, dst, false);
}

/// `dst += lhs·rhs`, by dot products for at most [`FEW_ROWS`] rows (on either vector unit),
/// else by [`gemm`]: each element of `dst` gains one dot product, summed as [`product`]'s
/// dot products sum it. For a convolution's weight gradient of few output channels,
/// `G_n·P_nᵀ` (`G_n` `[O, OH·OW]`, `P_n` `[K, OH·OW]`, both read along their rows), where
/// `gemm` spends more time packing than multiplying.
///
/// # Panics
/// If the shapes do not chain (an internal error: callers check shapes first).
pub(crate) fn add_product(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    dst: ArrayViewMut2<'_, Elem>,
) {
    multiply(lhs, rhs, dst, true);
}

/// [`product`] (`dst = lhs·rhs`) or, when `accumulate`, [`add_product`] (`dst += lhs·rhs`).
fn multiply(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    dst: ArrayViewMut2<'_, Elem>,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    use crate::kernels::simd::Unit;
    #[cfg(target_arch = "x86_64")]
    if let Some(unit) = Unit::detect()
        && lhs.nrows() <= FEW_ROWS
        && (lhs.ncols() < 2 || lhs.strides()[1] == 1)
        && (rhs.nrows() < 2 || rhs.strides()[0] == 1)
    {
        let (m, k, n) = chained("product", &lhs, &rhs, &dst);
        let pieces = crate::threads::block_threads(m * n * k, n / (2 * few_rows::COLUMNS));
        // AVX-512's `gemm` overtakes the dot products from 9 rows on as many threads; the
        // dot products stay ahead where they split over more threads than `gemm` would
        let gemm_threads = crate::threads::product_threads(m * n * k);
        let limit = match (unit, accumulate) {
            (Unit::Avx512, false) if pieces <= gemm_threads => FEW_ROWS_AVX512,
            _ => FEW_ROWS,
        };
        if m <= limit {
            few_rows::split_columns(unit, lhs, rhs, dst, pieces, accumulate);
            return;
        }
    }
    let alpha = if accumulate { 1.0 } else { 0.0 };
    gemm(lhs, rhs, dst, alpha, 1.0);
}

/// The dot-product kernel of [`product`], for x86-64 CPUs with AVX-512F or with AVX2 and
/// FMA: one generic loop nest over a vector type, compiled once per instruction set.
#[cfg(target_arch = "x86_64")]
mod few_rows {
    use super::Elem;
    use crate::kernels::simd::{Lanes, Unit};
    use ndarray::{ArrayView2, ArrayViewMut2, Axis};
    use std::arch::x86_64::*;

    /// Columns per block of the main loop: with [`ROWS`] rows, 12 accumulators, 3 column
    /// vectors and a row vector fit the 16 vector registers of AVX2 (AVX-512 has 32).
    pub(super) const COLUMNS: usize = 3;
    /// Rows per block of the main loop.
    const ROWS: usize = 4;

    /// `dst = lhs·rhs` (or `dst += lhs·rhs` when `accumulate`) on `unit` with the columns
    /// cut into `pieces` parts, one per thread;
    /// the caller has checked the shapes, that rows of `lhs` and columns of `rhs` are
    /// contiguous, and that the CPU has `unit` ([`Unit::detect`]).
    pub(super) fn split_columns(
        unit: Unit,
        lhs: ArrayView2<'_, Elem>,
        rhs: ArrayView2<'_, Elem>,
        mut dst: ArrayViewMut2<'_, Elem>,
        pieces: usize,
        accumulate: bool,
    ) {
        let n = rhs.ncols();
        if pieces < 2 || n < 2 * COLUMNS {
            // SAFETY: the caller checked the CPU's features, the shapes and the strides.
            unsafe {
                match unit {
                    Unit::Avx512 => all_rows_avx512(lhs, rhs, &mut dst, accumulate),
                    Unit::Avx2 => all_rows_avx2(lhs, rhs, &mut dst, accumulate),
                }
            }
            return;
        }
        let half = pieces / 2;
        let mid = (n * half / pieces).div_ceil(COLUMNS) * COLUMNS;
        let (rhs_left, rhs_right) = rhs.split_at(Axis(1), mid);
        let (dst_left, dst_right) = dst.split_at(Axis(1), mid);
        crate::threads::join(
            || split_columns(unit, lhs, rhs_left, dst_left, half, accumulate),
            || split_columns(unit, lhs, rhs_right, dst_right, pieces - half, accumulate),
        );
    }

    /// [`all_rows`] compiled for AVX-512F.
    ///
    /// # Safety
    /// As [`all_rows`], on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn all_rows_avx512(
        lhs: ArrayView2<'_, Elem>,
        rhs: ArrayView2<'_, Elem>,
        dst: &mut ArrayViewMut2<'_, Elem>,
        accumulate: bool,
    ) {
        // SAFETY: the caller's promise.
        unsafe { all_rows::<__m512>(lhs, rhs, dst, accumulate) }
    }

    /// [`all_rows`] compiled for AVX2 and FMA.
    ///
    /// # Safety
    /// As [`all_rows`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn all_rows_avx2(
        lhs: ArrayView2<'_, Elem>,
        rhs: ArrayView2<'_, Elem>,
        dst: &mut ArrayViewMut2<'_, Elem>,
        accumulate: bool,
    ) {
        // SAFETY: the caller's promise.
        unsafe { all_rows::<__m256>(lhs, rhs, dst, accumulate) }
    }

    /// All of `dst = lhs·rhs` (`dst += lhs·rhs` when `accumulate`): blocks of [`ROWS`] rows,
    /// then of 2, then single rows.
    ///
    /// # Safety
    /// The CPU has `V`'s instruction set; `lhs` is `[m, k]` with contiguous rows, `rhs`
    /// `[k, n]` with contiguous columns, `dst` `[m, n]`.
    #[inline(always)]
    unsafe fn all_rows<V: Lanes>(
        lhs: ArrayView2<'_, Elem>,
        rhs: ArrayView2<'_, Elem>,
        dst: &mut ArrayViewMut2<'_, Elem>,
        accumulate: bool,
    ) {
        // SAFETY: as this function's (the caller's) contract.
        unsafe {
            let done = rows::<V, ROWS, COLUMNS>(&lhs, &rhs, dst, 0, accumulate);
            let done = rows::<V, 2, COLUMNS>(&lhs, &rhs, dst, done, accumulate);
            rows::<V, 1, COLUMNS>(&lhs, &rhs, dst, done, accumulate);
        }
    }

    /// Rows `from..` of `dst` in blocks of `I` rows, as long as `I` rows remain, each block
    /// `J` columns at a time and then single columns; returns the first row not done.
    ///
    /// # Safety
    /// As [`all_rows`].
    #[inline(always)]
    unsafe fn rows<V: Lanes, const I: usize, const J: usize>(
        lhs: &ArrayView2<'_, Elem>,
        rhs: &ArrayView2<'_, Elem>,
        dst: &mut ArrayViewMut2<'_, Elem>,
        from: usize,
        accumulate: bool,
    ) -> usize {
        let (m, k, n) = (lhs.nrows(), lhs.ncols(), rhs.ncols());
        let mut i = from;
        while i + I <= m {
            let a: [*const Elem; I] = std::array::from_fn(|r| lhs.row(i + r).as_ptr());
            let mut j = 0;
            while j < n {
                let width = if j + J <= n { J } else { 1 };
                let sums = if width == J {
                    let w: [*const Elem; J] = std::array::from_fn(|c| rhs.column(j + c).as_ptr());
                    // SAFETY: each pointer starts a row of `lhs` or a column of `rhs`: `k`
                    // contiguous elements (the caller's contract).
                    unsafe { dots::<V, I, J>(a, w, k) }
                } else {
                    // SAFETY: as above, for one column.
                    let one = unsafe { dots::<V, I, 1>(a, [rhs.column(j).as_ptr()], k) };
                    std::array::from_fn(|r| [one[r][0]; J])
                };
                for (r, row) in sums.iter().enumerate() {
                    for (c, &sum) in row[..width].iter().enumerate() {
                        let d = &mut dst[[i + r, j + c]];
                        *d = if accumulate { *d + sum } else { sum };
                    }
                }
                j += width;
            }
            i += I;
        }
        i
    }

    /// The `I × J` dot products of `I` rows `a` and `J` columns `w`, each `k` contiguous
    /// elements: fused multiply-adds over the whole vectors, the lanes summed pairwise, then
    /// the last `k mod LANES` products added in order.
    ///
    /// # Safety
    /// The CPU has `V`'s instruction set; every pointer is valid for reading `k` elements.
    #[inline(always)]
    unsafe fn dots<V: Lanes, const I: usize, const J: usize>(
        a: [*const Elem; I],
        w: [*const Elem; J],
        k: usize,
    ) -> [[Elem; J]; I] {
        let vectors = k / V::LANES;
        // SAFETY: the CPU has `V`'s instruction set (the caller's promise); `offset +
        // LANES <= k` elements of every row and column are readable.
        unsafe {
            let mut acc: [[V; J]; I] = [[V::zero(); J]; I];
            let mut streams: [V::Stream; J] = std::array::from_fn(|c| V::stream(w[c], k));
            let mut add = |column: [V; J], v: usize| {
                for r in 0..I {
                    let row = V::load(a[r].add(v * V::LANES));
                    for c in 0..J {
                        acc[r][c] = row.fmadd(column[c], acc[r][c]);
                    }
                }
            };
            // every vector but the last, then the last (whose stream reads no further)
            for v in 0..vectors.saturating_sub(1) {
                add(std::array::from_fn(|c| V::next(&mut streams[c])), v);
            }
            if vectors > 0 {
                add(
                    std::array::from_fn(|c| V::last(&mut streams[c])),
                    vectors - 1,
                );
            }
            let mut sums = [[0.0; J]; I];
            for r in 0..I {
                for c in 0..J {
                    let mut sum = acc[r][c].sum();
                    for t in vectors * V::LANES..k {
                        sum += *a[r].add(t) * *w[c].add(t);
                    }
                    sums[r][c] = sum;
                }
            }
            sums
        }
    }
}

/// `(m, k, n)` of a product `[m, k]·[k, n] -> [m, n]`.
///
/// # Panics
/// If the shapes do not chain (an internal error: callers check shapes first).
fn chained(
    kernel: &str,
    lhs: &ArrayView2<'_, Elem>,
    rhs: &ArrayView2<'_, Elem>,
    dst: &ArrayViewMut2<'_, Elem>,
) -> (usize, usize, usize) {
    let ((m, k), (k2, n)) = (lhs.dim(), rhs.dim());
    assert!(
        k == k2 && dst.dim() == (m, n),
        "internal error: {kernel} shapes {:?} x {:?} -> {:?}",
        lhs.shape(),
        rhs.shape(),
        dst.shape()
    );
    (m, k, n)
}

/// `dst = alpha·dst + beta·lhs·rhs`, for views of any strides. With `alpha = 0`, `dst`'s old
/// contents are never read, so it may hold anything. A product large enough for several
/// threads ([`crate::threads`]) is cut into one block of `dst` per thread by [`split`]; a
/// row-major `x·Wᵀ` of few rows is computed column-major and transposed into place
/// ([`column_major`]), which packs less.
///
/// # Panics
/// If the shapes do not chain (an internal error: callers check shapes first).
pub(crate) fn gemm(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    mut dst: ArrayViewMut2<'_, Elem>,
    alpha: Elem,
    beta: Elem,
) {
    let (m, k, n) = chained("gemm", &lhs, &rhs, &dst);
    if k == 0 {
        // an empty sum: gemm need not touch `dst`, but the product is all zeros
        dst.map_inplace(|d| *d = if alpha == 0.0 { 0.0 } else { alpha * *d });
        return;
    }
    let threads = crate::threads::product_threads(m * n * k);
    if threads > 1 {
        split(lhs, rhs, dst, alpha, beta, threads);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if alpha == 0.0 && column_major::packs_less(&rhs, &dst, k) {
        column_major::through(lhs, rhs, dst, beta);
        return;
    }
    crate_gemm(lhs, rhs, dst, alpha, beta);
}

/// [`gemm`] by the `gemm` crate itself, on the calling thread.
fn crate_gemm(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    mut dst: ArrayViewMut2<'_, Elem>,
    alpha: Elem,
    beta: Elem,
) {
    let (m, k, n) = chained("gemm", &lhs, &rhs, &dst);
    let (ls, rs) = (lhs.strides(), rhs.strides());
    let (dst_rs, dst_cs) = (dst.strides()[0], dst.strides()[1]);
    // SAFETY: the three pointers come from live ndarray views whose shapes were checked
    // above to be m×k, k×n and m×n; gemm reads and writes only elements at
    // `ptr + i·row_stride + j·col_stride` inside those shapes, with each view's own strides.
    // `dst` is a unique mutable borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
            alpha != 0.0,
            lhs.as_ptr(),
            ls[1],
            ls[0],
            rhs.as_ptr(),
            rs[1],
            rs[0],
            alpha,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A row-major product `x·Wᵀ` (a linear layer's forward: few rows of `x`, `W` row-major
/// and read by contiguous columns) computed column-major, then transposed into place.
///
/// The `gemm` crate vectorizes along the columns of a column-major output and transposes a
/// row-major problem to get one: for `x·Wᵀ` it then packs all of `W` (`n·k` elements, one
/// transposing copy per product), while the column-major problem packs only `x` (`m·k`)
/// and reads `W` in place. When `m·(k + n) ≤ k·n`, packing `x` and transposing the `m·n`
/// output moves less than packing `W`. Measured on a 2-core Xeon (AVX-512) with workload
/// W1's shapes (`k = 784`, `n = 256`, one thread): 205 µs → 170 µs at 64 rows (a shard of
/// a 2-thread step), 360 µs → 337 µs at 128; for the second layer (`k = n = 256`) 81 → 63
/// µs and 130 → 119 µs. The numbers are the same bit for bit: the crate sums each element
/// over `k` in the same blocks, in the same order, in either orientation.
#[cfg(target_arch = "x86_64")]
mod column_major {
    use super::Elem;
    use crate::kernels::simd::Unit;
    use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
    use std::cell::RefCell;

    thread_local! {
        /// The column-major output before its transposition, grown to the largest product
        /// this thread has routed here (then reused, without allocating).
        static OUTPUT: RefCell<Vec<Elem>> = const { RefCell::new(Vec::new()) };
    }

    /// Outputs of at most this many elements (1 MiB) take the route, which bounds what
    /// [`OUTPUT`] keeps per thread; a linear layer's output at a training batch is far
    /// smaller (W1's `[128, 256]`: 32,768).
    const MAX_OUTPUT: usize = 1 << 18;

    /// Whether [`through`] suits a product `[m, k]·rhs → dst` (`rhs` read by contiguous
    /// columns, `dst` row-major, at most [`MAX_OUTPUT`] elements) on this CPU: it has
    /// AVX-512F (the transposition's kernel) and packing `lhs` plus transposing `dst` moves
    /// no more than packing `rhs`.
    pub(super) fn packs_less(
        rhs: &ArrayView2<'_, Elem>,
        dst: &ArrayViewMut2<'_, Elem>,
        k: usize,
    ) -> bool {
        let ((m, n), dst_strides) = (dst.dim(), dst.strides());
        rhs.strides()[0] == 1
            && dst_strides[1] == 1
            && dst_strides[0] >= n as isize
            && m * (k + n) <= k * n
            && m * n <= MAX_OUTPUT
            && Unit::detect() == Some(Unit::Avx512)
    }

    /// `dst = beta·lhs·rhs` computed into a column-major buffer by the crate, then written
    /// transposed into the row-major `dst`; the caller checked [`packs_less`].
    pub(super) fn through(
        lhs: ArrayView2<'_, Elem>,
        rhs: ArrayView2<'_, Elem>,
        dst: ArrayViewMut2<'_, Elem>,
        beta: Elem,
    ) {
        let (m, n) = dst.dim();
        OUTPUT.with_borrow_mut(|buffer| {
            if buffer.len() < m * n {
                buffer.resize(m * n, 0.0);
            }
            let output = &mut buffer[..m * n];
            let view = ArrayViewMut2::from_shape((m, n).f(), output)
                .expect("internal error: the buffer holds m·n elements");
            super::crate_gemm(lhs, rhs, view, 0.0, beta);
            // SAFETY: the caller checked for AVX-512F (`packs_less`); `output` holds the m×n
            // product column-major and `dst` is row-major with rows at least n long.
            let output = ArrayView2::from_shape((n, m), &*output)
                .expect("internal error: the buffer holds m·n elements");
            unsafe { crate::kernels::simd::transpose_into(output, dst) };
        });
    }
}

/// Rows (or columns) of `dst` per piece below which [`split`] stops cutting: each piece
/// packs the whole other operand, which a smaller piece would not earn back.
const MIN_PIECE: usize = 32;

/// [`gemm`] on `pieces` threads: `dst` cut into `pieces` blocks of whole rows (or columns),
/// each the product of its rows of `lhs` (or columns of `rhs`) on a thread of its own with
/// the one-thread kernel. Each element is computed as one thread would compute it alone, and
/// the threads neither share packed blocks nor wait for each other inside the product, which
/// the `gemm` crate's own threading did on workload W1's shapes (inference at batch 256 ran
/// slower on 2 threads than on 1).
///
/// The cut runs along `dst`'s outer axis (rows of a row-major `dst`), so that each thread
/// writes one contiguous block; only an outer axis too short to cut is left whole. Cut the
/// other way, the threads write interleaved runs of every row: W1's SGD update `W ← W −
/// lr·dHᵀ·X` (`[256, 784]`, 64 rows of a shard) took 122 µs on 2 threads cut by columns, 95
/// µs cut by rows, against 187 µs on one.
fn split(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    dst: ArrayViewMut2<'_, Elem>,
    alpha: Elem,
    beta: Elem,
    pieces: usize,
) {
    let (m, n) = dst.dim();
    if pieces < 2 || m.max(n) < 2 * MIN_PIECE {
        crate::threads::as_shard(|| gemm(lhs, rhs, dst, alpha, beta));
        return;
    }
    let row_major = dst.strides()[0].unsigned_abs() >= dst.strides()[1].unsigned_abs();
    let cut_rows = if row_major {
        m >= 2 * MIN_PIECE
    } else {
        n < 2 * MIN_PIECE
    };
    let half = pieces / 2;
    let (axis, len) = if cut_rows { (Axis(0), m) } else { (Axis(1), n) };
    let mid = len * half / pieces;
    let (dst_a, dst_b) = dst.split_at(axis, mid);
    let ((lhs_a, lhs_b), (rhs_a, rhs_b)) = if cut_rows {
        (lhs.split_at(Axis(0), mid), (rhs, rhs))
    } else {
        ((lhs, lhs), rhs.split_at(Axis(1), mid))
    };
    crate::threads::join(
        || split(lhs_a, rhs_a, dst_a, alpha, beta, half),
        || split(lhs_b, rhs_b, dst_b, alpha, beta, pieces - half),
    );
}

/// `a` as a matrix view.
///
/// # Panics
/// If `a` is not 2-D (an internal error: callers check ranks first).
pub(crate) fn view2<S: ndarray::Data<Elem = Elem>>(
    a: &ndarray::ArrayBase<S, ndarray::IxDyn>,
) -> ArrayView2<'_, Elem> {
    a.view()
        .into_dimensionality::<Ix2>()
        .expect("internal error: a matrix product's operand is 2-D")
}

/// `a` as a mutable matrix view.
///
/// # Panics
/// If `a` is not 2-D (an internal error: callers check ranks first).
pub(crate) fn view2_mut(a: &mut crate::Tensor) -> ArrayViewMut2<'_, Elem> {
    a.view_mut()
        .into_dimensionality::<Ix2>()
        .expect("internal error: a matrix product's output is 2-D")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Tensor, uniform};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// `[rows, k]` and a `[n, k]` matrix, filled from a seeded RNG.
    fn operands(rows: usize, k: usize, n: usize) -> (Tensor, Tensor) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let x = uniform(&[rows, k], -1.0, 1.0, &mut rng).unwrap();
        let w = uniform(&[n, k], -1.0, 1.0, &mut rng).unwrap();
        (x, w)
    }

    /// `x·wᵀ` by [`product`] and by [`gemm`].
    fn both(x: &Tensor, w: &Tensor) -> (Tensor, Tensor) {
        let (x, w) = (view2(x), view2(w));
        let shape = [x.nrows(), w.nrows()];
        let (mut ours, mut reference) = (Tensor::zeros(&shape[..]), Tensor::zeros(&shape[..]));
        product(x, w.t(), view2_mut(&mut ours));
        gemm(x, w.t(), view2_mut(&mut reference), 0.0, 1.0);
        (ours, reference)
    }

    #[test]
    fn few_rows_times_transposed_matrix_agree_with_gemm() {
        // k with a tail after whole vectors (of 8 and of 16 lanes), n with columns left
        // after blocks of 3, rows around each block size and at both limits; 35 > FEW_ROWS
        // takes gemm itself
        let close = |ours: &Tensor, reference: &Tensor, what: &str, k: usize| {
            for (index, (a, b)) in ours.iter().zip(reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (k as f32).sqrt(),
                    "{what}, element {index}: {a} vs gemm {b}"
                );
            }
        };
        for (k, n) in [(19, 7), (784, 256), (8, 1), (3, 5), (40, 4)] {
            for rows in [1, 2, 3, 4, 5, 7, FEW_ROWS_AVX512, 9, 13, FEW_ROWS, 35] {
                let (x, w) = operands(rows, k, n);
                let (ours, reference) = both(&x, &w);
                close(&ours, &reference, &format!("rows {rows}, k {k}, n {n}"), k);
                // every vector unit this CPU has, not only the one `product` picks
                #[cfg(target_arch = "x86_64")]
                for &unit in crate::kernels::simd::Unit::all_here() {
                    let mut on_unit = Tensor::zeros(&[rows, n][..]);
                    let (xv, wv) = (view2(&x), view2(&w));
                    few_rows::split_columns(unit, xv, wv.t(), view2_mut(&mut on_unit), 1, false);
                    let what = format!("{unit:?}, rows {rows}, k {k}, n {n}");
                    close(&on_unit, &reference, &what, k);
                }
            }
        }
    }

    #[test]
    fn add_product_adds_to_dst_what_product_writes() {
        // rows up to FEW_ROWS take the dot-product kernel, 40 rows gemm
        for (rows, k, n) in [(32, 784, 10), (5, 19, 7), (1, 3, 2), (40, 100, 9)] {
            let (x, w) = operands(rows, k, n);
            let (x, w) = (view2(&x), view2(&w));
            // what the dot products write (on AVX-512F, `product` itself takes them for
            // fewer rows than `add_product` does)
            let mut written = Tensor::zeros(&[rows, n][..]);
            match crate::kernels::simd::Unit::detect() {
                #[cfg(target_arch = "x86_64")]
                Some(unit) if rows <= FEW_ROWS => {
                    few_rows::split_columns(unit, x, w.t(), view2_mut(&mut written), 1, false)
                }
                _ => product(x, w.t(), view2_mut(&mut written)),
            }
            let start = Tensor::from_shape_fn(&[rows, n][..], |i| (i[0] * n + i[1]) as Elem * 0.25);
            let mut added = start.clone();
            add_product(x, w.t(), view2_mut(&mut added));
            let expected = &start + &written;
            // exactly when the dot products sum it (a CPU with a vector unit), else gemm's
            // rounding of `dst + product`
            let dots = rows <= FEW_ROWS && crate::kernels::simd::Unit::detect().is_some();
            if dots {
                assert_eq!(added, expected, "rows {rows}, k {k}, n {n}");
            } else {
                for (a, b) in added.iter().zip(&expected) {
                    assert!(
                        (a - b).abs() <= 1e-4 * (k as f32).sqrt(),
                        "gemm: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_rows_product_does_not_depend_on_the_other_rows_or_the_column_split() {
        // 7 rows: a block of 4 and a remainder, within the dot products' reach on every unit
        let rows = 7;
        let (x, w) = operands(rows, 100, 29);
        let (whole, _) = both(&x, &w);
        for row in 0..rows {
            let one = x.slice(ndarray::s![row..row + 1, ..]).to_owned().into_dyn();
            let (alone, _) = both(&one, &w);
            let expected = whole.slice(ndarray::s![row..row + 1, ..]).into_dyn();
            assert_eq!(alone, expected, "row {row}");
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(unit) = crate::kernels::simd::Unit::detect() {
            for pieces in [2, 3] {
                let mut split = Tensor::zeros(&[rows, 29][..]);
                let (x, w, dst) = (view2(&x), view2(&w), view2_mut(&mut split));
                few_rows::split_columns(unit, x, w.t(), dst, pieces, false);
                assert_eq!(split, whole, "columns split in {pieces}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_product_through_a_column_major_output_equals_the_crates_bit_for_bit() {
        if crate::kernels::simd::Unit::detect() != Some(crate::kernels::simd::Unit::Avx512) {
            return; // the route needs AVX-512F: gemm never takes it here
        }
        // whole 16×16 blocks, edges of rows and of columns, fewer than 16 of either, and a
        // `dst` whose rows are longer than the product's (a view into a wider matrix)
        for (m, k, n, width) in [
            (64, 784, 256, 256),
            (37, 300, 50, 50),
            (5, 40, 20, 23),
            (16, 300, 32, 40),
        ] {
            let (x, w) = operands(m, k, n);
            let (x, w) = (view2(&x), view2(&w));
            let (mut routed, mut direct) = (
                Tensor::zeros(&[m, width][..]),
                Tensor::zeros(&[m, width][..]),
            );
            let columns = ndarray::s![.., ..n];
            let mut routed_view = view2_mut(&mut routed);
            let routed_dst = routed_view.slice_mut(columns);
            assert!(
                column_major::packs_less(&w.t(), &routed_dst, k),
                "{m}x{k}x{n}"
            );
            column_major::through(x, w.t(), routed_dst, 0.5);
            let mut direct_view = view2_mut(&mut direct);
            crate_gemm(x, w.t(), direct_view.slice_mut(columns), 0.0, 0.5);
            assert_eq!(routed, direct, "{m}x{k}x{n} into rows of {width}");
        }
    }

    #[test]
    fn a_product_split_across_threads_equals_the_one_thread_product_bit_for_bit() {
        // taller than wide (rows are cut), wider than tall (columns), odd sizes, strided
        // operands, and the `alpha·dst +` form
        for (m, k, n) in [(256, 784, 256), (64, 289, 196), (37, 50, 300), (200, 3, 65)] {
            let (x, w) = operands(m, k, n);
            let mut start = Tensor::zeros(&[m, n][..]);
            start
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = i as f32 * 1e-3);
            for alpha in [0.0, 1.0] {
                let mut alone = start.clone();
                crate::threads::as_shard(|| {
                    gemm(view2(&x), view2(&w).t(), view2_mut(&mut alone), alpha, 0.5)
                });
                for pieces in [2, 3, 4] {
                    let mut split_up = start.clone();
                    split(
                        view2(&x),
                        view2(&w).t(),
                        view2_mut(&mut split_up),
                        alpha,
                        0.5,
                        pieces,
                    );
                    assert_eq!(
                        split_up, alone,
                        "{m}x{k}x{n}, alpha {alpha}, {pieces} pieces"
                    );
                }
            }
        }
    }
}
