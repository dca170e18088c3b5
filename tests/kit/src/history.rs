//! One simulated history written by the real controller core against a model API server and
//! executor: scripted ([`History`], the replay tests) or generated at a [`Load`] ([`generate`]).

use crate::app::AppTest;
use crate::ssa::{apply_merge, server_defaults};
use chrono::{DateTime, TimeZone, Utc};
use logbook::bus::wire::OutcomeMessage;
use logbook::controller::core::{Core, Input};
use logbook::log::{Log, LogReader};
use logbook::model::{ACTION_ID_ANNOTATION, Application, PLAN_SEQ_ANNOTATION};
use logbook::reconcile::PlannerConfig;
use logbook::record::{Body, Entry, ObjKey, OutcomeRecord, OutcomeResult, RecordedAction, Verb};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The kinds the controller watches, listed in this order.
pub const KINDS: [&str; 4] = ["Application", "Deployment", "Service", "Ingress"];

/// The model API server's store: every object by key, and the last resourceVersion handed out.
pub struct Cluster {
    pub objects: BTreeMap<ObjKey, Value>,
    rv: u64,
}

impl Cluster {
    /// An empty cluster whose next resourceVersion is `rv + 1`.
    pub fn new(rv: u64) -> Cluster {
        Cluster {
            objects: BTreeMap::new(),
            rv,
        }
    }

    /// A new resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// The resourceVersion [`Cluster::next_rv`] will hand out next.
    pub fn peek_rv(&self) -> u64 {
        self.rv + 1
    }
}

/// The real controller core writing a new log at `path` under `config`, started with `detail` in
/// its start marker, recording a checkpoint every `checkpoint_every` entries (0: never).
fn start_core(path: &Path, config: PlannerConfig, detail: Value, checkpoint_every: u64) -> Core {
    let log = Log::open(path).expect("a new log");
    let (notify, _) = tokio::sync::watch::channel(0);
    let mut core =
        Core::new(log, config, KINDS.to_vec(), Duration::ZERO, notify).expect("the core starts");
    core.checkpoint_every(checkpoint_every);
    core.start(detail).expect("start markers");
    core
}

/// Outcomes as the outcome intake hands them to the core (nobody waits for the reply).
fn outcomes_input(msgs: Vec<OutcomeMessage>) -> Input {
    let (reply, _) = tokio::sync::oneshot::channel();
    Input::Outcomes(msgs, reply)
}

/// A log being written by the real core, and the model cluster it controls.
pub struct History {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    core: Core,
    /// The cluster as the model API server holds it.
    pub cluster: Cluster,
    /// Action entries carried out so far (by seq).
    done: u64,
    /// Outcome timestamps: deterministic, one second apart.
    tick: i64,
}

impl History {
    /// An empty cluster, every watch listed, under `config`; no checkpoints (a log as
    /// builds before checkpoints wrote them).
    pub fn new(config: PlannerConfig) -> History {
        History::with_checkpoints(config, 0)
    }

    /// [`History::new`], the core recording a checkpoint every `every` entries.
    pub fn with_checkpoints(config: PlannerConfig, every: u64) -> History {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log.db");
        let core = start_core(&path, config, json!({"version": "test"}), every);
        let mut h = History {
            dir,
            path,
            core,
            cluster: Cluster::new(100),
            done: 0,
            tick: 0,
        };
        let mut inputs = Vec::new();
        for kind in KINDS {
            inputs.push(Input::ListStart(kind));
            inputs.push(Input::ListDone(kind));
        }
        h.feed(inputs);
        h
    }

    fn feed(&mut self, inputs: Vec<Input>) {
        let stopped = self
            .core
            .handle(inputs)
            .expect("the core handles its inputs");
        assert!(!stopped, "the core stopped");
    }

    fn next_rv(&mut self) -> u64 {
        self.cluster.next_rv()
    }

