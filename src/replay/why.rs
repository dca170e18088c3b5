//! `why`: the chain that explains one object from the log: the last applied outcome, its
//! action, the plan that produced it, the events that plan read, and what came after.
//!
//! It owns the query and returns plain data (serializable as is); it must not print, parse
//! flags, or write the log.

use crate::log::{Filter, LogError, LogReader};
use crate::record::{
    Body, Change, Entry, EntryKind, ObjKey, ObservedEvent, OutcomeRecord, OutcomeResult,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many recent events [`Why::events`] lists.
pub const EVENTS_SHOWN: usize = 10;

/// Why an object cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum WhyError {
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The log holds no entry about the object (up to the moment asked about).
    #[error("{0}")]
    Unknown(String),
}

/// How far logbook got with an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhyState {
    /// An applied outcome: logbook changed it.
    Changed,
    /// Actions were planned, none confirmed applied.
    Planned,
    /// Only events: logbook never acted on it.
    Observed,
}

/// The chain that explains an object (`audit why -o json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Why {
    /// The object, `KIND/NAMESPACE/NAME`.
    pub object: String,
    /// The moment explained.
    pub as_of: AsOf,
    /// `changed` (an applied outcome), `planned` (actions, none confirmed applied) or
    /// `observed` (only events).
    pub state: WhyState,
    /// The object's last event is a delete.
    pub deleted: bool,
    /// The last applied outcome.
    pub outcome: Option<OutcomeView>,
    /// The action that outcome applied (or, without one, the last action planned).
    pub action: Option<ActionView>,
    /// The plan that produced the action.
    pub plan: Option<PlanView>,
    /// What the action was derived from: each basis entry and the event the plan read for it.
    pub basis: Vec<BasisView>,
    /// Actions planned for the object after the one shown.
    pub later_actions: Vec<ActionBrief>,
    /// The events recorded for the object.
    pub events: EventsView,
    /// Anything that could not be traced.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct AsOf {
    /// `--at`, when given.
    pub at: Option<String>,
    /// The last seq of the log when asked.
    pub log_seq: u64,
}

#[derive(Debug, Serialize)]
pub struct OutcomeView {
    pub seq: u64,
    pub id: String,
    pub at: String,
    pub action_id: String,
    pub result: String,
    pub executor: String,
    pub attempt: u32,
    pub resource_version: Option<String>,
    pub message: String,
    pub retry: bool,
}

#[derive(Debug, Serialize)]
pub struct ActionView {
    pub seq: u64,
    pub id: String,
    pub at: String,
    pub action_id: String,
    pub verb: String,
    pub reason: String,
    pub plan_seq: u64,
    pub app: Option<String>,
    /// Every outcome reported for the action (up to the moment explained).
    pub outcomes: Vec<OutcomeBrief>,
    /// Each time it was published again for want of an outcome (`redrive` markers).
    pub redrives: Vec<RedriveBrief>,
}

