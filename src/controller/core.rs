//! The controller's core: the only writer of the log and the only owner of the world view.
//!
//! One thread takes inputs in order (watch events, outcomes, resyncs), records them, folds them
//! and plans what they touched, so every plan reads exactly the log prefix it records
//! (`upto_seq`). It does no network I/O: watchers, the outbox and the outcome intake talk to it
//! through a channel.

use super::ControllerError;
use super::events;
use super::lease::Fence;
use crate::bus::wire::OutcomeMessage;
use crate::log::{Filter, Log};
use crate::model::INSTANCE_LABEL;
use crate::reconcile::{Planner, PlannerConfig};
use crate::record::{
    Action, Appended, Body, Change, Deltas, EntryKind, Keys, MarkerKind, MarkerRecord, NewEntry,
    ObjKey, ObservedEvent, PlanRecord, entry_uuid,
};
use crate::world::{
    ANSWER_DEADLINE_KEY, APPLICATION, CheckpointDetail, DEFAULT_ANSWER_DEADLINE_MS, Fold, Observed,
    strip_managed_fields,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The outbox's cursor name in the log.
pub const OUTBOX_CURSOR: &str = "outbox";

/// The cursor naming how far the log's hash chain was verified at a start: the next start
/// verifies only from there on.
pub const VERIFIED_CURSOR: &str = "verified";

/// What the core is told.
pub enum Input {
    /// A watch of `kind` starts a (re)list.
    ListStart(&'static str),
    /// An object was seen (listed, added or modified).
    Seen(Value),
    /// An object was deleted.
    Deleted(Value),
    /// A watch of `kind` finished its (re)list: what it did not see is gone.
    ListDone(&'static str),
    /// Outcomes from the bus; the reply says once they are committed (then they are acked).
    Outcomes(
        Vec<OutcomeMessage>,
        tokio::sync::oneshot::Sender<Result<(), String>>,
    ),
    /// Plan the whole world again (recorded as a marker).
    Resync,
    /// The outbox has published every entry up to this seq.
    Published(u64),
    /// Record a stop marker and return.
    Stop,
    /// Leadership was lost: write nothing more (but the loss, while that is still safe) and
    /// return [`ControllerError::LeadershipLost`].
    Lost(String),
    /// A message from the bus was refused before it reached the core (unsigned, too large,
    /// unreadable): record that it was, without its content.
    Refused(Refusal),
    /// An answer deadline may have passed: record a tick, publish again every action past its
    /// deadline (a recorded re-drive each), and plan what they touch. The core sends itself
    /// this when the earliest deadline comes; tests send it to skip the wait.
    Tick,
    /// Record a checkpoint after this batch (on demand); the reply says where it is (the last
    /// one, when nothing was appended since).
    Checkpoint(tokio::sync::oneshot::Sender<Result<CheckpointTaken, String>>),
}

/// Where a checkpoint is, and what taking it cost (the answer to [`Input::Checkpoint`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointTaken {
    /// The checkpoint entry's seq.
    pub seq: u64,
    /// It holds the world at this entry (`seq - 1`).
    pub upto_seq: u64,
    /// SHA-256 of its state.
    pub digest: String,
    /// The state's size.
    pub bytes: u64,
    /// Applications in it.
    pub applications: u64,
    /// False when the log already ended with a checkpoint, which is the answer.
    pub new: bool,
    /// How long encoding the world took (ms; 0 when not new).
    pub build_ms: u64,
    /// How long appending it took, commit included (ms; 0 when not new).
    pub append_ms: u64,
}

/// The default of `--checkpoint-every`: a checkpoint every this many entries.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100_000;

impl Input {
    fn is_watch(&self) -> bool {
        matches!(
            self,
            Input::ListStart(_) | Input::Seen(_) | Input::Deleted(_) | Input::ListDone(_)
        )
    }
}

/// A message refused at the door, as its `refused` marker records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// What it claimed to be (`outcome`).
    pub what: String,
    /// Why it was refused.
    pub reason: String,
    /// The subject it came on.
    pub subject: String,
    /// SHA-256 of its payload, hex: enough to match it with a capture, never its content.
    pub sha256: String,
    /// What a trusted executor said in a signed outcome that answers no issued action (at
    /// most 200 characters), e.g. why it refused a forged action; `None` for anything else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub said: Option<String>,
}

impl Refusal {
    /// A refusal of `payload` received on `subject`.
    pub fn new(what: &str, reason: String, subject: &str, payload: &[u8]) -> Refusal {
        use sha2::Digest;
        Refusal {
            what: what.to_string(),
            reason: bounded(&reason),
            subject: bounded(subject),
            sha256: hex::encode(sha2::Sha256::digest(payload)),
            said: None,
        }
    }

    fn entry(&self, now: DateTime<Utc>, keys: Keys) -> NewEntry {
        let detail = serde_json::to_value(self).unwrap_or_default();
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        NewEntry::new(
            entry_uuid(now, "refused", &bytes),
            now,
            keys,
            Body::Marker(MarkerRecord {
                marker: MarkerKind::Refused,
                detail,
                state: None,
            }),
        )
    }
}

/// At most 200 characters of `s` (what a refused message says is not trusted to be short).
fn bounded(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The planner's settings as recorded: their digest goes into every plan.
pub fn config_digest(config: &PlannerConfig) -> String {
    config.digest()
}

/// The core's state.
pub struct Core {
    log: Log,
    fold: Fold,
    planner: Planner,
    planner_config: PlannerConfig,
    digest: String,
    /// Every kind watched; planning starts once each has listed once.
    kinds: Vec<&'static str>,
    synced: BTreeSet<&'static str>,
    /// Kinds in the middle of a (re)list → keys seen so far.
    relisting: BTreeMap<&'static str, BTreeSet<ObjKey>>,
    debounce: Duration,
    max_wait: Duration,
    published: u64,
    cursor_written: u64,
    cursor_at: Instant,
    notify: tokio::sync::watch::Sender<u64>,
    telemetry: super::telemetry::CoreTelemetry,
    /// Checked before every write: false once this process may no longer lead.
    fence: Fence,
    /// `identity` and `lease` of the leadership markers, when elected.
    leadership: Option<serde_json::Map<String, Value>>,
    /// Kubernetes Events about what was done (side output).
    events: events::Recorder,
    /// How long an action may go without an outcome before it is published again (recorded
    /// in the Config marker, so the fold and replay use the same).
    answer_deadline: Duration,
    /// Objects of the upserts being appended, as observed (already parsed), by key: the fold
    /// takes them instead of parsing the JSON text recorded for them.
    prepared: BTreeMap<ObjKey, Observed>,
    /// Which large objects are stored as patches against their last recorded version (none
    /// at first: the first record of each after a start is whole).
    deltas: Deltas,
    /// A checkpoint every this many entries (0: only on demand).
    checkpoint_every: u64,
    /// The last checkpoint in the log: its seq and what [`Input::Checkpoint`] answers about it.
    last_checkpoint: Option<CheckpointTaken>,
}

impl Core {
    /// A core over `log`, folding it from the start. A log whose hash chain is broken is
    /// refused ([`ControllerError::BrokenLog`]); see [`verify_chain`].
    pub fn new(
        mut log: Log,
        planner_config: PlannerConfig,
        kinds: Vec<&'static str>,
        debounce: Duration,
        notify: tokio::sync::watch::Sender<u64>,
    ) -> Result<Core, ControllerError> {
        verify_chain(&mut log)?;
        let mut fold = Fold::new();
        let mut events = events::Recorder::new();
        let mut last_checkpoint = None;
        for entry in log.range(..) {
            let entry = entry?;
            if let Body::Marker(m) = &entry.body
                && let Some(Ok(d)) = CheckpointDetail::of(m)
            {
                last_checkpoint = Some(CheckpointTaken {
                    seq: entry.seq,
                    upto_seq: d.upto_seq,
                    digest: d.digest,
                    bytes: d.bytes,
                    applications: d.applications,
                    new: false,
                    build_ms: 0,
                    append_ms: 0,
                });
            }
            events.folding(fold.world(), &entry.body);
            fold.apply(entry.seq, entry.at, &entry.body);
        }
        let published = log.cursor(OUTBOX_CURSOR)?.unwrap_or(0);
        Ok(Core {
            digest: config_digest(&planner_config),
            planner: Planner::new(planner_config.clone()),
            planner_config,
            log,
            fold,
            kinds,
            synced: BTreeSet::new(),
            relisting: BTreeMap::new(),
            prepared: BTreeMap::new(),
            debounce,
            max_wait: (debounce * 20).max(Duration::from_millis(20)),
            published,
            cursor_written: published,
            cursor_at: Instant::now(),
            notify,
            telemetry: Default::default(),
            fence: Fence::unfenced(),
            leadership: None,
            events,
            answer_deadline: Duration::from_millis(DEFAULT_ANSWER_DEADLINE_MS),
            deltas: Deltas::new(),
            checkpoint_every: 0,
            last_checkpoint,
        })
    }

    /// Records a checkpoint every `every` entries from now on (0: only when asked, with
    /// [`Input::Checkpoint`]): after the batch that reaches the next multiple of `every` past
    /// the log's last checkpoint (at once on a log that has none yet and is long enough).
    pub fn checkpoint_every(&mut self, every: u64) {
        self.checkpoint_every = every;
    }

    /// Whether the log reached a multiple of `checkpoint_every` since its last checkpoint (or
    /// its start).
    fn checkpoint_due(&self) -> bool {
        let every = self.checkpoint_every;
        let since = self.last_checkpoint.as_ref().map_or(0, |c| c.seq);
        every > 0 && self.fold.last_seq() / every > since / every
    }

    /// Records a checkpoint of the world as folded so far, right after the last entry (or
    /// answers with the last one, when it is the log's last entry). It runs on the core's
    /// thread, so nothing is appended meanwhile: `build_ms + append_ms` is how long the
    /// controller stalls.
    fn checkpoint(&mut self, reason: &str) -> Result<CheckpointTaken, ControllerError> {
        if let Some(last) = &self.last_checkpoint
            && last.seq == self.fold.last_seq()
        {
            return Ok(CheckpointTaken {
                new: false,
                build_ms: 0,
                append_ms: 0,
                ..last.clone()
            });
        }
        let started = Instant::now();
        let checkpoint = self.fold.checkpoint().map_err(ControllerError::Internal)?;
        let build_ms = started.elapsed().as_millis() as u64;
        let (upto_seq, digest) = (checkpoint.upto_seq, checkpoint.digest.clone());
        let (bytes, applications) = (checkpoint.state.len() as u64, checkpoint.applications);
        let entry = checkpoint.entry(Utc::now(), reason);
        let started = Instant::now();
        let appended = self.append_and_fold(&[entry], &mut BTreeSet::new())?;
        let append_ms = started.elapsed().as_millis() as u64;
        let seq = appended.first().map_or(0, Appended::seq);
        if seq != upto_seq + 1 {
            return Err(ControllerError::Internal(format!(
                "the checkpoint of the world at entry {upto_seq} landed at entry {seq}, not right \
                 after it; is another process writing to the same log file?"
            )));
        }
        tracing::info!(
            seq,
            bytes,
            applications,
            build_ms,
            append_ms,
            reason,
            "checkpoint recorded"
        );
        let taken = CheckpointTaken {
            seq,
            upto_seq,
            digest,
            bytes,
            applications,
            new: true,
            build_ms,
            append_ms,
        };
        self.last_checkpoint = Some(taken.clone());
        Ok(taken)
    }

    /// Sets how long an action may go without an outcome before it is published again
    /// (recorded by [`Core::start`]; the default is a minute).
    pub fn answer_deadline(&mut self, deadline: Duration) {
        self.answer_deadline = deadline.max(Duration::from_millis(1));
    }

    /// Counts what the core appends, reports readiness once synced, and beats its heartbeat.
    pub fn observe(&mut self, telemetry: super::telemetry::CoreTelemetry) {
        self.telemetry = telemetry;
    }

    /// Leads under `fence` from now on: records a Leadership marker `acquired` with `detail`
    /// (`identity`, `lease`, `transitions`), and will record `released` at a clean stop and
    /// `lost` when the fence stops holding (while no one else can hold the lease yet).
    pub fn lead(&mut self, fence: Fence, detail: Value) -> Result<(), ControllerError> {
        self.fence = fence;
        let mut base = serde_json::Map::new();
        for k in ["identity", "lease"] {
            if let Some(v) = detail.get(k) {
                base.insert(k.to_string(), v.clone());
            }
        }
        self.leadership = Some(base);
        let mut acquired = serde_json::Map::new();
        acquired.insert("event".into(), "acquired".into());
        if let Value::Object(d) = detail {
            acquired.extend(d);
        }
        let entry = marker(MarkerKind::Leadership, Value::Object(acquired));
        self.append_and_fold(&[entry], &mut BTreeSet::new())?;
        Ok(())
    }

    /// From now on, the final outcome of each action about an Application becomes a
    /// Kubernetes Event through `sink` (never waiting on it).
    pub fn emit_events(&mut self, sink: events::Sink) {
        self.events.connect(sink);
    }

    /// A Leadership marker saying `event`, with the lease and identity.
    fn leadership_marker(&self, event: &str, extra: Option<(&str, String)>) -> Option<NewEntry> {
        let mut detail = self.leadership.clone()?;
        detail.insert("event".into(), event.into());
        if let Some((k, v)) = extra {
            detail.insert(k.into(), v.into());
        }
        Some(marker(MarkerKind::Leadership, Value::Object(detail)))
    }

    /// After the fence stopped holding: records `lost` if no one else can hold the lease
    /// yet, and says so.
    fn lost(mut self, reason: String) -> Result<(), ControllerError> {
        if let Some(entry) = self.leadership_marker("lost", Some(("reason", reason.clone()))) {
            if self.fence.before_expiry() {
                if let Err(e) = self.fenced_append(&[entry]) {
                    tracing::warn!(error = %e, "the loss of leadership could not be recorded");
                }
            } else {
                tracing::warn!(
                    "the loss of leadership is not recorded: another controller may hold the \
                     lease and write the log by now"
                );
            }
        }
        Err(ControllerError::LeadershipLost(reason))
    }

    /// Appends; when elected, only if the log still ends where this core's fold does (in the
    /// same transaction), so a replaced leader cannot append after its successor however late
    /// it wakes up.
    fn fenced_append(&mut self, entries: &[NewEntry]) -> Result<Vec<Appended>, ControllerError> {
        if self.leadership.is_none() {
            return Ok(self.log.append(entries)?);
        }
        match self.log.append_after(self.fold.last_seq(), entries) {
            Ok(appended) => Ok(appended),
            Err(crate::log::LogError::Moved { found, .. }) => {
                self.fence.revoke(format!(
                    "another controller appended to the log (up to seq {found})"
                ));
                Err(ControllerError::LeadershipLost(self.fence.why()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The world view folded so far (for tests).
    pub fn fold(&self) -> &Fold {
        &self.fold
    }

    /// Records the start and the configuration in effect.
    pub fn start(&mut self, detail: Value) -> Result<(), ControllerError> {
        let config = serde_json::to_value(&self.planner_config).unwrap_or(Value::Null);
        let entries = vec![
            marker(MarkerKind::Start, detail),
            marker(
                MarkerKind::Config,
                serde_json::json!({
                    "planner": config,
                    "digest": self.digest,
                    ANSWER_DEADLINE_KEY: self.answer_deadline.as_millis() as u64,
                }),
            ),
        ];
        self.append_and_fold(&entries, &mut BTreeSet::new())?;
        Ok(())
    }

    /// Runs until [`Input::Stop`] or until every sender is gone.
    pub fn run(mut self, rx: Receiver<Input>) -> Result<(), ControllerError> {
        loop {
            self.telemetry.beat();
            let mut wait = super::telemetry::BEAT_EVERY;
            let due = self.fold.next_due();
            if let Some(due) = due {
                let until = (due - Utc::now()).to_std().unwrap_or_default();
                wait = wait.min(until);
            }
            let first = match rx.recv_timeout(wait) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) if due.is_some_and(|d| d <= Utc::now()) => {
                    Input::Tick
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return self.stop(),
            };
            let wait = first.is_watch() || matches!(first, Input::Resync);
            let mut batch = vec![first];
            let started = Instant::now();
            loop {
                while let Ok(i) = rx.try_recv() {
                    batch.push(i);
                }
                if !wait || self.debounce.is_zero() || started.elapsed() >= self.max_wait {
                    break;
                }
                match rx.recv_timeout(self.debounce) {
                    Ok(i) => batch.push(i),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            match self.handle(batch) {
                Ok(true) => return self.stop(),
                Ok(false) => {}
                Err(ControllerError::LeadershipLost(reason)) => return self.lost(reason),
                Err(e) => return Err(e),
            }
        }
    }

    fn stop(mut self) -> Result<(), ControllerError> {
        let stop = marker(MarkerKind::Stop, serde_json::json!({"reason": "shutdown"}));
        let mut entries = vec![stop];
        entries.extend(self.leadership_marker("released", None));
        if let Err(e) = self.append_and_fold(&entries, &mut BTreeSet::new()) {
            return match e {
                ControllerError::LeadershipLost(reason) => self.lost(reason),
                e => Err(e),
            };
        }
        self.write_cursor(true)?;
        // A clean stop leaves every entry in the log file itself (no -wal to keep with it).
        if let Err(e) = self.log.close() {
            tracing::warn!(error = %e, "cannot fold the write-ahead log into the log file");
        }
        Ok(())
    }

    /// Handles one batch of inputs; true when told to stop.
    pub fn handle(&mut self, batch: Vec<Input>) -> Result<bool, ControllerError> {
        let mut entries = Vec::new();
        // What this batch already says about objects: key → Some((uid, rv)) or None (deleted).
        let mut local: BTreeMap<ObjKey, Option<(String, String)>> = BTreeMap::new();
        let mut replies = Vec::new();
        let mut asked = Vec::new();
        let mut resync = false;
        let mut tick = false;
        let mut stop = false;
        let was_synced = self.all_synced();
        let now = Utc::now();
        for input in batch {
            match input {
                Input::ListStart(kind) => {
                    self.relisting.insert(kind, BTreeSet::new());
                    // The first record of each object after a relist is whole.
                    self.deltas.forget_events_of(kind);
                }
                Input::Seen(obj) => self.seen(obj, now, &mut local, &mut entries),
                Input::Deleted(obj) => self.deleted(obj, now, &mut local, &mut entries),
                Input::ListDone(kind) => {
                    let seen = self.relisting.remove(kind).unwrap_or_default();
                    let gone: Vec<(ObjKey, Observed)> = self
                        .fold
                        .world()
                        .objects()
                        .filter(|(k, _)| k.kind == kind && !seen.contains(*k))
                        .filter(|(k, _)| !matches!(local.get(*k), Some(None)))
                        .map(|(k, o)| (k.clone(), o.clone()))
                        .collect();
                    for (key, o) in gone {
                        local.insert(key.clone(), None);
                        entries.push(delete_event(&key, &o, now, true));
                    }
                    self.synced.insert(kind);
                }
                Input::Outcomes(msgs, reply) => {
                    for m in msgs {
                        if let Err(reason) = self.issued(&m) {
                            tracing::warn!(
                                action_id = %crate::record::view::escape_controls(&m.outcome.action_id),
                                %reason,
                                "outcome refused"
                            );
                            let payload = serde_json::to_vec(&m).unwrap_or_default();
                            let subject = crate::bus::outcome_subject(&m.target, m.app.as_deref());
                            let mut refusal = Refusal::new("outcome", reason, &subject, &payload);
                            refusal.said = Some(bounded(&format!(
                                "{} by {}: {}",
                                m.outcome.result.as_str(),
                                m.outcome.executor,
                                m.outcome.message
                            )));
                            entries.push(refusal.entry(now, Keys::default()));
                            continue;
                        }
                        match m.to_entry() {
                            Ok(e) => entries.push(e),
                            Err(e) => tracing::warn!(
                                action_id = %m.outcome.action_id,
                                error = %e,
                                "outcome dropped"
                            ),
                        }
                    }
                    replies.push(reply);
                }
                Input::Refused(refusal) => {
                    tracing::warn!(what = %refusal.what, reason = %refusal.reason, subject = %refusal.subject, "message refused");
                    entries.push(refusal.entry(now, Keys::default()));
                }
                Input::Resync => resync = true,
                Input::Tick => tick = true,
                Input::Checkpoint(reply) => asked.push(reply),
                Input::Published(seq) => self.published = self.published.max(seq),
                Input::Stop => stop = true,
                Input::Lost(reason) => {
                    for reply in replies {
                        let _ = reply.send(Err(format!("not recorded: {reason}")));
                    }
                    return Err(ControllerError::LeadershipLost(reason));
                }
            }
        }
        if resync {
            entries.push(marker(
                MarkerKind::Resync,
                serde_json::json!({"reason": "periodic"}),
            ));
        }
        let mut scopes = BTreeSet::new();
        let result = self.append_and_fold(&entries, &mut scopes);
        for reply in replies {
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        result?;
        if tick {
            // After the batch is folded, so a re-drive never names an action the batch
            // answered; replay checks each against the fold at the same point.
            let mut redrives = Vec::new();
            let targets = self.redrive(now, &mut redrives);
            self.append_and_fold(&redrives, &mut scopes)?;
            scopes.extend(self.planner.scopes_for(self.fold.world(), &targets));
        }
        if self.all_synced() {
            if !was_synced {
                self.telemetry.synced();
            }
            let full = resync || !was_synced;
            if full || !scopes.is_empty() {
                self.plan(full, scopes)?;
            }
        }
        // After the plan, so a checkpoint never sits between a plan and its actions.
        if !asked.is_empty() || self.checkpoint_due() {
            let reason = if asked.is_empty() {
                "periodic"
            } else {
                "asked"
            };
            let taken = self.checkpoint(reason);
            for reply in asked {
                let _ = reply.send(taken.as_ref().map(Clone::clone).map_err(|e| e.to_string()));
            }
            taken?;
        }
        self.write_cursor(stop)?;
        self.telemetry
            .sequences(self.fold.last_seq(), self.published);
        Ok(stop)
    }

    /// Adds a tick and a re-drive marker for every action past its answer deadline at `now`;
    /// returns their targets.
    fn redrive(&self, now: DateTime<Utc>, entries: &mut Vec<NewEntry>) -> Vec<ObjKey> {
        let overdue = self.fold.overdue(now);
        let Some(first) = overdue.first() else {
            return Vec::new();
        };
        let due = first
            .due
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        entries.push(marker_at(
            MarkerKind::Tick,
            serde_json::json!({"due": due, "reason": "answer deadline", "actions": overdue.len()}),
            now,
        ));
        let mut targets = Vec::new();
        for o in overdue {
            let r = o.redrive();
            tracing::warn!(
                action_id = %r.action_id,
                attempt = r.attempt,
                target = %o.target,
                "no outcome by the answer deadline: publishing the action again"
            );
            let detail = serde_json::to_value(&r).unwrap_or_default();
            let bytes = serde_json::to_vec(&r).unwrap_or_default();
            entries.push(NewEntry::new(
                entry_uuid(now, "redrive", &bytes),
                now,
                Keys::for_object(&o.target, o.app.as_deref()),
                Body::Marker(MarkerRecord {
                    marker: MarkerKind::Redrive,
                    detail,
                    state: None,
                }),
            ));
            targets.push(o.target);
        }
        targets
    }

    /// Whether the log issued the action an outcome answers, for the target it names: the
    /// action is pending, or an Action entry about that target carries its id.
    fn issued(&self, m: &OutcomeMessage) -> Result<(), String> {
        let id = &m.outcome.action_id;
        if let Some(target) = self.fold.pending_target(id) {
            return if *target == m.target {
                Ok(())
            } else {
                Err(format!(
                    "it names {} as the target of action {id}, which is about {target}",
                    m.target
                ))
            };
        }
        if m.target.kind.is_empty() || m.target.name.is_empty() {
            return Err("it names no target, so it answers no action the log issued".into());
        }
        let filter = Filter::new()
            .object(&m.target)
            .kinds(&[EntryKind::Action])
            .as_stored();
        for entry in self.log.query(&filter) {
            let entry = entry.map_err(|e| format!("the log could not be searched: {e}"))?;
            if let Body::Action(a) = &entry.body
                && a.action.id == *id
            {
                return Ok(());
            }
        }
        Err(format!(
            "the log never issued an action with that id for {}",
            m.target
        ))
    }

    fn all_synced(&self) -> bool {
        self.kinds.iter().all(|k| self.synced.contains(k))
    }

    fn known<'a>(
        &'a self,
        key: &ObjKey,
        local: &'a BTreeMap<ObjKey, Option<(String, String)>>,
    ) -> Option<(String, String)> {
        match local.get(key) {
            Some(state) => state.clone(),
            None => self
                .fold
                .world()
                .object(key)
                .map(|o| (o.uid.clone(), o.resource_version.clone())),
        }
    }

    fn seen(
        &mut self,
        obj: Value,
        now: DateTime<Utc>,
        local: &mut BTreeMap<ObjKey, Option<(String, String)>>,
        entries: &mut Vec<NewEntry>,
    ) {
        let obj = scrub(obj);
        let (key, o) = match Observed::from_value(obj) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "a watched object without identity was ignored");
                return;
            }
        };
        if let Some(seen) = self.relisting.get_mut(key.kind.as_str()) {
            seen.insert(key.clone());
        }
        let version = (o.uid.clone(), o.resource_version.clone());
        if self.known(&key, local).as_ref() == Some(&version) {
            return; // nothing new (a relist, or a repeated event)
        }
        local.insert(key.clone(), Some(version));
        let app = app_of(&key, &o);
        let json = o.text().clone();
        let content = format!("upsert\0{key}\0{}\0{}", o.uid, o.resource_version);
        let event = ObservedEvent {
            change: Change::Upsert,
            key: key.clone(),
            api_version: o.api_version.clone(),
            uid: o.uid.clone(),
            resource_version: o.resource_version.clone(),
            object: Some(json),
            synthesized: false,
        };
        // The fold takes it as it is, instead of parsing the text just written.
        self.prepared.insert(key.clone(), o);
        entries.push(NewEntry::event(
            entry_uuid(now, "event", content.as_bytes()),
            now,
            event,
            app.as_deref(),
        ));
    }

    fn deleted(
        &mut self,
        obj: Value,
        now: DateTime<Utc>,
        local: &mut BTreeMap<ObjKey, Option<(String, String)>>,
        entries: &mut Vec<NewEntry>,
    ) {
        let (key, o) = match Observed::from_value(scrub(obj)) {
            Ok(x) => x,
            Err(_) => return,
        };
        if self.known(&key, local).is_none() {
            return; // never seen, or already recorded as gone
        }
        local.insert(key.clone(), None);
        entries.push(delete_event(&key, &o, now, false));
    }

    /// Appends `entries` and folds the new ones; adds the scopes their changes touch.
    fn append_and_fold(
        &mut self,
        entries: &[NewEntry],
        scopes: &mut BTreeSet<ObjKey>,
    ) -> Result<Vec<Appended>, ControllerError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if !self.fence.holds() {
            return Err(ControllerError::LeadershipLost(self.fence.why()));
        }
        // Large objects may be stored as patches; the fold reads `entries`, whole.
        let stored = self.deltas.store(entries);
        let appended = self.fenced_append(&stored)?;
        self.deltas.recorded(&appended);
        for (entry, result) in entries.iter().zip(&appended) {
            if !result.is_new() {
                continue;
            }
            self.telemetry.appended(&entry.body);
            self.events.folding(self.fold.world(), &entry.body);
            if let Body::Event(e) = &entry.body {
                scopes.extend(self.planner.scopes_for(self.fold.world(), [&e.key]));
            }
            let prepared = match &entry.body {
                Body::Event(e) => self.prepared.remove(&e.key),
                _ => None,
            };
            if let Some(key) =
                self.fold
                    .apply_prepared(result.seq(), entry.at, &entry.body, prepared)
            {
                scopes.extend(self.planner.scopes_for(self.fold.world(), [&key]));
            }
        }
        self.notify.send_replace(self.fold.last_seq());
        self.telemetry
            .sequences(self.fold.last_seq(), self.published);
        Ok(appended)
    }

    /// Plans (the whole world, or `scopes`) from the world as folded, and records the plan and
    /// its actions.
    fn plan(&mut self, full: bool, scopes: BTreeSet<ObjKey>) -> Result<(), ControllerError> {
        let world = self.fold.world();
        let actions: Vec<Action> = if full {
            self.planner.plan_all(world)
        } else {
            self.planner.plan_scopes(world, &scopes)
        };
        let upto_seq = self.fold.last_seq();
        let plan_seq = upto_seq + 1;
        let record = PlanRecord {
            upto_seq,
            controller_version: env!("CARGO_PKG_VERSION").to_string(),
            reconciler: self.planner.names().join(","),
            scope: if full {
                Vec::new()
            } else {
                scopes.into_iter().collect()
            },
            action_ids: actions.iter().map(|a| a.id.clone()).collect(),
            config_digest: self.digest.clone(),
        };
        let now = Utc::now();
        let plan_bytes = serde_json::to_vec(&record).unwrap_or_default();
        let mut entries = vec![NewEntry::plan(
            entry_uuid(now, "plan", &plan_bytes),
            now,
            record,
        )];
        for a in actions {
            let content = format!("{plan_seq}\0{}", a.id);
            entries.push(NewEntry::action(
                entry_uuid(now, "action", content.as_bytes()),
                now,
                plan_seq,
                a,
            ));
        }
        let appended = self.append_and_fold(&entries, &mut BTreeSet::new())?;
        for (i, a) in appended.iter().enumerate() {
            if !a.is_new() || a.seq() != plan_seq + i as u64 {
                return Err(ControllerError::Internal(format!(
                    "plan entries landed at unexpected places in the log (entry {i} at seq {}, \
                     expected {}); is another process writing to the same log file?",
                    a.seq(),
                    plan_seq + i as u64
                )));
            }
        }
        if entries.len() > 1 {
            tracing::info!(plan_seq, actions = entries.len() - 1, full, "planned");
        }
        Ok(())
    }

    fn write_cursor(&mut self, force: bool) -> Result<(), ControllerError> {
        if self.published > self.cursor_written
            && self.fence.holds()
            && (force || self.cursor_at.elapsed() >= Duration::from_millis(200))
        {
            self.log.set_cursor(OUTBOX_CURSOR, self.published)?;
            self.cursor_written = self.published;
            self.cursor_at = Instant::now();
        }
        Ok(())
    }
}

/// Checks the hash chain before the log is folded and extended: from the last point a start
/// verified ([`VERIFIED_CURSOR`]; the whole log the first time) to the end, including the
/// point's own hash and the link to it, then moves the point to the end. A break is refused with
/// the first bad entry named.
pub fn verify_chain(log: &mut Log) -> Result<(), ControllerError> {
    let from = log.cursor(VERIFIED_CURSOR)?.unwrap_or(0);
    let report = log.verify_from(from)?;
    if let Some(problem) = &report.problem {
        return Err(ControllerError::BrokenLog {
            path: log.path().to_path_buf(),
            seq: problem.seq(),
            problem: problem.to_string(),
        });
    }
    if report.last_good_seq > from {
        log.set_cursor(VERIFIED_CURSOR, report.last_good_seq)?;
    }
    tracing::debug!(from, checked = report.checked, "log chain verified");
    Ok(())
}

fn marker(kind: MarkerKind, detail: Value) -> NewEntry {
    marker_at(kind, detail, Utc::now())
}

fn marker_at(kind: MarkerKind, detail: Value, now: DateTime<Utc>) -> NewEntry {
    let bytes = serde_json::to_vec(&(kind, &detail)).unwrap_or_default();
    NewEntry::marker(entry_uuid(now, "marker", &bytes), now, kind, detail)
}

fn delete_event(key: &ObjKey, o: &Observed, now: DateTime<Utc>, synthesized: bool) -> NewEntry {
    let content = format!(
        "delete\0{key}\0{}\0{}\0{synthesized}",
        o.uid, o.resource_version
    );
    let event = ObservedEvent {
        change: Change::Delete,
        key: key.clone(),
        api_version: o.api_version.clone(),
        uid: o.uid.clone(),
        resource_version: o.resource_version.clone(),
        object: None,
        synthesized,
    };
    NewEntry::event(
        entry_uuid(now, "event", content.as_bytes()),
        now,
        event,
        app_of(key, o).as_deref(),
    )
}

/// The Application an object belongs to (`namespace/name`): itself, or its instance label.
fn app_of(key: &ObjKey, o: &Observed) -> Option<String> {
    if key.kind == APPLICATION {
        return Some(format!("{}/{}", key.namespace, key.name));
    }
    o.label(INSTANCE_LABEL)
        .filter(|_| o.is_managed())
        .map(|a| format!("{}/{a}", key.namespace))
}

/// What is never recorded: managedFields, and a Secret's data.
fn scrub(obj: Value) -> Value {
    let mut obj = strip_managed_fields(obj);
    if obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("data");
        o.remove("stringData");
    }
    obj
}
