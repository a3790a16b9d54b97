//! `dropout`: dropout acts at training time only. In training mode each forward pass drops
//! a fresh random half of the hidden units (and scales the rest by 2); in evaluation mode
//! the output is deterministic and equals the same network with the dropout layers removed,
//! i.e. it uses every unit.

use super::common::{Budget, Plot, Res, Run, Table, at_least, fashion, pct, train};
use std::path::Path;
use tapegrad::prelude::*;

/// The drop probability.
pub const P: f32 = 0.5;

/// What was measured.
pub struct Outcome {
    /// Of the first hidden layer's outputs that are non-zero in evaluation mode, the
    /// fraction a training-mode pass sets to 0 (≈ p).
    pub dropped_fraction: f64,
    /// Whether two training-mode passes on the same batch differ.
    pub train_passes_differ: bool,
    /// Whether two evaluation-mode passes are bitwise equal.
    pub eval_passes_equal: bool,
    /// Largest difference between evaluation mode and the net without dropout layers.
    pub max_diff_without_dropout: f32,
    /// The training run (train-mode loss per epoch, eval-mode test accuracy).
    pub run: Run,
    /// Evaluation-mode loss on the training set after training.
    pub eval_train_loss: f64,
    /// The Markdown table.
    pub table: Table,
}

/// 784-256-256-10 ReLU (He init), with dropout `P` after each hidden layer if asked.
pub fn net(with_dropout: bool, seed: u64) -> Res<Sequential> {
    net_with_input_dropout(with_dropout, None, seed)
}

/// [`net`], with dropout of probability `input` on the 784 input pixels too when given (the
/// recipe of Srivastava et al. 2014: about 0.2 on inputs, 0.5 on hidden units).
pub fn net_with_input_dropout(
    with_dropout: bool,
    input: Option<f32>,
    seed: u64,
) -> Res<Sequential> {
    Ok(Sequential::new(layers(784, with_dropout, input, seed)?)?)
}

/// The layers of [`net_with_input_dropout`] on `inputs` input features:
/// `inputs`-256-256-10.
pub fn layers(
    inputs: usize,
    with_dropout: bool,
    input: Option<f32>,
    seed: u64,
) -> Res<Vec<Box<dyn Module>>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut drop_rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let he = Init::KaimingNormal {
        mode: FanMode::FanIn,
        activation: Activation::Relu,
    };
    let mut layers: Vec<Box<dyn Module>> = Vec::new();
    if let Some(p) = input {
        layers.push(Box::new(Dropout::new(p, &mut drop_rng)?));
    }
    let mut width = inputs;
    for h in [256, 256] {
        layers.push(Box::new(Linear::new(width, h, he, &mut rng)?));
        layers.push(Box::new(Relu));
        if with_dropout {
            layers.push(Box::new(Dropout::new(P, &mut drop_rng)?));
        }
        width = h;
    }
    layers.push(Box::new(Linear::new(width, 10, Init::default(), &mut rng)?));
    Ok(layers)
}

/// Copies the parameters of `from` into `to` in order (same Linear layers).
fn copy_params(from: &Sequential, to: &mut Sequential) {
    let mut values = Vec::new();
    from.visit_params(&mut |_, p| values.push(p.value().to_owned()));
    let mut values = values.into_iter();
    to.visit_params_mut(&mut |_, p| {
        p.set_value(values.next().expect("same layers"))
            .expect("same shapes")
    });
}

fn forward(model: &Sequential, x: &Tensor, mode: Mode, upto: usize) -> Tensor {
    let tape = Tape::inference();
    let mut h = tape.constant(x.clone());
    for layer in &model.layers()[..upto] {
        h = layer.forward(h, mode);
    }
    h.value()
}

