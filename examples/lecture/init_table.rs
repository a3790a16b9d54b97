//! `init-table` and `init-table-cnn`: the analogue of the LSUV paper's table (Mishkin &
//! Matas 2016, CIFAR-10, FitNet4) on Fashion-MNIST, with a deep thin MLP (`init-table`) and
//! with a thin deep FitNet-like convnet plus a batch-normalized row (`init-table-cnn`):
//! initializations against activations, each cell the test accuracy after a fixed budget,
//! printed beside the paper's numbers. Both share the grid, the table and the plot. The MLP
//! table has one more row, greedy RBM pre-training (a deep belief net, Hinton, Osindero &
//! Teh 2006), in the two columns where an RBM can stand for a layer: sigmoid, and tanh
//! through `tanh(x) = 2σ(2x) − 1` (see `pretrain`).

use super::activations::lsuv_init;
use super::common::{
    Budget, Plot, Res, Run, Table, Unit, data_name, fashion, fashion_images, mlp, train,
};
use std::path::Path;
use tapegrad::prelude::*;

/// Hidden layers, each [`WIDTH`] units wide.
pub const DEPTH: usize = 12;
/// Width of each hidden layer.
pub const WIDTH: usize = 64;

/// The initializations, as rows of the MLP table.
pub const INITS: [&str; 5] = ["LSUV", "Orthonormal", "Xavier", "He (MSRA)", "N(0, 0.01)"];

/// The rows of the convnet table: the paper's four initializations, then He with a
/// `BatchNorm2d` after every convolution.
pub const CNN_INITS: [&str; 5] = ["LSUV", "Orthonormal", "Xavier", "He (MSRA)", BATCH_NORM];

/// The batch-normalized row of the convnet table.
pub const BATCH_NORM: &str = "He + BatchNorm";

/// The convnet's 3×3 convolutions, channels per stage; a 2×2 max pool between stages.
pub const CNN_STAGES: [&[usize]; 3] = [&[8, 8], &[16, 16, 16], &[16, 16]];

/// The extra row of the MLP table: RBM pre-training (sigmoid and tanh columns only).
pub const RBM_ROW: &str = "RBM pre-training";

/// Epochs of pre-training per layer in the [`RBM_ROW`], (tiny, full).
pub const RBM_EPOCHS: (usize, usize) = (1, 5);

/// Whether the [`RBM_ROW`] has a cell for `unit`: an RBM's hidden units are binary with
/// sigmoid probabilities, and a tanh unit is the same unit rescaled to `[−1, 1]`; a ReLU,
/// leaky ReLU or maxout layer has no such RBM.
pub fn rbm_applies(unit: Unit) -> bool {
    matches!(
        unit,
        Unit::Act(Activation::Sigmoid) | Unit::Act(Activation::Tanh)
    )
}

/// The activations, as columns.
pub const UNITS: [Unit; 5] = [
    Unit::Maxout,
    Unit::Act(Activation::Relu),
    Unit::Act(Activation::LeakyRelu { slope: 1.0 / 3.0 }),
    Unit::Act(Activation::Tanh),
    Unit::Act(Activation::Sigmoid),
];

/// The paper's CIFAR-10 test accuracies (%), rows as [`INITS`] (no N(0, 0.01) row),
/// columns as [`UNITS`]; `None` = n/c (did not converge) or not reported.
pub const PAPER: [[Option<f64>; 5]; 4] = [
    [Some(93.94), Some(92.11), Some(92.97), Some(89.28), None],
    [Some(93.78), Some(91.74), Some(92.40), Some(89.48), None],
    [Some(91.75), Some(90.63), Some(92.27), Some(89.82), None],
    [None, Some(90.91), Some(92.43), Some(89.54), None],
];

/// Did not converge: the last epoch's mean training loss is not below `0.95·ln 10` (no
/// better than guessing among 10 classes) or is not finite.
pub fn not_converged(run: &Run) -> bool {
    let loss = run.final_loss();
    !(loss.is_finite() && loss < 0.95 * 10f64.ln())
}

/// The grid of runs.
pub struct Outcome {
    /// `cells[init][unit]`.
    pub cells: Vec<Vec<Run>>,
    /// The [`RBM_ROW`] of the MLP table, per unit of [`UNITS`] (`None` where an RBM does not
    /// apply; empty for the convnet table).
    pub rbm: Vec<Option<Run>>,
    /// Seconds of RBM pre-training in all (both columns).
    pub pretrain_seconds: f64,
    /// The Markdown table.
    pub table: Table,
}

