//! `verify`: walks the hash chain and names the first entry that was edited, removed or moved.
//! Owns the diagnosis of a broken chain; reads only, and never decodes payloads.

use super::audit;
use super::chain::{self, GENESIS, HashInput};
use super::error::{LogError, LogResult};
use super::store::{Db, ENTRY_COLUMNS, Layout};
use rusqlite::Row;
use std::fmt;
use std::path::PathBuf;

/// How far (in seqs) a moved entry's original position is searched for when its predecessor
/// cannot be found.
const MOVE_WINDOW: u64 = 64;
/// How many predecessors are followed to work out where a moved entry was written.
const MAX_DEPTH: u32 = 64;

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The file.
    pub path: PathBuf,
    /// Entries found intact and correctly chained, from seq 1 on (from the starting point, for
    /// [`super::LogReader::verify_from`]).
    pub checked: u64,
    /// The seq of the last intact entry (0 when none).
    pub last_good_seq: u64,
    /// The hash of the last intact entry (32 zero bytes when none): compare it with a copy kept
    /// elsewhere to detect entries removed from the end.
    pub head: [u8; 32],
    /// The first problem, or `None` when the whole log is intact.
    pub problem: Option<Problem>,
    /// Whether the triggers that refuse UPDATE and DELETE of entries are in place.
    pub append_only_guard: bool,
    /// What is wrong with the file where the chain does not look: what SQLite's
    /// `integrity_check` found (damaged pages, a version-1 audit index that disagrees with the
    /// entries), and audit keys that disagree with the entries (schema version 2), either of
    /// which makes filtered queries miss entries; `None` when nothing was found or the checks
    /// were not run ([`super::LogReader::verify_from`]).
    pub structure: Option<String>,
}

impl VerifyReport {
    /// True when every entry is intact and chained, nothing was cut from the end, and SQLite
    /// finds the file (its pages and indexes) sound.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none() && self.structure.is_none()
    }

    /// The seq of the first bad entry, if any.
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.problem.as_ref().map(Problem::seq)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            None => write!(
                f,
                "{}: {} entries intact, last seq {}, head {}",
                self.path.display(),
                self.checked,
                self.last_good_seq,
                hex::encode(self.head)
            )?,
            Some(p) => write!(
                f,
                "{}: {p}; entries 1..={} are intact (head {})",
                self.path.display(),
                self.last_good_seq,
                hex::encode(self.head)
            )?,
        }
        if let Some(damage) = &self.structure {
            let repair = if damage.contains(INTEGRITY) {
                ", or run `REINDEX` on a copy with sqlite3 and verify that"
            } else {
                ""
            };
            write!(
                f,
                "; but the file is damaged where the chain does not look: {damage} (audit \
                 queries may miss entries); restore the log from a copy{repair}"
            )?;
        }
        if !self.append_only_guard {
            write!(f, "; warning: the append-only triggers are missing")?;
        }
        Ok(())
    }
}

/// The first thing wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The entry's content (or its stored link) no longer matches its hash.
    Edited {
        /// The entry.
        seq: u64,
    },
    /// Entries are missing: `seq` is absent and the next entry present is `next_present`.
    Missing {
        /// The first missing seq.
        seq: u64,
        /// The seq of the next entry present.
        next_present: u64,
    },
    /// The entry found at `seq` is intact but was appended as `written_as`: entries were
    /// reordered, or removed before it and the rest renumbered.
    Reordered {
        /// Where it is.
        seq: u64,
        /// Where it was appended.
        written_as: u64,
    },
    /// The entry is intact but does not link to the one before it: the previous entry was
    /// rewritten with a new hash, or this entry was replaced by a forged one.
    ChainBroken {
        /// The entry whose link fails.
        seq: u64,
    },
    /// A column of the entry does not have the type logbook writes, so it cannot be hashed.
    Malformed {
        /// The entry.
        seq: u64,
        /// Which column.
        what: String,
    },
    /// Entries were removed from the end: the log ends at `last_seq` but seqs up to
    /// `allocated` were appended (`None`: the record of the highest seq was removed too).
    Truncated {
        /// The last entry present.
        last_seq: u64,
        /// The highest seq ever appended, when its record is still there.
        allocated: Option<u64>,
    },
}

