//! The controller: watch → record → fold → plan → record → publish, and outcomes back in.
//!
//! Owns the log (the only writer), the world view folded from it, the outbox that publishes
//! every entry once, and the intake of outcomes. It never writes to the cluster (executors do)
//! and never reads the API server to plan: the world view is the fold of the log and nothing
//! else.

use crate::bus::{NatsArgs, Topology};
use crate::reconcile::PlannerConfig;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The log file (created when missing).
    pub log_path: PathBuf,
    /// How to reach NATS.
    pub nats: NatsArgs,
    /// Stream and consumer settings (checked or created at start).
    pub topology: Topology,
    /// What the planner produces.
    pub planner: PlannerConfig,
    /// How long to wait for more events before planning (quiet period).
    pub debounce: Duration,
    /// How often the whole world is planned again (a recorded resync).
    pub resync: Duration,
}

/// What stops a controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The bus could not be reached or set up.
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    /// The log could not be opened, read or written.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(
    client: kube::Client,
    config: ControllerConfig,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    let _ = (client, config, shutdown);
    todo!("controller")
}
