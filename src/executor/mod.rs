//! The executor: applies actions from the bus to the cluster and reports one outcome per
//! delivery.
//!
//! It makes no decisions: it never plans, never reads the log, and applies exactly what an
//! action says, idempotently (server-side apply with field manager `logbook`, the plan sequence
//! as a fencing token, uid preconditions on deletes). Any number of executors share one durable
//! pull consumer; each handles at most `in_flight` deliveries at once, reports progress while it
//! works, publishes the outcome and only then acknowledges (see [`settle`] for the rules).

pub mod api;
pub mod apply;
pub mod remit;
pub mod settle;
pub mod telemetry;

pub use telemetry::Telemetry;

use crate::bus::sign::{CONTROLLER, SIGNATURE_HEADER, SigningKey};
use crate::bus::wire::{ActionMessage, MSG_ID, OutcomeMessage};
use crate::bus::{self, NatsArgs, Topology};
use crate::record::{ObjKey, OutcomeRecord, OutcomeResult};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use settle::Ack;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long one pull request waits for actions before the next one is made.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// Attempts at publishing one outcome before the delivery is left unacknowledged.
const PUBLISH_ATTEMPTS: u32 = 3;
/// How often the pull loop's heartbeat beats while it waits.
const BEAT_EVERY: Duration = Duration::from_secs(1);

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
    /// The namespaces it acts in (empty: all); actions elsewhere are refused.
    pub namespaces: Vec<String>,
    /// Signs its outcomes; verifies that each action was signed by the controller.
    pub keys: crate::bus::sign::Keys,
}

/// What stops an executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The bus could not be reached or set up.
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    /// The settings cannot work.
    #[error("executor settings: {0}")]
    Config(String),
}

/// What every delivery's handler shares.
struct Shared {
    client: kube::Client,
    js: jetstream::Context,
    config: ExecutorConfig,
    waits: AckWaits,
    telemetry: Telemetry,
    /// Cancelled when the grace period is over: unfinished deliveries are handed back (nak).
    hand_back: CancellationToken,
    /// What this executor may touch.
    remit: remit::Remit,
}

/// How long the server waits for an acknowledgement before delivering again.
struct AckWaits {
    ack_wait: Duration,
    backoff: Vec<Duration>,
}

impl AckWaits {
    /// How often to report progress on delivery number `delivered`: a third of the shortest
    /// wait that may apply to it (with a backoff list the server times deliveries by it).
    fn progress_every(&self, delivered: i64) -> Duration {
        let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
        let step = self.backoff.get(i).or(self.backoff.last()).copied();
        let wait = match step {
            Some(b) if !b.is_zero() => b.min(self.ack_wait),
            _ => self.ack_wait,
        };
        (wait / 3).max(Duration::from_millis(50))
    }
}

/// Runs an executor until `shutdown` is cancelled: stop pulling, finish in-flight actions
/// (within `grace`), return. Deliveries still unfinished then are handed back (nak without
/// delay), so JetStream delivers them to another executor at once.
pub async fn run(
    client: kube::Client,
    config: ExecutorConfig,
    shutdown: CancellationToken,
) -> Result<(), ExecutorError> {
    run_with(client, config, shutdown, Telemetry::default()).await
}

