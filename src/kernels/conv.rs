//! Convolution kernels: im2col and its adjoint col2im, and the convolution's forward and
//! backward as matrix products on the [`gemm`] kernel, one image at a time (Chellapilla et
//! al. 2006, <https://inria.hal.science/inria-00112631>); and the forward of a stride-1
//! convolution on a small image as a [`direct`] kernel that reads the patches in place, as
//! well as its input gradient, itself such a convolution of the output gradient
//! ([`Geometry::input_gradient`]). The transposed convolution ([`transposed`]) is that input
//! gradient taken of an input of its own.
//!
//! Taking several images into one wider product was measured on workload W2 (batch 128):
//! it packs the weight once per chunk rather than per image but moves the patches and the
//! outputs out of cache, and cost 3–15% more cycles than one image at a time. For the same
//! reason a ReLU and 2×2 max pooling after the convolution can run inside it, on each
//! image's output while it is in cache ([`forward`]'s `pooled`, [`OutputGrad::Pooled`]).

#[cfg(target_arch = "x86_64")]
mod direct;

use crate::kernels::gemm::{add_product, gemm};
use crate::kernels::max_pool;
use crate::kernels::simd::{Unit, with_simd};
use crate::tensor::Elem;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, s};

/// The sizes of one convolution, checked by the op that builds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Input channels, height, width.
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    /// Input channels per group.
    pub(crate) cg: usize,
    /// Output channels, and per group.
    pub(crate) o: usize,
    pub(crate) og: usize,
    pub(crate) groups: usize,
    /// Kernel height and width.
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    /// Strides, paddings and dilations, rows then columns.
    pub(crate) sh: usize,
    pub(crate) sw: usize,
    pub(crate) ph: usize,
    pub(crate) pw: usize,
    pub(crate) dh: usize,
    pub(crate) dw: usize,
    /// Output height and width.
    pub(crate) oh: usize,
    pub(crate) ow: usize,
}

impl Geometry {
    /// Rows of one group's patch matrix: `cg·kh·kw` (without the bias row).
    pub(crate) fn k(&self) -> usize {
        self.cg * self.kh * self.kw
    }

    /// Output positions per image, `OH·OW`.
    pub(crate) fn l(&self) -> usize {
        self.oh * self.ow
    }

    /// Elements of one input image, `C·H·W`.
    pub(crate) fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The output columns `ox` whose tap `j` lands inside the image (not in the padding):
    /// `0 <= ox·sw + j·dw − pw < w`.
    fn valid_columns(&self, j: usize) -> (usize, usize) {
        let offset = j * self.dw;
        let lo = self.pw.saturating_sub(offset).div_ceil(self.sw);
        let hi = (self.w + self.pw)
            .saturating_sub(offset)
            .div_ceil(self.sw)
            .min(self.ow);
        (lo.min(hi), hi)
    }

    /// Whether the convolution has stride 1 and an output as wide as its input (a "same"
    /// convolution, as 3×3 with padding 1): see [`SameSizeSpan`].
    fn is_same_size(&self) -> bool {
        self.sh == 1 && self.sw == 1 && self.ow == self.w
    }

    /// The input gradient of a stride-1 convolution as a convolution of its own: the output
    /// gradient `[O, OH, OW]` convolved with the weights flipped in both spatial axes and
    /// with input and output channels swapped ([`flip_weights`]), with padding
    /// `(kh − 1)·dh − ph` (and the same for columns), which gives back `[C, H, W]`:
    /// `∂L/∂x[c, y, x] = Σ_{o,i,j} W[o, c, i, j]·G[o, y + ph − i·dh, x + pw − j·dw]`.
    /// `None` for other strides, or a padding wider than the kernel's reach.
    fn input_gradient(&self) -> Option<Geometry> {
        let ph = ((self.kh - 1) * self.dh).checked_sub(self.ph)?;
        let pw = ((self.kw - 1) * self.dw).checked_sub(self.pw)?;
        (self.sh == 1 && self.sw == 1).then_some(Geometry {
            c: self.o,
            h: self.oh,
            w: self.ow,
            cg: self.og,
            o: self.c,
            og: self.cg,
            ph,
            pw,
            oh: self.h,
            ow: self.w,
            ..*self
        })
    }

