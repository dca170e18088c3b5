//! `kubectl get pods` cells as the API server's Pod printer computes them: READY, STATUS (the
//! kubelet's reason: `Init:0/1`, `CrashLoopBackOff`, `Completed`, `Terminating`...), RESTARTS
//! (with `(5s ago)`), AGE, and wide IP, NODE, NOMINATED NODE, READINESS GATES. Pure; it must not
//! decide the columns (the catalogue does) or which Pods are listed.

use serde_json::{Value, json};

fn arr<'a>(v: &'a Value, p: &str) -> Vec<&'a Value> {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn time(v: &Value, p: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s(v, p)).ok()
}

fn ago(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    super::super::table::human_age(chrono::Utc::now().signed_duration_since(t))
}

/// The cells after NAME.
pub fn cells(pod: &Value) -> Vec<Value> {
    let total = arr(pod, "/spec/containers").len();
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut last_restart: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    let mut note_restart = |c: &Value| {
        if let Some(t) = time(c, "/lastState/terminated/finishedAt")
            && last_restart.is_none_or(|l| t > l)
        {
            last_restart = Some(t);
        }
    };
    let phase = s(pod, "/status/phase");
    let mut reason = match s(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let inits = arr(pod, "/status/initContainerStatuses");
    let n_init = arr(pod, "/spec/initContainers").len();
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        note_restart(c);
        let code = c
            .pointer("/state/terminated/exitCode")
            .and_then(Value::as_i64);
        let waiting = s(c, "/state/waiting/reason");
        match code {
            Some(0) => continue,
            Some(code) => {
                reason = match s(c, "/state/terminated/reason") {
                    "" => format!("Init:ExitCode:{code}"),
                    r => format!("Init:{r}"),
                };
            }
            None if !waiting.is_empty() && waiting != "PodInitializing" => {
                reason = format!("Init:{waiting}");
            }
            None => reason = format!("Init:{i}/{n_init}"),
        }
        initializing = true;
        break;
    }
    let initialized = arr(pod, "/status/conditions").iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("Initialized")
            && c.get("status").and_then(Value::as_str) == Some("True")
    });
    if !initializing || initialized {
        restarts = 0;
        let mut running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            note_restart(c);
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match s(t, "/reason") {
                    "" => format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                    r => r.to_string(),
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            let ready_cond = arr(pod, "/status/conditions").iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            });
            reason = if ready_cond { "Running" } else { "NotReady" }.to_string();
        }
    }
    if !s(pod, "/metadata/deletionTimestamp").is_empty() && !matches!(phase, "Succeeded" | "Failed")
    {
        reason = "Terminating".to_string();
    }
    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", ago(t)),
        _ => restarts.to_string(),
    };
    let age = time(pod, "/metadata/creationTimestamp")
        .map(ago)
        .unwrap_or_else(|| "<unknown>".into());
    let none = |v: &str| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.to_string()
        }
    };
    let gates = arr(pod, "/spec/readinessGates");
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(pod, "/status/conditions");
        let ok = gates
            .iter()
            .filter(|g| {
                let ty = s(g, "/conditionType");
                conds.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some(ty)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age),
        json!(none(s(pod, "/status/podIP"))),
        json!(none(s(pod, "/spec/nodeName"))),
        json!(none(s(pod, "/status/nominatedNodeName"))),
        json!(gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_kubelets_reason() {
        let pod = json!({
            "metadata": { "name": "p", "creationTimestamp": "2020-01-01T00:00:00Z" },
            "spec": { "containers": [{ "name": "a" }], "nodeName": "logbook-node" },
            "status": { "phase": "Running", "podIP": "127.10.0.1",
                "containerStatuses": [{ "name": "a", "ready": false, "restartCount": 2,
                    "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                    "lastState": { "terminated": { "exitCode": 1, "finishedAt": "2020-01-01T00:00:00Z" } } }] },
        });
        let c = cells(&pod);
        assert_eq!(c[0], "0/1");
        assert_eq!(c[1], "CrashLoopBackOff");
        assert!(c[2].as_str().is_some_and(|r| r.starts_with("2 (")), "{c:?}");
        assert_eq!(c[4], "127.10.0.1");
        let done = json!({
            "metadata": { "name": "p", "deletionTimestamp": "2020-01-01T00:00:00Z" },
            "spec": { "containers": [{ "name": "a" }] },
            "status": { "phase": "Succeeded", "containerStatuses": [{ "name": "a", "ready": false, "restartCount": 0,
                "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } }] },
        });
        assert_eq!(cells(&done)[1], "Completed");
        let init = json!({
            "metadata": { "name": "p" },
            "spec": { "initContainers": [{ "name": "i" }], "containers": [{ "name": "a" }] },
            "status": { "phase": "Pending", "initContainerStatuses": [{ "name": "i", "restartCount": 0,
                "state": { "running": {} } }] },
        });
        assert_eq!(cells(&init)[1], "Init:0/1");
    }
}
