//! `vanishing-gradients`: per-layer weight-gradient norms at the start of training, for a
//! deep sigmoid net (Xavier init) and a deep ReLU net (He init) of the same shape. σ' ≤ 1/4,
//! so the sigmoid net's gradient shrinks layer by layer toward the input.

use super::common::{Budget, Plot, Res, Table, Unit, fashion, mlp};
use std::path::Path;
use tapegrad::prelude::*;

/// Hidden layers of the deep nets.
pub const DEPTH: usize = 10;

/// Weight-gradient norms per layer, first layer first.
pub struct Outcome {
    /// Sigmoid net.
    pub sigmoid: Vec<f64>,
    /// ReLU net.
    pub relu: Vec<f64>,
    /// The Markdown table.
    pub table: Table,
}

/// Probes both nets on one batch of 256 training images.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let batch = budget.pick(128, 256);
    let (train_set, _) = fashion(batch, 100, 7)?;
    // a smaller data set gives all it has: the table says what was used
    let batch = train_set.len();
    let (x, _) = train_set.full_batch();
    let labels = train_set.labels().ok_or("class labels expected")?;
    let hidden = [64; DEPTH];
    let sig = mlp(
        784,
        &hidden,
        Unit::Act(Activation::Sigmoid),
        Init::XavierUniform { gain: 1.0 },
        0,
    )?;
    let he = Init::KaimingNormal {
        mode: FanMode::FanIn,
        activation: Activation::Relu,
    };
    let relu = mlp(784, &hidden, Unit::Act(Activation::Relu), he, 0)?;
    let sigmoid = diagnostics::probe(&sig, &x, labels, 0.1)?.weight_grad_norms();
    let relu = diagnostics::probe(&relu, &x, labels, 0.1)?.weight_grad_norms();
    let mut table = Table::new(
        &format!(
            "Vanishing gradients: ‖∂L/∂W‖ per layer at initialization, 784-64×{DEPTH}-10, batch of {batch} images"
        ),
        &[
            "layer",
            "sigmoid (Xavier)",
            "÷ last layer",
            "ReLU (He)",
            "÷ last layer",
        ],
    );
    let last = DEPTH;
    for l in 0..=DEPTH {
        table.row(vec![
            if l == DEPTH {
                format!("{} (output)", l + 1)
            } else {
                (l + 1).to_string()
            },
            format!("{:.2e}", sigmoid[l]),
            format!("{:.2e}", sigmoid[l] / sigmoid[last]),
            format!("{:.2e}", relu[l]),
            format!("{:.2e}", relu[l] / relu[last]),
        ]);
    }
    table.note(format!(
        "From the output layer down to layer 1 the sigmoid net's gradient norm falls by a factor \
         {:.0}, the ReLU net's by {:.1}: the sigmoid's derivative is at most 1/4, the ReLU's is 1 \
         where it is active.",
        sigmoid[last] / sigmoid[0],
        relu[last] / relu[0]
    ));
    let mut plot = Plot::new(
        "Gradient norm per layer at initialization",
        "layer (1 = input side)",
        "‖∂L/∂W‖ (log scale)",
    )
    .log_y()
    .legend_lower_right();
    let pts = |v: &[f64]| {
        v.iter()
            .enumerate()
            .map(|(i, &g)| ((i + 1) as f64, g))
            .collect()
    };
    plot.line("sigmoid, Xavier init", pts(&sigmoid));
    plot.line("ReLU, He init", pts(&relu));
    plot.save(out, "vanishing-gradients.svg")?;
    table.save(out, "vanishing-gradients")?;
    Ok(Outcome {
        sigmoid,
        relu,
        table,
    })
}
