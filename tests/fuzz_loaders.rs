//! Fuzzing of every loader of outside bytes: the checkpoint reader (and restoring what it
//! accepts), the IDX and CIFAR-10 readers (plain and gzipped) and the safetensors importer.
//! Every case must return (`Ok` or `Err`) without panicking.
//!
//! Two kinds of cases:
//! - **Mutations** of valid files: bit flips, overwritten bytes, truncations, appended
//!   bytes, splices of two valid files, and for checkpoints also mutations with a
//!   recomputed header and checksum so that they reach the decoder.
//! - **Crafted** files, built field by field so that they pass the first checks and reach
//!   the deep ones: checkpoints with a valid CRC whose parameters, optimizer buffers, scaler
//!   and generators have crafted shapes (zero sizes, sizes whose product overflows `u64`,
//!   `usize` or `isize`, `[0, 2^63]`), values that do not fill them, and length prefixes that
//!   lie; IDX headers of crafted sizes (0, overflowing, larger than the data); gzip bombs
//!   that inflate far past the size the header or the gzip trailer declares; several gzip
//!   members; bytes after the gzip stream; safetensors headers with duplicate names, NaN
//!   values, overlapping or out-of-range data offsets and wrong dtypes. Crafted IDX and
//!   CIFAR-10 files must load exactly when they are valid, with the bytes they hold, and a
//!   counting allocator checks that no loader's peak memory exceeds about twice the data the
//!   file really holds (plus a fixed 1 MiB), whatever size its header or trailer claims.
//!
//! The normal suite runs 4,000 cases of each kind. The long run is
//!
//! ```text
//! TAPEGRAD_FUZZ_CASES=1000000 cargo test --release --test fuzz_loaders
//! ```
//!
//! which runs 1,000,000 mutations and 1,000,000 crafted cases. `TAPEGRAD_FUZZ_SEED` picks
//! another sequence; a failure names the seed, the target and the case number, which replay
//! it.

use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use tapegrad::checkpoint::{Checkpoint, export_safetensors, import_safetensors};
use tapegrad::data::{read_cifar10, read_idx_dataset, read_idx_images, read_idx_labels};
use tapegrad::{
    Adam, ChaCha8Rng, Dropout, Init, Linear, Relu, Scaler, SeedableRng, Sequential, Sgd,
    ndarray::array,
};

const DEFAULT_CASES: usize = 4_000;

/// Counts the bytes each thread holds, so that a loader's peak memory can be measured while
/// other tests run on other threads.
struct Counting;

