//! Soak test of checkpointing under `kill -9`: a child process trains a small MLP with Adam
//! on generated data, saving `Checkpoint::new(&model).with_training(&adam, epochs_done)`
//! after every epoch; the parent kills it at random (seeded) moments, restarts it from the
//! last checkpoint, and after the last cycle lets it finish. The final parameters and
//! optimizer state must equal an uninterrupted run bit for bit, and the folder must hold
//! no temporary file.
//!
//! By default it runs 3 cycles. The long run, 500 cycles:
//! `TAPEGRAD_SOAK=1 cargo test --release --test soak -- --nocapture`.

use rand::RngExt;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use tapegrad::checkpoint::Checkpoint;
use tapegrad::ndarray::Array2;
use tapegrad::{
    Adam, ChaCha8Rng, Dataset, Dropout, FitConfig, Init, Linear, Module, Optimizer, Relu,
    SeedableRng, Sequential, Tensor, fit, tensor,
};

/// Set to the run's folder in the child process.
const CHILD: &str = "TAPEGRAD_SOAK_CHILD_DIR";
/// Set to the number of epochs in the child process.
const CHILD_EPOCHS: &str = "TAPEGRAD_SOAK_EPOCHS";
const TEST_NAME: &str = "training_killed_at_random_moments_resumes_bit_for_bit";
/// What the child prints after each save.
const SAVED: &str = "soak-child: saved epoch ";
/// What the child prints once it has resumed, before it trains.
const READY: &str = "soak-child: ready at epoch ";

/// Four classes around four centres in 16 dimensions.
fn data() -> Dataset {
    let n = 96;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let noise = tensor::normal(&[n, 16], 0.0, 1.0, &mut rng).unwrap();
    let labels: Vec<usize> = (0..n).map(|i| i % 4).collect();
    let x = Array2::from_shape_fn((n, 16), |(i, j)| {
        noise[[i, j]] + if j % 4 == labels[i] { 2.0 } else { 0.0 }
    });
    Dataset::from_floats(x, labels).unwrap()
}

