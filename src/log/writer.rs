//! The writer: appends batches of entries in one durable transaction, and keeps cursors.
//! Owns seq assignment, hashing at append time and id deduplication, and (schema version 2)
//! adds the batch's audit keys in the same transaction; never changes an entry.

use super::audit;
use super::chain::{self, HashInput};
use super::error::{BUSY_TIMEOUT_MS, LogError, LogResult};
use super::reader::{Entries, Filter, LogReader};
use super::store::{self, Layout, Mode};
use super::verify::VerifyReport;
use crate::record::{Appended, Entry, NewEntry};
use rusqlite::{TransactionBehavior, params};
use std::ops::RangeBounds;
use std::path::Path;
use std::time::Duration;

/// How long dropping a [`Log`] waits for readers before giving up on folding the WAL in (the
/// entries are safe in the `-wal` either way).
const DROP_CHECKPOINT_WAIT: Duration = Duration::from_millis(500);

/// A log opened for writing. One writer per file; any number of [`LogReader`]s alongside.
///
/// A writer that stops calls [`Log::close`], which folds the write-ahead log back into the log
/// file, so that file alone (copied, backed up, archived) holds every entry; dropping a `Log`
/// does the same, ignoring failures.
pub struct Log {
    reader: LogReader,
    /// Set by [`Log::close`]: the WAL was folded in, dropping has nothing left to do.
    closed: bool,
}

/// An entry encoded and checked, ready to be inserted.
struct Prepared<'a> {
    id: uuid::Uuid,
    at_ns: i64,
    kind: &'static str,
    keys: [Option<&'a str>; 4],
    format: u16,
    payload: Vec<u8>,
}

impl Log {
    /// Opens the log at `path` for appending, creating it if the path does not exist (or is an
    /// empty file). Commits are durable (WAL, `synchronous = FULL`).
    ///
    /// A file that is not a logbook log, or is from a newer logbook, is refused and left as is.
    pub fn open(path: &Path) -> LogResult<Log> {
        if store::is_vacant(path)? {
            store::create(path)?;
        }
        let db = store::open_existing(path, Mode::ReadWrite)?;
        let reader = LogReader::from_db(db);
        // Reading the head walks the right edge of the table: damage there shows up now.
        reader.db().head()?;
        Ok(Log {
            reader,
            closed: false,
        })
    }

    /// Stops writing: folds the write-ahead log (`-wal`) back into the log file and truncates
    /// it, so the log file alone holds every entry. Waits up to the busy timeout for readers
    /// of older snapshots; if one holds on longer, the entries stay in the `-wal` (safe, but
    /// it must be kept with the file) and [`LogError::Busy`] says so.
    pub fn close(mut self) -> LogResult<()> {
        self.closed = true;
        self.reader
            .db()
            .checkpoint(Duration::from_millis(BUSY_TIMEOUT_MS))
    }

    /// Opens the log at `path` read-only (it must exist); works while a writer appends.
    pub fn open_read_only(path: &Path) -> LogResult<LogReader> {
        LogReader::open(path)
    }

    /// The file this log is in.
    pub fn path(&self) -> &Path {
        self.reader.path()
    }

    /// Reading through the writer's own connection (sees everything it appended).
    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    /// Appends a batch in one transaction: either all of it is committed (durably) or none.
    ///
    /// An entry whose id is already in the log (or earlier in the same batch) is not written
    /// again; its result is [`Appended::AlreadyPresent`] with the existing seq. Ids are derived
    /// from content, so the contents are not compared.
    pub fn append(&mut self, batch: &[NewEntry]) -> LogResult<Vec<Appended>> {
        self.append_checked(None, batch)
    }

    /// [`Log::append`], only if the log still ends at seq `last` (checked inside the write
    /// transaction): a writer that knows what it wrote last refuses to append after entries
    /// another process added ([`LogError::Moved`]). This is the log's fencing for leader
    /// election: once a new leader has appended, a replaced one cannot, however late it wakes.
    pub fn append_after(&mut self, last: u64, batch: &[NewEntry]) -> LogResult<Vec<Appended>> {
        self.append_checked(Some(last), batch)
    }

