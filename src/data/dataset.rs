//! An in-memory data set of samples of any shape and their targets; batches (shuffled by a
//! seeded generator, with or without the last partial batch), the full batch of gradient
//! descent, subsets and train/validation splits that remember their source rows.
//!
//! Image features can stay the `u8` bytes they were stored in (60,000 Fashion-MNIST images
//! take 47 MB rather than 188 MB as `f32`); each batch is converted to `f32` as it is drawn,
//! applying the data set's fitted [`Scaler`] on the way, into a buffer the batch iterator
//! reuses.

use crate::data::augment::Augment;
use crate::data::preprocess::Scaler;
use crate::data::targets::{BatchTargets, Targets};
use crate::error::{Error, Result};
use crate::kernels::simd::with_simd;
use crate::tensor::{Elem, Tensor};
use ndarray::{Array2, ArrayView2, ArrayViewD, Axis};
use rand::Rng;
use rand::seq::SliceRandom;

/// The stored samples, flattened to `[samples, features]`.
#[derive(Debug, Clone)]
enum Features {
    /// Raw bytes, converted to `f32` per batch.
    Bytes(Array2<u8>),
    /// Floats.
    Floats(Array2<Elem>),
}

impl Features {
    fn nrows(&self) -> usize {
        match self {
            Features::Bytes(x) => x.nrows(),
            Features::Floats(x) => x.nrows(),
        }
    }

    fn ncols(&self) -> usize {
        match self {
            Features::Bytes(x) => x.ncols(),
            Features::Floats(x) => x.ncols(),
        }
    }
}

/// Samples of any shape, stored as given: bytes (such as image pixels, converted to `f32`
/// batch by batch) or floats. Axis 0 is the sample; the other axes are one sample's shape.
/// Made with `From` any `ndarray` array of `u8` or `f32` (owned), for [`Dataset::new`].
///
/// # Examples
/// ```
/// use tapegrad::{SampleArray, ndarray::{Array2, Array4}};
/// let images: SampleArray = Array4::<u8>::zeros((5, 1, 28, 28)).into();
/// let rows: SampleArray = Array2::<f32>::zeros((5, 784)).into();
/// let (a, b) = (
///     tapegrad::Dataset::new(images, tapegrad::Targets::Inputs)?,
///     tapegrad::Dataset::new(rows, tapegrad::Targets::Inputs)?,
/// );
/// assert_eq!((a.sample_shape(), a.stores_bytes()), (&[1, 28, 28][..], true));
/// assert_eq!((b.sample_shape(), b.stores_bytes()), (&[784][..], false));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SampleArray {
    features: Features,
    sample_shape: Vec<usize>,
}

/// `x` (axis 0 the samples) as `[samples, features]` rows and the shape of one sample,
/// copied only when it is not already row-major.
fn flat_rows<T: Clone, D: ndarray::Dimension>(x: ndarray::Array<T, D>) -> (Array2<T>, Vec<usize>) {
    let samples = x.shape().first().copied().unwrap_or(1);
    let sample_shape = x.shape().get(1..).unwrap_or_default().to_vec();
    let features: usize = sample_shape.iter().product();
    let x = if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    };
    let rows = x
        .into_shape_with_order((samples, features))
        .expect("a standard-layout array reshapes to its own element count");
    (rows, sample_shape)
}

impl<D: ndarray::Dimension> From<ndarray::Array<u8, D>> for SampleArray {
    fn from(x: ndarray::Array<u8, D>) -> Self {
        let (rows, sample_shape) = flat_rows(x);
        SampleArray {
            features: Features::Bytes(rows),
            sample_shape,
        }
    }
}

impl<D: ndarray::Dimension> From<ndarray::Array<Elem, D>> for SampleArray {
    fn from(x: ndarray::Array<Elem, D>) -> Self {
        let (rows, sample_shape) = flat_rows(x);
        SampleArray {
            features: Features::Floats(rows),
            sample_shape,
        }
    }
}

