//! An in-memory data set of features and class labels; batches (shuffled by a seeded
//! generator, with or without the last partial batch), the full batch of gradient descent,
//! subsets and train/validation splits.
//!
//! Image features can stay the `u8` bytes they were stored in (60,000 Fashion-MNIST images
//! take 47 MB rather than 188 MB as `f32`); each batch is converted to `f32` as it is drawn,
//! applying the data set's fitted [`Scaler`] on the way, into a buffer the batch iterator
//! reuses.

use crate::data::preprocess::Scaler;
use crate::error::{Error, Result};
use crate::tensor::{Elem, Tensor};
use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// The stored feature matrix, `[samples, features]`.
#[derive(Debug, Clone)]
enum Features {
    /// Raw bytes, converted to `f32` per batch.
    Bytes(Array2<u8>),
    /// Floats.
    Floats(Array2<Elem>),
}

/// Samples (rows of features) with one class label each.
///
/// # Examples
/// ```
/// use tapegrad::{Dataset, ndarray::array};
/// let data = Dataset::from_bytes(array![[0u8, 255], [128, 0], [255, 255]], vec![0, 1, 1])?;
/// assert_eq!((data.len(), data.num_features(), data.num_classes()), (3, 2, 2));
/// let mut batches = data.batches(2)?;
/// let batch = batches.next().unwrap();
/// assert_eq!(batch.x[[0, 1]], 255.0); // bytes become f32 as the batch is drawn
/// assert_eq!(batch.labels, &[0, 1]);
/// assert_eq!(batches.next().unwrap().labels, &[1]); // the last, partial batch
/// assert!(batches.next().is_none());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dataset {
    features: Features,
    labels: Vec<usize>,
    num_classes: usize,
    scaler: Option<Scaler>,
}

impl Dataset {
    /// A data set of `f32` features `[samples, features]` and one label per sample.
    ///
    /// # Errors
    /// [`Error::Shape`] when the number of labels differs from the number of rows, or there
    /// are no features.
    pub fn from_floats(features: Array2<Elem>, labels: Vec<usize>) -> Result<Self> {
        Self::new(Features::Floats(features), labels)
    }

    /// A data set of byte features `[samples, features]` (such as image pixels), converted
    /// to `f32` batch by batch, and one label per sample.
    ///
    /// # Errors
    /// [`Error::Shape`] when the number of labels differs from the number of rows, or there
    /// are no features.
    pub fn from_bytes(features: Array2<u8>, labels: Vec<usize>) -> Result<Self> {
        Self::new(Features::Bytes(features), labels)
    }

    fn new(features: Features, labels: Vec<usize>) -> Result<Self> {
        let rows = match &features {
            Features::Bytes(x) => x.nrows(),
            Features::Floats(x) => x.nrows(),
        };
        if rows != labels.len() {
            return Err(Error::Shape {
                op: "dataset",
                expected: format!("one label per sample ({rows} samples)"),
                found: format!("{} labels", labels.len()),
            });
        }
        let width = match &features {
            Features::Bytes(x) => x.ncols(),
            Features::Floats(x) => x.ncols(),
        };
        if width == 0 {
            return Err(Error::Shape {
                op: "dataset",
                expected: "at least one feature per sample".into(),
                found: format!("{rows} samples of 0 features"),
            });
        }
        let num_classes = labels.iter().max().map_or(0, |&m| m + 1);
        Ok(Dataset {
            features,
            labels,
            num_classes,
            scaler: None,
        })
    }

