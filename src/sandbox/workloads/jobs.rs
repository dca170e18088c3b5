//! The Job controller: Pods run to completion under `parallelism`, `completions`,
//! `backoffLimit` and `activeDeadlineSeconds`, and a status counted from them. It must not
//! touch a Pod's status nor any Pod it does not own.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::sandbox::store::Store;

/// Storage key of Jobs.
pub const JOBS: &str = "batch/jobs";

/// Bring one Job's Pods and status up to date; `owned` are the Pods it controls.
pub fn sync(_store: &Store, _job: &Value, _owned: &[Arc<Value>], _now: DateTime<Utc>) {}
