//! `logbook sandbox`: runs the Kubernetes API emulator standalone and writes a kubeconfig.
//!
//! Parsing and printing only; the emulator is [`crate::sandbox`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::process::{block_on, parse_duration, signalled};
use crate::sandbox::{Sandbox, SandboxConfig};

/// Flags of `logbook sandbox`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  logbook sandbox --kubeconfig /tmp/sandbox.kubeconfig\n  KUBECONFIG=/tmp/sandbox.kubeconfig kubectl get namespaces\n  logbook sandbox --addr 127.0.0.1:6443 --state sandbox-state.json --ready-delay 2s"
)]
pub struct SandboxArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long,
        env = "LOGBOOK_SANDBOX_ADDR",
        default_value = "127.0.0.1:0",
        value_name = "ADDR"
    )]
    pub addr: SocketAddr,
    /// Where to write the kubeconfig for kube and kubectl (default: a file in the temporary
    /// directory, removed on exit).
    #[arg(long, env = "LOGBOOK_SANDBOX_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Restore objects from this file at start (if it exists) and save them to it on exit.
    #[arg(long, env = "LOGBOOK_SANDBOX_STATE", value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// How long a Deployment takes to report all replicas ready (`500ms`, `2s`, `1m`).
    #[arg(long, env = "LOGBOOK_SANDBOX_READY_DELAY", default_value = "200ms", value_parser = parse_duration, value_name = "DURATION")]
    pub ready_delay: Duration,
    /// How many change events are kept for watches that resume from an older resourceVersion.
    #[arg(
        long,
        env = "LOGBOOK_SANDBOX_HISTORY",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub history: usize,
    /// Seed of the fault-injection random sequence.
    #[arg(
        long,
        env = "LOGBOOK_SANDBOX_SEED",
        default_value_t = 0,
        value_name = "N"
    )]
    pub seed: u64,
    /// How often watches that allow bookmarks get one (`10s`).
    #[arg(long, env = "LOGBOOK_SANDBOX_BOOKMARK_INTERVAL", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub bookmark_interval: Duration,
}

/// Runs `logbook sandbox`: serves until Ctrl-C or SIGTERM.
pub fn run(args: SandboxArgs) -> ExitCode {
    // Tracing was started once, by `cli::main`.
    block_on("logbook sandbox", serve(args))
}

async fn serve(args: SandboxArgs) -> Result<(), String> {
    let config = SandboxConfig {
        addr: args.addr,
        ready_delay: args.ready_delay,
        history: args.history,
        seed: args.seed,
        bookmark_interval: args.bookmark_interval,
        state: args.state.clone(),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.map_err(|e| e.to_string())?;
    let (kubeconfig, temporary) = match &args.kubeconfig {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "logbook-sandbox-{}.kubeconfig",
                sandbox.addr().port()
            )),
            true,
        ),
    };
    sandbox
        .write_kubeconfig(&kubeconfig)
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "logbook sandbox serving at {}", sandbox.url());
    let _ = writeln!(out, "kubeconfig: {}", kubeconfig.display());
    let _ = writeln!(out, "  export KUBECONFIG={}", kubeconfig.display());
    let _ = writeln!(out, "admin endpoint: {}/sandbox/", sandbox.url());
    if let Some(state) = &args.state {
        let _ = writeln!(out, "state file: {} (saved on exit)", state.display());
    }
    let _ = out.flush();

    let _ = signalled().await;
    let _ = writeln!(out, "logbook sandbox stopping");
    let _ = out.flush();
    sandbox.shutdown().await;
    if temporary {
        let _ = std::fs::remove_file(&kubeconfig);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
