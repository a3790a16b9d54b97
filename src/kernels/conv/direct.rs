//! Direct convolution of stride 1 for x86-64 CPUs with AVX-512F or AVX2 and FMA: the product
//! of the weight matrix with the patches is formed without writing the patches out (an
//! "implicit GEMM", as in Chetlur et al. 2014, <https://arxiv.org/abs/1410.0759>, §4).
//!
//! The image is first copied into a zero-padded one, `[C, Hp, Wp] = [C, H + 2·ph, W +
//! 2·pw]`. With stride 1, tap `(c, i, j)` of output `(oy, ox)` is the padded image's element
//! `c·Hp·Wp + (oy + i·dh)·Wp + ox + j·dw`: for a run of outputs along a row the taps are a
//! run of consecutive inputs, one vector load. A block of `R` output channels times `P`
//! vectors of outputs is accumulated in registers over every tap, each tap one broadcast
//! weight per channel and one load per vector, and stored straight into the output (a row's
//! last vector masked).
//!
//! Against im2col and a packed matrix product, which write the patches (`cg·kh·kw` times the
//! image) and then copy them again into the product's packed layout, this reads the padded
//! image in place: on workload W2's second convolution at batch 1 the scratch it writes and
//! reads falls from about 450 KB to 32 KB.
//!
//! With AVX-512, a convolution with whole blocks of 32 output channels, rows of at least 14
//! outputs and at least 32 taps per output runs with the vectors along the output channels
//! instead ([`channel_vectors`], as oneDNN's direct convolutions): every lane is used
//! whatever the rows' width (rows of 14, as on W2's second convolution, leave 2 of 16 lanes
//! idle above), and a fused ReLU and 2×2 max pooling reads its windows from those tiles.
//!
//! Each output is `bias + Σ_t w_t·x_t`, one fused multiply-add per tap in the order `(c, i,
//! j)`, whatever the kernel and vector width: they all give the same numbers bit for bit.

use super::{Geometry, Pooling, Weights};
use crate::kernels::max_pool;
use crate::kernels::simd::{Lanes, Unit, transpose_into, transposed16};
use crate::tensor::Elem;
use ndarray::{ArrayView2, ArrayViewMut2, s};
use std::arch::x86_64::{__m256, __m512};
use std::ops::Range;

/// The largest padded image, in elements (512 KB), convolved directly: every block of output
/// channels reads the whole padded image again, which should come from the core's own cache.
const MAX_PADDED_IMAGE: usize = 1 << 17;

/// Room after the padded image, in elements, for the vector loads of a row's last outputs:
/// the widest vector.
const MAX_LANES: usize = 16;

/// The vector unit to convolve `geo` directly on, if the direct kernel takes it: stride 1,
/// a padded image of at most [`MAX_PADDED_IMAGE`] elements, and a CPU with a [`Unit`].
pub(super) fn unit(geo: &Geometry) -> Option<Unit> {
    let direct = geo.sh == 1 && geo.sw == 1 && padded_len(geo) <= MAX_PADDED_IMAGE;
    direct.then(Unit::detect).flatten()
}

/// Scratch a [`Workspace`] for `geo` needs, in elements: the padded image, and for the
/// channel-vector kernel ([`takes_channel_vectors`]) the packed weights `[O/BLOCK, K,
/// BLOCK]` and one image's outputs channels-last, `[O/BLOCK, OH·OW, BLOCK]`.
pub(super) fn scratch_len(geo: &Geometry) -> usize {
    let staged = if takes_channel_vectors(geo) {
        geo.o * (geo.k() + geo.l())
    } else {
        0
    };
    padded_len(geo) + staged
}

/// The padded image `[C, Hp, Wp]`, with room after it for the vector loads of the last
/// row's lanes past `OW`.
fn padded_len(geo: &Geometry) -> usize {
    let (hp, wp) = padded_sides(geo);
    geo.c * hp * wp + MAX_LANES
}

/// The padded image's height and width.
fn padded_sides(geo: &Geometry) -> (usize, usize) {
    (geo.h + 2 * geo.ph, geo.w + 2 * geo.pw)
}

/// Whether an AVX-512 CPU convolves `geo` with [`channel_vectors`] (vectors along the output
/// channels): one group, output channels in whole blocks of [`BLOCK`], rows of at least
/// [`PIXELS`] outputs and at least [`MIN_TAPS`] taps per output (with fewer, as W2's first
/// convolution's 9, writing a tile out costs more than its multiply-adds gain).
fn takes_channel_vectors(geo: &Geometry) -> bool {
    geo.groups == 1 && geo.o.is_multiple_of(BLOCK) && geo.ow >= PIXELS && geo.k() >= MIN_TAPS
}

/// The buffers of [`convolve`] on one thread, for one geometry and one set of weights: the
/// padded image, whose frame of zeros, written once, stays from one image to the next (each
/// image then costs only the copy of its rows), and for [`channel_vectors`] the weights
/// packed once for every image and room for an image's outputs channels-last.
pub(super) struct Workspace<'a, 'w> {
    unit: Unit,
    weights: Weights<'w>,
    padded: &'a mut [Elem],
    /// `[O/BLOCK, K, BLOCK]`: block `b`'s tap `t` holds output channels `b·BLOCK..` side by
    /// side; empty unless the channel-vector kernel runs.
    packed: &'a mut [Elem],
    /// `[O/BLOCK, OH·OW, BLOCK]`, as `packed`.
    staged: &'a mut [Elem],
}

