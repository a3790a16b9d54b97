//! Weight initializers, as `torch.nn.init` defines them: [`Init`] (constant, uniform, normal,
//! Xavier/Glorot, He/Kaiming, orthogonal), PyTorch's fan rule [`fans`] and its recommended
//! [`gain`]. The data-driven LSUV init of a whole model is in `lsuv.rs`.
//!
//! Fans follow PyTorch's `_calculate_fan_in_and_fan_out`: for a weight `[out, in, k…]`,
//! `fan_in = in·∏k` and `fan_out = out·∏k`; for a [`Linear`](crate::Linear) weight `[out, in]`
//! that is `fan_in = in`, `fan_out = out`.

use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::param::Param;
use crate::tensor::{self, Elem, Tensor};
use ndarray::IxDyn;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Which fan a He/Kaiming initializer scales by (`mode=` in `torch.nn.init.kaiming_*_`).
///
/// `FanIn` keeps the variance of the activations constant in the forward pass; `FanOut`
/// keeps the variance of the gradients constant in the backward pass (He et al. 2015, §2.2).
///
/// # Examples
/// ```
/// use tapegrad::{Activation, ChaCha8Rng, FanMode, Init, Linear, SeedableRng};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let he = |mode| Init::KaimingUniform { mode, activation: Activation::Relu };
/// // a weight [out = 2, in = 8]: a = √2·√(3/fan) is √(6/8) by fan_in, √(6/2) by fan_out
/// let by_in = Linear::new(8, 2, he(FanMode::FanIn), &mut rng)?;
/// let by_out = Linear::new(8, 2, he(FanMode::FanOut), &mut rng)?;
/// assert!(by_in.weight().value().iter().all(|w| w.abs() <= (6.0f32 / 8.0).sqrt()));
/// assert!(by_out.weight().value().iter().all(|w| w.abs() <= (6.0f32 / 2.0).sqrt()));
/// assert!(by_out.weight().value().iter().any(|w| w.abs() > (6.0f32 / 8.0).sqrt()));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    /// Scale by the number of inputs of a unit (PyTorch's default).
    FanIn,
    /// Scale by the number of outputs a unit feeds.
    FanOut,
}

