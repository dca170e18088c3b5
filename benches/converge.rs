//! Convergence bench: how long the live loop takes to bring a cluster from nothing to the
//! desired state, compared with a plain `kube::runtime::Controller` doing the same job.
//!
//! Every scenario gets a fresh sandbox (the in-process API emulator, with `CONVERGE_WRITE_LATENCY_MS`
//! of latency, default 5 ms, on every write: create, update, patch, delete) and, for logbook,
//! a fresh nats-server and log. `CONVERGE_APPS` Applications (default 1,000) spread over
//! `CONVERGE_NAMESPACES` namespaces (default 10), each with a host, are created before the
//! controller starts (and before the write latency is switched on); the clock runs from the
//! controller's start until every Deployment and Service covers its desired spec and every
//! namespace's shared Ingress has all its rules (a second figure: until every Application's
//! status says `Ready=True` for its generation). A watch on the API (not polling) sees it.
//!
//! - (c) baseline: a `kube::runtime::Controller<Application>` owning Deployments and Services,
//!   concurrency 16, that server-side applies the Deployment, the Service and its namespace's
//!   Ingress (rules from every Application in its reflector store) and writes the status. No
//!   log, no NATS.
//! - (a) logbook: `controller::run` and one `executor::run` with 16 actions in flight.
//! - (b) logbook with 4 actions in flight per executor: one executor (b1), then four (b4).
//!
//! Each scenario runs `CONVERGE_RUNS` times (default 3), interleaved; the median is reported
//! with the ratios a/c (target ≤ 1.5) and b1/b4 (target ≥ 3). Then, on an idle converged
//! system (logbook, one executor), one Application's image is changed `CONVERGE_SAMPLES` times
//! (default 200), one at a time, and the time from the patch's answer to the Deployment's new
//! image arriving on a watch is reported as p50/p99 (target p99 < 25 ms), with no write
//! latency and with the configured one.
//!
//! `cargo bench --bench converge` runs it; without `--bench` (as `cargo test --benches` runs
//! it) it is a quick smoke run with 20 Applications. `CONVERGE_SCENARIOS` (comma-separated
//! `c,a,b1,b4,latency`) picks what runs. Results are in `benches/README.md`.

