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
//! Each output is `bias + Σ_t w_t·x_t`, one fused multiply-add per tap in the order `(c, i,
//! j)`, whatever the vector width: AVX-512 and AVX2 give the same numbers bit for bit.

use super::{Geometry, Pooling, Weights};
use crate::kernels::simd::{Lanes, Unit};
use crate::tensor::Elem;
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
    let direct = geo.sh == 1 && geo.sw == 1 && scratch_len(geo) <= MAX_PADDED_IMAGE;
    direct.then(Unit::detect).flatten()
}

/// Scratch [`convolve`] needs, in elements: the padded image, with room after it for the
/// vector loads of the last row's lanes past `OW`.
pub(super) fn scratch_len(geo: &Geometry) -> usize {
    let (hp, wp) = padded_sides(geo);
    geo.c * hp * wp + MAX_LANES
}

/// The padded image's height and width.
fn padded_sides(geo: &Geometry) -> (usize, usize) {
    (geo.h + 2 * geo.ph, geo.w + 2 * geo.pw)
}

/// The buffer of [`convolve`]'s padded images, `[C, Hp, Wp]` (and room after it), whose
/// frame of zeros, written once, stays from one image to the next: each image then costs
/// only the copy of its rows.
pub(super) struct Padded<'a> {
    buffer: &'a mut [Elem],
}

impl<'a> Padded<'a> {
    /// The buffer for convolutions of `geo` in the first [`scratch_len`] elements of
    /// `scratch`, zeroed.
    pub(super) fn new(geo: &Geometry, scratch: &'a mut [Elem]) -> Self {
        let buffer = &mut scratch[..scratch_len(geo)];
        buffer.fill(0.0);
        Padded { buffer }
    }
}

/// The convolution of one image `[C, H, W]` with `weights` into `out` (`[O, OH, OW]`, every
/// element), on `unit` (from [`unit`]), the image padded in `padded` (made for `geo`).
/// With `pooled` (`[O, OH/2, OW/2]`, and its routes), the output then goes through a ReLU
/// and 2×2 max pooling into it, each thread's channels by that thread
/// ([`super::relu_max_pool_planes`]).
pub(super) fn convolve(
    unit: Unit,
    image: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    padded: &mut Padded<'_>,
    out: &mut [Elem],
    pooled: Option<Pooling<'_>>,
) {
    let matrix = weights.matrix;
    assert!(
        geo.sh == 1
            && geo.sw == 1
            && matrix.dim() == (geo.o, geo.k())
            && (geo.k() < 2 || matrix.strides()[1] == 1)
            && weights.bias.is_none_or(|bias| bias.len() == geo.o)
            && out.len() == geo.o * geo.l()
            && padded.buffer.len() == scratch_len(geo),
        "internal error: direct convolution {geo:?}, weights {:?}, output {}",
        matrix.dim(),
        out.len()
    );
    let padded = &mut *padded.buffer;
    pad(&image[..geo.image_len()], geo, padded);
    let blocks = geo.o.div_ceil(CHANNELS_PER_PIECE);
    let pieces = crate::threads::block_threads(geo.o * geo.l() * geo.k(), blocks);
    let channels = Channels {
        range: 0..geo.o,
        out,
        pooled,
    };
    split_channels(unit, padded, weights, geo, channels, pieces);
}

/// A run of output channels and their part of the output (and of the pooled output).
struct Channels<'a> {
    range: Range<usize>,
    out: &'a mut [Elem],
    pooled: Option<Pooling<'a>>,
}

impl<'a> Channels<'a> {
    /// The first `count` channels and the rest.
    fn split(self, count: usize, geo: &Geometry) -> (Channels<'a>, Channels<'a>) {
        let mid = self.range.start + count;
        let (out, rest) = self.out.split_at_mut(count * geo.l());
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
                pooled,
            },
            Channels {
                range: mid..self.range.end,
                out: rest,
                pooled: pooled_rest,
            },
        )
    }
}

/// Output channels handed to a thread are a multiple of this (the widest block).
const CHANNELS_PER_PIECE: usize = 8;

/// The output channels `channels` cut into `pieces` runs, one per thread, each pooled (when
/// `channels.pooled` is given) by its thread while still in that core's cache; each output
/// is computed as one thread alone would, so `pieces` never changes a number.
fn split_channels(
    unit: Unit,
    padded: &[Elem],
    weights: Weights<'_>,
    geo: &Geometry,
    channels: Channels<'_>,
    pieces: usize,
) {
    if pieces < 2 {
        let Channels { range, out, pooled } = channels;
        // SAFETY: the CPU has `unit` (the caller's promise, from `unit`); the shapes and
        // sizes are those `all_channels` needs (checked by `convolve` and by its slicing).
        unsafe {
            match unit {
                Unit::Avx512 => all_channels_avx512(padded, weights, geo, range, out),
                Unit::Avx2 => all_channels_avx2(padded, weights, geo, range, out),
            }
        }
        if let Some(pooled) = pooled {
            super::relu_max_pool_planes(out, geo, pooled);
        }
        return;
    }
    let half = pieces / 2;
    let count = channels.range.len();
    let first = (count * half / pieces).next_multiple_of(CHANNELS_PER_PIECE);
    let (left, right) = channels.split(first.min(count), geo);
    crate::threads::join(
        || split_channels(unit, padded, weights, geo, left, half),
        || split_channels(unit, padded, weights, geo, right, pieces - half),
    );
}

