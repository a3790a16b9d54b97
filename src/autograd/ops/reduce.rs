//! Reductions: sum and mean (of everything, along one axis, or along several), and max along
//! one axis, several axes, or over groups of `k` (what Maxout needs).

use super::check_axis;
use crate::autograd::tape::Var;
use crate::tensor::{Elem, Tensor};
use ndarray::{Array, Axis, IxDyn, Zip};

impl<'t> Var<'t> {
    /// The sum of all elements, as a scalar (shape `[]`).
    ///
    /// Backward: `∂L/∂x = G` at every element.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
    /// assert_eq!(x.sum().item(), 10.0);
    /// assert_eq!(x.mean().item(), 2.5);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sum(self) -> Var<'t> {
        let x = self.data();
        let value = Tensor::from_elem(IxDyn(&[]), x.sum());
        self.tape().record("sum", &[self], value, |b| {
            let g = b.grad.first().copied().expect("scalar gradient");
            let shape = b.inputs[0].shape();
            let len = b.inputs[0].len();
            [
                Some(b.tape.collect(shape, std::iter::repeat_n(g, len))),
                None,
            ]
        })
    }

    /// The mean of all elements, as a scalar: `sum / n`, recorded as [`Var::sum`] then a
    /// scale.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], &[2, 2])?);
    /// let m = x.mean();
    /// assert_eq!(m.item(), 3.0);
    /// // ∂mean/∂x = 1/n for every element
    /// assert!(m.backward().get(x).unwrap().iter().all(|&g| g == 0.25));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn mean(self) -> Var<'t> {
        let n = self.data().len();
        self.sum() * (1.0 / n as Elem)
    }

    /// The sum along `axis`, which is removed from the shape (`torch.sum(x, dim)`).
    ///
    /// Backward: `G` repeated along `axis`.
    ///
    /// # Shapes
    /// `[a, b, c]` summed along axis 1 gives `[a, c]`.
    ///
    /// # Panics
    /// If `axis` is out of range: `sum_axis: axis 2 out of range for shape [3, 4]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
    /// assert_eq!(x.sum_axis(0).value().as_slice().unwrap(), &[4.0, 6.0]);
    /// assert_eq!(x.mean_axis(1).value().as_slice().unwrap(), &[1.5, 3.5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn sum_axis(self, axis: usize) -> Var<'t> {
        let x = self.data();
        check_axis("sum_axis", axis, x.shape());
        let value = x.sum_axis(Axis(axis));
        self.tape().record("sum_axis", &[self], value, move |b| {
            let g = b.grad.view().insert_axis(Axis(axis));
            let g = g.broadcast(b.inputs[0].raw_dim()).expect("shape checked");
            [Some(b.tape.copy(g)), None]
        })
    }

    /// The mean along `axis`, which is removed from the shape: [`Var::sum_axis`] then a scale
    /// by `1/n`.
    ///
    /// # Panics
    /// If `axis` is out of range (`sum_axis: axis ...`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], &[2, 2])?);
    /// assert_eq!(x.mean_axis(0).value().as_slice().unwrap(), &[2.0, 4.0]);
    /// assert_eq!(x.mean_axis(1).value().as_slice().unwrap(), &[1.5, 4.5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn mean_axis(self, axis: usize) -> Var<'t> {
        let shape = self.shape();
        check_axis("mean_axis", axis, &shape);
        self.sum_axis(axis) * (1.0 / shape[axis] as Elem)
    }

    /// The maximum along `axis`, which is removed from the shape. A lane holding a NaN has
    /// the maximum NaN, as in PyTorch, wherever the NaN stands.
    ///
    /// Backward: `G` goes to the position of the maximum of each lane and `0` elsewhere; on a
    /// tie it goes to the **first** maximal index only, so it is not counted twice (the max
    /// is not differentiable at ties; this is the documented choice).
    ///
    /// # Panics
    /// If `axis` is out of range, or the lanes along it are empty.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 5.0, 5.0, 2.0], &[2, 2])?);
    /// let m = x.max_axis(1);
    /// assert_eq!(m.value().as_slice().unwrap(), &[5.0, 5.0]);
    /// let g = m.sum().backward();
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[0.0, 1.0, 1.0, 0.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn max_axis(self, axis: usize) -> Var<'t> {
        let x = self.data();
        check_axis("max_axis", axis, x.shape());
        assert!(
            x.len_of(Axis(axis)) > 0,
            "max_axis: axis {axis} is empty in shape {:?}",
            x.shape()
        );
        let mut out_shape = x.shape().to_vec();
        out_shape.remove(axis);
        let mut argmax = Array::<usize, _>::zeros(IxDyn(&out_shape));
        let mut value = self.tape().scratch(&out_shape, false);
        Zip::from(&mut value)
            .and(&mut argmax)
            .and(x.lanes(Axis(axis)))
            .for_each(|m, i, lane| {
                // the first NaN wins (so the gradient goes to it, as in PyTorch)
                let (best, &v) = lane.iter().enumerate().fold((0, &lane[0]), |acc, (j, v)| {
                    if !acc.1.is_nan() && (v.is_nan() || *v > *acc.1) {
                        (j, v)
                    } else {
                        acc
                    }
                });
                *m = v;
                *i = best;
            });
        self.tape().record("max_axis", &[self], value, move |b| {
            let mut dx = b.tape.zeros(b.inputs[0].shape());
            Zip::from(dx.lanes_mut(Axis(axis)))
                .and(&argmax)
                .and(b.grad)
                .for_each(|mut lane, &i, &g| lane[i] = g);
            [Some(dx), None]
        })
    }

    /// The sum over several axes at once (`torch.sum(x, dim=axes, keepdim)`). With
    /// `keepdim` the reduced axes stay as size 1 (so the result broadcasts against `x`);
    /// without it they are removed. The order of `axes` does not matter.
    ///
    /// Backward: `G` repeated along the reduced axes.
    ///
    /// # Shapes
    /// `[a, b, c]` summed over `[0, 2]` gives `[b]`, or `[1, b, 1]` with `keepdim`.
    ///
    /// # Panics
    /// If `axes` is empty (unlike `torch.sum(x, dim=[])`, which sums everything; use
    /// [`Var::sum`] for that), or an axis is out of range or repeated, e.g.
    /// `sum_axes: axis 1 repeated in [1, 1]; x shape [2, 3]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec((1..=8).map(|v| v as f32).collect(), &[2, 2, 2])?);
    /// let y = x.sum_axes(&[0, 2], false);
    /// assert_eq!(y.value().as_slice().unwrap(), &[1.0 + 2.0 + 5.0 + 6.0, 3.0 + 4.0 + 7.0 + 8.0]);
    /// assert_eq!(x.sum_axes(&[2, 0], true).shape(), vec![1, 2, 1]);
    /// // L = Σ c ⊙ y with c = [1, 10]: ∂L/∂x[i, j, k] = c[j]
    /// let c = tape.constant(tensor::from_vec(vec![1.0, 10.0], &[2])?);
    /// let g = (y * c).sum().backward();
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[1.0, 1.0, 10.0, 10.0, 1.0, 1.0, 10.0, 10.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn sum_axes(self, axes: &[usize], keepdim: bool) -> Var<'t> {
        let x = self.data();
        let axes = check_axes("sum_axes", axes, x.shape());
        let mut value = x.sum_axis(Axis(axes[axes.len() - 1]));
        for &axis in axes.iter().rev().skip(1) {
            value = value.sum_axis(Axis(axis));
        }
        if keepdim {
            for &axis in &axes {
                value.insert_axis_inplace(Axis(axis));
            }
        }
        self.tape().record("sum_axes", &[self], value, move |b| {
            // the gradient may be strided (after a transpose): insert axes, do not reshape
            let mut g = b.grad.view();
            if !keepdim {
                for &axis in &axes {
                    g.insert_axis_inplace(Axis(axis));
                }
            }
            let g = g
                .broadcast(b.inputs[0].raw_dim())
                .expect("internal error: sum_axes broadcast");
            [Some(b.tape.copy(g)), None]
        })
    }

    /// The mean over several axes at once (`torch.mean(x, dim=axes, keepdim)`): [`Var::sum_axes`]
    /// then a scale by `1/n`, `n` the number of elements each mean is taken over.
    ///
    /// # Panics
    /// As [`Var::sum_axes`] (with `mean_axes:` in the message).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec((1..=8).map(|v| v as f32).collect(), &[2, 2, 2])?);
    /// assert_eq!(x.mean_axes(&[1, 2], false).value().as_slice().unwrap(), &[2.5, 6.5]);
    /// assert_eq!(x.mean_axes(&[0, 1, 2], true).value().as_slice().unwrap(), &[4.5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn mean_axes(self, axes: &[usize], keepdim: bool) -> Var<'t> {
        let shape = self.shape();
        let axes = check_axes("mean_axes", axes, &shape);
        let n: usize = axes.iter().map(|&a| shape[a]).product();
        self.sum_axes(&axes, keepdim) * (1.0 / n as Elem)
    }

    /// The maximum over several axes at once (`torch.amax(x, dim=axes, keepdim)`), recorded
    /// as a [`Var::permute`] that moves the reduced axes last (in their original order), a
    /// [`Var::reshape`] that merges them, and a maximum over the merged axis. A block holding
    /// a NaN has the maximum NaN.
    ///
    /// Backward, as `torch.amax`'s: `G` is shared evenly by the maximal elements of each
    /// reduced block (`G/k` to each of `k` ties) and `0` goes elsewhere; a block whose maximum
    /// is NaN gets NaN everywhere. ([`Var::max_axis`], as `torch.max(x, dim)`, gives it all to
    /// the first maximum instead.)
    ///
    /// # Shapes
    /// `[a, b, c]` over `[0, 2]` gives `[b]`, or `[1, b, 1]` with `keepdim`.
    ///
    /// # Panics
    /// As [`Var::sum_axes`] (with `max_axes:` in the message), and if a reduced axis has
    /// size 0: `max_axes: axes [1] have no elements; x shape [2, 0]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 9.0, 3.0, 4.0, 9.0, 2.0, 0.0, 8.0], &[2, 2, 2])?);
    /// let m = x.max_axes(&[0, 2], false);
    /// assert_eq!(m.value().as_slice().unwrap(), &[9.0, 8.0]);
    /// let g = m.sum().backward();
    /// // the 9s at [0, 0, 1] and [1, 0, 0] tie: each gets half
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[0.0, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 1.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn max_axes(self, axes: &[usize], keepdim: bool) -> Var<'t> {
        let shape = self.shape();
        let axes = check_axes("max_axes", axes, &shape);
        let block: usize = axes.iter().map(|&a| shape[a]).product();
        assert!(
            block > 0,
            "max_axes: axes {axes:?} have no elements; x shape {shape:?}"
        );
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
        let mut order = kept.clone();
        order.extend_from_slice(&axes);
        let mut merged: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
        merged.push(block);
        let m = self.permute(&order).reshape(&merged).amax_last();
        if keepdim {
            m.reshape(&kept_shape(&shape, &axes))
        } else {
            m
        }
    }

    /// The maximum over the last axis, which is removed, with `torch.amax`'s gradient: shared
    /// evenly by the ties of each lane, NaN for a whole lane whose maximum is NaN (see
    /// [`Var::max_axes`]).
    fn amax_last(self) -> Var<'t> {
        let x = self.data();
        let axis = Axis(x.ndim() - 1);
        let mut out_shape = x.shape().to_vec();
        out_shape.pop();
        let mut value = self.tape().scratch(&out_shape, false);
        Zip::from(&mut value)
            .and(x.lanes(axis))
            .for_each(|m, lane| {
                // a NaN anywhere makes the maximum NaN (`f32::max` would skip it)
                *m = lane.iter().fold(Elem::NEG_INFINITY, |a, &v| {
                    if a.is_nan() || v.is_nan() {
                        Elem::NAN
                    } else {
                        a.max(v)
                    }
                });
            });
        self.tape().record("max_axes", &[self], value, move |b| {
            let mut dx = b.tape.zeros(b.inputs[0].shape());
            Zip::from(dx.lanes_mut(axis))
                .and(b.inputs[0].lanes(axis))
                .and(b.out)
                .and(b.grad)
                .for_each(|mut d, lane, &m, &g| {
                    let ties = lane.iter().filter(|&&v| v == m).count();
                    if ties == 0 {
                        d.fill(Elem::NAN); // the maximum is NaN
                        return;
                    }
                    let share = g / ties as Elem;
                    Zip::from(&mut d).and(&lane).for_each(|d, &v| {
                        if v == m {
                            *d = share;
                        }
                    });
                });
            [Some(dx), None]
        })
    }

    /// The maximum over consecutive groups of `k` along the last axis: `[.., n]` becomes
    /// `[.., n/k]`, with `out[.., i] = max_j x[.., i·k + j]`. This is the max of a Maxout
    /// unit (Goodfellow et al. 2013), recorded as a reshape to `[.., n/k, k]` and
    /// [`Var::max_axis`] over the last axis, so the gradient goes to the first arg-max.
    ///
    /// # Panics
    /// If `k` is 0 or does not divide the last axis:
    /// `max_groups: last axis of shape [2, 5] is not a multiple of 2`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, -3.0, 0.5, 2.0], &[1, 4])?);
    /// assert_eq!(x.max_groups(2).value().as_slice().unwrap(), &[1.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn max_groups(self, k: usize) -> Var<'t> {
        let mut shape = self.shape();
        let last = shape.last().copied().unwrap_or(0);
        assert!(
            k > 0 && last % k == 0 && !shape.is_empty(),
            "max_groups: last axis of shape {shape:?} is not a multiple of {k}"
        );
        *shape.last_mut().expect("checked non-empty") = last / k;
        shape.push(k);
        let axis = shape.len() - 1;
        self.reshape(&shape).max_axis(axis)
    }
}

