//! A log of what changed: an event's object, or an action's object and basis, stored as a JSON
//! Patch (RFC 6902) against the previous recorded version of the same object, and made whole
//! again on reading.
//!
//! - [`Deltas`] (the writer's side, the controller's core): decides, for each entry of a batch,
//!   whether its object is stored whole or as a [`Delta`], and remembers what was recorded.
//! - [`Rebuild`] (the reader's side, the log's reader): makes a stored entry whole again, from
//!   the last version it saw of the same object, or by walking back through the patches' bases.
//! - [`diff`] and [`apply`]: the patch between two objects, and applying one (the crate
//!   `json-patch` applies; `diff` is ours because `json_patch::diff` compares arrays index by
//!   index, so one rule inserted into a sorted list of hundreds rewrites every rule after it).
//!
//! What is stored as a patch, and when a whole version is stored instead, is documented in
//! `schema/entries.md` ("Objects stored as patches"). Pure: no I/O; the writer's diff of large
//! arrays gives up after a time limit (a coarser patch, or a whole object, never a wrong one),
//! which changes what is stored, never what is read back.

use super::entry::{Appended, Body, Change, Entry, Json, NewEntry};
use super::key::ObjKey;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// A record whose patched part ([`Doc`]: an event's object; an action's object and basis) is at
/// least this long in JSON may be stored as a patch; shorter ones are always stored whole (most
/// Deployments and Services: rebuilding them would cost more than it saves).
pub const DELTA_MIN_BYTES: usize = 2048;

/// A whole version of an object is stored at least once every this many records of it (so
/// rebuilding one from scratch applies at most `FULL_EVERY - 1` patches).
pub const FULL_EVERY: u32 = 32;

/// How long [`diff`] may align one array before it settles for a coarser patch.
const ARRAY_DIFF_DEADLINE: Duration = Duration::from_millis(20);

/// A record stored as a patch: what the payload of a format-2 event or action holds instead of
/// its [`Doc`] (an event's object; an action's object and basis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The seq of the entry holding the previous recorded version of the same object: the
    /// same kind of record (event or action) about the same object key.
    pub base_seq: u64,
    /// The JSON Patch (RFC 6902) from that version's document to this one's, as canonical
    /// JSON text.
    pub patch: Json,
    /// SHA-256 of this record's document as canonical JSON text, lowercase hex: what applying
    /// the patch to the base must give, checked on every rebuild.
    pub sha256: String,
}

/// Which records of an object form one chain of versions: its events, and the actions on it,
/// are patched each against their own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stream {
    Event,
    Action,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Event => "event",
            Stream::Action => "action",
        })
    }
}

type Slot = (Stream, ObjKey);

/// The part of a record a patch covers (its "document"): an event's object; an action's
/// object and basis, as the JSON object `{"basis": {...}, "object": {...}}` (the basis of an
/// action on a shared object names every object it was derived from, and grows with them).
#[derive(Clone, Debug, PartialEq)]
enum Doc {
    Event(Json),
    Action(Json, BTreeMap<String, String>),
}

/// The chain a record belongs to, and the length of its document's JSON (about; `None` when it
/// has none: a delete, an action without an object, a stored patch not yet rebuilt). `None`
/// for plans, outcomes and markers.
fn slot_of(body: &Body) -> Option<(Stream, &ObjKey, Option<usize>)> {
    match body {
        Body::Event(e) => {
            let len = match e.change {
                Change::Upsert => e.object.as_ref().map(|o| o.as_str().len()),
                Change::Delete => None,
            };
            Some((Stream::Event, &e.key, len))
        }
        Body::Action(a) => {
            let len = a.action.object.as_ref().map(|o| {
                let basis: usize = a
                    .action
                    .basis
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 6)
                    .sum();
                o.as_str().len() + basis + 20
            });
            Some((Stream::Action, &a.action.target, len))
        }
        _ => None,
    }
}

impl Doc {
    /// The record's document, if it has one.
    fn of(body: &Body) -> Option<Doc> {
        match body {
            Body::Event(e) if e.change == Change::Upsert => e.object.clone().map(Doc::Event),
            Body::Action(a) => a
                .action
                .object
                .clone()
                .map(|o| Doc::Action(o, a.action.basis.clone())),
            _ => None,
        }
    }

    /// The document as a JSON value.
    fn value(&self) -> Result<Value, String> {
        let parse = |o: &Json| {
            o.parse()
                .map_err(|e| format!("its object is not JSON: {e}"))
        };
        Ok(match self {
            Doc::Event(o) => parse(o)?,
            Doc::Action(o, basis) => {
                let basis = basis
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                let mut doc = serde_json::Map::new();
                doc.insert("basis".into(), Value::Object(basis));
                doc.insert("object".into(), parse(o)?);
                Value::Object(doc)
            }
        })
    }

    /// The document of a record of `stream` from its JSON value.
    fn from_value(stream: Stream, value: &Value) -> Result<Doc, String> {
        match stream {
            Stream::Event => Ok(Doc::Event(Json::from_value(value))),
            Stream::Action => {
                let not = |what: &str| format!("the patched action {what}");
                let object = value
                    .get("object")
                    .filter(|o| !o.is_null())
                    .ok_or_else(|| not("has no object"))?;
                let basis = value
                    .get("basis")
                    .and_then(Value::as_object)
                    .ok_or_else(|| not("has no basis"))?
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect::<Option<BTreeMap<_, _>>>()
                    .ok_or_else(|| not("has a basis value that is not a string"))?;
                let extra = value.as_object().map_or(0, |m| m.len());
                if extra != 2 {
                    return Err(not("has fields other than basis and object"));
                }
                Ok(Doc::Action(Json::from_value(object), basis))
            }
        }
    }

