//! [`Grad`]: a gradient as the backward pass hands it on, either the tensor itself or, for a
//! matrix product's weight, the two factors whose product it is; and [`ParamGrad`], the
//! handle through which an optimizer reads a parameter's gradient whichever form it has.

use crate::kernels::gemm::{gemm, view2, view2_mut};
use crate::kernels::pool::BufferPool;
use crate::kernels::simd::with_simd;
use crate::tensor::{Elem, SharedTensor, Tensor};
use crate::threads::parallel;
use ndarray::{ArrayView1, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Dimension, Ix2, IxDyn, Zip};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A gradient as the backward pass hands it on.
#[derive(Debug, Clone)]
pub(crate) enum Grad {
    /// The gradient itself.
    Dense(Tensor),
    /// A matrix product's gradient for a leaf, `leftᵀ·right` (`[m, r]ᵀ·[m, c] -> [r, c]`),
    /// kept as its two factors. For a layer's weight and a batch of `m` rows the factors are
    /// far smaller than the product (at `m = 1` they are two vectors), and plain SGD applies
    /// them with one accumulating product, `W ← W − lr·leftᵀ·right`, without ever writing
    /// the gradient out.
    Outer {
        left: SharedTensor,
        right: SharedTensor,
    },
    /// The sum of the gradients of a batch's shards (see [`TrainStep`](crate::TrainStep)),
    /// in shard order.
    Sum(Vec<Grad>),
}

/// A parameter's gradient as an optimizer's update rule receives it: a handle on the tensor,
/// or on the factors of a matrix product's weight gradient (`Gᵀ·X`, never written out unless
/// asked for), or on the parts of a batch's shards, possibly scaled by gradient clipping.
///
/// An update that only adds a multiple of the gradient to a buffer ([`ParamGrad::scaled_add_to`],
/// [`ParamGrad::mix_into`]) gets the fast path for free: on factors it is one accumulating
/// matrix product that reads and writes the buffer once. An update that needs the gradient
/// element by element asks for it with [`ParamGrad::dense`] (formed once and kept) or
/// [`ParamGrad::dense_in`] (formed in a buffer of the caller's, reused from step to step).
/// [`Gradients::dense_formed`](crate::Gradients::dense_formed) counts how often a gradient
/// kept in parts was formed.
///
/// # Examples
/// Plain gradient descent on a layer's weight, `W ← W − lr·g`, without forming `g`:
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Tape};
/// let layer = Linear::from_parts(tensor::zeros(&[2, 3]), None)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0], &[1, 3])?);
/// let grads = layer.forward(x, Mode::Train).sum().backward();
/// drop(tape);
/// let g = grads.param_grad(layer.weight()).unwrap();
/// assert!(g.is_factored() && g.is_finite());
/// assert_eq!(g.shape(), vec![2, 3]);
/// let mut w = layer.weight().value().to_owned();
/// g.scaled_add_to(w.view_mut(), -0.5); // ∂L/∂W = [[1, 2, 3], [1, 2, 3]]
/// assert_eq!(w.as_slice().unwrap(), &[-0.5, -1.0, -1.5, -0.5, -1.0, -1.5]);
/// assert_eq!(grads.dense_formed(), 0);
/// assert_eq!(g.dense()[[1, 2]], 3.0); // formed now, once
/// assert_eq!(grads.dense_formed(), 1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ParamGrad<'a> {
    source: Source<'a>,
    /// A factor on every element (gradient clipping), 1 otherwise.
    scale: Elem,
    /// The counter of [`Gradients::dense_formed`](crate::Gradients::dense_formed).
    formed: &'a FormCounter,
}

/// Where a [`ParamGrad`] reads its gradient.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// As the backward pass left it, with the leaf's caches of the formed tensor and of the
    /// bound on its elements.
    Leaf {
        grad: &'a Grad,
        dense: &'a OnceLock<Tensor>,
        bound: &'a OnceLock<Option<f64>>,
    },
    /// A tensor of the optimizer's own (a gradient clipped by value).
    Tensor(&'a Tensor),
}

/// Counts the gradients kept in parts that were formed as one tensor.
#[derive(Debug, Default)]
pub(crate) struct FormCounter(AtomicUsize);

