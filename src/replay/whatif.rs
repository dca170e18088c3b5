//! `what-if`: recompute every recorded plan under another configuration (or this build's
//! planner) and list, action by action, what would have been done differently.
//!
//! Each plan is recomputed from the world exactly as recorded at that point: the observed
//! events and the actions really planned. So the answer is "at each decision the controller
//! made, what would the other configuration have decided", not a simulation of a cluster that
//! never existed.

use super::start::{Start, start_from};
use super::{Configured, PlannerFactory, Point, ReplayError, check_within};
use crate::log::LogReader;
use crate::record::{Body, ObjKey, RecordedAction};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What to recompute, and how.
#[derive(Default)]
pub struct WhatIfOptions<'a> {
    /// Settings to change (see [`super::parse_overlay`]), laid over the configuration the log
    /// records at each point; `None`: the log's own (to try this build's planner on an old log).
    pub config: Option<super::ConfigOverlay>,
    /// Only plans from this seq on, starting from the nearest checkpoint at or before it (the
    /// start of the log when it has none).
    pub from: u64,
    /// Fold from the start of the log even when `from` has a checkpoint before it.
    pub ignore_checkpoints: bool,
    /// Stop after this point.
    pub until: Option<Point>,
    /// The planner to try (default: this build's).
    pub planner: Option<&'a PlannerFactory>,
    /// Called with the seq reached, every [`super::PROGRESS_EVERY`] entries.
    pub progress: Option<&'a dyn Fn(u64)>,
}

/// One action that would have been different.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum ActionChange {
    /// The other configuration would also have done this.
    Added {
        /// The action it would have planned.
        action: RecordedAction,
    },
    /// The other configuration would not have done this.
    Removed {
        /// The action that was planned.
        action: RecordedAction,
    },
    /// Both act on the target, differently.
    Changed {
        /// What was planned.
        recorded: Box<RecordedAction>,
        /// What would have been planned.
        recomputed: Box<RecordedAction>,
        /// The fields that differ (`spec.replicas`, `verb`, ...), each `path: old → new`.
        fields: Vec<String>,
    },
}

impl ActionChange {
    /// The object acted on.
    pub fn target(&self) -> &ObjKey {
        match self {
            ActionChange::Added { action } | ActionChange::Removed { action } => &action.target,
            ActionChange::Changed { recorded, .. } => &recorded.target,
        }
    }

    /// The Applications (`namespace/name`) the change affects: the action's own, or for a
    /// shared Ingress the owners of the rules that differ.
    pub fn applications(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let (a, b) = match self {
            ActionChange::Added { action } | ActionChange::Removed { action } => {
                (Some(action), None)
            }
            ActionChange::Changed {
                recorded,
                recomputed,
                ..
            } => (Some(&**recorded), Some(&**recomputed)),
        };
        for x in [a, b].into_iter().flatten() {
            if let Some(app) = &x.app {
                out.insert(app.clone());
            }
        }
        if out.is_empty() {
            let (ra, rb) = (rule_owners(a), rule_owners(b));
            let ns = &self.target().namespace;
            let owners = |x: Option<&(String, Value)>, out: &mut BTreeSet<String>| {
                if let Some((owner, _)) = x {
                    out.insert(format!("{ns}/{owner}"));
                }
            };
            // A change outside the rules (the class, the annotations) affects every rule.
            let every = b.is_none() || without_rules(a) != without_rules(b);
            let hosts: BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
            for host in hosts {
                let (x, y) = (ra.get(host), rb.get(host));
                if every || x != y {
                    owners(x, &mut out);
                    owners(y, &mut out);
                }
            }
        }
        out
    }
}

/// An action's object without its Ingress rules.
fn without_rules(action: Option<&RecordedAction>) -> Option<Value> {
    let mut v: Value = action?.object.as_ref()?.parse().ok()?;
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("rules");
    }
    Some(v)
}

/// host → (backend service name, the rule) of an Ingress action's object: a rule's backend is
/// its Application's Service, named after it.
fn rule_owners(action: Option<&RecordedAction>) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    let Some(obj) = action
        .and_then(|a| a.object.as_ref())
        .and_then(|o| o.parse().ok())
    else {
        return out;
    };
    let rules = obj
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for rule in rules {
        let host = rule.get("host").and_then(Value::as_str).unwrap_or_default();
        let owner = rule
            .pointer("/http/paths/0/backend/service/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        out.insert(host.to_string(), (owner, rule));
    }
    out
}

/// The plans that would have been different.
#[derive(Debug, Clone, Serialize)]
pub struct PlanChange {
    /// The Plan entry.
    pub plan_seq: u64,
    /// When it was recorded.
    pub at: String,
    /// The differences, in target order.
    pub changes: Vec<ActionChange>,
}

/// What `what-if` found.
#[derive(Debug, Serialize)]
pub struct WhatIfReport {
    /// The file.
    pub path: std::path::PathBuf,
    /// The settings changed (`None`: the log's own, with this build's planner).
    pub config: Option<super::ConfigOverlay>,
    /// Plans recomputed.
    pub plans: u64,
    /// Plans with at least one difference.
    pub plans_differing: u64,
    /// The differences, plan by plan.
    pub plan_changes: Vec<PlanChange>,
    /// Every Application some difference affects.
    pub applications: BTreeSet<String>,
    /// Every object some difference acts on.
    pub objects: BTreeSet<ObjKey>,
    /// The last entry read.
    pub replayed_to: u64,
    /// Why reading stopped early, if it did.
    pub stopped: Option<String>,
    /// The checkpoint replay started from (`None`: the start of the log).
    pub started_from: Option<u64>,
    /// Checkpoints passed over on the way there, and why (or that there was none).
    pub notes: Vec<String>,
}

