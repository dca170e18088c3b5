//! The `logbook` command line: one subcommand per job, each in its own file.
//!
//! Parsing and printing only; the work is done by the library modules they call.

pub(crate) mod audit;
pub mod common;
pub mod controller;
mod dev;
pub mod docs;
mod executor;
mod keys;
mod plan;
pub mod plugin;
pub mod sandbox;
pub mod summary;
mod ui;

use clap::{CommandFactory, Parser, Subcommand};
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
    /// Run the whole loop on this machine, no cluster needed: the sandbox, a nats-server, the
    /// controller and two executors; apply the examples and print the trail.
    ///
    /// The trail is one line per log entry (event → plan → action → outcome). Ctrl-C stops
    /// everything; state stays in --data-dir.
    Dev(dev::DevArgs),
    /// Run the controller: watch Applications and their children, record every event in the
    /// log, plan, and publish actions to NATS for the executors.
    Controller(controller::ControllerArgs),
    /// Run an executor: apply actions from NATS to the cluster and report their outcomes.
    ///
    /// Idempotent (server-side apply, the plan sequence as a fencing token, uid preconditions on
    /// deletes); one outcome per delivery. Run any number: they share one durable consumer.
    Executor(executor::ExecutorArgs),
    /// Query the log, explain why an object is the way it is, check the hash chain.
    ///
    /// `audit log` prints entries (filtered by Application, object, kind, time or seq; --follow
    /// keeps printing), `audit why KIND/NS/NAME` traces an object back to the action, plan and
    /// events that made it so, `audit timeline` tells an Application's or object's story,
    /// `audit verify` names the first edited, removed or moved entry.
    /// Reads only: the log is opened read-only and never blocks the controller's writes.
    /// Exit codes: 0 done, 1 a problem was found (verify), 2 could not do it (bad flags, a
    /// missing or damaged log, an unknown object).
    Audit(audit::AuditArgs),
    /// Make signing keys: the controller signs actions, executors sign outcomes, and each side
    /// acts only on what a key it trusts signed.
    Keys(keys::KeysArgs),
    /// Print the actions that would bring the objects in --actual to what the Applications ask for.
    Plan(plan::PlanArgs),
    /// Print the Application CustomResourceDefinition as YAML (what schema/ holds).
    Crd,
    /// Serve the incident view of a log in a browser: the timeline, an entry's chain, an
    /// object's history, the state at a point, verify and what-if, each at a stable URL.
    ///
    /// Read-only: every request opens the log read-only, so it can serve the live file while
    /// the controller appends. Listens on loopback unless --allow-remote.
    Ui(ui::UiArgs),
    /// Run the Kubernetes API emulator standalone and write a kubeconfig for it.
    Sandbox(sandbox::SandboxArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
        source <(logbook completions bash)\n  \
        logbook completions zsh > ~/.zfunc/_logbook\n  \
        logbook completions --dir ~/.local/share/logbook/completions\n\n\
        `make install-completions` installs those of logbook and logbook-replay for bash, zsh\n\
        and fish under ~/.local (PREFIX=... to change).")]
    Completions(docs::CompletionsArgs),
    /// Write the man pages of logbook and of each of its subcommands.
    #[command(after_help = "Examples:\n  \
        logbook man | man -l -\n  \
        logbook man --dir ~/.local/share/man/man1")]
    Man(docs::ManArgs),
}

/// Entry point of the `logbook` binary.
pub fn main() -> ExitCode {
    // Run as `kubectl-logbook` (kubectl's plugin discovery): kubectl's habits, audit's answers.
    if plugin::invoked_as_plugin() {
        return plugin::run(std::env::args_os().skip(1).collect());
    }
    // The sandbox node's per-container supervisor: not a user command, no flags, no logging.
    let mut argv = std::env::args_os();
    if argv
        .nth(1)
        .is_some_and(|a| a == crate::sandbox::node::supervise::SUBCOMMAND)
    {
        return crate::sandbox::node::supervise::main(argv.collect());
    }
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Controller(args) => args.logging.log_format,
        Command::Executor(args) => args.logging.log_format,
        _ => common::LogFormat::Text,
    };
    // `logbook dev` prints its trail on stdout; only warnings go to stderr unless asked.
    init_tracing(
        if matches!(cli.command, Command::Dev(_)) {
            "warn"
        } else {
            "info"
        },
        format,
    );
    match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Crd => {
            print!("{}", crate::model::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Sandbox(args) => sandbox::run(args),
        Command::Executor(args) => executor::run(args),
        Command::Controller(args) => controller::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Ui(args) => ui::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Completions(args) => docs::run_completions(Cli::command(), &args),
        Command::Man(args) => docs::run_man(Cli::command(), &args),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `default_level`), as text or as one
/// JSON object per line (with the current span's fields, e.g. an action's `action_id`).
fn init_tracing(default_level: &str, format: common::LogFormat) {
    let filter = match std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&v).unwrap_or_else(|e| {
                eprintln!(
                    "logbook: RUST_LOG={v:?} is not a valid filter ({e}); using {default_level}"
                );
                tracing_subscriber::EnvFilter::new(default_level)
            })
        }
        _ => tracing_subscriber::EnvFilter::new(default_level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        common::LogFormat::Text => builder.try_init(),
        common::LogFormat::Json => builder.json().try_init(),
    };
}
