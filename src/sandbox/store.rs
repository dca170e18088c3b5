//! The object store: every object, the single resourceVersion counter, and the watch history.
//! Owns object bookkeeping (uid, timestamps, resourceVersion, generation) and change events;
//! it must not parse requests or know about HTTP.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::meta;
use super::resources::{self, Registry, ResourceType};
use super::status::ApiError;

/// The storage key of Namespaces.
pub const NAMESPACES: &str = "/namespaces";
/// The storage key of CustomResourceDefinitions.
pub const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as kept in the history and sent to watchers.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion the change was committed at.
    pub rv: u64,
    /// Storage key of the resource (`apps/deployments`).
    pub key: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletes, the last state with the delete's version).
    pub object: Arc<Value>,
    /// `object` serialized.
    pub json: Bytes,
    /// The object before the change, for selector transitions.
    pub old: Option<Arc<Value>>,
    /// The bytes this change is counted for in the history (see [`change_size`]).
    pub size: usize,
}

/// An estimate, never much below the truth, of the heap a parsed JSON value holds: one
/// `Value` per node, the bytes of every string and key, and a map entry's bookkeeping.
pub fn value_size(v: &Value) -> usize {
    const ENTRY: usize = std::mem::size_of::<String>() + 16;
    std::mem::size_of::<Value>()
        + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(value_size).sum(),
            Value::Object(m) => m.iter().map(|(k, v)| ENTRY + k.len() + value_size(v)).sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

/// The bytes a history entry is counted for: the change itself, the object serialized and
/// parsed, and the object before the change (counted again even when an older entry shares
/// it, so that the count stays an upper bound when that entry is evicted first).
pub fn change_size(key: &str, ns: &str, object: &Value, json: &[u8], old: Option<&Value>) -> usize {
    std::mem::size_of::<Change>()
        + key.len()
        + ns.len()
        + json.len()
        + value_size(object)
        + old.map_or(0, value_size)
}

/// How much watch history is kept, and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryStats {
    /// Events kept.
    pub events: usize,
    /// Bytes those events are counted for (see [`change_size`]).
    pub bytes: usize,
    /// At most this many events are kept (`--history`).
    pub max_events: usize,
    /// At most this many bytes are kept (`--history-bytes`).
    pub max_bytes: usize,
    /// A watch from a resourceVersion older than this gets 410 Gone.
    pub oldest_resource_version: u64,
}

/// What goes to watchers.
#[derive(Debug, Clone)]
pub enum Signal {
    /// A committed change.
    Change(Arc<Change>),
    /// End every open watch stream now (after compaction).
    CloseAll,
}

/// A stored object and its serialized form.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object.
    pub obj: Arc<Value>,
    /// `obj` serialized.
    pub json: Bytes,
}

impl Stored {
    fn new(obj: Value) -> Stored {
        let json = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
        Stored {
            obj: Arc::new(obj),
            json,
        }
    }
}

/// What a write decided to do with the object.
pub enum Op {
    /// Create it (there must be none).
    Create(Value),
    /// Replace it (there must be one).
    Replace(Value),
    /// Remove it (there must be one).
    Delete,
    /// Mark it terminating with a grace period, as the API server does for a Pod bound to a
    /// node: `deletionTimestamp` = now + grace, `deletionGracePeriodSeconds` = grace; the object
    /// stays (even without finalizers) until the node removes it. Grace 0 is [`Op::Delete`].
    Terminate(i64),
}

/// What a write sees and may touch besides the object.
pub struct WriteCtx<'a> {
    /// The resource written to.
    pub rtype: &'a Arc<ResourceType>,
    /// The object as it is now.
    pub current: Option<&'a Stored>,
    /// Per field manager, the last object it applied (server-side apply).
    pub applied: &'a mut HashMap<String, Value>,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object after the write (for deletes, the last state).
    pub stored: Stored,
    /// Whether the object is gone.
    pub deleted: bool,
    /// Whether a new object was made.
    pub created: bool,
}