/// Samples (of any shape: a row of features, a `[C, H, W]` image) with their [`Targets`]
/// (class labels, float values, multi-label vectors, or the samples themselves), and the
/// [`Scaler`] applied as batches are drawn.
///
/// Bytes stay bytes in memory (60,000 Fashion-MNIST images take 47 MB rather than 188 MB
/// as `f32`); each batch is converted to `f32` `[batch, sample shape...]` as it is drawn,
/// scaler applied, into a buffer the batch iterator reuses, as a PyTorch `DataLoader` with
/// `ToTensor` and `Normalize` would.
///
/// # Examples
/// ```
/// use tapegrad::{Dataset, ndarray::array};
/// let data = Dataset::from_bytes(array![[0u8, 255], [128, 0], [255, 255]], vec![0, 1, 1])?;
/// assert_eq!((data.len(), data.num_features(), data.num_classes()), (3, 2, 2));
/// let mut batches = data.batches(2)?;
/// let batch = batches.next().unwrap();
/// assert_eq!(batch.x[[0, 1]], 255.0); // bytes become f32 as the batch is drawn
/// assert_eq!(batch.labels(), Some(&[0, 1][..]));
/// assert_eq!(batches.next().unwrap().labels(), Some(&[1][..])); // the last, partial batch
/// assert!(batches.next().is_none());
/// # Ok::<(), tapegrad::Error>(())
/// ```
///
/// Images keep their shape:
/// ```
/// use tapegrad::{Dataset, Targets, ndarray::Array4};
/// let images = Array4::<u8>::zeros((10, 3, 32, 32)); // [N, C, H, W]
/// let data = Dataset::new(images, Targets::classes((0..10).collect()))?;
/// assert_eq!(data.sample_shape(), &[3, 32, 32]);
/// assert_eq!(data.batches(4)?.next().unwrap().x.shape(), &[4, 3, 32, 32]);
/// // the same bytes as flat rows of 3,072 features, for an MLP
/// assert_eq!(data.with_sample_shape(&[3072])?.num_features(), 3072);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dataset {
    features: Features,
    sample_shape: Vec<usize>,
    targets: Targets,
    scaler: Option<Scaler>,
    source_rows: Vec<usize>,
}

