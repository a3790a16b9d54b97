//! A finite-difference gradient checker, public so that users who write their own ops can
//! test them the way this crate tests its own.

use crate::autograd::tape::{Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{self, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Settings of [`gradcheck_with`]. The defaults suit `f32`: `eps = 1e-3`, `tolerance = 1e-2`.
///
/// # Examples
/// ```
/// use tapegrad::GradcheckConfig;
/// let config = GradcheckConfig::default();
/// assert_eq!((config.eps, config.tolerance, config.seed), (1e-3, 1e-2, 0));
/// let other_weights = GradcheckConfig { seed: 7, ..config };
/// assert_ne!(other_weights, config);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckConfig {
    /// Half the width of the central difference.
    pub eps: f32,
    /// An element passes when `|a − n| ≤ tolerance · max(1, |a|, |n|)`.
    pub tolerance: f32,
    /// Seed of the random weights that reduce the output to a scalar.
    pub seed: u64,
}

impl Default for GradcheckConfig {
    fn default() -> Self {
        GradcheckConfig {
            eps: 1e-3,
            tolerance: 1e-2,
            seed: 0,
        }
    }
}

/// Checks the tape's gradients of `f` against central finite differences, with the default
/// [`GradcheckConfig`].
///
/// The output of `f` is reduced to a scalar with fixed random weights, `L = Σ w ⊙ f(x)`
/// (a plain sum would hide errors: the gradient of `softmax` summed is zero). Then for every
/// element `x_j` of every input the analytic `∂L/∂x_j` from [`Var::backward`] is compared
/// with the estimate `(L(x + ε e_j) − L(x − ε e_j)) / 2ε`.
///
/// Keep inputs away from points where `f` is not differentiable (relu at 0, ties of a max),
/// where the two legitimately differ, and of a size near 1: `ε` is absolute and `f` runs in
/// `f32` (PyTorch's `gradcheck` runs in `f64`), so at inputs of 1000 the rounding of `L`
/// swamps a difference over `2ε = 0.002` (scale the inputs down, or `ε` up with
/// [`gradcheck_with`]).
///
/// # Errors
/// [`Error::GradientMismatch`] for the first element outside the tolerance, naming the op
/// that produced the output, the input, the element and both values.
///
/// # Examples
/// ```
/// use tapegrad::{gradcheck, tensor, Error};
/// let x = tensor::from_vec(vec![0.5, -1.0, 2.0], &[3])?;
/// assert!(gradcheck(|v| v[0].tanh() * v[0], &[x]).is_ok());
/// // at relu's kink the estimate (ε − 0)/2ε = 0.5 differs from relu'(0) = 0
/// let err = gradcheck(|v| v[0].relu(), &[tensor::zeros(&[1])]).unwrap_err();
/// assert!(matches!(err, Error::GradientMismatch { element: 0, analytic: 0.0, .. }));
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor]) -> Result<()>
where
    F: for<'t> Fn(&[Var<'t>]) -> Var<'t>,
{
    gradcheck_with(&GradcheckConfig::default(), f, inputs)
}

