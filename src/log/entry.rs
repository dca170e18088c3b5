//! Entry types: what an entry says (kind, audit keys, body) and how its payload is encoded.
//! Owns the payload codec (MessagePack, format 1); knows nothing of SQLite, hashing or files.

use crate::reconcile::Action;
use crate::world::ObjKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The payload format this build writes, and the newest it decodes.
pub const PAYLOAD_FORMAT: u16 = 1;

/// The namespace of logbook's content-derived ids: [`content_uuid`] derives each tag's own
/// namespace from it, so ids of different tags never collide.
pub const LOGBOOK_UUID_NAMESPACE: Uuid = Uuid::from_u128(0x6c6f_6762_6f6f_4b00_8000_6c6f_6762_6f6f);

/// A UUID v5 derived from content: the same `(tag, bytes)` always gives the same id.
///
/// `tag` separates kinds of content (e.g. `"event"`, `"outcome"`), `bytes` is the content that
/// makes the id unique (e.g. an object's uid and resourceVersion).
pub fn content_uuid(tag: &str, bytes: &[u8]) -> Uuid {
    let namespace = Uuid::new_v5(&LOGBOOK_UUID_NAMESPACE, tag.as_bytes());
    Uuid::new_v5(&namespace, bytes)
}

/// The five kinds of entry, stored as lowercase text in the `kind` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// An observed change of a Kubernetes object.
    Event,
    /// A plan: which log prefix it read and the actions it produced.
    Plan,
    /// One action of a plan.
    Action,
    /// What an executor reported for an action.
    Outcome,
    /// A milestone of the controller: start, stop, configuration, leadership.
    Marker,
}

