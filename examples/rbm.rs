//! A restricted Boltzmann machine on binarized Fashion-MNIST, side by side with
//! scikit-learn's `BernoulliRBM`: the same protocol, flags and JSON lines as
//! `bench/sklearn_rbm.py` (in the repository's `bench` folder, which runs scikit-learn).
//!
//! Data: the first `--train` training images and the 10,000 test images, pixels / 255
//! binarized at 0.5. Model: [`Rbm`] with `--hidden` binary hidden units, trained by
//! persistent contrastive divergence with one Gibbs step, learning rate `--lr`, batches of
//! `--batch`, no momentum and no weight cost: scikit-learn's update
//! ([`RbmMethod::PersistentCd`]). After each epoch it prints one JSON line: the seconds spent
//! fitting so far, the mean pseudo-log-likelihood (scikit-learn's `score_samples`) of the
//! first 2,000 training images and of the test images, and the mean squared error of a
//! one-step reconstruction `v -> p(h|v) -> p(v|h)` of the test images. Then a summary line
//! with the test accuracy of a softmax regression (tapegrad's `Linear` + cross-entropy,
//! trained with [`fit`]) on the hidden probabilities, the classic RBM feature pipeline.
//!
//! ```text
//! cargo run --release --example rbm [-- --train 10000 --hidden 256 --lr 0.05 --batch 64
//!     --epochs 10 --data DIR --seed S --threads N --out DIR --fit-only]
//! ```
//!
//! `--fit-only` trains and prints only the summary line with the fitting time (no scores, no
//! softmax regression, no pictures), for timing the fit alone, e.g. under `perf stat`.
//!
//! Expected with the defaults (seed 0): after 10 epochs a test pseudo-log-likelihood near
//! −158 and a reconstruction MSE near 0.058 (scikit-learn: −163.0 and 0.0585), and about
//! 77.5% test accuracy of the softmax regression on the features (scikit-learn's logistic
//! regression: 77.9%), which minimizes the same objective as scikit-learn's (an L2 penalty
//! of 1/(C·n) per sample, C = 1). The pseudo-log-likelihood flips one random pixel per
//! image, so it moves by several units from epoch to epoch; compare a few epochs, not one.
//!
//! Fitting time (`--fit-only` on both sides, 10 epochs), alternated with scikit-learn over 3
//! rounds on a 2 vCPU Intel Xeon with AVX-512 at a load average of about 1.2 (2026-11-29,
//! 23:41 UTC): at two threads a median 1.49 s against scikit-learn's 8.40 s (5.6×;
//! 5.05–5.70 per round), at one thread 1.81 s against 9.50 s (5.2×; 4.82–5.28).
//!
//! `--out DIR` also writes two pictures there (nothing is written without it):
//! `rbm-filters.png`, each hidden unit's 784 weights as a 28 × 28 tile (gray 0, white
//! positive, black negative, each tile on its own scale), and `rbm-samples.png`, Gibbs
//! chains started at 10 test images (one per row), shown after 0, 1, 10, 100 and 1,000
//! steps as the visible probabilities of the step.
//!
//! The data come from `--data DIR`, else from `$FASHION_MNIST_DIR` (when set and not empty),
//! else from Debian's `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`). Another
//! folder of the four IDX files with 28×28 images works too; its classes are then numbers.
//!
//! Side by side (alternate the two, a few rounds, and compare medians; both take
//! `--threads`, scikit-learn's script through `threadpoolctl`; on a busy machine compare
//! user-mode cycles as well, which move less than seconds):
//!
//! ```text
//! cargo build --release --example rbm
//! for round in 1 2 3; do
//!   perf stat -e cycles:u target/release/examples/rbm --threads 1 --fit-only
//!   perf stat -e cycles:u python3 bench/sklearn_rbm.py --threads 1 --fit-only
//! done
//! ```

#[path = "support/cli.rs"]
mod cli;
#[path = "support/datasets.rs"]
mod datasets;

use cli::CommandLine;
use std::io::Write as _;
use std::path::PathBuf;
use tapegrad::ndarray::{Array2, Axis, s};
use tapegrad::{
    Adam, ChaCha8Rng, Dataset, Decay, DecayUnit, FitConfig, Init, Linear, Rbm, RbmConfig,
    RbmMethod, RbmTrainer, Schedule, SeedableRng, Tensor, evaluate, fit,
};

