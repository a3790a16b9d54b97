//! Activation functions, element-wise: step, sigmoid, tanh, relu, leaky relu, elu.
//!
//! At the points where a function has no derivative the rules are fixed and documented:
//! relu'(0) = 0, leaky_relu'(0) = slope, and the step function has derivative 0 everywhere.
//!
//! A NaN input gives a NaN output for every activation, as in PyTorch, so a NaN is never
//! turned into a number on its way to the loss (where the optimizers' divergence guard
//! sees it). At a NaN input the derivative rules give what PyTorch's do: the rule of the
//! `x > 0` branch for relu and elu, `slope` for leaky relu, NaN for sigmoid and tanh.

use crate::autograd::tape::Var;
use crate::tensor::Elem;

impl<'t> Var<'t> {
    /// The Heaviside step of the perceptron: `y = 1 if x > 0, else 0` (NaN for a NaN
    /// input, as NumPy's `heaviside`).
    ///
    /// Not differentiable in any useful sense: its derivative is 0 wherever it exists (and
    /// undefined at 0), so the backward rule returns 0 everywhere and **nothing upstream of a
    /// step learns through it**. That is why the perceptron's learning rule is not
    /// backpropagation, and why multilayer nets use smooth or piecewise-linear activations.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3])?);
    /// let y = x.step();
    /// assert_eq!(y.value().as_slice().unwrap(), &[0.0, 0.0, 1.0]);
    /// assert_eq!(y.sum().backward().get(x).unwrap().sum(), 0.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn step(self) -> Var<'t> {
        self.map(
            "step",
            |x| {
                if x > 0.0 {
                    1.0
                } else if x <= 0.0 {
                    0.0
                } else {
                    x // NaN
                }
            },
            |_, _| 0.0,
        )
    }

    /// The logistic sigmoid `σ(x) = 1 / (1 + e^(−x))`, computed without overflow for large
    /// `|x|`.
    ///
    /// Backward: `σ'(x) = σ(x)(1 − σ(x))`, at most 0.25 (at `x = 0`): a chain of sigmoid
    /// layers multiplies gradients by at most `0.25` per layer, which is why deep sigmoid nets
    /// vanish their gradients.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![0.0, 1000.0, -1000.0], &[3])?);
    /// assert_eq!(x.sigmoid().value().as_slice().unwrap(), &[0.5, 1.0, 0.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sigmoid(self) -> Var<'t> {
        self.map("sigmoid", sigmoid, |_, y| y * (1.0 - y))
    }

    /// The hyperbolic tangent `tanh(x) = (e^x − e^(−x)) / (e^x + e^(−x))`.
    ///
    /// Backward: `tanh'(x) = 1 − tanh²(x)`, at most 1 (at `x = 0`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![0.0, 20.0], &[2])?);
    /// assert_eq!(x.tanh().value().as_slice().unwrap(), &[0.0, 1.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn tanh(self) -> Var<'t> {
        self.map("tanh", Elem::tanh, |_, y| 1.0 - y * y)
    }

    /// The rectifier `relu(x) = max(0, x)`, with `relu(NaN) = NaN` as in PyTorch (a NaN is
    /// passed on, not hidden as 0).
    ///
    /// Backward: 0 for `x ≤ 0` (so `relu'(0) = 0`, as in PyTorch), 1 otherwise (for `x > 0`
    /// and, as in PyTorch, for NaN).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![-2.0, 0.0, 3.0, f32::NAN], &[4])?);
    /// let y = x.relu().value();
    /// assert_eq!(y.as_slice().unwrap()[..3], [0.0, 0.0, 3.0]);
    /// assert!(y[[3]].is_nan());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn relu(self) -> Var<'t> {
        self.map(
            "relu",
            |x| if x <= 0.0 { 0.0 } else { x },
            |x, _| if x <= 0.0 { 0.0 } else { 1.0 },
        )
    }

    /// The leaky rectifier `y = x if x > 0, else slope·x` (PyTorch's default slope is 0.01;
    /// the "very leaky" relu of the LSUV paper uses 1/3).
    ///
    /// Backward: 1 for `x > 0`, `slope` for `x ≤ 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![-2.0, 3.0], &[2])?);
    /// assert_eq!(x.leaky_relu(0.25).value().as_slice().unwrap(), &[-0.5, 3.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn leaky_relu(self, slope: Elem) -> Var<'t> {
        self.map(
            "leaky_relu",
            move |x| if x > 0.0 { x } else { slope * x },
            move |x, _| if x > 0.0 { 1.0 } else { slope },
        )
    }

    /// The exponential linear unit (Clevert et al. 2015, <https://arxiv.org/abs/1511.07289>):
    /// `y = x if x > 0, else alpha·(e^x − 1)` (PyTorch's default alpha is 1.0).
    ///
    /// Backward: `alpha·e^x` for `x ≤ 0` (computed so, as PyTorch does, not as the equal
    /// `y + alpha`, which cancels once `e^x` is below `f32`'s precision: 44% off at `x = −17`,
    /// 0 from `x = −20`), 1 otherwise (for `x > 0` and, as in PyTorch, for NaN).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![0.0, 2.0], &[2])?);
    /// assert_eq!(x.elu(1.0).value().as_slice().unwrap(), &[0.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn elu(self, alpha: Elem) -> Var<'t> {
        self.map(
            "elu",
            move |x| if x <= 0.0 { alpha * x.exp_m1() } else { x },
            move |x, _| if x <= 0.0 { alpha * x.exp() } else { 1.0 },
        )
    }
}

