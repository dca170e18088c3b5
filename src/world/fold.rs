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
//! - A pending action has an answer deadline: its entry's time plus the answer deadline the
//!   log's Config marker records. An outcome saying it will be retried moves the deadline on;
//!   a final outcome, or a newer action on the same target, ends it; each `redrive` marker
//!   (the action published again) sets the next one, twice as far each time (up to ten
//!   minutes). [`Fold::overdue`] lists the actions past theirs.
//! - A Config marker's planner settings are kept as recorded ([`Fold::planner_settings`]), so a
//!   fold loaded from a checkpoint knows the configuration in force.
//! - The whole state can be written down and read back exactly ([`checkpoint`]).

pub mod checkpoint;

use super::{Observed, Unreadable, World};
use crate::record::{
    Action, Body, Change, Json, MarkerKind, MarkerRecord, ObjKey, OutcomeRecord, OutcomeResult,
    Redrive, Verb,
};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// How long an action may go without an outcome before it is published again, when the log's
/// Config marker does not say (logs written before answer deadlines existed).
pub const DEFAULT_ANSWER_DEADLINE_MS: u64 = 60_000;

/// The longest wait between two re-drives of one action.
const MAX_REDRIVE_WAIT_MS: u64 = 600_000;

/// The key of the answer deadline in a Config marker's detail (milliseconds).
pub const ANSWER_DEADLINE_KEY: &str = "answerDeadlineMs";

/// When an action without an outcome is due, and how often it was published again.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Due {
    at: DateTime<Utc>,
    action_seq: u64,
    redrives: u32,
}

/// A pending action past its answer deadline: what a re-drive publishes again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overdue {
    /// The action's id.
    pub action_id: String,
    /// The seq of its entry.
    pub action_seq: u64,
    /// The deadline that passed.
    pub due: DateTime<Utc>,
    /// How many times it was published again already.
    pub redrives: u32,
    /// Its target.
    pub target: ObjKey,
    /// Its Application, if any.
    pub app: Option<String>,
}

impl Overdue {
    /// The re-drive marker's detail for this action.
    pub fn redrive(&self) -> Redrive {
        Redrive {
            action_id: self.action_id.clone(),
            action_seq: self.action_seq,
            attempt: self.redrives + 1,
            due: self.due.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
}

/// The world view and the bookkeeping of pending actions, built entry by entry.
#[derive(Clone, Debug, Default)]
pub struct Fold {
    world: World,
    /// Pending action id → its target (only actions still pending).
    pending_ids: BTreeMap<String, ObjKey>,
    /// Targets whose pending action was applied but whose change is not yet observed, with
    /// the resourceVersion the executor reported.
    awaiting: BTreeMap<ObjKey, (String, Option<String>)>,
    /// Answer deadlines of pending actions with no outcome yet, by action id, and the same
    /// ordered by time.
    due: BTreeMap<String, Due>,
    due_order: BTreeSet<(DateTime<Utc>, String)>,
    /// The answer deadline the log's last Config marker recorded (milliseconds).
    answer_deadline_ms: Option<u64>,
    /// The planner settings (`detail.planner`) of the last Config marker that had them, as
    /// recorded.
    planner: Option<Json>,
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

    /// The planner settings the log's last Config marker recorded (its `detail.planner`, as
    /// JSON text), if any: the configuration in force, for a reader that did not see the marker.
    pub fn planner_settings(&self) -> Option<&Json> {
        self.planner.as_ref()
    }

    /// The target of the pending action `action_id`, if it is pending.
    pub fn pending_target(&self, action_id: &str) -> Option<&ObjKey> {
        self.pending_ids.get(action_id)
    }

    /// The answer deadline in force (the last Config marker's, or the default).
    pub fn answer_deadline(&self) -> TimeDelta {
        TimeDelta::milliseconds(
            self.answer_deadline_ms
                .unwrap_or(DEFAULT_ANSWER_DEADLINE_MS)
                .min(i64::MAX as u64) as i64,
        )
    }

    /// The earliest answer deadline of a pending action, if any.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due_order.first().map(|(at, _)| *at)
    }

    /// The pending actions whose answer deadline is `now` or earlier, earliest first.
    pub fn overdue(&self, now: DateTime<Utc>) -> Vec<Overdue> {
        self.due_order
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| {
                let due = self.due.get(id)?;
                let target = self.pending_ids.get(id)?;
                Some(Overdue {
                    action_id: id.clone(),
                    action_seq: due.action_seq,
                    due: due.at,
                    redrives: due.redrives,
                    target: target.clone(),
                    app: self.world.pending(target).and_then(|a| a.app.clone()),
                })
            })
            .collect()
    }

