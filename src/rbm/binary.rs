//! Products with a binary (0/1) operand, the RBM's hot path: the visible samples, the
//! hidden samples and binarized data are 0/1 matrices, and a 0/1 row times a dense matrix is
//! the sum of the dense rows its ones select. Binary rows are kept as the positions of their
//! ones ([`Ones`]), so a product costs one addition per one instead of a multiply-add per
//! entry (Fashion-MNIST binarized at 0.5 has 31% ones). Also the passes around the sums:
//! the sigmoid with a bias, and Bernoulli sampling straight into positions.
//!
//! Each output row is summed by one thread in a fixed order (its ones in increasing
//! position), so results do not depend on the thread count.

use super::kernel::sigmoid;
use crate::tensor::Elem;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// A 0/1 matrix stored as the positions of its ones, row by row (compressed sparse rows
/// without values): row `r`'s ones are at columns `columns[starts[r]..starts[r + 1]]`, in
/// increasing order.
#[derive(Debug, Clone)]
pub(crate) struct Ones {
    starts: Vec<usize>,
    columns: Vec<u32>,
}

impl Ones {
    /// No rows.
    pub(crate) fn new() -> Self {
        Ones {
            starts: vec![0],
            columns: Vec::new(),
        }
    }

    /// `rows` rows without ones.
    pub(crate) fn zeros(rows: usize) -> Self {
        Ones {
            starts: vec![0; rows + 1],
            columns: Vec::new(),
        }
    }

    /// Removes every row.
    pub(crate) fn clear(&mut self) {
        self.starts.truncate(1);
        self.columns.clear();
    }

    /// The number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// The positions of row `r`'s ones.
    pub(crate) fn row(&self, r: usize) -> &[u32] {
        &self.columns[self.starts[r]..self.starts[r + 1]]
    }

    /// Appends `x` as a row when every value is 0 or 1; otherwise appends nothing and
    /// returns false.
    pub(crate) fn push_if_binary(&mut self, x: &[Elem]) -> bool {
        let before = self.columns.len();
        for (i, &a) in x.iter().enumerate() {
            if a == 1.0 {
                self.columns.push(i as u32);
            } else if a != 0.0 {
                self.columns.truncate(before);
                return false;
            }
        }
        self.starts.push(self.columns.len());
        true
    }

    /// Appends a Bernoulli draw of the probabilities `probs` as a row: a one where the
    /// uniform `u ∈ [0, 1)` from the top 24 bits of the little-endian `u32` in `bytes`
    /// (4 per probability) is below `p` — the draws of
    /// [`sample_bernoulli`](super::kernel::sample_bernoulli), bit for bit.
    pub(crate) fn push_sampled(&mut self, probs: &[Elem], bytes: &[u8]) {
        const SCALE: f32 = 1.0 / 16_777_216.0; // 2^−24
        // without a branch per unit (a third of them are ones, at random): write every
        // position, keep it by advancing the length
        let mut len = self.columns.len();
        self.columns.resize(len + probs.len(), 0);
        for (i, (&p, chunk)) in probs.iter().zip(bytes.chunks_exact(4)).enumerate() {
            let bits = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.columns[len] = i as u32;
            len += usize::from(((bits >> 8) as f32 * SCALE) < p);
        }
        self.columns.truncate(len);
        self.starts.push(len);
    }

    /// Appends the rows of `other`.
    pub(crate) fn extend(&mut self, other: &Ones) {
        for r in 0..other.rows() {
            self.columns.extend_from_slice(other.row(r));
            self.starts.push(self.columns.len());
        }
    }

    /// The transpose: `out` gets one row per column `0..width`, listing (in increasing
    /// order) the rows with a one in that column.
    pub(crate) fn transpose_into(&self, width: usize, out: &mut Ones) {
        out.starts.clear();
        out.starts.resize(width + 1, 0);
        for &c in &self.columns {
            out.starts[c as usize + 1] += 1;
        }
        for i in 0..width {
            out.starts[i + 1] += out.starts[i];
        }
        out.columns.clear();
        out.columns.resize(self.columns.len(), 0);
        // `next[c]`: where column c's next row goes
        let mut next: Vec<usize> = out.starts[..width].to_vec();
        for r in 0..self.rows() {
            for &c in self.row(r) {
                out.columns[next[c as usize]] = r as u32;
                next[c as usize] += 1;
            }
        }
    }
}

