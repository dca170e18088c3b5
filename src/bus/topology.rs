//! Streams and consumers, created or brought up to date at start with explicit settings.
//!
//! | stream             | subjects                                        | retention  |
//! |--------------------|-------------------------------------------------|------------|
//! | `LOGBOOK_LOG`      | `logbook.events.>`, `.plans.>`, `.markers.>`    | limits     |
//! | `LOGBOOK_ACTIONS`  | `logbook.actions.>`                             | work queue |
//! | `LOGBOOK_OUTCOMES` | `logbook.outcomes.>`                            | work queue |
//!
//! All on file storage with a duplicate window, so a re-published entry (same `Nats-Msg-Id`)
//! is dropped. Executors share the durable pull consumer `executors` on the actions; the
//! controller reads outcomes through the durable pull consumer `controller`.

use super::BusError;
use async_nats::jetstream::{
    self, Context,
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use std::time::Duration;

/// The stream holding events, plans and markers (the log's mirror, for subscribers).
pub const LOG_STREAM: &str = "LOGBOOK_LOG";
/// The stream of actions (a work queue).
pub const ACTIONS_STREAM: &str = "LOGBOOK_ACTIONS";
/// The stream of outcomes (a work queue).
pub const OUTCOMES_STREAM: &str = "LOGBOOK_OUTCOMES";
/// The executors' shared durable consumer.
pub const EXECUTORS_CONSUMER: &str = "executors";
/// The controller's durable consumer of outcomes.
pub const CONTROLLER_CONSUMER: &str = "controller";

/// The settings of the streams and consumers.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// Window in which a message id is remembered and a re-publish dropped.
    pub duplicate_window: Duration,
    /// How long a delivered action may stay unacknowledged before it is delivered again
    /// (executors report progress while they work, so slow applies are not redelivered).
    pub ack_wait: Duration,
    /// Deliveries of one action before it is abandoned.
    pub max_deliver: i64,
    /// Delays before a retried action (a conflict, a transient failure) is delivered again,
    /// one per delivery (the last repeats); executors nak with them. An action whose executor
    /// died is delivered again after `ack_wait`.
    pub backoff: Vec<Duration>,
    /// How long the log stream keeps events, plans and markers (the SQLite log keeps them
    /// forever; the stream is for live subscribers).
    pub log_max_age: Duration,
    /// Stream replicas (1 for a single server, 3 on a cluster).
    pub replicas: usize,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            duplicate_window: Duration::from_secs(600),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            backoff: vec![
                Duration::from_millis(250),
                Duration::from_secs(1),
                Duration::from_secs(3),
                Duration::from_secs(10),
            ],
            log_max_age: Duration::from_secs(7 * 24 * 3600),
            replicas: 1,
        }
    }
}

impl Topology {
    fn stream(&self, name: &str, subjects: &[&str], retention: RetentionPolicy) -> stream::Config {
        stream::Config {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            retention,
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            duplicate_window: self.duplicate_window,
            max_age: if retention == RetentionPolicy::Limits {
                self.log_max_age
            } else {
                Duration::ZERO
            },
            num_replicas: self.replicas,
            description: Some(format!("logbook: {}", subjects.join(", "))),
            ..Default::default()
        }
    }

    /// The stream configurations, in creation order.
    pub fn streams(&self) -> Vec<stream::Config> {
        vec![
            self.stream(
                LOG_STREAM,
                &["logbook.events.>", "logbook.plans.>", "logbook.markers.>"],
                RetentionPolicy::Limits,
            ),
            self.stream(
                ACTIONS_STREAM,
                &["logbook.actions.>"],
                RetentionPolicy::WorkQueue,
            ),
            self.stream(
                OUTCOMES_STREAM,
                &["logbook.outcomes.>"],
                RetentionPolicy::WorkQueue,
            ),
        ]
    }

    /// The executors' consumer: explicit acks, bounded deliveries. No server-side backoff:
    /// with one the server would time the first delivery by its first step instead of
    /// `ack_wait`; retries are delayed by the executors' naks instead.
    pub fn executors_consumer(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(EXECUTORS_CONSUMER.to_string()),
            description: Some("logbook executors: apply actions".to_string()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver.max(2),
            max_ack_pending: 10_000,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// The controller's consumer of outcomes: explicit acks after the outcome is committed.
    pub fn controller_consumer(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(CONTROLLER_CONSUMER.to_string()),
            description: Some("logbook controller: record outcomes".to_string()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            // The same --ack-wait as the executors': how long outcomes a killed controller had
            // pulled but not committed wait before they are delivered again.
            ack_wait: self.ack_wait,
            max_deliver: -1,
            max_ack_pending: 10_000,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Creates the streams and consumers, or updates them to `topology` when they exist with other
/// settings. Returns the JetStream context.
pub async fn ensure_topology(
    client: async_nats::Client,
    topology: &Topology,
) -> Result<Context, BusError> {
    let js = jetstream::new(client);
    for config in topology.streams() {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|e| BusError::Setup {
                what: format!("stream {name}"),
                message: e.to_string(),
            })?;
    }
    for (stream, config) in [
        (ACTIONS_STREAM, topology.executors_consumer()),
        (OUTCOMES_STREAM, topology.controller_consumer()),
    ] {
        let name = config.durable_name.clone().unwrap_or_default();
        let what = || format!("consumer {name} on {stream}");
        let s = js.get_stream(stream).await.map_err(|e| BusError::Setup {
            what: what(),
            message: e.to_string(),
        })?;
        // Create, or update in place when the settings changed.
        if s.create_consumer(config.clone()).await.is_err() {
            s.update_consumer(config)
                .await
                .map_err(|e| BusError::Setup {
                    what: what(),
                    message: e.to_string(),
                })?;
        }
    }
    Ok(js)
}

/// The executors' consumer (after [`ensure_topology`]).
pub async fn executors_consumer(
    js: &Context,
) -> Result<jetstream::consumer::PullConsumer, BusError> {
    consumer(js, ACTIONS_STREAM, EXECUTORS_CONSUMER).await
}

/// The controller's outcome consumer (after [`ensure_topology`]).
pub async fn controller_consumer(
    js: &Context,
) -> Result<jetstream::consumer::PullConsumer, BusError> {
    consumer(js, OUTCOMES_STREAM, CONTROLLER_CONSUMER).await
}

async fn consumer(
    js: &Context,
    stream: &str,
    name: &str,
) -> Result<jetstream::consumer::PullConsumer, BusError> {
    js.get_consumer_from_stream(name, stream)
        .await
        .map_err(|e| BusError::Setup {
            what: format!("consumer {name} on {stream}"),
            message: e.to_string(),
        })
}
