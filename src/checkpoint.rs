//! Checkpoints: a model's named parameters and buffers, and optionally a fitted [`Scaler`] and the
//! training state, in one file that is written atomically and checked when read back; plus
//! export to and import from safetensors ([`export_safetensors`], [`import_safetensors`]).
//!
//! # Format, version 5
//!
//! ```text
//! offset  bytes  field
//!      0      8  magic: the ASCII bytes "TGRADCKP"
//!      8      4  format version, u32 little-endian (5; files of versions 1 to 4 load too)
//!     12      8  payload length n, u64 little-endian
//!     20      4  CRC-32 of the payload, u32 little-endian
//!     24      n  payload: bincode 2 (standard configuration) of the serde record below
//! ```
//!
//! The checksum is CRC-32 as in zlib, gzip and PNG (IEEE 802.3 polynomial `0x04C11DB7`,
//! reflected, computed by the `crc32fast` crate): it catches every burst error up to 32
//! bits and all but 2⁻³² of random corruptions. It guards against damage, not tampering.
//!
//! The payload holds, in order: the parameters (dotted name, shape, values in row-major
//! order), from version 3 on the modules' buffers (such as batch norms' running statistics,
//! stored as parameters are), the state of every random generator a module keeps (name, ChaCha8 seed, stream
//! and word position), the fitted scaler if any, and the training state if any (epochs
//! done, the optimizer's kind, base learning rate, step and epoch counters, its
//! per-parameter buffers, and from version 2 on, where a reduction of the rate on a plateau
//! stands: the best value, the epochs without improvement and the cooldown left, or
//! nothing, and from version 5 on the step counts of the parameters that took fewer steps
//! than the optimizer, which earlier versions take to have taken as many), and from
//! version 4 on the user's metadata (key-value strings, [`Checkpoint::with_metadata`]). Decoding a payload of `n` bytes may claim up to 16 bytes of
//! memory per byte of the smallest power of two at or above `n` (bincode's limit). Every
//! record tapegrad writes fits it, whatever its size: bincode claims a primitive's
//! in-memory size (at most 16 bytes, for a `u128`) and stores it in at least one byte, and
//! claims a string's bytes once each. So a corrupted length field cannot make decoding
//! allocate more than 32 times the file's size.
//!
//! # Guarantees
//! - [`Checkpoint::save`] writes to a temporary file in the target's folder, flushes and
//!   syncs it, then renames it over the target: a crash or an error mid-write leaves the
//!   previous checkpoint intact. A save that fails with an error removes its temporary file.
//! - Temporary files are named `.{name}.tmp-{pid}-{n}` for a target named `{name}`, with the
//!   writing process's id and a counter (for a name over 200 bytes, its first 100 bytes, `~`
//!   and a hash of the whole name stand for `{name}`, so that the temporary name stays within
//!   the 255 bytes file systems allow). A process killed mid-save (`kill -9`, a crash, a
//!   power cut) cannot remove its own, so each save first removes those of the same target
//!   whose save is over: the ones of its own process that no save of this process is
//!   writing (a process that reuses the pid of an earlier one, as a restarted container
//!   does), and, on Linux, those of a process that no longer runs (no `/proc/{pid}`, or a
//!   zombie). Elsewhere, where a process's liveness cannot be told without platform calls,
//!   it removes those of another process that nobody has modified for an hour. The save of
//!   another thread or of a running process is never touched, nor any file whose name does
//!   not follow the pattern for this target (another target's, a user's `.run.ckpt.bak`).
//!   Saves of one folder are assumed to run in one PID namespace (one machine, one
//!   container); a writer elsewhere whose temporary file is removed gets an error from its
//!   rename, never a damaged target. [`export_safetensors`] writes the same way.
//! - Reading checks, in order: the file exists, the magic, the format version, the payload
//!   length, the checksum, the decoding, that every tensor's values fit its shape, and that
//!   a stored scaler passes [`Scaler::validate`] (finite shifts, finite nonzero scales).
//!   Restoring checks that names and shapes match the model exactly before it changes
//!   anything. Every failure is an [`Error`] naming the file and what was expected and
//!   found; none panics. Saving refuses a scaler that loading would refuse, so every
//!   checkpoint [`Checkpoint::save`] writes loads back.

mod format;
mod safetensors;

pub use self::safetensors::{export_safetensors, import_safetensors, safetensors_bytes};
pub(crate) use self::safetensors::{export_with_scaler, import_with_scaler};

pub(crate) use self::format::write_atomically;
use self::format::{Payload, StoredRng, StoredTraining, stored, tensor_of, unique};
use crate::data::Scaler;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::{Optimizer, OptimizerState};
use crate::tensor::{Elem, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The path named in errors about a checkpoint decoded from memory.
const MEMORY: &str = "<memory>";

/// What is wrong with the values of the stored tensor `name`, if anything: a value that is
/// not finite, or a negative one in a batch norm's running variance (named `running_var`,
/// as PyTorch names it), which would turn evaluation's `1/√(var + ε)` into NaN.
pub(crate) fn value_problem<'v>(
    name: &str,
    mut values: impl Iterator<Item = &'v Elem>,
) -> Option<String> {
    let variance = name == "running_var" || name.ends_with(".running_var");
    let (index, value) = values
        .by_ref()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || (variance && **v < 0.0))?;
    Some(match value.is_finite() {
        true => format!("element {index}: expected a variance >= 0, found {value}"),
        false => format!("element {index}: expected a finite value, found {value}"),
    })
}

