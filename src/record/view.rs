//! Views of an entry: its JSON (what `export`, `audit log -o json` and the bus show) and one
//! readable line (the trail `logbook dev` prints: event → plan → action → outcome). Pure.

use super::entry::{Body, Change, Entry, MarkerKind, Redrive};
use serde_json::{Value, json};

/// The JSON of a log record (embedded objects as JSON values, not text). A checkpoint's state
/// (megabytes of MessagePack) is shown as its size only: `"state": {"bytes": N}`. Fails only
/// when a record cannot be serialized, which names its kind.
pub fn body_json(body: &Body) -> Result<Value, String> {
    let mut value = match body {
        Body::Event(r) => serde_json::to_value(r),
        Body::Plan(r) => serde_json::to_value(r),
        Body::Action(r) => serde_json::to_value(r),
        Body::Outcome(r) => serde_json::to_value(r),
        Body::Marker(r) => match &r.state {
            None => serde_json::to_value(r),
            Some(state) => Ok(json!({
                "marker": r.marker,
                "detail": r.detail,
                "state": {"bytes": state.len()},
            })),
        },
    }
    .map_err(|e| format!("cannot encode a {}: {e}", body.kind()))?;
    let embedded = match body {
        Body::Event(e) => e.object.as_ref().map(|o| ("/object", o)),
        Body::Action(a) => a.action.object.as_ref().map(|o| ("/action/object", o)),
        _ => None,
    };
    if let Some((ptr, json)) = embedded
        && let (Some(slot), Ok(parsed)) = (value.pointer_mut(ptr), json.parse())
    {
        *slot = parsed;
    }
    Ok(value)
}

/// An entry as JSON: `seq`, `id`, `at`, `kind`, `keys`, `body` (embedded objects as JSON, not
/// text), `prev_hash` and `hash` (hex); and `delta` when the entry stores its object as a
/// patch: `{base_seq, patch (the JSON Patch as JSON), sha256}`. The body holds the object as
/// the entry was read: whole when read through the log's reader (which rebuilds it), absent
/// when read as stored. The shape is stable: fields are only ever added.
pub fn entry_json(entry: &Entry) -> Value {
    let body = body_json(&entry.body).unwrap_or_else(|e| json!({"error": e}));
    let mut value = json!({
        "seq": entry.seq,
        "id": entry.id.to_string(),
        "at": entry.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "kind": entry.kind().to_string(),
        "keys": entry.keys,
        "body": body,
        "prev_hash": hex::encode(entry.prev_hash),
        "hash": hex::encode(entry.hash),
    });
    if let (Some(delta), Some(map)) = (delta_json(entry), value.as_object_mut()) {
        map.insert("delta".into(), delta);
    }
    value
}

/// How the entry stores its object when it stores it as a patch: `{base_seq, patch (the JSON
/// Patch as JSON), sha256}`; `None` for an entry stored whole.
pub fn delta_json(entry: &Entry) -> Option<Value> {
    let d = entry.delta.as_ref()?;
    let patch = d
        .patch
        .parse()
        .unwrap_or_else(|_| Value::String(d.patch.as_str().to_string()));
    Some(json!({"base_seq": d.base_seq, "patch": patch, "sha256": d.sha256}))
}

