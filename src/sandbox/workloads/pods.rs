//! What the workload controllers share about Pods and owners: selectors from a spec, owner
//! references, readiness and availability read from a Pod's status, Pods made from a template.
//! It must not decide how many Pods a controller wants, and never writes a Pod's status.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use crate::sandbox::meta;
use crate::sandbox::status::ApiError;
use crate::sandbox::store::{Op, Store};

/// Storage key of Pods.
pub const PODS: &str = "/pods";

/// The alphabet the API server's name generator and the pod-template-hash use (no vowels, no
/// look-alikes), as `k8s.io/apimachinery/pkg/util/rand` has it.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Five random characters, as `generateName` appends.
pub fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHANUMS[rng.random_range(0..ALPHANUMS.len())] as char)
        .collect()
}

/// `SafeEncodeString`: each character mapped into [`ALPHANUMS`].
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// 32-bit FNV-1a of `bytes`.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// An integer field, or `default`.
pub fn int(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(|v| v.as_i64())
        .unwrap_or(default)
}

/// Whether `obj`'s labels satisfy a `LabelSelector` object (`matchLabels`,
/// `matchExpressions`). A missing selector selects nothing; an empty one everything.
pub fn selects(selector: Option<&Value>, obj: &Value) -> bool {
    let Some(sel) = selector.filter(|s| s.is_object()) else {
        return false;
    };
    let labels = meta::labels(obj);
    let get = |k: &str| labels.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v);
    let by_labels = sel
        .get("matchLabels")
        .and_then(|m| m.as_object())
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let by_exprs = sel
        .get("matchExpressions")
        .and_then(|e| e.as_array())
        .is_none_or(|es| {
            es.iter().all(|e| {
                let key = e.get("key").and_then(|k| k.as_str()).unwrap_or("");
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                match e.get("operator").and_then(|o| o.as_str()).unwrap_or("") {
                    "In" => get(key).is_some_and(|v| values.contains(&v)),
                    "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                    "Exists" => get(key).is_some(),
                    "DoesNotExist" => get(key).is_none(),
                    _ => false,
                }
            })
        });
    by_labels && by_exprs
}

/// The uid of the owner reference marked `controller: true`, if any.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(|r| r.as_array())?
        .iter()
        .find(|r| r.get("controller").and_then(|c| c.as_bool()) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(|u| u.as_str())
}

/// A controller owner reference to `owner`.
pub fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": meta::name(owner),
        "uid": meta::uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether the object is being deleted.
pub fn terminating(obj: &Value) -> bool {
    !meta::meta_str(obj, "deletionTimestamp").is_empty()
}

/// A Pod's phase ("" when unset).
pub fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(|p| p.as_str())
        .unwrap_or("")
}

/// Whether a Pod counts for its controller: not being deleted, not finished.
pub fn active(pod: &Value) -> bool {
    !terminating(pod) && !matches!(phase(pod), "Succeeded" | "Failed")
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")
        .and_then(|c| c.as_array())?
        .iter()
        .find(|c| c.get("type").and_then(|t| t.as_str()) == Some("Ready"))
}

/// Whether the Pod's `Ready` condition is `True`.
pub fn ready(pod: &Value) -> bool {
    ready_condition(pod)
        .and_then(|c| c.get("status"))
        .and_then(|s| s.as_str())
        == Some("True")
}

/// Whether the Pod has been ready for at least `min_ready_seconds` at `now` (as
/// `podutil.IsPodAvailable`: a ready Pod with no transition time counts as available).
pub fn available(pod: &Value, min_ready_seconds: i64, now: DateTime<Utc>) -> bool {
    if !ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = ready_condition(pod)
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(|t| t.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    since
        .is_none_or(|t| t.with_timezone(&Utc) + chrono::Duration::seconds(min_ready_seconds) <= now)
}

/// A Pod object for `template` (a PodTemplateSpec), owned by `owner`, with the defaults the
/// API server fills in and the status it starts with. Its name is chosen by [`create`].
pub fn from_template(
    template: &Value,
    ns: &str,
    owner: Value,
    extra_labels: &[(&str, &str)],
) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template.get("metadata").cloned().unwrap_or(json!({})),
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
        "status": { "phase": "Pending", "qosClass": "BestEffort" },
    });
    let m = meta::metadata_mut(&mut pod);
    m.remove("name");
    m.remove("creationTimestamp");
    m.insert("namespace".into(), json!(ns));
    m.insert("ownerReferences".into(), json!([owner]));
    if !extra_labels.is_empty() {
        let labels = m.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            for (k, v) in extra_labels {
                l.insert((*k).into(), json!(v));
            }
        }
    }
    if let Some(spec) = pod.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.entry("restartPolicy").or_insert(json!("Always"));
        spec.entry("terminationGracePeriodSeconds")
            .or_insert(json!(30));
        spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
        spec.entry("schedulerName")
            .or_insert(json!("default-scheduler"));
        spec.entry("securityContext").or_insert(json!({}));
        for list in ["initContainers", "containers"] {
            if let Some(cs) = spec.get_mut(list).and_then(|c| c.as_array_mut()) {
                for c in cs.iter_mut().filter_map(|c| c.as_object_mut()) {
                    let latest = c
                        .get("image")
                        .and_then(|i| i.as_str())
                        .is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
                    c.entry("imagePullPolicy").or_insert(json!(if latest {
                        "Always"
                    } else {
                        "IfNotPresent"
                    }));
                    c.entry("terminationMessagePath")
                        .or_insert(json!("/dev/termination-log"));
                    c.entry("terminationMessagePolicy").or_insert(json!("File"));
                }
            }
        }
    }
    pod
}

