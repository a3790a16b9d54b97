//! 2-D convolution of NCHW batches, [`Var::conv2d`] (`torch.nn.functional.conv2d`), and its
//! geometry, [`Conv2dOptions`]. The forward unfolds each image's patches into a matrix
//! (im2col) and multiplies it by the weight on the `gemm` kernel; the backward multiplies
//! back and folds the patches' gradients into the image (col2im), beside it. A stride-1
//! convolution of a small image runs its forward and its input gradient (a convolution of
//! the output gradient with the flipped weights) as direct convolutions on AVX-512 or AVX2.
//!
//! # Shapes
//! `x: [N, C, H, W]`, `weight: [O, C/groups, kh, kw]`, `bias: [O]`, output `[N, O, OH, OW]`
//! with `OH = ⌊(H + 2·ph − dh·(kh − 1) − 1)/sh⌋ + 1` (and `OW` alike).

use crate::autograd::ops::{row_major, row_major_mut};
use crate::autograd::tape::{Tape, Var};
use crate::kernels::conv::{self, Geometry, OutputGrad};
use crate::kernels::gemm::view2_mut;
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayBase, ArrayView1, ArrayView2, Data, IxDyn};
use serde::{Deserialize, Serialize};

/// Stride, zero padding, dilation and groups of a 2-D convolution (the keyword arguments of
/// `torch.nn.Conv2d` after the kernel size), each `[rows, columns]`.
///
/// The defaults are PyTorch's: stride 1, padding 0, dilation 1, one group. The setters take
/// one number for both sides, as PyTorch's `Conv2d(.., stride=2)` does; set the fields for
/// different ones.
///
/// - **stride** `s`: the step between neighbouring windows.
/// - **padding** `p`: zeros added on each side (top and bottom, left and right).
/// - **dilation** `d`: the step between a window's taps; a `k`-tap kernel spans
///   `d·(k − 1) + 1` pixels (the "atrous" convolution of Yu & Koltun 2016,
///   <https://arxiv.org/abs/1511.07122>).
/// - **groups** `g`: input and output channels are split into `g` groups, each output
///   group seeing only its input group; `g = C` is a depthwise convolution (Chollet 2017,
///   <https://arxiv.org/abs/1610.02357>).
///
/// # Examples
/// ```
/// use tapegrad::Conv2dOptions;
/// let options = Conv2dOptions::default().padding(1).stride(2);
/// assert_eq!(options.padding, [1, 1]);
/// // ⌊(28 + 2·1 − 1·(3 − 1) − 1)/2⌋ + 1 = 14
/// assert_eq!(options.output_size([28, 28], [3, 3]), Some([14, 14]));
/// // a 5-tap kernel dilated by 2 spans 9 pixels: too wide for 8 without padding
/// assert_eq!(Conv2dOptions::default().dilation(2).output_size([8, 8], [5, 5]), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Conv2dOptions {
    /// Step between windows, `[sh, sw]`, each at least 1.
    pub stride: [usize; 2],
    /// Zeros added on each side, `[ph, pw]`.
    pub padding: [usize; 2],
    /// Step between the taps of a window, `[dh, dw]`, each at least 1.
    pub dilation: [usize; 2],
    /// Number of channel groups, at least 1; divides both channel counts.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// The same options with stride `stride` along both axes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Conv2dOptions;
    /// let options = Conv2dOptions::default().stride(2);
    /// assert_eq!(options.stride, [2, 2]);
    /// assert_eq!(options.output_size([8, 8], [2, 2]), Some([4, 4]));
    /// ```
    pub fn stride(self, stride: usize) -> Self {
        Conv2dOptions {
            stride: [stride; 2],
            ..self
        }
    }

    /// The same options with `padding` zeros on every side.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Conv2dOptions;
    /// let same = Conv2dOptions::default().padding(1);
    /// assert_eq!(same.padding, [1, 1]);
    /// assert_eq!(same.output_size([5, 5], [3, 3]), Some([5, 5])); // "same" size for a 3×3 kernel
    /// ```
    pub fn padding(self, padding: usize) -> Self {
        Conv2dOptions {
            padding: [padding; 2],
            ..self
        }
    }

    /// The same options with dilation `dilation` along both axes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Conv2dOptions;
    /// let atrous = Conv2dOptions::default().dilation(2);
    /// assert_eq!(atrous.dilation, [2, 2]);
    /// // a 3-tap kernel dilated by 2 spans 5 pixels: 7 − 5 + 1 = 3 outputs
    /// assert_eq!(atrous.output_size([7, 7], [3, 3]), Some([3, 3]));
    /// ```
    pub fn dilation(self, dilation: usize) -> Self {
        Conv2dOptions {
            dilation: [dilation; 2],
            ..self
        }
    }

    /// The same options with `groups` channel groups.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let depthwise = Conv2dOptions::default().groups(8);
    /// assert_eq!(depthwise.groups, 8);
    /// // one 3×3 filter per channel: each sees 1 of the 8 input channels
    /// let conv = Conv2d::from_parts(tensor::ones(&[8, 1, 3, 3]), None, depthwise)?;
    /// assert_eq!(conv.in_channels(), 8);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn groups(self, groups: usize) -> Self {
        Conv2dOptions { groups, ..self }
    }

    /// The output's `[OH, OW]` for an input of `[H, W]` and a kernel of `[kh, kw]`:
    /// `OH = ⌊(H + 2·ph − dh·(kh − 1) − 1)/sh⌋ + 1`, as in PyTorch's `Conv2d` docs. `None`
    /// when the (dilated) kernel is wider than the padded input, or a kernel side, stride or
    /// dilation is 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Conv2dOptions;
    /// let options = Conv2dOptions::default();
    /// assert_eq!(options.output_size([6, 4], [3, 3]), Some([4, 2]));
    /// assert_eq!(options.output_size([2, 2], [3, 3]), None); // kernel wider than the input
    /// assert_eq!(options.stride(0).output_size([6, 6], [3, 3]), None);
    /// // a padded side beyond usize is no size, not a wrapped-around one
    /// assert_eq!(options.padding(usize::MAX / 2 + 1).output_size([5, 5], [3, 3]), None);
    /// ```
    pub fn output_size(&self, input: [usize; 2], kernel: [usize; 2]) -> Option<[usize; 2]> {
        let axis = |a: usize| {
            output_len(
                input[a],
                kernel[a],
                self.stride[a],
                self.padding[a],
                self.dilation[a],
            )
        };
        Some([axis(0)?, axis(1)?])
    }
}

