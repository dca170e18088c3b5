//! The log file: creating it, recognising it, and opening SQLite connections to it.
//! Owns the schema (`schema/log.sql`) and the identity checks; never writes to a file it has
//! not recognised as a logbook log (or created itself).

use super::error::{BUSY_TIMEOUT_MS, LogError, LogResult};
use rusqlite::{Connection, OpenFlags};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The SQL schema of a new log.
pub const SCHEMA_SQL: &str = include_str!("../../schema/log.sql");

/// `PRAGMA application_id` of a logbook log: ASCII "LOGB".
pub const APPLICATION_ID: i64 = 0x4C4F_4742;

/// The schema version this build writes and the newest it opens.
pub const SCHEMA_VERSION: i64 = 2;

/// The oldest schema version this build opens (and appends to, as it is): version 1 keeps audit
/// keys in indexes on `entries` rather than in the `audit` table; its entries and hash chain
/// are those of version 2 (see `schema/log.sql`).
pub const OLDEST_SCHEMA_VERSION: i64 = 1;

/// The columns of `entries` in the order every reader selects them.
pub(crate) const ENTRY_COLUMNS: &str = "seq, id, at_ns, kind, namespace, application, object_kind, object_name, format, payload, prev_hash, hash";

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// An open connection and the file it is to.
pub(crate) struct Db {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    /// How the file keeps its audit keys, found when it was opened.
    pub(crate) layout: Layout,
}

/// How a log keeps its audit keys: the `audit` table (schema version 2), or indexes on
/// `entries` (version 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The `audit` table, filled by the writer (see `schema/log.sql` and [`super::audit`]).
    AuditTable,
    /// Indexes on `entries`, maintained by SQLite.
    Indexes(AuditIndexes),
}

/// The audit indexes of a version-1 log: what its queries can search by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AuditIndexes {
    /// `entries_by_application (application, seq)`.
    pub(crate) application: Option<&'static str>,
    /// `entries_by_object (object_kind, object_name, namespace, seq)`.
    pub(crate) object: Option<&'static str>,
    /// `entries_by_kind (kind, seq)`.
    pub(crate) kind: Option<&'static str>,
}

impl Layout {
    /// The layout of the file `conn` is open on. The `audit` table is required from version 2
    /// on; the indexes of version 1 are used when present (an index that someone dropped is not
    /// used, so queries read the entries in seq order instead).
    fn find(conn: &Connection, path: &Path, version: i64) -> LogResult<Layout> {
        let fail = |e| LogError::sqlite(path, "read the schema of", e);
        let mut stmt = conn
            .prepare(
                "SELECT type, name FROM sqlite_schema WHERE (type = 'index' AND tbl_name = 'entries') \
                 OR (type = 'table' AND name = 'audit')",
            )
            .map_err(fail)?;
        let mut rows = stmt.query([]).map_err(fail)?;
        let mut names = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let kind: String = row.get(0).map_err(fail)?;
            let name: String = row.get(1).map_err(fail)?;
            names.push((kind, name));
        }
        let has = |kind: &str, name: &str| names.iter().any(|(k, n)| k == kind && n == name);
        if version >= 2 {
            if !has("table", "audit") {
                return Err(LogError::Corrupt {
                    path: path.to_path_buf(),
                    problem: "the `audit` table is missing".into(),
                });
            }
            return Ok(Layout::AuditTable);
        }
        let index = |name: &'static str| has("index", name).then_some(name);
        Ok(Layout::Indexes(AuditIndexes {
            application: index("entries_by_application"),
            object: index("entries_by_object"),
            kind: index("entries_by_kind"),
        }))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    ReadWrite,
    ReadOnly,
}

/// Whether `path` holds nothing yet: it does not exist, or it is an empty regular file.
pub(crate) fn is_vacant(path: &Path) -> LogResult<bool> {
    Ok(match inspect(path)? {
        None => true,
        Some(m) => m.len() == 0,
    })
}

/// What is at `path`: `None` when nothing is, its metadata when it is a regular file (symbolic
/// links followed). Anything else is refused before SQLite or a read touches it: opening a FIFO
/// blocks until someone writes to it, and a directory, device or socket is no log.
pub(crate) fn inspect(path: &Path) -> LogResult<Option<fs::Metadata>> {
    let meta = match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(path, "inspect the log file", e)),
        Ok(m) => m,
    };
    if meta.file_type().is_file() {
        return Ok(Some(meta));
    }
    Err(LogError::NotALog {
        path: path.to_path_buf(),
        reason: format!("it is {}, not a regular file", describe(&meta.file_type())),
    })
}