impl Dataset {
    /// A data set of `samples` (axis 0 the samples, any shape after it; bytes or `f32`)
    /// and their `targets`.
    ///
    /// # Errors
    /// [`Error::Shape`] when there is not one target per sample, a sample has no values,
    /// or value targets have fewer than 2 axes; [`Error::InvalidArgument`] when a label is
    /// not below the number of classes, a value target is not finite, or a multi-label
    /// target is not 0 or 1 (naming the sample).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array3};
    /// let data = Dataset::new(Array3::<f32>::zeros((4, 2, 3)), Targets::classes(vec![0, 1, 2, 1]))?;
    /// assert_eq!((data.len(), data.sample_shape(), data.num_classes()), (4, &[2, 3][..], 3));
    /// // one target per sample, or an error naming both counts
    /// assert!(Dataset::new(Array3::<f32>::zeros((4, 2, 3)), Targets::classes(vec![0])).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(samples: impl Into<SampleArray>, targets: Targets) -> Result<Self> {
        let SampleArray {
            features,
            sample_shape,
        } = samples.into();
        let rows = features.nrows();
        if features.ncols() == 0 {
            return Err(Error::Shape {
                op: "dataset",
                expected: "at least one value per sample".into(),
                found: format!("{rows} samples of shape {sample_shape:?}"),
            });
        }
        targets.validate("dataset", rows)?;
        Ok(Dataset {
            features,
            sample_shape,
            targets,
            scaler: None,
            source_rows: (0..rows).collect(),
        })
    }

    /// A data set of `f32` features `[samples, features]` and one class label per sample.
    ///
    /// # Errors
    /// As [`Dataset::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::array};
    /// let data = Dataset::from_floats(array![[0.5, -1.0], [2.0, 0.0]], vec![1, 0])?;
    /// assert!(!data.stores_bytes());
    /// assert_eq!(data.labels(), Some(&[1, 0][..]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_floats(features: Array2<Elem>, labels: Vec<usize>) -> Result<Self> {
        Self::new(features, Targets::classes(labels))
    }

    /// A data set of byte features `[samples, features]` (such as image pixels), converted
    /// to `f32` batch by batch, and one class label per sample.
    ///
    /// # Errors
    /// As [`Dataset::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::array};
    /// let data = Dataset::from_bytes(array![[0, 255], [7, 8]], vec![0, 1])?;
    /// assert!(data.stores_bytes());
    /// assert_eq!(data.full_batch().0[[0, 1]], 255.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_bytes(features: Array2<u8>, labels: Vec<usize>) -> Result<Self> {
        Self::new(features, Targets::classes(labels))
    }

    /// Sets the number of classes when some classes have no sample here (a small subset).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the targets are not classes or a label is not below
    /// `num_classes`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((2, 1)), vec![0, 1])?;
    /// assert_eq!(data.num_classes(), 2);
    /// assert_eq!(data.clone().with_num_classes(10)?.num_classes(), 10);
    /// assert!(data.with_num_classes(1).is_err()); // label 1 needs 2 classes
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_num_classes(mut self, num_classes: usize) -> Result<Self> {
        let Targets::Classes {
            labels,
            num_classes: n,
        } = &mut self.targets
        else {
            return Err(Error::InvalidArgument {
                op: "dataset",
                message: "num_classes needs class targets, got other targets".into(),
            });
        };
        if let Some(&label) = labels.iter().max()
            && label >= num_classes
        {
            return Err(Error::InvalidArgument {
                op: "dataset",
                message: format!(
                    "num_classes must exceed every label, got {num_classes} with label {label}"
                ),
            });
        }
        *n = num_classes;
        Ok(self)
    }

    /// The same samples seen with another shape of the same size: flat rows `[784]` as
    /// images `[1, 28, 28]` or back (the stored values and their order do not change; the
    /// scaler stays, as it works per stored value).
    ///
    /// # Errors
    /// [`Error::Shape`] when `shape` does not hold exactly [`Dataset::num_features`] values.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let flat = Dataset::from_bytes(Array2::zeros((3, 784)), vec![0; 3])?;
    /// let images = flat.clone().with_sample_shape(&[1, 28, 28])?;
    /// assert_eq!(images.full_batch().0.shape(), &[3, 1, 28, 28]);
    /// assert!(flat.with_sample_shape(&[1, 28, 27]).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_sample_shape(mut self, shape: &[usize]) -> Result<Self> {
        let size = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if size != Some(self.num_features()) {
            return Err(Error::Shape {
                op: "dataset::with_sample_shape",
                expected: format!(
                    "a shape of as many values as the samples hold, {} (samples of shape {:?})",
                    self.num_features(),
                    self.sample_shape
                ),
                found: match size {
                    Some(size) => format!("shape {shape:?} of {size} values"),
                    None => format!("shape {shape:?}, of more values than memory holds"),
                },
            });
        }
        self.sample_shape = shape.to_vec();
        Ok(self)
    }

    /// Number of samples.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// assert_eq!(Dataset::from_floats(Array2::zeros((7, 2)), vec![0; 7])?.len(), 7);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// Whether there are no samples.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((3, 2)), vec![0; 3])?;
    /// assert!(!data.is_empty());
    /// assert!(data.subset(&[])?.is_empty());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of values per sample (784 for a 28×28 image).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array4};
    /// let data = Dataset::new(Array4::<u8>::zeros((2, 3, 4, 5)), Targets::Inputs)?;
    /// assert_eq!(data.num_features(), 3 * 4 * 5);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn num_features(&self) -> usize {
        self.features.ncols()
    }

    /// The shape of one sample (`[784]` for flat rows, `[1, 28, 28]` for an image).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array4};
    /// let data = Dataset::new(Array4::<u8>::zeros((2, 3, 4, 5)), Targets::Inputs)?;
    /// assert_eq!(data.sample_shape(), &[3, 4, 5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The targets.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((2, 1)), vec![1, 0])?;
    /// assert_eq!(data.targets(), &Targets::Classes { labels: vec![1, 0], num_classes: 2 });
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The shape of one sample's target: `[]` for a class label, the trailing axes of
    /// value targets, `[labels]` for multi-label targets, the sample shape for
    /// [`Targets::Inputs`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array2};
    /// let x = Array2::<f32>::zeros((2, 3));
    /// assert_eq!(Dataset::new(x.clone(), Targets::classes(vec![0, 1]))?.target_shape(), Vec::<usize>::new());
    /// assert_eq!(Dataset::new(x.clone(), Targets::MultiLabel(Array2::zeros((2, 4))))?.target_shape(), vec![4]);
    /// assert_eq!(Dataset::new(x, Targets::Inputs)?.target_shape(), vec![3]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn target_shape(&self) -> Vec<usize> {
        match &self.targets {
            Targets::Classes { .. } => Vec::new(),
            Targets::Values(v) => v.shape()[1..].to_vec(),
            Targets::MultiLabel(y) => vec![y.ncols()],
            Targets::Inputs => self.sample_shape.clone(),
        }
    }

    /// Number of classes for class targets (one more than the largest label, unless set with
    /// [`Dataset::with_num_classes`]); 0 for other targets.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((3, 1)), vec![0, 4, 2])?;
    /// assert_eq!(data.num_classes(), 5); // one more than the largest label
    /// assert_eq!(Dataset::new(Array2::<f32>::zeros((3, 1)), Targets::Inputs)?.num_classes(), 0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn num_classes(&self) -> usize {
        match &self.targets {
            Targets::Classes { num_classes, .. } => *num_classes,
            _ => 0,
        }
    }

    /// The class labels, one per sample, when the targets are classes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((3, 1)), vec![2, 0, 1])?;
    /// assert_eq!(data.labels(), Some(&[2, 0, 1][..]));
    /// assert_eq!(Dataset::new(Array2::<f32>::zeros((3, 1)), Targets::Inputs)?.labels(), None);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn labels(&self) -> Option<&[usize]> {
        match &self.targets {
            Targets::Classes { labels, .. } => Some(labels),
            _ => None,
        }
    }

    /// The stored bytes `[samples, sample shape...]`, when the samples are bytes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::Array3};
    /// let data = Dataset::new(Array3::<u8>::from_elem((2, 2, 2), 9), Targets::Inputs)?;
    /// let bytes = data.bytes().unwrap();
    /// assert_eq!((bytes.shape(), bytes[[1, 1, 0]]), (&[2, 2, 2][..], 9));
    /// assert!(data.floats().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bytes(&self) -> Option<ndarray::ArrayViewD<'_, u8>> {
        match &self.features {
            Features::Bytes(x) => Some(self.shaped(x.view())),
            Features::Floats(_) => None,
        }
    }

    /// The stored floats `[samples, sample shape...]` (before the scaler), when the samples
    /// are floats.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::array};
    /// let mut data = Dataset::from_floats(array![[2.0], [4.0]], vec![0, 1])?;
    /// data.set_scaler(Scaler::affine(1, 0.5, 0.0)?)?;
    /// assert_eq!(data.floats().unwrap()[[1, 0]], 4.0); // stored, not scaled
    /// assert!(data.bytes().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn floats(&self) -> Option<ndarray::ArrayViewD<'_, Elem>> {
        match &self.features {
            Features::Floats(x) => Some(self.shaped(x.view())),
            Features::Bytes(_) => None,
        }
    }

    /// `flat` (`[samples, features]`) as `[samples, sample shape...]`.
    fn shaped<'a, T>(&self, flat: ArrayView2<'a, T>) -> ndarray::ArrayViewD<'a, T> {
        let mut shape = vec![flat.nrows()];
        shape.extend_from_slice(&self.sample_shape);
        flat.into_shape_with_order(shape)
            .expect("the sample shape holds the features of a row")
    }

    /// For each sample, its row in the data set this one was first built from: a
    /// [`Dataset::subset`] or [`Dataset::split`] of a subset still points at the original
    /// rows.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Dataset, SeedableRng, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((10, 1)), vec![0; 10])?;
    /// let (train, valid) = data.split(3, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// let mut all: Vec<usize> = train.source_rows().iter().chain(valid.source_rows()).copied().collect();
    /// all.sort();
    /// assert_eq!(all, (0..10).collect::<Vec<_>>());
    /// assert_eq!(valid.subset(&[2])?.source_rows(), &valid.source_rows()[2..3]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn source_rows(&self) -> &[usize] {
        &self.source_rows
    }

    /// Whether the features are stored as bytes (converted per batch) rather than `f32`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// assert!(Dataset::from_bytes(Array2::zeros((1, 1)), vec![0])?.stores_bytes());
    /// assert!(!Dataset::from_floats(Array2::zeros((1, 1)), vec![0])?.stores_bytes());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn stores_bytes(&self) -> bool {
        matches!(self.features, Features::Bytes(_))
    }

    /// The preprocessing applied to every batch, if any.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::Array2};
    /// let mut data = Dataset::from_bytes(Array2::zeros((1, 4)), vec![0])?;
    /// assert!(data.scaler().is_none());
    /// let scaler = Scaler::affine(4, 1.0 / 255.0, 0.0)?;
    /// data.set_scaler(scaler.clone())?;
    /// assert_eq!(data.scaler(), Some(&scaler));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::array};
    /// let mut data = Dataset::from_bytes(array![[255, 0]], vec![0])?;
    /// data.set_scaler(Scaler::affine(2, 1.0 / 255.0, 0.0)?)?;
    /// assert_eq!(data.full_batch().0, array![[1.0, 0.0]].into_dyn());
    /// assert!(data.set_scaler(Scaler::affine(3, 1.0, 0.0)?).is_err()); // 3 features, not 2
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
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
    /// `f32`, with `scaler` applied (the data set's, or none for the stored values).
    /// Large batches are converted by all threads, cut in halves of rows.
    fn write_rows(&self, rows: &[usize], out: &mut [Elem], scaler: Option<&Scaler>) {
        let d = self.num_features();
        if crate::threads::parallel(out.len()) && rows.len() > 1 {
            let middle = rows.len() / 2;
            let (rows_a, rows_b) = rows.split_at(middle);
            let (out_a, out_b) = out.split_at_mut(middle * d);
            crate::threads::join(
                || self.write_rows(rows_a, out_a, scaler),
                || self.write_rows(rows_b, out_b, scaler),
            );
        } else {
            self.write_rows_here(rows, out, scaler);
        }
    }

    /// [`Dataset::write_rows`] on the calling thread.
    fn write_rows_here(&self, rows: &[usize], out: &mut [Elem], scaler: Option<&Scaler>) {
        let d = self.num_features();
        for (i, (&row, out)) in rows.iter().zip(out.chunks_exact_mut(d)).enumerate() {
            match (&self.features, scaler) {
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
                    with_simd(
                        #[inline(always)]
                        || {
                            for (((o, &v), &a), &b) in scaled {
                                *o = Elem::from(v) * a + b;
                            }
                        },
                    );
                }
                _ => {
                    self.raw_row(row, out);
                    if let Some(scaler) = scaler {
                        scaler.apply_row(out);
                    }
                }
            }
        }
    }

    /// All samples as one `[samples, sample shape...]` `f32` tensor (scaler applied) with
    /// their targets: the full batch of gradient descent, which uses every training sample
    /// in each step.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::array};
    /// let data = Dataset::from_bytes(array![[1, 2], [3, 4], [5, 6]], vec![0, 1, 0])?;
    /// let (x, targets) = data.full_batch();
    /// assert_eq!(x, array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]].into_dyn());
    /// assert_eq!(targets, &Targets::classes(vec![0, 1, 0]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn full_batch(&self) -> (Tensor, &Targets) {
        let rows: Vec<usize> = (0..self.len()).collect();
        let mut shape = vec![self.len()];
        shape.extend_from_slice(&self.sample_shape);
        let mut x = Tensor::zeros(ndarray::IxDyn(&shape));
        self.write_rows(
            &rows,
            x.as_slice_mut().expect("fresh array is contiguous"),
            self.scaler.as_ref(),
        );
        (x, &self.targets)
    }

    /// The samples at `indices`, in that order, as a new data set with the same sample
    /// shape, scaler and number of classes; [`Dataset::source_rows`] says where each came
    /// from.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when an index is out of range.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::array};
    /// let data = Dataset::from_floats(array![[0.0], [1.0], [2.0]], vec![0, 1, 2])?;
    /// let picked = data.subset(&[2, 0])?;
    /// assert_eq!(picked.labels(), Some(&[2, 0][..]));
    /// assert_eq!(picked.num_classes(), 3);
    /// assert!(data.subset(&[3]).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
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
            sample_shape: self.sample_shape.clone(),
            targets: self.targets.select(indices),
            scaler: self.scaler.clone(),
            source_rows: indices.iter().map(|&i| self.source_rows[i]).collect(),
        })
    }

    /// A random split into `(train, validation)` with `validation` samples in the second
    /// part, drawn by `rng` without replacement; [`Dataset::source_rows`] says which rows
    /// went where.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `validation` exceeds the number of samples.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Dataset, SeedableRng, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((10, 2)), vec![0; 10])?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let (train, valid) = data.split(2, &mut rng)?;
    /// assert_eq!((train.len(), valid.len()), (8, 2));
    /// assert!(data.split(11, &mut rng).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((5, 2)), vec![0; 5])?;
    /// let mut batches = data.batches(2)?;
    /// let mut sizes = Vec::new();
    /// while let Some(batch) = batches.next() {
    ///     sizes.push(batch.len());
    /// }
    /// assert_eq!(sizes, vec![2, 2, 1]);
    /// assert!(data.batches(0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
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
            augment: None,
            buffer: Vec::new(),
            labels: Vec::new(),
            values: Vec::new(),
        })
    }
}