/// The entry as one line: seq, kind, and what it says.
pub fn line(entry: &Entry) -> String {
    let what = match &entry.body {
        Body::Event(e) => {
            let change = match (e.change, e.synthesized) {
                (Change::Upsert, _) => "seen",
                (Change::Delete, false) => "deleted",
                (Change::Delete, true) => "gone (vanished while the watch was down)",
            };
            format!(
                "{} {} {change} at rv {}",
                e.key.kind,
                ns_name(&e.key.namespace, &e.key.name),
                e.resource_version
            )
        }
        Body::Plan(p) => {
            let scope = if p.scope.is_empty() {
                "the whole world".to_string()
            } else if p.scope.len() <= 3 {
                p.scope
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                format!("{} scopes", p.scope.len())
            };
            format!(
                "read the log up to {}, planned {}: {} action{}",
                p.upto_seq,
                scope,
                p.action_ids.len(),
                if p.action_ids.len() == 1 { "" } else { "s" }
            )
        }
        Body::Action(a) => format!(
            "{} {} {} ({}) [{}, plan {}]",
            a.action.verb,
            a.action.target.kind,
            ns_name(&a.action.target.namespace, &a.action.target.name),
            a.action.reason,
            a.action.id,
            a.plan_seq
        ),
        Body::Outcome(o) => {
            let target = match (&entry.keys.object_kind, &entry.keys.object_name) {
                (Some(k), Some(n)) => format!(
                    "{k} {}",
                    ns_name(entry.keys.namespace.as_deref().unwrap_or_default(), n)
                ),
                _ => "?".to_string(),
            };
            let result = serde_json::to_value(o.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut s = format!(
                "{result} {target} by {} (attempt {}) [{}]",
                o.executor, o.attempt, o.action_id
            );
            if !o.message.is_empty() && result != "applied" {
                s.push_str(&format!(": {}", o.message));
            }
            if o.retry {
                s.push_str(" (will retry)");
            }
            s
        }
        Body::Marker(m) if m.marker == MarkerKind::Checkpoint => {
            let d = &m.detail;
            let n = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
            let digest = d.get("digest").and_then(Value::as_str).unwrap_or("?");
            format!(
                "checkpoint of the world at entry {}: {} Applications, {} objects, {} actions \
                 pending; {} bytes, sha256 {}",
                n("uptoSeq"),
                n("applications"),
                n("objects"),
                n("pending"),
                m.state.as_ref().map_or(0, |s| s.len()),
                digest.get(..16).unwrap_or(digest)
            )
        }
        Body::Marker(m) => match Redrive::of(m) {
            Some(r) => format!(
                "redrive {} {}: action {} (seq {}) published again, attempt {}: no outcome by {}",
                entry.keys.object_kind.as_deref().unwrap_or("?"),
                ns_name(
                    entry.keys.namespace.as_deref().unwrap_or_default(),
                    entry.keys.object_name.as_deref().unwrap_or("?")
                ),
                r.action_id,
                r.action_seq,
                r.attempt,
                r.due
            ),
            None => {
                let kind = serde_json::to_value(m.marker)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                format!("{kind} {}", m.detail)
            }
        },
    };
    escape_controls(&format!(
        "{:>6} {:<8} {what}",
        entry.seq,
        entry.kind().to_string()
    ))
}

/// The text with every control character (CR, LF, ESC, ...) written as an escape (`\r`,
/// `\n`, `\u{1b}`), so that nothing an entry carries can start a line of its own or move
/// the cursor where the trail is printed.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn ns_name(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Keys, OutcomeRecord, OutcomeResult};
    use chrono::{DateTime, Utc};

    #[test]
    fn control_characters_never_reach_the_trail_raw() {
        let outcome = Body::Outcome(OutcomeRecord {
            action_id: "act-1\r\n    99 outcome  applied Deployment shop/web".into(),
            result: OutcomeResult::Failed,
            message: "bad\u{1b}[2Jthing".into(),
            executor: "ex\n1".into(),
            attempt: 1,
            resource_version: None,
            retry: false,
        });
        let entry = Entry {
            seq: 7,
            id: uuid::Uuid::nil(),
            at: DateTime::<Utc>::UNIX_EPOCH,
            keys: Keys::default(),
            body: outcome,
            delta: None,
            format: 1,
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let text = line(&entry);
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("act-1\\r\\n"), "{text}");
        assert!(text.contains("bad\\u{1b}[2Jthing"), "{text}");
        assert_eq!(escape_controls("plain ünïcødé"), "plain ünïcødé");
    }

    #[test]
    fn a_checkpoint_shows_its_summary_never_its_state() {
        let body = Body::Marker(crate::record::MarkerRecord {
            marker: MarkerKind::Checkpoint,
            detail: json!({"uptoSeq": 41, "applications": 3, "objects": 9, "pending": 1,
                "digest": "00112233445566778899aabbccddeeff"}),
            state: Some(vec![7u8; 5000].into()),
        });
        let value = body_json(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value["state"], json!({"bytes": 5000}));
        assert_eq!(value["marker"], json!("checkpoint"));
        assert_eq!(value["detail"]["uptoSeq"], json!(41));
        let entry = Entry {
            seq: 42,
            id: uuid::Uuid::nil(),
            at: DateTime::<Utc>::UNIX_EPOCH,
            keys: Keys::default(),
            body,
            delta: None,
            format: 1,
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let text = line(&entry);
        assert!(
            text.contains(
                "checkpoint of the world at entry 41: 3 Applications, 9 objects, 1 actions \
                 pending; 5000 bytes, sha256 0011223344556677"
            ),
            "{text}"
        );
    }
}
