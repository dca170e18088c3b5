-- logbook log, schema version 2.
--
-- One SQLite file, WAL mode, append-only, hash-chained. This file is executed as is when a new
-- log is created (src/log/store.rs loads it with include_str!). The wire format of an entry (the
-- payload encoding and the exact hash input) is described in schema/entries.md.
--
-- A log file is recognised by its application_id (0x4C4F4742, ASCII "LOGB"), by user_version 2
-- and by the rows of `meta`. A newer logbook that changes this schema raises `version` (and
-- user_version); an older logbook refuses to open such a file rather than guess.
--
-- Version 2 replaced the secondary indexes of `entries` by the `audit` table (below) and wrote
-- the check on `kind` without IN; the entries' columns, their stored bytes and the hash chain
-- are those of version 1. Logs created as version 1 keep their indexes (`entries_by_application
-- (application, seq)`, `entries_by_object (object_kind, object_name, namespace, seq)`,
-- `entries_by_kind (kind, seq)`, `entries_by_time (at_ns)`); this build reads, queries,
-- verifies and appends to both.

PRAGMA application_id = 1280264002; -- 0x4C4F4742, "LOGB"
PRAGMA user_version = 2;

-- What this file is. Written once at creation; the triggers below keep it that way.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('format', 'logbook-log'), ('version', '2');

-- The entries. `seq` is the rowid: 1, 2, 3, ... with no gaps (the writer assigns it; `verify`
-- checks it).
-- AUTOINCREMENT keeps the highest seq ever allocated in sqlite_sequence, so `verify` notices a
-- log whose last entries were cut off. The check on `kind` is written with OR rather than
-- `IN (...)`: for an IN list SQLite builds a temporary index every time an INSERT runs, which
-- cost a quarter of the time of inserting a row (version 1 has the IN list).
CREATE TABLE entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),       -- UUID, 16 bytes
    at_ns       INTEGER NOT NULL,                                      -- UTC, ns since the Unix epoch
    kind        TEXT    NOT NULL CHECK (kind = 'event' OR kind = 'plan' OR kind = 'action'
                                        OR kind = 'outcome' OR kind = 'marker'),
    namespace   TEXT,                                                  -- audit keys; NULL = none
    application TEXT,                                                  -- "namespace/name"
    object_kind TEXT,
    object_name TEXT,
    format      INTEGER NOT NULL CHECK (format > 0),                   -- payload format version
    payload     BLOB    NOT NULL,                                      -- MessagePack, see entries.md
    prev_hash   BLOB    NOT NULL CHECK (length(prev_hash) = 32),       -- hash of entry seq - 1
    hash        BLOB    NOT NULL CHECK (length(hash) = 32)             -- SHA-256, see entries.md
) STRICT;

-- The audit keys: which entries are about an Application, an object, a namespace or a kind.
-- They are not indexes on `entries` (each would cost a B-tree insert per entry, and an index led
-- by the key puts a batch's entries at one place per key: a thousand entries about a hundred
-- Applications dirtied a hundred leaves per index, all written to the WAL at every commit).
-- Instead the writer fills `audit` in the same transaction as the entries: one row per key per
-- appended batch (and span), holding the seqs of that batch's entries with the key. A batch of
-- a thousand entries writes a few hundred short rows, all at the end of the table.
--
-- `span` is `seq >> 12` (4096 consecutive seqs); a row never crosses a span. `key` is the key as
-- compact JSON: `["application","NS/NAME"]`, `["object",KIND,NAMESPACE,NAME]` (NAMESPACE and
-- NAME may be null), `["namespace","NS"]`, `["kind","event"]`; an entry has the keys its columns
-- give (none for a NULL column; no object key without `object_kind`). `seqs` lists the row's
-- seqs after `first` as the differences from the one before, each an unsigned LEB128 number;
-- the last one is `last`. A lookup by key reads the rows of each span of its seq range in
-- order (one seek per span), then the entries by seq. `verify` checks that the rows list
-- exactly the entries with each key; the entries' own columns stay what audits filter on.
--
-- There is no index by time: entries are stored in seq order and time only roughly follows it
-- (an outcome carries the executor's clock), so a time filter is checked on the rows read.
-- `id` is UNIQUE: the writer looks ids up to skip duplicates, and `find` reads by id.
CREATE TABLE audit (
    span  INTEGER NOT NULL,
    key   TEXT    NOT NULL,
    first INTEGER NOT NULL,
    last  INTEGER NOT NULL,
    seqs  BLOB    NOT NULL,
    PRIMARY KEY (span, key, first)
) STRICT, WITHOUT ROWID;

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

CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'logbook log is append-only: audit keys cannot be updated');
END;

CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'logbook log is append-only: audit keys cannot be deleted');
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
