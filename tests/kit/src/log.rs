//! Shared fixtures of the log tests: sample entries of every kind and raw-SQL access to copies.
//! Used by `tests/log/` and `tests/commands/audit.rs`; holds no assertions of its own.

use chrono::{DateTime, TimeZone, Utc};
use logbook::record::{
    Action, Change, Json, Keys, MarkerKind, NewEntry, ObjKey, ObservedEvent, OutcomeRecord,
    OutcomeResult, PlanRecord, Verb, entry_uuid,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A timestamp with nanoseconds, `n` milliseconds after a fixed instant.
pub fn at(n: i64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2025, 3, 14, 3, 12, 0)
        .single()
        .unwrap_or_default();
    base + chrono::Duration::milliseconds(n) + chrono::Duration::nanoseconds(123_457)
}

/// A Deployment-like object with nested maps, arrays, numbers of every sort, nulls and unicode.
pub fn deployment(name: &str, replicas: i64) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "logbook", "app": name},
            "annotations": {},
            "resourceVersion": "1042",
            "uid": format!("uid-{name}"),
        },
        "spec": {
            "replicas": replicas,
            "paused": false,
            "progressDeadlineSeconds": null,
            "ratio": 0.25,
            "negative": -17,
            "big": u64::MAX,
            "small": i64::MIN,
            "template": {"spec": {"containers": [
                {"name": "web", "image": "registry.example/shop:1.2.3", "ports": [{"containerPort": 8080}],
                 "env": [{"name": "GREETING", "value": "привет, 世界 ✓"}], "args": []}
            ]}},
            "empty": [],
            "mixed": [1, "two", 3.5, null, {"four": [4]}, [[]], true],
        }
    })
}

pub fn event(name: &str, rv: u64) -> NewEntry {
    let key = ObjKey::new("Deployment", "shop", name);
    let uid = format!("uid-{name}");
    let ev = ObservedEvent {
        change: Change::Upsert,
        key,
        api_version: "apps/v1".into(),
        uid: uid.clone(),
        resource_version: rv.to_string(),
        object: Some(Json::from_value(&deployment(name, rv as i64 % 5))),
        synthesized: false,
    };
    let when = at(rv as i64);
    let id = entry_uuid(when, "event", format!("{uid}/{rv}/upsert").as_bytes());
    NewEntry::event(id, when, ev, Some(&format!("shop/{name}")))
}

pub fn delete_event(name: &str, rv: u64) -> NewEntry {
    let key = ObjKey::new("Service", "shop", name);
    let ev = ObservedEvent {
        change: Change::Delete,
        key,
        api_version: "v1".into(),
        uid: format!("svc-{name}"),
        resource_version: rv.to_string(),
        object: None,
        synthesized: true,
    };
    let when = at(rv as i64);
    let id = entry_uuid(when, "event", format!("svc-{name}/{rv}/delete").as_bytes());
    NewEntry::event(id, when, ev, Some(&format!("shop/{name}")))
}

pub fn action(name: &str) -> Action {
    let mut basis = BTreeMap::new();
    basis.insert(format!("Application/shop/{name}"), "7".to_string());
    Action::new(
        Verb::Apply,
        ObjKey::new("Deployment", "shop", name),
        "apps/v1",
        Some(format!("shop/{name}")),
        Some(deployment(name, 3)),
        None,
        "drift at spec.replicas".into(),
        basis,
    )
}

pub fn plan(upto: u64, action_ids: Vec<String>) -> NewEntry {
    let rec = PlanRecord {
        upto_seq: upto,
        controller_version: "0.1.0".into(),
        reconciler: "application".into(),
        scope: vec![
            ObjKey::new("Application", "shop", "web"),
            ObjKey::new("Ingress", "", "shared"),
        ],
        action_ids,
        config_digest: "sha256:abc".into(),
    };
    let when = at(upto as i64 + 1);
    NewEntry::plan(
        entry_uuid(when, "plan", format!("plan/{upto}").as_bytes()),
        when,
        rec,
    )
}