impl<'a, 'w> Workspace<'a, 'w> {
    /// The workspace for convolutions of `geo` with `weights` on `unit` (from [`unit()`]) in
    /// the first [`scratch_len`] elements of `scratch`: the padded image zeroed, the weights
    /// packed when the channel-vector kernel runs.
    pub(super) fn new(
        unit: Unit,
        geo: &Geometry,
        weights: Weights<'w>,
        scratch: &'a mut [Elem],
    ) -> Self {
        let (padded, rest) = scratch[..scratch_len(geo)].split_at_mut(padded_len(geo));
        padded.fill(0.0);
        let channel_vectors = unit == Unit::Avx512 && takes_channel_vectors(geo);
        let (packed, staged) = match channel_vectors {
            true => rest.split_at_mut(geo.o * geo.k()),
            false => (&mut [][..], &mut [][..]),
        };
        if channel_vectors {
            // SAFETY: the channel vectors run on AVX-512 only (checked just above).
            unsafe { pack(weights, packed) };
        }
        Workspace {
            unit,
            weights,
            padded,
            packed,
            staged,
        }
    }
}

/// Writes `weights.matrix` (`[O, K]`, rows contiguous) into `packed` as `[O/BLOCK, K,
/// BLOCK]`, each block by [`transpose_into`] (an element at a time, this took as long as
/// W2's second convolution of one image on two threads).
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn pack(weights: Weights<'_>, packed: &mut [Elem]) {
    let k = weights.matrix.ncols();
    for (b, block) in packed.chunks_exact_mut(k * BLOCK).enumerate() {
        let rows = weights.matrix.slice(s![b * BLOCK..(b + 1) * BLOCK, ..]);
        let block = ArrayViewMut2::from_shape((k, BLOCK), block);
        // SAFETY: AVX-512F (the caller's promise).
        unsafe { transpose_into(rows, block.expect("internal error: a block of weights")) };
    }
}

/// The convolution of one image `[C, H, W]` with the workspace's weights into `out` (`[O,
/// OH, OW]`, every element), the image padded in `workspace` (made for `geo`). With `pooled`
/// (`[O, OH/2, OW/2]`, and its routes), the output goes through a ReLU and 2×2 max pooling
/// into it instead, each thread's channels by that thread, with the numbers of
/// [`super::relu_max_pool_planes`]; `out` is then scratch (the channel-vector kernel pools
/// from its tiles and leaves it as it was).
pub(super) fn convolve(
    image: &[Elem],
    geo: &Geometry,
    workspace: &mut Workspace<'_, '_>,
    out: &mut [Elem],
    pooled: Option<Pooling<'_>>,
) {
    let Workspace {
        unit,
        weights,
        ref mut padded,
        ref packed,
        ref mut staged,
    } = *workspace;
    let matrix = weights.matrix;
    assert!(
        geo.sh == 1
            && geo.sw == 1
            && matrix.dim() == (geo.o, geo.k())
            && (geo.k() < 2 || matrix.strides()[1] == 1)
            && weights.bias.is_none_or(|bias| bias.len() == geo.o)
            && out.len() == geo.o * geo.l()
            && padded.len() == padded_len(geo)
            && staged.len() == packed.len() / geo.k() * geo.l(),
        "internal error: direct convolution {geo:?}, weights {:?}, output {}",
        matrix.dim(),
        out.len()
    );
    pad(&image[..geo.image_len()], geo, padded);
    let kernel = Kernel::new(unit, packed);
    let blocks = geo.o.div_ceil(kernel.channels_per_piece());
    let pieces = crate::threads::block_threads(geo.o * geo.l() * geo.k(), blocks);
    let channels = Channels {
        range: 0..geo.o,
        out,
        staged,
        pooled,
    };
    split_channels(kernel, padded, weights, geo, channels, pieces);
}

/// Which kernel convolves: vectors along output rows on a [`Unit`], or
/// [`channel_vectors`] with these packed weights.
#[derive(Clone, Copy)]
enum Kernel<'a> {
    Rows(Unit),
    ChannelVectors(&'a [Elem]),
}

impl<'a> Kernel<'a> {
    /// The channel vectors when a [`Workspace`] packed the weights (into `packed`), else the
    /// row kernel on `unit`.
    fn new(unit: Unit, packed: &'a [Elem]) -> Self {
        match packed.is_empty() {
            true => Kernel::Rows(unit),
            false => Kernel::ChannelVectors(packed),
        }
    }

    /// Output channels handed to a thread are a multiple of this: the row kernels' widest
    /// block, or the channel vectors' [`BLOCK`].
    fn channels_per_piece(self) -> usize {
        match self {
            Kernel::Rows(_) => 8,
            Kernel::ChannelVectors(_) => BLOCK,
        }
    }
}

/// A run of output channels and their part of the output (and of the staged and pooled
/// outputs).
struct Channels<'a> {
    range: Range<usize>,
    out: &'a mut [Elem],
    staged: &'a mut [Elem],
    pooled: Option<Pooling<'a>>,
}

