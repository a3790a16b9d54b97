//! 2-D transposed convolution of NCHW batches, [`Var::conv_transpose2d`]
//! (`torch.nn.functional.conv_transpose2d`), and its geometry, [`ConvTranspose2dOptions`].
//!
//! A transposed convolution is the input gradient of a [`Var::conv2d`] taken of an input of
//! its own, so it runs on the convolution's kernels the other way round: its forward is
//! conv2d's input gradient (the patches' gradients `Wᵀ·x` folded into the image by col2im,
//! or a direct convolution with the flipped weights for stride 1), its input gradient is
//! conv2d's forward, and its weight gradient is conv2d's weight gradient with the roles of
//! image and output gradient swapped.
//!
//! # Shapes
//! `x: [N, C, H, W]`, `weight: [C, O/groups, kh, kw]`, `bias: [O]`, output `[N, O, OH, OW]`
//! with `OH = (H − 1)·sh − 2·ph + dh·(kh − 1) + oph + 1` (and `OW` alike).

use crate::autograd::ops::conv::matrix_view;
use crate::autograd::ops::{row_major, row_major_mut};
use crate::autograd::tape::{Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::conv::{self, Geometry, OutputGrad, Weights};
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayView1, ArrayViewMut2};
use serde::{Deserialize, Serialize};

/// Stride, zero padding, output padding, dilation and groups of a 2-D transposed
/// convolution (the keyword arguments of `torch.nn.ConvTranspose2d` after the kernel size),
/// each `[rows, columns]`.
///
/// The defaults are PyTorch's: stride 1, padding 0, output padding 0, dilation 1, one
/// group. The setters take one number for both sides, as PyTorch's
/// `ConvTranspose2d(.., stride=2)` does; set the fields for different ones. Each setting
/// means what it means for the [`Conv2d`](crate::Conv2d) whose input gradient this is
/// ([`Conv2dOptions`](crate::Conv2dOptions)), so a transposed convolution with the options
/// of a convolution gives back its input's size:
///
/// - **stride** `s`: the step between where neighbouring input pixels land in the output
///   (the output is about `s` times larger).
/// - **padding** `p`: rows and columns taken off each side of the output (the convolution's
///   zero padding: `dh·(kh − 1) − ph` zeros are added around the input).
/// - **output padding** `op`: rows and columns added at the bottom and the right, to pick one
///   of the `s` input sizes that a strided convolution maps to the same output size. It must
///   be smaller than the stride or the dilation, as in PyTorch.
/// - **dilation** `d`: the step between a kernel's taps.
/// - **groups** `g`: input and output channels are split into `g` groups, each output group
///   fed by its input group only.
///
/// # Examples
/// ```
/// use tapegrad::{ConvTranspose2dOptions, Conv2dOptions};
/// let up = ConvTranspose2dOptions::default().stride(2).padding(1).output_padding(1);
/// // (7 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 14: the size a stride-2 convolution halved
/// assert_eq!(up.output_size([7, 7], [3, 3]), Some([14, 14]));
/// assert_eq!(Conv2dOptions::default().stride(2).padding(1).output_size([14, 14], [3, 3]), Some([7, 7]));
/// // output padding 2 is not smaller than stride 2 or dilation 1
/// assert_eq!(up.output_padding(2).output_size([7, 7], [3, 3]), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvTranspose2dOptions {
    /// Step between where neighbouring input pixels land, `[sh, sw]`, each at least 1.
    pub stride: [usize; 2],
    /// Rows and columns taken off each side of the output, `[ph, pw]`.
    pub padding: [usize; 2],
    /// Rows and columns added at the bottom and right of the output, `[oph, opw]`; each
    /// smaller than its axis's stride or its dilation.
    pub output_padding: [usize; 2],
    /// Step between the taps of the kernel, `[dh, dw]`, each at least 1.
    pub dilation: [usize; 2],
    /// Number of channel groups, at least 1; divides both channel counts.
    pub groups: usize,
}