/// `⌊(input + 2·padding − dilation·(kernel − 1) − 1)/stride⌋ + 1`, or `None` when the
/// dilated kernel does not fit in the padded input, a size is 0, or the padded input or the
/// dilated kernel is beyond `usize` (the one formula of every window's output size:
/// convolutions, pooling, [`Window`](crate::Window)).
pub(crate) fn output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = padding.checked_mul(2)?.checked_add(input)?;
    padded.checked_sub(span).map(|room| room / stride + 1)
}

impl<'t> Var<'t> {
    /// 2-D cross-correlation of a batch of images with a bank of filters, plus a bias per
    /// output channel (`torch.nn.functional.conv2d`, which, like every deep learning
    /// library, does not flip the kernel):
    ///
    /// `y[n, o, oy, ox] = b[o] + Σ_{c, i, j} W[o, c, i, j] · x[n, g·cg + c, oy·sh + i·dh − ph, ox·sw + j·dw − pw]`
    ///
    /// where `g = o / (O/groups)` is the output channel's group, `cg = C/groups`, and `x` is
    /// 0 outside the image (zero padding). See [`Conv2dOptions`] for stride, padding,
    /// dilation and groups.
    ///
    /// Backward, with `G = ∂L/∂y`: `∂L/∂b[o] = Σ_{n, oy, ox} G[n, o, oy, ox]`;
    /// `∂L/∂W[o, c, i, j] = Σ_{n, oy, ox} G[n, o, oy, ox] · x[n, …]` (the same tap as the
    /// forward); `∂L/∂x` adds `G[n, o, oy, ox] · W[o, c, i, j]` into every pixel each
    /// output read (a transposed convolution).
    ///
    /// It runs as im2col and matrix products (Chellapilla et al. 2006,
    /// <https://inria.hal.science/inria-00112631>): each image's patches are unfolded into a
    /// `[cg·kh·kw, OH·OW]` matrix in a buffer the tape reuses, and the weight, read as a
    /// `[O, cg·kh·kw]` matrix with the bias as one more column, multiplies it. The backward
    /// unfolds the patches again rather than keeping them.
    ///
    /// # Shapes
    /// `x: [N, C, H, W]`, `weight: [O, C/groups, kh, kw]`, `bias: [O]` →
    /// `[N, O, OH, OW]`, with `OH = ⌊(H + 2·ph − dh·(kh − 1) − 1)/sh⌋ + 1` and `OW` alike
    /// ([`Conv2dOptions::output_size`]).
    ///
    /// # Panics
    /// If `x` or `weight` is not 4-D, the channels do not match
    /// (`conv2d: expected input channels 3 (weight [8, 3, 3, 3], groups 1); x shape
    /// [2, 4, 8, 8]`), `groups` does not divide the output channels, `bias` is not `[O]`, a
    /// stride or dilation is 0, or the dilated kernel is larger than the padded image.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2dOptions, Tape};
    /// let tape = Tape::new();
    /// // a 3×3 image 1..9 and a 2×2 kernel [[1, 0], [0, -1]], bias 10
    /// let x = tape.leaf(tensor::from_vec((1..=9).map(|v| v as f32).collect(), &[1, 1, 3, 3])?);
    /// let w = tape.leaf(tensor::from_vec(vec![1.0, 0.0, 0.0, -1.0], &[1, 1, 2, 2])?);
    /// let b = tape.leaf(tensor::from_vec(vec![10.0], &[1])?);
    /// let y = x.conv2d(w, Some(b), Conv2dOptions::default());
    /// // each output is x[i, j] − x[i + 1, j + 1] + 10 = −4 + 10
    /// assert_eq!(y.value(), tensor::full(&[1, 1, 2, 2], 6.0));
    /// // with one zero of padding on each side: a 4×4 output; the corner sees only −x[0, 0]
    /// let padded = x.conv2d(w, None, Conv2dOptions::default().padding(1));
    /// assert_eq!(padded.shape(), [1, 1, 4, 4]);
    /// assert_eq!(padded.value()[[0, 0, 0, 0]], -1.0);
    /// let g = y.sum().backward();
    /// // ∂Σy/∂b = number of outputs; ∂Σy/∂W[0, 0, 0, 0] = sum of the top-left 2×2 window sums
    /// assert_eq!(g.get(b).unwrap()[[0]], 4.0);
    /// assert_eq!(g.get(w).unwrap()[[0, 0, 0, 0]], 1.0 + 2.0 + 4.0 + 5.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn conv2d(self, weight: Var<'t>, bias: Option<Var<'t>>, options: Conv2dOptions) -> Var<'t> {
        let geo = geometry(&self.shape(), &weight.shape(), options);
        convolve(self, weight, bias, geo, false)
    }

    /// [`Var::conv2d`] followed by [`Var::relu`] and 2×2 stride-2 max pooling, as one op
    /// with the same values and gradients bit for bit: each image's convolution output is
    /// pooled while it is still in cache, and the backward forms each image's output
    /// gradient from the pooled one just before that image's products, instead of the full
    /// `[N, O, OH, OW]` gradient going through memory. `None` (nothing recorded) when the
    /// output's height or width is odd, where the 2×2 windows would not tile it.
    ///
    /// # Panics
    /// As [`Var::conv2d`].
    #[track_caller]
    pub(crate) fn conv2d_relu_max_pool_2x2(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        options: Conv2dOptions,
    ) -> Option<Var<'t>> {
        let geo = geometry(&self.shape(), &weight.shape(), options);
        if !(geo.oh.is_multiple_of(2) && geo.ow.is_multiple_of(2)) {
            return None;
        }
        Some(convolve(self, weight, bias, geo, true))
    }
}

