//! Matrix product of 2-D operands, on the pure-Rust `gemm` kernel (other ranks, batched and
//! broadcast, are in `matmul_batched.rs`).
//!
//! Operands are read through their strides, so a transposed operand (`w.transpose()`, or
//! `Bᵀ` and `Aᵀ` in the backward pass) costs no copy.

use crate::autograd::grad::Grad;
use crate::autograd::tape::{Backward, Tape, Value, Var};
use crate::kernels::gemm::{gemm, product, view2, view2_mut};
use crate::tensor::Elem;
use ndarray::ArrayView2;

impl<'t> Var<'t> {
    /// Matrix product `C = A·B`, with the rules of `torch.matmul` for operands that are not
    /// both 2-D: stacks of matrices multiply pairwise, their leading (batch) axes broadcast,
    /// and vectors count as a row or a column.
    ///
    /// Backward: `∂L/∂A = G·Bᵀ`, `∂L/∂B = Aᵀ·G`, where `G = ∂L/∂C`, matrix by matrix, and
    /// summed over the batch axes along which an operand was broadcast. Transposes are read
    /// through strides, without copies.
    ///
    /// # Shapes
    /// - `[m, k] · [k, n] -> [m, n]`.
    /// - `[..., m, k] · [..., k, n] -> [..., m, n]`: the batch axes (all but the last two)
    ///   broadcast by NumPy's rules. Aligned at the right, each pair of sizes must be equal or
    ///   one of them 1, and a missing axis counts as 1: `[2, 1, 3, 4] · [5, 4, 6] ->
    ///   [2, 5, 3, 6]`, `[7, 3, 4] · [4, 6] -> [7, 3, 6]` (one matrix for all seven).
    /// - A 1-D left operand `[k]` is read as the row `[1, k]` and a 1-D right operand `[k]`
    ///   as the column `[k, 1]`; that axis is then dropped from the result:
    ///   `[k] · [k, n] -> [n]`, `[..., m, k] · [k] -> [..., m]`, `[k] · [..., k, n] -> [..., n]`,
    ///   and `[k] · [k] -> []`, the dot product.
    ///
    /// # Panics
    /// If an operand is 0-D, the inner dimensions differ, or the batch axes do not broadcast,
    /// e.g. `matmul: inner dimensions differ; lhs shape [2, 3], rhs shape [4, 5]` or
    /// `matmul: batch axes cannot be broadcast together; lhs shape [2, 3, 4], rhs shape [5, 4, 6]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let a = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
    /// let b = tape.constant(tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0], &[2, 2])?);
    /// assert_eq!(a.matmul(b).value().as_slice().unwrap(), &[3.0, 2.0, 7.0, 4.0]);
    ///
    /// // a stack of two matrices times one matrix, broadcast over the stack
    /// let stack = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 1.0, 0.0], &[2, 2, 2])?);
    /// let c = stack.matmul(b);
    /// assert_eq!(c.shape(), [2, 2, 2]);
    /// assert_eq!(c.value().as_slice().unwrap(), &[3.0, 2.0, 7.0, 4.0, 1.0, 1.0, 1.0, 0.0]);
    ///
    /// // batch axes [3, 1] and [4] broadcast to [3, 4]
    /// let x = tape.constant(tensor::ones(&[3, 1, 2, 5]));
    /// let y = tape.constant(tensor::ones(&[4, 5, 6]));
    /// assert_eq!(x.matmul(y).shape(), [3, 4, 2, 6]);
    ///
    /// // vectors: matrix·vector, and the dot product (a 0-D result)
    /// let v = tape.constant(tensor::from_vec(vec![1.0, -1.0], &[2])?);
    /// assert_eq!(a.matmul(v).value().as_slice().unwrap(), &[-1.0, -1.0]);
    /// assert_eq!(v.matmul(v).shape(), Vec::<usize>::new());
    /// assert_eq!(v.matmul(v).item(), 2.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn matmul(self, rhs: Var<'t>) -> Var<'t> {
        if self.data().ndim() != 2 || rhs.data().ndim() != 2 {
            return super::matmul_batched::batched_matmul(self, rhs);
        }
        let out = forward_product("matmul", self, rhs, false);
        self.tape().record("matmul", &[self, rhs], out, |b| {
            let (a, w, g) = (view2(b.inputs[0]), view2(b.inputs[1]), view2(b.grad));
            let da = b.needs[0].then(|| {
                let mut da = laid_out_like(b.tape, &a);
                gemm(g, w.t(), view2_mut(&mut da), 0.0, 1.0);
                da.into()
            });
            // ∂L/∂B = Aᵀ·G
            let dw = b.needs[1].then(|| match b.leaf[1] {
                true => Grad::Outer {
                    left: b.inputs[0].clone(),
                    right: incoming(b),
                },
                false => {
                    let mut dw = laid_out_like(b.tape, &w);
                    gemm(a.t(), g, view2_mut(&mut dw), 0.0, 1.0);
                    dw.into()
                }
            });
            [da, dw]
        })
    }

    /// `C = A·Bᵀ` for a `[m, k]` and a `[n, k]` operand: a linear layer's `x·Wᵀ` with `W`
    /// stored `[out, in]` (PyTorch's `F.linear` without bias). The same as
    /// `a.matmul(b.transpose())`, with one node fewer, and `∂L/∂B` comes out in `B`'s own
    /// layout.
    ///
    /// Backward: `∂L/∂A = G·B`, `∂L/∂B = Gᵀ·A`, where `G = ∂L/∂C`. When `B` is a leaf, its
    /// gradient is kept as the factors `G` and `A` (see [`Gradients`](crate::Gradients)), so
    /// plain SGD updates it with one product and no `[n, k]` gradient is written.
    ///
    /// # Shapes
    /// `[m, k] · [n, k]ᵀ -> [m, n]`.
    ///
    /// # Panics
    /// If an operand is not 2-D or the inner dimensions differ, e.g.
    /// `matmul_transposed: inner dimensions differ; lhs shape [2, 3], rhs shape [4, 5]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?);
    /// let w = tape.leaf(tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0, 0.0, 2.0], &[3, 2])?);
    /// let y = x.matmul_transposed(w);
    /// assert_eq!(y.value().as_slice().unwrap(), &[1.0, 3.0, 4.0]);
    /// // ∂Σy/∂W = 1ᵀ·x: every row of W gets x
    /// let grads = y.sum().backward();
    /// assert_eq!(grads.get(w).unwrap().as_slice().unwrap(), &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn matmul_transposed(self, rhs: Var<'t>) -> Var<'t> {
        self.product_transposed(rhs, "matmul_transposed")
    }

    /// [`Var::matmul_transposed`], whose shape checks name `op` (the op the caller was
    /// asked for).
    #[track_caller]
    fn product_transposed(self, rhs: Var<'t>, op: &'static str) -> Var<'t> {
        let out = forward_product(op, self, rhs, true);
        self.tape()
            .record("matmul_transposed", &[self, rhs], out, |b| {
                let (a, w, g) = (view2(b.inputs[0]), view2(b.inputs[1]), view2(b.grad));
                let da = b.needs[0].then(|| {
                    let mut da = b.tape.scratch(a.shape(), false);
                    gemm(g, w, view2_mut(&mut da), 0.0, 1.0);
                    da.into()
                });
                // ∂L/∂B = Gᵀ·A
                let dw = b.needs[1].then(|| match b.leaf[1] {
                    true => Grad::Outer {
                        left: incoming(b),
                        right: b.inputs[0].clone(),
                    },
                    false => {
                        let mut dw = b.tape.scratch(w.shape(), false);
                        gemm(g.t(), a, view2_mut(&mut dw), 0.0, 1.0);
                        dw.into()
                    }
                });
                [da, dw]
            })
    }
}

