//! The on-disk checkpoint format: the header (magic, format version, payload length, CRC-32),
//! the bincode payload record with its size-capped decoding, and the atomic write that puts
//! the bytes in place. The layout and the checks are documented in [`crate::checkpoint`].

use crate::data::Scaler;
use crate::data::read::{kind_of, open_regular_file, reserve_for_file};
use crate::error::{Error, Result};
use crate::tensor::{Elem, Tensor};
use bincode::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The first 8 bytes of every checkpoint file.
pub(crate) const MAGIC: [u8; 8] = *b"TGRADCKP";

/// The format version this build writes, and the newest it reads (it reads every older one:
/// version 1 is version 2 without the plateau counters, version 2 is version 3 without the
/// modules' buffers, version 3 is version 4 without the metadata, version 4 is version 5
/// without the steps of parameters that took fewer than the optimizer).
pub(crate) const FORMAT_VERSION: u32 = 5;

/// Bytes before the payload: magic, version, payload length, checksum.
pub(crate) const HEADER_LEN: usize = 24;

/// A tensor as stored: name, shape and values in row-major order.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredTensor {
    pub(super) name: String,
    pub(super) shape: Vec<u64>,
    pub(super) values: Vec<Elem>,
}

/// Where a module's [`ChaCha8Rng`](rand_chacha::ChaCha8Rng) stands.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredRng {
    pub(super) name: String,
    pub(super) seed: [u8; 32],
    pub(super) stream: u64,
    pub(super) word_pos: u128,
}

/// The optimizer's state and the epochs done.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredTraining {
    pub(super) epochs_done: u64,
    pub(super) kind: String,
    pub(super) base_lr: Elem,
    pub(super) steps: u64,
    pub(super) epochs: u64,
    pub(super) buffers: Vec<StoredTensor>,
    /// The number of buffers per parameter (1 for SGD, 2 for Adam); `buffers` holds them
    /// parameter by parameter, each named by its parameter.
    pub(super) per_param: u32,
    /// Where a reduction of the learning rate on a plateau stands (version 2 on): the best
    /// watched value, the epochs without improvement, the cooldown epochs left.
    pub(super) plateau: Option<(f64, u64, u64)>,
    /// The parameters that took fewer steps than the optimizer, with their counts (version
    /// 5 on).
    pub(super) param_steps: Vec<(String, u64)>,
}

/// [`StoredTraining`] as format versions 2 to 4 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StoredTrainingV2 {
    epochs_done: u64,
    kind: String,
    base_lr: Elem,
    steps: u64,
    epochs: u64,
    buffers: Vec<StoredTensor>,
    per_param: u32,
    plateau: Option<(f64, u64, u64)>,
}

impl From<StoredTrainingV2> for StoredTraining {
    fn from(v2: StoredTrainingV2) -> Self {
        StoredTraining {
            epochs_done: v2.epochs_done,
            kind: v2.kind,
            base_lr: v2.base_lr,
            steps: v2.steps,
            epochs: v2.epochs,
            buffers: v2.buffers,
            per_param: v2.per_param,
            plateau: v2.plateau,
            param_steps: Vec::new(),
        }
    }
}

/// [`StoredTraining`] as format version 1 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StoredTrainingV1 {
    epochs_done: u64,
    kind: String,
    base_lr: Elem,
    steps: u64,
    epochs: u64,
    buffers: Vec<StoredTensor>,
    per_param: u32,
}

/// [`Payload`] as format version 1 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct PayloadV1 {
    params: Vec<StoredTensor>,
    rngs: Vec<StoredRng>,
    scaler: Option<Scaler>,
    training: Option<StoredTrainingV1>,
}

impl From<PayloadV1> for Payload {
    fn from(v1: PayloadV1) -> Self {
        Payload {
            params: v1.params,
            buffers: Vec::new(),
            rngs: v1.rngs,
            metadata: Vec::new(),
            scaler: v1.scaler,
            training: v1.training.map(|t| StoredTraining {
                epochs_done: t.epochs_done,
                kind: t.kind,
                base_lr: t.base_lr,
                steps: t.steps,
                epochs: t.epochs,
                buffers: t.buffers,
                per_param: t.per_param,
                plateau: None,
                param_steps: Vec::new(),
            }),
        }
    }
}

/// [`Payload`] as format version 2 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct PayloadV2 {
    params: Vec<StoredTensor>,
    rngs: Vec<StoredRng>,
    scaler: Option<Scaler>,
    training: Option<StoredTrainingV2>,
}

impl From<PayloadV2> for Payload {
    fn from(v2: PayloadV2) -> Self {
        Payload {
            params: v2.params,
            buffers: Vec::new(),
            rngs: v2.rngs,
            scaler: v2.scaler,
            training: v2.training.map(Into::into),
            metadata: Vec::new(),
        }
    }
}

/// [`Payload`] as format version 3 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct PayloadV3 {
    params: Vec<StoredTensor>,
    buffers: Vec<StoredTensor>,
    rngs: Vec<StoredRng>,
    scaler: Option<Scaler>,
    training: Option<StoredTrainingV2>,
}

impl From<PayloadV3> for Payload {
    fn from(v3: PayloadV3) -> Self {
        Payload {
            params: v3.params,
            buffers: v3.buffers,
            rngs: v3.rngs,
            scaler: v3.scaler,
            training: v3.training.map(Into::into),
            metadata: Vec::new(),
        }
    }
}

