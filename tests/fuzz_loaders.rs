//! Mutation fuzzing of every loader of outside bytes: the checkpoint reader (and restoring
//! what it accepts), the IDX and CIFAR-10 readers (plain and gzipped) and the safetensors
//! importer. Each case mutates a valid file — bit flips, overwritten bytes, truncations,
//! appended bytes, splices of two valid files, and for checkpoints also mutations with a
//! recomputed header and checksum so that they reach the decoder — and requires that the
//! loader returns (`Ok` or `Err`) without panicking.
//!
//! The normal suite runs 4,000 cases. The long run, documented in the README, is
//!
//! ```text
//! TAPEGRAD_FUZZ_CASES=100000 cargo test --release --test fuzz_loaders
//! ```
//!
//! `TAPEGRAD_FUZZ_SEED` picks another sequence of mutations; a failure names the seed, the
//! target and the case number, which replay it.

use rand::RngExt;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use tapegrad::data::{read_cifar10, read_idx_dataset, read_idx_images, read_idx_labels};
use tapegrad::{
    ChaCha8Rng, Checkpoint, Dropout, Init, Linear, Relu, Scaler, SeedableRng, Sequential, Sgd,
    export_safetensors, import_safetensors, ndarray::array,
};

const DEFAULT_CASES: usize = 4_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got {v}"))
        })
        .unwrap_or(default)
}