impl FormCounter {
    pub(crate) fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Clone for FormCounter {
    fn clone(&self) -> Self {
        FormCounter(AtomicUsize::new(self.get()))
    }
}

impl<'a> ParamGrad<'a> {
    /// The handle on a leaf's gradient `grad`, whose formed tensor `dense` caches and whose
    /// [`Grad::finite_bound`] `bound` caches.
    pub(crate) fn of_leaf(
        grad: &'a Grad,
        dense: &'a OnceLock<Tensor>,
        bound: &'a OnceLock<Option<f64>>,
        formed: &'a FormCounter,
    ) -> Self {
        ParamGrad {
            source: Source::Leaf { grad, dense, bound },
            scale: 1.0,
            formed,
        }
    }

    /// The handle on `tensor` (the gradient clipped by value) in place of this gradient,
    /// with the same scale and counter.
    pub(crate) fn replaced_by<'b>(self, tensor: &'b Tensor) -> ParamGrad<'b>
    where
        'a: 'b,
    {
        ParamGrad {
            source: Source::Tensor(tensor),
            scale: self.scale,
            formed: self.formed,
        }
    }

    /// The same gradient times `factor`.
    pub(crate) fn scaled(self, factor: Elem) -> Self {
        ParamGrad {
            scale: self.scale * factor,
            ..self
        }
    }

    /// The unscaled gradient as a [`Grad`], or the tensor.
    fn parts(&self) -> std::result::Result<&'a Grad, &'a Tensor> {
        match self.source {
            Source::Leaf { grad, .. } => Ok(grad),
            Source::Tensor(tensor) => Err(tensor),
        }
    }

    /// The gradient's shape (the parameter's).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let w = Param::weight(tensor::ones(&[2, 3]));
    /// let tape = Tape::new();
    /// let grads = tape.param(&w).sum().backward();
    /// assert_eq!(grads.param_grad(&w).unwrap().shape(), vec![2, 3]);
    /// ```
    pub fn shape(&self) -> Vec<usize> {
        match self.parts() {
            Ok(grad) => grad.shape(),
            Err(tensor) => tensor.shape().to_vec(),
        }
    }

