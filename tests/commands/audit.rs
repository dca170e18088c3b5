//! `logbook audit` as a user runs it, on logs built with the library: `log` filters, JSON Lines
//! and `--follow`, `why` tracing an object to its action, plan, events and outcome, `verify` on
//! intact and tampered logs, one clear line and exit 2 for bad input, and reads that never block
//! the writer.

use logbook_testkit::log as log_common;

use chrono::{DateTime, SecondsFormat, Utc};
use log_common::{Deadline, copy_log, exec, many, raw};
use logbook::log::{Log, LogReader};
use logbook::model::Application;
use logbook::reconcile::{Planner, PlannerConfig};
use logbook::record::{
    Action, Body, Change, Entry, EntryKind, Keys, MarkerKind, NewEntry, ObjKey, ObservedEvent,
    OutcomeRecord, OutcomeResult, PlanRecord, Verb, entry_uuid,
};
use logbook::world::{Fold, Observed};
use logbook_testkit::{AppTest, apply_merge, server_defaults};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long one short `logbook audit` run may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// running the binary

/// A child process killed (and reaped) on drop, however the test ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// What one run printed and how it ended.
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

impl Run {
    /// Asserts the run failed with exit 2 and one `logbook audit:` line on stderr mentioning
    /// every one of `words`, and no panic.
    fn refused(&self, words: &[&str]) {
        assert_eq!(
            self.code,
            Some(2),
            "stdout:\n{}\nstderr:\n{}",
            self.out,
            self.err
        );
        assert!(!self.err.contains("panicked"), "{}", self.err);
        assert_eq!(self.err.trim_end().lines().count(), 1, "{}", self.err);
        assert!(self.err.starts_with("logbook audit: "), "{}", self.err);
        for w in words {
            assert!(self.err.contains(w), "{w:?} not in: {}", self.err);
        }
    }

    /// Asserts exit 0 without a panic.
    fn ok(&self) -> &Run {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.out,
            self.err
        );
        assert!(!self.err.contains("panicked"), "{}", self.err);
        self
    }
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logbook"));
    cmd.arg("audit")
        .args(args)
        .env_remove("LOGBOOK_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Reads a pipe to the end in a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `logbook audit ARGS` to completion (bounded by [`RUN_LIMIT`]).
fn audit(args: &[&str]) -> Run {
    let mut child = Guard(
        command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run logbook: {e}")),
    );
    let out = drain(child.0.stdout.take().unwrap_or_else(|| panic!("no stdout")));
    let err = drain(child.0.stderr.take().unwrap_or_else(|| panic!("no stderr")));
    let deadline = Deadline::after(RUN_LIMIT);
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => panic!("cannot wait for logbook: {e}"),
        }
        deadline.check(&format!("logbook audit {args:?}"));
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        out: out.join().unwrap_or_default(),
        err: err.join().unwrap_or_default(),
    }
}

/// Lines of a child's stdout, as they come.
fn lines_of(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    rx
}

/// Collects lines until one satisfies `done`; fails at the deadline with what came so far.
fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    deadline: &Deadline,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.remaining()) {
            Ok(line) => {
                let stop = done(&line);
                seen.push(line);
                if stop {
                    return seen;
                }
            }
            Err(_) => panic!("{what}: not seen in time; got:\n{}", seen.join("\n")),
        }
    }
}