impl Problem {
    /// The seq of the first bad (or first missing) entry.
    pub fn seq(&self) -> u64 {
        match self {
            Problem::Edited { seq }
            | Problem::Missing { seq, .. }
            | Problem::Reordered { seq, .. }
            | Problem::ChainBroken { seq }
            | Problem::Malformed { seq, .. } => *seq,
            Problem::Truncated { last_seq, .. } => last_seq + 1,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited { seq } => write!(
                f,
                "entry {seq} was edited: its content does not match its hash"
            ),
            Problem::Missing { seq, next_present } if *next_present == seq + 1 => {
                write!(
                    f,
                    "entry {seq} was removed (the log jumps to {next_present})"
                )
            }
            Problem::Missing { seq, next_present } => {
                write!(
                    f,
                    "entries {seq}..={} were removed (the log jumps to {next_present})",
                    next_present - 1
                )
            }
            Problem::Reordered { seq, written_as } => write!(
                f,
                "entry {seq} is out of place: it was appended as entry {written_as} (entries were reordered, or removed and renumbered)"
            ),
            Problem::ChainBroken { seq } => write!(
                f,
                "the chain is broken at entry {seq}: it does not link to entry {} (entry {} was rewritten with a new hash, or entry {seq} was replaced)",
                seq.saturating_sub(1),
                seq.saturating_sub(1)
            ),
            Problem::Malformed { seq, what } => write!(f, "entry {seq} is malformed: {what}"),
            Problem::Truncated {
                last_seq,
                allocated: Some(a),
            } => {
                write!(
                    f,
                    "entries {}..={a} were removed from the end (the log ends at {last_seq})",
                    last_seq + 1
                )
            }
            Problem::Truncated {
                last_seq,
                allocated: None,
            } => write!(
                f,
                "the record of the highest seq ever appended is gone, so entries from {} on may have been removed from the end",
                last_seq + 1
            ),
        }
    }
}

/// An entry's stored columns, as far as the hash is concerned.
#[derive(Clone, Debug)]
struct RawEntry {
    seq: u64,
    id: Vec<u8>,
    at_ns: i64,
    kind: String,
    keys: [Option<String>; 4],
    format: i64,
    payload: Vec<u8>,
    prev: [u8; 32],
    hash: [u8; 32],
}

impl RawEntry {
    /// The hash this entry would have had if appended at `seq` after its stored `prev_hash`.
    fn hash_at(&self, seq: u64) -> [u8; 32] {
        let keys = [0, 1, 2, 3].map(|i| self.keys[i].as_deref());
        let input = HashInput {
            seq,
            id: &self.id,
            at_ns: self.at_ns,
            kind: &self.kind,
            keys,
            format: self.format,
            payload: &self.payload,
        };
        chain::entry_hash(&self.prev, &input)
    }
}

/// Reads a row's hashed columns, or says which one is not what logbook writes.
fn raw(row: &Row<'_>, fallback_seq: u64) -> Result<RawEntry, Problem> {
    let malformed = |seq: u64, what: &str| Problem::Malformed {
        seq,
        what: what.to_string(),
    };
    let get = |i: usize| {
        row.get_ref(i)
            .map_err(|e| malformed(fallback_seq, &format!("column {i} cannot be read ({e})")))
    };
    let seq = get(0)?
        .as_i64()
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .ok_or_else(|| malformed(fallback_seq, "its seq is not a positive integer"))?;
    let m = |what: &str| malformed(seq, what);
    let blob = |i: usize, what: &str| -> Result<Vec<u8>, Problem> {
        Ok(get(i)?.as_blob().map_err(|_| m(what))?.to_vec())
    };
    let hash32 = |i: usize, what: &str| -> Result<[u8; 32], Problem> {
        get(i)?
            .as_blob()
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| m(what))
    };
    let key = |i: usize| -> Result<Option<String>, Problem> {
        Ok(get(i)?
            .as_str_or_null()
            .map_err(|_| m("an audit key is not text"))?
            .map(str::to_string))
    };
    Ok(RawEntry {
        seq,
        id: blob(1, "its id is not a blob")?,
        at_ns: get(2)?
            .as_i64()
            .map_err(|_| m("its timestamp is not an integer"))?,
        kind: get(3)?
            .as_str()
            .map_err(|_| m("its kind is not text"))?
            .to_string(),
        keys: [key(4)?, key(5)?, key(6)?, key(7)?],
        format: get(8)?
            .as_i64()
            .map_err(|_| m("its format is not an integer"))?,
        payload: blob(9, "its payload is not a blob")?,
        prev: hash32(10, "its prev_hash is not 32 bytes")?,
        hash: hash32(11, "its hash is not 32 bytes")?,
    })
}

