//! The wire format: JSON messages, one per log entry, with `Nats-Msg-Id` set to the entry id.
//!
//! Actions travel as [`ActionMessage`] (what an executor needs to apply one), every other
//! entry the controller publishes as [`EntryMessage`]; executors answer with
//! [`OutcomeMessage`], whose entry id is derived from its content so a redelivered outcome is
//! recorded once.

use super::{BusError, subjects};
use crate::record::{Action, Body, Entry, Keys, NewEntry, ObjKey, OutcomeRecord, entry_uuid, view};
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The header JetStream deduplicates by.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// An action, as the executors receive it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionMessage {
    /// The id of the action's log entry (also its `Nats-Msg-Id`).
    pub entry_id: Uuid,
    /// The action entry's place in the log.
    pub seq: u64,
    /// The sequence of the plan that produced it: the fencing token stamped on the object.
    pub plan_seq: u64,
    /// When it was planned.
    pub at: DateTime<Utc>,
    /// What to do.
    pub action: Action,
}

/// Any other entry the controller publishes (events, plans, markers), for subscribers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryMessage {
    /// The entry's id.
    pub id: Uuid,
    /// Its place in the log.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `event`, `plan`, `action`, `outcome` or `marker`.
    pub kind: String,
    /// The keys audits search by.
    pub keys: Keys,
    /// The record, as JSON (embedded objects as JSON values).
    pub body: serde_json::Value,
}

/// What an executor reports for one delivery of an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeMessage {
    /// When the executor reported it (part of the entry id: a re-sent message is recognised).
    pub at: DateTime<Utc>,
    /// The action's target (empty fields when the action could not be read).
    pub target: ObjKey,
    /// The action's Application (`namespace/name`), when it has one.
    #[serde(default)]
    pub app: Option<String>,
    /// The outcome.
    pub outcome: OutcomeRecord,
}

impl OutcomeMessage {
    /// The log entry this outcome becomes; its id is derived from the message's content.
    pub fn to_entry(&self) -> Result<NewEntry, BusError> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| BusError::Wire(format!("cannot encode an outcome: {e}")))?;
        let id = entry_uuid(self.at, "outcome", &bytes);
        let keys = Keys::for_object(&self.target, self.app.as_deref());
        Ok(NewEntry::outcome(id, self.at, keys, self.outcome.clone()))
    }

    /// Encodes the message: subject, headers (with `Nats-Msg-Id`) and payload.
    pub fn encode(&self) -> Result<(String, HeaderMap, Bytes), BusError> {
        let id = self.to_entry()?.id;
        let payload = serde_json::to_vec(self)
            .map_err(|e| BusError::Wire(format!("cannot encode an outcome: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID, id.to_string().as_str());
        Ok((
            subjects::outcome_subject(&self.target, self.app.as_deref()),
            headers,
            Bytes::from(payload),
        ))
    }

    /// Decodes a message published by an executor.
    pub fn decode(payload: &[u8]) -> Result<OutcomeMessage, BusError> {
        serde_json::from_slice(payload)
            .map_err(|e| BusError::Wire(format!("not an outcome message: {e}")))
    }
}

impl ActionMessage {
    /// Decodes a message from the actions stream, saying what is wrong when it is not one.
    pub fn decode(payload: &[u8]) -> Result<ActionMessage, BusError> {
        serde_json::from_slice(payload).map_err(|e| {
            BusError::Wire(format!(
                "malformed action message: {e} (expected the JSON of an action as the \
                 controller publishes it)"
            ))
        })
    }
}

/// Encodes a log entry for the outbox: subject, headers (with `Nats-Msg-Id` = entry id) and
/// payload.
pub fn encode_entry(entry: &Entry) -> Result<(String, HeaderMap, Bytes), BusError> {
    let payload = match &entry.body {
        Body::Action(a) => {
            let action = a.action.to_action().map_err(|e| {
                BusError::Wire(format!(
                    "entry {} holds an action whose object is not JSON: {e}",
                    entry.seq
                ))
            })?;
            serde_json::to_vec(&ActionMessage {
                entry_id: entry.id,
                seq: entry.seq,
                plan_seq: a.plan_seq,
                at: entry.at,
                action,
            })
        }
        body => serde_json::to_vec(&EntryMessage {
            id: entry.id,
            seq: entry.seq,
            at: entry.at,
            kind: body.kind().to_string(),
            keys: entry.keys.clone(),
            body: view::body_json(body).map_err(BusError::Wire)?,
        }),
    }
    .map_err(|e| BusError::Wire(format!("cannot encode entry {}: {e}", entry.seq)))?;
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, entry.id.to_string().as_str());
    Ok((
        subjects::entry_subject(entry),
        headers,
        Bytes::from(payload),
    ))
}
