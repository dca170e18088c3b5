//! Replay bench: `replay::verify` over a generated log of 1,000,000 entries, where its time goes,
//! and how much memory it holds.
//!
//! The log is genuine: the real controller `Core` (no NATS, no network) writes it, driven the
//! way `tests/controller_core.rs` drives it. A small simulated API server and executor stand
//! around it: the initial lists see 1,000 Applications in 10 namespaces; then users change
//! images, replicas and env, scale Deployments by hand, delete Applications (the garbage
//! collector removes their children) and create them again; the executor applies the actions the
//! core records (read back from the log as the outbox would), stamping the action-id and
//! plan-seq annotations, and reports outcomes (`Input::Outcomes`, 1% transient conflicts that are
//! retried); Deployments finish their rollouts later, and pods sometimes flap; the controller
//! resyncs every 50,000 entries and relists Deployments twice. Watch events reach the core in
//! small batches, each batch with the outcomes that arrived meanwhile, so every batch that
//! touched a scope is one plan. What is fed is deterministic given `SEED` (the core stamps
//! entries with its own clock; an outcome is stamped 1 ms per attempt after its action).
//!
//! The log is generated in `/dev/shm` when it exists (the core commits with fsync) and cached
//! under `$CARGO_TARGET_DIR/bench-data/replay-1m.db` (default `target/`): a later run reuses it
//! when its last seq and its start marker (generator version, seed) are right.
//!
//! Before timing, `verify` runs once and must report an intact, identical log. Then the
//! counting allocator below measures the peak live heap of `verify` up to 100,000, 250,000 and
//! 1,000,000 entries next to the world view alone, and criterion times, single-threaded:
//! (b) `verify` with `skip_chain`, (d) read and decode alone, (e) read and fold without planning,
//! over the first `TIMED` entries, and (c) the chain check alone over the whole log; (a), the
//! whole `verify` over every entry, is the timed sanity run (minutes: one run, not samples).
//! `REPLAY_TIMED` changes the prefix (e.g. `REPLAY_TIMED=1000000` with a filter such as
//! `-- 'd_read|e_read'` times those over the whole log).
//!
//! `cargo bench --bench replay` runs it; without `--bench` (as `cargo test --benches` runs it)
//! it is a smoke run over a 20,000-entry log in a temporary directory. `REPLAY_ENTRIES`
//! changes the length of the log. Results are in `benches/README.md`.

use chrono::{DateTime, Utc};
use criterion::{Criterion, SamplingMode, Throughput};
use logbook::bus::wire::OutcomeMessage;
use logbook::controller::core::{Core, Input};
use logbook::fixtures::{apply_merge, server_defaults};
use logbook::log::{Log, LogReader};
use logbook::model::{ACTION_ID_ANNOTATION, Application, PLAN_SEQ_ANNOTATION};
use logbook::reconcile::PlannerConfig;
use logbook::record::{
    Body, Change, MarkerKind, ObjKey, OutcomeRecord, OutcomeResult, RecordedAction, Verb,
};
use logbook::replay::{Point, VerifyOptions, verify};
use logbook::world::Fold;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Entries in the full log.
const ENTRIES: u64 = 1_000_000;
/// Entries in the smoke run.
const SMOKE_ENTRIES: u64 = 20_000;
/// Entries criterion times each verify variant over (a prefix of the log; `REPLAY_TIMED`
/// overrides it).
const TIMED: u64 = 50_000;
const APPS: usize = 1_000;
const NAMESPACES: usize = 10;
const SEED: u64 = 0x1095_b00c;
/// Recorded in the start marker: a cached log from another generator is regenerated.
const GENERATOR: &str = "replay-bench-3";
const KINDS: [&str; 4] = ["Application", "Deployment", "Service", "Ingress"];
/// A resync every this many entries.
const RESYNC_EVERY: u64 = 50_000;
/// Per step: the chance that a user changes something.
const USER_P: f64 = 0.2;
/// Per attempt: the chance that an executor's write meets a (retried) conflict.
const CONFLICT_P: f64 = 0.01;

// ---------------------------------------------------------------------------------------------
// A counting allocator: live and peak bytes, counted only while switched on (the timings run
// with it off, so they pay one relaxed load per allocation).

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grow(n: usize) {
    if COUNTING.load(Relaxed) {
        let now = LIVE.fetch_add(n as isize, Relaxed) + n as isize;
        PEAK.fetch_max(now, Relaxed);
    }
}

fn shrink(n: usize) {
    if COUNTING.load(Relaxed) {
        LIVE.fetch_sub(n as isize, Relaxed);
    }
}

// SAFETY: every call is passed to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts counting from zero.
fn count_from_zero() {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
}

fn stop_counting() {
    COUNTING.store(false, Relaxed);
}

fn live() -> isize {
    LIVE.load(Relaxed)
}