/// Waits (bounded) for a child to exit; returns its exit code.
fn wait_exit(child: &mut Guard, deadline: &Deadline, what: &str) -> Option<i32> {
    loop {
        match child.0.try_wait() {
            Ok(Some(s)) => return s.code(),
            Ok(None) => {}
            Err(e) => panic!("cannot wait for logbook: {e}"),
        }
        deadline.check(what);
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigterm(child: &Guard) {
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("cannot signal logbook: {e}"));
}

/// Appends `entries` to the log at `path` from another thread and waits at most `limit`: an
/// append blocked by a reader fails the test instead of hanging it.
fn append_within(path: &Path, entries: Vec<NewEntry>, limit: Duration) -> Vec<u64> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let result = Log::open(&path)
            .and_then(|mut log| log.append(&entries))
            .map(|a| a.iter().map(|a| a.seq()).collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(seqs)) => seqs,
        Ok(Err(e)) => panic!("append failed: {e}"),
        Err(_) => panic!("an append did not complete within {limit:?}: blocked by a reader?"),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

// ---------------------------------------------------------------------------------------------
// a small, realistic history

/// A log with a realistic history, and where each interesting entry landed.
struct History {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// Phase 1 starts here (3 h ago), phase 2 at `t1` (1 h ago).
    t0: DateTime<Utc>,
    t1: DateTime<Utc>,
    app_rv1: u64,
    plan1: u64,
    create_dep: (u64, Action),
    create_svc: (u64, Action),
    dep_applied1: u64,
    svc_failed: u64,
    dep_rv101: u64,
    app_rv2: u64,
    plan2: u64,
    apply_dep: (u64, Action),
    dep_applied2: u64,
    dep_rv102: u64,
    legacy_seen: u64,
    legacy_deleted: u64,
    last: u64,
}

struct Builder {
    log: Log,
    fold: Fold,
    planner: Planner,
}

impl Builder {
    fn add(&mut self, entries: Vec<NewEntry>) -> Vec<u64> {
        let appended = self.log.append(&entries).unwrap_or_else(|e| panic!("{e}"));
        entries
            .iter()
            .zip(&appended)
            .map(|(e, a)| {
                assert!(a.is_new());
                self.fold.apply(a.seq(), e.at, &e.body);
                a.seq()
            })
            .collect()
    }

    fn observe(&mut self, object: Value, app: Option<&str>, at: DateTime<Utc>) -> u64 {
        let (key, o) = Observed::from_value(object).unwrap_or_else(|e| panic!("{e}"));
        self.add(vec![upsert(&key, &o, app, at)])[0]
    }

    /// Plans the whole world as folded; returns the plan's seq and each action with its seq.
    fn plan(&mut self, at: DateTime<Utc>) -> (u64, Vec<(u64, Action)>) {
        let actions = self.planner.plan_all(self.fold.world());
        let upto_seq = self.fold.last_seq();
        let record = PlanRecord {
            upto_seq,
            controller_version: "0.1.0-test".into(),
            reconciler: self.planner.names().join(","),
            scope: Vec::new(),
            action_ids: actions.iter().map(|a| a.id.clone()).collect(),
            config_digest: "sha256:test".into(),
        };
        let plan_seq = upto_seq + 1;
        let mut entries = vec![NewEntry::plan(
            entry_uuid(at, "plan", format!("plan/{upto_seq}").as_bytes()),
            at,
            record,
        )];
        for a in &actions {
            entries.push(NewEntry::action(
                entry_uuid(at, "action", format!("{plan_seq}/{}", a.id).as_bytes()),
                at,
                plan_seq,
                a.clone(),
            ));
        }
        let seqs = self.add(entries);
        assert_eq!(seqs[0], plan_seq);
        (plan_seq, seqs[1..].iter().copied().zip(actions).collect())
    }

    fn outcome(
        &mut self,
        a: &Action,
        result: OutcomeResult,
        executor: &str,
        rv: Option<&str>,
        at: DateTime<Utc>,
    ) -> u64 {
        let rec = OutcomeRecord {
            action_id: a.id.clone(),
            result,
            message: match result {
                OutcomeResult::Failed => "the API server said 500".into(),
                _ => "applied with field manager logbook".into(),
            },
            executor: executor.into(),
            attempt: 1,
            resource_version: rv.map(str::to_string),
            retry: false,
        };
        let id = entry_uuid(at, "outcome", format!("{}/{executor}", a.id).as_bytes());
        let keys = Keys::for_object(&a.target, a.app.as_deref());
        self.add(vec![NewEntry::outcome(id, at, keys, rec)])[0]
    }
}

fn upsert(key: &ObjKey, o: &Observed, app: Option<&str>, at: DateTime<Utc>) -> NewEntry {
    let content = format!("upsert\0{key}\0{}\0{}", o.uid, o.resource_version);
    let ev = ObservedEvent {
        change: Change::Upsert,
        key: key.clone(),
        api_version: o.api_version.clone(),
        uid: o.uid.clone(),
        resource_version: o.resource_version.clone(),
        object: Some(o.text().clone()),
        synthesized: false,
    };
    NewEntry::event(entry_uuid(at, "event", content.as_bytes()), at, ev, app)
}

fn delete(key: &ObjKey, uid: &str, rv: &str, at: DateTime<Utc>) -> NewEntry {
    let ev = ObservedEvent {
        change: Change::Delete,
        key: key.clone(),
        api_version: "v1".into(),
        uid: uid.into(),
        resource_version: rv.into(),
        object: None,
        synthesized: false,
    };
    let content = format!("delete\0{key}\0{uid}\0{rv}");
    NewEntry::event(entry_uuid(at, "event", content.as_bytes()), at, ev, None)
}

/// A later observation of the web Deployment (for follow tests).
fn web_deployment_event(rv: u64, at: DateTime<Utc>) -> NewEntry {
    let key = ObjKey::new("Deployment", "shop", "web");
    let o = Observed::with_identity(
        "apps/v1",
        "uid-Deployment/shop/web",
        &rv.to_string(),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": rv.to_string()}}),
    );
    upsert(&key, &o, Some("shop/web"), at)
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn find(actions: &[(u64, Action)], verb: Verb, kind: &str) -> (u64, Action) {
    actions
        .iter()
        .find(|(_, a)| a.verb == verb && a.target.kind == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {verb} {kind} among {actions:#?}"))
}

/// Phase 1 (3 h ago): an unmanaged Service is seen, Application shop/web (rv 1) is seen, a plan
/// creates its Deployment (applied by executor-7, observed at rv 101) and Service (failed).
/// Phase 2 (1 h ago): the Application is scaled (rv 2), a plan applies the Deployment (applied by
/// executor-3, observed at rv 102), and the unmanaged Service is deleted.
fn history() -> History {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("history.db");
    let now = Utc::now();
    let t0 = now - chrono::Duration::hours(3);
    let t1 = now - chrono::Duration::hours(1);
    let mut b = Builder {
        log: Log::open(&path).unwrap_or_else(|e| panic!("{e}")),
        fold: Fold::new(),
        planner: Planner::new(PlannerConfig::default()),
    };
    b.add(vec![NewEntry::marker(
        entry_uuid(t0, "marker", b"start"),
        t0,
        MarkerKind::Start,
        json!({"version": "0.1.0-test"}),
    )]);
    let legacy = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "legacy", "namespace": "shop", "uid": "uid-legacy",
            "resourceVersion": "50"},
        "spec": {"ports": [{"port": 80}]}});
    let legacy_seen = b.observe(legacy, None, t0 + chrono::Duration::seconds(30));

    let (_, app1) = Application::test("shop", "web")
        .resource_version("1")
        .observed();
    let app_rv1 = b.observe(app1.object().clone(), Some("shop/web"), t0 + minutes(1));
    let (plan1, actions) = b.plan(t0 + minutes(2));
    let create_dep = find(&actions, Verb::Create, "Deployment");
    let create_svc = find(&actions, Verb::Create, "Service");
    let dep_applied1 = b.outcome(
        &create_dep.1,
        OutcomeResult::Applied,
        "executor-7",
        Some("101"),
        t0 + minutes(3),
    );
    let svc_failed = b.outcome(
        &create_svc.1,
        OutcomeResult::Failed,
        "executor-7",
        None,
        t0 + minutes(3) + chrono::Duration::seconds(10),
    );
    let mut dep = create_dep.1.object.clone().unwrap_or_default();
    server_defaults(&mut dep, "uid-dep-web", 101);
    let dep_rv101 = b.observe(dep.clone(), Some("shop/web"), t0 + minutes(4));

    let (_, app2) = Application::test("shop", "web")
        .replicas(3)
        .resource_version("2")
        .generation(2)
        .observed();
    let app_rv2 = b.observe(app2.object().clone(), Some("shop/web"), t1);
    let (plan2, actions) = b.plan(t1 + minutes(1));
    let apply_dep = find(&actions, Verb::Apply, "Deployment");
    let dep_applied2 = b.outcome(
        &apply_dep.1,
        OutcomeResult::Applied,
        "executor-3",
        Some("102"),
        t1 + minutes(2),
    );
    apply_merge(
        &mut dep,
        apply_dep.1.object.as_ref().unwrap_or(&Value::Null),
    );
    server_defaults(&mut dep, "uid-dep-web", 102);
    let dep_rv102 = b.observe(dep, Some("shop/web"), t1 + minutes(3));
    let legacy_deleted = b.add(vec![delete(
        &ObjKey::new("Service", "shop", "legacy"),
        "uid-legacy",
        "51",
        t1 + minutes(5),
    )])[0];
    let last = b.log.reader().last_seq().unwrap_or_else(|e| panic!("{e}"));
    drop(b);
    History {
        _dir: dir,
        path,
        t0,
        t1,
        app_rv1,
        plan1,
        create_dep,
        create_svc,
        dep_applied1,
        svc_failed,
        dep_rv101,
        app_rv2,
        plan2,
        apply_dep,
        dep_applied2,
        dep_rv102,
        legacy_seen,
        legacy_deleted,
        last,
    }
}

impl History {
    fn log(&self) -> &str {
        path_str(&self.path)
    }

    /// Every entry, read with the library.
    fn entries(&self) -> Vec<Entry> {
        let reader = LogReader::open(&self.path).unwrap_or_else(|e| panic!("{e}"));
        reader
            .range(..)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The seqs of the entries `keep` selects, computed in the test (not with `Filter`).
    fn seqs_where(&self, keep: impl Fn(&Entry) -> bool) -> Vec<u64> {
        self.entries()
            .into_iter()
            .filter(|e| keep(e))
            .map(|e| e.seq)
            .collect()
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The seqs of `audit log` table output (time, then seq, on each line).
fn table_seqs(out: &str) -> Vec<u64> {
    out.lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            let time = words.next().unwrap_or_default();
            assert!(
                DateTime::parse_from_rfc3339(time).is_ok(),
                "a line does not start with an RFC 3339 time: {l}"
            );
            words
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no seq in: {l}"))
        })
        .collect()
}

fn log_seqs(h: &History, extra: &[&str]) -> Vec<u64> {
    let mut args = vec!["log", "--log", h.log()];
    args.extend_from_slice(extra);
    table_seqs(&audit(&args).ok().out)
}

fn is_object(e: &Entry, kind: &str, ns: &str, name: &str) -> bool {
    e.keys.object_kind.as_deref() == Some(kind)
        && e.keys.namespace.as_deref() == Some(ns)
        && e.keys.object_name.as_deref() == Some(name)
}

// ---------------------------------------------------------------------------------------------
// audit log

#[test]
fn log_prints_every_entry_newest_last_with_its_time() {
    let h = history();
    let run = audit(&["log", "--log", h.log()]);
    run.ok();
    let all: Vec<u64> = (1..=h.last).collect();
    assert_eq!(table_seqs(&run.out), all);
    assert!(run.err.is_empty(), "{}", run.err);
    // The trail's words are there: what was seen, planned, done and reported.
    let text = &run.out;
    assert!(text.contains("Application shop/web seen at rv 1"), "{text}");
    assert!(
        text.contains("applied Deployment shop/web by executor-3"),
        "{text}"
    );
    assert!(text.contains(&h.apply_dep.1.id), "{text}");
    // The log can also be named by LOGBOOK_LOG.
    let mut child = Guard(
        command(&["log", "--kind", "marker"])
            .env("LOGBOOK_LOG", h.log())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let out = drain(child.0.stdout.take().unwrap_or_else(|| panic!("no stdout")));
    let code = wait_exit(&mut child, &Deadline::after(RUN_LIMIT), "audit log via env");
    assert_eq!(code, Some(0));
    assert_eq!(table_seqs(&out.join().unwrap_or_default()), vec![1]);
}

#[test]
fn log_filters_return_exactly_the_right_seqs_in_order() {
    let h = history();
    let app = h.seqs_where(|e| e.keys.application.as_deref() == Some("shop/web"));
    assert!(app.len() >= 8, "{app:?}");
    assert_eq!(log_seqs(&h, &["--app", "shop/web"]), app);

    let dep = h.seqs_where(|e| is_object(e, "Deployment", "shop", "web"));
    assert_eq!(
        dep,
        vec![
            h.create_dep.0,
            h.dep_applied1,
            h.dep_rv101,
            h.apply_dep.0,
            h.dep_applied2,
            h.dep_rv102
        ]
    );
    for spelling in [
        "Deployment/shop/web",
        "deploy/shop/web",
        "deployments/shop/web",
    ] {
        assert_eq!(log_seqs(&h, &["--object", spelling]), dep, "{spelling}");
    }

    let plans_and_outcomes =
        h.seqs_where(|e| matches!(e.kind(), EntryKind::Plan | EntryKind::Outcome));
    assert_eq!(
        plans_and_outcomes,
        vec![
            h.plan1,
            h.dep_applied1,
            h.svc_failed,
            h.plan2,
            h.dep_applied2
        ]
    );
    assert_eq!(
        log_seqs(&h, &["--kind", "plan,outcome"]),
        plans_and_outcomes
    );
    assert_eq!(
        log_seqs(&h, &["--kind", "plan", "--kind", "outcome"]),
        plans_and_outcomes
    );
    assert_eq!(log_seqs(&h, &["--kind", "marker"]), vec![1]);
    assert_eq!(
        log_seqs(&h, &["--app", "shop/web", "--kind", "outcome"]),
        vec![h.dep_applied1, h.svc_failed, h.dep_applied2]
    );
    assert_eq!(
        log_seqs(&h, &["-n", "shop", "--kind", "event"]),
        h.seqs_where(|e| e.kind() == EntryKind::Event)
    );

    // Relative times: the last 90 minutes hold phase 2 only.
    let recent = h.seqs_where(|e| e.at >= h.t1);
    assert_eq!(recent.first(), Some(&h.app_rv2));
    assert_eq!(log_seqs(&h, &["--since", "90m"]), recent);
    assert_eq!(
        log_seqs(&h, &["--until", "90m"]),
        (1..h.app_rv2).collect::<Vec<_>>()
    );
    // Absolute times: [since, until).
    let since = h.t0 + minutes(2);
    let until = h.t0 + minutes(4);
    let window = h.seqs_where(|e| e.at >= since && e.at < until);
    assert_eq!(window.first(), Some(&h.plan1));
    assert_eq!(window.last(), Some(&h.svc_failed));
    assert_eq!(
        log_seqs(
            &h,
            &["--since", &rfc3339(since), "--until", &rfc3339(until)]
        ),
        window
    );
    // Seq ranges, inclusive.
    assert_eq!(
        log_seqs(&h, &["--from-seq", "3", "--to-seq", "5"]),
        vec![3, 4, 5]
    );
    assert_eq!(
        log_seqs(&h, &["--object", "svc/shop/legacy", "--from-seq", "3"]),
        vec![h.legacy_deleted]
    );
}

#[test]
fn nothing_matching_is_an_empty_answer_with_a_hint() {
    let h = history();
    let run = audit(&["log", "--log", h.log(), "--object", "Deployment/shop/nope"]);
    run.ok();
    assert!(run.out.is_empty(), "{}", run.out);
    assert_eq!(run.err.trim_end().lines().count(), 1, "{}", run.err);
    assert!(run.err.contains("no entry"), "{}", run.err);
    assert!(run.err.contains(&format!("1..={}", h.last)), "{}", run.err);
}

#[test]
fn json_lines_parse_and_carry_bodies_as_json() {
    let h = history();
    let run = audit(&["log", "--log", h.log(), "-o", "json"]);
    run.ok();
    let lines: Vec<&str> = run.out.lines().collect();
    assert_eq!(lines.len() as u64, h.last);
    let entries = h.entries();
    for (line, entry) in lines.iter().zip(&entries) {
        assert!(line.starts_with("{\"seq\":"), "{line}");
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["seq"], json!(entry.seq));
        assert_eq!(v["id"], json!(entry.id.to_string()));
        assert_eq!(v["kind"], json!(entry.kind().as_str()));
        let at = v["at"].as_str().unwrap_or_default();
        let at = DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(at.with_timezone(&Utc), entry.at, "nanoseconds are kept");
        assert_eq!(
            v["keys"]["application"],
            json!(entry.keys.application.clone())
        );
        assert!(
            v["keys"].as_object().is_some_and(|k| k.len() == 4),
            "{line}"
        );
        match &entry.body {
            Body::Event(ev) if ev.change == Change::Upsert => {
                assert!(
                    v["body"]["object"].is_object(),
                    "embedded object as JSON: {line}"
                );
                assert_eq!(v["body"]["resource_version"], json!(ev.resource_version));
            }
            Body::Action(a) => {
                assert_eq!(v["body"]["plan_seq"], json!(a.plan_seq));
                assert_eq!(v["body"]["action"]["id"], json!(a.action.id));
            }
            Body::Plan(p) => assert_eq!(v["body"]["upto_seq"], json!(p.upto_seq)),
            _ => assert!(v["body"].is_object(), "{line}"),
        }
    }
}

#[test]
fn follow_prints_entries_appended_after_it_started() {
    let h = history();
    let deadline = Deadline::after(Duration::from_secs(60));
    let mut child = Guard(
        command(&[
            "log",
            "--log",
            h.log(),
            "--object",
            "Deployment/shop/web",
            "--follow",
        ])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let err = drain(child.0.stderr.take().unwrap_or_else(|| panic!("no stderr")));
    let rx = lines_of(child.0.stdout.take().unwrap_or_else(|| panic!("no stdout")));
    let last_dep = format!(" {} ", h.dep_rv102);
    let first = wait_for_line(&rx, &deadline, "the existing entries", |l| {
        l.contains(&last_dep)
    });
    assert_eq!(first.len(), 6, "{first:#?}");

    // One entry about something else, then one about the Deployment.
    let other = delete(
        &ObjKey::new("Service", "shop", "other"),
        "uid-other",
        "7",
        Utc::now(),
    );
    let seqs = append_within(
        &h.path,
        vec![other, web_deployment_event(103, Utc::now())],
        Duration::from_secs(10),
    );
    let want = format!(" {} ", seqs[1]);
    let more = wait_for_line(&rx, &deadline, "the appended entry", |l| l.contains(&want));
    assert_eq!(
        more.len(),
        1,
        "only the matching entry is printed: {more:#?}"
    );
    assert!(
        more[0].contains("Deployment shop/web seen at rv 103"),
        "{}",
        more[0]
    );

    // SIGTERM ends it cleanly.
    sigterm(&child);
    let code = wait_exit(&mut child, &deadline, "audit log --follow after SIGTERM");
    assert_eq!(code, Some(0));
    let err = err.join().unwrap_or_default();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn follow_ends_quietly_when_its_output_is_closed() {
    let h = history();
    let deadline = Deadline::after(Duration::from_secs(60));
    let mut child = Guard(
        command(&["log", "--log", h.log(), "--follow"])
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let err = drain(child.0.stderr.take().unwrap_or_else(|| panic!("no stderr")));
    let stdout = child.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut first = String::new();
    let mut reader = BufReader::new(stdout);
    reader
        .read_line(&mut first)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.contains("marker"), "{first}");
    drop(reader); // like `| head -1`
    // The next write fails with a broken pipe: it must end, with exit 0 and no panic.
    let mut rv = 200;
    let code = loop {
        if let Ok(Some(s)) = child.0.try_wait() {
            break s.code();
        }
        deadline.check("audit log --follow with its output closed");
        append_within(
            &h.path,
            vec![web_deployment_event(rv, Utc::now())],
            Duration::from_secs(10),
        );
        rv += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(0));
    let err = err.join().unwrap_or_default();
    assert!(err.is_empty(), "{err}");
}

// ---------------------------------------------------------------------------------------------
// audit why

#[test]
fn why_names_the_action_plan_events_and_executor() {
    let h = history();
    let run = audit(&["why", "deploy/shop/web", "--log", h.log()]);
    run.ok();
    let text = &run.out;
    assert!(
        text.starts_with("Deployment/shop/web, as of the end of the log"),
        "{text}"
    );
    assert!(
        text.contains("Last changed by logbook: apply (drift at spec.replicas)"),
        "{text}"
    );
    assert!(text.contains(&h.apply_dep.1.id), "{text}");
    assert!(
        text.contains(&format!("plan     seq {}", h.plan2)),
        "{text}"
    );
    assert!(
        text.contains(&format!("action   seq {}", h.apply_dep.0)),
        "{text}"
    );
    assert!(
        text.contains(&format!("outcome  seq {}", h.dep_applied2)),
        "{text}"
    );
    assert!(
        text.contains("applied by executor-3 (attempt 1), resulting resourceVersion 102"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Application/shop/web at rv 2: event seq {}",
            h.app_rv2
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Deployment/shop/web at rv 101: event seq {}",
            h.dep_rv101
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("last observed: event seq {}", h.dep_rv102)),
        "{text}"
    );

    let run = audit(&["why", "Deployment/shop/web", "--log", h.log(), "-o", "json"]);
    run.ok();
    let v: Value = serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}: {}", run.out));
    assert_eq!(v["object"], "Deployment/shop/web");
    assert_eq!(v["state"], "changed");
    assert_eq!(v["deleted"], false);
    assert_eq!(v["outcome"]["seq"], json!(h.dep_applied2));
    assert_eq!(v["outcome"]["executor"], "executor-3");
    assert_eq!(v["outcome"]["resource_version"], "102");
    assert_eq!(v["action"]["seq"], json!(h.apply_dep.0));
    assert_eq!(v["action"]["action_id"], json!(h.apply_dep.1.id));
    assert_eq!(v["action"]["verb"], "apply");
    assert_eq!(v["plan"]["seq"], json!(h.plan2));
    assert_eq!(v["plan"]["upto_seq"], json!(h.app_rv2));
    assert_eq!(v["plan"]["config_digest"], "sha256:test");
    let basis: Vec<(String, u64)> = v["basis"]
        .as_array()
        .unwrap_or_else(|| panic!("no basis: {v}"))
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap_or_default().to_string(),
                b["event"]["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        basis,
        vec![
            ("Application/shop/web".to_string(), h.app_rv2),
            ("Deployment/shop/web".to_string(), h.dep_rv101)
        ]
    );
    assert_eq!(v["events"]["last"]["seq"], json!(h.dep_rv102));
    assert_eq!(v["notes"], json!([]));
}

#[test]
fn why_at_an_earlier_time_gives_the_earlier_state_or_says_there_was_none() {
    let h = history();
    // After the first outcome, before the scale-up: the create, from plan 1.
    let at = rfc3339(h.t0 + minutes(10));
    let run = audit(&[
        "why",
        "Deployment/shop/web",
        "--at",
        &at,
        "--log",
        h.log(),
        "-o",
        "json",
    ]);
    run.ok();
    let v: Value = serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}: {}", run.out));
    assert_eq!(v["state"], "changed");
    assert_eq!(v["action"]["action_id"], json!(h.create_dep.1.id));
    assert_eq!(v["action"]["verb"], "create");
    assert_eq!(v["plan"]["seq"], json!(h.plan1));
    assert_eq!(v["outcome"]["seq"], json!(h.dep_applied1));
    assert_eq!(v["outcome"]["executor"], "executor-7");
    assert_eq!(v["basis"][0]["key"], "Application/shop/web");
    assert_eq!(v["basis"][0]["event"]["seq"], json!(h.app_rv1));
    assert_eq!(v["events"]["last"]["seq"], json!(h.dep_rv101));
    assert_eq!(v["later_actions"], json!([]), "nothing after --at counts");

    // Between the plan and its outcome: planned, never confirmed.
    let at = rfc3339(h.t0 + minutes(2) + chrono::Duration::seconds(30));
    let run = audit(&["why", "Deployment/shop/web", "--at", &at, "--log", h.log()]);
    run.ok();
    assert!(run.out.contains("never confirmed applied"), "{}", run.out);
    assert!(run.out.contains(&h.create_dep.1.id), "{}", run.out);
    assert!(run.out.contains("no outcome reported yet"), "{}", run.out);

    // Before anything about it: one clear line, exit 2.
    let at = rfc3339(h.t0 + minutes(1));
    let run = audit(&["why", "Deployment/shop/web", "--at", &at, "--log", h.log()]);
    run.refused(&[
        "no entry about Deployment/shop/web at or before",
        &format!("its first is seq {}", h.create_dep.0),
    ]);
}

#[test]
fn why_tells_unconfirmed_actions_observed_only_and_deleted_objects() {
    let h = history();
    // The Service: created in plan 1 (failed), created again in plan 2, never applied.
    let run = audit(&["why", "svc/shop/web", "--log", h.log(), "-o", "json"]);
    run.ok();
    let v: Value = serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}: {}", run.out));
    assert_eq!(v["state"], "planned");
    assert!(v["outcome"].is_null());
    assert_eq!(v["action"]["plan_seq"], json!(h.plan2));
    let run = audit(&[
        "why",
        "svc/shop/web",
        "--at",
        &rfc3339(h.t0 + minutes(10)),
        "--log",
        h.log(),
    ]);
    run.ok();
    assert!(run.out.contains("never confirmed applied"), "{}", run.out);
    assert!(run.out.contains(&h.create_svc.1.id), "{}", run.out);
    assert!(
        run.out.contains(&format!("outcome seq {}", h.svc_failed))
            && run.out.contains("failed by executor-7"),
        "{}",
        run.out
    );

    // The unmanaged Service: observed, then deleted; logbook never touched it.
    let run = audit(&["why", "Service/shop/legacy", "--log", h.log()]);
    run.ok();
    assert!(run.out.contains("logbook never changed it"), "{}", run.out);
    assert!(run.out.contains("2 events recorded"), "{}", run.out);
    assert!(
        run.out.contains(&format!(
            "It is gone: deleted (event seq {}",
            h.legacy_deleted
        )),
        "{}",
        run.out
    );
    let run = audit(&["why", "Service/shop/legacy", "--log", h.log(), "-o", "json"]);
    let v: Value = serde_json::from_str(&run.ok().out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["state"], "observed");
    assert_eq!(v["deleted"], true);
    assert_eq!(v["events"]["first"]["seq"], json!(h.legacy_seen));
    assert_eq!(v["events"]["last"]["change"], "delete");
}

#[test]
fn why_an_unknown_object_is_one_clear_line_and_exit_2() {
    let h = history();
    let run = audit(&["why", "Deployment/shop/nope", "--log", h.log()]);
    run.refused(&["no entry about Deployment/shop/nope", "history.db"]);
    assert!(run.out.is_empty());
    let run = audit(&["why", "nonsense", "--log", h.log()]);
    assert_eq!(run.code, Some(2), "{}", run.err);
    assert!(run.err.contains("KIND/NAMESPACE/NAME"), "{}", run.err);
}

// ---------------------------------------------------------------------------------------------
// audit verify

#[test]
fn verify_passes_an_intact_log_and_names_the_tampered_entry() {
    let h = history();
    let run = audit(&["verify", "--log", h.log()]);
    run.ok();
    assert!(
        run.out.contains(&format!("{} entries intact", h.last)),
        "{}",
        run.out
    );
    let run = audit(&["verify", "--log", h.log(), "-o", "json"]);
    let v: Value = serde_json::from_str(&run.ok().out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["ok"], true);
    assert_eq!(v["checked"], json!(h.last));
    assert_eq!(v["last_good_seq"], json!(h.last));
    assert!(v["problem"].is_null());
    assert_eq!(v["head"].as_str().map(str::len), Some(64));

    // A copy with one payload edited.
    let bad = h.path.with_file_name("tampered.db");
    copy_log(&h.path, &bad);
    let conn = raw(&bad);
    exec(
        &conn,
        "DROP TRIGGER entries_append_only_update; DROP TRIGGER entries_append_only_delete;",
    );
    let seq = h.dep_applied1;
    exec(
        &conn,
        &format!("UPDATE entries SET payload = CAST(payload || x'00' AS BLOB) WHERE seq = {seq}"),
    );
    drop(conn);
    let run = audit(&["verify", "--log", path_str(&bad)]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.out, run.err);
    assert!(!run.err.contains("panicked"), "{}", run.err);
    assert!(
        run.out.contains(&format!("entry {seq} was edited")),
        "{}",
        run.out
    );
    let run = audit(&["verify", "--log", path_str(&bad), "-o", "json"]);
    assert_eq!(run.code, Some(1), "{}", run.err);
    let v: Value = serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["ok"], false);
    assert_eq!(v["problem"]["seq"], json!(seq));
    assert_eq!(v["last_good_seq"], json!(seq - 1));
    assert!(
        v["problem"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("edited")),
        "{v}"
    );
    // The original is untouched.
    audit(&["verify", "--log", h.log()]).ok();
}

