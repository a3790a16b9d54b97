//! Arithmetic: `+ − × ÷` between two vars with NumPy broadcasting, negation, the same
//! operators with an `f32` scalar, and the element-wise functions exp, log, square, sqrt.
//!
//! # Broadcasting
//! Two shapes are aligned at the right; each pair of sizes must be equal or one of them 1
//! (a missing axis counts as 1). So a bias row `[d]` or `[1, d]` adds to a batch `[n, d]`,
//! a column `[n, 1]` scales each row, and a scalar `[]` combines with anything. Anything
//! else panics. In the backward pass the gradient of a broadcast operand is summed over the
//! axes it was repeated along, so it has the operand's shape again.

use super::{broadcast_shape, sum_to_shape};
use crate::autograd::tape::{Tape, Value, Var};
use crate::kernels::simd::with_simd;
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayViewD, IxDyn, Zip};
use std::ops::{Add, Div, Mul, Neg, Sub};

impl<'t> Var<'t> {
    /// Records `out = f(a, b)` element-wise over the broadcast shape, with the partial
    /// derivatives given as `g·∂out/∂a = d_lhs(g, a, b)` and `g·∂out/∂b = d_rhs(g, a, b)`.
    #[track_caller]
    fn broadcast_binary(
        self,
        rhs: Var<'t>,
        op: &'static str,
        f: impl Fn(Elem, Elem) -> Elem,
        d_lhs: impl Fn(Elem, Elem, Elem) -> Elem + Send + 'static,
        d_rhs: impl Fn(Elem, Elem, Elem) -> Elem + Send + 'static,
    ) -> Var<'t> {
        let (a, b) = (self.data(), rhs.data());
        let shape = broadcast_shape(op, a.shape(), b.shape());
        let tape = self.tape();
        let value = match Periodic::new(&a, &b, &shape) {
            Some(periodic) => {
                let mut out = tape.scratch(&shape, false);
                let out_slice = out.as_slice_mut().expect("fresh tensor is contiguous");
                with_simd(
                    #[inline(always)]
                    || {
                        for (c, o) in out_slice.chunks_exact_mut(periodic.period).enumerate() {
                            let (x, y) = periodic.chunk(c);
                            for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                                *o = f(x, y);
                            }
                        }
                    },
                );
                out
            }
            None => {
                let dim = IxDyn(&shape);
                let (x, y) = (a.broadcast(dim.clone()), b.broadcast(dim));
                let (x, y) = (x.expect("shape checked"), y.expect("shape checked"));
                tape.collect(&shape, x.iter().zip(y.iter()).map(|(&x, &y)| f(x, y)))
            }
        };
        tape.record(op, &[self, rhs], value, move |b| {
            let shape = b.grad.shape();
            let (a, c) = (b.inputs[0], b.inputs[1]);
            if let (Some(g), Some(periodic)) = (b.grad.as_slice(), Periodic::new(a, c, shape)) {
                return [
                    b.needs[0].then(|| periodic.partial(b.tape, g, a.shape(), &d_lhs)),
                    b.needs[1].then(|| periodic.partial(b.tape, g, c.shape(), &d_rhs)),
                ];
            }
            let dim = b.grad.raw_dim();
            let x = a.broadcast(dim.clone()).expect("shape checked");
            let y = c.broadcast(dim).expect("shape checked");
            [
                b.needs[0].then(|| sum_to_shape(partial_with(b.grad, &x, &y, &d_lhs), a.shape())),
                b.needs[1].then(|| sum_to_shape(partial_with(b.grad, &x, &y, &d_rhs), c.shape())),
            ]
        })
    }
}

/// The fast path of broadcasting: both operands row-major, and each either of the output's
/// shape or broadcast only along leading axes (a bias row over a batch). Then, in the
/// output's row-major order, the smaller operand repeats with period `period` and the
/// larger one is read straight through.
struct Periodic<'a> {
    x: &'a [Elem],
    y: &'a [Elem],
    period: usize,
}

impl<'a> Periodic<'a> {
    fn new(a: &'a Value, b: &'a Value, shape: &[usize]) -> Option<Self> {
        let n: usize = shape.iter().product();
        let (x, y) = (a.as_slice()?, b.as_slice()?);
        let leading_only = |s: &[usize]| {
            let first = s.iter().position(|&d| d != 1).unwrap_or(s.len());
            shape.ends_with(&s[first..])
        };
        let period = x.len().min(y.len());
        let usable = leading_only(a.shape())
            && leading_only(b.shape())
            && x.len().max(y.len()) == n
            && period > 0;
        usable.then_some(Periodic { x, y, period })
    }