/// Hashes a row in place (no copies) and compares; the fast path of the walk.
fn intact_at(row: &Row<'_>, seq: u64, prev: &[u8; 32]) -> Option<bool> {
    let text = |i: usize| row.get_ref(i).ok()?.as_str_or_null().ok();
    let stored_prev = row.get_ref(10).ok()?.as_blob().ok()?;
    if stored_prev != prev {
        return Some(false);
    }
    let input = HashInput {
        seq,
        id: row.get_ref(1).ok()?.as_blob().ok()?,
        at_ns: row.get_ref(2).ok()?.as_i64().ok()?,
        kind: row.get_ref(3).ok()?.as_str().ok()?,
        keys: [text(4)?, text(5)?, text(6)?, text(7)?],
        format: row.get_ref(8).ok()?.as_i64().ok()?,
        payload: row.get_ref(9).ok()?.as_blob().ok()?,
    };
    let stored = row.get_ref(11).ok()?.as_blob().ok()?;
    Some(chain::entry_hash(prev, &input).as_slice() == stored)
}

/// How many of SQLite's integrity-check messages are collected, and how many are shown.
const STRUCTURE_MESSAGES: usize = 20;
const STRUCTURE_SHOWN: usize = 3;

pub(crate) fn verify(db: &Db) -> LogResult<VerifyReport> {
    let mut report = walk(db, 0)?;
    let mut found = Vec::new();
    found.extend(structure(db)?);
    if db.layout == Layout::AuditTable {
        // One read transaction: the entries and the audit rows of the same snapshot.
        let tx = db
            .conn
            .unchecked_transaction()
            .map_err(|e| LogError::sqlite(&db.path, "verify", e))?;
        found.extend(
            audit::check(&tx, &db.path)?
                .map(|p| format!("the audit keys disagree with the entries: {p}")),
        );
    }
    report.structure = (!found.is_empty()).then(|| found.join("; "));
    Ok(report)
}

/// How a finding of SQLite's `integrity_check` starts.
const INTEGRITY: &str = "SQLite's integrity check says";

pub(crate) fn verify_from(db: &Db, from: u64) -> LogResult<VerifyReport> {
    walk(db, from)
}