/// A re-drive of the action: when, which attempt, and the deadline that passed.
#[derive(Debug, Clone, Serialize)]
pub struct RedriveBrief {
    pub seq: u64,
    pub at: String,
    pub attempt: u32,
    pub due: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeBrief {
    pub seq: u64,
    pub at: String,
    pub result: String,
    pub executor: String,
    pub attempt: u32,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct ActionBrief {
    pub seq: u64,
    pub action_id: String,
    pub verb: String,
    pub reason: String,
    pub plan_seq: u64,
    pub outcomes: Vec<OutcomeBrief>,
}

#[derive(Debug, Serialize)]
pub struct PlanView {
    pub seq: u64,
    pub at: String,
    pub upto_seq: u64,
    pub reconciler: String,
    pub scope: Vec<String>,
    pub config_digest: String,
    pub controller_version: String,
    pub actions: usize,
}

#[derive(Debug, Serialize)]
pub struct BasisView {
    /// The basis key: an object (`KIND/NAMESPACE/NAME`), or `pending`.
    pub key: String,
    /// The object's resourceVersion the action was derived from (objects only).
    pub resource_version: Option<String>,
    /// The event the plan read for it (objects only; null when not found).
    pub event: Option<EventView>,
    /// For `pending`: the earlier action, still on its way, that this one replaced.
    pub pending_action: Option<PendingView>,
}

#[derive(Debug, Serialize)]
pub struct PendingView {
    pub action_id: String,
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub at: String,
    pub change: &'static str,
    pub resource_version: String,
    pub synthesized: bool,
}

#[derive(Debug, Serialize)]
pub struct EventsView {
    pub count: u64,
    pub first: Option<EventView>,
    pub last: Option<EventView>,
    /// The most recent events (up to 10), oldest first.
    pub recent: Vec<EventView>,
}

/// Traces `key` through the log, counting only entries stamped at or before `at`.
pub fn explain(
    reader: &LogReader,
    key: &ObjKey,
    at: Option<DateTime<Utc>>,
) -> Result<Why, WhyError> {
    let path = reader.path().display().to_string();
    let log_seq = reader.last_seq()?;
    // `Filter::until` is exclusive: one nanosecond later includes entries stamped at `at`.
    let until = at.map(|t| t + chrono::Duration::nanoseconds(1));
    // Events are read as stored: only their change and resourceVersion are shown, so objects
    // stored as patches need not be rebuilt. Actions are rebuilt (their basis is shown).
    let about = |kind: EntryKind| Filter {
        object: Some(key.clone()),
        kinds: vec![kind],
        until,
        stored: kind == EntryKind::Event,
        ..Filter::new()
    };

    // Events of the object.
    let mut events = EventsView {
        count: 0,
        first: None,
        last: None,
        recent: Vec::new(),
    };
    let mut last_event: Option<ObservedEvent> = None;
    for e in reader.query(&about(EntryKind::Event)) {
        let e = e?;
        if let Body::Event(ev) = &e.body {
            let view = event_view(&e, ev);
            events.count += 1;
            if events.first.is_none() {
                events.first = Some(view.clone());
            }
            if events.recent.len() == EVENTS_SHOWN {
                events.recent.remove(0);
            }
            events.recent.push(view.clone());
            events.last = Some(view);
            last_event = Some(ev.clone());
        }
    }

    // Outcomes of the object, by action id, and the last applied one.
    let mut outcomes: BTreeMap<String, Vec<OutcomeBrief>> = BTreeMap::new();
    let mut applied: Option<(Entry, OutcomeRecord)> = None;
    for e in reader.query(&about(EntryKind::Outcome)) {
        let e = e?;
        if let Body::Outcome(o) = &e.body {
            outcomes
                .entry(o.action_id.clone())
                .or_default()
                .push(outcome_brief(&e, o));
            if o.result == OutcomeResult::Applied {
                applied = Some((e.clone(), o.clone()));
            }
        }
    }

    // Re-drives of actions about the object, by action id.
    let mut redrives: BTreeMap<String, Vec<RedriveBrief>> = BTreeMap::new();
    for e in reader.query(&about(EntryKind::Marker)) {
        let e = e?;
        if let Body::Marker(m) = &e.body
            && let Some(r) = crate::record::Redrive::of(m)
        {
            redrives.entry(r.action_id).or_default().push(RedriveBrief {
                seq: e.seq,
                at: nanos(e.at),
                attempt: r.attempt,
                due: r.due,
            });
        }
    }

    // Actions planned for the object.
    let mut actions: Vec<Entry> = Vec::new();
    for e in reader.query(&about(EntryKind::Action)) {
        actions.push(e?);
    }

    if events.count == 0 && actions.is_empty() && outcomes.is_empty() {
        let first = reader
            .query(&Filter::new().object(key).limit(1))
            .next()
            .transpose()?;
        return Err(WhyError::Unknown(match (first, at) {
            (Some(f), Some(t)) => format!(
                "{path} has no entry about {key} at or before {}: its first is seq {} at {}. \
                 Pick a later --at, or leave it out to explain the object as it is now",
                secs(t),
                f.seq,
                secs(f.at)
            ),
            _ => format!(
                "{path} has no entry about {key} (seq 1..={log_seq}). Check the kind, namespace \
                 and name (kinds: Application, Deployment, Service, Ingress); `logbook audit log \
                 --app NS/NAME` lists what was recorded for an Application"
            ),
        }));
    }

    let mut notes = Vec::new();
    // The action to explain: the one the last applied outcome reports on, else the last planned.
    let chosen: Option<&Entry> = match &applied {
        Some((oe, o)) => {
            let found = actions
                .iter()
                .rev()
                .find(|a| a.seq < oe.seq && action_id_of(a) == Some(o.action_id.as_str()));
            if found.is_none() {
                notes.push(format!(
                    "the action {} that outcome seq {} reports on is not in the log as an action \
                     on {key}",
                    o.action_id, oe.seq
                ));
            }
            found
        }
        None => actions.last(),
    };

    let action = chosen.and_then(|a| match &a.body {
        Body::Action(r) => Some(ActionView {
            seq: a.seq,
            id: a.id.to_string(),
            at: nanos(a.at),
            action_id: r.action.id.clone(),
            verb: r.action.verb.to_string(),
            reason: r.action.reason.clone(),
            plan_seq: r.plan_seq,
            app: r.action.app.clone(),
            outcomes: outcomes.get(&r.action.id).cloned().unwrap_or_default(),
            redrives: redrives.get(&r.action.id).cloned().unwrap_or_default(),
        }),
        _ => None,
    });

    // The plan that produced it, and the events it read.
    let mut plan = None;
    let mut basis = Vec::new();
    if let Some(Body::Action(r)) = chosen.map(|a| &a.body) {
        let mut read_upto = chosen.map_or(0, |a| a.seq.saturating_sub(1));
        match reader.get(r.plan_seq)? {
            Some(pe) => match &pe.body {
                Body::Plan(p) => {
                    read_upto = p.upto_seq;
                    plan = Some(PlanView {
                        seq: pe.seq,
                        at: nanos(pe.at),
                        upto_seq: p.upto_seq,
                        reconciler: p.reconciler.clone(),
                        scope: p.scope.iter().map(ToString::to_string).collect(),
                        config_digest: p.config_digest.clone(),
                        controller_version: p.controller_version.clone(),
                        actions: p.action_ids.len(),
                    });
                    if !p.action_ids.contains(&r.action.id) {
                        notes.push(format!(
                            "plan seq {} does not list action {} among its actions",
                            pe.seq, r.action.id
                        ));
                    }
                }
                other => notes.push(format!(
                    "the action names plan seq {}, but that entry is a {}",
                    r.plan_seq,
                    other.kind()
                )),
            },
            None => notes.push(format!(
                "the action names plan seq {}, which is not in the log",
                r.plan_seq
            )),
        }
        for (k, v) in &r.action.basis {
            basis.push(basis_view(reader, key, k, v, read_upto, &mut notes)?);
        }
    }

    let later_actions = match chosen {
        Some(c) => actions
            .iter()
            .filter(|a| a.seq > c.seq)
            .filter_map(|a| match &a.body {
                Body::Action(r) => Some(ActionBrief {
                    seq: a.seq,
                    action_id: r.action.id.clone(),
                    verb: r.action.verb.to_string(),
                    reason: r.action.reason.clone(),
                    plan_seq: r.plan_seq,
                    outcomes: outcomes.get(&r.action.id).cloned().unwrap_or_default(),
                }),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };

    let state = if applied.is_some() {
        WhyState::Changed
    } else if chosen.is_some() {
        WhyState::Planned
    } else {
        WhyState::Observed
    };
    Ok(Why {
        object: key.to_string(),
        as_of: AsOf {
            at: at.map(nanos),
            log_seq,
        },
        state,
        deleted: last_event.is_some_and(|e| e.change == Change::Delete),
        outcome: applied.map(|(e, o)| OutcomeView {
            seq: e.seq,
            id: e.id.to_string(),
            at: nanos(e.at),
            action_id: o.action_id,
            result: result_name(o.result),
            executor: o.executor,
            attempt: o.attempt,
            resource_version: o.resource_version,
            message: o.message,
            retry: o.retry,
        }),
        action,
        plan,
        basis,
        later_actions,
        events,
        notes,
    })
}

/// One basis entry of an action, traced to the event the plan read (at seq ≤ `read_upto`).
pub(crate) fn basis_view(
    reader: &LogReader,
    target: &ObjKey,
    key: &str,
    value: &str,
    read_upto: u64,
    notes: &mut Vec<String>,
) -> Result<BasisView, LogError> {
    if key == "pending" {
        // The action replaced an earlier one still on its way (its id is the value).
        let filter = Filter {
            object: Some(target.clone()),
            kinds: vec![EntryKind::Action],
            to_seq: Some(read_upto),
            stored: true, // only ids are looked at
            ..Filter::new()
        };
        let mut seq = None;
        for e in reader.query(&filter) {
            let e = e?;
            if action_id_of(&e) == Some(value) {
                seq = Some(e.seq);
            }
        }
        return Ok(BasisView {
            key: key.to_string(),
            resource_version: None,
            event: None,
            pending_action: Some(PendingView {
                action_id: value.to_string(),
                seq,
            }),
        });
    }
    let mut view = BasisView {
        key: key.to_string(),
        resource_version: Some(value.to_string()),
        event: None,
        pending_action: None,
    };
    let Ok(object) = ObjKey::parse(key) else {
        notes.push(format!("basis `{key}` does not name an object"));
        return Ok(view);
    };
    let filter = Filter {
        object: Some(object),
        kinds: vec![EntryKind::Event],
        to_seq: Some(read_upto),
        stored: true, // only resourceVersions are looked at
        ..Filter::new()
    };
    for e in reader.query(&filter) {
        let e = e?;
        if let Body::Event(ev) = &e.body
            && ev.resource_version == value
        {
            view.event = Some(event_view(&e, ev));
        }
    }
    if view.event.is_none() {
        notes.push(format!(
            "no event of {key} at resourceVersion {value} up to seq {read_upto}"
        ));
    }
    Ok(view)
}

pub(crate) fn event_view(e: &Entry, ev: &ObservedEvent) -> EventView {
    EventView {
        seq: e.seq,
        at: nanos(e.at),
        change: match ev.change {
            Change::Upsert => "upsert",
            Change::Delete => "delete",
        },
        resource_version: ev.resource_version.clone(),
        synthesized: ev.synthesized,
    }
}

pub(crate) fn outcome_brief(e: &Entry, o: &OutcomeRecord) -> OutcomeBrief {
    OutcomeBrief {
        seq: e.seq,
        at: nanos(e.at),
        result: result_name(o.result),
        executor: o.executor.clone(),
        attempt: o.attempt,
        message: o.message.clone(),
    }
}

fn action_id_of(e: &Entry) -> Option<&str> {
    match &e.body {
        Body::Action(r) => Some(r.action.id.as_str()),
        _ => None,
    }
}

/// The result's name as serialized (`applied`, `noop`, ...).
fn result_name(r: OutcomeResult) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{r:?}").to_lowercase())
}

/// RFC 3339 to the second, as messages show it.
fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `audit why` as text, a line each (what `logbook audit why` prints and the UI shows).
pub fn narrate(w: &Why) -> Vec<String> {
    let mut lines = Vec::new();
    lines.push(match &w.as_of.at {
        Some(at) => format!("{}, as of {}", w.object, text_secs(at)),
        None => format!(
            "{}, as of the end of the log (seq {})",
            w.object, w.as_of.log_seq
        ),
    });
    match (w.state, &w.action) {
        (WhyState::Changed, Some(a)) => lines.push(format!(
            "Last changed by logbook: {} ({}).",
            a.verb, a.reason
        )),
        (WhyState::Changed, None) => {
            lines.push("Last changed by logbook (its action is not traced).".into())
        }
        (WhyState::Planned, Some(a)) => lines.push(format!(
            "logbook planned {} ({}), but it was never confirmed applied.",
            a.verb, a.reason
        )),
        _ => lines.push(
            "logbook never changed it: no action in the log targets it; it was only observed."
                .into(),
        ),
    }
    if let Some(o) = &w.outcome {
        let rv = o
            .resource_version
            .as_deref()
            .map(|rv| format!(", resulting resourceVersion {rv}"))
            .unwrap_or_default();
        lines.push(format!(
            "  outcome  seq {:<6} {}  {} by {} (attempt {}){rv}",
            o.seq,
            text_secs(&o.at),
            o.result,
            o.executor,
            o.attempt
        ));
    }
    if let Some(a) = &w.action {
        lines.push(format!(
            "  action   seq {:<6} {}  {} {} ({}) [{}]",
            a.seq,
            text_secs(&a.at),
            a.verb,
            w.object,
            a.reason,
            a.action_id
        ));
        for r in &a.redrives {
            lines.push(format!(
                "           published again: seq {} {} attempt {} (no outcome by {})",
                r.seq,
                text_secs(&r.at),
                r.attempt,
                r.due
            ));
        }
        if w.state == WhyState::Planned {
            if a.outcomes.is_empty() {
                lines.push("           no outcome reported yet".into());
            }
            for o in &a.outcomes {
                lines.push(format!("           {}", outcome_text(o)));
            }
        }
    }
    if let Some(p) = &w.plan {
        let scope = if p.scope.is_empty() {
            "the whole world".to_string()
        } else {
            p.scope.join(", ")
        };
        lines.push(format!(
            "  plan     seq {:<6} {}  read the log up to seq {}; reconciler {}; scope {scope}; \
             {} action{}; config {}; controller {}",
            p.seq,
            text_secs(&p.at),
            p.upto_seq,
            p.reconciler,
            p.actions,
            if p.actions == 1 { "" } else { "s" },
            p.config_digest,
            p.controller_version
        ));
    }
    if !w.basis.is_empty() {
        lines.push("  because of what the plan read:".into());
        for b in &w.basis {
            match (&b.pending_action, &b.event) {
                (Some(p), _) => lines.push(format!(
                    "    replacing action {} still on its way{}",
                    p.action_id,
                    p.seq.map(|s| format!(" (seq {s})")).unwrap_or_default()
                )),
                (None, Some(e)) => lines.push(format!(
                    "    {} at rv {}: event seq {} {} ({})",
                    b.key,
                    e.resource_version,
                    e.seq,
                    text_secs(&e.at),
                    change_text(e)
                )),
                (None, None) => lines.push(format!(
                    "    {} at rv {}: no such event found",
                    b.key,
                    b.resource_version.as_deref().unwrap_or("?")
                )),
            }
        }
    }
    for a in &w.later_actions {
        let result = a
            .outcomes
            .last()
            .map(outcome_text)
            .unwrap_or_else(|| "no outcome yet".into());
        lines.push(format!(
            "  later: action seq {} {} ({}) [{}], plan {}: {result}",
            a.seq, a.verb, a.reason, a.action_id, a.plan_seq
        ));
    }
    let ev = &w.events;
    match (&ev.first, &ev.last) {
        (Some(first), Some(_)) if w.state == WhyState::Observed => {
            lines.push(format!(
                "  {} event{} recorded, first seq {} at {}:",
                ev.count,
                if ev.count == 1 { "" } else { "s" },
                first.seq,
                text_secs(&first.at)
            ));
            for e in &ev.recent {
                lines.push(format!(
                    "    event seq {} {} rv {} ({})",
                    e.seq,
                    text_secs(&e.at),
                    e.resource_version,
                    change_text(e)
                ));
            }
        }
        (_, Some(last)) => lines.push(format!(
            "  last observed: event seq {} {} at rv {} ({})",
            last.seq,
            text_secs(&last.at),
            last.resource_version,
            change_text(last)
        )),
        _ => lines.push("  never observed: no event of it is in the log".into()),
    }
    if w.deleted
        && let Some(last) = &ev.last
    {
        lines.push(format!(
            "It is gone: deleted (event seq {} at {}).",
            last.seq,
            text_secs(&last.at)
        ));
    }
    for n in &w.notes {
        lines.push(format!("  note: {n}"));
    }
    lines
}

fn change_text(e: &EventView) -> &'static str {
    match (e.change, e.synthesized) {
        ("delete", true) => "gone: vanished while the watch was down",
        ("delete", _) => "deleted",
        _ => "seen",
    }
}

fn outcome_text(o: &OutcomeBrief) -> String {
    let mut s = format!(
        "outcome seq {} {}: {} by {} (attempt {})",
        o.seq,
        text_secs(&o.at),
        o.result,
        o.executor,
        o.attempt
    );
    if !o.message.is_empty() && o.result != "applied" {
        s.push_str(&format!(": {}", o.message));
    }
    s
}

/// A time carried as [`nanos`] text, shown to the second.
fn text_secs(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| text.to_string())
}

/// RFC 3339 with the nanoseconds, as [`Why`] carries times.
pub fn nanos(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
