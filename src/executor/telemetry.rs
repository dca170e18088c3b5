//! What an executor tells its admin server: the readiness rules and the bus probe. The
//! counting itself is one call where each delivery is taken and each action applied.

use crate::admin::metrics::ExecutorMetrics;

/// The executor's health and metrics (see [`crate::admin`]).
pub type Telemetry = crate::admin::Telemetry<ExecutorMetrics>;

pub use crate::admin::NATS_DOWN;
/// Not ready: the `executors` consumer is not bound yet.
pub const UNBOUND: &str = "the executors consumer is not bound yet";
/// Not ready: SIGTERM (or Ctrl-C) was received; finishing or handing back what it holds.
pub const STOPPING: &str = "shutting down";

impl Telemetry {
    /// Not ready from the start: not connected, not bound.
    pub fn starting(&self) {
        self.health.set_not_ready(NATS_DOWN);
        self.health.set_not_ready(UNBOUND);
    }
}
