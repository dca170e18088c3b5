//! UI bench: how long `logbook ui` takes to answer the timeline's first screen and a zoom on a
//! generated log, through HTTP from its in-process server, against the library call `audit log`
//! makes for the same window, as ratios in the same run.
//!
//! The log is the replay bench's simulated history (`logbook_testkit::history::generate` at
//! `Load::BENCH`: the real controller core, 1,000 Applications in 10 namespaces), `UI_ENTRIES`
//! entries long (default 200,000; the 1,000,000-entry log takes hours to generate on a small
//! machine), generated in `/dev/shm` when there is one and cached under
//! `$CARGO_TARGET_DIR/bench-data/ui-N.db`.
//!
//! Timed, each as p50 and p99 of `SAMPLES` requests and with criterion:
//! (a) the first screen: `GET /api/timeline` without a window (the last 20,000 entries: counts
//!     per lane and bucket), against (a') `audit log --from-seq` over those entries (the
//!     library's `LogReader::query`, every entry read and decoded);
//! (b) a zoom: `GET /api/timeline?from=..&to=..`, 1/64 of the log's time in its middle, against
//!     (b') `audit log --since .. --until ..` over the same window (a time filter: the whole log
//!     is read, as `audit log` reads it).
//! Without `--bench` (as `cargo test --benches` runs it) it is a smoke run over 5,000 entries
//! (`UI_ENTRIES` and `UI_SAMPLES` change the length and the samples of either).

use criterion::Criterion;
use logbook::log::{Filter, LogReader};
use logbook_testkit::history::{Load, generate};
use logbook_testkit::ui::UiServer;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ENTRIES: u64 = 200_000;
const SMOKE_ENTRIES: u64 = 5_000;
const SAMPLES: usize = 30;
const LOAD: Load = Load::BENCH;

fn cache_path(entries: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-data").join(format!("ui-{entries}.db"))
}

fn log_of(entries: u64, smoke: bool) -> (Option<tempfile::TempDir>, PathBuf) {
    if smoke {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("log.db");
        generate(&path, &LOAD, entries);
        return (Some(dir), path);
    }
    let dest = cache_path(entries);
    let fits = LogReader::open(&dest)
        .ok()
        .and_then(|r| r.last_seq().ok())
        .is_some_and(|s| s == entries);
    if fits {
        return (None, dest);
    }
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        shm.join(format!("logbook-ui-bench-{}.db", std::process::id()))
    } else {
        dest.with_extension("generating")
    };
    let _ = std::fs::remove_file(&work);
    let started = Instant::now();
    generate(&work, &LOAD, entries);
    println!(
        "generated {entries} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    std::fs::copy(&work, &dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
    let _ = std::fs::remove_file(&work);
    (None, dest)
}

fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn sample(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        d.push(t.elapsed());
    }
    percentiles(d)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let entries = std::env::var("UI_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { ENTRIES } else { SMOKE_ENTRIES });
    let (_dir, path) = log_of(entries, !bench);
    let reader = LogReader::open(&path).expect("the log opens");
    let last = reader.last_seq().expect("reads");
    let (first_at, last_at) = reader.time_span(1, last).expect("reads").expect("entries");
    let server = UiServer::start(&path);
    let samples = std::env::var("UI_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { SAMPLES } else { 3 });

    // (a) the first screen and (a') audit log over the same entries.
    let first_screen = || {
        let a = server.get("/api/timeline");
        assert_eq!(a.status, 200, "{}", a.body);
        black_box(a.body.len());
    };
    let span = 20_000u64.min(last);
    let audit_first = || {
        let n = reader
            .query(&Filter::new().seqs(last - span + 1..=last))
            .inspect(|e| {
                black_box(e.as_ref().expect("an entry"));
            })
            .count();
        assert_eq!(n as u64, span);
    };
    // (b) a zoom into 1/64 of the log's time, in its middle, and (b') audit log --since --until.
    let total = (last_at - first_at).num_nanoseconds().unwrap_or(i64::MAX);
    let from = first_at + chrono::Duration::nanoseconds(total / 2);
    let to = from + chrono::Duration::nanoseconds(total / 64);
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let zoom_url = format!("/api/timeline?from={}&to={}", fmt(from), fmt(to));
    let mut in_window = 0;
    let zoom = || {
        let a = server.get(&zoom_url);
        assert_eq!(a.status, 200, "{}", a.body);
        black_box(a.body.len());
    };
    let audit_zoom = || {
        reader
            .query(&Filter::new().between(Some(from), Some(to)))
            .inspect(|e| {
                black_box(e.as_ref().expect("an entry"));
            })
            .count()
    };
    let zoom_answer = server.get(&zoom_url).json();
    let first_answer = server.get("/api/timeline").json();
    in_window += audit_zoom();
    assert_eq!(
        zoom_answer["total"].as_u64(),
        Some(in_window as u64),
        "the zoom counts what audit log lists"
    );

    let (a50, a99) = sample(samples, first_screen);
    let (ra50, ra99) = sample(samples, audit_first);
    let (b50, b99) = sample(samples, zoom);
    let (rb50, rb99) = sample(samples, || {
        black_box(audit_zoom());
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "ui bench over {} ({last} entries; first screen: {} mode, {} entries; zoom: {} mode, {in_window} entries)",
        path.display(),
        first_answer["mode"],
        first_answer["total"],
        zoom_answer["mode"]
    );
    println!("| request | p50 ms | p99 ms | audit log, same window: p50 ms | p99 ms | ratio p50 |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| (a) first screen | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
        ms(a50),
        ms(a99),
        ms(ra50),
        ms(ra99),
        ms(a50) / ms(ra50)
    );
    println!(
        "| (b) zoom to 1/64 | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
        ms(b50),
        ms(b99),
        ms(rb50),
        ms(rb99),
        ms(b50) / ms(rb50)
    );
    if !bench {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut g = c.benchmark_group("ui");
    g.bench_function("a_first_screen", |b| b.iter(first_screen));
    g.bench_function("a_audit_log_same_entries", |b| b.iter(audit_first));
    g.bench_function("b_zoom", |b| b.iter(zoom));
    g.bench_function("b_audit_log_same_window", |b| b.iter(audit_zoom));
    g.finish();
    c.final_summary();
}
