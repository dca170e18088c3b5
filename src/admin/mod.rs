//! The admin server: `/metrics`, `/healthz` and `/readyz` on one HTTP port.
//!
//! Small and reusable, in the style of kubert's admin server; it knows nothing of planning,
//! the log or the bus. A process builds a [`Health`] and a metrics [`Registry`], hands them to
//! [`AdminServer::serve`], and tells the `Health` what it knows:
//!
//! - **readiness** is a set of reasons the process is not ready yet (`set_not_ready(reason)`,
//!   `set_ready(reason)`); `/readyz` answers `200 ok` when the set is empty and `503` with the
//!   reasons, one per line, otherwise;
//! - **liveness** is a set of heartbeats its main loops touch; `/healthz` answers `200 ok`
//!   while each has beaten within the staleness bound (a loop that has not beaten yet is
//!   starting and counts as alive), and `503` naming the loops that went quiet;
//! - **commands** are what the process lets an operator ask for ([`Commands`]): `POST /NAME`
//!   runs one and answers its text (`200`), or why it could not (`503`).

pub mod metrics;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a main loop may stay quiet before `/healthz` reports it (and the process) dead.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30);

/// A process's health: why it is not ready, and the heartbeats of its main loops.
/// Cheap to clone (one `Arc`); every clone sees the same state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    /// Reasons the process is not ready, in the order they were first set.
    not_ready: Mutex<Vec<&'static str>>,
    heartbeats: Mutex<Vec<Heartbeat>>,
    stale_after: Duration,
    started: Instant,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("not_ready", &self.not_ready())
            .field("stale_after", &self.inner.stale_after)
            .finish()
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new(DEFAULT_STALE_AFTER)
    }
}

impl Health {
    /// Ready (no reason against) and alive; a loop silent for `stale_after` makes it not alive.
    pub fn new(stale_after: Duration) -> Health {
        Health {
            inner: Arc::new(HealthInner {
                not_ready: Mutex::new(Vec::new()),
                heartbeats: Mutex::new(Vec::new()),
                stale_after,
                started: Instant::now(),
            }),
        }
    }

    /// Not ready, for `reason` (shown by `/readyz`), until [`Health::set_ready`] with the same
    /// reason. Setting a reason that is already set changes nothing.
    pub fn set_not_ready(&self, reason: &'static str) {
        let mut set = lock(&self.inner.not_ready);
        if !set.contains(&reason) {
            set.push(reason);
        }
    }

    /// `reason` no longer holds; ready once no other reason is set.
    pub fn set_ready(&self, reason: &'static str) {
        lock(&self.inner.not_ready).retain(|r| *r != reason);
    }

    /// Sets or clears `reason` as `ready` says.
    pub fn set(&self, reason: &'static str, ready: bool) {
        if ready {
            self.set_ready(reason)
        } else {
            self.set_not_ready(reason)
        }
    }

    /// Whether no reason against readiness is set.
    pub fn is_ready(&self) -> bool {
        lock(&self.inner.not_ready).is_empty()
    }

    /// The reasons the process is not ready, in the order they were set.
    pub fn not_ready(&self) -> Vec<&'static str> {
        lock(&self.inner.not_ready).clone()
    }

    /// A heartbeat for the loop called `name`: the loop calls [`Heartbeat::beat`] each turn.
    /// It counts as alive until its first beat (it is starting).
    pub fn heartbeat(&self, name: &'static str) -> Heartbeat {
        let hb = Heartbeat {
            name,
            last_ms: Arc::new(AtomicU64::new(NEVER)),
            started: self.inner.started,
        };
        lock(&self.inner.heartbeats).push(hb.clone());
        hb
    }

    /// The loops that have not beaten for longer than the staleness bound, with how long.
    pub fn stale(&self) -> Vec<(&'static str, Duration)> {
        let now = self.inner.started.elapsed();
        lock(&self.inner.heartbeats)
            .iter()
            .filter_map(|hb| {
                let last = hb.last_ms.load(Ordering::Relaxed);
                if last == NEVER {
                    return None;
                }
                let quiet = now.saturating_sub(Duration::from_millis(last));
                (quiet > self.inner.stale_after).then_some((hb.name, quiet))
            })
            .collect()
    }
}

const NEVER: u64 = u64::MAX;

/// A main loop's heartbeat (see [`Health::heartbeat`]); cheap to clone and to beat.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    name: &'static str,
    /// Milliseconds since the `Health` was made at the last beat, or [`NEVER`].
    last_ms: Arc<AtomicU64>,
    started: Instant,
}

