//! The differentiable ops, one file per family. Each op is a method (or operator) on
//! [`Var`], with its backward rule written beside its forward.
//!
//! This file holds the machinery several families share: NumPy broadcasting and its
//! reverse (summing a gradient back to an input's shape), and element-wise maps.

mod activation;
mod arith;
pub(crate) mod conv;
mod index;
mod loss;
pub(crate) mod matmul;
mod matmul_batched;
pub(crate) mod norm;
pub(crate) mod pool;
mod reduce;
mod shape;

use crate::autograd::tape::Var;
use crate::tensor::{Elem, Tensor};
use crate::threads::parallel;
use ndarray::{Axis, Zip};

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
    (0..ndim)
        .map(|axis| match (size(lhs, axis), size(rhs, axis)) {
            (a, b) if a == b || b == 1 => a,
            (1, b) => b,
            _ => panic!(
                "{op}: shapes cannot be broadcast together; lhs shape {lhs:?}, rhs shape {rhs:?}"
            ),
        })
        .collect()
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
        let x = self.data();
        let tape = self.tape();
        let value = if parallel(x.len()) {
            let mut y = tape.scratch(x.shape(), false);
            Zip::from(&mut y).and(&x).par_for_each(|y, &x| *y = f(x));
            y
        } else {
            match x.as_slice() {
                Some(slice) => tape.collect(x.shape(), slice.iter().map(|&v| f(v))),
                None => tape.collect(x.shape(), x.iter().map(|&v| f(v))),
            }
        };
        tape.record(op, &[self], value, move |b| {
            let mut dx = b.tape.scratch(b.grad.shape(), false);
            let zip = Zip::from(&mut dx).and(b.grad).and(b.inputs[0]).and(b.out);
            let rule = |d: &mut Elem, &g: &Elem, &x: &Elem, &y: &Elem| *d = g * df(x, y);
            if parallel(b.grad.len()) {
                zip.par_for_each(rule);
            } else {
                zip.for_each(rule);
            }
            [Some(dx), None]
        })
    }
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
