//! Layer-sequential unit-variance initialization (LSUV, Mishkin & Matas 2016): [`lsuv`]
//! initializes a whole [`Sequential`] from a batch of data, and reports per layer in an
//! [`LsuvReport`].

use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::nn::init::Init;
use crate::nn::module::{Mode, Module};
use crate::nn::sequential::Sequential;
use crate::param::{Param, Role};
use crate::tensor::{Elem, Tensor};
use rand::Rng;

/// The tolerance on the output variance that [`lsuv`] is usually run with (the Keras and
/// PyTorch ports of LSUV use 0.1).
///
/// # Examples
/// ```
/// use tapegrad::{lsuv, tensor, ChaCha8Rng, Init, Linear, SeedableRng, Sequential, LSUV_MAX_ITER, LSUV_TOLERANCE};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut model = Sequential::new(vec![Box::new(Linear::new(4, 8, Init::default(), &mut rng)?)])?;
/// let batch = tensor::normal(&[32, 4], 0.0, 1.0, &mut rng)?;
/// let report = lsuv(&mut model, &batch, LSUV_TOLERANCE, LSUV_MAX_ITER, &mut rng)?;
/// assert!((report.layers[0].variance - 1.0).abs() < LSUV_TOLERANCE);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub const LSUV_TOLERANCE: Elem = 0.1;

/// The iteration limit per layer that [`lsuv`] is usually run with (10 in the Keras and
/// PyTorch ports).
///
/// # Examples
/// ```
/// use tapegrad::{lsuv, tensor, ChaCha8Rng, Init, Linear, SeedableRng, Sequential, LSUV_MAX_ITER};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut model = Sequential::new(vec![Box::new(Linear::new(4, 8, Init::default(), &mut rng)?)])?;
/// let batch = tensor::normal(&[32, 4], 0.0, 1.0, &mut rng)?;
/// let report = lsuv(&mut model, &batch, 0.1, LSUV_MAX_ITER, &mut rng)?;
/// assert!(report.layers[0].iterations <= LSUV_MAX_ITER);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub const LSUV_MAX_ITER: usize = 10;

/// What [`lsuv`] did to one layer.
///
/// # Examples
/// ```
/// use tapegrad::{lsuv, tensor, ChaCha8Rng, Init, Linear, Relu, SeedableRng, Sequential};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut model = Sequential::new(vec![
///     Box::new(Relu),
///     Box::new(Linear::new(4, 8, Init::default(), &mut rng)?),
/// ])?;
/// let batch = tensor::normal(&[32, 4], 0.0, 1.0, &mut rng)?;
/// let layer = &lsuv(&mut model, &batch, 0.1, 10, &mut rng)?.layers[0];
/// assert_eq!(layer.index, 1); // the Relu has no weight and gets no entry
/// assert!(layer.layer.starts_with("Linear"));
/// assert!(layer.iterations >= 1 && (layer.variance - 1.0).abs() < 0.1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LsuvLayer {
    /// The layer's index in the [`Sequential`].
    pub index: usize,
    /// The layer's [`Module::describe`] line.
    pub layer: String,
    /// How many times the weight was rescaled (0 if the orthonormal init was already
    /// within the tolerance).
    pub iterations: usize,
    /// The variance of the layer's output on the batch after the last rescaling.
    pub variance: Elem,
}

