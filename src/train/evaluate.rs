//! [`evaluate`]: a model measured on unseen data in evaluation mode, with the metrics that fit
//! the data's targets.

use super::check_data;
use crate::autograd::tape::Tape;
use crate::data::{BatchTargets, Dataset};
use crate::error::Result;
use crate::metrics::{ConfusionMatrix, RegressionMetrics, label_rank, predictions};
use crate::nn::{Loss, Mode, Module};
use crate::tensor::Elem;
use ndarray::{ArrayView2, ArrayViewD, Axis};
use std::fmt;

/// A number [`evaluate`] reports, to watch with [`Monitor`](crate::Monitor) or read with
/// [`Evaluation::metric`].
///
/// # Examples
/// ```
/// use tapegrad::{evaluate, ndarray::array, tensor, Dataset, Linear, Metric};
/// let model = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
/// let data = Dataset::from_floats(array![[2.0], [-1.0]], vec![1, 1])?;
/// let eval = evaluate(&model, &data, 2)?;
/// assert_eq!(eval.metric(Metric::Accuracy), Some(0.5));
/// assert_eq!(eval.metric(Metric::TopK(2)), Some(1.0));
/// assert_eq!(eval.metric(Metric::Mse), None); // class targets have no MSE
/// assert_eq!(Metric::TopK(5).to_string(), "top-5 accuracy");
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// The mean loss (lower is better).
    Loss,
    /// Class targets: the fraction of samples whose arg-max output is the label.
    /// Multi-label targets: the fraction of labels predicted right: output > 0 for 1 under
    /// [`Loss::BceWithLogits`] or a [`Loss::Custom`] (the outputs are logits), output > 0.5
    /// under the other losses (the outputs are the 0/1 targets' estimates). Higher is
    /// better.
    Accuracy,
    /// Class targets: the fraction of samples whose label is among the `k` largest
    /// outputs (ties go to the lower class index, as for the arg-max). Higher is better.
    TopK(usize),
    /// Float targets: mean squared error over every element (lower is better). Under
    /// [`Loss::BceWithLogits`] the outputs are logits, so this and the other float metrics
    /// compare the probabilities `σ(output)` with the targets.
    Mse,
    /// Float targets: mean absolute error over every element (lower is better).
    Mae,
    /// Float targets: the coefficient of determination R² (higher is better, 1 is perfect).
    R2,
}

impl Metric {
    /// Whether larger values are better (accuracies, R²) rather than smaller (loss, errors).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Metric;
    /// assert!(Metric::Accuracy.higher_is_better() && Metric::R2.higher_is_better());
    /// assert!(!Metric::Loss.higher_is_better() && !Metric::Mae.higher_is_better());
    /// ```
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Accuracy | Metric::TopK(_) | Metric::R2)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Loss => write!(f, "loss"),
            Metric::Accuracy => write!(f, "accuracy"),
            Metric::TopK(k) => write!(f, "top-{k} accuracy"),
            Metric::Mse => write!(f, "mse"),
            Metric::Mae => write!(f, "mae"),
            Metric::R2 => write!(f, "r2"),
        }
    }
}

/// Loss and metrics of a model on a data set, as [`evaluate`] measures them.
///
/// # Examples
/// ```
/// use tapegrad::{evaluate, ndarray::array, tensor, Dataset, Linear};
/// let model = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
/// let data = Dataset::from_floats(array![[2.0], [-1.0], [3.0], [-4.0]], vec![1, 0, 0, 0])?;
/// let eval = evaluate(&model, &data, 3)?;
/// assert_eq!((eval.samples, eval.accuracy), (4, Some(0.75)));
/// assert_eq!(eval.confusion.as_ref().map(|m| m.count(0, 1)), Some(1)); // x = 3
/// assert!(eval.regression.is_none());
/// assert!(eval.loss > 0.0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean loss over all samples.
    pub loss: f64,
    /// Number of samples.
    pub samples: usize,
    /// [`Metric::Accuracy`], for class and multi-label targets.
    pub accuracy: Option<f64>,
    /// Counts of (true class, predicted class), for class targets.
    pub confusion: Option<ConfusionMatrix>,
    /// MSE, MAE and R², for float targets.
    pub regression: Option<RegressionMetrics>,
    /// For class targets: how many samples had their label at each rank of the outputs
    /// (0 = the arg-max).
    label_ranks: Vec<u64>,
}