    fn schedule(&mut self, action_id: &str, due: Due) {
        self.unschedule(action_id);
        self.due_order.insert((due.at, action_id.to_string()));
        self.due.insert(action_id.to_string(), due);
    }

    fn unschedule(&mut self, action_id: &str) {
        if let Some(old) = self.due.remove(action_id) {
            self.due_order.remove(&(old.at, action_id.to_string()));
        }
    }

    /// Folds one entry. Returns the key of the object whose observed state changed, if any.
    pub fn apply(&mut self, seq: u64, at: DateTime<Utc>, body: &Body) -> Option<ObjKey> {
        self.apply_prepared(seq, at, body, None)
    }

    /// [`Fold::apply`], given the object of an upsert already parsed (`prepared`: what the
    /// controller observed and recorded as the event's JSON text), so it is not parsed again.
    /// It is used only when its uid and resourceVersion are the event's; else the text is.
    pub fn apply_prepared(
        &mut self,
        seq: u64,
        at: DateTime<Utc>,
        body: &Body,
        prepared: Option<Observed>,
    ) -> Option<ObjKey> {
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
                    let prepared = prepared
                        .filter(|o| o.uid == e.uid && o.resource_version == e.resource_version);
                    let observed = match prepared {
                        Some(o) => o,
                        None => match Observed::from_json(json) {
                            Ok((_, o)) => o,
                            Err(Unreadable::NoIdentity(err)) => {
                                self.rejected.push((seq, format!("{}: {err}", e.key)));
                                return None;
                            }
                            Err(Unreadable::NotJson(err)) => {
                                self.rejected
                                    .push((seq, format!("{}: object is not JSON: {err}", e.key)));
                                return None;
                            }
                        },
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
                    Ok(action) => {
                        let id = action.id.clone();
                        self.world.set_issued(&action.target, a.plan_seq, &id);
                        self.set_pending(action);
                        let at = at + self.answer_deadline();
                        self.schedule(
                            &id,
                            Due {
                                at,
                                action_seq: seq,
                                redrives: 0,
                            },
                        );
                    }
                    Err(err) => self.rejected.push((
                        seq,
                        format!("action {}: object is not JSON: {err}", a.action.id),
                    )),
                }
                None
            }
            Body::Outcome(o) => {
                self.outcome(o, at);
                None
            }
            Body::Marker(m) => {
                self.marker(m, at);
                None
            }
            Body::Plan(_) => None,
        }
    }

    fn marker(&mut self, m: &MarkerRecord, at: DateTime<Utc>) {
        match m.marker {
            MarkerKind::Config => {
                self.answer_deadline_ms = m
                    .detail
                    .get(ANSWER_DEADLINE_KEY)
                    .and_then(serde_json::Value::as_u64);
                if let Some(planner) = m.detail.get("planner") {
                    self.planner = Some(Json::from_value(planner));
                }
            }
            MarkerKind::Redrive => {
                let Some(r) = Redrive::of(m) else { return };
                let Some(due) = self.due.get(&r.action_id).cloned() else {
                    return; // answered or replaced since: nothing more to wait for
                };
                let base = self.answer_deadline().num_milliseconds().max(1) as u64;
                let wait = base
                    .saturating_mul(1u64 << r.attempt.min(16))
                    .min(MAX_REDRIVE_WAIT_MS.max(base));
                self.schedule(
                    &r.action_id,
                    Due {
                        at: at + TimeDelta::milliseconds(wait as i64),
                        action_seq: due.action_seq,
                        redrives: r.attempt,
                    },
                );
            }
            _ => {}
        }
    }

    fn set_pending(&mut self, action: Action) {
        let target = action.target.clone();
        if let Some(old) = self.world.pending(&target) {
            let old = old.id.clone();
            self.pending_ids.remove(&old);
            self.unschedule(&old);
        }
        self.awaiting.remove(&target);
        self.pending_ids.insert(action.id.clone(), target);
        self.world.set_pending(action);
    }

    fn clear(&mut self, target: &ObjKey, action_id: &str) {
        self.world.clear_pending(target, action_id);
        self.pending_ids.remove(action_id);
        self.unschedule(action_id);
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

    fn outcome(&mut self, o: &OutcomeRecord, at: DateTime<Utc>) {
        if o.retry {
            // Delivered again: still on its way, and someone is working on it.
            if let Some(due) = self.due.get(&o.action_id).cloned() {
                let later = at + self.answer_deadline();
                if later > due.at {
                    self.schedule(&o.action_id, Due { at: later, ..due });
                }
            }
            return;
        }
        let Some(target) = self.pending_ids.get(&o.action_id).cloned() else {
            return; // not pending (any more): nothing to settle
        };
        // An answer came: whatever follows, there is nothing more to publish again.
        self.unschedule(&o.action_id);
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
    o.action_id_annotation() == Some(action_id) || o.last_action_id() == Some(action_id)
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
    use crate::model::ACTION_ID_ANNOTATION;
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
    /// An outcome from executor `ex`, first attempt (also used by the checkpoint tests).
    pub(super) fn outcome(id: &str, result: OutcomeResult, rv: Option<&str>, retry: bool) -> Body {
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

    fn config(deadline_ms: u64) -> Body {
        Body::Marker(MarkerRecord {
            marker: MarkerKind::Config,
            detail: json!({ANSWER_DEADLINE_KEY: deadline_ms}),
            state: None,
        })
    }

    fn redrive(id: &str, action_seq: u64, attempt: u32) -> Body {
        Body::Marker(MarkerRecord {
            marker: MarkerKind::Redrive,
            detail: serde_json::to_value(Redrive {
                action_id: id.into(),
                action_seq,
                attempt,
                due: String::new(),
            })
            .unwrap_or_default(),
            state: None,
        })
    }

    /// Folds `(seconds, body)` pairs at the given times.
    fn fold_at(entries: &[(i64, Body)]) -> Fold {
        let mut f = Fold::new();
        for (i, (t, b)) in entries.iter().enumerate() {
            f.apply(i as u64 + 1, at(*t), b);
        }
        f
    }

    #[test]
    fn an_action_without_an_answer_is_due_at_its_deadline_and_backs_off_after_each_redrive() {
        let (id, a) = action(Verb::Apply);
        // No Config marker: the default deadline.
        let f = fold_at(&[(0, a.clone())]);
        assert_eq!(
            f.next_due(),
            Some(at((DEFAULT_ANSWER_DEADLINE_MS / 1000) as i64))
        );
        let f = fold_at(&[(0, config(5_000)), (10, a.clone())]);
        assert_eq!(f.next_due(), Some(at(15)));
        assert!(f.overdue(at(14)).is_empty());
        let overdue = f.overdue(at(15));
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].action_id, id);
        assert_eq!(overdue[0].action_seq, 2);
        assert_eq!(overdue[0].target, key());
        assert_eq!(overdue[0].redrive().attempt, 1);
        // The first re-drive at 15 s waits twice the deadline, the second four times.
        let f = fold_at(&[
            (0, config(5_000)),
            (10, a.clone()),
            (15, redrive(&id, 2, 1)),
        ]);
        assert_eq!(f.next_due(), Some(at(25)));
        assert_eq!(f.overdue(at(25))[0].redrives, 1);
        let f = fold_at(&[
            (0, config(5_000)),
            (10, a.clone()),
            (15, redrive(&id, 2, 1)),
            (25, redrive(&id, 2, 2)),
        ]);
        assert_eq!(f.next_due(), Some(at(45)));
        // A re-drive of an action no longer pending changes nothing.
        let f = fold_at(&[(0, config(5_000)), (1, redrive(&id, 2, 1))]);
        assert_eq!(f.next_due(), None);
    }

    #[test]
    fn an_answer_or_a_newer_action_ends_the_deadline_and_a_retry_moves_it_on() {
        let (id, a) = action(Verb::Apply);
        for result in [
            OutcomeResult::Applied,
            OutcomeResult::NoOp,
            OutcomeResult::Failed,
            OutcomeResult::Superseded,
        ] {
            let f = fold_at(&[
                (0, config(5_000)),
                (1, a.clone()),
                (2, outcome(&id, result, Some("99"), false)),
            ]);
            assert_eq!(f.next_due(), None, "{result:?}");
        }
        // Still being retried by an executor: due a deadline after the retry.
        let f = fold_at(&[
            (0, config(5_000)),
            (1, a.clone()),
            (4, outcome(&id, OutcomeResult::Conflict, None, true)),
        ]);
        assert_eq!(f.next_due(), Some(at(9)));
        // A newer action on the same target replaces the older one's deadline.
        let (newer_id, newer) = action(Verb::Delete);
        let f = fold_at(&[(0, config(5_000)), (1, a), (3, newer)]);
        let overdue = f.overdue(at(100));
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].action_id, newer_id);
        assert_eq!(f.next_due(), Some(at(8)));
    }
}
