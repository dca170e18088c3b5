//! One readable line per log entry: the trail `logbook dev` prints (event → plan → action →
//! outcome).

use crate::log::{Body, Change, Entry};

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
        Body::Marker(m) => {
            let kind = serde_json::to_value(m.marker)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{kind} {}", m.detail)
        }
    };
    format!("{:>6} {:<8} {what}", entry.seq, entry.kind().to_string())
}

fn ns_name(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}
