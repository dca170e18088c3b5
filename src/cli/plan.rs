//! `logbook plan`: the planner as a command-line tool, on YAML files instead of a cluster.

use crate::reconcile::{Planner, PlannerConfig};
use crate::record::{Action, Verb};
use crate::world::{APPLICATION, Observed, World};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `logbook plan`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  logbook plan -f examples/apps.yaml\n  logbook plan -f examples/apps.yaml --actual examples/actual.yaml -o table\n  logbook plan -f examples/apps.yaml -o yaml | kubectl apply -f -"
)]
pub struct PlanArgs {
    /// YAML file(s) of Applications (multi-document; `-` reads standard input).
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// YAML file(s) of the objects that exist now (Deployments, Services, Ingresses, or a
    /// `kind: List` as `kubectl get -o yaml` prints); empty when not given.
    #[arg(long, value_name = "FILE")]
    actual: Vec<PathBuf>,
    /// Output format: a table of actions, the objects to apply as YAML, or the actions as JSON.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// `spec.ingressClassName` of the shared Ingresses.
    #[arg(long, env = "LOGBOOK_INGRESS_CLASS", value_name = "CLASS")]
    ingress_class: Option<String>,
    /// Namespace of Applications and objects that name none.
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Yaml,
    Json,
}

/// Runs `logbook plan`.
pub fn run(args: PlanArgs) -> ExitCode {
    crate::process::exit("logbook plan", plan(&args).map(|out| print!("{out}")))
}

fn plan(args: &PlanArgs) -> Result<String, String> {
    let mut world = World::new();
    for file in &args.files {
        for (i, doc) in load_documents(file)?.into_iter().enumerate() {
            let at = || format!("{}: document {}", file.display(), i + 1);
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
            if kind != APPLICATION {
                return Err(format!(
                    "{}: kind {kind:?} is not an Application; pass existing objects with --actual",
                    at()
                ));
            }
            observe(&mut world, doc, &args.namespace).map_err(|e| format!("{}: {e}", at()))?;
        }
    }
    for file in &args.actual {
        for (i, doc) in load_documents(file)?.into_iter().enumerate() {
            let at = || format!("{}: document {}", file.display(), i + 1);
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let items = match kind.as_str() {
                "List" => doc
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                "Deployment" | "Service" | "Ingress" | APPLICATION => vec![doc],
                other => {
                    return Err(format!(
                        "{}: unknown kind {other:?}; --actual takes Deployments, Services, Ingresses, Applications or a List of them",
                        at()
                    ));
                }
            };
            for item in items {
                observe(&mut world, item, &args.namespace).map_err(|e| format!("{}: {e}", at()))?;
            }
        }
    }
    let planner = Planner::new(PlannerConfig {
        ingress_class: args.ingress_class.clone(),
        ..PlannerConfig::default()
    });
    let actions = planner.plan_all(&world);
    Ok(match args.output {
        Output::Table => table(&actions),
        Output::Yaml => yaml(&actions)?,
        Output::Json => serde_json::to_string_pretty(&actions).map_err(|e| e.to_string())? + "\n",
    })
}

/// Reads every YAML document of `path` (or standard input for `-`), skipping empty ones.
pub fn load_documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
        let msg = e.to_string();
        let first = msg
            .lines()
            .next()
            .unwrap_or("not valid YAML")
            .trim()
            .to_string();
        format!("{}: not valid YAML: {first}", path.display())
    })?;
    docs.into_iter()
        .filter(|d| !d.is_null())
        .enumerate()
        .map(|(i, d)| {
            if d.is_object() {
                Ok(d)
            } else {
                Err(format!(
                    "{}: document {} is not a mapping with apiVersion and kind",
                    path.display(),
                    i + 1
                ))
            }
        })
        .collect()
}

fn observe(world: &mut World, mut doc: Value, default_ns: &str) -> Result<(), String> {
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        meta.insert("namespace".into(), Value::String(default_ns.to_string()));
    }
    let (key, observed) = Observed::from_value(doc)?;
    world.observe(key, observed)
}

fn table(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "nothing to do: the objects already match what the Applications ask for\n"
            .to_string();
    }
    let rows: Vec<[String; 5]> = actions
        .iter()
        .map(|a| {
            [
                a.verb.to_string(),
                a.target.to_string(),
                a.app.clone().unwrap_or_else(|| "-".into()),
                a.reason.clone(),
                a.id.clone(),
            ]
        })
        .collect();
    let header = ["VERB", "TARGET", "APPLICATION", "REASON", "ID"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The objects to apply, as multi-document YAML; deletes and status writes become comments.
fn yaml(actions: &[Action]) -> Result<String, String> {
    let mut out = String::new();
    for a in actions {
        match (a.verb, &a.object) {
            (Verb::Create | Verb::Apply, Some(object)) => {
                let body = serde_saphyr::to_string(object).map_err(|e| e.to_string())?;
                out.push_str(&format!(
                    "---\n# {} {}: {} ({})\n{body}",
                    a.verb, a.target, a.reason, a.id
                ));
            }
            (Verb::Delete, _) => {
                out.push_str(&format!(
                    "---\n# delete {}: {} ({})\n",
                    a.target, a.reason, a.id
                ));
            }
            _ => out.push_str(&format!(
                "---\n# {} {}: {} ({})\n",
                a.verb, a.target, a.reason, a.id
            )),
        }
    }
    Ok(out)
}
