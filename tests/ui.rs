//! `logbook ui`'s JSON endpoints and pages over a recorded history, through a real HTTP client:
//! the timeline's marks and counts, an entry's chain, an object's versions and diffs, the state
//! at a point, verify and what-if; and what bad input gets (a missing or damaged log, a seq past
//! the end, an unknown object, a foreign Host), with the server still serving afterwards.

use logbook::log::LogReader;
use logbook::log::reader::Lane;
use logbook::reconcile::PlannerConfig;
use logbook::record::{Body, Entry, EntryKind, ObjKey};
use logbook_testkit::history::{hand_edit_versions, standard};
use logbook_testkit::ui::UiServer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A copy of one standard history's log, shared by the tests of this file (read-only).
struct Recorded {
    _dir: tempfile::TempDir,
    path: PathBuf,
    entries: Vec<Entry>,
}

fn recorded() -> &'static Recorded {
    static H: OnceLock<Recorded> = OnceLock::new();
    H.get_or_init(|| {
        let h = standard(PlannerConfig::default());
        let entries = h.entries();
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("log.db");
        std::fs::copy(h.copy("copy.db"), &path).expect("a copy of the log");
        Recorded {
            _dir: dir,
            path,
            entries,
        }
    })
}

fn history() -> (&'static Recorded, &'static Vec<Entry>) {
    let r = recorded();
    (r, &r.entries)
}

fn server() -> UiServer {
    UiServer::start(&recorded().path)
}

fn action_about(entries: &[Entry], key: &ObjKey) -> Entry {
    entries
        .iter()
        .find(|e| matches!(&e.body, Body::Action(a) if &a.action.target == key))
        .cloned()
        .unwrap_or_else(|| panic!("an action on {key}"))
}

#[test]
fn summary_names_the_log_and_its_last_entry() {
    let (h, entries) = history();
    let s = server();
    let a = s.get("/api/summary");
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["last_seq"], entries.len() as u64);
    assert_eq!(v["path"], h.path.display().to_string());
}

#[test]
fn the_timeline_draws_every_entry_on_its_lane() {
    let (_, entries) = history();
    let s = server();
    let v = s.get("/api/timeline").json();
    assert_eq!(v["mode"], "marks", "{v}");
    let marks = v["marks"].as_array().expect("marks");
    assert_eq!(marks.len(), entries.len());
    assert_eq!(v["total"], entries.len() as u64);
    for (m, e) in marks.iter().zip(entries) {
        assert_eq!(m["seq"], e.seq);
        assert_eq!(m["kind"], e.kind().as_str());
        let lane = Lane::of(&e.keys);
        assert_eq!(m["lane"]["kind"], lane.kind.as_str(), "{m}");
        assert_eq!(m["lane"]["name"], lane.name.as_str(), "{m}");
    }
    let lanes: Vec<String> = v["lanes"]
        .as_array()
        .expect("lanes")
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["kind"].as_str().unwrap_or(""),
                l["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    for app in ["shop/web", "shop/api", "blog/site"] {
        assert!(lanes.contains(&format!("Application {app}")), "{lanes:?}");
    }
}

#[test]
fn timeline_filters_narrow_the_marks() {
    let (_, entries) = history();
    let s = server();
    let v = s
        .get("/api/timeline?app=shop/web&entry=action,outcome")
        .json();
    let want: Vec<u64> = entries
        .iter()
        .filter(|e| e.keys.application.as_deref() == Some("shop/web"))
        .filter(|e| matches!(e.kind(), EntryKind::Action | EntryKind::Outcome))
        .map(|e| e.seq)
        .collect();
    let got: Vec<u64> = v["marks"]
        .as_array()
        .expect("marks")
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let v = s.get("/api/timeline?ns=blog&kind=Deployment").json();
    let want = entries
        .iter()
        .filter(|e| e.keys.namespace.as_deref() == Some("blog"))
        .filter(|e| e.keys.object_kind.as_deref() == Some("Deployment"))
        .count();
    assert_eq!(v["marks"].as_array().map(Vec::len), Some(want));
    // A time window: only what was recorded in it (the first half of the log's span).
    // (Outcomes carry the executor's clock, here weeks earlier: they fall outside it.)
    let first = entries[0].at;
    let mut times: Vec<_> = entries
        .iter()
        .map(|e| e.at)
        .filter(|t| *t >= first)
        .collect();
    times.sort();
    let mid = times[times.len() / 2];
    let url = format!(
        "/api/timeline?from={}&to={}",
        first.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        mid.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    );
    let v = s.get(&url.replace('+', "%2B")).json();
    let want = entries
        .iter()
        .filter(|e| e.at >= first && e.at < mid)
        .count();
    assert_eq!(v["total"], want as u64, "{v}");
}

