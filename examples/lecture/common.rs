//! What every experiment shares: budgets, Markdown tables, SVG line plots, the
//! Fashion-MNIST subsets, model builders and a training run that records its curves.

use super::datasets::{self, Source};
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;
use tapegrad::prelude::*;

/// The result type of the experiments.
pub type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// How much compute an experiment may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Seconds: for the integration test, checking only the direction of each claim.
    Tiny,
    /// A few minutes on 2 cores in release mode: the numbers of the README.
    Full,
}

impl Budget {
    /// `tiny` under [`Budget::Tiny`], `full` under [`Budget::Full`].
    pub fn pick<T>(self, tiny: T, full: T) -> T {
        match self {
            Budget::Tiny => tiny,
            Budget::Full => full,
        }
    }
}

/// A Markdown table with a title and notes under it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Heading line.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
    /// Paragraphs printed after the table.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(title: &str, header: &[&str]) -> Self {
        Table {
            title: title.to_string(),
            header: header.iter().map(|h| h.to_string()).collect(),
            ..Table::default()
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Adds a paragraph under the table.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The table as Markdown, title as a `###` heading.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("### {}\n\n", self.title);
        s += &format!("| {} |\n", self.header.join(" | "));
        s += &format!("|{}\n", "---|".repeat(self.header.len()));
        for row in &self.rows {
            s += &format!("| {} |\n", row.join(" | "));
        }
        for note in &self.notes {
            s += &format!("\n{note}\n");
        }
        s
    }

    /// Writes the Markdown to `out/name.md`.
    pub fn save(&self, out: &Path, name: &str) -> Res<()> {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join(format!("{name}.md")), self.to_markdown())?;
        Ok(())
    }
}

/// One line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points; non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named line.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
        }
    }
}