use logbook_testkit::AppTest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressRule};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use logbook::bus::server::NatsServer;
use logbook::bus::{NatsArgs, Topology};
use logbook::controller::ControllerConfig;
use logbook::executor::ExecutorConfig;
use logbook::model::{
    Application, ApplicationStatus, Condition, INSTANCE_LABEL, SHARED_INGRESS, condition,
    managed_selector,
};
use logbook::reconcile::{ApplicationReconciler, PlannerConfig, covers};
use logbook::sandbox::{Sandbox, SandboxConfig, Verb};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Clone, Debug)]
struct Settings {
    apps: usize,
    namespaces: usize,
    runs: usize,
    write_latency: Duration,
    ready_delay: Duration,
    debounce: Duration,
    samples: usize,
    timeout: Duration,
    scenarios: Vec<String>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env(full: bool) -> Settings {
        let (apps, runs, samples) = if full { (1000, 3, 200) } else { (20, 1, 5) };
        let scenarios = std::env::var("CONVERGE_SCENARIOS")
            .unwrap_or_else(|_| "c,a,b1,b4,latency".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Settings {
            apps: env_u64("CONVERGE_APPS", apps) as usize,
            namespaces: env_u64("CONVERGE_NAMESPACES", 10).max(1) as usize,
            runs: env_u64("CONVERGE_RUNS", runs).max(1) as usize,
            write_latency: Duration::from_millis(env_u64("CONVERGE_WRITE_LATENCY_MS", 5)),
            ready_delay: Duration::from_millis(env_u64("CONVERGE_READY_DELAY_MS", 0)),
            debounce: Duration::from_millis(env_u64("CONVERGE_DEBOUNCE_MS", 2)),
            samples: env_u64("CONVERGE_SAMPLES", samples) as usize,
            timeout: Duration::from_secs(env_u64("CONVERGE_TIMEOUT_S", 180)),
            scenarios,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}

// ---------------------------------------------------------------------------------------------
// The world: a sandbox with the CRD and the Applications

/// A fresh sandbox holding the Applications (created, so they carry their uids).
struct Env {
    sandbox: Sandbox,
    apps: Vec<Application>,
    namespaces: Vec<String>,
}

fn namespace_name(i: usize) -> String {
    format!("bench-{i}")
}

fn crd() -> Result<CustomResourceDefinition> {
    let yaml = logbook::model::crd_yaml();
    let body = yaml
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(serde_saphyr::from_str(&body)?)
}

async fn setup(s: &Settings) -> Result<Env> {
    let sandbox = Sandbox::start(SandboxConfig {
        ready_delay: s.ready_delay,
        // Nothing is deleted here; the emulator's collector sweeps every object after each new
        // owned object settles, which would charge its O(objects) sweeps to whichever scenario
        // is running.
        gc_delay: Duration::from_secs(2),
        history: 200_000,
        watch_buffer: 200_000,
        ..SandboxConfig::default()
    })
    .await?;
    let client = sandbox.client();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd()?)
        .await?;
    let probe: Api<Application> = Api::default_namespaced(client.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe.list(&Default::default()).await.is_err() {
        if Instant::now() > deadline {
            return Err("Applications are not served".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let namespaces: Vec<String> = (0..s.namespaces).map(namespace_name).collect();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in &namespaces {
        let obj = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        ns_api.create(&PostParams::default(), &obj).await?;
    }
    let mut apps: Vec<Application> = futures::stream::iter(0..s.apps)
        .map(|i| {
            let client = client.clone();
            let ns = namespace_name(i % s.namespaces);
            async move {
                let name = format!("app-{i:05}");
                let mut app = Application::test(&ns, &name)
                    .host(&format!("{name}.{ns}.example.test"))
                    .build();
                app.metadata = ObjectMeta {
                    name: Some(name),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                };
                Api::<Application>::namespaced(client, &ns)
                    .create(&PostParams::default(), &app)
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    apps.sort_by_key(|a| a.name_any());
    set_write_latency(&sandbox, s.write_latency);
    Ok(Env {
        sandbox,
        apps,
        namespaces,
    })
}

/// Latency on every write verb (the sandbox's faults are per verb); reads and watches get none.
fn set_write_latency(sandbox: &Sandbox, latency: Duration) {
    let faults = sandbox.faults();
    for verb in [
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
    ] {
        faults.set_latency(verb, latency);
    }
}

// ---------------------------------------------------------------------------------------------
// What converged means

/// The rules of a namespace's shared Ingress as the planner builds them: one per Application
/// with a host, sorted by host.
fn desired_rules<'a>(
    config: &PlannerConfig,
    ns: &str,
    apps: impl IntoIterator<Item = &'a Application>,
) -> Vec<IngressRule> {
    let rec = ApplicationReconciler::new(config.clone());
    let mut rules: Vec<IngressRule> = apps
        .into_iter()
        .filter(|a| a.namespace().as_deref() == Some(ns) && a.meta().deletion_timestamp.is_none())
        .filter_map(|a| {
            let host = a.spec.host.clone()?;
            Some(rec.ingress_rule(&a.name_any(), &host, a))
        })
        .collect();
    rules.sort_by(|a, b| a.host.cmp(&b.host));
    rules
}

/// The shared Ingress of a namespace with `rules`, as the planner builds it (none without rules).
fn ingress_object(config: &PlannerConfig, ns: &str, rules: Vec<IngressRule>) -> Option<Value> {
    ApplicationReconciler::new(config.clone()).desired_ingress(ns, rules)
}

/// Every child the Applications ask for, keyed `namespace/name`.
struct Expected {
    deployments: HashMap<String, Value>,
    services: HashMap<String, Value>,
    ingresses: HashMap<String, Value>,
    apps: usize,
}

impl Expected {
    fn of(env: &Env) -> Expected {
        let config = PlannerConfig::default();
        let rec = ApplicationReconciler::new(config.clone());
        let mut deployments = HashMap::new();
        let mut services = HashMap::new();
        for app in &env.apps {
            let (ns, name) = (app.namespace().unwrap_or_default(), app.name_any());
            let key = format!("{ns}/{name}");
            deployments.insert(key.clone(), rec.desired_deployment(&ns, &name, app));
            services.insert(key, rec.desired_service(&ns, &name, app));
        }
        let ingresses = env
            .namespaces
            .iter()
            .filter_map(|ns| {
                let ing = ingress_object(&config, ns, desired_rules(&config, ns, &env.apps))?;
                Some((format!("{ns}/{SHARED_INGRESS}"), ing))
            })
            .collect();
        Expected {
            deployments,
            services,
            ingresses,
            apps: env.apps.len(),
        }
    }
}

/// When the children first all matched, and when every status first said Ready.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    children: Option<Instant>,
    ready: Option<Instant>,
}

enum Seen {
    Deployment(Box<watcher::Event<Deployment>>),
    Service(watcher::Event<Service>),
    Ingress(watcher::Event<Ingress>),
    App(watcher::Event<Application>),
}

fn key_of<K: Resource>(o: &K) -> String {
    format!(
        "{}/{}",
        o.meta().namespace.as_deref().unwrap_or_default(),
        o.meta().name.as_deref().unwrap_or_default()
    )
}

/// Folds one watch event into the set of keys whose object satisfies `ok`.
fn track<K: Resource>(done: &mut HashSet<String>, ev: watcher::Event<K>, ok: impl Fn(&K) -> bool) {
    match ev {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
            let key = key_of(&o);
            if ok(&o) {
                done.insert(key);
            } else {
                done.remove(&key);
            }
        }
        watcher::Event::Delete(o) => {
            done.remove(&key_of(&o));
        }
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

fn covered<K: serde::Serialize + Resource>(want: &HashMap<String, Value>, o: &K) -> bool {
    let Some(desired) = want.get(&key_of(o)) else {
        return false;
    };
    serde_json::to_value(o).is_ok_and(|actual| covers(&actual, desired).is_ok())
}

fn is_ready(app: &Application) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some()
            && s.observed_generation == app.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == condition::READY && c.status == "True")
    })
}

/// Watches the API and records when convergence is first reached. Start it before the
/// controller; it reports through the returned receiver.
fn spawn_checker(
    client: Client,
    expected: Arc<Expected>,
) -> (JoinHandle<()>, watch::Receiver<Progress>) {
    let (tx, rx) = watch::channel(Progress::default());
    let managed = watcher::Config::default().labels(&managed_selector());
    let deployments = watcher(Api::<Deployment>::all(client.clone()), managed.clone())
        .default_backoff()
        .map_ok(|e| Seen::Deployment(Box::new(e)))
        .boxed();
    let services = watcher(Api::<Service>::all(client.clone()), managed.clone())
        .default_backoff()
        .map_ok(Seen::Service)
        .boxed();
    let ingresses = watcher(Api::<Ingress>::all(client.clone()), managed)
        .default_backoff()
        .map_ok(Seen::Ingress)
        .boxed();
    let apps = watcher(Api::<Application>::all(client), watcher::Config::default())
        .default_backoff()
        .map_ok(Seen::App)
        .boxed();
    let task = tokio::spawn(async move {
        let mut all = futures::stream::select_all([deployments, services, ingresses, apps]);
        let (mut deps, mut svcs, mut ings, mut ready) = (
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
        );
        while let Some(ev) = all.next().await {
            let Ok(ev) = ev else { continue };
            match ev {
                Seen::Deployment(e) => track(&mut deps, *e, |o| covered(&expected.deployments, o)),
                Seen::Service(e) => track(&mut svcs, e, |o| covered(&expected.services, o)),
                Seen::Ingress(e) => track(&mut ings, e, |o| covered(&expected.ingresses, o)),
                Seen::App(e) => track(&mut ready, e, is_ready),
            }
            let now = Instant::now();
            let children = deps.len() == expected.deployments.len()
                && svcs.len() == expected.services.len()
                && ings.len() == expected.ingresses.len();
            let all_ready = ready.len() == expected.apps;
            tx.send_if_modified(|p| {
                let mut changed = false;
                if children && p.children.is_none() {
                    p.children = Some(now);
                    changed = true;
                }
                if all_ready && p.ready.is_none() {
                    p.ready = Some(now);
                    changed = true;
                }
                changed
            });
        }
    });
    (task, rx)
}

/// Times of one scenario run, from the controller's start.
#[derive(Clone, Copy, Debug)]
struct Times {
    children: Duration,
    ready: Option<Duration>,
}

/// Waits for convergence (children, then Ready), failing early if `alive` says the system
/// under test stopped.
async fn wait_converged(
    rx: &mut watch::Receiver<Progress>,
    start: Instant,
    timeout: Duration,
    mut alive: impl FnMut() -> Option<String>,
) -> Result<Times> {
    let deadline = start + timeout;
    let children = loop {
        if let Some(t) = rx.borrow().children {
            break t;
        }
        if let Some(why) = alive() {
            return Err(why.into());
        }
        if Instant::now() > deadline {
            return Err(format!("did not converge within {timeout:?}").into());
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
    };
    // Ready needs the Deployments' (simulated) readiness, one more event and a status write.
    let ready_deadline = Instant::now() + Duration::from_secs(30).min(timeout);
    let ready = loop {
        if let Some(t) = rx.borrow().ready {
            break Some(t);
        }
        if alive().is_some() || Instant::now() > ready_deadline {
            break None;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
    };
    Ok(Times {
        children: children.saturating_duration_since(start),
        ready: ready.map(|t| t.saturating_duration_since(start)),
    })
}

// ---------------------------------------------------------------------------------------------
// (c) The baseline: a plain kube-runtime controller, no log, no NATS

mod baseline {
    use super::*;
    use kube::runtime::controller::{self, Action, Controller};
    use kube::runtime::reflector::{self, ObjectRef, Store};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    const MANAGER: &str = "baseline";

    /// Reconciles and writes of the baseline, printed with its figures.
    pub static RECONCILES: AtomicU64 = AtomicU64::new(0);
    /// Writes (applies and status patches) of the baseline.
    pub static WRITES: AtomicU64 = AtomicU64::new(0);

    struct Ctx {
        client: Client,
        apps: Store<Application>,
        ingresses: Store<Ingress>,
        reconciler: ApplicationReconciler,
        config: PlannerConfig,
    }

    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct ReconcileError(#[from] kube::Error);

    fn now() -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// The status the planner would write, from the applied Deployment.
    fn status(app: &Application, dep: &Deployment) -> ApplicationStatus {
        let want = app.spec.replicas;
        let st = dep.status.clone().unwrap_or_default();
        let ready = st.ready_replicas.unwrap_or(0);
        let rolled = st.observed_generation.unwrap_or(0) >= dep.metadata.generation.unwrap_or(0)
            && ready >= want;
        let old = app
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let generation = app.metadata.generation;
        let cond = |type_: &str, status: bool, reason: &str, message: String| {
            let status = if status { "True" } else { "False" };
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(now);
            Condition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.into(),
                message,
                last_transition_time: Some(since),
                observed_generation: generation,
            }
        };
        let msg = format!("{ready} of {want} replicas ready");
        let conditions = vec![
            cond(
                condition::INVALID,
                false,
                "Valid",
                "the spec is valid".into(),
            ),
            if rolled {
                cond(
                    condition::PROGRESSING,
                    false,
                    "Complete",
                    format!("{want} of {want} replicas ready"),
                )
            } else {
                cond(condition::PROGRESSING, true, "RollingOut", msg.clone())
            },
            if rolled {
                cond(condition::READY, true, "Available", msg)
            } else {
                cond(condition::READY, false, "RollingOut", msg)
            },
        ];
        ApplicationStatus {
            observed_generation: generation,
            conditions,
            url: app
                .spec
                .host
                .as_ref()
                .map(|h| format!("http://{h}{}", app.spec.path)),
            ready_replicas: Some(ready),
            last_action: None,
        }
    }

    fn same_but_times(a: &ApplicationStatus, b: &ApplicationStatus) -> bool {
        a.observed_generation == b.observed_generation
            && a.url == b.url
            && a.ready_replicas == b.ready_replicas
            && a.conditions.len() == b.conditions.len()
            && a.conditions.iter().zip(&b.conditions).all(|(x, y)| {
                x.type_ == y.type_
                    && x.status == y.status
                    && x.reason == y.reason
                    && x.message == y.message
                    && x.observed_generation == y.observed_generation
            })
    }

    async fn reconcile(app: Arc<Application>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
        if app.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        RECONCILES.fetch_add(1, Relaxed);
        let ns = app.namespace().unwrap_or_default();
        let name = app.name_any();
        let apply = PatchParams::apply(MANAGER).force();
        let dep = ctx.reconciler.desired_deployment(&ns, &name, &app);
        WRITES.fetch_add(2, Relaxed);
        let dep: Deployment = Api::namespaced(ctx.client.clone(), &ns)
            .patch(&name, &apply, &Patch::Apply(&dep))
            .await?;
        let svc = ctx.reconciler.desired_service(&ns, &name, &app);
        Api::<Service>::namespaced(ctx.client.clone(), &ns)
            .patch(&name, &apply, &Patch::Apply(&svc))
            .await?;
        // The shared Ingress is applied only when its rules differ from what the Applications in
        // the store ask for: re-applying a 100-rule object on every reconcile made the baseline
        // quadratic (21 s instead of 8 s for 1,000 Applications, with the emulator's collector
        // sweeping often).
        let apps = ctx.apps.state();
        let rules = desired_rules(&ctx.config, &ns, apps.iter().map(|a| a.as_ref()));
        let current = ctx
            .ingresses
            .get(&ObjectRef::new(SHARED_INGRESS).within(&ns));
        let current_rules = current
            .as_ref()
            .and_then(|i| i.spec.as_ref())
            .and_then(|s| s.rules.as_ref());
        if current_rules == Some(&rules) {
            // up to date
        } else if let Some(ing) = ingress_object(&ctx.config, &ns, rules) {
            WRITES.fetch_add(1, Relaxed);
            Api::<Ingress>::namespaced(ctx.client.clone(), &ns)
                .patch(SHARED_INGRESS, &apply, &Patch::Apply(&ing))
                .await?;
        }
        let status = status(&app, &dep);
        if !app
            .status
            .as_ref()
            .is_some_and(|s| same_but_times(s, &status))
        {
            WRITES.fetch_add(1, Relaxed);
            Api::<Application>::namespaced(ctx.client.clone(), &ns)
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await?;
        }
        Ok(Action::await_change())
    }

    fn error_policy(_app: Arc<Application>, _e: &ReconcileError, _ctx: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }

    /// Runs the baseline controller until `shutdown`.
    pub async fn run(client: Client, concurrency: u16, shutdown: CancellationToken) {
        let controller = Controller::new(
            Api::<Application>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<Deployment>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .with_config(controller::Config::default().concurrency(concurrency));
        let (ingresses, writer) = reflector::store();
        let ingress_watch = watcher(
            Api::<Ingress>::all(client.clone()),
            watcher::Config::default().labels(&managed_selector()),
        )
        .default_backoff()
        .reflect(writer)
        .for_each(|_| futures::future::ready(()));
        let ingress_task = tokio::spawn(ingress_watch);
        let ctx = Arc::new(Ctx {
            client,
            apps: controller.store(),
            ingresses,
            reconciler: ApplicationReconciler::new(PlannerConfig::default()),
            config: PlannerConfig::default(),
        });
        controller
            .graceful_shutdown_on(async move { shutdown.cancelled().await })
            .run(reconcile, error_policy, ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
        ingress_task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// (a), (b) logbook: controller, executors, nats-server, log

struct Logbook {
    _dir: tempfile::TempDir,
    _nats: NatsServer,
    cancel: CancellationToken,
    controller: Option<JoinHandle<Result<(), logbook::controller::ControllerError>>>,
    executors: Vec<JoinHandle<Result<(), logbook::executor::ExecutorError>>>,
    controller_config: ControllerConfig,
}

fn bench_dir() -> Result<tempfile::TempDir> {
    let base = std::env::var_os("LOGBOOK_BENCH_DIR").map(std::path::PathBuf::from);
    Ok(match base {
        Some(b) => {
            std::fs::create_dir_all(&b)?;
            tempfile::Builder::new().prefix("converge-").tempdir_in(b)?
        }
        None => tempfile::Builder::new().prefix("converge-").tempdir()?,
    })
}

impl Logbook {
    /// Starts nats-server and the executors (not timed), ready for the controller.
    async fn prepare(
        env: &Env,
        s: &Settings,
        executors: usize,
        in_flight: usize,
    ) -> Result<Logbook> {
        let dir = bench_dir()?;
        let nats = NatsServer::start(&dir.path().join("nats"))?;
        let args = NatsArgs::plain(&nats.url());
        let topology = Topology::default();
        // Streams and consumers up front, so that the executors' start is not timed.
        let conn = logbook::bus::connect(&args, "converge-bench").await?;
        logbook::bus::ensure_topology(conn.clone(), &topology).await?;
        drop(conn);
        let (controller_keys, executor_keys) =
            logbook::bus::sign::Keys::generate_local(&dir.path().join("keys"))?;
        let cancel = CancellationToken::new();
        let executors = (0..executors)
            .map(|i| {
                let config = ExecutorConfig {
                    name: format!("bench-executor-{i}"),
                    nats: args.clone(),
                    topology: topology.clone(),
                    in_flight,
                    grace: Duration::from_secs(1),
                    namespaces: Vec::new(),
                    keys: executor_keys.clone(),
                };
                // Each executor gets its own client (connection pool), as a process would.
                tokio::spawn(logbook::executor::run(
                    env.sandbox.client(),
                    config,
                    cancel.child_token(),
                ))
            })
            .collect();
        // Let the executors connect and start pulling.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let controller_config = ControllerConfig {
            log_path: dir.path().join("logbook.db"),
            nats: args,
            topology,
            // As `logbook controller` runs it: one write in flight per shared Ingress.
            planner: PlannerConfig {
                coalesce_shared_writes: true,
                ..PlannerConfig::default()
            },
            debounce: s.debounce,
            resync: Duration::from_secs(3600),
            grace: Duration::from_secs(2),
            answer_deadline: Duration::from_secs(60),
            keys: controller_keys,
            checkpoints: logbook::controller::Checkpoints::default(),
            // Off: the bench measures converging, not the background chain check.
            verify_every: Duration::ZERO,
        };
        let mut lb = Logbook {
            _dir: dir,
            _nats: nats,
            cancel,
            controller: None,
            executors,
            controller_config,
        };
        if let Some(why) = lb.stopped() {
            return Err(why.into());
        }
        Ok(lb)
    }

    /// Prints how big the log grew: entries, and bytes of the file with its WAL.
    fn report_log(&self) {
        let path = &self.controller_config.log_path;
        let bytes: u64 = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                std::fs::metadata(std::path::PathBuf::from(p)).ok()
            })
            .map(|m| m.len())
            .sum();
        let entries = logbook::log::LogReader::open(path)
            .ok()
            .and_then(|r| r.last_seq().ok())
            .unwrap_or(0);
        println!(
            "       log: {entries} entries, {:.1} MB (file and WAL)",
            bytes as f64 / 1e6
        );
    }

    fn start_controller(&mut self, client: Client) {
        self.controller = Some(tokio::spawn(logbook::controller::run(
            client,
            self.controller_config.clone(),
            self.cancel.child_token(),
        )));
    }

    /// Why the system stopped, if a task of it has ended.
    fn stopped(&mut self) -> Option<String> {
        if self.controller.as_ref().is_some_and(|h| h.is_finished()) {
            return Some("the controller stopped".into());
        }
        if self.executors.iter().any(|h| h.is_finished()) {
            return Some("an executor stopped".into());
        }
        None
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        let handles = self.controller.take().into_iter().map(|h| {
            tokio::spawn(async move {
                report_end("controller", h.await.map(|r| r.map_err(|e| e.to_string())));
            })
        });
        let execs = self.executors.drain(..).map(|h| {
            tokio::spawn(async move {
                report_end("executor", h.await.map(|r| r.map_err(|e| e.to_string())));
            })
        });
        let all = futures::future::join_all(handles.chain(execs).collect::<Vec<_>>());
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            eprintln!("  (logbook did not stop within 10 s)");
        }
        self.report_log();
    }
}

fn report_end(what: &str, r: Result<Result<(), String>, tokio::task::JoinError>) {
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("  {what} ended with an error: {e}"),
        Err(e) if e.is_panic() => eprintln!("  {what} panicked"),
        Err(_) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Scenario {
    /// (c) baseline
    C,
    /// (a) logbook, 1 executor × 16
    A,
    /// (b) logbook, 1 executor × 4
    B1,
    /// (b) logbook, 4 executors × 4
    B4,
}

impl Scenario {
    fn id(self) -> &'static str {
        match self {
            Scenario::C => "c",
            Scenario::A => "a",
            Scenario::B1 => "b1",
            Scenario::B4 => "b4",
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Scenario::C => "(c)  baseline: kube Controller, concurrency 16",
            Scenario::A => "(a)  logbook: 1 executor x 16 in flight",
            Scenario::B1 => "(b1) logbook: 1 executor x 4 in flight",
            Scenario::B4 => "(b4) logbook: 4 executors x 4 in flight",
        }
    }
}

async fn run_scenario(s: &Settings, scenario: Scenario) -> Result<Times> {
    let env = setup(s).await?;
    let expected = Arc::new(Expected::of(&env));
    let (checker, mut rx) = spawn_checker(env.sandbox.client(), expected);
    // Let the checker's initial lists finish before the clock starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let result = match scenario {
        Scenario::C => {
            let cancel = CancellationToken::new();
            baseline::RECONCILES.store(0, std::sync::atomic::Ordering::Relaxed);
            baseline::WRITES.store(0, std::sync::atomic::Ordering::Relaxed);
            let start = Instant::now();
            let task = tokio::spawn(baseline::run(env.sandbox.client(), 16, cancel.clone()));
            let r = wait_converged(&mut rx, start, s.timeout, || {
                task.is_finished()
                    .then(|| "the baseline stopped".to_string())
            })
            .await;
            println!(
                "       baseline: {} reconciles, {} writes until convergence (and Ready)",
                baseline::RECONCILES.load(std::sync::atomic::Ordering::Relaxed),
                baseline::WRITES.load(std::sync::atomic::Ordering::Relaxed)
            );
            cancel.cancel();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                eprintln!("  (the baseline did not stop within 10 s)");
            }
            r
        }
        Scenario::A | Scenario::B1 | Scenario::B4 => {
            let (executors, in_flight) = match scenario {
                Scenario::A => (1, 16),
                Scenario::B1 => (1, 4),
                _ => (4, 4),
            };
            let mut lb = Logbook::prepare(&env, s, executors, in_flight).await?;
            let start = Instant::now();
            lb.start_controller(env.sandbox.client());
            let r = wait_converged(&mut rx, start, s.timeout, || lb.stopped()).await;
            lb.stop().await;
            r
        }
    };
    checker.abort();
    env.sandbox.shutdown().await;
    result
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    (!v.is_empty()).then(|| v[v.len() / 2])
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------------------
// Event-to-applied latency

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn image_of(d: &Deployment) -> Option<&str> {
    d.spec
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()
}

/// `n` image changes of one Application, one at a time: from the patch's answer until a watch
/// delivers its Deployment with the new image.
async fn image_round_trips(
    client: &Client,
    app: &Application,
    round: usize,
    n: usize,
) -> Result<Vec<Duration>> {
    let ns = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let apps: Api<Application> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let current = deps.get(&name).await?;
    let rv = current.resource_version().unwrap_or_default();
    let params = WatchParams::default()
        .labels(&format!("{INSTANCE_LABEL}={name}"))
        .timeout(290);
    let mut stream = deps.watch(&params, &rv).await?.boxed();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let image = format!("nginx:1.{round}.{i}");
        apps.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"image": image}})),
        )
        .await?;
        let sent = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Err(_) => return Err(format!("change {i}: no new image within 10 s").into()),
                Ok(None) => return Err("the watch ended".into()),
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(Some(Ok(WatchEvent::Added(d) | WatchEvent::Modified(d))))
                    if image_of(&d) == Some(image.as_str()) =>
                {
                    break;
                }
                Ok(Some(Ok(WatchEvent::Error(e)))) => {
                    return Err(format!("watch error: {e:?}").into());
                }
                Ok(Some(Ok(_))) => {}
            }
        }
        samples.push(sent.elapsed());
        // Idle again: the Deployment's readiness and the status write settle in between.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    Ok(samples)
}

