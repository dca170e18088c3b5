//! Converging one object: the create, apply or delete that brings what is known of it (observed,
//! or on its way as a pending action) to what a reconciler wants. Shared by every reconciler.

use super::diff::covers;
use crate::record::{Action, ObjKey, Verb};
use crate::world::{Observed, World};
use serde_json::Value;
use std::collections::BTreeMap;

/// Creates or applies `desired` at `key` unless what is known (pending or observed) already
/// covers it. Returns true when nothing needed doing. Never touches unmanaged objects.
#[allow(clippy::too_many_arguments)]
pub(super) fn converge(
    world: &World,
    mut basis: BTreeMap<String, String>,
    key: &ObjKey,
    api_version: &str,
    desired: Value,
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
    let (verb, reason) = match world.pending(key) {
        Some(p) if matches!(p.verb, Verb::Create | Verb::Apply) => {
            match p.object.as_ref().map(|o| covers(o, &desired)) {
                Some(Ok(())) => {
                    return observed.is_some_and(|o| covers(&o.object, &desired).is_ok());
                }
                Some(Err(path)) => {
                    basis.insert("pending".to_string(), p.id.clone());
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
            basis.insert("pending".to_string(), p.id.clone());
            (Verb::Create, "missing (being deleted)".to_string())
        }
        _ => match observed {
            None => (Verb::Create, "missing".to_string()),
            Some(o) => match covers(&o.object, &desired) {
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
        Some(desired),
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

/// The basis of an action read from `key`: its resourceVersion, when observed.
pub(super) fn basis_of(key: &ObjKey, observed: Option<&Observed>) -> BTreeMap<String, String> {
    let mut basis = BTreeMap::new();
    if let Some(o) = observed {
        basis.insert(key.to_string(), o.resource_version.clone());
    }
    basis
}
