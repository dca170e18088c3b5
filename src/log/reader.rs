//! Reading the log: single entries, ranges by seq and filtered queries, streamed in chunks;
//! and what a timeline asks: counts per lane, entry kind and time bucket ([`LogReader::counts`]),
//! where the controller's time crosses a moment ([`LogReader::seq_at_time`]), a seq range's time
//! span. Owns row decoding and the query filters; never writes (its connection may be read-only).
//! Entries come out whole: an object stored as a patch is rebuilt ([`Rebuild`]) unless the
//! filter asks for entries as stored ([`Filter::stored`]).

use super::audit::{self, AuditKey};
use super::error::{LogError, LogResult};
use super::store::{self, Db, ENTRY_COLUMNS, Layout, Mode};
use super::verify::{self, VerifyReport};
use crate::record::delta::RebuildError;
use crate::record::entry::decode_stored;
use crate::record::{Entry, EntryKind, Keys, ObjKey, PAYLOAD_FORMAT, Rebuild};
use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Value;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use uuid::Uuid;

/// How many rows one read fetches: memory of a scan is bounded by this, not the log's length.
const CHUNK: usize = 1024;

/// A log opened for reading. Opening it read-only works while a writer appends; each chunk of
/// a scan sees everything committed when it was fetched.
///
/// Objects stored as patches come out whole. The reader keeps the last version it read of each
/// large object (shared by all its scans), so a scan in seq order rebuilds each patched object
/// with one patch; an entry read out of order walks back through its patches' bases (at most
/// [`crate::record::delta::FULL_EVERY`] entries).
pub struct LogReader {
    db: Db,
    rebuild: RefCell<Rebuild>,
}

