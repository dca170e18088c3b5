//! The sandbox's integration tests, one binary: verbs, watches, bad requests, injected faults,
//! `kubectl` against it and `logbook sandbox` as a process.

mod bad_requests;
mod cli;
mod faults;
mod kubectl;
mod verbs;
mod watch;
