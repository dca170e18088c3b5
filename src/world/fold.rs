//! The fold: log entries, in order, into the world view the planner reads.
//!
//! The one place both the controller and replay build the planner's input, so they cannot
//! disagree. Pure and deterministic: it reads nothing but the entries it is given.
//!
//! - An event observes or forgets its object.
//! - An action is pending on its target from then on (the planner sees it and does not ask
//!   again) until it is answered: observed on the object (its `logbook.dev/action-id`
//!   annotation, the status's `lastAction`, or the resourceVersion its outcome reported), or
//!   given a final outcome that changed nothing (no-op, superseded, conflict, failed,
//!   abandoned). An `applied` outcome keeps it pending until the change is observed, so a
//!   plan between the outcome and the watch event does not ask for it again.
//! - Every entry moves the planner's "now" to its own timestamp.

use super::{Observed, World};
use crate::model::ACTION_ID_ANNOTATION;
use crate::record::{Action, Body, Change, ObjKey, OutcomeRecord, OutcomeResult, Verb};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;

/// The world view and the bookkeeping of pending actions, built entry by entry.
#[derive(Clone, Debug, Default)]
pub struct Fold {
    world: World,
    /// Pending action id → its target (only actions still pending).
    pending_ids: BTreeMap<String, ObjKey>,
    /// Targets whose pending action was applied but whose change is not yet observed, with
    /// the resourceVersion the executor reported.
    awaiting: BTreeMap<ObjKey, (String, Option<String>)>,
    last_seq: u64,
    /// Entries that could not be folded (e.g. an Application whose spec does not parse), with
    /// why; they change nothing.
    rejected: Vec<(u64, String)>,
}

impl Fold {
    /// An empty fold (an empty log).
    pub fn new() -> Fold {
        Fold::default()
    }

    /// The world view after the last entry folded.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The seq of the last entry folded (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Entries that changed nothing because they could not be read, with why.
    pub fn rejected(&self) -> &[(u64, String)] {
        &self.rejected
    }

    /// Folds one entry. Returns the key of the object whose observed state changed, if any.
    pub fn apply(&mut self, seq: u64, at: DateTime<Utc>, body: &Body) -> Option<ObjKey> {
        self.last_seq = seq;
        self.world
            .set_now(Some(at.to_rfc3339_opts(SecondsFormat::Secs, true)));
        match body {
            Body::Event(e) => match e.change {
                Change::Upsert => {
                    let Some(json) = &e.object else {
                        self.rejected
                            .push((seq, format!("{}: an upsert without an object", e.key)));
                        return None;
                    };
                    let observed = match json.parse() {
                        Ok(v) => match Observed::from_value(v) {
                            Ok((_, o)) => o,
                            Err(err) => {
                                self.rejected.push((seq, format!("{}: {err}", e.key)));
                                return None;
                            }
                        },
                        Err(err) => {
                            self.rejected
                                .push((seq, format!("{}: object is not JSON: {err}", e.key)));
                            return None;
                        }
                    };
                    if let Err(err) = self.world.observe(e.key.clone(), observed) {
                        self.rejected.push((seq, err));
                        return None;
                    }
                    self.settle_observed(&e.key);
                    Some(e.key.clone())
                }
                Change::Delete => {
                    self.world.forget(&e.key);
                    if let Some(p) = self.world.pending(&e.key)
                        && p.verb == Verb::Delete
                    {
                        let id = p.id.clone();
                        self.clear(&e.key, &id);
                    }
                    Some(e.key.clone())
                }
            },
            Body::Action(a) => {
                match a.action.to_action() {
                    Ok(action) => self.set_pending(action),
                    Err(err) => self.rejected.push((
                        seq,
                        format!("action {}: object is not JSON: {err}", a.action.id),
                    )),
                }
                None
            }
            Body::Outcome(o) => {
                self.outcome(o);
                None
            }
            Body::Plan(_) | Body::Marker(_) => None,
        }
    }

    fn set_pending(&mut self, action: Action) {
        let target = action.target.clone();
        if let Some(old) = self.world.pending(&target) {
            self.pending_ids.remove(&old.id.clone());
        }
        self.awaiting.remove(&target);
        self.pending_ids.insert(action.id.clone(), target);
        self.world.set_pending(action);
    }

    fn clear(&mut self, target: &ObjKey, action_id: &str) {
        self.world.clear_pending(target, action_id);
        self.pending_ids.remove(action_id);
        if self
            .awaiting
            .get(target)
            .is_some_and(|(id, _)| id == action_id)
        {
            self.awaiting.remove(target);
        }
    }

    /// After an upsert of `key`: clears its pending action when the object shows it.
    fn settle_observed(&mut self, key: &ObjKey) {
        let Some(p) = self.world.pending(key) else {
            return;
        };
        if p.verb == Verb::Delete {
            return;
        }
        let id = p.id.clone();
        let Some(o) = self.world.object(key) else {
            return;
        };
        let reported = self
            .awaiting
            .get(key)
            .filter(|(a, _)| *a == id)
            .and_then(|(_, rv)| rv.as_deref());
        if shows(o, &id) || reported.is_some_and(|rv| reached(&o.resource_version, rv)) {
            self.clear(key, &id);
        }
    }

    fn outcome(&mut self, o: &OutcomeRecord) {
        if o.retry {
            return; // delivered again: still on its way
        }
        let Some(target) = self.pending_ids.get(&o.action_id).cloned() else {
            return; // not pending (any more): nothing to settle
        };
        let Some(p) = self.world.pending(&target) else {
            return;
        };
        if o.result != OutcomeResult::Applied {
            self.clear(&target, &o.action_id);
            return;
        }
        let seen = match (p.verb, self.world.object(&target)) {
            (Verb::Delete, obj) => obj.is_none(),
            (_, Some(obj)) => {
                shows(obj, &o.action_id)
                    || o.resource_version
                        .as_deref()
                        .is_none_or(|rv| reached(&obj.resource_version, rv))
            }
            (_, None) => o.resource_version.is_none(),
        };
        if seen {
            self.clear(&target, &o.action_id);
        } else {
            self.awaiting
                .insert(target, (o.action_id.clone(), o.resource_version.clone()));
        }
    }
}

