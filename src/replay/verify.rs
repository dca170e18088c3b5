//! `verify`: fold the log and recompute every recorded plan from exactly the prefix it read;
//! identical actions, or the first divergence with the actions side by side and its events.
//! Each re-drive is checked too: at its time, the fold must show its action pending past its
//! answer deadline. So is each checkpoint: it must hold exactly the fold of the entries before
//! it (same digest), so a checkpoint cannot lie.
//!
//! With `from`, it starts from the nearest checkpoint at or before it ([`super::start`]) and
//! checks the hash chain from that checkpoint on: the time it takes grows with what came after
//! the checkpoint, not with the log.

use super::start::{Start, start_from};
use super::{Configured, PlannerFactory, Point, ReplayError, check_within, events_read};
use crate::log::LogReader;
use crate::record::{
    Action, Body, Entry, MarkerKind, MarkerRecord, ObjKey, PlanRecord, RecordedAction, Redrive,
};
use crate::world::checkpoint::{self, CheckpointDetail, digest_of};
use crate::world::{CHECKPOINT_FORMAT, Fold};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::path::PathBuf;

/// What to verify, and with which planner.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Check plans from this seq on, starting from the nearest checkpoint at or before it
    /// (the start of the log when it has none); 0 or 1: everything, from the start.
    pub from: u64,
    /// Fold from the start of the log even when `from` has a checkpoint before it.
    pub ignore_checkpoints: bool,
    /// Stop after this point (default: the end of the log).
    pub until: Option<Point>,
    /// The planner to recompute with (default: this build's, under the log's configuration).
    pub planner: Option<&'a PlannerFactory>,
    /// Skip the hash-chain check (the replay alone).
    pub skip_chain: bool,
    /// Called with the seq reached, every [`super::PROGRESS_EVERY`] entries.
    pub progress: Option<&'a dyn Fn(u64)>,
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The file.
    pub path: PathBuf,
    /// The last seq of the log when verification started.
    pub log_last_seq: u64,
    /// The last entry replayed.
    pub replayed_to: u64,
    /// Entries read, by kind.
    pub entries: u64,
    /// Events folded.
    pub events: u64,
    /// Plans in the range.
    pub plans: u64,
    /// Plans recomputed and found identical.
    pub plans_identical: u64,
    /// Actions re-derived identically.
    pub actions: u64,
    /// Outcomes folded.
    pub outcomes: u64,
    /// Markers read.
    pub markers: u64,
    /// SHA-256 over the recomputed action stream (`plan seq`, NUL, action id, newline per
    /// action): equal digests mean equal decisions.
    pub digest: String,
    /// The hash chain's verdict, unless skipped: `None` when intact.
    pub chain_problem: Option<String>,
    /// Where the chain was checked from (1: the whole log; the checkpoint's seq when replay
    /// started from one); `None` when skipped.
    pub chain_from: Option<u64>,
    /// The checkpoint replay started from (`None`: the start of the log).
    pub started_from: Option<u64>,
    /// Checkpoints in the range found to hold exactly the fold of the entries before them
    /// (the one started from is not counted).
    pub checkpoints: u64,
    /// What is worth knowing about the run: checkpoints passed over and why, or not compared.
    pub notes: Vec<String>,
    /// The first divergence, if any (verification stops there).
    pub divergence: Option<Divergence>,
    /// Why reading stopped early: the log is truncated or damaged after `replayed_to`.
    pub stopped: Option<String>,
    /// Entries the fold could not read (they changed nothing), with why.
    pub rejected: Vec<(u64, String)>,
}

impl VerifyReport {
    /// True when the chain is intact, every plan was recomputed identically and the whole
    /// range could be read.
    pub fn is_ok(&self) -> bool {
        self.chain_problem.is_none() && self.divergence.is_none() && self.stopped.is_none()
    }
}

