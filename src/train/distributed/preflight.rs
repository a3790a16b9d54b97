//! What the ranks of a distributed [`fit`](crate::fit) agree on before its first step:
//! each rank's own checks, the settings that shape training, and the lengths and hashes of
//! its training and validation sets, all in one small collective.

use super::Distributed;
use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::train::FitConfig;

impl Distributed {
    /// [`fit`](crate::fit)'s agreement before its first step, on every rank: `checked` is
    /// this rank's outcome of fit's own checks. One collective compares every rank's
    /// outcome, the settings that shape training and the lengths and hashes of the training
    /// and validation sets; once they agree, every rank checks alike that each batch, the
    /// last of an epoch included, has at least one row per rank (so that a rank with one
    /// sample more hears of its data set's size, not of its last batch).
    ///
    /// # Errors
    /// The same on every rank: the failures of the ranks that failed, or else the ranks
    /// whose data or settings differ from rank 0's, and what differs.
    pub(crate) fn agree_before_fit(
        &self,
        checked: Result<()>,
        train: &Dataset,
        valid: Option<&Dataset>,
        config: &FitConfig,
        optimizer: &str,
    ) -> Result<()> {
        if self.size == 1 {
            return checked;
        }
        let settings = settings_hashes(config, optimizer);
        let mut record: Vec<u64> = settings.iter().map(|(_, hash)| *hash).collect();
        record.extend(fingerprint(Some(train)));
        record.extend(fingerprint(valid));
        let records = self.agree("fit", checked, &record)?;
        let ours = &records[0];
        let (train_at, valid_at) = (SETTINGS, SETTINGS + 1 + DATA_PARTS);
        let mut differences = Vec::new();
        for (rank, theirs) in records.iter().enumerate().skip(1) {
            let names: Vec<&str> = (settings.iter().zip(ours).zip(theirs))
                .filter(|((_, a), b)| a != b)
                .map(|(((name, _), _), _)| *name)
                .collect();
            if !names.is_empty() {
                differences.push(format!(
                    "rank {rank}'s settings differ from rank 0's in {}",
                    names.join(", ")
                ));
            }
            for (what, at) in [("training", train_at), ("validation", valid_at)] {
                let range = at..at + 1 + DATA_PARTS;
                let found = data_difference(rank, what, &ours[range.clone()], &theirs[range]);
                differences.extend(found);
            }
        }
        if differences.is_empty() {
            // the same sizes and settings on every rank: the same outcome on every rank
            return self.check_last_batch(train.len(), config);
        }
        Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "{}; expected the same data and settings on every rank (each trains on its \
                 rows of the same global batches)",
                differences.join("; ")
            ),
        })
    }

    /// Refuses batches, or a last batch of an epoch, with fewer rows than there are ranks,
    /// which could not give each rank a row: PyTorch's `DistributedSampler` would pad the
    /// epoch with repeated samples instead, which trains on other batches than one process
    /// does.
    fn check_last_batch(&self, samples: usize, config: &FitConfig) -> Result<()> {
        let batch = config.batch_size;
        if (1..self.size).contains(&batch) {
            return Err(Error::InvalidArgument {
                op: "fit",
                message: format!(
                    "batches of {batch} samples cannot be split over {} ranks, expected a \
                     batch_size of at least {}",
                    self.size, self.size
                ),
            });
        }
        let last = samples.checked_rem(batch).unwrap_or(0);
        if config.drop_last || last == 0 || last >= self.size {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            op: "fit",
            message: format!(
                "the last batch of each epoch would hold {last} sample(s) ({samples} samples \
                 in batches of {batch}), fewer than the {} ranks that split every batch, \
                 expected at least one per rank; set drop_last: true to leave it out, or a \
                 batch size that leaves no last batch or one of at least {} samples",
                self.size, self.size
            ),
        })
    }
}

/// How many numbers [`fingerprint`] gives after its first (whether there is a data set).
const DATA_PARTS: usize = 5;

