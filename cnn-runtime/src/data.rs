//! MNIST-style data sets: IDX files (raw or gzip) into a [`Dataset`] of
//! `f32` images and `u8` labels.
//!
//! IDX is big-endian: a magic number (`0x00000803` for images,
//! `0x00000801` for labels), the item count, for images the row and column
//! counts, then one `u8` per pixel (row-major) or per label. Pixels become
//! `pixel / 255` in `[0, 1]`, as torchvision's `ToTensor` makes them.
//!
//! Untrusted headers cannot make this module allocate: the header is read
//! first and its payload size computed with checked arithmetic; a raw file
//! (or slice) is measured against that size before anything is allocated.
//! A gzip stream's buffer grows only as decompressed bytes arrive, never
//! past the promised size, and a promise over 64 MiB is first checked by
//! inflating the stream into a counter (constant memory). Exactly the
//! promised bytes are read, then one more to prove there are none beyond,
//! so a ten-byte file claiming billions of images fails with
//! [`DataError::Truncated`] at once and a gzip bomb inflating past its
//! header fails with [`DataError::TrailingData`] in constant memory.
//!
//! Gzip is recognised by its magic bytes (`1f 8b`), whatever the file is
//! called; a file of several gzip members (`cat a.gz b.gz`) is one stream, as
//! for `gunzip`. A damaged stream (bad deflate data, bad checksum, garbage
//! after the last member) is [`DataError::CorruptGzip`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

/// Number of classes a label may name (`0..NUM_CLASSES`), as in MNIST and
/// Fashion-MNIST.
pub const NUM_CLASSES: usize = 10;

/// Magic number of an IDX file of `u8` images (`[count, rows, cols]`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of `u8` labels (`[count]`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The first buffer for a gzip payload; it doubles as data arrives.
const FIRST_CHUNK: u64 = 64 * 1024;

/// The largest gzip payload taken on the word of its header alone: a
/// larger promise is first checked by inflating the stream into a counter
/// (constant memory), so the bytes are held only once they are known to be
/// there, exactly as many as promised, in a stream that is not corrupt.
const TRUSTED_PROMISE: u64 = 64 << 20;

/// How much decompressed data past the promised end is inflated (into a
/// fixed buffer, then dropped) to tell a gzip stream that merely holds too
/// much from a corrupt one; beyond this it is reported as too much.
const CHECK_PAST_END: u64 = 64 << 20;

/// Why a data set could not be read. Every variant names the file.
#[derive(Debug)]
pub enum DataError {
    /// Reading `path` failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// `path` is gzip, but its stream is damaged: bad deflate data, a
    /// checksum or length that does not match the data, a cut trailer, or
    /// garbage after the last member.
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor said.
        source: io::Error,
    },
    /// Neither `name` nor `name.gz` exists in `dir`.
    NotFound {
        /// The directory searched.
        dir: PathBuf,
        /// The file name without `.gz`.
        name: String,
    },
    /// The file does not start with the expected IDX magic number.
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        found: u32,
        /// [`IMAGES_MAGIC`] or [`LABELS_MAGIC`].
        expected: u32,
    },
    /// The file (after decompression) ends before its header says it does.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises, header included.
        expected_bytes: u64,
        /// Bytes actually there.
        found_bytes: u64,
    },
    /// The file (after decompression) goes on after the data its header
    /// promises.
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises, header included.
        expected_bytes: u64,
    },
    /// An images header with zero rows or columns, or more pixels than can
    /// be addressed.
    BadDimensions {
        /// The file.
        path: PathBuf,
        /// Number of images in the header.
        count: u32,
        /// Rows per image in the header.
        rows: u32,
        /// Columns per image in the header.
        cols: u32,
    },
    /// The images and labels files hold different numbers of items.
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A label is not a class in `0..NUM_CLASSES`.
    BadLabel {
        /// The labels file.
        path: PathBuf,
        /// Position of the label.
        index: usize,
        /// Its value.
        label: u8,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::CorruptGzip { path, source } => {
                write!(f, "{}: corrupt gzip data: {source}", path.display())
            }
            DataError::NotFound { dir, name } => {
                write!(f, "neither {name} nor {name}.gz found in {}", dir.display())
            }
            DataError::BadMagic {
                path,
                found,
                expected,
            } => {
                let kind = if *expected == IMAGES_MAGIC {
                    "images"
                } else {
                    "labels"
                };
                write!(
                    f,
                    "{}: not an IDX {kind} file: magic number 0x{found:08x}, expected 0x{expected:08x}",
                    path.display()
                )
            }
            DataError::Truncated {
                path,
                expected_bytes,
                found_bytes,
            } => write!(
                f,
                "{}: truncated: expected {expected_bytes} bytes, found {found_bytes}",
                path.display()
            ),
            DataError::TrailingData { path, expected_bytes } => write!(
                f,
                "{}: more data than the header promises ({expected_bytes} bytes)",
                path.display()
            ),
            DataError::BadDimensions {
                path,
                count,
                rows,
                cols,
            } => write!(
                f,
                "{}: unusable dimensions: {count} images of {rows}x{cols} pixels",
                path.display()
            ),
            DataError::CountMismatch {
                images_path,
                images,
                labels_path,
                labels,
            } => write!(
                f,
                "{} holds {images} images but {} holds {labels} labels",
                images_path.display(),
                labels_path.display()
            ),
            DataError::BadLabel { path, index, label } => write!(
                f,
                "{}: label {index} is {label}, expected a class in 0..{NUM_CLASSES}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } | DataError::CorruptGzip { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads into `buf` until it is full, the input ends or an error occurs;
/// returns the bytes read either way (unlike `read_exact`, which does not
/// say how many there were).
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> (usize, io::Result<()>) {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Err(e)),
        }
    }
    (filled, Ok(()))
}

