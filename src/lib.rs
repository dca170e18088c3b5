//! logbook: a Kubernetes controller in which nothing is lost.
//!
//! Every watch event, plan, action and outcome is an entry in an append-only, hash-chained log
//! that can be audited and replayed offline. The crate is organised one room per job:
//!
//! - [`record`]: the vocabulary every room speaks: keys, actions, entries; imports nothing.
//! - [`model`]: the `Application` custom resource and the names and labels of its children.
//! - [`reconcile`]: the pure planner, `(world) -> actions`; no I/O, no clock, no randomness.
//! - [`world`]: the world view the planner reads, folded from the log's entries.
//! - [`log`]: the append-only SQLite log (storage, hash chain, verify).
//! - [`bus`]: NATS JetStream: subjects, streams, the wire format, signatures.
//! - [`controller`]: watch → record → fold → plan → publish; outcomes back in.
//! - [`executor`]: carries out signed actions within logbook's remit; decides nothing.
//! - [`replay`]: offline replay of a log: verify, state at a point, timeline, what-if, export.
//! - [`sandbox`]: a Kubernetes API emulator served over real HTTP, for tests and `logbook dev`.
//! - [`ui`]: `logbook ui`, the incident view in a browser: a read-only web application over a log.
//! - [`admin`]: the admin server (`/metrics`, `/healthz`, `/readyz`) and each process's metrics.
//! - [`process`]: process plumbing shared by every subcommand: durations, signals, exit codes.
//! - [`cli`]: the `logbook` command line.

pub mod admin;
pub mod bus;
pub mod cli;
pub mod controller;
pub mod executor;
pub mod log;
pub mod model;
pub mod process;
pub mod reconcile;
pub mod record;
pub mod replay;
pub mod sandbox;
pub mod ui;
pub mod world;

// This crate's own unit tests build Applications with the test kit's builder (`tests/kit`,
// which depends on this crate and so cannot reach them): compiled under `cfg(test)` only.
#[cfg(test)]
extern crate self as logbook;
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/kit/src/app.rs"]
mod app_test;
