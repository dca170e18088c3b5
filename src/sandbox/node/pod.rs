//! One Pod run for real: volumes set up, init containers in order, then every container with
//! its restart policy and back-off, probes, termination (SIGTERM, grace, SIGKILL) and the
//! termination message, each change written to the Pod's `status`. It must not bind, address
//! or delete Pods other than its own, nor touch any other object: the agent ([`super`]) does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::super::meta;
use super::super::status::ApiError;
use super::super::store::{Op, Store};
use super::env::{self, PodFields};
use super::images::Mapping;
use super::mounts::{self, Mounts, Volumes};
use super::probes::{self, Probe, Verdict};
use super::process::{self, Handle, Spec};
use super::status::{self, Container, State};
use super::{NodeShared, PODS};

/// The kubelet's back-off cap.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What a running Pod shares with the agent, faults and the log endpoint.
pub struct Shared {
    /// The Pod's uid.
    pub uid: String,
    /// The Pod's directory (logs, volumes, termination messages).
    pub root: PathBuf,
    state: Mutex<status::Pod>,
    procs: Mutex<HashMap<String, Handle>>,
    /// Each container's last process spec and mounts (what `exec` runs with).
    contexts: Mutex<HashMap<String, (Spec, Mounts)>>,
    changed: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, status::Pod> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn procs(&self) -> MutexGuard<'_, HashMap<String, Handle>> {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handles of the running containers (all, or the one named).
    pub fn handles(&self, container: Option<&str>) -> Vec<(String, Handle)> {
        self.procs()
            .iter()
            .filter(|(n, _)| container.is_none_or(|c| c == n.as_str()))
            .map(|(n, h)| (n.clone(), *h))
            .collect()
    }

    /// The log file of a container's instance: its current one, or the one before.
    pub fn log_file(&self, container: &str, previous: bool) -> Option<PathBuf> {
        let st = self.state();
        let c = st
            .init
            .iter()
            .chain(st.containers.iter())
            .find(|c| c.name == container)?;
        let n = if previous {
            c.last.as_ref()?;
            c.restart_count.checked_sub(1)?
        } else {
            c.restart_count
        };
        Some(log_path(&self.root, container, n))
    }

    /// The environment, directory, user and mounts of a running container (for `exec`).
    pub fn context(&self, container: &str) -> Option<(Spec, Mounts)> {
        if !self.running(container) {
            return None;
        }
        self.contexts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(container)
            .cloned()
    }

    /// Whether the container's current instance is running.
    pub fn running(&self, container: &str) -> bool {
        self.procs().contains_key(container)
    }

    fn update(&self, f: impl FnOnce(&mut status::Pod)) {
        f(&mut self.state());
        self.changed.notify_one();
    }

    fn update_container(&self, init: bool, i: usize, f: impl FnOnce(&mut Container)) {
        self.update(|p| {
            let list = if init { &mut p.init } else { &mut p.containers };
            if let Some(c) = list.get_mut(i) {
                f(c);
            }
        });
    }
}

/// Where a container instance's output is kept.
pub fn log_path(root: &Path, container: &str, instance: u32) -> PathBuf {
    root.join("logs")
        .join(container)
        .join(format!("{instance}.log"))
}

/// Everything a Pod's run needs.
pub struct Run {
    /// The node.
    pub node: Arc<NodeShared>,
    /// The Pod as first seen.
    pub pod: Value,
    /// Its address.
    pub ip: IpAddr,
    /// The images of its containers, by container name.
    pub images: HashMap<String, Mapping>,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Cancelled when the Pod is being deleted: stop gracefully.
    pub stop: CancellationToken,
}

/// The state shared for a Pod about to run.
pub fn shared(uid: &str, root: PathBuf, initial: status::Pod) -> Arc<Shared> {
    Arc::new(Shared {
        uid: uid.to_string(),
        root,
        state: Mutex::new(initial),
        procs: Mutex::new(HashMap::new()),
        contexts: Mutex::new(HashMap::new()),
        changed: Notify::new(),
    })
}

