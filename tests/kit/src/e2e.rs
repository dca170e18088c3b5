//! The end-to-end harness: a sandbox, a real nats-server, and logbook's controller and executors
//! as child processes of the built binary (so they can be killed), all killed on drop.

use crate::sandbox::{fast_config, install_crd, start_with};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use logbook::bus::server::NatsServer;
use logbook::log::LogReader;
use logbook::model::Application;
use logbook::record::{Body, Entry};
use logbook::sandbox::Sandbox;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// The `logbook` binary cargo built for the running test: `CARGO_BIN_EXE_logbook`, which cargo
/// sets when it runs an integration test of the `logbook` package, or else the binary beside the
/// test's own `deps/` directory (the kit is a library, so `env!` cannot name it at build time).
pub fn logbook_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_logbook") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    dir.join(format!("logbook{}", std::env::consts::EXE_SUFFIX))
}

/// How long a converging step may take before the test fails.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// Everything an end-to-end test runs.
pub struct Env {
    pub sandbox: Sandbox,
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub log_path: PathBuf,
    pub client: kube::Client,
    controller: Option<Child>,
    /// Controllers with leader election on, by identity (see [`Env::elected_controller`]).
    pub elected: BTreeMap<String, Child>,
    executors: BTreeMap<String, Child>,
    /// Extra arguments for every executor (e.g. `--ack-wait`).
    pub executor_args: Vec<String>,
    /// Extra environment for every process (e.g. `LOGBOOK_MAX_DELIVER`).
    pub env_vars: Vec<(String, String)>,
    /// The admin server port of every process started, by its log name (`controller`, an
    /// executor's name): see [`Env::admin_url`].
    admin_ports: std::sync::Mutex<BTreeMap<String, u16>>,
}

