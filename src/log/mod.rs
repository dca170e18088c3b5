//! The append-only, hash-chained log (one SQLite file).