// ---------------------------------------------------------------------------------------------
// bad input

#[test]
fn bad_logs_get_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.db");
    let not_a_log = dir.path().join("notes.txt");
    std::fs::write(&not_a_log, "these are my notes, not a log\n".repeat(100))
        .unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap_or_else(|e| panic!("{e}"));
    let commands: [&[&str]; 3] = [&["log"], &["why", "Deployment/shop/web"], &["verify"]];
    for cmd in commands {
        let with = |p: &Path| {
            let mut args = cmd.to_vec();
            args.extend(["--log", path_str(p)]);
            audit(&args)
        };
        with(&missing).refused(&["missing.db", "--log"]);
        with(dir.path()).refused(&["directory", "not a logbook log"]);
        with(&not_a_log).refused(&["notes.txt", "not a logbook log"]);
        with(&empty).refused(&["empty.db", "not a logbook log"]);
        assert!(!missing.exists(), "audit created the log");
    }
    // The default is ./logbook.db.
    let mut child = Guard(
        command(&["verify"])
            .current_dir(dir.path())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let err = drain(child.0.stderr.take().unwrap_or_else(|| panic!("no stderr")));
    let code = wait_exit(&mut child, &Deadline::after(RUN_LIMIT), "audit verify");
    assert_eq!(code, Some(2));
    let err = err.join().unwrap_or_default();
    assert!(
        err.contains("logbook.db") && err.contains("LOGBOOK_LOG"),
        "{err}"
    );
    assert!(!dir.path().join("logbook.db").exists());
}

