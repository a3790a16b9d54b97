//! `zero-init`: with every weight and bias 0, all units of a layer compute the same thing
//! and get the same gradient, so they stay identical forever (the symmetry never breaks)
//! and the net is no better than one unit per layer; with ReLU nothing below the output
//! layer moves at all. Random init breaks the symmetry and learns.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion, mlp, pct, train};
use std::path::Path;
use tapegrad::prelude::*;

/// One row per setup.
pub struct Outcome {
    /// `(label, distinct first-layer weight rows, run)`.
    pub runs: Vec<(String, usize, Run)>,
    /// The Markdown table.
    pub table: Table,
}

/// Number of distinct rows (hidden units) in the first layer's weight, up to 1e-6.
pub fn distinct_units(model: &Sequential) -> usize {
    let mut weight = None;
    model.visit_params(&mut |name, p| {
        if name == "0.weight" {
            weight = Some(p.value().to_owned());
        }
    });
    let w = weight.expect("first layer weight");
    let rows: Vec<Vec<f32>> = w
        .outer_iter()
        .map(|r| r.iter().copied().collect())
        .collect();
    let mut distinct: Vec<&Vec<f32>> = Vec::new();
    for r in &rows {
        if !distinct
            .iter()
            .any(|d| d.iter().zip(r).all(|(a, b)| (a - b).abs() <= 1e-6))
        {
            distinct.push(r);
        }
    }
    distinct.len()
}

/// 784-32-32-10, SGD with momentum, zero vs random init.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((2_000, 3), (10_000, 5));
    let (train_set, test) = fashion(train_n, 2_000, 6)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = train_set.len();
    let zero = Init::Constant { value: 0.0 };
    let setups = [
        ("zeros, sigmoid", Activation::Sigmoid, zero),
        ("zeros, ReLU", Activation::Relu, zero),
        (
            "random (Xavier), sigmoid",
            Activation::Sigmoid,
            Init::XavierUniform { gain: 1.0 },
        ),
        (
            "random (He), ReLU",
            Activation::Relu,
            Init::KaimingNormal {
                mode: tapegrad::FanMode::FanIn,
                activation: Activation::Relu,
            },
        ),
    ];
    let mut runs = Vec::new();
    for (label, act, init) in setups {
        let mut model = mlp(784, &[32, 32], Unit::Act(act), init, 0)?;
        let mut sgd = Sgd::new(0.01)?.momentum(0.9)?;
        let run = train(&mut model, &mut sgd, &train_set, &test, epochs, 32)?;
        runs.push((label.to_string(), distinct_units(&model), run));
    }
    let mut table = Table::new(
        &format!(
            "Zero init: 784-32-32-10, SGD momentum 0.9, lr 0.01, {epochs} epochs on {train_n} images"
        ),
        &[
            "init, activation",
            "distinct units in layer 1 (of 32)",
            "final train loss",
            "test accuracy",
        ],
    );
    let mut plot = Plot::new(
        "Zero vs random init: test accuracy per epoch",
        "epoch",
        "test accuracy",
    )
    .legend_lower_right();
    for (label, distinct, run) in &runs {
        table.row(vec![
            label.clone(),
            distinct.to_string(),
            format!("{:.3}", run.final_loss()),
            pct(run.test_accuracy),
        ]);
        plot.line(label.clone(), run.accuracy_per_epoch());
    }
    table.note(
        "With zeros, sigmoid units all output 1/2 and receive the same gradient, so layer 1 keeps a \
         single distinct unit after training; ReLU units output 0 and pass no gradient, so only the \
         output bias learns (the class prior).",
    );
    plot.save(out, "zero-init.svg")?;
    table.save(out, "zero-init")?;
    Ok(Outcome { runs, table })
}
