//! Kubernetes Events on each Application for what was done to it: `events.k8s.io/v1` Events
//! with `reportingController: logbook.dev/controller`, one per action that changed something
//! (a Deployment or Service created, updated or deleted, a spec rejected), so
//! `kubectl describe app` and `kubectl get events` tell the story without the log.
//!
//! Events are side output. The core notes what each recorded action is about as it folds it
//! ([`Recorder`]), and when a final outcome of that action is recorded it hands a [`Notice`] to
//! a bounded channel without waiting; a full channel drops the notice with a warning (and
//! counts it). An async task ([`run`]) creates the Events. Nothing here changes what is
//! recorded or planned, and a failure to create an Event is a warning, never an error.
//!
//! Each Event is named after its Application and its action (`web.3624b63422bb0901a7e4`), so
//! an outcome recorded twice, or a notice sent again by a later leader, creates it once: the
//! API server answers the second create with 409, which is ignored.

use crate::model::condition;
use crate::record::{Body, ObjKey, OutcomeRecord, OutcomeResult, RecordedAction, Verb};
use crate::world::{APPLICATION, World};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The `reportingController` of every Event logbook writes.
pub const REPORTING_CONTROLLER: &str = "logbook.dev/controller";

/// How many notices may wait for the API server before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 1024;

/// How many of the last recorded actions the [`Recorder`] remembers, for their outcome.
const MEMORY: usize = 8192;

/// The API server's limits (`k8s.io/kubernetes/pkg/apis/core/validation/events.go`).
const NOTE_LIMIT: usize = 1024;
const INSTANCE_LIMIT: usize = 128;

/// One Event to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The Event's namespace (its Application's).
    pub namespace: String,
    /// The Event's name: `<application>.<action id without "act-">`.
    pub name: String,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// `Created`, `Updated`, `Deleted`, `HostConflict`, `InvalidSpec` or `Failed`.
    pub reason: String,
    /// `Create`, `Update`, `Delete` or `Reject`.
    pub action: &'static str,
    /// Human text, with the action id and plan.
    pub note: String,
    /// The Application's name.
    pub app: String,
    /// The Application's uid, when it was known when the action was planned.
    pub app_uid: Option<String>,
    /// The object the action changed, when it is not the Application itself.
    pub related: Option<(String, ObjKey)>,
}

/// What an action was about, noted when it was recorded and used when its outcome is.
#[derive(Clone, Debug)]
struct Noted {
    verb: Verb,
    target: ObjKey,
    api_version: String,
    app: (String, String),
    app_uid: Option<String>,
    reason: String,
    plan_seq: u64,
    /// An image change, old → new, for a Deployment apply.
    image: Option<(String, String)>,
    /// A status that newly rejects the spec: (condition reason, message).
    rejected: Option<(String, String)>,
}

/// The core's side of Events: remembers recorded actions (bounded), and turns final outcomes
/// into notices for the channel, when there is one.
#[derive(Debug, Default)]
pub struct Recorder {
    noted: BTreeMap<String, Noted>,
    order: VecDeque<String>,
    sink: Option<Sink>,
}

impl Recorder {
    /// A recorder with nowhere to send yet (it still remembers actions as the log is folded).
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// From now on, notices go to `sink`.
    pub fn connect(&mut self, sink: Sink) {
        self.sink = Some(sink);
    }

    /// Called for each new entry, with the world as it is before the entry is folded.
    pub fn folding(&mut self, world: &World, body: &Body) {
        match body {
            Body::Action(a) => self.note(world, a.plan_seq, &a.action),
            Body::Outcome(o) => self.answered(o),
            _ => {}
        }
    }