    /// Creates or updates an Application, as `kubectl apply` would.
    pub fn apply(&mut self, app: &Application) {
        let input = self.applied(app);
        self.feed(vec![input]);
    }

    /// Creates or updates many Applications, seen by the watch in one burst.
    pub fn apply_all(&mut self, apps: &[Application]) {
        let inputs = apps.iter().map(|a| self.applied(a)).collect();
        self.feed(inputs);
    }

    fn applied(&mut self, app: &Application) -> Input {
        let mut v = serde_json::to_value(app).expect("an Application serializes");
        v["apiVersion"] = json!("logbook.dev/v1alpha1");
        v["kind"] = json!("Application");
        let ns = app.metadata.namespace.clone().unwrap_or_default();
        let name = app.metadata.name.clone().unwrap_or_default();
        let key = ObjKey::new("Application", &ns, &name);
        let rv = self.next_rv();
        let created = self
            .cluster
            .objects
            .get(&key)
            .and_then(|o| o.pointer("/metadata/creationTimestamp").cloned())
            .unwrap_or_else(|| json!(format!("2026-01-01T00:{:02}:00Z", rv % 60)));
        v["metadata"]["uid"] = json!(format!("uid-{ns}-{name}"));
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        v["metadata"]["creationTimestamp"] = created;
        if let Some(status) = self.cluster.objects.get(&key).and_then(|o| o.get("status")) {
            v["status"] = status.clone();
        }
        self.cluster.objects.insert(key, v.clone());
        Input::Seen(v)
    }