impl Default for ConvTranspose2dOptions {
    fn default() -> Self {
        ConvTranspose2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            output_padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl ConvTranspose2dOptions {
    /// The same options with stride `stride` along both axes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::ConvTranspose2dOptions;
    /// let options = ConvTranspose2dOptions::default().stride(2);
    /// assert_eq!(options.stride, [2, 2]);
    /// assert_eq!(options.output_size([4, 4], [2, 2]), Some([8, 8])); // (4 − 1)·2 + 1 + 1
    /// ```
    pub fn stride(self, stride: usize) -> Self {
        ConvTranspose2dOptions {
            stride: [stride; 2],
            ..self
        }
    }

    /// The same options with `padding` rows and columns taken off every side.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::ConvTranspose2dOptions;
    /// let same = ConvTranspose2dOptions::default().padding(1);
    /// assert_eq!(same.padding, [1, 1]);
    /// assert_eq!(same.output_size([5, 5], [3, 3]), Some([5, 5])); // 4 − 2 + 2 + 1
    /// ```
    pub fn padding(self, padding: usize) -> Self {
        ConvTranspose2dOptions {
            padding: [padding; 2],
            ..self
        }
    }

    /// The same options with `output_padding` rows and columns added at the bottom and the
    /// right.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::ConvTranspose2dOptions;
    /// let options = ConvTranspose2dOptions::default().stride(2).output_padding(1);
    /// assert_eq!(options.output_padding, [1, 1]);
    /// assert_eq!(options.output_size([4, 4], [3, 3]), Some([10, 10])); // 6 + 2 + 1 + 1
    /// ```
    pub fn output_padding(self, output_padding: usize) -> Self {
        ConvTranspose2dOptions {
            output_padding: [output_padding; 2],
            ..self
        }
    }

    /// The same options with dilation `dilation` along both axes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::ConvTranspose2dOptions;
    /// let atrous = ConvTranspose2dOptions::default().dilation(2);
    /// assert_eq!(atrous.dilation, [2, 2]);
    /// assert_eq!(atrous.output_size([3, 3], [3, 3]), Some([7, 7])); // 2 + 2·2 + 1
    /// ```
    pub fn dilation(self, dilation: usize) -> Self {
        ConvTranspose2dOptions {
            dilation: [dilation; 2],
            ..self
        }
    }

    /// The same options with `groups` channel groups.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let grouped = ConvTranspose2dOptions::default().groups(2);
    /// assert_eq!(grouped.groups, 2);
    /// // weight [in, out/groups, kh, kw]: 4 input channels, 2 groups of 3 output channels
    /// let layer = ConvTranspose2d::from_parts(tensor::ones(&[4, 3, 2, 2]), None, grouped)?;
    /// assert_eq!((layer.in_channels(), layer.out_channels()), (4, 6));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn groups(self, groups: usize) -> Self {
        ConvTranspose2dOptions { groups, ..self }
    }

    /// The output's `[OH, OW]` for an input of `[H, W]` and a kernel of `[kh, kw]`:
    /// `OH = (H − 1)·sh − 2·ph + dh·(kh − 1) + oph + 1`, as in PyTorch's `ConvTranspose2d`
    /// docs. `None` when that is not positive, an input side is 0, or the options are wrong
    /// for the kernel ([`ConvTranspose2dOptions::check`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::ConvTranspose2dOptions;
    /// let options = ConvTranspose2dOptions::default();
    /// assert_eq!(options.output_size([2, 4], [3, 2]), Some([4, 5]));
    /// // padding 2 takes all 3 rows of a 1×1 input's 3×3 output off
    /// assert_eq!(options.padding(2).output_size([1, 1], [3, 3]), None);
    /// assert_eq!(options.stride(0).output_size([4, 4], [3, 3]), None);
    /// // output padding 1 needs a stride or a dilation of at least 2
    /// assert_eq!(options.output_padding(1).output_size([4, 4], [3, 3]), None);
    /// assert_eq!(options.output_padding(1).dilation(2).output_size([4, 4], [3, 3]), Some([9, 9]));
    /// ```
    pub fn output_size(&self, input: [usize; 2], kernel: [usize; 2]) -> Option<[usize; 2]> {
        self.check(kernel).ok()?;
        let axis = |a: usize| {
            let grown = (input[a].checked_sub(1)?)
                .checked_mul(self.stride[a])?
                .checked_add(self.dilation[a].checked_mul(kernel[a] - 1)?)?
                .checked_add(self.output_padding[a])?
                .checked_add(1)?;
            grown
                .checked_sub(self.padding[a].checked_mul(2)?)
                .filter(|&len| len > 0)
        };
        Some([axis(0)?, axis(1)?])
    }

    /// Checks these options for a kernel of `[kh, kw]`, as the constructors of
    /// [`ConvTranspose2d`](crate::ConvTranspose2d) do.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a kernel side, stride or dilation or the number of
    /// groups is 0, or an output padding is not smaller than its axis's stride or its
    /// dilation (PyTorch's rule: the output padding picks one of the output sizes that a
    /// convolution with this stride maps to the same size, and only a stride or a dilation
    /// leaves room for more than one).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::ConvTranspose2dOptions;
    /// let options = ConvTranspose2dOptions::default().stride(2).output_padding(2);
    /// assert_eq!(
    ///     options.check([3, 3]).unwrap_err().to_string(),
    ///     "conv_transpose2d: output_padding must be smaller than stride or dilation, got \
    ///      output_padding [2, 2], stride [2, 2], dilation [1, 1]"
    /// );
    /// assert!(options.output_padding(1).check([3, 3]).is_ok());
    /// assert!(options.output_padding(1).groups(0).check([3, 3]).is_err());
    /// ```
    pub fn check(&self, kernel: [usize; 2]) -> Result<()> {
        let invalid = |message: String| {
            Err(Error::InvalidArgument {
                op: "conv_transpose2d",
                message,
            })
        };
        let sides = kernel.iter().chain(&self.stride).chain(&self.dilation);
        if sides.copied().any(|v| v == 0) || self.groups == 0 {
            return invalid(format!(
                "kernel sides, strides, dilations and groups must be positive, got kernel \
                 {kernel:?}, stride {:?}, dilation {:?}, groups {}",
                self.stride, self.dilation, self.groups
            ));
        }
        let fits = |a: usize| {
            self.output_padding[a] < self.stride[a] || self.output_padding[a] < self.dilation[a]
        };
        if !(fits(0) && fits(1)) {
            return invalid(format!(
                "output_padding must be smaller than stride or dilation, got output_padding \
                 {:?}, stride {:?}, dilation {:?}",
                self.output_padding, self.stride, self.dilation
            ));
        }
        Ok(())
    }
}

impl<'t> Var<'t> {
    /// 2-D transposed convolution of a batch of images with a bank of filters, plus a bias
    /// per output channel (`torch.nn.functional.conv_transpose2d`; also called a fractionally
    /// strided convolution, or, wrongly, a deconvolution): each input pixel adds its
    /// value times the `kh × kw` filter into the output, at `s` times its position:
    ///
    /// `y[n, o, sh·iy + i·dh − ph, sw·ix + j·dw − pw] += W[c, o − g·og, i, j] · x[n, c, iy, ix]`
    ///
    /// over every input pixel `(iy, ix)`, tap `(i, j)` and input channel `c` of output
    /// channel `o`'s group `g` (`og = O/groups` output channels per group), starting from
    /// `y[n, o, ·, ·] = b[o]`; a position that falls outside the output (in the padding) is
    /// dropped. It is the input gradient of [`Var::conv2d`] with the same weight, stride,
    /// padding, dilation and groups, taken of `x` as if it were an output gradient: for
    /// every `z`, `Σ conv2d(z, W) ⊙ x = Σ z ⊙ conv_transpose2d(x, W)` (without biases).
    /// So a decoder's transposed convolution with an encoder convolution's options gives
    /// back that convolution's input size (the output padding picks which, when a stride
    /// rounded it). See [`ConvTranspose2dOptions`] for the settings.
    ///
    /// Backward, with `G = ∂L/∂y`: `∂L/∂b[o] = Σ_{n, Y, X} G[n, o, Y, X]`; `∂L/∂x =
    /// conv2d(G, W)` with the same options (its first `H × W` outputs, which is all of them
    /// unless the output padding is at least the stride);
    /// `∂L/∂W[c, o, i, j] = Σ_{n, iy, ix} x[n, c, iy, ix] · G[n, g·og + o, sh·iy + i·dh − ph,
    /// sw·ix + j·dw − pw]` (conv2d's weight gradient, with `G` as the image and `x` as the
    /// output gradient).
    ///
    /// It runs on the convolution kernels (Dumoulin & Visin 2016,
    /// <https://arxiv.org/abs/1603.07285>, §4, on this equivalence): per image and group,
    /// the forward multiplies the transpose of the group's `[C/groups, og·kh·kw]` block of
    /// the weight by the group's `[C/groups, H·W]` pixels and folds the resulting columns
    /// into the output (col2im), or for stride 1 convolves the padded input with the
    /// flipped kernel directly; the backward runs conv2d's forward and its weight gradient.
    ///
    /// # Shapes
    /// `x: [N, C, H, W]`, `weight: [C, O/groups, kh, kw]` (PyTorch's layout for a transposed
    /// convolution: input channels first), `bias: [O]` → `[N, O, OH, OW]`, with
    /// `OH = (H − 1)·sh − 2·ph + dh·(kh − 1) + oph + 1` and `OW` alike
    /// ([`ConvTranspose2dOptions::output_size`]).
    ///
    /// # Panics
    /// If `x` or `weight` is not 4-D with positive sides, the channels do not match
    /// (`conv_transpose2d: expected input channels 4 (weight [4, 3, 3, 3]); x shape
    /// [2, 3, 8, 8]`), `groups` does not divide the input channels, `bias` is not `[O]`,
    /// [`ConvTranspose2dOptions::check`] finds the options wrong, or the output would be
    /// empty.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2dOptions, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?);
    /// let w = tape.leaf(tensor::ones(&[1, 1, 2, 2]));
    /// // stride 2: each pixel becomes a 2×2 block of itself (nearest upsampling)
    /// let up = x.conv_transpose2d(w, None, ConvTranspose2dOptions::default().stride(2));
    /// assert_eq!(up.shape(), [1, 1, 4, 4]);
    /// assert_eq!(
    ///     up.value().as_slice().unwrap(),
    ///     &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]
    /// );
    /// // stride 1: the 2×2 blocks overlap and add up, bias 10
    /// let b = tape.leaf(tensor::from_vec(vec![10.0], &[1])?);
    /// let y = x.conv_transpose2d(w, Some(b), ConvTranspose2dOptions::default());
    /// assert_eq!(
    ///     y.value().as_slice().unwrap(),
    ///     &[11.0, 13.0, 12.0, 14.0, 20.0, 16.0, 13.0, 17.0, 14.0]
    /// );
    /// let g = y.sum().backward();
    /// // each input pixel reaches 4 outputs through weights 1; each weight sees every pixel
    /// assert_eq!(g.get(x).unwrap(), tensor::full(&[1, 1, 2, 2], 4.0));
    /// assert_eq!(g.get(w).unwrap(), tensor::full(&[1, 1, 2, 2], 10.0));
    /// assert_eq!(g.get(b).unwrap()[[0]], 9.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn conv_transpose2d(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        options: ConvTranspose2dOptions,
    ) -> Var<'t> {
        let geo = geometry(&self.shape(), &weight.shape(), options);
        if let Some(b) = bias {
            let bs = b.shape();
            assert!(
                bs == [geo.c],
                "conv_transpose2d: expected bias shape [{}]; bias shape {bs:?}, weight shape {:?}",
                geo.c,
                weight.shape()
            );
        }
        // a strided input (a permuted view) is copied to row-major order first
        let x = self.contiguous();
        let tape = x.tape();
        let input = x.data();
        let learns =
            x.requires_grad() || weight.requires_grad() || bias.is_some_and(Var::requires_grad);
        if !learns {
            // the kernels read the weight and the bias where they are
            let (w, b) = (
                weight.contiguous().data(),
                bias.map(|b| b.contiguous().data()),
            );
            let weights = Weights {
                matrix: matrix_view(&w, geo.o, geo.k()),
                bias: b.as_ref().map(|b| ArrayView1::from(row_major(b))),
            };
            let value = forward_value(tape, row_major(&input), weights, &geo);
            return tape.record("conv_transpose2d", &[x, weight], value, |_| {
                [None::<Tensor>, None]
            });
        }
        // one parent for the weight and the bias: the weight's elements, then the bias
        let weight_len = geo.o * geo.k();
        let flat = weight.reshape(&[weight_len]);
        let params = match bias {
            Some(b) => Var::concat(&[flat, b], 0),
            None => flat,
        };
        let joined = params.data();
        let value = forward_value(tape, row_major(&input), split(&joined, &geo), &geo);
        let has_bias = bias.is_some();
        tape.record("conv_transpose2d", &[x, params], value, move |b| {
            let copied = (!b.grad.is_standard_layout()).then(|| b.tape.copy(b.grad.view()));
            let grad = row_major(copied.as_ref().unwrap_or(b.grad));
            let matrix = split(b.inputs[1], &geo).matrix;
            let dx = b.needs[0].then(|| {
                // the input gradient of a transposed convolution is a convolution
                let n = b.inputs[0].shape()[0];
                let pieces = crate::threads::pieces(n * geo.o * geo.l(), n);
                let mut dx = b.tape.scratch(b.inputs[0].shape(), false);
                let cols_len = conv::scratch_lens(&geo, false).0;
                let mut cols = b.tape.scratch(&[pieces * cols_len], false);
                let weights = Weights { matrix, bias: None };
                let (cols_out, dx_out) = (row_major_mut(&mut cols), row_major_mut(&mut dx));
                conv::forward(grad, weights, &geo, cols_out, dx_out, None, pieces);
                b.tape.reuse(cols);
                dx
            });
            let dparams = b.needs[1].then(|| {
                let mut dparams = b.tape.zeros(b.inputs[1].shape());
                let (dw, db) = row_major_mut(&mut dparams).split_at_mut(weight_len);
                let dw = ArrayViewMut2::from_shape((geo.o, geo.k()), dw)
                    .expect("internal error: weight gradient shape");
                // conv2d's weight gradient, the output gradient as its image and x as its
                // output gradient
                let mut cols = b.tape.scratch(&[conv::scratch_lens(&geo, false).1], false);
                conv::backward(
                    grad,
                    OutputGrad::Given(row_major(b.inputs[0])),
                    matrix,
                    &geo,
                    false,
                    Some(dw),
                    None,
                    row_major_mut(&mut cols),
                    &mut [],
                );
                b.tape.reuse(cols);
                if has_bias {
                    let planes = grad.chunks_exact(geo.h * geo.w);
                    for (plane, channel) in planes.zip((0..geo.c).cycle()) {
                        db[channel] += plane.iter().sum::<Elem>();
                    }
                }
                dparams
            });
            if let Some(copied) = copied {
                b.tape.reuse(copied);
            }
            [dx, dparams]
        })
    }
}