/// [`Payload`] as format version 4 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct PayloadV4 {
    params: Vec<StoredTensor>,
    buffers: Vec<StoredTensor>,
    rngs: Vec<StoredRng>,
    scaler: Option<Scaler>,
    training: Option<StoredTrainingV2>,
    metadata: Vec<(String, String)>,
}

impl From<PayloadV4> for Payload {
    fn from(v4: PayloadV4) -> Self {
        Payload {
            params: v4.params,
            buffers: v4.buffers,
            rngs: v4.rngs,
            scaler: v4.scaler,
            training: v4.training.map(Into::into),
            metadata: v4.metadata,
        }
    }
}

/// The serde record behind the header.
#[derive(Serialize, Deserialize)]
pub(super) struct Payload {
    pub(super) params: Vec<StoredTensor>,
    /// The modules' buffers, such as batch norms' running statistics (version 3 on).
    pub(super) buffers: Vec<StoredTensor>,
    pub(super) rngs: Vec<StoredRng>,
    pub(super) scaler: Option<Scaler>,
    pub(super) training: Option<StoredTraining>,
    /// The user's key-value pairs, sorted by key (version 4 on).
    pub(super) metadata: Vec<(String, String)>,
}

/// The checkpoint bytes for `payload`: the header, then the bincode payload.
///
/// # Errors
/// [`Error::InvalidArgument`] when bincode cannot encode it (not expected for the types
/// stored).
pub(super) fn encode(payload: &Payload) -> Result<Vec<u8>> {
    let body =
        bincode::serde::encode_to_vec(payload, bincode::config::standard()).map_err(|e| {
            Error::InvalidArgument {
                op: "checkpoint save",
                message: format!("bincode could not encode the checkpoint: {e}"),
            }
        })?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Checks a checkpoint's `header` (its first bytes, at most [`HEADER_LEN`]) against the
/// `payload_len` bytes that follow it: the magic, the format version, and the payload
/// length it declares. [`Checkpoint::load`](super::Checkpoint::load) runs it on the first
/// bytes of a file before reading the rest, so a file that is not a checkpoint, or whose
/// size disagrees with its header, is refused without being read.
///
/// # Errors
/// As [`decode`], except for the checksum and the payload's contents.
pub(super) fn check_header(header: &[u8], payload_len: u64, path: &Path) -> Result<()> {
    let bad = |message: String| Error::decode(path, format!("checkpoint: {message}"));
    if header.len() < HEADER_LEN {
        return Err(bad(format!(
            "truncated header: expected at least {HEADER_LEN} bytes, found {}",
            header.len()
        )));
    }
    if header[..8] != MAGIC {
        return Err(bad(format!(
            "wrong magic: expected b\"{}\" (a tapegrad checkpoint), found b\"{}\"",
            MAGIC.escape_ascii(),
            header[..8].escape_ascii()
        )));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4"));
    if version > FORMAT_VERSION {
        return Err(Error::FormatVersion {
            path: path.into(),
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(bad(format!(
            "format version must be 1 to {FORMAT_VERSION}, found 0"
        )));
    }
    let declared = u64::from_le_bytes(header[12..20].try_into().expect("8"));
    if declared != payload_len {
        let what = if declared > payload_len {
            "truncated payload"
        } else {
            "trailing bytes after the payload"
        };
        return Err(bad(format!(
            "{what}: expected {declared} payload bytes from the header, found {payload_len}"
        )));
    }
    Ok(())
}

/// Checks the header of checkpoint `bytes` and decodes their payload; errors name `path`.
///
/// # Errors
/// [`Error::FormatVersion`] for a newer format; [`Error::Decode`] naming `path` for a wrong
/// magic, a truncated or oversized payload, a checksum mismatch or undecodable bytes.
pub(super) fn decode(bytes: &[u8], path: &Path) -> Result<Payload> {
    let bad = |message: String| Error::decode(path, format!("checkpoint: {message}"));
    let (header, body) = bytes.split_at(bytes.len().min(HEADER_LEN));
    check_header(header, body.len() as u64, path)?;
    let expected_crc = u32::from_le_bytes(header[20..24].try_into().expect("4"));
    let found_crc = crc32fast::hash(body);
    if expected_crc != found_crc {
        return Err(bad(format!(
            "checksum mismatch: expected CRC-32 {expected_crc:#010x} from the header, found \
             {found_crc:#010x}; the file is corrupt"
        )));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4"));
    let decoded = match version {
        1 => decode_payload::<PayloadV1>(body).map(|(p, used)| (p.into(), used)),
        2 => decode_payload::<PayloadV2>(body).map(|(p, used)| (p.into(), used)),
        3 => decode_payload::<PayloadV3>(body).map(|(p, used)| (p.into(), used)),
        4 => decode_payload::<PayloadV4>(body).map(|(p, used)| (p.into(), used)),
        _ => decode_payload::<Payload>(body),
    };
    let (payload, used) = decoded.map_err(|e| bad(format!("bincode could not decode: {e}")))?;
    if used != body.len() {
        return Err(bad(format!(
            "expected the record to fill the {} payload bytes, found {used}",
            body.len()
        )));
    }
    Ok(payload)
}

/// How many bytes of memory bincode may claim per payload byte it reads. Decoding through
/// serde, bincode claims the in-memory size of each primitive it reads (8 for a `u64` or a
/// length, 16 for a `u128`) and the length of each string, while the standard
/// configuration stores every primitive in at least one byte (integers as varints) and a
/// string's bytes as they are. So a record decoded from `n` payload bytes claims at most
/// `16·n`, whatever it holds: a valid payload always fits, and a corrupted length prefix
/// can make the decoder reserve at most `16·n` bytes before it fails.
const CLAIM_PER_BYTE: usize = 16;

/// Decodes the payload with bincode's standard configuration and a memory limit of
/// [`CLAIM_PER_BYTE`] times the smallest power of two at or above the payload's length
/// (bincode takes the limit as a constant, so it is picked from a list).
fn decode_payload<P: serde::de::DeserializeOwned>(
    body: &[u8],
) -> std::result::Result<(P, usize), String> {
    fn with<P: serde::de::DeserializeOwned, C: Config>(
        body: &[u8],
        config: C,
    ) -> std::result::Result<(P, usize), String> {
        bincode::serde::decode_from_slice(body, config).map_err(|e| e.to_string())
    }
    let standard = bincode::config::standard();
    macro_rules! smallest_limit {
        ($($bits:literal)*) => {
            $(if body.len() <= 1usize << $bits {
                return with(body, standard.with_limit::<{ CLAIM_PER_BYTE << $bits }>());
            })*
        };
    }
    smallest_limit!(12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40);
    Err(format!(
        "expected a payload of at most 1 TiB, found {} bytes",
        body.len()
    ))
}

/// A tensor for the payload, in row-major order whatever its memory layout.
pub(super) fn stored(name: &str, t: &Tensor) -> StoredTensor {
    StoredTensor {
        name: name.to_string(),
        shape: t.shape().iter().map(|&d| d as u64).collect(),
        values: t.iter().copied().collect(),
    }
}

/// A stored tensor back as a [`Tensor`], checking that its values fit its shape.
pub(super) fn tensor_of(t: StoredTensor, what: &str, path: &Path) -> Result<(String, Tensor)> {
    let shape: Option<Vec<usize>> = t.shape.iter().map(|&d| usize::try_from(d).ok()).collect();
    let elements = shape
        .as_ref()
        .and_then(|s| s.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)));
    match (shape, elements) {
        (Some(shape), Some(n)) if n == t.values.len() => {
            // with a zero among them, the other sizes can still be too large for an array
            match Tensor::from_shape_vec(shape, t.values) {
                Ok(tensor) => Ok((t.name, tensor)),
                Err(e) => Err(Error::decode(
                    path,
                    format!(
                        "checkpoint: {what} \"{}\" has shape {:?}, which no array can hold: {e}",
                        t.name, t.shape
                    ),
                )),
            }
        }
        _ => Err(Error::decode(
            path,
            format!(
                "checkpoint: {what} \"{}\" of shape {:?} needs {} values, found {}",
                t.name,
                t.shape,
                elements.map_or("more than usize::MAX".into(), |n| n.to_string()),
                t.values.len()
            ),
        )),
    }
}

/// Decodes stored tensors, refusing a name that appears twice.
pub(super) fn unique(
    stored: Vec<StoredTensor>,
    what: &str,
    path: &Path,
) -> Result<Vec<(String, Tensor)>> {
    let mut out: Vec<(String, Tensor)> = Vec::with_capacity(stored.len());
    let mut seen = std::collections::HashSet::new();
    for t in stored {
        let (name, tensor) = tensor_of(t, what, path)?;
        if !seen.insert(name.clone()) {
            return Err(Error::decode(
                path,
                format!("checkpoint: {what} \"{name}\" appears twice"),
            ));
        }
        out.push((name, tensor));
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically: `write` fills a new temporary file in the same
/// folder, which is then synced and renamed over `path`; the folder is synced too where the
/// platform allows. On any error the temporary file is removed and `path` is untouched.
/// First, it removes the temporary files of `path` that crashed saves left behind
/// ([`remove_stale_temporaries`]).
///
/// As writing into the file would (PyTorch's `torch.save`), it keeps what the file system
/// says about an existing `path`: a symbolic link stays a link and the file it leads to is
/// replaced, the file's permissions carry over (a private `0600` checkpoint stays private),
/// and a read-only file is refused rather than replaced. A path that exists but is not a
/// regular file (a directory, a device such as `/dev/null`, a FIFO, a socket, also behind
/// a link) is refused before anything is written, as renaming over it would replace it.
///
/// # Errors
/// [`Error::Io`] naming `path`: `"{op}: expected a regular file or a new path, found a
/// character device"`, `"{op}: expected a writable file, found a read-only one"`, or what
/// the system says when creating, writing, syncing or renaming fails.
pub(crate) fn write_atomically(
    op: &'static str,
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&mut File, &[u8]) -> std::io::Result<()>,
) -> Result<()> {
    let shown = path;
    let target = through_links(path);
    let path = target.as_path();
    let refuse = |kind, problem: String| Error::io(shown, std::io::Error::new(kind, problem));
    let existing = std::fs::metadata(path).ok();
    if let Some(metadata) = existing.as_ref().filter(|m| !m.is_file()) {
        return Err(refuse(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{op}: expected a regular file or a new path, found {}",
                kind_of(metadata.file_type())
            ),
        ));
    }
    if existing
        .as_ref()
        .is_some_and(|m| m.permissions().readonly())
    {
        return Err(refuse(
            std::io::ErrorKind::PermissionDenied,
            format!("{op}: expected a writable file, found a read-only one"),
        ));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(Error::io(
            shown,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "expected a path that names a file, found none",
            ),
        ));
    };
    let name = file_name.to_string_lossy();
    remove_stale_temporaries(folder, &name, SystemTime::now());
    let (mut file, writing) = create_temporary(folder, &name).map_err(|e| Error::io(shown, e))?;
    let temporary = folder.join(&writing.0);
    let attempt = || -> std::io::Result<()> {
        // before any byte is written, so a private file's contents are never readable
        if let Some(existing) = &existing {
            file.set_permissions(existing.permissions())?;
        }
        write(&mut file, bytes)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)?;
        // make the rename itself durable; some file systems refuse to sync a folder, which
        // only weakens durability, not atomicity
        if let Ok(dir) = File::open(folder) {
            let _ = dir.sync_all();
        }
        Ok(())
    };
    let result = attempt().map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        Error::io(shown, e)
    });
    // only now may another save of this process treat a file of this name as stale
    drop(writing);
    result
}