/// `out[r] = Σ_{i ∈ ones.row(first + r)} src[i]` for each row `r` of `out` (or `+=` with
/// `accumulate`): the product of the 0/1 rows with `src`. `src` and `out` have contiguous
/// rows of one width.
pub(crate) fn select_sum(
    src: ArrayView2<'_, Elem>,
    ones: &Ones,
    first: usize,
    mut out: ArrayViewMut2<'_, Elem>,
    accumulate: bool,
) {
    let width = src.ncols();
    assert!(
        out.ncols() == width && first + out.nrows() <= ones.rows(),
        "internal error: select_sum shapes"
    );
    let src = src
        .as_slice()
        .expect("internal error: select_sum needs a contiguous source");
    let out = out
        .as_slice_mut()
        .expect("internal error: select_sum needs a contiguous output");
    let rows = out.len() / width.max(1);
    let ones_count = ones.starts[first + rows] - ones.starts[first];
    let run = |r0: usize, out: &mut [Elem]| {
        select_sum_rows(src, width, ones, first + r0, out, accumulate)
    };
    if crate::threads::parallel(ones_count * width / 8) && rows > 1 {
        // fixed chunks of rows; each row is summed whole by one thread
        const CHUNK: usize = 8;
        out.par_chunks_mut(CHUNK * width)
            .enumerate()
            .for_each(|(c, chunk)| run(c * CHUNK, chunk));
    } else {
        run(0, out);
    }
}

/// [`select_sum`] for the rows of `out` (row `r` is `ones` row `first + r`), with AVX2 when
/// the CPU has it.
fn select_sum_rows(
    src: &[Elem],
    width: usize,
    ones: &Ones,
    first: usize,
    out: &mut [Elem],
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), the only requirement of
        // `select_sum_rows_avx2` beyond its safe signature.
        unsafe { select_sum_rows_avx2(src, width, ones, first, out, accumulate) };
        return;
    }
    select_sum_rows_portable(src, width, ones, first, out, accumulate);
}

/// [`select_sum_rows_portable`] compiled for AVX2 (eight floats per instruction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn select_sum_rows_avx2(
    src: &[Elem],
    width: usize,
    ones: &Ones,
    first: usize,
    out: &mut [Elem],
    accumulate: bool,
) {
    select_sum_rows_portable(src, width, ones, first, out, accumulate);
}

/// Columns summed at once in registers: 32 floats are four AVX registers (eight with the
/// two partial sums).
const BLOCK: usize = 32;

/// The loops of [`select_sum`]: column blocks of [`BLOCK`] outside, rows inside, so a block
/// of `src` stays in cache across the rows; then blocks of 8 and single columns at the end.
#[inline(always)]
fn select_sum_rows_portable(
    src: &[Elem],
    width: usize,
    ones: &Ones,
    first: usize,
    out: &mut [Elem],
    accumulate: bool,
) {
    let rows = out.len() / width.max(1);
    let mut start = 0;
    while start + BLOCK <= width {
        block_sum::<BLOCK>(src, width, ones, first, out, rows, start, accumulate);
        start += BLOCK;
    }
    while start + 8 <= width {
        block_sum::<8>(src, width, ones, first, out, rows, start, accumulate);
        start += 8;
    }
    while start < width {
        block_sum::<1>(src, width, ones, first, out, rows, start, accumulate);
        start += 1;
    }
}

/// Columns `start..start + B` of [`select_sum`], for every row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_sum<const B: usize>(
    src: &[Elem],
    width: usize,
    ones: &Ones,
    first: usize,
    out: &mut [Elem],
    rows: usize,
    start: usize,
    accumulate: bool,
) {
    for r in 0..rows {
        let dst: &mut [Elem; B] = (&mut out[r * width + start..][..B])
            .try_into()
            .expect("internal error: a block is B wide");
        let block = |i: u32| -> &[Elem; B] {
            (&src[i as usize * width + start..][..B])
                .try_into()
                .expect("internal error: a block is B wide")
        };
        // two sums, of the even-numbered and the odd-numbered ones, so that consecutive
        // additions do not wait for each other (an addition takes several cycles)
        let (mut even, mut odd) = ([0.0; B], [0.0; B]);
        let positions = ones.row(first + r);
        let mut pairs = positions.chunks_exact(2);
        for pair in &mut pairs {
            let (a, b) = (block(pair[0]), block(pair[1]));
            for k in 0..B {
                even[k] += a[k];
                odd[k] += b[k];
            }
        }
        if let [last] = pairs.remainder() {
            let a = block(*last);
            for k in 0..B {
                even[k] += a[k];
            }
        }
        for k in 0..B {
            let sum = even[k] + odd[k];
            dst[k] = if accumulate { dst[k] + sum } else { sum };
        }
    }
}

/// `x ← σ(x + bias)` for each row of `x` (contiguous rows of `bias.len()`), with AVX2 and
/// FMA when the CPU has them.
pub(crate) fn bias_sigmoid(x: &mut [Elem], bias: &[Elem]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above), the only requirement of
        // `bias_sigmoid_avx2` beyond its safe signature.
        unsafe { bias_sigmoid_avx2(x, bias) };
        return;
    }
    bias_sigmoid_portable(x, bias);
}

