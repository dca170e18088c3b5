//! The executor: applies actions from the bus to the cluster and reports one outcome per
//! delivery.
//!
//! It makes no decisions: it never plans, never reads the log, and applies exactly what an
//! action says, idempotently (server-side apply with field manager `logbook`, the plan sequence
//! as a fencing token, uid preconditions on deletes). Any number of executors share one durable
//! pull consumer.

use crate::bus::{NatsArgs, Topology};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How an executor runs.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// This executor's name, recorded in every outcome (defaults to the host name and pid).
    pub name: String,
    /// How to reach NATS.
    pub nats: NatsArgs,
    /// Stream and consumer settings (checked or created at start).
    pub topology: Topology,
    /// Actions handled at once by this process.
    pub in_flight: usize,
    /// How long to wait for in-flight actions on shutdown before handing them back.
    pub grace: Duration,
}

/// What stops an executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The bus could not be reached or set up.
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
}

/// Runs an executor until `shutdown` is cancelled: stop pulling, finish in-flight actions
/// (within `grace`), return.
pub async fn run(
    client: kube::Client,
    config: ExecutorConfig,
    shutdown: CancellationToken,
) -> Result<(), ExecutorError> {
    let _ = (client, config, shutdown);
    todo!("executor")
}