impl EntryKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Event,
        EntryKind::Plan,
        EntryKind::Action,
        EntryKind::Outcome,
        EntryKind::Marker,
    ];

    /// The kind's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Event => "event",
            EntryKind::Plan => "plan",
            EntryKind::Action => "action",
            EntryKind::Outcome => "outcome",
            EntryKind::Marker => "marker",
        }
    }

    /// Parses a stored kind name.
    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The keys audits search by. `None` means "not about one"; empty strings are stored as `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Keys {
    /// The namespace the entry is about.
    pub namespace: Option<String>,
    /// The Application (`namespace/name`) the entry is about.
    pub application: Option<String>,
    /// The kind of the object the entry is about.
    pub object_kind: Option<String>,
    /// The name of the object the entry is about.
    pub object_name: Option<String>,
}

impl Keys {
    /// Keys for an object, and the Application it belongs to if any.
    pub fn for_object(key: &ObjKey, application: Option<&str>) -> Keys {
        Keys {
            namespace: non_empty(&key.namespace),
            application: application.and_then(non_empty),
            object_kind: non_empty(&key.kind),
            object_name: non_empty(&key.name),
        }
        .normalized()
    }

    /// The same keys with empty strings turned into `None` (the way they are stored).
    pub fn normalized(self) -> Keys {
        fn norm(v: Option<String>) -> Option<String> {
            v.filter(|s| !s.is_empty())
        }
        Keys {
            namespace: norm(self.namespace),
            application: norm(self.application),
            object_kind: norm(self.object_kind),
            object_name: norm(self.object_name),
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

/// Whether an observed object appeared/changed or went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The object was created or changed; `object` holds it as observed.
    Upsert,
    /// The object was deleted.
    Delete,
}

/// An observed change of a Kubernetes object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedEvent {
    /// Upsert or delete.
    pub change: Change,
    /// The object's kind, namespace and name.
    pub key: ObjKey,
    /// The object's `apiVersion`.
    pub api_version: String,
    /// The object's uid.
    pub uid: String,
    /// The object's resourceVersion when observed (for a delete: the last one known).
    pub resource_version: String,
    /// The object as observed (managedFields dropped, Secret data never stored); `None` for a
    /// delete.
    pub object: Option<serde_json::Value>,
    /// True when no watch event was seen: the object vanished while the watch was down.
    pub synthesized: bool,
}

/// A plan: what the planner read, who it was, and what it asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The plan was computed from entries `1..=upto_seq`.
    pub upto_seq: u64,
    /// The controller's version.
    pub controller_version: String,
    /// The reconciler that planned (e.g. `application`).
    pub reconciler: String,
    /// What was replanned.
    pub scope: Vec<ObjKey>,
    /// The ids of the actions produced, in order (each follows as an Action entry).
    pub action_ids: Vec<String>,
    /// Digest of the configuration the planner ran with.
    pub config_digest: String,
}

/// One action of a plan, with the plan's seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The seq of the Plan entry that produced the action.
    pub plan_seq: u64,
    /// The action.
    pub action: Action,
}

/// What became of one attempt at an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeResult {
    /// The change was made.
    Applied,
    /// Nothing needed changing.
    NoOp,
    /// The object already carries a newer plan's change; this older action was skipped.
    Superseded,
    /// The API server refused because of a conflict (e.g. the uid precondition).
    Conflict,
    /// The attempt failed; it may be retried.
    Failed,
    /// Given up after the maximum number of deliveries.
    Abandoned,
}

/// What an executor reported for one attempt at an action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// The action's id.
    pub action_id: String,
    /// What became of it.
    pub result: OutcomeResult,
    /// A human-readable explanation.
    pub message: String,
    /// Which executor made the attempt.
    pub executor: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The object's resourceVersion after the attempt, when known.
    pub resource_version: Option<String>,
}

/// Which milestone a marker records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkerKind {
    /// A controller started.
    Start,
    /// A controller stopped cleanly.
    Stop,
    /// The configuration in effect (from here on).
    Config,
    /// Leadership was acquired or lost.
    Leadership,
}

/// A milestone of the controller, with free-form detail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkerRecord {
    /// Which milestone.
    pub marker: MarkerKind,
    /// Detail (version, configuration, holder identity, ...).
    pub detail: serde_json::Value,
}

/// What an entry says; its variant is the entry's kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// An observed object change.
    Event(ObservedEvent),
    /// A plan.
    Plan(PlanRecord),
    /// An action of a plan.
    Action(ActionRecord),
    /// An executor's outcome.
    Outcome(OutcomeRecord),
    /// A controller milestone.
    Marker(MarkerRecord),
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Body {
    /// The entry kind this body makes.
    pub fn kind(&self) -> EntryKind {
        match self {
            Body::Event(_) => EntryKind::Event,
            Body::Plan(_) => EntryKind::Plan,
            Body::Action(_) => EntryKind::Action,
            Body::Outcome(_) => EntryKind::Outcome,
            Body::Marker(_) => EntryKind::Marker,
        }
    }

    /// The payload in format [`PAYLOAD_FORMAT`]: the record as a MessagePack map with field names
    /// (self-describing, so JSON values inside round-trip), without a variant tag (the kind
    /// column says which record it is).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let encoded = match self {
            Body::Event(r) => rmp_serde::to_vec_named(r),
            Body::Plan(r) => rmp_serde::to_vec_named(r),
            Body::Action(r) => rmp_serde::to_vec_named(r),
            Body::Outcome(r) => rmp_serde::to_vec_named(r),
            Body::Marker(r) => rmp_serde::to_vec_named(r),
        };
        encoded.map_err(|e| {
            CodecError(format!(
                "cannot encode the {} payload as MessagePack: {e}",
                self.kind()
            ))
        })
    }

    /// Decodes a payload of `kind` written in `format`.
    pub fn decode(kind: EntryKind, format: u16, payload: &[u8]) -> Result<Body, CodecError> {
        if format != PAYLOAD_FORMAT {
            return Err(CodecError(format!(
                "payload format {format} is not one this build decodes (it decodes {PAYLOAD_FORMAT})"
            )));
        }
        fn de<T: serde::de::DeserializeOwned>(
            kind: EntryKind,
            payload: &[u8],
        ) -> Result<T, CodecError> {
            rmp_serde::from_slice(payload).map_err(|e| {
                CodecError(format!(
                    "the {kind} payload is not valid MessagePack for a {kind} record: {e}"
                ))
            })
        }
        Ok(match kind {
            EntryKind::Event => Body::Event(de(kind, payload)?),
            EntryKind::Plan => Body::Plan(de(kind, payload)?),
            EntryKind::Action => Body::Action(de(kind, payload)?),
            EntryKind::Outcome => Body::Outcome(de(kind, payload)?),
            EntryKind::Marker => Body::Marker(de(kind, payload)?),
        })
    }
}

/// An entry to append. Its kind is its body's; the log assigns seq and hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    /// The entry's id, derived from content by the caller (see [`content_uuid`]); appending an id
    /// that is already in the log is a no-op that reports the existing seq.
    pub id: Uuid,
    /// When it happened (UTC, nanosecond precision, 1677-09-21 to 2262-04-11).
    pub at: DateTime<Utc>,
    /// The keys audits search by.
    pub keys: Keys,
    /// What it says.
    pub body: Body,
}

impl NewEntry {
    /// An entry from its parts.
    pub fn new(id: Uuid, at: DateTime<Utc>, keys: Keys, body: Body) -> NewEntry {
        NewEntry { id, at, keys, body }
    }

    /// An Event entry keyed by the observed object and its Application (`namespace/name`).
    pub fn event(
        id: Uuid,
        at: DateTime<Utc>,
        event: ObservedEvent,
        application: Option<&str>,
    ) -> NewEntry {
        let keys = Keys::for_object(&event.key, application);
        NewEntry::new(id, at, keys, Body::Event(event))
    }

    /// A Plan entry (not about one object: no keys).
    pub fn plan(id: Uuid, at: DateTime<Utc>, plan: PlanRecord) -> NewEntry {
        NewEntry::new(id, at, Keys::default(), Body::Plan(plan))
    }

    /// An Action entry keyed by the action's target and Application.
    pub fn action(id: Uuid, at: DateTime<Utc>, plan_seq: u64, action: Action) -> NewEntry {
        let keys = Keys::for_object(&action.target, action.app.as_deref());
        NewEntry::new(
            id,
            at,
            keys,
            Body::Action(ActionRecord { plan_seq, action }),
        )
    }

    /// An Outcome entry, keyed like the action it reports on (see [`Keys::for_object`]).
    pub fn outcome(id: Uuid, at: DateTime<Utc>, keys: Keys, outcome: OutcomeRecord) -> NewEntry {
        NewEntry::new(id, at, keys, Body::Outcome(outcome))
    }

    /// A Marker entry (no keys).
    pub fn marker(
        id: Uuid,
        at: DateTime<Utc>,
        marker: MarkerKind,
        detail: serde_json::Value,
    ) -> NewEntry {
        NewEntry::new(
            id,
            at,
            Keys::default(),
            Body::Marker(MarkerRecord { marker, detail }),
        )
    }

    /// The entry's kind.
    pub fn kind(&self) -> EntryKind {
        self.body.kind()
    }
}

/// An entry as stored: its place in the log, its content, and its link in the hash chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// The entry's id.
    pub id: Uuid,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The keys audits search by.
    pub keys: Keys,
    /// What it says.
    pub body: Body,
    /// The payload format it was stored in.
    pub format: u16,
    /// The hash of the entry before it (32 zero bytes for entry 1).
    pub prev_hash: [u8; 32],
    /// This entry's hash (see `schema/entries.md`).
    pub hash: [u8; 32],
}

impl Entry {
    /// The entry's kind.
    pub fn kind(&self) -> EntryKind {
        self.body.kind()
    }

    /// The entry's hash in lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// What `append` did with one entry of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The entry was appended at `seq`.
    Added {
        /// Its seq.
        seq: u64,
        /// Its id.
        id: Uuid,
    },
    /// An entry with this id was already in the log, at `seq`; nothing was written.
    AlreadyPresent {
        /// The seq of the entry already there.
        seq: u64,
        /// The id.
        id: Uuid,
    },
}

impl Appended {
    /// The seq the entry has in the log (new or existing).
    pub fn seq(&self) -> u64 {
        match self {
            Appended::Added { seq, .. } | Appended::AlreadyPresent { seq, .. } => *seq,
        }
    }

    /// The entry's id.
    pub fn id(&self) -> Uuid {
        match self {
            Appended::Added { id, .. } | Appended::AlreadyPresent { id, .. } => *id,
        }
    }

    /// Whether this append wrote the entry.
    pub fn is_new(&self) -> bool {
        matches!(self, Appended::Added { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_round_trip_through_the_payload() {
        let tricky = json!({
            "null": null, "t": true, "f": false, "u": u64::MAX, "i": i64::MIN, "neg": -1, "zero": 0,
            "float": 1.5e-300, "pi": std::f64::consts::PI, "s": "ünïcødé ✓", "empty_s": "",
            "arr": [null, [], {}, [1, [2, [3]]], {"a": {"b": {"c": null}}}], "obj": {}
        });
        for detail in [
            tricky.clone(),
            json!(null),
            json!([tricky.clone()]),
            json!(42),
            json!("x"),
        ] {
            let body = Body::Marker(MarkerRecord {
                marker: MarkerKind::Config,
                detail,
            });
            let bytes = body.encode().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Body::decode(EntryKind::Marker, PAYLOAD_FORMAT, &bytes),
                Ok(body)
            );
        }
    }

    #[test]
    fn a_payload_is_read_only_in_its_own_format_and_kind() {
        let body = Body::Marker(MarkerRecord {
            marker: MarkerKind::Start,
            detail: json!({"v": 1}),
        });
        let bytes = body.encode().unwrap_or_else(|e| panic!("{e}"));
        let err = Body::decode(EntryKind::Marker, 2, &bytes)
            .err()
            .unwrap_or_else(|| panic!("format 2 decoded"));
        assert!(err.0.contains("format 2"), "{err}");
        assert!(Body::decode(EntryKind::Outcome, PAYLOAD_FORMAT, &bytes).is_err());
        assert!(
            Body::decode(EntryKind::Marker, PAYLOAD_FORMAT, &bytes[..bytes.len() - 1]).is_err()
        );
        assert!(Body::decode(EntryKind::Marker, PAYLOAD_FORMAT, &[]).is_err());
    }

    #[test]
    fn keys_store_empty_strings_as_absent() {
        let k = Keys::for_object(&ObjKey::new("Ingress", "", "shared"), Some(""));
        assert_eq!(
            k,
            Keys {
                namespace: None,
                application: None,
                object_kind: Some("Ingress".into()),
                object_name: Some("shared".into())
            }
        );
        assert_eq!(EntryKind::parse("outcome"), Some(EntryKind::Outcome));
        assert_eq!(EntryKind::parse("Outcome"), None);
    }

    #[test]
    fn the_id_namespace_is_fixed() {
        assert_eq!(
            LOGBOOK_UUID_NAMESPACE.to_string(),
            "6c6f6762-6f6f-4b00-8000-6c6f67626f6f"
        );
        // Pinned: ids derived by earlier builds must stay the same.
        assert_eq!(
            content_uuid("event", b"uid/1").to_string(),
            "f7c4a0f8-fff5-53ab-9c19-ef72542d6761"
        );
    }
}