/// How the bytes of an IDX stream are stored.
#[derive(Clone, Copy, Debug)]
enum Encoding {
    /// Uncompressed; `Some(n)` when the stream is known to hold exactly `n`
    /// bytes (a regular file, a slice), so sizes are checked before reading.
    Raw(Option<u64>),
    /// Gzip, one member or several: decoder errors mean corrupt data.
    Gzip,
}

/// A reader of an IDX stream from its start.
type Reopen<'a> = Box<dyn Fn() -> io::Result<Box<dyn Read + 'a>> + 'a>;

/// An IDX stream to read.
struct Stream<'a> {
    reader: Box<dyn Read + 'a>,
    encoding: Encoding,
    /// For a gzip stream that can be read twice (a regular file, a slice):
    /// the stream again from its start (see [`TRUSTED_PROMISE`]).
    reopen: Option<Reopen<'a>>,
}

/// An IDX file's header: its dimensions, and its payload.
struct Idx {
    dims: Vec<u32>,
    payload: Vec<u8>,
}

/// Where reading stopped, for error reports.
#[derive(Clone, Copy)]
struct Progress {
    expected_bytes: u64,
    found_bytes: u64,
}

/// The error for `e`, met while reading `path` before the promised data was
/// all there: a stream that ends early is a truncated file, a gzip decoder
/// complaint is corrupt data, anything else an I/O error.
fn read_error(e: io::Error, path: &Path, encoding: Encoding, at: Progress) -> DataError {
    let gzip = matches!(encoding, Encoding::Gzip);
    match e.kind() {
        io::ErrorKind::UnexpectedEof => DataError::Truncated {
            path: path.to_owned(),
            expected_bytes: at.expected_bytes,
            found_bytes: at.found_bytes,
        },
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData if gzip => DataError::CorruptGzip {
            path: path.to_owned(),
            source: e,
        },
        _ => DataError::Io {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// The error for `e`, met after all the promised data arrived: from a gzip
/// decoder even an early end is damage (its trailer is missing), as the
/// data itself is complete.
fn error_after_data(e: io::Error, path: &Path, encoding: Encoding) -> DataError {
    use io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    match (encoding, e.kind()) {
        (Encoding::Gzip, UnexpectedEof | InvalidInput | InvalidData) => DataError::CorruptGzip {
            path: path.to_owned(),
            source: e,
        },
        _ => DataError::Io {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// `err`, a complaint about the content of `r`, unless `r` is a gzip stream
/// that turns out to be damaged (see [`check_rest`]): then that is the error.
fn content_error(err: DataError, r: &mut impl Read, encoding: Encoding, path: &Path) -> DataError {
    match encoding {
        Encoding::Gzip => match check_rest(r) {
            Ok(()) => err,
            Err(e) => error_after_data(e, path, encoding),
        },
        Encoding::Raw(_) => err,
    }
}

/// Reads an IDX stream of `u8` items with `ndims` dimensions, checking it
/// against `magic`. `payload_len` turns the dimensions into a byte count
/// (or an error for unusable ones). Holds at most the promised bytes, and
/// no more than have arrived (see the module docs).
fn read_idx(
    stream: Stream<'_>,
    path: &Path,
    magic: u32,
    ndims: usize,
    payload_len: impl Fn(&[u32]) -> Result<u64, DataError>,
) -> Result<Idx, DataError> {
    let Stream {
        reader: mut r,
        encoding,
        reopen,
    } = stream;
    let header_len = 4 * (1 + ndims);
    let mut header = [0u8; 16];
    let header = &mut header[..header_len];
    let (got, read) = read_up_to(&mut r, header);
    let at = Progress {
        expected_bytes: header_len as u64,
        found_bytes: got as u64,
    };
    read.map_err(|e| read_error(e, path, encoding, at))?;
    if got >= 4 {
        let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if found != magic {
            let err = DataError::BadMagic {
                path: path.to_owned(),
                found,
                expected: magic,
            };
            return Err(content_error(err, &mut r, encoding, path));
        }
    }
    if got < header_len {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected_bytes: at.expected_bytes,
            found_bytes: at.found_bytes,
        });
    }
    let dims: Vec<u32> = header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let len = payload_len(&dims).map_err(|err| content_error(err, &mut r, encoding, path))?;
    // Cannot overflow: `len` is at most 2^64 / 4 (checked by the caller's
    // `payload_len` for images, a `u32` for labels).
    let expected_bytes = header_len as u64 + len;

    let mut payload = Vec::new();
    if let Encoding::Raw(Some(total)) = encoding {
        // The size is known: judge the header by it before allocating.
        if total < expected_bytes {
            return Err(DataError::Truncated {
                path: path.to_owned(),
                expected_bytes,
                found_bytes: total,
            });
        }
        if total > expected_bytes {
            return Err(DataError::TrailingData {
                path: path.to_owned(),
                expected_bytes,
            });
        }
        // `len` bytes are there, so they fit in memory as they fit on disk.
        payload.reserve_exact(len as usize);
    }
    if let (Encoding::Gzip, Some(reopen)) = (encoding, reopen) {
        if len > TRUSTED_PROMISE {
            // Inflate into a counter first: a stream that holds less, more,
            // or is corrupt fails here without having allocated.
            let (found, read) = count_up_to(&mut r, len + 1);
            let at = Progress {
                expected_bytes,
                found_bytes: header_len as u64 + found,
            };
            read.map_err(|e| read_error(e, path, encoding, at))?;
            if found < len {
                return Err(DataError::Truncated {
                    path: path.to_owned(),
                    expected_bytes,
                    found_bytes: at.found_bytes,
                });
            }
            if found > len {
                let err = DataError::TrailingData {
                    path: path.to_owned(),
                    expected_bytes,
                };
                return Err(content_error(err, &mut r, encoding, path));
            }
            // Exactly `len`, and the stream ended cleanly (checksums and
            // all): read it again, for real, into a buffer of that size.
            // What follows checks everything again, should it change.
            r = reopen().map_err(|e| read_error(e, path, encoding, at))?;
            let mut again = [0u8; 16];
            let (got, read) = read_up_to(&mut r, &mut again[..header_len]);
            read.map_err(|e| read_error(e, path, encoding, at))?;
            if again[..got] != *header {
                return Err(DataError::Io {
                    path: path.to_owned(),
                    source: io::Error::other("the file changed while it was read"),
                });
            }
            payload.reserve_exact(len as usize);
        }
    }
    // Read in chunks that double, never past `len`: a stream of unknown
    // size (gzip, a pipe) holds at most twice what arrived, and never more
    // than was promised.
    while (payload.len() as u64) < len {
        let have = payload.len();
        let want = (len - have as u64).min((have as u64).max(FIRST_CHUNK)) as usize;
        payload.reserve_exact(want);
        payload.resize(have + want, 0);
        let (got, read) = read_up_to(&mut r, &mut payload[have..]);
        payload.truncate(have + got);
        let at = Progress {
            expected_bytes,
            found_bytes: (header_len + payload.len()) as u64,
        };
        read.map_err(|e| read_error(e, path, encoding, at))?;
        if got < want {
            return Err(DataError::Truncated {
                path: path.to_owned(),
                expected_bytes: at.expected_bytes,
                found_bytes: at.found_bytes,
            });
        }
    }

    // One byte more: for gzip this also drives the decoder through the
    // trailer, checking the CRC and length of the data just read.
    let (extra, read) = read_up_to(&mut r, &mut [0u8; 1]);
    read.map_err(|e| error_after_data(e, path, encoding))?;
    if extra > 0 {
        // Damage in deflate data often shows as extra output: only the
        // checksum at the end tells it from a stream that holds too much.
        let err = DataError::TrailingData {
            path: path.to_owned(),
            expected_bytes,
        };
        return Err(content_error(err, &mut r, encoding, path));
    }
    Ok(Idx { dims, payload })
}

/// Reads and drops up to `limit` bytes of `r` in a fixed buffer; returns
/// how many there were, and the first error.
fn count_up_to(r: &mut impl Read, limit: u64) -> (u64, io::Result<()>) {
    let mut buf = [0u8; 8192];
    let mut seen = 0u64;
    while seen < limit {
        let want = (limit - seen).min(buf.len() as u64) as usize;
        let (got, read) = read_up_to(r, &mut buf[..want]);
        seen += got as u64;
        if read.is_err() || got < want {
            return (seen, read);
        }
    }
    (seen, Ok(()))
}

/// Reads and drops the rest of `r`, up to [`CHECK_PAST_END`] bytes, in a
/// fixed buffer; returns the first error. For a gzip stream that is the
/// check of its deflate data and checksums, in constant memory.
fn check_rest(r: &mut impl Read) -> io::Result<()> {
    count_up_to(r, CHECK_PAST_END).1
}

fn images_payload_len(path: &Path) -> impl Fn(&[u32]) -> Result<u64, DataError> + '_ {
    move |dims| {
        let (count, rows, cols) = (dims[0], dims[1], dims[2]);
        let bad = || DataError::BadDimensions {
            path: path.to_owned(),
            count,
            rows,
            cols,
        };
        if rows == 0 || cols == 0 {
            return Err(bad());
        }
        let len = u64::from(count)
            .checked_mul(u64::from(rows))
            .and_then(|n| n.checked_mul(u64::from(cols)))
            .ok_or_else(bad)?;
        // A Vec<f32> of that many pixels must be addressable too.
        usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(bad)?;
        Ok(len)
    }
}

fn labels_payload_len(dims: &[u32]) -> Result<u64, DataError> {
    Ok(u64::from(dims[0]))
}

fn parse_images(stream: Stream<'_>, path: &Path) -> Result<(Vec<u8>, usize, usize), DataError> {
    let idx = read_idx(stream, path, IMAGES_MAGIC, 3, images_payload_len(path))?;
    Ok((idx.payload, idx.dims[1] as usize, idx.dims[2] as usize))
}

fn parse_labels(stream: Stream<'_>, path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(read_idx(stream, path, LABELS_MAGIC, 1, labels_payload_len)?.payload)
}

/// Opens `path`, decompressing it on the fly if it starts with the gzip
/// magic bytes.
fn open(path: &Path) -> Result<Stream<'static>, DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    // Only a regular file's size is its length, and only it can be read
    // twice (not a pipe).
    let meta = file.metadata().map_err(io_error)?;
    let mut file = BufReader::new(file);
    let head = file.fill_buf().map_err(io_error)?;
    Ok(if head.starts_with(&GZIP_MAGIC) {
        let owned = path.to_owned();
        let reopen: Option<Reopen<'static>> = meta.is_file().then(|| -> Reopen<'static> {
            Box::new(move || {
                let file = BufReader::new(File::open(&owned)?);
                Ok(Box::new(MultiGzDecoder::new(file)) as Box<dyn Read>)
            })
        });
        Stream {
            reader: Box::new(MultiGzDecoder::new(file)),
            encoding: Encoding::Gzip,
            reopen,
        }
    } else {
        Stream {
            reader: Box::new(file),
            encoding: Encoding::Raw(meta.is_file().then_some(meta.len())),
            reopen: None,
        }
    })
}

/// In-memory bytes, decompressed on the fly if they start with the gzip
/// magic bytes.
fn bytes_reader(bytes: &[u8]) -> Stream<'_> {
    if bytes.starts_with(&GZIP_MAGIC) {
        Stream {
            reader: Box::new(MultiGzDecoder::new(bytes)),
            encoding: Encoding::Gzip,
            reopen: Some(Box::new(move || {
                Ok(Box::new(MultiGzDecoder::new(bytes)) as Box<dyn Read>)
            })),
        }
    } else {
        Stream {
            reader: Box::new(bytes),
            encoding: Encoding::Raw(Some(bytes.len() as u64)),
            reopen: None,
        }
    }
}

