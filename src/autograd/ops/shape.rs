//! Shape ops: transpose, permute, reshape, flatten and unflatten. None copies data when it
//! can be avoided.

use crate::autograd::tape::{Value, Var};
use ndarray::IxDyn;

/// `x` laid out row-major in `shape` (same element count): free when `x` is already
/// row-major, one copy otherwise.
fn reshaped<A>(x: ndarray::ArrayBase<A, IxDyn>, shape: &[usize]) -> ndarray::ArrayBase<A, IxDyn>
where
    A: ndarray::DataOwned<Elem = crate::Elem> + ndarray::RawDataClone,
{
    let x = if x.is_standard_layout() {
        x
    } else {
        ndarray::ArrayBase::from_shape_vec(x.raw_dim(), x.iter().copied().collect())
            .expect("internal error: same shape")
    };
    x.into_shape_with_order(IxDyn(shape))
        .expect("internal error: reshape of a row-major array")
}

impl<'t> Var<'t> {
    /// The transpose: the axes in reverse order (`Aᵀ` for a matrix, as `ndarray`'s `t()` and
    /// NumPy's `.T`). Free: the result reads the same data through swapped strides.
    ///
    /// Backward: `∂L/∂x = Gᵀ`.
    ///
    /// # Shapes
    /// `[a, b] -> [b, a]`; `[a, b, c] -> [c, b, a]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
    /// let xt = x.transpose().value();
    /// assert_eq!(xt.shape(), &[3, 2]);
    /// assert_eq!(xt[[2, 0]], 3.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn transpose(self) -> Var<'t> {
        let value: Value = self.data().reversed_axes();
        self.tape().record("transpose", &[self], value, |b| {
            [Some(b.grad.clone().reversed_axes()), None]
        })
    }

    /// The same data with its axes in the order `axes` (`torch.permute`): axis `k` of the
    /// result is axis `axes[k]` of `x`. Free: the result reads the same data through permuted
    /// strides, as [`Var::transpose`] does.
    ///
    /// Backward: `∂L/∂x = G` permuted by the inverse permutation (`axes[k]` of `∂L/∂x` is
    /// axis `k` of `G`).
    ///
    /// # Shapes
    /// `[a, b, c]` permuted by `[2, 0, 1]` gives `[c, a, b]`.
    ///
    /// # Panics
    /// If `axes` is not a permutation of `0..ndim`, e.g.
    /// `permute: axes [0, 0] are not a permutation of 0..2; x shape [2, 3]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec((0..6).map(|v| v as f32).collect(), &[1, 2, 3])?);
    /// let y = x.permute(&[2, 0, 1]);
    /// assert_eq!(y.shape(), vec![3, 1, 2]);
    /// // y[k, 0, j] = x[0, j, k]
    /// assert_eq!(y.value()[[2, 0, 1]], 5.0);
    /// assert_eq!(y.value()[[1, 0, 0]], 1.0);
    /// let w = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 1, 2])?);
    /// let g = (y * w).sum().backward();
    /// // ∂L/∂x[0, j, k] = w[k, 0, j]
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn permute(self, axes: &[usize]) -> Var<'t> {
        let x = self.data();
        let ndim = x.ndim();
        let mut seen = vec![false; ndim];
        let is_permutation = axes.len() == ndim
            && axes
                .iter()
                .all(|&a| a < ndim && !std::mem::replace(&mut seen[a], true));
        assert!(
            is_permutation,
            "permute: axes {axes:?} are not a permutation of 0..{ndim}; x shape {:?}",
            x.shape()
        );
        let mut inverse = vec![0; ndim];
        for (k, &a) in axes.iter().enumerate() {
            inverse[a] = k;
        }
        let value: Value = x.permuted_axes(IxDyn(axes));
        self.tape().record("permute", &[self], value, move |b| {
            let g = b.grad.view().permuted_axes(IxDyn(&inverse));
            [Some(b.tape.copy(g)), None]
        })
    }

    /// The same elements, read in row-major order, in a new shape with the same number of
    /// elements (`torch.reshape`). Free when `x` is row-major; one copy otherwise.
    ///
    /// Backward: `∂L/∂x` is `G` reshaped back to `x`'s shape.
    ///
    /// # Panics
    /// If the element counts differ, e.g.
    /// `reshape: cannot reshape shape [2, 3] into [4, 2]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
    /// let y = x.reshape(&[3, 2]).value();
    /// assert_eq!(y[[1, 0]], 3.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn reshape(self, shape: &[usize]) -> Var<'t> {
        let x = self.data();
        assert!(
            x.len() == shape.iter().product::<usize>(),
            "reshape: cannot reshape shape {:?} into {shape:?}",
            x.shape()
        );
        let input_shape = x.shape().to_vec();
        let value = reshaped(x, shape);
        self.tape().record("reshape", &[self], value, move |b| {
            [
                Some(reshaped(b.tape.copy(b.grad.view()), &input_shape)),
                None,
            ]
        })
    }
    /// Axes `start..=end` merged into one (`torch.flatten(x, start_dim, end_dim)`), recorded
    /// as a [`Var::reshape`]: free when `x` is row-major. `flatten(0, ndim - 1)` gives a
    /// vector; `start == end` leaves the shape as it is.
    ///
    /// # Shapes
    /// `[a, b, c, d]` flattened over `1..=2` gives `[a, b·c, d]`.
    ///
    /// # Panics
    /// If `start > end` or `end` is not an axis of `x`, e.g.
    /// `flatten: axes 1..=3 out of range for shape [2, 3, 4]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::zeros(&[2, 3, 4, 5]));
    /// assert_eq!(x.flatten(1, 2).shape(), vec![2, 12, 5]);
    /// assert_eq!(x.flatten(0, 3).shape(), vec![120]);
    /// let y = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
    /// assert_eq!(y.flatten(0, 1).value().as_slice().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn flatten(self, start: usize, end: usize) -> Var<'t> {
        let shape = self.shape();
        assert!(
            start <= end && end < shape.len(),
            "flatten: axes {start}..={end} out of range for shape {shape:?}"
        );
        let mut new_shape = shape[..start].to_vec();
        new_shape.push(shape[start..=end].iter().product());
        new_shape.extend_from_slice(&shape[end + 1..]);
        self.reshape(&new_shape)
    }

    /// Axis `axis` split into axes of sizes `sizes` (`torch.unflatten(x, dim, sizes)`, without
    /// a `-1` entry), recorded as a [`Var::reshape`]: the inverse of [`Var::flatten`].
    ///
    /// # Shapes
    /// `[a, b·c, d]` unflattened at axis 1 into `[b, c]` gives `[a, b, c, d]`.
    ///
    /// # Panics
    /// If `axis` is out of range, or the product of `sizes` is not the size of `axis`, e.g.
    /// `unflatten: sizes [4, 2] do not multiply to 6, the size of axis 1; x shape [2, 6]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec((0..12).map(|v| v as f32).collect(), &[2, 6])?);
    /// let y = x.unflatten(1, &[2, 3]);
    /// assert_eq!(y.shape(), vec![2, 2, 3]);
    /// assert_eq!(y.value()[[1, 1, 0]], 9.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn unflatten(self, axis: usize, sizes: &[usize]) -> Var<'t> {
        let shape = self.shape();
        assert!(
            axis < shape.len(),
            "unflatten: axis {axis} out of range for shape {shape:?}"
        );
        assert!(
            sizes.iter().product::<usize>() == shape[axis],
            "unflatten: sizes {sizes:?} do not multiply to {}, the size of axis {axis}; x shape {shape:?}",
            shape[axis]
        );
        let mut new_shape = shape[..axis].to_vec();
        new_shape.extend_from_slice(sizes);
        new_shape.extend_from_slice(&shape[axis + 1..]);
        self.reshape(&new_shape)
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, gradcheck};

    #[test]
    fn transpose_and_reshape_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
        let xt = x.transpose();
        assert_eq!(xt.value(), t(&[3, 2], &[1., 4., 2., 5., 3., 6.]));
        // reshaping a transposed (column-major) value reads it in row-major order
        assert_eq!(xt.reshape(&[6]).value(), t(&[6], &[1., 4., 2., 5., 3., 6.]));
        assert_eq!(
            x.reshape(&[3, 2]).value(),
            t(&[3, 2], &[1., 2., 3., 4., 5., 6.])
        );
        // L = Σ c ⊙ reshape(x): ∂L/∂x = c laid back into x's shape
        let c = tape.constant(t(&[3, 2], &[1., 2., 3., 4., 5., 6.]));
        let g = (x.reshape(&[3, 2]) * c).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
    }

    #[test]
    fn gradcheck_shape_ops() {
        let inputs = [random(&[3, 4], 1)];
        gradcheck(|v| v[0].transpose(), &inputs).unwrap();
        gradcheck(|v| v[0].reshape(&[2, 6]), &inputs).unwrap();
        gradcheck(|v| v[0].transpose().reshape(&[12]), &inputs).unwrap();
        gradcheck(|v| v[0].reshape(&[2, 3, 2]).transpose(), &inputs).unwrap();
        gradcheck(|v| v[0].reshape(&[1, 12]), &[random(&[12], 2)]).unwrap();
    }

    #[test]
    #[should_panic(expected = "reshape: cannot reshape shape [2, 3] into [4, 2]")]
    fn reshape_to_another_count_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).reshape(&[4, 2]);
    }
    #[test]
    fn permute_flatten_unflatten_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
        assert_eq!(
            x.permute(&[1, 0]).value(),
            t(&[3, 2], &[1., 4., 2., 5., 3., 6.])
        );
        assert_eq!(x.permute(&[0, 1]).value(), x.value());
        let z = tape.leaf(t(&[2, 1, 3], &[1., 2., 3., 4., 5., 6.]));
        // y[k, i, j] = z[i, j, k]
        let y = z.permute(&[2, 0, 1]);
        assert_eq!(y.value(), t(&[3, 2, 1], &[1., 4., 2., 5., 3., 6.]));
        // L = Σ c ⊙ permute(z): ∂L/∂z[i, 0, k] = c[k, i, 0]
        let c = tape.constant(t(&[3, 2, 1], &[1., 2., 3., 4., 5., 6.]));
        let g = (y * c).sum().backward();
        assert_eq!(g.get(z).unwrap(), t(&[2, 1, 3], &[1., 3., 5., 2., 4., 6.]));
        let w = tape.constant(t(&[2, 3, 2], &[0.; 12]));
        assert_eq!(w.flatten(1, 2).shape(), vec![2, 6]);
        assert_eq!(w.flatten(0, 1).shape(), vec![6, 2]);
        assert_eq!(w.flatten(1, 1).shape(), vec![2, 3, 2]);
        assert_eq!(w.unflatten(1, &[3, 1]).shape(), vec![2, 3, 1, 2]);
        // flatten reads a permuted value in its logical order
        assert_eq!(y.flatten(0, 2).value(), t(&[6], &[1., 4., 2., 5., 3., 6.]));
        assert_eq!(
            x.flatten(0, 1).unflatten(0, &[3, 2]).value(),
            x.reshape(&[3, 2]).value()
        );
    }

    #[test]
    fn gradcheck_permute_flatten_unflatten() {
        let x = [random(&[2, 3, 4], 3)];
        for axes in [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0], [0, 2, 1]] {
            gradcheck(|v| v[0].permute(&axes), &x).unwrap();
            // a permuted (strided) value through a second op
            gradcheck(|v| v[0].permute(&axes).flatten(0, 1), &x).unwrap();
        }
        gradcheck(|v| v[0].flatten(1, 2), &x).unwrap();
        gradcheck(|v| v[0].unflatten(2, &[2, 2]), &x).unwrap();
        let single = [random(&[1, 5], 4)];
        gradcheck(|v| v[0].permute(&[1, 0]), &single).unwrap();
        gradcheck(|v| v[0].flatten(0, 1), &single).unwrap();
        gradcheck(|v| v[0].unflatten(1, &[5, 1]), &single).unwrap();
        gradcheck(|v| v[0].permute(&[]), &[random(&[], 5)]).unwrap();
    }

    #[test]
    #[should_panic(expected = "permute: axes [0, 0] are not a permutation of 0..2; x shape [2, 3]")]
    fn permute_with_a_repeated_axis_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).permute(&[0, 0]);
    }

    #[test]
    #[should_panic(expected = "permute: axes [1, 0, 2] are not a permutation of 0..2")]
    fn permute_with_too_many_axes_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).permute(&[1, 0, 2]);
    }

    #[test]
    #[should_panic(expected = "flatten: axes 1..=3 out of range for shape [2, 3, 4]")]
    fn flatten_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3, 4], 0)).flatten(1, 3);
    }

    #[test]
    #[should_panic(expected = "flatten: axes 2..=1 out of range for shape [2, 3, 4]")]
    fn flatten_with_start_after_end_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3, 4], 0)).flatten(2, 1);
    }

    #[test]
    #[should_panic(
        expected = "unflatten: sizes [4, 2] do not multiply to 6, the size of axis 1; x shape [2, 6]"
    )]
    fn unflatten_to_another_size_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 6], 0)).unflatten(1, &[4, 2]);
    }

    #[test]
    #[should_panic(expected = "unflatten: axis 2 out of range for shape [2, 6]")]
    fn unflatten_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 6], 0)).unflatten(2, &[1]);
    }
}
