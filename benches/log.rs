//! Log benchmarks: durable batched append (beside plain inserts of the same rows, and the
//! version-1 layout), sequential read and decode, and verify.
//! Results and the machine they ran on are recorded in benches/README.md.

use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use logbook::log::{Log, LogReader};
use logbook::record::{
    Action, Change, Json, Keys, NewEntry, ObjKey, ObservedEvent, OutcomeRecord, OutcomeResult,
    PAYLOAD_FORMAT, PlanRecord, Verb, entry_uuid,
};
use rusqlite::{Connection, params};
use serde_json::json;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

const BATCH: u64 = 1_000;
const READ_ENTRIES: u64 = 100_000;

/// A Deployment as the controller would record it (managedFields dropped): ~0.5 KiB encoded.
fn deployment(name: &str, n: u64) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "resourceVersion": n.to_string(), "generation": n % 7,
                     "labels": {"app.kubernetes.io/managed-by": "logbook", "app.kubernetes.io/name": name}},
        "spec": {"replicas": n % 5, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}},
                              "spec": {"containers": [{"name": "web", "image": format!("registry.example/{name}:1.{n}"),
                                                       "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                                       "env": [{"name": "PORT", "value": "8080"}]}]}}},
        "status": {"replicas": n % 5, "readyReplicas": n % 5, "observedGeneration": n % 7}
    })
}

/// Entry `n` of a plausible mix: 6 events, 1 plan, 1 action, 2 outcomes in every 10. Entry `n`
/// happens `n` microseconds after a fixed instant: time moves forward as in a real log (a busy
/// one: ~1,000 entries share each millisecond of the id's time prefix).
fn entry(n: u64) -> NewEntry {
    let at = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::microseconds(n as i64);
    let name = format!("app-{}", n % 97);
    let id = entry_uuid(at, "bench", &n.to_be_bytes());
    let target = ObjKey::new("Deployment", "shop", &name);
    let app = format!("shop/{name}");
    match n % 10 {
        0..=5 => NewEntry::event(
            id,
            at,
            ObservedEvent {
                change: Change::Upsert,
                key: target,
                api_version: "apps/v1".into(),
                uid: format!("uid-{name}"),
                resource_version: n.to_string(),
                object: Some(Json::from_value(&deployment(&name, n))),
                synthesized: false,
            },
            Some(&app),
        ),
        6 => NewEntry::plan(
            id,
            at,
            PlanRecord {
                upto_seq: n,
                controller_version: "0.1.0".into(),
                reconciler: "application".into(),
                scope: vec![ObjKey::new("Application", "shop", &name)],
                action_ids: vec![format!("act-{n:020x}")],
                config_digest: "sha256:0123456789abcdef".into(),
            },
        ),
        7 => {
            let mut basis = BTreeMap::new();
            basis.insert(format!("Application/shop/{name}"), n.to_string());
            let action = Action::new(
                Verb::Apply,
                target,
                "apps/v1",
                Some(app),
                Some(deployment(&name, n)),
                None,
                "drift at spec.replicas".into(),
                basis,
            );
            NewEntry::action(id, at, n - 1, action)
        }
        _ => NewEntry::outcome(
            id,
            at,
            Keys::for_object(&target, Some(&app)),
            OutcomeRecord {
                action_id: format!("act-{n:020x}"),
                result: OutcomeResult::Applied,
                message: "applied".into(),
                executor: "executor-1".into(),
                attempt: 1,
                resource_version: Some(n.to_string()),
                retry: false,
            },
        ),
    }
}

fn batch(start: u64) -> Vec<NewEntry> {
    (start..start + BATCH).map(entry).collect()
}

/// Where the bench logs go: `LOGBOOK_BENCH_DIR`, else the system's temporary directory (it must
/// be a real disk, not tmpfs, for the durable-append figure to mean anything).
fn tempdir() -> tempfile::TempDir {
    let base = std::env::var_os("LOGBOOK_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    match tempfile::tempdir_in(&base) {
        Ok(d) => d,
        Err(e) => panic!(
            "cannot create a directory for the bench log in {}: {e}",
            base.display()
        ),
    }
}

/// A log of the version-1 layout (the schema logbook wrote before version 2, kept as a test
/// fixture), for the same-run comparison of `append_1000_durable_v1`.
const V1_SCHEMA: &str = include_str!("../tests/log/fixtures/log_v1.sql");

fn create_v1(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{V1_SCHEMA}\nCOMMIT;"))
        .unwrap_or_else(|e| panic!("{e}"));
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The table of `plain_insert_1000_durable`: the columns (and checks) of the log's `entries`,
/// no `UNIQUE` on id, no other index, no triggers.
const PLAIN_SCHEMA: &str = "CREATE TABLE entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL CHECK (length(id) = 16),
    at_ns INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind = 'event' OR kind = 'plan' OR kind = 'action'
        OR kind = 'outcome' OR kind = 'marker'),
    namespace TEXT, application TEXT, object_kind TEXT, object_name TEXT,
    format INTEGER NOT NULL CHECK (format > 0),
    payload BLOB NOT NULL,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT";

