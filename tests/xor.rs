//! The XOR example's claims, through its own code path: the perceptron gets at most 3 of 4,
//! the MLP gets 4 of 4 with loss below 0.01 within the example's 2,000 steps, and the same
//! seed gives bit-identical results.

#[path = "../examples/xor.rs"]
mod xor;

use xor::{Config, train_mlp, train_perceptron};

#[test]
fn perceptron_cannot_learn_xor() {
    for seed in 0..5 {
        let config = Config {
            seed,
            steps: 5_000,
            ..Config::default()
        };
        let outcome = train_perceptron(&config);
        assert!(outcome.correct <= 3, "seed {seed}: {outcome:?}");
    }
}

#[test]
fn mlp_learns_xor_with_backpropagation() {
    let outcome = train_mlp(&Config::default());
    assert_eq!(outcome.correct, 4, "{outcome:?}");
    let (step, loss) = *outcome.losses.last().unwrap();
    assert_eq!(step, 2_000);
    assert!(loss < 0.01, "loss {loss}");
    // the loss falls from chance level (ln 2 ≈ 0.693)
    assert!(outcome.losses[0].1 > 0.5);
}

#[test]
fn same_seed_gives_bit_identical_training() {
    let config = Config {
        steps: 300,
        ..Config::default()
    };
    let bits = |o: xor::Outcome| -> Vec<u32> {
        let losses = o.losses.iter().map(|(_, l)| l.to_bits());
        losses
            .chain(o.outputs.iter().map(|x| x.to_bits()))
            .collect()
    };
    assert_eq!(bits(train_mlp(&config)), bits(train_mlp(&config)));
    let other = Config { seed: 1, ..config };
    assert_ne!(bits(train_mlp(&config)), bits(train_mlp(&other)));
}
