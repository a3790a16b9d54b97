//! IDX files (MNIST, Fashion-MNIST), plain or gzipped, and the Fashion-MNIST data set.
//!
//! An IDX file is a 4-byte magic number `[0, 0, type, ndim]`, then `ndim` big-endian `u32`
//! sizes, then the payload. Images are type `0x08` (unsigned byte) with 3 dimensions
//! (`0x00000803`), labels are bytes with 1 dimension (`0x00000801`).
//!
//! Memory is bounded by the header: it is read first, then exactly the payload it
//! declares, into a buffer that grows as the data arrives (a plain file's size is checked
//! against the header before anything is allocated). A gzipped file is inflated as it is
//! read and fails as soon as it passes the declared size, so a small file that inflates to
//! gigabytes costs no more than its header's size. Paths that are not regular files (a
//! FIFO, `/dev/zero`, a directory) are refused before reading, and a gzipped file must be
//! one gzip member with nothing after it.

use crate::data::dataset::Dataset;
use crate::data::read::Input;
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// Where Debian's package `dataset-fashion-mnist` installs Fashion-MNIST, the folder
/// [`fashion_mnist_dir`] falls back to.
///
/// # Examples
/// ```
/// use tapegrad::data::FASHION_MNIST_DEFAULT_DIR;
/// assert_eq!(FASHION_MNIST_DEFAULT_DIR, "/usr/share/datasets/fashion-mnist");
/// ```
pub const FASHION_MNIST_DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The environment variable that overrides the default Fashion-MNIST folder,
/// `/usr/share/datasets/fashion-mnist` (where Debian's package `dataset-fashion-mnist`
/// installs it).
///
/// # Examples
/// ```
/// use tapegrad::data::{FASHION_MNIST_ENV, fashion_mnist_dir};
/// assert_eq!(FASHION_MNIST_ENV, "FASHION_MNIST_DIR");
/// if let Some(dir) = std::env::var_os(FASHION_MNIST_ENV).filter(|d| !d.is_empty()) {
///     assert_eq!(fashion_mnist_dir(None), std::path::PathBuf::from(dir));
/// }
/// ```
pub const FASHION_MNIST_ENV: &str = "FASHION_MNIST_DIR";

/// The ten Fashion-MNIST classes, by label.
///
/// # Examples
/// ```
/// use tapegrad::data::FASHION_MNIST_CLASSES;
/// assert_eq!((FASHION_MNIST_CLASSES[0], FASHION_MNIST_CLASSES[9]), ("T-shirt/top", "Ankle boot"));
/// ```
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

/// The most pixels an IDX image may have, 2^31: 2 GiB as bytes, 8 GiB as `f32` features.
/// A header with larger images is refused before anything is read or allocated, so that
/// neither loading nor fitting a scaler on it (which allocates per feature) can exhaust
/// memory.
const MAX_PIXELS: usize = 1 << 31;