/// What a file that is not a regular file is, in words.
fn describe(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// `path` with `suffix` appended to its file name (`log.db` → `log.db-wal`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates a new, empty log at `path` (which must be vacant).
///
/// The log is built in a temporary file next to `path` and moved into place complete, so a
/// crash during creation never leaves a half-made log at `path`.
pub(crate) fn create(path: &Path) -> LogResult<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "log".into());
    let tmp = dir.join(format!(".{name}.creating-{}", std::process::id()));
    remove_sqlite_files(&tmp);
    let result = build(&tmp).and_then(|()| install(&tmp, path, &dir));
    remove_sqlite_files(&tmp);
    result
}

fn build(tmp: &Path) -> LogResult<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(tmp, flags)
        .map_err(|e| LogError::sqlite(tmp, "create the log", e))?;
    conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{SCHEMA_SQL}\nCOMMIT;"))
        .map_err(|e| LogError::sqlite(tmp, "create the log schema in", e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| LogError::sqlite(tmp, "switch to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LogError::Corrupt {
            path: tmp.to_path_buf(),
            problem: format!("SQLite refused WAL mode (got {mode})"),
        });
    }
    conn.close()
        .map_err(|(_, e)| LogError::sqlite(tmp, "close the new log", e))?;
    let file = fs::File::open(tmp).map_err(|e| LogError::io(tmp, "open the new log", e))?;
    file.sync_all()
        .map_err(|e| LogError::io(tmp, "flush the new log to disk", e))
}

/// Moves the finished log into place, unless another process got there first.
fn install(tmp: &Path, path: &Path, dir: &Path) -> LogResult<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // An empty placeholder file is replaced; anything else is someone else's log now.
            if is_vacant(path)? {
                fs::rename(tmp, path)
                    .map_err(|e| LogError::io(path, "move the new log into place at", e))?;
            }
        }
        // No hard links on this file system: a rename does the same unless someone raced us.
        Err(_) if !path.exists() => {
            fs::rename(tmp, path)
                .map_err(|e| LogError::io(path, "move the new log into place at", e))?;
        }
        Err(e) => return Err(LogError::io(path, "move the new log into place at", e)),
    }
    if let Ok(d) = fs::File::open(dir) {
        // Make the new directory entry durable; a failure here only weakens crash safety of
        // the creation itself, which is retried on the next open.
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove_sqlite_files(p: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(sibling(p, suffix));
    }
}