impl Evaluation {
    /// The fraction of samples whose label is among the `k` largest outputs, for class
    /// targets and `k ≥ 1` (`None` otherwise).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{evaluate, ndarray::array, tensor, Dataset, Linear};
    /// // logits [x, 0, −x]
    /// let model = Linear::from_parts(tensor::from_vec(vec![1.0, 0.0, -1.0], &[3, 1])?, None)?;
    /// // three classes, though class 2 has no sample here
    /// let data = Dataset::from_floats(array![[2.0], [-1.0], [0.5]], vec![0, 0, 1])?.with_num_classes(3)?;
    /// let eval = evaluate(&model, &data, 3)?;
    /// // the labels rank first, third and second among the outputs
    /// assert_eq!(eval.top_k_accuracy(1), Some(1.0 / 3.0));
    /// assert_eq!(eval.top_k_accuracy(2), Some(2.0 / 3.0));
    /// assert_eq!(eval.top_k_accuracy(3), Some(1.0));
    /// assert_eq!(eval.top_k_accuracy(0), None);
    /// // a subset whose labels are all 0, which the model puts in class 2 (an output the
    /// // data set does not know of): counted as wrong, not refused
    /// let subset = Dataset::from_floats(array![[-2.0]], vec![0])?;
    /// assert_eq!(evaluate(&model, &subset, 1)?.top_k_accuracy(1), Some(0.0));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn top_k_accuracy(&self, k: usize) -> Option<f64> {
        if self.label_ranks.is_empty() || self.samples == 0 || k == 0 {
            return None;
        }
        let hits: u64 = self.label_ranks.iter().take(k).sum();
        Some(hits as f64 / self.samples as f64)
    }

    /// The value of `metric`, when the targets have it.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{evaluate, ndarray::array, tensor, Dataset, Linear, Metric, Targets};
    /// // y = x predicted by y = 2x: errors 1 and 2
    /// let model = Linear::from_parts(tensor::from_vec(vec![2.0], &[1, 1])?, None)?;
    /// let data = Dataset::new(array![[1.0f32], [2.0]], Targets::Values(array![[1.0f32], [2.0]].into_dyn()))?;
    /// let eval = evaluate(&model, &data, 2)?;
    /// assert_eq!(eval.metric(Metric::Mae), Some(1.5));
    /// assert_eq!(eval.metric(Metric::Mse), Some(2.5));
    /// assert_eq!(eval.metric(Metric::Accuracy), None); // float targets have no accuracy
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn metric(&self, metric: Metric) -> Option<f64> {
        let regression = self.regression.as_ref();
        match metric {
            Metric::Loss => Some(self.loss),
            Metric::Accuracy => self.accuracy,
            Metric::TopK(k) => self.top_k_accuracy(k),
            Metric::Mse => regression.map(RegressionMetrics::mse),
            Metric::Mae => regression.map(RegressionMetrics::mae),
            Metric::R2 => regression.map(RegressionMetrics::r2),
        }
    }

    /// Every metric the targets have, in a fixed order: loss; accuracy and, with more than
    /// 5 classes, top-5 accuracy; MSE, MAE and R² for float targets.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{evaluate, ndarray::array, tensor, Dataset, Linear, Metric};
    /// let model = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
    /// let data = Dataset::from_floats(array![[2.0], [-1.0]], vec![1, 0])?;
    /// let eval = evaluate(&model, &data, 2)?;
    /// let names: Vec<Metric> = eval.metrics().into_iter().map(|(m, _)| m).collect();
    /// assert_eq!(names, [Metric::Loss, Metric::Accuracy]); // 2 classes: no top-5
    /// assert_eq!(eval.metrics()[1].1, 1.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn metrics(&self) -> Vec<(Metric, f64)> {
        let mut all = vec![Metric::Loss, Metric::Accuracy];
        if self.label_ranks.len() > 5 {
            all.push(Metric::TopK(5));
        }
        all.extend([Metric::Mse, Metric::Mae, Metric::R2]);
        all.into_iter()
            .filter_map(|m| self.metric(m).map(|v| (m, v)))
            .collect()
    }
}

/// Evaluates `model` on `data` with the default loss for its targets
/// ([`Loss::default_for`]); see [`evaluate_with`].
///
/// # Errors
/// As [`evaluate_with`].
///
/// # Examples
/// ```
/// use tapegrad::{evaluate, ndarray::array, tensor, Dataset, Linear};
/// // a fixed classifier: class 1 when x > 0
/// let model = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
/// let data = Dataset::from_floats(array![[2.0], [-1.0], [3.0]], vec![1, 0, 0])?;
/// let eval = evaluate(&model, &data, 2)?;
/// assert!((eval.accuracy.unwrap() - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(eval.confusion.unwrap().count(0, 1), 1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn evaluate(model: &dyn Module, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    evaluate_with(model, data, &Loss::default_for(data.targets()), batch_size)
}

/// Evaluates `model` on `data` in [`Mode::Eval`] (dropout off, every unit used) on an
/// inference tape, `batch_size` samples at a time: the mean `loss` and the metrics of the
/// data's targets (accuracy, top-k and the confusion matrix for classes; MSE, MAE and R²
/// for float targets; per-label accuracy for multi-label targets).
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `batch_size` is 0, the loss does not fit the targets, or
/// `data` does not fit `model` (see [`fit`](crate::fit)'s checks).
///
/// # Examples
/// ```
/// use tapegrad::prelude::*;
/// // y = 2x fitted exactly by a 1×1 linear layer
/// let model = Linear::from_parts(tensor::from_vec(vec![2.0], &[1, 1])?, None)?;
/// let x = ndarray::array![[1.0f32], [2.0], [3.0]];
/// let data = Dataset::new(x, Targets::Values(ndarray::array![[2.0f32], [4.0], [6.0]].into_dyn()))?;
/// let eval = evaluate_with(&model, &data, &Loss::L1, 2)?;
/// assert_eq!((eval.loss, eval.metric(Metric::R2)), (0.0, Some(1.0)));
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn evaluate_with(
    model: &dyn Module,
    data: &Dataset,
    loss: &Loss,
    batch_size: usize,
) -> Result<Evaluation> {
    check_data("evaluate", "data set", model, data, loss)?;
    evaluate_checked(model, data, loss, batch_size)
}

