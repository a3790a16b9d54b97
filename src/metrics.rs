//! Classification metrics: arg-max predictions, accuracy, top-k accuracy, and the confusion
//! matrix with per-class accuracy; regression metrics (MSE, MAE, R²) accumulated over
//! batches.

use crate::tensor::Elem;
use ndarray::{ArrayBase, ArrayView1, ArrayView2, Axis, Data, Ix2};
use std::collections::BTreeMap;
use std::fmt;

/// The predicted class of each row of `[samples, classes]` scores: the index of the largest
/// score (the first one on ties).
///
/// # Panics
/// If `scores` has no columns.
///
/// # Examples
/// ```
/// use tapegrad::{metrics, ndarray::array};
/// assert_eq!(metrics::predictions(&array![[0.1, 2.0, -1.0], [3.0, 3.0, 0.0]]), vec![1, 0]);
/// ```
#[track_caller]
pub fn predictions<S: Data<Elem = Elem>>(scores: &ArrayBase<S, Ix2>) -> Vec<usize> {
    assert!(
        scores.ncols() > 0,
        "predictions: expected at least one class column, found shape {:?}",
        scores.shape()
    );
    scores
        .axis_iter(Axis(0))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, Elem::NEG_INFINITY), |best, (j, &v)| {
                    if v > best.1 { (j, v) } else { best }
                })
                .0
        })
        .collect()
}

/// The fraction of `predicted` equal to `labels`: `accuracy = #correct / N` (0 for no
/// samples).
///
/// # Panics
/// If the two lengths differ.
///
/// # Examples
/// ```
/// assert_eq!(tapegrad::metrics::accuracy(&[1, 0, 2, 2], &[1, 0, 1, 2]), 0.75);
/// ```
#[track_caller]
pub fn accuracy(predicted: &[usize], labels: &[usize]) -> f64 {
    assert_eq!(
        predicted.len(),
        labels.len(),
        "accuracy: {} predictions for {} labels",
        predicted.len(),
        labels.len()
    );
    if labels.is_empty() {
        return 0.0;
    }
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    correct as f64 / labels.len() as f64
}

/// The fraction of rows of `[samples, classes]` scores whose true label is among the `k`
/// highest scores (0 for no samples), as `torchmetrics`' `MulticlassAccuracy(top_k=k)` and
/// scikit-learn's `top_k_accuracy_score`.
///
/// Ties are broken by index, the earlier class ranking higher, the rule [`predictions`]
/// uses: the label `y` of a row counts when fewer than `k` classes `j` beat it, where `j`
/// beats `y` if `s_j > s_y`, or `s_j = s_y` and `j < y`. So `k = 1` gives exactly
/// `accuracy(&predictions(scores), labels)`, and a model that outputs the same score for
/// every class is credited with one class, not all of them. A NaN score ranks like `−∞`.
/// With `k` at least the number of classes the result is 1.
///
/// # Panics
/// If the number of labels is not the number of rows, a label is not below the number of
/// classes, or `k` is 0: `top_k_accuracy: 3 labels for 4 score rows`.
///
/// # Examples
/// ```
/// use tapegrad::{metrics, ndarray::array};
/// let scores = array![[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.7, 0.2, 0.1]];
/// let labels = [2, 1, 2];
/// assert_eq!(metrics::top_k_accuracy(&scores, &labels, 1), 0.0);
/// // row 0: label 2 is second; row 1: label 1 is third (tied with class 0, which comes first)
/// assert_eq!(metrics::top_k_accuracy(&scores, &labels, 2), 1.0 / 3.0);
/// assert_eq!(metrics::top_k_accuracy(&scores, &labels, 3), 1.0);
/// ```
#[track_caller]
pub fn top_k_accuracy<S: Data<Elem = Elem>>(
    scores: &ArrayBase<S, Ix2>,
    labels: &[usize],
    k: usize,
) -> f64 {
    assert!(k > 0, "top_k_accuracy: k must be at least 1, got 0");
    assert_eq!(
        labels.len(),
        scores.nrows(),
        "top_k_accuracy: {} labels for {} score rows",
        labels.len(),
        scores.nrows()
    );
    if let Some((row, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &y)| y >= scores.ncols())
    {
        panic!(
            "top_k_accuracy: label {label} at row {row} out of range for scores shape {:?}",
            scores.shape()
        );
    }
    if labels.is_empty() {
        return 0.0;
    }
    let hits = scores
        .axis_iter(Axis(0))
        .zip(labels)
        .filter(|(row, y)| label_rank(row.view(), **y) < k)
        .count();
    hits as f64 / labels.len() as f64
}

