//! Matrix products through the tape: square sizes, and the six shapes of one training step of
//! the MLP 784-256-256-10 at batch 128 (forward `Y = X·Wᵀ`, backward `dX = dY·W` and
//! `dW = dYᵀ·X`). Throughput is reported in FLOP (2·m·n·k per product), so criterion's
//! `elem/s` are FLOP/s; the FMA peak printed first turns them into a fraction of peak.

#[allow(dead_code)] // the bench prints the probe's peak only
#[path = "../examples/support/peak.rs"]
mod peak;

use criterion::{Criterion, Throughput, criterion_group};
use std::hint::black_box;
use tapegrad::{ChaCha8Rng, SeedableRng, Tape, tensor};

const SQUARE: [usize; 5] = [64, 128, 256, 512, 1024];
const BATCH: usize = 128;
/// (in, out) of the three layers of 784-256-256-10.
const LAYERS: [(usize, usize); 3] = [(784, 256), (256, 256), (256, 10)];

/// How the operands of a product are stored.
#[derive(Clone, Copy)]
enum Layout {
    /// `a: [m, k]`, `b: [k, n]`, both row-major.
    Plain,
    /// `b` stored `[n, k]` and read transposed (a Linear forward, `X·Wᵀ`).
    RhsTransposed,
    /// `a` stored `[k, m]` and read transposed (a weight gradient, `dYᵀ·X`).
    LhsTransposed,
}

/// Times `a·b` for an `[m, k]` by `[k, n]` product stored as `layout` says.
fn bench_product(c: &mut Criterion, id: &str, (m, k, n): (usize, usize, usize), layout: Layout) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (a_shape, b_shape) = match layout {
        Layout::Plain => ([m, k], [k, n]),
        Layout::RhsTransposed => ([m, k], [n, k]),
        Layout::LhsTransposed => ([k, m], [k, n]),
    };
    let a = tensor::normal(&a_shape, 0.0, 1.0, &mut rng).unwrap();
    let b = tensor::normal(&b_shape, 0.0, 1.0, &mut rng).unwrap();
    let mut group = c.benchmark_group("matmul");
    group.throughput(Throughput::Elements((2 * m * n * k) as u64));
    let mut tape = Tape::inference();
    group.bench_function(id, |bench| {
        bench.iter(|| {
            tape.reset();
            let (a, b) = (tape.constant(a.clone()), tape.constant(b.clone()));
            let product = match layout {
                Layout::Plain => a.matmul(b),
                Layout::RhsTransposed => a.matmul(b.transpose()),
                Layout::LhsTransposed => a.transpose().matmul(b),
            };
            black_box(product.shape())
        })
    });
    group.finish();
}

fn square(c: &mut Criterion) {
    for n in SQUARE {
        bench_product(c, &format!("{n}x{n}x{n}"), (n, n, n), Layout::Plain);
    }
}

fn mlp_shapes(c: &mut Criterion) {
    for (fan_in, fan_out) in LAYERS {
        // forward: Y[b, out] = X[b, in] · Wᵀ (W stored [out, in])
        bench_product(
            c,
            &format!("fwd_{BATCH}x{fan_in}x{fan_out}"),
            (BATCH, fan_in, fan_out),
            Layout::RhsTransposed,
        );
        // backward: dX[b, in] = dY[b, out] · W[out, in]
        bench_product(
            c,
            &format!("dx_{BATCH}x{fan_out}x{fan_in}"),
            (BATCH, fan_out, fan_in),
            Layout::Plain,
        );
        // backward: dW[out, in] = dYᵀ[out, b] · X[b, in]
        bench_product(
            c,
            &format!("dw_{fan_out}x{BATCH}x{fan_in}"),
            (fan_out, BATCH, fan_in),
            Layout::LhsTransposed,
        );
    }
}

criterion_group!(benches, square, mlp_shapes);

fn main() {
    let threads = tapegrad::num_threads();
    println!("{}", peak::Peak::measure(threads).unwrap().describe());
    println!(
        "matmul throughput is in FLOP (2·m·n·k per product): elem/s are FLOP/s, and \
         thrpt / peak GFLOP/s is the fraction of peak; products of 2^21 multiply-adds or more \
         use {threads} threads, smaller ones one (compare those with the 1-thread peak)"
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