fn init_of(name: &str) -> Init {
    match name {
        "LSUV" | "Orthonormal" => Init::Orthogonal { gain: 1.0 },
        "Xavier" => Init::XavierUniform { gain: 1.0 },
        "He (MSRA)" | BATCH_NORM => Init::KaimingNormal {
            mode: FanMode::FanIn,
            activation: Activation::Relu,
        },
        _ => Init::Normal {
            mean: 0.0,
            std: 0.01,
        },
    }
}

fn cell(run: &Run) -> String {
    if not_converged(run) {
        "n/c".into()
    } else {
        format!("{:.2}", 100.0 * run.test_accuracy)
    }
}

/// Trains one net per (row, activation of [`UNITS`]) with the same seed, optimizer (SGD,
/// momentum 0.9, lr 0.01, batch 64) and budget; `build(row, unit)` makes the net, and the
/// `"LSUV"` row is then LSUV-initialized.
fn grid(
    rows: &[&str],
    train_set: &Dataset,
    test: &Dataset,
    epochs: usize,
    build: &dyn Fn(&str, Unit) -> Res<Sequential>,
) -> Res<Vec<Vec<Run>>> {
    let mut cells = Vec::new();
    for &name in rows {
        let mut row = Vec::new();
        for unit in UNITS {
            let mut model = build(name, unit)?;
            if name == "LSUV" {
                lsuv_init(&mut model, train_set)?;
            }
            let mut sgd = Sgd::new(0.01)?.momentum(0.9)?;
            row.push(train(&mut model, &mut sgd, train_set, test, epochs, 64)?);
        }
        cells.push(row);
    }
    Ok(cells)
}

/// 784-64×12-10, SGD momentum 0.9, lr 0.01 (the paper's), batch 64.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, epochs) = budget.pick((600, 1), (10_000, 4));
    let (train_set, test) = fashion(train_n, 2_000, 12)?;
    // a smaller data set gives all it has: the table says what was used
    let train_n = train_set.len();
    let cells = grid(&INITS, &train_set, &test, epochs, &|name, unit| {
        mlp(784, &[WIDTH; DEPTH], unit, init_of(name), 0)
    })?;
    let pretrain_epochs = budget.pick(RBM_EPOCHS.0, RBM_EPOCHS.1);
    let mut pretrain_seconds = 0.0;
    let mut rbm = Vec::new();
    for unit in UNITS {
        if !rbm_applies(unit) {
            rbm.push(None);
            continue;
        }
        let start = std::time::Instant::now();
        let mut model = rbm_pretrained(unit, &train_set, pretrain_epochs)?;
        pretrain_seconds += start.elapsed().as_secs_f64();
        let mut sgd = Sgd::new(0.01)?.momentum(0.9)?;
        rbm.push(Some(train(
            &mut model, &mut sgd, &train_set, &test, epochs, 64,
        )?));
    }
    let report = Report {
        name: "init-table",
        title: format!(
            "Init × activation, test accuracy %: ours ({}, 784-{WIDTH}×{DEPTH}-10, {epochs} epochs on {train_n} images) / paper (CIFAR-10, FitNet4)",
            data_name()
        ),
        rows: &INITS,
        setup: format!(
            "{NOT_CONVERGED} The paper's row \"OrthoNorm-MSRA scaled\" has \
             no analogue here; it has no N(0, 0.01) row (–). Same seed, optimizer (SGD, momentum 0.9, \
             lr 0.01, batch 64) and budget in every cell; biases start at 0; LSUV scales each layer's \
             pre-activation to unit variance on 256 training images. {RBM_ROW} (not in the \
             paper, –): one RBM per hidden layer trained greedily on pixels / 255 and then on the \
             layer below's hidden probabilities (CD-1, lr 0.05, momentum 0.5 → 0.9, weight cost \
             2e-4, batch 100, {pretrain_epochs} epoch(s) per layer; {pretrain_seconds:.1} s for \
             both columns), copied into the Linears and rescaled for the standardized input, the \
             output layer N(0, 0.01); then trained like every other cell. It exists for sigmoid, \
             whose units are an RBM's hidden units, and for tanh, the same units mapped to \
             [−1, 1] by tanh(x) = 2σ(2x) − 1 (weights and biases rescaled, so the tanh net \
             computes 2h − 1 of the sigmoid net's h at every layer); an RBM has no ReLU, very \
             leaky ReLU or maxout hidden units, so those cells are –."
        ),
        ours: format!("an MLP on {} after a few epochs", data_name()),
        plot_title: "Init × activation: test accuracy (n/c plotted as 0.1)",
        extra: Some((RBM_ROW, &rbm)),
    };
    let table = report.write(&cells, out)?;
    Ok(Outcome {
        cells,
        rbm,
        pretrain_seconds,
        table,
    })
}