impl LogReader {
    /// Opens the log at `path` read-only. The file must exist, be a regular file and be a
    /// logbook log this build reads; nothing is ever written to it. A log in a place this
    /// process cannot write (a read-only directory or mount) is read too: without its `-shm`
    /// when its main file holds every entry, and refused with what to do
    /// ([`LogError::UnreadableWal`]) when a `-wal` with entries is there that SQLite cannot use.
    pub fn open(path: &Path) -> LogResult<LogReader> {
        // A FIFO, a directory or a device is refused before anything opens it; a missing file
        // is reported as such.
        if store::inspect(path)?.is_none() {
            return Err(LogError::io(
                path,
                "open the log",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Ok(LogReader::from_db(store::open_existing(
            path,
            Mode::ReadOnly,
        )?))
    }

    pub(crate) fn from_db(db: Db) -> LogReader {
        LogReader {
            db,
            rebuild: RefCell::new(Rebuild::new()),
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn db_mut(&mut self) -> &mut Db {
        &mut self.db
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// The seq of the last entry (0 when the log is empty).
    pub fn last_seq(&self) -> LogResult<u64> {
        Ok(self.db.head()?.map_or(0, |(seq, _)| seq))
    }

    /// The seq and hash of the last entry, if any.
    pub fn head(&self) -> LogResult<Option<(u64, [u8; 32])>> {
        self.db.head()
    }

    /// The entry at `seq`, if there is one (whole).
    pub fn get(&self, seq: u64) -> LogResult<Option<Entry>> {
        let entry = stored_at(&self.db, seq)?;
        self.whole(entry)
    }

    /// The entry at `seq` as stored: an object stored as a patch is not rebuilt (its record has
    /// no object, and [`Entry::delta`] holds the patch).
    pub fn get_stored(&self, seq: u64) -> LogResult<Option<Entry>> {
        stored_at(&self.db, seq)
    }

    /// The entry with id `id`, if there is one (whole).
    pub fn find(&self, id: Uuid) -> LogResult<Option<Entry>> {
        let entry = one(
            &self.db,
            &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1"),
            Value::Blob(id.as_bytes().to_vec()),
        )?;
        self.whole(entry)
    }

    fn whole(&self, entry: Option<Entry>) -> LogResult<Option<Entry>> {
        let Some(mut entry) = entry else {
            return Ok(None);
        };
        make_whole(&self.db, &self.rebuild, &mut entry)?;
        Ok(Some(entry))
    }

    /// The entries whose seq is in `seqs`, in order, fetched in chunks as the iterator advances.
    pub fn range(&self, seqs: impl RangeBounds<u64>) -> Entries<'_> {
        self.query(&Filter::new().seqs(seqs))
    }

    /// The entries matching `filter`, in seq order, fetched in chunks as the iterator advances.
    pub fn query(&self, filter: &Filter) -> Entries<'_> {
        let rebuild = (!filter.stored).then_some(&self.rebuild);
        Entries::new(&self.db, rebuild, filter)
    }

    /// The seq of the last entry at or before `upto` whose audit keys name `object` (its
    /// kind, name and namespace, matched as [`Filter::object`] matches them), if any: the
    /// object's audit rows span by span back from `upto` (schema version 2), or one descending
    /// step through the object index (version 1); no entry is read. (How readers find the
    /// nearest checkpoint.)
    pub fn last_about(&self, object: &ObjKey, upto: u64) -> LogResult<Option<u64>> {
        let keys = Keys::for_object(object, None);
        let Some(kind) = keys.object_kind else {
            return Ok(None);
        };
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "search the object index of", e);
        if matches!(self.db.layout, Layout::AuditTable) {
            let key = AuditKey::Object {
                kind: &kind,
                namespace: keys.namespace.as_deref(),
                name: keys.object_name.as_deref(),
            };
            return self.last_in_audit(&key.text(), upto);
        }
        let mut stmt = self
            .db
            .conn
            .prepare_cached(
                "SELECT seq FROM entries WHERE object_kind = ?1 AND object_name IS ?2 \
                 AND namespace IS ?3 AND seq <= ?4 ORDER BY seq DESC LIMIT 1",
            )
            .map_err(fail)?;
        let text = |v: Option<String>| v.map_or(Value::Null, Value::Text);
        let upto = Value::Integer(i64::try_from(upto).unwrap_or(i64::MAX));
        let mut rows = stmt
            .query(rusqlite::params![
                Value::Text(kind),
                text(keys.object_name),
                text(keys.namespace),
                upto
            ])
            .map_err(fail)?;
        match rows.next().map_err(fail)? {
            None => Ok(None),
            Some(row) => {
                let seq: i64 = row.get(0).map_err(fail)?;
                Ok(u64::try_from(seq).ok())
            }
        }
    }

    /// The last seq at or before `upto` that the audit key `key` lists (schema version 2): the
    /// key's rows of each span, from `upto`'s span down, one seek a span.
    fn last_in_audit(&self, key: &str, upto: u64) -> LogResult<Option<u64>> {
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "search the audit keys of", e);
        let upto = upto.min(self.last_seq()?);
        let mut stmt = self
            .db
            .conn
            .prepare_cached(
                "SELECT first, last, seqs FROM audit WHERE span = ?1 AND key = ?2 \
                 AND first <= ?3 ORDER BY first DESC",
            )
            .map_err(fail)?;
        let mut span = audit::span(upto);
        loop {
            let mut rows = stmt
                .query(rusqlite::params![clamp(span), key, clamp(upto)])
                .map_err(fail)?;
            while let Some(row) = rows.next().map_err(fail)? {
                let listed = audit_row_seqs(path, key, row)?;
                if let Some(seq) = listed.into_iter().rev().find(|s| *s <= upto) {
                    return Ok(Some(seq));
                }
            }
            if span == 0 {
                return Ok(None);
            }
            span -= 1;
        }
    }

    /// The seq of the first entry the controller recorded at or after `t` (one past the last
    /// seq when none is): a binary search over seqs, one timestamp read per step (about 20 for
    /// a million entries). Outcomes are passed over: they carry an executor's clock, while
    /// every other entry carries the controller's recording time, which never goes backwards.
    /// An outcome stamped within a window may therefore lie after the seq this gives for the
    /// window's end (it is recorded after its action); callers filtering by time search a
    /// margin past it and check each entry's own time.
    pub fn seq_at_time(&self, t: DateTime<Utc>) -> LogResult<u64> {
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "search the times of", e);
        let want = t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        });
        let last = self.last_seq()?;
        let mut stmt = self
            .db
            .conn
            .prepare_cached(
                "SELECT seq, at_ns FROM entries WHERE seq >= ?1 AND seq <= ?2 \
                 AND kind != 'outcome' ORDER BY seq LIMIT 1",
            )
            .map_err(fail)?;
        // The first seq in lo..=hi whose (non-outcome) time is at or after `want` (hi = last
        // + 1: none).
        let (mut lo, mut hi) = (1u64, last.saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // The first entry at or after `mid` that is not an outcome, before `hi`.
            let found: Option<(i64, i64)> = stmt
                .query_row([clamp(mid), clamp(hi.saturating_sub(1))], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(fail(e)),
                })?;
            match found {
                Some((seq, at)) if at < want => lo = u64::try_from(seq).unwrap_or(mid) + 1,
                _ => hi = mid,
            }
        }
        // Every entry before `lo` that is not an outcome is earlier than `t`, and every one
        // from `lo` on is not: the answer is the first of those, past any outcomes at `lo`.
        let next: Option<(i64, i64)> = stmt
            .query_row([clamp(lo), clamp(last)], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(fail(e)),
            })?;
        Ok(next
            .and_then(|(seq, _)| u64::try_from(seq).ok())
            .unwrap_or(last.saturating_add(1)))
    }

    /// The earliest and latest times of the entries with seq in `from..=to` (`None`: no
    /// entry there): one scan of that seq range's rows, reading no payload.
    pub fn time_span(
        &self,
        from: u64,
        to: u64,
    ) -> LogResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "read the times of", e);
        let mut stmt = self
            .db
            .conn
            .prepare_cached(
                "SELECT min(at_ns), max(at_ns) FROM entries WHERE seq >= ?1 AND seq <= ?2",
            )
            .map_err(fail)?;
        let (min, max): (Option<i64>, Option<i64>) = stmt
            .query_row([clamp(from), clamp(to)], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map_err(fail)?;
        Ok(min.zip(max).map(|(a, b)| {
            (
                DateTime::<Utc>::from_timestamp_nanos(a),
                DateTime::<Utc>::from_timestamp_nanos(b),
            )
        }))
    }

    /// How many entries matching `filter` fall in each lane ([`Lane`]), entry kind and time
    /// bucket: bucket `b` holds the entries recorded in `[origin + b*width, origin +
    /// (b+1)*width)` (nanoseconds; earlier entries get negative buckets). One grouped scan of the
    /// filter's seq range that reads the key columns only, never a payload: what a timeline
    /// shows where there are too many entries to draw one by one. Sorted by lane, kind, bucket.
    pub fn counts(
        &self,
        filter: &Filter,
        origin: DateTime<Utc>,
        width_ns: i64,
    ) -> LogResult<Vec<LaneCount>> {
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "count the entries of", e);
        let width = width_ns.max(1);
        let origin = origin.timestamp_nanos_opt().unwrap_or(0);
        let (conditions, params) = conditions(filter);
        let sql = format!(
            "SELECT {LANE_KIND_SQL} AS lk, {LANE_NAME_SQL} AS ln, kind, \
             (at_ns - ?1) / ?2 - (CASE WHEN at_ns < ?1 AND (at_ns - ?1) % ?2 != 0 THEN 1 ELSE 0 END) AS b, \
             count(*) FROM entries NOT INDEXED WHERE seq >= ?3 AND seq <= ?(LAST){conditions} \
             GROUP BY lk, ln, kind, b ORDER BY lk, ln, kind, b"
        );
        // `conditions` numbers its parameters from ?4: seq bounds take ?3 and one more slot,
        // placed after them.
        let last_slot = params.len() + 4;
        let sql = sql.replace("?(LAST)", &format!("?{last_slot}"));
        let mut args = vec![
            Value::Integer(origin),
            Value::Integer(width),
            Value::Integer(clamp(filter.from_seq.unwrap_or(1))),
        ];
        args.extend(params);
        args.push(Value::Integer(clamp(filter.to_seq.unwrap_or(u64::MAX))));
        let mut stmt = self.db.conn.prepare_cached(&sql).map_err(fail)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(fail)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let kind: String = row.get(2).map_err(fail)?;
            let kind = EntryKind::parse(&kind).ok_or_else(|| LogError::Corrupt {
                path: path.to_path_buf(),
                problem: format!(
                    "an entry's kind is {kind:?}, not one of event, plan, action, outcome, marker"
                ),
            })?;
            out.push(LaneCount {
                lane: Lane {
                    kind: row.get(0).map_err(fail)?,
                    name: row.get(1).map_err(fail)?,
                },
                entry_kind: kind,
                bucket: row.get(3).map_err(fail)?,
                count: u64::try_from(row.get::<_, i64>(4).map_err(fail)?).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// The seq stored under cursor `name`, if it was ever set.
    pub fn cursor(&self, name: &str) -> LogResult<Option<u64>> {
        self.db.cursor(name)
    }

    /// How SQLite runs [`LogReader::query`] with `filter`: the lines of `EXPLAIN QUERY PLAN`
    /// for the SQL behind it. Through an audit key (schema version 2), first the reading of
    /// the key's rows (`SEARCH audit USING PRIMARY KEY (span=? AND key=? ...)`), then of the
    /// entries they list (`SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)`); through a
    /// version-1 index, `SEARCH entries USING INDEX ...`; by seq range, `SEARCH entries USING
    /// INTEGER PRIMARY KEY (rowid>? AND rowid<?)`. For tests and for finding out why an audit
    /// is slow.
    pub fn query_plan(&self, filter: &Filter) -> LogResult<Vec<String>> {
        let plan = Plan::new(&self.db.layout, filter);
        let mut lines = Vec::new();
        if let Some(key) = &plan.audit {
            let args = [
                Value::Integer(1),
                Value::Integer(i64::MAX),
                Value::Integer(1),
                Value::Text(key.clone()),
            ];
            lines.extend(self.explain(AUDIT_ROWS_SQL, &args)?);
        }
        let mut args = vec![
            if plan.audit.is_some() {
                Value::Text("[1]".into())
            } else {
                Value::Integer(1)
            },
            Value::Integer(i64::MAX),
            Value::Integer(1),
        ];
        args.extend(plan.params.iter().cloned());
        lines.extend(self.explain(&plan.sql, &args)?);
        Ok(lines)
    }

    fn explain(&self, sql: &str, args: &[Value]) -> LogResult<Vec<String>> {
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "explain a query of", e);
        let mut stmt = self
            .db
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .map_err(fail)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(fail)?;
        let mut lines = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            lines.push(row.get::<_, String>(3).map_err(fail)?);
        }
        Ok(lines)
    }

    /// Walks the hash chain from the first entry and reports the first entry that was edited,
    /// removed or reordered (see [`VerifyReport`]), then runs SQLite's `integrity_check` over
    /// the whole file and compares the audit keys with the entries: damaged pages, and audit
    /// keys or a version-1 audit index that disagree with the entries (which would hide entries
    /// from filtered queries), are reported as [`VerifyReport::structure`]. Memory does not
    /// grow with the log.
    pub fn verify(&self) -> LogResult<VerifyReport> {
        verify::verify(&self.db)
    }

    /// The chain check of [`LogReader::verify`] for entries `seq` on, trusting those before
    /// (checked earlier): entry `seq` is hashed again against its own stored link, and every
    /// later entry must chain to it. `checked` counts the entries hashed; SQLite's structure is
    /// not checked. `verify_from(0)` walks the whole chain. When entry `seq` is gone, the whole
    /// chain is walked, and a log that now ends before `seq` is reported as truncated.
    pub fn verify_from(&self, seq: u64) -> LogResult<VerifyReport> {
        verify::verify_from(&self.db, seq)
    }
}

