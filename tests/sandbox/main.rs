//! The sandbox's integration tests, one binary: verbs, watches, bad requests, injected faults,
//! `kubectl` against it, `logbook sandbox` as a process, its hardening (bounded history,
//! timeouts, foreign hosts and origins refused), its protocol fidelity to the real clients, and
//! its node (Pods run as processes).

mod bad_requests;
mod cli;
mod faults;
mod hardening;
mod kubectl;
mod pods;
mod protocol;
mod verbs;
mod watch;