fn containers(pod: &Value, key: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{key}"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn name_of(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The initial status of a Pod the node takes.
pub fn initial(pod: &Value, ip: &str, host_ip: &str) -> status::Pod {
    let image = |c: &Value| {
        c.get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let init = containers(pod, "initContainers");
    let main_reason = if init.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    status::Pod {
        init: init
            .iter()
            .map(|c| Container::new(&name_of(c), &image(c), "PodInitializing"))
            .collect(),
        containers: containers(pod, "containers")
            .iter()
            .map(|c| Container::new(&name_of(c), &image(c), main_reason))
            .collect(),
        restart_policy: pod
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always")
            .to_string(),
        pod_ip: ip.to_string(),
        host_ip: host_ip.to_string(),
        start_time: meta::now(),
        sandbox_ready: false,
        qos: status::qos(pod.get("spec").unwrap_or(&Value::Null)).to_string(),
    }
}

/// Write `status` to the Pod if it is still the one with `uid`.
pub fn write_status(store: &Store, ns: &str, name: &str, uid: &str, st: &status::Pod) {
    let _ = store.write(PODS, ns, name, |ctx| {
        let Some(c) = ctx.current else {
            return Err(ApiError::no_such_path());
        };
        if meta::uid(&c.obj) != uid {
            return Err(ApiError::no_such_path());
        }
        let prev = c.obj.get("status").cloned().unwrap_or(Value::Null);
        let next = status::render(st, &prev);
        if same_status(&prev, &next) {
            return Err(ApiError::no_such_path());
        }
        let mut p = (*c.obj).clone();
        p["status"] = next;
        Ok(Op::Replace(p))
    });
}

/// Equal but for condition probe times (which the render leaves null anyway).
fn same_status(a: &Value, b: &Value) -> bool {
    a == b
}

/// Remove the Pod (the kubelet's final delete, grace 0) if it is still the one with `uid`.
pub fn remove(store: &Store, ns: &str, name: &str, uid: &str) {
    let _ = store.write(PODS, ns, name, |ctx| match ctx.current {
        Some(c) if meta::uid(&c.obj) == uid => Ok(Op::Delete),
        _ => Err(ApiError::no_such_path()),
    });
}

fn user_ids(
    run_as: Option<u32>,
    group: Option<u32>,
    mapping: &Mapping,
) -> (Option<u32>, Option<u32>, Option<String>) {
    use nix::unistd::{Uid, User};
    let mapped = mapping
        .user
        .as_deref()
        .and_then(|u| match u.parse::<u32>() {
            Ok(n) => User::from_uid(Uid::from_raw(n)).ok().flatten(),
            Err(_) => User::from_name(u).ok().flatten(),
        });
    let uid = run_as.or(mapped.as_ref().map(|u| u.uid.as_raw()));
    let Some(uid) = uid else {
        return (None, None, None);
    };
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
    let gid = group.or(user.as_ref().map(|u| u.gid.as_raw())).unwrap_or(0);
    let home = user.map(|u| u.dir.display().to_string());
    (Some(uid), Some(gid), home)
}

fn security(pod: &Value, c: &Value, k: &str) -> Option<u32> {
    c.pointer(&format!("/securityContext/{k}"))
        .or_else(|| pod.pointer(&format!("/spec/securityContext/{k}")))
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn strings(c: &Value, k: &str) -> Option<Vec<String>> {
    c.get(k).and_then(Value::as_array).map(|a| {
        a.iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    })
}

/// A container's process spec and the host file of its termination message.
struct Built {
    spec: Spec,
    mounts: Mounts,
    message_file: PathBuf,
}

impl Run {
    fn store(&self) -> &Store {
        &self.node.store
    }

    fn ns(&self) -> &str {
        meta::namespace(&self.pod)
    }

    fn name(&self) -> &str {
        meta::name(&self.pod)
    }

    fn build(&self, c: &Value, volumes: &Volumes, instance: u32) -> Result<Built, String> {
        let name = name_of(c);
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let mapping = self.images.get(&name).cloned().unwrap_or_default();
        let ip = self.ip.to_string();
        let host_ip = self.node.host_ip.to_string();
        let fields = PodFields {
            pod: &self.pod,
            pod_ip: &ip,
            host_ip: &host_ip,
        };
        let (uid, gid, home) = user_ids(
            security(&self.pod, c, "runAsUser"),
            security(&self.pod, c, "runAsGroup"),
            &mapping,
        );
        let dir = self.shared.root.join("containers").join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let message_file = dir.join("termination-log");
        std::fs::write(&message_file, b"")
            .map_err(|e| format!("cannot write {}: {e}", message_file.display()))?;
        let _ = std::fs::set_permissions(
            &message_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        );
        let message_path = c
            .get("terminationMessagePath")
            .and_then(Value::as_str)
            .unwrap_or("/dev/termination-log")
            .to_string();
        let m = Mounts::of(c, volumes, vec![(message_path, message_file.clone())]);
        let mut path: Vec<String> = mapping
            .path
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        path.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        let mut base = vec![
            ("PATH".to_string(), path.join(":")),
            ("HOSTNAME".to_string(), self.name().to_string()),
            ("HOME".to_string(), home.unwrap_or_else(|| "/root".into())),
        ];
        base.extend(env::service_env(self.store(), &self.pod, self.node.api));
        let vars = env::container_env(self.store(), &fields, c, base).map_err(|e| e.0)?;
        let mut vars: Vec<(String, String)> =
            vars.into_iter().map(|(k, v)| (k, m.rewrite(&v))).collect();
        vars.push(("LOGBOOK_MOUNTS".into(), m.export()));
        let (command, args) = match (strings(c, "command"), strings(c, "args")) {
            (Some(cmd), Some(a)) => (cmd, a),
            (Some(cmd), None) => (cmd, vec![]),
            (None, Some(a)) => (mapping.command.clone(), a),
            (None, None) => (mapping.command.clone(), mapping.args.clone()),
        };
        let argv: Vec<String> = env::expand_all(&command, &vars)
            .into_iter()
            .chain(env::expand_all(&args, &vars))
            .map(|a| m.rewrite(&a))
            .collect();
        let Some((program, rest)) = argv.split_first() else {
            return Err(format!(
                "no command specified: the container gives no command and the image map gives none for {image:?}"
            ));
        };
        // The working directory is the container's own: under a volume it is the volume's
        // directory, anywhere else a directory under the Pod's `fs/` (never the host's path).
        let cwd = match c
            .get("workingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(w) => {
                let host = PathBuf::from(m.rewrite(w));
                let under = if host != Path::new(w) {
                    host
                } else {
                    self.shared.root.join("fs").join(w.trim_start_matches('/'))
                };
                std::fs::create_dir_all(&under).map_err(|e| {
                    format!("cannot make the working directory {}: {e}", under.display())
                })?;
                under
            }
            None => {
                let fs = self.shared.root.join("fs");
                std::fs::create_dir_all(&fs)
                    .map_err(|e| format!("cannot make {}: {e}", fs.display()))?;
                let _ = std::fs::set_permissions(
                    &fs,
                    std::os::unix::fs::PermissionsExt::from_mode(0o777),
                );
                fs
            }
        };
        let log = log_path(&self.shared.root, &name, instance);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
        }
        // Only the current and the previous instance's logs are kept.
        if let Some(old) = instance.checked_sub(2) {
            let _ = std::fs::remove_file(log_path(&self.shared.root, &name, old));
        }
        let _ = std::fs::write(&log, b"");
        Ok(Built {
            spec: Spec {
                program: program.clone(),
                args: rest.to_vec(),
                env: vars,
                cwd,
                uid,
                gid,
                log,
            },
            mounts: m,
            message_file,
        })
    }

    fn grace(&self) -> Duration {
        let current = self.store().get(PODS, self.ns(), self.name());
        let secs = current
            .as_ref()
            .and_then(|p| {
                p.obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_u64)
            })
            .or_else(|| {
                self.pod
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_u64)
            })
            .unwrap_or(30);
        Duration::from_secs(secs)
    }

    fn backoff(&self, crashes: u32) -> Duration {
        // The first restart is immediate; then base, 2×base, ... up to five minutes.
        if crashes <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (crashes - 2).min(16);
        self.node.backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }

    /// Run one instance of a container to its end: `Some(exit code)`, or `None` when it could
    /// not start (its state says why). `stop` ends it gracefully.
    async fn instance(&self, init: bool, i: usize, c: &Value, volumes: &Volumes) -> Option<i32> {
        let name = name_of(c);
        let instance = {
            let st = self.shared.state();
            let list = if init { &st.init } else { &st.containers };
            list.get(i).map(|c| c.restart_count).unwrap_or(0)
        };
        let built = match self.build(c, volumes, instance) {
            Ok(b) => b,
            Err(message) => {
                self.shared.update_container(init, i, |k| {
                    k.state = State::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message,
                    };
                });
                return None;
            }
        };
        let container_id = format!(
            "logbook://{}-{}-{instance}",
            &self.shared.uid.chars().take(8).collect::<String>(),
            name
        );
        let started = meta::now();
        let mut running = match process::spawn(&built.spec, self.node.supervisor.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::write(
                    &built.spec.log,
                    process::cri_line("stderr", e.to_string().as_bytes()),
                );
                self.shared.update_container(init, i, |k| {
                    k.state = State::Terminated {
                        exit_code: 128,
                        reason: "StartError".into(),
                        message: e.to_string(),
                        started_at: "1970-01-01T00:00:00Z".into(),
                        finished_at: meta::now(),
                        container_id: container_id.clone(),
                    };
                    k.container_id = container_id.clone();
                    k.ready = false;
                    k.started = false;
                });
                return Some(128);
            }
        };
        let handle = running.handle();
        self.shared
            .contexts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), (built.spec.clone(), built.mounts.clone()));
        self.shared.procs().insert(name.clone(), handle);
        let readiness = c
            .get("readinessProbe")
            .and_then(|p| probes::parse(p, c, self.ip));
        let liveness = c
            .get("livenessProbe")
            .and_then(|p| probes::parse(p, c, self.ip));
        let startup = c
            .get("startupProbe")
            .and_then(|p| probes::parse(p, c, self.ip));
        self.shared.update_container(init, i, |k| {
            k.state = State::Running {
                started_at: started.clone(),
            };
            k.container_id = container_id.clone();
            k.started = startup.is_none();
            // Init containers are never "ready"; others are until a readiness probe says so.
            k.ready = !init && readiness.is_none() && startup.is_none();
        });
        let probe_stop = CancellationToken::new();
        let killed = CancellationToken::new();
        if !init {
            let ctx = ProbeCtx {
                shared: self.shared.clone(),
                index: i,
                spec: built.spec.clone(),
                stop: probe_stop.clone(),
                killed: killed.clone(),
            };
            tokio::spawn(ctx.run(startup, readiness, liveness));
        }
        let code = tokio::select! {
            code = running.wait() => code,
            _ = self.stop.cancelled() => self.terminate(&mut running).await,
            _ = killed.cancelled() => self.terminate(&mut running).await,
        };
        probe_stop.cancel();
        self.shared.procs().remove(&name);
        let mut message = read_message(&built.message_file);
        if message.is_empty()
            && code != 0
            && c.get("terminationMessagePolicy").and_then(Value::as_str)
                == Some("FallbackToLogsOnError")
        {
            message = super::logs::tail_text(&built.spec.log, 80, 2048);
        }
        let finished = meta::now();
        self.shared.update_container(init, i, |k| {
            k.state = State::Terminated {
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message,
                started_at: started.clone(),
                finished_at: finished,
                container_id: container_id.clone(),
            };
            k.ready = false;
            k.started = false;
        });
        Some(code)
    }

    async fn terminate(&self, running: &mut process::Running) -> i32 {
        let h = running.handle();
        h.thaw();
        h.terminate();
        match tokio::time::timeout(self.grace(), running.wait()).await {
            Ok(code) => code,
            Err(_) => {
                h.kill();
                running.wait().await
            }
        }
    }

    /// Run a container per its restart policy until it is done or the Pod stops.
    async fn container(&self, init: bool, i: usize, c: &Value, volumes: &Volumes) -> i32 {
        let policy = {
            let p = self.shared.state().restart_policy.clone();
            // Init containers restart on failure unless the policy is Never.
            if init && p == "Always" {
                "OnFailure".to_string()
            } else {
                p
            }
        };
        let mut crashes = 0u32;
        loop {
            if self.stop.is_cancelled() {
                return 137;
            }
            let begun = Instant::now();
            let Some(code) = self.instance(init, i, c, volumes).await else {
                // Not startable yet (its configuration): try again after a back-off.
                let wait = self.node.backoff.min(Duration::from_secs(5));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = self.stop.cancelled() => return 137,
                }
            };
            if self.stop.is_cancelled() {
                return code;
            }
            let restart = match policy.as_str() {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => true,
            };
            if !restart {
                return code;
            }
            // A container that ran long enough starts its back-off afresh (the kubelet: twice
            // the cap).
            if begun.elapsed() > MAX_BACKOFF * 2 {
                crashes = 0;
            }
            crashes += 1;
            let wait = self.backoff(crashes);
            let name = name_of(c);
            let pod_ref = format!("{}_{}({})", self.name(), self.ns(), self.shared.uid);
            self.shared.update_container(init, i, |k| {
                k.last = Some(k.state.clone());
                if !wait.is_zero() {
                    k.state = State::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: format!(
                            "back-off {} restarting failed container={name} pod={pod_ref}",
                            human(wait)
                        ),
                    };
                }
                k.restart_count += 1;
                k.ready = false;
                k.started = false;
            });
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.stop.cancelled() => return code,
                }
            }
        }
    }

    /// The whole Pod, until it is done and deleted.
    pub async fn run(self) {
        let (ns, name, uid) = (
            self.ns().to_string(),
            self.name().to_string(),
            self.shared.uid.clone(),
        );
        let writer = {
            let shared = self.shared.clone();
            let store = self.node.store.clone();
            let (ns, name, uid) = (ns.clone(), name.clone(), uid.clone());
            tokio::spawn(async move {
                loop {
                    let st = shared.state().clone();
                    write_status(&store, &ns, &name, &uid, &st);
                    shared.changed.notified().await;
                }
            })
        };
        self.shared.changed.notify_one();
        let volumes = loop {
            let owner = None;
            match mounts::prepare(self.store(), &self.pod, &self.shared.root, owner) {
                Ok(v) => break Some(v),
                Err(e) => {
                    tracing::debug!(pod = %name, error = %e, "volumes not ready");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = self.stop.cancelled() => break None,
                    }
                }
            }
        };
        if let Some(volumes) = volumes {
            self.shared.update(|p| p.sandbox_ready = true);
            let mut init_ok = true;
            for (i, c) in containers(&self.pod, "initContainers").iter().enumerate() {
                if self.container(true, i, c, &volumes).await != 0 {
                    init_ok = false;
                    break;
                }
            }
            if init_ok && !self.stop.is_cancelled() {
                let main = containers(&self.pod, "containers");
                self.shared.update(|p| {
                    for k in &mut p.containers {
                        if matches!(&k.state, State::Waiting { reason, .. } if reason == "PodInitializing")
                        {
                            k.state = State::Waiting {
                                reason: "ContainerCreating".into(),
                                message: String::new(),
                            };
                        }
                    }
                });
                let runs = main
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.container(false, i, c, &volumes));
                futures::future::join_all(runs).await;
            }
        }
        // Done: the Pod stays as it ended until it is deleted.
        self.stop.cancelled().await;
        let st = self.shared.state().clone();
        write_status(self.store(), &ns, &name, &uid, &st);
        writer.abort();
        remove(self.store(), &ns, &name, &uid);
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s > 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn read_message(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let cut = &bytes[..bytes.len().min(4096)];
    String::from_utf8_lossy(cut).into_owned()
}

