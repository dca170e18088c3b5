//! Offline replay of a log: recompute recorded plans ([`verify`]), the world at a point
//! ([`state`]), an object's story ([`timeline`]), another configuration's decisions ([`whatif`]),
//! the chain that explains an object ([`why`]), listings by time and seq ([`query`]), one
//! entry's chain of events, plan, actions and outcomes ([`chain`]), an object's versions and the
//! fields that changed between any two ([`history`]).
//!
//! Reads a log and never writes one; no network, no clock. It builds the planner's input with
//! the same [`Fold`](crate::world::Fold) the controller uses, so the two cannot disagree, and
//! streams the log a chunk at a time: memory is the world view, not the log's length. With
//! `from`, it starts from the nearest checkpoint at or before it instead of the start of the
//! log ([`start`]), so its cost is what came after.

pub mod chain;
pub mod history;
pub mod query;
pub mod start;
pub mod state;
pub mod timeline;
pub mod verify;
pub mod whatif;
pub mod why;

use crate::log::{LogError, LogReader};
use crate::reconcile::{Planner, PlannerConfig};
use crate::record::{Action, Body, Entry, MarkerKind, MarkerRecord, ObjKey};
use crate::world::Fold;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use start::{Start, start_from};
pub use state::{WorldAt, state_document, world_at, world_at_from};
pub use timeline::{Subject, Timeline, TimelineItem, timeline, timeline_from};
pub use verify::{Divergence, VerifyOptions, VerifyReport, verify};
pub use whatif::{ActionChange, PlanChange, WhatIfOptions, WhatIfReport, what_if};
pub use why::{Why, WhyError, WhyState, explain};

/// Builds the planner replay runs for a configuration. The default is [`Planner::new`], the
/// planner of this build; tests pass planners of their own.
pub type PlannerFactory = dyn Fn(&PlannerConfig) -> Planner + Send + Sync;

/// How often (in entries) long scans report progress.
pub const PROGRESS_EVERY: u64 = 1024;

/// What can stop a replay before it has an answer.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The log cannot be opened or read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A point or range lies beyond the end of the log.
    #[error(
        "{}: {what} is beyond the end of the log, which ends at entry {last_seq}{}. Pick a point within the log (`logbook audit log` lists it)",
        path.display(),
        last_at.map(|t| format!(" ({})", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).unwrap_or_default()
    )]
    BeyondEnd {
        /// The file.
        path: PathBuf,
        /// The point asked for, described.
        what: String,
        /// The last seq of the log.
        last_seq: u64,
        /// When the last entry was written.
        last_at: Option<DateTime<Utc>>,
    },
    /// The log holds nothing about the object or application asked for.
    #[error(
        "{}: the log holds nothing about {what}. Check the spelling (KIND/NAMESPACE/NAME, e.g. Deployment/shop/web, or NAMESPACE/NAME for an Application), or list what it holds with `logbook audit log`",
        path.display()
    )]
    Unknown {
        /// The file.
        path: PathBuf,
        /// What was asked for.
        what: String,
    },
    /// `--from` names a point after the one asked about.
    #[error(
        "{}: --from {from} starts after {point}; give a --from at or before the point asked about",
        path.display()
    )]
    FromAfter {
        /// The file.
        path: PathBuf,
        /// The `--from` seq.
        from: u64,
        /// The point asked about, described.
        point: String,
    },
    /// The configuration recorded in the log cannot be read by this build.
    #[error(
        "{}: entry {seq} records a planner configuration this build cannot read ({problem}). Replay it with the logbook version that wrote it, or pass --config to choose one",
        path.display()
    )]
    Config {
        /// The file.
        path: PathBuf,
        /// The Config marker.
        seq: u64,
        /// What is wrong with it.
        problem: String,
    },
}

/// A point in the log: a seq, or a time (the last entry written at or before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Entry `seq`.
    Seq(u64),
    /// The last entry at or before this time.
    Time(DateTime<Utc>),
}

impl Point {
    /// True when `entry` lies at or before this point.
    pub fn includes(&self, entry: &Entry) -> bool {
        match self {
            Point::Seq(s) => entry.seq <= *s,
            Point::Time(t) => entry.at <= *t,
        }
    }

    /// True when `entry` lies at or after this point.
    pub fn reached_by(&self, entry: &Entry) -> bool {
        match self {
            Point::Seq(s) => entry.seq >= *s,
            Point::Time(t) => entry.at >= *t,
        }
    }
}

