//! `logbook-replay`: offline verification and replay of a logbook log: verify, state at a
//! point, an object's timeline, what-if under another configuration, export.
//!
//! Parsing and printing only; the work is `logbook::replay`. It never writes to the log, so it
//! can run on the live file while the controller appends (or, better, on a copy).

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use logbook::cli::{docs, summary};
use logbook::log::{Filter, LogReader};
use logbook::record::{EntryKind, ObjKey};
use logbook::replay::{
    self, Point, ReplayError, Subject, VerifyOptions, WhatIfOptions, state_document, world_at_from,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code: the replay found a problem (a divergence, a broken chain, a truncated log).
const FOUND: u8 = 1;
/// Exit code: the replay could not run (missing or unreadable log, bad arguments).
const CANNOT: u8 = 2;

/// Offline replay of a logbook log.
///
/// Reads the log the controller writes (`--log`, or LOGBOOK_LOG) and never writes to it: run it
/// on a copy of a production log, or on the live file while the controller appends.
///
/// Exit codes: 0 when all is well, 1 when the replay found a problem (a divergence, a broken or
/// truncated log), 2 when it could not run (no such file, not a log, a point beyond the end).
#[derive(Parser, Debug)]
#[command(name = "logbook-replay", version, propagate_version = true)]
struct Cli {
    /// The log file.
    #[arg(
        long,
        global = true,
        env = "LOGBOOK_LOG",
        value_name = "FILE",
        default_value = "logbook.db"
    )]
    log: PathBuf,
    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fold the log and recompute every recorded plan from exactly the prefix it read.
    ///
    /// Prints counts and a digest of the recomputed action stream. On a divergence it stops at
    /// the first one: the plan's position, recorded (-) and recomputed (+) actions as a diff,
    /// and the events that plan read last; exit code 1. The hash chain is checked too, and so is
    /// every checkpoint on the way: it must hold exactly the world the entries before it fold
    /// to (same digest), or it is a divergence too.
    #[command(after_help = "Examples:\n  \
        logbook-replay verify --log /backup/log.db\n  \
        logbook-replay verify --log log.db --from 120000 --until 2026-11-26T03:30:00Z --json\n\n\
        With --from, replay starts from the nearest checkpoint at or before it (the controller\n\
        records one every --checkpoint-every entries), so its time grows with what came after the\n\
        checkpoint, not with the log. It trusts that checkpoint: run verify without --from to check\n\
        every checkpoint and the whole chain.")]
    Verify(VerifyArgs),
    /// The world as the controller saw it at a point: Applications, managed objects and
    /// pending actions, as a v1 List kubectl can read.
    ///
    /// Objects with an action on its way carry the annotation logbook.dev/pending-action;
    /// objects being created (not observed yet) carry logbook.dev/replay-state: pending-create.
    #[command(after_help = "Examples:\n  \
        logbook-replay state --log log.db --at 2026-11-26T03:12:00Z -n shop\n  \
        logbook-replay state --log log.db --at 4812 -o json | jq '.items[].metadata.name'")]
    State(StateArgs),
    /// An incident's narrative for one Application or object: what was observed (and what
    /// changed), what was planned and why, what was applied, by which executor, how it went.
    #[command(after_help = "Examples:\n  \
        logbook-replay timeline --log log.db --app shop/storefront --since 2026-11-26T03:00:00Z\n  \
        logbook-replay timeline --log log.db --object Deployment/shop/storefront")]
    Timeline(TimelineArgs),
    /// Recompute the history under another configuration (or this build's planner) and list,
    /// action by action, what would have been done differently.
    ///
    /// Each recorded plan is recomputed from the world as recorded at that point. Without
    /// --config the log's own configuration is used, so this shows what this build of the
    /// planner would have decided differently from the one that ran: try a new version against
    /// last night's incident before it ships.
    #[command(after_help = "Examples:\n  \
        logbook-replay what-if --log log.db --config new-defaults.yaml\n  \
        echo 'livenessProbes: true' > f.yaml && logbook-replay what-if --log log.db --config f.yaml --json\n\n\
        A configuration file sets any of: ingressClass, pathType (Prefix|Exact), containerName,\n\
        defaultRequests {cpu, memory}, livenessProbes (true|false); the rest keep the log's values.")]
    WhatIf(WhatIfArgs),
    /// Entries as JSON Lines (seq, id, at, kind, keys, body, prev_hash, hash), for jq and
    /// notebooks.
    #[command(after_help = "Examples:\n  \
        logbook-replay export --log log.db --from 1000 --until 2000 > slice.jsonl\n  \
        logbook-replay export --log log.db --app shop/storefront --kind outcome | jq .body.result")]
    Export(ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
        source <(logbook-replay completions bash)\n  \
        logbook-replay completions fish > ~/.config/fish/completions/logbook-replay.fish")]
    Completions(docs::CompletionsArgs),
    /// Write the man pages of logbook-replay and of each of its subcommands.
    #[command(after_help = "Examples:\n  \
        logbook-replay man | man -l -\n  \
        logbook-replay man --dir ~/.local/share/man/man1")]
    Man(docs::ManArgs),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Check plans from this seq on, starting from the nearest checkpoint at or before it
    /// (loaded instead of folding the log from its start, its digest checked first; a damaged
    /// one is passed over for an earlier one). The hash chain is then checked from that
    /// checkpoint on. A log without checkpoints is folded from its start, as before.
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    from: u64,
    /// Stop after this seq or time (RFC 3339).
    #[arg(long, value_name = "SEQ|TIME")]
    until: Option<Point>,
    /// Write the report as JSON (for CI) instead of text.
    #[arg(long)]
    json: bool,
    /// Skip the hash-chain check (only the replay).
    #[arg(long)]
    skip_chain: bool,
    /// Print every unreadable entry the report lists; the text report otherwise shows the
    /// first few past a screenful. JSON always has them all.
    #[arg(long)]
    all: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
struct StateArgs {
    /// The point: a seq, or a time (RFC 3339; the last entry at or before it).
    #[arg(long, value_name = "SEQ|TIME")]
    at: Point,
    /// Start from the nearest checkpoint at or before this seq instead of the start of the
    /// log (at most --at; a time --at is then looked for after that checkpoint).
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    from: u64,
    /// Only this namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    output: Format,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("subject").required(true).args(["app", "object"]))]
struct TimelineArgs {
    /// An Application, NAMESPACE/NAME: it, its children, its plans and outcomes.
    #[arg(long, value_name = "NS/NAME")]
    app: Option<String>,
    /// One object, KIND/NAMESPACE/NAME (e.g. Deployment/shop/web).
    #[arg(long, value_name = "KIND/NS/NAME")]
    object: Option<String>,
    /// From this seq or time.
    #[arg(long, value_name = "SEQ|TIME")]
    since: Option<Point>,
    /// Up to this seq or time.
    #[arg(long, value_name = "SEQ|TIME")]
    until: Option<Point>,
    /// The story from this seq on, reading the log from the nearest checkpoint at or before it
    /// instead of from its start (what the checkpoint holds is what the first steps are
    /// compared with).
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    from: u64,
    /// One JSON object per step instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct WhatIfArgs {
    /// The planner settings to try (YAML or JSON); unset: the log's own, with this build.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only plans from this seq on, starting from the nearest checkpoint at or before it
    /// instead of folding the log from its start.
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    from: u64,
    /// Stop after this seq or time.
    #[arg(long, value_name = "SEQ|TIME")]
    until: Option<Point>,
    /// Write the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print every plan, Application and object affected; the text report otherwise
    /// summarizes lists past a screenful (counts per namespace, the first few). JSON always
    /// has them all.
    #[arg(long)]
    all: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum ExportFormat {
    Jsonl,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    /// From this seq or time.
    #[arg(long, value_name = "SEQ|TIME")]
    from: Option<Point>,
    /// Up to this seq or time.
    #[arg(long, value_name = "SEQ|TIME")]
    until: Option<Point>,
    /// Only entries about this Application (NAMESPACE/NAME).
    #[arg(long, value_name = "NS/NAME")]
    app: Option<String>,
    /// Only entries about this object (KIND/NAMESPACE/NAME).
    #[arg(long, value_name = "KIND/NS/NAME")]
    object: Option<String>,
    /// Only these kinds (event, plan, action, outcome, marker); repeat or separate by commas.
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    kind: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // These two read no log.
    match &cli.command {
        Command::Completions(a) => return docs::run_completions(Cli::command(), a),
        Command::Man(a) => return docs::run_man(Cli::command(), a),
        _ => {}
    }
    let result = match LogReader::open(&cli.log) {
        Err(e) => Err(Failure::Cannot(e.to_string())),
        Ok(reader) => run(&cli, &reader),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Cannot(msg)) => {
            logbook::process::say("logbook-replay", msg);
            ExitCode::from(CANNOT)
        }
        Err(Failure::Pipe) => ExitCode::SUCCESS,
    }
}

/// Why a command ended early.
enum Failure {
    /// It could not run: one line for stderr.
    Cannot(String),
    /// Whoever read our output went away (`| head`): not an error.
    Pipe,
}

impl From<ReplayError> for Failure {
    fn from(e: ReplayError) -> Failure {
        Failure::Cannot(e.to_string())
    }
}

impl From<logbook::log::LogError> for Failure {
    fn from(e: logbook::log::LogError) -> Failure {
        Failure::Cannot(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::Pipe
        } else {
            Failure::Cannot(format!("cannot write the output: {e}"))
        }
    }
}

fn run(cli: &Cli, reader: &LogReader) -> Result<ExitCode, Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match &cli.command {
        Command::Verify(a) => verify(cli, reader, a, &mut out)?,
        Command::State(a) => state(cli, reader, a, &mut out)?,
        Command::Timeline(a) => timeline(reader, a, &mut out)?,
        Command::WhatIf(a) => what_if(cli, reader, a, &mut out)?,
        Command::Export(a) => export(reader, a, &mut out)?,
        // Answered by `main` before any log is opened.
        Command::Completions(_) | Command::Man(_) => ExitCode::SUCCESS,
    };
    out.flush()?;
    Ok(code)
}

/// A progress bar over the log's seqs with rate and ETA, or nothing when stderr is not a
/// terminal or `--quiet`.
fn progress(cli: &Cli, reader: &LogReader, what: &str) -> ProgressBar {
    let total = reader.last_seq().unwrap_or(0);
    if cli.quiet || !std::io::stderr().is_terminal() || total < 4 * replay::PROGRESS_EVERY {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {human_pos}/{human_len} entries, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

fn verify(
    cli: &Cli,
    reader: &LogReader,
    a: &VerifyArgs,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let bar = progress(cli, reader, "verifying");
    let tick = |seq: u64| bar.set_position(seq);
    let report = replay::verify(
        reader,
        &VerifyOptions {
            from: a.from,
            until: a.until,
            skip_chain: a.skip_chain,
            progress: Some(&tick),
            ..VerifyOptions::default()
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| Failure::Cannot(format!("cannot encode the report: {e}")))?;
        if let Some(map) = value.as_object_mut() {
            map.insert("ok".into(), report.is_ok().into());
        }
        writeln!(out, "{value}")?;
    } else {
        let first = report.started_from.unwrap_or(1);
        writeln!(
            out,
            "{}: entries {first}..={} replayed{}{}",
            report.path.display(),
            report.replayed_to,
            match report.started_from {
                Some(c) => format!(
                    ", from the checkpoint at entry {c} (the world at entry {})",
                    c.saturating_sub(1)
                ),
                None => String::new(),
            },
            if report.replayed_to < report.log_last_seq {
                format!(" (the log goes on to {})", report.log_last_seq)
            } else {
                String::new()
            }
        )?;
        for note in &report.notes {
            writeln!(out, "  note      {note}")?;
        }
        let chain = match (&report.chain_problem, report.chain_from) {
            (Some(p), _) => p.clone(),
            (None, None) => "not checked".to_string(),
            (None, Some(1)) => "intact".to_string(),
            (None, Some(c)) => format!(
                "intact from entry {c} on (entries before it not checked: verify without --from \
                 checks the whole chain)"
            ),
        };
        writeln!(out, "  chain     {chain}")?;
        writeln!(
            out,
            "  entries   {} ({} events, {} plans, {} actions, {} outcomes, {} markers)",
            report.entries,
            report.events,
            report.plans,
            report.actions,
            report.outcomes,
            report.markers
        )?;
        writeln!(
            out,
            "  plans     {} recomputed identically{}",
            report.plans_identical,
            if a.from > 1 {
                format!(" (from seq {})", a.from)
            } else {
                String::new()
            }
        )?;
        writeln!(out, "  actions   {} re-derived identically", report.actions)?;
        writeln!(
            out,
            "  checkpoints {} found holding exactly the world the log folds to",
            report.checkpoints
        )?;
        writeln!(out, "  digest    sha256:{}", report.digest)?;
        if !report.rejected.is_empty() {
            writeln!(
                out,
                "  unreadable entries the controller ignored too: {}",
                report.rejected.len()
            )?;
            let shown = summary::shown(report.rejected.len(), a.all);
            for (seq, why) in report.rejected.iter().take(shown) {
                writeln!(out, "    {seq}: {why}")?;
            }
            if let Some(more) = summary::more(report.rejected.len(), shown, "entries") {
                writeln!(out, "    {more}")?;
            }
        }
        if let Some(stopped) = &report.stopped {
            writeln!(out, "STOPPED: {stopped}")?;
        }
        if let Some(d) = &report.divergence {
            let scope = if d.scope.is_empty() {
                "the whole world".to_string()
            } else {
                d.scope
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match d.kind {
                "plan" => writeln!(
                    out,
                    "DIVERGENCE at plan {} (recorded {}, read the log up to {}, planned {scope})",
                    d.plan_seq, d.at, d.upto_seq
                )?,
                kind => writeln!(
                    out,
                    "DIVERGENCE at {kind} {} (recorded {}, after entry {})",
                    d.plan_seq, d.at, d.upto_seq
                )?,
            }
            writeln!(out, "  {}", d.why)?;
            writeln!(out, "  the events that plan read last:")?;
            for (_, line) in &d.last_events {
                writeln!(out, "    {line}")?;
            }
            writeln!(out, "  recorded (-) against recomputed (+):")?;
            for line in d.diff.lines() {
                writeln!(out, "    {line}")?;
            }
        }
        if report.is_ok() {
            writeln!(out, "OK: every plan recomputed identically")?;
        }
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FOUND)
    })
}

fn state(
    cli: &Cli,
    reader: &LogReader,
    a: &StateArgs,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let bar = progress(cli, reader, "folding");
    let tick = |seq: u64| bar.set_position(seq);
    let world = world_at_from(reader, a.at, a.from, Some(&tick))?;
    bar.finish_and_clear();
    for note in &world.notes {
        eprintln!("logbook-replay: note: {note}");
    }
    let doc = state_document(&world, a.namespace.as_deref());
    match a.output {
        Format::Json => {
            let text = serde_json::to_string_pretty(&doc)
                .map_err(|e| Failure::Cannot(format!("cannot encode the state: {e}")))?;
            writeln!(out, "{text}")?;
        }
        Format::Yaml => {
            let world_view = world.fold.world();
            writeln!(
                out,
                "# the world as logbook saw it at entry {}{}: {} Applications, {} objects, {} \
                 actions pending",
                world.seq,
                world
                    .at
                    .map(|t| format!(
                        " ({})",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ))
                    .unwrap_or_default(),
                world_view.app_count(),
                world_view.objects().count(),
                world_view.pending_actions().count()
            )?;
            writeln!(out, "# log: {}", reader.path().display())?;
            if let Some(c) = world.started_from {
                writeln!(out, "# folded from the checkpoint at entry {c}")?;
            }
            let text = serde_saphyr::to_string(&doc)
                .map_err(|e| Failure::Cannot(format!("cannot encode the state: {e}")))?;
            write!(out, "{text}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn subject(app: Option<&str>, object: Option<&str>) -> Result<Option<Subject>, Failure> {
    if let Some(app) = app {
        return match app.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Some(Subject::App(app.to_string())))
            }
            _ => Err(Failure::Cannot(format!(
                "`{app}` is not an Application reference; expected NAMESPACE/NAME, e.g. \
                 shop/storefront"
            ))),
        };
    }
    if let Some(object) = object {
        return ObjKey::parse(object)
            .map(|k| Some(Subject::Object(k)))
            .map_err(Failure::Cannot);
    }
    Ok(None)
}

fn timeline(
    reader: &LogReader,
    a: &TimelineArgs,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let Some(subject) = subject(a.app.as_deref(), a.object.as_deref())? else {
        return Err(Failure::Cannot(
            "say whose timeline: --app NS/NAME or --object KIND/NS/NAME".into(),
        ));
    };
    let from = (a.from > 1).then_some(Point::Seq(a.from));
    for p in [a.since, a.until, from].into_iter().flatten() {
        replay::check_within(reader, p)?;
    }
    let timeline = replay::timeline_from(reader, &subject, a.since, a.until, a.from)?;
    for note in &timeline.notes {
        eprintln!("logbook-replay: note: {note}");
    }
    if a.json {
        for it in &timeline.items {
            let line = serde_json::to_string(it)
                .map_err(|e| Failure::Cannot(format!("cannot encode a step: {e}")))?;
            writeln!(out, "{line}")?;
        }
    } else {
        timeline.write_text(&subject, out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn what_if(
    cli: &Cli,
    reader: &LogReader,
    a: &WhatIfArgs,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let config = match &a.config {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::Cannot(format!(
                    "cannot read the configuration {}: {e}",
                    path.display()
                ))
            })?;
            Some(
                replay::parse_overlay(&text)
                    .map_err(|e| Failure::Cannot(format!("{}: {e}", path.display())))?,
            )
        }
    };
    let bar = progress(cli, reader, "recomputing");
    let tick = |seq: u64| bar.set_position(seq);
    let report = replay::what_if(
        reader,
        &WhatIfOptions {
            config,
            from: a.from,
            until: a.until,
            progress: Some(&tick),
            ..WhatIfOptions::default()
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        let text = serde_json::to_string(&report)
            .map_err(|e| Failure::Cannot(format!("cannot encode the report: {e}")))?;
        writeln!(out, "{text}")?;
    } else {
        let tried = match &report.config {
            None => "this build's planner under the log's own configuration".to_string(),
            Some(c) => format!(
                "the log's configuration with {}",
                serde_json::Value::Object(c.clone())
            ),
        };
        writeln!(
            out,
            "{}: {} plans recomputed with {tried}; {} would have differed",
            report.path.display(),
            report.plans,
            report.plans_differing
        )?;
        if let Some(c) = report.started_from {
            writeln!(out, "(from the checkpoint at entry {c})")?;
        }
        for note in &report.notes {
            writeln!(out, "note: {note}")?;
        }
        let plans = summary::shown(report.plan_changes.len(), a.all);
        for p in &report.plan_changes[..plans] {
            writeln!(out, "plan {} ({}):", p.plan_seq, p.at)?;
            for c in &p.changes {
                match c {
                    replay::ActionChange::Added { action } => writeln!(
                        out,
                        "  + would also {} {} ({})",
                        action.verb, action.target, action.reason
                    )?,
                    replay::ActionChange::Removed { action } => writeln!(
                        out,
                        "  - would not {} {} ({})",
                        action.verb, action.target, action.reason
                    )?,
                    replay::ActionChange::Changed {
                        recorded, fields, ..
                    } => {
                        writeln!(
                            out,
                            "  ~ would {} {} differently:",
                            recorded.verb, recorded.target
                        )?;
                        for f in fields {
                            writeln!(out, "      {f}")?;
                        }
                    }
                }
            }
        }
        if let Some(more) = summary::more(report.plan_changes.len(), plans, "plans") {
            writeln!(out, "{more}")?;
        }
        if let Some(s) = &report.stopped {
            writeln!(out, "STOPPED: {s}")?;
        }
        writeln!(
            out,
            "Applications affected: {}",
            summary::names(
                report.applications.iter().map(String::as_str),
                summary::namespace_of_name,
                a.all
            )
        )?;
        let objects: Vec<String> = report.objects.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "objects affected: {}",
            summary::names(
                objects.iter().map(String::as_str),
                summary::namespace_of_object,
                a.all
            )
        )?;
    }
    Ok(if report.stopped.is_some() {
        ExitCode::from(FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

fn export(reader: &LogReader, a: &ExportArgs, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let ExportFormat::Jsonl = a.format;
    let mut filter = Filter::new();
    if let Some(Subject::App(app)) = subject(a.app.as_deref(), None)? {
        filter = filter.application(&app);
    }
    if let Some(Subject::Object(key)) = subject(None, a.object.as_deref())? {
        filter = filter.object(&key);
    }
    let mut kinds = Vec::new();
    for k in &a.kind {
        kinds.push(EntryKind::parse(k.trim()).ok_or_else(|| {
            Failure::Cannot(format!(
                "`{k}` is not an entry kind; use event, plan, action, outcome or marker"
            ))
        })?);
    }
    if !kinds.is_empty() {
        filter = filter.kinds(&kinds);
    }
    for p in [a.from, a.until].into_iter().flatten() {
        replay::check_within(reader, p)?;
    }
    let (mut since, mut until) = (None, None);
    let (mut lo, mut hi) = (1, u64::MAX);
    match a.from {
        Some(Point::Seq(s)) => lo = s,
        Some(Point::Time(t)) => since = Some(t),
        None => {}
    }
    match a.until {
        Some(Point::Seq(s)) => hi = s,
        Some(Point::Time(t)) => until = Some(t),
        None => {}
    }
    if lo > hi {
        return Err(Failure::Cannot(format!(
            "--from {lo} comes after --until {hi}; nothing to export"
        )));
    }
    filter = filter.seqs(lo..=hi).between(since, until);
    let mut n = 0u64;
    for e in reader.query(&filter) {
        let e = e?;
        writeln!(out, "{}", logbook::record::view::entry_json(&e))?;
        n += 1;
    }
    if n == 0 {
        eprintln!("logbook-replay: no entry matched");
    }
    Ok(ExitCode::SUCCESS)
}
