//! Sandbox benchmarks: server-side apply throughput and watch fan-out (one writer, 10
//! watchers), both through the real `kube::Client` over loopback HTTP, and the Services' TCP
//! proxy against a direct connection to the same echo server (`sandbox_proxy`). Results and the machine
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

/// Bytes sent (and echoed back) per proxy bench iteration.
const CHUNK: usize = 1 << 20;

/// An echo server on `127.10.250.1` standing for a Pod's process.
async fn echo_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.10.250.1", 0))
        .await
        .expect("bind echo server");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A Service whose one ready endpoint is `backend`; returns its `clusterIP:port`.
async fn service_over(
    client: &kube::Client,
    backend: std::net::SocketAddr,
) -> std::net::SocketAddr {
    use k8s_openapi::api::core::v1::{Pod, Service};
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "echo", "labels": { "app": "echo" } },
        "spec": { "containers": [ { "name": "echo", "image": "echo" } ] }
    }))
    .expect("pod literal");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let ip = backend.ip().to_string();
    let status = json!({ "status": { "phase": "Running", "podIP": ip, "podIPs": [ { "ip": ip } ],
        "conditions": [ { "type": "Ready", "status": "True" } ] } });
    pods.patch_status("echo", &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("pod status");
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": { "name": "echo" },
        "spec": { "selector": { "app": "echo" },
                  "ports": [ { "port": 7000, "targetPort": backend.port() } ] }
    }))
    .expect("service literal");
    let svc = services
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    let ip: std::net::IpAddr = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .and_then(|i| i.parse().ok())
        .expect("cluster IP");
    let front = std::net::SocketAddr::new(ip, 7000);
    // Until the proxy listens and the endpoint is ready, connections are refused or closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(front).await
            && round_trip(&mut s, 4).await.is_some()
        {
            return front;
        }
        assert!(
            Instant::now() < deadline,
            "the Service's proxy did not answer in 10s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Send `n` bytes and read them back; `None` if the connection ends first.
async fn round_trip(s: &mut tokio::net::TcpStream, n: usize) -> Option<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = vec![7u8; n];
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(&data).await.ok()?;
        Some(())
    };
    let read = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < n {
            let k = r.read(&mut buf).await.ok()?;
            if k == 0 {
                return None;
            }
            got += k;
        }
        Some(())
    };
    let (a, b) = tokio::join!(write, read);
    a.and(b)
}

fn proxy_throughput(c: &mut Criterion) {
    let rt = runtime();
    let (sandbox, client) = rt.block_on(async {
        let sandbox = Sandbox::start(SandboxConfig {
            workloads: logbook::sandbox::Workloads::Pods,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox");
        let client = sandbox.client();
        (sandbox, client)
    });
    let backend = rt.block_on(echo_server());
    let front = rt.block_on(service_over(&client, backend));
    let mut direct = rt
        .block_on(tokio::net::TcpStream::connect(backend))
        .expect("direct connection");
    let mut proxied = rt
        .block_on(tokio::net::TcpStream::connect(front))
        .expect("proxied connection");
    let mut group = c.benchmark_group("sandbox_proxy");
    group.throughput(Throughput::Bytes(CHUNK as u64));
    group.sample_size(30);
    group.bench_function("echo_1MiB_direct", |b| {
        b.iter(|| {
            rt.block_on(round_trip(&mut direct, CHUNK))
                .expect("direct echo")
        })
    });
    group.bench_function("echo_1MiB_through_service", |b| {
        b.iter(|| {
            rt.block_on(round_trip(&mut proxied, CHUNK))
                .expect("proxied echo")
        })
    });
    group.finish();

    // The ratio in one run, alternating, which criterion does not report.
    let (mut t_direct, mut t_proxy) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..50 {
        let t = Instant::now();
        rt.block_on(round_trip(&mut direct, CHUNK))
            .expect("direct echo");
        t_direct += t.elapsed();
        let t = Instant::now();
        rt.block_on(round_trip(&mut proxied, CHUNK))
            .expect("proxied echo");
        t_proxy += t.elapsed();
    }
    let mib = 50.0;
    println!(
        "sandbox_proxy over 50 MiB each, alternating: direct {:.0} MiB/s, through the Service {:.0} MiB/s, ratio {:.2}",
        mib / t_direct.as_secs_f64(),
        mib / t_proxy.as_secs_f64(),
        t_direct.as_secs_f64() / t_proxy.as_secs_f64()
    );
    drop((direct, proxied, client));
    rt.block_on(sandbox.shutdown());
}

criterion_group!(
    benches,
    apply_throughput,
    raw_apply_throughput,
    watch_fan_out,
    proxy_throughput
);
criterion_main!(benches);