pub fn action_entry(plan_seq: u64, a: Action) -> NewEntry {
    let when = at(plan_seq as i64 + 2);
    let id = entry_uuid(when, "action", format!("{plan_seq}/{}", a.id).as_bytes());
    NewEntry::action(id, when, plan_seq, a)
}

pub fn outcome(a: &Action, attempt: u32, result: OutcomeResult) -> NewEntry {
    let rec = OutcomeRecord {
        action_id: a.id.clone(),
        result,
        message: "applied with field manager logbook".into(),
        executor: "executor-0".into(),
        attempt,
        resource_version: Some("1043".into()),
        retry: false,
    };
    let when = at(50 + i64::from(attempt));
    let id = entry_uuid(when, "outcome", format!("{}/{attempt}", a.id).as_bytes());
    NewEntry::outcome(id, when, Keys::for_object(&a.target, a.app.as_deref()), rec)
}

pub fn marker(kind: MarkerKind, n: u64) -> NewEntry {
    let mut detail = BTreeMap::new();
    detail.insert("version", json!("0.1.0"));
    detail.insert("n", json!(n));
    detail.insert(
        "config",
        json!({"executors": 3, "nats": {"url": "nats://127.0.0.1:4222", "tls": null}}),
    );
    let when = at(n as i64);
    NewEntry::marker(
        entry_uuid(when, "marker", format!("{kind:?}/{n}").as_bytes()),
        when,
        kind,
        json!(detail),
    )
}

/// One entry of every kind (and both kinds of event), in a plausible order.
pub fn one_of_each() -> Vec<NewEntry> {
    let a = action("web");
    vec![
        marker(MarkerKind::Start, 0),
        event("web", 1),
        delete_event("old", 2),
        plan(3, vec![a.id.clone()]),
        action_entry(4, a.clone()),
        outcome(&a, 1, OutcomeResult::Applied),
        marker(MarkerKind::Leadership, 7),
    ]
}

/// `n` distinct entries cycling through every kind.
pub fn many(n: u64) -> Vec<NewEntry> {
    (0..n)
        .map(|i| match i % 5 {
            0 => event(&format!("app-{}", i % 7), 1000 + i),
            1 => plan(i, vec![format!("act-{i}")]),
            2 => {
                let mut a = action(&format!("app-{}", i % 7));
                a.reason = format!("reason {i}");
                action_entry(i, a)
            }
            3 => {
                let a = action(&format!("app-{}", i % 7));
                outcome(&a, i as u32, OutcomeResult::NoOp)
            }
            _ => marker(MarkerKind::Config, i),
        })
        .collect()
}

/// A raw SQLite connection to a copy of a log, for tampering (no logbook code involved).
pub fn raw(path: &Path) -> rusqlite::Connection {
    match rusqlite::Connection::open(path) {
        Ok(c) => c,
        Err(e) => panic!("cannot open {} with SQLite: {e}", path.display()),
    }
}

/// Runs `sql` on `conn`, panicking with the statement on failure.
pub fn exec(conn: &rusqlite::Connection, sql: &str) {
    if let Err(e) = conn.execute_batch(sql) {
        panic!("`{sql}` failed: {e}");
    }
}

/// Copies a closed log (and any WAL it left) to `to`.
pub fn copy_log(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    for suffix in ["-wal", "-shm"] {
        let f = format!("{}{suffix}", from.display());
        if Path::new(&f).exists() {
            std::fs::copy(&f, format!("{}{suffix}", to.display()))
                .unwrap_or_else(|e| panic!("copy {f}: {e}"));
        }
    }
}

/// Fails the test if it has run longer than `limit`.
pub struct Deadline(Instant, Duration);

impl Deadline {
    pub fn after(limit: Duration) -> Deadline {
        Deadline(Instant::now(), limit)
    }

    pub fn check(&self, what: &str) {
        assert!(
            self.0.elapsed() < self.1,
            "{what}: took longer than {:?}",
            self.1
        );
    }

    pub fn expired(&self) -> bool {
        self.0.elapsed() >= self.1
    }

    pub fn remaining(&self) -> Duration {
        self.1.saturating_sub(self.0.elapsed())
    }
}