/// One batch: the samples `[batch, sample shape...]` as `f32` (scaler applied) and their
/// targets, borrowed from the iterator's reused buffers.
///
/// # Examples
/// ```
/// use tapegrad::{BatchTargets, Dataset, ndarray::array};
/// let data = Dataset::from_floats(array![[1.0, 2.0], [3.0, 4.0]], vec![1, 0])?;
/// let mut batches = data.batches(2)?;
/// let batch = batches.next().unwrap();
/// assert_eq!(batch.x, array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
/// assert!(matches!(batch.targets, BatchTargets::Classes(&[1, 0])));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug)]
pub struct Batch<'a> {
    /// The samples, `[batch, sample shape...]`.
    pub x: ArrayViewD<'a, Elem>,
    /// The targets, one per sample.
    pub targets: BatchTargets<'a>,
}

impl<'a> Batch<'a> {
    /// Number of samples.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((5, 1)), vec![0; 5])?;
    /// let mut batches = data.batches(3)?;
    /// assert_eq!(batches.next().unwrap().len(), 3);
    /// assert_eq!(batches.next().unwrap().len(), 2);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.x.len_of(Axis(0))
    }

    /// Whether the batch has no samples.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((1, 1)), vec![0])?;
    /// assert!(!data.batches(8)?.next().unwrap().is_empty());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class labels, when the targets are classes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Targets, ndarray::{Array2, array}};
    /// let data = Dataset::from_floats(array![[0.0], [1.0]], vec![1, 0])?;
    /// assert_eq!(data.batches(2)?.next().unwrap().labels(), Some(&[1, 0][..]));
    /// let values = Dataset::new(Array2::<f32>::zeros((2, 1)), Targets::Inputs)?;
    /// assert_eq!(values.batches(2)?.next().unwrap().labels(), None);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn labels(&self) -> Option<&'a [usize]> {
        self.targets.labels()
    }
}