/// [`run`], reporting readiness, liveness and metrics to `telemetry`: ready once connected to
/// NATS with its consumer bound; not ready while NATS is away or once shutting down.
pub async fn run_with(
    client: kube::Client,
    config: ExecutorConfig,
    shutdown: CancellationToken,
    telemetry: Telemetry,
) -> Result<(), ExecutorError> {
    telemetry.starting();
    if config.in_flight == 0 {
        return Err(ExecutorError::Config(
            "--in-flight must be at least 1 (actions handled at once)".to_string(),
        ));
    }
    let Some(js) =
        bus::connect_with_retry(&config.nats, &config.name, &config.topology, &shutdown).await?
    else {
        return Ok(()); // shut down before NATS answered
    };
    let nats = js.client();
    let consumer = bus::executors_consumer(&js).await?;
    telemetry.health.set_ready(telemetry::UNBOUND);
    let probe_stop = CancellationToken::new();
    let _probe_guard = probe_stop.clone().drop_guard();
    tokio::spawn(telemetry.clone().watch_bus(
        js.clone(),
        crate::bus::ACTIONS_STREAM,
        crate::bus::EXECUTORS_CONSUMER,
        probe_stop,
    ));
    let beat = telemetry.health.heartbeat("executor pull loop");
    let mut beat_tick = tokio::time::interval(BEAT_EVERY);
    beat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What the server enforces (it may differ from what was asked, e.g. a shared consumer set
    // up by another version): the progress reports must come well within it.
    let server = &consumer.cached_info().config;
    let waits = AckWaits {
        ack_wait: server.ack_wait,
        backoff: server.backoff.clone(),
    };
    tracing::info!(
        executor = %config.name,
        in_flight = config.in_flight,
        nats = %config.nats.url,
        "executor started"
    );
    let grace = config.grace;
    let slots = Arc::new(Semaphore::new(config.in_flight));
    let hand_back_token = CancellationToken::new();
    let remit = remit::Remit::new(config.namespaces.iter().cloned());
    let shared = Arc::new(Shared {
        client,
        js,
        config,
        waits,
        telemetry: telemetry.clone(),
        hand_back: hand_back_token.clone(),
        remit,
    });
    let mut tasks: JoinSet<()> = JoinSet::new();

    'pull: loop {
        beat.beat();
        reap(&mut tasks);
        // Pull only as many actions as there are free slots, so none waits unhandled here
        // while another executor could take it.
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break 'pull,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break 'pull,
            },
            // Every slot busy: still alive, waiting.
            _ = beat_tick.tick() => continue 'pull,
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        let batch = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break 'pull,
            b = consumer.batch().max_messages(permits.len()).expires(PULL_WAIT).messages() => b,
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    "cannot pull actions from consumer {} on {}: {e}; trying again",
                    bus::EXECUTORS_CONSUMER,
                    bus::ACTIONS_STREAM
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break 'pull,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'pull,
                }
            }
        };
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    telemetry.health.set_not_ready(telemetry::STOPPING);
                    hand_back(&mut batch).await;
                    break 'pull;
                }
                m = batch.next() => m,
                _ = beat_tick.tick() => {
                    beat.beat();
                    continue;
                }
            };
            match next {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!("pulling actions: {e}; pulling again");
                    break;
                }
                Some(Ok(message)) => match permits.pop() {
                    Some(permit) => {
                        let shared = shared.clone();
                        tasks.spawn(handle(shared, message, permit));
                    }
                    None => {
                        // More than asked for: give it back for immediate redelivery.
                        let _ = message.ack_with(AckKind::Nak(None)).await;
                    }
                },
            }
        }
    }

    telemetry.health.set_not_ready(telemetry::STOPPING);
    let left = tasks.len();
    tracing::info!(
        in_flight = left,
        grace = ?grace,
        "stopping: no more pulls; finishing the actions in flight"
    );
    // The last part of the grace period is kept for handing back what is unfinished.
    let hand_back_time = (grace / 5).min(Duration::from_secs(2));
    let drained = tokio::time::timeout(grace.saturating_sub(hand_back_time), async {
        while let Some(r) = tasks.join_next().await {
            log_join(r);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            unfinished = tasks.len(),
            grace = ?grace,
            "grace period over: handing the unfinished actions back (nak), so JetStream \
             delivers them to another executor now"
        );
        hand_back_token.cancel();
        let handed = tokio::time::timeout(hand_back_time.max(Duration::from_millis(200)), async {
            while let Some(r) = tasks.join_next().await {
                log_join(r);
            }
        })
        .await;
        if handed.is_err() {
            tracing::warn!(
                unfinished = tasks.len(),
                "some actions could not be handed back in time; JetStream delivers them again \
                 after the ack wait"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
    if tokio::time::timeout(Duration::from_secs(2), nats.flush())
        .await
        .is_err()
    {
        tracing::warn!("NATS did not confirm the last acknowledgements within 2s");
    }
    tracing::info!(executor = %shared.config.name, "executor stopped");
    Ok(())
}

/// Logs the end of finished handlers (a panic is a bug: the delivery was left unacked).
fn reap(tasks: &mut JoinSet<()>) {
    while let Some(r) = tasks.try_join_next() {
        log_join(r);
    }
}

fn log_join(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r
        && e.is_panic()
    {
        tracing::error!(
            "an action handler panicked ({e}); its delivery stays unacknowledged and will be \
             delivered again"
        );
    }
}

/// On shutdown: what the current pull still brings is handed back at once (nak without
/// delay), so another executor takes it without waiting for the ack wait.
async fn hand_back(batch: &mut jetstream::consumer::pull::Batch) {
    let _ = tokio::time::timeout(PULL_WAIT + Duration::from_secs(1), async {
        while let Some(next) = batch.next().await {
            if let Ok(message) = next {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            }
        }
    })
    .await;
}

/// Handles one delivery: decode, apply (reporting progress), publish the outcome, acknowledge.
async fn handle(shared: Arc<Shared>, message: jetstream::Message, _slot: OwnedSemaphorePermit) {
    let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
    let _in_flight = shared.telemetry.metrics.delivery_started(delivered);
    let subject = message.subject.to_string();
    let signature = message
        .headers
        .as_ref()
        .and_then(|h| h.get(SIGNATURE_HEADER))
        .map(|v| v.as_str());
    let signed = shared
        .config
        .keys
        .trusted
        .verify(signature, &message.payload, |name| name == CONTROLLER)
        .map_err(|e| {
            crate::bus::BusError::Wire(format!(
                "refused: {e}; only actions the controller signed are carried out"
            ))
        });
    let msg = match signed.and_then(|_signer| ActionMessage::decode(&message.payload)) {
        Ok(msg) => msg,
        Err(e) => {
            let action_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(MSG_ID))
                .map(|v| v.as_str().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "unknown".to_string());
            // At ERROR level, so the span (and the id) is there whenever any line inside is.
            let span = tracing::error_span!("action", action_id = %action_id, attempt = delivered);
            malformed(&shared, &message, &subject, delivered, action_id, e)
                .instrument(span)
                .await;
            return;
        }
    };
    // At ERROR level, so the span (and the id) is there whenever any line inside is logged.
    let span = tracing::error_span!(
        "action",
        action_id = %msg.action.id,
        verb = %msg.action.verb,
        target = %format_args!("{}/{}/{}", msg.action.target.kind, msg.action.target.namespace, msg.action.target.name),
        plan_seq = msg.plan_seq,
        attempt = delivered,
    );
    handle_action(&shared, &message, msg, delivered)
        .instrument(span)
        .await;
}

async fn handle_action(
    shared: &Shared,
    message: &jetstream::Message,
    msg: ActionMessage,
    delivered: i64,
) {
    let config = &shared.config;
    tracing::debug!(reason = %msg.action.reason, "applying");
    let work = async {
        let started = std::time::Instant::now();
        let attempt = apply::attempt(&shared.client, &msg, &shared.remit).await;
        let took = started.elapsed();
        let (outcome, ack) = settle::settle(
            &msg.action.id,
            &config.name,
            delivered,
            attempt,
            &config.topology,
        );
        shared
            .telemetry
            .metrics
            .applied(msg.action.verb.as_str(), outcome.result.as_str(), took);
        let out = OutcomeMessage {
            at: chrono::Utc::now(),
            target: msg.action.target.clone(),
            app: msg.action.app.clone(),
            outcome,
        };
        let published = publish(&shared.js, &out, None, &config.keys.signing).await;
        (out.outcome, ack, published)
    };
    let every = shared.waits.progress_every(delivered);
    let (outcome, ack, published) = tokio::select! {
        done = with_progress(message, every, work) => done,
        _ = shared.hand_back.cancelled() => {
            let handed = message.ack_with(AckKind::Nak(None)).await;
            match handed {
                Ok(()) => tracing::warn!(
                    "unfinished at the end of the grace period: handed back (nak) for another \
                     executor"
                ),
                Err(e) => tracing::warn!(
                    "unfinished at the end of the grace period and not handed back ({e}); it \
                     is delivered again after the ack wait"
                ),
            }
            return;
        }
    };
    log_outcome(&outcome);
    if let Err(e) = published {
        tracing::error!(
            "{e}; the delivery is left unacknowledged and will be delivered again once NATS \
             answers"
        );
        return;
    }
    acknowledge(message, ack).await;
}

/// A delivery that is not an action: report it as failed (never retried) and drop it.
async fn malformed(
    shared: &Shared,
    message: &jetstream::Message,
    subject: &str,
    delivered: i64,
    action_id: String,
    error: crate::bus::BusError,
) {
    let out = OutcomeMessage {
        at: chrono::Utc::now(),
        target: ObjKey::new("", "", ""),
        app: settle::app_of_subject(subject),
        outcome: OutcomeRecord {
            action_id,
            result: OutcomeResult::Failed,
            message: format!(
                "{error} (received on {subject}); nothing was applied and it will not be \
                 delivered again"
            ),
            executor: shared.config.name.clone(),
            attempt: u32::try_from(delivered.max(1)).unwrap_or(u32::MAX),
            resource_version: None,
            retry: false,
        },
    };
    let reply = settle::outcome_subject_for(subject);
    let published = with_progress(
        message,
        shared.waits.progress_every(delivered),
        publish(&shared.js, &out, Some(reply), &shared.config.keys.signing),
    )
    .await;
    log_outcome(&out.outcome);
    shared.telemetry.metrics.malformed();
    match published {
        Ok(()) => acknowledge(message, Ack::Term).await,
        Err(e) => tracing::error!(
            "{e}; the malformed message is left unacknowledged and will be delivered again"
        ),
    }
}

fn log_outcome(o: &OutcomeRecord) {
    match o.result {
        OutcomeResult::Applied | OutcomeResult::NoOp | OutcomeResult::Superseded => {
            tracing::info!(result = ?o.result, rv = ?o.resource_version, "{}", o.message)
        }
        _ => tracing::warn!(result = ?o.result, retry = o.retry, "{}", o.message),
    }
}

/// Runs `work`, telling JetStream `every` so often that the delivery is still being handled,
/// so a slow apply is not delivered to another executor in parallel.
async fn with_progress<F: std::future::Future>(
    message: &jetstream::Message,
    every: Duration,
    work: F,
) -> F::Output {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!("cannot report progress: {e}");
                }
            }
        }
    }
}

