//! What a data set's samples are trained to predict: class labels, float values, multi-label
//! 0/1 vectors, or the samples themselves (autoencoders).

use crate::error::{Error, Result};
use crate::tensor::Elem;
use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Axis};

/// The targets of a [`Dataset`](crate::Dataset), one per sample.
///
/// Each kind has the losses and metrics that fit it:
///
/// | kind | typical loss ([`Loss`](crate::Loss)) | metrics |
/// |---|---|---|
/// | [`Targets::Classes`] | cross-entropy | accuracy, top-k, confusion matrix |
/// | [`Targets::Values`] | MSE, L1, Huber | MSE, MAE, R² |
/// | [`Targets::MultiLabel`] | BCE with logits | per-label accuracy |
/// | [`Targets::Inputs`] | MSE | MSE, MAE, R² |
///
/// # Examples
/// ```
/// use tapegrad::{Dataset, Targets, ndarray::array};
/// let x = array![[0.0f32, 1.0], [2.0, 3.0]];
/// let regression = Dataset::new(x.clone(), Targets::Values(array![[1.5f32], [2.5]].into_dyn()))?;
/// assert_eq!(regression.target_shape(), vec![1]);
/// let autoencoder = Dataset::new(x, Targets::Inputs)?;
/// assert!(autoencoder.labels().is_none());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per sample, each below `num_classes`.
    Classes {
        /// The class of each sample.
        labels: Vec<usize>,
        /// The number of classes (at least one more than the largest label).
        num_classes: usize,
    },
    /// Float values `[samples, ...]` (regression): axis 0 is the sample, the rest is the
    /// shape of one sample's target. The model's output for a sample must hold as many
    /// values; when its shape differs (`[1]` against `[]`, or `[784]` against `[1, 28, 28]`),
    /// the targets are read in the output's shape, in row-major order, so `[N, 1]` targets
    /// never broadcast against an `[N]` output as they would in PyTorch's `MSELoss`.
    Values(ArrayD<Elem>),
    /// Several independent yes/no labels per sample, `[samples, labels]`, each 0 or 1.
    MultiLabel(Array2<Elem>),
    /// Each sample's own input after the scaler and augmentation, in the samples' shape: the
    /// target of an autoencoder, without storing the data twice. As for [`Targets::Values`],
    /// an output of another shape with as many values per sample is compared element by
    /// element, so a convolutional decoder's `[N, 1, 28, 28]` and a dense decoder's
    /// `[N, 784]` both fit `[1, 28, 28]` images.
    Inputs,
}

impl Targets {
    /// Class targets with as many classes as one more than the largest label. A label of
    /// `usize::MAX` (such as `-1` cast to `usize`) leaves no room for one more: it gives
    /// `usize::MAX` classes, which [`Dataset::new`](crate::Dataset::new) refuses naming
    /// the sample and its label.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array2};
    /// let t = Targets::classes(vec![2, 0, 1]);
    /// assert_eq!(t, Targets::Classes { labels: vec![2, 0, 1], num_classes: 3 });
    /// let minus_one = -1i64 as usize;
    /// let err = Dataset::new(Array2::<f32>::zeros((3, 1)), Targets::classes(vec![0, 1, minus_one]))
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("dataset: sample 2 has label 18446744073709551615"));
    /// ```
    pub fn classes(labels: Vec<usize>) -> Targets {
        let num_classes = labels.iter().max().map_or(0, |&m| m.saturating_add(1));
        Targets::Classes {
            labels,
            num_classes,
        }
    }

    /// The number of samples the targets are for (`None` for [`Targets::Inputs`], which has
    /// as many as the data).
    fn len(&self) -> Option<usize> {
        match self {
            Targets::Classes { labels, .. } => Some(labels.len()),
            Targets::Values(v) => Some(v.len_of(Axis(0))),
            Targets::MultiLabel(y) => Some(y.nrows()),
            Targets::Inputs => None,
        }
    }

    /// Checks the targets of `samples` samples; `op` names the caller in messages.
    pub(crate) fn validate(&self, op: &'static str, samples: usize) -> Result<()> {
        if let Some(len) = self.len()
            && len != samples
        {
            return Err(Error::Shape {
                op,
                expected: format!("one target per sample ({samples} samples)"),
                found: format!("{len} targets"),
            });
        }
        let invalid = |message: String| Err(Error::InvalidArgument { op, message });
        match self {
            Targets::Classes {
                labels,
                num_classes,
            } => {
                if let Some((sample, &label)) =
                    labels.iter().enumerate().find(|(_, l)| *l >= num_classes)
                {
                    // no count of classes can exceed usize::MAX
                    let expected = match label {
                        usize::MAX => "a label below usize::MAX (a negative label cast to \
                                       usize?)"
                            .to_string(),
                        _ => format!("a label below num_classes {num_classes}"),
                    };
                    return invalid(format!(
                        "sample {sample} has label {label}, expected {expected}"
                    ));
                }
            }
            Targets::Values(v) => {
                if v.ndim() < 2 {
                    return Err(Error::Shape {
                        op,
                        expected: "value targets of shape [samples, ...] (at least 2 axes; \
                                   [samples, 1] for one value per sample)"
                            .into(),
                        found: format!("shape {:?}", v.shape()),
                    });
                }
                let width = v.len() / samples.max(1);
                if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                    return invalid(format!(
                        "sample {} target {} is {x}, expected finite values",
                        i / width.max(1),
                        i % width.max(1)
                    ));
                }
            }
            Targets::MultiLabel(y) => {
                if let Some(((sample, label), x)) =
                    y.indexed_iter().find(|(_, x)| **x != 0.0 && **x != 1.0)
                {
                    return invalid(format!(
                        "sample {sample} label {label} is {x}, expected 0 or 1"
                    ));
                }
            }
            Targets::Inputs => {}
        }
        Ok(())
    }

    /// The targets of the samples at `rows`, in that order (rows are in range).
    pub(crate) fn select(&self, rows: &[usize]) -> Targets {
        match self {
            Targets::Classes {
                labels,
                num_classes,
            } => Targets::Classes {
                labels: rows.iter().map(|&r| labels[r]).collect(),
                num_classes: *num_classes,
            },
            Targets::Values(v) => Targets::Values(v.select(Axis(0), rows)),
            Targets::MultiLabel(y) => Targets::MultiLabel(y.select(Axis(0), rows)),
            Targets::Inputs => Targets::Inputs,
        }
    }
}