/// An iterator over the batches of one epoch, made by [`Dataset::batches`].
///
/// It is a *lending* iterator: each [`Batches::next`] converts the next batch into a
/// buffer it reuses, so drawing batches allocates nothing after the first. Put a batch on a
/// tape with `tape.constant(batch.x)`, which copies it into the tape's own reused memory.
///
/// # Examples
/// ```
/// use tapegrad::{ChaCha8Rng, Dataset, SeedableRng, ndarray::Array2};
/// let data = Dataset::from_floats(Array2::zeros((10, 1)), (0..10).collect())?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut batches = data.batches(4)?.shuffled(&mut rng);
/// let mut seen = Vec::new();
/// while let Some(batch) = batches.next() {
///     seen.extend_from_slice(batch.labels().unwrap());
/// }
/// seen.sort();
/// assert_eq!(seen, (0..10).collect::<Vec<_>>()); // each sample once per epoch
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug)]
pub struct Batches<'d> {
    dataset: &'d Dataset,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    position: usize,
    augment: Option<(&'d Augment, u64)>,
    buffer: Vec<Elem>,
    labels: Vec<usize>,
    values: Vec<Elem>,
}

impl<'d> Batches<'d> {
    /// Visits the samples in a random order drawn from `rng` (a new order per call: call it
    /// once per epoch, with the same generator, for reproducible epochs).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Dataset, SeedableRng, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((100, 1)), (0..100).map(|i| i % 10).collect())?;
    /// let first_labels = |seed| {
    ///     let mut batches = data.batches(100).unwrap().shuffled(&mut ChaCha8Rng::seed_from_u64(seed));
    ///     batches.next().unwrap().labels().unwrap().to_vec()
    /// };
    /// assert_eq!(first_labels(3), first_labels(3)); // same seed, same order
    /// assert_ne!(first_labels(3), data.labels().unwrap()); // not the stored order
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn shuffled<R: Rng + ?Sized>(mut self, rng: &mut R) -> Self {
        self.order.shuffle(rng);
        self
    }