impl Heartbeat {
    /// The loop is turning.
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NEVER - 1);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

/// A poisoned lock only means a panic elsewhere while holding it; the data (a list of
/// `&'static str` or handles) is always consistent, so keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a process's telemetry hooks share: its health and its metrics (`M`, a struct of
/// metric families registered in one registry).
#[derive(Debug)]
pub struct Telemetry<M> {
    /// Readiness and liveness.
    pub health: Health,
    /// The process's metrics.
    pub metrics: Arc<M>,
}

/// Not ready: no NATS connection (both processes).
pub const NATS_DOWN: &str = "NATS is not connected";

/// How often the depth of a process's consumer is read.
pub const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Metrics with a gauge for the depth of the consumer the process reads.
pub trait QueueDepth {
    /// Sets the gauge.
    fn queue_depth(&self, depth: u64);
}

impl<M: QueueDepth> Telemetry<M> {
    /// Follows the NATS connection (readiness: [`NATS_DOWN`]) and the depth of `consumer` on
    /// `stream` until `stop`.
    pub async fn watch_bus(
        self,
        js: async_nats::jetstream::Context,
        stream: &'static str,
        consumer: &'static str,
        stop: CancellationToken,
    ) {
        use crate::bus::probe::{self, Probe};
        probe::watch_consumer(js, stream, consumer, DEPTH_EVERY, stop, |p| match p {
            Probe::Connected(up) => {
                if !up {
                    tracing::warn!("NATS connection lost: not ready until it is back");
                }
                self.health.set(NATS_DOWN, up)
            }
            Probe::Depth(d) => self.metrics.queue_depth(d),
        })
        .await
    }
}

// By hand: a derive would ask `M: Clone`, but only the `Arc` is cloned.
impl<M> Clone for Telemetry<M> {
    fn clone(&self) -> Self {
        Telemetry {
            health: self.health.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<M: Default> Default for Telemetry<M> {
    fn default() -> Self {
        Telemetry {
            health: Health::default(),
            metrics: Arc::new(M::default()),
        }
    }
}

/// What a command answers: its text, or why it could not run.
pub type CommandResult = Result<String, String>;

/// A command: an async function of nothing.
pub type CommandFn =
    dyn Fn() -> futures::future::BoxFuture<'static, CommandResult> + Send + Sync + 'static;

/// What a process lets an operator ask for on its admin server: `POST /NAME` runs the command
/// named `NAME` and answers its text (`200`) or its error (`503`), each ending in a newline.
/// The admin server knows nothing of what they do.
#[derive(Clone, Default)]
pub struct Commands {
    commands: Vec<(&'static str, Arc<CommandFn>)>,
}

impl Commands {
    /// Adds `POST /{name}`, answered by `run`.
    pub fn add<F, Fut>(mut self, name: &'static str, run: F) -> Commands
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = CommandResult> + Send + 'static,
    {
        let run: Arc<CommandFn> = Arc::new(move || Box::pin(run()));
        self.commands.push((name, run));
        self
    }

    /// The names of the commands, in the order they were added.
    pub fn names(&self) -> Vec<&'static str> {
        self.commands.iter().map(|(n, _)| *n).collect()
    }
}

/// The admin HTTP server, bound to its address (so the port is known before it serves).
pub struct AdminServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

#[derive(Clone)]
struct AppState {
    health: Health,
    registry: Arc<Registry>,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<AdminServer, String> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!(
                "cannot listen on {addr} for the admin server (/metrics, /healthz, /readyz): \
                 {e}; choose another --admin-addr, or `off`"
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the admin server's address on {addr}: {e}"))?;
        Ok(AdminServer { listener, addr })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `/metrics` (from `registry`), `/healthz` and `/readyz` (from `health`) on a task
    /// of its own until `shutdown` is cancelled.
    pub fn serve(
        self,
        health: Health,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        self.serve_with(health, registry, Commands::default(), shutdown)
    }

    /// [`AdminServer::serve`], with `commands` as `POST` routes too.
    pub fn serve_with(
        self,
        health: Health,
        registry: Arc<Registry>,
        commands: Commands,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let addr = self.addr;
        let names: String = commands
            .names()
            .iter()
            .map(|n| format!(", POST /{n}"))
            .collect();
        let app = router(AppState { health, registry }, &commands);
        tracing::info!(%addr, "admin server listening: /metrics, /healthz, /readyz{names}");
        tokio::spawn(async move {
            let served = axum::serve(self.listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(%addr, error = %e, "the admin server stopped");
            }
        })
    }
}

fn router(state: AppState, commands: &Commands) -> axum::Router {
    let mut router = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz));
    for (name, run) in &commands.commands {
        let run = run.clone();
        router = router.route(
            &format!("/{name}"),
            post(move || {
                let run = run.clone();
                async move {
                    match run().await {
                        Ok(text) => (StatusCode::OK, format!("{text}\n")).into_response(),
                        Err(e) => {
                            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
                        }
                    }
                }
            }),
        );
    }
    router.with_state(state)
}

/// The OpenMetrics text format, which Prometheus scrapes natively.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let stale = state.health.stale();
    if stale.is_empty() {
        return (StatusCode::OK, "ok\n").into_response();
    }
    let body: String = stale
        .iter()
        .map(|(name, quiet)| format!("{name}: no heartbeat for {}s\n", quiet.as_secs()))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let reasons = state.health.not_ready();
    if reasons.is_empty() {
        return (StatusCode::OK, "ok\n").into_response();
    }
    let body: String = reasons.iter().map(|r| format!("{r}\n")).collect();
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A bare HTTP/1.0 GET: (status, body).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap();
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_string())
    }

