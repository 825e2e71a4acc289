//! Where the Fashion-MNIST data comes from, in this order: `--data DIR`,
//! the `CNN_DATA` environment variable, the system copy at
//! [`SYSTEM_DIR`], and finally the sample compiled into the binary.
//!
//! A directory the user named (flag or environment) must load: a bad one is
//! an error naming the file, never a silent fall-back to another source.

use std::path::{Path, PathBuf};

use cnn_runtime::data::{self, Dataset, Split};

use super::error::CliError;
use super::report::thousands;

/// Where Debian's `dataset-fashion-mnist` package installs the data set.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The environment variable naming a data directory.
pub const ENV_VAR: &str = "CNN_DATA";

macro_rules! sample_file {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/fashion-mnist-sample/",
            $name
        ))
    };
}

/// The embedded sample: the first 5,000 training and 1,000 test images of
/// Fashion-MNIST, gzipped IDX (see `models/data/fashion-mnist-sample`).
const SAMPLE_TRAIN_IMAGES: &[u8] = sample_file!("train-images-idx3-ubyte.gz");
const SAMPLE_TRAIN_LABELS: &[u8] = sample_file!("train-labels-idx1-ubyte.gz");
const SAMPLE_TEST_IMAGES: &[u8] = sample_file!("t10k-images-idx3-ubyte.gz");
const SAMPLE_TEST_LABELS: &[u8] = sample_file!("t10k-labels-idx1-ubyte.gz");

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A directory, with what chose it (`"--data"`, `"CNN_DATA"` or `None`
    /// for the system copy).
    Dir {
        /// The directory of IDX files.
        path: PathBuf,
        /// The flag or variable that named it, if any.
        chosen_by: Option<&'static str>,
    },
    /// The sample compiled into the binary.
    Embedded,
}

impl Source {
    /// Picks the source: `flag`, then `CNN_DATA` (if set and not empty),
    /// then [`SYSTEM_DIR`] if it exists, then the embedded sample.
    pub fn choose(flag: Option<&Path>) -> Source {
        if let Some(path) = flag {
            return Source::Dir {
                path: path.to_owned(),
                chosen_by: Some("--data"),
            };
        }
        if let Some(dir) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
            return Source::Dir {
                path: PathBuf::from(dir),
                chosen_by: Some(ENV_VAR),
            };
        }
        if Path::new(SYSTEM_DIR).is_dir() {
            return Source::Dir {
                path: PathBuf::from(SYSTEM_DIR),
                chosen_by: None,
            };
        }
        Source::Embedded
    }

    /// Loads one split.
    fn load(&self, split: Split) -> Result<Dataset, CliError> {
        Ok(match self {
            Source::Dir { path, .. } => data::load_split(path, split)?,
            Source::Embedded => {
                let (images, labels) = match split {
                    Split::Train => (SAMPLE_TRAIN_IMAGES, SAMPLE_TRAIN_LABELS),
                    Split::Test => (SAMPLE_TEST_IMAGES, SAMPLE_TEST_LABELS),
                };
                data::from_idx_bytes(images, labels, "embedded Fashion-MNIST sample")?
            }
        })
    }
}

/// The loaded splits, cut to the requested sizes, and a line saying what
/// they are.
#[derive(Debug)]
pub struct Data {
    /// The training split, if it was asked for.
    pub train: Option<Dataset>,
    /// The test split.
    pub test: Dataset,
    /// `data: ...`: the source and the sizes, for the first line of output.
    pub description: String,
}

/// `"5,000 train"` or `"first 2,000 of 5,000 train"`.
fn size_text(used: usize, total: usize, split: &str) -> String {
    if used < total {
        format!("first {} of {} {split}", thousands(used), thousands(total))
    } else {
        format!("{} {split}", thousands(total))
    }
}

/// Loads the test split, and the training split if `with_train`, from
/// `source`, keeping only the first `limit_*` examples of each.
pub fn load(
    source: &Source,
    with_train: bool,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
) -> Result<Data, CliError> {
    let mut sizes = Vec::new();
    let train = if with_train {
        let full = source.load(Split::Train)?;
        let total = full.len();
        let train = cut(full, limit_train);
        sizes.push(size_text(train.len(), total, "train"));
        Some(train)
    } else {
        None
    };
    let full = source.load(Split::Test)?;
    let total = full.len();
    let test = cut(full, limit_test);
    sizes.push(size_text(test.len(), total, "test"));
    let sizes = sizes.join(", ");
    let description = match source {
        Source::Dir {
            path,
            chosen_by: Some(by),
        } => format!("data: Fashion-MNIST, {} (from {by}; {sizes})", path.display()),
        Source::Dir {
            path,
            chosen_by: None,
        } => format!("data: Fashion-MNIST, {} ({sizes})", path.display()),
        Source::Embedded => format!(
            "data: embedded Fashion-MNIST sample ({sizes}); for the full set (60,000 + \
             10,000): `apt-get install dataset-fashion-mnist`, or CNN_DATA=DIR"
        ),
    };
    if let Some(train) = &train {
        if train.is_empty() {
            return Err(empty_split(source, Split::Train));
        }
    }
    if test.is_empty() {
        return Err(empty_split(source, Split::Test));
    }
    Ok(Data {
        train,
        test,
        description,
    })
}

fn cut(data: Dataset, limit: Option<usize>) -> Dataset {
    match limit {
        Some(n) if n < data.len() => data.take(n),
        _ => data,
    }
}

fn empty_split(source: &Source, split: Split) -> CliError {
    let file = match source {
        Source::Dir { path, .. } => path.join(split.images_file()).display().to_string(),
        Source::Embedded => split.images_file().to_owned(),
    };
    CliError::Mismatch(format!("{file}: the data set holds no images"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_loads_with_its_sizes() {
        let data = load(&Source::Embedded, true, None, Some(100)).expect("embedded sample loads");
        let train = data.train.expect("train split");
        assert_eq!((train.len(), train.rows, train.cols), (5000, 28, 28));
        assert_eq!(data.test.len(), 100);
        assert_eq!(
            data.description,
            "data: embedded Fashion-MNIST sample (5,000 train, first 100 of 1,000 test); \
             for the full set (60,000 + 10,000): `apt-get install dataset-fashion-mnist`, \
             or CNN_DATA=DIR"
        );
    }

    #[test]
    fn a_named_directory_wins_over_everything() {
        let dir = Path::new("/some/where");
        assert_eq!(
            Source::choose(Some(dir)),
            Source::Dir {
                path: dir.to_owned(),
                chosen_by: Some("--data")
            }
        );
    }
}
