//! Flags shared by the long-running subcommands: how to reach Kubernetes, stream settings,
//! the admin server and the log format. Durations and shutdown are [`crate::process`]'s.

use crate::bus::Topology;
use crate::process::parse_duration;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How to reach the Kubernetes API: a kubeconfig (flag, `KUBECONFIG`, `~/.kube/config`) or,
/// inside a cluster, the service account, as kube resolves it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KubeArgs {
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster config).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, env = "LOGBOOK_KUBE_CONTEXT")]
    pub context: Option<String>,
}

impl KubeArgs {
    /// A client for the configured cluster, or a message saying what is missing.
    pub async fn client(&self) -> Result<kube::Client, String> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| format!("kubeconfig: {e}"))?,
            None => kube::Config::infer().await.map_err(|e| {
                format!(
                    "no Kubernetes configuration found ({e}); pass --kubeconfig or set \
                     KUBECONFIG, or run inside a cluster"
                )
            })?,
        };
        kube::Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
    }
}

/// Stream and consumer settings that operators tune.
#[derive(clap::Args, Clone, Debug)]
pub struct TopologyArgs {
    /// How long a delivered action may stay unacknowledged before it is delivered again.
    #[arg(long, env = "LOGBOOK_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,
    /// Deliveries of one action before it is abandoned.
    #[arg(long, env = "LOGBOOK_MAX_DELIVER", default_value_t = 5, value_parser = clap::value_parser!(i64).range(2..))]
    pub max_deliver: i64,
    /// Stream replicas (3 on a NATS cluster).
    #[arg(long, env = "LOGBOOK_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
}

impl TopologyArgs {
    /// The topology these flags describe.
    pub fn topology(&self) -> Topology {
        Topology {
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            replicas: self.stream_replicas,
            ..Topology::default()
        }
    }
}

/// Where the admin server (`/metrics`, `/healthz`, `/readyz`) listens.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// Address of the admin server (/metrics, /healthz, /readyz; the controller's also takes
    /// POST /checkpoint), or `off`. Loopback unless asked otherwise: a Pod passes
    /// `--admin-addr=0.0.0.0:9090` for its probes and scraping.
    #[arg(
        long,
        env = "LOGBOOK_ADMIN_ADDR",
        default_value = "127.0.0.1:9090",
        value_name = "ADDR"
    )]
    pub admin_addr: AdminAddr,
}

/// An admin server address, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminAddr(pub Option<std::net::SocketAddr>);

impl std::str::FromStr for AdminAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(AdminAddr(None));
        }
        s.parse().map(|a| AdminAddr(Some(a))).map_err(|e| {
            format!(
                "{s:?} is not an address ({e}): write it as 0.0.0.0:9090 or 127.0.0.1:0, or `off`"
            )
        })
    }
}

impl AdminArgs {
    /// Binds and starts the admin server (unless `off`); stop it with [`Admin::stop`].
    pub async fn start(
        &self,
        health: crate::admin::Health,
        registry: std::sync::Arc<prometheus_client::registry::Registry>,
    ) -> Result<Admin, String> {
        self.start_with(health, registry, crate::admin::Commands::default())
            .await
    }

    /// [`AdminArgs::start`], offering `commands` as `POST` routes too.
    pub async fn start_with(
        &self,
        health: crate::admin::Health,
        registry: std::sync::Arc<prometheus_client::registry::Registry>,
        commands: crate::admin::Commands,
    ) -> Result<Admin, String> {
        let Some(addr) = self.admin_addr.0 else {
            return Ok(Admin {
                addr: None,
                stop: CancellationToken::new(),
                task: None,
            });
        };
        let server = crate::admin::AdminServer::bind(addr).await?;
        let stop = CancellationToken::new();
        let addr = server.local_addr();
        let task = server.serve_with(health, registry, commands, stop.clone());
        Ok(Admin {
            addr: Some(addr),
            stop,
            task: Some(task),
        })
    }
}

/// A running admin server (or none).
pub struct Admin {
    /// Where it listens.
    pub addr: Option<std::net::SocketAddr>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Admin {
    /// Stops serving (after the process's own shutdown, so probes see it not ready meanwhile).
    pub async fn stop(self) {
        self.stop.cancel();
        if let Some(task) = self.task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

/// How log lines are written to stderr.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// Log line format: `text` (for people) or `json` (one object per line, for collectors).
    /// The level comes from RUST_LOG.
    #[arg(
        long,
        env = "LOGBOOK_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

/// A log line format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err(), "a unit is required");
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn admin_addresses_parse_or_turn_off() {
        assert_eq!(
            "0.0.0.0:9090".parse::<AdminAddr>(),
            Ok(AdminAddr(Some(([0, 0, 0, 0], 9090).into())))
        );
        assert_eq!("off".parse::<AdminAddr>(), Ok(AdminAddr(None)));
        assert_eq!("OFF".parse::<AdminAddr>(), Ok(AdminAddr(None)));
        let err = "9090".parse::<AdminAddr>().unwrap_err();
        assert!(err.contains("0.0.0.0:9090"), "{err}");
    }

    #[test]
    fn the_admin_server_listens_on_loopback_by_default() {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            admin: AdminArgs,
        }
        use clap::Parser;
        let args = Args::try_parse_from(["logbook"]).expect("no flags parse");
        assert_eq!(
            args.admin.admin_addr,
            AdminAddr(Some(([127, 0, 0, 1], 9090).into())),
            "outside a Pod the admin server is not reachable from the network unless asked"
        );
    }
}
