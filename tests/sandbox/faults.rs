//! Fault injection: the client sees exactly the errors the sandbox injected, the same seed
//! injects the same faults, latency and pause hold requests, watches end after N events, and
//! the admin endpoint drives all of it over HTTP.

use logbook_testkit::sandbox as support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use logbook::sandbox::{Injected, Sandbox, SandboxConfig, Verb};
use serde_json::json;
use support::{bounded, raw, start, start_with};

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A client that does not retry 429s, so that it sees every injected error.
fn plain_client(sandbox: &Sandbox) -> kube::Client {
    let mut config = kube::Config::new(sandbox.url().parse().expect("url"));
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

/// Create, read and patch `n` ConfigMaps, retrying each step until it succeeds; returns every
/// error seen as (verb, code, reason).
async fn scenario(client: &kube::Client, n: usize) -> Vec<(Verb, u16, String)> {
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut seen = Vec::new();
    let mut record = |verb: Verb, e: kube::Error| match e {
        kube::Error::Api(s) => seen.push((verb, s.code, s.reason.clone())),
        other => panic!("unexpected client error: {other:?}"),
    };
    for i in 0..n {
        let name = format!("cm-{i}");
        for attempt in 0.. {
            assert!(attempt < 50, "too many attempts");
            match cms.create(&PostParams::default(), &cm(&name)).await {
                Ok(_) => break,
                Err(e) => record(Verb::Create, e),
            }
        }
        for attempt in 0.. {
            assert!(attempt < 50, "too many attempts");
            match cms.get(&name).await {
                Ok(_) => break,
                Err(e) => record(Verb::Get, e),
            }
        }
        for attempt in 0.. {
            assert!(attempt < 50, "too many attempts");
            let patch = Patch::Merge(json!({ "data": { "i": i.to_string() } }));
            match cms.patch(&name, &PatchParams::default(), &patch).await {
                Ok(_) => break,
                Err(e) => record(Verb::Patch, e),
            }
        }
    }
    seen
}

fn reason(code: u16) -> &'static str {
    match code {
        500 => "InternalError",
        429 => "TooManyRequests",
        409 => "Conflict",
        _ => "?",
    }
}

