//! What the controller tells its admin server: the readiness rules, the core's heartbeat, and
//! what is counted when entries are appended and published. Kept out of the core's logic: the
//! core calls [`CoreTelemetry`] once where each thing happens.
//!
//! Readiness: not ready from the moment it leads (at once without leader election) until every
//! watch has listed once ([`NOT_SYNCED`]) and NATS is connected ([`NATS_DOWN`]); not ready again
//! while NATS is away, and from SIGTERM on ([`STOPPING`]). A standby waiting for the Lease sets
//! no reason: it is ready (healthy and waiting). Liveness: the core thread beats at least every
//! [`BEAT_EVERY`] while it runs.

use crate::admin::metrics::ControllerMetrics;
use crate::admin::{Health, Heartbeat};
use crate::record::Body;

/// The controller's health and metrics (see [`crate::admin`]).
pub type Telemetry = crate::admin::Telemetry<ControllerMetrics>;

/// Not ready: planning waits until every watch has listed once.
pub const NOT_SYNCED: &str =
    "the watches have not all listed once yet (the world view is incomplete)";
pub use crate::admin::NATS_DOWN;
/// Not ready: SIGTERM (or Ctrl-C) was received.
pub const STOPPING: &str = "shutting down";

/// How often the core's heartbeat beats while it waits for input.
pub const BEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Telemetry {
    /// Not ready from the start: not synced, NATS not connected.
    pub fn starting(&self) {
        self.health.set_not_ready(NOT_SYNCED);
        self.health.set_not_ready(NATS_DOWN);
    }
}

/// The core's hooks: counting, readiness once synced, and its heartbeat.
#[derive(Clone, Debug)]
pub struct CoreTelemetry {
    metrics: std::sync::Arc<ControllerMetrics>,
    health: Health,
    heartbeat: Heartbeat,
}

impl Default for CoreTelemetry {
    fn default() -> Self {
        CoreTelemetry::new(&Telemetry::default())
    }
}

impl CoreTelemetry {
    /// The core's hooks into `telemetry`.
    pub fn new(telemetry: &Telemetry) -> CoreTelemetry {
        CoreTelemetry {
            metrics: telemetry.metrics.clone(),
            health: telemetry.health.clone(),
            heartbeat: telemetry.health.heartbeat("core"),
        }
    }

    /// A new entry with this body is in the log.
    pub fn appended(&self, body: &Body) {
        self.metrics.entry_appended(body.kind().as_str());
        match body {
            Body::Plan(_) => self.metrics.plan_recorded(),
            Body::Action(a) => self.metrics.action_recorded(a.action.verb.as_str()),
            Body::Outcome(o) => {
                self.metrics.outcome_recorded(o.result.as_str());
                tracing::debug!(
                    action_id = %o.action_id,
                    result = o.result.as_str(),
                    executor = %o.executor,
                    attempt = o.attempt,
                    "outcome recorded"
                );
            }
            Body::Marker(m) => self.metrics.marker_recorded(m.marker.as_str()),
            Body::Event(_) => {}
        }
    }

    /// The last committed seq and how far the outbox has published.
    pub fn sequences(&self, committed: u64, published: u64) {
        self.metrics.sequences(committed, published);
    }

    /// Every watch has listed once: planning starts.
    pub fn synced(&self) {
        self.health.set_ready(NOT_SYNCED);
    }

    /// The core's loop is turning.
    pub fn beat(&self) {
        self.heartbeat.beat();
    }
}
