//! Conversion between a resource's stored form and the form a view of it serves: the one
//! object behind both `v1` Events and `events.k8s.io/v1` Events, mapped field by field as
//! `k8s.io/kubernetes/pkg/apis/events/v1/conversion.go` does (`note`↔`message`,
//! `regarding`↔`involvedObject`, `reportingController`↔`reportingComponent`,
//! `deprecatedSource`↔`source`, `deprecatedCount`↔`count`,
//! `deprecatedFirstTimestamp`↔`firstTimestamp`, `deprecatedLastTimestamp`↔`lastTimestamp`; the
//! rest keep their names). Owns the mapping and the field selectors of the views; it must not
//! store or validate anything.

use serde_json::{Map, Value};

use super::resources::ResourceType;

/// Field names of `events.k8s.io/v1` and their core `v1` counterparts.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
];

/// How a resource's objects differ from the stored ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Served as stored.
    Same,
    /// `events.k8s.io/v1` Events over core `v1` Events.
    EventsV1,
}

/// The view a resource is.
pub fn view(t: &ResourceType) -> View {
    match (t.stored_as.as_deref(), t.group.as_str(), t.plural.as_str()) {
        (Some("/events"), "events.k8s.io", "events") => View::EventsV1,
        _ => View::Same,
    }
}

fn rename(obj: &Value, from_to: impl Iterator<Item = (&'static str, &'static str)>) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::with_capacity(map.len());
    let pairs: Vec<(&str, &str)> = from_to.collect();
    for (k, v) in map {
        let name = pairs
            .iter()
            .find(|(from, _)| *from == k)
            .map(|(_, to)| (*to).to_string())
            .unwrap_or_else(|| k.clone());
        // A field of the other form only (a core `message` sent as events.k8s.io) has no
        // place in this one: the real decoder drops unknown fields.
        if pairs.iter().any(|(_, to)| *to == k) {
            continue;
        }
        out.insert(name, v.clone());
    }
    Value::Object(out)
}

/// An object of the view `t`, as it is stored (with the stored resource's apiVersion).
pub fn to_stored(t: &ResourceType, obj: &Value) -> Value {
    match view(t) {
        View::Same => obj.clone(),
        View::EventsV1 => {
            let mut out = rename(obj, EVENT_FIELDS.iter().copied());
            if let Some(m) = out.as_object_mut() {
                m.insert("apiVersion".into(), Value::String("v1".into()));
            }
            out
        }
    }
}

/// A stored object as the view `t` at `api_version` serves it.
pub fn to_served(t: &ResourceType, api_version: &str, obj: &Value) -> Value {
    let mut out = match view(t) {
        View::Same => obj.clone(),
        View::EventsV1 => rename(obj, EVENT_FIELDS.iter().map(|(a, b)| (*b, *a))),
    };
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version.to_string()));
        m.insert("kind".into(), Value::String(t.kind.clone()));
    }
    out
}

/// Whether a stored object must be rewritten to be served by `t` at `api_version`.
pub fn needs_conversion(t: &ResourceType, api_version: &str, stored: &Value) -> bool {
    view(t) != View::Same || stored.get("apiVersion").and_then(Value::as_str) != Some(api_version)
}

/// The field selector labels a resource accepts beyond `metadata.name` and
/// `metadata.namespace`, each with where its value is in the stored object (as the real
/// server's `AddFieldLabelConversionsForEvent` and `ToSelectableFields`).
pub fn field_labels(t: &ResourceType) -> &'static [(&'static str, &'static str)] {
    const CORE_EVENTS: &[(&str, &str)] = &[
        ("involvedObject.kind", "/involvedObject/kind"),
        ("involvedObject.namespace", "/involvedObject/namespace"),
        ("involvedObject.name", "/involvedObject/name"),
        ("involvedObject.uid", "/involvedObject/uid"),
        ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
        (
            "involvedObject.resourceVersion",
            "/involvedObject/resourceVersion",
        ),
        ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
        ("reason", "/reason"),
        ("reportingComponent", "/reportingComponent"),
        ("source", "/source/component"),
        ("type", "/type"),
    ];
    const EVENTS_V1: &[(&str, &str)] = &[
        ("regarding.kind", "/involvedObject/kind"),
        ("regarding.namespace", "/involvedObject/namespace"),
        ("regarding.name", "/involvedObject/name"),
        ("regarding.uid", "/involvedObject/uid"),
        ("regarding.apiVersion", "/involvedObject/apiVersion"),
        (
            "regarding.resourceVersion",
            "/involvedObject/resourceVersion",
        ),
        ("regarding.fieldPath", "/involvedObject/fieldPath"),
        ("reason", "/reason"),
        ("reportingController", "/reportingComponent"),
        ("source", "/source/component"),
        ("type", "/type"),
    ];
    match (view(t), t.group.as_str(), t.kind.as_str()) {
        (View::EventsV1, _, _) => EVENTS_V1,
        (View::Same, "", "Event") => CORE_EVENTS,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::resources::Registry;
    use serde_json::json;

    #[test]
    fn one_event_through_both_groups() {
        let reg = Registry::with_builtins();
        let v1 = reg.find("events.k8s.io", "v1", "events").expect("served");
        let core = reg.find("", "v1", "events").expect("served");
        assert_eq!(v1.key(), core.key());
        let sent = json!({"metadata": {"name": "web.1"}, "note": "created", "eventTime": "t",
            "regarding": {"kind": "Application", "name": "web"}, "reportingController": "c",
            "reportingInstance": "i", "action": "Create", "reason": "Created", "type": "Normal",
            "deprecatedCount": 2, "series": {"count": 2}});
        let stored = to_stored(&v1, &sent);
        assert_eq!(stored["message"], "created");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["reportingComponent"], "c");
        assert_eq!(stored["count"], 2);
        assert_eq!(stored["reportingInstance"], "i");
        assert!(stored.get("note").is_none());
        let core_view = to_served(&core, "v1", &stored);
        assert_eq!(core_view["apiVersion"], "v1");
        let back = to_served(&v1, "events.k8s.io/v1", &stored);
        assert_eq!(back["note"], "created");
        assert_eq!(back["regarding"]["kind"], "Application");
        assert_eq!(back["series"]["count"], 2);
        assert!(back.get("message").is_none());
    }
}