    /// Whether every output's window ends inside the padded image: `(OH − 1)·sh + (kh −
    /// 1)·dh < H + 2·ph`, and alike for columns. A geometry from a convolution's output
    /// size fits; the convolution that [`Geometry::input_gradient`] gives for a stride-1
    /// transposed convolution with output padding ([`transposed`]) does not: its last
    /// outputs have taps below and right of the padded image (zeros, which im2col and
    /// col2im skip by their bounds checks).
    fn fits(&self) -> bool {
        let fits = |out: usize, stride: usize, kernel: usize, dilation: usize, padded: usize| {
            out.saturating_sub(1) * stride + (kernel - 1) * dilation < padded
        };
        fits(self.oh, self.sh, self.kh, self.dh, self.h + 2 * self.ph)
            && fits(self.ow, self.sw, self.kw, self.dw, self.w + 2 * self.pw)
    }

    /// The input row of output row `oy`'s tap `i`, if it is inside the image.
    fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i * self.dh)
            .checked_sub(self.ph)
            .filter(|&y| y < self.h)
    }
}

/// A convolution's weights as [`forward`] reads them: `matrix` `[O, K]` (`K = cg·kh·kw`, each
/// row contiguous, rows any distance apart) and the bias `[O]`, if any.
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a> {
    pub(crate) matrix: ArrayView2<'a, Elem>,
    pub(crate) bias: Option<ArrayView1<'a, Elem>>,
}

impl<'a> Weights<'a> {
    /// The weights of a joined matrix `[O, K + bias]` whose last column is the bias when
    /// `bias` (as [`backward`] takes them).
    pub(crate) fn joined(matrix: ArrayView2<'a, Elem>, geo: &Geometry, bias: bool) -> Self {
        let (weights, rest) = matrix.split_at(ndarray::Axis(1), geo.k());
        Weights {
            matrix: weights,
            bias: bias.then(|| rest.index_axis_move(ndarray::Axis(1), 0)),
        }
    }
}

/// A fused convolution's pooled output (`[…, O, OH/2, OW/2]`) and, when a backward will
/// route gradients through the pooling, each window's route beside it, laid out the same
/// way ([`max_pool::forward_2x2_routed`]).
pub(crate) struct Pooling<'a> {
    /// The pooled output.
    pub(crate) values: &'a mut [Elem],
    /// Each window's route, when a backward will need them.
    pub(crate) routes: Option<&'a mut [Elem]>,
}

impl<'a> Pooling<'a> {
    /// The first `mid` elements and the rest.
    pub(crate) fn split_at(self, mid: usize) -> (Pooling<'a>, Pooling<'a>) {
        let (values, values_rest) = self.values.split_at_mut(mid);
        let (routes, routes_rest) = match self.routes {
            Some(routes) => {
                let (head, tail) = routes.split_at_mut(mid);
                (Some(head), Some(tail))
            }
            None => (None, None),
        };
        let head = Pooling { values, routes };
        (
            head,
            Pooling {
                values: values_rest,
                routes: routes_rest,
            },
        )
    }

    /// Elements `start..start + len`, borrowed.
    fn part(&mut self, start: usize, len: usize) -> Pooling<'_> {
        Pooling {
            values: &mut self.values[start..][..len],
            routes: self.routes.as_deref_mut().map(|r| &mut r[start..][..len]),
        }
    }
}

/// Whether [`backward`] should get the weight gradient `[O, K + bias]` column-major: when a
/// group has fewer output channels than the patches have rows, `gemm` then runs the product
/// `G_n·P_nᵀ` with the channels along its vector rows and packs the smaller `G_n` instead of
/// the patches (workload W2's 32→64 convolution: 62 → 47 µs per image at one AVX-512 core).
pub(crate) fn weight_grad_column_major(geo: &Geometry, bias: bool) -> bool {
    geo.og < geo.k() + usize::from(bias)
}

/// Scratch in elements: `(forward, patches, input gradient)`, where [`forward`] needs the
/// first per thread (the [`direct`] kernel's padded image, or else the patches) and
/// [`backward`] the other two: the patches with a row of ones for the bias, and for the
/// input gradient either the flipped weights and the [`direct`] kernel's padded output
/// gradient ([`Geometry::input_gradient`]) or the patches' gradients.
pub(crate) fn scratch_lens(geo: &Geometry, bias: bool) -> (usize, usize, usize) {
    let (k, l) = (geo.k(), geo.l());
    let forward = match direct_unit(geo) {
        #[cfg(target_arch = "x86_64")]
        Some(_) => direct::scratch_len(geo),
        _ => geo.groups * k * l,
    };
    let input_gradient = match direct_input_gradient(geo) {
        #[cfg(target_arch = "x86_64")]
        Some((_, adjoint)) => geo.c * adjoint.k() + direct::scratch_len(&adjoint),
        _ => k * l,
    };
    (
        forward,
        geo.groups * (k + usize::from(bias)) * l,
        input_gradient,
    )
}