/// [`gradcheck`] with chosen settings (loosen the tolerance only with a reason).
///
/// # Errors
/// [`Error::InvalidArgument`] unless `eps` is finite and `> 0` and `tolerance` finite and
/// `>= 0`; otherwise as [`gradcheck`].
///
/// # Examples
/// ```
/// use tapegrad::{gradcheck_with, tensor, GradcheckConfig};
/// let x = tensor::from_vec(vec![0.5], &[1])?;
/// // relu(x) is smooth within 1e-3 of 0.5, so the default ε agrees with backward
/// assert!(gradcheck_with(&GradcheckConfig::default(), |v| v[0].relu(), &[x.clone()]).is_ok());
/// // an ε of 1 steps over the kink at 0: the estimate (1.5 − 0)/2 = 0.75 is not 1
/// let wide = GradcheckConfig { eps: 1.0, ..GradcheckConfig::default() };
/// assert!(gradcheck_with(&wide, |v| v[0].relu(), &[x.clone()]).is_err());
/// let none = GradcheckConfig { eps: 0.0, ..GradcheckConfig::default() };
/// assert_eq!(
///     gradcheck_with(&none, |v| v[0].relu(), &[x]).unwrap_err().to_string(),
///     "gradcheck: eps must be finite and > 0, got 0"
/// );
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn gradcheck_with<F>(config: &GradcheckConfig, f: F, inputs: &[Tensor]) -> Result<()>
where
    F: for<'t> Fn(&[Var<'t>]) -> Var<'t>,
{
    let invalid = |message: String| {
        Err(Error::InvalidArgument {
            op: "gradcheck",
            message,
        })
    };
    if !(config.eps > 0.0 && config.eps.is_finite()) {
        return invalid(format!("eps must be finite and > 0, got {}", config.eps));
    }
    if !(config.tolerance >= 0.0 && config.tolerance.is_finite()) {
        return invalid(format!(
            "tolerance must be finite and >= 0, got {}",
            config.tolerance
        ));
    }
    let tape = Tape::new();
    let leaves: Vec<Var<'_>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let output = f(&leaves);
    let op = output.op();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let weights = tensor::normal(&output.shape(), 0.0, 1.0, &mut rng)?;
    let grads = (output * tape.constant(weights.clone())).sum().backward();

    let weighted_loss = |xs: &[Tensor]| -> f64 {
        let tape = Tape::inference();
        let vars: Vec<Var<'_>> = xs.iter().map(|x| tape.constant(x.clone())).collect();
        let y = f(&vars).value();
        y.iter()
            .zip(weights.iter())
            .map(|(&y, &w)| f64::from(y) * f64::from(w))
            .sum()
    };

    let mut probe: Vec<Tensor> = inputs
        .iter()
        .map(|x| x.as_standard_layout().into_owned())
        .collect();
    for (input, leaf) in leaves.iter().enumerate() {
        let analytic = grads
            .get(*leaf)
            .map(|g| g.as_standard_layout().into_owned())
            .unwrap_or_else(|| Tensor::zeros(inputs[input].raw_dim()));
        for element in 0..probe[input].len() {
            let original = probe[input].as_slice().expect("standard layout")[element];
            let mut at = |x: f32| {
                probe[input].as_slice_mut().expect("standard layout")[element] = x;
                weighted_loss(&probe)
            };
            let (plus, minus) = (at(original + config.eps), at(original - config.eps));
            at(original);
            let numeric = ((plus - minus) / (2.0 * f64::from(config.eps))) as f32;
            let analytic = analytic.as_slice().expect("standard layout")[element];
            let scale = 1f32.max(analytic.abs()).max(numeric.abs());
            let close = (analytic - numeric).abs() <= config.tolerance * scale;
            if !close {
                return Err(Error::GradientMismatch {
                    op,
                    input,
                    element,
                    analytic,
                    numeric,
                });
            }
        }
    }
    Ok(())
}

/// Seeded test inputs shared by the op tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::tensor::{self, Tensor};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Uniform values in `[-2, 2)`, drawn from `seed`.
    pub(crate) fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        tensor::uniform(shape, -2.0, 2.0, &mut rng).unwrap()
    }

    /// Like [`random`], but every element at least 0.1 away from 0 (the kink of relu, step,
    /// leaky relu and elu).
    pub(crate) fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
        random(shape, seed).mapv(|x| {
            if x.abs() < 0.1 {
                x.signum() * 0.1 + x
            } else {
                x
            }
        })
    }

    /// Values in `[0.5, 2.5)`: positive, for log, sqrt and divisors.
    pub(crate) fn positive(shape: &[usize], seed: u64) -> Tensor {
        random(shape, seed).mapv(|x| x * 0.5 + 1.5)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::random;
    use super::*;
    use crate::autograd::tape::Backward;

    #[test]
    fn accepts_a_correct_gradient() {
        gradcheck(
            |v| v[0] * v[1] + v[0].exp(),
            &[random(&[3, 2], 1), random(&[3, 2], 2)],
        )
        .unwrap();
    }

    #[test]
    fn reports_a_wrong_gradient_with_op_input_and_element() {
        // An op whose backward rule claims d(x³)/dx = x² instead of 3x².
        fn wrong_cube<'t>(v: &[Var<'t>]) -> Var<'t> {
            let value = v[0].data().mapv(|x| x * x * x);
            v[0].tape()
                .record("wrong_cube", &[v[0]], value, |b: &Backward<'_>| {
                    [Some(b.grad * &b.inputs[0].mapv(|x| x * x)), None]
                })
        }
        let x = tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let err = gradcheck(wrong_cube, &[x]).unwrap_err();
        match err {
            Error::GradientMismatch {
                op,
                input,
                element,
                analytic,
                numeric,
            } => {
                assert_eq!((op, input, element), ("wrong_cube", 0, 0));
                assert!(
                    (numeric / analytic - 3.0).abs() < 0.01,
                    "{analytic} {numeric}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
}
