//! The speed benchmarks' fraction-of-peak tooling (examples/support/peak.rs and flops.rs):
//! FLOP per sample of workloads W1 and W2 counted by hand, and the FMA probe's sanity on a
//! short run.

#[path = "../examples/support/flops.rs"]
mod flops;
#[path = "../examples/support/peak.rs"]
mod peak;
#[path = "../examples/support/w1.rs"]
mod w1;
#[path = "../examples/support/w2.rs"]
mod w2;

use peak::{Isa, Peak};
use std::time::{Duration, Instant};
use tapegrad::prelude::*;

#[test]
fn w1_flop_per_sample_as_counted_by_hand() {
    let model = w1::w1(&mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let flops = flops::count(&model, &[784]).unwrap();
    // multiply-adds of the three products, one sample
    let macs = [784 * 256, 256 * 256, 256 * 10];
    let forward = 2 * (macs[0] + macs[1] + macs[2]);
    assert_eq!(flops.forward, forward);
    assert_eq!(flops.weight_grad, forward);
    // no input gradient for the first layer: its input is the data
    assert_eq!(flops.input_grad, 2 * (macs[1] + macs[2]));
    assert_eq!(flops.inference(), forward);
    assert_eq!(flops.training(), 2 * forward + 2 * (macs[1] + macs[2]));
    // the figure: about 1.21 MFLOP per training sample
    assert!((flops.training() as f64 / 1.21e6 - 1.0).abs() < 0.005);
    assert!(
        flops
            .describe()
            .starts_with("1,211,392 FLOP per training sample")
    );
}

#[test]
fn w2_flop_per_sample_as_counted_by_hand() {
    let model = w2::w2(false, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let flops = flops::count(&model, &[1, 28, 28]).unwrap();
    // out_h·out_w·Cout·Cin·kh·kw for the convolutions (3×3, pad 1: 28×28, then 14×14 after
    // the first pooling), in·out for the two Linear layers
    let macs = [
        28 * 28 * 32 * 9,
        14 * 14 * 64 * 32 * 9,
        3136 * 128,
        128 * 10,
    ];
    let forward: u64 = 2 * macs.iter().sum::<u64>();
    assert_eq!(flops.forward, forward);
    assert_eq!(flops.weight_grad, forward);
    assert_eq!(flops.input_grad, 2 * (macs[1] + macs[2] + macs[3]));
    // the figures: about 8.5 MFLOP forward, 25 MFLOP per training sample
    assert!((flops.inference() as f64 / 8.5e6 - 1.0).abs() < 0.01);
    assert!((flops.training() as f64 / 25e6 - 1.0).abs() < 0.01);
    // batch norm adds no matrix work
    let with_bn = w2::w2(true, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    assert_eq!(flops::count(&with_bn, &[1, 28, 28]).unwrap(), flops);
}

#[test]
fn the_first_weighted_layer_gets_no_input_gradient_wherever_it_is() {
    let model = Sequential::new(vec![
        Box::new(Relu),
        Box::new(Linear::from_parts(tensor::ones(&[3, 4]), None).unwrap()),
        Box::new(Linear::from_parts(tensor::ones(&[2, 3]), None).unwrap()),
    ])
    .unwrap();
    let flops = flops::count(&model, &[4]).unwrap();
    assert_eq!(flops.forward, 2 * (12 + 6));
    assert_eq!(flops.input_grad, 2 * 6);
}

#[test]
fn flops_refuse_a_layer_they_cannot_count_and_a_wrong_sample_shape() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let maxout = Sequential::new(vec![Box::new(
        Maxout::new(4, 2, 3, Init::default(), &mut rng).unwrap(),
    )])
    .unwrap();
    let err = flops::count(&maxout, &[4]).unwrap_err().to_string();
    assert!(
        err.starts_with("flops: expected at layer 0 (Maxout("),
        "{err}"
    );
    assert!(
        err.contains("[6, 4]") && err.ends_with("output shape [1, 2]"),
        "{err}"
    );
    let err = flops::count(&w1::w1(&mut rng).unwrap(), &[28, 28])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sequential: expected at layer 0 (Linear("),
        "{err}"
    );
}

#[test]
fn the_probe_gives_a_positive_finite_peak_and_a_fraction_in_0_1() {
    let threads = tapegrad::num_threads();
    let peak = Peak::measure_for(threads, Duration::from_millis(10)).unwrap();
    assert_eq!(peak.isa, Isa::detect());
    assert_eq!(peak.threads, threads);
    for gflops in [peak.gflops, peak.one_thread_gflops] {
        assert!(gflops.is_finite() && gflops > 0.0, "{peak:?}");
    }
    // a share of the run's time, where the system says (Linux)
    assert!(
        peak.waited.is_none_or(|w| (0.0..=1.0).contains(&w)),
        "{peak:?}"
    );
    // one real workload: a 256×256×256 product, best of a few
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let a = tensor::normal(&[256, 256], 0.0, 1.0, &mut rng).unwrap();
    let mut tape = Tape::inference();
    let best = (0..5)
        .map(|_| {
            tape.reset();
            let start = Instant::now();
            let product = tape.constant(&a).matmul(tape.constant(&a));
            std::hint::black_box(product.shape());
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let useful_gflops = 2.0 * 256f64.powi(3) / best / 1e9;
    let fraction = peak.fraction(useful_gflops);
    assert!(fraction > 0.0 && fraction <= 1.0, "{fraction} of {peak:?}");
    assert!(
        peak.describe().starts_with("FMA peak ("),
        "{}",
        peak.describe()
    );
    let json = peak.json_fields();
    assert!(
        json.contains(&format!("\"peak_gflops\": {:.1},", peak.gflops)),
        "{json}"
    );
    assert!(json.contains(&format!(
        "\"threads_add_throughput\": {}",
        peak.threads_add_throughput
    )));
}

#[test]
fn one_thread_always_adds_throughput_and_zero_threads_is_an_error() {
    let peak = Peak::measure_for(1, Duration::from_millis(5)).unwrap();
    assert!(peak.threads_add_throughput);
    assert_eq!(peak.gflops, peak.one_thread_gflops);
    let err = Peak::measure(0).unwrap_err().to_string();
    assert_eq!(err, "fma peak: needs at least 1 thread, got 0");
    let err = Peak::measure_for(1, Duration::from_micros(10)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "fma peak: a timed run must last at least 1 ms, got 10µs"
    );
}
