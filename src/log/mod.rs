//! The append-only, hash-chained log: one SQLite file (WAL mode) holding every entry.
//! Owns storage, the chain and its verification; knows nothing of Kubernetes, NATS or planning.
//!
//! The entry types it stores are the vocabulary's ([`crate::record`]).
//!
//! - [`store`] creates and recognises log files (`schema/log.sql`): schema version 2, and
//!   version 1 (older logs, which keep their indexes).
//! - [`writer`] holds [`Log`]: batched durable appends with id deduplication, cursors.
//! - `audit` keeps the audit keys of version-2 logs: the `audit` table the writer fills in the
//!   same transaction as a batch (one row per key per batch, not an index entry per entry),
//!   which the reader searches and `verify` checks against the entries.
//! - [`reader`] holds [`LogReader`]: ranges and filtered queries streamed in chunks, each query
//!   through the audit keys (or a version-1 index) that fit it best, or the seq range; and the
//!   timeline's counts per lane and time bucket, one scan of a seq range reading no payload.
//! - [`chain`] defines the hash input, [`verify`] walks the chain.
//! - [`error`] holds [`LogError`].
//!
//! The wire format of an entry is documented in `schema/entries.md`.

pub(crate) mod audit;
pub mod chain;
pub mod error;
pub mod reader;
pub mod store;
pub mod verify;
pub mod writer;

pub use error::{LogError, LogResult};
pub use reader::{Entries, Filter, LogReader};
pub use verify::{Problem, VerifyReport};
pub use writer::Log;
