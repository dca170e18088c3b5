//! Converging one object: the create, apply or delete that brings what is known of it (observed,
//! or on its way as a pending action) to what a reconciler wants. Shared by every reconciler.

use super::diff::covers;
use crate::record::{Action, FENCE_OVERRIDE, ObjKey, Verb};
use crate::world::{Observed, World};
use serde_json::Value;
use std::collections::BTreeMap;

/// The basis key naming the pending action a new one follows (it changed since).
pub(super) const PENDING: &str = "pending";

/// Creates or applies `desired` at `key` unless what is known (pending or observed) already
/// covers it. Returns true when nothing needed doing. Never touches unmanaged objects.
#[allow(clippy::too_many_arguments)]
pub(super) fn converge(
    world: &World,
    mut basis: BTreeMap<String, String>,
    key: &ObjKey,
    api_version: &str,
    desired: &Value,
    app: Option<String>,
    out: &mut Vec<Action>,
) -> bool {
    let observed = world.object(key);
    if observed.is_some_and(|o| !o.is_managed()) {
        // Someone else's object with our name: never touched.
        return false;
    }
    if let Some(o) = observed {
        basis.insert(key.to_string(), o.resource_version.clone());
    }
    if let Some((carried, why)) = observed.and_then(|o| forged(world, key, o.fencing_token())) {
        // A token the log never issued would make every repair look superseded: overwrite it.
        if world
            .pending(key)
            .is_some_and(|p| p.basis.get(FENCE_OVERRIDE) == Some(&carried.to_string()))
        {
            return false; // the repair is on its way
        }
        basis.insert(FENCE_OVERRIDE.to_string(), carried.to_string());
        out.push(Action::new(
            Verb::Apply,
            key.clone(),
            api_version,
            app,
            Some(desired.clone()),
            None,
            format!("drift: {why}"),
            basis,
        ));
        return false;
    }
    let (verb, reason) = match world.pending(key) {
        Some(p) if matches!(p.verb, Verb::Create | Verb::Apply) => {
            match p.object.as_ref().map(|o| covers(o, desired)) {
                Some(Ok(())) => {
                    return observed.is_some_and(|o| covers(o.object(), desired).is_ok());
                }
                Some(Err(path)) => {
                    basis.insert(PENDING.to_string(), p.id.clone());
                    (
                        if observed.is_some() {
                            Verb::Apply
                        } else {
                            Verb::Create
                        },
                        format!("changed at {path} since the last action"),
                    )
                }
                None => (Verb::Apply, "pending action has no object".to_string()),
            }
        }
        Some(p) if p.verb == Verb::Delete => {
            basis.insert(PENDING.to_string(), p.id.clone());
            (Verb::Create, "missing (being deleted)".to_string())
        }
        _ => match observed {
            None => (Verb::Create, "missing".to_string()),
            Some(o) => match covers(o.object(), desired) {
                Ok(()) => return true,
                Err(path) => (Verb::Apply, format!("drift at {path}")),
            },
        },
    };
    out.push(Action::new(
        verb,
        key.clone(),
        api_version,
        app,
        Some(desired.clone()),
        None,
        reason,
        basis,
    ));
    false
}

/// Deletes the managed object at `key` (with its uid as precondition) unless a delete is
/// already on its way. Never touches unmanaged objects.
pub(super) fn delete(
    world: &World,
    key: &ObjKey,
    app: Option<String>,
    reason: &str,
    out: &mut Vec<Action>,
) {
    let Some(o) = world.object(key) else { return };
    if !o.is_managed() || world.pending(key).is_some_and(|p| p.verb == Verb::Delete) {
        return;
    }
    let uid = (!o.uid.is_empty()).then(|| o.uid.clone());
    let basis = basis_of(key, Some(o));
    out.push(Action::new(
        Verb::Delete,
        key.clone(),
        &o.api_version,
        app,
        None,
        uid,
        reason.to_string(),
        basis,
    ));
}

/// The token `(plan sequence, action id)` an object at `key` carries, with why the log never
/// issued it, when it did not.
pub(super) fn forged(
    world: &World,
    key: &ObjKey,
    token: Option<(u64, Option<&str>)>,
) -> Option<(u64, String)> {
    let (seq, id) = token?;
    world.forged_token(key, seq, id).map(|why| (seq, why))
}

