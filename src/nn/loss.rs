//! [`Loss`]: the criterion [`fit`](crate::fit), [`evaluate_with`](crate::evaluate_with) and
//! [`TrainStep`](crate::TrainStep) minimize, as PyTorch's `nn.CrossEntropyLoss`,
//! `nn.MSELoss`, ... or the user's own function of `(output, targets)`.

use crate::autograd::tape::Var;
use crate::data::{BatchTargets, Targets};
use crate::error::{Error, Result};
use crate::tensor::Elem;
use ndarray::ArrayViewD;
use std::fmt;
use std::sync::Arc;

/// The signature of a user's loss: the model's output for a batch and the batch's targets
/// in, a scalar on the same tape out.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use tapegrad::{BatchTargets, Loss, LossFn, Tape, Var};
/// fn mean_output<'t>(out: Var<'t>, _: &BatchTargets<'_>) -> Var<'t> {
///     out.mean()
/// }
/// let function: Arc<LossFn> = Arc::new(mean_output);
/// let loss = Loss::Custom { name: "mean output".into(), function };
/// let tape = Tape::new();
/// let out = tape.constant(tapegrad::tensor::full(&[2, 1], 3.0));
/// assert_eq!(loss.compute(out, &BatchTargets::Classes(&[0, 1]))?.item(), 3.0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type LossFn = dyn for<'t> Fn(Var<'t>, &BatchTargets<'_>) -> Var<'t> + Send + Sync;

/// A training criterion. Every built-in one is a **mean** over the batch (PyTorch's
/// `reduction="mean"`), as [`TrainStep`](crate::TrainStep)'s data parallelism needs: each
/// shard's loss is weighted by its share of the rows.
///
/// | variant | PyTorch | targets |
/// |---|---|---|
/// | [`Loss::CrossEntropy`] | `nn.CrossEntropyLoss()` on logits | classes |
/// | [`Loss::CrossEntropySmoothed`] | `nn.CrossEntropyLoss(label_smoothing=ε)` on logits | classes |
/// | [`Loss::Mse`] | `nn.MSELoss()` | values, inputs |
/// | [`Loss::L1`] | `nn.L1Loss()` | values, inputs |
/// | [`Loss::Huber`] | `nn.HuberLoss(delta)` | values, inputs |
/// | [`Loss::BceWithLogits`] | `nn.BCEWithLogitsLoss()` | multi-label, values in `[0, 1]` |
/// | [`Loss::custom`] | any function of `(output, targets)` | any |
///
/// # Examples
/// ```
/// use tapegrad::prelude::*;
/// // a custom loss: mean squared error plus a penalty on large outputs
/// let loss = Loss::custom("mse + 0.01·mean(out²)", |out, targets| {
///     let BatchTargets::Values(y) = targets else { panic!("float targets expected") };
///     let y = out.tape().constant(y.clone());
///     out.mse(y) + out.square().mean() * 0.01
/// });
/// let tape = Tape::new();
/// let out = tape.constant(ndarray::array![[1.0f32], [3.0]]);
/// let y = ndarray::array![[1.0f32], [1.0]].into_dyn();
/// let value = loss.compute(out, &BatchTargets::Values(y.view()))?.item();
/// assert!((value - (2.0 + 0.01 * 5.0)).abs() < 1e-6);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Clone, Default)]
pub enum Loss {
    /// Softmax cross-entropy of logits `[rows, classes]` against class labels.
    #[default]
    CrossEntropy,
    /// Softmax cross-entropy of logits `[rows, classes]` against class labels smoothed
    /// towards the uniform distribution: targets `(1 − ε)·onehot + ε/C` for `C` classes,
    /// so `L = (1 − ε)·CE(y) + ε·(1/C) Σ_c −log p_c` per row (PyTorch's
    /// `nn.CrossEntropyLoss(label_smoothing=ε)`; see [`Var::cross_entropy_smoothed`]).
    /// `ε` must be in `[0, 1)`; [`Loss::check`] says so otherwise. `ε = 0` trains as
    /// [`Loss::CrossEntropy`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, BatchTargets, Loss, Tape};
    /// let tape = Tape::new();
    /// // logits ln 2 and 0: p = [2/3, 1/3]
    /// let out = tape.constant(tensor::from_vec(vec![2f32.ln(), 0.0], &[1, 2])?);
    /// let loss = Loss::CrossEntropySmoothed { label_smoothing: 0.2 };
    /// let value = loss.compute(out, &BatchTargets::Classes(&[0]))?.item();
    /// // q = [0.9, 0.1]: −0.9·ln(2/3) − 0.1·ln(1/3)
    /// let expected = -0.9 * (2f32 / 3.0).ln() - 0.1 * (1f32 / 3.0).ln();
    /// assert!((value - expected).abs() < 1e-6);
    /// let bad = Loss::CrossEntropySmoothed { label_smoothing: 1.0 };
    /// assert!(bad.check(&BatchTargets::Classes(&[0])).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    CrossEntropySmoothed {
        /// `ε` in `[0, 1)`: the probability mass spread evenly over all classes (torch's
        /// `label_smoothing`, default 0.0; 0.1 is the common choice).
        label_smoothing: Elem,
    },
    /// Mean squared error `mean((y − t)²)` over every element.
    Mse,
    /// Mean absolute error `mean(|y − t|)` over every element.
    L1,
    /// Huber loss: `½d²` where `|d| < delta`, else `delta·(|d| − ½delta)`, `d = y − t`,
    /// averaged over every element.
    Huber {
        /// Where the loss turns from quadratic to linear (torch's default is 1.0).
        delta: Elem,
    },
    /// Binary cross-entropy of logits against 0/1 (or `[0, 1]`) targets, averaged over
    /// every element.
    BceWithLogits,
    /// The user's function (made by [`Loss::custom`]).
    Custom {
        /// A name for messages and logs.
        name: String,
        /// The function.
        function: Arc<LossFn>,
    },
}

