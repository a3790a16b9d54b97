//! `lr-finder`: the learning-rate range test (`tapegrad::diagnostics::lr_range_test`) sweeps the rate
//! exponentially over a few hundred steps; its suggestion then trains well.

use super::common::{Budget, Plot, Res, Table, Unit, fashion, mlp, num, pct, train};
use std::path::Path;
use tapegrad::diagnostics::{LrRangeConfig, LrRangeTest, lr_range_test};
use tapegrad::prelude::*;

/// The sweep and a check of its suggestion.
pub struct Outcome {
    /// The range test's record.
    pub test: LrRangeTest,
    /// `(lr, final training loss, test accuracy)` for the suggestion, 1/100 of it and 10× the
    /// rate of the lowest loss.
    pub checks: Vec<(f32, f64, f64)>,
    /// The Markdown table.
    pub table: Table,
}

/// Sweeps `1e-5 → 10` on 784-64-10 (ReLU), then trains with the suggestion and two others.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, steps, epochs) = budget.pick((1_000, 100, 2), (10_000, 300, 3));
    let (train_set, test_set) = fashion(train_n, 2_000, 2)?;
    let model = || mlp(784, &[64], Unit::Act(Activation::Relu), Init::default(), 0);
    let config = LrRangeConfig {
        steps,
        batch_size: 32,
        ..LrRangeConfig::default()
    };
    let test = lr_range_test(&mut model()?, &mut Sgd::new(0.1)?, &train_set, &config)?;
    let mut checks = Vec::new();
    for lr in [
        test.suggested_lr,
        test.suggested_lr / 100.0,
        test.min_loss_lr * 10.0,
    ] {
        let run = train(
            &mut model()?,
            &mut Sgd::new(lr)?,
            &train_set,
            &test_set,
            epochs,
            32,
        )?;
        checks.push((lr, run.final_loss(), run.test_accuracy));
    }
    let mut table = Table::new(
        &format!(
            "Learning-rate range test: 784-64-10 ReLU, SGD, batch 32, {} steps from 1e-5 to 10",
            test.lrs.len()
        ),
        &[
            "learning rate",
            "role",
            &format!("train loss after {epochs} epochs"),
            "test accuracy",
        ],
    );
    let roles = [
        "suggested (lr at lowest loss / 10)",
        "suggestion / 100",
        "lowest-loss lr × 10",
    ];
    for ((lr, loss, acc), role) in checks.iter().zip(roles) {
        table.row(vec![
            format!("{lr:.2e}"),
            role.into(),
            num(*loss),
            pct(*acc),
        ]);
    }
    table.note(format!(
        "The sweep's smoothed loss was lowest at lr {:.2e}{}; the suggestion is a tenth of that.",
        test.min_loss_lr,
        if test.stopped_early {
            " and blew up past it, which stopped the sweep"
        } else {
            ""
        }
    ));
    let mut plot = Plot::new(
        "Learning-rate range test",
        "learning rate (log scale)",
        "training loss (clipped at 2× the first)",
    )
    .log_x()
    .clip_y(0.0, 2.0 * test.smoothed[0]);
    let lrs = test.lrs.iter().map(|&l| f64::from(l));
    plot.line(
        "loss per step",
        lrs.clone().zip(test.losses.iter().copied()).collect(),
    );
    plot.line("smoothed", lrs.zip(test.smoothed.iter().copied()).collect());
    plot.line(
        "suggested lr",
        vec![
            (f64::from(test.suggested_lr), 0.0),
            (f64::from(test.suggested_lr), test.smoothed[0]),
        ],
    );
    plot.save(out, "lr-finder.svg")?;
    table.save(out, "lr-finder")?;
    Ok(Outcome {
        test,
        checks,
        table,
    })
}
