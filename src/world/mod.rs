//! The world view the planner reads: Applications and managed objects as last observed.
//!
//! Owns the indexes that keep planning incremental (hosts, per-namespace ingress rules). It is
//! pure data: built by folding observations, never by reading the API server itself.

mod key;

pub use key::ObjKey;