const TRAIN: usize = 10_000;
const HIDDEN: usize = 256;
const LEARNING_RATE: f32 = 0.05;
const BATCH: usize = 64;
const EPOCHS: usize = 10;
const SEED: u64 = 0;
/// Training rows scored for `pll_train`, as the reference script does.
const PLL_TRAIN_ROWS: usize = 2_000;
/// Epochs, batch size and learning rate of the softmax regression on the features.
const LOGREG_EPOCHS: usize = 100;
const LOGREG_BATCH: usize = 128;
const LOGREG_LR: f32 = 0.01;

struct Args {
    train: usize,
    hidden: usize,
    lr: f32,
    batch: usize,
    epochs: usize,
    seed: u64,
    data: Option<PathBuf>,
    threads: Option<usize>,
    out: Option<PathBuf>,
    fit_only: bool,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = Args {
        train: TRAIN,
        hidden: HIDDEN,
        lr: LEARNING_RATE,
        batch: BATCH,
        epochs: EPOCHS,
        seed: SEED,
        data: None,
        threads: None,
        out: None,
        fit_only: false,
    };
    let mut line = CommandLine::new(include_str!("rbm.rs"));
    while let Some(flag) = line.next_flag() {
        match flag.as_str() {
            "--train" => args.train = line.value(&flag)?,
            "--hidden" => args.hidden = line.value(&flag)?,
            "--lr" => args.lr = line.value(&flag)?,
            "--batch" => args.batch = line.value(&flag)?,
            "--epochs" => args.epochs = line.value(&flag)?,
            "--seed" => args.seed = line.value(&flag)?,
            "--data" => args.data = Some(line.value(&flag)?),
            "--threads" => args.threads = Some(line.value(&flag)?),
            "--out" => args.out = Some(line.value(&flag)?),
            "--fit-only" => args.fit_only = true,
            other => return Err(cli::unknown(other).into()),
        }
    }
    Ok(args)
}

/// The first `rows` images of `data` as floats, binarized at 0.5 (`x / 255 > 0.5`), and
/// their labels.
fn binarized(
    data: &Dataset,
    rows: usize,
) -> Result<(Tensor, Vec<usize>), Box<dyn std::error::Error>> {
    let bytes = data
        .bytes()
        .ok_or("Fashion-MNIST images are stored as bytes")?;
    let rows = rows.min(data.len());
    let bytes = bytes.into_shape_with_order((data.len(), data.num_features()))?;
    let x = bytes
        .slice(s![..rows, ..])
        .mapv(|b| if f32::from(b) / 255.0 > 0.5 { 1.0 } else { 0.0 });
    let labels = data.labels().ok_or("Fashion-MNIST has labels")?[..rows].to_vec();
    Ok((x.into_dyn(), labels))
}

fn mean(t: &Tensor) -> f64 {
    t.iter().map(|&x| f64::from(x)).sum::<f64>() / t.len() as f64
}

fn main() -> std::process::ExitCode {
    cli::run(run)
}

