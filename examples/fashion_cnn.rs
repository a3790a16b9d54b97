//! Fashion-MNIST with a small convolutional network: batch normalization, ReLU, max pooling,
//! dropout, random flips and shifts of the training images, SGD with Nesterov momentum,
//! weight decay and a cosine learning-rate decay after a short warm-up.
//!
//! Trains on 55,000 training images, watches 5,000 held-out validation images each epoch,
//! and evaluates **once** on the 10,000 test images at the end (the test set never steers
//! training). `--refit` trains with the same settings on all 60,000 training images instead
//! (no validation). `--no-test` skips the test set, for choosing settings by validation
//! accuracy alone.
//!
//! ```text
//! cargo run --release --example fashion_cnn [-- --epochs N --batch B --lr LR --wd WD
//!     --dropout P --seed S --data DIR --quiet --save PATH --resume PATH
//!     --augment none|flip|crop|flip-crop|translate|flip-translate --shift K --no-test --refit]
//! ```
//!
//! The network is the speed benchmark's workload W2 (two 3×3 convolutions, 32 and 64
//! channels, each followed by 2×2 max pooling, then 3136 → 128 → 10) with batch
//! normalization after the second convolution and after the hidden linear layer, and
//! dropout before both linear layers (see `model` below). The inputs are standardized with
//! one mean and σ over all pixels of the training part (torchvision's `Normalize`).
//! `--augment` changes the training images each epoch (never the validation or test
//! images), as in the `fashion_mnist` example: `flip` mirrors half of them left to right,
//! `crop` pads with `--shift` black pixels on every side and crops a random 28 × 28 window
//! (torchvision's `RandomCrop(28, padding=K)`), `translate` shifts by up to `--shift`
//! pixels, and the `flip-…` forms flip first. Training uses SGD with Nesterov momentum 0.9,
//! weight decay on the weights (not on biases or batch-norm scales and shifts), one epoch
//! of linear warm-up from a tenth of `--lr`, then cosine decay to 0 at the last step.
//!
//! The settings were chosen by validation accuracy on the 5,000 held-out images, measured on
//! 2026-11-29 on a 2 vCPU AMD EPYC shared with other builds (load average 3 to 5), two runs
//! side by side at one thread each (`RAYON_NUM_THREADS=1`), with
//! `cargo run --release --example fashion_cnn -- --quiet --no-test --shift K --save PATH`
//! (the defaults otherwise: `flip-crop`, 15 epochs, batch 128, lr 0.05, wd 5e-4, dropout
//! 0.25, seed 0):
//!
//! ```text
//! augment     shift   epoch 5   epoch 10   epoch 14   epoch 15 (final)
//! flip-crop     1     91.24%    92.00%     93.38%     93.26%
//! flip-crop     2     90.46%    90.94%     93.12%     93.16%
//! ```
//!
//! The two are 5 images apart at the end (one standard error of an accuracy near 93% on
//! 5,000 images is 0.36%); the default is the one-pixel crop, which led at every epoch.
//! Only these two configurations were run: on the shared machine each took about 39
//! minutes (epochs of 76 to 184 s at one thread while the other run and other builds
//! competed).
//!
//! Decided before looking at the test set: the chosen run is evaluated on the split it was
//! trained on (no refit). Its checkpoint after epoch 15, evaluated once with
//! `cargo run --release --example fashion_cnn -- --quiet --resume PATH` (the same settings;
//! nothing left to train, so this evaluates the saved model on the test images), gave
//! **93.02%** test accuracy (loss 0.1936), short of the 93.5% this example aims at. Shirts
//! (78.3%) are the weak class, mostly taken for T-shirts, pullovers and coats.
//!
//! The runs above used one thread; at the default two threads each batch is cut into two
//! shards, which round differently, so the plain command gives slightly different numbers
//! (`RAYON_NUM_THREADS=1` reproduces the ones above). Time was only measured on the loaded
//! machine: one epoch of the default command at two threads took 96 s (572 samples/s) while
//! a compiler used more than one core. Fifteen epochs fit in 10 minutes above about 1,400
//! samples/s; this has not yet been timed on a quiet machine.
//!
//! `--save PATH` writes a checkpoint after every epoch (atomically: an interrupted run
//! leaves the last complete one): the model with its batch normalizations' running
//! statistics, the scaler fitted on the training data, and the training state (momentum
//! buffers, step and epoch counters, dropout generators). `--resume PATH` restores all of it
//! and trains the remaining epochs; with the same flags otherwise, the result equals an
//! uninterrupted run bit for bit.
//!
//! The data come from Debian's `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`),
//! or from `--data DIR` or `$FASHION_MNIST_DIR`.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;
use tapegrad::checkpoint::Checkpoint;
use tapegrad::data::{FASHION_MNIST_CLASSES, fashion_mnist};
use tapegrad::{
    Augment, BatchNorm1d, BatchNorm2d, ChaCha8Rng, Conv2d, Conv2dOptions, Decay, DecayUnit,
    Dropout, FitConfig, Flatten, Init, Linear, MaxPool2d, Progress, RandomCrop,
    RandomHorizontalFlip, RandomTranslate, Relu, Scaler, Schedule, SeedableRng, Sequential, Sgd,
    evaluate, fit,
};

