//! Greedy layer-wise pre-training of a sigmoid network as a stack of RBMs (a deep belief
//! net, Hinton, Osindero & Teh 2006): [`pretrain`] and its progress report
//! [`PretrainProgress`].

use super::{Rbm, RbmConfig, RbmEpoch, RbmTrainer, check_units};
use crate::error::{Error, Result};
use crate::nn::{Module, Sequential};
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Rows of a layer's input on which [`pretrain`] measures the reconstruction error after
/// each epoch (the first rows; all of them when there are fewer).
const MONITOR_ROWS: usize = 1000;

/// Where [`pretrain`] stands, reported after each epoch of each layer.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, pretrain, ChaCha8Rng, Init, Linear, RbmConfig, SeedableRng, Sequential, Sigmoid};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut model = Sequential::new(vec![
///     Box::new(Linear::new(6, 5, Init::default(), &mut rng)?),
///     Box::new(Sigmoid),
///     Box::new(Linear::new(5, 3, Init::default(), &mut rng)?),
///     Box::new(Sigmoid),
///     Box::new(Linear::new(3, 2, Init::default(), &mut rng)?),
/// ])?;
/// let data = tensor::from_vec((0..60).map(|i| (i % 3 == 0) as u8 as f32).collect(), &[10, 6])?;
/// let config = RbmConfig { batch_size: 5, epochs: 2, ..RbmConfig::practical_guide() };
/// let mut reports = Vec::new();
/// pretrain(&mut model, &data, &config, &mut |p| {
///     reports.push((p.layer, p.layers, p.epoch.epoch, p.reconstruction_error))
/// })?;
/// // two hidden layers, two epochs each, errors of probabilities in [0, 1]
/// let steps: Vec<_> = reports.iter().map(|r| (r.0, r.1, r.2)).collect();
/// assert_eq!(steps, [(1, 2, 1), (1, 2, 2), (2, 2, 1), (2, 2, 2)]);
/// assert!(reports.iter().all(|r| (0.0..=1.0).contains(&r.3)));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PretrainProgress<'a> {
    /// The layer being pre-trained, from 1 (the first hidden layer).
    pub layer: usize,
    /// Layers to pre-train in all (the model's `Linear`s but the output layer).
    pub layers: usize,
    /// The epoch just finished.
    pub epoch: &'a RbmEpoch,
    /// The RBM's one-step reconstruction error ([`Rbm::reconstruction_error`]) on the first
    /// 1,000 rows of its input.
    pub reconstruction_error: f64,
}