fn model(seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new(vec![
        Box::new(Linear::new(3, 4, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Dropout::new(0.5, &mut rng).unwrap()),
        Box::new(Linear::new(4, 2, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Valid inputs of each kind, the corpus the mutations start from.
struct Corpus {
    checkpoints: Vec<Vec<u8>>,
    idx_images: Vec<Vec<u8>>,
    idx_labels: Vec<Vec<u8>>,
    cifar: Vec<Vec<u8>>,
    safetensors: Vec<Vec<u8>>,
}

fn corpus(dir: &Path) -> Corpus {
    let m = model(0);
    let data = tapegrad::Dataset::from_floats(array![[1.0, 2.0, 3.0], [0.0, 1.0, 5.0]], vec![0, 1])
        .unwrap();
    let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
    tapegrad::fit(
        &mut model(0),
        &mut sgd,
        &data,
        None,
        &tapegrad::FitConfig {
            epochs: 1,
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let plain = Checkpoint::new(&m).to_bytes().unwrap();
    let full = Checkpoint::new(&m)
        .with_scaler(Scaler::standardize(&data).unwrap())
        .with_training(&sgd, 1)
        .unwrap()
        .to_bytes()
        .unwrap();

    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4];
    images.extend((0..48).map(|i| (i * 5) as u8));
    let labels = vec![0, 0, 8, 1, 0, 0, 0, 3, 2, 0, 9];
    let mut cifar = Vec::new();
    for label in [3u8, 9] {
        cifar.push(label);
        cifar.extend((0..3072).map(|i| (i % 251) as u8));
    }
    let st = dir.join("corpus.safetensors");
    export_safetensors(&m, &st).unwrap();
    Corpus {
        checkpoints: vec![plain, full],
        // the last: no images at all, whose sizes only the array shape limits
        idx_images: vec![
            gzip(&images),
            images,
            vec![0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4],
        ],
        idx_labels: vec![gzip(&labels), labels],
        cifar: vec![gzip(&cifar), cifar],
        safetensors: vec![std::fs::read(&st).unwrap()],
    }
}

/// One random mutation of `input`, sometimes spliced with `other`.
fn mutate(input: &[u8], other: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        let len = out.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = [0, 1, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xff][rng.random_range(0..8)];
            }
            2 => out.truncate(rng.random_range(0..=len)),
            3 => {
                let n = rng.random_range(1..64);
                out.extend((0..n).map(|_| rng.random::<u8>()));
            }
            4 if !other.is_empty() => {
                let (at, from) = (rng.random_range(0..=len), rng.random_range(0..other.len()));
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            5 if len > 0 => {
                // overwrite a run of bytes with random ones
                let start = rng.random_range(0..len);
                let end = (start + rng.random_range(1..9)).min(len);
                out[start..end].iter_mut().for_each(|b| *b = rng.random());
            }
            _ if len > 1 => {
                // repeat a chunk in place
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len);
                let chunk = out[start..end].to_vec();
                out.splice(start..start, chunk);
            }
            _ => out.push(rng.random()),
        }
    }
    out
}

/// Gives a mutated checkpoint back a consistent header: length and CRC-32 of what follows.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() < 24 {
        return;
    }
    let n = (bytes.len() - 24) as u64;
    bytes[12..20].copy_from_slice(&n.to_le_bytes());
    let crc = crc32(&bytes[24..]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (IEEE, reflected), bit by bit: independent of the library's implementation.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Runs `f`, turning a panic into its message.
fn no_panic(f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn mutated_inputs_never_panic_any_loader() {
    let cases = env_number("TAPEGRAD_FUZZ_CASES", DEFAULT_CASES as u64) as usize;
    let seed = env_number("TAPEGRAD_FUZZ_SEED", 0);
    // a memory file system where there is one: the loaders read files, and many small
    // writes to a disk can stall on its journal
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir: PathBuf = base.join(format!("tapegrad-fuzz-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = corpus(&dir);
    let (file_a, file_b) = (dir.join("a"), dir.join("b"));
    // keep panics of the loaders out of the output; they are collected below
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let (mut accepted, mut rejected) = (0usize, 0usize);
    let mut count = |r: bool| if r { accepted += 1 } else { rejected += 1 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for case in 0..cases {
        let target = case % 5;
        let pick =
            |set: &[Vec<u8>], rng: &mut ChaCha8Rng| set[rng.random_range(0..set.len())].clone();
        let outcome = match target {
            0 => {
                let (a, b) = (
                    pick(&corpus.checkpoints, &mut rng),
                    pick(&corpus.checkpoints, &mut rng),
                );
                let mut bytes = mutate(&a, &b, &mut rng);
                if rng.random_bool(0.5) {
                    reseal(&mut bytes);
                }
                no_panic(|| {
                    let loaded = Checkpoint::from_bytes(&bytes);
                    count(loaded.is_ok());
                    if let Ok(c) = loaded {
                        let _ = c.ensure_finite();
                        let mut m = model(1);
                        let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
                        let _ = c.resume(&mut m, &mut sgd);
                        let _ = c.restore_model(&mut m);
                        let _ = c.to_bytes();
                    }
                })
            }
            1 => {
                let bytes = mutate(
                    &pick(&corpus.idx_images, &mut rng),
                    &corpus.idx_labels[1],
                    &mut rng,
                );
                write(&file_a, &bytes);
                write(&file_b, &corpus.idx_labels[1]);
                no_panic(|| {
                    count(read_idx_images(&file_a).is_ok());
                    let _ = read_idx_dataset(&file_a, &file_b);
                })
            }
            2 => {
                let bytes = mutate(
                    &pick(&corpus.idx_labels, &mut rng),
                    &corpus.idx_images[1],
                    &mut rng,
                );
                write(&file_a, &corpus.idx_images[1]);
                write(&file_b, &bytes);
                no_panic(|| {
                    count(read_idx_labels(&file_b).is_ok());
                    let _ = read_idx_dataset(&file_a, &file_b);
                })
            }
            3 => {
                let bytes = mutate(&pick(&corpus.cifar, &mut rng), &corpus.cifar[1], &mut rng);
                write(&file_a, &bytes);
                no_panic(|| count(read_cifar10(&[&file_a]).is_ok()))
            }
            _ => {
                let bytes = mutate(&corpus.safetensors[0], &corpus.checkpoints[0], &mut rng);
                write(&file_a, &bytes);
                no_panic(|| count(import_safetensors(&mut model(2), &file_a).is_ok()))
            }
        };
        if let Err(message) = outcome {
            let names = [
                "checkpoint",
                "idx images",
                "idx labels",
                "cifar10",
                "safetensors",
            ];
            failures.push(format!(
                "seed {seed}, case {case} ({}): {message}",
                names[target]
            ));
        }
    }
    std::panic::set_hook(hook);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        failures.is_empty(),
        "{} panics:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // the mutations reach past the first checks: some inputs are rejected, a few survive
    assert!(rejected > cases / 2, "{rejected} of {cases} rejected");
    println!("{cases} cases: {accepted} accepted, {rejected} rejected, no panic");
}

#[test]
fn the_reference_crc_matches_the_format() {
    // the check value of CRC-32/ISO-HDLC, which the checkpoint header uses
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let bytes = Checkpoint::new(&model(0)).to_bytes().unwrap();
    let mut resealed = bytes.clone();
    reseal(&mut resealed);
    assert_eq!(resealed, bytes);
}