/// Publishes an outcome and waits for JetStream to store it; a few attempts, then an error.
async fn publish(
    js: &jetstream::Context,
    out: &OutcomeMessage,
    subject: Option<String>,
    key: &SigningKey,
) -> Result<(), String> {
    let (default_subject, mut headers, payload) = out
        .encode()
        .map_err(|e| format!("cannot encode the outcome: {e}"))?;
    headers.insert(SIGNATURE_HEADER, key.sign(&payload).as_str());
    let subject = subject.unwrap_or(default_subject);
    let mut last = String::new();
    for attempt in 1..=PUBLISH_ATTEMPTS {
        let sent = js
            .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
            .await;
        match sent {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        if attempt < PUBLISH_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    Err(format!(
        "cannot publish the outcome to {subject} after {PUBLISH_ATTEMPTS} attempts: {last} \
         (is NATS reachable?)"
    ))
}

/// Ends the delivery; acks are confirmed by the server so an exiting executor knows they
/// landed.
async fn acknowledge(message: &jetstream::Message, ack: Ack) {
    let sent = match ack {
        Ack::Ack => message.double_ack().await,
        Ack::Term => message.double_ack_with(AckKind::Term).await,
        Ack::Nak(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
    };
    if let Err(e) = sent {
        tracing::warn!(
            ?ack,
            "the acknowledgement was not confirmed ({e}); the action may be delivered again \
             and will then be found already applied"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_comes_well_within_the_wait_the_server_applies() {
        let waits = AckWaits {
            ack_wait: Duration::from_secs(30),
            backoff: vec![Duration::from_millis(300), Duration::from_secs(3)],
        };
        assert_eq!(waits.progress_every(1), Duration::from_millis(100));
        assert_eq!(waits.progress_every(2), Duration::from_secs(1));
        assert_eq!(waits.progress_every(9), Duration::from_secs(1));
        let plain = AckWaits {
            ack_wait: Duration::from_secs(30),
            backoff: vec![],
        };
        assert_eq!(plain.progress_every(1), Duration::from_secs(10));
        let tiny = AckWaits {
            ack_wait: Duration::from_millis(30),
            backoff: vec![],
        };
        assert_eq!(tiny.progress_every(1), Duration::from_millis(50));
    }
}