/// Reads an IDX images file (raw or gzip): the pixels of every image, row
/// by row, and the rows and columns of one image.
pub fn read_idx_images(path: &Path) -> Result<(Vec<u8>, usize, usize), DataError> {
    parse_images(open(path)?, path)
}

/// Reads an IDX labels file (raw or gzip). Labels are not range-checked
/// here ([`load_split`] and [`from_idx_bytes`] check them).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    parse_labels(open(path)?, path)
}

/// [`read_idx_images`] over bytes in memory (raw or gzip), e.g. from
/// `include_bytes!`. `name_for_errors` stands for the path in errors.
pub fn parse_idx_images(bytes: &[u8], name_for_errors: &str) -> Result<(Vec<u8>, usize, usize), DataError> {
    parse_images(bytes_reader(bytes), Path::new(name_for_errors))
}

/// [`read_idx_labels`] over bytes in memory (raw or gzip).
/// `name_for_errors` stands for the path in errors.
pub fn parse_idx_labels(bytes: &[u8], name_for_errors: &str) -> Result<Vec<u8>, DataError> {
    parse_labels(bytes_reader(bytes), Path::new(name_for_errors))
}

/// Which half of MNIST (or an MNIST-shaped data set) to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`.
    Train,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
    Test,
}

impl Split {
    /// The images file name, without `.gz`.
    pub fn images_file(self) -> &'static str {
        match self {
            Split::Train => "train-images-idx3-ubyte",
            Split::Test => "t10k-images-idx3-ubyte",
        }
    }

    /// The labels file name, without `.gz`.
    pub fn labels_file(self) -> &'static str {
        match self {
            Split::Train => "train-labels-idx1-ubyte",
            Split::Test => "t10k-labels-idx1-ubyte",
        }
    }
}

