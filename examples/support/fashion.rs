//! What the Fashion-MNIST examples (`fashion_mnist`, `fashion_cnn`) share: their common
//! flags, the split into training, validation and test images with a scaler fitted on the
//! training part, the augmentations, the epoch loop with its progress bar, checkpoints and
//! resumption, the one evaluation on the test set, and `--distributed` (feature `mpi`):
//! under `mpirun`, each rank trains on its slice of every batch, rank 0 alone prints and
//! writes checkpoints.

use crate::cli::{self, CommandLine};
use crate::datasets::{self, Source};
use indicatif::{ProgressBar, ProgressStyle};
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;
use tapegrad::checkpoint::Checkpoint;
use tapegrad::{
    Augment, ChaCha8Rng, Dataset, Evaluation, FitConfig, Loss, Module, Progress, RandomCrop,
    RandomHorizontalFlip, RandomTranslate, Scaler, Sgd, fit,
};

/// One training image in this many is held out to choose settings by: 5,000 of
/// Fashion-MNIST's 60,000 (data of the same format but another size keeps the proportion).
pub const VALIDATION_SHARE: usize = 12;

/// The flags both examples take (each example adds its own).
pub struct Flags {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub dropout: f32,
    pub seed: u64,
    pub data: Option<PathBuf>,
    pub quiet: bool,
    pub save: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    /// `none`, `flip`, `crop`, `flip-crop`, `translate` or `flip-translate`.
    pub augment: String,
    /// Padding of `crop`, largest shift of `translate`, in pixels.
    pub shift: usize,
    pub no_test: bool,
    pub refit: bool,
    /// Set by `--distributed`: this process's rank among those `mpirun` started.
    pub ranks: Ranks,
    /// The settings a resumed run must share with its checkpoint, as flag–value pairs
    /// (set by [`Flags::load_resume`], stored in every checkpoint).
    pub settings: Vec<(&'static str, String)>,
}

/// This process's rank under `--distributed` (feature `mpi`); without it, one process.
#[derive(Default)]
pub struct Ranks {
    #[cfg(feature = "mpi")]
    world: Option<tapegrad::Distributed>,
}

impl Ranks {
    /// Initializes MPI and gives each rank its share of this machine's cores (`--threads`
    /// overrides it), or says which feature `--distributed` needs.
    fn init() -> Result<Ranks, Box<dyn Error>> {
        #[cfg(feature = "mpi")]
        {
            let world = tapegrad::Distributed::init()?;
            // ranks on this machine, as Open MPI or MPICH tell them
            let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
                .iter()
                .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
                .unwrap_or(1);
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            tapegrad::set_num_threads((cpus / local).max(1))?;
            Ok(Ranks { world: Some(world) })
        }
        #[cfg(not(feature = "mpi"))]
        Err(
            "--distributed needs the `mpi` feature: mpirun -n 2 cargo run --release \
             --features mpi --example fashion_mnist -- --distributed"
                .into(),
        )
    }

    /// Whether this process prints and writes checkpoints: rank 0, or the only process.
    pub fn is_root(&self) -> bool {
        #[cfg(feature = "mpi")]
        if let Some(world) = &self.world {
            return world.is_root();
        }
        true
    }

    /// `outcome` as it is, except an error on one of several ranks: printed with the rank,
    /// it then ends every rank (`Distributed::abort`). The other ranks may be waiting for
    /// this one in a collective (a file missing on one host, say, fails before `fit`), and
    /// returning would wait for them in turn (`MPI_Finalize`): the job would hang.
    pub fn settle<T>(&self, outcome: Result<T, Box<dyn Error>>) -> Result<T, Box<dyn Error>> {
        #[cfg(feature = "mpi")]
        if let (Err(error), Some(world)) = (&outcome, &self.world)
            && world.size() > 1
        {
            eprintln!(
                "error on rank {} of {}: {error}",
                world.rank(),
                world.size()
            );
            world.abort(1);
        }
        outcome
    }