/// A connection for plain inserts, set up as the log's writer sets up its own (src/log/store.rs):
/// WAL, `synchronous = FULL`, the same checkpoint interval and page cache.
fn plain_table(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = 16384; PRAGMA journal_size_limit = 67108864; \
         PRAGMA cache_size = -65536; {PLAIN_SCHEMA};"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    conn
}

/// The rows of `batch` inserted in one transaction: each payload encoded as `Log::append`
/// encodes it, no hash (zero bytes in the hash columns), no id lookup.
fn plain_insert(conn: &mut Connection, next_seq: &mut i64, batch: &[NewEntry]) {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap_or_else(|e| panic!("{e}"));
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO entries (seq, id, at_ns, kind, namespace, application, object_kind, \
                 object_name, format, payload, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let zero = [0u8; 32];
        for e in batch {
            *next_seq += 1;
            let payload = e.body.encode().unwrap_or_else(|e| panic!("{e}"));
            insert
                .execute(params![
                    *next_seq,
                    e.id.as_bytes().as_slice(),
                    e.at.timestamp_nanos_opt().unwrap_or_default(),
                    e.kind().as_str(),
                    e.keys.namespace.as_deref(),
                    e.keys.application.as_deref(),
                    e.keys.object_kind.as_deref(),
                    e.keys.object_name.as_deref(),
                    i64::from(PAYLOAD_FORMAT),
                    payload,
                    zero.as_slice(),
                    zero.as_slice(),
                ])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    tx.commit().unwrap_or_else(|e| panic!("{e}"));
}

/// Durable batched append, next to what the same rows cost without the log's work (hashing,
/// id lookups, audit keys) and what they cost in the version-1 layout: one group, one run, so
/// the machine's load is alike for all three. Each writes its own file, removed before the
/// next starts (a run appends close to a million entries to each).
fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(BATCH));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(15));
    {
        let dir = tempdir();
        let mut log = Log::open(&dir.path().join("bench.db")).unwrap_or_else(|e| panic!("{e}"));
        let mut next = 0u64;
        group.bench_function("append_1000_durable", |b| {
            b.iter_batched(
                || {
                    next += BATCH;
                    batch(next)
                },
                |batch| black_box(log.append(&batch).unwrap_or_else(|e| panic!("{e}"))),
                BatchSize::PerIteration,
            )
        });
    }
    {
        let dir = tempdir();
        let mut plain = plain_table(&dir.path().join("plain.db"));
        let (mut next, mut seq) = (0u64, 0i64);
        group.bench_function("plain_insert_1000_durable", |b| {
            b.iter_batched(
                || {
                    next += BATCH;
                    batch(next)
                },
                |batch| plain_insert(&mut plain, &mut seq, &batch),
                BatchSize::PerIteration,
            )
        });
    }
    {
        let dir = tempdir();
        let path = dir.path().join("bench-v1.db");
        create_v1(&path);
        let mut v1 = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut next = 0u64;
        group.bench_function("append_1000_durable_v1", |b| {
            b.iter_batched(
                || {
                    next += BATCH;
                    batch(next)
                },
                |batch| black_box(v1.append(&batch).unwrap_or_else(|e| panic!("{e}"))),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempdir();
    let path = dir.path().join("bench.db");
    {
        let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
        for start in (0..READ_ENTRIES).step_by(BATCH as usize) {
            log.append(&batch(start)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(READ_ENTRIES));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("read_decode_sequential", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for e in reader.range(..) {
                let e = e.unwrap_or_else(|e| panic!("{e}"));
                n += black_box(&e).seq & 1;
            }
            n
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            let report = reader.verify().unwrap_or_else(|e| panic!("{e}"));
            assert!(report.is_ok(), "{report}");
            report.checked
        })
    });
    group.finish();
}

/// The same scan over Outcome entries only (no embedded Kubernetes objects): the cost of the
/// log itself, without building `serde_json::Value` trees.
fn read_small(c: &mut Criterion) {
    let dir = tempdir();
    let path = dir.path().join("bench-small.db");
    {
        let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
        for start in (0..READ_ENTRIES).step_by(BATCH as usize) {
            let batch: Vec<NewEntry> = (start..start + BATCH)
                .map(|n| entry(n / 10 * 10 + 8 + n % 2))
                .collect();
            let batch: Vec<NewEntry> = batch
                .into_iter()
                .enumerate()
                .map(|(i, mut e)| {
                    e.id = entry_uuid(e.at, "bench-small", &(start + i as u64).to_be_bytes());
                    e
                })
                .collect();
            log.append(&batch).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(READ_ENTRIES));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("read_decode_sequential_outcomes", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for e in reader.range(..) {
                let e = e.unwrap_or_else(|e| panic!("{e}"));
                n += black_box(&e).seq & 1;
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, append, read, read_small);
criterion_main!(benches);
