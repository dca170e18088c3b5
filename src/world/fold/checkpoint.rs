//! Checkpoints: the fold's whole state at one seq, written down so that a reader can load it
//! instead of folding the log from its start.
//!
//! A checkpoint is a `checkpoint` marker entry, chained and hashed like any other: its
//! `state` holds [`Fold::checkpoint`]'s bytes for the fold *right before it* (entries
//! `1..=upto_seq`, `upto_seq` = the marker's seq − 1), its `detail` a [`CheckpointDetail`] with
//! the SHA-256 of those bytes. Folding the marker itself changes nothing but "now" and the last
//! seq, as every marker does, so loading the checkpoint and folding on from the marker gives
//! the same fold as folding from the start.
//!
//! ## The state (format 1)
//!
//! Everything the fold holds that a later entry's folding or a plan reads, in key order:
//! the last seq folded; "now" (the last entry's time, as the world keeps it); the answer
//! deadline and the planner settings of the last Config marker; every observed object (key,
//! apiVersion, uid, resourceVersion, the object as canonical JSON text, which is the text the
//! event recorded, written as it is: logbook records objects canonically); the pending actions
//! (as recorded, by target); `issued` (per target, the plan seq and id of the newest action the
//! log issued); the pending action ids with their targets; the applied actions awaiting their
//! observation (target, id, the resourceVersion the executor reported); the answer deadlines
//! (action id, deadline as RFC 3339 with nanoseconds, the action's seq, re-drives so far).
//!
//! Not in it: what the world derives from the objects (Applications, host claims, children,
//! Applications by namespace), rebuilt by observing each object again in key order; revisions
//! and the world's id, which are process-local, say nothing about content and only serve
//! planner caches (a loaded world gets fresh ones); and the entries the fold could not read
//! (`rejected`), which change nothing. Objects in the world are scrubbed already (no
//! `managedFields`, never a Secret's data), so a checkpoint holds nothing the events did not.
//!
//! ## Canonical encoding and digest
//!
//! The state is the MessagePack of [`State`] as `rmp_serde::to_vec_named` writes it (maps keyed
//! by field name, lists in the order above, JSON text compact with sorted keys). It is built
//! from ordered maps only, with no clock and no hash-map order, so the same fold always gives
//! the same bytes, and the digest is the SHA-256 of those bytes (lowercase hex). `replay
//! verify` recomputes the fold's bytes at every checkpoint it passes and compares digests, so a
//! checkpoint that does not hold what the log folds to is reported as a divergence. A later
//! build that changes what a fold holds writes a new format; a reader that does not know a
//! checkpoint's format does not load it (and does not compare it).

use super::{Due, Fold};
use crate::record::{
    Blob, Json, Keys, MarkerKind, MarkerRecord, NewEntry, ObjKey, RecordedAction, entry_uuid,
};
use crate::world::Observed;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The state format this build writes and reads.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// The `object_kind` audit key of checkpoint entries (with [`CHECKPOINT_NAME`]), so the nearest
/// one is found through the object's audit key ([`crate::log::LogReader::last_about`]).
pub const CHECKPOINT_KIND: &str = "Checkpoint";

/// The `object_name` audit key of checkpoint entries.
pub const CHECKPOINT_NAME: &str = "world";

/// The key checkpoint entries are filed under: `Checkpoint/world`, no namespace.
pub fn checkpoint_key() -> ObjKey {
    ObjKey::new(CHECKPOINT_KIND, "", CHECKPOINT_NAME)
}

/// What a checkpoint marker's `detail` says (camelCase in the log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointDetail {
    /// The state's format ([`CHECKPOINT_FORMAT`]).
    pub format: u32,
    /// The state is the fold of entries `1..=upto_seq` (the marker sits at `upto_seq + 1`).
    pub upto_seq: u64,
    /// SHA-256 of the state bytes, lowercase hex.
    pub digest: String,
    /// The state's size in bytes.
    pub bytes: u64,
    /// Applications in the world.
    pub applications: u64,
    /// Observed objects (Applications included).
    pub objects: u64,
    /// Actions pending.
    pub pending: u64,
    /// Why it was taken: `periodic` (every N entries) or `asked` (on demand).
    pub reason: String,
}

impl CheckpointDetail {
    /// The detail of a checkpoint marker; `None` for another marker, an error when it cannot
    /// be read.
    pub fn of(marker: &MarkerRecord) -> Option<Result<CheckpointDetail, String>> {
        (marker.marker == MarkerKind::Checkpoint).then(|| {
            serde_json::from_value(marker.detail.clone())
                .map_err(|e| format!("its detail cannot be read: {e} ({})", marker.detail))
        })
    }
}

