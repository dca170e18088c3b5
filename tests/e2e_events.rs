//! End to end, Kubernetes Events: what the controller had done to an Application shows up as
//! `events.k8s.io/v1` Events regarding it, reported by `logbook.dev/controller` and the
//! controller's identity: its Deployment and Service created, its image updated, and a
//! Warning when its host is already taken.

use logbook_testkit::sandbox as support;
use logbook_testkit::{AppTest, e2e};

use e2e::Env;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use logbook::model::Application;

/// The Events regarding Application `ns/name`.
async fn events_about(env: &Env, ns: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), ns);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Application") && r.name.as_deref() == Some(name)
            })
        })
        .collect()
}

fn related_kind(e: &Event) -> Option<&str> {
    e.related.as_ref()?.kind.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_done_to_an_application_is_an_event_on_it() {
    support::bounded(async {
        let mut env = Env::start(&["shop", "blog"]).await;
        env.elected_controller("events-1");
        env.executor("ex-1", 8);

        let web = Application::test("shop", "web")
            .host("shop.example.com")
            .image("nginx:1.27")
            .build();
        env.apply(&web).await;
        let ready = env.ready("shop", "web").await;
        let uid = ready.metadata.uid.clone();

        let created = env
            .wait(
                "Created Events for the Deployment and the Service",
                || async {
                    let evs = events_about(&env, "shop", "web").await;
                    let created: Vec<Event> = evs
                        .into_iter()
                        .filter(|e| e.reason.as_deref() == Some("Created"))
                        .collect();
                    let kinds: Vec<&str> = created.iter().filter_map(related_kind).collect();
                    (kinds.contains(&"Deployment") && kinds.contains(&"Service")).then_some(created)
                },
            )
            .await;
        for e in &created {
            assert_eq!(
                e.reporting_controller.as_deref(),
                Some("logbook.dev/controller")
            );
            assert_eq!(e.reporting_instance.as_deref(), Some("events-1"));
            assert_eq!(e.action.as_deref(), Some("Create"));
            assert_eq!(e.type_.as_deref(), Some("Normal"));
            assert!(e.event_time.is_some());
            let regarding = e.regarding.as_ref().unwrap();
            assert_eq!(regarding.namespace.as_deref(), Some("shop"));
            assert_eq!(
                regarding.uid, uid,
                "regarding carries the Application's uid"
            );
            let note = e.note.as_deref().unwrap_or_default();
            assert!(note.contains("act-"), "the note names the action: {note}");
            let name = e.metadata.name.as_deref().unwrap_or_default();
            assert!(
                name.starts_with("web.") && note.contains(&name["web.".len()..]),
                "the Event is named after its Application and action: {name} / {note}"
            );
        }
        let deployment_note = created
            .iter()
            .find(|e| related_kind(e) == Some("Deployment"))
            .and_then(|e| e.note.clone())
            .unwrap_or_default();
        assert!(
            deployment_note.starts_with("created Deployment shop/web"),
            "{deployment_note}"
        );

        // A new image: an Updated Event on the Deployment saying from what to what (the
        // Service follows too: its version label comes from the image's tag).
        env.apply(
            &Application::test("shop", "web")
                .host("shop.example.com")
                .image("nginx:1.28")
                .build(),
        )
        .await;
        let updated = env
            .wait("an Updated Event for the new image", || async {
                events_about(&env, "shop", "web")
                    .await
                    .into_iter()
                    .find(|e| {
                        e.reason.as_deref() == Some("Updated")
                            && related_kind(e) == Some("Deployment")
                    })
            })
            .await;
        assert_eq!(updated.action.as_deref(), Some("Update"));
        let note = updated.note.clone().unwrap_or_default();
        assert!(
            note.contains("image nginx:1.27 → nginx:1.28"),
            "the note says what changed: {note}"
        );

        // The same host again, from a later Application: a Warning HostConflict on it, and
        // nothing about it on the holder. creationTimestamp has whole seconds and ties go by
        // namespace and name (blog/thief would win one), so the thief comes a second later.
        let web_created = ready.metadata.creation_timestamp.clone().unwrap().0;
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
        let conflict = env
            .wait("a HostConflict Event on the thief", || async {
                events_about(&env, "blog", "thief")
                    .await
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("HostConflict"))
            })
            .await;
        assert_eq!(conflict.type_.as_deref(), Some("Warning"));
        assert_eq!(conflict.action.as_deref(), Some("Reject"));
        let note = conflict.note.clone().unwrap_or_default();
        assert!(note.contains("shop/web"), "names the holder: {note}");
        assert!(
            events_about(&env, "shop", "web")
                .await
                .iter()
                .all(|e| e.type_.as_deref() == Some("Normal")),
            "no Warning on the holder"
        );

        // Each action has one Event, however often its outcome was seen.
        let all = events_about(&env, "shop", "web").await;
        let mut names: Vec<String> = all.iter().filter_map(|e| e.metadata.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    })
    .await;
}
