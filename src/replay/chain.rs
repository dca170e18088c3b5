//! `chain`: one entry's place in the story: the events a plan read → the plan → its actions →
//! their outcomes → the object's next observed state, found through indexed, bounded queries.
//!
//! It owns that walk and returns plain data (serializable as is); it must not print, parse
//! flags, or write the log. The narrative text is `audit why`'s ([`super::why::narrate`]).

use super::why::{BasisView, EventView, basis_view, event_view};
use super::{Point, ReplayError, check_within};
use crate::log::{Filter, LogReader};
use crate::record::{Body, Change, Entry, EntryKind, ObjKey};
use serde::Serialize;

/// At most this many actions of one plan are shown (a resync plans hundreds).
pub const ACTIONS_SHOWN: usize = 20;
/// How far past an event (in seqs) the action that read it is looked for.
const READ_WITHIN: u64 = 10_000;

/// One entry and the chain around it.
#[derive(Debug, Serialize)]
pub struct Chain {
    /// The entry asked about.
    pub seq: u64,
    /// Its kind.
    pub kind: EntryKind,
    /// The events the plan read for the shown actions (their basis), oldest first.
    pub events: Vec<BasisView>,
    /// The plan.
    pub plan: Option<ChainPlan>,
    /// Its actions (the one asked about, or the plan's first [`ACTIONS_SHOWN`]).
    pub actions: Vec<ChainAction>,
    /// The object asked about, for `audit why` (the target of the first action shown, or the
    /// event's object).
    pub object: Option<ObjKey>,
    /// What the chain could not find, in words.
    pub notes: Vec<String>,
}

/// A plan in a chain.
#[derive(Debug, Serialize)]
pub struct ChainPlan {
    /// Its seq.
    pub seq: u64,
    /// When it was recorded.
    pub at: String,
    /// The log prefix it read.
    pub upto_seq: u64,
    /// Its reconciler.
    pub reconciler: String,
    /// What it replanned (empty: everything).
    pub scope: Vec<String>,
    /// How many actions it produced.
    pub action_count: usize,
}

/// An action in a chain, with what became of it.
#[derive(Debug, Serialize)]
pub struct ChainAction {
    /// Its seq.
    pub seq: u64,
    /// When it was recorded.
    pub at: String,
    /// The action's id (the `Audit-ID` the executor sends with every request for it).
    pub action_id: String,
    /// Its verb.
    pub verb: String,
    /// Its target, `KIND/NAMESPACE/NAME`.
    pub target: String,
    /// The target's apiVersion.
    pub api_version: String,
    /// Why.
    pub reason: String,
    /// Each attempt's outcome, in order.
    pub outcomes: Vec<ChainOutcome>,
    /// The target's first observation after the action, if any.
    pub next_observed: Option<EventView>,
}

/// One outcome in a chain.
#[derive(Debug, Serialize)]
pub struct ChainOutcome {
    /// Its seq.
    pub seq: u64,
    /// When it was recorded.
    pub at: String,
    /// applied, noop, superseded, conflict, failed, abandoned.
    pub result: String,
    /// Which executor.
    pub executor: String,
    /// Which attempt.
    pub attempt: u32,
    /// The object's resourceVersion after it.
    pub resource_version: Option<String>,
    /// The `Audit-ID` of its requests (the action id).
    pub audit_id: String,
    /// The executor's message.
    pub message: String,
}