/// 16 → 128 → ReLU → dropout → 128 → ReLU → 4 (about 19k parameters, so a save of the
/// model and Adam's two moments writes about 230 kB).
fn model() -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    Sequential::new(vec![
        Box::new(Linear::new(16, 128, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Dropout::new(0.2, &mut rng).unwrap()),
        Box::new(Linear::new(128, 128, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(128, 4, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap()
}

fn adam() -> Adam {
    Adam::new(1e-3).unwrap()
}

fn config(epochs: usize, start_epoch: usize) -> FitConfig {
    FitConfig {
        epochs,
        start_epoch,
        batch_size: 16,
        seed: 3,
        ..FitConfig::default()
    }
}

/// Trains from the checkpoint in `dir` (or from scratch) to `epochs`, saving after every
/// epoch; `on_saved` is called with each epoch saved.
fn train(dir: &Path, epochs: usize, mut on_saved: impl FnMut(usize)) {
    let path = dir.join("run.ckpt");
    let (mut model, mut adam) = (model(), adam());
    let done = if path.exists() {
        let checkpoint = Checkpoint::load(&path).unwrap();
        checkpoint.resume(&mut model, &mut adam).unwrap()
    } else {
        0
    };
    report(&format!("{READY}{done}"));
    let train = data();
    for epoch in done + 1..=epochs {
        fit(
            &mut model,
            &mut adam,
            &train,
            None,
            &config(epoch, epoch - 1),
            &mut |_| {},
        )
        .unwrap();
        Checkpoint::new(&model)
            .with_training(&adam, epoch)
            .unwrap()
            .save(&path)
            .unwrap();
        on_saved(epoch);
    }
}

/// Tells the parent a line at once (stdout to a pipe may be held in a buffer until exit).
fn report(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
}

fn bits(model: &dyn Module) -> Vec<(String, Vec<u32>)> {
    let mut v = Vec::new();
    model.visit_params(&mut |name, p| {
        v.push((
            name.to_string(),
            p.value().iter().map(|x| x.to_bits()).collect(),
        ))
    });
    v
}

fn stored_bits(params: &[(String, Tensor)]) -> Vec<(String, Vec<u32>)> {
    (params.iter())
        .map(|(n, t)| (n.clone(), t.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// Files in `dir` that are temporary files of `run.ckpt`.
fn temporaries(dir: &Path) -> Vec<String> {
    (std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".run.ckpt.tmp-"))
        .collect()
}

fn spawn(dir: &Path, epochs: usize) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, dir)
        .env(CHILD_EPOCHS, epochs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Reads the child's output until it reports `count` more saves (true) or ends (false).
fn wait_for_saves(stdout: &mut BufReader<ChildStdout>, count: usize) -> bool {
    let mut seen = 0;
    let mut line = String::new();
    while seen < count {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            return false;
        }
        seen += usize::from(line.contains(SAVED));
    }
    true
}

/// Reads the child's output until it has resumed and is about to train (true), or ends.
fn wait_until_ready(stdout: &mut BufReader<ChildStdout>) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            return false;
        }
        // the test harness may have written "test <name> ... " before it on the line
        if line.contains(READY) {
            return true;
        }
    }
}

#[test]
fn training_killed_at_random_moments_resumes_bit_for_bit() {
    if let Ok(dir) = std::env::var(CHILD) {
        let epochs = std::env::var(CHILD_EPOCHS).unwrap().parse().unwrap();
        train(Path::new(&dir), epochs, |epoch| {
            report(&format!("{SAVED}{epoch}"))
        });
        return;
    }
    let long = std::env::var("TAPEGRAD_SOAK").is_ok_and(|v| v == "1");
    let cycles = if long { 500 } else { 3 };
    // about one epoch of progress per cycle: enough epochs that the kills end first
    let epochs = 2 * cycles + 10;
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("tapegrad-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // the reference: one uninterrupted fit over all epochs, no checkpoint
    let (mut reference, mut reference_adam) = (model(), adam());
    let timer = Instant::now();
    fit(
        &mut reference,
        &mut reference_adam,
        &data(),
        None,
        &config(epochs, 0),
        &mut |_| {},
    )
    .unwrap();
    // one epoch and one save, the scale of the random delays
    let save_timer = Instant::now();
    Checkpoint::new(&reference)
        .with_training(&reference_adam, epochs)
        .unwrap()
        .save(dir.join("timing.ckpt"))
        .unwrap();
    let epoch_time = timer.elapsed() / epochs as u32 + save_timer.elapsed();
    std::fs::remove_file(dir.join("timing.ckpt")).unwrap();

    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut kills, mut left_temporaries, mut finished_early) = (0, 0, false);
    for _ in 0..cycles {
        let (mut child, mut stdout) = spawn(&dir, epochs);
        // a random moment: while it starts and loads (1 in 8), or 0 or 1 saves after it
        // resumed plus up to one epoch more, so anywhere in training or saving
        let running = if rng.random_range(0..8) == 0 {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..5000)));
            true
        } else {
            let saves = rng.random_range(0..2);
            let delay = epoch_time.mul_f64(rng.random_range(0.0..1.0));
            let running = wait_until_ready(&mut stdout) && wait_for_saves(&mut stdout, saves);
            std::thread::sleep(delay);
            running
        };
        // SIGKILL; if the child has already exited, there is nothing to kill
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            // it finished training before the kill
            finished_early = true;
            break;
        }
        assert!(
            running && status.code().is_none(),
            "the child failed by itself: {status}"
        );
        kills += 1;
        left_temporaries += usize::from(!temporaries(&dir).is_empty());
    }
    let reached = match Checkpoint::load(dir.join("run.ckpt")) {
        Ok(checkpoint) => checkpoint.epochs_done().unwrap(),
        Err(_) => 0, // every kill came before the first save
    };
    // the last run goes to the end
    let (mut child, mut stdout) = spawn(&dir, epochs);
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the last run failed: {status}");

    let last = Checkpoint::load(dir.join("run.ckpt")).unwrap();
    assert_eq!(last.epochs_done(), Some(epochs));
    assert_eq!(stored_bits(last.params()), bits(&reference));
    assert_eq!(
        last.optimizer_state().unwrap(),
        &reference_adam.state().unwrap()
    );
    assert_eq!(temporaries(&dir), Vec::<String>::new());
    assert!(finished_early || kills == cycles);
    let message = format!(
        "soak: {kills} kills in {cycles} cycles (a temporary file was left after \
         {left_temporaries}; the killed runs reached epoch {reached}), {epochs} epochs, \
         {:.1} s",
        started.elapsed().as_secs_f64()
    );
    eprintln!("{message}");
    if !long {
        eprintln!(
            "soak: for the 500-cycle run: TAPEGRAD_SOAK=1 cargo test --release --test soak -- --nocapture"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