/// A fold written down: its state's bytes, their digest, and a summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The canonical encoding of the fold's state.
    pub state: Vec<u8>,
    /// SHA-256 of `state`, lowercase hex.
    pub digest: String,
    /// The last seq folded.
    pub upto_seq: u64,
    /// Applications in the world.
    pub applications: u64,
    /// Observed objects.
    pub objects: u64,
    /// Actions pending.
    pub pending: u64,
}

impl Checkpoint {
    /// Its detail, taken for `reason`.
    pub fn detail(&self, reason: &str) -> CheckpointDetail {
        CheckpointDetail {
            format: CHECKPOINT_FORMAT,
            upto_seq: self.upto_seq,
            digest: self.digest.clone(),
            bytes: self.state.len() as u64,
            applications: self.applications,
            objects: self.objects,
            pending: self.pending,
            reason: reason.to_string(),
        }
    }

    /// The checkpoint marker entry, recorded at `at` for `reason`, keyed `Checkpoint/world`.
    /// It must be appended right after entry `upto_seq`.
    pub fn entry(self, at: DateTime<Utc>, reason: &str) -> NewEntry {
        let detail = self.detail(reason);
        let id = entry_uuid(
            at,
            "checkpoint",
            format!("{}\0{}", detail.upto_seq, detail.digest).as_bytes(),
        );
        let keys = Keys::for_object(&checkpoint_key(), None);
        NewEntry::new(
            id,
            at,
            keys,
            crate::record::Body::Marker(MarkerRecord {
                marker: MarkerKind::Checkpoint,
                detail: serde_json::to_value(&detail).unwrap_or_default(),
                state: Some(Blob::from(self.state)),
            }),
        )
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The fold's state, format 1 (see the module docs), as it is read back. Field order is part
/// of the format. It is written from the fold itself through [`StateView`], which encodes to
/// the same bytes without building this copy first.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct State {
    format: u32,
    last_seq: u64,
    now: Option<String>,
    answer_deadline_ms: Option<u64>,
    planner: Option<Json>,
    objects: Vec<StoredObject>,
    pending: Vec<RecordedAction>,
    issued: Vec<Issued>,
    pending_ids: Vec<PendingId>,
    awaiting: Vec<Awaiting>,
    due: Vec<StoredDue>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StoredObject {
    key: ObjKey,
    api_version: String,
    uid: String,
    resource_version: String,
    object: Json,
}

#[derive(Serialize, Deserialize)]
struct Issued {
    target: ObjKey,
    plan_seq: u64,
    action_id: String,
}

#[derive(Serialize, Deserialize)]
struct PendingId {
    action_id: String,
    target: ObjKey,
}

#[derive(Serialize, Deserialize)]
struct Awaiting {
    target: ObjKey,
    action_id: String,
    resource_version: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredDue {
    action_id: String,
    at: String,
    action_seq: u64,
    redrives: u32,
}

/// [`State`] borrowed from a fold: the same fields, written one item at a time (an object's
/// JSON text exists only while it is written), so encoding a checkpoint, or hashing one,
/// holds no second copy of the world.
#[derive(Serialize)]
struct StateView<'a> {
    format: u32,
    last_seq: u64,
    now: &'a Option<String>,
    answer_deadline_ms: Option<u64>,
    planner: &'a Option<Json>,
    objects: Each<'a, ObjectView<'a>>,
    pending: Each<'a, ActionView<'a>>,
    issued: Each<'a, IssuedView<'a>>,
    pending_ids: Each<'a, PendingIdView<'a>>,
    awaiting: Each<'a, AwaitingView<'a>>,
    due: Each<'a, StoredDue>,
}

/// A list written from an iterator of known length, made anew each time it is written.
struct Each<'a, T>(Box<dyn Fn() -> Box<dyn ExactSizeIterator<Item = T> + 'a> + 'a>);

impl<T: Serialize> Serialize for Each<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let items = (self.0)();
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

/// A JSON value written as its canonical text, as [`Json::from_value`] makes it.
struct JsonOf<'a>(&'a serde_json::Value);

impl Serialize for JsonOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Json::from_value(self.0).serialize(serializer)
    }
}

#[derive(Serialize)]
struct ObjectView<'a> {
    key: &'a ObjKey,
    api_version: &'a str,
    uid: &'a str,
    resource_version: &'a str,
    /// The text as recorded: canonical already (see [`Observed`]).
    object: &'a Json,
}

