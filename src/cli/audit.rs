//! `logbook audit`: query the log, explain why an object is the way it is, check the hash chain.
//! Reads only, over a read-only connection: it never writes the log nor blocks the controller.

use crate::log::{Filter, LogError, LogReader, VerifyReport};
use crate::record::view as trail;
use crate::record::{Entry, EntryKind, Keys, ObjKey, view::body_json};
use crate::replay::query::{Listing, parse_time};
use crate::replay::timeline::{Subject, timeline_from};
use crate::replay::why::{WhyError, explain, nanos, narrate};
use crate::replay::{Point, ReplayError};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::{BufWriter, StdoutLock, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How often `audit log --follow` looks for new entries.
const POLL: Duration = Duration::from_millis(200);

/// Exit code: done (verify: the chain is intact).
const EXIT_OK: u8 = 0;
/// Exit code: a problem was found (verify: an entry was edited, removed or moved).
const EXIT_PROBLEM: u8 = 1;
/// Exit code: could not do it (bad flags, a missing or damaged log, an unknown object).
const EXIT_FAILED: u8 = 2;

/// Flags of `logbook audit`.
#[derive(Args, Debug)]
#[command(after_help = "Exit codes:\n  \
    0  done (verify: every entry intact)\n  \
    1  a problem was found (verify: an entry was edited, removed or moved)\n  \
    2  could not do it: bad flags, a missing, truncated or corrupt log, an unknown object\n\n\
    Examples:\n  \
    logbook audit log --app shop/web --since 2h\n  \
    logbook audit log --object deploy/shop/web --kind action,outcome -o json\n  \
    logbook audit log --follow\n  \
    logbook audit why Deployment/shop/web\n  \
    logbook audit why svc/shop/web --at 2025-03-14T03:12:00Z\n  \
    LOGBOOK_LOG=/var/lib/logbook/log.db logbook audit verify -o json")]
pub struct AuditArgs {
    /// The log file. Opened read-only: audit never writes it and never holds a lock the
    /// controller waits for, so it can run while the controller appends.
    #[arg(
        long,
        global = true,
        env = "LOGBOOK_LOG",
        value_name = "FILE",
        default_value = "logbook.db"
    )]
    log: PathBuf,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Print the entries that match, oldest first (newest last); --follow keeps printing as
    /// entries are appended.
    ///
    /// Filters combine: an entry is printed when it matches every one given. Times are RFC 3339
    /// (2025-03-14T03:12:00Z, or a date: 2025-03-14) or a duration meaning that long ago (90s,
    /// 10m, 2h). Nothing matching is not an error (exit 0, a hint on stderr).
    ///
    /// -o json prints one JSON object per line (JSON Lines), fields in this order:
    /// {"seq": 12, "id": "<uuid>", "at": "<RFC 3339, ns>", "kind": "event" (or plan, action,
    /// outcome, marker), "keys": {"namespace", "application", "object_kind", "object_name"}
    /// (each null when absent), "body": <the record, embedded Kubernetes objects as JSON>}.
    #[command(after_help = "Examples:\n  \
        logbook audit log\n  \
        logbook audit log --app shop/web --kind plan,action,outcome\n  \
        logbook audit log --object Deployment/shop/web --since 10m\n  \
        logbook audit log --since 2025-03-14T03:00:00Z --until 2025-03-14T04:00:00Z\n  \
        logbook audit log --from-seq 1200 --to-seq 1300 -o json | jq .body\n  \
        logbook audit log --kind outcome --follow")]
    Log(LogArgs),
    /// Explain an object: the last action that changed it, the plan that produced the action,
    /// the events that plan read, and the executor's outcome.
    ///
    /// Without an applied outcome, the last action planned for the object is shown and said to
    /// be unconfirmed; for an object logbook never acted on, the events recorded for it. A
    /// deleted object is said to be gone. --at asks about an earlier moment: only entries
    /// stamped at or before it count. Exit 2 when the log has no entry about the object.
    ///
    /// -o json prints the same chain as one JSON document: {"object", "as_of", "state"
    /// ("changed" | "planned" | "observed"), "deleted", "outcome", "action", "plan", "basis",
    /// "later_actions", "events", "notes"}.
    #[command(after_help = "Examples:\n  \
        logbook audit why Deployment/shop/web\n  \
        logbook audit why app/shop/web --at 30m\n  \
        logbook audit why Ingress/shop/logbook --at 2025-03-14T03:12:00Z -o json")]
    Why(WhyArgs),
    /// Check the hash chain from the first entry; name the first entry edited, removed or
    /// moved. Then check the file: SQLite's integrity check (its pages, and a version-1 log's
    /// audit indexes), and the audit keys against the entries. Exit 0 when intact, 1 when not.
    ///
    /// -o json prints {"ok": bool, "checked": n, "last_good_seq": n, "head": "<hex hash of the
    /// last intact entry>", "problem": null | {"seq": n, "description": "..."},
    /// "structure": null | "what is damaged", "append_only_guard": bool, "path": "..."}.
    #[command(after_help = "Examples:\n  \
        logbook audit verify\n  \
        logbook audit verify --log /backup/log.db -o json")]
    Verify(VerifyArgs),
    /// Tell the story of an Application (with its children) or of one object, in log order:
    /// each observation with the fields it changed, each plan that touched it, the actions and
    /// their reasons, and each outcome with its executor, attempt and resourceVersion.
    ///
    /// The same story as `logbook-replay timeline`. -o json prints one JSON object per step:
    /// {"seq", "at", "kind", "text", "details"}.
    #[command(after_help = "Examples:\n  \
        logbook audit timeline --app shop/web\n  \
        logbook audit timeline --object Deployment/shop/web --since 2h\n  \
        logbook audit timeline --app shop/web -o json")]
    Timeline(TimelineArgs),
}

