//! The sandbox's integration tests, one binary: verbs, watches, bad requests, injected faults,
//! `kubectl` against it, `logbook sandbox` as a process, its hardening (bounded history,
//! timeouts, foreign hosts and origins refused), its protocol fidelity to the real clients, its
//! node (Pods run as processes), the workload controllers (with a stand-in kubelet setting Pod
//! status where a test needs it), the volume provisioner, and Services (ClusterIPs,
//! EndpointSlices, the TCP proxy).

mod bad_requests;
mod cli;
mod faults;
mod hardening;
mod kubectl;
mod pods;
mod protocol;
mod services;
mod standin_kubelet;
mod verbs;
mod volumes;
mod watch;
mod workloads;
