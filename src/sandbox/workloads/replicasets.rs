//! The ReplicaSet controller: as many active Pods as `spec.replicas`, made from the template
//! and owned by the ReplicaSet, and a status counted from them. It must not touch a Pod's
//! status nor any Pod it does not own.

use std::cmp::Reverse;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::pods::{self, PODS};
use crate::sandbox::meta;
use crate::sandbox::store::Store;

/// Storage key of ReplicaSets.
pub const REPLICASETS: &str = "apps/replicasets";

/// Order in which surplus Pods go (as `controller.ActivePods`): unscheduled before
/// scheduled, pending before running, not ready before ready, newer before older.
fn deletion_rank(pod: &Value) -> (bool, u8, bool, Reverse<String>) {
    let scheduled = pod
        .pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .is_some_and(|n| !n.is_empty());
    let phase = match pods::phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let created = meta::meta_str(pod, "creationTimestamp").to_string();
    (scheduled, phase, pods::ready(pod), Reverse(created))
}

/// The status a ReplicaSet controller reports for these active Pods.
pub fn status(rs: &Value, active: &[&Value], now: DateTime<Utc>) -> Value {
    let min_ready = pods::int(rs, "/spec/minReadySeconds", 0);
    let template_labels = rs
        .pointer("/spec/template/metadata/labels")
        .and_then(|l| l.as_object())
        .cloned()
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = meta::labels(p);
            template_labels.iter().all(|(k, v)| {
                labels
                    .iter()
                    .any(|(lk, lv)| lk == k && v.as_str() == Some(lv))
            })
        })
        .count();
    let ready = active.iter().filter(|p| pods::ready(p)).count();
    let available = active
        .iter()
        .filter(|p| pods::available(p, min_ready, now))
        .count();
    let mut s = Map::new();
    // `replicas` is always sent; the other counts are left out when zero, as Go's omitempty.
    s.insert("replicas".into(), json!(active.len()));
    for (k, n) in [
        ("fullyLabeledReplicas", fully_labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ] {
        if n > 0 {
            s.insert(k.into(), json!(n));
        }
    }
    let generation = pods::int(rs, "/metadata/generation", 0);
    if generation > 0 {
        s.insert("observedGeneration".into(), json!(generation));
    }
    Value::Object(s)
}

/// Bring one ReplicaSet's Pods and status up to date; `owned` are the Pods whose controller
/// reference is this ReplicaSet. Returns the status written (or already there).
pub fn sync(store: &Store, rs: &Value, owned: &[Arc<Value>], now: DateTime<Utc>) -> Value {
    let ns = meta::namespace(rs);
    let name = meta::name(rs);
    let uid = meta::uid(rs);
    let mut active: Vec<Value> = owned
        .iter()
        .filter(|p| pods::active(p))
        .map(|p| (**p).clone())
        .collect();
    if !pods::terminating(rs) {
        let want = pods::int(rs, "/spec/replicas", 1).max(0) as usize;
        if active.len() < want {
            let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let owner = pods::owner_ref(rs, "apps/v1", "ReplicaSet");
            for _ in active.len()..want {
                let pod = pods::from_template(&template, ns, owner.clone(), &[]);
                match pods::create(store, ns, &format!("{name}-"), pod) {
                    Ok(p) => active.push(p),
                    Err(e) => {
                        tracing::warn!(replicaset = %format!("{ns}/{name}"), error = %e.message, "cannot create a Pod");
                        break;
                    }
                }
            }
        } else if active.len() > want {
            active.sort_by_key(deletion_rank);
            for p in active.drain(..active.len() - want) {
                pods::delete(store, PODS, ns, meta::name(&p), meta::uid(&p));
            }
        }
    }
    let refs: Vec<&Value> = active.iter().collect();
    let s = status(rs, &refs, now);
    pods::put_status(store, REPLICASETS, ns, name, uid, &s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surplus_goes_unready_and_newest_first() {
        let ready = json!({ "metadata": { "creationTimestamp": "2026-01-01T00:00:00Z" },
            "spec": { "nodeName": "n" },
            "status": { "phase": "Running", "conditions": [ { "type": "Ready", "status": "True" } ] } });
        let running_old = json!({ "metadata": { "creationTimestamp": "2026-01-01T00:00:00Z" },
            "spec": { "nodeName": "n" }, "status": { "phase": "Running" } });
        let running_new = json!({ "metadata": { "creationTimestamp": "2026-01-02T00:00:00Z" },
            "spec": { "nodeName": "n" }, "status": { "phase": "Running" } });
        let pending = json!({ "metadata": { "creationTimestamp": "2026-01-01T00:00:00Z" },
            "status": { "phase": "Pending" } });
        let mut v = [&ready, &running_old, &pending, &running_new];
        v.sort_by_key(|p| deletion_rank(p));
        assert_eq!(v, [&pending, &running_new, &running_old, &ready]);
    }

    #[test]
    fn status_counts_ready_available_and_labeled() {
        let rs = json!({ "metadata": { "generation": 3 }, "spec": { "template": {
            "metadata": { "labels": { "app": "web" } } } } });
        let a = json!({ "metadata": { "labels": { "app": "web" } },
            "status": { "conditions": [ { "type": "Ready", "status": "True" } ] } });
        let b = json!({ "metadata": { "labels": { "app": "other" } } });
        let s = status(&rs, &[&a, &b], Utc::now());
        assert_eq!(
            s,
            json!({ "replicas": 2, "fullyLabeledReplicas": 1, "readyReplicas": 1,
                    "availableReplicas": 1, "observedGeneration": 3 })
        );
        assert_eq!(
            status(&rs, &[], Utc::now()),
            json!({ "replicas": 0, "observedGeneration": 3 })
        );
    }
}
