//! The EndpointSlice controller: for each Service with a selector, slices (label
//! `kubernetes.io/service-name`, owned by the Service) listing the selected Pods that have an
//! IP, ready as their `Ready` condition says, with ports resolved by name or number. It must
//! not touch Services or Pods, nor slices another controller manages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::meta;
use super::store::{Op, Signal, Store};
use super::workloads::pods;

/// Storage key of EndpointSlices.
pub const SLICES: &str = "discovery.k8s.io/endpointslices";
/// Storage key of Services.
pub const SERVICES: &str = "/services";
/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// The Service's selector as a `LabelSelector` object, if it has a non-empty one.
fn selector(svc: &Value) -> Option<Value> {
    let sel = svc.pointer("/spec/selector")?.as_object()?;
    (!sel.is_empty()).then(|| json!({ "matchLabels": sel }))
}

/// A Service port's target resolved for one Pod: a number, or a container port's name.
fn resolve(port: &Value, pod: &Value) -> Option<i64> {
    let target = port.get("targetPort").or_else(|| port.get("port"))?;
    if let Some(n) = target.as_i64() {
        return Some(n);
    }
    let name = target.as_str()?;
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(|p| p.as_array())
                .into_iter()
                .flatten()
        })
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))
        .and_then(|p| p.get("containerPort"))
        .and_then(|p| p.as_i64())
}

/// The slice ports for one Pod, or `None` when a named port does not resolve on it.
fn ports_for(svc: &Value, pod: &Value) -> Option<Vec<Value>> {
    let ports = svc
        .pointer("/spec/ports")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    ports
        .iter()
        .map(|p| {
            Some(json!({
                "name": p.get("name").and_then(|n| n.as_str()).unwrap_or(""),
                "port": resolve(p, pod)?,
                "protocol": p.get("protocol").and_then(|x| x.as_str()).unwrap_or("TCP"),
            }))
        })
        .collect()
}

fn endpoint(pod: &Value, ip: &str) -> Value {
    let ready = pods::ready(pod);
    let mut e = json!({
        "addresses": [ip],
        "conditions": { "ready": ready, "serving": ready, "terminating": false },
        "targetRef": {
            "kind": "Pod",
            "namespace": meta::namespace(pod),
            "name": meta::name(pod),
            "uid": meta::uid(pod),
        },
    });
    if let Some(n) = pod
        .pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
    {
        e["nodeName"] = json!(n);
    }
    e
}

