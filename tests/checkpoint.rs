//! Checkpoints: the controller core records one every N entries and when asked; replay loads
//! the nearest one for `--from` and recomputes exactly the plans folding from the start
//! recomputes; `verify` compares every checkpoint it passes with the fold, so one that lies or
//! is damaged is reported at its seq; logs without checkpoints replay from their start as
//! before.

use logbook_testkit::history::{self, History, Load, standard, standard_with};

use chrono::Utc;
use logbook::log::{Log, LogReader};
use logbook::reconcile::{Planner, PlannerConfig};
use logbook::record::{Blob, Body, Change, Entry, MarkerKind, ObjKey, ObservedEvent};
use logbook::replay::{
    self, Point, ReplayError, Subject, VerifyOptions, VerifyReport, WhatIfOptions, start_from,
};
use logbook::world::{CheckpointDetail, Fold, checkpoint_key};
use std::collections::BTreeSet;
use std::path::Path;

fn open(path: &Path) -> LogReader {
    LogReader::open(path).expect("the log opens")
}

fn entries(path: &Path) -> Vec<Entry> {
    open(path).range(..).map(|e| e.expect("an entry")).collect()
}

/// The seqs of the checkpoint entries of the log, in order.
fn checkpoints(path: &Path) -> Vec<u64> {
    entries(path)
        .iter()
        .filter(|e| matches!(&e.body, Body::Marker(m) if m.marker == MarkerKind::Checkpoint))
        .map(|e| e.seq)
        .collect()
}

fn verify(reader: &LogReader, options: VerifyOptions<'_>) -> VerifyReport {
    replay::verify(reader, &options).expect("verify runs")
}

fn why(report: &VerifyReport) -> String {
    format!(
        "{:?} {:?} {:?}",
        report.divergence.as_ref().map(|d| &d.why),
        report.chain_problem,
        report.stopped
    )
}

#[test]
fn the_core_records_a_checkpoint_every_n_entries_and_when_asked() {
    let mut h = standard_with(History::with_checkpoints(PlannerConfig::default(), 20));
    let every = checkpoints(&h.path);
    assert!(every.len() >= 2, "{every:?}");
    for pair in every.windows(2) {
        assert!(pair[1] / 20 > pair[0] / 20, "one per 20 entries: {every:?}");
    }
    let all = entries(&h.path);
    for &seq in &every {
        let e = &all[seq as usize - 1];
        assert_eq!(e.keys.object_kind.as_deref(), Some("Checkpoint"));
        assert_eq!(e.keys.object_name.as_deref(), Some("world"));
        let Body::Marker(m) = &e.body else {
            unreachable!()
        };
        let detail = CheckpointDetail::of(m)
            .expect("a checkpoint")
            .expect("read");
        assert_eq!(detail.upto_seq, seq - 1);
        assert_eq!(detail.reason, "periodic");
        assert_eq!(m.state.as_ref().map(Blob::len), Some(detail.bytes as usize));
        // Found through the object index, from any later seq.
        let reader = open(&h.path);
        assert_eq!(
            reader.last_about(&checkpoint_key(), seq).ok(),
            Some(Some(seq))
        );
    }
    // On demand: right after the last entry; asked again with nothing new, the same one.
    let before = open(&h.path).last_seq().expect("last seq");
    let taken = h.checkpoint();
    assert!(taken.new);
    assert_eq!(taken.seq, before + 1);
    assert_eq!(taken.upto_seq, before);
    assert_eq!(taken.applications, 2);
    let again = h.checkpoint();
    assert!(!again.new);
    assert_eq!(again.seq, taken.seq);
    assert_eq!(again.digest, taken.digest);
    // The whole log verifies, every checkpoint found holding the fold.
    let reader = open(&h.path);
    let report = verify(&reader, VerifyOptions::default());
    assert!(report.is_ok(), "{}", why(&report));
    assert_eq!(report.checkpoints, every.len() as u64 + 1);
    assert_eq!(report.started_from, None);
    assert_eq!(report.chain_from, Some(1));
}

