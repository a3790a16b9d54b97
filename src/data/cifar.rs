//! The CIFAR-10 binary format: records of one label byte and 3,072 pixel bytes
//! (32×32, red plane, then green, then blue), 10,000 records per batch file.
//!
//! The format has no header that declares its size, so memory is bounded by the file: a
//! plain file's size, or the uncompressed size in a gzipped file's trailer, which the
//! stream may not pass. Files are read record by record, never whole.

use crate::data::dataset::Dataset;
use crate::data::read::Input;
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// Pixel bytes per CIFAR-10 image: 3 channels of 32×32.
///
/// # Examples
/// ```
/// assert_eq!(tapegrad::data::CIFAR10_PIXELS, 3 * 32 * 32);
/// ```
pub const CIFAR10_PIXELS: usize = 3 * 32 * 32;

/// The ten CIFAR-10 classes, by label.
///
/// # Examples
/// ```
/// use tapegrad::data::CIFAR10_CLASSES;
/// assert_eq!((CIFAR10_CLASSES.len(), CIFAR10_CLASSES[3]), (10, "cat"));
/// ```
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const RECORD: usize = 1 + CIFAR10_PIXELS;

/// Reads CIFAR-10 binary batch files (such as `data_batch_1.bin` ... `data_batch_5.bin`, or
/// `test_batch.bin`), plain or gzipped, into one data set of `[images, 3072]` bytes in
/// channel-major order, with 10 classes: flat rows for an MLP, or `[3, 32, 32]` images
/// (PyTorch's layout) with `.with_sample_shape(&[3, 32, 32])`.
///
/// Memory: the returned data set, read record by record; no file is held whole. Its
/// buffers grow as records arrive and never past what a file can hold: a plain file's size,
/// or for a gzipped file the uncompressed size its gzip trailer declares (its last 4 bytes,
/// the size modulo 2^32). So a gzipped file must inflate to less than 4 GiB (decompress a
/// larger one first), and a gzip stream that inflates past its trailer's size fails there
/// (as may, with that message, a file whose last 4 bytes are not its trailer: several gzip
/// members or bytes after the stream).
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty list of files; [`Error::Io`] when a file cannot
/// be read or is not a regular file (a FIFO, a device, a directory: refused before
/// reading); [`Error::Decode`] naming the file when it holds no record (an empty file, or
/// an empty gzip stream: `"cifar10: expected at least one image, found 0"`), its length is
/// not a whole number of 3,073-byte records, a label is not below 10, or its gzip stream is
/// broken, inflates past its trailer's size, disagrees with its trailer (naming the check:
/// size or CRC-32), is followed by bytes other than zero padding or is one of several
/// concatenated gzip members.
///
/// # Examples
/// ```
/// use tapegrad::data::{CIFAR10_PIXELS, read_cifar10};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-{}.bin", std::process::id()));
/// let mut record = vec![7u8]; // label 7, "horse"
/// record.extend((0..CIFAR10_PIXELS).map(|i| (i % 251) as u8));
/// std::fs::write(&path, [record.clone(), record].concat())?;
/// let data = read_cifar10(&[&path])?.with_sample_shape(&[3, 32, 32])?;
/// assert_eq!((data.len(), data.num_classes()), (2, 10));
/// assert_eq!(data.labels(), Some(&[7, 7][..]));
/// assert_eq!(data.bytes().unwrap()[[1, 0, 0, 5]], 5);
/// std::fs::write(&path, [1u8, 2, 3])?; // not a whole record
/// assert!(read_cifar10(&[&path]).is_err());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_cifar10<P: AsRef<Path>>(files: &[P]) -> Result<Dataset> {
    if files.is_empty() {
        return Err(Error::InvalidArgument {
            op: "cifar10",
            message: "expected at least one batch file, found an empty list".into(),
        });
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut record = vec![0; RECORD];
    for path in files {
        let mut input = Input::open(path.as_ref(), "cifar10")?;
        let bound = input.size_bound(|size| size % RECORD as u64 == 0);
        let not_whole = |found: u64| {
            format!(
                "expected a multiple of {RECORD} bytes (label + {CIFAR10_PIXELS} pixels per \
                 image), found {found}"
            )
        };
        if !input.is_gzip() && bound % RECORD as u64 != 0 {
            return Err(input.error(not_whole(bound)));
        }
        let records = usize::try_from(bound / RECORD as u64).unwrap_or(usize::MAX);
        let (labels_limit, pixels_limit) = (
            labels.len().saturating_add(records),
            pixels
                .len()
                .saturating_add(records.saturating_mul(CIFAR10_PIXELS)),
        );
        let mut read = 0u64;
        for i in 0.. {
            let found = input.read_full(&mut record)?;
            read += found as u64;
            if read > bound {
                // only a gzip stream can pass its bound; a plain file is read up to its size
                return Err(input.error(format!(
                    "the gzip stream inflates to more than the {bound} bytes its gzip trailer \
                     declares (the file's last 4 bytes, the size modulo 2^32): a wrong trailer, \
                     several gzip members or bytes after the stream (re-compress it as one \
                     stream), or 4 GiB of data or more (decompress it first)"
                )));
            }
            if found < RECORD {
                input.expect_no_more_members()?;
                if found == 0 && i == 0 {
                    return Err(input.error("expected at least one image, found 0"));
                }
                if found == 0 {
                    break;
                }
                return Err(input.error(not_whole(read)));
            }
            if record[0] >= 10 {
                return Err(input.error(format!(
                    "record {i} has label {}, expected 0 to 9",
                    record[0]
                )));
            }
            input.grow(&mut labels, 1, labels_limit)?;
            input.grow(&mut pixels, CIFAR10_PIXELS, pixels_limit)?;
            labels.push(usize::from(record[0]));
            pixels.extend_from_slice(&record[1..]);
        }
    }
    let x = Array2::from_shape_vec((labels.len(), CIFAR10_PIXELS), pixels)
        .expect("whole records checked");
    Dataset::from_bytes(x, labels)?.with_num_classes(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(fill, CIFAR10_PIXELS));
        r
    }

    #[test]
    fn reads_records_across_files_and_rejects_broken_ones() {
        let dir = std::env::temp_dir().join(format!("tapegrad-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.bin");
        let b = dir.join("b.bin");
        std::fs::write(&a, [record(3, 7), record(9, 1)].concat()).unwrap();
        std::fs::write(&b, record(0, 200)).unwrap();
        let data = read_cifar10(&[&a, &b]).unwrap();
        assert_eq!(
            (data.len(), data.num_features(), data.num_classes()),
            (3, 3072, 10)
        );
        assert_eq!(data.labels().unwrap(), &[3, 9, 0]);
        assert_eq!(data.full_batch().0[[2, 3071]], 200.0);

        let truncated = dir.join("t.bin");
        std::fs::write(&truncated, &record(1, 0)[..3000]).unwrap();
        let err = read_cifar10(&[&truncated]).unwrap_err().to_string();
        assert!(
            err.contains("t.bin: cifar10: expected a multiple of 3073 bytes"),
            "{err}"
        );
        assert!(err.contains("found 3000"), "{err}");

        let bad_label = dir.join("l.bin");
        std::fs::write(&bad_label, [record(1, 0), record(10, 0)].concat()).unwrap();
        let err = read_cifar10(&[&bad_label]).unwrap_err().to_string();
        assert!(
            err.contains("record 1 has label 10, expected 0 to 9"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_streams_are_bounded_by_their_trailer_and_must_be_one_member() {
        let dir = std::env::temp_dir().join(format!("tapegrad-cifar-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bin.gz");
        let two = [record(3, 7), record(9, 1)].concat();
        std::fs::write(&path, gzip(&two)).unwrap();
        assert_eq!(read_cifar10(&[&path]).unwrap().labels().unwrap(), &[3, 9]);

        // 1,000 records of zeros (valid ones) whose trailer says 2 records: refused once
        // the stream passes 2 records' bytes
        let mut bomb = gzip(&vec![0; 1000 * RECORD]);
        let n = bomb.len();
        bomb[n - 4..].copy_from_slice(&(2 * RECORD as u32).to_le_bytes());
        std::fs::write(&path, &bomb).unwrap();
        let err = read_cifar10(&[&path]).unwrap_err().to_string();
        assert!(
            err.contains(
                "cifar10: the gzip stream inflates to more than the 6146 bytes its gzip trailer declares"
            ),
            "{err}"
        );

        // before: the first member's records loaded silently
        std::fs::write(&path, [gzip(&record(1, 0)), gzip(&record(2, 0))].concat()).unwrap();
        let err = read_cifar10(&[&path]).unwrap_err().to_string();
        assert!(err.contains("several gzip members"), "{err}");
        // trailing bytes become the size the last 4 bytes declare: here a large one ...
        std::fs::write(&path, [gzip(&two), vec![0xff; 3]].concat()).unwrap();
        let err = read_cifar10(&[&path]).unwrap_err().to_string();
        assert!(
            err.contains("3 trailing bytes after the gzip stream"),
            "{err}"
        );
        // ... while zero bytes are padding, which gzip(1) accepts too (they read as a
        // trailer of 0 bytes, and the stream failed at once)
        for padding in [3, 8] {
            std::fs::write(&path, [gzip(&two), vec![0; padding]].concat()).unwrap();
            assert_eq!(read_cifar10(&[&path]).unwrap().len(), 2, "{padding}");
        }
        // a trailer whose size is wrong but large enough: found when the stream ends
        let mut wrong = gzip(&two);
        let n = wrong.len();
        wrong[n - 4..].copy_from_slice(&(3 * RECORD as u32).to_le_bytes());
        std::fs::write(&path, &wrong).unwrap();
        let err = read_cifar10(&[&path]).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "cifar10: gzip: size mismatch: expected 9219 bytes (modulo 2^32) from the \
                 trailer, found 6146 inflated; the file is corrupt"
            ),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_files_and_files_of_no_records_are_refused() {
        let dir = std::env::temp_dir().join(format!("tapegrad-cifar-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let none: [&Path; 0] = [];
        let err = read_cifar10(&none).unwrap_err().to_string();
        assert_eq!(
            err,
            "cifar10: expected at least one batch file, found an empty list"
        );
        let good = dir.join("good.bin");
        std::fs::write(&good, record(1, 0)).unwrap();
        for (name, bytes) in [("empty.bin", vec![]), ("empty.bin.gz", gzip(&[]))] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            // also after a good file: an empty batch file is a mistake, not a batch
            for files in [vec![&path], vec![&good, &path]] {
                let err = read_cifar10(&files).unwrap_err().to_string();
                assert_eq!(
                    err,
                    format!(
                        "{}: cifar10: expected at least one image, found 0",
                        path.display()
                    )
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
