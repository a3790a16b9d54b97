//! Activation layers — [`Identity`], [`Step`], [`Sigmoid`], [`Tanh`], [`Relu`],
//! [`LeakyRelu`], [`Elu`] — for use in a [`Sequential`](crate::Sequential), and the
//! [`Activation`] enum that names them (for configs and experiments that sweep activations).
//!
//! Each layer is element-wise, has no parameters and keeps its input's shape; it records
//! the matching op on [`Var`] (whose docs give the formula and the derivative rule).

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::nn::module::{Fusable, Mode, Module};
use crate::tensor::Elem;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Implements [`Module`] for a parameterless element-wise layer.
macro_rules! elementwise_layer {
    ($layer:ty, |$self_:ident, $x:ident| $forward:expr, |$s:ident| $describe:expr) => {
        elementwise_layer!($layer, |$self_, $x| $forward, |$s| $describe, None);
    };
    ($layer:ty, |$self_:ident, $x:ident| $forward:expr, |$s:ident| $describe:expr, $fusable:expr) => {
        impl Module for $layer {
            fn forward<'t>(&self, $x: Var<'t>, _mode: Mode) -> Var<'t> {
                let $self_ = self;
                $forward
            }
            crate::walk!();
            fn describe(&self) -> String {
                let $s = self;
                $describe
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                crate::nn::shape::same_shape(input)
            }
            fn fusable(&self) -> Option<Fusable> {
                $fusable
            }
        }
    };
}

/// The identity `y = x` (`nn.Identity`): a placeholder layer, and the "linear" choice in an
/// activation sweep.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Identity, Mode, Module, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![-1.0, 2.0], &[1, 2])?);
/// assert_eq!(Identity.forward(x, Mode::Train).value(), x.value());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Identity;
elementwise_layer!(Identity, |_l, x| x, |_l| "Identity()".into());

/// The Heaviside step `y = 1 if x > 0, else 0` (see [`Var::step`]). Its gradient is 0
/// everywhere, so nothing before it learns by backpropagation.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Mode, Module, Step, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![-1.0, 0.0, 2.0], &[1, 3])?);
/// assert_eq!(Step.forward(x, Mode::Train).value().as_slice().unwrap(), &[0.0, 0.0, 1.0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Step;
elementwise_layer!(Step, |_l, x| x.step(), |_l| "Step()".into());

/// The logistic sigmoid `σ(x) = 1 / (1 + e^(−x))` (see [`Var::sigmoid`]).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Mode, Module, Sigmoid, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![0.0], &[1, 1])?);
/// assert_eq!(Sigmoid.forward(x, Mode::Train).item(), 0.5);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sigmoid;
elementwise_layer!(Sigmoid, |_l, x| x.sigmoid(), |_l| "Sigmoid()".into());

/// The hyperbolic tangent `y = tanh(x)` (see [`Var::tanh`]).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Mode, Module, Tanh, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![0.0, 20.0], &[1, 2])?);
/// assert_eq!(Tanh.forward(x, Mode::Train).value().as_slice().unwrap(), &[0.0, 1.0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tanh;
elementwise_layer!(Tanh, |_l, x| x.tanh(), |_l| "Tanh()".into());

/// The rectifier `y = max(0, x)` (see [`Var::relu`]; `relu'(0) = 0`).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Mode, Module, Relu, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![-2.0, 3.0], &[1, 2])?);
/// assert_eq!(Relu.forward(x, Mode::Train).value().as_slice().unwrap(), &[0.0, 3.0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Relu;
elementwise_layer!(
    Relu,
    |_l, x| x.relu(),
    |_l| "ReLU()".into(),
    Some(Fusable::Relu)
);

/// The leaky rectifier `y = x if x > 0, else slope·x` (see [`Var::leaky_relu`]).
/// The default slope is PyTorch's 0.01; the "very leaky" ReLU of the LSUV paper uses 1/3.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, LeakyRelu, Mode, Module, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![-2.0, 3.0], &[1, 2])?);
/// let layer = LeakyRelu::new(0.25)?;
/// assert_eq!(layer.forward(x, Mode::Train).value().as_slice().unwrap(), &[-0.5, 3.0]);
/// assert_eq!(LeakyRelu::default().slope(), 0.01);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyRelu {
    slope: Elem,
}