/// The first plan replay did not recompute identically (or the first re-drive or checkpoint
/// that does not agree with the fold).
#[derive(Debug, Serialize)]
pub struct Divergence {
    /// What diverged: `plan`, `redrive` or `checkpoint`.
    pub kind: &'static str,
    /// The Plan entry's seq (the marker's, for a re-drive or a checkpoint).
    pub plan_seq: u64,
    /// The prefix it read.
    pub upto_seq: u64,
    /// When it was recorded.
    pub at: String,
    /// What it replanned (empty: the whole world).
    pub scope: Vec<ObjKey>,
    /// What differs, in a sentence.
    pub why: String,
    /// The actions recorded (from the log's Action entries).
    pub recorded: Vec<RecordedAction>,
    /// The actions recomputed.
    pub recomputed: Vec<RecordedAction>,
    /// A unified diff, recorded (`-`) against recomputed (`+`), one block per action.
    pub diff: String,
    /// The last events the plan read (of its scope when it has one), oldest first, as
    /// `(seq, one-line description)`.
    pub last_events: Vec<(u64, String)>,
}

/// Folds the log and recomputes every recorded plan, stopping at the first divergence.
pub fn verify(
    reader: &LogReader,
    options: &VerifyOptions<'_>,
) -> Result<VerifyReport, ReplayError> {
    let log_last_seq = reader.last_seq()?;
    let until_seq = match options.until {
        None => log_last_seq,
        Some(p) => {
            check_within(reader, p)?;
            match p {
                Point::Seq(s) => s,
                Point::Time(_) => log_last_seq,
            }
        }
    };
    let start = if options.ignore_checkpoints {
        Start::beginning()
    } else {
        start_from(reader, options.from)?
    };
    let chain_from = (!options.skip_chain).then(|| start.checkpoint.unwrap_or(1));
    let chain_problem = if options.skip_chain {
        None
    } else {
        let chain = match start.checkpoint {
            None => reader.verify()?,
            Some(seq) => reader.verify_from(seq)?,
        };
        match &chain.problem {
            Some(p) => Some(format!("{chain}; first bad entry {}", p.seq())),
            None if !chain.is_ok() => Some(chain.to_string()),
            None => None,
        }
    };
    let mut report = VerifyReport {
        path: reader.path().to_path_buf(),
        log_last_seq,
        replayed_to: 0,
        entries: 0,
        events: 0,
        plans: 0,
        plans_identical: 0,
        actions: 0,
        outcomes: 0,
        markers: 0,
        digest: String::new(),
        chain_problem,
        chain_from,
        started_from: start.checkpoint,
        checkpoints: 0,
        notes: start.notes.clone(),
        divergence: None,
        stopped: None,
        rejected: Vec::new(),
    };
    let mut configured =
        Configured::new(None, options.planner).map_err(|problem| ReplayError::Config {
            path: reader.path().to_path_buf(),
            seq: 0,
            problem,
        })?;
    configured.resume(reader, &start)?;
    let started_from = start.checkpoint;
    let first = start.first;
    let mut fold = start.fold;
    let mut hasher = Sha256::new();
    // The action entries the last plan announced, still to come: (plan seq, id).
    let mut expected: VecDeque<(u64, String)> = VecDeque::new();
    let mut scan = super::Scan::new(reader, first, until_seq, options.until, options.progress);
    for entry in scan.by_ref() {
        report.entries += 1;
        match &entry.body {
            Body::Event(_) => report.events += 1,
            Body::Outcome(_) => report.outcomes += 1,
            Body::Marker(m) => {
                report.markers += 1;
                if m.marker == MarkerKind::Checkpoint && Some(entry.seq) != started_from {
                    match check_checkpoint(&entry, m, &fold) {
                        Checked::Same => report.checkpoints += 1,
                        Checked::NotCompared(note) => report.notes.push(note),
                        Checked::Differs(why) => {
                            report.divergence = Some(marker_divergence("checkpoint", &entry, why));
                            break;
                        }
                    }
                }
                if let Some(why) = check_redrive(&entry, m, &fold) {
                    report.divergence = Some(marker_divergence("redrive", &entry, why));
                    break;
                }
                configured.follow(reader, &entry)?;
            }
            Body::Action(a) => {
                let announced = expected.pop_front();
                if announced.as_ref() != Some(&(a.plan_seq, a.action.id.clone())) {
                    let why = match announced {
                        Some((plan, id)) => format!(
                            "entry {} records action {} of plan {}, but plan {plan} announced \
                             {id} here",
                            entry.seq, a.action.id, a.plan_seq
                        ),
                        None => format!(
                            "entry {} records action {} of plan {}, which announced no more \
                             actions",
                            entry.seq, a.action.id, a.plan_seq
                        ),
                    };
                    report.divergence = Some(divergence_at(
                        reader,
                        &configured,
                        &fold,
                        started_from,
                        a.plan_seq,
                        why,
                        None,
                    )?);
                    break;
                }
            }
            Body::Plan(p) => {
                if let Some((plan, id)) = expected.front() {
                    let why = format!(
                        "plan {plan} announced action {id}, but the log has no such entry \
                         before the next plan at {}",
                        entry.seq
                    );
                    report.divergence = Some(divergence_at(
                        reader,
                        &configured,
                        &fold,
                        started_from,
                        *plan,
                        why,
                        None,
                    )?);
                    break;
                }
                report.plans += 1;
                if let Some((why, recomputed)) =
                    check_plan(&entry, p, &fold, &configured, options.from, &mut hasher)
                {
                    report.divergence = Some(divergence_at(
                        reader,
                        &configured,
                        &fold,
                        started_from,
                        entry.seq,
                        why,
                        recomputed,
                    )?);
                    break;
                }
                if entry.seq >= options.from {
                    report.plans_identical += 1;
                    report.actions += p.action_ids.len() as u64;
                }
                expected.extend(p.action_ids.iter().map(|id| (entry.seq, id.clone())));
            }
        }
        fold.apply(entry.seq, entry.at, &entry.body);
        report.replayed_to = entry.seq;
    }
    report.stopped = scan.stopped.take();
    if report.divergence.is_none()
        && report.stopped.is_none()
        && let Some((plan, id)) = expected.front()
        && report.replayed_to == log_last_seq
    {
        let why = format!("plan {plan} announced action {id}, but the log ends before it");
        report.divergence = Some(divergence_at(
            reader,
            &configured,
            &fold,
            started_from,
            *plan,
            why,
            None,
        )?);
    }
    report.digest = hex::encode(hasher.finalize());
    report.rejected = fold.rejected().to_vec();
    Ok(report)
}

