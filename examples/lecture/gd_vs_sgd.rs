//! `gd-vs-sgd`: full-batch gradient descent takes one step per epoch, mini-batch SGD
//! takes hundreds; per epoch SGD is far ahead, and per second too.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion, mlp, pct, train};
use std::path::Path;
use tapegrad::prelude::*;

/// The two runs.
pub struct Outcome {
    /// Full-batch GD.
    pub gd: Run,
    /// Mini-batch SGD (batch 32).
    pub sgd: Run,
    /// Epochs given to SGD (GD gets ten times as many).
    pub sgd_epochs: usize,
    /// The Markdown table.
    pub table: Table,
}

/// 784-64-10 ReLU: GD with lr 0.5 for `10·E` epochs, SGD (batch 32, lr 0.05) for `E`.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, sgd_epochs) = budget.pick((1_000, 2), (10_000, 5));
    let (train_set, test) = fashion(train_n, 2_000, 3)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = train_set.len();
    let model = || mlp(784, &[64], Unit::Act(Activation::Relu), Init::default(), 0);
    let gd = train(
        &mut model()?,
        &mut Sgd::gd(0.5)?,
        &train_set,
        &test,
        10 * sgd_epochs,
        train_n,
    )?;
    let sgd = train(
        &mut model()?,
        &mut Sgd::new(0.05)?,
        &train_set,
        &test,
        sgd_epochs,
        32,
    )?;
    let mut table = Table::new(
        &format!("GD vs SGD: 784-64-10 ReLU on {train_n} images"),
        &[
            "method",
            "epochs",
            "steps",
            &format!("train loss at epoch {sgd_epochs}"),
            "final train loss",
            "test accuracy",
            "seconds",
        ],
    );
    let at = |r: &Run, e: usize| r.epochs.get(e - 1).map_or(f64::NAN, |x| x.1);
    for (name, r, epochs, steps) in [
        (
            "full-batch GD, lr 0.5",
            &gd,
            10 * sgd_epochs,
            10 * sgd_epochs,
        ),
        (
            "mini-batch SGD, batch 32, lr 0.05",
            &sgd,
            sgd_epochs,
            sgd_epochs * train_n.div_ceil(32),
        ),
    ] {
        table.row(vec![
            name.into(),
            epochs.to_string(),
            steps.to_string(),
            format!("{:.3}", at(r, sgd_epochs)),
            format!("{:.3}", r.final_loss()),
            pct(r.test_accuracy),
            format!("{:.2}", r.seconds),
        ]);
    }
    table.note(
        "GD gets ten times the epochs of SGD; one GD epoch is one step on the exact gradient.",
    );
    let per_epoch = |r: &Run| r.epochs.iter().map(|e| (e.0 as f64, e.1)).collect();
    let per_second = |r: &Run| r.epochs.iter().map(|e| (e.3, e.1)).collect();
    let mut plot = Plot::new(
        "GD vs SGD: training loss per epoch",
        "epoch",
        "mean training loss",
    );
    plot.line("full-batch GD", per_epoch(&gd));
    plot.line("mini-batch SGD", per_epoch(&sgd));
    plot.save(out, "gd-vs-sgd.svg")?;
    let mut plot = Plot::new(
        "GD vs SGD: training loss against wall time",
        "seconds",
        "mean training loss",
    );
    plot.line("full-batch GD", per_second(&gd));
    plot.line("mini-batch SGD", per_second(&sgd));
    plot.save(out, "gd-vs-sgd-seconds.svg")?;
    table.save(out, "gd-vs-sgd")?;
    Ok(Outcome {
        gd,
        sgd,
        sgd_epochs,
        table,
    })
}
