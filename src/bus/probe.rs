//! Watching the bus from the side, for health and metrics: whether the connection is up, and
//! how many messages wait in a consumer. Reports only; decides nothing.

use async_nats::connection::State;
use async_nats::jetstream::Context;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the connection state is looked at.
const STATE_EVERY: Duration = Duration::from_millis(250);
/// How long one consumer-info request may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(3);

/// What [`watch_consumer`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The connection went up (`true`) or down (`false`); also reported once at the start.
    Connected(bool),
    /// Messages waiting in the consumer: not yet delivered plus delivered and not yet
    /// acknowledged.
    Depth(u64),
}

/// Reports the connection state of `js` whenever it changes, and the depth of `consumer` on
/// `stream` every `depth_every` while connected (and at once after each reconnection), until
/// `shutdown`.
pub async fn watch_consumer(
    js: Context,
    stream: &'static str,
    consumer: &'static str,
    depth_every: Duration,
    shutdown: CancellationToken,
    mut report: impl FnMut(Probe),
) {
    let client = js.client();
    let mut tick = tokio::time::interval(STATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_connected = None;
    let mut next_depth = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let connected = client.connection_state() == State::Connected;
        if was_connected != Some(connected) {
            report(Probe::Connected(connected));
            if connected {
                next_depth = tokio::time::Instant::now();
            }
            was_connected = Some(connected);
        }
        if !connected || tokio::time::Instant::now() < next_depth {
            continue;
        }
        next_depth = tokio::time::Instant::now() + depth_every;
        match tokio::time::timeout(INFO_TIMEOUT, depth(&js, stream, consumer)).await {
            Ok(Ok(d)) => report(Probe::Depth(d)),
            Ok(Err(e)) => {
                tracing::debug!(stream, consumer, error = %e, "cannot read the consumer's depth")
            }
            Err(_) => tracing::debug!(
                stream,
                consumer,
                "reading the consumer's depth took longer than {INFO_TIMEOUT:?}"
            ),
        }
    }
}

async fn depth(js: &Context, stream: &str, consumer: &str) -> Result<u64, String> {
    let s = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| e.to_string())?;
    let info = s.consumer_info(consumer).await.map_err(|e| e.to_string())?;
    Ok(info
        .num_pending
        .saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX)))
}