    /// Deletes an Application and, as the garbage collector would, its owned children.
    pub fn delete_app(&mut self, ns: &str, name: &str) {
        let key = ObjKey::new("Application", ns, name);
        let Some(v) = self.cluster.objects.remove(&key) else {
            return;
        };
        let mut inputs = vec![Input::Deleted(v)];
        let owned: Vec<ObjKey> = self
            .cluster
            .objects
            .iter()
            .filter(|(k, o)| {
                k.namespace == ns
                    && o.pointer("/metadata/ownerReferences/0/name")
                        .and_then(Value::as_str)
                        == Some(name)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in owned {
            if let Some(o) = self.cluster.objects.remove(&k) {
                inputs.push(Input::Deleted(o));
            }
        }
        self.feed(inputs);
    }

    /// A human edits a child by hand (e.g. `kubectl scale`).
    pub fn hand_edit(&mut self, key: &ObjKey, edit: impl FnOnce(&mut Value)) {
        let rv = self.next_rv();
        let Some(o) = self.cluster.objects.get_mut(key) else {
            panic!("no {key} to edit");
        };
        edit(o);
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        let v = o.clone();
        self.feed(vec![Input::Seen(v)]);
    }

    /// A periodic resync.
    pub fn resync(&mut self) {
        self.feed(vec![Input::Resync]);
    }

    /// Asks the core for a checkpoint, as `POST /checkpoint` does; its answer.
    pub fn checkpoint(&mut self) -> logbook::controller::core::CheckpointTaken {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        self.feed(vec![Input::Checkpoint(reply)]);
        answer
            .try_recv()
            .expect("the core answers within the batch")
            .expect("the checkpoint is taken")
    }

    /// The real core writing this history (to feed it by hand).
    pub fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    /// Carries out every recorded action not yet carried out, as executors and the API server
    /// would, until the controller asks for nothing more.
    pub fn settle(&mut self) {
        for _ in 0..20 {
            let actions: Vec<Entry> = LogReader::open(&self.path)
                .expect("the log opens")
                .range(self.done + 1..)
                .map(|e| e.expect("an entry"))
                .collect();
            let mut inputs = Vec::new();
            for e in actions {
                self.done = e.seq;
                if let Body::Action(a) = &e.body {
                    let action = a.action.to_action().expect("a recorded action");
                    inputs.extend(self.execute(&action, a.plan_seq));
                }
            }
            if inputs.is_empty() {
                return;
            }
            // One batch, as the watch and the outcome intake deliver them under load.
            self.feed(inputs);
        }
        panic!("the controller kept asking for more after 20 rounds");
    }

    /// The watch events and the outcome that carrying out `a` produces.
    fn execute(&mut self, a: &logbook::record::Action, plan_seq: u64) -> Vec<Input> {
        let rv = self.next_rv();
        let mut inputs = Vec::new();
        match a.verb {
            Verb::Create | Verb::Apply => {
                let Some(desired) = &a.object else {
                    return inputs;
                };
                let mut object = self
                    .cluster
                    .objects
                    .get(&a.target)
                    .cloned()
                    .unwrap_or(json!({}));
                apply_merge(&mut object, desired);
                server_defaults(&mut object, &format!("uid-{}", a.target), rv);
                object["metadata"]["resourceVersion"] = json!(rv.to_string());
                object["metadata"]["annotations"]["logbook.dev/action-id"] = json!(a.id);
                object["metadata"]["annotations"]["logbook.dev/plan-seq"] =
                    json!(plan_seq.to_string());
                self.cluster
                    .objects
                    .insert(a.target.clone(), object.clone());
                inputs.push(Input::Seen(object));
            }
            Verb::Delete => {
                if let Some(o) = self.cluster.objects.remove(&a.target) {
                    inputs.push(Input::Deleted(o));
                }
            }
            Verb::Status => {
                let Some(o) = self.cluster.objects.get_mut(&a.target) else {
                    return inputs;
                };
                if let Some(status) = a.object.as_ref().and_then(|s| s.get("status")) {
                    let mut status = status.clone();
                    status["lastAction"] = json!({"actionId": a.id, "planSeq": plan_seq});
                    o["status"] = status;
                }
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                inputs.push(Input::Seen(o.clone()));
            }
        }
        self.tick += 1;
        let msg = OutcomeMessage {
            at: Utc
                .timestamp_opt(1_795_000_000 + self.tick, 0)
                .single()
                .expect("a valid time"),
            target: a.target.clone(),
            app: a.app.clone(),
            outcome: OutcomeRecord {
                action_id: a.id.clone(),
                result: OutcomeResult::Applied,
                message: String::new(),
                executor: "executor-1".into(),
                attempt: 1,
                resource_version: Some(rv.to_string()),
                retry: false,
            },
        };
        inputs.push(outcomes_input(vec![msg]));
        inputs
    }

    /// Every entry of the log.
    pub fn entries(&self) -> Vec<Entry> {
        LogReader::open(&self.path)
            .expect("the log opens")
            .range(..)
            .map(|e| e.expect("an entry"))
            .collect()
    }

    /// A copy of the log in which the object of event `seq` has `from` replaced by `to`, its
    /// hash left as it was (the append-only triggers of the copy are dropped to do it).
    pub fn tampered_copy(&self, name: &str, seq: u64, from: &str, to: &str) -> PathBuf {
        let copy = self.copy(name);
        let conn = rusqlite::Connection::open(&copy).expect("the copy opens");
        conn.execute_batch(
            "DROP TRIGGER entries_append_only_update; DROP TRIGGER entries_append_only_delete;",
        )
        .expect("triggers dropped");
        let entry = LogReader::open(&self.path)
            .expect("the log opens")
            .get(seq)
            .expect("reads")
            .expect("the entry exists");
        let Body::Event(mut ev) = entry.body else {
            panic!("entry {seq} is not an event")
        };
        let text = ev.object.as_ref().expect("an object").as_str();
        assert!(text.contains(from), "entry {seq} does not mention {from}");
        let edited: Value = serde_json::from_str(&text.replace(from, to)).expect("JSON");
        ev.object = Some(logbook::record::Json::from_value(&edited));
        let payload = Body::Event(ev).encode().expect("encodes");
        conn.execute(
            "UPDATE entries SET payload = ?1 WHERE seq = ?2",
            rusqlite::params![payload, seq as i64],
        )
        .expect("payload edited");
        copy
    }

    /// A copy of the log file in the same directory (for tampering).
    pub fn copy(&self, name: &str) -> PathBuf {
        let to = self.dir.path().join(name);
        let conn = rusqlite::Connection::open(&self.path).expect("the log opens in SQLite");
        conn.execute("VACUUM INTO ?1", [to.to_string_lossy().as_ref()])
            .expect("a copy of the log");
        to
    }
}

/// A standard history: three Applications in two namespaces (two with hosts sharing one
/// namespace's Ingress, one with requests set, one with a health check), an image change, a
/// hand edit put back, a delete, and a resync.
pub fn standard(config: PlannerConfig) -> History {
    standard_with(History::new(config))
}

/// [`standard`], written by the core of `h` (e.g. [`History::with_checkpoints`]).
pub fn standard_with(mut h: History) -> History {
    let web = Application::test("shop", "web")
        .host("shop.example.com")
        .health_check("/healthz");
    h.apply(&web.clone().build());
    let mut api = Application::test("shop", "api")
        .host("api.example.com")
        .build();
    api.spec.resources = Some(logbook::model::Resources {
        requests: Some(logbook::model::ResourceList {
            cpu: Some("250m".into()),
            memory: Some("256Mi".into()),
        }),
        limits: None,
    });
    h.apply(&api);
    h.apply(&Application::test("blog", "site").build());
    h.settle();
    h.apply(&web.clone().image("nginx:1.28").build());
    h.settle();
    h.hand_edit(&ObjKey::new("Deployment", "blog", "site"), |o| {
        o["spec"]["replicas"] = json!(5);
    });
    h.settle();
    h.resync();
    h.settle();
    h.delete_app("blog", "site");
    h.settle();
    h
}

/// In a [`standard`] history's `entries`: the seqs of `Deployment/blog/site`'s observed version
/// just before the hand edit (replicas set to 5), and of the edited one.
pub fn hand_edit_versions(entries: &[Entry]) -> (u64, u64) {
    let site = ObjKey::new("Deployment", "blog", "site");
    let versions: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(&e.body, Body::Event(ev) if ev.key == site))
        .collect();
    let edited = versions
        .iter()
        .position(|e| match &e.body {
            Body::Event(ev) => ev
                .object
                .as_ref()
                .and_then(|o| o.parse().ok())
                .is_some_and(|o: Value| o["spec"]["replicas"] == 5),
            _ => false,
        })
        .filter(|&i| i > 0)
        .expect("the standard history records the hand edit after a first version");
    (versions[edited - 1].seq, versions[edited].seq)
}

/// Application `shop/app-NNN` with host `app-NNN.shop.example.com` (one rule in the shared
/// Ingress of `shop`).
pub fn app_with_host(i: u32) -> Application {
    Application::test("shop", &format!("app-{i:03}"))
        .host(&format!("app-{i:03}.shop.example.com"))
        .build()
}

/// A history whose shared Ingress is large (about 30 KiB of JSON), so that its events and
/// actions are recorded as patches: 200 Applications with hosts in namespace `shop` (even
/// numbers), settled; then, one at a time, `shop/app-101` and `shop/app-201`, whose rules land
/// in the middle of the sorted rules, each settled. Returns the history and the last seq before
/// `shop/app-201` was applied.
pub fn shared_ingress() -> (History, u64) {
    let mut h = History::new(PlannerConfig::default());
    let apps: Vec<_> = (0..400).step_by(2).map(app_with_host).collect();
    h.apply_all(&apps);
    h.settle();
    h.apply(&app_with_host(101));
    h.settle();
    let before = LogReader::open(&h.path)
        .and_then(|r| r.last_seq())
        .expect("the log reads");
    h.apply(&app_with_host(201));
    h.settle();
    (h, before)
}

/// The event and action lines of an export (JSON Lines, `audit log -o json` or
/// `logbook-replay export`) of [`shared_ingress`]'s Ingress, parsed, after checking that each
/// carries its Ingress whole (all 200 rules and more), patched in the log or not.
pub fn whole_ingress_lines(jsonl: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    for line in jsonl.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let object = match v["kind"].as_str() {
            Some("event") => &v["body"]["object"],
            Some("action") => &v["body"]["action"]["object"],
            _ => continue,
        };
        assert!(
            object["spec"]["rules"]
                .as_array()
                .is_some_and(|r| r.len() >= 200),
            "{line}"
        );
        lines.push(v);
    }
    lines
}

