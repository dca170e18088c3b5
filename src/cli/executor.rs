//! `logbook executor`: pulls actions from NATS and applies them to the cluster until SIGTERM.
//! Parsing and printing only; the work is done by [`crate::executor`].

use super::common::{AdminArgs, KubeArgs, LogArgs, TopologyArgs};
use crate::bus::NatsArgs;
use crate::bus::sign::{EXECUTOR, KeyArgs};
use crate::executor::{self, ExecutorConfig};
use crate::process::{block_on, parse_duration, shutdown_on_signals};
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `logbook executor`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  logbook executor --nats-url nats://nats:4222\n  LOGBOOK_IN_FLIGHT=4 logbook executor --kubeconfig ~/.kube/config --name exec-a\n\nRun as many as you like: they share one durable consumer. On SIGTERM an executor stops pulling,\nfinishes what it holds (up to --grace) and exits 0; anything unfinished is handed back to\nanother executor. /readyz turns 503 as soon as it stops pulling."
)]
pub struct ExecutorArgs {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    topology: TopologyArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    keys: KeyArgs,
    #[command(flatten)]
    pub logging: LogArgs,
    /// This executor's name, recorded in every outcome (default: host name and pid).
    #[arg(long, env = "LOGBOOK_EXECUTOR_NAME")]
    name: Option<String>,
    /// Actions handled at once by this process.
    #[arg(long, env = "LOGBOOK_IN_FLIGHT", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    in_flight: u32,
    /// On shutdown, how long to finish the actions in flight before handing them back.
    #[arg(long, env = "LOGBOOK_GRACE", default_value = "25s", value_parser = parse_duration, value_name = "DURATION")]
    grace: Duration,
    /// The namespaces this executor acts in, comma-separated (default: all); an action in any
    /// other namespace is refused with a failed outcome.
    #[arg(
        long,
        env = "LOGBOOK_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    namespaces: Vec<String>,
}

/// Runs `logbook executor`: exits 0 after a clean shutdown, 1 with a one-line error otherwise.
pub fn run(args: ExecutorArgs) -> ExitCode {
    block_on("logbook executor", serve(args))
}

async fn serve(args: ExecutorArgs) -> Result<(), String> {
    let keys = args.keys.load(EXECUTOR).map_err(|e| e.to_string())?;
    let shutdown = shutdown_on_signals();
    let telemetry = executor::Telemetry::default();
    // Not ready from the moment /readyz answers, before NATS is even tried.
    telemetry.starting();
    let admin = args
        .admin
        .start(telemetry.health.clone(), telemetry.metrics.registry())
        .await?;
    let client = args.kube.client().await?;
    let config = ExecutorConfig {
        name: args.name.unwrap_or_else(default_name),
        nats: args.nats,
        topology: args.topology.topology(),
        in_flight: args.in_flight as usize,
        grace: args.grace,
        namespaces: args.namespaces,
        keys,
    };
    let result = executor::run_with(client, config, shutdown, telemetry)
        .await
        .map_err(|e| e.to_string());
    admin.stop().await;
    result
}

/// `<host name>-<pid>`: unique among the executors of a cluster.
fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "executor".to_string());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExecutorArgs,
    }

    #[test]
    fn defaults_and_flags_parse() {
        // The keys have no default: an executor must be told whom to trust.
        assert!(Cli::try_parse_from(["x"]).is_err());
        let keys = ["--signing-key", "e.key", "--trusted-keys", "trusted.keys"];
        let cli = Cli::try_parse_from(["x"].into_iter().chain(keys)).unwrap();
        assert_eq!(cli.args.keys.key_name, None);
        assert_eq!(cli.args.in_flight, 16);
        assert_eq!(cli.args.grace, Duration::from_secs(25));
        let cli = Cli::try_parse_from(
            ["x", "--in-flight", "2", "--grace", "500ms", "--name", "a"]
                .into_iter()
                .chain(keys),
        )
        .unwrap();
        assert_eq!(
            (cli.args.in_flight, cli.args.grace, cli.args.name.as_deref()),
            (2, Duration::from_millis(500), Some("a"))
        );
        assert!(Cli::try_parse_from(["x", "--in-flight", "0"].into_iter().chain(keys)).is_err());
        assert!(default_name().ends_with(&format!("-{}", std::process::id())));
    }
}
