//! The planner's integration tests, one binary: hand-written worlds and property tests over
//! random ones.

mod props;
mod worlds;