/// What a checkpoint in the range says against the fold right before it.
enum Checked {
    /// It holds exactly that fold.
    Same,
    /// It is in a format this build does not know: not compared (the note says so).
    NotCompared(String),
    /// It does not hold that fold (or cannot be read): why.
    Differs(String),
}

/// Compares a checkpoint marker with the fold of the entries before it: its detail must be
/// readable, say it holds the entry right before it, and its state must match its own digest
/// and the digest of the fold's own state (the fold's bytes are computed again here).
fn check_checkpoint(entry: &Entry, marker: &MarkerRecord, fold: &Fold) -> Checked {
    let seq = entry.seq;
    let detail = match CheckpointDetail::of(marker) {
        None => return Checked::Same,
        Some(Ok(d)) => d,
        Some(Err(e)) => return Checked::Differs(format!("the checkpoint at entry {seq}: {e}")),
    };
    if detail.format != CHECKPOINT_FORMAT {
        return Checked::NotCompared(format!(
            "the checkpoint at entry {seq} is in format {}, which this build does not know \
             (it knows {CHECKPOINT_FORMAT}): not compared with the fold",
            detail.format
        ));
    }
    if detail.upto_seq != fold.last_seq() {
        return Checked::Differs(format!(
            "the checkpoint at entry {seq} says it holds the world at entry {}, but it sits after \
             entry {}",
            detail.upto_seq,
            fold.last_seq()
        ));
    }
    let Some(state) = &marker.state else {
        return Checked::Differs(format!("the checkpoint at entry {seq} carries no state"));
    };
    let own = digest_of(state.as_bytes());
    if own != detail.digest {
        return Checked::Differs(format!(
            "the checkpoint at entry {seq} is damaged: its state's sha256 is {own}, its detail \
             records {}",
            detail.digest
        ));
    }
    let folded = match fold.state_digest() {
        Ok(d) => d,
        Err(e) => return Checked::Differs(e),
    };
    if folded != detail.digest {
        let first = fold
            .checkpoint()
            .ok()
            .and_then(|c| checkpoint::first_difference(state.as_bytes(), &c.state))
            .map(|d| format!("; first difference: {d}"))
            .unwrap_or_default();
        return Checked::Differs(format!(
            "the checkpoint at entry {seq} does not hold the world the log folds to at entry {}: \
             it records sha256 {}, the fold gives {folded}{first}",
            detail.upto_seq, detail.digest
        ));
    }
    Checked::Same
}

