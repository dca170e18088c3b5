//! `logbook ui`: a read-only web application over a log: the timeline, an entry's chain, an
//! object's history, the state at a point, verify and what-if, each at a stable URL.
//!
//! Owns the server, its routes and its assets (built into the binary); it must not query the
//! log by itself (every answer comes from [`crate::replay`] and [`crate::log::LogReader`]), and it
//! never writes the log: each request opens it read-only, as `audit` does.
//!
//! - [`api`]: the JSON endpoints under `/api/`.
//! - [`pages`]: the page (one HTML document for every view: the browser's history API routes
//!   it) and the error pages.
//! - [`guard`]: which requests are refused before anything else (a foreign `Host`).

pub mod api;
pub mod guard;
pub mod pages;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What one UI server serves.
#[derive(Clone, Debug)]
pub struct UiConfig {
    /// The log, opened read-only by every request.
    pub log: PathBuf,
    /// The address the server listens on (the `Host` rule depends on it).
    pub listen: SocketAddr,
}

/// What the handlers share (built by [`router`]).
pub struct Shared {
    pub(crate) config: UiConfig,
    pub(crate) guard: guard::HostGuard,
}

/// The UI's routes: `/api/...` (JSON), `/assets/...`, and the page at `/`, `/timeline`,
/// `/entry/SEQ`, `/object/[GROUP/]VERSION/KIND/NAMESPACE/NAME`, `/state`, `/verify`,
/// `/what-if`; every request with a foreign `Host` is refused first.
pub fn router(config: UiConfig) -> Router {
    let shared = Arc::new(Shared {
        guard: guard::HostGuard::new(config.listen),
        config,
    });
    Router::new()
        .route("/api/summary", get(api::summary))
        .route("/api/timeline", get(api::timeline))
        .route("/api/entry/{seq}", get(api::entry))
        .route("/api/object/{*key}", get(api::object))
        .route("/api/diff/{*key}", get(api::diff))
        .route("/api/state", get(api::state))
        .route("/api/verify", get(api::verify))
        .route("/api/what-if", post(api::what_if))
        .route("/api/{*rest}", get(api::not_found))
        .route("/assets/app.js", get(app_js))
        .route("/assets/style.css", get(style_css))
        .route("/", get(pages::page))
        .route("/timeline", get(pages::page))
        .route("/state", get(pages::page))
        .route("/verify", get(pages::page))
        .route("/what-if", get(pages::page))
        .route("/entry/{seq}", get(pages::entry_page))
        .route("/object/{*key}", get(pages::object_page))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), host_guard))
        .with_state(shared)
}

/// Refuses a request whose `Host` does not name this server (DNS rebinding).
async fn host_guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match shared.guard.check(req.uri(), req.headers(), req.method()) {
        Ok(()) => next.run(req).await,
        Err(message) => {
            let api = req.uri().path().starts_with("/api/");
            pages::refusal(axum::http::StatusCode::FORBIDDEN, &message, api)
        }
    }
}

const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

async fn app_js() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS)
}

async fn style_css() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS)
}

/// Serves the UI on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    log: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    let app = router(UiConfig { log, listen });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
