//! The outcome intake: pulls what executors reported, has the core commit it, then acks it.
//!
//! An outcome is acked only after it is in the log, so a crash in between redelivers it and the
//! log keeps it once (its entry id is derived from its content).

use super::core::Input;
use crate::bus::{self, wire::OutcomeMessage};
use async_nats::jetstream::{AckKind, Context};
use futures::StreamExt;
use std::sync::mpsc::Sender;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pulls outcomes until `shutdown`.
pub async fn run(js: Context, tx: Sender<Input>, shutdown: CancellationToken) {
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        if let Err(e) = pull(&js, &tx, &shutdown).await {
            failures += 1;
            let wait = Duration::from_millis((100 * 2u64.pow(failures.min(5))).min(3_000));
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
            match OutcomeMessage::decode(&m.payload) {
                Ok(o) => {
                    outcomes.push(o);
                    good.push(m);
                }
                Err(e) => {
                    tracing::warn!(subject = %m.subject, error = %e, "a malformed outcome was dropped");
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