/// Looks at the file's first bytes before SQLite does: a file that is not SQLite, or is another
/// application's SQLite database, is refused without ever being opened by SQLite.
fn sniff(path: &Path) -> LogResult<()> {
    let not_a_log = |reason: String| LogError::NotALog {
        path: path.to_path_buf(),
        reason,
    };
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        // O_NONBLOCK: should a FIFO have replaced the file since it was inspected, opening it
        // returns at once instead of waiting for a writer.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(0o4000);
    }
    let mut file = options
        .open(path)
        .map_err(|e| LogError::io(path, "open the log file", e))?;
    let meta = file
        .metadata()
        .map_err(|e| LogError::io(path, "inspect the log file", e))?;
    if !meta.file_type().is_file() {
        return Err(not_a_log(format!(
            "it is {}, not a regular file",
            describe(&meta.file_type())
        )));
    }
    let mut header = [0u8; 100];
    let mut filled = 0;
    while filled < header.len() {
        match file.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io(path, "read the log file's header", e)),
        }
    }
    if filled == 0 {
        return Err(not_a_log("the file is empty".into()));
    }
    if filled < header.len() || &header[..16] != SQLITE_MAGIC {
        return Err(not_a_log("it is not an SQLite database".into()));
    }
    let app_id = i64::from(i32::from_be_bytes([
        header[68], header[69], header[70], header[71],
    ]));
    if app_id != APPLICATION_ID {
        return Err(not_a_log(format!(
            "it is an SQLite database with application_id {app_id:#x}, not logbook's {APPLICATION_ID:#x}"
        )));
    }
    let user_version = i64::from(i32::from_be_bytes([
        header[60], header[61], header[62], header[63],
    ]));
    if user_version > SCHEMA_VERSION {
        return Err(LogError::NewerVersion {
            path: path.to_path_buf(),
            found: user_version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Opens an existing log, checking that it is one this build reads before anything is written.
///
/// Read-only, a log in a place this process cannot write (a read-only directory or mount) is
/// opened `immutable` when its main file holds every entry (no `-wal`, or an empty one): SQLite
/// would otherwise need to create a `-shm` file next to it. When a `-wal` with entries is there
/// and SQLite cannot use it, the log is refused with what to do ([`LogError::UnreadableWal`]):
/// reading the main file alone would silently miss those entries.
pub(crate) fn open_existing(path: &Path, mode: Mode) -> LogResult<Db> {
    if inspect(path)?.is_none() {
        return Err(LogError::io(
            path,
            "open the log",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    sniff(path)?;
    match connect(path, mode, false) {
        Err(e) if mode == Mode::ReadOnly && is_read_only_place(&e) => {
            let wal = sibling(path, "-wal");
            match fs::metadata(&wal) {
                Ok(m) if m.len() > 0 => Err(LogError::UnreadableWal {
                    path: path.to_path_buf(),
                    wal,
                }),
                _ => connect(path, mode, true),
            }
        }
        other => other,
    }
}

/// Whether SQLite failed because it could not create or write the log's `-shm` (or `-wal`).
fn is_read_only_place(e: &LogError) -> bool {
    matches!(
        e,
        LogError::Sqlite { source, .. }
            if matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
            )
    )
}

/// `file:` URI of `path` (made absolute, percent-encoded) with `?immutable=1`: SQLite reads the
/// file without locks and without a `-shm` or `-wal`, trusting that nobody changes it.
fn immutable_uri(path: &Path) -> LogResult<String> {
    let abs =
        std::path::absolute(path).map_err(|e| LogError::io(path, "resolve the path of", e))?;
    let mut uri = String::from("file:");
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        abs.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = abs.to_string_lossy().into_owned().into_bytes();
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    Ok(uri)
}

/// Opens a connection to `path` and checks the log's identity; `immutable` opens it read-only
/// without locks or WAL files (see [`open_existing`]).
fn connect(path: &Path, mode: Mode, immutable: bool) -> LogResult<Db> {
    let access = match mode {
        Mode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    };
    let conn = if immutable {
        Connection::open_with_flags(
            immutable_uri(path)?,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    } else {
        Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
    }
    .map_err(|e| LogError::sqlite(path, "open the log", e))?;
    let mut db = Db {
        conn,
        path: path.to_path_buf(),
        layout: Layout::AuditTable,
    };
    db.conn
        .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(|e| LogError::sqlite(path, "configure the connection to", e))?;
    db.conn.set_prepared_statement_cache_capacity(32);
    // Each insert keeps a statement journal (its constraints and trigger may abort it); keep
    // that in memory rather than in a temporary file.
    db.pragma("temp_store", "MEMORY")?;
    if mode == Mode::ReadWrite {
        // Until the file is known to be a log this connection may not write.
        db.pragma("query_only", "ON")?;
    }
    let version = check_identity(&db)?;
    db.layout = Layout::find(&db.conn, path, version)?;
    if mode == Mode::ReadWrite {
        db.pragma("query_only", "OFF")?;
        let journal: String = db
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| LogError::sqlite(path, "switch to WAL mode", e))?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(LogError::Corrupt {
                path: path.to_path_buf(),
                problem: format!("SQLite refused WAL mode (got {journal})"),
            });
        }
        // Durable commits: the WAL is synced on every commit.
        db.pragma("synchronous", "FULL")?;
        // Checkpoint every 16384 pages (64 MiB) rather than SQLite's 1000: index pages touched
        // by many batches are then copied back to the file once, not once per few batches
        // (measured: +50% append rate on large logs). The WAL file is cut back to that size.
        db.pragma("wal_autocheckpoint", "16384")?;
        db.pragma("journal_size_limit", "67108864")?;
        // Appends touch random pages of the id index: keep them in memory (64 MiB).
        db.pragma("cache_size", "-65536")?;
    }
    Ok(db)
}

/// Checks `application_id`, `user_version` and the `meta` rows; returns the schema version.
fn check_identity(db: &Db) -> LogResult<i64> {
    let path = &db.path;
    let read_i64 = |sql: &str, what: &str| -> LogResult<i64> {
        db.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| LogError::sqlite(path, what, e))
    };
    let app_id = read_i64("PRAGMA application_id", "read the application id of")?;
    if app_id != APPLICATION_ID {
        return Err(LogError::NotALog {
            path: path.clone(),
            reason: format!("its application_id is {app_id:#x}, not logbook's {APPLICATION_ID:#x}"),
        });
    }
    let user_version = read_i64("PRAGMA user_version", "read the schema version of")?;
    let meta = |key: &str| -> LogResult<Option<String>> {
        let mut stmt = db
            .conn
            .prepare("SELECT value FROM meta WHERE key = ?1")
            .map_err(|e| missing_schema(path, "the meta table", e))?;
        let mut rows = stmt
            .query([key])
            .map_err(|e| LogError::sqlite(path, "read the meta table of", e))?;
        match rows
            .next()
            .map_err(|e| LogError::sqlite(path, "read the meta table of", e))?
        {
            None => Ok(None),
            Some(row) => row
                .get::<_, String>(0)
                .map(Some)
                .map_err(|e| LogError::sqlite(path, "read the meta table of", e)),
        }
    };
    match meta("format")?.as_deref() {
        Some("logbook-log") => {}
        Some(other) => {
            return Err(LogError::NotALog {
                path: path.clone(),
                reason: format!("its meta format is `{other}`, not `logbook-log`"),
            });
        }
        None => {
            return Err(LogError::Corrupt {
                path: path.clone(),
                problem: "the meta table has no `format` row".into(),
            });
        }
    }
    let version = match meta("version")? {
        None => {
            return Err(LogError::Corrupt {
                path: path.clone(),
                problem: "the meta table has no `version` row".into(),
            });
        }
        Some(v) => v.trim().parse::<i64>().map_err(|_| LogError::Corrupt {
            path: path.clone(),
            problem: format!("the meta version `{v}` is not a number"),
        })?,
    };
    let found = version.max(user_version);
    if found > SCHEMA_VERSION {
        return Err(LogError::NewerVersion {
            path: path.clone(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if version != user_version || version < OLDEST_SCHEMA_VERSION {
        return Err(LogError::Corrupt {
            path: path.clone(),
            problem: format!(
                "schema version {version} (meta) / {user_version} (user_version) is not one logbook ever wrote"
            ),
        });
    }
    for table in ["entries", "cursors"] {
        let present: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| LogError::sqlite(path, "read the schema of", e))?;
        if present != 1 {
            return Err(LogError::Corrupt {
                path: path.clone(),
                problem: format!("the `{table}` table is missing"),
            });
        }
    }
    Ok(version)
}

fn missing_schema(path: &Path, what: &str, e: rusqlite::Error) -> LogError {
    match e.sqlite_error_code() {
        None | Some(rusqlite::ErrorCode::Unknown) => LogError::Corrupt {
            path: path.to_path_buf(),
            problem: format!("{what} is missing ({e})"),
        },
        _ => LogError::sqlite(path, "read the schema of", e),
    }
}

impl Db {
    pub(crate) fn pragma(&self, name: &str, value: &str) -> LogResult<()> {
        self.conn
            .pragma_update(None, name, value)
            .map_err(|e| LogError::sqlite(&self.path, &format!("set PRAGMA {name} on"), e))
    }

    /// Folds the write-ahead log back into the main file and truncates it to zero bytes, waiting
    /// up to `wait` for readers of older snapshots to move on.
    pub(crate) fn checkpoint(&self, wait: Duration) -> LogResult<()> {
        let doing = "fold the write-ahead log back into";
        self.conn
            .busy_timeout(wait)
            .map_err(|e| LogError::sqlite(&self.path, doing, e))?;
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(|e| LogError::sqlite(&self.path, doing, e))?;
        if busy != 0 {
            return Err(LogError::Busy {
                path: self.path.clone(),
                doing: format!(
                    "{doing} the main file; a reader kept an older snapshot open, so the newest \
                     entries stay in {} (keep it with the log)",
                    sibling(&self.path, "-wal").display()
                ),
                waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok(())
    }

    /// The seq and hash of the last entry, if any.
    pub(crate) fn head(&self) -> LogResult<Option<(u64, [u8; 32])>> {
        head(&self.conn, &self.path)
    }

    /// The seq of a named cursor.
    pub(crate) fn cursor(&self, name: &str) -> LogResult<Option<u64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM cursors WHERE name = ?1")
            .map_err(|e| LogError::sqlite(&self.path, "read a cursor of", e))?;
        let mut rows = stmt
            .query([name])
            .map_err(|e| LogError::sqlite(&self.path, "read a cursor of", e))?;
        match rows
            .next()
            .map_err(|e| LogError::sqlite(&self.path, "read a cursor of", e))?
        {
            None => Ok(None),
            Some(row) => {
                let seq: i64 = row
                    .get(0)
                    .map_err(|e| LogError::sqlite(&self.path, "read a cursor of", e))?;
                u64::try_from(seq).map(Some).map_err(|_| LogError::Corrupt {
                    path: self.path.clone(),
                    problem: format!("cursor `{name}` holds a negative seq {seq}"),
                })
            }
        }
    }
}

/// The seq and hash of the last entry, if any (inside a transaction: `conn` may be one).
pub(crate) fn head(conn: &Connection, path: &Path) -> LogResult<Option<(u64, [u8; 32])>> {
    let fail = |e| LogError::sqlite(path, "read the last entry of", e);
    let mut stmt = conn
        .prepare_cached("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        .map_err(fail)?;
    let mut rows = stmt.query([]).map_err(fail)?;
    let Some(row) = rows.next().map_err(fail)? else {
        return Ok(None);
    };
    let seq: i64 = row.get(0).map_err(fail)?;
    let seq = u64::try_from(seq).map_err(|_| LogError::Corrupt {
        path: path.to_path_buf(),
        problem: format!("the last entry has seq {seq}"),
    })?;
    let hash = row
        .get_ref(1)
        .ok()
        .and_then(|v| v.as_blob().ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| LogError::corrupt_entry(path, seq, "its hash is not 32 bytes"))?;
    Ok(Some((seq, hash)))
}
