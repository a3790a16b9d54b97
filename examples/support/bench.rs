//! What the speed benchmarks (`bench_mlp`, workload W1; `bench_cnn`, W2) share: their
//! flags, the timed training loop with one JSON line per epoch and a summary line, and the
//! inference timing at a chosen batch, as the PyTorch scripts in `bench/` do them, or over
//! every batch size from 1 to 256 interleaved in one process; and the fraction of the
//! machine's FMA peak the run reaches (`peak.rs` measures the peak, `flops.rs` counts the
//! model's useful FLOP per sample).

#[path = "flops.rs"]
mod flops;
#[path = "peak.rs"]
mod peak;

use crate::cli::{self, CommandLine};
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;
use tapegrad::ndarray::{Axis, Slice};
use tapegrad::prelude::*;

/// The benchmarks' flags, named and defaulted as the PyTorch scripts' (`--bench`, which
/// `cargo bench` passes, is accepted and ignored).
pub struct Args {
    pub threads: usize,
    pub batch: usize,
    pub epochs: usize,
    /// Steps per epoch at most (0: the whole epoch).
    pub max_steps: usize,
    pub data: Option<PathBuf>,
    /// Samples to time in forward passes instead of training (0: train).
    pub infer: usize,
    /// Samples per forward pass when timing inference.
    pub infer_batch: usize,
    /// Rounds of the inference sweep over batch sizes (0: no sweep).
    pub infer_sweep: usize,
}

