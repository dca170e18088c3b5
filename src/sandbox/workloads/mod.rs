//! The sandbox's workload controllers, as kube-controller-manager runs them: Deployments own
//! ReplicaSets own Pods, Jobs own Pods. Owns the switch between them and the simulated mode;
//! it must not run containers or set a Pod's status (that is the node agent's, or a test's).
//!
//! [`Workloads::Pods`] runs the real controllers ([`controller`]: [`deployments`],
//! [`replicasets`], [`jobs`]); readiness then comes from the Pods' `Ready` condition, whoever
//! sets it. [`Workloads::Simulated`] is the KWOK-style shortcut ([`simulated`]): a Deployment
//! reports every replica ready after [`super::SandboxConfig::ready_delay`], and no ReplicaSet
//! or Pod is made.

pub mod controller;
pub mod deployments;
pub mod jobs;
pub mod pods;
pub mod replicasets;
pub mod simulated;

use std::sync::Arc;
use std::time::Duration;

use super::store::Store;

/// How the sandbox brings workloads to life ([`super::SandboxConfig::workloads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workloads {
    /// Deployments own ReplicaSets own Pods and Jobs own Pods; their status comes from the
    /// Pods' status, which the node agent (or a test standing in for a kubelet) sets.
    Pods,
    /// Deployments report every replica ready after `ready_delay`; no ReplicaSets, no Pods.
    /// Jobs are stored and nothing runs them.
    #[default]
    Simulated,
}

/// Run the workload controllers of `mode` until the store's change stream ends.
pub async fn run(store: Arc<Store>, mode: Workloads, ready_delay: Duration) {
    match mode {
        Workloads::Pods => controller::run(store).await,
        Workloads::Simulated => simulated::run(store, ready_delay).await,
    }
}
