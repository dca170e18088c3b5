//! End to end, liveness and trust: an action lost on the bus is published again and the status
//! never claims Ready for what is not running; forged actions, outcomes, fencing tokens and
//! statuses change nothing that stays, and each is recorded.

use logbook_testkit::sandbox as support;
use logbook_testkit::{AppTest, e2e};

use e2e::Env;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use logbook::bus::sign::{Keys, SIGNATURE_HEADER, SigningKey, TRUSTED_FILE};
use logbook::bus::wire::{ActionMessage, MSG_ID, OutcomeMessage};
use logbook::bus::{self, NatsArgs};
use logbook::model::{Application, MANAGED_BY, MANAGER, PLAN_SEQ_ANNOTATION};
use logbook::record::{
    Action, Body, Entry, MarkerKind, ObjKey, OutcomeRecord, OutcomeResult, Redrive, Verb,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The controller's key, as only the controller holds it (the test reads it from disk to act
/// as the controller would, for actions that must pass the signature check).
fn controller_key(env: &Env) -> SigningKey {
    SigningKey::load(&env.dir.path().join("keys/controller.key"), "controller").unwrap()
}

/// The executors' key: trusted for outcomes, never for actions.
fn executor_key(env: &Env) -> SigningKey {
    SigningKey::load(&env.dir.path().join("keys/executor.key"), "executor").unwrap()
}

async fn jetstream(env: &Env) -> async_nats::jetstream::Context {
    let nc = bus::connect(&NatsArgs::plain(&env.nats.url()), "trust-test")
        .await
        .unwrap();
    async_nats::jetstream::new(nc)
}

/// Publishes `payload` on `subject` with `signature` (or none).
async fn publish(
    js: &async_nats::jetstream::Context,
    subject: String,
    msg_id: &str,
    signature: Option<String>,
    payload: Vec<u8>,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID, msg_id);
    if let Some(s) = signature {
        headers.insert(SIGNATURE_HEADER, s.as_str());
    }
    js.publish_with_headers(subject, headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

fn refusals(entries: &[Entry]) -> Vec<serde_json::Value> {
    entries
        .iter()
        .filter_map(|e| match &e.body {
            Body::Marker(m) if m.marker == MarkerKind::Refused => Some(m.detail.clone()),
            _ => None,
        })
        .collect()
}

fn ready_now(app: &Application) -> bool {
    let generation = app.metadata.generation;
    app.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_lost_on_the_bus_is_published_again_and_ready_never_means_the_old_image() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.env_vars
            .push(("LOGBOOK_ANSWER_DEADLINE".into(), "1s".into()));
        env.controller();
        env.executor("ex-1", 2);
        let mut app = Application::test("shop", "web")
            .image("registry.example.com/web:1.0")
            .build();
        env.apply(&app).await;
        env.converged(std::slice::from_ref(&app)).await;

        // Nobody takes actions now; the change is planned, published, and then lost.
        env.kill_executor("ex-1");
        let planned = env.entries().len();
        app.spec.image = "registry.example.com/web:2.0".into();
        env.apply(&app).await;
        env.wait("the new image to be planned", || async {
            env.entries()[planned..]
                .iter()
                .any(|e| matches!(&e.body, Body::Action(a) if a.action.target.kind == "Deployment"))
                .then_some(())
        })
        .await;
        let js = jetstream(&env).await;
        let mut stream = js.get_stream(bus::ACTIONS_STREAM).await.unwrap();
        env.wait("the actions to reach the stream", || {
            let mut stream = stream.clone();
            async move { (stream.info().await.ok()?.state.messages >= 2).then_some(()) }
        })
        .await;
        stream.purge().await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 0);

        // From now until convergence, a Ready status for the current generation must mean the
        // Deployment runs the new image.
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (apps, deployments, stop) =
                (env.apps("shop"), env.deployments("shop"), stop.clone());
            tokio::spawn(async move {
                let mut lies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let (Ok(a), Ok(d)) = (apps.get("web").await, deployments.get("web").await) {
                        let image = d
                            .spec
                            .template
                            .spec
                            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
                        if ready_now(&a) && image.as_deref() != Some("registry.example.com/web:2.0")
                        {
                            lies.push(format!(
                                "Ready for generation {:?} with {image:?}",
                                a.metadata.generation
                            ));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                lies
            })
        };
        env.executor("ex-2", 2);
        env.converged(std::slice::from_ref(&app)).await;
        let app_now = env.ready("shop", "web").await;
        assert!(ready_now(&app_now), "{:?}", app_now.status);
        stop.store(true, Ordering::Relaxed);
        let lies = watcher.await.unwrap();
        assert!(lies.is_empty(), "the status lied: {lies:?}");

        // The log says what happened: re-drives of the lost actions, each checked by replay.
        let entries = env.entries();
        let redrives: Vec<Redrive> = entries
            .iter()
            .filter_map(|e| match &e.body {
                Body::Marker(m) => Redrive::of(m),
                _ => None,
            })
            .collect();
        assert!(!redrives.is_empty(), "{}", env.trail(40));
        assert!(
            entries
                .iter()
                .any(|e| matches!(&e.body, Body::Marker(m) if m.marker == MarkerKind::Tick)),
            "a tick marker"
        );
        e2e::recompute_plans(&entries);
        let reader = logbook::log::LogReader::open(&env.log_path).unwrap();
        let report = logbook::replay::verify::verify(&reader, &Default::default()).unwrap();
        assert!(report.is_ok(), "{report:?}");
        // `audit why` tells it: the action that changed the object was published again.
        let redriven = [
            ObjKey::new("Deployment", "shop", "web"),
            ObjKey::new("Application", "shop", "web"),
        ]
        .iter()
        .filter_map(|k| logbook::replay::explain(&reader, k, None).ok()?.action)
        .any(|a| !a.redrives.is_empty());
        assert!(redriven, "audit why shows no re-drive");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_actions_and_outcomes_change_nothing_and_are_recorded_as_refused() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.controller();
        env.executor("ex-1", 2);
        let app = Application::test("shop", "web").build();
        env.apply(&app).await;
        env.converged(std::slice::from_ref(&app)).await;
        // Someone else's Deployment in the same namespace.
        let theirs: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "theirs", "namespace": "shop", "labels": {"team": "other"}},
            "spec": {"selector": {"matchLabels": {"app": "theirs"}},
                "template": {"metadata": {"labels": {"app": "theirs"}},
                    "spec": {"containers": [{"name": "c", "image": "theirs:1"}]}}}
        }))
        .unwrap();
        let deployments: Api<Deployment> = env.deployments("shop");
        deployments
            .create(&PostParams::default(), &theirs)
            .await
            .unwrap();
        let before = env.entries();
        let refused_before = refusals(&before).len();

        // A captured real action, re-aimed at their Deployment.
        let captured = before
            .iter()
            .rev()
            .find_map(|e| match &e.body {
                Body::Action(a) if a.action.target.kind == "Deployment" => {
                    Some((a.plan_seq, a.action.to_action().unwrap()))
                }
                _ => None,
            })
            .unwrap();
        let mut reaimed = captured.1.clone();
        reaimed.target.name = "theirs".into();
        reaimed.verb = Verb::Apply;
        if let Some(o) = reaimed.object.as_mut() {
            o["metadata"]["name"] = json!("theirs");
        }
        let message = |plan_seq: u64, action: Action| ActionMessage {
            entry_id: uuid::Uuid::new_v4(),
            seq: 1,
            plan_seq,
            at: chrono::Utc::now(),
            action,
        };
        let delete_theirs = Action::new(
            Verb::Delete,
            ObjKey::new("Deployment", "shop", "theirs"),
            "apps/v1",
            None,
            None,
            None,
            "forged".into(),
            Default::default(),
        );
        let secret = Action::new(
            Verb::Create,
            ObjKey::new("Secret", "shop", "stolen"),
            "v1",
            None,
            Some(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "stolen", "namespace": "shop",
                    "labels": {MANAGED_BY: MANAGER}}, "stringData": {"k": "v"}})),
            None,
            "forged".into(),
            Default::default(),
        );
        let forged_seq = message(999_999_999, captured.1.clone());
        let js = jetstream(&env).await;
        let controller = controller_key(&env);
        let executor = executor_key(&env);
        // (signature, message): unsigned, the wrong role's key, an altered signed message, and
        // signed ones (as a stolen controller key would) outside logbook's remit.
        let reaimed_bytes = serde_json::to_vec(&message(captured.0, reaimed.clone())).unwrap();
        let altered_signature =
            controller.sign(&serde_json::to_vec(&message(captured.0, captured.1.clone())).unwrap());
        let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
            (
                "unsigned delete",
                None,
                serde_json::to_vec(&message(5, delete_theirs.clone())).unwrap(),
            ),
            (
                "executor-signed delete",
                Some(
                    executor.sign(&serde_json::to_vec(&message(5, delete_theirs.clone())).unwrap()),
                ),
                serde_json::to_vec(&message(5, delete_theirs.clone())).unwrap(),
            ),
            (
                "re-aimed with the original signature",
                Some(altered_signature),
                reaimed_bytes.clone(),
            ),
            (
                "unsigned plan sequence 999999999",
                None,
                serde_json::to_vec(&forged_seq).unwrap(),
            ),
            (
                "signed re-aimed at theirs",
                Some(controller.sign(&reaimed_bytes)),
                reaimed_bytes,
            ),
            (
                "signed Secret",
                Some(controller.sign(&serde_json::to_vec(&message(5, secret.clone())).unwrap())),
                serde_json::to_vec(&message(5, secret.clone())).unwrap(),
            ),
        ];
        let n = cases.len();
        for (i, (what, signature, payload)) in cases.into_iter().enumerate() {
            let subject = bus::action_subject(
                &ObjKey::new("Deployment", "shop", "theirs"),
                Some("shop/theirs"),
            );
            publish(&js, subject, &format!("forged-{i}"), signature, payload).await;
            let _ = what;
        }
        // Forged outcomes: unsigned, signed by the controller's key (not an executor's), too
        // large, and a signed one for an action the log never issued (with CR/LF in its id).
        let issued = captured.1.id.clone();
        let outcome = |action_id: &str, message: &str| OutcomeMessage {
            at: chrono::Utc::now(),
            target: ObjKey::new("Deployment", "shop", "web"),
            app: Some("shop/web".into()),
            outcome: OutcomeRecord {
                action_id: action_id.into(),
                result: OutcomeResult::Applied,
                message: message.into(),
                executor: "forger".into(),
                attempt: 1,
                resource_version: None,
                retry: false,
            },
        };
        let subject =
            bus::outcome_subject(&ObjKey::new("Deployment", "shop", "web"), Some("shop/web"));
        let unsigned = serde_json::to_vec(&outcome(&issued, "forged: unsigned")).unwrap();
        publish(&js, subject.clone(), "o-1", None, unsigned).await;
        let by_controller =
            serde_json::to_vec(&outcome(&issued, "forged: controller key")).unwrap();
        publish(
            &js,
            subject.clone(),
            "o-2",
            Some(controller.sign(&by_controller)),
            by_controller,
        )
        .await;
        let huge = serde_json::to_vec(&outcome(&issued, &"x".repeat(900_000))).unwrap();
        publish(
            &js,
            subject.clone(),
            "o-3",
            Some(executor.sign(&huge)),
            huge,
        )
        .await;
        let unknown = serde_json::to_vec(&outcome(
            "act-forged\r\n   99 outcome  applied",
            "forged: unknown",
        ))
        .unwrap();
        publish(
            &js,
            subject.clone(),
            "o-4",
            Some(executor.sign(&unknown)),
            unknown,
        )
        .await;

        // Every forged action comes back as the executor's refusal, which answers no action
        // the log issued; each forged outcome is refused at once.
        env.wait("every forgery to be refused and recorded", || async {
            (refusals(&env.entries()).len() >= refused_before + n + 4).then_some(())
        })
        .await;
        let entries = env.entries();
        let recorded = refusals(&entries);
        for r in &recorded {
            assert!(
                r.get("sha256").is_some() && r.get("reason").is_some(),
                "{r}"
            );
            assert!(
                !r.to_string().contains("xxxxxxxxxx"),
                "a refusal carries no payload"
            );
        }
        for e in &entries {
            if let Body::Outcome(o) = &e.body {
                assert!(
                    !o.message.starts_with("forged"),
                    "a forged outcome was recorded: {o:?}"
                );
                assert_ne!(o.executor, "forger");
            }
        }
        let trail = env.trail(60);
        assert!(!trail.contains("\r"), "{trail:?}");
        // Nothing changed: their Deployment is theirs, no Secret, ours as it was.
        let d = deployments.get("theirs").await.unwrap();
        assert_eq!(d.metadata.labels.unwrap_or_default().get(MANAGED_BY), None);
        let image = d.spec.template.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("theirs:1"));
        let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "shop");
        assert!(secrets.get_opt("stolen").await.unwrap().is_none());
        env.converged(std::slice::from_ref(&app)).await;
        let ours = deployments.get("web").await.unwrap();
        let carried: u64 = ours.metadata.annotations.unwrap_or_default()[PLAN_SEQ_ANNOTATION]
            .parse()
            .unwrap();
        assert!(carried < 999_999_999);
        // A key file nobody trusts cannot sign for anyone.
        let stranger = Keys::generate_local(&env.dir.path().join("stranger"))
            .unwrap()
            .0;
        let trusted =
            logbook::bus::sign::TrustedKeys::load(&env.dir.path().join("keys").join(TRUSTED_FILE))
                .unwrap();
        assert!(
            trusted
                .verify(Some(&stranger.signing.sign(b"x")), b"x", |_| true)
                .is_err()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_fencing_tokens_and_statuses_are_repaired_with_the_reason_recorded() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.controller();
        env.executor("ex-1", 2);
        let app = Application::test("shop", "web")
            .host("web.example.com")
            .image("registry.example.com/web:1.0")
            .build();
        env.apply(&app).await;
        env.converged(std::slice::from_ref(&app)).await;

        // A hijack, as `kubectl annotate` and `kubectl set image` would do it.
        env.hand_edit(
            "Deployment",
            "shop",
            "web",
            json!({"metadata": {"annotations": {PLAN_SEQ_ANNOTATION: "999999999"}},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "attacker.example/evil:1"}]}}}}),
        )
        .await
        .unwrap();
        // And a forged status.
        let apps = env.apps("shop");
        apps.patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"url": "http://attacker.example/",
                "lastAction": {"actionId": "act-forged", "planSeq": 999999999u64}}})),
        )
        .await
        .unwrap();

        env.wait("the Deployment and the status to be repaired", || async {
            let image = env.image("shop", "web").await?;
            let a = apps.get("web").await.ok()?;
            let s = a.status?;
            (image == "registry.example.com/web:1.0"
                && s.url.as_deref() == Some("http://web.example.com/")
                && s.last_action.is_some_and(|l| l.plan_seq < 999_999_999))
            .then_some(())
        })
        .await;
        let d = env.deployments("shop").get("web").await.unwrap();
        let carried: u64 = d.metadata.annotations.unwrap_or_default()[PLAN_SEQ_ANNOTATION]
            .parse()
            .unwrap();
        let head = env.entries().last().unwrap().seq;
        assert!(carried <= head, "{carried} > {head}");
        let reasons: Vec<String> = env
            .entries()
            .iter()
            .filter_map(|e| match &e.body {
                Body::Action(a)
                    if a.action.reason.contains("never issued")
                        || a.action.reason.contains("beyond the newest") =>
                {
                    Some(format!(
                        "{} {}: {}",
                        a.action.verb, a.action.target, a.action.reason
                    ))
                }
                _ => None,
            })
            .collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("apply Deployment/shop/web")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("status Application/shop/web")),
            "{reasons:?}"
        );
        e2e::recompute_plans(&env.entries());
    })
    .await;
}
