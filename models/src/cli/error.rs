//! [`CliError`]: everything that can go wrong in a `cnn` command, each
//! case displayed as one line that names the file or value at fault.

use std::fmt;
use std::io;
use std::path::PathBuf;

use cnn_runtime::data::DataError;
use cnn_runtime::weights::WeightsError;

/// Why a command failed. `main` prints it as `error: <Display>` and exits 1
/// ([`CliError::Interrupted`] is printed as it is, with its own status).
#[derive(Debug)]
pub enum CliError {
    /// A command-line value outside its allowed range.
    InvalidArg(String),
    /// A data set (or IDX file) could not be read; the error names the file.
    Data(DataError),
    /// A weights file could not be read or written.
    Weights {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: WeightsError,
    },
    /// A file or directory operation failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, e.g. `"cannot create directory"`.
        action: &'static str,
        /// What the operating system said.
        source: io::Error,
    },
    /// Writing to standard output failed.
    Stdout(io::Error),
    /// Input that does not fit the net (image size, number of classes).
    Mismatch(String),
    /// A plot could not be drawn or written.
    Plot {
        /// The file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
    /// The training loss stopped being finite.
    Diverged {
        /// Epoch of the bad step (from 1).
        epoch: usize,
        /// Step within the epoch (from 1).
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// The loss that was not finite.
        loss: f32,
        /// The learning rate in use.
        lr: f32,
        /// Where the last good weights were saved.
        saved: PathBuf,
    },
    /// Training stopped on a signal (or a `--stop-after-*` testing option)
    /// after saving its checkpoint.
    Interrupted {
        /// The whole line: what stopped where, and how to go on.
        message: String,
        /// The exit status: 128 + the signal's number.
        code: u8,
    },
    /// Another `cnn train` holds the run directory.
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// Who holds it, e.g. `"process 1234"`.
        holder: String,
    },
    /// The run directory cannot be written.
    NotWritable {
        /// The run directory.
        dir: PathBuf,
        /// The file that could not be written.
        file: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The new outputs could not replace the previous ones; the previous set
    /// is untouched and the new one waits in `staging`.
    Publish {
        /// The run directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
        /// Where the new outputs are.
        staging: PathBuf,
    },
    /// A checkpoint that cannot be used.
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl CliError {
    /// The process's exit status for this error: 1, or 128 + the signal's
    /// number for an interrupted training.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Interrupted { code, .. } => *code,
            _ => 1,
        }
    }

    /// Whether this is a write to a closed pipe (the reader went away).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// A weights error about `path`.
    pub fn weights(path: impl Into<PathBuf>) -> impl FnOnce(WeightsError) -> CliError {
        let path = path.into();
        move |source| CliError::Weights { path, source }
    }

    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, action, source }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::InvalidArg(message) | CliError::Mismatch(message) => f.write_str(message),
            CliError::Data(e) => write!(f, "{e}"),
            // The runtime's I/O errors already start with the path.
            CliError::Weights {
                source: source @ WeightsError::Io { .. },
                ..
            } => write!(f, "{source}"),
            CliError::Weights { path, source } => write!(f, "{}: {source}", path.display()),
            CliError::Io { path, action, source } => write!(f, "{action} {}: {source}", path.display()),
            CliError::Stdout(e) => write!(f, "cannot write to standard output: {e}"),
            CliError::Plot { path, message } => {
                write!(f, "cannot draw {}: {message}", path.display())
            }
            CliError::Interrupted { message, .. } => f.write_str(message),
            CliError::Locked { dir, lock, holder } => write!(
                f,
                "{} is in use by another training ({holder} holds {}); wait for it to end or pick \
                 another --out (if no training runs there, delete the lock file)",
                dir.display(),
                lock.display()
            ),
            CliError::NotWritable { dir, file, source } => write!(
                f,
                "--out {} is not writable: cannot write {}: {source}",
                dir.display(),
                file.display()
            ),
            CliError::Publish { dir, reason, staging } => write!(
                f,
                "cannot publish the new outputs into {}: {reason}; the previous outputs there are \
                 untouched, and the new ones (weights, metrics, plots) are in {}",
                dir.display(),
                staging.display()
            ),
            CliError::Checkpoint { path, message } => write!(f, "{}: {message}", path.display()),
            CliError::Diverged {
                epoch,
                step,
                steps,
                loss,
                lr,
                saved,
            } => write!(
                f,
                "the loss became {loss} at epoch {epoch}, step {step} of {steps}; training \
                 stopped and the last weights with a finite loss were saved to {}; \
                 try a lower --lr (it was {})",
                saved.display(),
                super::report::number(*lr)
            ),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Data(e) => Some(e),
            CliError::Weights { source, .. } => Some(source),
            CliError::Io { source, .. } | CliError::Stdout(source) | CliError::NotWritable { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

impl From<DataError> for CliError {
    fn from(e: DataError) -> Self {
        CliError::Data(e)
    }
}