/// Trains the RBM, reports its likelihood and features, and draws its chains.
fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    // the figures' folder, made before training so that a bad --out fails at once
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    }
    if let Some(threads) = args.threads {
        tapegrad::set_num_threads(threads)?;
    }
    let images = datasets::load(args.data.as_deref(), true)?;
    let (train, test) = (images.train, images.test);
    let (x_train, y_train) = binarized(&train, args.train)?;
    let (x_test, y_test) = binarized(&test, test.len())?;
    let pll_rows = PLL_TRAIN_ROWS.min(x_train.shape()[0]);
    let x_pll = x_train.slice(s![..pll_rows, ..]).to_owned().into_dyn();

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut rbm = Rbm::new(784, args.hidden, &mut rng)?;
    let config = RbmConfig {
        method: RbmMethod::PersistentCd { k: 1 },
        lr: args.lr,
        batch_size: args.batch,
        epochs: args.epochs,
        seed: args.seed,
        ..RbmConfig::default()
    };
    let mut trainer = RbmTrainer::new(&rbm, config)?;
    let mut fit_secs = 0.0;
    let mut score_rng = ChaCha8Rng::seed_from_u64(args.seed);
    for _ in 0..args.epochs {
        let record = trainer.epoch(&mut rbm, &x_train)?;
        fit_secs += record.seconds;
        if args.fit_only {
            continue;
        }
        let pll_train = mean(&rbm.pseudo_log_likelihood(&x_pll, &mut score_rng)?);
        let pll_test = mean(&rbm.pseudo_log_likelihood(&x_test, &mut score_rng)?);
        let recon = rbm.reconstruction_error(&x_test)?;
        println!(
            "{{\"epoch\": {}, \"fit_secs\": {:.2}, \"pll_train\": {:.3}, \"pll_test\": {:.3}, \"recon_mse_test\": {:.5}}}",
            record.epoch, fit_secs, pll_train, pll_test, recon
        );
        std::io::stdout().flush()?;
    }

    if args.fit_only {
        println!(
            "{{\"lib\": \"tapegrad Rbm\", \"hidden\": {}, \"train\": {}, \"fit_secs\": {:.2}, \"threads\": {}}}",
            args.hidden,
            x_train.shape()[0],
            fit_secs,
            tapegrad::num_threads()
        );
        return Ok(());
    }

    // softmax regression on the hidden probabilities
    let features = |x: &Tensor, y: &[usize]| -> Result<Dataset, Box<dyn std::error::Error>> {
        let h = rbm.hidden_probs(x)?.into_dimensionality()?;
        Ok(Dataset::from_floats(h, y.to_vec())?.with_num_classes(10)?)
    };
    let (f_train, f_test) = (features(&x_train, &y_train)?, features(&x_test, &y_test)?);
    let mut classifier = Linear::new(args.hidden, 10, Init::default(), &mut rng)?;
    // scikit-learn's objective, `½‖W‖² + C·Σ cross-entropy` with C = 1: per sample, an
    // L2 penalty of weight 1/(C·n) (not on the bias: scikit-learn leaves its intercept out),
    // minimized by Adam with its rate decayed to 0 along a cosine, which ends nearer the
    // optimum that scikit-learn's L-BFGS finds than a constant rate (training objective
    // 0.503 against 0.516 at seed 0)
    let steps = LOGREG_EPOCHS * f_train.len().div_ceil(LOGREG_BATCH);
    let cosine = Decay::Cosine {
        period: steps as u64,
        min_factor: 0.0,
    };
    let mut adam = Adam::new(LOGREG_LR)?
        .weight_decay(1.0 / f_train.len() as f32)?
        .decay_biases(false)
        .schedule(Schedule::new(cosine, DecayUnit::Step)?);
    let fit_config = FitConfig {
        epochs: LOGREG_EPOCHS,
        batch_size: LOGREG_BATCH,
        seed: args.seed,
        ..FitConfig::default()
    };
    fit(
        &mut classifier,
        &mut adam,
        &f_train,
        None,
        &fit_config,
        &mut |_| {},
    )?;
    let accuracy = evaluate(&classifier, &f_test, 1000)?
        .accuracy
        .unwrap_or(f64::NAN);
    println!(
        "{{\"lib\": \"tapegrad Rbm\", \"hidden\": {}, \"train\": {}, \"fit_secs\": {:.2}, \"logreg_on_hidden_test_acc\": {:.4}, \"threads\": {}}}",
        args.hidden,
        x_train.shape()[0],
        fit_secs,
        accuracy,
        tapegrad::num_threads()
    );

    if let Some(out) = &args.out {
        let filters = filters_image(&rbm);
        write_png(&out.join("rbm-filters.png"), &filters)?;
        let samples = chains_image(&rbm, &x_test, &mut rng)?;
        write_png(&out.join("rbm-samples.png"), &samples)?;
        eprintln!(
            "wrote {} and {}",
            out.join("rbm-filters.png").display(),
            out.join("rbm-samples.png").display()
        );
    }
    Ok(())
}

/// Pixels of one tile, the gap between tiles, and the scale-up of each pixel.
const TILE: usize = 28;
const GAP: usize = 2;
const ZOOM: usize = 2;

/// An 8-bit gray image, `[height, width]`.
type Gray = Array2<u8>;