/// How to draw a weight (or bias) tensor. Small and serde-able, so it fits in a config.
///
/// Every variant is drawn by [`Init::sample`] from the caller's seeded generator, with the
/// exact bounds and standard deviations of `torch.nn.init`, the fans from the weight's shape
/// ([`fans`]). One difference: a grouped [`Conv2d`](crate::Conv2d) counts the outputs one
/// input really feeds ([`fans_grouped`]: `fan_out = (out/groups)·∏k`), where PyTorch counts
/// `out·∏k`; so Xavier and Kaiming's `fan_out` mode on a grouped convolution draw wider
/// (`fan_in`, which PyTorch's default and Kaiming's default mode use, is the same).
///
/// | variant | distribution |
/// |---|---|
/// | `Constant { value }` | every element `value` |
/// | `Uniform { low, high }` | `U(low, high)` |
/// | `Normal { mean, std }` | `N(mean, std²)` |
/// | `XavierUniform { gain }` | `U(−a, a)`, `a = gain·√(6/(fan_in + fan_out))` |
/// | `XavierNormal { gain }` | `N(0, σ²)`, `σ = gain·√(2/(fan_in + fan_out))` |
/// | `KaimingUniform { mode, activation }` | `U(−a, a)`, `a = gain(activation)·√(3/fan)` |
/// | `KaimingNormal { mode, activation }` | `N(0, σ²)`, `σ = gain(activation)/√fan` |
/// | `Orthogonal { gain }` | `gain·Q`, `Q` Haar-random with orthonormal rows or columns |
///
/// where `fan` is `fan_in` or `fan_out` as `mode` says.
///
/// - **Constant**: zeros are the usual bias init. For *weights* a constant is allowed but
///   almost never what you want: every unit of the layer then computes the same output and
///   receives the same gradient, so the units stay identical copies of each other forever —
///   gradient descent never breaks this symmetry, and the layer is as useful as one unit.
///   Random initializers exist to break it.
/// - **Xavier/Glorot** (Glorot & Bengio 2010,
///   <https://proceedings.mlr.press/v9/glorot10a.html>): `Var(W) = gain²·2/(fan_in + fan_out)`,
///   the compromise between keeping the forward (`fan_in·Var(W) = 1`) and the backward
///   (`fan_out·Var(W) = 1`) variance; for tanh and sigmoid nets.
/// - **He/Kaiming/MSRA** (He et al. 2015, <https://arxiv.org/abs/1502.01852>):
///   `Var(W) = gain²/fan`; with ReLU's gain `√2` that is `2/fan_in`, which keeps the
///   variance of ReLU activations constant layer by layer. The gain comes from
///   [`gain`]`(activation)`; PyTorch's default `kaiming_*_(a=0, nonlinearity='leaky_relu')`
///   is `activation: Activation::LeakyRelu { slope: 0.0 }`.
/// - **Orthogonal** (Saxe et al. 2013, <https://arxiv.org/abs/1312.6120>): the weight viewed
///   as a `rows × cols` matrix (`rows = shape[0]`, `cols` the product of the other axes: a
///   [`Conv2d`](crate::Conv2d) weight `[out, in, kh, kw]` is read as `[out, in·kh·kw]`, as
///   PyTorch's `orthogonal_` flattens it) has orthonormal rows (if `rows ≤ cols`) or
///   columns, times `gain`. It is the `Q` of a QR decomposition of a standard normal matrix,
///   with `Q`'s columns signed so that `diag(R) > 0`, which makes `Q` uniformly (Haar)
///   distributed (Mezzadri 2007, <https://arxiv.org/abs/math-ph/0609050>). Fans are unused.
///
/// [`Init::default`] is PyTorch's `nn.Linear` and `nn.Conv2d` weight init,
/// `kaiming_uniform_(a=√5)`, which works out to `U(−1/√fan_in, 1/√fan_in)`.
///
/// # Examples
/// ```
/// use tapegrad::{ChaCha8Rng, FanMode, Activation, Init, SeedableRng};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// // He-normal for a ReLU layer with 256 inputs: σ = √2/√256 = 0.0884
/// let he = Init::KaimingNormal { mode: FanMode::FanIn, activation: Activation::Relu };
/// let w = he.sample(&[256, 256], 256, 256, &mut rng)?;
/// assert!((w.std(0.0) - 0.0884).abs() < 0.002);
/// // Xavier-uniform: a = √(6/(100 + 300)) = 0.1225
/// let w = Init::XavierUniform { gain: 1.0 }.sample(&[300, 100], 100, 300, &mut rng)?;
/// assert!(w.iter().all(|x| x.abs() <= 0.1225));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Every element equal to `value` (`nn.init.constant_`, `zeros_`, `ones_`).
    Constant {
        /// The value.
        value: Elem,
    },
    /// `U(low, high)` (`nn.init.uniform_`).
    Uniform {
        /// Lower bound (inclusive).
        low: Elem,
        /// Upper bound (exclusive).
        high: Elem,
    },
    /// `N(mean, std²)` (`nn.init.normal_`).
    Normal {
        /// The mean.
        mean: Elem,
        /// The standard deviation, `>= 0`.
        std: Elem,
    },
    /// `U(−a, a)` with `a = gain·√(6/(fan_in + fan_out))` (`nn.init.xavier_uniform_`).
    XavierUniform {
        /// Scale factor, e.g. [`gain`]`(Activation::Tanh)`.
        gain: Elem,
    },
    /// `N(0, σ²)` with `σ = gain·√(2/(fan_in + fan_out))` (`nn.init.xavier_normal_`).
    XavierNormal {
        /// Scale factor, e.g. [`gain`]`(Activation::Tanh)`.
        gain: Elem,
    },
    /// `U(−a, a)` with `a = gain(activation)·√(3/fan)` (`nn.init.kaiming_uniform_`).
    KaimingUniform {
        /// Whether `fan` is `fan_in` or `fan_out`.
        mode: FanMode,
        /// The nonlinearity that follows the layer; it sets the gain.
        activation: Activation,
    },
    /// `N(0, σ²)` with `σ = gain(activation)/√fan` (`nn.init.kaiming_normal_`).
    KaimingNormal {
        /// Whether `fan` is `fan_in` or `fan_out`.
        mode: FanMode,
        /// The nonlinearity that follows the layer; it sets the gain.
        activation: Activation,
    },
    /// `gain·Q` with `Q` a Haar-random matrix with orthonormal rows or columns
    /// (`nn.init.orthogonal_`).
    Orthogonal {
        /// Scale factor.
        gain: Elem,
    },
}

impl Default for Init {
    /// PyTorch's `nn.Linear` weight init: `kaiming_uniform_(a=√5)`, whose gain is
    /// `√(2/(1 + 5)) = 1/√3`, so the bound is `√3·(1/√3)/√fan_in = 1/√fan_in`.
    fn default() -> Self {
        Init::KaimingUniform {
            mode: FanMode::FanIn,
            activation: Activation::LeakyRelu { slope: 5f32.sqrt() },
        }
    }
}