/// A divergence at a marker (`kind`): no actions to show, only why.
fn marker_divergence(kind: &'static str, entry: &Entry, why: String) -> Divergence {
    Divergence {
        kind,
        plan_seq: entry.seq,
        upto_seq: entry.seq.saturating_sub(1),
        at: entry
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        scope: Vec::new(),
        why,
        recorded: Vec::new(),
        recomputed: Vec::new(),
        diff: String::new(),
        last_events: Vec::new(),
    }
}

/// Checks a re-drive marker against the fold right before it: `Some(why)` when its action was
/// not pending past its answer deadline at the marker's time (or the marker cannot be read).
fn check_redrive(entry: &Entry, marker: &MarkerRecord, fold: &Fold) -> Option<String> {
    if marker.marker != MarkerKind::Redrive {
        return None;
    }
    let Some(r) = Redrive::of(marker) else {
        return Some(format!(
            "entry {} is a re-drive whose detail cannot be read: {}",
            entry.seq, marker.detail
        ));
    };
    let overdue = fold.overdue(entry.at);
    match overdue.iter().find(|o| o.action_id == r.action_id) {
        Some(o) if o.action_seq == r.action_seq && o.redrives + 1 == r.attempt => None,
        Some(o) => Some(format!(
            "entry {} re-drives action {} (seq {}, attempt {}), but the fold has it at seq {} \
             after {} re-drives",
            entry.seq, r.action_id, r.action_seq, r.attempt, o.action_seq, o.redrives
        )),
        None => Some(format!(
            "entry {} re-drives action {}, which at {} was not pending past its answer deadline",
            entry.seq,
            r.action_id,
            entry
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )),
    }
}

/// Recomputes one plan; `Some((why, what was recomputed))` when it differs from the record.
fn check_plan(
    entry: &Entry,
    plan: &PlanRecord,
    fold: &Fold,
    configured: &Configured<'_>,
    from: u64,
    hasher: &mut Sha256,
) -> Option<(String, Option<Vec<Action>>)> {
    if plan.upto_seq != fold.last_seq() {
        return Some((
            format!(
                "plan {} says it read the log up to entry {}, but it sits after entry {}; replay \
             can only rebuild the prefix right before a plan",
                entry.seq,
                plan.upto_seq,
                fold.last_seq()
            ),
            None,
        ));
    }
    if entry.seq < from {
        return None;
    }
    if plan.config_digest != configured.digest() {
        return Some((
            format!(
                "plan {} was computed under configuration {}, but the log's configuration at that \
             point has digest {} ({})",
                entry.seq,
                plan.config_digest,
                configured.digest(),
                serde_json::to_string(configured.config()).unwrap_or_default()
            ),
            None,
        ));
    }
    let actions = configured.plan(fold, &plan.scope);
    let same = actions.len() == plan.action_ids.len()
        && actions
            .iter()
            .zip(&plan.action_ids)
            .all(|(a, id)| a.id == *id);
    if !same {
        let why = format!(
            "plan {} recomputed {} action(s) where {} were recorded, and they differ",
            entry.seq,
            actions.len(),
            plan.action_ids.len()
        );
        return Some((why, Some(actions)));
    }
    for a in &actions {
        hasher.update(entry.seq.to_string().as_bytes());
        hasher.update([0]);
        hasher.update(a.id.as_bytes());
        hasher.update(b"\n");
    }
    None
}

