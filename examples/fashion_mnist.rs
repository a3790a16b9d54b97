//! Fashion-MNIST with a multilayer perceptron: standardized inputs, optional augmentation
//! (random horizontal flips, crops, shifts), ReLU, dropout, He initialization, SGD with
//! momentum, cosine learning-rate decay and L2 regularization.
//!
//! Trains on 55,000 training images, watches 5,000 held-out validation images each epoch,
//! and evaluates **once** on the 10,000 test images at the end (the test set never steers
//! training). The settings were chosen by validation accuracy (below); `--refit` then trains
//! with them on all 60,000 training images, the usual last step once the validation split
//! has done its job. Expected with `--refit`: about 90.6% test accuracy after 50 epochs (the
//! Fashion-MNIST benchmark's best scikit-learn MLPClassifier reaches 87.7%), in about 80 s
//! on 2 cores.
//!
//! ```text
//! cargo run --release --example fashion_mnist [-- --epochs N --batch B --lr LR --l2 L
//!     --dropout P --hidden W1,W2,... --seed S --data DIR --quiet --save PATH --resume PATH
//!     --scaler global|feature|bytes
//!     --augment none|flip|crop|flip-crop|translate|flip-translate --shift K --no-test --refit]
//! ```
//!
//! `--scaler` picks the input preprocessing, fitted on the training part: `feature` (the
//! default: per pixel, σ floored), `global` (one mean and σ over all pixels, as
//! torchvision's `Normalize`) or `bytes` (`x / 255`). The default is the one with the best
//! validation accuracy (measured with 20 epochs, dropout 0.2 and no augmentation): with
//! seed 0 the three reach 90.08%, 90.00% and 89.48% on the 5,000
//! validation images (seed 1: 90.94% and 90.90% for the first two). `feature` and `global`
//! are within a few images of each other, and `global` has the lower validation loss (the
//! `Scaler` docs have the table).
//!
//! `--augment` changes the training images each epoch (never the validation or test
//! images), with draws that depend only on the seed and the epoch: `flip` mirrors half of
//! them left to right (a mirrored shirt is still a shirt, so the label holds), `crop` pads
//! each image with `--shift` black pixels on every side and crops a random 28 × 28 window
//! (torchvision's `RandomCrop(28, padding=K)`), `translate` shifts it by up to `--shift`
//! pixels along each axis (the same shifts as `crop`, drawn in another order), and
//! `flip-crop` / `flip-translate` flip, then shift. The transforms act on the pixel values
//! and the scaler runs after them, as torchvision's transforms run before `Normalize`, so
//! the fill is black.
//! `--no-test` skips the test set, for choosing settings by validation accuracy alone.
//!
//! The defaults were chosen by validation accuracy on the 5,000 held-out images, measured on
//! 2026-11-29 on a 2 vCPU AMD EPYC shared with another job, with
//! `cargo run --release --example fashion_mnist -- --quiet --no-test --augment A --shift K
//! --epochs E --dropout P --seed S` (numbers after the last epoch; the shared machine made
//! the times meaningless, so only the budget below was timed):
//!
//! ```text
//! augment      shift  epochs  dropout   seed 0   seed 1
//! none           -      20      0.2     90.08%   90.94%
//! flip           -      20      0.2     89.78%
//! crop           1      20      0.2     89.52%
//! crop           2      20      0.2     88.18%
//! flip-crop      1      20      0.2     88.90%
//! flip           -      20      0.1     90.16%   90.50%
//! none           -      40      0.2     90.44%   90.92%
//! flip           -      40      0.2     90.42%   90.86%
//! flip           -      40      0.1     90.60%   91.22%
//! ```
//!
//! Then, with the masks dropout draws today (per sample, so that the run uses both cores;
//! the rows above used the earlier masks) and `--augment flip --dropout 0.1`:
//!
//! ```text
//! epochs   L2 λ    seed 0   seed 1   validation loss (seed 0)
//!   40     5e-5    90.68%               0.323
//!   60     5e-5    90.86%   91.02%      0.365
//!   50     2e-4    90.80%   91.00%      0.284
//!   50     5e-4    90.48%               0.260
//! ```
//!
//! Shifts hurt this model: an MLP has one weight per pixel and no notion of neighbouring
//! pixels, so a shifted garment looks like a different input to it (the training loss
//! stays far above that of unshifted training after 20 epochs); they pay off in
//! convolutional networks. `translate` draws the same shifts as `crop` and was not run
//! separately. Flips help only with longer training and less dropout, and the differences
//! between the rows, a few dozen images out of 5,000, are within the validation set's
//! noise (one standard error of an accuracy near 90% is 0.42%).
//!
//! The default: `flip`, dropout 0.1, 50 epochs, λ = 2e-4. Its validation accuracy ties with
//! 60 epochs at λ = 5e-5 (a mean of 90.90% against 90.94% over the two seeds, two images
//! apart), with a far lower validation loss and a sixth less time. With seed 0 it gave
//! 90.36% test accuracy on the 55,000-image split (70.8 s) and, with `--refit`, **90.61%**
//! in 79.6 s wall time, measured 2026-11-29 on the 2 vCPU AMD EPYC (2 cores, one thread
//! each) with no other job running, with
//! `cargo run --release --example fashion_mnist -- --quiet --refit`.
//!
//! `--save PATH` writes a checkpoint after every epoch (atomically: an interrupted run
//! leaves the last complete one): the model, the standardizer fitted on the training data,
//! and the training state (momentum buffers, step and epoch counters, dropout generators).
//! `--resume PATH` restores all of it and trains the remaining epochs; with the same flags
//! otherwise, the result equals an uninterrupted run bit for bit.
//!
//! The data come from Debian's `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`),
//! or from `--data DIR` or `$FASHION_MNIST_DIR`.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;
use tapegrad::checkpoint::Checkpoint;
use tapegrad::data::{FASHION_MNIST_CLASSES, fashion_mnist};
use tapegrad::{
    Activation, Augment, ChaCha8Rng, Decay, DecayUnit, Dropout, FanMode, FitConfig, Flatten, Init,
    Linear, Module, Progress, RandomCrop, RandomHorizontalFlip, RandomTranslate, Relu, Scaler,
    Schedule, SeedableRng, Sequential, Sgd, evaluate, fit,
};

