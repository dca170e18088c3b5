//! The controller: watch → record → fold → plan → record → publish, and outcomes back in.
//!
//! Owns the log (the only writer), the world view folded from it, the outbox that publishes
//! every entry once, and the intake of outcomes. It never writes to the cluster (executors do)
//! and never reads the API server to plan: the world view is the fold of the log and nothing
//! else.

pub mod core;
pub mod events;
mod intake;
mod leading;
pub mod lease;
mod outbox;
pub mod telemetry;
mod verifier;
mod watch;

pub use leading::Instance;
pub use telemetry::Telemetry;
pub use watch::API_CALLS;

use crate::bus::{self, NatsArgs, Topology};
use crate::log::Log;
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
    /// On shutdown, how long to publish what is left before exiting (the rest goes out at the
    /// next start).
    pub grace: Duration,
    /// How long an action may go without an outcome before it is published again from the
    /// log (then twice as long each time, up to ten minutes).
    pub answer_deadline: Duration,
    /// Signs the actions it publishes; trusts the executors' keys for their outcomes.
    pub keys: crate::bus::sign::Keys,
    /// When checkpoints are recorded.
    pub checkpoints: Checkpoints,
    /// How often the whole hash chain is checked again while running, on a read-only
    /// connection (`logbook_log_verify_failures_total` counts damage found); zero: only at start.
    pub verify_every: Duration,
}

/// When the controller records a checkpoint (the world as folded, so that readers need not
/// fold the log from its start): every `every` entries, and whenever asked through
/// `requests`.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    /// A checkpoint every this many entries (0: only when asked).
    pub every: u64,
    /// Asks the running core for one (e.g. the admin server's `POST /checkpoint`).
    pub requests: CheckpointRequests,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints {
            every: core::DEFAULT_CHECKPOINT_EVERY,
            requests: CheckpointRequests::default(),
        }
    }
}

/// Asks the running controller's core for a checkpoint. Cheap to clone; every clone reaches
/// the same core, from the moment it leads until it stops (before and after, a request is
/// refused, saying why).
#[derive(Clone, Default)]
pub struct CheckpointRequests {
    core: std::sync::Arc<std::sync::Mutex<Option<std::sync::mpsc::Sender<core::Input>>>>,
}

impl std::fmt::Debug for CheckpointRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointRequests")
            .field("connected", &self.slot().is_some())
            .finish()
    }
}

/// How long a requested checkpoint may take before the request gives up waiting (it is still
/// recorded).
const CHECKPOINT_WAIT: Duration = Duration::from_secs(60);

impl CheckpointRequests {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<std::sync::mpsc::Sender<core::Input>>> {
        // A poisoned lock only means a panic elsewhere while holding it; the slot is still
        // either a sender or none.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connect(&self, tx: std::sync::mpsc::Sender<core::Input>) {
        *self.slot() = Some(tx);
    }

    fn disconnect(&self) {
        *self.slot() = None;
    }

    /// Asks for a checkpoint after the core's current batch and waits for it (up to a minute):
    /// where it is, or why there is none.
    pub async fn request(&self) -> Result<core::CheckpointTaken, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = match self.slot().as_ref() {
            None => {
                return Err(
                    "the controller is not leading (starting, waiting for the Lease as a \
                            standby, or stopping): no checkpoint taken; ask the leader"
                        .to_string(),
                );
            }
            Some(tx) => tx.send(core::Input::Checkpoint(reply)),
        };
        sent.map_err(|_| "the controller's core has stopped: no checkpoint taken".to_string())?;
        match tokio::time::timeout(CHECKPOINT_WAIT, answer).await {
            Err(_) => Err(format!(
                "no answer from the core within {}s; the checkpoint is recorded once the core \
                 gets to it (the log's trail shows it)",
                CHECKPOINT_WAIT.as_secs()
            )),
            Ok(Err(_)) => {
                Err("the core stopped before taking the checkpoint (see its log)".to_string())
            }
            Ok(Ok(taken)) => taken.map_err(|e| format!("the checkpoint could not be taken: {e}")),
        }
    }
}

