//! The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
//! Networks", <https://arxiv.org/abs/1506.01186>; the "lr finder" of fastai): train for a
//! few hundred steps while the learning rate grows exponentially, record the loss, and
//! suggest a rate from where the loss fell fastest before it blew up.

use super::ParamSnapshot;
use crate::autograd::Tape;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Mode, Module};
use crate::optim::Optimizer;
use crate::tensor::Elem;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Settings of [`lr_range_test`].
///
/// # Examples
/// ```
/// use tapegrad::diagnostics::{lr_range_test, LrRangeConfig};
/// use tapegrad::{ndarray::Array2, Dataset, Linear, Sgd, tensor};
/// let config = LrRangeConfig::default();
/// assert_eq!((config.start_lr, config.end_lr, config.steps), (1e-5, 10.0, 200));
/// // settings outside their ranges are refused before any step
/// let data = Dataset::from_floats(Array2::zeros((4, 1)), vec![0, 1, 0, 1])?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// let backwards = LrRangeConfig { start_lr: 1.0, end_lr: 0.1, ..config };
/// assert!(lr_range_test(&mut model, &mut Sgd::new(0.1)?, &data, &backwards).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LrRangeConfig {
    /// The learning rate of the first step, `> 0`.
    pub start_lr: Elem,
    /// The learning rate of the last step, `> start_lr`.
    pub end_lr: Elem,
    /// Number of steps, `>= 2`; step `i` uses `start·(end/start)^(i/(steps−1))`.
    pub steps: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Seed of the batch order.
    pub seed: u64,
    /// Factor `β ∈ [0, 1)` of the exponential moving average of the loss,
    /// `s_i = β·s_{i−1} + (1 − β)·L_i`, reported bias-corrected as `s_i / (1 − β^{i+1})`.
    pub smoothing: f64,
    /// Stop once the smoothed loss exceeds `stop_factor` times its minimum so far (`> 1`).
    pub stop_factor: f64,
}

impl Default for LrRangeConfig {
    /// `1e-5 → 10` over 200 steps of 64 samples, smoothing 0.9, stop at 4× the best loss.
    fn default() -> Self {
        LrRangeConfig {
            start_lr: 1e-5,
            end_lr: 10.0,
            steps: 200,
            batch_size: 64,
            seed: 0,
            smoothing: 0.9,
            stop_factor: 4.0,
        }
    }
}

/// The record of a [`lr_range_test`].
///
/// # Examples
/// ```
/// use tapegrad::diagnostics::{lr_range_test, LrRangeConfig};
/// use tapegrad::{ndarray::Array2, Dataset, Linear, Sgd, tensor};
/// let x = Array2::from_shape_fn((40, 1), |(i, _)| i as f32 / 20.0 - 1.0);
/// let labels = (0..40).map(|i| usize::from(i >= 20)).collect();
/// let data = Dataset::from_floats(x, labels)?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// let config = LrRangeConfig { steps: 30, batch_size: 8, ..LrRangeConfig::default() };
/// let test = lr_range_test(&mut model, &mut Sgd::new(0.1)?, &data, &config)?;
/// assert_eq!((test.lrs.len(), test.losses.len()), (test.smoothed.len(), test.smoothed.len()));
/// assert_eq!(test.lrs[0], 1e-5);
/// assert_eq!(test.suggested_lr, test.min_loss_lr / 10.0);
/// assert!(test.stopped_early || test.lrs.len() == 30);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LrRangeTest {
    /// The learning rate of each step taken.
    pub lrs: Vec<Elem>,
    /// The loss of each step (before its update).
    pub losses: Vec<f64>,
    /// The bias-corrected moving average of `losses`.
    pub smoothed: Vec<f64>,
    /// The learning rate at the lowest smoothed loss.
    pub min_loss_lr: Elem,
    /// The suggestion: `min_loss_lr / 10`, a rate still on the steep, stable part of the
    /// curve (at the minimum itself the loss is about to blow up).
    pub suggested_lr: Elem,
    /// Whether the sweep stopped before `end_lr` because the loss blew up (past
    /// `stop_factor`, or not finite).
    pub stopped_early: bool,
}