    /// Sets the number of classes when some classes have no sample here (a small subset).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a label is not below `num_classes`.
    pub fn with_num_classes(mut self, num_classes: usize) -> Result<Self> {
        if self.num_classes > num_classes {
            return Err(Error::InvalidArgument {
                op: "dataset",
                message: format!(
                    "num_classes must exceed every label, got {num_classes} with label {}",
                    self.num_classes - 1
                ),
            });
        }
        self.num_classes = num_classes;
        Ok(self)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per sample (784 for a 28×28 image).
    pub fn num_features(&self) -> usize {
        match &self.features {
            Features::Bytes(x) => x.ncols(),
            Features::Floats(x) => x.ncols(),
        }
    }

    /// Number of classes: one more than the largest label, unless set with
    /// [`Dataset::with_num_classes`].
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The labels, one per sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Whether the features are stored as bytes (converted per batch) rather than `f32`.
    pub fn stores_bytes(&self) -> bool {
        matches!(self.features, Features::Bytes(_))
    }

    /// The preprocessing applied to every batch, if any.
    pub fn scaler(&self) -> Option<&Scaler> {
        self.scaler.as_ref()
    }

    /// Applies `scaler` to every batch drawn from now on (fit it on the training data only,
    /// then set the same scaler on the validation and test data).
    ///
    /// # Errors
    /// [`Error::Shape`] when the scaler was fitted on another number of features;
    /// [`Error::InvalidArgument`] when it fails [`Scaler::validate`] (a scaler read from
    /// outside with a non-finite or zero factor).
    pub fn set_scaler(&mut self, scaler: Scaler) -> Result<()> {
        if scaler.num_features() != self.num_features() {
            return Err(Error::Shape {
                op: "dataset::set_scaler",
                expected: format!("a scaler for {} features", self.num_features()),
                found: format!("one for {}", scaler.num_features()),
            });
        }
        scaler.validate()?;
        self.scaler = Some(scaler);
        Ok(())
    }

    /// Where the first NaN or infinite stored feature is (`"sample 5 feature 1 is NaN"`);
    /// `None` when every feature is finite.
    pub(crate) fn first_non_finite(&self) -> Option<String> {
        let Features::Floats(x) = &self.features else {
            return None;
        };
        let ((row, col), v) = x.indexed_iter().find(|(_, v)| !v.is_finite())?;
        Some(format!("sample {row} feature {col} is {v}"))
    }

    /// Writes the raw features (without the scaler) of sample `row` into `out` as `f32`.
    pub(crate) fn raw_row(&self, row: usize, out: &mut [Elem]) {
        match &self.features {
            Features::Bytes(x) => {
                for (o, &v) in out.iter_mut().zip(x.row(row)) {
                    *o = Elem::from(v);
                }
            }
            Features::Floats(x) => {
                for (o, &v) in out.iter_mut().zip(x.row(row)) {
                    *o = v;
                }
            }
        }
    }

    /// Writes the samples `rows` into `out` (`rows.len() × num_features`, row-major) as
    /// `f32`, with the scaler applied.
    /// Large batches are converted by all threads, in blocks of rows.
    fn write_rows(&self, rows: &[usize], out: &mut [Elem]) {
        const BLOCK_ROWS: usize = 16;
        let d = self.num_features();
        if crate::threads::parallel(out.len()) && d > 0 {
            out.par_chunks_mut(BLOCK_ROWS * d)
                .zip(rows.par_chunks(BLOCK_ROWS))
                .for_each(|(out, rows)| self.write_rows_here(rows, out));
        } else {
            self.write_rows_here(rows, out);
        }
    }

    /// [`Dataset::write_rows`] on the calling thread.
    fn write_rows_here(&self, rows: &[usize], out: &mut [Elem]) {
        let d = self.num_features();
        for (i, (&row, out)) in rows.iter().zip(out.chunks_exact_mut(d)).enumerate() {
            match (&self.features, &self.scaler) {
                // one pass from bytes to scaled floats: the hot path of image data
                (Features::Bytes(x), Some(scaler)) => {
                    if let Some(&next) = rows.get(i + 1) {
                        prefetch(x.row(next).as_slice().unwrap_or_default());
                    }
                    let row = x.row(row);
                    let bytes = row
                        .as_slice()
                        .expect("rows of a fresh array are contiguous");
                    let scaled = out
                        .iter_mut()
                        .zip(bytes)
                        .zip(scaler.scale())
                        .zip(scaler.shift());
                    for (((o, &v), &a), &b) in scaled {
                        *o = Elem::from(v) * a + b;
                    }
                }
                _ => {
                    self.raw_row(row, out);
                    if let Some(scaler) = &self.scaler {
                        scaler.apply_row(out);
                    }
                }
            }
        }
    }

    /// All samples as one `[samples, features]` `f32` tensor (scaler applied) with their
    /// labels: the full batch of gradient descent, which uses every training sample in each
    /// step.
    pub fn full_batch(&self) -> (Tensor, &[usize]) {
        let rows: Vec<usize> = (0..self.len()).collect();
        let mut x = Tensor::zeros(ndarray::IxDyn(&[self.len(), self.num_features()]));
        self.write_rows(&rows, x.as_slice_mut().expect("fresh array is contiguous"));
        (x, &self.labels)
    }

    /// The samples at `indices`, in that order, as a new data set with the same scaler and
    /// number of classes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::InvalidArgument {
                op: "dataset::subset",
                message: format!("index {bad} out of range for {} samples", self.len()),
            });
        }
        let features = match &self.features {
            Features::Bytes(x) => Features::Bytes(x.select(Axis(0), indices)),
            Features::Floats(x) => Features::Floats(x.select(Axis(0), indices)),
        };
        Ok(Dataset {
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
            scaler: self.scaler.clone(),
        })
    }

    /// A random split into `(train, validation)` with `validation` samples in the second
    /// part, drawn by `rng` without replacement.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `validation` exceeds the number of samples.
    pub fn split<R: Rng + ?Sized>(
        &self,
        validation: usize,
        rng: &mut R,
    ) -> Result<(Dataset, Dataset)> {
        if validation > self.len() {
            return Err(Error::InvalidArgument {
                op: "dataset::split",
                message: format!(
                    "validation size must be at most {} samples, got {validation}",
                    self.len()
                ),
            });
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        let (valid, train) = order.split_at(validation);
        Ok((self.subset(train)?, self.subset(valid)?))
    }

    /// Batches of `batch_size` samples in stored order, the last one partial; see
    /// [`Batches::shuffled`] and [`Batches::drop_last`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `batch_size` is 0.
    pub fn batches(&self, batch_size: usize) -> Result<Batches<'_>> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument {
                op: "dataset::batches",
                message: "batch_size must be at least 1, got 0".into(),
            });
        }
        Ok(Batches {
            dataset: self,
            order: (0..self.len()).collect(),
            batch_size,
            drop_last: false,
            position: 0,
            buffer: Vec::new(),
            labels: Vec::new(),
        })
    }
}