#[test]
fn a_truncated_log_gets_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("full.db");
    let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
    for chunk in many(3000).chunks(500) {
        log.append(chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    drop(log);
    let full = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    let log = path_str(&cut);
    audit(&["log", "--log", log]).refused(&["cut.db"]);
    audit(&["log", "--log", log, "-o", "json"]).refused(&["cut.db"]);
    audit(&["verify", "--log", log]).refused(&["cut.db"]);
    // A cut at the header: not even a database.
    let stub = dir.path().join("stub.db");
    std::fs::write(&stub, &full[..50]).unwrap_or_else(|e| panic!("{e}"));
    for cmd in ["log", "verify"] {
        audit(&[cmd, "--log", path_str(&stub)]).refused(&["stub.db", "not a logbook log"]);
    }
}

#[test]
fn contradictory_or_out_of_range_requests_are_refused() {
    let h = history();
    let log = h.log();
    let beyond = (h.last + 1).to_string();
    audit(&["log", "--log", log, "--from-seq", &beyond]).refused(&[
        &format!("--from-seq {beyond} is beyond the end"),
        &format!("last entry is seq {}", h.last),
    ]);
    audit(&["log", "--log", log, "--from-seq", "5", "--to-seq", "3"]).refused(&["--from-seq 5"]);
    audit(&["log", "--log", log, "--since", "1h", "--until", "2h"]).refused(&["--since"]);
    // Flags that do not parse: clap's message, exit 2, no panic.
    for args in [
        &["log", "--kind", "step"][..],
        &["log", "--since", "yesterday"],
        &["log", "--app", "web"],
        &["log", "--object", "web"],
        &["log", "--from-seq", "0"],
        &["verify", "-o", "yaml"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--log", log]);
        let run = audit(&all);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.err);
        assert!(!run.err.contains("panicked"), "{}", run.err);
        assert!(run.out.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// reads never block writes

#[test]
fn reads_never_block_the_writer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("big.db");
    let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
    for chunk in many(30_000).chunks(5000) {
        log.append(chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    drop(log);
    let deadline = Deadline::after(Duration::from_secs(120));
    let p = path_str(&path);
    let mut follow = Guard(
        command(&[
            "log", "--log", p, "--follow", "--kind", "event", "-o", "json",
        ])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let rx = lines_of(
        follow
            .0
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout")),
    );
    let mut verify = Guard(
        command(&["verify", "--log", p])
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let verify_out = drain(
        verify
            .0
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout")),
    );
    // The follower is reading (it has printed), and the verifier has started: append, one batch
    // after another, until the verifier is done; each append must finish within 10 s.
    wait_for_line(&rx, &deadline, "the follower's first line", |_| true);
    let mut appended = Vec::new();
    let mut during_verify = 0;
    let mut rv = 1_000_000;
    loop {
        let running_before = matches!(verify.0.try_wait(), Ok(None));
        let seqs = append_within(
            &path,
            vec![web_deployment_event(rv, Utc::now())],
            Duration::from_secs(10),
        );
        rv += 1;
        appended.extend(seqs);
        let running_after = matches!(verify.0.try_wait(), Ok(None));
        if running_before && running_after {
            during_verify += 1;
        }
        if !running_after || appended.len() >= 50 {
            break;
        }
        deadline.check("appending while audit reads");
    }
    assert!(
        during_verify > 0,
        "verify finished before any append could overlap it; make the log bigger"
    );
    let code = wait_exit(&mut verify, &deadline, "audit verify on a big log");
    assert_eq!(code, Some(0));
    assert!(
        verify_out
            .join()
            .unwrap_or_default()
            .contains("entries intact"),
        "verify saw a consistent prefix"
    );
    // The follower prints every appended event.
    let last = format!("\"seq\":{}", appended.last().copied().unwrap_or_default());
    wait_for_line(&rx, &deadline, "the appended events", |l| l.contains(&last));
}

// ---------------------------------------------------------------------------------------------
// A log of what changed

#[test]
fn why_and_log_show_whole_objects_of_a_log_of_what_changed() {
    // The shared Ingress of `shop` is recorded as patches once it is large.
    let (h, before) = logbook_testkit::history::shared_ingress();
    let log = h.path.to_str().unwrap_or_else(|| panic!("a UTF-8 path"));
    // `why` reads the last action's basis, which the log stores inside its patch.
    let run = audit(&["why", "ing/shop/logbook", "--log", log, "-o", "json"]);
    run.ok();
    let v: Value = serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}: {}", run.out));
    assert!(v["action"]["seq"].as_u64() > Some(before), "{v}");
    let basis: Vec<&str> = v["basis"]
        .as_array()
        .unwrap_or_else(|| panic!("no basis: {v}"))
        .iter()
        .filter_map(|b| b["key"].as_str())
        .collect();
    assert!(basis.len() > 200, "{basis:?}");
    assert!(basis.contains(&"Application/shop/app-201"), "{basis:?}");
    // `log -o json`: whole bodies, and how a patched entry is stored.
    let run = audit(&[
        "log",
        "--object",
        "ing/shop/logbook",
        "--log",
        log,
        "-o",
        "json",
    ]);
    run.ok();
    let patched = logbook_testkit::history::whole_ingress_lines(&run.out)
        .iter()
        .filter(|v| v["delta"]["base_seq"].is_u64())
        .count();
    assert!(patched >= 2, "{}", run.out);
}
