//! Ctrl-C (SIGINT) and SIGTERM as a request that the training loop polls
//! between steps: the step under way finishes, the run saves its
//! checkpoint, and `cnn` exits with status 128 + the signal's number (130
//! for SIGINT, 143 for SIGTERM). A second signal while the first is being
//! handled ends the process at once, with the same status; the checkpoint
//! is written atomically, so that loses at most the steps since the last
//! one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A signal that asked the run to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    /// `"SIGINT"`, `"SIGTERM"` or `"signal N"`.
    pub fn name(self) -> String {
        match self.0 {
            2 => "SIGINT".to_owned(),
            15 => "SIGTERM".to_owned(),
            n => format!("signal {n}"),
        }
    }

    /// The exit status of a process stopped by this signal: 128 + its number.
    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(1)
    }
}

/// The stop requests received so far.
#[derive(Debug)]
pub struct Interrupt {
    /// The number of the last signal received, 0 for none.
    pending: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Catches SIGINT and SIGTERM from now on (on Unix; elsewhere they keep
    /// their default action). If a handler cannot be installed, the signal
    /// keeps its default action, with a warning.
    pub fn install() -> Interrupt {
        let pending = Arc::new(AtomicUsize::new(0));
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGINT, SIGTERM};
            use signal_hook::flag;
            use std::sync::atomic::AtomicBool;
            let received = Arc::new(AtomicBool::new(false));
            for signal in [SIGINT, SIGTERM] {
                // The order matters: the shutdown checks the flag set by an
                // earlier signal before this one sets it.
                let installed =
                    flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&received))
                        .and_then(|_| flag::register(signal, Arc::clone(&received)))
                        .and_then(|_| flag::register_usize(signal, Arc::clone(&pending), signal as usize));
                if let Err(e) = installed {
                    warn!(
                        "cannot catch {}: {e}; it will stop training without a checkpoint",
                        Signal(signal).name()
                    );
                }
            }
        }
        Interrupt { pending }
    }

    /// The signal received, if any.
    pub fn pending(&self) -> Option<Signal> {
        match self.pending.load(Ordering::SeqCst) {
            0 => None,
            n => Some(Signal(i32::try_from(n).unwrap_or(i32::MAX))),
        }
    }
}
