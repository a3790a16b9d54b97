//! A catalogue of bad inputs across the public API — files, shapes, hyperparameters,
//! non-finite data, checkpoints of the wrong model. Each case must return an `Error` (never
//! panic) whose message names what was expected and what was found, and must leave every
//! file on disk as it was (same bytes, same modification time, no new files).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tapegrad::checkpoint::{Checkpoint, export_safetensors, import_safetensors};
use tapegrad::data::{read_cifar10, read_idx_dataset, read_idx_images, read_idx_labels};
use tapegrad::ndarray::{Array2, array};
use tapegrad::{
    Adam, Augment, Batch, BatchTargets, ChaCha8Rng, Dataset, Decay, DecayUnit, Dropout, FitConfig,
    Identity, Init, Linear, Loss, Mode, Module, Monitor, OnDivergence, Optimizer, OptimizerState,
    Param, Predictor, Progress, RandomHorizontalFlip, Relu, Result, Role, Scaler, Schedule,
    SeedableRng, Sequential, Sgd, Targets, Tensor, TrainStep, Var, checkpoint, evaluate, fit, lsuv,
    tensor,
};

/// The bytes and modification time of every file under a folder.
type Disk = BTreeMap<PathBuf, (Vec<u8>, SystemTime)>;

fn disk(dir: &Path) -> Disk {
    let mut files = Disk::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
                files.insert(path, (Vec::new(), SystemTime::UNIX_EPOCH));
            } else {
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                files.insert(path.clone(), (std::fs::read(&path).unwrap(), modified));
            }
        }
    }
    files
}

/// The fixture folder with one file of each kind, good and bad.
struct Fixture {
    dir: PathBuf,
    cases: usize,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs one bad input: it must fail with a message containing every fragment of
    /// `expected` (each names what was expected or what was found), and leave the disk as
    /// it was.
    fn case<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        expected: &[&str],
        run: impl FnOnce() -> Result<T>,
    ) {
        let before = disk(&self.dir);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        let result = outcome.unwrap_or_else(|_| panic!("{what}: panicked instead of an Err"));
        let message = match result {
            Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
            Err(e) => e.to_string(),
        };
        for fragment in expected {
            assert!(
                message.contains(fragment),
                "{what}: the message should contain {fragment:?}, got: {message}"
            );
        }
        assert!(
            disk(&self.dir) == before,
            "{what}: the files on disk changed"
        );
        self.cases += 1;
    }
}

