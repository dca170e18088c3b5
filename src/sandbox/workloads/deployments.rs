//! The Deployment controller: one ReplicaSet per pod template (`<name>-<pod-template-hash>`),
//! rolled by `maxSurge`/`maxUnavailable` or recreated, and a status (counts, `Available`,
//! `Progressing`) from its ReplicaSets'. It must not touch Pods: ReplicaSets own them.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::pods;
use super::replicasets::REPLICASETS;
use crate::sandbox::meta;
use crate::sandbox::status::ApiError;
use crate::sandbox::store::{Op, Store};

/// Storage key of Deployments.
pub const DEPLOYMENTS: &str = "apps/deployments";
/// The label (and selector term) that tells a Deployment's ReplicaSets apart.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision annotation on a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// The pod-template-hash of a template (FNV-1a of its canonical JSON and the collision count,
/// written in the name generator's alphabet, as the controller does with its own encoding).
pub fn template_hash(template: &Value, collisions: i64) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if collisions > 0 {
        bytes.extend_from_slice(collisions.to_string().as_bytes());
    }
    pods::safe_encode(&pods::fnv32a(&bytes).to_string())
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(|l| l.as_object_mut())
    {
        l.remove(HASH_LABEL);
    }
    t
}

/// `intstr` against a total: an integer, or a percentage rounded up or down.
pub fn scaled(v: Option<&Value>, total: i64, round_up: bool, default: &str) -> i64 {
    let v = v.cloned().unwrap_or(json!(default));
    if let Some(n) = v.as_i64() {
        return n.max(0);
    }
    let pct = v
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|p| p.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let x = pct * total;
    if round_up { (x + 99) / 100 } else { x / 100 }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas, as `ResolveFenceposts`: surge rounds
/// up, unavailability down, and both zero means one may be unavailable.
pub fn fenceposts(d: &Value, desired: i64) -> (i64, i64) {
    if strategy(d) != "RollingUpdate" {
        return (0, 0);
    }
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let surge = scaled(ru.and_then(|r| r.get("maxSurge")), desired, true, "25%");
    let unavailable = scaled(
        ru.and_then(|r| r.get("maxUnavailable")),
        desired,
        false,
        "25%",
    );
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable.min(desired))
}

fn strategy(d: &Value) -> &str {
    d.pointer("/spec/strategy/type")
        .and_then(|t| t.as_str())
        .unwrap_or("RollingUpdate")
}

fn spec_replicas(rs: &Value) -> i64 {
    pods::int(rs, "/spec/replicas", 1).max(0)
}

fn status_count(rs: &Value, f: &str) -> i64 {
    pods::int(rs, &format!("/status/{f}"), 0)
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.as_str())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// What one sync did that the status's `Progressing` condition reports.
struct Synced {
    created: bool,
}

/// The Deployment's ReplicaSets as the sync sees them, kept current as it writes.
struct Sets {
    new: Option<Value>,
    old: Vec<Value>,
}

impl Sets {
    fn all(&self) -> impl Iterator<Item = &Value> {
        self.new.iter().chain(self.old.iter())
    }
}

fn scale(store: &Store, rs: &mut Value, replicas: i64, d: &Value, max: i64) {
    if spec_replicas(rs) == replicas
        && rs
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DESIRED))
            .and_then(|v| v.as_str())
            == Some(&pods::int(d, "/spec/replicas", 1).to_string())
    {
        return;
    }
    let desired = pods::int(d, "/spec/replicas", 1).to_string();
    let max = max.to_string();
    if let Some(updated) = pods::edit(
        store,
        REPLICASETS,
        meta::namespace(rs),
        meta::name(rs),
        meta::uid(rs),
        |o| {
            o["spec"]["replicas"] = json!(replicas);
            let a = meta::metadata_mut(o)
                .entry("annotations")
                .or_insert_with(|| json!({}));
            a[DESIRED] = json!(desired);
            a[MAX_REPLICAS] = json!(max);
        },
    ) {
        *rs = updated;
    }
}

fn set_revision(store: &Store, rs: &mut Value, rev: i64) {
    if let Some(updated) = pods::edit(
        store,
        REPLICASETS,
        meta::namespace(rs),
        meta::name(rs),
        meta::uid(rs),
        |o| {
            let a = meta::metadata_mut(o)
                .entry("annotations")
                .or_insert_with(|| json!({}));
            a[REVISION] = json!(rev.to_string());
        },
    ) {
        *rs = updated;
    }
}

