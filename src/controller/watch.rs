//! Watches: Applications, and the Deployments, Services and Ingresses logbook manages (by the
//! managed-by label), each through kube's watcher, forwarded to the core as they come.
//!
//! A watch that breaks is resumed, and relisted when its resourceVersion expired; the core turns
//! what a relist no longer shows into synthesized delete events.

use super::core::Input;
use crate::model::{Application, managed_selector};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use std::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

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