/// 4 → 8 → ReLU → dropout → 3.
fn model(seed: u64, hidden: usize) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new(vec![
        Box::new(Linear::new(4, hidden, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Dropout::new(0.2, &mut rng).unwrap()),
        Box::new(Linear::new(hidden, 3, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap()
}

/// The same parameters as [`model`], without the dropout layer's generator.
fn model_without_dropout(seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new(vec![
        Box::new(Linear::new(4, 8, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Identity),
        Box::new(Linear::new(8, 3, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap()
}

fn params(m: &dyn Module) -> Vec<Tensor> {
    let mut v = Vec::new();
    m.visit_params(&mut |_, p| v.push(p.value().to_owned()));
    v
}

fn data() -> Dataset {
    let x = Array2::from_shape_fn((12, 4), |(i, j)| (i * 4 + j) as f32 / 10.0);
    Dataset::from_floats(x, (0..12).map(|i| i % 3).collect()).unwrap()
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("tapegrad-bad-inputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let f = Fixture { dir, cases: 0 };
    let m = model(0, 8);
    let good = Checkpoint::new(&m).to_bytes().unwrap();
    std::fs::write(f.path("good.ckpt"), &good).unwrap();
    let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
    let config = FitConfig {
        epochs: 1,
        batch_size: 4,
        ..FitConfig::default()
    };
    let mut trained = model(0, 8);
    fit(&mut trained, &mut sgd, &data(), None, &config, &mut |_| {}).unwrap();
    Checkpoint::new(&trained)
        .with_training(&sgd, 1)
        .unwrap()
        .save(f.path("training.ckpt"))
        .unwrap();
    checkpoint::save(&model(0, 16), f.path("wide.ckpt")).unwrap();
    let no_bias = Sequential::new(vec![
        Box::new(Linear::from_parts(tensor::zeros(&[8, 4]), None).unwrap()),
        Box::new(Relu),
        Box::new(Dropout::new(0.2, &mut ChaCha8Rng::seed_from_u64(0)).unwrap()),
        Box::new(Linear::new(8, 3, Init::default(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap()),
    ])
    .unwrap();
    checkpoint::save(&no_bias, f.path("no-bias.ckpt")).unwrap();
    let mut nan = model(0, 8);
    nan.visit_params_mut(&mut |name, p| {
        if name == "3.weight" {
            p.value_mut()[[1, 2]] = f32::NAN;
        }
    });
    checkpoint::save(&nan, f.path("nan.ckpt")).unwrap();
    std::fs::write(f.path("empty.ckpt"), b"").unwrap();
    std::fs::write(
        f.path("png.ckpt"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01",
    )
    .unwrap();
    let mut newer = good.clone();
    newer[8] = 6;
    std::fs::write(f.path("newer.ckpt"), newer).unwrap();
    std::fs::write(f.path("truncated.ckpt"), &good[..good.len() - 5]).unwrap();
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    std::fs::write(f.path("trailing.ckpt"), trailing).unwrap();
    let mut flipped = good.clone();
    flipped[40] ^= 0x04;
    std::fs::write(f.path("flipped.ckpt"), flipped).unwrap();
    export_safetensors(&m, f.path("good.safetensors")).unwrap();
    export_safetensors(&model(0, 16), f.path("wide.safetensors")).unwrap();
    std::fs::write(
        f.path("garbage.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json",
    )
    .unwrap();

    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4];
    images.extend(0..48u8);
    std::fs::write(f.path("images.idx"), &images).unwrap();
    std::fs::write(f.path("images-short.idx"), &images[..images.len() - 1]).unwrap();
    std::fs::write(f.path("header.idx"), &images[..6]).unwrap();
    std::fs::write(
        f.path("labels.idx"),
        [0, 0, 8, 1, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8],
    )
    .unwrap();
    std::fs::write(f.path("labels-two.idx"), [0, 0, 8, 1, 0, 0, 0, 2, 1, 2]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&images).unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() / 2);
    std::fs::write(f.path("broken.idx.gz"), gz).unwrap();
    let mut record = vec![1u8];
    record.extend(std::iter::repeat_n(7u8, 3072));
    std::fs::write(f.path("short.cifar"), &record[..3000]).unwrap();
    let mut bad_label = record.clone();
    bad_label[0] = 10;
    std::fs::write(f.path("label.cifar"), [record, bad_label].concat()).unwrap();
    f
}

#[test]
fn every_bad_input_is_an_error_naming_expected_and_found_and_changes_no_file() {
    let mut f = fixture();
    let base = f.dir.clone();
    let p = |name: &str| base.join(name);
    let (good, training, wide, no_bias, nan) = (
        p("good.ckpt"),
        p("training.ckpt"),
        p("wide.ckpt"),
        p("no-bias.ckpt"),
        p("nan.ckpt"),
    );
    let (empty, png, newer, truncated, trailing, flipped) = (
        p("empty.ckpt"),
        p("png.ckpt"),
        p("newer.ckpt"),
        p("truncated.ckpt"),
        p("trailing.ckpt"),
        p("flipped.ckpt"),
    );
    let (st_good, st_wide, st_garbage) = (
        p("good.safetensors"),
        p("wide.safetensors"),
        p("garbage.safetensors"),
    );
    let (images, images_short, header, labels, labels_two, broken_gz) = (
        p("images.idx"),
        p("images-short.idx"),
        p("header.idx"),
        p("labels.idx"),
        p("labels-two.idx"),
        p("broken.idx.gz"),
    );
    let (short_cifar, label_cifar, missing, sub) = (
        p("short.cifar"),
        p("label.cifar"),
        p("missing.ckpt"),
        p("sub"),
    );

    // --- checkpoint files ---
    f.case(
        "missing checkpoint",
        &["missing.ckpt", "No such file"],
        || Checkpoint::load(&missing),
    );
    f.case(
        "empty checkpoint",
        &["empty.ckpt", "expected at least 24 bytes, found 0"],
        || Checkpoint::load(&empty),
    );
    f.case(
        "a PNG, not a checkpoint",
        &[
            "png.ckpt",
            "wrong magic: expected b\"TGRADCKP\"",
            "found b\"\\x89PNG\\r\\n\\x1a\\n\"",
        ],
        || Checkpoint::load(&png),
    );
    f.case(
        "newer format version",
        &["newer.ckpt", "format version 6", "expected at most 5"],
        || Checkpoint::load(&newer),
    );
    f.case(
        "truncated payload",
        &["truncated.ckpt", "truncated payload: expected", "found"],
        || Checkpoint::load(&truncated),
    );
    f.case(
        "trailing bytes",
        &[
            "trailing.ckpt",
            "trailing bytes after the payload: expected",
            "found",
        ],
        || Checkpoint::load(&trailing),
    );
    f.case(
        "a flipped bit",
        &[
            "flipped.ckpt",
            "checksum mismatch: expected CRC-32",
            "found",
        ],
        || Checkpoint::load(&flipped),
    );
    let mut target = model(1, 8);
    let untouched = params(&target);
    f.case(
        "a parameter of another shape",
        &[
            "wide.ckpt",
            "parameter \"0.weight\" has shape [16, 4] in file, [8, 4] in model",
        ],
        || checkpoint::load(&mut target, &wide),
    );
    f.case(
        "a parameter missing from the file",
        &[
            "no-bias.ckpt",
            "parameter \"0.bias\" (shape [8]) is in the model but missing from the file",
        ],
        || checkpoint::load(&mut target, &no_bias),
    );
    let mut no_bias_model = Sequential::new(vec![
        Box::new(Linear::from_parts(tensor::zeros(&[8, 4]), None).unwrap()),
        Box::new(Relu),
        Box::new(Dropout::new(0.2, &mut ChaCha8Rng::seed_from_u64(0)).unwrap()),
        Box::new(Linear::from_parts(tensor::zeros(&[3, 8]), Some(tensor::zeros(&[3]))).unwrap()),
    ])
    .unwrap();
    f.case(
        "an extra parameter in the file",
        &[
            "good.ckpt",
            "parameter \"0.bias\" (shape [8]) is in the file but not in the model",
        ],
        || checkpoint::load(&mut no_bias_model, &good),
    );
    f.case(
        "a model without the dropout generator",
        &[
            "expected the model's random generators []",
            "found [\"2.rng\"]",
        ],
        || checkpoint::load(&mut model_without_dropout(0), &good),
    );
    f.case(
        "a NaN where the caller rejects non-finite values",
        &[
            "nan.ckpt",
            "parameter \"3.weight\" element 10: expected a finite value, found NaN",
        ],
        || Checkpoint::load(&nan)?.ensure_finite(),
    );
    f.case(
        "resuming from a model-only checkpoint",
        &[
            "expected training state in",
            "good.ckpt",
            "found a checkpoint of the model only",
        ],
        || Checkpoint::load(&good)?.resume(&mut target, &mut Sgd::new(0.1)?),
    );
    f.case(
        "resuming SGD's state into Adam",
        &["expected the state of \"adam\", found \"sgd\""],
        || Checkpoint::load(&training)?.resume(&mut target, &mut Adam::new(0.1)?),
    );
    assert_eq!(
        params(&target),
        untouched,
        "a refused load changed the model"
    );
    f.case(
        "saving into a missing folder",
        &["missing-folder", "No such file"],
        || checkpoint::save(&target, p("missing-folder/x.ckpt")),
    );
    f.case("saving over a folder", &["sub", "directory"], || {
        checkpoint::save(&target, &sub)
    });

    // --- safetensors ---
    f.case(
        "missing safetensors",
        &["missing.ckpt", "No such file"],
        || import_safetensors(&mut target, &missing),
    );
    f.case(
        "garbage safetensors",
        &[
            "garbage.safetensors",
            "safetensors: expected a valid file, found",
        ],
        || import_safetensors(&mut target, &st_garbage),
    );
    f.case(
        "a checkpoint given as safetensors",
        &["good.ckpt", "safetensors: expected a valid file, found"],
        || import_safetensors(&mut target, &good),
    );
    f.case(
        "safetensors of another model",
        &[
            "wide.safetensors",
            "parameter \"0.weight\" has shape [16, 4] in file, [8, 4] in model",
        ],
        || import_safetensors(&mut target, &st_wide),
    );
    f.case(
        "safetensors into a model without biases",
        &["parameter \"0.bias\" (shape [8]) is in the file but not in the model"],
        || import_safetensors(&mut no_bias_model, &st_good),
    );
    f.case(
        "exporting into a missing folder",
        &["missing-folder", "No such file"],
        || export_safetensors(&target, p("missing-folder/x.safetensors")),
    );
    assert_eq!(
        params(&target),
        untouched,
        "a refused import changed the model"
    );

    // --- IDX and CIFAR-10 ---
    f.case(
        "missing IDX file",
        &["missing.ckpt", "No such file"],
        || read_idx_images(&missing),
    );
    f.case(
        "labels read as images",
        &[
            "labels.idx",
            "wrong magic number: expected 0x00000803, found 0x00000801",
        ],
        || read_idx_images(&labels),
    );
    f.case(
        "images read as labels",
        &["images.idx", "expected 0x00000801, found 0x00000803"],
        || read_idx_labels(&images),
    );
    f.case(
        "truncated IDX header",
        &[
            "header.idx",
            "truncated header: expected at least 16 bytes, found 6",
        ],
        || read_idx_images(&header),
    );
    f.case(
        "IDX payload one byte short",
        &["images-short.idx", "needs 48 bytes, found 47"],
        || read_idx_images(&images_short),
    );
    f.case(
        "fewer labels than images",
        &[
            "labels-two.idx",
            "expected 3 labels, one per image",
            "found 2",
        ],
        || read_idx_dataset(&images, &labels_two),
    );
    f.case("a broken gzip stream", &["broken.idx.gz", "gzip:"], || {
        read_idx_images(&broken_gz)
    });
    f.case(
        "CIFAR file not a whole number of records",
        &[
            "short.cifar",
            "expected a multiple of 3073 bytes",
            "found 3000",
        ],
        || read_cifar10(&[&short_cifar]),
    );
    f.case(
        "CIFAR label out of range",
        &["label.cifar", "record 1 has label 10, expected 0 to 9"],
        || read_cifar10(&[&label_cifar]),
    );

    // --- shapes ---
    f.case(
        "tensor of the wrong length",
        &["expected 6 elements for shape [2, 3], found 5 elements"],
        || tensor::from_vec(vec![0.0; 5], &[2, 3]),
    );
    f.case(
        "bias of the wrong shape",
        &["expected bias shape [3], found [2]"],
        || Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::ones(&[2]))),
    );
    f.case(
        "layers whose widths do not chain",
        &["expected layer 2 input width 8 (output of layer 0), found 4"],
        || {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            Sequential::new(vec![
                Box::new(Linear::new(2, 8, Init::default(), &mut rng)?),
                Box::new(Relu),
                Box::new(Linear::new(4, 1, Init::default(), &mut rng)?),
            ])
        },
    );
    f.case(
        "labels and samples of different counts",
        &["expected one target per sample (3 samples), found 2 targets"],
        || Dataset::from_floats(Array2::zeros((3, 2)), vec![0, 1]),
    );
    f.case(
        "a scaler fitted on other features",
        &["expected a scaler for 4 features, found one for 2"],
        || {
            let two = Dataset::from_floats(array![[1.0, 2.0], [3.0, 4.0]], vec![0, 1])?;
            data().set_scaler(Scaler::standardize(&two)?)
        },
    );
    f.case(
        "a scaler applied to the wrong width",
        &["expected shape [samples, 4], found shape [2, 3]"],
        || Scaler::standardize(&data())?.transform(&mut tensor::zeros(&[2, 3])),
    );

    // --- hyperparameters ---
    f.case("dropout p = 1.5", &["p must be in [0, 1], got 1.5"], || {
        Dropout::new(1.5, &mut ChaCha8Rng::seed_from_u64(0))
    });
    f.case(
        "learning rate 0",
        &["learning rate must be finite and > 0, got 0"],
        || Sgd::new(0.0),
    );
    f.case("momentum 1", &["momentum must be in [0, 1), got 1"], || {
        Sgd::new(0.1)?.momentum(1.0)
    });
    f.case("Adam beta 1", &["betas must be in [0, 1), got 1"], || {
        Adam::new(0.1)?.betas(0.9, 1.0)
    });
    f.case(
        "decay gamma 1.5",
        &["gamma must be in (0, 1], got 1.5"],
        || Schedule::new(Decay::Exponential { gamma: 1.5 }, DecayUnit::Step),
    );
    let run = |config: FitConfig, data: &Dataset| {
        fit(
            &mut model(0, 8),
            &mut Sgd::new(0.1)?,
            data,
            None,
            &config,
            &mut |_| {},
        )
    };
    f.case(
        "batch size 0",
        &["batch_size must be at least 1, got 0"],
        || {
            run(
                FitConfig {
                    batch_size: 0,
                    ..FitConfig::default()
                },
                &data(),
            )
        },
    );
    f.case(
        "drop_last with fewer samples than one batch",
        &["drop_last leaves no batch", "batch_size = 1000", "found 12"],
        || {
            run(
                FitConfig {
                    batch_size: 1000,
                    drop_last: true,
                    ..FitConfig::default()
                },
                &data(),
            )
        },
    );
    f.case(
        "resuming past the last epoch",
        &["start_epoch must be below epochs, got start_epoch 5 with epochs 5"],
        || {
            run(
                FitConfig {
                    epochs: 5,
                    start_epoch: 5,
                    ..FitConfig::default()
                },
                &data(),
            )
        },
    );
    f.case(
        "num_classes below a label",
        &["num_classes must exceed every label, got 2 with label 2"],
        || data().with_num_classes(2),
    );

    // --- non-finite data ---
    f.case(
        "a NaN feature in training data",
        &["training set: sample 5 feature 1 is NaN, expected finite values"],
        || {
            let mut x = Array2::from_shape_fn((12, 4), |(i, j)| (i + j) as f32);
            x[[5, 1]] = f32::NAN;
            let nan_data = Dataset::from_floats(x, (0..12).map(|i| i % 3).collect())?;
            run(
                FitConfig {
                    epochs: 1,
                    batch_size: 12,
                    ..FitConfig::default()
                },
                &nan_data,
            )
        },
    );

    assert!(f.cases >= 30, "only {} cases", f.cases);
    std::fs::remove_dir_all(&f.dir).unwrap();
}

/// Data that does not fit the model, and training that cannot go on: `fit`, `evaluate` and
/// `TrainStep` return an `Error` naming the data set, the sample and the layer, before the
/// first step, and a refused step leaves the model bit for bit as it was.
#[test]
fn training_refuses_what_it_cannot_use() {
    let mut f = Fixture {
        dir: std::env::temp_dir().join(format!("tapegrad-bad-training-{}", std::process::id())),
        cases: 0,
    };
    std::fs::create_dir_all(&f.dir).unwrap();
    let config = || FitConfig {
        epochs: 2,
        batch_size: 4,
        ..FitConfig::default()
    };
    let fit_on = |train: &Dataset, valid: Option<&Dataset>| {
        fit(
            &mut model(0, 8),
            &mut Sgd::new(0.1)?,
            train,
            valid,
            &config(),
            &mut |_| {},
        )
    };
    let floats = |rows: usize, cols: usize, labels: Vec<usize>| {
        Dataset::from_floats(Array2::from_elem((rows, cols), 0.5), labels).unwrap()
    };
    let empty = floats(0, 4, vec![]);
    f.case(
        "fit on an empty training set",
        &["fit: the training set is empty, expected at least one sample"],
        || fit_on(&empty, None),
    );
    f.case(
        "evaluate on an empty data set",
        &["evaluate: the data set is empty"],
        || evaluate(&model(0, 8), &empty, 10),
    );
    f.case(
        "samples 5 wide into a 4-input model",
        &[
            "fit: expected training set samples of width 4 (the input width of the model's first layer)",
            "found width 5",
        ],
        || fit_on(&floats(6, 5, vec![0; 6]), None),
    );
    // an IDX file of shape [5, 0, 0]: five images of no pixels
    f.case(
        "images of no pixels",
        &["dataset: expected at least one value per sample, found 5 samples of shape [0]"],
        || Dataset::from_bytes(Array2::zeros((5, 0)), vec![0; 5]),
    );
    let mut labels = vec![0, 1, 2, 0, 1, 2, 0, 200];
    let label_200 = floats(8, 4, labels.clone());
    f.case(
        "label 200 for a 3-class model in fit",
        &["fit: training set sample 7 has label 200, expected a label below 3 (the model's last layer has 3 outputs)"],
        || fit_on(&label_200, None),
    );
    f.case(
        "label 200 in the validation set",
        &["fit: validation set sample 7 has label 200"],
        || fit_on(&data(), Some(&label_200)),
    );
    f.case(
        "label 200 in evaluate",
        &["evaluate: data set sample 7 has label 200, expected a label below 3"],
        || evaluate(&model(0, 8), &label_200, 4),
    );
    labels[7] = 2;
    let mut x = Array2::from_elem((8, 4), 0.5);
    x[[3, 2]] = f32::INFINITY;
    let infinite = Dataset::from_floats(x, labels).unwrap();
    f.case(
        "an infinite feature",
        &["fit: training set: sample 3 feature 2 is inf, expected finite values"],
        || fit_on(&infinite, None),
    );
    f.case(
        "an empty batch in TrainStep",
        &["train step: the batch is empty, expected at least one sample"],
        || {
            let x = Array2::<f32>::zeros((0, 4)).into_dyn();
            let batch = Batch {
                x: x.view(),
                targets: BatchTargets::Classes(&[]),
            };
            TrainStep::new().run(
                &mut model(0, 8),
                &mut Sgd::new(0.1)?,
                batch,
                &Loss::CrossEntropy,
            )
        },
    );
    let predictor = Predictor::new(model(0, 8), None).unwrap();
    f.case(
        "predict on samples 5 wide",
        &["predict: expected samples of width 4 (the input width of the model's first layer), found a batch of shape [3, 5]"],
        || predictor.predict(&Array2::<u8>::zeros((3, 5))),
    );
    f.case(
        "predict on no samples",
        &["predict: expected at least one sample, found none"],
        || predictor.predict(&Array2::<f32>::zeros((0, 4))),
    );
    f.case(
        "a predictor with a scaler of another width",
        &["predictor: expected a scaler for the model's 4 input features, found one for 2"],
        || Predictor::new(model(0, 8), Some(Scaler::affine(2, 1.0, 0.0)?)),
    );
    f.case(
        "more threads than CPUs",
        &[
            "set_num_threads: expected at most the",
            "CPUs this process may use, got 1000",
        ],
        || tapegrad::set_num_threads(1000),
    );

    // an update that would overflow: refused, the model untouched
    let mut m = model_without_dropout(0);
    let before = params(&m);
    f.case(
        "learning rate 1e35",
        &[
            "sgd: step 0 refused: the update of",
            "beyond what f32 holds",
            "the step changed nothing",
        ],
        || {
            fit(
                &mut m,
                &mut Sgd::new(1e35)?,
                &data(),
                None,
                &config(),
                &mut |_| {},
            )
        },
    );
    assert_eq!(params(&m), before);

    // parameters already driven too far: every step's loss overflows, so halving the rate
    // gives up (after ten tries, or at the end of an epoch without an accepted step)
    // instead of returning Ok with a ruined model
    for (batch_size, halvings, words) in [
        (
            1,
            10,
            "gave up after halving the base learning rate 10 times without an accepted step",
        ),
        (
            4,
            3,
            "every step of epoch 1 was refused, the last because the loss is NaN",
        ),
    ] {
        let mut ruined = model_without_dropout(0);
        ruined.visit_params_mut(&mut |_, p| p.value_mut().fill(1e38));
        let before = params(&ruined);
        let mut events = 0;
        f.case(
            "halving the rate of a ruined model",
            &[words, "the largest parameter magnitude is 1.000e38"],
            || {
                fit(
                    &mut ruined,
                    &mut Sgd::new(0.1)?,
                    &data(),
                    None,
                    &FitConfig {
                        on_divergence: OnDivergence::HalveLearningRate,
                        batch_size,
                        ..config()
                    },
                    &mut |p| events += usize::from(matches!(p, Progress::Event(_))),
                )
            },
        );
        assert_eq!(events, halvings);
        assert_eq!(params(&ruined), before);
    }
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[test]
fn targets_losses_shapes_and_augmentation_from_outside_are_checked() {
    let mut f = Fixture {
        dir: std::env::temp_dir().join(format!("tapegrad-bad-targets-{}", std::process::id())),
        cases: 0,
    };
    std::fs::create_dir_all(&f.dir).unwrap();
    let x = || Array2::<f32>::from_elem((3, 4), 0.5);
    f.case(
        "a multi-label target of 0.5",
        &["dataset: sample 2 label 1 is 0.5, expected 0 or 1"],
        || {
            Dataset::new(
                x(),
                Targets::MultiLabel(array![[0.0, 1.0], [1.0, 1.0], [0.0, 0.5]]),
            )
        },
    );
    f.case(
        "an infinite value target",
        &["dataset: sample 0 target 1 is inf, expected finite values"],
        || {
            Dataset::new(
                x(),
                Targets::Values(array![[0.0, f32::INFINITY], [1.0, 1.0], [0.0, 0.0]].into_dyn()),
            )
        },
    );
    f.case(
        "value targets without a sample axis",
        &[
            "expected value targets of shape [samples, ...]",
            "found shape [3]",
        ],
        || Dataset::new(x(), Targets::Values(array![1.0, 2.0, 3.0].into_dyn())),
    );
    f.case(
        "a label above num_classes",
        &["dataset: sample 0 has label 7, expected a label below num_classes 3"],
        || {
            Dataset::new(
                x(),
                Targets::Classes {
                    labels: vec![7, 0, 1],
                    num_classes: 3,
                },
            )
        },
    );
    f.case(
        "two value targets for three samples",
        &["expected one target per sample (3 samples), found 2 targets"],
        || {
            Dataset::new(
                x(),
                Targets::Values(Array2::<f32>::zeros((2, 1)).into_dyn()),
            )
        },
    );
    let regression = Dataset::new(
        x(),
        Targets::Values(Array2::<f32>::zeros((3, 3)).into_dyn()),
    )
    .unwrap();
    f.case(
        "num_classes on value targets",
        &["num_classes needs class targets, got other targets"],
        || regression.clone().with_num_classes(3),
    );
    f.case(
        "a sample shape of another size",
        &[
            "expected a shape of as many values as the samples hold, 4 (samples of shape [4])",
            "found shape [2, 3]",
        ],
        || regression.clone().with_sample_shape(&[2, 3]),
    );
    let fit_with = |data: &Dataset, config: FitConfig| {
        let mut model = Linear::new(4, 3, Init::default(), &mut ChaCha8Rng::seed_from_u64(0))?;
        fit(
            &mut model,
            &mut Sgd::new(0.1)?,
            data,
            Some(data),
            &config,
            &mut |_| {},
        )
    };
    f.case(
        "cross-entropy on float targets",
        &[
            "cross-entropy cannot compare outputs with float values",
            "use Loss::Mse",
        ],
        || {
            fit_with(
                &regression,
                FitConfig {
                    loss: Some(Loss::CrossEntropy),
                    ..FitConfig::default()
                },
            )
        },
    );
    f.case(
        "mse on class labels",
        &[
            "mse cannot compare outputs with class labels",
            "use Loss::CrossEntropy",
        ],
        || {
            fit_with(
                &data().subset(&[0, 1, 2]).unwrap(),
                FitConfig {
                    loss: Some(Loss::Mse),
                    ..FitConfig::default()
                },
            )
        },
    );
    f.case(
        "a Huber delta of 0",
        &["huber delta must be finite and > 0, got 0"],
        || {
            fit_with(
                &regression,
                FitConfig {
                    loss: Some(Loss::Huber { delta: 0.0 }),
                    ..FitConfig::default()
                },
            )
        },
    );
    f.case(
        "early stopping on accuracy of float targets",
        &["early stopping watches the validation accuracy, which the validation targets do not have"],
        || fit_with(&regression, FitConfig { patience: Some(1), monitor: Monitor::ValidAccuracy, ..FitConfig::default() }),
    );
    let two_values = Dataset::new(
        x(),
        Targets::Values(Array2::<f32>::zeros((3, 2)).into_dyn()),
    )
    .unwrap();
    f.case(
        "value targets of another width than the model's output",
        &[
            "expected model output of shape [1, 2], or another shape of as many values, for one sample",
            "found output shape [1, 3]",
        ],
        || fit_with(&two_values, FitConfig::default()),
    );
    f.case(
        "augmentation of flat samples",
        &["augment: expected image samples [C, H, W], found samples of shape [4]"],
        || {
            let flip = Augment::new().then(RandomHorizontalFlip::new(0.5)?);
            fit_with(
                &regression,
                FitConfig {
                    augment: Some(flip),
                    ..FitConfig::default()
                },
            )
        },
    );
    f.case(
        "a flip probability of 1.5",
        &["p must be in [0, 1], got 1.5"],
        || RandomHorizontalFlip::new(1.5),
    );
    f.case(
        "per-channel standardization of flat samples",
        &[
            "expected samples with a channel axis",
            "found samples of shape [4]",
        ],
        || Scaler::standardize_per_channel(&regression),
    );
    f.case(
        "a loss that does not fit a TrainStep batch",
        &["cross-entropy cannot compare outputs with float values"],
        || {
            let mut batches = regression.batches(3)?;
            let batch = batches.next().unwrap();
            let mut model = Linear::new(4, 3, Init::default(), &mut ChaCha8Rng::seed_from_u64(0))?;
            TrainStep::new().run(&mut model, &mut Sgd::new(0.1)?, batch, &Loss::CrossEntropy)
        },
    );
    assert_eq!(f.cases, 16);
    std::fs::remove_dir_all(&f.dir).unwrap();
}

/// A safetensors file of F32 tensors, its JSON header written by hand (so that a name can
/// appear twice).
fn safetensors_file(tensors: &[(&str, &[f32])]) -> Vec<u8> {
    let (mut entries, mut data) = (Vec::new(), Vec::new());
    for (name, values) in tensors {
        let start = data.len();
        values.iter().for_each(|v| data.extend(v.to_le_bytes()));
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{start},{}]}}",
            values.len(),
            data.len()
        ));
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// An optimizer whose saved state is whatever the test says, to write checkpoints with
/// counters no real run reaches.
struct Stated(OptimizerState);

impl Optimizer for Stated {
    fn step(&mut self, _: &mut dyn Module, _: &tapegrad::Gradients) -> Result<()> {
        Ok(())
    }
    fn lr(&self) -> f32 {
        self.0.base_lr
    }
    fn base_lr(&self) -> f32 {
        self.0.base_lr
    }
    fn set_base_lr(&mut self, lr: f32) -> Result<()> {
        self.0.base_lr = lr;
        Ok(())
    }
    fn end_epoch(&mut self) {}
    fn steps(&self) -> u64 {
        self.0.steps
    }
    fn plateau(&self) -> Option<tapegrad::PlateauState> {
        self.0.plateau
    }
    fn set_plateau(&mut self, plateau: Option<tapegrad::PlateauState>) {
        self.0.plateau = plateau;
    }
    fn state(&self) -> Result<OptimizerState> {
        Ok(self.0.clone())
    }
    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        self.0 = state;
        Ok(())
    }
}

/// State read from outside — a scaler or optimizer counters in a checkpoint, safetensors
/// values and names — is checked before it is used.
#[test]
fn state_from_outside_is_validated() {
    let mut f = Fixture {
        dir: std::env::temp_dir().join(format!("tapegrad-bad-state-{}", std::process::id())),
        cases: 0,
    };
    std::fs::create_dir_all(&f.dir).unwrap();

    // a scaler of [NaN, inf] factors in a checkpoint with a valid checksum: save an affine
    // scaler of 0.5s, then overwrite two of its factors and the checksum
    let mut bytes = Checkpoint::new(&model(0, 8))
        .with_scaler(Scaler::affine(4, 0.5, 0.25).unwrap())
        .to_bytes()
        .unwrap();
    let half = 0.5f32.to_le_bytes().repeat(4);
    let at = (bytes.windows(16).position(|w| w == half.as_slice())).expect("the scales");
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    bytes[at + 4..at + 8].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let crc = crc32fast::hash(&bytes[24..]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    f.case(
        "a scaler of NaN in a checkpoint",
        &[
            "<memory>",
            "scaler feature 0: expected a finite, nonzero scale, found NaN",
        ],
        || Checkpoint::from_bytes(&bytes),
    );

    let duplicate = f.path("duplicate.safetensors");
    let (w, b): (&[f32], &[f32]) = (&[0.5; 32], &[0.0; 8]);
    std::fs::write(
        &duplicate,
        safetensors_file(&[("0.weight", w), ("0.weight", w), ("0.bias", b)]),
    )
    .unwrap();
    let nan = f.path("nan.safetensors");
    let mut with_nan = [0.5; 32];
    with_nan[7] = f32::NAN;
    std::fs::write(
        &nan,
        safetensors_file(&[("0.weight", &with_nan), ("0.bias", b)]),
    )
    .unwrap();
    let mut target = Sequential::new(vec![Box::new(
        Linear::new(4, 8, Init::default(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap(),
    )])
    .unwrap();
    let before = params(&target);
    f.case(
        "a name twice in safetensors",
        &["duplicate.safetensors", "found \"0.weight\" twice"],
        || import_safetensors(&mut target, &duplicate),
    );
    f.case(
        "a NaN in safetensors",
        &[
            "nan.safetensors",
            "tensor \"0.weight\" element 7: expected a finite value, found NaN",
        ],
        || import_safetensors(&mut target, &nan),
    );
    assert_eq!(params(&target), before);

    // Adam's step counter in a checkpoint: u32::MAX resumes and steps finitely, 2^60 is refused
    let mut m = model_without_dropout(0);
    let mut adam = Adam::new(0.01).unwrap();
    fit(
        &mut m,
        &mut adam,
        &data(),
        None,
        &FitConfig {
            epochs: 1,
            ..FitConfig::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let saved = |steps: u64| {
        let state = OptimizerState {
            steps,
            ..adam.state().unwrap()
        };
        let stated = Stated(state);
        Checkpoint::new(&m)
            .with_training(&stated, 1)
            .unwrap()
            .to_bytes()
            .unwrap()
    };
    let mut resumed = (model_without_dropout(1), Adam::new(0.01).unwrap());
    Checkpoint::from_bytes(&saved(u64::from(u32::MAX)))
        .unwrap()
        .resume(&mut resumed.0, &mut resumed.1)
        .unwrap();
    let config = FitConfig {
        epochs: 2,
        start_epoch: 1,
        ..FitConfig::default()
    };
    fit(
        &mut resumed.0,
        &mut resumed.1,
        &data(),
        None,
        &config,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        params(&resumed.0)
            .iter()
            .all(|t| t.iter().all(|v| v.is_finite()))
    );
    let huge = saved(1 << 60);
    f.case(
        "an Adam step counter of 2^60",
        &["adam: optimizer state: expected at most 9007199254740992 steps, found 1152921504606846976"],
        || Checkpoint::from_bytes(&huge)?.resume(&mut resumed.0, &mut resumed.1),
    );
    std::fs::remove_dir_all(&f.dir).unwrap();
}

/// `y = x + s` with a learned shift `s` of a role of its own, which LSUV leaves alone.
struct Shift {
    shift: Param,
}

impl Module for Shift {
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        x + x.tape().param(&self.shift)
    }
    tapegrad::walk!(shift);
}

/// LSUV refuses, with an `Error` naming the layer and the variance, every layer whose output
/// variance is NaN or zero, where it used to return `Ok` with the layer untouched (a NaN
/// compares false with the tolerance; a zero variance passed a tolerance above 1).
#[test]
fn lsuv_refuses_a_variance_that_is_not_finite_or_zero() {
    let mut f = Fixture {
        dir: std::env::temp_dir().join(format!("tapegrad-bad-lsuv-{}", std::process::id())),
        cases: 0,
    };
    std::fs::create_dir_all(&f.dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let batch = tensor::normal(&[16, 4], 0.0, 1.0, &mut rng).unwrap();
    let linear = |bias: f32| {
        let w = tensor::ones(&[3, 4]);
        let b = tensor::from_vec(vec![0.0, bias, 1.0], &[3]).unwrap();
        Sequential::new(vec![Box::new(Linear::from_parts(w, Some(b)).unwrap())]).unwrap()
    };
    let layer = "layer 0 (Linear(in_features=4, out_features=3, bias=True))";
    let mut nan_batch = batch.clone();
    nan_batch[[3, 1]] = f32::NAN;
    f.case(
        "a NaN in the batch",
        &["lsuv: the batch holds NaN at [3, 1]; it must be finite"],
        || lsuv(&mut linear(0.0), &nan_batch, 0.1, 10, &mut rng),
    );
    f.case(
        "a layer with a NaN bias",
        &[
            layer,
            "has output variance NaN on this batch (rescalings done: 0)",
        ],
        || lsuv(&mut linear(f32::NAN), &batch, 0.1, 10, &mut rng),
    );
    f.case(
        "a layer with an infinite bias",
        &[layer, "has output variance NaN"],
        || lsuv(&mut linear(f32::INFINITY), &batch, 0.1, 10, &mut rng),
    );
    let dead = || {
        let w = tensor::ones(&[3, 4]);
        Sequential::new(vec![Box::new(Linear::from_parts(w, None).unwrap())]).unwrap()
    };
    f.case(
        "a dead layer (all outputs 0) with a tolerance above 1",
        &[
            "lsuv: layer 0 (Linear(",
            "has output variance 0 on this batch",
        ],
        || lsuv(&mut dead(), &tensor::zeros(&[16, 4]), 1.5, 10, &mut rng),
    );
    // A NaN from a layer LSUV does not initialize reaches the next weight layer through
    // ReLU (relu(NaN) = NaN, as in PyTorch) and is refused there, naming that layer.
    let mut shifted = Sequential::new(vec![
        Box::new(Shift {
            shift: Param::with_role("shift", Role::Custom("shift"), tensor::full(&[4], f32::NAN)),
        }),
        Box::new(Relu),
        Box::new(Linear::new(4, 2, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap();
    f.case(
        "a NaN from an earlier layer through ReLU",
        &["lsuv: layer 2 (Linear(in_features=4, out_features=2, bias=True)) has output variance NaN"],
        || lsuv(&mut shifted, &batch, 0.1, 10, &mut rng),
    );
    // the same models with finite values are initialized
    assert!(lsuv(&mut linear(0.5), &batch, 0.1, 10, &mut rng).is_ok());
    shifted.visit_params_mut(&mut |_, p| {
        if p.role() == Role::Custom("shift") {
            p.value_mut().fill(0.5);
        }
    });
    let report = lsuv(&mut shifted, &batch, 0.1, 10, &mut rng).unwrap();
    assert_eq!(report.layers.len(), 1);
    assert_eq!(report.layers[0].index, 2);
    assert_eq!(f.cases, 5);
    std::fs::remove_dir_all(&f.dir).unwrap();
}

/// The catalogue's own check fails when it should: an error without the expected words,
/// or a case that changes a file, is caught.
#[test]
fn the_catalogue_check_can_fail() {
    let mut f = Fixture {
        dir: std::env::temp_dir().join(format!("tapegrad-bad-self-{}", std::process::id())),
        cases: 0,
    };
    std::fs::create_dir_all(&f.dir).unwrap();
    let dir = f.dir.clone();
    let wrong_words = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.case("x", &["not in the message"], || Sgd::new(0.0))
    }));
    assert!(wrong_words.is_err());
    let writes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.case("y", &["got 0"], || {
            std::fs::write(dir.join("new"), b"1").unwrap();
            Sgd::new(0.0)
        })
    }));
    assert!(writes.is_err());
    std::fs::remove_dir_all(&f.dir).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Runs a loader on a path in another thread and fails, instead of hanging, when it does not
/// return within 10 s (as opening a FIFO for reading would, waiting for a writer).
fn within_seconds<T: Send + 'static>(
    run: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(run()));
    receive
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the loader hung")
}

/// Loader inputs that used to hang, read without bound, or load silently wrong: paths that
/// are not files, gzip bombs, several gzip members, bytes after the gzip stream, images of
/// no pixels.
#[test]
fn loaders_refuse_non_files_bombs_and_concatenated_streams() {
    let mut f = Fixture {
        dir: std::env::temp_dir().join(format!("tapegrad-bad-loaders-{}", std::process::id())),
        cases: 0,
    };
    let _ = std::fs::remove_dir_all(&f.dir);
    std::fs::create_dir_all(f.dir.join("folder")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = f.dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let idx = |magic: u32, sizes: &[u32], payload: &[u8]| {
        let mut bytes = magic.to_be_bytes().to_vec();
        sizes.iter().for_each(|s| bytes.extend(s.to_be_bytes()));
        bytes.extend_from_slice(payload);
        bytes
    };
    let images = idx(0x803, &[3, 4, 4], &[9; 48]);
    let labels = idx(0x801, &[3], &[0, 1, 2]);
    let mut record = vec![4u8];
    record.extend(std::iter::repeat_n(5u8, 3072));

    // 1 image of 28 × 28 declared, 64 MiB inflated from a file of about 64 KiB
    let mut bomb = idx(0x803, &[1, 28, 28], &[]);
    bomb.resize(16 + (64 << 20), 0);
    let bomb = write("bomb-images.gz", &gzip(&bomb));
    // concatenated members: split inside the header, and after the whole file
    let split_header = write(
        "split-header.gz",
        &[gzip(&images[..10]), gzip(&images[10..])].concat(),
    );
    let split_labels = write(
        "split-labels.gz",
        &[gzip(&labels), gzip(&labels[..0])].concat(),
    );
    let split_cifar = write("split.cifar.gz", &[gzip(&record), gzip(&record)].concat());
    let junk_images = write(
        "junk-images.gz",
        &[gzip(&images), b"junk".to_vec()].concat(),
    );
    let junk_cifar = write("junk.cifar.gz", &[gzip(&record), vec![0xee; 100]].concat());
    // 10 records of zeros whose trailer says 1 record
    let mut cifar_bomb = gzip(&vec![0; 10 * 3073]);
    let n = cifar_bomb.len();
    cifar_bomb[n - 4..].copy_from_slice(&3073u32.to_le_bytes());
    let cifar_bomb = write("bomb.cifar.gz", &cifar_bomb);
    let no_pixels = write("no-pixels.idx", &idx(0x803, &[5, 0, 0], &[]));
    let folder = f.dir.join("folder");
    let fine_labels = write("labels.idx", &labels);
    let plain_images = write("images.idx", &images);

    f.case(
        "a directory as IDX images",
        &["folder", "idx: expected a regular file, found a directory"],
        || read_idx_images(&folder),
    );
    f.case(
        "a directory as CIFAR-10",
        &[
            "folder",
            "cifar10: expected a regular file, found a directory",
        ],
        || read_cifar10(&[&folder]),
    );
    f.case(
        "/dev/zero as IDX labels",
        &[
            "/dev/zero",
            "idx: expected a regular file, found a character device",
        ],
        || within_seconds(|| read_idx_labels("/dev/zero")),
    );
    f.case(
        "/dev/zero as CIFAR-10",
        &[
            "/dev/zero",
            "cifar10: expected a regular file, found a character device",
        ],
        || within_seconds(|| read_cifar10(&["/dev/zero"])),
    );
    f.case(
        "/dev/zero as a checkpoint",
        &[
            "/dev/zero",
            "checkpoint load: expected a regular file, found a character device",
        ],
        || within_seconds(|| Checkpoint::load("/dev/zero")),
    );
    f.case(
        "a directory as safetensors",
        &[
            "folder",
            "safetensors import: expected a regular file, found a directory",
        ],
        || import_safetensors(&mut model(0, 8), &folder),
    );
    f.case(
        "a gzip bomb behind a valid IDX header",
        &[
            "bomb-images.gz",
            // refused before inflating: the trailer's size is not the header's
            "idx: gzip: the trailer declares 67108880 uncompressed bytes (modulo 2^32), \
             expected the 800 of the header and the payload of sizes [1, 28, 28]",
        ],
        || read_idx_images(&bomb),
    );
    f.case(
        "a CIFAR-10 gzip stream past its trailer's size",
        &[
            "bomb.cifar.gz",
            "cifar10: the gzip stream inflates to more than the 3073 bytes its gzip trailer \
             declares",
        ],
        || read_cifar10(&[&cifar_bomb]),
    );
    f.case(
        "IDX images in two gzip members, the first shorter than the header",
        &[
            "split-header.gz",
            "idx: the file holds several gzip members (concatenated streams), expected one",
            "re-compress it as one stream",
        ],
        || read_idx_images(&split_header),
    );
    f.case(
        "IDX labels followed by a second gzip member",
        &[
            "split-labels.gz",
            "idx: gzip: the trailer declares 0 uncompressed bytes (modulo 2^32), expected the 11",
            "several gzip members, which must be re-compressed as one stream",
        ],
        || read_idx_dataset(&plain_images, &split_labels),
    );
    f.case(
        "CIFAR-10 records in two gzip members",
        &[
            "split.cifar.gz",
            "cifar10: the file holds several gzip members (concatenated streams), expected one",
        ],
        || read_cifar10(&[&split_cifar]),
    );
    f.case(
        "garbage after an IDX gzip stream",
        &[
            "junk-images.gz",
            // the last 4 bytes, read as the trailer, disagree with the header
            "idx: gzip: the trailer declares 1802401130 uncompressed bytes (modulo 2^32), \
             expected the 64",
            "bytes after the gzip stream",
        ],
        || read_idx_images(&junk_images),
    );
    f.case(
        "bytes after a CIFAR-10 gzip stream",
        &[
            "junk.cifar.gz",
            "cifar10: 100 trailing bytes after the gzip stream",
        ],
        || read_cifar10(&[&junk_cifar]),
    );
    f.case(
        "IDX images of 0 × 0 pixels",
        &[
            "no-pixels.idx",
            "idx: expected images of at least 1 pixel, found 0 × 0 (sizes [5, 0, 0])",
        ],
        || read_idx_dataset(&no_pixels, &fine_labels),
    );

    // a FIFO, outside the fixture folder (whose check reads every file in it)
    #[cfg(unix)]
    {
        let fifo_dir = f.dir.with_extension("fifo");
        let _ = std::fs::remove_dir_all(&fifo_dir);
        std::fs::create_dir_all(&fifo_dir).unwrap();
        let fifo = fifo_dir.join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo failed");
        let pipe = fifo.clone();
        f.case(
            "a FIFO as IDX images",
            &[
                "pipe",
                "idx: expected a regular file, found a named pipe (FIFO)",
            ],
            || within_seconds(move || read_idx_images(&pipe)),
        );
        f.case(
            "a FIFO as CIFAR-10",
            &[
                "pipe",
                "cifar10: expected a regular file, found a named pipe (FIFO)",
            ],
            || {
                within_seconds({
                    let pipe = fifo.clone();
                    move || read_cifar10(&[&pipe])
                })
            },
        );
        let pipe = fifo.clone();
        f.case(
            "a FIFO as a checkpoint",
            &[
                "pipe",
                "checkpoint load: expected a regular file, found a named pipe (FIFO)",
            ],
            || within_seconds(move || Checkpoint::load(&pipe)),
        );
        std::fs::remove_dir_all(&fifo_dir).unwrap();
    }
    assert!(f.cases >= 12, "only {} cases", f.cases);
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[test]
fn global_standardization_refuses_what_per_feature_standardization_refuses() {
    let dir =
        std::env::temp_dir().join(format!("tapegrad-bad-inputs-scaler-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = Fixture { dir, cases: 0 };
    f.case(
        "global standardization of an empty data set",
        &["scaler::standardize_global: cannot fit on an empty data set"],
        || Scaler::standardize_global(&Dataset::from_floats(Array2::zeros((0, 4)), vec![])?),
    );
    f.case(
        "a global scaler fitted on other features",
        &["expected a scaler for 4 features, found one for 2"],
        || {
            let two = Dataset::from_floats(array![[1.0, 2.0], [3.0, 4.0]], vec![0, 1])?;
            data().set_scaler(Scaler::standardize_global(&two)?)
        },
    );
    f.case(
        "a global scaler applied to the wrong width",
        &["scaler::transform: expected shape [samples, 4], found shape [2, 3]"],
        || Scaler::standardize_global(&data())?.transform(&mut tensor::zeros(&[2, 3])),
    );
    assert_eq!(f.cases, 3);
    std::fs::remove_dir_all(&f.dir).unwrap();
}
