//! Resizing of NCHW batches by nearest-neighbour and bilinear interpolation,
//! [`Var::upsample_nearest2d`] and [`Var::upsample_bilinear2d`]
//! (`torch.nn.functional.interpolate` with `mode="nearest"`, and `mode="bilinear"` with
//! `align_corners=False`), and the output size they are asked for, [`Resize`].
//!
//! Both are separable: each output row reads one or two input rows and each output column
//! one or two input columns, with weights ([`Taps`]), so one primitive does both, its
//! backward beside its forward.
//!
//! # Shapes
//! `[N, C, H, W] -> [N, C, OH, OW]`, `OH = H·sh` for a scale factor, or the size asked for.

use crate::autograd::ops::pool::for_planes;
use crate::autograd::ops::{row_major, row_major_mut};
use crate::autograd::tape::Var;
use crate::error::{Error, Result};
use crate::tensor::Elem;
use serde::{Deserialize, Serialize};

/// The output size of a resizing, `[rows, columns]`: whole scale factors or a size, as
/// PyTorch's `scale_factor` and `size` arguments of `nn.Upsample` and `interpolate`.
///
/// # Examples
/// ```
/// use tapegrad::Resize;
/// assert_eq!(Resize::Scale([2, 3]).output_size([4, 5]), Some([8, 15]));
/// assert_eq!(Resize::Size([7, 3]).output_size([4, 5]), Some([7, 3]));
/// assert_eq!(Resize::Scale([0, 2]).output_size([4, 5]), None);
/// assert!(Resize::Size([7, 0]).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resize {
    /// Each side multiplied by a whole factor, `[sh, sw]`: `OH = H·sh`, `OW = W·sw`.
    Scale([usize; 2]),
    /// The output's `[OH, OW]`, larger or smaller than the input.
    Size([usize; 2]),
}

impl Resize {
    /// The output's `[OH, OW]` for an input of `[H, W]`: `[H·sh, W·sw]` or the size itself.
    /// `None` when an input side, a factor or a size is 0, or a side is beyond `usize`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Resize;
    /// assert_eq!(Resize::Scale([2, 2]).output_size([14, 14]), Some([28, 28]));
    /// assert_eq!(Resize::Size([3, 3]).output_size([0, 4]), None); // an empty input
    /// ```
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let out = match *self {
            Resize::Scale([sh, sw]) => [input[0].checked_mul(sh)?, input[1].checked_mul(sw)?],
            Resize::Size(size) => size,
        };
        (!input.contains(&0) && !out.contains(&0)).then_some(out)
    }

    /// Checks that the factors or the size are positive, as the constructors of
    /// [`Upsample`](crate::Upsample) do.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a factor or a size of 0: `upsample: scale factors
    /// must be positive, got [0, 2]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Resize;
    /// assert!(Resize::Scale([2, 2]).check().is_ok());
    /// let err = Resize::Scale([0, 2]).check().unwrap_err();
    /// assert_eq!(err.to_string(), "upsample: scale factors must be positive, got [0, 2]");
    /// ```
    pub fn check(&self) -> Result<()> {
        let (what, values) = match self {
            Resize::Scale(factors) => ("scale factors", factors),
            Resize::Size(size) => ("sizes", size),
        };
        if values.contains(&0) {
            return Err(Error::InvalidArgument {
                op: "upsample",
                message: format!("{what} must be positive, got {values:?}"),
            });
        }
        Ok(())
    }

    /// The step in input pixels between neighbouring outputs along `axis`, from `input`
    /// to `output` pixels, in `f32` as PyTorch's CPU kernels compute it (their
    /// `compute_scales_value`): `1/s` for a factor `s` (taken in `f64`, then rounded), else
    /// `input/output`. The source positions follow PyTorch's to the last bit.
    fn step(&self, axis: usize, input: usize, output: usize) -> f32 {
        match self {
            Resize::Scale(factors) => (1.0 / factors[axis] as f64) as f32,
            Resize::Size(_) => input as f32 / output as f32,
        }
    }

    /// Checks `x`'s shape and the resize for `op`, and returns the output's `[OH, OW]`.
    #[track_caller]
    fn checked_output(&self, op: &str, shape: &[usize]) -> [usize; 2] {
        assert!(
            shape.len() == 4,
            "{op}: expected a 4-D input [N, C, H, W]; x shape {shape:?}"
        );
        if let Err(err) = self.check() {
            panic!("{op}: {err}; x shape {shape:?}")
        }
        let Some(out) = self.output_size([shape[2], shape[3]]) else {
            panic!("{op}: the input or the output would be empty; x shape {shape:?}, {self:?}")
        };
        out
    }
}

