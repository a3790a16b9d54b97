//! Workload W1 of the speed goals, exactly as `bench/torch_mlp.py` runs it in
//! PyTorch, so the two can be timed side by side on one machine.
//!
//! Fashion-MNIST MLP 784-256-256-10 (ReLU), softmax cross-entropy, plain SGD lr 0.05 (no
//! momentum), PyTorch's default `nn.Linear` initialization, shuffled batches with the last
//! partial batch kept, inputs scaled to `[0, 1]`, data in memory (as the file's bytes,
//! converted per batch). Only the training loop is timed. Prints the machine's f32 FMA peak for
//! the run's threads and the model's FLOP per sample (1.21 MFLOP per training sample: matrix
//! work, forward and backward), one JSON line per epoch, and a summary line with the median
//! samples/s, the test accuracy, the process's peak RSS, and the useful FLOP/s as a fraction
//! of the peak (`"peak_gflops"`, `"useful_gflops"`, `"fraction_of_peak"`, and whether the
//! threads add FMA throughput, `"threads_add_throughput"`).
//!
//! ```text
//! cargo run --release --example bench_mlp -- --threads 1 [--batch 128 --epochs 3 --max-steps N --data DIR]
//! cargo run --release --example bench_mlp -- --threads 1 --infer 20000 [--infer-batch 256]
//! cargo run --release --example bench_mlp -- --threads 1 --infer-sweep 15
//! ```
//!
//! `--infer N` times forward passes of N test images instead of training, in batches of
//! `--infer-batch B` (default 1) with `tapegrad::infer` (eval mode, no gradients), after as
//! many warm-up samples, as `bench/torch_infer.py --model mlp` does in PyTorch, and prints
//! `{"infer_batch": B, "infer_per_s": …}` (samples/s) with the same fraction of peak for the
//! forward FLOP, as `bench_cnn` does for W2; `--infer-sweep R`, as `bench_cnn`'s, times every
//! batch size from 1 to 256 interleaved.
//!
//! `--bench` (which `cargo bench` passes) is accepted and ignored. The data come from `--data
//! DIR`, else from `$FASHION_MNIST_DIR` (when set and not empty), else from Debian's
//! `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`); the images must be 28×28.

#[path = "support/bench.rs"]
mod bench;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/datasets.rs"]
mod datasets;
#[path = "support/w1.rs"]
mod w1;

use tapegrad::prelude::*;

const EPOCHS: usize = 3;
const LEARNING_RATE: f32 = 0.05;
const SEED: u64 = 0;

fn main() -> std::process::ExitCode {
    cli::run(run)
}

/// Times training, or inference with `--infer` / `--infer-sweep`.
fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = bench::parse_args(EPOCHS, include_str!("bench_mlp.rs"))?;
    tapegrad::set_num_threads(args.threads)?;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);

    let images = datasets::load(args.data.as_deref(), true)?;
    let (mut train, mut test) = (images.train, images.test);
    let to_unit = Scaler::affine(train.num_features(), 1.0 / 255.0, 0.0)?;
    train.set_scaler(to_unit.clone())?;
    test.set_scaler(to_unit)?;

    let mut model = w1::w1(&mut rng)?;
    if args.infer_sweep > 0 {
        return bench::infer_sweep(&model, &test, &args);
    }
    if args.infer > 0 {
        return bench::infer(&model, &test, &args);
    }
    bench::train(&mut model, &train, &test, LEARNING_RATE, &mut rng, &args)
}
