//! Training diagnostics: what each layer of a [`Sequential`] does to a batch (activation
//! mean and standard deviation, dead units), what each parameter's gradient and update
//! look like (gradient norm, update/weight ratio), the learning-rate range test
//! ([`lr_range_test`]), and the receptive fields of an image model's layers
//! ([`receptive_field`]).
//!
//! Call [`probe`] between epochs of your own training (for instance [`fit`](crate::fit)
//! with one epoch at a time) to see vanishing or exploding gradients, saturated or dead
//! units, and learning rates that move the weights too much or too little. A rule of thumb
//! (Karpathy's CS231n notes) is an update/weight ratio near `1e-3` per step.
//!
//! # Examples
//! A report per epoch: train one epoch at a time, then measure how far each parameter moved
//! ([`ParamSnapshot`]) and probe the model on a fixed batch.
//! ```
//! use tapegrad::diagnostics::ParamSnapshot;
//! use tapegrad::prelude::*;
//! let mut rng = ChaCha8Rng::seed_from_u64(0);
//! let x = ndarray::Array2::from_shape_fn((120, 4), |(i, j)| ((i * 5 + j * 3) % 7) as f32 - 3.0);
//! let labels = (0..120).map(|i| usize::from(x[[i, 0]] + x[[i, 1]] > 0.0)).collect();
//! let data = Dataset::from_floats(x, labels)?;
//! let mut model = Sequential::new(vec![
//!     Box::new(Linear::new(4, 8, Init::default(), &mut rng)?),
//!     Box::new(Relu),
//!     Box::new(Linear::new(8, 2, Init::default(), &mut rng)?),
//! ])?;
//! let mut sgd = Sgd::new(0.1)?;
//! let (batch, _) = data.full_batch();
//! let batch_labels = data.labels().unwrap();
//! let mut losses = Vec::new();
//! for epoch in 0..5 {
//!     let before = ParamSnapshot::of(&model);
//!     let config = FitConfig { epochs: 1, batch_size: 16, seed: epoch, ..FitConfig::default() };
//!     fit(&mut model, &mut sgd, &data, None, &config, &mut |_| {})?;
//!     let moved = before.update_ratios(&model)?; // ‖ΔW‖/‖W‖ over the epoch, per parameter
//!     let probe = diagnostics::probe(&model, &batch, batch_labels, sgd.lr())?;
//!     assert_eq!(moved.len(), probe.params.len());
//!     assert!(moved.iter().all(|(_, ratio)| *ratio > 0.0));
//!     assert!(probe.layers[1].dead_fraction < 1.0); // some ReLU units are alive
//!     losses.push(probe.loss);
//! }
//! assert!(losses[4] < losses[0]);
//! # Ok::<(), tapegrad::Error>(())
//! ```

mod lr_range;
mod receptive_field;

pub use lr_range::{LrRangeConfig, LrRangeTest, lr_range_test};
pub use receptive_field::{Field, LayerField, receptive_field};

use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::nn::{Mode, Module, Role, Sequential};
use crate::tensor::{Elem, SharedTensor, Tensor};
use std::fmt;

/// A unit counts as dead on a batch when its output varies by at most this much over the
/// batch (`max − min ≤ DEAD_TOLERANCE`).
///
/// # Examples
/// ```
/// use tapegrad::{diagnostics, tensor, Linear, Sequential};
/// // the second output varies by 1e-7 over the batch: below the tolerance, so dead
/// let w = tensor::from_vec(vec![1.0, 1e-7], &[2, 1])?;
/// let model = Sequential::new(vec![Box::new(Linear::from_parts(w, None)?)])?;
/// let x = tensor::from_vec(vec![0.0, 1.0], &[2, 1])?;
/// assert!(1e-7 <= diagnostics::DEAD_TOLERANCE);
/// assert_eq!(diagnostics::activation_stats(&model, &x)?[0].dead_fraction, 0.5);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub const DEAD_TOLERANCE: Elem = 1e-6;

