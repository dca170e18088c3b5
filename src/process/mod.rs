//! Process plumbing shared by every subcommand and by `logbook-replay`: how durations are
//! written, the one place that waits for shutdown signals, the async runtime and exit codes,
//! and the `Host` rule of the servers it serves on loopback.
//!
//! It owns how a process starts, stops and reports failure; it must not parse flags of its own,
//! print anything but one line on stderr, or know what any subcommand does.

pub mod duration;
pub mod loopback;
pub mod run;
pub mod shutdown;

pub use duration::parse_duration;
pub use run::{block_on, exit, say};
pub use shutdown::{shutdown_on_signals, signalled};