/// The MLP of the table with `unit` (sigmoid or tanh), its hidden layers pre-trained as
/// RBMs on the training images' pixels / 255 ([`pretrain`], `epochs` per layer), and the
/// first layer rescaled to take the standardized pixels the net is trained on: with
/// `y_i = x_i·scale_i + shift_i` for the pixel byte `x_i`, the RBM's input is
/// `x_i / 255 = (y_i − shift_i) / (255·scale_i)`, so `W·(x/255) + c = W'·y + c'` with
/// `W'_{:,i} = W_{:,i} / (255·scale_i)` and `c' = c − W'·shift`.
fn rbm_pretrained(unit: Unit, train_set: &Dataset, epochs: usize) -> Res<Sequential> {
    let mut model = mlp(784, &[WIDTH; DEPTH], unit, init_of(RBM_ROW), 0)?;
    let bytes = train_set
        .bytes()
        .ok_or("Fashion-MNIST images are stored as bytes")?;
    let pixels = bytes
        .to_shape((train_set.len(), 784))?
        .mapv(|b| Elem::from(b) / 255.0)
        .into_dyn();
    let config = RbmConfig {
        lr: 0.05,
        batch_size: 100,
        epochs,
        ..RbmConfig::practical_guide()
    };
    pretrain(&mut model, &pixels, &config, &mut |_| {})?;
    let scaler = train_set
        .scaler()
        .ok_or("the training set is standardized")?;
    let (scale, shift) = (scaler.scale().to_vec(), scaler.shift().to_vec());
    let mut weight = None;
    model.visit_params_mut(&mut |name, p| {
        if name == "0.weight" {
            let mut w = p.value_mut();
            for mut row in w.rows_mut() {
                for (x, s) in row.iter_mut().zip(&scale) {
                    *x /= 255.0 * s;
                }
            }
            weight = Some(w.to_owned());
        }
    });
    let weight = weight.ok_or("the first layer is a Linear")?;
    model.visit_params_mut(&mut |name, p| {
        if name == "0.bias" {
            let mut c = p.value_mut();
            for (c, row) in c.iter_mut().zip(weight.rows()) {
                *c -= row.iter().zip(&shift).map(|(w, s)| w * s).sum::<Elem>();
            }
        }
    });
    Ok(model)
}

/// Maxout across the channels of a convolution's output, `[N, k·C, H, W] → [N, C, H, W]`:
/// output channel `c` is the maximum of input channels `k·c … k·c + k − 1` at each position
/// (Goodfellow et al. 2013; the paper's Caffe FitNets take an element-wise max of `k`
/// convolutions, which is the same unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelMaxout {
    /// `k`, the channels per output channel.
    pub pieces: usize,
}

impl Module for ChannelMaxout {
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let shape = x.shape();
        assert!(
            shape.len() == 4 && shape[1].is_multiple_of(self.pieces),
            "channel_maxout: expected [N, C, H, W] with C a multiple of {}; x shape {shape:?}",
            self.pieces
        );
        let (n, c, h, w) = (shape[0], shape[1] / self.pieces, shape[2], shape[3]);
        x.reshape(&[n, c, self.pieces, h, w]).max_axis(2)
    }

    tapegrad::walk!();

    fn describe(&self) -> String {
        format!("ChannelMaxout(pieces={})", self.pieces)
    }

    fn output_shape(&self, input: &[usize]) -> tapegrad::Result<Vec<usize>> {
        match *input {
            [n, c, h, w] if c.is_multiple_of(self.pieces) => Ok(vec![n, c / self.pieces, h, w]),
            _ => Err(Error::Shape {
                op: "channel_maxout",
                expected: format!("an input [N, C, H, W] with C a multiple of {}", self.pieces),
                found: format!("{input:?}"),
            }),
        }
    }
}

