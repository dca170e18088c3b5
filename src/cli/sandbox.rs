//! `logbook sandbox`: runs the Kubernetes API emulator standalone and writes a kubeconfig.
//!
//! Parsing and printing only; the emulator is [`crate::sandbox`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::process::{block_on, parse_duration, signalled};
use crate::sandbox::node::images::ImageMap;
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
    /// Where Pods' logs, working directories and volumes are kept (default: a directory in
    /// the temporary directory, removed on exit); give one with --state to keep volumes'
    /// data across restarts.
    #[arg(long, env = "LOGBOOK_SANDBOX_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
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
    /// How many bytes of change events are kept for such watches (an upper estimate of their
    /// memory; `65536`, `512KiB`, `64MiB`, `1GiB`); the oldest go first, and a watch from an
    /// older resourceVersion gets 410 Gone, as with --history.
    #[arg(long, env = "LOGBOOK_SANDBOX_HISTORY_BYTES", default_value = "64MiB", value_parser = parse_bytes, value_name = "BYTES")]
    pub history_bytes: usize,
    /// How long a client has to send a request's headers, from connecting or from the first
    /// byte of a later request; slower clients are disconnected (`0`: no limit).
    #[arg(long, env = "LOGBOOK_SANDBOX_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,
    /// How long a keep-alive connection may stay open with no request after a response
    /// (watches being streamed are never cut; `0`: no limit).
    #[arg(long, env = "LOGBOOK_SANDBOX_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive once its headers are in; slower ones get
    /// 408 (`0`: no limit).
    #[arg(long, env = "LOGBOOK_SANDBOX_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_timeout: Duration,
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
    /// The image map (YAML): which container images the node runs as local programs, from
    /// which directories, as which user; an image not in it never runs a process (its Pods are
    /// simulated). Default: the built-in map (busybox, alpine, git, postgres:15, logbook's
    /// image); print it with --print-images.
    #[arg(long, env = "LOGBOOK_SANDBOX_IMAGES", value_name = "FILE")]
    pub images: Option<PathBuf>,
    /// Print the image map in use (the built-in one, or --images) as YAML and exit.
    #[arg(long)]
    pub print_images: bool,
    /// The node's restart back-off after a container's first immediate restart, doubling up to
    /// five minutes (`10s` as the kubelet; shorter for tests).
    #[arg(long, env = "LOGBOOK_SANDBOX_RESTART_BACKOFF", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub restart_backoff: Duration,
}

/// The image map `--images` names, or the built-in one for this executable.
pub fn image_map(file: Option<&std::path::Path>) -> Result<ImageMap, String> {
    match file {
        Some(f) => ImageMap::load(f).map_err(|e| e.to_string()),
        None => Ok(ImageMap::defaults(std::env::current_exe().ok().as_deref())),
    }
}

/// A size in bytes: a whole number, optionally followed by `B`, `KiB`, `MiB` or `GiB`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(at);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write it as 65536, 512KiB or 64MiB"))?;
    let unit_bytes: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (use B, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(unit_bytes)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Runs `logbook sandbox`: serves until Ctrl-C or SIGTERM.
pub fn run(args: SandboxArgs) -> ExitCode {
    // Tracing was started once, by `cli::main`.
    block_on("logbook sandbox", serve(args))
}

async fn serve(args: SandboxArgs) -> Result<(), String> {
    let images = image_map(args.images.as_deref())?;
    if args.print_images {
        print!("{}", images.to_yaml());
        return Ok(());
    }
    let config = SandboxConfig {
        addr: args.addr,
        ready_delay: args.ready_delay,
        history: args.history,
        history_bytes: args.history_bytes,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        body_timeout: args.body_timeout,
        seed: args.seed,
        bookmark_interval: args.bookmark_interval,
        state: args.state.clone(),
        data_dir: args.data_dir.clone(),
        images: Some(images),
        logbook_exe: std::env::current_exe().ok(),
        restart_backoff: args.restart_backoff,
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
    let _ = writeln!(out, "data directory: {}", sandbox.data_dir().display());
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

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("100B"), Ok(100));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("64MB").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }

    #[test]
    fn defaults_match_the_library() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SandboxArgs,
        }
        let cli = Cli::try_parse_from(["logbook-sandbox"]).map_err(|e| e.to_string());
        let Ok(Cli { args }) = cli else {
            panic!("no flags parse: {cli:?}", cli = cli.err());
        };
        let lib = SandboxConfig::default();
        assert_eq!(args.history_bytes, lib.history_bytes);
        assert_eq!(args.header_timeout, lib.header_timeout);
        assert_eq!(args.idle_timeout, lib.idle_timeout);
        assert_eq!(args.body_timeout, lib.body_timeout);
        assert_eq!(args.history, lib.history);
    }
}
