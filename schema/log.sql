-- logbook log, schema version 1.
--
-- One SQLite file, WAL mode, append-only, hash-chained. This file is executed as is when a new
-- log is created (src/log/store.rs loads it with include_str!). The wire format of an entry (the
-- payload encoding and the exact hash input) is described in schema/entries.md.
--
-- A log file is recognised by its application_id (0x4C4F4742, ASCII "LOGB"), by user_version 1
-- and by the rows of `meta`. A newer logbook that changes this schema raises `version` (and
-- user_version); an older logbook refuses to open such a file rather than guess.

PRAGMA application_id = 1280264002; -- 0x4C4F4742, "LOGB"
PRAGMA user_version = 1;

-- What this file is. Written once at creation; the triggers below keep it that way.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('format', 'logbook-log'), ('version', '1');

-- The entries. `seq` is the rowid: 1, 2, 3, ... with no gaps (the insert trigger enforces it).
-- AUTOINCREMENT keeps the highest seq ever allocated in sqlite_sequence, so `verify` notices a
-- log whose last entries were cut off.
CREATE TABLE entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),       -- UUID, 16 bytes
    at_ns       INTEGER NOT NULL,                                      -- UTC, ns since the Unix epoch
    kind        TEXT    NOT NULL CHECK (kind IN ('event', 'plan', 'action', 'outcome', 'marker')),
    namespace   TEXT,                                                  -- audit keys; NULL = none
    application TEXT,                                                  -- "namespace/name"
    object_kind TEXT,
    object_name TEXT,
    format      INTEGER NOT NULL CHECK (format > 0),                   -- payload format version
    payload     BLOB    NOT NULL,                                      -- MessagePack, see entries.md
    prev_hash   BLOB    NOT NULL CHECK (length(prev_hash) = 32),       -- hash of entry seq - 1
    hash        BLOB    NOT NULL CHECK (length(hash) = 32)             -- SHA-256, see entries.md
) STRICT;

-- The keys audits search by; each ends in seq so matches come back in log order.
CREATE INDEX entries_by_application ON entries (application, seq) WHERE application IS NOT NULL;
CREATE INDEX entries_by_object ON entries (object_kind, object_name, namespace, seq)
    WHERE object_kind IS NOT NULL;
CREATE INDEX entries_by_kind ON entries (kind, seq);
CREATE INDEX entries_by_time ON entries (at_ns);

-- Append-only: entries are never changed or removed. (The writer assigns seq = last + 1 and
-- refuses ids already present; `verify` checks both. An INSERT OR REPLACE would delete a row
-- without firing the DELETE trigger, unless recursive_triggers is on; logbook never issues one,
-- and verify reports the gap it would leave. A BEFORE INSERT guard is deliberately absent: it
-- makes every insert keep a statement journal, which costs a third of the append rate.)
CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
BEGIN
    SELECT RAISE(ABORT, 'logbook log is append-only: entries cannot be updated');
END;

CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
BEGIN
    SELECT RAISE(ABORT, 'logbook log is append-only: entries cannot be deleted');
END;

CREATE TRIGGER meta_read_only_update BEFORE UPDATE ON meta
BEGIN
    SELECT RAISE(ABORT, 'logbook log metadata is written once: it cannot be updated');
END;

CREATE TRIGGER meta_read_only_delete BEFORE DELETE ON meta
BEGIN
    SELECT RAISE(ABORT, 'logbook log metadata is written once: it cannot be deleted');
END;

-- Named positions in the log. Not part of the hash chain; updated in place. The controller keeps
-- `outbox` (the last seq published to NATS) and `verified` (how far a start verified the hash
-- chain: the next start verifies from there on before it appends).
CREATE TABLE cursors (
    name TEXT PRIMARY KEY NOT NULL,
    seq  INTEGER NOT NULL CHECK (seq >= 0)
) STRICT, WITHOUT ROWID;
