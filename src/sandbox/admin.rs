//! The admin endpoint (`/sandbox/...`) through which a running sandbox takes fault settings.
//! Owns that small JSON API; it must not serve Kubernetes resources, and faults never apply to it.

use serde_json::{Value, json};

use super::faults::{FaultConfig, Faults};
use super::status::ApiError;
use super::store::Store;

/// What the admin endpoint serves, for its index and the README.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/sandbox/faults", "the fault settings"),
    (
        "PUT",
        "/sandbox/faults",
        "replace the fault settings (JSON, fields optional)",
    ),
    ("POST", "/sandbox/reset", "turn every fault off"),
    (
        "POST",
        "/sandbox/reseed?seed=N",
        "restart the fault random sequence",
    ),
    ("POST", "/sandbox/pause", "hold every API request"),
    ("POST", "/sandbox/resume", "let held requests through"),
    (
        "POST",
        "/sandbox/compact",
        "drop watch history: older versions get 410 Gone",
    ),
    (
        "POST",
        "/sandbox/close-watches",
        "end every open watch stream",
    ),
    ("GET", "/sandbox/injected", "the errors injected so far"),
    (
        "GET",
        "/sandbox/audited",
        "the requests that carried an Audit-ID, oldest first",
    ),
    (
        "GET",
        "/sandbox/history",
        "watch history kept: events, bytes, their bounds, the oldest resourceVersion",
    ),
    (
        "GET",
        "/sandbox/state",
        "every object, as --state saves them",
    ),
    (
        "POST",
        "/sandbox/pods/kill?namespace=NS&name=POD[&container=C]",
        "SIGKILL a Pod's container processes (the node restarts them per restartPolicy)",
    ),
    (
        "POST",
        "/sandbox/pods/freeze?namespace=NS&name=POD",
        "SIGSTOP a Pod's processes, as a hung node (its probes fail)",
    ),
    (
        "POST",
        "/sandbox/pods/thaw?namespace=NS&name=POD",
        "SIGCONT a frozen Pod's processes",
    ),
];

fn pod_target(query: &[(String, String)]) -> Result<(String, String, Option<String>), ApiError> {
    let get = |k: &str| {
        query
            .iter()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let name = get("name").ok_or_else(|| {
        ApiError::bad_request(
            "a Pod fault needs ?name=POD (and &namespace=NS, default \"default\")",
        )
    })?;
    Ok((
        get("namespace").unwrap_or_else(|| "default".into()),
        name,
        get("container"),
    ))
}

/// Answer an admin request: `rest` is the path after `/sandbox/`.
pub fn handle(
    faults: &Faults,
    store: &Store,
    method: &str,
    rest: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Value, ApiError> {
    match (method, rest) {
        ("GET", "") => Ok(json!(
            ROUTES
                .iter()
                .map(|(m, p, d)| json!({ "method": m, "path": p, "description": d }))
                .collect::<Vec<_>>()
        )),
        ("GET", "faults") => Ok(json!(faults.config())),
        ("PUT" | "POST", "faults") => {
            let config: FaultConfig = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault settings: {e}")))?;
            if !(0.0..=1.0).contains(&config.error_rate) {
                return Err(ApiError::bad_request("errorRate must be between 0 and 1"));
            }
            faults.set(config);
            Ok(json!(faults.config()))
        }
        ("POST", "reset") => {
            faults.reset();
            Ok(json!(faults.config()))
        }
        ("POST", "reseed") => {
            let seed = query
                .iter()
                .find(|(k, _)| k == "seed")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("reseed needs ?seed=N (an unsigned integer)")
                })?;
            faults.reseed(seed);
            Ok(json!({ "seed": seed }))
        }
        ("POST", "pause") => {
            faults.pause();
            Ok(json!({ "paused": true }))
        }
        ("POST", "resume") => {
            faults.resume();
            Ok(json!({ "paused": false }))
        }
        ("POST", "compact") => Ok(json!({ "resourceVersion": faults.compact().to_string() })),
        ("POST", "close-watches") => {
            faults.close_watches();
            Ok(json!({}))
        }
        ("GET", "injected") => Ok(json!(faults.injected())),
        ("GET", "audited") => Ok(json!(faults.audited())),
        ("GET", "history") => Ok(json!(store.history_stats())),
        ("GET", "state") => Ok(json!(store.snapshot_all())),
        ("POST", "pods/kill" | "pods/freeze" | "pods/thaw") => {
            let (ns, name, container) = pod_target(query)?;
            let done = match rest {
                "pods/kill" => faults.kill_pod(&ns, &name, container.as_deref()),
                "pods/freeze" => faults.freeze_pod(&ns, &name),
                _ => faults.thaw_pod(&ns, &name),
            };
            match done {
                Ok(n) => Ok(json!({ "namespace": ns, "name": name, "processes": n })),
                Err(e @ super::node::NodeError::NoPod { .. }) => {
                    Err(ApiError::new(404, "NotFound", e.to_string()))
                }
                Err(e) => Err(ApiError::new(409, "Conflict", e.to_string())),
            }
        }
        (_, r)
            if ROUTES.iter().any(|(_, p, _)| {
                p.trim_start_matches("/sandbox/").split('?').next() == Some(r)
            }) =>
        {
            Err(ApiError::method_not_allowed(method))
        }
        _ => Err(ApiError::no_such_path()),
    }
}