/// Reads the header of the IDX file `input` of unsigned bytes in `ndim` dimensions: its
/// sizes, and the payload bytes they need. It must declare at least one item (image or
/// label), and images (`ndim == 3`) of at least one pixel and at most [`MAX_PIXELS`].
fn read_header(input: &mut Input, ndim: u8) -> Result<(Vec<usize>, usize)> {
    let expected_magic = u32::from_be_bytes([0, 0, UNSIGNED_BYTE, ndim]);
    let header_len = 4 + 4 * usize::from(ndim);
    let mut header = vec![0; header_len];
    let mut found = input.read_full(&mut header[..4])?;
    // the magic first: a labels file passed for images is named as such, however short
    if found == 4 {
        let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if magic != expected_magic {
            return Err(input.error(format!(
                "wrong magic number: expected {expected_magic:#010x}, found {magic:#010x}"
            )));
        }
        found += input.read_full(&mut header[4..])?;
    }
    if found < header_len {
        // a second gzip member would explain the short first one
        input.expect_no_more_members()?;
        return Err(input.error(format!(
            "truncated header: expected at least {header_len} bytes, found {found}"
        )));
    }
    let sizes: Vec<usize> = header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let Some(needed) = sizes.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s)) else {
        return Err(input.error(format!(
            "payload of sizes {sizes:?} needs more than usize::MAX bytes, more than any \
             file holds"
        )));
    };
    if let [_, rows, cols] = sizes[..] {
        // with 0 images the payload is empty for any image size, which may still be too
        // large for an array's row, or 0 pixels, which no model can take
        match rows.checked_mul(cols) {
            Some(0) => {
                return Err(input.error(format!(
                    "expected images of at least 1 pixel, found {rows} × {cols} (sizes \
                     {sizes:?})"
                )));
            }
            Some(pixels) if pixels <= MAX_PIXELS => {}
            _ => {
                return Err(input.error(format!(
                    "expected images of at most {MAX_PIXELS} pixels (2^31), found {rows} × \
                     {cols}"
                )));
            }
        }
    }
    if sizes[0] == 0 {
        let item = if ndim == 3 { "image" } else { "label" };
        return Err(input.error(format!(
            "expected at least one {item}, found 0 (sizes {sizes:?})"
        )));
    }
    Ok((sizes, needed))
}

/// Reads the IDX file at `path` of unsigned bytes in `ndim` dimensions: its sizes and its
/// payload, which has exactly the length the sizes declare (see [`read_header`]).
///
/// The header is read first; the payload buffer then grows as data arrives up to the
/// declared length, and a plain file's size is checked against it before anything is
/// allocated. A gzip stream that inflates past the declared length fails there.
fn read_idx(path: &Path, ndim: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut input = Input::open(path, "idx")?;
    let header_len = 4 + 4 * usize::from(ndim);
    let (sizes, needed) = read_header(&mut input, ndim)?;
    let short =
        |found: u64| format!("payload of sizes {sizes:?} needs {needed} bytes, found {found}");
    if let Some(left) = input.plain_remaining()
        && left != needed as u64
    {
        return Err(input.error(short(left)));
    }
    // a gzip trailer states the uncompressed size modulo 2^32: a stream whose size
    // disagrees with the header's is refused before it is inflated (memory is otherwise
    // bounded by what it inflates to, up to the header's claim)
    let total = (header_len as u64).saturating_add(needed as u64);
    if let Err(declared) = input.check_declared_size(total) {
        let modulo = match total % (1 << 32) {
            wrapped if wrapped == total => String::new(),
            wrapped => format!(", {wrapped} modulo 2^32"),
        };
        return Err(input.error(format!(
            "gzip: the trailer declares {declared} uncompressed bytes (modulo 2^32), expected \
             the {total} of the header and the payload of sizes {sizes:?}{modulo} (a \
             truncated file, a header that claims too much, bytes after the gzip stream, or \
             several gzip members, which must be re-compressed as one stream)"
        )));
    }
    let payload = input.read_vec(needed)?;
    if payload.len() < needed {
        input.expect_no_more_members()?;
        return Err(input.error(short(payload.len() as u64)));
    }
    input.expect_end(&format!(
        "the {needed} payload bytes its header declares for sizes {sizes:?}"
    ))?;
    Ok((sizes, payload))
}

