//! The outcome intake: pulls what executors reported, has the core commit it, then acks it;
//! and records as abandoned the actions NATS gave up on with no executor answering.
//!
//! An outcome is acked only after it is in the log, so a crash in between redelivers it and the
//! log keeps it once (its entry id is derived from its content).

use super::core::{Input, Refusal};
use crate::bus::sign::{CONTROLLER, SIGNATURE_HEADER, TrustedKeys};
use crate::bus::{self, wire::OutcomeMessage};
use async_nats::jetstream::{AckKind, Context};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The largest outcome message recorded; a larger one is refused unread.
pub const MAX_OUTCOME_BYTES: usize = 64 * 1024;

/// Pulls outcomes until `shutdown`; only those signed by a trusted executor key reach the core.
pub async fn run(
    js: Context,
    tx: Sender<Input>,
    trusted: Arc<TrustedKeys>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        if let Err(e) = pull(&js, &tx, &trusted, &shutdown).await {
            failures += 1;
            let wait = super::retry_pause(failures);
            tracing::warn!(error = %e, retry_in = ?wait, "reading outcomes interrupted");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        } else {
            failures = 0;
        }
    }
}

async fn pull(
    js: &Context,
    tx: &Sender<Input>,
    trusted: &TrustedKeys,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let consumer = bus::controller_consumer(js)
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = messages.next() => m,
        };
        let Some(first) = first else {
            return Err("the outcome stream ended".to_string());
        };
        let mut batch = vec![first.map_err(|e| e.to_string())?];
        // Take what is already there, to commit many outcomes in one transaction.
        while batch.len() < 256 {
            match tokio::time::timeout(Duration::from_millis(1), messages.next()).await {
                Ok(Some(Ok(m))) => batch.push(m),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(None) | Err(_) => break,
            }
        }
        let mut outcomes = Vec::new();
        let mut good = Vec::new();
        for m in batch {
            if let Err(reason) = admissible(trusted, &m) {
                let refusal = Refusal::new("outcome", reason, &m.subject, &m.payload);
                if tx.send(Input::Refused(refusal)).is_err() {
                    return Ok(()); // the core has stopped; it is delivered again later
                }
                let _ = m.ack_with(AckKind::Term).await;
                continue;
            }
            match OutcomeMessage::decode(&m.payload) {
                Ok(o) => {
                    outcomes.push(o);
                    good.push(m);
                }
                Err(e) => {
                    let msg_id = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(bus::wire::MSG_ID))
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default();
                    tracing::warn!(subject = %m.subject, %msg_id, error = %e, "a malformed outcome was dropped");
                    let _ = m.ack_with(AckKind::Term).await;
                }
            }
        }
        if outcomes.is_empty() {
            continue;
        }
        let (reply, committed) = tokio::sync::oneshot::channel();
        if tx.send(Input::Outcomes(outcomes, reply)).is_err() {
            return Ok(()); // the core has stopped; unacked outcomes are redelivered later
        }
        match committed.await {
            Ok(Ok(())) => {
                for m in good {
                    let _ = m.ack().await;
                }
            }
            Ok(Err(e)) => return Err(format!("outcomes not committed: {e}")),
            Err(_) => return Ok(()),
        }
    }
}

/// Why an outcome message is not to be read, if it is not: too large, or not signed by a
/// trusted executor key (the controller's own key signs actions, never outcomes).
fn admissible(trusted: &TrustedKeys, m: &async_nats::jetstream::Message) -> Result<(), String> {
    if m.payload.len() > MAX_OUTCOME_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_OUTCOME_BYTES} an outcome may have",
            m.payload.len()
        ));
    }
    let header = m
        .headers
        .as_ref()
        .and_then(|h| h.get(SIGNATURE_HEADER))
        .map(|v| v.as_str());
    trusted
        .verify(header, &m.payload, |name| name != CONTROLLER)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What NATS says when an action ran out of deliveries with no executor answering it.
#[derive(serde::Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// Records an `abandoned` outcome for every action NATS gave up on without any executor
/// answering (each delivery's executor crashed or timed out), so it does not stay pending
/// forever. It listens to JetStream's max-deliveries advisory; one sent while the controller
/// is down is missed (the action then stays pending until a later plan replaces it).
pub async fn abandoned(js: Context, tx: Sender<Input>, shutdown: CancellationToken) {
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
        bus::ACTIONS_STREAM,
        bus::EXECUTORS_CONSUMER
    );
    let mut sub = match js.client().subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%subject, error = %e, "cannot listen for abandoned actions");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = sub.next() => m,
        };
        let Some(msg) = msg else { return };
        if let Err(e) = record_abandoned(&js, &tx, &msg.payload).await {
            tracing::warn!(error = %e, "an action NATS gave up on could not be recorded");
        }
    }
}

async fn record_abandoned(js: &Context, tx: &Sender<Input>, advisory: &[u8]) -> Result<(), String> {
    let adv: MaxDeliveries = serde_json::from_slice(advisory)
        .map_err(|e| format!("not a max-deliveries advisory: {e}"))?;
    let stream = js
        .get_stream(bus::ACTIONS_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let raw = stream
        .get_raw_message(adv.stream_seq)
        .await
        .map_err(|e| format!("action message {}: {e}", adv.stream_seq))?;
    let Ok(action) = bus::wire::ActionMessage::decode(&raw.payload) else {
        return Ok(()); // malformed: the executors answered it already
    };
    // Every line about this action from here on carries its id.
    let span = tracing::error_span!("action", action_id = %action.action.id);
    let recorded = record_abandoned_action(tx, &stream, adv, action)
        .instrument(span.clone())
        .await;
    if let Err(e) = &recorded {
        span.in_scope(|| tracing::warn!(error = %e, "the abandoned action could not be recorded"));
    }
    Ok(())
}

async fn record_abandoned_action(
    tx: &Sender<Input>,
    stream: &async_nats::jetstream::stream::Stream,
    adv: MaxDeliveries,
    action: bus::wire::ActionMessage,
) -> Result<(), String> {
    let outcome = OutcomeMessage {
        at: chrono::Utc::now(),
        target: action.action.target.clone(),
        app: action.action.app.clone(),
        outcome: crate::record::OutcomeRecord {
            action_id: action.action.id.clone(),
            result: crate::record::OutcomeResult::Abandoned,
            message: format!(
                "abandoned by NATS after {} deliveries with no answer (the executors that \
                 took it crashed or ran out of --ack-wait each time)",
                adv.deliveries
            ),
            executor: "nats".to_string(),
            attempt: u32::try_from(adv.deliveries).unwrap_or(u32::MAX),
            resource_version: None,
            retry: false,
        },
    };
    let (reply, committed) = tokio::sync::oneshot::channel();
    tx.send(Input::Outcomes(vec![outcome], reply))
        .map_err(|_| "the core has stopped".to_string())?;
    committed
        .await
        .map_err(|_| "the core has stopped".to_string())??;
    tracing::warn!(
        deliveries = adv.deliveries,
        "recorded as abandoned: NATS gave up on it with no executor answering"
    );
    // Out of the work queue: nobody will take it any more.
    let _ = stream.delete_message(adv.stream_seq).await;
    Ok(())
}