/// Greedy layer-wise pre-training (Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov
/// 2006): for a [`Sequential`] of the form `Linear, Sigmoid, Linear, Sigmoid, …, Linear`,
/// trains an RBM for each `Linear` but the last (the output layer) with `config`, on the
/// data for the first and on the previous RBM's hidden probabilities for the others, and
/// copies each RBM's weight and hidden bias into its `Linear` (same `[out, in]` layout).
/// The RBMs' visible biases have no place in the network; the trained RBMs are returned
/// (e.g. to look at the first layer's filters). Fine-tune afterwards with [`fit`](crate::fit),
/// as usual.
///
/// Every layer's RBM has binary units. The data and the hidden probabilities fed upwards are
/// real values in `[0, 1]`, used as the probabilities of binary units, as Hinton's guide
/// (2010, section 13.2) and the 2006 papers do for gray-level pixels (no Gaussian visible
/// layer); data outside `[0, 1]` are an error, so scale pixels to `[0, 1]` first. Layer
/// `l`'s RBM is drawn and trained with seed `config.seed + l` (`l` from 0), so the whole run
/// is reproducible. The output layer keeps its initialization.
///
/// # Tanh layers
/// Any hidden activation may be [`Tanh`](crate::Tanh) instead of `Sigmoid`. The RBMs are
/// trained exactly as for the sigmoid network, and each `Linear` gets their parameters
/// rescaled so that every tanh layer outputs `2h − 1`, where `h` is the sigmoid network's
/// hidden probabilities at that layer (the RBM's `p(h = 1 | ·)`). This uses
/// `tanh(x) = 2σ(2x) − 1`, that is `2σ(z) − 1 = tanh(z / 2)`. Take an RBM with weight `W`
/// and hidden bias `c`, so that `h = σ(W·u + c)` for its input `u`:
///
/// - If the layer's input is a tanh layer's output `x = 2u − 1`, then `u = (x + 1) / 2` and
///   `W·u + c = (W/2)·x + (c + W·1/2)`, where `W·1` sums each row of `W`.
/// - If the layer itself is tanh, the `Linear` must compute half the sigmoid's input:
///   `tanh(z/2) = 2σ(z) − 1`.
///
/// So a `Linear` after a sigmoid layer (or the data) and before a tanh gets `W' = W/2`,
/// `c' = c/2`; one between two tanh layers gets `W' = W/4`, `c' = c/2 + (W·1)/4`; one after
/// a tanh and before a sigmoid gets `W' = W/2`, `c' = c + (W·1)/2`. Up to rounding, the
/// tanh network then computes what the sigmoid network computes, mapped to `[−1, 1]`.
///
/// # Errors
/// [`Error::InvalidArgument`] when the model is not of that form (naming the first layer
/// that is not), when a `Linear` to pre-train has no bias, or for bad `config` settings (as
/// [`RbmConfig::validate`]) or data outside `[0, 1]`; [`Error::Shape`] when `data` is not
/// `[n, in]` for the first layer's `in`; [`Error::Diverged`] as [`RbmTrainer::step`].
///
/// # Examples
/// ```
/// use tapegrad::{tensor, pretrain, ChaCha8Rng, Init, Linear, Module, RbmConfig, SeedableRng, Sequential, Sigmoid};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut model = Sequential::new(vec![
///     Box::new(Linear::new(6, 4, Init::default(), &mut rng)?),
///     Box::new(Sigmoid),
///     Box::new(Linear::new(4, 2, Init::default(), &mut rng)?),
/// ])?;
/// let data = tensor::from_vec((0..60).map(|i| (i % 2) as f32).collect(), &[10, 6])?;
/// let config = RbmConfig { batch_size: 5, epochs: 3, ..RbmConfig::practical_guide() };
/// let mut seen = Vec::new();
/// let rbms = pretrain(&mut model, &data, &config, &mut |p| seen.push((p.layer, p.epoch.epoch)))?;
/// assert_eq!(seen, [(1, 1), (1, 2), (1, 3)]); // one layer below the output layer
/// let mut first = None;
/// model.visit_params(&mut |name, p| if name == "0.weight" { first = Some(p.value().to_owned()) });
/// assert_eq!(first.as_ref(), Some(&rbms[0].weight().value().to_owned()));
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn pretrain(
    model: &mut Sequential,
    data: &Tensor,
    config: &RbmConfig,
    on_progress: &mut dyn FnMut(&PretrainProgress<'_>),
) -> Result<Vec<Rbm>> {
    config.validate()?;
    let targets = layers_to_pretrain(model)?;
    let mut input_tanh = false;
    let first_in = model.layers()[0].in_features().unwrap_or(0);
    check_units("pretrain", "visible", data, first_in)?;
    let mut rbms = Vec::with_capacity(targets.len());
    let mut input = data.clone();
    for (l, &(index, output_tanh)) in targets.iter().enumerate() {
        let layer = &model.layers()[index];
        let (visible, hidden) = (
            layer.in_features().unwrap_or(0),
            layer.out_features().unwrap_or(0),
        );
        let seed = config.seed.wrapping_add(l as u64);
        let mut rbm = Rbm::new(visible, hidden, &mut ChaCha8Rng::seed_from_u64(seed))?;
        let layer_config = RbmConfig {
            seed,
            ..config.clone()
        };
        let mut trainer = RbmTrainer::new(&rbm, layer_config)?;
        let rows = input.shape()[0].min(MONITOR_ROWS);
        let monitor = input.slice(ndarray::s![..rows, ..]).to_owned().into_dyn();
        for _ in 0..config.epochs {
            let record = trainer.epoch(&mut rbm, &input)?;
            let reconstruction_error = rbm.reconstruction_error(&monitor)?;
            on_progress(&PretrainProgress {
                layer: l + 1,
                layers: targets.len(),
                epoch: &record,
                reconstruction_error,
            });
        }
        let (weight, bias) = linear_parameters(&rbm, input_tanh, output_tanh);
        let (weight_name, bias_name) = (format!("{index}.weight"), format!("{index}.bias"));
        model.visit_params_mut(&mut |name, p| {
            if name == weight_name {
                p.value_mut().assign(&weight);
            } else if name == bias_name {
                p.value_mut().assign(&bias);
            }
        });
        input_tanh = output_tanh;
        input = rbm.hidden_probs(&input)?;
        rbms.push(rbm);
    }
    Ok(rbms)
}

/// The weight and bias of the `Linear` that stands for `rbm`, for a layer whose input is a
/// tanh layer's output (`input_tanh`) or not, and whose own activation is tanh
/// (`output_tanh`) or sigmoid; see [`pretrain`], "Tanh layers".
fn linear_parameters(rbm: &Rbm, input_tanh: bool, output_tanh: bool) -> (Tensor, Tensor) {
    let w = rbm.weight().value();
    let mut weight = w.to_owned();
    let mut bias = rbm.hidden_bias().value().to_owned();
    if input_tanh {
        // c + W·1/2, then W/2
        let row_sums = w.sum_axis(ndarray::Axis(1));
        bias.zip_mut_with(&row_sums, |c, &s| *c += 0.5 * s);
        weight *= 0.5;
    }
    if output_tanh {
        weight *= 0.5;
        bias *= 0.5;
    }
    (weight, bias)
}

/// The `Linear` layers to pre-train (their indices, and whether the activation after each
/// is tanh), after checking the model's form.
fn layers_to_pretrain(model: &Sequential) -> Result<Vec<(usize, bool)>> {
    let bad = |message: String| {
        Err(Error::InvalidArgument {
            op: "pretrain",
            message,
        })
    };
    let layers = model.layers();
    if layers.is_empty() {
        return bad(
            "expected a Sequential of the form Linear, Sigmoid or Tanh, …, Linear, found no layers"
                .into(),
        );
    }
    let form = "a Sequential of the form Linear, Sigmoid or Tanh, …, Linear";
    let mut targets = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let description = layer.describe();
        let expect_linear = i.is_multiple_of(2);
        let is_linear = description.starts_with("Linear(");
        let fits = if expect_linear {
            is_linear
        } else {
            description == "Sigmoid()" || description == "Tanh()"
        };
        if !fits {
            return bad(format!("expected {form}, found {description} at layer {i}"));
        }
        if is_linear && i + 1 < layers.len() {
            let mut has_bias = false;
            layer.visit_params(&mut |name, _| has_bias |= name == "bias");
            if !has_bias {
                return bad(format!(
                    "layer {i} ({description}) needs a bias to take the RBM's hidden bias"
                ));
            }
            targets.push((i, layers[i + 1].describe() == "Tanh()"));
        }
    }
    if layers.len().is_multiple_of(2) {
        return bad(format!(
            "expected {form} (ending with the output layer), found {} at layer {}",
            layers[layers.len() - 1].describe(),
            layers.len() - 1
        ));
    }
    Ok(targets)
}