/// Writes the image `[C, H, W]` into `padded` inside its frame of `ph` rows and `pw` columns
/// (`[C, Hp, Wp]`, the frame left as it is), row by row with [`copy_row`]: a `memcpy` and two
/// `memset` calls per row of 14 (W2's second convolution) took as long as a tenth of the
/// convolution.
fn pad(image: &[Elem], geo: &Geometry, padded: &mut [Elem]) {
    let (hp, wp) = padded_sides(geo);
    for (plane, channel) in padded
        .chunks_exact_mut(hp * wp)
        .zip(image.chunks_exact(geo.h * geo.w))
    {
        let rows = plane[geo.ph * wp..].chunks_exact_mut(wp);
        for (row, from) in rows.zip(channel.chunks_exact(geo.w)) {
            copy_row(from, &mut row[geo.pw..][..geo.w]);
        }
    }
}

/// Copies `from` into `to` (as long) in blocks of [`ROW_BLOCK`] elements, the last block
/// overlapping the one before it: a few vector moves instead of a call to `memcpy`, whose
/// cost dominates for rows this short (a row shorter than a block is left to it).
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
    let taps = Taps {
        channels: geo.cg,
        plane: hp * wp,
        kh: geo.kh,
        kw: geo.kw,
        row: geo.dh * wp,
        column: geo.dw,
    };
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
                let at = dst[p].add(r * stride);
                if lanes[p] == V::LANES {
                    vectors[p].store(at);
                } else {
                    vectors[p].store_first(at, lanes[p]);
                }
            }
        }
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
                    let mut padded = Padded::new(geo, &mut scratch);
                    for (n, image) in [image, &second[..]].into_iter().enumerate() {
                        let expected = reference(image, &weights, geo, bias);
                        let mut out = vec![f32::NAN; geo.o * geo.l()];
                        let joined = Weights::joined(weights.view(), geo, bias);
                        convolve(unit, image, joined, geo, &mut padded, &mut out, None);
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
    fn channels_split_across_threads_give_the_same_output_bit_for_bit() {
        // 13 channels in 3 groups' worth of blocks: pieces of 8 and 5, or of 8, 5 and 0;
        // each piece pools its own channels
        let geo = geometry([3, 10, 12], 13, 1, [3, 3], [1, 1], [1, 1]);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let image = uniform(&[geo.image_len()], -1.0, 1.0, &mut rng).unwrap();
        let weights = uniform(&[geo.o, geo.k() + 1], -1.0, 1.0, &mut rng).unwrap();
        let weights: Array2<Elem> = weights.into_dimensionality().unwrap();
        let mut scratch = vec![f32::NAN; scratch_len(&geo)];
        let padded = Padded::new(&geo, &mut scratch).buffer;
        pad(image.as_slice().unwrap(), &geo, padded);
        let bits = |v: &[Elem]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for &unit in Unit::all_here() {
            let run = |pieces: usize| {
                let mut out = vec![f32::NAN; geo.o * geo.l()];
                let mut pooled = vec![f32::NAN; geo.o * geo.l() / 4];
                let mut routes = vec![f32::NAN; pooled.len()];
                let channels = Channels {
                    range: 0..geo.o,
                    out: &mut out,
                    pooled: Some(Pooling {
                        values: &mut pooled,
                        routes: Some(&mut routes),
                    }),
                };
                let weights = Weights::joined(weights.view(), &geo, true);
                split_channels(unit, padded, weights, &geo, channels, pieces);
                (out, pooled, routes)
            };
            let (out, pooled, routes) = run(1);
            let mut expected = vec![f32::NAN; pooled.len()];
            let mut expected_routes = vec![f32::NAN; pooled.len()];
            let expected_pooling = Pooling {
                values: &mut expected,
                routes: Some(&mut expected_routes),
            };
            super::super::relu_max_pool_planes(&out, &geo, expected_pooling);
            assert_eq!(bits(&pooled), bits(&expected), "{unit:?}: pooled");
            assert_eq!(bits(&routes), bits(&expected_routes), "{unit:?}: routes");
            for pieces in [2, 3] {
                let (split_out, split_pooled, split_routes) = run(pieces);
                assert_eq!(bits(&split_out), bits(&out), "{unit:?}, {pieces} pieces");
                assert_eq!(
                    bits(&split_pooled),
                    bits(&pooled),
                    "{unit:?}, {pieces} pieces"
                );
                assert_eq!(bits(&split_routes), bits(&routes), "{unit:?}, {pieces}");
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
