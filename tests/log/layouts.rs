//! The log's two schema layouts. New logs (version 2) keep audit keys in the `audit` table; logs created as
//! version 1 (built here from the frozen schema in `fixtures/log_v1.sql`) keep their indexes and
//! still open, answer `audit log --app`/`--object` and `why`, verify and take appends. Both
//! answer every filter exactly as a scan of all entries does, and the queries behind
//! `audit log --app`, `--object` and `why` search the audit keys (version 2) or an index
//! (version 1): no scan of a table, no sort.

use chrono::{DateTime, TimeZone, Utc};
use logbook::log::store::{OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};
use logbook::log::{Filter, Log, LogReader};
use logbook::record::{
    Change, Entry, EntryKind, Keys, MarkerKind, NewEntry, ObjKey, ObservedEvent, OutcomeRecord,
    OutcomeResult, PlanRecord, entry_uuid,
};
use logbook_testkit::log::{many, one_of_each, raw};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The schema of version-1 logs, as logbook created them before version 2.
const V1_SCHEMA: &str = include_str!("fixtures/log_v1.sql");

/// Entries enough to fill several spans of 4096.
const SPANNING: u64 = 10_000;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"))
}

/// Creates an empty version-1 log at `path`, the way logbook before version 2 did.
fn create_v1(path: &Path) {
    let conn = raw(path);
    conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{V1_SCHEMA}\nCOMMIT;"))
        .unwrap_or_else(|e| panic!("the version-1 schema: {e}"));
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("WAL mode: {e}"));
    assert_eq!(mode, "wal");
}

/// `user_version`, the meta `version` and the names of the indexes on `entries`.
fn layout(path: &Path) -> (i64, String, Vec<String>) {
    let conn = raw(path);
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let version: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'entries' \
             AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|n| n.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    (user_version, version, names)
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::milliseconds(ms)
}

/// Entry `n` of a varied log: events of Deployments and Services of 13 Applications, of a
/// cluster-scoped Namespace (no namespace key) and of an Application with no keys but its kind;
/// plans and markers (no keys); outcomes stamped by an executor's clock a few seconds behind,
/// so time does not follow seq.
fn varied(n: u64) -> NewEntry {
    let name = format!("app-{}", n % 13);
    let app = format!("shop/{name}");
    let at = time(n as i64 * 10);
    let id = entry_uuid(at, "layouts", &n.to_be_bytes());
    let event = |key: ObjKey, app: Option<&str>| {
        NewEntry::event(
            id,
            at,
            ObservedEvent {
                change: Change::Upsert,
                key,
                api_version: "v1".into(),
                uid: format!("uid-{n}"),
                resource_version: n.to_string(),
                object: None,
                synthesized: false,
            },
            app,
        )
    };
    match n % 10 {
        0..=2 => event(ObjKey::new("Deployment", "shop", &name), Some(&app)),
        3 => event(ObjKey::new("Service", "shop", &name), Some(&app)),
        4 if n % 20 == 4 => event(ObjKey::new("Namespace", "", "shop"), None),
        4 => event(ObjKey::new("Service", "other", &name), None),
        5 => NewEntry::plan(
            id,
            at,
            PlanRecord {
                upto_seq: n,
                controller_version: "0.1.0".into(),
                reconciler: "application".into(),
                scope: vec![],
                action_ids: vec![],
                config_digest: "sha256:0".into(),
            },
        ),
        6..=8 => NewEntry::outcome(
            id,
            time(n as i64 * 10 - 3_000),
            Keys::for_object(&ObjKey::new("Deployment", "shop", &name), Some(&app)),
            OutcomeRecord {
                action_id: format!("act-{n}"),
                result: OutcomeResult::Applied,
                message: String::new(),
                executor: "executor-1".into(),
                attempt: 1,
                resource_version: None,
                retry: false,
            },
        ),
        _ => NewEntry::marker(id, at, MarkerKind::Tick, json!({ "n": n })),
    }
}

/// Appends `entries` to the log at `path` in batches of 700 (batches cross span boundaries).
fn fill(path: &Path, entries: &[NewEntry]) {
    fill_in(path, entries, 700);
}

