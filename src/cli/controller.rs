//! `logbook controller`: watch, record, plan and publish, until SIGTERM or Ctrl-C.
//!
//! Parsing and printing only; the work is [`crate::controller`].

use super::common::{AdminArgs, KubeArgs, LogArgs, TopologyArgs};
use crate::bus::NatsArgs;
use crate::bus::sign::{CONTROLLER, KeyArgs};
use crate::controller::{self, ControllerConfig};
use crate::process::{block_on, parse_duration, say, shutdown_on_signals};
use crate::reconcile::PlannerConfig;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `logbook controller`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    logbook controller --log /var/lib/logbook/log.db --nats-url nats://nats:4222\n  \
    LOGBOOK_NATS_URL=nats://127.0.0.1:4222 KUBECONFIG=/tmp/sandbox.kubeconfig logbook controller --log ./log.db")]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub topology: TopologyArgs,
    #[command(flatten)]
    pub planner: PlannerArgs,
    #[command(flatten)]
    pub election: Box<crate::controller::lease::ElectionArgs>,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub logging: LogArgs,
    /// The log file: created when missing, resumed from when present.
    #[arg(
        long,
        env = "LOGBOOK_LOG",
        value_name = "FILE",
        default_value = "logbook.db"
    )]
    pub log: PathBuf,
    /// Quiet period after an event before planning, so a burst is planned once.
    #[arg(long, env = "LOGBOOK_DEBOUNCE", default_value = "2ms", value_parser = parse_duration, value_name = "DURATION")]
    pub debounce: Duration,
    /// How often the whole world is planned again (a recorded resync); 0 turns it off.
    #[arg(long, env = "LOGBOOK_RESYNC", default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub resync: Duration,
    /// How often the whole log's hash chain is checked again while running, on a read-only
    /// connection: damage is logged and counted in `logbook_log_verify_failures_total` (0: only
    /// the check at start).
    #[arg(long, env = "LOGBOOK_VERIFY_EVERY", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub verify_every: Duration,
    /// On SIGTERM, how long to publish what is left before exiting.
    #[arg(long, env = "LOGBOOK_GRACE", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub grace: Duration,
    /// How long an action may go without an outcome before it is published again from the log
    /// (a recorded re-drive; then twice as long each time, up to 10m). Keep it above
    /// --ack-wait, so an action an executor is still working on is not sent twice.
    #[arg(long, env = "LOGBOOK_ANSWER_DEADLINE", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub answer_deadline: Duration,
    /// Record a checkpoint (the world as folded, ~5 MB per 1,000 Applications) every N
    /// entries, so that `logbook-replay ... --from SEQ` loads it instead of folding the log
    /// from its start; 0: only when asked (`curl -X POST http://ADMIN_ADDR/checkpoint`).
    #[arg(long, env = "LOGBOOK_CHECKPOINT_EVERY", default_value_t = controller::core::DEFAULT_CHECKPOINT_EVERY, value_name = "N")]
    pub checkpoint_every: u64,
}

/// Settings that change what the planner produces (recorded with every plan).
#[derive(clap::Args, Debug, Clone)]
pub struct PlannerArgs {
    /// `spec.ingressClassName` of the shared Ingresses (default: the cluster's default class).
    #[arg(long, env = "LOGBOOK_INGRESS_CLASS", value_name = "CLASS")]
    pub ingress_class: Option<String>,
    /// The `pathType` of Ingress paths.
    #[arg(long, env = "LOGBOOK_PATH_TYPE", default_value = "Prefix", value_parser = ["Prefix", "Exact"])]
    pub path_type: String,
    /// CPU request of containers whose Application asks for no requests (e.g. `100m`).
    #[arg(long, env = "LOGBOOK_DEFAULT_CPU_REQUEST", value_name = "QUANTITY", value_parser = parse_quantity)]
    pub default_cpu_request: Option<String>,
    /// Memory request of containers whose Application asks for no requests (e.g. `128Mi`).
    #[arg(long, env = "LOGBOOK_DEFAULT_MEMORY_REQUEST", value_name = "QUANTITY", value_parser = parse_quantity)]
    pub default_memory_request: Option<String>,
    /// Also use an Application's healthCheck as its container's liveness probe.
    #[arg(long, env = "LOGBOOK_LIVENESS_PROBES")]
    pub liveness_probes: bool,
    /// One write in flight per shared Ingress: while an apply of it is on its way, newer
    /// versions wait and are asked for at once when it is observed (`false`: every plan that
    /// changes its rules writes it).
    #[arg(long, env = "LOGBOOK_COALESCE_SHARED_WRITES", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub coalesce_shared_writes: bool,
}

