//! Watches: Applications, and the Deployments, Services and Ingresses logbook manages (by the
//! managed-by label), each through kube's watcher, forwarded to the core as they come.
//!
//! A watch that breaks is resumed, and relisted when its resourceVersion expired; the core turns
//! what a relist no longer shows into synthesized delete events.

use super::core::Input;
use crate::model::{ApiCall, Application, managed_selector};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use std::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

/// Every call the controller makes to the Kubernetes API, as RBAC names it: the roles
/// `deploy/` gives the controller grant exactly these (`tests/deploy_render.rs`). It reads the
/// cluster and never writes what it manages (executors do).
pub const API_CALLS: &[ApiCall] = &[
    // The watches below: kube's watcher lists, then watches, across all namespaces.
    ApiCall::cluster("logbook.dev", "applications", &["list", "watch"]),
    ApiCall::cluster("apps", "deployments", &["list", "watch"]),
    ApiCall::cluster("", "services", &["list", "watch"]),
    ApiCall::cluster("networking.k8s.io", "ingresses", &["list", "watch"]),
    // Leader election (`lease.rs`): one Lease in the controller's own namespace ($POD_NAMESPACE),
    // read, created when missing, renewed and released by update (PUT).
    ApiCall::own_namespace(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
    // Kubernetes Events about Applications (`events.rs`): events.k8s.io/v1, created in the
    // Application's namespace, never patched (one Event per action; a 409 is left as it is).
    ApiCall::cluster("events.k8s.io", "events", &["create"]),
];

/// A watched kind: its resource and whether only managed objects are watched.
pub struct Watched {
    /// The kind name.
    pub kind: &'static str,
    resource: ApiResource,
    managed_only: bool,
}

/// The kinds the controller watches.
pub fn watched() -> Vec<Watched> {
    vec![
        Watched {
            kind: "Application",
            resource: ApiResource::erase::<Application>(&()),
            managed_only: false,
        },
        Watched {
            kind: "Deployment",
            resource: ApiResource::erase::<Deployment>(&()),
            managed_only: true,
        },
        Watched {
            kind: "Service",
            resource: ApiResource::erase::<Service>(&()),
            managed_only: true,
        },
        Watched {
            kind: "Ingress",
            resource: ApiResource::erase::<Ingress>(&()),
            managed_only: true,
        },
    ]
}

/// Runs one watch until `shutdown`, sending what it sees to the core.
pub async fn run(client: kube::Client, w: Watched, tx: Sender<Input>, shutdown: CancellationToken) {
    let api: Api<DynamicObject> = Api::all_with(client, &w.resource);
    let mut config = watcher::Config::default();
    if w.managed_only {
        config = config.labels(&managed_selector());
    }
    let stream = watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let complete = |obj: DynamicObject| -> Option<Value> {
        let mut v = serde_json::to_value(obj).ok()?;
        let o = v.as_object_mut()?;
        // Listed items carry no apiVersion and kind; the resource says what they are.
        o.insert("apiVersion".into(), w.resource.api_version.clone().into());
        o.insert("kind".into(), w.resource.kind.clone().into());
        Some(v)
    };
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = stream.next() => n,
        };
        let input = match next {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(kind = w.kind, error = %e, "watch interrupted; resuming with backoff");
                continue;
            }
            Some(Ok(event)) => match event {
                watcher::Event::Init => Input::ListStart(w.kind),
                watcher::Event::InitDone => Input::ListDone(w.kind),
                watcher::Event::InitApply(o) | watcher::Event::Apply(o) => match complete(o) {
                    Some(v) => Input::Seen(v),
                    None => continue,
                },
                watcher::Event::Delete(o) => match complete(o) {
                    Some(v) => Input::Deleted(v),
                    None => continue,
                },
            },
        };
        if tx.send(input).is_err() {
            return; // the core has stopped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scope;

    #[test]
    fn every_watch_is_in_the_api_calls() {
        for w in watched() {
            let r = &w.resource;
            for verb in ["list", "watch"] {
                assert!(
                    API_CALLS
                        .iter()
                        .any(|c| c.scope == Scope::Cluster && c.allows(&r.group, &r.plural, verb)),
                    "API_CALLS lacks {verb} on {}/{} (watched as {})",
                    r.group,
                    r.plural,
                    w.kind
                );
            }
        }
    }
}