/// The rank of `label` among a row of class scores under [`top_k_accuracy`]'s rule: how many
/// classes beat it (0 for the arg-max of [`predictions`]).
pub(crate) fn label_rank(row: ArrayView1<'_, Elem>, label: usize) -> usize {
    let key = |s: Elem| if s.is_nan() { Elem::NEG_INFINITY } else { s };
    let own = key(row[label]);
    row.iter()
        .enumerate()
        .filter(|&(j, &s)| {
            let s = key(s);
            s > own || (s == own && j < label)
        })
        .count()
}

/// Counts of (true class, predicted class) pairs: row = true class, column = prediction.
///
/// Only the pairs that occur are stored, so its memory grows with the samples counted, not
/// with the square of the classes (a 100 000-class model evaluated on a few samples takes a
/// few entries, not 80 GB).
///
/// # Examples
/// ```
/// use tapegrad::metrics::ConfusionMatrix;
/// let mut m = ConfusionMatrix::new(2);
/// m.add(&[0, 0, 1, 1], &[0, 1, 1, 1]); // predictions, then true labels
/// assert_eq!(m.count(0, 1), 0);
/// assert_eq!(m.count(1, 0), 1); // one true 1 predicted as 0
/// assert_eq!(m.accuracy(), 0.75);
/// assert_eq!(m.per_class_accuracy(), vec![Some(1.0), Some(2.0 / 3.0)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    /// The nonzero counts by (true class, prediction).
    counts: BTreeMap<(usize, usize), u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `classes` classes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::metrics::ConfusionMatrix;
    /// let m = ConfusionMatrix::new(3);
    /// assert_eq!((m.classes(), m.total()), (3, 0));
    /// assert_eq!(m.per_class_accuracy(), vec![None, None, None]);
    /// ```
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: BTreeMap::new(),
        }
    }

    /// Adds one count per pair of prediction and true label.
    ///
    /// # Panics
    /// If the lengths differ or a class is not below the number of classes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::metrics::ConfusionMatrix;
    /// let mut m = ConfusionMatrix::new(2);
    /// m.add(&[1, 1], &[0, 1]);
    /// m.add(&[0], &[0]);
    /// assert_eq!((m.count(0, 1), m.count(1, 1), m.count(0, 0)), (1, 1, 1));
    /// assert_eq!(m.total(), 3);
    /// ```
    #[track_caller]
    pub fn add(&mut self, predicted: &[usize], labels: &[usize]) {
        assert_eq!(
            predicted.len(),
            labels.len(),
            "confusion_matrix: {} predictions for {} labels",
            predicted.len(),
            labels.len()
        );
        for (&p, &t) in predicted.iter().zip(labels) {
            assert!(
                p < self.classes && t < self.classes,
                "confusion_matrix: class {} out of range for {} classes",
                p.max(t),
                self.classes
            );
            *self.counts.entry((t, p)).or_insert(0) += 1;
        }
    }

    /// Number of classes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::metrics::ConfusionMatrix;
    /// assert_eq!(ConfusionMatrix::new(10).classes(), 10);
    /// ```
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How many samples of true class `truth` were predicted as `predicted`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::metrics::ConfusionMatrix;
    /// let mut m = ConfusionMatrix::new(3);
    /// m.add(&[2, 2, 0], &[1, 1, 1]); // two true 1s predicted as 2
    /// assert_eq!(m.count(1, 2), 2);
    /// assert_eq!(m.count(2, 1), 0);
    /// ```
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts.get(&(truth, predicted)).copied().unwrap_or(0)
    }

    /// Number of samples counted.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::metrics::ConfusionMatrix;
    /// let mut m = ConfusionMatrix::new(2);
    /// m.add(&[0, 1, 1, 0], &[0, 0, 1, 1]);
    /// assert_eq!(m.total(), 4);
    /// ```
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The fraction on the diagonal (0 when empty).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::metrics::ConfusionMatrix;
    /// let mut m = ConfusionMatrix::new(2);
    /// assert_eq!(m.accuracy(), 0.0); // empty
    /// m.add(&[0, 1, 1, 0], &[0, 0, 1, 1]);
    /// assert_eq!(m.accuracy(), 0.5);
    /// ```
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (self.counts.iter())
            .filter(|((t, p), _)| t == p)
            .map(|(_, n)| n)
            .sum();
        match self.total() {
            0 => 0.0,
            total => correct as f64 / total as f64,
        }
    }

    /// For each class, the fraction of its samples predicted correctly (its recall), or
    /// `None` for a class with no samples.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::metrics::ConfusionMatrix;
    /// let mut m = ConfusionMatrix::new(3);
    /// m.add(&[0, 0, 1, 0], &[0, 0, 1, 1]);
    /// // class 0: 2 of 2, class 1: 1 of 2, class 2: no samples
    /// assert_eq!(m.per_class_accuracy(), vec![Some(1.0), Some(0.5), None]);
    /// ```
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        let (mut right, mut all) = (vec![0u64; self.classes], vec![0u64; self.classes]);
        for (&(t, p), &n) in &self.counts {
            all[t] += n;
            right[t] += if t == p { n } else { 0 };
        }
        (right.iter().zip(&all))
            .map(|(&right, &all)| (all > 0).then(|| right as f64 / all as f64))
            .collect()
    }
}

