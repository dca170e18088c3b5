//! End to end, with things going wrong: executors killed mid-action, actions delivered twice
//! and out of order, NATS restarted with work in flight, the controller killed and restarted,
//! malformed messages; and four executors against one.

use logbook_testkit::sandbox as support;
use logbook_testkit::{AppTest, e2e};

use e2e::{Env, outcomes};
use logbook::bus;
use logbook::model::{Application, PLAN_SEQ_ANNOTATION};
use logbook::record::{Body, Change, MarkerKind, OutcomeResult};
use logbook::sandbox::Verb;
use std::collections::BTreeSet;
use std::time::Duration;

fn apps(n: usize) -> Vec<Application> {
    (0..n)
        .map(|i| {
            let ns = if i % 2 == 0 { "shop" } else { "blog" };
            Application::test(ns, &format!("app-{i}"))
                .host(&format!("app-{i}.example.com"))
                .image(&format!("registry.example.com/app-{i}:1.0"))
                .build()
        })
        .collect()
}

async fn run_to_convergence(
    executors: usize,
    kill_one: bool,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut env = Env::start(&["shop", "blog"]).await;
    if kill_one {
        // Slow writes, so the kill lands in the middle of an apply.
        env.sandbox
            .faults()
            .set_latency(Verb::Patch, Duration::from_millis(400));
        env.sandbox
            .faults()
            .set_latency(Verb::Create, Duration::from_millis(400));
    }
    env.controller();
    for i in 0..executors {
        env.executor(&format!("ex-{i}"), 2);
    }
    let apps = apps(6);
    for a in &apps {
        env.apply(a).await;
    }
    if kill_one {
        let faults = env.sandbox.faults();
        env.wait("an executor to be in the middle of a write", || async {
            faults
                .audited()
                .iter()
                .any(|a| a.method == "PATCH" || a.method == "POST")
                .then_some(())
        })
        .await;
        env.kill_executor("ex-0");
        env.sandbox
            .faults()
            .set_latency(Verb::Patch, Duration::ZERO);
        env.sandbox
            .faults()
            .set_latency(Verb::Create, Duration::ZERO);
        env.executor("ex-replacement", 2);
    }
    env.converged(&apps).await;
    let state = env.cluster_state().await;
    if kill_one {
        // Every action the killed executor had taken was answered by someone else.
        let entries = env.entries();
        let answered: BTreeSet<String> = outcomes(&entries)
            .into_iter()
            .filter(|(_, r, _)| r != "conflict" && r != "failed")
            .map(|(id, _, _)| id)
            .collect();
        let ex0: BTreeSet<String> = outcomes(&entries)
            .into_iter()
            .filter(|(_, _, e)| e == "ex-0")
            .map(|(id, _, _)| id)
            .collect();
        assert!(ex0.is_subset(&answered));
        assert!(
            outcomes(&entries)
                .iter()
                .any(|(_, _, e)| e == "ex-replacement"),
            "the replacement did work"
        );
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_changes_nothing_in_the_end_and_four_executors_match_one() {
    support::bounded(async {
        let one = run_to_convergence(1, false).await;
        let killed = run_to_convergence(1, true).await;
        assert_eq!(one, killed, "the kill changed the end state");
        let four = run_to_convergence(4, false).await;
        assert_eq!(one, four, "four executors ended elsewhere than one");
        assert_eq!(
            one.keys().filter(|k| k.starts_with("Deployment/")).count(),
            6
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_repeated_actions_never_overwrite_newer_ones() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.controller();
        env.executor("ex-1", 4);
        let base = Application::test("shop", "web").host("web.example.com");
        for tag in ["1.0", "2.0", "3.0"] {
            let app = base
                .clone()
                .image(&format!("registry.example.com/web:{tag}"))
                .build();
            env.apply(&app).await;
            env.converged(&[app]).await;
        }
        // Deliver every action the log holds for the Deployment again, oldest first, as a
        // late duplicate (new message ids, so JetStream does not drop them).
        let entries = env.entries();
        let old: Vec<_> = entries
            .iter()
            .filter(|e| matches!(&e.body, Body::Action(a) if a.action.target.kind == "Deployment"))
            .collect();
        assert!(old.len() >= 3, "three images, three actions: {}", old.len());
        let client = bus::connect(&bus::NatsArgs::plain(&env.nats.url()), "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let mut replayed = BTreeSet::new();
        let key = env.controller_key();
        for (i, e) in old.iter().enumerate() {
            let (subject, mut headers, payload) = bus::wire::encode_entry(e).unwrap();
            headers.insert(bus::wire::MSG_ID, format!("late-{i}").as_str());
            headers.insert(bus::sign::SIGNATURE_HEADER, key.sign(&payload).as_str());
            js.publish_with_headers(subject, headers, payload)
                .await
                .unwrap()
                .await
                .unwrap();
            if let Body::Action(a) = &e.body {
                replayed.insert(a.action.id.clone());
            }
        }
        let latest_plan = old
            .iter()
            .filter_map(|e| match &e.body {
                Body::Action(a) => Some(a.plan_seq),
                _ => None,
            })
            .max()
            .unwrap();
        let newest_id = match &old.last().unwrap().body {
            Body::Action(a) => a.action.id.clone(),
            _ => unreachable!(),
        };
        // Every replayed action is answered again: superseded, or no-op for the newest.
        let results = env
            .wait("outcomes for every late delivery", || {
                let replayed = replayed.clone();
                let env = &env;
                async move {
                    let entries = env.entries();
                    let late: Vec<_> = entries
                        .iter()
                        .filter_map(|e| match &e.body {
                            Body::Outcome(o)
                                if replayed.contains(&o.action_id)
                                    && o.attempt == 1
                                    && e.seq > 0 =>
                            {
                                Some((o.action_id.clone(), o.result))
                            }
                            _ => None,
                        })
                        .collect();
                    // Two outcomes per action: the first delivery's and the late one's.
                    let per: BTreeSet<_> = late.iter().map(|(id, _)| id.clone()).collect();
                    let counts = per
                        .iter()
                        .all(|id| late.iter().filter(|(i, _)| i == id).count() >= 2);
                    (per.len() == replayed.len() && counts).then_some(late)
                }
            })
            .await;
        for (id, result) in &results {
            let last_for_id = results.iter().rev().find(|(i, _)| i == id).unwrap().1;
            if *id == newest_id {
                assert!(
                    matches!(last_for_id, OutcomeResult::NoOp | OutcomeResult::Applied),
                    "{id}: {last_for_id:?}"
                );
            } else {
                assert_ne!(
                    last_for_id,
                    OutcomeResult::Applied,
                    "{id} was applied late: {result:?}"
                );
            }
        }
        let d = env.deployments("shop").get("web").await.unwrap();
        assert_eq!(
            env.image("shop", "web").await.as_deref(),
            Some("registry.example.com/web:3.0")
        );
        let fence = d
            .metadata
            .annotations
            .unwrap_or_default()
            .get(PLAN_SEQ_ANNOTATION)
            .cloned();
        assert_eq!(
            fence,
            Some(latest_plan.to_string()),
            "the object carries the newest plan"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_with_work_in_flight_loses_nothing() {
    support::bounded(async {
        let mut env = Env::start(&["shop", "blog"]).await;
        env.controller();
        env.executor("ex-1", 4);
        let all = apps(8);
        for a in &all[..4] {
            env.apply(a).await;
        }
        env.wait("the first Applications to be planned", || async {
            env.entries()
                .iter()
                .any(|e| matches!(&e.body, Body::Action(_)))
                .then_some(())
        })
        .await;
        env.nats.kill();
        for a in &all[4..] {
            env.apply(a).await;
        }
        // The controller records and plans while NATS is down.
        env.wait(
            "the controller to plan the apps created while NATS was down",
            || async {
                let planned: BTreeSet<String> = env
                    .entries()
                    .iter()
                    .filter_map(|e| match &e.body {
                        Body::Action(a) => Some(a.action.target.name.clone()),
                        _ => None,
                    })
                    .collect();
                all[4..]
                    .iter()
                    .all(|a| planned.contains(a.metadata.name.as_deref().unwrap()))
                    .then_some(())
            },
        )
        .await;
        env.nats.restart().unwrap();
        env.converged(&all).await;
        env.published_once().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_resumes_from_its_log_without_repeating_itself() {
    support::bounded(async {
        let mut env = Env::start(&["shop", "blog"]).await;
        env.controller();
        env.executor("ex-1", 4);
        let mut all = apps(4);
        for a in &all {
            env.apply(a).await;
        }
        env.converged(&all).await;
        env.kill_controller();

        // While it is down: one image changes, one Application is deleted.
        all[0].spec.image = "registry.example.com/app-0:2.0".into();
        env.apply(&all[0]).await;
        env.delete_app("blog", "app-1").await;
        let before = env.entries().last().unwrap().seq;

        env.controller();
        let remaining: Vec<Application> = all.iter().filter(|a| a.metadata.name.as_deref() != Some("app-1")).cloned().collect();
        env.converged(&remaining).await;
        env.wait("app-1's children to go", || async {
            env.deployments("blog").get_opt("app-1").await.ok()?.is_none().then_some(())
        })
        .await;

        // What the killed controller had published is not published twice, nor skipped.
        env.published_once().await;
        let entries = env.entries();
        e2e::recompute_plans(&entries);
        let after: Vec<_> = entries.iter().filter(|e| e.seq > before).collect();
        assert!(
            after.iter().any(|e| matches!(&e.body, Body::Marker(m) if m.marker == MarkerKind::Start)),
            "a start marker"
        );
        assert!(
            after.iter().any(|e| matches!(&e.body, Body::Event(ev) if ev.change == Change::Delete && ev.synthesized && ev.key.name == "app-1")),
            "the Application deleted while the controller was down became a synthesized delete"
        );
        // Nothing already applied is asked for again: the only writes after the restart are
        // about app-0 (new image), app-1 (gone) and status / shared Ingress updates.
        for e in &after {
            if let Body::Action(a) = &e.body {
                let t = &a.action.target;
                let about = a.action.app.as_deref().unwrap_or_default();
                assert!(
                    about.ends_with("/app-0") || about.ends_with("/app-1") || t.kind == "Ingress" || t.kind == "Application",
                    "repeated an action after the restart: {} {} ({})",
                    a.action.verb,
                    t,
                    a.action.reason
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_action_message_gets_an_outcome_and_work_goes_on() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.controller();
        env.executor("ex-1", 2);
        let client = bus::connect(&bus::NatsArgs::plain(&env.nats.url()), "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        // The controller creates the streams; wait for them.
        env.wait("the actions stream", || async {
            js.get_stream(bus::ACTIONS_STREAM).await.ok().map(|_| ())
        })
        .await;
        // Unsigned garbage, and garbage signed with the controller's key: the executor answers
        // both with a failed outcome; as neither answers an action the log issued, the
        // controller records each as a refused message, with what the executor said.
        js.publish("logbook.actions.shop.web", "this is not an action".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let payload = b"this is not an action either".to_vec();
        let mut headers = async_nats::HeaderMap::new();
        let signature = env.controller_key().sign(&payload);
        headers.insert(bus::sign::SIGNATURE_HEADER, signature.as_str());
        js.publish_with_headers("logbook.actions.shop.web", headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
        let said = |needle: &'static str| {
            let env = &env;
            move || async move {
                env.entries().iter().find_map(|e| match &e.body {
                    Body::Marker(m) if m.marker == MarkerKind::Refused => m
                        .detail
                        .get("said")
                        .and_then(|s| s.as_str())
                        .filter(|s| s.starts_with("failed by ex-1") && s.contains(needle))
                        .map(str::to_string),
                    _ => None,
                })
            }
        };
        let unsigned = env
            .wait("the refusal of the unsigned message", said("not signed"))
            .await;
        assert!(unsigned.contains("refused"), "{unsigned}");
        let malformed = env
            .wait("the refusal of the malformed message", said("malformed"))
            .await;
        assert!(malformed.contains("malformed"), "{malformed}");
        assert!(
            !env.entries()
                .iter()
                .any(|e| matches!(&e.body, Body::Outcome(o) if o.result == OutcomeResult::Failed)),
            "an outcome answering no issued action was recorded"
        );
        let app = Application::test("shop", "web").build();
        env.apply(&app).await;
        env.converged(&[app]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_no_executor_answers_is_recorded_abandoned_and_no_longer_pending() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.env_vars
            .push(("LOGBOOK_MAX_DELIVER".into(), "2".into()));
        // Creates hang: each executor that takes one is killed before it answers.
        env.sandbox
            .faults()
            .set_latency(Verb::Create, Duration::from_secs(60));
        env.controller();
        env.apply(&Application::test("shop", "web").build()).await;
        let faults = env.sandbox.faults();
        let posts = || {
            faults
                .audited()
                .iter()
                .filter(|a| a.method == "POST")
                .count()
        };
        let abandoned = |env: &Env| {
            env.entries().into_iter().find_map(|e| match e.body {
                Body::Outcome(o) if o.result == OutcomeResult::Abandoned => Some(o),
                _ => None,
            })
        };
        let mut round = 0;
        let outcome = loop {
            if let Some(o) = abandoned(&env) {
                break o;
            }
            assert!(
                round < 8,
                "no abandoned outcome after {round} killed executors"
            );
            let before = posts();
            let name = format!("doomed-{round}");
            env.executor(&name, 1);
            env.wait(
                "an executor stuck in a create, or an abandoned outcome",
                || async { (posts() > before || abandoned(&env).is_some()).then_some(()) },
            )
            .await;
            env.kill_executor(&name);
            round += 1;
        };
        assert_eq!(outcome.executor, "nats");
        assert!(
            outcome.message.contains("2 deliveries"),
            "{}",
            outcome.message
        );
        // The fold no longer counts it as on its way, so a later plan may ask again.
        let entries = env.entries();
        let mut fold = logbook::world::Fold::new();
        for e in &entries {
            fold.apply(e.seq, e.at, &e.body);
        }
        assert!(
            fold.world()
                .pending_actions()
                .all(|p| p.id != outcome.action_id),
            "the abandoned action is still pending"
        );
    })
    .await;
}
