//! `receptive-field`: a CNN builds its features from receptive fields. Each unit of a
//! convolution or pooling layer sees a small patch of the layer below; the patches grow
//! with depth (W2's CNN: 3, 4, 8 and 10 pixels wide), and the same learned filters slide
//! over the whole image.
//!
//! Trains W2's CNN briefly on a Fashion-MNIST subset, prints each layer's output shape and
//! receptive field (size `r`, jump `j`, start, from
//! [`diagnostics::receptive_field`](tapegrad::diagnostics::receptive_field)), and draws
//! (a) a test image with the field of the middle unit of each convolution and pooling
//! layer outlined (`receptive-field.svg`) and (b) the first layer's 32 learned 3×3 filters
//! (`receptive-field-filters.svg`).

use super::common::{Budget, Res, Table, at_least, fashion_raw, pct, train};
use super::w2::w2;
use std::fmt::Write as _;
use std::path::Path;
use tapegrad::diagnostics::{LayerField, receptive_field};
use tapegrad::prelude::*;

/// The seed of the data subset and the weights.
pub const SEED: u64 = 7;

/// What was measured.
pub struct Outcome {
    /// Every layer's receptive field for a `[1, 1, 28, 28]` input.
    pub fields: Vec<LayerField>,
    /// Test accuracy after the short training.
    pub test_accuracy: f64,
    /// The first convolution's filters after training, `[32, 1, 3, 3]`.
    pub filters: Tensor,
    /// The Markdown table.
    pub table: Table,
}

/// Runs the experiment, writing `receptive-field.md`, `receptive-field.svg` and
/// `receptive-field-filters.svg` under `out`.
pub fn run(budget: Budget, out: &Path) -> Res<Outcome> {
    let (train_n, test_n, epochs) = budget.pick((300, 200, 1), (12_000, 2_000, 2));
    let (train_set, test_set) = fashion_raw(train_n, test_n, SEED)?;
    // a smaller data set gives all it has: the table says what was used
    at_least(
        &test_set,
        1,
        "receptive-field (it draws the fields on a test image)",
    )?;
    let (train_n, test_n) = (train_set.len(), test_set.len());
    let to_unit = Scaler::affine(train_set.num_features(), 1.0 / 255.0, 0.0)?;
    let mut train_set = train_set.with_sample_shape(&[1, 28, 28])?;
    let mut test_set = test_set.with_sample_shape(&[1, 28, 28])?;
    train_set.set_scaler(to_unit.clone())?;
    test_set.set_scaler(to_unit)?;

    let mut model = w2(false, &mut ChaCha8Rng::seed_from_u64(SEED))?;
    let mut sgd = Sgd::new(0.05)?;
    let run = train(&mut model, &mut sgd, &train_set, &test_set, epochs, 32)?;

    let input = [1, 1, 28, 28];
    let fields = receptive_field(&model, &input)?;
    let mut table = Table::new(
        "W2's CNN: what one unit of each layer sees of a 28×28 image",
        &["layer", "output shape", "r", "j", "start"],
    );
    for row in &fields {
        let (r, j, start) = match row.field {
            Some(f) => (
                f.size[0].to_string(),
                f.jump[0].to_string(),
                format!("{}", f.start[0]),
            ),
            None => ("off the grid".into(), "–".into(), "–".into()),
        };
        table.row(vec![
            format!("({}) {}", row.index, row.layer),
            format!("{:?}", row.output_shape),
            r,
            j,
            start,
        ]);
    }
    table.note(format!(
        "r: receptive field size in input pixels (square here, so one number per layer); j: \
         jump, the input pixels between neighbouring units (product of strides); start: center \
         of unit (0, 0)'s field, with pixel centers at 0 … 27. Recurrence per layer \
         (kernel k, stride s, padding p): r ← r + (k − 1)·j, start ← start + ((k − 1)/2 − \
         p)·j, then j ← j·s (Araujo et al. 2019, Distill). \
         From Flatten on the units leave the image grid; a Linear unit sees what all units \
         of the last pooling layer see, here the whole image. Trained {epochs} epoch(s) on {train_n} \
         images (SGD lr 0.05, batch 32): test accuracy {} on {test_n} images.",
        pct(run.test_accuracy)
    ));
    table.note(
        "Plots: the fields of the middle unit of each convolution and pooling layer on a test \
         image, and the first layer's 32 learned 3×3 filters.",
    );
    table.note(format!(
        "The model, as `Sequential::summary` prints it (torchinfo's layout):\n\n```text\n{}\n```",
        model.summary(&input)?
    ));
    table.save(out, "receptive-field")?;

    let (images, _) = test_set.full_batch();
    let image: Vec<f32> = images.iter().take(28 * 28).copied().collect();
    std::fs::write(
        out.join("receptive-field.svg"),
        fields_svg(&image, &fields, model.layers()),
    )?;
    let filters = param_value(&model, "0.weight").ok_or("the first layer has no \"0.weight\"")?;
    std::fs::write(
        out.join("receptive-field-filters.svg"),
        filters_svg(&filters),
    )?;
    Ok(Outcome {
        fields,
        test_accuracy: run.test_accuracy,
        filters,
        table,
    })
}

/// The value of `model`'s parameter named `name`.
fn param_value(model: &Sequential, name: &str) -> Option<Tensor> {
    let mut found = None;
    model.visit_params(&mut |n, p| {
        if n == name {
            found = Some(p.value().to_owned());
        }
    });
    found
}

