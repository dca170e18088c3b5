//! Simulated workloads, as KWOK does: Deployments report all replicas ready after a delay.
//! Owns Deployment status; nothing runs, and it must not touch any other field or kind.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::meta;
use super::store::{EventType, Op, Signal, Store};

const DEPLOYMENTS: &str = "apps/deployments";

fn generation(d: &Value) -> i64 {
    d.pointer("/metadata/generation")
        .and_then(|g| g.as_i64())
        .unwrap_or(0)
}

/// The status a Deployment controller reports once every replica is ready and available.
pub fn ready_status(d: &Value) -> Value {
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(|r| r.as_i64())
        .unwrap_or(1);
    let now = meta::now();
    let mut s = json!({
        "observedGeneration": generation(d),
        "conditions": [
            { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
              "message": "Deployment has minimum availability.",
              "lastUpdateTime": now, "lastTransitionTime": now },
            { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
              "message": format!("ReplicaSet \"{}\" has successfully progressed.", meta::name(d)),
              "lastUpdateTime": now, "lastTransitionTime": now },
        ],
    });
    // Zero counts are left out, as the API server's JSON encoding does.
    if replicas > 0 {
        for f in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            s[f] = json!(replicas);
        }
    }
    s
}

fn converged(d: &Value) -> bool {
    let want = ready_status(d);
    let have = d.get("status").cloned().unwrap_or(json!({}));
    [
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ]
    .iter()
    .all(|f| have.get(*f) == want.get(*f))
}

/// Bring one Deployment's status up to date if its generation is still `gen`.
fn settle(store: &Store, ns: &str, name: &str, uid: &str, gen_: i64) {
    let _ = store.write(DEPLOYMENTS, ns, name, |ctx| {
        let Some(c) = ctx.current else {
            return Err(super::status::ApiError::no_such_path());
        };
        if meta::uid(&c.obj) != uid || generation(&c.obj) != gen_ || converged(&c.obj) {
            return Err(super::status::ApiError::no_such_path());
        }
        let mut d = (*c.obj).clone();
        d["status"] = ready_status(&c.obj);
        Ok(Op::Replace(d))
    });
}

/// Run the simulated deployment controller until the store's change stream ends.
pub async fn run(store: Arc<Store>, delay: Duration) {
    let mut rx = store.subscribe();
    loop {
        let deployments: Vec<Value> = match rx.recv().await {
            Ok(Signal::Change(c)) => {
                if c.key != DEPLOYMENTS || c.kind == EventType::Deleted || converged(&c.object) {
                    continue;
                }
                vec![(*c.object).clone()]
            }
            Ok(Signal::CloseAll) => continue,
            Err(RecvError::Lagged(_)) => store
                .all(DEPLOYMENTS, None)
                .into_iter()
                .map(|s| (*s.obj).clone())
                .filter(|d| !converged(d))
                .collect(),
            Err(RecvError::Closed) => return,
        };
        for d in deployments {
            if d.get("spec")
                .and_then(|s| s.get("paused"))
                .and_then(|p| p.as_bool())
                == Some(true)
            {
                continue;
            }
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                settle(
                    &store,
                    meta::namespace(&d),
                    meta::name(&d),
                    meta::uid(&d),
                    generation(&d),
                );
            });
        }
    }
}
