//! End to end, seen from the admin servers: `/metrics` of the controller and of an executor
//! count exactly what the test caused (compared with the log), the controller's periodic chain
//! check counts an entry edited under it, `POST /checkpoint` records a checkpoint, `/readyz` follows the watches and NATS, and `--log-format json` writes one JSON
//! object per line, with the action id on every line of an action's handling.

use logbook_testkit::sandbox as support;
use logbook_testkit::{AppTest, e2e};

use e2e::Env;
use logbook::model::Application;
use logbook::record::{Body, Entry};
use logbook::sandbox::Verb;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read, Write};
use std::time::Duration;

/// `GET url` (plain HTTP/1.0 on loopback, bounded): status and body, or `None` when nothing
/// answers (yet).
async fn get(url: &str) -> Option<(u16, String)> {
    request("GET", url, Duration::from_secs(5)).await
}

/// `POST url` with no body (plain HTTP/1.0 on loopback, bounded): status and body.
async fn post(url: &str) -> Option<(u16, String)> {
    request("POST", url, Duration::from_secs(70)).await
}

/// `method url` with no body, waiting up to `wait` for the answer: status and body.
async fn request(method: &'static str, url: &str, wait: Duration) -> Option<(u16, String)> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let addr: std::net::SocketAddr = host.parse().ok()?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(wait)).ok()?;
        write!(
            s,
            "{method} /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    })
    .await
    .ok()?
}

/// The samples of a metrics text: (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect();
            Some((name.to_string(), labels, value))
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// Per label value, the sum of the samples named `name` (e.g. `actions_total` by `verb`).
fn by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (n, l, v) in samples(text) {
        if n == name
            && let Some(lv) = l.get(label)
        {
            *out.entry(lv.clone()).or_insert(0) += v as u64;
        }
    }
    out
}

fn count_by<K: Ord>(entries: &[Entry], key: impl Fn(&Entry) -> Option<K>) -> BTreeMap<K, u64> {
    let mut out = BTreeMap::new();
    for e in entries {
        if let Some(k) = key(e) {
            *out.entry(k).or_insert(0) += 1;
        }
    }
    out
}

fn apps(n: usize) -> Vec<Application> {
    (0..n)
        .map(|i| {
            Application::test("shop", &format!("app-{i}"))
                .host(&format!("app-{i}.example.com"))
                .build()
        })
        .collect()
}

