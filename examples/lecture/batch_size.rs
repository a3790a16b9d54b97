//! `batch-size`: batch 1 makes the most progress in the first epoch (one step per sample),
//! batch 100 the most per second (matrix products use the cores); the full batch is slowest.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion, mlp, pct, train};
use std::path::Path;
use tapegrad::prelude::*;

/// `(batch size, learning rate, run)` for 1, 100 and the full batch.
pub struct Outcome {
    /// The runs.
    pub runs: Vec<(usize, f32, Run)>,
    /// The Markdown table.
    pub table: Table,
}

/// 784-64-10 ReLU, plain SGD, same epochs for each batch size.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((1_000, 2), (10_000, 5));
    let (train_set, test) = fashion(train_n, 2_000, 4)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = train_set.len();
    let mut runs = Vec::new();
    for (batch, lr) in [(1, 0.002), (100, 0.1), (train_n, 0.5)] {
        let mut model = mlp(784, &[64], Unit::Act(Activation::Relu), Init::default(), 0)?;
        let run = train(
            &mut model,
            &mut Sgd::new(lr)?,
            &train_set,
            &test,
            epochs,
            batch,
        )?;
        runs.push((batch, lr, run));
    }
    let mut table = Table::new(
        &format!("Batch size: 784-64-10 ReLU, SGD, {epochs} epochs on {train_n} images"),
        &[
            "batch",
            "lr",
            "test acc. after epoch 1",
            &format!("after epoch {epochs}"),
            "seconds",
            "samples/s",
        ],
    );
    let mut by_epoch = Plot::new(
        "Batch size: test accuracy per epoch",
        "epoch",
        "test accuracy",
    )
    .legend_lower_right();
    let mut by_time = Plot::new(
        "Batch size: test accuracy against wall time",
        "seconds (log scale)",
        "test accuracy",
    )
    .legend_lower_right()
    .log_x();
    for (batch, lr, run) in &runs {
        let name = if *batch == train_n {
            format!("full ({batch})")
        } else {
            batch.to_string()
        };
        table.row(vec![
            name.clone(),
            lr.to_string(),
            pct(run.epochs.first().map_or(f64::NAN, |e| e.2)),
            pct(run.test_accuracy),
            format!("{:.2}", run.seconds),
            format!("{:.0}", (train_n * epochs) as f64 / run.seconds),
        ]);
        by_epoch.line(format!("batch {name}"), run.accuracy_per_epoch());
        by_time.line(format!("batch {name}"), run.accuracy_per_second());
    }
    table.note("Each batch size gets its own learning rate (smaller batches, noisier gradients, smaller rate). \
         Seconds count training steps only; test accuracy is taken after each epoch.");
    by_epoch.save(out, "batch-size.svg")?;
    by_time.save(out, "batch-size-seconds.svg")?;
    table.save(out, "batch-size")?;
    Ok(Outcome { runs, table })
}