/// `axes` sorted, after checking that it is non-empty and that each axis is in range and
/// appears once.
#[track_caller]
fn check_axes(op: &str, axes: &[usize], shape: &[usize]) -> Vec<usize> {
    assert!(
        !axes.is_empty(),
        "{op}: no axes given (use sum or mean to reduce all of them); x shape {shape:?}"
    );
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        assert!(
            pair[0] != pair[1],
            "{op}: axis {} repeated in {axes:?}; x shape {shape:?}",
            pair[0]
        );
    }
    for &axis in &sorted {
        check_axis(op, axis, shape);
    }
    sorted
}

/// `shape` with each of `axes` set to 1.
fn kept_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let mut shape = shape.to_vec();
    for &axis in axes {
        shape[axis] = 1;
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, Tensor, gradcheck};

    #[test]
    fn max_axis_passes_a_nan_on_wherever_it_stands() {
        // torch.tensor([[nan, 1.], [2., nan], [3., 1.]]).max(dim=1): values [nan, nan, 3],
        // and the gradient goes to the NaN
        let tape = Tape::new();
        let x = tape.leaf(t(&[3, 2], &[f32::NAN, 1., 2., f32::NAN, 3., 1.]));
        let m = x.max_axis(1);
        let v = m.value();
        assert!(v[[0]].is_nan() && v[[1]].is_nan() && v[[2]] == 3.0, "{v}");
        let g = m.sum().backward().get(x).unwrap().clone();
        assert_eq!(g, t(&[3, 2], &[1., 0., 0., 1., 1., 0.]));
        let groups = tape
            .constant(t(&[1, 4], &[1., f32::NAN, 5., 4.]))
            .max_groups(2);
        assert!(groups.value()[[0, 0]].is_nan() && groups.value()[[0, 1]] == 5.0);
    }

    /// Distinct values spread at least 0.1 apart, in a shuffled order: no ties for max.
    fn no_ties(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let keys = random(&[n], seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
        let values = order.iter().map(|&i| i as f32 * 0.15 - 1.0).collect();
        Tensor::from_shape_vec(shape, values).unwrap()
    }

    #[test]
    fn forward_by_hand() {
        let tape = Tape::new();
        let x = tape.constant(t(&[2, 3], &[1., 2., 3., 4., 5., 9.]));
        assert_eq!(x.sum().value(), t(&[], &[24.]));
        assert_eq!(x.mean().value(), t(&[], &[4.]));
        assert_eq!(x.sum_axis(0).value(), t(&[3], &[5., 7., 12.]));
        assert_eq!(x.sum_axis(1).value(), t(&[2], &[6., 18.]));
        assert_eq!(x.mean_axis(1).value(), t(&[2], &[2., 6.]));
        assert_eq!(x.max_axis(0).value(), t(&[3], &[4., 5., 9.]));
        assert_eq!(x.max_axis(1).value(), t(&[2], &[3., 9.]));
        let y = tape.constant(t(&[1, 6], &[1., 7., -2., -3., 4., 4.]));
        assert_eq!(y.max_groups(2).value(), t(&[1, 3], &[7., -2., 4.]));
        assert_eq!(y.max_groups(3).value(), t(&[1, 2], &[7., 4.]));
    }

    #[test]
    fn hand_derived_gradients() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2, 2], &[1., 2., 3., 4.]));
        // L = Σ_j (Σ_i x_ij)·c_j with c = [1, 10]: ∂L/∂x_ij = c_j
        let c = tape.constant(t(&[2], &[1., 10.]));
        let g = (x.sum_axis(0) * c).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 2], &[1., 10., 1., 10.]));
        // L = mean(x): ∂L/∂x = 1/4; ties of max route to the first index only
        let g = x.mean().backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 2], &[0.25; 4]));
        let y = tape.leaf(t(&[1, 4], &[3., 3., 1., 2.]));
        let g = y.max_groups(4).sum().backward();
        assert_eq!(g.get(y).unwrap(), t(&[1, 4], &[1., 0., 0., 0.]));
    }

    #[test]
    fn gradcheck_reductions() {
        for shape in [vec![3, 4], vec![1, 5], vec![2, 3, 2]] {
            let x = [random(&shape, 1)];
            gradcheck(|v| v[0].sum(), &x).unwrap();
            gradcheck(|v| v[0].mean(), &x).unwrap();
            for axis in 0..shape.len() {
                gradcheck(|v| v[0].sum_axis(axis), &x).unwrap();
                gradcheck(|v| v[0].mean_axis(axis), &x).unwrap();
            }
        }
        gradcheck(|v| v[0].sum(), &[random(&[], 2)]).unwrap();
    }

    #[test]
    fn gradcheck_max_away_from_ties() {
        for shape in [vec![4, 6], vec![1, 6], vec![2, 3, 6]] {
            let x = [no_ties(&shape, 3)];
            for axis in 0..shape.len() {
                gradcheck(|v| v[0].max_axis(axis), &x).unwrap();
            }
            gradcheck(|v| v[0].max_groups(2), &x).unwrap();
            gradcheck(|v| v[0].max_groups(3), &x).unwrap();
        }
    }

    #[test]
    #[should_panic(expected = "sum_axis: axis 2 out of range for shape [3, 4]")]
    fn sum_axis_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[3, 4], 0)).sum_axis(2);
    }

    #[test]
    #[should_panic(expected = "max_axis: axis 1 out of range for shape [3]")]
    fn max_axis_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[3], 0)).max_axis(1);
    }

    #[test]
    #[should_panic(expected = "max_groups: last axis of shape [2, 5] is not a multiple of 2")]
    fn max_groups_that_do_not_divide_panic() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 5], 0)).max_groups(2);
    }
    #[test]
    fn multi_axis_reductions_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(t(
            &[2, 3, 2],
            &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
        ));
        assert_eq!(x.sum_axes(&[1], false).value(), x.sum_axis(1).value());
        assert_eq!(
            x.sum_axes(&[0, 2], false).value(),
            t(&[3], &[18., 26., 34.])
        );
        assert_eq!(
            x.sum_axes(&[2, 0], true).value(),
            t(&[1, 3, 1], &[18., 26., 34.])
        );
        assert_eq!(x.sum_axes(&[0, 1, 2], false).value(), t(&[], &[78.]));
        assert_eq!(x.mean_axes(&[0, 1], false).value(), t(&[2], &[6., 7.]));
        assert_eq!(
            x.mean_axes(&[1, 2], true).value(),
            t(&[2, 1, 1], &[3.5, 9.5])
        );
        assert_eq!(x.max_axes(&[1], false).value(), x.max_axis(1).value());
        assert_eq!(x.max_axes(&[0, 2], false).value(), t(&[3], &[8., 10., 12.]));
        assert_eq!(
            x.max_axes(&[0, 1], true).value(),
            t(&[1, 1, 2], &[11., 12.])
        );
        // L = Σ c ⊙ sum_axes(x, [0, 2], keepdim): ∂L/∂x[i, j, k] = c[0, j, 0]
        let c = tape.constant(t(&[1, 3, 1], &[1., 2., 3.]));
        let g = (x.sum_axes(&[0, 2], true) * c).sum().backward();
        assert_eq!(
            g.get(x).unwrap(),
            t(
                &[2, 3, 2],
                &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]
            )
        );
        // L = Σ mean_axes(x, [0, 1]): ∂L/∂x = 1/6 everywhere
        let g = x.mean_axes(&[0, 1], false).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 3, 2], &[1. / 6.; 12]));
        // ties share the gradient evenly, as torch.amax's: over axes [0, 1] the block of k = 0
        // is y[0, 0, 0], y[0, 1, 0], y[1, 0, 0], y[1, 1, 0] = 5, 5, 0, 2 and that of k = 1 is
        // 1, 5, 5, 3 (two ties each); over axes [1, 2] the block of i = 0 is 5, 1, 5, 5 (three)
        let y = tape.leaf(t(&[2, 2, 2], &[5., 1., 5., 5., 0., 5., 2., 3.]));
        let g = y.max_axes(&[0, 1], false).sum().backward();
        assert_eq!(
            g.get(y).unwrap(),
            t(&[2, 2, 2], &[0.5, 0., 0.5, 0.5, 0., 0.5, 0., 0.])
        );
        let g = y.max_axes(&[1, 2], true).sum().backward();
        let third = 1.0 / 3.0;
        assert_eq!(
            g.get(y).unwrap(),
            t(&[2, 2, 2], &[third, 0., third, third, 0., 1., 0., 0.])
        );
        // a NaN: that block's maximum and all of its gradient are NaN, the others' are not
        let z = tape.leaf(t(&[2, 2], &[1., f32::NAN, 3., 2.]));
        let m = z.max_axes(&[1], false);
        assert!(m.value()[[0]].is_nan() && m.value()[[1]] == 3.0);
        let g = m.sum().backward();
        let g = g.get(z).unwrap();
        assert!(g[[0, 0]].is_nan() && g[[0, 1]].is_nan());
        assert_eq!((g[[1, 0]], g[[1, 1]]), (1.0, 0.0));
    }

    #[test]
    fn gradcheck_multi_axis_reductions() {
        let axis_sets: [&[usize]; 5] = [&[0], &[2], &[0, 2], &[2, 1], &[0, 1, 2]];
        for shape in [vec![2, 3, 4], vec![1, 3, 1]] {
            let x = [random(&shape, 5)];
            let distinct = [no_ties(&shape, 6)];
            for axes in axis_sets {
                for keepdim in [false, true] {
                    gradcheck(|v| v[0].sum_axes(axes, keepdim), &x).unwrap();
                    gradcheck(|v| v[0].mean_axes(axes, keepdim), &x).unwrap();
                    gradcheck(|v| v[0].max_axes(axes, keepdim), &distinct).unwrap();
                    // a strided input, and a strided gradient (from the transpose after)
                    gradcheck(|v| v[0].transpose().sum_axes(axes, keepdim), &x).unwrap();
                    gradcheck(|v| v[0].sum_axes(axes, keepdim).transpose(), &x).unwrap();
                    gradcheck(|v| v[0].max_axes(axes, keepdim).transpose(), &distinct).unwrap();
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "sum_axes: axis 1 repeated in [1, 1]; x shape [2, 3]")]
    fn sum_axes_with_a_repeated_axis_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).sum_axes(&[1, 1], false);
    }

    #[test]
    #[should_panic(expected = "sum_axes: axis 2 out of range for shape [2, 3]")]
    fn sum_axes_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).sum_axes(&[0, 2], true);
    }

    #[test]
    #[should_panic(
        expected = "mean_axes: no axes given (use sum or mean to reduce all of them); x shape [2, 3]"
    )]
    fn mean_axes_without_axes_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).mean_axes(&[], false);
    }

    #[test]
    #[should_panic(expected = "max_axes: axis 3 out of range for shape [2, 3]")]
    fn max_axes_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 3], 0)).max_axes(&[3], false);
    }

    #[test]
    #[should_panic(expected = "max_axes: axes [1] have no elements; x shape [2, 0]")]
    fn max_axes_over_an_empty_axis_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[2, 0], 0)).max_axes(&[1], false);
    }
}
