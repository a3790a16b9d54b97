//! Index ops: slicing ([`Var::narrow`]), joining ([`Var::concat`], [`Var::stack`]), constant
//! padding ([`Var::pad`]) and picking elements by index ([`Var::index_select`],
//! [`Var::gather`]). Each backward rule moves the gradient back to where the element came
//! from: the inverse of the forward's copy.

use super::check_axis;
use crate::autograd::tape::{Value, Var};
use crate::tensor::Elem;
use ndarray::{ArrayBase, Axis, Data, Dimension, IxDyn, Slice};

impl<'t> Var<'t> {
    /// The `len` elements starting at `start` along `axis` (`torch.narrow(x, dim, start,
    /// length)`): `y[.., i, ..] = x[.., start + i, ..]`. Free: the result is a view of the same
    /// data.
    ///
    /// Backward: `∂L/∂x` is `G` in the narrowed window and `0` elsewhere.
    ///
    /// # Shapes
    /// `[a, b, c]` narrowed along axis 1 to `len` gives `[a, len, c]`.
    ///
    /// # Panics
    /// If `axis` is out of range or the window passes the end of the axis, e.g.
    /// `narrow: window 2..5 out of range for size 4 along axis 1; x shape [3, 4]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
    /// let y = x.narrow(1, 1, 2);
    /// assert_eq!(y.value(), tensor::from_vec(vec![2.0, 3.0, 5.0, 6.0], &[2, 2])?);
    /// let g = y.sum().backward();
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn narrow(self, axis: usize, start: usize, len: usize) -> Var<'t> {
        let x = self.data();
        check_axis("narrow", axis, x.shape());
        let size = x.len_of(Axis(axis));
        let end = start.checked_add(len).filter(|&end| end <= size);
        let Some(end) = end else {
            panic!(
                "narrow: window {start}..{} out of range for size {size} along axis {axis}; \
                 x shape {:?}",
                start.saturating_add(len),
                x.shape()
            )
        };
        let window = Slice::from(start..end);
        let mut value: Value = x;
        value.slice_axis_inplace(Axis(axis), window);
        self.tape().record("narrow", &[self], value, move |b| {
            let mut dx = b.tape.zeros(b.inputs[0].shape());
            dx.slice_axis_mut(Axis(axis), window).assign(b.grad);
            [Some(dx), None]
        })
    }

    /// The inputs joined along the existing axis `axis` (`torch.cat(tensors, dim)`), in order.
    /// All inputs have the same number of axes and the same sizes except along `axis`. One
    /// input is returned as it is.
    ///
    /// Recorded as a balanced tree of two-input joins (`n − 1` nodes for `n` inputs), so each
    /// element is copied `⌈log₂ n⌉` times.
    ///
    /// Backward: `G` split along `axis` into pieces of the inputs' sizes.
    ///
    /// # Shapes
    /// `[a, b₁, c]`, `[a, b₂, c]` joined along axis 1 give `[a, b₁ + b₂, c]`.
    ///
    /// # Panics
    /// If `inputs` is empty, `axis` is out of range, or the shapes differ outside `axis`, e.g.
    /// `concat: shapes differ outside axis 0; input 0 shape [2, 3], input 1 shape [1, 4]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape, Var};
    /// let tape = Tape::new();
    /// let a = tape.leaf(tensor::from_vec(vec![1.0, 2.0], &[2, 1])?);
    /// let b = tape.leaf(tensor::from_vec(vec![3.0, 4.0, 5.0, 6.0], &[2, 2])?);
    /// let y = Var::concat(&[a, b], 1);
    /// assert_eq!(y.value(), tensor::from_vec(vec![1.0, 3.0, 4.0, 2.0, 5.0, 6.0], &[2, 3])?);
    /// // L = Σ c ⊙ y: each input gets its slice of c
    /// let c = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
    /// let g = (y * c).sum().backward();
    /// assert_eq!(g.get(a).unwrap().as_slice().unwrap(), &[1.0, 4.0]);
    /// assert_eq!(g.get(b).unwrap().as_slice().unwrap(), &[2.0, 3.0, 5.0, 6.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn concat(inputs: &[Var<'t>], axis: usize) -> Var<'t> {
        let Some(first) = inputs.first() else {
            panic!("concat: no inputs to join")
        };
        let shape = first.shape();
        check_axis("concat", axis, &shape);
        for (k, input) in inputs.iter().enumerate().skip(1) {
            let other = input.shape();
            let same = other.len() == shape.len()
                && (0..shape.len()).all(|d| d == axis || other[d] == shape[d]);
            assert!(
                same,
                "concat: shapes differ outside axis {axis}; input 0 shape {shape:?}, \
                 input {k} shape {other:?}"
            );
        }
        concat_tree(inputs, axis)
    }

    /// The inputs joined along a new axis `axis` (`torch.stack(tensors, dim)`): each input
    /// gets a size-1 axis at `axis` (a [`Var::reshape`]), then they are joined
    /// with [`Var::concat`]. All inputs have the same shape; `axis` may be `0..=ndim`.
    ///
    /// # Shapes
    /// `n` inputs of shape `[a, b]` stacked at axis 1 give `[a, n, b]`.
    ///
    /// # Panics
    /// If `inputs` is empty, `axis > ndim`, or the shapes differ, e.g.
    /// `stack: shapes differ; input 0 shape [2], input 1 shape [3]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape, Var};
    /// let tape = Tape::new();
    /// let a = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[2])?);
    /// let b = tape.constant(tensor::from_vec(vec![3.0, 4.0], &[2])?);
    /// let rows = Var::stack(&[a, b], 0).value();
    /// assert_eq!(rows, tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
    /// let columns = Var::stack(&[a, b], 1).value();
    /// assert_eq!(columns, tensor::from_vec(vec![1.0, 3.0, 2.0, 4.0], &[2, 2])?);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn stack(inputs: &[Var<'t>], axis: usize) -> Var<'t> {
        let Some(first) = inputs.first() else {
            panic!("stack: no inputs to join")
        };
        let shape = first.shape();
        assert!(
            axis <= shape.len(),
            "stack: axis {axis} out of range for inputs of shape {shape:?}"
        );
        for (k, input) in inputs.iter().enumerate().skip(1) {
            let other = input.shape();
            assert!(
                other == shape,
                "stack: shapes differ; input 0 shape {shape:?}, input {k} shape {other:?}"
            );
        }
        let mut expanded = shape;
        expanded.insert(axis, 1);
        let inputs: Vec<Var<'t>> = inputs.iter().map(|x| x.reshape(&expanded)).collect();
        concat_tree(&inputs, axis)
    }

    /// `x` surrounded by `value` (constant padding): `pads[d] = (before, after)` adds
    /// `before` elements at the start and `after` at the end of axis `d`, one pair per axis,
    /// **in axis order**. This is `torch.nn.functional.pad(x, pad, mode="constant", value)`
    /// except for the order: PyTorch lists pairs from the last axis backwards.
    ///
    /// Backward: `∂L/∂x` is the inner window of `G` (the padding gets no gradient).
    ///
    /// # Shapes
    /// `[a, b]` with `pads = [(p, q), (r, s)]` gives `[p + a + q, r + b + s]`.
    ///
    /// # Panics
    /// If `pads` does not have one pair per axis, e.g.
    /// `pad: 1 (before, after) pairs for 2 axes; x shape [2, 3]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?);
    /// let y = x.pad(&[(0, 1), (1, 0)], -1.0);
    /// assert_eq!(y.value(), tensor::from_vec(vec![-1.0, 1.0, 2.0, -1.0, -1.0, -1.0], &[2, 3])?);
    /// let c = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
    /// let g = (y * c).sum().backward();
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[2.0, 3.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn pad(self, pads: &[(usize, usize)], value: Elem) -> Var<'t> {
        let x = self.data();
        assert!(
            pads.len() == x.ndim(),
            "pad: {} (before, after) pairs for {} axes; x shape {:?}",
            pads.len(),
            x.ndim(),
            x.shape()
        );
        let out_shape: Vec<usize> = x
            .shape()
            .iter()
            .zip(pads)
            .map(|(&n, &(before, after))| before + n + after)
            .collect();
        let starts: Vec<usize> = pads.iter().map(|&(before, _)| before).collect();
        let inner_shape = x.shape().to_vec();
        let tape = self.tape();
        let mut out = tape.collect(
            &out_shape,
            std::iter::repeat_n(value, out_shape.iter().product()),
        );
        out.slice_each_axis_mut(|d| window(&starts, &inner_shape, d.axis))
            .assign(&x);
        tape.record("pad", &[self], out, move |b| {
            let g = b
                .grad
                .slice_each_axis(|d| window(&starts, &inner_shape, d.axis));
            [Some(b.tape.copy(g)), None]
        })
    }
    /// The slices of `x` at `indices` along `axis`, in that order (`torch.index_select(x, dim,
    /// index)`): `y[.., k, ..] = x[.., indices[k], ..]`. Indices may repeat and be in any order.
    ///
    /// Backward: `∂L/∂x[.., i, ..] = Σ_{k : indices[k] = i} G[.., k, ..]`; a repeated index
    /// gets the sum of its uses.
    ///
    /// # Shapes
    /// `[a, b, c]` with `n` indices along axis 1 gives `[a, n, c]`.
    ///
    /// # Panics
    /// If `axis` is out of range or an index is not below the size of `axis`, e.g.
    /// `index_select: index 3 out of range for size 3 along axis 0; x shape [3, 2]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?);
    /// let y = x.index_select(0, &[2, 0, 2]);
    /// assert_eq!(y.value(), tensor::from_vec(vec![5.0, 6.0, 1.0, 2.0, 5.0, 6.0], &[3, 2])?);
    /// let g = y.sum().backward();
    /// // row 2 was picked twice, row 1 never
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn index_select(self, axis: usize, indices: &[usize]) -> Var<'t> {
        let x = self.data();
        check_axis("index_select", axis, x.shape());
        let size = x.len_of(Axis(axis));
        if let Some(&bad) = indices.iter().find(|&&i| i >= size) {
            panic!(
                "index_select: index {bad} out of range for size {size} along axis {axis}; \
                 x shape {:?}",
                x.shape()
            );
        }
        let mut shape = x.shape().to_vec();
        shape[axis] = indices.len();
        let tape = self.tape();
        let mut out = tape.scratch(&shape, false);
        for (k, &i) in indices.iter().enumerate() {
            out.index_axis_mut(Axis(axis), k)
                .assign(&x.index_axis(Axis(axis), i));
        }
        let indices = indices.to_vec();
        tape.record("index_select", &[self], out, move |b| {
            let mut dx = b.tape.zeros(b.inputs[0].shape());
            for (k, &i) in indices.iter().enumerate() {
                let mut row = dx.index_axis_mut(Axis(axis), i);
                row += &b.grad.index_axis(Axis(axis), k);
            }
            [Some(dx), None]
        })
    }

    /// Elements of `x` picked along `axis` by an index array (`torch.gather(x, dim, index)`):
    /// the output has `index`'s shape, and for a position `p` of it,
    /// `y[p] = x[p with axis replaced by index[p]]`. For a matrix and `axis = 1`:
    /// `y[i][j] = x[i][index[i][j]]` (pick one entry per row, as a loss picks each sample's
    /// target class).
    ///
    /// `index` has as many axes as `x`, and along every other axis `d` at most `x`'s size.
    ///
    /// Backward: `∂L/∂x[q] = Σ_{p : q = p with axis replaced by index[p]} G[p]`, so an element
    /// picked twice gets the sum, and one never picked gets `0`.
    ///
    /// # Shapes
    /// `x: [a, b]`, `index: [a, k]` with `axis = 1` gives `[a, k]`.
    ///
    /// # Panics
    /// If `axis` is out of range, `index` has another number of axes or is larger than `x`
    /// along another axis, or an index is not below the size of `axis`, e.g.
    /// `gather: index 4 at [1, 0] out of range for size 3 along axis 1; x shape [2, 3]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// use tapegrad::ndarray::array;
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
    /// let y = x.gather(1, &array![[2, 0], [1, 1]]);
    /// assert_eq!(y.value(), tensor::from_vec(vec![3.0, 1.0, 5.0, 5.0], &[2, 2])?);
    /// let g = y.sum().backward();
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[1.0, 0.0, 1.0, 0.0, 2.0, 0.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn gather<S, D>(self, axis: usize, index: &ArrayBase<S, D>) -> Var<'t>
    where
        S: Data<Elem = usize>,
        D: Dimension,
    {
        let x = self.data();
        let index = index.view().into_dyn();
        check_axis("gather", axis, x.shape());
        let fits = index.ndim() == x.ndim()
            && (0..x.ndim()).all(|d| d == axis || index.len_of(Axis(d)) <= x.len_of(Axis(d)));
        assert!(
            fits,
            "gather: index must have x's number of axes and be no larger outside axis {axis}; \
             index shape {:?}, x shape {:?}",
            index.shape(),
            x.shape()
        );
        let size = x.len_of(Axis(axis));
        if let Some((p, &i)) = index.indexed_iter().find(|&(_, &i)| i >= size) {
            panic!(
                "gather: index {i} at {:?} out of range for size {size} along axis {axis}; \
                 x shape {:?}",
                p.slice(),
                x.shape()
            );
        }
        let source = move |mut p: IxDyn, i: usize| {
            p[axis] = i;
            p
        };
        let tape = self.tape();
        let out = tape.collect(
            index.shape(),
            index.indexed_iter().map(|(p, &i)| x[source(p, i)]),
        );
        let index = index.to_owned();
        tape.record("gather", &[self], out, move |b| {
            let mut dx = b.tape.zeros(b.inputs[0].shape());
            for ((p, &i), &g) in index.indexed_iter().zip(b.grad.iter()) {
                dx[source(p, i)] += g;
            }
            [Some(dx), None]
        })
    }
}

