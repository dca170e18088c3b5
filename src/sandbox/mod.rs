//! The sandbox: a Kubernetes API emulator served over real HTTP on loopback, for tests,
//! benches and `logbook dev`. The real `kube` client and `kubectl` talk to it unchanged.
//!
//! It serves discovery, the built-in kinds logbook needs (Namespaces, Services, ConfigMaps,
//! Secrets, Events, Deployments, Ingresses, Leases, CustomResourceDefinitions; Pods, Nodes,
//! ReplicaSets, Jobs, PersistentVolumeClaims, PersistentVolumes, StorageClasses and
//! EndpointSlices as stored objects, for the node and workload controllers; Pods with `log`,
//! `exec`, `eviction` and `binding`, run by the [`node`]) and every
//! resource a CRD declares, with get, list, watch, create, update, patch (JSON, merge,
//! strategic merge), server-side apply, delete and `/status`; it keeps the bookkeeping the API
//! server keeps (uid, resourceVersion, generation, Status errors, garbage collection) and
//! simulates Deployments becoming ready. Faults (latency, error answers, short watches,
//! compaction, pause) are reproducible from a seed, through [`Faults`] or the `/sandbox/`
//! admin endpoint.
//!
//! ```no_run
//! # async fn demo() -> Result<(), logbook::sandbox::SandboxError> {
//! use logbook::sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let client = sandbox.client();
//! # drop(client);
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules, one job each: [`store`] (objects, resourceVersion, history), [`resources`] (what
//! is served), [`serve`] (connections and their timeouts), [`guard`] (foreign Host and
//! browser-sent writes refused), [`routes`] (HTTP), [`discovery`], [`openapi`] (what kubectl needs of it), [`verbs`],
//! [`convert`] (one object served by two groups: Events), [`fields`] (unknown fields and
//! `fieldValidation`), [`protobuf`] (protobuf request bodies), [`patch`] (patch types and apply),
//! [`watch`], [`schema`] (CRD schemas), [`table`] (kubectl tables), [`selectors`], [`meta`],
//! [`status`] (errors), [`faults`], [`workloads`], [`node`] (Pods run as local processes or
//! simulated), [`gc`], [`kubeconfig`], [`admin`],
//! [`persist`] (`--state`).

pub mod admin;
pub mod convert;
pub mod discovery;
pub mod faults;
pub mod fields;
pub mod gc;
pub mod guard;
pub mod kubeconfig;
pub mod meta;
pub mod node;
pub mod openapi;
pub mod patch;
pub mod persist;
pub mod protobuf;
pub mod resources;
pub mod routes;
pub mod schema;
pub mod selectors;
pub mod serve;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;
pub mod verbs;
pub mod watch;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{Audited, FaultConfig, Faults, Injected, Verb};
pub use status::ApiError;

/// Namespaces that exist from the start, as in a fresh cluster.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// How a sandbox is started.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// How long a Deployment takes to report all replicas ready.
    pub ready_delay: Duration,
    /// How many change events are retained for watches from an older resourceVersion.
    pub history: usize,
    /// How many bytes of change events are retained (an upper estimate of their memory,
    /// see [`store::change_size`]); the oldest go first, as with `history`.
    pub history_bytes: usize,
    /// Seed of the fault-injection random sequence.
    pub seed: u64,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// How long the garbage collector waits after a delete before it sweeps.
    pub gc_delay: Duration,
    /// Largest accepted request body, in bytes (413 beyond).
    pub max_body: usize,
    /// Events a watcher may fall behind before its stream is ended.
    pub watch_buffer: usize,
    /// A state file to restore from at start (if it exists) and save to on shutdown.
    pub state: Option<PathBuf>,
    /// Where the node keeps what outlives an object's request: Pods' logs and working
    /// directories, and the volumes the local-path provisioner makes. `None`: a directory made
    /// for this sandbox under the system's temporary directory, removed when it stops.
    pub data_dir: Option<PathBuf>,
    /// How long a client has to send a request's headers, from the moment the connection is
    /// accepted or the first byte of a later request arrives; zero: no limit.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request once a response is
    /// finished (a watch being streamed is a response in progress); zero: no limit.
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive once its headers are in (408 beyond);
    /// zero: no limit.
    pub body_timeout: Duration,
    /// Which images the node runs as local programs; `None`: the built-in map
    /// ([`node::images::ImageMap::defaults`]).
    pub images: Option<node::images::ImageMap>,
    /// The logbook binary: it supervises container processes (so that none outlives the
    /// sandbox, even a SIGKILLed one) and stands for logbook's own image. `None`: processes are
    /// started directly (killed when the sandbox stops or is dropped, not when it is SIGKILLed).
    pub logbook_exe: Option<PathBuf>,
    /// The node's restart back-off after the first immediate restart, doubling up to five
    /// minutes (the kubelet's is 10 s).
    pub restart_backoff: Duration,
}

