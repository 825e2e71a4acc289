//! MNIST-style data sets: IDX files (raw or gzip) into a [`Dataset`] of
//! `f32` images and `u8` labels.
//!
//! IDX is big-endian: a magic number (`0x00000803` for images,
//! `0x00000801` for labels), the item count, for images the row and column
//! counts, then one `u8` per pixel (row-major) or per label. Pixels become
//! `pixel / 255` in `[0, 1]`, as torchvision's `ToTensor` makes them.
//!
//! Untrusted headers cannot make this module allocate: the data is read
//! through a limit of the promised size plus one byte and buffers grow only
//! as bytes actually arrive, so a ten-byte file claiming billions of images
//! fails with [`DataError::Truncated`] at once. Gzip is recognised by its
//! magic bytes (`1f 8b`), whatever the file is called.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// Number of classes a label may name (`0..NUM_CLASSES`), as in MNIST and
/// Fashion-MNIST.
pub const NUM_CLASSES: usize = 10;

/// Magic number of an IDX file of `u8` images (`[count, rows, cols]`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of `u8` labels (`[count]`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a data set could not be read. Every variant names the file.
#[derive(Debug)]
pub enum DataError {
    /// Reading `path` failed (including a corrupt gzip stream).
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system or the decompressor said.
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
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads into `buf` until it is full or the input ends; returns the bytes
/// read (unlike `read_exact`, which does not say how many there were).
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An IDX file's header: its dimensions, and its payload.
struct Idx {
    dims: Vec<u32>,
    payload: Vec<u8>,
}

/// Reads an IDX stream of `u8` items with `ndims` dimensions, checking it
/// against `magic`. `payload_len` turns the dimensions into a byte count
/// (or an error for unusable ones).
fn read_idx(
    mut r: impl Read,
    path: &Path,
    magic: u32,
    ndims: usize,
    payload_len: impl Fn(&[u32]) -> Result<u64, DataError>,
) -> Result<Idx, DataError> {
    let header_len = 4 * (1 + ndims);
    let mut header = [0u8; 16];
    let header = &mut header[..header_len];
    let got = read_up_to(&mut r, header).map_err(|e| truncated_or_io(e, path, header_len as u64, 0))?;
    if got >= 4 {
        let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if found != magic {
            return Err(DataError::BadMagic {
                path: path.to_owned(),
                found,
                expected: magic,
            });
        }
    }
    if got < header_len {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected_bytes: header_len as u64,
            found_bytes: got as u64,
        });
    }
    let dims: Vec<u32> = header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let len = payload_len(&dims)?;
    let expected_bytes = header_len as u64 + len;

    // Grow only as data arrives: never reserve what the header claims.
    let mut payload = Vec::new();
    let read = r.by_ref().take(len.saturating_add(1)).read_to_end(&mut payload);
    let found_bytes = header_len as u64 + payload.len() as u64;
    if let Err(e) = read {
        return Err(truncated_or_io(e, path, expected_bytes, found_bytes));
    }
    if (payload.len() as u64) < len {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected_bytes,
            found_bytes,
        });
    }
    if payload.len() as u64 > len {
        return Err(DataError::TrailingData {
            path: path.to_owned(),
            expected_bytes,
        });
    }
    Ok(Idx { dims, payload })
}

/// A gzip stream that ends early is a truncated file; anything else is an
/// I/O error.
fn truncated_or_io(e: io::Error, path: &Path, expected_bytes: u64, found_bytes: u64) -> DataError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        DataError::Truncated {
            path: path.to_owned(),
            expected_bytes,
            found_bytes,
        }
    } else {
        DataError::Io {
            path: path.to_owned(),
            source: e,
        }
    }
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

fn parse_images(r: impl Read, path: &Path) -> Result<(Vec<u8>, usize, usize), DataError> {
    let idx = read_idx(r, path, IMAGES_MAGIC, 3, images_payload_len(path))?;
    Ok((idx.payload, idx.dims[1] as usize, idx.dims[2] as usize))
}

fn parse_labels(r: impl Read, path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(read_idx(r, path, LABELS_MAGIC, 1, labels_payload_len)?.payload)
}

/// Opens `path`, decompressing it on the fly if it starts with the gzip
/// magic bytes.
fn open(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io_error)?);
    let head = file.fill_buf().map_err(io_error)?;
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// In-memory bytes, decompressed on the fly if they start with the gzip
/// magic bytes.
fn bytes_reader(bytes: &[u8]) -> Box<dyn Read + '_> {
    if bytes.starts_with(&GZIP_MAGIC) {
        Box::new(GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
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
            matches!(&err, DataError::Io { path, .. } | DataError::Truncated { path, .. } if path == &fake),
            "{err:?}"
        );
    }
}