/// [`bias_sigmoid_portable`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn bias_sigmoid_avx2(x: &mut [Elem], bias: &[Elem]) {
    bias_sigmoid_portable(x, bias);
}

#[inline(always)]
fn bias_sigmoid_portable(x: &mut [Elem], bias: &[Elem]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (a, &b) in row.iter_mut().zip(bias) {
            *a = sigmoid(*a + b);
        }
    }
}

/// `dst = srcᵀ` (`src` `[r, c]`, `dst` `[c, r]`, both contiguous), in 8 × 8 tiles (with
/// AVX2 when the CPU has it), eight rows of `dst` at a time so that the rows being written
/// stay in the first-level cache.
pub(crate) fn transpose(src: ArrayView2<'_, Elem>, dst: ArrayViewMut2<'_, Elem>) {
    transpose_with(src, dst, |d, s| *d = s);
}

/// `dst += srcᵀ`, as [`transpose`].
pub(crate) fn add_transposed(src: ArrayView2<'_, Elem>, dst: ArrayViewMut2<'_, Elem>) {
    transpose_with(src, dst, |d, s| *d += s);
}

/// `op(dst[j, i], src[i, j])` for every element, in the order of [`transpose`].
fn transpose_with(
    src: ArrayView2<'_, Elem>,
    mut dst: ArrayViewMut2<'_, Elem>,
    op: impl Fn(&mut Elem, Elem) + Copy,
) {
    let (r, c) = src.dim();
    assert_eq!(dst.dim(), (c, r), "internal error: transpose shapes");
    let s = src
        .as_slice()
        .expect("internal error: transpose needs a contiguous source");
    let d = dst
        .as_slice_mut()
        .expect("internal error: transpose needs a contiguous output");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), the only requirement of
        // `transpose_avx2` beyond its safe signature.
        unsafe { transpose_avx2(s, r, c, d, op) };
        return;
    }
    transpose_tiles(s, r, c, d, tile_portable, op);
}

/// The loops of [`transpose_with`], with `tile` transposing one 8 × 8 tile in registers;
/// the edges that do not fill a tile go element by element.
#[inline(always)]
fn transpose_tiles(
    s: &[Elem],
    r: usize,
    c: usize,
    d: &mut [Elem],
    tile: impl Fn([[Elem; 8]; 8]) -> [[Elem; 8]; 8],
    op: impl Fn(&mut Elem, Elem) + Copy,
) {
    let (full_r, full_c) = (r - r % 8, c - c % 8);
    for j0 in (0..full_c).step_by(8) {
        for i0 in (0..full_r).step_by(8) {
            let rows: [[Elem; 8]; 8] = std::array::from_fn(|k| {
                s[(i0 + k) * c + j0..][..8]
                    .try_into()
                    .expect("internal error: eight floats")
            });
            for (k, row) in tile(rows).into_iter().enumerate() {
                let out = &mut d[(j0 + k) * r + i0..][..8];
                out.iter_mut().zip(row).for_each(|(x, y)| op(x, y));
            }
        }
    }
    for i in 0..r {
        let columns = if i < full_r { full_c..c } else { 0..c };
        for j in columns {
            op(&mut d[j * r + i], s[i * c + j]);
        }
    }
}

/// One 8 × 8 tile transposed, element by element.
#[inline(always)]
fn tile_portable(rows: [[Elem; 8]; 8]) -> [[Elem; 8]; 8] {
    std::array::from_fn(|j| std::array::from_fn(|i| rows[i][j]))
}

