//! The metrics of each logbook process, as prometheus-client families in one registry per
//! process (prefix `logbook_`), rendered by the admin server's `/metrics`.
//!
//! Each struct only counts what it is told; the processes call it at the one place where the
//! thing counted happens (an entry appended, a range published, a delivery handled).
//!
//! | metric | type | labels | process |
//! |---|---|---|---|
//! | `logbook_entries_appended_total` | counter | `kind` | controller |
//! | `logbook_plans_total` | counter | | controller |
//! | `logbook_actions_total` | counter | `verb` | controller |
//! | `logbook_outcomes_total` | counter | `result` | controller |
//! | `logbook_last_committed_seq` | gauge | | controller |
//! | `logbook_last_published_seq` | gauge | | controller |
//! | `logbook_publish_lag_entries` | gauge | | controller |
//! | `logbook_markers_total` | counter | `marker` | controller |
//! | `logbook_log_verified_seq` | gauge | | controller |
//! | `logbook_log_verify_failures_total` | counter | | controller |
//! | `logbook_apply_duration_seconds` | histogram | `verb`, `result` | executor |
//! | `logbook_actions_handled_total` | counter | `verb`, `result` | executor |
//! | `logbook_redeliveries_total` | counter | | executor |
//! | `logbook_in_flight` | gauge | | executor |
//! | `logbook_queue_depth` | gauge | | both |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;

/// The prefix of every metric name.
pub const PREFIX: &str = "logbook";