/// The peak so far becomes the live count now.
fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

fn peak() -> isize {
    PEAK.load(Relaxed)
}

/// SQLite's own heap (it allocates with `malloc`, not through Rust's allocator): bytes in use,
/// and the high-water mark since the last reset.
fn sqlite_heap(reset: bool) -> (i64, i64) {
    // SAFETY: plain reads of SQLite's global memory statistics.
    unsafe {
        (
            rusqlite::ffi::sqlite3_memory_used(),
            rusqlite::ffi::sqlite3_memory_highwater(i32::from(reset)),
        )
    }
}

/// A field of `/proc/self/status` in KiB (VmRSS, VmHWM), if readable.
fn proc_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak RSS (VmHWM) to the current RSS.
fn reset_rss_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

// ---------------------------------------------------------------------------------------------
// The generator: a simulated API server and executor around the real controller core.

/// A watch event as the API server sends it.
enum Watch {
    Seen(Value),
    Deleted(Value),
}

/// An action on its way to the executor, as the outbox would publish it.
struct Queued {
    plan_seq: u64,
    at: DateTime<Utc>,
    action: RecordedAction,
    attempt: u32,
}

/// Counts of what the generator fed and what the log got.
#[derive(Default)]
struct Stats {
    steps: u64,
    batches: u64,
    user_ops: BTreeMap<&'static str, u64>,
    executed: BTreeMap<String, u64>,
    resyncs: u64,
    relists: u64,
    synthesized_retries: u64,
}

struct Sim {
    rng: ChaCha8Rng,
    objects: BTreeMap<ObjKey, Value>,
    rv: u64,
    uids: u64,
    /// Per app: image version, replicas, env value, and whether it exists.
    image: Vec<u32>,
    replicas: Vec<i64>,
    mode: Vec<u32>,
    deleted: BTreeSet<usize>,
    watch: VecDeque<Watch>,
    exec: VecDeque<Queued>,
    outcomes: VecDeque<OutcomeMessage>,
    rollouts: VecDeque<ObjKey>,
    gc: VecDeque<(ObjKey, String)>,
    recreate: VecDeque<(u64, usize)>,
    /// The next log seq to read back.
    next_seq: u64,
    last_action: Option<(ObjKey, Option<String>, String, DateTime<Utc>)>,
    stats: Stats,
}