/// The pause before trying the bus again after `failures` failures in a row: 200 ms doubling
/// up to 3 s.
fn retry_pause(failures: u32) -> Duration {
    Duration::from_millis((100 * 2u64.pow(failures.min(5))).min(3_000))
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
    /// The log's hash chain is broken (an entry edited, removed or moved since it was written):
    /// the controller would fold the damage as truth and append after it, so it refuses.
    #[error(
        "refusing to use {}: {problem}. The controller folds the log as the truth, so it reads \
         and appends nothing past a break: run `logbook audit verify --log {}` to see the \
         damage, then restore the log from a backup (or move it aside to start a new one)",
        path.display(),
        path.display()
    )]
    BrokenLog {
        /// The log.
        path: PathBuf,
        /// The first bad entry.
        seq: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// Something that should not happen did; the message says what.
    #[error("{0}")]
    Internal(String),
    /// This controller lost its Lease: it stopped planning and writing; a restart waits as
    /// a standby.
    #[error(
        "leadership lost: {0}; stopped planning and writing the log, exiting so that a restart \
         waits as a standby (check that the API server is reachable and the Lease is not \
         edited by hand)"
    )]
    LeadershipLost(String),
}

/// Runs the controller until `shutdown` is cancelled: records a stop marker, publishes what
/// is left within `config.grace` (the rest goes out at the next start), records how far it got,
/// and returns.
pub async fn run(
    client: kube::Client,
    config: ControllerConfig,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    run_with(client, config, shutdown, Telemetry::default()).await
}

/// [`run`], reporting readiness, liveness and metrics to `telemetry` (see
/// [`telemetry`] for the readiness rules).
pub async fn run_with(
    client: kube::Client,
    config: ControllerConfig,
    shutdown: CancellationToken,
    telemetry: Telemetry,
) -> Result<(), ControllerError> {
    run_as(client, config, Instance::solo(), shutdown, telemetry).await
}