/// The row of a timeline an entry is drawn on: its Application when it has one (an
/// Application and its children share a lane), else its object (a Build, a PgCluster, any kind
/// without an Application), else its namespace, else the log itself (markers, whole-world plans).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Lane {
    /// `Application`, an object kind, `Namespace`, or `Log`.
    pub kind: String,
    /// `namespace/name` (`name` for a cluster-scoped object, the namespace, or empty).
    pub name: String,
}

impl Lane {
    /// The lane of an entry with `keys` (the same rule [`LogReader::counts`] groups by).
    pub fn of(keys: &Keys) -> Lane {
        let (kind, name) = match (&keys.application, &keys.object_kind, &keys.namespace) {
            (Some(app), _, _) => ("Application".to_string(), app.clone()),
            (None, Some(kind), ns) => (
                kind.clone(),
                match ns {
                    Some(ns) => format!("{ns}/{}", keys.object_name.as_deref().unwrap_or("")),
                    None => keys.object_name.clone().unwrap_or_default(),
                },
            ),
            (None, None, Some(ns)) => ("Namespace".to_string(), ns.clone()),
            (None, None, None) => ("Log".to_string(), String::new()),
        };
        Lane { kind, name }
    }
}

/// [`Lane::of`] in SQL: the lane's kind and name from an entry's key columns.
const LANE_KIND_SQL: &str = "CASE WHEN application IS NOT NULL THEN 'Application' \
    WHEN object_kind IS NOT NULL THEN object_kind WHEN namespace IS NOT NULL THEN 'Namespace' \
    ELSE 'Log' END";