/// Reads an IDX image file (`0x00000803`, plain or gzipped) as `[images, rows·cols]` bytes.
///
/// Memory: the returned array, read incrementally; the file is never held whole beside it.
/// The payload buffer holds at most the size the header declares and never more than the
/// file really provides (plus a 64 KiB read buffer), so a header that lies about its size
/// or a gzip bomb fails without allocating what it claims.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read or is not a regular file (a FIFO, a device,
/// a directory: refused before reading); [`Error::Decode`] naming the file for a wrong
/// magic number, no image (`"idx: expected at least one image, found 0"`, also for an empty
/// file), images of 0 pixels or of more than 2^31 pixels (2 GiB each), a payload whose
/// length disagrees with the header, a gzip stream that is broken, whose trailer disagrees
/// with the header's size (checked before inflating) or with the inflated bytes (naming the
/// check: size or CRC-32), that inflates past the size the header declares, is followed by
/// bytes other than zero padding, or is one of several concatenated gzip members.
///
/// # Examples
/// ```
/// use tapegrad::data::read_idx_images;
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-img-{}.idx", std::process::id()));
/// // magic 0x00000803, then 2 images of 2 × 3 pixels, then 12 pixel bytes
/// let mut file = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
/// file.extend(0..12u8);
/// std::fs::write(&path, &file)?;
/// let images = read_idx_images(&path)?;
/// assert_eq!((images.shape(), images[[1, 0]]), (&[2, 6][..], 6));
/// std::fs::write(&path, &file[..20])?; // payload shorter than the header says
/// assert!(read_idx_images(&path).is_err());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Array2<u8>> {
    let path = path.as_ref();
    let (sizes, payload) = read_idx(path, 3)?;
    let shape = (sizes[0], sizes[1] * sizes[2]);
    Array2::from_shape_vec(shape, payload).map_err(|e| {
        Error::decode(
            path,
            format!("idx: expected images of shape {shape:?} to fit an array, found: {e}"),
        )
    })
}

/// The size of the images in an IDX image file (plain or gzipped), `[rows, cols]`, from its
/// header alone: [`read_idx_images`] and [`read_idx_dataset`] give each image as a flat
/// row of `rows × cols` pixels, which `.with_sample_shape(&[1, rows, cols])` views as
/// images.
///
/// # Errors
/// As [`read_idx_images`], for the checks of the header (the payload is not read).
///
/// # Examples
/// ```
/// use tapegrad::data::read_idx_image_size;
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-size-{}.idx", std::process::id()));
/// // magic 0x00000803, then 2 images of 2 × 3 pixels, then 12 pixel bytes
/// let mut file = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
/// file.extend(0..12u8);
/// std::fs::write(&path, &file)?;
/// assert_eq!(read_idx_image_size(&path)?, [2, 3]);
/// std::fs::write(&path, &file[..12])?; // a header cut short
/// assert!(read_idx_image_size(&path).is_err());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx_image_size(path: impl AsRef<Path>) -> Result<[usize; 2]> {
    let mut input = Input::open(path.as_ref(), "idx")?;
    let (sizes, _) = read_header(&mut input, 3)?;
    Ok([sizes[1], sizes[2]])
}

/// Reads an IDX label file (`0x00000801`, plain or gzipped).
///
/// Memory: the payload bytes, read incrementally and bounded as in [`read_idx_images`],
/// then one `usize` per label.
///
/// # Errors
/// As [`read_idx_images`] (without the pixel checks): `"idx: expected at least one label,
/// found 0"` for a file of no labels.
///
/// # Examples
/// ```
/// use tapegrad::data::read_idx_labels;
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-lbl-{}.idx", std::process::id()));
/// // magic 0x00000801, 3 labels, then the labels
/// std::fs::write(&path, [0, 0, 8, 1, 0, 0, 0, 3, 4, 0, 9])?;
/// assert_eq!(read_idx_labels(&path)?, vec![4, 0, 9]);
/// std::fs::write(&path, [0, 0, 8, 3, 0, 0, 0, 0])?; // an image file's magic
/// assert!(read_idx_labels(&path).is_err());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let (_, payload) = read_idx(path.as_ref(), 1)?;
    Ok(payload.iter().map(|&b| usize::from(b)).collect())
}

