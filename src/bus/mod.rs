//! The bus: NATS JetStream between the controller and the executors.
//!
//! Owns connecting (URL, credentials, token, TLS CA), the subject scheme, the streams and
//! consumers with their explicit settings, the wire format of the messages and their
//! signatures ([`sign`]). It makes no decisions and never touches the log or the cluster.

mod config;
pub mod probe;
pub mod server;
pub mod sign;
mod subjects;
mod topology;
pub mod wire;

pub use config::{NatsArgs, connect};
pub use subjects::{action_subject, entry_subject, outcome_subject, token};
pub use topology::{
    ACTIONS_STREAM, CONTROLLER_CONSUMER, EXECUTORS_CONSUMER, LOG_STREAM, OUTCOMES_STREAM, Topology,
    controller_consumer, ensure_topology, executors_consumer,
};

use thiserror::Error;

/// What can go wrong on the bus.
#[derive(Debug, Error)]
pub enum BusError {
    /// The server could not be reached or refused the connection.
    #[error(
        "cannot connect to NATS at {url}: {source} (is nats-server running with JetStream \
         enabled (`-js`)? set --nats-url or LOGBOOK_NATS_URL)"
    )]
    Connect {
        /// The URL tried.
        url: String,
        /// The client's error.
        source: async_nats::ConnectError,
    },
    /// A credentials or CA file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    File {
        /// Which file (credentials, TLS CA).
        what: &'static str,
        /// Its path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stream or consumer could not be created, checked or updated.
    #[error("JetStream {what}: {message} (does the NATS account have JetStream enabled?)")]
    Setup {
        /// Which stream or consumer.
        what: String,
        /// The server's answer.
        message: String,
    },
    /// Publishing failed or was not acknowledged.
    #[error("publishing to {subject}: {message}")]
    Publish {
        /// The subject.
        subject: String,
        /// The error.
        message: String,
    },
    /// A message could not be encoded or decoded.
    #[error("{0}")]
    Wire(String),
}

/// Connects and sets up the streams and consumers, retrying (with a growing pause, logged)
/// while NATS is unreachable or not ready, until `shutdown`. A credentials or CA file that
/// cannot be read fails at once, since retrying cannot fix it. `Ok(None)` means shut down
/// before NATS answered.
pub async fn connect_with_retry(
    args: &NatsArgs,
    name: &str,
    topology: &Topology,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Option<async_nats::jetstream::Context>, BusError> {
    args.check_files()?;
    let mut attempt = 0u64;
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            c = async {
                let client = connect(args, name).await?;
                ensure_topology(client, topology).await
            } => c,
        };
        match connected {
            Ok(js) => return Ok(Some(js)),
            Err(e @ BusError::File { .. }) => return Err(e),
            Err(e) => {
                attempt += 1;
                let wait = std::time::Duration::from_millis((250 * attempt).min(5_000));
                tracing::warn!(error = %e, retry_in = ?wait, "NATS is not available yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
