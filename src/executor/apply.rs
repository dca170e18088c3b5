//! One attempt at one action against the cluster: read the fencing token, then write or skip.
//! Owns the idempotent create/apply/delete/status steps; it never plans and never touches the bus.

use super::api::{Failure, TargetApi};
use super::remit::{self, Remit};
use crate::bus::wire::ActionMessage;
use crate::model::{ACTION_ID_ANNOTATION, PLAN_SEQ_ANNOTATION};
use crate::record::{FENCE_OVERRIDE, OutcomeResult, Verb};
use kube::api::{DeleteParams, DynamicObject, Preconditions};
use serde_json::{Map, Value, json};

/// What one attempt came to, before the delivery count turns it into an outcome and an ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Applied, no-op, superseded, conflict or failed.
    pub result: OutcomeResult,
    /// What happened, for humans (the API's message verbatim on errors).
    pub message: String,
    /// The object's resourceVersion after the attempt, when known.
    pub resource_version: Option<String>,
    /// Whether another delivery could succeed (transient failure, conflict).
    pub retry: bool,
}

impl Attempt {
    /// Outside logbook's remit: nothing was done, and no delivery will do it.
    fn refused(why: &str, resource_version: Option<String>) -> Self {
        Attempt::done(
            OutcomeResult::Failed,
            format!("refused: {why}; nothing was changed"),
            resource_version,
        )
    }

    fn done(result: OutcomeResult, message: String, resource_version: Option<String>) -> Self {
        Attempt {
            result,
            message,
            resource_version,
            retry: false,
        }
    }

    /// A failed request: conflicts and transient failures are retried, the rest is final.
    /// (`NotFound` is handled by each verb before it gets here: there it is final.)
    fn failed(failure: Failure) -> Self {
        let (result, retry) = match &failure {
            Failure::Conflict(_) => (OutcomeResult::Conflict, true),
            Failure::Transient(_) => (OutcomeResult::Failed, true),
            Failure::NotFound(_) | Failure::Permanent(_) => (OutcomeResult::Failed, false),
        };
        Attempt {
            result,
            message: failure.message().to_string(),
            resource_version: None,
            retry,
        }
    }
}

/// Applies `msg` once, idempotently, if it is within `remit`; never panics on what the cluster
/// or the message holds.
pub async fn attempt(client: &kube::Client, msg: &ActionMessage, remit: &Remit) -> Attempt {
    let action = &msg.action;
    if let Err(why) = remit.check(action) {
        return Attempt::refused(&why, None);
    }
    let api = match TargetApi::new(client, &action.id, &action.api_version, &action.target) {
        Ok(api) => api,
        Err(f) => return Attempt::failed(f),
    };
    let result = match action.verb {
        Verb::Create | Verb::Apply => create_or_apply(&api, msg).await,
        Verb::Delete => delete(&api, msg).await,
        Verb::Status => status(&api, msg).await,
    };
    result.unwrap_or_else(Attempt::failed)
}

/// The plan sequence an object carries, from its annotation (absent or unreadable: none).
fn plan_seq_of(obj: &DynamicObject) -> Option<u64> {
    let value = obj
        .metadata
        .annotations
        .as_ref()?
        .get(PLAN_SEQ_ANNOTATION)?;
    match value.parse() {
        Ok(seq) => Some(seq),
        Err(_) => {
            tracing::warn!(
                annotation = PLAN_SEQ_ANNOTATION,
                value = %value,
                "the object's plan sequence annotation is not a number; treating it as absent"
            );
            None
        }
    }
}

/// True when the action was planned to overwrite exactly this token, which the log never
/// issued (see [`FENCE_OVERRIDE`]); the signature on the action says the controller asked.
fn overrides(msg: &ActionMessage, carried: u64) -> bool {
    msg.action.basis.get(FENCE_OVERRIDE) == Some(&carried.to_string())
}

/// Refuses an object found in the cluster that is not logbook's (no managed-by label).
fn unmanaged(msg: &ActionMessage, current: &DynamicObject, what: &str) -> Result<(), String> {
    remit::check_existing(
        &msg.action.target.kind,
        current.metadata.labels.as_ref(),
        what,
    )
}