/// An [`Action`](crate::record::Action) written as its [`RecordedAction`] (same fields, same
/// order).
#[derive(Serialize)]
struct ActionView<'a> {
    id: &'a str,
    verb: crate::record::Verb,
    target: &'a ObjKey,
    api_version: &'a str,
    app: &'a Option<String>,
    object: Option<JsonOf<'a>>,
    uid: &'a Option<String>,
    reason: &'a str,
    basis: &'a BTreeMap<String, String>,
}

impl<'a> ActionView<'a> {
    fn of(a: &'a crate::record::Action) -> ActionView<'a> {
        ActionView {
            id: &a.id,
            verb: a.verb,
            target: &a.target,
            api_version: &a.api_version,
            app: &a.app,
            object: a.object.as_ref().map(JsonOf),
            uid: &a.uid,
            reason: &a.reason,
            basis: &a.basis,
        }
    }
}

#[derive(Serialize)]
struct IssuedView<'a> {
    target: &'a ObjKey,
    plan_seq: u64,
    action_id: &'a str,
}

#[derive(Serialize)]
struct PendingIdView<'a> {
    action_id: &'a str,
    target: &'a ObjKey,
}

#[derive(Serialize)]
struct AwaitingView<'a> {
    target: &'a ObjKey,
    action_id: &'a str,
    resource_version: &'a Option<String>,
}

/// Feeds what is written into a SHA-256.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Fold {
    fn state_view(&self) -> StateView<'_> {
        let world = &self.world;
        StateView {
            format: CHECKPOINT_FORMAT,
            last_seq: self.last_seq,
            now: &world.now,
            answer_deadline_ms: self.answer_deadline_ms,
            planner: &self.planner,
            objects: Each(Box::new(move || {
                Box::new(world.objects.iter().map(|(key, o)| ObjectView {
                    key,
                    api_version: &o.api_version,
                    uid: &o.uid,
                    resource_version: &o.resource_version,
                    object: o.text(),
                }))
            })),
            pending: Each(Box::new(move || {
                Box::new(world.pending.values().map(ActionView::of))
            })),
            issued: Each(Box::new(move || {
                Box::new(
                    world
                        .issued
                        .iter()
                        .map(|(target, (plan_seq, id))| IssuedView {
                            target,
                            plan_seq: *plan_seq,
                            action_id: id,
                        }),
                )
            })),
            pending_ids: Each(Box::new(move || {
                Box::new(self.pending_ids.iter().map(|(id, target)| PendingIdView {
                    action_id: id,
                    target,
                }))
            })),
            awaiting: Each(Box::new(move || {
                Box::new(self.awaiting.iter().map(|(target, (id, rv))| AwaitingView {
                    target,
                    action_id: id,
                    resource_version: rv,
                }))
            })),
            due: Each(Box::new(move || {
                Box::new(self.due.iter().map(|(id, d)| StoredDue {
                    action_id: id.clone(),
                    at: d.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
                    action_seq: d.action_seq,
                    redrives: d.redrives,
                }))
            })),
        }
    }

    fn encoding_failed(&self, e: impl std::fmt::Display) -> String {
        format!(
            "cannot encode the fold at entry {} as a checkpoint: {e} (a bug: please report it)",
            self.last_seq
        )
    }

    /// The fold's whole state, canonically encoded, with its digest (see the module docs).
    /// Fails only if MessagePack cannot encode it, which would be a bug; the message says so.
    pub fn checkpoint(&self) -> Result<Checkpoint, String> {
        let bytes =
            rmp_serde::to_vec_named(&self.state_view()).map_err(|e| self.encoding_failed(e))?;
        let world = &self.world;
        Ok(Checkpoint {
            digest: digest_of(&bytes),
            upto_seq: self.last_seq,
            applications: world.apps.len() as u64,
            objects: world.objects.len() as u64,
            pending: world.pending.len() as u64,
            state: bytes,
        })
    }

    /// The digest [`Fold::checkpoint`] would give, computed as the state is written, without
    /// holding its bytes (what `verify` compares a checkpoint with).
    pub fn state_digest(&self) -> Result<String, String> {
        let mut hashing = Hashing(Sha256::new());
        rmp_serde::encode::write_named(&mut hashing, &self.state_view())
            .map_err(|e| self.encoding_failed(e))?;
        Ok(hex::encode(hashing.0.finalize()))
    }

    /// The fold a checkpoint's state holds: the same fold, for every later entry and every
    /// plan, as the one it was written from (the world gets fresh revisions and a new id).
    /// Checks nothing about where the state came from: see [`load`] for a marker.
    pub fn from_checkpoint(state: &[u8]) -> Result<Fold, String> {
        let state: State = rmp_serde::from_slice(state).map_err(|e| {
            format!(
                "its state is not a checkpoint this build reads (format {CHECKPOINT_FORMAT}): {e}"
            )
        })?;
        if state.format != CHECKPOINT_FORMAT {
            return Err(format!(
                "its state is in format {}, which this build does not read (it reads {})",
                state.format, CHECKPOINT_FORMAT
            ));
        }
        let mut fold = Fold::new();
        for o in state.objects {
            let observed =
                Observed::with_identity_text(o.api_version, o.uid, o.resource_version, o.object)
                    .map_err(|e| format!("its object {} is not JSON: {e}", o.key))?;
            fold.world
                .observe(o.key, observed)
                .map_err(|e| format!("its object {e}"))?;
        }
        for a in state.pending {
            let action = a
                .to_action()
                .map_err(|e| format!("its pending action {} is not JSON: {e}", a.id))?;
            fold.world.set_pending(action);
        }
        for i in state.issued {
            fold.world
                .issued
                .insert(i.target, (i.plan_seq, i.action_id));
        }
        fold.world.set_now(state.now);
        for p in state.pending_ids {
            fold.pending_ids.insert(p.action_id, p.target);
        }
        for a in state.awaiting {
            fold.awaiting
                .insert(a.target, (a.action_id, a.resource_version));
        }
        for d in state.due {
            let at = DateTime::parse_from_rfc3339(&d.at)
                .map_err(|e| {
                    format!(
                        "the deadline of action {} is not a time ({}): {e}",
                        d.action_id, d.at
                    )
                })?
                .with_timezone(&Utc);
            fold.schedule(
                &d.action_id,
                Due {
                    at,
                    action_seq: d.action_seq,
                    redrives: d.redrives,
                },
            );
        }
        fold.answer_deadline_ms = state.answer_deadline_ms;
        fold.planner = state.planner;
        fold.last_seq = state.last_seq;
        Ok(fold)
    }
}