    fn append_checked(
        &mut self,
        expect_last: Option<u64>,
        batch: &[NewEntry],
    ) -> LogResult<Vec<Appended>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.reader.path().to_path_buf();
        // Encode outside the transaction so the write lock is held only to insert.
        let prepared = batch
            .iter()
            .map(|e| prepare(&path, e))
            .collect::<LogResult<Vec<_>>>()?;
        let db = self.reader.db_mut();
        let audit_table = db.layout == Layout::AuditTable;
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| LogError::sqlite(&path, "start an append transaction on", e))?;
        let mut results = Vec::with_capacity(prepared.len());
        let mut keys = audit::Batch::default();
        {
            let head = store::head(&tx, &path)?;
            let (mut seq, mut prev) = head.unwrap_or((0, chain::GENESIS));
            if let Some(expected) = expect_last
                && expected != seq
            {
                return Err(LogError::Moved {
                    path,
                    expected,
                    found: seq,
                });
            }
            let mut find = tx
                .prepare_cached("SELECT seq FROM entries WHERE id = ?1")
                .map_err(|e| LogError::sqlite(&path, "look up entry ids in", e))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO entries (seq, id, at_ns, kind, namespace, application, object_kind, object_name, \
                     format, payload, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(|e| LogError::sqlite(&path, "prepare to append to", e))?;
            for p in &prepared {
                let id = p.id.as_bytes().as_slice();
                let mut rows = find
                    .query([id])
                    .map_err(|e| LogError::sqlite(&path, "look up entry ids in", e))?;
                if let Some(row) = rows
                    .next()
                    .map_err(|e| LogError::sqlite(&path, "look up entry ids in", e))?
                {
                    let existing: i64 = row
                        .get(0)
                        .map_err(|e| LogError::sqlite(&path, "look up entry ids in", e))?;
                    let existing = u64::try_from(existing).map_err(|_| LogError::Corrupt {
                        path: path.clone(),
                        problem: format!("an entry has seq {existing}"),
                    })?;
                    results.push(Appended::AlreadyPresent {
                        seq: existing,
                        id: p.id,
                    });
                    continue;
                }
                drop(rows);
                seq += 1;
                let seq_i64 = i64::try_from(seq).map_err(|_| LogError::Corrupt {
                    path: path.clone(),
                    problem: "the log is full (seq overflow)".into(),
                })?;
                let input = HashInput {
                    seq,
                    id,
                    at_ns: p.at_ns,
                    kind: p.kind,
                    keys: p.keys,
                    format: i64::from(p.format),
                    payload: &p.payload,
                };
                let hash = chain::entry_hash(&prev, &input);
                insert
                    .execute(params![
                        seq_i64,
                        id,
                        p.at_ns,
                        p.kind,
                        p.keys[0],
                        p.keys[1],
                        p.keys[2],
                        p.keys[3],
                        i64::from(p.format),
                        p.payload,
                        prev.as_slice(),
                        hash.as_slice()
                    ])
                    .map_err(|e| {
                        LogError::sqlite(&path, &format!("append entry {seq} ({}) to", p.id), e)
                    })?;
                prev = hash;
                if audit_table {
                    keys.add(seq, p.kind, p.keys);
                }
                results.push(Appended::Added { seq, id: p.id });
            }
            if audit_table {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO audit (span, key, first, last, seqs) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(|e| LogError::sqlite(&path, "prepare to append to", e))?;
                for row in keys.rows() {
                    insert
                        .execute(params![row.span, row.key, row.first, row.last, row.seqs])
                        .map_err(|e| {
                            LogError::sqlite(
                                &path,
                                &format!(
                                    "add the audit key {} from entry {} to",
                                    row.key, row.first
                                ),
                                e,
                            )
                        })?;
                }
            }
        }
        tx.commit()
            .map_err(|e| LogError::sqlite(&path, "commit appended entries to", e))?;
        Ok(results)
    }

    /// The seq of the last entry (0 when the log is empty).
    pub fn last_seq(&self) -> LogResult<u64> {
        self.reader.last_seq()
    }

    /// The seq stored under cursor `name`, if it was ever set.
    pub fn cursor(&self, name: &str) -> LogResult<Option<u64>> {
        self.reader.cursor(name)
    }

    /// Durably sets cursor `name` to `seq` (which must not be past the last entry). Cursors are
    /// not part of the hash chain and may move in either direction.
    pub fn set_cursor(&mut self, name: &str, seq: u64) -> LogResult<()> {
        let last = self.last_seq()?;
        let path = self.reader.path().to_path_buf();
        if seq > last {
            return Err(LogError::InvalidCursor {
                path,
                name: name.to_string(),
                seq,
                last_seq: last,
            });
        }
        let seq_i64 = i64::try_from(seq).unwrap_or(i64::MAX);
        self.reader
            .db()
            .conn
            .prepare_cached("INSERT INTO cursors (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq")
            .and_then(|mut stmt| stmt.execute(params![name, seq_i64]))
            .map_err(|e| LogError::sqlite(&path, &format!("set cursor `{name}` in"), e))?;
        Ok(())
    }

    /// See [`LogReader::get`].
    pub fn get(&self, seq: u64) -> LogResult<Option<Entry>> {
        self.reader.get(seq)
    }

    /// See [`LogReader::range`].
    pub fn range(&self, seqs: impl RangeBounds<u64>) -> Entries<'_> {
        self.reader.range(seqs)
    }

    /// See [`LogReader::query`].
    pub fn query(&self, filter: &Filter) -> Entries<'_> {
        self.reader.query(filter)
    }

    /// See [`LogReader::verify`].
    pub fn verify(&self) -> LogResult<VerifyReport> {
        self.reader.verify()
    }

    /// See [`LogReader::verify_from`].
    pub fn verify_from(&self, seq: u64) -> LogResult<VerifyReport> {
        self.reader.verify_from(seq)
    }
}