/// What one layer's output looks like on a batch.
///
/// # Examples
/// ```
/// use tapegrad::{diagnostics, tensor, Linear, Relu, Sequential};
/// let model = Sequential::new(vec![
///     Box::new(Linear::from_parts(tensor::from_vec(vec![1.0, -1.0], &[2, 1])?, None)?),
///     Box::new(Relu),
/// ])?;
/// let x = tensor::from_vec(vec![1.0, 3.0], &[2, 1])?;
/// let relu = &diagnostics::activation_stats(&model, &x)?[1];
/// assert_eq!((relu.index, relu.mean), (1, 1.0)); // outputs [1, 0] and [3, 0]
/// assert!((relu.std - 1.5f64.sqrt()).abs() < 1e-12); // deviations 0, −1, 2, −1
/// assert_eq!(relu.dead_fraction, 0.5); // the second unit is 0 for every sample
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// The layer's index in the [`Sequential`].
    pub index: usize,
    /// The layer's [`Module::describe`] line.
    pub layer: String,
    /// Mean of all output elements.
    pub mean: f64,
    /// Standard deviation of all output elements (population, over samples and units).
    pub std: f64,
    /// Fraction of output units (columns) that are dead on the batch: the same value for
    /// every sample, up to [`DEAD_TOLERANCE`]. Such a unit tells the next layer nothing
    /// about the input; a dead ReLU (output 0 for every sample) also passes no gradient,
    /// so nothing before it can revive it on this data.
    pub dead_fraction: f64,
}

/// What one parameter's gradient looks like.
///
/// # Examples
/// ```
/// use tapegrad::{diagnostics, tensor, Linear, Role, Sequential};
/// // logits [3w, 0] for x = 3; weight ‖W‖ = 1
/// let w = tensor::from_vec(vec![1.0, 0.0], &[2, 1])?;
/// let model = Sequential::new(vec![Box::new(Linear::from_parts(w, None)?)])?;
/// let probe = diagnostics::probe(&model, &tensor::from_vec(vec![3.0], &[1, 1])?, &[1], 0.5)?;
/// let stats = &probe.params[0];
/// assert_eq!((stats.name.as_str(), stats.role, stats.weight_norm), ("0.weight", Role::Weight, 1.0));
/// assert!(stats.grad_norm > 0.0);
/// assert!((stats.update_ratio - 0.5 * stats.grad_norm).abs() < 1e-12); // lr·‖g‖/‖W‖
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ParamStats {
    /// The parameter's path name, e.g. `"0.weight"`.
    pub name: String,
    /// What the parameter is for ([`Param::role`](crate::Param::role)).
    pub role: Role,
    /// `‖W‖`, the Euclidean (Frobenius) norm of the value.
    pub weight_norm: f64,
    /// `‖∂L/∂W‖`; 0 when the loss does not depend on the parameter.
    pub grad_norm: f64,
    /// `lr·‖∂L/∂W‖ / ‖W‖`: the relative size of a plain SGD step (no momentum), or
    /// infinite when `‖W‖ = 0` and the gradient is not.
    pub update_ratio: f64,
}

/// One look at a model: its loss, its layers' outputs and its parameters' gradients on a
/// batch, as returned by [`probe`].
///
/// # Examples
/// ```
/// use tapegrad::{diagnostics, tensor, Linear, Sequential, Tanh};
/// let model = Sequential::new(vec![
///     Box::new(Linear::from_parts(tensor::zeros(&[2, 2]), Some(tensor::zeros(&[2])))?),
///     Box::new(Tanh),
/// ])?;
/// let probe = diagnostics::probe(&model, &tensor::ones(&[4, 2]), &[0, 1, 0, 1], 0.1)?;
/// assert!((probe.loss - 2f64.ln()).abs() < 1e-6); // equal logits over 2 classes
/// assert_eq!((probe.layers.len(), probe.params.len()), (2, 2));
/// assert!(probe.to_string().contains("| 0.bias |"));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The softmax cross-entropy on the batch.
    pub loss: f64,
    /// One entry per layer, first layer first.
    pub layers: Vec<LayerStats>,
    /// One entry per parameter, in [`Module::visit_params`] order.
    pub params: Vec<ParamStats>,
}