/// Plans recomputed from a fold loaded from each checkpoint, and from the fold of the whole
/// prefix, entry by entry to the end: the same actions every time, and the same state at the
/// end.
fn same_plans_from_checkpoints_as_from_the_start(path: &Path) -> usize {
    let reader = open(path);
    let all = entries(path);
    let seqs = checkpoints(path);
    let planner = Planner::new(PlannerConfig::default());
    let mut with_pending = 0;
    let mut from_start = Fold::new();
    let mut next = 0usize;
    for &c in &seqs {
        while next + 1 < c as usize {
            let e = &all[next];
            from_start.apply(e.seq, e.at, &e.body);
            next += 1;
        }
        let start = start_from(&reader, c).expect("starts");
        assert_eq!(start.checkpoint, Some(c), "{:?}", start.notes);
        assert!(start.notes.is_empty(), "{:?}", start.notes);
        let mut loaded = start.fold;
        with_pending += usize::from(loaded.world().pending_actions().next().is_some());
        let mut folded = from_start.clone();
        assert_eq!(
            loaded.checkpoint().expect("encodes"),
            folded.checkpoint().expect("encodes"),
            "the checkpoint at {c} holds the fold of 1..{c}"
        );
        let mut plans = 0;
        for e in &all[c as usize - 1..] {
            if let Body::Plan(p) = &e.body {
                let plan = |f: &Fold| {
                    if p.scope.is_empty() {
                        planner.plan_all(f.world())
                    } else {
                        let scopes: BTreeSet<ObjKey> = p.scope.iter().cloned().collect();
                        planner.plan_scopes(f.world(), &scopes)
                    }
                };
                let (a, b) = (plan(&loaded), plan(&folded));
                assert_eq!(a, b, "plan {} from the checkpoint at {c}", e.seq);
                assert_eq!(
                    a.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
                    p.action_ids,
                    "plan {} as recorded",
                    e.seq
                );
                plans += 1;
            }
            assert_eq!(
                loaded.apply(e.seq, e.at, &e.body),
                folded.apply(e.seq, e.at, &e.body)
            );
        }
        assert!(plans > 0, "plans after the checkpoint at {c}");
        assert_eq!(
            loaded.checkpoint().expect("encodes"),
            folded.checkpoint().expect("encodes"),
            "at the end, from the checkpoint at {c}"
        );
        assert_eq!(loaded.overdue(Utc::now()), folded.overdue(Utc::now()));
        // And `verify --from` agrees with `verify` folding from the start.
        let with = verify(
            &reader,
            VerifyOptions {
                from: c,
                ..VerifyOptions::default()
            },
        );
        let without = verify(
            &reader,
            VerifyOptions {
                from: c,
                ignore_checkpoints: true,
                ..VerifyOptions::default()
            },
        );
        assert!(
            with.is_ok() && without.is_ok(),
            "{} {}",
            why(&with),
            why(&without)
        );
        assert_eq!(with.started_from, Some(c));
        assert_eq!(with.chain_from, Some(c));
        assert_eq!(without.started_from, None);
        assert_eq!(with.digest, without.digest);
        assert_eq!(with.plans_identical, without.plans_identical);
        assert_eq!(with.entries, reader.last_seq().expect("last") - c + 1);
    }
    assert!(
        with_pending > 0,
        "no checkpoint held an action on its way: the test would miss that part of the state"
    );
    seqs.len()
}

#[test]
fn plans_recomputed_from_any_checkpoint_are_the_plans_recomputed_from_the_start() {
    // Generated histories (users, an executor with conflicts, deletes and re-creates, resyncs,
    // relists) under a few seeds; `LOGBOOK_CHECKPOINT_SEEDS` asks for more.
    let seeds: u64 = std::env::var("LOGBOOK_CHECKPOINT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for seed in 0..seeds {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log.db");
        let load = Load {
            apps: 30,
            namespaces: 3,
            seed: 0xc0ffee + seed,
            generator: "checkpoint-test",
            resync_every: 1_200,
            user_p: 0.35,
            conflict_p: 0.05,
            checkpoint_every: 500 + 100 * seed,
        };
        history::generate(&path, &load, 3_000);
        let n = same_plans_from_checkpoints_as_from_the_start(&path);
        assert!(n >= 4, "seed {seed}: {n} checkpoints");
        let report = verify(&open(&path), VerifyOptions::default());
        assert!(report.is_ok(), "seed {seed}: {}", why(&report));
        assert_eq!(report.checkpoints, n as u64);
    }
}

