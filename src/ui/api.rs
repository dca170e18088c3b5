//! The UI's JSON endpoints: each opens the log read-only, asks the library one bounded question
//! (a windowed, indexed query or a replay) and answers it as JSON; errors as `{"error": ...}`.
//!
//! It owns request parsing and the shape of the answers; it must not hold query logic of its
//! own (filters, chains, diffs and counts are [`crate::log`]'s and [`crate::replay`]'s).

use super::Shared;
use crate::log::reader::{Lane, LaneCount};
use crate::log::{Filter, LogError, LogReader};
use crate::record::view::{body_json, line};
use crate::record::{Body, EntryKind, ObjKey};
use crate::replay::why::nanos;
use crate::replay::{self, Point, ReplayError};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Marks drawn one by one up to this many (more: counts per bucket), unless asked for fewer.
pub const MAX_MARKS: usize = 2000;
/// Buckets a timeline window is cut into when it shows counts (default).
pub const BUCKETS: i64 = 120;
/// Versions of an object listed (the newest).
pub const VERSIONS: usize = 200;
/// Objects a state answer lists at most.
pub const STATE_ITEMS: usize = 500;
/// Entries a timeline without a window shows: the last this many.
pub const DEFAULT_SPAN: u64 = 20_000;
/// Seqs searched before a time window's start (the controller's clock never goes backwards:
/// a margin for entries stamped in the same instant).
const SLACK: u64 = 64;
/// Seqs searched past a time window's end: outcomes carry the executor's clock and are
/// recorded after their actions, possibly many entries later under load.
const OUTCOME_SLACK: u64 = 4096;

/// What a UI request can fail with; each becomes a status and a message saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The log cannot be opened or read.
    #[error("{0}")]
    Log(String),
    /// The request names something the log does not hold (an entry past its end, an object
    /// never observed).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A what-if configuration the planner cannot take.
    #[error("{0}")]
    Unprocessable(String),
    /// The server failed (a task panicked).
    #[error("{0}")]
    Internal(String),
}

impl UiError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::Log(_) => StatusCode::SERVICE_UNAVAILABLE,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<LogError> for UiError {
    fn from(e: LogError) -> UiError {
        match &e {
            LogError::Io { path, source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                UiError::Log(format!(
                    "there is no log at {} ({source}). Start logbook ui with --log FILE naming \
                     the log the controller writes (or a copy of it); the server keeps serving \
                     and this page works as soon as the file is there",
                    path.display()
                ))
            }
            LogError::NotALog { path, reason } => UiError::Log(format!(
                "{} is not a logbook log ({reason}); nothing was written to it. Start logbook ui \
                 with --log FILE naming the log the controller writes (or a copy of it)",
                path.display()
            )),
            _ => UiError::Log(format!(
                "the log cannot be read: {e}. Nothing was written to it; `logbook audit verify \
                 --log FILE` checks it, and a copy from a backup can be served instead"
            )),
        }
    }
}

impl From<ReplayError> for UiError {
    fn from(e: ReplayError) -> UiError {
        match e {
            ReplayError::Log(e) => e.into(),
            e @ (ReplayError::BeyondEnd { .. } | ReplayError::Unknown { .. }) => {
                UiError::NotFound(e.to_string())
            }
            e @ ReplayError::FromAfter { .. } => UiError::BadRequest(e.to_string()),
            e @ ReplayError::Config { .. } => UiError::Unprocessable(e.to_string()),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(json!({"error": self.to_string(), "status": self.status().as_u16()})),
        )
            .into_response()
    }
}

type Answer = Result<Json<Value>, UiError>;

/// Runs `work` on a blocking thread with the log opened read-only.
pub(crate) async fn with_log<T: Send + 'static>(
    shared: &Shared,
    work: impl FnOnce(&LogReader) -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    let path = shared.config.log.clone();
    tokio::task::spawn_blocking(move || {
        let reader = LogReader::open(&path)?;
        work(&reader)
    })
    .await
    .map_err(|e| UiError::Internal(format!("the request's task failed: {e}")))?
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, UiError> {
    serde_json::to_value(v).map_err(|e| UiError::Internal(format!("cannot encode the answer: {e}")))
}

fn ms(t: DateTime<Utc>) -> f64 {
    t.timestamp_nanos_opt()
        .map_or(t.timestamp_millis() as f64, |n| n as f64 / 1e6)
}