impl Probe {
    /// The gradient norms of the weights (parameters of role [`Role::Weight`]), first layer
    /// first.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::diagnostics::{Probe, ParamStats};
    /// use tapegrad::Role;
    /// let stat = |name: &str, role, g| ParamStats {
    ///     name: name.into(), role, weight_norm: 1.0, grad_norm: g, update_ratio: 0.0 };
    /// let p = Probe { loss: 0.0, layers: vec![], params: vec![
    ///     stat("0.weight", Role::Weight, 2.0),
    ///     stat("0.bias", Role::Bias, 3.0),
    ///     stat("2.weight", Role::Weight, 4.0),
    /// ] };
    /// assert_eq!(p.weight_grad_norms(), vec![2.0, 4.0]);
    /// ```
    pub fn weight_grad_norms(&self) -> Vec<f64> {
        self.params
            .iter()
            .filter(|p| p.role == Role::Weight)
            .map(|p| p.grad_norm)
            .collect()
    }
}

impl fmt::Display for Probe {
    /// Two Markdown tables: the layers, then the parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "loss {:.4}\n", self.loss)?;
        writeln!(f, "| layer | output mean | output std | dead units |")?;
        writeln!(f, "|---|---|---|---|")?;
        for l in &self.layers {
            writeln!(
                f,
                "| {} {} | {:.4} | {:.4} | {:.1}% |",
                l.index,
                l.layer,
                l.mean,
                l.std,
                100.0 * l.dead_fraction
            )?;
        }
        writeln!(f, "\n| parameter | ‖W‖ | ‖∂L/∂W‖ | lr·‖∂L/∂W‖/‖W‖ |")?;
        writeln!(f, "|---|---|---|---|")?;
        for p in &self.params {
            writeln!(
                f,
                "| {} | {:.4} | {:.3e} | {:.3e} |",
                p.name, p.weight_norm, p.grad_norm, p.update_ratio
            )?;
        }
        Ok(())
    }
}

/// Runs `model` on the batch `x` one layer at a time in [`Mode::Eval`] (so dropout is off
/// and the probe is deterministic), records each layer's [`LayerStats`], then takes the
/// softmax cross-entropy against `labels`, back-propagates, and records each parameter's
/// [`ParamStats`] for learning rate `lr`. The model is not changed.
///
/// # Errors
/// [`Error::Shape`] if `x` is not `[n, in]` with `n >= 1` and `in` the model's input width,
/// or `labels` does not have `n` entries; [`Error::InvalidArgument`] if a label is not
/// below the model's output width, or `lr` is not finite and `>= 0`.
///
/// # Examples
/// ```
/// use tapegrad::{diagnostics, tensor, Linear, Relu, Sequential};
/// // one ReLU unit that is dead on every input (bias −10), one that is alive
/// let model = Sequential::new(vec![
///     Box::new(Linear::from_parts(tensor::ones(&[2, 1]),
///         Some(tensor::from_vec(vec![-10.0, 0.0], &[2])?))?),
///     Box::new(Relu),
///     Box::new(Linear::from_parts(tensor::ones(&[2, 2]), None)?),
/// ])?;
/// let x = tensor::from_vec(vec![1.0, 2.0, 3.0], &[3, 1])?;
/// let probe = diagnostics::probe(&model, &x, &[0, 1, 0], 0.1)?;
/// assert_eq!(probe.layers[1].dead_fraction, 0.5); // the ReLU layer: 1 of 2 units
/// assert_eq!(probe.layers[1].mean, 1.0); // (0 + 0 + 0 + 1 + 2 + 3) / 6
/// // both logits are h₀ + h₁, so the loss is ln 2
/// assert!((probe.loss - 2f64.ln()).abs() < 1e-6);
/// assert_eq!(probe.params[0].name, "0.weight");
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn probe(model: &Sequential, x: &Tensor, labels: &[usize], lr: Elem) -> Result<Probe> {
    check_batch("diagnostics::probe", model, x, Some(labels))?;
    if !(lr >= 0.0 && lr.is_finite()) {
        return Err(Error::InvalidArgument {
            op: "diagnostics::probe",
            message: format!("lr must be finite and >= 0, got {lr}"),
        });
    }
    let tape = Tape::new();
    let mut h = tape.constant(x.clone());
    let mut layers = Vec::with_capacity(model.len());
    for (index, layer) in model.layers().iter().enumerate() {
        h = layer.forward(h, Mode::Eval);
        layers.push(layer_stats(index, layer.as_ref(), &h.value()));
    }
    let loss = h.cross_entropy(labels);
    let value = f64::from(loss.item());
    let grads = loss.backward();
    let mut params = Vec::new();
    model.visit_params(&mut |name, p| {
        let weight_norm = norm(p.value());
        let grad_norm = grads.param(p).map_or(0.0, norm);
        let step = f64::from(lr) * grad_norm;
        params.push(ParamStats {
            name: name.to_string(),
            role: p.role(),
            weight_norm,
            grad_norm,
            update_ratio: if step == 0.0 { 0.0 } else { step / weight_norm },
        });
    });
    Ok(Probe {
        loss: value,
        layers,
        params,
    })
}

