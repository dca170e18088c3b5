//! The sandbox's node: one Node object (`logbook-node`, with its Lease heartbeat) and an agent
//! that binds unscheduled Pods to it, gives each Pod its own loopback address (127.10.0.1 and
//! up: all of 127.0.0.0/8 routes to `lo` on Linux, so two Pods can both listen on one port),
//! and runs it: as local processes when every image of the Pod is in the image map
//! ([`images`]), simulated otherwise (Running and Ready after `ready_delay`, without any
//! process, as KWOK does; Job Pods then complete). It watches Pods through the store, as the
//! workload controllers do, and owns Pod `status` and `spec.nodeName`; it must not touch other
//! kinds (workloads, Services and volumes are other controllers').
//!
//! Modules, one job each: [`images`] (the image map), [`env`] (a container's environment),
//! [`mounts`] (volumes as host directories and path rewriting), [`process`] (one process and
//! its log), [`supervise`] (the per-container supervisor that dies with the sandbox),
//! [`probes`], [`pod`] (one Pod's run), [`status`] (the kubelet's status), [`logs`] (reading
//! them back), [`exec`] (`pods/exec` over WebSocket), [`printer`] (`kubectl get pods` columns).

pub mod env;
pub mod exec;
pub mod images;
pub mod logs;
pub mod mounts;
pub mod pod;
pub mod printer;
pub mod probes;
pub mod process;
pub mod status;
pub mod supervise;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::meta;
use super::status::ApiError;
use super::store::{EventType, Op, Signal, Store};
use images::ImageMap;

/// The node's name.
pub const NODE_NAME: &str = "logbook-node";
/// Where Pods are stored.
pub const PODS: &str = "/pods";
const NODES: &str = "/nodes";
const LEASES: &str = "coordination.k8s.io/leases";
/// The first Pod address.
pub const FIRST_POD_IP: Ipv4Addr = Ipv4Addr::new(127, 10, 0, 1);
/// The kubelet's default restart back-off base.
pub const RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// How the node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Which images run as local programs.
    pub images: ImageMap,
    /// The logbook binary, to supervise containers (`None`: processes are started directly,
    /// and killed when the sandbox stops, but not if it is SIGKILLed).
    pub supervisor: Option<PathBuf>,
    /// First restart back-off after the immediate one (doubling up to five minutes).
    pub restart_backoff: Duration,
    /// How long a simulated Pod takes to become Running and Ready.
    pub ready_delay: Duration,
    /// Where Pods' directories go (`<data_dir>/pods`).
    pub data_dir: PathBuf,
    /// The API server's address (`KUBERNETES_SERVICE_HOST/PORT`).
    pub api: SocketAddr,
}

/// What every Pod's run shares.
pub struct NodeShared {
    /// The objects.
    pub store: Arc<Store>,
    /// The API server.
    pub api: SocketAddr,
    /// The node's address.
    pub host_ip: Ipv4Addr,
    /// The supervisor binary.
    pub supervisor: Option<PathBuf>,
    /// Restart back-off base.
    pub backoff: Duration,
}

