//! The `cnn` command-line tool: trains, evaluates and runs the nets of the
//! `models` crate on Fashion-MNIST (Dive into Deep Learning, section 7.6).
//!
//! This file only parses the arguments, hands them to [`cli::run`] and maps
//! the outcome to an exit code: 0 on success, 1 for any error (printed as
//! one `error: ...` line on stderr), 2 for usage errors reported by clap.
#![warn(missing_docs)]

mod cli;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`cnn infer ... | head`) is not a failure.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}
