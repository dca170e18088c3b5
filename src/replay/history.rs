//! `history`: an object's observed versions, and exactly which fields changed between any two
//! of them, with the metadata the API server rewrites on every write left out.
//!
//! It owns those two questions and returns plain data; it must not print, parse flags, or
//! write the log.

use super::ReplayError;
use super::why::nanos;
use crate::log::{Filter, LogReader};
use crate::record::{Body, Change, EntryKind, ObjKey};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeSet, VecDeque};

/// One observed version of an object.
#[derive(Clone, Debug, Serialize)]
pub struct Version {
    /// The event's seq.
    pub seq: u64,
    /// When it was recorded.
    pub at: String,
    /// `upsert` or `delete`.
    pub change: &'static str,
    /// The object's resourceVersion.
    pub resource_version: String,
    /// The object's apiVersion.
    pub api_version: String,
    /// Vanished while the watch was down.
    pub synthesized: bool,
}

/// An object's versions, the newest [`Versions::shown`] of them.
#[derive(Clone, Debug, Serialize)]
pub struct Versions {
    /// The object, `KIND/NAMESPACE/NAME`.
    pub object: String,
    /// How many versions the log holds.
    pub total: u64,
    /// The newest ones (up to the limit asked for), oldest first.
    pub shown: Vec<Version>,
}

/// One field that differs between two versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// The field, dotted (`spec.template.spec.containers[0].image`).
    pub path: String,
    /// Its value in the first version (`None`: absent).
    pub from: Option<Value>,
    /// Its value in the second version (`None`: absent).
    pub to: Option<Value>,
}

/// The metadata left out of a diff (the API server changes it on every write).
pub const NOISE: &[&str] = &[
    "resourceVersion",
    "generation",
    "managedFields",
    "creationTimestamp",
    "deletionTimestamp",
    "uid",
];

/// The observed versions of `key`, the newest `limit` of them (events read as stored, through
/// the object's audit key). An object the log never observed is [`ReplayError::Unknown`].
pub fn versions(reader: &LogReader, key: &ObjKey, limit: usize) -> Result<Versions, ReplayError> {
    let filter = Filter::new()
        .object(key)
        .kinds(&[EntryKind::Event])
        .as_stored();
    let mut shown = VecDeque::new();
    let mut total = 0;
    for e in reader.query(&filter) {
        let e = e?;
        if let Body::Event(ev) = &e.body {
            total += 1;
            shown.push_back(Version {
                seq: e.seq,
                at: nanos(e.at),
                change: match ev.change {
                    Change::Upsert => "upsert",
                    Change::Delete => "delete",
                },
                resource_version: ev.resource_version.clone(),
                api_version: ev.api_version.clone(),
                synthesized: ev.synthesized,
            });
            if shown.len() > limit {
                shown.pop_front();
            }
        }
    }
    if total == 0 {
        return Err(ReplayError::Unknown {
            path: reader.path().to_path_buf(),
            what: format!("{key} (no observation of it is recorded)"),
        });
    }
    Ok(Versions {
        object: key.to_string(),
        total,
        shown: shown.into(),
    })
}

/// The version of `key` recorded by event `seq`, whole, without [`NOISE`] (`Null` for a
/// delete). An entry that is not an observation of `key` is [`ReplayError::Unknown`].
pub fn version(reader: &LogReader, key: &ObjKey, seq: u64) -> Result<Value, ReplayError> {
    super::check_within(reader, super::Point::Seq(seq))?;
    let not_one = || ReplayError::Unknown {
        path: reader.path().to_path_buf(),
        what: format!(
            "a version of {key} at entry {seq} (that entry is not an observation of it; pick one from the object's versions)"
        ),
    };
    let entry = reader.get(seq)?.ok_or_else(not_one)?;
    let Body::Event(ev) = &entry.body else {
        return Err(not_one());
    };
    if &ev.key != key {
        return Err(not_one());
    }
    let object = match &ev.object {
        Some(o) => o.parse().map_err(|e| {
            ReplayError::Log(crate::log::LogError::corrupt_entry(
                reader.path(),
                seq,
                format!("its object is not JSON: {e}"),
            ))
        })?,
        None => Value::Null,
    };
    Ok(quiet(object))
}

/// The fields that differ between the versions of `key` recorded by events `a` and `b`, in
/// path order, [`NOISE`] left out.
pub fn diff_versions(
    reader: &LogReader,
    key: &ObjKey,
    a: u64,
    b: u64,
) -> Result<Vec<FieldChange>, ReplayError> {
    let before = version(reader, key, a)?;
    let after = version(reader, key, b)?;
    let mut out = Vec::new();
    changes(&before, &after, "", &mut out);
    Ok(out)
}

/// `v` without [`NOISE`] in its metadata.
pub fn quiet(v: Value) -> Value {
    without_metadata(v, NOISE)
}

/// `v` without the metadata fields `keys`.
pub fn without_metadata(mut v: Value, keys: &[&str]) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in keys {
            meta.remove(*k);
        }
    }
    v
}

/// The leaves that differ between `a` and `b` under `path` (arrays of different lengths are
/// one change).
pub fn changes(a: &Value, b: &Value, path: &str, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => changes(u, v, &p, out),
                    (u, v) => out.push(FieldChange {
                        path: p,
                        from: u.cloned(),
                        to: v.cloned(),
                    }),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                changes(u, v, &format!("{path}[{i}]"), out);
            }
        }
        (u, v) if u != v => out.push(FieldChange {
            path: if path.is_empty() {
                "object".into()
            } else {
                path.to_string()
            },
            from: Some(u.clone()),
            to: Some(v.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_exactly_the_fields_that_differ() {
        let a = json!({"metadata": {"name": "web", "labels": {"a": "1"}},
                       "spec": {"replicas": 1, "template": {"containers": [{"image": "x:1"}]}}});
        let b = json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}},
                       "spec": {"replicas": 3, "template": {"containers": [{"image": "x:1"}]}}});
        let mut out = Vec::new();
        changes(&a, &b, "", &mut out);
        let paths: Vec<&str> = out.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["metadata.labels.b", "spec.replicas"]);
        assert_eq!(out[0].from, None);
        assert_eq!(out[0].to, Some(json!("2")));
        assert_eq!(out[1].from, Some(json!(1)));
    }

    #[test]
    fn noise_is_left_out() {
        let a = quiet(
            json!({"metadata": {"name": "web", "resourceVersion": "1", "uid": "u",
                             "managedFields": [], "generation": 1, "creationTimestamp": "t"}}),
        );
        assert_eq!(a, json!({"metadata": {"name": "web"}}));
    }
}