/// The vector unit that convolves `geo` directly ([`direct`]), if that kernel takes it:
/// never when some output's window reaches past the padded image ([`Geometry::fits`]),
/// which the direct kernel reads without bounds checks.
fn direct_unit(geo: &Geometry) -> Option<Unit> {
    if !geo.fits() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    return direct::unit(geo);
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The vector unit and geometry on which [`backward`] forms the input gradient of `geo` as a
/// [`direct`] convolution ([`Geometry::input_gradient`]), if that kernel takes it.
fn direct_input_gradient(geo: &Geometry) -> Option<(Unit, Geometry)> {
    let adjoint = geo.input_gradient()?;
    Some((direct_unit(&adjoint)?, adjoint))
}

/// Writes the weights `[O, cg·kh·kw]` (each group's block of output channels) as those of
/// the input gradient's convolution ([`Geometry::input_gradient`]) into `flipped`, `[C,
/// og·kh·kw]`: `flipped[c, (o·kh + i)·kw + j] = W[g·og + o, (c − g·cg, kh − 1 − i, kw − 1 −
/// j)]` for input channel `c` of group `g`.
#[cfg(target_arch = "x86_64")]
fn flip_weights(weights: ArrayView2<'_, Elem>, geo: &Geometry, flipped: &mut [Elem]) {
    let taps = geo.kh * geo.kw;
    for (c, row) in flipped.chunks_exact_mut(geo.og * taps).enumerate() {
        let (g, local) = (c / geo.cg, c % geo.cg);
        for (o, to) in row.chunks_exact_mut(taps).enumerate() {
            let from = weights.row(g * geo.og + o);
            let from = &from
                .as_slice()
                .expect("internal error: weight rows contiguous")[local * taps..][..taps];
            for (t, &w) in to.iter_mut().zip(from.iter().rev()) {
                *t = w;
            }
        }
    }
}

/// Writes group `group`'s patches of one image `[C, H, W]` into `cols`, a row-major
/// `[cg·kh·kw, OH·OW]` matrix: row `(c·kh + i)·kw + j`, column `oy·OW + ox` holds
/// `x[c, oy·sh + i·dh − ph, ox·sw + j·dw − pw]`, or 0 in the padding. Every element of
/// `cols` is written.
fn im2col(image: &[Elem], geo: &Geometry, group: usize, cols: &mut [Elem]) {
    let (l, plane) = (geo.l(), geo.h * geo.w);
    let mut rows = cols.chunks_exact_mut(l);
    for c in group * geo.cg..(group + 1) * geo.cg {
        let channel = &image[c * plane..(c + 1) * plane];
        for i in 0..geo.kh {
            for j in 0..geo.kw {
                let row = rows.next().expect("internal error: im2col rows");
                if geo.is_same_size() {
                    same_size_tap(channel, geo, i, j, row);
                    continue;
                }
                let (lo, hi) = geo.valid_columns(j);
                if lo == hi {
                    row.fill(0.0); // the tap reads only padding
                    continue;
                }
                for (oy, out) in row.chunks_exact_mut(geo.ow).enumerate() {
                    let Some(y) = geo.input_row(oy, i) else {
                        out.fill(0.0);
                        continue;
                    };
                    let src = &channel[y * geo.w..(y + 1) * geo.w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    let x0 = lo * geo.sw + j * geo.dw - geo.pw;
                    if geo.sw == 1 {
                        out[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                    } else {
                        let taps = src[x0..].iter().step_by(geo.sw);
                        out[lo..hi].iter_mut().zip(taps).for_each(|(o, &v)| *o = v);
                    }
                }
            }
        }
    }
}

/// Where tap `(i, j)` of a stride-1 convolution whose output is as wide as its input (a
/// "same" convolution, as 3×3 with padding 1) reads: each output position's pixel at one
/// fixed offset, so the tap's valid output rows `first..end` read one contiguous run of
/// the channel, output indices `start..stop` from input index `source` on, except the
/// columns outside `lo..hi` of each output row, which wrap around into the neighbouring
/// image row and stand for the padding.
struct SameSizeSpan {
    first: usize,
    end: usize,
    lo: usize,
    hi: usize,
    start: usize,
    stop: usize,
    source: usize,
}

impl SameSizeSpan {
    /// The span of tap `(i, j)`, or `None` when the tap reads only padding.
    fn new(geo: &Geometry, i: usize, j: usize) -> Option<SameSizeSpan> {
        let (w, (lo, hi)) = (geo.w, geo.valid_columns(j));
        // output rows whose input row `oy + i·dh − ph` is inside the image
        let first = geo.ph.saturating_sub(i * geo.dh).min(geo.oh);
        let end = (geo.h + geo.ph)
            .saturating_sub(i * geo.dh)
            .clamp(first, geo.oh);
        if lo >= hi || first == end {
            return None;
        }
        // output index `oy·w + ox` reads input index `oy·w + ox + shift`
        let shift = (i * geo.dh * w + j * geo.dw) as isize - (geo.ph * w + geo.pw) as isize;
        let (start, stop) = (first * w + lo, (end - 1) * w + hi);
        let source = (start as isize + shift) as usize;
        Some(SameSizeSpan {
            first,
            end,
            lo,
            hi,
            start,
            stop,
            source,
        })
    }

    /// Zeroes the wrapped-around columns (outside `lo..hi`) of the valid output rows of a
    /// patch row `w` wide, column by column: a padding's few columns (one for 3×3 with
    /// padding 1) cost a store per row rather than a call to `memset` per row.
    fn zero_edges(&self, row: &mut [Elem], w: usize) {
        let lines = &mut row[self.first * w..self.end * w];
        for column in (0..self.lo).chain(self.hi..w) {
            for element in lines.iter_mut().skip(column).step_by(w) {
                *element = 0.0;
            }
        }
    }
}

/// One row of [`im2col`] for a stride-1 "same" convolution ([`SameSizeSpan`]): the valid
/// output rows as one contiguous copy of the channel, then the wrapped-around edge
/// columns zeroed. Short image rows then cost one copy per tap instead of one per image
/// row.
fn same_size_tap(channel: &[Elem], geo: &Geometry, i: usize, j: usize, row: &mut [Elem]) {
    let Some(span) = SameSizeSpan::new(geo, i, j) else {
        row.fill(0.0);
        return;
    };
    row[..span.start].fill(0.0);
    row[span.start..span.stop].copy_from_slice(&channel[span.source..][..span.stop - span.start]);
    row[span.stop..].fill(0.0);
    span.zero_edges(row, geo.w);
}

/// The adjoint of [`im2col`]: adds each element of group `group`'s patch gradients `cols`
/// (`[cg·kh·kw, OH·OW]`) into the image gradient `image` (`[C, H, W]`) at the pixel it was
/// read from; padding positions are dropped (a stride-1 "same" convolution zeroes them in
/// `cols` first, see [`add_same_size_tap`]).
fn col2im(cols: &mut [Elem], geo: &Geometry, group: usize, image: &mut [Elem]) {
    let (l, plane) = (geo.l(), geo.h * geo.w);
    let mut rows = cols.chunks_exact_mut(l);
    for c in group * geo.cg..(group + 1) * geo.cg {
        let channel = &mut image[c * plane..(c + 1) * plane];
        for i in 0..geo.kh {
            for j in 0..geo.kw {
                let row = rows.next().expect("internal error: col2im rows");
                if geo.is_same_size() {
                    add_same_size_tap(row, geo, i, j, channel);
                    continue;
                }
                let (lo, hi) = geo.valid_columns(j);
                if lo == hi {
                    continue; // the tap reads only padding
                }
                for (oy, grad) in row.chunks_exact(geo.ow).enumerate() {
                    let Some(y) = geo.input_row(oy, i) else {
                        continue;
                    };
                    let dst = &mut channel[y * geo.w..(y + 1) * geo.w];
                    let x0 = lo * geo.sw + j * geo.dw - geo.pw;
                    if geo.sw == 1 {
                        let dst = &mut dst[x0..x0 + hi - lo];
                        dst.iter_mut()
                            .zip(&grad[lo..hi])
                            .for_each(|(d, &g)| *d += g);
                    } else {
                        let taps = dst[x0..].iter_mut().step_by(geo.sw);
                        taps.zip(&grad[lo..hi]).for_each(|(d, &g)| *d += g);
                    }
                }
            }
        }
    }
}

/// The adjoint of [`same_size_tap`]: adds the patch gradients `row` of tap `(i, j)` into
/// `channel` as one contiguous run, after zeroing the elements of `row` that stand for the
/// padding at the left and right edges (which the run would otherwise add to the
/// neighbouring image row). Each pixel still receives its taps' gradients in the same order
/// as one image row at a time would add them, so the sums are the same bit for bit.
fn add_same_size_tap(row: &mut [Elem], geo: &Geometry, i: usize, j: usize, channel: &mut [Elem]) {
    let Some(span) = SameSizeSpan::new(geo, i, j) else {
        return;
    };
    span.zero_edges(row, geo.w);
    let dst = &mut channel[span.source..][..span.stop - span.start];
    let src = &row[span.start..span.stop];
    with_simd(
        #[inline(always)]
        || dst.iter_mut().zip(src).for_each(|(d, &g)| *d += g),
    );
}

/// One image's patch matrix for every group, `[groups, K + bias, L]`, with a row of ones
/// after each group's `K` rows when `bias` (so that the bias is one more weight column).
fn patches(image: &[Elem], geo: &Geometry, bias: bool, cols: &mut [Elem]) {
    let (k, l) = (geo.k(), geo.l());
    let rows = k + usize::from(bias);
    let cols = &mut cols[..geo.groups * rows * l];
    for (group, block) in cols.chunks_exact_mut(rows * l).enumerate() {
        let (taps, ones) = block.split_at_mut(k * l);
        im2col(image, geo, group, taps);
        ones.fill(1.0);
    }
}

/// Group `g`'s `[rows, cols]` block of a row-major `[groups·rows, cols]` matrix.
fn block(data: &[Elem], g: usize, rows: usize, cols: usize) -> ArrayView2<'_, Elem> {
    let len = rows * cols;
    ArrayView2::from_shape((rows, cols), &data[g * len..(g + 1) * len])
        .expect("internal error: block shape")
}

/// [`block`], mutably.
fn block_mut(data: &mut [Elem], g: usize, rows: usize, cols: usize) -> ArrayViewMut2<'_, Elem> {
    let len = rows * cols;
    ArrayViewMut2::from_shape((rows, cols), &mut data[g * len..(g + 1) * len])
        .expect("internal error: block shape")
}

/// The convolution of row-major images `[N, C, H, W]` with `weights`, written to `out`
/// (`[N, O, OH, OW]`, every element), with the images split into `pieces` runs of whole
/// images, one per thread. `cols` holds at least `pieces` times the first of
/// [`scratch_lens`]. Each image is convolved as one thread alone would, so `pieces` never
/// changes a number. A convolution of stride 1 on a small enough image runs [`direct`]ly on
/// a CPU with AVX-512F or AVX2 (its own rounding, the same on both), any other as im2col
/// and a matrix product added to the bias.
///
/// With `pooled` (`[N, O, OH/2, OW/2]`, `OH` and `OW` even), each image's output goes
/// through a ReLU and 2×2 max pooling ([`max_pool::forward_2x2`]) into its part of
/// `pooled` at once, while it is still in cache, and `out` is only scratch: its values are
/// unspecified afterwards (the [`direct`] channel-vector kernel pools from its own tiles
/// and does not write it), and it may hold just one image's output per piece
/// (`pieces·O·OH·OW` elements, fewer than `N·O·OH·OW`): each image's output then overwrites
/// the last in the thread's cache instead of going out to memory (workload W2's first
/// convolution at batch 256: 25 MB written and read again).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    images: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    cols: &mut [Elem],
    out: &mut [Elem],
    pooled: Option<Pooling<'_>>,
    pieces: usize,
) {
    if pieces < 2 {
        forward_images(images, weights, geo, cols, out, pooled);
        return;
    }
    let reused = written_over(out, images, geo);
    split_images(images, weights, geo, cols, out, pooled, reused, pieces);
}