/// The lines of a process's log file, each parsed as JSON (panics on one that is not).
fn json_lines(env: &Env, name: &str) -> Vec<Value> {
    let path = env.dir.path().join(format!("{name}.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {l}", path.display()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_test_caused() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.env_vars
            .push(("LOGBOOK_LOG_FORMAT".into(), "json".into()));
        env.env_vars
            .push(("LOGBOOK_VERIFY_EVERY".into(), "200ms".into()));
        env.controller();
        let n = 3;
        let all = apps(n);
        for a in &all {
            env.apply(a).await;
        }
        // Actions wait in the queue until an executor comes, and it works slowly at first:
        // its queue depth is seen above 0, then back at 0.
        env.wait("the first actions to be planned", || async {
            env.entries()
                .iter()
                .any(|e| matches!(e.body, Body::Action(_)))
                .then_some(())
        })
        .await;
        env.sandbox
            .faults()
            .set_latency(Verb::Patch, Duration::from_millis(300));
        env.executor("ex-1", 1);
        let executor = env.admin_url("ex-1");
        let depth = env
            .wait("the executor to see actions waiting", || async {
                let (_, text) = get(&format!("{executor}/metrics")).await?;
                let depth = value(&text, "logbook_queue_depth", &[]);
                (depth > 0.0).then_some(depth)
            })
            .await;
        assert!(depth >= 1.0);
        env.sandbox.faults().set_latency(Verb::Patch, Duration::ZERO);
        env.converged(&all).await;
        let controller = env.admin_url("controller");

        // A checkpoint on demand: answered with where it is, in the log right there, and
        // published like any entry (the bus carries its summary, not its state), so the
        // counts below include it.
        let (status, body) = post(&format!("{controller}/checkpoint"))
            .await
            .expect("the controller's admin server answers");
        assert_eq!(status, 200, "{body}");
        let taken: Value = serde_json::from_str(body.trim()).expect("a JSON answer");
        assert_eq!(taken["new"], true, "{taken}");
        assert_eq!(taken["applications"], n as u64, "{taken}");
        let seq = taken["seq"].as_u64().expect("its seq");
        let at = env
            .entries()
            .into_iter()
            .find(|e| e.seq == seq)
            .expect("the checkpoint is in the log");
        assert!(
            matches!(&at.body, Body::Marker(m) if m.marker == logbook::record::MarkerKind::Checkpoint
                && m.state.as_ref().is_some_and(|s| s.len() as u64 == taken["bytes"].as_u64().unwrap_or(0))),
            "entry {seq}: {at:?}"
        );
        assert_eq!(get(&format!("{controller}/checkpoint")).await.map(|r| r.0), Some(405));

        // The controller's counts are the log's: every entry in it was appended by this
        // process. Scraped and read until both agree at a quiet moment.
        let (text, entries) = env
            .wait("the controller's metrics to match the log", || async {
                let (status, text) = get(&format!("{controller}/metrics")).await?;
                let entries = env.entries();
                let last = entries.last()?.seq as f64;
                let same = status == 200
                    && value(&text, "logbook_last_committed_seq", &[]) == last
                    && value(&text, "logbook_last_published_seq", &[]) == last
                    && value(&text, "logbook_publish_lag_entries", &[]) == 0.0
                    && value(&text, "logbook_queue_depth", &[]) == 0.0;
                same.then_some((text, entries))
            })
            .await;
        let kinds = count_by(&entries, |e| Some(e.kind().as_str().to_string()));
        assert_eq!(
            by_label(&text, "logbook_entries_appended_total", "kind"),
            kinds,
            "entries by kind\n{text}"
        );
        assert_eq!(
            value(&text, "logbook_plans_total", &[]) as u64,
            kinds.get("plan").copied().unwrap_or(0)
        );
        let verbs = count_by(&entries, |e| match &e.body {
            Body::Action(a) => Some(a.action.verb.as_str().to_string()),
            _ => None,
        });
        assert_eq!(by_label(&text, "logbook_actions_total", "verb"), verbs);
        assert!(
            verbs.get("create").copied().unwrap_or(0) >= 2 * n as u64,
            "a Deployment and a Service created per Application: {verbs:?}"
        );
        let results = count_by(&entries, |e| match &e.body {
            Body::Outcome(o) => Some(o.result.as_str().to_string()),
            _ => None,
        });
        assert_eq!(by_label(&text, "logbook_outcomes_total", "result"), results);
        assert!(results.get("applied").copied().unwrap_or(0) >= 2 * n as u64);
        let markers = count_by(&entries, |e| match &e.body {
            Body::Marker(m) => Some(m.marker.as_str().to_string()),
            _ => None,
        });
        assert_eq!(by_label(&text, "logbook_markers_total", "marker"), markers);
        assert!(markers.contains_key("start") && markers.contains_key("checkpoint"));
        assert_eq!(value(&text, "logbook_log_verify_failures_total", &[]), 0.0);

        // The executor's: what it handled is what the log holds from it, by verb and result,
        // and each handled action was timed once.
        let verb_of: BTreeMap<String, String> = entries
            .iter()
            .filter_map(|e| match &e.body {
                Body::Action(a) => Some((a.action.id.clone(), a.action.verb.as_str().to_string())),
                _ => None,
            })
            .collect();
        let text = env
            .wait("the executor's metrics to match its outcomes", || async {
                let (status, text) = get(&format!("{executor}/metrics")).await?;
                let entries = env.entries();
                let mine = count_by(&entries, |e| match &e.body {
                    Body::Outcome(o) if o.executor == "ex-1" => Some(format!(
                        "{}/{}",
                        verb_of.get(&o.action_id).map(String::as_str).unwrap_or("?"),
                        o.result.as_str()
                    )),
                    _ => None,
                });
                let handled: BTreeMap<String, u64> = samples(&text)
                    .into_iter()
                    .filter(|(name, _, _)| name == "logbook_actions_handled_total")
                    .map(|(_, l, v)| (format!("{}/{}", l["verb"], l["result"]), v as u64))
                    .collect();
                let quiet = value(&text, "logbook_in_flight", &[]) == 0.0
                    && value(&text, "logbook_queue_depth", &[]) == 0.0;
                (status == 200 && quiet && handled == mine).then_some(text)
            })
            .await;
        let handled = value(&text, "logbook_actions_handled_total", &[]);
        assert!(handled >= (2 * n) as f64, "{text}");
        assert_eq!(
            value(&text, "logbook_apply_duration_seconds_count", &[]),
            handled,
            "every handled action was timed once\n{text}"
        );
        assert!(value(&text, "logbook_apply_duration_seconds_sum", &[]) > 0.0);
        let redelivered = env
            .entries()
            .iter()
            .filter(|e| matches!(&e.body, Body::Outcome(o) if o.executor == "ex-1" && o.attempt > 1))
            .count();
        assert_eq!(
            value(&text, "logbook_redeliveries_total", &[]) as usize,
            redelivered
        );

        // Both are ready and alive.
        for url in [&controller, &executor] {
            assert_eq!(get(&format!("{url}/readyz")).await, Some((200, "ok\n".into())));
            assert_eq!(get(&format!("{url}/healthz")).await, Some((200, "ok\n".into())));
        }

        // JSON logs: every line of an action's handling in the executor carries its id, and
        // so do the controller's lines about outcomes.
        let lines = json_lines(&env, "ex-1");
        assert!(
            lines
                .iter()
                .all(|l| l["level"].is_string() && l["fields"].is_object()),
            "every line has a level and fields"
        );
        let applying: Vec<&Value> = lines
            .iter()
            .filter(|l| l["fields"]["message"] == "applying")
            .collect();
        assert_eq!(applying.len() as f64, handled, "one `applying` line per action");
        let mut ids = BTreeSet::new();
        for l in &lines {
            let in_action = l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == "action"));
            if in_action || l["target"].as_str().is_some_and(|t| t.contains("executor::apply")) {
                let id = l["span"]["action_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a line of an action's handling without its id: {l}"));
                ids.insert(id.to_string());
            }
        }
        let outcome_ids: BTreeSet<String> = env
            .entries()
            .iter()
            .filter_map(|e| match &e.body {
                Body::Outcome(o) if o.executor == "ex-1" => Some(o.action_id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, outcome_ids, "the action ids in ex-1's lines");
        let recorded: BTreeSet<String> = json_lines(&env, "controller")
            .iter()
            .filter(|l| l["fields"]["message"] == "outcome recorded")
            .filter_map(|l| l["fields"]["action_id"].as_str().map(str::to_string))
            .collect();
        assert_eq!(recorded, outcome_ids, "the controller's outcome lines");

        // The chain is checked again while the controller runs (every 200 ms here): it has
        // found the log intact past the checkpoint, and an entry edited on disk under it is
        // counted as a failure (the controller goes on; its next start would refuse the log).
        env.wait("the periodic check to reach the checkpoint", || async {
            let (_, text) = get(&format!("{controller}/metrics")).await?;
            (value(&text, "logbook_log_verified_seq", &[]) >= seq as f64).then_some(())
        })
        .await;
        {
            let db = rusqlite::Connection::open(&env.log_path).expect("the log opens");
            db.busy_timeout(Duration::from_secs(5)).expect("a busy timeout");
            db.execute_batch(
                "DROP TRIGGER entries_append_only_update; \
                 UPDATE entries SET at_ns = at_ns + 1 WHERE seq = 2;",
            )
            .expect("an entry edited under the controller");
        }
        env.wait("the periodic check to count the damage", || async {
            let (_, text) = get(&format!("{controller}/metrics")).await?;
            (value(&text, "logbook_log_verify_failures_total", &[]) >= 1.0).then_some(())
        })
        .await;
        assert!(
            json_lines(&env, "controller").iter().any(|l| l["level"] == "ERROR"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("hash chain is broken"))
                && l["fields"]["seq"] == 2),
            "the controller logs the damage, naming the entry"
        );

        // SIGTERM: the controller exits 0 with a stop marker and nothing left unpublished.
        assert!(env.stop_controller().success(), "{}", env.tails());
        let entries = env.entries();
        assert!(
            matches!(&entries.last().unwrap().body, Body::Marker(m) if m.marker == logbook::record::MarkerKind::Stop)
        );
        let cursor = logbook::log::LogReader::open(&env.log_path)
            .unwrap()
            .cursor("outbox")
            .unwrap();
        assert_eq!(
            cursor,
            Some(entries.last().unwrap().seq),
            "the outbox cursor was flushed up to the stop marker"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_watches_and_nats() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        // NATS is not up when the processes start.
        env.nats.kill();
        env.controller();
        env.executor("ex-1", 2);
        let controller = env.admin_url("controller");
        let executor = env.admin_url("ex-1");
        let readyz = |url: String| async move { get(&format!("{url}/readyz")).await };

        // Synced, but NATS is away: not ready, and it says why; alive all the same.
        let body = env
            .wait(
                "the controller to be synced but not ready without NATS",
                || {
                    let url = controller.clone();
                    async move {
                        let (status, body) = readyz(url).await?;
                        (status == 503 && body == "NATS is not connected\n").then_some(body)
                    }
                },
            )
            .await;
        assert_eq!(body, "NATS is not connected\n");
        assert_eq!(
            get(&format!("{controller}/healthz")).await,
            Some((200, "ok\n".into()))
        );
        let (status, body) = env
            .wait("the executor to answer", || readyz(executor.clone()))
            .await;
        assert_eq!(status, 503);
        assert!(body.contains("NATS is not connected"), "{body}");

        // NATS comes up: both ready.
        env.nats.restart().unwrap();
        for url in [&controller, &executor] {
            env.wait(&format!("{url}/readyz to be 200"), || {
                let url = url.clone();
                async move { (readyz(url).await? == (200, "ok\n".to_string())).then_some(()) }
            })
            .await;
        }

        // NATS goes away: both not ready; back: ready again.
        env.nats.kill();
        for url in [&controller, &executor] {
            env.wait(&format!("{url}/readyz to be 503 without NATS"), || {
                let url = url.clone();
                async move {
                    let (status, body) = readyz(url).await?;
                    (status == 503 && body.contains("NATS is not connected")).then_some(())
                }
            })
            .await;
        }
        // Not ready is not dead: NATS being away does not make a process unhealthy.
        for url in [&controller, &executor] {
            assert_eq!(
                get(&format!("{url}/healthz")).await,
                Some((200, "ok\n".into()))
            );
        }
        env.nats.restart().unwrap();
        for url in [&controller, &executor] {
            env.wait(&format!("{url}/readyz to be 200 again"), || {
                let url = url.clone();
                async move { (readyz(url).await?.0 == 200).then_some(()) }
            })
            .await;
        }
        // And the loop works after all this.
        let app = Application::test("shop", "web").build();
        env.apply(&app).await;
        env.converged(&[app]).await;
    })
    .await;
}