/// Checks that the bias, if any, is `[O]`.
#[track_caller]
fn check_bias(weight: Var<'_>, bias: Option<Var<'_>>, geo: &Geometry) {
    if let Some(b) = bias {
        let bs = b.shape();
        assert!(
            bs == [geo.o],
            "conv2d: expected bias shape [{}]; bias shape {bs:?}, weight shape {:?}",
            geo.o,
            weight.shape()
        );
    }
}

/// The weight as one `[O, cg·kh·kw]` matrix (a free reshape), with the bias as one more
/// column.
fn weight_matrix<'t>(weight: Var<'t>, bias: Option<Var<'t>>, geo: &Geometry) -> Var<'t> {
    let matrix = weight.reshape(&[geo.o, geo.k()]);
    match bias {
        Some(b) => Var::concat(&[matrix, b.reshape(&[geo.o, 1])], 1),
        None => matrix,
    }
}

/// Checks the shapes and options of a convolution and works out its sizes.
#[track_caller]
fn geometry(xs: &[usize], ws: &[usize], options: Conv2dOptions) -> Geometry {
    assert!(
        xs.len() == 4 && ws.len() == 4,
        "conv2d: expected a 4-D input [N, C, H, W] and a 4-D weight [O, C/groups, kh, kw]; \
         x shape {xs:?}, weight shape {ws:?}"
    );
    let groups = options.groups;
    assert!(
        groups >= 1 && ws[0].is_multiple_of(groups),
        "conv2d: groups {groups} must be at least 1 and divide the output channels; \
         weight shape {ws:?}"
    );
    assert!(
        xs[1] == ws[1] * groups,
        "conv2d: expected input channels {} (weight {ws:?}, groups {groups}); x shape {xs:?}",
        ws[1] * groups
    );
    let out = options.output_size([xs[2], xs[3]], [ws[2], ws[3]]);
    let Some([oh, ow]) = out.filter(|_| ws[2] > 0 && ws[3] > 0) else {
        panic!(
            "conv2d: the kernel does not fit the padded image, or a stride, dilation or \
             kernel side is 0; x shape {xs:?}, weight shape {ws:?}, {options:?}"
        )
    };
    Geometry {
        c: xs[1],
        h: xs[2],
        w: xs[3],
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
        oh,
        ow,
    }
}