    fn note(&mut self, world: &World, plan_seq: u64, a: &RecordedAction) {
        let Some((ns, name)) = a.app.as_deref().and_then(|s| s.split_once('/')) else {
            return; // a shared object (the namespace's Ingress): no single Application
        };
        let app_key = ObjKey::new(APPLICATION, ns, name);
        let app_uid = world
            .object(&app_key)
            .map(|o| o.uid.clone())
            .filter(|u| !u.is_empty());
        // Only an image change or a status says more than the action itself: parse just those.
        let wanted =
            a.verb == Verb::Status || (a.verb == Verb::Apply && a.target.kind == "Deployment");
        let object = a
            .object
            .as_ref()
            .filter(|_| wanted)
            .and_then(|j| j.parse().ok());
        let image = match (a.verb, &object) {
            (Verb::Apply, Some(new)) if a.target.kind == "Deployment" => world
                .object(&a.target)
                .and_then(|old| image_change(old.object(), new)),
            _ => None,
        };
        let rejected = match (a.verb, &object) {
            (Verb::Status, Some(new)) => {
                let was = world.app(&app_key).and_then(|app| {
                    let s = app.status.as_ref()?;
                    let c = s
                        .conditions
                        .iter()
                        .find(|c| c.type_ == condition::INVALID)?;
                    (c.status == "True").then(|| (c.reason.clone(), c.message.clone()))
                });
                invalid_condition(new).filter(|now| was.as_ref() != Some(now))
            }
            _ => None,
        };
        if a.verb == Verb::Status && rejected.is_none() {
            return; // a status write that rejects nothing new is not news
        }
        let noted = Noted {
            verb: a.verb,
            target: a.target.clone(),
            api_version: a.api_version.clone(),
            app: (ns.to_string(), name.to_string()),
            app_uid,
            reason: a.reason.clone(),
            plan_seq,
            image,
            rejected,
        };
        // `order` keeps the ids of the last MEMORY actions noted, answered or not; forgetting
        // the oldest forgets it if it is still waiting.
        if self.noted.insert(a.id.clone(), noted).is_none() {
            self.order.push_back(a.id.clone());
        }
        while self.order.len() > MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.noted.remove(&old);
            }
        }
    }

    fn answered(&mut self, o: &OutcomeRecord) {
        if o.retry {
            return; // delivered again: the final outcome is still to come
        }
        let Some(noted) = self.noted.remove(&o.action_id) else {
            return;
        };
        let Some(sink) = &self.sink else { return };
        if let Some(notice) = notice(&noted, o) {
            sink.send(notice);
        }
    }
}

/// The Event for the final outcome `o` of a noted action, if it deserves one.
fn notice(n: &Noted, o: &OutcomeRecord) -> Option<Notice> {
    let (ns, app) = (&n.app.0, &n.app.1);
    let target = if n.target.namespace.is_empty() {
        format!("{} {}", n.target.kind, n.target.name)
    } else {
        format!("{} {}/{}", n.target.kind, n.target.namespace, n.target.name)
    };
    let trailer = format!("[{}, plan {}]", o.action_id, n.plan_seq);
    let (type_, reason, action, note) = match (o.result, n.verb) {
        (OutcomeResult::Applied, Verb::Create) => (
            "Normal",
            "Created".to_string(),
            "Create",
            format!("created {target} ({}) {trailer}", n.reason),
        ),
        (OutcomeResult::Applied, Verb::Apply) => {
            let what = match &n.image {
                Some((old, new)) => format!("image {old} → {new}"),
                None => n.reason.clone(),
            };
            (
                "Normal",
                "Updated".to_string(),
                "Update",
                format!("updated {target} ({what}) {trailer}"),
            )
        }
        (OutcomeResult::Applied, Verb::Delete) => (
            "Normal",
            "Deleted".to_string(),
            "Delete",
            format!("deleted {target} ({}) {trailer}", n.reason),
        ),
        (OutcomeResult::Applied, Verb::Status) => {
            let (reason, message) = n.rejected.clone()?;
            (
                "Warning",
                reason,
                "Reject",
                format!("{message}; no children are changed until it is fixed {trailer}"),
            )
        }
        (OutcomeResult::Failed | OutcomeResult::Abandoned, verb) => (
            "Warning",
            "Failed".to_string(),
            match verb {
                Verb::Create => "Create",
                Verb::Delete => "Delete",
                Verb::Apply | Verb::Status => "Update",
            },
            format!(
                "could not {verb} {target}: {} {trailer}",
                first_line(&o.message)
            ),
        ),
        _ => return None, // no-op, superseded, conflict: nothing was done
    };
    let related = (n.target.kind != APPLICATION).then(|| (n.api_version.clone(), n.target.clone()));
    Some(Notice {
        namespace: ns.clone(),
        name: event_name(app, &o.action_id),
        type_,
        reason,
        action,
        note: truncate(note, NOTE_LIMIT),
        app: app.clone(),
        app_uid: n.app_uid.clone(),
        related,
    })
}

/// `<application>.<action id without "act-">`: unique per action, stable across resends, and
/// a valid object name (at most 253 characters, the Application's name shortened if need be).
pub fn event_name(app: &str, action_id: &str) -> String {
    let id = action_id.strip_prefix("act-").unwrap_or(action_id);
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let room = 253usize.saturating_sub(id.len() + 1);
    let mut prefix: String = app.chars().take(room).collect();
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    if prefix.is_empty() {
        id
    } else {
        format!("{prefix}.{id}")
    }
}