impl Init {
    /// Draws a tensor of `shape` from this initializer, with the given fans (see [`fans`]
    /// for PyTorch's rule), using `rng`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a parameter is out of range (a non-finite gain or
    /// value, `low >= high`, a negative `std`), when the fan a formula divides by is 0, when
    /// [`gain`] has no value for the activation, or when `Orthogonal` gets fewer than 2 axes;
    /// [`Error::Shape`] for a shape of more elements than an array can hold (`isize::MAX`)
    /// or this machine can allocate (a `Linear` of `2²⁰ × 2²⁰` weights, 4 TiB: PyTorch raises
    /// "can't allocate memory", where an allocation that fails would abort a Rust process).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{fans, ChaCha8Rng, Init, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let shape = [64, 32];
    /// let (fan_in, fan_out) = fans(&shape)?;
    /// let b = Init::Constant { value: 0.0 }.sample(&[64], fan_in, fan_out, &mut rng)?;
    /// assert_eq!(b.sum(), 0.0);
    /// let w = Init::Orthogonal { gain: 1.0 }.sample(&shape, fan_in, fan_out, &mut rng)?;
    /// let wtw = w.clone().into_dimensionality::<tapegrad::ndarray::Ix2>().unwrap();
    /// let wtw = wtw.t().dot(&wtw); // 32 × 32: the columns are orthonormal
    /// assert!((wtw[[3, 3]] - 1.0).abs() < 1e-5 && wtw[[3, 4]].abs() < 1e-5);
    /// assert!(Init::Normal { mean: 0.0, std: -1.0 }.sample(&shape, 32, 64, &mut rng).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sample<R: Rng + ?Sized>(
        &self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Result<Tensor> {
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if elements.is_none_or(|n| n > isize::MAX as usize) {
            return Err(Error::Shape {
                op: "init::sample",
                expected: format!("a shape of at most {} elements", isize::MAX),
                found: format!("{shape:?}"),
            });
        }
        // ask for the memory first, so that too much is an error rather than an abort
        let elements = elements.unwrap_or(0);
        if Vec::<Elem>::new().try_reserve_exact(elements).is_err() {
            return Err(Error::Shape {
                op: "init::sample",
                expected: "a shape whose elements this machine can allocate".into(),
                found: format!(
                    "{shape:?}: {elements} elements, {} bytes",
                    elements as u128 * std::mem::size_of::<Elem>() as u128
                ),
            });
        }
        match *self {
            Init::Constant { value } => {
                finite("init::constant", "value", value)?;
                Ok(tensor::full(shape, value))
            }
            Init::Uniform { low, high } => tensor::uniform(shape, low, high, rng),
            Init::Normal { mean, std } => tensor::normal(shape, mean, std, rng),
            Init::XavierUniform { gain } => {
                let std = xavier_std("init::xavier_uniform", gain, fan_in, fan_out)?;
                symmetric_uniform(shape, 3f32.sqrt() * std, rng)
            }
            Init::XavierNormal { gain } => {
                let std = xavier_std("init::xavier_normal", gain, fan_in, fan_out)?;
                tensor::normal(shape, 0.0, std, rng)
            }
            Init::KaimingUniform { mode, activation } => {
                let std = kaiming_std("init::kaiming_uniform", mode, activation, fan_in, fan_out)?;
                symmetric_uniform(shape, 3f32.sqrt() * std, rng)
            }
            Init::KaimingNormal { mode, activation } => {
                let std = kaiming_std("init::kaiming_normal", mode, activation, fan_in, fan_out)?;
                tensor::normal(shape, 0.0, std, rng)
            }
            Init::Orthogonal { gain } => orthogonal(shape, gain, rng),
        }
    }
}

/// PyTorch's default bias of `Linear` and `Conv2d` (`reset_parameters`): `len` values from
/// `U(−1/√fan_in, 1/√fan_in)`, as a [`Role::Bias`](crate::Role) parameter.
pub(crate) fn default_bias<R: Rng + ?Sized>(
    len: usize,
    fan_in: usize,
    fan_out: usize,
    rng: &mut R,
) -> Result<Param> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let bias = Init::Uniform {
        low: -bound,
        high: bound,
    }
    .sample(&[len], fan_in, fan_out, rng)?;
    Ok(Param::bias(bias))
}

