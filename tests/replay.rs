//! Replay over recorded histories: an untouched log verifies; a planner that reads a counter,
//! or an event edited after the fact, diverges exactly where it should; what-if names exactly
//! the Applications a changed default affects; state and timeline tell what happened; bad
//! logs get errors, never panics.

use logbook_testkit::history;

use history::{History, standard};
use logbook::log::LogReader;
use logbook::reconcile::{ApplicationReconciler, Planner, PlannerConfig, Reconciler};
use logbook::record::{Action, Body, Change, EntryKind, ObjKey};
use logbook::replay::{
    self, ActionChange, Point, ReplayError, Subject, VerifyOptions, WhatIfOptions,
};
use logbook::world::{Fold, World};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn open(h: &History) -> LogReader {
    LogReader::open(&h.path).expect("the log opens")
}

fn verify(reader: &LogReader) -> replay::VerifyReport {
    replay::verify(reader, &VerifyOptions::default()).expect("verify runs")
}

#[test]
fn an_untouched_history_recomputes_identically() {
    let h = standard(PlannerConfig::default());
    let reader = open(&h);
    let report = verify(&reader);
    assert!(report.is_ok(), "{report:#?}");
    assert!(report.plans >= 5, "{report:#?}");
    assert_eq!(report.plans_identical, report.plans);
    let recorded_actions = h
        .entries()
        .iter()
        .filter(|e| e.kind() == EntryKind::Action)
        .count() as u64;
    assert_eq!(report.actions, recorded_actions);
    assert_eq!(report.entries, reader.last_seq().expect("last seq"));
    assert_eq!(report.digest.len(), 64);
    // The digest is a function of the decisions: the same log gives the same digest.
    assert_eq!(verify(&reader).digest, report.digest);
    // From a later seq: fewer plans checked, still identical.
    let later = replay::verify(
        &reader,
        &VerifyOptions {
            from: report.entries / 2,
            ..VerifyOptions::default()
        },
    )
    .expect("verify runs");
    assert!(later.is_ok() && later.plans_identical < report.plans_identical);
    // Up to a point only.
    let until = replay::verify(
        &reader,
        &VerifyOptions {
            until: Some(Point::Seq(20)),
            ..VerifyOptions::default()
        },
    )
    .expect("verify runs");
    assert!(until.is_ok(), "{until:#?}");
    assert_eq!(until.replayed_to, 20);
}

#[test]
fn a_history_under_a_non_default_configuration_verifies_with_it() {
    let config = PlannerConfig {
        ingress_class: Some("nginx".into()),
        liveness_probes: true,
        ..PlannerConfig::default()
    };
    let h = standard(config);
    let report = verify(&open(&h));
    assert!(
        report.is_ok(),
        "the log's Config marker is followed: {report:#?}"
    );
}

/// The Application reconciler, except that from its `after`-th non-empty scope on it writes a
/// counter into every reason: a dependency on something outside the log.
struct Counting {
    inner: ApplicationReconciler,
    calls: Arc<AtomicU64>,
    after: u64,
}

impl Reconciler for Counting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn reads(&self) -> &'static [&'static str] {
        self.inner.reads()
    }
    fn manages(&self) -> &'static [&'static str] {
        self.inner.manages()
    }
    fn scopes_for(&self, world: &World, key: &ObjKey) -> BTreeSet<ObjKey> {
        self.inner.scopes_for(world, key)
    }
    fn all_scopes(&self, world: &World) -> BTreeSet<ObjKey> {
        self.inner.all_scopes(world)
    }
    fn plan_scope(&self, world: &World, scope: &ObjKey, out: &mut Vec<Action>) {
        let mut mine = Vec::new();
        self.inner.plan_scope(world, scope, &mut mine);
        if !mine.is_empty() {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n >= self.after {
                mine = mine
                    .into_iter()
                    .map(|a| {
                        Action::new(
                            a.verb,
                            a.target,
                            &a.api_version,
                            a.app,
                            a.object,
                            a.uid,
                            format!("{} (call {n})", a.reason),
                            a.basis,
                        )
                    })
                    .collect();
            }
        }
        out.extend(mine);
    }
}

