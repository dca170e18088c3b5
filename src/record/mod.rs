//! The vocabulary every room speaks: object keys, actions and their verbs and ids, the log's
//! entry types and records, entry ids, embedded JSON text, and the pure views of an entry.
//!
//! It imports nothing else from logbook: the log stores these types, the world folds them,
//! the planner produces actions, the bus carries them and replay reads them, all from here.
//! No I/O, no clock, no randomness.
//!
//! - [`key`]: [`ObjKey`], how every map in logbook is keyed.
//! - [`action`]: [`Action`] and [`Verb`], with ids derived from content and cause.
//! - [`entry`]: the entry types, [`entry_uuid`], [`Json`] and the payload codec (MessagePack,
//!   formats 1 and 2; the wire format is documented in `schema/entries.md`).
//! - [`delta`]: objects stored as patches against their previous version ([`Deltas`] decides
//!   and writes them, [`Rebuild`] makes them whole again when the log is read).
//! - [`view`]: an entry's JSON view and its one-line trail text.

pub mod action;
pub mod delta;
pub mod entry;
pub mod key;
pub mod view;

pub use action::{Action, FENCE_OVERRIDE, Verb};
pub use delta::{Delta, Deltas, Rebuild};
pub use entry::{
    ActionRecord, Appended, Blob, Body, Change, Entry, EntryKind, Json, Keys, MarkerKind,
    MarkerRecord, NewEntry, ObservedEvent, OutcomeRecord, OutcomeResult, PAYLOAD_FORMAT,
    PlanRecord, RecordedAction, Redrive, entry_uuid,
};
pub use key::ObjKey;
