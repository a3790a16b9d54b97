//! `dying-relu`: after training with a large learning rate, many ReLU units output 0 for
//! every input (dead: no gradient reaches them, so they never come back); leaky ReLU and
//! ELU units keep a gradient on the negative side and stay alive.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion, mlp, num, pct, train};
use std::path::Path;
use tapegrad::{Activation, FanMode, Init, Sgd, diagnostics};

/// The learning rates: a normal one and a large one.
pub const RATES: [f32; 3] = [0.01, 0.03, 0.1];

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

/// 784-128-128-128-10, He init, SGD momentum 0.9, batch 32; dead units counted on 1,000
/// test images after training.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((1_000, 1), (10_000, 3));
    let (train_set, test) = fashion(train_n, 1_000, 9)?;
    let (x, _) = test.full_batch();
    let mut runs = Vec::new();
    for act in UNITS {
        for lr in RATES {
            let he = Init::KaimingNormal {
                mode: FanMode::FanIn,
                activation: Activation::Relu,
            };
            let mut model = mlp(784, &[128; 3], Unit::Act(act), he, 0)?;
            let mut sgd = Sgd::new(lr)?.momentum(0.9)?;
            let run = train(&mut model, &mut sgd, &train_set, &test, epochs, 32)?;
            let stats = diagnostics::activation_stats(&model, &x)?;
            // the activation layers are the odd ones; all have 128 units
            let acts: Vec<f64> = stats
                .iter()
                .skip(1)
                .step_by(2)
                .take(3)
                .map(|s| s.dead_fraction)
                .collect();
            let dead = acts.iter().sum::<f64>() / acts.len() as f64;
            runs.push((Unit::Act(act).name(), lr, dead, run));
        }
    }
    let mut table = Table::new(
        &format!(
            "Dying ReLU: 784-128×3-10, He init, SGD momentum 0.9, batch 32, {epochs} epochs on {train_n} images"
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
    table.note(
        "A unit is dead when its output is the same for all 1,000 test images (max − min ≤ 1e-6; \
         `diagnostics::DEAD_TOLERANCE`). For a ReLU that means it is 0 for every input, so it passes \
         no gradient and cannot recover. \
         \"diverged\": the loss became non-finite and training stopped there (units are counted on \
         the last finite parameters). ELU units saturate at −α for very negative inputs, where \
         their gradient α·eˣ is tiny; those count as dead too.",
    );
    let mut plot = Plot::new(
        "Dying ReLU: dead hidden units against learning rate",
        "learning rate (log scale)",
        "fraction of dead hidden units",
    )
    .log_x();
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
    table.save(out, "dying-relu")?;
    Ok(Outcome { runs, table })
}
