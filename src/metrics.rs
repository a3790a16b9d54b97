//! Classification metrics: arg-max predictions, accuracy, and the confusion matrix with
//! per-class accuracy.

use crate::tensor::Elem;
use ndarray::{ArrayBase, Axis, Data, Ix2};
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

/// Counts of (true class, predicted class) pairs: row = true class, column = prediction.
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
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds one count per pair of prediction and true label.
    ///
    /// # Panics
    /// If the lengths differ or a class is not below the number of classes.
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
            self.counts[t * self.classes + p] += 1;
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How many samples of true class `truth` were predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The fraction on the diagonal (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        match self.total() {
            0 => 0.0,
            total => correct as f64 / total as f64,
        }
    }

    /// For each class, the fraction of its samples predicted correctly (its recall), or
    /// `None` for a class with no samples.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|t| {
                let row: u64 = (0..self.classes).map(|p| self.count(t, p)).sum();
                (row > 0).then(|| self.count(t, t) as f64 / row as f64)
            })
            .collect()
    }
}

/// A table with one row per true class, its counts per predicted class, and its accuracy.
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

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
}