/// The window `start..start + size` along `axis` of a padded array.
fn window(starts: &[usize], sizes: &[usize], axis: Axis) -> Slice {
    let (start, size) = (starts[axis.index()], sizes[axis.index()]);
    Slice::from(start..start + size)
}

/// Joins checked inputs in a balanced tree of two-input nodes.
fn concat_tree<'t>(inputs: &[Var<'t>], axis: usize) -> Var<'t> {
    match inputs {
        [single] => *single,
        _ => {
            let (left, right) = inputs.split_at(inputs.len() / 2);
            concat_two(concat_tree(left, axis), concat_tree(right, axis), axis)
        }
    }
}

/// One node joining `a` and `b` along `axis` (shapes already checked).
fn concat_two<'t>(a: Var<'t>, b: Var<'t>, axis: usize) -> Var<'t> {
    let (x, y) = (a.data(), b.data());
    let split = x.len_of(Axis(axis));
    let mut shape = x.shape().to_vec();
    shape[axis] += y.len_of(Axis(axis));
    let tape = a.tape();
    let mut out = tape.scratch(&shape, false);
    let outer: usize = shape[..axis].iter().product();
    match (x.as_slice(), y.as_slice(), out.as_slice_mut()) {
        // row-major all three: `outer` blocks of out, each a block of x then one of y
        (Some(xs), Some(ys), Some(os)) if outer > 0 => {
            let (bx, by) = (xs.len() / outer, ys.len() / outer);
            for i in 0..outer {
                let block = &mut os[i * (bx + by)..(i + 1) * (bx + by)];
                block[..bx].copy_from_slice(&xs[i * bx..(i + 1) * bx]);
                block[bx..].copy_from_slice(&ys[i * by..(i + 1) * by]);
            }
        }
        _ => {
            out.slice_axis_mut(Axis(axis), Slice::from(..split))
                .assign(&x);
            out.slice_axis_mut(Axis(axis), Slice::from(split..))
                .assign(&y);
        }
    }
    tape.record("concat", &[a, b], out, move |b| {
        let grad = b.grad.view();
        let (left, right) = grad.split_at(Axis(axis), split);
        [
            b.needs[0].then(|| b.tape.copy(left)),
            b.needs[1].then(|| b.tape.copy(right)),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, Var, gradcheck};
    use ndarray::array;

    #[test]
    fn narrow_concat_stack_pad_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
        assert_eq!(x.narrow(0, 1, 1).value(), t(&[1, 3], &[4., 5., 6.]));
        assert_eq!(x.narrow(1, 0, 2).value(), t(&[2, 2], &[1., 2., 4., 5.]));
        assert_eq!(x.narrow(1, 3, 0).value(), t(&[2, 0], &[]));
        let y = tape.leaf(t(&[1, 3], &[7., 8., 9.]));
        let z = tape.leaf(t(&[2, 1], &[-1., -2.]));
        assert_eq!(
            Var::concat(&[x, y, x], 0).value(),
            t(
                &[5, 3],
                &[1., 2., 3., 4., 5., 6., 7., 8., 9., 1., 2., 3., 4., 5., 6.]
            )
        );
        assert_eq!(
            Var::concat(&[z, x], 1).value(),
            t(&[2, 4], &[-1., 1., 2., 3., -2., 4., 5., 6.])
        );
        assert_eq!(Var::concat(&[x], 1).value(), x.value());
        let s = Var::stack(&[x, x.narrow(0, 0, 2)], 2);
        assert_eq!(
            s.value(),
            t(
                &[2, 3, 2],
                &[1., 1., 2., 2., 3., 3., 4., 4., 5., 5., 6., 6.]
            )
        );
        assert_eq!(
            z.pad(&[(1, 0), (0, 2)], 0.5).value(),
            t(&[3, 3], &[0.5, 0.5, 0.5, -1., 0.5, 0.5, -2., 0.5, 0.5])
        );
        assert_eq!(x.pad(&[(0, 0), (0, 0)], 9.).value(), x.value());

        // L = Σ c ⊙ concat(x, y, x) along 0: ∂L/∂x = c[0..2] + c[3..5], ∂L/∂y = c[2]
        let c = tape.constant(t(
            &[5, 3],
            &[
                1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.,
            ],
        ));
        let g = (Var::concat(&[x, y, x], 0) * c).sum().backward();
        assert_eq!(
            g.get(x).unwrap(),
            t(&[2, 3], &[11., 13., 15., 17., 19., 21.])
        );
        assert_eq!(g.get(y).unwrap(), t(&[1, 3], &[7., 8., 9.]));
        // L = Σ narrow(x, 1, 1, 2) twice: ∂L/∂x = 2 on the window, 0 outside
        let n = x.narrow(1, 1, 2);
        let g = (n + n).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 3], &[0., 2., 2., 0., 2., 2.]));
        // L = Σ c ⊙ pad(z): ∂L/∂z = c at z's positions
        let c = tape.constant(t(&[3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]));
        let g = (z.pad(&[(1, 0), (0, 2)], 0.5) * c).sum().backward();
        assert_eq!(g.get(z).unwrap(), t(&[2, 1], &[4., 7.]));
    }

    #[test]
    fn gradcheck_narrow_and_pad() {
        for shape in [vec![3, 4], vec![1, 4], vec![2, 3, 4]] {
            let x = [random(&shape, 1)];
            for (axis, &n) in shape.iter().enumerate() {
                gradcheck(|v| v[0].narrow(axis, 0, n), &x).unwrap();
                gradcheck(|v| v[0].narrow(axis, n - 1, 1), &x).unwrap();
                // a narrowed view through an elementwise op and a reshape
                gradcheck(
                    |v| v[0].narrow(axis, 0, 1).exp().reshape(&[x[0].len() / n]),
                    &x,
                )
                .unwrap();
            }
            let pads: Vec<(usize, usize)> = (0..shape.len()).map(|d| (d % 2, 2 - d % 2)).collect();
            gradcheck(|v| v[0].pad(&pads, 0.3), &x).unwrap();
            gradcheck(|v| v[0].transpose().pad(&pads, -1.0), &x).unwrap();
        }
        // a narrowed view (row stride larger than its width) into a matrix product
        let (a, w) = (random(&[3, 5], 7), random(&[2, 4], 8));
        gradcheck(
            |v| v[0].narrow(1, 2, 2).matmul(v[1]),
            &[a.clone(), w.clone()],
        )
        .unwrap();
        gradcheck(|v| v[1].transpose().matmul(v[0].narrow(0, 1, 2)), &[a, w]).unwrap();
    }

    #[test]
    fn concat_agrees_with_ndarray_for_row_major_and_strided_inputs_on_every_axis() {
        let tape = Tape::new();
        let a = tape.constant(random(&[2, 3, 4], 1));
        for axis in 0..3 {
            let mut shape = vec![2, 3, 4];
            shape[axis] = 2;
            let b = tape.constant(random(&shape, 2));
            // a strided input (a transposed view) and an empty one take the other path
            let strided = b.transpose().contiguous().transpose();
            shape[axis] = 0;
            let empty = tape.constant(random(&shape, 3));
            for inputs in [[a, b], [b, a], [a, strided], [a, empty], [empty, a]] {
                let values = inputs.map(|v| v.value());
                let views = values.each_ref().map(|v| v.view());
                let expected = ndarray::concatenate(ndarray::Axis(axis), &views).unwrap();
                assert_eq!(Var::concat(&inputs, axis).value(), expected, "axis {axis}");
            }
        }
    }

    #[test]
    fn gradcheck_concat_and_stack() {
        let (a, b, c) = (random(&[2, 3], 1), random(&[2, 1], 2), random(&[2, 2], 3));
        gradcheck(|v| Var::concat(&[v[0], v[1], v[2]], 1), &[a.clone(), b, c]).unwrap();
        gradcheck(
            |v| Var::concat(&[v[0], v[0].exp()], 0),
            std::slice::from_ref(&a),
        )
        .unwrap();
        gradcheck(
            |v| Var::concat(&[v[1], v[0], v[1]], 0),
            &[a.clone(), random(&[1, 3], 4)],
        )
        .unwrap();
        for axis in 0..=2 {
            gradcheck(
                |v| Var::stack(&[v[0], v[1], v[0].transpose().transpose()], axis),
                &[a.clone(), random(&[2, 3], 5)],
            )
            .unwrap();
        }
        gradcheck(
            |v| Var::stack(&[v[0], v[1]], 0),
            &[random(&[], 6), random(&[], 7)],
        )
        .unwrap();
    }

    #[test]
    #[should_panic(
        expected = "narrow: window 2..5 out of range for size 4 along axis 1; x shape [3, 4]"
    )]
    fn narrow_past_the_end_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[3, 4], 0)).narrow(1, 2, 3);
    }

    #[test]
    #[should_panic(expected = "narrow: axis 2 out of range for shape [3, 4]")]
    fn narrow_out_of_range_axis_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[3, 4], 0)).narrow(2, 0, 1);
    }

    #[test]
    #[should_panic(
        expected = "concat: shapes differ outside axis 0; input 0 shape [2, 3], input 1 shape [1, 4]"
    )]
    fn concat_of_mismatched_shapes_panics() {
        let tape = Tape::new();
        let a = tape.constant(random(&[2, 3], 0));
        let b = tape.constant(random(&[1, 4], 0));
        let _ = Var::concat(&[a, b], 0);
    }

    #[test]
    #[should_panic(
        expected = "concat: shapes differ outside axis 0; input 0 shape [2, 3], input 1 shape [2, 3, 1]"
    )]
    fn concat_of_different_ranks_panics() {
        let tape = Tape::new();
        let a = tape.constant(random(&[2, 3], 0));
        let b = tape.constant(random(&[2, 3, 1], 0));
        let _ = Var::concat(&[a, b], 0);
    }

    #[test]
    #[should_panic(expected = "concat: axis 2 out of range for shape [2, 3]")]
    fn concat_out_of_range_axis_panics() {
        let tape = Tape::new();
        let a = tape.constant(random(&[2, 3], 0));
        let _ = Var::concat(&[a, a], 2);
    }

    #[test]
    #[should_panic(expected = "concat: no inputs to join")]
    fn concat_of_nothing_panics() {
        let _ = Var::concat(&[], 0);
    }

    #[test]
    #[should_panic(expected = "stack: shapes differ; input 0 shape [2], input 1 shape [3]")]
    fn stack_of_mismatched_shapes_panics() {
        let tape = Tape::new();
        let a = tape.constant(random(&[2], 0));
        let b = tape.constant(random(&[3], 0));
        let _ = Var::stack(&[a, b], 0);
    }

    #[test]
    #[should_panic(expected = "stack: axis 2 out of range for inputs of shape [2]")]
    fn stack_out_of_range_axis_panics() {
        let tape = Tape::new();
        let a = tape.constant(random(&[2], 0));
        let _ = Var::stack(&[a, a], 2);
    }

    #[test]
    #[should_panic(expected = "stack: no inputs to join")]
    fn stack_of_nothing_panics() {
        let _ = Var::stack(&[], 0);
    }

    #[test]
    #[should_panic(expected = "pad: 1 (before, after) pairs for 2 axes; x shape [2, 3]")]
    fn pad_with_too_few_pairs_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).pad(&[(1, 1)], 0.0);
    }
    #[test]
    fn index_select_and_gather_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
        assert_eq!(
            x.index_select(1, &[2, 2, 0]).value(),
            t(&[2, 3], &[3., 3., 1., 6., 6., 4.])
        );
        assert_eq!(x.index_select(0, &[]).value(), t(&[0, 3], &[]));
        assert_eq!(
            x.gather(0, &array![[1, 0, 1]]).value(),
            t(&[1, 3], &[4., 2., 6.])
        );
        assert_eq!(
            x.gather(1, &array![[0], [2]]).value(),
            t(&[2, 1], &[1., 6.])
        );
        // L = Σ c ⊙ index_select(x, 1, [2, 2, 0]): ∂L/∂x[:, 2] = c[:, 0] + c[:, 1], ∂L/∂x[:, 0] = c[:, 2]
        let c = tape.constant(t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
        let g = (x.index_select(1, &[2, 2, 0]) * c).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 3], &[3., 0., 3., 6., 0., 9.]));
        // L = Σ c ⊙ gather(x, 1, [[1, 1, 0], [2, 0, 2]]): each c lands where its element came from
        let g = (x.gather(1, &array![[1, 1, 0], [2, 0, 2]]) * c)
            .sum()
            .backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 3], &[3., 3., 0., 5., 0., 10.]));
    }

    #[test]
    fn gradcheck_index_select_and_gather() {
        let x = [random(&[3, 4], 1)];
        gradcheck(|v| v[0].index_select(0, &[2, 0, 2, 1]), &x).unwrap();
        gradcheck(|v| v[0].index_select(1, &[3, 3]), &x).unwrap();
        gradcheck(|v| v[0].transpose().index_select(1, &[1, 0]), &x).unwrap();
        // a strided gradient (from the transpose after)
        gradcheck(|v| v[0].index_select(1, &[1, 0, 1]).transpose(), &x).unwrap();
        gradcheck(|v| v[0].gather(0, &array![[2, 0], [1, 1]]).transpose(), &x).unwrap();
        gradcheck(
            |v| v[0].narrow(1, 1, 2).pad(&[(1, 0), (0, 2)], 0.0).transpose(),
            &x,
        )
        .unwrap();
        gradcheck(|v| Var::concat(&[v[0], v[0]], 1).permute(&[1, 0]), &x).unwrap();
        gradcheck(|v| v[0].gather(0, &array![[2, 0, 1, 2], [2, 2, 0, 1]]), &x).unwrap();
        gradcheck(|v| v[0].gather(1, &array![[3, 3], [0, 1], [2, 0]]), &x).unwrap();
        let single = [random(&[1, 3, 2], 2)];
        gradcheck(|v| v[0].index_select(2, &[1, 0, 1]), &single).unwrap();
        gradcheck(|v| v[0].gather(1, &array![[[2, 0], [1, 1]]]), &single).unwrap();
        gradcheck(|v| v[0].index_select(0, &[0, 0]), &[random(&[1], 3)]).unwrap();
    }

    #[test]
    #[should_panic(
        expected = "index_select: index 3 out of range for size 3 along axis 0; x shape [3, 2]"
    )]
    fn index_select_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[3, 2], 0)).index_select(0, &[0, 3]);
    }

    #[test]
    #[should_panic(expected = "index_select: axis 2 out of range for shape [3, 2]")]
    fn index_select_bad_axis_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[3, 2], 0)).index_select(2, &[0]);
    }

    #[test]
    #[should_panic(
        expected = "gather: index 4 at [1, 0] out of range for size 3 along axis 1; x shape [2, 3]"
    )]
    fn gather_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .gather(1, &array![[0], [4]]);
    }

    #[test]
    #[should_panic(
        expected = "gather: index must have x's number of axes and be no larger outside axis 1; index shape [3, 1], x shape [2, 3]"
    )]
    fn gather_with_a_larger_index_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .gather(1, &array![[0], [1], [2]]);
    }

    #[test]
    #[should_panic(expected = "gather: index must have x's number of axes")]
    fn gather_with_another_rank_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).gather(1, &array![0, 1]);
    }

    #[test]
    #[should_panic(expected = "gather: axis 2 out of range for shape [2, 3]")]
    fn gather_bad_axis_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).gather(2, &array![[0]]);
    }
}
