//! `dying-relu`: after training with a large learning rate, many ReLU units output 0 for
//! every input (dead: no gradient reaches them, so they never come back); leaky ReLU units
//! keep a gradient on the negative side and stay alive, while ELU units saturate at −α.
//! Gradients are clipped to a global norm of 1 (PyTorch's `clip_grad_norm_`), so that a
//! large rate shows what its steps do to the units rather than a loss that overflows.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion, mlp, num, pct, train_observed};
use std::path::Path;
use tapegrad::prelude::*;

/// The learning rates, from a normal one to a very large one.
pub const RATES: [f32; 4] = [0.01, 0.1, 0.3, 1.0];

/// The units compared.
pub const UNITS: [Activation; 3] = [
    Activation::Relu,
    Activation::LeakyRelu { slope: 0.01 },
    Activation::Elu { alpha: 1.0 },
];

/// `(unit name, lr, dead fraction over all hidden units, run)`.
pub struct Outcome {
    /// The runs.
    pub runs: Vec<(String, f32, f64, Run)>,
    /// Per unit at the largest rate: `(epoch, dead fraction)` from epoch 0 (the init).
    pub per_epoch: Vec<(String, Vec<(f64, f64)>)>,
    /// The Markdown table.
    pub table: Table,
}

impl Outcome {
    /// The dead fraction of `name` at `lr`.
    pub fn dead(&self, name: &str, lr: f32) -> f64 {
        self.runs
            .iter()
            .find(|r| r.0 == name && r.1 == lr)
            .expect("run")
            .2
    }
}

/// Mean dead fraction of the three activation layers of `model` on the batch `x`.
fn dead_fraction(model: &Sequential, x: &Tensor) -> Res<f64> {
    let stats = diagnostics::activation_stats(model, x)?;
    // the activation layers are the odd ones; all have 128 units
    let acts: Vec<f64> = stats
        .iter()
        .skip(1)
        .step_by(2)
        .take(3)
        .map(|s| s.dead_fraction)
        .collect();
    Ok(acts.iter().sum::<f64>() / acts.len() as f64)
}

/// 784-128-128-128-10, He init, SGD momentum 0.9 with gradients clipped to norm 1, batch
/// 32; dead units counted on 1,000 test images after training.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((1_000, 2), (10_000, 5));
    let (train_set, test) = fashion(train_n, 1_000, 9)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = train_set.len();
    let (x, _) = test.full_batch();
    let mut runs = Vec::new();
    let mut per_epoch = Vec::new();
    for act in UNITS {
        for lr in RATES {
            let he = Init::KaimingNormal {
                mode: FanMode::FanIn,
                activation: Activation::Relu,
            };
            let mut model = mlp(784, &[128; 3], Unit::Act(act), he, 0)?;
            let mut sgd = Sgd::new(lr)?.momentum(0.9)?.clip_grad_norm(1.0)?;
            let mut curve = vec![(0.0, dead_fraction(&model, &x)?)];
            let run = train_observed(
                &mut model,
                &mut sgd,
                &train_set,
                &test,
                epochs,
                32,
                &mut |e, m| {
                    curve.push((e as f64, dead_fraction(m, &x)?));
                    Ok(())
                },
            )?;
            let dead = dead_fraction(&model, &x)?;
            if run.diverged {
                // the epoch it diverged in, on the last finite parameters
                curve.push(((run.epochs.len() + 1) as f64, dead));
            }
            if lr == RATES[RATES.len() - 1] {
                per_epoch.push((Unit::Act(act).name(), curve));
            }
            runs.push((Unit::Act(act).name(), lr, dead, run));
        }
    }
    let mut table = Table::new(
        &format!(
            "Dying ReLU: 784-128×3-10, He init, SGD momentum 0.9, gradient norm clipped to 1, batch 32, {epochs} epochs on {train_n} images"
        ),
        &[
            "activation",
            "lr",
            "dead hidden units",
            "final train loss",
            "test accuracy",
        ],
    );
    for (name, lr, dead, run) in &runs {
        let loss = if run.diverged {
            "diverged".into()
        } else {
            num(run.final_loss())
        };
        table.row(vec![
            name.clone(),
            lr.to_string(),
            pct(*dead),
            loss,
            pct(run.test_accuracy),
        ]);
    }
    table.note(format!(
        "The dead fraction is measured after every epoch with `diagnostics::activation_stats` (second plot). A unit is dead when its output is the same for all {} test images (max − min ≤ 1e-6; \
         `diagnostics::DEAD_TOLERANCE`). For a ReLU that means it is 0 for every input, so it passes \
         no gradient and cannot recover; a leaky ReLU's output still varies with its input on \
         the negative side, and its gradient there is 0.01, so it can come back. Gradients are \
         clipped to a global norm of 1 (`Optim::clip_grad_norm`, PyTorch's `clip_grad_norm_`), \
         so that a large rate shows what its steps do to the units rather than an overflowing \
         loss. \"diverged\": the loss became non-finite and training stopped there (units are counted on \
         the last finite parameters). ELU units saturate at −α for very negative inputs, where \
         their gradient α·eˣ is tiny; those count as dead too.",
        test.len()
    ));
    let mut plot = Plot::new(
        "Dying ReLU: dead hidden units against learning rate",
        "learning rate (log scale)",
        "fraction of dead hidden units",
    )
    .log_x();
    plot.legend = plotters::prelude::SeriesLabelPosition::UpperLeft;
    for act in UNITS {
        let name = Unit::Act(act).name();
        let pts = runs
            .iter()
            .filter(|r| r.0 == name)
            .map(|r| (f64::from(r.1), r.2))
            .collect();
        plot.line(name, pts);
    }
    plot.save(out, "dying-relu.svg")?;
    let large = RATES[RATES.len() - 1];
    let mut by_epoch = Plot::new(
        &format!("Dying ReLU: dead hidden units per epoch at lr {large}"),
        "epoch (0 = initialization; a diverged run ends in the epoch it diverged)",
        "fraction of dead hidden units",
    );
    by_epoch.legend = plotters::prelude::SeriesLabelPosition::LowerRight;
    for (name, curve) in &per_epoch {
        by_epoch.line(name.clone(), curve.clone());
    }
    by_epoch.save(out, "dying-relu-epochs.svg")?;
    table.save(out, "dying-relu")?;
    Ok(Outcome {
        runs,
        per_epoch,
        table,
    })
}
