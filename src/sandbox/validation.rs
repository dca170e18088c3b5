//! Validation of built-in kinds the API server checks beyond names, as
//! `k8s.io/kubernetes/pkg/apis/{core,coordination}/validation` does: Events (core `v1` and
//! `events.k8s.io/v1`) and Leases. Owns these rules; it must not store or default anything.
//!
//! Field paths and messages are the real server's (its internal field names, as it reports
//! them: `involvedObject`, `message`, `firstTimestamp`).

use serde_json::Value;

use super::meta;

/// The API server's limits for Events.
const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

fn s<'a>(obj: &'a Value, path: &str) -> &'a str {
    obj.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn set(obj: &Value, path: &str) -> bool {
    obj.pointer(path).is_some_and(|v| !v.is_null())
}

/// Why `value` is not a qualified name (`[prefix/]name`), if it is not.
fn check_qualified_name(value: &str) -> Option<String> {
    let (prefix, name) = match value.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        return Some(format!(
            "Invalid value: \"{value}\": name part must consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character (e.g. \
             'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ));
    }
    if let Some(p) = prefix
        && meta::check_subdomain(p).is_some()
    {
        return Some(format!(
            "Invalid value: \"{value}\": prefix part a lowercase RFC 1123 subdomain must \
             consist of lower case alphanumeric characters, '-' or '.', and must start and end \
             with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ));
    }
    None
}

/// The checks both Event APIs make (`legacyValidateEvent`). `v1_core` names the fields as
/// core `v1` does (`reportingComponent`, `involvedObject`, `message`); otherwise as
/// `events.k8s.io/v1` does (`reportingController`, `regarding`, `note`), while the paths in
/// the errors stay the server's internal ones.
fn legacy_event(obj: &Value, v1_core: bool, causes: &mut Vec<(String, String)>) {
    let (controller, controller_field, involved, message) = if v1_core {
        (
            s(obj, "/reportingComponent"),
            "reportingComponent",
            "/involvedObject/namespace",
            s(obj, "/message"),
        )
    } else {
        (
            s(obj, "/reportingController"),
            "reportingController",
            "/regarding/namespace",
            s(obj, "/note"),
        )
    };
    let ns = meta::namespace(obj);
    let involved_ns = s(obj, involved);
    if !set(obj, "/eventTime") {
        let matches = if involved_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == involved_ns
        };
        if !matches {
            causes.push((
                "involvedObject.namespace".into(),
                format!("Invalid value: \"{involved_ns}\": does not match event.namespace"),
            ));
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            causes.push((
                "involvedObject.namespace".into(),
                format!("Invalid value: \"{involved_ns}\": does not match event.namespace"),
            ));
        }
        if controller.is_empty() {
            causes.push((controller_field.into(), "Required value".into()));
        } else if let Some(why) = check_qualified_name(controller) {
            causes.push((controller_field.into(), why));
        }
        let instance = s(obj, "/reportingInstance");
        if instance.is_empty() {
            causes.push(("reportingInstance".into(), "Required value".into()));
        }
        if instance.len() > REPORTING_INSTANCE_LIMIT {
            causes.push((
                "reportingInstance".into(),
                format!(
                    "Invalid value: \"\": can have at most {REPORTING_INSTANCE_LIMIT} characters"
                ),
            ));
        }
        let action = s(obj, "/action");
        if action.is_empty() {
            causes.push(("action".into(), "Required value".into()));
        }
        if action.len() > ACTION_LIMIT {
            causes.push((
                "action".into(),
                format!("Invalid value: \"\": can have at most {ACTION_LIMIT} characters"),
            ));
        }
        let reason = s(obj, "/reason");
        if reason.is_empty() {
            causes.push(("reason".into(), "Required value".into()));
        }
        if reason.len() > REASON_LIMIT {
            causes.push((
                "reason".into(),
                format!("Invalid value: \"\": can have at most {REASON_LIMIT} characters"),
            ));
        }
        if message.len() > NOTE_LIMIT {
            causes.push((
                "message".into(),
                format!("Invalid value: \"\": can have at most {NOTE_LIMIT} characters"),
            ));
        }
    }
    if let Some(why) = meta::check_subdomain(ns) {
        causes.push(("namespace".into(), why));
    }
}

/// A core `v1` Event: the legacy checks only (for backwards compatibility).
pub fn core_event(obj: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    legacy_event(obj, true, &mut causes);
    causes
}

/// An `events.k8s.io/v1` Event: the legacy checks, then the strict ones of the new API.
pub fn events_v1_event(obj: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    legacy_event(obj, false, &mut causes);
    if let Some(series) = obj.get("series").filter(|v| !v.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            causes.push((
                "series.count".into(),
                "Invalid value: \"\": should be at least 2".into(),
            ));
        }
        if !set(series, "/lastObservedTime") {
            causes.push(("series.lastObservedTime".into(), "Required value".into()));
        }
    }
    if !set(obj, "/eventTime") {
        causes.push(("eventTime".into(), "Required value".into()));
    }
    let type_ = s(obj, "/type");
    if type_ != "Normal" && type_ != "Warning" {
        causes.push((
            "type".into(),
            format!("Invalid value: \"\": has invalid value: {type_}"),
        ));
    }
    for (field, path) in [
        ("firstTimestamp", "/deprecatedFirstTimestamp"),
        ("lastTimestamp", "/deprecatedLastTimestamp"),
    ] {
        if set(obj, path) {
            causes.push((
                field.into(),
                "Invalid value: \"\": needs to be unset".into(),
            ));
        }
    }
    if obj
        .get("deprecatedCount")
        .and_then(Value::as_i64)
        .is_some_and(|c| c != 0)
    {
        causes.push((
            "count".into(),
            "Invalid value: \"\": needs to be unset".into(),
        ));
    }
    if !s(obj, "/deprecatedSource/component").is_empty()
        || !s(obj, "/deprecatedSource/host").is_empty()
    {
        causes.push((
            "source".into(),
            "Invalid value: \"\": needs to be unset".into(),
        ));
    }
    causes
}

/// A `coordination.k8s.io/v1` Lease (`ValidateLeaseSpec`).
pub fn lease(obj: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let int = |path: &str| obj.pointer(path).and_then(Value::as_i64);
    if let Some(d) = int("/spec/leaseDurationSeconds")
        && d <= 0
    {
        causes.push((
            "spec.leaseDurationSeconds".into(),
            format!("Invalid value: {d}: must be greater than 0"),
        ));
    }
    if let Some(t) = int("/spec/leaseTransitions")
        && t < 0
    {
        causes.push((
            "spec.leaseTransitions".into(),
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
    let strategy = s(obj, "/spec/strategy");
    if !s(obj, "/spec/preferredHolder").is_empty() && strategy.is_empty() {
        causes.push((
            "spec.preferredHolder".into(),
            "Forbidden: may only be specified if `strategy` is defined".into(),
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good_v1() -> Value {
        json!({
            "metadata": {"name": "web.1", "namespace": "shop"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "type": "Normal", "reason": "Created", "action": "Create", "note": "created",
            "reportingController": "logbook.dev/controller", "reportingInstance": "a",
            "regarding": {"kind": "Application", "namespace": "shop", "name": "web"}
        })
    }

    #[test]
    fn a_complete_events_v1_event_passes() {
        assert_eq!(events_v1_event(&good_v1()), Vec::<(String, String)>::new());
    }

    #[test]
    fn events_v1_requires_what_the_server_requires() {
        let mut e = good_v1();
        if let Some(o) = e.as_object_mut() {
            o.remove("eventTime");
            o.remove("reportingController");
        }
        e["type"] = json!("Info");
        let fields: Vec<String> = events_v1_event(&e).into_iter().map(|(f, _)| f).collect();
        assert!(fields.contains(&"eventTime".to_string()), "{fields:?}");
        assert!(fields.contains(&"type".to_string()), "{fields:?}");
        let mut e = good_v1();
        e["reportingController"] = json!("not a/qualified name!");
        assert_eq!(events_v1_event(&e)[0].0, "reportingController");
        let mut e = good_v1();
        e["note"] = json!("x".repeat(1025));
        assert_eq!(events_v1_event(&e)[0].0, "message");
    }

    #[test]
    fn leases_need_a_positive_duration() {
        let l = json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
        let fields: Vec<String> = lease(&l).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            ["spec.leaseDurationSeconds", "spec.leaseTransitions"]
        );
        assert!(lease(&json!({"spec": {"leaseDurationSeconds": 15}})).is_empty());
    }
}