    /// `FitConfig` with this process's rank set.
    fn config(&self, config: FitConfig) -> FitConfig {
        #[cfg(feature = "mpi")]
        return FitConfig {
            distributed: self.world.clone(),
            ..config
        };
        #[cfg(not(feature = "mpi"))]
        config
    }
}

impl Flags {
    /// Takes `flag` (reading its value from `line`) when it is one of the common flags;
    /// `Ok(false)` leaves it to the example.
    pub fn take(&mut self, flag: &str, line: &mut CommandLine) -> Result<bool, Box<dyn Error>> {
        match flag {
            "--epochs" => self.epochs = line.value(flag)?,
            "--batch" => self.batch = line.value(flag)?,
            "--lr" => self.lr = line.value(flag)?,
            "--dropout" => self.dropout = line.value(flag)?,
            "--seed" => self.seed = line.value(flag)?,
            "--data" => self.data = Some(line.value(flag)?),
            "--quiet" => self.quiet = true,
            "--no-test" => self.no_test = true,
            "--refit" => self.refit = true,
            "--save" => self.save = Some(line.value(flag)?),
            "--resume" => self.resume = Some(line.value(flag)?),
            "--augment" => self.augment = line.value(flag)?,
            "--shift" => self.shift = line.value(flag)?,
            "--distributed" => self.ranks = Ranks::init()?,
            "--threads" => tapegrad::set_num_threads(line.value(flag)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Parses the command line of the example whose file is `source`: the common flags
    /// here, the others with `extra` (`Ok(false)` for a flag it does not know either). An
    /// error after `--distributed` ends every rank ([`Ranks::settle`]).
    pub fn parse(
        mut self,
        source: &'static str,
        extra: impl FnMut(&str, &mut CommandLine) -> Result<bool, Box<dyn Error>>,
    ) -> Result<Self, Box<dyn Error>> {
        let outcome = self.read(source, extra);
        self.ranks.settle(outcome)?;
        Ok(self)
    }

    /// What [`Flags::parse`] does, in place.
    fn read(
        &mut self,
        source: &'static str,
        mut extra: impl FnMut(&str, &mut CommandLine) -> Result<bool, Box<dyn Error>>,
    ) -> Result<(), Box<dyn Error>> {
        let mut line = CommandLine::new(source);
        while let Some(flag) = line.next_flag() {
            if !(self.take(&flag, &mut line)? || extra(&flag, &mut line)?) {
                return Err(cli::unknown(&flag).into());
            }
        }
        if self.epochs == 0 || self.batch == 0 {
            return Err("--epochs and --batch must be at least 1".into());
        }
        // a checkpoint's folder must exist before the first epoch rather than after it
        if let Some(save) = &self.save {
            let folder = save.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(folder) = folder.filter(|f| !f.is_dir()) {
                let (save, folder) = (save.display(), folder.display());
                return Err(format!("--save {save}: expected an existing folder {folder}").into());
            }
        }
        Ok(())
    }

    /// Records the run's settings (the common flags that shape training, then the example's
    /// `extra` ones) and loads the `--resume` checkpoint, if any, refusing one whose run had
    /// other settings: its validation split or its training would not be the ones
    /// continued. `--epochs`, `--threads`, `--data` and the flags for output may differ.
    pub fn load_resume(
        &mut self,
        extra: &[(&'static str, String)],
    ) -> Result<Option<Checkpoint>, Box<dyn Error>> {
        self.settings = vec![
            ("--seed", self.seed.to_string()),
            ("--batch", self.batch.to_string()),
            ("--lr", self.lr.to_string()),
            ("--dropout", self.dropout.to_string()),
            ("--augment", self.augment.clone()),
            ("--shift", self.shift.to_string()),
            ("--refit", self.refit.to_string()),
        ];
        self.settings.extend_from_slice(extra);
        let Some(path) = &self.resume else {
            return Ok(None);
        };
        let checkpoint = Checkpoint::load(path)?;
        let differ = differing(&checkpoint, &self.settings);
        if !differ.is_empty() {
            return Err(format!(
                "--resume {}: expected the checkpoint's settings, found other values; it was \
                 trained with {differ}",
                path.display(),
            )
            .into());
        }
        Ok(Some(checkpoint))
    }

    /// The augmentation named by `--augment`, or `None` for `none`.
    pub fn augmentation(&self) -> Result<Option<Augment>, Box<dyn Error>> {
        let flip = || RandomHorizontalFlip::new(0.5);
        let augment = Augment::new();
        let shift = self.shift;
        Ok(Some(match self.augment.as_str() {
            "none" => return Ok(None),
            "flip" => augment.then(flip()?),
            "crop" => augment.then(RandomCrop::new(shift)?),
            "flip-crop" => augment.then(flip()?).then(RandomCrop::new(shift)?),
            "translate" => augment.then(RandomTranslate::new(shift)?),
            "flip-translate" => augment.then(flip()?).then(RandomTranslate::new(shift)?),
            other => {
                return Err(format!("unknown --augment {other}; --help lists the choices").into());
            }
        }))
    }
}

/// The `settings` whose value `checkpoint` stores differently, as "KEY THEIRS (this run:
/// OURS)" joined by commas; a key it lacks (an older checkpoint) is not compared.
fn differing(checkpoint: &Checkpoint, settings: &[(&'static str, String)]) -> String {
    let stored = checkpoint.metadata();
    let differ: Vec<String> = (settings.iter())
        .filter_map(|(key, value)| match stored.get(*key) {
            Some(theirs) if theirs != value => Some(format!("{key} {theirs} (this run: {value})")),
            _ => None,
        })
        .collect();
    differ.join(", ")
}

/// The images, as `[1, 28, 28]` samples with the scaler set.
pub struct Splits {
    /// 55,000 training images, or all 60,000 with `--refit`.
    pub train: Dataset,
    /// The 5,000 held-out images ([`VALIDATION_SHARE`]; not trained on without `--refit`).
    pub valid: Dataset,
    pub test: Dataset,
    /// Fitted on `train` only, or the one a resumed checkpoint stores.
    pub scaler: Scaler,
    /// The folder the images came from.
    pub source: Source,
    /// What the checkpoints store about the data, as key–value pairs: the number of
    /// training images, the classes among their labels and the pixels of an image. A
    /// resumed run must have the same.
    pub data_settings: Vec<(&'static str, String)>,
}

impl Splits {
    /// Loads Fashion-MNIST and splits it with `rng`; the scaler comes from `resume` when it
    /// stores one, else from `fit_scaler` on the training part.
    pub fn load(
        flags: &Flags,
        rng: &mut ChaCha8Rng,
        resume: Option<&Checkpoint>,
        fit_scaler: impl FnOnce(&Dataset) -> Result<Scaler, Box<dyn Error>>,
    ) -> Result<Splits, Box<dyn Error>> {
        let images = datasets::load(flags.data.as_deref(), true)?;
        let (all_train, test, source) = (images.train, images.test, images.source);
        // settings chosen on the split; `--refit` then trains on all 60,000 images with them
        let share = VALIDATION_SHARE;
        let (train, valid) = datasets::split_validation(all_train, share, Some(flags.refit), rng)?;
        // images [1, 28, 28], so that crops and shifts know the rows
        let image = [1, 28, 28];
        let mut train = train.with_sample_shape(&image)?;
        let mut valid = valid.with_sample_shape(&image)?;
        let mut test = test.with_sample_shape(&image)?;
        let data_settings = data_settings(&train);
        if let Some(checkpoint) = resume {
            let differ = differing(checkpoint, &data_settings);
            if !differ.is_empty() {
                return Err(format!(
                    "--resume {}: expected a checkpoint trained on this data set, found one \
                     trained on other data: {differ}; resume with the --data it was trained on, \
                     or train anew",
                    checkpoint.source().display()
                )
                .into());
            }
        }
        // fitted on the training part only, then applied unchanged to validation and test
        let scaler = match resume.and_then(Checkpoint::scaler) {
            Some(stored) => stored.clone(),
            None => fit_scaler(&train)?,
        };
        for data in [&mut train, &mut valid, &mut test] {
            data.set_scaler(scaler.clone())?;
        }
        if flags.ranks.is_root() {
            println!(
                "{}: {} train, {} validation, {} test images (stored as bytes)",
                source.name(),
                train.len(),
                valid.len(),
                test.len()
            );
        }
        Ok(Splits {
            train,
            valid,
            test,
            scaler,
            source,
            data_settings,
        })
    }
}

/// What a checkpoint records about the training set `train` (see `Splits::data_settings`).
fn data_settings(train: &Dataset) -> Vec<(&'static str, String)> {
    let mut classes: Vec<usize> = train.labels().unwrap_or_default().to_vec();
    classes.sort_unstable();
    classes.dedup();
    let classes: Vec<String> = classes.iter().map(usize::to_string).collect();
    vec![
        ("training images", train.len().to_string()),
        ("classes", classes.join(",")),
        ("pixels per image", train.num_features().to_string()),
    ]
}

/// Trains `model` with `sgd` on `loss` for the epochs `--epochs` asks for, after those a resumed
/// checkpoint already did, one `fit` call per epoch so that a checkpoint can be written
/// after each (`fit` resumes from `start_epoch`, so this trains exactly as one call over all
/// epochs would). Reports every epoch on the validation images unless `--refit`.
pub fn train(
    flags: &Flags,
    model: &mut dyn Module,
    sgd: &mut Sgd,
    loss: &Loss,
    splits: &Splits,
    resume: Option<&Checkpoint>,
    start: Instant,
) -> Result<(), Box<dyn Error>> {
    let start_epoch = match resume {
        Some(checkpoint) => {
            let done = checkpoint.resume(model, sgd)?;
            println!(
                "resumed from {} after epoch {done}",
                checkpoint.source().display()
            );
            done
        }
        None => 0,
    };
    let root = flags.ranks.is_root();
    let augment = flags.augmentation()?;
    let steps_per_epoch = splits.train.len().div_ceil(flags.batch) as u64;
    let bar = match flags.quiet || !root {
        true => ProgressBar::hidden(),
        false => ProgressBar::new(steps_per_epoch),
    };
    bar.set_style(ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} {msg}",
    )?);
    // a bar drawn nowhere (`--quiet`, or output not to a terminal) prints nothing itself
    let say = |line: String| match (root, bar.is_hidden()) {
        (false, _) => {}
        (true, true) => println!("{line}"),
        (true, false) => bar.println(line),
    };
    for epoch in start_epoch..flags.epochs {
        let config = flags.ranks.config(FitConfig {
            epochs: epoch + 1,
            start_epoch: epoch,
            batch_size: flags.batch,
            seed: flags.seed,
            augment: augment.clone(),
            loss: Some(loss.clone()),
            ..FitConfig::default()
        });
        fit(
            &mut *model,
            sgd,
            &splits.train,
            Some(&splits.valid).filter(|_| !flags.refit),
            &config,
            &mut |p| match p {
                Progress::Step {
                    epoch,
                    step,
                    loss,
                    samples_per_second,
                    ..
                } => {
                    bar.set_prefix(epoch.to_string());
                    bar.set_position(*step as u64);
                    bar.set_message(format!("loss {loss:.4}, {samples_per_second:.0} samples/s"));
                }
                Progress::Epoch(r) => say(format!(
                    "epoch {:>2}: train loss {:.4} | {} | lr {:.4} | {:.1}s, {:.0} samples/s | {:.0}s elapsed",
                    r.epoch,
                    r.train_loss,
                    match (r.valid_loss, r.valid_accuracy) {
                        (Some(loss), Some(accuracy)) =>
                            format!("valid loss {loss:.4}, accuracy {:.2}%", 100.0 * accuracy),
                        _ => "no validation (--refit)".into(),
                    },
                    r.lr,
                    r.seconds,
                    r.samples_per_second,
                    start.elapsed().as_secs_f64()
                )),
                Progress::Event(e) => say(format!("note: {e}")),
            },
        )?;
        if let Some(path) = flags.save.as_ref().filter(|_| root) {
            let settings = flags.settings.iter().chain(&splits.data_settings).cloned();
            (settings.fold(Checkpoint::new(&*model), |c, (k, v)| c.with_metadata(k, v)))
                .with_scaler(splits.scaler.clone())
                .with_training(sgd, epoch + 1)?
                .save(path)?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Says that training ended without a look at the test set (`--no-test`).
pub fn report_without_test(flags: &Flags, start: Instant) {
    if !flags.ranks.is_root() {
        return;
    }
    println!(
        "after {} epochs (resumed ones included); test set not used; wall time {:.1}s",
        flags.epochs,
        start.elapsed().as_secs_f64()
    );
}

/// Prints the test set's confusion matrix and accuracy (`result`, the one evaluation on
/// the test images).
pub fn report_test(result: &Evaluation, source: &Source, flags: &Flags, start: Instant) {
    if !flags.ranks.is_root() {
        return;
    }
    println!("\nconfusion matrix on the test set (rows: true class, columns: prediction)");
    if let Some(confusion) = &result.confusion {
        print!("{confusion}");
    }
    if source.fashion {
        for class in 0..10 {
            println!("  {class} = {}", source.class_name(class));
        }
    }
    println!(
        "\ntest accuracy {:.2}% (loss {:.4}) after {} epochs; wall time {:.1}s",
        100.0 * result.accuracy.unwrap_or(f64::NAN),
        result.loss,
        flags.epochs,
        start.elapsed().as_secs_f64()
    );
}
