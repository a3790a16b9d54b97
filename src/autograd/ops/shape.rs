//! Shape ops: transpose and reshape. Neither copies data when it can be avoided.

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
}