/// The chain around entry `seq` (which must lie within the log). A plan shows its actions; an
/// action or outcome shows its plan and siblings' basis; an event shows the first action
/// within the next [`READ_WITHIN`] entries whose basis names it at its resourceVersion.
pub fn chain(reader: &LogReader, seq: u64) -> Result<Chain, ReplayError> {
    check_within(reader, Point::Seq(seq))?;
    let entry = reader
        .get_stored(seq)?
        .ok_or_else(|| ReplayError::Unknown {
            path: reader.path().to_path_buf(),
            what: format!("entry {seq}"),
        })?;
    let mut chain = Chain {
        seq,
        kind: entry.kind(),
        events: Vec::new(),
        plan: None,
        actions: Vec::new(),
        object: None,
        notes: Vec::new(),
    };
    // (plan seq, the one action to show)
    let focus: Option<(u64, Option<Entry>)> = match &entry.body {
        Body::Plan(_) => Some((seq, None)),
        Body::Action(a) => Some((a.plan_seq, Some(entry.clone()))),
        Body::Outcome(o) => {
            let target = object_of(&entry);
            let mut found = None;
            if let Some(target) = &target {
                let filter = Filter::new()
                    .object(target)
                    .kinds(&[EntryKind::Action])
                    .seqs(..=seq)
                    .as_stored();
                for e in reader.query(&filter) {
                    let e = e?;
                    if matches!(&e.body, Body::Action(a) if a.action.id == o.action_id) {
                        found = Some(e);
                    }
                }
            }
            match found {
                Some(a) => match &a.body {
                    Body::Action(r) => Some((r.plan_seq, Some(a.clone()))),
                    _ => None,
                },
                None => {
                    chain.notes.push(format!(
                        "the action {} this outcome reports on is not in the log before it",
                        o.action_id
                    ));
                    None
                }
            }
        }
        Body::Event(ev) => {
            chain.object = Some(ev.key.clone());
            let filter = Filter::new()
                .object(&ev.key)
                .kinds(&[EntryKind::Action])
                .seqs(seq + 1..=seq.saturating_add(READ_WITHIN))
                .as_stored();
            let key = ev.key.to_string();
            let mut found = None;
            for e in reader.query(&filter) {
                let e = e?;
                if let Body::Action(a) = &e.body
                    && a.action.basis.get(&key) == Some(&ev.resource_version)
                {
                    found = Some((a.plan_seq, Some(e)));
                    break;
                }
            }
            if found.is_none() {
                chain.notes.push(format!(
                    "no action in the next {READ_WITHIN} entries was planned from this \
                     observation of {key} (rv {})",
                    ev.resource_version
                ));
                let view = event_view(&entry, ev);
                chain.events.push(BasisView {
                    key,
                    resource_version: Some(ev.resource_version.clone()),
                    event: Some(view),
                    pending_action: None,
                });
            }
            found
        }
        Body::Marker(m) => {
            chain
                .notes
                .push(format!("a {:?} marker: no plan or action", m.marker));
            None
        }
    };
    let Some((plan_seq, action)) = focus else {
        return Ok(chain);
    };
    let mut read_upto = seq;
    match reader.get_stored(plan_seq)? {
        Some(pe) => match &pe.body {
            Body::Plan(p) => {
                read_upto = p.upto_seq;
                chain.plan = Some(ChainPlan {
                    seq: pe.seq,
                    at: super::why::nanos(pe.at),
                    upto_seq: p.upto_seq,
                    reconciler: p.reconciler.clone(),
                    scope: p.scope.iter().map(ToString::to_string).collect(),
                    action_count: p.action_ids.len(),
                });
            }
            other => chain.notes.push(format!(
                "the action names plan seq {plan_seq}, but that entry is a {}",
                other.kind()
            )),
        },
        None => chain
            .notes
            .push(format!("plan seq {plan_seq} is not in the log")),
    }
    let actions: Vec<Entry> = match action {
        Some(a) => vec![a],
        None => {
            let count = chain.plan.as_ref().map_or(0, |p| p.action_count) as u64;
            let filter = Filter::new()
                .kinds(&[EntryKind::Action])
                .seqs(plan_seq + 1..=plan_seq.saturating_add(count * 2 + 64))
                .as_stored();
            let mut found = Vec::new();
            for e in reader.query(&filter) {
                let e = e?;
                if matches!(&e.body, Body::Action(a) if a.plan_seq == plan_seq) {
                    found.push(e);
                    if found.len() == ACTIONS_SHOWN {
                        break;
                    }
                }
            }
            found
        }
    };
    for a in &actions {
        let Body::Action(r) = &a.body else { continue };
        let target = r.action.target.clone();
        if chain.object.is_none() {
            chain.object = Some(target.clone());
        }
        for (k, v) in &r.action.basis {
            if chain.events.iter().any(|b| &b.key == k) {
                continue;
            }
            chain.events.push(basis_view(
                reader,
                &target,
                k,
                v,
                read_upto,
                &mut chain.notes,
            )?);
        }
        let mut view = ChainAction {
            seq: a.seq,
            at: super::why::nanos(a.at),
            action_id: r.action.id.clone(),
            verb: r.action.verb.to_string(),
            target: target.to_string(),
            api_version: r.action.api_version.clone(),
            reason: r.action.reason.clone(),
            outcomes: Vec::new(),
            next_observed: None,
        };
        // Outcomes and the next observation: the target's entries after the action, until
        // the last attempt settles (no retry) and the next observation is seen, at most 256.
        let filter = Filter::new()
            .object(&target)
            .kinds(&[EntryKind::Event, EntryKind::Outcome])
            .seqs(a.seq + 1..)
            .limit(256)
            .as_stored();
        let mut settled = false;
        for e in reader.query(&filter) {
            let e = e?;
            match &e.body {
                Body::Outcome(o) if o.action_id == r.action.id => {
                    settled = !o.retry;
                    view.outcomes.push(ChainOutcome {
                        seq: e.seq,
                        at: super::why::nanos(e.at),
                        result: o.result.as_str().to_string(),
                        executor: o.executor.clone(),
                        attempt: o.attempt,
                        resource_version: o.resource_version.clone(),
                        audit_id: o.action_id.clone(),
                        message: o.message.clone(),
                    });
                }
                Body::Event(ev) if view.next_observed.is_none() => {
                    view.next_observed = Some(event_view(&e, ev));
                    if ev.change == Change::Delete && r.action.verb.as_str() != "delete" {
                        chain
                            .notes
                            .push(format!("{target} was deleted before the action settled"));
                    }
                }
                _ => {}
            }
            if settled && view.next_observed.is_some() {
                break;
            }
        }
        chain.actions.push(view);
    }
    chain
        .events
        .sort_by_key(|b| b.event.as_ref().map_or(0, |e| e.seq));
    Ok(chain)
}

/// The object an entry's keys name, if they name one.
fn object_of(entry: &Entry) -> Option<ObjKey> {
    let k = &entry.keys;
    Some(ObjKey::new(
        k.object_kind.as_deref()?,
        k.namespace.as_deref().unwrap_or(""),
        k.object_name.as_deref()?,
    ))
}