/// Pixels per image pixel in the drawings.
const SCALE: f64 = 14.0;
/// Outline colors, one per drawn layer.
const COLORS: [&str; 6] = [
    "#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628",
];

/// `v` in `[lo, hi]` as an SVG gray level, black for `lo`.
fn gray(v: f32, lo: f32, hi: f32) -> String {
    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    let g = (255.0 * t.clamp(0.0, 1.0)).round() as u8;
    format!("#{g:02x}{g:02x}{g:02x}")
}

/// The 28×28 `image` in gray with, for each convolution or pooling layer, the receptive
/// field of its middle unit outlined (clipped to the image) and labelled in a legend.
fn fields_svg(image: &[f32], fields: &[LayerField], layers: &[Box<dyn Module>]) -> String {
    let side = 28.0 * SCALE;
    let (left, top, legend) = (20.0, 50.0, 330.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" \
         font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"30\" font-size=\"18\">What the middle unit of each layer \
         sees (receptive fields, clipped to the image)</text>\n",
        left + side + legend,
        top + side + 20.0
    );
    let (lo, hi) = image
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    for (i, &v) in image.iter().enumerate() {
        let (r, c) = ((i / 28) as f64, (i % 28) as f64);
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{SCALE}\" height=\"{SCALE}\" fill=\"{}\"/>",
            left + c * SCALE,
            top + r * SCALE,
            gray(v, lo, hi)
        );
    }
    let windowed = fields.iter().filter(|row| {
        matches!(layers[row.index].spatial(), Spatial::Window(_)) && row.field.is_some()
    });
    for (k, row) in windowed.enumerate() {
        let field = row.field.expect("filtered");
        let unit = [row.output_shape[2] / 2, row.output_shape[3] / 2];
        let [[r0, r1], [c0, c1]] = field.pixels(unit);
        let clip = |v: isize| v.clamp(0, 27) as f64;
        let (y0, y1, x0, x1) = (clip(r0), clip(r1) + 1.0, clip(c0), clip(c1) + 1.0);
        let color = COLORS[k % COLORS.len()];
        let inset = 1.5 + 2.5 * k as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
             stroke=\"{color}\" stroke-width=\"2.5\"/>",
            left + x0 * SCALE - inset + 1.5,
            top + y0 * SCALE - inset + 1.5,
            (x1 - x0) * SCALE + 2.0 * inset - 3.0,
            (y1 - y0) * SCALE + 2.0 * inset - 3.0
        );
        let ly = top + 20.0 + 44.0 * k as f64;
        let lx = left + side + 20.0;
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"{:.1}\" width=\"16\" height=\"16\" fill=\"none\" \
             stroke=\"{color}\" stroke-width=\"2.5\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" \
             font-size=\"13\">({}) {}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" \
             fill=\"#444\">unit ({}, {}) of {}×{}: {}×{} pixels, rows {r0}…{r1}</text>",
            ly - 12.0,
            lx + 24.0,
            ly,
            row.index,
            short(&row.layer),
            lx + 24.0,
            ly + 17.0,
            unit[0],
            unit[1],
            row.output_shape[2],
            row.output_shape[3],
            field.size[0],
            field.size[1],
        );
    }
    s + "</svg>\n"
}

/// `Conv2d(1, 32, kernel_size=(3, 3), …)` shortened to its name and first arguments.
fn short(layer: &str) -> String {
    match layer.find("kernel_size=") {
        Some(at) => {
            let rest = &layer[at + "kernel_size=".len()..];
            let kernel = rest.split(')').next().unwrap_or("").trim_start_matches('(');
            let name = layer[..at].trim_end_matches([' ', ',']);
            format!("{name}, {kernel})")
                .replace(", 3, 3)", ", 3×3)")
                .replace(", 2, 2)", ", 2×2)")
        }
        None => layer.to_string(),
    }
}

/// The filters `[n, 1, kh, kw]` as a grid of gray squares, 8 per row, all on one scale
/// (gray 0, black most negative weight's magnitude, white most positive).
fn filters_svg(filters: &Tensor) -> String {
    let shape = filters.shape();
    let (n, kh, kw) = (shape[0], shape[2], shape[3]);
    let per_row = 8;
    let cell = 12.0;
    let gap = 10.0;
    let (left, top) = (20.0, 50.0);
    let rows = n.div_ceil(per_row);
    let width = left * 2.0 + per_row as f64 * (kw as f64 * cell + gap);
    let height = top + rows as f64 * (kh as f64 * cell + gap) + 20.0;
    let bound = filters.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"30\" font-size=\"16\">First layer's {n} learned {kh}×{kw} \
         filters (gray 0, white +{bound:.2}, black −{bound:.2})</text>\n"
    );
    for f in 0..n {
        let (gx, gy) = ((f % per_row) as f64, (f / per_row) as f64);
        let (x0, y0) = (
            left + gx * (kw as f64 * cell + gap),
            top + gy * (kh as f64 * cell + gap),
        );
        for i in 0..kh {
            for j in 0..kw {
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\"/>",
                    x0 + j as f64 * cell,
                    y0 + i as f64 * cell,
                    gray(filters[[f, 0, i, j]], -bound, bound)
                );
            }
        }
    }
    s + "</svg>\n"
}