    /// The two operands' elements for the `c`-th period of the output.
    #[inline(always)]
    fn chunk(&self, c: usize) -> (&'a [Elem], &'a [Elem]) {
        let part = |s: &'a [Elem]| {
            if s.len() == self.period {
                s
            } else {
                &s[c * self.period..(c + 1) * self.period]
            }
        };
        (part(self.x), part(self.y))
    }

    /// `Σ d(g, x, y)` for an operand of `shape`, summed over the periods it was repeated.
    fn partial(
        &self,
        tape: &Tape,
        g: &[Elem],
        shape: &[usize],
        d: &impl Fn(Elem, Elem, Elem) -> Elem,
    ) -> Tensor {
        let len: usize = shape.iter().product();
        let mut tensor = tape.zeros(shape);
        let out = tensor.as_slice_mut().expect("fresh tensor is contiguous");
        with_simd(
            #[inline(always)]
            || {
                for (c, g) in g.chunks_exact(self.period).enumerate() {
                    let (x, y) = self.chunk(c);
                    let o = if len == self.period {
                        &mut out[..]
                    } else {
                        &mut out[c * self.period..(c + 1) * self.period]
                    };
                    for (((o, &g), &x), &y) in o.iter_mut().zip(g).zip(x).zip(y) {
                        *o += d(g, x, y);
                    }
                }
            },
        );
        tensor
    }
}

impl<'t> Var<'t> {
    /// `e^x`, element-wise; `∂/∂x = e^x`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![0.0, 1.0], &[2])?);
    /// assert_eq!(x.exp().value().as_slice().unwrap(), &[1.0, std::f32::consts::E]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn exp(self) -> Var<'t> {
        self.map("exp", Elem::exp, |_, y| y)
    }

    /// The natural logarithm `ln x`, element-wise; `∂/∂x = 1/x`. `ln 0 = −∞` and a negative
    /// `x` gives NaN, as in IEEE arithmetic.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 100.0], &[2])?);
    /// let y = x.log().value();
    /// assert_eq!(y[[0]], 0.0);
    /// assert!((y[[1]] - 4.6051702).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn log(self) -> Var<'t> {
        self.map("log", Elem::ln, |x, _| 1.0 / x)
    }

    /// `x²`, element-wise; `∂/∂x = 2x`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![-3.0, 2.0], &[2])?);
    /// assert_eq!(x.square().value().as_slice().unwrap(), &[9.0, 4.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn square(self) -> Var<'t> {
        self.map("square", |x| x * x, |x, _| 2.0 * x)
    }

    /// `√x`, element-wise; `∂/∂x = 1/(2√x)` (infinite at 0).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![4.0, 9.0], &[2])?);
    /// assert_eq!(x.sqrt().value().as_slice().unwrap(), &[2.0, 3.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sqrt(self) -> Var<'t> {
        self.map("sqrt", Elem::sqrt, |_, y| 0.5 / y)
    }
}

/// `d(g, a, b)` for each element of the broadcast result.
fn partial_with(
    grad: &Tensor,
    a: &ArrayViewD<'_, Elem>,
    b: &ArrayViewD<'_, Elem>,
    d: &impl Fn(Elem, Elem, Elem) -> Elem,
) -> Tensor {
    Zip::from(grad)
        .and(a)
        .and(b)
        .map_collect(|&g, &a, &b| d(g, a, b))
}

/// `a + b`, broadcasting; `∂/∂a = 1`, `∂/∂b = 1`.
///
/// # Panics
/// If the shapes cannot be broadcast together (`add: shapes cannot be broadcast ...`).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
/// let bias = tape.constant(tensor::from_vec(vec![10.0, 20.0], &[2])?);
/// assert_eq!((x + bias).value().as_slice().unwrap(), &[11.0, 22.0, 13.0, 24.0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
impl<'t> Add for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn add(self, rhs: Var<'t>) -> Var<'t> {
        self.broadcast_binary(rhs, "add", |a, b| a + b, |g, _, _| g, |g, _, _| g)
    }
}

/// `a − b`, broadcasting; `∂/∂a = 1`, `∂/∂b = −1`.
///
/// # Panics
/// If the shapes cannot be broadcast together (`sub: ...`).
impl<'t> Sub for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn sub(self, rhs: Var<'t>) -> Var<'t> {
        self.broadcast_binary(rhs, "sub", |a, b| a - b, |g, _, _| g, |g, _, _| -g)
    }
}

/// `a ⊙ b` (element-wise), broadcasting; `∂/∂a = b`, `∂/∂b = a`.
///
/// # Panics
/// If the shapes cannot be broadcast together (`mul: ...`).
impl<'t> Mul for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn mul(self, rhs: Var<'t>) -> Var<'t> {
        self.broadcast_binary(rhs, "mul", |a, b| a * b, |g, _, b| g * b, |g, a, _| g * a)
    }
}