/// Where each output row (or column) of a resizing reads: `per` input indices and their
/// weights per output, `index[o·per + t]` and `weight[o·per + t]` for output `o`'s tap `t`.
struct Taps {
    index: Vec<usize>,
    weight: Vec<Elem>,
    per: usize,
}

impl Taps {
    /// Nearest neighbour, as PyTorch's `nearest_idx`: output `o` reads input
    /// `min(⌊o·step⌋, input − 1)` with the product taken in `f32` (for a whole factor `s`
    /// that is `⌊o/s⌋`), and `o` itself or `o/2` when the output is as large or twice as
    /// large as the input.
    fn nearest(input: usize, output: usize, step: f32) -> Taps {
        let source = |o: usize| match output {
            _ if output == input => o,
            _ if output == 2 * input => o / 2,
            _ => ((o as f32 * step).floor() as usize).min(input - 1),
        };
        Taps {
            index: (0..output).map(source).collect(),
            weight: vec![1.0; output],
            per: 1,
        }
    }

    /// Linear interpolation with `align_corners=False`, as PyTorch's
    /// `area_pixel_compute_source_index` and `guard_index_and_lambda`: output `o` sits at
    /// input position `p = max((o + ½)·step − ½, 0)` and reads inputs `i = min(⌊p⌋, input −
    /// 1)` and `min(i + 1, input − 1)` with weights `1 − λ` and `λ`, `λ = p − i` (clamped to
    /// `[0, 1]`).
    fn linear(input: usize, output: usize, step: f32) -> Taps {
        let mut taps = Taps {
            index: Vec::with_capacity(2 * output),
            weight: Vec::with_capacity(2 * output),
            per: 2,
        };
        for o in 0..output {
            let position = ((o as f32 + 0.5) * step - 0.5).max(0.0);
            let first = (position.floor() as usize).min(input - 1);
            let lambda = (position - first as f32).clamp(0.0, 1.0);
            taps.index.extend([first, (first + 1).min(input - 1)]);
            taps.weight.extend([1.0 - lambda, lambda]);
        }
        taps
    }

    /// Output `o`'s taps, `(index, weight)`.
    fn of(&self, o: usize) -> impl Iterator<Item = (usize, Elem)> + '_ {
        let range = o * self.per..(o + 1) * self.per;
        self.index[range.clone()]
            .iter()
            .copied()
            .zip(self.weight[range].iter().copied())
    }
}

