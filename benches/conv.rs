//! Convolution and pooling at the shapes of workload W2 (the Fashion-MNIST CNN of
//! `bench/compare.sh`), batch 128: forward, and forward + backward, with throughput in
//! FLOP (2 per multiply-add of the convolution; the backward adds two products of the same
//! size, the input's and the weight's gradients) and, for pooling, in input elements. With the
//! FMA peak printed first, a convolution's `elem/s` (FLOP/s) read as a fraction of peak.

#[allow(dead_code)] // the bench prints the probe's peak only
#[path = "../examples/support/peak.rs"]
mod peak;

use criterion::{Criterion, Throughput, criterion_group};
use std::hint::black_box;
use tapegrad::{ChaCha8Rng, Conv2dOptions, SeedableRng, Tape, tensor};

const BATCH: usize = 128;
/// (name, input [C, H, W], output channels): W2's two convolutions, 3×3 with padding 1.
const CONVS: [(&str, [usize; 3], usize); 2] = [
    ("conv1_1x28x28_32", [1, 28, 28], 32),
    ("conv2_32x14x14_64", [32, 14, 14], 64),
];
/// (name, input [C, H, W]): W2's two 2×2 max poolings.
const POOLS: [(&str, [usize; 3]); 2] = [
    ("pool1_32x28x28", [32, 28, 28]),
    ("pool2_64x14x14", [64, 14, 14]),
];

fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    for (name, [ch, h, w], out) in CONVS {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = tensor::uniform(&[BATCH, ch, h, w], 0.0, 1.0, &mut rng).unwrap();
        let weight = tensor::uniform(&[out, ch, 3, 3], -0.3, 0.3, &mut rng).unwrap();
        let bias = tensor::uniform(&[out], -0.3, 0.3, &mut rng).unwrap();
        let options = Conv2dOptions::default().padding(1);
        let flop = 2 * BATCH * out * h * w * ch * 9;
        let mut tape = Tape::new();
        group.throughput(Throughput::Elements(flop as u64));
        group.bench_function(format!("forward/{name}/batch_{BATCH}"), |bench| {
            bench.iter(|| {
                tape.reset();
                let (w, b) = (tape.leaf(&weight), tape.leaf(&bias));
                let y = tape.constant(black_box(&x)).conv2d(w, Some(b), options);
                black_box(y.shape())
            })
        });
        // the second convolution's input needs a gradient too (as in W2); the first's not
        let input_grad = ch > 1;
        group.throughput(Throughput::Elements(
            (flop * if input_grad { 3 } else { 2 }) as u64,
        ));
        group.bench_function(format!("forward_backward/{name}/batch_{BATCH}"), |bench| {
            bench.iter(|| {
                tape.reset();
                let (w, b) = (tape.leaf(&weight), tape.leaf(&bias));
                let x = match input_grad {
                    true => tape.leaf(black_box(&x)),
                    false => tape.constant(black_box(&x)),
                };
                let grads = x.conv2d(w, Some(b), options).sum().backward();
                black_box(grads.len());
                tape.recycle(grads);
            })
        });
    }
    group.finish();
}

fn pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("max_pool2d");
    group.sample_size(20);
    for (name, [ch, h, w]) in POOLS {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = tensor::uniform(&[BATCH, ch, h, w], 0.0, 1.0, &mut rng).unwrap();
        let mut tape = Tape::new();
        group.throughput(Throughput::Elements(x.len() as u64));
        group.bench_function(format!("forward/{name}/batch_{BATCH}"), |bench| {
            bench.iter(|| {
                tape.reset();
                let y = tape
                    .constant(black_box(&x))
                    .max_pool2d([2, 2], [2, 2], [0, 0]);
                black_box(y.shape())
            })
        });
        group.bench_function(format!("forward_backward/{name}/batch_{BATCH}"), |bench| {
            bench.iter(|| {
                tape.reset();
                let x = tape.leaf(black_box(&x));
                let grads = x.max_pool2d([2, 2], [2, 2], [0, 0]).sum().backward();
                black_box(grads.len());
                tape.recycle(grads);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conv, pool);

fn main() {
    let threads = tapegrad::num_threads();
    println!("{}", peak::Peak::measure(threads).unwrap().describe());
    println!(
        "conv2d throughput is in FLOP (2 per multiply-add; forward_backward adds the weight's \
         and, for conv2, the input's gradient): elem/s are FLOP/s, and thrpt / peak GFLOP/s \
         is the fraction of peak ({threads} threads); max_pool2d throughput is in input elements"
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