/// PyTorch's fans of a weight `[out, in, k…]`: `fan_in = in·∏k`, `fan_out = out·∏k`
/// (`torch.nn.init._calculate_fan_in_and_fan_out`). For a [`Linear`](crate::Linear) weight
/// `[out, in]`: `(in, out)`; for a [`Conv2d`](crate::Conv2d) weight `[out, in, kh, kw]`:
/// `(in·kh·kw, out·kh·kw)` (with groups, see [`fans_grouped`]).
///
/// # Errors
/// [`Error::Shape`] for fewer than 2 axes (a bias has no fans), as PyTorch's `ValueError`,
/// or a shape of more elements than an array can hold (`isize::MAX`; PyTorch: "Storage
/// size calculation overflowed").
///
/// # Examples
/// ```
/// assert_eq!(tapegrad::fans(&[10, 3])?, (3, 10));
/// assert_eq!(tapegrad::fans(&[16, 8, 3, 3])?, (72, 144));
/// assert!(tapegrad::fans(&[10]).is_err());
/// assert!(tapegrad::fans(&[4, 4, 1 << 32, 1 << 32]).is_err()); // no array that large
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    let product = |sides: &[usize]| sides.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let fans = match shape {
        [out, input, kernel @ ..] => product(kernel)
            .zip(product(shape).filter(|&n| n <= isize::MAX as usize))
            .and_then(|(receptive, _)| {
                input.checked_mul(receptive).zip(out.checked_mul(receptive))
            }),
        _ => None,
    };
    fans.ok_or_else(|| Error::Shape {
        op: "init::fans",
        expected: format!(
            "a weight with at least 2 axes and at most {} elements",
            isize::MAX
        ),
        found: format!("shape {shape:?}"),
    })
}

/// The fans of a grouped convolution's weight `[out, in/groups, k…]`: `fan_in = (in/groups)·∏k`
/// (the inputs one output unit sums) and `fan_out = (out/groups)·∏k` (the outputs one input
/// unit feeds). [`Conv2d`](crate::Conv2d) draws its weight with these.
///
/// With `groups = 1` this is [`fans`]. PyTorch's `_calculate_fan_in_and_fan_out` sees only
/// the shape, so for `groups > 1` it counts `fan_out = out·∏k`, `groups` times the outputs an
/// input really feeds; `fan_in` (which PyTorch's default init and Kaiming's `fan_in` mode
/// use) is the same in both.
///
/// # Errors
/// [`Error::Shape`] for fewer than 2 axes; [`Error::InvalidArgument`] when `groups` is 0 or
/// does not divide `out`.
///
/// # Examples
/// ```
/// use tapegrad::fans_grouped;
/// // Conv2d(32, 64, 3): weight [64, 32, 3, 3]
/// assert_eq!(fans_grouped(&[64, 32, 3, 3], 1)?, (288, 576));
/// // depthwise Conv2d(32, 32, 3, groups=32): weight [32, 1, 3, 3], each input feeds 9 outputs
/// assert_eq!(fans_grouped(&[32, 1, 3, 3], 32)?, (9, 9));
/// assert!(fans_grouped(&[32, 1, 3, 3], 5).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn fans_grouped(shape: &[usize], groups: usize) -> Result<(usize, usize)> {
    let (fan_in, fan_out) = fans(shape)?;
    if groups == 0 || !shape[0].is_multiple_of(groups) {
        return Err(Error::InvalidArgument {
            op: "init::fans_grouped",
            message: format!(
                "groups {groups} must divide the weight's first axis; shape {shape:?}"
            ),
        });
    }
    Ok((fan_in, fan_out / groups))
}

/// PyTorch's recommended gain for a nonlinearity (`torch.nn.init.calculate_gain`): the
/// factor that keeps the variance of activations steady through it.
///
/// | activation | gain |
/// |---|---|
/// | identity, sigmoid | 1 |
/// | tanh | 5/3 |
/// | relu | √2 |
/// | leaky relu, slope `s` | `√(2/(1 + s²))` |
///
/// # Errors
/// [`Error::InvalidArgument`] for step and ELU, for which PyTorch has no gain either (its
/// `calculate_gain` raises `ValueError`), and for a non-finite slope.
///
/// # Examples
/// ```
/// use tapegrad::{gain, Activation};
/// assert_eq!(gain(Activation::Tanh)?, 5.0 / 3.0);
/// assert_eq!(gain(Activation::Relu)?, 2f32.sqrt());
/// assert!((gain(Activation::LeakyRelu { slope: 0.01 })? - 1.41414).abs() < 1e-5);
/// assert!(gain(Activation::Elu { alpha: 1.0 }).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn gain(activation: Activation) -> Result<Elem> {
    match activation {
        Activation::Identity | Activation::Sigmoid => Ok(1.0),
        Activation::Tanh => Ok(5.0 / 3.0),
        Activation::Relu => Ok(2f32.sqrt()),
        Activation::LeakyRelu { slope } => {
            finite("gain", "slope", slope)?;
            Ok((2.0 / (1.0 + slope * slope)).sqrt())
        }
        Activation::Step | Activation::Elu { .. } => Err(Error::InvalidArgument {
            op: "gain",
            message: format!(
                "no recommended gain for {activation} (PyTorch's calculate_gain has none either)"
            ),
        }),
    }
}