/// What the node knows of a Pod it took.
struct Entry {
    ns: String,
    name: String,
    ip: Ipv4Addr,
    shared: Option<Arc<pod::Shared>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Why a node request failed (faults, logs).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No such Pod.
    #[error("pod {namespace}/{name} not found")]
    NoPod {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The Pod runs no process (simulated, or not started).
    #[error(
        "pod {namespace}/{name} has no running process on the node (its images are not in the image map, or its containers are not running)"
    )]
    NoProcess {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// The node: its agent's state, shared with the routes and faults.
pub struct Node {
    shared: Arc<NodeShared>,
    config: NodeConfig,
    pods: Mutex<HashMap<String, Entry>>,
    used_ips: Mutex<HashSet<Ipv4Addr>>,
}

/// A log answer.
pub enum LogReply {
    /// All of it.
    Whole(Vec<u8>),
    /// A stream of chunks until the container ends or the client leaves.
    Follow(tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>),
}

/// Standard base64 decoding (Secret data).
pub fn unbase64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

fn images_of(pod: &Value) -> Vec<(String, String)> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .map(|c| {
            (
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn owned_by_job(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| {
            o.iter()
                .any(|r| r.get("kind").and_then(Value::as_str) == Some("Job"))
        })
}

impl Node {
    /// A node for this store.
    pub fn new(store: Arc<Store>, config: NodeConfig) -> Arc<Node> {
        Arc::new(Node {
            shared: Arc::new(NodeShared {
                store,
                api: config.api,
                host_ip: Ipv4Addr::LOCALHOST,
                supervisor: config.supervisor.clone(),
                backoff: config.restart_backoff,
            }),
            config,
            pods: Mutex::new(HashMap::new()),
            used_ips: Mutex::new(HashSet::new()),
        })
    }

    fn pods(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Register the Node object and its Lease.
    pub fn register(&self) {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let now = meta::now();
        let capacity = json!({
            "cpu": cpus.to_string(), "memory": "16Gi", "pods": "110",
            "ephemeral-storage": "100Gi",
        });
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": arch,
                    "node-role.kubernetes.io/control-plane": "",
                },
            },
            "spec": {},
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [
                    { "type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                      "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now, "lastTransitionTime": now },
                    { "type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                      "message": "kubelet has no disk pressure", "lastHeartbeatTime": now, "lastTransitionTime": now },
                    { "type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                      "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now, "lastTransitionTime": now },
                    { "type": "Ready", "status": "True", "reason": "KubeletReady",
                      "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now },
                ],
                "addresses": [
                    { "type": "InternalIP", "address": self.shared.host_ip.to_string() },
                    { "type": "Hostname", "address": NODE_NAME },
                ],
                "daemonEndpoints": { "kubeletEndpoint": { "Port": 0 } },
                "nodeInfo": {
                    "machineID": "", "systemUUID": "", "bootID": "",
                    "kernelVersion": "", "osImage": "logbook sandbox node",
                    "containerRuntimeVersion": concat!("logbook://", env!("CARGO_PKG_VERSION")),
                    "kubeletVersion": "v1.37.0-logbook", "kubeProxyVersion": "",
                    "operatingSystem": "linux", "architecture": arch,
                },
            },
        });
        // A Node restored from a state file is refreshed (status), keeping its identity.
        let _ = self
            .store()
            .write(NODES, "", NODE_NAME, |ctx| match ctx.current {
                Some(c) => {
                    let mut n = (*c.obj).clone();
                    n["status"] = node["status"].clone();
                    Ok(Op::Replace(n))
                }
                None => Ok(Op::Create(node.clone())),
            });
        self.heartbeat();
    }

    /// Renew the node's Lease in `kube-node-lease`.
    fn heartbeat(&self) {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": { "name": NODE_NAME, "namespace": "kube-node-lease" },
            "spec": {
                "holderIdentity": NODE_NAME,
                "leaseDurationSeconds": 40,
                "renewTime": meta::now_micro(),
            },
        });
        let _ = self
            .store()
            .write(LEASES, "kube-node-lease", NODE_NAME, |ctx| {
                match ctx.current {
                    Some(c) => {
                        let mut l = (*c.obj).clone();
                        l["spec"] = lease["spec"].clone();
                        Ok(Op::Replace(l))
                    }
                    None => Ok(Op::Create(lease.clone())),
                }
            });
    }

    fn allocate(&self, wanted: Option<Ipv4Addr>) -> Ipv4Addr {
        let mut used = self.used_ips.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ip) = wanted
            && ip.octets()[0] == 127
            && u32::from(ip) >= u32::from(FIRST_POD_IP)
            && used.insert(ip)
        {
            return ip;
        }
        let mut n = u32::from(FIRST_POD_IP);
        while used.contains(&Ipv4Addr::from(n)) || Ipv4Addr::from(n).octets()[3] == 0 {
            n += 1;
        }
        let ip = Ipv4Addr::from(n);
        used.insert(ip);
        ip
    }

    fn release(&self, ip: Ipv4Addr) {
        self.used_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ip);
    }

    fn bind(&self, pod: &Value) {
        let (ns, name, uid) = (
            meta::namespace(pod),
            meta::name(pod),
            meta::uid(pod).to_string(),
        );
        let _ = self.store().write(PODS, ns, name, |ctx| {
            let Some(c) = ctx.current else {
                return Err(ApiError::no_such_path());
            };
            let bound = c
                .obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if meta::uid(&c.obj) != uid || bound {
                return Err(ApiError::no_such_path());
            }
            let mut p = (*c.obj).clone();
            p["spec"]["nodeName"] = json!(NODE_NAME);
            let status = p
                .as_object_mut()
                .map(|o| o.entry("status").or_insert_with(|| json!({})));
            if let Some(s) = status {
                s["phase"] = json!("Pending");
                s["conditions"] = json!([{
                    "type": "PodScheduled", "status": "True", "lastProbeTime": null,
                    "lastTransitionTime": meta::now(),
                }]);
                if let Some(q) = p.get("spec").map(status::qos) {
                    p["status"]["qosClass"] = json!(q);
                }
            }
            Ok(Op::Replace(p))
        });
    }

    /// Take notice of a Pod as it is now.
    fn observe(self: &Arc<Self>, pod: &Value) {
        let uid = meta::uid(pod).to_string();
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if node.is_empty() {
            let scheduler = pod
                .pointer("/spec/schedulerName")
                .and_then(Value::as_str)
                .unwrap_or("default-scheduler");
            if scheduler == "default-scheduler"
                && meta::meta_str(pod, "deletionTimestamp").is_empty()
            {
                self.bind(pod);
            }
            return;
        }
        if node != NODE_NAME {
            return;
        }
        let terminating = !meta::meta_str(pod, "deletionTimestamp").is_empty();
        {
            let pods = self.pods();
            if let Some(e) = pods.get(&uid) {
                if terminating {
                    e.stop.cancel();
                    if e.shared.is_none() {
                        drop(pods);
                        self.forget(&uid);
                        pod::remove(self.store(), meta::namespace(pod), meta::name(pod), &uid);
                    }
                }
                return;
            }
        }
        if terminating {
            pod::remove(self.store(), meta::namespace(pod), meta::name(pod), &uid);
            return;
        }
        let wanted = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let ip = self.allocate(wanted);
        let (ns, name) = (
            meta::namespace(pod).to_string(),
            meta::name(pod).to_string(),
        );
        let stop = CancellationToken::new();
        let images = images_of(pod);
        let mapped: Vec<Option<&images::Mapping>> = images
            .iter()
            .map(|(_, image)| self.config.images.lookup(image))
            .collect();
        if images.is_empty() || mapped.iter().any(Option::is_none) {
            let task = tokio::spawn(simulate(
                self.shared.store.clone(),
                pod.clone(),
                ip,
                self.config.ready_delay,
                stop.clone(),
            ));
            self.pods().insert(
                uid,
                Entry {
                    ns,
                    name,
                    ip,
                    shared: None,
                    stop,
                    task: Some(task),
                },
            );
            return;
        }
        let root = self
            .config
            .data_dir
            .join("pods")
            .join(format!("{ns}_{name}_{uid}"));
        let initial = pod::initial(pod, &ip.to_string(), &self.shared.host_ip.to_string());
        let shared = pod::shared(&uid, root, initial);
        // A mapped image whose programs are missing: the Pod waits, as for an image that
        // cannot be pulled.
        let missing: Vec<(String, String)> = images
            .iter()
            .zip(&mapped)
            .filter_map(|((c, image), m)| {
                m.and_then(|m| m.check(image).err())
                    .map(|e| (c.clone(), e.0))
            })
            .collect();
        let task = if missing.is_empty() {
            let run = pod::Run {
                node: self.shared.clone(),
                pod: pod.clone(),
                ip: IpAddr::V4(ip),
                images: images
                    .iter()
                    .zip(&mapped)
                    .filter_map(|((c, _), m)| m.map(|m| (c.clone(), m.clone())))
                    .collect(),
                shared: shared.clone(),
                stop: stop.clone(),
            };
            tokio::spawn(run.run())
        } else {
            let mut st = pod::initial(pod, &ip.to_string(), &self.shared.host_ip.to_string());
            for k in st.init.iter_mut().chain(st.containers.iter_mut()) {
                if let Some((_, why)) = missing.iter().find(|(c, _)| *c == k.name) {
                    k.state = status::State::Waiting {
                        reason: "ErrImagePull".into(),
                        message: why.clone(),
                    };
                }
            }
            pod::write_status(self.store(), &ns, &name, &uid, &st);
            let (store, ns2, name2, uid2, stop2) = (
                self.shared.store.clone(),
                ns.clone(),
                name.clone(),
                uid.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                stop2.cancelled().await;
                pod::remove(&store, &ns2, &name2, &uid2);
            })
        };
        self.pods().insert(
            uid,
            Entry {
                ns,
                name,
                ip,
                shared: Some(shared),
                stop,
                task: Some(task),
            },
        );
    }

    /// A Pod is gone from the store: stop everything of it now.
    fn forget(&self, uid: &str) {
        let entry = self.pods().remove(uid);
        if let Some(e) = entry {
            if let Some(s) = &e.shared {
                for (_, h) in s.handles(None) {
                    h.kill();
                }
            }
            if let Some(t) = e.task {
                t.abort();
            }
            self.release(e.ip);
        }
    }

    fn resync(self: &Arc<Self>) {
        let pods = self.store().all(PODS, None);
        let live: HashSet<String> = pods.iter().map(|p| meta::uid(&p.obj).to_string()).collect();
        let gone: Vec<String> = self
            .pods()
            .keys()
            .filter(|u| !live.contains(*u))
            .cloned()
            .collect();
        for u in gone {
            self.forget(&u);
        }
        for p in pods {
            self.observe(&p.obj);
        }
    }

    /// Stop every process now (the sandbox is stopping).
    pub fn shutdown(&self) {
        let uids: Vec<String> = self.pods().keys().cloned().collect();
        for u in uids {
            self.forget(&u);
        }
    }

    fn find(&self, ns: &str, name: &str) -> Result<(String, Option<Arc<pod::Shared>>), NodeError> {
        let pods = self.pods();
        pods.iter()
            .find(|(_, e)| e.ns == ns && e.name == name)
            .map(|(u, e)| (u.clone(), e.shared.clone()))
            .ok_or_else(|| NodeError::NoPod {
                namespace: ns.into(),
                name: name.into(),
            })
    }

    fn signal(
        &self,
        ns: &str,
        name: &str,
        container: Option<&str>,
        f: impl Fn(&process::Handle),
    ) -> Result<usize, NodeError> {
        let (_, shared) = self.find(ns, name)?;
        let handles = shared.map(|s| s.handles(container)).unwrap_or_default();
        if handles.is_empty() {
            return Err(NodeError::NoProcess {
                namespace: ns.into(),
                name: name.into(),
            });
        }
        for (_, h) in &handles {
            f(h);
        }
        Ok(handles.len())
    }

    /// SIGKILL a Pod's container processes (one container, or all); how many were killed.
    pub fn kill(&self, ns: &str, name: &str, container: Option<&str>) -> Result<usize, NodeError> {
        self.signal(ns, name, container, |h| h.kill())
    }

    /// SIGSTOP a Pod's processes, as a hung node.
    pub fn freeze(&self, ns: &str, name: &str) -> Result<usize, NodeError> {
        self.signal(ns, name, None, |h| h.freeze())
    }

    /// SIGCONT them again.
    pub fn thaw(&self, ns: &str, name: &str) -> Result<usize, NodeError> {
        self.signal(ns, name, None, |h| h.thaw())
    }

    /// The context `pods/NAME/exec` runs a command in: the container's environment, directory,
    /// user and mounts, if it is running.
    pub fn exec_context(
        &self,
        pod: &Value,
        o: &exec::Options,
    ) -> Result<(process::Spec, mounts::Mounts), ApiError> {
        let name = meta::name(pod);
        let main: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
            .collect();
        let container = match &o.container {
            Some(c) => c.clone(),
            None => main.first().cloned().unwrap_or_default(),
        };
        let shared = self
            .find(meta::namespace(pod), name)
            .ok()
            .and_then(|(_, s)| s);
        let context = shared.and_then(|s| s.context(&container));
        context.ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to upgrade connection: container not found (\"{container}\"): no process of it runs on the node (its image is not in the image map, or it is not running)"
            ))
        })
    }

    /// Answer `GET pods/NAME/log` for a Pod as stored now.
    pub fn logs(&self, pod: &Value, query: &[(String, String)]) -> Result<LogReply, ApiError> {
        let o = logs::Options::parse(query)?;
        let name = meta::name(pod);
        let names = |k: &str| -> Vec<String> {
            pod.pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        };
        let (init, main) = (names("initContainers"), names("containers"));
        let container = match &o.container {
            Some(c) => {
                if !init.contains(c) && !main.contains(c) {
                    return Err(ApiError::bad_request(format!(
                        "container {c} is not valid for pod {name}"
                    )));
                }
                c.clone()
            }
            None if main.len() == 1 => main[0].clone(),
            None => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    main.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                return Err(ApiError::bad_request(msg));
            }
        };
        let shared = self
            .find(meta::namespace(pod), name)
            .ok()
            .and_then(|(_, s)| s);
        let Some(shared) = shared else {
            // Simulated: nothing ever ran, nothing was written.
            if o.previous {
                return Err(ApiError::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{name}\" not found"
                )));
            }
            return Ok(LogReply::Whole(Vec::new()));
        };
        let file = shared.log_file(&container, o.previous);
        let Some(file) = file else {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        };
        if !file.exists() {
            let reason = pod
                .pointer("/status/containerStatuses")
                .or_else(|| pod.pointer("/status/initContainerStatuses"))
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|c| c.get("name").and_then(Value::as_str) == Some(&container))
                })
                .and_then(|c| c.pointer("/state/waiting/reason"))
                .and_then(Value::as_str)
                .unwrap_or("ContainerCreating")
                .to_string();
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
            )));
        }
        if !o.follow || o.previous {
            return Ok(LogReply::Whole(logs::read(&file, &o)));
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let c = container.clone();
            logs::follow(
                &file,
                &o,
                || shared.running(&c),
                |chunk| tx.send(chunk).is_ok(),
            )
            .await;
        });
        Ok(LogReply::Follow(rx))
    }
}

