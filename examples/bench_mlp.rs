//! Workload W1 of the speed goals, exactly as `bench/torch_mlp.py` runs it in
//! PyTorch, so the two can be timed side by side on one machine.
//!
//! Fashion-MNIST MLP 784-256-256-10 (ReLU), softmax cross-entropy, plain SGD lr 0.05 (no
//! momentum), PyTorch's default `nn.Linear` initialization, shuffled batches with the last
//! partial batch kept, inputs scaled to `[0, 1]`, data in memory (as the file's bytes,
//! converted per batch). Only the training loop is timed. Prints one JSON line per epoch and
//! a summary line with the median samples/s, the test accuracy and the process's peak RSS.
//!
//! ```text
//! cargo run --release --example bench_mlp -- --threads 1 [--batch 128 --epochs 3 --max-steps N --data DIR]
//! ```

use std::path::PathBuf;
use std::time::Instant;
use tapegrad::data::fashion_mnist;
use tapegrad::prelude::*;

const THREADS: usize = 1;
const BATCH: usize = 128;
const EPOCHS: usize = 3;
const LEARNING_RATE: f32 = 0.05;
const SEED: u64 = 0;

struct Args {
    threads: usize,
    batch: usize,
    epochs: usize,
    max_steps: usize,
    data: Option<PathBuf>,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = Args {
        threads: THREADS,
        batch: BATCH,
        epochs: EPOCHS,
        max_steps: 0,
        data: None,
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

    let (mut train, mut test) = fashion_mnist(args.data.as_deref())?;
    let to_unit = Scaler::affine(train.num_features(), 1.0 / 255.0, 0.0)?;
    train.set_scaler(to_unit.clone())?;
    test.set_scaler(to_unit)?;

    let mut model = Sequential::new(vec![
        Box::new(Linear::new(784, 256, Init::default(), &mut rng)?),
        Box::new(Relu),
        Box::new(Linear::new(256, 256, Init::default(), &mut rng)?),
        Box::new(Relu),
        Box::new(Linear::new(256, 10, Init::default(), &mut rng)?),
    ])?;
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