/// A grid of 28 × 28 tiles, `columns` per row, each tile's values mapped to gray by `shade`.
fn tile_grid(tiles: &[Vec<f32>], columns: usize, shade: impl Fn(&[f32]) -> Vec<u8>) -> Gray {
    let rows = tiles.len().div_ceil(columns);
    let side = |n: usize| (n * (TILE + GAP) + GAP) * ZOOM;
    let mut image = Gray::from_elem((side(rows), side(columns)), 96);
    for (t, tile) in tiles.iter().enumerate() {
        let (r, c) = (t / columns, t % columns);
        let (top, left) = (GAP + r * (TILE + GAP), GAP + c * (TILE + GAP));
        for (p, &g) in shade(tile).iter().enumerate() {
            let (y, x) = (top + p / TILE, left + p % TILE);
            image
                .slice_mut(s![y * ZOOM..(y + 1) * ZOOM, x * ZOOM..(x + 1) * ZOOM])
                .fill(g);
        }
    }
    image
}

/// Each hidden unit's weights as a tile, on its own symmetric scale around 0 (mid-gray).
fn filters_image(rbm: &Rbm) -> Gray {
    let w = rbm.weight().value();
    let tiles: Vec<Vec<f32>> = w
        .axis_iter(Axis(0))
        .map(|row| row.iter().copied().collect())
        .collect();
    let columns = (tiles.len() as f64).sqrt().ceil() as usize;
    tile_grid(&tiles, columns, |t| {
        let bound = t.iter().fold(1e-12f32, |m, &x| m.max(x.abs()));
        t.iter()
            .map(|&x| (127.5 + 127.5 * x / bound).round() as u8)
            .collect()
    })
}

/// Gibbs chains from 10 test images (rows; fewer when the test set is smaller), after 0,
/// 1, 10, 100 and 1,000 steps (columns, shown as visible probabilities; the start is the
/// image itself).
fn chains_image(rbm: &Rbm, x_test: &Tensor, rng: &mut ChaCha8Rng) -> tapegrad::Result<Gray> {
    const CHAINS: usize = 10;
    const SHOWN: [usize; 5] = [0, 1, 10, 100, 1000];
    // test images 0, 100, …, 900 (every `rows / 10`-th of a smaller test set)
    let rows = x_test.shape()[0];
    let (chains, every) = (CHAINS.min(rows), (rows / CHAINS).clamp(1, 100));
    let start: Tensor = x_test
        .slice(s![..chains * every;every, ..])
        .to_owned()
        .into_dyn();
    let mut columns: Vec<Tensor> = vec![start.clone()];
    let mut v = start;
    let mut done = 0;
    for &at in &SHOWN[1..] {
        if at - 1 > done {
            v = rbm.gibbs(&v, at - 1 - done, rng)?;
        }
        // the last step's probabilities, then sample to go on
        let h = rbm.sample_hidden(&v, rng)?;
        columns.push(rbm.visible_probs(&h)?);
        v = rbm.sample_visible(&h, rng)?;
        done = at;
    }
    let mut tiles = Vec::new();
    for chain in 0..chains {
        for column in &columns {
            tiles.push(
                column
                    .index_axis(Axis(0), chain)
                    .to_owned()
                    .into_raw_vec_and_offset()
                    .0,
            );
        }
    }
    Ok(tile_grid(&tiles, SHOWN.len(), |t| {
        t.iter().map(|&p| (255.0 * p).round() as u8).collect()
    }))
}

/// Writes `image` as an 8-bit grayscale PNG (one IDAT chunk, zlib through `flate2`, chunk
/// checksums through `crc32fast`: both are tapegrad dependencies already).
fn write_png(path: &std::path::Path, image: &Gray) -> Result<(), Box<dyn std::error::Error>> {
    let (height, width) = image.dim();
    let mut raw = Vec::with_capacity(height * (width + 1));
    for row in image.rows() {
        raw.push(0); // filter type: none
        raw.extend(row.iter());
    }
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&raw)?;
    let data = zlib.finish()?;
    let mut header = Vec::new();
    header.extend((width as u32).to_be_bytes());
    header.extend((height as u32).to_be_bytes());
    header.extend([8, 0, 0, 0, 0]); // 8 bits, grayscale, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, body) in [(b"IHDR", &header), (b"IDAT", &data), (b"IEND", &Vec::new())] {
        png.extend((body.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(body);
        png.extend(kind);
        png.extend(body.iter());
        png.extend(crc.finalize().to_be_bytes());
    }
    // written whole or not at all
    let partial = path.with_extension("png.partial");
    std::fs::write(&partial, png)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
