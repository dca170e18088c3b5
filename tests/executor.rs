//! The executor against a real nats-server and the sandbox: idempotent applies fenced by plan
//! sequence, deletes with preconditions, status, malformed messages, `Audit-ID`, kill and SIGTERM.

use logbook_testkit::AppTest;
use logbook_testkit::sandbox as support;

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use logbook::bus::sign::{Keys, SIGNATURE_HEADER, TRUSTED_FILE};
use logbook::bus::wire::{ActionMessage, MSG_ID, OutcomeMessage};
use logbook::bus::{self, NatsArgs, Topology, server::NatsServer};
use logbook::executor::{self, ExecutorConfig, ExecutorError};
use logbook::model::{ACTION_ID_ANNOTATION, FIELD_MANAGER, PLAN_SEQ_ANNOTATION};
use logbook::model::{Application, ApplicationStatus};
use logbook::reconcile::ApplicationReconciler;
use logbook::record::{Action, ObjKey, OutcomeResult, Verb};
use logbook::sandbox::Verb as ApiVerb;
use logbook::sandbox::{Audited, Sandbox};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{bounded, eventually, install_crd, start};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long an outcome or a cluster state may take to appear.
const WAIT: Duration = Duration::from_secs(20);

/// The settings the harness, the in-process executors and the child processes all use (the
/// children get the same through `LOGBOOK_ACK_WAIT`).
fn topology() -> Topology {
    Topology {
        ack_wait: Duration::from_secs(2),
        ..Topology::default()
    }
}

/// A child process of the built binary, killed on drop.
struct ChildProc {
    child: Child,
    log: PathBuf,
}

impl ChildProc {
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sandbox with the CRD and namespace `shop`, a nats-server with the topology, and a reader
/// of the outcomes stream (through the controller's consumer, as no controller runs here).
struct Harness {
    sandbox: Sandbox,
    nats: NatsServer,
    dir: tempfile::TempDir,
    client: kube::Client,
    js: jetstream::Context,
    outcomes: PullConsumer,
    /// Every outcome read so far, with its subject.
    seen: Vec<(String, OutcomeMessage)>,
    next_seq: u64,
    topology: Topology,
    /// The controller's keys (the harness signs actions with them) and the executors'.
    controller_keys: Keys,
    executor_keys: Keys,
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(topology()).await
    }

    async fn start_with(topology: Topology) -> Harness {
        let sandbox = start().await;
        let client = sandbox.client();
        install_crd(&client).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace shop created");
        let dir = tempfile::tempdir().expect("temporary directory");
        let nats = NatsServer::start(&dir.path().join("nats")).expect("nats-server started");
        let nc = bus::connect(&NatsArgs::plain(&nats.url()), "executor-test")
            .await
            .expect("connected to NATS");
        let js = bus::ensure_topology(nc, &topology)
            .await
            .expect("topology created");
        let outcomes = js
            .get_consumer_from_stream(bus::CONTROLLER_CONSUMER, bus::OUTCOMES_STREAM)
            .await
            .expect("outcome consumer");
        sandbox
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("kubeconfig written");
        let (controller_keys, executor_keys) =
            Keys::generate_local(&dir.path().join("keys")).expect("keys made");
        Harness {
            controller_keys,
            executor_keys,
            sandbox,
            nats,
            dir,
            client,
            js,
            outcomes,
            seen: Vec::new(),
            next_seq: 1,
            topology,
        }
    }

    fn config(&self, name: &str) -> ExecutorConfig {
        ExecutorConfig {
            name: name.to_string(),
            nats: NatsArgs::plain(&self.nats.url()),
            topology: self.topology.clone(),
            in_flight: 4,
            grace: Duration::from_secs(10),
            namespaces: Vec::new(),
            keys: self.executor_keys.clone(),
        }
    }

    /// An executor on a task of this runtime; cancel the token to stop it.
    fn spawn_executor(
        &self,
        name: &str,
    ) -> (CancellationToken, JoinHandle<Result<(), ExecutorError>>) {
        let token = CancellationToken::new();
        let handle = tokio::spawn(executor::run(
            self.client.clone(),
            self.config(name),
            token.clone(),
        ));
        (token, handle)
    }