/// Sweeps the learning rate of `optimizer` exponentially from `start_lr` to `end_lr` over
/// `steps` training steps of the default loss for the data's targets ([`Loss::default_for`]:
/// softmax cross-entropy for class labels) on shuffled batches of `data` (cycling
/// through it as often as needed), and records the loss; see [`LrRangeTest`] for the
/// suggestion. The learning rate must be found by experiment, and this is the cheapest
/// experiment: one short run instead of one run per candidate rate.
///
/// The model's parameters, buffers and random generators (dropout's) are restored
/// afterwards, so training after the test draws as it would have without it, and the
/// optimizer's base rate is set back; the optimizer's other state (step count, momentum) is
/// not, so train with a fresh optimizer. The optimizer's schedule, if any, multiplies the swept rate.
///
/// # Errors
/// [`Error::InvalidArgument`] for settings outside the ranges in [`LrRangeConfig`] or empty
/// data, and, as [`fit`](crate::fit) checks them, [`Error::Shape`] or
/// [`Error::InvalidArgument`] for samples the model cannot take or targets its output does
/// not fit (a label it has no output for); [`Error::Diverged`] if already the first step's
/// loss is not finite.
///
/// # Examples
/// ```
/// use tapegrad::diagnostics::{lr_range_test, LrRangeConfig};
/// use tapegrad::{ndarray::Array2, ChaCha8Rng, Dataset, Init, Linear, SeedableRng, Sgd};
/// // two classes: the sign of the first feature
/// let x = Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
/// let labels = (0..200).map(|i| usize::from(x[[i, 0]] > 0.0)).collect();
/// let data = Dataset::from_floats(x, labels)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut model = Linear::new(2, 2, Init::default(), &mut rng)?;
/// let before = model.weight().value().to_owned();
/// let config = LrRangeConfig { steps: 100, batch_size: 20, ..LrRangeConfig::default() };
/// let test = lr_range_test(&mut model, &mut Sgd::new(0.1)?, &data, &config)?;
/// assert!(test.lrs.windows(2).all(|w| w[0] < w[1]));
/// assert!(test.suggested_lr > 1e-5 && test.suggested_lr < 10.0);
/// assert_eq!(model.weight().value(), &before); // restored
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn lr_range_test(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    data: &Dataset,
    config: &LrRangeConfig,
) -> Result<LrRangeTest> {
    check(config, data)?;
    // the model takes the samples and its output fits the targets, as fit checks them
    let loss = Loss::default_for(data.targets());
    crate::train::check_data("lr_range_test", "data set", &*model, data, &loss)?;
    let saved = ParamSnapshot::of(&*model);
    let mut rngs = Vec::new();
    model.visit_rngs(&mut |_, rng| rngs.push(rng.clone()));
    let base_lr = optimizer.base_lr();
    let result = sweep(model, optimizer, data, config);
    saved.restore(model)?;
    let mut saved_rngs = rngs.into_iter();
    model.visit_rngs_mut(&mut |_, rng| *rng = saved_rngs.next().expect("the same generators"));
    optimizer.set_base_lr(base_lr)?;
    result
}

