//! Reading a loader's input file, plain or gzipped, with a bound on memory.
//!
//! [`Input::open`] refuses anything but a regular file (a FIFO, `/dev/zero`, a folder) before
//! reading a byte, so no path can make a loader hang or read without end. A gzipped file
//! (one that starts with the gzip magic bytes `1f 8b`) is inflated as it is read, never
//! whole: the loaders ask for exactly the bytes their format declares and stop with an
//! error as soon as the stream gives more. A plain file is bounded by its size, known before
//! reading. A gzipped file must hold exactly one gzip member: several concatenated members
//! or bytes after the member are refused rather than silently ignored, except zero bytes,
//! which gzip(1) and Python's `gzip` also accept as padding (tape blocks). When the member
//! ends, a trailer that disagrees with the inflated bytes is reported naming the check that
//! failed (the CRC-32 or the size) with what it declares and what was found.

use crate::error::{Error, Result};
use flate2::bufread::GzDecoder;
use std::fs::{File, Metadata};
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom, Take};
use std::path::{Path, PathBuf};

/// The first two bytes of every gzip member (RFC 1952, section 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The smallest gzip member: a 10-byte header, an empty deflate block, an 8-byte trailer.
const GZIP_MIN_LEN: u64 = 20;

/// Bytes read from the stream at a time when the total is not known in advance.
const CHUNK: usize = 64 << 10;

/// An open input file: its plain bytes, or the inflated bytes of its one gzip member.
pub(crate) struct Input {
    path: PathBuf,
    /// The loader, for messages: `"idx"`, `"cifar10"`.
    op: &'static str,
    stream: Stream,
    /// A plain file's size (the most bytes it yields).
    plain_len: u64,
}

enum Stream {
    /// A plain file, read up to the size it had when opened.
    Plain(BufReader<Take<File>>),
    /// A gzipped file, inflated as it is read.
    Gzip(Box<Inflating>),
}

/// A gzip member being inflated, with what it has given so far, to say which check of its
/// trailer failed.
struct Inflating {
    decoder: GzDecoder<BufReader<Take<File>>>,
    /// The file's size when opened.
    len: u64,
    /// The bytes inflated so far.
    inflated: u64,
    /// Their CRC-32.
    crc: crc32fast::Hasher,
    /// The uncompressed sizes modulo 2^32 the trailer may declare ([`trailer_sizes`]).
    trailer_sizes: Vec<u32>,
}

impl Read for Inflating {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.decoder.read(buf)?;
        self.crc.update(&buf[..n]);
        self.inflated += n as u64;
        Ok(n)
    }
}

impl Inflating {
    /// What went wrong when the decoder failed with `e`: for a trailer that disagrees with
    /// the inflated bytes (flate2 says only "corrupt gzip stream does not have a matching
    /// checksum"), which of its two checks failed, with the value it declares and the one
    /// found; otherwise `e` as flate2 gives it.
    fn explain(&mut self, e: std::io::Error) -> String {
        let trailer_failed = e.kind() == ErrorKind::InvalidInput
            && e.to_string().contains("does not have a matching checksum");
        if !trailer_failed {
            return format!("gzip: {e}");
        }
        // the decoder has just consumed the 8 trailer bytes
        let rest = self.decoder.get_ref();
        let consumed = self.len - rest.get_ref().limit() - rest.buffer().len() as u64;
        let mut trailer = [0; 8];
        let file = self.decoder.get_mut().get_mut().get_mut();
        let Some(at) = consumed.checked_sub(8) else {
            return format!("gzip: {e}");
        };
        if (file.seek(SeekFrom::Start(at)))
            .and_then(|_| file.read_exact(&mut trailer))
            .is_err()
        {
            return format!("gzip: {e}");
        }
        let declared_crc = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
        let declared_size = u32::from_le_bytes(trailer[4..].try_into().expect("4 bytes"));
        let found_crc = self.crc.clone().finalize();
        let mut problems = Vec::new();
        if u64::from(declared_size) != self.inflated % (1 << 32) {
            problems.push(format!(
                "size mismatch: expected {declared_size} bytes (modulo 2^32) from the trailer, \
                 found {} inflated",
                self.inflated
            ));
        }
        if declared_crc != found_crc {
            problems.push(format!(
                "CRC-32 mismatch: expected {declared_crc:#010x} from the trailer, found \
                 {found_crc:#010x}"
            ));
        }
        format!("gzip: {}; the file is corrupt", problems.join("; "))
    }
}

