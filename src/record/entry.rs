//! Entry types: what an entry says (kind, audit keys, body) and how its payload is encoded.
//! Owns the payload codec (MessagePack: format 1, whole records; format 2, an object stored as
//! a patch, see [`super::delta`]) and entry ids; knows nothing of SQLite, the hash chain or
//! files.

use super::action::{Action, Verb};
use super::delta::Delta;
use super::key::ObjKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// The newest payload format this build decodes.
pub const PAYLOAD_FORMAT: u16 = DELTA_FORMAT;

/// The payload format of a whole record (every record but one stored as a patch): what every
/// build since the first writes and reads.
pub const WHOLE_FORMAT: u16 = 1;

/// The payload format of an event or action whose object is stored as a patch against an
/// earlier entry ([`Delta`]). Builds before it refuse such an entry, naming its seq.
pub const DELTA_FORMAT: u16 = 2;

/// Domain separation: the first bytes of the hash an entry id's content bits come from.
const ENTRY_ID_DOMAIN: &[u8] = b"logbook-entry-id-v8\0";

/// The id of an entry: a UUIDv8 (RFC 9562, custom layout) derived from when it happened and
/// what it is, so the same `(at, tag, bytes)` always gives the same id and ids sort by time.
///
/// Layout (big-endian, as stored): bits 0–47 are `at` in Unix milliseconds, as in UUIDv7
/// (clamped to `0..2^48`, i.e. 1970 to the year 10889); bits 48–127 are the first 10 bytes of
/// SHA-256(`logbook-entry-id-v8\0` ‖ len(tag) as u64 BE ‖ tag ‖ bytes), with the version (`8`)
/// and variant (`0b10`) written over 6 of them, leaving 74 bits of hash. New entries therefore
/// land at the right edge of the id index, and a batch touches a few of its pages, not one per
/// entry.
///
/// `tag` separates kinds of content (e.g. `"event"`, `"outcome"`), `bytes` is the content that
/// makes the id unique (e.g. an object's uid and resourceVersion). `at` is part of the identity:
/// to be recognised when it is delivered again, an entry must carry the same `at` every time
/// (a time taken from its content, such as when the event was observed or the outcome reported,
/// never the time it is appended).
pub fn entry_uuid(at: DateTime<Utc>, tag: &str, bytes: &[u8]) -> Uuid {
    const MAX_MS: i64 = (1 << 48) - 1;
    let ms = at.timestamp_millis().clamp(0, MAX_MS) as u64;
    let mut h = Sha256::new();
    h.update(ENTRY_ID_DOMAIN);
    h.update((tag.len() as u64).to_be_bytes());
    h.update(tag.as_bytes());
    h.update(bytes);
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    id[6..].copy_from_slice(&digest[..10]);
    id[6] = 0x80 | (id[6] & 0x0f); // version 8
    id[8] = 0x80 | (id[8] & 0x3f); // variant 0b10 (RFC 9562)
    Uuid::from_bytes(id)
}

/// A JSON value kept as its text: a whole Kubernetes object embedded in a record, parsed only
/// when someone looks inside.
///
/// Reading the log does not build `serde_json::Value` trees (most of the cost of decoding an
/// entry that carries an object); [`Json::parse`] does, on demand. [`Json::from_value`] writes
/// canonical text: compact, with the keys of every object sorted (serde_json maps are sorted),
/// so equal values make equal text and `==` compares text.
///
/// In a payload it is a MessagePack string holding the JSON text. Payloads written before this
/// type existed held the value itself (a MessagePack map); those decode too, into the same
/// canonical text.
///
/// The text is shared: cloning a `Json` does not copy it (the log's reader keeps the last
/// version of large objects to rebuild the next from a patch, see [`super::delta`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Json(Arc<str>);

impl Json {
    /// The canonical JSON text of `value`.
    pub fn from_value(value: &serde_json::Value) -> Json {
        // The compact text, as `Display` writes it but without going through a formatter
        // (several times faster for large objects); serializing a `Value` cannot fail.
        let text = serde_json::to_string(value).unwrap_or_else(|_| value.to_string());
        Json(text.into())
    }