/// Loads the checkpoint marker `marker` found at entry `seq`: its detail must be readable and
/// in a format this build knows, its state must be there, hold the fold of entries
/// `1..seq`, and match its own digest. The error says which of these failed.
pub fn load(marker: &MarkerRecord, seq: u64) -> Result<(CheckpointDetail, Fold), String> {
    let detail = CheckpointDetail::of(marker).ok_or_else(|| {
        format!(
            "entry {seq} is a {:?} marker, not a checkpoint",
            marker.marker
        )
    })??;
    if detail.format != CHECKPOINT_FORMAT {
        return Err(format!(
            "its state is in format {}, which this build does not read (it reads {})",
            detail.format, CHECKPOINT_FORMAT
        ));
    }
    if detail.upto_seq.saturating_add(1) != seq {
        return Err(format!(
            "it says it holds the world at entry {}, but it sits at entry {seq} (a checkpoint holds \
             the entry right before it)",
            detail.upto_seq
        ));
    }
    let state = marker
        .state
        .as_ref()
        .ok_or_else(|| "it carries no state".to_string())?;
    let digest = digest_of(state.as_bytes());
    if digest != detail.digest {
        return Err(format!(
            "its state does not match its digest (sha256 {digest}, recorded {}): it is damaged",
            detail.digest
        ));
    }
    let fold = Fold::from_checkpoint(state.as_bytes())?;
    if fold.last_seq() != detail.upto_seq {
        return Err(format!(
            "its state holds the world at entry {}, its detail says {}",
            fold.last_seq(),
            detail.upto_seq
        ));
    }
    Ok((detail, fold))
}

