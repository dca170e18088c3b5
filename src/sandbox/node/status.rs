//! A Pod's `status` as the kubelet reports it, from what the node knows of its containers:
//! phase (the kubelet's `getPhase`), the conditions PodReadyToStartContainers, Initialized,
//! Ready, ContainersReady and PodScheduled (transition times kept while a condition holds), and
//! each container's state, last state, readiness and restart count. Pure: it must not read the
//! store or the clock beyond stamping `now`.

use serde_json::{Map, Value, json};

/// One container instance's state, as `containerStatuses[].state` spells it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: `reason` (ContainerCreating, CrashLoopBackOff, ErrImagePull,
    /// CreateContainerConfigError, PodInitializing) and a message.
    Waiting {
        /// Why.
        reason: String,
        /// More.
        message: String,
    },
    /// Running since `started_at`.
    Running {
        /// RFC 3339.
        started_at: String,
    },
    /// Ended.
    Terminated {
        /// The exit code (128 + signal when a signal ended it).
        exit_code: i32,
        /// Completed, Error, StartError.
        reason: String,
        /// The termination message, or the exec error.
        message: String,
        /// RFC 3339; empty when it never started.
        started_at: String,
        /// RFC 3339.
        finished_at: String,
        /// The instance's id.
        container_id: String,
    },
}

impl State {
    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = Map::new();
                w.insert("reason".into(), json!(reason));
                if !message.is_empty() {
                    w.insert("message".into(), json!(message));
                }
                json!({ "waiting": w })
            }
            State::Running { started_at } => json!({ "running": { "startedAt": started_at } }),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
                container_id,
            } => {
                let mut t = Map::new();
                t.insert("exitCode".into(), json!(exit_code));
                t.insert("reason".into(), json!(reason));
                if !message.is_empty() {
                    t.insert("message".into(), json!(message));
                }
                t.insert(
                    "startedAt".into(),
                    if started_at.is_empty() {
                        Value::Null
                    } else {
                        json!(started_at)
                    },
                );
                t.insert("finishedAt".into(), json!(finished_at));
                if !container_id.is_empty() {
                    t.insert("containerID".into(), json!(container_id));
                }
                json!({ "terminated": t })
            }
        }
    }
}

/// What the node knows of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Its name.
    pub name: String,
    /// Its image as the spec gives it.
    pub image: String,
    /// Now.
    pub state: State,
    /// The previous instance's end, if it restarted.
    pub last: Option<State>,
    /// Readiness (probe passed, or no readiness probe and running).
    pub ready: bool,
    /// Started (startup probe passed, or none and running).
    pub started: bool,
    /// How often it was restarted.
    pub restart_count: u32,
    /// The current instance's id (`logbook://...`).
    pub container_id: String,
}

