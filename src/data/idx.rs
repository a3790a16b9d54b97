//! IDX files (MNIST, Fashion-MNIST), plain or gzipped, and the Fashion-MNIST data set.
//!
//! An IDX file is a 4-byte magic number `[0, 0, type, ndim]`, then `ndim` big-endian `u32`
//! sizes, then the payload. Images are type `0x08` (unsigned byte) with 3 dimensions
//! (`0x00000803`), labels are bytes with 1 dimension (`0x00000801`).

use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use ndarray::Array2;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's package `dataset-fashion-mnist` installs Fashion-MNIST.
pub const FASHION_MNIST_DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The environment variable that overrides [`FASHION_MNIST_DEFAULT_DIR`].
pub const FASHION_MNIST_ENV: &str = "FASHION_MNIST_DIR";

/// The ten Fashion-MNIST classes, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const UNSIGNED_BYTE: u8 = 0x08;

/// Reads a whole file, un-gzipping it when it starts with the gzip magic bytes.
pub(crate) fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut plain = Vec::new();
    GzDecoder::new(&bytes[..])
        .read_to_end(&mut plain)
        .map_err(|e| Error::decode(path, format!("gzip: {e}")))?;
    Ok(plain)
}

/// Splits IDX `bytes` into its sizes and its payload, checking the magic number for
/// unsigned bytes in `ndim` dimensions and that the payload has exactly the declared length.
fn parse_idx<'b>(path: &Path, bytes: &'b [u8], ndim: u8) -> Result<(Vec<usize>, &'b [u8])> {
    let expected_magic = u32::from_be_bytes([0, 0, UNSIGNED_BYTE, ndim]);
    let header_len = 4 + 4 * usize::from(ndim);
    if bytes.len() < header_len {
        return Err(Error::decode(
            path,
            format!(
                "idx: truncated header: expected at least {header_len} bytes, found {}",
                bytes.len()
            ),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(Error::decode(
            path,
            format!(
                "idx: wrong magic number: expected {expected_magic:#010x}, found {magic:#010x}"
            ),
        ));
    }
    let sizes: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let payload = &bytes[header_len..];
    let expected = sizes.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s));
    if expected != Some(payload.len()) {
        let expected = expected.map_or("more than usize::MAX".into(), |n| n.to_string());
        return Err(Error::decode(
            path,
            format!(
                "idx: payload of sizes {sizes:?} needs {expected} bytes, found {}",
                payload.len()
            ),
        ));
    }
    Ok((sizes, payload))
}

/// Reads an IDX image file (`0x00000803`, plain or gzipped) as `[images, rows·cols]` bytes.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Decode`] naming the file for a bad
/// gzip stream, a wrong magic number, or a payload whose length disagrees with the header.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Array2<u8>> {
    let path = path.as_ref();
    let bytes = read_maybe_gzipped(path)?;
    let (sizes, payload) = parse_idx(path, &bytes, 3)?;
    // with 0 images the payload check passes for any image size, which may still be too
    // large for an array's row
    let too_large = || {
        Error::decode(
            path,
            format!(
                "idx: expected images of at most {} pixels, found {} × {}",
                isize::MAX,
                sizes[1],
                sizes[2]
            ),
        )
    };
    let cols = (sizes[1].checked_mul(sizes[2]))
        .filter(|&c| c <= isize::MAX as usize)
        .ok_or_else(too_large)?;
    Array2::from_shape_vec((sizes[0], cols), payload.to_vec()).map_err(|_| too_large())
}

/// Reads an IDX label file (`0x00000801`, plain or gzipped).
///
/// # Errors
/// As [`read_idx_images`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    let bytes = read_maybe_gzipped(path)?;
    let (_, payload) = parse_idx(path, &bytes, 1)?;
    Ok(payload.iter().map(|&b| usize::from(b)).collect())
}

/// A data set from an IDX image file and its IDX label file, kept as bytes.
///
/// # Errors
/// As [`read_idx_images`], and [`Error::Decode`] when the two files hold different numbers
/// of samples.
pub fn read_idx_dataset(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    let (images, labels_path) = (images.as_ref(), labels.as_ref());
    let x = read_idx_images(images)?;
    let labels = read_idx_labels(labels_path)?;
    if labels.len() != x.nrows() {
        return Err(Error::decode(
            labels_path,
            format!(
                "idx: expected {} labels, one per image of {}, found {}",
                x.nrows(),
                images.display(),
                labels.len()
            ),
        ));
    }
    Dataset::from_bytes(x, labels)
}

/// The Fashion-MNIST folder: `dir` when given, else `$FASHION_MNIST_DIR`, else
/// [`FASHION_MNIST_DEFAULT_DIR`].
pub fn fashion_mnist_dir(dir: Option<&Path>) -> PathBuf {
    match (dir, std::env::var_os(FASHION_MNIST_ENV)) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(env)) => PathBuf::from(env),
        (None, None) => PathBuf::from(FASHION_MNIST_DEFAULT_DIR),
    }
}

/// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, <https://arxiv.org/abs/1708.07747>):
/// 60,000 training and 10,000 test images of 28×28 bytes in 10 classes, as
/// `(train, test)`, read from [`fashion_mnist_dir`]`(dir)`. Each file may be gzipped
/// (`train-images-idx3-ubyte.gz`) or not.
///
/// # Errors
/// [`Error::DatasetMissing`] when a file is absent, with how to install the data set
/// (`apt-get install dataset-fashion-mnist`); otherwise as [`read_idx_dataset`].
pub fn fashion_mnist(dir: Option<&Path>) -> Result<(Dataset, Dataset)> {
    let dir = fashion_mnist_dir(dir);
    let find = |stem: &str| -> Result<PathBuf> {
        [format!("{stem}.gz"), stem.to_string()]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::DatasetMissing {
                path: dir.join(format!("{stem}[.gz]")),
                hint: format!(
                    "install it with `apt-get update && apt-get install -y dataset-fashion-mnist` \
                     (files go to {FASHION_MNIST_DEFAULT_DIR}), or point {FASHION_MNIST_ENV} at \
                     a folder holding the four IDX files"
                ),
            })
    };
    let train = read_idx_dataset(
        find("train-images-idx3-ubyte")?,
        find("train-labels-idx1-ubyte")?,
    )?;
    let test = read_idx_dataset(
        find("t10k-images-idx3-ubyte")?,
        find("t10k-labels-idx1-ubyte")?,
    )?;
    Ok((train.with_num_classes(10)?, test.with_num_classes(10)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// IDX bytes with the given magic number, sizes and payload.
    fn idx(magic: u32, sizes: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for s in sizes {
            bytes.extend(s.to_be_bytes());
        }
        bytes.extend(payload);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("tapegrad-idx-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_plain_and_gzipped_files() {
        let dir = TempDir::new("good");
        let pixels: Vec<u8> = (0..12).collect();
        let images = idx(0x803, &[3, 2, 2], &pixels);
        let labels = idx(0x801, &[3], &[4, 0, 9]);
        let plain = read_idx_dataset(dir.write("i", &images), dir.write("l", &labels)).unwrap();
        let zipped = read_idx_dataset(
            dir.write("i.gz", &gzip(&images)),
            dir.write("l.gz", &gzip(&labels)),
        )
        .unwrap();
        for data in [plain, zipped] {
            assert_eq!((data.len(), data.num_features()), (3, 4));
            assert_eq!(data.labels(), &[4, 0, 9]);
            let (x, _) = data.full_batch();
            assert_eq!(x[[2, 3]], 11.0);
        }
    }

    #[test]
    fn broken_files_are_errors_naming_the_file() {
        let dir = TempDir::new("bad");
        let cases: [(&str, Vec<u8>, &str); 5] = [
            (
                "magic",
                idx(0x801, &[1, 2, 2], &[0; 4]),
                "wrong magic number: expected 0x00000803, found 0x00000801",
            ),
            (
                "short",
                idx(0x803, &[2, 2, 2], &[0; 7]),
                "payload of sizes [2, 2, 2] needs 8 bytes, found 7",
            ),
            (
                "header",
                vec![0, 0, 8],
                "truncated header: expected at least 16 bytes, found 3",
            ),
            (
                "huge",
                idx(0x803, &[u32::MAX, u32::MAX, u32::MAX], &[]),
                "needs more than usize::MAX bytes",
            ),
            ("gz", vec![0x1f, 0x8b, 1, 2, 3], "gzip:"),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.write(name, &bytes);
            let err = read_idx_images(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
            assert!(
                err.starts_with(&path.display().to_string()),
                "{name}: {err}"
            );
        }
        let missing = dir.0.join("nope");
        let err = read_idx_images(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn zero_images_of_an_impossible_size_are_an_error_not_a_panic() {
        // 0 images of 2^32−1 × 2^32−1 pixels: an empty payload, but no array has such rows
        let dir = TempDir::new("huge");
        let path = dir.write("huge", &idx(0x803, &[0, u32::MAX, u32::MAX], &[]));
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(err.contains("idx: expected images of at most"), "{err}");
        assert!(err.contains("found 4294967295 × 4294967295"), "{err}");
    }

    #[test]
    fn image_and_label_counts_must_agree() {
        let dir = TempDir::new("count");
        let images = dir.write("i", &idx(0x803, &[2, 1, 1], &[1, 2]));
        let labels = dir.write("l", &idx(0x801, &[3], &[0, 1, 2]));
        let err = read_idx_dataset(&images, &labels).unwrap_err().to_string();
        assert!(err.contains("expected 2 labels, one per image of"), "{err}");
        assert!(err.contains("found 3"), "{err}");
    }

    #[test]
    fn missing_fashion_mnist_says_how_to_install_it() {
        let dir = TempDir::new("empty");
        let err = fashion_mnist(Some(&dir.0)).unwrap_err();
        assert!(matches!(err, Error::DatasetMissing { .. }));
        let text = err.to_string();
        assert!(
            text.contains("apt-get install -y dataset-fashion-mnist"),
            "{text}"
        );
        assert!(text.contains("train-images-idx3-ubyte"), "{text}");
    }

    #[test]
    fn folder_comes_from_argument_then_environment_then_default() {
        let given = Path::new("/somewhere");
        assert_eq!(fashion_mnist_dir(Some(given)), given);
        if std::env::var_os(FASHION_MNIST_ENV).is_none() {
            assert_eq!(
                fashion_mnist_dir(None),
                Path::new(FASHION_MNIST_DEFAULT_DIR)
            );
        }
    }
}