/// `GET /api/summary`: the log's path, its last seq and the times of its first and last entry.
pub async fn summary(State(shared): State<Arc<Shared>>) -> Answer {
    with_log(&shared, |reader| {
        let last = reader.last_seq()?;
        let first_at = if last == 0 {
            None
        } else {
            reader.get_stored(1)?.map(|e| e.at)
        };
        let last_at = if last == 0 {
            None
        } else {
            reader.get_stored(last)?.map(|e| e.at)
        };
        Ok(Json(json!({
            "path": reader.path().display().to_string(),
            "last_seq": last,
            "first_at": first_at.map(nanos),
            "last_at": last_at.map(nanos),
            "first_ms": first_at.map(ms),
            "last_ms": last_at.map(ms),
        })))
    })
    .await
}

/// Query of `GET /api/timeline`.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
    /// Start of the window (RFC 3339, a date, or a duration ago); default: the first entry.
    pub from: Option<String>,
    /// End of the window (exclusive); default: just after the last entry.
    pub to: Option<String>,
    /// Only this namespace.
    pub ns: Option<String>,
    /// Only this Application (`NS/NAME`).
    pub app: Option<String>,
    /// Only objects of this kind.
    pub kind: Option<String>,
    /// Only these entry kinds, comma-separated.
    pub entry: Option<String>,
    /// Only entries after this seq (live tail).
    pub after: Option<u64>,
    /// Draw marks one by one up to this many.
    pub max: Option<usize>,
    /// Buckets when counting.
    pub buckets: Option<i64>,
}

fn parse_kinds(s: Option<&str>) -> Result<Vec<EntryKind>, UiError> {
    let mut kinds = Vec::new();
    for k in s
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        kinds.push(EntryKind::parse(k).ok_or_else(|| {
            UiError::BadRequest(format!(
                "entry={k:?} is not an entry kind; use event, plan, action, outcome or marker \
                 (comma-separated)"
            ))
        })?);
    }
    Ok(kinds)
}

fn parse_when(what: &str, s: Option<&str>) -> Result<Option<DateTime<Utc>>, UiError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => replay::query::parse_time(s)
            .map(Some)
            .map_err(|e| UiError::BadRequest(format!("{what}: {e}"))),
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// One mark of the timeline.
#[derive(Debug, Serialize)]
struct Mark {
    seq: u64,
    at: String,
    ms: f64,
    kind: EntryKind,
    lane: Lane,
    text: String,
    /// The object's page, if the entry is about one.
    object: Option<String>,
}