/// `1 / (1 + e^(−x))` without overflow: for negative `x` it is computed as `e^x / (1 + e^x)`.
pub(crate) fn sigmoid(x: Elem) -> Elem {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::{away_from_zero, random};
    use crate::{Tape, gradcheck};

    #[test]
    fn forward_values_by_hand() {
        let tape = Tape::new();
        let x = tape.constant(t(&[4], &[-2., -0.5, 0., 1.5]));
        let close =
            |a: crate::Tensor, b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-6);
        assert!(close(x.step().value(), &[0., 0., 0., 1.]));
        assert!(close(x.relu().value(), &[0., 0., 0., 1.5]));
        assert!(close(x.leaky_relu(0.1).value(), &[-0.2, -0.05, 0., 1.5]));
        // elu(-2) = e^-2 - 1 = -0.8646647, elu(-0.5) = e^-0.5 - 1 = -0.3934693
        assert!(close(
            x.elu(1.0).value(),
            &[-0.8646647, -0.3934693, 0., 1.5]
        ));
        // σ(-2) = 0.11920292, σ(-0.5) = 0.37754067, σ(1.5) = 0.8175745
        assert!(close(
            x.sigmoid().value(),
            &[0.11920292, 0.37754067, 0.5, 0.8175745]
        ));
        // tanh(-2) = -0.9640276, tanh(-0.5) = -0.46211716, tanh(1.5) = 0.90514825
        assert!(close(
            x.tanh().value(),
            &[-0.9640276, -0.46211716, 0., 0.90514825]
        ));
    }

    #[test]
    fn hand_derived_derivatives_at_and_around_kinks() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[3], &[-1., 0., 2.]));
        let grad = |y: crate::Var| y.sum().backward().get(x).unwrap().clone();
        assert_eq!(grad(x.relu()), t(&[3], &[0., 0., 1.]));
        assert_eq!(grad(x.leaky_relu(0.01)), t(&[3], &[0.01, 0.01, 1.]));
        assert_eq!(grad(x.step()), t(&[3], &[0., 0., 0.]));
        // elu'(x) = e^x for x ≤ 0: e^-1 = 0.36787944, e^0 = 1
        let elu = grad(x.elu(1.0));
        assert!((elu[[0]] - 0.36787944).abs() < 1e-6 && elu[[1]] == 1.0 && elu[[2]] == 1.0);
        // deep in the negative range the slope is tiny but still relatively exact
        let deep = tape.leaf(t(&[3], &[-10., -17., -30.]));
        let slope = (deep.elu(0.5)).sum().backward().get(deep).unwrap().clone();
        for (&s, x) in slope.iter().zip([-10.0f32, -17.0, -30.0]) {
            let exact = 0.5 * f64::from(x).exp();
            assert!(
                ((f64::from(s) - exact) / exact).abs() < 1e-6,
                "x {x}: {s} vs {exact}"
            );
        }
        // σ'(0) = 0.25 and tanh'(0) = 1 are the maxima
        assert_eq!(grad(x.sigmoid())[[1]], 0.25);
        assert_eq!(grad(x.tanh())[[1]], 1.0);
    }

    #[test]
    fn gradcheck_activations() {
        for shape in [vec![3, 5], vec![1, 4], vec![]] {
            let smooth = [random(&shape, 1)];
            gradcheck(|v| v[0].sigmoid(), &smooth).unwrap();
            gradcheck(|v| v[0].tanh(), &smooth).unwrap();
            let kinked = [away_from_zero(&shape, 2)];
            gradcheck(|v| v[0].relu(), &kinked).unwrap();
            gradcheck(|v| v[0].leaky_relu(0.01), &kinked).unwrap();
            gradcheck(|v| v[0].leaky_relu(1.0 / 3.0), &kinked).unwrap();
            gradcheck(|v| v[0].elu(1.0), &kinked).unwrap();
            gradcheck(|v| v[0].elu(0.5), &kinked).unwrap();
            gradcheck(|v| v[0].step(), &kinked).unwrap();
            gradcheck(|v| v[0].relu() * v[0].tanh(), &kinked).unwrap();
        }
    }

    #[test]
    fn a_nan_input_gives_a_nan_output_and_pytorchs_gradient() {
        // Reference, PyTorch 2.x:
        //   x = torch.tensor([nan, -1., 2.], requires_grad=True)
        //   (f(x) * 3).sum().backward(); f(x), x.grad
        // relu:       [nan, 0, 2]              grad [3, 0, 3]
        // leaky 0.1:  [nan, -0.1, 2]           grad [0.3, 0.3, 3]
        // elu 1.0:    [nan, -0.6321206, 2]     grad [3, 1.1036383, 3]
        // sigmoid, tanh: nan                   grad [nan, .., ..]
        let tape = Tape::new();
        let x = tape.leaf(t(&[3], &[f32::NAN, -1., 2.]));
        let run = |y: crate::Var| {
            let g = (y * 3.0).sum().backward().get(x).unwrap().clone();
            (y.value(), g)
        };
        let same = |a: &crate::Tensor, b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(a, b)| (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-6)
        };
        let nan = f32::NAN;
        let cases = [
            ("relu", run(x.relu()), [nan, 0., 2.], [3., 0., 3.]),
            (
                "leaky_relu",
                run(x.leaky_relu(0.1)),
                [nan, -0.1, 2.],
                [0.3, 0.3, 3.],
            ),
            (
                "elu",
                run(x.elu(1.0)),
                [nan, -0.632_120_6, 2.],
                [3., 1.103_638_3, 3.],
            ),
            ("step", run(x.step()), [nan, 0., 1.], [0., 0., 0.]),
        ];
        for (op, (y, g), want_y, want_g) in cases {
            assert!(same(&y, &want_y), "{op}: {y}");
            assert!(same(&g, &want_g), "{op}: {g}");
        }
        for (op, (y, g)) in [("sigmoid", run(x.sigmoid())), ("tanh", run(x.tanh()))] {
            assert!(y[[0]].is_nan() && g[[0]].is_nan(), "{op}: {y}, {g}");
            assert!(y[[1]].is_finite() && g[[1]].is_finite(), "{op}: {y}, {g}");
        }
    }

    #[test]
    fn sigmoid_is_finite_for_huge_inputs() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2], &[-1e4, 1e4]));
        let y = x.sigmoid();
        assert_eq!(y.value(), t(&[2], &[0., 1.]));
        let g = y.sum().backward();
        assert!(g.get(x).unwrap().iter().all(|g| g.is_finite()));
    }
}
