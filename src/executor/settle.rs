//! How a delivery ends: the outcome reported for an attempt and the acknowledgement sent after.
//! Pure rules (delivery count, max deliveries, backoff); no I/O.

use super::apply::Attempt;
use crate::bus::Topology;
use crate::record::{OutcomeRecord, OutcomeResult};
use std::time::Duration;

/// The acknowledgement that ends a delivery (sent only once the outcome is published).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Done: never deliver it again.
    Ack,
    /// Deliver it again after this delay.
    Nak(Duration),
    /// Never deliver it again, recorded by the server as terminated (abandoned, malformed).
    Term,
}

/// The redelivery delay after delivery number `delivered` (1-based), from the backoff list
/// (the last step repeats; one second without a list).
pub fn backoff(topology: &Topology, delivered: i64) -> Duration {
    let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
    topology
        .backoff
        .get(i)
        .or(topology.backoff.last())
        .copied()
        .unwrap_or(Duration::from_secs(1))
}

/// The outcome of delivery number `delivered` of `action_id` and how to acknowledge it:
/// final results are acked; retryable ones are nak'ed with a backoff delay, or abandoned (and
/// terminated) on the last allowed delivery.
pub fn settle(
    action_id: &str,
    executor: &str,
    delivered: i64,
    attempt: Attempt,
    topology: &Topology,
) -> (OutcomeRecord, Ack) {
    let max = topology.max_deliver.max(2);
    let attempt_no = u32::try_from(delivered.max(1)).unwrap_or(u32::MAX);
    let record = |result, message, retry| OutcomeRecord {
        action_id: action_id.to_string(),
        result,
        message,
        executor: executor.to_string(),
        attempt: attempt_no,
        resource_version: attempt.resource_version.clone(),
        retry,
    };
    if !attempt.retry {
        return (
            record(attempt.result, attempt.message.clone(), false),
            Ack::Ack,
        );
    }
    if delivered >= max {
        let result = serde_json::to_value(attempt.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", attempt.result));
        return (
            record(
                OutcomeResult::Abandoned,
                format!(
                    "abandoned after {delivered} deliveries (the most allowed, \
                     --max-deliver {max}); last attempt: {result}: {}",
                    attempt.message
                ),
                false,
            ),
            Ack::Term,
        );
    }
    let delay = backoff(topology, delivered);
    (
        record(attempt.result, attempt.message.clone(), true),
        Ack::Nak(delay),
    )
}

/// The outcome subject answering an action subject: `logbook.actions.<ns>.<app>` becomes
/// `logbook.outcomes.<ns>.<app>` (anything else: `logbook.outcomes._._`).
pub fn outcome_subject_for(action_subject: &str) -> String {
    match action_subject.strip_prefix("logbook.actions.") {
        Some(rest) if rest.split('.').count() == 2 && rest.split('.').all(|t| !t.is_empty()) => {
            format!("logbook.outcomes.{rest}")
        }
        _ => "logbook.outcomes._._".to_string(),
    }
}

/// The Application (`namespace/name`) an action subject names, when it names one.
pub fn app_of_subject(action_subject: &str) -> Option<String> {
    let rest = action_subject.strip_prefix("logbook.actions.")?;
    let (ns, app) = rest.split_once('.')?;
    if ns == "_" || app == "_" || app.contains('.') {
        return None;
    }
    Some(format!("{}/{}", unescape(ns)?, unescape(app)?))
}

/// Reverses [`crate::bus::token`]'s `%XX` escapes.
fn unescape(token: &str) -> Option<String> {
    let b = token.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(result: OutcomeResult, retry: bool) -> Attempt {
        Attempt {
            result,
            message: "m".into(),
            resource_version: Some("5".into()),
            retry,
        }
    }

    #[test]
    fn final_results_are_acked_and_retryable_ones_nakked_then_abandoned() {
        let t = Topology::default(); // max_deliver 5, backoff 250ms, 1s, 3s, 10s
        let (o, ack) = settle("a", "e", 1, attempt(OutcomeResult::Applied, false), &t);
        assert_eq!(
            (o.result, o.retry, o.attempt, ack),
            (OutcomeResult::Applied, false, 1, Ack::Ack)
        );
        assert_eq!(o.resource_version.as_deref(), Some("5"));
        let (o, ack) = settle("a", "e", 2, attempt(OutcomeResult::Conflict, true), &t);
        assert_eq!(
            (o.result, o.retry, ack),
            (
                OutcomeResult::Conflict,
                true,
                Ack::Nak(Duration::from_secs(1))
            )
        );
        let (o, ack) = settle("a", "e", 4, attempt(OutcomeResult::Failed, true), &t);
        assert_eq!(
            (o.result, o.retry, ack),
            (
                OutcomeResult::Failed,
                true,
                Ack::Nak(Duration::from_secs(10))
            )
        );
        let (o, ack) = settle("a", "e", 5, attempt(OutcomeResult::Failed, true), &t);
        assert_eq!(
            (o.result, o.retry, ack),
            (OutcomeResult::Abandoned, false, Ack::Term)
        );
        assert!(o.message.contains("after 5 deliveries"), "{}", o.message);
        assert!(o.message.contains("failed: m"), "{}", o.message);
        let (o, ack) = settle("a", "e", 7, attempt(OutcomeResult::Failed, false), &t);
        assert_eq!(
            (o.result, ack),
            (OutcomeResult::Failed, Ack::Ack),
            "final stays final"
        );
    }

    #[test]
    fn backoff_repeats_its_last_step() {
        let t = Topology::default();
        assert_eq!(backoff(&t, 1), Duration::from_millis(250));
        assert_eq!(backoff(&t, 9), Duration::from_secs(10));
        let none = Topology {
            backoff: vec![],
            ..Topology::default()
        };
        assert_eq!(backoff(&none, 3), Duration::from_secs(1));
    }

    #[test]
    fn malformed_messages_answer_on_their_application_subject() {
        assert_eq!(
            outcome_subject_for("logbook.actions.shop.web"),
            "logbook.outcomes.shop.web"
        );
        assert_eq!(outcome_subject_for("elsewhere"), "logbook.outcomes._._");
        assert_eq!(
            app_of_subject("logbook.actions.shop.web").as_deref(),
            Some("shop/web")
        );
        assert_eq!(
            app_of_subject("logbook.actions.a%2Eb.web").as_deref(),
            Some("a.b/web")
        );
        assert_eq!(app_of_subject("logbook.actions.shop._"), None);
        assert_eq!(app_of_subject("logbook.actions.shop.%ZZ"), None);
    }
}