/// Per-layer [`LayerStats`] of `model` on the batch `x`, without labels or gradients (an
/// inference pass in [`Mode::Eval`]).
///
/// # Errors
/// [`Error::Shape`] if `x` is not `[n, in]` with `n >= 1` and `in` the model's input width.
///
/// # Examples
/// ```
/// use tapegrad::{diagnostics, tensor, Linear, Sequential, Tanh};
/// let model = Sequential::new(vec![
///     Box::new(Linear::from_parts(tensor::from_vec(vec![2.0], &[1, 1])?, None)?),
///     Box::new(Tanh),
/// ])?;
/// let x = tensor::from_vec(vec![-1.0, 1.0], &[2, 1])?;
/// let stats = diagnostics::activation_stats(&model, &x)?;
/// assert_eq!((stats[0].mean, stats[0].std), (0.0, 2.0)); // outputs −2 and 2
/// assert!((stats[1].std - 2f64.tanh()).abs() < 1e-6);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn activation_stats(model: &Sequential, x: &Tensor) -> Result<Vec<LayerStats>> {
    check_batch("diagnostics::activation_stats", model, x, None)?;
    let tape = Tape::inference();
    let mut h = tape.constant(x.clone());
    let mut stats = Vec::with_capacity(model.len());
    for (index, layer) in model.layers().iter().enumerate() {
        h = layer.forward(h, Mode::Eval);
        stats.push(layer_stats(index, layer.as_ref(), &h.value()));
    }
    Ok(stats)
}

/// The values of a model's parameters at one moment, with its buffers (a batch norm's
/// running statistics), to measure how far training moved them later
/// ([`ParamSnapshot::update_ratios`] gives `‖W_now − W_then‖ / ‖W_then‖`, the real relative
/// update, with momentum, schedules and all, over one step or one epoch) or to put the model
/// back as it was ([`ParamSnapshot::restore`], as early stopping restores its best epoch).
///
/// # Examples
/// ```
/// use tapegrad::{diagnostics::ParamSnapshot, tensor, Linear};
/// let mut layer = Linear::from_parts(tensor::ones(&[1, 4]), None)?;
/// let before = ParamSnapshot::of(&layer);
/// assert_eq!(before.update_ratios(&layer)?[0].1, 0.0); // nothing moved yet
/// layer.weight_mut().value_mut().fill(2.0); // ‖ΔW‖ = ‖W‖ = 2
/// assert_eq!(before.update_ratios(&layer)?[0].1, 1.0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSnapshot {
    /// Shared with the parameters until they are next written (copy-on-write), so taking a
    /// snapshot copies no parameter.
    values: Vec<(String, SharedTensor)>,
    /// The buffers ([`Module::visit_buffers`]), copied.
    buffers: Vec<(String, Tensor)>,
}