/// Parses the command line; `epochs` is the workload's default epoch count, `source` the
/// example's own file (its header is the `--help`).
pub fn parse_args(epochs: usize, source: &'static str) -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        threads: 1,
        batch: 128,
        epochs,
        max_steps: 0,
        data: None,
        infer: 0,
        infer_batch: 1,
        infer_sweep: 0,
    };
    let mut line = CommandLine::new(source);
    while let Some(flag) = line.next_flag() {
        match flag.as_str() {
            "--threads" => args.threads = line.value(&flag)?,
            "--batch" => args.batch = line.value(&flag)?,
            "--epochs" => args.epochs = line.value(&flag)?,
            "--max-steps" => args.max_steps = line.value(&flag)?,
            "--data" => args.data = Some(line.value(&flag)?),
            "--infer" => args.infer = line.value(&flag)?,
            "--infer-batch" => args.infer_batch = line.value(&flag)?,
            "--infer-sweep" => args.infer_sweep = line.value(&flag)?,
            "--bench" => {} // passed by `cargo bench`; nothing to do
            other => return Err(cli::unknown(other).into()),
        }
    }
    if args.infer_batch == 0 || args.epochs == 0 {
        return Err("--infer-batch and --epochs must be at least 1".into());
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

/// Measures the FMA peak for the run's threads and counts the model's FLOP per sample,
/// printing both for people.
fn peak_and_flops(
    model: &Sequential,
    data: &Dataset,
    args: &Args,
) -> Result<(peak::Peak, flops::Flops), Box<dyn Error>> {
    let flops = flops::count(model, data.sample_shape())?;
    let peak = peak::Peak::measure(args.threads)?;
    emit(format_args!("{}", peak.describe()));
    emit(format_args!("{}", flops.describe()));
    Ok((peak, flops))
}

/// The JSON fields of the useful FLOP/s (`samples_per_s` samples of `flop_per_sample` FLOP
/// each) as a fraction of `peak`, after the same said for people.
fn fraction_of_peak(peak: &peak::Peak, flop_per_sample: u64, samples_per_s: f64) -> String {
    let useful_gflops = samples_per_s * flop_per_sample as f64 / 1e9;
    let fraction = peak.fraction(useful_gflops);
    emit(format_args!(
        "useful {useful_gflops:.2} GFLOP/s ({samples_per_s:.0} samples/s × {flop_per_sample} FLOP) = {:.1}% of the {}-thread FMA peak {:.1} GFLOP/s",
        100.0 * fraction,
        peak.threads,
        peak.gflops
    ));
    format!(
        "\"flop_per_sample\": {flop_per_sample}, \"useful_gflops\": {useful_gflops:.3}, \"fraction_of_peak\": {fraction:.4}, {}",
        peak.json_fields()
    )
}

/// Trains `model` with plain SGD at `lr` on shuffled batches of `train` for `args.epochs`
/// (each cut at `args.max_steps`), printing each epoch's samples/s as a JSON line, then a
/// summary line with the median samples/s, the test accuracy, the peak RSS, and the useful
/// FLOP/s (the model's FLOP per training sample times the median samples/s) as a fraction of
/// the FMA peak measured before training.
pub fn train(
    model: &mut Sequential,
    train: &Dataset,
    test: &Dataset,
    lr: f32,
    rng: &mut ChaCha8Rng,
    args: &Args,
) -> Result<(), Box<dyn Error>> {
    let (peak, flops) = peak_and_flops(model, train, args)?;
    let mut sgd = Sgd::new(lr)?;
    // the loop runs on a pool thread, which does a share of the work itself
    let rates = tapegrad::in_pool(|| -> tapegrad::Result<Vec<f64>> {
        let mut step = TrainStep::new();
        let mut rates = Vec::new();
        for epoch in 1..=args.epochs {
            let mut batches = train.batches(args.batch)?.shuffled(rng);
            let (mut seen, mut steps) = (0, 0);
            let start = Instant::now();
            while let Some(batch) = batches.next() {
                seen += batch.len();
                step.run(model, &mut sgd, batch, &Loss::CrossEntropy)?;
                steps += 1;
                if args.max_steps > 0 && steps >= args.max_steps {
                    break;
                }
            }
            let secs = start.elapsed().as_secs_f64();
            rates.push(seen as f64 / secs);
            emit(format_args!(
                "{{\"epoch\": {epoch}, \"secs\": {secs:.3}, \"samples_per_s\": {:.0}}}",
                seen as f64 / secs
            ));
        }
        Ok(rates)
    })?;
    let accuracy = evaluate(&*model, test, 1000)?.accuracy.unwrap_or(f64::NAN);
    let samples_per_s = median(rates);
    let fraction = fraction_of_peak(&peak, flops.training(), samples_per_s);
    emit(format_args!(
        "{{\"lib\": \"tapegrad {}\", \"threads\": {}, \"batch\": {}, \"median_samples_per_s\": {:.0}, \"test_acc\": {:.4}, \"peak_rss_mib\": {:.1}, {fraction}}}",
        env!("CARGO_PKG_VERSION"),
        args.threads,
        args.batch,
        samples_per_s,
        accuracy,
        peak_rss_mib().unwrap_or(f64::NAN)
    ));
    Ok(())
}

/// Times forward passes of `args.infer` test samples in batches of `args.infer_batch` (after
/// as many warm-up passes; the sample count is rounded up to whole batches), on an inference
/// tape reused across passes, as `model.eval()` under `torch.no_grad()`, in
/// [`tapegrad::in_pool`] (the pool's threads wait for work spinning, as PyTorch's do), and
/// prints the samples per second (`"infer_per_s"`, with `"infer_batch"`) with the useful
/// FLOP/s (the model's forward FLOP per sample times the samples per second) as a fraction of
/// the FMA peak measured before.
pub fn infer(model: &Sequential, test: &Dataset, args: &Args) -> Result<(), Box<dyn Error>> {
    let (peak, flops) = peak_and_flops(model, test, args)?;
    let batch = args.infer_batch;
    // whole batches of the first max(100, batch) test samples, cycled through
    let inputs: Vec<Tensor> = {
        let mut batches = test.batches(batch)?;
        let mut inputs = Vec::new();
        while let Some(b) = batches.next() {
            if b.len() < batch {
                break;
            }
            inputs.push(b.x.to_owned());
            if inputs.len() * batch >= 100 {
                break;
            }
        }
        inputs
    };
    if inputs.is_empty() {
        return Err(format!(
            "infer: --infer-batch {batch} is more than the {} test samples",
            test.len()
        )
        .into());
    }
    let passes = args.infer.div_ceil(batch);
    // inside `in_pool`, as `fit` runs its loop: the pool's threads wait for work spinning
    // between passes (as PyTorch's OpenMP threads do) instead of sleeping and being woken
    let (checksum, secs) = tapegrad::in_pool(|| -> Result<_, tapegrad::Error> {
        let run = |count: usize| -> Result<f32, tapegrad::Error> {
            let mut checksum = 0.0;
            for i in 0..count {
                checksum += tapegrad::infer(model, &inputs[i % inputs.len()])?[[0, 0]];
            }
            Ok(checksum)
        };
        run(passes)?;
        let start = Instant::now();
        let checksum = run(passes)?;
        Ok((checksum, start.elapsed().as_secs_f64()))
    })?;
    let per_s = (passes * batch) as f64 / secs;
    let fraction = fraction_of_peak(&peak, flops.inference(), per_s);
    emit(format_args!(
        "{{\"lib\": \"tapegrad {}\", \"threads\": {}, \"infer_batch\": {batch}, \"infer_per_s\": {:.0}, \"checksum\": {:.3}, {fraction}}}",
        env!("CARGO_PKG_VERSION"),
        args.threads,
        per_s,
        checksum
    ));
    Ok(())
}

/// Batch sizes of the inference sweep.
const SWEEP_BATCHES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// Samples each batch size runs per round of the sweep (at least 8 passes).
const SWEEP_SAMPLES: usize = 2048;

/// Times inference at every batch size of [`SWEEP_BATCHES`] (test samples, as [`infer`]),
/// the sizes interleaved in each of `args.infer_sweep` rounds, so that a busy host slows all
/// of them alike rather than whichever ran when it was busy; prints one line per batch size
/// with the median, lower and upper quartile samples/s over the rounds, then a line with
/// the largest drop of a median below the best median of a smaller batch
/// (`"largest_drop"`, a fraction: 0 when per-sample speed never falls as the batch grows).
pub fn infer_sweep(model: &Sequential, test: &Dataset, args: &Args) -> Result<(), Box<dyn Error>> {
    let (peak, flops) = peak_and_flops(model, test, args)?;
    let largest = SWEEP_BATCHES[SWEEP_BATCHES.len() - 1];
    let mut batches = test.batches(largest)?;
    let Some(first) = batches.next().filter(|b| b.len() == largest) else {
        return Err(format!("--infer-sweep needs {largest} test samples").into());
    };
    let inputs: Vec<Tensor> = SWEEP_BATCHES
        .iter()
        .map(|&b| first.x.slice_axis(Axis(0), Slice::from(..b)).to_owned())
        .collect();
    let mut rates = vec![Vec::new(); SWEEP_BATCHES.len()];
    tapegrad::in_pool(|| -> Result<(), tapegrad::Error> {
        for round in 0..=args.infer_sweep {
            for (x, rates) in inputs.iter().zip(&mut rates) {
                let passes = (SWEEP_SAMPLES / x.shape()[0]).max(8);
                let start = Instant::now();
                for _ in 0..passes {
                    std::hint::black_box(tapegrad::infer(model, x)?);
                }
                // round 0 warms up
                if round > 0 {
                    rates.push((passes * x.shape()[0]) as f64 / start.elapsed().as_secs_f64());
                }
            }
        }
        Ok(())
    })?;
    let (mut best_smaller, mut largest_drop) = (0.0f64, 0.0f64);
    for (&batch, mut rates) in SWEEP_BATCHES.iter().zip(rates) {
        rates.sort_by(f64::total_cmp);
        // the nearest rank to the quartile
        let quartile = |q: usize| rates[((rates.len() - 1) * q + 2) / 4];
        let per_s = median(rates.clone());
        largest_drop = largest_drop.max(1.0 - per_s / best_smaller.max(per_s));
        best_smaller = best_smaller.max(per_s);
        let fraction = fraction_of_peak(&peak, flops.inference(), per_s);
        emit(format_args!(
            "{{\"threads\": {}, \"infer_batch\": {batch}, \"infer_per_s\": {per_s:.0}, \"q25\": {:.0}, \"q75\": {:.0}, {fraction}}}",
            args.threads,
            quartile(1),
            quartile(3)
        ));
    }
    emit(format_args!(
        "{{\"lib\": \"tapegrad {}\", \"threads\": {}, \"sweep_rounds\": {}, \"largest_drop\": {largest_drop:.4}}}",
        env!("CARGO_PKG_VERSION"),
        args.threads,
        args.infer_sweep
    ));
    Ok(())
}

/// Prints one line to standard output; when the reader has gone (`| head`), ends the
/// program quietly where `println!` would panic on the broken pipe.
pub fn emit(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if writeln!(std::io::stdout().lock(), "{line}").is_err() {
        std::process::exit(0);
    }
}