/// What the ranks compare of a data set before [`fit`](crate::fit) trains: whether there is
/// one, then its number of samples, a hash of its layout (sample shape, storage, kind and
/// shape of targets), of its stored samples, of its targets and of its scaler. All zero
/// without a data set.
fn fingerprint(data: Option<&Dataset>) -> [u64; 1 + DATA_PARTS] {
    let Some(data) = data else {
        return [0; 1 + DATA_PARTS];
    };
    let kind = match data.targets() {
        Targets::Classes { num_classes, .. } => format!("{num_classes} classes"),
        Targets::Values(_) => "values".into(),
        Targets::MultiLabel(_) => "multi-label".into(),
        Targets::Inputs => "inputs".into(),
    };
    let layout = format!(
        "{:?} {} {:?} {kind}",
        data.sample_shape(),
        data.stores_bytes(),
        data.target_shape()
    );
    let mut samples = Crc::default();
    match (data.bytes(), data.floats()) {
        (Some(bytes), _) => match bytes.as_slice() {
            Some(slice) => samples.bytes(slice),
            None => bytes.iter().for_each(|b| samples.push(&[*b])),
        },
        (_, Some(floats)) => floats.iter().for_each(|v| samples.push(&v.to_le_bytes())),
        (None, None) => {}
    }
    let mut targets = Crc::default();
    match data.targets() {
        Targets::Classes { labels, .. } => {
            (labels.iter()).for_each(|&l| targets.push(&(l as u64).to_le_bytes()))
        }
        Targets::Values(v) => v.iter().for_each(|v| targets.push(&v.to_le_bytes())),
        Targets::MultiLabel(y) => y.iter().for_each(|v| targets.push(&v.to_le_bytes())),
        Targets::Inputs => {}
    }
    let mut scaler = Crc::default();
    if let Some(s) = data.scaler() {
        scaler.bytes(format!("{:?}", s.kind()).as_bytes());
        (s.scale().iter().chain(s.shift())).for_each(|v| scaler.push(&v.to_le_bytes()));
    }
    let mut shape = Crc::default();
    shape.bytes(layout.as_bytes());
    [
        1,
        data.len() as u64,
        shape.finish(),
        samples.finish(),
        targets.finish(),
        scaler.finish(),
    ]
}

/// How rank `rank`'s `what` (training or validation) set differs from rank 0's, from their
/// [`fingerprint`]s `ours` (rank 0's) and `theirs`; `None` when it does not.
fn data_difference(rank: usize, what: &str, ours: &[u64], theirs: &[u64]) -> Option<String> {
    if ours[0] != theirs[0] {
        return Some(match theirs[0] {
            0 => format!("rank {rank} has no {what} set, rank 0 has one"),
            _ => format!("rank {rank} has a {what} set, rank 0 has none"),
        });
    }
    if ours[1] != theirs[1] {
        return Some(format!(
            "rank {rank}'s {what} set has {} samples, rank 0's {}",
            theirs[1], ours[1]
        ));
    }
    let parts = [
        "sample or target shapes",
        "sample values",
        "targets",
        "scaler",
    ];
    let differ: Vec<&str> = (parts.iter().zip(&ours[2..]).zip(&theirs[2..]))
        .filter(|((_, a), b)| a != b)
        .map(|((part, _), _)| *part)
        .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "rank {rank}'s {what} set differs from rank 0's in its {}",
            differ.join(", ")
        )
    })
}

/// How many settings [`settings_hashes`] gives.
const SETTINGS: usize = 14;