/// The thin deep FitNet-like convnet for `[1, 28, 28]` images: per stage of
/// [`CNN_STAGES`], 3×3 convolutions (padding 1) each followed by `unit`, a 2×2 max pool
/// between stages, then global average pooling and `Linear(16 → 10)`. A maxout unit is a
/// convolution to twice the channels and [`ChannelMaxout`] with 2 pieces. Weights (the
/// classifier's too) drawn by `init`, biases 0; with `batch_norm`, each convolution has no
/// bias and is followed by a `BatchNorm2d` before its unit.
pub fn convnet(unit: Unit, init: Init, batch_norm: bool, seed: u64) -> Res<Sequential> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pad = Conv2dOptions::default().padding(1);
    let pieces = if unit == Unit::Maxout { 2 } else { 1 };
    let mut layers: Vec<Box<dyn Module>> = Vec::new();
    let mut channels = 1;
    for (stage, widths) in CNN_STAGES.iter().enumerate() {
        if stage > 0 {
            layers.push(Box::new(MaxPool2d::new(2)?));
        }
        for &width in widths.iter() {
            let out = width * pieces;
            if batch_norm {
                layers.push(Box::new(Conv2d::new_no_bias(
                    channels,
                    out,
                    [3, 3],
                    pad,
                    init,
                    &mut rng,
                )?));
                layers.push(Box::new(BatchNorm2d::new(out)?));
            } else {
                let mut conv = Conv2d::new(channels, out, [3, 3], pad, init, &mut rng)?;
                if let Some(bias) = conv.bias_mut() {
                    bias.value_mut().fill(0.0);
                }
                layers.push(Box::new(conv));
            }
            layers.push(match unit {
                Unit::Act(a) => a.layer()?,
                Unit::Maxout => Box::new(ChannelMaxout { pieces }),
            });
            channels = width;
        }
    }
    layers.push(Box::new(AdaptiveAvgPool2d));
    layers.push(Box::new(Flatten));
    let mut classifier = Linear::new(channels, 10, init, &mut rng)?;
    if let Some(bias) = classifier.bias_mut() {
        bias.value_mut().fill(0.0);
    }
    layers.push(Box::new(classifier));
    Ok(Sequential::new(layers)?)
}