/// `a / b` (element-wise), broadcasting; `∂/∂a = 1/b`, `∂/∂b = −a/b²`.
///
/// # Panics
/// If the shapes cannot be broadcast together (`div: ...`).
impl<'t> Div for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn div(self, rhs: Var<'t>) -> Var<'t> {
        self.broadcast_binary(
            rhs,
            "div",
            |a, b| a / b,
            |g, _, b| g / b,
            |g, a, b| -g * a / (b * b),
        )
    }
}

/// `−x`; `∂/∂x = −1`.
impl<'t> Neg for Var<'t> {
    type Output = Var<'t>;
    fn neg(self) -> Var<'t> {
        self.map("neg", |x| -x, |_, _| -1.0)
    }
}

/// `x + c` for a scalar `c`; `∂/∂x = 1`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[2])?);
/// assert_eq!((x + 0.5).value().as_slice().unwrap(), &[1.5, 2.5]);
/// assert_eq!((1.0 - x).value().as_slice().unwrap(), &[0.0, -1.0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
impl<'t> Add<Elem> for Var<'t> {
    type Output = Var<'t>;
    fn add(self, c: Elem) -> Var<'t> {
        self.map("add_scalar", move |x| x + c, |_, _| 1.0)
    }
}

/// `x ⊙ c` for a scalar `c`; `∂/∂x = c`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, -2.0], &[2])?);
/// assert_eq!((x * 3.0).value().as_slice().unwrap(), &[3.0, -6.0]);
/// assert_eq!((x / 2.0).value().as_slice().unwrap(), &[0.5, -1.0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
impl<'t> Mul<Elem> for Var<'t> {
    type Output = Var<'t>;
    fn mul(self, c: Elem) -> Var<'t> {
        self.map("mul_scalar", move |x| x * c, move |_, _| c)
    }
}

/// `x − c`, recorded as `x + (−c)`.
impl<'t> Sub<Elem> for Var<'t> {
    type Output = Var<'t>;
    fn sub(self, c: Elem) -> Var<'t> {
        self + (-c)
    }
}

/// `x / c`, recorded as `x ⊙ (1/c)`.
impl<'t> Div<Elem> for Var<'t> {
    type Output = Var<'t>;
    fn div(self, c: Elem) -> Var<'t> {
        self * (1.0 / c)
    }
}