/// `GET /api/timeline`: the entries of a time window (filtered), one mark each when there are
/// at most `max`, else counts per lane, entry kind and bucket (computed by the log). Without
/// `from` and `to`, the window is the last [`DEFAULT_SPAN`] entries.
pub async fn timeline(State(shared): State<Arc<Shared>>, Query(q): Query<TimelineQuery>) -> Answer {
    let kinds = parse_kinds(q.entry.as_deref())?;
    let from = parse_when("from", q.from.as_deref())?;
    let to = parse_when("to", q.to.as_deref())?;
    let max = q.max.unwrap_or(MAX_MARKS).clamp(1, 5 * MAX_MARKS);
    let buckets = q.buckets.unwrap_or(BUCKETS).clamp(1, 2000);
    with_log(&shared, move |reader| {
        let last = reader.last_seq()?;
        let after = q.after.map_or(1, |a| a.saturating_add(1));
        let empty = || {
            Json(
                json!({"mode": "marks", "marks": [], "lanes": [], "total": 0,
                "last_seq": last, "from_ms": null, "to_ms": null}),
            )
        };
        // Without a window: the last DEFAULT_SPAN entries, from the earliest to the latest time
        // among them (outcomes carry the executor's clock). With one: the seqs where the
        // controller's time crosses its ends (SLACK before, OUTCOME_SLACK after, for outcomes
        // recorded after their actions), each entry's own time checked too.
        let (from, to, lo, hi, timed) = match (from, to) {
            (None, None) => {
                let lo = last.saturating_sub(DEFAULT_SPAN - 1).max(1).max(after);
                match reader.time_span(lo, last)? {
                    None => return Ok(empty()),
                    Some((a, b)) => (a, b + chrono::Duration::milliseconds(1), lo, last, false),
                }
            }
            (from, to) => {
                let first_at = reader.time_span(1, 1)?.map(|t| t.0);
                let last_at = reader.time_span(last, last)?.map(|t| t.1);
                let (Some(first_at), Some(last_at)) = (first_at, last_at) else {
                    return Ok(empty());
                };
                let from = from.unwrap_or(first_at);
                let to = to.unwrap_or(last_at + chrono::Duration::milliseconds(1));
                let lo = reader
                    .seq_at_time(from)?
                    .saturating_sub(SLACK)
                    .max(1)
                    .max(after);
                let hi = reader
                    .seq_at_time(to)?
                    .saturating_add(OUTCOME_SLACK)
                    .min(last);
                (from, to, lo, hi, true)
            }
        };
        if to <= from {
            return Err(UiError::BadRequest(format!(
                "the window ends ({}) before it starts ({}); give to= later than from=",
                nanos(to),
                nanos(from)
            )));
        }
        let mut filter = Filter::new().kinds(&kinds).seqs(lo..=hi);
        if timed {
            filter = filter.between(Some(from), Some(to));
        }
        filter.namespace = non_empty(&q.ns);
        filter.application = non_empty(&q.app);
        filter.object_kind = non_empty(&q.kind);
        let span = (to - from).num_nanoseconds().unwrap_or(i64::MAX).max(1);
        let width = (span / buckets).max(1) + i64::from(span % buckets != 0);
        let counts: Vec<LaneCount> = if lo > hi {
            Vec::new()
        } else {
            reader.counts(&filter, from, width)?
        };
        let total: u64 = counts.iter().map(|c| c.count).sum();
        let mut lanes: BTreeMap<Lane, u64> = BTreeMap::new();
        for c in &counts {
            *lanes.entry(c.lane.clone()).or_default() += c.count;
        }
        let lanes: Vec<Value> = lanes
            .into_iter()
            .map(|(lane, n)| json!({"kind": lane.kind, "name": lane.name, "count": n}))
            .collect();
        let mut answer = json!({
            "from": nanos(from), "to": nanos(to), "from_ms": ms(from), "to_ms": ms(to),
            "seq_from": lo, "seq_to": hi, "last_seq": last, "total": total, "lanes": lanes,
        });
        if total as usize <= max {
            let mut marks = Vec::new();
            if lo <= hi {
                for e in reader.query(&filter.clone().limit(max).as_stored()) {
                    let e = e?;
                    let object = object_path(&e.body, &e.keys);
                    marks.push(Mark {
                        seq: e.seq,
                        at: nanos(e.at),
                        ms: ms(e.at),
                        kind: e.kind(),
                        lane: Lane::of(&e.keys),
                        text: line(&e),
                        object,
                    });
                }
            }
            answer["mode"] = json!("marks");
            answer["marks"] = to_json(&marks)?;
        } else {
            let buckets: Vec<Value> = counts
                .iter()
                .map(|c| {
                    let start =
                        from + chrono::Duration::nanoseconds(c.bucket.saturating_mul(width));
                    json!({"lane": c.lane, "kind": c.entry_kind, "bucket": c.bucket,
                           "count": c.count, "start_ms": ms(start),
                           "end_ms": ms(start + chrono::Duration::nanoseconds(width))})
                })
                .collect();
            answer["mode"] = json!("buckets");
            answer["bucket_ms"] = json!(width as f64 / 1e6);
            answer["buckets"] = Value::Array(buckets);
        }
        Ok(Json(answer))
    })
    .await
}

/// The UI path of the object an entry is about: `/object/API_VERSION/KIND/NS/NAME`.
fn object_path(body: &Body, keys: &crate::record::Keys) -> Option<String> {
    let (key, api) = match body {
        Body::Event(e) => (e.key.clone(), Some(e.api_version.clone())),
        Body::Action(a) => (a.action.target.clone(), Some(a.action.api_version.clone())),
        _ => (
            ObjKey::new(
                keys.object_kind.as_deref()?,
                keys.namespace.as_deref().unwrap_or(""),
                keys.object_name.as_deref()?,
            ),
            None,
        ),
    };
    Some(object_link(&key, api.as_deref()))
}

/// `/object/[API_VERSION/]KIND/NAMESPACE/NAME`.
pub fn object_link(key: &ObjKey, api_version: Option<&str>) -> String {
    match api_version.filter(|a| !a.is_empty()) {
        Some(api) => format!("/object/{api}/{}/{}/{}", key.kind, key.namespace, key.name),
        None => format!("/object/{}/{}/{}", key.kind, key.namespace, key.name),
    }
}