impl Container {
    /// A container not yet started.
    pub fn new(name: &str, image: &str, reason: &str) -> Container {
        Container {
            name: name.to_string(),
            image: image.to_string(),
            state: State::Waiting {
                reason: reason.to_string(),
                message: String::new(),
            },
            last: None,
            ready: false,
            started: false,
            restart_count: 0,
            container_id: String::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("state".into(), self.state.to_json());
        o.insert(
            "lastState".into(),
            self.last.as_ref().map(State::to_json).unwrap_or(json!({})),
        );
        o.insert("ready".into(), json!(self.ready));
        o.insert("restartCount".into(), json!(self.restart_count));
        o.insert("image".into(), json!(self.image));
        o.insert(
            "imageID".into(),
            json!(if self.container_id.is_empty() {
                String::new()
            } else {
                format!("logbook-node/{}", self.image)
            }),
        );
        if !self.container_id.is_empty() {
            o.insert("containerID".into(), json!(self.container_id));
        }
        o.insert("started".into(), json!(self.started));
        Value::Object(o)
    }

    fn terminated_code(&self) -> Option<i32> {
        match &self.state {
            State::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
}

/// What the node knows of one Pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    /// Init containers, in order.
    pub init: Vec<Container>,
    /// Containers.
    pub containers: Vec<Container>,
    /// `spec.restartPolicy`.
    pub restart_policy: String,
    /// The Pod's address.
    pub pod_ip: String,
    /// The node's.
    pub host_ip: String,
    /// When the node took the Pod.
    pub start_time: String,
    /// Volumes are set up (PodReadyToStartContainers).
    pub sandbox_ready: bool,
    /// The QoS class.
    pub qos: String,
}

/// The kubelet's phase.
pub fn phase(p: &Pod) -> &'static str {
    let init_done = p.init.iter().all(|c| c.terminated_code() == Some(0));
    if !init_done {
        let failed = p
            .init
            .iter()
            .any(|c| c.terminated_code().is_some_and(|x| x != 0));
        if failed && p.restart_policy == "Never" {
            return "Failed";
        }
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &p.containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } => {
                if c.last.is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if p.restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded && p.containers.iter().all(|c| c.terminated_code() == Some(0)) {
            return "Succeeded";
        }
        if p.restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(prev: &Value, ty: &str, ok: bool, reason: &str, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = prev
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        });
    let since = match old {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => {
            c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
        }
        _ => json!(now),
    };
    let mut c = Map::new();
    c.insert("type".into(), json!(ty));
    c.insert("status".into(), json!(status));
    c.insert("lastProbeTime".into(), Value::Null);
    c.insert("lastTransitionTime".into(), since);
    if !ok && !reason.is_empty() {
        c.insert("reason".into(), json!(reason));
    }
    Value::Object(c)
}

fn names(cs: &[&Container]) -> String {
    cs.iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Pod's `status`, keeping the transition times of conditions in `prev` that still hold.
pub fn render(p: &Pod, prev: &Value) -> Value {
    let now = super::super::meta::now();
    let phase = phase(p);
    let init_pending: Vec<&Container> = p
        .init
        .iter()
        .filter(|c| c.terminated_code() != Some(0))
        .collect();
    let not_ready: Vec<&Container> = p.containers.iter().filter(|c| !c.ready).collect();
    let done = matches!(phase, "Succeeded" | "Failed");
    let initialized = init_pending.is_empty();
    let ready = not_ready.is_empty() && !done && initialized;
    let ready_reason = if done {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions = vec![
        condition(prev, "PodReadyToStartContainers", p.sandbox_ready, "", &now),
        condition(
            prev,
            "Initialized",
            initialized,
            if done && !initialized {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            },
            &now,
        ),
        condition(prev, "Ready", ready, ready_reason, &now),
        condition(prev, "ContainersReady", ready, ready_reason, &now),
        condition(prev, "PodScheduled", true, "", &now),
    ];
    // The kubelet's messages on the conditions that are False.
    for c in &mut conditions {
        let ty = c
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if c.get("status").and_then(Value::as_str) != Some("False") {
            continue;
        }
        let msg = match ty.as_str() {
            "Initialized" if !done => format!(
                "containers with incomplete status: [{}]",
                names(&init_pending)
            ),
            "Ready" | "ContainersReady" if !done => {
                format!("containers with unready status: [{}]", names(&not_ready))
            }
            _ => String::new(),
        };
        if !msg.is_empty() {
            c["message"] = json!(msg);
        }
    }
    let mut s = Map::new();
    s.insert("phase".into(), json!(phase));
    s.insert("conditions".into(), Value::Array(conditions));
    s.insert("hostIP".into(), json!(p.host_ip));
    s.insert("hostIPs".into(), json!([{ "ip": p.host_ip }]));
    if !p.pod_ip.is_empty() {
        s.insert("podIP".into(), json!(p.pod_ip));
        s.insert("podIPs".into(), json!([{ "ip": p.pod_ip }]));
    }
    s.insert("startTime".into(), json!(p.start_time));
    if !p.init.is_empty() {
        s.insert(
            "initContainerStatuses".into(),
            Value::Array(p.init.iter().map(Container::to_json).collect()),
        );
    }
    s.insert(
        "containerStatuses".into(),
        Value::Array(p.containers.iter().map(Container::to_json).collect()),
    );
    s.insert("qosClass".into(), json!(p.qos));
    Value::Object(s)
}

/// The QoS class of a Pod spec: BestEffort without requests or limits, Guaranteed when every
/// container's requests equal its limits for cpu and memory, Burstable otherwise.
pub fn qos(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c.pointer(&format!("/resources/{k}"))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = c.pointer(&format!("/resources/limits/{r}"));
            let q = c.pointer(&format!("/resources/requests/{r}")).or(l);
            l.is_some() && l == q
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(policy: &str, states: Vec<State>) -> Pod {
        Pod {
            init: vec![],
            containers: states
                .into_iter()
                .enumerate()
                .map(|(i, s)| Container {
                    state: s,
                    ..Container::new(&format!("c{i}"), "busybox", "ContainerCreating")
                })
                .collect(),
            restart_policy: policy.into(),
            pod_ip: "127.10.0.1".into(),
            host_ip: "127.0.0.1".into(),
            start_time: "2026-01-01T00:00:00Z".into(),
            sandbox_ready: true,
            qos: "BestEffort".into(),
        }
    }

    fn ended(code: i32) -> State {
        State::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: "t".into(),
            finished_at: "t".into(),
            container_id: "x".into(),
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let running = State::Running {
            started_at: "t".into(),
        };
        assert_eq!(phase(&pod("Always", vec![running.clone()])), "Running");
        assert_eq!(phase(&pod("Never", vec![ended(0)])), "Succeeded");
        assert_eq!(phase(&pod("Never", vec![ended(3)])), "Failed");
        assert_eq!(phase(&pod("OnFailure", vec![ended(0)])), "Succeeded");
        assert_eq!(phase(&pod("Always", vec![ended(0)])), "Running");
        assert_eq!(phase(&pod("Never", vec![ended(0), running])), "Running");
        assert_eq!(
            phase(&pod(
                "Always",
                vec![State::Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new()
                }]
            )),
            "Pending"
        );
        let s = render(&pod("Never", vec![ended(0)]), &json!({}));
        let ready = &s["conditions"][2];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["reason"], "PodCompleted");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
    }
}