impl<'t> Var<'t> {
    /// Nearest-neighbour resizing (`torch.nn.functional.interpolate(x, .., mode="nearest")`,
    /// `nn.Upsample`'s default): each output pixel copies the input pixel it falls in,
    ///
    /// `y[n, c, oy, ox] = x[n, c, ⌊oy·H/OH⌋, ⌊ox·W/OW⌋]`,
    ///
    /// which for whole factors is `x[n, c, ⌊oy/sh⌋, ⌊ox/sw⌋]`: every pixel becomes an
    /// `sh × sw` block. The source index is computed as PyTorch computes it, in `f32`
    /// (`min(⌊oy·(H/OH)⌋, H − 1)` with `H/OH` rounded to `f32` first, `1/sh` for a factor),
    /// so that sizes which are not multiples of the input pick the same pixels as there.
    ///
    /// Backward: `∂L/∂x[n, c, iy, ix]` is the sum of `G = ∂L/∂y` over the outputs that copy
    /// pixel `(iy, ix)` (its `sh × sw` block for whole factors; none, when shrinking skips
    /// it).
    ///
    /// # Shapes
    /// `[N, C, H, W] -> [N, C, OH, OW]` ([`Resize::output_size`]).
    ///
    /// # Panics
    /// If `x` is not 4-D, a factor or a size is 0 (`upsample_nearest2d: upsample: scale
    /// factors must be positive, got [0, 2]; x shape [1, 1, 2, 2]`), or `x` is empty.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Resize, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?);
    /// let y = x.upsample_nearest2d(Resize::Scale([2, 3]));
    /// assert_eq!(y.shape(), [1, 1, 4, 6]);
    /// assert_eq!(
    ///     y.value().as_slice().unwrap(),
    ///     &[
    ///         1.0, 1.0, 1.0, 2.0, 2.0, 2.0, //
    ///         1.0, 1.0, 1.0, 2.0, 2.0, 2.0, //
    ///         3.0, 3.0, 3.0, 4.0, 4.0, 4.0, //
    ///         3.0, 3.0, 3.0, 4.0, 4.0, 4.0,
    ///     ]
    /// );
    /// // each pixel was copied into 2·3 outputs
    /// assert_eq!(y.sum().backward().get(x).unwrap(), tensor::full(&[1, 1, 2, 2], 6.0));
    /// // to 3 columns from 2: output column ox reads ⌊ox·2/3⌋ = 0, 0, 1
    /// let z = x.upsample_nearest2d(Resize::Size([2, 3]));
    /// assert_eq!(z.value().as_slice().unwrap(), &[1.0, 1.0, 2.0, 3.0, 3.0, 4.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn upsample_nearest2d(self, resize: Resize) -> Var<'t> {
        let op = "upsample_nearest2d";
        let shape = self.shape();
        let [oh, ow] = resize.checked_output(op, &shape);
        let (h, w) = (shape[2], shape[3]);
        let rows = Taps::nearest(h, oh, resize.step(0, h, oh));
        let columns = Taps::nearest(w, ow, resize.step(1, w, ow));
        self.resample(op, rows, columns)
    }

    /// Bilinear resizing with `align_corners=False`
    /// (`torch.nn.functional.interpolate(x, .., mode="bilinear")`): each output pixel's
    /// center is mapped into the input, `p = (o + ½)·(H/OH) − ½` (clamped at 0), and the
    /// output is the weighted mean of the 2×2 input pixels around it,
    ///
    /// `y = (1 − λy)·((1 − λx)·x[i, j] + λx·x[i, j + 1]) + λy·((1 − λx)·x[i + 1, j] + λx·x[i + 1, j + 1])`
    ///
    /// with `i = ⌊py⌋`, `λy = py − i` (and `j`, `λx` alike), and an index past the last
    /// row or column reading the last one. Positions and weights are computed in `f32` as
    /// PyTorch's CPU kernel computes them (`H/OH` is `1/sh` for a factor).
    ///
    /// Backward: `G = ∂L/∂y[n, c, oy, ox]` goes back to those four input pixels, times their
    /// weights: `∂L/∂x[i, j] += (1 − λy)·(1 − λx)·G`, and so on.
    ///
    /// # Shapes
    /// `[N, C, H, W] -> [N, C, OH, OW]` ([`Resize::output_size`]).
    ///
    /// # Panics
    /// As [`Var::upsample_nearest2d`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Resize, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![0.0, 4.0], &[1, 1, 1, 2])?);
    /// let y = x.upsample_bilinear2d(Resize::Scale([1, 2]));
    /// // output centers at input positions 0, 0.25, 0.75, 1.25 (read as 1): 0, 1, 3, 4
    /// assert_eq!(y.value().as_slice().unwrap(), &[0.0, 1.0, 3.0, 4.0]);
    /// let g = y.sum().backward();
    /// // x[0] gets weights 1 + 0.75 + 0.25, x[1] gets 0.25 + 0.75 + 1
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[2.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn upsample_bilinear2d(self, resize: Resize) -> Var<'t> {
        let op = "upsample_bilinear2d";
        let shape = self.shape();
        let [oh, ow] = resize.checked_output(op, &shape);
        let (h, w) = (shape[2], shape[3]);
        let rows = Taps::linear(h, oh, resize.step(0, h, oh));
        let columns = Taps::linear(w, ow, resize.step(1, w, ow));
        self.resample(op, rows, columns)
    }

    /// Records the separable resizing of every `[H, W]` plane by `rows` and `columns`, as
    /// `op`: `y[oy, ox] = Σ_a wr_a·(Σ_b wc_b·x[ir_a, ic_b])` over output `oy`'s row taps
    /// `(ir_a, wr_a)` and output `ox`'s column taps `(ic_b, wc_b)`, each sum starting from
    /// its first term (so that one tap of weight 1 copies its input, bit for bit); the
    /// backward adds `wr_a·wc_b·G[oy, ox]` into `∂L/∂x[ir_a, ic_b]`.
    fn resample(self, op: &'static str, rows: Taps, columns: Taps) -> Var<'t> {
        let x = self.contiguous();
        let tape = x.tape();
        let value = x.data();
        let shape = value.shape().to_vec();
        let (oh, ow) = (
            rows.index.len() / rows.per,
            columns.index.len() / columns.per,
        );
        let (plane_in, plane_out) = (shape[2] * shape[3], oh * ow);
        let w = shape[3];
        let mut out = tape.scratch(&[shape[0], shape[1], oh, ow], false);
        for_planes(
            row_major(&value),
            plane_in,
            row_major_mut(&mut out),
            plane_out,
            |x, y| {
                for (oy, y_row) in y.chunks_exact_mut(ow).enumerate() {
                    for (ox, y) in y_row.iter_mut().enumerate() {
                        let row_sum = |row: usize| {
                            let mut taps = columns.of(ox).map(|(c, wc)| wc * x[row * w + c]);
                            let first = taps.next().expect("internal error: a tap per output");
                            taps.fold(first, |sum, term| sum + term)
                        };
                        let mut taps = rows.of(oy).map(|(r, wr)| wr * row_sum(r));
                        let first = taps.next().expect("internal error: a tap per output");
                        *y = taps.fold(first, |sum, term| sum + term);
                    }
                }
            },
        );
        tape.record(op, &[x], out, move |b| {
            let copied = (!b.grad.is_standard_layout()).then(|| b.tape.copy(b.grad.view()));
            let grad = copied.as_ref().unwrap_or(b.grad);
            let mut dx = b.tape.zeros(&shape);
            for_planes(
                row_major(grad),
                plane_out,
                row_major_mut(&mut dx),
                plane_in,
                |g, dx| {
                    for (oy, g_row) in g.chunks_exact(ow).enumerate() {
                        for (ox, &g) in g_row.iter().enumerate() {
                            for (r, wr) in rows.of(oy) {
                                for (c, wc) in columns.of(ox) {
                                    dx[r * w + c] += wr * wc * g;
                                }
                            }
                        }
                    }
                },
            );
            if let Some(copied) = copied {
                b.tape.reuse(copied);
            }
            [Some(dx), None]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::tensor::Tensor;
    use crate::{Tape, gradcheck};
    use Resize::{Scale, Size};

    /// (input shape, resize) of the cases checked: whole factors, 1 (the identity), a size
    /// that is no multiple, a smaller size, a batch of 1, one row.
    fn cases() -> Vec<([usize; 4], Resize)> {
        vec![
            ([2, 3, 3, 4], Scale([2, 2])),
            ([1, 2, 3, 2], Scale([3, 1])),
            ([2, 1, 2, 3], Scale([1, 1])),
            ([1, 2, 3, 2], Size([5, 7])),
            ([2, 2, 5, 7], Size([2, 3])),
            ([1, 1, 1, 4], Size([3, 6])),
        ]
    }

    #[test]
    fn gradcheck_nearest_and_bilinear() {
        for (k, (shape, resize)) in cases().into_iter().enumerate() {
            let x = [random(&shape, k as u64)];
            gradcheck(|v| v[0].upsample_nearest2d(resize), &x)
                .unwrap_or_else(|e| panic!("nearest, case {k}: {e}"));
            gradcheck(|v| v[0].upsample_bilinear2d(resize), &x)
                .unwrap_or_else(|e| panic!("bilinear, case {k}: {e}"));
        }
    }

    #[test]
    fn hand_derived_gradients() {
        // nearest to 3 columns from 2 reads columns 0, 0, 1 (⌊ox·2/3⌋): y = [a, a, b], so
        // with L = Σ c ⊙ y, c = [1, 2, 3]: ∂L/∂a = 1 + 2, ∂L/∂b = 3
        let tape = Tape::new();
        let x = tape.leaf(t(&[1, 1, 1, 2], &[5., 7.]));
        let c = tape.constant(t(&[1, 1, 1, 3], &[1., 2., 3.]));
        let y = x.upsample_nearest2d(Size([1, 3]));
        assert_eq!(y.value(), t(&[1, 1, 1, 3], &[5., 5., 7.]));
        let g = (y * c).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[1, 1, 1, 2], &[3., 3.]));
        // bilinear by 2 along a row [a, b]: output centers at 0, 0.25, 0.75, 1.25 (read as
        // 1), y = [a, 0.75a + 0.25b, 0.25a + 0.75b, b]; with c = [1, 2, 3, 4]:
        // ∂L/∂a = 1 + 1.5 + 0.75 = 3.25, ∂L/∂b = 0.5 + 2.25 + 4 = 6.75
        let c = tape.constant(t(&[1, 1, 1, 4], &[1., 2., 3., 4.]));
        let y = x.upsample_bilinear2d(Scale([1, 2]));
        assert_eq!(y.value(), t(&[1, 1, 1, 4], &[5., 5.5, 6.5, 7.]));
        let g = (y * c).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[1, 1, 1, 2], &[3.25, 6.75]));
    }

    #[test]
    fn values_and_source_pixels_are_pytorchs() {
        // Made with PyTorch 2.15 (CPU) by the script below (its lines are the tables here):
        // import numpy as np
        // import torch
        // F = torch.nn.functional
        // def rust(t):
        //     values = t.flatten().numpy()
        //     return "&[" + ", ".join(np.format_float_positional(v, unique=True, trim="0") for v in values) + "]"
        // x = torch.tensor([((k * 7 + 3) % 11) * 0.25 - 1.25 for k in range(24)]).reshape(1, 2, 3, 4)
        // for mode in ["nearest", "bilinear"]:
        //     for kw in [dict(scale_factor=(2, 3)), dict(size=(5, 7)), dict(size=(2, 3))]:
        //         print(mode, kw, rust(F.interpolate(x, mode=mode, **kw)))
        // for i, o in [(3, 9), (26, 22), (39, 33), (5, 7)]:
        //     row = torch.arange(float(i)).reshape(1, 1, 1, i)
        //     print(i, o, F.interpolate(row, size=(1, o))[0, 0, 0].long().tolist())
        let x = Tensor::from_shape_fn(ndarray::IxDyn(&[1, 2, 3, 4]), |i| {
            let k = ((i[1] * 3 + i[2]) * 4 + i[3]) as f32;
            (k * 7.0 + 3.0) % 11.0 * 0.25 - 1.25
        });
        let tape = Tape::new();
        let xv = tape.constant(x);
        for (resize, expected) in nearest() {
            let y = xv.upsample_nearest2d(resize).value();
            assert_eq!(y.as_slice().unwrap(), expected, "{resize:?}");
        }
        for (resize, expected) in bilinear() {
            let y = xv.upsample_bilinear2d(resize).value();
            let close = y.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6);
            assert!(close && y.len() == expected.len(), "{resize:?}: {y}");
        }
        // sizes where ⌊o·in/out⌋ in exact arithmetic picks other pixels than PyTorch's f32
        // product does (26 → 22: output 11 reads 12, not 13)
        for (input, output, expected) in sources() {
            let taps = Taps::nearest(input, output, Size([1, output]).step(1, input, output));
            assert_eq!(taps.index, expected, "{input} -> {output}");
        }
    }

    fn nearest() -> [(Resize, &'static [f32]); 3] {
        [
            (
                Scale([2, 3]),
                &[
                    -0.5, -0.5, -0.5, 1.25, 1.25, 1.25, 0.25, 0.25, 0.25, -0.75, -0.75, -0.75,
                    -0.5, -0.5, -0.5, 1.25, 1.25, 1.25, 0.25, 0.25, 0.25, -0.75, -0.75, -0.75, 1.0,
                    1.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0,
                    0.0, 0.0, 0.0, -1.0, -1.0, -1.0, 0.75, 0.75, 0.75, -0.25, -0.25, -0.25, -1.25,
                    -1.25, -1.25, 0.5, 0.5, 0.5, -0.5, -0.5, -0.5, -0.25, -0.25, -0.25, -1.25,
                    -1.25, -1.25, 0.5, 0.5, 0.5, -0.5, -0.5, -0.5, 1.25, 1.25, 1.25, 0.25, 0.25,
                    0.25, -0.75, -0.75, -0.75, 1.0, 1.0, 1.0, 1.25, 1.25, 1.25, 0.25, 0.25, 0.25,
                    -0.75, -0.75, -0.75, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, 0.75,
                    0.75, 0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, 0.75, 0.75,
                    0.75, -0.25, -0.25, -0.25, -1.25, -1.25, -1.25, 0.5, 0.5, 0.5, -0.5, -0.5,
                    -0.5, 1.25, 1.25, 1.25, -1.25, -1.25, -1.25, 0.5, 0.5, 0.5, -0.5, -0.5, -0.5,
                    1.25, 1.25, 1.25,
                ],
            ),
            (
                Size([5, 7]),
                &[
                    -0.5, -0.5, 1.25, 1.25, 0.25, 0.25, -0.75, -0.5, -0.5, 1.25, 1.25, 0.25, 0.25,
                    -0.75, 1.0, 1.0, 0.0, 0.0, -1.0, -1.0, 0.75, 1.0, 1.0, 0.0, 0.0, -1.0, -1.0,
                    0.75, -0.25, -0.25, -1.25, -1.25, 0.5, 0.5, -0.5, 1.25, 1.25, 0.25, 0.25,
                    -0.75, -0.75, 1.0, 1.25, 1.25, 0.25, 0.25, -0.75, -0.75, 1.0, 0.0, 0.0, -1.0,
                    -1.0, 0.75, 0.75, -0.25, 0.0, 0.0, -1.0, -1.0, 0.75, 0.75, -0.25, -1.25, -1.25,
                    0.5, 0.5, -0.5, -0.5, 1.25,
                ],
            ),
            (
                Size([2, 3]),
                &[
                    -0.5, 1.25, 0.25, 1.0, 0.0, -1.0, 1.25, 0.25, -0.75, 0.0, -1.0, 0.75,
                ],
            ),
        ]
    }

    fn bilinear() -> [(Resize, &'static [f32]); 3] {
        [
            (
                Scale([2, 3]),
                &[
                    -0.5,
                    -0.49999997,
                    0.0833334,
                    0.66666675,
                    1.25,
                    0.9166666,
                    0.58333325,
                    0.25,
                    -0.08333349,
                    -0.41666675,
                    -0.75,
                    -0.75,
                    -0.125,
                    -0.125,
                    0.2291667,
                    0.5833333,
                    0.9375,
                    0.6041666,
                    0.27083325,
                    -0.0625,
                    -0.16666672,
                    -0.27083337,
                    -0.375,
                    -0.375,
                    0.625,
                    0.625,
                    0.5208333,
                    0.4166667,
                    0.3125,
                    -0.020833373,
                    -0.35416675,
                    -0.6875,
                    -0.33333316,
                    0.020833418,
                    0.375,
                    0.375,
                    0.6875,
                    0.6875,
                    0.35416663,
                    0.020833317,
                    -0.3125,
                    -0.4166667,
                    -0.5208334,
                    -0.625,
                    -0.27083316,
                    0.08333343,
                    0.4375,
                    0.4375,
                    0.0625,
                    0.062499985,
                    -0.27083337,
                    -0.6041667,
                    -0.9375,
                    -0.5833333,
                    -0.2291666,
                    0.125,
                    0.020833284,
                    -0.08333336,
                    -0.1875,
                    -0.1875,
                    -0.25,
                    -0.25,
                    -0.5833334,
                    -0.9166666,
                    -1.25,
                    -0.66666657,
                    -0.083333194,
                    0.5,
                    0.16666651,
                    -0.16666675,
                    -0.5,
                    -0.5,
                    1.25,
                    1.25,
                    0.9166666,
                    0.5833333,
                    0.25,
                    -0.08333337,
                    -0.41666675,
                    -0.75,
                    -0.16666639,
                    0.4166668,
                    1.0,
                    1.0,
                    0.9375,
                    0.9375,
                    0.6041666,
                    0.2708333,
                    -0.0625,
                    -0.16666669,
                    -0.27083337,
                    -0.375,
                    -0.020833164,
                    0.33333343,
                    0.6875,
                    0.6875,
                    0.3125,
                    0.3125,
                    -0.020833373,
                    -0.3541667,
                    -0.6875,
                    -0.33333328,
                    0.020833418,
                    0.375,
                    0.27083328,
                    0.16666664,
                    0.0625,
                    0.0625,
                    -0.3125,
                    -0.3125,
                    -0.4166667,
                    -0.5208334,
                    -0.625,
                    -0.27083328,
                    0.08333343,
                    0.4375,
                    0.33333328,
                    0.22916664,
                    0.125,
                    0.125,
                    -0.9375,
                    -0.9375,
                    -0.5833333,
                    -0.22916666,
                    0.125,
                    0.020833328,
                    -0.08333336,
                    -0.1875,
                    0.16666684,
                    0.52083343,
                    0.875,
                    0.875,
                    -1.25,
                    -1.25,
                    -0.66666657,
                    -0.083333306,
                    0.5,
                    0.16666663,
                    -0.16666675,
                    -0.5,
                    0.08333361,
                    0.6666668,
                    1.25,
                    1.25,
                ],
            ),
            (
                Size([5, 7]),
                &[
                    -0.5,
                    0.12500009,
                    1.1250001,
                    0.7499999,
                    0.17857122,
                    -0.3928573,
                    -0.75,
                    0.10000005,
                    0.3321429,
                    0.7035714,
                    0.24999987,
                    -0.24285717,
                    -0.18571423,
                    -0.14999993,
                    1.0,
                    0.6428571,
                    0.07142854,
                    -0.5000001,
                    -0.87499964,
                    0.1250003,
                    0.75,
                    0.24999982,
                    -0.10714306,
                    -0.67857164,
                    -0.42499992,
                    -0.092856966,
                    -0.0357143,
                    -0.00000017881393,
                    -0.25,
                    -0.60714287,
                    -1.1785713,
                    -0.37499982,
                    0.42857122,
                    -0.14285731,
                    -0.5,
                    1.25,
                    0.8928571,
                    0.32142854,
                    -0.25000012,
                    -0.62499964,
                    0.3750003,
                    1.0,
                    0.74999994,
                    0.39285704,
                    -0.17857149,
                    -0.19999997,
                    -0.10357122,
                    0.26785725,
                    0.49999994,
                    0.0,
                    -0.3571429,
                    -0.92857146,
                    -0.12499979,
                    0.6785712,
                    0.10714269,
                    -0.25,
                    -0.7500002,
                    -0.5178571,
                    -0.14642835,
                    -0.049999967,
                    0.046428572,
                    0.41785732,
                    0.6500002,
                    -1.25,
                    -0.6249999,
                    0.37500006,
                    -0.00000011175871,
                    -0.37499964,
                    0.6250003,
                    1.25,
                ],
            ),
            (
                Size([2, 3]),
                &[
                    0.052083343,
                    0.4375,
                    -0.32291672,
                    -0.10416669,
                    -0.40625,
                    -0.13541672,
                    0.7708333,
                    -0.21875,
                    0.51041687,
                    -0.7604167,
                    -0.03125,
                    0.69791687,
                ],
            ),
        ]
    }

    fn sources() -> [(usize, usize, &'static [usize]); 4] {
        [
            (3, 9, &[0, 0, 0, 1, 1, 1, 2, 2, 2]),
            (
                26,
                22,
                &[
                    0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24,
                ],
            ),
            (
                39,
                33,
                &[
                    0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24,
                    25, 27, 28, 29, 30, 31, 33, 34, 35, 36, 37,
                ],
            ),
            (5, 7, &[0, 0, 1, 2, 2, 3, 4]),
        ]
    }

    #[test]
    fn whole_factors_copy_bit_for_bit_and_factor_one_is_the_identity() {
        let x = random(&[2, 3, 4, 5], 7);
        let tape = Tape::new();
        let xv = tape.constant(x.clone());
        let y = xv.upsample_nearest2d(Scale([3, 2])).value();
        for ((n, c, oy, ox), &v) in y
            .view()
            .into_dimensionality::<ndarray::Ix4>()
            .unwrap()
            .indexed_iter()
        {
            assert_eq!(v.to_bits(), x[[n, c, oy / 3, ox / 2]].to_bits());
        }
        assert_eq!(xv.upsample_bilinear2d(Scale([1, 1])).value(), x);
        assert_eq!(xv.upsample_nearest2d(Size([4, 5])).value(), x);
    }

    #[test]
    #[should_panic(
        expected = "upsample_nearest2d: expected a 4-D input [N, C, H, W]; x shape [2, 3]"
    )]
    fn a_flat_input_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .upsample_nearest2d(Scale([2, 2]));
    }

    #[test]
    #[should_panic(
        expected = "upsample_bilinear2d: upsample: scale factors must be positive, got [0, 2]; x shape [1, 1, 2, 2]"
    )]
    fn a_zero_factor_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[1, 1, 2, 2], 0))
            .upsample_bilinear2d(Scale([0, 2]));
    }
}