/// 784-256-256-10 ReLU with dropout 0.5 after each hidden layer, SGD momentum 0.9.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((1_000, 2), (10_000, 10));
    let (train_set, test) = fashion(train_n, 2_000, 10)?;
    // a smaller data set gives all it has
    let train_n = train_set.len();
    at_least(&test, 1, "dropout (its checks run on test images)")?;
    let mut model = net(true, 0)?;
    let mut sgd = Sgd::new(0.02)?.momentum(0.9)?;
    let run = train(&mut model, &mut sgd, &train_set, &test, epochs, 64)?;
    let eval_train_loss = evaluate(&model, &train_set, 1000)?.loss;

    let checked = test.len().min(200);
    let (x, _) = test.subset(&(0..checked).collect::<Vec<_>>())?.full_batch();
    // layers 0..3 = Linear, ReLU, Dropout: of the units active in evaluation mode, how
    // many does a training-mode pass zero?
    let (t1, t2) = (
        forward(&model, &x, Mode::Train, 3),
        forward(&model, &x, Mode::Train, 3),
    );
    let active = forward(&model, &x, Mode::Eval, 3);
    let (mut on, mut dropped) = (0usize, 0usize);
    for (e, t) in active.iter().zip(t1.iter()) {
        if *e != 0.0 {
            on += 1;
            dropped += usize::from(*t == 0.0);
        }
    }
    let dropped_fraction = dropped as f64 / on.max(1) as f64;
    let all = model.len();
    let (e1, e2) = (
        forward(&model, &x, Mode::Eval, all),
        forward(&model, &x, Mode::Eval, all),
    );
    let mut plain = net(false, 0)?;
    copy_params(&model, &mut plain);
    let p = forward(&plain, &x, Mode::Eval, plain.len());
    let max_diff_without_dropout = (&e1 - &p).iter().fold(0f32, |m, d| m.max(d.abs()));
    let train_passes_differ = t1 != t2;
    let eval_passes_equal = e1
        .iter()
        .zip(e2.iter())
        .all(|(a, b)| a.to_bits() == b.to_bits());

    let mut table = Table::new(
        &format!(
            "Dropout (p = {P}): 784-256-256-10 ReLU, SGD momentum 0.9, {epochs} epochs on {train_n} images"
        ),
        &["check", "result"],
    );
    table.row(vec![
        "active hidden outputs zeroed in a training-mode pass".into(),
        pct(dropped_fraction),
    ]);
    table.row(vec![
        "two training-mode passes on the same batch differ".into(),
        train_passes_differ.to_string(),
    ]);
    table.row(vec![
        "two evaluation-mode passes are bitwise equal".into(),
        eval_passes_equal.to_string(),
    ]);
    table.row(vec![
        "largest difference, eval output vs the same net without dropout layers".into(),
        format!("{max_diff_without_dropout:.1e}"),
    ]);
    table.row(vec![
        "training loss, training mode (dropout on), last epoch".into(),
        format!("{:.3}", run.final_loss()),
    ]);
    table.row(vec![
        "training loss, evaluation mode (every unit), after training".into(),
        format!("{eval_train_loss:.3}"),
    ]);
    table.row(vec![
        "test accuracy (evaluation mode)".into(),
        pct(run.test_accuracy),
    ]);
    table.note(
        "Inverted dropout scales the kept units by 1/(1 − p) while training, so evaluation needs no \
         rescaling: it is the plain network.",
    );
    let mut plot = Plot::new(
        "Dropout: training-mode loss and evaluation-mode test accuracy",
        "epoch",
        "value",
    );
    plot.line(
        "training loss (dropout on)",
        run.epochs.iter().map(|e| (e.0 as f64, e.1)).collect(),
    );
    plot.line("test accuracy (dropout off)", run.accuracy_per_epoch());
    plot.save(out, "dropout.svg")?;
    table.save(out, "dropout")?;
    Ok(Outcome {
        dropped_fraction,
        train_passes_differ,
        eval_passes_equal,
        max_diff_without_dropout,
        run,
        eval_train_loss,
        table,
    })
}
