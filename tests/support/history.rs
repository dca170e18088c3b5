//! A recorded history without a cluster or NATS: the real controller core records and plans,
//! and a model API server with a perfect executor (`logbook::fixtures`) carries the actions
//! out, feeding back watch events and outcomes as the live loop would.

#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use logbook::bus::wire::OutcomeMessage;
use logbook::controller::core::{Core, Input};
use logbook::fixtures::{apply_merge, server_defaults};
use logbook::log::{Log, LogReader};
use logbook::model::Application;
use logbook::reconcile::PlannerConfig;
use logbook::record::{Body, Entry, ObjKey, OutcomeRecord, OutcomeResult, Verb};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const KINDS: [&str; 4] = ["Application", "Deployment", "Service", "Ingress"];

/// A log being written by the real core, and the model cluster it controls.
pub struct History {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    core: Core,
    /// The cluster as the model API server holds it.
    pub cluster: BTreeMap<ObjKey, Value>,
    rv: u64,
    /// Action entries carried out so far (by seq).
    done: u64,
    /// Outcome timestamps: deterministic, one second apart.
    tick: i64,
}

impl History {
    /// An empty cluster, every watch listed, under `config`.
    pub fn new(config: PlannerConfig) -> History {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log.db");
        let log = Log::open(&path).expect("a new log");
        let (notify, _) = tokio::sync::watch::channel(0);
        let mut core = Core::new(log, config, KINDS.to_vec(), Duration::ZERO, notify)
            .expect("the core starts");
        core.start(json!({"version": "test"}))
            .expect("start markers");
        let mut h = History {
            dir,
            path,
            core,
            cluster: BTreeMap::new(),
            rv: 100,
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
        self.rv += 1;
        self.rv
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
            .get(&key)
            .and_then(|o| o.pointer("/metadata/creationTimestamp").cloned())
            .unwrap_or_else(|| json!(format!("2026-01-01T00:{:02}:00Z", rv % 60)));
        v["metadata"]["uid"] = json!(format!("uid-{ns}-{name}"));
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        v["metadata"]["creationTimestamp"] = created;
        if let Some(status) = self.cluster.get(&key).and_then(|o| o.get("status")) {
            v["status"] = status.clone();
        }
        self.cluster.insert(key, v.clone());
        Input::Seen(v)
    }

    /// Deletes an Application and, as the garbage collector would, its owned children.
    pub fn delete_app(&mut self, ns: &str, name: &str) {
        let key = ObjKey::new("Application", ns, name);
        let Some(v) = self.cluster.remove(&key) else {
            return;
        };
        let mut inputs = vec![Input::Deleted(v)];
        let owned: Vec<ObjKey> = self
            .cluster
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
            if let Some(o) = self.cluster.remove(&k) {
                inputs.push(Input::Deleted(o));
            }
        }
        self.feed(inputs);
    }

    /// A human edits a child by hand (e.g. `kubectl scale`).
    pub fn hand_edit(&mut self, key: &ObjKey, edit: impl FnOnce(&mut Value)) {
        let rv = self.next_rv();
        let Some(o) = self.cluster.get_mut(key) else {
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
                let mut object = self.cluster.get(&a.target).cloned().unwrap_or(json!({}));
                apply_merge(&mut object, desired);
                server_defaults(&mut object, &format!("uid-{}", a.target), rv);
                object["metadata"]["resourceVersion"] = json!(rv.to_string());
                object["metadata"]["annotations"]["logbook.dev/action-id"] = json!(a.id);
                object["metadata"]["annotations"]["logbook.dev/plan-seq"] =
                    json!(plan_seq.to_string());
                self.cluster.insert(a.target.clone(), object.clone());
                inputs.push(Input::Seen(object));
            }
            Verb::Delete => {
                if let Some(o) = self.cluster.remove(&a.target) {
                    inputs.push(Input::Deleted(o));
                }
            }
            Verb::Status => {
                let Some(o) = self.cluster.get_mut(&a.target) else {
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
        let (tx, _rx) = tokio::sync::oneshot::channel();
        inputs.push(Input::Outcomes(vec![msg], tx));
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
    let mut h = History::new(config);
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