/// The table with the thin deep convnet ([`convnet`]) on `[1, 28, 28]` images, rows
/// [`CNN_INITS`]; SGD momentum 0.9, lr 0.01, batch 64, as the MLP table.
pub fn run_cnn(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, test_n, epochs) = budget.pick((256, 100, 1), (6_000, 1_000, 2));
    let (train_set, test) = fashion_images(train_n, test_n, 12)?;
    // a smaller data set gives all it has: the table says what was used
    let (train_n, test_n) = (train_set.len(), test.len());
    let cells = grid(&CNN_INITS, &train_set, &test, epochs, &|name, unit| {
        convnet(unit, init_of(name), name == BATCH_NORM, 0)
    })?;
    let convs: usize = CNN_STAGES.iter().map(|s| s.len()).sum();
    let widths: Vec<String> = CNN_STAGES
        .iter()
        .map(|s| {
            s.iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect();
    let report = Report {
        name: "init-table-cnn",
        title: format!(
            "Init × activation with a thin deep convnet, test accuracy %: ours ({}, {convs} conv layers, {epochs} epochs on {train_n} images) / paper (CIFAR-10, FitNet4)",
            data_name()
        ),
        rows: &CNN_INITS,
        setup: format!(
            "{NOT_CONVERGED} The paper's row \"OrthoNorm-MSRA scaled\" has no analogue here; \
             the paper has no {BATCH_NORM} row (–). The net: 3×3 convolutions with padding 1 of \
             {} channels (stages separated by 2×2 max pooling), global average pooling, \
             Linear(16→10); a maxout unit is a convolution to twice the channels and the max over \
             channel pairs. {BATCH_NORM}: each convolution without bias, then BatchNorm2d, then the \
             unit. Same seed, optimizer (SGD, momentum 0.9, lr 0.01, batch 64) and budget in every \
             cell; pixels standardized with one mean and σ; biases start at 0; LSUV scales each \
             layer's pre-activation (for a convolution over every sample, channel and position) to \
             unit variance on 256 training images; tested on {test_n} images.",
            widths.join(" | ")
        ),
        ours: format!(
            "a thin convnet on {train_n} images of {} after {epochs} epochs",
            data_name()
        ),
        plot_title: "Init × activation, thin deep convnet: test accuracy (n/c plotted as 0.1)",
        extra: None,
    };
    let mut table = report.write(&cells, out)?;
    table.note(batch_norm_note(&cells));
    table.save(out, report.name)?;
    Ok(Outcome {
        cells,
        rbm: Vec::new(),
        pretrain_seconds: 0.0,
        table,
    })
}

/// How the batch-normalized row compares with the LSUV row, and what it costs.
fn batch_norm_note(cells: &[Vec<Run>]) -> String {
    let row = |name: &str| {
        let i = CNN_INITS.iter().position(|r| *r == name).expect("a row");
        &cells[i]
    };
    let (lsuv, he, bn) = (row("LSUV"), row("He (MSRA)"), row(BATCH_NORM));
    let converged = |runs: &[Run]| runs.iter().filter(|r| !not_converged(r)).count();
    let both: Vec<usize> = (0..UNITS.len())
        .filter(|&j| !not_converged(&lsuv[j]) && !not_converged(&bn[j]))
        .collect();
    let mean = |runs: &[Run]| {
        both.iter()
            .map(|&j| 100.0 * runs[j].test_accuracy)
            .sum::<f64>()
            / both.len() as f64
    };
    // time per training step, over the activations that both rows trained to the end (a
    // diverged run stops early)
    let full: Vec<usize> = (0..UNITS.len())
        .filter(|&j| !he[j].diverged && !bn[j].diverged)
        .collect();
    let step_seconds = |runs: &[Run]| {
        let seconds: f64 = full.iter().map(|&j| runs[j].seconds).sum();
        let steps: usize = full.iter().map(|&j| runs[j].step_losses.len()).sum();
        seconds / steps as f64
    };
    let accuracy = if both.is_empty() {
        "no activation converges with both".to_string()
    } else {
        format!(
            "over the {} activations where both converge, mean test accuracy {:.2} with \
             BatchNorm and {:.2} with LSUV",
            both.len(),
            mean(bn),
            mean(lsuv)
        )
    };
    format!(
        "LSUV against batch normalization: {BATCH_NORM} converges with {} of 5 activations, \
         LSUV with {}; {accuracy}. A training step with BatchNorm took {:.0}% longer than \
         without ({:.1} ms against {:.1} ms, He row, over the {} activations both trained to \
         the end; wall time, on a machine that may be busy). The paper reports that LSUV \
         reaches the accuracy of batch normalization while batch normalization adds about 30% \
         compute per iteration, and LSUV only a few forward passes once.",
        converged(bn),
        converged(lsuv),
        100.0 * (step_seconds(bn) / step_seconds(he) - 1.0),
        1e3 * step_seconds(bn),
        1e3 * step_seconds(he),
        full.len()
    )
}

/// The n/c rule, as the tables state it.
const NOT_CONVERGED: &str = "n/c (did not converge): the last epoch's mean training loss is \
     not below 0.95·ln 10 ≈ 2.19 (chance level for 10 classes) or is not finite.";

/// One version of the table: what it is called and how it was set up.
struct Report<'a> {
    /// Experiment name, and the stem of the `.md` and `.svg` files.
    name: &'static str,
    /// The table's title.
    title: String,
    /// Row names; the first [`PAPER`]`.len()` rows are the paper's.
    rows: &'a [&'a str],
    /// The first note: n/c rule and setup.
    setup: String,
    /// What our cells are, against the paper's convnet on CIFAR-10.
    ours: String,
    /// The plot's caption.
    plot_title: &'static str,
    /// A row after the grid's, not in the paper, with a run per unit or `None` (–) where it
    /// does not apply.
    extra: Option<(&'a str, &'a [Option<Run>])>,
}