/// The default of [`SandboxConfig::history_bytes`]: 64 MiB.
pub const HISTORY_BYTES: usize = 64 << 20;
/// The default of [`SandboxConfig::header_timeout`].
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`SandboxConfig::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default of [`SandboxConfig::body_timeout`].
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ready_delay: Duration::from_millis(200),
            history: 10_000,
            history_bytes: HISTORY_BYTES,
            seed: 0,
            bookmark_interval: Duration::from_secs(10),
            gc_delay: Duration::from_millis(20),
            max_body: routes::MAX_BODY,
            watch_buffer: 16_384,
            state: None,
            data_dir: None,
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            images: None,
            logbook_exe: None,
            restart_backoff: node::RESTART_BACKOFF,
        }
    }
}

/// What can go wrong starting, running or saving a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state file could not be read or written.
    #[error("sandbox state file {path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The kubeconfig could not be written.
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory could not be made.
    #[error(
        "cannot make the sandbox data directory {path}: {source}; pass --data-dir with a writable directory"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A kube client for the sandbox could not be built.
    #[error("cannot build a kube client: {0}")]
    Client(String),
}

/// A running emulator; dropping it shuts the server down.
pub struct Sandbox {
    addr: SocketAddr,
    store: Arc<store::Store>,
    faults: Faults,
    stop: CancellationToken,
    server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    state: Option<PathBuf>,
    data: DataDir,
    node: Arc<node::Node>,
}

/// The sandbox's data directory, removed on drop when the sandbox made it for itself.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn open(wanted: Option<&Path>) -> Result<DataDir, SandboxError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (path, temporary) = match wanted {
            Some(p) => (p.to_path_buf(), false),
            None => {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name = format!("logbook-sandbox-{}-{n}", std::process::id());
                (std::env::temp_dir().join(name), true)
            }
        };
        std::fs::create_dir_all(&path).map_err(|source| SandboxError::DataDir {
            path: path.clone(),
            source,
        })?;
        Ok(DataDir { path, temporary })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn bootstrap(store: &store::Store) {
    for ns in INITIAL_NAMESPACES {
        let _ = store.write(store::NAMESPACES, "", ns, |ctx| {
            if ctx.current.is_some() {
                return Err(ApiError::already_exists("", "namespaces", ns));
            }
            Ok(store::Op::Create(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": ns, "labels": { "kubernetes.io/metadata.name": ns } },
                "spec": { "finalizers": ["kubernetes"] },
                "status": { "phase": "Active" },
            })))
        });
    }
}

impl Sandbox {
    /// Start serving (must be called within a tokio runtime).
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let store = Arc::new(store::Store::new(
            config.history,
            config.history_bytes,
            config.watch_buffer,
        ));
        if let Some(path) = &config.state
            && persist::load(&store, path)?
        {
            tracing::info!(path = %path.display(), "sandbox state restored");
        }
        bootstrap(&store);
        let data = DataDir::open(config.data_dir.as_deref())?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.addr,
            source,
        })?;
        let images = config
            .images
            .clone()
            .unwrap_or_else(|| node::images::ImageMap::defaults(config.logbook_exe.as_deref()));
        let node = node::Node::new(
            store.clone(),
            node::NodeConfig {
                images,
                supervisor: config.logbook_exe.clone(),
                restart_backoff: config.restart_backoff,
                ready_delay: config.ready_delay,
                data_dir: data.path.clone(),
                api: addr,
            },
        );
        // Registered before serving, so that the first request already sees the Node.
        node.register();
        let faults = Faults::new(config.seed, store.clone(), node.clone());
        let app = Arc::new(routes::App {
            store: store.clone(),
            faults: faults.clone(),
            bookmark_every: config.bookmark_interval.max(Duration::from_millis(10)),
            max_body: config.max_body,
            body_timeout: config.body_timeout,
            guard: guard::Guard::new(addr),
            node: node.clone(),
        });
        let stop = CancellationToken::new();
        let timeouts = serve::Timeouts {
            header: config.header_timeout,
            idle: config.idle_timeout,
        };
        let server = tokio::spawn(serve::run(listener, app, timeouts, stop.clone()));
        let tasks = vec![
            tokio::spawn(gc::run(store.clone(), config.gc_delay)),
            tokio::spawn(workloads::run(store.clone(), config.ready_delay)),
            tokio::spawn(node::run(node.clone())),
        ];
        tracing::info!(url = %format!("http://{addr}"), "sandbox serving");
        Ok(Sandbox {
            addr,
            store,
            faults,
            stop,
            server: Some(server),
            tasks,
            state: config.state,
            data,
            node,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client configured for this sandbox (default namespace `default`).
    pub fn try_client(&self) -> Result<kube::Client, SandboxError> {
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| SandboxError::Client(e.to_string()))?;
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).map_err(|e| SandboxError::Client(e.to_string()))
    }

    /// A real `kube::Client` over HTTP to this sandbox (must be called within a tokio runtime).
    ///
    /// # Panics
    /// If kube cannot build a client for a plain-HTTP loopback URL, which it always can.
    pub fn client(&self) -> kube::Client {
        match self.try_client() {
            Ok(c) => c,
            Err(e) => panic!("kube client for the sandbox at {}: {e}", self.url()),
        }
    }

    /// A kubeconfig (YAML) for kube and kubectl.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::yaml(&self.url())
    }

    /// Write [`Sandbox::kubeconfig_yaml`] to a file.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SandboxError> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| SandboxError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Where Pods' logs, working directories and volumes live ([`SandboxConfig::data_dir`]).
    pub fn data_dir(&self) -> &Path {
        &self.data.path
    }

    /// The node: Pods' processes (faults: kill, freeze, thaw).
    pub fn node(&self) -> Arc<node::Node> {
        self.node.clone()
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Save every object to a file (the format `--state` reads).
    pub fn save_state(&self, path: &Path) -> Result<(), SandboxError> {
        persist::save(&self.store, path)
    }

    /// How much watch history is kept now, in events and bytes, and its bounds.
    pub fn history(&self) -> store::HistoryStats {
        self.store.history_stats()
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.store.resource_version()
    }

    fn stop_now(&mut self) {
        self.faults.resume();
        self.stop.cancel();
        self.store.close_watches();
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.node.shutdown();
    }

    /// Stop serving: open watches end, requests in flight finish, the state file (if any) is
    /// saved.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if let Some(path) = self.state.take()
            && let Err(e) = persist::save(&self.store, &path)
        {
            tracing::error!(error = %e, "sandbox state not saved");
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_now();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