impl Drop for Log {
    /// The fallback of [`Log::close`]: a writer that goes away without closing still leaves a
    /// self-contained log file when it can (failures are ignored: the entries are in the WAL).
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.reader.db().checkpoint(DROP_CHECKPOINT_WAIT);
        }
    }
}

fn prepare<'a>(path: &Path, e: &'a NewEntry) -> LogResult<Prepared<'a>> {
    let invalid = |problem: String| LogError::InvalidEntry {
        path: path.to_path_buf(),
        id: e.id,
        problem,
    };
    let at_ns = e.at.timestamp_nanos_opt().ok_or_else(|| {
        invalid(format!(
            "its timestamp {} is outside 1677-09-21..2262-04-11, which the log stores",
            e.at.to_rfc3339()
        ))
    })?;
    let (format, payload) = e.encode().map_err(|c| invalid(c.to_string()))?;
    let key = |v: &'a Option<String>| v.as_deref().filter(|s| !s.is_empty());
    Ok(Prepared {
        id: e.id,
        at_ns,
        kind: e.kind().as_str(),
        keys: [
            key(&e.keys.namespace),
            key(&e.keys.application),
            key(&e.keys.object_kind),
            key(&e.keys.object_name),
        ],
        format,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{MarkerKind, entry_uuid};

    fn marker(n: u32) -> NewEntry {
        let at = chrono::Utc::now();
        let detail = serde_json::json!({ "n": n });
        NewEntry::marker(
            entry_uuid(at, "marker", n.to_string().as_bytes()),
            at,
            MarkerKind::Start,
            detail,
        )
    }

    #[test]
    fn append_after_refuses_once_another_writer_appended() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log.db");
        let mut mine = Log::open(&path).expect("log created");
        let mut theirs = Log::open(&path).expect("log opened twice");
        let first = mine.append_after(0, &[marker(1)]).expect("appended");
        assert_eq!(first[0].seq(), 1);
        theirs
            .append(&[marker(2)])
            .expect("the other writer appends");
        match mine.append_after(1, &[marker(3)]) {
            Err(LogError::Moved {
                expected, found, ..
            }) => assert_eq!((expected, found), (1, 2)),
            other => panic!("expected Moved, got {other:?}"),
        }
        assert_eq!(
            mine.last_seq().expect("readable"),
            2,
            "nothing was appended"
        );
        assert!(mine.append_after(2, &[marker(3)]).is_ok());
    }
}
