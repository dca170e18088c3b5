//! The append-only, hash-chained log: one SQLite file (WAL mode) holding every entry.
//! Owns storage, the chain and its verification; knows nothing of Kubernetes, NATS or planning.
//!
//! The entry types it stores are the vocabulary's ([`crate::record`]).
//!
//! - [`store`] creates and recognises log files (`schema/log.sql`).
//! - [`writer`] holds [`Log`]: batched durable appends with id deduplication, cursors.
//! - [`reader`] holds [`LogReader`]: ranges and filtered queries streamed in chunks.
//! - [`chain`] defines the hash input, [`verify`] walks the chain.
//! - [`error`] holds [`LogError`].
//!
//! The wire format of an entry is documented in `schema/entries.md`.

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