fn app_key(i: usize) -> ObjKey {
    ObjKey::new(
        "Application",
        &format!("team-{:02}", i % NAMESPACES),
        &format!("app-{i:04}"),
    )
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn annotation<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let replicas = (0..APPS).map(|_| rng.random_range(1..=3)).collect();
        Sim {
            rng,
            objects: BTreeMap::new(),
            rv: 1000,
            uids: 0,
            image: vec![1; APPS],
            replicas,
            mode: vec![0; APPS],
            deleted: BTreeSet::new(),
            watch: VecDeque::new(),
            exec: VecDeque::new(),
            outcomes: VecDeque::new(),
            rollouts: VecDeque::new(),
            gc: VecDeque::new(),
            recreate: VecDeque::new(),
            next_seq: 1,
            last_action: None,
            stats: Stats::default(),
        }
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids)
    }

    /// Stores `object` under a new resourceVersion and sends its watch event.
    fn store(&mut self, key: ObjKey, mut object: Value) -> u64 {
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.watch.push_back(Watch::Seen(object.clone()));
        self.objects.insert(key, object);
        rv
    }

    /// Deletes the object at `key` (if any) and sends its watch event.
    fn remove(&mut self, key: &ObjKey) -> bool {
        let Some(mut object) = self.objects.remove(key) else {
            return false;
        };
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.watch.push_back(Watch::Deleted(object));
        true
    }

    /// Application `i` as a user creates it: a new uid, generation 1.
    fn create_app(&mut self, i: usize) {
        let key = app_key(i);
        let uid = self.new_uid();
        let app = Application::test(&key.namespace, &key.name)
            .image(&format!(
                "registry.example/{}:1.{}",
                key.name, self.image[i]
            ))
            .replicas(self.replicas[i] as i32)
            .host(&format!("{}.{}.example.com", key.name, key.namespace))
            .env("MODE", &format!("m{}", self.mode[i]))
            .created(1_790_000_000 + self.uids as i64)
            .build();
        let mut v = serde_json::to_value(app).unwrap_or_else(|e| panic!("{e}"));
        v["apiVersion"] = json!("logbook.dev/v1alpha1");
        v["kind"] = json!("Application");
        v["metadata"]["uid"] = json!(uid);
        v["metadata"]["generation"] = json!(1);
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
        }
        self.deleted.remove(&i);
        self.store(key, v);
    }

    /// A user edits Application `i`'s spec: image, replicas or env.
    fn edit_app(&mut self, i: usize, what: &'static str) {
        let key = app_key(i);
        let Some(mut v) = self.objects.get(&key).cloned() else {
            return;
        };
        match what {
            "image" => {
                self.image[i] += 1;
                v["spec"]["image"] =
                    json!(format!("registry.example/{}:1.{}", key.name, self.image[i]));
            }
            "replicas" => {
                let old = self.replicas[i];
                let mut n = self.rng.random_range(1..=4);
                if n >= old {
                    n += 1;
                }
                self.replicas[i] = n;
                v["spec"]["replicas"] = json!(n);
            }
            _ => {
                self.mode[i] += 1;
                v["spec"]["env"] = json!([{"name": "MODE", "value": format!("m{}", self.mode[i])}]);
            }
        }
        let generation = int_at(&v, "/metadata/generation") + 1;
        v["metadata"]["generation"] = json!(generation);
        self.store(key, v);
    }

    /// Something a user (or the cluster) does.
    fn user_op(&mut self, step: u64) {
        let i = self.rng.random_range(0..APPS);
        if self.deleted.contains(&i) {
            return;
        }
        let r: f64 = self.rng.random();
        let dep = ObjKey::new("Deployment", &app_key(i).namespace, &app_key(i).name);
        let op = if r < 0.40 {
            self.edit_app(i, "image");
            "image update"
        } else if r < 0.60 {
            self.edit_app(i, "replicas");
            "replicas update"
        } else if r < 0.70 {
            self.edit_app(i, "env");
            "env update"
        } else if r < 0.82 {
            // Pods flap: a replica stops being ready, and comes back later.
            let Some(mut d) = self.objects.get(&dep).cloned() else {
                return;
            };
            let ready = int_at(&d, "/status/readyReplicas");
            if ready == 0 {
                return;
            }
            d["status"]["readyReplicas"] = json!(ready - 1);
            d["status"]["availableReplicas"] = json!(ready - 1);
            self.store(dep.clone(), d);
            self.rollouts.push_back(dep);
            "pod not ready"
        } else if r < 0.92 {
            // `kubectl scale` by hand: drift the controller undoes.
            let Some(mut d) = self.objects.get(&dep).cloned() else {
                return;
            };
            d["spec"]["replicas"] = json!(int_at(&d, "/spec/replicas") + 2);
            d["metadata"]["generation"] = json!(int_at(&d, "/metadata/generation") + 1);
            self.store(dep.clone(), d);
            self.rollouts.push_back(dep);
            "deployment scaled by hand"
        } else {
            // Deleted; the garbage collector removes its children later, and a user creates it
            // again a while after.
            let key = app_key(i);
            let uid = self
                .objects
                .get(&key)
                .and_then(|v| str_at(v, "/metadata/uid"))
                .unwrap_or_default()
                .to_string();
            self.remove(&key);
            self.deleted.insert(i);
            for kind in ["Deployment", "Service"] {
                let child = ObjKey::new(kind, &key.namespace, &key.name);
                let owned = self.objects.get(&child).is_some_and(|c| {
                    str_at(c, "/metadata/ownerReferences/0/uid") == Some(uid.as_str())
                });
                if owned {
                    let child_uid = self
                        .objects
                        .get(&child)
                        .and_then(|c| str_at(c, "/metadata/uid"))
                        .unwrap_or_default()
                        .to_string();
                    self.gc.push_back((child, child_uid));
                }
            }
            let due = step + self.rng.random_range(200..3000);
            self.recreate.push_back((due, i));
            "application deleted"
        };
        *self.stats.user_ops.entry(op).or_default() += 1;
    }

    /// A Deployment finishes its rollout: all replicas of its generation ready.
    fn finish_rollout(&mut self) {
        let Some(key) = self.rollouts.pop_front() else {
            return;
        };
        let Some(mut d) = self.objects.get(&key).cloned() else {
            return;
        };
        let want = int_at(&d, "/spec/replicas");
        let generation = int_at(&d, "/metadata/generation");
        let status = json!({"observedGeneration": generation, "replicas": want,
            "updatedReplicas": want, "readyReplicas": want, "availableReplicas": want});
        if d.get("status") == Some(&status) {
            return;
        }
        d["status"] = status;
        self.store(key, d);
    }

    /// The garbage collector deletes a child whose owner is gone.
    fn collect_garbage(&mut self) {
        let Some((key, uid)) = self.gc.pop_front() else {
            return;
        };
        let same = self
            .objects
            .get(&key)
            .is_some_and(|o| str_at(o, "/metadata/uid") == Some(uid.as_str()));
        if same {
            self.remove(&key);
        }
    }

    /// The executor: one attempt at one action, as `executor::apply` makes it.
    fn execute(&mut self, q: Queued) {
        let a = &q.action;
        let key = a.target.clone();
        let current = self.objects.get(&key).cloned();
        let cur_rv = current
            .as_ref()
            .and_then(|c| str_at(c, "/metadata/resourceVersion"))
            .map(str::to_string);
        let carried = |c: &Value| -> u64 {
            annotation(c, PLAN_SEQ_ANNOTATION)
                .and_then(|s| s.parse().ok())
                .or_else(|| {
                    c.pointer("/status/lastAction/planSeq")
                        .and_then(Value::as_u64)
                })
                .unwrap_or(0)
        };
        let mut retry = false;
        let (result, message, rv) = if a.verb != Verb::Delete && self.rng.random_bool(CONFLICT_P) {
            retry = true;
            (
                OutcomeResult::Conflict,
                format!(
                    "the object {key} has been modified; please apply your changes to the latest version and try again"
                ),
                None,
            )
        } else {
            match a.verb {
                Verb::Create | Verb::Apply => match &current {
                    Some(c) if carried(c) > q.plan_seq => (
                        OutcomeResult::Superseded,
                        format!(
                            "{key} already carries plan {}, newer than this action's plan {}: not applied",
                            carried(c),
                            q.plan_seq
                        ),
                        cur_rv,
                    ),
                    Some(c) if annotation(c, ACTION_ID_ANNOTATION) == Some(a.id.as_str()) => (
                        OutcomeResult::NoOp,
                        format!(
                            "{key} already carries this action (applied by an earlier delivery)"
                        ),
                        cur_rv,
                    ),
                    _ => {
                        let desired = a
                            .object
                            .as_ref()
                            .and_then(|o| o.parse().ok())
                            .unwrap_or_else(|| json!({}));
                        let mut object = current.clone().unwrap_or_else(|| json!({}));
                        let old_spec = object.get("spec").cloned();
                        let mut stamped = desired;
                        stamped["metadata"]["annotations"] = json!({
                            ACTION_ID_ANNOTATION: a.id,
                            PLAN_SEQ_ANNOTATION: q.plan_seq.to_string(),
                        });
                        apply_merge(&mut object, &stamped);
                        let uid = match current.as_ref().and_then(|c| str_at(c, "/metadata/uid")) {
                            Some(u) => u.to_string(),
                            None => self.new_uid(),
                        };
                        if key.kind == "Deployment" {
                            let changed =
                                current.is_none() || old_spec != object.get("spec").cloned();
                            let generation = int_at(&object, "/metadata/generation");
                            if changed {
                                let generation = generation + 1;
                                object["metadata"]["generation"] = json!(generation);
                                let ready = int_at(&object, "/status/readyReplicas");
                                let want = int_at(&object, "/spec/replicas");
                                object["status"] = json!({"observedGeneration": generation - 1,
                                    "replicas": want, "readyReplicas": ready.min(want),
                                    "availableReplicas": ready.min(want)});
                                self.rollouts.push_back(key.clone());
                            }
                        }
                        let rv = self.rv + 1;
                        server_defaults(&mut object, &uid, rv);
                        let rv = self.store(key.clone(), object);
                        let verb = if current.is_some() {
                            "applied (server-side apply, field manager logbook)"
                        } else {
                            "created"
                        };
                        (
                            OutcomeResult::Applied,
                            format!("{key} {verb}"),
                            Some(rv.to_string()),
                        )
                    }
                },
                Verb::Delete => match &current {
                    None => (OutcomeResult::NoOp, format!("{key} is already gone"), None),
                    Some(c) if carried(c) > q.plan_seq => (
                        OutcomeResult::Superseded,
                        format!("{key} already carries a newer plan: not deleted"),
                        cur_rv,
                    ),
                    Some(c)
                        if a.uid
                            .as_deref()
                            .is_some_and(|u| str_at(c, "/metadata/uid") != Some(u)) =>
                    {
                        (
                            OutcomeResult::Conflict,
                            format!("{key} was replaced since the action was planned: not deleted"),
                            cur_rv,
                        )
                    }
                    Some(_) => {
                        self.remove(&key);
                        (OutcomeResult::Applied, format!("{key} deleted"), None)
                    }
                },
                Verb::Status => match &current {
                    None => (
                        OutcomeResult::NoOp,
                        format!("{key} is gone: there is no status to write"),
                        None,
                    ),
                    Some(c) if carried(c) > q.plan_seq => (
                        OutcomeResult::Superseded,
                        format!("the status of {key} already carries a newer plan"),
                        cur_rv,
                    ),
                    Some(c) if str_at(c, "/status/lastAction/actionId") == Some(a.id.as_str()) => (
                        OutcomeResult::NoOp,
                        format!("the status of {key} already carries this action"),
                        cur_rv,
                    ),
                    Some(c) => {
                        let mut status = a
                            .object
                            .as_ref()
                            .and_then(|o| o.parse().ok())
                            .and_then(|o: Value| o.get("status").cloned())
                            .unwrap_or_else(|| json!({}));
                        status["lastAction"] = json!({"actionId": a.id, "planSeq": q.plan_seq});
                        let mut object = c.clone();
                        object["status"] = status;
                        let rv = self.store(key.clone(), object);
                        (
                            OutcomeResult::Applied,
                            format!("status of {key} written"),
                            Some(rv.to_string()),
                        )
                    }
                },
            }
        };
        *self
            .stats
            .executed
            .entry(format!("{} → {}", a.verb, result.as_str()))
            .or_default() += 1;
        self.outcomes.push_back(OutcomeMessage {
            at: q.at + chrono::Duration::milliseconds(i64::from(q.attempt)),
            target: key.clone(),
            app: a.app.clone(),
            outcome: OutcomeRecord {
                action_id: a.id.clone(),
                result,
                message,
                executor: format!("executor-{}", q.plan_seq % 2),
                attempt: q.attempt,
                resource_version: rv,
                retry,
            },
        });
        self.last_action = Some((key, a.app.clone(), a.id.clone(), q.at));
        if retry {
            self.exec.push_back(Queued {
                attempt: q.attempt + 1,
                ..q
            });
        }
    }

    /// Reads what the core appended, as the outbox would, and queues its actions.
    fn read_back(&mut self, reader: &LogReader) {
        for e in reader.range(self.next_seq..) {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            self.next_seq = e.seq + 1;
            if let Body::Action(a) = e.body {
                self.exec.push_back(Queued {
                    plan_seq: a.plan_seq,
                    at: e.at,
                    action: a.action,
                    attempt: 1,
                });
            }
        }
    }

    fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Hands a batch to the core and reads back what it appended.
    fn feed(&mut self, core: &mut Core, reader: &LogReader, batch: Vec<Input>) {
        if batch.is_empty() {
            return;
        }
        self.stats.batches += 1;
        let stop = core.handle(batch).unwrap_or_else(|e| panic!("{e}"));
        assert!(!stop);
        self.read_back(reader);
    }

    fn outcomes_input(msgs: Vec<OutcomeMessage>) -> Input {
        let (reply, _) = tokio::sync::oneshot::channel();
        Input::Outcomes(msgs, reply)
    }

    /// The next batch: a few watch events and the outcomes that arrived meanwhile.
    fn batch(&mut self, max_watch: usize) -> Vec<Input> {
        let mut batch = Vec::new();
        let backlog = self.watch.len();
        let n = if backlog > 16 {
            backlog / 4
        } else {
            self.rng.random_range(1..=3)
        }
        .min(max_watch);
        for _ in 0..n {
            match self.watch.pop_front() {
                Some(Watch::Seen(v)) => batch.push(Input::Seen(v)),
                Some(Watch::Deleted(v)) => batch.push(Input::Deleted(v)),
                None => break,
            }
        }
        let backlog = self.outcomes.len();
        let n = if backlog > 16 {
            backlog / 4
        } else {
            self.rng.random_range(0..=3)
        };
        let msgs: Vec<OutcomeMessage> = (0..n).filter_map(|_| self.outcomes.pop_front()).collect();
        if !msgs.is_empty() {
            let at = self.rng.random_range(0..=batch.len());
            batch.insert(at, Self::outcomes_input(msgs));
        }
        batch
    }

    /// Relists `kind`: the watch restarts from the list, so its queued events are dropped.
    fn relist(&mut self, core: &mut Core, reader: &LogReader, kind: &'static str) {
        self.watch.retain(|w| {
            let v = match w {
                Watch::Seen(v) | Watch::Deleted(v) => v,
            };
            v.get("kind").and_then(Value::as_str) != Some(kind)
        });
        let mut batch = vec![Input::ListStart(kind)];
        batch.extend(
            self.objects
                .iter()
                .filter(|(k, _)| k.kind == kind)
                .map(|(_, v)| Input::Seen(v.clone())),
        );
        batch.push(Input::ListDone(kind));
        self.stats.relists += 1;
        self.feed(core, reader, batch);
    }

    /// Drives `core` until the log holds exactly `target` entries.
    fn run(&mut self, core: &mut Core, reader: &LogReader, target: u64) {
        core.start(json!({"bench": "replay", "generator": GENERATOR, "seed": SEED}))
            .unwrap_or_else(|e| panic!("{e}"));
        self.read_back(reader);
        // The cluster as the controller first finds it: every Application, no children yet.
        for i in 0..APPS {
            self.create_app(i);
        }
        self.watch.clear();
        let mut lists = Vec::new();
        for kind in KINDS {
            lists.push(Input::ListStart(kind));
            lists.extend(
                self.objects
                    .iter()
                    .filter(|(k, _)| k.kind == kind)
                    .map(|(_, v)| Input::Seen(v.clone())),
            );
            lists.push(Input::ListDone(kind));
        }
        self.feed(core, reader, lists);
        let mut next_resync = RESYNC_EVERY;
        let mut relists = vec![target * 7 / 10, target * 3 / 10];
        // Near the end, single watch events (a plan adds a handful of entries), then outcomes
        // alone (one entry each), to land on `target` exactly.
        const CAREFUL: u64 = 1_000;
        const EXACT: u64 = 32;
        let started = Instant::now();
        let mut next_report = target / 10;
        while self.last_seq() + EXACT < target {
            if self.last_seq() >= next_report {
                eprintln!(
                    "  {} entries after {:.0} s",
                    self.last_seq(),
                    started.elapsed().as_secs_f64()
                );
                next_report += target / 10;
            }
            self.stats.steps += 1;
            let step = self.stats.steps;
            let left = target - self.last_seq();
            if self.last_seq() >= next_resync && left > 10 * CAREFUL {
                next_resync += RESYNC_EVERY;
                self.stats.resyncs += 1;
                self.feed(core, reader, vec![Input::Resync]);
                continue;
            }
            if relists.last().is_some_and(|&at| self.last_seq() >= at) && left > 10 * CAREFUL {
                relists.pop();
                self.relist(core, reader, "Deployment");
                continue;
            }
            if self.rng.random_bool(USER_P) {
                self.user_op(step);
            }
            while self.recreate.front().is_some_and(|(due, _)| *due <= step) {
                if let Some((_, i)) = self.recreate.pop_front() {
                    self.create_app(i);
                    *self
                        .stats
                        .user_ops
                        .entry("application re-created")
                        .or_default() += 1;
                }
            }
            for _ in 0..self.rng.random_range(0..=2) {
                if let Some(q) = self.exec.pop_front() {
                    self.execute(q);
                }
            }
            if self.rng.random_bool(0.4) {
                self.finish_rollout();
            }
            if self.rng.random_bool(0.4) {
                self.collect_garbage();
            }
            let max_watch = if left < CAREFUL { 1 } else { usize::MAX };
            let batch = self.batch(max_watch);
            self.feed(core, reader, batch);
        }
        while self.last_seq() < target {
            if self.outcomes.is_empty() {
                match self.exec.pop_front() {
                    Some(q) => {
                        self.execute(q);
                        // The log ends before these watch events arrive.
                        self.watch.clear();
                    }
                    None => self.synthesize_retry(),
                }
                continue;
            }
            let n = (target - self.last_seq()) as usize;
            let msgs: Vec<OutcomeMessage> =
                (0..n).filter_map(|_| self.outcomes.pop_front()).collect();
            self.feed(core, reader, vec![Self::outcomes_input(msgs)]);
        }
        assert_eq!(self.last_seq(), target, "the generator overshot");
    }

    /// With nothing left to execute: another transient failure of the last action.
    fn synthesize_retry(&mut self) {
        let Some((target, app, id, at)) = self.last_action.clone() else {
            panic!("nothing was ever planned");
        };
        self.stats.synthesized_retries += 1;
        let attempt = 100 + self.stats.synthesized_retries as u32;
        self.outcomes.push_back(OutcomeMessage {
            at: at + chrono::Duration::milliseconds(i64::from(attempt)),
            target,
            app,
            outcome: OutcomeRecord {
                action_id: id,
                result: OutcomeResult::Failed,
                message: "the API server is unavailable; will try again".into(),
                executor: "executor-0".into(),
                attempt,
                resource_version: None,
                retry: true,
            },
        });
    }
}