/// Bring the slices of one Service up to date.
pub fn sync(store: &Store, svc: &Value) {
    let ns = meta::namespace(svc);
    let name = meta::name(svc);
    let Some(sel) = selector(svc) else {
        return;
    };
    // Endpoints grouped by their resolved ports (one slice per port set, as upstream).
    let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for p in store.all(pods::PODS, Some(ns)) {
        let pod = &p.obj;
        if !pods::selects(Some(&sel), pod) || !pods::active(pod) {
            continue;
        }
        let ip = pod
            .pointer("/status/podIP")
            .and_then(|i| i.as_str())
            .unwrap_or("");
        if ip.is_empty() {
            continue;
        }
        let Some(ports) = ports_for(svc, pod) else {
            continue;
        };
        let ports = json!(ports);
        groups
            .entry(ports.to_string())
            .or_insert_with(|| (ports.clone(), Vec::new()))
            .1
            .push(endpoint(pod, ip));
    }
    if groups.is_empty() {
        groups.insert(String::new(), (json!([]), Vec::new()));
    }
    let mut existing: Vec<Value> = store
        .all(SLICES, Some(ns))
        .into_iter()
        .map(|s| (*s.obj).clone())
        .filter(|s| {
            let labels = meta::labels(s);
            labels.contains(&(SERVICE_NAME, name)) && labels.contains(&(MANAGED_BY, CONTROLLER))
        })
        .collect();
    let mut kept = BTreeSet::new();
    for (ports, mut endpoints) in groups.into_values() {
        endpoints.sort_by(|a, b| {
            a["targetRef"]["name"]
                .as_str()
                .cmp(&b["targetRef"]["name"].as_str())
        });
        let at = existing
            .iter()
            .position(|s| s.get("ports").cloned().unwrap_or(json!([])) == ports);
        match at.map(|i| existing.remove(i)) {
            Some(slice) => {
                kept.insert(meta::uid(&slice).to_string());
                let (sname, suid) = (
                    meta::name(&slice).to_string(),
                    meta::uid(&slice).to_string(),
                );
                let _ = store.write(SLICES, ns, &sname, |ctx| match ctx.current {
                    Some(c) if meta::uid(&c.obj) == suid => {
                        let mut o = (*c.obj).clone();
                        o["endpoints"] = json!(endpoints);
                        o["ports"] = ports;
                        if o == *c.obj {
                            return Err(super::ApiError::no_such_path());
                        }
                        Ok(Op::Replace(o))
                    }
                    _ => Err(super::ApiError::no_such_path()),
                });
            }
            None => {
                let slice = json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "namespace": ns,
                        "labels": { SERVICE_NAME: name, MANAGED_BY: CONTROLLER },
                        "ownerReferences": [{
                            "apiVersion": "v1", "kind": "Service", "name": name,
                            "uid": meta::uid(svc), "controller": true, "blockOwnerDeletion": true,
                        }],
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": ports,
                });
                for _ in 0..8 {
                    let sname = format!("{name}-{}", pods::random_suffix());
                    let mut obj = slice.clone();
                    meta::metadata_mut(&mut obj).insert("name".into(), json!(sname));
                    meta::metadata_mut(&mut obj)
                        .insert("generateName".into(), json!(format!("{name}-")));
                    let r = store.write(SLICES, ns, &sname, |ctx| {
                        if ctx.current.is_some() {
                            return Err(super::ApiError::already_exists(
                                "discovery.k8s.io",
                                "endpointslices",
                                &sname,
                            ));
                        }
                        Ok(Op::Create(obj))
                    });
                    if r.is_ok() {
                        break;
                    }
                }
            }
        }
    }
    for s in existing {
        pods::delete(store, SLICES, ns, meta::name(&s), meta::uid(&s));
    }
}

/// Run the controller until the store's change stream ends: a Service's change syncs it; a
/// Pod's change syncs every Service of its namespace.
pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    let mut due: BTreeSet<(String, String)> = BTreeSet::new();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    let everything = |due: &mut BTreeSet<(String, String)>| {
        for s in store.all(SERVICES, None) {
            due.insert((
                meta::namespace(&s.obj).to_string(),
                meta::name(&s.obj).to_string(),
            ));
        }
    };
    everything(&mut due);
    loop {
        for ns in std::mem::take(&mut namespaces) {
            for s in store.all(SERVICES, Some(&ns)) {
                due.insert((ns.clone(), meta::name(&s.obj).to_string()));
            }
        }
        for (ns, name) in std::mem::take(&mut due) {
            if let Some(s) = store.get(SERVICES, &ns, &name) {
                sync(&store, &s.obj);
            }
        }
        let mut note = |sig: Signal, due: &mut BTreeSet<(String, String)>| {
            if let Signal::Change(c) = sig {
                if c.key == SERVICES {
                    due.insert((c.namespace.clone(), meta::name(&c.object).to_string()));
                } else if c.key == pods::PODS {
                    namespaces.insert(c.namespace.clone());
                }
            }
        };
        match rx.recv().await {
            Ok(sig) => note(sig, &mut due),
            Err(RecvError::Lagged(_)) => everything(&mut due),
            Err(RecvError::Closed) => return,
        }
        loop {
            match rx.try_recv() {
                Ok(sig) => note(sig, &mut due),
                Err(TryRecvError::Lagged(_)) => everything(&mut due),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
    }
}