/// Describes the divergence at plan `plan_seq`: both action lists, their diff and the events.
/// `checkpoint` is the one replay started from, if any (to fold again from, when needed).
fn divergence_at(
    reader: &LogReader,
    configured: &Configured<'_>,
    fold_before: &Fold,
    checkpoint: Option<u64>,
    plan_seq: u64,
    why: String,
    recomputed: Option<Vec<Action>>,
) -> Result<Divergence, ReplayError> {
    let plan_entry = reader.get(plan_seq)?;
    let (plan, at) = match &plan_entry {
        Some(Entry {
            body: Body::Plan(p),
            at,
            ..
        }) => (
            p.clone(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
        _ => {
            return Ok(Divergence {
                kind: "plan",
                plan_seq,
                upto_seq: 0,
                at: String::new(),
                scope: Vec::new(),
                why: format!("{why}; entry {plan_seq} is not a plan"),
                recorded: Vec::new(),
                recomputed: Vec::new(),
                diff: String::new(),
                last_events: Vec::new(),
            });
        }
    };
    let mut recorded = Vec::new();
    for e in reader.range(plan_seq + 1..=plan_seq + plan.action_ids.len() as u64) {
        if let Body::Action(a) = e?.body
            && a.plan_seq == plan_seq
        {
            recorded.push(a.action);
        }
    }
    // What the check computed, if it got that far; else recompute: the fold passed in stands
    // right before the plan only when the plan is the entry being checked.
    let recomputed: Vec<RecordedAction> = match recomputed {
        Some(actions) => actions,
        None if fold_before.last_seq() == plan.upto_seq => {
            configured.plan(fold_before, &plan.scope)
        }
        None => configured.plan(&fold_upto(reader, plan.upto_seq, checkpoint)?, &plan.scope),
    }
    .into_iter()
    .map(RecordedAction::from)
    .collect();
    let diff = action_diff(&recorded, &recomputed);
    let last_events = events_read(reader, plan.upto_seq, &plan.scope, 8)?
        .iter()
        .map(|e| (e.seq, crate::record::view::line(e).trim_start().to_string()))
        .collect();
    Ok(Divergence {
        kind: "plan",
        plan_seq,
        upto_seq: plan.upto_seq,
        at,
        scope: plan.scope.clone(),
        why,
        recorded,
        recomputed,
        diff,
        last_events,
    })
}

/// The world folded from entries `1..=upto`: from the checkpoint at `checkpoint` when it lies
/// at or before `upto + 1`, else from the start.
pub(crate) fn fold_upto(
    reader: &LogReader,
    upto: u64,
    checkpoint: Option<u64>,
) -> Result<Fold, ReplayError> {
    let start = match checkpoint {
        Some(c) if c <= upto.saturating_add(1) => start_from(reader, c)?,
        _ => Start::beginning(),
    };
    let mut fold = start.fold;
    for e in reader.range(start.first..=upto) {
        let e = e?;
        fold.apply(e.seq, e.at, &e.body);
    }
    Ok(fold)
}

/// One block of text per action: its line, then its object as indented JSON.
pub fn action_text(actions: &[RecordedAction]) -> String {
    let mut out = String::new();
    for a in actions {
        out.push_str(&format!(
            "{} {} ({}) [{}]\n",
            a.verb, a.target, a.reason, a.id
        ));
        if let Some(uid) = &a.uid {
            out.push_str(&format!("  uid: {uid}\n"));
        }
        if let Some(o) = &a.object {
            let pretty = o
                .parse()
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| o.as_str().to_string());
            for line in pretty.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// A unified diff of two action lists, recorded (`-`) against recomputed (`+`).
pub fn action_diff(recorded: &[RecordedAction], recomputed: &[RecordedAction]) -> String {
    let old = action_text(recorded);
    let new = action_text(recomputed);
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(4)
        .header("recorded", "recomputed")
        .to_string()
}
