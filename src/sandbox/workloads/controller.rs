//! The workload controllers' loop: which objects a change makes due for a sync, and syncing
//! them in batches (ReplicaSets, then Deployments, then Jobs) with a resync each second for
//! what time alone changes. It must not decide anything a controller module decides.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::deployments::{self, DEPLOYMENTS};
use super::jobs::{self, JOBS};
use super::pods::{self, PODS};
use super::replicasets::{self, REPLICASETS};
use crate::sandbox::meta;
use crate::sandbox::store::{Change, Signal, Store};

/// How often everything is synced again, for conditions that change with time alone
/// (`minReadySeconds`, progress deadlines, `activeDeadlineSeconds`, finished Jobs' TTL).
const RESYNC: Duration = Duration::from_secs(1);

/// Objects due for a sync, by storage key, namespace and name.
#[derive(Default)]
struct Due(BTreeSet<(&'static str, String, String)>);

impl Due {
    fn add(&mut self, key: &'static str, ns: &str, name: &str) {
        self.0.insert((key, ns.to_string(), name.to_string()));
    }

    fn everything(&mut self, store: &Store) {
        for key in [REPLICASETS, DEPLOYMENTS, JOBS] {
            for s in store.all(key, None) {
                self.add(key, meta::namespace(&s.obj), meta::name(&s.obj));
            }
        }
    }

    /// What a committed change makes due: the object itself, and its controller.
    fn note(&mut self, c: &Change) {
        let obj = &c.object;
        let ns = meta::namespace(obj);
        let deleted = c.kind == crate::sandbox::store::EventType::Deleted;
        match c.key.as_str() {
            DEPLOYMENTS if !deleted => self.add(DEPLOYMENTS, ns, meta::name(obj)),
            REPLICASETS if !deleted => self.add(REPLICASETS, ns, meta::name(obj)),
            JOBS if !deleted => self.add(JOBS, ns, meta::name(obj)),
            REPLICASETS | PODS => {}
            _ => return,
        }
        let owner = obj
            .pointer("/metadata/ownerReferences")
            .and_then(|r| r.as_array())
            .and_then(|a| {
                a.iter()
                    .find(|r| r.get("controller").and_then(|c| c.as_bool()) == Some(true))
            });
        let Some(owner) = owner else {
            return;
        };
        let name = owner.get("name").and_then(|n| n.as_str()).unwrap_or("");
        match owner.get("kind").and_then(|k| k.as_str()).unwrap_or("") {
            "ReplicaSet" => self.add(REPLICASETS, ns, name),
            "Deployment" => self.add(DEPLOYMENTS, ns, name),
            "Job" => self.add(JOBS, ns, name),
            _ => {}
        }
    }
}

/// Objects of `key` grouped by the uid of their controller.
fn by_controller(store: &Store, key: &str) -> HashMap<String, Vec<Arc<Value>>> {
    let mut m: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
    for s in store.all(key, None) {
        if let Some(uid) = pods::controller_uid(&s.obj) {
            m.entry(uid.to_string()).or_default().push(s.obj.clone());
        }
    }
    m
}

fn sync_due(store: &Store, due: Due) {
    let now = chrono::Utc::now();
    let pods = by_controller(store, PODS);
    let none = Vec::new();
    for (key, ns, name) in due.0.iter().filter(|d| d.0 == REPLICASETS) {
        if let Some(rs) = store.get(key, ns, name) {
            let owned = pods.get(meta::uid(&rs.obj)).unwrap_or(&none);
            replicasets::sync(store, &rs.obj, owned, now);
        }
    }
    let deployments_due = due.0.iter().filter(|d| d.0 == DEPLOYMENTS);
    let mut sets = None;
    let mut active = None;
    for (key, ns, name) in deployments_due {
        let Some(d) = store.get(key, ns, name) else {
            continue;
        };
        let sets = sets.get_or_insert_with(|| by_controller(store, REPLICASETS));
        let active = active.get_or_insert_with(|| {
            let pods = by_controller(store, PODS);
            pods.into_iter()
                .map(|(uid, ps)| (uid, ps.iter().filter(|p| pods::active(p)).count()))
                .collect::<HashMap<String, usize>>()
        });
        let owned = sets.get(meta::uid(&d.obj)).unwrap_or(&none);
        deployments::sync(store, &d.obj, owned, active, now);
    }
    for (key, ns, name) in due.0.iter().filter(|d| d.0 == JOBS) {
        if let Some(j) = store.get(key, ns, name) {
            let owned = pods.get(meta::uid(&j.obj)).unwrap_or(&none);
            jobs::sync(store, &j.obj, owned, now);
        }
    }
}

/// Run the Deployment, ReplicaSet and Job controllers until the store's change stream ends.
pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    let mut due = Due::default();
    due.everything(&store);
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !due.0.is_empty() {
            sync_due(&store, std::mem::take(&mut due));
        }
        tokio::select! {
            r = rx.recv() => match r {
                Ok(Signal::Change(c)) => due.note(&c),
                Ok(Signal::CloseAll) => {}
                Err(RecvError::Lagged(_)) => due.everything(&store),
                Err(RecvError::Closed) => return,
            },
            _ = resync.tick() => due.everything(&store),
        }
        // Take whatever else is waiting, so that one batch covers a burst of changes.
        loop {
            match rx.try_recv() {
                Ok(Signal::Change(c)) => due.note(&c),
                Ok(Signal::CloseAll) => {}
                Err(TryRecvError::Lagged(_)) => due.everything(&store),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
    }
}