/// The uncompressed sizes modulo 2^32 (RFC 1952 ISIZE) that the trailer of the gzip file
/// `file` of `len` bytes may declare, the last 4 bytes of the file first. When the file ends
/// with zero bytes, which gzip(1) and Python's `gzip` skip as padding after the stream, the
/// trailer may end before any of them, so the 4 bytes before each possible length of
/// padding count too: those that hold one of the last nonzero bytes, and 0.
fn trailer_sizes(file: &mut File, len: u64) -> std::io::Result<Vec<u32>> {
    // `end`: just past the last nonzero byte (the zero padding starts there)
    let mut end = len;
    let mut block = vec![0; CHUNK];
    while end > 0 {
        let n = end.min(CHUNK as u64) as usize;
        file.seek(SeekFrom::Start(end - n as u64))?;
        file.read_exact(&mut block[..n])?;
        match block[..n].iter().rposition(|&b| b != 0) {
            Some(i) => {
                end = end - n as u64 + i as u64 + 1;
                break;
            }
            None => end -= n as u64,
        }
    }
    // a trailer ends at or after `end`; one ending past `end + 3` holds only zeros
    let (from, to) = (end.saturating_sub(4), len.min(end + 3));
    let mut tail = vec![0; (to - from) as usize];
    file.seek(SeekFrom::Start(from))?;
    file.read_exact(&mut tail)?;
    let window = |stop: u64| {
        let at = (stop - 4 - from) as usize;
        u32::from_le_bytes(tail[at..at + 4].try_into().expect("4 bytes"))
    };
    let mut sizes = vec![if len <= to { window(len) } else { 0 }];
    for stop in end.max(4)..=to {
        sizes.push(window(stop));
    }
    if len > to {
        sizes.push(0);
    }
    let mut seen = std::collections::BTreeSet::new();
    sizes.retain(|size| seen.insert(*size));
    Ok(sizes)
}

/// What the metadata of a path that is not a regular file says it is.
pub(crate) fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "neither a file nor a directory"
    }
}

/// Reads into `buf` until it is full or the reader ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match reader.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Opens `path` for reading after checking that it is a regular file (before opening, since
/// opening a FIFO blocks, and again on the opened handle), with its metadata.
///
/// # Errors
/// [`Error::Io`] naming the path when it is missing or unreadable, or is not a regular file
/// (a FIFO, a device such as `/dev/zero`, a directory, a socket): `"{op}: expected a
/// regular file, found a named pipe (FIFO)"`.
pub(crate) fn open_regular_file(path: &Path, op: &'static str) -> Result<(File, Metadata)> {
    let not_a_file = |file_type| {
        Error::io(
            path,
            std::io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{op}: expected a regular file, found {}",
                    kind_of(file_type)
                ),
            ),
        )
    };
    let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !metadata.is_file() {
        return Err(not_a_file(metadata.file_type()));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
    if !metadata.is_file() {
        return Err(not_a_file(metadata.file_type()));
    }
    Ok((file, metadata))
}

