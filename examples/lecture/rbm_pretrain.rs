//! `rbm-pretrain`: the lecture's history of initialization, measured. A deep sigmoid MLP
//! (784-500-500-500-10 in the full budget) is fine-tuned on Fashion-MNIST with the same
//! budget from four starts: (a) small random weights N(0, 0.01²), (b) greedy RBM
//! pre-training of the three hidden layers (a deep belief net, Hinton, Osindero & Teh 2006),
//! (c) Xavier and (d) LSUV. Reported: test accuracy, the per-layer weight-gradient norms at
//! the start of fine-tuning, and the seconds the pre-training itself took, so "too
//! complicated" gets a number.
//!
//! Inputs are pixels / 255 for every start (the RBMs use them as probabilities of binary
//! visible units).

use super::activations::lsuv_init;
use super::common::{Budget, Plot, Res, Table, pct, train};
use std::path::Path;
use tapegrad::prelude::*;

/// What the four starts gave.
pub struct Outcome {
    /// Per start (label, test accuracy, weight-gradient norms per layer at the start of
    /// fine-tuning, first layer first).
    pub starts: Vec<(String, f64, Vec<f64>)>,
    /// Seconds of RBM pre-training.
    pub pretrain_seconds: f64,
    /// The Markdown table.
    pub table: Table,
}

/// Runs the four starts and writes `rbm-pretrain.md` and `rbm-pretrain.svg` under `out`.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (n_train, n_test) = budget.pick((1_000, 2_000), (10_000, 2_000));
    let hidden: Vec<usize> = budget.pick(vec![64; 3], vec![500; 3]);
    let epochs = budget.pick(2, 10);
    let pretrain_epochs = budget.pick(2, 5);
    let batch = 100;
    let (mut train_set, mut test_set) = super::common::fashion_raw(n_train, n_test, 3)?;
    // a smaller data set gives all it has: the table says what was used
    let n_train = train_set.len();
    let bytes = Scaler::affine(784, 1.0 / 255.0, 0.0)?;
    train_set.set_scaler(bytes.clone())?;
    test_set.set_scaler(bytes)?;
    let (x, _) = train_set.full_batch();
    let probe_rows: Vec<usize> = (0..train_set.len().min(256)).collect();
    let probe_set = train_set.subset(&probe_rows)?;
    let (probe_x, _) = probe_set.full_batch();
    let probe_labels = probe_set.labels().ok_or("class labels expected")?.to_vec();

    let small = Init::Normal {
        mean: 0.0,
        std: 0.01,
    };
    let starts: [(&str, Init); 4] = [
        ("small random N(0, 0.01²)", small),
        ("RBM pre-training", small),
        ("Xavier", Init::XavierUniform { gain: 1.0 }),
        ("LSUV", Init::Orthogonal { gain: 1.0 }),
    ];
    let mut plot = Plot::new(
        &format!(
            "Deep sigmoid MLP 784-{}-10 on {}: test accuracy per fine-tuning epoch",
            hidden
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join("-"),
            super::common::data_name()
        ),
        "epoch",
        "test accuracy",
    )
    .legend_lower_right();
    let mut table = Table::new(
        &format!(
            "RBM pre-training vs simple inits: sigmoid MLP 784-{}-10, {n_train} training images, \
             {epochs} epochs of SGD (lr 0.1, momentum 0.9, batch {batch})",
            hidden
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join("-")
        ),
        &[
            "start",
            "set-up time",
            "fine-tuning time",
            "test accuracy",
            "‖∂L/∂W‖ layer 1",
            "layer 2",
            "layer 3",
            "output",
        ],
    );
    let mut outcome = Vec::new();
    let mut pretrain_seconds = 0.0;
    for (i, (label, init)) in starts.iter().enumerate() {
        let mut model = sigmoid_mlp(&hidden, *init, 0)?;
        let start = std::time::Instant::now();
        match i {
            1 => {
                let config = RbmConfig {
                    lr: 0.05,
                    batch_size: batch,
                    epochs: pretrain_epochs,
                    ..RbmConfig::practical_guide()
                };
                pretrain(&mut model, &x, &config, &mut |_| {})?;
            }
            3 => lsuv_init(&mut model, &train_set)?,
            _ => {}
        }
        let setup = start.elapsed().as_secs_f64();
        if i == 1 {
            pretrain_seconds = setup;
        }
        let norms = diagnostics::probe(&model, &probe_x, &probe_labels, 0.1)?.weight_grad_norms();
        let mut sgd = Sgd::new(0.1)?.momentum(0.9)?;
        let run = train(&mut model, &mut sgd, &train_set, &test_set, epochs, batch)?;
        plot.line(*label, run.accuracy_per_epoch());
        let mut row = vec![
            label.to_string(),
            format!("{setup:.1} s"),
            format!("{:.1} s", run.seconds),
            pct(run.test_accuracy),
        ];
        row.extend(norms.iter().map(|&n| format!("{n:.1e}")));
        table.row(row);
        outcome.push((label.to_string(), run.test_accuracy, norms));
    }
    table.note(format!(
        "Pre-training: one RBM per hidden layer, CD-1, lr 0.05, momentum 0.5 → 0.9, weight cost \
         2e-4, {pretrain_epochs} epochs each, on the previous layer's hidden probabilities; it \
         took {pretrain_seconds:.1} s. Gradient norms on 256 training images before the first \
         step of fine-tuning; all four fine-tune for {epochs} epochs alike."
    ));
    table.save(out, "rbm-pretrain")?;
    plot.save(out, "rbm-pretrain.svg")?;
    Ok(Outcome {
        starts: outcome,
        pretrain_seconds,
        table,
    })
}

/// `784 → hidden… → 10` with sigmoid hidden units, weights drawn by `init`, biases zero.
fn sigmoid_mlp(hidden: &[usize], init: Init, seed: u64) -> Res<Sequential> {
    super::common::mlp(
        784,
        hidden,
        super::common::Unit::Act(Activation::Sigmoid),
        init,
        seed,
    )
}
