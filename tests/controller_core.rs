//! The controller's core without a cluster or NATS: inputs in, log entries out.
//! Relists record nothing new, vanished objects become synthesized deletes, outcomes are kept
//! once, resyncs are recorded, and planning waits for every watch to have listed once.

use chrono::{TimeZone, Utc};
use logbook::bus::wire::OutcomeMessage;
use logbook::controller::core::{Core, Input};
use logbook::log::{Log, LogReader};
use logbook::model::Application;
use logbook::reconcile::PlannerConfig;
use logbook::record::{Body, Change, Entry, MarkerKind, ObjKey, OutcomeRecord, OutcomeResult};
use logbook_testkit::AppTest;
use serde_json::{Value, json};
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    core: Core,
}

const KINDS: [&str; 4] = ["Application", "Deployment", "Service", "Ingress"];

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let log = Log::open(&path).unwrap();
    let (notify, _) = tokio::sync::watch::channel(0);
    let core = Core::new(
        log,
        PlannerConfig::default(),
        KINDS.to_vec(),
        Duration::ZERO,
        notify,
    )
    .unwrap();
    Fixture {
        _dir: dir,
        path,
        core,
    }
}

impl Fixture {
    fn feed(&mut self, inputs: Vec<Input>) {
        assert!(!self.core.handle(inputs).unwrap());
    }
    fn entries(&self) -> Vec<Entry> {
        LogReader::open(&self.path)
            .unwrap()
            .range(..)
            .map(|e| e.unwrap())
            .collect()
    }
    fn events(&self) -> Vec<(Change, String, bool)> {
        self.entries()
            .iter()
            .filter_map(|e| match &e.body {
                Body::Event(ev) => Some((ev.change, ev.key.to_string(), ev.synthesized)),
                _ => None,
            })
            .collect()
    }
    fn plans(&self) -> Vec<(u64, usize, usize)> {
        self.entries()
            .iter()
            .filter_map(|e| match &e.body {
                Body::Plan(p) => Some((p.upto_seq, p.scope.len(), p.action_ids.len())),
                _ => None,
            })
            .collect()
    }
    /// Lists every kind, with `objects` in the first list.
    fn list_all(&mut self, objects: Vec<Value>) {
        let mut inputs = Vec::new();
        for (i, kind) in KINDS.iter().enumerate() {
            inputs.push(Input::ListStart(kind));
            if i == 0 {
                inputs.extend(objects.iter().cloned().map(Input::Seen));
            }
            inputs.push(Input::ListDone(kind));
        }
        self.feed(inputs);
    }
}

fn app(name: &str, rv: &str) -> Value {
    let mut v = serde_json::to_value(Application::test("shop", name).build()).unwrap();
    v["apiVersion"] = json!("logbook.dev/v1alpha1");
    v["kind"] = json!("Application");
    v["metadata"]["uid"] = json!(format!("uid-{name}"));
    v["metadata"]["resourceVersion"] = json!(rv);
    v["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
    v
}

#[test]
fn nothing_is_planned_before_every_watch_has_listed_then_a_full_plan() {
    let mut f = fixture();
    f.feed(vec![
        Input::ListStart("Application"),
        Input::Seen(app("web", "1")),
        Input::ListDone("Application"),
    ]);
    assert!(
        f.plans().is_empty(),
        "planned before Deployments were listed"
    );
    f.list_all(vec![app("web", "1")]);
    let plans = f.plans();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].1, 0, "the first plan is a full one (empty scope)");
    assert_eq!(plans[0].2, 3, "Deployment, Service and status");
    // managedFields are never recorded.
    let stored = f.entries().iter().find_map(|e| match &e.body {
        Body::Event(ev) => ev.object.clone(),
        _ => None,
    });
    assert!(!stored.unwrap().as_str().contains("managedFields"));
}

#[test]
fn a_relist_that_brings_nothing_new_adds_nothing_and_vanished_objects_become_synthesized_deletes() {
    let mut f = fixture();
    f.list_all(vec![app("web", "1"), app("api", "2")]);
    let before = f.entries().len();
    // The same objects again (a relist after a broken watch): nothing recorded.
    f.list_all(vec![app("web", "1"), app("api", "2")]);
    assert_eq!(
        f.entries().len(),
        before,
        "a relist with nothing new added entries"
    );
    // A relist without `api`: it vanished while the watch was down.
    f.list_all(vec![app("web", "1")]);
    let events = f.events();
    assert_eq!(
        events.last().unwrap(),
        &(Change::Delete, "Application/shop/api".to_string(), true)
    );
    assert_eq!(events.iter().filter(|e| e.2).count(), 1);
    // The same update twice in one batch is recorded once; a real delete once.
    f.feed(vec![
        Input::Seen(app("web", "5")),
        Input::Seen(app("web", "5")),
    ]);
    f.feed(vec![
        Input::Deleted(app("web", "6")),
        Input::Deleted(app("web", "6")),
    ]);
    let events = f.events();
    let web: Vec<_> = events
        .iter()
        .filter(|e| e.1 == "Application/shop/web")
        .collect();
    assert_eq!(web.len(), 3, "{web:?}");
    assert_eq!(
        web[2],
        &(Change::Delete, "Application/shop/web".to_string(), false)
    );
}

#[test]
fn outcomes_are_recorded_once_and_resyncs_are_recorded_and_plan_everything() {
    let mut f = fixture();
    f.list_all(vec![app("web", "1")]);
    let action_id = f
        .entries()
        .iter()
        .find_map(|e| match &e.body {
            Body::Action(a) => Some(a.action.id.clone()),
            _ => None,
        })
        .unwrap();
    let msg = OutcomeMessage {
        at: Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap(),
        target: ObjKey::new("Deployment", "shop", "web"),
        app: Some("shop/web".into()),
        outcome: OutcomeRecord {
            action_id: action_id.clone(),
            result: OutcomeResult::Applied,
            message: String::new(),
            executor: "ex-1".into(),
            attempt: 1,
            resource_version: Some("9".into()),
            retry: false,
        },
    };
    for _ in 0..2 {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        f.feed(vec![Input::Outcomes(vec![msg.clone(), msg.clone()], tx)]);
        assert_eq!(rx.try_recv().unwrap(), Ok(()), "committed");
    }
    let outcomes = f
        .entries()
        .iter()
        .filter(|e| matches!(e.body, Body::Outcome(_)))
        .count();
    assert_eq!(outcomes, 1, "a redelivered outcome is kept once");
    // Applied but not yet observed: still pending, so a resync does not ask for it again.
    assert!(
        f.core
            .fold()
            .world()
            .pending(&ObjKey::new("Deployment", "shop", "web"))
            .is_some()
    );
    f.feed(vec![Input::Resync]);
    let entries = f.entries();
    let resync = entries
        .iter()
        .position(|e| matches!(&e.body, Body::Marker(m) if m.marker == MarkerKind::Resync))
        .unwrap();
    match &entries[resync + 1].body {
        Body::Plan(p) => {
            assert!(p.scope.is_empty(), "a resync plans the whole world");
            assert!(
                !p.action_ids.contains(&action_id),
                "asked again for what is on its way"
            );
        }
        other => panic!("expected a plan after the resync marker, got {other:?}"),
    }
}