const LANE_NAME_SQL: &str = "CASE WHEN application IS NOT NULL THEN application \
    WHEN object_kind IS NOT NULL THEN (CASE WHEN namespace IS NOT NULL \
    THEN namespace || '/' || coalesce(object_name, '') ELSE coalesce(object_name, '') END) \
    WHEN namespace IS NOT NULL THEN namespace ELSE '' END";

/// How many entries of one kind fell in one lane and time bucket ([`LogReader::counts`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LaneCount {
    /// The lane.
    pub lane: Lane,
    /// The entries' kind.
    pub entry_kind: EntryKind,
    /// The bucket's index from the origin.
    pub bucket: i64,
    /// How many.
    pub count: u64,
}

/// Which entries a query returns. Every condition given must hold; `None`/empty means "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// Only entries about this Application (`namespace/name`).
    pub application: Option<String>,
    /// Only entries about this namespace.
    pub namespace: Option<String>,
    /// Only entries about this object.
    pub object: Option<ObjKey>,
    /// Only entries about objects of this kind (checked on the rows read: no key serves it).
    pub object_kind: Option<String>,
    /// Only entries of these kinds (empty: every kind).
    pub kinds: Vec<EntryKind>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only entries from this seq on (inclusive).
    pub from_seq: Option<u64>,
    /// Only entries up to this seq (inclusive).
    pub to_seq: Option<u64>,
    /// At most this many entries.
    pub limit: Option<usize>,
    /// Entries as stored: an object stored as a patch is not rebuilt (its record has no object
    /// and [`Entry::delta`] holds the patch). Cheaper, for readers that do not look at objects.
    pub stored: bool,
}

impl Filter {
    /// Matches every entry.
    pub fn new() -> Filter {
        Filter::default()
    }