/// A data set from an IDX image file and its IDX label file, kept as bytes, each image a
/// flat row of `rows × cols` pixels (for an MLP). For image layers, view the same bytes as
/// `[1, rows, cols]` images with [`Dataset::with_sample_shape`], e.g. `&[1, 28, 28]` for
/// MNIST and Fashion-MNIST; [`read_idx_image_size`] gives `[rows, cols]`.
///
/// # Errors
/// As [`read_idx_images`], and [`Error::Decode`] when the two files hold different numbers
/// of samples.
///
/// # Examples
/// ```
/// use tapegrad::data::read_idx_dataset;
/// let stem = std::env::temp_dir().join(format!("tapegrad-doc-ds-{}", std::process::id()));
/// let (images, labels) = (stem.with_extension("idx3"), stem.with_extension("idx1"));
/// // 2 images of 1 × 2 pixels, and their 2 labels
/// std::fs::write(&images, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 10, 20, 30, 40])?;
/// std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 2, 1, 0])?;
/// let data = read_idx_dataset(&images, &labels)?;
/// assert_eq!((data.len(), data.num_features(), data.labels()), (2, 2, Some(&[1, 0][..])));
/// std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 1, 1])?; // one label for two images
/// assert!(read_idx_dataset(&images, &labels).is_err());
/// # std::fs::remove_file(&images)?;
/// # std::fs::remove_file(&labels)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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

/// The Fashion-MNIST folder: `dir` when given, else `$FASHION_MNIST_DIR` when it is set and
/// not empty, else `/usr/share/datasets/fashion-mnist` (where Debian's package
/// `dataset-fashion-mnist` installs it). An empty variable (`FASHION_MNIST_DIR=`) counts as
/// unset, as an empty `PATH` entry is not the current folder to most tools.
///
/// # Examples
/// ```
/// use std::path::{Path, PathBuf};
/// use tapegrad::data::fashion_mnist_dir;
/// assert_eq!(fashion_mnist_dir(Some(Path::new("/data/fm"))), PathBuf::from("/data/fm"));
/// ```
pub fn fashion_mnist_dir(dir: Option<&Path>) -> PathBuf {
    match (dir, std::env::var_os(FASHION_MNIST_ENV)) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        (None, _) => PathBuf::from(FASHION_MNIST_DEFAULT_DIR),
    }
}

/// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, <https://arxiv.org/abs/1708.07747>):
/// 60,000 training and 10,000 test images of 28×28 bytes in 10 classes, as
/// `(train, test)`, read from [`fashion_mnist_dir`]`(dir)`. Each file may be gzipped
/// (`train-images-idx3-ubyte.gz`) or not. Samples are flat rows of 784 bytes;
/// `.with_sample_shape(&[1, 28, 28])` gives `[C, H, W]` images (for augmentation or
/// convolutions).
///
/// # Errors
/// [`Error::DatasetMissing`] when a file is absent, with how to install the data set
/// (`apt-get install dataset-fashion-mnist`); [`Error::Decode`] naming the images file for
/// images that are not 28×28 (`"fashion-mnist: expected images of 28 × 28 pixels, found
/// 14 × 56"`), and naming the labels file and the record for a label that is not one of
/// the 10 classes; otherwise as [`read_idx_dataset`].
///
/// # Examples
/// ```
/// use tapegrad::{Error, data::fashion_mnist};
/// let empty = std::env::temp_dir().join(format!("tapegrad-doc-no-fm-{}", std::process::id()));
/// std::fs::create_dir_all(&empty)?;
/// // a folder without the files: the error says how to install the data set
/// let Err(Error::DatasetMissing { hint, .. }) = fashion_mnist(Some(&empty)) else {
///     panic!("expected DatasetMissing");
/// };
/// assert!(hint.contains("dataset-fashion-mnist"));
/// # std::fs::remove_dir(&empty)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    let split = |images: &str, labels: &str| -> Result<Dataset> {
        let (images, labels) = (find(images)?, find(labels)?);
        let [rows, cols] = read_idx_image_size(&images)?;
        if [rows, cols] != [28, 28] {
            return Err(Error::decode(
                &images,
                format!("fashion-mnist: expected images of 28 × 28 pixels, found {rows} × {cols}"),
            ));
        }
        let data = read_idx_dataset(&images, &labels)?;
        let stored = data.labels().expect("an IDX data set has class labels");
        if let Some((record, label)) = stored.iter().enumerate().find(|(_, l)| **l >= 10) {
            return Err(Error::decode(
                &labels,
                format!("fashion-mnist: label {record} is {label}, expected a class below 10"),
            ));
        }
        data.with_num_classes(10)
    };
    Ok((
        split("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    ))
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
            assert_eq!(data.labels().unwrap(), &[4, 0, 9]);
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
        // 0 images of 2^32−1 × 2^32−1 pixels: an empty payload, but no array has such rows;
        // 0 images of 2^32 pixels loaded, and a scaler fitted on them allocated 32 GiB
        let dir = TempDir::new("huge");
        for (rows, cols) in [(u32::MAX, u32::MAX), (65536, 65536), (1, (1 << 31) + 1)] {
            let path = dir.write("huge", &idx(0x803, &[0, rows, cols], &[]));
            let err = read_idx_images(&path).unwrap_err().to_string();
            assert!(
                err.ends_with(&format!(
                    "idx: expected images of at most 2147483648 pixels (2^31), found {rows} × \
                     {cols}"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_file_of_no_images_or_no_labels_is_refused() {
        let dir = TempDir::new("none");
        let images = idx(0x803, &[0, 28, 28], &[]);
        let labels = idx(0x801, &[0], &[]);
        for (name, bytes) in [("images", images.clone()), ("images.gz", gzip(&images))] {
            let path = dir.write(name, &bytes);
            let err = read_idx_images(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "{}: idx: expected at least one image, found 0 (sizes [0, 28, 28])",
                    path.display()
                )
            );
        }
        let path = dir.write("labels", &labels);
        let err = read_idx_labels(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("idx: expected at least one label, found 0 (sizes [0])"),
            "{err}"
        );
        // an empty file, plain or gzipped, has not even a header
        for (name, bytes) in [("empty", vec![]), ("empty.gz", gzip(&[]))] {
            let path = dir.write(name, &bytes);
            let err = read_idx_images(&path).unwrap_err().to_string();
            assert!(
                err.ends_with("idx: truncated header: expected at least 16 bytes, found 0"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn images_of_zero_pixels_are_refused() {
        let dir = TempDir::new("zero");
        for sizes in [[5, 0, 0], [5, 28, 0], [0, 0, 28]] {
            let path = dir.write("zero", &idx(0x803, &sizes, &[]));
            let err = read_idx_images(&path).unwrap_err().to_string();
            assert!(
                err.contains("idx: expected images of at least 1 pixel, found"),
                "{sizes:?}: {err}"
            );
            assert!(
                err.contains(&format!("{} × {}", sizes[1], sizes[2])),
                "{err}"
            );
        }
    }

    #[test]
    fn a_gzip_bomb_fails_at_the_declared_size() {
        // 1 image of 2 × 2 pixels declared, 16 MiB of pixels inflated
        let dir = TempDir::new("bomb");
        let mut bomb = idx(0x803, &[1, 2, 2], &[]);
        bomb.resize(bomb.len() + (16 << 20), 0);
        // with a trailer forged to declare the header's 20 bytes, checked before inflating
        let mut bomb = gzip(&bomb);
        let n = bomb.len();
        bomb[n - 4..].copy_from_slice(&20u32.to_le_bytes());
        let path = dir.write("bomb.gz", &bomb);
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains(
                "idx: the gzip stream inflates to more than the 4 payload bytes its header \
                 declares for sizes [1, 2, 2]"
            ),
            "{err}"
        );
    }

    #[test]
    fn several_gzip_members_or_trailing_bytes_are_refused() {
        let dir = TempDir::new("members");
        let images = idx(0x803, &[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        // split inside the header, inside the payload, and at its end
        for at in [6, 20, images.len()] {
            let mut two = gzip(&images[..at]);
            two.extend(gzip(&images[at..]));
            let path = dir.write("two.gz", &two);
            let err = read_idx_images(&path).unwrap_err().to_string();
            // split in the header: found when the first member ends; later: the last
            // member's trailer declares its own size, not the file's
            let expected = match at {
                6 => "idx: the file holds several gzip members (concatenated streams)".into(),
                _ => format!(
                    "idx: gzip: the trailer declares {} uncompressed bytes (modulo 2^32), \
                     expected the 24",
                    images.len() - at
                ),
            };
            assert!(
                err.contains(&expected) && err.contains("several gzip members"),
                "{at}: {err}"
            );
        }
        let mut junk = gzip(&images);
        junk.extend(b"junk!");
        let path = dir.write("junk.gz", &junk);
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains("idx: gzip: the trailer declares 560688757 uncompressed bytes")
                && err.contains("bytes after the gzip stream"),
            "{err}"
        );
    }

    #[test]
    fn a_short_labels_file_passed_for_images_is_named_by_its_magic() {
        let dir = TempDir::new("swapped");
        let path = dir.write("labels", &idx(0x801, &[3], &[1, 2, 3]));
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("idx: wrong magic number: expected 0x00000803, found 0x00000801"),
            "{err}"
        );
    }

    #[test]
    fn a_gzip_trailer_declaring_less_than_the_header_needs_is_refused_before_inflating() {
        // 1,000 images of 28 × 28 declared; 100 present and stated so by the trailer
        let dir = TempDir::new("trailer");
        let images = idx(0x803, &[1000, 28, 28], &vec![7; 100 * 784]);
        let path = dir.write("short.gz", &gzip(&images));
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "gzip: the trailer declares {} uncompressed bytes (modulo 2^32), expected the \
                 784016 of the header and the payload of sizes [1000, 28, 28] (a truncated",
                images.len()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_gzip_trailer_is_checked_modulo_4_gib_before_inflating() {
        // 2^31 images of 28 × 28 declared (1.6 TiB) over 16 MiB of zeros: the trailer's size
        // differs from the header's total modulo 2^32, so nothing is inflated
        let dir = TempDir::new("modulo");
        let mut bomb = idx(0x803, &[1 << 31, 28, 28], &[]);
        bomb.resize(bomb.len() + (16 << 20), 0);
        let path = dir.write("bomb.gz", &gzip(&bomb));
        let total = 16 + (1u64 << 31) * 784;
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "idx: gzip: the trailer declares {} uncompressed bytes (modulo 2^32), expected \
                 the {total} of the header and the payload of sizes [2147483648, 28, 28], {} \
                 modulo 2^32 (",
                bomb.len(),
                total % (1 << 32)
            )),
            "{err}"
        );
    }

    #[test]
    fn zero_padding_after_the_gzip_stream_is_accepted_and_other_bytes_are_named() {
        // gzip(1) and Python's gzip skip zero bytes after a stream (tape padding)
        let dir = TempDir::new("padding");
        let images = idx(0x803, &[2, 1, 2], &[1, 2, 3, 4]);
        for padding in [1, 3, 4, 8, 100_000] {
            let mut padded = gzip(&images);
            padded.resize(padded.len() + padding, 0);
            let path = dir.write("padded.gz", &padded);
            let loaded = read_idx_images(&path).unwrap();
            assert_eq!(
                loaded.into_raw_vec_and_offset().0,
                [1, 2, 3, 4],
                "{padding}"
            );
        }
        // other bytes: named when the member ends, if the file's last 4 bytes happen to
        // declare the header's size, else they stand for the trailer and disagree with it
        let mut junk = gzip(&images);
        junk.extend([0, 0, 0, 0, 20, 0, 0, 0]);
        let path = dir.write("junk.gz", &junk);
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains("idx: 8 trailing bytes after the gzip stream"),
            "{err}"
        );
        *junk.last_mut().unwrap() = 1;
        let path = dir.write("junk.gz", &junk);
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            err.contains("idx: gzip: the trailer declares 16777236 uncompressed bytes")
                && err.contains("bytes after the gzip stream"),
            "{err}"
        );
    }

    #[test]
    fn a_lying_header_fails_without_allocating_its_claim() {
        // 2^32−1 labels declared, 3 present: the plain size is checked first; a gzip
        // trailer declares 11 bytes, not 2^32 + 7 modulo 2^32, and a stream whose trailer
        // is forged to agree ends long before the buffer could grow to the claim, where
        // the trailer is found to disagree with it
        let dir = TempDir::new("lying");
        let labels = idx(0x801, &[u32::MAX], &[1, 2, 3]);
        let mut forged = gzip(&labels);
        let n = forged.len();
        forged[n - 4..].copy_from_slice(&7u32.to_le_bytes());
        for (name, bytes, expected) in [
            (
                "plain",
                labels.clone(),
                "payload of sizes [4294967295] needs 4294967295 bytes, found 3",
            ),
            (
                "gz",
                gzip(&labels),
                "gzip: the trailer declares 11 uncompressed bytes (modulo 2^32), expected the \
                 4294967303 of the header and the payload of sizes [4294967295], 7 modulo 2^32",
            ),
            (
                "forged.gz",
                forged,
                "idx: gzip: size mismatch: expected 7 bytes (modulo 2^32) from the trailer, \
                 found 11 inflated; the file is corrupt",
            ),
        ] {
            let path = dir.write(name, &bytes);
            let err = read_idx_labels(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn paths_that_are_not_regular_files_are_refused() {
        let dir = TempDir::new("kinds");
        let err = read_idx_labels(&dir.0).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("idx: expected a regular file, found a directory"),
            "{err}"
        );
        #[cfg(unix)]
        if Path::new("/dev/zero").exists() {
            let err = read_idx_images("/dev/zero").unwrap_err().to_string();
            assert!(
                err.contains("expected a regular file, found a character device"),
                "{err}"
            );
        }
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
    fn fashion_mnist_refuses_images_that_are_not_28_by_28() {
        // 784 pixels each, as 14 × 56: they passed as 28 × 28 images
        let dir = TempDir::new("size");
        let labels = idx(0x0801, &[2], &[0, 1]);
        for (name, bytes) in [
            (
                "train-images-idx3-ubyte",
                idx(0x0803, &[2, 14, 56], &[0; 2 * 784]),
            ),
            (
                "t10k-images-idx3-ubyte",
                idx(0x0803, &[2, 28, 28], &[0; 2 * 784]),
            ),
            ("train-labels-idx1-ubyte", labels.clone()),
            ("t10k-labels-idx1-ubyte", labels),
        ] {
            std::fs::write(dir.0.join(name), bytes).unwrap();
        }
        let images = dir.0.join("train-images-idx3-ubyte");
        assert_eq!(read_idx_image_size(&images).unwrap(), [14, 56]);
        let err = fashion_mnist(Some(&dir.0)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: fashion-mnist: expected images of 28 × 28 pixels, found 14 × 56",
                images.display()
            )
        );
    }

    #[test]
    fn a_fashion_mnist_label_beyond_the_ten_classes_is_an_error_naming_file_and_record() {
        let dir = TempDir::new("label-10");
        let images = idx(0x0803, &[3, 28, 28], &[0; 3 * 784]);
        for (name, bytes) in [
            ("train-images-idx3-ubyte", images.clone()),
            ("t10k-images-idx3-ubyte", images),
            ("train-labels-idx1-ubyte", idx(0x0801, &[3], &[9, 10, 1])),
            ("t10k-labels-idx1-ubyte", idx(0x0801, &[3], &[0, 1, 2])),
        ] {
            std::fs::write(dir.0.join(name), bytes).unwrap();
        }
        let err = fashion_mnist(Some(&dir.0)).unwrap_err().to_string();
        let file = dir.0.join("train-labels-idx1-ubyte");
        assert_eq!(
            err,
            format!(
                "{}: fashion-mnist: label 1 is 10, expected a class below 10",
                file.display()
            )
        );
        std::fs::write(&file, idx(0x0801, &[3], &[9, 0, 1])).unwrap();
        let (train, test) = fashion_mnist(Some(&dir.0)).unwrap();
        assert_eq!((train.num_classes(), test.num_classes()), (10, 10));
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