#[test]
fn a_planner_that_reads_a_counter_is_caught_at_the_first_plan_it_changes() {
    let h = standard(PlannerConfig::default());
    let reader = open(&h);
    const AFTER: u64 = 4;
    // Where it must diverge, worked out independently: the plan holding the AFTER-th
    // non-empty scope (counting from 0), with the plain reconciler.
    let plain = ApplicationReconciler::new(PlannerConfig::default());
    let mut fold = Fold::new();
    let mut nonempty = 0u64;
    let mut expected = None;
    for e in h.entries() {
        if let Body::Plan(p) = &e.body
            && expected.is_none()
        {
            let scopes: BTreeSet<ObjKey> = if p.scope.is_empty() {
                plain.all_scopes(fold.world())
            } else {
                p.scope.iter().cloned().collect()
            };
            for s in scopes {
                let mut out = Vec::new();
                plain.plan_scope(fold.world(), &s, &mut out);
                if !out.is_empty() {
                    if nonempty == AFTER {
                        expected = Some(e.seq);
                    }
                    nonempty += 1;
                }
            }
        }
        fold.apply(e.seq, e.at, &e.body);
    }
    let expected = expected.expect("the history has enough plans with actions");

    let calls = Arc::new(AtomicU64::new(0));
    let factory = {
        let calls = calls.clone();
        move |config: &PlannerConfig| {
            Planner::with(vec![Box::new(Counting {
                inner: ApplicationReconciler::new(config.clone()),
                calls: calls.clone(),
                after: AFTER,
            })])
        }
    };
    let report = replay::verify(
        &reader,
        &VerifyOptions {
            planner: Some(&factory),
            ..VerifyOptions::default()
        },
    )
    .expect("verify runs");
    assert!(!report.is_ok());
    let d = report.divergence.as_ref().expect("a divergence");
    assert_eq!(d.plan_seq, expected, "{d:#?}");
    assert!(report.chain_problem.is_none(), "the log itself is intact");
    assert!(
        d.diff.contains("(call 4)") && d.diff.contains("+") && d.diff.contains("-"),
        "the diff shows recorded against recomputed: {}",
        d.diff
    );
    assert_eq!(d.recorded.len(), d.recomputed.len());
    assert!(
        !d.last_events.is_empty(),
        "the events the plan read are shown"
    );
    assert!(d.last_events.iter().all(|(seq, _)| *seq <= d.upto_seq));
    assert_eq!(report.plans_identical, report.plans - 1);
}

#[test]
fn an_event_edited_after_the_fact_diverges_where_it_was_read_and_breaks_the_chain() {
    let h = standard(PlannerConfig::default());
    let entries = h.entries();
    // The event that changed shop/web's image.
    let edited = entries
        .iter()
        .find(|e| match &e.body {
            Body::Event(ev) => {
                ev.key == ObjKey::new("Application", "shop", "web")
                    && ev
                        .object
                        .as_ref()
                        .is_some_and(|o| o.as_str().contains("nginx:1.28"))
            }
            _ => false,
        })
        .expect("the image change was recorded");
    // The first plan after it that replanned shop/web.
    let web = ObjKey::new("Application", "shop", "web");
    let reader_plan = entries
        .iter()
        .find(|e| {
            e.seq > edited.seq
                && matches!(&e.body, Body::Plan(p) if p.scope.is_empty() || p.scope.contains(&web))
        })
        .expect("a plan read the change");

    let copy = h.tampered_copy("tampered.db", edited.seq, "nginx:1.28", "nginx:6.6.6");
    let reader = LogReader::open(&copy).expect("the copy opens");
    let report = verify(&reader);
    let d = report.divergence.as_ref().expect("a divergence");
    assert_eq!(d.plan_seq, reader_plan.seq, "{d:#?}");
    assert!(
        d.diff.contains("nginx:1.28") && d.diff.contains("nginx:6.6.6"),
        "{}",
        d.diff
    );
    assert!(
        d.last_events.iter().any(|(seq, _)| *seq == edited.seq),
        "the edited event is among those shown: {:?}",
        d.last_events
    );
    let chain = report
        .chain_problem
        .as_deref()
        .expect("the chain is broken");
    assert!(chain.contains(&format!("entry {}", edited.seq)), "{chain}");
    // `audit verify` uses the chain check, which names the edited entry.
    let chain = reader.verify().expect("verify runs");
    assert_eq!(chain.first_bad_seq(), Some(edited.seq));
}