impl<'a> Channels<'a> {
    /// The first `count` channels and the rest.
    fn split(self, count: usize, geo: &Geometry) -> (Channels<'a>, Channels<'a>) {
        let mid = self.range.start + count;
        let (out, rest) = self.out.split_at_mut(count * geo.l());
        let staged_mid = if self.staged.is_empty() {
            0
        } else {
            count * geo.l()
        };
        let (staged, staged_rest) = self.staged.split_at_mut(staged_mid);
        let (pooled, pooled_rest) = match self.pooled {
            Some(pooled) => {
                let (head, tail) = pooled.split_at(count * geo.l() / 4);
                (Some(head), Some(tail))
            }
            None => (None, None),
        };
        (
            Channels {
                range: self.range.start..mid,
                out,
                staged,
                pooled,
            },
            Channels {
                range: mid..self.range.end,
                out: rest,
                staged: staged_rest,
                pooled: pooled_rest,
            },
        )
    }
}

/// The output channels `channels` cut into `pieces` runs, one per thread, each pooled (when
/// `channels.pooled` is given) by its thread while still in that core's cache; each output
/// is computed as one thread alone would, so `pieces` never changes a number.
fn split_channels(
    kernel: Kernel<'_>,
    padded: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    channels: Channels<'_>,
    pieces: usize,
) {
    if pieces < 2 {
        let Channels {
            range,
            out,
            staged,
            pooled,
        } = channels;
        // SAFETY: the CPU has the kernel's unit (the caller's promise, from `unit`); the
        // shapes and sizes are those the kernels need (checked by `convolve` and by their
        // slicing).
        unsafe {
            match kernel {
                Kernel::Rows(Unit::Avx512) => all_channels_avx512(padded, weights, geo, range, out),
                Kernel::Rows(Unit::Avx2) => all_channels_avx2(padded, weights, geo, range, out),
                Kernel::ChannelVectors(packed) => {
                    let target = match pooled {
                        Some(pooled) => Target::Pooled(pooled),
                        None => Target::Out(out),
                    };
                    channel_vectors(padded, packed, weights, geo, range, staged, target);
                    return;
                }
            }
        }
        if let Some(pooled) = pooled {
            super::relu_max_pool_planes(out, geo, pooled);
        }
        return;
    }
    let half = pieces / 2;
    let count = channels.range.len();
    let first = (count * half / pieces).next_multiple_of(kernel.channels_per_piece());
    let (left, right) = channels.split(first.min(count), geo);
    crate::threads::join(
        || split_channels(kernel, padded, weights, geo, left, half),
        || split_channels(kernel, padded, weights, geo, right, pieces - half),
    );
}

/// Writes the image `[C, H, W]` into `padded` inside its frame of `ph` rows and `pw` columns
/// (`[C, Hp, Wp]`, the frame left as it is), row by row with [`copy_row`]: a `memcpy` and two
/// `memset` calls per row of 14 (W2's second convolution) took as long as a tenth of the
/// convolution. Compiled for the CPU's vector unit
/// ([`with_simd`](crate::kernels::simd::with_simd)), a block is one AVX move rather than two
/// SSE moves.
fn pad(image: &[Elem], geo: &Geometry, padded: &mut [Elem]) {
    let (hp, wp) = padded_sides(geo);
    crate::kernels::simd::with_simd(
        #[inline(always)]
        || {
            for (plane, channel) in padded
                .chunks_exact_mut(hp * wp)
                .zip(image.chunks_exact(geo.h * geo.w))
            {
                let rows = plane[geo.ph * wp..].chunks_exact_mut(wp);
                for (row, from) in rows.zip(channel.chunks_exact(geo.w)) {
                    copy_row(from, &mut row[geo.pw..][..geo.w]);
                }
            }
        },
    )
}

/// Copies `from` into `to` (as long) in blocks of [`ROW_BLOCK`] elements, the last block
/// overlapping the one before it: a few vector moves instead of a call to `memcpy`, whose
/// cost dominates for rows this short (a row shorter than a block is left to it).
#[inline(always)]
fn copy_row(from: &[Elem], to: &mut [Elem]) {
    let len = from.len();
    if len < ROW_BLOCK {
        to.copy_from_slice(from);
        return;
    }
    for start in (0..len).step_by(ROW_BLOCK) {
        // a copy of a constant length: a few vector moves, no call
        let start = start.min(len - ROW_BLOCK);
        to[start..][..ROW_BLOCK].copy_from_slice(&from[start..][..ROW_BLOCK]);
    }
}

/// Elements [`copy_row`] moves at a time (two SSE or one AVX register of `f32`).
const ROW_BLOCK: usize = 8;

/// [`all_channels`] with AVX-512F: blocks of 8 channels × 2 vectors (16 accumulators of the
/// 32 registers; W2's rows of 14 and 28 outputs make 14 and 56 vectors, whole blocks of 2).
///
/// # Safety
/// As [`all_channels`], on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn all_channels_avx512(
    padded: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    channels: Range<usize>,
    out: &mut [Elem],
) {
    // SAFETY: the caller's promise.
    unsafe { all_channels::<__m512, 8, 2>(padded, weights, geo, channels, out) }
}

/// [`all_channels`] with AVX2 and FMA: blocks of 4 channels × 3 vectors (12 accumulators of
/// the 16 registers).
///
/// # Safety
/// As [`all_channels`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn all_channels_avx2(
    padded: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    channels: Range<usize>,
    out: &mut [Elem],
) {
    // SAFETY: the caller's promise.
    unsafe { all_channels::<__m256, 4, 3>(padded, weights, geo, channels, out) }
}

