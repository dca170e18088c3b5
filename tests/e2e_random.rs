//! A randomized live run: a seeded mix of Application creates, updates, deletes and hand edits
//! of children, with executors killed and replaced, watch streams closed (and the watch history
//! compacted), NATS killed and restarted, bursts of 5xx/429 answers to writes and the controller
//! killed and restarted; then, once the cluster has converged, `replay::verify` on its log must
//! find no divergence.
//!
//! Parameters (environment variables):
//! - `LOGBOOK_RANDOM_SEED`: the seed of every random choice (default [`DEFAULT_SEED`]); the
//!   sequence of operations is a function of it (and of the number of steps). The timing of the
//!   processes is not, and need not be: verify must hold under any interleaving.
//! - `LOGBOOK_RANDOM_STEPS`: how many operations (default [`DEFAULT_STEPS`], enough for a log
//!   of at least [`MIN_ENTRIES`] entries in well under two minutes on two cores).
//! - `LOGBOOK_RANDOM_KEEP`: a directory to copy the run's files into when it ends, passed or
//!   failed (the log, `log.db`, and each process's output), to look into with `logbook audit`.
//!
//! Run it long: `LOGBOOK_RANDOM_STEPS=5000 cargo test --test e2e_random -- --nocapture`.

use logbook_testkit::{AppTest, e2e};

use e2e::Env;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use logbook::log::LogReader;
use logbook::model::Application;
use logbook::reconcile::{Planner, PlannerConfig};
use logbook::record::{Action, Body, Change, Entry, MarkerKind, ObjKey, OutcomeResult};
use logbook::replay::{self, VerifyOptions, VerifyReport};
use logbook::sandbox::Verb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

/// The seed when `LOGBOOK_RANDOM_SEED` is not set.
const DEFAULT_SEED: u64 = 20_260_226;
/// The number of steps when `LOGBOOK_RANDOM_STEPS` is not set.
const DEFAULT_STEPS: usize = 800;
/// The log of a default run holds at least this many entries (shorter runs: proportionally
/// fewer).
const MIN_ENTRIES: u64 = 2_000;
/// How long the cluster may take to converge once the faults are cleared.
const SETTLE: Duration = Duration::from_secs(90);
/// How long one API write of the test itself may keep failing (injected faults) before the
/// test gives up.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

const NAMESPACES: [&str; 3] = ["shop", "blog", "news"];
const NAMES: [&str; 5] = ["web", "api", "worker", "docs", "admin"];
/// Hosts several Applications may ask for, so that some conflict.
const SHARED_HOSTS: [&str; 2] = ["shared-a.example.com", "shared-b.example.com"];
const PORTS: [i32; 4] = [8080, 8081, 9000, 3000];
/// Values no spec ever asks for, so a hand edit is always drift.
const HAND_REPLICAS: i32 = 7;
const HAND_PORT: i32 = 9999;
/// The annotation each hand edit leaves, naming its step.
const HAND_MARK: &str = "test.logbook.dev/hand-edit";
/// The executors at the start; replacements are named `ex-2`, `ex-3`, ...
const FIRST_EXECUTORS: usize = 2;

/// What the test asks of one Application.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    tag: u32,
    replicas: i32,
    port: i32,
    host: Option<String>,
    env: Vec<(String, String)>,
}

impl Spec {
    fn image(&self, name: &str) -> String {
        format!("registry.example.com/{name}:1.{}", self.tag)
    }

    fn app(&self, ns: &str, name: &str) -> Application {
        let mut b = Application::test(ns, name)
            .image(&self.image(name))
            .replicas(self.replicas)
            .port(self.port);
        if let Some(h) = &self.host {
            b = b.host(h);
        }
        for (k, v) in &self.env {
            b = b.env(k, v);
        }
        b.build()
    }
}

type Slot = (String, String);

fn random_host(rng: &mut ChaCha8Rng, ns: &str, name: &str) -> Option<String> {
    match rng.random_range(0..20) {
        0..=6 => None,
        7..=16 => Some(format!("{name}.{ns}.example.com")),
        _ => Some(SHARED_HOSTS[rng.random_range(0..SHARED_HOSTS.len())].to_string()),
    }
}

/// None to three variables: removing the last one must be rolled out too.
fn random_env(rng: &mut ChaCha8Rng) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if rng.random_bool(0.7) {
        env.push((
            "MODE".to_string(),
            ["a", "b"][rng.random_range(0..2)].to_string(),
        ));
    }
    if rng.random_bool(0.5) {
        env.push(("LEVEL".into(), rng.random_range(1..=3).to_string()));
    }
    if rng.random_bool(0.3) {
        env.push(("REGION".into(), ["eu", "us"][rng.random_range(0..2)].into()));
    }
    env
}

