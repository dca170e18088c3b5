//! `state --at`: the world as the controller saw it at a point of the log, as a `v1 List`
//! that kubectl reads: Applications and managed objects as observed, pending actions marked.

use super::start::{Start, start_from};
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
    /// The checkpoint it was folded from (`None`: the start of the log).
    pub started_from: Option<u64>,
    /// Checkpoints passed over on the way there, and why (or that there was none).
    pub notes: Vec<String>,
}

/// Folds the log up to `point` (which must lie within it), from its start.
pub fn world_at(
    reader: &LogReader,
    point: Point,
    progress: Option<&dyn Fn(u64)>,
) -> Result<WorldAt, ReplayError> {
    world_at_from(reader, point, 1, progress)
}

/// Folds the log up to `point` (which must lie within it), starting from the nearest
/// checkpoint at or before entry `from` (the start of the log when there is none; `from` 0
/// or 1: the start). Entries before that checkpoint are not read, so a time `point` is looked
/// for from there on. `from` must not lie after `point`.
pub fn world_at_from(
    reader: &LogReader,
    point: Point,
    from: u64,
    progress: Option<&dyn Fn(u64)>,
) -> Result<WorldAt, ReplayError> {
    check_within(reader, point)?;
    let upto = match point {
        Point::Seq(s) => s,
        Point::Time(_) => reader.last_seq()?,
    };
    let after = || ReplayError::FromAfter {
        path: reader.path().to_path_buf(),
        from,
        point: point.to_string(),
    };
    if matches!(point, Point::Seq(s) if from > s) {
        return Err(after());
    }
    let start = if from > 1 {
        start_from(reader, from)?
    } else {
        Start::beginning()
    };
    let started_from = start.checkpoint;
    let mut fold = start.fold;
    let mut at = None;
    for e in reader.range(start.first..=upto) {
        let e = e?;
        if !point.includes(&e) {
            if Some(e.seq) == started_from {
                return Err(after()); // the checkpoint itself lies after the time asked about
            }
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
        started_from,
        notes: start.notes,
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
        let mut object = observed.object().clone();
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