/// The basis of an action read from `key`: its resourceVersion, when observed.
pub(super) fn basis_of(key: &ObjKey, observed: Option<&Observed>) -> BTreeMap<String, String> {
    let mut basis = BTreeMap::new();
    if let Some(o) = observed {
        basis.insert(key.to_string(), o.resource_version.clone());
    }
    basis
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ACTION_ID_ANNOTATION, MANAGED_BY, MANAGER, PLAN_SEQ_ANNOTATION};
    use crate::record::{
        ActionRecord, Body, Change, Json, ObservedEvent, OutcomeRecord, OutcomeResult,
    };
    use crate::world::Fold;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn key() -> ObjKey {
        ObjKey::new("Deployment", "shop", "web")
    }

    fn desired() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 2}})
    }

    /// A world where the log issued one action (plan 5) for the Deployment, answered, and then
    /// observed the Deployment carrying the token `(plan_seq, action_id)`.
    fn world_with_token(plan_seq: &str, action_id: Option<&str>) -> (World, String) {
        let issued = Action::new(
            Verb::Apply,
            key(),
            "apps/v1",
            None,
            Some(desired()),
            None,
            "test".into(),
            BTreeMap::new(),
        );
        let mut object = desired();
        object["metadata"]["resourceVersion"] = json!("7");
        object["metadata"]["uid"] = json!("u1");
        object["metadata"]["labels"] = json!({MANAGED_BY: MANAGER});
        object["metadata"]["annotations"] = json!({
            PLAN_SEQ_ANNOTATION: plan_seq,
            ACTION_ID_ANNOTATION: action_id.unwrap_or(&issued.id),
        });
        let id = issued.id.clone();
        let bodies = [
            Body::Action(ActionRecord {
                plan_seq: 5,
                action: issued.into(),
            }),
            Body::Outcome(OutcomeRecord {
                action_id: id.clone(),
                result: OutcomeResult::NoOp,
                message: String::new(),
                executor: "ex".into(),
                attempt: 1,
                resource_version: None,
                retry: false,
            }),
            Body::Event(ObservedEvent {
                change: Change::Upsert,
                key: key(),
                api_version: "apps/v1".into(),
                uid: "u1".into(),
                resource_version: "7".into(),
                object: Some(Json::from_value(&object)),
                synthesized: false,
            }),
        ];
        let mut fold = Fold::new();
        for (i, b) in bodies.iter().enumerate() {
            fold.apply(i as u64 + 6, DateTime::<Utc>::UNIX_EPOCH, b);
        }
        (fold.world().clone(), id)
    }

    fn plan(world: &World) -> Vec<Action> {
        let mut out = Vec::new();
        converge(
            world,
            BTreeMap::new(),
            &key(),
            "apps/v1",
            &desired(),
            None,
            &mut out,
        );
        out
    }

    #[test]
    fn a_fencing_token_the_log_issued_is_trusted() {
        let (world, _) = world_with_token("5", None);
        assert_eq!(plan(&world), vec![]);
        // An older plan's token: cannot be told from one the log issued and replaced.
        let (world, _) = world_with_token("3", Some("act-older"));
        assert_eq!(plan(&world), vec![]);
    }

    #[test]
    fn a_fencing_token_the_log_never_issued_is_drift_and_is_overwritten() {
        for (seq, id, why) in [
            (
                "999999999",
                None,
                "beyond the newest the log issued for it (5)",
            ),
            ("5", Some("act-forged"), "which the log never issued"),
        ] {
            let (world, _) = world_with_token(seq, id);
            let actions = plan(&world);
            assert_eq!(actions.len(), 1, "{actions:?}");
            let a = &actions[0];
            assert_eq!(a.verb, Verb::Apply);
            assert!(a.reason.starts_with("drift: "), "{}", a.reason);
            assert!(a.reason.contains(why), "{}", a.reason);
            assert_eq!(a.basis.get(FENCE_OVERRIDE), Some(&seq.to_string()));
            // Once that repair is on its way, it is not asked for again.
            let mut world = world.clone();
            world.set_pending(a.clone());
            assert_eq!(plan(&world), vec![]);
        }
    }
}