const EPOCHS: usize = 50;
const BATCH: usize = 128;
const LEARNING_RATE: f32 = 0.05;
const MOMENTUM: f32 = 0.9;
/// λ of the L2 term `cost + λ·Σ W²` (weight decay 2λ = 4e-4).
const L2: f32 = 2e-4;
const DROPOUT: f32 = 0.1;
const HIDDEN: [usize; 2] = [512, 256];
const VALIDATION: usize = 5_000;
const SEED: u64 = 0;
/// Input preprocessing: `global` (one mean and σ over all pixels), `feature` (per pixel) or
/// `bytes` (x / 255).
const SCALER: &str = "feature";
/// Augmentation of the training images: `none`, `flip`, `crop`, `flip-crop`, `translate` or
/// `flip-translate`.
const AUGMENT: &str = "flip";
/// Padding of `crop`, largest shift of `translate`, in pixels.
const SHIFT: usize = 2;

struct Args {
    epochs: usize,
    batch: usize,
    lr: f32,
    l2: f32,
    dropout: f32,
    seed: u64,
    data: Option<PathBuf>,
    quiet: bool,
    save: Option<PathBuf>,
    resume: Option<PathBuf>,
    scaler: String,
    augment: String,
    shift: usize,
    hidden: Vec<usize>,
    no_test: bool,
    refit: bool,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = Args {
        epochs: EPOCHS,
        batch: BATCH,
        lr: LEARNING_RATE,
        l2: L2,
        dropout: DROPOUT,
        seed: SEED,
        data: None,
        quiet: false,
        save: None,
        resume: None,
        scaler: SCALER.to_string(),
        augment: AUGMENT.to_string(),
        shift: SHIFT,
        hidden: HIDDEN.to_vec(),
        no_test: false,
        refit: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => args.epochs = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--lr" => args.lr = value()?.parse()?,
            "--l2" => args.l2 = value()?.parse()?,
            "--dropout" => args.dropout = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--data" => args.data = Some(PathBuf::from(value()?)),
            "--quiet" => args.quiet = true,
            "--no-test" => args.no_test = true,
            "--refit" => args.refit = true,
            "--save" => args.save = Some(PathBuf::from(value()?)),
            "--resume" => args.resume = Some(PathBuf::from(value()?)),
            "--scaler" => args.scaler = value()?,
            "--augment" => args.augment = value()?,
            "--shift" => args.shift = value()?.parse()?,
            "--hidden" => {
                args.hidden = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other}; see the file header").into()),
        }
    }
    Ok(args)
}