    /// Parses the text into a value.
    ///
    /// The text of an entry read from the log is what the writer stored; it fails to parse only
    /// if the log was written by something other than logbook (its hash still verifies, since
    /// the hash covers whatever bytes were stored). Report a failure with the entry's seq.
    pub fn parse(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Parses the text straight into a typed value, without an intermediate `Value`.
    pub fn parse_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&serde_json::Value> for Json {
    fn from(value: &serde_json::Value) -> Json {
        Json::from_value(value)
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({})", self.0)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Reads JSON text from a string, or (payloads written before [`Json`] existed) a value in any
/// other self-describing shape, which it turns into canonical text.
struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON text as a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json(v.into()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json(v.into()))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Json, E> {
        std::str::from_utf8(v)
            .map(|s| Json(s.into()))
            .map_err(|_| E::custom("the embedded JSON text is not UTF-8"))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Json, A::Error> {
        let value =
            serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Json::from_value(&value))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Json, A::Error> {
        let value =
            serde_json::Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Json::from_value(&value))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::from_value(&serde_json::Value::Bool(v)))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from_value(&v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from_value(&v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::from_value(&v.into()))
    }
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
    /// The object as observed (managedFields dropped, Secret data never stored), as JSON text
    /// ([`Json::parse`] it to look inside); `None` for a delete.
    pub object: Option<Json>,
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
    /// The action, its object kept as JSON text ([`RecordedAction::to_action`] gives the
    /// planner's [`Action`] back).
    pub action: RecordedAction,
}

/// An [`Action`] as the log records it: the same fields, with the object to apply kept as
/// [`Json`] text so reading the log does not parse it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAction {
    /// The action's content-derived id.
    pub id: String,
    /// What to do.
    pub verb: Verb,
    /// The object acted on.
    pub target: ObjKey,
    /// The target's `apiVersion`.
    pub api_version: String,
    /// The Application (`namespace/name`) the action serves; `None` for shared objects.
    pub app: Option<String>,
    /// The object to apply (create/apply), or the status to write (status); `None` for delete.
    pub object: Option<Json>,
    /// For delete: the uid the object must still have.
    pub uid: Option<String>,
    /// Why.
    pub reason: String,
    /// The observed objects (key → resourceVersion) the action was derived from.
    pub basis: BTreeMap<String, String>,
}

impl RecordedAction {
    /// The action, its object parsed. Fails only if the object's text is not JSON (see
    /// [`Json::parse`]).
    pub fn to_action(&self) -> Result<Action, serde_json::Error> {
        Ok(Action {
            id: self.id.clone(),
            verb: self.verb,
            target: self.target.clone(),
            api_version: self.api_version.clone(),
            app: self.app.clone(),
            object: self.object.as_ref().map(Json::parse).transpose()?,
            uid: self.uid.clone(),
            reason: self.reason.clone(),
            basis: self.basis.clone(),
        })
    }
}

impl From<Action> for RecordedAction {
    fn from(a: Action) -> RecordedAction {
        RecordedAction {
            object: a.object.as_ref().map(Json::from_value),
            id: a.id,
            verb: a.verb,
            target: a.target,
            api_version: a.api_version,
            app: a.app,
            uid: a.uid,
            reason: a.reason,
            basis: a.basis,
        }
    }
}

impl From<&Action> for RecordedAction {
    fn from(a: &Action) -> RecordedAction {
        RecordedAction::from(a.clone())
    }
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

impl OutcomeResult {
    /// The result's name as serialized (`applied`, `noop`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::Applied => "applied",
            OutcomeResult::NoOp => "noop",
            OutcomeResult::Superseded => "superseded",
            OutcomeResult::Conflict => "conflict",
            OutcomeResult::Failed => "failed",
            OutcomeResult::Abandoned => "abandoned",
        }
    }
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
    /// True when the action will be delivered again (a transient failure or conflict); the
    /// action then stays on its way. Absent in entries written before it existed: false.
    #[serde(default)]
    pub retry: bool,
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
    /// A periodic resync: the whole world is planned again after it.
    Resync,
    /// A time the controller was asked to look again has come (an action's answer deadline):
    /// it moves the planner's "now" and triggers the plan of what was due (`detail.due`).
    Tick,
    /// An action recorded with no outcome past its answer deadline is published again from
    /// the log (`detail` is a [`Redrive`]); keyed like the action.
    Redrive,
    /// A message from the bus that was not recorded: unsigned, from an unknown key, too
    /// large, or an outcome for an action the log never issued (`detail`: `what`, `reason`,
    /// `subject`, `sha256` of the payload; never the payload itself).
    Refused,
    /// The fold's whole state at the entry just before it ([`MarkerRecord::state`]), so a
    /// reader can load it instead of folding from the start; `detail` says which seq it holds
    /// and the SHA-256 of the state (`crate::world` owns the encoding). Keyed `Checkpoint/world`.
    Checkpoint,
}

impl MarkerKind {
    /// Its name, as the log's JSON spells it (`redrive`, `refused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerKind::Start => "start",
            MarkerKind::Stop => "stop",
            MarkerKind::Config => "config",
            MarkerKind::Leadership => "leadership",
            MarkerKind::Resync => "resync",
            MarkerKind::Tick => "tick",
            MarkerKind::Redrive => "redrive",
            MarkerKind::Refused => "refused",
            MarkerKind::Checkpoint => "checkpoint",
        }
    }
}