impl Report<'_> {
    /// The table (ours / paper in each cell, where the pattern agrees) and the plot, written
    /// to `out/NAME.md` and `out/NAME.svg`.
    fn write(&self, cells: &[Vec<Run>], out: &Path) -> Res<Table> {
        let rows = self.rows;
        let names: Vec<String> = UNITS.iter().map(|u| u.name()).collect();
        let mut header = vec!["init \\ activation".to_string()];
        header.extend(names.iter().cloned());
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut table = Table::new(&self.title, &header);
        let paper_cell = |i: usize, j: usize| match PAPER.get(i) {
            None => "–".to_string(),
            Some(row) => row[j].map_or("n/c".into(), |v| format!("{v:.2}")),
        };
        let (mut agree, mut disagree) = (0, Vec::new());
        for (i, name) in rows.iter().enumerate() {
            let mut cells_text = vec![name.to_string()];
            for (j, run) in cells[i].iter().enumerate() {
                cells_text.push(format!("{} / {}", cell(run), paper_cell(i, j)));
                if let Some(row) = PAPER.get(i) {
                    if row[j].is_none() == not_converged(run) {
                        agree += 1;
                    } else {
                        disagree.push(format!("{name} × {}", names[j]));
                    }
                }
            }
            table.row(cells_text);
        }
        if let Some((name, runs)) = self.extra {
            let mut cells_text = vec![name.to_string()];
            cells_text.extend(runs.iter().map(|run| {
                run.as_ref()
                    .map_or("–".into(), |r| format!("{} / –", cell(r)))
            }));
            table.row(cells_text);
        }
        // the best of the paper's rows, as the paper's best is of its rows
        let best = |j: usize| -> String {
            if (0..PAPER.len()).all(|i| not_converged(&cells[i][j])) {
                return "none (all n/c)".into();
            }
            let (i, _) = (0..PAPER.len())
                .map(|i| {
                    (
                        i,
                        if not_converged(&cells[i][j]) {
                            -1.0
                        } else {
                            cells[i][j].test_accuracy
                        },
                    )
                })
                .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
            rows[i].to_string()
        };
        table.note(self.setup.clone());
        let paper_best = |j: usize| -> String {
            let best = (0..PAPER.len())
                .filter_map(|i| PAPER[i][j].map(|v| (i, v)))
                .fold(None, |a: Option<(usize, f64)>, b| match a {
                    Some(a) if a.1 >= b.1 => Some(a),
                    _ => Some(b),
                });
            best.map_or("none (all n/c)".into(), |(i, _)| rows[i].to_string())
        };
        // the widest spread of test accuracy between converging inits of one activation
        let spread = (0..UNITS.len())
            .map(|j| {
                let ok: Vec<f64> = (0..PAPER.len())
                    .filter(|&i| !not_converged(&cells[i][j]))
                    .map(|i| 100.0 * cells[i][j].test_accuracy)
                    .collect();
                let max = ok.iter().cloned().fold(f64::MIN, f64::max);
                let min = ok.iter().cloned().fold(f64::MAX, f64::min);
                if ok.len() > 1 { max - min } else { 0.0 }
            })
            .fold(0.0, f64::max);
        let differs = if disagree.is_empty() {
            String::new()
        } else {
            format!(" (differs at {})", disagree.join(", "))
        };
        let bests: Vec<String> = (0..UNITS.len())
            .map(|j| format!("{} {} / {}", names[j], best(j), paper_best(j)))
            .collect();
        let ranking = if spread < 5.0 {
            format!(
                "Converging inits of one activation lie within {spread:.1} points of each other \
                 here (one seed, a few epochs), so their ranking is not resolved at this budget"
            )
        } else {
            format!(
                "Converging inits of one activation lie up to {spread:.1} points apart here, but \
                 after so short a training (one seed, far from trained) that measures how fast \
                 each init starts to learn rather than where it ends"
            )
        };
        table.note(format!(
            "Where the pattern agrees and where not: which cells converge agrees with the paper in \
             {agree} of 20 comparable cells{differs}. The best init per activation, here / in the \
             paper (its four comparable rows), is: {}. {ranking}, and the accuracies themselves are \
             not comparable ({}, a convnet on CIFAR-10 after about 230).",
            bests.join("; "),
            self.ours
        ));
        let mut plot = Plot::new(self.plot_title, "initialization", "test accuracy");
        plot.legend = plotters::prelude::SeriesLabelPosition::MiddleLeft;
        let mut x_names: Vec<String> = rows.iter().map(|s| s.to_string()).collect();
        x_names.extend(self.extra.map(|(name, _)| name.to_string()));
        plot.x_names = Some(x_names);
        let plotted = |run: &Run| {
            if not_converged(run) {
                0.1
            } else {
                run.test_accuracy
            }
        };
        for (j, name) in names.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = (0..rows.len())
                .map(|i| (i as f64, plotted(&cells[i][j])))
                .collect();
            if let Some(Some(run)) = self.extra.map(|(_, runs)| &runs[j]) {
                pts.push((rows.len() as f64, plotted(run)));
            }
            plot.line(name.clone(), pts);
        }
        plot.save(out, &format!("{}.svg", self.name))?;
        table.save(out, self.name)?;
        Ok(table)
    }
}