/// Where a tile reads its taps: the group's input channels, `plane` elements apart, each
/// `kh × kw` taps, `row` elements between tap rows and `column` between tap columns.
struct Taps {
    channels: usize,
    plane: usize,
    kh: usize,
    kw: usize,
    row: usize,
    column: usize,
}

impl Taps {
    /// The taps of a group of `geo` in its padded image (from [`pad`]).
    fn padded(geo: &Geometry) -> Self {
        let (hp, wp) = padded_sides(geo);
        Taps {
            channels: geo.cg,
            plane: hp * wp,
            kh: geo.kh,
            kw: geo.kw,
            row: geo.dh * wp,
            column: geo.dw,
        }
    }
}

/// The output channels `channels` into `out` (their `[.., OH, OW]` outputs), group by
/// group, in blocks of `R` channels (then single channels). Each output row is cut into
/// vectors (the last one partial when `LANES` does not divide `OW`), and a block's vectors,
/// row after row, are taken `P` at a time (then one at a time).
///
/// # Safety
/// The CPU has `V`'s instruction set; `padded` holds [`scratch_len`] elements (from
/// [`pad`]), `weights` are `[O, K]` with contiguous rows and a bias of `O` if any,
/// `channels` lie in `0..O` and `out` holds their `OH·OW` elements each.
#[inline(always)]
unsafe fn all_channels<V: Lanes, const R: usize, const P: usize>(
    padded: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    channels: Range<usize>,
    out: &mut [Elem],
) {
    let (hp, wp) = padded_sides(geo);
    let taps = Taps::padded(geo);
    let l = geo.l();
    let per_row = geo.ow.div_ceil(V::LANES);
    let outputs = Outputs {
        vectors: geo.oh * per_row,
        per_row,
        padded_row: wp,
        width: geo.ow,
        stride: l,
    };
    for g in 0..geo.groups {
        let x = padded[g * geo.cg * hp * wp..].as_ptr();
        let first = (g * geo.og).max(channels.start);
        let last = ((g + 1) * geo.og).min(channels.end);
        let mut o = first;
        while o < last {
            let dst = out[(o - channels.start) * l..].as_mut_ptr();
            let w = |r: usize| weights.matrix.row(o + r).as_ptr();
            let init = |r: usize| weights.bias.map_or(0.0, |bias| bias[o + r]);
            // SAFETY: the caller's promise; rows `o..o + R` (or `o`) are channels of this
            // group in `channels`, whose outputs `out` holds from `dst`.
            unsafe {
                if o + R <= last {
                    let (w, init) = (std::array::from_fn(w), std::array::from_fn(init));
                    channels_block::<V, R, P>(x, w, init, &taps, dst, &outputs);
                    o += R;
                } else {
                    channels_block::<V, 1, P>(x, [w(0)], [init(0)], &taps, dst, &outputs);
                    o += 1;
                }
            }
        }
    }
}

/// Where a block's outputs go: `vectors` per channel, `per_row` per output row of `width`
/// outputs (the last one partial when `LANES` does not divide it), the rows `padded_row`
/// apart in the padded image, each channel's outputs `stride` apart.
struct Outputs {
    vectors: usize,
    per_row: usize,
    padded_row: usize,
    width: usize,
    stride: usize,
}

impl Outputs {
    /// Vector `v`'s first output as an offset into a plane of the padded image and into a
    /// channel of the output, and its lanes.
    fn place(&self, v: usize, lanes: usize) -> (usize, usize, usize) {
        let (oy, ox) = (v / self.per_row, v % self.per_row * lanes);
        (
            oy * self.padded_row + ox,
            oy * self.width + ox,
            lanes.min(self.width - ox),
        )
    }
}

/// Every output vector of the `R` channels whose weights rows start at `w` and outputs at
/// `dst`: `P` vectors at a time, then single ones.
///
/// # Safety
/// The CPU has `V`'s instruction set; `x` is the group's first channel in the padded image
/// (from [`pad`]), each `w[r]` holds the group's `cg·kh·kw` weights, and `dst` starts `R`
/// channels of outputs, `outputs.stride` apart.
#[inline(always)]
unsafe fn channels_block<V: Lanes, const R: usize, const P: usize>(
    x: *const Elem,
    w: [*const Elem; R],
    init: [Elem; R],
    taps: &Taps,
    dst: *mut Elem,
    outputs: &Outputs,
) {
    let mut v = 0;
    // SAFETY: vector `v`'s taps are `c·plane + i·row + j·column` past its first input,
    // `LANES` each, inside the padded image (a row's last vector reads at most `LANES − 1`
    // past the row, into the next one or the room after the image); each vector's lanes are
    // in its channels' outputs.
    unsafe {
        while v + P <= outputs.vectors {
            vectors::<V, R, P>(x, w, init, taps, dst, outputs, v);
            v += P;
        }
        while v < outputs.vectors {
            vectors::<V, R, 1>(x, w, init, taps, dst, outputs, v);
            v += 1;
        }
    }
}

/// [`tile`] on vectors `v..v + P` of `R` channels.
///
/// # Safety
/// As [`channels_block`], and `v + P` is at most `outputs.vectors`.
#[inline(always)]
unsafe fn vectors<V: Lanes, const R: usize, const P: usize>(
    x: *const Elem,
    w: [*const Elem; R],
    init: [Elem; R],
    taps: &Taps,
    dst: *mut Elem,
    outputs: &Outputs,
    v: usize,
) {
    let places: [(usize, usize, usize); P] =
        std::array::from_fn(|p| outputs.place(v + p, V::LANES));
    // SAFETY: the caller's promise: each vector's first input and output lie in the padded
    // image and in the first channel's outputs.
    unsafe {
        let x = places.map(|(input, _, _)| x.add(input));
        let dst = places.map(|(_, output, _)| dst.add(output));
        tile::<V, R, P>(x, w, init, taps, dst, places.map(|p| p.2), outputs.stride);
    }
}