impl ParamSnapshot {
    /// Takes every parameter and buffer of `model`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{diagnostics::ParamSnapshot, tensor, Linear};
    /// let layer = Linear::from_parts(tensor::ones(&[2, 2]), Some(tensor::ones(&[2])))?;
    /// let snapshot = ParamSnapshot::of(&layer);
    /// let names: Vec<String> = snapshot.update_ratios(&layer)?.into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["weight", "bias"]);
    /// // another architecture does not match the snapshot
    /// assert!(snapshot.update_ratios(&Linear::from_parts(tensor::ones(&[2, 2]), None)?).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn of(model: &dyn Module) -> Self {
        let mut values = Vec::new();
        model.visit_params(&mut |name, p| values.push((name.to_string(), p.value().clone())));
        let mut buffers = Vec::new();
        model.visit_buffers(&mut |name, b| buffers.push((name.to_string(), b.clone())));
        ParamSnapshot { values, buffers }
    }

    /// `(name, ‖W_now − W_then‖ / ‖W_then‖)` per parameter (infinite when `W_then = 0` and
    /// the parameter moved, 0 when neither).
    ///
    /// # Errors
    /// [`Error::Shape`] if `model` does not have the snapshot's parameter names and shapes.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{diagnostics::ParamSnapshot, tensor, Linear};
    /// let mut layer = Linear::from_parts(tensor::from_vec(vec![3.0, 4.0], &[1, 2])?, None)?;
    /// let before = ParamSnapshot::of(&layer);
    /// layer.weight_mut().value_mut()[[0, 0]] = 3.5; // moved by 0.5; ‖W‖ was 5
    /// assert_eq!(before.update_ratios(&layer)?, vec![("weight".to_string(), 0.1)]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn update_ratios(&self, model: &dyn Module) -> Result<Vec<(String, f64)>> {
        self.check(model, "diagnostics::update_ratios")?;
        let mut ratios = Vec::with_capacity(self.values.len());
        let mut then = self.values.iter();
        model.visit_params(&mut |name, p| {
            let (_, old) = then.next().expect("checked: same parameters");
            let moved = norm(&(p.value() - old));
            let ratio = if moved == 0.0 { 0.0 } else { moved / norm(old) };
            ratios.push((name.to_string(), ratio));
        });
        Ok(ratios)
    }

    /// Puts the snapshot's parameters and buffers back into `model` (the model it was taken
    /// of, or one with the same names and shapes), as early stopping restores its best epoch.
    ///
    /// # Errors
    /// [`Error::Shape`] if `model` does not have the snapshot's parameter and buffer names
    /// and shapes; the model is unchanged then.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{diagnostics::ParamSnapshot, tensor, Linear};
    /// let mut layer = Linear::from_parts(tensor::from_vec(vec![3.0, 4.0], &[1, 2])?, None)?;
    /// let saved = ParamSnapshot::of(&layer);
    /// layer.weight_mut().value_mut().fill(0.0);
    /// saved.restore(&mut layer)?;
    /// assert_eq!(layer.weight().value()[[0, 1]], 4.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn restore(&self, model: &mut dyn Module) -> Result<()> {
        self.check(&*model, "param_snapshot::restore")?;
        let mut values = self.values.iter();
        model.visit_params_mut(&mut |_, p| {
            let (_, value) = values.next().expect("checked: same parameters");
            p.value_mut().assign(value);
        });
        let mut buffers = self.buffers.iter();
        model.visit_buffers_mut(&mut |_, b| {
            let (_, value) = buffers.next().expect("checked: same buffers");
            b.assign(value);
        });
        Ok(())
    }

    /// Checks that `model` has the snapshot's parameter and buffer names and shapes, in
    /// order.
    fn check(&self, model: &dyn Module, op: &'static str) -> Result<()> {
        let mut params = Vec::new();
        model.visit_params(&mut |name, p| {
            params.push((name.to_string(), p.value().shape().to_vec()))
        });
        let mut buffers = Vec::new();
        model.visit_buffers(&mut |name, b| buffers.push((name.to_string(), b.shape().to_vec())));
        let found = mismatch("parameter", &params, &self.values)
            .or_else(|| mismatch("buffer", &buffers, &self.buffers));
        match found {
            None => Ok(()),
            Some(found) => Err(Error::Shape {
                op,
                expected: "the parameters and buffers the snapshot was taken of".into(),
                found,
            }),
        }
    }
}

