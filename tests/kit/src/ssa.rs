//! A small model of what the API server does with an action: server-side apply for a sole field
//! manager, the fields it defaults, deletes with uid preconditions and status writes.

use logbook::record::{Action, Verb};
use logbook::world::{Observed, World};
use serde_json::{Value, json};

/// Adds what an API server would: uid, resourceVersion, generation, status and defaulted fields
/// (protocol, clusterIP, imagePullPolicy, ...), none of which logbook sets.
pub fn server_defaults(object: &mut Value, uid: &str, resource_version: u64) {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("uid").or_insert_with(|| json!(uid));
        meta.insert(
            "resourceVersion".into(),
            json!(resource_version.to_string()),
        );
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!("2026-01-01T00:00:00Z"));
        meta.entry("generation").or_insert_with(|| json!(1));
    }
    match kind.as_str() {
        "Deployment" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                spec.entry("strategy")
                    .or_insert(json!({"type": "RollingUpdate"}));
            }
            if let Some(containers) = object
                .pointer_mut("/spec/template/spec/containers")
                .and_then(Value::as_array_mut)
            {
                for c in containers {
                    if let Some(c) = c.as_object_mut() {
                        c.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
                        c.entry("terminationMessagePath")
                            .or_insert(json!("/dev/termination-log"));
                    }
                }
            }
            if let Some(ports) = object
                .pointer_mut("/spec/template/spec/containers/0/ports")
                .and_then(Value::as_array_mut)
            {
                for p in ports {
                    if let Some(p) = p.as_object_mut() {
                        p.entry("protocol").or_insert(json!("TCP"));
                    }
                }
            }
            if let Some(map) = object.as_object_mut() {
                map.entry("status").or_insert(json!({"replicas": 0}));
            }
        }
        "Service" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("clusterIP").or_insert(json!("10.96.0.10"));
                spec.entry("type").or_insert(json!("ClusterIP"));
                spec.entry("sessionAffinity").or_insert(json!("None"));
            }
            if let Some(ports) = object
                .pointer_mut("/spec/ports")
                .and_then(Value::as_array_mut)
            {
                for p in ports {
                    if let Some(p) = p.as_object_mut() {
                        p.entry("protocol").or_insert(json!("TCP"));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Merges `desired` into `actual` the way server-side apply does for a sole field manager:
/// maps merge, lists of named elements are replaced by the desired names (each element merged),
/// other lists are replaced whole, and a container's env and probes that the manager no longer
/// applies are removed (it applied them before, so it owned them).
/// Not `sandbox::patch::apply`: the model keeps no last-applied config, so it infers ownership.
pub fn apply_merge(actual: &mut Value, desired: &Value) {
    match (actual, desired) {
        (Value::Object(a), Value::Object(d)) => {
            if d.contains_key("image") {
                for k in ["env", "readinessProbe", "livenessProbe"] {
                    if !d.contains_key(k) {
                        a.remove(k);
                    }
                }
            }
            for (k, dv) in d {
                match a.get_mut(k) {
                    Some(av) => apply_merge(av, dv),
                    None => {
                        a.insert(k.clone(), dv.clone());
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(d)) => {
            let named = |l: &Vec<Value>| {
                l.iter()
                    .all(|v| v.get("name").and_then(Value::as_str).is_some())
            };
            if !d.is_empty() && named(d) && named(a) {
                let mut out = Vec::new();
                for dv in d {
                    let name = dv.get("name");
                    let mut merged = a
                        .iter()
                        .find(|av| av.get("name") == name)
                        .cloned()
                        .unwrap_or(json!({}));
                    apply_merge(&mut merged, dv);
                    out.push(merged);
                }
                *a = out;
            } else {
                *a = d.clone();
            }
        }
        (a, d) => *a = d.clone(),
    }
}

/// Applies `actions` to `world` as an API server and a perfect executor would, bumping
/// resourceVersions from `next_rv`. Returns the next free resourceVersion.
pub fn model_apply(world: &mut World, actions: &[Action], mut next_rv: u64) -> u64 {
    for a in actions {
        next_rv += 1;
        match a.verb {
            Verb::Create | Verb::Apply => {
                let Some(desired) = &a.object else { continue };
                let mut object = world
                    .object(&a.target)
                    .map(|o| o.object().clone())
                    .unwrap_or(json!({}));
                apply_merge(&mut object, desired);
                server_defaults(&mut object, &format!("uid-{}", a.target), next_rv);
                if let Ok((k, o)) = Observed::from_value(object) {
                    let _ = world.observe(k, o);
                }
            }
            Verb::Delete => {
                let uid_ok = world
                    .object(&a.target)
                    .is_some_and(|o| a.uid.as_ref().is_none_or(|u| *u == o.uid));
                if uid_ok {
                    world.forget(&a.target);
                }
            }
            Verb::Status => {
                let (Some(obs), Some(status)) = (
                    world.object(&a.target),
                    a.object.as_ref().and_then(|o| o.get("status")),
                ) else {
                    continue;
                };
                let mut object = obs.object().clone();
                if let Some(map) = object.as_object_mut() {
                    map.insert("status".into(), status.clone());
                    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("resourceVersion".into(), json!(next_rv.to_string()));
                    }
                }
                if let Ok((k, o)) = Observed::from_value(object) {
                    let _ = world.observe(k, o);
                }
            }
        }
    }
    next_rv
}