/// [`transpose`] with the 8 × 8 tiles transposed in AVX registers (unpack, shuffle, swap
/// halves: 24 shuffles per 64 floats).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose_avx2(
    s: &[Elem],
    r: usize,
    c: usize,
    d: &mut [Elem],
    op: impl Fn(&mut Elem, Elem) + Copy,
) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2")]
    fn tile(rows: [[Elem; 8]; 8]) -> [[Elem; 8]; 8] {
        // SAFETY: `[f32; 8]` and `__m256` have the same size, and every bit pattern is
        // valid for both.
        let a: [__m256; 8] = unsafe { std::mem::transmute(rows) };
        let t0 = _mm256_unpacklo_ps(a[0], a[1]);
        let t1 = _mm256_unpackhi_ps(a[0], a[1]);
        let t2 = _mm256_unpacklo_ps(a[2], a[3]);
        let t3 = _mm256_unpackhi_ps(a[2], a[3]);
        let t4 = _mm256_unpacklo_ps(a[4], a[5]);
        let t5 = _mm256_unpackhi_ps(a[4], a[5]);
        let t6 = _mm256_unpacklo_ps(a[6], a[7]);
        let t7 = _mm256_unpackhi_ps(a[6], a[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let out = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        // SAFETY: as above, the other way round.
        unsafe { std::mem::transmute(out) }
    }
    transpose_tiles(s, r, c, d, |rows| tile(rows), op);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChaCha8Rng, SeedableRng};
    use ndarray::Array2;
    use rand::RngExt;

    /// A random 0/1 matrix with ones at rate `p`.
    fn binary(rows: usize, cols: usize, p: f64, rng: &mut ChaCha8Rng) -> Array2<Elem> {
        Array2::from_shape_fn((rows, cols), |_| if rng.random_bool(p) { 1.0 } else { 0.0 })
    }

    #[test]
    fn select_sum_is_the_dense_product_for_any_width() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // widths below, at and around the blocks of 64 and 8
        for (rows, inner, width) in [(5, 7, 3), (9, 40, 64), (17, 30, 83), (3, 12, 200)] {
            let a = binary(rows, inner, 0.4, &mut rng);
            let b = Array2::from_shape_fn((inner, width), |_| rng.random_range(-1.0..1.0));
            let mut ones = Ones::new();
            for row in a.rows() {
                assert!(ones.push_if_binary(row.as_slice().unwrap()));
            }
            let expected = a.dot(&b);
            let mut out = Array2::from_elem((rows, width), f32::NAN);
            select_sum(b.view(), &ones, 0, out.view_mut(), false);
            let close = |x: &Array2<Elem>, y: &Array2<Elem>| {
                x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5)
            };
            assert!(close(&out, &expected), "{rows}×{inner}×{width}");
            // accumulating adds the product; an offset picks later rows
            select_sum(b.view(), &ones, 0, out.view_mut(), true);
            assert!(close(&out, &(&expected * 2.0)));
            let mut tail = Array2::zeros((rows - 1, width));
            select_sum(b.view(), &ones, 1, tail.view_mut(), false);
            assert!(close(
                &tail,
                &expected.slice(ndarray::s![1.., ..]).to_owned()
            ));
        }
    }

    #[test]
    fn ones_refuse_non_binary_rows_and_transpose_to_column_lists() {
        let mut ones = Ones::new();
        assert!(ones.push_if_binary(&[0.0, 1.0, 1.0]));
        assert!(!ones.push_if_binary(&[1.0, 0.5, 0.0]));
        assert!(ones.push_if_binary(&[1.0, 0.0, 1.0]));
        assert_eq!(ones.rows(), 2);
        assert_eq!((ones.row(0), ones.row(1)), (&[1, 2][..], &[0, 2][..]));
        let mut t = Ones::new();
        ones.transpose_into(3, &mut t);
        assert_eq!(t.rows(), 3);
        assert_eq!(
            (t.row(0), t.row(1), t.row(2)),
            (&[1][..], &[0][..], &[0, 1][..])
        );
        let mut more = Ones::zeros(1);
        more.extend(&ones);
        assert_eq!(
            (more.rows(), more.row(0), more.row(2)),
            (3, &[][..], &[0, 2][..])
        );
    }

    #[test]
    fn sampling_into_positions_draws_what_sample_bernoulli_draws() {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let probs: Vec<Elem> = (0..1000).map(|i| (i % 11) as Elem / 10.0).collect();
        let mut bytes = vec![0u8; 4 * probs.len()];
        rng.fill_bytes(&mut bytes);
        let mut ones = Ones::new();
        ones.push_sampled(&probs, &bytes);
        let mut dense = probs.clone();
        let mut scratch = vec![0u8; 4 * probs.len()];
        super::super::kernel::sample_bernoulli(
            &mut dense,
            &mut scratch,
            &mut ChaCha8Rng::seed_from_u64(1),
        );
        let expected: Vec<u32> = (0..dense.len() as u32)
            .filter(|&i| dense[i as usize] == 1.0)
            .collect();
        assert_eq!(ones.row(0), &expected[..]);
    }

    #[test]
    fn transpose_and_bias_sigmoid_are_exact() {
        let x = Array2::from_shape_fn((19, 37), |(i, j)| (i * 37 + j) as Elem);
        let mut t = Array2::zeros((37, 19));
        transpose(x.view(), t.view_mut());
        assert_eq!(t, x.t());
        add_transposed(x.view(), t.view_mut());
        assert_eq!(t, &x.t() * 2.0);
        let mut y = vec![0.0, 1.0, -2.0, 3.0];
        bias_sigmoid(&mut y, &[1.0, -1.0]);
        let expected = [1.0f32, 0.0, -1.0, 2.0].map(|a| 1.0 / (1.0 + (-a).exp()));
        assert!(y.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