    /// `logbook executor` as a child process.
    fn spawn_child(&self, name: &str, extra: &[&str]) -> ChildProc {
        let log = self.dir.path().join(format!("{name}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_logbook"))
            .arg("executor")
            .args(extra)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("LOGBOOK_NATS_URL", self.nats.url())
            .env("LOGBOOK_ACK_WAIT", "2s")
            .env("LOGBOOK_EXECUTOR_NAME", name)
            .env(
                "LOGBOOK_SIGNING_KEY",
                self.dir.path().join("keys").join("executor.key"),
            )
            .env(
                "LOGBOOK_TRUSTED_KEYS",
                self.dir.path().join("keys").join(TRUSTED_FILE),
            )
            .env("LOGBOOK_ADMIN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info,logbook=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("logbook executor started");
        ChildProc { child, log }
    }

    /// An action message as the controller's outbox publishes it, for plan `plan_seq`.
    fn message(&mut self, plan_seq: u64, action: Action) -> ActionMessage {
        let seq = self.next_seq;
        self.next_seq += 1;
        ActionMessage {
            entry_id: uuid::Uuid::new_v4(),
            seq,
            plan_seq,
            at: chrono::Utc::now(),
            action,
        }
    }

    async fn publish(&self, msg: &ActionMessage) {
        let subject = bus::action_subject(&msg.action.target, msg.action.app.as_deref());
        let payload = serde_json::to_vec(msg).expect("action message encodes");
        self.publish_raw(&subject, Some(&msg.entry_id.to_string()), payload)
            .await;
    }

    /// Publishes `payload` signed with the controller's key, as the outbox does.
    async fn publish_raw(&self, subject: &str, msg_id: Option<&str>, payload: Vec<u8>) {
        let signature = self.controller_keys.signing.sign(&payload);
        self.publish_with(subject, msg_id, Some(&signature), payload)
            .await;
    }

    /// Publishes `payload` with the given signature header (or none): what a forger can do.
    async fn publish_with(
        &self,
        subject: &str,
        msg_id: Option<&str>,
        signature: Option<&str>,
        payload: Vec<u8>,
    ) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(s) = signature {
            headers.insert(SIGNATURE_HEADER, s);
        }
        if let Some(id) = msg_id {
            headers.insert(MSG_ID, id);
        }
        let ack = self
            .js
            .publish_with_headers(subject.to_string(), headers, payload.into())
            .await
            .expect("published");
        let ack = ack.await.expect("stored by JetStream");
        assert!(!ack.duplicate, "a fresh message, not a duplicate");
    }

    /// Reads what the outcomes stream holds now (waiting briefly), acking it.
    async fn pull_outcomes(&mut self) {
        let batch = self
            .outcomes
            .batch()
            .max_messages(100)
            .expires(Duration::from_millis(200))
            .messages()
            .await;
        let Ok(mut batch) = batch else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        };
        while let Some(Ok(m)) = batch.next().await {
            let out = OutcomeMessage::decode(&m.payload).expect("an outcome message");
            self.seen.push((m.subject.to_string(), out));
            m.ack().await.expect("outcome acked");
        }
    }

    /// Waits for an outcome matching `pred`; fails after [`WAIT`] listing what was seen.
    async fn outcome(
        &mut self,
        what: &str,
        pred: impl Fn(&OutcomeMessage) -> bool,
    ) -> (String, OutcomeMessage) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = self.seen.iter().find(|(_, o)| pred(o)) {
                return found.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {WAIT:?} waiting for {what}; outcomes seen: {:#?}",
                    self.seen
                        .iter()
                        .map(|(_, o)| &o.outcome)
                        .collect::<Vec<_>>()
                );
            }
            self.pull_outcomes().await;
        }
    }

    /// Waits for the outcome of `action` with `result`.
    async fn result(&mut self, action: &Action, result: OutcomeResult) -> OutcomeMessage {
        let id = action.id.clone();
        self.outcome(&format!("{result:?} for {id} ({})", action.reason), |o| {
            o.outcome.action_id == id && o.outcome.result == result
        })
        .await
        .1
    }

    /// Every outcome seen for `action_id`.
    fn outcomes_of(&self, action_id: &str) -> Vec<&OutcomeMessage> {
        self.seen
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.outcome.action_id == action_id)
            .collect()
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "shop")
    }

    fn applications(&self) -> Api<Application> {
        Api::namespaced(self.client.clone(), "shop")
    }

    /// The requests that carried `Audit-ID: id`, in order.
    fn requests(&self, id: &str) -> Vec<Audited> {
        self.sandbox
            .faults()
            .audited()
            .into_iter()
            .filter(|a| a.audit_id == id)
            .collect()
    }
}

