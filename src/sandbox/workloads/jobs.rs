//! The Job controller: Pods run to completion under `parallelism`, `completions`,
//! `backoffLimit` and `activeDeadlineSeconds`, a status counted from them with the conditions
//! of Kubernetes 1.31+, and finished Jobs removed after `ttlSecondsAfterFinished`. It must not
//! touch a Pod's status nor any Pod it does not own.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::pods::{self, PODS};
use crate::sandbox::gc;
use crate::sandbox::meta;
use crate::sandbox::store::Store;

/// Storage key of Jobs.
pub const JOBS: &str = "batch/jobs";

fn condition_true(job: &Value, ty: &str) -> Option<String> {
    job.pointer("/status/conditions")
        .and_then(|c| c.as_array())?
        .iter()
        .find(|c| c["type"] == ty && c["status"] == "True")
        .map(|c| {
            c.get("lastTransitionTime")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string()
        })
}

/// When the Job finished (`Complete` or `Failed` true), if it has.
pub fn finished_at(job: &Value) -> Option<String> {
    condition_true(job, "Complete").or_else(|| condition_true(job, "Failed"))
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn add_condition(conditions: &mut Vec<Value>, ty: &str, reason: &str, message: &str, now: &str) {
    if conditions.iter().any(|c| c["type"] == ty) {
        return;
    }
    conditions.push(json!({
        "type": ty, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now,
    }));
}

/// Bring one Job's Pods and status up to date; `owned` are the Pods it controls.
pub fn sync(store: &Store, job: &Value, owned: &[Arc<Value>], now: DateTime<Utc>) {
    if pods::terminating(job) {
        return;
    }
    let ns = meta::namespace(job);
    let name = meta::name(job);
    let uid = meta::uid(job);
    if let Some(at) = finished_at(job) {
        let ttl = job
            .pointer("/spec/ttlSecondsAfterFinished")
            .and_then(|t| t.as_i64());
        let due = ttl
            .zip(parse(&at))
            .is_some_and(|(ttl, at)| at + chrono::Duration::seconds(ttl) <= now);
        if due {
            // As the TTL controller does: the Job and its Pods, in the foreground.
            gc::delete_dependents(store, uid);
            pods::delete(store, JOBS, ns, name, uid);
        }
        return;
    }
    let old = job.get("status").cloned().unwrap_or(json!({}));
    let mut active: Vec<&Value> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| pods::active(p))
        .collect();
    let counted = |phase: &str| owned.iter().filter(|p| pods::phase(p) == phase).count() as i64;
    // Counts never go down: a finished Pod deleted by someone else still counted.
    let succeeded = counted("Succeeded").max(pods::int(&old, "/succeeded", 0));
    let failed = counted("Failed").max(pods::int(&old, "/failed", 0));
    let parallelism = pods::int(job, "/spec/parallelism", 1).max(0);
    let completions = job.pointer("/spec/completions").and_then(|c| c.as_i64());
    let completions = match (completions, job.pointer("/spec/parallelism")) {
        (None, None) => Some(1),
        (c, _) => c,
    };
    let backoff_limit = pods::int(job, "/spec/backoffLimit", 6);
    let suspended = job.pointer("/spec/suspend").and_then(|s| s.as_bool()) == Some(true);
    let stamp = meta::now();
    let start = old
        .get("startTime")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .or_else(|| (!suspended).then(|| stamp.clone()));
    let mut conditions: Vec<Value> = old
        .get("conditions")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();

    let deadline = job
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(|d| d.as_i64());
    let past_deadline = deadline
        .zip(start.as_deref().and_then(parse))
        .is_some_and(|(d, s)| s + chrono::Duration::seconds(d) <= now);
    let failure = if failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if past_deadline {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };
    let mut completion_time = old.get("completionTime").cloned();
    if let Some((reason, message)) = failure {
        for p in active.drain(..) {
            pods::delete(store, PODS, ns, meta::name(p), meta::uid(p));
        }
        add_condition(&mut conditions, "FailureTarget", reason, message, &stamp);
        add_condition(&mut conditions, "Failed", reason, message, &stamp);
    } else if complete {
        for p in active.drain(..) {
            pods::delete(store, PODS, ns, meta::name(p), meta::uid(p));
        }
        let why = "Reached expected number of succeeded pods";
        add_condition(
            &mut conditions,
            "SuccessCriteriaMet",
            "CompletionsReached",
            why,
            &stamp,
        );
        add_condition(
            &mut conditions,
            "Complete",
            "CompletionsReached",
            why,
            &stamp,
        );
        completion_time = Some(json!(stamp));
    } else if suspended {
        for p in active.drain(..) {
            pods::delete(store, PODS, ns, meta::name(p), meta::uid(p));
        }
    } else {
        let want = match completions {
            Some(c) => parallelism.min(c - succeeded),
            None if succeeded > 0 => 0,
            None => parallelism,
        }
        .max(0) as usize;
        if active.len() > want {
            active.sort_by_key(|p| {
                (
                    pods::ready(p),
                    std::cmp::Reverse(meta::meta_str(p, "creationTimestamp").to_string()),
                )
            });
            for p in active.drain(..active.len() - want) {
                pods::delete(store, PODS, ns, meta::name(p), meta::uid(p));
            }
        }
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let owner = pods::owner_ref(job, "batch/v1", "Job");
        let labels = [
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
            ("controller-uid", uid),
            ("job-name", name),
        ];
        let mut made = 0;
        while active.len() + made < want {
            let pod = pods::from_template(&template, ns, owner.clone(), &labels);
            if let Err(e) = pods::create(store, ns, &format!("{name}-"), pod) {
                tracing::warn!(job = %format!("{ns}/{name}"), error = %e.message, "cannot create a Pod");
                break;
            }
            made += 1;
        }
        let ready = active.iter().filter(|p| pods::ready(p)).count();
        let s = status(
            active.len() + made,
            ready,
            succeeded,
            failed,
            start,
            None,
            conditions,
        );
        pods::put_status(store, JOBS, ns, name, uid, &s);
        return;
    }
    let s = status(0, 0, succeeded, failed, start, completion_time, conditions);
    pods::put_status(store, JOBS, ns, name, uid, &s);
}

#[allow(clippy::too_many_arguments)]
fn status(
    active: usize,
    ready: usize,
    succeeded: i64,
    failed: i64,
    start: Option<String>,
    completion: Option<Value>,
    conditions: Vec<Value>,
) -> Value {
    let mut s = Map::new();
    // Counts are left out when zero (omitempty); `ready` and `terminating` are always sent.
    for (k, n) in [
        ("active", active as i64),
        ("succeeded", succeeded),
        ("failed", failed),
    ] {
        if n > 0 {
            s.insert(k.into(), json!(n));
        }
    }
    s.insert("ready".into(), json!(ready));
    s.insert("terminating".into(), json!(0));
    s.insert("uncountedTerminatedPods".into(), json!({}));
    if let Some(t) = start {
        s.insert("startTime".into(), json!(t));
    }
    if let Some(c) = completion {
        s.insert("completionTime".into(), c);
    }
    if !conditions.is_empty() {
        s.insert("conditions".into(), json!(conditions));
    }
    Value::Object(s)
}
