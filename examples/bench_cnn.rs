//! Workload W2 of the speed goals, exactly as `bench/torch_cnn.py` runs it in
//! PyTorch, so the two can be timed side by side on one machine.
//!
//! Fashion-MNIST CNN on `[N, 1, 28, 28]` images scaled to `[0, 1]`:
//! Conv2d(1→32, 3×3, pad 1) ReLU MaxPool2 → Conv2d(32→64, 3×3, pad 1) ReLU MaxPool2 →
//! Flatten → Linear(3136→128) ReLU → Linear(128→10); softmax cross-entropy, plain SGD lr 0.05
//! (no momentum), PyTorch's default initializations, shuffled batches with the last partial
//! batch kept, data in memory (as the file's bytes, converted per batch). About 25 MFLOP per
//! training sample (matrix work, forward and backward; 8.5 MFLOP forward). Only the training
//! loop is timed. Prints the machine's f32 FMA peak for the run's threads and the model's FLOP
//! per sample, one JSON line per epoch, and a summary line with the median samples/s, the test
//! accuracy, the process's peak RSS, and the useful FLOP/s as a fraction of the peak
//! (`"peak_gflops"`, `"useful_gflops"`, `"fraction_of_peak"`, `"threads_add_throughput"`).
//!
//! `--infer N` times forward passes of N test images instead, in batches of `--infer-batch B`
//! (default 1) with `tapegrad::infer` (eval mode, no gradients), after as many warm-up
//! samples, as `bench/torch_infer.py --model cnn` does in PyTorch; printed as
//! `{"infer_batch": B, "infer_per_s": …}` (samples/s) with the same fraction of peak for the
//! forward FLOP.
//!
//! `--infer-sweep R` times inference at every batch size from 1 to 256 (powers of 2),
//! interleaved, for `R` rounds, and prints each size's median samples/s with its quartiles
//! and then the largest drop of a median below a smaller batch's (`"largest_drop"`, 0 when
//! per-sample inference never gets slower as the batch grows).
//!
//! ```text
//! cargo run --release --example bench_cnn -- --threads 1 [--batch 128 --epochs 1 --max-steps N --data DIR]
//! cargo run --release --example bench_cnn -- --threads 1 --infer 2000 [--infer-batch 256]
//! cargo run --release --example bench_cnn -- --threads 1 --infer-sweep 15
//! ```
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
#[path = "support/w2.rs"]
mod w2;

use tapegrad::prelude::*;

const EPOCHS: usize = 1;
const LEARNING_RATE: f32 = 0.05;
const SEED: u64 = 0;

fn main() -> std::process::ExitCode {
    cli::run(run)
}

/// Times training, or inference with `--infer` / `--infer-sweep`.
fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = bench::parse_args(EPOCHS, include_str!("bench_cnn.rs"))?;
    tapegrad::set_num_threads(args.threads)?;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);

    let images = datasets::load(args.data.as_deref(), true)?;
    let (train, test) = (images.train, images.test);
    let (mut train, mut test) = (
        train.with_sample_shape(&[1, 28, 28])?,
        test.with_sample_shape(&[1, 28, 28])?,
    );
    let to_unit = Scaler::affine(train.num_features(), 1.0 / 255.0, 0.0)?;
    train.set_scaler(to_unit.clone())?;
    test.set_scaler(to_unit)?;

    let mut model = w2::w2(false, &mut rng)?;
    if args.infer_sweep > 0 {
        return bench::infer_sweep(&model, &test, &args);
    }
    if args.infer > 0 {
        return bench::infer(&model, &test, &args);
    }
    bench::train(&mut model, &train, &test, LEARNING_RATE, &mut rng, &args)
}