/// The settings of `config` that shape training, and the optimizer's
/// ([`Optimizer::settings`](crate::Optimizer::settings)), each named and hashed: ranks that
/// differ in one of them would train on other batches, stop after other steps or update
/// otherwise.
fn settings_hashes(config: &FitConfig, optimizer: &str) -> [(&'static str, u64); SETTINGS] {
    // every field named, so that a new one is not forgotten here
    let FitConfig {
        epochs,
        start_epoch,
        batch_size,
        seed,
        shuffle,
        drop_last,
        on_divergence,
        patience,
        monitor,
        plateau,
        augment,
        loss,
        eval_batch_size,
        distributed: _,
    } = config;
    let hash = |value: &dyn std::fmt::Debug| {
        let mut crc = Crc::default();
        crc.bytes(format!("{value:?}").as_bytes());
        crc.finish()
    };
    [
        ("epochs", hash(epochs)),
        ("start_epoch", hash(start_epoch)),
        ("batch_size", hash(batch_size)),
        ("seed", hash(seed)),
        ("shuffle", hash(shuffle)),
        ("drop_last", hash(drop_last)),
        ("on_divergence", hash(on_divergence)),
        ("patience", hash(patience)),
        ("monitor", hash(monitor)),
        ("plateau", hash(plateau)),
        ("augment", hash(augment)),
        ("loss", hash(loss)),
        ("eval_batch_size", hash(eval_batch_size)),
        ("the optimizer", hash(&optimizer)),
    ]
}

/// A CRC-32 of bytes given a few at a time (each number's little-endian bytes), fed to the
/// hasher in blocks.
#[derive(Default)]
struct Crc {
    hasher: crc32fast::Hasher,
    block: Vec<u8>,
}

impl Crc {
    /// Adds a few bytes.
    fn push(&mut self, bytes: &[u8]) {
        self.block.extend_from_slice(bytes);
        if self.block.len() >= 1 << 14 {
            self.hasher.update(&self.block);
            self.block.clear();
        }
    }

    /// Adds many bytes.
    fn bytes(&mut self, bytes: &[u8]) {
        self.hasher.update(&self.block);
        self.block.clear();
        self.hasher.update(bytes);
    }

    fn finish(mut self) -> u64 {
        self.hasher.update(&self.block);
        u64::from(self.hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 samples of 3 features and 2 classes.
    fn data() -> Dataset {
        let x = ndarray::Array2::from_shape_fn((10, 3), |(i, j)| (i * 3 + j) as f32 / 7.0);
        Dataset::from_floats(x, (0..10).map(|i| i % 2).collect()).unwrap()
    }

    #[test]
    fn a_fingerprint_sees_one_value_one_label_the_length_the_shape_and_the_scaler() {
        let base = fingerprint(Some(&data()));
        assert_eq!((base[0], base[1]), (1, 10));
        assert_eq!(base, fingerprint(Some(&data())));
        assert_eq!(fingerprint(None), [0; 1 + DATA_PARTS]);
        let mut x = data().floats().unwrap().to_owned();
        x[[7, 2]] = f32::from_bits(x[[7, 2]].to_bits() + 1);
        let x = x.into_dimensionality().unwrap();
        let value = Dataset::from_floats(x, data().labels().unwrap().to_vec()).unwrap();
        let mut labels = data().labels().unwrap().to_vec();
        labels[4] = 1;
        let label = Dataset::from_floats(
            data()
                .floats()
                .unwrap()
                .to_owned()
                .into_dimensionality()
                .unwrap(),
            labels,
        );
        let shorter = data().subset(&(0..9).collect::<Vec<_>>()).unwrap();
        let mut scaled = data();
        scaled
            .set_scaler(crate::Scaler::affine(3, 2.0, 0.0).unwrap())
            .unwrap();
        let describe = |other: &Dataset| {
            data_difference(1, "training", &base, &fingerprint(Some(other))).unwrap()
        };
        assert_eq!(
            describe(&value),
            "rank 1's training set differs from rank 0's in its sample values"
        );
        assert_eq!(
            describe(&label.unwrap()),
            "rank 1's training set differs from rank 0's in its targets"
        );
        assert_eq!(
            describe(&shorter),
            "rank 1's training set has 9 samples, rank 0's 10"
        );
        assert_eq!(
            describe(&scaled),
            "rank 1's training set differs from rank 0's in its scaler"
        );
        let wide = data().with_sample_shape(&[3, 1]).unwrap();
        assert_eq!(
            describe(&wide),
            "rank 1's training set differs from rank 0's in its sample or target shapes"
        );
        let none = data_difference(2, "validation", &base, &fingerprint(None));
        assert_eq!(
            none.unwrap(),
            "rank 2 has no validation set, rank 0 has one"
        );
        assert_eq!(data_difference(1, "training", &base, &base), None);
    }

    #[test]
    fn the_settings_hashes_see_each_setting_that_shapes_training() {
        use crate::Optimizer;
        let base = FitConfig::default();
        let sgd = crate::Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        let hashes = settings_hashes(&base, &sgd.settings());
        // the names of the settings whose hashes differ from the base's
        let differ = |config: &FitConfig, optimizer: &str| -> Vec<&str> {
            (settings_hashes(config, optimizer).iter())
                .zip(&hashes)
                .filter(|(a, b)| a != b)
                .map(|((name, _), _)| *name)
                .collect()
        };
        let changed = [
            (
                "epochs",
                FitConfig {
                    epochs: 11,
                    ..base.clone()
                },
            ),
            (
                "batch_size",
                FitConfig {
                    batch_size: 63,
                    ..base.clone()
                },
            ),
            (
                "seed",
                FitConfig {
                    seed: 1,
                    ..base.clone()
                },
            ),
            (
                "drop_last",
                FitConfig {
                    drop_last: true,
                    ..base.clone()
                },
            ),
            (
                "patience",
                FitConfig {
                    patience: Some(2),
                    ..base.clone()
                },
            ),
            (
                "loss",
                FitConfig {
                    loss: Some(crate::Loss::Mse),
                    ..base.clone()
                },
            ),
        ];
        for (name, config) in changed {
            assert_eq!(differ(&config, &sgd.settings()), [name]);
        }
        assert_eq!(settings_hashes(&base.clone(), &sgd.settings()), hashes);
        // the optimizer's rate, momentum, Nesterov, dampening, weight decay, clipping
        let others = [
            crate::Sgd::new(0.2).unwrap().momentum(0.9).unwrap(),
            crate::Sgd::new(0.1).unwrap().momentum(0.5).unwrap(),
            crate::Sgd::new(0.1)
                .unwrap()
                .momentum(0.9)
                .unwrap()
                .nesterov(),
            (crate::Sgd::new(0.1).unwrap().momentum(0.9).unwrap())
                .dampening(0.5)
                .unwrap(),
            (crate::Sgd::new(0.1).unwrap().momentum(0.9).unwrap())
                .weight_decay(1e-4)
                .unwrap(),
            (crate::Sgd::new(0.1).unwrap().momentum(0.9).unwrap())
                .clip_grad_norm(1.0)
                .unwrap(),
        ];
        for other in others {
            let settings = other.settings();
            assert_eq!(differ(&base, &settings), ["the optimizer"], "{settings}");
        }
    }
}