/// Flatten, then 784 → 512 → 256 → 10 with ReLU and dropout after each hidden layer.
fn model(hidden: &[usize], dropout: f32, rng: &mut ChaCha8Rng) -> tapegrad::Result<Sequential> {
    let he = Init::KaimingNormal {
        mode: FanMode::FanIn,
        activation: Activation::Relu,
    };
    let mut layers: Vec<Box<dyn Module>> = vec![Box::new(Flatten)];
    let mut width = 784;
    for &hidden in hidden {
        layers.push(Box::new(Linear::new(width, hidden, he, rng)?));
        layers.push(Box::new(Relu));
        layers.push(Box::new(Dropout::new(dropout, rng)?));
        width = hidden;
    }
    layers.push(Box::new(Linear::new(width, 10, Init::default(), rng)?));
    Sequential::new(layers)
}

/// The augmentation named by `--augment`, or `None` for `none`.
fn augmentation(name: &str, shift: usize) -> Result<Option<Augment>, Box<dyn std::error::Error>> {
    let flip = || RandomHorizontalFlip::new(0.5);
    let augment = Augment::new();
    Ok(Some(match name {
        "none" => return Ok(None),
        "flip" => augment.then(flip()?),
        "crop" => augment.then(RandomCrop::new(shift)?),
        "flip-crop" => augment.then(flip()?).then(RandomCrop::new(shift)?),
        "translate" => augment.then(RandomTranslate::new(shift)?),
        "flip-translate" => augment.then(flip()?).then(RandomTranslate::new(shift)?),
        other => return Err(format!("unknown --augment {other}; see the file header").into()),
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);

    let (all_train, test) = fashion_mnist(args.data.as_deref())?;
    let (train, valid) = all_train.split(VALIDATION, &mut rng)?;
    // settings chosen on the split; `--refit` then trains on all 60,000 images with them
    let train = if args.refit { all_train } else { train };
    // images [1, 28, 28], so that crops and shifts know the rows; `Flatten` makes them rows
    let image = [1, 28, 28];
    let mut train = train.with_sample_shape(&image)?;
    let mut valid = valid.with_sample_shape(&image)?;
    let mut test = test.with_sample_shape(&image)?;
    let resume = args.resume.as_deref().map(Checkpoint::load).transpose()?;
    // fitted on the training part only, then applied unchanged to validation and test; a
    // resumed run takes the one stored in its checkpoint
    let scaler = match resume.as_ref().and_then(Checkpoint::scaler) {
        Some(stored) => stored.clone(),
        None => match args.scaler.as_str() {
            "global" => Scaler::standardize_global(&train)?,
            "feature" => Scaler::standardize(&train)?,
            "bytes" => Scaler::affine(train.num_features(), 1.0 / 255.0, 0.0)?,
            other => return Err(format!("unknown --scaler {other}; see the file header").into()),
        },
    };
    for data in [&mut train, &mut valid, &mut test] {
        data.set_scaler(scaler.clone())?;
    }
    let augment = augmentation(&args.augment, args.shift)?;
    println!(
        "Fashion-MNIST: {} train, {} validation, {} test images (stored as bytes)",
        train.len(),
        valid.len(),
        test.len()
    );

    let mut model = model(&args.hidden, args.dropout, &mut rng)?;
    println!("{model}");
    let steps_per_epoch = train.len().div_ceil(args.batch) as u64;
    let cosine = Decay::Cosine {
        period: args.epochs as u64 * steps_per_epoch,
        min_factor: 0.0,
    };
    let mut sgd = Sgd::new(args.lr)?
        .momentum(MOMENTUM)?
        .l2(args.l2)?
        .schedule(Schedule::new(cosine, DecayUnit::Step)?);
    let start_epoch = match &resume {
        Some(checkpoint) => {
            let done = checkpoint.resume(&mut model, &mut sgd)?;
            println!(
                "resumed from {} after epoch {done}",
                checkpoint.source().display()
            );
            done
        }
        None => 0,
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps_per_epoch)
    };
    bar.set_style(ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} {msg}",
    )?);
    let say = |line: String| {
        if args.quiet {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    // one epoch per call, so a checkpoint can be written after each; fit resumes from
    // `start_epoch`, so this trains exactly as one call over all epochs would
    for epoch in start_epoch..args.epochs {
        let config = FitConfig {
            epochs: epoch + 1,
            start_epoch: epoch,
            batch_size: args.batch,
            seed: args.seed,
            augment: augment.clone(),
            ..FitConfig::default()
        };
        fit(
            &mut model,
            &mut sgd,
            &train,
            Some(&valid).filter(|_| !args.refit),
            &config,
            &mut |p| match p {
                Progress::Step {
                    epoch,
                    step,
                    loss,
                    samples_per_second,
                    ..
                } => {
                    bar.set_prefix(epoch.to_string());
                    bar.set_position(*step as u64);
                    bar.set_message(format!("loss {loss:.4}, {samples_per_second:.0} samples/s"));
                }
                Progress::Epoch(r) => say(format!(
                    "epoch {:>2}: train loss {:.4} | {} | lr {:.4} | {:.1}s, {:.0} samples/s",
                    r.epoch,
                    r.train_loss,
                    match (r.valid_loss, r.valid_accuracy) {
                        (Some(loss), Some(accuracy)) =>
                            format!("valid loss {loss:.4}, accuracy {:.2}%", 100.0 * accuracy),
                        _ => "no validation (--refit)".into(),
                    },
                    r.lr,
                    r.seconds,
                    r.samples_per_second
                )),
                Progress::Event(e) => say(format!("note: {e}")),
            },
        )?;
        if let Some(path) = &args.save {
            Checkpoint::new(&model)
                .with_scaler(scaler.clone())
                .with_training(&sgd, epoch + 1)?
                .save(path)?;
        }
    }
    bar.finish_and_clear();
    if args.no_test {
        println!(
            "trained {} epochs; test set not used; wall time {:.1}s",
            args.epochs,
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    // the one and only look at the test set
    let result = evaluate(&model, &test, 1000)?;
    println!("\nconfusion matrix on the test set (rows: true class, columns: prediction)");
    if let Some(confusion) = &result.confusion {
        print!("{confusion}");
    }
    for (class, name) in FASHION_MNIST_CLASSES.iter().enumerate() {
        println!("  {class} = {name}");
    }
    println!(
        "\ntest accuracy {:.2}% (loss {:.4}) after {} epochs; wall time {:.1}s",
        100.0 * result.accuracy.unwrap_or(f64::NAN),
        result.loss,
        args.epochs,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
