//! Watches against the sandbox with the real client: raw watch events, bookmarks, selector
//! transitions, 410 Gone, and `kube::runtime::watcher` converging through closed streams,
//! compaction and streaming lists.

use logbook_testkit::sandbox as support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use support::{bounded, eventually, start};

fn cm(name: &str, app: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The next event, bookmarks included.
async fn next_raw(
    stream: &mut (impl futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin),
) -> WatchEvent<ConfigMap> {
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Some(Ok(e))) => e,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

/// The next event that is not a bookmark (those come every 100 ms in these tests).
async fn next_event(
    stream: &mut (impl futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin),
) -> WatchEvent<ConfigMap> {
    loop {
        match next_raw(stream).await {
            WatchEvent::Bookmark(_) => continue,
            e => return e,
        }
    }
}

fn names(store: &Store<ConfigMap>) -> BTreeSet<String> {
    store
        .state()
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

/// Run a reflector over ConfigMaps in `default`, recording watcher errors.
fn reflect(
    api: Api<ConfigMap>,
    config: watcher::Config,
) -> (
    Store<ConfigMap>,
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let (reader, writer) = reflector::store();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errs = errors.clone();
    let stream = reflector::reflector(writer, watcher(api, config));
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                errs.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(e.to_string());
            }
        }
    });
    (reader, errors, task)
}