/// True when the observed object carries `action_id`: as its action annotation, or (an
/// Application's status) as `status.lastAction.actionId`.
fn shows(o: &Observed, action_id: &str) -> bool {
    let annotated = o
        .object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ACTION_ID_ANNOTATION))
        .and_then(|v| v.as_str())
        == Some(action_id);
    annotated
        || o.object
            .pointer("/status/lastAction/actionId")
            .and_then(|v| v.as_str())
            == Some(action_id)
}

/// True when resourceVersion `seen` is `wanted` or later. resourceVersions are opaque strings
/// in general; when both are integers (etcd's, and the sandbox's) they are compared as such.
fn reached(seen: &str, wanted: &str) -> bool {
    match (seen.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(s), Ok(w)) => s >= w,
        _ => seen == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ActionRecord, Json, ObservedEvent};
    use chrono::TimeZone;
    use serde_json::json;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }
    fn key() -> ObjKey {
        ObjKey::new("Deployment", "shop", "web")
    }
    fn deployment(rv: &str, action: Option<&str>) -> Body {
        let mut obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": rv}});
        if let Some(a) = action {
            obj["metadata"]["annotations"] = json!({ACTION_ID_ANNOTATION: a});
        }
        Body::Event(ObservedEvent {
            change: Change::Upsert,
            key: key(),
            api_version: "apps/v1".into(),
            uid: "u1".into(),
            resource_version: rv.into(),
            object: Some(Json::from_value(&obj)),
            synthesized: false,
        })
    }
    fn deleted() -> Body {
        Body::Event(ObservedEvent {
            change: Change::Delete,
            key: key(),
            api_version: "apps/v1".into(),
            uid: "u1".into(),
            resource_version: "20".into(),
            object: None,
            synthesized: false,
        })
    }
    fn action(verb: Verb) -> (String, Body) {
        let object = (verb != Verb::Delete).then(|| json!({"kind": "Deployment"}));
        let a = Action::new(
            verb,
            key(),
            "apps/v1",
            None,
            object,
            None,
            "test".into(),
            Default::default(),
        );
        (
            a.id.clone(),
            Body::Action(ActionRecord {
                plan_seq: 1,
                action: a.into(),
            }),
        )
    }
    fn outcome(id: &str, result: OutcomeResult, rv: Option<&str>, retry: bool) -> Body {
        Body::Outcome(OutcomeRecord {
            action_id: id.into(),
            result,
            message: String::new(),
            executor: "ex".into(),
            attempt: 1,
            resource_version: rv.map(str::to_string),
            retry,
        })
    }
    fn fold(bodies: &[Body]) -> Fold {
        let mut f = Fold::new();
        for (i, b) in bodies.iter().enumerate() {
            f.apply(i as u64 + 1, at(i as i64), b);
        }
        f
    }

    #[test]
    fn an_applied_action_stays_pending_until_its_version_is_observed() {
        let (id, a) = action(Verb::Apply);
        let applied = outcome(&id, OutcomeResult::Applied, Some("10"), false);
        let f = fold(&[deployment("5", None), a.clone(), applied.clone()]);
        assert!(
            f.world().pending(&key()).is_some(),
            "applied but not yet seen"
        );
        let f = fold(&[
            deployment("5", None),
            a.clone(),
            applied.clone(),
            deployment("9", None),
        ]);
        assert!(
            f.world().pending(&key()).is_some(),
            "an older version does not settle it"
        );
        let f = fold(&[
            deployment("5", None),
            a.clone(),
            applied,
            deployment("10", None),
        ]);
        assert!(f.world().pending(&key()).is_none());
        assert_eq!(f.world().now(), Some("2027-01-15T08:00:03Z"));
        // The annotation alone settles it, outcome or not.
        let f = fold(&[a, deployment("11", Some(&id))]);
        assert!(f.world().pending(&key()).is_none());
    }

    #[test]
    fn retried_outcomes_keep_it_pending_and_final_failures_clear_it() {
        let (id, a) = action(Verb::Apply);
        let f = fold(&[a.clone(), outcome(&id, OutcomeResult::Conflict, None, true)]);
        assert!(f.world().pending(&key()).is_some());
        for result in [
            OutcomeResult::Failed,
            OutcomeResult::Abandoned,
            OutcomeResult::Superseded,
            OutcomeResult::NoOp,
        ] {
            let f = fold(&[a.clone(), outcome(&id, result, None, false)]);
            assert!(f.world().pending(&key()).is_none(), "{result:?}");
        }
        // An outcome for an action no longer pending changes nothing.
        let (id2, b) = action(Verb::Create);
        let f = fold(&[a, b, outcome(&id, OutcomeResult::Failed, None, false)]);
        assert_eq!(f.world().pending(&key()).map(|p| p.id.clone()), Some(id2));
    }

    #[test]
    fn a_delete_stays_pending_until_the_object_is_gone() {
        let (id, a) = action(Verb::Delete);
        let applied = outcome(&id, OutcomeResult::Applied, None, false);
        let f = fold(&[deployment("5", None), a.clone(), applied.clone()]);
        assert!(f.world().pending(&key()).is_some());
        let f = fold(&[deployment("5", None), a, applied, deleted()]);
        assert!(f.world().pending(&key()).is_none());
        assert!(f.world().object(&key()).is_none());
    }
}