impl FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> Result<Point, String> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(Point::Seq)
                .map_err(|e| format!("`{s}` is not a seq: {e}"));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Point::Time(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!(
                    "`{s}` is neither a seq (e.g. 1200) nor an RFC 3339 time \
                     (e.g. 2026-11-26T03:12:00Z): {e}"
                )
            })
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Seq(s) => write!(f, "entry {s}"),
            Point::Time(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// Entries from seq `from` up to `until`, reporting progress every [`PROGRESS_EVERY`]; a read
/// error (a truncated or damaged log) ends the scan and is kept in [`Scan::stopped`].
pub(crate) struct Scan<'a> {
    entries: crate::log::Entries<'a>,
    until: Option<Point>,
    progress: Option<&'a dyn Fn(u64)>,
    last: u64,
    /// Why the scan ended before `until`, naming the last whole entry read.
    pub(crate) stopped: Option<String>,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(
        reader: &'a LogReader,
        from: u64,
        until_seq: u64,
        until: Option<Point>,
        progress: Option<&'a dyn Fn(u64)>,
    ) -> Scan<'a> {
        Scan {
            entries: reader.range(from.max(1)..=until_seq),
            until,
            progress,
            last: from.saturating_sub(1),
            stopped: None,
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        let entry = match self.entries.next()? {
            Ok(e) => e,
            Err(e) => {
                self.stopped = Some(format!(
                    "stopped after entry {}, the last whole entry it could read: {e}",
                    self.last
                ));
                return None;
            }
        };
        if self.until.is_some_and(|p| !p.includes(&entry)) {
            return None;
        }
        if let Some(progress) = self.progress
            && entry.seq % PROGRESS_EVERY == 0
        {
            progress(entry.seq);
        }
        self.last = entry.seq;
        Some(entry)
    }
}

/// Checks that `point` lies within the log (a seq at most the last; a time no later than the
/// last entry's).
pub fn check_within(reader: &LogReader, point: Point) -> Result<(), ReplayError> {
    let last_seq = reader.last_seq()?;
    let last_at = match last_seq {
        0 => None,
        s => reader.get(s)?.map(|e| e.at),
    };
    let beyond = match point {
        Point::Seq(s) => s > last_seq,
        Point::Time(t) => last_at.is_none_or(|at| t > at),
    };
    if beyond {
        return Err(ReplayError::BeyondEnd {
            path: reader.path().to_path_buf(),
            what: point.to_string(),
            last_seq,
            last_at,
        });
    }
    Ok(())
}

/// The planner configuration a Config marker records, if it is one.
pub fn marker_config(marker: &MarkerRecord) -> Option<Result<PlannerConfig, String>> {
    if marker.marker != MarkerKind::Config {
        return None;
    }
    let planner = marker.detail.get("planner")?;
    Some(serde_json::from_value(planner.clone()).map_err(|e| e.to_string()))
}

/// Fields of a [`PlannerConfig`] (camelCase, as recorded) laid over the configuration a log
/// records: what-if's "the same, except".
pub type ConfigOverlay = serde_json::Map<String, serde_json::Value>;

/// Reads a what-if configuration (YAML or JSON; any subset of the planner's settings) and
/// checks it names only settings this build knows, with values of the right type.
pub fn parse_overlay(text: &str) -> Result<ConfigOverlay, String> {
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| format!("not YAML or JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("expected a mapping of planner settings, e.g. `ingressClass: nginx`".into());
    };
    overlaid(&PlannerConfig::default(), &map).map_err(|e| {
        format!(
            "{e}; the settings are ingressClass, pathType, containerName, defaultRequests \
             ({{cpu, memory}}) and livenessProbes"
        )
    })?;
    Ok(map)
}