/// The joined weight and bias (`[C·og·kh·kw (+ O)]`, row-major) as the kernels read them.
fn split<'a, S: ndarray::Data<Elem = Elem>>(
    joined: &'a ndarray::ArrayBase<S, ndarray::IxDyn>,
    geo: &Geometry,
) -> Weights<'a> {
    let (matrix, bias) = row_major(joined).split_at(geo.o * geo.k());
    Weights {
        matrix: ndarray::ArrayView2::from_shape((geo.o, geo.k()), matrix)
            .expect("internal error: weight matrix shape"),
        bias: (!bias.is_empty()).then(|| ArrayView1::from(bias)),
    }
}

/// The transposed convolution of the row-major `input` (`[N, C, H, W]`) in a buffer from
/// `tape`'s pool, on as many threads as its size is worth.
fn forward_value(tape: &Tape, input: &[Elem], weights: Weights<'_>, geo: &Geometry) -> Tensor {
    let n = input.len() / (geo.o * geo.l());
    let pieces = crate::threads::pieces(n * geo.image_len(), n);
    let mut out = tape.scratch(&[n, geo.c, geo.h, geo.w], false);
    let mut scratch = tape.scratch(&[pieces * conv::scratch_lens(geo, false).2], false);
    conv::transposed(
        input,
        weights,
        geo,
        row_major_mut(&mut out),
        row_major_mut(&mut scratch),
        pieces,
    );
    tape.reuse(scratch);
    out
}