/// Make the ReplicaSet for the Deployment's current template, `replicas` strong.
fn create_new(store: &Store, d: &Value, replicas: i64, rev: i64, surge: i64) -> Option<Value> {
    let ns = meta::namespace(d);
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut collisions = pods::int(d, "/status/collisionCount", 0);
    for _ in 0..5 {
        let hash = template_hash(&template, collisions);
        let name = format!("{}-{hash}", meta::name(d));
        let mut t = template.clone();
        let labels = meta::metadata_mut(&mut t)
            .entry("labels")
            .or_insert_with(|| json!({}));
        labels[HASH_LABEL] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        let ml = selector
            .as_object_mut()
            .map(|s| s.entry("matchLabels").or_insert_with(|| json!({})));
        if let Some(ml) = ml {
            ml[HASH_LABEL] = json!(hash);
        }
        let mut rs_labels = t.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        rs_labels[HASH_LABEL] = json!(hash);
        let mut spec = json!({ "replicas": replicas, "selector": selector, "template": t });
        let min_ready = pods::int(d, "/spec/minReadySeconds", 0);
        if min_ready > 0 {
            spec["minReadySeconds"] = json!(min_ready);
        }
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": rs_labels,
                "annotations": {
                    REVISION: rev.to_string(),
                    DESIRED: pods::int(d, "/spec/replicas", 1).to_string(),
                    MAX_REPLICAS: (pods::int(d, "/spec/replicas", 1) + surge).to_string(),
                },
                "ownerReferences": [pods::owner_ref(d, "apps/v1", "Deployment")],
            },
            "spec": spec,
        });
        let r = store.write(REPLICASETS, ns, &name, |ctx| {
            if ctx.current.is_some() {
                return Err(ApiError::already_exists("apps", "replicasets", &name));
            }
            Ok(Op::Create(rs))
        });
        match r {
            Ok(w) => {
                if collisions != pods::int(d, "/status/collisionCount", 0) {
                    pods::edit(store, DEPLOYMENTS, ns, meta::name(d), meta::uid(d), |o| {
                        o["status"]["collisionCount"] = json!(collisions);
                    });
                }
                return Some((*w.stored.obj).clone());
            }
            Err(e) if e.code == 409 => collisions += 1,
            Err(e) => {
                tracing::warn!(deployment = %format!("{ns}/{}", meta::name(d)), error = %e.message, "cannot create a ReplicaSet");
                return None;
            }
        }
    }
    None
}

/// Rolling update, as `rolling.go`: scale the new ReplicaSet up within `maxSurge`, then the
/// old ones down as far as `maxUnavailable` allows, unhealthy replicas first.
fn roll(store: &Store, d: &Value, sets: &mut Sets, desired: i64, surge: i64, unavailable: i64) {
    let max_total = desired + surge;
    if let Some(new) = sets.new.as_mut() {
        let cur = spec_replicas(new);
        let target = if cur > desired {
            desired
        } else {
            let total: i64 = sets.old.iter().map(spec_replicas).sum::<i64>() + cur;
            if total >= max_total {
                cur
            } else {
                cur + (max_total - total).min(desired - cur)
            }
        };
        scale(store, new, target, d, max_total);
    }
    let old_count: i64 = sets.old.iter().map(spec_replicas).sum();
    if old_count == 0 {
        return;
    }
    let all_count: i64 = sets.all().map(spec_replicas).sum();
    let min_available = desired - unavailable;
    let new_unavailable = sets.new.as_ref().map_or(0, |n| {
        spec_replicas(n) - status_count(n, "availableReplicas")
    });
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    sets.old.sort_by_key(|r| {
        (
            revision(r),
            meta::meta_str(r, "creationTimestamp").to_string(),
        )
    });
    // Unhealthy replicas of old sets go first; they count for nothing.
    let mut cleaned = 0;
    for rs in sets.old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let have = spec_replicas(rs);
        let unhealthy = have - status_count(rs, "availableReplicas");
        if have == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - cleaned);
        scale(store, rs, have - down, d, max_total);
        cleaned += down;
    }
    // Then available ones, as far as the minimum availability allows.
    let available: i64 = sets
        .all()
        .map(|r| status_count(r, "availableReplicas"))
        .sum();
    if available <= min_available {
        return;
    }
    let total_down = (available - min_available).min(max_scaled_down - cleaned);
    let mut done = 0;
    for rs in sets.old.iter_mut() {
        if done >= total_down {
            break;
        }
        let have = spec_replicas(rs);
        if have == 0 {
            continue;
        }
        let down = have.min(total_down - done);
        scale(store, rs, have - down, d, max_total);
        done += down;
    }
}