/// Parses the key of an object URL: `[GROUP/]VERSION/KIND/NAMESPACE/NAME` or
/// `KIND/NAMESPACE/NAME` (the apiVersion, if given, is for the reader of the link).
pub fn parse_object_path(path: &str) -> Result<ObjKey, UiError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() < 3 || parts.len() > 5 || parts.iter().rev().take(3).any(|p| p.is_empty()) {
        return Err(UiError::BadRequest(format!(
            "/object/{path} does not name an object; write /object/[GROUP/]VERSION/KIND/\
             NAMESPACE/NAME, e.g. /object/apps/v1/Deployment/shop/web"
        )));
    }
    let n = parts.len();
    Ok(ObjKey::new(parts[n - 3], parts[n - 2], parts[n - 1]))
}

/// `GET /api/entry/SEQ`: the entry, its chain (events → plan → actions → outcomes → next
/// observation) and `audit why`'s text for its object.
pub async fn entry(State(shared): State<Arc<Shared>>, Path(seq): Path<String>) -> Answer {
    let seq = parse_seq(&seq)?;
    with_log(&shared, move |reader| {
        let chain = replay::chain::chain(reader, seq)?;
        let entry = reader
            .get(seq)?
            .ok_or_else(|| UiError::NotFound(format!("entry {seq} is not in the log")))?;
        let body = body_json(&entry.body).map_err(|e| {
            UiError::Log(format!(
                "entry {seq} cannot be shown: {e}. Run `logbook audit verify` on the file"
            ))
        })?;
        // `audit why` as of the last outcome shown (else the entry itself).
        let why_at = chain
            .actions
            .iter()
            .flat_map(|a| a.outcomes.iter())
            .filter_map(|o| DateTime::parse_from_rfc3339(&o.at).ok())
            .map(|t| t.with_timezone(&Utc))
            .max()
            .unwrap_or(entry.at)
            .max(entry.at);
        let (why, why_json) = match &chain.object {
            Some(key) => match replay::why::explain(reader, key, Some(why_at)) {
                Ok(w) => (replay::why::narrate(&w), to_json(&w)?),
                Err(replay::WhyError::Unknown(m)) => (vec![m], Value::Null),
                Err(replay::WhyError::Log(e)) => return Err(e.into()),
            },
            None => (Vec::new(), Value::Null),
        };
        let object = object_path(&entry.body, &entry.keys);
        Ok(Json(json!({
            "seq": entry.seq,
            "id": entry.id.to_string(),
            "at": nanos(entry.at),
            "kind": entry.kind(),
            "keys": entry.keys,
            "lane": Lane::of(&entry.keys),
            "line": line(&entry),
            "body": body,
            "object": object,
            "chain": to_json(&chain)?,
            "why": why,
            "why_json": why_json,
            "why_at": nanos(why_at),
            "last_seq": reader.last_seq()?,
        })))
    })
    .await
}

fn parse_seq(s: &str) -> Result<u64, UiError> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            UiError::BadRequest(format!(
                "{s:?} is not an entry number; entries are numbered from 1 (e.g. /entry/123)"
            ))
        })
}

/// Query of `GET /api/object/...`.
#[derive(Debug, Default, Deserialize)]
pub struct ObjectQuery {
    /// How many of the newest versions to list.
    pub limit: Option<usize>,
}

/// `GET /api/object/[GROUP/]VERSION/KIND/NS/NAME`: the object's observed versions.
pub async fn object(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(q): Query<ObjectQuery>,
) -> Answer {
    let key = parse_object_path(&key)?;
    let limit = q.limit.unwrap_or(VERSIONS).clamp(1, 5 * VERSIONS);
    with_log(&shared, move |reader| {
        let versions = replay::history::versions(reader, &key, limit)?;
        let api = versions.shown.last().map(|v| v.api_version.clone());
        Ok(Json(json!({
            "object": versions.object,
            "kind": key.kind, "namespace": key.namespace, "name": key.name,
            "link": object_link(&key, api.as_deref()),
            "total": versions.total,
            "versions": to_json(&versions.shown)?,
        })))
    })
    .await
}

/// Query of `GET /api/diff/...`.
#[derive(Debug, Default, Deserialize)]
pub struct DiffQuery {
    /// The first version (an event's seq).
    pub a: Option<String>,
    /// The second version.
    pub b: Option<String>,
}