/// The first difference between a model's `(name, shape)` list of `kind` ("parameter",
/// "buffer") and a snapshot's, in order; `None` when they agree.
fn mismatch<S: ndarray::Data<Elem = Elem>>(
    kind: &str,
    model: &[(String, Vec<usize>)],
    snapshot: &[(String, ndarray::ArrayBase<S, ndarray::IxDyn>)],
) -> Option<String> {
    let (mut now, mut then) = (model.iter(), snapshot.iter());
    loop {
        match (now.next(), then.next()) {
            (None, None) => return None,
            (Some((name, shape)), Some((old_name, old)))
                if name == old_name && shape.as_slice() == old.shape() => {}
            (Some((name, shape)), other) => {
                let other = other.map(|(n, v)| (n.clone(), v.shape().to_vec()));
                return Some(format!("{kind} \"{name}\" {shape:?}, snapshot {other:?}"));
            }
            (None, Some((name, _))) => {
                return Some(format!("snapshot {kind} \"{name}\" missing in the model"));
            }
        }
    }
}

/// Checks a probe's batch: `[n, width]` with `n >= 1` and the model's input width, one label per
/// sample, each one of the model's outputs ([`crate::train::check_batch`]).
fn check_batch(
    op: &'static str,
    model: &Sequential,
    x: &Tensor,
    labels: Option<&[usize]>,
) -> Result<()> {
    let shape = x.shape();
    let width_ok = model.in_features().is_none_or(|w| shape.get(1) == Some(&w));
    if shape.len() != 2 || shape[0] == 0 || !width_ok {
        let width = model
            .in_features()
            .map_or_else(|| "in".to_string(), |w| w.to_string());
        return Err(Error::Shape {
            op,
            expected: format!("a batch [n, {width}] with n >= 1"),
            found: format!("{shape:?}"),
        });
    }
    if let Some(labels) = labels
        && labels.len() != shape[0]
    {
        return Err(Error::Shape {
            op,
            expected: format!("{} labels, one per sample", shape[0]),
            found: format!("{} labels", labels.len()),
        });
    }
    crate::train::check_batch(op, model, shape, labels)
}

/// Euclidean norm of all elements, accumulated in `f64`.
fn norm<S: ndarray::Data<Elem = Elem>>(t: &ndarray::ArrayBase<S, ndarray::IxDyn>) -> f64 {
    t.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt()
}