/// The convolution primitive, one node on the tape; with `relu_pool`, its output through a
/// ReLU and 2×2 max pooling in the same node (the pooling windows' routes, which the
/// backward needs, saved beside it). When a gradient flows to `x`, `weight` or `bias`, the
/// node's second input is the weight matrix `[O, cg·kh·kw (+ 1 when bias)]` with the bias joined
/// as a column (one matrix for the weight gradient's product); when none does, the kernels
/// read the weight and the bias where they are, nothing is joined, and a fused op keeps
/// only one image's output per thread (written over image by image). The output is kept
/// beside a pooled one either way, and goes back to the pool at the reset: handed back at
/// once, the next convolution's smaller values took its buffer, and the next step's output
/// found the buffers it fitted holding too few elements, to be filled again.
#[track_caller]
fn convolve<'t>(
    x: Var<'t>,
    weight: Var<'t>,
    bias: Option<Var<'t>>,
    geo: Geometry,
    relu_pool: bool,
) -> Var<'t> {
    check_bias(weight, bias, &geo);
    // a strided input (a permuted view) is copied to row-major order first
    let x = x.contiguous();
    let tape = x.tape();
    let image = x.data();
    let op = if relu_pool {
        "conv2d_relu_max_pool2d"
    } else {
        "conv2d"
    };
    let learns =
        x.requires_grad() || weight.requires_grad() || bias.is_some_and(Var::requires_grad);
    if !learns {
        // strided values (permuted views) are copied to row-major order first
        let (w, b) = (
            weight.contiguous().data(),
            bias.map(|b| b.contiguous().data()),
        );
        let weights = conv::Weights {
            matrix: matrix_view(&w, geo.o, geo.k()),
            bias: b.as_ref().map(|b| ArrayView1::from(row_major(b))),
        };
        let (value, saved) =
            forward_value(tape, row_major(&image), weights, &geo, relu_pool, false);
        return tape.record_saving(op, &[x, weight], value, saved, |_| [None::<Tensor>, None]);
    }
    let matrix = weight_matrix(weight, bias, &geo);
    let has_bias = bias.is_some();
    let k = geo.k() + usize::from(has_bias);
    let joined = matrix.data();
    let weights = conv::Weights::joined(matrix_view(&joined, geo.o, k), &geo, has_bias);
    let (value, saved) = forward_value(tape, row_major(&image), weights, &geo, relu_pool, true);
    let (_, cols_len, dcols_len) = conv::scratch_lens(&geo, has_bias);
    let dw_column_major = conv::weight_grad_column_major(&geo, has_bias);
    tape.record_saving(op, &[x, matrix], value, saved, move |b| {
        let copied = (!b.grad.is_standard_layout()).then(|| b.tape.copy(b.grad.view()));
        let grad = copied.as_ref().unwrap_or(b.grad);
        let mut dw = b.needs[1].then(|| {
            let mut dw = b.tape.scratch(&[geo.o, k], dw_column_major);
            dw.fill(0.0);
            dw
        });
        let mut dx = b.needs[0].then(|| b.tape.scratch(b.inputs[0].shape(), false));
        let mut cols = b.tape.scratch(&[cols_len], false);
        let mut dcols = b.tape.scratch(&[dcols_len], false);
        let mut out_grad = b.saved.map(|_| b.tape.scratch(&[geo.o * geo.l()], false));
        let output_grad = match (b.saved, out_grad.as_mut()) {
            (Some(routes), Some(scratch)) => OutputGrad::Pooled {
                pooled: row_major(grad),
                routes: row_major(routes),
                scratch: row_major_mut(scratch),
            },
            _ => OutputGrad::Given(row_major(grad)),
        };
        conv::backward(
            row_major(b.inputs[0]),
            output_grad,
            matrix_view(b.inputs[1], geo.o, k),
            &geo,
            has_bias,
            dw.as_mut().map(view2_mut),
            dx.as_mut().map(row_major_mut),
            row_major_mut(&mut cols),
            row_major_mut(&mut dcols),
        );
        for buffer in [cols, dcols].into_iter().chain(copied).chain(out_grad) {
            b.tape.reuse(buffer);
        }
        [dx, dw]
    })
}