/// One batch: features `[batch, features]` as `f32` (scaler applied) and their labels,
/// borrowed from the iterator's reused buffers.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The features, `[batch, features]`.
    pub x: ArrayView2<'a, Elem>,
    /// The class labels, one per row.
    pub labels: &'a [usize],
}

/// An iterator over the batches of one epoch, made by [`Dataset::batches`].
///
/// It is a *lending* iterator: each [`Batches::next`] converts the next batch into a
/// buffer it reuses, so drawing batches allocates nothing after the first. Put a batch on a
/// tape with `tape.constant(batch.x)`, which copies it into the tape's own reused memory.
#[derive(Debug)]
pub struct Batches<'d> {
    dataset: &'d Dataset,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    position: usize,
    buffer: Vec<Elem>,
    labels: Vec<usize>,
}

impl<'d> Batches<'d> {
    /// Visits the samples in a random order drawn from `rng` (a new order per call: call it
    /// once per epoch, with the same generator, for reproducible epochs).
    pub fn shuffled<R: Rng + ?Sized>(mut self, rng: &mut R) -> Self {
        self.order.shuffle(rng);
        self
    }

    /// Leaves out the last batch when it has fewer than `batch_size` samples.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Number of batches this epoch yields in all.
    pub fn num_batches(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The next batch, or `None` at the end of the epoch.
    #[allow(clippy::should_implement_trait)] // lending: the batch borrows the iterator
    pub fn next(&mut self) -> Option<Batch<'_>> {
        let remaining = self.order.len() - self.position;
        let size = remaining.min(self.batch_size);
        if size == 0 || (self.drop_last && size < self.batch_size) {
            return None;
        }
        let rows = &self.order[self.position..self.position + size];
        self.position += size;
        let d = self.dataset.num_features();
        self.buffer.resize(size * d, 0.0);
        self.dataset.write_rows(rows, &mut self.buffer);
        self.labels.clear();
        self.labels
            .extend(rows.iter().map(|&r| self.dataset.labels[r]));
        let x = ArrayView2::from_shape((size, d), &self.buffer[..])
            .expect("internal error: batch buffer length");
        Some(Batch {
            x,
            labels: &self.labels,
        })
    }
}

