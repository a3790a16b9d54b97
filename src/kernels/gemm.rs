//! The matrix product kernel: a strided wrapper around the pure-Rust `gemm` crate, used by
//! the autograd ops (matmul, batched matmul), factored gradients and anything else that
//! multiplies matrices.

use crate::tensor::Elem;
use ndarray::{ArrayView2, ArrayViewMut2, Ix2};

/// `dst = alpha·dst + beta·lhs·rhs`, for views of any strides. With `alpha = 0`, `dst`'s old
/// contents are never read, so it may hold anything.
///
/// # Panics
/// If the shapes do not chain (an internal error: callers check shapes first).
pub(crate) fn gemm(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    mut dst: ArrayViewMut2<'_, Elem>,
    alpha: Elem,
    beta: Elem,
) {
    let ((m, k), (k2, n)) = (lhs.dim(), rhs.dim());
    assert!(
        k == k2 && dst.dim() == (m, n),
        "internal error: gemm shapes {:?} x {:?} -> {:?}",
        lhs.shape(),
        rhs.shape(),
        dst.shape()
    );
    if k == 0 {
        // an empty sum: gemm need not touch `dst`, but the product is all zeros
        dst.map_inplace(|d| *d = if alpha == 0.0 { 0.0 } else { alpha * *d });
        return;
    }
    let (ls, rs) = (lhs.strides(), rhs.strides());
    let (dst_rs, dst_cs) = (dst.strides()[0], dst.strides()[1]);
    // SAFETY: the three pointers come from live ndarray views whose shapes were checked
    // above to be m×k, k×n and m×n; gemm reads and writes only elements at
    // `ptr + i·row_stride + j·col_stride` inside those shapes, with each view's own strides.
    // `dst` is a unique mutable borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
            alpha != 0.0,
            lhs.as_ptr(),
            ls[1],
            ls[0],
            rhs.as_ptr(),
            rs[1],
            rs[0],
            alpha,
            beta,
            false,
            false,
            false,
            crate::threads::gemm_parallelism(m * n * k),
        );
    }
}

/// `a` as a matrix view.
///
/// # Panics
/// If `a` is not 2-D (an internal error: callers check ranks first).
pub(crate) fn view2<S: ndarray::Data<Elem = Elem>>(
    a: &ndarray::ArrayBase<S, ndarray::IxDyn>,
) -> ArrayView2<'_, Elem> {
    a.view()
        .into_dimensionality::<Ix2>()
        .expect("internal error: a matrix product's operand is 2-D")
}

/// `a` as a mutable matrix view.
///
/// # Panics
/// If `a` is not 2-D (an internal error: callers check ranks first).
pub(crate) fn view2_mut(a: &mut crate::Tensor) -> ArrayViewMut2<'_, Elem> {
    a.view_mut()
        .into_dimensionality::<Ix2>()
        .expect("internal error: a matrix product's output is 2-D")
}
