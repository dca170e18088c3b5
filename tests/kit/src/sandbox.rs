//! Shared helpers for the tests that run a sandbox: start one, wait on conditions with deadlines,
//! install the Application CRD, read API errors.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use logbook::model::Application;
use logbook::sandbox::{Sandbox, SandboxConfig};

/// The Application CRD as `logbook crd` generates it.
pub const CRD_YAML: &str = include_str!("../../../schema/application.crd.yaml");

/// Every test's time bound.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Settings that keep tests fast: quick readiness, quick collection, frequent bookmarks.
pub fn fast_config() -> SandboxConfig {
    SandboxConfig {
        ready_delay: Duration::from_millis(50),
        gc_delay: Duration::from_millis(5),
        bookmark_interval: Duration::from_millis(100),
        ..SandboxConfig::default()
    }
}

/// A sandbox on a free loopback port.
pub async fn start() -> Sandbox {
    start_with(fast_config()).await
}

/// A sandbox with these settings.
pub async fn start_with(config: SandboxConfig) -> Sandbox {
    match Sandbox::start(config).await {
        Ok(s) => s,
        Err(e) => panic!("sandbox did not start: {e}"),
    }
}

/// Run a test body within [`TEST_LIMIT`].
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    if tokio::time::timeout(TEST_LIMIT, body).await.is_err() {
        panic!("test did not finish within {TEST_LIMIT:?}");
    }
}

/// Poll `check` every 10 ms until it gives a value, or fail after `limit` saying `what`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The CRD object of [`CRD_YAML`].
pub fn crd() -> CustomResourceDefinition {
    let body = CRD_YAML
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    serde_saphyr::from_str(&body).expect("schema/application.crd.yaml parses as a CRD")
}

/// Create the Application CRD and wait until Applications are served.
pub async fn install_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd())
        .await
        .expect("CRD created");
    let apps: Api<Application> = Api::default_namespaced(client.clone());
    eventually("Applications to be served", Duration::from_secs(5), || {
        let apps = apps.clone();
        async move { apps.list(&Default::default()).await.ok() }
    })
    .await;
}

/// The HTTP code and reason of a kube API error (panics on other errors).
pub fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A dynamic Api for a group/version/kind/plural.
pub fn dynamic(
    client: &kube::Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Send a raw request through a kube client and return the status code and body.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    let req = b.body(body).expect("request builds");
    let res = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("request sent");
    let code = res.status().as_u16();
    let bytes = res.into_body().collect_bytes().await.unwrap_or_default();
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (code, v)
}