/// What a [`MarkerKind::Redrive`] marker says: which action is published again, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redrive {
    /// The action's id.
    pub action_id: String,
    /// The seq of the action's entry (what is published again).
    pub action_seq: u64,
    /// How many times it has been published again, this time included (1 for the first).
    pub attempt: u32,
    /// The answer deadline that passed (RFC 3339).
    pub due: String,
}

impl Redrive {
    /// The re-drive a marker records, if it is one that can be read.
    pub fn of(marker: &MarkerRecord) -> Option<Redrive> {
        (marker.marker == MarkerKind::Redrive)
            .then(|| serde_json::from_value(marker.detail.clone()).ok())
            .flatten()
    }
}

/// A milestone of the controller, with free-form detail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkerRecord {
    /// Which milestone.
    pub marker: MarkerKind,
    /// Detail (version, configuration, holder identity, ...).
    pub detail: serde_json::Value,
    /// A checkpoint's state, as bytes (a MessagePack `bin`); `None` for every other marker, and
    /// then not written at all, so other markers are encoded as before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Blob>,
}

/// Bytes carried as they are: a MessagePack `bin` in a payload, never a list of numbers. Its
/// `Debug` shows only its length (a checkpoint's state is megabytes).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Blob(Vec<u8>);

impl Blob {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Blob {
        Blob(bytes)
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        deserializer.deserialize_byte_buf(BlobVisitor)
    }
}

/// Reads a `bin` (or, from a self-describing format without one, a list of bytes).
struct BlobVisitor;

impl<'de> serde::de::Visitor<'de> for BlobVisitor {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
        Ok(Blob(v.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
        Ok(Blob(v))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Blob(out))
    }
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

    /// Decodes a payload of `kind` written in `format` whose record is whole. A payload that
    /// stores its object as a patch is refused (it cannot be made whole from its own bytes):
    /// [`decode_stored`] reads both, and the log's reader makes such entries whole.
    pub fn decode(kind: EntryKind, format: u16, payload: &[u8]) -> Result<Body, CodecError> {
        match decode_stored(kind, format, payload)? {
            (body, None) => Ok(body),
            (_, Some(delta)) => Err(CodecError(format!(
                "the {kind} payload stores its object as a patch against entry {}; read it \
                 through the log, which rebuilds the whole object",
                delta.base_seq
            ))),
        }
    }
}

/// A patched event as a format-2 payload stores it: the fields of [`ObservedEvent`] (its
/// `object` nil) and the patch.
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    change: Change,
    key: ObjKey,
    api_version: String,
    uid: String,
    resource_version: String,
    object: Option<Json>,
    synthesized: bool,
    #[serde(default)]
    delta: Option<Delta>,
}

/// A patched action as a format-2 payload stores it: the fields of [`ActionRecord`] (its
/// action's `object` nil and its `basis` empty: the patch covers both) and the patch.
#[derive(Serialize, Deserialize)]
struct StoredAction {
    plan_seq: u64,
    action: RecordedAction,
    #[serde(default)]
    delta: Option<Delta>,
}