/// The convolution of the row-major `image` in buffers from `tape`'s pool, as the node's
/// value and what it saves: the output `[N, O, OH, OW]` and nothing, or with `relu_pool`
/// that output through a ReLU and 2×2 max pooling (of which only one image's output per
/// thread is kept, written over image by image: [`conv::forward`]) and, when `learns`, the
/// pooling windows' routes for the backward, else that per-thread output.
fn forward_value(
    tape: &Tape,
    image: &[Elem],
    weights: conv::Weights<'_>,
    geo: &Geometry,
    relu_pool: bool,
    learns: bool,
) -> (Tensor, Option<Tensor>) {
    let n = image.len() / geo.image_len();
    let forward_len = conv::scratch_lens(geo, weights.bias.is_some()).0;
    let pieces = crate::threads::pieces(n * geo.o * geo.l(), n);
    let images_out = if relu_pool { pieces } else { n };
    let mut out = tape.scratch(&[images_out, geo.o, geo.oh, geo.ow], false);
    let pooled_shape = [n, geo.o, geo.oh / 2, geo.ow / 2];
    let mut pooled = relu_pool.then(|| tape.scratch(&pooled_shape, false));
    let mut routes = (relu_pool && learns).then(|| tape.scratch(&pooled_shape, false));
    let mut cols = tape.scratch(&[pieces * forward_len], false);
    conv::forward(
        image,
        weights,
        geo,
        row_major_mut(&mut cols),
        row_major_mut(&mut out),
        pooled.as_mut().map(|pooled| conv::Pooling {
            values: row_major_mut(pooled),
            routes: routes.as_mut().map(row_major_mut),
        }),
        pieces,
    );
    tape.reuse(cols);
    match (pooled, routes) {
        (Some(pooled), Some(routes)) => {
            tape.reuse(out);
            (pooled, Some(routes))
        }
        (Some(pooled), None) => (pooled, Some(out)),
        (None, _) => (out, None),
    }
}