/// The Deployment logbook plans for Application `shop/web` with `replicas`, without the owner
/// reference (no Application with that uid exists, and the sandbox collects orphans).
fn desired_deployment(replicas: i32) -> Value {
    let app = Application::test("shop", "web").replicas(replicas).build();
    let mut object = ApplicationReconciler::default().desired_deployment("shop", "web", &app);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("ownerReferences");
    }
    object
}

fn deployment_action(verb: Verb, replicas: i32, reason: &str) -> Action {
    Action::new(
        verb,
        ObjKey::new("Deployment", "shop", "web"),
        "apps/v1",
        Some("shop/web".into()),
        Some(desired_deployment(replicas)),
        None,
        reason.into(),
        BTreeMap::new(),
    )
}

fn delete_action(uid: Option<&str>, reason: &str) -> Action {
    Action::new(
        Verb::Delete,
        ObjKey::new("Deployment", "shop", "web"),
        "apps/v1",
        Some("shop/web".into()),
        None,
        uid.map(str::to_string),
        reason.into(),
        BTreeMap::new(),
    )
}

fn status_action(name: &str, url: &str) -> Action {
    Action::new(
        Verb::Status,
        ObjKey::new("Application", "shop", name),
        "logbook.dev/v1alpha1",
        Some(format!("shop/{name}")),
        Some(json!({
            "apiVersion": "logbook.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": "shop"},
            "status": {"observedGeneration": 1, "url": url},
        })),
        None,
        format!("status: url {url}"),
        BTreeMap::new(),
    )
}

fn annotation(d: &Deployment, key: &str) -> Option<String> {
    d.metadata.annotations.as_ref()?.get(key).cloned()
}

fn rv_num(rv: &Option<String>) -> u64 {
    rv.as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.replicas
}