/// Appends `entries` to the log at `path` in batches of `size`.
fn fill_in(path: &Path, entries: &[NewEntry], size: usize) {
    let mut log = Log::open(path).unwrap_or_else(|e| panic!("{e}"));
    for chunk in entries.chunks(size) {
        log.append(chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    log.close().unwrap_or_else(|e| panic!("{e}"));
}

/// What `filter` must return, worked out from every entry.
fn expected(all: &[Entry], f: &Filter) -> Vec<u64> {
    let object = f.object.as_ref().map(|o| Keys::for_object(o, None));
    let ns = |t: &DateTime<Utc>| t.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let mut seqs: Vec<u64> = all
        .iter()
        .filter(|e| {
            f.application
                .as_ref()
                .is_none_or(|a| e.keys.application.as_ref() == Some(a))
                && f.namespace
                    .as_ref()
                    .is_none_or(|n| e.keys.namespace.as_ref() == Some(n))
                && object.as_ref().is_none_or(|o| {
                    (&o.object_kind, &o.object_name, &o.namespace)
                        == (&e.keys.object_kind, &e.keys.object_name, &e.keys.namespace)
                })
                && (f.kinds.is_empty() || f.kinds.contains(&e.kind()))
                && f.since.is_none_or(|s| ns(&e.at) >= ns(&s))
                && f.until.is_none_or(|u| ns(&e.at) < ns(&u))
                && f.from_seq.is_none_or(|s| e.seq >= s)
                && f.to_seq.is_none_or(|s| e.seq <= s)
        })
        .map(|e| e.seq)
        .collect();
    if let Some(n) = f.limit {
        seqs.truncate(n);
    }
    seqs
}

fn seqs(reader: &LogReader, f: &Filter) -> Vec<u64> {
    reader
        .query(f)
        .map(|e| e.unwrap_or_else(|e| panic!("{f:?}: {e}")).seq)
        .collect()
}

/// The filters audits build: `audit log` (Application, object, kind, namespace, time and seq
/// windows), `why` (an object's entries of one kind up to a time, or up to a seq), export.
fn filters() -> Vec<Filter> {
    let dep = ObjKey::new("Deployment", "shop", "app-3");
    let svc = ObjKey::new("Service", "shop", "app-12");
    let cluster = ObjKey::new("Namespace", "", "shop");
    let mut all = vec![
        Filter::new().application("shop/app-3"),
        Filter::new().application("shop/nobody"),
        Filter::new().object(&dep),
        Filter::new().object(&svc),
        Filter::new().object(&cluster),
        Filter::new().object(&ObjKey::new("Service", "other", "app-5")),
        Filter::new().object(&ObjKey::new("Deployment", "shop", "nobody")),
        Filter::new().object(&ObjKey::new("", "shop", "app-3")),
        Filter::new().application("shop/app-3").object(&dep),
        Filter::new()
            .application("shop/app-3")
            .kinds(&[EntryKind::Outcome]),
        Filter::new()
            .application("shop/app-4")
            .kinds(&[EntryKind::Event, EntryKind::Outcome])
            .between(Some(time(30_000)), Some(time(70_000))),
        Filter::new().kinds(&[EntryKind::Plan]),
        Filter::new().kinds(&[EntryKind::Marker]).seqs(4000..=9000),
        Filter::new().kinds(&[EntryKind::Event, EntryKind::Action, EntryKind::Outcome]),
        Filter::new().namespace("other"),
        Filter::new().namespace("shop").object(&dep),
        Filter::new().between(Some(time(50_000)), None),
        Filter::new().between(None, Some(time(2_000))),
        Filter::new().application("shop/app-3").limit(5),
        Filter::new().object(&dep).seqs(4000..=4200).limit(3),
        Filter::new().limit(0).object(&dep),
    ];
    // Seq windows across span boundaries (4096, 8192), as `--follow` and chunked reads use.
    for (from, to) in [
        (1, 4095),
        (4090, 4100),
        (4096, 4096),
        (8000, 8300),
        (9990, 20_000),
    ] {
        all.push(Filter::new().application("shop/app-1").seqs(from..=to));
        all.push(Filter::new().object(&dep).seqs(from..=to));
        all.push(Filter::new().object(&cluster).seqs(from..));
    }
    // What `why` asks for: each kind of an object up to a moment, and the events and actions a
    // plan read (up to its seq).
    for kind in [
        EntryKind::Event,
        EntryKind::Outcome,
        EntryKind::Marker,
        EntryKind::Action,
    ] {
        all.push(Filter {
            object: Some(dep.clone()),
            kinds: vec![kind],
            until: Some(time(60_000)),
            ..Filter::new()
        });
        all.push(Filter {
            object: Some(dep.clone()),
            kinds: vec![kind],
            to_seq: Some(7777),
            ..Filter::new()
        });
    }
    all
}

#[test]
fn both_layouts_answer_every_filter_as_a_scan_of_all_entries_does() {
    let dir = tempdir();
    let entries: Vec<NewEntry> = (0..SPANNING).map(varied).collect();
    let v1 = dir.path().join("v1.db");
    create_v1(&v1);
    fill(&v1, &entries);
    let v2 = dir.path().join("v2.db");
    fill(&v2, &entries);
    // Appended two at a time, as a controller does: one audit row per key per entry or two,
    // so a key has more rows than one read of them takes.
    let small = dir.path().join("v2-small-batches.db");
    fill_in(&small, &entries[..1500], 2);
    assert_eq!(layout(&v1).0, OLDEST_SCHEMA_VERSION);
    assert_eq!(layout(&v2).0, SCHEMA_VERSION);

    for (path, n) in [(&v1, SPANNING), (&v2, SPANNING), (&small, 1500)] {
        let reader = LogReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<Entry> = reader
            .range(..)
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(all.len() as u64, n);
        for f in filters() {
            let want = expected(&all, &f);
            assert_eq!(seqs(&reader, &f), want, "{} with {f:?}", path.display());
        }
        // `last_about` (how replay finds the checkpoint nearest a seq): the last entry about an
        // object at or before a seq, across spans, as a scan of all entries finds it.
        for object in [
            ObjKey::new("Deployment", "shop", "app-3"),
            ObjKey::new("Namespace", "", "shop"),
            ObjKey::new("Deployment", "shop", "nobody"),
        ] {
            for upto in [0, 1, 4095, 4096, 4097, 8191, 9000, n, n + 50] {
                let want = all
                    .iter()
                    .rev()
                    .find(|e| {
                        let o = Keys::for_object(&object, None);
                        e.seq <= upto
                            && (&o.object_kind, &o.object_name, &o.namespace)
                                == (&e.keys.object_kind, &e.keys.object_name, &e.keys.namespace)
                    })
                    .map(|e| e.seq);
                let got = reader
                    .last_about(&object, upto)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    got,
                    want,
                    "{}: last about {object} up to {upto}",
                    path.display()
                );
            }
        }
        // Enough matches to take several chunks of 1024, across every span.
        let busy = Filter::new().kinds(&[EntryKind::Outcome]);
        assert_eq!(seqs(&reader, &busy), expected(&all, &busy));
        let report = reader.verify().unwrap_or_else(|e| panic!("{e}"));
        assert!(report.is_ok(), "{report}");
    }
}

/// How a query must read the log.
#[derive(Clone, Copy)]
enum Expect {
    /// Schema version 2: the rows of one audit key, then the entries they list by seq.
    AuditKey,
    /// Schema version 1: this index on `entries`.
    Index(&'static str),
}

/// Asserts that `plan` reads the log as `expect` says: by an audit key or an index, never by a
/// scan of a table, never with a sort.
fn assert_searches(plan: &[String], expect: Expect, what: &str) {
    let text = plan.join("\n");
    match expect {
        Expect::AuditKey => {
            assert!(
                plan.first().is_some_and(
                    |l| l.starts_with("SEARCH audit USING PRIMARY KEY (span=? AND key=?")
                ),
                "{what} does not search the audit keys:\n{text}"
            );
            assert!(
                plan.iter()
                    .any(|l| l == "SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)"),
                "{what} does not read the entries by seq:\n{text}"
            );
        }
        Expect::Index(index) => assert!(
            plan.first()
                .is_some_and(|l| l.starts_with(&format!("SEARCH entries USING INDEX {index} ("))),
            "{what} does not search {index}:\n{text}"
        ),
    }
    assert!(
        !plan.iter().any(|l| l.starts_with("SCAN entries")
            || l.starts_with("SCAN audit")
            || l.contains("TEMP B-TREE")),
        "{what} scans or sorts:\n{text}"
    );
}

/// The filters behind `audit log --app`, `audit log --object` and `audit why` (as
/// `src/cli/audit.rs` and `src/replay/why.rs` build them), and how each must read the log.
fn audit_plans(reader: &LogReader, application: Expect, object: Expect) {
    let dep = ObjKey::new("Deployment", "shop", "web");
    let plan = |f: &Filter| reader.query_plan(f).unwrap_or_else(|e| panic!("{e}"));
    let window = |f: Filter| f.seqs(1..=1_000_000);
    assert_searches(
        &plan(&window(Filter::new().application("shop/web"))),
        application,
        "audit log --app",
    );
    assert_searches(
        &plan(&window(
            Filter::new()
                .application("shop/web")
                .kinds(&[EntryKind::Outcome])
                .between(Some(time(0)), Some(time(1))),
        )),
        application,
        "audit log --app --kind --since --until",
    );
    assert_searches(
        &plan(&window(Filter::new().object(&dep))),
        object,
        "audit log --object",
    );
    assert_searches(
        &plan(&window(
            Filter::new()
                .object(&ObjKey::new("Ingress", "", "shared"))
                .kinds(&[EntryKind::Event, EntryKind::Action]),
        )),
        object,
        "audit log --object (cluster-scoped) --kind event --kind action",
    );
    for kind in [
        EntryKind::Event,
        EntryKind::Outcome,
        EntryKind::Marker,
        EntryKind::Action,
    ] {
        let why = Filter {
            object: Some(dep.clone()),
            kinds: vec![kind],
            until: Some(time(5)),
            ..Filter::new()
        };
        assert_searches(&plan(&why), object, &format!("why ({kind:?} entries)"));
        let basis = Filter {
            object: Some(dep.clone()),
            kinds: vec![kind],
            to_seq: Some(77),
            ..Filter::new()
        };
        assert_searches(&plan(&basis), object, &format!("why (basis, {kind:?})"));
    }
}

#[test]
fn audit_log_and_why_search_the_audit_keys_in_new_logs() {
    let dir = tempdir();
    let path = dir.path().join("log.db");
    fill(&path, &many(50));
    let (user_version, version, indexes) = layout(&path);
    assert_eq!(
        (user_version, version),
        (SCHEMA_VERSION, SCHEMA_VERSION.to_string())
    );
    assert!(
        indexes.is_empty(),
        "no index on entries but id's: {indexes:?}"
    );
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    audit_plans(&reader, Expect::AuditKey, Expect::AuditKey);
    // A namespace, or one kind, alone has its audit keys too; several kinds, or time alone,
    // read the seq range.
    for (f, what) in [
        (
            Filter::new().kinds(&[EntryKind::Plan]),
            "audit log --kind plan",
        ),
        (
            Filter::new().namespace("shop"),
            "audit log --namespace shop",
        ),
    ] {
        let plan = reader.query_plan(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_searches(&plan, Expect::AuditKey, what);
    }
    for f in [
        Filter::new().kinds(&[EntryKind::Event, EntryKind::Outcome]),
        Filter::new().between(Some(time(0)), None),
        Filter::new(),
    ] {
        let plan = reader.query_plan(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            plan,
            ["SEARCH entries USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"],
            "{f:?}"
        );
    }
}

#[test]
fn audit_log_and_why_search_an_index_in_version_1_logs() {
    let dir = tempdir();
    let path = dir.path().join("log.db");
    create_v1(&path);
    fill(&path, &many(50));
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    audit_plans(
        &reader,
        Expect::Index("entries_by_application"),
        Expect::Index("entries_by_object"),
    );
    let plan = reader
        .query_plan(&Filter::new().kinds(&[EntryKind::Plan]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_searches(
        &plan,
        Expect::Index("entries_by_kind"),
        "audit log --kind plan",
    );
}

fn logbook(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(args)
        .env_remove("LOGBOOK_LOG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("run logbook {args:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_version_1_log_opens_answers_audits_and_takes_appends() {
    let dir = tempdir();
    let path: PathBuf = dir.path().join("v1.db");
    create_v1(&path);
    let v1_indexes = [
        "entries_by_application",
        "entries_by_kind",
        "entries_by_object",
        "entries_by_time",
    ];
    // The story `why` explains (an event, a plan, its action, the outcome), then more.
    let story = one_of_each();
    fill(&path, &story);
    fill(&path, &many(30));
    let log_arg = path.to_str().unwrap_or_else(|| panic!("a UTF-8 path"));

    // audit log --app / --object, through the binary.
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    for (flag, value, filter) in [
        ("--app", "shop/web", Filter::new().application("shop/web")),
        (
            "--object",
            "Deployment/shop/web",
            Filter::new().object(&ObjKey::new("Deployment", "shop", "web")),
        ),
    ] {
        let want = seqs(&reader, &filter);
        assert!(!want.is_empty(), "{flag} {value}");
        let (code, out, err) =
            logbook(&["audit", "log", "--log", log_arg, flag, value, "-o", "json"]);
        assert_eq!(code, Some(0), "{err}");
        let got: Vec<u64> = out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["seq"].as_u64())
                    .unwrap_or_else(|| panic!("not an entry: {l}"))
            })
            .collect();
        assert_eq!(got, want, "audit log {flag} {value}");
    }

    // why, through the library and the binary.
    let key = ObjKey::new("Deployment", "shop", "web");
    let why =
        logbook::replay::why::explain(&reader, &key, None).unwrap_or_else(|e| panic!("why: {e}"));
    let action = why.action.unwrap_or_else(|| panic!("why found no action"));
    assert_eq!(action.seq, 5, "the story's action");
    let (code, out, err) = logbook(&["audit", "why", "Deployment/shop/web", "--log", log_arg]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Last changed by logbook: apply"), "{out}");
    drop(reader);

    // Appending keeps the file at version 1 with its own indexes (and no audit table), and the
    // chain intact.
    let before = layout(&path);
    let audit_table: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'audit'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audit_table, 0);
    assert_eq!(
        before,
        (1, "1".to_string(), v1_indexes.map(String::from).to_vec())
    );
    let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let added = log
        .append(&[varied(1), varied(13)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(added.iter().map(|a| a.seq()).collect::<Vec<_>>(), [38, 39]);
    // An id already there is recognised, not written twice.
    let again = log
        .append(&[story[1].clone()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again[0].seq(), 2);
    assert!(
        log.query(&Filter::new().object(&ObjKey::new("Deployment", "shop", "app-1")))
            .any(|e| e.is_ok_and(|e| e.seq == 38))
    );
    let report = log.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    log.close().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(layout(&path), before);
    let (code, out, err) = logbook(&["audit", "verify", "--log", log_arg]);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// A copy of `from` changed by `sql` (run by plain SQLite, triggers dropped first).
fn tampered(dir: &Path, from: &Path, name: &str, sql: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy: {e}"));
    let conn = raw(&to);
    conn.execute_batch(&format!(
        "DROP TRIGGER audit_append_only_update; DROP TRIGGER audit_append_only_delete; {sql}"
    ))
    .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
    drop(conn);
    to
}

#[test]
fn audit_keys_are_append_only_and_verify_names_rows_that_disagree_with_the_entries() {
    let dir = tempdir();
    let path = dir.path().join("log.db");
    fill(&path, &many(50));
    let conn = raw(&path);
    for sql in [
        "UPDATE audit SET last = last + 1",
        "DELETE FROM audit WHERE first = 1",
    ] {
        let e = conn
            .execute_batch(sql)
            .err()
            .unwrap_or_else(|| panic!("`{sql}` was allowed"));
        assert!(e.to_string().contains("append-only"), "{e}");
    }
    drop(conn);
    let app0 = r#"["application","shop/app-0"]"#;
    let structure = |path: &Path| {
        let reader = LogReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        let report = reader.verify().unwrap_or_else(|e| panic!("{e}"));
        assert!(report.problem.is_none(), "the chain is intact: {report}");
        assert!(!report.is_ok(), "{report}");
        report.structure.unwrap_or_default()
    };

    // A row that lists an entry without its key: found by verify, and never shown by an audit.
    let bogus = tampered(
        dir.path(),
        &path,
        "bogus.db",
        r#"INSERT INTO audit VALUES (0, '["application","shop/app-1"]', 1, 1, x'')"#,
    );
    assert!(
        structure(&bogus).contains(
            r#"the audit rows for ["application","shop/app-1"] list entry 1, which does not have that key"#
        ),
        "{}",
        structure(&bogus)
    );
    let reader = LogReader::open(&bogus).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !seqs(&reader, &Filter::new().application("shop/app-1")).contains(&1),
        "entry 1 is not about shop/app-1"
    );
    drop(reader);

    // A row removed: its entries are missing from audits, and verify says which.
    let removed = tampered(
        dir.path(),
        &path,
        "removed.db",
        &format!("DELETE FROM audit WHERE key = '{app0}'"),
    );
    assert!(
        structure(&removed).contains(&format!(
            "entry 1 is missing from the audit rows for {app0}"
        )),
        "{}",
        structure(&removed)
    );

    // A malformed row: verify names it, and an audit through it fails with the file and what
    // to run rather than showing a partial history.
    let malformed = tampered(
        dir.path(),
        &path,
        "malformed.db",
        &format!("UPDATE audit SET seqs = x'80' WHERE key = '{app0}'"),
    );
    assert!(
        structure(&malformed).contains(&format!(
            "the audit row for {app0} from seq 1 is malformed: its seq list ends in the middle of a number"
        )),
        "{}",
        structure(&malformed)
    );
    let reader = LogReader::open(&malformed).unwrap_or_else(|e| panic!("{e}"));
    let results: Vec<_> = reader
        .query(&Filter::new().application("shop/app-0"))
        .collect();
    match results.as_slice() {
        [Err(e)] => {
            let text = e.to_string();
            assert!(
                text.contains("malformed.db") && text.contains("logbook audit verify"),
                "{text}"
            );
        }
        other => panic!("expected one error, got {other:?}"),
    }
}
