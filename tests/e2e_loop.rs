//! End to end: sandbox + real nats-server + `logbook controller` + `logbook executor` processes.
//! Applications become Deployments, Services and Ingress rules; changes follow; deletes clean up;
//! conflicts and hand edits are answered; every step is in the log.

use logbook_testkit::sandbox as support;
use logbook_testkit::{AppTest, e2e};

use e2e::{Env, outcomes};
use kube::api::{Patch, PatchParams};
use logbook::model::Application;
use logbook::record::{Body, Change, Entry, OutcomeResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_become_children_follow_changes_and_clean_up() {
    support::bounded(async {
        let mut env = Env::start(&["shop", "blog"]).await;
        env.controller();
        env.executor("ex-1", 8);

        env.apply(
            &Application::test("shop", "web")
                .host("shop.example.com")
                .build(),
        )
        .await;
        env.apply(
            &Application::test("shop", "api")
                .host("api.example.com")
                .path("/v1")
                .build(),
        )
        .await;
        env.apply(
            &Application::test("blog", "site")
                .host("blog.example.com")
                .build(),
        )
        .await;

        for (ns, name, url) in [
            ("shop", "web", "http://shop.example.com/"),
            ("shop", "api", "http://api.example.com/v1"),
            ("blog", "site", "http://blog.example.com/"),
        ] {
            let app = env.ready(ns, name).await;
            assert_eq!(app.status.as_ref().unwrap().url.as_deref(), Some(url));
            assert!(
                env.services(ns).get_opt(name).await.unwrap().is_some(),
                "{ns}/{name} Service"
            );
        }
        let hosts = env
            .wait("both shop rules in the shared Ingress", || async {
                env.ingress_hosts("shop").await.filter(|h| h.len() == 2)
            })
            .await;
        assert_eq!(hosts, ["api.example.com", "shop.example.com"]);
        assert_eq!(
            env.ingress_hosts("blog").await.unwrap(),
            ["blog.example.com"]
        );

        // A new image: the Deployment follows.
        env.apply(
            &Application::test("shop", "web")
                .host("shop.example.com")
                .image("registry.example.com/web:2.0")
                .env("MODE", "fast")
                .build(),
        )
        .await;
        env.wait("the Deployment to follow the new image", || async {
            (env.image("shop", "web").await.as_deref() == Some("registry.example.com/web:2.0"))
                .then_some(())
        })
        .await;
        let container_env = || async {
            let d = env.deployments("shop").get("web").await.ok()?;
            let c = d.spec.template.spec?.containers.into_iter().next()?;
            Some(c.env.unwrap_or_default().len())
        };
        env.wait("the env variable to reach the Deployment", || async {
            (container_env().await == Some(1)).then_some(())
        })
        .await;
        // Its last env variable removed: the Deployment loses it too.
        env.apply(
            &Application::test("shop", "web")
                .host("shop.example.com")
                .image("registry.example.com/web:2.0")
                .build(),
        )
        .await;
        env.wait(
            "the removed env variable to leave the Deployment",
            || async { (container_env().await == Some(0)).then_some(()) },
        )
        .await;

        // A host already taken: Invalid naming the holder, and no children. The oldest claim
        // wins and creationTimestamp has whole seconds (ties go by namespace and name, where
        // blog/thief would win), so the thief comes in a later second than shop/web.
        let web_created = env
            .apps("shop")
            .get("web")
            .await
            .unwrap()
            .metadata
            .creation_timestamp
            .unwrap()
            .0;
        env.wait("a second later than shop/web's creation", || async {
            (k8s_openapi::jiff::Timestamp::now().as_second() > web_created.as_second())
                .then_some(())
        })
        .await;
        env.apply(
            &Application::test("blog", "thief")
                .host("shop.example.com")
                .build(),
        )
        .await;
        let thief = env
            .wait("the thief to be Invalid", || async {
                let app = env.apps("blog").get_opt("thief").await.ok()??;
                let c = app
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Invalid" && c.status == "True")?;
                Some(c)
            })
            .await;
        assert_eq!(thief.reason, "HostConflict");
        assert!(
            thief.message.contains("shop/web"),
            "names the holder: {}",
            thief.message
        );
        assert!(
            env.deployments("blog")
                .get_opt("thief")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            env.ingress_hosts("blog").await.unwrap(),
            ["blog.example.com"]
        );

        // Delete one of the two in shop: its children go, its rule leaves, the other's stays.
        env.delete_app("shop", "api").await;
        env.wait("api's children and rule to go", || async {
            let gone = env.deployments("shop").get_opt("api").await.ok()?.is_none()
                && env.services("shop").get_opt("api").await.ok()?.is_none();
            let hosts = env.ingress_hosts("shop").await?;
            (gone && hosts == ["shop.example.com"]).then_some(())
        })
        .await;
        assert!(
            env.deployments("shop")
                .get_opt("web")
                .await
                .unwrap()
                .is_some()
        );

        // The log tells the story: events, plans, actions, outcomes, none of them a failure.
        // (Under load a write may race the sandbox's own status updates and meet a
        // resourceVersion conflict; that outcome says it will be retried, and the retry is
        // applied, or superseded by the newer plan that got there first.)
        let entries = env.entries();
        let outs = outcomes(&entries);
        assert!(!outs.is_empty());
        for e in &entries {
            if let Body::Outcome(o) = &e.body {
                let fine = matches!(
                    o.result,
                    OutcomeResult::Applied | OutcomeResult::NoOp | OutcomeResult::Superseded
                ) || (o.result == OutcomeResult::Conflict && o.retry);
                assert!(fine, "{o:?}: {outs:?}");
            }
        }
        assert!(
            outs.iter().filter(|(_, r, _)| r == "applied").count() >= 10,
            "{outs:?}"
        );
        let actions = entries
            .iter()
            .filter(|e| matches!(e.body, Body::Action(_)))
            .count();
        assert!(actions >= 10, "{actions} actions");
        let r = logbook::log::LogReader::open(&env.log_path).unwrap();
        assert!(r.verify().unwrap().problem.is_none());
        // Replaying the log reproduces every plan from the prefix it read.
        assert!(e2e::recompute_plans(&entries) >= 5);

        // SIGTERM: the controller records that it stopped and exits 0.
        assert!(env.stop_controller().success());
        let last = env.entries().pop().unwrap();
        assert!(
            matches!(&last.body, Body::Marker(m) if m.marker == logbook::record::MarkerKind::Stop),
            "the log ends with a stop marker: {last:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_of_a_managed_deployment_is_put_back_and_logged() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.controller();
        env.executor("ex-1", 4);
        env.apply(
            &Application::test("shop", "web")
                .image("registry.example.com/web:1.0")
                .build(),
        )
        .await;
        env.ready("shop", "web").await;

        // Someone edits the image by hand.
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "evil.example.com/miner:latest"}
        ]}}}});
        env.deployments("shop")
            .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap();
        env.wait("logbook to put the image back", || async {
            (env.image("shop", "web").await.as_deref() == Some("registry.example.com/web:1.0"))
                .then_some(())
        })
        .await;

        // The log shows the drift event and the action that answered it.
        let entries = env.entries();
        let edited = |e: &&Entry| match &e.body {
            Body::Event(ev) => {
                ev.change == Change::Upsert
                    && ev.key.kind == "Deployment"
                    && ev
                        .object
                        .as_ref()
                        .is_some_and(|o| o.as_str().contains("evil.example.com"))
            }
            _ => false,
        };
        let drift = entries
            .iter()
            .find(edited)
            .expect("the hand edit was recorded as an event");
        let answer = entries
            .iter()
            .find_map(|e| match &e.body {
                Body::Action(a) if e.seq > drift.seq && a.action.target.kind == "Deployment" => {
                    Some(a)
                }
                _ => None,
            })
            .expect("an action after the drift event");
        assert!(
            answer.action.reason.contains("drift"),
            "{}",
            answer.action.reason
        );
        // Derived from a drifted version: the first, or a later one the same batch brought (the
        // sandbox's rollout rewrites the edited Deployment's status).
        let drifted: Vec<&str> = entries
            .iter()
            .filter(edited)
            .filter_map(|e| drift_rv(&e.body))
            .collect();
        assert!(
            answer
                .action
                .basis
                .values()
                .any(|rv| drifted.contains(&rv.as_str())),
            "the action was derived from a drifted version ({drifted:?}): {:?}",
            answer.action.basis
        );
        assert!(e2e::recompute_plans(&entries) >= 2);
    })
    .await;
}

