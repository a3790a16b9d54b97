//! Preprocessing fitted on training data: standardization (per feature, per channel or over
//! all features) and min-max scaling.
//!
//! All are per-feature affine maps `y_j = x_j·scale_j + shift_j`, fitted on the training
//! set only and then applied unchanged to validation and test data (fitting on test data
//! would leak it into training). A feature with zero variance or zero range (a pixel that is
//! always black) maps to 0 instead of dividing by zero.

use crate::error::{Error, Result};
use crate::tensor::{Elem, Tensor};
use serde::{Deserialize, Serialize};

/// Which statistic a [`Scaler`] was fitted with.
///
/// # Examples
/// ```
/// use tapegrad::{Dataset, Scaler, ScalerKind, ndarray::array};
/// let train = Dataset::from_floats(array![[0.0], [4.0]], vec![0, 1])?;
/// assert_eq!(Scaler::min_max(&train)?.kind(), ScalerKind::MinMax);
/// assert_eq!(Scaler::standardize(&train)?.kind(), ScalerKind::Standardize);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalerKind {
    /// `y = (x − μ) / σ`: zero mean and unit variance per feature on the training data, with
    /// `σ` floored at a twentieth of the feature's range (see [`Scaler::standardize`]).
    Standardize,
    /// `y = (x − min) / (max − min)`: each feature in `[0, 1]` on the training data.
    MinMax,
    /// A map given by the caller, such as `y = x / 255` for pixel bytes.
    Affine,
    /// `y = (x − μ) / σ` with one `μ` and `σ` over all features on the training data.
    StandardizeGlobal,
    /// `y = (x − μ_c) / σ_c` with one `μ_c` and `σ_c` per channel of `[C, ...]` samples.
    StandardizePerChannel,
}

/// A fitted per-feature affine preprocessing, `y_j = x_j·scale_j + shift_j`.
///
/// Standardizing puts every feature on the same scale, so that one learning rate suits
/// every weight: with raw features of very different scales, gradient descent must use a
/// learning rate small enough for the largest feature and then crawls along the others.
///
/// # Which to use
/// - **Images** (every feature a pixel in the same units): [`Scaler::standardize_global`],
///   one mean and σ for all pixels, as `torchvision.transforms.Normalize` with scalars,
///   or [`Scaler::standardize_per_channel`] for colour images (one per channel). It keeps the relative brightness of pixels. Per-pixel
///   standardization divides pixels that are almost always 0 (image borders) by a tiny σ,
///   so a bright value there on new data becomes huge: on Fashion-MNIST, without a floor
///   on σ, test pixels reach 284 standard deviations; an outside test on handwritten digits
///   saw a 255 pixel map to about 3,800 and validation accuracy drop from 96.6% (global) to
///   93.6%.
/// - **Tabular features in different units** (dollars, years, ratios):
///   [`Scaler::standardize`], per feature, whose σ floor compares each feature only with
///   itself; or [`Scaler::min_max`] for features with known bounds.
/// - [`Scaler::affine`] for a fixed map such as `x / 255`.
///
/// Measured on Fashion-MNIST (784-512-256-10 MLP with dropout, SGD with momentum, 20
/// epochs; 55,000 training and 5,000 held-out validation images), validation accuracy and
/// loss after the last epoch:
///
/// | preprocessing | seed 0 | seed 1 |
/// |---|---|---|
/// | per feature, σ not floored | 89.90%, 0.3002 | |
/// | per feature, σ floored ([`Scaler::standardize`]) | 90.08%, 0.2972 | 90.94%, 0.2752 |
/// | global ([`Scaler::standardize_global`]) | 90.00%, 0.2827 | 90.90%, 0.2751 |
/// | `x / 255` ([`Scaler::affine`]) | 89.48%, 0.2789 | |
///
/// The standardizations differ by at most 9 of the 5,000 validation images, far less than
/// the seed changes (about 45 images); `x / 255`, whose inputs are not centred, ends with a
/// higher training loss (0.199 against 0.107 to 0.139) and half a point lower accuracy.
///
/// # Examples
/// ```
/// use tapegrad::{Dataset, Scaler, ndarray::array};
/// let train = Dataset::from_floats(array![[1.0, 5.0], [3.0, 5.0]], vec![0, 1])?;
/// let scaler = Scaler::standardize(&train)?;
/// // feature 0: mean 2, std 1; feature 1 is constant and maps to 0
/// let mut x = array![[3.0, 5.0], [0.0, 7.0]].into_dyn();
/// scaler.transform(&mut x)?;
/// assert_eq!(x, array![[1.0, 0.0], [-2.0, 2.0]].into_dyn());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub(super) kind: ScalerKind,
    pub(super) scale: Vec<Elem>,
    pub(super) shift: Vec<Elem>,
}

