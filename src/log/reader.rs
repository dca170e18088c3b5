//! Reading the log: single entries, ranges by seq and filtered queries, streamed in chunks.
//! Owns row decoding and the query filters; never writes (its connection may be read-only).
//! Entries come out whole: an object stored as a patch is rebuilt ([`Rebuild`]) unless the
//! filter asks for entries as stored ([`Filter::stored`]).

use super::error::{LogError, LogResult};
use super::store::{self, Db, ENTRY_COLUMNS, Mode};
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
    /// kind, name and namespace, matched as [`Filter::object`] matches them), if any. One
    /// descending step through the object index: no other entry is read, however many
    /// there are before it. (How readers find the nearest checkpoint.)
    pub fn last_about(&self, object: &ObjKey, upto: u64) -> LogResult<Option<u64>> {
        let keys = Keys::for_object(object, None);
        let Some(kind) = keys.object_kind else {
            return Ok(None);
        };
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "search the object index of", e);
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

    /// The seq stored under cursor `name`, if it was ever set.
    pub fn cursor(&self, name: &str) -> LogResult<Option<u64>> {
        self.db.cursor(name)
    }

    /// Walks the hash chain from the first entry and reports the first entry that was edited,
    /// removed or reordered (see [`VerifyReport`]), then runs SQLite's `integrity_check` over
    /// the whole file: damaged pages, and an audit index that disagrees with the entries (which
    /// would hide entries from filtered queries), are reported as
    /// [`VerifyReport::structure`]. Memory does not grow with the log.
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

/// Which entries a query returns. Every condition given must hold; `None`/empty means "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// Only entries about this Application (`namespace/name`).
    pub application: Option<String>,
    /// Only entries about this namespace.
    pub namespace: Option<String>,
    /// Only entries about this object.
    pub object: Option<ObjKey>,
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
    /// Where objects stored as patches are rebuilt; `None`: entries as stored.
    rebuild: Option<&'a RefCell<Rebuild>>,
    sql: String,
    params: Vec<Value>,
    next_seq: u64,
    last_seq: u64,
    remaining: Option<usize>,
    buf: VecDeque<Entry>,
    error: Option<LogError>,
    exhausted: bool,
}

impl<'a> Entries<'a> {
    fn new(db: &'a Db, rebuild: Option<&'a RefCell<Rebuild>>, f: &Filter) -> Entries<'a> {
        let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq >= ?1 AND seq <= ?2");
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
            let keys = Keys::for_object(obj, None);
            let text = |v: Option<String>| v.map_or(Value::Null, Value::Text);
            cond(
                &mut sql,
                &mut params,
                " AND object_kind IS ?",
                text(keys.object_kind),
            );
            cond(
                &mut sql,
                &mut params,
                " AND object_name IS ?",
                text(keys.object_name),
            );
            cond(
                &mut sql,
                &mut params,
                " AND namespace IS ?",
                text(keys.namespace),
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
        sql.push_str(" ORDER BY seq LIMIT ?3");
        let next_seq = f.from_seq.unwrap_or(1).max(1);
        let last_seq = f.to_seq.unwrap_or(u64::MAX);
        Entries {
            db,
            rebuild,
            sql,
            params,
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
        let path = &self.db.path;
        let fail = |e| LogError::sqlite(path, "read entries of", e);
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut args = Vec::with_capacity(self.params.len() + 3);
        args.push(Value::Integer(clamp(self.next_seq)));
        args.push(Value::Integer(clamp(self.last_seq)));
        args.push(Value::Integer(clamp(want as u64)));
        args.extend(self.params.iter().cloned());
        let result = (|| -> LogResult<usize> {
            let mut stmt = self.db.conn.prepare_cached(&self.sql).map_err(fail)?;
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
            Ok(count)
        })();
        // Rebuilt once the chunk's statement is done (rebuilding may read earlier entries); an
        // entry that cannot be made whole ends the scan there, like one that cannot be decoded.
        let result = match self.rebuild {
            None => result,
            Some(rebuild) => {
                let db = self.db;
                let mut failed = None;
                for (i, entry) in self.buf.iter_mut().enumerate() {
                    if let Err(e) = make_whole(db, rebuild, entry) {
                        failed = Some((i, e));
                        break;
                    }
                }
                match failed {
                    None => result,
                    Some((i, e)) => {
                        self.buf.truncate(i);
                        Err(e)
                    }
                }
            }
        };
        match result {
            Ok(count) if count < want => self.exhausted = true,
            Ok(_) => {}
            Err(e) => {
                self.error = Some(e);
                self.exhausted = true;
            }
        }
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(self.buf.len());
        }
    }
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
