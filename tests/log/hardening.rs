//! "Nothing stuck, nothing forged": the log is checked before it is extended, and its files are
//! clean. A writer leaves a self-contained `log.db` behind; a log in a read-only place can be
//! read; a FIFO or a directory given as the log is refused at once; the controller refuses a
//! log whose chain is broken; and `verify` checks SQLite's own structure and the audit keys.
//!
//! Self-contained on purpose (no shared test helpers).

use chrono::{DateTime, TimeZone, Utc};
use logbook::controller::core::{Core, Input};
use logbook::log::{Filter, Log, LogReader};
use logbook::model::Application;
use logbook::reconcile::PlannerConfig;
use logbook::record::{Body, Change, Json, NewEntry, ObjKey, ObservedEvent, entry_uuid};
use logbook_testkit::AppTest;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"))
}

fn at(n: u64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2025, 3, 14, 3, 12, 0)
        .single()
        .unwrap_or_default();
    base + chrono::Duration::milliseconds(n as i64)
}

/// An event about Deployment `name` in namespace `shop`, recorded for Application `shop/<name>`.
fn event(name: &str, rv: u64) -> NewEntry {
    let uid = format!("uid-{name}");
    let object = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": rv.to_string()},
        "spec": {"replicas": rv % 5},
    });
    let ev = ObservedEvent {
        change: Change::Upsert,
        key: ObjKey::new("Deployment", "shop", name),
        api_version: "apps/v1".into(),
        uid: uid.clone(),
        resource_version: rv.to_string(),
        object: Some(Json::from_value(&object)),
        synthesized: false,
    };
    let when = at(rv);
    let id = entry_uuid(when, "event", format!("{uid}/{rv}/upsert").as_bytes());
    NewEntry::event(id, when, ev, Some(&format!("shop/{name}")))
}

/// `n` events, alternating between Applications `shop/web` and `shop/api`.
fn events(n: u64) -> Vec<NewEntry> {
    (1..=n)
        .map(|i| event(if i % 2 == 0 { "web" } else { "api" }, i))
        .collect()
}

fn count(reader: &LogReader) -> usize {
    reader
        .range(..)
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")))
        .collect::<Vec<_>>()
        .len()
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Folds the WAL into `log.db` and removes it, with a plain SQLite connection (as any tool
/// would), so what follows looks at the main file alone.
fn checkpoint(path: &Path) {
    let conn = raw(path);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    drop(conn);
}

// ---------------------------------------------------------------------------------------------
// 1. Clean files

/// A writer that stops leaves every entry in `log.db` itself: a copy of that file alone (no
/// `-wal`) holds them all, even though a reader (the outbox, `logbook dev`'s view) still had
/// the log open when the writer went away.
#[test]
fn a_stopped_writer_leaves_every_entry_in_the_main_file() {
    let dir = tempdir();
    let path = dir.path().join("log.db");
    let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
    log.append(&events(40)).unwrap_or_else(|e| panic!("{e}"));
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&reader), 40);
    drop(log);

    let elsewhere = tempdir();
    let copy = elsewhere.path().join("log.db");
    std::fs::copy(&path, &copy).unwrap_or_else(|e| panic!("copy log.db: {e}"));
    let copied = LogReader::open(&copy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&copied), 40, "a copy of log.db alone misses entries");
    let report = copied.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checked, 40, "{report}");
    assert!(
        !report.to_string().contains(" 0 entries intact"),
        "{report}"
    );
    drop(reader);
}

// ---------------------------------------------------------------------------------------------
// 2. Read-only logs

const READ_ONLY_CHILD: &str = "LOGBOOK_TEST_READ_ONLY_DIR";

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// What the read-only checks expect, run as a user who cannot write `dir`: `dir/clean/log.db`
/// (checkpointed, no -wal or -shm) reads in full; `dir/pending/log.db` (a -wal with entries
/// and no -shm) is refused with what to do.
fn read_only_checks(dir: &Path) {
    let clean = dir.join("clean").join("log.db");
    let reader = LogReader::open(&clean).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&reader), 30);
    let report = reader.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    let via_log = Log::open_read_only(&clean).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(via_log.last_seq().unwrap_or_else(|e| panic!("{e}")), 30);

    let pending = dir.join("pending").join("log.db");
    match LogReader::open(&pending) {
        Ok(r) => panic!(
            "a log whose -wal cannot be read here opened (showing {} entries of 30)",
            count(&r)
        ),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("log.db-wal") && text.contains("Copy") && !text.contains('\n'),
                "{text}"
            );
        }
    }
}