/// Labelled images in memory, ready for a net: `images` holds `len()`
/// images of `rows * cols` values in `[0, 1]`, one after another.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len() * rows * cols` pixels, `pixel / 255` (torchvision `ToTensor`).
    pub images: Vec<f32>,
    /// One class in `0..NUM_CLASSES` per image.
    pub labels: Vec<u8>,
    /// Rows of one image.
    pub rows: usize,
    /// Columns of one image.
    pub cols: usize,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image: `rows * cols` (one channel).
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of example `i`.
    ///
    /// # Panics
    ///
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The label of example `i`.
    ///
    /// # Panics
    ///
    /// If `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// A copy of the examples in `range`.
    ///
    /// # Panics
    ///
    /// If the range reaches past `len()` (like slicing).
    pub fn subset(&self, range: Range<usize>) -> Dataset {
        let n = self.image_len();
        Dataset {
            images: self.images[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// A copy of the first `n` examples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        self.subset(0..n.min(self.len()))
    }

    /// Copies the examples at `indices` (in that order) into a batch:
    /// `images_out` receives `indices.len() * image_len()` values,
    /// `labels_out` one label per index. Allocates nothing.
    ///
    /// # Panics
    ///
    /// If an output has the wrong length or an index is out of range.
    pub fn gather(&self, indices: &[usize], images_out: &mut [f32], labels_out: &mut [u8]) {
        let n = self.image_len();
        assert_eq!(
            images_out.len(),
            indices.len() * n,
            "images_out must hold {} images of {n} values",
            indices.len()
        );
        assert_eq!(
            labels_out.len(),
            indices.len(),
            "labels_out must hold one label per index"
        );
        for (k, &i) in indices.iter().enumerate() {
            images_out[k * n..(k + 1) * n].copy_from_slice(self.image(i));
            labels_out[k] = self.labels[i];
        }
    }

    /// Pairs decoded images and labels, checking counts and label range.
    fn from_parts(
        (pixels, rows, cols): (Vec<u8>, usize, usize),
        labels: Vec<u8>,
        images_path: &Path,
        labels_path: &Path,
    ) -> Result<Dataset, DataError> {
        let images = pixels.len() / (rows * cols);
        if images != labels.len() {
            return Err(DataError::CountMismatch {
                images_path: images_path.to_owned(),
                images,
                labels_path: labels_path.to_owned(),
                labels: labels.len(),
            });
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= NUM_CLASSES)
        {
            return Err(DataError::BadLabel {
                path: labels_path.to_owned(),
                index,
                label,
            });
        }
        Ok(Dataset {
            images: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
            labels,
            rows,
            cols,
        })
    }
}

/// `dir/name` if it exists, else `dir/name.gz` if that does.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let raw = dir.join(name);
    if raw.exists() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        return Ok(gz);
    }
    Err(DataError::NotFound {
        dir: dir.to_owned(),
        name: name.to_owned(),
    })
}

