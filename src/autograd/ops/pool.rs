//! 2-D max and average pooling of NCHW batches, [`Var::max_pool2d`] and
//! [`Var::avg_pool2d`] (`torch.nn.functional.max_pool2d` / `avg_pool2d`), each with its
//! backward beside its forward.
//!
//! # Shapes
//! `[N, C, H, W] -> [N, C, OH, OW]`, `OH = ⌊(H + 2·ph − kh)/sh⌋ + 1` (and `OW` alike).

use crate::autograd::ops::conv::output_len;
use crate::autograd::tape::Var;
use crate::kernels::max_pool::{self, first_max_of_4};
use crate::tensor::Elem;
use crate::threads::parallel;
use rayon::prelude::*;

/// The sizes of one pooling, checked.
#[derive(Debug, Clone, Copy)]
struct Pooling {
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl Pooling {
    /// Checks a pooling's input shape and settings as PyTorch does.
    #[track_caller]
    fn new(
        op: &str,
        shape: &[usize],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        assert!(
            shape.len() == 4,
            "{op}: expected a 4-D input [N, C, H, W]; x shape {shape:?}"
        );
        assert!(
            kernel.iter().all(|&k| k > 0) && stride.iter().all(|&s| s > 0),
            "{op}: kernel and stride must be positive; kernel {kernel:?}, stride {stride:?}"
        );
        assert!(
            padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2,
            "{op}: padding must be at most half the kernel; kernel {kernel:?}, padding {padding:?}"
        );
        let len = |a: usize| output_len(shape[2 + a], kernel[a], stride[a], padding[a], 1);
        let (Some(oh), Some(ow)) = (len(0), len(1)) else {
            panic!(
                "{op}: the kernel is larger than the padded image; x shape {shape:?}, \
                 kernel {kernel:?}, padding {padding:?}"
            )
        };
        Pooling {
            h: shape[2],
            w: shape[3],
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh,
            ow,
        }
    }

    /// The rows and columns of output `(oy, ox)`'s window that lie inside the image.
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (y, x) = (oy * self.sh, ox * self.sw);
        let rows = y.saturating_sub(self.ph)..(y + self.kh - self.ph).min(self.h);
        let cols = x.saturating_sub(self.pw)..(x + self.kw - self.pw).min(self.w);
        (rows, cols)
    }

    /// The index in its plane of the first maximum of output `(oy, ox)`'s window in
    /// row-major order; a NaN counts as a maximum, as in PyTorch's kernel
    /// (`val > maxval || isnan(val)`).
    fn argmax(&self, plane: &[Elem], oy: usize, ox: usize) -> usize {
        let (rows, cols) = self.window(oy, ox);
        let mut best = rows.start * self.w + cols.start;
        let mut max = Elem::NEG_INFINITY;
        for y in rows {
            for x in cols.clone() {
                let v = plane[y * self.w + x];
                if v > max || v.is_nan() {
                    (best, max) = (y * self.w + x, v);
                }
            }
        }
        best
    }

    /// Whether this is the common non-overlapping 2×2 window with stride 2 and no padding,
    /// which has a faster path.
    fn is_2x2(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (2, 2, 2, 2, 0, 0)
    }

    /// [`Pooling::argmax`] of every output of a plane, in order, passed to `f(output, index)`.
    fn argmaxes(&self, plane: &[Elem], mut f: impl FnMut(usize, usize)) {
        if !self.is_2x2() {
            for i in 0..self.plane_out() {
                f(i, self.argmax(plane, i / self.ow, i % self.ow));
            }
            return;
        }
        for oy in 0..self.oh {
            let top = 2 * oy * self.w;
            for ox in 0..self.ow {
                let at = top + 2 * ox;
                let window = [at, at + 1, at + self.w, at + self.w + 1];
                f(
                    oy * self.ow + ox,
                    window[first_max_of_4(window.map(|i| plane[i]))],
                );
            }
        }
    }

    fn plane_in(&self) -> usize {
        self.h * self.w
    }

    fn plane_out(&self) -> usize {
        self.oh * self.ow
    }
}