    /// Whether the gradient is kept in parts (the factors of a matrix product, or the
    /// gradients of a batch's shards) rather than as one tensor: then
    /// [`ParamGrad::dense`] and [`ParamGrad::dense_in`] must compute it, while
    /// [`ParamGrad::scaled_add_to`] and [`ParamGrad::mix_into`] apply the parts directly.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Tape};
    /// let layer = Linear::from_parts(tensor::ones(&[2, 3]), Some(tensor::zeros(&[2])))?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::ones(&[4, 3]));
    /// let grads = layer.forward(x, Mode::Train).sum().backward();
    /// // the weight's gradient Gᵀ·X stays as its two factors; the bias's is one tensor
    /// assert!(grads.param_grad(layer.weight()).unwrap().is_factored());
    /// assert!(!grads.param_grad(layer.bias().unwrap()).unwrap().is_factored());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn is_factored(&self) -> bool {
        matches!(self.parts(), Ok(Grad::Outer { .. } | Grad::Sum(_)))
    }

    /// Whether every element is finite. Factors are checked without forming their product
    /// when a bound on it shows it finite.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let w = Param::weight(tensor::ones(&[2]));
    /// let tape = Tape::new();
    /// let finite = (tape.param(&w) * 3.0).sum().backward();
    /// assert!(finite.param_grad(&w).unwrap().is_finite());
    /// let overflowing = (tape.param(&w) * f32::INFINITY).sum().backward();
    /// assert!(!overflowing.param_grad(&w).unwrap().is_finite());
    /// ```
    pub fn is_finite(&self) -> bool {
        self.finite_bound().is_some()
    }

    /// A bound on the largest absolute value of the gradient (never below it, at most
    /// `f32::MAX`), or `None` when an element is NaN or infinite. Update rules use it to
    /// check that a step cannot overflow without reading the gradient again.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let w = Param::weight(tensor::ones(&[2]));
    /// let tape = Tape::new();
    /// let grads = (tape.param(&w) * -3.0).sum().backward(); // ∂L/∂w = [-3, -3]
    /// let bound = grads.param_grad(&w).unwrap().finite_bound().unwrap();
    /// assert!(bound >= 3.0);
    /// let grads = (tape.param(&w) * f32::NAN).sum().backward();
    /// assert_eq!(grads.param_grad(&w).unwrap().finite_bound(), None);
    /// ```
    pub fn finite_bound(&self) -> Option<f64> {
        let bound = match self.source {
            Source::Leaf { grad, bound, .. } => (*bound.get_or_init(|| grad.finite_bound()))?,
            Source::Tensor(tensor) => f64::from(max_abs(tensor)?),
        };
        let scaled = bound * f64::from(self.scale.abs());
        (scaled <= f64::from(Elem::MAX)).then_some(scaled)
    }

    /// `dst ← dst + alpha·g`. On factors this is one accumulating matrix product, and the
    /// gradient is never formed.
    ///
    /// # Panics
    /// When `dst` does not have the gradient's shape.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let w = Param::weight(tensor::from_vec(vec![1.0, 2.0], &[2])?);
    /// let tape = Tape::new();
    /// let grads = tape.param(&w).square().sum().backward(); // ∂L/∂w = 2w = [2, 4]
    /// let mut dst = tensor::ones(&[2]);
    /// grads.param_grad(&w).unwrap().scaled_add_to(dst.view_mut(), 0.5);
    /// assert_eq!(dst.as_slice().unwrap(), &[2.0, 3.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn scaled_add_to(&self, dst: ArrayViewMutD<'_, Elem>, alpha: Elem) {
        self.mix_into(dst, 1.0, alpha);
    }

    /// `dst ← beta·dst + alpha·g` (`dst` is not read when `beta` is 0), e.g. a momentum
    /// buffer's `b ← μ·b + g`. On factors this is one accumulating matrix product, and the
    /// gradient is never formed.
    ///
    /// # Panics
    /// When `dst` does not have the gradient's shape.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let w = Param::weight(tensor::from_vec(vec![1.0, 2.0], &[2])?);
    /// let tape = Tape::new();
    /// let grads = tape.param(&w).square().sum().backward(); // g = 2w = [2, 4]
    /// let mut momentum = tensor::ones(&[2]);
    /// // b ← 0.5·b + g
    /// grads.param_grad(&w).unwrap().mix_into(momentum.view_mut(), 0.5, 1.0);
    /// assert_eq!(momentum.as_slice().unwrap(), &[2.5, 4.5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn mix_into(&self, dst: ArrayViewMutD<'_, Elem>, beta: Elem, alpha: Elem) {
        let fits = match self.parts() {
            Ok(Grad::Dense(tensor)) | Err(tensor) => tensor.shape() == dst.shape(),
            Ok(grad) => grad.has_shape(dst.shape()),
        };
        assert!(
            fits,
            "param grad: destination shape {:?} differs from the gradient's {:?}",
            dst.shape(),
            self.shape()
        );
        match self.parts() {
            Ok(grad) => grad.scale_add_into(dst, beta, alpha * self.scale),
            Err(tensor) => {
                Grad::scale_add_dense(tensor, dst, beta, alpha * self.scale);
            }
        }
    }

    /// The gradient as one tensor: borrowed when it is one already; formed on the first call
    /// (and counted by [`Gradients::dense_formed`](crate::Gradients::dense_formed)) when it
    /// is kept in parts; a scaled copy when gradient clipping scaled it.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let w = Param::weight(tensor::from_vec(vec![1.0, -2.0], &[2])?);
    /// let tape = Tape::new();
    /// let grads = tape.param(&w).square().sum().backward();
    /// let g = grads.param_grad(&w).unwrap().dense(); // 2w
    /// assert_eq!(g.as_slice().unwrap(), &[2.0, -4.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn dense(&self) -> Cow<'a, Tensor> {
        if self.scale != 1.0 {
            let mut scaled = Tensor::zeros(IxDyn(&self.shape()));
            self.mix_into(scaled.view_mut(), 0.0, 1.0);
            if self.is_factored() {
                self.formed.count();
            }
            return Cow::Owned(scaled);
        }
        match self.source {
            Source::Tensor(tensor)
            | Source::Leaf {
                grad: Grad::Dense(tensor),
                ..
            } => Cow::Borrowed(tensor),
            Source::Leaf { grad, dense, .. } => Cow::Borrowed(dense.get_or_init(|| {
                self.formed.count();
                grad.to_dense()
            })),
        }
    }

    /// The gradient as a view: of the tensor itself when it is one, else formed in
    /// `scratch` (which grows to fit; reuse it from step to step so that forming allocates
    /// nothing). Forming a gradient kept in parts is counted by
    /// [`Gradients::dense_formed`](crate::Gradients::dense_formed).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Tape};
    /// let layer = Linear::from_parts(tensor::zeros(&[2, 2]), None)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?);
    /// let grads = layer.forward(x, Mode::Train).sum().backward();
    /// let mut scratch = Vec::new(); // keep it across steps
    /// let g = grads.param_grad(layer.weight()).unwrap();
    /// assert_eq!(g.dense_in(&mut scratch).as_slice().unwrap(), &[1.0, 2.0, 1.0, 2.0]);
    /// assert_eq!(grads.dense_formed(), 1);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn dense_in<'s>(&'s self, scratch: &'s mut Vec<Elem>) -> ArrayViewD<'s, Elem> {
        if let Some(tensor) = self.as_tensor() {
            return tensor.view();
        }
        let shape = IxDyn(&self.shape());
        ArrayViewD::from_shape(shape, self.form_in(scratch))
            .expect("internal error: scratch sized to the shape")
    }

    /// The gradient's elements in row-major order, as one slice for an update rule's loop
    /// (a loop over slices is many times faster than one over n-dimensional iterators): the
    /// tensor's own elements when it is one, row-major; else formed in `scratch`, as
    /// [`ParamGrad::dense_in`] forms it, or copied there row-major (a weight gradient kept
    /// column-major, as a convolution's may be). Read it with the parameter's value in
    /// row-major order (`as_slice()`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Tape};
    /// let layer = Linear::from_parts(tensor::zeros(&[2, 2]), None)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?);
    /// let grads = layer.forward(x, Mode::Train).sum().backward();
    /// let mut scratch = Vec::new(); // keep it across steps
    /// let g = grads.param_grad(layer.weight()).unwrap();
    /// assert_eq!(g.row_major_in(&mut scratch), &[1.0, 2.0, 1.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn row_major_in<'s>(&'s self, scratch: &'s mut Vec<Elem>) -> &'s [Elem] {
        match self.as_tensor().and_then(|tensor| tensor.as_slice()) {
            Some(slice) => slice,
            None => self.form_in(scratch),
        }
    }

    /// The gradient's own tensor when it needs no forming: unscaled, and one tensor already
    /// (or formed by an earlier [`ParamGrad::dense`]).
    fn as_tensor(&self) -> Option<&Tensor> {
        if self.scale != 1.0 {
            return None;
        }
        match self.source {
            Source::Tensor(tensor)
            | Source::Leaf {
                grad: Grad::Dense(tensor),
                ..
            } => Some(tensor),
            Source::Leaf { dense, .. } => dense.get(),
        }
    }

    /// The gradient formed row-major in `scratch` (grown to fit), counted by
    /// [`Gradients::dense_formed`](crate::Gradients::dense_formed) when it is kept in parts.
    fn form_in<'s>(&self, scratch: &'s mut Vec<Elem>) -> &'s [Elem] {
        if self.is_factored() {
            self.formed.count();
        }
        let shape = IxDyn(&self.shape());
        scratch.resize(shape.size(), 0.0);
        let formed = ArrayViewMutD::from_shape(shape, &mut scratch[..])
            .expect("internal error: scratch sized to the shape");
        self.mix_into(formed, 0.0, 1.0);
        scratch
    }

    /// `Σ g²` in `f64`, for clipping by the global norm. A gradient kept in parts is formed
    /// in `scratch`.
    pub(crate) fn sum_squares(&self, scratch: &mut Vec<Elem>) -> f64 {
        self.dense_in(scratch)
            .iter()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum()
    }
}