/// The first difference between two checkpoint states, in words (`None` when they are equal
/// or cannot both be read): what a divergence at a checkpoint shows.
pub fn first_difference(recorded: &[u8], folded: &[u8]) -> Option<String> {
    let a: State = rmp_serde::from_slice(recorded).ok()?;
    let b: State = rmp_serde::from_slice(folded).ok()?;
    let scalar = |what: &str, x: String, y: String| {
        (x != y).then(|| format!("{what}: {x} in the checkpoint, {y} in the fold"))
    };
    let keyed = |what: &str, x: BTreeMap<String, String>, y: BTreeMap<String, String>| {
        let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
            (Some(_), None) => Some(format!("{what} {k}: in the checkpoint, not in the fold")),
            (None, Some(_)) => Some(format!("{what} {k}: in the fold, not in the checkpoint")),
            (Some(u), Some(v)) if u != v => Some(format!(
                "{what} {k} differs: {} in the checkpoint, {} in the fold",
                shorten(u),
                shorten(v)
            )),
            _ => None,
        })
    };
    fn map<T>(
        items: &[T],
        key: impl Fn(&T) -> String,
        val: impl Fn(&T) -> String,
    ) -> BTreeMap<String, String> {
        items.iter().map(|i| (key(i), val(i))).collect()
    }
    scalar("last seq", a.last_seq.to_string(), b.last_seq.to_string())
        .or_else(|| scalar("now", format!("{:?}", a.now), format!("{:?}", b.now)))
        .or_else(|| {
            scalar(
                "answer deadline",
                format!("{:?}", a.answer_deadline_ms),
                format!("{:?}", b.answer_deadline_ms),
            )
        })
        .or_else(|| {
            scalar(
                "planner settings",
                format!("{:?}", a.planner),
                format!("{:?}", b.planner),
            )
        })
        .or_else(|| {
            let by_key = |s: &State| -> BTreeMap<String, usize> {
                s.objects
                    .iter()
                    .enumerate()
                    .map(|(i, o)| (o.key.to_string(), i))
                    .collect()
            };
            let (x, y) = (by_key(&a), by_key(&b));
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(_), None) => Some(format!("object {k}: in the checkpoint, not in the fold")),
                (None, Some(_)) => Some(format!("object {k}: in the fold, not in the checkpoint")),
                (Some(&i), Some(&j)) => object_difference(&a.objects[i], &b.objects[j])
                    .map(|d| format!("object {k} differs {d}")),
                _ => None,
            })
        })
        .or_else(|| {
            let act = |p: &RecordedAction| format!("{} {} ({})", p.verb, p.id, p.reason);
            keyed(
                "pending action on",
                map(&a.pending, |p| p.target.to_string(), act),
                map(&b.pending, |p| p.target.to_string(), act),
            )
        })
        .or_else(|| {
            let iss = |i: &Issued| format!("plan {} action {}", i.plan_seq, i.action_id);
            keyed(
                "issued for",
                map(&a.issued, |i| i.target.to_string(), iss),
                map(&b.issued, |i| i.target.to_string(), iss),
            )
        })
        .or_else(|| {
            let t = |p: &PendingId| p.target.to_string();
            keyed(
                "pending id",
                map(&a.pending_ids, |p| p.action_id.clone(), t),
                map(&b.pending_ids, |p| p.action_id.clone(), t),
            )
        })
        .or_else(|| {
            let aw = |w: &Awaiting| format!("{} at rv {:?}", w.action_id, w.resource_version);
            keyed(
                "awaiting on",
                map(&a.awaiting, |w| w.target.to_string(), aw),
                map(&b.awaiting, |w| w.target.to_string(), aw),
            )
        })
        .or_else(|| {
            let due = |d: &StoredDue| {
                format!(
                    "due {} (seq {}, {} re-drives)",
                    d.at, d.action_seq, d.redrives
                )
            };
            keyed(
                "deadline of",
                map(&a.due, |d| d.action_id.clone(), due),
                map(&b.due, |d| d.action_id.clone(), due),
            )
        })
}

/// Where two stored objects differ: `at PATH: X in the checkpoint, Y in the fold`.
fn object_difference(a: &StoredObject, b: &StoredObject) -> Option<String> {
    let said = |what: &str, x: &str, y: &str| {
        (x != y).then(|| format!("in its {what}: {x} in the checkpoint, {y} in the fold"))
    };
    said("resourceVersion", &a.resource_version, &b.resource_version)
        .or_else(|| said("uid", &a.uid, &b.uid))
        .or_else(|| said("apiVersion", &a.api_version, &b.api_version))
        .or_else(|| {
            if a.object == b.object {
                return None;
            }
            let (Ok(x), Ok(y)) = (a.object.parse(), b.object.parse()) else {
                return Some(format!(
                    "in its JSON: {} in the checkpoint, {} in the fold",
                    shorten(a.object.as_str()),
                    shorten(b.object.as_str())
                ));
            };
            let (path, u, v) = json_difference(&x, &y, String::new())?;
            let show = |v: Option<&serde_json::Value>| {
                v.map_or("(absent)".to_string(), |v| shorten(&v.to_string()))
            };
            Some(format!(
                "at {}: {} in the checkpoint, {} in the fold",
                if path.is_empty() { "the top" } else { &path },
                show(u),
                show(v)
            ))
        })
}