/// The scale and speed of a generated history: how many Applications in how many namespaces,
/// how often users act and executors meet conflicts, how often the controller resyncs. Given the
/// same `Load`, [`generate`] feeds the core the same inputs.
#[derive(Clone, Debug)]
pub struct Load {
    pub apps: usize,
    pub namespaces: usize,
    pub seed: u64,
    /// Recorded in the start marker with the seed, so that a cached log can be recognized.
    pub generator: &'static str,
    /// A resync every this many entries.
    pub resync_every: u64,
    /// Per step: the chance that a user changes something.
    pub user_p: f64,
    /// Per attempt: the chance that an executor's write meets a (retried) conflict.
    pub conflict_p: f64,
    /// The core records a checkpoint every this many entries (0: never).
    pub checkpoint_every: u64,
}

impl Load {
    /// The replay bench's load: 1,000 Applications in 10 namespaces, a checkpoint every
    /// 10,000 entries.
    pub const BENCH: Load = Load {
        apps: 1_000,
        namespaces: 10,
        seed: 0x1095_b00c,
        // 4: large objects (the shared Ingresses) are recorded as patches.
        generator: "replay-bench-5",
        resync_every: 50_000,
        user_p: 0.2,
        conflict_p: 0.01,
        checkpoint_every: 10_000,
    };
}

