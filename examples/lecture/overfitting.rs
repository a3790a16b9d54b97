//! `overfitting`: a big MLP on a small training set learns it by heart (train accuracy
//! near 100%) and does much worse on unseen images; L2, dropout and above all more data
//! shrink the gap between train and test accuracy.

use super::common::{Budget, Plot, Res, Run, Table, at_least, fashion, num, pct, train};
use super::dropout::net_with_input_dropout;
use std::path::Path;
use tapegrad::prelude::*;

/// λ of the lecture's `cost + λ·Σ W²`.
pub const LAMBDA: f32 = 0.03;

/// `(setup, train accuracy, test accuracy, run)`.
pub struct Outcome {
    /// The runs: none, L2, dropout, more data.
    pub runs: Vec<(String, f64, f64, Run)>,
    /// The Markdown table.
    pub table: Table,
}

impl Outcome {
    /// Train − test accuracy of the setup whose name starts with `prefix`.
    pub fn gap(&self, prefix: &str) -> f64 {
        let r = self
            .runs
            .iter()
            .find(|r| r.0.starts_with(prefix))
            .expect("setup");
        r.1 - r.2
    }
}

/// Dropout probability on the input pixels in the dropout run (Srivastava et al. 2014).
const INPUT_DROPOUT: f32 = 0.2;

/// 784-256-256-10 ReLU, SGD momentum 0.9, lr 0.01, batch 32; the same number of steps for
/// each setup (the larger set gets proportionally fewer epochs).
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (small_n, epochs, more) = budget.pick((200, 25, 5), (500, 150, 10));
    let (big_train, test) = fashion(small_n * more, 2_000, 11)?;
    // a smaller data set gives fewer images: the small set is then a `more`-th of them
    at_least(
        &big_train,
        more,
        &format!("overfitting (a small set and one {more} times as large)"),
    )?;
    let small_n = small_n.min(big_train.len() / more);
    let big_train = big_train.subset(&(0..small_n * more).collect::<Vec<_>>())?;
    let small = big_train.subset(&(0..small_n).collect::<Vec<_>>())?;
    let setups: [(String, bool, f32, bool); 4] = [
        (format!("none ({small_n} images)"), false, 0.0, false),
        (format!("L2, λ = {LAMBDA}"), false, LAMBDA, false),
        (
            format!(
                "dropout, p = {INPUT_DROPOUT} on inputs, {} on hidden units",
                super::dropout::P
            ),
            true,
            0.0,
            false,
        ),
        (
            format!("more data ({} images)", small_n * more),
            false,
            0.0,
            true,
        ),
    ];
    let mut runs = Vec::new();
    for (name, dropout, lambda, more_data) in setups {
        let input = dropout.then_some(INPUT_DROPOUT);
        let mut model = net_with_input_dropout(dropout, input, 0)?;
        let mut sgd = Sgd::new(0.01)?.momentum(0.9)?.l2(lambda)?;
        let (data, e) = if more_data {
            (&big_train, epochs / more)
        } else {
            (&small, epochs)
        };
        let run = train(&mut model, &mut sgd, data, &test, e, 32)?;
        let train_acc = evaluate(&model, data, 1000)?
            .accuracy
            .ok_or("class labels expected")?;
        runs.push((name, train_acc, run.test_accuracy, run));
    }
    let mut table = Table::new(
        &format!(
            "Overfitting: 784-256-256-10 ReLU, SGD momentum 0.9, lr 0.01, batch 32, {} steps each",
            epochs * small_n.div_ceil(32)
        ),
        &[
            "regularization",
            "final train loss",
            "train accuracy",
            "test accuracy",
            "gap",
        ],
    );
    let mut plot = Plot::new(
        "Overfitting: test accuracy during training",
        "fraction of training",
        "test accuracy",
    )
    .legend_lower_right();
    for (name, tr, te, run) in &runs {
        table.row(vec![
            name.clone(),
            num(run.final_loss()),
            pct(*tr),
            pct(*te),
            pct(tr - te),
        ]);
        let n = run.epochs.len() as f64;
        plot.line(
            name.clone(),
            run.epochs.iter().map(|e| (e.0 as f64 / n, e.2)).collect(),
        );
    }
    table.note(format!(
        "Train accuracy is measured in evaluation mode on the set trained on; the test set is {} \
         unseen images. L2 adds 2λ·W to each weight gradient (λ = {LAMBDA}); biases are not decayed.",
        test.len()
    ));
    plot.save(out, "overfitting.svg")?;
    table.save(out, "overfitting")?;
    Ok(Outcome { runs, table })
}