impl LeakyRelu {
    /// A leaky ReLU with negative-side slope `slope`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `slope` is not finite:
    /// `leaky_relu: slope must be finite, got NaN`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::LeakyRelu;
    /// let very_leaky = LeakyRelu::new(1.0 / 3.0)?; // the LSUV paper's
    /// assert_eq!(very_leaky.slope(), 1.0 / 3.0);
    /// let err = LeakyRelu::new(f32::NAN).unwrap_err();
    /// assert_eq!(err.to_string(), "leaky_relu: slope must be finite, got NaN");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(slope: Elem) -> Result<Self> {
        if !slope.is_finite() {
            return Err(Error::InvalidArgument {
                op: "leaky_relu",
                message: format!("slope must be finite, got {slope}"),
            });
        }
        Ok(LeakyRelu { slope })
    }

    /// The negative-side slope.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::LeakyRelu;
    /// assert_eq!(LeakyRelu::new(0.2)?.slope(), 0.2);
    /// assert_eq!(LeakyRelu::default().slope(), 0.01); // PyTorch's default
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn slope(&self) -> Elem {
        self.slope
    }
}

impl Default for LeakyRelu {
    /// Slope 0.01, as PyTorch's `nn.LeakyReLU()`.
    fn default() -> Self {
        LeakyRelu { slope: 0.01 }
    }
}

elementwise_layer!(LeakyRelu, |l, x| x.leaky_relu(l.slope), |l| format!(
    "LeakyReLU(negative_slope={})",
    l.slope
));

/// The exponential linear unit `y = x if x > 0, else alpha·(e^x − 1)` (Clevert et al.
/// 2015; see [`Var::elu`]). The default alpha is PyTorch's 1.0.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Elu, Mode, Module, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![0.0, 2.0], &[1, 2])?);
/// let y = Elu::default().forward(x, Mode::Train).value();
/// assert_eq!(y.as_slice().unwrap(), &[0.0, 2.0]);
/// assert_eq!(Elu::new(0.5)?.alpha(), 0.5);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elu {
    alpha: Elem,
}

impl Elu {
    /// An ELU with saturation value `−alpha` for large negative inputs.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `alpha` is not finite:
    /// `elu: alpha must be finite, got inf`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Elu, Mode, Module, Tape};
    /// let layer = Elu::new(0.5)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![-100.0, 2.0], &[1, 2])?);
    /// // saturates at −alpha on the left, identity on the right
    /// assert_eq!(layer.forward(x, Mode::Eval).value().as_slice().unwrap(), &[-0.5, 2.0]);
    /// assert!(Elu::new(f32::INFINITY).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(alpha: Elem) -> Result<Self> {
        if !alpha.is_finite() {
            return Err(Error::InvalidArgument {
                op: "elu",
                message: format!("alpha must be finite, got {alpha}"),
            });
        }
        Ok(Elu { alpha })
    }

    /// The saturation parameter.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Elu;
    /// assert_eq!(Elu::new(0.5)?.alpha(), 0.5);
    /// assert_eq!(Elu::default().alpha(), 1.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn alpha(&self) -> Elem {
        self.alpha
    }
}

impl Default for Elu {
    /// Alpha 1.0, as PyTorch's `nn.ELU()`.
    fn default() -> Self {
        Elu { alpha: 1.0 }
    }
}

elementwise_layer!(Elu, |l, x| x.elu(l.alpha), |l| format!(
    "ELU(alpha={})",
    l.alpha
));

/// An activation chosen by name, for configs and sweeps: it parses from and prints as
/// `"identity"`, `"step"`, `"sigmoid"`, `"tanh"`, `"relu"`, `"leaky_relu"` (slope 0.01)
/// or `"leaky_relu(0.333)"`, `"elu"` (alpha 1.0) or `"elu(0.5)"`, and (de)serializes with
/// serde.
///
/// [`Activation::layer`] makes the layer for a [`Sequential`](crate::Sequential);
/// [`gain`](crate::gain) gives PyTorch's recommended initialization gain for it.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Activation, Mode, Module, Sequential, Tape};
/// for name in ["relu", "tanh", "leaky_relu(0.1)"] {
///     let act: Activation = name.parse()?;
///     assert_eq!(act.to_string(), name);
///     let model = Sequential::new(vec![act.layer()?])?;
///     let tape = Tape::new();
///     let y = model.forward(tape.constant(tensor::full(&[1, 1], -1.0)), Mode::Eval);
///     assert_eq!(y.item(), act.apply(tape.constant(tensor::full(&[1, 1], -1.0))).item());
/// }
/// assert_eq!("leaky_relu".parse::<Activation>()?, Activation::LeakyRelu { slope: 0.01 });
/// assert!("swish".parse::<Activation>().is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `y = x` ("linear" in PyTorch's `calculate_gain`).
    Identity,
    /// The Heaviside step, see [`Step`].
    Step,
    /// The logistic sigmoid, see [`Sigmoid`].
    Sigmoid,
    /// The hyperbolic tangent, see [`Tanh`].
    Tanh,
    /// The rectifier, see [`Relu`].
    Relu,
    /// The leaky rectifier, see [`LeakyRelu`].
    LeakyRelu {
        /// The negative-side slope (0.01 by default).
        slope: Elem,
    },
    /// The exponential linear unit, see [`Elu`].
    Elu {
        /// The saturation parameter (1.0 by default).
        alpha: Elem,
    },
}

