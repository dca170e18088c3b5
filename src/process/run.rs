//! A process's async runtime and exit code: build the runtime, run the work, turn its error
//! into one line on stderr and exit code 1. It must not print anything else nor retry.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Writes `NAME: MESSAGE` as one line on stderr (`NAME` is the command, e.g. `logbook dev`).
pub fn say(name: &str, message: impl Display) {
    eprintln!("{name}: {message}");
}

/// Exit code 0 for `Ok`; for an error, [`say`] it and exit code 1.
pub fn exit<E: Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(name, e);
            ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime with timers, I/O and signals: what long-running commands run on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// A runtime on the calling thread, with timers, I/O and signals: for a command that only
/// waits (polling a file, watching for Ctrl-C) between synchronous steps.
pub fn local_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs `work` to completion on a new multi-threaded runtime (timers, I/O and signals on) and
/// returns [`exit`]'s code for its result; exit code 1 with one line on stderr when the runtime
/// cannot start.
pub fn block_on<E: Display>(name: &str, work: impl Future<Output = Result<(), E>>) -> ExitCode {
    match runtime() {
        Ok(runtime) => exit(name, runtime.block_on(work)),
        Err(e) => {
            say(name, format_args!("cannot start the async runtime: {e}"));
            ExitCode::FAILURE
        }
    }
}