/// One page of a list.
pub struct Page {
    /// The objects.
    pub items: Vec<Stored>,
    /// The store's resourceVersion at the time of the list.
    pub rv: u64,
    /// The `(namespace, name)` to continue after, if more remain.
    pub next: Option<(String, String)>,
    /// How many matching objects remain after this page.
    pub remaining: usize,
}

type ObjKey = (String, String);

#[derive(Default)]
struct Inner {
    rv: u64,
    registry: Registry,
    objects: HashMap<String, BTreeMap<ObjKey, Stored>>,
    history: VecDeque<Arc<Change>>,
    horizon: u64,
    cap: usize,
    bytes: usize,
    max_bytes: usize,
    applied: HashMap<(String, String, String), HashMap<String, Value>>,
    next_ip: u32,
}

/// The store shared by every request handler and background task.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Signal>,
}

/// A snapshot of the store for saving to a file.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The resourceVersion counter.
    pub resource_version: u64,
    /// Every object, by storage key.
    pub objects: BTreeMap<String, Vec<Value>>,
}

impl Store {
    /// An empty store serving the built-in resources, retaining at most `history` events and
    /// `history_bytes` bytes of them (oldest evicted first) for watches.
    pub fn new(history: usize, history_bytes: usize, watch_buffer: usize) -> Store {
        let (tx, _) = broadcast::channel(watch_buffer.max(16));
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                registry: Registry::with_builtins(),
                cap: history.max(1),
                max_bytes: history_bytes,
                ..Inner::default()
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The resource served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock().registry.find(group, version, plural)
    }

    /// The resource stored under `key`.
    pub fn by_key(&self, key: &str) -> Option<Arc<ResourceType>> {
        self.lock().registry.by_key(key)
    }

    /// A copy of the registry (discovery).
    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// How much watch history is kept now.
    pub fn history_stats(&self) -> HistoryStats {
        let inner = self.lock();
        HistoryStats {
            events: inner.history.len(),
            bytes: inner.bytes,
            max_events: inner.cap,
            max_bytes: inner.max_bytes,
            oldest_resource_version: inner.horizon,
        }
    }

