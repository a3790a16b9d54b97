//! Softmax and losses, all in numerically stable forms: log-softmax and softmax along the
//! last axis, softmax cross-entropy from logits and class labels, mean squared error, and
//! binary cross-entropy from logits.
//!
//! Every loss takes raw scores (logits), not probabilities, and returns the **mean** over
//! its elements (PyTorch's `reduction='mean'`).

use super::activation::sigmoid;
use crate::autograd::tape::Var;
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayView1, Axis, Zip};

/// The two parts of `ln Σ_j e^(z_j) = m + ln Σ_j e^(z_j − m)`: the lane maximum `m` and
/// `ln Σ_j e^(z_j − m)`. No exponent overflows, and callers subtract `m` from `z_i` before
/// the log-sum, which keeps `log_softmax` exact to f32 rounding even for logits of `1e4`.
fn log_sum_exp(z: ArrayView1<'_, Elem>) -> (Elem, Elem) {
    let m = z.fold(Elem::NEG_INFINITY, |m, &x| m.max(x));
    if m == Elem::NEG_INFINITY {
        return (m, 0.0);
    }
    (m, z.fold(0.0, |s, &x| s + (x - m).exp()).ln())
}

impl<'t> Var<'t> {
    /// Log-softmax along the last axis: `y_i = z_i − ln Σ_j e^(z_j)` (log-sum-exp form).
    ///
    /// Backward: `∂L/∂z = G − softmax(z) ⊙ Σ_j G_j` per lane.
    ///
    /// # Shapes
    /// Any shape with at least one axis; lanes run along the last axis.
    ///
    /// # Panics
    /// On a scalar (`log_softmax: expected at least one axis, found shape []`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let z = tape.constant(tensor::from_vec(vec![0.0, 0.0], &[1, 2])?);
    /// let y = z.log_softmax().value();
    /// assert!((y[[0, 0]] - 0.5f32.ln()).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn log_softmax(self) -> Var<'t> {
        let z = self.data();
        assert!(
            z.ndim() > 0,
            "log_softmax: expected at least one axis, found shape []"
        );
        let last = Axis(z.ndim() - 1);
        let mut value = self.tape().scratch(z.shape(), false);
        Zip::from(value.lanes_mut(last))
            .and(z.lanes(last))
            .for_each(|mut y, z| {
                let (m, log_sum) = log_sum_exp(z);
                Zip::from(&mut y)
                    .and(&z)
                    .for_each(|y, &z| *y = (z - m) - log_sum);
            });
        self.tape().record("log_softmax", &[self], value, move |b| {
            let mut dz = b.tape.copy(b.grad.view());
            Zip::from(dz.lanes_mut(last))
                .and(b.out.lanes(last))
                .for_each(|mut dz, y| {
                    let total = dz.sum();
                    Zip::from(&mut dz)
                        .and(&y)
                        .for_each(|d, &y| *d -= y.exp() * total);
                });
            [Some(dz), None]
        })
    }

    /// Softmax along the last axis: `p_i = e^(z_i) / Σ_j e^(z_j)`, recorded as
    /// `log_softmax(z).exp()`, which is stable for any logits.
    ///
    /// # Panics
    /// On a scalar, as [`Var::log_softmax`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let z = tape.constant(tensor::from_vec(vec![1e4, 1e4, 0.0], &[3])?);
    /// assert_eq!(z.softmax().value().as_slice().unwrap(), &[0.5, 0.5, 0.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn softmax(self) -> Var<'t> {
        self.log_softmax().exp()
    }

    /// Softmax cross-entropy of logits `z` (`[N, C]`) against class labels `y` (`N` indices in
    /// `0..C`), averaged over the batch: `L = −(1/N) Σ_n log_softmax(z_n)[y_n]`
    /// (`torch.nn.functional.cross_entropy`).
    ///
    /// Backward (fused, stable): `∂L/∂z_n = (softmax(z_n) − onehot(y_n)) / N`.
    ///
    /// # Shapes
    /// `[N, C]` logits and `N` labels give a scalar.
    ///
    /// # Panics
    /// If the logits are not 2-D, the number of labels is not `N`, or a label is not below
    /// `C`: `cross_entropy: label 7 at row 2 out of range for logits shape [4, 3]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let z = tape.leaf(tensor::from_vec(vec![0.0, 0.0, 10.0, -10.0], &[2, 2])?);
    /// let loss = z.cross_entropy(&[1, 0]);
    /// // row 0: ln 2; row 1: ln(1 + e^-20) ≈ 0
    /// assert!((loss.item() - 2f32.ln() / 2.0).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn cross_entropy(self, labels: &[usize]) -> Var<'t> {
        let z = self.data();
        let shape = z.shape();
        assert!(
            shape.len() == 2,
            "cross_entropy: expected 2-D logits [batch, classes], found shape {shape:?}"
        );
        assert!(
            labels.len() == shape[0],
            "cross_entropy: expected {} labels for logits shape {shape:?}, found {}",
            shape[0],
            labels.len()
        );
        if let Some((row, label)) = labels.iter().enumerate().find(|&(_, &y)| y >= shape[1]) {
            panic!(
                "cross_entropy: label {label} at row {row} out of range for logits shape {shape:?}"
            );
        }
        let n = shape[0] as Elem;
        let mut probs = self.tape().scratch(shape, false);
        let mut total = 0.0;
        let rows = probs.lanes_mut(Axis(1)).into_iter().zip(z.lanes(Axis(1)));
        for ((mut p, z), &y) in rows.zip(labels) {
            let (m, log_sum) = log_sum_exp(z);
            total += log_sum - (z[y] - m);
            Zip::from(&mut p)
                .and(&z)
                .for_each(|p, &z| *p = ((z - m) - log_sum).exp());
        }
        let value = Tensor::from_elem(ndarray::IxDyn(&[]), total / n);
        let labels = labels.to_vec();
        self.tape()
            .record("cross_entropy", &[self], value, move |b| {
                let scale = b.grad.first().copied().expect("scalar gradient") / n;
                let mut dz = b.tape.copy(probs.view());
                for (mut d, &y) in dz.lanes_mut(Axis(1)).into_iter().zip(&labels) {
                    d[y] -= 1.0;
                    d.mapv_inplace(|d| d * scale);
                }
                [Some(dz), None]
            })
    }

    /// Mean squared error `L = (1/n) Σ (x − t)²` between predictions and targets of the same
    /// shape, recorded as `(x − t).square().mean()`.
    ///
    /// # Panics
    /// If the shapes differ (no broadcasting, which would silently compare every prediction
    /// with every target): `mse: shapes differ; prediction shape [4, 1], target shape [4]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 3.0], &[2])?);
    /// let t = tape.constant(tensor::from_vec(vec![0.0, 1.0], &[2])?);
    /// assert_eq!(x.mse(t).item(), 2.5);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn mse(self, target: Var<'t>) -> Var<'t> {
        let (x, t) = (self.shape(), target.shape());
        assert!(
            x == t,
            "mse: shapes differ; prediction shape {x:?}, target shape {t:?}"
        );
        (self - target).square().mean()
    }

    /// Binary cross-entropy of logits `z` against targets `y ∈ [0, 1]` of the same shape,
    /// averaged: `L = (1/n) Σ max(z, 0) − z·y + ln(1 + e^(−|z|))`, the stable form of
    /// `−y ln σ(z) − (1 − y) ln(1 − σ(z))` (`binary_cross_entropy_with_logits`).
    ///
    /// Backward: `∂L/∂z = (σ(z) − y)/n`, `∂L/∂y = −z/n`.
    ///
    /// # Panics
    /// If the shapes differ:
    /// `bce_with_logits: shapes differ; logits shape [3], target shape [3, 1]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let z = tape.constant(tensor::from_vec(vec![0.0, 1e4], &[2])?);
    /// let y = tape.constant(tensor::from_vec(vec![1.0, 1.0], &[2])?);
    /// // (ln 2 + 0) / 2
    /// assert!((z.bce_with_logits(y).item() - 2f32.ln() / 2.0).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn bce_with_logits(self, target: Var<'t>) -> Var<'t> {
        let (z, y) = (self.data(), target.data());
        assert!(
            z.shape() == y.shape(),
            "bce_with_logits: shapes differ; logits shape {:?}, target shape {:?}",
            z.shape(),
            y.shape()
        );
        let n = z.len() as Elem;
        let total = Zip::from(&z).and(&y).fold(0.0, |s, &z, &y| {
            s + (z.max(0.0) - z * y + (-z.abs()).exp().ln_1p())
        });
        let value = Tensor::from_elem(ndarray::IxDyn(&[]), total / n);
        self.tape()
            .record("bce_with_logits", &[self, target], value, move |b| {
                let scale = b.grad.first().copied().expect("scalar gradient") / n;
                let (z, y) = (b.inputs[0], b.inputs[1]);
                [
                    b.needs[0].then(|| {
                        let mut dz = b.tape.scratch(z.shape(), false);
                        Zip::from(&mut dz)
                            .and(z)
                            .and(y)
                            .for_each(|d, &z, &y| *d = scale * (sigmoid(z) - y));
                        dz
                    }),
                    b.needs[1].then(|| b.tape.collect(z.shape(), z.iter().map(|&z| -scale * z))),
                ]
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, Tensor, gradcheck};

    #[test]
    fn softmax_and_log_softmax_by_hand() {
        let tape = Tape::new();
        let z = tape.constant(t(&[2, 3], &[1., 2., 3., 0., 0., 0.]));
        // softmax([1,2,3]) = [0.09003057, 0.24472847, 0.66524096]
        let p = z.softmax().value();
        let expected = [
            0.09003057,
            0.24472847,
            0.66524096,
            1. / 3.,
            1. / 3.,
            1. / 3.,
        ];
        assert!(p.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6));
        let lp = z.log_softmax().value();
        assert!((lp[[0, 2]] - 0.66524096f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn cross_entropy_gradient_is_softmax_minus_onehot_over_n() {
        let tape = Tape::new();
        let z = tape.leaf(t(&[2, 2], &[0., 0., 0., 0.]));
        let loss = z.cross_entropy(&[0, 1]);
        assert!((loss.item() - 2f32.ln()).abs() < 1e-6);
        // (softmax − onehot)/N = ([0.5, 0.5] − [1, 0])/2 = [-0.25, 0.25]
        let g = loss.backward();
        assert_eq!(g.get(z).unwrap(), t(&[2, 2], &[-0.25, 0.25, 0.25, -0.25]));
    }

    #[test]
    fn mse_and_bce_hand_derived_gradients() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2], &[1., 3.]));
        let y = tape.leaf(t(&[2], &[0., 1.]));
        // L = ((1-0)² + (3-1)²)/2, ∂L/∂x = (x - y) = [1, 2], ∂L/∂y = -(x - y)
        let g = x.mse(y).backward();
        assert_eq!(g.get(x).unwrap(), t(&[2], &[1., 2.]));
        assert_eq!(g.get(y).unwrap(), t(&[2], &[-1., -2.]));
        // BCE at z = 0: ∂L/∂z = (σ(0) − y)/n = [0.25, -0.25]
        let z = tape.leaf(t(&[2], &[0., 0.]));
        let g = z.bce_with_logits(y).backward();
        assert_eq!(g.get(z).unwrap(), t(&[2], &[0.25, -0.25]));
    }

    #[test]
    fn gradcheck_losses() {
        for (n, c) in [(4, 3), (1, 5)] {
            let z = [random(&[n, c], 1)];
            gradcheck(|v| v[0].log_softmax(), &z).unwrap();
            gradcheck(|v| v[0].softmax(), &z).unwrap();
            let labels: Vec<usize> = (0..n).map(|i| (i * 2 + 1) % c).collect();
            gradcheck(|v| v[0].cross_entropy(&labels), &z).unwrap();
            let targets = random(&[n, c], 2).mapv(|x| (x + 2.0) / 4.0);
            let pair = [random(&[n, c], 3), targets];
            gradcheck(|v| v[0].mse(v[1]), &pair).unwrap();
            gradcheck(|v| v[0].bce_with_logits(v[1]), &pair).unwrap();
        }
        gradcheck(|v| v[0].log_softmax(), &[random(&[2, 3, 4], 4)]).unwrap();
        gradcheck(|v| v[0].softmax(), &[random(&[3], 5)]).unwrap();
        // logits used twice
        let z = [random(&[3, 4], 6)];
        gradcheck(|v| (v[0] * v[0]).cross_entropy(&[0, 1, 3]) * v[0].sum(), &z).unwrap();
    }

    #[test]
    fn huge_logits_give_finite_loss_and_gradients() {
        let tape = Tape::new();
        let z = tape.leaf(t(&[2, 3], &[1e4, -1e4, 0., -1e4, -1e4, 1e4]));
        let y = tape.constant(t(&[2, 3], &[1., 0., 1., 0., 1., 0.]));
        let ce = z.cross_entropy(&[1, 2]);
        let bce = z.bce_with_logits(y);
        let soft = (z.softmax() * z.log_softmax()).sum();
        for loss in [ce, bce, soft] {
            assert!(loss.item().is_finite(), "{loss:?}");
            let g = loss.backward();
            assert!(g.get(z).unwrap().iter().all(|g| g.is_finite()), "{loss:?}");
        }
        // row 0 predicts class 0 by 2e4 but the label is 1: loss 2e4 / 2 rows
        assert_eq!(ce.item(), 1e4);
    }

    #[test]
    #[should_panic(
        expected = "cross_entropy: label 7 at row 2 out of range for logits shape [4, 3]"
    )]
    fn cross_entropy_label_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[4, 3], 0))
            .cross_entropy(&[0, 1, 7, 2]);
    }

    #[test]
    #[should_panic(expected = "cross_entropy: expected 4 labels for logits shape [4, 3], found 3")]
    fn cross_entropy_label_count_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[4, 3], 0)).cross_entropy(&[0, 1, 2]);
    }

    #[test]
    #[should_panic(expected = "mse: shapes differ; prediction shape [4, 1], target shape [4]")]
    fn mse_shape_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[4, 1], 0))
            .mse(tape.constant(random(&[4], 0)));
    }

    #[test]
    #[should_panic(
        expected = "bce_with_logits: shapes differ; logits shape [3], target shape [3, 1]"
    )]
    fn bce_shape_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[3], 0))
            .bce_with_logits(tape.constant(Tensor::zeros(ndarray::IxDyn(&[3, 1]))));
    }

    #[test]
    #[should_panic(expected = "log_softmax: expected at least one axis, found shape []")]
    fn log_softmax_of_scalar_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[], 0)).log_softmax();
    }
}
