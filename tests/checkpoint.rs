//! Checkpoints through the public API: a save/load round trip gives the same forward output
//! and the same next optimizer step; training 2 epochs, saving, resuming in a fresh process
//! and training 2 more equals 4 uninterrupted epochs bit for bit; a stored scaler restores
//! the training-time transform; safetensors round trips; checkpoints of every size load
//! back, in particular payloads just below, at and just above each power of 4 from 4^6 to
//! 4^11; a save killed mid-write leaves a temporary file that the next save removes.

use rand::RngExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use tapegrad::ndarray::Array2;

/// Bytes before a checkpoint's payload (magic 8, version 5, payload length 8, CRC-32 4), as the
/// format documented on `tapegrad::checkpoint` lays them out; the format constants are private.
const HEADER_LEN: usize = 8 + 4 + 8 + 4;
use tapegrad::checkpoint::{Checkpoint, export_safetensors, import_safetensors};
use tapegrad::{
    Adam, BatchNorm1d, ChaCha8Rng, Dataset, Decay, DecayUnit, Dropout, FitConfig, Init, Linear,
    Mode, Module, Optimizer, Param, Relu, Scaler, Schedule, SeedableRng, Sequential, Sgd, Tape,
    Tensor, Var, checkpoint, evaluate, fit, tensor,
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

/// 4 → 16 → batch norm → ReLU → dropout → 3; the construction seed differs between runs on
/// purpose: everything that matters must come from the checkpoint (the batch norm's running
/// statistics too).
fn model(seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new(vec![
        Box::new(Linear::new(4, 16, Init::default(), &mut rng).unwrap()),
        Box::new(BatchNorm1d::new(16).unwrap()),
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

fn buffers(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    m.visit_buffers(&mut |name, b| v.push((name.to_string(), b.to_owned())));
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
    assert_eq!(bits(resumed.buffers()), bits(&buffers(&straight)));
    assert_eq!(resumed.buffers()[2].1.first(), Some(&40.0)); // 4 epochs of 10 batches
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
    let (x, _) = train.full_batch();
    let labels = train.labels().unwrap();
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
    let accuracy = got.accuracy.unwrap();
    assert!(accuracy > 0.8, "{accuracy}");
    // without the scaler the same model does much worse: the transform matters
    let unscaled = evaluate(&model, &blobs(150, 2), 50).unwrap();
    let unscaled = unscaled.accuracy.unwrap();
    assert!(unscaled < accuracy, "{unscaled}");
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
    assert_eq!(bits(&buffers(&a)), bits(&buffers(&b))); // the running statistics
    let (x, _) = train.full_batch();
    let tape = Tape::new();
    assert_eq!(
        a.forward(tape.constant(x.clone()), Mode::Eval).value(),
        b.forward(tape.constant(x), Mode::Eval).value()
    );
    // the same names as the bincode checkpoint and PyTorch's nn.Sequential state_dict
    let names: Vec<String> = params(&a).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"
        ]
    );
    let names: Vec<String> = buffers(&a).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A model whose first parameter has a longer name than its [`Sequential`] gives it, so that
/// the payload can be set to the byte: each extra letter adds one byte to every record that
/// names the parameter (the parameter itself and each of its optimizer buffers).
struct Padded {
    inner: Sequential,
    first: String,
    padded: String,
}

impl Module for Padded {
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
        self.inner.forward(x, mode)
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        let (first, padded) = (&self.first, &self.padded);
        self.inner
            .visit_params(&mut |n, p| f(if n == first { padded } else { n }, p));
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        let (first, padded) = (&self.first, &self.padded);
        self.inner
            .visit_params_mut(&mut |n, p| f(if n == first { padded } else { n }, p));
    }

    fn visit_rngs(&self, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        self.inner.visit_rngs(f);
    }

    fn visit_rngs_mut(&mut self, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        self.inner.visit_rngs_mut(f);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Training {
    None,
    SgdMomentum,
    Adam,
}

impl Training {
    /// How many records name each parameter: itself, plus its optimizer buffers.
    fn records(self) -> usize {
        match self {
            Training::None => 1,
            Training::SgdMomentum => 2,
            Training::Adam => 3,
        }
    }

    fn optimizer(self) -> Option<Box<dyn Optimizer>> {
        match self {
            Training::None => None,
            Training::SgdMomentum => Some(Box::new(Sgd::new(0.1).unwrap().momentum(0.9).unwrap())),
            Training::Adam => Some(Box::new(Adam::new(0.01).unwrap())),
        }
    }
}

/// One checkpoint of the sweep: an `inputs → hidden → outputs` MLP (with dropout or not),
/// its first parameter's name `pad` letters longer, the training state of `training` after
/// one step, and an affine scaler of `scaler` features if any.
#[derive(Clone, Copy, Debug)]
struct Case {
    inputs: usize,
    hidden: usize,
    outputs: usize,
    dropout: bool,
    training: Training,
    pad: usize,
    scaler: Option<usize>,
}

impl Case {
    /// Payload bytes per hidden unit: its weights in and out and its bias, 4 bytes each, in
    /// every record (until a length prefix grows a byte).
    fn per_hidden(&self) -> usize {
        4 * (self.inputs + 1 + self.outputs) * self.training.records()
    }

    /// The model (built from `seed`), its optimizer after one step, and the checkpoint.
    fn build(&self, seed: u64) -> (Padded, Option<Box<dyn Optimizer>>, Checkpoint) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers: Vec<Box<dyn Module>> = vec![
            Box::new(Linear::new(self.inputs, self.hidden, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
        ];
        if self.dropout {
            layers.push(Box::new(Dropout::new(0.25, &mut rng).unwrap()));
        }
        layers.push(Box::new(
            Linear::new(self.hidden, self.outputs, Init::default(), &mut rng).unwrap(),
        ));
        let inner = Sequential::new(layers).unwrap();
        let mut first = String::new();
        inner.visit_params(&mut |n, _| {
            if first.is_empty() {
                first = n.to_string();
            }
        });
        let padded = format!("{first}{}", "p".repeat(self.pad));
        let mut model = Padded {
            inner,
            first,
            padded,
        };
        let mut optimizer = self.training.optimizer();
        if let Some(opt) = optimizer.as_mut() {
            let tape = Tape::new();
            let x = tensor::normal(&[3, self.inputs], 0.0, 1.0, &mut rng).unwrap();
            let labels: Vec<usize> = (0..3).map(|i| i % self.outputs).collect();
            let loss = model
                .forward(tape.constant(x), Mode::Train)
                .cross_entropy(&labels);
            opt.step(&mut model, &loss.backward()).unwrap();
        }
        let mut checkpoint = Checkpoint::new(&model);
        if let Some(opt) = optimizer.as_deref() {
            checkpoint = checkpoint.with_training(opt, 1).unwrap();
        }
        if let Some(features) = self.scaler {
            checkpoint = checkpoint.with_scaler(Scaler::affine(features, 0.5, -1.0).unwrap());
        }
        (model, optimizer, checkpoint)
    }

    fn payload_len(&self) -> usize {
        let bytes = self.build(0).2.to_bytes().unwrap();
        bytes.len() - HEADER_LEN
    }
}

/// The smallest remainder the fine adjustment is asked to fill: enough for a scaler of up to
/// 2 features (3 + 8·k bytes) plus letters.
const SLACK: usize = 24;

/// A case like `base` whose payload, before the fine adjustment, is at least `SLACK` and
/// less than `SLACK + per_hidden + 64` bytes below `target`: the hidden width solved from
/// the bytes per hidden unit and corrected by measuring (a length prefix that grows a byte
/// moves the payload by a few bytes more).
fn coarse(base: Case, target: usize) -> (Case, usize) {
    let slope = base.per_hidden();
    let mut case = Case {
        hidden: (target.saturating_sub(SLACK + 300) / slope).max(1),
        ..base
    };
    for _ in 0..10 {
        let len = case.payload_len();
        let gap = target as i64 - SLACK as i64 - len as i64;
        if (0..(slope + 64) as i64).contains(&gap) {
            return (case, len);
        }
        case.hidden = (case.hidden as i64 + gap.div_euclid(slope as i64)).max(1) as usize;
    }
    panic!("no hidden width puts {base:?} near {target} bytes");
}

/// `case` adjusted to a payload of exactly `target` bytes, from its coarse payload `len`:
/// `pad` letters add `records` bytes each, a scaler of k features 3 + 8·k (its `Some` tag,
/// its kind, two one-byte lengths and 2·k floats). Among the ways to do it, `rng` picks one.
fn exact(case: Case, len: usize, target: usize, rng: &mut ChaCha8Rng) -> Case {
    let remainder = target - len;
    let records = case.training.records();
    let scalers = std::iter::once(None).chain((0..40).map(Some));
    let ways: Vec<Case> = scalers
        .filter_map(|scaler| {
            let scaler_bytes = scaler.map_or(0, |k| 3 + 8 * k);
            let letters = remainder.checked_sub(scaler_bytes)?;
            (letters % records == 0 && letters / records <= 200).then_some(Case {
                pad: letters / records,
                scaler,
                ..case
            })
        })
        .collect();
    assert!(!ways.is_empty(), "no adjustment fills {remainder} bytes");
    ways[rng.random_range(0..ways.len())]
}

#[test]
fn checkpoints_just_below_at_and_above_every_power_of_4_load_back() {
    let dir = folder("sizes");
    let path = dir.join("sweep.ckpt");
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut checked = 0;
    for power in 6..=11 {
        let boundary = 1usize << (2 * power);
        for training in [Training::None, Training::SgdMomentum, Training::Adam] {
            let base = Case {
                inputs: rng.random_range(1..=8),
                hidden: 1,
                outputs: rng.random_range(2..=8),
                dropout: rng.random_bool(0.5),
                training,
                pad: 0,
                scaler: None,
            };
            let offset = rng.random_range(2..=300);
            for target in [
                boundary - offset,
                boundary - 1,
                boundary,
                boundary + 1,
                boundary + offset,
            ] {
                let (coarse_case, coarse_len) = coarse(base, target);
                let case = exact(coarse_case, coarse_len, target, &mut rng);
                let (model, optimizer, saved) = case.build(0);
                saved.save(&path).unwrap();
                let payload = std::fs::metadata(&path).unwrap().len() as usize - HEADER_LEN;
                assert_eq!(payload, target, "{case:?}");

                let loaded = Checkpoint::load(&path).unwrap();
                let (mut fresh, _, _) = Case {
                    training: Training::None,
                    scaler: None,
                    ..case
                }
                .build(1);
                assert_ne!(bits(&params(&fresh)), bits(&params(&model)));
                match (optimizer, case.training.optimizer()) {
                    (Some(optimizer), Some(mut other)) => {
                        assert_eq!(loaded.resume(&mut fresh, other.as_mut()).unwrap(), 1);
                        assert_eq!(other.state().unwrap(), optimizer.state().unwrap());
                    }
                    (None, None) => loaded.restore_model(&mut fresh).unwrap(),
                    _ => unreachable!("both or neither have an optimizer"),
                }
                assert_eq!(bits(&params(&fresh)), bits(&params(&model)), "{case:?}");
                let scaler = case.scaler.map(|k| Scaler::affine(k, 0.5, -1.0).unwrap());
                assert_eq!(loaded.scaler(), scaler.as_ref());
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6 * 3 * 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

const SAVER: &str = "TAPEGRAD_KILLED_SAVER_DIR";

/// The temporary files of target `run.ckpt` in `dir` (`.run.ckpt.tmp-{pid}-{n}`).
fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = (std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            n.strip_prefix(".run.ckpt.tmp-")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    names.sort();
    names
}

#[cfg(target_os = "linux")]
#[test]
fn a_save_killed_mid_write_leaves_a_temporary_file_that_the_next_save_removes() {
    if let Ok(dir) = std::env::var(SAVER) {
        // the child: save a 32 MB checkpoint over and over until killed
        let model = Linear::from_parts(tensor::zeros(&[2048, 4096]), None).unwrap();
        let big = Checkpoint::new(&model);
        loop {
            big.save(Path::new(&dir).join("run.ckpt")).unwrap();
        }
    }
    let dir = folder("killed");
    let path = dir.join("run.ckpt");
    // not ours to remove: another target's temporary file, and a file that only looks like one
    let others = [".other.ckpt.tmp-999999999-0", ".run.ckpt.tmp-notes"];
    for name in others {
        std::fs::write(dir.join(name), b"keep").unwrap();
    }
    let mut left = Vec::new();
    for _attempt in 0..20 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "a_save_killed_mid_write_leaves_a_temporary_file_that_the_next_save_removes",
                "--exact",
                "--test-threads=1",
            ])
            .env(SAVER, &dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let prefix = format!(".run.ckpt.tmp-{}-", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !temporaries(&dir).iter().any(|n| n.starts_with(&prefix)) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never started a save"
            );
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        child.kill().unwrap(); // SIGKILL: no destructor, no cleanup
        child.wait().unwrap();
        left = temporaries(&dir);
        left.retain(|n| n.starts_with(&prefix));
        if !left.is_empty() {
            break;
        }
    }
    assert_eq!(left.len(), 1, "no kill landed mid-write in 20 attempts");
    let partial = std::fs::metadata(dir.join(&left[0])).unwrap().len();
    assert!(partial < 32 << 20, "{partial} bytes");

    // the next save of the same path removes it, and only it
    let model = Linear::from_parts(tensor::ones(&[2, 3]), None).unwrap();
    Checkpoint::new(&model).save(&path).unwrap();
    assert_eq!(temporaries(&dir), Vec::<String>::new());
    for name in others {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), b"keep");
    }
    let mut back = Linear::from_parts(tensor::zeros(&[2, 3]), None).unwrap();
    checkpoint::load(&mut back, &path).unwrap();
    assert_eq!(back.weight().value(), model.weight().value());
    std::fs::remove_dir_all(&dir).unwrap();
}
