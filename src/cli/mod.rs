//! The `logbook` command line: one subcommand per job, each in its own file.
//!
//! Parsing and printing only; the work is done by the library modules they call.

pub mod common;
mod plan;
pub mod sandbox;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// logbook: a Kubernetes controller in which nothing is lost.
///
/// A developer writes a small Application (image, replicas, port, host) and applies it; logbook
/// turns it into the Deployment, Service and Ingress rule that run it, recording every event,
/// plan, action and outcome in an append-only, replayable log.
#[derive(Parser, Debug)]
#[command(name = "logbook", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the actions that would bring the objects in --actual to what the Applications ask for.
    Plan(plan::PlanArgs),
    /// Print the Application CustomResourceDefinition as YAML (what schema/ holds).
    Crd,
    /// Run the Kubernetes API emulator standalone and write a kubeconfig for it.
    Sandbox(sandbox::SandboxArgs),
}

/// Entry point of the `logbook` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Crd => {
            print!("{}", crate::model::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Sandbox(args) => sandbox::run(args),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
