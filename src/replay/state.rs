//! `state --at`: the world as the controller saw it at a point of the log, as a `v1 List`
//! that kubectl reads: Applications and managed objects as observed, pending actions marked.

use super::{Point, ReplayError, check_within};
use crate::log::LogReader;
use crate::record::Verb;
use crate::world::Fold;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Annotation on an object in `state` output: the action on its way to it (`verb id (plan
/// seq)`), planned but not yet observed done.
pub const PENDING_ANNOTATION: &str = "logbook.dev/pending-action";
/// Annotation on an item of `state` output that was not observed but is being created.
pub const STATE_ANNOTATION: &str = "logbook.dev/replay-state";

/// The world folded up to a point.
pub struct WorldAt {
    /// The last entry folded.
    pub seq: u64,
    /// When it was written (`None`: empty log).
    pub at: Option<DateTime<Utc>>,
    /// The fold itself (its world view and pending actions).
    pub fold: Fold,
}

/// Folds the log up to `point` (which must lie within it).
pub fn world_at(
    reader: &LogReader,
    point: Point,
    progress: Option<&dyn Fn(u64)>,
) -> Result<WorldAt, ReplayError> {
    check_within(reader, point)?;
    let upto = match point {
        Point::Seq(s) => s,
        Point::Time(_) => reader.last_seq()?,
    };
    let mut fold = Fold::new();
    let mut at = None;
    for e in reader.range(1..=upto) {
        let e = e?;
        if !point.includes(&e) {
            break;
        }
        if let Some(p) = progress
            && e.seq % super::PROGRESS_EVERY == 0
        {
            p(e.seq);
        }
        fold.apply(e.seq, e.at, &e.body);
        at = Some(e.at);
    }
    Ok(WorldAt {
        seq: fold.last_seq(),
        at,
        fold,
    })
}

/// The world as a `v1 List`: every observed object (of `namespace`, when given) in key order,
/// annotated with its pending action, then the objects being created, as their actions ask.
/// Server-owned metadata (resourceVersion, uid, ...) stays, as `kubectl get -o yaml` shows it.
pub fn state_document(world_at: &WorldAt, namespace: Option<&str>) -> Value {
    let world = world_at.fold.world();
    let wanted = |ns: &str| namespace.is_none_or(|n| n == ns);
    let mut items = Vec::new();
    for (key, observed) in world.objects() {
        if !wanted(&key.namespace) {
            continue;
        }
        let mut object = observed.object.clone();
        if let Some(p) = world.pending(key) {
            annotate(&mut object, PENDING_ANNOTATION, &pending_text(p));
        }
        items.push(object);
    }
    for action in world.pending_actions() {
        if !wanted(&action.target.namespace) || world.object(&action.target).is_some() {
            continue;
        }
        if action.verb == Verb::Delete {
            continue; // already gone from what was observed
        }
        let Some(mut object) = action.object.clone() else {
            continue;
        };
        annotate(&mut object, STATE_ANNOTATION, "pending-create");
        annotate(&mut object, PENDING_ANNOTATION, &pending_text(action));
        items.push(object);
    }
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {},
        "items": items,
    })
}

fn pending_text(a: &crate::record::Action) -> String {
    format!("{} {} ({})", a.verb, a.id, a.reason)
}

fn annotate(object: &mut Value, name: &str, value: &str) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(name.to_string(), Value::String(value.to_string()));
    }
}
