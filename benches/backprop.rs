//! One full training step of workload W1 — the MLP 784-256-256-10 with ReLU, softmax
//! cross-entropy and plain SGD — at batch 1, 16 and 128 (forward, backward and update, as
//! `TrainStep` runs them), and the forward pass alone as `tapegrad::infer` runs it (model in
//! eval mode, no gradients) of W1 and of workload W2 (the CNN of `examples/bench_cnn.rs`) at
//! batch 1, 2, 4, …, 256, so that one can see whether a sample ever costs more in a larger
//! batch. Every case
//! runs in [`tapegrad::in_pool`], as `fit` and the bench examples run their loops. Throughput
//! is in samples; the FMA peak and the models' FLOP per sample printed first turn samples/s
//! into a fraction of peak.

#[path = "../examples/support/flops.rs"]
mod flops;
#[allow(dead_code)] // the bench prints the probe's peak only
#[path = "../examples/support/peak.rs"]
mod peak;
#[path = "../examples/support/w1.rs"]
mod w1;
#[path = "../examples/support/w2.rs"]
mod w2;

use criterion::{Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::time::Duration;
use tapegrad::{
    Batch, BatchTargets, ChaCha8Rng, Loss, SeedableRng, Sequential, Sgd, TrainStep, ndarray::Ix2,
    tensor,
};

const TRAIN_BATCHES: [usize; 3] = [1, 16, 128];
const INFER_BATCHES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const LEARNING_RATE: f32 = 0.05;

/// Builds a workload's model from a seeded RNG.
type Build = fn(&mut ChaCha8Rng) -> Sequential;

fn mlp(rng: &mut ChaCha8Rng) -> Sequential {
    w1::w1(rng).unwrap()
}

fn cnn(rng: &mut ChaCha8Rng) -> Sequential {
    w2::w2(false, rng).unwrap()
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    for batch in TRAIN_BATCHES {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut model = mlp(&mut rng);
        let x = tensor::uniform(&[batch, 784], 0.0, 1.0, &mut rng).unwrap();
        let x = x.into_dimensionality::<Ix2>().unwrap();
        let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
        let mut sgd = Sgd::new(LEARNING_RATE).unwrap();
        let mut step = TrainStep::new();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("mlp_784_256_256_10/batch_{batch}"), |bench| {
            // on a pool thread, with the other threads kept awake, as `fit` runs its steps
            tapegrad::in_pool(|| {
                bench.iter(|| {
                    let batch = Batch {
                        x: black_box(x.view().into_dyn()),
                        targets: BatchTargets::Classes(&labels),
                    };
                    step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)
                        .unwrap()
                })
            })
        });
    }
    group.finish();
}

fn inference(c: &mut Criterion) {
    let mut group = c.benchmark_group("inference");
    // 18 cases: a shorter warm-up and measurement keep `cargo bench` well under 10 minutes
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let models: [(&str, Build, &[usize]); 2] = [
        ("mlp_784_256_256_10", mlp, &[784]),
        ("cnn_w2", cnn, &[1, 28, 28]),
    ];
    for (name, build, sample) in models {
        for batch in INFER_BATCHES {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let model = build(&mut rng);
            let x = tensor::uniform(&[&[batch], sample].concat(), 0.0, 1.0, &mut rng).unwrap();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("{name}/batch_{batch}"), |bench| {
                tapegrad::in_pool(|| bench.iter(|| tapegrad::infer(&model, black_box(&x)).unwrap()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_step, inference);

fn main() {
    let threads = tapegrad::num_threads();
    println!("{}", peak::Peak::measure(threads).unwrap().describe());
    let flops = flops::count(&mlp(&mut ChaCha8Rng::seed_from_u64(0)), &[784]).unwrap();
    let cnn_flops = flops::count(&cnn(&mut ChaCha8Rng::seed_from_u64(0)), &[1, 28, 28]).unwrap();
    println!("W1: {}", flops.describe());
    println!("W2: {}", cnn_flops.describe());
    println!(
        "throughput is in samples: fraction of peak = thrpt (elem/s = samples/s) × {} FLOP \
         (train_step), × {} FLOP (inference/mlp_…) or × {} FLOP (inference/cnn_w2) / peak \
         FLOP/s ({threads} threads)",
        flops.training(),
        flops.inference(),
        cnn_flops.inference()
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