/// A Kubernetes quantity (`250m`, `1`, `512Mi`), as the CRD's schema accepts it.
fn parse_quantity(s: &str) -> Result<String, String> {
    let pattern = regex::Regex::new(crate::model::QUANTITY_PATTERN).map_err(|e| e.to_string())?;
    if pattern.is_match(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a Kubernetes quantity; write e.g. 250m or 1 (cpu), 512Mi or 1Gi (memory)"
        ))
    }
}

impl PlannerArgs {
    /// The planner configuration these flags describe.
    pub fn config(&self) -> PlannerConfig {
        let default_requests = (self.default_cpu_request.is_some()
            || self.default_memory_request.is_some())
        .then(|| crate::model::ResourceList {
            cpu: self.default_cpu_request.clone(),
            memory: self.default_memory_request.clone(),
        });
        PlannerConfig {
            ingress_class: self.ingress_class.clone(),
            path_type: self.path_type.clone(),
            default_requests,
            liveness_probes: self.liveness_probes,
            coalesce_shared_writes: self.coalesce_shared_writes,
            ..PlannerConfig::default()
        }
    }
}

impl ControllerArgs {
    /// The controller configuration these flags describe (its keys read from their files).
    pub fn config(&self) -> Result<ControllerConfig, String> {
        let keys = self.keys.load(CONTROLLER).map_err(|e| e.to_string())?;
        Ok(ControllerConfig {
            log_path: self.log.clone(),
            nats: self.nats.clone(),
            topology: self.topology.topology(),
            planner: self.planner.config(),
            debounce: self.debounce,
            resync: self.resync,
            grace: self.grace,
            answer_deadline: self.answer_deadline,
            keys,
            checkpoints: controller::Checkpoints {
                every: self.checkpoint_every,
                ..Default::default()
            },
            verify_every: self.verify_every,
        })
    }
}

/// Runs the controller; exit code 1 with one line on stderr when it cannot.
pub fn run(args: ControllerArgs) -> ExitCode {
    let instance = match args.election.election() {
        Ok(election) => controller::Instance {
            identity: args.election.identity(),
            election,
        },
        Err(e) => {
            say(NAME, e);
            return ExitCode::FAILURE;
        }
    };
    block_on(NAME, serve(args, instance))
}

/// The command's name, as its stderr lines start.
const NAME: &str = "logbook controller";

async fn serve(args: ControllerArgs, instance: controller::Instance) -> Result<(), String> {
    let config = args.config()?;
    let client = args.kube.client().await?;
    let shutdown = shutdown_on_signals();
    let telemetry = controller::Telemetry::default();
    let requests = config.checkpoints.requests.clone();
    let commands = crate::admin::Commands::default().add("checkpoint", move || {
        let requests = requests.clone();
        async move {
            let taken = requests.request().await?;
            serde_json::to_string(&taken).map_err(|e| format!("cannot encode the answer: {e}"))
        }
    });
    let admin = args
        .admin
        .start_with(
            telemetry.health.clone(),
            telemetry.metrics.registry(),
            commands,
        )
        .await?;
    let result = controller::run_as(client, config, instance, shutdown, telemetry).await;
    admin.stop().await;
    result.map_err(|e| e.to_string())
}
