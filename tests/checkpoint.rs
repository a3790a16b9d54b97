//! Checkpoints through the public API: a save/load round trip gives the same forward output
//! and the same next optimizer step; training 2 epochs, saving, resuming in a fresh process
//! and training 2 more equals 4 uninterrupted epochs bit for bit; a stored scaler restores
//! the training-time transform; safetensors round trips.

use std::path::{Path, PathBuf};
use std::process::Command;
use tapegrad::ndarray::Array2;
use tapegrad::{
    ChaCha8Rng, Checkpoint, Dataset, Decay, DecayUnit, Dropout, FitConfig, Init, Linear, Mode,
    Module, Optimizer, Relu, Scaler, Schedule, SeedableRng, Sequential, Sgd, Tape, Tensor,
    checkpoint, evaluate, export_safetensors, fit, import_safetensors, tensor,
};

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapegrad-it-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Three classes around three centres, features on very different scales (so the scaler
/// matters).
fn blobs(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = tensor::normal(&[n, 4], 0.0, 1.0, &mut rng).unwrap();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let x = Array2::from_shape_fn((n, 4), |(i, j)| {
        let centre = labels[i] as f32 * 1.5;
        (noise[[i, j]] + centre) * [1.0, 10.0, 100.0, 0.1][j] + 50.0
    });
    Dataset::from_floats(x, labels).unwrap()
}

/// 4 → 16 → ReLU → dropout → 3; the construction seed differs between runs on purpose:
/// everything that matters must come from the checkpoint.
fn model(seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new(vec![
        Box::new(Linear::new(4, 16, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Dropout::new(0.3, &mut rng).unwrap()),
        Box::new(Linear::new(16, 3, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap()
}

/// SGD with momentum, weight decay and a cosine schedule over 4 epochs of 10 steps.
fn sgd() -> Sgd {
    let cosine = Decay::Cosine {
        period: 40,
        min_factor: 0.1,
    };
    Sgd::new(0.05)
        .unwrap()
        .momentum(0.9)
        .unwrap()
        .weight_decay(1e-3)
        .unwrap()
        .schedule(Schedule::new(cosine, DecayUnit::Step).unwrap())
}

fn config(epochs: usize, start_epoch: usize) -> FitConfig {
    FitConfig {
        epochs,
        start_epoch,
        batch_size: 30,
        seed: 17,
        ..FitConfig::default()
    }
}

fn params(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    m.visit_params(&mut |name, p| v.push((name.to_string(), p.value().to_owned())));
    v
}

/// Bitwise equality, so that -0.0 vs 0.0 or NaN payloads cannot hide.
fn bits(p: &[(String, Tensor)]) -> Vec<(String, Vec<u32>)> {
    (p.iter())
        .map(|(n, t)| (n.clone(), t.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// The training data with a standardizer fitted on it.
fn scaled_train() -> (Dataset, Scaler) {
    let mut train = blobs(300, 1);
    let scaler = Scaler::standardize(&train).unwrap();
    train.set_scaler(scaler.clone()).unwrap();
    (train, scaler)
}

const CHILD: &str = "TAPEGRAD_RESUME_CHILD_DIR";

/// The second half in a fresh process: build everything anew (another construction seed),
/// restore from `run.ckpt`, train epochs 3 and 4, and save the result to `resumed.ckpt`.
fn child(dir: &Path) {
    let checkpoint = Checkpoint::load(dir.join("run.ckpt")).unwrap();
    let mut train = blobs(300, 1);
    train
        .set_scaler(checkpoint.scaler().expect("scaler stored").clone())
        .unwrap();
    let mut model = model(999);
    let mut sgd = sgd();
    let done = checkpoint.resume(&mut model, &mut sgd).unwrap();
    assert_eq!(done, 2);
    fit(
        &mut model,
        &mut sgd,
        &train,
        None,
        &config(4, done),
        &mut |_| {},
    )
    .unwrap();
    Checkpoint::new(&model)
        .with_training(&sgd, 4)
        .unwrap()
        .save(dir.join("resumed.ckpt"))
        .unwrap();
}

#[test]
fn two_plus_two_epochs_across_processes_equal_four_bit_for_bit() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(Path::new(&dir));
        return;
    }
    let dir = folder("resume");
    let (train, scaler) = scaled_train();

    // 4 epochs in one go
    let mut straight = model(0);
    let mut straight_sgd = sgd();
    fit(
        &mut straight,
        &mut straight_sgd,
        &train,
        None,
        &config(4, 0),
        &mut |_| {},
    )
    .unwrap();

    // 2 epochs, save, then the rest in a fresh process
    let mut first = model(0);
    let mut first_sgd = sgd();
    fit(
        &mut first,
        &mut first_sgd,
        &train,
        None,
        &config(2, 0),
        &mut |_| {},
    )
    .unwrap();
    Checkpoint::new(&first)
        .with_scaler(scaler)
        .with_training(&first_sgd, 2)
        .unwrap()
        .save(dir.join("run.ckpt"))
        .unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "two_plus_two_epochs_across_processes_equal_four_bit_for_bit",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, &dir)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the resumed process failed: {}",
        String::from_utf8_lossy(&child.stdout)
    );

    let resumed = Checkpoint::load(dir.join("resumed.ckpt")).unwrap();
    assert_eq!(bits(resumed.params()), bits(&params(&straight)));
    // the optimizer too: momentum buffers, counters (and so the schedule's position)
    assert_eq!(
        resumed.optimizer_state().unwrap(),
        &straight_sgd.state().unwrap()
    );
    // a run that was not restored differs, so the comparison can fail
    assert_ne!(bits(&params(&first)), bits(&params(&straight)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn round_trip_gives_the_same_output_and_the_same_next_step() {
    let dir = folder("round-trip");
    let path = dir.join("model.ckpt");
    let (train, _) = scaled_train();
    let mut a = model(0);
    let mut sgd_a = sgd();
    fit(&mut a, &mut sgd_a, &train, None, &config(1, 0), &mut |_| {}).unwrap();
    Checkpoint::new(&a)
        .with_training(&sgd_a, 1)
        .unwrap()
        .save(&path)
        .unwrap();

    let mut b = model(5);
    let mut sgd_b = sgd();
    Checkpoint::load(&path)
        .unwrap()
        .resume(&mut b, &mut sgd_b)
        .unwrap();
    let (x, labels) = train.full_batch();
    let tape = Tape::new();
    let (ya, yb) = (
        a.forward(tape.constant(x.clone()), Mode::Eval).value(),
        b.forward(tape.constant(x.clone()), Mode::Eval).value(),
    );
    assert_eq!(ya, yb);
    // one more step on each: the same parameters after it (dropout masks included)
    for (m, opt) in [
        (&mut a, &mut sgd_a as &mut dyn Optimizer),
        (&mut b, &mut sgd_b),
    ] {
        let tape = Tape::new();
        let loss = m
            .forward(tape.constant(x.clone()), Mode::Train)
            .cross_entropy(labels);
        opt.step(m, &loss.backward()).unwrap();
    }
    assert_eq!(bits(&params(&a)), bits(&params(&b)));

    // the plain save/load pair restores the parameters alone
    checkpoint::save(&a, &path).unwrap();
    let mut c = model(6);
    checkpoint::load(&mut c, &path).unwrap();
    assert_eq!(bits(&params(&a)), bits(&params(&c)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_stored_scaler_restores_the_training_time_transform() {
    let dir = folder("scaler");
    let path = dir.join("model.ckpt");
    let (train, scaler) = scaled_train();
    let mut trained = model(0);
    let mut opt = sgd();
    fit(
        &mut trained,
        &mut opt,
        &train,
        None,
        &config(4, 0),
        &mut |_| {},
    )
    .unwrap();
    let mut test = blobs(150, 2);
    test.set_scaler(scaler.clone()).unwrap();
    let expected = evaluate(&trained, &test, 50).unwrap();
    Checkpoint::new(&trained)
        .with_scaler(scaler.clone())
        .save(&path)
        .unwrap();

    // inference elsewhere: raw test data, model and scaler from the file
    let loaded = Checkpoint::load(&path).unwrap();
    let mut model = model(3);
    loaded.restore_model(&mut model).unwrap();
    let stored = loaded.scaler().expect("the scaler was saved").clone();
    assert_eq!(stored, scaler);
    let mut raw = blobs(150, 2);
    raw.set_scaler(stored).unwrap();
    let got = evaluate(&model, &raw, 50).unwrap();
    assert_eq!(got.loss.to_bits(), expected.loss.to_bits());
    assert_eq!(got.accuracy, expected.accuracy);
    assert!(got.accuracy > 0.8, "{}", got.accuracy);
    // without the scaler the same model does much worse: the transform matters
    let unscaled = evaluate(&model, &blobs(150, 2), 50).unwrap();
    assert!(unscaled.accuracy < got.accuracy, "{}", unscaled.accuracy);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_round_trip() {
    let dir = folder("safetensors");
    let path = dir.join("model.safetensors");
    let (train, _) = scaled_train();
    let mut a = model(0);
    fit(&mut a, &mut sgd(), &train, None, &config(1, 0), &mut |_| {}).unwrap();
    export_safetensors(&a, &path).unwrap();
    let mut b = model(4);
    assert_ne!(bits(&params(&a)), bits(&params(&b)));
    import_safetensors(&mut b, &path).unwrap();
    assert_eq!(bits(&params(&a)), bits(&params(&b)));
    let (x, _) = train.full_batch();
    let tape = Tape::new();
    assert_eq!(
        a.forward(tape.constant(x.clone()), Mode::Eval).value(),
        b.forward(tape.constant(x), Mode::Eval).value()
    );
    // the same names as the bincode checkpoint and PyTorch's nn.Sequential state_dict
    let names: Vec<String> = params(&a).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
