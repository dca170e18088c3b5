//! What an executor tells its admin server: the readiness rules and the bus probe. The
//! counting itself is one call where each delivery is taken and each action applied.

use crate::admin::metrics::ExecutorMetrics;

/// The executor's health and metrics (see [`crate::admin`]).
pub type Telemetry = crate::admin::Telemetry<ExecutorMetrics>;

/// Not ready: no NATS connection.
pub const NATS_DOWN: &str = "NATS is not connected";
/// Not ready: the `executors` consumer is not bound yet.
pub const UNBOUND: &str = "the executors consumer is not bound yet";
/// Not ready: SIGTERM (or Ctrl-C) was received; finishing or handing back what it holds.
pub const STOPPING: &str = "shutting down";

/// How often the executors consumer's depth is read.
pub const DEPTH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Telemetry {
    /// Not ready from the start: not connected, not bound.
    pub fn starting(&self) {
        self.health.set_not_ready(NATS_DOWN);
        self.health.set_not_ready(UNBOUND);
    }

    /// Follows the NATS connection (readiness) and the executors consumer's depth until `stop`.
    pub async fn watch_bus(
        self,
        js: async_nats::jetstream::Context,
        stop: tokio_util::sync::CancellationToken,
    ) {
        use crate::bus::probe::{self, Probe};
        probe::watch_consumer(
            js,
            crate::bus::ACTIONS_STREAM,
            crate::bus::EXECUTORS_CONSUMER,
            DEPTH_EVERY,
            stop,
            |p| match p {
                Probe::Connected(up) => {
                    if !up {
                        tracing::warn!("NATS connection lost: not ready until it is back");
                    }
                    self.health.set(NATS_DOWN, up)
                }
                Probe::Depth(d) => self.metrics.queue_depth(d),
            },
        )
        .await
    }
}
