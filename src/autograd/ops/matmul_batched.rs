//! [`Var::matmul`] for operands that are not both 2-D: a stack of matrix products whose
//! leading (batch) axes broadcast, and the 1-D cases, as `torch.matmul` defines them.
//!
//! A 1-D left operand `[k]` is read as a row `[1, k]` and a 1-D right operand `[k]` as a
//! column `[k, 1]`; the added axis is dropped from the result. Each pair of matrices goes
//! through the same `gemm` kernel as a 2-D product, read through its strides.

use crate::autograd::tape::Var;
use crate::kernels::gemm::gemm;
use crate::tensor::{Elem, Tensor};
use crate::threads::{as_shard, product_threads};
use ndarray::{ArrayView2, ArrayViewD, ArrayViewMut2, Axis, IxDyn};
use rayon::prelude::*;

/// The shapes of one batched product, checked.
struct Plan {
    /// The left operand as a stack of matrices: `[..batch_a, m, k]` (`[1, k]` for a 1-D one).
    lhs: Vec<usize>,
    /// The right operand as a stack of matrices: `[..batch_b, k, n]` (`[k, 1]` for a 1-D one).
    rhs: Vec<usize>,
    /// The batch axes both broadcast to.
    batch: Vec<usize>,
    /// The result as a stack of matrices, `[..batch, m, n]`.
    full: Vec<usize>,
    /// The result as returned: `full` without the axes added for 1-D operands.
    out: Vec<usize>,
    /// Whether the operands were 1-D (and got an axis added).
    vector: [bool; 2],
}

impl Plan {
    /// Checks the shapes of `lhs · rhs` and works out the result's.
    ///
    /// # Panics
    /// When an operand is 0-D, the inner dimensions differ or the batch axes do not broadcast.
    #[track_caller]
    fn new(ls: &[usize], rs: &[usize]) -> Plan {
        assert!(
            !ls.is_empty() && !rs.is_empty(),
            "matmul: expected operands with at least 1 dimension; lhs shape {ls:?}, rhs shape {rs:?}"
        );
        let vector = [ls.len() == 1, rs.len() == 1];
        let lhs = if vector[0] {
            vec![1, ls[0]]
        } else {
            ls.to_vec()
        };
        let rhs = if vector[1] {
            vec![rs[0], 1]
        } else {
            rs.to_vec()
        };
        let (m, k) = (lhs[lhs.len() - 2], lhs[lhs.len() - 1]);
        let (k2, n) = (rhs[rhs.len() - 2], rhs[rhs.len() - 1]);
        assert!(
            k == k2,
            "matmul: inner dimensions differ; lhs shape {ls:?}, rhs shape {rs:?}"
        );
        let (batch_a, batch_b) = (&lhs[..lhs.len() - 2], &rhs[..rhs.len() - 2]);
        let ndim = batch_a.len().max(batch_b.len());
        let batch: Vec<usize> = (0..ndim)
            .map(|axis| match (padded(batch_a, ndim, axis), padded(batch_b, ndim, axis)) {
                (a, b) if a == b || b == 1 => a,
                (1, b) => b,
                _ => panic!(
                    "matmul: batch axes cannot be broadcast together; lhs shape {ls:?}, rhs shape {rs:?}"
                ),
            })
            .collect();
        let full: Vec<usize> = batch.iter().copied().chain([m, n]).collect();
        let mut out = batch.clone();
        if !vector[0] {
            out.push(m);
        }
        if !vector[1] {
            out.push(n);
        }
        Plan {
            lhs,
            rhs,
            batch,
            full,
            out,
            vector,
        }
    }

    /// `grad` (of the result's shape, any layout) seen as `[..batch, m, n]`.
    fn full_view<'a>(&self, grad: ArrayViewD<'a, Elem>) -> ArrayViewD<'a, Elem> {
        let mut grad = grad;
        if self.vector[0] {
            grad = grad.insert_axis(Axis(self.batch.len()));
        }
        if self.vector[1] {
            grad = grad.insert_axis(Axis(self.batch.len() + 1));
        }
        grad
    }
}

/// The size of `axis` of `shape` aligned at the right in `ndim` axes (1 where it has none).
fn padded(shape: &[usize], ndim: usize, axis: usize) -> usize {
    (axis + shape.len())
        .checked_sub(ndim)
        .map_or(1, |i| shape[i])
}

