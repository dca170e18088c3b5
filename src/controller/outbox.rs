//! The outbox: publishes every committed entry to JetStream once, in order, with
//! `Nats-Msg-Id` = the entry's id, and tells the core how far it got (a durable cursor).
//! Every action it publishes is signed with the controller's key (`Logbook-Signature`).
//!
//! After a crash it resumes from the cursor; what was published but not yet counted is sent
//! again and dropped by the server as a duplicate. Outcomes came from the bus and are not sent
//! back to it. A `redrive` marker also sends its action again, with the marker's id as
//! `Nats-Msg-Id` (a new message, so the server does not drop it as the action's duplicate).

use super::core::Input;
use crate::bus::sign::{SIGNATURE_HEADER, SigningKey};
use crate::bus::wire;
use crate::log::LogReader;
use crate::record::{Body, Redrive};
use async_nats::jetstream::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const CHUNK: u64 = 512;

/// Publishes from `published + 1` on, whenever the core commits more, until `shutdown` or until
/// the core has stopped and everything it committed is published. Returns how far it got.
pub async fn run(
    log_path: PathBuf,
    js: Context,
    key: Arc<SigningKey>,
    mut published: u64,
    mut committed: watch::Receiver<u64>,
    tx: Sender<Input>,
    shutdown: CancellationToken,
) -> u64 {
    let mut reader = None;
    let mut failures = 0u32;
    loop {
        let last = *committed.borrow_and_update();
        if published >= last {
            tokio::select! {
                _ = shutdown.cancelled() => return published,
                changed = committed.changed() => {
                    if changed.is_err() {
                        return published; // the core has stopped and everything it wrote was seen
                    }
                    continue;
                }
            }
        }
        let upto = last.min(published + CHUNK);
        let sent = tokio::select! {
            // Cut short at the end of the grace period (NATS may be away): this range goes
            // out again at the next start.
            _ = shutdown.cancelled() => return published,
            sent = publish_range(&log_path, &mut reader, &js, &key, published + 1, upto) => sent,
        };
        match sent {
            Ok(()) => {
                failures = 0;
                published = upto;
                let _ = tx.send(Input::Published(published));
            }
            Err(e) => {
                failures += 1;
                let wait = super::retry_pause(failures);
                tracing::warn!(from = published + 1, error = %e, retry_in = ?wait, "publishing the log is behind");
                tokio::select! {
                    _ = shutdown.cancelled() => return published,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

async fn publish_range(
    log_path: &std::path::Path,
    reader: &mut Option<LogReader>,
    js: &Context,
    key: &SigningKey,
    from: u64,
    to: u64,
) -> Result<(), String> {
    if reader.is_none() {
        *reader = Some(LogReader::open(log_path).map_err(|e| e.to_string())?);
    }
    let Some(r) = reader.as_ref() else {
        return Err("no reader".to_string());
    };
    let mut messages = Vec::new();
    for entry in r.range(from..=to) {
        let entry = entry.map_err(|e| e.to_string())?;
        if matches!(entry.body, Body::Outcome(_)) {
            continue;
        }
        let (subject, mut headers, payload) =
            wire::encode_entry(&entry).map_err(|e| e.to_string())?;
        if matches!(entry.body, Body::Action(_)) {
            headers.insert(SIGNATURE_HEADER, key.sign(&payload).as_str());
        }
        messages.push((subject, headers, payload));
        if let Body::Marker(m) = &entry.body
            && let Some(redrive) = Redrive::of(m)
        {
            let action = r
                .get(redrive.action_seq)
                .map_err(|e| e.to_string())?
                .filter(
                    |a| matches!(&a.body, Body::Action(rec) if rec.action.id == redrive.action_id),
                );
            let Some(action) = action else {
                // Only the core writes re-drives, naming an action it read from this log.
                tracing::warn!(
                    seq = entry.seq,
                    action_id = %redrive.action_id,
                    action_seq = redrive.action_seq,
                    "a re-drive names an action that is not at its seq; nothing sent again"
                );
                continue;
            };
            let (subject, mut headers, payload) =
                wire::encode_entry(&action).map_err(|e| e.to_string())?;
            headers.insert(wire::MSG_ID, entry.id.to_string().as_str());
            headers.insert(SIGNATURE_HEADER, key.sign(&payload).as_str());
            messages.push((subject, headers, payload));
        }
    }
    let mut acks = Vec::with_capacity(messages.len());
    for (subject, headers, payload) in messages {
        let ack = js
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|e| format!("{subject}: {e}"))?;
        acks.push((subject, ack));
    }
    for (subject, ack) in acks {
        ack.await.map_err(|e| format!("{subject}: {e}"))?;
    }
    Ok(())
}
