//! Garbage collection: dependents whose owners are all gone are deleted, as the real
//! collector does; orphaning and foreground deletion. It must not delete anything else.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::meta;
use super::store::{EventType, Op, Signal, Store};

/// Delete, depth first, every object owned by `uid` (foreground deletion).
pub fn delete_dependents(store: &Store, uid: &str) {
    let mut seen = HashSet::new();
    delete_dependents_inner(store, uid, &mut seen);
}

fn delete_dependents_inner(store: &Store, uid: &str, seen: &mut HashSet<String>) {
    if !seen.insert(uid.to_string()) {
        return;
    }
    for (key, ns, name, obj) in store.owned() {
        if !meta::owner_uids(&obj).iter().any(|u| u == uid) {
            continue;
        }
        let child = meta::uid(&obj).to_string();
        delete_dependents_inner(store, &child, seen);
        let _ = store.write(&key, &ns, &name, |ctx| match ctx.current {
            Some(c) if meta::uid(&c.obj) == child => Ok(Op::Delete),
            _ => Err(super::status::ApiError::no_such_path()),
        });
    }
}

/// Remove owner references to `uid` from its dependents (orphan deletion).
pub fn orphan(store: &Store, uid: &str) {
    for (key, ns, name, obj) in store.owned() {
        if !meta::owner_uids(&obj).iter().any(|u| u == uid) {
            continue;
        }
        let _ = store.write(&key, &ns, &name, |ctx| {
            let Some(c) = ctx.current else {
                return Err(super::status::ApiError::no_such_path());
            };
            let mut o: Value = (*c.obj).clone();
            let refs: Vec<Value> = o
                .pointer("/metadata/ownerReferences")
                .and_then(|r| r.as_array())
                .map(|a| {
                    a.iter()
                        .filter(|r| r.get("uid").and_then(|u| u.as_str()) != Some(uid))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let m = meta::metadata_mut(&mut o);
            if refs.is_empty() {
                m.remove("ownerReferences");
            } else {
                m.insert("ownerReferences".into(), json!(refs));
            }
            Ok(Op::Replace(o))
        });
    }
}

/// Delete every object all of whose owners are gone; returns how many were deleted.
pub fn sweep(store: &Store) -> usize {
    let uids = store.uids();
    let mut n = 0;
    for (key, ns, name, obj) in store.owned() {
        let owners = meta::owner_uids(&obj);
        if owners.is_empty() || owners.iter().any(|u| uids.contains(u)) {
            continue;
        }
        let uid = meta::uid(&obj).to_string();
        let r = store.write(&key, &ns, &name, |ctx| match ctx.current {
            Some(c) if meta::uid(&c.obj) == uid => Ok(Op::Delete),
            _ => Err(super::status::ApiError::no_such_path()),
        });
        if r.is_ok() {
            n += 1;
        }
    }
    n
}

/// Run the collector until the store's change stream ends: after each delete (and each new
/// object with owners), sweep once things settle for `delay`.
pub async fn run(store: Arc<Store>, delay: Duration) {
    let mut rx = store.subscribe();
    loop {
        let wake = match rx.recv().await {
            Ok(Signal::Change(c)) => {
                c.kind == EventType::Deleted
                    || (c.kind == EventType::Added
                        && c.object.pointer("/metadata/ownerReferences").is_some())
            }
            Ok(Signal::CloseAll) => false,
            Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return,
        };
        if !wake {
            continue;
        }
        tokio::time::sleep(delay).await;
        // Whatever arrived meanwhile is covered by this sweep.
        rx = rx.resubscribe();
        while sweep(&store) > 0 {}
    }
}