/// The whole of the regular file `path` (see [`open_regular_file`]), read into a buffer of
/// the size its metadata gives.
///
/// # Errors
/// As [`open_regular_file`], and [`Error::Io`] when reading fails.
pub(crate) fn read_regular_file(path: &Path, op: &'static str) -> Result<Vec<u8>> {
    let (file, metadata) = open_regular_file(path, op)?;
    let mut bytes = Vec::new();
    reserve_for_file(&mut bytes, metadata.len(), path)?;
    // a file that grows while it is read is read up to the size it had when opened
    file.take(metadata.len())
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Reserves room in `bytes` for the `len` bytes of file `path`, or says that they do not fit
/// in memory (rather than aborting the process, as a failed allocation does).
///
/// # Errors
/// [`Error::Io`] (out of memory) naming the file and its size.
pub(crate) fn reserve_for_file(bytes: &mut Vec<u8>, len: u64, path: &Path) -> Result<()> {
    let wanted = usize::try_from(len).unwrap_or(usize::MAX);
    (bytes.try_reserve_exact(wanted.saturating_sub(bytes.len()))).map_err(|e| {
        let message = format!("the file's {len} bytes do not fit in memory: {e}");
        Error::io(path, std::io::Error::new(ErrorKind::OutOfMemory, message))
    })
}

impl Input {
    /// Opens `path` for loader `op`, refusing a path that is not a regular file before
    /// opening it (opening a FIFO would wait for a writer), and again by the metadata of the
    /// opened handle, in case the path changed in between.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path when it cannot be opened or is not a regular file;
    /// [`Error::Decode`] when it starts like gzip but is shorter than any gzip member.
    pub(crate) fn open(path: &Path, op: &'static str) -> Result<Input> {
        let (mut file, metadata) = open_regular_file(path, op)?;
        let len = metadata.len();
        let mut magic = [0; 2];
        let io = |e| Error::io(path, e);
        let found = fill(&mut file, &mut magic).map_err(io)?;
        let gzip = found == 2 && magic == GZIP_MAGIC;
        let mut sizes = Vec::new();
        if gzip {
            if len < GZIP_MIN_LEN {
                return Err(Error::decode(
                    path,
                    format!(
                        "{op}: gzip: truncated stream: expected at least {GZIP_MIN_LEN} bytes \
                         (a gzip header, a deflate block and a trailer), found {len}"
                    ),
                ));
            }
            sizes = trailer_sizes(&mut file, len).map_err(io)?;
        }
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let reader = BufReader::new(file.take(len));
        let stream = if gzip {
            let inflating = Inflating {
                decoder: GzDecoder::new(reader),
                len,
                inflated: 0,
                crc: crc32fast::Hasher::new(),
                trailer_sizes: sizes,
            };
            Stream::Gzip(Box::new(inflating))
        } else {
            Stream::Plain(reader)
        };
        Ok(Input {
            path: path.to_path_buf(),
            op,
            stream,
            plain_len: len,
        })
    }

    /// An [`Error::Decode`] for this file, with the loader's name first.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::decode(&self.path, format!("{}: {message}", self.op))
    }

    /// The bytes left in a plain file; `None` for a gzipped one, whose size is only known
    /// once inflated.
    pub(crate) fn plain_remaining(&self) -> Option<u64> {
        match &self.stream {
            Stream::Plain(reader) => Some(reader.buffer().len() as u64 + reader.get_ref().limit()),
            Stream::Gzip(_) => None,
        }
    }

    /// The most bytes this input yields in all: a plain file's size, or the uncompressed
    /// size its gzip trailer declares (below 4 GiB, as gzip stores it modulo 2^32). For a
    /// gzipped file that ends with zero bytes, which may be padding, it is the largest of
    /// the [`trailer_sizes`] for which `fits` holds (a whole number of records), or the
    /// last 4 bytes' size when none does.
    pub(crate) fn size_bound(&self, fits: impl Fn(u64) -> bool) -> u64 {
        match &self.stream {
            Stream::Plain(_) => self.plain_len,
            Stream::Gzip(inflating) => {
                let sizes = inflating.trailer_sizes.iter().map(|&size| u64::from(size));
                (sizes.filter(|&size| fits(size)).max())
                    .unwrap_or(u64::from(inflating.trailer_sizes[0]))
            }
        }
    }

    /// Checks, before inflating, that the gzip trailer declares `total` uncompressed bytes:
    /// that its size field (RFC 1952 ISIZE, the size modulo 2^32) is `total` modulo 2^32.
    /// A plain input passes.
    ///
    /// # Errors
    /// The size that the file's last 4 bytes declare when it is not (nor any of the
    /// [`trailer_sizes`] of a file that ends with zero bytes).
    pub(crate) fn check_declared_size(&self, total: u64) -> std::result::Result<(), u32> {
        match &self.stream {
            Stream::Gzip(inflating) if !inflating.trailer_sizes.contains(&(total as u32)) => {
                Err(inflating.trailer_sizes[0])
            }
            _ => Ok(()),
        }
    }

    /// Whether the input is gzipped.
    pub(crate) fn is_gzip(&self) -> bool {
        matches!(self.stream, Stream::Gzip(_))
    }

    /// Reads into `buf` until it is full or the input ends; returns the bytes read.
    ///
    /// # Errors
    /// [`Error::Decode`] for a broken gzip stream (including a wrong checksum or size in
    /// its trailer, checked when the member ends); [`Error::Io`] when reading fails.
    pub(crate) fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        match &mut self.stream {
            Stream::Plain(reader) => fill(reader, buf).map_err(|e| Error::io(&self.path, e)),
            Stream::Gzip(inflating) => fill(inflating, buf).map_err(|e| {
                let message = inflating.explain(e);
                Error::decode(&self.path, format!("{}: {message}", self.op))
            }),
        }
    }

    /// Makes room in `v` for `additional` more elements: at least doubles its capacity, but
    /// never past `limit` elements in all (or `len + additional` when that is more).
    ///
    /// # Errors
    /// [`Error::Decode`] naming the file when the allocator refuses the memory.
    pub(crate) fn grow<T>(&self, v: &mut Vec<T>, additional: usize, limit: usize) -> Result<()> {
        if v.capacity() - v.len() >= additional {
            return Ok(());
        }
        let room = limit.saturating_sub(v.len()).max(additional);
        let grow = v.capacity().max(additional).min(room);
        v.try_reserve_exact(grow).map_err(|e| {
            self.error(format!(
                "could not allocate room for {} more elements of {} bytes: {e}",
                grow,
                size_of::<T>()
            ))
        })
    }

    /// Reads up to `n` bytes into a vector that grows as data arrives, so that it never
    /// holds more than `n` bytes, nor more than about twice what the file really provides
    /// plus 64 KiB: a header that declares more than the file holds costs no more than the
    /// file's real content. Returns fewer than `n` bytes only when the input ends first.
    ///
    /// # Errors
    /// As [`Input::read_full`], and as [`Input::grow`].
    pub(crate) fn read_vec(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        // a plain file's size is known: allocate once
        let first = match self.plain_remaining() {
            Some(left) => n.min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => n.min(CHUNK),
        };
        self.grow(&mut out, first, n)?;
        while out.len() < n {
            let want = CHUNK.min(n - out.len());
            self.grow(&mut out, want, n)?;
            let start = out.len();
            out.resize(start + want, 0);
            let got = self.read_full(&mut out[start..])?;
            out.truncate(start + got);
            if got < want {
                break;
            }
        }
        Ok(out)
    }

    /// Requires the input to end here: a plain file that has no more bytes, or a gzip
    /// member that inflates to nothing more and is the last thing in the file.
    /// `declared` says what declared the size read so far, for the message (e.g. "the 48
    /// payload bytes its header declares").
    ///
    /// # Errors
    /// [`Error::Decode`] when more data follows, naming `declared`; when the file holds
    /// several gzip members or trailing bytes after its one member; as
    /// [`Input::read_full`].
    pub(crate) fn expect_end(&mut self, declared: &str) -> Result<()> {
        let mut byte = [0];
        if self.read_full(&mut byte)? > 0 {
            let verb = if self.is_gzip() {
                "the gzip stream inflates to"
            } else {
                "the file holds"
            };
            return Err(self.error(format!("{verb} more than {declared}")));
        }
        self.expect_no_more_members()
    }

    /// Once the input has ended (its reads return 0 bytes), requires that a gzip member
    /// was all of the file, but for zero bytes after it (padding, as gzip(1) accepts). Call
    /// it before reporting that the data is too short, as a second member would explain
    /// the shortage.
    ///
    /// # Errors
    /// [`Error::Decode`] when the file holds several gzip members or bytes other than zero
    /// padding after the gzip member; [`Error::Io`] when reading fails.
    pub(crate) fn expect_no_more_members(&mut self) -> Result<()> {
        let Stream::Gzip(inflating) = &mut self.stream else {
            return Ok(());
        };
        let rest = inflating.decoder.get_mut();
        let io = |e| Error::io(&self.path, e);
        let buffered = rest.fill_buf().map_err(io)?.len();
        if buffered == 0 {
            return Ok(());
        }
        let trailing = buffered as u64 + rest.get_ref().limit();
        if rest.buffer().iter().all(|&b| b == 0) {
            // zero padding: skip it all, or find where it stops
            loop {
                let n = rest.fill_buf().map_err(io)?;
                if n.is_empty() {
                    return Ok(());
                }
                if n.iter().any(|&b| b != 0) {
                    break;
                }
                let n = n.len();
                rest.consume(n);
            }
        }
        let first = rest.buffer()[0];
        let second = match rest.buffer().get(1) {
            Some(&b) => Some(b),
            None => {
                let mut b = [0];
                (fill(rest.get_mut(), &mut b).map_err(io)? == 1).then_some(b[0])
            }
        };
        if [Some(first), second] == GZIP_MAGIC.map(Some) {
            return Err(self.error(
                "the file holds several gzip members (concatenated streams), expected one; \
                 re-compress it as one stream (`zcat FILE | gzip > NEW`) or pass the \
                 uncompressed file",
            ));
        }
        Err(self.error(format!(
            "{trailing} trailing bytes after the gzip stream, expected the file to end with it"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn file(name: &str, bytes: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("tapegrad-read-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn plain_and_gzipped_inputs_read_the_same_bytes() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        for (name, bytes) in [("plain", data.clone()), ("gz", gzip(&data))] {
            let path = file(name, &bytes);
            let mut input = Input::open(&path, "test").unwrap();
            assert_eq!(input.is_gzip(), name == "gz");
            let expected_bound = if name == "gz" {
                data.len()
            } else {
                bytes.len()
            };
            // 200,000 ends in a zero byte, which might be padding: a size that fits picks
            let fits = |size| size == expected_bound as u64;
            assert_eq!(input.size_bound(fits), expected_bound as u64);
            assert_eq!(input.check_declared_size(data.len() as u64), Ok(()));
            let head = input.read_vec(10).unwrap();
            assert_eq!(head, &data[..10]);
            let rest = input.read_vec(usize::MAX).unwrap();
            assert_eq!(rest, &data[10..]);
            input.expect_end("all of it").unwrap();
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_gzip_stream_longer_than_declared_fails_at_the_declared_size() {
        let path = file("long", &gzip(&[7; 1000]));
        let mut input = Input::open(&path, "test").unwrap();
        assert_eq!(input.read_vec(100).unwrap().len(), 100);
        let err = input.expect_end("the 100 bytes it should").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("test: the gzip stream inflates to more than the 100 bytes"),
            "{text}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn several_members_and_trailing_bytes_are_refused() {
        let one = gzip(b"hello");
        let cases = [
            (
                "two",
                [one.clone(), gzip(b"world")].concat(),
                "several gzip members",
            ),
            (
                "junk",
                [one.clone(), b"junk".to_vec()].concat(),
                "4 trailing bytes after the gzip stream",
            ),
            // a lone 0x1f is not the start of a member
            (
                "lone",
                [one.clone(), vec![0x1f]].concat(),
                "1 trailing bytes after the gzip stream",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = file(name, &bytes);
            let mut input = Input::open(&path, "test").unwrap();
            assert_eq!(input.read_vec(100).unwrap(), b"hello");
            let text = input.expect_no_more_members().unwrap_err().to_string();
            assert!(text.contains(expected), "{name}: {text}");
            let mut input = Input::open(&path, "test").unwrap();
            input.read_vec(5).unwrap();
            let text = input.expect_end("5 bytes").unwrap_err().to_string();
            assert!(text.contains(expected), "{name}: {text}");
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_trailer_that_disagrees_with_the_stream_names_the_check_that_failed() {
        // flate2 says "corrupt gzip stream does not have a matching checksum" for both
        let good = gzip(b"hello");
        let n = good.len();
        let mut crc = good.clone();
        crc[n - 8] ^= 0xff;
        let mut size = good.clone();
        size[n - 4..].copy_from_slice(&6u32.to_le_bytes());
        let crc_found = crc32fast::hash(b"hello");
        let crc_declared = crc_found ^ 0xff;
        let cases = [
            (
                "crc",
                crc,
                format!(
                    "test: gzip: CRC-32 mismatch: expected {crc_declared:#010x} from the \
                     trailer, found {crc_found:#010x}; the file is corrupt"
                ),
            ),
            (
                "size",
                size,
                "test: gzip: size mismatch: expected 6 bytes (modulo 2^32) from the trailer, \
                 found 5 inflated; the file is corrupt"
                    .to_string(),
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = file(name, &bytes);
            let mut input = Input::open(&path, "test").unwrap();
            let text = input.read_vec(100).unwrap_err().to_string();
            assert!(text.ends_with(&expected), "{name}: {text}");
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_folder_is_refused_before_reading() {
        let dir = std::env::temp_dir();
        let err = Input::open(&dir, "test").err().unwrap();
        assert!(matches!(err, Error::Io { .. }));
        let text = err.to_string();
        assert!(
            text.contains("test: expected a regular file, found a directory"),
            "{text}"
        );
        assert!(text.starts_with(&dir.display().to_string()), "{text}");
    }

    #[test]
    fn a_gzip_file_shorter_than_any_member_is_refused() {
        let path = file("tiny", &[0x1f, 0x8b, 8, 0]);
        let text = Input::open(&path, "test").err().unwrap().to_string();
        assert!(
            text.contains("test: gzip: truncated stream: expected at least 20 bytes"),
            "{text}"
        );
        assert!(text.contains("found 4"), "{text}");
        std::fs::remove_file(&path).unwrap();
    }
}