fn random_spec(rng: &mut ChaCha8Rng, ns: &str, name: &str) -> Spec {
    Spec {
        tag: rng.random_range(0..3),
        replicas: rng.random_range(1..=3),
        port: PORTS[rng.random_range(0..PORTS.len())],
        host: random_host(rng, ns, name),
        env: random_env(rng),
    }
}

/// One step of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Create,
    Update,
    Delete,
    HandEdit,
    KillExecutor,
    CloseWatches,
    RestartNats,
    ErrorBurst,
    KillController,
    PurgeActions,
    ForgeAction,
}

impl Op {
    const ALL: [Op; 11] = [
        Op::Create,
        Op::Update,
        Op::Delete,
        Op::HandEdit,
        Op::KillExecutor,
        Op::CloseWatches,
        Op::RestartNats,
        Op::ErrorBurst,
        Op::KillController,
        Op::PurgeActions,
        Op::ForgeAction,
    ];

    /// Relative weight (before what the state allows).
    fn weight(self) -> u32 {
        match self {
            Op::Create => 18,
            Op::Update => 34,
            Op::Delete => 9,
            Op::HandEdit => 14,
            Op::KillExecutor => 5,
            Op::CloseWatches => 5,
            Op::RestartNats => 3,
            Op::ErrorBurst => 4,
            Op::KillController => 3,
            Op::PurgeActions => 3,
            Op::ForgeAction => 3,
        }
    }
}

/// What happened, for the summary and the coverage checks.
#[derive(Debug, Default)]
struct Counts {
    ops: BTreeMap<String, u32>,
    hand_edits_done: u32,
    hand_edits_missed: u32,
    watch_closes: u32,
    compactions: u32,
    test_write_retries: u32,
    purges: u32,
    /// The ids of the forged actions published.
    forged: Vec<String>,
}

/// The run's state: the Applications the test wants, and which faults are on.
struct Run {
    rng: ChaCha8Rng,
    apps: BTreeMap<Slot, Spec>,
    /// Every slot that ever held an Application.
    ever: BTreeSet<Slot>,
    /// The step at which each live Application was created.
    born: BTreeMap<Slot, usize>,
    next_executor: usize,
    replacements: BTreeSet<String>,
    killed: BTreeSet<String>,
    /// Replacement executors to start at a step.
    start_executor_at: Vec<usize>,
    nats_back_at: Option<usize>,
    controller_back_at: Option<usize>,
    burst_until: Option<usize>,
    counts: Counts,
}

/// Copies the run's files (the log and the processes' output) into `LOGBOOK_RANDOM_KEEP`, if
/// set, when dropped: at the end of the run, or while a failure unwinds (before the harness
/// deletes its directory).
struct Keep {
    from: std::path::PathBuf,
}