impl From<Tensor> for Grad {
    fn from(tensor: Tensor) -> Self {
        Grad::Dense(tensor)
    }
}

impl Grad {
    /// The gradient's shape.
    pub(crate) fn shape(&self) -> Vec<usize> {
        match self {
            Grad::Dense(tensor) => tensor.shape().to_vec(),
            Grad::Outer { left, right } => vec![left.shape()[1], right.shape()[1]],
            Grad::Sum(parts) => parts[0].shape(),
        }
    }

    /// Whether the gradient's shape is `shape` (without making a `Vec` of it).
    fn has_shape(&self, shape: &[usize]) -> bool {
        match self {
            Grad::Dense(tensor) => tensor.shape() == shape,
            Grad::Outer { left, right } => shape == [left.shape()[1], right.shape()[1]],
            Grad::Sum(parts) => parts[0].has_shape(shape),
        }
    }

    /// The gradient as one tensor, its buffer from `pool` when it must be computed.
    pub(crate) fn into_dense(self, pool: &BufferPool) -> Tensor {
        match self {
            Grad::Dense(tensor) => tensor,
            Grad::Outer { left, right } => {
                let mut dense = pool.scratch(&[left.shape()[1], right.shape()[1]], false);
                gemm(
                    view2(&left).t(),
                    view2(&right),
                    view2_mut(&mut dense),
                    0.0,
                    1.0,
                );
                pool.reuse_value(left);
                pool.reuse_value(right);
                dense
            }
            // (the backward pass never meets a sum; shards are summed after it)
            sum @ Grad::Sum(_) => {
                let dense = sum.to_dense();
                sum.recycle(pool);
                dense
            }
        }
    }