fn action_id_of(obj: &DynamicObject) -> Option<&str> {
    obj.metadata
        .annotations
        .as_ref()?
        .get(ACTION_ID_ANNOTATION)
        .map(String::as_str)
}

fn superseded(what: &str, carried: u64, msg: &ActionMessage, rv: Option<String>) -> Attempt {
    Attempt::done(
        OutcomeResult::Superseded,
        format!(
            "{what} already carries plan {carried}, newer than this action's plan {}: not \
             applied",
            msg.plan_seq
        ),
        rv,
    )
}

/// The action's object with the fencing annotations stamped on, and the resourceVersion
/// precondition (`Some`) or none (`None`, for a create).
fn stamped(msg: &ActionMessage, rv: Option<&str>) -> Result<Value, Failure> {
    let action = &msg.action;
    let Some(Value::Object(object)) = &action.object else {
        return Err(Failure::Permanent(format!(
            "the {} action carries no object to write (expected a JSON object)",
            action.verb
        )));
    };
    let mut object = object.clone();
    object
        .entry("apiVersion")
        .or_insert_with(|| Value::String(action.api_version.clone()));
    object
        .entry("kind")
        .or_insert_with(|| Value::String(action.target.kind.clone()));
    let meta = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        return Err(Failure::Permanent(
            "the action's object has a metadata that is not a JSON object".to_string(),
        ));
    }
    if let Value::Object(meta) = meta {
        meta.entry("name")
            .or_insert_with(|| Value::String(action.target.name.clone()));
        if !action.target.namespace.is_empty() {
            meta.entry("namespace")
                .or_insert_with(|| Value::String(action.target.namespace.clone()));
        }
        match rv {
            Some(rv) => meta.insert("resourceVersion".into(), Value::String(rv.to_string())),
            None => meta.remove("resourceVersion"),
        };
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(Map::new());
        }
        if let Value::Object(a) = annotations {
            a.insert(
                ACTION_ID_ANNOTATION.into(),
                Value::String(action.id.clone()),
            );
            a.insert(
                PLAN_SEQ_ANNOTATION.into(),
                Value::String(msg.plan_seq.to_string()),
            );
        }
    }
    Ok(Value::Object(object))
}

/// Create or apply: a create is first tried as a POST; otherwise skip when the object carries
/// a newer plan or this very action, apply with the resourceVersion just read as
/// precondition, and POST when it does not exist.
async fn create_or_apply(api: &TargetApi<'_>, msg: &ActionMessage) -> Result<Attempt, Failure> {
    let what = api.what();
    if msg.action.verb == Verb::Create {
        // The planner saw no object: create it in one request instead of a read and a write.
        // If it exists after all (409), read its fencing token below like any apply.
        match create_missing(api, msg).await {
            Err(Failure::Conflict(_)) => {}
            other => return other,
        }
    }
    match api.get().await {
        Ok(current) => {
            let rv = current.metadata.resource_version.clone();
            if let Err(why) = unmanaged(msg, &current, what) {
                return Ok(Attempt::refused(&why, rv));
            }
            if let Some(carried) = plan_seq_of(&current)
                && carried > msg.plan_seq
                && !overrides(msg, carried)
            {
                return Ok(superseded(what, carried, msg, rv));
            }
            if action_id_of(&current) == Some(msg.action.id.as_str()) {
                return Ok(Attempt::done(
                    OutcomeResult::NoOp,
                    format!("{what} already carries this action (applied by an earlier delivery)"),
                    rv,
                ));
            }
            let Some(read_rv) = rv.clone() else {
                return Err(Failure::Transient(format!(
                    "{what} was read without a resourceVersion; cannot apply it safely"
                )));
            };
            let object = stamped(msg, Some(&read_rv))?;
            match api.apply(&object, false).await {
                Ok(applied) => {
                    let new_rv = applied.metadata.resource_version;
                    if new_rv.as_deref() == Some(read_rv.as_str()) {
                        Ok(Attempt::done(
                            OutcomeResult::NoOp,
                            format!("{what} applied; the server changed nothing"),
                            new_rv,
                        ))
                    } else {
                        Ok(Attempt::done(
                            OutcomeResult::Applied,
                            format!("{what} applied (server-side apply, field manager logbook)"),
                            new_rv,
                        ))
                    }
                }
                // Deleted between the read and the write: the next delivery creates it.
                Err(Failure::NotFound(m)) => Err(Failure::Conflict(format!(
                    "{m} (it was deleted after being read; will try again)"
                ))),
                Err(f) => Err(f),
            }
        }
        Err(Failure::NotFound(_)) => create_missing(api, msg).await,
        Err(f) => Err(f),
    }
}