/// The targets of one batch (or part of one), borrowed: what a [`Loss`](crate::Loss) and the
/// metrics compare a model's output with.
///
/// # Examples
/// ```
/// use tapegrad::{BatchTargets, Dataset, Targets, ndarray::array};
/// let data = Dataset::new(array![[1.0f32], [2.0]], Targets::Values(array![[10.0f32], [20.0]].into_dyn()))?;
/// let mut batches = data.batches(2)?;
/// let batch = batches.next().unwrap();
/// let BatchTargets::Values(y) = &batch.targets else { panic!("value targets") };
/// assert_eq!(y, &array![[10.0], [20.0]].into_dyn());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub enum BatchTargets<'a> {
    /// One class index per row.
    Classes(&'a [usize]),
    /// Float targets, `[rows, ...]` (value targets, or the inputs of an autoencoder).
    Values(ArrayViewD<'a, Elem>),
    /// 0/1 labels, `[rows, labels]`.
    MultiLabel(ArrayView2<'a, Elem>),
}

impl<'a> BatchTargets<'a> {
    /// Number of rows.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchTargets, ndarray::Array2};
    /// assert_eq!(BatchTargets::Classes(&[3, 1, 4]).len(), 3);
    /// let y = Array2::<f32>::zeros((2, 5));
    /// assert_eq!(BatchTargets::MultiLabel(y.view()).len(), 2); // rows, not labels
    /// ```
    pub fn len(&self) -> usize {
        match self {
            BatchTargets::Classes(labels) => labels.len(),
            BatchTargets::Values(v) => v.len_of(Axis(0)),
            BatchTargets::MultiLabel(y) => y.nrows(),
        }
    }

    /// Whether there are no rows.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::BatchTargets;
    /// assert!(BatchTargets::Classes(&[]).is_empty());
    /// assert!(!BatchTargets::Classes(&[0]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class labels, when the targets are classes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchTargets, ndarray::Array2};
    /// assert_eq!(BatchTargets::Classes(&[2, 0]).labels(), Some(&[2, 0][..]));
    /// let y = Array2::<f32>::zeros((2, 1)).into_dyn();
    /// assert_eq!(BatchTargets::Values(y.view()).labels(), None);
    /// ```
    pub fn labels(&self) -> Option<&'a [usize]> {
        match self {
            BatchTargets::Classes(labels) => Some(labels),
            _ => None,
        }
    }

    /// Rows `start..end`.
    ///
    /// # Panics
    /// If the range is out of bounds.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::BatchTargets;
    /// let targets = BatchTargets::Classes(&[5, 6, 7, 8]);
    /// assert_eq!(targets.rows(1, 3).labels(), Some(&[6, 7][..]));
    /// ```
    pub fn rows(&self, start: usize, end: usize) -> BatchTargets<'a> {
        match self {
            BatchTargets::Classes(labels) => BatchTargets::Classes(&labels[start..end]),
            BatchTargets::Values(v) => {
                BatchTargets::Values(v.clone().slice_axis_move(Axis(0), (start..end).into()))
            }
            BatchTargets::MultiLabel(y) => {
                BatchTargets::MultiLabel(y.slice_axis_move(Axis(0), (start..end).into()))
            }
        }
    }

    /// The kind's name in messages ("class labels", "float values", "multi-label 0/1").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            BatchTargets::Classes(_) => "class labels",
            BatchTargets::Values(_) => "float values",
            BatchTargets::MultiLabel(_) => "multi-label 0/1 targets",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_of_usize_max_is_an_error_naming_its_sample_not_an_overflow() {
        // -1 cast to usize: one more class would overflow (a panic in debug builds, and in
        // release 0 classes, so the error named sample 0)
        let targets = Targets::classes(vec![0, 1, usize::MAX]);
        let err = targets.validate("dataset", 3).unwrap_err().to_string();
        assert_eq!(
            err,
            "dataset: sample 2 has label 18446744073709551615, expected a label below \
             usize::MAX (a negative label cast to usize?)"
        );
        let too_few = Targets::Classes {
            labels: vec![3, 0],
            num_classes: 2,
        };
        let err = too_few.validate("dataset", 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset: sample 0 has label 3, expected a label below num_classes 2"
        );
    }
}