/// The child half of `a_log_in_a_read_only_place_can_be_read`: does nothing unless that test
/// started it (as an unprivileged user).
#[test]
fn read_only_child() {
    if let Some(dir) = std::env::var_os(READ_ONLY_CHILD) {
        read_only_checks(Path::new(&dir));
    }
}

/// A log in a directory this process cannot write (an archive, a read-only mount) is read,
/// not refused with "attempt to write a readonly database". Root ignores permission bits, so
/// when the tests run as root the reading is done by a child test process running as `nobody`.
#[test]
fn a_log_in_a_read_only_place_can_be_read() {
    let top = tempdir();
    let clean = top.path().join("clean");
    let pending = top.path().join("pending");
    for d in [&clean, &pending] {
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir: {e}"));
    }
    let mut log = Log::open(&clean.join("log.db")).unwrap_or_else(|e| panic!("{e}"));
    log.append(&events(30)).unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    checkpoint(&clean.join("log.db"));
    assert!(!clean.join("log.db-wal").exists());

    // A writer that did not stop cleanly: its -wal holds the entries (a second connection
    // keeps SQLite from folding it back when the writer goes).
    let mut log = Log::open(&pending.join("log.db")).unwrap_or_else(|e| panic!("{e}"));
    let holder = raw(&pending.join("log.db"));
    log.append(&events(30)).unwrap_or_else(|e| panic!("{e}"));
    let stash = top.path().join("stash");
    std::fs::create_dir(&stash).unwrap_or_else(|e| panic!("mkdir: {e}"));
    for f in ["log.db", "log.db-wal"] {
        std::fs::copy(pending.join(f), stash.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    drop(log);
    drop(holder);
    for f in ["log.db", "log.db-wal", "log.db-shm"] {
        let _ = std::fs::remove_file(pending.join(f));
    }
    for f in ["log.db", "log.db-wal"] {
        std::fs::rename(stash.join(f), pending.join(f)).unwrap_or_else(|e| panic!("move {f}: {e}"));
    }
    assert!(std::fs::metadata(pending.join("log.db-wal")).is_ok_and(|m| m.len() > 0));

    for d in [&clean, &pending] {
        for f in ["log.db", "log.db-wal"] {
            if d.join(f).exists() {
                set_mode(&d.join(f), 0o444);
            }
        }
        set_mode(d, 0o555);
    }
    set_mode(top.path(), 0o755);

    if effective_uid() == Some(0) {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary: {e}"));
        // A copy nobody can reach and run: the build directory may sit under root's home.
        let copy = top.path().join("log-tests");
        std::fs::copy(&exe, &copy).unwrap_or_else(|e| panic!("copy the test binary: {e}"));
        set_mode(&copy, 0o755);
        let out = Command::new(&copy)
            .args([
                "--exact",
                "hardening::read_only_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(READ_ONLY_CHILD, top.path())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap_or_else(|e| panic!("run the test binary as nobody: {e}"));
        assert!(
            out.status.success(),
            "as nobody:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        read_only_checks(top.path());
    }
    // Nothing was created next to the logs.
    for d in [&clean, &pending] {
        assert!(!d.join("log.db-shm").exists(), "{}", d.display());
    }
    assert!(!clean.join("log.db-wal").exists());
    for d in [&clean, &pending] {
        set_mode(d, 0o755);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Non-regular `--log`

/// Runs `f` in a thread and gives up after a few seconds (opening a FIFO blocks forever).
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} did not return within 10 s"))
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("run mkfifo: {e}"));
    assert!(status.success(), "mkfifo {}", path.display());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[test]
fn a_fifo_or_a_directory_as_the_log_is_refused_at_once() {
    let dir = tempdir();
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let p = fifo.clone();
    let err = bounded("LogReader::open on a FIFO", move || {
        LogReader::open(&p).map(|_| ()).map_err(|e| e.to_string())
    });
    let text = err
        .err()
        .unwrap_or_else(|| panic!("a FIFO opened as a log"));
    assert!(
        text.contains(&fifo.display().to_string()) && text.contains("FIFO") && !text.contains('\n'),
        "{text}"
    );
    let p = fifo.clone();
    let err = bounded("Log::open on a FIFO", move || {
        Log::open(&p).map(|_| ()).map_err(|e| e.to_string())
    });
    let text = err
        .err()
        .unwrap_or_else(|| panic!("a FIFO opened as a log for writing"));
    assert!(
        text.contains(&fifo.display().to_string()) && text.contains("FIFO"),
        "{text}"
    );
    assert!(is_fifo(&fifo), "the FIFO was replaced");

    let sub = dir.path().join("a-directory");
    std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("mkdir: {e}"));
    for text in [
        LogReader::open(&sub).err().map(|e| e.to_string()),
        Log::open(&sub).err().map(|e| e.to_string()),
    ] {
        let text = text.unwrap_or_else(|| panic!("a directory opened as a log"));
        assert!(
            text.contains(&sub.display().to_string()) && text.contains("directory"),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The controller refuses a broken log

const KINDS: [&str; 4] = ["Application", "Deployment", "Service", "Ingress"];

fn open_core(path: &Path) -> Result<Core, String> {
    let log = Log::open(path).map_err(|e| e.to_string())?;
    let (notify, _) = tokio::sync::watch::channel(0);
    Core::new(
        log,
        PlannerConfig::default(),
        KINDS.to_vec(),
        Duration::ZERO,
        notify,
    )
    .map_err(|e| e.to_string())
}

fn app(name: &str, rv: &str) -> Value {
    let mut v = serde_json::to_value(Application::test("shop", name).build())
        .unwrap_or_else(|e| panic!("{e}"));
    v["apiVersion"] = json!("logbook.dev/v1alpha1");
    v["kind"] = json!("Application");
    v["metadata"]["uid"] = json!(format!("uid-{name}"));
    v["metadata"]["resourceVersion"] = json!(rv);
    v
}

/// A log written by the real core: a start, two Applications listed and planned for.
fn controller_log(path: &Path) {
    let mut core = open_core(path).unwrap_or_else(|e| panic!("{e}"));
    core.start(json!({"test": true}))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut inputs = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        inputs.push(Input::ListStart(kind));
        if i == 0 {
            inputs.push(Input::Seen(app("web", "1")));
            inputs.push(Input::Seen(app("api", "2")));
        }
        inputs.push(Input::ListDone(kind));
    }
    assert!(!core.handle(inputs).unwrap_or_else(|e| panic!("{e}")));
}

/// Replaces entry `seq`'s payload with `payload` (a well-formed one: the fold would take it).
fn tamper_payload(path: &Path, seq: u64, payload: &[u8]) {
    let conn = raw(path);
    conn.execute_batch("DROP TRIGGER entries_append_only_update;")
        .unwrap_or_else(|e| panic!("{e}"));
    let changed = conn
        .execute(
            "UPDATE entries SET payload = ?1 WHERE seq = ?2",
            rusqlite::params![payload, seq as i64],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changed, 1);
}

/// The seqs and payloads of the Application events in the log.
fn application_events(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT seq, payload FROM entries WHERE kind = 'event' AND object_kind = 'Application' ORDER BY seq")
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap_or_else(|e| panic!("{e}"));
    rows.map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect()
}

#[test]
fn the_controller_refuses_to_extend_a_log_whose_chain_is_broken() {
    let dir = tempdir();
    let path = dir.path().join("log.db");
    controller_log(&path);
    let apps = application_events(&path);
    assert_eq!(apps.len(), 2, "two Application events");
    let last = LogReader::open(&path)
        .and_then(|r| r.last_seq())
        .unwrap_or_else(|e| panic!("{e}"));

    // The edit: the event about `web` now says what the event about `api` said.
    let (victim, _) = apps[0];
    tamper_payload(&path, victim, &apps[1].1);
    {
        let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(reader.get(victim), Ok(Some(e)) if matches!(e.body, Body::Event(_))),
            "the edited entry still decodes: only the chain gives it away"
        );
    }
    let err = match open_core(&path) {
        Ok(_) => panic!("the controller opened a log whose entry {victim} was edited"),
        Err(e) => e,
    };
    assert!(
        err.contains(&format!("entry {victim}"))
            && err.contains("logbook audit verify")
            && !err.contains('\n'),
        "{err}"
    );
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reader.last_seq().unwrap_or_else(|e| panic!("{e}")),
        last,
        "nothing was appended after the break"
    );
}

#[test]
fn an_intact_log_opens_and_is_verified_once() {
    let dir = tempdir();
    let path = dir.path().join("log.db");
    controller_log(&path);
    let first_last = LogReader::open(&path)
        .and_then(|r| r.last_seq())
        .unwrap_or_else(|e| panic!("{e}"));

    // The next start verifies the whole log and records how far it got.
    let mut core = open_core(&path).unwrap_or_else(|e| panic!("{e}"));
    let verified = LogReader::open(&path)
        .and_then(|r| r.cursor("verified"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verified, Some(first_last));
    core.start(json!({"test": 2}))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(core);

    // The start after that checks only from that point on: its entries, and their link to it.
    let second_last = LogReader::open(&path)
        .and_then(|r| r.last_seq())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(second_last > first_last);
    let _core = open_core(&path).unwrap_or_else(|e| panic!("{e}"));
    let verified = LogReader::open(&path)
        .and_then(|r| r.cursor("verified"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verified, Some(second_last));
}

// ---------------------------------------------------------------------------------------------
// 5. verify checks SQLite's structure and the audit keys

/// Rewrites the root page of index `index` (or of WITHOUT ROWID table `index`, the same kind
/// of B-tree) as an empty leaf: a well-formed page, so SQLite reads it without complaint, and
/// every query through it finds nothing.
fn empty_index(path: &Path, index: &str) {
    let conn = raw(path);
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
            [index],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let start = ((root - 1) * page_size) as usize;
    assert_eq!(bytes[start], 0x0A, "the index is one leaf page");
    let size = page_size as usize;
    bytes[start..start + size].fill(0);
    bytes[start] = 0x0A; // leaf index b-tree page, no cells
    bytes[start + 5] = (size >> 8) as u8; // cell content area starts at the end of the page
    bytes[start + 6] = size as u8;
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
}

/// Empties `index` of a log of 20 events and checks that audits by Application then miss
/// shop/web's entries, and that `verify` (and `audit verify`) says so, naming `expect`.
fn audit_keys_that_disagree_with_the_entries_are_caught(
    version_1: bool,
    index: &str,
    expect: &str,
) {
    let dir = tempdir();
    let path = dir.path().join("log.db");
    if version_1 {
        // A log as logbook created them before schema version 2.
        let conn = raw(&path);
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{}\nCOMMIT;",
            include_str!("fixtures/log_v1.sql")
        ))
        .unwrap_or_else(|e| panic!("the version-1 schema: {e}"));
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .unwrap_or_else(|e| panic!("WAL mode: {e}"));
    }
    let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
    log.append(&events(20)).unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    checkpoint(&path);
    empty_index(&path, index);

    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let through_index = reader
        .query(&Filter::new().application("shop/web"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")))
        .collect::<Vec<_>>()
        .len();
    let in_table = reader
        .range(..)
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")))
        .filter(|e| e.keys.application.as_deref() == Some("shop/web"))
        .count();
    assert_eq!(
        (through_index, in_table),
        (0, 10),
        "the damaged index hides shop/web's history from audits"
    );
    let report = reader.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.is_ok(), "verify says intact: {report}");
    let text = report.to_string();
    assert!(text.contains(expect) && !text.contains('\n'), "{text}");
    drop(reader);

    let out = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(["audit", "verify", "--log"])
        .arg(&path)
        .env_remove("LOGBOOK_LOG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("run logbook audit verify: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(expect), "{stdout}");
}

#[test]
fn verify_catches_audit_keys_that_disagree_with_the_entries() {
    audit_keys_that_disagree_with_the_entries_are_caught(
        false,
        "audit",
        r#"the audit keys disagree with the entries: entry 1 is missing from the audit rows for ["application","shop/api"]"#,
    );
}

#[test]
fn verify_catches_a_version_1_audit_index_that_disagrees_with_the_entries() {
    audit_keys_that_disagree_with_the_entries_are_caught(
        true,
        "entries_by_application",
        "entries_by_application",
    );
}