impl<'t> Var<'t> {
    /// `y = x·Wᵀ + b` for `x: [..., in]`, a weight `W: [out, in]` and a bias `b: [out]`:
    /// PyTorch's `F.linear`, what a [`Linear`](crate::Linear) layer computes. The same
    /// numbers as `x.matmul_transposed(w) + b`; when no gradient flows to any operand (an
    /// inference tape), the bias is added into the product's output in place, one node
    /// instead of two. Leading axes other than one of rows are folded into the rows and
    /// back, free reshapes of row-major values around the 2-D product (which keeps its
    /// factored weight gradient).
    ///
    /// # Shapes
    /// `[m, in] · [out, in]ᵀ + [out] -> [m, out]` (any bias that broadcasts to `[m, out]`
    /// works, as with `+`); `[..., in] -> [..., out]`, and `[in] -> [out]`.
    ///
    /// # Panics
    /// If `x`'s last axis is not the weight's `in` (`linear: inner dimensions differ; lhs
    /// shape [2, 5], rhs shape [3, 4]`), if the weight is not 2-D, and when the bias does not
    /// broadcast to the output.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::inference();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?);
    /// let w = tape.constant(tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0], &[2, 2])?);
    /// let b = tape.constant(tensor::from_vec(vec![0.5, -1.0], &[2])?);
    /// // [1, 2]·Wᵀ = [1, 3], plus the bias
    /// assert_eq!(x.linear(w, Some(b)).value().as_slice().unwrap(), &[1.5, 2.0]);
    /// assert_eq!(tape.len(), 4); // x, W, b and one node for the whole layer
    /// // a batch of sequences [2, 3, 2]: each of the 6 rows alike
    /// let seqs = tape.constant(tensor::from_vec((0..12).map(|v| v as f32).collect(), &[2, 3, 2])?);
    /// assert_eq!(seqs.linear(w, Some(b)).shape(), [2, 3, 2]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn linear(self, weight: Var<'t>, bias: Option<Var<'t>>) -> Var<'t> {
        if self.data().ndim() != 2 {
            let shape = self.shape();
            let (&inner, leading) = shape.split_last().unwrap_or((&0, &[]));
            let rows = leading.iter().product();
            let y = self.reshape(&[rows, inner]).linear(weight, bias);
            let mut out = leading.to_vec();
            out.push(y.shape()[1]);
            return y.reshape(&out);
        }
        let Some(bias) = bias else {
            return self.product_transposed(weight, "linear");
        };
        let frozen = !(self.requires_grad() || weight.requires_grad() || bias.requires_grad());
        let b = bias.data();
        let out_features = weight.shape().first().copied();
        let row_bias = b.ndim() == 1 && Some(b.len()) == out_features;
        if !frozen || !row_bias {
            let product = self.product_transposed(weight, "linear");
            if !row_bias {
                // NumPy's rule, checked here so that a misfit names this op, not `add`; a
                // bias of one value per output (the usual case) fits without a look
                let (bias_shape, out) = (b.shape(), product.shape());
                let fits = bias_shape.len() <= out.len()
                    && (bias_shape.iter().rev().zip(out.iter().rev()))
                        .all(|(&b, &o)| b == o || b == 1);
                assert!(
                    fits,
                    "linear: expected a bias that broadcasts to the output shape {out:?}, found \
                     bias shape {bias_shape:?}; x shape {:?}, weight shape {:?}",
                    self.shape(),
                    weight.shape()
                );
            }
            return product + bias;
        }
        let mut out = forward_product("linear", self, weight, true);
        let b = b
            .view()
            .into_dimensionality::<ndarray::Ix1>()
            .expect("1-D bias");
        for mut row in view2_mut(&mut out).rows_mut() {
            row += &b;
        }
        self.tape().record("linear", &[self, weight], out, |_| {
            [None::<crate::Tensor>, None]
        })
    }
}