/// SQLite's `integrity_check`: every page, every free list, and every index against its table
/// (`quick_check` skips the last, which is what hides entries from audit queries).
fn structure(db: &Db) -> LogResult<Option<String>> {
    let path = &db.path;
    let mut found = Vec::new();
    let result = (|| -> rusqlite::Result<()> {
        let mut stmt = db
            .conn
            .prepare(&format!("PRAGMA integrity_check({STRUCTURE_MESSAGES})"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let line: String = row.get(0)?;
            if line != "ok" {
                found.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        match e.sqlite_error_code() {
            // Damage bad enough to stop the check is itself the finding.
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => found.push(e.to_string()),
            _ => return Err(LogError::sqlite(path, "check the structure of", e)),
        }
    }
    if found.is_empty() {
        return Ok(None);
    }
    let mut text = format!("{INTEGRITY} ");
    text += &found
        .iter()
        .take(STRUCTURE_SHOWN)
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if found.len() > STRUCTURE_SHOWN {
        let more = found.len() - STRUCTURE_SHOWN;
        let plus = if found.len() >= STRUCTURE_MESSAGES {
            "+"
        } else {
            ""
        };
        text.push_str(&format!(" and {more}{plus} more"));
    }
    Ok(Some(text))
}

/// Walks the chain from entry `from` (0: from the start) to the end; see
/// [`super::LogReader::verify_from`].
fn walk(db: &Db, from: u64) -> LogResult<VerifyReport> {
    let path = &db.path;
    let fail = |e| LogError::sqlite(path, "verify", e);
    // One read transaction: the walk and the end-of-log check see the same snapshot while a
    // writer keeps appending.
    let tx = db.conn.unchecked_transaction().map_err(fail)?;
    let guard: i64 = tx
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'entries' \
             AND name IN ('entries_append_only_update', 'entries_append_only_delete')",
            [],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let mut report = VerifyReport {
        path: path.clone(),
        checked: 0,
        last_good_seq: 0,
        head: GENESIS,
        problem: None,
        append_only_guard: guard == 2,
        structure: None,
    };
    if from > 0 {
        // The starting point: hashed again against its own stored link.
        let point = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM entries WHERE seq = ?1"
                ))
                .map_err(fail)?;
            let mut rows = stmt
                .query([i64::try_from(from).unwrap_or(i64::MAX)])
                .map_err(fail)?;
            rows.next().map_err(fail)?.map(|row| raw(row, from))
        };
        report.last_good_seq = from - 1;
        match point {
            None => {
                // The point is gone: walk everything, and a log that ends before it lost
                // entries that were there when it was checked.
                drop(tx);
                let mut report = walk(db, 0)?;
                if report.problem.is_none() && report.last_good_seq < from {
                    report.problem = Some(Problem::Truncated {
                        last_seq: report.last_good_seq,
                        allocated: Some(from),
                    });
                }
                return Ok(report);
            }
            Some(Err(problem)) => report.problem = Some(problem),
            Some(Ok(entry)) => {
                report.head = entry.prev;
                if entry.hash_at(from) == entry.hash {
                    report.head = entry.hash;
                    report.last_good_seq = from;
                    report.checked = 1;
                } else {
                    report.problem = Some(Problem::Edited { seq: from });
                }
            }
        }
    }
    let mut suspect: Option<RawEntry> = None;
    if report.problem.is_none() {
        // From the start, every row is read (a row with a seq below 1 is malformed too).
        let after = i64::try_from(report.last_good_seq).unwrap_or(i64::MAX);
        let sql = if after == 0 {
            format!("SELECT {ENTRY_COLUMNS} FROM entries ORDER BY seq")
        } else {
            format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq > {after} ORDER BY seq")
        };
        let mut stmt = tx.prepare(&sql).map_err(fail)?;
        let mut rows = stmt.query([]).map_err(fail)?;
        while let Some(row) = rows.next().map_err(fail)? {
            let expected = report.last_good_seq + 1;
            if intact_at(row, expected, &report.head) == Some(true)
                && row.get_ref(0).ok().and_then(|v| v.as_i64().ok()) == i64::try_from(expected).ok()
            {
                report.head = row
                    .get_ref(11)
                    .ok()
                    .and_then(|v| v.as_blob().ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .unwrap_or(GENESIS);
                report.last_good_seq = expected;
                report.checked += 1;
                continue;
            }
            // Slow path: find out what is wrong with this row.
            let entry = match raw(row, expected) {
                Ok(e) => e,
                Err(problem) => {
                    report.problem = Some(problem);
                    break;
                }
            };
            if entry.seq != expected {
                report.problem = Some(Problem::Missing {
                    seq: expected,
                    next_present: entry.seq,
                });
            } else if entry.prev == report.head {
                report.problem = Some(Problem::Edited { seq: entry.seq });
            } else {
                suspect = Some(entry);
            }
            break;
        }
    }
    if let Some(entry) = suspect {
        let seq = entry.seq;
        report.problem = Some(match written_as(&tx, path, &entry, MAX_DEPTH)? {
            Some(w) if w != seq => Problem::Reordered { seq, written_as: w },
            Some(_) => Problem::ChainBroken { seq },
            None => Problem::Edited { seq },
        });
    }
    if report.problem.is_none() {
        let allocated: Option<i64> = tx
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'entries'",
                [],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(fail(e)),
            })?;
        let allocated = allocated.map(|a| u64::try_from(a).unwrap_or(0));
        let last = report.last_good_seq;
        report.problem = match allocated {
            Some(a) if a > last => Some(Problem::Truncated {
                last_seq: last,
                allocated: Some(a),
            }),
            None if last > 0 => Some(Problem::Truncated {
                last_seq: last,
                allocated: None,
            }),
            _ => None,
        };
    }
    drop(tx);
    Ok(report)
}

/// Where an intact entry was appended: its own seq if its hash matches there, else the seq after
/// wherever its predecessor was appended, else a nearby seq its hash matches. `None` when its
/// hash matches no position (its content was edited).
fn written_as(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    e: &RawEntry,
    depth: u32,
) -> LogResult<Option<u64>> {
    if e.hash_at(e.seq) == e.hash {
        return Ok(Some(e.seq));
    }
    if depth > 0 {
        let after = if e.prev == GENESIS {
            Some(0)
        } else {
            match by_hash(conn, path, &e.prev)? {
                Some(p) => written_as(conn, path, &p, depth - 1)?,
                None => None,
            }
        };
        if let Some(c) = after.map(|s| s + 1)
            && e.hash_at(c) == e.hash
        {
            return Ok(Some(c));
        }
    }
    let lo = e.seq.saturating_sub(MOVE_WINDOW).max(1);
    Ok((lo..=e.seq.saturating_add(MOVE_WINDOW)).find(|c| e.hash_at(*c) == e.hash))
}

fn by_hash(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    hash: &[u8; 32],
) -> LogResult<Option<RawEntry>> {
    let fail = |e| LogError::sqlite(path, "verify", e);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE hash = ?1 LIMIT 1"
        ))
        .map_err(fail)?;
    let mut rows = stmt.query([hash.as_slice()]).map_err(fail)?;
    match rows.next().map_err(fail)? {
        None => Ok(None),
        Some(row) => Ok(raw(row, 0).ok()),
    }
}