#[tokio::test]
async fn raw_watch_events_bookmarks_and_selectors() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let pp = PostParams::default();
        let a = cms.create(&pp, &cm("a", "web")).await.expect("create");
        let start_rv = a.metadata.resource_version.clone().expect("rv");

        // From a resourceVersion: only what came after it.
        let wp = WatchParams::default().labels("app=web");
        let mut stream = cms.watch(&wp, &start_rv).await.expect("watch").boxed();
        cms.create(&pp, &cm("b", "web")).await.expect("create b");
        cms.create(&pp, &cm("c", "db"))
            .await
            .expect("create c (filtered out)");
        match next_event(&mut stream).await {
            WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
            other => panic!("expected ADDED b, got {other:?}"),
        }
        cms.patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "x": "1" } })),
        )
        .await
        .expect("patch");
        match next_event(&mut stream).await {
            WatchEvent::Modified(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
            other => panic!("expected MODIFIED b, got {other:?}"),
        }
        // Leaving the selector is a DELETED for this watcher; entering it is an ADDED.
        cms.patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "app": "other" } } })),
        )
        .await
        .expect("relabel");
        assert!(matches!(
            next_event(&mut stream).await,
            WatchEvent::Deleted(_)
        ));
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "app": "web" } } })),
        )
        .await
        .expect("relabel c");
        match next_event(&mut stream).await {
            WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("c")),
            other => panic!("expected ADDED c, got {other:?}"),
        }
        let deleted_rv = {
            cms.delete("c", &DeleteParams::default())
                .await
                .expect("delete");
            match next_event(&mut stream).await {
                WatchEvent::Deleted(o) => o.metadata.resource_version.expect("rv on delete"),
                other => panic!("expected DELETED c, got {other:?}"),
            }
        };
        // Bookmarks carry the latest resourceVersion.
        let mut bm_stream = cms
            .watch(&WatchParams::default(), &deleted_rv)
            .await
            .expect("watch")
            .boxed();
        match next_raw(&mut bm_stream).await {
            WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, deleted_rv),
            other => panic!("expected BOOKMARK, got {other:?}"),
        }
        // "0" starts with the current state as ADDED events.
        let mut from_zero = cms
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch")
            .boxed();
        let mut seen = BTreeSet::new();
        for _ in 0..2 {
            if let WatchEvent::Added(o) = next_event(&mut from_zero).await {
                seen.extend(o.metadata.name);
            }
        }
        assert_eq!(seen, BTreeSet::from(["a".to_string(), "b".to_string()]));
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let a = cms
            .create(&PostParams::default(), &cm("a", "web"))
            .await
            .expect("create");
        let old = a.metadata.resource_version.expect("rv");
        sandbox.faults().compact();
        let mut stream = cms
            .watch(&WatchParams::default(), &old)
            .await
            .expect("watch starts")
            .boxed();
        match next_event(&mut stream).await {
            WatchEvent::Error(e) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
            }
            other => panic!("expected ERROR 410, got {other:?}"),
        }
        assert!(
            tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("stream ends")
                .is_none(),
            "the stream ends after the error"
        );
        // A fresh list gives a version one can watch from.
        let list = cms.list(&Default::default()).await.expect("list");
        let rv = list.metadata.resource_version.expect("rv");
        let mut fresh = cms
            .watch(&WatchParams::default(), &rv)
            .await
            .expect("watch")
            .boxed();
        cms.create(&PostParams::default(), &cm("b", "web"))
            .await
            .expect("create");
        assert!(matches!(next_event(&mut fresh).await, WatchEvent::Added(_)));
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn history_limit_also_expires_old_versions() {
    bounded(async {
        let sandbox = support::start_with(logbook::sandbox::SandboxConfig {
            history: 3,
            ..support::fast_config()
        })
        .await;
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        let first = cms
            .create(&PostParams::default(), &cm("first", "x"))
            .await
            .expect("create");
        for i in 0..5 {
            cms.create(&PostParams::default(), &cm(&format!("n{i}"), "x"))
                .await
                .expect("create");
        }
        let mut stream = cms
            .watch(
                &WatchParams::default(),
                first.metadata.resource_version.as_deref().unwrap_or(""),
            )
            .await
            .expect("watch")
            .boxed();
        assert!(matches!(next_event(&mut stream).await, WatchEvent::Error(e) if e.code == 410));
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn watcher_survives_closed_streams() {
    bounded(async {
        let sandbox = start().await;
        let faults = sandbox.faults();
        faults.close_watches_after(Some(1));
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        let (store, _errors, task) = reflect(cms.clone(), watcher::Config::default());
        store.wait_until_ready().await.expect("initial list");
        let want: BTreeSet<String> = (0..10).map(|i| format!("cm-{i}")).collect();
        for n in &want {
            cms.create(&PostParams::default(), &cm(n, "x"))
                .await
                .expect("create");
        }
        cms.delete("cm-3", &DeleteParams::default())
            .await
            .expect("delete");
        let mut expected = want.clone();
        expected.remove("cm-3");
        eventually(
            "reflector to converge through closed streams",
            Duration::from_secs(20),
            || {
                let got = names(&store);
                let expected = expected.clone();
                async move { (got == expected).then_some(()) }
            },
        )
        .await;
        task.abort();
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn watcher_relists_after_410_and_converges() {
    bounded(async {
        let sandbox = start().await;
        let faults = sandbox.faults();
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        for i in 0..3 {
            cms.create(&PostParams::default(), &cm(&format!("before-{i}"), "x"))
                .await
                .expect("create");
        }
        // Restarts are counted through the raw watcher events.
        let inits = Arc::new(Mutex::new(0usize));
        let seen_inits = inits.clone();
        let (reader, writer) = reflector::store();
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let errs = errors.clone();
        let stream = watcher(cms.clone(), watcher::Config::default())
            .map_ok(move |e| {
                if matches!(e, watcher::Event::Init) {
                    *seen_inits.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
                e
            })
            .reflect(writer);
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    errs.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{e:?}"));
                }
            }
        });
        reader.wait_until_ready().await.expect("initial list");

        // While the watch is down, things change and history is compacted.
        faults.compact();
        cms.delete("before-0", &DeleteParams::default())
            .await
            .expect("delete");
        cms.create(&PostParams::default(), &cm("after", "x"))
            .await
            .expect("create");
        let expected: BTreeSet<String> = ["before-1", "before-2", "after"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        eventually(
            "reflector to converge after 410",
            Duration::from_secs(20),
            || {
                let got = names(&reader);
                let expected = expected.clone();
                async move { (got == expected).then_some(()) }
            },
        )
        .await;
        let errors = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(
            errors.iter().any(|e| e.contains("410")),
            "the watcher saw the 410: {errors:?}"
        );
        assert!(
            *inits.lock().unwrap_or_else(|p| p.into_inner()) >= 2,
            "the watcher relisted"
        );
        task.abort();
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn streaming_list_watcher_converges() {
    bounded(async {
        let sandbox = start().await;
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        cms.create(&PostParams::default(), &cm("one", "x"))
            .await
            .expect("create");
        let (store, _errors, task) =
            reflect(cms.clone(), watcher::Config::default().streaming_lists());
        store.wait_until_ready().await.expect("initial events");
        cms.create(&PostParams::default(), &cm("two", "x"))
            .await
            .expect("create");
        eventually(
            "streaming-list reflector to converge",
            Duration::from_secs(10),
            || {
                let got = names(&store);
                async move { (got.len() == 2).then_some(()) }
            },
        )
        .await;
        task.abort();
        sandbox.shutdown().await;
    })
    .await;
}
