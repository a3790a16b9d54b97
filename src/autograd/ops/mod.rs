//! The differentiable ops, one file per family. Each op is a method (or operator) on
//! [`Var`], with its backward rule written beside its forward.
//!
//! This file holds the machinery several families share: NumPy broadcasting and its
//! reverse (summing a gradient back to an input's shape), and element-wise maps.

mod activation;
mod arith;
pub(crate) mod conv;
pub(crate) mod conv_transpose;
mod index;
mod loss;
pub(crate) mod matmul;
mod matmul_batched;
pub(crate) mod norm;
pub(crate) mod pool;
mod reduce;
mod shape;
pub(crate) mod upsample;

use crate::autograd::tape::Var;
use crate::kernels::elementwise;
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayBase, Axis, Data, IxDyn};

/// The shape two operands broadcast to under NumPy's rules: align shapes at the right; each
/// pair of sizes must be equal or one of them 1.
///
/// # Panics
/// With `"{op}: shapes cannot be broadcast together; lhs shape [..], rhs shape [..]"`.
#[track_caller]
pub(crate) fn broadcast_shape(op: &str, lhs: &[usize], rhs: &[usize]) -> Vec<usize> {
    let ndim = lhs.len().max(rhs.len());
    let size = |shape: &[usize], axis: usize| {
        (axis + shape.len())
            .checked_sub(ndim)
            .map_or(1, |i| shape[i])
    };
    // a loop, not a closure: a panic inside a closure would name this file, not the
    // caller's line (`#[track_caller]` does not reach into closures)
    let mut shape = Vec::with_capacity(ndim);
    for axis in 0..ndim {
        shape.push(match (size(lhs, axis), size(rhs, axis)) {
            (a, b) if a == b || b == 1 => a,
            (1, b) => b,
            _ => panic!(
                "{op}: shapes cannot be broadcast together; lhs shape {lhs:?}, rhs shape {rhs:?}"
            ),
        });
    }
    shape
}

/// Sums a gradient of a broadcast result back to the shape of the operand that was
/// broadcast: over the leading axes the operand lacks and over the axes where it has size 1.
pub(crate) fn sum_to_shape(grad: Tensor, shape: &[usize]) -> Tensor {
    if grad.shape() == shape {
        return grad;
    }
    let mut grad = grad;
    while grad.ndim() > shape.len() {
        grad = grad.sum_axis(Axis(0));
    }
    for (axis, &size) in shape.iter().enumerate() {
        if size == 1 && grad.len_of(Axis(axis)) != 1 {
            grad = grad.sum_axis(Axis(axis)).insert_axis(Axis(axis));
        }
    }
    grad
}

/// Checks that `axis` is an axis of `shape`.
///
/// # Panics
/// With `"{op}: axis {axis} out of range for shape [..]"`.
#[track_caller]
pub(crate) fn check_axis(op: &str, axis: usize, shape: &[usize]) {
    assert!(
        axis < shape.len(),
        "{op}: axis {axis} out of range for shape {shape:?}"
    );
}

impl<'t> Var<'t> {
    /// Records an element-wise op `y = f(x)` whose derivative `dy/dx = df(x, y)` is computed
    /// from the input and the output.
    #[track_caller]
    pub(crate) fn map(
        self,
        op: &'static str,
        f: impl Fn(Elem) -> Elem + Sync,
        df: impl Fn(Elem, Elem) -> Elem + Send + Sync + 'static,
    ) -> Var<'t> {
        // a strided input (a permuted or broadcast view) is copied to row-major order first
        let x = self.contiguous();
        let tape = x.tape();
        let value = x.data();
        let mut y = tape.scratch(value.shape(), false);
        elementwise::map(row_major(&value), row_major_mut(&mut y), f);
        tape.record(op, &[x], y, move |b| {
            let copied = (!b.grad.is_standard_layout()).then(|| b.tape.copy(b.grad.view()));
            let grad = copied.as_ref().unwrap_or(b.grad);
            let mut dx = b.tape.scratch(grad.shape(), false);
            elementwise::map_backward(
                row_major(grad),
                row_major(b.inputs[0]),
                row_major(b.out),
                row_major_mut(&mut dx),
                &df,
            );
            if let Some(copied) = copied {
                b.tape.reuse(copied);
            }
            [Some(dx), None]
        })
    }
}

/// A row-major value's elements.
pub(crate) fn row_major<S: Data<Elem = Elem>>(value: &ArrayBase<S, IxDyn>) -> &[Elem] {
    value.as_slice().expect("internal error: row-major value")
}

/// [`row_major`], mutably.
pub(crate) fn row_major_mut(value: &mut Tensor) -> &mut [Elem] {
    value
        .as_slice_mut()
        .expect("internal error: row-major buffer")
}

/// Builds a tensor from a shape and its elements in row-major order (test helper).
#[cfg(test)]
pub(crate) fn t(shape: &[usize], values: &[Elem]) -> Tensor {
    Tensor::from_shape_vec(ndarray::IxDyn(shape), values.to_vec()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_shape_follows_numpy() {
        assert_eq!(broadcast_shape("add", &[4, 3], &[3]), vec![4, 3]);
        assert_eq!(broadcast_shape("add", &[4, 1], &[1, 5]), vec![4, 5]);
        assert_eq!(broadcast_shape("add", &[], &[2, 2]), vec![2, 2]);
    }

    #[test]
    #[should_panic(
        expected = "add: shapes cannot be broadcast together; lhs shape [4, 3], rhs shape [2, 5]"
    )]
    fn broadcast_shape_rejects_mismatch() {
        broadcast_shape("add", &[4, 3], &[2, 5]);
    }

    #[test]
    fn sum_to_shape_reverses_broadcasting() {
        let g = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        assert_eq!(sum_to_shape(g.clone(), &[3]), t(&[3], &[5., 7., 9.]));
        assert_eq!(sum_to_shape(g.clone(), &[2, 1]), t(&[2, 1], &[6., 15.]));
        assert_eq!(sum_to_shape(g.clone(), &[]), t(&[], &[21.]));
        assert_eq!(sum_to_shape(g.clone(), &[2, 3]), g);
    }
}