    /// Receive every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.tx.subscribe()
    }

    /// One object.
    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<Stored> {
        let inner = self.lock();
        inner
            .objects
            .get(key)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// Every object of a resource (in one namespace if `ns` is set).
    pub fn all(&self, key: &str, ns: Option<&str>) -> Vec<Stored> {
        let inner = self.lock();
        objects_in(&inner, key, ns)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Objects of a resource that pass `filter`, in `(namespace, name)` order, starting after
    /// `after`, at most `limit` of them (0: no limit).
    pub fn list(
        &self,
        key: &str,
        ns: Option<&str>,
        after: Option<&ObjKey>,
        limit: usize,
        filter: &dyn Fn(&Value) -> bool,
    ) -> Page {
        let inner = self.lock();
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0;
        for (k, s) in objects_in(&inner, key, ns) {
            if after.is_some_and(|a| k <= a) || !filter(&s.obj) {
                continue;
            }
            if limit > 0 && items.len() >= limit {
                remaining += 1;
                continue;
            }
            if limit > 0 && items.len() + 1 == limit {
                next = Some(k.clone());
            }
            items.push(s.clone());
        }
        if remaining == 0 {
            next = None;
        }
        Page {
            items,
            rv: inner.rv,
            next,
            remaining,
        }
    }

    /// Changes after `from` (oldest first) and a receiver for the ones after them, or 410 if
    /// `from` is older than the retained history.
    pub fn watch_from(
        &self,
        from: u64,
    ) -> Result<(Vec<Arc<Change>>, broadcast::Receiver<Signal>), ApiError> {
        let inner = self.lock();
        if from < inner.horizon {
            return Err(ApiError::expired(format!(
                "too old resource version: {from} ({})",
                inner.horizon
            )));
        }
        let start = inner.history.partition_point(|c| c.rv <= from);
        let backlog = inner.history.range(start..).cloned().collect();
        Ok((backlog, self.tx.subscribe()))
    }

    /// The current objects of a resource, the resourceVersion they are at, and a receiver for
    /// changes after it.
    pub fn snapshot(
        &self,
        key: &str,
        ns: Option<&str>,
    ) -> (Vec<Stored>, u64, broadcast::Receiver<Signal>) {
        let inner = self.lock();
        let items = objects_in(&inner, key, ns)
            .map(|(_, s)| s.clone())
            .collect();
        (items, inner.rv, self.tx.subscribe())
    }

    /// Drop the watch history: watches from any version before now get 410 Gone, and open
    /// watch streams are ended so that their clients come back and find out.
    pub fn compact(&self) -> u64 {
        let mut inner = self.lock();
        inner.rv += 1;
        inner.horizon = inner.rv;
        inner.history.clear();
        inner.bytes = 0;
        let _ = self.tx.send(Signal::CloseAll);
        inner.rv
    }

    /// End every open watch stream.
    pub fn close_watches(&self) {
        let _inner = self.lock();
        let _ = self.tx.send(Signal::CloseAll);
    }

    /// Read, decide and commit one object atomically. `decide` sees the object as it is and
    /// says what to do; the store adds the bookkeeping and records the change.
    pub fn write<F>(&self, key: &str, ns: &str, name: &str, decide: F) -> Result<Written, ApiError>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Op, ApiError>,
    {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let rtype = inner
            .registry
            .by_key(key)
            .ok_or_else(ApiError::no_such_path)?;
        let okey = (ns.to_string(), name.to_string());
        let current = inner.objects.get(key).and_then(|m| m.get(&okey)).cloned();
        let akey = (key.to_string(), ns.to_string(), name.to_string());
        let mut applied = inner.applied.remove(&akey).unwrap_or_default();
        let decision = {
            let mut ctx = WriteCtx {
                rtype: &rtype,
                current: current.as_ref(),
                applied: &mut applied,
            };
            decide(&mut ctx)
        };
        let result = match decision {
            Ok(op) => self.commit(inner, &rtype, ns, name, current, op),
            Err(e) => Err(e),
        };
        if let Ok(w) = &result
            && !w.deleted
            && !applied.is_empty()
        {
            inner.applied.insert(akey, applied);
        }
        result
    }

    fn commit(
        &self,
        inner: &mut Inner,
        rtype: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        current: Option<Stored>,
        op: Op,
    ) -> Result<Written, ApiError> {
        let key = rtype.key();
        match (op, current) {
            (Op::Create(_), Some(_)) => {
                Err(ApiError::already_exists(&rtype.group, &rtype.plural, name))
            }
            (Op::Replace(_) | Op::Delete | Op::Terminate(_), None) => {
                Err(ApiError::not_found(&rtype.group, &rtype.plural, name))
            }
            (Op::Create(mut obj), None) => {
                if rtype.namespaced {
                    let nsobj = inner
                        .objects
                        .get(NAMESPACES)
                        .and_then(|m| m.get(&(String::new(), ns.to_string())));
                    match nsobj {
                        None => return Err(ApiError::not_found("", "namespaces", ns)),
                        Some(n) if !meta::meta_str(&n.obj, "deletionTimestamp").is_empty() => {
                            return Err(ApiError::forbidden(format!(
                                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                                super::status::qualified(&rtype.group, &rtype.plural)
                            )));
                        }
                        Some(_) => {}
                    }
                }
                if key == CRDS {
                    let t = resources::from_crd(&obj).map_err(|causes| {
                        ApiError::invalid("CustomResourceDefinition", &rtype.group, name, causes)
                    })?;
                    if let Some(e) = resources::clash(&inner.registry, &t) {
                        return Err(e);
                    }
                    crd_status(&mut obj);
                    inner.registry.insert(t);
                }
                inner.rv += 1;
                let rv = inner.rv;
                {
                    let m = meta::metadata_mut(&mut obj);
                    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                    m.insert("creationTimestamp".into(), json!(meta::now()));
                    m.insert("resourceVersion".into(), json!(rv.to_string()));
                    if rtype.generation {
                        m.insert("generation".into(), json!(1));
                    } else {
                        m.remove("generation");
                    }
                    m.remove("deletionTimestamp");
                    m.remove("deletionGracePeriodSeconds");
                    m.remove("selfLink");
                }
                if key == "/services" {
                    let ip = inner.next_ip;
                    inner.next_ip += 1;
                    default_service(&mut obj, ip);
                }
                let stored = Stored::new(obj);
                inner
                    .objects
                    .entry(key.clone())
                    .or_default()
                    .insert((ns.to_string(), name.to_string()), stored.clone());
                self.record(inner, rv, &key, ns, EventType::Added, &stored, None);
                Ok(Written {
                    stored,
                    deleted: false,
                    created: true,
                })
            }
            (Op::Replace(mut obj), Some(old)) => {
                // Server-owned fields cannot be changed by clients.
                {
                    let old_meta = old.obj.get("metadata").cloned().unwrap_or(json!({}));
                    let m = meta::metadata_mut(&mut obj);
                    for f in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "generation",
                    ] {
                        match old_meta.get(f) {
                            Some(v) => m.insert(f.into(), v.clone()),
                            None => m.remove(f),
                        };
                    }
                    if let Some(v) = old_meta.get("deletionGracePeriodSeconds") {
                        m.insert("deletionGracePeriodSeconds".into(), v.clone());
                    }
                    m.insert(
                        "resourceVersion".into(),
                        old_meta
                            .get("resourceVersion")
                            .cloned()
                            .unwrap_or(json!("")),
                    );
                    m.insert("name".into(), json!(name));
                    if rtype.namespaced {
                        m.insert("namespace".into(), json!(ns));
                    }
                }
                if rtype.generation && spec_changed(&old.obj, &obj) {
                    let g = old
                        .obj
                        .pointer("/metadata/generation")
                        .and_then(|g| g.as_i64())
                        .unwrap_or(0);
                    meta::metadata_mut(&mut obj).insert("generation".into(), json!(g + 1));
                }
                if key == CRDS {
                    let t = resources::from_crd(&obj).map_err(|causes| {
                        ApiError::invalid("CustomResourceDefinition", &rtype.group, name, causes)
                    })?;
                    let old_t = resources::from_crd(&old.obj).ok();
                    if old_t.as_ref().map(|o| o.key()) != Some(t.key()) {
                        return Err(ApiError::invalid(
                            "CustomResourceDefinition",
                            &rtype.group,
                            name,
                            vec![(
                                "spec.names".into(),
                                "Invalid value: field is immutable".into(),
                            )],
                        ));
                    }
                    crd_status(&mut obj);
                    inner.registry.insert(t);
                }
                if *old.obj == obj {
                    return Ok(Written {
                        stored: old,
                        deleted: false,
                        created: false,
                    });
                }
                let terminating = !meta::meta_str(&obj, "deletionTimestamp").is_empty();
                let graceful = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(|g| g.as_i64())
                    .is_some_and(|g| g > 0);
                if terminating && !graceful && meta::finalizers(&obj).is_empty() {
                    return self.remove(inner, rtype, ns, name, Some(obj));
                }
                Ok(self.put_modified(inner, &key, ns, name, obj, old.obj))
            }
            (Op::Terminate(grace), Some(cur)) if grace > 0 => {
                if !meta::meta_str(&cur.obj, "deletionTimestamp").is_empty() {
                    return Ok(Written {
                        stored: cur,
                        deleted: false,
                        created: false,
                    });
                }
                let mut obj = (*cur.obj).clone();
                let at = chrono::Utc::now() + chrono::TimeDelta::seconds(grace);
                let m = meta::metadata_mut(&mut obj);
                m.insert(
                    "deletionTimestamp".into(),
                    json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                Ok(self.put_modified(inner, &key, ns, name, obj, cur.obj))
            }
            (Op::Delete | Op::Terminate(_), Some(cur)) => {
                if meta::finalizers(&cur.obj).is_empty() {
                    return self.remove(inner, rtype, ns, name, None);
                }
                if !meta::meta_str(&cur.obj, "deletionTimestamp").is_empty() {
                    return Ok(Written {
                        stored: cur,
                        deleted: false,
                        created: false,
                    });
                }
                // Finalizers hold the object: mark it, it goes when the last one is removed.
                let mut obj = (*cur.obj).clone();
                let generation = obj.pointer("/metadata/generation").and_then(|g| g.as_i64());
                let m = meta::metadata_mut(&mut obj);
                m.insert("deletionTimestamp".into(), json!(meta::now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                if let Some(g) = generation {
                    m.insert("generation".into(), json!(g + 1));
                }
                Ok(self.put_modified(inner, &key, ns, name, obj, cur.obj))
            }
        }
    }

    /// Remove an object now (and, for namespaces and CRDs, everything in them).
    fn remove(
        &self,
        inner: &mut Inner,
        rtype: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        last: Option<Value>,
    ) -> Result<Written, ApiError> {
        let key = rtype.key();
        if key == NAMESPACES {
            let keys: Vec<String> = inner.objects.keys().cloned().collect();
            for k in keys {
                let Some(t) = inner.registry.by_key(&k) else {
                    continue;
                };
                if !t.namespaced {
                    continue;
                }
                let names: Vec<String> = objects_in(inner, &k, Some(name))
                    .map(|(k, _)| k.1.clone())
                    .collect();
                for n in names {
                    let _ = self.remove(inner, &t, name, &n, None);
                }
            }
        }
        if key == CRDS {
            let crd_key = inner
                .registry
                .all()
                .find(|t| t.crd.as_deref() == Some(name))
                .map(|t| t.key());
            if let Some(crd_key) = crd_key {
                if let Some(t) = inner.registry.by_key(&crd_key) {
                    let all: Vec<ObjKey> = objects_in(inner, &crd_key, None)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for (n_ns, n) in all {
                        let _ = self.remove(inner, &t, &n_ns, &n, None);
                    }
                }
                inner.registry.remove(&crd_key);
                inner.objects.remove(&crd_key);
            }
        }
        let okey = (ns.to_string(), name.to_string());
        let Some(old) = inner.objects.get_mut(&key).and_then(|m| m.remove(&okey)) else {
            return Err(ApiError::not_found(&rtype.group, &rtype.plural, name));
        };
        inner
            .applied
            .remove(&(key.clone(), ns.to_string(), name.to_string()));
        inner.rv += 1;
        let rv = inner.rv;
        let mut obj = last.unwrap_or_else(|| (*old.obj).clone());
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let stored = Stored::new(obj);
        self.record(
            inner,
            rv,
            &key,
            ns,
            EventType::Deleted,
            &stored,
            Some(old.obj),
        );
        Ok(Written {
            stored,
            deleted: true,
            created: false,
        })
    }

    /// Stores `obj` as the new version of an existing object: the next resourceVersion, a
    /// MODIFIED event for watchers, and the written result.
    fn put_modified(
        &self,
        inner: &mut Inner,
        key: &str,
        ns: &str,
        name: &str,
        mut obj: Value,
        old: Arc<Value>,
    ) -> Written {
        inner.rv += 1;
        let rv = inner.rv;
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let stored = Stored::new(obj);
        inner
            .objects
            .entry(key.to_string())
            .or_default()
            .insert((ns.to_string(), name.to_string()), stored.clone());
        self.record(inner, rv, key, ns, EventType::Modified, &stored, Some(old));
        Written {
            stored,
            deleted: false,
            created: false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        inner: &mut Inner,
        rv: u64,
        key: &str,
        ns: &str,
        kind: EventType,
        stored: &Stored,
        old: Option<Arc<Value>>,
    ) {
        let size = change_size(key, ns, &stored.obj, &stored.json, old.as_deref());
        let change = Arc::new(Change {
            rv,
            key: key.to_string(),
            namespace: ns.to_string(),
            kind,
            object: stored.obj.clone(),
            json: stored.json.clone(),
            old,
            size,
        });
        inner.history.push_back(change.clone());
        inner.bytes += size;
        // Oldest first, until both bounds hold; a change larger than the byte bound is not
        // kept at all (watchers still get it, and a watch from before it gets 410 Gone).
        while inner.history.len() > inner.cap || inner.bytes > inner.max_bytes {
            let Some(c) = inner.history.pop_front() else {
                break;
            };
            inner.bytes -= c.size;
            inner.horizon = c.rv;
        }
        let _ = self.tx.send(Signal::Change(change));
    }

    /// Every uid in the store.
    pub fn uids(&self) -> HashSet<String> {
        let inner = self.lock();
        inner
            .objects
            .values()
            .flat_map(|m| m.values())
            .map(|s| meta::uid(&s.obj).to_string())
            .collect()
    }

    /// Every `(key, namespace, name, object)` that has owner references.
    pub fn owned(&self) -> Vec<(String, String, String, Arc<Value>)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (k, m) in &inner.objects {
            for ((ns, name), s) in m {
                if s.obj.pointer("/metadata/ownerReferences").is_some() {
                    out.push((k.clone(), ns.clone(), name.clone(), s.obj.clone()));
                }
            }
        }
        out
    }

    /// Everything, for saving.
    pub fn snapshot_all(&self) -> Snapshot {
        let inner = self.lock();
        let mut objects = BTreeMap::new();
        for (k, m) in &inner.objects {
            let v: Vec<Value> = m.values().map(|s| (*s.obj).clone()).collect();
            if !v.is_empty() {
                objects.insert(k.clone(), v);
            }
        }
        Snapshot {
            resource_version: inner.rv,
            objects,
        }
    }

    /// Replace everything with a saved snapshot (CRDs first, so their resources are served).
    pub fn restore(&self, snap: Snapshot) {
        let mut inner = self.lock();
        inner.objects.clear();
        inner.history.clear();
        inner.bytes = 0;
        inner.applied.clear();
        inner.registry = Registry::with_builtins();
        if let Some(crds) = snap.objects.get(CRDS) {
            for crd in crds {
                if let Ok(t) = resources::from_crd(crd) {
                    inner.registry.insert(t);
                }
            }
        }
        for (k, objs) in snap.objects {
            if inner.registry.by_key(&k).is_none() {
                continue;
            }
            let m = inner.objects.entry(k).or_default();
            for o in objs {
                let key = (meta::namespace(&o).to_string(), meta::name(&o).to_string());
                m.insert(key, Stored::new(o));
            }
        }
        inner.rv = snap.resource_version.max(1) + 1;
        inner.horizon = inner.rv;
        inner.next_ip = inner
            .objects
            .get("/services")
            .map(|m| m.len() as u32)
            .unwrap_or(0);
    }
}

fn objects_in<'a>(
    inner: &'a Inner,
    key: &str,
    ns: Option<&str>,
) -> Box<dyn Iterator<Item = (&'a ObjKey, &'a Stored)> + 'a> {
    let Some(m) = inner.objects.get(key) else {
        return Box::new(std::iter::empty());
    };
    match ns {
        None => Box::new(m.iter()),
        Some(ns) => {
            let ns = ns.to_string();
            let start = (ns.clone(), String::new());
            Box::new(m.range(start..).take_while(move |(k, _)| k.0 == ns))
        }
    }
}

/// Whether anything but `metadata` and `status` differs (what bumps `metadata.generation`).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
        || meta::meta_str(old, "deletionTimestamp") != meta::meta_str(new, "deletionTimestamp")
}