/// POSTs the object (never server-side apply: a concurrent create by another executor must
/// fail with 409, not be overwritten by whichever write lands last).
async fn create_missing(api: &TargetApi<'_>, msg: &ActionMessage) -> Result<Attempt, Failure> {
    let object = stamped(msg, None)?;
    match api.create(&object).await {
        Ok(created) => Ok(Attempt::done(
            OutcomeResult::Applied,
            format!("{} created", api.what()),
            created.metadata.resource_version,
        )),
        // The namespace (or the kind) does not exist: retrying will not create it.
        Err(Failure::NotFound(m)) => Err(Failure::Permanent(m)),
        // Someone (another executor) created it meanwhile: the next delivery reads its
        // fencing token.
        Err(f) => Err(f),
    }
}

/// Delete: gone already is a no-op; skip an object carrying a newer plan or another uid; delete
/// with uid and resourceVersion preconditions.
async fn delete(api: &TargetApi<'_>, msg: &ActionMessage) -> Result<Attempt, Failure> {
    let what = api.what();
    let current = match api.get().await {
        Ok(current) => current,
        Err(Failure::NotFound(_)) => {
            return Ok(Attempt::done(
                OutcomeResult::NoOp,
                format!("{what} is already gone"),
                None,
            ));
        }
        Err(f) => return Err(f),
    };
    let rv = current.metadata.resource_version.clone();
    if let Err(why) = unmanaged(msg, &current, what) {
        return Ok(Attempt::refused(&why, rv));
    }
    if let Some(carried) = plan_seq_of(&current)
        && carried > msg.plan_seq
        && !overrides(msg, carried)
    {
        return Ok(superseded(what, carried, msg, rv));
    }
    let read_uid = current.metadata.uid.clone();
    if let Some(want) = &msg.action.uid
        && read_uid.as_deref() != Some(want.as_str())
    {
        // The object the action was planned for is gone; this one is another object with the
        // same name. The precondition can never hold: final, not retried.
        return Ok(Attempt::done(
            OutcomeResult::Conflict,
            format!(
                "{what} has uid {}, not {want} as the action requires (it was replaced since \
                 the action was planned): not deleted",
                read_uid.as_deref().unwrap_or("(none)")
            ),
            rv,
        ));
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: msg.action.uid.clone().or(read_uid),
            resource_version: rv.clone(),
        }),
        ..Default::default()
    };
    match api.delete(&params).await {
        Ok(()) => Ok(Attempt::done(
            OutcomeResult::Applied,
            format!("{what} deleted"),
            None,
        )),
        Err(Failure::NotFound(_)) => Ok(Attempt::done(
            OutcomeResult::NoOp,
            format!("{what} is already gone"),
            None,
        )),
        Err(f) => Err(f),
    }
}

