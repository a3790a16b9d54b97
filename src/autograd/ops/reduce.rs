//! Reductions: sum and mean (of everything, or along one axis), and max along an axis or
//! over groups of `k` (what Maxout needs).

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
    #[track_caller]
    pub fn mean_axis(self, axis: usize) -> Var<'t> {
        let shape = self.shape();
        check_axis("mean_axis", axis, &shape);
        self.sum_axis(axis) * (1.0 / shape[axis] as Elem)
    }

    /// The maximum along `axis`, which is removed from the shape.
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
                let (best, &v) = lane.iter().enumerate().fold((0, &lane[0]), |acc, (j, v)| {
                    if *v > *acc.1 { (j, v) } else { acc }
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

#[track_caller]
fn check_axis(op: &str, axis: usize, shape: &[usize]) {
    assert!(
        axis < shape.len(),
        "{op}: axis {axis} out of range for shape {shape:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, Tensor, gradcheck};

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
}