/// A line plot with a title, axis labels and a legend, saved as SVG.
#[derive(Debug, Clone)]
pub struct Plot {
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Plot `log10 x` (ticks printed as powers of ten).
    pub log_x: bool,
    /// Plot `log10 y`.
    pub log_y: bool,
    /// Tick names for a categorical x axis (x = 0, 1, 2, …).
    pub x_names: Option<Vec<String>>,
    /// The lines.
    pub series: Vec<Series>,
    /// Where the legend goes (upper right unless set).
    pub legend: SeriesLabelPosition,
    /// A fixed y range; values outside it (and +∞) are drawn at its edge.
    pub y_range: Option<(f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(80, 80, 80),
];

impl Plot {
    /// A linear-axes plot.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Plot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            x_names: None,
            series: Vec::new(),
            legend: SeriesLabelPosition::UpperRight,
            y_range: None,
        }
    }

    /// Fixes the y range to `lo..hi`, drawing values beyond it at the edge.
    pub fn clip_y(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }

    /// Puts the legend in the lower right corner (for curves that rise).
    pub fn legend_lower_right(mut self) -> Self {
        self.legend = SeriesLabelPosition::LowerRight;
        self
    }

    /// Uses a log scale on y.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// Uses a log scale on x.
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// Adds a line.
    pub fn line(&mut self, label: impl Into<String>, points: Vec<(f64, f64)>) {
        self.series.push(Series::new(label, points));
    }

    /// Writes the SVG to `out/file` (file ends in `.svg`).
    pub fn save(&self, out: &Path, file: &str) -> Res<()> {
        std::fs::create_dir_all(out)?;
        let path = out.join(file);
        let tx = |v: f64| if self.log_x { v.log10() } else { v };
        let ty = |v: f64| if self.log_y { v.log10() } else { v };
        let series: Vec<(String, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .map(|s| {
                let pts = s
                    .points
                    .iter()
                    .map(|&(x, y)| match self.y_range {
                        Some((lo, hi)) if !y.is_nan() => (x, y.clamp(lo, hi)),
                        _ => (x, y),
                    })
                    .map(|(x, y)| (tx(x), ty(y)))
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                (s.label.clone(), pts)
            })
            .collect();
        let all = series.iter().flat_map(|s| s.1.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in all {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = |lo: f64, hi: f64| {
            let d = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
            (lo - d, hi + d)
        };
        if let Some((lo, hi)) = self.y_range {
            (y0, y1) = (ty(lo), ty(hi));
        }
        let ((x0, x1), (y0, y1)) = (pad(x0, x1), pad(y0, y1));
        let root = SVGBackend::new(&path, (760, 460)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let fmt_x = |v: &f64| match (&self.x_names, self.log_x) {
            (Some(names), _) => {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
            (None, true) => format!("{:.0e}", 10f64.powf(*v)),
            (None, false) => format!("{}", (v * 1000.0).round() / 1000.0),
        };
        let fmt_y = |v: &f64| {
            if self.log_y {
                format!("{:.0e}", 10f64.powf(*v))
            } else {
                format!("{}", (v * 1000.0).round() / 1000.0)
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.max_light_lines(1)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&fmt_y);
        if let Some(names) = &self.x_names {
            mesh.x_labels(names.len()).disable_x_mesh();
        }
        mesh.draw()?;
        for (i, (label, points)) in series.into_iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(self.legend.clone())
            .draw()?;
        root.present()?;
        Ok(())
    }
}

static FASHION: OnceLock<(Dataset, Dataset, Source)> = OnceLock::new();

/// Fashion-MNIST subsets of `train` and `test` images (drawn with `seed`), standardized
/// with a scaler fitted on the training subset.
pub fn fashion(train: usize, test: usize, seed: u64) -> Res<(Dataset, Dataset)> {
    let (mut train, mut test) = fashion_raw(train, test, seed)?;
    let scaler = Scaler::standardize(&train)?;
    train.set_scaler(scaler.clone())?;
    test.set_scaler(scaler)?;
    Ok((train, test))
}

/// Fashion-MNIST subsets as `[1, 28, 28]` images for convnets, standardized with one mean
/// and σ over all pixels of the training subset ([`Scaler::standardize_global`], as
/// torchvision's `Normalize` with scalars), so a black pixel means the same everywhere.
pub fn fashion_images(train: usize, test: usize, seed: u64) -> Res<(Dataset, Dataset)> {
    let (train, test) = fashion_raw(train, test, seed)?;
    let mut train = train.with_sample_shape(&[1, 28, 28])?;
    let mut test = test.with_sample_shape(&[1, 28, 28])?;
    let scaler = Scaler::standardize_global(&train)?;
    train.set_scaler(scaler.clone())?;
    test.set_scaler(scaler)?;
    Ok((train, test))
}

/// Fashion-MNIST subsets as stored: pixel bytes 0..=255, no scaler. A data set of the same
/// format with fewer images than a subset asks for (`FASHION_MNIST_DIR` pointing at another
/// one) gives all it has (the callers print the sizes they got); one whose images are not
/// 28×28, or that has no training image, is refused.
pub fn fashion_raw(train: usize, test: usize, seed: u64) -> Res<(Dataset, Dataset)> {
    let (all_train, all_test, _) = loaded()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (_, train) = all_train.split(train.min(all_train.len()), &mut rng)?;
    let (_, test) = all_test.split(test.min(all_test.len()), &mut rng)?;
    Ok((train, test))
}

/// The whole data set, read once.
fn loaded() -> Res<&'static (Dataset, Dataset, Source)> {
    if let Some(d) = FASHION.get() {
        return Ok(d);
    }
    let images = datasets::load(None, false)?;
    if images.train.is_empty() {
        let dir = images.source.dir.display();
        return Err(format!("the data set at {dir} has no training image").into());
    }
    Ok(FASHION.get_or_init(|| (images.train, images.test, images.source)))
}

/// The data set's name for a table: "Fashion-MNIST", or "the data set at DIR".
pub fn data_name() -> String {
    FASHION.get().map_or("Fashion-MNIST".into(), |d| d.2.name())
}

/// Refuses a subset of fewer than `needed` images (`what`: which, for the message).
pub fn at_least(data: &Dataset, needed: usize, what: &str) -> Res<()> {
    if data.len() < needed {
        return Err(format!(
            "{what}: expected at least {needed} images, found {} in {}; the data set is too small",
            data.len(),
            data_name()
        )
        .into());
    }
    Ok(())
}

/// A hidden unit kind: an activation after a `Linear`, or a `Maxout` layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// `Linear` then this activation.
    Act(Activation),
    /// `Maxout` with 2 pieces.
    Maxout,
}

impl Unit {
    /// A short name for tables.
    pub fn name(self) -> String {
        match self {
            Unit::Maxout => "Maxout".into(),
            Unit::Act(Activation::Step) => "Step".into(),
            Unit::Act(Activation::Sigmoid) => "Sigmoid".into(),
            Unit::Act(Activation::Tanh) => "Tanh".into(),
            Unit::Act(Activation::Relu) => "ReLU".into(),
            Unit::Act(Activation::LeakyRelu { slope }) if (slope - 1.0 / 3.0).abs() < 1e-6 => {
                "VLReLU (1/3)".into()
            }
            Unit::Act(Activation::LeakyRelu { slope }) => format!("LeakyReLU ({slope})"),
            Unit::Act(Activation::Elu { .. }) => "ELU".into(),
            Unit::Act(a) => a.to_string(),
        }
    }
}

/// An MLP `784 → hidden… → 10` with `unit` after each hidden layer and weights drawn by
/// `init` (the classifier too); biases zero, as in the LSUV paper's Caffe nets.
pub fn mlp(inputs: usize, hidden: &[usize], unit: Unit, init: Init, seed: u64) -> Res<Sequential> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layers: Vec<Box<dyn Module>> = Vec::new();
    let mut width = inputs;
    for &h in hidden {
        match unit {
            Unit::Act(a) => {
                layers.push(Box::new(zero_bias(Linear::new(width, h, init, &mut rng)?)));
                layers.push(a.layer()?);
            }
            Unit::Maxout => {
                let mut m = Maxout::new(width, h, 2, init, &mut rng)?;
                m.visit_params_mut(&mut |_, p| {
                    if p.role() == Role::Bias {
                        p.value_mut().fill(0.0);
                    }
                });
                layers.push(Box::new(m));
            }
        }
        width = h;
    }
    layers.push(Box::new(zero_bias(Linear::new(width, 10, init, &mut rng)?)));
    Ok(Sequential::new(layers)?)
}

fn zero_bias(mut layer: Linear) -> Linear {
    if let Some(b) = layer.bias_mut() {
        b.value_mut().fill(0.0);
    }
    layer
}

/// What a training run recorded.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Loss of every step, in order (non-finite when the step was refused).
    pub step_losses: Vec<f64>,
    /// Per epoch: (epoch, mean training loss, test accuracy, seconds since the start).
    pub epochs: Vec<(usize, f64, f64, f64)>,
    /// Whether training stopped because the loss or a gradient became non-finite.
    pub diverged: bool,
    /// Test accuracy at the end (of the last good parameters).
    pub test_accuracy: f64,
    /// Wall time of training, seconds.
    pub seconds: f64,
}

impl Run {
    /// Mean training loss of the last epoch (NaN if none, infinite if it diverged).
    pub fn final_loss(&self) -> f64 {
        if self.diverged {
            return f64::INFINITY;
        }
        self.epochs.last().map_or(f64::NAN, |e| e.1)
    }

    /// Test accuracy per epoch as plot points.
    pub fn accuracy_per_epoch(&self) -> Vec<(f64, f64)> {
        self.epochs.iter().map(|e| (e.0 as f64, e.2)).collect()
    }

    /// Test accuracy against wall time as plot points.
    pub fn accuracy_per_second(&self) -> Vec<(f64, f64)> {
        self.epochs.iter().map(|e| (e.3, e.2)).collect()
    }

    /// Step losses averaged over windows of `w` steps, as (step, loss) points.
    pub fn smoothed_steps(&self, w: usize) -> Vec<(f64, f64)> {
        self.step_losses
            .chunks(w.max(1))
            .enumerate()
            .map(|(i, c)| {
                (
                    (i * w + c.len()) as f64,
                    c.iter().sum::<f64>() / c.len() as f64,
                )
            })
            .collect()
    }
}

/// Trains with [`fit`] (softmax cross-entropy), recording every step's loss and, per
/// epoch, the test accuracy. A divergence ends the run (recorded, not an error).
pub fn train(
    model: &mut Sequential,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    test: &Dataset,
    epochs: usize,
    batch_size: usize,
) -> Res<Run> {
    train_observed(
        model,
        optimizer,
        train,
        test,
        epochs,
        batch_size,
        &mut |_, _| Ok(()),
    )
}

/// As [`train`], one [`fit`] epoch at a time (shuffled with seed = epoch number), calling
/// `after_epoch(epoch, model)` after each, e.g. to run the diagnostics. Its time is not
/// counted.
pub fn train_observed(
    model: &mut Sequential,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    test: &Dataset,
    epochs: usize,
    batch_size: usize,
    after_epoch: &mut dyn FnMut(usize, &Sequential) -> Res<()>,
) -> Res<Run> {
    let mut run = Run::default();
    let mut seconds = 0.0;
    // training time only (fit's own clock), without validation or `after_epoch`
    for epoch in 1..=epochs {
        let config = FitConfig {
            epochs: 1,
            batch_size,
            seed: epoch as u64,
            ..FitConfig::default()
        };
        let mut record = None;
        let result = fit(
            model,
            optimizer,
            train,
            Some(test),
            &config,
            &mut |p| match p {
                Progress::Step { loss, .. } => run.step_losses.push(f64::from(*loss)),
                Progress::Epoch(r) => {
                    record = Some((
                        r.train_loss,
                        r.valid_accuracy.unwrap_or(f64::NAN),
                        r.seconds,
                    ))
                }
                Progress::Event(_) => {}
            },
        );
        match result {
            Ok(_) => {}
            Err(tapegrad::Error::Diverged { .. }) => {
                run.diverged = true;
                break;
            }
            Err(e) => return Err(e.into()),
        }
        let (loss, accuracy, epoch_seconds) = record.expect("fit reports each epoch");
        seconds += epoch_seconds;
        run.epochs.push((epoch, loss, accuracy, seconds));
        after_epoch(epoch, model)?;
    }
    run.seconds = seconds;
    run.test_accuracy =
        (tapegrad::evaluate(&*model, test, 1000)?.accuracy).ok_or("class labels expected")?;
    Ok(run)
}

/// `x` as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A loss for a table: 3 decimals, scientific past 10⁴, "∞"/"NaN" as such.
pub fn num(x: f64) -> String {
    if x.is_infinite() {
        "∞".into()
    } else if x.abs() >= 1e4 {
        format!("{x:.2e}")
    } else {
        format!("{x:.3}")
    }
}