/// [`run_with`], as `instance`: with leader election, it first waits as a standby (writing
/// nothing) until it holds the Lease, and returns [`ControllerError::LeadershipLost`] when it
/// loses it (see `leading.rs` for the rules).
pub async fn run_as(
    client: kube::Client,
    config: ControllerConfig,
    instance: Instance,
    shutdown: CancellationToken,
    telemetry: Telemetry,
) -> Result<(), ControllerError> {
    config.nats.check_files()?;
    // A standby writes nothing, and does not even open the log, until it holds the Lease.
    // It counts as ready meanwhile (healthy and waiting), so it does not hold up a rollout.
    let Some(leader) = leading::Leading::wait(&client, &instance, &shutdown).await? else {
        return Ok(());
    };
    telemetry.starting();
    let log_path = config.log_path.clone();
    let log = tokio::task::spawn_blocking(move || Log::open(&log_path))
        .await
        .map_err(|e| ControllerError::Internal(format!("opening the log: {e}")))??;
    let watched = watch::watched();
    let kinds: Vec<&'static str> = watched.iter().map(|w| w.kind).collect();
    let (notify, committed) = tokio::sync::watch::channel(0);
    let planner = config.planner.clone();
    let debounce = config.debounce;
    let mut core =
        tokio::task::spawn_blocking(move || core::Core::new(log, planner, kinds, debounce, notify))
            .await
            .map_err(|e| ControllerError::Internal(format!("folding the log: {e}")))??;
    let published = {
        let reader = crate::log::LogReader::open(&config.log_path)?;
        reader.cursor(core::OUTBOX_CURSOR)?.unwrap_or(0)
    };
    tracing::info!(
        entries = core.fold().last_seq(),
        published,
        applications = core.fold().world().app_count(),
        "log folded"
    );
    telemetry.metrics.log_verified(core.fold().last_seq());
    core.observe(telemetry::CoreTelemetry::new(&telemetry));
    if let Some(detail) = leader.detail() {
        core.lead(leader.fence(), detail)?;
    }
    let (events_sink, events_rx) = events::channel(events::CHANNEL_CAPACITY);
    core.emit_events(events_sink);
    core.answer_deadline(config.answer_deadline);
    core.checkpoint_every(config.checkpoints.every);
    core.start(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "debounce_ms": config.debounce.as_millis() as u64,
        "resync_s": config.resync.as_secs(),
    }))?;

    let (tx, rx) = std::sync::mpsc::channel();
    config.checkpoints.requests.connect(tx.clone());
    let tasks = shutdown.child_token();
    let core_thread = std::thread::Builder::new()
        .name("logbook-core".into())
        .spawn(move || core.run(rx))
        .map_err(|e| ControllerError::Internal(format!("cannot start the core thread: {e}")))?;
    let mut handles = vec![tokio::spawn(events::run(
        client.clone(),
        leader.identity().to_string(),
        events_rx,
        leader.fence(),
        tasks.clone(),
    ))];
    for w in watched {
        handles.push(tokio::spawn(watch::run(
            client.clone(),
            w,
            tx.clone(),
            tasks.clone(),
        )));
    }
    // The bus: connected in the background, so the controller records and plans while NATS
    // is away; the outbox catches up once it is back.
    let outbox_stop = CancellationToken::new();
    let bus_task = tokio::spawn(bus_tasks(
        config.clone(),
        published,
        committed,
        tx.clone(),
        tasks.clone(),
        outbox_stop.clone(),
        telemetry.clone(),
    ));
    handles.push(tokio::spawn(verifier::run(
        config.log_path.clone(),
        config.verify_every,
        telemetry.metrics.clone(),
        tasks.clone(),
    )));
    let resync_tx = tx.clone();
    let resync = config.resync;
    let resync_stop = tasks.clone();
    handles.push(tokio::spawn(async move {
        if resync.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + resync, resync);
        loop {
            tokio::select! {
                _ = resync_stop.cancelled() => return,
                _ = tick.tick() => if resync_tx.send(core::Input::Resync).is_err() { return },
            }
        }
    }));

    // Wait for shutdown, or for the core to stop on its own (an error).
    let core_done = tokio::task::spawn_blocking(move || core_thread.join());
    tokio::pin!(core_done);
    let mut lost = None;
    let result = tokio::select! {
        _ = shutdown.cancelled() => None,
        reason = leader.lost() => {
            lost = Some(reason);
            None
        }
        r = &mut core_done => Some(r),
    };
    let stopping = tokio::time::Instant::now();
    config.checkpoints.requests.disconnect();
    telemetry.health.set_not_ready(telemetry::STOPPING);
    tasks.cancel();
    for h in handles {
        let _ = h.await;
    }
    let result = match result {
        Some(r) => r,
        None => {
            let _ = tx.send(match lost {
                Some(reason) => core::Input::Lost(reason),
                None => core::Input::Stop,
            });
            core_done.await
        }
    };
    drop(tx);
    let result = match result {
        Ok(Ok(r)) => r,
        _ => Err(ControllerError::Internal(
            "the core thread panicked; the log is intact up to its last commit".to_string(),
        )),
    };
    if matches!(result, Err(ControllerError::LeadershipLost(_))) {
        outbox_stop.cancel(); // the new leader publishes from the cursor
    }
    // Publish what is left within the grace period; the next start resumes from the cursor
    // anyway. The outbox ends by itself once the core is gone and it has caught up.
    let mut bus_task = bus_task;
    let published = tokio::select! {
        p = &mut bus_task => p,
        _ = tokio::time::sleep_until(stopping + config.grace) => {
            outbox_stop.cancel();
            bus_task.await
        }
    };
    if let Ok(Some(published)) = published
        && leader.fence().holds()
    {
        flush_cursor(&config.log_path, published).await;
    }
    // Nothing more is written: a clean stop hands the Lease over at once.
    leader.finish(result.is_ok()).await;
    result
}