impl fmt::Debug for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::CrossEntropy => write!(f, "CrossEntropy"),
            Loss::CrossEntropySmoothed { label_smoothing } => write!(
                f,
                "CrossEntropySmoothed {{ label_smoothing: {label_smoothing} }}"
            ),
            Loss::Mse => write!(f, "Mse"),
            Loss::L1 => write!(f, "L1"),
            Loss::Huber { delta } => write!(f, "Huber {{ delta: {delta} }}"),
            Loss::BceWithLogits => write!(f, "BceWithLogits"),
            Loss::Custom { name, .. } => write!(f, "Custom({name:?})"),
        }
    }
}

impl Loss {
    /// A loss from the user's function of the model's output and the batch's targets. It
    /// must return a scalar that is a mean over the batch's rows (so that a batch split
    /// into shards gives the same gradient).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, BatchTargets, Loss, Tape};
    /// // the mean squared output, whatever the targets
    /// let loss = Loss::custom("mean out²", |out, _| out.square().mean());
    /// assert_eq!(loss.name(), "mean out²");
    /// let tape = Tape::new();
    /// let out = tape.constant(tensor::from_vec(vec![-1.0, 3.0], &[2, 1])?);
    /// assert_eq!(loss.compute(out, &BatchTargets::Classes(&[0, 0]))?.item(), 5.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn custom(
        name: impl Into<String>,
        function: impl for<'t> Fn(Var<'t>, &BatchTargets<'_>) -> Var<'t> + Send + Sync + 'static,
    ) -> Loss {
        Loss::Custom {
            name: name.into(),
            function: Arc::new(function),
        }
    }

    /// The loss for a kind of targets when none is chosen: cross-entropy for classes, MSE
    /// for values and inputs, BCE with logits for multi-label targets.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray, Loss, Targets};
    /// assert_eq!(Loss::default_for(&Targets::classes(vec![0, 1])).name(), "cross-entropy");
    /// assert_eq!(Loss::default_for(&Targets::Inputs).name(), "mse");
    /// let multi = Targets::MultiLabel(ndarray::Array2::zeros((2, 3)));
    /// assert_eq!(Loss::default_for(&multi).name(), "bce with logits");
    /// ```
    pub fn default_for(targets: &Targets) -> Loss {
        match targets {
            Targets::Classes { .. } => Loss::CrossEntropy,
            Targets::Values(_) | Targets::Inputs => Loss::Mse,
            Targets::MultiLabel(_) => Loss::BceWithLogits,
        }
    }

    /// The loss's name in messages.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Loss;
    /// assert_eq!(Loss::Huber { delta: 1.0 }.name(), "huber");
    /// assert_eq!(Loss::custom("my loss", |out, _| out.mean()).name(), "my loss");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            Loss::CrossEntropy => "cross-entropy",
            Loss::CrossEntropySmoothed { .. } => "cross-entropy with label smoothing",
            Loss::Mse => "mse",
            Loss::L1 => "l1",
            Loss::Huber { .. } => "huber",
            Loss::BceWithLogits => "bce with logits",
            Loss::Custom { name, .. } => name,
        }
    }

    /// Checks that the loss can compare a model's output with `targets` and that its
    /// settings are valid.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the loss and the targets' kind, or the bad setting.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray, BatchTargets, Loss};
    /// let classes = BatchTargets::Classes(&[0, 2]);
    /// assert!(Loss::CrossEntropy.check(&classes).is_ok());
    /// assert!(Loss::Mse.check(&classes).is_err()); // MSE needs float targets
    /// let values = ndarray::ArrayD::<f32>::zeros(vec![2, 1]);
    /// assert!(Loss::Mse.check(&BatchTargets::Values(values.view())).is_ok());
    /// ```
    pub fn check(&self, targets: &BatchTargets<'_>) -> Result<()> {
        let fits = match self {
            Loss::CrossEntropy | Loss::CrossEntropySmoothed { .. } => {
                matches!(targets, BatchTargets::Classes(_))
            }
            Loss::Mse | Loss::L1 | Loss::Huber { .. } | Loss::BceWithLogits => {
                !matches!(targets, BatchTargets::Classes(_))
            }
            Loss::Custom { .. } => true,
        };
        if !fits {
            let hint = match targets {
                BatchTargets::Classes(_) => "use Loss::CrossEntropy for class labels",
                _ => "use Loss::Mse, L1, Huber or BceWithLogits for float targets",
            };
            return Err(Error::InvalidArgument {
                op: "loss",
                message: format!(
                    "{} cannot compare outputs with {}; {hint}",
                    self.name(),
                    targets.kind()
                ),
            });
        }
        if let Loss::Huber { delta } = self
            && !(delta.is_finite() && *delta > 0.0)
        {
            return Err(Error::InvalidArgument {
                op: "loss",
                message: format!("huber delta must be finite and > 0, got {delta}"),
            });
        }
        if let Loss::CrossEntropySmoothed { label_smoothing } = self
            && !(0.0..1.0).contains(label_smoothing)
        {
            return Err(Error::InvalidArgument {
                op: "loss",
                message: format!(
                    "cross-entropy label smoothing must be in [0, 1), got {label_smoothing}"
                ),
            });
        }
        Ok(())
    }

    /// The loss of `output` against `targets`, recorded on `output`'s tape.
    ///
    /// # Errors
    /// As [`Loss::check`].
    ///
    /// Float targets of another shape with as many values per sample are read in the
    /// output's shape (see [`Targets::Values`]).
    ///
    /// # Panics
    /// When the output holds another number of values than the targets (the op names both
    /// shapes); [`fit`](crate::fit) checks this before training.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, BatchTargets, Loss, Tape};
    /// let tape = Tape::new();
    /// let out = tape.constant(tensor::from_vec(vec![1.0, 4.0], &[2, 1])?);
    /// let target = tensor::from_vec(vec![0.0, 2.0], &[2, 1])?;
    /// // mean((1 − 0)², (4 − 2)²) = 2.5
    /// let loss = Loss::Mse.compute(out, &BatchTargets::Values(target.view()))?;
    /// assert_eq!(loss.item(), 2.5);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn compute<'t>(&self, output: Var<'t>, targets: &BatchTargets<'_>) -> Result<Var<'t>> {
        self.check(targets)?;
        Ok(self.compute_checked(output, targets))
    }

    /// [`Loss::compute`] once [`Loss::check`] has passed for these targets.
    pub(crate) fn compute_checked<'t>(
        &self,
        output: Var<'t>,
        targets: &BatchTargets<'_>,
    ) -> Var<'t> {
        let floats = || match targets {
            BatchTargets::Values(y) => output.tape().constant(in_output_shape(y, output)),
            BatchTargets::MultiLabel(y) => output
                .tape()
                .constant(in_output_shape(&y.into_dyn(), output)),
            BatchTargets::Classes(_) => unreachable!("checked: float targets"),
        };
        match self {
            Loss::CrossEntropy => match targets {
                BatchTargets::Classes(labels) => output.cross_entropy(labels),
                _ => unreachable!("checked: class targets"),
            },
            Loss::CrossEntropySmoothed { label_smoothing } => match targets {
                BatchTargets::Classes(labels) => {
                    output.cross_entropy_smoothed(labels, *label_smoothing)
                }
                _ => unreachable!("checked: class targets"),
            },
            Loss::Mse => output.mse(floats()),
            Loss::L1 => output.l1_loss(floats()),
            Loss::Huber { delta } => output.huber_loss(floats(), *delta),
            Loss::BceWithLogits => output.bce_with_logits(floats()),
            Loss::Custom { function, .. } => function(output, targets),
        }
    }
}

