//! logbook's test kit: builders, the sandbox and NATS harness, log helpers and one simulated
//! history, shared by the tests, `replay/tests` and the benches; never shipped (`publish = false`).

pub mod app;
pub mod browser;
pub mod docs;
pub mod e2e;
pub mod history;
pub mod log;
pub mod sandbox;
pub mod ssa;
pub mod ui;

pub use app::{AppBuilder, AppTest, observed, world_of};
pub use ssa::{apply_merge, model_apply, server_defaults};