/// Bring one Deployment's ReplicaSets and status up to date. `owned` are the ReplicaSets whose
/// controller reference is this Deployment; `active_pods` counts their active Pods by
/// ReplicaSet uid (what `Recreate` waits on).
pub fn sync(
    store: &Store,
    d: &Value,
    owned: &[Arc<Value>],
    active_pods: &HashMap<String, usize>,
    now: DateTime<Utc>,
) {
    if pods::terminating(d) {
        return;
    }
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let want = without_hash(&template);
    let mut sets = Sets {
        new: None,
        old: Vec::new(),
    };
    for rs in owned {
        let same = rs
            .pointer("/spec/template")
            .is_some_and(|t| without_hash(t) == want);
        if same && sets.new.is_none() {
            sets.new = Some((**rs).clone());
        } else {
            sets.old.push((**rs).clone());
        }
    }
    let desired = pods::int(d, "/spec/replicas", 1).max(0);
    let (surge, unavailable) = fenceposts(d, desired);
    let paused = d.pointer("/spec/paused").and_then(|p| p.as_bool()) == Some(true);
    let mut synced = Synced { created: false };
    if !paused {
        let max_old_rev = sets.old.iter().map(revision).max().unwrap_or(0);
        if let Some(new) = sets.new.as_mut()
            && revision(new) <= max_old_rev
        {
            set_revision(store, new, max_old_rev + 1);
        }
        if strategy(d) == "Recreate" {
            for rs in sets.old.iter_mut() {
                scale(store, rs, 0, d, desired);
            }
            let old_running = sets
                .old
                .iter()
                .any(|r| active_pods.get(meta::uid(r)).copied().unwrap_or(0) > 0);
            if !old_running {
                match sets.new.as_mut() {
                    Some(new) => scale(store, new, desired, d, desired),
                    None => {
                        sets.new = create_new(store, d, desired, max_old_rev + 1, 0);
                        synced.created = sets.new.is_some();
                    }
                }
            }
        } else {
            if sets.new.is_none() {
                let total: i64 = sets.old.iter().map(spec_replicas).sum();
                let first = (desired + surge - total).clamp(0, desired);
                sets.new = create_new(store, d, first, max_old_rev + 1, surge);
                synced.created = sets.new.is_some();
            }
            roll(store, d, &mut sets, desired, surge, unavailable);
        }
        cleanup(store, d, &sets);
    }
    if let Some(new) = &sets.new {
        let rev = revision(new).to_string();
        pods::edit(
            store,
            DEPLOYMENTS,
            meta::namespace(d),
            meta::name(d),
            meta::uid(d),
            |o| {
                let a = meta::metadata_mut(o)
                    .entry("annotations")
                    .or_insert_with(|| json!({}));
                a[REVISION] = json!(rev);
            },
        );
    }
    // Status from the store's view after this sync's writes (a Deployment edit above changed
    // its resourceVersion, not what the status is computed from).
    let current = store.get(DEPLOYMENTS, meta::namespace(d), meta::name(d));
    let Some(current) = current.filter(|c| meta::uid(&c.obj) == meta::uid(d)) else {
        return;
    };
    let s = status(&current.obj, &sets, desired, unavailable, &synced, now);
    pods::put_status(
        store,
        DEPLOYMENTS,
        meta::namespace(d),
        meta::name(d),
        meta::uid(d),
        &s,
    );
}

/// Old ReplicaSets scaled to nothing beyond `revisionHistoryLimit` go, oldest first.
fn cleanup(store: &Store, d: &Value, sets: &Sets) {
    let limit = pods::int(d, "/spec/revisionHistoryLimit", 10).max(0) as usize;
    let mut idle: Vec<&Value> = sets
        .old
        .iter()
        .filter(|r| spec_replicas(r) == 0 && status_count(r, "replicas") == 0)
        .collect();
    if idle.len() <= limit {
        return;
    }
    idle.sort_by_key(|r| revision(r));
    for rs in &idle[..idle.len() - limit] {
        pods::delete(
            store,
            REPLICASETS,
            meta::namespace(rs),
            meta::name(rs),
            meta::uid(rs),
        );
    }
}