impl Scaler {
    /// The same map `y = x·scale + shift` for each of `num_features` features, e.g.
    /// `Scaler::affine(784, 1.0 / 255.0, 0.0)` to bring pixel bytes into `[0, 1]` as
    /// `torchvision`'s `ToTensor` does.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `scale` is finite and nonzero and `shift` is finite
    /// (see [`Scaler::validate`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Scaler, ndarray::array};
    /// let mut x = array![[255.0, 0.0]].into_dyn();
    /// Scaler::affine(2, 1.0 / 255.0, 0.0)?.transform(&mut x)?;
    /// assert_eq!(x, array![[1.0, 0.0]].into_dyn());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn affine(num_features: usize, scale: Elem, shift: Elem) -> Result<Scaler> {
        if !(scale.is_finite() && scale != 0.0 && shift.is_finite()) {
            return Err(Error::InvalidArgument {
                op: "scaler::affine",
                message: format!(
                    "needs a finite, nonzero scale and a finite shift, got scale {scale}, shift {shift}"
                ),
            });
        }
        Ok(Scaler {
            kind: ScalerKind::Affine,
            scale: vec![scale; num_features],
            shift: vec![shift; num_features],
        })
    }

    /// The map `y_j = x_j·scale_j + shift_j` with a scale and a shift of its own for each
    /// feature `j`: torchvision's `Normalize(mean, std)` is `scale = 1/std`,
    /// `shift = −mean/std`. Its kind is [`ScalerKind::Affine`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless there are as many shifts as scales, every scale is
    /// finite and nonzero and every shift finite, naming the feature and the value.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Scaler, ndarray::array};
    /// let mut x = array![[2.0, 30.0]].into_dyn();
    /// Scaler::affine_per_feature(vec![0.5, 0.1], vec![0.0, -1.0])?.transform(&mut x)?;
    /// assert_eq!(x, array![[1.0, 2.0]].into_dyn());
    /// assert!(Scaler::affine_per_feature(vec![1.0, 0.0], vec![0.0, 0.0]).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn affine_per_feature(scale: Vec<Elem>, shift: Vec<Elem>) -> Result<Scaler> {
        let scaler = Scaler {
            kind: ScalerKind::Affine,
            scale,
            shift,
        };
        match scaler.first_problem() {
            None => Ok(scaler),
            Some(problem) => Err(Error::InvalidArgument {
                op: "scaler::affine_per_feature",
                message: problem,
            }),
        }
    }

    /// Which statistic this scaler was fitted with.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Scaler, ScalerKind};
    /// assert_eq!(Scaler::affine(3, 2.0, 0.0)?.kind(), ScalerKind::Affine);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn kind(&self) -> ScalerKind {
        self.kind
    }

    /// Number of features it was fitted on.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::Array2};
    /// let train = Dataset::from_floats(Array2::zeros((4, 6)), vec![0; 4])?;
    /// assert_eq!(Scaler::standardize(&train)?.num_features(), 6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn num_features(&self) -> usize {
        self.scale.len()
    }

    /// The per-feature factors `scale_j` of `y_j = x_j·scale_j + shift_j`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::array};
    /// let train = Dataset::from_floats(array![[0.0, 1.0], [4.0, 1.0]], vec![0, 1])?;
    /// // range 4, and a constant feature keeps scale 1
    /// assert_eq!(Scaler::min_max(&train)?.scale(), &[0.25, 1.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn scale(&self) -> &[Elem] {
        &self.scale
    }

    /// The per-feature offsets `shift_j` of `y_j = x_j·scale_j + shift_j`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::array};
    /// let train = Dataset::from_floats(array![[2.0, 1.0], [6.0, 1.0]], vec![0, 1])?;
    /// // −min/(max − min) = −2/4, and −min for the constant feature
    /// assert_eq!(Scaler::min_max(&train)?.shift(), &[-0.5, -1.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn shift(&self) -> &[Elem] {
        &self.shift
    }

    /// Checks that the map is one the fitting functions can produce, as a scaler read from a
    /// file must be: as many shifts as scales, every shift finite, every scale finite and
    /// nonzero. A zero scale would map every value of a feature to the same number, throwing
    /// the feature away; no fitted scaler has one (a constant feature gets scale 1 and maps
    /// to 0), so it can only come from a damaged or hand-edited file.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first bad feature, whether its scale or shift,
    /// and the value.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Scaler, ndarray::array, Dataset};
    /// let train = Dataset::from_floats(array![[1.0, 5.0], [3.0, 5.0]], vec![0, 1])?;
    /// assert!(Scaler::standardize(&train)?.validate().is_ok());
    /// // the constructors refuse what validation refuses
    /// assert!(Scaler::affine(2, 0.0, 1.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn validate(&self) -> Result<()> {
        match self.first_problem() {
            None => Ok(()),
            Some(problem) => Err(Error::InvalidArgument {
                op: "scaler::validate",
                message: problem,
            }),
        }
    }

    /// What [`Scaler::validate`] refuses, as `"feature 2: expected ..., found ..."`.
    pub(crate) fn first_problem(&self) -> Option<String> {
        if self.scale.len() != self.shift.len() {
            return Some(format!(
                "expected as many shifts as scales ({}), found {}",
                self.scale.len(),
                self.shift.len()
            ));
        }
        let features = self.scale.iter().zip(&self.shift).enumerate();
        for (j, (&scale, &shift)) in features {
            if !scale.is_finite() || scale == 0.0 {
                return Some(format!(
                    "feature {j}: expected a finite, nonzero scale, found {scale}"
                ));
            }
            if !shift.is_finite() {
                return Some(format!(
                    "feature {j}: expected a finite shift, found {shift}"
                ));
            }
        }
        None
    }

    /// Applies the map in place to one sample's features.
    pub(crate) fn apply_row(&self, row: &mut [Elem]) {
        for ((x, &a), &b) in row.iter_mut().zip(&self.scale).zip(&self.shift) {
            *x = *x * a + b;
        }
    }

    /// Applies the map in place to a `[samples, features]` tensor from outside a
    /// [`Dataset`](crate::Dataset).
    ///
    /// # Errors
    /// [`Error::Shape`] when `x` is not 2-D with this scaler's number of features.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Scaler, ndarray::array};
    /// let scaler = Scaler::affine(2, 2.0, 1.0)?;
    /// let mut x = array![[0.0, 1.0], [-1.0, 3.0]].into_dyn();
    /// scaler.transform(&mut x)?;
    /// assert_eq!(x, array![[1.0, 3.0], [-1.0, 7.0]].into_dyn());
    /// assert!(scaler.transform(&mut array![[1.0, 2.0, 3.0]].into_dyn()).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn transform(&self, x: &mut Tensor) -> Result<()> {
        if x.ndim() != 2 || x.shape()[1] != self.num_features() {
            return Err(Error::Shape {
                op: "scaler::transform",
                expected: format!("shape [samples, {}]", self.num_features()),
                found: format!("shape {:?}", x.shape()),
            });
        }
        for mut row in x.rows_mut() {
            for ((x, &a), &b) in row.iter_mut().zip(&self.scale).zip(&self.shift) {
                *x = *x * a + b;
            }
        }
        Ok(())
    }
}