    /// Only entries about Application `app` (`namespace/name`).
    pub fn application(mut self, app: &str) -> Filter {
        self.application = Some(app.to_string());
        self
    }

    /// Only entries about namespace `ns`.
    pub fn namespace(mut self, ns: &str) -> Filter {
        self.namespace = Some(ns.to_string());
        self
    }

    /// Only entries about `object`.
    pub fn object(mut self, object: &ObjKey) -> Filter {
        self.object = Some(object.clone());
        self
    }

    /// Only entries about objects of kind `kind` (e.g. `Deployment`).
    pub fn object_kind(mut self, kind: &str) -> Filter {
        self.object_kind = Some(kind.to_string());
        self
    }

    /// Only entries of `kinds`.
    pub fn kinds(mut self, kinds: &[EntryKind]) -> Filter {
        self.kinds = kinds.to_vec();
        self
    }

    /// Only entries in `[since, until)`.
    pub fn between(mut self, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Filter {
        self.since = since;
        self.until = until;
        self
    }

    /// Only entries whose seq is in `seqs`.
    pub fn seqs(mut self, seqs: impl RangeBounds<u64>) -> Filter {
        self.from_seq = match seqs.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => Some(s.saturating_add(1)),
            Bound::Unbounded => None,
        };
        self.to_seq = match seqs.end_bound() {
            Bound::Included(&s) => Some(s),
            // Excluded(0) gives 0: seqs start at 1, so the range is empty.
            Bound::Excluded(&s) => Some(s.saturating_sub(1)),
            Bound::Unbounded => None,
        };
        self
    }

    /// At most `n` entries.
    pub fn limit(mut self, n: usize) -> Filter {
        self.limit = Some(n);
        self
    }

    /// Entries as stored, objects stored as patches not rebuilt (see [`Filter::stored`]).
    pub fn as_stored(mut self) -> Filter {
        self.stored = true;
        self
    }
}

/// Entries streamed from the log in seq order, a chunk at a time.
///
/// Each chunk sees every entry committed when it is fetched; the scan ends at the first chunk
/// that comes back short (to follow a growing log, start a new range after the last seq seen).
/// Yields `Err` at most once (the first entry or read that failed) and then ends.
pub struct Entries<'a> {
    db: &'a Db,
    plan: Plan,
    /// Where objects stored as patches are rebuilt; `None`: entries as stored.
    rebuild: Option<&'a RefCell<Rebuild>>,
    next_seq: u64,
    last_seq: u64,
    remaining: Option<usize>,
    buf: VecDeque<Entry>,
    error: Option<LogError>,
    exhausted: bool,
}