fn drift_rv(body: &Body) -> Option<&str> {
    match body {
        Body::Event(e) => Some(&e.resource_version),
        _ => None,
    }
}

/// A namespace's shared Ingress grows past the size where the log records what changed: its
/// later events and actions are stored as patches, the actions the outbox publishes from the
/// log are whole (the executor applies every rule), and the log replays exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_shared_ingress_is_logged_as_what_changed_and_applied_whole() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.controller();
        env.executor("ex-1", 8);
        // 16 rules make an Ingress of over 2 KiB of JSON; one more at a time after that.
        let app = |i: u32| {
            Application::test("shop", &format!("app-{i:02}"))
                .host(&format!("app-{i:02}.shop.example.com"))
                .build()
        };
        let first: Vec<Application> = (0..32).step_by(2).map(app).collect();
        for a in &first {
            env.apply(a).await;
        }
        env.converged(&first).await;
        for i in [13, 21, 33] {
            env.apply(&app(i)).await;
            env.wait(
                &format!("app-{i:02}'s rule in the shared Ingress"),
                || async {
                    env.ingress_hosts("shop")
                        .await
                        .filter(|h| h.contains(&format!("app-{i:02}.shop.example.com")))
                },
            )
            .await;
        }
        let hosts = env.ingress_hosts("shop").await.unwrap();
        assert_eq!(hosts.len(), 19, "{hosts:?}");

        let r = logbook::log::LogReader::open(&env.log_path).unwrap();
        let ingress =
            logbook::record::ObjKey::new("Ingress", "shop", logbook::model::SHARED_INGRESS);
        let stored: Vec<_> = r
            .query(&logbook::log::Filter::new().object(&ingress).as_stored())
            .map(|e| e.unwrap())
            .collect();
        let patched = |kind: logbook::record::EntryKind| {
            stored
                .iter()
                .filter(|e| e.kind() == kind && e.delta.is_some())
                .count()
        };
        assert!(
            patched(logbook::record::EntryKind::Action) >= 1
                && patched(logbook::record::EntryKind::Event) >= 1,
            "no Ingress event or action stored as a patch: {}",
            env.trail(40)
        );
        assert!(r.verify().unwrap().problem.is_none());
        let report = logbook::replay::verify(&r, &Default::default()).unwrap();
        assert!(report.is_ok(), "{report:#?}");
        assert!(e2e::recompute_plans(&env.entries()) >= 5);
    })
    .await;
}