/// Where the generated log is cached.
fn cache_path(entries: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let name = if entries == ENTRIES {
        "replay-1m.db".to_string()
    } else {
        format!("replay-{entries}.db")
    };
    target.join("bench-data").join(name)
}

/// True when `path` is a log this generator wrote with `entries` entries.
fn reusable(path: &Path, entries: u64) -> bool {
    if !path.exists() {
        return false;
    }
    let Ok(reader) = LogReader::open(path) else {
        return false;
    };
    if reader.last_seq().ok() != Some(entries) {
        return false;
    }
    matches!(reader.get(1), Ok(Some(e)) if matches!(&e.body, Body::Marker(m)
        if m.marker == MarkerKind::Start
            && m.detail.get("generator").and_then(Value::as_str) == Some(GENERATOR)
            && m.detail.get("seed").and_then(Value::as_u64) == Some(SEED)))
}

fn remove_log(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Generates the log at `dest` with the controller core (in /dev/shm when there is one: the
/// core's commits are durable, and fsync is what would take the time on disk).
fn generate(dest: &Path, entries: u64) {
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        shm.join(format!("logbook-replay-bench-{}.db", std::process::id()))
    } else {
        dest.with_extension("generating")
    };
    remove_log(&work);
    let started = Instant::now();
    let mut sim = Sim::new(SEED);
    {
        let log = Log::open(&work).unwrap_or_else(|e| panic!("{e}"));
        let (notify, _) = tokio::sync::watch::channel(0);
        let mut core = Core::new(
            log,
            PlannerConfig::default(),
            KINDS.to_vec(),
            Duration::ZERO,
            notify,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let reader = LogReader::open(&work).unwrap_or_else(|e| panic!("{e}"));
        sim.run(&mut core, &reader, entries);
        drop(reader);
        // Closing the last connection checkpoints the WAL into the file and removes it.
        drop(core);
    }
    let s = &sim.stats;
    println!(
        "generated {entries} entries in {:.1} s: {} steps, {} batches handed to the core, {} resyncs, {} relists, {} synthesized retries at the end",
        started.elapsed().as_secs_f64(),
        s.steps,
        s.batches,
        s.resyncs,
        s.relists,
        s.synthesized_retries
    );
    println!("  user and cluster changes: {:?}", s.user_ops);
    println!("  executor attempts (verb → result): {:?}", s.executed);
    let mut wal = work.as_os_str().to_owned();
    wal.push("-wal");
    assert!(
        std::fs::metadata(PathBuf::from(wal)).map_or(true, |m| m.len() == 0),
        "the WAL was not checkpointed"
    );
    if work != dest {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let tmp = dest.with_extension("copying");
        std::fs::copy(&work, &tmp).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
        remove_log(dest);
        std::fs::rename(&tmp, dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
        remove_log(&work);
    }
}

/// The log's mix, by a scan.
fn print_mix(reader: &LogReader) {
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_plan: BTreeMap<usize, u64> = BTreeMap::new();
    let mut scoped = 0u64;
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut markers: BTreeMap<String, u64> = BTreeMap::new();
    let mut apps = BTreeSet::new();
    let mut bytes = 0u64;
    let mut max_actions = 0;
    for e in reader.range(..) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        *kinds.entry(e.kind().as_str()).or_default() += 1;
        if let Some(a) = &e.keys.application {
            apps.insert(a.clone());
        }
        match &e.body {
            Body::Plan(p) => {
                let n = p.action_ids.len();
                max_actions = max_actions.max(n);
                *per_plan.entry(n.min(4)).or_default() += 1;
                scoped += u64::from(!p.scope.is_empty());
            }
            Body::Event(ev) => {
                let what = match (ev.change, ev.synthesized) {
                    (Change::Upsert, _) => "upsert",
                    (Change::Delete, false) => "delete",
                    (Change::Delete, true) => "synthesized delete",
                };
                *events.entry(what.to_string()).or_default() += 1;
                *events.entry(ev.key.kind.clone()).or_default() += 1;
                bytes += ev.object.as_ref().map_or(0, |o| o.as_str().len() as u64);
            }
            Body::Outcome(o) => *outcomes.entry(o.result.as_str()).or_default() += 1,
            Body::Marker(m) => *markers.entry(format!("{:?}", m.marker)).or_default() += 1,
            Body::Action(_) => {}
        }
    }
    println!("log mix: {kinds:?}");
    println!(
        "  plans by number of actions (4 = 4 or more): {per_plan:?}; {scoped} scoped, largest {max_actions}"
    );
    println!(
        "  events: {events:?}; object JSON {} in all",
        mib(bytes as f64)
    );
    println!("  outcomes: {outcomes:?}; markers: {markers:?}");
    println!("  applications named in the log: {}", apps.len());
}

/// The fold of entries `1..=upto`, without planning.
fn fold_upto(reader: &LogReader, upto: u64) -> Fold {
    let mut fold = Fold::new();
    for e in reader.range(1..=upto) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        fold.apply(e.seq, e.at, &e.body);
    }
    fold
}

/// Peak live heap of `verify` up to `points`, next to the world view alone: over the whole
/// prefix, and from entry `steady` on (after the initial convergence, whose thousands of
/// pending actions make the world larger than it is later).
fn memory_table(path: &Path, points: &[u64], steady: u64) {
    println!();
    println!("memory (MiB; \"from {steady}\": the peak over entries {steady}..=n only):");
    println!(
        "| entries n | world view at n (fold held) | fold alone: peak | fold alone: peak from {steady} | verify: peak | verify: peak from {steady} | verify − fold, from {steady} | held after verify (report) | SQLite heap peak | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in points {
        let reader = LogReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        // Warm the reader's statement cache so it is not counted in the world.
        let _ = reader.range(1..=1).count();
        count_from_zero();
        let mut fold = Fold::new();
        let mut fold_peak = 0;
        for e in reader.range(1..=n) {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            if e.seq == steady {
                fold_peak = peak();
                reset_peak();
            }
            fold.apply(e.seq, e.at, &e.body);
        }
        let world = live();
        let fold_steady = peak();
        let fold_peak = fold_peak.max(fold_steady);
        let rejected = fold.rejected().len();
        drop(fold);
        let base = live();
        reset_peak();
        sqlite_heap(true);
        reset_rss_peak();
        let early = std::cell::Cell::new(0isize);
        let progress = |seq: u64| {
            if seq == steady {
                early.set(peak() - base);
                reset_peak();
            }
        };
        let options = VerifyOptions {
            until: Some(Point::Seq(n)),
            progress: Some(&progress),
            ..Default::default()
        };
        let report = verify(&reader, &options).unwrap_or_else(|e| panic!("{e}"));
        let verify_steady = peak() - base;
        let verify_peak = early.get().max(verify_steady);
        let held = live() - base;
        let (_, sqlite_peak) = sqlite_heap(false);
        let rss = proc_kib("VmHWM:").unwrap_or(0) * 1024;
        stop_counting();
        assert!(report.is_ok(), "verify up to {n} failed");
        assert_eq!(report.entries, n);
        let m = |b: isize| format!("{:.1}", b as f64 / (1024.0 * 1024.0));
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            m(world),
            m(fold_peak),
            m(fold_steady),
            m(verify_peak),
            m(verify_steady),
            m(verify_steady - fold_steady),
            m(held),
            sqlite_peak as f64 / (1024.0 * 1024.0),
            rss as f64 / (1024.0 * 1024.0),
        );
        if rejected > 0 || !report.rejected.is_empty() {
            println!("  (entries the fold rejected: {rejected})");
        }
        drop(report);
    }
    println!();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let entries = std::env::var("REPLAY_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { ENTRIES } else { SMOKE_ENTRIES });
    let smoke_dir = (!full).then(|| tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
    let path = match &smoke_dir {
        Some(d) => d.path().join("replay.db"),
        None => cache_path(entries),
    };
    if reusable(&path, entries) {
        println!("reusing {} ({entries} entries)", path.display());
    } else {
        println!("generating {} ({entries} entries)", path.display());
        generate(&path, entries);
    }
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    print_mix(&reader);

    // A bench over a log that does not verify measures nothing.
    let started = Instant::now();
    let report = verify(&reader, &VerifyOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed().as_secs_f64();
    assert!(
        report.is_ok(),
        "the generated log does not verify: {:?}",
        report
            .divergence
            .as_ref()
            .map(|d| &d.why)
            .or(report.chain_problem.as_ref())
            .or(report.stopped.as_ref())
    );
    assert!(report.plans > 0 && report.plans == report.plans_identical);
    assert_eq!(report.entries, entries);
    println!(
        "sanity: verify ok in {took:.1} s ({:.0} entries/s): {} events, {} plans ({} actions), {} outcomes, {} markers, {} rejected",
        entries as f64 / took,
        report.events,
        report.plans,
        report.actions,
        report.outcomes,
        report.markers,
        report.rejected.len()
    );
    drop(report);

    let points: Vec<u64> = if full && entries == ENTRIES {
        vec![100_000, 250_000, ENTRIES]
    } else {
        vec![entries / 10, entries / 4, entries]
    };
    // A multiple of `PROGRESS_EVERY`, where verify's progress callback is called.
    let steady = (entries / 20).next_multiple_of(logbook::replay::PROGRESS_EVERY);
    memory_table(&path, &points, steady);
    if !full {
        println!("(smoke run; `cargo bench --bench replay` for the full one)");
        return;
    }

    // Replaying a million entries takes minutes (the planner recomputes every plan), so
    // criterion times the first `TIMED` entries, ten samples each; the chain check, which is
    // fast, runs over the whole log. The whole log's verify is the sanity run above.
    let timed = std::env::var("REPLAY_TIMED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(TIMED)
        .min(entries);
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("replay_verify");
    group
        .throughput(Throughput::Elements(timed))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("b_verify_skip_chain", |b| {
        b.iter(|| {
            let options = VerifyOptions {
                skip_chain: true,
                until: Some(Point::Seq(timed)),
                ..Default::default()
            };
            let r = verify(&reader, &options).unwrap_or_else(|e| panic!("{e}"));
            assert!(r.is_ok());
            r.plans
        })
    });
    group.bench_function("d_read_decode", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for e in reader.range(..=timed) {
                n += black_box(&e.unwrap_or_else(|e| panic!("{e}"))).seq & 1;
            }
            n
        })
    });
    group.bench_function("e_read_fold", |b| {
        b.iter(|| black_box(fold_upto(&reader, timed).last_seq()))
    });
    group.finish();
    let mut group = c.benchmark_group("replay_chain");
    group
        .throughput(Throughput::Elements(entries))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("c_chain_only", |b| {
        b.iter(|| {
            let r = reader.verify().unwrap_or_else(|e| panic!("{e}"));
            assert!(r.is_ok());
            r.checked
        })
    });
    group.finish();
    c.final_summary();
}