impl<'a> Entries<'a> {
    fn new(db: &'a Db, rebuild: Option<&'a RefCell<Rebuild>>, f: &Filter) -> Entries<'a> {
        let next_seq = f.from_seq.unwrap_or(1).max(1);
        let last_seq = f.to_seq.unwrap_or(u64::MAX);
        Entries {
            db,
            plan: Plan::new(&db.layout, f),
            rebuild,
            next_seq,
            last_seq,
            remaining: f.limit,
            buf: VecDeque::new(),
            error: None,
            exhausted: next_seq > last_seq || f.limit == Some(0),
        }
    }

    fn refill(&mut self) {
        let want = self.remaining.map_or(CHUNK, |r| r.min(CHUNK));
        if want == 0 || self.next_seq > self.last_seq {
            self.exhausted = true;
            return;
        }
        let fresh = self.buf.len();
        let mut result = match &self.plan.audit {
            None => self.refill_from_entries(want),
            Some(key) => {
                let key = key.clone();
                self.refill_from_audit(&key, want)
            }
        };
        // Rebuilt once the chunk's statement is done (rebuilding may read earlier entries); an
        // entry that cannot be made whole ends the scan there, like one that cannot be decoded.
        if let Some(rebuild) = self.rebuild {
            let db = self.db;
            let failed = self
                .buf
                .iter_mut()
                .enumerate()
                .skip(fresh)
                .find_map(|(i, entry)| make_whole(db, rebuild, entry).err().map(|e| (i, e)));
            if let Some((i, e)) = failed {
                self.buf.truncate(i);
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        if let Err(e) = result {
            self.error = Some(e);
            self.exhausted = true;
        }
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(self.buf.len());
        }
    }

    /// The next `want` matches, read from `entries` (through a version-1 index or by seq).
    fn refill_from_entries(&mut self, want: usize) -> LogResult<()> {
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "read entries of", e);
        let mut args = Vec::with_capacity(self.plan.params.len() + 3);
        args.push(Value::Integer(clamp(self.next_seq)));
        args.push(Value::Integer(clamp(self.last_seq)));
        args.push(Value::Integer(clamp(want as u64)));
        args.extend(self.plan.params.iter().cloned());
        let mut stmt = self.db.conn.prepare_cached(&self.plan.sql).map_err(fail)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(fail)?;
        let mut count = 0;
        while let Some(row) = rows.next().map_err(fail)? {
            count += 1;
            let entry = decode_row(path, row)?;
            self.next_seq = entry.seq.saturating_add(1);
            self.buf.push_back(entry);
        }
        if count < want {
            self.exhausted = true;
        }
        Ok(())
    }

    /// The next matches (up to `want`) of an audit key (schema version 2): the seqs its rows in
    /// `audit` list, up to a chunk of them, then those entries (checked against the filter).
    /// Repeats until something matched or the rows run out.
    fn refill_from_audit(&mut self, key: &str, want: usize) -> LogResult<()> {
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "read entries of", e);
        while self.buf.is_empty() {
            if self.next_seq > self.last_seq {
                self.exhausted = true;
                return Ok(());
            }
            // The seqs, in order, from the rows of each span of the range.
            let mut seqs: Vec<u64> = Vec::new();
            let mut rows_left = false;
            {
                let mut stmt = self.db.conn.prepare_cached(AUDIT_ROWS_SQL).map_err(fail)?;
                let mut rows = stmt
                    .query(rusqlite::params![
                        clamp(self.next_seq),
                        clamp(self.last_seq),
                        clamp(AUDIT_ROWS as u64),
                        key
                    ])
                    .map_err(fail)?;
                let mut count = 0;
                'rows: while let Some(row) = rows.next().map_err(fail)? {
                    count += 1;
                    let listed = audit_row_seqs(path, key, row)?;
                    for seq in listed {
                        if seq < self.next_seq || seqs.last().is_some_and(|l| seq <= *l) {
                            continue;
                        }
                        if seq > self.last_seq {
                            break 'rows;
                        }
                        if seqs.len() == CHUNK {
                            rows_left = true;
                            break 'rows;
                        }
                        seqs.push(seq);
                    }
                }
                if count == AUDIT_ROWS {
                    rows_left = true;
                }
            }
            let Some(&last) = seqs.last() else {
                self.exhausted = true;
                return Ok(());
            };
            // The entries themselves, with every condition of the filter.
            let mut list = String::with_capacity(seqs.len() * 8);
            list.push('[');
            for (i, seq) in seqs.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(&seq.to_string());
            }
            list.push(']');
            let mut args = Vec::with_capacity(self.plan.params.len() + 3);
            args.push(Value::Text(list));
            args.push(Value::Integer(clamp(seqs[0])));
            args.push(Value::Integer(clamp(last)));
            args.extend(self.plan.params.iter().cloned());
            let mut stmt = self.db.conn.prepare_cached(&self.plan.sql).map_err(fail)?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(args.iter()))
                .map_err(fail)?;
            while let Some(row) = rows.next().map_err(fail)? {
                if self.buf.len() == want {
                    break;
                }
                self.buf.push_back(decode_row(path, row)?);
            }
            self.next_seq = match self.buf.back() {
                // Stopped at `want` (a limit): the scan ends with the limit anyway.
                Some(e) if self.buf.len() == want => e.seq.saturating_add(1),
                _ => last.saturating_add(1),
            };
            if !rows_left {
                self.exhausted = true;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// How many rows of `audit` one step of a keyed scan reads.
const AUDIT_ROWS: usize = 256;

/// The rows of an audit key (`?4`) that list seqs in `?1..=?2`, in seq order, at most `?3`:
/// for each span of the range (up to the last entry's), a seek to the key's rows in it.
const AUDIT_ROWS_SQL: &str = "WITH RECURSIVE spans(s) AS (SELECT ?1 >> 12 UNION ALL \
    SELECT s + 1 FROM spans WHERE s < (min(?2, (SELECT max(seq) FROM entries)) >> 12)) \
    SELECT first, last, seqs FROM audit WHERE span IN spans AND key = ?4 AND last >= ?1 \
    AND first <= ?2 ORDER BY span, first LIMIT ?3";

/// The seqs a row of `audit` (`first, last, seqs`) lists for `key`.
fn audit_row_seqs(path: &Path, key: &str, row: &Row) -> LogResult<Vec<u64>> {
    let fail = |e| LogError::sqlite(path, "read the audit keys of", e);
    let first: i64 = row.get(0).map_err(fail)?;
    let last: i64 = row.get(1).map_err(fail)?;
    row.get_ref(2)
        .ok()
        .and_then(|v| v.as_blob().ok())
        .ok_or_else(|| "its seqs are not a blob".to_string())
        .and_then(|b| audit::decode_seqs(first, last, b))
        .map_err(|problem| LogError::Corrupt {
            path: path.to_path_buf(),
            problem: format!(
                "the audit row for {key} from seq {first} is malformed: {problem} \
                 (`logbook audit verify` checks every audit row)"
            ),
        })
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// How a query with a given filter reads the log: the SELECT of its entries and the parameters
/// of its conditions (from `?4` on), and the audit key whose rows it follows (schema version 2),
/// if any.
///
/// Without an audit key, `sql` reads a seq range (`?1..=?2`, at most `?3` rows), through the
/// version-1 index it names (`INDEXED BY`: without statistics SQLite's planner would rather
/// take the kind index for an object's events and sort them) or through the table. With one,
/// `sql` reads the entries whose seqs are in the JSON array `?1` (and in `?2..=?3`).
struct Plan {
    sql: String,
    params: Vec<Value>,
    audit: Option<String>,
}

impl Plan {
    /// The best way to `f`'s entries: the object's audit key or index (the fewest entries),
    /// else the Application's, else (version 2) the namespace's, else the kind's when one kind
    /// is asked for; otherwise the seq range. A key that is NULL in the filter is no key.
    fn new(layout: &Layout, f: &Filter) -> Plan {
        let object = f.object.as_ref().map(|o| Keys::for_object(o, None));
        let object_kind = object.as_ref().and_then(|k| k.object_kind.as_deref());
        let namespace = f.namespace.as_deref().filter(|s| !s.is_empty());
        let one_kind = match f.kinds.as_slice() {
            [k] => Some(k.as_str()),
            _ => None,
        };
        let (from, audit) = match layout {
            Layout::AuditTable => {
                let key = match (object_kind, &object) {
                    (Some(kind), Some(o)) => Some(AuditKey::Object {
                        kind,
                        namespace: o.namespace.as_deref(),
                        name: o.object_name.as_deref(),
                    }),
                    _ => f
                        .application
                        .as_deref()
                        .map(AuditKey::Application)
                        .or(namespace.map(AuditKey::Namespace))
                        .or(one_kind.map(AuditKey::Kind)),
                };
                match key {
                    Some(key) => (
                        "NOT INDEXED WHERE seq IN (SELECT value FROM json_each(?1)) AND seq >= ?2 \
                         AND seq <= ?3"
                            .to_string(),
                        Some(key.text()),
                    ),
                    None => (
                        "NOT INDEXED WHERE seq >= ?1 AND seq <= ?2".to_string(),
                        None,
                    ),
                }
            }
            Layout::Indexes(ix) => {
                let index = ix
                    .object
                    .filter(|_| object_kind.is_some())
                    .or(ix.application.filter(|_| f.application.is_some()))
                    .or(ix.kind.filter(|_| one_kind.is_some()));
                let from = match index {
                    Some(name) => format!("INDEXED BY {name} WHERE seq >= ?1 AND seq <= ?2"),
                    None => "NOT INDEXED WHERE seq >= ?1 AND seq <= ?2".to_string(),
                };
                (from, None)
            }
        };
        let (conditions, params) = conditions(f);
        let tail = if audit.is_some() {
            " ORDER BY seq"
        } else {
            " ORDER BY seq LIMIT ?3"
        };
        Plan {
            sql: format!("SELECT {ENTRY_COLUMNS} FROM entries {from}{conditions}{tail}"),
            params,
            audit,
        }
    }
}

/// The conditions of `f` other than its seq range, as ` AND ...` clauses with parameters from
/// `?4` on.
fn conditions(f: &Filter) -> (String, Vec<Value>) {
    let mut sql = String::new();
    let mut params: Vec<Value> = Vec::new();
    fn cond(sql: &mut String, params: &mut Vec<Value>, clause: &str, value: Value) {
        params.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", params.len() + 3)));
    }
    if let Some(app) = &f.application {
        cond(
            &mut sql,
            &mut params,
            " AND application = ?",
            Value::Text(app.clone()),
        );
    }
    if let Some(ns) = f.namespace.as_ref().filter(|s| !s.is_empty()) {
        cond(
            &mut sql,
            &mut params,
            " AND namespace = ?",
            Value::Text(ns.clone()),
        );
    }
    if let Some(obj) = &f.object {
        // `=` for a key, `IS NULL` for none: an index that leaves NULL keys out can serve
        // `object_kind = ?` but not `object_kind IS ?`.
        let keys = Keys::for_object(obj, None);
        for (column, value) in [
            ("object_kind", keys.object_kind),
            ("object_name", keys.object_name),
            ("namespace", keys.namespace),
        ] {
            match value {
                Some(v) => cond(
                    &mut sql,
                    &mut params,
                    &format!(" AND {column} = ?"),
                    Value::Text(v),
                ),
                None => sql.push_str(&format!(" AND {column} IS NULL")),
            }
        }
    }
    if let Some(kind) = f.object_kind.as_ref().filter(|s| !s.is_empty()) {
        cond(
            &mut sql,
            &mut params,
            " AND object_kind = ?",
            Value::Text(kind.clone()),
        );
    }
    if !f.kinds.is_empty() {
        let mut kinds: Vec<&str> = f.kinds.iter().map(|k| k.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        sql.push_str(" AND kind IN (");
        for (i, k) in kinds.iter().enumerate() {
            params.push(Value::Text((*k).to_string()));
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", params.len() + 3));
        }
        sql.push(')');
    }
    let ns = |t: &DateTime<Utc>| {
        t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    };
    if let Some(since) = &f.since {
        cond(
            &mut sql,
            &mut params,
            " AND at_ns >= ?",
            Value::Integer(ns(since)),
        );
    }
    if let Some(until) = &f.until {
        cond(
            &mut sql,
            &mut params,
            " AND at_ns < ?",
            Value::Integer(ns(until)),
        );
    }
    (sql, params)
}

impl Iterator for Entries<'_> {
    type Item = LogResult<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.exhausted {
            self.refill();
        }
        if let Some(entry) = self.buf.pop_front() {
            return Some(Ok(entry));
        }
        self.error.take().map(Err)
    }
}

/// The entry at `seq` as stored.
fn stored_at(db: &Db, seq: u64) -> LogResult<Option<Entry>> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    one(
        db,
        &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq = ?1"),
        Value::Integer(seq),
    )
}