    /// Puts this gradient's buffers in `pool`.
    pub(crate) fn recycle(self, pool: &BufferPool) {
        match self {
            Grad::Dense(tensor) => pool.reuse(tensor),
            Grad::Outer { left, right } => {
                pool.reuse_value(left);
                pool.reuse_value(right);
            }
            Grad::Sum(parts) => parts.into_iter().for_each(|part| part.recycle(pool)),
        }
    }

    /// The gradient as a new tensor.
    pub(crate) fn to_dense(&self) -> Tensor {
        let mut dense = Tensor::zeros(IxDyn(&self.shape()));
        self.scale_add_into(dense.view_mut(), 0.0, 1.0);
        dense
    }

    /// `dst = alpha·dst + beta·grad` (`dst` is not read when `alpha` is 0). On factors this is
    /// one accumulating matrix product: plain SGD's `W ← W − lr·leftᵀ·right` reads and writes
    /// `W` once and never forms the gradient.
    pub(crate) fn scale_add_into(&self, mut dst: ArrayViewMutD<'_, Elem>, alpha: Elem, beta: Elem) {
        match self {
            Grad::Dense(grad) => Self::scale_add_dense(grad, dst, alpha, beta),
            Grad::Outer { left, right } => {
                let dst = dst
                    .view_mut()
                    .into_dimensionality::<Ix2>()
                    .expect("internal error: a factored gradient is 2-D");
                let (left, right) = (view2(left), view2(right));
                match left.nrows() {
                    1 if alpha == 1.0 && right.iter().all(|x| x.is_finite()) => {
                        rank_one_update(left.row(0), right.row(0), dst, beta)
                    }
                    _ => gemm(left.t(), right, dst, alpha, beta),
                }
            }
            Grad::Sum(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    let alpha = if i == 0 { alpha } else { 1.0 };
                    part.scale_add_into(dst.view_mut(), alpha, beta);
                }
            }
        }
    }

    /// `dst = alpha·dst + beta·grad` for a dense `grad`, on all threads when it is large.
    fn scale_add_dense(grad: &Tensor, dst: ArrayViewMutD<'_, Elem>, alpha: Elem, beta: Elem) {
        let zip = Zip::from(dst).and(grad);
        let rule =
            |d: &mut Elem, &g: &Elem| *d = if alpha == 0.0 { 0.0 } else { alpha * *d } + beta * g;
        if parallel(grad.len()) {
            zip.par_for_each(rule);
        } else {
            zip.for_each(rule);
        }
    }

    /// A bound on the gradient's largest absolute value (at most `f32::MAX`), or `None` when
    /// an element of it is not finite. Factors are checked without forming their product:
    /// with `|left| <= a`, `|right| <= b` and `m` rows, every element of `leftᵀ·right` is at
    /// most `m·a·b` in size (and a sum at most the sum of its parts' bounds), so finite
    /// factors under that bound give a finite gradient; only beyond it is the gradient formed
    /// and its largest element taken.
    pub(crate) fn finite_bound(&self) -> Option<f64> {
        match self.bound()? {
            // a dense gradient's bound is its largest element, already known to be finite
            bound if bound < f64::from(Elem::MAX) / 2.0 || matches!(self, Grad::Dense(_)) => {
                Some(bound)
            }
            _ => max_abs(&self.to_dense()).map(f64::from),
        }
    }

    /// A bound on the gradient's largest absolute value, or `None` when an element of it (or
    /// of a factor) is not finite.
    fn bound(&self) -> Option<f64> {
        match self {
            Grad::Dense(grad) => max_abs(grad).map(f64::from),
            Grad::Outer { left, right } => {
                let (a, b) = (max_abs(left)?, max_abs(right)?);
                Some(left.shape()[0] as f64 * f64::from(a) * f64::from(b))
            }
            // the shards' parts on all threads (collected in order, so the sum is the same
            // whatever thread did which)
            Grad::Sum(parts) if parts.len() > 1 && parallel(self.shape().iter().product()) => {
                let bounds: Vec<Option<f64>> = parts.par_iter().map(Grad::bound).collect();
                bounds.into_iter().sum()
            }
            Grad::Sum(parts) => parts.iter().map(Grad::bound).sum(),
        }
    }
}

