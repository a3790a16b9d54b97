//! `preprocessing`: the same model on the same images, but each pixel measured in its own
//! unit (scaled by `10^u`, `u ~ U(−3, 3)`, so scales differ by up to 10⁶): raw, no
//! learning rate trains it well; standardized (zero mean, unit variance per feature),
//! ordinary rates do.

use super::common::{Budget, Plot, Res, Run, Table, Unit, fashion_raw, mlp, num, pct, train};
use std::path::Path;
use tapegrad::ndarray::Array2;
use tapegrad::prelude::*;

/// Learning rates tried for both.
pub const RATES: [f32; 5] = [0.1, 0.01, 1e-3, 1e-4, 1e-5];

/// Per learning rate: (lr, raw run, standardized run).
pub struct Outcome {
    /// The runs.
    pub runs: Vec<(f32, Run, Run)>,
    /// The Markdown table.
    pub table: Table,
}

impl Outcome {
    /// Best test accuracy over the rates: (raw, standardized).
    pub fn best(&self) -> (f64, f64) {
        let best = |f: fn(&(f32, Run, Run)) -> f64| self.runs.iter().map(f).fold(0.0, f64::max);
        (best(|r| r.1.test_accuracy), best(|r| r.2.test_accuracy))
    }
}

fn rescaled(data: &Dataset, factors: &[f32]) -> Res<Dataset> {
    let (x, _) = data.full_batch();
    let labels = data.labels().ok_or("class labels expected")?;
    let x = x.into_dimensionality::<tapegrad::ndarray::Ix2>()?;
    let x = Array2::from_shape_fn(x.dim(), |(i, j)| x[[i, j]] / 255.0 * factors[j]);
    Ok(Dataset::from_floats(x, labels.to_vec())?.with_num_classes(10)?)
}

/// 784-64-10 ReLU, plain SGD, batch 32.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((1_000, 2), (10_000, 5));
    let (raw_train, raw_test) = fashion_raw(train_n, 2_000, 5)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = raw_train.len();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let exponents = tensor::uniform(&[784], -3.0, 3.0, &mut rng)?;
    let factors: Vec<f32> = exponents.iter().map(|u| 10f32.powf(*u)).collect();
    let (train_raw, test_raw) = (
        rescaled(&raw_train, &factors)?,
        rescaled(&raw_test, &factors)?,
    );
    let scaler = Scaler::standardize(&train_raw)?;
    let (mut train_std, mut test_std) = (train_raw.clone(), test_raw.clone());
    train_std.set_scaler(scaler.clone())?;
    test_std.set_scaler(scaler)?;
    let mut runs = Vec::new();
    for lr in RATES {
        let go = |tr: &Dataset, te: &Dataset| -> Res<Run> {
            let mut model = mlp(784, &[64], Unit::Act(Activation::Relu), Init::default(), 0)?;
            let mut sgd = Sgd::new(lr)?;
            train(&mut model, &mut sgd, tr, te, epochs, 32)
        };
        let raw = go(&train_raw, &test_raw)?;
        let std = go(&train_std, &test_std)?;
        runs.push((lr, raw, std));
    }
    let mut table = Table::new(
        &format!(
            "Preprocessing: 784-64-10 ReLU, plain SGD, batch 32, {epochs} epochs on {train_n} images whose pixels are scaled by 10^U(−3,3)"
        ),
        &[
            "lr",
            "raw: final train loss",
            "raw: test accuracy",
            "standardized: final train loss",
            "standardized: test accuracy",
        ],
    );
    let mut plot = Plot::new(
        "Preprocessing: training loss per epoch",
        "epoch",
        "mean training loss (log scale)",
    )
    .log_y();
    let cell = |r: &Run| {
        if r.diverged {
            "diverged".to_string()
        } else {
            num(r.final_loss())
        }
    };
    for (lr, raw, std) in &runs {
        table.row(vec![
            lr.to_string(),
            cell(raw),
            pct(raw.test_accuracy),
            cell(std),
            pct(std.test_accuracy),
        ]);
        let curve = |r: &Run| r.epochs.iter().map(|e| (e.0 as f64, e.1)).collect();
        plot.line(format!("raw, lr {lr}"), curve(raw));
        plot.line(format!("standardized, lr {lr}"), curve(std));
    }
    let best = |f: fn(&(f32, Run, Run)) -> f64| runs.iter().map(f).fold(0.0, f64::max);
    let (raw, std) = (best(|r| r.1.test_accuracy), best(|r| r.2.test_accuracy));
    let diverged = if runs.iter().any(|r| r.1.diverged || r.2.diverged) {
        " (\"diverged\": the loss became non-finite)"
    } else {
        ""
    };
    table.note(format!(
        "Best test accuracy over the rates: raw {}, standardized {}. On the raw features one rate \
         is too large for the large-scale pixels and too small for the small-scale ones at once{diverged}.",
        pct(raw),
        pct(std)
    ));
    plot.save(out, "preprocessing.svg")?;
    table.save(out, "preprocessing")?;
    Ok(Outcome { runs, table })
}