    /// SHA-256 of the document's canonical JSON text, lowercase hex.
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        match self {
            Doc::Event(o) => h.update(o.as_str().as_bytes()),
            Doc::Action(o, basis) => {
                // The text `{"basis":{...},"object":...}`, written piece by piece.
                h.update(b"{\"basis\":");
                let basis = serde_json::to_string(basis).unwrap_or_default();
                h.update(basis.as_bytes());
                h.update(b",\"object\":");
                h.update(o.as_str().as_bytes());
                h.update(b"}");
            }
        }
        hex::encode(h.finalize())
    }

    /// Puts the document into `body` (an event's object; an action's object and basis).
    fn put(self, body: &mut Body) {
        match (self, body) {
            (Doc::Event(o), Body::Event(e)) => e.object = Some(o),
            (Doc::Action(o, basis), Body::Action(a)) => {
                a.action.object = Some(o);
                a.action.basis = basis;
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The patch.

/// The JSON Patch (RFC 6902: `add`, `remove` and `replace` operations) that turns `old` into
/// `new`. Objects are compared key by key; arrays are aligned (Myers' algorithm over the
/// elements' JSON text), so an element inserted or removed anywhere costs one operation; an
/// element changed in place is patched inside when that is shorter than replacing it.
///
/// Aligning an array gives up after a time limit and then pairs what is left element by
/// element: the patch is still exact, only larger. Check the result with [`apply`] when it
/// matters (the writer does).
pub fn diff(old: &Value, new: &Value) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    diff_into(old, new, &mut PointerBuf::new(), &mut ops);
    ops
}

fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        // `0.0 == -0.0`, but their texts differ: compare floats bit for bit.
        (Value::Number(x), Value::Number(y)) => {
            x == y && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        _ => a == b,
    }
}

fn diff_into(old: &Value, new: &Value, path: &mut PointerBuf, ops: &mut Vec<PatchOperation>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, vb) in b {
                path.push_back(k.as_str());
                match a.get(k) {
                    Some(va) => diff_into(va, vb, path, ops),
                    None => ops.push(PatchOperation::Add(AddOperation {
                        path: path.clone(),
                        value: vb.clone(),
                    })),
                }
                path.pop_back();
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                path.push_back(k.as_str());
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: path.clone(),
                }));
                path.pop_back();
            }
        }
        (Value::Array(a), Value::Array(b)) => diff_array(a, b, path, ops),
        _ if same_scalar(old, new) => {}
        _ => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: path.clone(),
            value: new.clone(),
        })),
    }
}

fn diff_array(a: &[Value], b: &[Value], path: &mut PointerBuf, ops: &mut Vec<PatchOperation>) {
    let ta: Vec<String> = a.iter().map(Value::to_string).collect();
    let tb: Vec<String> = b.iter().map(Value::to_string).collect();
    let aligned = similar::capture_diff_slices_deadline(
        similar::Algorithm::Myers,
        &ta,
        &tb,
        Some(Instant::now() + ARRAY_DIFF_DEADLINE),
    );
    let at = |path: &mut PointerBuf, i: usize| {
        let mut p = path.clone();
        p.push_back(i);
        p
    };
    // Operations apply in order: when one at `new_index` is reached, the elements before it
    // are already the new array's, and the rest are the old array's from `old_index` on.
    for op in aligned {
        match op {
            similar::DiffOp::Equal { .. } => {}
            similar::DiffOp::Delete {
                old_len, new_index, ..
            } => {
                for _ in 0..old_len {
                    ops.push(PatchOperation::Remove(RemoveOperation {
                        path: at(path, new_index),
                    }));
                }
            }
            similar::DiffOp::Insert {
                new_index, new_len, ..
            } => {
                for (i, v) in b.iter().enumerate().skip(new_index).take(new_len) {
                    ops.push(PatchOperation::Add(AddOperation {
                        path: at(path, i),
                        value: v.clone(),
                    }));
                }
            }
            similar::DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                let paired = old_len.min(new_len);
                for i in 0..paired {
                    let mut p = at(path, new_index + i);
                    let mut inside = Vec::new();
                    diff_into(&a[old_index + i], &b[new_index + i], &mut p, &mut inside);
                    let inside_len = serde_json::to_string(&inside).map_or(usize::MAX, |s| s.len());
                    // A replace costs the new element's text and its path, and some framing.
                    if inside_len <= tb[new_index + i].len() + p.as_str().len() + 32 {
                        ops.extend(inside);
                    } else {
                        ops.push(PatchOperation::Replace(ReplaceOperation {
                            path: p,
                            value: b[new_index + i].clone(),
                        }));
                    }
                }
                for _ in paired..old_len {
                    ops.push(PatchOperation::Remove(RemoveOperation {
                        path: at(path, new_index + paired),
                    }));
                }
                let added = b.iter().enumerate().skip(new_index + paired);
                for (i, v) in added.take(new_len - paired) {
                    ops.push(PatchOperation::Add(AddOperation {
                        path: at(path, i),
                        value: v.clone(),
                    }));
                }
            }
        }
    }
}

/// The canonical JSON text of a patch.
pub fn patch_text(ops: &[PatchOperation]) -> Json {
    // Serializing patch operations (strings and JSON values) cannot fail.
    Json::from_value(&serde_json::to_value(ops).unwrap_or(Value::Null))
}

