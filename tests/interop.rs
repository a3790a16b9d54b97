//! Interop with PyTorch: W2's CNN, trained a few steps here and exported with
//! `export_safetensors`, loads into the same `torch.nn.Sequential` with `strict=True` and
//! gives the same logits within 1e-4 on 100 inputs (`bench/safetensors_interop.py`).
//!
//! The script runs with `~/.cache/torch-venv/bin/python` if it exists, else `python3`. When
//! neither can import torch, the test prints "skipped: ..." to stderr and passes.

use rand::RngExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use tapegrad::checkpoint::export_safetensors;
use tapegrad::prelude::*;

const SEED: u64 = 14;
#[path = "../examples/support/w2.rs"]
mod w2;
use w2::w2;

const TRAIN_STEPS: usize = 5;
const INPUTS: usize = 100;
const TOLERANCE: f32 = 1e-4;

/// `n` images in [0, 1) with a bright square whose corner (one of 4) is the label.
fn images(n: usize, rng: &mut ChaCha8Rng) -> (ndarray::Array2<f32>, Vec<usize>) {
    let mut x = ndarray::Array2::from_shape_fn((n, 784), |_| rng.random::<f32>() * 0.3);
    let labels: Vec<usize> = (0..n).map(|i| i % 4).collect();
    for (i, &label) in labels.iter().enumerate() {
        let (top, left) = (14 * (label / 2), 14 * (label % 2));
        for r in top + 3..top + 11 {
            for c in left + 3..left + 11 {
                x[[i, r * 28 + c]] = 1.0;
            }
        }
    }
    (x, labels)
}

/// A python that can import torch, or why there is none.
fn python_with_torch() -> Result<PathBuf, String> {
    let venv = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".cache/torch-venv/bin/python"))
        .filter(|p| p.exists());
    let python = venv.unwrap_or_else(|| PathBuf::from("python3"));
    match Command::new(&python)
        .args(["-c", "import torch, numpy"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{} cannot import torch and numpy ({})",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {}: {e}", python.display())),
    }
}

fn write_f32(path: &Path, values: impl IntoIterator<Item = f32>) {
    let bytes: Vec<u8> = values.into_iter().flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn exported_cnn_gives_pytorchs_logits() {
    exported_model_gives_pytorchs_logits(false);
}

#[test]
fn exported_cnn_with_batch_norm_gives_pytorchs_logits_in_eval_mode() {
    exported_model_gives_pytorchs_logits(true);
}

/// Trains W2 (with or without batch norms) a few steps, exports it, and has PyTorch load it
/// with `strict=True` and compute the logits of 100 inputs in evaluation mode.
fn exported_model_gives_pytorchs_logits(batchnorm: bool) {
    let python = match python_with_torch() {
        Ok(python) => python,
        Err(why) => {
            eprintln!("skipped: safetensors interop with PyTorch: {why}");
            return;
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut model = w2(batchnorm, &mut rng).unwrap();
    // a few SGD steps, so the weights are no longer the initial ones
    let (x, labels) = images(256, &mut rng);
    let data = Dataset::from_floats(x, labels)
        .unwrap()
        .with_sample_shape(&[1, 28, 28])
        .unwrap();
    let before = model.layers()[0].output_shape(&[1, 1, 28, 28]).unwrap();
    assert_eq!(before, [1, 32, 28, 28]);
    let mut sgd = Sgd::new(0.05).unwrap();
    let mut step = TrainStep::new();
    let mut batches = data.batches(64).unwrap().shuffled(&mut rng);
    let mut losses = Vec::new();
    for _ in 0..TRAIN_STEPS {
        let batch = batches.next().expect("256 samples make 4 batches");
        losses.push(
            step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy)
                .unwrap(),
        );
        if losses.len() == 4 {
            batches = data.batches(64).unwrap().shuffled(&mut rng);
        }
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");

    // 100 new inputs and this model's logits for them
    let (inputs, _) = images(INPUTS, &mut rng);
    let tape = Tape::new();
    let x = inputs
        .clone()
        .into_shape_with_order((INPUTS, 1, 28, 28))
        .unwrap();
    let logits = model
        .forward(tape.constant(x.into_dyn()), Mode::Eval)
        .value();
    assert_eq!(logits.shape(), [INPUTS, 10]);

    let dir = std::env::temp_dir().join(format!(
        "tapegrad-interop-{batchnorm}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (weights, input_file, expected) = (
        dir.join("w2.safetensors"),
        dir.join("inputs.f32"),
        dir.join("logits.f32"),
    );
    export_safetensors(&model, &weights).unwrap();
    write_f32(&input_file, inputs.iter().copied());
    write_f32(&expected, logits.iter().copied());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/safetensors_interop.py");
    let mut command = Command::new(&python);
    command.arg(&script);
    if batchnorm {
        command.arg("--batchnorm");
    }
    let out = command
        .arg("--weights")
        .arg(&weights)
        .arg("--inputs")
        .arg(&input_file)
        .arg("--expected")
        .arg(&expected)
        .arg("--tol")
        .arg(TOLERANCE.to_string())
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed:\n{stderr}",
        script.display()
    );
    eprintln!("{}", stderr.trim());

    // the script's logits, read back, agree with ours element by element
    let torch: Vec<Vec<f32>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(torch.len(), INPUTS);
    let mut worst = 0.0f32;
    for (i, row) in torch.iter().enumerate() {
        assert_eq!(row.len(), 10, "sample {i}");
        for (k, &t) in row.iter().enumerate() {
            worst = worst.max((t - logits[[i, k]]).abs());
        }
    }
    assert!(worst <= TOLERANCE, "largest logit difference {worst}");
    // the logits are not all alike (the comparison would be empty otherwise)
    let spread = logits.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    assert!(spread > 0.01, "{spread}");
}
