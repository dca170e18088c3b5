//! Sandbox benchmarks: server-side apply throughput and watch fan-out (one writer, 10
//! watchers), both through the real `kube::Client` over loopback HTTP. Results and the machine
//! they were taken on are in `benches/README.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use logbook::sandbox::{Sandbox, SandboxConfig};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const BATCH: u64 = 512;
const CONCURRENCY: usize = 64;
const WATCHERS: usize = 10;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn start(rt: &Runtime) -> (Sandbox, kube::Client) {
    rt.block_on(async {
        let sandbox = Sandbox::start(SandboxConfig {
            history: 1000,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox");
        let client = sandbox.client();
        (sandbox, client)
    })
}

/// The name and body of apply `i` of `round`: one of 256 ConfigMaps, changed by every round.
fn apply_body(round: u64, i: u64) -> (String, serde_json::Value) {
    let name = format!("cm-{}", i % 256);
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "logbook" } },
        "data": { "round": round.to_string(), "i": i.to_string() }
    });
    (name, body)
}

/// `n` applies of ConfigMaps (each one a real change), `CONCURRENCY` at a time.
async fn applies(client: &kube::Client, round: u64, n: u64) {
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let api = Arc::new(api);
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, |i| {
            let api = api.clone();
            async move {
                let (name, body) = apply_body(round, i);
                api.patch(
                    &name,
                    &PatchParams::apply("logbook").force(),
                    &Patch::Apply(&body),
                )
                .await
                .expect("apply");
            }
        })
        .await;
}

fn apply_throughput(c: &mut Criterion) {
    let rt = runtime();
    let (sandbox, client) = start(&rt);
    rt.block_on(applies(&client, 0, 256));
    let mut group = c.benchmark_group("sandbox_apply");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    let mut round = 0;
    group.bench_function("server_side_apply_x512_c64", |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(applies(&client, round, BATCH));
        })
    });
    group.finish();
    drop(client);
    rt.block_on(sandbox.shutdown());
}

/// The same applies as [`applies`], sent with a plain HTTP/1 client (a pooled hyper client,
/// no kube layers), so the figure is the server's cost plus the least a client can cost.
async fn raw_applies(http: &RawClient, base: &str, round: u64, n: u64) {
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, |i| async move {
            let (name, body) = apply_body(round, i);
            let req = http::Request::patch(format!(
                "{base}/api/v1/namespaces/default/configmaps/{name}?fieldManager=logbook&force=true"
            ))
            .header("content-type", "application/apply-patch+yaml")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .expect("request");
            let resp = http.request(req).await.expect("apply");
            assert!(
                resp.status().is_success(),
                "apply answered {}",
                resp.status()
            );
            http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("body");
        })
        .await;
}

type RawClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

fn raw_apply_throughput(c: &mut Criterion) {
    let rt = runtime();
    let (sandbox, client) = start(&rt);
    drop(client);
    let base = sandbox.url();
    let http: RawClient = rt.block_on(async {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(CONCURRENCY)
            .build_http()
    });
    rt.block_on(raw_applies(&http, &base, 0, 256));
    let mut group = c.benchmark_group("sandbox_apply");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    let mut round = 0;
    group.bench_function("server_side_apply_raw_http_x512_c64", |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(raw_applies(&http, &base, round, BATCH));
        })
    });
    group.finish();
    drop(http);
    rt.block_on(sandbox.shutdown());
}

/// Start `WATCHERS` watches on the ConfigMap `fan`; each reports (seq, when received).
async fn watchers(client: &kube::Client) -> mpsc::UnboundedReceiver<(u64, Instant)> {
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("fan".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let rv = created.metadata.resource_version.unwrap_or_default();
    let (tx, rx) = mpsc::unbounded_channel();
    for _ in 0..WATCHERS {
        let mut stream = api
            .watch(
                &WatchParams::default()
                    .fields("metadata.name=fan")
                    .disable_bookmarks()
                    .timeout(290),
                &rv,
            )
            .await
            .expect("watch")
            .boxed();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(ev)) = stream.next().await {
                if let WatchEvent::Modified(o) = ev {
                    let at = Instant::now();
                    let seq = o
                        .data
                        .and_then(|d| d.get("seq").and_then(|s| s.parse().ok()))
                        .unwrap_or(0);
                    if tx.send((seq, at)).is_err() {
                        return;
                    }
                }
            }
        });
    }
    rx
}

/// One write, then wait until every watcher has it; returns the per-watcher delays.
async fn one_event(
    api: &Api<ConfigMap>,
    rx: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    seq: u64,
) -> Vec<Duration> {
    let sent = Instant::now();
    api.patch(
        "fan",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "seq": seq.to_string() } })),
    )
    .await
    .expect("patch");
    let mut delays = Vec::with_capacity(WATCHERS);
    while delays.len() < WATCHERS {
        let (s, at) = rx.recv().await.expect("watchers alive");
        if s == seq {
            delays.push(at.duration_since(sent));
        }
    }
    delays
}

fn watch_fan_out(c: &mut Criterion) {
    let rt = runtime();
    let (sandbox, client) = start(&rt);
    let mut rx = rt.block_on(watchers(&client));
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut seq = 0;
    let mut group = c.benchmark_group("sandbox_watch");
    group.sample_size(50);
    group.bench_function("fan_out_1_writer_10_watchers", |b| {
        b.iter(|| {
            seq += 1;
            rt.block_on(one_event(&api, &mut rx, seq));
        })
    });
    group.finish();

    // Percentiles, which criterion does not report: write-to-delivery per watcher.
    let mut all = Vec::new();
    for _ in 0..2000 {
        seq += 1;
        all.extend(rt.block_on(one_event(&api, &mut rx, seq)));
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "sandbox_watch delivery over {} deliveries (write sent -> event received, 10 watchers): p50 {:?}  p99 {:?}  max {:?}",
        all.len(),
        pct(0.50),
        pct(0.99),
        all[all.len() - 1]
    );
    drop(api);
    drop(client);
    rt.block_on(sandbox.shutdown());
}

criterion_group!(
    benches,
    apply_throughput,
    raw_apply_throughput,
    watch_fan_out
);
criterion_main!(benches);