fn one(db: &Db, sql: &str, key: Value) -> LogResult<Option<Entry>> {
    let path = &db.path;
    let fail = |e| LogError::sqlite(path, "read an entry of", e);
    let mut stmt = db.conn.prepare_cached(sql).map_err(fail)?;
    let mut rows = stmt.query([key]).map_err(fail)?;
    match rows.next().map_err(fail)? {
        None => Ok(None),
        Some(row) => decode_row(path, row).map(Some),
    }
}

/// Makes a stored entry whole with `rebuild`, reading earlier entries from `db` as needed.
fn make_whole(db: &Db, rebuild: &RefCell<Rebuild>, entry: &mut Entry) -> LogResult<()> {
    let mut fetch = |seq: u64| stored_at(db, seq);
    rebuild
        .borrow_mut()
        .whole(entry, &mut fetch)
        .map_err(|e| match e {
            RebuildError::Fetch(e) => e,
            RebuildError::Bad { seq, problem } => LogError::corrupt_entry(&db.path, seq, problem),
        })
}

/// Decodes one row selected with [`ENTRY_COLUMNS`].
pub(crate) fn decode_row(path: &Path, row: &Row<'_>) -> LogResult<Entry> {
    let col = |i: usize| {
        row.get_ref(i)
            .map_err(|e| LogError::sqlite(path, "read an entry of", e))
    };
    let seq = col(0)?
        .as_i64()
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| LogError::Corrupt {
            path: path.to_path_buf(),
            problem: "an entry's seq is not a positive integer".into(),
        })?;
    let bad = |problem: &str| LogError::corrupt_entry(path, seq, problem);
    let id = col(1)?
        .as_blob()
        .ok()
        .and_then(|b| Uuid::from_slice(b).ok())
        .ok_or_else(|| bad("its id is not a 16-byte UUID"))?;
    let at_ns = col(2)?
        .as_i64()
        .map_err(|_| bad("its timestamp is not an integer"))?;
    let at = DateTime::<Utc>::from_timestamp_nanos(at_ns);
    let kind = col(3)?
        .as_str()
        .ok()
        .and_then(EntryKind::parse)
        .ok_or_else(|| bad("its kind is not one of event, plan, action, outcome, marker"))?;
    let key = |i: usize| -> LogResult<Option<String>> {
        col(i)?
            .as_str_or_null()
            .map(|s| s.map(str::to_string))
            .map_err(|_| bad("an audit key is not text"))
    };
    let keys = Keys {
        namespace: key(4)?,
        application: key(5)?,
        object_kind: key(6)?,
        object_name: key(7)?,
    };
    let format = col(8)?
        .as_i64()
        .map_err(|_| bad("its payload format is not an integer"))?;
    if format > i64::from(PAYLOAD_FORMAT) {
        return Err(LogError::NewerEntryFormat {
            path: path.to_path_buf(),
            seq,
            found: format,
            supported: PAYLOAD_FORMAT,
        });
    }
    let format = u16::try_from(format)
        .ok()
        .filter(|f| *f >= 1)
        .ok_or_else(|| {
            bad(&format!(
                "its payload format {format} is not one logbook ever wrote"
            ))
        })?;
    let payload = col(9)?
        .as_blob()
        .map_err(|_| bad("its payload is not a blob"))?;
    let (body, delta) = decode_stored(kind, format, payload).map_err(|e| bad(&e.0))?;
    let hash32 = |i: usize, what: &str| -> LogResult<[u8; 32]> {
        col(i)?
            .as_blob()
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad(&format!("its {what} is not 32 bytes")))
    };
    let prev_hash = hash32(10, "prev_hash")?;
    let hash = hash32(11, "hash")?;
    Ok(Entry {
        seq,
        id,
        at,
        keys,
        body,
        delta,
        format,
        prev_hash,
        hash,
    })
}