    /// Applies `augment` to each batch as it is drawn, with `seed` and each sample's position
    /// in the epoch choosing its random changes (see [`Augment::apply_batch`]; pass a new
    /// seed each epoch). Value targets of [`Targets::Inputs`] are the augmented samples.
    ///
    /// The transforms see the stored values (pixel values 0–255 for bytes) and the scaler
    /// runs after them, as torchvision's transforms run before `Normalize`: the zero fill of a
    /// crop or a shift is a zero of the stored values (a black pixel, not the mean), and a
    /// moved pixel is scaled with the statistics of the place it lands on.
    ///
    /// # Errors
    /// [`Error::Shape`] when the samples are not images `[C, H, W]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, Dataset, RandomHorizontalFlip, Targets, ndarray::Array4};
    /// let images = Array4::from_shape_fn((4, 1, 1, 2), |(_, _, _, w)| w as u8); // [0, 1] rows
    /// let data = Dataset::new(images, Targets::classes(vec![0; 4]))?;
    /// let flip = Augment::new().then(RandomHorizontalFlip::new(1.0)?);
    /// let mut batches = data.batches(4)?.augmented(&flip, 0)?;
    /// assert_eq!(batches.next().unwrap().x[[2, 0, 0, 0]], 1.0); // every row flipped
    /// assert!(data.with_sample_shape(&[2])?.batches(4)?.augmented(&flip, 0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn augmented(mut self, augment: &'d Augment, seed: u64) -> Result<Self> {
        let shape = &self.dataset.sample_shape;
        if shape.len() != 3 {
            return Err(Error::Shape {
                op: "augment",
                expected: "image samples [C, H, W]".into(),
                found: format!("samples of shape {shape:?} (see Dataset::with_sample_shape)"),
            });
        }
        self.augment = Some((augment, seed));
        Ok(self)
    }

    /// Leaves out the last batch when it has fewer than `batch_size` samples.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((5, 1)), vec![0; 5])?;
    /// let mut batches = data.batches(2)?.drop_last(true);
    /// assert_eq!(batches.num_batches(), 2);
    /// assert_eq!(batches.next().unwrap().len(), 2);
    /// assert_eq!(batches.next().unwrap().len(), 2);
    /// assert!(batches.next().is_none()); // the single last sample is left out
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Number of batches this epoch yields in all.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::Array2};
    /// let data = Dataset::from_floats(Array2::zeros((10, 1)), vec![0; 10])?;
    /// assert_eq!(data.batches(3)?.num_batches(), 4);
    /// assert_eq!(data.batches(3)?.drop_last(true).num_batches(), 3);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn num_batches(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The next batch, or `None` at the end of the epoch.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, ndarray::array};
    /// let data = Dataset::from_floats(array![[1.0], [2.0], [3.0]], vec![0, 1, 0])?;
    /// let mut batches = data.batches(2)?;
    /// assert_eq!(batches.next().unwrap().x, array![[1.0], [2.0]].into_dyn());
    /// assert_eq!(batches.next().unwrap().x, array![[3.0]].into_dyn());
    /// assert!(batches.next().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[allow(clippy::should_implement_trait)] // lending: the batch borrows the iterator
    pub fn next(&mut self) -> Option<Batch<'_>> {
        let remaining = self.order.len() - self.position;
        let size = remaining.min(self.batch_size);
        if size == 0 || (self.drop_last && size < self.batch_size) {
            return None;
        }
        let first = self.position;
        let rows = &self.order[first..first + size];
        self.position += size;
        let data = self.dataset;
        let d = data.num_features();
        self.buffer.resize(size * d, 0.0);
        match self.augment {
            None => data.write_rows(rows, &mut self.buffer, data.scaler.as_ref()),
            Some((augment, seed)) => {
                data.write_rows(rows, &mut self.buffer, None);
                augment
                    .apply_batch(&mut self.buffer, &data.sample_shape, seed, first as u64)
                    .expect("the sample shape was checked by Batches::augmented");
                if let Some(scaler) = &data.scaler {
                    self.buffer
                        .chunks_exact_mut(d)
                        .for_each(|row| scaler.apply_row(row));
                }
            }
        }
        let mut shape = vec![size];
        shape.extend_from_slice(&data.sample_shape);
        let x = ArrayViewD::from_shape(shape, &self.buffer[..])
            .expect("internal error: batch buffer length");
        let targets = match &data.targets {
            Targets::Classes { labels, .. } => {
                self.labels.clear();
                self.labels.extend(rows.iter().map(|&r| labels[r]));
                BatchTargets::Classes(&self.labels)
            }
            Targets::Values(v) => {
                let mut shape = v.shape().to_vec();
                shape[0] = size;
                BatchTargets::Values(gather_rows(v.view(), rows, &mut self.values, shape))
            }
            Targets::MultiLabel(y) => {
                let shape = vec![size, y.ncols()];
                let gathered = gather_rows(y.view().into_dyn(), rows, &mut self.values, shape);
                BatchTargets::MultiLabel(
                    gathered
                        .into_dimensionality()
                        .expect("multi-label targets are 2-D"),
                )
            }
            Targets::Inputs => BatchTargets::Values(x.clone()),
        };
        Some(Batch { x, targets })
    }
}