    async fn serve(health: Health, registry: Registry) -> (SocketAddr, CancellationToken) {
        let server = AdminServer::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let addr = server.local_addr();
        let stop = CancellationToken::new();
        server.serve(health, Arc::new(registry), stop.clone());
        (addr, stop)
    }

    #[tokio::test]
    async fn readyz_lists_the_reasons_and_flips_back() {
        let health = Health::default();
        let (addr, stop) = serve(health.clone(), Registry::default()).await;
        assert_eq!(get(addr, "/readyz").await, (200, "ok\n".to_string()));
        health.set_not_ready("watches have not listed yet");
        health.set_not_ready("NATS is not connected");
        health.set_not_ready("NATS is not connected");
        assert_eq!(
            get(addr, "/readyz").await,
            (
                503,
                "watches have not listed yet\nNATS is not connected\n".to_string()
            )
        );
        health.set_ready("watches have not listed yet");
        assert_eq!(
            get(addr, "/readyz").await,
            (503, "NATS is not connected\n".to_string())
        );
        health.set("NATS is not connected", true);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert!(health.is_ready());
        assert_eq!(get(addr, "/nothing").await.0, 404);
        stop.cancel();
    }

    #[tokio::test]
    async fn healthz_fails_when_a_loop_goes_quiet() {
        let health = Health::new(Duration::from_millis(100));
        let (addr, stop) = serve(health.clone(), Registry::default()).await;
        let core = health.heartbeat("core");
        assert_eq!(
            get(addr, "/healthz").await.0,
            200,
            "not beaten yet: starting"
        );
        core.beat();
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_string()));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503);
        assert!(body.starts_with("core: no heartbeat for"), "{body}");
        core.beat();
        assert_eq!(get(addr, "/livez").await.0, 200);
        stop.cancel();
    }

    #[tokio::test]
    async fn metrics_are_rendered_as_openmetrics_text() {
        let mut registry = Registry::with_prefix("logbook");
        let c = Counter::<u64>::default();
        registry.register("probes", "Probes answered", c.clone());
        c.inc();
        let (addr, stop) = serve(Health::default(), registry).await;
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("# TYPE logbook_probes counter"), "{body}");
        assert!(body.contains("logbook_probes_total 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        stop.cancel();
    }

    #[tokio::test]
    async fn commands_answer_posts_and_nothing_else() {
        let server = AdminServer::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let addr = server.local_addr();
        let stop = CancellationToken::new();
        let commands = Commands::default()
            .add("ping", || async { Ok("pong".to_string()) })
            .add("fail", || async { Err("not leading".to_string()) });
        server.serve_with(
            Health::default(),
            Arc::new(Registry::default()),
            commands,
            stop.clone(),
        );
        let post = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("POST {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let out = post("/ping").await;
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        assert!(out.ends_with("\r\n\r\npong\n"), "{out}");
        let out = post("/fail").await;
        assert!(out.starts_with("HTTP/1.0 503"), "{out}");
        assert!(out.ends_with("not leading\n"), "{out}");
        assert_eq!(
            get(addr, "/ping").await.0,
            405,
            "a GET does not run a command"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn binding_a_taken_address_says_what_to_do() {
        let first = AdminServer::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let err = match AdminServer::bind(first.local_addr()).await {
            Ok(_) => panic!("bound the same address twice"),
            Err(e) => e,
        };
        assert!(err.contains("--admin-addr"), "{err}");
    }
}