#[test]
fn past_the_threshold_marks_become_counts_per_bucket() {
    let (_, entries) = history();
    let s = server();
    let v = s.get("/api/timeline?max=10&buckets=7").json();
    assert_eq!(v["mode"], "buckets", "{v}");
    assert!(v.get("marks").is_none());
    let buckets = v["buckets"].as_array().expect("buckets");
    let sum: u64 = buckets.iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(sum, entries.len() as u64);
    for b in buckets {
        let i = b["bucket"].as_i64().expect("an index");
        assert!((0..7).contains(&i), "{b}");
    }
    // Per lane and kind, the counts are the entries'.
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in entries {
        let l = Lane::of(&e.keys);
        *want
            .entry((l.kind, e.kind().as_str().to_string()))
            .or_default() += 1;
    }
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    for b in buckets {
        let k = (
            b["lane"]["kind"].as_str().unwrap_or("").to_string(),
            b["kind"].as_str().unwrap_or("").to_string(),
        );
        *got.entry(k).or_default() += b["count"].as_u64().unwrap_or(0);
    }
    assert_eq!(got, want);
}

#[test]
fn an_action_shows_its_plan_events_outcome_and_why() {
    let (_, entries) = history();
    let s = server();
    let key = ObjKey::new("Deployment", "shop", "web");
    let action = action_about(entries, &key);
    let Body::Action(rec) = &action.body else {
        unreachable!()
    };
    let v = s.get(&format!("/api/entry/{}", action.seq)).json();
    let chain = &v["chain"];
    assert_eq!(chain["plan"]["seq"], rec.plan_seq, "{v}");
    assert_eq!(chain["actions"][0]["seq"], action.seq);
    let outcome = &chain["actions"][0]["outcomes"][0];
    assert_eq!(outcome["executor"], "executor-1", "{chain}");
    assert_eq!(outcome["attempt"], 1);
    assert_eq!(outcome["audit_id"], rec.action.id.as_str());
    assert!(outcome["resource_version"].is_string(), "{outcome}");
    assert!(
        chain["actions"][0]["next_observed"]["seq"].as_u64()
            > outcome["seq"].as_u64().map(|s| s - 10),
        "{chain}"
    );
    let events = chain["events"].as_array().expect("events");
    assert!(!events.is_empty(), "{chain}");
    for e in events {
        assert!(e["event"]["seq"].as_u64() < Some(rec.plan_seq), "{e}");
    }
    // The why is audit why's text.
    let why: Vec<&str> = v["why"]
        .as_array()
        .expect("why")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(why[0].starts_with("Deployment/shop/web, as of"), "{why:?}");
    let reader = LogReader::open(&recorded().path).expect("opens");
    let at = chrono::DateTime::parse_from_rfc3339(v["why_at"].as_str().expect("why_at"))
        .expect("a time")
        .with_timezone(&chrono::Utc);
    let expected = logbook::replay::why::narrate(
        &logbook::replay::why::explain(&reader, &key, Some(at)).expect("explains"),
    );
    assert_eq!(why, expected);
    // The outcome's page tells the same chain.
    let o = s.get(&format!("/api/entry/{}", outcome["seq"])).json();
    assert_eq!(o["chain"]["plan"]["seq"], rec.plan_seq);
    assert_eq!(o["chain"]["actions"][0]["seq"], action.seq);
    // The plan's page lists the action.
    let p = s.get(&format!("/api/entry/{}", rec.plan_seq)).json();
    let seqs: Vec<u64> = p["chain"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["seq"].as_u64())
        .collect();
    assert!(seqs.contains(&action.seq), "{seqs:?}");
}

