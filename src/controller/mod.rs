//! The controller: watch → record → fold → plan → record → publish, and outcomes back in.
//!
//! Owns the log (the only writer), the world view folded from it, the outbox that publishes
//! every entry once, and the intake of outcomes. It never writes to the cluster (executors do)
//! and never reads the API server to plan: the world view is the fold of the log and nothing
//! else.

pub mod core;
mod intake;
mod outbox;
mod watch;

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
    /// Something that should not happen did; the message says what.
    #[error("{0}")]
    Internal(String),
}

/// Runs the controller until `shutdown` is cancelled: records a stop marker, tries for a
/// moment to publish what is left (the rest goes out at the next start), and returns.
pub async fn run(
    client: kube::Client,
    config: ControllerConfig,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    config.nats.check_files()?;
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
    core.start(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "debounce_ms": config.debounce.as_millis() as u64,
        "resync_s": config.resync.as_secs(),
    }))?;

    let (tx, rx) = std::sync::mpsc::channel();
    let tasks = shutdown.child_token();
    let core_thread = std::thread::Builder::new()
        .name("logbook-core".into())
        .spawn(move || core.run(rx))
        .map_err(|e| ControllerError::Internal(format!("cannot start the core thread: {e}")))?;
    let mut handles = Vec::new();
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
    ));
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
    let result = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = &mut core_done => Some(r),
    };
    tasks.cancel();
    for h in handles {
        let _ = h.await;
    }
    let result = match result {
        Some(r) => r,
        None => {
            let _ = tx.send(core::Input::Stop);
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
    // Publish what is left, briefly; the next start resumes from the cursor anyway. The
    // outbox ends by itself once the core is gone and it has caught up.
    let mut bus_task = bus_task;
    tokio::select! {
        _ = &mut bus_task => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => {
            outbox_stop.cancel();
            let _ = bus_task.await;
        }
    }
    result
}

/// Connects to NATS (retrying until it answers or `tasks` is cancelled), sets up the streams,
/// then runs the outbox and the outcome intake.
async fn bus_tasks(
    config: ControllerConfig,
    published: u64,
    committed: tokio::sync::watch::Receiver<u64>,
    tx: std::sync::mpsc::Sender<core::Input>,
    tasks: CancellationToken,
    outbox_stop: CancellationToken,
) {
    let js =
        match bus::connect_with_retry(&config.nats, "logbook-controller", &config.topology, &tasks)
            .await
        {
            Ok(Some(js)) => js,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot use NATS; nothing will be published");
                return;
            }
        };
    tracing::info!(url = %config.nats.url, "connected to NATS; streams and consumers in place");
    let intake = tokio::spawn(intake::run(js.clone(), tx.clone(), tasks.clone()));
    let abandoned = tokio::spawn(intake::abandoned(js.clone(), tx.clone(), tasks.clone()));
    outbox::run(
        config.log_path.clone(),
        js,
        published,
        committed,
        tx,
        outbox_stop,
    )
    .await;
    let _ = intake.await;
    let _ = abandoned.await;
}
