//! Where the examples find their images: `--data DIR`, else `$FASHION_MNIST_DIR` (when set
//! and not empty), else Debian's `/usr/share/datasets/fashion-mnist`. A folder that lacks a
//! file is reported with the files of similar names it holds and with the way it was chosen
//! (the flag, the variable or the default); a data set too small for a validation split is
//! refused with its sizes (the library refuses images that are not 28×28). Fashion-MNIST's class
//! names are used for the default folder only; another folder's classes are numbers.

#![allow(dead_code)] // each example uses its part

use std::path::{Path, PathBuf};
use tapegrad::data::{
    FASHION_MNIST_CLASSES, FASHION_MNIST_DEFAULT_DIR, FASHION_MNIST_ENV, fashion_mnist,
    fashion_mnist_dir,
};
use tapegrad::{ChaCha8Rng, Dataset, Error};

/// The four IDX files, without the optional `.gz`.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// How the folder was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Flag,
    Env,
    Default,
}

/// A loaded data set: training and test images and the folder they came from.
pub struct Images {
    pub train: Dataset,
    pub test: Dataset,
    pub source: Source,
}

/// The folder a data set was read from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The folder read.
    pub dir: PathBuf,
    /// Whether it is the default folder, where Fashion-MNIST itself is installed.
    pub fashion: bool,
}

/// The folder `data` (a `--data` flag, if the example has one) or the environment names,
/// as the library picks it, and how it was chosen.
fn folder(data: Option<&Path>) -> (PathBuf, Origin) {
    let dir = fashion_mnist_dir(data);
    let origin = match data {
        Some(_) => Origin::Flag,
        None if dir == Path::new(FASHION_MNIST_DEFAULT_DIR) => Origin::Default,
        None => Origin::Env,
    };
    (dir, origin)
}

/// A file name reduced for comparison: lower case, `.`, `_` and spaces as `-`, no `.gz`.
fn normalized(name: &str) -> String {
    let name = name.to_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.replace(['.', '_', ' '], "-")
}

/// The files in `dir` whose names resemble `stem` (`train-images.idx3-ubyte` for
/// `train-images-idx3-ubyte`, say), sorted.
fn similar(dir: &Path, stem: &str) -> Vec<String> {
    // the part that tells the four files apart: `train-images`, `t10k-labels`, …
    let key: String = stem.split('-').take(2).collect::<Vec<_>>().join("-");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| normalized(name).contains(&key))
        .collect();
    found.sort();
    found
}

/// The images in the folder `data` names (see the module's header). `flag` says whether the
/// example takes `--data`, for the hint of a missing file.
pub fn load(data: Option<&Path>, flag: bool) -> tapegrad::Result<Images> {
    let (dir, origin) = folder(data);
    let how = match origin {
        Origin::Flag => format!("the folder given with --data ({})", dir.display()),
        Origin::Env => format!("the folder {FASHION_MNIST_ENV} names ({})", dir.display()),
        Origin::Default => format!("the default folder {FASHION_MNIST_DEFAULT_DIR}"),
    };
    let where_else = match flag {
        true => format!("give --data DIR (or set {FASHION_MNIST_ENV}=DIR)"),
        false => format!("set {FASHION_MNIST_ENV}=DIR"),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(Error::DatasetMissing {
            path: dir.clone(),
            hint: format!(
                "expected a folder holding the four IDX files ({}[.gz], …), found a file; {} \
                 with the folder that holds it",
                FILES[0], where_else
            ),
        });
    }
    let present = |stem: &str| dir.join(stem).is_file() || dir.join(format!("{stem}.gz")).is_file();
    if let Some(stem) = FILES.iter().find(|stem| !present(stem)) {
        let others = similar(&dir, stem);
        let found = match others.is_empty() {
            true => String::new(),
            false => format!(
                "; the folder holds {} instead: rename it to {stem} (or {stem}.gz)",
                others.join(", ")
            ),
        };
        let install = match origin {
            Origin::Default => format!(
                "; install Fashion-MNIST with `apt-get update && apt-get install -y \
                 dataset-fashion-mnist`, or {where_else} for another folder"
            ),
            _ => format!("; {where_else} for a folder holding {}", files_list()),
        };
        return Err(Error::DatasetMissing {
            path: dir.join(format!("{stem}[.gz]")),
            hint: format!("expected it in {how}{found}{install}"),
        });
    }
    let (train, test) = fashion_mnist(Some(&dir))?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let fashion = same(&dir, Path::new(FASHION_MNIST_DEFAULT_DIR));
    Ok(Images {
        train,
        test,
        source: Source { dir, fashion },
    })
}

/// The four file names, for a hint.
fn files_list() -> String {
    FILES.map(|f| format!("{f}[.gz]")).join(", ")
}

impl Source {
    /// "Fashion-MNIST", or "the data set at DIR" for another folder.
    pub fn name(&self) -> String {
        match self.fashion {
            true => "Fashion-MNIST".into(),
            false => format!("the data set at {}", self.dir.display()),
        }
    }

    /// Class `class`'s name for Fashion-MNIST, else `class N`.
    pub fn class_name(&self, class: usize) -> String {
        match (self.fashion, FASHION_MNIST_CLASSES.get(class)) {
            (true, Some(name)) => name.to_string(),
            _ => format!("class {class}"),
        }
    }
}

/// Holds out one training image in `share` (at least one) for validation, as
/// `(train, valid)`; with `refit` `Some(true)` (`--refit`), `train` is all of them (`None`:
/// the example has no `--refit`). Refuses a set too small to keep an image to train on.
pub fn split_validation(
    all: Dataset,
    share: usize,
    refit: Option<bool>,
    rng: &mut ChaCha8Rng,
) -> tapegrad::Result<(Dataset, Dataset)> {
    let held_out = (all.len() / share).max(1);
    if all.len() <= held_out && refit != Some(true) {
        let or_refit = match refit {
            Some(_) => " (or --refit, which trains on all of them)",
            None => "",
        };
        return Err(Error::InvalidArgument {
            op: "data",
            message: format!(
                "the training set has {} image(s), too few for the validation split: one in \
                 {share} (at least one) is held out for validation, which leaves none to train \
                 on; expected at least 2 training images{or_refit}",
                all.len()
            ),
        });
    }
    let (train, valid) = all.split(held_out, rng)?;
    Ok((if refit == Some(true) { all } else { train }, valid))
}