/// Generates a log of exactly `entries` entries at `path` (a new file), written by the real
/// controller core under the default planner configuration and driven at `load`: the initial
/// lists see `load.apps` Applications; then users change images, replicas and env, scale
/// Deployments by hand, delete Applications (the garbage collector removes their children) and
/// create them again; the executor applies the actions the core records (read back from the log
/// as the outbox would), stamping the action-id and plan-seq annotations, and reports outcomes
/// (transient conflicts are retried); Deployments finish their rollouts later, and pods
/// sometimes flap; the controller resyncs every `load.resync_every` entries and relists
/// Deployments twice, and records a checkpoint every `load.checkpoint_every` entries (none in
/// the last few dozen, where the log must land on `entries` exactly). Watch events reach the
/// core in small batches, each with the outcomes that arrived meanwhile. What is fed is
/// deterministic given the load (the core stamps entries with its own clock; an outcome is
/// stamped 1 ms per attempt after its action).
pub fn generate(path: &Path, load: &Load, entries: u64) -> Stats {
    let mut core = start_core(
        path,
        PlannerConfig::default(),
        json!({"bench": "replay", "generator": load.generator, "seed": load.seed}),
        load.checkpoint_every,
    );
    let reader = LogReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = Sim::new(load.clone());
    sim.run(&mut core, &reader, entries);
    drop(reader);
    // Closing the last connection checkpoints the WAL into the file and removes it.
    drop(core);
    sim.stats
}

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
#[derive(Default, Debug)]
pub struct Stats {
    pub steps: u64,
    pub batches: u64,
    pub user_ops: BTreeMap<&'static str, u64>,
    pub executed: BTreeMap<String, u64>,
    pub resyncs: u64,
    pub relists: u64,
    pub synthesized_retries: u64,
}

/// The generator's users, executor and cluster around the core.
struct Sim {
    load: Load,
    rng: ChaCha8Rng,
    cluster: Cluster,
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
    fn new(load: Load) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(load.seed);
        let apps = load.apps;
        let replicas = (0..apps).map(|_| rng.random_range(1..=3)).collect();
        Sim {
            load,
            rng,
            cluster: Cluster::new(1000),
            uids: 0,
            image: vec![1; apps],
            replicas,
            mode: vec![0; apps],
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
        self.cluster.next_rv()
    }