impl Drop for Keep {
    fn drop(&mut self) {
        let Some(to) = std::env::var_os("LOGBOOK_RANDOM_KEEP").map(std::path::PathBuf::from) else {
            return;
        };
        if std::fs::create_dir_all(&to).is_err() {
            eprintln!("e2e_random: cannot create {}", to.display());
            return;
        }
        for e in std::fs::read_dir(&self.from)
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().is_file() {
                let _ = std::fs::copy(e.path(), to.join(e.file_name()));
            }
        }
        eprintln!("e2e_random: the run's files are in {}", to.display());
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

/// True for answers a user would retry: injected 5xx/429s, a connection hiccup.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs an API write of the test until it is answered without a transient error (as a user
/// retries `kubectl`), within [`WRITE_DEADLINE`].
async fn retrying<T, F, Fut>(what: &str, retries: &mut u32, mut write: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + WRITE_DEADLINE;
    loop {
        match write().await {
            Ok(v) => return v,
            Err(e) if transient(&e) && Instant::now() < deadline => {
                *retries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

impl Run {
    fn count(&mut self, op: Op) {
        *self.counts.ops.entry(format!("{op:?}")).or_default() += 1;
    }

    fn done(&self, op: Op) -> u32 {
        self.counts
            .ops
            .get(&format!("{op:?}"))
            .copied()
            .unwrap_or(0)
    }

    fn start_executor(&mut self, env: &mut Env, replacement: bool) {
        let name = format!("ex-{}", self.next_executor);
        self.next_executor += 1;
        env.executor(&name, 2);
        if replacement {
            self.replacements.insert(name);
        }
    }

    /// Whether `op` can run now.
    fn allowed(&self, env: &Env, op: Op) -> bool {
        let free = NAMESPACES.len() * NAMES.len() - self.apps.len();
        match op {
            Op::Create => free > 0,
            Op::Update | Op::Delete | Op::HandEdit => !self.apps.is_empty(),
            Op::KillExecutor => !env.executor_names().is_empty(),
            Op::CloseWatches => true,
            Op::RestartNats => self.nats_back_at.is_none(),
            Op::ErrorBurst => self.burst_until.is_none(),
            Op::KillController => self.controller_back_at.is_none(),
            Op::PurgeActions => self.nats_back_at.is_none(),
            Op::ForgeAction => self.nats_back_at.is_none() && !self.apps.is_empty(),
        }
    }

    /// Draws the next operation (every fault at least once, once half the steps are done).
    fn draw(&mut self, env: &Env, step: usize, steps: usize) -> Op {
        if step >= steps / 2 {
            let missing = [
                Op::Delete,
                Op::HandEdit,
                Op::KillExecutor,
                Op::CloseWatches,
                Op::RestartNats,
                Op::ErrorBurst,
                Op::KillController,
                Op::PurgeActions,
                Op::ForgeAction,
            ]
            .into_iter()
            .find(|&op| self.done(op) == 0 && self.allowed(env, op));
            if let Some(op) = missing {
                return op;
            }
        }
        let weights: Vec<(Op, u32)> = Op::ALL
            .into_iter()
            .map(|op| {
                let w = if !self.allowed(env, op) {
                    0
                } else if op == Op::Create && self.apps.len() < 4 {
                    op.weight() * 4
                } else {
                    op.weight()
                };
                (op, w)
            })
            .collect();
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        for (op, w) in weights {
            if pick < w {
                return op;
            }
            pick -= w;
        }
        unreachable!("the weights add up to {total}")
    }

    /// Brings back what a fault took away when its time is up.
    fn restore(&mut self, env: &mut Env, step: usize) {
        if self.nats_back_at.is_some_and(|s| s <= step) {
            env.nats.restart().expect("nats-server restarts");
            self.nats_back_at = None;
        }
        if self.controller_back_at.is_some_and(|s| s <= step) {
            env.controller();
            self.controller_back_at = None;
        }
        if self.burst_until.is_some_and(|s| s <= step) {
            env.sandbox.faults().set_error_rate(0.0, &[]);
            self.burst_until = None;
        }
        let due = self
            .start_executor_at
            .iter()
            .filter(|&&s| s <= step)
            .count();
        self.start_executor_at.retain(|&s| s > step);
        for _ in 0..due {
            self.start_executor(env, true);
        }
    }

    fn pick_live(&mut self) -> Slot {
        let i = self.rng.random_range(0..self.apps.len());
        self.apps
            .keys()
            .nth(i)
            .cloned()
            .expect("a live Application")
    }

    /// A live Application likely to have children to edit (judged from the test's own model,
    /// so the choice stays a function of the seed): created a few steps ago, its host shared
    /// with no other; any live one when there is none such.
    fn pick_edit_target(&mut self, step: usize) -> Slot {
        let candidates: Vec<Slot> = self
            .apps
            .iter()
            .filter(|(slot, spec)| {
                self.born.get(*slot).is_some_and(|b| b + 3 <= step)
                    && spec.host.as_ref().is_none_or(|h| {
                        self.apps
                            .iter()
                            .filter(|(_, o)| o.host.as_ref() == Some(h))
                            .count()
                            == 1
                    })
            })
            .map(|(slot, _)| slot.clone())
            .collect();
        if candidates.is_empty() {
            return self.pick_live();
        }
        candidates[self.rng.random_range(0..candidates.len())].clone()
    }

    async fn apply(&mut self, env: &Env, slot: &Slot) {
        let app = self.apps[slot].app(&slot.0, &slot.1);
        let what = format!("apply {}/{}", slot.0, slot.1);
        retrying(&what, &mut self.counts.test_write_retries, || {
            env.try_apply(&app)
        })
        .await;
    }

    async fn step(&mut self, env: &mut Env, step: usize, op: Op) {
        self.count(op);
        match op {
            Op::Create => {
                let free: Vec<Slot> = NAMESPACES
                    .iter()
                    .flat_map(|ns| NAMES.iter().map(|n| (ns.to_string(), n.to_string())))
                    .filter(|s| !self.apps.contains_key(s))
                    .collect();
                let slot = free[self.rng.random_range(0..free.len())].clone();
                let spec = random_spec(&mut self.rng, &slot.0, &slot.1);
                self.apps.insert(slot.clone(), spec);
                self.ever.insert(slot.clone());
                self.born.insert(slot.clone(), step);
                self.apply(env, &slot).await;
            }
            Op::Update => {
                let slot = self.pick_live();
                let mut spec = self.apps[&slot].clone();
                let changes = self.rng.random_range(1..=2);
                for _ in 0..changes {
                    match self.rng.random_range(0..5) {
                        0 => spec.tag += 1,
                        1 => spec.replicas = self.rng.random_range(1..=3),
                        2 => spec.port = PORTS[self.rng.random_range(0..PORTS.len())],
                        3 => spec.env = random_env(&mut self.rng),
                        _ => spec.host = random_host(&mut self.rng, &slot.0, &slot.1),
                    }
                }
                self.apps.insert(slot.clone(), spec);
                self.apply(env, &slot).await;
            }
            Op::Delete => {
                let slot = self.pick_live();
                self.apps.remove(&slot);
                self.born.remove(&slot);
                let what = format!("delete {}/{}", slot.0, slot.1);
                retrying(&what, &mut self.counts.test_write_retries, || async {
                    match env.try_delete_app(&slot.0, &slot.1).await {
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                        other => other,
                    }
                })
                .await;
            }
            Op::HandEdit => {
                let slot = self.pick_edit_target(step);
                let (ns, name) = (&slot.0, &slot.1);
                let mark = format!("step-{step}");
                let meta = serde_json::json!({"annotations": {HAND_MARK: mark}});
                let (kind, patch) = match self.rng.random_range(0..3) {
                    0 => (
                        "Deployment",
                        serde_json::json!({"metadata": meta, "spec": {"replicas": HAND_REPLICAS}}),
                    ),
                    1 => (
                        "Deployment",
                        serde_json::json!({"metadata": meta, "spec": {"template": {"spec": {
                            "containers": [{"name": "app",
                                            "image": format!("handedit.example.com/{name}:{mark}")}]
                        }}}}),
                    ),
                    _ => (
                        "Service",
                        serde_json::json!({"metadata": meta, "spec": {"ports": [
                            {"name": "http", "port": HAND_PORT}
                        ]}}),
                    ),
                };
                let what = format!("hand edit of {kind}/{ns}/{name}");
                let edited = retrying(&what, &mut self.counts.test_write_retries, || {
                    env.hand_edit(kind, ns, name, patch.clone())
                })
                .await;
                if edited {
                    self.counts.hand_edits_done += 1;
                } else {
                    self.counts.hand_edits_missed += 1;
                }
            }
            Op::KillExecutor => {
                let names = env.executor_names();
                let victim = names[self.rng.random_range(0..names.len())].clone();
                env.kill_executor(&victim);
                self.killed.insert(victim);
                if self.rng.random_bool(0.7) || env.executor_names().is_empty() {
                    self.start_executor(env, true);
                } else {
                    let at = step + self.rng.random_range(1..=3);
                    self.start_executor_at.push(at);
                }
            }
            Op::CloseWatches => {
                if self.rng.random_bool(0.7) {
                    env.sandbox.faults().close_watches();
                    self.counts.watch_closes += 1;
                } else {
                    env.sandbox.faults().compact();
                    self.counts.compactions += 1;
                }
            }
            Op::RestartNats => {
                env.nats.kill();
                let at = step + self.rng.random_range(0..=4);
                self.nats_back_at = Some(at);
                self.restore(env, step);
            }
            Op::ErrorBurst => {
                let faults = env.sandbox.faults();
                faults.set_error_verbs(&[Verb::Create, Verb::Update, Verb::Patch, Verb::Delete]);
                let rate = [0.2, 0.35, 0.5][self.rng.random_range(0..3)];
                faults.set_error_rate(rate, &[500, 503, 429]);
                self.burst_until = Some(step + self.rng.random_range(3..=12));
            }
            Op::KillController => {
                env.kill_controller();
                let at = step + self.rng.random_range(0..=3);
                self.controller_back_at = Some(at);
                self.restore(env, step);
            }
            Op::PurgeActions => {
                // What JetStream may do: every action not yet taken is gone.
                let purged = async {
                    let nc = logbook::bus::connect(
                        &logbook::bus::NatsArgs::plain(&env.nats.url()),
                        "random-purge",
                    )
                    .await
                    .ok()?;
                    let js = async_nats::jetstream::new(nc);
                    let stream = js.get_stream(logbook::bus::ACTIONS_STREAM).await.ok()?;
                    stream.purge().await.ok()
                };
                if purged.await.is_some() {
                    self.counts.purges += 1;
                }
            }
            Op::ForgeAction => {
                // An unsigned delete of a live Application's Deployment, and one signed with
                // an executor's key: both must be refused and change nothing.
                let slot = self.pick_live();
                let action = Action::new(
                    logbook::record::Verb::Delete,
                    ObjKey::new("Deployment", &slot.0, &slot.1),
                    "apps/v1",
                    Some(format!("{}/{}", slot.0, slot.1)),
                    None,
                    None,
                    format!("forged at step {step}"),
                    Default::default(),
                );
                let message = logbook::bus::wire::ActionMessage {
                    entry_id: uuid::Uuid::from_u128(step as u128),
                    seq: 1,
                    plan_seq: u64::MAX / 2,
                    at: chrono::Utc::now(),
                    action: action.clone(),
                };
                let payload = serde_json::to_vec(&message).expect("an action encodes");
                let key = logbook::bus::sign::SigningKey::load(
                    &env.dir.path().join("keys/executor.key"),
                    "executor",
                )
                .expect("the executors' key");
                let published = async {
                    let nc = logbook::bus::connect(
                        &logbook::bus::NatsArgs::plain(&env.nats.url()),
                        "random-forger",
                    )
                    .await
                    .ok()?;
                    let js = async_nats::jetstream::new(nc);
                    let subject =
                        logbook::bus::action_subject(&action.target, action.app.as_deref());
                    for (i, signature) in [None, Some(key.sign(&payload))].into_iter().enumerate() {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(
                            logbook::bus::wire::MSG_ID,
                            format!("forged-{step}-{i}").as_str(),
                        );
                        if let Some(s) = signature {
                            headers.insert(logbook::bus::sign::SIGNATURE_HEADER, s.as_str());
                        }
                        js.publish_with_headers(subject.clone(), headers, payload.clone().into())
                            .await
                            .ok()?
                            .await
                            .ok()?;
                    }
                    Some(())
                };
                if published.await.is_some() {
                    self.counts.forged.push(action.id);
                }
            }
        }
    }
}

/// What still differs between the cluster and the Applications the test wants, or `None`
/// once it has converged: every wanted Application (and no other) exists; the ones whose host
/// an older one holds are Invalid (HostConflict), the others Ready for their generation with
/// the Deployment and Service their spec asks for; every namespace's shared Ingress has exactly
/// the holders' hosts; the children of deleted Applications are gone.
async fn mismatch(env: &Env, want: &BTreeMap<Slot, Spec>, ever: &BTreeSet<Slot>) -> Option<String> {
    let all: Api<Application> = Api::all(env.client.clone());
    let listed = match all.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => return Some(format!("cannot list Applications: {e}")),
    };
    let live: BTreeMap<Slot, &Application> = listed
        .iter()
        .map(|a| {
            (
                (
                    a.metadata.namespace.clone().unwrap_or_default(),
                    a.metadata.name.clone().unwrap_or_default(),
                ),
                a,
            )
        })
        .collect();
    let have: BTreeSet<&Slot> = live.keys().collect();
    let wanted: BTreeSet<&Slot> = want.keys().collect();
    if have != wanted {
        return Some(format!("Applications {have:?}, want {wanted:?}"));
    }
    // Who holds each host: the oldest claimant, ties by namespace and name.
    let mut holders: BTreeMap<String, (String, Slot)> = BTreeMap::new();
    for (slot, a) in &live {
        if let Some(h) = &a.spec.host {
            let created = a
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let claim = (created, slot.clone());
            let e = holders.entry(h.clone()).or_insert_with(|| claim.clone());
            if claim < *e {
                *e = claim;
            }
        }
    }
    let mut hosts_by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (slot, spec) in want {
        let (ns, name) = slot;
        let app = live[slot];
        if app.spec.image != spec.image(name)
            || app.spec.replicas != spec.replicas
            || app.spec.port != spec.port
            || app.spec.host != spec.host
        {
            return Some(format!("{ns}/{name}: the API holds another spec"));
        }
        let Some(status) = app.status.as_ref() else {
            return Some(format!("{ns}/{name}: no status yet"));
        };
        if status.observed_generation != app.metadata.generation {
            return Some(format!(
                "{ns}/{name}: status is of generation {:?}, the spec's is {:?}",
                status.observed_generation, app.metadata.generation
            ));
        }
        let cond = |t: &str| status.conditions.iter().find(|c| c.type_ == t);
        let conflicted = spec
            .host
            .as_ref()
            .is_some_and(|h| holders.get(h).is_some_and(|(_, s)| s != slot));
        if conflicted {
            match cond("Invalid") {
                Some(c) if c.status == "True" && c.reason == "HostConflict" => continue,
                other => {
                    return Some(format!(
                        "{ns}/{name}: host {:?} is held by another Application, but Invalid \
                         is {other:?}",
                        spec.host
                    ));
                }
            }
        }
        if let Some(h) = &spec.host {
            hosts_by_ns.entry(ns.clone()).or_default().push(h.clone());
        }
        if cond("Ready").is_none_or(|c| c.status != "True") {
            return Some(format!("{ns}/{name}: not Ready: {:?}", status.conditions));
        }
        let Ok(Some(d)) = env.deployments(ns).get_opt(name).await else {
            return Some(format!("{ns}/{name}: no Deployment"));
        };
        let dspec = d.spec.clone();
        let container = dspec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first().cloned())
            .unwrap_or_default();
        let env_vars: Vec<(String, String)> = container
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        let container_port = container
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .map(|p| p.container_port);
        if container.image.as_deref() != Some(spec.image(name).as_str())
            || dspec.replicas != Some(spec.replicas)
            || container_port != Some(spec.port)
            || env_vars != spec.env
        {
            return Some(format!(
                "{ns}/{name}: Deployment has image {:?}, replicas {:?}, port {container_port:?}, \
                 env {env_vars:?}; want {spec:?}",
                container.image, dspec.replicas
            ));
        }
        let Ok(Some(svc)) = env.services(ns).get_opt(name).await else {
            return Some(format!("{ns}/{name}: no Service"));
        };
        let port = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.first().map(|p| p.port));
        if port != Some(spec.port) {
            return Some(format!(
                "{ns}/{name}: Service port {port:?}, want {}",
                spec.port
            ));
        }
    }
    for slot in ever.iter().filter(|s| !want.contains_key(*s)) {
        let (ns, name) = slot;
        let dep: Api<Deployment> = env.deployments(ns);
        if !matches!(dep.get_opt(name).await, Ok(None)) {
            return Some(format!(
                "{ns}/{name} was deleted, its Deployment is still there"
            ));
        }
        if !matches!(env.services(ns).get_opt(name).await, Ok(None)) {
            return Some(format!(
                "{ns}/{name} was deleted, its Service is still there"
            ));
        }
    }
    for ns in NAMESPACES {
        let mut want_hosts = hosts_by_ns.get(ns).cloned().unwrap_or_default();
        want_hosts.sort();
        let hosts = env.ingress_hosts(ns).await.unwrap_or_default();
        if hosts != want_hosts {
            return Some(format!(
                "{ns}: the shared Ingress has {hosts:?}, want {want_hosts:?}"
            ));
        }
    }
    None
}

/// Waits, within `limit`, until [`mismatch`] finds nothing; panics with the last mismatch and
/// the processes' logs otherwise.
async fn converge(env: &Env, want: &BTreeMap<Slot, Spec>, ever: &BTreeSet<Slot>, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let Some(why) = mismatch(env, want, ever).await else {
            return;
        };
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "the cluster did not converge within {limit:?}: {why}\n{}\n--- the log's last \
                 entries\n{}",
                env.tails(),
                env.trail(60)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Evidence in the log that the operations and faults happened.
#[derive(Debug, Default)]
struct Evidence {
    /// Hand-edit events answered by a later `drift at ...` action on the same object.
    drift_corrected: usize,
    /// Hand-edit events recorded.
    drift_events: usize,
    deletes: usize,
    synthesized_deletes: usize,
    /// Outcomes from executors started to replace a killed one.
    replacement_outcomes: usize,
    /// Outcomes from executors that were later killed.
    killed_executor_outcomes: usize,
    /// Outcomes retried (retry=true), failed or abandoned.
    retried_or_failed: usize,
    /// Of those, the ones an injected error caused (the sandbox answers `injected fault`; its
    /// 429s and 503s are retried inside the executor's API client and do not show).
    fault_outcomes: usize,
    abandoned: usize,
    /// Outcomes by result.
    outcomes: BTreeMap<String, usize>,
    /// Outcomes by executor.
    by_executor: BTreeMap<String, usize>,
}

fn evidence(
    entries: &[Entry],
    replacements: &BTreeSet<String>,
    killed: &BTreeSet<String>,
) -> Evidence {
    let mut ev = Evidence::default();
    // The first event carrying each hand edit's mark: (object, mark) → seq.
    let mut edits: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in entries {
        match &e.body {
            Body::Event(o) => {
                if o.change == Change::Delete {
                    ev.deletes += 1;
                    if o.synthesized {
                        ev.synthesized_deletes += 1;
                    }
                }
                let Some(obj) = o.object.as_ref().and_then(|j| j.parse().ok()) else {
                    continue;
                };
                if let Some(mark) = obj
                    .pointer(&format!(
                        "/metadata/annotations/{}",
                        HAND_MARK.replace('/', "~1")
                    ))
                    .and_then(|m| m.as_str())
                {
                    edits
                        .entry((o.key.to_string(), mark.to_string()))
                        .or_insert(e.seq);
                }
            }
            Body::Outcome(o) => {
                *ev.outcomes
                    .entry(o.result.as_str().to_string())
                    .or_default() += 1;
                *ev.by_executor.entry(o.executor.clone()).or_default() += 1;
                if replacements.contains(&o.executor) {
                    ev.replacement_outcomes += 1;
                }
                if killed.contains(&o.executor) {
                    ev.killed_executor_outcomes += 1;
                }
                let gave_up = matches!(o.result, OutcomeResult::Failed | OutcomeResult::Abandoned);
                if o.retry || gave_up {
                    ev.retried_or_failed += 1;
                    if o.message.contains("injected fault") {
                        ev.fault_outcomes += 1;
                    }
                }
                if o.result == OutcomeResult::Abandoned {
                    ev.abandoned += 1;
                }
            }
            _ => {}
        }
    }
    ev.drift_events = edits.len();
    ev.drift_corrected = edits
        .iter()
        .filter(|((key, _), seq)| {
            entries.iter().any(|e| match &e.body {
                Body::Action(a) => {
                    e.seq > **seq
                        && a.action.target.to_string() == *key
                        && a.action.reason.starts_with("drift at")
                }
                _ => false,
            })
        })
        .count();
    ev
}

fn describe(report: &VerifyReport, seed: u64, steps: usize) -> String {
    let mut out = format!(
        "seed {seed}, {steps} steps (rerun: LOGBOOK_RANDOM_SEED={seed} \
         LOGBOOK_RANDOM_STEPS={steps} cargo test --test e2e_random -- --nocapture)\n"
    );
    if let Some(d) = &report.divergence {
        let _ = writeln!(
            out,
            "first divergence at plan {} (read up to {}, at {}, scope {:?}):\n  why: {}\n--- diff \
             (recorded -, recomputed +)\n{}\n--- the events it read",
            d.plan_seq, d.upto_seq, d.at, d.scope, d.why, d.diff
        );
        for (seq, line) in &d.last_events {
            let _ = writeln!(out, "  {seq:>6} {line}");
        }
    }
    let _ = write!(out, "--- the whole report\n{report:#?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_live_run_replays_without_divergence() {
    let seed = env_u64("LOGBOOK_RANDOM_SEED").unwrap_or(DEFAULT_SEED);
    let steps = env_u64("LOGBOOK_RANDOM_STEPS").map_or(DEFAULT_STEPS, |s| s as usize);
    let min_entries = MIN_ENTRIES * (steps.min(DEFAULT_STEPS) as u64) / DEFAULT_STEPS as u64;
    println!(
        "e2e_random: seed {seed}, {steps} steps; rerun with LOGBOOK_RANDOM_SEED={seed} \
         LOGBOOK_RANDOM_STEPS={steps} cargo test --test e2e_random -- --nocapture"
    );
    // The whole run's bound: generous for the steps asked, so a long run is not cut short.
    let limit = Duration::from_secs(120) + Duration::from_millis(150) * steps as u32 + SETTLE;
    let body = run(seed, steps, min_entries);
    if tokio::time::timeout(limit, body).await.is_err() {
        panic!("seed {seed}, {steps} steps: the run did not finish within {limit:?}");
    }
}

async fn run(seed: u64, steps: usize, min_entries: u64) {
    let started = Instant::now();
    let mut env = Env::start(&NAMESPACES).await;
    // Actions lost with a purged stream are published again after this long without answer.
    env.env_vars
        .push(("LOGBOOK_ANSWER_DEADLINE".into(), "2s".into()));
    let _keep = Keep {
        from: env.dir.path().to_path_buf(),
    };
    env.sandbox.faults().reseed(seed);
    let mut run = Run {
        rng: ChaCha8Rng::seed_from_u64(seed),
        apps: BTreeMap::new(),
        ever: BTreeSet::new(),
        born: BTreeMap::new(),
        next_executor: 0,
        replacements: BTreeSet::new(),
        killed: BTreeSet::new(),
        start_executor_at: Vec::new(),
        nats_back_at: None,
        controller_back_at: None,
        burst_until: None,
        counts: Counts::default(),
    };
    env.controller();
    for _ in 0..FIRST_EXECUTORS {
        run.start_executor(&mut env, false);
    }

    for step in 0..steps {
        run.restore(&mut env, step);
        let op = run.draw(&env, step, steps);
        run.step(&mut env, step, op).await;
        let pause = run.rng.random_range(1..=12);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let chaos_took = started.elapsed();

    // Clear every fault, make sure everything runs, and let the cluster converge.
    env.sandbox.faults().reset();
    run.burst_until = None;
    if run.nats_back_at.take().is_some() {
        env.nats.restart().expect("nats-server restarts");
    }
    if !env.controller_running() {
        env.controller();
        run.controller_back_at = None;
    }
    run.start_executor_at.clear();
    if env.executor_names().is_empty() {
        run.start_executor(&mut env, true);
    }
    let settle_started = Instant::now();
    converge(&env, &run.apps, &run.ever, SETTLE).await;
    let settle_took = settle_started.elapsed();
    let injected = env.sandbox.faults().injected().len();
    assert!(
        env.stop_controller().success(),
        "the controller exits 0 on SIGTERM"
    );

    let reader = LogReader::open(&env.log_path).expect("the log opens");
    let report = replay::verify(&reader, &VerifyOptions::default()).expect("verify runs");
    let entries = env.entries();
    let ev = evidence(&entries, &run.replacements, &run.killed);
    println!(
        "e2e_random: seed {seed}, {steps} steps: {} entries ({} events, {} plans, {} actions, \
         {} outcomes, {} markers); chaos {chaos_took:.1?}, converged in {settle_took:.1?}, total \
         {:.1?}\n  operations {:?}\n  hand edits {} (missed, child not there: {}), watch closes \
         {}, compactions {}, test writes retried {}, sandbox errors injected {injected}\n  \
         executors killed {:?}, replacements {:?}\n  evidence {ev:#?}",
        report.entries,
        report.events,
        report.plans,
        report.actions,
        report.outcomes,
        report.markers,
        started.elapsed(),
        run.counts.ops,
        run.counts.hand_edits_done,
        run.counts.hand_edits_missed,
        run.counts.watch_closes,
        run.counts.compactions,
        run.counts.test_write_retries,
        run.killed,
        run.replacements,
    );

    assert!(report.is_ok(), "{}", describe(&report, seed, steps));
    assert_eq!(
        report.plans_identical,
        report.plans,
        "{}",
        describe(&report, seed, steps)
    );
    assert!(report.plans > 0, "{}", describe(&report, seed, steps));
    assert!(
        report.entries >= min_entries,
        "seed {seed}, {steps} steps: {} entries, want at least {min_entries}",
        report.entries
    );

    // The faults happened, and the log shows them.
    assert!(
        ev.drift_corrected >= 1,
        "seed {seed}: no hand edit was recorded and answered by a drift action: {ev:#?}"
    );
    assert!(ev.deletes >= 1, "seed {seed}: no delete event: {ev:#?}");
    assert!(
        ev.replacement_outcomes >= 1,
        "seed {seed}: no outcome from an executor that replaced a killed one: {ev:#?}"
    );
    assert!(
        ev.killed_executor_outcomes >= 1,
        "seed {seed}: no outcome from an executor that was later killed: {ev:#?}"
    );
    assert!(
        injected > 0 && ev.fault_outcomes >= 1,
        "seed {seed}: {injected} errors injected, {} outcomes retried or failed because of \
         one: {ev:#?}",
        ev.fault_outcomes
    );
    for op in [
        Op::KillExecutor,
        Op::CloseWatches,
        Op::RestartNats,
        Op::ErrorBurst,
        Op::KillController,
        Op::PurgeActions,
        Op::ForgeAction,
    ] {
        assert!(run.done(op) >= 1, "seed {seed}: {op:?} never ran");
    }
    // Forged actions reached no API call, and their refusals are recorded as such.
    let audited = env.sandbox.faults().audited();
    for id in &run.counts.forged {
        assert!(
            !audited.iter().any(|a| &a.audit_id == id),
            "seed {seed}: forged action {id} reached the API server"
        );
        assert!(
            !entries
                .iter()
                .any(|e| matches!(&e.body, Body::Outcome(o) if &o.action_id == id)),
            "seed {seed}: an outcome of forged action {id} was recorded"
        );
    }
    let refused = entries
        .iter()
        .filter(|e| matches!(&e.body, Body::Marker(m) if m.marker == MarkerKind::Refused))
        .count();
    assert!(
        run.counts.forged.is_empty() || refused >= 1,
        "seed {seed}: {} forged actions, no refusal recorded",
        run.counts.forged.len()
    );

    // The check can fail: another planner (another container name) diverges.
    let other = |_c: &PlannerConfig| {
        Planner::new(PlannerConfig {
            container_name: "other".into(),
            ..Default::default()
        })
    };
    let wrong = replay::verify(
        &reader,
        &VerifyOptions {
            planner: Some(&other),
            ..Default::default()
        },
    )
    .expect("verify runs");
    let d = wrong.divergence.as_ref().unwrap_or_else(|| {
        panic!(
            "seed {seed}: a planner with another container name verified without divergence: \
             {wrong:#?}"
        )
    });
    assert!(!d.why.is_empty() && !d.diff.is_empty(), "{d:#?}");
    println!(
        "e2e_random: another planner diverges at plan {}: {}",
        d.plan_seq, d.why
    );
}