/// The forward value of op `op`: `A·B`, or `A·Bᵀ` when `transposed`, after checking that
/// both operands are 2-D and their inner dimensions agree.
#[track_caller]
fn forward_product(op: &str, lhs: Var<'_>, rhs: Var<'_>, transposed: bool) -> crate::Tensor {
    let (a, b) = (lhs.data(), rhs.data());
    let (ls, rs) = (a.shape(), b.shape());
    assert!(
        ls.len() == 2 && rs.len() == 2,
        "{op}: expected 2-D operands; lhs shape {ls:?}, rhs shape {rs:?}"
    );
    let b = if transposed {
        view2(&b).reversed_axes()
    } else {
        view2(&b)
    };
    assert!(
        ls[1] == b.nrows(),
        "{op}: inner dimensions differ; lhs shape {ls:?}, rhs shape {rs:?}"
    );
    let mut out = lhs.tape().scratch(&[ls[0], b.ncols()], false);
    if lhs.tape().is_recording() {
        // Training keeps the `gemm` crate's rounding, which does not depend on the row
        // count either: the dot-product kernel rounds differently, and a training run on the
        // edge of divergence (momentum 0.9 at lr 0.1) then ends elsewhere.
        gemm(view2(&a), b, view2_mut(&mut out), 0.0, 1.0);
    } else {
        product(view2(&a), b, view2_mut(&mut out));
    }
    out
}