/// `c + x`, recorded as `x + c`.
impl<'t> Add<Var<'t>> for Elem {
    type Output = Var<'t>;
    fn add(self, x: Var<'t>) -> Var<'t> {
        x + self
    }
}

/// `c − x`, recorded as `(−x) + c`.
impl<'t> Sub<Var<'t>> for Elem {
    type Output = Var<'t>;
    fn sub(self, x: Var<'t>) -> Var<'t> {
        -x + self
    }
}

/// `c ⊙ x`, recorded as `x ⊙ c`.
impl<'t> Mul<Var<'t>> for Elem {
    type Output = Var<'t>;
    fn mul(self, x: Var<'t>) -> Var<'t> {
        x * self
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::autograd::gradcheck::testing::{positive, random};
    use crate::{Tape, gradcheck};

    #[test]
    fn forward_values_by_hand() {
        let tape = Tape::new();
        let a = tape.constant(t(&[2, 2], &[1., 2., 3., 4.]));
        let b = tape.constant(t(&[2], &[2., 4.]));
        assert_eq!((a + b).value(), t(&[2, 2], &[3., 6., 5., 8.]));
        assert_eq!((a - b).value(), t(&[2, 2], &[-1., -2., 1., 0.]));
        assert_eq!((a * b).value(), t(&[2, 2], &[2., 8., 6., 16.]));
        assert_eq!((a / b).value(), t(&[2, 2], &[0.5, 0.5, 1.5, 1.]));
        assert_eq!((b - a).value(), t(&[2, 2], &[1., 2., -1., 0.]));
        assert_eq!((-b).value(), t(&[2], &[-2., -4.]));
        assert_eq!((b + 1.0).value(), t(&[2], &[3., 5.]));
        assert_eq!((b - 1.0).value(), t(&[2], &[1., 3.]));
        assert_eq!((b * 0.5).value(), t(&[2], &[1., 2.]));
        assert_eq!((b / 4.0).value(), t(&[2], &[0.5, 1.]));
        assert_eq!((1.0 - b).value(), t(&[2], &[-1., -3.]));
        assert_eq!((2.0 * b + 1.0 + b).value(), t(&[2], &[7., 13.]));
    }

    #[test]
    fn hand_derived_gradients() {
        let tape = Tape::new();
        let a = tape.leaf(t(&[2], &[3., 4.]));
        let b = tape.leaf(t(&[], &[2.]));
        // L = Σ a/b - a·b: ∂L/∂a = 1/b - b = -1.5; ∂L/∂b = Σ (-a/b² - a) = -(3+4)/4 - 7 = -8.75
        let g = (a / b - a * b).sum().backward();
        assert_eq!(g.get(a).unwrap(), t(&[2], &[-1.5, -1.5]));
        assert_eq!(g.get(b).unwrap(), t(&[], &[-8.75]));
    }

    #[test]
    fn gradcheck_same_shape() {
        let (x, y) = (random(&[3, 4], 1), positive(&[3, 4], 2));
        let inputs = [x, y];
        gradcheck(|v| v[0] + v[1], &inputs).unwrap();
        gradcheck(|v| v[0] - v[1], &inputs).unwrap();
        gradcheck(|v| v[0] * v[1], &inputs).unwrap();
        gradcheck(|v| v[0] / v[1], &inputs).unwrap();
        gradcheck(|v| -v[0], &inputs).unwrap();
    }

    #[test]
    fn gradcheck_broadcast_both_ways() {
        for (lhs, rhs) in [
            (vec![4, 3], vec![3]),
            (vec![4, 3], vec![1, 3]),
            (vec![4, 3], vec![4, 1]),
            (vec![3], vec![4, 3]),
            (vec![4, 1], vec![1, 3]),
            (vec![], vec![2, 3]),
        ] {
            let inputs = [random(&lhs, 3), positive(&rhs, 4)];
            gradcheck(|v| v[0] + v[1], &inputs).unwrap();
            gradcheck(|v| v[0] - v[1], &inputs).unwrap();
            gradcheck(|v| v[0] * v[1], &inputs).unwrap();
            gradcheck(|v| v[0] / v[1], &inputs).unwrap();
        }
    }

    #[test]
    fn pointwise_functions_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(t(&[2], &[1., 4.]));
        assert_eq!(x.square().value(), t(&[2], &[1., 16.]));
        assert_eq!(x.sqrt().value(), t(&[2], &[1., 2.]));
        assert_eq!(x.log().value()[[0]], 0.0);
        // L = Σ √x + ln x: ∂L/∂x = 1/(2√x) + 1/x = [1.5, 0.5]
        let g = (x.sqrt() + x.log()).sum().backward();
        assert_eq!(g.get(x).unwrap(), t(&[2], &[1.5, 0.5]));
    }

    #[test]
    fn gradcheck_pointwise_functions() {
        for shape in [vec![3, 4], vec![1, 2], vec![]] {
            let x = [random(&shape, 8)];
            gradcheck(|v| v[0].exp(), &x).unwrap();
            gradcheck(|v| v[0].square(), &x).unwrap();
            let p = [positive(&shape, 9)];
            gradcheck(|v| v[0].log(), &p).unwrap();
            gradcheck(|v| v[0].sqrt(), &p).unwrap();
            gradcheck(|v| v[0].sqrt() * v[0].log() + v[0].exp(), &p).unwrap();
        }
    }

    #[test]
    fn gradcheck_scalar_ops_and_repeated_use() {
        let inputs = [random(&[2, 3], 5)];
        gradcheck(|v| v[0] * 3.0 + 1.0, &inputs).unwrap();
        gradcheck(|v| 2.0 - v[0] / 4.0, &inputs).unwrap();
        gradcheck(|v| v[0] * v[0] * v[0] + v[0], &inputs).unwrap();
        gradcheck(|v| v[0] / (v[0] * v[0] + 1.0), &inputs).unwrap();
        let batch_of_one = [random(&[1, 3], 6), random(&[3], 7)];
        gradcheck(|v| v[0] * v[1] + v[1], &batch_of_one).unwrap();
    }

    #[test]
    #[should_panic(
        expected = "add: shapes cannot be broadcast together; lhs shape [4, 3], rhs shape [2, 5]"
    )]
    fn add_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[4, 3], 0)) + tape.constant(random(&[2, 5], 0));
    }

    #[test]
    #[should_panic(
        expected = "mul: shapes cannot be broadcast together; lhs shape [3], rhs shape [4]"
    )]
    fn mul_mismatch_panics() {
        let tape = Tape::new();
        let _ = tape.constant(random(&[3], 0)) * tape.constant(random(&[4], 0));
    }

    #[test]
    #[should_panic(expected = "sub: operands are on different tapes")]
    fn operands_on_two_tapes_panic() {
        let (a, b) = (Tape::new(), Tape::new());
        let _ = a.constant(random(&[3], 0)) - b.constant(random(&[3], 0));
    }
}