    /// Application `i`'s key: `team-NN/app-NNNN`.
    fn app_key(&self, i: usize) -> ObjKey {
        ObjKey::new(
            "Application",
            &format!("team-{:02}", i % self.load.namespaces),
            &format!("app-{i:04}"),
        )
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
        self.cluster.objects.insert(key, object);
        rv
    }

    /// Deletes the object at `key` (if any) and sends its watch event.
    fn remove(&mut self, key: &ObjKey) -> bool {
        let Some(mut object) = self.cluster.objects.remove(key) else {
            return false;
        };
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.watch.push_back(Watch::Deleted(object));
        true
    }

    /// Application `i` as a user creates it: a new uid, generation 1.
    fn create_app(&mut self, i: usize) {
        let key = self.app_key(i);
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
        let key = self.app_key(i);
        let Some(mut v) = self.cluster.objects.get(&key).cloned() else {
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
        let i = self.rng.random_range(0..self.load.apps);
        if self.deleted.contains(&i) {
            return;
        }
        let r: f64 = self.rng.random();
        let dep = ObjKey::new(
            "Deployment",
            &self.app_key(i).namespace,
            &self.app_key(i).name,
        );
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
            let Some(mut d) = self.cluster.objects.get(&dep).cloned() else {
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
            let Some(mut d) = self.cluster.objects.get(&dep).cloned() else {
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
            let key = self.app_key(i);
            let uid = self
                .cluster
                .objects
                .get(&key)
                .and_then(|v| str_at(v, "/metadata/uid"))
                .unwrap_or_default()
                .to_string();
            self.remove(&key);
            self.deleted.insert(i);
            for kind in ["Deployment", "Service"] {
                let child = ObjKey::new(kind, &key.namespace, &key.name);
                let owned = self.cluster.objects.get(&child).is_some_and(|c| {
                    str_at(c, "/metadata/ownerReferences/0/uid") == Some(uid.as_str())
                });
                if owned {
                    let child_uid = self
                        .cluster
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
        let Some(mut d) = self.cluster.objects.get(&key).cloned() else {
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
            .cluster
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
        let current = self.cluster.objects.get(&key).cloned();
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
        let (result, message, rv) = if a.verb != Verb::Delete
            && self.rng.random_bool(self.load.conflict_p)
        {
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
                        let rv = self.cluster.peek_rv();
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
            batch.insert(at, outcomes_input(msgs));
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
            self.cluster
                .objects
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
        self.read_back(reader);
        // The cluster as the controller first finds it: every Application, no children yet.
        for i in 0..self.load.apps {
            self.create_app(i);
        }
        self.watch.clear();
        let mut lists = Vec::new();
        for kind in KINDS {
            lists.push(Input::ListStart(kind));
            lists.extend(
                self.cluster
                    .objects
                    .iter()
                    .filter(|(k, _)| k.kind == kind)
                    .map(|(_, v)| Input::Seen(v.clone())),
            );
            lists.push(Input::ListDone(kind));
        }
        self.feed(core, reader, lists);
        let mut next_resync = self.load.resync_every;
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
                next_resync += self.load.resync_every;
                self.stats.resyncs += 1;
                self.feed(core, reader, vec![Input::Resync]);
                continue;
            }
            if relists.last().is_some_and(|&at| self.last_seq() >= at) && left > 10 * CAREFUL {
                relists.pop();
                self.relist(core, reader, "Deployment");
                continue;
            }
            if self.rng.random_bool(self.load.user_p) {
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
        // A checkpoint due at `target` would land one entry past it.
        core.checkpoint_every(0);
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
            self.feed(core, reader, vec![outcomes_input(msgs)]);
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
