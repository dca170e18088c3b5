//! The controller's side of leader election: wait as a standby (writing nothing, not even
//! opening the log) until this process holds the Lease, then lead until stopped or until the
//! lease is lost.
//!
//! The rules, with the default timings (15 s lease, 10 s renew deadline, 2 s retry):
//! - A standby writes nothing. Once it holds the Lease it opens the log and records a
//!   `Leadership` marker `acquired` (identity, lease, `leaseTransitions`), then `start` and
//!   `config`, and runs.
//! - Every write of the core is fenced: once the Lease has not been renewed for the renew
//!   deadline, or was found held by someone else, nothing more is appended. The core then
//!   records a `Leadership` marker `lost` (with why) — only if the lease cannot have expired
//!   for the others yet, since after that another leader may be writing the same log — and
//!   the controller exits with an error, so its Pod restarts as a standby (client-go's
//!   leaderelection exits too). The renew deadline being shorter than the lease duration is
//!   what leaves this window.
//! - On SIGTERM the leader records `stop` and a `Leadership` marker `released`, publishes
//!   what is left within the grace period, and then releases the Lease (an empty holder), so
//!   a standby takes over at its next try instead of after the lease duration.

use super::ControllerError;
use super::lease::{Election, ElectionConfig, Fence, default_identity};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Who this controller process is, and whether it must win a Lease before it leads.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The Lease holder identity and the Events' `reportingInstance`; unique per process.
    pub identity: String,
    /// Leader election; `None`: this controller leads from the start (run only one).
    pub election: Option<ElectionConfig>,
}

impl Instance {
    /// A controller without leader election, named after its host and pid.
    pub fn solo() -> Instance {
        Instance {
            identity: default_identity(),
            election: None,
        }
    }
}

/// This process's leadership while it runs: an election won, or none needed.
pub(super) struct Leading {
    identity: String,
    won: Option<(Election, i32)>,
}

impl Leading {
    /// Waits until this process leads; `None` when `shutdown` came first (nothing written).
    pub async fn wait(
        client: &kube::Client,
        instance: &Instance,
        shutdown: &CancellationToken,
    ) -> Result<Option<Leading>, ControllerError> {
        let Some(config) = instance.election.clone() else {
            return Ok(Some(Leading {
                identity: instance.identity.clone(),
                won: None,
            }));
        };
        config.check().map_err(ControllerError::Internal)?;
        let lease = config.lease();
        let election = Election::start(client.clone(), &instance.identity, config);
        tracing::info!(%lease, identity = %instance.identity, "standing by until this controller holds the Lease");
        match election.acquired(shutdown).await {
            Some(transitions) => Ok(Some(Leading {
                identity: instance.identity.clone(),
                won: Some((election, transitions)),
            })),
            None => {
                election.stop(false).await;
                if shutdown.is_cancelled() {
                    Ok(None)
                } else {
                    Err(ControllerError::Internal(format!(
                        "the leader elector for Lease {lease} stopped before leading"
                    )))
                }
            }
        }
    }

    /// The identity Events are reported as.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// What every write checks.
    pub fn fence(&self) -> Fence {
        match &self.won {
            Some((e, _)) => e.fence(),
            None => Fence::unfenced(),
        }
    }

    /// The `acquired` marker's detail, when elected.
    pub fn detail(&self) -> Option<Value> {
        let (e, transitions) = self.won.as_ref()?;
        Some(serde_json::json!({
            "identity": self.identity,
            "lease": e.config().lease(),
            "transitions": transitions,
        }))
    }

    /// Resolves when leadership is lost, with why; never without an election.
    pub async fn lost(&self) -> String {
        match &self.won {
            Some((e, _)) => e.lost().await,
            None => std::future::pending().await,
        }
    }

    /// Stops the elector once nothing more is written; `release` gives the Lease up.
    pub async fn finish(self, release: bool) {
        if let Some((e, _)) = self.won {
            e.stop(release).await;
        }
    }
}