/// Applies the JSON Patch `patch` (text) to `value`. On error `value` may be partly patched.
pub fn apply(value: &mut Value, patch: &Json) -> Result<(), String> {
    let ops: Vec<PatchOperation> = patch
        .parse_as()
        .map_err(|e| format!("its patch is not a JSON Patch: {e}"))?;
    json_patch::patch_unsafe(value, &ops).map_err(|e| format!("its patch does not apply: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The writer's side.

/// The last recorded version of an object, as the writer knows it.
struct Base {
    seq: u64,
    /// Its document as a JSON value.
    value: Value,
    /// Patches stored since the last whole version (0: this one is whole).
    deltas: u32,
}

/// What [`Deltas::store`] decided for one entry of the batch, for [`Deltas::recorded`].
enum Pending {
    /// Not an object's record: nothing to remember.
    Skip,
    /// A record of `slot` that cannot be a base (no object, too small, unreadable).
    Forget(Slot),
    /// A record of `slot` that will be the next base once it is appended (its document, and
    /// how many patches since the last whole version, itself included).
    Base(Slot, Value, u32),
}

/// The writer's side: which records are stored as patches, against what.
///
/// A record stores its document (an event's object; an action's object and basis) as a patch
/// when all of these hold, else whole (as before this existed):
/// - it is an upsert event or an action with an object, and its document's JSON is at least
///   [`DELTA_MIN_BYTES`] long;
/// - the previous record of the same object (same kind of record, same key) was appended by
///   this `Deltas` (so a new one, at each start of the controller, begins with whole versions),
///   carried its object, and was not forgotten by [`Deltas::forget_events_of`] (a relist);
/// - no record of the same object comes earlier in the same batch (its seq is not known yet);
/// - fewer than [`FULL_EVERY`]` - 1` patches were stored since the last whole version;
/// - the patch is less than half as long as the document, and applying it to the base gives
///   exactly the document.
#[derive(Default)]
pub struct Deltas {
    bases: BTreeMap<Slot, Base>,
    pending: Vec<Pending>,
}

impl Deltas {
    /// Knows no base yet: the first record of every object is whole.
    pub fn new() -> Deltas {
        Deltas::default()
    }

    /// The entries of `batch` as they are to be appended: each the same entry, with
    /// [`NewEntry::delta`] set where its document is to be stored as a patch. Call
    /// [`Deltas::recorded`] with what the append reported before the next batch.
    pub fn store(&mut self, batch: &[NewEntry]) -> Vec<NewEntry> {
        self.pending.clear();
        let mut touched: BTreeSet<Slot> = BTreeSet::new();
        let mut out = Vec::with_capacity(batch.len());
        for entry in batch {
            let mut stored = entry.clone();
            stored.delta = None;
            let pending = match slot_of(&entry.body) {
                None => Pending::Skip,
                Some((stream, key, len)) => {
                    let slot = (stream, key.clone());
                    let first_in_batch = touched.insert(slot.clone());
                    let doc = Doc::of(&entry.body).filter(|_| len >= Some(DELTA_MIN_BYTES));
                    match doc.map(|d| d.value().map(|v| (d, v))) {
                        Some(Ok((doc, value))) => {
                            let base = self.bases.get(&slot).filter(|_| first_in_batch);
                            let len = len.unwrap_or(0);
                            let delta =
                                base.and_then(|b| patch_against(b, slot.0, &doc, &value, len));
                            let deltas = match (&delta, base) {
                                (Some(_), Some(b)) => b.deltas + 1,
                                _ => 0,
                            };
                            stored.delta = delta;
                            Pending::Base(slot, value, deltas)
                        }
                        _ => Pending::Forget(slot),
                    }
                }
            };
            self.pending.push(pending);
            out.push(stored);
        }
        out
    }

    /// What the append of the batch last given to [`Deltas::store`] reported, entry by entry:
    /// each appended document becomes its object's base; one that was already in the log (or
    /// not appended at all) leaves its object without a base (the next record is whole).
    pub fn recorded(&mut self, appended: &[Appended]) {
        let pending = std::mem::take(&mut self.pending);
        for (i, p) in pending.into_iter().enumerate() {
            match (p, appended.get(i)) {
                (Pending::Skip, _) => {}
                (Pending::Base(slot, value, deltas), Some(Appended::Added { seq, .. })) => {
                    let base = Base {
                        seq: *seq,
                        value,
                        deltas,
                    };
                    self.bases.insert(slot, base);
                }
                (Pending::Base(slot, ..) | Pending::Forget(slot), _) => {
                    self.bases.remove(&slot);
                }
            }
        }
    }

    /// Forgets the bases of the events of `kind` (a relist of that kind starts): the next
    /// record of each such object is whole.
    pub fn forget_events_of(&mut self, kind: &str) {
        self.bases
            .retain(|(stream, key), _| !(*stream == Stream::Event && key.kind == kind));
    }
}

/// The patch from `base` to `doc` (`value` parsed, `len` its length), if it is worth storing
/// and checks out.
fn patch_against(
    base: &Base,
    stream: Stream,
    doc: &Doc,
    value: &Value,
    len: usize,
) -> Option<Delta> {
    if base.deltas + 1 >= FULL_EVERY {
        return None;
    }
    let ops = diff(&base.value, value);
    let patch = patch_text(&ops);
    if patch.as_str().len() * 2 >= len {
        return None;
    }
    // What a reader will do: apply the stored text of the patch to the base, and take the
    // document's canonical text from the result.
    let mut check = base.value.clone();
    apply(&mut check, &patch).ok()?;
    if Doc::from_value(stream, &check).ok()? != *doc {
        return None;
    }
    Some(Delta {
        base_seq: base.seq,
        patch,
        sha256: doc.digest(),
    })
}

// ---------------------------------------------------------------------------------------------
// The reader's side.

/// Why an entry could not be made whole.
#[derive(Debug)]
pub enum RebuildError<E> {
    /// Reading an earlier entry failed.
    Fetch(E),
    /// Entry `seq` (the one read, or a base it leads to) cannot be made whole: `problem` says
    /// why, in words that follow "entry N is corrupt: ".
    Bad {
        /// The entry at fault.
        seq: u64,
        /// What is wrong.
        problem: String,
    },
}

impl<E: fmt::Display> fmt::Display for RebuildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebuildError::Fetch(e) => write!(f, "{e}"),
            RebuildError::Bad { seq, problem } => write!(f, "entry {seq}: {problem}"),
        }
    }
}

