//! `timeline`: an incident's narrative for one Application or object, in log order: what was
//! observed (and what changed), what was planned and why, what was applied, by whom, how it went.

use super::start::start_from;
use super::{Point, ReplayError};
use crate::log::{Filter, LogReader};
use crate::record::{Body, Change, Entry, EntryKind, ObjKey, OutcomeResult};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Whose story to tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// An Application (`namespace/name`) with its children and its share of plans.
    App(String),
    /// One object.
    Object(ObjKey),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::App(a) => write!(f, "Application {a}"),
            Subject::Object(k) => write!(f, "{k}"),
        }
    }
}

/// One step of the story.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineItem {
    /// The entry.
    pub seq: u64,
    /// When it was recorded (RFC 3339, milliseconds).
    pub at: String,
    /// `event`, `plan`, `action` or `outcome`.
    pub kind: String,
    /// What happened, in a sentence.
    pub text: String,
    /// Details: the fields an observation changed, an outcome's message.
    pub details: Vec<String>,
}

impl Timeline {
    /// The story as text: a header naming `subject` (and the checkpoint read from), then one
    /// line per step (seq, time, kind, what happened) with its details indented under it.
    pub fn write_text(
        &self,
        subject: &Subject,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        writeln!(
            out,
            "timeline of {subject} ({} steps){}",
            self.items.len(),
            self.started_from
                .map(|c| format!(", read from the checkpoint at entry {c}"))
                .unwrap_or_default()
        )?;
        for it in &self.items {
            writeln!(out, "{:>8}  {}  {:<7}  {}", it.seq, it.at, it.kind, it.text)?;
            for d in &it.details {
                writeln!(out, "{:>8}  {:>24}    {d}", "", "")?;
            }
        }
        Ok(())
    }
}

/// Metadata the API server changes on every write: not news in a timeline.
const NOISE: &[&str] = &[
    "resourceVersion",
    "generation",
    "managedFields",
    "creationTimestamp",
    "uid",
];

/// The story of `subject` between `since` and `until` (both inclusive; `None`: open).
pub fn timeline(
    reader: &LogReader,
    subject: &Subject,
    since: Option<Point>,
    until: Option<Point>,
) -> Result<Vec<TimelineItem>, ReplayError> {
    Ok(timeline_from(reader, subject, since, until, 1)?.items)
}

/// A story told from a checkpoint ([`timeline_from`]).
#[derive(Clone, Debug)]
pub struct Timeline {
    /// The steps.
    pub items: Vec<TimelineItem>,
    /// The checkpoint the log was read from (`None`: its start).
    pub started_from: Option<u64>,
    /// Checkpoints passed over on the way there, and why (or that there was none).
    pub notes: Vec<String>,
}

/// [`timeline`] from entry `from` on (and from `since`, when that is later), reading the log
/// from the nearest checkpoint at or before `from` instead of its start: the objects of the
/// subject as that checkpoint holds them are what the first steps are compared with. `from`
/// 0 or 1: the whole log, from its start.
pub fn timeline_from(
    reader: &LogReader,
    subject: &Subject,
    since: Option<Point>,
    until: Option<Point>,
    from: u64,
) -> Result<Timeline, ReplayError> {
    let start = start_from(reader, from)?;
    let filter = Filter::new()
        .kinds(&[EntryKind::Event, EntryKind::Action, EntryKind::Outcome])
        .seqs(start.first..);
    let filter = match subject {
        Subject::App(app) => filter.application(app),
        Subject::Object(key) => filter.object(key),
    };
    // Previous observation of each object, to say what changed (tracked from the start of the
    // log, or from the checkpoint, so the first item after `since` still shows its change).
    let mut last_seen: BTreeMap<ObjKey, Value> = BTreeMap::new();
    let world = start.fold.world();
    let seeded: Vec<ObjKey> = match subject {
        Subject::Object(key) => vec![key.clone()],
        Subject::App(app) => match app.split_once('/') {
            Some((ns, name)) => {
                let mut keys: Vec<ObjKey> = world.children_of(ns, name).cloned().collect();
                keys.push(ObjKey::new(crate::world::APPLICATION, ns, name));
                keys
            }
            None => Vec::new(),
        },
    };
    for key in seeded {
        if let Some(o) = world.object(&key) {
            last_seen.insert(key, quiet(o.object().clone()));
        }
    }
    let mut items = Vec::new();
    let mut plans_told: BTreeSet<u64> = BTreeSet::new();
    let mut any = !last_seen.is_empty();
    let shown_from = Point::Seq(from.max(1));
    for entry in reader.query(&filter) {
        let entry = entry?;
        any = true;
        if let Some(u) = until
            && !u.includes(&entry)
        {
            break;
        }
        let shown = since.is_none_or(|s| s.reached_by(&entry)) && shown_from.reached_by(&entry);
        if let Body::Action(a) = &entry.body
            && shown
            && plans_told.insert(a.plan_seq)
            && let Some(plan) = reader.get(a.plan_seq)?
        {
            items.push(item(&plan, &mut BTreeMap::new()));
        }
        let it = item(&entry, &mut last_seen);
        if shown {
            items.push(it);
        }
    }
    if !any {
        return Err(ReplayError::Unknown {
            path: reader.path().to_path_buf(),
            what: match start.checkpoint {
                None => subject.to_string(),
                Some(c) => format!("{subject} from its checkpoint at entry {c} on"),
            },
        });
    }
    Ok(Timeline {
        items,
        started_from: start.checkpoint,
        notes: start.notes,
    })
}

