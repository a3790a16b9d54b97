//! Workload W2 of the speed goals, exactly as `bench/torch_cnn.py` runs it in
//! PyTorch, so the two can be timed side by side on one machine.
//!
//! Fashion-MNIST CNN on `[N, 1, 28, 28]` images scaled to `[0, 1]`:
//! Conv2d(1→32, 3×3, pad 1) ReLU MaxPool2 → Conv2d(32→64, 3×3, pad 1) ReLU MaxPool2 →
//! Flatten → Linear(3136→128) ReLU → Linear(128→10); softmax cross-entropy, plain SGD lr 0.05
//! (no momentum), PyTorch's default initializations, shuffled batches with the last partial
//! batch kept, data in memory (as the file's bytes, converted per batch). About 25 MFLOP per
//! training sample. Only the training loop is timed. Prints one JSON line per epoch and a
//! summary line with the median samples/s, the test accuracy and the process's peak RSS.
//!
//! `--infer N` times forward passes of single images instead (batch 1 on an inference
//! tape, N of them after a warm-up), printed as `{"infer_batch1_per_s": …}`.
//!
//! ```text
//! cargo run --release --example bench_cnn -- --threads 1 [--batch 128 --epochs 1 --max-steps N --data DIR]
//! cargo run --release --example bench_cnn -- --threads 1 --infer 2000
//! ```

#[path = "support/w2.rs"]
mod w2;

use std::path::PathBuf;
use std::time::Instant;
use tapegrad::data::fashion_mnist;
use tapegrad::prelude::*;
use w2::w2;

const THREADS: usize = 1;
const BATCH: usize = 128;
const EPOCHS: usize = 1;
const LEARNING_RATE: f32 = 0.05;
const SEED: u64 = 0;

struct Args {
    threads: usize,
    batch: usize,
    epochs: usize,
    max_steps: usize,
    data: Option<PathBuf>,
    infer: usize,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = Args {
        threads: THREADS,
        batch: BATCH,
        epochs: EPOCHS,
        max_steps: 0,
        data: None,
        infer: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => args.threads = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--epochs" => args.epochs = value()?.parse()?,
            "--max-steps" => args.max_steps = value()?.parse()?,
            "--data" => args.data = Some(PathBuf::from(value()?)),
            "--infer" => args.infer = value()?.parse()?,
            "--bench" => {} // passed by `cargo bench`; nothing to do
            other => return Err(format!("unknown flag {other}; see the file header").into()),
        }
    }
    Ok(args)
}

/// The process's peak resident set size in MiB (Linux `VmHWM`), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    tapegrad::set_num_threads(args.threads)?;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);

    let (train, test) = fashion_mnist(args.data.as_deref())?;
    let (mut train, mut test) = (
        train.with_sample_shape(&[1, 28, 28])?,
        test.with_sample_shape(&[1, 28, 28])?,
    );
    let to_unit = Scaler::affine(train.num_features(), 1.0 / 255.0, 0.0)?;
    train.set_scaler(to_unit.clone())?;
    test.set_scaler(to_unit)?;

    let mut model = w2(false, &mut rng)?;
    if args.infer > 0 {
        return infer(&model, &test, &args);
    }
    let mut sgd = Sgd::new(LEARNING_RATE)?;
    // the loop runs on a pool thread, which does a share of the work itself
    let rates = tapegrad::in_pool(|| -> tapegrad::Result<Vec<f64>> {
        let mut step = TrainStep::new();
        let mut rates = Vec::new();
        for epoch in 1..=args.epochs {
            let mut batches = train.batches(args.batch)?.shuffled(&mut rng);
            let (mut seen, mut steps) = (0, 0);
            let start = Instant::now();
            while let Some(batch) = batches.next() {
                seen += batch.len();
                step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)?;
                steps += 1;
                if args.max_steps > 0 && steps >= args.max_steps {
                    break;
                }
            }
            let secs = start.elapsed().as_secs_f64();
            rates.push(seen as f64 / secs);
            println!(
                "{{\"epoch\": {epoch}, \"secs\": {secs:.3}, \"samples_per_s\": {:.0}}}",
                seen as f64 / secs
            );
        }
        Ok(rates)
    })?;
    let accuracy = evaluate(&model, &test, 1000)?.accuracy.unwrap_or(f64::NAN);
    println!(
        "{{\"lib\": \"tapegrad {}\", \"threads\": {}, \"batch\": {}, \"median_samples_per_s\": {:.0}, \"test_acc\": {:.4}, \"peak_rss_mib\": {:.1}}}",
        env!("CARGO_PKG_VERSION"),
        args.threads,
        args.batch,
        median(rates),
        accuracy,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Times `args.infer` forward passes of one test image each (after as many warm-up passes),
/// on an inference tape reused across passes, as `model.eval()` under `torch.no_grad()`.
fn infer(
    model: &Sequential,
    test: &Dataset,
    args: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let images: Vec<Tensor> = {
        let mut batches = test.batches(1)?;
        let mut images = Vec::new();
        while let Some(batch) = batches.next() {
            images.push(batch.x.to_owned());
            if images.len() == 100 {
                break;
            }
        }
        images
    };
    let mut tape = Tape::inference();
    let mut run = |count: usize| {
        let mut checksum = 0.0;
        for i in 0..count {
            tape.reset();
            let logits = model.forward(tape.constant(&images[i % images.len()]), Mode::Eval);
            checksum += logits.value()[[0, 0]];
        }
        checksum
    };
    run(args.infer);
    let start = Instant::now();
    let checksum = run(args.infer);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"lib\": \"tapegrad {}\", \"threads\": {}, \"infer_batch1_per_s\": {:.0}, \"checksum\": {:.3}}}",
        env!("CARGO_PKG_VERSION"),
        args.threads,
        args.infer as f64 / secs,
        checksum
    );
    Ok(())
}