/// Runs `f(input plane, output plane)` over the planes of a batch, on several threads when
/// it is large (planes are independent, so the split changes no number).
pub(super) fn for_planes(
    input: &[Elem],
    in_len: usize,
    output: &mut [Elem],
    out_len: usize,
    f: impl Fn(&[Elem], &mut [Elem]) + Sync,
) {
    if parallel(input.len()) {
        let pairs = input.par_chunks(in_len).zip(output.par_chunks_mut(out_len));
        pairs.for_each(|(x, y)| f(x, y));
    } else {
        let pairs = input.chunks(in_len).zip(output.chunks_mut(out_len));
        pairs.for_each(|(x, y)| f(x, y));
    }
}

impl<'t> Var<'t> {
    /// Max pooling (`torch.nn.functional.max_pool2d(x, kernel, stride, padding)`): each
    /// output is the largest input in its `kh × kw` window,
    /// `y[n, c, oy, ox] = max_{i, j} x[n, c, oy·sh + i − ph, ox·sw + j − pw]`, where padding
    /// counts as `−∞` (it is never the maximum).
    ///
    /// Backward: `G[n, c, oy, ox]` goes to the window's maximal input, and on a tie to the
    /// **first** one in row-major order, as PyTorch's CPU kernel picks it; a NaN in a window
    /// is its maximum (and the output NaN). Overlapping windows add their gradients.
    ///
    /// # Shapes
    /// `[N, C, H, W] -> [N, C, OH, OW]`, `OH = ⌊(H + 2·ph − kh)/sh⌋ + 1`, `OW` alike.
    ///
    /// # Panics
    /// If `x` is not 4-D, a kernel side or stride is 0, the padding is more than half the
    /// kernel (PyTorch's rule), or the kernel is larger than the padded image, e.g.
    /// `max_pool2d: expected a 4-D input [N, C, H, W]; x shape [2, 8]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(
    ///     vec![1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 7.0, 7.0, 0.0, 1.0, 1.0, 1.0, 9.0, 2.0, 1.0, 8.0],
    ///     &[1, 1, 4, 4],
    /// )?);
    /// let y = x.max_pool2d([2, 2], [2, 2], [0, 0]);
    /// assert_eq!(y.value().as_slice().unwrap(), &[5.0, 7.0, 9.0, 8.0]);
    /// let g = y.sum().backward();
    /// // the tie 7, 7 sends the gradient to the first one
    /// assert_eq!(
    ///     g.get(x).unwrap().as_slice().unwrap(),
    ///     &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    /// );
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn max_pool2d(
        self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Var<'t> {
        let pool = Pooling::new("max_pool2d", &self.shape(), kernel, stride, padding);
        self.record_max_pool("max_pool2d", pool, false)
    }