/// The last version of an object the reader saw.
struct Version {
    seq: u64,
    kept: Kept,
}

/// How a version is kept.
enum Kept {
    /// As read whole: parsed only if a patch comes.
    Doc(Doc),
    /// As rebuilt: parsed, ready for the next patch (no parsing per patch).
    Value(Value),
}

impl Kept {
    /// The document as a value (a copy; `take` moves it out instead).
    fn value(&self) -> Result<Value, String> {
        match self {
            Kept::Doc(doc) => doc.value(),
            Kept::Value(v) => Ok(v.clone()),
        }
    }

    /// The document as a value, moved out (what is left is an empty placeholder).
    fn take(&mut self) -> Result<Value, String> {
        match std::mem::replace(self, Kept::Value(Value::Null)) {
            Kept::Doc(doc) => doc.value(),
            Kept::Value(v) => Ok(v),
        }
    }
}

/// The reader's side: makes entries whole as they are read.
///
/// It keeps the last version it saw of each large object (a document of at least
/// [`DELTA_MIN_BYTES`]: as read when it was whole, parsed once a patch applied to it), so
/// entries read in order are rebuilt from the version just before them, one patch each and no
/// parsing. An entry whose base it does not hold (read out of order, or the first read from
/// the middle of the log) is rebuilt by walking back through the patches' bases to the last
/// whole version, with `fetch` (the stored entry at a seq, not rebuilt), then applying the
/// patches forward. Every rebuilt document is checked against the digest its entry recorded.
#[derive(Default)]
pub struct Rebuild {
    /// By object key: the last event, and the last action (see [`Stream`]).
    last: BTreeMap<ObjKey, [Option<Version>; 2]>,
}

impl Rebuild {
    /// Holds no version yet.
    pub fn new() -> Rebuild {
        Rebuild::default()
    }

    fn slot(&mut self, stream: Stream, key: &ObjKey) -> Option<&mut Option<Version>> {
        self.last.get_mut(key).map(|v| &mut v[stream as usize])
    }

    fn keep(&mut self, stream: Stream, key: &ObjKey, version: Option<Version>) {
        match (self.last.get_mut(key), version) {
            (Some(slots), version) => {
                slots[stream as usize] = version;
                if slots.iter().all(Option::is_none) {
                    self.last.remove(key);
                }
            }
            (None, None) => {}
            (None, Some(version)) => {
                let mut slots = [None, None];
                slots[stream as usize] = Some(version);
                self.last.insert(key.clone(), slots);
            }
        }
    }

    /// Makes `entry` (as stored) whole: a document stored as a patch is rebuilt and put in its
    /// body ([`Entry::delta`] stays, saying how it was stored). Entries without a patch are
    /// left as they are (and their large documents kept as bases).
    pub fn whole<E>(
        &mut self,
        entry: &mut Entry,
        fetch: &mut dyn FnMut(u64) -> Result<Option<Entry>, E>,
    ) -> Result<(), RebuildError<E>> {
        let Some((stream, key, len)) = slot_of(&entry.body) else {
            return Ok(());
        };
        let Some(delta) = &entry.delta else {
            // Most entries: small, and nothing kept about their object.
            if len < Some(DELTA_MIN_BYTES) && !self.last.contains_key(key) {
                return Ok(());
            }
            let key = key.clone();
            let version = Doc::of(&entry.body)
                .filter(|_| len >= Some(DELTA_MIN_BYTES))
                .map(|doc| Version {
                    seq: entry.seq,
                    kept: Kept::Doc(doc),
                });
            self.keep(stream, &key, version);
            return Ok(());
        };
        if len.is_some() {
            return Err(bad(
                entry.seq,
                "it holds both a whole object and a patch".into(),
            ));
        }
        let key = key.clone();
        let base = match self.slot(stream, &key) {
            Some(Some(v)) if v.seq == delta.base_seq => {
                let base = v.kept.take();
                // Moved out: no longer a version to keep, whatever happens next.
                self.keep(stream, &key, None);
                base.map_err(|p| bad(delta.base_seq, p))?
            }
            _ => self.walk_back(stream, &key, entry.seq, delta.base_seq, fetch)?,
        };
        let (doc, value) = patched(stream, base, entry.seq, delta)?;
        doc.put(&mut entry.body);
        let version = Version {
            seq: entry.seq,
            kept: Kept::Value(value),
        };
        self.keep(stream, &key, Some(version));
        Ok(())
    }

    /// The document of `key` at entry `base_seq` (a base of entry `from`), walking back
    /// through stored patches to a whole version.
    fn walk_back<E>(
        &mut self,
        stream: Stream,
        key: &ObjKey,
        from: u64,
        base_seq: u64,
        fetch: &mut dyn FnMut(u64) -> Result<Option<Entry>, E>,
    ) -> Result<Value, RebuildError<E>> {
        let mut chain: Vec<(u64, Delta)> = Vec::new();
        let (mut at, mut seq) = (from, base_seq);
        let mut value = loop {
            if seq >= at {
                return Err(bad(
                    at,
                    format!("its patch names base entry {seq}, which does not come before it"),
                ));
            }
            if let Some(Some(v)) = self.slot(stream, key)
                && v.seq == seq
            {
                break v.kept.value().map_err(|p| bad(seq, p))?;
            }
            let Some(stored) = fetch(seq).map_err(RebuildError::Fetch)? else {
                return Err(bad(
                    at,
                    format!("its patch names base entry {seq}, which is not in the log"),
                ));
            };
            match slot_of(&stored.body) {
                Some((s, k, _)) if s == stream && k == key => {}
                other => {
                    let what = match other {
                        Some((s, k, _)) => format!("an {s} about {k}"),
                        None => format!("a {}", stored.kind()),
                    };
                    return Err(bad(
                        at,
                        format!(
                            "its patch names base entry {seq}, which is {what}, not an {stream} \
                             about {key}"
                        ),
                    ));
                }
            }
            match (&stored.delta, Doc::of(&stored.body)) {
                (None, Some(doc)) => break doc.value().map_err(|p| bad(seq, p))?,
                (None, None) => {
                    return Err(bad(
                        at,
                        format!("its patch names base entry {seq}, which holds no object of {key}"),
                    ));
                }
                (Some(d), _) => {
                    chain.push((seq, d.clone()));
                    at = seq;
                    seq = d.base_seq;
                }
            }
        };
        for (seq, d) in chain.into_iter().rev() {
            value = patched(stream, value, seq, &d)?.1;
        }
        Ok(value)
    }
}