/// A snapshot of a model's parameters, with optionally a fitted [`Scaler`] and the training
/// state, that can be saved to a file and restored into a model of the same architecture.
///
/// # Examples
/// Save a model with the scaler fitted on its training data, and load both back:
/// ```
/// use tapegrad::{ndarray::array, tensor, Dataset, Linear, Scaler};
/// use tapegrad::checkpoint::Checkpoint;
/// let dir = std::env::temp_dir().join(format!("tapegrad-doc-ckpt-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("model.ckpt");
///
/// let train = Dataset::from_floats(array![[1.0, 10.0], [3.0, 30.0]], vec![0, 1])?;
/// let model = Linear::from_parts(tensor::from_vec(vec![1.0, -1.0], &[1, 2])?, None)?;
/// Checkpoint::new(&model).with_scaler(Scaler::standardize(&train)?).save(&path)?;
///
/// let mut fresh = Linear::from_parts(tensor::zeros(&[1, 2]), None)?;
/// let checkpoint = Checkpoint::load(&path)?;
/// checkpoint.restore_model(&mut fresh)?;
/// assert_eq!(fresh.weight().value(), model.weight().value());
/// assert_eq!(checkpoint.scaler(), Some(&Scaler::standardize(&train)?));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Checkpoint {
    source: PathBuf,
    params: Vec<(String, Tensor)>,
    buffers: Vec<(String, Tensor)>,
    rngs: Vec<(String, ChaCha8Rng)>,
    scaler: Option<Scaler>,
    training: Option<(usize, OptimizerState)>,
    metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// A snapshot of `model`'s parameters and buffers ([`Module::visit_buffers`]) by their
    /// dotted names, and of the random generators its modules keep
    /// ([`Module::visit_rngs`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[2, 3]), Some(tensor::zeros(&[2])))?;
    /// let checkpoint = Checkpoint::new(&model);
    /// let names: Vec<&str> = checkpoint.params().iter().map(|(n, _)| n.as_str()).collect();
    /// assert_eq!(names, ["weight", "bias"]);
    /// assert!(checkpoint.scaler().is_none() && checkpoint.epochs_done().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(model: &dyn Module) -> Checkpoint {
        let mut params = Vec::new();
        model.visit_params(&mut |name, p| params.push((name.to_string(), p.value().to_owned())));
        let mut buffers = Vec::new();
        model.visit_buffers(&mut |name, b| buffers.push((name.to_string(), b.to_owned())));
        let mut rngs = Vec::new();
        model.visit_rngs(&mut |name, rng| rngs.push((name.to_string(), rng.clone())));
        Checkpoint {
            source: PathBuf::from(MEMORY),
            params,
            buffers,
            rngs,
            scaler: None,
            training: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Adds the preprocessing fitted on the training data, so that inference applies
    /// exactly the training-time transform.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Scaler};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 784]), None)?;
    /// let pixels = Scaler::affine(784, 1.0 / 255.0, 0.0)?;
    /// let bytes = Checkpoint::new(&model).with_scaler(pixels.clone()).to_bytes()?;
    /// assert_eq!(Checkpoint::from_bytes(&bytes)?.scaler(), Some(&pixels));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_scaler(mut self, scaler: Scaler) -> Checkpoint {
        self.scaler = Some(scaler);
        self
    }

    /// Adds the training state: the optimizer's state (momentum buffers or moments, step and
    /// epoch counters, so the schedule's position, and base learning rate) and the number of
    /// epochs done. With it, [`Checkpoint::resume`] and
    /// [`FitConfig::start_epoch`](crate::FitConfig::start_epoch) continue training bit for
    /// bit as if it had never stopped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the optimizer cannot save its state.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut sgd = Sgd::new(0.1)?.momentum(0.9)?;
    /// let tape = Tape::new();
    /// let loss = model.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum();
    /// sgd.step(&mut model, &loss.backward())?;
    /// let checkpoint = Checkpoint::new(&model).with_training(&sgd, 3)?;
    /// assert_eq!(checkpoint.epochs_done(), Some(3));
    /// assert_eq!(checkpoint.optimizer_state().map(|s| s.steps), Some(1));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_training(
        mut self,
        optimizer: &dyn Optimizer,
        epochs_done: usize,
    ) -> Result<Checkpoint> {
        self.training = Some((epochs_done, optimizer.state()?));
        Ok(self)
    }

    /// Adds a key-value pair of one's own, such as a setting of the run, the data's version
    /// or a note, as the extra entries of the dictionary a PyTorch user hands `torch.save`;
    /// a later value for the same key replaces the earlier one.
    ///
    /// # Examples
    /// Refuse to resume a run with other settings than the checkpoint's:
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// let bytes = Checkpoint::new(&model).with_metadata("seed", "7").to_bytes()?;
    /// let checkpoint = Checkpoint::from_bytes(&bytes)?;
    /// assert_eq!(checkpoint.metadata().get("seed").map(String::as_str), Some("7"));
    /// assert_ne!(checkpoint.metadata().get("seed").map(String::as_str), Some("0"));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Checkpoint {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The key-value pairs added with [`Checkpoint::with_metadata`], sorted by key; empty for
    /// files of format version 3 and older.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// let checkpoint = Checkpoint::new(&model).with_metadata("b", "2").with_metadata("a", "1");
    /// let pairs: Vec<(&str, &str)> =
    ///     checkpoint.metadata().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    /// assert_eq!(pairs, [("a", "1"), ("b", "2")]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The parameters, by name, in the model's visiting order.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?, None)?;
    /// let checkpoint = Checkpoint::new(&model);
    /// let (name, value) = &checkpoint.params()[0];
    /// assert_eq!((name.as_str(), value.shape()), ("weight", &[1, 2][..]));
    /// assert_eq!(value.as_slice(), Some(&[1.0, 2.0][..]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The stored buffers (such as batch norms' running statistics,
    /// [`Module::visit_buffers`]) by their dotted names, in the model's order; empty for a
    /// model without buffers and for files of format version 2 and older.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::BatchNorm1d;
    /// use tapegrad::checkpoint::Checkpoint;
    /// let checkpoint = Checkpoint::new(&BatchNorm1d::new(3)?);
    /// let names: Vec<&str> = checkpoint.buffers().iter().map(|(n, _)| n.as_str()).collect();
    /// assert_eq!(names, ["running_mean", "running_var", "num_batches_tracked"]);
    /// assert_eq!(checkpoint.buffers()[1].1.as_slice(), Some(&[1.0, 1.0, 1.0][..]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn buffers(&self) -> &[(String, Tensor)] {
        &self.buffers
    }

    /// The stored scaler, if one was saved.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Scaler};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// assert_eq!(Checkpoint::new(&model).scaler(), None);
    /// let scaler = Scaler::affine(2, 0.5, 1.0)?;
    /// assert_eq!(Checkpoint::new(&model).with_scaler(scaler.clone()).scaler(), Some(&scaler));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn scaler(&self) -> Option<&Scaler> {
        self.scaler.as_ref()
    }

    /// The epochs done, if training state was saved.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Sgd};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// assert_eq!(Checkpoint::new(&model).epochs_done(), None); // model only
    /// let bytes = Checkpoint::new(&model).with_training(&Sgd::new(0.1)?, 7)?.to_bytes()?;
    /// assert_eq!(Checkpoint::from_bytes(&bytes)?.epochs_done(), Some(7));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn epochs_done(&self) -> Option<usize> {
        self.training.as_ref().map(|(epochs, _)| *epochs)
    }

    /// The saved optimizer state, if training state was saved.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Sgd};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// assert!(Checkpoint::new(&model).optimizer_state().is_none());
    /// let checkpoint = Checkpoint::new(&model).with_training(&Sgd::new(0.25)?, 0)?;
    /// let state = checkpoint.optimizer_state().unwrap();
    /// assert_eq!((state.base_lr, state.steps), (0.25, 0));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn optimizer_state(&self) -> Option<&OptimizerState> {
        self.training.as_ref().map(|(_, state)| state)
    }

    /// The file this checkpoint was read from (`<memory>` when it was made or decoded in
    /// memory).
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// assert_eq!(Checkpoint::new(&model).source(), Path::new("<memory>"));
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-source-{}.ckpt", std::process::id()));
    /// Checkpoint::new(&model).save(&path)?;
    /// assert_eq!(Checkpoint::load(&path)?.source(), path.as_path());
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The checkpoint as bytes: the header, then the bincode payload (see the module docs).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the scaler fails [`Scaler::validate`] (loading would
    /// refuse it), or when bincode cannot encode the record (not expected for the types
    /// stored).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// let bytes = Checkpoint::new(&model).to_bytes()?;
    /// assert_eq!(&bytes[..8], b"TGRADCKP");
    /// assert_eq!(bytes[8..12], 5u32.to_le_bytes()); // format version 5
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        // a file that loading would refuse is not written
        if let Some(problem) = self.scaler.as_ref().and_then(Scaler::first_problem) {
            return Err(Error::InvalidArgument {
                op: "checkpoint save",
                message: format!("scaler {problem}"),
            });
        }
        let params = self.params.iter().map(|(n, t)| stored(n, t)).collect();
        let buffers = self.buffers.iter().map(|(n, t)| stored(n, t)).collect();
        let rngs = (self.rngs.iter())
            .map(|(name, rng)| StoredRng {
                name: name.clone(),
                seed: rng.get_seed(),
                stream: rng.get_stream(),
                word_pos: rng.get_word_pos(),
            })
            .collect();
        let training = self.training.as_ref().map(|(epochs_done, state)| {
            let per_param = state.buffers.values().map(Vec::len).max().unwrap_or(0);
            StoredTraining {
                epochs_done: *epochs_done as u64,
                kind: state.kind.clone(),
                base_lr: state.base_lr,
                steps: state.steps,
                epochs: state.epochs,
                buffers: (state.buffers.iter())
                    .flat_map(|(name, b)| b.iter().map(move |t| stored(name, t)))
                    .collect(),
                per_param: per_param as u32,
                plateau: (state.plateau).map(|p| (p.best, p.bad_epochs, p.cooldown_left)),
                param_steps: (state.param_steps.iter())
                    .map(|(name, steps)| (name.clone(), *steps))
                    .collect(),
            }
        });
        let payload = Payload {
            params,
            buffers,
            rngs,
            scaler: self.scaler.clone(),
            training,
            metadata: (self.metadata.iter())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        format::encode(&payload)
    }

    /// Writes the checkpoint to `path` atomically: to a temporary file in the same folder,
    /// flushed and synced, then renamed over `path`. If anything fails, `path` keeps its
    /// previous contents and the temporary file is removed.
    ///
    /// Before writing, it removes the temporary files that earlier saves of `path` left
    /// behind when their process died mid-write (see the module docs for the rule).
    ///
    /// # Errors
    /// As [`Checkpoint::to_bytes`]; [`Error::Io`] naming `path` when the folder is missing or
    /// not writable, or a write, sync or rename fails; when `path` is a read-only file, or
    /// exists but is not a regular file (a directory, a device such as `/dev/null`, a FIFO, a
    /// socket, also behind a symbolic link: `"checkpoint save: expected a regular file or a
    /// new path, found a character device"`), refused before anything is written.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-ckpt-save-{}.ckpt", std::process::id()));
    /// let checkpoint = Checkpoint::new(&Linear::from_parts(tensor::ones(&[1, 2]), None)?);
    /// checkpoint.save(&path)?;
    /// assert_eq!(std::fs::read(&path).unwrap(), checkpoint.to_bytes()?);
    /// // a missing folder is an error naming the path, and nothing is written
    /// assert!(checkpoint.save(path.join("no-such-folder/model.ckpt")).is_err());
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomically(
            "checkpoint save",
            path.as_ref(),
            &self.to_bytes()?,
            |file, bytes| file.write_all(bytes),
        )
    }

    /// Reads and checks a checkpoint file (see the module docs for the checks).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read or is not a regular file (a FIFO, a device,
    /// a folder); [`Error::FormatVersion`] for a newer
    /// format; [`Error::Decode`] naming the file for a wrong magic, a truncated or oversized
    /// payload, a checksum mismatch, undecodable bytes, a tensor whose values do not fit
    /// its shape, or a scaler that fails [`Scaler::validate`] (naming the feature and the
    /// value).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-ckpt-load-{}.ckpt", std::process::id()));
    /// Checkpoint::new(&Linear::from_parts(tensor::ones(&[2, 2]), None)?).save(&path)?;
    /// assert_eq!(Checkpoint::load(&path)?.params()[0].1.shape(), &[2, 2]);
    /// std::fs::write(&path, b"not a checkpoint").unwrap();
    /// let err = Checkpoint::load(&path).unwrap_err().to_string();
    /// assert!(err.contains(&path.display().to_string())); // errors name the file
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = format::read_checkpoint_file(path)?;
        Self::from_payload(format::decode(&bytes, path)?, path)
    }

    /// Decodes checkpoint bytes (as [`Checkpoint::load`], with `<memory>` as the path in
    /// errors).
    ///
    /// # Errors
    /// As [`Checkpoint::load`], except [`Error::Io`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let mut bytes = Checkpoint::new(&Linear::from_parts(tensor::ones(&[1, 2]), None)?).to_bytes()?;
    /// assert_eq!(Checkpoint::from_bytes(&bytes)?.params().len(), 1);
    /// *bytes.last_mut().unwrap() ^= 1; // one flipped bit: the checksum no longer matches
    /// assert!(Checkpoint::from_bytes(&bytes).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        let path = Path::new(MEMORY);
        Self::from_payload(format::decode(bytes, path)?, path)
    }

    fn from_payload(payload: Payload, path: &Path) -> Result<Checkpoint> {
        let params = unique(payload.params, "parameter", path)?;
        let buffers = unique(payload.buffers, "buffer", path)?;
        let mut rngs = Vec::with_capacity(payload.rngs.len());
        for r in payload.rngs {
            if rngs.iter().any(|(name, _)| *name == r.name) {
                return Err(Error::decode(
                    path,
                    format!("checkpoint: generator \"{}\" appears twice", r.name),
                ));
            }
            let mut rng = ChaCha8Rng::from_seed(r.seed);
            rng.set_stream(r.stream);
            rng.set_word_pos(r.word_pos);
            rngs.push((r.name, rng));
        }
        if let Some(problem) = payload.scaler.as_ref().and_then(Scaler::first_problem) {
            return Err(Error::decode(path, format!("checkpoint: scaler {problem}")));
        }
        let training = match payload.training {
            None => None,
            Some(t) => {
                let per_param = t.per_param as usize;
                if (per_param == 0) != t.buffers.is_empty()
                    || t.buffers.len() % per_param.max(1) != 0
                {
                    return Err(Error::decode(
                        path,
                        format!(
                            "checkpoint: optimizer state: expected a multiple of {per_param} buffers, found {}",
                            t.buffers.len()
                        ),
                    ));
                }
                let mut buffers: BTreeMap<String, Vec<Tensor>> = BTreeMap::new();
                let chunks = (t.buffers.into_iter()).map(|b| tensor_of(b, "buffer", path));
                let mut chunks = chunks.peekable();
                while chunks.peek().is_some() {
                    let group: Vec<(String, Tensor)> =
                        chunks.by_ref().take(per_param).collect::<Result<_>>()?;
                    let name = group[0].0.clone();
                    if group.iter().any(|(n, _)| *n != name) || buffers.contains_key(&name) {
                        return Err(Error::decode(
                            path,
                            format!(
                                "checkpoint: optimizer state: expected {per_param} buffers for \"{name}\" in one group, found them split or repeated"
                            ),
                        ));
                    }
                    buffers.insert(name, group.into_iter().map(|(_, t)| t).collect());
                }
                let mut param_steps = BTreeMap::new();
                for (name, steps) in t.param_steps {
                    if param_steps.insert(name.clone(), steps).is_some() {
                        return Err(Error::decode(
                            path,
                            format!(
                                "checkpoint: optimizer state: the steps of \"{name}\" appear twice"
                            ),
                        ));
                    }
                }
                let state = OptimizerState {
                    kind: t.kind,
                    base_lr: t.base_lr,
                    steps: t.steps,
                    epochs: t.epochs,
                    buffers,
                    param_steps,
                    plateau: t.plateau.map(|(best, bad_epochs, cooldown_left)| {
                        crate::optim::PlateauState {
                            best,
                            bad_epochs,
                            cooldown_left,
                        }
                    }),
                };
                let epochs = usize::try_from(t.epochs_done).map_err(|_| {
                    Error::decode(
                        path,
                        format!("checkpoint: {} epochs done is too many", t.epochs_done),
                    )
                })?;
                Some((epochs, state))
            }
        };
        let mut metadata = BTreeMap::new();
        for (key, value) in payload.metadata {
            if metadata.contains_key(&key) {
                return Err(Error::decode(
                    path,
                    format!("checkpoint: metadata key \"{key}\" appears twice"),
                ));
            }
            metadata.insert(key, value);
        }
        Ok(Checkpoint {
            source: path.into(),
            params,
            buffers,
            rngs,
            scaler: payload.scaler,
            training,
            metadata,
        })
    }

    /// Checks that every stored value (parameters, buffers, optimizer buffers and the
    /// scaler's shifts and scales) is finite, and every batch norm's running variance
    /// (`running_var`) at least 0, as restoring and resuming do before they change
    /// anything, so that no NaN or infinity from a file gets into a model. (Loading checks
    /// the scaler, and leaves the rest to restoring, so that a damaged run's checkpoint can
    /// still be loaded and inspected.)
    ///
    /// # Errors
    /// [`Error::Decode`] naming the file, the tensor, the element and its value, or the
    /// scaler's feature and its value.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Module};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let good = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// assert!(Checkpoint::new(&good).ensure_finite().is_ok());
    /// let bad = Linear::from_parts(tensor::from_vec(vec![1.0, f32::NAN], &[1, 2])?, None)?;
    /// let err = Checkpoint::new(&bad).ensure_finite().unwrap_err().to_string();
    /// assert!(err.contains("\"weight\" element 1"));
    /// let mut norm = tapegrad::BatchNorm1d::new(2)?;
    /// norm.visit_buffers_mut(&mut |name, b| if name == "running_var" { b[[1]] = -0.5 });
    /// let err = Checkpoint::new(&norm).ensure_finite().unwrap_err().to_string();
    /// assert!(err.ends_with("\"running_var\" element 1: expected a variance >= 0, found -0.5"));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn ensure_finite(&self) -> Result<()> {
        if let Some(problem) = self.scaler.as_ref().and_then(Scaler::first_problem) {
            return Err(Error::decode(
                &self.source,
                format!("checkpoint: scaler {problem}"),
            ));
        }
        let buffers = self.optimizer_state().into_iter().flat_map(|s| {
            (s.buffers.iter()).flat_map(|(n, b)| b.iter().map(move |t| (n.as_str(), t)))
        });
        let params = self.params.iter().map(|(n, t)| (n.as_str(), t));
        let module_buffers = self.buffers.iter().map(|(n, t)| (n.as_str(), t));
        for (kind, (name, tensor)) in params
            .map(|p| ("parameter", p))
            .chain(module_buffers.map(|b| ("buffer", b)))
            .chain(buffers.map(|b| ("optimizer buffer of", b)))
        {
            if let Some(problem) = value_problem(name, tensor.iter()) {
                return Err(Error::decode(
                    &self.source,
                    format!("checkpoint: {kind} \"{name}\" {problem}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks that every stored value is finite ([`Checkpoint::ensure_finite`]) and that the
    /// stored parameters and generators match `model`'s exactly.
    fn check_model(&self, model: &dyn Module) -> Result<()> {
        self.ensure_finite()?;
        let mut shapes = Vec::new();
        model.visit_params(&mut |name, p| {
            shapes.push((name.to_string(), p.value().shape().to_vec()))
        });
        check_names(&self.params, &shapes, &self.source)?;
        let mut buffer_shapes = Vec::new();
        model.visit_buffers(&mut |name, b| {
            buffer_shapes.push((name.to_string(), b.shape().to_vec()))
        });
        check_names(&self.buffers, &buffer_shapes, &self.source)?;
        let mut model_rngs = Vec::new();
        model.visit_rngs(&mut |name, _| model_rngs.push(name.to_string()));
        let stored: Vec<&str> = self.rngs.iter().map(|(n, _)| n.as_str()).collect();
        if stored != model_rngs {
            return Err(Error::Shape {
                op: "checkpoint load",
                expected: format!("the model's random generators {model_rngs:?}"),
                found: format!("{stored:?} in {}", self.source.display()),
            });
        }
        Ok(())
    }

    /// Copies the stored parameters and generator states into `model`, which must have
    /// exactly the same parameter names and shapes (the same architecture). Nothing changes
    /// unless everything fits.
    ///
    /// # Errors
    /// [`Error::ParamMismatch`] naming the parameter and both shapes, when one is missing on
    /// either side or the shapes differ:
    /// `checkpoint load: parameter "0.weight" has shape [2, 8] in file, [2, 4] in model
    /// (path: run.ckpt)`; [`Error::Shape`] when the models' random generators differ;
    /// [`Error::Decode`] naming the tensor, the element and its value for a stored value that
    /// is not finite ([`Checkpoint::ensure_finite`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let trained = Linear::from_parts(tensor::from_vec(vec![4.0, 5.0], &[1, 2])?, None)?;
    /// let checkpoint = Checkpoint::new(&trained);
    /// let mut model = Linear::from_parts(tensor::zeros(&[1, 2]), None)?;
    /// checkpoint.restore_model(&mut model)?;
    /// assert_eq!(model.weight().value(), trained.weight().value());
    /// // another architecture is refused and left unchanged
    /// let mut biased = Linear::from_parts(tensor::zeros(&[1, 2]), Some(tensor::zeros(&[1])))?;
    /// assert!(checkpoint.restore_model(&mut biased).is_err());
    /// assert!(biased.weight().value().iter().all(|&w| w == 0.0));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn restore_model(&self, model: &mut dyn Module) -> Result<()> {
        self.check_model(&*model)?;
        let values: HashMap<&str, &Tensor> =
            self.params.iter().map(|(n, t)| (n.as_str(), t)).collect();
        model.visit_params_mut(&mut |name, p| p.value_mut().assign(values[name]));
        let buffers: HashMap<&str, &Tensor> =
            self.buffers.iter().map(|(n, t)| (n.as_str(), t)).collect();
        model.visit_buffers_mut(&mut |name, b| b.assign(buffers[name]));
        let rngs: HashMap<&str, &ChaCha8Rng> =
            self.rngs.iter().map(|(n, r)| (n.as_str(), r)).collect();
        model.visit_rngs_mut(&mut |name, rng| *rng = rngs[name].clone());
        Ok(())
    }

    /// Restores the model ([`Checkpoint::restore_model`]) and the optimizer's state, and
    /// returns the epochs done: pass them as
    /// [`FitConfig::start_epoch`](crate::FitConfig::start_epoch) to continue training.
    /// Build the optimizer with the same hyperparameters as before; its state comes from
    /// the file. Nothing changes unless everything fits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the checkpoint holds no training state or the state
    /// of another kind of optimizer; [`Error::ParamMismatch`] as in
    /// [`Checkpoint::restore_model`], also for an optimizer buffer whose parameter is
    /// missing or has another shape.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// use tapegrad::checkpoint::Checkpoint;
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut sgd = Sgd::new(0.1)?.momentum(0.9)?;
    /// let tape = Tape::new();
    /// let grads = model.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
    /// sgd.step(&mut model, &grads)?;
    /// let checkpoint = Checkpoint::new(&model).with_training(&sgd, 2)?;
    /// let mut fresh = Linear::from_parts(tensor::zeros(&[1, 1]), None)?;
    /// let mut fresh_sgd = Sgd::new(0.1)?.momentum(0.9)?;
    /// assert_eq!(checkpoint.resume(&mut fresh, &mut fresh_sgd)?, 2); // start at epoch 2
    /// assert_eq!((fresh_sgd.steps(), fresh.weight().value()), (1, model.weight().value()));
    /// // a checkpoint of the model only has nothing to resume
    /// assert!(Checkpoint::new(&model).resume(&mut fresh, &mut fresh_sgd).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn resume(&self, model: &mut dyn Module, optimizer: &mut dyn Optimizer) -> Result<usize> {
        let Some((epochs_done, state)) = &self.training else {
            return Err(Error::InvalidArgument {
                op: "checkpoint resume",
                message: format!(
                    "expected training state in {}, found a checkpoint of the model only",
                    self.source.display()
                ),
            });
        };
        self.check_model(&*model)?;
        let shapes: HashMap<&str, &[usize]> = self
            .params
            .iter()
            .map(|(n, t)| (n.as_str(), t.shape()))
            .collect();
        for (name, buffers) in &state.buffers {
            for b in buffers {
                if shapes.get(name.as_str()) != Some(&b.shape()) {
                    return Err(Error::ParamMismatch {
                        path: self.source.clone(),
                        name: format!("{name} (optimizer buffer)"),
                        file: Some(b.shape().to_vec()),
                        model: shapes.get(name.as_str()).map(|s| s.to_vec()),
                    });
                }
            }
        }
        (optimizer.load_state(state.clone())).map_err(|e| e.in_file(&self.source))?;
        self.restore_model(model)?;
        Ok(*epochs_done)
    }
}

/// Saves `model`'s parameters to `path` (a [`Checkpoint`] without scaler or training state).
///
/// # Errors
/// As [`Checkpoint::save`].
///
/// # Examples
/// ```
/// use tapegrad::{checkpoint, tensor, Linear};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-save-{}.ckpt", std::process::id()));
/// let model = Linear::from_parts(tensor::from_vec(vec![2.0, 3.0], &[1, 2])?, None)?;
/// checkpoint::save(&model, &path)?;
/// let mut other = Linear::from_parts(tensor::zeros(&[1, 2]), None)?;
/// checkpoint::load(&mut other, &path)?;
/// assert_eq!(other.weight().value(), model.weight().value());
/// // a model of another shape is refused, naming the parameter and both shapes
/// let mut wide = Linear::from_parts(tensor::zeros(&[1, 3]), None)?;
/// let err = checkpoint::load(&mut wide, &path).unwrap_err().to_string();
/// assert!(err.contains("parameter \"weight\" has shape [1, 2] in file, [1, 3] in model"));
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn save(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    Checkpoint::new(model).save(path)
}

/// Loads parameters saved by [`save`] (or any [`Checkpoint`]) into `model`, which must have
/// the same architecture.
///
/// # Errors
/// As [`Checkpoint::load`] and [`Checkpoint::restore_model`].
///
/// # Examples
/// ```
/// use tapegrad::{checkpoint, tensor, Linear};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-load-{}.ckpt", std::process::id()));
/// let trained = Linear::from_parts(tensor::from_vec(vec![0.5, -0.5], &[2, 1])?, None)?;
/// checkpoint::save(&trained, &path)?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// checkpoint::load(&mut model, &path)?;
/// assert_eq!(model.weight().value(), trained.weight().value());
/// std::fs::remove_file(&path).unwrap();
/// assert!(checkpoint::load(&mut model, &path).is_err()); // no file
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn load(model: &mut dyn Module, path: impl AsRef<Path>) -> Result<()> {
    Checkpoint::load(path)?.restore_model(model)
}

/// Checks that `stored` tensors and the model's `(name, shape)` list hold the same names
/// with the same shapes.
pub(crate) fn check_names(
    stored: &[(String, Tensor)],
    model: &[(String, Vec<usize>)],
    path: &Path,
) -> Result<()> {
    let in_file: HashMap<&str, &[usize]> = stored
        .iter()
        .map(|(n, t)| (n.as_str(), t.shape()))
        .collect();
    for (name, shape) in model {
        match in_file.get(name.as_str()) {
            Some(file) if *file == shape.as_slice() => {}
            file => {
                return Err(Error::ParamMismatch {
                    path: path.into(),
                    name: name.clone(),
                    file: file.map(|s| s.to_vec()),
                    model: Some(shape.clone()),
                });
            }
        }
    }
    let in_model: std::collections::HashSet<&str> = model.iter().map(|(n, _)| n.as_str()).collect();
    if let Some((name, t)) = stored.iter().find(|(n, _)| !in_model.contains(n.as_str())) {
        return Err(Error::ParamMismatch {
            path: path.into(),
            name: name.clone(),
            file: Some(t.shape().to_vec()),
            model: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Dropout, Init, Linear, Mode, Relu, Sequential};
    use crate::optim::Sgd;
    use crate::{Tape, tensor};

    pub(super) fn model(seed: u64) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Sequential::new(vec![
            Box::new(Linear::new(3, 4, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
            Box::new(Dropout::new(0.5, &mut rng).unwrap()),
            Box::new(Linear::new(4, 2, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap()
    }

    pub(super) fn params(m: &dyn Module) -> Vec<Tensor> {
        let mut v = Vec::new();
        m.visit_params(&mut |_, p| v.push(p.value().to_owned()));
        v
    }

    #[test]
    fn round_trip_restores_parameters_and_the_dropout_generator() {
        let (a, mut b) = (model(1), model(2));
        Checkpoint::from_bytes(&Checkpoint::new(&a).to_bytes().unwrap())
            .unwrap()
            .restore_model(&mut b)
            .unwrap();
        assert_eq!(params(&a), params(&b));
        let tape = Tape::new();
        let x = tape.constant(tensor::ones(&[5, 3]));
        // the same dropout masks follow
        assert_eq!(
            a.forward(x, Mode::Train).value(),
            b.forward(x, Mode::Train).value()
        );
    }

    #[test]
    fn a_non_finite_parameter_or_buffer_loads_but_is_not_restored_or_resumed() {
        let with_norm = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            Sequential::new(vec![
                Box::new(Linear::new(3, 4, Init::default(), &mut rng).unwrap()),
                Box::new(crate::BatchNorm1d::new(4).unwrap()),
            ])
            .unwrap()
        };
        let mut nan_weight = with_norm(1);
        nan_weight.visit_params_mut(&mut |name, p| {
            if name == "0.weight" {
                p.value_mut()[[1, 2]] = f32::NAN;
            }
        });
        let mut negative_infinity_variance = with_norm(1);
        negative_infinity_variance.visit_buffers_mut(&mut |name, b| {
            if name == "1.running_var" {
                b[[3]] = f32::NEG_INFINITY;
            }
        });
        let cases = [
            (
                nan_weight,
                "parameter \"0.weight\" element 5: expected a finite value, found NaN",
            ),
            (
                negative_infinity_variance,
                "buffer \"1.running_var\" element 3: expected a finite value, found -inf",
            ),
        ];
        for (bad, problem) in cases {
            let sgd = Sgd::new(0.1).unwrap();
            let file = Checkpoint::new(&bad).with_training(&sgd, 1).unwrap();
            let loaded = Checkpoint::from_bytes(&file.to_bytes().unwrap()).unwrap();
            let mut fresh = with_norm(2);
            let before = Checkpoint::new(&fresh).to_bytes().unwrap();
            let err = loaded.restore_model(&mut fresh).unwrap_err().to_string();
            assert_eq!(err, format!("<memory>: checkpoint: {problem}"));
            let err = loaded
                .resume(&mut fresh, &mut Sgd::new(0.1).unwrap())
                .unwrap_err();
            assert!(err.to_string().ends_with(problem), "{err}");
            assert_eq!(
                Checkpoint::new(&fresh).to_bytes().unwrap(),
                before,
                "unchanged"
            );
        }
    }

    /// A scaler as a damaged file could hold it, decoded through serde as loading does
    /// (`ScalerKind::Affine` is variant 2).
    fn decoded_scaler(scale: Vec<f32>, shift: Vec<f32>) -> Scaler {
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec((2u32, scale, shift), config).unwrap();
        bincode::serde::decode_from_slice(&bytes, config).unwrap().0
    }

    #[test]
    fn a_scaler_with_a_non_finite_or_zero_value_is_refused_naming_file_feature_and_value() {
        let cases = [
            (
                vec![1.0, f32::NAN],
                vec![0.0, 0.0],
                "feature 1: expected a finite, nonzero scale, found NaN",
            ),
            (
                vec![1.0, 2.0, f32::INFINITY],
                vec![0.0; 3],
                "feature 2: expected a finite, nonzero scale, found inf",
            ),
            (
                vec![0.0],
                vec![0.0],
                "feature 0: expected a finite, nonzero scale, found 0",
            ),
            (
                vec![1.0, 1.0],
                vec![0.0, f32::NEG_INFINITY],
                "feature 1: expected a finite shift, found -inf",
            ),
            (
                vec![1.0, 1.0],
                vec![0.0],
                "expected as many shifts as scales (2), found 1",
            ),
        ];
        let dir = std::env::temp_dir().join(format!("tapegrad-ckpt-scaler-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.ckpt");
        for (scale, shift, problem) in cases {
            let bad = decoded_scaler(scale, shift);
            // a file holding it, as a damaged or hand-made one would
            let payload = Payload {
                params: vec![],
                buffers: vec![],
                rngs: vec![],
                scaler: Some(bad.clone()),
                training: None,
                metadata: vec![],
            };
            std::fs::write(&path, format::encode(&payload).unwrap()).unwrap();
            let err = Checkpoint::load(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("{}: checkpoint: scaler {problem}", path.display())
            );
            // in memory: ensure_finite refuses it, and saving refuses to write it
            let in_memory = Checkpoint::new(&model(0)).with_scaler(bad);
            let err = in_memory.ensure_finite().unwrap_err().to_string();
            assert_eq!(err, format!("<memory>: checkpoint: scaler {problem}"));
            let err = in_memory
                .save(dir.join("never.ckpt"))
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("checkpoint save: scaler {problem}"));
            assert!(!dir.join("never.ckpt").exists());
        }
        // a valid one passes both
        let good = Checkpoint::new(&model(0)).with_scaler(decoded_scaler(vec![2.0], vec![-1.0]));
        good.ensure_finite().unwrap();
        Checkpoint::from_bytes(&good.to_bytes().unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resume_restores_optimizer_state_and_refuses_model_only_files() {
        let mut a = model(0);
        let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        let tape = Tape::new();
        let loss = a
            .forward(tape.constant(tensor::ones(&[2, 3])), Mode::Train)
            .cross_entropy(&[0, 1]);
        sgd.step(&mut a, &loss.backward()).unwrap();
        let bytes = Checkpoint::new(&a)
            .with_training(&sgd, 3)
            .unwrap()
            .to_bytes()
            .unwrap();
        let c = Checkpoint::from_bytes(&bytes).unwrap();
        let (mut b, mut fresh) = (model(9), Sgd::new(0.1).unwrap().momentum(0.9).unwrap());
        assert_eq!(c.resume(&mut b, &mut fresh).unwrap(), 3);
        assert_eq!(fresh.state().unwrap(), sgd.state().unwrap());
        // another optimizer's state is refused naming the file
        let mut adam = crate::optim::Adam::new(0.1).unwrap();
        let err = c.resume(&mut b, &mut adam).unwrap_err().to_string();
        assert_eq!(
            err,
            "optimizer state: expected the state of \"adam\", found \"sgd\" (path: <memory>)"
        );
        let only = Checkpoint::from_bytes(&Checkpoint::new(&a).to_bytes().unwrap()).unwrap();
        let err = only.resume(&mut b, &mut fresh).unwrap_err().to_string();
        assert!(
            err.contains(
                "expected training state in <memory>, found a checkpoint of the model only"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_parameters_own_step_count_round_trips_and_a_repeated_one_is_refused() {
        // the first layer frozen for one of two Adam steps: its parameters took one step
        let mut a = model(0);
        let mut adam = crate::optim::Adam::new(0.01).unwrap();
        for frozen in [true, false] {
            a.visit_params_mut(&mut |name, p| {
                p.set_requires_grad(!(frozen && name.starts_with("0.")));
            });
            let tape = Tape::new();
            let loss = a
                .forward(tape.constant(tensor::ones(&[2, 3])), Mode::Train)
                .cross_entropy(&[0, 1]);
            adam.step(&mut a, &loss.backward()).unwrap();
        }
        let state = adam.state().unwrap();
        let own: Vec<(&str, u64)> = (state.param_steps.iter())
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(own, [("0.bias", 1), ("0.weight", 1)]);
        let saved = Checkpoint::new(&a).with_training(&adam, 1).unwrap();
        let loaded = Checkpoint::from_bytes(&saved.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded.optimizer_state(), Some(&state));
        // a hand-made file that gives one parameter two counts
        let mut payload =
            format::decode(&saved.to_bytes().unwrap(), Path::new("<memory>")).unwrap();
        let training = payload.training.as_mut().unwrap();
        training.param_steps.push(("0.bias".into(), 0));
        let err = Checkpoint::from_bytes(&format::encode(&payload).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the steps of \"0.bias\" appear twice"),
            "{err}"
        );
    }

    #[test]
    fn metadata_round_trips_and_a_repeated_key_is_refused() {
        let checkpoint = Checkpoint::new(&model(0))
            .with_metadata("seed", "1")
            .with_metadata("note", "ünïcode, commas, = signs")
            .with_metadata("seed", "2");
        let loaded = Checkpoint::from_bytes(&checkpoint.to_bytes().unwrap()).unwrap();
        let pairs: Vec<(&str, &str)> = (loaded.metadata().iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(pairs, [("note", "ünïcode, commas, = signs"), ("seed", "2")]);
        // a hand-made file that repeats a key
        let payload = Payload {
            params: vec![],
            buffers: vec![],
            rngs: vec![],
            scaler: None,
            training: None,
            metadata: vec![("k".into(), "1".into()), ("k".into(), "2".into())],
        };
        let err = Checkpoint::from_bytes(&format::encode(&payload).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<memory>: checkpoint: metadata key \"k\" appears twice"
        );
    }
}