/// Recomputes every plan in range under `options` and compares, action by action.
pub fn what_if(
    reader: &LogReader,
    options: &WhatIfOptions<'_>,
) -> Result<WhatIfReport, ReplayError> {
    let last = reader.last_seq()?;
    if let Some(p) = options.until {
        check_within(reader, p)?;
    }
    let until_seq = match options.until {
        Some(Point::Seq(s)) => s,
        _ => last,
    };
    let mut report = WhatIfReport {
        path: reader.path().to_path_buf(),
        config: options.config.clone(),
        plans: 0,
        plans_differing: 0,
        plan_changes: Vec::new(),
        applications: BTreeSet::new(),
        objects: BTreeSet::new(),
        replayed_to: 0,
        stopped: None,
        started_from: None,
        notes: Vec::new(),
    };
    let mut configured =
        Configured::new(options.config.clone(), options.planner).map_err(|problem| {
            ReplayError::Config {
                path: reader.path().to_path_buf(),
                seq: 0,
                problem,
            }
        })?;
    let start = if options.ignore_checkpoints {
        Start::beginning()
    } else {
        start_from(reader, options.from)?
    };
    configured.resume(reader, &start)?;
    report.started_from = start.checkpoint;
    report.notes = start.notes;
    let first = start.first;
    let mut fold = start.fold;
    // The plan whose recorded actions are being collected: (seq, at, recomputed, recorded).
    let mut open: Option<(u64, String, Vec<RecordedAction>, Vec<RecordedAction>)> = None;
    let close = |open: &mut Option<(u64, String, Vec<RecordedAction>, Vec<RecordedAction>)>,
                 report: &mut WhatIfReport| {
        if let Some((seq, at, recomputed, recorded)) = open.take() {
            let changes = compare(&recorded, &recomputed);
            if !changes.is_empty() {
                report.plans_differing += 1;
                for c in &changes {
                    report.applications.extend(c.applications());
                    report.objects.insert(c.target().clone());
                }
                report.plan_changes.push(PlanChange {
                    plan_seq: seq,
                    at,
                    changes,
                });
            }
        }
    };
    let mut scan = super::Scan::new(reader, first, until_seq, options.until, options.progress);
    for entry in scan.by_ref() {
        match &entry.body {
            Body::Action(a) => {
                if let Some((seq, _, _, recorded)) = &mut open
                    && *seq == a.plan_seq
                {
                    recorded.push(a.action.clone());
                }
            }
            body => {
                close(&mut open, &mut report);
                match body {
                    Body::Marker(_) => configured.follow(reader, &entry)?,
                    Body::Plan(p) if entry.seq >= options.from => {
                        report.plans += 1;
                        let recomputed = configured
                            .plan(&fold, &p.scope)
                            .into_iter()
                            .map(RecordedAction::from)
                            .collect();
                        open = Some((
                            entry.seq,
                            entry
                                .at
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                            recomputed,
                            Vec::new(),
                        ));
                    }
                    _ => {}
                }
            }
        }
        fold.apply(entry.seq, entry.at, &entry.body);
        report.replayed_to = entry.seq;
    }
    close(&mut open, &mut report);
    report.stopped = scan.stopped.take();
    Ok(report)
}

/// The differences between two action lists of one plan, matched by target.
pub fn compare(recorded: &[RecordedAction], recomputed: &[RecordedAction]) -> Vec<ActionChange> {
    let by_target = |list: &[RecordedAction]| -> BTreeMap<ObjKey, RecordedAction> {
        list.iter().map(|a| (a.target.clone(), a.clone())).collect()
    };
    let (old, new) = (by_target(recorded), by_target(recomputed));
    let targets: BTreeSet<&ObjKey> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for t in targets {
        match (old.get(t), new.get(t)) {
            (Some(a), None) => out.push(ActionChange::Removed { action: a.clone() }),
            (None, Some(b)) => out.push(ActionChange::Added { action: b.clone() }),
            (Some(a), Some(b)) if a.id != b.id => {
                let mut fields = Vec::new();
                if a.verb != b.verb {
                    fields.push(format!("verb: {} → {}", a.verb, b.verb));
                }
                if a.reason != b.reason {
                    fields.push(format!("reason: {} → {}", a.reason, b.reason));
                }
                let parse = |x: &RecordedAction| x.object.as_ref().and_then(|o| o.parse().ok());
                json_diff(
                    &parse(a).unwrap_or(Value::Null),
                    &parse(b).unwrap_or(Value::Null),
                    "",
                    &mut fields,
                );
                out.push(ActionChange::Changed {
                    recorded: Box::new(a.clone()),
                    recomputed: Box::new(b.clone()),
                    fields,
                });
            }
            _ => {}
        }
    }
    out
}

/// Appends `path: old → new` for every leaf that differs between `a` and `b`
/// ([`super::history::changes`], as text).
pub fn json_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    let show = |v: Option<Value>| match v {
        None => "(absent)".to_string(),
        Some(v) => v.to_string(),
    };
    let mut changes = Vec::new();
    super::history::changes(a, b, path, &mut changes);
    out.extend(
        changes
            .into_iter()
            .map(|c| format!("{}: {} → {}", c.path, show(c.from), show(c.to))),
    );
}
