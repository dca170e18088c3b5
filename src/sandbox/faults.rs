//! Fault injection, reproducible from a seed: latency, error answers, short watches, pause;
//! and the node's: a Pod's processes killed, frozen, thawed.
//! Owns the fault settings, the record of what was injected and the audit trail of requests
//! that named themselves (`Audit-ID`); it must not serve requests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::status::ApiError;
use super::store::Store;

/// An API verb, as faults are configured per verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// GET one object.
    Get,
    /// GET a collection.
    List,
    /// GET a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (server-side apply included).
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    #[serde(rename = "deletecollection")]
    DeleteCollection,
}

impl Verb {
    /// Every verb.
    pub const ALL: [Verb; 8] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
    ];
}

/// The fault settings (also the admin endpoint's JSON body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FaultConfig {
    /// Added latency per verb, in milliseconds.
    pub latency_ms: BTreeMap<Verb, u64>,
    /// Probability (0 to 1) that a request of an affected verb gets an injected error.
    pub error_rate: f64,
    /// The codes injected errors are drawn from (500, 429, 409).
    pub error_codes: Vec<u16>,
    /// The verbs injected errors affect (default: all but watch).
    pub error_verbs: Vec<Verb>,
    /// `Retry-After` (seconds) on injected 429s.
    pub retry_after_seconds: u64,
    /// End each watch stream after this many events (bookmarks not counted).
    pub close_watch_after: Option<u64>,
    /// Hold every API request (and watch delivery) until resumed.
    pub paused: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency_ms: BTreeMap::new(),
            error_rate: 0.0,
            error_codes: vec![500, 429, 409],
            error_verbs: vec![
                Verb::Get,
                Verb::List,
                Verb::Create,
                Verb::Update,
                Verb::Patch,
                Verb::Delete,
                Verb::DeleteCollection,
            ],
            retry_after_seconds: 1,
            close_watch_after: None,
            paused: false,
        }
    }
}

/// One injected error, in the order they were injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injected {
    /// The verb of the request.
    pub verb: Verb,
    /// The request path.
    pub path: String,
    /// The HTTP code answered.
    pub code: u16,
}

/// How many audited requests are remembered (oldest dropped first).
pub const AUDIT_KEPT: usize = 1024;

/// A request that carried an `Audit-ID` header, as an audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audited {
    /// The client's `Audit-ID`.
    pub audit_id: String,
    /// The HTTP method.
    pub method: String,
    /// The path and query, e.g. `/apis/apps/v1/namespaces/a/deployments/b?fieldManager=x`.
    pub request_uri: String,
}

struct Inner {
    config: FaultConfig,
    rng: ChaCha8Rng,
    injected: Vec<Injected>,
    audited: VecDeque<Audited>,
}

/// A handle to the faults of a running sandbox; cheap to clone.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
    paused: Arc<watch::Sender<bool>>,
    store: Arc<Store>,
    node: Arc<super::node::Node>,
}