/// Flags of `logbook audit timeline`.
#[derive(Args, Debug)]
#[group(id = "subject", required = true, multiple = false, args = ["app", "object"])]
struct TimelineArgs {
    /// The Application (NAMESPACE/NAME), with its children.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_app)]
    app: Option<String>,
    /// One object: KIND/NAMESPACE/NAME (KIND/NAME when cluster-scoped).
    #[arg(long, value_name = "KIND/NS/NAME", value_parser = parse_object)]
    object: Option<ObjKey>,
    /// Only steps at or after this time (RFC 3339, or a duration meaning that long ago: 10m).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only steps at or before this time (RFC 3339, or a duration meaning that long ago).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Output: one line per step, or one JSON object per step.
    #[arg(short, long, value_enum, default_value_t = ReportOutput::Text)]
    output: ReportOutput,
}

/// Flags of `logbook audit log`.
#[derive(Args, Debug)]
struct LogArgs {
    /// Only entries about this Application (NAMESPACE/NAME): its events, and the actions and
    /// outcomes of its children.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_app)]
    app: Option<String>,
    /// Only entries about this object: KIND/NAMESPACE/NAME (KIND/NAME when cluster-scoped).
    /// Kinds are case-insensitive; app, deploy, svc, ing and plurals are understood.
    #[arg(long, value_name = "KIND/NS/NAME", value_parser = parse_object)]
    object: Option<ObjKey>,
    /// Only entries about objects in this namespace.
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
    /// Only entries of these kinds: event, plan, action, outcome, marker (repeat the flag or
    /// separate with commas).
    #[arg(long, value_name = "KIND", value_delimiter = ',', value_parser = parse_kind)]
    kind: Vec<EntryKind>,
    /// Only entries at or after this time (RFC 3339, or a duration meaning that long ago: 10m).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339, or a duration meaning that long ago: 10m).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Only entries from this seq on (inclusive). Beyond the end of the log it is an error,
    /// unless --follow waits for it.
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
    from_seq: Option<u64>,
    /// Only entries up to this seq (inclusive); --follow stops once the log reaches it.
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
    to_seq: Option<u64>,
    /// Keep printing matching entries as they are appended (polls every 200 ms), until Ctrl-C,
    /// SIGTERM or standard output closes.
    #[arg(short, long)]
    follow: bool,
    /// Output: one line per entry (time, seq, kind, what it says), or JSON Lines.
    #[arg(short, long, value_enum, default_value_t = LogOutput::Table)]
    output: LogOutput,
}

