//! `activations`: Step, Sigmoid, Tanh, ReLU, LeakyReLU, ELU and Maxout on the same deep
//! MLP, each LSUV-initialized (so every net starts with unit-variance layers), same
//! optimizer and budget: test accuracy and wall time.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion, mlp, pct, train};
use std::path::Path;
use tapegrad::prelude::*;

/// Hidden layers (width 64 each).
pub const DEPTH: usize = 6;

/// Every unit kind the lecture compares.
pub const UNITS: [Unit; 7] = [
    Unit::Act(Activation::Step),
    Unit::Act(Activation::Sigmoid),
    Unit::Act(Activation::Tanh),
    Unit::Act(Activation::Relu),
    Unit::Act(Activation::LeakyRelu { slope: 0.01 }),
    Unit::Act(Activation::Elu { alpha: 1.0 }),
    Unit::Maxout,
];

/// `(unit name, run)` per unit kind, in [`UNITS`] order.
pub struct Outcome {
    /// The runs.
    pub runs: Vec<(String, Run)>,
    /// The Markdown table.
    pub table: Table,
}

impl Outcome {
    /// The run of the unit named `name`.
    pub fn accuracy(&self, name: &str) -> f64 {
        self.runs
            .iter()
            .find(|(n, _)| n == name)
            .expect("unit")
            .1
            .test_accuracy
    }
}

/// LSUV-initializes `model` on the first 256 images of `train`.
pub fn lsuv_init(model: &mut Sequential, train: &Dataset) -> Res<()> {
    let n = train.len().min(256);
    let (batch, _) = train.subset(&(0..n).collect::<Vec<_>>())?.full_batch();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    lsuv(model, &batch, LSUV_TOLERANCE, LSUV_MAX_ITER, &mut rng)?;
    Ok(())
}

/// 784-64×6-10, SGD momentum 0.9, lr 0.01, batch 64.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((1_000, 2), (20_000, 6));
    let (train_set, test) = fashion(train_n, 2_000, 8)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = train_set.len();
    let mut runs = Vec::new();
    for unit in UNITS {
        let mut model = mlp(784, &[64; DEPTH], unit, Init::default(), 0)?;
        lsuv_init(&mut model, &train_set)?;
        let mut sgd = Sgd::new(0.01)?.momentum(0.9)?;
        let run = train(&mut model, &mut sgd, &train_set, &test, epochs, 64)?;
        runs.push((unit.name(), run));
    }
    let mut table = Table::new(
        &format!(
            "Activations: 784-64×{DEPTH}-10, LSUV init, SGD momentum 0.9, lr 0.01, batch 64, {epochs} epochs on {train_n} images"
        ),
        &["activation", "final train loss", "test accuracy", "seconds"],
    );
    let mut plot = Plot::new(
        "Activations: test accuracy per epoch",
        "epoch",
        "test accuracy",
    )
    .legend_lower_right();
    for (name, run) in &runs {
        table.row(vec![
            name.clone(),
            format!("{:.3}", run.final_loss()),
            pct(run.test_accuracy),
            format!("{:.1}", run.seconds),
        ]);
        plot.line(name.clone(), run.accuracy_per_epoch());
    }
    table.note(
        "Step has zero derivative, so only the output layer learns (on random features); the \
         sigmoid's derivative of at most 1/4 slows the deep layers; maxout costs twice the \
         multiply-adds of a ReLU layer of the same width.",
    );
    plot.save(out, "activations.svg")?;
    table.save(out, "activations")?;
    Ok(Outcome { runs, table })
}