fn finite(op: &'static str, what: &str, value: Elem) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            message: format!("{what} must be finite, got {value}"),
        })
    }
}

fn positive_fan(op: &'static str, what: &str, fan: usize) -> Result<Elem> {
    if fan == 0 {
        return Err(Error::InvalidArgument {
            op,
            message: format!("{what} must be positive, got 0"),
        });
    }
    Ok(fan as Elem)
}

fn xavier_std(op: &'static str, gain: Elem, fan_in: usize, fan_out: usize) -> Result<Elem> {
    finite(op, "gain", gain)?;
    let fans = positive_fan(op, "fan_in + fan_out", fan_in + fan_out)?;
    Ok(gain.abs() * (2.0 / fans).sqrt())
}

fn kaiming_std(
    op: &'static str,
    mode: FanMode,
    activation: Activation,
    fan_in: usize,
    fan_out: usize,
) -> Result<Elem> {
    let fan = match mode {
        FanMode::FanIn => positive_fan(op, "fan_in", fan_in)?,
        FanMode::FanOut => positive_fan(op, "fan_out", fan_out)?,
    };
    Ok(gain(activation)? / fan.sqrt())
}

/// `U(−bound, bound)`; all zeros when `bound` is 0 (a zero gain).
fn symmetric_uniform<R: Rng + ?Sized>(shape: &[usize], bound: Elem, rng: &mut R) -> Result<Tensor> {
    if bound == 0.0 {
        return Ok(tensor::zeros(shape));
    }
    tensor::uniform(shape, -bound, bound, rng)
}

