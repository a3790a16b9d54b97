//! [`Predictor`]: a trained classifier with the scaler fitted on its training data, from raw
//! samples to logits, probabilities and classes in one call, saved and loaded as one file.

use crate::checkpoint::{Checkpoint, export_with_scaler, import_with_scaler};
use crate::data::Scaler;
use crate::error::{Error, Result};
use crate::metrics::predictions;
use crate::nn::Module;
use crate::tensor::Elem;
use ndarray::{Array2, ArrayView2, Axis, Ix2, s};
use std::path::Path;

/// Rows run through the model at a time, so that predicting on many samples holds one
/// chunk's activations, not all of them.
const CHUNK_ROWS: usize = 1024;

/// Samples to predict on, one per row: raw bytes (such as image pixels) or `f32` features,
/// before any scaling.
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, tensor, Linear, Predictor, Samples};
/// let predictor = Predictor::new(Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?, None)?;
/// let bytes = array![[3u8], [0]];
/// let floats = array![[3.0f32], [-1.0]];
/// assert!(matches!(Samples::from(&bytes), Samples::Bytes(_)));
/// assert_eq!(predictor.predict(&bytes)?.classes, vec![1, 0]); // 0 is a tie: the first class
/// assert_eq!(predictor.predict(Samples::Floats(floats.view()))?.classes, vec![1, 0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Samples<'a> {
    /// Bytes, converted to `f32` (then scaled) as they are read.
    Bytes(ArrayView2<'a, u8>),
    /// Features.
    Floats(ArrayView2<'a, Elem>),
}

impl<'a> From<ArrayView2<'a, u8>> for Samples<'a> {
    fn from(x: ArrayView2<'a, u8>) -> Self {
        Samples::Bytes(x)
    }
}

impl<'a> From<&'a Array2<u8>> for Samples<'a> {
    fn from(x: &'a Array2<u8>) -> Self {
        Samples::Bytes(x.view())
    }
}

impl<'a> From<ArrayView2<'a, Elem>> for Samples<'a> {
    fn from(x: ArrayView2<'a, Elem>) -> Self {
        Samples::Floats(x)
    }
}

impl<'a> From<&'a Array2<Elem>> for Samples<'a> {
    fn from(x: &'a Array2<Elem>) -> Self {
        Samples::Floats(x.view())
    }
}

impl Samples<'_> {
    fn rows(&self) -> usize {
        match self {
            Samples::Bytes(x) => x.nrows(),
            Samples::Floats(x) => x.nrows(),
        }
    }

    fn width(&self) -> usize {
        match self {
            Samples::Bytes(x) => x.ncols(),
            Samples::Floats(x) => x.ncols(),
        }
    }

    /// Rows `start..end` as `f32`, scaled, into `out` (resized to fit).
    fn write(&self, start: usize, end: usize, scaler: Option<&Scaler>, out: &mut Array2<Elem>) {
        *out = match self {
            Samples::Bytes(x) => x.slice(s![start..end, ..]).mapv(Elem::from),
            Samples::Floats(x) => x.slice(s![start..end, ..]).to_owned(),
        };
        if let Some(scaler) = scaler {
            for mut row in out.rows_mut() {
                scaler.apply_row(
                    row.as_slice_mut()
                        .expect("a fresh array's rows are contiguous"),
                );
            }
        }
    }
}

/// What a classifier says about each sample: its logits, the softmax probabilities
/// `p = exp(z − max z) / Σ exp(z − max z)`, and the class of the largest logit (the first
/// one on a tie).
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, tensor, Linear, Predictor};
/// let predictor = Predictor::new(Linear::from_parts(tensor::from_vec(vec![1.0, 0.0], &[2, 1])?, None)?, None)?;
/// let out = predictor.predict(&array![[0.0f32], [2.0f32.ln()]])?;
/// assert_eq!(out.logits, array![[0.0, 0.0], [2.0f32.ln(), 0.0]]);
/// assert_eq!(out.probabilities.row(0).to_vec(), [0.5, 0.5]);
/// assert!((out.probabilities[[1, 0]] - 2.0 / 3.0).abs() < 1e-6); // e^ln2 / (e^ln2 + 1)
/// assert_eq!(out.classes, vec![0, 0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// The model's outputs, `[samples, classes]`.
    pub logits: Array2<Elem>,
    /// Softmax of each row of logits, `[samples, classes]`; each row sums to 1.
    pub probabilities: Array2<Elem>,
    /// The predicted class of each sample.
    pub classes: Vec<usize>,
}