/// `GET /api/diff/KEY?a=SEQ&b=SEQ`: the fields that differ between two observed versions,
/// server noise left out.
pub async fn diff(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Answer {
    let key = parse_object_path(&key)?;
    let need = |v: &Option<String>, name: &str| -> Result<u64, UiError> {
        match v {
            Some(s) => parse_seq(s),
            None => Err(UiError::BadRequest(format!(
                "{name}= is missing: give the two versions as event seqs, e.g. ?a=12&b=40"
            ))),
        }
    };
    let (a, b) = (need(&q.a, "a")?, need(&q.b, "b")?);
    with_log(&shared, move |reader| {
        let changes = replay::history::diff_versions(reader, &key, a, b)?;
        Ok(Json(json!({
            "object": key.to_string(), "a": a, "b": b,
            "noise": replay::history::NOISE,
            "changes": to_json(&changes)?,
        })))
    })
    .await
}

/// Query of `GET /api/state`.
#[derive(Debug, Default, Deserialize)]
pub struct StateQuery {
    /// A seq or an RFC 3339 time; default: the end of the log.
    pub at: Option<String>,
    /// Only this namespace.
    pub ns: Option<String>,
}

/// `GET /api/state?at=SEQ|TIME&ns=NS`: the world at a point, as `logbook-replay state` gives
/// it (folded from the nearest checkpoint), at most [`STATE_ITEMS`] objects.
pub async fn state(State(shared): State<Arc<Shared>>, Query(q): Query<StateQuery>) -> Answer {
    let point = match non_empty(&q.at) {
        None => None,
        Some(s) => Some(
            s.parse::<Point>()
                .map_err(|e| UiError::BadRequest(format!("at: {e}")))?,
        ),
    };
    with_log(&shared, move |reader| {
        let last = reader.last_seq()?;
        if last == 0 {
            return Err(UiError::NotFound(format!(
                "{} is empty: there is no state to show yet",
                reader.path().display()
            )));
        }
        let point = point.unwrap_or(Point::Seq(last));
        let from = match point {
            Point::Seq(s) => s,
            Point::Time(t) => reader.seq_at_time(t)?.saturating_sub(1).max(1),
        };
        let world = replay::world_at_from(reader, point, from, None)?;
        let ns = non_empty(&q.ns);
        let mut doc = replay::state_document(&world, ns.as_deref());
        let items = doc.get_mut("items").and_then(Value::as_array_mut);
        let total = items.as_ref().map_or(0, |i| i.len());
        if let Some(items) = items {
            items.truncate(STATE_ITEMS);
        }
        Ok(Json(json!({
            "seq": world.seq,
            "at": world.at.map(nanos),
            "started_from": world.started_from,
            "notes": world.notes,
            "total": total,
            "shown": total.min(STATE_ITEMS),
            "document": doc,
        })))
    })
    .await
}

/// `GET /api/verify`: `logbook-replay verify` of the whole log (every plan recomputed, the
/// hash chain checked): `ok`, or the first divergence with its diff.
pub async fn verify(State(shared): State<Arc<Shared>>) -> Answer {
    with_log(&shared, |reader| {
        let report = replay::verify(reader, &replay::VerifyOptions::default())?;
        Ok(Json(
            json!({"ok": report.is_ok(), "report": to_json(&report)?}),
        ))
    })
    .await
}

/// Largest what-if configuration accepted.
pub const MAX_CONFIG: usize = 64 * 1024;

/// `POST /api/what-if` with a configuration (YAML or JSON, as `logbook-replay what-if --config`
/// takes; an empty body: the log's own): what would have been done differently.
pub async fn what_if(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Answer {
    if body.len() > MAX_CONFIG {
        return Err(UiError::BadRequest(format!(
            "the configuration is {} bytes; at most {MAX_CONFIG} are taken",
            body.len()
        )));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|e| UiError::BadRequest(format!("the configuration is not UTF-8 text: {e}")))?
        .to_string();
    let config = if text.trim().is_empty() {
        None
    } else {
        Some(replay::parse_overlay(&text).map_err(|e| {
            UiError::Unprocessable(format!(
                "the uploaded configuration cannot be used: {e}. Nothing was run"
            ))
        })?)
    };
    with_log(&shared, move |reader| {
        let report = replay::what_if(
            reader,
            &replay::WhatIfOptions {
                config,
                ..Default::default()
            },
        )?;
        Ok(Json(to_json(&report)?))
    })
    .await
}

/// Any other `/api/` path.
pub async fn not_found(Path(rest): Path<String>) -> UiError {
    UiError::NotFound(format!(
        "/api/{rest} is not an endpoint of logbook ui; the endpoints are summary, timeline, \
         entry/SEQ, object/KEY, diff/KEY, state, verify and what-if (POST)"
    ))
}
