//! The sandbox's integration tests, one binary: verbs, watches, bad requests, injected faults,
//! `kubectl` against it, `logbook sandbox` as a process, and its hardening (bounded history,
//! timeouts, foreign hosts and origins refused).

mod bad_requests;
mod cli;
mod faults;
mod hardening;
mod kubectl;
mod verbs;
mod watch;