/// `dst += beta·l·rᵀ` for one-row factors (a batch of one), row by row: a row whose `l` is
/// zero (a unit ReLU switched off) is skipped, which leaves exactly what adding `beta·0·r`
/// would when `r` is finite.
fn rank_one_update(
    l: ArrayView1<'_, Elem>,
    r: ArrayView1<'_, Elem>,
    mut dst: ArrayViewMut2<'_, Elem>,
    beta: Elem,
) {
    for (&li, row) in l.iter().zip(dst.rows_mut()) {
        if li != 0.0 {
            Zip::from(row)
                .and(r)
                .for_each(|d, &x| *d += beta * (li * x));
        }
    }
}

/// The largest absolute value of `values`, or `None` when one is NaN or infinite: one
/// branch-free pass over the bit patterns (an `f32`'s magnitude orders like its bits without
/// the sign; NaN and infinity have all exponent bits set).
pub(crate) fn max_abs<S: ndarray::Data<Elem = Elem>>(
    values: &ndarray::ArrayBase<S, IxDyn>,
) -> Option<Elem> {
    const MAGNITUDE: u32 = 0x7fff_ffff;
    const INFINITY: i32 = 0x7f80_0000;
    // as i32 (the sign bit is cleared, so the order is the same): a signed maximum vectorizes
    // on every x86-64, an unsigned one only from SSE4.1
    let magnitude = |x: &Elem| (x.to_bits() & MAGNITUDE) as i32;
    let max = match values.as_slice_memory_order() {
        Some(slice) => {
            // LANES independent maxima (four AVX-512 vectors), so that the vector units are
            // not held up by one chain of dependent comparisons
            const LANES: usize = 64;
            let mut lanes = [0i32; LANES];
            let chunks = slice.chunks_exact(LANES);
            let tail = chunks.remainder().iter().map(magnitude).max().unwrap_or(0);
            with_simd(
                #[inline(always)]
                || {
                    for chunk in chunks {
                        for (lane, x) in lanes.iter_mut().zip(chunk) {
                            *lane = (*lane).max(magnitude(x));
                        }
                    }
                },
            );
            lanes.into_iter().fold(tail, i32::max)
        }
        None => values.iter().map(magnitude).fold(0, i32::max),
    };
    (max < INFINITY).then(|| Elem::from_bits(max as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::from_vec;

    fn outer(left: Vec<Elem>, l_shape: &[usize], right: Vec<Elem>, r_shape: &[usize]) -> Grad {
        Grad::Outer {
            left: from_vec(left, l_shape).unwrap().into_shared(),
            right: from_vec(right, r_shape).unwrap().into_shared(),
        }
    }

    #[test]
    fn row_major_in_reads_a_column_major_gradient_in_row_major_order() {
        use crate::{Param, Tape};
        let w = Param::weight(crate::tensor::zeros(&[2, 3]));
        let tape = Tape::new();
        let grads = tape.param(&w).sum().backward();
        let handle = || grads.param_grad(&w).unwrap();
        // [[1, 2, 3], [4, 5, 6]] held column-major, as a convolution's weight gradient may be
        let stored = from_vec(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0], &[3, 2]).unwrap();
        let column_major = stored.reversed_axes();
        let mut scratch = Vec::new();
        let g = handle().replaced_by(&column_major);
        assert_eq!(g.row_major_in(&mut scratch), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // a row-major gradient is read where it is, not copied
        let row_major = from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let g = handle().replaced_by(&row_major);
        let read = g.row_major_in(&mut scratch);
        assert!(std::ptr::eq(read.as_ptr(), row_major.as_ptr()));
    }

    #[test]
    fn max_abs_finds_nan_and_both_infinities() {
        let mut values = from_vec(vec![1.0; 37], &[37]).unwrap();
        values[3] = -7.5;
        values[4] = f32::MIN_POSITIVE / 2.0; // subnormal
        assert_eq!(max_abs(&values), Some(7.5));
        values[0] = f32::MAX;
        assert_eq!(max_abs(&values), Some(f32::MAX));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            values[36] = bad;
            assert_eq!(max_abs(&values), None, "{bad}");
        }
    }

    #[test]
    fn factors_by_hand() {
        // leftᵀ·right with left = [[1, 2]], right = [[3, 4, 5]] (one row): [[3, 4, 5], [6, 8, 10]]
        let grad = outer(vec![1., 2.], &[1, 2], vec![3., 4., 5.], &[1, 3]);
        assert_eq!(grad.shape(), vec![2, 3]);
        let dense = grad.to_dense();
        assert_eq!(dense.as_slice().unwrap(), &[3., 4., 5., 6., 8., 10.]);
        // dst = 2·dst − 0.5·grad, from dst = 1
        let mut dst = Tensor::ones(IxDyn(&[2, 3]));
        grad.scale_add_into(dst.view_mut(), 2.0, -0.5);
        assert_eq!(dst.as_slice().unwrap(), &[0.5, 0., -0.5, -1., -2., -3.]);
        let mut same = Tensor::ones(IxDyn(&[2, 3]));
        Grad::Dense(dense).scale_add_into(same.view_mut(), 2.0, -0.5);
        assert_eq!(dst, same);
    }

    #[test]
    fn one_row_factors_update_like_the_dense_gradient() {
        // a zero in `left` (a unit switched off) leaves its row alone
        let grad = outer(vec![2., 0., -1.], &[1, 3], vec![1., 2., 3., 4.], &[1, 4]);
        let mut dst = Tensor::ones(IxDyn(&[3, 4]));
        grad.scale_add_into(dst.view_mut(), 1.0, -0.5);
        let expected = [0., -1., -2., -3., 1., 1., 1., 1., 1.5, 2., 2.5, 3.];
        assert_eq!(dst.as_slice().unwrap(), &expected);
        let mut dense = Tensor::ones(IxDyn(&[3, 4]));
        Grad::Dense(grad.to_dense()).scale_add_into(dense.view_mut(), 1.0, -0.5);
        assert_eq!(dst, dense);
        // with an infinite `right`, 0·∞ is NaN, as the dense gradient has it
        let grad = outer(vec![0.], &[1, 1], vec![f32::INFINITY], &[1, 1]);
        let mut dst = Tensor::ones(IxDyn(&[1, 1]));
        grad.scale_add_into(dst.view_mut(), 1.0, -0.5);
        assert!(dst[[0, 0]].is_nan());
    }

    #[test]
    fn factors_are_formed_in_a_reused_scratch_and_counted() {
        let grad = outer(vec![1., 2.], &[1, 2], vec![3., 4., 5.], &[1, 3]);
        let (cache, counter) = (OnceLock::new(), FormCounter::default());
        let bound = OnceLock::new();
        let handle = ParamGrad::of_leaf(&grad, &cache, &bound, &counter);
        let mut scratch = vec![9.0; 2]; // too small, and dirty
        assert_eq!(handle.dense_in(&mut scratch), grad.to_dense());
        let buffer = scratch.as_ptr();
        assert_eq!(handle.dense_in(&mut scratch), grad.to_dense());
        assert_eq!(scratch.as_ptr(), buffer);
        assert_eq!(counter.get(), 2);
        // formed once by `dense`, then read from its cache
        assert_eq!(*handle.dense(), grad.to_dense());
        assert_eq!(handle.dense_in(&mut Vec::new()), grad.to_dense());
        assert_eq!(counter.get(), 3);
        // a dense gradient is a view of itself, never counted; a scaled one is a copy
        let dense = Grad::Dense(grad.to_dense());
        let dense_bound = OnceLock::new();
        let handle = ParamGrad::of_leaf(&dense, &cache, &dense_bound, &counter);
        assert!(!handle.is_factored());
        assert_eq!(handle.dense_in(&mut Vec::new()), grad.to_dense());
        let half = handle.scaled(0.5).dense().into_owned();
        assert_eq!(half.as_slice().unwrap(), &[1.5, 2., 2.5, 3., 4., 5.]);
        assert_eq!(counter.get(), 3);
        assert_eq!(handle.scaled(2.0).finite_bound(), Some(20.0));
        assert!(handle.scaled(f32::MAX).finite_bound().is_none());
    }

    #[test]
    #[should_panic(expected = "param grad:")]
    fn a_destination_of_another_shape_panics() {
        let grad = outer(vec![1., 2.], &[1, 2], vec![3., 4., 5.], &[1, 3]);
        let (cache, counter) = (OnceLock::new(), FormCounter::default());
        let mut dst = Tensor::zeros(IxDyn(&[3, 2]));
        ParamGrad::of_leaf(&grad, &cache, &OnceLock::new(), &counter)
            .scaled_add_to(dst.view_mut(), 1.0);
    }

    #[test]
    fn a_sum_of_parts_adds_them_up() {
        let parts = vec![
            outer(vec![1., 2.], &[1, 2], vec![3., 4.], &[1, 2]),
            Grad::Dense(from_vec(vec![1., 1., 1., 1.], &[2, 2]).unwrap()),
            outer(vec![1., 0., 0., 1.], &[2, 2], vec![1., 0., 0., 1.], &[2, 2]),
        ];
        let sum = Grad::Sum(parts);
        assert_eq!(sum.shape(), vec![2, 2]);
        // [[3, 4], [6, 8]] + 1 + identity
        assert_eq!(sum.to_dense().as_slice().unwrap(), &[5., 5., 7., 10.]);
        // dst = 3·dst − sum: the old dst is scaled once, not once per part
        let mut dst = Tensor::ones(IxDyn(&[2, 2]));
        sum.scale_add_into(dst.view_mut(), 3.0, -1.0);
        assert_eq!(dst.as_slice().unwrap(), &[-2., -2., -4., -7.]);
        assert!(sum.finite_bound().is_some());
        let with_nan = Grad::Sum(vec![
            sum,
            outer(vec![f32::NAN, 1.], &[1, 2], vec![1., 1.], &[1, 2]),
        ]);
        assert!(with_nan.finite_bound().is_none());
        // parts finite, their sum not
        let big = || outer(vec![3e38], &[1, 1], vec![1.], &[1, 1]);
        assert!(Grad::Sum(vec![big(), big()]).finite_bound().is_none());
    }

    #[test]
    fn factors_are_checked_for_finite_products() {
        assert!(
            outer(vec![1e3, -2.], &[2, 1], vec![4., 1e3], &[2, 1])
                .finite_bound()
                .is_some()
        );
        assert!(
            outer(vec![f32::NAN], &[1, 1], vec![1.], &[1, 1])
                .finite_bound()
                .is_none()
        );
        // finite factors whose product overflows
        assert!(
            outer(vec![1e30], &[1, 1], vec![1e30], &[1, 1])
                .finite_bound()
                .is_none()
        );
        // a bound beyond f32::MAX, but a finite product: 1e30·1e-30 + 1e-30·1e30 = 2
        let big = outer(vec![1e30, 1e-30], &[2, 1], vec![1e-30, 1e30], &[2, 1]);
        assert_eq!(big.finite_bound(), Some(2.0));
        assert_eq!(big.to_dense()[[0, 0]], 2.0);
    }
}