/// [`evaluate_with`] on data already checked against the model and the loss ([`fit`]
/// checks its validation set once, not every epoch).
///
/// [`fit`]: crate::fit
pub(super) fn evaluate_checked(
    model: &dyn Module,
    data: &Dataset,
    loss: &Loss,
    batch_size: usize,
) -> Result<Evaluation> {
    let classes = data.num_classes();
    let mut evaluation = Evaluation {
        loss: 0.0,
        samples: 0,
        accuracy: None,
        confusion: None,
        regression: None,
        label_ranks: Vec::new(),
    };
    let (mut right, mut labelled) = (0u64, 0u64);
    // under BCE with logits the metrics see probabilities σ(output); a custom loss's
    // multi-label outputs are taken for logits (1 above 0), the others' for estimates of
    // the 0/1 targets (1 above 0.5)
    let logits = matches!(loss, Loss::BceWithLogits);
    let threshold = match loss {
        Loss::Custom { .. } => 0.0,
        _ => 0.5,
    };
    let mut tape = Tape::inference();
    let mut batches = data.batches(batch_size)?;
    while let Some(batch) = batches.next() {
        tape.reset();
        let output = model.forward(tape.constant(batch.x.view()), Mode::Eval);
        let value = loss.compute_checked(output, &batch.targets).item();
        evaluation.loss += f64::from(value) * batch.len() as f64;
        evaluation.samples += batch.len();
        let scores = match logits {
            true => output.sigmoid().value(),
            false => output.value(),
        };
        match &batch.targets {
            BatchTargets::Classes(labels) => {
                let scores = as_rows(scores.view());
                let ranks = &mut evaluation.label_ranks;
                ranks.resize(scores.ncols().max(ranks.len()), 0);
                for (row, &label) in scores.rows().into_iter().zip(*labels) {
                    ranks[label_rank(row, label)] += 1;
                }
                (evaluation.confusion)
                    .get_or_insert_with(|| ConfusionMatrix::new(classes.max(scores.ncols())))
                    .add(&predictions(&scores), labels);
            }
            BatchTargets::Values(y) => {
                let (out, y) = (as_rows(scores.view()), as_rows(y.view()));
                (evaluation.regression)
                    .get_or_insert_with(RegressionMetrics::default)
                    .add(out, y);
            }
            BatchTargets::MultiLabel(y) => {
                let out = as_rows(scores.view());
                for (&z, &t) in out.iter().zip(y) {
                    right += u64::from((z > threshold) == (t > 0.5));
                }
                labelled += y.len() as u64;
            }
        }
    }
    let n = evaluation.samples.max(1) as f64;
    evaluation.loss /= n;
    if let Some(confusion) = &evaluation.confusion {
        evaluation.accuracy = Some(confusion.accuracy());
    }
    if labelled > 0 {
        evaluation.accuracy = Some(right as f64 / labelled as f64);
    }
    Ok(evaluation)
}

/// `x` (`[rows, ...]`, contiguous) as `[rows, rest]`.
fn as_rows(x: ArrayViewD<'_, Elem>) -> ArrayView2<'_, Elem> {
    let rows = x.len_of(Axis(0));
    let rest = x.len() / rows.max(1);
    x.into_shape_with_order((rows, rest))
        .expect("outputs and targets of a batch are contiguous")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dataset, Linear, tensor};
    use ndarray::array;

    #[test]
    fn a_model_of_many_classes_evaluates_in_memory_of_its_samples() {
        // 100 000 classes: a dense confusion matrix would take 80 GB
        let classes = 100_000;
        let weights: Vec<f32> = (0..classes).map(|c| c as f32).collect();
        let model =
            Linear::from_parts(tensor::from_vec(weights, &[classes, 1]).unwrap(), None).unwrap();
        // outputs c·x: the largest class for x > 0, class 0 (ties to the first) for x = 0
        let data =
            Dataset::from_floats(array![[1.0f32], [0.0], [2.0]], vec![classes - 1, 0, 5]).unwrap();
        let eval = evaluate(&model, &data, 3).unwrap();
        assert_eq!(eval.accuracy, Some(2.0 / 3.0));
        let confusion = eval.confusion.unwrap();
        assert_eq!((confusion.classes(), confusion.total()), (classes, 3));
        assert_eq!(confusion.count(5, classes - 1), 1);
    }
}