#[test]
fn json_log_lines_are_objects_with_level_and_fields() {
    // An executor with nowhere to connect logs its retries; each line must be one JSON object.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    // A kubeconfig for a cluster nobody serves: the executor never gets as far as using it.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: x\n  \
             cluster: {{server: \"http://127.0.0.1:{port}\"}}\ncontexts:\n- name: x\n  \
             context: {{cluster: x, user: x}}\nusers:\n- name: x\n  user: {{}}\n"
        ),
    )
    .unwrap();
    logbook::bus::sign::Keys::generate_local(&dir.path().join("keys")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args([
            "executor",
            "--log-format",
            "json",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .env("LOGBOOK_NATS_URL", format!("nats://127.0.0.1:{port}"))
        .env("LOGBOOK_SIGNING_KEY", dir.path().join("keys/executor.key"))
        .env(
            "LOGBOOK_TRUSTED_KEYS",
            dir.path()
                .join("keys")
                .join(logbook::bus::sign::TRUSTED_FILE),
        )
        .env("RUST_LOG", "info")
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("LOGBOOK_LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.len() >= 2, "too few lines within 20 s: {lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string(), "{l}");
        assert!(
            ["INFO", "WARN", "ERROR"].contains(&v["level"].as_str().unwrap_or("")),
            "{l}"
        );
        assert!(v["fields"]["message"].is_string(), "{l}");
        assert!(
            v["target"].as_str().unwrap_or("").starts_with("logbook"),
            "{l}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("admin server listening")),
        "{lines:?}"
    );
}