#[tokio::test]
async fn the_client_sees_exactly_the_injected_errors() {
    bounded(async {
        let sandbox = start_with(SandboxConfig {
            seed: 7,
            ..support::fast_config()
        })
        .await;
        let faults = sandbox.faults();
        faults.set_error_rate(0.3, &[500, 429, 409]);
        let seen = scenario(&plain_client(&sandbox), 20).await;
        faults.set_error_rate(0.0, &[]);
        let injected: Vec<(Verb, u16, String)> = faults
            .injected()
            .into_iter()
            .map(|i| (i.verb, i.code, reason(i.code).to_string()))
            .collect();
        assert_eq!(seen, injected);
        for code in [500, 429, 409] {
            assert!(
                seen.iter().any(|(_, c, _)| *c == code),
                "no {code} injected in {seen:?}"
            );
        }
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_same_seed_injects_the_same_faults() {
    bounded(async {
        let mut runs: Vec<Vec<Injected>> = Vec::new();
        for _ in 0..2 {
            let sandbox = start_with(SandboxConfig {
                seed: 1234,
                ..support::fast_config()
            })
            .await;
            sandbox.faults().set_error_rate(0.25, &[500, 409]);
            scenario(&plain_client(&sandbox), 10).await;
            runs.push(sandbox.faults().injected());
            sandbox.shutdown().await;
        }
        assert!(!runs[0].is_empty());
        assert_eq!(runs[0], runs[1]);
    })
    .await;
}

#[tokio::test]
async fn the_default_client_retries_injected_429s() {
    bounded(async {
        let sandbox = start().await;
        let faults = sandbox.faults();
        let mut config = faults.config();
        config.error_rate = 0.5;
        config.error_codes = vec![429];
        config.retry_after_seconds = 0;
        faults.set(config);
        let seen = scenario(&sandbox.client(), 5).await;
        assert!(seen.is_empty(), "kube's default retry hides 429s: {seen:?}");
        assert!(!faults.injected().is_empty());
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn latency_and_pause_hold_requests() {
    bounded(async {
        let sandbox = start().await;
        let faults = sandbox.faults();
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        cms.create(&PostParams::default(), &cm("a"))
            .await
            .expect("create");

        faults.set_latency(Verb::Get, Duration::from_millis(150));
        let t = Instant::now();
        cms.get("a").await.expect("get");
        assert!(t.elapsed() >= Duration::from_millis(150), "latency added");
        faults.set_latency(Verb::Get, Duration::ZERO);

        faults.pause();
        let held = tokio::spawn({
            let cms = cms.clone();
            async move { cms.get("a").await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!held.is_finished(), "a paused sandbox holds requests");
        faults.resume();
        tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .expect("released after resume")
            .expect("task")
            .expect("get");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn watches_close_after_n_events() {
    bounded(async {
        let sandbox = start().await;
        sandbox.faults().close_watches_after(Some(2));
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        let list = cms.list(&Default::default()).await.expect("list");
        let rv = list.metadata.resource_version.expect("rv");
        let mut stream = cms
            .watch(&WatchParams::default().disable_bookmarks(), &rv)
            .await
            .expect("watch")
            .boxed();
        for i in 0..3 {
            cms.create(&PostParams::default(), &cm(&format!("w{i}")))
                .await
                .expect("create");
        }
        let mut got = 0;
        while let Some(ev) = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("no hang")
        {
            assert!(matches!(ev, Ok(WatchEvent::Added(_))), "{ev:?}");
            got += 1;
        }
        assert_eq!(got, 2, "the stream ended after 2 events");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn admin_endpoint_drives_faults_over_http() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let created = cms
            .create(&PostParams::default(), &cm("a"))
            .await
            .expect("create");

        let (code, index) = raw(&client, "GET", "/sandbox/", None, vec![]).await;
        assert_eq!(code, 200);
        assert!(index.as_array().is_some_and(|a| !a.is_empty()));

        let settings = json!({ "errorRate": 1.0, "errorCodes": [500], "errorVerbs": ["get"] });
        let (code, body) = raw(
            &client,
            "PUT",
            "/sandbox/faults",
            Some("application/json"),
            settings.to_string().into_bytes(),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["errorRate"], 1.0);
        assert_eq!(
            support::api_error(cms.get("a").await),
            (500, "InternalError".into())
        );
        let (_, injected) = raw(&client, "GET", "/sandbox/injected", None, vec![]).await;
        assert_eq!(injected.as_array().map(|a| a.len()), Some(1), "{injected}");
        assert_eq!(injected[0]["verb"], "get");

        let (code, _) = raw(
            &client,
            "PUT",
            "/sandbox/faults",
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await;
        assert_eq!(code, 400);
        let (code, _) = raw(&client, "POST", "/sandbox/reset", None, vec![]).await;
        assert_eq!(code, 200);
        cms.get("a").await.expect("get after reset");

        let (code, _) = raw(&client, "POST", "/sandbox/pause", None, vec![]).await;
        assert_eq!(code, 200);
        assert!(sandbox.faults().config().paused);
        let (code, _) = raw(&client, "POST", "/sandbox/resume", None, vec![]).await;
        assert_eq!(code, 200);
        cms.get("a").await.expect("get after resume");

        let (code, body) = raw(&client, "POST", "/sandbox/compact", None, vec![]).await;
        assert_eq!(code, 200);
        assert!(body["resourceVersion"].as_str().is_some());
        let old = created.metadata.resource_version.expect("rv");
        let mut stream = cms
            .watch(&WatchParams::default(), &old)
            .await
            .expect("watch")
            .boxed();
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("no hang");
        assert!(
            matches!(first, Some(Ok(WatchEvent::Error(ref e))) if e.code == 410),
            "{first:?}"
        );

        let (code, state) = raw(&client, "GET", "/sandbox/state", None, vec![]).await;
        assert_eq!(code, 200);
        assert!(
            state["objects"]["/configmaps"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        );
        let (code, _) = raw(&client, "GET", "/sandbox/nope", None, vec![]).await;
        assert_eq!(code, 404);
        sandbox.shutdown().await;
    })
    .await;
}