/// The per-layer record of an [`lsuv`] run, first layer first.
///
/// # Examples
/// ```
/// use tapegrad::{lsuv, tensor, ChaCha8Rng, Init, Linear, SeedableRng, Sequential, Tanh};
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut model = Sequential::new(vec![
///     Box::new(Linear::new(6, 16, Init::default(), &mut rng)?),
///     Box::new(Tanh),
///     Box::new(Linear::new(16, 3, Init::default(), &mut rng)?),
/// ])?;
/// let batch = tensor::normal(&[50, 6], 0.0, 1.0, &mut rng)?;
/// let report = lsuv(&mut model, &batch, 0.1, 10, &mut rng)?;
/// let indices: Vec<usize> = report.layers.iter().map(|l| l.index).collect();
/// assert_eq!(indices, vec![0, 2]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LsuvReport {
    /// One entry per layer that has a weight, in order.
    pub layers: Vec<LsuvLayer>,
}

/// Layer-sequential unit-variance initialization (Mishkin & Matas 2016, "All you need is a
/// good init", <https://arxiv.org/abs/1511.06422>): a data-driven init for a whole model.
///
/// 1. Every layer with exactly one parameter of role [`Role::Weight`] with at least 2 axes
///    ([`Linear`](crate::Linear), [`Conv2d`](crate::Conv2d), [`Maxout`](crate::Maxout), a
///    module of your own with one weight) gets an orthonormal weight ([`Init::Orthogonal`]
///    with gain 1, Saxe et al. 2013; a convolution's `[out, in, kh, kw]` read as the matrix
///    `[out, in·kh·kw]`, as the paper does for its convnets). Parameters of other roles (biases, [`Role::Custom`]) are untouched. A layer
///    with several weights, such as a nested `Sequential` of several `Linear`s, is passed
///    through, not recursed into.
/// 2. For each such layer, first to last (the final classifier included): forward `batch`
///    (in [`Mode::Eval`]) through the layers before it and the layer itself, take the
///    variance `v` of the layer's output over the whole batch as one number, and set
///    `W ← W / √v`; repeat while `|v − 1| >= tol`, at most `max_iter` times, on the same
///    batch each time.
///
/// The statistic is the layer's own output: the pre-activation for a `Linear` or a
/// `Conv2d` (its activation is a separate layer; for a convolution the variance is over
/// every sample, channel and position of its output, as the paper takes it over the whole
/// output blob of each layer), the max over each group for a `Maxout`. With a zero
/// bias one rescaling gives exactly `v = 1`, since both are positively homogeneous in `W`;
/// a bias makes a few iterations necessary. Scale the inputs to unit variance first, as
/// the paper's authors advise. The usual settings are [`LSUV_TOLERANCE`] and
/// [`LSUV_MAX_ITER`].
///
/// # Errors
/// - [`Error::InvalidArgument`] if `tol` is not positive and finite, `max_iter` is 0,
///   `batch` holds a value that is not finite, or a layer's output has a variance on
///   `batch` that is zero (a constant or dead output) or not finite (an overflow, or a NaN
///   from the layers), before or after any rescaling: such a layer cannot be scaled to
///   unit variance.
/// - [`Error::Shape`] if `batch` has fewer than 2 samples or fewer than 2 axes, is a batch
///   of rows `[n, w]` whose width `w` is not the model's input width
///   ([`Module::in_features`]), or is a batch the model's forward pass panics on (such as
///   rows into a convolution, which takes `[n, C, H, W]`).
/// - [`Error::NoConvergence`] if a layer is still outside the tolerance after `max_iter`
///   rescalings; the layers before it stay initialized.
///
/// # Examples
/// ```
/// use tapegrad::{lsuv, tensor, ChaCha8Rng, Init, Linear, Relu, SeedableRng, Sequential};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut model = Sequential::new(vec![
///     Box::new(Linear::new(8, 32, Init::default(), &mut rng)?),
///     Box::new(Relu),
///     Box::new(Linear::new(32, 4, Init::default(), &mut rng)?),
/// ])?;
/// let batch = tensor::normal(&[64, 8], 0.0, 1.0, &mut rng)?;
/// let report = lsuv(&mut model, &batch, 0.1, 10, &mut rng)?;
/// assert_eq!(report.layers.len(), 2);
/// assert!(report.layers.iter().all(|l| (l.variance - 1.0).abs() < 0.1));
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn lsuv<R: Rng + ?Sized>(
    model: &mut Sequential,
    batch: &Tensor,
    tol: Elem,
    max_iter: usize,
    rng: &mut R,
) -> Result<LsuvReport> {
    if !(tol.is_finite() && tol > 0.0) || max_iter == 0 {
        return Err(Error::InvalidArgument {
            op: "lsuv",
            message: format!("needs tol > 0 and max_iter >= 1, got tol {tol}, max_iter {max_iter}"),
        });
    }
    let shape = batch.shape();
    // rows must have the model's input width; other batches (images) are tried below
    let width_ok = match (model.in_features(), shape.len()) {
        (Some(width), 2) => shape[1] == width,
        _ => true,
    };
    if shape.len() < 2 || shape[0] < 2 || !width_ok {
        let width = model
            .in_features()
            .map_or_else(|| "…".to_string(), |w| w.to_string());
        return Err(Error::Shape {
            op: "lsuv",
            expected: format!("a batch [n, {width}] with n >= 2"),
            found: format!("{shape:?}"),
        });
    }
    if let Some((at, value)) = batch.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::InvalidArgument {
            op: "lsuv",
            message: format!(
                "the batch holds {value} at {:?}; it must be finite",
                ndarray::Dimension::slice(&at)
            ),
        });
    }
    let trial = crate::nn::quietly(|| {
        let tape = Tape::inference();
        let two = batch.slice_axis(ndarray::Axis(0), (0..2).into());
        model.forward(tape.constant(two), Mode::Eval).shape()
    });
    if let Err(panic) = trial {
        return Err(Error::Shape {
            op: "lsuv",
            expected: "a batch the model can take".into(),
            found: format!("shape {shape:?}, on which the model panics: {panic}"),
        });
    }
    let mut report = LsuvReport { layers: Vec::new() };
    let mut input = batch.clone();
    for (index, layer) in model.layers_mut().iter_mut().enumerate() {
        let layer: &mut dyn Module = layer.as_mut();
        if has_one_matrix_weight(layer) {
            let mut result = Ok(());
            layer.visit_params_mut(&mut |_, p| {
                if is_matrix_weight(p) {
                    let shape = p.value().shape().to_vec();
                    let orthonormal = Init::Orthogonal { gain: 1.0 };
                    match orthonormal.sample(&shape, 0, 0, rng) {
                        Ok(w) => {
                            if let Err(e) = p.set_value(w) {
                                result = Err(e);
                            }
                        }
                        Err(e) => result = Err(e),
                    }
                }
            });
            result?;
            let mut iterations = 0;
            let mut variance = output_variance(layer, &input);
            loop {
                // checked on every variance, the last one included: NaN compares false with
                // the tolerance, so it would otherwise pass as converged
                if !(variance.is_finite() && variance > 0.0) {
                    return Err(Error::InvalidArgument {
                        op: "lsuv",
                        message: format!(
                            "layer {index} ({}) has output variance {variance} on this batch \
                             (rescalings done: {iterations}); it cannot be scaled to 1",
                            layer.describe()
                        ),
                    });
                }
                if (variance - 1.0).abs() < f64::from(tol) || iterations == max_iter {
                    break;
                }
                let scale = (1.0 / variance.sqrt()) as Elem;
                layer.visit_params_mut(&mut |_, p| {
                    if is_matrix_weight(p) {
                        p.value_mut().mapv_inplace(|w| w * scale);
                    }
                });
                iterations += 1;
                variance = output_variance(layer, &input);
            }
            if (variance - 1.0).abs() >= f64::from(tol) {
                return Err(Error::NoConvergence {
                    what: format!(
                        "lsuv: layer {index} ({}) output variance {variance}, target 1 ± {tol}",
                        layer.describe()
                    ),
                    iters: iterations,
                });
            }
            report.layers.push(LsuvLayer {
                index,
                layer: layer.describe(),
                iterations,
                variance: variance as Elem,
            });
        }
        let tape = Tape::inference();
        input = layer.forward(tape.constant(input), Mode::Eval).value();
    }
    Ok(report)
}