impl Activation {
    /// Every activation with its default parameters, for sweeps.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Activation;
    /// assert_eq!(Activation::ALL.len(), 7);
    /// assert!(Activation::ALL.contains(&Activation::Relu));
    /// // every one parses back from its name
    /// for act in Activation::ALL {
    ///     assert_eq!(act.to_string().parse::<Activation>()?, act);
    /// }
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub const ALL: [Activation; 7] = [
        Activation::Identity,
        Activation::Step,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu { slope: 0.01 },
        Activation::Elu { alpha: 1.0 },
    ];

    /// The layer that applies this activation.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a slope or alpha is not finite.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Activation, Mode, Tape};
    /// let layer = Activation::LeakyRelu { slope: 0.5 }.layer()?;
    /// assert_eq!(layer.describe(), "LeakyReLU(negative_slope=0.5)");
    /// let tape = Tape::new();
    /// let y = layer.forward(tape.constant(tensor::full(&[1, 1], -2.0)), Mode::Eval);
    /// assert_eq!(y.item(), -1.0);
    /// assert!(Activation::Elu { alpha: f32::NAN }.layer().is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn layer(self) -> Result<Box<dyn Module>> {
        Ok(match self {
            Activation::Identity => Box::new(Identity),
            Activation::Step => Box::new(Step),
            Activation::Sigmoid => Box::new(Sigmoid),
            Activation::Tanh => Box::new(Tanh),
            Activation::Relu => Box::new(Relu),
            Activation::LeakyRelu { slope } => Box::new(LeakyRelu::new(slope)?),
            Activation::Elu { alpha } => Box::new(Elu::new(alpha)?),
        })
    }

    /// Applies the activation to `x` directly, without a layer.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Activation, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3])?);
    /// assert_eq!(Activation::Relu.apply(x).value().as_slice().unwrap(), &[0.0, 0.0, 2.0]);
    /// assert_eq!(Activation::Step.apply(x).value().as_slice().unwrap(), &[0.0, 0.0, 1.0]);
    /// assert_eq!(Activation::Identity.apply(x).value(), x.value());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn apply<'t>(self, x: Var<'t>) -> Var<'t> {
        match self {
            Activation::Identity => x,
            Activation::Step => x.step(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu { slope } => x.leaky_relu(slope),
            Activation::Elu { alpha } => x.elu(alpha),
        }
    }
}

impl fmt::Display for Activation {
    /// The name [`FromStr`] parses: `relu`, `leaky_relu(0.2)`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Identity => write!(f, "identity"),
            Activation::Step => write!(f, "step"),
            Activation::Sigmoid => write!(f, "sigmoid"),
            Activation::Tanh => write!(f, "tanh"),
            Activation::Relu => write!(f, "relu"),
            Activation::LeakyRelu { slope } => write!(f, "leaky_relu({slope})"),
            Activation::Elu { alpha } => write!(f, "elu({alpha})"),
        }
    }
}

impl FromStr for Activation {
    type Err = Error;