/// The gradient flowing into a product, kept (in a pooled copy) as a factor of an operand's
/// gradient: `[m, n]`, small next to a weight's `[n, k]`.
fn incoming(b: &Backward<'_>) -> Value {
    b.tape.copy(b.grad.view()).into_shared()
}

/// An output of `like`'s shape in its memory order (contents unspecified; `gemm`
/// overwrites them): column-major when `like` is a transposed row-major matrix (a Linear
/// weight read as `Wᵀ`), so that the gradient, transposed back, is row-major like the
/// weight it updates.
fn laid_out_like(tape: &Tape, like: &ArrayView2<'_, Elem>) -> crate::Tensor {
    let column_major = !like.is_standard_layout() && like.t().is_standard_layout();
    tape.scratch(like.shape(), column_major)
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, gradcheck};

    #[test]
    fn linear_gives_the_product_plus_the_bias_bit_for_bit_in_one_node_when_frozen() {
        // one row and a few (the dot-product kernel), many (gemm); a [1, out] bias and no
        // bias take the two-op path
        for rows in [1, 5, 40] {
            let (x, w, b) = (
                random(&[rows, 37], 1),
                random(&[11, 37], 2),
                random(&[11], 3),
            );
            for tape in [Tape::inference(), Tape::new()] {
                let (xv, wv, bv) = (
                    tape.constant(x.clone()),
                    tape.constant(w.clone()),
                    tape.constant(b.clone()),
                );
                let expected = (xv.matmul_transposed(wv) + bv).value();
                let before = tape.len();
                assert_eq!(xv.linear(wv, Some(bv)).value(), expected, "{rows} rows");
                assert_eq!(tape.len(), before + 1, "{rows} rows: one node");
                let row = tape.constant(b.clone().into_shape_with_order(vec![1, 11]).unwrap());
                assert_eq!(xv.linear(wv, Some(row)).value(), expected, "{rows} rows");
            }
        }
        // a gradient to flow: the product and the sum, with their gradients
        gradcheck(
            |v| v[0].linear(v[1], Some(v[2])),
            &[random(&[3, 4], 4), random(&[2, 4], 5), random(&[2], 6)],
        )
        .unwrap();
    }

    #[test]
    fn forward_by_hand_including_transposed_operands() {
        let tape = Tape::new();
        let a = tape.constant(t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
        let b = tape.constant(t(&[3, 1], &[1., 0., -1.]));
        assert_eq!(a.matmul(b).value(), t(&[2, 1], &[-2., -2.]));
        // Aᵀ·A read through strides
        let ata = a.transpose().matmul(a).value();
        assert_eq!(
            ata,
            t(&[3, 3], &[17., 22., 27., 22., 29., 36., 27., 36., 45.])
        );
    }

    #[test]
    fn hand_derived_gradient() {
        let tape = Tape::new();
        let a = tape.leaf(t(&[1, 2], &[1., 2.]));
        let b = tape.leaf(t(&[2, 1], &[3., 4.]));
        // L = a·b = a₁b₁ + a₂b₂: ∂L/∂a = bᵀ, ∂L/∂b = aᵀ
        let g = a.matmul(b).sum().backward();
        assert_eq!(g.get(a).unwrap(), t(&[1, 2], &[3., 4.]));
        assert_eq!(g.get(b).unwrap(), t(&[2, 1], &[1., 2.]));
    }

    #[test]
    fn gradcheck_matmul_shapes_and_transposes() {
        for (m, k, n) in [(3, 4, 2), (1, 5, 3), (4, 1, 1)] {
            let inputs = [random(&[m, k], 1), random(&[k, n], 2)];
            gradcheck(|v| v[0].matmul(v[1]), &inputs).unwrap();
        }
        // x·Wᵀ with W stored [out, in], as Linear does; and a weight used twice.
        let inputs = [random(&[3, 4], 3), random(&[2, 4], 4)];
        gradcheck(|v| v[0].matmul(v[1].transpose()), &inputs).unwrap();
        let square = [random(&[3, 3], 5)];
        gradcheck(|v| v[0].matmul(v[0]).matmul(v[0].transpose()), &square).unwrap();
    }

    #[test]
    fn gradcheck_matmul_transposed_including_factored_leaf_gradients() {
        for (m, k, n) in [(3, 4, 2), (1, 5, 3), (4, 1, 1)] {
            let inputs = [random(&[m, k], 1), random(&[n, k], 2)];
            gradcheck(|v| v[0].matmul_transposed(v[1]), &inputs).unwrap();
        }
        // a weight used twice (factored gradients added up), and a non-leaf right operand
        let square = [random(&[3, 3], 5)];
        gradcheck(
            |v| {
                v[0].matmul_transposed(v[0])
                    .matmul(v[0])
                    .matmul_transposed(v[0].exp())
            },
            &square,
        )
        .unwrap();
        // B a leaf of `matmul`: Aᵀ·G kept as factors
        let inputs = [random(&[2, 3], 6), random(&[3, 4], 7)];
        gradcheck(|v| v[0].tanh().matmul(v[1]), &inputs).unwrap();
    }

    #[test]
    #[should_panic(
        expected = "linear: expected a bias that broadcasts to the output shape [2, 3], found bias shape [4]; x shape [2, 5], weight shape [3, 5]"
    )]
    fn a_bias_of_another_width_panics_naming_linear() {
        let tape = Tape::new();
        let (x, w, b) = (random(&[2, 5], 1), random(&[3, 5], 2), random(&[4], 3));
        let _ = tape.leaf(x).linear(tape.leaf(w), Some(tape.leaf(b)));
    }

    #[test]
    #[should_panic(
        expected = "linear: inner dimensions differ; lhs shape [2, 5], rhs shape [3, 4]"
    )]
    fn inputs_of_another_width_panic_naming_linear() {
        let tape = Tape::new();
        let (x, w) = (random(&[2, 5], 1), random(&[3, 4], 2));
        let _ = tape.leaf(x).linear(tape.leaf(w), None);
    }

    #[test]
    fn gradcheck_linear_on_rows_sequences_and_one_sample() {
        for x_shape in [vec![3, 4], vec![2, 3, 4], vec![4]] {
            let inputs = [random(&x_shape, 1), random(&[5, 4], 2), random(&[5], 3)];
            gradcheck(|v| v[0].linear(v[1], Some(v[2])), &inputs).unwrap();
            gradcheck(|v| v[0].linear(v[1], None), &inputs[..2]).unwrap();
        }
        // [2, 3, 4] gives the rows of its [6, 4] matrix, in order
        let tape = Tape::new();
        let (x, w) = (random(&[2, 3, 4], 4), random(&[5, 4], 5));
        let seqs = tape
            .constant(x.clone())
            .linear(tape.constant(w.clone()), None);
        let rows = tape.constant(x.into_shape_with_order(vec![6, 4]).unwrap());
        let rows = rows.linear(tape.constant(w), None);
        assert_eq!(seqs.shape(), [2, 3, 5]);
        assert_eq!(
            seqs.value().iter().collect::<Vec<_>>(),
            rows.value().iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn matmul_transposed_equals_matmul_of_the_transpose() {
        let (a, b) = (random(&[5, 7], 1), random(&[3, 7], 2));
        let tape = Tape::new();
        let (x, w) = (tape.leaf(a.clone()), tape.leaf(b.clone()));
        let fused = x.matmul_transposed(w);
        let reference = x.matmul(w.transpose());
        assert_eq!(fused.value(), reference.value());
        let (g1, g2) = (fused.sum().backward(), reference.sum().backward());
        assert_eq!(g1.get(x), g2.get(x));
        let (gw1, gw2) = (g1.get(w).unwrap(), g2.get(w).unwrap());
        assert!(gw1.is_standard_layout());
        let largest_difference = (gw1 - gw2).fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(largest_difference < 1e-5, "{largest_difference}");
    }

    #[test]
    #[should_panic(
        expected = "matmul_transposed: inner dimensions differ; lhs shape [2, 3], rhs shape [4, 5]"
    )]
    fn matmul_transposed_inner_dimension_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .matmul_transposed(tape.constant(random(&[4, 5], 0)));
    }

    #[test]
    fn weight_gradient_through_a_transpose_is_row_major() {
        let tape = Tape::new();
        let x = tape.constant(random(&[3, 4], 1));
        let w = tape.leaf(random(&[2, 4], 2));
        let g = x.matmul(w.transpose()).sum().backward();
        let gw = g.get(w).unwrap();
        assert!(gw.is_standard_layout());
        // ∂L/∂W[o, i] = Σ_n x[n, i]
        let column_sums = x.value().sum_axis(ndarray::Axis(0));
        assert_eq!(gw.index_axis(ndarray::Axis(0), 1), column_sums);
    }

    #[test]
    fn empty_inner_dimension_gives_zeros_even_in_a_dirty_buffer() {
        let mut tape = Tape::new();
        let big = tape.constant(random(&[3, 4], 1));
        let _ = big.matmul(tape.constant(random(&[4, 3], 2)));
        tape.reset(); // the next product's output reuses that buffer
        let a = tape.constant(crate::tensor::zeros(&[3, 0]));
        let b = tape.constant(crate::tensor::zeros(&[0, 3]));
        assert_eq!(a.matmul(b).value(), crate::tensor::zeros(&[3, 3]));
    }

    #[test]
    fn large_product_matches_naive_sum() {
        let (a, b) = (random(&[70, 130], 6), random(&[130, 90], 7));
        let tape = Tape::new();
        let c = tape
            .constant(a.clone())
            .matmul(tape.constant(b.clone()))
            .value();
        for (i, j) in [(0, 0), (69, 89), (33, 17)] {
            let expected: f32 = (0..130).map(|p| a[[i, p]] * b[[p, j]]).sum();
            assert!((c[[i, j]] - expected).abs() < 1e-3, "{i},{j}");
        }
    }

    #[test]
    #[should_panic(
        expected = "matmul: inner dimensions differ; lhs shape [2, 3], rhs shape [4, 5]"
    )]
    fn inner_dimension_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .matmul(tape.constant(random(&[4, 5], 0)));
    }

    #[test]
    #[should_panic(
        expected = "matmul_transposed: expected 2-D operands; lhs shape [3], rhs shape [1, 3]"
    )]
    fn matmul_transposed_of_a_1d_operand_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[3], 0))
            .matmul_transposed(tape.constant(random(&[1, 3], 0)));
    }
}