#[test]
fn an_objects_versions_and_the_diff_between_any_two() {
    let (_, entries) = history();
    let s = server();
    let key = ObjKey::new("Deployment", "blog", "site");
    let v = s.get("/api/object/apps/v1/Deployment/blog/site").json();
    let versions: Vec<u64> = v["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|x| x["seq"].as_u64())
        .collect();
    let events: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(&e.body, Body::Event(ev) if ev.key == key))
        .collect();
    assert_eq!(versions, events.iter().map(|e| e.seq).collect::<Vec<_>>());
    // The hand edit (replicas 5) against the version before it: exactly spec.replicas.
    let (a, b) = hand_edit_versions(entries);
    let d = s
        .get(&format!(
            "/api/diff/apps/v1/Deployment/blog/site?a={a}&b={b}"
        ))
        .json();
    let changes = d["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{d}");
    assert_eq!(changes[0]["path"], "spec.replicas");
    assert_eq!(changes[0]["to"], 5);
    // Not only against now: the first version against the edit.
    let d = s
        .get(&format!(
            "/api/diff/Deployment/blog/site?a={}&b={b}",
            events[0].seq
        ))
        .json();
    let paths: Vec<&str> = d["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert!(paths.contains(&"spec.replicas"), "{paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("resourceVersion") && !p.contains("uid")),
        "{paths:?}"
    );
    // A seq that is not a version of the object.
    let bad = s.get(&format!("/api/diff/Deployment/blog/site?a=1&b={b}"));
    assert_eq!(bad.status, 404, "{}", bad.body);
    assert!(
        bad.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("not an observation"))
    );
}

#[test]
fn state_at_a_point_is_replays_state() {
    let (h, entries) = history();
    let s = server();
    // Before blog/site was deleted, its Deployment is there; at the end it is not.
    let deleted = entries
        .iter()
        .rfind(|e| matches!(&e.body, Body::Event(ev) if ev.key == ObjKey::new("Deployment", "blog", "site")))
        .expect("the delete");
    let at = |seq: u64| {
        let v = s.get(&format!("/api/state?at={seq}")).json();
        v["document"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| {
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap_or(""),
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(at(deleted.seq - 1).contains(&"Deployment/blog/site".to_string()));
    let end = at(entries.len() as u64);
    assert!(
        !end.contains(&"Deployment/blog/site".to_string()),
        "{end:?}"
    );
    assert!(end.contains(&"Deployment/shop/web".to_string()), "{end:?}");
    let reader = LogReader::open(&h.path).expect("opens");
    let world = logbook::replay::world_at(
        &reader,
        logbook::replay::Point::Seq(entries.len() as u64),
        None,
    )
    .expect("folds");
    let doc = logbook::replay::state_document(&world, Some("shop"));
    let v = s
        .get(&format!("/api/state?at={}&ns=shop", entries.len()))
        .json();
    assert_eq!(v["document"], doc);
    let past = s.get(&format!("/api/state?at={}", entries.len() + 5));
    assert_eq!(past.status, 404);
    assert!(
        past.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("beyond the end"))
    );
}

#[test]
fn verify_and_what_if() {
    let s = server();
    let v = s.get("/api/verify").json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["report"]["plans"].as_u64() > Some(0));
    let w = s.post("/api/what-if", "ingressClass: traefik\n");
    assert_eq!(w.status, 200, "{}", w.body);
    let w = w.json();
    assert!(w["plans_differing"].as_u64() > Some(0), "{w}");
    let same = s.post("/api/what-if", "").json();
    assert_eq!(same["plans_differing"], 0, "{same}");
    let bad = s.post("/api/what-if", "ingresClass: traefik\n");
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("ingressClass")),
        "{}",
        bad.body
    );
}