/// A table with one row per true class, its counts per predicted class, and its accuracy.
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .values()
            .max()
            .map_or(1, |m| m.to_string().len())
            .max(self.classes.to_string().len());
        write!(f, "true\\pred")?;
        for p in 0..self.classes {
            write!(f, " {p:>width$}")?;
        }
        writeln!(f, "  accuracy")?;
        for (t, acc) in self.per_class_accuracy().into_iter().enumerate() {
            write!(f, "{t:>9}")?;
            for p in 0..self.classes {
                write!(f, " {:>width$}", self.count(t, p))?;
            }
            match acc {
                Some(a) => writeln!(f, "  {:>7.2}%", 100.0 * a)?,
                None => writeln!(f, "        -")?,
            }
        }
        Ok(())
    }
}

/// Mean squared error, mean absolute error and the coefficient of determination R² of
/// predictions against targets, accumulated over batches of `[rows, outputs]` arrays (and
/// over shards with [`RegressionMetrics::merge`]).
///
/// Every sum is kept in `f64`. The targets' spread, `SS_tot`, is updated per output with
/// Welford's algorithm, one row at a time in a single pass, and shards are combined with the
/// pairwise formula of Chan, Golub & LeVeque (1979). Unlike sums of `y` and `y²`, this keeps
/// R² accurate for targets far from zero compared with their spread: for 10 000 targets
/// `1.6e7 + (0 to 4)`, the sums give a negative `SS_tot`.
///
/// # Examples
/// ```
/// use tapegrad::{metrics::RegressionMetrics, ndarray::array};
/// let mut m = RegressionMetrics::default();
/// m.add(array![[1.0], [2.0]].view(), array![[1.0], [3.0]].view());
/// m.add(array![[3.0]].view(), array![[5.0]].view());
/// // errors 0, −1, −2; targets 1, 3, 5 around their mean 3
/// assert_eq!(m.count(), 3);
/// assert_eq!(m.mse(), 5.0 / 3.0);
/// assert_eq!(m.mae(), 1.0);
/// assert_eq!(m.r2(), 1.0 - 5.0 / 8.0); // SS_res = 0 + 1 + 4, SS_tot = 4 + 0 + 4
/// ```
#[derive(Debug, Clone, Default)]
pub struct RegressionMetrics {
    /// Rows added; the number of outputs is fixed once this is not 0.
    rows: u64,
    /// One entry per output column.
    columns: Vec<ColumnSums>,
}