#[test]
fn what_if_with_a_changed_default_names_exactly_the_applications_it_affects() {
    let h = standard(PlannerConfig::default());
    let reader = open(&h);
    let run = |overlay: &str| {
        replay::what_if(
            &reader,
            &WhatIfOptions {
                config: Some(replay::parse_overlay(overlay).expect("a valid overlay")),
                ..WhatIfOptions::default()
            },
        )
        .expect("what-if runs")
    };
    let apps = |r: &replay::WhatIfReport| r.applications.iter().cloned().collect::<Vec<_>>();

    // Default requests: every Application that asks for none (not shop/api, which does).
    let r = run("defaultRequests: {cpu: 100m, memory: 64Mi}");
    assert_eq!(apps(&r), ["blog/site", "shop/web"], "{r:#?}");
    assert!(r.plans_differing > 0 && r.plans > r.plans_differing);
    let fields: Vec<&String> = r
        .plan_changes
        .iter()
        .flat_map(|p| &p.changes)
        .flat_map(|c| match c {
            ActionChange::Changed { fields, .. } => fields.iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(
        fields
            .iter()
            .any(|f| f.contains("resources") && f.contains("100m")),
        "{fields:?}"
    );
    // The liveness switch: only the Application with a health check.
    let r = run("livenessProbes: true");
    assert_eq!(apps(&r), ["shop/web"], "{r:#?}");
    // The ingress class: both Applications with a rule in the shared Ingress, none other.
    let r = run("ingressClass: internal");
    assert_eq!(apps(&r), ["shop/api", "shop/web"], "{r:#?}");
    assert!(
        r.objects
            .contains(&ObjKey::new("Ingress", "shop", "logbook"))
    );
    // The same configuration: nothing.
    let r = run("pathType: Prefix");
    assert_eq!(r.plans_differing, 0, "{r:#?}");
    // This build's planner under the log's own configuration: nothing either.
    let r = replay::what_if(&reader, &WhatIfOptions::default()).expect("what-if runs");
    assert_eq!(r.plans_differing, 0);
    // A misspelt setting is refused, naming it.
    let e = replay::parse_overlay("ingresClass: x").expect_err("unknown setting");
    assert!(
        e.contains("ingresClass") && e.contains("ingressClass"),
        "{e}"
    );
}

#[test]
fn state_at_a_point_is_the_world_the_controller_saw_then() {
    let h = standard(PlannerConfig::default());
    let reader = open(&h);
    let entries = h.entries();
    let first_plan = entries
        .iter()
        .find(|e| matches!(&e.body, Body::Plan(p) if !p.action_ids.is_empty()))
        .expect("a plan with actions");
    let Body::Plan(p) = &first_plan.body else {
        unreachable!()
    };
    // Right after the plan and its actions: the Application is there, its children are on
    // their way.
    let at = first_plan.seq + p.action_ids.len() as u64;
    let world = replay::world_at(&reader, Point::Seq(at), None).expect("state");
    assert_eq!(world.seq, at);
    let doc = replay::state_document(&world, None);
    assert_eq!(doc["kind"], "List");
    let items = doc["items"].as_array().expect("items");
    let pending: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| {
            i["metadata"]["annotations"][replay::state::STATE_ANNOTATION] == "pending-create"
        })
        .collect();
    assert!(!pending.is_empty(), "{doc:#}");
    assert!(pending.iter().all(|i| {
        i["metadata"]["annotations"][replay::state::PENDING_ANNOTATION]
            .as_str()
            .is_some_and(|s| s.starts_with("create act-"))
    }));
    // At the end: blog/site and its children are gone, shop's remain; -n filters.
    let end = reader.last_seq().expect("last");
    let world = replay::world_at(&reader, Point::Seq(end), None).expect("state");
    let names = |ns: Option<&str>| -> Vec<String> {
        replay::state_document(&world, ns)["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                format!(
                    "{}/{}/{}",
                    i["kind"].as_str().unwrap_or("?"),
                    i["metadata"]["namespace"].as_str().unwrap_or(""),
                    i["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect()
    };
    let all = names(None);
    assert!(!all.iter().any(|n| n.contains("/blog/")), "{all:?}");
    assert!(all.contains(&"Deployment/shop/web".to_string()), "{all:?}");
    assert!(all.contains(&"Ingress/shop/logbook".to_string()), "{all:?}");
    assert_eq!(names(Some("blog")), Vec::<String>::new());
    // By time: the last entry's time gives the end state.
    let last_at = entries.last().expect("entries").at;
    let by_time = replay::world_at(&reader, Point::Time(last_at), None).expect("state");
    assert_eq!(by_time.seq, end);
    // Beyond the end: a clear error.
    let e = replay::world_at(&reader, Point::Seq(end + 1), None)
        .err()
        .expect("beyond the end");
    assert!(matches!(e, ReplayError::BeyondEnd { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("ends at entry {end}")),
        "{e}"
    );
}

#[test]
fn a_timeline_tells_what_was_seen_planned_and_done() {
    let h = standard(PlannerConfig::default());
    let reader = open(&h);
    let site = ObjKey::new("Deployment", "blog", "site");
    let story =
        replay::timeline(&reader, &Subject::Object(site.clone()), None, None).expect("timeline");
    let texts: Vec<String> = story
        .iter()
        .map(|i| format!("{} {}", i.text, i.details.join("; ")))
        .collect();
    let pos = |needle: &str| {
        texts
            .iter()
            .position(|t| t.contains(needle))
            .unwrap_or_else(|| panic!("no step says `{needle}`: {texts:#?}"))
    };
    let created = pos("asked to create Deployment/blog/site");
    let applied = pos("executor-1 applied");
    let edited = pos("spec.replicas: 1 → 5");
    let put_back = pos("asked to apply Deployment/blog/site");
    let deleted = pos("deleted");
    assert!(
        created < applied && applied < edited && edited < put_back && put_back < deleted,
        "{texts:#?}"
    );
    // Each action comes after the plan that made it.
    assert!(story[created - 1].kind == "plan", "{texts:#?}");
    // An Application's story includes its children and its own changes.
    let web =
        replay::timeline(&reader, &Subject::App("shop/web".into()), None, None).expect("timeline");
    let all: String = web
        .iter()
        .map(|i| format!("{} {}\n", i.text, i.details.join("; ")))
        .collect();
    assert!(
        all.contains("nginx:1.27") && all.contains("nginx:1.28"),
        "{all}"
    );
    assert!(
        all.contains("Deployment/shop/web") && all.contains("Service/shop/web"),
        "{all}"
    );
    // --since narrows without losing what changed.
    let since = web[web.len() / 2].seq;
    let later = replay::timeline(
        &reader,
        &Subject::App("shop/web".into()),
        Some(Point::Seq(since)),
        None,
    )
    .expect("timeline");
    assert!(later.iter().all(|i| i.seq >= since || i.kind == "plan"));
    assert!(later.len() < web.len());
    // An unknown object: a clear error.
    let e = replay::timeline(
        &reader,
        &Subject::Object(ObjKey::new("Deployment", "shop", "nope")),
        None,
        None,
    )
    .expect_err("unknown");
    assert!(
        matches!(e, ReplayError::Unknown { .. }) && e.to_string().contains("nope"),
        "{e}"
    );
}

#[test]
fn deletes_and_hand_edits_are_in_the_log_the_replay_reads() {
    // Guards the fixture: the standard history holds what the other tests rely on.
    let h = standard(PlannerConfig::default());
    let entries = h.entries();
    assert!(
        entries
            .iter()
            .any(|e| matches!(&e.body, Body::Event(ev) if ev.change == Change::Delete))
    );
    assert!(
        entries
            .iter()
            .any(|e| matches!(&e.body, Body::Action(a) if a.action.reason.contains("drift")))
    );
    assert!(entries.iter().any(
        |e| matches!(&e.body, Body::Marker(m) if m.marker == logbook::record::MarkerKind::Resync)
    ));
    let _ = json!(null);
}

#[test]
fn a_damaged_file_gets_an_error_not_a_panic() {
    let h = standard(PlannerConfig::default());
    let copy = h.copy("cut.db");
    let bytes = std::fs::read(&copy).expect("read");
    for keep in [0, 100, bytes.len() / 3, bytes.len() / 2, bytes.len() - 4096] {
        let cut = h.dir.path().join(format!("cut-{keep}.db"));
        std::fs::write(&cut, &bytes[..keep]).expect("write");
        // Opening may fail; if it opens, verify reports a problem or an error, never panics
        // and never claims the log is intact.
        if let Ok(reader) = LogReader::open(&cut) {
            match replay::verify(&reader, &VerifyOptions::default()) {
                Ok(r) => assert!(
                    !r.is_ok() || r.replayed_to < h.entries().len() as u64,
                    "{r:#?}"
                ),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
    // Entries removed from the end: the chain check says so.
    let copy = h.copy("short.db");
    {
        let conn = rusqlite::Connection::open(&copy).expect("opens");
        conn.execute_batch(
            "DROP TRIGGER entries_append_only_update; DROP TRIGGER entries_append_only_delete; \
             DELETE FROM entries WHERE seq > 30;",
        )
        .expect("cut");
    }
    let r = verify(&LogReader::open(&copy).expect("opens"));
    assert!(!r.is_ok(), "{r:#?}");
    assert!(
        r.chain_problem.as_deref().is_some_and(|p| p.contains("31")),
        "{r:#?}"
    );
    // A missing file.
    let e = LogReader::open(&h.dir.path().join("nope.db"))
        .err()
        .expect("missing");
    assert!(e.to_string().contains("nope.db"));
}

// ---------------------------------------------------------------------------------------------
// A log of what changed: a namespace's shared Ingress, large enough to be stored as patches.

/// The length of entry `seq`'s payload as stored.
fn stored_len(h: &History, seq: u64) -> usize {
    let conn = rusqlite::Connection::open(&h.path).expect("opens");
    conn.query_row(
        "SELECT length(payload) FROM entries WHERE seq = ?1",
        [seq as i64],
        |r| r.get::<_, i64>(0),
    )
    .expect("a payload") as usize
}

fn object_text(e: &logbook::record::Entry) -> Option<String> {
    match &e.body {
        Body::Event(ev) => ev.object.as_ref().map(|o| o.as_str().to_string()),
        Body::Action(a) => a.action.object.as_ref().map(|o| o.as_str().to_string()),
        _ => None,
    }
}

#[test]
fn a_large_shared_ingress_is_logged_as_what_changed_and_replays_exactly() {
    let (h, before) = history::shared_ingress();
    let reader = open(&h);
    let ingress = ObjKey::new("Ingress", "shop", logbook::model::SHARED_INGRESS);
    // As stored: the Ingress's first event and first action are whole; after the one more
    // Application, its event and its action are patches, a small part of the whole.
    let stored: Vec<_> = reader
        .query(&logbook::log::Filter::new().object(&ingress).as_stored())
        .map(|e| e.expect("an entry"))
        .filter(|e| matches!(e.kind(), EntryKind::Event | EntryKind::Action))
        .collect();
    let first_event = stored
        .iter()
        .find(|e| e.kind() == EntryKind::Event)
        .expect("an Ingress event");
    assert!(first_event.delta.is_none() && first_event.format == 1);
    let late: Vec<_> = stored.iter().filter(|e| e.seq > before).collect();
    for kind in [EntryKind::Event, EntryKind::Action] {
        let e = late
            .iter()
            .find(|e| e.kind() == kind)
            .unwrap_or_else(|| panic!("no Ingress {kind} after the one more Application"));
        let d = e
            .delta
            .as_ref()
            .unwrap_or_else(|| panic!("Ingress {kind} {} is stored whole", e.seq));
        assert_eq!((e.format, object_text(e)), (2, None));
        let whole = reader
            .get(e.seq)
            .expect("reads")
            .and_then(|w| object_text(&w))
            .expect("rebuilt whole");
        assert!(whole.contains("app-201.shop.example.com") && whole.len() > 30_000);
        let bytes = stored_len(&h, e.seq);
        assert!(
            bytes * 20 < whole.len(),
            "Ingress {kind} {}: {bytes} bytes stored for {} bytes of object (patch {})",
            e.seq,
            whole.len(),
            d.patch
        );
    }
    // The chain covers what is stored; replay folds whole objects and recomputes every plan.
    let chain = reader.verify().expect("verify runs");
    assert!(chain.is_ok(), "{chain}");
    let report = verify(&reader);
    assert!(report.is_ok(), "{report:#?}");
    assert!(report.plans > 0 && report.plans_identical == report.plans);
    // state, timeline and why see whole objects.
    let end = reader.last_seq().expect("last seq");
    let world = replay::world_at(&reader, Point::Seq(end), None).expect("state");
    let doc = replay::state_document(&world, Some("shop"));
    let rules = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["kind"] == "Ingress")
        .and_then(|i| i["spec"]["rules"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(rules, 202, "{doc:#}");
    let story =
        replay::timeline(&reader, &Subject::Object(ingress.clone()), None, None).expect("timeline");
    let told: String = story
        .iter()
        .filter(|i| i.seq > before)
        .map(|i| format!("{} {}\n", i.text, i.details.join("; ")))
        .collect();
    // The observation after the last Application compares two whole objects: the rules.
    assert!(
        told.contains(r#"spec.rules: [{"host":"app-000.shop.example.com""#),
        "{told}"
    );
    let why = replay::explain(&reader, &ingress, None).expect("why");
    assert!(
        why.action.is_some_and(|a| a.seq > before),
        "{:?}",
        why.notes
    );
}

#[test]
fn the_same_history_with_every_object_whole_reads_and_replays_the_same() {
    // What a build before patches wrote: the same entries, every object whole (format 1).
    let (h, _) = history::shared_ingress();
    let reader = open(&h);
    let whole_path = h.dir.path().join("whole.db");
    {
        let mut log = logbook::log::Log::open(&whole_path).expect("a new log");
        let entries: Vec<logbook::record::NewEntry> = reader
            .range(..)
            .map(|e| {
                let e = e.expect("an entry");
                logbook::record::NewEntry::new(e.id, e.at, e.keys, e.body)
            })
            .collect();
        for chunk in entries.chunks(500) {
            log.append(chunk).expect("appended");
        }
        log.close().expect("closed");
    }
    let old = LogReader::open(&whole_path).expect("opens");
    assert!(
        old.range(..)
            .all(|e| e.is_ok_and(|e| e.format == 1 && e.delta.is_none()))
    );
    // Read back, entry for entry, the same records.
    for (a, b) in reader.range(..).zip(old.range(..)) {
        let (a, b) = (a.expect("entry"), b.expect("entry"));
        assert_eq!((a.seq, &a.body), (b.seq, &b.body));
    }
    assert!(old.verify().expect("verify runs").is_ok());
    let (new_report, old_report) = (verify(&reader), verify(&old));
    assert!(old_report.is_ok(), "{old_report:#?}");
    assert_eq!(old_report.digest, new_report.digest);
    assert_eq!(old_report.plans_identical, new_report.plans_identical);
    // Patches made the log smaller.
    let total = |r: &LogReader| -> usize {
        let conn = rusqlite::Connection::open(r.path()).expect("opens");
        conn.query_row("SELECT sum(length(payload)) FROM entries", [], |row| {
            row.get::<_, i64>(0)
        })
        .expect("a sum") as usize
    };
    let (patched, whole) = (total(&reader), total(&old));
    assert!(patched < whole, "patched {patched}, whole {whole}");
}

#[test]
fn a_damaged_patch_is_an_error_naming_its_entry_never_a_wrong_object() {
    let (h, before) = history::shared_ingress();
    let reader = open(&h);
    let ingress = ObjKey::new("Ingress", "shop", logbook::model::SHARED_INGRESS);
    let patched = reader
        .query(&logbook::log::Filter::new().object(&ingress).as_stored())
        .map(|e| e.expect("an entry"))
        .find(|e| e.seq > before && e.kind() == EntryKind::Event && e.delta.is_some())
        .expect("a patched Ingress event");
    // Its patch now adds a rule of its own, and the payload is rewritten (the hash is not).
    let mut stored = logbook::record::NewEntry::new(
        patched.id,
        patched.at,
        patched.keys.clone(),
        patched.body.clone(),
    );
    let mut delta = patched.delta.clone().expect("a delta");
    let mut ops: Vec<serde_json::Value> = delta.patch.parse_as().expect("a patch");
    ops.push(json!({"op": "add", "path": "/spec/rules/0", "value": {"host": "evil.example.com"}}));
    delta.patch = logbook::record::Json::from_value(&serde_json::Value::Array(ops));
    stored.delta = Some(delta);
    let (format, payload) = stored.encode().expect("encodes");
    assert_eq!(format, 2);
    let copy = h.copy("damaged.db");
    {
        let conn = rusqlite::Connection::open(&copy).expect("opens");
        conn.execute_batch("DROP TRIGGER entries_append_only_update;")
            .expect("trigger dropped");
        conn.execute(
            "UPDATE entries SET payload = ?1 WHERE seq = ?2",
            rusqlite::params![payload, patched.seq as i64],
        )
        .expect("payload edited");
    }
    let damaged = LogReader::open(&copy).expect("opens");
    let e = damaged
        .get(patched.seq)
        .expect_err("the damaged entry is refused");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("entry {} is corrupt", patched.seq)) && msg.contains("SHA-256"),
        "{msg}"
    );
    // A scan stops there with the same error; verify reports it, and the broken chain.
    let read: Vec<_> = damaged.range(..).collect();
    assert_eq!(read.len() as u64, patched.seq);
    assert!(read.last().is_some_and(|r| r.is_err()));
    match replay::verify(&damaged, &VerifyOptions::default()) {
        Ok(r) => assert!(!r.is_ok(), "{r:#?}"),
        Err(e) => assert!(
            e.to_string().contains(&format!("entry {}", patched.seq)),
            "{e}"
        ),
    }
    assert!(damaged.verify().expect("verify runs").problem.is_some());
}