fn status(
    d: &Value,
    sets: &Sets,
    desired: i64,
    unavailable: i64,
    synced: &Synced,
    now: DateTime<Utc>,
) -> Value {
    let sum = |f: &str| sets.all().map(|r| status_count(r, f)).sum::<i64>();
    let replicas = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let updated = sets.new.as_ref().map_or(0, |n| status_count(n, "replicas"));
    let total_spec: i64 = sets.all().map(spec_replicas).sum();
    let unavailable_now = (total_spec - available).max(0);
    let old = d.get("status").cloned().unwrap_or(json!({}));
    let mut s = Map::new();
    let generation = pods::int(d, "/metadata/generation", 0);
    if generation > 0 {
        s.insert("observedGeneration".into(), json!(generation));
    }
    for (k, n) in [
        ("replicas", replicas),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", unavailable_now),
    ] {
        if n > 0 {
            s.insert(k.into(), json!(n));
        }
    }
    if let Some(c) = old.get("collisionCount") {
        s.insert("collisionCount".into(), c.clone());
    }
    let stamp = meta::now();
    let mut conditions: Vec<Value> = old
        .get("conditions")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    if available >= desired - unavailable {
        pods::set_condition(
            &mut conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &stamp,
        );
    } else {
        pods::set_condition(
            &mut conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &stamp,
        );
    }
    let new_name = sets
        .new
        .as_ref()
        .map(|n| meta::name(n).to_string())
        .unwrap_or_default();
    let complete = updated == desired
        && replicas == desired
        && available == desired
        && sets
            .new
            .as_ref()
            .is_some_and(|n| spec_replicas(n) == desired);
    let progressed = ["updatedReplicas", "readyReplicas", "availableReplicas"]
        .iter()
        .any(|f| {
            pods::int(&Value::Object(s.clone()), &format!("/{f}"), 0)
                > pods::int(&old, &format!("/{f}"), 0)
        })
        || pods::int(&old, "/replicas", 0) - pods::int(&old, "/updatedReplicas", 0)
            > replicas - updated;
    let paused = d.pointer("/spec/paused").and_then(|p| p.as_bool()) == Some(true);
    if paused {
        pods::set_condition(
            &mut conditions,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            &stamp,
        );
    } else if complete {
        pods::set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            &stamp,
        );
    } else if synced.created {
        pods::set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{new_name}\""),
            &stamp,
        );
    } else if progressed || !conditions.iter().any(|c| c["type"] == "Progressing") {
        pods::set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{new_name}\" is progressing."),
            &stamp,
        );
        if let Some(c) = conditions.iter_mut().find(|c| c["type"] == "Progressing") {
            c["lastUpdateTime"] = json!(stamp);
        }
    } else {
        let deadline = pods::int(d, "/spec/progressDeadlineSeconds", 600);
        let last = conditions
            .iter()
            .find(|c| c["type"] == "Progressing" && c["status"] == "True")
            .and_then(|c| c.get("lastUpdateTime").and_then(|t| t.as_str()))
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if last.is_some_and(|t| t.with_timezone(&Utc) + chrono::Duration::seconds(deadline) < now) {
            pods::set_condition(
                &mut conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                &stamp,
            );
        }
    }
    for c in conditions.iter_mut() {
        if c.get("lastUpdateTime").is_none() {
            c["lastUpdateTime"] = c.get("lastTransitionTime").cloned().unwrap_or(json!(stamp));
        }
    }
    s.insert("conditions".into(), json!(conditions));
    Value::Object(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenceposts_round_as_upstream() {
        let d = |surge: Value, unav: Value| {
            json!({ "spec": { "strategy": { "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": surge, "maxUnavailable": unav } } } })
        };
        // 25% of 3: surge rounds up to 1, unavailability down to 0.
        assert_eq!(fenceposts(&json!({ "spec": {} }), 3), (1, 0));
        assert_eq!(fenceposts(&json!({ "spec": {} }), 10), (3, 2));
        assert_eq!(fenceposts(&d(json!(0), json!(0)), 4), (0, 1));
        assert_eq!(fenceposts(&d(json!(1), json!("50%")), 4), (1, 2));
        assert_eq!(
            fenceposts(
                &json!({ "spec": { "strategy": { "type": "Recreate" } } }),
                4
            ),
            (0, 0)
        );
    }

    #[test]
    fn the_hash_ignores_nothing_but_changes_with_collisions() {
        let t = json!({ "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [] } });
        let h = template_hash(&t, 0);
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert_eq!(h, template_hash(&t, 0));
        assert_ne!(h, template_hash(&t, 1));
        let mut with = t.clone();
        with["metadata"]["labels"][HASH_LABEL] = json!(h);
        assert_eq!(without_hash(&with), t);
    }
}
