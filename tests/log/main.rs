//! The log's integration tests, one binary: round trips, tampering, bad files, crashes of a
//! writer killed at random points (`crash` re-runs this binary as its child writer), and the
//! hardening of its files (`hardening` re-runs it as `nobody` to read a read-only place), and
//! the schema layouts (`layouts`: version-1 logs still work; audits search an index), and the
//! timeline's queries (`counts`: counts per lane and bucket, time to seq, time spans).

mod bad_files;
mod counts;
mod crash;
mod hardening;
mod layouts;
mod roundtrip;
mod tamper;