/// `R` channels × `P` vectors of outputs: each starts at `init` (the channel's bias, or 0)
/// and takes one fused multiply-add per tap, in the order `(c, i, j)`; vector `p`'s taps are
/// read from `x[p]` on, and its first `lanes[p]` lanes stored at `dst[p]` in the first
/// channel, `stride` elements further per channel.
///
/// # Safety
/// The CPU has `V`'s instruction set; every tap's vector from each `x[p]` is readable, each
/// `w[r]` holds `channels·kh·kw` weights, and `lanes[p]` elements from `dst[p] + r·stride`
/// are writable.
#[inline(always)]
unsafe fn tile<V: Lanes, const R: usize, const P: usize>(
    x: [*const Elem; P],
    w: [*const Elem; R],
    init: [Elem; R],
    taps: &Taps,
    dst: [*mut Elem; P],
    lanes: [usize; P],
    stride: usize,
) {
    // SAFETY: the caller's promise.
    unsafe {
        let mut acc = [[V::zero(); P]; R];
        for r in 0..R {
            acc[r] = [V::splat(init[r]); P];
        }
        let mut inputs = [V::zero(); P];
        let mut t = 0;
        for c in 0..taps.channels {
            let channel = c * taps.plane;
            for i in 0..taps.kh {
                let row = channel + i * taps.row;
                for j in 0..taps.kw {
                    let tap = row + j * taps.column;
                    for p in 0..P {
                        inputs[p] = V::load(x[p].add(tap));
                    }
                    for r in 0..R {
                        let weight = V::splat(*w[r].add(t));
                        for p in 0..P {
                            acc[r][p] = weight.fmadd(inputs[p], acc[r][p]);
                        }
                    }
                    t += 1;
                }
            }
        }
        for (r, vectors) in acc.iter().enumerate() {
            for p in 0..P {
                store_lanes(vectors[p], dst[p].add(r * stride), lanes[p]);
            }
        }
    }
}

/// Output channels per block of [`channel_vectors`]: two 16-lane vectors.
const BLOCK: usize = 32;

/// Outputs along a row per tile of [`channel_vectors`]: `2 × PIXELS` accumulators, two weight
/// vectors and a broadcast input fill 31 of the 32 registers.
const PIXELS: usize = 14;

/// Taps per output below which [`channel_vectors`] is not used.
const MIN_TAPS: usize = 32;