fn sweep(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    data: &Dataset,
    config: &LrRangeConfig,
) -> Result<LrRangeTest> {
    let ratio = f64::from(config.end_lr) / f64::from(config.start_lr);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut record = LrRangeTest {
        lrs: Vec::new(),
        losses: Vec::new(),
        smoothed: Vec::new(),
        min_loss_lr: config.start_lr,
        suggested_lr: config.start_lr / 10.0,
        stopped_early: false,
    };
    let (mut average, mut best) = (0.0, f64::INFINITY);
    let mut tape = Tape::new();
    let criterion = Loss::default_for(data.targets());
    let mut step = 0;
    'epochs: loop {
        let mut batches = data.batches(config.batch_size)?.shuffled(&mut rng);
        while let Some(batch) = batches.next() {
            if step == config.steps {
                break 'epochs;
            }
            let t = step as f64 / (config.steps - 1) as f64;
            let lr = (f64::from(config.start_lr) * ratio.powf(t)) as Elem;
            optimizer.set_base_lr(lr)?;
            tape.reset();
            let output = model.forward(tape.constant(batch.x.view()), Mode::Train);
            let loss = criterion.compute(output, &batch.targets)?;
            let value = f64::from(loss.item());
            if !value.is_finite() {
                if step == 0 {
                    return Err(Error::Diverged {
                        op: "lr_range_test",
                        step: 0,
                        what: format!("the first loss is {value} at lr {lr}"),
                    });
                }
                record.stopped_early = true;
                break 'epochs;
            }
            average = config.smoothing * average + (1.0 - config.smoothing) * value;
            let smoothed = average / (1.0 - config.smoothing.powi(step as i32 + 1));
            record.lrs.push(lr);
            record.losses.push(value);
            record.smoothed.push(smoothed);
            if smoothed < best {
                best = smoothed;
                record.min_loss_lr = lr;
            }
            if smoothed > config.stop_factor * best
                || optimizer.step(model, &loss.backward()).is_err()
            {
                record.stopped_early = true;
                break 'epochs;
            }
            step += 1;
        }
    }
    record.suggested_lr = record.min_loss_lr / 10.0;
    Ok(record)
}

