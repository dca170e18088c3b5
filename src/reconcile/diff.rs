//! Comparison of a desired object with an observed one, looking only at the fields logbook sets.
//!
//! Fields the API server adds (defaults, status, uid, ...) are ignored, so they never cause
//! re-applies; a field logbook sets that differs (a hand edit) is reported as drift, with its path.
//!
//! The rules, chosen to match how server-side apply merges:
//! - objects: every key of the desired object must be present in the actual one and covered by it;
//!   extra keys in the actual object are ignored (someone else owns them);
//! - lists of objects that all carry a `name` (containers, ports, env): keyed by name, the sets of
//!   names must be equal (an element logbook no longer sets is drift) and each element covered;
//! - any other list (Ingress rules, which Kubernetes treats as atomic): same length, element-wise;
//! - resource quantities (under `requests`/`limits`) compare by value (`0.5` equals `500m`),
//!   because the API server rewrites them to canonical form;
//! - scalars: equal;
//! - a container's `env`, `readinessProbe` and `livenessProbe` belong to logbook even when it
//!   sets none: present on the object but absent from the desired container is drift (an
//!   Application whose last env var or health check was removed). `resources` is not among them,
//!   because a LimitRange may add it on admission.

use super::quantity;
use serde_json::Value;

/// `Ok(())` when `actual` covers every field of `desired`; otherwise the path of the first
/// field that differs, e.g. `spec.template.spec.containers[app].image`.
pub fn covers(actual: &Value, desired: &Value) -> Result<(), String> {
    let mut path = String::new();
    if walk(actual, desired, &mut path, false) {
        Ok(())
    } else {
        Err(if path.is_empty() { ".".into() } else { path })
    }
}

fn walk(actual: &Value, desired: &Value, path: &mut String, quantities: bool) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => {
            if d.contains_key("image") {
                for k in OWNED_WHEN_ABSENT {
                    if !d.contains_key(*k) && a.get(*k).is_some_and(|v| !is_empty(v)) {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(k);
                        return false;
                    }
                }
            }
            for (k, dv) in d {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let q = quantities || k == "requests" || k == "limits";
                let ok = match a.get(k) {
                    Some(av) => walk(av, dv, path, q),
                    None => is_empty(dv),
                };
                if !ok {
                    return false;
                }
                path.truncate(len);
            }
            true
        }
        (Value::Array(d), Value::Array(a)) => {
            if let (Some(dn), Some(an)) = (names(d), names(a)) {
                if dn.len() != an.len() || dn.iter().zip(&an).any(|(x, y)| x.0 != y.0) {
                    path.push_str("[*]");
                    return false;
                }
                for ((name, dv), (_, av)) in dn.iter().zip(&an) {
                    let len = path.len();
                    path.push_str(&format!("[{name}]"));
                    if !walk(av, dv, path, false) {
                        return false;
                    }
                    path.truncate(len);
                }
                return true;
            }
            if d.len() != a.len() {
                path.push_str("[*]");
                return false;
            }
            for (i, (dv, av)) in d.iter().zip(a).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if !walk(av, dv, path, false) {
                    return false;
                }
                path.truncate(len);
            }
            true
        }
        (Value::Object(d), _) if quantities => {
            // a map of quantities compared against something that is not a map
            d.is_empty()
        }
        (Value::String(d), Value::String(a)) if quantities => {
            d == a
                || matches!((quantity::parse(d), quantity::parse(a)), (Some(x), Some(y)) if x == y)
        }
        (Value::Number(d), Value::Number(a)) => {
            d == a || matches!((d.as_f64(), a.as_f64()), (Some(x), Some(y)) if x == y)
        }
        (d, a) => d == a || (is_empty(d) && is_empty(a)),
    }
}

/// Fields of a container (an object with an `image`) that logbook owns even when it does not
/// set them: the API server never adds them on its own.
const OWNED_WHEN_ABSENT: &[&str] = &["env", "readinessProbe", "livenessProbe"];

/// Elements keyed by `name`, sorted, when every element is an object with a string `name`.
fn names(list: &[Value]) -> Option<Vec<(&str, &Value)>> {
    if list.is_empty() {
        return None;
    }
    let mut out: Vec<(&str, &Value)> = list
        .iter()
        .map(|v| v.get("name").and_then(Value::as_str).map(|n| (n, v)))
        .collect::<Option<_>>()?;
    out.sort_by(|a, b| a.0.cmp(b.0));
    Some(out)
}

/// Null, empty string, empty list and empty map: what the API server drops on write.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_fields_in_actual_are_ignored() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"name": "http", "port": 80}]}});
        let actual = json!({"spec": {"replicas": 2, "clusterIP": "10.0.0.1",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}, "status": {}});
        assert_eq!(covers(&actual, &desired), Ok(()));
    }

    #[test]
    fn drift_names_the_path() {
        let desired = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}}});
        let actual = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}}});
        assert_eq!(
            covers(&actual, &desired),
            Err("spec.template.spec.containers[app].image".into())
        );
    }

    #[test]
    fn keyed_lists_must_have_the_same_names() {
        let desired = json!({"env": [{"name": "A", "value": "1"}]});
        let actual = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        assert_eq!(covers(&actual, &desired), Err("env[*]".into()));
    }

    #[test]
    fn keyed_lists_ignore_order() {
        let desired = json!({"env": [{"name": "A"}, {"name": "B"}]});
        let actual = json!({"env": [{"name": "B"}, {"name": "A"}]});
        assert_eq!(covers(&actual, &desired), Ok(()));
    }

    #[test]
    fn atomic_lists_compare_by_position() {
        let desired = json!({"rules": [{"host": "a"}, {"host": "b"}]});
        assert!(covers(&json!({"rules": [{"host": "b"}, {"host": "a"}]}), &desired).is_err());
        assert!(covers(&json!({"rules": [{"host": "a"}]}), &desired).is_err());
        assert!(covers(&json!({"rules": [{"host": "a"}, {"host": "b"}]}), &desired).is_ok());
    }

    #[test]
    fn quantities_compare_by_value() {
        let desired = json!({"resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}}});
        let actual = json!({"resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}});
        assert_eq!(covers(&actual, &desired), Ok(()));
        let other = json!({"resources": {"limits": {"cpu": "501m", "memory": "1Gi"}}});
        assert!(covers(&other, &desired).is_err());
    }

    #[test]
    fn env_and_probes_left_on_a_container_are_drift() {
        let desired = json!({"containers": [{"name": "app", "image": "a:1"}]});
        let with = |k: &str, v: Value| {
            let mut c = json!({"name": "app", "image": "a:1", "imagePullPolicy": "IfNotPresent"});
            c[k] = v;
            json!({"containers": [c]})
        };
        assert_eq!(
            covers(&with("env", json!([{"name": "A", "value": "1"}])), &desired),
            Err("containers[app].env".into())
        );
        assert_eq!(
            covers(
                &with("readinessProbe", json!({"httpGet": {"path": "/"}})),
                &desired
            ),
            Err("containers[app].readinessProbe".into())
        );
        assert!(covers(&with("livenessProbe", json!({"tcpSocket": {}})), &desired).is_err());
        // Defaults and what others own stay ignored; an empty env is no env.
        assert!(covers(&with("env", json!([])), &desired).is_ok());
        assert!(
            covers(
                &with("resources", json!({"limits": {"cpu": "1"}})),
                &desired
            )
            .is_ok()
        );
    }

    #[test]
    fn missing_field_is_drift_unless_empty() {
        assert!(covers(&json!({}), &json!({"a": 1})).is_err());
        assert!(covers(&json!({}), &json!({"a": []})).is_ok());
    }
}
