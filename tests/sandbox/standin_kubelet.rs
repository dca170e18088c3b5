//! A stand-in for the kubelet, until the sandbox's node agent is merged: it sets Pods' status
//! through `pods/status` (phase, `Ready`, podIP), as a test against a real API server without a
//! kubelet would. It must do nothing else; the controllers read only those status fields.

use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

static NEXT_IP: AtomicU32 = AtomicU32::new(1);

/// A fresh loopback address for a Pod (127.10.x.y).
pub(crate) fn next_ip() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    format!("127.10.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

/// Report the Pod running with `ip`, its `Ready` condition `ready`.
pub(crate) async fn set_running(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let status = if ready { "True" } else { "False" };
    let body = json!({ "status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [ { "ip": ip } ],
        "conditions": [
            { "type": "Ready", "status": status, "lastTransitionTime": now },
            { "type": "ContainersReady", "status": status, "lastTransitionTime": now },
        ],
    } });
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap_or_else(|e| panic!("pods/{name}/status: {e}"));
}

/// Report the Pod finished: `Succeeded` or `Failed`, not ready.
pub(crate) async fn set_finished(pods: &Api<Pod>, name: &str, phase: &str) {
    let body = json!({ "status": {
        "phase": phase,
        "conditions": [ { "type": "Ready", "status": "False", "reason": "PodCompleted" } ],
    } });
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap_or_else(|e| panic!("pods/{name}/status: {e}"));
}

/// Mark every Pod of `pods` that is pending (and not being deleted) running and ready;
/// returns how many it marked.
pub(crate) async fn ready_all(pods: &Api<Pod>) -> usize {
    let list = pods.list(&ListParams::default()).await.expect("list pods");
    let mut n = 0;
    for p in list.items {
        let pending = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
        if pending && p.metadata.deletion_timestamp.is_none() {
            let name = p.metadata.name.clone().unwrap_or_default();
            set_running(pods, &name, &next_ip(), true).await;
            n += 1;
        }
    }
    n
}

/// Marks Pods ready as they appear, until dropped.
pub(crate) struct Kubelet(tokio::task::JoinHandle<()>);

impl Kubelet {
    /// Start marking the Pods of `pods` ready, polling every 10 ms.
    pub(crate) fn start(pods: Api<Pod>) -> Kubelet {
        Kubelet(tokio::spawn(async move {
            loop {
                ready_all(&pods).await;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }))
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.0.abort();
    }
}