    /// Parses a name as printed by `Display`; `leaky_relu` and `elu` may omit their
    /// parameter to get PyTorch's default. `linear` is accepted for `identity`, as in
    /// PyTorch's `calculate_gain`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |message: String| Error::InvalidArgument {
            op: "activation",
            message,
        };
        let s = s.trim();
        let (name, param) = match s.split_once('(') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| bad(format!("missing ')' in {s:?}")))?;
                let value: Elem = inner.trim().parse().map_err(|_| {
                    bad(format!(
                        "parameter of {name:?} must be a number, got {inner:?}"
                    ))
                })?;
                (name.trim(), Some(value))
            }
            None => (s, None),
        };
        let no_param = |act: Activation| match param {
            None => Ok(act),
            Some(_) => Err(bad(format!("{name:?} takes no parameter, got {s:?}"))),
        };
        let act = match name.to_ascii_lowercase().as_str() {
            "identity" | "linear" => no_param(Activation::Identity)?,
            "step" => no_param(Activation::Step)?,
            "sigmoid" => no_param(Activation::Sigmoid)?,
            "tanh" => no_param(Activation::Tanh)?,
            "relu" => no_param(Activation::Relu)?,
            "leaky_relu" => Activation::LeakyRelu {
                slope: LeakyRelu::new(param.unwrap_or(0.01))?.slope,
            },
            "elu" => Activation::Elu {
                alpha: Elu::new(param.unwrap_or(1.0))?.alpha,
            },
            _ => {
                return Err(bad(format!(
                    "unknown activation {name:?}; expected one of identity, step, sigmoid, \
                     tanh, relu, leaky_relu, elu"
                )));
            }
        };
        Ok(act)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::away_from_zero;
    use crate::{Tape, gradcheck};

    #[test]
    fn layers_match_their_ops_and_enum() {
        let x = away_from_zero(&[3, 4], 1);
        for act in Activation::ALL {
            let layer = act.layer().unwrap();
            let tape = Tape::new();
            let v = tape.constant(x.clone());
            assert_eq!(
                layer.forward(v, Mode::Train).value(),
                act.apply(v).value(),
                "{act}"
            );
            assert_eq!(layer.num_params(), 0);
            assert_eq!((layer.in_features(), layer.out_features()), (None, None));
        }
    }

    #[test]
    fn gradcheck_every_activation_layer() {
        for shape in [[3, 4], [1, 5]] {
            let x = away_from_zero(&shape, 2);
            for act in Activation::ALL {
                let layer = act.layer().unwrap();
                gradcheck(
                    |v| layer.forward(v[0], Mode::Train),
                    std::slice::from_ref(&x),
                )
                .unwrap_or_else(|e| panic!("{act}: {e}"));
            }
        }
    }

    #[test]
    fn names_round_trip_and_defaults_match_pytorch() {
        for act in Activation::ALL {
            assert_eq!(act.to_string().parse::<Activation>().unwrap(), act);
        }
        let p = |s: &str| s.parse::<Activation>();
        assert_eq!(
            p("leaky_relu").unwrap(),
            Activation::LeakyRelu { slope: 0.01 }
        );
        assert_eq!(p("ELU").unwrap(), Activation::Elu { alpha: 1.0 });
        assert_eq!(p("elu(0.5)").unwrap(), Activation::Elu { alpha: 0.5 });
        assert_eq!(p("linear").unwrap(), Activation::Identity);
        assert_eq!(LeakyRelu::default().slope(), 0.01);
        assert_eq!(Elu::default().alpha(), 1.0);
    }

    #[test]
    fn bad_names_and_parameters_are_errors() {
        let err = |s: &str| s.parse::<Activation>().unwrap_err().to_string();
        assert!(err("swish").starts_with("activation: unknown activation \"swish\""));
        assert_eq!(
            err("relu(2)"),
            "activation: \"relu\" takes no parameter, got \"relu(2)\""
        );
        assert_eq!(
            err("elu(x)"),
            "activation: parameter of \"elu\" must be a number, got \"x\""
        );
        assert_eq!(
            err("leaky_relu(NaN)"),
            "leaky_relu: slope must be finite, got NaN"
        );
        assert_eq!(
            Elu::new(f32::INFINITY).unwrap_err().to_string(),
            "elu: alpha must be finite, got inf"
        );
        assert!(Activation::LeakyRelu { slope: f32::NAN }.layer().is_err());
    }

    #[test]
    fn serde_round_trips_through_bincode() {
        let config = bincode::config::standard();
        for act in Activation::ALL
            .into_iter()
            .chain([Activation::LeakyRelu { slope: 0.5 }])
        {
            let bytes = bincode::serde::encode_to_vec(act, config).unwrap();
            let back: Activation = bincode::serde::decode_from_slice(&bytes, config).unwrap().0;
            assert_eq!(back, act);
        }
    }
}