/// The matrices of a stack `[..batch, r, c]`, in row-major order of the batch index.
fn matrices(stack: ArrayViewD<'_, Elem>) -> Vec<ArrayView2<'_, Elem>> {
    if stack.ndim() == 2 {
        let matrix = stack
            .into_dimensionality()
            .expect("internal error: a stack's last two axes are a matrix");
        return vec![matrix];
    }
    (0..stack.len_of(Axis(0)))
        .flat_map(|i| matrices(stack.clone().index_axis_move(Axis(0), i)))
        .collect()
}

/// `dst[j] = Σ lhs[i]·rhs[i]` over the product indices `i` whose batch index, with the axes
/// where `dst_batch` has size 1 set to 0, is `j`: each product goes to the matrix of `dst`
/// it was broadcast from. `lhs` and `rhs` hold one matrix per index of `batch`;
/// `dst_batch` has `batch`'s number of axes, each of the same size or 1.
///
/// The products of one destination are added in increasing `i`, on one thread, so the
/// numbers depend only on the thread count (which decides how each product's `gemm` splits).
fn sum_of_products(
    lhs: &[ArrayView2<'_, Elem>],
    rhs: &[ArrayView2<'_, Elem>],
    batch: &[usize],
    dst_batch: &[usize],
    dst: &mut Tensor,
) {
    let (rows, cols) = (dst.shape()[dst.ndim() - 2], dst.shape()[dst.ndim() - 1]);
    let matrix_len = rows * cols;
    if dst.is_empty() {
        return;
    }
    // the destination of each product, grouped by destination in increasing product index
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); dst.len() / matrix_len];
    let mut index = vec![0; batch.len()];
    for i in 0..lhs.len() {
        let j = index.iter().zip(dst_batch).fold(0, |j, (&at, &size)| {
            j * size + if size == 1 { 0 } else { at }
        });
        groups[j].push(i);
        // the next batch index, row-major
        for axis in (0..batch.len()).rev() {
            index[axis] += 1;
            if index[axis] < batch[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    let inner = lhs.first().map_or(0, |m| m.ncols());
    let fill = |j: usize, chunk: &mut [Elem]| {
        let mut out = ArrayViewMut2::from_shape((rows, cols), chunk)
            .expect("internal error: a destination matrix's length");
        if groups[j].is_empty() {
            // broadcast against an axis of size 0: an empty sum
            out.fill(0.0);
        }
        for (term, &i) in groups[j].iter().enumerate() {
            let alpha = if term == 0 { 0.0 } else { 1.0 };
            gemm(lhs[i], rhs[i], out.view_mut(), alpha, 1.0);
        }
    };
    let dst = dst
        .as_slice_mut()
        .expect("internal error: a product's output is row-major");
    let all_multiply_adds = lhs.len() * matrix_len * inner;
    match product_threads(all_multiply_adds) {
        // enough destinations to keep every thread busy: the destinations are spread over
        // the threads, and each product's `gemm` runs on the thread of its destination
        threads if threads > 1 && groups.len() >= threads => dst
            .par_chunks_mut(matrix_len)
            .enumerate()
            .for_each(|(j, chunk)| as_shard(|| fill(j, chunk))),
        // few destinations: one at a time, each product split across threads when large
        _ => dst
            .chunks_mut(matrix_len)
            .enumerate()
            .for_each(|(j, chunk)| fill(j, chunk)),
    }
}

/// `lhs · rhs` for operands that are not both 2-D (see [`Var::matmul`]).
#[track_caller]
pub(super) fn batched_matmul<'t>(lhs: Var<'t>, rhs: Var<'t>) -> Var<'t> {
    let (a, b) = (lhs.data(), rhs.data());
    let plan = Plan::new(a.shape(), b.shape());
    let tape = lhs.tape();
    let mut out = tape.scratch(&plan.full, false);
    {
        let (a, b) = (own_stack(a.view(), Axis(0)), own_stack(b.view(), Axis(1)));
        let (a, b) = (broadcast(&a, &plan.batch), broadcast(&b, &plan.batch));
        sum_of_products(
            &matrices(a),
            &matrices(b),
            &plan.batch,
            &plan.batch,
            &mut out,
        );
    }
    let out = out
        .into_shape_with_order(IxDyn(&plan.out))
        .expect("internal error: dropping a product's 1-D axes");
    tape.record("matmul", &[lhs, rhs], out, move |bw| {
        let g = plan.full_view(bw.grad.view());
        let g = matrices(g);
        let a_own = own_stack(bw.inputs[0].view(), Axis(0));
        let b_own = own_stack(bw.inputs[1].view(), Axis(1));
        let a = broadcast(&a_own, &plan.batch);
        let b = broadcast(&b_own, &plan.batch);
        let (a, b) = (matrices(a), matrices(b));
        // ∂L/∂A[i] = G[i]·B[i]ᵀ, summed over the batch axes A was broadcast along
        let da = bw.needs[0].then(|| {
            let bt: Vec<_> = b.iter().map(|m| m.t()).collect();
            gradient(bw.tape, &g, &bt, &plan, &plan.lhs, bw.inputs[0].shape())
        });
        // ∂L/∂B[i] = A[i]ᵀ·G[i], summed likewise
        let db = bw.needs[1].then(|| {
            let at: Vec<_> = a.iter().map(|m| m.t()).collect();
            gradient(bw.tape, &at, &g, &plan, &plan.rhs, bw.inputs[1].shape())
        });
        [da, db]
    })
}

/// An operand seen as its own stack of matrices: a 1-D one gets a unit axis at `axis`
/// (`Axis(0)` makes the row `[1, k]` of a left operand, `Axis(1)` the column `[k, 1]` of a
/// right one).
fn own_stack(x: ArrayViewD<'_, Elem>, axis: Axis) -> ArrayViewD<'_, Elem> {
    if x.ndim() == 1 {
        x.insert_axis(axis)
    } else {
        x
    }
}

/// The operand's stack broadcast to `[..batch, r, c]` (no copy: broadcast axes have stride 0).
fn broadcast<'a>(own: &'a ArrayViewD<'_, Elem>, batch: &[usize]) -> ArrayViewD<'a, Elem> {
    let shape = own.shape();
    let full: Vec<usize> = batch
        .iter()
        .copied()
        .chain(shape[shape.len() - 2..].iter().copied())
        .collect();
    own.broadcast(IxDyn(&full))
        .expect("internal error: batch axes checked to broadcast")
}

/// The gradient of an operand whose stack shape is `own` and whose shape is `shape`: the
/// sum of `lhs[i]·rhs[i]` over the products each of its matrices took part in.
fn gradient(
    tape: &crate::Tape,
    lhs: &[ArrayView2<'_, Elem>],
    rhs: &[ArrayView2<'_, Elem>],
    plan: &Plan,
    own: &[usize],
    shape: &[usize],
) -> Tensor {
    let mut grad = tape.scratch(own, false);
    let ndim = plan.batch.len();
    let own_batch = &own[..own.len() - 2];
    let dst_batch: Vec<usize> = (0..ndim).map(|a| padded(own_batch, ndim, a)).collect();
    sum_of_products(lhs, rhs, &plan.batch, &dst_batch, &mut grad);
    grad.into_shape_with_order(IxDyn(shape))
        .expect("internal error: dropping a gradient's 1-D axes")
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::tensor::Tensor;
    use crate::{Tape, gradcheck};
    use ndarray::{Axis, IxDyn, s};

    /// The product of two stacks computed as a loop of 2-D products through the tape, each
    /// batch index mapped to the operands' own matrices by hand (the broadcast rule written
    /// out), for operands with at least 2 axes.
    fn loop_of_2d_products(a: &Tensor, b: &Tensor) -> Tensor {
        let (batch_a, batch_b) = (&a.shape()[..a.ndim() - 2], &b.shape()[..b.ndim() - 2]);
        let ndim = batch_a.len().max(batch_b.len());
        let size = |shape: &[usize], axis: usize| {
            (axis + shape.len())
                .checked_sub(ndim)
                .map_or(1, |i| shape[i])
        };
        let batch: Vec<usize> = (0..ndim)
            .map(|axis| size(batch_a, axis).max(size(batch_b, axis)))
            .collect();
        let (m, n) = (a.shape()[a.ndim() - 2], b.shape()[b.ndim() - 1]);
        let mut out = Tensor::zeros(IxDyn(&[batch.iter().product(), m, n]));
        for (i, mut slot) in out.outer_iter_mut().enumerate() {
            // the batch index of product i, row-major
            let mut index = vec![0; ndim];
            let mut rest = i;
            for axis in (0..ndim).rev() {
                index[axis] = rest % batch[axis];
                rest /= batch[axis];
            }
            let matrix = |x: &Tensor, own: &[usize]| {
                let mut view = x.view();
                for (axis, &at) in index.iter().enumerate().skip(ndim - own.len()) {
                    let at = if own[axis + own.len() - ndim] == 1 {
                        0
                    } else {
                        at
                    };
                    view = view.index_axis_move(Axis(0), at);
                }
                view.to_owned()
            };
            let tape = Tape::new();
            let (x, y) = (matrix(a, batch_a), matrix(b, batch_b));
            assert_eq!(x.ndim(), 2);
            slot.assign(&tape.constant(x).matmul(tape.constant(y)).value());
        }
        let full: Vec<usize> = batch.iter().copied().chain([m, n]).collect();
        out.into_shape_with_order(IxDyn(&full)).unwrap()
    }

    #[test]
    fn forward_by_hand_with_a_broadcast_batch() {
        let tape = Tape::new();
        // two matrices [[1, 2]] and [[3, 4]] (lhs [2, 1, 2]) times one column [1, -1]ᵀ
        let a = tape.constant(t(&[2, 1, 2], &[1., 2., 3., 4.]));
        let b = tape.constant(t(&[2, 1], &[1., -1.]));
        assert_eq!(a.matmul(b).value(), t(&[2, 1, 1], &[-1., -1.]));
        // lhs batch [2] against rhs batch [3, 1]: out[i, j] = a[j]·b[i]
        let b = tape.constant(t(&[3, 1, 2, 1], &[1., 0., 0., 1., 1., 1.]));
        assert_eq!(
            a.matmul(b).value(),
            t(&[3, 2, 1, 1], &[1., 3., 2., 4., 3., 7.])
        );
    }

    #[test]
    fn one_dimensional_cases_by_hand() {
        let tape = Tape::new();
        let v = tape.constant(t(&[2], &[1., 2.]));
        let m = tape.constant(t(&[2, 3], &[1., 0., 2., 0., 1., 3.]));
        let stack = tape.constant(t(
            &[2, 3, 2],
            &[1., 0., 0., 1., 1., 1., 2., 0., 0., 2., 1., -1.],
        ));
        // [k]·[k, n] -> [n]: the row vector times the matrix
        assert_eq!(v.matmul(m).value(), t(&[3], &[1., 2., 8.]));
        // [m, k]·[k] -> [m]
        assert_eq!(m.transpose().matmul(v).value(), t(&[3], &[1., 2., 8.]));
        // [..., m, k]·[k] -> [..., m]
        assert_eq!(
            stack.matmul(v).value(),
            t(&[2, 3], &[1., 2., 3., 2., 4., -1.])
        );
        // [k]·[..., k, n] -> [..., n]
        let columns = tape.constant(t(&[2, 2, 1], &[1., 1., 0., 3.]));
        assert_eq!(v.matmul(columns).value(), t(&[2, 1], &[3., 6.]));
        // [k]·[k] -> [], the dot product
        let dot = v.matmul(v);
        assert_eq!(dot.shape(), Vec::<usize>::new());
        assert_eq!(dot.item(), 5.0);
    }

    #[test]
    fn hand_derived_gradients_of_a_dot_and_a_shared_matrix() {
        let tape = Tape::new();
        let a = tape.leaf(t(&[2], &[1., 2.]));
        let b = tape.leaf(t(&[2], &[3., 4.]));
        // L = a·b: ∂L/∂a = b, ∂L/∂b = a
        let g = a.matmul(b).backward();
        assert_eq!(g.get(a).unwrap(), t(&[2], &[3., 4.]));
        assert_eq!(g.get(b).unwrap(), t(&[2], &[1., 2.]));

        // L = Σ_i Σ x_i·W over a stack of two rows x_i [1, 2] and one W [2, 1]:
        // ∂L/∂W = Σ_i x_iᵀ (summed over the broadcast batch), ∂L/∂x_i = Wᵀ
        let x = tape.leaf(t(&[2, 1, 2], &[1., 2., 3., 4.]));
        let w = tape.leaf(t(&[2, 1], &[5., 6.]));
        let g = x.matmul(w).sum().backward();
        assert_eq!(g.get(w).unwrap(), t(&[2, 1], &[4., 6.]));
        assert_eq!(g.get(x).unwrap(), t(&[2, 1, 2], &[5., 6., 5., 6.]));
    }

    #[test]
    fn batched_product_equals_a_loop_of_2d_products() {
        let cases: [(&[usize], &[usize]); 6] = [
            (&[3, 4, 5], &[3, 5, 2]),
            (&[2, 1, 3, 4], &[5, 4, 6]),
            (&[4, 3], &[2, 2, 3, 5]),
            (&[2, 3, 4, 2], &[2, 3]),
            (&[1, 3, 2], &[4, 1, 2, 3]),
            (&[2, 1, 2, 3], &[1, 3, 3, 2]),
        ];
        for (seed, (ls, rs)) in cases.into_iter().enumerate() {
            let (a, b) = (random(ls, 2 * seed as u64), random(rs, 2 * seed as u64 + 1));
            let tape = Tape::new();
            let batched = tape.constant(a.clone()).matmul(tape.constant(b.clone()));
            // the same kernel on the same matrices: the same numbers
            assert_eq!(
                batched.value(),
                loop_of_2d_products(&a, &b),
                "{ls:?} {rs:?}"
            );
        }
        // the documented example's shapes
        let tape = Tape::new();
        let (a, b) = (random(&[2, 1, 3, 4], 1), random(&[5, 4, 6], 2));
        let c = tape.constant(a).matmul(tape.constant(b));
        assert_eq!(c.shape(), [2, 5, 3, 6]);
    }

    #[test]
    fn strided_operands_are_read_in_place() {
        // a batch of transposed matrices (the last two axes swapped) and a narrowed batch
        let (a, b) = (random(&[3, 4, 2], 1), random(&[5, 4, 2], 2));
        let tape = Tape::new();
        let at = tape.constant(a.clone()).permute(&[0, 2, 1]);
        let bn = tape.constant(b.clone()).narrow(0, 1, 3);
        let product = at.matmul(bn).value();
        let expected = loop_of_2d_products(
            &a.permuted_axes(vec![0, 2, 1])
                .as_standard_layout()
                .to_owned(),
            &b.slice(s![1..4, .., ..]).to_owned().into_dyn(),
        );
        let largest_difference = (&product - &expected).fold(0f32, |m, d| m.max(d.abs()));
        assert!(largest_difference < 1e-5, "{largest_difference}");
    }

    #[test]
    fn gradcheck_same_batch_and_broadcast_batches() {
        let cases: [(&[usize], &[usize]); 7] = [
            // the same batch on both sides
            (&[2, 3, 4], &[2, 4, 3]),
            // size 1 against n, on either side and on both
            (&[1, 2, 3], &[3, 3, 2]),
            (&[3, 2, 3], &[1, 3, 2]),
            (&[2, 1, 2, 3], &[1, 3, 3, 2]),
            // missing batch axes on the left, on the right
            (&[2, 3], &[2, 2, 3, 4]),
            (&[2, 2, 3, 4], &[4, 2]),
            // a batch of 1
            (&[1, 1, 3], &[1, 3, 2]),
        ];
        for (seed, (ls, rs)) in cases.into_iter().enumerate() {
            let inputs = [random(ls, 2 * seed as u64), random(rs, 2 * seed as u64 + 1)];
            gradcheck(|v| v[0].matmul(v[1]), &inputs)
                .unwrap_or_else(|e| panic!("{ls:?} · {rs:?}: {e}"));
        }
        // strided operands, and a stack used on both sides (gradients added up)
        let inputs = [random(&[2, 3, 3], 20), random(&[3, 3, 2], 21)];
        gradcheck(
            |v| {
                v[0].permute(&[0, 2, 1])
                    .matmul(v[0])
                    .matmul(v[1].narrow(0, 1, 2))
            },
            &inputs,
        )
        .unwrap();
    }

    #[test]
    fn gradcheck_one_dimensional_cases() {
        let cases: [(&[usize], &[usize]); 6] = [
            (&[3], &[3, 2]),
            (&[2, 3], &[3]),
            (&[2, 2, 3], &[3]),
            (&[3], &[2, 3, 4]),
            (&[3], &[3]),
            (&[1], &[1]),
        ];
        for (seed, (ls, rs)) in cases.into_iter().enumerate() {
            let inputs = [random(ls, 2 * seed as u64), random(rs, 2 * seed as u64 + 1)];
            gradcheck(|v| v[0].matmul(v[1]), &inputs)
                .unwrap_or_else(|e| panic!("{ls:?} · {rs:?}: {e}"));
        }
    }

    #[test]
    fn large_batch_in_parallel_matches_the_loop_and_repeats_exactly() {
        // 16 products of 64·64·64: past the size where work is split across threads (when
        // there are several); the broadcast right operand's gradient sums all 16
        let _ = crate::set_num_threads(2);
        let (a, b) = (random(&[16, 64, 64], 1), random(&[64, 64], 2));
        let run = || {
            let tape = Tape::new();
            let (x, w) = (tape.leaf(a.clone()), tape.leaf(b.clone()));
            let y = x.matmul(w);
            let g = (y * y).sum().backward();
            (
                y.value(),
                g.get(x).unwrap().to_owned(),
                g.get(w).unwrap().to_owned(),
            )
        };
        let (y, gx, gw) = run();
        let expected = loop_of_2d_products(&a, &b.clone().insert_axis(Axis(0)));
        let close = |x: &Tensor, e: &Tensor, tolerance: f32| {
            let largest = (x - e).fold(0f32, |m, d| m.max(d.abs()));
            assert!(largest < tolerance, "{largest}");
        };
        close(&y, &expected, 1e-3);
        // ∂L/∂W = Σ_i X_iᵀ·2Y_i, ∂L/∂X_i = 2Y_i·Wᵀ
        let mut gw_expected = Tensor::zeros(IxDyn(&[64, 64]));
        for i in 0..16 {
            let (xi, yi) = (a.index_axis(Axis(0), i), y.index_axis(Axis(0), i));
            let xi = xi.into_dimensionality::<ndarray::Ix2>().unwrap();
            let yi = yi.into_dimensionality::<ndarray::Ix2>().unwrap();
            gw_expected += &(xi.t().dot(&yi) * 2.0).into_dyn();
        }
        close(&gw, &gw_expected, 1e-2);
        let b2 = b.view().into_dimensionality::<ndarray::Ix2>().unwrap();
        let gx0 = y
            .index_axis(Axis(0), 0)
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        close(
            &gx.index_axis(Axis(0), 0).to_owned(),
            &(gx0.dot(&b2.t()) * 2.0).into_dyn(),
            1e-2,
        );
        // the same thread count: the same numbers, bit for bit
        assert_eq!(run(), (y, gx, gw));
    }

    #[test]
    fn broadcast_against_an_empty_batch_gives_zero_gradients_in_a_dirty_buffer() {
        let mut tape = Tape::new();
        let _ = tape.leaf(random(&[3, 4], 1)).exp().sum().backward();
        tape.reset(); // the next buffers are reused, holding old numbers
        let a = tape.leaf(crate::tensor::zeros(&[0, 3, 4]));
        let b = tape.leaf(random(&[1, 4, 3], 2));
        let y = a.matmul(b);
        assert_eq!(y.shape(), [0, 3, 3]);
        let g = y.sum().backward();
        assert_eq!(g.get(b).unwrap(), crate::tensor::zeros(&[1, 4, 3]));
        assert_eq!(g.get(a).unwrap().shape(), [0, 3, 4]);
    }

    #[test]
    #[should_panic(
        expected = "matmul: batch axes cannot be broadcast together; lhs shape [2, 3, 4], rhs shape [5, 4, 6]"
    )]
    fn batch_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3, 4], 0))
            .matmul(tape.constant(random(&[5, 4, 6], 0)));
    }

    #[test]
    #[should_panic(
        expected = "matmul: inner dimensions differ; lhs shape [2, 3, 4], rhs shape [3]"
    )]
    fn batched_inner_dimension_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3, 4], 0))
            .matmul(tape.constant(random(&[3], 0)));
    }

    #[test]
    #[should_panic(
        expected = "matmul: expected operands with at least 1 dimension; lhs shape [], rhs shape [3]"
    )]
    fn scalar_operand_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[], 0))
            .matmul(tape.constant(random(&[3], 0)));
    }
}