    /// `x.relu().max_pool2d([2, 2], [2, 2], [0, 0])` as one op, with the same values and
    /// gradients bit for bit (the maximum of the rectified window is the rectified maximum),
    /// without the ReLU's passes over the full-size input and gradient. [`Sequential`]
    /// runs a [`Relu`] layer followed by a 2×2 [`MaxPool2d`] this way.
    ///
    /// # Panics
    /// If `x` is not 4-D with an even height and width (an internal error: callers check
    /// with [`Var::fits_relu_max_pool_2x2`]).
    ///
    /// [`Sequential`]: crate::Sequential
    /// [`Relu`]: crate::Relu
    /// [`MaxPool2d`]: crate::MaxPool2d
    pub(crate) fn relu_max_pool_2x2(self) -> Var<'t> {
        assert!(
            self.fits_relu_max_pool_2x2(),
            "internal error: relu_max_pool_2x2 on shape {:?}",
            self.shape()
        );
        let pool = Pooling::new("relu_max_pool2d", &self.shape(), [2, 2], [2, 2], [0, 0]);
        self.record_max_pool("relu_max_pool2d", pool, true)
    }

    /// Whether [`Var::relu_max_pool_2x2`] takes this input: 4-D, with an even height and
    /// width, so that the 2×2 windows tile each plane.
    pub(crate) fn fits_relu_max_pool_2x2(&self) -> bool {
        matches!(self.shape()[..], [_, _, h, w] if h >= 2 && w >= 2 && h % 2 == 0 && w % 2 == 0)
    }

    /// Records max pooling by `pool` on the tape as `op`, with a ReLU before it when `relu`
    /// (only for 2×2 windows that tile the planes).
    fn record_max_pool(self, op: &'static str, pool: Pooling, relu: bool) -> Var<'t> {
        let shape = self.shape();
        // 2×2 windows that tile the image write every element of dx; others add into 0s
        let tiled = pool.is_2x2() && pool.h.is_multiple_of(2) && pool.w.is_multiple_of(2);
        assert!(
            !relu || tiled,
            "internal error: {op} needs 2×2 windows that tile"
        );
        let x = self.contiguous();
        let tape = x.tape();
        let value = x.data();
        let mut out = tape.scratch(&[shape[0], shape[1], pool.oh, pool.ow], false);
        let input = value.as_slice().expect("internal error: row-major input");
        let output = out
            .as_slice_mut()
            .expect("internal error: fresh output is row-major");
        for_planes(
            input,
            pool.plane_in(),
            output,
            pool.plane_out(),
            |x, y| match (pool.is_2x2(), relu) {
                (true, true) => max_pool::forward_2x2::<true>(x, pool.w, y, pool.ow),
                (true, false) => max_pool::forward_2x2::<false>(x, pool.w, y, pool.ow),
                (false, _) => pool.argmaxes(x, |i, at| y[i] = x[at]),
            },
        );
        tape.record(op, &[x], out, move |b| {
            let mut dx = match tiled {
                true => b.tape.scratch(b.inputs[0].shape(), false),
                false => b.tape.zeros(b.inputs[0].shape()),
            };
            let input = b.inputs[0]
                .as_slice()
                .expect("internal error: row-major input");
            let copied = (!b.grad.is_standard_layout()).then(|| b.tape.copy(b.grad.view()));
            let grad = copied.as_ref().unwrap_or(b.grad).as_slice();
            let grad = grad.expect("internal error: row-major gradient");
            let dxs = dx
                .as_slice_mut()
                .expect("internal error: fresh dx is row-major");
            let (in_len, out_len) = (pool.plane_in(), pool.plane_out());
            let planes = input.chunks(in_len).zip(grad.chunks(out_len));
            for ((x, g), dx) in planes.zip(dxs.chunks_mut(in_len)) {
                if tiled && relu {
                    max_pool::backward_2x2::<true>(x, pool.w, g, dx);
                } else if tiled {
                    max_pool::backward_2x2::<false>(x, pool.w, g, dx);
                } else {
                    pool.argmaxes(x, |i, at| dx[at] += g[i]);
                }
            }
            if let Some(copied) = copied {
                b.tape.reuse(copied);
            }
            [Some(dx), None]
        })
    }

    /// Average pooling (`torch.nn.functional.avg_pool2d(x, kernel, stride, padding)` with
    /// PyTorch's defaults `count_include_pad=True`, `ceil_mode=False`): each output is the
    /// mean of its `kh × kw` window, padding counted as zeros,
    /// `y[n, c, oy, ox] = (1/(kh·kw)) · Σ_{i, j} x[n, c, oy·sh + i − ph, ox·sw + j − pw]`.
    ///
    /// Backward: every input of the window gets `G[n, c, oy, ox]/(kh·kw)`; overlapping
    /// windows add their gradients.
    ///
    /// # Shapes
    /// `[N, C, H, W] -> [N, C, OH, OW]`, `OH = ⌊(H + 2·ph − kh)/sh⌋ + 1`, `OW` alike.
    ///
    /// # Panics
    /// As [`Var::max_pool2d`] (with `avg_pool2d:` in the message).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?);
    /// assert_eq!(x.avg_pool2d([2, 2], [2, 2], [0, 0]).item(), 2.5);
    /// // one zero of padding: the corner window holds x[0, 0] and three zeros
    /// let padded = x.avg_pool2d([2, 2], [2, 2], [1, 1]);
    /// assert_eq!(padded.value().as_slice().unwrap(), &[0.25, 0.5, 0.75, 1.0]);
    /// let g = padded.sum().backward();
    /// assert_eq!(g.get(x).unwrap(), tensor::full(&[1, 1, 2, 2], 0.25));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn avg_pool2d(
        self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Var<'t> {
        let shape = self.shape();
        let pool = Pooling::new("avg_pool2d", &shape, kernel, stride, padding);
        let scale = 1.0 / (pool.kh * pool.kw) as Elem;
        let x = self.contiguous();
        let tape = x.tape();
        let value = x.data();
        let mut out = tape.scratch(&[shape[0], shape[1], pool.oh, pool.ow], false);
        let input = value.as_slice().expect("internal error: row-major input");
        let output = out
            .as_slice_mut()
            .expect("internal error: fresh output is row-major");
        for_planes(input, pool.plane_in(), output, pool.plane_out(), |x, y| {
            for (oy, row) in y.chunks_exact_mut(pool.ow).enumerate() {
                for (ox, y) in row.iter_mut().enumerate() {
                    let (rows, cols) = pool.window(oy, ox);
                    let sum: Elem = rows
                        .map(|r| {
                            x[r * pool.w + cols.start..r * pool.w + cols.end]
                                .iter()
                                .sum::<Elem>()
                        })
                        .sum();
                    *y = sum * scale;
                }
            }
        });
        tape.record("avg_pool2d", &[x], out, move |b| {
            let mut dx = b.tape.zeros(b.inputs[0].shape());
            let copied = (!b.grad.is_standard_layout()).then(|| b.tape.copy(b.grad.view()));
            let grad = copied.as_ref().unwrap_or(b.grad).as_slice();
            let grad = grad.expect("internal error: row-major gradient");
            let dxs = dx
                .as_slice_mut()
                .expect("internal error: fresh dx is row-major");
            let (in_len, out_len) = (pool.plane_in(), pool.plane_out());
            for (g, dx) in grad.chunks(out_len).zip(dxs.chunks_mut(in_len)) {
                for (i, &g) in g.iter().enumerate() {
                    let (rows, cols) = pool.window(i / pool.ow, i % pool.ow);
                    for r in rows {
                        let dst = &mut dx[r * pool.w + cols.start..r * pool.w + cols.end];
                        dst.iter_mut().for_each(|d| *d += g * scale);
                    }
                }
            }
            if let Some(copied) = copied {
                b.tape.reuse(copied);
            }
            [Some(dx), None]
        })
    }

    /// This value in row-major order: itself when it already is, else a copy (a
    /// [`Var::reshape`] to its own shape).
    pub(crate) fn contiguous(self) -> Var<'t> {
        match self.data().is_standard_layout() {
            true => self,
            false => self.reshape(&self.shape()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::tensor::Tensor;
    use crate::{Tape, gradcheck};
    use ndarray::{Ix4, IxDyn};

    /// The definitions, loop by loop: `(max, avg)`.
    fn naive(x: &Tensor, k: [usize; 2], s: [usize; 2], p: [usize; 2]) -> (Tensor, Tensor) {
        let sh = x.shape();
        let oh = (sh[2] + 2 * p[0] - k[0]) / s[0] + 1;
        let ow = (sh[3] + 2 * p[1] - k[1]) / s[1] + 1;
        let mut max = Tensor::zeros(IxDyn(&[sh[0], sh[1], oh, ow]));
        let mut avg = max.clone();
        let mut avg4 = avg.view_mut().into_dimensionality::<Ix4>().unwrap();
        for ((n, c, oy, ox), m) in max
            .view_mut()
            .into_dimensionality::<Ix4>()
            .unwrap()
            .indexed_iter_mut()
        {
            let (mut best, mut sum) = (f32::NEG_INFINITY, 0.0);
            for i in 0..k[0] {
                for j in 0..k[1] {
                    let y = (oy * s[0] + i) as isize - p[0] as isize;
                    let xx = (ox * s[1] + j) as isize - p[1] as isize;
                    if y >= 0 && xx >= 0 && (y as usize) < sh[2] && (xx as usize) < sh[3] {
                        let v = x[[n, c, y as usize, xx as usize]];
                        best = best.max(v);
                        sum += v;
                    }
                }
            }
            *m = best;
            avg4[[n, c, oy, ox]] = sum / (k[0] * k[1]) as f32;
        }
        (max, avg)
    }

    /// (x shape, kernel, stride, padding): W2's 2×2/2, overlapping, padded, odd sizes,
    /// rectangular windows, a batch of 1.
    type Case = ([usize; 4], [usize; 2], [usize; 2], [usize; 2]);
    const CASES: [Case; 5] = [
        ([2, 3, 4, 6], [2, 2], [2, 2], [0, 0]),
        ([1, 2, 5, 5], [3, 3], [1, 1], [1, 1]),
        ([2, 1, 7, 5], [3, 3], [2, 2], [1, 1]),
        ([1, 2, 5, 7], [2, 3], [2, 1], [1, 0]),
        ([1, 1, 3, 3], [3, 3], [3, 3], [0, 0]),
    ];

    #[test]
    fn forward_matches_the_definitions() {
        for (case, (shape, k, s, p)) in CASES.into_iter().enumerate() {
            let x = random(&shape, case as u64);
            let (max, avg) = naive(&x, k, s, p);
            let tape = Tape::new();
            let xv = tape.constant(x);
            assert_eq!(xv.max_pool2d(k, s, p).value(), max, "case {case}");
            let diff = (&xv.avg_pool2d(k, s, p).value() - &avg).fold(0.0f32, |m, d| m.max(d.abs()));
            assert!(diff < 1e-6, "case {case}: {diff}");
        }
    }

    #[test]
    fn gradcheck_max_and_avg_pooling() {
        for (case, (shape, k, s, p)) in CASES.into_iter().enumerate() {
            // distinct values far apart (a shuffled ramp), so no window has a near tie
            let n: usize = shape.iter().product();
            let order = random(&[n], 40 + case as u64);
            let mut ranks: Vec<usize> = (0..n).collect();
            ranks.sort_by(|&a, &b| order[[a]].total_cmp(&order[[b]]));
            let mut values = vec![0.0; n];
            for (rank, &i) in ranks.iter().enumerate() {
                values[i] = rank as f32 * 0.1 - n as f32 * 0.05;
            }
            let x = Tensor::from_shape_vec(IxDyn(&shape), values).unwrap();
            gradcheck(|v| v[0].max_pool2d(k, s, p), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("max, case {case}: {e}"));
            gradcheck(|v| v[0].avg_pool2d(k, s, p), &[random(&shape, case as u64)])
                .unwrap_or_else(|e| panic!("avg, case {case}: {e}"));
        }
    }

    #[test]
    fn max_gradient_goes_to_the_first_maximum_and_nan_propagates() {
        let tape = Tape::new();
        // one 2×2 window [[3, 3], [3, 1]]: three tied maxima, the first gets G
        let x = tape.leaf(t(&[1, 1, 2, 2], &[3., 3., 3., 1.]));
        let g = x.max_pool2d([2, 2], [2, 2], [0, 0]).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[1, 1, 2, 2], &[1., 0., 0., 0.]));
        let y = tape.constant(t(&[1, 1, 2, 2], &[3., f32::NAN, 5., 1.]));
        assert!(y.max_pool2d([2, 2], [2, 2], [0, 0]).item().is_nan());
        // overlapping windows (stride 1) that share a maximum add up: ∂/∂x = number of windows
        let z = tape.leaf(t(&[1, 1, 3, 3], &[0., 0., 0., 0., 9., 0., 0., 0., 0.]));
        let g = z.max_pool2d([2, 2], [1, 1], [0, 0]).sum().backward();
        assert_eq!(g.get(z).unwrap()[[0, 0, 1, 1]], 4.0);
    }

    #[test]
    #[should_panic(expected = "max_pool2d: expected a 4-D input [N, C, H, W]; x shape [2, 8]")]
    fn max_pool_of_rows_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 8], 0))
            .max_pool2d([2, 2], [2, 2], [0, 0]);
    }

    #[test]
    #[should_panic(expected = "avg_pool2d: padding must be at most half the kernel")]
    fn avg_pool_with_too_much_padding_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[1, 1, 4, 4], 0))
            .avg_pool2d([2, 2], [2, 2], [2, 2]);
    }
}