/// A trained classifier and the scaler fitted on its training data, used as one thing:
/// [`Predictor::predict`] takes raw samples (bytes or floats), applies the scaler, runs the
/// model in [`Mode::Eval`](crate::Mode::Eval) (dropout off) on an inference tape and returns logits,
/// probabilities and classes, as `model.eval()`, `torch.no_grad()`, `softmax` and `argmax`
/// would in PyTorch. [`Predictor::save`] writes both into one checkpoint;
/// [`Predictor::load`] reads them back into a model built by the same code. For a
/// regression model, whose outputs are values rather than logits, read
/// [`Predictions::logits`] (the raw outputs) and ignore the classes, or call
/// [`infer`](crate::infer) on the scaled samples.
///
/// Samples come as rows. A model trained on images `[C, H, W]` takes them behind an
/// [`Unflatten`](crate::Unflatten): `Sequential::new(vec![Box::new(Unflatten::new(&[1, 28,
/// 28])?), Box::new(trained)])`, whose output is the trained model's (its parameters are
/// named `1.…` there: load a checkpoint of the trained model into it before wrapping it).
///
/// # Examples
/// ```
/// use tapegrad::{ndarray::array, tensor, Linear, Predictor, Scaler};
/// // class 1 when the (scaled) feature is positive
/// let model = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
/// // bytes 0..=255 to [-1, 1]
/// let predictor = Predictor::new(model, Some(Scaler::affine(1, 2.0 / 255.0, -1.0)?))?;
/// let out = predictor.predict(&array![[255u8], [0], [200]])?;
/// assert_eq!(out.classes, vec![1, 0, 1]);
/// assert!((out.probabilities[[0, 1]] - 0.880_797).abs() < 1e-5); // softmax of (−1, 1)
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Predictor<M> {
    model: M,
    scaler: Option<Scaler>,
}

impl<M: Module> Predictor<M> {
    /// A predictor of `model` with the preprocessing `scaler` (fitted on the training data)
    /// or none.
    ///
    /// # Errors
    /// [`Error::Shape`] when the scaler's width differs from the model's input width;
    /// [`Error::InvalidArgument`] when it fails [`Scaler::validate`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Predictor, Scaler};
    /// let model = Linear::from_parts(tensor::ones(&[2, 3]), None)?; // 3 inputs
    /// assert!(Predictor::new(model.clone(), Some(Scaler::affine(3, 0.5, 0.0)?)).is_ok());
    /// assert!(Predictor::new(model, Some(Scaler::affine(4, 0.5, 0.0)?)).is_err()); // 4 features
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(model: M, scaler: Option<Scaler>) -> Result<Self> {
        if let Some(scaler) = &scaler {
            scaler.validate()?;
            if let Some(width) = model.in_features()
                && width != scaler.num_features()
            {
                return Err(Error::Shape {
                    op: "predictor",
                    expected: format!("a scaler for the model's {width} input features"),
                    found: format!("one for {}", scaler.num_features()),
                });
            }
        }
        Ok(Predictor { model, scaler })
    }