/// Whether `p` is a weight with at least 2 axes (a matrix, or a convolution's filters), the
/// kind of parameter LSUV initializes and rescales.
fn is_matrix_weight(p: &Param) -> bool {
    p.role() == Role::Weight && p.value().ndim() >= 2
}

/// Whether `layer` has exactly one weight matrix, so that its output variance is that
/// weight's to set.
fn has_one_matrix_weight(layer: &dyn Module) -> bool {
    let mut count = 0;
    layer.visit_params(&mut |_, p| count += usize::from(is_matrix_weight(p)));
    count == 1
}

/// The variance of all elements of `layer`'s output on `input` (population variance, as
/// `np.var` computes it; accumulated in `f64` so that large layers don't lose digits).
fn output_variance(layer: &dyn Module, input: &Tensor) -> f64 {
    let tape = Tape::inference();
    let y = layer
        .forward(tape.constant(input.clone()), Mode::Eval)
        .value();
    variance(&y)
}

pub(crate) fn variance(t: &Tensor) -> f64 {
    let n = t.len() as f64;
    let mean = t.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    t.iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChaCha8Rng, Linear, Maxout, Relu, SeedableRng, Tanh, tensor};
    use ndarray::Ix2;

    /// A 10-weight-layer net of Linear and Maxout layers with various activations.
    fn deep_net(rng: &mut ChaCha8Rng) -> Sequential {
        let mut layers: Vec<Box<dyn Module>> = Vec::new();
        let mut width = 20;
        for i in 0..10 {
            let out = if i == 9 { 5 } else { 32 };
            if i % 3 == 1 {
                layers.push(Box::new(
                    Maxout::new(width, out, 2, Init::default(), rng).unwrap(),
                ));
            } else {
                layers.push(Box::new(
                    Linear::new(width, out, Init::default(), rng).unwrap(),
                ));
                if i < 9 {
                    layers.push(if i % 2 == 0 {
                        Box::new(Relu)
                    } else {
                        Box::new(Tanh)
                    });
                }
            }
            width = out;
        }
        Sequential::new(layers).unwrap()
    }

    #[test]
    fn lsuv_brings_every_layer_of_a_10_layer_net_within_tolerance() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut model = deep_net(&mut rng);
        let batch = tensor::normal(&[256, 20], 0.0, 1.0, &mut rng).unwrap();
        let mut biases = Vec::new();
        model.visit_params(&mut |_, p| {
            if p.role() == Role::Bias {
                biases.push(p.value().to_owned())
            }
        });
        let report = lsuv(&mut model, &batch, LSUV_TOLERANCE, LSUV_MAX_ITER, &mut rng).unwrap();
        assert_eq!(report.layers.len(), 10);
        // Recompute every weight layer's output variance independently of the report.
        let tape = Tape::inference();
        let mut h = tape.constant(batch);
        let mut checked = 0;
        for (index, layer) in model.layers().iter().enumerate() {
            h = layer.forward(h, Mode::Eval);
            if layer.num_params() > 0 {
                let v = variance(&h.value());
                let entry = &report.layers[checked];
                assert_eq!(entry.index, index);
                assert!((v - 1.0).abs() < 0.1, "layer {index}: variance {v}");
                assert!((v - f64::from(entry.variance)).abs() < 1e-5);
                assert!((1..=LSUV_MAX_ITER).contains(&entry.iterations));
                checked += 1;
            }
        }
        assert_eq!(checked, 10);
        let mut after = Vec::new();
        model.visit_params(&mut |_, p| {
            if p.role() == Role::Bias {
                after.push(p.value().to_owned())
            }
        });
        assert_eq!(biases, after, "lsuv leaves biases untouched");
    }

    #[test]
    fn lsuv_starts_from_orthonormal_weights() {
        // Without a bias one rescaling of an orthonormal weight gives variance 1 exactly,
        // and the weight stays a multiple of an orthonormal matrix.
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let layer = Linear::new_no_bias(16, 8, Init::Constant { value: 1.0 }, &mut rng).unwrap();
        let mut model = Sequential::new(vec![Box::new(layer)]).unwrap();
        let batch = tensor::normal(&[64, 16], 0.0, 1.0, &mut rng).unwrap();
        let report = lsuv(&mut model, &batch, 0.01, 10, &mut rng).unwrap();
        assert_eq!(report.layers[0].iterations, 1);
        assert!((report.layers[0].variance - 1.0).abs() < 1e-4);
        let mut w = None;
        model.visit_params(&mut |_, p| w = Some(p.value().to_owned()));
        let w = w.unwrap().into_dimensionality::<Ix2>().unwrap();
        let gram = w.dot(&w.t());
        let c = gram[[0, 0]];
        assert!(
            gram.indexed_iter()
                .all(|((i, j), &g)| { (g - if i == j { c } else { 0.0 }).abs() < 1e-4 * c })
        );
    }

    #[test]
    fn lsuv_scales_each_convolution_by_its_pre_activation_variance() {
        use crate::{Conv2d, Conv2dOptions, Flatten, MaxPool2d};
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let pad = Conv2dOptions::default().padding(1);
        let mut model = Sequential::new(vec![
            Box::new(Conv2d::new(2, 8, [3, 3], pad, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
            Box::new(Conv2d::new(8, 6, [3, 3], pad.groups(2), Init::default(), &mut rng).unwrap()),
            Box::new(Tanh),
            Box::new(Flatten),
            Box::new(Linear::new(6 * 4 * 4, 5, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap();
        let batch = tensor::normal(&[16, 2, 8, 8], 0.0, 1.0, &mut rng).unwrap();
        let report = lsuv(&mut model, &batch, 0.05, LSUV_MAX_ITER, &mut rng).unwrap();
        let indices: Vec<usize> = report.layers.iter().map(|l| l.index).collect();
        assert_eq!(indices, [0, 3, 6]);
        assert!(report.layers[0].layer.starts_with("Conv2d(2, 8"));
        // every weight layer's own output (the pre-activation) has variance 1 ± 0.05 over
        // all samples, channels and positions
        let tape = Tape::inference();
        let mut h = tape.constant(batch);
        for (index, layer) in model.layers().iter().enumerate() {
            h = layer.forward(h, Mode::Eval);
            if indices.contains(&index) {
                let v = variance(&h.value());
                assert!((v - 1.0).abs() < 0.05, "layer {index}: variance {v}");
            }
        }
        // the first convolution's weight, read as [8, 2·3·3], has orthogonal rows (a
        // multiple of an orthonormal matrix)
        let mut w = None;
        model.visit_params(&mut |name, p| {
            if name == "0.weight" {
                w = Some(p.value().to_owned())
            }
        });
        let w = w.unwrap().into_shape_with_order((8, 18)).unwrap();
        let gram = w.dot(&w.t());
        let c = gram[[0, 0]];
        assert!(
            gram.indexed_iter()
                .all(|((i, j), &g)| (g - if i == j { c } else { 0.0 }).abs() < 1e-4 * c)
        );
        // a model that starts with a convolution takes image batches, not rows
        let rows = tensor::normal(&[16, 96], 0.0, 1.0, &mut rng).unwrap();
        assert!(lsuv(&mut model, &tensor::zeros(&[1, 2, 8, 8]), 0.1, 10, &mut rng).is_err());
        let err = lsuv(&mut model, &rows, 0.1, 10, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "lsuv: expected a batch the model can take, found shape [16, 96], on which \
                 the model panics: conv2d: "
            ),
            "{err}"
        );
    }

    #[test]
    fn lsuv_reports_bad_input_and_no_convergence() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut model = deep_net(&mut rng);
        let batch = tensor::normal(&[32, 20], 0.0, 1.0, &mut rng).unwrap();
        assert!(lsuv(&mut model, &batch, 0.0, 10, &mut rng).is_err());
        assert!(lsuv(&mut model, &batch, 0.1, 0, &mut rng).is_err());
        let wrong = tensor::normal(&[32, 19], 0.0, 1.0, &mut rng).unwrap();
        assert_eq!(
            lsuv(&mut model, &wrong, 0.1, 10, &mut rng)
                .unwrap_err()
                .to_string(),
            "lsuv: expected a batch [n, 20] with n >= 2, found [32, 19]"
        );
        // zero inputs through a layer without bias: the output is all zeros
        let layer = Linear::new_no_bias(20, 4, Init::default(), &mut rng).unwrap();
        let mut dead = Sequential::new(vec![Box::new(layer)]).unwrap();
        let err = lsuv(&mut dead, &tensor::zeros(&[32, 20]), 0.1, 10, &mut rng).unwrap_err();
        assert!(err.to_string().contains("output variance 0"), "{err}");
        // A bias whose spread alone has variance 4 keeps the output variance above 1.1.
        let bias = tensor::from_vec(vec![-2.0, 2.0, -2.0, 2.0], &[4]).unwrap();
        let layer = Linear::from_parts(tensor::ones(&[4, 20]), Some(bias)).unwrap();
        let mut model = Sequential::new(vec![Box::new(layer)]).unwrap();
        match lsuv(&mut model, &batch, 0.1, 5, &mut rng).unwrap_err() {
            Error::NoConvergence { what, iters } => {
                assert_eq!(iters, 5);
                assert!(
                    what.starts_with("lsuv: layer 0 (Linear(in_features=20"),
                    "{what}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
}