/// Float targets `y` in the shape of `output` when they hold as many values per sample
/// (see [`Targets::Values`]); otherwise as they are, for the loss op to name both shapes.
fn in_output_shape<'a>(y: &ArrayViewD<'a, Elem>, output: Var<'_>) -> ArrayViewD<'a, Elem> {
    let shape = output.shape();
    let same_count =
        y.len() == shape.iter().product::<usize>() && y.shape().first() == shape.first();
    match y.clone().into_shape_with_order(shape) {
        Ok(reshaped) if same_count => reshaped,
        _ => y.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::Loss;
    use crate::data::BatchTargets;
    use crate::{Elem, Error, Tape, tensor};

    #[test]
    fn smoothed_cross_entropy_checks_its_setting_and_targets() {
        let classes = BatchTargets::Classes(&[0, 1]);
        for label_smoothing in [0.0, 0.1, 0.999] {
            let loss = Loss::CrossEntropySmoothed { label_smoothing };
            assert!(loss.check(&classes).is_ok(), "{loss:?}");
        }
        for (label_smoothing, shown) in [
            (1.0, "1"),
            (-0.1, "-0.1"),
            (Elem::NAN, "NaN"),
            (Elem::INFINITY, "inf"),
        ] {
            let loss = Loss::CrossEntropySmoothed { label_smoothing };
            match loss.check(&classes) {
                Err(Error::InvalidArgument { op, message }) => {
                    assert_eq!(op, "loss");
                    assert_eq!(
                        message,
                        format!("cross-entropy label smoothing must be in [0, 1), got {shown}")
                    );
                }
                other => panic!("{loss:?}: {other:?}"),
            }
        }
        let values = ndarray::ArrayD::<Elem>::zeros(vec![2, 1]);
        let loss = Loss::CrossEntropySmoothed {
            label_smoothing: 0.1,
        };
        let err = loss
            .check(&BatchTargets::Values(values.view()))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("cross-entropy with label smoothing cannot compare outputs with"),
            "{err}"
        );
        assert_eq!(
            format!("{loss:?}"),
            "CrossEntropySmoothed { label_smoothing: 0.1 }"
        );
    }

    #[test]
    fn smoothed_cross_entropy_computes_the_smoothed_op() {
        let tape = Tape::new();
        let z = tensor::from_vec(vec![1.0, -0.5, 2.0, 0.0, 0.3, -1.0], &[2, 3]).unwrap();
        let z = tape.leaf(z);
        let labels = [2, 0];
        let targets = BatchTargets::Classes(&labels);
        let smoothed = Loss::CrossEntropySmoothed {
            label_smoothing: 0.2,
        };
        let value = smoothed.compute(z, &targets).unwrap().item();
        assert_eq!(value, z.cross_entropy_smoothed(&labels, 0.2).item());
        let plain = Loss::CrossEntropy.compute(z, &targets).unwrap().item();
        assert!(value > plain, "{value} vs {plain}");
        let bad = Loss::CrossEntropySmoothed {
            label_smoothing: 1.5,
        };
        assert!(bad.compute(z, &targets).is_err());
    }
}
