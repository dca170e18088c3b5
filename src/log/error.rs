//! The log's errors: each names the file (and the entry, when there is one) and what to do.
//! Owns the mapping from SQLite and codec failures to these messages; decides no policy.

use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Everything that can go wrong opening, writing or reading a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file exists but is not a logbook log (another SQLite database, or not SQLite at all).
    #[error(
        "{} is not a logbook log ({reason}); nothing was written to it. Point logbook at a log it created, or at a path that does not exist yet",
        path.display()
    )]
    NotALog {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },

    /// The log was written by a newer logbook whose schema this build does not know.
    #[error(
        "{} is a logbook log of schema version {found}, newer than this build reads (up to {supported}); nothing was written to it. Upgrade logbook to read or extend it",
        path.display()
    )]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The highest schema version this build reads.
        supported: i64,
    },

    /// One entry's payload has a format version newer than this build decodes.
    #[error(
        "{} entry {seq} has payload format {found}, newer than this build decodes (up to {supported}). Upgrade logbook to read it",
        path.display()
    )]
    NewerEntryFormat {
        /// The file.
        path: PathBuf,
        /// The entry.
        seq: u64,
        /// The format found.
        found: i64,
        /// The highest format this build decodes.
        supported: u16,
    },

    /// One entry cannot be decoded: a column or its payload is not what logbook writes.
    #[error(
        "{} entry {seq} is corrupt: {problem}. Run `logbook-replay verify` on the file to find the first damaged entry, and restore the log from a copy",
        path.display()
    )]
    CorruptEntry {
        /// The file.
        path: PathBuf,
        /// The entry.
        seq: u64,
        /// What is wrong with it.
        problem: String,
    },

    /// The file is damaged beyond one entry (SQLite reports a malformed image, or the logbook
    /// metadata is missing or inconsistent).
    #[error(
        "{} is corrupt: {problem}; nothing was written to it. Restore the log from a copy (`logbook-replay verify` checks a copy)",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// An entry handed to `append` cannot be stored as it is.
    #[error(
        "cannot append entry {id} to {}: {problem}; the batch was not written. Fix the entry and append again",
        path.display()
    )]
    InvalidEntry {
        /// The file.
        path: PathBuf,
        /// The entry's id.
        id: Uuid,
        /// What is wrong with it.
        problem: String,
    },

    /// A cursor was to be set past the end of the log.
    #[error(
        "cannot set cursor `{name}` of {} to seq {seq}: the log ends at seq {last_seq}. A cursor names a position the log has reached",
        path.display()
    )]
    InvalidCursor {
        /// The file.
        path: PathBuf,
        /// The cursor.
        name: String,
        /// The seq asked for.
        seq: u64,
        /// The last seq in the log.
        last_seq: u64,
    },

    /// Another process holds the log's write lock longer than the busy timeout.
    #[error(
        "{} is busy: another process is writing it (waited {waited_ms} ms while trying to {doing}). Run one logbook writer per log",
        path.display()
    )]
    Busy {
        /// The file.
        path: PathBuf,
        /// What was being attempted.
        doing: String,
        /// How long the attempt waited.
        waited_ms: u64,
    },

    /// The log has entries this writer did not append: another process writes it too.
    #[error(
        "{} ends at seq {found}, but this writer expected it to end at seq {expected}: another \
         process appended to it. Run one logbook writer per log (with leader election, the \
         other one is the leader now)",
        path.display()
    )]
    Moved {
        /// The file.
        path: PathBuf,
        /// Where this writer expected the log to end.
        expected: u64,
        /// Where it ends.
        found: u64,
    },

    /// The log is in a place this process cannot write, and its write-ahead log holds entries
    /// not yet in the main file: SQLite can read those only by creating a `-shm` file next to
    /// it, and reading the main file alone would miss them.
    #[error(
        "cannot read {} here: this process cannot write its directory, and its write-ahead log {} \
         holds entries not yet in the main file (its writer did not stop cleanly), which SQLite \
         reads only by creating a -shm file next to it. Copy {} and {} together to a writable \
         directory and read the copy, or open the log once where it can be written (a logbook \
         writer folds the -wal in when it stops)",
        path.display(),
        wal.display(),
        path.display(),
        wal.display()
    )]
    UnreadableWal {
        /// The file.
        path: PathBuf,
        /// Its write-ahead log.
        wal: PathBuf,
    },

    /// SQLite failed for another reason (disk full, permissions, I/O).
    #[error("cannot {doing} {}: {source}. Check the file's permissions and the disk, then retry", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being attempted.
        doing: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// A file-system operation failed.
    #[error("cannot {doing} {}: {source}. Check the path, its permissions and the disk, then retry", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being attempted.
        doing: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How long a connection waits for another's lock before reporting [`LogError::Busy`].
pub(crate) const BUSY_TIMEOUT_MS: u64 = 5_000;

impl LogError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LogError::NotALog { path, .. }
            | LogError::NewerVersion { path, .. }
            | LogError::NewerEntryFormat { path, .. }
            | LogError::CorruptEntry { path, .. }
            | LogError::Corrupt { path, .. }
            | LogError::InvalidEntry { path, .. }
            | LogError::InvalidCursor { path, .. }
            | LogError::Busy { path, .. }
            | LogError::Moved { path, .. }
            | LogError::UnreadableWal { path, .. }
            | LogError::Sqlite { path, .. }
            | LogError::Io { path, .. } => path,
        }
    }

    /// The entry the error is about, when it is about one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            LogError::NewerEntryFormat { seq, .. } | LogError::CorruptEntry { seq, .. } => {
                Some(*seq)
            }
            _ => None,
        }
    }

    /// Classifies a SQLite error met while doing `doing` on `path`.
    pub(crate) fn sqlite(path: &Path, doing: &str, source: rusqlite::Error) -> LogError {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => LogError::NotALog {
                path,
                reason: "SQLite says it is not a database".to_string(),
            },
            Some(ErrorCode::DatabaseCorrupt) => LogError::Corrupt {
                path,
                problem: format!(
                    "SQLite reports a malformed database image while trying to {doing} it ({source})"
                ),
            },
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => LogError::Busy {
                path,
                doing: doing.to_string(),
                waited_ms: BUSY_TIMEOUT_MS,
            },
            _ => LogError::Sqlite {
                path,
                doing: doing.to_string(),
                source,
            },
        }
    }

    pub(crate) fn io(path: &Path, doing: &str, source: std::io::Error) -> LogError {
        LogError::Io {
            path: path.to_path_buf(),
            doing: doing.to_string(),
            source,
        }
    }

    pub(crate) fn corrupt_entry(path: &Path, seq: u64, problem: impl Into<String>) -> LogError {
        LogError::CorruptEntry {
            path: path.to_path_buf(),
            seq,
            problem: problem.into(),
        }
    }
}

/// `Result` with [`LogError`].
pub type LogResult<T> = Result<T, LogError>;
