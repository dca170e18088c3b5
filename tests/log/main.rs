//! The log's integration tests, one binary: round trips, tampering, bad files and crashes of a
//! writer killed at random points (`crash` re-runs this binary as its child writer).

mod bad_files;
mod crash;
mod roundtrip;
mod tamper;