struct ProbeCtx {
    shared: Arc<Shared>,
    index: usize,
    spec: Spec,
    stop: CancellationToken,
    killed: CancellationToken,
}

impl ProbeCtx {
    async fn each(&self, probe: &Probe, mut on: impl FnMut(bool) -> bool) {
        tokio::select! {
            _ = tokio::time::sleep(probe.initial_delay) => {}
            _ = self.stop.cancelled() => return,
        }
        let mut verdict = Verdict::default();
        loop {
            let ok = probe.check_once(&self.spec).await;
            if let Some(v) = verdict.record(probe, ok)
                && !on(v)
            {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(probe.period) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    async fn run(self, startup: Option<Probe>, readiness: Option<Probe>, liveness: Option<Probe>) {
        if let Some(p) = &startup {
            let mut passed = false;
            self.each(p, |ok| {
                passed = ok;
                false
            })
            .await;
            if !passed {
                if !self.stop.is_cancelled() {
                    self.killed.cancel();
                }
                return;
            }
            self.shared.update_container(false, self.index, |k| {
                k.started = true;
                if readiness.is_none() {
                    k.ready = true;
                }
            });
        }
        let ready = async {
            if let Some(p) = &readiness {
                self.each(p, |ok| {
                    self.shared
                        .update_container(false, self.index, |k| k.ready = ok);
                    true
                })
                .await;
            }
        };
        let live = async {
            if let Some(p) = &liveness {
                self.each(p, |ok| {
                    if !ok {
                        self.killed.cancel();
                    }
                    ok
                })
                .await;
            }
        };
        futures::future::join(ready, live).await;
    }
}
