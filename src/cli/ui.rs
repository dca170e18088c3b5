//! `logbook ui`: serve the incident view of a log in a browser (read-only), on loopback unless
//! told otherwise. Flags and printing only; the server is [`crate::ui`].

use crate::process::{block_on, signalled};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `logbook ui`.
#[derive(Args, Debug)]
#[command(
    after_help = "Views (each a stable URL, to paste in an incident channel):\n  \
    /timeline?from=2025-03-14T03:00:00Z&to=2025-03-14T03:30:00Z&app=shop/web\n  \
    /entry/1234                          an entry and its chain: events → plan → actions → outcomes\n  \
    /object/apps/v1/Deployment/shop/web  an object's versions and the diff between any two\n  \
    /state?at=1234                       the world at a seq or time\n  \
    /verify, /what-if                    replay results (what-if takes an uploaded configuration)\n\n\
    Examples:\n  \
    logbook ui --log /var/lib/logbook/log.db\n  \
    logbook ui --log copy-of-prod.db --addr 127.0.0.1:9000\n  \
    logbook ui --log log.db --addr 0.0.0.0:8080 --allow-remote"
)]
pub struct UiArgs {
    /// The log file. Opened read-only by every request: the UI never writes it, and it can
    /// serve the live file while the controller appends (the timeline follows it).
    #[arg(
        long,
        env = "LOGBOOK_LOG",
        value_name = "FILE",
        default_value = "logbook.db"
    )]
    log: PathBuf,
    /// Where to listen. Loopback by default; any other address needs --allow-remote.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Allow listening on a non-loopback address. The UI has no login: anyone who can reach
    /// the address can read the whole log.
    #[arg(long)]
    allow_remote: bool,
}

/// Runs `logbook ui` until Ctrl-C.
pub fn run(args: UiArgs) -> ExitCode {
    block_on("logbook ui", serve(args))
}

async fn serve(args: UiArgs) -> Result<(), String> {
    if !args.addr.ip().is_loopback() && !args.allow_remote {
        return Err(format!(
            "--addr {} is not a loopback address: the UI has no login, so anyone who reaches it \
             reads the whole log. Add --allow-remote to serve it there anyway, or use \
             127.0.0.1:PORT",
            args.addr
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e}. Pick another --addr (e.g. 127.0.0.1:0 for any free port)",
            args.addr
        )
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the address listened on: {e}"))?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "logbook ui: serving {} on {addr}, a non-loopback address (--allow-remote): anyone \
             who can reach it can read the whole log",
            args.log.display()
        );
    }
    println!(
        "logbook ui: http://{addr}/timeline (log {})",
        args.log.display()
    );
    crate::ui::serve(listener, args.log, async {
        let _ = signalled().await;
    })
    .await
    .map_err(|e| format!("the server stopped: {e}"))
}