/// Status: skip when the Application carries a newer plan's status or this action's; write the
/// status subresource stamped with `lastAction`, with the resourceVersion just read.
async fn status(api: &TargetApi<'_>, msg: &ActionMessage) -> Result<Attempt, Failure> {
    let what = api.what();
    let gone = || {
        Attempt::done(
            OutcomeResult::NoOp,
            format!("{what} is gone: there is no status to write"),
            None,
        )
    };
    let current = match api.get().await {
        Ok(current) => current,
        Err(Failure::NotFound(_)) => return Ok(gone()),
        Err(f) => return Err(f),
    };
    let rv = current.metadata.resource_version.clone();
    let last = current.data.pointer("/status/lastAction");
    let carried = last.and_then(|l| l.get("planSeq")).and_then(Value::as_u64);
    if let Some(carried) = carried
        && carried > msg.plan_seq
        && !overrides(msg, carried)
    {
        return Ok(superseded(
            &format!("the status of {what}"),
            carried,
            msg,
            rv,
        ));
    }
    if last.and_then(|l| l.get("actionId")).and_then(Value::as_str) == Some(msg.action.id.as_str())
    {
        return Ok(Attempt::done(
            OutcomeResult::NoOp,
            format!("the status of {what} already carries this action"),
            rv,
        ));
    }
    let Some(read_rv) = rv else {
        return Err(Failure::Transient(format!(
            "{what} was read without a resourceVersion; cannot write its status safely"
        )));
    };
    let action = &msg.action;
    let mut status = match action.object.as_ref().and_then(|o| o.get("status")) {
        Some(Value::Object(s)) => s.clone(),
        _ => {
            return Err(Failure::Permanent(
                "the status action carries no status to write (expected object.status to be \
                 a JSON object)"
                    .to_string(),
            ));
        }
    };
    status.insert(
        "lastAction".into(),
        json!({"actionId": action.id, "planSeq": msg.plan_seq}),
    );
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(action.target.name.clone()));
    if !action.target.namespace.is_empty() {
        metadata.insert(
            "namespace".into(),
            Value::String(action.target.namespace.clone()),
        );
    }
    metadata.insert("resourceVersion".into(), Value::String(read_rv.clone()));
    let body = json!({
        "apiVersion": action.api_version,
        "kind": action.target.kind,
        "metadata": metadata,
        "status": status,
    });
    match api.apply(&body, true).await {
        Ok(written) => {
            let new_rv = written.metadata.resource_version;
            let result = if new_rv.as_deref() == Some(read_rv.as_str()) {
                OutcomeResult::NoOp
            } else {
                OutcomeResult::Applied
            };
            Ok(Attempt::done(
                result,
                format!("status of {what} written"),
                new_rv,
            ))
        }
        Err(Failure::NotFound(_)) => Ok(gone()),
        Err(f) => Err(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Action;
    use crate::record::ObjKey;

    fn message(object: Option<Value>) -> ActionMessage {
        ActionMessage {
            entry_id: uuid::Uuid::nil(),
            seq: 9,
            plan_seq: 7,
            at: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
            action: Action::new(
                Verb::Apply,
                ObjKey::new("Deployment", "shop", "web"),
                "apps/v1",
                Some("shop/web".into()),
                object,
                None,
                "test".into(),
                Default::default(),
            ),
        }
    }

    #[test]
    fn stamping_adds_the_fencing_annotations_and_the_precondition() {
        let msg = message(Some(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3",
                         "annotations": {"keep": "me"}},
            "spec": {"replicas": 2}
        })));
        let v = stamped(&msg, Some("12")).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "12");
        assert_eq!(v["metadata"]["annotations"]["keep"], "me");
        assert_eq!(
            v["metadata"]["annotations"][ACTION_ID_ANNOTATION],
            msg.action.id
        );
        assert_eq!(v["metadata"]["annotations"][PLAN_SEQ_ANNOTATION], "7");
        let v = stamped(&msg, None).unwrap();
        assert!(v["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn stamping_fills_identity_and_rejects_a_missing_object() {
        let v = stamped(&message(Some(json!({"spec": {}}))), None).unwrap();
        assert_eq!(v["kind"], "Deployment");
        assert_eq!(v["apiVersion"], "apps/v1");
        assert_eq!(v["metadata"]["name"], "web");
        assert_eq!(v["metadata"]["namespace"], "shop");
        assert!(matches!(
            stamped(&message(None), None),
            Err(Failure::Permanent(_))
        ));
        assert!(matches!(
            stamped(&message(Some(json!({"metadata": 3}))), None),
            Err(Failure::Permanent(_))
        ));
    }
}