/// [`forward`] with the images cut in two runs (and `cols`, `out` and `pooled` with them),
/// each on a thread of its own via [`crate::threads::join`], down to `pieces` runs; `reused`
/// says whether `out` holds one image's output per piece ([`written_over`] of the whole).
#[allow(clippy::too_many_arguments)]
fn split_images(
    images: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    cols: &mut [Elem],
    out: &mut [Elem],
    pooled: Option<Pooling<'_>>,
    reused: bool,
    pieces: usize,
) {
    let count = images.len() / geo.image_len();
    if pieces < 2 || count < 2 {
        crate::threads::as_shard(|| forward_images(images, weights, geo, cols, out, pooled));
        return;
    }
    let half = pieces / 2;
    let first = count * half / pieces;
    let out_len = geo.o * geo.l();
    let (images_a, images_b) = images.split_at(first * geo.image_len());
    let cols_len = scratch_lens(geo, weights.bias.is_some()).0;
    let (cols_a, cols_b) = cols.split_at_mut(half * cols_len);
    let (out_a, out_b) = out.split_at_mut(if reused { half } else { first } * out_len);
    let (pooled_a, pooled_b) = match pooled {
        Some(pooled) => {
            let (a, b) = pooled.split_at(first * out_len / 4);
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    let (a, b) = (half, pieces - half);
    crate::threads::join(
        || split_images(images_a, weights, geo, cols_a, out_a, pooled_a, reused, a),
        || split_images(images_b, weights, geo, cols_b, out_b, pooled_b, reused, b),
    );
}

/// [`forward`] on the calling thread.
fn forward_images(
    images: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    cols: &mut [Elem],
    out: &mut [Elem],
    mut pooled: Option<Pooling<'_>>,
) {
    let (k, l) = (geo.k(), geo.l());
    let direct = direct_unit(geo);
    let out_len = geo.o * l;
    let reused = written_over(out, images, geo);
    assert!(
        !reused || (pooled.is_some() && out.len() >= out_len),
        "internal error: conv output {} for {} images of {out_len}",
        out.len(),
        images.len() / geo.image_len()
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(unit) = direct {
        let mut workspace = direct::Workspace::new(unit, geo, weights, cols);
        for (sample, image) in images.chunks_exact(geo.image_len()).enumerate() {
            let (out, pooled) = image_output(out, pooled.as_mut(), sample, reused, out_len);
            direct::convolve(image, geo, &mut workspace, out, pooled);
        }
        return;
    }
    for (sample, image) in images.chunks_exact(geo.image_len()).enumerate() {
        let (out, pooled) = image_output(out, pooled.as_mut(), sample, reused, out_len);
        patches(image, geo, false, cols);
        for g in 0..geo.groups {
            let channels = g * geo.og..(g + 1) * geo.og;
            let mut dst = block_mut(out, g, geo.og, l);
            // each output starts at its channel's bias, the product added to it
            if let Some(bias) = weights.bias {
                for (mut row, &b) in dst
                    .rows_mut()
                    .into_iter()
                    .zip(&bias.slice(s![channels.clone()]))
                {
                    row.fill(b);
                }
            }
            let alpha = if weights.bias.is_some() { 1.0 } else { 0.0 };
            let matrix = weights.matrix.slice(s![channels, ..]);
            gemm(matrix, block(cols, g, k, l), dst, alpha, 1.0);
        }
        if let Some(pooled) = pooled {
            relu_max_pool_planes(out, geo, pooled);
        }
    }
}

/// Image `sample`'s output `out_len` long in `out` (the start of `out` when `reused`, see
/// [`written_over`]) and its part of `pooled`.
fn image_output<'o>(
    out: &'o mut [Elem],
    pooled: Option<&'o mut Pooling<'_>>,
    sample: usize,
    reused: bool,
    out_len: usize,
) -> (&'o mut [Elem], Option<Pooling<'o>>) {
    let start = if reused { 0 } else { sample * out_len };
    let pooled = pooled.map(|p| p.part(sample * out_len / 4, out_len / 4));
    (&mut out[start..][..out_len], pooled)
}

/// Whether `out` holds one image's output (per piece), written over for each image, rather
/// than every image's (see [`forward`]).
fn written_over(out: &[Elem], images: &[Elem], geo: &Geometry) -> bool {
    out.len() < images.len() / geo.image_len() * geo.o * geo.l()
}

/// Each `[OH, OW]` plane of `out` through a ReLU and 2×2 max pooling
/// ([`max_pool::forward_2x2`]) into its `[OH/2, OW/2]` plane of `pooled`, with the
/// windows' routes when `pooled` has room for them ([`max_pool::forward_2x2_routed`]).
/// `OH` is even, so the planes are pooled as the rows of one `[channels·OH, OW]` plane,
/// in one call: one call per plane cost as much again on W2's 14×14 planes.
fn relu_max_pool_planes(out: &[Elem], geo: &Geometry, pooled: Pooling<'_>) {
    let Pooling { values, routes } = pooled;
    let (w, ow) = (geo.ow, geo.ow / 2);
    match routes {
        Some(routes) => max_pool::forward_2x2_routed::<true>(out, w, values, ow, routes),
        None => max_pool::forward_2x2::<true>(out, w, values, ow),
    }
}

/// Where [`backward`] finds each image's output gradient `G_n` (`[O, OH, OW]`).
pub(crate) enum OutputGrad<'a> {
    /// In `[N, O, OH, OW]`, as given.
    Given(&'a [Elem]),
    /// Behind a ReLU and 2×2 max pooling fused with the convolution (see [`forward`]):
    /// formed image by image from the pooled output's gradient `pooled` (`[N, O, OH/2,
    /// OW/2]`) and the windows' routes the forward saved beside the pooled output
    /// ([`max_pool::backward_2x2_routed`]) into `scratch` (`O·OH·OW` elements), where the
    /// products then read it from cache.
    Pooled {
        pooled: &'a [Elem],
        routes: &'a [Elem],
        scratch: &'a mut [Elem],
    },
}

impl OutputGrad<'_> {
    /// Image `sample`'s output gradient, `[O, OH, OW]` row-major.
    fn of(&mut self, sample: usize, geo: &Geometry) -> &[Elem] {
        let len = geo.o * geo.l();
        match self {
            OutputGrad::Given(grad) => &grad[sample * len..][..len],
            OutputGrad::Pooled {
                pooled,
                routes,
                scratch,
            } => {
                let quarter = len / 4;
                let pooled = &pooled[sample * quarter..][..quarter];
                let routes = &routes[sample * quarter..][..quarter];
                let scratch = &mut scratch[..len];
                // the image's planes are the rows of one `[O·OH, OW]` matrix, two rows per
                // row of their pooled `[O·OH/2, OW/2]` one
                max_pool::backward_2x2_routed(routes, geo.ow, pooled, scratch);
                scratch
            }
        }
    }
}

/// The convolution's backward: with `grad` the output gradient (`G_n` of image `n`), adds
/// `∂L/∂W = Σ_n G_n·P_nᵀ` (`[O, K + bias]`, `P_n` image `n`'s patches) into `dw` and writes
/// `∂L/∂x` (`[N, C, H, W]`, every element) into `dx` ([`InputGradient`]). `cols` and
/// `dcols` hold at least [`scratch_lens`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    images: &[Elem],
    mut grad: OutputGrad<'_>,
    weights: ArrayView2<'_, Elem>,
    geo: &Geometry,
    bias: bool,
    mut dw: Option<ArrayViewMut2<'_, Elem>>,
    mut dx: Option<&mut [Elem]>,
    cols: &mut [Elem],
    dcols: &mut [Elem],
) {
    let (k, l, og) = (geo.k() + usize::from(bias), geo.l(), geo.og);
    let image_len = geo.image_len();
    let mut input_gradient = dx.is_some().then(|| {
        let weights = Weights {
            matrix: weights.slice_move(s![.., ..geo.k()]),
            bias: None,
        };
        InputGradient::new(geo, weights, dcols)
    });
    for (sample, image) in images.chunks_exact(image_len).enumerate() {
        let g_out = grad.of(sample, geo);
        if let Some(dw) = dw.as_mut() {
            patches(image, geo, bias, cols);
            for g in 0..geo.groups {
                add_product(
                    block(g_out, g, og, l),
                    block(cols, g, k, l).t(),
                    dw.slice_mut(s![g * og..(g + 1) * og, ..]),
                );
            }
        }
        if let (Some(dx), Some(input_gradient)) = (dx.as_mut(), input_gradient.as_mut()) {
            let dx = &mut dx[sample * image_len..(sample + 1) * image_len];
            input_gradient.write(g_out, geo, dx);
        }
    }
}