async fn stop(token: CancellationToken, handle: JoinHandle<Result<(), ExecutorError>>) {
    token.cancel();
    let result = tokio::time::timeout(Duration::from_secs(15), handle)
        .await
        .expect("the executor stops within its grace")
        .expect("the executor task did not panic");
    assert!(result.is_ok(), "the executor ended cleanly: {result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_applied_once_then_fenced_by_plan_sequence() {
    bounded(async {
        let mut h = Harness::start().await;
        let (token, handle) = h.spawn_executor("exec-a");

        // Create: applied, stamped with both annotations, written by field manager logbook.
        let create = deployment_action(Verb::Create, 1, "missing");
        let first = h.message(10, create.clone());
        h.publish(&first).await;
        let (subject, _) = h
            .outcome("the create's outcome", |o| o.outcome.action_id == create.id)
            .await;
        assert_eq!(subject, "logbook.outcomes.shop.web");
        let out = h.result(&create, OutcomeResult::Applied).await;
        assert_eq!(out.outcome.executor, "exec-a");
        assert_eq!(out.outcome.attempt, 1);
        assert!(!out.outcome.retry);
        assert_eq!(out.target, ObjKey::new("Deployment", "shop", "web"));
        assert_eq!(out.app.as_deref(), Some("shop/web"));
        let d = h
            .deployments()
            .get("web")
            .await
            .expect("deployment created");
        assert_eq!(
            annotation(&d, ACTION_ID_ANNOTATION).as_deref(),
            Some(create.id.as_str())
        );
        assert_eq!(annotation(&d, PLAN_SEQ_ANNOTATION).as_deref(), Some("10"));
        // (The sandbox's simulated rollout may have written the status since.)
        assert!(rv_num(&out.outcome.resource_version) <= rv_num(&d.metadata.resource_version));
        // (The sandbox keeps no managedFields: the audit trail shows the field manager.)
        // A create is one request: the POST (the planner saw no object, so nothing to read).
        let writes = h.requests(&create.id);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].method, "POST");
        assert!(
            writes[0]
                .request_uri
                .contains(&format!("fieldManager={FIELD_MANAGER}")),
            "{writes:?}"
        );

        // The same action delivered again (say, after a crash before the ack): no-op.
        let again = h.message(10, create.clone());
        h.publish(&again).await;
        let noop = h.result(&create, OutcomeResult::NoOp).await;
        assert!(
            noop.outcome.message.contains("already"),
            "{}",
            noop.outcome.message
        );
        let same = h.deployments().get("web").await.unwrap();
        assert_eq!(
            same.metadata.generation, d.metadata.generation,
            "spec untouched"
        );

        // A newer plan's apply: applied.
        let apply = deployment_action(Verb::Apply, 3, "drift at spec.replicas");
        let newer = h.message(12, apply.clone());
        h.publish(&newer).await;
        let applied = h.result(&apply, OutcomeResult::Applied).await;
        let d = h.deployments().get("web").await.unwrap();
        assert_eq!(replicas(&d), Some(3));
        assert_eq!(annotation(&d, PLAN_SEQ_ANNOTATION).as_deref(), Some("12"));
        assert_eq!(
            annotation(&d, ACTION_ID_ANNOTATION).as_deref(),
            Some(apply.id.as_str())
        );
        let writes = h.requests(&apply.id);
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[1].method, "PATCH");
        let uri = &writes[1].request_uri;
        assert!(
            uri.contains(&format!("fieldManager={FIELD_MANAGER}")),
            "{uri}"
        );
        assert!(uri.contains("force=true"), "{uri}");
        assert!(
            rv_num(&applied.outcome.resource_version) > rv_num(&same.metadata.resource_version)
        );

        // An older plan's action arriving late: superseded, the object untouched.
        let stale = deployment_action(Verb::Apply, 2, "drift at spec.replicas (older)");
        let late = h.message(11, stale.clone());
        h.publish(&late).await;
        let superseded = h.result(&stale, OutcomeResult::Superseded).await;
        assert!(!superseded.outcome.retry);
        assert!(
            superseded.outcome.message.contains("plan 12"),
            "{}",
            superseded.outcome.message
        );
        let after = h.deployments().get("web").await.unwrap();
        assert_eq!(replicas(&after), Some(3));
        assert_eq!(
            annotation(&after, PLAN_SEQ_ANNOTATION).as_deref(),
            Some("12")
        );
        assert_eq!(
            annotation(&after, ACTION_ID_ANNOTATION).as_deref(),
            Some(apply.id.as_str())
        );
        assert_eq!(
            after.metadata.generation, d.metadata.generation,
            "spec untouched"
        );

        // Exactly one outcome per delivery.
        assert_eq!(h.outcomes_of(&create.id).len(), 2);
        assert_eq!(h.outcomes_of(&apply.id).len(), 1);
        assert_eq!(h.outcomes_of(&stale.id).len(), 1);
        stop(token, handle).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_check_fencing_and_uid_and_tolerate_absence() {
    bounded(async {
        let mut h = Harness::start().await;
        let (token, handle) = h.spawn_executor("exec-d");
        let create = deployment_action(Verb::Create, 1, "missing");
        let m = h.message(5, create.clone());
        h.publish(&m).await;
        h.result(&create, OutcomeResult::Applied).await;
        let d = h.deployments().get("web").await.unwrap();
        let uid = d.metadata.uid.clone().expect("a uid");

        // Planned before the object's plan: superseded, not deleted.
        let old = delete_action(Some(&uid), "orphaned (old plan)");
        let m = h.message(4, old.clone());
        h.publish(&m).await;
        h.result(&old, OutcomeResult::Superseded).await;
        assert!(h.deployments().get_opt("web").await.unwrap().is_some());

        // Planned for another object of the same name: conflict, final, not deleted.
        let wrong = delete_action(Some("not-the-uid"), "orphaned (other uid)");
        let m = h.message(6, wrong.clone());
        h.publish(&m).await;
        let conflict = h.result(&wrong, OutcomeResult::Conflict).await;
        assert!(
            !conflict.outcome.retry,
            "a uid mismatch cannot resolve itself"
        );
        assert!(
            conflict.outcome.message.contains("not-the-uid"),
            "{}",
            conflict.outcome.message
        );
        assert!(h.deployments().get_opt("web").await.unwrap().is_some());

        // With the right uid: deleted.
        let delete = delete_action(Some(&uid), "orphaned");
        let m = h.message(7, delete.clone());
        h.publish(&m).await;
        h.result(&delete, OutcomeResult::Applied).await;
        let deployments = h.deployments();
        eventually("the deployment to be gone", WAIT, || {
            let deployments = deployments.clone();
            async move {
                deployments
                    .get_opt("web")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        })
        .await;

        // Deleting what is gone: no-op.
        let gone = delete_action(Some(&uid), "orphaned (again)");
        let m = h.message(8, gone.clone());
        h.publish(&m).await;
        let noop = h.result(&gone, OutcomeResult::NoOp).await;
        assert!(
            noop.outcome.message.contains("already gone"),
            "{}",
            noop.outcome.message
        );
        stop(token, handle).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_written_with_its_last_action_and_fenced() {
    bounded(async {
        let mut h = Harness::start().await;
        let mut app = Application::test("shop", "web").build();
        app.metadata.uid = None;
        app.metadata.resource_version = None;
        app.metadata.generation = None;
        h.applications()
            .create(&PostParams::default(), &app)
            .await
            .expect("application created");
        let (token, handle) = h.spawn_executor("exec-s");

        let status = status_action("web", "http://a.example.com/");
        let m = h.message(20, status.clone());
        h.publish(&m).await;
        h.result(&status, OutcomeResult::Applied).await;
        let written = h.applications().get("web").await.unwrap();
        let s: ApplicationStatus = written.status.clone().expect("a status");
        assert_eq!(s.url.as_deref(), Some("http://a.example.com/"));
        let last = s.last_action.expect("lastAction stamped");
        assert_eq!(
            (last.action_id.as_str(), last.plan_seq),
            (status.id.as_str(), 20)
        );

        // The same action again: no-op; an older plan's status: superseded, nothing written.
        let m = h.message(20, status.clone());
        h.publish(&m).await;
        h.result(&status, OutcomeResult::NoOp).await;
        let older = status_action("web", "http://b.example.com/");
        let m = h.message(19, older.clone());
        h.publish(&m).await;
        h.result(&older, OutcomeResult::Superseded).await;
        let after = h.applications().get("web").await.unwrap();
        assert_eq!(
            after.metadata.resource_version,
            written.metadata.resource_version
        );
        assert_eq!(
            after.status.and_then(|s| s.url).as_deref(),
            Some("http://a.example.com/")
        );

        // No Application: nothing to write status on.
        let ghost = status_action("ghost", "http://c.example.com/");
        let m = h.message(21, ghost.clone());
        h.publish(&m).await;
        let noop = h.result(&ghost, OutcomeResult::NoOp).await;
        assert!(
            noop.outcome.message.contains("gone"),
            "{}",
            noop.outcome.message
        );
        stop(token, handle).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_reported_and_the_next_action_applied() {
    bounded(async {
        let mut h = Harness::start().await;
        let (token, handle) = h.spawn_executor("exec-m");
        h.publish_raw(
            "logbook.actions.shop.web",
            Some("bad-1"),
            b"not json".to_vec(),
        )
        .await;
        h.publish_raw("logbook.actions.shop._", None, br#"{"hello": 1}"#.to_vec())
            .await;
        let create = deployment_action(Verb::Create, 1, "missing");
        let m = h.message(3, create.clone());
        h.publish(&m).await;

        let (subject, bad) = h
            .outcome("the outcome of the malformed message", |o| {
                o.outcome.action_id == "bad-1"
            })
            .await;
        assert_eq!(subject, "logbook.outcomes.shop.web");
        assert_eq!(bad.outcome.result, OutcomeResult::Failed);
        assert!(!bad.outcome.retry);
        assert!(
            bad.outcome.message.contains("malformed"),
            "{}",
            bad.outcome.message
        );
        assert_eq!(bad.target, ObjKey::new("", "", ""));
        assert_eq!(bad.app.as_deref(), Some("shop/web"));
        let (subject, unknown) = h
            .outcome("the outcome of the message without id", |o| {
                o.outcome.action_id == "unknown"
            })
            .await;
        assert_eq!(subject, "logbook.outcomes.shop._");
        assert!(
            unknown.outcome.message.contains("malformed"),
            "{}",
            unknown.outcome.message
        );

        h.result(&create, OutcomeResult::Applied).await;
        // Neither bad message comes back.
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.pull_outcomes().await;
        assert_eq!(h.outcomes_of("bad-1").len(), 1);
        stop(token, handle).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_the_action_id_as_audit_id() {
    bounded(async {
        let mut h = Harness::start().await;
        let (token, handle) = h.spawn_executor("exec-audit");
        let create = deployment_action(Verb::Create, 1, "missing");
        let m = h.message(1, create.clone());
        h.publish(&m).await;
        h.result(&create, OutcomeResult::Applied).await;
        let methods = |h: &Harness, id: &str| -> Vec<String> {
            h.requests(id).into_iter().map(|a| a.method).collect()
        };
        assert_eq!(methods(&h, &create.id), ["POST"]);
        let apply = deployment_action(Verb::Apply, 2, "drift");
        let m = h.message(2, apply.clone());
        h.publish(&m).await;
        h.result(&apply, OutcomeResult::Applied).await;
        assert_eq!(methods(&h, &apply.id), ["GET", "PATCH"]);
        let uid = h.deployments().get("web").await.unwrap().metadata.uid;
        let delete = delete_action(uid.as_deref(), "orphaned");
        let m = h.message(3, delete.clone());
        h.publish(&m).await;
        h.result(&delete, OutcomeResult::Applied).await;
        assert_eq!(methods(&h, &delete.id), ["GET", "DELETE"]);

        // The server echoes it, as the real API server does.
        let req = http::Request::get("/api/v1/namespaces/shop")
            .header("Audit-ID", "probe-1")
            .body(Vec::new())
            .unwrap();
        let res = h
            .client
            .send(req.map(kube::client::Body::from))
            .await
            .unwrap();
        assert_eq!(
            res.headers().get("audit-id").and_then(|v| v.to_str().ok()),
            Some("probe-1")
        );
        assert!(
            h.sandbox
                .faults()
                .audit_ids()
                .contains(&"probe-1".to_string())
        );
        stop(token, handle).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_leaves_its_action_to_another() {
    bounded(async {
        let mut h = Harness::start().await;
        // Writes are slow: the kill lands while the create is in flight.
        h.sandbox
            .faults()
            .set_latency(ApiVerb::Create, Duration::from_secs(3));
        let mut a = h.spawn_child("exec-a", &[]);
        let create = deployment_action(Verb::Create, 1, "missing");
        let m = h.message(1, create.clone());
        h.publish(&m).await;
        // The (slow) POST has reached the server.
        let (sandbox, id) = (&h.sandbox, create.id.clone());
        eventually("executor A to be mid-create", WAIT, || {
            let n = sandbox
                .faults()
                .audit_ids()
                .iter()
                .filter(|a| **a == id)
                .count();
            async move { (n >= 1).then_some(()) }
        })
        .await;
        nix::sys::signal::kill(a.pid(), nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
        let _ = a.child.wait();
        h.sandbox
            .faults()
            .set_latency(ApiVerb::Create, Duration::ZERO);

        let b = h.spawn_child("exec-b", &[]);
        let (_, out) = h
            .outcome("the redelivered create's outcome", |o| {
                o.outcome.action_id == create.id
                    && matches!(
                        o.outcome.result,
                        OutcomeResult::Applied | OutcomeResult::NoOp
                    )
            })
            .await;
        assert_eq!(
            out.outcome.executor, "exec-b",
            "A died before reporting: {out:?}"
        );
        assert!(out.outcome.attempt >= 2, "a redelivery: {out:?}");
        let d = h
            .deployments()
            .get("web")
            .await
            .expect("the deployment exists");
        assert_eq!(
            annotation(&d, ACTION_ID_ANNOTATION).as_deref(),
            Some(create.id.as_str())
        );
        assert_eq!(replicas(&d), Some(1));
        assert!(
            h.outcomes_of(&create.id)
                .iter()
                .all(|o| o.outcome.executor == "exec-b"),
            "the killed executor reported nothing; B's log:\n{}",
            b.log()
        );
        let _ = a.log();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_action_in_flight_then_exits_0() {
    bounded(async {
        let mut h = Harness::start().await;
        h.sandbox
            .faults()
            .set_latency(ApiVerb::Create, Duration::from_millis(1500));
        let mut child = h.spawn_child("exec-t", &["--grace", "20s"]);
        let create = deployment_action(Verb::Create, 1, "missing");
        let m = h.message(1, create.clone());
        h.publish(&m).await;
        let (sandbox, id) = (&h.sandbox, create.id.clone());
        eventually("the executor to be mid-create", WAIT, || {
            let n = sandbox
                .faults()
                .audit_ids()
                .iter()
                .filter(|a| **a == id)
                .count();
            async move { (n >= 1).then_some(()) }
        })
        .await;
        nix::sys::signal::kill(child.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = eventually("the executor to exit", WAIT, || {
            let exited = child.child.try_wait().ok().flatten();
            async move { exited }
        })
        .await;
        assert!(
            status.success(),
            "exit status {status:?}; log:\n{}",
            child.log()
        );
        // It finished the create and reported it before exiting.
        let out = h.result(&create, OutcomeResult::Applied).await;
        assert_eq!(
            (out.outcome.executor.as_str(), out.outcome.attempt),
            ("exec-t", 1)
        );
        h.deployments()
            .get("web")
            .await
            .expect("the deployment exists");
        // And acknowledged it: nothing is left for anyone.
        let mut stream = h.js.get_stream(bus::ACTIONS_STREAM).await.unwrap();
        assert_eq!(
            stream.info().await.unwrap().state.messages,
            0,
            "{}",
            child.log()
        );
    })
    .await;
}

/// `GET http://127.0.0.1:port/path`: status and body, or `None` when nothing answers.
fn admin_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_grace_turns_not_ready_then_hands_the_action_back() {
    bounded(async {
        // An ack wait longer than the test: a redelivery in time can only come from the nak.
        let mut h = Harness::start_with(Topology {
            ack_wait: Duration::from_secs(120),
            ..topology()
        })
        .await;
        // The write hangs far longer than the grace period.
        for verb in [ApiVerb::Patch, ApiVerb::Create] {
            h.sandbox
                .faults()
                .set_latency(verb, Duration::from_secs(40));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let admin = format!("127.0.0.1:{port}");
        let ack_wait = ["--ack-wait", "120s"];
        let mut a = h.spawn_child(
            "exec-a",
            &[
                ack_wait[0],
                ack_wait[1],
                "--grace",
                "2s",
                "--admin-addr",
                &admin,
            ],
        );
        eventually("exec-a to be ready", WAIT, || {
            let ready = admin_get(port, "/readyz");
            async move { (ready == Some((200, "ok\n".to_string()))).then_some(()) }
        })
        .await;
        let create = deployment_action(Verb::Create, 1, "missing");
        let m = h.message(1, create.clone());
        h.publish(&m).await;
        let (sandbox, id) = (&h.sandbox, create.id.clone());
        eventually("exec-a to be in the middle of the write", WAIT, || {
            let writing = sandbox
                .faults()
                .audited()
                .iter()
                .any(|r| r.audit_id == id && (r.method == "PATCH" || r.method == "POST"));
            async move { writing.then_some(()) }
        })
        .await;

        let stopped_at = std::time::Instant::now();
        nix::sys::signal::kill(a.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        // Not ready first, while it is still finishing.
        eventually("exec-a to report not ready", WAIT, || {
            let ready = admin_get(port, "/readyz");
            async move {
                ready
                    .filter(|(status, body)| *status == 503 && body.contains("shutting down"))
                    .map(|_| ())
            }
        })
        .await;
        let status = eventually("exec-a to exit", WAIT, || {
            let exited = a.child.try_wait().ok().flatten();
            async move { exited }
        })
        .await;
        assert!(status.success(), "exit {status:?}; log:\n{}", a.log());
        assert!(
            stopped_at.elapsed() < Duration::from_secs(5),
            "exited {:?} after SIGTERM with --grace 2s",
            stopped_at.elapsed()
        );
        assert!(a.log().contains("handed back (nak)"), "{}", a.log());

        // Another executor gets it at once, not after the ack wait.
        for verb in [ApiVerb::Patch, ApiVerb::Create] {
            h.sandbox.faults().set_latency(verb, Duration::ZERO);
        }
        let b = h.spawn_child("exec-b", &ack_wait);
        let (_, out) = h
            .outcome("the handed-back create's outcome", |o| {
                o.outcome.action_id == create.id
                    && matches!(
                        o.outcome.result,
                        OutcomeResult::Applied | OutcomeResult::NoOp
                    )
            })
            .await;
        assert_eq!(out.outcome.executor, "exec-b", "{}", b.log());
        assert_eq!(out.outcome.attempt, 2, "the second delivery: {out:?}");
        assert!(
            h.outcomes_of(&create.id)
                .iter()
                .all(|o| o.outcome.executor == "exec-b"),
            "exec-a reported nothing for what it handed back"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_permanent_ones_are_not_and_retries_end() {
    bounded(async {
        let mut h = Harness::start_with(Topology {
            max_deliver: 3,
            backoff: vec![Duration::from_millis(100), Duration::from_millis(200)],
            ..topology()
        })
        .await;
        let (token, handle) = h.spawn_executor("exec-r");
        let faults = h.sandbox.faults();
        faults.set_error_verbs(&[ApiVerb::Create]);

        // A 500: failed, to be retried; once the server recovers, applied on a redelivery.
        faults.set_error_rate(1.0, &[500]);
        let create = deployment_action(Verb::Create, 1, "missing");
        let m = h.message(1, create.clone());
        h.publish(&m).await;
        let failed = h.result(&create, OutcomeResult::Failed).await;
        assert!(failed.outcome.retry, "{failed:?}");
        assert_eq!(failed.outcome.attempt, 1);
        faults.set_error_rate(0.0, &[]);
        let applied = h.result(&create, OutcomeResult::Applied).await;
        assert!(applied.outcome.attempt >= 2, "{applied:?}");

        // A server that keeps failing: abandoned on the last allowed delivery, then left alone.
        // (500: kube's client itself retries 429, 503 and 504 before the executor sees them.)
        faults.set_error_rate(1.0, &[500]);
        let other = Action::new(
            Verb::Create,
            ObjKey::new("Deployment", "shop", "other"),
            "apps/v1",
            Some("shop/other".into()),
            Some(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "other", "namespace": "shop",
                                     "labels": {"app.kubernetes.io/managed-by": "logbook"}},
                        "spec": {"selector": {"matchLabels": {"a": "b"}},
                                 "template": {"metadata": {"labels": {"a": "b"}},
                                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}})),
            None,
            "missing".into(),
            BTreeMap::new(),
        );
        let m = h.message(2, other.clone());
        h.publish(&m).await;
        let abandoned = h.result(&other, OutcomeResult::Abandoned).await;
        assert_eq!(abandoned.outcome.attempt, 3);
        assert!(!abandoned.outcome.retry);
        assert!(abandoned.outcome.message.contains("500"), "{}", abandoned.outcome.message);
        let before: Vec<_> = h
            .outcomes_of(&other.id)
            .iter()
            .map(|o| (o.outcome.attempt, o.outcome.result, o.outcome.retry))
            .collect();
        assert_eq!(
            before,
            [
                (1, OutcomeResult::Failed, true),
                (2, OutcomeResult::Failed, true),
                (3, OutcomeResult::Abandoned, false)
            ]
        );
        faults.set_error_rate(0.0, &[]);

        // A missing namespace: failed for good, the API's message verbatim, not retried.
        let nowhere = Action::new(
            Verb::Create,
            ObjKey::new("Service", "nowhere", "svc"),
            "v1",
            None,
            Some(json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "svc", "namespace": "nowhere",
                                     "labels": {"app.kubernetes.io/managed-by": "logbook"}},
                        "spec": {"ports": [{"port": 80}]}})),
            None,
            "missing".into(),
            BTreeMap::new(),
        );
        let m = h.message(3, nowhere.clone());
        h.publish(&m).await;
        let failed = h.result(&nowhere, OutcomeResult::Failed).await;
        assert!(!failed.outcome.retry, "{failed:?}");
        assert!(failed.outcome.message.contains("404"), "{}", failed.outcome.message);
        assert!(failed.outcome.message.contains("nowhere"), "{}", failed.outcome.message);

        // Nothing comes back: the work queue is empty once every delivery is settled.
        let js = h.js.clone();
        eventually("the actions stream to be empty", WAIT, || {
            let js = js.clone();
            async move {
                let mut stream = js.get_stream(bus::ACTIONS_STREAM).await.ok()?;
                (stream.info().await.ok()?.state.messages == 0).then_some(())
            }
        })
        .await;
        h.pull_outcomes().await;
        assert_eq!(h.outcomes_of(&other.id).len(), 3);
        assert_eq!(h.outcomes_of(&nowhere.id).len(), 1);
        stop(token, handle).await;
    })
    .await;
}

/// Every kind the planner manages has the API calls an executor makes for it (so its RBAC,
/// which `tests/deploy_render.rs` checks against `API_CALLS`, lets it act).
#[test]
fn api_calls_cover_every_kind_the_planner_manages() {
    use logbook::executor::api::API_CALLS;
    use logbook::reconcile::{ApplicationReconciler, Reconciler};
    const CHILD: &[&str] = &["get", "create", "patch", "delete"];
    let planner = ApplicationReconciler::new(Default::default());
    for kind in planner.manages() {
        // (group, resource, verbs) for each kind an action can target
        let wanted: &[(&str, &str, &[&str])] = match *kind {
            "Deployment" => &[("apps", "deployments", CHILD)],
            "Service" => &[("", "services", CHILD)],
            "Ingress" => &[("networking.k8s.io", "ingresses", CHILD)],
            "Application/status" => &[
                ("logbook.dev", "applications", &["get"]),
                ("logbook.dev", "applications/status", &["patch"]),
            ],
            other => panic!("the planner manages {other}: add its calls to API_CALLS"),
        };
        for (group, resource, verbs) in wanted {
            for verb in *verbs {
                assert!(
                    API_CALLS.iter().any(|c| c.allows(group, resource, verb)),
                    "API_CALLS lacks {verb} on {group}/{resource} ({kind})"
                );
            }
        }
    }
    // The executor's remit lets exactly those kinds through, and nothing else.
    let managed: std::collections::BTreeSet<&str> = planner
        .manages()
        .iter()
        .map(|k| k.trim_end_matches("/status"))
        .collect();
    let remit: std::collections::BTreeSet<&str> = logbook::executor::remit::KINDS
        .iter()
        .map(|k| k.0)
        .collect();
    assert_eq!(managed, remit);
}