/// Flags of `logbook audit why`.
#[derive(Args, Debug)]
struct WhyArgs {
    /// The object: KIND/NAMESPACE/NAME (KIND/NAME when cluster-scoped), e.g.
    /// Deployment/shop/web. Kinds are case-insensitive; app, deploy, svc, ing and plurals are
    /// understood.
    #[arg(value_name = "KIND/NS/NAME", value_parser = parse_object)]
    object: ObjKey,
    /// Explain the object as it was at this time (RFC 3339, or a duration meaning that long
    /// ago: 2h) instead of now: only entries stamped at or before it count.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<DateTime<Utc>>,
    /// Output: a readable narrative, or the same chain as one JSON document.
    #[arg(short, long, value_enum, default_value_t = ReportOutput::Text)]
    output: ReportOutput,
}

/// Flags of `logbook audit verify`.
#[derive(Args, Debug)]
struct VerifyArgs {
    /// Output: one line, or one JSON document (for CI).
    #[arg(short, long, value_enum, default_value_t = ReportOutput::Text)]
    output: ReportOutput,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogOutput {
    /// One line per entry: time, seq, kind and what it says.
    Table,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReportOutput {
    /// Readable text.
    Text,
    /// One JSON document.
    Json,
}

/// Why `logbook audit` stopped.
#[derive(Debug, thiserror::Error)]
enum AuditError {
    /// The log could not be opened or read.
    #[error("{0}")]
    Log(#[from] LogError),
    /// The question cannot be answered from this log (unknown object, a range beyond its end,
    /// contradictory flags).
    #[error("{0}")]
    Input(String),
    /// Writing to standard output failed.
    #[error("cannot write to standard output: {0}. Check where the output goes (disk full?)")]
    Output(std::io::Error),
    /// Standard output was closed (`| head`): stop quietly.
    #[error("standard output was closed")]
    Closed,
}

impl From<WhyError> for AuditError {
    fn from(e: WhyError) -> AuditError {
        match e {
            WhyError::Log(e) => AuditError::Log(e),
            WhyError::Unknown(message) => AuditError::Input(message),
        }
    }
}

/// Runs `logbook audit`; see [`AuditArgs`] for the exit codes.
pub fn run(args: AuditArgs) -> ExitCode {
    let result = open(&args.log).and_then(|reader| {
        let mut out = Out::new();
        let code = match &args.command {
            AuditCommand::Log(a) => log(&reader, a, &mut out),
            AuditCommand::Why(a) => why(&reader, a, &mut out),
            AuditCommand::Verify(a) => verify(&reader, a, &mut out),
            AuditCommand::Timeline(a) => timeline(&reader, a, &mut out),
        }?;
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(AuditError::Closed) => ExitCode::SUCCESS,
        Err(e) => {
            say(&e.to_string());
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Writes `logbook audit: MESSAGE` as one line on stderr (a closed stderr is ignored, not a
/// panic as with `eprintln!`).
fn say(message: &str) {
    let line = format!("logbook audit: {}\n", message.replace('\n', " "));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Opens the log read-only, with a hint on how to name it when there is none.
fn open(path: &Path) -> Result<LogReader, AuditError> {
    match LogReader::open(path) {
        Ok(r) => Ok(r),
        Err(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(AuditError::Input(format!(
                "there is no log at {} ({source}). Name the log with --log FILE or LOGBOOK_LOG \
                 (default: logbook.db in the current directory)",
                path.display()
            )))
        }
        // The library's message also suggests a path that does not exist yet (where a writer
        // would create a log); audit only reads, so point at the controller's log instead.
        Err(LogError::NotALog { path, reason }) => Err(AuditError::Input(format!(
            "{} is not a logbook log ({reason}); nothing was written to it. Name the log the \
             controller writes with --log FILE or LOGBOOK_LOG",
            path.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Standard output, locked and buffered; a closed pipe becomes [`AuditError::Closed`].
struct Out {
    w: BufWriter<StdoutLock<'static>>,
}

impl Out {
    fn new() -> Out {
        Out {
            w: BufWriter::new(std::io::stdout().lock()),
        }
    }

    fn line(&mut self, s: &str) -> Result<(), AuditError> {
        self.w
            .write_all(s.as_bytes())
            .and_then(|()| self.w.write_all(b"\n"))
            .map_err(write_error)
    }

    fn flush(&mut self) -> Result<(), AuditError> {
        self.w.flush().map_err(write_error)
    }
}

fn write_error(e: std::io::Error) -> AuditError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        AuditError::Closed
    } else {
        AuditError::Output(e)
    }
}

// ---------------------------------------------------------------------------------------------
// audit log

fn log(reader: &LogReader, args: &LogArgs, out: &mut Out) -> Result<u8, AuditError> {
    let path = reader.path().display().to_string();
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        return Err(AuditError::Input(format!(
            "--since {} is not before --until {}: no entry can match. Swap them or widen the range",
            secs(since),
            secs(until)
        )));
    }
    if let (Some(from), Some(to)) = (args.from_seq, args.to_seq)
        && from > to
    {
        return Err(AuditError::Input(format!(
            "--from-seq {from} is after --to-seq {to}: no entry can match. Swap them"
        )));
    }
    let mut head = reader.last_seq()?;
    if let Some(from) = args.from_seq
        && from > head
        && !args.follow
    {
        return Err(AuditError::Input(format!(
            "--from-seq {from} is beyond the end of {path}: its last entry is seq {head}. \
             Pick a seq up to {head}, or add --follow to wait for it"
        )));
    }
    let listing = Listing {
        filter: Filter {
            application: args.app.clone(),
            namespace: args.namespace.clone(),
            object: args.object.clone(),
            kinds: args.kind.clone(),
            since: args.since,
            until: args.until,
            ..Filter::new()
        },
        from_seq: args.from_seq,
        to_seq: args.to_seq,
    };
    let render = |e: &Entry| render_entry(reader.path(), e, args.output);
    let shown = print_window(reader, &listing, 1, head, out, &render)?;
    out.flush()?;
    if !args.follow {
        if shown == 0 {
            say(&nothing_matched(reader, head)?);
        }
        return Ok(EXIT_OK);
    }
    if listing.complete_at(head) {
        return Ok(EXIT_OK);
    }
    let runtime = crate::process::run::local_runtime().map_err(|e| {
        AuditError::Input(format!(
            "cannot start the timer and signal handling --follow needs: {e}"
        ))
    })?;
    runtime.block_on(async {
        let stop = stop_requested();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(EXIT_OK),
                () = tokio::time::sleep(POLL) => {}
            }
            let now = reader.last_seq()?;
            if now < head {
                return Err(AuditError::Input(format!(
                    "{path} now ends at seq {now}, before seq {head} already printed: the file \
                     was replaced or cut. Run `logbook audit verify` on it"
                )));
            }
            if now > head {
                print_window(reader, &listing, head + 1, now, out, &render)?;
                out.flush()?;
                head = now;
            }
            if listing.complete_at(head) {
                return Ok(EXIT_OK);
            }
        }
    })
}

/// Prints the entries of `listing` whose seq is in `from..=to`; returns how many.
fn print_window(
    reader: &LogReader,
    listing: &Listing,
    from: u64,
    to: u64,
    out: &mut Out,
    render: &dyn Fn(&Entry) -> Result<String, AuditError>,
) -> Result<u64, AuditError> {
    let Some(window) = listing.window(from, to) else {
        return Ok(0);
    };
    let mut shown = 0;
    for entry in reader.query(&window) {
        out.line(&render(&entry?)?)?;
        shown += 1;
    }
    Ok(shown)
}

/// The hint printed when `audit log` matched nothing.
fn nothing_matched(reader: &LogReader, head: u64) -> Result<String, AuditError> {
    let path = reader.path().display();
    if head == 0 {
        return Ok(format!("{path} is empty: nothing has been recorded yet"));
    }
    let first = reader.get(1)?.map(|e| secs(e.at)).unwrap_or_default();
    let last = reader.get(head)?.map(|e| secs(e.at)).unwrap_or_default();
    Ok(format!(
        "no entry of {path} matches these filters (it holds seq 1..={head}, {first} to {last}). \
         Loosen the filters; `logbook audit log` alone lists everything"
    ))
}

/// One entry as `audit log` prints it.
fn render_entry(path: &Path, e: &Entry, output: LogOutput) -> Result<String, AuditError> {
    match output {
        LogOutput::Table => Ok(format!("{}  {}", secs(e.at), trail::line(e))),
        LogOutput::Json => {
            let body = body_json(&e.body).map_err(|err| {
                AuditError::Input(format!(
                    "{} entry {}: {err}. Run `logbook audit verify` on the file",
                    path.display(),
                    e.seq
                ))
            })?;
            let line = EntryLine {
                seq: e.seq,
                id: e.id.to_string(),
                at: nanos(e.at),
                kind: e.kind().as_str(),
                keys: &e.keys,
                body,
                delta: crate::record::view::delta_json(e),
            };
            serde_json::to_string(&line).map_err(|err| {
                AuditError::Input(format!(
                    "{} entry {}: cannot encode it as JSON: {err}",
                    path.display(),
                    e.seq
                ))
            })
        }
    }
}

/// One line of `audit log -o json`; the field order is the output's.
#[derive(Serialize)]
struct EntryLine<'a> {
    seq: u64,
    id: String,
    at: String,
    kind: &'static str,
    keys: &'a Keys,
    /// The record, objects whole (rebuilt when stored as patches).
    body: serde_json::Value,
    /// How the object is stored when it is stored as a patch (see `view::delta_json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<serde_json::Value>,
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_requested() {
    if crate::process::signalled().await.is_err() {
        // No signal handling: follow until standard output closes.
        std::future::pending::<()>().await;
    }
}

// ---------------------------------------------------------------------------------------------
// audit why

fn why(reader: &LogReader, args: &WhyArgs, out: &mut Out) -> Result<u8, AuditError> {
    let why = explain(reader, &args.object, args.at)?;
    match args.output {
        ReportOutput::Json => {
            let text = serde_json::to_string_pretty(&why)
                .map_err(|e| AuditError::Input(format!("cannot encode the answer as JSON: {e}")))?;
            out.line(&text)?;
        }
        ReportOutput::Text => {
            for line in narrate(&why) {
                out.line(&line)?;
            }
        }
    }
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// audit timeline

fn timeline(reader: &LogReader, args: &TimelineArgs, out: &mut Out) -> Result<u8, AuditError> {
    let subject = match (&args.app, &args.object) {
        (Some(app), _) => Subject::App(app.clone()),
        (None, Some(key)) => Subject::Object(key.clone()),
        (None, None) => {
            return Err(AuditError::Input(
                "say whose timeline: --app NS/NAME or --object KIND/NS/NAME".into(),
            ));
        }
    };
    let story = timeline_from(
        reader,
        &subject,
        args.since.map(Point::Time),
        args.until.map(Point::Time),
        1,
    )
    .map_err(|e| match e {
        ReplayError::Log(e) => AuditError::Log(e),
        other => AuditError::Input(other.to_string()),
    })?;
    match args.output {
        ReportOutput::Json => {
            for it in &story.items {
                let line = serde_json::to_string(it)
                    .map_err(|e| AuditError::Input(format!("cannot encode a step: {e}")))?;
                out.line(&line)?;
            }
        }
        ReportOutput::Text => {
            let mut text = Vec::new();
            story
                .write_text(&subject, &mut text)
                .map_err(AuditError::Output)?;
            out.line(String::from_utf8_lossy(&text).trim_end())?;
        }
    }
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// audit verify

/// `audit verify -o json`.
#[derive(Serialize)]
struct VerifyJson {
    ok: bool,
    checked: u64,
    last_good_seq: u64,
    head: String,
    problem: Option<ProblemJson>,
    /// What the file's checks (SQLite's integrity check, the audit keys) found, if anything.
    structure: Option<String>,
    append_only_guard: bool,
    path: String,
}

#[derive(Serialize)]
struct ProblemJson {
    seq: u64,
    description: String,
}

fn verify(reader: &LogReader, args: &VerifyArgs, out: &mut Out) -> Result<u8, AuditError> {
    let report: VerifyReport = reader.verify()?;
    match args.output {
        ReportOutput::Text => out.line(&report.to_string())?,
        ReportOutput::Json => {
            let json = VerifyJson {
                ok: report.is_ok(),
                checked: report.checked,
                last_good_seq: report.last_good_seq,
                head: hex::encode(report.head),
                problem: report.problem.as_ref().map(|p| ProblemJson {
                    seq: p.seq(),
                    description: p.to_string(),
                }),
                structure: report.structure.clone(),
                append_only_guard: report.append_only_guard,
                path: report.path.display().to_string(),
            };
            let text = serde_json::to_string(&json)
                .map_err(|e| AuditError::Input(format!("cannot encode the report as JSON: {e}")))?;
            out.line(&text)?;
        }
    }
    Ok(if report.is_ok() {
        EXIT_OK
    } else {
        EXIT_PROBLEM
    })
}

// ---------------------------------------------------------------------------------------------
// flag parsers

/// Parses `NAMESPACE/NAME`.
fn parse_app(s: &str) -> Result<String, String> {
    match s.split('/').collect::<Vec<_>>().as_slice() {
        [ns, name] if !ns.is_empty() && !name.is_empty() => Ok(s.to_string()),
        _ => Err(format!(
            "`{s}` is not an Application; expected NAMESPACE/NAME, e.g. shop/web"
        )),
    }
}

/// Parses `KIND/NAMESPACE/NAME` (or `KIND/NAME`), with the kind's usual short names and plurals.
fn parse_object(s: &str) -> Result<ObjKey, String> {
    let mut key = ObjKey::parse(s)?;
    key.kind = canonical_kind(&key.kind);
    Ok(key)
}

/// `deploy`, `deployments`, `DEPLOYMENT` → `Deployment`; unknown kinds are kept as written.
fn canonical_kind(kind: &str) -> String {
    known_kind(kind).map_or_else(|| kind.to_string(), str::to_string)
}

/// The kind logbook records that `kind` names (short names, plurals, any case, and kubectl's
/// `RESOURCE.GROUP` forms such as `deployments.apps`), or `None`.
pub(crate) fn known_kind(kind: &str) -> Option<&'static str> {
    let lower = kind.to_ascii_lowercase();
    let resource = match lower.split_once('.') {
        Some((r, "logbook.dev" | "apps" | "networking.k8s.io")) => r,
        _ => lower.as_str(),
    };
    Some(match resource {
        "app" | "apps" | "application" | "applications" => "Application",
        "deploy" | "deployment" | "deployments" => "Deployment",
        "svc" | "service" | "services" => "Service",
        "ing" | "ingress" | "ingresses" => "Ingress",
        _ => return None,
    })
}

/// Parses an entry kind, case-insensitively, singular or plural.
fn parse_kind(s: &str) -> Result<EntryKind, String> {
    let lower = s.trim().to_ascii_lowercase();
    let singular = lower.strip_suffix('s').unwrap_or(&lower);
    EntryKind::parse(&lower)
        .or_else(|| EntryKind::parse(singular))
        .ok_or_else(|| {
            format!("`{s}` is not an entry kind; use event, plan, action, outcome or marker")
        })
}

// ---------------------------------------------------------------------------------------------
// times

/// RFC 3339 to the second, as tables show it.
fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_dates_or_durations_ago() {
        let t = parse_time("2025-03-14T03:12:00Z").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secs(t), "2025-03-14T03:12:00Z");
        let t = parse_time("2025-03-14T05:12:00+02:00").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secs(t), "2025-03-14T03:12:00Z");
        let t = parse_time("2025-03-14").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secs(t), "2025-03-14T00:00:00Z");
        let before = Utc::now();
        let t = parse_time("10m").unwrap_or_else(|e| panic!("{e}"));
        let ago = before - t;
        assert!(
            ago > chrono::Duration::seconds(590) && ago < chrono::Duration::seconds(610),
            "{ago}"
        );
        for bad in ["yesterday", "10", "10x", "2025-13-01", ""] {
            assert!(parse_time(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn objects_accept_short_kinds_and_apps_need_a_namespace() {
        let k = parse_object("deploy/shop/web").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k, ObjKey::new("Deployment", "shop", "web"));
        let k = parse_object("SVC/shop/web").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.kind, "Service");
        let k = parse_object("ingresses/shop/logbook").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.kind, "Ingress");
        let k = parse_object("app/shop/web").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.kind, "Application");
        let k = parse_object("ConfigMap/shop/x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.kind, "ConfigMap");
        assert!(parse_object("web").is_err());
        assert!(parse_app("shop/web").is_ok());
        assert!(parse_app("web").is_err());
        assert!(parse_app("a/b/c").is_err());
    }

    #[test]
    fn kinds_parse_singular_or_plural() {
        assert_eq!(parse_kind("event"), Ok(EntryKind::Event));
        assert_eq!(parse_kind("Outcomes"), Ok(EntryKind::Outcome));
        assert_eq!(parse_kind("marker"), Ok(EntryKind::Marker));
        assert!(parse_kind("step").is_err());
    }
}