/// `gain·Q`: see [`Init::Orthogonal`]. The QR decomposition is a modified Gram–Schmidt in
/// `f64`, run twice per column ("twice is enough") so `Q` stays orthonormal to rounding
/// error even for ill-conditioned draws. Gram–Schmidt makes `R`'s diagonal the (positive)
/// norms, which is exactly the sign correction `Q·diag(sign(diag(R)))` of PyTorch's
/// `orthogonal_`.
fn orthogonal<R: Rng + ?Sized>(shape: &[usize], gain: Elem, rng: &mut R) -> Result<Tensor> {
    finite("init::orthogonal", "gain", gain)?;
    if shape.len() < 2 {
        return Err(Error::InvalidArgument {
            op: "init::orthogonal",
            message: format!("needs a weight with at least 2 axes, got shape {shape:?}"),
        });
    }
    let rows = shape[0];
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return Ok(tensor::zeros(shape));
    }
    let cols = numel / rows;
    // Draw rows × cols in row-major order, as PyTorch does, then factor the tall one of it
    // and its transpose: an m × n matrix with m >= n, stored as n columns of length m.
    let flat: Vec<f64> = (0..numel).map(|_| StandardNormal.sample(rng)).collect();
    let transposed = rows < cols;
    let (m, n) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            (0..m)
                .map(|i| {
                    if transposed {
                        flat[j * cols + i]
                    } else {
                        flat[i * cols + j]
                    }
                })
                .collect()
        })
        .collect();
    for j in 0..n {
        let (done, rest) = q.split_at_mut(j);
        let v = &mut rest[0];
        for _pass in 0..2 {
            for qi in done.iter() {
                let r: f64 = qi.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(qi).for_each(|(x, a)| *x -= r * a);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    let g = f64::from(gain);
    let values = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .map(|(r, c)| {
            let x = if transposed { q[r][c] } else { q[c][r] };
            (g * x) as Elem
        })
        .collect();
    Ok(Tensor::from_shape_vec(IxDyn(shape), values).expect("internal error: orthogonal shape"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::lsuv::variance;
    use crate::{ChaCha8Rng, Linear, Mode, Module, SeedableRng, Tanh, Tape};
    use ndarray::Ix2;

    const N: usize = 512;

    #[test]
    fn layers_too_large_for_any_array_are_errors_not_panics_or_wrapped_fans() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let huge = 1usize << 31;
        let options = crate::ConvTranspose2dOptions::default();
        let errors = [
            crate::ConvTranspose2d::new(3, 3, [huge, huge], options, Init::default(), &mut rng)
                .map(drop),
            crate::ConvTranspose2d::new(
                1,
                1,
                [huge * 2, huge * 2],
                options,
                Init::default(),
                &mut rng,
            )
            .map(drop),
            crate::Conv2d::new(
                3,
                3,
                [huge, huge],
                crate::Conv2dOptions::default(),
                Init::default(),
                &mut rng,
            )
            .map(drop),
            Linear::new(1 << 40, 1 << 40, Init::default(), &mut rng).map(drop),
        ];
        for err in errors {
            let err = err.unwrap_err().to_string();
            assert!(
                err.contains(&format!("at most {} elements", isize::MAX)),
                "{err}"
            );
        }
    }

    #[test]
    fn layers_too_large_for_memory_are_errors_not_aborts() {
        // 2^46 weights, 256 TiB, beyond a 48-bit address space whatever the overcommit
        // setting: the allocation fails, which would abort the process
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let err = Linear::new(1 << 23, 1 << 23, Init::default(), &mut rng).unwrap_err();
        assert_eq!(
            err.to_string(),
            "init::sample: expected a shape whose elements this machine can allocate, found \
             [8388608, 8388608]: 70368744177664 elements, 281474976710656 bytes"
        );
    }

    /// Empirical mean and standard deviation of a 512 × 512 draw, in `f64`.
    fn moments(init: Init, seed: u64) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w = init.sample(&[N, N], N, N, &mut rng).unwrap();
        let n = w.len() as f64;
        let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        (mean, variance(&w).sqrt())
    }

    #[test]
    fn initializers_on_conv_weights_use_the_grouped_fans() {
        // Conv2d(64, 128, 3, groups=2): weight [128, 32, 3, 3], fan_in 288, fan_out 576
        let shape = [128, 32, 3, 3];
        let (fan_in, fan_out) = fans_grouped(&shape, 2).unwrap();
        assert_eq!((fan_in, fan_out), (288, 576));
        assert_eq!(
            fans(&shape).unwrap(),
            (288, 1152),
            "PyTorch's shape-only rule"
        );
        let relu = Activation::Relu;
        let cases = [
            (Init::XavierNormal { gain: 1.0 }, (2.0 / 864f64).sqrt()),
            (Init::XavierUniform { gain: 1.0 }, (2.0 / 864f64).sqrt()),
            (
                Init::KaimingNormal {
                    mode: FanMode::FanIn,
                    activation: relu,
                },
                (2.0 / 288f64).sqrt(),
            ),
            (
                Init::KaimingUniform {
                    mode: FanMode::FanOut,
                    activation: relu,
                },
                (2.0 / 576f64).sqrt(),
            ),
            (Init::default(), (1.0 / 3.0 / 288f64).sqrt()),
        ];
        for (seed, (init, std)) in cases.into_iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
            let w = init.sample(&shape, fan_in, fan_out, &mut rng).unwrap();
            assert_eq!(w.shape(), shape);
            let found = variance(&w).sqrt();
            assert!(
                (found / std - 1.0).abs() < 0.02,
                "{init:?}: std {found}, expected {std}"
            );
        }
        // orthogonal: the weight read as [128, 288] has orthonormal rows
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let w = Init::Orthogonal { gain: 1.0 }
            .sample(&shape, fan_in, fan_out, &mut rng)
            .unwrap();
        let m = w.into_shape_with_order((128, 288)).unwrap();
        let gram = m.dot(&m.t());
        let off = gram
            .indexed_iter()
            .map(|((i, j), &g)| (g - f32::from(i == j)).abs());
        assert!(off.fold(0.0, f32::max) < 1e-4);
    }

    #[test]
    fn every_initializer_matches_its_formula_on_a_512_square() {
        let s6 = 6f64.sqrt();
        let fan = N as f64;
        let relu = Activation::Relu;
        let leaky = Activation::LeakyRelu { slope: 0.2 };
        // (initializer, expected mean, expected std by the formula)
        let cases = [
            (
                Init::Uniform {
                    low: -0.5,
                    high: 1.5,
                },
                0.5,
                2.0 / 12f64.sqrt(),
            ),
            (
                Init::Normal {
                    mean: 0.3,
                    std: 0.02,
                },
                0.3,
                0.02,
            ),
            // Var(U(-a, a)) = a²/3 with a = gain·√6/√(fan_in + fan_out)
            (
                Init::XavierUniform { gain: 1.0 },
                0.0,
                s6 / (2.0 * fan).sqrt() / 3f64.sqrt(),
            ),
            (
                Init::XavierNormal { gain: 5.0 / 3.0 },
                0.0,
                5.0 / 3.0 * (2.0 / (2.0 * fan)).sqrt(),
            ),
            (
                Init::KaimingUniform {
                    mode: FanMode::FanIn,
                    activation: relu,
                },
                0.0,
                (2.0 / fan).sqrt(),
            ),
            (
                Init::KaimingNormal {
                    mode: FanMode::FanOut,
                    activation: leaky,
                },
                0.0,
                (2.0 / (1.0 + 0.04) / fan).sqrt(),
            ),
            (Init::default(), 0.0, 1.0 / (3.0 * fan).sqrt()),
            (Init::Orthogonal { gain: 2.0 }, 0.0, 2.0 / fan.sqrt()),
        ];
        for (i, (init, mean, std)) in cases.into_iter().enumerate() {
            let (m, s) = moments(init, i as u64);
            assert!(
                (m - mean).abs() <= 0.03 * std,
                "{init:?}: mean {m}, expected {mean}"
            );
            assert!(
                (s / std - 1.0).abs() <= 0.03,
                "{init:?}: std {s}, expected {std}"
            );
        }
        let (m, s) = moments(Init::Constant { value: 0.25 }, 0);
        assert_eq!((m, s), (0.25, 0.0));
    }

    #[test]
    fn uniform_bounds_are_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Xavier: a = √(6/(100 + 50)) = 0.2; He-uniform, relu, fan_out 50: a = √2·√(3/50)
        let w = Init::XavierUniform { gain: 1.0 }
            .sample(&[50, 100], 100, 50, &mut rng)
            .unwrap();
        assert!(w.iter().all(|x| x.abs() <= 0.2) && w.iter().any(|x| x.abs() > 0.19));
        let he = Init::KaimingUniform {
            mode: FanMode::FanOut,
            activation: Activation::Relu,
        };
        let w = he.sample(&[50, 100], 100, 50, &mut rng).unwrap();
        let a = 2f32.sqrt() * (3.0f32 / 50.0).sqrt();
        assert!(w.iter().all(|x| x.abs() <= a) && w.iter().any(|x| x.abs() > 0.95 * a));
    }

    #[test]
    fn orthogonal_gives_orthonormal_rows_or_columns() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (rows, cols) in [(N, N), (64, 200), (200, 64)] {
            let w = Init::Orthogonal { gain: 1.0 }
                .sample(&[rows, cols], cols, rows, &mut rng)
                .unwrap()
                .into_dimensionality::<Ix2>()
                .unwrap();
            // WᵀW = I for a tall (or square) W, WWᵀ = I for a wide one
            let gram = if rows >= cols {
                w.t().dot(&w)
            } else {
                w.dot(&w.t())
            };
            let worst = gram
                .indexed_iter()
                .map(|((i, j), &g)| (g - if i == j { 1.0 } else { 0.0 }).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-4, "{rows}x{cols}: max |G - I| = {worst}");
        }
        let w = Init::Orthogonal { gain: 3.0 }
            .sample(&[4, 2, 3], 6, 12, &mut rng)
            .unwrap();
        let flat = w.into_shape_with_order((4, 6)).unwrap();
        let gram = flat.dot(&flat.t());
        assert!((gram[[1, 1]] - 9.0).abs() < 1e-4 && gram[[0, 1]].abs() < 1e-4);
    }

    #[test]
    fn fans_and_gains_follow_pytorch() {
        assert_eq!(fans(&[300, 100]).unwrap(), (100, 300));
        assert_eq!(fans(&[8, 4, 3, 3]).unwrap(), (36, 72));
        assert!(fans(&[7]).is_err());
        assert_eq!(gain(Activation::Identity).unwrap(), 1.0);
        assert_eq!(gain(Activation::Sigmoid).unwrap(), 1.0);
        assert_eq!(gain(Activation::Tanh).unwrap(), 5.0 / 3.0);
        assert_eq!(gain(Activation::Relu).unwrap(), 2f32.sqrt());
        let vlrelu = gain(Activation::LeakyRelu { slope: 1.0 / 3.0 }).unwrap();
        assert!((vlrelu - 1.8f32.sqrt()).abs() < 1e-6);
        // the default Linear init is kaiming_uniform(a = √5): gain 1/√3
        let Init::KaimingUniform { activation, .. } = Init::default() else {
            panic!("default is kaiming uniform")
        };
        assert!((gain(activation).unwrap() - 1.0 / 3f32.sqrt()).abs() < 1e-6);
        assert_eq!(
            gain(Activation::Step).unwrap_err().to_string(),
            "gain: no recommended gain for step (PyTorch's calculate_gain has none either)"
        );
    }

    #[test]
    fn init_round_trips_through_serde() {
        let config = bincode::config::standard();
        let inits = [
            Init::default(),
            Init::Constant { value: 0.0 },
            Init::XavierNormal { gain: 5.0 / 3.0 },
            Init::KaimingNormal {
                mode: FanMode::FanOut,
                activation: Activation::Relu,
            },
            Init::Orthogonal { gain: 1.0 },
        ];
        for init in inits {
            let bytes = bincode::serde::encode_to_vec(init, config).unwrap();
            let back: Init = bincode::serde::decode_from_slice(&bytes, config).unwrap().0;
            assert_eq!(back, init);
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut sample = |init: Init| init.sample(&[4, 3], 3, 4, &mut rng);
        assert!(sample(Init::Constant { value: f32::NAN }).is_err());
        assert!(
            sample(Init::Uniform {
                low: 1.0,
                high: 0.0
            })
            .is_err()
        );
        assert!(
            sample(Init::XavierNormal {
                gain: f32::INFINITY
            })
            .is_err()
        );
        let elu = Activation::Elu { alpha: 1.0 };
        assert!(
            sample(Init::KaimingNormal {
                mode: FanMode::FanIn,
                activation: elu
            })
            .is_err()
        );
        let he = Init::KaimingNormal {
            mode: FanMode::FanIn,
            activation: Activation::Relu,
        };
        assert_eq!(
            he.sample(&[4, 0], 0, 4, &mut rng).unwrap_err().to_string(),
            "init::kaiming_normal: fan_in must be positive, got 0"
        );
        assert!(
            Init::Orthogonal { gain: 1.0 }
                .sample(&[5], 5, 5, &mut rng)
                .is_err()
        );
        // a zero gain is allowed and gives zeros
        let z = Init::XavierUniform { gain: 0.0 }
            .sample(&[2, 2], 2, 2, &mut rng)
            .unwrap();
        assert_eq!(z.sum(), 0.0);
    }

    #[test]
    fn constant_weights_never_break_symmetry() {
        // A 2-4-1 tanh net whose hidden weights are all equal: every hidden unit gets the
        // same gradient, so after training the four rows of W₁ are still identical.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let constant = Init::Constant { value: 0.5 };
        let mut hidden = Linear::new_no_bias(2, 4, constant, &mut rng).unwrap();
        let mut out = Linear::new_no_bias(4, 1, constant, &mut rng).unwrap();
        let x = tensor::normal(&[8, 2], 0.0, 1.0, &mut rng).unwrap();
        let y = tensor::normal(&[8, 1], 0.0, 1.0, &mut rng).unwrap();
        for _ in 0..20 {
            let tape = Tape::new();
            let h = Tanh.forward(
                hidden.forward(tape.constant(x.clone()), Mode::Train),
                Mode::Train,
            );
            let loss = out.forward(h, Mode::Train).mse(tape.constant(y.clone()));
            let grads = loss.backward();
            let g1 = grads.param(hidden.weight()).unwrap().clone();
            let g2 = grads.param(out.weight()).unwrap().clone();
            hidden.weight_mut().value_mut().scaled_add(-0.1, &g1);
            out.weight_mut().value_mut().scaled_add(-0.1, &g2);
        }
        let w = hidden.weight().value();
        assert_ne!(w[[0, 0]], 0.5, "the weights did train");
        for row in 1..4 {
            for col in 0..2 {
                assert_eq!(w[[row, col]], w[[0, col]]);
            }
        }
    }

    /// Per-layer standard deviation of the activations of a 20-layer, 256-wide tanh net.
    fn tanh_net_stds(init: Init) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let width = 256;
        let mut h = tensor::normal(&[128, width], 0.0, 1.0, &mut rng).unwrap();
        let mut stds = Vec::new();
        for _ in 0..20 {
            let w = init
                .sample(&[width, width], width, width, &mut rng)
                .unwrap();
            let layer = Linear::from_parts(w, None).unwrap();
            let tape = Tape::inference();
            h = Tanh
                .forward(layer.forward(tape.constant(h), Mode::Eval), Mode::Eval)
                .value();
            stds.push(variance(&h).sqrt());
        }
        stds
    }

    #[test]
    fn deep_tanh_net_stays_healthy_with_xavier_and_collapses_with_small_normal() {
        // Xavier with tanh's gain 5/3: the activations settle at a steady spread
        let xavier = tanh_net_stds(Init::XavierNormal {
            gain: gain(Activation::Tanh).unwrap(),
        });
        assert!(
            xavier.iter().all(|&s| (0.4..1.0).contains(&s)),
            "{xavier:?}"
        );
        // plain Xavier (gain 1): shrinks slowly, still far from 0 after 20 layers
        let plain = tanh_net_stds(Init::XavierUniform { gain: 1.0 });
        assert!(plain.iter().all(|&s| s > 0.1), "{plain:?}");
        // N(0, 0.01²): each layer multiplies the spread by about 0.01·√256 = 0.16
        let small = tanh_net_stds(Init::Normal {
            mean: 0.0,
            std: 0.01,
        });
        assert!(small.windows(2).all(|w| w[1] < 0.2 * w[0]), "{small:?}");
        assert!(small[19] < 1e-12, "{small:?}");
    }
}