    /// The model.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Predictor};
    /// let predictor = Predictor::new(Linear::from_parts(tensor::ones(&[2, 3]), None)?, None)?;
    /// assert_eq!(predictor.model().weight().value().shape(), &[2, 3]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, taken back out of the predictor (to train it further, say).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Predictor};
    /// let predictor = Predictor::new(Linear::from_parts(tensor::ones(&[2, 3]), None)?, None)?;
    /// let model: Linear = predictor.into_model();
    /// assert_eq!(model.weight().value().shape(), &[2, 3]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn into_model(self) -> M {
        self.model
    }

    /// The scaler, if any.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Predictor, Scaler};
    /// let model = Linear::from_parts(tensor::ones(&[2, 3]), None)?;
    /// assert!(Predictor::new(model.clone(), None)?.scaler().is_none());
    /// let scaler = Scaler::affine(3, 1.0 / 255.0, 0.0)?;
    /// assert_eq!(Predictor::new(model, Some(scaler.clone()))?.scaler(), Some(&scaler));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn scaler(&self) -> Option<&Scaler> {
        self.scaler.as_ref()
    }

    /// The predictions for `samples` (one per row), scaled by the scaler, with the model in
    /// [`Mode::Eval`](crate::Mode::Eval), 1,024 rows at a time, each by [`crate::infer`]
    /// (on more than one thread, the rows cut into one block per thread).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no samples, a non-finite feature (naming the sample),
    /// or a model whose output is not `[samples, classes]`; [`Error::Shape`] when the
    /// samples' width is not the model's (or the scaler's) input width, or, for a model
    /// without one (its first layer a convolution, or a layer of your own), when its
    /// [`Module::output_shape`] refuses rows of that width.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray::{Array2, array}, tensor, Linear, Predictor, Scaler};
    /// // class 1 when the feature is above 10 after scaling by 1/10 and shifting by −1
    /// let model = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
    /// let predictor = Predictor::new(model, Some(Scaler::affine(1, 0.1, -1.0)?))?;
    /// assert_eq!(predictor.predict(&array![[5.0f32], [20.0]])?.classes, vec![0, 1]);
    /// assert!(predictor.predict(&array![[1.0f32, 2.0]]).is_err()); // width 2, not 1
    /// assert!(predictor.predict(&Array2::<f32>::zeros((0, 1))).is_err()); // no samples
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn predict<'a>(&self, samples: impl Into<Samples<'a>>) -> Result<Predictions> {
        let samples = samples.into();
        let invalid = |message: String| Error::InvalidArgument {
            op: "predict",
            message,
        };
        if samples.rows() == 0 {
            return Err(invalid("expected at least one sample, found none".into()));
        }
        let n = samples.width();
        if let Some(width) = self.scaler.as_ref().map(Scaler::num_features)
            && width != n
        {
            return Err(Error::Shape {
                op: "predict",
                expected: format!("samples of width {width} (the model's input width)"),
                found: format!("width {n}"),
            });
        }
        // the model's declared input width, checked as every batch's (`train::check_batch`);
        // a model without one (an image model, a layer of one's own) by its shape check: an
        // image model's layers say what they take, rows they cannot
        crate::train::check_batch("predict", &self.model, &[samples.rows(), n], None)?;
        if self.model.in_features().is_none()
            && let Err(e) = self.model.output_shape(&[1, n])
        {
            return Err(Error::Shape {
                op: "predict",
                expected: "samples the model can take as rows [samples, features] (an image \
                           model needs an Unflatten layer first)"
                    .into(),
                found: format!("rows of width {n}: {e}"),
            });
        }
        if let Samples::Floats(x) = samples
            && let Some(((row, col), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(invalid(format!(
                "sample {row} feature {col} is {v}, expected finite values"
            )));
        }
        let mut chunk = Array2::zeros((0, 0));
        let mut logits: Option<Array2<Elem>> = None;
        for start in (0..samples.rows()).step_by(CHUNK_ROWS) {
            let end = (start + CHUNK_ROWS).min(samples.rows());
            samples.write(start, end, self.scaler.as_ref(), &mut chunk);
            // on the calling thread's reused inference tape, or cut across the threads
            let input = std::mem::take(&mut chunk).into_dyn();
            let output = crate::infer(&self.model, &input);
            chunk = input
                .into_dimensionality()
                .expect("internal error: 2-D chunk");
            let output = output?;
            let shape = output.shape().to_vec();
            let output = output.into_dimensionality::<Ix2>().map_err(|_| {
                invalid(format!(
                    "expected model outputs of shape [samples, classes], found {shape:?}"
                ))
            })?;
            match &mut logits {
                None => {
                    let mut all = Array2::zeros((samples.rows(), output.ncols()));
                    all.slice_mut(s![..end, ..]).assign(&output);
                    logits = Some(all);
                }
                Some(all) => all.slice_mut(s![start..end, ..]).assign(&output),
            }
        }
        let logits = logits.expect("at least one chunk");
        let mut probabilities = logits.clone();
        for mut row in probabilities.axis_iter_mut(Axis(0)) {
            let max = row.fold(Elem::NEG_INFINITY, |m, &z| m.max(z));
            row.mapv_inplace(|z| (z - max).exp());
            let total = row.sum();
            row.mapv_inplace(|p| p / total);
        }
        let classes = predictions(&logits);
        Ok(Predictions {
            logits,
            probabilities,
            classes,
        })
    }

    /// Writes the model's parameters and the scaler to `path` as one checkpoint (atomically,
    /// see [`Checkpoint::save`]).
    ///
    /// # Errors
    /// As [`Checkpoint::save`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{checkpoint::Checkpoint, tensor, Linear, Predictor, Scaler};
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-predictor-save-{}.ckpt", std::process::id()));
    /// let scaler = Scaler::affine(2, 0.5, 0.0)?;
    /// let predictor = Predictor::new(Linear::from_parts(tensor::ones(&[3, 2]), None)?, Some(scaler.clone()))?;
    /// predictor.save(&path)?;
    /// let checkpoint = Checkpoint::load(&path)?; // an ordinary checkpoint, with the scaler
    /// assert_eq!((checkpoint.params().len(), checkpoint.scaler()), (1, Some(&scaler)));
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let checkpoint = Checkpoint::new(&self.model);
        match &self.scaler {
            Some(scaler) => checkpoint.with_scaler(scaler.clone()),
            None => checkpoint,
        }
        .save(path)
    }

    /// Writes the model's parameters and the scaler in the safetensors format, so that
    /// PyTorch reproduces the predictions from the file alone: the parameters under their
    /// module names (as [`export_safetensors`](crate::checkpoint::export_safetensors)), and the scaler,
    /// if any, as the 1-D tensors `"scaler.scale"` and `"scaler.shift"`. In PyTorch:
    ///
    /// ```text
    /// f = safetensors.torch.load_file(path)
    /// scale, shift = f.pop("scaler.scale"), f.pop("scaler.shift")
    /// model.load_state_dict(f)
    /// probabilities = model(x * scale + shift).softmax(-1)
    /// ```
    ///
    /// # Errors
    /// As [`export_safetensors`](crate::checkpoint::export_safetensors).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Predictor, Scaler};
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-predictor-{}.safetensors", std::process::id()));
    /// let scaler = Scaler::affine(2, 0.5, 1.0)?;
    /// let predictor = Predictor::new(Linear::from_parts(tensor::ones(&[3, 2]), None)?, Some(scaler))?;
    /// predictor.export_safetensors(&path)?;
    /// let bytes = std::fs::read(&path).unwrap();
    /// let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    /// let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    /// assert!(["\"weight\"", "\"scaler.scale\"", "\"scaler.shift\""].iter().all(|k| header.contains(k)));
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn export_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        export_with_scaler(&self.model, self.scaler.as_ref(), path.as_ref())
    }

    /// Reads a file written by [`Predictor::export_safetensors`] (or a safetensors file of
    /// the model's parameters alone) into `model`, which must have the same architecture,
    /// with the scaler its `scaler.scale` and `scaler.shift` tensors hold (an affine map
    /// per feature, [`Scaler::affine_per_feature`]) if it has them.
    ///
    /// # Errors
    /// As [`import_safetensors`](crate::checkpoint::import_safetensors); [`Error::Decode`]
    /// when the file holds only one of the scaler's tensors or they make no valid scaler;
    /// as [`Predictor::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray::array, tensor, Linear, Predictor, Scaler};
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-predictor-import-{}.safetensors", std::process::id()));
    /// let trained = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
    /// let predictor = Predictor::new(trained, Some(Scaler::affine(1, 2.0, -3.0)?))?;
    /// predictor.export_safetensors(&path)?;
    /// let fresh = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
    /// let imported = Predictor::import_safetensors(&path, fresh)?;
    /// let x = array![[1.0f32], [5.0]];
    /// assert_eq!(imported.predict(&x)?, predictor.predict(&x)?);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn import_safetensors(path: impl AsRef<Path>, mut model: M) -> Result<Self> {
        let scaler = import_with_scaler(&mut model, path.as_ref())?;
        Predictor::new(model, scaler).map_err(|e| e.in_file(path.as_ref()))
    }

    /// Reads a file written by [`Predictor::save`] (or any checkpoint) into `model`, which
    /// must have the same architecture, with the scaler stored in it.
    ///
    /// # Errors
    /// As [`Checkpoint::load`] and [`Checkpoint::restore_model`], and as
    /// [`Predictor::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray::array, tensor, Linear, Predictor, Scaler};
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-predictor-load-{}.ckpt", std::process::id()));
    /// let trained = Linear::from_parts(tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?, None)?;
    /// let predictor = Predictor::new(trained, Some(Scaler::affine(1, 1.0, -3.0)?))?;
    /// predictor.save(&path)?;
    /// // the same architecture, built by the same code, gets the weights and the scaler
    /// let loaded = Predictor::load(&path, Linear::from_parts(tensor::zeros(&[2, 1]), None)?)?;
    /// let x = array![[1.0f32], [5.0]];
    /// assert_eq!(loaded.predict(&x)?, predictor.predict(&x)?);
    /// assert!(Predictor::load(&path, Linear::from_parts(tensor::zeros(&[3, 1]), None)?).is_err());
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn load(path: impl AsRef<Path>, mut model: M) -> Result<Self> {
        let checkpoint = Checkpoint::load(path.as_ref())?;
        checkpoint.restore_model(&mut model)?;
        Predictor::new(model, checkpoint.scaler().cloned()).map_err(|e| e.in_file(path.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Dropout, Init, Linear, Relu, Sequential};
    use crate::train::evaluate;
    use crate::{Dataset, tensor};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn model(seed: u64) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Sequential::new(vec![
            Box::new(Linear::new(3, 8, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
            Box::new(Dropout::new(0.5, &mut rng).unwrap()),
            Box::new(Linear::new(8, 4, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap()
    }

    #[test]
    fn an_exported_predictor_imports_back_and_half_a_scaler_is_refused() {
        let dir = std::env::temp_dir().join(format!("tapegrad-pred-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.safetensors");
        let scaler = Scaler::affine_per_feature(vec![0.5, 2.0, -1.0], vec![1.0, 0.0, 3.0]).unwrap();
        let predictor = Predictor::new(model(1), Some(scaler.clone())).unwrap();
        predictor.export_safetensors(&path).unwrap();
        let imported = Predictor::import_safetensors(&path, model(2)).unwrap();
        assert_eq!(imported.scaler(), Some(&scaler));
        let x = ndarray::array![[0.5f32, -1.0, 2.0], [3.0, 0.0, 1.0]];
        assert_eq!(
            imported.predict(&x).unwrap(),
            predictor.predict(&x).unwrap()
        );
        // without a scaler in the file, none comes back
        crate::checkpoint::export_safetensors(&model(1), &path).unwrap();
        let bare = Predictor::import_safetensors(&path, model(2)).unwrap();
        assert_eq!(bare.scaler(), None);
        // a file with the scale but not the shift
        let half = Linear::from_parts(tensor::ones(&[1, 3]), None).unwrap();
        let ones = [1.0f32; 3]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>();
        let views = [("weight", vec![1, 3]), ("scaler.scale", vec![3])].map(|(n, shape)| {
            (
                n,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &ones)
                    .unwrap(),
            )
        });
        std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
        let err = Predictor::import_safetensors(&path, half)
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.ends_with("expected both scaler.scale and scaler.shift, found one"),
            "{err}"
        );
    }

    #[test]
    fn rows_an_image_model_cannot_take_are_an_error_and_unflattened_it_predicts() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut conv = || -> Vec<Box<dyn Module>> {
            let options = crate::Conv2dOptions::default();
            let conv = crate::Conv2d::new(1, 2, [3, 3], options, Init::default(), &mut rng);
            vec![
                Box::new(conv.unwrap()),
                Box::new(crate::Flatten),
                Box::new(Linear::new(2 * 2 * 2, 3, Init::default(), &mut rng).unwrap()),
            ]
        };
        let rows = Array2::from_shape_fn((5, 16), |(i, j)| (i + j) as f32 / 10.0);
        let image_model = Predictor::new(Sequential::new(conv()).unwrap(), None).unwrap();
        let err = image_model.predict(&rows).unwrap_err().to_string();
        assert!(
            err.starts_with("predict: expected samples the model can take as rows")
                && err.contains("rows of width 16: sequential: expected at layer 0 (Conv2d"),
            "{err}"
        );
        let mut layers: Vec<Box<dyn Module>> =
            vec![Box::new(crate::Unflatten::new(&[1, 4, 4]).unwrap())];
        layers.extend(conv());
        let unflattened = Predictor::new(Sequential::new(layers).unwrap(), None).unwrap();
        assert_eq!(unflattened.predict(&rows).unwrap().classes.len(), 5);
    }

    fn bytes(rows: usize) -> Array2<u8> {
        Array2::from_shape_fn((rows, 3), |(i, j)| ((i * 37 + j * 101) % 256) as u8)
    }

    #[test]
    fn predictions_agree_with_evaluate_in_eval_mode_across_chunks() {
        // more rows than one chunk, so the chunks must line up
        let x = bytes(2500);
        let labels: Vec<usize> = (0..2500).map(|i| i % 4).collect();
        let mut data = Dataset::from_bytes(x.clone(), labels.clone()).unwrap();
        let scaler = Scaler::standardize(&data).unwrap();
        data.set_scaler(scaler.clone()).unwrap();
        let predictor = Predictor::new(model(0), Some(scaler)).unwrap();
        let out = predictor.predict(&x).unwrap();
        // the same classes, so the same accuracy, as evaluate's (dropout off in both)
        let right = (out.classes.iter().zip(&labels))
            .filter(|(p, l)| p == l)
            .count();
        let accuracy = evaluate(predictor.model(), &data, 1000)
            .unwrap()
            .accuracy
            .unwrap();
        assert_eq!(right as f64 / 2500.0, accuracy);
        // eval mode: the same answer twice despite the dropout layer
        assert_eq!(predictor.predict(&x).unwrap(), out);
        for (row, probabilities) in out.probabilities.rows().into_iter().enumerate() {
            assert!((probabilities.sum() - 1.0).abs() < 1e-5);
            let best = probabilities.iter().cloned().fold(0.0, Elem::max);
            assert_eq!(probabilities[out.classes[row]], best);
        }
        // floats give what the same values as bytes give
        let floats = x.mapv(Elem::from);
        assert_eq!(predictor.predict(&floats).unwrap(), out);
    }

    #[test]
    fn a_predictor_saves_and_loads_as_one_file() {
        let dir = std::env::temp_dir().join(format!("tapegrad-predictor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("classifier.ckpt");
        let scaler = Scaler::affine(3, 1.0 / 255.0, -0.5).unwrap();
        let predictor = Predictor::new(model(1), Some(scaler.clone())).unwrap();
        predictor.save(&path).unwrap();
        let loaded = Predictor::load(&path, model(2)).unwrap();
        assert_eq!(loaded.scaler(), Some(&scaler));
        assert_eq!(
            loaded.predict(&bytes(10)).unwrap(),
            predictor.predict(&bytes(10)).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_safetensors_export_carries_the_scaler() {
        let path =
            std::env::temp_dir().join(format!("tapegrad-predictor-{}.st", std::process::id()));
        let scaler = Scaler::affine(3, 0.5, -1.0).unwrap();
        let predictor = Predictor::new(model(3), Some(scaler)).unwrap();
        predictor.export_safetensors(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let values = |name: &str| -> Vec<Elem> {
            let view = file.tensor(name).unwrap();
            (view.data().chunks_exact(4))
                .map(|b| Elem::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        assert_eq!(values("scaler.scale"), vec![0.5; 3]);
        assert_eq!(values("scaler.shift"), vec![-1.0; 3]);
        let weight = predictor.model().layers()[0].as_ref();
        let mut first = Vec::new();
        weight.visit_params(&mut |_, p| first.push(p.value().iter().copied().collect::<Vec<_>>()));
        assert_eq!(values("0.weight"), first[0]);
        // the model's parameters alone, as before, for import_safetensors
        let mut copy = model(4);
        crate::checkpoint::import_safetensors(&mut copy, &path).unwrap_err();
        crate::checkpoint::export_safetensors(predictor.model(), &path).unwrap();
        crate::checkpoint::import_safetensors(&mut copy, &path).unwrap();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_samples_are_errors() {
        let predictor = Predictor::new(model(0), None).unwrap();
        let message = |r: Result<Predictions>| r.unwrap_err().to_string();
        assert!(
            message(predictor.predict(&Array2::<u8>::zeros((0, 3))))
                .contains("predict: expected at least one sample, found none")
        );
        assert!(
            message(predictor.predict(&Array2::<u8>::zeros((2, 5))))
                .contains("expected samples of width 3 (the input width of the model's first layer), found a batch of shape [2, 5]")
        );
        let mut x = Array2::<Elem>::zeros((2, 3));
        x[[1, 2]] = Elem::NAN;
        assert!(message(predictor.predict(&x)).contains("sample 1 feature 2 is NaN"));
        let wide = Scaler::affine(5, 1.0, 0.0).unwrap();
        let err = Predictor::new(model(0), Some(wide))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a scaler for the model's 3 input features, found one for 5"),
            "{err}"
        );
        let flat = Linear::from_parts(tensor::zeros(&[2, 3]), None).unwrap();
        assert!(Predictor::new(flat, None).is_ok());
    }
}