impl Env {
    /// A sandbox with the CRD and the namespaces, and a nats-server; no logbook process yet.
    pub async fn start(namespaces: &[&str]) -> Env {
        let sandbox = start_with(fast_config()).await;
        let client = sandbox.client();
        install_crd(&client).await;
        let nsapi: Api<Namespace> = Api::all(client.clone());
        for ns in namespaces {
            let obj: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
            nsapi.create(&PostParams::default(), &obj).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let nats = NatsServer::start(&dir.path().join("nats")).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        sandbox.write_kubeconfig(&kubeconfig).unwrap();
        let log_path = dir.path().join("log.db");
        logbook::bus::sign::Keys::generate_local(&dir.path().join("keys")).unwrap();
        Env {
            sandbox,
            nats,
            kubeconfig,
            log_path,
            client,
            dir,
            controller: None,
            elected: BTreeMap::new(),
            executors: BTreeMap::new(),
            executor_args: Vec::new(),
            env_vars: Vec::new(),
            admin_ports: Default::default(),
        }
    }

    fn command(&self, sub: &str, name: &str) -> Command {
        let mut cmd = Command::new(logbook_bin());
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let keys = self.dir.path().join("keys");
        let role = if sub == "controller" {
            "controller"
        } else {
            "executor"
        };
        cmd.arg(sub)
            .env("LOGBOOK_SIGNING_KEY", keys.join(format!("{role}.key")))
            .env(
                "LOGBOOK_TRUSTED_KEYS",
                keys.join(logbook::bus::sign::TRUSTED_FILE),
            )
            .env("KUBECONFIG", &self.kubeconfig)
            .env("LOGBOOK_NATS_URL", self.nats.url())
            .env("RUST_LOG", "info,logbook=debug")
            .env("LOGBOOK_ACK_WAIT", "2s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        // Each process its own admin server on a loopback port (never the default 9090).
        let port = admin_port();
        cmd.env("LOGBOOK_ADMIN_ADDR", format!("127.0.0.1:{port}"));
        self.admin_ports
            .lock()
            .unwrap()
            .insert(name.to_string(), port);
        for (k, v) in &self.env_vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// The controller's signing key (as only the controller holds it): tests that play the
    /// outbox, e.g. delivering a recorded action late, sign with it.
    pub fn controller_key(&self) -> logbook::bus::sign::SigningKey {
        logbook::bus::sign::SigningKey::load(
            &self.dir.path().join("keys/controller.key"),
            logbook::bus::sign::CONTROLLER,
        )
        .unwrap()
    }

    /// Starts the controller (again), alone: without leader election, so a restart after a
    /// kill does not wait for the previous process's Lease to expire.
    pub fn controller(&mut self) {
        let child = self
            .command("controller", "controller")
            .arg("--log")
            .arg(&self.log_path)
            .arg("--resync")
            .arg("0")
            .arg("--leader-elect=false")
            .spawn()
            .unwrap();
        self.controller = Some(child);
    }

    /// Starts a controller with leader election on, as `identity`, on the same log file as
    /// every other: a 2 s Lease `logbook-controller` in `default`, renewed every 200 ms, lost
    /// after 1 s without renewal. Its stderr goes to `<identity>.log`.
    pub fn elected_controller(&mut self, identity: &str) {
        let child = self
            .command("controller", identity)
            .arg("--log")
            .arg(&self.log_path)
            .args([
                "--resync",
                "0",
                "--leader-elect=true",
                "--identity",
                identity,
            ])
            .args(["--lease-namespace", "default", "--lease-duration", "2s"])
            .args(["--renew-deadline", "1s", "--retry-period", "200ms"])
            .spawn()
            .unwrap();
        self.elected.insert(identity.to_string(), child);
    }

    /// SIGKILLs the elected controller `identity`.
    pub fn kill_elected(&mut self, identity: &str) {
        if let Some(mut c) = self.elected.remove(identity) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts an executor named `name` handling `in_flight` actions at once.
    pub fn executor(&mut self, name: &str, in_flight: usize) {
        let child = self
            .command("executor", name)
            .args(["--name", name, "--in-flight", &in_flight.to_string()])
            .args(&self.executor_args)
            .spawn()
            .unwrap();
        self.executors.insert(name.to_string(), child);
    }

    /// `http://127.0.0.1:PORT`: the admin server (/metrics, /healthz, /readyz) of the process
    /// last started under `name` (`controller`, or an executor's name).
    pub fn admin_url(&self, name: &str) -> String {
        let port = self.admin_ports.lock().unwrap().get(name).copied();
        format!(
            "http://127.0.0.1:{}",
            port.expect("a process of that name was started")
        )
    }

    /// SIGKILLs the controller.
    pub fn kill_controller(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILLs an executor.
    pub fn kill_executor(&mut self, name: &str) {
        if let Some(mut c) = self.executors.remove(name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM to a process and waits (bounded) for it to exit.
    pub fn terminate(child: &mut Child) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("process did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the controller with SIGTERM; returns its exit status.
    pub fn stop_controller(&mut self) -> ExitStatus {
        let mut c = self.controller.take().expect("a controller is running");
        Self::terminate(&mut c)
    }

    /// The tails of every process's log, for failure messages.
    pub fn tails(&self) -> String {
        let mut out = String::new();
        let Ok(dir) = std::fs::read_dir(self.dir.path()) else {
            return out;
        };
        let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for p in files {
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(15);
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    p.display(),
                    lines[start..].join("\n")
                ));
            }
        }
        out
    }

    /// Waits for `check` like `eventually`, but shows the processes' logs when it times out.
    pub async fn wait<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {CONVERGE:?} waiting for {what}\n{}\n--- the log's last entries\n{}",
                    self.tails(),
                    self.trail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log's last `n` entries, one line each.
    pub fn trail(&self, n: usize) -> String {
        let entries = self.entries();
        let start = entries.len().saturating_sub(n);
        entries[start..]
            .iter()
            .map(|e| {
                let what = match &e.body {
                    Body::Event(ev) => {
                        format!("{:?} {} rv {}", ev.change, ev.key, ev.resource_version)
                    }
                    Body::Plan(p) => format!(
                        "upto {} scope {:?} actions {:?}",
                        p.upto_seq, p.scope, p.action_ids
                    ),
                    Body::Action(a) => format!(
                        "{} {} {} ({})",
                        a.action.id, a.action.verb, a.action.target, a.action.reason
                    ),
                    Body::Outcome(o) => format!(
                        "{} {:?} retry={} {}",
                        o.action_id, o.result, o.retry, o.message
                    ),
                    Body::Marker(m) => format!("{:?}", m.marker),
                };
                format!("{:>5} {:<8} {what}\n", e.seq, e.kind().to_string())
            })
            .collect()
    }

    /// Waits until the log stream holds every event, plan and marker of the log exactly once
    /// (outcomes came from the bus and are not sent back).
    pub async fn published_once(&self) {
        use logbook::bus;
        use logbook::record::EntryKind;
        let client = bus::connect(&bus::NatsArgs::plain(&self.nats.url()), "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        self.wait(
            "the log stream to hold every event, plan and marker once",
            || {
                let js = js.clone();
                async move {
                    let want = self
                        .entries()
                        .iter()
                        .filter(|e| {
                            matches!(
                                e.kind(),
                                EntryKind::Event | EntryKind::Plan | EntryKind::Marker
                            )
                        })
                        .count() as u64;
                    let mut s = js.get_stream(bus::LOG_STREAM).await.ok()?;
                    let have = s.info().await.ok()?.state.messages;
                    (have == want).then_some(())
                }
            },
        )
        .await;
    }

    /// Every entry of the log as it is now.
    pub fn entries(&self) -> Vec<Entry> {
        if !self.log_path.exists() {
            return Vec::new();
        }
        let r = LogReader::open(&self.log_path).unwrap();
        r.range(..).map(|e| e.unwrap()).collect()
    }

    pub fn apps(&self, ns: &str) -> Api<Application> {
        Api::namespaced(self.client.clone(), ns)
    }
    pub fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }
    pub fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }
    pub fn ingresses(&self, ns: &str) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Applies an Application as a developer would (`kubectl apply --server-side`).
    pub async fn apply(&self, app: &Application) {
        self.try_apply(app).await.unwrap();
    }

    /// [`Env::apply`], returning the API server's answer instead of panicking on an error
    /// (for tests that inject write errors and retry, as a developer would).
    pub async fn try_apply(&self, app: &Application) -> Result<(), kube::Error> {
        let ns = app.metadata.namespace.clone().unwrap_or_default();
        let name = app.metadata.name.clone().unwrap_or_default();
        let mut body = serde_json::to_value(app).unwrap();
        body["apiVersion"] = "logbook.dev/v1alpha1".into();
        body["kind"] = "Application".into();
        if let Some(m) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("resourceVersion");
            m.remove("creationTimestamp");
            m.remove("uid");
            m.remove("generation");
        }
        self.apps(&ns)
            .patch(
                &name,
                &PatchParams::apply("kubectl").force(),
                &Patch::Apply(body),
            )
            .await
            .map(|_| ())
    }

    /// Deletes an Application.
    pub async fn delete_app(&self, ns: &str, name: &str) {
        self.try_delete_app(ns, name).await.unwrap();
    }

    /// [`Env::delete_app`], returning the API server's answer (a 404 included) instead of
    /// panicking on an error.
    pub async fn try_delete_app(&self, ns: &str, name: &str) -> Result<(), kube::Error> {
        self.apps(ns)
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ())
    }

    /// Edits a child by hand, as a human would with `kubectl patch` (a strategic merge patch,
    /// field manager `kubectl-patch`): `kind` is `Deployment`, `Service` or `Ingress`. `Ok(false)`
    /// when the object does not exist; other API errors are returned (e.g. injected faults).
    pub async fn hand_edit(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<bool, kube::Error> {
        let params = PatchParams {
            field_manager: Some("kubectl-patch".into()),
            ..PatchParams::default()
        };
        let patch = Patch::Strategic(patch);
        let result = match kind {
            "Deployment" => self
                .deployments(ns)
                .patch(name, &params, &patch)
                .await
                .map(|_| ()),
            "Service" => self
                .services(ns)
                .patch(name, &params, &patch)
                .await
                .map(|_| ()),
            "Ingress" => self
                .ingresses(ns)
                .patch(name, &params, &patch)
                .await
                .map(|_| ()),
            other => panic!("hand_edit: no such child kind {other}"),
        };
        match result {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The names of the executors started and not killed, sorted.
    pub fn executor_names(&self) -> Vec<String> {
        self.executors.keys().cloned().collect()
    }

    /// True when a controller was started and has not been killed or stopped since.
    pub fn controller_running(&self) -> bool {
        self.controller.is_some()
    }

    /// The Deployment's container image, when the Deployment exists.
    pub async fn image(&self, ns: &str, name: &str) -> Option<String> {
        let d = self.deployments(ns).get_opt(name).await.ok()??;
        d.spec.template.spec?.containers.first()?.image.clone()
    }

    /// The hosts in the namespace's shared Ingress, sorted.
    pub async fn ingress_hosts(&self, ns: &str) -> Option<Vec<String>> {
        let ing = self.ingresses(ns).get_opt("logbook").await.ok()??;
        let mut hosts: Vec<String> = ing
            .spec?
            .rules
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.host)
            .collect();
        hosts.sort();
        Some(hosts)
    }

    /// Waits until the Application's Ready condition is True for its current generation;
    /// returns it.
    pub async fn ready(&self, ns: &str, name: &str) -> Application {
        let apps = self.apps(ns);
        let name = name.to_string();
        self.wait(&format!("{ns}/{name} Ready"), || {
            let apps = apps.clone();
            let name = name.clone();
            async move {
                let app = apps.get_opt(&name).await.ok()??;
                // Ready for the generation the API server holds now, not for an older spec
                // whose status has not been rewritten yet.
                let generation = app.metadata.generation;
                let ready = app.status.as_ref()?.conditions.iter().any(|c| {
                    c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation
                });
                ready.then_some(app)
            }
        })
        .await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill_controller();
        let elected: Vec<String> = self.elected.keys().cloned().collect();
        for identity in elected {
            self.kill_elected(&identity);
        }
        let names: Vec<String> = self.executors.keys().cloned().collect();
        for n in names {
            self.kill_executor(&n);
        }
    }
}

/// The outcomes recorded in the log, as (action id, result, executor).
pub fn outcomes(entries: &[Entry]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .filter_map(|e| match &e.body {
            Body::Outcome(o) => Some((
                o.action_id.clone(),
                format!("{:?}", o.result).to_lowercase(),
                o.executor.clone(),
            )),
            _ => None,
        })
        .collect()
}

impl Env {
    /// What logbook made, without what differs between runs (uids, resourceVersions,
    /// timestamps, action ids, plan sequences): managed objects' labels, owners and specs, and
    /// Applications' status conditions.
    pub async fn cluster_state(&self) -> BTreeMap<String, serde_json::Value> {
        use kube::api::{DynamicObject, ListParams};
        use kube::core::{ApiResource, GroupVersionKind};
        let mut out = BTreeMap::new();
        let selector = ListParams::default().labels(&logbook::model::managed_selector());
        for (group, version, kind) in [
            ("apps", "v1", "Deployment"),
            ("", "v1", "Service"),
            ("networking.k8s.io", "v1", "Ingress"),
        ] {
            let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
            for o in api.list(&selector).await.unwrap() {
                let mut v = serde_json::to_value(&o).unwrap();
                let meta = v["metadata"].clone();
                let mut spec = v["spec"].take();
                if let Some(s) = spec.as_object_mut() {
                    s.remove("clusterIP");
                    s.remove("clusterIPs");
                }
                let owners: Vec<serde_json::Value> = meta["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| serde_json::json!({"kind": r["kind"], "name": r["name"]}))
                    .collect();
                out.insert(
                    format!(
                        "{kind}/{}/{}",
                        o.metadata.namespace.clone().unwrap_or_default(),
                        o.metadata.name.clone().unwrap_or_default()
                    ),
                    serde_json::json!({"labels": meta["labels"], "owners": owners, "spec": spec}),
                );
            }
        }
        let apps: Api<Application> = Api::all(self.client.clone());
        for a in apps.list(&ListParams::default()).await.unwrap() {
            let status = a.status.clone().unwrap_or_default();
            let conditions: Vec<_> = status
                .conditions
                .iter()
                .map(|c| {
                    (
                        c.type_.clone(),
                        c.status.clone(),
                        c.reason.clone(),
                        c.message.clone(),
                    )
                })
                .collect();
            out.insert(
                format!("Application/{}/{}", a.metadata.namespace.clone().unwrap_or_default(), a.metadata.name.clone().unwrap_or_default()),
                serde_json::json!({"conditions": conditions, "url": status.url, "ready": status.ready_replicas}),
            );
        }
        out
    }

    /// Waits until every given Application is Ready and its children and rules are in place.
    pub async fn converged(&self, apps: &[Application]) {
        for a in apps {
            let ns = a.metadata.namespace.clone().unwrap_or_default();
            let name = a.metadata.name.clone().unwrap_or_default();
            let app = self.ready(&ns, &name).await;
            let want_image = a.spec.image.clone();
            let ns2 = ns.clone();
            self.wait(&format!("{ns}/{name}: image, Service and rule"), || {
                let (ns, name, want_image, host) = (
                    ns2.clone(),
                    name.clone(),
                    want_image.clone(),
                    app.spec.host.clone(),
                );
                async move {
                    let image_ok =
                        self.image(&ns, &name).await.as_deref() == Some(want_image.as_str());
                    let svc_ok = self.services(&ns).get_opt(&name).await.ok()?.is_some();
                    let rule_ok = match host {
                        Some(h) => self
                            .ingress_hosts(&ns)
                            .await
                            .is_some_and(|hs| hs.contains(&h)),
                        None => true,
                    };
                    (image_ok && svc_ok && rule_ok).then_some(())
                }
            })
            .await;
        }
    }
}

/// Recomputes every recorded plan from exactly the log prefix it read and returns how many
/// matched; panics at the first plan whose actions differ.
pub fn recompute_plans(entries: &[Entry]) -> usize {
    use logbook::reconcile::{Planner, PlannerConfig};
    use logbook::world::Fold;
    let planner = Planner::new(PlannerConfig::default());
    let mut fold = Fold::new();
    let mut next = 0;
    let mut checked = 0;
    for e in entries {
        if let Body::Plan(p) = &e.body {
            while next < entries.len() && entries[next].seq <= p.upto_seq {
                let x = &entries[next];
                fold.apply(x.seq, x.at, &x.body);
                next += 1;
            }
            let actions = if p.scope.is_empty() {
                planner.plan_all(fold.world())
            } else {
                planner.plan_scopes(fold.world(), &p.scope.iter().cloned().collect())
            };
            let ids: Vec<String> = actions.into_iter().map(|a| a.id).collect();
            assert_eq!(
                ids, p.action_ids,
                "plan at seq {} (read up to {}) recomputed differently",
                e.seq, p.upto_seq
            );
            checked += 1;
        }
    }
    checked
}

/// A free loopback port for a process's admin server, below the kernel's ephemeral range
/// (32768 and up): a port the kernel hands out for `:0` or an outgoing connection between this
/// check and the process's own bind is then never the one chosen (a test once failed with the
/// controller's admin port taken by another test's connection).
fn admin_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let n = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(104_729));
        let port = 20_000 + (n % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000 for an admin server");
}