/// The first path where two JSON values differ, with both sides there.
fn json_difference<'a>(
    a: &'a serde_json::Value,
    b: &'a serde_json::Value,
    path: String,
) -> Option<(
    String,
    Option<&'a serde_json::Value>,
    Option<&'a serde_json::Value>,
)> {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => json_difference(u, v, join(k)),
                (u, v) if u != v => Some((join(k), u, v)),
                _ => None,
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| json_difference(u, v, format!("{path}[{i}]"))),
        (u, v) if u != v => Some((path, Some(u), Some(v))),
        _ => None,
    }
}

/// At most 160 characters of `s`.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::outcome;
    use super::*;
    use crate::model::{ACTION_ID_ANNOTATION, INSTANCE_LABEL, MANAGED_BY, MANAGER};
    use crate::record::{
        Action, ActionRecord, Body, Change, ObservedEvent, OutcomeResult, Redrive, Verb,
    };
    use chrono::TimeZone;
    use serde_json::{Value, json};

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 123_456_789)
            .single()
            .unwrap_or_else(|| panic!("a valid time"))
    }

    fn upsert(object: Value) -> Body {
        let key = ObjKey::new(
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default(),
        );
        Body::Event(ObservedEvent {
            change: Change::Upsert,
            key,
            api_version: object["apiVersion"].as_str().unwrap_or_default().into(),
            uid: object["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .into(),
            resource_version: object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .into(),
            object: Some(Json::from_value(&object)),
            synthesized: false,
        })
    }

    fn app(name: &str, rv: u64, host: &str) -> Body {
        upsert(
            json!({"apiVersion": "logbook.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                "resourceVersion": rv.to_string(), "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"image": "nginx:1.27", "host": host, "replicas": 2}}),
        )
    }

    fn deployment(name: &str, rv: u64, action: Option<&str>) -> Body {
        let mut o = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("d-{name}"),
                "resourceVersion": rv.to_string(),
                "labels": {MANAGED_BY: MANAGER, INSTANCE_LABEL: name}},
            "spec": {"replicas": 2, "ratio": 0.1}});
        if let Some(a) = action {
            o["metadata"]["annotations"] = json!({ACTION_ID_ANNOTATION: a});
        }
        upsert(o)
    }

    fn action(name: &str, verb: Verb, plan_seq: u64) -> (String, Body) {
        let a = Action::new(
            verb,
            ObjKey::new("Deployment", "shop", name),
            "apps/v1",
            Some(format!("shop/{name}")),
            (verb != Verb::Delete).then(|| json!({"kind": "Deployment", "spec": {"replicas": 3}})),
            None,
            format!("test {plan_seq}"),
            Default::default(),
        );
        (
            a.id.clone(),
            Body::Action(ActionRecord {
                plan_seq,
                action: a.into(),
            }),
        )
    }

    fn marker(kind: MarkerKind, detail: Value) -> Body {
        Body::Marker(MarkerRecord {
            marker: kind,
            detail,
            state: None,
        })
    }

    /// A history that leaves something in every part of the state: objects (an Application
    /// with a host, managed children), a pending action due, one re-driven, one applied and
    /// awaiting its observation, one retried, `issued`, the planner settings and a deadline.
    fn history() -> (Vec<Body>, Vec<Body>) {
        let (web, a_web) = action("web", Verb::Apply, 5);
        let (api, a_api) = action("api", Verb::Apply, 5);
        let (blog, a_blog) = action("blog", Verb::Create, 9);
        let before = vec![
            marker(
                MarkerKind::Config,
                json!({"planner": {"ingressClass": "nginx", "pathType": "Prefix"},
                    "answerDeadlineMs": 5_000}),
            ),
            app("web", 3, "shop.example.com"),
            app("api", 4, "shop.example.com"),
            deployment("web", 5, None),
            deployment("api", 6, None),
            a_web,
            a_api,
            outcome(&web, OutcomeResult::Applied, Some("20"), false),
            marker(
                MarkerKind::Redrive,
                serde_json::to_value(Redrive {
                    action_id: api.clone(),
                    action_seq: 7,
                    attempt: 1,
                    due: String::new(),
                })
                .unwrap_or_default(),
            ),
            a_blog,
            outcome(&blog, OutcomeResult::Conflict, None, true),
        ];
        let after = vec![
            deployment("web", 20, None),
            deployment("api", 21, Some(&api)),
            outcome(&blog, OutcomeResult::Applied, Some("30"), false),
            deployment("blog", 30, None),
            app("api", 31, "api.example.com"),
            marker(
                MarkerKind::Config,
                json!({"planner": {"ingressClass": "traefik"}, "answerDeadlineMs": 1_000}),
            ),
        ];
        (before, after)
    }

    fn fold_all(fold: &mut Fold, bodies: &[Body], first: u64) {
        for (i, b) in bodies.iter().enumerate() {
            let seq = first + i as u64;
            fold.apply(seq, at(seq as i64), b);
        }
    }

    fn encoded(fold: &Fold) -> Checkpoint {
        fold.checkpoint().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_fold_comes_back_exactly_from_its_checkpoint_and_folds_on_the_same() {
        let (before, after) = history();
        let mut fold = Fold::new();
        fold_all(&mut fold, &before, 1);
        let written = encoded(&fold);
        assert_eq!(written.upto_seq, before.len() as u64);
        assert_eq!(written.digest, digest_of(&written.state));
        let mut loaded = Fold::from_checkpoint(&written.state).unwrap_or_else(|e| panic!("{e}"));
        // The same bytes again: nothing was lost or reordered.
        assert_eq!(encoded(&loaded), written);
        assert_ne!(loaded.world().id(), fold.world().id());
        // What the planner and the controller read of it.
        assert_eq!(loaded.last_seq(), fold.last_seq());
        assert_eq!(loaded.world().now(), fold.world().now());
        assert_eq!(loaded.answer_deadline(), fold.answer_deadline());
        assert_eq!(loaded.planner_settings(), fold.planner_settings());
        assert_eq!(loaded.next_due(), fold.next_due());
        assert!(fold.next_due().is_some());
        assert_eq!(loaded.overdue(at(10_000)), fold.overdue(at(10_000)));
        assert_eq!(
            fold.overdue(at(10_000)).len(),
            2,
            "web is awaiting, not due"
        );
        let pending = |f: &Fold| f.world().pending_actions().cloned().collect::<Vec<_>>();
        assert_eq!(pending(&loaded), pending(&fold));
        assert_eq!(pending(&fold).len(), 3);
        let claims = |f: &Fold| {
            f.world()
                .host_claims("shop.example.com")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(claims(&loaded), claims(&fold));
        assert_eq!(claims(&fold).len(), 2);
        let children = |f: &Fold| {
            f.world()
                .children_of("shop", "web")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(children(&loaded), children(&fold));
        assert_eq!(loaded.world().app_count(), 2);
        for key in fold.world().objects().map(|(k, _)| k.clone()) {
            assert_eq!(
                loaded.world().object(&key),
                fold.world().object(&key),
                "{key}"
            );
            assert_eq!(
                loaded.world().issued(&key),
                fold.world().issued(&key),
                "{key}"
            );
        }
        // Folding on: the same state after every entry.
        let first = fold.last_seq() + 1;
        for (i, b) in after.iter().enumerate() {
            let seq = first + i as u64;
            assert_eq!(
                fold.apply(seq, at(seq as i64), b),
                loaded.apply(seq, at(seq as i64), b)
            );
            assert_eq!(encoded(&loaded), encoded(&fold), "after entry {seq}");
        }
        assert!(
            fold.world().pending_actions().count() < 3,
            "the history settled some"
        );
    }

    /// The owned state, built field by field from the fold: what [`StateView`] must write.
    fn owned(fold: &Fold) -> Vec<u8> {
        let world = &fold.world;
        let state = State {
            format: CHECKPOINT_FORMAT,
            last_seq: fold.last_seq,
            now: world.now.clone(),
            answer_deadline_ms: fold.answer_deadline_ms,
            planner: fold.planner.clone(),
            objects: world
                .objects
                .iter()
                .map(|(key, o)| StoredObject {
                    key: key.clone(),
                    api_version: o.api_version.clone(),
                    uid: o.uid.clone(),
                    resource_version: o.resource_version.clone(),
                    object: Json::from_value(o.object()),
                })
                .collect(),
            pending: world.pending.values().map(RecordedAction::from).collect(),
            issued: world
                .issued
                .iter()
                .map(|(target, (plan_seq, id))| Issued {
                    target: target.clone(),
                    plan_seq: *plan_seq,
                    action_id: id.clone(),
                })
                .collect(),
            pending_ids: fold
                .pending_ids
                .iter()
                .map(|(id, target)| PendingId {
                    action_id: id.clone(),
                    target: target.clone(),
                })
                .collect(),
            awaiting: fold
                .awaiting
                .iter()
                .map(|(target, (id, rv))| Awaiting {
                    target: target.clone(),
                    action_id: id.clone(),
                    resource_version: rv.clone(),
                })
                .collect(),
            due: fold
                .due
                .iter()
                .map(|(id, d)| StoredDue {
                    action_id: id.clone(),
                    at: d.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
                    action_seq: d.action_seq,
                    redrives: d.redrives,
                })
                .collect(),
        };
        rmp_serde::to_vec_named(&state).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_state_is_written_as_the_owned_state_would_be_and_hashed_as_written() {
        let (before, after) = history();
        let mut fold = Fold::new();
        for (i, b) in before.iter().chain(&after).enumerate() {
            let seq = i as u64 + 1;
            fold.apply(seq, at(seq as i64), b);
            let written = encoded(&fold);
            assert_eq!(written.state, owned(&fold), "after entry {seq}");
            assert_eq!(fold.state_digest(), Ok(written.digest), "after entry {seq}");
        }
    }

    #[test]
    fn the_same_fold_always_writes_the_same_bytes() {
        let (before, _) = history();
        let mut a = Fold::new();
        fold_all(&mut a, &before, 1);
        let mut b = Fold::new();
        fold_all(&mut b, &before, 1);
        assert_eq!(encoded(&a), encoded(&b));
        assert_eq!(encoded(&a), encoded(&a.clone()));
        // An empty fold is a checkpoint too.
        let empty = encoded(&Fold::new());
        let back = Fold::from_checkpoint(&empty.state).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encoded(&back), empty);
    }

    #[test]
    fn loading_checks_place_digest_and_format() {
        let (before, _) = history();
        let mut fold = Fold::new();
        fold_all(&mut fold, &before, 1);
        let seq = fold.last_seq() + 1;
        let record = |c: Checkpoint| match encoded_entry(c) {
            Body::Marker(m) => m,
            other => panic!("{other:?}"),
        };
        fn encoded_entry(c: Checkpoint) -> Body {
            c.entry(at(0), "asked").body
        }
        let good = record(encoded(&fold));
        let (detail, loaded) = load(&good, seq).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(detail.upto_seq, seq - 1);
        assert_eq!(detail.reason, "asked");
        assert_eq!(detail.applications, 2);
        assert_eq!(loaded.last_seq(), seq - 1);

        let err = |m: &MarkerRecord, seq: u64| match load(m, seq) {
            Ok(_) => panic!("loaded"),
            Err(e) => e,
        };
        assert!(err(&good, seq + 1).contains("sits at entry"), "misplaced");
        let mut damaged = good.clone();
        let mut bytes = damaged
            .state
            .as_ref()
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        damaged.state = Some(Blob::from(bytes));
        assert!(err(&damaged, seq).contains("damaged"), "damaged");
        let mut bare = good.clone();
        bare.state = None;
        assert!(err(&bare, seq).contains("no state"));
        let mut newer = good.clone();
        newer.detail["format"] = json!(CHECKPOINT_FORMAT + 1);
        assert!(err(&newer, seq).contains("does not read"));
        let mut unreadable = good.clone();
        unreadable.detail = json!({"digest": 5});
        assert!(err(&unreadable, seq).contains("cannot be read"));
        // A state whose digest is right but which is not a state at all.
        let mut garbage = good;
        garbage.state = Some(Blob::from(b"not a state".to_vec()));
        garbage.detail["digest"] = json!(digest_of(b"not a state"));
        assert!(err(&garbage, seq).contains("not a checkpoint this build reads"));
    }

    #[test]
    fn the_first_difference_names_what_differs() {
        let (before, after) = history();
        let mut fold = Fold::new();
        fold_all(&mut fold, &before, 1);
        let a = encoded(&fold);
        assert_eq!(first_difference(&a.state, &a.state), None);
        let mut other = fold.clone();
        other.apply(fold.last_seq(), at(fold.last_seq() as i64), &after[0]);
        let b = encoded(&other);
        let diff = first_difference(&a.state, &b.state).unwrap_or_default();
        assert_eq!(
            diff,
            "object Deployment/shop/web differs in its resourceVersion: 5 in the checkpoint, 20 \
             in the fold"
        );
        // Inside the object: the path.
        let mut edited = fold.clone();
        let web = ObjKey::new("Deployment", "shop", "web");
        let mut object = edited
            .world()
            .object(&web)
            .map(|o| o.object().clone())
            .unwrap_or_default();
        object["spec"]["replicas"] = json!(7);
        edited.apply(fold.last_seq(), at(fold.last_seq() as i64), &upsert(object));
        let c = encoded(&edited);
        assert_eq!(
            first_difference(&c.state, &a.state).unwrap_or_default(),
            "object Deployment/shop/web differs at spec.replicas: 7 in the checkpoint, 2 in the \
             fold"
        );
    }
}