/// A CRD's status as the apiextensions server sets it once the names are accepted.
fn crd_status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(|v| v.as_array())
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(|s| s.as_bool()) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let since = crd
        .pointer("/status/conditions/0/lastTransitionTime")
        .cloned()
        .unwrap_or_else(|| json!(meta::now()));
    if let Some(m) = crd.as_object_mut() {
        m.insert(
            "status".into(),
            json!({
                "acceptedNames": names,
                "conditions": [
                    { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                      "message": "no conflicts found", "lastTransitionTime": since },
                    { "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                      "message": "the initial names have been accepted", "lastTransitionTime": since },
                ],
                "storedVersions": stored,
            }),
        );
    }
}

/// Service defaults the API server fills in: type, a cluster IP, protocol and target port.
fn default_service(svc: &mut Value, n: u32) {
    let Some(spec) = svc.get_mut("spec").and_then(|s| s.as_object_mut()) else {
        return;
    };
    let kind = spec
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("ClusterIP")
        .to_string();
    spec.insert("type".into(), json!(kind));
    if kind != "ExternalName"
        && spec
            .get("clusterIP")
            .and_then(|c| c.as_str())
            .is_none_or(str::is_empty)
    {
        let n = n % 65000 + 10;
        let ip = format!("10.96.{}.{}", n / 256, n % 256);
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
        spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
    }
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if let Some(ports) = spec.get_mut("ports").and_then(|p| p.as_array_mut()) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                p.entry("protocol").or_insert(json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    p.entry("targetPort").or_insert(port);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &Store, name: &str, data: &str) -> u64 {
        let written = store.write("/configmaps", "default", name, |ctx| {
            let obj = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": name, "namespace": "default" },
                "data": { "big": data },
            });
            Ok(if ctx.current.is_some() {
                Op::Replace(obj)
            } else {
                Op::Create(obj)
            })
        });
        match written {
            Ok(w) => meta::meta_str(&w.stored.obj, "resourceVersion")
                .parse()
                .unwrap_or(0),
            Err(e) => panic!("write {name}: {}", e.message),
        }
    }

    fn store(history: usize, bytes: usize) -> Store {
        let s = Store::new(history, bytes, 64);
        let ns = s.write(NAMESPACES, "", "default", |_| {
            Ok(Op::Create(json!({ "metadata": { "name": "default" } })))
        });
        assert!(ns.is_ok());
        s
    }

    #[test]
    fn history_is_bounded_by_bytes() {
        let bound = 64 << 10;
        let s = store(10_000, bound);
        let big = "x".repeat(10 << 10);
        let first = put(&s, "cm-0", &big);
        for i in 1..40 {
            put(&s, &format!("cm-{i}"), &big);
            let h = s.history_stats();
            assert!(h.bytes <= bound, "{h:?}");
            assert!(h.events >= 1, "{h:?}");
        }
        let h = s.history_stats();
        // Each event holds the 10 KiB string twice (serialized and parsed): 2 or 3 fit.
        assert!((2..=3).contains(&h.events), "{h:?}");
        assert!(h.oldest_resource_version > first, "{h:?}");
        assert_eq!(s.watch_from(first).err().map(|e| e.code), Some(410));
        assert!(s.watch_from(s.resource_version()).is_ok());
        assert!(s.watch_from(h.oldest_resource_version).is_ok());
        assert_eq!(
            s.watch_from(h.oldest_resource_version - 1)
                .err()
                .map(|e| e.code),
            Some(410)
        );
    }

    #[test]
    fn a_change_larger_than_the_bound_is_not_kept() {
        let s = store(10_000, 4 << 10);
        let before = put(&s, "small", "x");
        let big = put(&s, "big", &"y".repeat(8 << 10));
        let h = s.history_stats();
        assert_eq!((h.events, h.bytes), (0, 0), "{h:?}");
        assert_eq!(h.oldest_resource_version, big);
        assert_eq!(s.watch_from(before).err().map(|e| e.code), Some(410));
        assert!(s.watch_from(big).is_ok());
    }

    #[test]
    fn the_count_bound_still_holds() {
        let s = store(5, usize::MAX);
        for i in 0..20 {
            put(&s, &format!("cm-{i}"), "x");
        }
        let h = s.history_stats();
        assert_eq!(h.events, 5);
        assert_eq!(
            h.bytes,
            s.lock().history.iter().map(|c| c.size).sum::<usize>()
        );
    }

    #[test]
    fn value_sizes_count_strings_and_nodes() {
        let small = value_size(&json!({ "a": "b" }));
        let large = value_size(&json!({ "a": "b".repeat(1000) }));
        assert_eq!(large - small, 999);
        assert!(value_size(&json!([1, 2, 3])) >= 4 * std::mem::size_of::<Value>());
    }
}