/// Copies rows `rows` of `from` (axis 0) into `buffer`, viewed with `shape`.
fn gather_rows<'b>(
    from: ArrayViewD<'_, Elem>,
    rows: &[usize],
    buffer: &'b mut Vec<Elem>,
    shape: Vec<usize>,
) -> ArrayViewD<'b, Elem> {
    buffer.clear();
    for &r in rows {
        buffer.extend(from.index_axis(Axis(0), r).iter());
    }
    ArrayViewD::from_shape(shape, &buffer[..]).expect("internal error: target buffer length")
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
    fn augmentation_sees_the_stored_values_and_the_scaler_runs_after() {
        use crate::data::augment::FnTransform;
        // bytes of 200 scaled by y = x/100 − 1 = 1; the transform zeroes the first pixel
        let images = ndarray::Array4::from_elem((2, 1, 2, 2), 200u8);
        let mut data = Dataset::new(images, Targets::classes(vec![0, 1])).unwrap();
        data.set_scaler(Scaler::affine(4, 0.01, -1.0).unwrap())
            .unwrap();
        let zero_first = Augment::new().then(FnTransform::new("zero", |mut sample, _| {
            assert!(sample.iter().all(|&v| v == 200.0), "saw {sample:?}");
            sample[[0, 0, 0]] = 0.0;
        }));
        let mut batches = data.batches(2).unwrap().augmented(&zero_first, 0).unwrap();
        let batch = batches.next().unwrap();
        // a zero of the stored values is a black pixel: 0/100 − 1 = −1
        assert_eq!(
            batch.x.iter().copied().collect::<Vec<_>>(),
            [-1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0]
        );
    }

    #[test]
    fn labels_must_match_rows() {
        let err = Dataset::from_floats(Array2::zeros((3, 2)), vec![0, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset: expected one target per sample (3 samples), found 2 targets"
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
                let x = batch
                    .x
                    .view()
                    .into_dimensionality::<ndarray::Ix2>()
                    .unwrap();
                for (row, &label) in x.rows().into_iter().zip(batch.labels().unwrap()) {
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
        let (full, targets) = data.full_batch();
        assert_eq!(full, ndarray::arr2(&[[0.0, 0.0], [1.0, 1.0]]).into_dyn());
        assert_eq!(targets, &Targets::classes(vec![0, 1]));
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
        assert_eq!(sub.labels(), Some(&[0, 0][..]));
        assert!(data.subset(&[10]).is_err());
    }

    #[test]
    fn num_classes_can_grow_but_not_shrink_below_the_labels() {
        let data = counting(2); // labels 0, 1
        assert_eq!(data.num_classes(), 2);
        assert_eq!(data.clone().with_num_classes(10).unwrap().num_classes(), 10);
        assert!(data.with_num_classes(1).is_err());
    }

    #[test]
    fn images_keep_their_shape_and_bytes_read_back() {
        let images = ndarray::Array4::from_shape_fn((5, 2, 3, 4), |(n, c, h, w)| {
            (n * 24 + c * 12 + h * 4 + w) as u8
        });
        let data = Dataset::new(images.clone(), Targets::classes(vec![0, 1, 2, 3, 4])).unwrap();
        assert_eq!(
            (data.sample_shape(), data.num_features()),
            (&[2, 3, 4][..], 24)
        );
        assert_eq!(data.bytes().unwrap(), images.view().into_dyn());
        assert!(data.floats().is_none());
        let mut batches = data.batches(2).unwrap();
        let batch = batches.next().unwrap();
        assert_eq!(batch.x.shape(), &[2, 2, 3, 4]);
        assert_eq!(batch.x[[1, 1, 2, 3]], Elem::from(images[[1, 1, 2, 3]]));
        // the same bytes, flat
        let flat = data.clone().with_sample_shape(&[24]).unwrap();
        assert_eq!(flat.batches(5).unwrap().next().unwrap().x.shape(), &[5, 24]);
        let err = data.with_sample_shape(&[5, 5]).unwrap_err().to_string();
        assert_eq!(
            err,
            "dataset::with_sample_shape: expected a shape of as many values as the samples hold, 24 (samples of shape [2, 3, 4]), found shape [5, 5] of 25 values"
        );
    }

    #[test]
    fn float_targets_follow_their_samples_through_shuffles_and_subsets() {
        let x = Array2::from_shape_fn((7, 2), |(i, j)| (i * 10 + j) as Elem);
        let y = Array2::from_shape_fn((7, 3), |(i, j)| (i * 100 + j) as Elem).into_dyn();
        let data = Dataset::new(x, Targets::Values(y)).unwrap();
        assert_eq!((data.target_shape(), data.num_classes()), (vec![3], 0));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut batches = data.batches(3).unwrap().shuffled(&mut rng);
        let mut seen = 0;
        while let Some(batch) = batches.next() {
            let BatchTargets::Values(y) = &batch.targets else {
                panic!("value targets expected")
            };
            for (i, row) in batch.x.outer_iter().enumerate() {
                let sample = (row[0] / 10.0) as usize;
                assert_eq!(y[[i, 2]], (sample * 100 + 2) as Elem);
                seen += 1;
            }
        }
        assert_eq!(seen, 7);
        let sub = data.subset(&[6, 2]).unwrap();
        assert_eq!(sub.source_rows(), &[6, 2]);
        let Targets::Values(y) = sub.targets() else {
            panic!("value targets expected")
        };
        assert_eq!(y[[0, 1]], 601.0);
        // the subset of a subset still names the original rows
        assert_eq!(sub.subset(&[1]).unwrap().source_rows(), &[2]);
    }

    #[test]
    fn autoencoder_targets_are_the_scaled_inputs() {
        let mut data = Dataset::new(array![[0u8, 10], [255, 30]], Targets::Inputs).unwrap();
        data.set_scaler(Scaler::min_max(&data).unwrap()).unwrap();
        assert_eq!(data.target_shape(), vec![2]);
        let mut batches = data.batches(2).unwrap();
        let batch = batches.next().unwrap();
        let BatchTargets::Values(y) = &batch.targets else {
            panic!("value targets expected")
        };
        assert_eq!(y, &batch.x);
        assert_eq!(y, &ndarray::arr2(&[[0.0, 0.0], [1.0, 1.0]]).into_dyn());
    }

    #[test]
    fn bad_targets_are_errors_naming_the_sample() {
        let x = || Array2::<Elem>::zeros((3, 2));
        let err = |t: Targets| Dataset::new(x(), t).unwrap_err().to_string();
        assert_eq!(
            err(Targets::MultiLabel(array![
                [0.0, 1.0],
                [1.0, 0.5],
                [0.0, 0.0]
            ])),
            "dataset: sample 1 label 1 is 0.5, expected 0 or 1"
        );
        assert_eq!(
            err(Targets::Values(
                array![[0.0], [Elem::NAN], [1.0]].into_dyn()
            )),
            "dataset: sample 1 target 0 is NaN, expected finite values"
        );
        assert_eq!(
            err(Targets::Values(array![0.0, 1.0, 2.0].into_dyn())),
            "dataset: expected value targets of shape [samples, ...] (at least 2 axes; [samples, 1] for one value per sample), found shape [3]"
        );
        assert_eq!(
            err(Targets::Classes {
                labels: vec![0, 3, 1],
                num_classes: 2
            }),
            "dataset: sample 1 has label 3, expected a label below num_classes 2"
        );
        assert_eq!(
            err(Targets::classes(vec![0, 1])),
            "dataset: expected one target per sample (3 samples), found 2 targets"
        );
        assert!(Dataset::new(Array2::<u8>::zeros((3, 0)), Targets::Inputs).is_err());
    }
}
