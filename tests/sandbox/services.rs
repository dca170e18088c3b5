//! Services through `kube::Client`: ClusterIPs on loopback (kept when given, refused when
//! taken, `None` for headless), EndpointSlices from the selected Pods' readiness, and the TCP
//! proxy on each cluster IP reaching ready endpoints only, round robin. The Pods' processes
//! are small echo servers the test runs on their loopback podIPs.

use logbook_testkit::sandbox as support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::{api_error, bounded, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::standin_kubelet::{self as kubelet};
use crate::workloads::start_pods;

const WAIT: Duration = Duration::from_secs(10);

/// An echo server standing for a Pod's process: answers each line with `<who>:<line>`.
struct Echo {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    /// On a fresh loopback address, on `port` (0: any free one).
    async fn start(who: &'static str, port: u16) -> Echo {
        let ip = kubelet::next_ip();
        let listener = TcpListener::bind((ip.as_str(), port))
            .await
            .expect("bind echo server");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let reply = format!("{who}:{}", String::from_utf8_lossy(&buf[..n]));
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Echo { addr, task }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request through `addr`: the reply, or `None` if the connection was refused or closed.
async fn ask(addr: SocketAddr) -> Option<String> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"hi").await.ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

fn echo_pod(name: &str, port: u16) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "echo" } },
        "spec": { "containers": [ { "name": "echo", "image": "echo",
            "ports": [ { "name": "tcp", "containerPort": port } ] } ] }
    }))
    .expect("pod literal")
}

fn service(name: &str, cluster_ip: Option<&str>) -> Service {
    let mut spec = json!({
        "selector": { "app": "echo" },
        "ports": [ { "port": 7000, "targetPort": "tcp" } ],
    });
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": { "name": name }, "spec": spec,
    }))
    .expect("service literal")
}

/// The ready addresses the Service's EndpointSlices list.
async fn ready_addresses(slices: &Api<EndpointSlice>, svc: &str) -> Vec<String> {
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    let list = slices.list(&lp).await.expect("list slices");
    let mut out: Vec<String> = list
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .flat_map(|e| e.addresses.clone())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_service_routes_tcp_through_its_cluster_ip_to_ready_pods_only() {
    bounded(async {
        let sandbox = start_pods().await;
        let client = sandbox.client();
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        let services: Api<Service> = Api::default_namespaced(client.clone());
        let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());

        // Both on one port, as two replicas of one Pod template: one slice lists both.
        let a = Echo::start("a", 0).await;
        let b = Echo::start("b", a.addr.port()).await;
        let svc = services
            .create(&PostParams::default(), &service("echo", None))
            .await
            .expect("service");
        let spec = svc.spec.clone().expect("spec");
        let ip: Ipv4Addr = spec
            .cluster_ip
            .clone()
            .unwrap_or_default()
            .parse()
            .expect("an IPv4 cluster IP");
        assert_eq!(ip.octets()[0], 127);
        assert!((96..112).contains(&ip.octets()[1]), "{ip} in 127.96.0.0/12");
        assert_eq!(spec.cluster_ips, Some(vec![ip.to_string()]));
        let front = SocketAddr::from((ip, 7000));

        // No endpoint yet: the proxy closes the connection.
        eventually("the proxy listening and refusing", WAIT, || async {
            let s = TcpStream::connect(front).await.ok()?;
            let mut s = s;
            let mut buf = [0u8; 8];
            let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                .await
                .ok()?;
            matches!(n, Ok(0) | Err(_)).then_some(())
        })
        .await;

        for (name, echo) in [("echo-a", &a), ("echo-b", &b)] {
            pods.create(&PostParams::default(), &echo_pod(name, echo.addr.port()))
                .await
                .expect("pod");
            kubelet::set_running(&pods, name, &echo.addr.ip().to_string(), true).await;
        }
        let mut both = vec![a.addr.ip().to_string(), b.addr.ip().to_string()];
        both.sort();
        eventually("both Pods ready in the slice", WAIT, || {
            let (slices, both) = (slices.clone(), both.clone());
            async move { (ready_addresses(&slices, "echo").await == both).then_some(()) }
        })
        .await;
        let lp = ListParams::default().labels("kubernetes.io/service-name=echo");
        let slice = slices.list(&lp).await.expect("slices").items.remove(0);
        let ports = slice.ports.clone().unwrap_or_default();
        assert_eq!(ports.len(), 1);
        assert_eq!(
            ports[0].port,
            Some(i32::from(a.addr.port())),
            "the named target port resolved"
        );
        let refs: Vec<String> = slice
            .endpoints
            .iter()
            .flatten()
            .filter_map(|e| e.target_ref.as_ref()?.name.clone())
            .collect();
        assert_eq!(refs, ["echo-a", "echo-b"]);
        let owner = slice.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(
            owner.first().map(|o| o.uid.clone()),
            svc.metadata.uid.clone()
        );

        // Round robin over both ready Pods.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let reply = ask(front).await.expect("a reply through the cluster IP");
            seen.insert(reply);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a:hi", "b:hi"]);

        // Pod a not ready: out of the slice's ready endpoints and of the proxy.
        kubelet::set_running(&pods, "echo-a", &a.addr.ip().to_string(), false).await;
        let only_b = vec![b.addr.ip().to_string()];
        eventually("only b ready", WAIT, || {
            let (slices, only_b) = (slices.clone(), only_b.clone());
            async move { (ready_addresses(&slices, "echo").await == only_b).then_some(()) }
        })
        .await;
        for _ in 0..4 {
            assert_eq!(ask(front).await.as_deref(), Some("b:hi"));
        }
        // None ready: refused.
        kubelet::set_running(&pods, "echo-b", &b.addr.ip().to_string(), false).await;
        eventually("no ready endpoint", WAIT, || {
            let slices = slices.clone();
            async move {
                ready_addresses(&slices, "echo")
                    .await
                    .is_empty()
                    .then_some(())
            }
        })
        .await;
        assert_eq!(ask(front).await, None, "closed without a ready endpoint");

        // A taken cluster IP is refused as the API server does; a free one is kept; None is headless.
        let (code, reason) = api_error(
            services
                .create(
                    &PostParams::default(),
                    &service("dup", Some(&ip.to_string())),
                )
                .await,
        );
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        let given = "127.100.200.7";
        let kept = services
            .create(&PostParams::default(), &service("given", Some(given)))
            .await
            .expect("given ip");
        assert_eq!(kept.spec.and_then(|s| s.cluster_ip).as_deref(), Some(given));
        let headless = services
            .create(&PostParams::default(), &service("headless", Some("None")))
            .await
            .expect("headless");
        assert_eq!(
            headless.spec.and_then(|s| s.cluster_ips),
            Some(vec!["None".to_string()])
        );
        sandbox.shutdown().await;
    })
    .await;
}