/// Create `pod` named `<prefix><5 random chars>` (another name if that one is taken).
pub fn create(store: &Store, ns: &str, prefix: &str, mut pod: Value) -> Result<Value, ApiError> {
    let mut last = None;
    for _ in 0..8 {
        let name = format!("{prefix}{}", random_suffix());
        let m = meta::metadata_mut(&mut pod);
        m.insert("name".into(), json!(name));
        m.insert("generateName".into(), json!(prefix));
        let obj = pod.clone();
        match store.write(PODS, ns, &name, |ctx| {
            if ctx.current.is_some() {
                return Err(ApiError::already_exists("", "pods", &name));
            }
            Ok(Op::Create(obj))
        }) {
            Ok(w) => return Ok((*w.stored.obj).clone()),
            Err(e) if e.code == 409 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(ApiError::no_such_path))
}

/// Delete the object `key/ns/name` if it is still the one with `uid`.
pub fn delete(store: &Store, key: &str, ns: &str, name: &str, uid: &str) {
    let _ = store.write(key, ns, name, |ctx| match ctx.current {
        Some(c) if meta::uid(&c.obj) == uid => Ok(Op::Delete),
        _ => Err(ApiError::no_such_path()),
    });
}

/// Replace the object's `status` with `status` if it is still the one with `uid` and the
/// status differs; returns whether it was written.
pub fn put_status(
    store: &Store,
    key: &str,
    ns: &str,
    name: &str,
    uid: &str,
    status: &Value,
) -> bool {
    store
        .write(key, ns, name, |ctx| match ctx.current {
            Some(c) if meta::uid(&c.obj) == uid && c.obj.get("status") != Some(status) => {
                let mut o = (*c.obj).clone();
                o["status"] = status.clone();
                Ok(Op::Replace(o))
            }
            _ => Err(ApiError::no_such_path()),
        })
        .is_ok()
}

/// Change the object (if it is still the one with `uid`) with `edit`; nothing is written
/// when `edit` leaves it as it was.
pub fn edit(
    store: &Store,
    key: &str,
    ns: &str,
    name: &str,
    uid: &str,
    edit: impl FnOnce(&mut Value),
) -> Option<Value> {
    store
        .write(key, ns, name, |ctx| match ctx.current {
            Some(c) if meta::uid(&c.obj) == uid => {
                let mut o = (*c.obj).clone();
                edit(&mut o);
                if o == *c.obj {
                    return Err(ApiError::no_such_path());
                }
                Ok(Op::Replace(o))
            }
            _ => Err(ApiError::no_such_path()),
        })
        .ok()
        .map(|w| (*w.stored.obj).clone())
}

/// Set condition `type` in `conditions` (a status's array), keeping its transition time when
/// its status did not change and its update time when nothing about it changed.
pub fn set_condition(
    conditions: &mut Vec<Value>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let same_as = |c: &Value, f: &str, v: &str| c.get(f).and_then(|x| x.as_str()) == Some(v);
    if let Some(c) = conditions.iter_mut().find(|c| same_as(c, "type", ty)) {
        if same_as(c, "status", status)
            && same_as(c, "reason", reason)
            && same_as(c, "message", message)
        {
            return;
        }
        if !same_as(c, "status", status) {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(status);
        c["reason"] = json!(reason);
        c["message"] = json!(message);
        if c.get("lastUpdateTime").is_some() {
            c["lastUpdateTime"] = json!(now);
        }
        return;
    }
    conditions.push(json!({
        "type": ty, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_read_labels_and_expressions() {
        let pod = json!({ "metadata": { "labels": { "app": "web", "tier": "front" } } });
        assert!(selects(
            Some(&json!({ "matchLabels": { "app": "web" } })),
            &pod
        ));
        assert!(!selects(
            Some(&json!({ "matchLabels": { "app": "db" } })),
            &pod
        ));
        assert!(selects(Some(&json!({})), &pod));
        assert!(!selects(None, &pod));
        let expr = json!({ "matchExpressions": [
            { "key": "tier", "operator": "In", "values": ["front", "back"] },
            { "key": "legacy", "operator": "DoesNotExist" },
        ] });
        assert!(selects(Some(&expr), &pod));
        let expr = json!({ "matchExpressions": [ { "key": "tier", "operator": "NotIn", "values": ["front"] } ] });
        assert!(!selects(Some(&expr), &pod));
    }

    #[test]
    fn names_use_the_api_servers_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHANUMS.contains(&b)), "{s}");
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(safe_encode("0123"), "4567");
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = Utc::now();
        let since = (now - chrono::Duration::seconds(5)).to_rfc3339();
        let pod = json!({ "status": { "conditions": [
            { "type": "Ready", "status": "True", "lastTransitionTime": since }
        ] } });
        assert!(ready(&pod));
        assert!(available(&pod, 0, now));
        assert!(available(&pod, 5, now));
        assert!(!available(&pod, 10, now));
        assert!(!ready(&json!({ "status": { "phase": "Running" } })));
    }
}