/// The transposed convolution of `geo` (the adjoint of [`forward`], as
/// `torch.nn.functional.conv_transpose2d`): each of the images `[O, OH, OW]` in `inputs`
/// (`[N, O, OH, OW]`) goes where [`backward`] takes an output gradient, and `out` (`[N, C,
/// H, W]`, every element) gets what it would write as the input gradient, plus
/// `weights.bias` (`[C]`, one per channel of `out`) if given: `weights.matrix` is `[O,
/// cg·kh·kw]`. The images are split into `pieces` runs of whole images, one per thread,
/// which changes no number; `scratch` holds at least `pieces` times the last of
/// [`scratch_lens`].
pub(crate) fn transposed(
    inputs: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    out: &mut [Elem],
    scratch: &mut [Elem],
    pieces: usize,
) {
    let (in_len, out_len) = (geo.o * geo.l(), geo.image_len());
    let scratch_len = scratch_lens(geo, false).2;
    let count = inputs.len() / in_len;
    if pieces < 2 || count < 2 {
        transposed_images(inputs, weights, geo, out, scratch);
        return;
    }
    let per_piece = count.div_ceil(pieces);
    assert!(
        scratch.len() >= count.div_ceil(per_piece) * scratch_len,
        "internal error: transposed convolution scratch {} for {pieces} pieces of {scratch_len}",
        scratch.len()
    );
    let mut runs: Vec<_> = inputs
        .chunks(per_piece * in_len)
        .zip(out.chunks_mut(per_piece * out_len))
        .zip(scratch.chunks_mut(scratch_len))
        .collect();
    crate::threads::map_items(&mut runs, &|_, ((inputs, out), scratch)| {
        crate::threads::as_shard(|| transposed_images(inputs, weights, geo, out, scratch))
    });
}