/// `base` with `overlay`'s fields replaced.
pub fn overlaid(base: &PlannerConfig, overlay: &ConfigOverlay) -> Result<PlannerConfig, String> {
    let mut value = serde_json::to_value(base).map_err(|e| e.to_string())?;
    if let serde_json::Value::Object(map) = &mut value {
        for (k, v) in overlay {
            map.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// The configuration in effect while replaying: the log's own (its Config markers), possibly
/// with an overlay; and the planner built for it.
pub(crate) struct Configured<'f> {
    overlay: Option<ConfigOverlay>,
    factory: Option<&'f PlannerFactory>,
    config: PlannerConfig,
    digest: String,
    planner: Planner,
}

impl<'f> Configured<'f> {
    pub(crate) fn new(
        overlay: Option<ConfigOverlay>,
        factory: Option<&'f PlannerFactory>,
    ) -> Result<Self, String> {
        let config = match &overlay {
            Some(o) => overlaid(&PlannerConfig::default(), o)?,
            None => PlannerConfig::default(),
        };
        let planner = build(factory, &config);
        Ok(Configured {
            digest: config.digest(),
            overlay,
            factory,
            config,
            planner,
        })
    }

    /// Follows a Config marker.
    pub(crate) fn follow(&mut self, reader: &LogReader, entry: &Entry) -> Result<(), ReplayError> {
        let Body::Marker(m) = &entry.body else {
            return Ok(());
        };
        match marker_config(m) {
            None => Ok(()),
            Some(config) => self.adopt(reader, entry.seq, config),
        }
    }

    /// Takes the configuration in force where `start` begins: the planner settings its
    /// checkpoint holds (the last Config marker's before it), if it has any.
    pub(crate) fn resume(
        &mut self,
        reader: &LogReader,
        start: &start::Start,
    ) -> Result<(), ReplayError> {
        let (Some(seq), Some(settings)) = (start.checkpoint, start.fold.planner_settings()) else {
            return Ok(());
        };
        let config = settings
            .parse_as::<PlannerConfig>()
            .map_err(|e| format!("the planner settings its checkpoint holds: {e}"));
        self.adopt(reader, seq, config)
    }

    fn adopt(
        &mut self,
        reader: &LogReader,
        seq: u64,
        config: Result<PlannerConfig, String>,
    ) -> Result<(), ReplayError> {
        let config = config
            .and_then(|config| match &self.overlay {
                Some(o) => overlaid(&config, o),
                None => Ok(config),
            })
            .map_err(|problem| ReplayError::Config {
                path: reader.path().to_path_buf(),
                seq,
                problem,
            })?;
        if config != self.config {
            self.planner = build(self.factory, &config);
            self.digest = config.digest();
            self.config = config;
        }
        Ok(())
    }

    pub(crate) fn digest(&self) -> &str {
        &self.digest
    }

    pub(crate) fn config(&self) -> &PlannerConfig {
        &self.config
    }

    /// Recomputes a plan: the whole world for an empty scope, else the scopes.
    pub(crate) fn plan(&self, fold: &Fold, scope: &[ObjKey]) -> Vec<Action> {
        if scope.is_empty() {
            self.planner.plan_all(fold.world())
        } else {
            let scopes: BTreeSet<ObjKey> = scope.iter().cloned().collect();
            self.planner.plan_scopes(fold.world(), &scopes)
        }
    }
}

fn build(factory: Option<&PlannerFactory>, config: &PlannerConfig) -> Planner {
    match factory {
        Some(f) => f(config),
        None => Planner::new(config.clone()),
    }
}

/// Up to `n` of the last events at or before `upto` that touched `scope` (all events for an
/// empty scope), oldest first, as stored (an object stored as a patch is not rebuilt: these are
/// shown as one line each).
pub fn events_read(
    reader: &LogReader,
    upto: u64,
    scope: &[ObjKey],
    n: usize,
) -> Result<Vec<Entry>, ReplayError> {
    use crate::log::Filter;
    use crate::record::EntryKind;
    let mut found: Vec<Entry> = Vec::new();
    let mut keep_last = |entries: crate::log::Entries<'_>| -> Result<(), ReplayError> {
        let mut tail = std::collections::VecDeque::new();
        for e in entries {
            tail.push_back(e?);
            if tail.len() > n {
                tail.pop_front();
            }
        }
        found.extend(tail);
        Ok(())
    };
    // Events as stored: they are shown as one line each, which never shows the object.
    if scope.is_empty() {
        let from = upto.saturating_sub(8 * n as u64 + 64).max(1);
        let filter = Filter::new().kinds(&[EntryKind::Event]).seqs(from..=upto);
        keep_last(reader.query(&filter.as_stored()))?;
    }
    for key in scope {
        let filter = Filter::new()
            .kinds(&[EntryKind::Event])
            .seqs(1..=upto)
            .as_stored();
        let filter = if key.kind == crate::world::APPLICATION {
            filter.application(&format!("{}/{}", key.namespace, key.name))
        } else {
            filter.object(key)
        };
        keep_last(reader.query(&filter))?;
    }
    found.sort_by_key(|e| e.seq);
    found.dedup_by_key(|e| e.seq);
    let skip = found.len().saturating_sub(n);
    Ok(found.split_off(skip))
}
