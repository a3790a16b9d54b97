//! Training on targets other than class labels: float values (regression), multi-label 0/1
//! vectors and the inputs themselves (autoencoders), through `fit`, `TrainStep` and a
//! hand-written tape loop, with the losses and metrics that fit them.

use tapegrad::ndarray::Array2;
use tapegrad::prelude::*;

/// `[n, 3]` inputs and `[n, 2]` targets of a noisy linear map.
fn regression(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = tensor::normal(&[n, 3], 0.0, 1.0, &mut rng).unwrap();
    let noise = tensor::normal(&[n, 2], 0.0, 0.1, &mut rng).unwrap();
    let x = x.into_dimensionality::<ndarray::Ix2>().unwrap();
    let w = ndarray::array![[1.0f32, -2.0], [0.5, 0.0], [-1.0, 3.0]];
    let y = x.dot(&w) + &noise.into_dimensionality::<ndarray::Ix2>().unwrap();
    Dataset::new(x, Targets::Values(y.into_dyn())).unwrap()
}

fn linear(seed: u64) -> Linear {
    Linear::new(3, 2, Init::default(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn params(model: &dyn Module) -> Vec<f32> {
    let mut all = Vec::new();
    model.visit_params(&mut |_, p| all.extend(p.value().iter().copied()));
    all
}

/// `fit` with plain SGD at `lr`, no validation data, no progress callback.
fn fit_sgd(model: &mut dyn Module, data: &Dataset, lr: f32, config: &FitConfig) -> History {
    fit(
        model,
        &mut Sgd::new(lr).unwrap(),
        data,
        None,
        config,
        &mut |_| {},
    )
    .unwrap()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn float_targets_train_alike_through_fit_train_step_in_two_shards_and_a_hand_loop() {
    let data = regression(192, 0);
    let (epochs, batch, lr, seed) = (3, 64, 0.05, 11);

    // fit
    let mut by_fit = linear(1);
    let config = FitConfig {
        epochs,
        batch_size: batch,
        seed,
        loss: Some(Loss::Mse),
        ..FitConfig::default()
    };
    let history = fit_sgd(&mut by_fit, &data, lr, &config);
    assert!(history.epochs[2].train_loss < history.epochs[0].train_loss);

    // TrainStep in two shards, the same shuffles
    let mut by_step = linear(1);
    let mut sgd = Sgd::new(lr).unwrap();
    let mut step = TrainStep::with_shards(2).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..epochs {
        let mut batches = data.batches(batch).unwrap().shuffled(&mut rng);
        while let Some(b) = batches.next() {
            step.run(&mut by_step, &mut sgd, b, &Loss::Mse).unwrap();
        }
    }

    // a tape loop by hand: w ← w − lr·∂L/∂w with L = mean((y − t)²)
    let mut by_hand = linear(1);
    let mut tape = Tape::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..epochs {
        let mut batches = data.batches(batch).unwrap().shuffled(&mut rng);
        while let Some(b) = batches.next() {
            let BatchTargets::Values(y) = &b.targets else {
                panic!("value targets expected")
            };
            tape.reset();
            let out = by_hand.forward(tape.constant(b.x.view()), Mode::Train);
            let grads = out.mse(tape.constant(y.view())).backward();
            by_hand.visit_params_mut(&mut |_, p| {
                let g = grads.param(p).unwrap().clone();
                p.value_mut().scaled_add(-lr, &g);
            });
        }
    }
    let (fit_params, step_params, hand_params) =
        (params(&by_fit), params(&by_step), params(&by_hand));
    assert!(max_difference(&fit_params, &hand_params) < 1e-6);
    assert!(max_difference(&step_params, &hand_params) < 1e-6);
    assert!(
        max_difference(&fit_params, &params(&linear(1))) > 0.01,
        "training moved nothing"
    );
}

#[test]
fn regression_reports_mse_mae_and_r2_and_stops_early_on_r2() {
    let (train, valid) = (regression(512, 1), regression(128, 2));
    let mut model = linear(3);
    let config = FitConfig {
        epochs: 30,
        batch_size: 32,
        patience: Some(3),
        monitor: Monitor::metric(Metric::R2),
        ..FitConfig::default()
    };
    let history = fit(
        &mut model,
        &mut Sgd::new(0.05).unwrap(),
        &train,
        Some(&valid),
        &config,
        &mut |_| {},
    )
    .unwrap();
    let last = history.epochs.last().unwrap();
    assert_eq!(last.valid_accuracy, None);
    let r2 = last.metric(Metric::R2).unwrap();
    assert!(r2 > 0.99, "{r2}");
    // the validation loss is the MSE (the default loss for float targets)
    assert!((last.valid_loss.unwrap() - last.metric(Metric::Mse).unwrap()).abs() < 1e-6);
    assert!(history.to_csv().starts_with(
        "epoch,train_loss,valid_loss,valid_accuracy,lr,seconds,samples_per_second,valid_mse,valid_mae,valid_r2\n"
    ));
    let eval = evaluate_with(&model, &valid, &Loss::L1, 64).unwrap();
    assert!((eval.loss - eval.metric(Metric::Mae).unwrap()).abs() < 1e-6);
}

#[test]
fn l1_huber_and_a_custom_loss_all_train_a_regression() {
    let data = regression(256, 4);
    let custom = Loss::custom("mse / 2", |out, targets| {
        let BatchTargets::Values(y) = targets else {
            panic!("value targets expected")
        };
        out.mse(out.tape().constant(y.clone())) * 0.5
    });
    for loss in [Loss::L1, Loss::Huber { delta: 1.0 }, custom] {
        let mut model = linear(5);
        let before = evaluate(&model, &data, 256)
            .unwrap()
            .metric(Metric::Mse)
            .unwrap();
        let config = FitConfig {
            epochs: 20,
            batch_size: 32,
            loss: Some(loss.clone()),
            ..FitConfig::default()
        };
        fit_sgd(&mut model, &data, 0.05, &config);
        let after = evaluate(&model, &data, 256)
            .unwrap()
            .metric(Metric::Mse)
            .unwrap();
        assert!(after < before / 10.0, "{loss:?}: {before} -> {after}");
    }
}

#[test]
fn multi_label_targets_train_with_bce_and_report_per_label_accuracy() {
    // label k of a sample is 1 when its feature k is positive
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = tensor::normal(&[400, 3], 0.0, 1.0, &mut rng).unwrap();
    let x = x.into_dimensionality::<ndarray::Ix2>().unwrap();
    let y = x.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let data = Dataset::new(x, Targets::MultiLabel(y)).unwrap();
    let mut model = Linear::new(3, 3, Init::default(), &mut rng).unwrap();
    let config = FitConfig {
        epochs: 20,
        batch_size: 20,
        ..FitConfig::default()
    };
    let history = fit(
        &mut model,
        &mut Sgd::new(0.5).unwrap(),
        &data,
        Some(&data),
        &config,
        &mut |_| {},
    )
    .unwrap();
    let accuracy = history.epochs.last().unwrap().valid_accuracy.unwrap();
    assert!(accuracy > 0.95, "{accuracy}");
}

#[test]
fn metrics_under_bce_with_logits_see_probabilities_and_other_losses_threshold_at_a_half() {
    // logits 20·x − 10 on x ∈ {0, 1}: σ gives 4.5e-5 and 1 − 4.5e-5, the targets nearly
    let x = Array2::from_shape_fn((8, 1), |(i, _)| (i % 2) as f32);
    let model = Linear::from_parts(
        tensor::from_vec(vec![20.0], &[1, 1]).unwrap(),
        Some(tensor::from_vec(vec![-10.0], &[1]).unwrap()),
    )
    .unwrap();
    let values = Dataset::new(x.clone(), Targets::Values(x.clone().into_dyn())).unwrap();
    let e = evaluate_with(&model, &values, &Loss::BceWithLogits, 8).unwrap();
    let (mse, r2) = (
        e.metric(Metric::Mse).unwrap(),
        e.metric(Metric::R2).unwrap(),
    );
    assert!(mse < 1e-8 && r2 > 0.999_999, "mse {mse}, r2 {r2}");
    // the same numbers as probabilities, under MSE: accuracy thresholds them at 0.5
    let probabilities = Linear::from_parts(
        tensor::from_vec(vec![0.8], &[1, 1]).unwrap(),
        Some(tensor::from_vec(vec![0.1], &[1]).unwrap()),
    )
    .unwrap();
    let labels = Dataset::new(x.clone(), Targets::MultiLabel(x.clone())).unwrap();
    let e = evaluate_with(&probabilities, &labels, &Loss::Mse, 8).unwrap();
    assert_eq!(e.accuracy, Some(1.0)); // 0.1 → 0, 0.9 → 1
    // as logits under BCE, 0.1 would be a 1: half wrong
    let e = evaluate_with(&probabilities, &labels, &Loss::BceWithLogits, 8).unwrap();
    assert_eq!(e.accuracy, Some(0.5));
}

#[test]
fn an_autoencoder_learns_to_reconstruct_its_inputs() {
    // 8 features that live on a 2-D plane: a 8-2-8 linear autoencoder can reconstruct them
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let codes = tensor::normal(&[300, 2], 0.0, 1.0, &mut rng).unwrap();
    let codes = codes.into_dimensionality::<ndarray::Ix2>().unwrap();
    let basis = tensor::normal(&[2, 8], 0.0, 1.0, &mut rng).unwrap();
    let x = codes.dot(&basis.into_dimensionality::<ndarray::Ix2>().unwrap());
    let data = Dataset::new(x, Targets::Inputs).unwrap();
    let mut model = Sequential::new(vec![
        Box::new(Linear::new(8, 2, Init::default(), &mut rng).unwrap()),
        Box::new(Linear::new(2, 8, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap();
    let before = evaluate(&model, &data, 300)
        .unwrap()
        .metric(Metric::R2)
        .unwrap();
    let config = FitConfig {
        epochs: 60,
        batch_size: 30,
        ..FitConfig::default()
    };
    fit_sgd(&mut model, &data, 0.05, &config);
    let after = evaluate(&model, &data, 300)
        .unwrap()
        .metric(Metric::R2)
        .unwrap();
    assert!(after > 0.95 && after > before, "{before} -> {after}");
}

#[test]
fn image_autoencoders_fit_their_inputs_with_flat_or_image_shaped_outputs() {
    // a dense decoder's [N, 16] and a decoder ending in Unflatten, [N, 1, 4, 4], on
    // [1, 4, 4] images: the same arithmetic, so the same training to the bit
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pixels: Vec<f32> = (0..40 * 16).map(|_| rng.random()).collect();
    let images = ndarray::Array4::from_shape_vec((40, 1, 4, 4), pixels).unwrap();
    let data = Dataset::new(images, Targets::Inputs).unwrap();
    assert_eq!(data.target_shape(), [1, 4, 4]);
    let dense = Linear::new(16, 16, Init::default(), &mut rng).unwrap();
    let mut flat = Sequential::new(vec![Box::new(Flatten), Box::new(dense.clone())]).unwrap();
    let mut shaped = Sequential::new(vec![
        Box::new(Flatten),
        Box::new(dense),
        Box::new(Unflatten::new(&[1, 4, 4]).unwrap()),
    ])
    .unwrap();
    let config = FitConfig {
        epochs: 3,
        batch_size: 8,
        ..FitConfig::default()
    };
    let flat_history = fit_sgd(&mut flat, &data, 0.1, &config);
    let shaped_history = fit_sgd(&mut shaped, &data, 0.1, &config);
    assert_eq!(params(&flat), params(&shaped));
    let losses = |h: &History| h.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&flat_history), losses(&shaped_history));
    assert!(flat_history.epochs[2].train_loss < flat_history.epochs[0].train_loss);
    let (a, b) = (
        evaluate(&flat, &data, 7).unwrap(),
        evaluate(&shaped, &data, 7).unwrap(),
    );
    assert_eq!(
        (a.loss, a.metric(Metric::R2)),
        (b.loss, b.metric(Metric::R2))
    );
    // a TrainStep on one batch takes the image-shaped output too
    let mut step = TrainStep::with_shards(2).unwrap();
    let mut batches = data.batches(8).unwrap();
    let batch = batches.next().unwrap();
    let mut sgd = Sgd::new(0.1).unwrap();
    let loss = step.run(&mut shaped, &mut sgd, batch, &Loss::Mse).unwrap();
    assert!(loss.is_finite() && loss > 0.0);
}

#[test]
fn top_k_accuracy_counts_the_label_among_the_k_largest_outputs() {
    let x = Array2::from_shape_vec((4, 1), vec![0.0f32, 1.4, 2.0, 3.6]).unwrap();
    let labels = vec![0, 2, 0, 1];
    let data = Dataset::from_floats(x, labels).unwrap();
    let weights = tensor::from_vec(vec![1.0, 1.0, 1.0, 1.0], &[4, 1]).unwrap();
    let bias = tensor::from_vec(vec![0.0, -1.0, -2.0, -3.0], &[4]).unwrap();
    // outputs x − j: the largest for the smallest j, so the ranking is 0, 1, 2, 3 for every x
    let model = Linear::from_parts(weights, Some(bias)).unwrap();
    let eval = evaluate(&model, &data, 4).unwrap();
    assert_eq!(eval.accuracy, Some(0.5));
    assert_eq!(eval.top_k_accuracy(1), Some(0.5));
    assert_eq!(eval.top_k_accuracy(2), Some(0.75));
    assert_eq!(eval.top_k_accuracy(3), Some(1.0));
    assert_eq!(eval.metric(Metric::TopK(2)), Some(0.75));
}

#[test]
fn fit_refuses_losses_monitors_and_models_that_do_not_fit_the_targets() {
    let data = regression(64, 8);
    let run = |model: &mut dyn Module, config: FitConfig, valid: Option<&Dataset>| {
        fit(
            model,
            &mut Sgd::new(0.1).unwrap(),
            &data,
            valid,
            &config,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string()
    };
    let config = FitConfig {
        loss: Some(Loss::CrossEntropy),
        ..FitConfig::default()
    };
    assert_eq!(
        run(&mut linear(0), config, None),
        "fit: training set: cross-entropy cannot compare outputs with float values; use Loss::Mse, L1, Huber or BceWithLogits for float targets"
    );
    let config = FitConfig {
        patience: Some(2),
        monitor: Monitor::ValidAccuracy,
        ..FitConfig::default()
    };
    assert_eq!(
        run(&mut linear(0), config, Some(&data)),
        "fit: early stopping watches the validation accuracy, which the validation targets do not have"
    );
    // top-0 accuracy is always 0: refused rather than stopping after `patience` epochs
    let classes = Dataset::from_floats(
        Array2::from_shape_fn((8, 3), |(i, j)| (i * 3 + j) as f32),
        vec![0, 1, 0, 1, 0, 1, 0, 1],
    )
    .unwrap();
    let config = FitConfig {
        patience: Some(2),
        monitor: Monitor::metric(Metric::TopK(0)),
        ..FitConfig::default()
    };
    let err = fit(
        &mut linear(0),
        &mut Sgd::new(0.1).unwrap(),
        &classes,
        Some(&classes),
        &config,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fit: early stopping watches the validation top-0 accuracy, expected k ≥ 1"
    );
    let mut three_outputs =
        Linear::new(3, 3, Init::default(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    assert_eq!(
        run(&mut three_outputs, FitConfig::default(), None),
        "fit: expected model output of shape [1, 2], or another shape of as many values, for one sample (the training set's targets are [2] per sample), found output shape [1, 3]"
    );
    let images = Dataset::new(
        ndarray::Array4::<u8>::zeros((4, 1, 2, 2)),
        Targets::classes(vec![0, 1, 0, 1]),
    )
    .unwrap();
    let mut mlp = Linear::new(4, 2, Init::default(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let err = fit(
        &mut mlp,
        &mut Sgd::new(0.1).unwrap(),
        &images,
        None,
        &FitConfig::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "fit: expected training set samples whose last axis is 4 (the input width of the model's first layer), found samples of shape [1, 2, 2]; flatten them with Dataset::with_sample_shape or a Flatten layer"
    );
    // a Flatten layer in front takes the images as they are
    let mut flattening = Sequential::new(vec![Box::new(Flatten), Box::new(mlp.clone())]).unwrap();
    let one_epoch = FitConfig {
        epochs: 1,
        ..FitConfig::default()
    };
    fit_sgd(&mut flattening, &images, 0.1, &one_epoch);
    let flat = images.with_sample_shape(&[4]).unwrap();
    fit_sgd(&mut mlp, &flat, 0.1, &one_epoch);
}

#[test]
fn augmentation_in_fit_is_seeded_per_epoch_and_resumes_alike() {
    // 4×4 one-channel images whose class is the side of a bright pixel
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut images = ndarray::Array4::<u8>::zeros((64, 1, 4, 4));
    let labels: Vec<usize> = (0..64).map(|i| i % 2).collect();
    for (i, &label) in labels.iter().enumerate() {
        let row = (i / 2) % 4;
        images[[i, 0, row, if label == 0 { 0 } else { 3 }]] = 255;
    }
    let data = Dataset::new(images, Targets::classes(labels)).unwrap();
    let model = || {
        Sequential::new(vec![
            Box::new(Flatten),
            Box::new(
                Linear::new(16, 2, Init::default(), &mut ChaCha8Rng::seed_from_u64(2)).unwrap(),
            ),
        ])
        .unwrap()
    };
    let config = |epochs, start_epoch| FitConfig {
        epochs,
        start_epoch,
        batch_size: 16,
        seed: 4,
        augment: Some(Augment::new().then(RandomTranslate::new(1).unwrap())),
        ..FitConfig::default()
    };
    let train = |m: &mut Sequential, c: &FitConfig| fit_sgd(m, &data, 0.1, c);
    let (mut a, mut b, mut plain) = (model(), model(), model());
    train(&mut a, &config(4, 0));
    train(&mut b, &config(4, 0));
    assert_eq!(params(&a), params(&b), "same seed, same augmentation");
    let mut no_augment = config(4, 0);
    no_augment.augment = None;
    train(&mut plain, &no_augment);
    assert!(
        max_difference(&params(&a), &params(&plain)) > 1e-4,
        "augmentation changed nothing"
    );
    // epochs 1-2, then 3-4 in a second call (plain SGD has no state to carry)
    let mut resumed = model();
    train(&mut resumed, &config(2, 0));
    train(&mut resumed, &config(4, 2));
    assert_eq!(params(&resumed), params(&a));
    // augmentation needs images
    let flat = data.with_sample_shape(&[16]).unwrap();
    let mut linear = Linear::new(16, 2, Init::default(), &mut rng).unwrap();
    let err = fit(
        &mut linear,
        &mut Sgd::new(0.1).unwrap(),
        &flat,
        None,
        &config(1, 0),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "augment: expected image samples [C, H, W], found samples of shape [16] (see Dataset::with_sample_shape)"
    );
}