const QUEUE_DEPTH_HELP: &str = "Messages waiting in the JetStream consumer this process reads \
    (pending plus delivered and not yet acknowledged), refreshed every few seconds";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MarkerLabel {
    marker: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabel {
    verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbResultLabels {
    verb: &'static str,
    result: &'static str,
}

/// The controller's metrics.
#[derive(Debug)]
pub struct ControllerMetrics {
    registry: Arc<Registry>,
    entries_appended: Family<KindLabel, Counter>,
    plans: Counter,
    actions: Family<VerbLabel, Counter>,
    outcomes: Family<ResultLabel, Counter>,
    last_committed: Gauge,
    last_published: Gauge,
    publish_lag: Gauge,
    queue_depth: Gauge,
    markers: Family<MarkerLabel, Counter>,
    verified_seq: Gauge,
    verify_failures: Counter,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerMetrics {
    /// Every family registered, all at zero.
    pub fn new() -> ControllerMetrics {
        let mut r = Registry::with_prefix(PREFIX);
        let m = ControllerMetrics {
            registry: Arc::new(Registry::default()),
            entries_appended: Family::default(),
            plans: Counter::default(),
            actions: Family::default(),
            outcomes: Family::default(),
            last_committed: Gauge::default(),
            last_published: Gauge::default(),
            publish_lag: Gauge::default(),
            queue_depth: Gauge::default(),
            markers: Family::default(),
            verified_seq: Gauge::default(),
            verify_failures: Counter::default(),
        };
        r.register(
            "entries_appended",
            "Entries appended to the log (new ones; duplicates are not counted), by kind",
            m.entries_appended.clone(),
        );
        r.register("plans", "Plans recorded", m.plans.clone());
        r.register(
            "actions",
            "Actions planned and recorded, by verb",
            m.actions.clone(),
        );
        r.register(
            "outcomes",
            "Outcomes recorded in the log, by result",
            m.outcomes.clone(),
        );
        r.register(
            "last_committed_seq",
            "Sequence number of the last entry committed to the log",
            m.last_committed.clone(),
        );
        r.register(
            "last_published_seq",
            "Sequence number up to which the outbox has published the log to NATS",
            m.last_published.clone(),
        );
        r.register(
            "publish_lag_entries",
            "Entries committed but not yet published (last committed minus last published seq)",
            m.publish_lag.clone(),
        );
        r.register("queue_depth", QUEUE_DEPTH_HELP, m.queue_depth.clone());
        r.register(
            "markers",
            "Markers recorded in the log, by marker (redrive: an action published again for \
             want of an answer; refused: a bus message not recorded)",
            m.markers.clone(),
        );
        r.register(
            "log_verified_seq",
            "Sequence number up to which the log's hash chain was last found intact (at start \
             and every --verify-every)",
            m.verified_seq.clone(),
        );
        r.register(
            "log_verify_failures",
            "Verifications of the log's hash chain that found an entry edited, removed or moved",
            m.verify_failures.clone(),
        );
        ControllerMetrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// The registry to serve.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// A new entry of `kind` is in the log.
    pub fn entry_appended(&self, kind: &'static str) {
        self.entries_appended
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// A plan was recorded.
    pub fn plan_recorded(&self) {
        self.plans.inc();
    }

    /// An action with `verb` was recorded.
    pub fn action_recorded(&self, verb: &'static str) {
        self.actions.get_or_create(&VerbLabel { verb }).inc();
    }

    /// An outcome with `result` was recorded.
    pub fn outcome_recorded(&self, result: &'static str) {
        self.outcomes.get_or_create(&ResultLabel { result }).inc();
    }

    /// A marker of this kind was recorded.
    pub fn marker_recorded(&self, marker: &'static str) {
        self.markers.get_or_create(&MarkerLabel { marker }).inc();
    }

    /// The hash chain was found intact up to `seq`.
    pub fn log_verified(&self, seq: u64) {
        self.verified_seq.set(gauge_value(seq));
    }

    /// A verification of the hash chain found damage.
    pub fn log_verify_failed(&self) {
        self.verify_failures.inc();
    }

    /// Where the log and the outbox are.
    pub fn sequences(&self, committed: u64, published: u64) {
        self.last_committed.set(gauge_value(committed));
        self.last_published.set(gauge_value(published));
        self.publish_lag
            .set(gauge_value(committed.saturating_sub(published)));
    }
}

/// Messages waiting in the outcome consumer.
impl super::QueueDepth for ControllerMetrics {
    fn queue_depth(&self, depth: u64) {
        self.queue_depth.set(gauge_value(depth));
    }
}

/// The executor's metrics.
#[derive(Debug)]
pub struct ExecutorMetrics {
    registry: Arc<Registry>,
    apply_duration: Family<VerbResultLabels, Histogram, fn() -> Histogram>,
    handled: Family<VerbResultLabels, Counter>,
    redeliveries: Counter,
    in_flight: Gauge,
    queue_depth: Gauge,
}

impl Default for ExecutorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Bucket bounds of the apply latency, in seconds: 5 ms to 30 s.
pub const APPLY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn apply_histogram() -> Histogram {
    Histogram::new(APPLY_BUCKETS)
}

impl ExecutorMetrics {
    /// Every family registered, all at zero.
    pub fn new() -> ExecutorMetrics {
        let mut r = Registry::with_prefix(PREFIX);
        let apply_duration: Family<VerbResultLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(apply_histogram);
        let m = ExecutorMetrics {
            registry: Arc::new(Registry::default()),
            apply_duration,
            handled: Family::default(),
            redeliveries: Counter::default(),
            in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
        };
        r.register_with_unit(
            "apply_duration",
            "Time to apply one action to the cluster (read, write or skip), by verb and result",
            Unit::Seconds,
            m.apply_duration.clone(),
        );
        r.register(
            "actions_handled",
            "Deliveries handled to an outcome, by verb and result (malformed messages: verb \
             `unknown`)",
            m.handled.clone(),
        );
        r.register(
            "redeliveries",
            "Deliveries of an action that had been delivered before (delivery count above 1)",
            m.redeliveries.clone(),
        );
        r.register(
            "in_flight",
            "Deliveries being handled right now",
            m.in_flight.clone(),
        );
        r.register("queue_depth", QUEUE_DEPTH_HELP, m.queue_depth.clone());
        ExecutorMetrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// The registry to serve.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// A delivery is taken (delivery number `delivered`, 1 for the first); the returned guard
    /// counts it in flight until dropped.
    pub fn delivery_started(&self, delivered: i64) -> InFlight {
        if delivered > 1 {
            self.redeliveries.inc();
        }
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// An action with `verb` was applied in `took`, ending in `result`.
    pub fn applied(&self, verb: &'static str, result: &'static str, took: Duration) {
        let labels = VerbResultLabels { verb, result };
        self.apply_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.handled.get_or_create(&labels).inc();
    }

    /// A delivery that was not an action was answered (`failed`).
    pub fn malformed(&self) {
        self.handled
            .get_or_create(&VerbResultLabels {
                verb: "unknown",
                result: "failed",
            })
            .inc();
    }
}

/// Messages waiting in the executors' consumer.
impl super::QueueDepth for ExecutorMetrics {
    fn queue_depth(&self, depth: u64) {
        self.queue_depth.set(gauge_value(depth));
    }
}

/// Counts a delivery in flight until dropped (however its handling ends).
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::QueueDepth;

    fn render(r: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, r).unwrap();
        s
    }

    #[test]
    fn controller_families_are_all_there_and_count() {
        let m = ControllerMetrics::new();
        m.entry_appended("event");
        m.entry_appended("plan");
        m.plan_recorded();
        m.action_recorded("create");
        m.action_recorded("create");
        m.outcome_recorded("applied");
        m.marker_recorded("redrive");
        m.log_verified(9);
        m.sequences(10, 7);
        m.queue_depth(4);
        let text = render(&m.registry());
        for family in [
            "# TYPE logbook_entries_appended counter",
            "# TYPE logbook_plans counter",
            "# TYPE logbook_actions counter",
            "# TYPE logbook_outcomes counter",
            "# TYPE logbook_last_committed_seq gauge",
            "# TYPE logbook_last_published_seq gauge",
            "# TYPE logbook_publish_lag_entries gauge",
            "# TYPE logbook_queue_depth gauge",
            "# TYPE logbook_markers counter",
            "# TYPE logbook_log_verified_seq gauge",
            "# TYPE logbook_log_verify_failures counter",
        ] {
            assert!(text.contains(family), "{family} missing:\n{text}");
        }
        for sample in [
            "logbook_entries_appended_total{kind=\"event\"} 1",
            "logbook_plans_total 1",
            "logbook_actions_total{verb=\"create\"} 2",
            "logbook_outcomes_total{result=\"applied\"} 1",
            "logbook_markers_total{marker=\"redrive\"} 1",
            "logbook_log_verified_seq 9",
            "logbook_log_verify_failures_total 0",
            "logbook_last_committed_seq 10",
            "logbook_last_published_seq 7",
            "logbook_publish_lag_entries 3",
            "logbook_queue_depth 4",
        ] {
            assert!(text.contains(sample), "{sample} missing:\n{text}");
        }
    }

    #[test]
    fn executor_families_are_all_there_and_count() {
        let m = ExecutorMetrics::new();
        {
            let _first = m.delivery_started(1);
            let _again = m.delivery_started(3);
            let text = render(&m.registry());
            assert!(text.contains("logbook_in_flight 2"), "{text}");
            m.applied("create", "applied", Duration::from_millis(30));
            m.applied("create", "applied", Duration::from_millis(70));
        }
        m.malformed();
        let text = render(&m.registry());
        for sample in [
            "# TYPE logbook_apply_duration_seconds histogram",
            "# UNIT logbook_apply_duration_seconds seconds",
            "logbook_apply_duration_seconds_count{verb=\"create\",result=\"applied\"} 2",
            "logbook_apply_duration_seconds_bucket{le=\"0.05\",verb=\"create\",result=\"applied\"} 1",
            "logbook_actions_handled_total{verb=\"create\",result=\"applied\"} 2",
            "logbook_actions_handled_total{verb=\"unknown\",result=\"failed\"} 1",
            "logbook_redeliveries_total 1",
            "logbook_in_flight 0",
            "# TYPE logbook_queue_depth gauge",
        ] {
            assert!(text.contains(sample), "{sample} missing:\n{text}");
        }
    }
}