/// A simulated Pod: Running and Ready after `delay`; a Job's Pod then Succeeded after as long.
async fn simulate(
    store: Arc<Store>,
    pod: Value,
    ip: Ipv4Addr,
    delay: Duration,
    stop: CancellationToken,
) {
    let (ns, name, uid) = (
        meta::namespace(&pod).to_string(),
        meta::name(&pod).to_string(),
        meta::uid(&pod).to_string(),
    );
    let host = Ipv4Addr::LOCALHOST.to_string();
    let mut st = pod::initial(&pod, &ip.to_string(), &host);
    pod::write_status(&store, &ns, &name, &uid, &st);
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.cancelled() => return,
    }
    let now = meta::now();
    st.sandbox_ready = true;
    for (i, k) in st.init.iter_mut().enumerate() {
        k.state = status::State::Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            message: String::new(),
            started_at: now.clone(),
            finished_at: now.clone(),
            container_id: format!("simulated://{uid}-init-{i}"),
        };
        k.container_id = format!("simulated://{uid}-init-{i}");
        k.started = false;
    }
    for (i, k) in st.containers.iter_mut().enumerate() {
        k.state = status::State::Running {
            started_at: now.clone(),
        };
        k.container_id = format!("simulated://{uid}-{i}");
        k.ready = true;
        k.started = true;
    }
    pod::write_status(&store, &ns, &name, &uid, &st);
    if !owned_by_job(&pod) {
        return;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.cancelled() => return,
    }
    let done = meta::now();
    for k in &mut st.containers {
        k.state = status::State::Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            message: String::new(),
            started_at: now.clone(),
            finished_at: done.clone(),
            container_id: k.container_id.clone(),
        };
        k.ready = false;
        k.started = false;
    }
    pod::write_status(&store, &ns, &name, &uid, &st);
}

/// Run the node until the store's change stream ends ([`Node::register`] first): follow every
/// Pod, and renew the node's Lease.
pub async fn run(node: Arc<Node>) {
    let mut rx = node.store().subscribe();
    node.resync();
    let mut beat = tokio::time::interval(Duration::from_secs(10));
    beat.tick().await;
    loop {
        let signal = tokio::select! {
            s = rx.recv() => s,
            _ = beat.tick() => {
                node.heartbeat();
                continue;
            }
        };
        match signal {
            Ok(Signal::Change(c)) => {
                if c.key != PODS {
                    continue;
                }
                if c.kind == EventType::Deleted {
                    node.forget(meta::uid(&c.object));
                } else {
                    node.observe(&c.object);
                }
            }
            Ok(Signal::CloseAll) => {}
            Err(RecvError::Lagged(_)) => node.resync(),
            Err(RecvError::Closed) => return,
        }
    }
}
