//! The subject scheme: one subject per entry kind, then the keys a subscriber filters by.
//!
//! - `logbook.events.<namespace>.<kind>.<name>`: observed changes;
//! - `logbook.plans.<reconciler>` and `logbook.markers.<marker>`: the rest of the log;
//! - `logbook.actions.<namespace>.<application>`: work for the executors;
//! - `logbook.outcomes.<namespace>.<application>`: what the executors report back.
//!
//! Actions about no one Application (a namespace's shared Ingress) use the application token
//! `_`, as do cluster-scoped objects for the namespace. Tokens are escaped so that a name with a
//! `.` (or a NATS wildcard) never changes the subject's shape.

use crate::record::ObjKey;
use crate::record::{Body, Entry};

/// Escapes one subject token: characters other than ASCII letters, digits, `-` and `_` become
/// `%XX`; an empty token becomes `_`.
pub fn token(s: &str) -> String {
    if s.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The namespace and application tokens of an action about `target` for `app`
/// (`namespace/name`, or none).
fn app_tokens(target: &ObjKey, app: Option<&str>) -> (String, String) {
    let name = app
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or_default();
    (token(&target.namespace), token(name))
}

/// `logbook.actions.<namespace>.<application>`.
pub fn action_subject(target: &ObjKey, app: Option<&str>) -> String {
    let (ns, app) = app_tokens(target, app);
    format!("logbook.actions.{ns}.{app}")
}

/// `logbook.outcomes.<namespace>.<application>`.
pub fn outcome_subject(target: &ObjKey, app: Option<&str>) -> String {
    let (ns, app) = app_tokens(target, app);
    format!("logbook.outcomes.{ns}.{app}")
}

/// The subject a log entry is published on by the controller's outbox.
pub fn entry_subject(entry: &Entry) -> String {
    match &entry.body {
        Body::Event(e) => format!(
            "logbook.events.{}.{}.{}",
            token(&e.key.namespace),
            token(&e.key.kind),
            token(&e.key.name)
        ),
        Body::Plan(p) => format!("logbook.plans.{}", token(&p.reconciler)),
        Body::Action(a) => action_subject(&a.action.target, a.action.app.as_deref()),
        Body::Outcome(_) => {
            let key = ObjKey::new(
                entry.keys.object_kind.as_deref().unwrap_or_default(),
                entry.keys.namespace.as_deref().unwrap_or_default(),
                entry.keys.object_name.as_deref().unwrap_or_default(),
            );
            outcome_subject(&key, entry.keys.application.as_deref())
        }
        Body::Marker(m) => format!(
            "logbook.markers.{}",
            serde_json::to_value(m.marker)
                .ok()
                .and_then(|v| v.as_str().map(token))
                .unwrap_or_else(|| "_".to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_change_the_subject_shape() {
        assert_eq!(token("shop"), "shop");
        assert_eq!(token(""), "_");
        assert_eq!(token("a.b*c>d e"), "a%2Eb%2Ac%3Ed%20e");
        let k = ObjKey::new("Deployment", "shop", "web");
        assert_eq!(
            action_subject(&k, Some("shop/web")),
            "logbook.actions.shop.web"
        );
        assert_eq!(action_subject(&k, None), "logbook.actions.shop._");
        assert_eq!(
            outcome_subject(&k, Some("shop/web")),
            "logbook.outcomes.shop.web"
        );
    }
}