#[test]
fn deep_links_answer_with_the_page_or_a_clear_error_page() {
    let (_, entries) = history();
    let s = server();
    for path in [
        "/".to_string(),
        "/timeline?from=2025-01-01T00:00:00Z&app=shop/web".to_string(),
        format!("/entry/{}", entries.len()),
        "/object/apps/v1/Deployment/shop/web".to_string(),
        "/state?at=3".to_string(),
    ] {
        let a = s.get(&path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.body.contains("/assets/app.js"), "{path}");
    }
    let js = s.get("/assets/app.js");
    assert!(js.content_type.starts_with("text/javascript"));
    let a = s.get(&format!("/entry/{}", entries.len() + 1));
    assert_eq!(a.status, 404);
    assert!(a.body.contains("beyond the end of the log"), "{}", a.body);
    let a = s.get("/object/apps/v1/Deployment/shop/nope");
    assert_eq!(a.status, 404);
    assert!(
        a.body.contains("holds nothing about Deployment/shop/nope"),
        "{}",
        a.body
    );
    let a = s.get("/entry/abc");
    assert_eq!(a.status, 400);
    let a = s.get("/api/entry/999999");
    assert_eq!(a.status, 404);
    assert!(a.content_type.starts_with("application/json"));
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("beyond the end"))
    );
    let a = s.get("/api/object/Deployment/shop/nope");
    assert_eq!(a.status, 404);
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("Deployment/shop/nope"))
    );
    let a = s.get("/api/nothing");
    assert_eq!(a.status, 404);
    assert_eq!(s.get("/api/summary").status, 200, "still serving");
}

#[test]
fn a_foreign_host_is_refused() {
    let s = server();
    let a = s.request(
        "GET",
        "/api/summary",
        None,
        &[("host", "evil.example:8080")],
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("DNS rebinding"))
    );
    let a = s.request("GET", "/timeline", None, &[("host", "evil.example")]);
    assert_eq!(a.status, 403);
    assert!(a.body.contains("DNS rebinding"));
    let a = s.request(
        "POST",
        "/api/what-if",
        Some(""),
        &[("origin", "http://evil.example")],
    );
    assert_eq!(a.status, 403, "{}", a.body);
    let a = s.request("GET", "/api/summary", None, &[("host", "localhost")]);
    assert_eq!(a.status, 200);
}

#[test]
fn a_missing_or_damaged_log_gets_an_error_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("a directory");
    let missing = dir.path().join("missing.db");
    let s = UiServer::start(&missing);
    let a = s.get("/api/summary");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("there is no log at") && m.contains("--log"))
    );
    let page = s.get("/timeline");
    assert_eq!(page.status, 503);
    assert!(page.body.contains("The log cannot be read") && page.body.contains("--log FILE"));
    // The file appears: the same server serves it.
    std::fs::copy(&recorded().path, &missing).expect("a copy");
    assert_eq!(s.get("/api/summary").status, 200);
    drop(s);

    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, b"this is not a database, just text\n".repeat(200)).expect("written");
    let s = UiServer::start(&damaged);
    let a = s.get("/api/timeline");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("is not a logbook log") && m.contains("--log FILE")),
        "{}",
        a.body
    );
    let page = s.get("/entry/1");
    assert_eq!(page.status, 503);
    assert!(page.body.contains("id=\"error\""));
    assert_eq!(s.get("/api/summary").status, 503, "still answering");
    let before = std::fs::read(&damaged).expect("read");
    assert_eq!(
        before,
        b"this is not a database, just text\n".repeat(200),
        "never written"
    );
}

#[test]
fn a_tampered_log_fails_verify_in_the_ui() {
    let h = standard(PlannerConfig::default());
    let entries = h.entries();
    let event = entries
        .iter()
        .find(|e| matches!(&e.body, Body::Event(ev) if ev.key == ObjKey::new("Deployment", "blog", "site") && ev.object.is_some()))
        .expect("an event");
    let copy = h.tampered_copy("tampered-ui.db", event.seq, "\"site\"", "\"sit3\"");
    let s = UiServer::start(&copy);
    let v = s.get("/api/verify");
    assert_eq!(v.status, 200, "{}", v.body);
    let v = v.json();
    assert_eq!(v["ok"], false, "{v}");
}

#[test]
fn the_timeline_follows_a_log_while_it_grows() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("live.db");
    let all = logbook_testkit::log::many(40);
    let mut log = logbook::log::Log::open(&path).expect("a new log");
    log.append(&all[..20]).expect("appends");
    let s = UiServer::start(&path);
    assert_eq!(s.get("/api/summary").json()["last_seq"], 20);
    // The writer appends while the UI serves the file.
    log.append(&all[20..]).expect("appends while the UI reads");
    assert_eq!(s.get("/api/summary").json()["last_seq"], 40);
    let v = s.get("/api/timeline?after=20").json();
    let seqs: Vec<u64> = v["marks"]
        .as_array()
        .expect("marks")
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .collect();
    assert_eq!(seqs, (21..=40).collect::<Vec<u64>>());
}
