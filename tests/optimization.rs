//! The lecture's learning-rate claims on an ill-conditioned quadratic
//! `L(w) = ½·(1·w₁² + 100·w₂²)`: gradient descent is stable only for `lr < 2/100`. Just
//! above that, a fixed rate ping-pongs across the steep valley with growing amplitude,
//! while the same rate with inverse-time decay settles; a rate far too small crawls.

use tapegrad::{
    Decay, DecayUnit, Linear, Module, Optimizer, Schedule, Sgd, Tape, Tensor, ndarray::array,
};

/// Runs `steps` of gradient descent from w = (1, 1); returns the loss and w₂ per step.
fn descend(mut sgd: Sgd, steps: usize) -> Vec<(f32, f32)> {
    let mut model = Linear::from_parts(array![[1.0, 1.0]].into_dyn(), None).unwrap();
    let curvature: Tensor = array![[0.5, 50.0]].into_dyn();
    let mut trace = Vec::new();
    for _ in 0..steps {
        let tape = Tape::new();
        let w = tape.param(model.weight());
        let loss = (w.square() * tape.constant(&curvature)).sum();
        trace.push((loss.item(), model.weight().value()[[0, 1]]));
        sgd.step(&mut model, &loss.backward()).unwrap();
    }
    trace
}

#[test]
fn too_large_a_fixed_rate_ping_pongs_and_diverges_decay_settles() {
    let lr = 0.0205; // just above 2/100
    let fixed = descend(Sgd::gd(lr).unwrap(), 300);
    // w₂ changes sign every step (the ping-pong) ...
    assert!(fixed.windows(2).take(50).all(|p| p[0].1 * p[1].1 < 0.0));
    // ... with growing amplitude: the loss ends far above where it started
    let (first, last) = (fixed[0].0, fixed.last().unwrap().0);
    assert!(last > 1000.0 * first, "fixed lr: {first} -> {last}");

    let schedule = Schedule::new(Decay::InverseTime { k: 0.05 }, DecayUnit::Step).unwrap();
    let decayed = descend(Sgd::gd(lr).unwrap().schedule(schedule), 300);
    let last = decayed.last().unwrap().0;
    assert!(last < first / 10.0, "decayed lr: {first} -> {last}");
    assert!(
        decayed.last().unwrap().1.abs() < 1e-3,
        "the steep direction has settled"
    );
}

#[test]
fn a_good_rate_converges_and_a_tiny_one_crawls() {
    let good = descend(Sgd::gd(0.019).unwrap(), 300);
    let tiny = descend(Sgd::gd(1e-5).unwrap(), 300);
    let first = good[0].0;
    assert!(good.last().unwrap().0 < first / 100.0);
    // after the same 300 steps the tiny rate keeps over a quarter of the loss, thousands
    // of times more than the good rate
    let (good_last, tiny_last) = (good.last().unwrap().0, tiny.last().unwrap().0);
    assert!(tiny_last > 0.25 * first, "{tiny_last}");
    assert!(tiny_last > 1000.0 * good_last, "{tiny_last} vs {good_last}");
}

#[test]
fn sgd_state_counts_steps_for_the_schedule() {
    let schedule = Schedule::new(
        Decay::Step {
            every: 2,
            gamma: 0.5,
        },
        DecayUnit::Step,
    )
    .unwrap();
    let mut sgd = Sgd::new(1.0).unwrap().schedule(schedule);
    let mut model = Linear::from_parts(array![[0.0]].into_dyn(), None).unwrap();
    let mut rates = Vec::new();
    for _ in 0..5 {
        rates.push(sgd.lr());
        let tape = Tape::new();
        let loss = tape.param(model.weight()).sum();
        sgd.step(&mut model, &loss.backward()).unwrap();
    }
    assert_eq!(rates, vec![1.0, 1.0, 0.5, 0.5, 0.25]);
    // w = −Σ lr·1
    assert_eq!(model.weight().value()[[0, 0]], -3.25);
    assert_eq!(model.num_params(), 1);
}
