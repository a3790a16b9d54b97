//! `learning-rate`: a too-large learning rate oscillates or diverges, a too-small one
//! crawls, a good one converges, and the too-large one with decay converges too.
//! Softmax regression plus one hidden layer on Fashion-MNIST, plain SGD.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion, mlp, num, pct, train};
use std::path::Path;
use tapegrad::prelude::*;

/// Base learning rates: too large, good, too small.
pub const LARGE: f32 = 0.5;
/// A rate that works.
pub const GOOD: f32 = 0.05;
/// A rate that crawls.
pub const SMALL: f32 = 0.0005;
/// Inverse-time decay `lr_t = lr₀ / (1 + k·t)` per step for the large rate.
pub const DECAY_K: f32 = 0.1;

/// The four runs.
pub struct Outcome {
    /// `(label, run)` for large, large + decay, good, small.
    pub runs: Vec<(String, Run)>,
    /// The Markdown table.
    pub table: Table,
}

impl Outcome {
    /// The run with this label prefix.
    pub fn get(&self, prefix: &str) -> &Run {
        &self
            .runs
            .iter()
            .find(|(l, _)| l.starts_with(prefix))
            .expect("label")
            .1
    }
}

/// Mean of the last quarter of the step losses (the end of the curve), infinite after a
/// divergence.
pub fn tail_loss(run: &Run) -> f64 {
    if run.diverged || run.step_losses.is_empty() {
        return f64::INFINITY;
    }
    let n = run.step_losses.len();
    let tail = &run.step_losses[n - n / 4 - 1..];
    tail.iter().sum::<f64>() / tail.len() as f64
}

/// Trains 784-64-10 (ReLU) with each rate.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((1_000, 2), (10_000, 4));
    let (train_set, test) = fashion(train_n, 2_000, 1)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = train_set.len();
    let decay = Schedule::new(Decay::InverseTime { k: DECAY_K }, DecayUnit::Step)?;
    let setups = [
        (format!("too large: lr {LARGE}"), Sgd::new(LARGE)?),
        (
            format!("large + decay: lr {LARGE}/(1+{DECAY_K}·t)"),
            Sgd::new(LARGE)?.schedule(decay),
        ),
        (format!("good: lr {GOOD}"), Sgd::new(GOOD)?),
        (format!("too small: lr {SMALL}"), Sgd::new(SMALL)?),
    ];
    let mut runs = Vec::new();
    for (label, mut sgd) in setups {
        let mut model = mlp(784, &[64], Unit::Act(Activation::Relu), Init::default(), 0)?;
        let run = train(&mut model, &mut sgd, &train_set, &test, epochs, 32)?;
        runs.push((label, run));
    }
    let mut table = Table::new(
        &format!(
            "Learning rate: 784-64-10 ReLU, plain SGD, batch 32, {epochs} epochs on {train_n} images"
        ),
        &[
            "schedule",
            "first loss",
            "end loss (last ¼ of steps)",
            "diverged",
            "test accuracy",
        ],
    );
    let mut plot = Plot::new(
        "Learning rate: training loss per step",
        "step",
        "loss (mean of 20 steps; above 4 drawn at 4)",
    )
    .clip_y(0.0, 4.0);
    for (label, run) in &runs {
        table.row(vec![
            label.clone(),
            format!(
                "{:.3}",
                run.step_losses.first().copied().unwrap_or(f64::NAN)
            ),
            num(tail_loss(run)),
            if run.diverged {
                "yes".into()
            } else {
                "no".into()
            },
            pct(run.test_accuracy),
        ]);
        plot.line(label.clone(), run.smoothed_steps(20));
    }
    table.note(format!(
        "\"end loss\" is the mean step loss over the last quarter of training (∞ when the loss became \
         non-finite and training stopped). Decay is inverse-time per step, lr_t = lr₀/(1 + {DECAY_K}·t)."
    ));
    plot.save(out, "learning-rate.svg")?;
    table.save(out, "learning-rate")?;
    Ok(Outcome { runs, table })
}