/// Asks the CPU to start loading `bytes` into its caches (rows of a shuffled batch are
/// scattered over the whole data set, so without this each row waits on main memory).
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch only hints the cache and never faults; SSE, which it needs, is
        // part of every x86-64 CPU.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn counting(n: usize) -> Dataset {
        let x = Array2::from_shape_fn((n, 2), |(i, j)| (i * 2 + j) as Elem);
        Dataset::from_floats(x, (0..n).map(|i| i % 3).collect()).unwrap()
    }

    #[test]
    fn labels_must_match_rows() {
        let err = Dataset::from_floats(Array2::zeros((3, 2)), vec![0, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset: expected one label per sample (3 samples), found 2 labels"
        );
    }

    #[test]
    fn batch_size_zero_is_an_error() {
        let err = counting(4).batches(0).unwrap_err().to_string();
        assert_eq!(
            err,
            "dataset::batches: batch_size must be at least 1, got 0"
        );
    }

    #[test]
    fn batches_cover_every_sample_once_in_order_or_shuffled() {
        let data = counting(10);
        let collect = |mut b: Batches<'_>| {
            let mut seen = Vec::new();
            while let Some(batch) = b.next() {
                for (row, &label) in batch.x.rows().into_iter().zip(batch.labels) {
                    let i = (row[0] / 2.0) as usize;
                    assert_eq!(row[1], row[0] + 1.0);
                    assert_eq!(label, i % 3);
                    seen.push(i);
                }
            }
            seen
        };
        let b = data.batches(4).unwrap();
        assert_eq!(b.num_batches(), 3);
        assert_eq!(collect(b), (0..10).collect::<Vec<_>>());

        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let shuffled = collect(data.batches(4).unwrap().shuffled(&mut rng));
        assert_ne!(shuffled, (0..10).collect::<Vec<_>>());
        let mut sorted = shuffled.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        // the same seed gives the same epoch order
        let mut again = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(
            collect(data.batches(4).unwrap().shuffled(&mut again)),
            shuffled
        );

        let b = data.batches(4).unwrap().drop_last(true);
        assert_eq!(b.num_batches(), 2);
        assert_eq!(collect(b).len(), 8);
    }

    #[test]
    fn bytes_convert_with_the_scaler_applied() {
        let x = array![[0u8, 10], [255, 30]];
        let mut data = Dataset::from_bytes(x, vec![0, 1]).unwrap();
        assert!(data.stores_bytes());
        data.set_scaler(Scaler::min_max(&data).unwrap()).unwrap();
        let (full, labels) = data.full_batch();
        assert_eq!(full, ndarray::arr2(&[[0.0, 0.0], [1.0, 1.0]]).into_dyn());
        assert_eq!(labels, &[0, 1]);
    }

    #[test]
    fn split_and_subset() {
        let data = counting(10);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (train, valid) = data.split(3, &mut rng).unwrap();
        assert_eq!((train.len(), valid.len()), (7, 3));
        let (x_train, _) = train.full_batch();
        let (x_valid, _) = valid.full_batch();
        let mut firsts: Vec<Elem> = x_train
            .index_axis(Axis(1), 0)
            .iter()
            .chain(x_valid.index_axis(Axis(1), 0))
            .copied()
            .collect();
        firsts.sort_by(|a, b| a.total_cmp(b));
        assert_eq!(firsts, (0..10).map(|i| (2 * i) as Elem).collect::<Vec<_>>());
        assert_eq!(train.num_classes(), 3);
        assert!(data.split(11, &mut rng).is_err());
        let sub = data.subset(&[9, 0]).unwrap();
        assert_eq!(sub.labels(), &[0, 0]);
        assert!(data.subset(&[10]).is_err());
    }

    #[test]
    fn num_classes_can_grow_but_not_shrink_below_the_labels() {
        let data = counting(2); // labels 0, 1
        assert_eq!(data.num_classes(), 2);
        assert_eq!(data.clone().with_num_classes(10).unwrap().num_classes(), 10);
        assert!(data.with_num_classes(1).is_err());
    }
}