/// Where the chain of symbolic links at `path` leads (at most 40 links, as the kernel
/// follows), or `path` itself when it is not a link.
fn through_links(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        let Ok(link) = std::fs::read_link(&path) else {
            break;
        };
        // a relative link is relative to the folder holding it; `join` keeps an absolute one
        path = match path.parent() {
            Some(folder) => folder.join(link),
            None => link,
        };
    }
    path
}

/// The temporary files this process is writing, by file name (unique within the process,
/// whatever folder they are in, thanks to the counter in them).
static WRITING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// How long a temporary file of another process must have gone unmodified before a save
/// removes it, where the process's liveness cannot be read (everywhere but Linux).
const UNTOUCHED_FOR: Duration = Duration::from_secs(3600);

/// A temporary file name held in [`WRITING`] while its save runs.
struct Writing(String);

impl Drop for Writing {
    fn drop(&mut self) {
        writing().remove(&self.0);
    }
}

fn writing() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    // the set stays consistent even if a thread panicked while holding it
    WRITING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Target names longer than this many bytes are shortened in their temporary files' names,
/// which must stay within the 255 bytes most file systems allow.
const LONG_NAME: usize = 200;

/// The start of the temporary files' names of target `name`: `.{name}.tmp-`; for a name
/// over [`LONG_NAME`] bytes, its first 100 bytes, `~` and a 64-bit FNV-1a hash of the whole
/// name in hex stand for it.
fn temporary_prefix(name: &str) -> String {
    if name.len() <= LONG_NAME {
        return format!(".{name}.tmp-");
    }
    let cut = (0..=100)
        .rev()
        .find(|&i| name.is_char_boundary(i))
        .unwrap_or(0);
    let hash = (name.bytes()).fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!(".{}~{hash:016x}.tmp-", &name[..cut])
}

