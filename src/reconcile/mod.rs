//! The planner: a pure function from the world view to the actions that close the gap.
//!
//! No I/O, no clock, no randomness, no hash-map iteration order: the same world always yields
//! the same actions, byte for byte, which is what makes replay possible.

mod action;

pub use action::{Action, Verb};