/// A copy of the log at `path` with `entries` appended by a writer other than the core (the
/// chain stays intact: a buggy or hostile controller wrote them).
fn appended_copy(
    h: &History,
    name: &str,
    entries: Vec<logbook::record::NewEntry>,
) -> std::path::PathBuf {
    let copy = h.copy(name);
    let mut log = Log::open(&copy).expect("the copy opens");
    log.append(&entries).expect("appended");
    log.close().expect("closed");
    copy
}

/// The fold of the whole log at `path`.
fn fold_of(path: &Path) -> Fold {
    let mut fold = Fold::new();
    for e in entries(path) {
        fold.apply(e.seq, e.at, &e.body);
    }
    fold
}

#[test]
fn a_checkpoint_that_does_not_hold_the_fold_is_a_divergence_at_its_seq() {
    let h = standard_with(History::with_checkpoints(PlannerConfig::default(), 20));
    let last = open(&h.path).last_seq().expect("last");
    // The fold at the end, except that Deployment shop/web is seen with 9 replicas: a state
    // whose digest matches its own bytes, but not what the log folds to.
    let mut forged = fold_of(&h.path);
    let web = ObjKey::new("Deployment", "shop", "web");
    let mut object = forged
        .world()
        .object(&web)
        .expect("observed")
        .object()
        .clone();
    object["spec"]["replicas"] = serde_json::json!(9);
    forged.apply(
        last,
        Utc::now(),
        &Body::Event(ObservedEvent {
            change: Change::Upsert,
            key: web.clone(),
            api_version: "apps/v1".into(),
            uid: object["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .into(),
            resource_version: object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .into(),
            object: Some(logbook::record::Json::from_value(&object)),
            synthesized: false,
        }),
    );
    let lie = forged.checkpoint().expect("encodes");
    let copy = appended_copy(&h, "lie.db", vec![lie.entry(Utc::now(), "asked")]);
    let reader = open(&copy);
    assert_eq!(
        reader.verify().expect("chain").problem,
        None,
        "the chain is intact"
    );
    let report = verify(&reader, VerifyOptions::default());
    let d = report.divergence.as_ref().expect("a divergence");
    assert_eq!(d.kind, "checkpoint");
    assert_eq!(d.plan_seq, last + 1);
    assert!(
        d.why.contains("does not hold the world the log folds to"),
        "{}",
        d.why
    );
    assert!(
        d.why
            .contains("first difference: object Deployment/shop/web differs at spec.replicas: 9"),
        "{}",
        d.why
    );
    assert!(!report.is_ok());
    // From an earlier checkpoint, the range contains it: caught too.
    let earlier = *checkpoints(&h.path).last().expect("a checkpoint");
    let report = verify(
        &reader,
        VerifyOptions {
            from: earlier,
            ..VerifyOptions::default()
        },
    );
    assert_eq!(report.started_from, Some(earlier));
    assert_eq!(
        report.divergence.as_ref().map(|d| d.plan_seq),
        Some(last + 1)
    );

    // A checkpoint whose state is not what its digest says: passed over by --from (for the
    // one before it, with a note), and a divergence for verify.
    let good = fold_of(&h.path).checkpoint().expect("encodes");
    let mut entry = good.entry(Utc::now(), "asked");
    if let Body::Marker(m) = &mut entry.body {
        let mut bytes = m
            .state
            .as_ref()
            .map(|s| s.as_bytes().to_vec())
            .expect("a state");
        bytes[10] ^= 0x20;
        m.state = Some(Blob::from(bytes));
    }
    let copy = appended_copy(&h, "damaged.db", vec![entry]);
    let reader = open(&copy);
    let start = start_from(&reader, last + 1).expect("starts");
    assert_eq!(start.checkpoint, Some(earlier));
    assert!(
        start.notes.iter().any(|n| n
            .contains(&format!("checkpoint at entry {} was not used", last + 1))
            && n.contains("damaged")),
        "{:?}",
        start.notes
    );
    let report = verify(&reader, VerifyOptions::default());
    let d = report.divergence.as_ref().expect("a divergence");
    assert_eq!((d.kind, d.plan_seq), ("checkpoint", last + 1));
    assert!(d.why.contains("is damaged"), "{}", d.why);
}

#[test]
fn a_log_without_checkpoints_replays_from_its_start_and_says_so() {
    let h = standard(PlannerConfig::default());
    let reader = open(&h.path);
    assert!(checkpoints(&h.path).is_empty());
    let last = reader.last_seq().expect("last");
    let from = last / 2;
    let report = verify(
        &reader,
        VerifyOptions {
            from,
            ..VerifyOptions::default()
        },
    );
    assert!(report.is_ok(), "{}", why(&report));
    assert_eq!(report.started_from, None);
    assert_eq!(report.chain_from, Some(1));
    assert_eq!(report.entries, last);
    assert!(
        report.notes.iter().any(|n| n.contains("no checkpoint")),
        "{:?}",
        report.notes
    );
    let state = replay::world_at_from(&reader, Point::Seq(last), from, None).expect("state");
    assert_eq!(state.started_from, None);
    assert_eq!(state.seq, last);
    assert!(!state.notes.is_empty());
}

#[test]
fn state_timeline_and_what_if_from_a_checkpoint_tell_what_they_tell_from_the_start() {
    let h = standard_with(History::with_checkpoints(PlannerConfig::default(), 20));
    let reader = open(&h.path);
    let last = reader.last_seq().expect("last");
    for c in checkpoints(&h.path) {
        // State: the same world, at the checkpoint and after it.
        for at in [c, (c + last) / 2, last] {
            let from = replay::world_at_from(&reader, Point::Seq(at), c, None).expect("state");
            let whole = replay::world_at(&reader, Point::Seq(at), None).expect("state");
            assert_eq!(from.started_from, Some(c));
            assert_eq!((from.seq, from.at), (whole.seq, whole.at));
            assert_eq!(
                replay::state_document(&from, None),
                replay::state_document(&whole, None),
                "state at {at} from the checkpoint at {c}"
            );
        }
        // Timeline: the same steps from the checkpoint on, each showing the same change.
        for subject in [
            Subject::App("shop/web".into()),
            Subject::Object(ObjKey::new("Ingress", "shop", "logbook")),
        ] {
            let text = |items: &[replay::TimelineItem]| -> Vec<String> {
                items
                    .iter()
                    .filter(|i| i.seq >= c)
                    .map(|i| format!("{} {} {}", i.seq, i.text, i.details.join("; ")))
                    .collect()
            };
            let whole = replay::timeline(&reader, &subject, None, None).expect("timeline");
            match replay::timeline_from(&reader, &subject, None, None, c) {
                Ok(told) => {
                    assert_eq!(told.started_from, Some(c));
                    assert_eq!(text(&told.items), text(&whole), "{subject} from {c}");
                }
                Err(ReplayError::Unknown { .. }) => {
                    assert!(text(&whole).is_empty(), "{subject} from {c}");
                }
                Err(e) => panic!("{e}"),
            }
        }
        // What-if: the same differences.
        let overlay = replay::parse_overlay("ingressClass: traefik").expect("overlay");
        let what_if = |ignore: bool| {
            replay::what_if(
                &reader,
                &WhatIfOptions {
                    config: Some(overlay.clone()),
                    from: c,
                    ignore_checkpoints: ignore,
                    ..WhatIfOptions::default()
                },
            )
            .expect("what-if")
        };
        let (from, whole) = (what_if(false), what_if(true));
        assert_eq!(from.started_from, Some(c));
        assert_eq!(from.plans, whole.plans);
        assert_eq!(
            serde_json::to_value(&from.plan_changes).ok(),
            serde_json::to_value(&whole.plan_changes).ok()
        );
    }
    // --from after the point asked about: a clear error.
    let c = checkpoints(&h.path)[0];
    let e = replay::world_at_from(&reader, Point::Seq(c - 1), c, None)
        .err()
        .expect("refused");
    assert!(matches!(e, ReplayError::FromAfter { .. }), "{e}");
    assert!(e.to_string().contains("--from"), "{e}");
}