/// Creates `{prefix}{pid}-{n}` ([`temporary_prefix`]) in `folder` with the next free counter
/// `n`, registered in [`WRITING`] before it exists so that no other save of this process
/// takes it for stale.
fn create_temporary(folder: &Path, name: &str) -> std::io::Result<(File, Writing)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut tries = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temporary = format!("{}{}-{n}", temporary_prefix(name), std::process::id());
        writing().insert(temporary.clone());
        let registered = Writing(temporary);
        match File::options()
            .write(true)
            .create_new(true)
            .open(folder.join(&registered.0))
        {
            Ok(file) => return Ok((file, registered)),
            // a file of an earlier process with this pid that could not be removed
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The process id in `file_name` if it is a temporary file of the target whose temporary
/// names start with `prefix` (`.{name}.tmp-`): the prefix, then `{pid}-{n}` in decimal
/// digits, and nothing else.
fn temporary_pid(file_name: &str, prefix: &str) -> Option<u32> {
    let (pid, n) = file_name.strip_prefix(prefix)?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(pid) && digits(n)) {
        return None;
    }
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether process `pid` has ended, by `/proc/{pid}/stat` (a zombie, `Z` or `X`, has ended
/// but not been reaped), or `None` when `/proc` cannot tell (not Linux, or not mounted).
fn process_ended(pid: u32) -> Option<bool> {
    if !cfg!(target_os = "linux") || !Path::new("/proc/self/stat").exists() {
        return None;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(e) => Some(e.kind() == std::io::ErrorKind::NotFound),
        // "pid (command) state ...", where the command may hold spaces and parentheses
        Ok(stat) => Some(matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        )),
    }
}

/// Whether a temporary file of another process is stale: its process has `ended`, or, where
/// that cannot be told, the file has gone `untouched` for [`UNTOUCHED_FOR`].
fn other_is_stale(ended: Option<bool>, untouched: Option<Duration>) -> bool {
    ended.unwrap_or_else(|| untouched.is_some_and(|age| age >= UNTOUCHED_FOR))
}

/// Removes the temporary files of target `name` in `folder` whose save is over (the rule is
/// in the [`crate::checkpoint`] module docs): those of this process that no save of it is
/// writing, and those of a process that has ended (on Linux; elsewhere, those of another
/// process unmodified for [`UNTOUCHED_FOR`] before `now`). Best effort: a file that cannot be
/// read or removed is left for a later save.
pub(crate) fn remove_stale_temporaries(folder: &Path, name: &str, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let prefix = temporary_prefix(name);
    let own = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(pid) = temporary_pid(file_name, &prefix) else {
            continue;
        };
        // regular files only, never through a symbolic link
        let Ok(metadata) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        if pid == own {
            // checked and removed under the lock, so no save of this process starts
            // writing a file of this name in between
            let writing = writing();
            if !writing.contains(file_name) {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        let untouched = metadata
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok());
        if other_is_stale(process_ended(pid), untouched) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The bytes of the checkpoint file `path`, read only after its header (the first
/// [`HEADER_LEN`] bytes) agrees with the file's size ([`check_header`]): memory is bounded by
/// the size of a file that claims to be a checkpoint of that size.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read or is not a regular file; as [`check_header`].
pub(super) fn read_checkpoint_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, metadata) = open_regular_file(path, "checkpoint load")?;
    let mut bytes = Vec::new();
    let mut file = file.take(metadata.len());
    (file.by_ref().take(HEADER_LEN as u64))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    check_header(
        &bytes,
        metadata.len().saturating_sub(HEADER_LEN as u64),
        path,
    )?;
    reserve_for_file(&mut bytes, metadata.len(), path)?;
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{model, params};
    use crate::checkpoint::{Checkpoint, load};
    use crate::nn::Linear;
    use crate::tensor;
    use crate::{Optimizer, Sgd};
    use std::path::PathBuf;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tapegrad-ckpt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = Checkpoint::new(&model(0)).to_bytes().unwrap();
        assert_eq!(&bytes[..8], b"TGRADCKP");
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 5);
        let n = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
        assert_eq!(n as usize, bytes.len() - HEADER_LEN);
        let crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&bytes[HEADER_LEN..]));
        // CRC-32 of "123456789" is the standard check value 0xCBF43926
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn transposed_weights_are_stored_in_logical_order() {
        let w = tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[3, 2]).unwrap();
        let t = w.t().to_owned(); // [2, 3], column-major in memory
        let a = Linear::from_parts(t.clone().into_dyn(), None).unwrap();
        let mut b = Linear::from_parts(tensor::zeros(&[2, 3]), None).unwrap();
        Checkpoint::from_bytes(&Checkpoint::new(&a).to_bytes().unwrap())
            .unwrap()
            .restore_model(&mut b)
            .unwrap();
        assert_eq!(b.weight().value(), &t.into_dyn());
    }

    /// A writer that fails after `left` bytes, like a full disk.
    struct FailAfter<'f> {
        file: &'f mut File,
        left: usize,
    }

    impl Write for FailAfter<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::other("no space left on device (simulated)"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            self.file.write(&buf[..n])
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }

    #[test]
    fn a_failure_mid_write_leaves_the_previous_checkpoint_intact() {
        let dir = folder("atomic");
        let path = dir.join("run.ckpt");
        let old = model(3);
        Checkpoint::new(&old).save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let newer = Checkpoint::new(&model(4)).to_bytes().unwrap();
        for fail_at in [0, 10, HEADER_LEN + 7, newer.len() - 1] {
            let err = write_atomically("test", &path, &newer, |file, bytes| {
                FailAfter {
                    file,
                    left: fail_at,
                }
                .write_all(bytes)
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("run.ckpt") && err.contains("simulated"),
                "{err}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), before);
            // no temporary file is left behind
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
            let mut loaded = model(5);
            load(&mut loaded, &path).unwrap();
            assert_eq!(params(&loaded), params(&old));
        }
        // an unhindered save replaces it
        write_atomically("test", &path, &newer, |f, b| f.write_all(b)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), newer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = (std::fs::read_dir(dir).unwrap())
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn temporary_names_are_recognised_strictly() {
        let prefix = ".run.ckpt.tmp-";
        assert_eq!(temporary_pid(".run.ckpt.tmp-123-4", prefix), Some(123));
        for other in [
            ".run.ckpt.tmp-123-4.bak",
            ".run.ckpt.tmp-123-",
            ".run.ckpt.tmp--4",
            ".run.ckpt.tmp-12a-4",
            ".run.ckpt.tmp-99999999999-4", // beyond u32
            "run.ckpt.tmp-123-4",
            ".run.ckpt.tmp-123-4-5",
            ".other.ckpt.tmp-123-4",
            // a temporary file of target "run.ckpt.tmp-1-2", not of "run.ckpt"
            ".run.ckpt.tmp-1-2.tmp-123-4",
        ] {
            assert_eq!(temporary_pid(other, prefix), None, "{other}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_save_keeps_permissions_and_links_and_refuses_a_read_only_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = folder("perms");
        let checkpoint = Checkpoint::new(&model(0));
        let bytes = checkpoint.to_bytes().unwrap();
        // a private file stays private
        let private = dir.join("private.ckpt");
        std::fs::write(&private, b"old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        checkpoint.save(&private).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(
            (mode & 0o777, std::fs::read(&private).unwrap()),
            (0o600, bytes.clone())
        );
        // a link (relative, through another link) stays a link; the file it leads to changes
        std::fs::create_dir_all(dir.join("runs")).unwrap();
        std::fs::write(dir.join("runs/7.ckpt"), b"old").unwrap();
        std::os::unix::fs::symlink("runs/7.ckpt", dir.join("latest")).unwrap();
        std::os::unix::fs::symlink("latest", dir.join("current.ckpt")).unwrap();
        checkpoint.save(dir.join("current.ckpt")).unwrap();
        assert!(
            std::fs::symlink_metadata(dir.join("current.ckpt"))
                .unwrap()
                .is_symlink()
        );
        assert!(
            std::fs::symlink_metadata(dir.join("latest"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(std::fs::read(dir.join("runs/7.ckpt")).unwrap(), bytes);
        // a link to a file not there yet makes the file
        std::os::unix::fs::symlink("runs/8.ckpt", dir.join("next.ckpt")).unwrap();
        checkpoint.save(dir.join("next.ckpt")).unwrap();
        assert_eq!(std::fs::read(dir.join("runs/8.ckpt")).unwrap(), bytes);
        // a read-only file is refused and left as it was
        let frozen = dir.join("frozen.ckpt");
        std::fs::write(&frozen, b"old").unwrap();
        std::fs::set_permissions(&frozen, std::fs::Permissions::from_mode(0o444)).unwrap();
        let err = checkpoint.save(&frozen).unwrap_err().to_string();
        assert!(
            err.contains("frozen.ckpt") && err.contains("found a read-only one"),
            "{err}"
        );
        assert_eq!(std::fs::read(&frozen).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn every_writer_replaces_the_file_rather_than_writing_into_it() {
        // a hard link to the previous file keeps its bytes: they were never overwritten in
        // place, so a write failing halfway (a full disk) could not have damaged them
        let dir = folder("replace");
        fn history(loss: f64) -> crate::History {
            let mut history = crate::History::default();
            history.epochs.push(crate::EpochRecord {
                epoch: 1,
                train_loss: loss,
                valid_loss: None,
                valid_accuracy: None,
                valid_metrics: vec![],
                lr: 0.1,
                seconds: 1.0,
                samples_per_second: 10.0,
            });
            history
        }
        type Writer = fn(u64, &Path) -> crate::Result<()>;
        let writers: [(&str, Writer); 3] = [
            ("h.csv", |seed, path| history(seed as f64).write_csv(path)),
            ("m.ckpt", |seed, path| {
                Checkpoint::new(&model(seed)).save(path)
            }),
            ("m.safetensors", |seed, path| {
                crate::checkpoint::export_safetensors(&model(seed), path)
            }),
        ];
        for (name, write) in writers {
            let (path, old) = (dir.join(name), dir.join(format!("{name}.old")));
            write(1, &path).unwrap();
            let before = std::fs::read(&path).unwrap();
            std::fs::hard_link(&path, &old).unwrap();
            write(2, &path).unwrap();
            assert_eq!(std::fs::read(&old).unwrap(), before, "{name}");
            assert_ne!(std::fs::read(&path).unwrap(), before, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_target_that_is_not_a_regular_file_is_refused_and_left_as_it_was() {
        use std::os::unix::fs::FileTypeExt;
        let dir = folder("kinds");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let socket = dir.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::os::unix::fs::symlink("fifo", dir.join("link.ckpt")).unwrap();
        std::fs::create_dir(dir.join("folder")).unwrap();
        let checkpoint = Checkpoint::new(&model(0));
        for (name, kind) in [
            ("fifo", "a named pipe (FIFO)"),
            ("socket", "a socket"),
            ("link.ckpt", "a named pipe (FIFO)"),
            ("folder", "a directory"),
        ] {
            let err = checkpoint.save(dir.join(name)).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "{}: checkpoint save: expected a regular file or a new path, found {kind}",
                    dir.join(name).display()
                )
            );
        }
        // nothing replaced, no temporary file left
        let kind = |name: &str| {
            std::fs::symlink_metadata(dir.join(name))
                .unwrap()
                .file_type()
        };
        assert!(kind("fifo").is_fifo() && kind("socket").is_socket() && kind("folder").is_dir());
        assert!(kind("link.ckpt").is_symlink());
        assert_eq!(names(&dir), ["fifo", "folder", "link.ckpt", "socket"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_name_near_the_file_system_limit_saves_and_its_stale_temporaries_go() {
        let dir = folder("long");
        // 250 bytes: the file system takes it, `.{name}.tmp-{pid}-{n}` would not fit
        let name = format!("{}.ckpt", "é".repeat(61) + &"m".repeat(123));
        assert_eq!(name.len(), 250);
        let twin = format!("{}.ckpt", "é".repeat(61) + &"m".repeat(122) + "n");
        let prefix = temporary_prefix(&name);
        assert!(
            prefix.len() < 130 && prefix != temporary_prefix(&twin),
            "{prefix}"
        );
        let stale = dir.join(format!("{prefix}999999999-0"));
        let others = dir.join(format!("{}999999999-0", temporary_prefix(&twin)));
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(&others, b"half").unwrap();
        let checkpoint = Checkpoint::new(&model(0));
        checkpoint.save(dir.join(&name)).unwrap();
        assert_eq!(
            std::fs::read(dir.join(&name)).unwrap(),
            checkpoint.to_bytes().unwrap()
        );
        assert!(!stale.exists() && others.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_save_removes_stale_temporary_files_of_its_target_and_nothing_else() {
        let dir = folder("stale");
        let path = dir.join("run.ckpt");
        let own = std::process::id();
        // no process has a pid above the kernel's limit of 2^22
        let dead = 999_999_999;
        // a zombie: a child that has exited but not been reaped
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let zombie = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while process_ended(zombie) != Some(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(process_ended(own), Some(false));
        assert_eq!(process_ended(dead), Some(true));
        let stale = [
            format!(".run.ckpt.tmp-{dead}-0"),
            format!(".run.ckpt.tmp-{zombie}-3"),
            // an earlier process with this pid (a restarted container) left it
            format!(".run.ckpt.tmp-{own}-999999999"),
        ];
        let kept = [
            // init always runs
            ".run.ckpt.tmp-1-0".to_string(),
            format!(".run.ckpt.tmp-{dead}-0.bak"),
            format!(".other.ckpt.tmp-{dead}-0"),
            format!("run.ckpt.tmp-{dead}-0"),
            ".run.ckpt.tmp-notes".to_string(),
        ];
        for name in stale.iter().chain(&kept) {
            std::fs::write(dir.join(name), b"partial").unwrap();
        }
        // a folder with a temporary file's name is not a file we wrote
        std::fs::create_dir(dir.join(format!(".run.ckpt.tmp-{dead}-1"))).unwrap();
        // another thread of this process is writing this one
        let busy = format!(".run.ckpt.tmp-{own}-999999998");
        writing().insert(busy.clone());
        std::fs::write(dir.join(&busy), b"partial").unwrap();

        Checkpoint::new(&model(0)).save(&path).unwrap();
        let mut expected: Vec<String> = kept.to_vec();
        expected.extend([
            format!(".run.ckpt.tmp-{dead}-1"),
            busy.clone(),
            "run.ckpt".to_string(),
        ]);
        expected.sort();
        assert_eq!(names(&dir), expected);
        // once that save is over, its file is stale too
        writing().remove(&busy);
        Checkpoint::new(&model(0)).save(&path).unwrap();
        assert!(!dir.join(&busy).exists());
        child.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_proc_files_of_other_processes_go_once_untouched_for_an_hour() {
        let minute = Duration::from_secs(60);
        assert!(other_is_stale(Some(true), Some(Duration::ZERO)));
        assert!(!other_is_stale(Some(false), Some(UNTOUCHED_FOR * 2)));
        assert!(!other_is_stale(None, Some(UNTOUCHED_FOR - minute)));
        assert!(other_is_stale(None, Some(UNTOUCHED_FOR)));
        // a modification time in the future or unknown keeps the file
        assert!(!other_is_stale(None, None));
    }

    #[test]
    fn concurrent_saves_of_one_path_all_succeed_and_leave_no_temporary_file() {
        let dir = folder("concurrent");
        let path = dir.join("run.ckpt");
        let bytes = Checkpoint::new(&model(1)).to_bytes().unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        write_atomically("test", &path, &bytes, |f, b| f.write_all(b)).unwrap();
                    }
                });
            }
        });
        assert_eq!(names(&dir), ["run.ckpt"]);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_headers_and_payloads_are_errors() {
        let good = Checkpoint::new(&model(0)).to_bytes().unwrap();
        let msg = |bytes: &[u8]| Checkpoint::from_bytes(bytes).unwrap_err().to_string();
        assert!(
            msg(&good[..10]).contains("truncated header: expected at least 24 bytes, found 10")
        );
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(msg(&magic).contains("wrong magic: expected b\"TGRADCKP\""));
        let mut version = good.clone();
        version[8] = 6;
        assert!(
            msg(&version)
                .contains("format version 6 is newer than this build reads, expected at most 5")
        );
        assert!(msg(&good[..good.len() - 3]).contains("truncated payload"));
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0x10;
        assert!(msg(&flipped).contains("checksum mismatch"));
    }

    #[test]
    fn a_file_too_large_for_memory_is_an_error_not_an_abort() {
        // a sparse 1 TiB file whose header agrees with its size: costs nothing on disk
        let dir = std::env::temp_dir().join(format!("tapegrad-ckpt-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.ckpt");
        let len: u64 = 1 << 40;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&(len - HEADER_LEN as u64).to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        std::fs::write(&path, &header).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let err = Checkpoint::load(&path).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("huge.ckpt"), "{err}");
        assert!(
            err.contains("1099511627776 bytes do not fit in memory"),
            "{err}"
        );
    }

    #[test]
    fn a_lying_length_prefix_is_an_error_not_an_allocation() {
        // a payload whose first parameter claims 2^60 values, with a valid checksum
        let payload = Payload {
            params: vec![StoredTensor {
                name: "w".into(),
                shape: vec![1],
                values: vec![1.0],
            }],
            buffers: vec![],
            rngs: vec![],
            scaler: None,
            training: None,
            metadata: Vec::new(),
        };
        let mut body =
            bincode::serde::encode_to_vec(&payload, bincode::config::standard()).unwrap();
        // layout: params len (1 byte), name len (1) "w", shape len (1), 1 (1), values len (1)
        assert_eq!(body[5], 1);
        let huge = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]; // varint u64 2^60
        body.splice(5..6, huge);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        let err = Checkpoint::from_bytes(&bytes).unwrap_err().to_string();
        assert!(err.contains("bincode could not decode"), "{err}");
    }

    #[test]
    fn a_shape_no_array_can_hold_is_an_error_not_a_panic() {
        // zero elements match the empty values, but 2^63 is too large for any array's axis
        let payload = Payload {
            params: vec![StoredTensor {
                name: "w".into(),
                shape: vec![0, 1 << 63],
                values: vec![],
            }],
            buffers: vec![],
            rngs: vec![],
            scaler: None,
            training: None,
            metadata: Vec::new(),
        };
        let err = Checkpoint::from_bytes(&encode(&payload).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "parameter \"w\" has shape [0, 9223372036854775808], which no array can hold"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_huge_file_whose_header_disagrees_is_refused_without_being_read() {
        // a sparse 64 GiB file: reading it whole would exhaust memory
        let dir = folder("huge");
        let path = dir.join("huge.ckpt");
        let mut header = Checkpoint::new(&model(0)).to_bytes().unwrap();
        header.truncate(HEADER_LEN);
        std::fs::write(&path, &header).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(64 << 30)
            .unwrap();
        let err = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("trailing bytes after the payload: expected")
                && err.contains("found 68719476712"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A checkpoint file of format `version` around `payload`.
    fn file_of(version: u32, payload: &impl Serialize) -> Vec<u8> {
        let body = bincode::serde::encode_to_vec(payload, bincode::config::standard()).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn files_of_versions_1_to_4_still_resume() {
        // a model and an SGD with momentum after a step, saved in this build's format
        let mut trained = model(3);
        let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        let tape = crate::Tape::new();
        let x = tape.constant(tensor::ones(&[2, 3]));
        let loss = crate::Module::forward(&trained, x, crate::Mode::Train).cross_entropy(&[0, 1]);
        sgd.step(&mut trained, &loss.backward()).unwrap();
        let current = Checkpoint::new(&trained).with_training(&sgd, 2).unwrap();
        let payload = decode(&current.to_bytes().unwrap(), Path::new("<memory>")).unwrap();
        assert!(payload.buffers.is_empty());
        let training = payload.training.unwrap();
        // the same content as versions 1 and 2 wrote it
        let v1 = file_of(
            1,
            &PayloadV1 {
                params: (payload.params.iter())
                    .map(|t| StoredTensor {
                        name: t.name.clone(),
                        shape: t.shape.clone(),
                        values: t.values.clone(),
                    })
                    .collect(),
                rngs: (payload.rngs.iter())
                    .map(|r| StoredRng {
                        name: r.name.clone(),
                        seed: r.seed,
                        stream: r.stream,
                        word_pos: r.word_pos,
                    })
                    .collect(),
                scaler: None,
                training: Some(StoredTrainingV1 {
                    epochs_done: training.epochs_done,
                    kind: training.kind.clone(),
                    base_lr: training.base_lr,
                    steps: training.steps,
                    epochs: training.epochs,
                    buffers: (training.buffers.iter())
                        .map(|t| StoredTensor {
                            name: t.name.clone(),
                            shape: t.shape.clone(),
                            values: t.values.clone(),
                        })
                        .collect(),
                    per_param: training.per_param,
                }),
            },
        );
        // versions 2 to 4 stored no parameter's own step count
        let stored_v2 = |t: StoredTraining| {
            assert!(t.param_steps.is_empty());
            StoredTrainingV2 {
                epochs_done: t.epochs_done,
                kind: t.kind,
                base_lr: t.base_lr,
                steps: t.steps,
                epochs: t.epochs,
                buffers: t.buffers,
                per_param: t.per_param,
                plateau: t.plateau,
            }
        };
        let v2 = file_of(
            2,
            &PayloadV2 {
                params: payload.params,
                rngs: payload.rngs,
                scaler: None,
                training: Some(stored_v2(training)),
            },
        );
        let again = || decode(&current.to_bytes().unwrap(), Path::new("<memory>")).unwrap();
        let v3 = again();
        let v3 = file_of(
            3,
            &PayloadV3 {
                params: v3.params,
                buffers: v3.buffers,
                rngs: v3.rngs,
                scaler: None,
                training: v3.training.map(stored_v2),
            },
        );
        let v4 = again();
        let v4 = file_of(
            4,
            &PayloadV4 {
                params: v4.params,
                buffers: v4.buffers,
                rngs: v4.rngs,
                scaler: None,
                training: v4.training.map(stored_v2),
                metadata: v4.metadata,
            },
        );
        for (version, bytes) in [(1, v1), (2, v2), (3, v3), (4, v4)] {
            let (mut fresh, mut fresh_sgd) =
                (model(9), Sgd::new(0.1).unwrap().momentum(0.9).unwrap());
            let checkpoint = Checkpoint::from_bytes(&bytes).unwrap();
            assert_eq!(
                checkpoint.resume(&mut fresh, &mut fresh_sgd).unwrap(),
                2,
                "v{version}"
            );
            assert_eq!(params(&fresh), params(&trained), "v{version}");
            assert_eq!(
                fresh_sgd.state().unwrap(),
                sgd.state().unwrap(),
                "v{version}"
            );
        }
    }
}
