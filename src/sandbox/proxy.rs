//! The Services' TCP proxy, kube-proxy's job: a listener on each Service's `clusterIP:port`
//! that forwards each connection to a ready endpoint of its EndpointSlices (`podIP:port`),
//! round robin, and closes it when none is ready. It must not write any object.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::{AbortHandle, JoinSet};

use super::endpointslices::{SERVICE_NAME, SERVICES, SLICES};
use super::meta;
use super::services;
use super::store::{Signal, Store};

/// One forwarded Service port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Route {
    namespace: String,
    service: String,
    port_name: String,
    listen: SocketAddr,
}

/// Every TCP port of every Service with a cluster IP.
fn routes(store: &Store) -> Vec<Route> {
    let mut out = Vec::new();
    for s in store.all(SERVICES, None) {
        let Some(ip) = services::cluster_ip(&s.obj).and_then(|i| i.parse::<IpAddr>().ok()) else {
            continue;
        };
        let ports = s.obj.pointer("/spec/ports").and_then(|p| p.as_array());
        for p in ports.into_iter().flatten() {
            let tcp = p.get("protocol").and_then(|x| x.as_str()).unwrap_or("TCP") == "TCP";
            let Some(port) = p
                .get("port")
                .and_then(|x| x.as_u64())
                .and_then(|x| u16::try_from(x).ok())
            else {
                continue;
            };
            if !tcp {
                continue;
            }
            out.push(Route {
                namespace: meta::namespace(&s.obj).to_string(),
                service: meta::name(&s.obj).to_string(),
                port_name: p
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_string(),
                listen: SocketAddr::new(ip, port),
            });
        }
    }
    out
}

/// The ready endpoints of a Service port, in a stable order.
pub fn ready_backends(store: &Store, ns: &str, service: &str, port_name: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for s in store.all(SLICES, Some(ns)) {
        let slice: &Value = &s.obj;
        if !meta::labels(slice).contains(&(SERVICE_NAME, service)) {
            continue;
        }
        let port = slice
            .get("ports")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(|n| n.as_str()).unwrap_or("") == port_name)
            .and_then(|p| p.get("port"))
            .and_then(|p| p.as_u64())
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else {
            continue;
        };
        let endpoints = slice.get("endpoints").and_then(|e| e.as_array());
        for e in endpoints.into_iter().flatten() {
            if e.pointer("/conditions/ready").and_then(|r| r.as_bool()) != Some(true) {
                continue;
            }
            let ip = e
                .pointer("/addresses/0")
                .and_then(|a| a.as_str())
                .and_then(|a| a.parse::<IpAddr>().ok());
            if let Some(ip) = ip {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
    out.sort();
    out
}

async fn forward(mut client: TcpStream, backends: Vec<SocketAddr>, first: usize) {
    for i in 0..backends.len() {
        let b = backends[(first + i) % backends.len()];
        if let Ok(mut up) = TcpStream::connect(b).await {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            return;
        }
    }
}

async fn listen(store: Arc<Store>, route: Route) {
    let listener = match TcpListener::bind(route.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                service = %format!("{}/{}", route.namespace, route.service),
                addr = %route.listen,
                error = %e,
                "cannot listen on the Service's cluster IP and port; it is not reachable through the sandbox's proxy (ports below 1024 need root)"
            );
            return;
        }
    };
    let mut conns = JoinSet::new();
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let backends = ready_backends(&store, &route.namespace, &route.service, &route.port_name);
                if backends.is_empty() {
                    // No ready endpoint: the connection is closed, as kube-proxy rejects it.
                    drop(client);
                    continue;
                }
                let first = next % backends.len();
                next = next.wrapping_add(1);
                conns.spawn(forward(client, backends, first));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Run the proxy until the store's change stream ends; its listeners and connections end
/// with it.
pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    let mut tasks = JoinSet::new();
    let mut open: HashMap<Route, AbortHandle> = HashMap::new();
    let mut dirty = true;
    loop {
        if dirty {
            let want = routes(&store);
            open.retain(|r, h| {
                let keep = want.contains(r);
                if !keep {
                    h.abort();
                }
                keep
            });
            for r in want {
                if let std::collections::hash_map::Entry::Vacant(v) = open.entry(r) {
                    let h = tasks.spawn(listen(store.clone(), v.key().clone()));
                    v.insert(h);
                }
            }
            dirty = false;
        }
        tokio::select! {
            sig = rx.recv() => match sig {
                Ok(Signal::Change(c)) => dirty = c.key == SERVICES,
                Ok(Signal::CloseAll) => {}
                Err(RecvError::Lagged(_)) => dirty = true,
                Err(RecvError::Closed) => return,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}