fn layer_stats(index: usize, layer: &dyn Module, out: &Tensor) -> LayerStats {
    let n = out.len().max(1) as f64;
    let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = out
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let dead_fraction = match out.shape() {
        [rows, units] if *rows > 0 && *units > 0 => {
            let dead = (0..*units)
                .filter(|&j| {
                    let column = (0..*rows).map(|i| out[[i, j]]);
                    let (lo, hi) = column
                        .fold((Elem::INFINITY, Elem::NEG_INFINITY), |(lo, hi), v| {
                            (lo.min(v), hi.max(v))
                        });
                    hi - lo <= DEAD_TOLERANCE
                })
                .count();
            dead as f64 / *units as f64
        }
        _ => 0.0,
    };
    LayerStats {
        index,
        layer: layer.describe(),
        mean,
        std: var.sqrt(),
        dead_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Linear, Relu, Sigmoid};
    use crate::optim::{Optimizer, Sgd};
    use crate::tensor;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn deep(activation: Box<dyn Fn() -> Box<dyn Module>>, depth: usize) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut layers: Vec<Box<dyn Module>> = Vec::new();
        for _ in 0..depth {
            let init = Init::XavierUniform { gain: 1.0 };
            layers.push(Box::new(Linear::new(16, 16, init, &mut rng).unwrap()));
            layers.push(activation());
        }
        layers.push(Box::new(
            Linear::new(16, 3, Init::default(), &mut rng).unwrap(),
        ));
        Sequential::new(layers).unwrap()
    }

    #[test]
    fn sigmoid_gradients_vanish_toward_the_input() {
        let model = deep(Box::new(|| Box::new(Sigmoid)), 8);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = tensor::normal(&[64, 16], 0.0, 1.0, &mut rng).unwrap();
        let labels: Vec<usize> = (0..64).map(|i| i % 3).collect();
        let probe = probe(&model, &x, &labels, 0.1).unwrap();
        let norms = probe.weight_grad_norms();
        assert_eq!(norms.len(), 9);
        // σ' <= 1/4: the first layer's gradient is orders of magnitude below the last's
        assert!(norms[0] < 1e-2 * norms[8], "{norms:?}");
        assert_eq!(probe.layers.len(), 17);
        // sigmoid outputs sit in (0, 1) around 1/2
        assert!((probe.layers[1].mean - 0.5).abs() < 0.1);
        assert!(probe.params.iter().all(|p| p.update_ratio.is_finite()));
    }

    #[test]
    fn dead_relu_units_are_counted_and_get_no_gradient() {
        // unit 0 has a huge negative bias: zero output for every sample
        let w = tensor::from_vec(vec![1.0, 1.0, 1.0, -1.0], &[2, 2]).unwrap();
        let b = tensor::from_vec(vec![-100.0, 0.5], &[2]).unwrap();
        let model = Sequential::new(vec![
            Box::new(Linear::from_parts(w, Some(b)).unwrap()),
            Box::new(Relu),
            Box::new(Linear::from_parts(tensor::ones(&[2, 2]), None).unwrap()),
        ])
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x = tensor::normal(&[32, 2], 0.0, 1.0, &mut rng).unwrap();
        let stats = activation_stats(&model, &x).unwrap();
        assert_eq!(stats[0].dead_fraction, 0.0);
        assert_eq!(stats[1].dead_fraction, 0.5);
        assert_eq!(stats[1].layer, "ReLU()");
    }

    #[test]
    fn bad_batches_are_errors_naming_the_shapes() {
        let model = deep(Box::new(|| Box::new(Relu)), 1);
        let x = tensor::zeros(&[4, 5]);
        let e = activation_stats(&model, &x).unwrap_err().to_string();
        assert!(e.contains("[4, 5]") && e.contains("16"), "{e}");
        let x = tensor::zeros(&[4, 16]);
        let e = probe(&model, &x, &[0, 1], 0.1).unwrap_err().to_string();
        assert!(e.contains("4 labels") && e.contains("2 labels"), "{e}");
        let e = probe(&model, &x, &[0, 1, 2, 3], 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 3 of the batch has label 3"), "{e}");
        assert!(probe(&model, &x, &[0; 4], -1.0).is_err());
    }

    #[test]
    fn snapshot_ratio_matches_a_plain_sgd_step() {
        let mut model = deep(Box::new(|| Box::new(Relu)), 2);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = tensor::normal(&[32, 16], 0.0, 1.0, &mut rng).unwrap();
        let labels: Vec<usize> = (0..32).map(|i| i % 3).collect();
        let lr = 0.05;
        let predicted = probe(&model, &x, &labels, lr).unwrap();
        let before = ParamSnapshot::of(&model);
        let tape = Tape::new();
        let loss = model
            .forward(tape.constant(x), Mode::Eval)
            .cross_entropy(&labels);
        Sgd::new(lr)
            .unwrap()
            .step(&mut model, &loss.backward())
            .unwrap();
        let measured = before.update_ratios(&model).unwrap();
        assert_eq!(measured.len(), predicted.params.len());
        for ((name, ratio), p) in measured.iter().zip(&predicted.params) {
            assert_eq!(name, &p.name);
            assert!(
                (ratio - p.update_ratio).abs() <= 1e-4 * p.update_ratio.max(1e-9),
                "{name}"
            );
            assert!(*ratio > 0.0);
        }
        let other = deep(Box::new(|| Box::new(Relu)), 1);
        assert!(before.update_ratios(&other).is_err());
    }

    #[test]
    fn display_prints_both_tables() {
        let model = deep(Box::new(|| Box::new(Relu)), 1);
        let x = tensor::ones(&[2, 16]);
        let text = probe(&model, &x, &[0, 1], 0.1).unwrap().to_string();
        assert!(text.contains("| 1 ReLU() |"), "{text}");
        assert!(text.contains("| 0.weight |"), "{text}");
    }
}