/// Checks the shapes and options of a transposed convolution and works out its sizes, as
/// the geometry of the convolution whose input gradient it is: that convolution's input is
/// this one's output (`c = O`, `[h, w] = [OH, OW]`), its output this one's input (`o = C`,
/// `[oh, ow] = [H, W]`), and its weight `[C, O/groups, kh, kw]` this one's.
#[track_caller]
fn geometry(xs: &[usize], ws: &[usize], options: ConvTranspose2dOptions) -> Geometry {
    assert!(
        xs.len() == 4 && ws.len() == 4 && !ws.contains(&0),
        "conv_transpose2d: expected a 4-D input [N, C, H, W] and a 4-D weight \
         [C, O/groups, kh, kw] with positive sides; x shape {xs:?}, weight shape {ws:?}"
    );
    let groups = options.groups;
    assert!(
        groups >= 1 && ws[0].is_multiple_of(groups),
        "conv_transpose2d: groups {groups} must be at least 1 and divide the input channels; \
         weight shape {ws:?}"
    );
    assert!(
        xs[1] == ws[0],
        "conv_transpose2d: expected input channels {} (weight {ws:?}); x shape {xs:?}",
        ws[0]
    );
    if let Err(err) = options.check([ws[2], ws[3]]) {
        panic!("{err}; x shape {xs:?}, weight shape {ws:?}")
    }
    let Some([oh, ow]) = options.output_size([xs[2], xs[3]], [ws[2], ws[3]]) else {
        panic!(
            "conv_transpose2d: expected an output size that is positive and fits in memory, \
             found an empty image, padding larger than the output, or a size that overflows; \
             x shape {xs:?}, weight shape {ws:?}, {options:?}"
        )
    };
    Geometry {
        c: ws[1] * groups,
        h: oh,
        w: ow,
        cg: ws[1],
        o: ws[0],
        og: ws[0] / groups,
        groups,
        kh: ws[2],
        kw: ws[3],
        sh: options.stride[0],
        sw: options.stride[1],
        ph: options.padding[0],
        pw: options.padding[1],
        dh: options.dilation[0],
        dw: options.dilation[1],
        oh: xs[2],
        ow: xs[3],
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Conv2dOptions, Tape, gradcheck};

    /// The definition, loop by loop: each input pixel adds its value times the filter into
    /// the output at `s` times its position.
    fn naive(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: ConvTranspose2dOptions) -> Tensor {
        let (xs, ws) = (x.shape(), w.shape());
        let [oh, ow] = o.output_size([xs[2], xs[3]], [ws[2], ws[3]]).unwrap();
        let (og, cg) = (ws[1], ws[0] / o.groups);
        let mut y = Tensor::zeros(ndarray::IxDyn(&[xs[0], og * o.groups, oh, ow]));
        for ((n, q, oy, ox), v) in y
            .view_mut()
            .into_dimensionality::<ndarray::Ix4>()
            .unwrap()
            .indexed_iter_mut()
        {
            *v = b.map_or(0.0, |b| b[[q]]);
            let g = q / og;
            for c in g * cg..(g + 1) * cg {
                for (iy, ix, i, j) in itertools(xs[2], xs[3], ws[2], ws[3]) {
                    let y_at =
                        (iy * o.stride[0] + i * o.dilation[0]) as isize - o.padding[0] as isize;
                    let x_at =
                        (ix * o.stride[1] + j * o.dilation[1]) as isize - o.padding[1] as isize;
                    if (y_at, x_at) == (oy as isize, ox as isize) {
                        *v += w[[c, q - g * og, i, j]] * x[[n, c, iy, ix]];
                    }
                }
            }
        }
        y
    }

    /// Every `(iy, ix, i, j)` of an `h × w` input and a `kh × kw` kernel.
    fn itertools(h: usize, w: usize, kh: usize, kw: usize) -> Vec<(usize, usize, usize, usize)> {
        let mut all = Vec::new();
        for iy in 0..h {
            for ix in 0..w {
                for i in 0..kh {
                    for j in 0..kw {
                        all.push((iy, ix, i, j));
                    }
                }
            }
        }
        all
    }

    /// (x shape, weight shape, options) of the cases checked: plain; strides 2 and 3, with
    /// padding and output padding; dilation; an output padding at least the stride (room
    /// made by the dilation); groups and depthwise; asymmetric settings; 1×1 kernels;
    /// padding beyond the kernel's reach (a smaller output); outputs as wide as the inputs
    /// (stride 1, the direct kernels' route); more than 32 channels on either side.
    fn cases() -> Vec<([usize; 4], [usize; 4], ConvTranspose2dOptions)> {
        let d = ConvTranspose2dOptions::default();
        vec![
            ([2, 3, 4, 5], [3, 2, 3, 3], d),
            ([2, 2, 3, 3], [2, 3, 3, 3], d.stride(2)),
            (
                [1, 2, 4, 3],
                [2, 2, 3, 3],
                d.stride(2).padding(1).output_padding(1),
            ),
            ([2, 1, 3, 4], [1, 2, 2, 2], d.stride(3)),
            (
                [1, 2, 3, 3],
                [2, 1, 2, 2],
                d.stride(3).output_padding(2).padding(1),
            ),
            ([2, 2, 3, 3], [2, 2, 3, 3], d.dilation(2).padding(1)),
            ([1, 1, 3, 3], [1, 2, 2, 2], d.dilation(3).output_padding(2)),
            ([2, 4, 3, 2], [4, 1, 3, 2], d.groups(2).stride(2).padding(1)),
            (
                [1, 3, 3, 3],
                [3, 1, 3, 3],
                d.groups(3).stride(2).padding(1).output_padding(1),
            ),
            (
                [1, 2, 3, 4],
                [2, 3, 2, 3],
                ConvTranspose2dOptions {
                    stride: [2, 1],
                    padding: [0, 1],
                    output_padding: [1, 0],
                    dilation: [1, 2],
                    groups: 1,
                },
            ),
            ([1, 3, 3, 3], [3, 2, 1, 1], d.stride(2)),
            ([2, 2, 4, 4], [2, 2, 1, 1], d.padding(1)),
            ([2, 3, 5, 6], [3, 4, 3, 3], d.padding(1)),
            // as wide as the input with an output padding: the last output row and column
            // have taps past the padded input, which the direct kernel must not read
            (
                [1, 2, 4, 5],
                [2, 2, 2, 2],
                ConvTranspose2dOptions {
                    padding: [2, 2],
                    output_padding: [1, 1],
                    dilation: [3, 3],
                    ..d
                },
            ),
            ([1, 4, 2, 14], [4, 32, 3, 3], d.padding(1)),
            ([1, 32, 2, 14], [32, 4, 3, 3], d.padding(1)),
        ]
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.shape(), b.shape());
        (a - b).fold(0.0f32, |m, d| m.max(d.abs()))
    }

    #[test]
    fn forward_matches_the_definition() {
        for (k, (xs, ws, o)) in cases().into_iter().enumerate() {
            let c = ws[1] * o.groups;
            let (x, w, b) = (random(&xs, 1), random(&ws, 2), random(&[c], 3));
            let tape = Tape::new();
            let (xv, wv, bv) = (
                tape.constant(x.clone()),
                tape.constant(w.clone()),
                tape.constant(b.clone()),
            );
            for bias in [Some(&b), None] {
                let y = xv.conv_transpose2d(wv, bias.map(|_| bv), o).value();
                let diff = max_diff(&y, &naive(&x, &w, bias, o));
                assert!(diff < 1e-4, "case {k}: {diff}");
            }
        }
    }

    #[test]
    fn it_is_the_adjoint_of_conv2d() {
        // Σ conv2d(z, W) ⊙ x = Σ z ⊙ conv_transpose2d(x, W) for every z, where the
        // convolution maps the transposed one's output size back to its input size
        for (k, (xs, ws, o)) in cases().into_iter().enumerate() {
            if (0..2).any(|a| o.output_padding[a] >= o.stride[a]) {
                continue; // the convolution's output is larger than x
            }
            let conv = Conv2dOptions {
                stride: o.stride,
                padding: o.padding,
                dilation: o.dilation,
                groups: o.groups,
            };
            let tape = Tape::new();
            let (x, w) = (tape.constant(random(&xs, 4)), tape.constant(random(&ws, 5)));
            let y = x.conv_transpose2d(w, None, o);
            let z = tape.constant(random(&y.shape(), 6));
            let lhs = (z.conv2d(w, None, conv) * x).sum().item();
            let rhs = (z * y).sum().item();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "case {k}: {lhs} {rhs}"
            );
        }
    }

    #[test]
    fn gradcheck_input_weight_and_bias() {
        for (k, (xs, ws, o)) in cases().into_iter().enumerate() {
            let inputs = [
                random(&xs, 10 + k as u64),
                random(&ws, 20),
                random(&[ws[1] * o.groups], 30),
            ];
            gradcheck(|v| v[0].conv_transpose2d(v[1], Some(v[2]), o), &inputs)
                .unwrap_or_else(|e| panic!("case {k}: {e}"));
            gradcheck(|v| v[0].conv_transpose2d(v[1], None, o), &inputs[..2])
                .unwrap_or_else(|e| panic!("case {k} without bias: {e}"));
        }
    }

    #[test]
    fn hand_derived_gradients() {
        // x = [[1, 2]], W = [[a, b]] = [[2, 3]] (1×2), stride 2, b = 1: y = [[2, 3, 4, 6]] + 1
        // L = Σ c ⊙ y with c = [1, 2, 3, 4]: ∂L/∂x = [a·1 + b·2, a·3 + b·4] = [8, 18],
        // ∂L/∂W = [1·1 + 2·3, 1·2 + 2·4] = [7, 10], ∂L/∂b = Σ c = 10
        let tape = Tape::new();
        let x = tape.leaf(t(&[1, 1, 1, 2], &[1., 2.]));
        let w = tape.leaf(t(&[1, 1, 1, 2], &[2., 3.]));
        let b = tape.leaf(t(&[1], &[1.]));
        let y = x.conv_transpose2d(w, Some(b), ConvTranspose2dOptions::default().stride(2));
        assert_eq!(y.value(), t(&[1, 1, 1, 4], &[3., 4., 5., 7.]));
        let c = tape.constant(t(&[1, 1, 1, 4], &[1., 2., 3., 4.]));
        let g = (y * c).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[1, 1, 1, 2], &[8., 18.]));
        assert_eq!(g.get(w).unwrap(), t(&[1, 1, 1, 2], &[7., 10.]));
        assert_eq!(g.get(b).unwrap(), t(&[1], &[10.]));
    }

    /// A case checked against PyTorch: input and weight shapes, options, the output's shape
    /// and values, and `∂L/∂x`, `∂L/∂W`, `∂L/∂b` (empty without bias) for `L = Σ c ⊙ y`.
    struct Fixture {
        x: [usize; 4],
        w: [usize; 4],
        options: ConvTranspose2dOptions,
        y_shape: [usize; 4],
        y: &'static [f32],
        dx: &'static [f32],
        dw: &'static [f32],
        db: &'static [f32],
    }

    /// `((k·a + b) mod m)·scale − shift` for element `k`: the script's `pattern`.
    fn pattern(shape: &[usize], [a, b, m]: [usize; 3], scale: f32, shift: f32) -> Tensor {
        let n = shape.iter().product();
        let values = (0..n).map(|k| ((k * a + b) % m) as f32 * scale - shift);
        Tensor::from_shape_vec(ndarray::IxDyn(shape), values.collect()).unwrap()
    }

    #[test]
    fn values_and_gradients_are_pytorchs() {
        // Made with PyTorch 2.15 (CPU) by the script below, whose lines are `fixtures()`;
        // every value is a multiple of 1/32, so any summation order gives it exactly.
        // import numpy as np
        // import torch
        // F = torch.nn.functional
        // def pattern(shape, a, b, m, scale, shift):
        //     n = int(np.prod(shape))
        //     return torch.tensor([((k * a + b) % m) * scale - shift for k in range(n)]).reshape(shape)
        // def rust(t):
        //     values = t.detach().flatten().numpy()
        //     return "&[" + ", ".join(np.format_float_positional(v, unique=True, trim="0") for v in values) + "]"
        // def pair(v): return "[%d, %d]" % (v if isinstance(v, tuple) else (v, v))
        // cases = [
        //     ([1, 2, 3, 3], [2, 3, 3, 3], True, dict(stride=2, padding=1, output_padding=1)),
        //     ([1, 4, 3, 2], [4, 1, 2, 3], True,
        //      dict(stride=(2, 1), padding=(0, 1), output_padding=(1, 0), dilation=(1, 2), groups=2)),
        //     ([1, 1, 2, 2], [1, 2, 2, 2], False, dict(stride=3, output_padding=2)),
        //     ([2, 1, 3, 3], [1, 1, 2, 2], True, dict(dilation=2, output_padding=1)),
        // ]
        // for xs, ws, bias, kw in cases:
        //     x = pattern(xs, 7, 3, 11, 0.25, 1.25).requires_grad_()
        //     w = pattern(ws, 5, 1, 13, 0.125, 0.75).requires_grad_()
        //     groups = kw.get("groups", 1)
        //     b = pattern([ws[1] * groups], 3, 2, 5, 0.25, 0.375).requires_grad_() if bias else None
        //     y = F.conv_transpose2d(x, w, b, **kw)
        //     (y * pattern(list(y.shape), 3, 1, 7, 0.5, 1.5)).sum().backward()
        //     options = "ConvTranspose2dOptions { stride: %s, padding: %s, output_padding: %s, dilation: %s, groups: %d }" % (
        //         pair(kw.get("stride", 1)), pair(kw.get("padding", 0)), pair(kw.get("output_padding", 0)),
        //         pair(kw.get("dilation", 1)), groups)
        //     print("Fixture { x: %s, w: %s, options: %s, y_shape: %s, y: %s, dx: %s, dw: %s, db: %s }," % (
        //         xs, ws, options, list(y.shape), rust(y), rust(x.grad), rust(w.grad), rust(b.grad) if bias else "&[]"))
        for (k, f) in fixtures().iter().enumerate() {
            let c = f.w[1] * f.options.groups;
            let tape = Tape::new();
            let x = tape.leaf(pattern(&f.x, [7, 3, 11], 0.25, 1.25));
            let w = tape.leaf(pattern(&f.w, [5, 1, 13], 0.125, 0.75));
            let b = (!f.db.is_empty()).then(|| tape.leaf(pattern(&[c], [3, 2, 5], 0.25, 0.375)));
            let y = x.conv_transpose2d(w, b, f.options);
            assert_eq!(y.shape(), f.y_shape, "case {k}");
            assert_eq!(y.value().as_slice().unwrap(), f.y, "case {k}");
            let weights = tape.constant(pattern(&f.y_shape, [3, 1, 7], 0.5, 1.5));
            let g = (y * weights).sum().backward();
            assert_eq!(g.get(x).unwrap().as_slice().unwrap(), f.dx, "case {k}");
            assert_eq!(g.get(w).unwrap().as_slice().unwrap(), f.dw, "case {k}");
            if let Some(b) = b {
                assert_eq!(g.get(b).unwrap().as_slice().unwrap(), f.db, "case {k}");
            }
        }
    }

    fn fixtures() -> [Fixture; 4] {
        [
            Fixture {
                x: [1, 2, 3, 3],
                w: [2, 3, 3, 3],
                options: ConvTranspose2dOptions {
                    stride: [2, 2],
                    padding: [1, 1],
                    output_padding: [1, 1],
                    dilation: [1, 1],
                    groups: 1,
                },
                y_shape: [1, 3, 6, 6],
                y: &[
                    0.9375, 0.3125, 0.0625, -1.09375, 0.5625, 0.0, 1.28125, -1.25, 0.65625,
                    -0.1875, 0.03125, 0.21875, -1.0, 0.21875, 0.1875, -0.84375, 0.6875, 0.21875,
                    -0.25, -0.8125, 0.5, -0.09375, -0.125, 0.25, -0.875, 0.46875, 0.3125, -0.59375,
                    0.8125, 0.4375, -0.875, 0.65625, 0.5, -0.71875, 0.5, 0.125, -0.0625, -1.0,
                    -1.15625, 0.34375, -0.53125, -0.6875, -1.375, 2.0, -0.03125, -0.8125, -0.40625,
                    -0.21875, 0.09375, 0.625, -1.0, 0.25, -0.375, -0.84375, -0.78125, -0.25,
                    -0.125, -1.0, -0.5, -0.125, 0.25, 0.53125, -0.84375, 0.15625, -0.21875, -1.0,
                    0.25, -0.90625, -0.65625, 0.03125, -0.53125, 0.3125, -0.625, -0.25, 0.90625,
                    1.0, 0.03125, 0.6875, 1.6875, -1.21875, 0.53125, -0.1875, 0.40625, 0.59375,
                    1.21875, -0.96875, 0.6875, 0.96875, -0.1875, 0.5625, -0.0625, -0.875, 0.5,
                    0.15625, 0.375, 0.75, 1.0, -1.0, 0.46875, 0.9375, -0.40625, 0.4375, -0.625,
                    0.8125, 0.65625, -0.40625, 0.90625, 0.53125,
                ],
                dx: &[
                    1.5, 0.125, -1.1875, -1.125, 1.9375, 2.6875, -2.4375, -0.125, 1.9375, -2.9375,
                    2.3125, 0.625, -1.125, -1.9375, 0.25, 0.1875, -0.1875, -1.9375,
                ],
                dw: &[
                    -1.125, -1.125, -0.625, 2.5, -1.75, -1.5, -2.0, 2.375, -1.75, 1.125, -0.625,
                    -1.0, -2.625, -1.5, 2.25, 2.5, -1.75, -1.5, -1.875, -1.0, 2.125, 1.0, 2.25,
                    -1.875, -2.625, -1.5, 2.25, 1.875, 2.375, -1.75, -0.875, 1.0, 2.0, 1.375,
                    -1.75, 1.0, -0.375, -1.75, 2.0, 0.375, 2.0, 0.375, -0.875, 1.0, 2.0, 0.0, 2.0,
                    -4.75, -0.125, 0.375, 2.25, 0.375, 2.0, 0.375,
                ],
                db: &[-1.0, 0.5, -1.5],
            },
            Fixture {
                x: [1, 4, 3, 2],
                w: [4, 1, 2, 3],
                options: ConvTranspose2dOptions {
                    stride: [2, 1],
                    padding: [0, 1],
                    output_padding: [1, 0],
                    dilation: [1, 2],
                    groups: 2,
                },
                y_shape: [1, 2, 7, 4],
                y: &[
                    -0.75, -0.375, 0.5, 0.3125, -0.25, -0.75, 1.0, 0.75, 0.75, 0.0, -0.5, 0.40625,
                    0.25, 0.0, -1.0, 0.0, 0.1875, 0.375, -0.125, 0.5, 0.0625, 0.75, -0.25, -0.75,
                    0.125, 0.125, 0.125, 0.125, -0.09375, -1.25, -0.5, 0.0, -0.09375, -0.75, -0.5,
                    0.5, -0.375, 0.25, -1.0625, -1.0, 0.0, -0.25, -0.6875, -1.5, -1.6875, -0.3125,
                    0.09375, -0.625, -1.625, -0.4375, 0.15625, -0.75, -0.375, -0.375, -0.375,
                    -0.375,
                ],
                dx: &[
                    0.625, 0.3125, 0.8125, -0.375, 0.5625, 0.6875, 0.125, 0.3125, -0.875, -0.875,
                    -0.125, 1.4375, -0.375, 1.125, 0.6875, 0.25, 0.0, -1.0625, -0.875, 0.3125,
                    1.4375, -0.25, -1.5, 0.5,
                ],
                dw: &[
                    -1.625, -2.5, -0.125, 2.25, 1.5, -0.875, -0.625, -2.0, -0.625, 1.25, 1.5,
                    0.125, 1.75, -0.125, -1.125, -1.125, -2.625, -1.625, -1.375, 4.5, -1.625,
                    0.625, -1.25, -0.625,
                ],
                db: &[0.0, 0.0],
            },
            Fixture {
                x: [1, 1, 2, 2],
                w: [1, 2, 2, 2],
                options: ConvTranspose2dOptions {
                    stride: [3, 3],
                    padding: [0, 0],
                    output_padding: [2, 2],
                    dilation: [1, 1],
                    groups: 1,
                },
                y_shape: [1, 2, 7, 7],
                y: &[
                    0.3125, 0.0, 0.0, -0.78125, 0.0, 0.0, 0.0, -0.3125, 0.1875, 0.0, 0.78125,
                    -0.46875, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.15625, 0.0, 0.0,
                    0.46875, 0.0, 0.0, 0.0, 0.15625, -0.09375, 0.0, -0.46875, 0.28125, 0.0, 0.0,
                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.125,
                    0.375, 0.0, 0.3125, -0.9375, 0.0, 0.0, 0.0625, -0.25, 0.0, -0.15625, 0.625,
                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0625, -0.1875, 0.0, -0.1875,
                    0.5625, 0.0, 0.0, -0.03125, 0.125, 0.0, 0.09375, -0.375, 0.0, 0.0, 0.0, 0.0,
                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                ],
                dx: &[-0.4375, -0.9375, -0.4375, -0.9375],
                dw: &[0.25, 0.625, 0.25, 0.625, 0.25, 0.625, 0.25, 0.625],
                db: &[],
            },
            Fixture {
                x: [2, 1, 3, 3],
                w: [1, 1, 2, 2],
                options: ConvTranspose2dOptions {
                    stride: [1, 1],
                    padding: [0, 0],
                    output_padding: [1, 1],
                    dilation: [2, 2],
                    groups: 1,
                },
                y_shape: [2, 1, 6, 6],
                y: &[
                    0.4375, -0.65625, -0.03125, 0.125, 0.125, 0.125, 0.59375, -0.5, 0.125, 0.125,
                    0.125, 0.125, 0.4375, 0.4375, 0.625, -0.34375, 0.03125, 0.125, -0.34375, 0.75,
                    0.40625, -0.25, 0.125, 0.125, -0.5, 0.59375, 0.34375, -0.15625, 0.21875, 0.125,
                    0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.90625, -0.1875, 0.4375, 0.125,
                    0.125, 0.125, -0.65625, -0.03125, 0.59375, 0.125, 0.125, 0.125, -1.28125,
                    0.4375, 0.90625, -0.0625, 0.3125, 0.125, 0.90625, 0.28125, -0.8125, 0.03125,
                    0.40625, 0.125, 0.75, 0.125, -0.875, 0.125, 0.5, 0.125, 0.125, 0.125, 0.125,
                    0.125, 0.125, 0.125,
                ],
                dx: &[
                    0.6875, 0.125, 0.875, -0.0625, 0.6875, 0.125, 0.5, -0.0625, 0.6875, 0.125,
                    0.875, 0.3125, 0.6875, 0.125, 0.875, -0.0625, 0.6875, 0.125,
                ],
                dw: &[-0.375, -0.5, -0.25, -0.375],
                db: &[-0.5],
            },
        ]
    }

    #[test]
    fn constants_and_leaves_give_the_same_numbers() {
        // with no gradient to flow the kernels read the weight and bias where they are
        for (k, (xs, ws, o)) in cases().into_iter().enumerate() {
            let c = ws[1] * o.groups;
            let (x, w, b) = (random(&xs, 1), random(&ws, 2), random(&[c], 3));
            let run = |tape: &Tape, make: fn(&Tape, Tensor) -> Var<'_>| {
                let (xv, wv, bv) = (
                    make(tape, x.clone()),
                    make(tape, w.clone()),
                    make(tape, b.clone()),
                );
                xv.conv_transpose2d(wv, Some(bv), o).value()
            };
            let (learning, frozen) = (Tape::new(), Tape::new());
            assert_eq!(
                run(&frozen, |t, v| t.constant(v)),
                run(&learning, |t, v| t.leaf(v)),
                "case {k}"
            );
            assert_eq!(frozen.len(), 4, "case {k}"); // inputs and the op only
        }
    }

    #[test]
    fn images_split_across_threads_give_the_same_output_bit_for_bit() {
        // 7 images in pieces of 3, 3 and 1 (or 4 and 3), with a bias, on both routes
        let d = ConvTranspose2dOptions::default();
        for (xs, ws, o) in [
            (
                [7, 4, 5, 6],
                [4, 3, 3, 3],
                d.stride(2).padding(1).output_padding(1),
            ),
            ([7, 4, 5, 6], [4, 3, 3, 3], d.padding(1)),
        ] {
            let geo = geometry(&xs, &ws, o);
            let (x, w, b) = (random(&xs, 11), random(&ws, 12), random(&[3], 13));
            let scratch_len = conv::scratch_lens(&geo, false).2;
            let run = |pieces: usize| {
                let mut out = Tensor::zeros(&[7, geo.c, geo.h, geo.w][..]);
                let mut scratch = vec![f32::NAN; pieces * scratch_len];
                let weights = Weights {
                    matrix: matrix_view(&w, geo.o, geo.k()),
                    bias: Some(ArrayView1::from(row_major(&b))),
                };
                conv::transposed(
                    row_major(&x),
                    weights,
                    &geo,
                    row_major_mut(&mut out),
                    &mut scratch,
                    pieces,
                );
                out
            };
            let alone = run(1);
            assert!(alone.iter().all(|v| v.is_finite()));
            for pieces in [2, 3, 7] {
                assert_eq!(run(pieces), alone, "{pieces} pieces");
            }
        }
    }

    #[test]
    fn a_permuted_input_gives_the_same_result() {
        let (x, w) = (random(&[2, 4, 3, 3], 4), random(&[3, 2, 2, 2], 5));
        let o = ConvTranspose2dOptions::default().stride(2);
        let tape = Tape::new();
        let nchw = x.clone().permuted_axes(vec![0, 3, 1, 2]);
        let expected = naive(&nchw.as_standard_layout().to_owned(), &w, None, o);
        let xv = tape.constant(x).permute(&[0, 3, 1, 2]);
        let y = xv.conv_transpose2d(tape.constant(w), None, o);
        assert!(max_diff(&y.value(), &expected) < 1e-4);
    }

    fn run_with(xs: &[usize], ws: &[usize], bias: Option<usize>, o: ConvTranspose2dOptions) {
        let tape = Tape::new();
        let x = tape.constant(random(xs, 0));
        let b = bias.map(|c| tape.constant(random(&[c], 0)));
        let _ = x.conv_transpose2d(tape.constant(random(ws, 0)), b, o);
    }

    #[test]
    #[should_panic(
        expected = "conv_transpose2d: expected input channels 4 (weight [4, 3, 3, 3]); x shape [2, 3, 8, 8]"
    )]
    fn channel_mismatch_panics() {
        run_with(
            &[2, 3, 8, 8],
            &[4, 3, 3, 3],
            None,
            ConvTranspose2dOptions::default(),
        );
    }

    #[test]
    #[should_panic(
        expected = "conv_transpose2d: output_padding must be smaller than stride or dilation, got output_padding [1, 1], stride [1, 1], dilation [1, 1]; x shape"
    )]
    fn output_padding_without_stride_or_dilation_panics() {
        let o = ConvTranspose2dOptions::default().output_padding(1);
        run_with(&[1, 1, 3, 3], &[1, 1, 3, 3], None, o);
    }

    #[test]
    #[should_panic(
        expected = "conv_transpose2d: expected an output size that is positive and fits in memory"
    )]
    fn padding_that_leaves_no_output_panics() {
        let o = ConvTranspose2dOptions::default().padding(2);
        run_with(&[1, 1, 1, 1], &[1, 1, 3, 3], None, o);
    }

    #[test]
    #[should_panic(expected = "conv_transpose2d: expected bias shape [6]; bias shape [3]")]
    fn wrong_bias_panics() {
        let o = ConvTranspose2dOptions::default().groups(2);
        run_with(&[1, 2, 3, 3], &[2, 3, 3, 3], Some(3), o);
    }

    #[test]
    #[should_panic(
        expected = "conv_transpose2d: groups 2 must be at least 1 and divide the input channels"
    )]
    fn groups_that_do_not_divide_the_input_channels_panic() {
        let o = ConvTranspose2dOptions::default().groups(2);
        run_with(&[1, 3, 3, 3], &[3, 1, 3, 3], None, o);
    }
}