/// Records that the outbox published up to `published` after the core (which keeps the
/// cursor while it runs) had stopped, so the next start does not publish it again.
async fn flush_cursor(log_path: &std::path::Path, published: u64) {
    let path = log_path.to_path_buf();
    let flushed = tokio::task::spawn_blocking(move || -> Result<(), crate::log::LogError> {
        let mut log = Log::open(&path)?;
        if log.cursor(core::OUTBOX_CURSOR)?.unwrap_or(0) < published {
            log.set_cursor(core::OUTBOX_CURSOR, published)?;
        }
        log.close()
    })
    .await;
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            published,
            error = %e,
            "cannot record how far the log was published; the next start publishes the rest \
             again and NATS drops the duplicates"
        ),
        Err(e) => tracing::warn!(published, error = %e, "recording the outbox cursor failed"),
    }
}

/// Connects to NATS (retrying until it answers or `tasks` is cancelled), sets up the streams,
/// then runs the outbox and the outcome intake; returns how far the outbox published (`None`
/// when it never connected).
async fn bus_tasks(
    config: ControllerConfig,
    published: u64,
    committed: tokio::sync::watch::Receiver<u64>,
    tx: std::sync::mpsc::Sender<core::Input>,
    tasks: CancellationToken,
    outbox_stop: CancellationToken,
    telemetry: Telemetry,
) -> Option<u64> {
    let js =
        match bus::connect_with_retry(&config.nats, "logbook-controller", &config.topology, &tasks)
            .await
        {
            Ok(Some(js)) => js,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "cannot use NATS; nothing will be published");
                return None;
            }
        };
    tracing::info!(url = %config.nats.url, "connected to NATS; streams and consumers in place");
    tokio::spawn(telemetry.watch_bus(
        js.clone(),
        crate::bus::OUTCOMES_STREAM,
        crate::bus::CONTROLLER_CONSUMER,
        tasks.clone(),
    ));
    let intake = tokio::spawn(intake::run(
        js.clone(),
        tx.clone(),
        config.keys.trusted.clone(),
        tasks.clone(),
    ));
    let abandoned = tokio::spawn(intake::abandoned(js.clone(), tx.clone(), tasks.clone()));
    let published = outbox::run(
        config.log_path.clone(),
        js,
        config.keys.signing.clone(),
        published,
        committed,
        tx,
        outbox_stop,
    )
    .await;
    let _ = intake.await;
    let _ = abandoned.await;
    Some(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkpoint_request_reaches_the_core_only_while_it_runs() {
        let requests = CheckpointRequests::default();
        let err = requests.request().await.expect_err("nobody to ask");
        assert!(err.contains("not leading"), "{err}");
        let (tx, rx) = std::sync::mpsc::channel();
        requests.connect(tx);
        // A stand-in for the core thread: answers one request.
        let core = std::thread::spawn(move || match rx.recv() {
            Ok(core::Input::Checkpoint(reply)) => {
                let _ = reply.send(Ok(core::CheckpointTaken {
                    seq: 8,
                    upto_seq: 7,
                    digest: "d".into(),
                    bytes: 1,
                    applications: 0,
                    new: true,
                    build_ms: 0,
                    append_ms: 0,
                }));
            }
            _ => panic!("not a checkpoint request"),
        });
        let taken = requests.clone().request().await.expect("answered");
        assert_eq!((taken.seq, taken.upto_seq), (8, 7));
        core.join().expect("the stand-in ends");
        // The core is gone: said so, not waited for.
        let err = requests.request().await.expect_err("the core stopped");
        assert!(err.contains("stopped"), "{err}");
        requests.disconnect();
        assert!(requests.request().await.is_err());
    }
}
