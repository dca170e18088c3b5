//! logbook's resources, a file per resource (`application.rs`: the `Application`), and the
//! naming, labelling and RBAC rules every managed object shares (`labels.rs`, `rbac.rs`).
//!
//! Types only: what a developer writes, what logbook reports back in `status`, and the labels
//! every managed object carries. No I/O and no planning happens here (see [`crate::reconcile`]).

mod application;
mod labels;
mod rbac;

pub use application::*;
pub use labels::*;
pub use rbac::{ApiCall, Scope};