fn check(config: &LrRangeConfig, data: &Dataset) -> Result<()> {
    let LrRangeConfig {
        start_lr,
        end_lr,
        steps,
        batch_size,
        smoothing,
        stop_factor,
        ..
    } = *config;
    let problem = if !(start_lr > 0.0 && start_lr.is_finite()) {
        Some(format!("start_lr must be finite and > 0, got {start_lr}"))
    } else if !(end_lr > start_lr && end_lr.is_finite()) {
        Some(format!(
            "end_lr must be finite and > start_lr {start_lr}, got {end_lr}"
        ))
    } else if steps < 2 {
        Some(format!("steps must be at least 2, got {steps}"))
    } else if batch_size == 0 {
        Some("batch_size must be at least 1, got 0".to_string())
    } else if !(0.0..1.0).contains(&smoothing) {
        Some(format!("smoothing must be in [0, 1), got {smoothing}"))
    } else if stop_factor.is_nan() || stop_factor <= 1.0 {
        Some(format!("stop_factor must be > 1, got {stop_factor}"))
    } else if data.is_empty() {
        Some("the data set is empty".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(message) => Err(Error::InvalidArgument {
            op: "lr_range_test",
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Linear, Relu, Sequential};
    use crate::optim::Sgd;
    use crate::tensor;
    use crate::train::{FitConfig, fit};
    use ndarray::Array2;

    fn blobs(n: usize) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let noise = tensor::normal(&[n, 4], 0.0, 1.0, &mut rng).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Array2::from_shape_fn((n, 4), |(i, j)| {
            noise[[i, j]] + if labels[i] == j { 2.0 } else { 0.0 }
        });
        Dataset::from_floats(x, labels).unwrap()
    }

    fn mlp() -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        Sequential::new(vec![
            Box::new(Linear::new(4, 16, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
            Box::new(Linear::new(16, 3, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap()
    }

    #[test]
    fn the_suggested_rate_trains_better_than_a_tiny_or_the_blow_up_rate() {
        let data = blobs(600);
        let mut model = mlp();
        let config = LrRangeConfig {
            end_lr: 1000.0,
            ..LrRangeConfig::default()
        };
        let test = lr_range_test(&mut model, &mut Sgd::new(1.0).unwrap(), &data, &config).unwrap();
        assert!(test.stopped_early, "a rate of 1000 blows the loss up");
        assert!(test.lrs.len() < 200 && test.lrs.len() == test.losses.len());
        let first = test.smoothed[0];
        let lowest = test.smoothed.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(lowest < 0.7 * first, "{first} -> {lowest}");
        let final_loss = |lr: Elem| {
            let mut model = mlp();
            let fit_config = FitConfig {
                epochs: 3,
                batch_size: 64,
                ..FitConfig::default()
            };
            let mut sgd = Sgd::new(lr).unwrap();
            let h = fit(&mut model, &mut sgd, &data, None, &fit_config, &mut |_| {});
            h.map_or(f64::INFINITY, |h| h.epochs[2].train_loss)
        };
        let suggested = final_loss(test.suggested_lr);
        assert!(suggested < final_loss(test.suggested_lr / 1000.0));
        assert!(suggested < final_loss(test.min_loss_lr * 100.0));
    }

    #[test]
    fn dropout_generators_are_restored_too() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut model = crate::nn::Sequential::new(vec![
            Box::new(Linear::new(4, 8, Init::default(), &mut rng).unwrap()),
            Box::new(crate::nn::Dropout::new(0.5, &mut rng).unwrap()),
            Box::new(Linear::new(8, 3, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap();
        let generators = |m: &dyn Module| {
            let mut all = Vec::new();
            m.visit_rngs(&mut |_, r| all.push(r.clone()));
            all
        };
        let before = generators(&model);
        let config = LrRangeConfig {
            steps: 10,
            batch_size: 16,
            ..LrRangeConfig::default()
        };
        lr_range_test(
            &mut model,
            &mut Sgd::new(0.5).unwrap(),
            &blobs(100),
            &config,
        )
        .unwrap();
        assert_eq!(before.len(), 1);
        assert_eq!(generators(&model), before);
    }

    #[test]
    fn the_model_is_restored_and_the_sweep_is_repeatable() {
        let data = blobs(100);
        let mut model = mlp();
        let before = ParamSnapshot::of(&model);
        let config = LrRangeConfig {
            steps: 30,
            batch_size: 16,
            ..LrRangeConfig::default()
        };
        let mut sgd = Sgd::new(0.5).unwrap();
        let a = lr_range_test(&mut model, &mut sgd, &data, &config).unwrap();
        assert_eq!(ParamSnapshot::of(&model), before);
        assert_eq!(sgd.base_lr(), 0.5);
        let b = lr_range_test(&mut model, &mut Sgd::new(0.5).unwrap(), &data, &config).unwrap();
        assert_eq!(a, b);
        assert!((a.lrs[0] - 1e-5).abs() < 1e-9);
        assert_eq!(a.lrs.len(), 30, "{a:?}");
        assert!((a.lrs[29] - 10.0).abs() < 1e-3);
    }

    #[test]
    fn a_model_that_does_not_fit_the_data_is_an_error_not_a_panic() {
        let data = blobs(10); // width 4, labels 0..3
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let config = LrRangeConfig {
            steps: 5,
            ..LrRangeConfig::default()
        };
        for (model, words) in [
            (
                Linear::new(3, 3, Init::default(), &mut rng).unwrap(),
                "width",
            ),
            (
                Linear::new(4, 2, Init::default(), &mut rng).unwrap(),
                "label 2",
            ),
        ] {
            let mut model = model;
            let err = lr_range_test(&mut model, &mut Sgd::new(0.1).unwrap(), &data, &config)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("lr_range_test: ") && err.contains(words),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_settings_are_errors_naming_the_value() {
        let data = blobs(10);
        let mut model = mlp();
        let mut sgd = Sgd::new(0.1).unwrap();
        let bad = |config: LrRangeConfig| {
            lr_range_test(&mut mlp(), &mut Sgd::new(0.1).unwrap(), &data, &config)
                .unwrap_err()
                .to_string()
        };
        let base = LrRangeConfig::default();
        assert!(
            bad(LrRangeConfig {
                start_lr: 0.0,
                ..base.clone()
            })
            .contains("got 0")
        );
        assert!(
            bad(LrRangeConfig {
                end_lr: 1e-6,
                ..base.clone()
            })
            .contains("got 0.000001")
        );
        assert!(
            bad(LrRangeConfig {
                steps: 1,
                ..base.clone()
            })
            .contains("got 1")
        );
        assert!(
            bad(LrRangeConfig {
                smoothing: 1.0,
                ..base.clone()
            })
            .contains("[0, 1)")
        );
        assert!(
            bad(LrRangeConfig {
                stop_factor: 0.5,
                ..base.clone()
            })
            .contains("got 0.5")
        );
        assert!(lr_range_test(&mut model, &mut sgd, &data, &base).is_ok());
    }
}