/// Loads one split of an MNIST-layout directory: the images and labels
/// files of [`Split`], each raw or gzip (the raw file wins if both exist).
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let images_path = find(dir, split.images_file())?;
    let labels_path = find(dir, split.labels_file())?;
    let images = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    Dataset::from_parts(images, labels, &images_path, &labels_path)
}

/// A [`Dataset`] from IDX images and labels in memory (each raw or gzip),
/// e.g. a sample compiled into the binary. Errors name the parts
/// `"<name> (images)"` and `"<name> (labels)"`.
pub fn from_idx_bytes(images: &[u8], labels: &[u8], name: &str) -> Result<Dataset, DataError> {
    let images_path = PathBuf::from(format!("{name} (images)"));
    let labels_path = PathBuf::from(format!("{name} (labels)"));
    let images = parse_images(bytes_reader(images), &images_path)?;
    let labels = parse_labels(bytes_reader(labels), &labels_path)?;
    Dataset::from_parts(images, labels, &images_path, &labels_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::fs;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "cnn-runtime-data-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, bytes).expect("write test file");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).expect("compress");
        e.finish().expect("compress")
    }

    fn images_idx(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for word in [IMAGES_MAGIC, count, rows, cols] {
            v.extend(word.to_be_bytes());
        }
        v.extend(pixels);
        v
    }

    fn labels_idx(count: u32, labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for word in [LABELS_MAGIC, count] {
            v.extend(word.to_be_bytes());
        }
        v.extend(labels);
        v
    }

    /// Three 2x3 images whose pixels count up, labels 3, 0, 9.
    fn sample() -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..18).map(|i| i * 15).collect();
        (images_idx(3, 2, 3, &pixels), labels_idx(3, &[3, 0, 9]))
    }

    /// The MNIST files of the shared data directory, if present.
    fn mnist_dir() -> Option<PathBuf> {
        let candidates = [
            std::env::var_os("MNIST_DIR").map(PathBuf::from),
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mnist")),
            Some(PathBuf::from("/work/shared/data/mnist")),
        ];
        let found = candidates.into_iter().flatten().find(|d| {
            d.join("t10k-labels-idx1-ubyte.gz").exists() || d.join("t10k-labels-idx1-ubyte").exists()
        });
        if found.is_none() {
            eprintln!("note: MNIST not found (set MNIST_DIR); skipping the real-data test");
        }
        found
    }

    #[test]
    fn real_mnist_loads() {
        let Some(dir) = mnist_dir() else { return };
        let train = load_split(&dir, Split::Train).expect("train split");
        let test = load_split(&dir, Split::Test).expect("test split");
        for (set, first) in [
            (&train, [9, 7, 4, 8, 0, 9, 9, 5, 3, 9]),
            (&test, [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]),
        ] {
            assert_eq!(set.len(), 10_000);
            assert_eq!((set.rows, set.cols, set.image_len()), (28, 28, 784));
            assert_eq!(set.images.len(), 10_000 * 784);
            assert_eq!(set.labels[..10], first);
            let (min, max) = set
                .images
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            assert_eq!((min, max), (0.0, 1.0));
            let mean = set.images.iter().map(|&x| f64::from(x)).sum::<f64>() / set.images.len() as f64;
            assert!((0.12..0.14).contains(&mean), "mean pixel {mean}");
            let mut per_class = [0usize; NUM_CLASSES];
            for &l in &set.labels {
                per_class[usize::from(l)] += 1;
            }
            assert!(per_class.iter().all(|&c| c > 800), "{per_class:?}");
        }
        // The test split's first image is a 7: its pixels are ToTensor's.
        let raw = read_idx_images(&dir.join("t10k-images-idx3-ubyte.gz")).expect("images");
        assert_eq!(raw.0.len(), 10_000 * 784);
        for (&p, &x) in raw.0.iter().zip(test.image(0)) {
            assert_eq!(x, f32::from(p) / 255.0);
        }
    }

    #[test]
    fn raw_and_gzip_files_and_bytes_give_the_same_dataset() {
        let (images, labels) = sample();
        let dir = TempDir::new("formats");
        // Raw images, gzip labels: each file is detected on its own.
        dir.write("train-images-idx3-ubyte", &images);
        dir.write("train-labels-idx1-ubyte.gz", &gz(&labels));
        let from_files = load_split(&dir.0, Split::Train).expect("load");
        assert_eq!(from_files.len(), 3);
        assert_eq!((from_files.rows, from_files.cols), (2, 3));
        assert_eq!(from_files.labels, [3, 0, 9]);
        assert_eq!(from_files.image(1)[0], 90.0 / 255.0);
        assert_eq!(from_files.image(2)[5], 1.0);
        assert_eq!(from_files.image(0)[0], 0.0);

        for (i, l) in [
            (&images, &labels),
            (&gz(&images), &gz(&labels)),
            (&images, &gz(&labels)),
        ] {
            assert_eq!(from_idx_bytes(i, l, "sample").expect("bytes"), from_files);
        }
        // Gzip is recognised by content, not by name.
        let misnamed = dir.write("images.idx", &gz(&images));
        assert_eq!(read_idx_images(&misnamed).expect("gz content").0.len(), 18);
        let misnamed = dir.write("labels.gz", &labels);
        assert_eq!(read_idx_labels(&misnamed).expect("raw content"), [3, 0, 9]);
    }

    #[test]
    fn an_empty_set_is_fine() {
        let set = from_idx_bytes(&images_idx(0, 28, 28, &[]), &labels_idx(0, &[]), "empty").expect("empty");
        assert!(set.is_empty());
        assert_eq!(set.image_len(), 784);
    }

    #[test]
    fn dataset_helpers() {
        let (images, labels) = sample();
        let set = from_idx_bytes(&images, &labels, "sample").expect("load");
        let tail = set.subset(1..3);
        assert_eq!(tail.labels, [0, 9]);
        assert_eq!(tail.image(0), set.image(1));
        assert_eq!(set.take(2).labels, [3, 0]);
        assert_eq!(set.take(100), set);
        assert_eq!(set.label(2), 9);

        let mut batch = [0f32; 12];
        let mut batch_labels = [0u8; 2];
        set.gather(&[2, 0], &mut batch, &mut batch_labels);
        assert_eq!(batch_labels, [9, 3]);
        assert_eq!(&batch[..6], set.image(2));
        assert_eq!(&batch[6..], set.image(0));
    }

    #[test]
    #[should_panic(expected = "images_out must hold 2 images")]
    fn gather_checks_the_buffer() {
        let (images, labels) = sample();
        let set = from_idx_bytes(&images, &labels, "sample").expect("load");
        set.gather(&[0, 1], &mut [0.0; 6], &mut [0; 2]);
    }

    /// Runs `parse` over the raw and gzip forms of `bytes`, expecting an
    /// error from both, and returns the raw one.
    fn both_fail<T: fmt::Debug>(
        bytes: &[u8],
        parse: impl Fn(&[u8], &str) -> Result<T, DataError>,
    ) -> DataError {
        let gz_err = parse(&gz(bytes), "bad.gz").expect_err("gz must fail");
        let raw_err = parse(bytes, "bad").expect_err("raw must fail");
        assert_eq!(
            std::mem::discriminant(&gz_err),
            std::mem::discriminant(&raw_err),
            "{gz_err} vs {raw_err}"
        );
        assert!(gz_err.to_string().starts_with("bad.gz"), "{gz_err}");
        raw_err
    }

    #[test]
    fn bad_magic() {
        let (images, labels) = sample();
        let err = both_fail(&labels, parse_idx_images);
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: LABELS_MAGIC,
                    expected: IMAGES_MAGIC,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "bad: not an IDX images file: magic number 0x00000801, expected 0x00000803"
        );
        let err = both_fail(&images, parse_idx_labels);
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    expected: LABELS_MAGIC,
                    ..
                }
            ),
            "{err:?}"
        );
        // Even a file too short for a whole header is judged by its magic.
        let err = both_fail(b"PK\x03\x04\x00", parse_idx_images);
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: 0x504b_0304,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_header_and_data() {
        let (images, labels) = sample();
        let err = both_fail(&images[..10], parse_idx_images);
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 16,
                    found_bytes: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = both_fail(&images[..images.len() - 1], parse_idx_images);
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 34,
                    found_bytes: 33,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "bad: truncated: expected 34 bytes, found 33");
        let err = both_fail(&labels[..9], parse_idx_labels);
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 11,
                    found_bytes: 9,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = both_fail(b"", parse_idx_labels);
        assert!(
            matches!(err, DataError::Truncated { found_bytes: 0, .. }),
            "{err:?}"
        );

        // A gzip stream cut short is a truncated file, not an I/O error.
        let big = images_idx(100, 28, 28, &[7; 78_400]);
        let compressed = gz(&big);
        let err = parse_idx_images(&compressed[..compressed.len() / 2], "cut.gz").expect_err("cut");
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 78_416,
                    ..
                }
            ),
            "{err:?}"
        );

        let err = both_fail(&[images.as_slice(), &[0]].concat(), parse_idx_images);
        assert!(
            matches!(
                err,
                DataError::TrailingData {
                    expected_bytes: 34,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_header_promising_billions_fails_fast_without_allocating() {
        // 2^31 images of 28x28 would be 1.7 TB: reserving it up front would
        // abort the test process (allocation failure), and reading toward it
        // would take minutes.
        let liar = images_idx(1 << 31, 28, 28, &[1, 2, 3]);
        let start = Instant::now();
        let err = both_fail(&liar, parse_idx_images);
        assert!(
            matches!(err, DataError::Truncated { expected_bytes, found_bytes: 19, .. }
                if expected_bytes == 16 + (1u64 << 31) * 784),
            "{err:?}"
        );
        let err = both_fail(&labels_idx(u32::MAX, &[1]), parse_idx_labels);
        assert!(
            matches!(err, DataError::Truncated { found_bytes: 9, .. }),
            "{err:?}"
        );

        let dir = TempDir::new("liar");
        let path = dir.write("liar.gz", &gz(&liar));
        let err = read_idx_images(&path).expect_err("liar");
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());

        // Dimensions whose product overflows are refused before any read.
        let err = both_fail(&images_idx(u32::MAX, u32::MAX, u32::MAX, &[]), parse_idx_images);
        assert!(matches!(err, DataError::BadDimensions { .. }), "{err:?}");
        let err = both_fail(&images_idx(5, 0, 28, &[]), parse_idx_images);
        assert!(matches!(err, DataError::BadDimensions { rows: 0, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "bad: unusable dimensions: 5 images of 0x28 pixels"
        );
    }

    #[test]
    fn count_mismatch_and_bad_labels() {
        let (images, _) = sample();
        let err = from_idx_bytes(&images, &labels_idx(2, &[1, 2]), "s").expect_err("mismatch");
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 3,
                    labels: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "s (images) holds 3 images but s (labels) holds 2 labels"
        );

        let err = from_idx_bytes(&images, &labels_idx(3, &[1, 10, 2]), "s").expect_err("label 10");
        assert!(
            matches!(
                err,
                DataError::BadLabel {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "s (labels): label 1 is 10, expected a class in 0..10"
        );

        let dir = TempDir::new("labels");
        dir.write("t10k-images-idx3-ubyte.gz", &gz(&images));
        let labels_path = dir.write("t10k-labels-idx1-ubyte", &labels_idx(3, &[0, 1, 255]));
        let err = load_split(&dir.0, Split::Test).expect_err("label 255");
        assert!(
            matches!(&err, DataError::BadLabel { path, index: 2, label: 255 } if path == &labels_path),
            "{err:?}"
        );
    }

    #[test]
    fn missing_and_unreadable_files_name_the_path() {
        let dir = TempDir::new("missing");
        let err = load_split(&dir.0, Split::Train).expect_err("nothing there");
        assert!(
            matches!(&err, DataError::NotFound { dir: d, name } if d == &dir.0 && name == "train-images-idx3-ubyte"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz found in {}",
                dir.0.display()
            )
        );
        let (images, _) = sample();
        dir.write("train-images-idx3-ubyte.gz", &gz(&images));
        let err = load_split(&dir.0, Split::Train).expect_err("no labels");
        assert!(
            matches!(&err, DataError::NotFound { name, .. } if name == "train-labels-idx1-ubyte"),
            "{err:?}"
        );

        let path = dir.0.join("absent");
        let err = read_idx_labels(&path).expect_err("absent");
        assert!(
            matches!(&err, DataError::Io { path: p, .. } if p == &path),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
        assert!(std::error::Error::source(&err).is_some());

        // A file that claims to be gzip but is not decompresses to an error.
        let fake = dir.write("fake.gz", &[0x1f, 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let err = read_idx_labels(&fake).expect_err("fake gzip");
        assert!(
            matches!(&err, DataError::CorruptGzip { path, .. } if path == &fake),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: corrupt gzip data: invalid gzip header", fake.display())
        );
    }

    /// A few MNIST-like images: mostly background, a stroke of varied ink.
    fn sketch_idx(count: u32) -> Vec<u8> {
        let mut state = 12_345u32;
        let pixels: Vec<u8> = (0..count * 784)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let (r, c) = (i % 784 / 28, i % 28);
                if (8..20).contains(&r) && (c + r) % 9 < 3 {
                    (state >> 24) as u8
                } else {
                    0
                }
            })
            .collect();
        images_idx(count, 28, 28, &pixels)
    }

    /// `cat a.gz b.gz` is a valid gzip file whose content is both parts one
    /// after the other (RFC 1952 section 2.2; gunzip reads it so).
    #[test]
    fn a_multi_member_gzip_reads_as_one_stream() {
        let (images, labels) = sample();
        for cut in [0, 1, 4, 16, 20, images.len()] {
            let two = [gz(&images[..cut]), gz(&images[cut..])].concat();
            let (pixels, rows, cols) = parse_idx_images(&two, "two.gz").expect("two members");
            assert_eq!(
                (pixels.as_slice(), rows, cols),
                (&images[16..], 2, 3),
                "cut at {cut}"
            );
        }
        let three = [gz(&labels[..3]), gz(&labels[3..9]), gz(&labels[9..])].concat();
        assert_eq!(
            parse_idx_labels(&three, "three.gz").expect("three members"),
            [3, 0, 9]
        );

        let dir = TempDir::new("members");
        dir.write(
            "t10k-images-idx3-ubyte.gz",
            &[gz(&images[..7]), gz(&images[7..])].concat(),
        );
        dir.write("t10k-labels-idx1-ubyte.gz", &three);
        let set = load_split(&dir.0, Split::Test).expect("multi-member files");
        assert_eq!(set, from_idx_bytes(&images, &labels, "sample").expect("bytes"));

        // A member boundary does not hide data beyond the header's promise.
        let err = parse_idx_labels(&[gz(&labels), gz(&[5])].concat(), "extra.gz").expect_err("extra");
        assert_eq!(
            err.to_string(),
            "extra.gz: more data than the header promises (11 bytes)"
        );
    }

    /// Damage inside a gzip stream is reported as such, never as a file
    /// holding more (or less) than its header promises.
    #[test]
    fn a_corrupt_gzip_is_reported_as_corrupt() {
        let idx = sketch_idx(3);
        let good = gz(&idx);
        assert_eq!(parse_idx_images(&good, "good.gz").expect("good").0, idx[16..]);
        let n = good.len();

        // Every byte of the deflate data flipped in turn.
        let mut corrupt = 0;
        for at in 10..n - 8 {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            // Ok when only unused padding bits changed.
            if let Err(err) = parse_idx_images(&bad, "flipped.gz") {
                let message = err.to_string();
                assert!(
                    !message.contains("more data than the header promises"),
                    "byte {at}: {message}"
                );
                assert!(message.starts_with("flipped.gz: "), "byte {at}: {message}");
                if message.starts_with("flipped.gz: corrupt gzip data: ") {
                    corrupt += 1;
                }
            }
        }
        assert!(corrupt > (n - 18) / 2, "{corrupt} of {} flips", n - 18);

        // The trailer: CRC-32 of the data, then its length mod 2^32.
        for at in [n - 8, n - 5, n - 4, n - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            let err = parse_idx_images(&bad, "trailer.gz").expect_err("bad trailer");
            assert!(
                err.to_string().starts_with("trailer.gz: corrupt gzip data: "),
                "byte {at}: {err}"
            );
        }

        // A stream cut inside its trailer has all its data but is damaged.
        let err = parse_idx_images(&good[..n - 3], "cut.gz").expect_err("no trailer");
        assert!(
            err.to_string().starts_with("cut.gz: corrupt gzip data: "),
            "{err}"
        );

        // Garbage after the last member is not another member.
        let err =
            parse_idx_images(&[good.as_slice(), b"junk, not gzip"].concat(), "junk.gz").expect_err("junk");
        assert!(
            err.to_string().starts_with("junk.gz: corrupt gzip data: "),
            "{err}"
        );

        // And through a file, naming it.
        let dir = TempDir::new("corrupt");
        let mut bad = good.clone();
        bad[n - 6] ^= 1;
        let path = dir.write("t10k-images-idx3-ubyte.gz", &bad);
        let err = read_idx_images(&path).expect_err("bad crc");
        assert!(
            err.to_string()
                .starts_with(&format!("{}: corrupt gzip data: ", path.display())),
            "{err}"
        );
    }
}