const EPOCHS: usize = 15;
const BATCH: usize = 128;
const LEARNING_RATE: f32 = 0.05;
const MOMENTUM: f32 = 0.9;
/// PyTorch's `weight_decay` (`g ← g + wd·θ`), on weights only (not on biases or batch-norm
/// parameters).
const WEIGHT_DECAY: f32 = 5e-4;
const DROPOUT: f32 = 0.25;
/// Epochs of linear warm-up from a tenth of the learning rate.
const WARMUP_EPOCHS: u64 = 1;
const VALIDATION: usize = 5_000;
const SEED: u64 = 0;
/// Augmentation of the training images: `none`, `flip`, `crop`, `flip-crop`, `translate` or
/// `flip-translate`.
const AUGMENT: &str = "flip-crop";
/// Padding of `crop`, largest shift of `translate`, in pixels.
const SHIFT: usize = 1;

struct Args {
    epochs: usize,
    batch: usize,
    lr: f32,
    wd: f32,
    dropout: f32,
    seed: u64,
    data: Option<PathBuf>,
    quiet: bool,
    save: Option<PathBuf>,
    resume: Option<PathBuf>,
    augment: String,
    shift: usize,
    no_test: bool,
    refit: bool,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = Args {
        epochs: EPOCHS,
        batch: BATCH,
        lr: LEARNING_RATE,
        wd: WEIGHT_DECAY,
        dropout: DROPOUT,
        seed: SEED,
        data: None,
        quiet: false,
        save: None,
        resume: None,
        augment: AUGMENT.to_string(),
        shift: SHIFT,
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
            "--wd" => args.wd = value()?.parse()?,
            "--dropout" => args.dropout = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--data" => args.data = Some(PathBuf::from(value()?)),
            "--quiet" => args.quiet = true,
            "--no-test" => args.no_test = true,
            "--refit" => args.refit = true,
            "--save" => args.save = Some(PathBuf::from(value()?)),
            "--resume" => args.resume = Some(PathBuf::from(value()?)),
            "--augment" => args.augment = value()?,
            "--shift" => args.shift = value()?.parse()?,
            other => return Err(format!("unknown flag {other}; see the file header").into()),
        }
    }
    if args.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    Ok(args)
}

/// The speed benchmark's workload W2 with batch normalization after the second convolution
/// and the hidden linear layer, and dropout before both linear layers, on `[N, 1, 28, 28]`
/// images: conv 3×3 1→32 (padding 1), ReLU, max pool 2 (28×28 → 14×14); conv 3×3 32→64 (no
/// bias), batch norm, ReLU, max pool 2 (→ 7×7); flatten, dropout, 3136 → 128, batch norm,
/// ReLU, dropout, 128 → 10. PyTorch's default initializations.
fn model(dropout: f32, rng: &mut ChaCha8Rng) -> tapegrad::Result<Sequential> {
    let pad = Conv2dOptions::default().padding(1);
    Sequential::new(vec![
        Box::new(Conv2d::new(1, 32, [3, 3], pad, Init::default(), rng)?),
        Box::new(Relu),
        Box::new(MaxPool2d::new(2)?),
        Box::new(Conv2d::new_no_bias(
            32,
            64,
            [3, 3],
            pad,
            Init::default(),
            rng,
        )?),
        Box::new(BatchNorm2d::new(64)?),
        Box::new(Relu),
        Box::new(MaxPool2d::new(2)?),
        Box::new(Flatten),
        Box::new(Dropout::new(dropout, rng)?),
        Box::new(Linear::new(64 * 7 * 7, 128, Init::default(), rng)?),
        Box::new(BatchNorm1d::new(128)?),
        Box::new(Relu),
        Box::new(Dropout::new(dropout, rng)?),
        Box::new(Linear::new(128, 10, Init::default(), rng)?),
    ])
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
    let image = [1, 28, 28];
    let mut train = train.with_sample_shape(&image)?;
    let mut valid = valid.with_sample_shape(&image)?;
    let mut test = test.with_sample_shape(&image)?;
    let resume = args.resume.as_deref().map(Checkpoint::load).transpose()?;
    // one mean and σ over all pixels of the training part (torchvision's `Normalize`), applied
    // unchanged to validation and test; a resumed run takes the one stored in its checkpoint
    let scaler = match resume.as_ref().and_then(Checkpoint::scaler) {
        Some(stored) => stored.clone(),
        None => Scaler::standardize_global(&train)?,
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

    let mut model = model(args.dropout, &mut rng)?;
    println!("{}", model.summary(&[1, 1, 28, 28])?);
    let steps_per_epoch = train.len().div_ceil(args.batch) as u64;
    let cosine = Decay::Cosine {
        period: args.epochs as u64 * steps_per_epoch,
        min_factor: 0.0,
    };
    let schedule =
        Schedule::new(cosine, DecayUnit::Step)?.warmup(WARMUP_EPOCHS * steps_per_epoch, 0.1)?;
    let mut sgd = Sgd::new(args.lr)?
        .momentum(MOMENTUM)?
        .nesterov()
        .weight_decay(args.wd)?
        .schedule(schedule);
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
                    "epoch {:>2}: train loss {:.4} | {} | lr {:.4} | {:.1}s, {:.0} samples/s | {:.0}s elapsed",
                    r.epoch,
                    r.train_loss,
                    match (r.valid_loss, r.valid_accuracy) {
                        (Some(loss), Some(accuracy)) =>
                            format!("valid loss {loss:.4}, accuracy {:.2}%", 100.0 * accuracy),
                        _ => "no validation (--refit)".into(),
                    },
                    r.lr,
                    r.seconds,
                    r.samples_per_second,
                    start.elapsed().as_secs_f64()
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