/// [`transposed`] on the calling thread.
fn transposed_images(
    inputs: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    out: &mut [Elem],
    scratch: &mut [Elem],
) {
    let mut input_gradient = InputGradient::new(geo, weights, scratch);
    let images = inputs.chunks_exact(geo.o * geo.l());
    for (input, out) in images.zip(out.chunks_exact_mut(geo.image_len())) {
        input_gradient.write(input, geo, out);
    }
}

/// How [`backward`] forms each image's input gradient, and [`transposed`] its output, with
/// its scratch.
#[allow(clippy::large_enum_variant)] // one per call, on the stack: a box would allocate
enum InputGradient<'a, 'w> {
    /// As a [`direct`] convolution ([`Geometry::input_gradient`]) with the flipped weights
    /// ([`flip_weights`]).
    #[cfg(target_arch = "x86_64")]
    Direct {
        adjoint: Geometry,
        workspace: direct::Workspace<'a, 'a>,
    },
    /// As the patches' gradients `W_gᵀ·G_n` in `dcols`, folded back into the image.
    Patches {
        weights: Weights<'w>,
        dcols: &'a mut [Elem],
    },
}

impl<'a, 'w: 'a> InputGradient<'a, 'w> {
    /// The direct route where its kernel takes `geo`, else the patches', in `scratch` (the
    /// last of [`scratch_lens`]), for the weights `[O, cg·kh·kw]` and a bias per input
    /// channel (`[C]`) added to the result, if any.
    fn new(geo: &Geometry, weights: Weights<'w>, scratch: &'a mut [Elem]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some((unit, adjoint)) = direct_input_gradient(geo) {
            let (flipped, rest) = scratch.split_at_mut(geo.c * adjoint.k());
            flip_weights(weights.matrix, geo, flipped);
            let flipped = Weights {
                matrix: ArrayView2::from_shape((geo.c, adjoint.k()), flipped)
                    .expect("internal error: flipped weights"),
                // (a view's lifetime cannot shorten: ndarray's views are invariant in it)
                bias: weights.bias.map(|bias| {
                    ArrayView1::from(bias.to_slice().expect("internal error: contiguous bias"))
                }),
            };
            return InputGradient::Direct {
                adjoint,
                workspace: direct::Workspace::new(unit, &adjoint, flipped, rest),
            };
        }
        InputGradient::Patches {
            weights,
            dcols: scratch,
        }
    }

    /// Writes the input gradient of one image's output gradient `g_out` (`[O, OH, OW]`),
    /// plus the bias, into `dx` (`[C, H, W]`, every element).
    fn write(&mut self, g_out: &[Elem], geo: &Geometry, dx: &mut [Elem]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            InputGradient::Direct { adjoint, workspace } => {
                direct::convolve(g_out, adjoint, workspace, dx, None);
            }
            InputGradient::Patches { weights, dcols } => {
                let (k, l, og) = (geo.k(), geo.l(), geo.og);
                match weights.bias {
                    Some(bias) => {
                        let planes = dx.chunks_exact_mut(geo.h * geo.w);
                        planes.zip(bias).for_each(|(plane, &b)| plane.fill(b));
                    }
                    None => dx.fill(0.0),
                }
                for g in 0..geo.groups {
                    gemm(
                        weights.matrix.slice(s![g * og..(g + 1) * og, ..]).t(),
                        block(g_out, g, og, l),
                        block_mut(dcols, 0, k, l),
                        0.0,
                        1.0,
                    );
                    col2im(dcols, geo, g, dx);
                }
            }
        }
    }
}