/// Decodes a payload of `kind` written in `format`: the record, and, when its object is stored
/// as a patch (format 2), the patch (the record's object is then absent until it is rebuilt,
/// see [`super::delta::Rebuild`]).
pub fn decode_stored(
    kind: EntryKind,
    format: u16,
    payload: &[u8],
) -> Result<(Body, Option<Delta>), CodecError> {
    if !(WHOLE_FORMAT..=DELTA_FORMAT).contains(&format) {
        return Err(CodecError(format!(
            "payload format {format} is not one this build decodes (it decodes \
             {WHOLE_FORMAT} to {DELTA_FORMAT})"
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
    let both = |what: &str| {
        CodecError(format!(
            "the {what} payload holds both a whole object and a patch"
        ))
    };
    Ok(match kind {
        EntryKind::Event if format == DELTA_FORMAT => {
            let s: StoredEvent = de(kind, payload)?;
            if s.delta.is_some() && (s.object.is_some() || s.change == Change::Delete) {
                return Err(both("event"));
            }
            let event = ObservedEvent {
                change: s.change,
                key: s.key,
                api_version: s.api_version,
                uid: s.uid,
                resource_version: s.resource_version,
                object: s.object,
                synthesized: s.synthesized,
            };
            (Body::Event(event), s.delta)
        }
        EntryKind::Action if format == DELTA_FORMAT => {
            let s: StoredAction = de(kind, payload)?;
            if s.delta.is_some() && (s.action.object.is_some() || !s.action.basis.is_empty()) {
                return Err(both("action"));
            }
            let record = ActionRecord {
                plan_seq: s.plan_seq,
                action: s.action,
            };
            (Body::Action(record), s.delta)
        }
        EntryKind::Event => (Body::Event(de(kind, payload)?), None),
        EntryKind::Plan => (Body::Plan(de(kind, payload)?), None),
        EntryKind::Action => (Body::Action(de(kind, payload)?), None),
        EntryKind::Outcome => (Body::Outcome(de(kind, payload)?), None),
        EntryKind::Marker => (Body::Marker(de(kind, payload)?), None),
    })
}

/// An entry to append. Its kind is its body's; the log assigns seq and hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    /// The entry's id, derived from its time and content by the caller (see [`entry_uuid`]); appending an id
    /// that is already in the log is a no-op that reports the existing seq.
    pub id: Uuid,
    /// When it happened (UTC, nanosecond precision, 1677-09-21 to 2262-04-11).
    pub at: DateTime<Utc>,
    /// The keys audits search by.
    pub keys: Keys,
    /// What it says, whole: an event's or action's object is the whole object even when it is
    /// stored as a patch.
    pub body: Body,
    /// When set, the body's object is stored as this patch against an earlier entry instead of
    /// whole (payload format 2); `None` (the usual case) stores the body as it is. Set by
    /// [`super::delta::Deltas`], which checks the patch gives the object.
    pub delta: Option<Delta>,
}

impl NewEntry {
    /// An entry from its parts.
    pub fn new(id: Uuid, at: DateTime<Utc>, keys: Keys, body: Body) -> NewEntry {
        NewEntry {
            id,
            at,
            keys,
            body,
            delta: None,
        }
    }

    /// The payload as stored, and its format: the whole record ([`Body::encode`], format 1),
    /// or, when [`NewEntry::delta`] is set, the record without its object and with the patch
    /// (format 2).
    pub fn encode(&self) -> Result<(u16, Vec<u8>), CodecError> {
        let Some(delta) = &self.delta else {
            return Ok((WHOLE_FORMAT, self.body.encode()?));
        };
        let encoded = match &self.body {
            Body::Event(e) if e.change == Change::Upsert => rmp_serde::to_vec_named(&StoredEvent {
                change: e.change,
                key: e.key.clone(),
                api_version: e.api_version.clone(),
                uid: e.uid.clone(),
                resource_version: e.resource_version.clone(),
                object: None,
                synthesized: e.synthesized,
                delta: Some(delta.clone()),
            }),
            Body::Action(a) => {
                // The patch covers the object and the basis (see `Delta`).
                let mut action = a.action.clone();
                action.object = None;
                action.basis = BTreeMap::new();
                rmp_serde::to_vec_named(&StoredAction {
                    plan_seq: a.plan_seq,
                    action,
                    delta: Some(delta.clone()),
                })
            }
            other => {
                return Err(CodecError(format!(
                    "a {} {}cannot be stored as a patch: only an upserted object or an \
                     action's object can",
                    other.kind(),
                    if other.kind() == EntryKind::Event {
                        "of a delete "
                    } else {
                        ""
                    }
                )));
            }
        };
        let bytes = encoded.map_err(|e| {
            CodecError(format!(
                "cannot encode the {} payload as MessagePack: {e}",
                self.kind()
            ))
        })?;
        Ok((DELTA_FORMAT, bytes))
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

    /// An Action entry keyed by the action's target and Application (its object is recorded
    /// as [`Json`] text).
    pub fn action(id: Uuid, at: DateTime<Utc>, plan_seq: u64, action: Action) -> NewEntry {
        let keys = Keys::for_object(&action.target, action.app.as_deref());
        NewEntry::new(
            id,
            at,
            keys,
            Body::Action(ActionRecord {
                plan_seq,
                action: action.into(),
            }),
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
            Body::Marker(MarkerRecord {
                marker,
                detail,
                state: None,
            }),
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
    /// What it says. Read through the log, an event's or action's object is whole even when it
    /// is stored as a patch (the reader rebuilds it; see [`Entry::delta`]).
    pub body: Body,
    /// How the object is stored when it is stored as a patch against an earlier entry (payload
    /// format 2); `None` when the payload holds the whole record.
    pub delta: Option<Delta>,
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
                state: None,
            });
            let bytes = body.encode().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Body::decode(EntryKind::Marker, PAYLOAD_FORMAT, &bytes),
                Ok(body)
            );
        }
    }

    fn tricky_object() -> serde_json::Value {
        json!({
            "kind": "Deployment", "null": null, "t": true, "f": false, "u": u64::MAX, "i": i64::MIN,
            "neg": -1, "zero": 0, "float": 0.25, "pi": std::f64::consts::PI, "tenth": 0.1, "e": -1.5e-7,
            "s": "ünïcødé ✓ \"quoted\" \\ \n\t\u{1}", "empty_s": "",
            "arr": [null, [], {}, [1, [2, [3]]], {"a": {"b": {"c": null}}}], "obj": {},
            "b": 1, "a": 2
        })
    }

    fn observed(object: Option<Json>) -> ObservedEvent {
        ObservedEvent {
            change: Change::Upsert,
            key: ObjKey::new("Deployment", "shop", "web"),
            api_version: "apps/v1".into(),
            uid: "uid-web".into(),
            resource_version: "7".into(),
            object,
            synthesized: false,
        }
    }

    #[test]
    fn json_text_is_canonical_and_parses_back_exactly() {
        let value = tricky_object();
        let json = Json::from_value(&value);
        assert_eq!(json.parse().ok(), Some(value.clone()));
        // Compact, keys sorted at every level: equal values give equal text.
        assert!(
            json.as_str().starts_with(r#"{"a":2,"arr":[null,[],{},"#),
            "{json}"
        );
        let reordered: serde_json::Value =
            serde_json::from_str(&format!(r#"{{"zz": 1, "aa": {}}}"#, json.as_str()))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Json::from_value(&reordered).as_str(),
            format!(r#"{{"aa":{},"zz":1}}"#, json.as_str())
        );
        assert_eq!(Json::from_value(&json!(null)).as_str(), "null");
        assert_eq!(
            format!("{:?}", Json::from_value(&json!({"a": [1]}))),
            r#"Json({"a":[1]})"#
        );
        #[derive(Deserialize, PartialEq, Debug)]
        struct Typed {
            u: u64,
            s: String,
        }
        let typed: Typed = json.parse_as().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(typed.u, u64::MAX);
    }

    #[test]
    fn extreme_floats_come_back_exactly() {
        // serde_json parses floats exactly only with its `float_roundtrip` feature (enabled in
        // Cargo.toml); without it, floats whose text needs the slow path (17 significant
        // digits, exponents far from 0) could come back one unit in the last place off.
        for f in [
            1.5e-300_f64,
            1.7976931348623157e308,
            5e-324,
            0.30000000000000004,
            123456.789e-20,
        ] {
            let back = Json::from_value(&json!(f))
                .parse()
                .ok()
                .and_then(|v| v.as_f64())
                .unwrap_or_else(|| panic!("{f} did not come back as a float"));
            assert_eq!(back.to_bits(), f.to_bits(), "{f} came back as {back}");
        }
    }

    #[test]
    fn json_round_trips_through_the_payload_as_a_string() {
        for object in [
            Some(tricky_object()),
            Some(json!(null)),
            Some(json!([1, "x"])),
            None,
        ] {
            let body = Body::Event(observed(object.as_ref().map(Json::from_value)));
            let bytes = body.encode().unwrap_or_else(|e| panic!("{e}"));
            let back = Body::decode(EntryKind::Event, PAYLOAD_FORMAT, &bytes)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, body);
            let Body::Event(ev) = back else {
                panic!("decoded as {:?}", back.kind())
            };
            assert_eq!(
                ev.object
                    .map(|o| o.parse().unwrap_or_else(|e| panic!("{e}"))),
                object
            );
        }
        // The text is stored as a MessagePack string, not re-encoded.
        let json = Json::from_value(&tricky_object());
        let bytes = rmp_serde::to_vec_named(&json).unwrap_or_else(|e| panic!("{e}"));
        let text = json.as_str().as_bytes();
        let len = u16::try_from(text.len()).unwrap_or_else(|e| panic!("{e}"));
        assert!(len > 255, "the object should need a str16 header");
        let mut expected = vec![0xda];
        expected.extend_from_slice(&len.to_be_bytes());
        expected.extend_from_slice(text);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn objects_stored_as_maps_by_earlier_builds_still_decode() {
        // The record as builds before `Json` wrote it: the object as a MessagePack map.
        #[derive(Serialize)]
        struct EarlierEvent {
            change: Change,
            key: ObjKey,
            api_version: String,
            uid: String,
            resource_version: String,
            object: Option<serde_json::Value>,
            synthesized: bool,
        }
        let object = tricky_object();
        let earlier = EarlierEvent {
            change: Change::Upsert,
            key: ObjKey::new("Deployment", "shop", "web"),
            api_version: "apps/v1".into(),
            uid: "uid-web".into(),
            resource_version: "7".into(),
            object: Some(object.clone()),
            synthesized: false,
        };
        let bytes = rmp_serde::to_vec_named(&earlier).unwrap_or_else(|e| panic!("{e}"));
        let body = Body::decode(EntryKind::Event, PAYLOAD_FORMAT, &bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body, Body::Event(observed(Some(Json::from_value(&object)))));
        // A string that is not UTF-8 is refused, not passed on.
        let bad = [0xa2, 0xff, 0xfe]; // fixstr of 2 bytes
        assert!(rmp_serde::from_slice::<Json>(&bad).is_err());
    }

    fn planned(object: Option<serde_json::Value>) -> Action {
        let mut basis = BTreeMap::new();
        basis.insert("Application/shop/web".to_string(), "7".to_string());
        Action::new(
            if object.is_some() {
                Verb::Apply
            } else {
                Verb::Delete
            },
            ObjKey::new("Deployment", "shop", "web"),
            "apps/v1",
            Some("shop/web".into()),
            object,
            Some("uid-web".into()),
            "drift at spec.replicas".into(),
            basis,
        )
    }

    #[test]
    fn actions_come_back_from_the_payload_as_planned() {
        /// The record as builds before `RecordedAction` wrote it.
        #[derive(Serialize)]
        struct EarlierActionRecord {
            plan_seq: u64,
            action: Action,
        }
        for object in [Some(tricky_object()), None] {
            let action = planned(object);
            let body = Body::Action(ActionRecord {
                plan_seq: 4,
                action: RecordedAction::from(&action),
            });
            let bytes = body.encode().unwrap_or_else(|e| panic!("{e}"));
            let back = Body::decode(EntryKind::Action, PAYLOAD_FORMAT, &bytes)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, body);
            let Body::Action(rec) = back else {
                panic!("decoded as {:?}", back.kind())
            };
            let again = rec.action.to_action().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, action);
            assert_eq!(again.content_id(), action.id);
            // What earlier builds wrote decodes to the same record; without an object, the
            // bytes are the same too.
            let earlier = rmp_serde::to_vec_named(&EarlierActionRecord {
                plan_seq: 4,
                action: action.clone(),
            })
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Body::decode(EntryKind::Action, PAYLOAD_FORMAT, &earlier),
                Ok(body)
            );
            assert_eq!(earlier == bytes, action.object.is_none());
        }
    }

    #[test]
    fn markers_without_a_state_are_encoded_as_before_and_a_state_travels_as_bin() {
        /// The record as builds before checkpoints wrote it.
        #[derive(Serialize)]
        struct EarlierMarker {
            marker: MarkerKind,
            detail: serde_json::Value,
        }
        let detail = json!({"reason": "periodic"});
        let earlier = rmp_serde::to_vec_named(&EarlierMarker {
            marker: MarkerKind::Resync,
            detail: detail.clone(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let body = Body::Marker(MarkerRecord {
            marker: MarkerKind::Resync,
            detail,
            state: None,
        });
        assert_eq!(body.encode(), Ok(earlier));
        let state: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let checkpoint = Body::Marker(MarkerRecord {
            marker: MarkerKind::Checkpoint,
            detail: json!({"uptoSeq": 4}),
            state: Some(Blob::from(state.clone())),
        });
        let bytes = checkpoint.encode().unwrap_or_else(|e| panic!("{e}"));
        // A bin 32 header and the bytes as they are, not 70,000 MessagePack integers.
        assert!(bytes.len() < state.len() + 100, "{} bytes", bytes.len());
        let mut bin = vec![0xc6];
        bin.extend_from_slice(&(state.len() as u32).to_be_bytes());
        bin.extend_from_slice(&state);
        assert!(bytes.ends_with(&bin));
        assert_eq!(
            Body::decode(EntryKind::Marker, PAYLOAD_FORMAT, &bytes),
            Ok(checkpoint)
        );
        assert_eq!(
            format!("{:?}", Blob::from(state)),
            "Blob(70000 bytes)",
            "a state is never printed"
        );
    }

    #[test]
    fn a_payload_is_read_only_in_its_own_format_and_kind() {
        let body = Body::Marker(MarkerRecord {
            marker: MarkerKind::Start,
            detail: json!({"v": 1}),
            state: None,
        });
        let bytes = body.encode().unwrap_or_else(|e| panic!("{e}"));
        let err = Body::decode(EntryKind::Marker, 3, &bytes)
            .err()
            .unwrap_or_else(|| panic!("format 3 decoded"));
        assert!(err.0.contains("format 3"), "{err}");
        // Format 2 (objects stored as patches) reads records without a patch as format 1.
        assert_eq!(Body::decode(EntryKind::Marker, 2, &bytes), Ok(body.clone()));
        assert!(Body::decode(EntryKind::Marker, 0, &bytes).is_err());
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
    fn entry_ids_are_pinned() {
        let at = DateTime::<Utc>::from_timestamp_millis(1_741_921_920_123)
            .unwrap_or_else(|| panic!("timestamp out of range"));
        // Pinned: ids derived by earlier builds must stay the same, or re-delivered entries
        // would no longer be recognised.
        assert_eq!(entry_uuid(at, "event", b"uid/1").to_string(), PINNED_ID);
    }

    #[test]
    fn entry_ids_have_the_version_8_layout() {
        let at = DateTime::<Utc>::from_timestamp_millis(0x0123_4567_89ab)
            .unwrap_or_else(|| panic!("timestamp out of range"));
        for i in 0..64u32 {
            let id = entry_uuid(at, "event", &i.to_be_bytes());
            let b = id.as_bytes();
            assert_eq!(&b[..6], &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab], "{id}");
            assert_eq!(id.get_version_num(), 8, "{id}");
            assert_eq!(b[6] >> 4, 8, "{id}");
            assert_eq!(b[8] >> 6, 0b10, "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        // Out-of-range times clamp instead of wrapping.
        let before_1970 = DateTime::<Utc>::from_timestamp_millis(-5)
            .unwrap_or_else(|| panic!("timestamp out of range"));
        assert_eq!(
            &entry_uuid(before_1970, "e", b"x").as_bytes()[..6],
            &[0u8; 6]
        );
    }

    const PINNED_ID: &str = "019592a3-247b-8b38-941e-c57e60144104";
}