/// The image of the first container present in both, when it differs: (old, new).
fn image_change(old: &Value, new: &Value) -> Option<(String, String)> {
    let containers = |v: &Value| {
        v.pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let old = containers(old);
    for c in containers(new) {
        let name = c.get("name").and_then(Value::as_str);
        let Some(before) = old
            .iter()
            .find(|o| o.get("name").and_then(Value::as_str) == name)
        else {
            continue;
        };
        let new_image = c.get("image").and_then(Value::as_str)?;
        let old_image = before
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("none");
        if new_image != old_image {
            return Some((old_image.to_string(), new_image.to_string()));
        }
    }
    None
}

/// The `Invalid` condition of a status action's object, when it is True: (reason, message).
fn invalid_condition(object: &Value) -> Option<(String, String)> {
    let conditions = object.pointer("/status/conditions")?.as_array()?;
    let c = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(condition::INVALID))?;
    if c.get("status").and_then(Value::as_str) != Some("True") {
        return None;
    }
    let s = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some((s("reason"), s("message")))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// At most `limit` bytes, cut at a character boundary, with `…` when cut.
fn truncate(mut s: String, limit: usize) -> String {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

/// The sending end: never blocks; a full channel drops the notice and counts it.
#[derive(Clone, Debug)]
pub struct Sink {
    tx: mpsc::Sender<Notice>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    /// Hands over a notice, or drops it (with a warning) when the channel is full.
    pub fn send(&self, notice: Notice) {
        match self.tx.try_send(notice) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(n)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    event = %n.name, namespace = %n.namespace, dropped,
                    "the Kubernetes Event queue is full (the API server is slow or refusing); \
                     this Event is dropped, the log still has the outcome"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// How many notices were dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A bounded channel of notices: the sink for the core, the receiver for [`run`].
pub fn channel(capacity: usize) -> (Sink, mpsc::Receiver<Notice>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        Sink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

/// The Event object for a notice, reported by `instance`.
pub fn event(notice: &Notice, instance: &str) -> Event {
    let regarding = ObjectReference {
        api_version: Some(
            <crate::model::Application as kube::Resource>::api_version(&()).to_string(),
        ),
        kind: Some(APPLICATION.to_string()),
        namespace: Some(notice.namespace.clone()),
        name: Some(notice.app.clone()),
        uid: notice.app_uid.clone(),
        ..ObjectReference::default()
    };
    let related = notice
        .related
        .as_ref()
        .map(|(api_version, key)| ObjectReference {
            api_version: Some(api_version.clone()),
            kind: Some(key.kind.clone()),
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
            name: Some(key.name.clone()),
            ..ObjectReference::default()
        });
    Event {
        metadata: ObjectMeta {
            name: Some(notice.name.clone()),
            namespace: Some(notice.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        type_: Some(notice.type_.to_string()),
        reason: Some(notice.reason.clone()),
        action: Some(notice.action.to_string()),
        note: Some(notice.note.clone()),
        regarding: Some(regarding),
        related,
        reporting_controller: Some(REPORTING_CONTROLLER.to_string()),
        reporting_instance: Some(instance.chars().take(INSTANCE_LIMIT).collect()),
        ..Event::default()
    }
}

/// Creates an Event for every notice until `shutdown`, until every sink is gone, or until
/// `fence` stops holding (only the leader emits). An Event
/// that already exists (the same action's, sent again) is left as it is; any other failure is
/// a warning and the notice is dropped: Events are a courtesy, the log is the record.
pub async fn run(
    client: kube::Client,
    instance: String,
    mut rx: mpsc::Receiver<Notice>,
    fence: super::lease::Fence,
    shutdown: CancellationToken,
) {
    let pp = PostParams {
        field_manager: Some(crate::model::FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    loop {
        let notice = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv() => n,
        };
        let Some(notice) = notice else { return };
        if !fence.holds() {
            return; // only the leader speaks for the controller
        }
        let api: Api<Event> = Api::namespaced(client.clone(), &notice.namespace);
        let event = event(&notice, &instance);
        let create = api.create(&pp, &event);
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = create => r,
        };
        match result {
            Ok(_) => tracing::debug!(event = %notice.name, namespace = %notice.namespace,
                reason = %notice.reason, "Kubernetes Event created"),
            Err(kube::Error::Api(s)) if s.code == 409 => tracing::debug!(
                event = %notice.name, namespace = %notice.namespace, "Kubernetes Event already there"),
            Err(e) => tracing::warn!(
                event = %notice.name, namespace = %notice.namespace, error = %e,
                "could not create a Kubernetes Event (check that the controller may create \
                 events.k8s.io events in this namespace); the log still has the outcome"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_valid_and_bounded() {
        assert_eq!(
            event_name("web", "act-3624b63422bb0901a7e4"),
            "web.3624b63422bb0901a7e4"
        );
        let long = "a".repeat(300);
        let n = event_name(&long, "act-3624b63422bb0901a7e4");
        assert_eq!(n.len(), 253);
        assert!(n.ends_with(".3624b63422bb0901a7e4"));
        let dashed = format!("{}-b", "a".repeat(231));
        let n = event_name(&dashed, "act-3624b63422bb0901a7e4");
        assert!(!n.contains("-."), "{n}");
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        let s = "é".repeat(600);
        let t = truncate(s, NOTE_LIMIT);
        assert!(t.len() <= NOTE_LIMIT);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short".into(), NOTE_LIMIT), "short");
    }

    #[test]
    fn image_changes_are_found_by_container_name() {
        let d = |image: &str| {
            serde_json::json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": image}
            ]}}}})
        };
        assert_eq!(
            image_change(&d("nginx:1.27"), &d("nginx:1.28")),
            Some(("nginx:1.27".into(), "nginx:1.28".into()))
        );
        assert_eq!(image_change(&d("nginx:1.27"), &d("nginx:1.27")), None);
    }

    fn noted(verb: Verb, kind: &str) -> Noted {
        Noted {
            verb,
            target: ObjKey::new(kind, "shop", "web"),
            api_version: "apps/v1".into(),
            app: ("shop".into(), "web".into()),
            app_uid: Some("uid-1".into()),
            reason: "missing".into(),
            plan_seq: 7,
            image: None,
            rejected: None,
        }
    }

    fn outcome(result: OutcomeResult) -> OutcomeRecord {
        OutcomeRecord {
            action_id: "act-3624b63422bb0901a7e4".into(),
            result,
            message: "the API server said no\nmore detail".into(),
            executor: "ex-1".into(),
            attempt: 1,
            resource_version: None,
            retry: false,
        }
    }

    #[test]
    fn final_outcomes_that_changed_something_become_events() {
        let n = notice(
            &noted(Verb::Create, "Deployment"),
            &outcome(OutcomeResult::Applied),
        )
        .expect("an event");
        assert_eq!(
            (n.type_, n.reason.as_str(), n.action),
            ("Normal", "Created", "Create")
        );
        assert_eq!(
            n.note,
            "created Deployment shop/web (missing) [act-3624b63422bb0901a7e4, plan 7]"
        );
        assert_eq!(n.name, "web.3624b63422bb0901a7e4");
        assert_eq!(n.namespace, "shop");
        assert_eq!(
            n.related.map(|(_, k)| k.kind),
            Some("Deployment".to_string())
        );

        let mut update = noted(Verb::Apply, "Deployment");
        update.image = Some(("nginx:1.27".into(), "nginx:1.28".into()));
        let n = notice(&update, &outcome(OutcomeResult::Applied)).expect("an event");
        assert!(
            n.note
                .starts_with("updated Deployment shop/web (image nginx:1.27 → nginx:1.28)")
        );

        let mut reject = noted(Verb::Status, "Application");
        reject.rejected = Some(("HostConflict".into(), "host a is already used".into()));
        let n = notice(&reject, &outcome(OutcomeResult::Applied)).expect("an event");
        assert_eq!(
            (n.type_, n.reason.as_str(), n.action),
            ("Warning", "HostConflict", "Reject")
        );
        assert_eq!(n.related, None, "about the Application itself");

        let n = notice(
            &noted(Verb::Delete, "Service"),
            &outcome(OutcomeResult::Failed),
        )
        .expect("an event");
        assert_eq!(
            (n.type_, n.reason.as_str(), n.action),
            ("Warning", "Failed", "Delete")
        );
        assert!(n.note.contains("the API server said no ["), "{}", n.note);

        for nothing in [
            OutcomeResult::NoOp,
            OutcomeResult::Superseded,
            OutcomeResult::Conflict,
        ] {
            assert_eq!(
                notice(&noted(Verb::Create, "Deployment"), &outcome(nothing)),
                None
            );
        }
    }

    #[test]
    fn a_full_channel_drops_and_counts() {
        let (sink, mut rx) = channel(1);
        let n = Notice {
            namespace: "shop".into(),
            name: "web.1".into(),
            type_: "Normal",
            reason: "Created".into(),
            action: "Create",
            note: "created".into(),
            app: "web".into(),
            app_uid: None,
            related: None,
        };
        sink.send(n.clone());
        sink.send(n.clone());
        assert_eq!(sink.dropped(), 1);
        assert_eq!(rx.try_recv().ok(), Some(n));
    }
}