/// The running sums of one output column.
#[derive(Debug, Clone, Copy, Default)]
struct ColumnSums {
    /// `Σ (ŷ − y)²`, the column's `SS_res`.
    squared_error: f64,
    /// `Σ |ŷ − y|`.
    absolute_error: f64,
    /// The mean of the targets so far.
    mean: f64,
    /// `Σ (y − mean)²`, the column's `SS_tot` (Welford's `M2`).
    spread: f64,
}

impl RegressionMetrics {
    /// Adds a batch of predictions and their targets, both `[rows, outputs]`. The first batch
    /// with rows fixes the number of outputs.
    ///
    /// # Panics
    /// If the two shapes differ
    /// (`regression_metrics: shapes differ; prediction shape [4, 1], target shape [4, 2]`), or
    /// the number of outputs differs from earlier batches'.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{metrics::RegressionMetrics, ndarray::array};
    /// let mut m = RegressionMetrics::default();
    /// m.add(array![[1.0, 0.0]].view(), array![[2.0, 0.0]].view());
    /// m.add(array![[0.0, 4.0]].view(), array![[0.0, 2.0]].view());
    /// assert_eq!((m.count(), m.outputs()), (2, 2));
    /// assert_eq!(m.mse(), (1.0 + 4.0) / 4.0); // errors 1, 0, 0, 2 over 4 elements
    /// ```
    #[track_caller]
    pub fn add(&mut self, predicted: ArrayView2<'_, Elem>, target: ArrayView2<'_, Elem>) {
        assert!(
            predicted.shape() == target.shape(),
            "regression_metrics: shapes differ; prediction shape {:?}, target shape {:?}",
            predicted.shape(),
            target.shape()
        );
        let (rows, outputs) = target.dim();
        if self.rows > 0 {
            assert!(
                outputs == self.columns.len(),
                "regression_metrics: expected {} outputs as in earlier batches, found shape {:?}",
                self.columns.len(),
                target.shape()
            );
        } else if rows > 0 {
            self.columns = vec![ColumnSums::default(); outputs];
        }
        for (predicted, target) in predicted.outer_iter().zip(target.outer_iter()) {
            self.rows += 1;
            let n = self.rows as f64;
            for ((column, &p), &y) in self.columns.iter_mut().zip(&predicted).zip(&target) {
                let (p, y) = (f64::from(p), f64::from(y));
                column.squared_error += (p - y) * (p - y);
                column.absolute_error += (p - y).abs();
                let before = y - column.mean;
                column.mean += before / n;
                column.spread += before * (y - column.mean);
            }
        }
    }

