//! One full training step of workload W1 — the MLP 784-256-256-10 with ReLU, softmax
//! cross-entropy and plain SGD — at batch 1, 16 and 128 (forward, backward and update, as
//! `TrainStep` runs them), and the forward pass alone on an inference tape. Throughput is in
//! samples; the FMA peak and the model's FLOP per sample printed first turn samples/s into a
//! fraction of peak.

#[path = "../examples/support/flops.rs"]
mod flops;
#[allow(dead_code)] // the bench prints the probe's peak only
#[path = "../examples/support/peak.rs"]
mod peak;

use criterion::{Criterion, Throughput, criterion_group};
use std::hint::black_box;
use tapegrad::{
    Batch, BatchTargets, ChaCha8Rng, Init, Linear, Loss, Mode, Module, Relu, SeedableRng,
    Sequential, Sgd, Tape, TrainStep, ndarray::Ix2, tensor,
};

const BATCHES: [usize; 3] = [1, 16, 128];
const LEARNING_RATE: f32 = 0.05;

fn mlp(rng: &mut ChaCha8Rng) -> Sequential {
    Sequential::new(vec![
        Box::new(Linear::new(784, 256, Init::default(), rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(256, 256, Init::default(), rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(256, 10, Init::default(), rng).unwrap()),
    ])
    .unwrap()
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    for batch in BATCHES {
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
    for batch in BATCHES {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let model = mlp(&mut rng);
        let x = tensor::uniform(&[batch, 784], 0.0, 1.0, &mut rng).unwrap();
        let mut tape = Tape::inference();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("mlp_784_256_256_10/batch_{batch}"), |bench| {
            bench.iter(|| {
                tape.reset();
                let logits = model.forward(tape.constant(black_box(&x)), Mode::Eval);
                black_box(logits.shape())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step, inference);

fn main() {
    let threads = tapegrad::num_threads();
    println!("{}", peak::Peak::measure(threads).unwrap().describe());
    let flops = flops::count(&mlp(&mut ChaCha8Rng::seed_from_u64(0)), &[784]).unwrap();
    println!("{}", flops.describe());
    println!(
        "throughput is in samples: fraction of peak = thrpt (elem/s = samples/s) × {} FLOP \
         (train_step) or × {} FLOP (inference) / peak FLOP/s ({threads} threads)",
        flops.training(),
        flops.inference()
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