fn item(entry: &Entry, last_seen: &mut BTreeMap<ObjKey, Value>) -> TimelineItem {
    let mut details = Vec::new();
    let text = match &entry.body {
        Body::Event(e) => match e.change {
            Change::Upsert => {
                let now = e
                    .object
                    .as_ref()
                    .and_then(|o| o.parse().ok())
                    .map(quiet)
                    .unwrap_or(Value::Null);
                match last_seen.insert(e.key.clone(), now.clone()) {
                    None => format!("observed {} (rv {}), first seen", e.key, e.resource_version),
                    Some(before) => {
                        super::whatif::json_diff(&before, &now, "", &mut details);
                        for d in &mut details {
                            shorten(d, 200);
                        }
                        if details.is_empty() {
                            format!(
                                "observed {} (rv {}), nothing of note changed",
                                e.key, e.resource_version
                            )
                        } else {
                            format!("observed {} (rv {}), changed:", e.key, e.resource_version)
                        }
                    }
                }
            }
            Change::Delete => {
                last_seen.remove(&e.key);
                if e.synthesized {
                    format!(
                        "{} is gone: it vanished while the watch was down (last rv {})",
                        e.key, e.resource_version
                    )
                } else {
                    format!(
                        "observed {} deleted (last rv {})",
                        e.key, e.resource_version
                    )
                }
            }
        },
        Body::Plan(p) => {
            let scope = if p.scope.is_empty() {
                "the whole world".to_string()
            } else {
                p.scope
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "plan {} read the log up to entry {} and replanned {scope}: {} action(s)",
                entry.seq,
                p.upto_seq,
                p.action_ids.len()
            )
        }
        Body::Action(a) => {
            let act = &a.action;
            let what = match act.verb {
                crate::record::Verb::Status => "write the status of",
                verb => verb.as_str(),
            };
            format!(
                "asked to {what} {} because {} [{}]",
                act.target, act.reason, act.id
            )
        }
        Body::Outcome(o) => {
            let what = match o.result {
                OutcomeResult::Applied => "applied",
                OutcomeResult::NoOp => "found nothing to change for",
                OutcomeResult::Superseded => "skipped as superseded (a newer plan already acted)",
                OutcomeResult::Conflict => "hit a conflict on",
                OutcomeResult::Failed => "failed",
                OutcomeResult::Abandoned => "gave up on",
            };
            if !o.message.is_empty() {
                details.push(o.message.clone());
            }
            format!(
                "{} {what} {} (attempt {}{}){}",
                o.executor,
                o.action_id,
                o.attempt,
                if o.retry { ", will retry" } else { "" },
                o.resource_version
                    .as_ref()
                    .map(|rv| format!(" → rv {rv}"))
                    .unwrap_or_default(),
            )
        }
        Body::Marker(m) => format!("marker {:?}", m.marker),
    };
    TimelineItem {
        seq: entry.seq,
        at: entry
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: entry.kind().to_string(),
        text,
        details,
    }
}

/// Cuts `s` to at most `max` characters, marking the cut.
fn shorten(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
}

/// The object without the metadata every write changes.
fn quiet(v: Value) -> Value {
    super::history::without_metadata(v, NOISE)
}
