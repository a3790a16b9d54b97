//! Softmax and losses, all in numerically stable forms: log-softmax and softmax along the
//! last axis, softmax cross-entropy from logits and class labels (optionally with label
//! smoothing), binary cross-entropy from logits, and the regression losses mean squared
//! error, mean absolute error (L1) and Huber.
//!
//! Classification losses take raw scores (logits), not probabilities. Every loss returns the
//! **mean** over its elements (PyTorch's `reduction='mean'`).

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

/// `torch.sign`: `1` for positive, `−1` for negative, `0` at zero (where `f32::signum`
/// gives `±1`), NaN for NaN.
fn sign(x: Elem) -> Elem {
    if x == 0.0 { 0.0 } else { x.signum() }
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
        self.cross_entropy_with("cross_entropy", labels, 0.0)
    }

    /// Softmax cross-entropy with label smoothing `ε`: the cross-entropy against the target
    /// distribution `q_n = (1 − ε)·onehot(y_n) + ε/C` instead of `onehot(y_n)`, averaged over
    /// the batch, as PyTorch's `nn.CrossEntropyLoss(label_smoothing=ε)`:
    /// `L = (1/N) Σ_n [(1 − ε)·(−log p_n[y_n]) + ε·(1/C) Σ_c −log p_n[c]]` with
    /// `p_n = softmax(z_n)`. `ε = 0` is [`Var::cross_entropy`]. Smoothing keeps the logits
    /// from growing without bound to fit one-hot targets (Szegedy et al. 2016, "Rethinking
    /// the Inception Architecture for Computer Vision", section 7,
    /// <https://arxiv.org/abs/1512.00567>). The smallest value, reached at `p_n = q_n`, is
    /// the entropy of `q_n`, not 0.
    ///
    /// Backward (fused, stable): `∂L/∂z_n = (softmax(z_n) − q_n) / N`.
    ///
    /// # Shapes
    /// `[N, C]` logits and `N` labels give a scalar.
    ///
    /// # Panics
    /// If `label_smoothing` is not in `[0, 1)`, a constant of the program
    /// (`cross_entropy_smoothed: label_smoothing must be in [0, 1), got 1`; a value from
    /// outside goes through [`Loss::check`](crate::Loss::check), which returns an error),
    /// and on the shapes and labels [`Var::cross_entropy`] panics on.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// // two classes, equal logits: p = [0.5, 0.5], so every term is ln 2
    /// let z = tape.leaf(tensor::from_vec(vec![0.0, 0.0], &[1, 2])?);
    /// let loss = z.cross_entropy_smoothed(&[0], 0.1);
    /// assert!((loss.item() - 2f32.ln()).abs() < 1e-6);
    /// // q = [0.9 + 0.05, 0.05]: ∂L/∂z = p − q = [−0.45, 0.45]
    /// let g = loss.backward();
    /// let dz = g.get(z).unwrap();
    /// assert!((dz[[0, 0]] + 0.45).abs() < 1e-6 && (dz[[0, 1]] - 0.45).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn cross_entropy_smoothed(self, labels: &[usize], label_smoothing: Elem) -> Var<'t> {
        assert!(
            (0.0..1.0).contains(&label_smoothing),
            "cross_entropy_smoothed: label_smoothing must be in [0, 1), got {label_smoothing}"
        );
        self.cross_entropy_with("cross_entropy_smoothed", labels, label_smoothing)
    }

    /// The primitive behind [`Var::cross_entropy`] (`smoothing = 0`, which takes the plain
    /// one-hot path) and [`Var::cross_entropy_smoothed`], recorded under `op`.
    #[track_caller]
    fn cross_entropy_with(self, op: &'static str, labels: &[usize], smoothing: Elem) -> Var<'t> {
        let z = self.data();
        let shape = z.shape();
        assert!(
            shape.len() == 2,
            "{op}: expected 2-D logits [batch, classes], found shape {shape:?}"
        );
        assert!(
            labels.len() == shape[0],
            "{op}: expected {} labels for logits shape {shape:?}, found {}",
            shape[0],
            labels.len()
        );
        if let Some((row, label)) = labels.iter().enumerate().find(|&(_, &y)| y >= shape[1]) {
            panic!("{op}: label {label} at row {row} out of range for logits shape {shape:?}");
        }
        let n = shape[0] as Elem;
        let classes = shape[1] as Elem;
        let mut probs = self.tape().scratch(shape, false);
        let mut total = 0.0;
        let rows = probs.lanes_mut(Axis(1)).into_iter().zip(z.lanes(Axis(1)));
        for ((mut p, z), &y) in rows.zip(labels) {
            let (m, log_sum) = log_sum_exp(z);
            // −log p[y] = ln Σ e^(z − m) − (z_y − m)
            let mut row = log_sum - (z[y] - m);
            if smoothing > 0.0 {
                // (1/C) Σ_c −log p[c] = ln Σ e^(z − m) − (1/C) Σ_c (z_c − m)
                let uniform = log_sum - z.fold(0.0, |s, &z| s + (z - m)) / classes;
                row = (1.0 - smoothing) * row + smoothing * uniform;
            }
            total += row;
            Zip::from(&mut p)
                .and(&z)
                .for_each(|p, &z| *p = ((z - m) - log_sum).exp());
        }
        let value = Tensor::from_elem(ndarray::IxDyn(&[]), total / n);
        let labels = labels.to_vec();
        // the target q = (1 − ε)·onehot + ε/C; with ε = 0 both corrections are exact no-ops
        let (on_label, everywhere) = (1.0 - smoothing, smoothing / classes);
        // the probabilities are kept beside the node, so that the reset gives their buffer
        // back to the pool
        self.tape()
            .record_saving(op, &[self], value, Some(probs), move |b| {
                let scale = b.grad.first().copied().expect("scalar gradient") / n;
                let probs = b.saved.expect("internal error: saved probabilities");
                let mut dz = b.tape.copy(probs.view());
                for (mut d, &y) in dz.lanes_mut(Axis(1)).into_iter().zip(&labels) {
                    d[y] -= on_label;
                    d.mapv_inplace(|d| (d - everywhere) * scale);
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

    /// Mean absolute error `L = (1/n) Σ |x − t|` between predictions and targets of the same
    /// shape (`torch.nn.L1Loss`, `reduction='mean'`).
    ///
    /// Backward: `∂L/∂x = sign(x − t)/n`, `∂L/∂t = −sign(x − t)/n`, with `sign(0) = 0` as
    /// `torch.sign`, so an element predicted exactly gets no gradient.
    ///
    /// # Shapes
    /// Predictions and targets of one shape give a scalar.
    ///
    /// # Panics
    /// If the shapes differ (no broadcasting):
    /// `l1_loss: shapes differ; prediction shape [4, 1], target shape [4]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 3.0, 2.0], &[3])?);
    /// let t = tape.constant(tensor::from_vec(vec![0.0, 1.0, 2.0], &[3])?);
    /// let loss = x.l1_loss(t);
    /// assert_eq!(loss.item(), 1.0); // (1 + 2 + 0) / 3
    /// let g = loss.backward();
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[1.0 / 3.0, 1.0 / 3.0, 0.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn l1_loss(self, target: Var<'t>) -> Var<'t> {
        self.mean_over_differences("l1_loss", target, Elem::abs, sign)
    }

    /// Huber loss `L = (1/n) Σ h(x − t)` with `h(d) = 0.5·d²` if `|d| < δ`, else
    /// `δ·(|d| − 0.5·δ)`: quadratic near the target, linear (so robust to outliers) beyond
    /// `δ` (`torch.nn.HuberLoss(delta=δ)`, `reduction='mean'`; Huber 1964,
    /// <https://doi.org/10.1214/aoms/1177703732>). It equals `δ ·` PyTorch's `SmoothL1Loss`
    /// with `beta = δ`; for `δ` beyond every `|d|` it is half the [`Var::mse`].
    ///
    /// Backward: `∂L/∂x = h'(x − t)/n` with `h'(d) = d` if `|d| < δ`, else `δ·sign(d)`, and
    /// `∂L/∂t = −∂L/∂x`. `h'` is continuous at `|d| = δ`: the loss is differentiable there.
    ///
    /// # Shapes
    /// Predictions and targets of one shape give a scalar.
    ///
    /// # Panics
    /// If `delta` is not finite and positive, a constant of the program
    /// (`huber_loss: delta must be finite and > 0, got 0`), or if the shapes differ:
    /// `huber_loss: shapes differ; prediction shape [3], target shape [3, 1]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![0.5, 3.0], &[2])?);
    /// let t = tape.constant(tensor::from_vec(vec![0.0, 0.0], &[2])?);
    /// let loss = x.huber_loss(t, 1.0);
    /// assert_eq!(loss.item(), 1.3125); // (0.5·0.5² + 1·(3 − 0.5)) / 2
    /// let g = loss.backward();
    /// assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[0.25, 0.5]); // [0.5, 1] / 2
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn huber_loss(self, target: Var<'t>, delta: Elem) -> Var<'t> {
        assert!(
            delta.is_finite() && delta > 0.0,
            "huber_loss: delta must be finite and > 0, got {delta}"
        );
        let huber = move |d: Elem| {
            if d.abs() < delta {
                0.5 * d * d
            } else {
                delta * (d.abs() - 0.5 * delta)
            }
        };
        let slope = move |d: Elem| if d.abs() < delta { d } else { delta * sign(d) };
        self.mean_over_differences("huber_loss", target, huber, slope)
    }

    /// Records `L = (1/n) Σ f(x − t)` over predictions `x` and targets `t` of one shape, with
    /// `∂L/∂x = G·f'(x − t)/n` and `∂L/∂t = −∂L/∂x`. The sum is accumulated in `f64`.
    #[track_caller]
    fn mean_over_differences(
        self,
        op: &'static str,
        target: Var<'t>,
        f: impl Fn(Elem) -> Elem,
        df: impl Fn(Elem) -> Elem + Send + 'static,
    ) -> Var<'t> {
        let (x, t) = (self.data(), target.data());
        assert!(
            x.shape() == t.shape(),
            "{op}: shapes differ; prediction shape {:?}, target shape {:?}",
            x.shape(),
            t.shape()
        );
        let n = x.len() as Elem;
        let total = Zip::from(&x)
            .and(&t)
            .fold(0.0, |s, &x, &t| s + f64::from(f(x - t)));
        let value = Tensor::from_elem(ndarray::IxDyn(&[]), (total / f64::from(n)) as Elem);
        self.tape().record(op, &[self, target], value, move |b| {
            let scale = b.grad.first().copied().expect("scalar gradient") / n;
            let (x, t) = (b.inputs[0], b.inputs[1]);
            let dx = b.tape.collect(
                x.shape(),
                x.iter().zip(t.iter()).map(|(&x, &t)| scale * df(x - t)),
            );
            let dt = b.needs[1].then(|| b.tape.collect(x.shape(), dx.iter().map(|&d| -d)));
            if b.needs[0] {
                [Some(dx), dt]
            } else {
                b.tape.reuse(dx);
                [None, dt]
            }
        })
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
    use crate::autograd::gradcheck::testing::{away_from_zero, random};
    use crate::{Elem, Tape, Tensor, gradcheck};

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
            for epsilon in [0.1, 0.4] {
                gradcheck(|v| v[0].cross_entropy_smoothed(&labels, epsilon), &z).unwrap();
            }
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
        gradcheck(
            |v| (v[0] * v[0]).cross_entropy_smoothed(&[0, 1, 3], 0.2) * v[0].sum(),
            &z,
        )
        .unwrap();
    }

    /// `L = −(1/N) Σ_n Σ_c q_nc · log p_nc` with `q = (1 − ε)·onehot(y) + ε/C` and
    /// `∂L/∂z = (p − q)/N`, from the definitions in f64 (no log-sum-exp shift).
    fn smoothed_by_definition(z: &Tensor, labels: &[usize], epsilon: f64) -> (f64, Vec<f64>) {
        let (n, c) = (z.shape()[0], z.shape()[1]);
        let (mut loss, mut grad) = (0.0, Vec::new());
        for (row, &y) in labels.iter().enumerate() {
            let e: Vec<f64> = (0..c).map(|j| f64::from(z[[row, j]]).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (j, e) in e.iter().enumerate() {
                let q = (1.0 - epsilon) * f64::from(u8::from(j == y)) + epsilon / c as f64;
                let p = e / sum;
                loss -= q * p.ln() / n as f64;
                grad.push((p - q) / n as f64);
            }
        }
        (loss, grad)
    }

    #[test]
    fn smoothed_cross_entropy_matches_its_definition() {
        // The definition agrees with PyTorch (2.15) to f64 rounding:
        //   z = torch.randn(4, 5, dtype=torch.float64) * 2; y = torch.tensor([1, 0, 4, 2])
        //   q = (1 - eps) * F.one_hot(y, 5).double() + eps / 5
        //   F.cross_entropy(z, y, label_smoothing=eps) == -(q * F.log_softmax(z, 1)).sum(1).mean()
        let labels = [1, 0, 4, 2];
        for (seed, epsilon) in [(50, 0.0), (51, 0.1), (52, 0.3), (53, 0.95)] {
            let z0 = random(&[4, 5], seed).mapv(|x| 3.0 * x);
            let tape = Tape::new();
            let z = tape.leaf(z0.clone());
            let loss = z.cross_entropy_smoothed(&labels, epsilon as Elem);
            let (expected, expected_grad) = smoothed_by_definition(&z0, &labels, epsilon);
            let value = f64::from(loss.item());
            assert!(
                (value - expected).abs() < 1e-5,
                "ε {epsilon}: {value} vs {expected}"
            );
            let g = loss.backward();
            for (a, b) in g.get(z).unwrap().iter().zip(&expected_grad) {
                assert!((f64::from(*a) - b).abs() < 1e-6, "ε {epsilon}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn smoothing_zero_is_plain_cross_entropy_bit_for_bit() {
        let z0 = random(&[6, 4], 60);
        let labels = [3, 0, 1, 2, 2, 0];
        let tape = Tape::new();
        let z = tape.leaf(z0);
        let (plain, smoothed) = (
            z.cross_entropy(&labels),
            z.cross_entropy_smoothed(&labels, 0.0),
        );
        assert_eq!(plain.item().to_bits(), smoothed.item().to_bits());
        assert_eq!(plain.backward().get(z), smoothed.backward().get(z));
        // any ε > 0 raises the loss of a confident right answer and lowers the gradient's pull
        let sure = tape.leaf(t(&[1, 3], &[8., 0., 0.]));
        let (hard, soft) = (
            sure.cross_entropy(&[0]),
            sure.cross_entropy_smoothed(&[0], 0.1),
        );
        assert!(soft.item() > hard.item());
        // ∂L/∂z_0 = p_0 − (1 − ε + ε/3) > 0 once p_0 > 0.9333: smoothing pushes back
        assert!(hard.backward().get(sure).unwrap()[[0, 0]] < 0.0);
        assert!(soft.backward().get(sure).unwrap()[[0, 0]] > 0.0);
    }

    #[test]
    fn l1_and_huber_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2, 2], &[1., -1., 0.5, 4.]));
        let y = tape.leaf(t(&[2, 2], &[0., 1., 0.5, 1.]));
        // d = x − y = [1, −2, 0, 3]; L1 = (1 + 2 + 0 + 3)/4 = 1.5
        // ∂L/∂x = sign(d)/4 = [0.25, −0.25, 0, 0.25] (sign(0) = 0), ∂L/∂y = −∂L/∂x
        let l1 = x.l1_loss(y);
        assert_eq!(l1.item(), 1.5);
        let g = l1.backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 2], &[0.25, -0.25, 0., 0.25]));
        assert_eq!(g.get(y).unwrap(), t(&[2, 2], &[-0.25, 0.25, 0., -0.25]));
        // Huber, δ = 1.5: |d| < δ gives 0.5·d² (d = 1: 0.5, d = 0: 0), otherwise
        // δ·(|d| − δ/2) (d = −2: 1.5·1.25 = 1.875, d = 3: 1.5·2.25 = 3.375);
        // L = 5.75/4 = 1.4375. h'(d) = [1, −δ, 0, δ] = [1, −1.5, 0, 1.5], over 4.
        let huber = x.huber_loss(y, 1.5);
        assert_eq!(huber.item(), 1.4375);
        let g = huber.backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 2], &[0.25, -0.375, 0., 0.375]));
        assert_eq!(g.get(y).unwrap(), t(&[2, 2], &[-0.25, 0.375, 0., -0.375]));
        // |d| = δ takes the linear branch: h(1) = 1·(1 − 0.5) = 0.5 = 0.5·1², h'(1) = 1
        let (one, zero) = (tape.leaf(t(&[1], &[1.])), tape.constant(t(&[1], &[0.])));
        let g = one.huber_loss(zero, 1.0).backward();
        assert_eq!(one.huber_loss(zero, 1.0).item(), 0.5);
        assert_eq!(g.get(one).unwrap(), t(&[1], &[1.]));
        // only the target needs a gradient
        let c = tape.constant(t(&[2], &[3., -3.]));
        let target = tape.leaf(t(&[2], &[1., 1.]));
        let g = c.l1_loss(target).backward();
        assert_eq!(g.get(target).unwrap(), t(&[2], &[-0.5, 0.5]));
        // the same value on both sides: d = 0 everywhere, and the two gradients cancel
        let g = x.huber_loss(x, 1.0).backward();
        assert_eq!(g.get(x).unwrap(), t(&[2, 2], &[0.; 4]));
    }

    #[test]
    fn huber_limits_match_mse_and_l1() {
        let tape = Tape::new();
        let x = random(&[5, 3], 7);
        let y = &x - &away_from_zero(&[5, 3], 8); // 0.1 ≤ |d| ≤ 2.1
        let (x, y) = (tape.constant(x), tape.constant(y));
        // δ above every |d|: the quadratic branch everywhere, half the MSE
        let (huber, mse) = (x.huber_loss(y, 3.0).item(), x.mse(y).item());
        assert!((huber - 0.5 * mse).abs() < 1e-6, "{huber} vs {mse}");
        // δ below every |d|: the linear branch everywhere, δ·(L1 − δ/2)
        let (huber, l1) = (x.huber_loss(y, 0.05).item(), x.l1_loss(y).item());
        assert!(
            (huber - 0.05 * (l1 - 0.025)).abs() < 1e-6,
            "{huber} vs {l1}"
        );
    }

    #[test]
    fn gradcheck_l1_and_huber() {
        for (shape, seed) in [(&[4, 3][..], 10), (&[1, 5][..], 20), (&[][..], 30)] {
            let x = random(shape, seed);
            // targets at least 0.1 from the predictions: |x − t| has its kink at x = t
            let d = away_from_zero(shape, seed + 1);
            let pair = [x.clone(), &x - &d];
            gradcheck(|v| v[0].l1_loss(v[1]), &pair).unwrap();
            for delta in [0.5, 1.0, 3.0] {
                gradcheck(|v| v[0].huber_loss(v[1], delta), &pair).unwrap();
            }
            if shape == [4, 3] {
                // both branches of Huber at δ = 1
                assert!(d.iter().any(|d| d.abs() < 0.9) && d.iter().any(|d| d.abs() > 1.1));
            }
        }
        // inside a larger graph, prediction used twice
        let pair = [random(&[3, 4], 40), random(&[3, 4], 41)];
        gradcheck(|v| v[0].exp().huber_loss(v[1], 1.0) * v[0].sum(), &pair).unwrap();
        let pair = [pair[0].clone(), &pair[0] - &away_from_zero(&[3, 4], 42)];
        gradcheck(|v| v[0].l1_loss(v[1]) * v[0].sum(), &pair).unwrap();
    }

    #[test]
    fn huge_logits_give_finite_loss_and_gradients() {
        let tape = Tape::new();
        let z = tape.leaf(t(&[2, 3], &[1e4, -1e4, 0., -1e4, -1e4, 1e4]));
        let y = tape.constant(t(&[2, 3], &[1., 0., 1., 0., 1., 0.]));
        let ce = z.cross_entropy(&[1, 2]);
        let smoothed = z.cross_entropy_smoothed(&[1, 2], 0.1);
        let bce = z.bce_with_logits(y);
        let soft = (z.softmax() * z.log_softmax()).sum();
        for loss in [ce, smoothed, bce, soft] {
            assert!(loss.item().is_finite(), "{loss:?}");
            let g = loss.backward();
            assert!(g.get(z).unwrap().iter().all(|g| g.is_finite()), "{loss:?}");
        }
        // row 0 predicts class 0 by 2e4 but the label is 1: loss 2e4 / 2 rows
        assert_eq!(ce.item(), 1e4);
        // −log p per class: row 0 [0, 2e4, 1e4], row 1 [2e4, 2e4, 0]; with ε = 0.1 each row
        // costs 0.9·(−log p_y) + 0.1·mean: (0.9·2e4 + 0.1·1e4 + 0.9·0 + 0.1·4e4/3) / 2
        let expected = (0.9 * 2e4 + 0.1 * 1e4 + 0.1 * 4e4 / 3.0) / 2.0;
        assert!((smoothed.item() - expected).abs() < 1.0, "{smoothed:?}");
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
    #[should_panic(expected = "cross_entropy_smoothed: label_smoothing must be in [0, 1), got 1")]
    fn smoothing_of_one_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .cross_entropy_smoothed(&[0, 1], 1.0);
    }

    #[test]
    #[should_panic(expected = "cross_entropy_smoothed: label_smoothing must be in [0, 1), got NaN")]
    fn smoothing_of_nan_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .cross_entropy_smoothed(&[0, 1], Elem::NAN);
    }

    #[test]
    #[should_panic(
        expected = "cross_entropy_smoothed: label 3 at row 1 out of range for logits shape [2, 3]"
    )]
    fn smoothed_label_out_of_range_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[2, 3], 0))
            .cross_entropy_smoothed(&[0, 3], 0.1);
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

    #[test]
    #[should_panic(expected = "l1_loss: shapes differ; prediction shape [4, 1], target shape [4]")]
    fn l1_shape_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[4, 1], 0))
            .l1_loss(tape.constant(random(&[4], 0)));
    }

    #[test]
    #[should_panic(
        expected = "huber_loss: shapes differ; prediction shape [3], target shape [3, 1]"
    )]
    fn huber_shape_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape
            .constant(random(&[3], 0))
            .huber_loss(tape.constant(random(&[3, 1], 0)), 1.0);
    }

    #[test]
    #[should_panic(expected = "huber_loss: delta must be finite and > 0, got 0")]
    fn huber_zero_delta_panics() {
        let tape = Tape::new();
        let x = tape.constant(random(&[3], 0));
        let _ = x.huber_loss(x, 0.0);
    }

    #[test]
    #[should_panic(expected = "huber_loss: delta must be finite and > 0, got inf")]
    fn huber_infinite_delta_panics() {
        let tape = Tape::new();
        let x = tape.constant(random(&[3], 0));
        let _ = x.huber_loss(x, Elem::INFINITY);
    }
}