async fn latency(s: &Settings) -> Result<Vec<(Duration, Vec<Duration>)>> {
    let env = setup(s).await?;
    let expected = Arc::new(Expected::of(&env));
    let (checker, mut rx) = spawn_checker(env.sandbox.client(), expected);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut lb = Logbook::prepare(&env, s, 1, 16).await?;
    let start = Instant::now();
    lb.start_controller(env.sandbox.client());
    let result = async {
        let t = wait_converged(&mut rx, start, s.timeout, || lb.stopped()).await?;
        println!(
            "  converged for the latency run in {} (Ready: {})",
            ms(t.children),
            t.ready.map(ms).unwrap_or_else(|| "not reached".into())
        );
        checker.abort();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let client = env.sandbox.client();
        let app = &env.apps[0];
        let mut out = Vec::new();
        for (round, latency) in [Duration::ZERO, s.write_latency].into_iter().enumerate() {
            set_write_latency(&env.sandbox, latency);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut v = image_round_trips(&client, app, round, s.samples).await?;
            v.sort();
            out.push((latency, v));
        }
        Ok::<_, Error>(out)
    }
    .await;
    lb.stop().await;
    env.sandbox.shutdown().await;
    result
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let s = Settings::from_env(full);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "converge: {} Applications in {} namespaces, {} ms write latency, ready delay {} ms, debounce {} ms, {} run(s){}",
        s.apps,
        s.namespaces,
        s.write_latency.as_millis(),
        s.ready_delay.as_millis(),
        s.debounce.as_millis(),
        s.runs,
        if full {
            ""
        } else {
            " (smoke run; `cargo bench --bench converge` for the full one)"
        }
    );
    let scenarios: Vec<Scenario> = [Scenario::C, Scenario::A, Scenario::B1, Scenario::B4]
        .into_iter()
        .filter(|sc| s.wants(sc.id()))
        .collect();
    let mut results: BTreeMap<Scenario, Vec<Times>> = BTreeMap::new();
    let mut failed = false;
    for run in 0..s.runs {
        for &sc in &scenarios {
            match rt.block_on(run_scenario(&s, sc)) {
                Ok(t) => {
                    println!(
                        "run {}  {:<42} children {:>8}   all Ready {:>8}",
                        run + 1,
                        sc.describe(),
                        ms(t.children),
                        t.ready.map(ms).unwrap_or_else(|| "-".into())
                    );
                    results.entry(sc).or_default().push(t);
                }
                Err(e) => {
                    println!("run {}  {:<42} FAILED: {e}", run + 1, sc.describe());
                    failed = true;
                }
            }
        }
    }
    if !results.is_empty() {
        println!("\nmedian of {} run(s):", s.runs);
    }
    let med = |sc: Scenario| {
        results
            .get(&sc)
            .and_then(|v| median(v.iter().map(|t| t.children).collect()))
    };
    let med_ready = |sc: Scenario| {
        results
            .get(&sc)
            .and_then(|v| median(v.iter().filter_map(|t| t.ready).collect()))
    };
    for &sc in &scenarios {
        if let Some(m) = med(sc) {
            println!(
                "  {:<42} children {:>8}   all Ready {:>8}",
                sc.describe(),
                ms(m),
                med_ready(sc).map(ms).unwrap_or_else(|| "-".into())
            );
        }
    }
    if let (Some(a), Some(c)) = (med(Scenario::A), med(Scenario::C)) {
        let r = a.as_secs_f64() / c.as_secs_f64();
        println!(
            "  a/c   = {r:.2}  (target <= 1.5: {})",
            if r <= 1.5 { "met" } else { "NOT met" }
        );
    }
    if let (Some(b1), Some(b4)) = (med(Scenario::B1), med(Scenario::B4)) {
        let r = b1.as_secs_f64() / b4.as_secs_f64();
        println!(
            "  b1/b4 = {r:.2}  (4 executors vs 1 at 4 in flight each; target >= 3: {})",
            if r >= 3.0 { "met" } else { "NOT met" }
        );
    }
    if s.wants("latency") {
        println!(
            "\nevent-to-applied latency, logbook 1 executor x 16, idle, {} changes of one image:",
            s.samples
        );
        match rt.block_on(latency(&s)) {
            Ok(rounds) => {
                for (write_latency, v) in rounds {
                    let p99 = percentile(&v, 99.0);
                    println!(
                        "  write latency {:>2} ms: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms  (target p99 < 25 ms: {})",
                        write_latency.as_millis(),
                        percentile(&v, 50.0).as_secs_f64() * 1e3,
                        p99.as_secs_f64() * 1e3,
                        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
                        if p99 < Duration::from_millis(25) {
                            "met"
                        } else {
                            "NOT met"
                        }
                    );
                }
            }
            Err(e) => {
                println!("  FAILED: {e}");
                failed = true;
            }
        }
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    if failed {
        std::process::exit(1);
    }
}