/// A row-major `[rows, cols]` value as a matrix view.
pub(super) fn matrix_view<S: Data<Elem = Elem>>(
    value: &ArrayBase<S, IxDyn>,
    rows: usize,
    cols: usize,
) -> ArrayView2<'_, Elem> {
    ArrayView2::from_shape((rows, cols), row_major(value))
        .expect("internal error: weight matrix shape")
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::tensor::Tensor;
    use crate::{Tape, gradcheck};

    /// The definition, loop by loop.
    fn naive(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: Conv2dOptions) -> Tensor {
        let (xs, ws) = (x.shape(), w.shape());
        let [oh, ow] = o.output_size([xs[2], xs[3]], [ws[2], ws[3]]).unwrap();
        let og = ws[0] / o.groups;
        let mut y = Tensor::zeros(ndarray::IxDyn(&[xs[0], ws[0], oh, ow]));
        for ((n, oc, oy, ox), v) in y
            .view_mut()
            .into_dimensionality::<ndarray::Ix4>()
            .unwrap()
            .indexed_iter_mut()
        {
            let g = oc / og;
            let mut sum = b.map_or(0.0, |b| b[[oc]]);
            for c in 0..ws[1] {
                for i in 0..ws[2] {
                    for j in 0..ws[3] {
                        let iy =
                            (oy * o.stride[0] + i * o.dilation[0]) as isize - o.padding[0] as isize;
                        let ix =
                            (ox * o.stride[1] + j * o.dilation[1]) as isize - o.padding[1] as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < xs[2] && (ix as usize) < xs[3] {
                            let xv = x[[n, g * ws[1] + c, iy as usize, ix as usize]];
                            sum += w[[oc, c, i, j]] * xv;
                        }
                    }
                }
            }
            *v = sum;
        }
        y
    }

    /// (x shape, weight shape, options) of the cases checked: plain, stride, padding,
    /// dilation, asymmetric settings, groups, depthwise, batch of 1, 1×1 kernels, outputs as
    /// wide as the inputs, more than 32 output channels.
    fn cases() -> Vec<([usize; 4], [usize; 4], Conv2dOptions)> {
        let d = Conv2dOptions::default();
        vec![
            ([2, 3, 5, 6], [4, 3, 3, 3], d),
            ([2, 2, 7, 7], [3, 2, 3, 2], d.stride(2)),
            ([1, 2, 4, 5], [2, 2, 3, 3], d.padding(1)),
            ([2, 1, 7, 6], [2, 1, 3, 2], d.dilation(2).padding(1)),
            (
                [1, 2, 6, 7],
                [3, 2, 2, 3],
                Conv2dOptions {
                    stride: [1, 2],
                    padding: [1, 0],
                    dilation: [2, 1],
                    groups: 1,
                },
            ),
            ([2, 4, 5, 5], [6, 2, 3, 3], d.groups(2).padding(1)),
            ([1, 3, 5, 4], [3, 1, 3, 3], d.groups(3).stride(2).padding(1)),
            ([2, 3, 4, 4], [5, 3, 1, 1], d),
            // outputs as wide as the inputs: dilated, and a kernel wider than the image
            // (taps entirely in the padding)
            ([2, 2, 6, 5], [2, 2, 3, 3], d.dilation(2).padding(2)),
            ([1, 1, 2, 3], [2, 1, 5, 5], d.padding(2)),
            // strided, with taps whose every column lies in the padding: a 5×5 kernel on one
            // pixel, a ResNet stem (7×7, stride 2, padding 3) on 2×2, dilated on one pixel
            ([1, 1, 1, 1], [1, 1, 5, 5], d.stride(2).padding(2)),
            ([1, 2, 2, 2], [2, 2, 7, 7], d.stride(2).padding(3)),
            (
                [2, 1, 1, 1],
                [2, 1, 3, 3],
                d.stride(2).padding(2).dilation(2),
            ),
            // more than 32 output channels, whose weight gradient `gemm` forms (fewer take
            // dot products): into a row-major matrix when they outnumber the patch rows,
            // else a column-major one
            ([1, 2, 4, 3], [34, 2, 3, 3], d.padding(1)),
            ([1, 5, 3, 4], [33, 5, 3, 3], d.padding(1)),
            // padding beyond the kernel's reach: the input gradient is not a convolution of
            // the output gradient (it drops the frame), so it takes the patches' route
            ([2, 2, 3, 3], [2, 2, 1, 1], d.padding(1)),
            // with AVX-512, vectors along 32 output channels (rows of 14, at least 32 taps):
            // in the forward, then in the input gradient's convolution (32 input channels)
            ([1, 4, 3, 14], [32, 4, 3, 3], d.padding(1)),
            ([1, 32, 2, 14], [4, 32, 3, 3], d.padding(1)),
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for (k, (xs, ws, o)) in cases().into_iter().enumerate() {
            let (x, w, b) = (random(&xs, 1), random(&ws, 2), random(&[ws[0]], 3));
            let tape = Tape::new();
            let (xv, wv, bv) = (
                tape.constant(x.clone()),
                tape.constant(w.clone()),
                tape.constant(b.clone()),
            );
            for bias in [Some(&b), None] {
                let y = xv.conv2d(wv, bias.map(|_| bv), o).value();
                let expected = naive(&x, &w, bias, o);
                assert_eq!(y.shape(), expected.shape(), "case {k}");
                let diff = (&y - &expected).fold(0.0f32, |m, d| m.max(d.abs()));
                assert!(diff < 1e-4, "case {k}: {diff}");
            }
        }
    }

    #[test]
    fn with_no_gradient_to_flow_the_weight_and_bias_are_read_in_place_with_the_same_numbers() {
        // each case, with and without bias, alone and fused with a ReLU and pooling (where
        // the output's sides are even): constants give what leaves give, bit for bit, with
        // no join of weight and bias on the tape; two more cases with even sides, direct
        // (stride 1) and im2col (stride 2), so that the fused op runs on both kernels
        let d = Conv2dOptions::default().padding(1);
        let even = [
            ([2, 3, 6, 8], [4, 3, 3, 3], d),
            ([1, 2, 8, 8], [3, 2, 3, 3], d.stride(2)),
        ];
        for (k, (xs, ws, o)) in cases().into_iter().chain(even).enumerate() {
            let (x, w, b) = (random(&xs, 1), random(&ws, 2), random(&[ws[0]], 3));
            for (with_bias, fused) in [(false, false), (true, false), (false, true), (true, true)] {
                let run = |tape: &Tape, make: fn(&Tape, Tensor) -> Var<'_>| {
                    let (xv, wv) = (make(tape, x.clone()), make(tape, w.clone()));
                    let bv = with_bias.then(|| make(tape, b.clone()));
                    let y = match fused {
                        true => xv.conv2d_relu_max_pool_2x2(wv, bv, o)?,
                        false => xv.conv2d(wv, bv, o),
                    };
                    Some((y.value(), y.requires_grad()))
                };
                let (learning, frozen) = (Tape::new(), Tape::new());
                let what = format!("case {k}, bias {with_bias}, fused {fused}");
                let Some((expected, learns)) = run(&learning, |t, v| t.leaf(v)) else {
                    continue; // odd sides: no fused op
                };
                let (y, requires_grad) = run(&frozen, |t, v| t.constant(v)).unwrap();
                assert!(learns && !requires_grad, "{what}");
                assert_eq!(y, expected, "{what}");
                // inputs and the convolution only
                assert_eq!(frozen.len(), 3 + usize::from(with_bias), "{what}");
            }
        }
    }

    #[test]
    fn gradcheck_input_weight_and_bias() {
        for (k, (xs, ws, o)) in cases().into_iter().enumerate() {
            let inputs = [
                random(&xs, 10 + k as u64),
                random(&ws, 20),
                random(&[ws[0]], 30),
            ];
            gradcheck(|v| v[0].conv2d(v[1], Some(v[2]), o), &inputs)
                .unwrap_or_else(|e| panic!("case {k}: {e}"));
            gradcheck(|v| v[0].conv2d(v[1], None, o), &inputs[..2])
                .unwrap_or_else(|e| panic!("case {k} without bias: {e}"));
        }
    }

    #[test]
    fn hand_derived_gradients() {
        // x = [[1, 2], [3, 4]], W = [[a]] = [[2]] (1×1), b = 1: y = 2x + 1
        // L = Σ y: ∂L/∂x = 2 everywhere, ∂L/∂W = Σ x = 10, ∂L/∂b = 4
        let tape = Tape::new();
        let x = tape.leaf(t(&[1, 1, 2, 2], &[1., 2., 3., 4.]));
        let w = tape.leaf(t(&[1, 1, 1, 1], &[2.]));
        let b = tape.leaf(t(&[1], &[1.]));
        let y = x.conv2d(w, Some(b), Conv2dOptions::default());
        assert_eq!(y.value(), t(&[1, 1, 2, 2], &[3., 5., 7., 9.]));
        let g = y.sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[1, 1, 2, 2], &[2.; 4]));
        assert_eq!(g.get(w).unwrap(), t(&[1, 1, 1, 1], &[10.]));
        assert_eq!(g.get(b).unwrap(), t(&[1], &[4.]));
    }

    #[test]
    fn a_batch_equals_one_image_at_a_time() {
        let (xs, ws) = ([5, 16, 50, 50], [3, 16, 3, 3]);
        let options = Conv2dOptions::default().padding(1);
        let (x, w, bias) = (random(&xs, 7), random(&ws, 8), random(&[3], 9));
        let upstream = random(&[5, 3, 50, 50], 10);
        let run = |x: Tensor, upstream: Tensor| {
            let tape = Tape::new();
            let (xv, wv, bv) = (tape.leaf(x), tape.leaf(w.clone()), tape.leaf(bias.clone()));
            let y = xv.conv2d(wv, Some(bv), options);
            let g = (y * tape.constant(upstream)).sum().backward();
            let grads = [xv, wv, bv].map(|v| g.get(v).unwrap().clone());
            (y.value(), grads)
        };
        let (y, [dx, dw, db]) = run(x.clone(), upstream.clone());
        let (mut dw_sum, mut db_sum) = (Tensor::zeros(dw.raw_dim()), Tensor::zeros(db.raw_dim()));
        for i in 0..5 {
            let one = |t: &Tensor| t.slice_axis(ndarray::Axis(0), (i..i + 1).into()).to_owned();
            let (yi, [dxi, dwi, dbi]) = run(one(&x), one(&upstream));
            let close = |a: &Tensor, b: &Tensor| (a - b).fold(0.0f32, |m, d| m.max(d.abs())) < 1e-4;
            assert!(close(&yi, &one(&y)) && close(&dxi, &one(&dx)), "image {i}");
            dw_sum += &dwi;
            db_sum += &dbi;
        }
        assert!((&dw_sum - &dw).fold(0.0f32, |m, d| m.max(d.abs())) < 1e-2);
        assert!((&db_sum - &db).fold(0.0f32, |m, d| m.max(d.abs())) < 1e-2);
    }

    #[test]
    fn images_split_across_threads_give_the_same_output_bit_for_bit() {
        // 7 images: pieces of 3, 3 and 1 (or 4 and 3); a bias row and strided taps
        let (xs, ws) = ([7, 4, 9, 11], [6, 4, 3, 3]);
        let options = Conv2dOptions::default().padding(1).stride(2);
        let geo = geometry(&xs, &ws, options);
        let (x, w) = (random(&xs, 11), random(&[6, 4 * 9 + 1], 12));
        let cols_len = conv::scratch_lens(&geo, true).0;
        let run = |pieces: usize| {
            let mut out = Tensor::zeros(&[7, 6, geo.oh, geo.ow][..]);
            let mut cols = vec![f32::NAN; pieces * cols_len];
            let weights = conv::Weights::joined(matrix_view(&w, 6, 4 * 9 + 1), &geo, true);
            conv::forward(
                row_major(&x),
                weights,
                &geo,
                &mut cols,
                row_major_mut(&mut out),
                None,
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

    #[test]
    fn pooled_output_is_the_same_with_one_images_output_per_piece_written_over() {
        // 7 images, fused ReLU and pooling: the output kept whole, or one image's worth per
        // piece (what an inference tape keeps), on 1, 2 and 3 pieces
        let (xs, ws) = ([7, 4, 8, 10], [6, 4, 3, 3]);
        let geo = geometry(&xs, &ws, Conv2dOptions::default().padding(1));
        let (x, w, b) = (random(&xs, 13), random(&[6, 36], 14), random(&[6], 15));
        let cols_len = conv::scratch_lens(&geo, true).0;
        let run = |pieces: usize, images_out: usize| {
            let mut out = vec![f32::NAN; images_out * 6 * geo.l()];
            let mut pooled = Tensor::zeros(&[7, 6, geo.oh / 2, geo.ow / 2][..]);
            let mut cols = vec![f32::NAN; pieces * cols_len];
            let weights = conv::Weights {
                matrix: matrix_view(&w, 6, 36),
                bias: Some(b.view().into_dimensionality().unwrap()),
            };
            let pooled_out = Some(conv::Pooling {
                values: row_major_mut(&mut pooled),
                routes: None,
            });
            conv::forward(
                row_major(&x),
                weights,
                &geo,
                &mut cols,
                &mut out,
                pooled_out,
                pieces,
            );
            pooled
        };
        let whole = run(1, 7);
        assert!(whole.iter().all(|v| v.is_finite() && *v >= 0.0));
        for pieces in [1, 2, 3] {
            assert_eq!(run(pieces, pieces), whole, "{pieces} pieces");
        }
    }

    #[test]
    fn a_permuted_input_and_a_dirty_pool_give_the_same_result() {
        let (x, w) = (random(&[2, 5, 5, 3], 4), random(&[2, 3, 3, 3], 5));
        let mut tape = Tape::new();
        // fill the pool with garbage from a previous step
        let junk = tape.constant(random(&[4096], 6)).exp();
        let _ = junk.sum();
        tape.reset();
        let nchw = x.clone().permuted_axes(vec![0, 3, 1, 2]);
        let expected = naive(
            &nchw.as_standard_layout().to_owned(),
            &w,
            None,
            Conv2dOptions::default().padding(1),
        );
        let xv = tape.constant(x).permute(&[0, 3, 1, 2]);
        let y = xv.conv2d(tape.constant(w), None, Conv2dOptions::default().padding(1));
        let diff = (&y.value() - &expected).fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(diff < 1e-4, "{diff}");
    }

    #[test]
    #[should_panic(
        expected = "conv2d: expected input channels 3 (weight [8, 3, 3, 3], groups 1); x shape [2, 4, 8, 8]"
    )]
    fn channel_mismatch_panics() {
        let tape = Tape::new();
        let x = tape.constant(random(&[2, 4, 8, 8], 0));
        let _ = x.conv2d(
            tape.constant(random(&[8, 3, 3, 3], 0)),
            None,
            Conv2dOptions::default(),
        );
    }

    #[test]
    #[should_panic(expected = "conv2d: the kernel does not fit the padded image")]
    fn kernel_larger_than_the_image_panics() {
        let tape = Tape::new();
        let x = tape.constant(random(&[1, 1, 2, 2], 0));
        let _ = x.conv2d(
            tape.constant(random(&[1, 1, 3, 3], 0)),
            None,
            Conv2dOptions::default(),
        );
    }

    #[test]
    #[should_panic(expected = "conv2d: expected bias shape [2]")]
    fn wrong_bias_panics() {
        let tape = Tape::new();
        let x = tape.constant(random(&[1, 1, 3, 3], 0));
        let w = tape.constant(random(&[2, 1, 2, 2], 0));
        let _ = x.conv2d(
            w,
            Some(tape.constant(random(&[3], 0))),
            Conv2dOptions::default(),
        );
    }
}