impl Faults {
    pub(crate) fn new(seed: u64, store: Arc<Store>, node: Arc<super::node::Node>) -> Faults {
        Faults {
            inner: Arc::new(Mutex::new(Inner {
                config: FaultConfig::default(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                injected: Vec::new(),
                audited: VecDeque::new(),
            })),
            paused: Arc::new(watch::channel(false).0),
            store,
            node,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current settings.
    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// Replace all settings.
    pub fn set(&self, config: FaultConfig) {
        let paused = config.paused;
        self.lock().config = config;
        self.paused.send_replace(paused);
    }

    /// Turn every fault off (the record of injected errors is kept).
    pub fn reset(&self) {
        self.set(FaultConfig::default());
    }

    /// Restart the random sequence from a seed.
    pub fn reseed(&self, seed: u64) {
        self.lock().rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Add latency to every request of a verb (zero removes it).
    pub fn set_latency(&self, verb: Verb, latency: Duration) {
        let mut g = self.lock();
        if latency.is_zero() {
            g.config.latency_ms.remove(&verb);
        } else {
            g.config.latency_ms.insert(verb, latency.as_millis() as u64);
        }
    }

    /// Answer a fraction `rate` of requests with an error drawn from `codes` (500, 429, 409).
    pub fn set_error_rate(&self, rate: f64, codes: &[u16]) {
        let mut g = self.lock();
        g.config.error_rate = rate.clamp(0.0, 1.0);
        if !codes.is_empty() {
            g.config.error_codes = codes.to_vec();
        }
    }

    /// Which verbs injected errors affect.
    pub fn set_error_verbs(&self, verbs: &[Verb]) {
        self.lock().config.error_verbs = verbs.to_vec();
    }

    /// End each watch stream after `n` events (`None`: never).
    pub fn close_watches_after(&self, n: Option<u64>) {
        self.lock().config.close_watch_after = n;
    }

    /// SIGKILL a Pod's container processes (`container`, or all of them), as an OOM kill or a
    /// crash would; the node restarts them per the Pod's `restartPolicy`. How many were killed.
    pub fn kill_pod(
        &self,
        namespace: &str,
        name: &str,
        container: Option<&str>,
    ) -> Result<usize, super::node::NodeError> {
        self.node.kill(namespace, name, container)
    }

    /// SIGSTOP every process of a Pod, as a hung node: its probes then fail and it turns
    /// NotReady (a Pod without probes stays Ready, as on a real node).
    pub fn freeze_pod(&self, namespace: &str, name: &str) -> Result<usize, super::node::NodeError> {
        self.node.freeze(namespace, name)
    }

    /// SIGCONT a frozen Pod's processes.
    pub fn thaw_pod(&self, namespace: &str, name: &str) -> Result<usize, super::node::NodeError> {
        self.node.thaw(namespace, name)
    }

    /// Compact the watch history: every resourceVersion before now is too old, so the next
    /// watch from one gets `410 Gone`; open watch streams are ended. Returns the new version.
    pub fn compact(&self) -> u64 {
        self.store.compact()
    }

    /// End every open watch stream now.
    pub fn close_watches(&self) {
        self.store.close_watches();
    }

    /// Hold every API request until [`Faults::resume`].
    pub fn pause(&self) {
        self.lock().config.paused = true;
        self.paused.send_replace(true);
    }

    /// Let held requests through.
    pub fn resume(&self) {
        self.lock().config.paused = false;
        self.paused.send_replace(false);
    }

    /// The errors injected so far, oldest first.
    pub fn injected(&self) -> Vec<Injected> {
        self.lock().injected.clone()
    }

    /// The errors injected so far, clearing the record.
    pub fn take_injected(&self) -> Vec<Injected> {
        std::mem::take(&mut self.lock().injected)
    }

    /// The requests that carried an `Audit-ID`, oldest first (the last [`AUDIT_KEPT`]).
    pub fn audited(&self) -> Vec<Audited> {
        self.lock().audited.iter().cloned().collect()
    }

    /// The `Audit-ID`s clients sent, oldest first.
    pub fn audit_ids(&self) -> Vec<String> {
        self.lock()
            .audited
            .iter()
            .map(|a| a.audit_id.clone())
            .collect()
    }

    /// Remember a request that carried an `Audit-ID`.
    pub(crate) fn record_audited(&self, audited: Audited) {
        let mut g = self.lock();
        if g.audited.len() >= AUDIT_KEPT {
            g.audited.pop_front();
        }
        g.audited.push_back(audited);
    }

    /// Wait while paused.
    pub(crate) async fn wait_unpaused(&self) {
        if !*self.paused.borrow() {
            return;
        }
        let mut rx = self.paused.subscribe();
        let _ = rx.wait_for(|p| !*p).await;
    }

    /// The latency to add to a verb.
    pub(crate) fn latency(&self, verb: Verb) -> Duration {
        Duration::from_millis(
            self.lock()
                .config
                .latency_ms
                .get(&verb)
                .copied()
                .unwrap_or(0),
        )
    }

    /// After how many events watch streams end.
    pub(crate) fn watch_limit(&self) -> Option<u64> {
        self.lock().config.close_watch_after
    }

    /// Whether this request gets an injected error, and which (recorded if so).
    /// `conflict` builds the 409 for the request's object.
    pub(crate) fn inject(
        &self,
        verb: Verb,
        path: &str,
        conflict: impl FnOnce() -> ApiError,
    ) -> Option<ApiError> {
        let mut g = self.lock();
        let g = &mut *g;
        if g.config.error_rate <= 0.0
            || g.config.error_codes.is_empty()
            || !g.config.error_verbs.contains(&verb)
        {
            return None;
        }
        if !g.rng.random_bool(g.config.error_rate.clamp(0.0, 1.0)) {
            return None;
        }
        let code = g.config.error_codes[g.rng.random_range(0..g.config.error_codes.len())];
        g.injected.push(Injected {
            verb,
            path: path.to_string(),
            code,
        });
        Some(match code {
            429 => ApiError::too_many_requests(g.config.retry_after_seconds),
            409 => conflict(),
            503 => ApiError::unavailable("the server is currently unable to handle the request"),
            _ => ApiError::internal("injected fault"),
        })
    }
}