/// Where [`channel_vectors`] puts a block's outputs.
enum Target<'a> {
    /// The outputs `[channels, OH, OW]`.
    Out(&'a mut [Elem]),
    /// Their ReLU and 2×2 max pooling, `[channels, OH/2, OW/2]` (and the routes).
    Pooled(Pooling<'a>),
}

/// The output channels `channels` (whole blocks of [`BLOCK`]) into `target`, with the
/// vectors along the output channels, as oneDNN's direct convolutions run (Georganas et al.
/// 2018, "Anatomy of High-Performance Deep Learning Convolutions on SIMD Architectures",
/// <https://arxiv.org/abs/1808.05567>): a tile of [`BLOCK`] channels × [`PIXELS`] outputs
/// along a row takes, per tap, two vector loads of packed weights and one broadcast input per
/// output, so every lane is used whatever the row's width (W2's rows of 14 left 2 of 16
/// lanes idle in the row kernel). A row longer than a whole number of tiles ends with a
/// tile that overlaps the one before it (those outputs are computed twice, the same). The
/// tiles are written channels-last into `staged` (`[channels/BLOCK, OH·OW, BLOCK]`), and
/// each block is then transposed into the output ([`transpose_into`]) or pooled from there
/// ([`pool_staged`]). Each output takes its taps in the order `(c, i, j)`, as
/// [`all_channels`] does: the same numbers bit for bit.
///
/// # Safety
/// The CPU has AVX-512F; `padded` holds [`padded_len`] elements (from [`pad`]), `packed` the
/// weights from [`pack`], `weights` the bias of `O` if any, `channels` whole blocks in
/// `0..O` and `staged` and `target` their outputs; the geometry is one
/// [`takes_channel_vectors`].
#[target_feature(enable = "avx512f")]
unsafe fn channel_vectors(
    padded: &[Elem],
    packed: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    channels: Range<usize>,
    staged: &mut [Elem],
    mut target: Target<'_>,
) {
    let wp = padded_sides(geo).1;
    let taps = Taps::padded(geo);
    let (k, l) = (geo.k(), geo.l());
    let blocks = staged.chunks_exact_mut(BLOCK * l);
    for (b, (staged, o)) in blocks.zip(channels.step_by(BLOCK)).enumerate() {
        let weights_block = &packed[o * k..][..BLOCK * k];
        let init: [Elem; BLOCK] =
            std::array::from_fn(|r| weights.bias.map_or(0.0, |bias| bias[o + r]));
        for oy in 0..geo.oh {
            for ox in (0..geo.ow).step_by(PIXELS) {
                let ox = ox.min(geo.ow - PIXELS);
                // SAFETY: the tile's taps lie in the padded image (its last tap of its last
                // output is the padded row's last element at most), its weights in the
                // block's, and its outputs in `staged`.
                unsafe {
                    channel_tile(
                        padded[oy * wp + ox..].as_ptr(),
                        weights_block.as_ptr(),
                        &init,
                        &taps,
                        staged[(oy * geo.ow + ox) * BLOCK..][..PIXELS * BLOCK].as_mut_ptr(),
                    );
                }
            }
        }
        // SAFETY: AVX-512F (the caller's promise); `staged` holds the block's outputs, and
        // the target's part has room for them.
        unsafe {
            match &mut target {
                Target::Out(out) => {
                    let out = &mut out[b * BLOCK * l..][..BLOCK * l];
                    let staged = ArrayView2::from_shape((l, BLOCK), &*staged);
                    let out = ArrayViewMut2::from_shape((BLOCK, l), out);
                    let shapes = "internal error: a block's outputs";
                    transpose_into(staged.expect(shapes), out.expect(shapes))
                }
                Target::Pooled(pooled) => {
                    let pooled_len = (geo.oh / 2) * (geo.ow / 2);
                    let part = pooled.part(b * BLOCK * pooled_len, BLOCK * pooled_len);
                    pool_staged(staged, geo, part)
                }
            }
        }
    }
}

/// [`BLOCK`] channels × [`PIXELS`] outputs along a row: each starts at `init` (the channel's
/// bias, or 0) and takes one fused multiply-add per tap, in the order `(c, i, j)`; output
/// `p`'s taps are read from `x + p` on, the tap's [`BLOCK`] weights from `w`, one after the
/// other, and output `p`'s channels stored at `dst + p·BLOCK`.
///
/// # Safety
/// AVX-512F; every tap of every output is readable from `x`, `w` holds `BLOCK` weights per
/// tap and `dst` `PIXELS·BLOCK` writable elements.
#[inline(always)]
unsafe fn channel_tile(
    x: *const Elem,
    w: *const Elem,
    init: &[Elem; BLOCK],
    taps: &Taps,
    dst: *mut Elem,
) {
    const LANES: usize = <__m512 as Lanes>::LANES;
    // SAFETY: the caller's promise.
    unsafe {
        let init = [
            __m512::load(init.as_ptr()),
            __m512::load(init[LANES..].as_ptr()),
        ];
        let mut acc = [init; PIXELS];
        let mut w = w;
        for c in 0..taps.channels {
            let channel = c * taps.plane;
            for i in 0..taps.kh {
                let row = channel + i * taps.row;
                for j in 0..taps.kw {
                    let tap = x.add(row + j * taps.column);
                    let weights = [__m512::load(w), __m512::load(w.add(LANES))];
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let input = __m512::splat(*tap.add(p));
                        for (acc, weight) in acc.iter_mut().zip(weights) {
                            *acc = weight.fmadd(input, *acc);
                        }
                    }
                    w = w.add(BLOCK);
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                acc.store(dst.add(p * BLOCK + v * LANES));
            }
        }
    }
}

/// The first `count` lanes of `vector` (all of them when `count` is `LANES`) stored from
/// `at`.
///
/// # Safety
/// The CPU has `V`'s instruction set; `count` elements from `at` are writable, `count` is at
/// most `LANES`.
#[inline(always)]
unsafe fn store_lanes<V: Lanes>(vector: V, at: *mut Elem, count: usize) {
    // SAFETY: the caller's promise.
    unsafe {
        match count == V::LANES {
            true => vector.store(at),
            false => vector.store_first(at, count),
        }
    }
}

/// A block's outputs from `staged` (`[OH·OW, BLOCK]`) through a ReLU and 2×2 max pooling
/// into `pooled` (`[BLOCK, OH/2, OW/2]`, and the windows' routes), with the numbers and
/// routes of [`super::relu_max_pool_planes`]: each window's four inputs are one vector of
/// 16 channels each, rectified (`max(x, 0)`), and its first maximum is found by strict
/// comparisons in the order top left, top right, bottom left, bottom right; a vector of
/// windows holding a NaN is done one window at a time by the exact rule
/// ([`max_pool::relu_window`]). 16 windows' vectors at a time are transposed
/// ([`transposed16`]) into 16 channels' runs of windows. `OH` and `OW` are even (as the
/// fused operation requires).
///
/// # Safety
/// AVX-512F; `staged` holds `OH·OW·BLOCK` elements and `pooled` `BLOCK·(OH/2)·(OW/2)` (as
/// its routes, if any).
#[target_feature(enable = "avx512f")]
unsafe fn pool_staged(staged: &[Elem], geo: &Geometry, pooled: Pooling<'_>) {
    use std::arch::x86_64::_mm512_setzero_ps;
    const LANES: usize = <__m512 as Lanes>::LANES;
    let Pooling { values, mut routes } = pooled;
    let (w, pw) = (geo.ow, geo.ow / 2);
    let pooled_len = (geo.oh / 2) * pw;
    for p in (0..pooled_len).step_by(LANES) {
        let count = LANES.min(pooled_len - p);
        for channel in (0..BLOCK).step_by(LANES) {
            let mut maxima = [_mm512_setzero_ps(); LANES];
            let mut codes = maxima;
            for (i, (max, code)) in maxima.iter_mut().zip(&mut codes).take(count).enumerate() {
                let q = 2 * ((p + i) / pw) * w + 2 * ((p + i) % pw);
                let corners = [q, q + 1, q + w, q + w + 1].map(|at| at * BLOCK + channel);
                // SAFETY: the window's inputs are in `staged`.
                unsafe { (*max, *code) = relu_pool_window(staged, corners) };
            }
            // SAFETY: windows `p..p + count` of channels `channel..channel + LANES` lie in
            // `pooled` (and its routes).
            unsafe {
                let at = |c: usize| (channel + c) * pooled_len + p;
                for (c, max) in transposed16(maxima).into_iter().enumerate() {
                    store_lanes(max, values[at(c)..].as_mut_ptr(), count);
                }
                if let Some(routes) = routes.as_deref_mut() {
                    for (c, code) in transposed16(codes).into_iter().enumerate() {
                        store_lanes(code, routes[at(c)..].as_mut_ptr(), count);
                    }
                }
            }
        }
    }
}

/// One window of 16 channels for [`pool_staged`]: its four inputs' vectors start at
/// `corners` in `staged`; returns the maxima and the route codes.
///
/// # Safety
/// AVX-512F; 16 elements from each corner are in `staged`.
#[inline(always)]
unsafe fn relu_pool_window(staged: &[Elem], corners: [usize; 4]) -> (__m512, __m512) {
    use std::arch::x86_64::{_CMP_UNORD_Q, _mm512_cmp_ps_mask};
    const LANES: usize = <__m512 as Lanes>::LANES;
    // SAFETY: the caller's promise.
    unsafe {
        // four loads written out: `corners.map(…)` stayed a call compiled for the baseline,
        // which passed the vectors through memory (1% of W2's training step)
        let load = |at: usize| __m512::load(staged[at..][..LANES].as_ptr());
        let x = [
            load(corners[0]),
            load(corners[1]),
            load(corners[2]),
            load(corners[3]),
        ];
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x[0], x[1])
            | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x[2], x[3]);
        if nan == 0 {
            return max_pool::avx512::relu_windows(x);
        }
        let (mut max, mut code) = ([0.0; LANES], [0.0; LANES]);
        for lane in 0..LANES {
            let window = corners.map(|at| staged[at + lane]);
            (max[lane], code[lane]) = max_pool::relu_window(window);
        }
        (__m512::load(max.as_ptr()), __m512::load(code.as_ptr()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::uniform;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The convolution by its definition, each output `bias + Σ_t w_t·x_t` with one fused
    /// multiply-add per tap in the order `(c, i, j)` (padding taps included, as zeros).
    fn reference(image: &[Elem], weights: &Array2<Elem>, geo: &Geometry, bias: bool) -> Vec<Elem> {
        let mut out = vec![0.0; geo.o * geo.l()];
        for o in 0..geo.o {
            let g = o / geo.og;
            for oy in 0..geo.oh {
                for ox in 0..geo.ow {
                    let mut acc = if bias { weights[[o, geo.k()]] } else { 0.0 };
                    let mut t = 0;
                    for c in 0..geo.cg {
                        for i in 0..geo.kh {
                            for j in 0..geo.kw {
                                let y = (oy + i * geo.dh) as isize - geo.ph as isize;
                                let x = (ox + j * geo.dw) as isize - geo.pw as isize;
                                let inside = (0..geo.h as isize).contains(&y)
                                    && (0..geo.w as isize).contains(&x);
                                let value = if inside {
                                    let at = ((g * geo.cg + c) * geo.h + y as usize) * geo.w
                                        + x as usize;
                                    image[at]
                                } else {
                                    0.0
                                };
                                acc = weights[[o, t]].mul_add(value, acc);
                                t += 1;
                            }
                        }
                    }
                    out[(o * geo.oh + oy) * geo.ow + ox] = acc;
                }
            }
        }
        out
    }

    /// A stride-1 geometry: `[c, h, w]` input, `o` outputs in `groups`, a `kh × kw` kernel.
    #[allow(clippy::too_many_arguments)]
    fn geometry(
        [c, h, w]: [usize; 3],
        o: usize,
        groups: usize,
        [kh, kw]: [usize; 2],
        [ph, pw]: [usize; 2],
        [dh, dw]: [usize; 2],
    ) -> Geometry {
        Geometry {
            c,
            h,
            w,
            cg: c / groups,
            o,
            og: o / groups,
            groups,
            kh,
            kw,
            sh: 1,
            sw: 1,
            ph,
            pw,
            dh,
            dw,
            oh: h + 2 * ph - dh * (kh - 1),
            ow: w + 2 * pw - dw * (kw - 1),
        }
    }

    #[test]
    fn every_unit_matches_the_definition_bit_for_bit() {
        let cases = [
            // workload W2's two convolutions
            geometry([1, 28, 28], 32, 1, [3, 3], [1, 1], [1, 1]),
            geometry([32, 14, 14], 64, 1, [3, 3], [1, 1], [1, 1]),
            // channel counts off the blocks of 8 and 4, no padding, a wide kernel
            geometry([3, 9, 11], 13, 1, [2, 5], [0, 0], [1, 1]),
            // padding on one side only, dilation, groups (depthwise too)
            geometry([4, 10, 7], 6, 2, [3, 3], [2, 0], [2, 1]),
            geometry([5, 6, 6], 5, 5, [3, 3], [1, 1], [1, 1]),
            // one output, a kernel as large as the padded image
            geometry([2, 3, 4], 3, 1, [5, 6], [1, 1], [1, 1]),
            // vectors along the output channels: rows of 20 (a last tile overlapping the
            // one before), two blocks of channels, dilation, no padding
            geometry([8, 9, 20], 64, 1, [3, 3], [1, 1], [1, 1]),
            geometry([8, 12, 17], 32, 1, [3, 2], [0, 2], [2, 3]),
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for geo in &cases {
            for bias in [false, true] {
                let image = uniform(&[geo.image_len()], -1.0, 1.0, &mut rng).unwrap();
                let image = image.as_slice().unwrap();
                let k = geo.k() + usize::from(bias);
                let weights = uniform(&[geo.o, k], -1.0, 1.0, &mut rng).unwrap();
                let weights = weights.into_dimensionality().unwrap();
                // a second image in the same padded buffer, whose frame stays zero
                let second: Vec<Elem> = image.iter().map(|x| 0.5 - x).collect();
                for &unit in Unit::all_here() {
                    let mut scratch = vec![f32::NAN; scratch_len(geo)];
                    let joined = Weights::joined(weights.view(), geo, bias);
                    let mut workspace = Workspace::new(unit, geo, joined, &mut scratch);
                    for (n, image) in [image, &second[..]].into_iter().enumerate() {
                        let expected = reference(image, &weights, geo, bias);
                        let mut out = vec![f32::NAN; geo.o * geo.l()];
                        convolve(image, geo, &mut workspace, &mut out, None);
                        let same = out
                            .iter()
                            .zip(&expected)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{unit:?}, bias {bias}, image {n}, {geo:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn channels_split_across_threads_and_pooled_give_the_same_numbers_bit_for_bit() {
        let cases = [
            // 13 channels for the row kernels: pieces of 8 and 5, or of 8, 5 and 0
            geometry([3, 10, 12], 13, 1, [3, 3], [1, 1], [1, 1]),
            // 96 for the channel vectors (AVX-512): pieces of 32 and 64, or three of 32;
            // rows of 16, whose last tile overlaps the first
            geometry([4, 14, 16], 96, 1, [3, 3], [1, 1], [1, 1]),
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let bits = |v: &[Elem]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (geo, nan) in cases.iter().flat_map(|geo| [(geo, false), (geo, true)]) {
            let mut image = uniform(&[geo.image_len()], -1.0, 1.0, &mut rng).unwrap();
            if nan {
                // NaN in the outputs around it, in every channel: windows pooled by the
                // exact rule
                image[[geo.image_len() / 2 + 3]] = Elem::NAN;
            }
            let weights = uniform(&[geo.o, geo.k() + 1], -1.0, 1.0, &mut rng).unwrap();
            let weights: Array2<Elem> = weights.into_dimensionality().unwrap();
            let weights = Weights::joined(weights.view(), geo, true);
            let pooled_len = geo.o * (geo.oh / 2) * (geo.ow / 2);
            for &unit in Unit::all_here() {
                let mut scratch = vec![f32::NAN; scratch_len(geo)];
                let workspace = Workspace::new(unit, geo, weights, &mut scratch);
                pad(image.as_slice().unwrap(), geo, workspace.padded);
                let (padded, packed) = (&*workspace.padded, &*workspace.packed);
                let kernel = Kernel::new(unit, packed);
                let run = |pieces: usize, pool: bool| {
                    let mut out = vec![f32::NAN; geo.o * geo.l()];
                    let mut staged = vec![f32::NAN; packed.len() / geo.k() * geo.l()];
                    let mut pooled = vec![f32::NAN; if pool { pooled_len } else { 0 }];
                    let mut routes = vec![f32::NAN; pooled.len()];
                    let channels = Channels {
                        range: 0..geo.o,
                        out: &mut out,
                        staged: &mut staged,
                        pooled: pool.then_some(Pooling {
                            values: &mut pooled,
                            routes: Some(&mut routes),
                        }),
                    };
                    split_channels(kernel, padded, weights, geo, channels, pieces);
                    (out, pooled, routes)
                };
                let (out, _, _) = run(1, false);
                let mut expected = vec![f32::NAN; pooled_len];
                let mut expected_routes = vec![f32::NAN; pooled_len];
                let expected_pooling = Pooling {
                    values: &mut expected,
                    routes: Some(&mut expected_routes),
                };
                super::super::relu_max_pool_planes(&out, geo, expected_pooling);
                assert_eq!(expected.iter().any(|v| v.is_nan()), nan);
                for pieces in [1, 2, 3] {
                    let context = format!("{unit:?}, {pieces} pieces, {geo:?}, NaN {nan}");
                    let (split_out, _, _) = run(pieces, false);
                    assert_eq!(bits(&split_out), bits(&out), "{context}");
                    let (_, pooled, routes) = run(pieces, true);
                    assert_eq!(bits(&pooled), bits(&expected), "{context}");
                    assert_eq!(bits(&routes), bits(&expected_routes), "{context}");
                }
            }
        }
    }

    #[test]
    fn strided_or_large_convolutions_take_the_patches() {
        let mut geo = geometry([32, 14, 14], 64, 1, [3, 3], [1, 1], [1, 1]);
        assert_eq!(unit(&geo), Unit::detect());
        geo.sw = 2;
        assert_eq!(unit(&geo), None);
        let large = geometry([64, 64, 64], 64, 1, [3, 3], [1, 1], [1, 1]);
        assert_eq!(unit(&large), None);
    }
}