    /// Adds the batches another accumulator has seen, as if they had been added here (up to
    /// rounding): for metrics computed in shards, one per thread or process.
    ///
    /// # Panics
    /// If both have rows with different numbers of outputs.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{metrics::RegressionMetrics, ndarray::{array, s}};
    /// let (p, y) = (array![[1.0], [2.0], [4.0]], array![[0.0], [2.0], [6.0]]);
    /// let mut all = RegressionMetrics::default();
    /// all.add(p.view(), y.view());
    /// let (mut a, mut b) = (RegressionMetrics::default(), RegressionMetrics::default());
    /// a.add(p.slice(s![..1, ..]), y.slice(s![..1, ..]));
    /// b.add(p.slice(s![1.., ..]), y.slice(s![1.., ..]));
    /// a.merge(&b); // as if all three rows had been added to `a`
    /// assert_eq!((a.count(), a.mse(), a.mae()), (all.count(), all.mse(), all.mae()));
    /// assert!((a.r2() - all.r2()).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn merge(&mut self, other: &RegressionMetrics) {
        if other.rows == 0 {
            return;
        }
        if self.rows == 0 {
            self.clone_from(other);
            return;
        }
        assert!(
            self.columns.len() == other.columns.len(),
            "regression_metrics: cannot merge {} outputs into {}",
            other.columns.len(),
            self.columns.len()
        );
        let (a, b) = (self.rows as f64, other.rows as f64);
        let n = a + b;
        for (mine, theirs) in self.columns.iter_mut().zip(&other.columns) {
            let shift = theirs.mean - mine.mean;
            mine.squared_error += theirs.squared_error;
            mine.absolute_error += theirs.absolute_error;
            mine.spread += theirs.spread + shift * shift * a * b / n;
            mine.mean += shift * b / n;
        }
        self.rows += other.rows;
    }

    /// Number of rows (samples) added.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{metrics::RegressionMetrics, ndarray::Array2};
    /// let mut m = RegressionMetrics::default();
    /// m.add(Array2::zeros((5, 3)).view(), Array2::ones((5, 3)).view());
    /// assert_eq!(m.count(), 5); // rows, not elements
    /// ```
    pub fn count(&self) -> u64 {
        self.rows
    }

    /// Number of outputs per row (0 before the first row).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{metrics::RegressionMetrics, ndarray::Array2};
    /// let mut m = RegressionMetrics::default();
    /// assert_eq!(m.outputs(), 0);
    /// m.add(Array2::zeros((5, 3)).view(), Array2::ones((5, 3)).view());
    /// assert_eq!(m.outputs(), 3);
    /// ```
    pub fn outputs(&self) -> usize {
        self.columns.len()
    }

    /// Mean squared error over all elements, `(1/(N·K)) Σ (ŷ − y)²` (0 when empty, as
    /// [`accuracy`]). The same as scikit-learn's `mean_squared_error` and
    /// `torch.nn.functional.mse_loss`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{metrics::RegressionMetrics, ndarray::array};
    /// let mut m = RegressionMetrics::default();
    /// m.add(array![[1.0], [4.0]].view(), array![[2.0], [2.0]].view());
    /// assert_eq!(m.mse(), (1.0 + 4.0) / 2.0);
    /// ```
    pub fn mse(&self) -> f64 {
        self.mean_of(|c| c.squared_error)
    }

    /// Mean absolute error over all elements, `(1/(N·K)) Σ |ŷ − y|` (0 when empty). The same
    /// as scikit-learn's `mean_absolute_error` and `torch.nn.functional.l1_loss`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{metrics::RegressionMetrics, ndarray::array};
    /// let mut m = RegressionMetrics::default();
    /// m.add(array![[1.0], [4.0]].view(), array![[2.0], [2.0]].view());
    /// assert_eq!(m.mae(), (1.0 + 2.0) / 2.0);
    /// ```
    pub fn mae(&self) -> f64 {
        self.mean_of(|c| c.absolute_error)
    }

    /// The coefficient of determination, averaged over outputs:
    /// `R² = (1/K) Σ_k (1 − SS_res_k / SS_tot_k)` with `SS_res_k = Σ_i (y_ik − ŷ_ik)²` and
    /// `SS_tot_k = Σ_i (y_ik − ȳ_k)²`, each output around its own mean. This is
    /// scikit-learn's `r2_score` with its default `multioutput='uniform_average'`, also the
    /// default averaging of `torchmetrics`' `R2Score`; with one output it is the usual R².
    ///
    /// 1 is a perfect fit, 0 is no better than predicting each output's mean, and it is
    /// negative for worse. An output whose targets are all equal (`SS_tot = 0`) scores 1 if
    /// predicted exactly and 0 otherwise, as scikit-learn's `force_finite=True`. NaN with
    /// fewer than two rows, where R² is not defined (scikit-learn also returns NaN).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{metrics::RegressionMetrics, ndarray::array};
    /// let mut m = RegressionMetrics::default();
    /// m.add(array![[1.0], [2.0]].view(), array![[1.0], [3.0]].view());
    /// // SS_res = 0 + 1, SS_tot = 1 + 1 around the mean 2
    /// assert_eq!(m.r2(), 1.0 - 1.0 / 2.0);
    /// let mut one_row = RegressionMetrics::default();
    /// one_row.add(array![[1.0]].view(), array![[1.0]].view());
    /// assert!(one_row.r2().is_nan());
    /// ```
    pub fn r2(&self) -> f64 {
        if self.rows < 2 || self.columns.is_empty() {
            return f64::NAN;
        }
        let score = |c: &ColumnSums| {
            if c.spread != 0.0 {
                // NaN when a prediction or a target was NaN
                1.0 - c.squared_error / c.spread
            } else if c.squared_error == 0.0 {
                1.0
            } else if c.squared_error.is_nan() {
                f64::NAN
            } else {
                0.0
            }
        };
        self.columns.iter().map(score).sum::<f64>() / self.columns.len() as f64
    }

    /// `Σ sum(column) / (rows · outputs)`, 0 when there are no elements.
    fn mean_of(&self, sum: impl Fn(&ColumnSums) -> f64) -> f64 {
        let elements = self.rows as f64 * self.columns.len() as f64;
        if elements == 0.0 {
            return 0.0;
        }
        self.columns.iter().map(sum).sum::<f64>() / elements
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor;
    use ndarray::{Array2, array, s};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn predictions_take_the_first_maximum() {
        let scores = array![[1.0, 1.0], [-5.0, -4.0]];
        assert_eq!(predictions(&scores), vec![0, 1]);
    }

    #[test]
    fn confusion_matrix_counts_and_prints() {
        let mut m = ConfusionMatrix::new(3);
        m.add(&[0, 2, 2, 1], &[0, 2, 1, 1]);
        assert_eq!(m.total(), 4);
        assert_eq!(m.count(1, 2), 1);
        assert_eq!(
            m.per_class_accuracy(),
            vec![Some(1.0), Some(0.5), Some(1.0)]
        );
        let text = m.to_string();
        assert!(text.starts_with("true\\pred 0 1 2  accuracy\n"), "{text}");
        assert!(text.contains("        1 0 1 1    50.00%"), "{text}");
        assert_eq!(
            ConfusionMatrix::new(2).per_class_accuracy(),
            vec![None, None]
        );
    }

    #[test]
    #[should_panic(expected = "accuracy: 2 predictions for 3 labels")]
    fn accuracy_length_mismatch_panics() {
        accuracy(&[0, 1], &[0, 1, 2]);
    }

    #[test]
    #[should_panic(expected = "confusion_matrix: class 3 out of range for 3 classes")]
    fn confusion_class_out_of_range_panics() {
        ConfusionMatrix::new(3).add(&[3], &[0]);
    }

    #[test]
    fn top_1_is_accuracy_of_predictions_and_k_at_least_classes_is_1() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // integer scores in [-2, 2]: many ties, and a NaN in two rows
        let mut scores = tensor::uniform(&[60, 5], -2.5, 2.5, &mut rng)
            .unwrap()
            .into_dimensionality::<Ix2>()
            .unwrap()
            .mapv(Elem::round);
        scores[[3, 0]] = Elem::NAN;
        scores[[8, 2]] = Elem::NAN;
        let labels: Vec<usize> = (0..60).map(|i| (i * 7 + i / 3) % 5).collect();
        let tied_rows = scores
            .rows()
            .into_iter()
            .zip(&labels)
            .filter(|(row, y)| row.iter().filter(|&&s| s == row[**y]).count() > 1)
            .count();
        assert!(tied_rows > 10, "{tied_rows}");
        let top_1 = top_k_accuracy(&scores, &labels, 1);
        assert_eq!(top_1, accuracy(&predictions(&scores), &labels));
        let by_k: Vec<f64> = (1..=7)
            .map(|k| top_k_accuracy(&scores.view(), &labels, k))
            .collect();
        assert!(by_k.windows(2).all(|w| w[0] <= w[1]), "{by_k:?}");
        assert!(by_k[0] < 1.0 && by_k[3] < 1.0, "{by_k:?}");
        assert_eq!(&by_k[4..], &[1.0, 1.0, 1.0]);
    }

    #[test]
    fn top_k_breaks_ties_by_index() {
        // the same scores in each row: class c ranks c-th among the tied 1s, class 3 last
        let scores = Array2::from_shape_fn((4, 4), |(_, j)| if j < 3 { 1.0 } else { 0.0 });
        let labels = [0, 1, 2, 3];
        let by_k: Vec<f64> = (1..=4)
            .map(|k| top_k_accuracy(&scores, &labels, k))
            .collect();
        assert_eq!(by_k, vec![0.25, 0.5, 0.75, 1.0]);
        // constant scores credit one class, not all of them
        assert_eq!(
            top_k_accuracy(&Array2::zeros((3, 3)), &[0, 1, 2], 1),
            1.0 / 3.0
        );
        // NaN ranks like −∞, tied with −∞ by index
        let scores = array![[Elem::NAN, 0.5, Elem::NEG_INFINITY]];
        assert_eq!(top_k_accuracy(&scores, &[0], 1), 0.0);
        assert_eq!(top_k_accuracy(&scores, &[0], 2), 1.0);
        assert_eq!(top_k_accuracy(&scores, &[2], 2), 0.0);
        assert_eq!(top_k_accuracy(&scores, &[2], 3), 1.0);
        assert_eq!(top_k_accuracy(&Array2::zeros((0, 3)), &[], 1), 0.0);
    }

    #[test]
    #[should_panic(expected = "top_k_accuracy: 3 labels for 4 score rows")]
    fn top_k_length_mismatch_panics() {
        top_k_accuracy(&Array2::zeros((4, 2)), &[0, 1, 0], 1);
    }

    #[test]
    #[should_panic(
        expected = "top_k_accuracy: label 2 at row 1 out of range for scores shape [2, 2]"
    )]
    fn top_k_label_out_of_range_panics() {
        top_k_accuracy(&Array2::zeros((2, 2)), &[0, 2], 5);
    }

    #[test]
    #[should_panic(expected = "top_k_accuracy: k must be at least 1, got 0")]
    fn top_k_zero_panics() {
        top_k_accuracy(&Array2::zeros((2, 2)), &[0, 1], 0);
    }

    /// Targets and predictions with hand-computed metrics:
    /// output 0: y = [1, 2, 3], ŷ = [1, 2, 4]; SS_res = 1, ȳ = 2, SS_tot = 2, R² = 0.5;
    /// output 1: y = [0, 2, 4], ŷ = [0.5, 2, 3]; SS_res = 0.25 + 1 = 1.25, ȳ = 2,
    /// SS_tot = 8, R² = 1 − 1.25/8 = 0.84375.
    /// MSE = 2.25/6 = 0.375, MAE = (1 + 1.5)/6, R² = (0.5 + 0.84375)/2 = 0.671875
    /// (variance-weighted would give 1 − 2.25/10 = 0.775).
    fn hand_example() -> (Array2<Elem>, Array2<Elem>) {
        let predicted = array![[1.0, 0.5], [2.0, 2.0], [4.0, 3.0]];
        let target = array![[1.0, 0.0], [2.0, 2.0], [3.0, 4.0]];
        (predicted, target)
    }

    fn assert_hand_example(m: &RegressionMetrics) {
        assert_eq!((m.count(), m.outputs()), (3, 2));
        assert!((m.mse() - 0.375).abs() < 1e-12, "{m:?}");
        assert!((m.mae() - 2.5 / 6.0).abs() < 1e-12, "{m:?}");
        assert!((m.r2() - 0.671875).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn regression_metrics_by_hand_in_any_batching() {
        let (p, t) = hand_example();
        let mut whole = RegressionMetrics::default();
        whole.add(p.view(), t.view());
        assert_hand_example(&whole);
        let mut by_row = RegressionMetrics::default();
        for i in 0..3 {
            by_row.add(p.slice(s![i..=i, ..]), t.slice(s![i..=i, ..]));
        }
        by_row.add(p.slice(s![0..0, ..]), t.slice(s![0..0, ..]));
        assert_hand_example(&by_row);
        // two shards, merged either way round, and merges with empty accumulators
        let (mut a, mut b) = (RegressionMetrics::default(), RegressionMetrics::default());
        a.add(p.slice(s![..1, ..]), t.slice(s![..1, ..]));
        b.add(p.slice(s![1.., ..]), t.slice(s![1.., ..]));
        let mut ab = a.clone();
        ab.merge(&b);
        assert_hand_example(&ab);
        b.merge(&a);
        b.merge(&RegressionMetrics::default());
        assert_hand_example(&b);
        let mut empty = RegressionMetrics::default();
        empty.merge(&b);
        assert_hand_example(&empty);
    }

    #[test]
    fn r2_stays_accurate_for_targets_far_from_zero() {
        // y = 1.6e7 + (i mod 5) over 10 000 rows (exact in f32): ȳ = 1.6e7 + 2,
        // SS_tot = 2·N; ŷ = y ± 1, SS_res = N; R² = 0.5. Sums of y and y² in f64 give
        // SS_tot < 0 here (Σy² ≈ 2.6e18 has a rounding step of 512).
        let rows = 10_000;
        let t = Array2::from_shape_fn((rows, 1), |(i, _)| 16_000_000.0 + (i % 5) as Elem);
        let p = Array2::from_shape_fn((rows, 1), |(i, _)| t[[i, 0]] + [1.0, -1.0][i % 2]);
        let mut whole = RegressionMetrics::default();
        whole.add(p.view(), t.view());
        let mut shards = RegressionMetrics::default();
        for (start, end) in [(0, 1), (1, 3_334), (3_334, rows)] {
            let mut shard = RegressionMetrics::default();
            for batch in (start..end).step_by(64).map(|i| i..(i + 64).min(end)) {
                shard.add(p.slice(s![batch.clone(), ..]), t.slice(s![batch, ..]));
            }
            shards.merge(&shard);
        }
        for m in [&whole, &shards] {
            assert_eq!(m.count(), rows as u64);
            assert!((m.r2() - 0.5).abs() < 1e-9, "{m:?}");
            assert!((m.mse() - 1.0).abs() < 1e-12 && (m.mae() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn r2_of_constant_targets_and_undefined_cases() {
        let mut m = RegressionMetrics::default();
        assert_eq!((m.count(), m.outputs(), m.mse(), m.mae()), (0, 0, 0.0, 0.0));
        assert!(m.r2().is_nan());
        m.add(array![[2.0, 5.0]].view(), array![[2.0, 4.0]].view());
        assert!(m.r2().is_nan(), "one row: R² is not defined");
        // output 0 is constant and exact (1), output 1 constant but missed (0)
        m.add(array![[2.0, 4.0]].view(), array![[2.0, 4.0]].view());
        assert_eq!(m.r2(), 0.5);
        assert_eq!(m.mse(), 0.25);
        let mut nan = RegressionMetrics::default();
        nan.add(
            array![[1.0], [2.0]].view(),
            array![[Elem::NAN], [2.0]].view(),
        );
        assert!(nan.r2().is_nan() && nan.mse().is_nan());
    }

    #[test]
    #[should_panic(
        expected = "regression_metrics: shapes differ; prediction shape [4, 1], target shape [4, 2]"
    )]
    fn regression_shape_mismatch_panics() {
        RegressionMetrics::default()
            .add(Array2::zeros((4, 1)).view(), Array2::zeros((4, 2)).view());
    }

    #[test]
    #[should_panic(
        expected = "regression_metrics: expected 2 outputs as in earlier batches, found shape [1, 3]"
    )]
    fn regression_output_count_change_panics() {
        let mut m = RegressionMetrics::default();
        m.add(Array2::zeros((2, 2)).view(), Array2::zeros((2, 2)).view());
        m.add(Array2::zeros((1, 3)).view(), Array2::zeros((1, 3)).view());
    }

    #[test]
    #[should_panic(expected = "regression_metrics: cannot merge 3 outputs into 2")]
    fn regression_merge_mismatch_panics() {
        let (mut a, mut b) = (RegressionMetrics::default(), RegressionMetrics::default());
        a.add(Array2::zeros((2, 2)).view(), Array2::zeros((2, 2)).view());
        b.add(Array2::zeros((2, 3)).view(), Array2::zeros((2, 3)).view());
        a.merge(&b);
    }
}
