//! The `logbook` command line.

use std::process::ExitCode;

/// Entry point of the `logbook` binary.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