fn bad<E>(seq: u64, problem: String) -> RebuildError<E> {
    RebuildError::Bad { seq, problem }
}

/// `base` patched by entry `seq`'s delta, checked against its digest: the document and its
/// value.
fn patched<E>(
    stream: Stream,
    mut base: Value,
    seq: u64,
    delta: &Delta,
) -> Result<(Doc, Value), RebuildError<E>> {
    let against = |p: String| {
        bad(
            seq,
            format!(
                "{p} (applied to the document of its base entry {})",
                delta.base_seq
            ),
        )
    };
    apply(&mut base, &delta.patch).map_err(against)?;
    let doc = Doc::from_value(stream, &base).map_err(against)?;
    if doc.digest() != delta.sha256 {
        return Err(bad(
            seq,
            format!(
                "its patch applied to the document of its base entry {} does not give the \
                 document it recorded (SHA-256 differs): the base is not the version the patch \
                 was made against",
                delta.base_seq
            ),
        ));
    }
    Ok((doc, base))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::entry::{ActionRecord, EntryKind, Keys, ObservedEvent, decode_stored};
    use crate::record::{Action, Verb, entry_uuid};
    use chrono::{DateTime, Utc};
    use serde_json::json;

    /// A shared Ingress with one rule per host `app-{i}` for `i` in `hosts`, as observed.
    fn ingress(rv: u64, hosts: impl IntoIterator<Item = u32>) -> Value {
        let rules: Vec<Value> = hosts
            .into_iter()
            .map(|i| {
                json!({"host": format!("app-{i:04}.shop.example.com"), "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": format!("app-{i:04}"), "port": {"number": 80}}}
                }]}})
            })
            .collect();
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "logbook-shared", "namespace": "shop", "uid": "uid-ing",
                         "resourceVersion": rv.to_string(),
                         "annotations": {"logbook.dev/plan-seq": rv.to_string()}},
            "spec": {"rules": rules},
        })
    }

    fn key() -> ObjKey {
        ObjKey::new("Ingress", "shop", "logbook-shared")
    }

    fn at() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }

    fn event_of(key: &ObjKey, rv: u64, object: Option<&Value>) -> NewEntry {
        let ev = ObservedEvent {
            change: if object.is_some() {
                Change::Upsert
            } else {
                Change::Delete
            },
            key: key.clone(),
            api_version: "networking.k8s.io/v1".into(),
            uid: "uid-ing".into(),
            resource_version: rv.to_string(),
            object: object.map(Json::from_value),
            synthesized: false,
        };
        let id = entry_uuid(at(), "event", format!("{key}/{rv}").as_bytes());
        NewEntry::event(id, at(), ev, None)
    }

    fn event(rv: u64, object: &Value) -> NewEntry {
        event_of(&key(), rv, Some(object))
    }

    fn action(plan_seq: u64, object: &Value) -> NewEntry {
        action_with_basis(plan_seq, object, BTreeMap::new())
    }

    fn action_with_basis(
        plan_seq: u64,
        object: &Value,
        basis: BTreeMap<String, String>,
    ) -> NewEntry {
        let a = Action::new(
            Verb::Apply,
            key(),
            "networking.k8s.io/v1",
            None,
            Some(object.clone()),
            None,
            "rules changed".into(),
            basis,
        );
        let id = entry_uuid(at(), "action", format!("{plan_seq}/{}", a.id).as_bytes());
        NewEntry::action(id, at(), plan_seq, a)
    }

    /// A log in memory: each entry encoded and decoded as the SQLite log would.
    #[derive(Default)]
    struct Mem {
        entries: Vec<Entry>,
    }

    impl Mem {
        fn append(&mut self, deltas: &mut Deltas, batch: &[NewEntry]) -> Vec<Appended> {
            let stored = deltas.store(batch);
            let mut appended = Vec::new();
            for e in &stored {
                if let Some(i) = self.entries.iter().position(|x| x.id == e.id) {
                    appended.push(Appended::AlreadyPresent {
                        seq: i as u64 + 1,
                        id: e.id,
                    });
                    continue;
                }
                let (format, payload) = e.encode().unwrap_or_else(|err| panic!("{err}"));
                let (body, delta) =
                    decode_stored(e.kind(), format, &payload).unwrap_or_else(|err| panic!("{err}"));
                let seq = self.entries.len() as u64 + 1;
                self.entries.push(Entry {
                    seq,
                    id: e.id,
                    at: e.at,
                    keys: Keys::default(),
                    body,
                    delta,
                    format,
                    prev_hash: [0; 32],
                    hash: [0; 32],
                });
                appended.push(Appended::Added { seq, id: e.id });
            }
            deltas.recorded(&appended);
            appended
        }

        fn stored(&self, seq: u64) -> Entry {
            self.entries[seq as usize - 1].clone()
        }

        fn fetch(&self) -> impl FnMut(u64) -> Result<Option<Entry>, String> + '_ {
            |seq| Ok(self.entries.get(seq as usize - 1).cloned())
        }

        /// Every entry made whole, in order, by one `Rebuild`.
        fn whole_in_order(&self) -> Vec<Entry> {
            let mut rebuild = Rebuild::new();
            let mut fetch = self.fetch();
            self.entries
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    rebuild
                        .whole(&mut e, &mut fetch)
                        .unwrap_or_else(|err| panic!("{err}"));
                    e
                })
                .collect()
        }

        /// Entry `seq` made whole by a fresh `Rebuild` (random access).
        fn whole_alone(&self, seq: u64) -> Result<Entry, RebuildError<String>> {
            let mut e = self.stored(seq);
            Rebuild::new().whole(&mut e, &mut self.fetch())?;
            Ok(e)
        }
    }

    fn object_of(e: &Entry) -> Option<Json> {
        match &e.body {
            Body::Event(ev) => ev.object.clone(),
            Body::Action(a) => a.action.object.clone(),
            _ => None,
        }
    }

    fn payload_len(e: &NewEntry) -> usize {
        e.encode().map(|(_, p)| p.len()).unwrap_or(0)
    }

    #[test]
    fn patches_turn_one_value_into_the_other() {
        let tricky = json!({"a": [1, 2, {"b": [3, 4]}], "c": {"d": null, "e": "x"}, "f": 0.5,
                            "g": [[1], [2], [3]], "h": "", "i/j~k": 1, "z": -0.0});
        let cases = [
            (json!({}), json!({"a": 1})),
            (json!({"a": 1}), json!({})),
            (json!([1, 2, 3]), json!([0, 1, 2, 3, 4])),
            (json!([1, 2, 3, 4, 5]), json!([5, 4, 3, 2, 1])),
            (json!([1, 2, 3]), json!([])),
            (json!([]), json!([{"x": 1}])),
            (json!({"a": [1, 2]}), json!({"a": {"0": 1}})),
            (json!(1), json!("one")),
            (
                tricky.clone(),
                json!({"a": [1, {"b": [4, 3]}, 2], "c": {"e": "y"}, "f": 0.25,
                                    "g": [[2], [1], [3], [4]], "h": null, "i/j~k": 2, "z": 0.0}),
            ),
            (tricky.clone(), tricky.clone()),
            (
                ingress(1, 0..200),
                ingress(2, (0..200).filter(|i| i % 7 != 3)),
            ),
            (ingress(1, 0..50), ingress(2, (0..50).map(|i| i * 3 % 50))),
        ];
        for (old, new) in cases {
            let ops = diff(&old, &new);
            let patch = patch_text(&ops);
            let mut v = old.clone();
            apply(&mut v, &patch).unwrap_or_else(|e| panic!("{e}: {patch}"));
            assert_eq!(
                Json::from_value(&v),
                Json::from_value(&new),
                "{old} → {new} by {patch}"
            );
            if old == new {
                assert_eq!(patch.as_str(), "[]");
            }
        }
    }

    #[test]
    fn one_rule_more_is_one_operation_wherever_it_lands() {
        let old = ingress(1, (0..400).filter(|i| *i != 123));
        let new = ingress(2, 0..400);
        let ops = diff(&old, &new);
        // The resourceVersion, the plan-seq annotation, and the rule.
        assert_eq!(ops.len(), 3, "{}", patch_text(&ops));
        let whole = Json::from_value(&new).as_str().len();
        let ours = patch_text(&ops).as_str().len();
        assert!(ours * 50 < whole, "patch {ours} bytes for {whole}");
        // json_patch's own diff compares arrays index by index: every rule after the new one
        // is rewritten (why `diff` is ours).
        let theirs = patch_text(&json_patch::diff(&old, &new).0).as_str().len();
        assert!(theirs > whole / 2, "json_patch::diff gave {theirs} bytes");
    }

    #[test]
    fn large_objects_are_stored_as_patches_and_read_back_whole() {
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        let mut wanted = Vec::new();
        for n in 0..10u32 {
            let obj = ingress(u64::from(n) + 10, (0..100).filter(|i| *i != 50 + n));
            let act = ingress(0, (0..100).filter(|i| *i != 60 + n));
            // An event and an action on the same object, each patched against its own kind.
            mem.append(&mut deltas, &[event(u64::from(n) + 10, &obj)]);
            mem.append(&mut deltas, &[action(u64::from(n), &act)]);
            wanted.push(Json::from_value(&obj));
            wanted.push(Json::from_value(&act));
        }
        let stored: Vec<bool> = mem.entries.iter().map(|e| e.delta.is_some()).collect();
        // The first of each kind is whole, every later one a patch.
        assert_eq!(stored.iter().filter(|d| !**d).count(), 2);
        assert!(!stored[0] && !stored[1]);
        for e in &mem.entries {
            if let Some(d) = &e.delta {
                assert_eq!(object_of(e), None);
                assert_eq!(d.base_seq, e.seq - 2);
                assert!(d.patch.as_str().len() < 400, "{}", d.patch);
            }
        }
        let whole = mem.whole_in_order();
        let objects: Vec<Json> = whole.iter().filter_map(object_of).collect();
        assert_eq!(objects, wanted);
        // In any order, alone: walked back to the whole version.
        for seq in (1..=mem.entries.len() as u64).rev() {
            let e = mem.whole_alone(seq).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(object_of(&e).as_ref(), Some(&wanted[seq as usize - 1]));
            assert_eq!(e.delta, mem.stored(seq).delta);
        }
    }

    #[test]
    fn bytes_per_change_follow_the_change_not_the_object() {
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        let first = event(1, &ingress(1, 0..200));
        mem.append(&mut deltas, std::slice::from_ref(&first));
        let next = event(2, &ingress(2, 0..201));
        let stored = deltas.store(std::slice::from_ref(&next));
        let (whole, patched) = (payload_len(&next), payload_len(&stored[0]));
        assert!(stored[0].delta.is_some());
        assert!(whole > 30_000, "{whole}");
        assert!(
            patched < 800,
            "one rule more: {patched} bytes stored for {whole}"
        );
    }

    #[test]
    fn an_action_on_a_shared_object_stores_what_changed_in_its_object_and_basis() {
        // The basis names every Application whose rule is in the Ingress.
        let basis = |n: u32, bumped: u32| -> BTreeMap<String, String> {
            (0..n)
                .map(|i| {
                    let rv = if i == bumped { 900 } else { 100 + i };
                    (format!("Application/shop/app-{i:04}"), rv.to_string())
                })
                .collect()
        };
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        mem.append(
            &mut deltas,
            &[action_with_basis(1, &ingress(1, 0..200), basis(200, 999))],
        );
        let next = action_with_basis(2, &ingress(2, 0..201), basis(201, 7));
        let appended = mem.append(&mut deltas, std::slice::from_ref(&next));
        let stored = mem.stored(appended[0].seq());
        let d = stored
            .delta
            .as_ref()
            .unwrap_or_else(|| panic!("stored whole"));
        let Body::Action(rec) = &stored.body else {
            panic!("not an action")
        };
        assert!(rec.action.object.is_none() && rec.action.basis.is_empty());
        // One rule added, one Application added to the basis and one changed (and the
        // object's resourceVersion and plan-seq annotation).
        let ops: Vec<Value> = d.patch.parse_as().unwrap_or_default();
        assert_eq!(ops.len(), 5, "{}", d.patch);
        assert!(payload_len(&next) > 30_000, "{}", payload_len(&next));
        let whole = mem.whole_in_order();
        assert_eq!(whole[1].body, next.body);
        let Body::Action(rec) = &whole[1].body else {
            panic!("not an action")
        };
        let again = rec.action.to_action().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.content_id(), again.id);
    }

    #[test]
    fn a_whole_version_comes_every_full_every_records() {
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        for n in 0..(2 * FULL_EVERY as u64 + 3) {
            mem.append(
                &mut deltas,
                &[event(n + 1, &ingress(n + 1, 0..(60 + n as u32)))],
            );
        }
        let whole: Vec<u64> = mem
            .entries
            .iter()
            .filter(|e| e.delta.is_none())
            .map(|e| e.seq)
            .collect();
        let every = u64::from(FULL_EVERY);
        assert_eq!(whole, vec![1, every + 1, 2 * every + 1]);
        let rebuilt = mem.whole_alone(every).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            object_of(&rebuilt),
            Some(Json::from_value(&ingress(
                every,
                0..(60 + every as u32 - 1)
            )))
        );
    }

    #[test]
    fn whole_versions_after_a_relist_a_restart_a_repeat_or_a_delete() {
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        let v = |n: u64| ingress(n, 0..(80 + n as u32));
        mem.append(&mut deltas, &[event(1, &v(1))]);
        mem.append(&mut deltas, &[event(2, &v(2))]);
        assert!(mem.stored(2).delta.is_some());
        // A relist of Ingresses: the next is whole; of another kind: no change.
        deltas.forget_events_of("Deployment");
        mem.append(&mut deltas, &[event(3, &v(3))]);
        assert!(mem.stored(3).delta.is_some());
        deltas.forget_events_of("Ingress");
        mem.append(&mut deltas, &[event(4, &v(4))]);
        assert!(mem.stored(4).delta.is_none());
        // Two versions in one batch: the second's base has no seq yet, so it is whole.
        mem.append(&mut deltas, &[event(5, &v(5)), event(6, &v(6))]);
        assert!(mem.stored(5).delta.is_some() && mem.stored(6).delta.is_none());
        // An entry already in the log: its object's next record is whole.
        let appended = mem.append(&mut deltas, &[event(6, &v(6))]);
        assert!(!appended[0].is_new());
        mem.append(&mut deltas, &[event(7, &v(7))]);
        assert!(mem.stored(7).delta.is_none());
        // A delete, then the object again: whole.
        mem.append(&mut deltas, &[event_of(&key(), 8, None)]);
        mem.append(&mut deltas, &[event(9, &v(9))]);
        assert!(mem.stored(9).delta.is_none());
        // A restart (a new `Deltas`): whole.
        let mut deltas = Deltas::new();
        mem.append(&mut deltas, &[event(10, &v(10))]);
        assert!(mem.stored(10).delta.is_none());
        // Small objects: always whole.
        let small = |n: u64| ingress(n, 0..n as u32 - 8);
        mem.append(&mut deltas, &[event(11, &small(11))]);
        mem.append(&mut deltas, &[event(12, &small(12))]);
        assert!(mem.stored(12).delta.is_none());
        // Everything reads back whole, in order and alone.
        let whole = mem.whole_in_order();
        for e in &whole {
            let alone = mem.whole_alone(e.seq).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(alone.body, e.body);
        }
    }

    #[test]
    fn a_patch_against_the_wrong_base_is_reported_with_its_seq() {
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        let other = ObjKey::new("Ingress", "other", "logbook-shared");
        mem.append(&mut deltas, &[event(1, &ingress(1, 0..100))]); // 1
        mem.append(
            &mut deltas,
            &[event_of(&other, 2, Some(&ingress(2, 0..90)))],
        ); // 2
        mem.append(&mut deltas, &[event(3, &ingress(3, 0..101))]); // 3: patch on 1
        mem.append(&mut deltas, &[event(4, &ingress(4, 0..102))]); // 4: patch on 3
        assert_eq!(mem.stored(4).delta.map(|d| d.base_seq), Some(3));
        let err_of = |mem: &Mem, seq| match mem.whole_alone(seq) {
            Err(RebuildError::Bad { seq, problem }) => (seq, problem),
            other => panic!("rebuilt: {other:?}"),
        };
        // The base is another object's event.
        let mut wrong = Mem {
            entries: mem.entries.clone(),
        };
        if let Some(d) = wrong.entries[2].delta.as_mut() {
            d.base_seq = 2;
        }
        let (seq, problem) = err_of(&wrong, 3);
        assert_eq!(seq, 3);
        assert!(
            problem.contains("base entry 2")
                && problem.contains("Ingress/other/logbook-shared")
                && problem.contains("Ingress/shop/logbook-shared"),
            "{problem}"
        );
        // The base is an earlier version of the same object, not the one it was made against:
        // the digest tells.
        let mut older = Mem {
            entries: mem.entries.clone(),
        };
        if let Some(d) = older.entries[3].delta.as_mut() {
            d.base_seq = 1;
        }
        let (seq, problem) = err_of(&older, 4);
        assert_eq!(seq, 4);
        assert!(
            problem.contains("base entry 1")
                && (problem.contains("SHA-256") || problem.contains("does not apply")),
            "{problem}"
        );
        // One that applies but gives another object: the digest tells.
        let mut same_shape = Mem {
            entries: mem.entries.clone(),
        };
        if let Some(d) = same_shape.entries[3].delta.as_mut() {
            d.patch = Json::from_value(&json!([]));
        }
        let (seq, problem) = err_of(&same_shape, 4);
        assert_eq!(seq, 4);
        assert!(problem.contains("SHA-256"), "{problem}");
        // Read in order too: the `Rebuild` holds entry 3, not 1, and walks back.
        let mut rebuild = Rebuild::new();
        let mut fetch = older.fetch();
        let mut results = older
            .entries
            .clone()
            .into_iter()
            .map(|mut e| rebuild.whole(&mut e, &mut fetch).map(|()| e));
        assert!(results.by_ref().take(3).all(|r| r.is_ok()));
        assert!(matches!(
            results.next(),
            Some(Err(RebuildError::Bad { seq: 4, .. }))
        ));
        // A base that is not before it, or not in the log.
        for base in [4, 9] {
            let mut later = Mem {
                entries: mem.entries.clone(),
            };
            later.entries.truncate(4);
            if let Some(d) = later.entries[3].delta.as_mut() {
                d.base_seq = base;
            }
            let (seq, problem) = err_of(&later, 4);
            assert_eq!(seq, 4);
            assert!(problem.contains(&format!("base entry {base}")), "{problem}");
        }
    }

    #[test]
    fn a_damaged_patch_is_reported_not_a_panic() {
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        mem.append(&mut deltas, &[event(1, &ingress(1, 0..100))]);
        mem.append(&mut deltas, &[event(2, &ingress(2, 0..101))]);
        mem.append(&mut deltas, &[event(3, &ingress(3, 0..102))]);
        let damage = [
            "not json",
            "{\"op\": \"add\"}",
            "[{\"op\":\"remove\",\"path\":\"/spec/nothing/here\"}]",
            "[{\"op\":\"replace\",\"path\":\"/spec/rules/0/host\",\"value\":\"evil.example.com\"}]",
            "[]",
        ];
        for text in damage {
            let mut bad = Mem {
                entries: mem.entries.clone(),
            };
            if let Some(d) = bad.entries[1].delta.as_mut() {
                d.patch = Json::from_value(&serde_json::from_str(text).unwrap_or(json!(text)));
            }
            for seq in [2, 3] {
                match bad.whole_alone(seq) {
                    Err(RebuildError::Bad { seq: at, problem }) => {
                        // Entry 3 is fine; its base (2) is what is damaged.
                        assert_eq!(at, 2, "{problem}");
                        assert!(problem.contains("base entry 1"), "{text}: {problem}");
                    }
                    other => panic!("{text}: rebuilt {other:?}"),
                }
            }
        }
    }

    #[test]
    fn the_stored_form_is_a_format_2_payload_and_whole_records_are_unchanged() {
        let mut mem = Mem::default();
        let mut deltas = Deltas::new();
        let (a, b) = (ingress(1, 0..100), ingress(2, 0..101));
        mem.append(&mut deltas, &[action(1, &a)]);
        mem.append(&mut deltas, &[action(2, &b)]);
        let first = mem.stored(1);
        assert_eq!((first.format, first.delta.is_none()), (1, true));
        // A whole record's payload is what builds before patches wrote.
        let whole = action(1, &a);
        assert_eq!(
            whole.encode().ok().map(|(_, p)| p),
            whole.body.encode().ok()
        );
        let second = mem.stored(2);
        assert_eq!(second.format, 2);
        let Body::Action(ActionRecord { action: stored, .. }) = &second.body else {
            panic!("not an action")
        };
        assert_eq!(stored.object, None);
        // The action as planned (content id and all) comes back once rebuilt.
        let rebuilt = mem.whole_in_order();
        let Body::Action(rec) = &rebuilt[1].body else {
            panic!("not an action")
        };
        let again = rec.action.to_action().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.object.as_ref(), Some(&b));
        assert_eq!(again.content_id(), again.id);
        // Decoding a patched payload as a whole record is refused, with what to do.
        let stored_new = deltas.store(&[action(3, &ingress(3, 0..102))]);
        let (format, payload) = stored_new[0].encode().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format, 2);
        let err = Body::decode(EntryKind::Action, format, &payload)
            .err()
            .unwrap_or_else(|| panic!("decoded"));
        assert!(err.0.contains("patch against entry 2"), "{err}");
        // A delete cannot be stored as a patch.
        let mut del = event_of(&key(), 9, None);
        del.delta = stored_new[0].delta.clone();
        assert!(del.encode().is_err());
    }
}
