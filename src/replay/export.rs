//! `export`: entries as JSON, one object per line, for jq and notebooks.

use crate::log::Entry;
use serde_json::{Value, json};

/// An entry as JSON: `seq`, `id`, `at`, `kind`, `keys`, `body` (embedded objects as JSON, not
/// text), `prev_hash` and `hash` (hex). The shape is stable: fields are only ever added.
pub fn entry_json(entry: &Entry) -> Value {
    let body = crate::bus::wire::body_json(&entry.body)
        .unwrap_or_else(|e| json!({"error": e.to_string()}));
    json!({
        "seq": entry.seq,
        "id": entry.id.to_string(),
        "at": entry.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "kind": entry.kind().to_string(),
        "keys": entry.keys,
        "body": body,
        "prev_hash": hex::encode(entry.prev_hash),
        "hash": hex::encode(entry.hash),
    })
}