thread_local! {
    // const-initialized cells of a type without a destructor: using them never allocates
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn count_bytes(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: forwards every call to the system allocator unchanged and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same layout as the caller's, who upholds GlobalAlloc's contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count_bytes(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count_bytes(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) };
        count_bytes(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count_bytes(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f`; returns its result and the most bytes this thread held at once during it,
/// above what it held before.
fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as usize)
}

/// Memory a loader may use whatever the input: buffers of the gzip decoder and the file
/// reader, a read chunk, messages.
const FIXED_BYTES: usize = 1 << 20;

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
        .with_metadata("seed", "0")
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
fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// A new folder for the files of one fuzz run, on a memory file system where there is one:
/// the loaders read files, and many small writes to a disk can stall on its journal.
fn scratch_dir(kind: &str, seed: u64) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("tapegrad-{kind}-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn mutated_inputs_never_panic_any_loader() {
    let cases = env_number("TAPEGRAD_FUZZ_CASES", DEFAULT_CASES as u64) as usize;
    let seed = env_number("TAPEGRAD_FUZZ_SEED", 0);
    let dir = scratch_dir("fuzz", seed);
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

// ---------------------------------------------------------------------------------------
// Crafted inputs
// ---------------------------------------------------------------------------------------

/// Sizes at the edges: 0, small ones, the `u32` limit, and ones whose products overflow.
const IDX_SIZES: [u32; 14] = [
    0,
    1,
    2,
    3,
    4,
    28,
    255,
    65_536,
    1 << 24,
    (1 << 31) - 1,
    1 << 31,
    u32::MAX - 1,
    u32::MAX,
    0x8000_0001,
];

/// Tensor sizes at the edges of `u64`, `usize` and `isize` products.
const TENSOR_SIZES: [u64; 14] = [
    0,
    1,
    2,
    3,
    4,
    1 << 31,
    1 << 32,
    u32::MAX as u64,
    1 << 62,
    1 << 63,
    (1 << 63) - 1,
    (1 << 63) + 1,
    u64::MAX,
    u64::MAX / 3,
];

/// A crafted file: its bytes, the uncompressed bytes a loader has to look at (what bounds
/// its memory), and whether a correct loader accepts it.
struct Crafted {
    bytes: Vec<u8>,
    data: usize,
    valid: bool,
}

/// Stores `plain` as it is or gzipped, and sometimes breaks the gzip container: several
/// members, bytes after the stream, a trailer whose size lies. Only the first two, and
/// zero bytes after the stream (padding, which gzip(1) accepts), keep a valid file valid.
fn container(plain: &[u8], valid: bool, rng: &mut ChaCha8Rng) -> Crafted {
    let zipped = gzip(plain);
    let (bytes, ok) = match rng.random_range(0..10) {
        0..=3 => (plain.to_vec(), true),
        4..=6 => (zipped, true),
        7 => {
            let at = rng.random_range(0..=plain.len());
            ([gzip(&plain[..at]), gzip(&plain[at..])].concat(), false)
        }
        8 => {
            let mut bytes = zipped;
            let extra: Vec<u8> = match rng.random_range(0..3) {
                0 => vec![0x1f],
                1 => vec![0; rng.random_range(1..600)],
                _ => (0..rng.random_range(1..40))
                    .map(|_| rng.random::<u8>())
                    .collect(),
            };
            let padding = extra.iter().all(|&b| b == 0);
            bytes.extend(extra);
            (bytes, padding)
        }
        _ => {
            let mut bytes = zipped;
            let n = bytes.len();
            let size = u32::from_le_bytes(bytes[n - 4..].try_into().unwrap());
            let lie = match rng.random_range(0..3) {
                0 => size.wrapping_add(rng.random_range(1..8)),
                1 => size.wrapping_sub(rng.random_range(1..8)),
                _ => rng.random::<u32>() | 1 << 31,
            };
            bytes[n - 4..].copy_from_slice(&lie.to_le_bytes());
            (bytes, false)
        }
    };
    Crafted {
        bytes,
        data: plain.len(),
        valid: valid && ok,
    }
}

/// An IDX file with crafted sizes: images (3 dimensions) or labels (1), a payload that may
/// or may not have the declared length, sometimes a wrong magic number or a cut header.
/// Returns the file, whether it holds images, its sizes and its payload.
fn crafted_idx(rng: &mut ChaCha8Rng) -> (Crafted, bool, Vec<u32>, Vec<u8>) {
    let images = rng.random_bool(0.6);
    let ndim: u8 = if images { 3 } else { 1 };
    let mut magic = [0, 0, 8, ndim];
    let mut valid = true;
    if rng.random_bool(0.05) {
        magic[rng.random_range(0..4)] ^= 1 << rng.random_range(0..8);
        valid = false;
    }
    let sizes: Vec<u32> = (0..ndim)
        .map(|_| {
            if rng.random_bool(0.5) {
                IDX_SIZES[rng.random_range(0..IDX_SIZES.len())]
            } else {
                rng.random_range(0..6)
            }
        })
        .collect();
    let declared: u128 = sizes.iter().map(|&s| u128::from(s)).product();
    let len = if declared <= 2048 && rng.random_bool(0.7) {
        match rng.random_range(0..6) {
            0 => (declared as usize).saturating_sub(1),
            1 => declared as usize + 1,
            _ => declared as usize,
        }
    } else {
        rng.random_range(0..64)
    };
    if images {
        let pixels = u128::from(sizes[1]) * u128::from(sizes[2]);
        valid &= (1..=1 << 31).contains(&pixels);
    }
    // at least one image or label
    valid &= sizes[0] >= 1;
    valid &= len as u128 == declared;
    let payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    let mut plain = magic.to_vec();
    sizes.iter().for_each(|s| plain.extend(s.to_be_bytes()));
    if rng.random_bool(0.05) {
        plain.truncate(rng.random_range(0..plain.len()));
        valid = false;
    } else {
        plain.extend_from_slice(&payload);
    }
    (container(&plain, valid, rng), images, sizes, payload)
}

const RECORD: usize = 3073;

/// CIFAR-10 records with crafted labels, sometimes cut or extended off the record size.
/// Returns the file and its labels.
fn crafted_cifar(rng: &mut ChaCha8Rng) -> (Crafted, Vec<u8>) {
    let n = rng.random_range(0..4);
    let mut plain = Vec::with_capacity(n * RECORD);
    let mut labels = Vec::new();
    for i in 0..n {
        let label = if rng.random_bool(0.9) {
            rng.random_range(0..10)
        } else {
            rng.random_range(10..=255)
        };
        labels.push(label);
        plain.push(label);
        plain.extend(std::iter::repeat_n(i as u8, RECORD - 1));
    }
    match rng.random_range(0..8) {
        0 => plain.truncate(plain.len().saturating_sub(rng.random_range(1..RECORD))),
        1 => plain.extend(std::iter::repeat_n(7, rng.random_range(1..100))),
        _ => {}
    }
    // at least one record
    let valid = !plain.is_empty() && plain.len() % RECORD == 0 && labels.iter().all(|&l| l < 10);
    (container(&plain, valid, rng), labels)
}

/// Gzip bombs, built once: small files that inflate far past the size their header (IDX)
/// or their trailer (CIFAR-10) declares. Each with the bytes a loader has to look at.
fn bombs() -> Vec<(Vec<u8>, bool, usize)> {
    let inflated = 4 << 20;
    let mut out = Vec::new();
    for sizes in [&[1u32, 2, 2][..], &[3, 4, 4], &[1, 28, 28], &[10]] {
        let mut plain = vec![0, 0, 8, sizes.len() as u8];
        sizes.iter().for_each(|s| plain.extend(s.to_be_bytes()));
        let declared = plain.len() + sizes.iter().product::<u32>() as usize;
        plain.resize(inflated, 0);
        out.push((gzip(&plain), sizes.len() == 3, declared + 1));
    }
    // valid records of zeros whose trailer declares 2 of them
    let mut cifar = gzip(&vec![0; 1365 * RECORD]);
    let n = cifar.len();
    cifar[n - 4..].copy_from_slice(&(2 * RECORD as u32).to_le_bytes());
    out.push((cifar, false, 3 * RECORD));
    out
}

// Mirrors of the checkpoint payload (see the `checkpoint` module docs): bincode 2 with the
// standard configuration, through serde.

#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredTensor {
    name: String,
    shape: Vec<u64>,
    values: Vec<f32>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredRng {
    name: String,
    seed: [u8; 32],
    stream: u64,
    word_pos: u128,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
enum ScalerKind {
    Standardize,
    MinMax,
    Affine,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredScaler {
    kind: ScalerKind,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredTraining {
    epochs_done: u64,
    kind: String,
    base_lr: f32,
    steps: u64,
    epochs: u64,
    buffers: Vec<StoredTensor>,
    per_param: u32,
    /// From format version 2 on.
    plateau: Option<(f64, u64, u64)>,
    /// From format version 5 on: the parameters that took fewer steps than the optimizer.
    param_steps: Vec<(String, u64)>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Payload {
    params: Vec<StoredTensor>,
    /// From format version 3 on: the modules' buffers (batch norms' running statistics).
    buffers: Vec<StoredTensor>,
    rngs: Vec<StoredRng>,
    scaler: Option<StoredScaler>,
    training: Option<StoredTraining>,
    /// From format version 4 on: the user's key-value pairs.
    metadata: Vec<(String, String)>,
}

fn bincode_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
}

/// The payload of checkpoint `bytes`, decoded with the mirrors above.
fn payload_of(bytes: &[u8]) -> Payload {
    bincode::serde::decode_from_slice(&bytes[24..], bincode::config::standard())
        .unwrap()
        .0
}

/// A checkpoint file around `body`: magic, version 5, length and CRC-32 of `body`.
fn checkpoint_file(body: &[u8]) -> Vec<u8> {
    let mut bytes = b"TGRADCKP".to_vec();
    bytes.extend(5u32.to_le_bytes());
    bytes.extend((body.len() as u64).to_le_bytes());
    bytes.extend(crc32fast::hash(body).to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// bincode's standard variable-length integer.
fn varint(out: &mut Vec<u8>, v: u128) {
    match v {
        0..=250 => out.push(v as u8),
        251..=0xffff => {
            out.push(251);
            out.extend((v as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(252);
            out.extend((v as u32).to_le_bytes());
        }
        0x1_0000_0000..=0xffff_ffff_ffff_ffff => {
            out.push(253);
            out.extend((v as u64).to_le_bytes());
        }
        _ => {
            out.push(254);
            out.extend(v.to_le_bytes());
        }
    }
}

/// Stored tensors written by hand, with length prefixes that may lie: `claims` gives, per
/// tensor, the claimed lengths of its name, shape and values (`None`: the true length).
fn tensors_by_hand(tensors: &[StoredTensor], claims: &[[Option<u128>; 3]]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, tensors.len() as u128);
    for (i, t) in tensors.iter().enumerate() {
        let claim = claims.get(i).copied().unwrap_or_default();
        varint(&mut out, claim[0].unwrap_or(t.name.len() as u128));
        out.extend(t.name.as_bytes());
        varint(&mut out, claim[1].unwrap_or(t.shape.len() as u128));
        t.shape.iter().for_each(|&d| varint(&mut out, d.into()));
        varint(&mut out, claim[2].unwrap_or(t.values.len() as u128));
        t.values.iter().for_each(|v| out.extend(v.to_le_bytes()));
    }
    out
}

/// The payload bytes of `p`, with the parameters written by hand (lengths may lie).
fn payload_by_hand(p: &Payload, claims: &[[Option<u128>; 3]]) -> Vec<u8> {
    let mut out = tensors_by_hand(&p.params, claims);
    out.extend(bincode_bytes(&p.buffers));
    out.extend(bincode_bytes(&p.rngs));
    out.extend(bincode_bytes(&p.scaler));
    out.extend(bincode_bytes(&p.training));
    out.extend(bincode_bytes(&p.metadata));
    out
}

/// A crafted shape: of rank 0 to 3, of sizes at the edges, or `[0, 2^63]`.
fn crafted_shape(rng: &mut ChaCha8Rng) -> Vec<u64> {
    if rng.random_bool(0.1) {
        return vec![0, 1 << 63];
    }
    (0..rng.random_range(0..4))
        .map(|_| {
            if rng.random_bool(0.6) {
                TENSOR_SIZES[rng.random_range(0..TENSOR_SIZES.len())]
            } else {
                rng.random_range(0..5)
            }
        })
        .collect()
}

/// Whether an array of `shape` with `values` elements can exist: the sizes' product
/// equals the element count and the nonzero sizes' product fits `isize` (ndarray's rule).
fn fits(shape: &[u64], values: usize) -> bool {
    let product = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(u128::from(d)));
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u128, |acc, &d| acc.checked_mul(u128::from(d)));
    product == Some(values as u128) && nonzero.is_some_and(|n| n <= isize::MAX as u128)
}

const SPECIAL_FLOATS: [f32; 6] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    0.0,
    -1.0,
    f32::MAX,
];

/// One structural change to a stored tensor: a crafted shape, values that fill it or lie
/// about it, a special value, another name.
fn craft_tensor(t: &mut StoredTensor, names: &[String], rng: &mut ChaCha8Rng) {
    match rng.random_range(0..5) {
        0 | 1 => {
            t.shape = crafted_shape(rng);
            let product = t
                .shape
                .iter()
                .try_fold(1u128, |acc, &d| acc.checked_mul(u128::from(d)));
            t.values = match product {
                Some(n) if n <= 64 && rng.random_bool(0.7) => vec![0.5; n as usize],
                _ => vec![0.25; rng.random_range(0..8)],
            };
        }
        2 => {
            let n = rng.random_range(0..=t.values.len() + 2);
            t.values.resize(n, 1.0);
        }
        3 if !t.values.is_empty() => {
            let i = rng.random_range(0..t.values.len());
            t.values[i] = SPECIAL_FLOATS[rng.random_range(0..SPECIAL_FLOATS.len())];
        }
        _ => t.name = names[rng.random_range(0..names.len())].clone(),
    }
}

/// A checkpoint with a valid header and CRC whose payload is `base` with crafted fields.
/// Returns the file and whether some tensor cannot exist (which a loader must refuse).
fn crafted_checkpoint(base: &Payload, rng: &mut ChaCha8Rng) -> (Vec<u8>, bool) {
    let mut p = base.clone();
    let mut names: Vec<String> = p.params.iter().map(|t| t.name.clone()).collect();
    names.extend(["".into(), "x".into(), "0.weight.extra".into()]);
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..11) {
            0..=2 if !p.params.is_empty() => {
                let i = rng.random_range(0..p.params.len());
                craft_tensor(&mut p.params[i], &names, rng);
            }
            3..=4 => {
                if let Some(t) = p.training.as_mut().filter(|t| !t.buffers.is_empty()) {
                    let i = rng.random_range(0..t.buffers.len());
                    craft_tensor(&mut t.buffers[i], &names, rng);
                }
            }
            5 => {
                if let Some(t) = p.training.as_mut() {
                    match rng.random_range(0..6) {
                        0 => t.per_param = [0, 2, 3, u32::MAX][rng.random_range(0..4)],
                        1 => {
                            t.kind = ["adam", "", "sgd\0", "rmsprop"][rng.random_range(0..4)].into()
                        }
                        2 => t.base_lr = SPECIAL_FLOATS[rng.random_range(0..6)],
                        3 => (t.steps, t.epochs, t.epochs_done) = (u64::MAX, u64::MAX, u64::MAX),
                        4 => {
                            let n = rng.random_range(0..=t.buffers.len());
                            t.buffers.truncate(n);
                        }
                        _ if !t.buffers.is_empty() => {
                            let copy = t.buffers[rng.random_range(0..t.buffers.len())].clone();
                            t.buffers.push(copy);
                        }
                        _ => {}
                    }
                } else {
                    p.training = base.training.clone();
                }
            }
            6 => {
                if rng.random_bool(0.5) && !p.params.is_empty() {
                    let copy = p.params[rng.random_range(0..p.params.len())].clone();
                    p.params.push(copy);
                } else {
                    let n = rng.random_range(0..=p.params.len());
                    p.params.truncate(n);
                }
            }
            7 => {
                let s = p.scaler.get_or_insert(StoredScaler {
                    kind: ScalerKind::Affine,
                    scale: vec![1.0; 3],
                    shift: vec![0.0; 3],
                });
                s.kind = [
                    ScalerKind::Standardize,
                    ScalerKind::MinMax,
                    ScalerKind::Affine,
                ][rng.random_range(0..3)];
                let n = rng.random_range(0..6);
                s.scale.resize(n, SPECIAL_FLOATS[rng.random_range(0..6)]);
            }
            8 => match p.rngs.first_mut() {
                Some(r) if rng.random_bool(0.7) => {
                    r.word_pos =
                        [u128::MAX, 1 << 64, 1 << 68, rng.random()][rng.random_range(0..4)];
                    r.stream = rng.random();
                    if rng.random_bool(0.3) {
                        r.name = names[rng.random_range(0..names.len())].clone();
                    }
                }
                _ => {
                    let copy = p.rngs.first().cloned().unwrap_or(StoredRng {
                        name: "2.rng".into(),
                        seed: [7; 32],
                        stream: 0,
                        word_pos: 0,
                    });
                    p.rngs.push(copy);
                }
            },
            9 => {
                // a repeated key, an empty one, or long and odd strings
                let pair = p.metadata.first().cloned();
                match pair {
                    Some(pair) if rng.random_bool(0.5) => p.metadata.push(pair),
                    _ => p.metadata.push((
                        ["", "k", "\0", "ü"][rng.random_range(0..4)]
                            .repeat(rng.random_range(0..300)),
                        "v".repeat(rng.random_range(0..300)),
                    )),
                }
            }
            _ => p.training = None,
        }
    }
    let impossible = p
        .params
        .iter()
        .chain(p.training.iter().flat_map(|t| &t.buffers))
        .any(|t| !fits(&t.shape, t.values.len()));
    // length prefixes that lie, on one parameter
    let mut claims = vec![[None; 3]; p.params.len()];
    if !claims.is_empty() && rng.random_bool(0.2) {
        let i = rng.random_range(0..claims.len());
        let which = rng.random_range(0..3);
        claims[i][which] = Some(
            [
                0,
                1,
                251,
                1 << 20,
                1 << 40,
                u64::MAX as u128,
                u128::MAX,
                rng.random::<u32>() as u128,
            ][rng.random_range(0..8)],
        );
    }
    let lies = claims.iter().flatten().any(Option::is_some);
    let body = if lies || rng.random_bool(0.5) {
        payload_by_hand(&p, &claims)
    } else {
        bincode_bytes(&p)
    };
    (checkpoint_file(&body), impossible && !lies)
}

/// The model's parameter names and shapes, as the safetensors importer matches them.
const MODEL_PARAMS: [(&str, &[u64]); 4] = [
    ("0.weight", &[4, 3]),
    ("0.bias", &[4]),
    ("3.weight", &[2, 4]),
    ("3.bias", &[2]),
];

/// A safetensors file written by hand: 8-byte little-endian header length, JSON header,
/// data. Crafted: duplicate names, NaN values, overlapping or out-of-range offsets, dtypes
/// the importer refuses and dtypes it converts, crafted shapes, a header length that lies.
/// Returns the file, whether it is a valid file for the model with finite values (which the
/// importer must accept), and whether it breaks a rule that the importer must refuse (a
/// refused dtype or bad offsets).
fn crafted_safetensors(rng: &mut ChaCha8Rng) -> (Vec<u8>, bool, bool) {
    let mut entries: Vec<(String, String, Vec<u64>, usize)> = MODEL_PARAMS
        .iter()
        .filter(|_| rng.random_bool(0.95))
        .map(|(name, shape)| {
            let n = shape.iter().product::<u64>() as usize;
            (name.to_string(), "F32".to_string(), shape.to_vec(), n)
        })
        .collect();
    let mut finite = true;
    let mut duplicate = false;
    let mut wrong = false;
    for _ in 0..rng.random_range(0..3) {
        match rng.random_range(0..5) {
            0 if !entries.is_empty() => {
                let copy = entries[rng.random_range(0..entries.len())].clone();
                entries.push(copy);
                duplicate = true;
            }
            1 if !entries.is_empty() => {
                let i = rng.random_range(0..entries.len());
                let dtype = ["F16", "F64", "BF16", "I32", "U8", "BOOL", "F8_E4M3", "X"]
                    [rng.random_range(0..8)];
                entries[i].1 = dtype.into();
            }
            2 if !entries.is_empty() => {
                let i = rng.random_range(0..entries.len());
                entries[i].2 = crafted_shape(rng);
            }
            3 => finite = false,
            _ => entries.push(("extra".into(), "F32".into(), vec![1], 1)),
        }
    }
    // booleans, 8-bit floats and unknown names are refused; the others are converted to
    // f32, whose values the bytes may or may not make finite (judged on the final dtypes: a
    // tensor's dtype may have been changed twice)
    wrong |= (entries.iter()).any(|e| matches!(e.1.as_str(), "BOOL" | "F8_E4M3" | "X"));
    let converted = entries.iter().any(|e| e.1 != "F32");
    // data laid out one tensor after another, 4 bytes per element of the declared count
    let mut offsets = Vec::new();
    let mut data = Vec::new();
    for (_, dtype, _, n) in &entries {
        let width = match dtype.as_str() {
            "F64" => 8,
            "F16" | "BF16" => 2,
            "U8" | "BOOL" | "F8_E4M3" => 1,
            _ => 4,
        };
        let start = data.len() as u64;
        for i in 0..n * width / 4 {
            let v = if !finite && i == 0 {
                f32::NAN
            } else {
                i as f32 * 0.5
            };
            data.extend(v.to_le_bytes());
        }
        offsets.push([start, data.len() as u64]);
    }
    // every declared shape must match the bytes, or the file breaks a rule
    let shapes_match = entries
        .iter()
        .zip(&offsets)
        .all(|((_, dtype, shape, _), o)| {
            let width: u128 = match dtype.as_str() {
                "F64" => 8,
                "F16" | "BF16" => 2,
                "U8" | "BOOL" | "F8_E4M3" => 1,
                _ => 4,
            };
            shape
                .iter()
                .try_fold(width, |acc, &d| acc.checked_mul(u128::from(d)))
                == Some(u128::from(o[1] - o[0]))
        });
    let mut moved = false;
    if !offsets.is_empty() && rng.random_bool(0.2) {
        let i = rng.random_range(0..offsets.len());
        let (old, end) = (offsets[i], data.len() as u64);
        // overlapping the first tensor, past the data, reversed, far out of range; the
        // last three a reader must refuse
        let (new, refuse) = match rng.random_range(0..4) {
            0 => ([0, old[1] - old[0]], false),
            1 => ([old[0], end + rng.random_range(1..64)], true),
            2 => ([old[1], old[0]], old[0] != old[1]),
            _ => ([u64::MAX - 3, u64::MAX], true),
        };
        offsets[i] = new;
        moved = new != old;
        wrong |= refuse;
    }
    let mut json = String::from("{");
    if rng.random_bool(0.2) {
        json.push_str("\"__metadata__\":{\"format\":\"pt\"},");
    }
    let fields: Vec<String> = entries
        .iter()
        .zip(&offsets)
        .map(|((name, dtype, shape, _), o)| {
            format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{},{}]}}",
                o[0], o[1]
            )
        })
        .collect();
    json.push_str(&fields.join(","));
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut header_len = json.len() as u64;
    let mut lie = false;
    if rng.random_bool(0.05) {
        header_len =
            [0, 1, header_len + 1, header_len - 1, u64::MAX, 1 << 40][rng.random_range(0..6)];
        lie = true;
    }
    let mut bytes = header_len.to_le_bytes().to_vec();
    bytes.extend(json.as_bytes());
    bytes.extend(&data);
    let names_match = entries.len() == MODEL_PARAMS.len()
        && MODEL_PARAMS
            .iter()
            .zip(&entries)
            .all(|((n, s), e)| *n == e.0 && *s == e.2);
    let valid = !lie
        && !duplicate
        && !wrong
        && !converted
        && !moved
        && finite
        && shapes_match
        && names_match;
    (bytes, valid, wrong && !duplicate && !lie)
}

#[test]
fn crafted_inputs_never_panic_and_loaders_accept_exactly_the_valid_ones() {
    let cases = env_number("TAPEGRAD_FUZZ_CASES", DEFAULT_CASES as u64) as usize;
    let seed = env_number("TAPEGRAD_FUZZ_SEED", 0);
    let dir = scratch_dir("crafted", seed);
    let corpus = corpus(&dir);
    let training = payload_of(&corpus.checkpoints[1]);
    let bombs = bombs();
    let (file_a, file_b) = (dir.join("a"), dir.join("b"));
    let good_labels = dir.join("labels");
    write(&good_labels, &corpus.idx_labels[1]);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut accepted = [0usize; 5];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for case in 0..cases {
        let target = case % 5;
        let outcome: Result<Result<(), String>, String> = match target {
            0 => {
                let (bytes, impossible) = crafted_checkpoint(&training, &mut rng);
                no_panic(|| {
                    let (loaded, peak) = peak_bytes(|| Checkpoint::from_bytes(&bytes));
                    let budget = 32 * bytes.len().max(4096) + FIXED_BYTES;
                    if peak > budget {
                        return Err(format!("peak {peak} bytes above {budget}"));
                    }
                    let Ok(c) = loaded else { return Ok(()) };
                    if impossible {
                        return Err("accepted a tensor whose shape cannot hold its values".into());
                    }
                    accepted[0] += 1;
                    let _ = c.ensure_finite();
                    let _ = c.restore_model(&mut model(1));
                    let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
                    let _ = c.resume(&mut model(1), &mut sgd);
                    let _ = c.resume(&mut model(1), &mut Adam::new(0.1).unwrap());
                    let _ = c.to_bytes();
                    Ok(())
                })
            }
            1 | 2 => {
                let bomb = rng
                    .random_bool(0.05)
                    .then(|| &bombs[rng.random_range(0..bombs.len())]);
                let (file, images, sizes, payload) = match bomb {
                    Some((bytes, images, data)) => (
                        Crafted {
                            bytes: bytes.clone(),
                            data: *data,
                            valid: false,
                        },
                        *images,
                        Vec::new(),
                        Vec::new(),
                    ),
                    None => crafted_idx(&mut rng),
                };
                write(&file_a, &file.bytes);
                no_panic(|| {
                    let budget = 2 * file.data + FIXED_BYTES;
                    let (ok, peak) = if images {
                        let (r, peak) = peak_bytes(|| read_idx_images(&file_a));
                        if let Ok(x) = &r
                            && !sizes.is_empty()
                        {
                            let cols = sizes[1] as usize * sizes[2] as usize;
                            if x.dim() != (sizes[0] as usize, cols)
                                || x.as_slice() != Some(&payload[..])
                            {
                                return Err(format!("loaded {:?}, wrote {sizes:?}", x.dim()));
                            }
                        }
                        let _ = read_idx_dataset(&file_a, &good_labels);
                        (r.is_ok(), peak)
                    } else {
                        let (r, peak) = peak_bytes(|| read_idx_labels(&file_a));
                        if let Ok(l) = &r
                            && !l.iter().map(|&v| v as u8).eq(payload.iter().copied())
                        {
                            return Err("loaded other labels than written".into());
                        }
                        (r.is_ok(), peak)
                    };
                    if peak > budget {
                        return Err(format!("peak {peak} bytes above {budget}"));
                    }
                    if ok != file.valid {
                        return Err(format!("valid {}, loaded {ok}", file.valid));
                    }
                    accepted[target] += usize::from(ok);
                    Ok(())
                })
            }
            3 => {
                let bomb = rng.random_bool(0.05).then(|| &bombs[bombs.len() - 1]);
                let (file, labels) = match bomb {
                    Some((bytes, _, data)) => (
                        Crafted {
                            bytes: bytes.clone(),
                            data: *data,
                            valid: false,
                        },
                        Vec::new(),
                    ),
                    None => crafted_cifar(&mut rng),
                };
                write(&file_a, &file.bytes);
                no_panic(|| {
                    let (r, peak) = peak_bytes(|| read_cifar10(&[&file_a]));
                    let budget = 2 * file.data + FIXED_BYTES;
                    if peak > budget {
                        return Err(format!("peak {peak} bytes above {budget}"));
                    }
                    if let Ok(d) = &r
                        && !d
                            .labels()
                            .unwrap_or_default()
                            .iter()
                            .map(|&v| v as u8)
                            .eq(labels.iter().copied())
                    {
                        return Err("loaded other labels than written".into());
                    }
                    if r.is_ok() != file.valid {
                        return Err(format!("valid {}, loaded {}", file.valid, r.is_ok()));
                    }
                    accepted[3] += usize::from(r.is_ok());
                    Ok(())
                })
            }
            _ => {
                let (bytes, valid, must_refuse) = crafted_safetensors(&mut rng);
                write(&file_b, &bytes);
                no_panic(|| {
                    let r = import_safetensors(&mut model(2), &file_b);
                    if let (true, Err(e)) = (valid, &r) {
                        return Err(format!("refused a valid file: {e}"));
                    }
                    if must_refuse && r.is_ok() {
                        return Err("accepted a wrong dtype or bad data offsets".into());
                    }
                    accepted[4] += usize::from(r.is_ok());
                    Ok(())
                })
            }
        };
        let names = [
            "checkpoint",
            "idx images",
            "idx labels",
            "cifar10",
            "safetensors",
        ];
        let message = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(wrong)) => wrong,
            Err(panic) => format!("panic: {panic}"),
        };
        failures.push(format!(
            "seed {seed}, case {case} ({}): {message}",
            names[target]
        ));
    }
    std::panic::set_hook(hook);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
    // the crafted cases reach past the first checks: every loader accepts some of them
    assert!(
        accepted.iter().all(|&n| n > 0),
        "accepted per target {accepted:?}"
    );
    println!("{cases} crafted cases: {accepted:?} accepted per target, no panic");
}

#[test]
fn the_mirrors_and_the_hand_encoder_write_what_the_checkpoint_reader_reads() {
    let dir = std::env::temp_dir().join(format!("tapegrad-mirror-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = corpus(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    for bytes in &corpus.checkpoints {
        let p = payload_of(bytes);
        assert_eq!(&checkpoint_file(&bincode_bytes(&p)), bytes);
        assert_eq!(&checkpoint_file(&payload_by_hand(&p, &[])), bytes);
    }
    let full = payload_of(&corpus.checkpoints[1]);
    assert!(full.training.is_some() && full.scaler.is_some());
    // a changed value comes back through the reader
    let mut p = full.clone();
    p.params[0].values[0] = 42.0;
    let c = Checkpoint::from_bytes(&checkpoint_file(&bincode_bytes(&p))).unwrap();
    assert_eq!(c.params()[0].1.iter().next(), Some(&42.0));
    // a shape that no array can hold, and a values length that lies, are refused
    p.params[0].shape = vec![0, 1 << 63];
    p.params[0].values.clear();
    assert!(!fits(&p.params[0].shape, 0));
    let err = Checkpoint::from_bytes(&checkpoint_file(&bincode_bytes(&p))).unwrap_err();
    assert!(err.to_string().contains("which no array can hold"), "{err}");
    let lying = payload_by_hand(&full, &[[None, None, Some(1 << 40)]]);
    let (result, peak) = peak_bytes(|| Checkpoint::from_bytes(&checkpoint_file(&lying)));
    assert!(result.is_err());
    assert!(peak < 32 * 4096 + FIXED_BYTES, "peak {peak}");
}

#[test]
fn gzip_bombs_stay_within_the_documented_memory_bound() {
    let dir = std::env::temp_dir().join(format!("tapegrad-bombs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bomb.gz");
    let inflated = 64 << 20;
    // 1 image of 28 × 28 declared, 64 MiB inflated
    let mut idx = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28];
    idx.resize(inflated, 0);
    std::fs::write(&path, gzip(&idx)).unwrap();
    let (result, peak) = peak_bytes(|| read_idx_images(&path));
    let err = result.unwrap_err().to_string();
    // its trailer's size is not the header's: refused before inflating
    assert!(
        err.contains(
            "the trailer declares 67108864 uncompressed bytes (modulo 2^32), expected the 800"
        ),
        "{err}"
    );
    assert!(peak < FIXED_BYTES, "idx bomb: peak {peak} bytes");
    // with the trailer forged to agree, inflating stops at the declared size
    let mut forged = gzip(&idx);
    let n = forged.len();
    forged[n - 4..].copy_from_slice(&800u32.to_le_bytes());
    std::fs::write(&path, forged).unwrap();
    let (result, peak) = peak_bytes(|| read_idx_images(&path));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("inflates to more than the 784 payload bytes"),
        "{err}"
    );
    assert!(peak < FIXED_BYTES, "forged idx bomb: peak {peak} bytes");
    // a header that claims 2^32 − 1 labels over 3 bytes
    std::fs::write(&path, gzip(&[0, 0, 8, 1, 255, 255, 255, 255, 1, 2, 3])).unwrap();
    let (result, peak) = peak_bytes(|| read_idx_labels(&path));
    assert!(result.is_err());
    assert!(peak < FIXED_BYTES, "lying header: peak {peak} bytes");
    // 64 MiB of valid CIFAR-10 records whose trailer declares 2 records
    let mut cifar = gzip(&vec![0; inflated / RECORD * RECORD]);
    let n = cifar.len();
    cifar[n - 4..].copy_from_slice(&(2 * RECORD as u32).to_le_bytes());
    std::fs::write(&path, &cifar).unwrap();
    let (result, peak) = peak_bytes(|| read_cifar10(&[&path]));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("inflates to more than the 6146 bytes"),
        "{err}"
    );
    assert!(peak < FIXED_BYTES, "cifar bomb: peak {peak} bytes");
    // the same records with their true trailer load: the bound is the trailer's size
    let honest = gzip(&vec![0; 100 * RECORD]);
    std::fs::write(&path, &honest).unwrap();
    let (result, peak) = peak_bytes(|| read_cifar10(&[&path]));
    assert_eq!(result.unwrap().len(), 100);
    assert!(
        peak < 2 * 100 * RECORD + FIXED_BYTES,
        "honest cifar: peak {peak} bytes"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
