//! Replay bench: `replay::verify` over a generated log of 1,000,000 entries, where its time goes,
//! and how much memory it holds.
//!
//! The log is genuine: the real controller `Core` (no NATS, no network) writes it, driven the
//! way `tests/controller_core.rs` drives it, by the test kit's simulated history
//! (`logbook_testkit::history::generate`, the same model API server the replay tests use) at
//! `Load::BENCH`: the initial lists see 1,000 Applications in 10 namespaces; then users change
//! images, replicas and env, scale Deployments by hand, delete Applications (the garbage
//! collector removes their children) and create them again; the executor applies the actions the
//! core records (read back from the log as the outbox would), stamping the action-id and
//! plan-seq annotations, and reports outcomes (`Input::Outcomes`, 1% transient conflicts that are
//! retried); Deployments finish their rollouts later, and pods sometimes flap; the controller
//! resyncs every 50,000 entries and relists Deployments twice. Watch events reach the core in
//! small batches, each batch with the outcomes that arrived meanwhile, so every batch that
//! touched a scope is one plan. The core records a checkpoint every 10,000 entries
//! (`Load::BENCH.checkpoint_every`). What is fed is deterministic given the load's seed (the core
//! stamps entries with its own clock; an outcome is stamped 1 ms per attempt after its action).
//!
//! The log is generated in `/dev/shm` when it exists (the core commits with fsync) and cached
//! under `$CARGO_TARGET_DIR/bench-data/replay-1m.db` (default `target/`): a later run reuses it
//! when its last seq and its start marker (generator version, seed) are right.
//!
//! Before timing, `verify` runs once and must report an intact, identical log. Then the
//! counting allocator below measures the peak live heap of `verify` up to 100,000, 250,000 and
//! 1,000,000 entries next to the world view alone, and criterion times, single-threaded:
//! (b) `verify` with `skip_chain`, (d) read and decode alone, (e) read and fold without planning,
//! over the first `TIMED` entries, and (c) the chain check alone over the whole log; (a), the
//! whole `verify` over every entry, is the timed sanity run (minutes: one run, not samples).
//! `REPLAY_TIMED` changes the prefix (e.g. `REPLAY_TIMED=1000000` with a filter such as
//! `-- 'd_read|e_read'` times those over the whole log).
//!
//! Checkpoints: the bench prints their size (per 1,000 Applications), what building, appending
//! and loading one costs, and the peak heap of `verify --from` over the last 10,000 entries;
//! criterion times (f) that `verify --from`, as `logbook-replay verify --from SEQ` runs it
//! (finding and loading the nearest checkpoint at or before SEQ, folding on to SEQ, recomputing
//! the plans of the last 10,000 entries, the chain checked from the checkpoint on), and (g)
//! finding and loading the checkpoint alone.
//!
//! `cargo bench --bench replay` runs it; without `--bench` (as `cargo test --benches` runs it)
//! it is a smoke run over a 20,000-entry log in a temporary directory. `REPLAY_ENTRIES`
//! changes the length of the log. Results are in `benches/README.md`.

use criterion::{Criterion, SamplingMode, Throughput};
use logbook::log::{Filter, Log, LogReader};
use logbook::record::{Body, Change, EntryKind, MarkerKind};
use logbook::replay::{Point, VerifyOptions, start_from, verify};
use logbook::world::{CheckpointDetail, Fold, checkpoint_key};
use logbook_testkit::history::{Load, generate as generate_log};
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Entries in the full log.
const ENTRIES: u64 = 1_000_000;
/// Entries in the smoke run.
const SMOKE_ENTRIES: u64 = 20_000;
/// Entries criterion times each verify variant over (a prefix of the log; `REPLAY_TIMED`
/// overrides it).
const TIMED: u64 = 50_000;
/// `verify --from` is timed over this many entries at the end of the log.
const TAIL: u64 = 10_000;
/// The simulated history's scale, speed and seed (its generator name and seed go in the start
/// marker: a cached log from another generator or seed is regenerated).
const LOAD: Load = Load::BENCH;

// ---------------------------------------------------------------------------------------------
// A counting allocator: live and peak bytes, counted only while switched on (the timings run
// with it off, so they pay one relaxed load per allocation).

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grow(n: usize) {
    if COUNTING.load(Relaxed) {
        let now = LIVE.fetch_add(n as isize, Relaxed) + n as isize;
        PEAK.fetch_max(now, Relaxed);
    }
}

fn shrink(n: usize) {
    if COUNTING.load(Relaxed) {
        LIVE.fetch_sub(n as isize, Relaxed);
    }
}

// SAFETY: every call is passed to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts counting from zero.
fn count_from_zero() {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
}

fn stop_counting() {
    COUNTING.store(false, Relaxed);
}

fn live() -> isize {
    LIVE.load(Relaxed)
}

/// The peak so far becomes the live count now.
fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

fn peak() -> isize {
    PEAK.load(Relaxed)
}

/// SQLite's own heap (it allocates with `malloc`, not through Rust's allocator): bytes in use,
/// and the high-water mark since the last reset.
fn sqlite_heap(reset: bool) -> (i64, i64) {
    // SAFETY: plain reads of SQLite's global memory statistics.
    unsafe {
        (
            rusqlite::ffi::sqlite3_memory_used(),
            rusqlite::ffi::sqlite3_memory_highwater(i32::from(reset)),
        )
    }
}

/// A field of `/proc/self/status` in KiB (VmRSS, VmHWM), if readable.
fn proc_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak RSS (VmHWM) to the current RSS.
fn reset_rss_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// Where the generated log is cached.
fn cache_path(entries: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let name = if entries == ENTRIES {
        "replay-1m.db".to_string()
    } else {
        format!("replay-{entries}.db")
    };
    target.join("bench-data").join(name)
}

/// True when `path` is a log this generator wrote with `entries` entries.
fn reusable(path: &Path, entries: u64) -> bool {
    if !path.exists() {
        return false;
    }
    let Ok(reader) = LogReader::open(path) else {
        return false;
    };
    if reader.last_seq().ok() != Some(entries) {
        return false;
    }
    matches!(reader.get(1), Ok(Some(e)) if matches!(&e.body, Body::Marker(m)
        if m.marker == MarkerKind::Start
            && m.detail.get("generator").and_then(Value::as_str) == Some(LOAD.generator)
            && m.detail.get("seed").and_then(Value::as_u64) == Some(LOAD.seed)))
}

fn remove_log(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Generates the log at `dest` with the controller core (in /dev/shm when there is one: the
/// core's commits are durable, and fsync is what would take the time on disk).
fn generate(dest: &Path, entries: u64) {
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        shm.join(format!("logbook-replay-bench-{}.db", std::process::id()))
    } else {
        dest.with_extension("generating")
    };
    remove_log(&work);
    let started = Instant::now();
    let s = &generate_log(&work, &LOAD, entries);
    println!(
        "generated {entries} entries in {:.1} s: {} steps, {} batches handed to the core, {} resyncs, {} relists, {} synthesized retries at the end",
        started.elapsed().as_secs_f64(),
        s.steps,
        s.batches,
        s.resyncs,
        s.relists,
        s.synthesized_retries
    );
    println!("  user and cluster changes: {:?}", s.user_ops);
    println!("  executor attempts (verb → result): {:?}", s.executed);
    let mut wal = work.as_os_str().to_owned();
    wal.push("-wal");
    assert!(
        std::fs::metadata(PathBuf::from(wal)).map_or(true, |m| m.len() == 0),
        "the WAL was not checkpointed"
    );
    if work != dest {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let tmp = dest.with_extension("copying");
        std::fs::copy(&work, &tmp).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
        remove_log(dest);
        std::fs::rename(&tmp, dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
        remove_log(&work);
    }
}

/// The log's mix, by a scan.
fn print_mix(reader: &LogReader) {
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_plan: BTreeMap<usize, u64> = BTreeMap::new();
    let mut scoped = 0u64;
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut markers: BTreeMap<String, u64> = BTreeMap::new();
    let mut apps = BTreeSet::new();
    let mut bytes = 0u64;
    let mut max_actions = 0;
    // Records stored as patches: (count, their objects' bytes whole, their patches' bytes).
    let mut patched: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for e in reader.range(..) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        *kinds.entry(e.kind().as_str()).or_default() += 1;
        if let Some(d) = &e.delta {
            let whole = match &e.body {
                Body::Event(ev) => ev.object.as_ref().map_or(0, |o| o.as_str().len()),
                Body::Action(a) => a.action.object.as_ref().map_or(0, |o| o.as_str().len()),
                _ => 0,
            };
            let p = patched.entry(e.kind().as_str()).or_default();
            *p = (
                p.0 + 1,
                p.1 + whole as u64,
                p.2 + d.patch.as_str().len() as u64,
            );
        }
        if let Some(a) = &e.keys.application {
            apps.insert(a.clone());
        }
        match &e.body {
            Body::Plan(p) => {
                let n = p.action_ids.len();
                max_actions = max_actions.max(n);
                *per_plan.entry(n.min(4)).or_default() += 1;
                scoped += u64::from(!p.scope.is_empty());
            }
            Body::Event(ev) => {
                let what = match (ev.change, ev.synthesized) {
                    (Change::Upsert, _) => "upsert",
                    (Change::Delete, false) => "delete",
                    (Change::Delete, true) => "synthesized delete",
                };
                *events.entry(what.to_string()).or_default() += 1;
                *events.entry(ev.key.kind.clone()).or_default() += 1;
                bytes += ev.object.as_ref().map_or(0, |o| o.as_str().len() as u64);
            }
            Body::Outcome(o) => *outcomes.entry(o.result.as_str()).or_default() += 1,
            Body::Marker(m) => *markers.entry(format!("{:?}", m.marker)).or_default() += 1,
            Body::Action(_) => {}
        }
    }
    println!("log mix: {kinds:?}");
    println!(
        "  plans by number of actions (4 = 4 or more): {per_plan:?}; {scoped} scoped, largest {max_actions}"
    );
    println!(
        "  events: {events:?}; object JSON {} in all",
        mib(bytes as f64)
    );
    println!("  outcomes: {outcomes:?}; markers: {markers:?}");
    println!("  applications named in the log: {}", apps.len());
    println!("  stored as patches (count, object bytes, patch bytes): {patched:?}");
    let conn = rusqlite::Connection::open_with_flags(
        reader.path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let payloads: i64 = conn
        .query_row("SELECT sum(length(payload)) FROM entries", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let file = std::fs::metadata(reader.path()).map_or(0, |m| m.len());
    println!(
        "  log bytes: payloads {} ({:.0} bytes an entry), file {}",
        mib(payloads as f64),
        payloads as f64 / reader.last_seq().unwrap_or(1).max(1) as f64,
        mib(file as f64)
    );
}

/// The fold of entries `1..=upto`, without planning.
fn fold_upto(reader: &LogReader, upto: u64) -> Fold {
    let mut fold = Fold::new();
    for e in reader.range(1..=upto) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        fold.apply(e.seq, e.at, &e.body);
    }
    fold
}

/// Peak live heap of `verify` up to `points`, next to the world view alone: over the whole
/// prefix, and from entry `steady` on (after the initial convergence, whose thousands of
/// pending actions make the world larger than it is later).
fn memory_table(path: &Path, points: &[u64], steady: u64) {
    println!();
    println!("memory (MiB; \"from {steady}\": the peak over entries {steady}..=n only):");
    println!(
        "| entries n | world view at n (fold held) | fold alone: peak | fold alone: peak from {steady} | verify: peak | verify: peak from {steady} | verify − fold, from {steady} | held after verify (report) | SQLite heap peak | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in points {
        let reader = LogReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        // Warm the reader's statement cache so it is not counted in the world.
        let _ = reader.range(1..=1).count();
        count_from_zero();
        let mut fold = Fold::new();
        let mut fold_peak = 0;
        for e in reader.range(1..=n) {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            if e.seq == steady {
                fold_peak = peak();
                reset_peak();
            }
            fold.apply(e.seq, e.at, &e.body);
        }
        let world = live();
        let fold_steady = peak();
        let fold_peak = fold_peak.max(fold_steady);
        let rejected = fold.rejected().len();
        drop(fold);
        let base = live();
        reset_peak();
        sqlite_heap(true);
        reset_rss_peak();
        let early = std::cell::Cell::new(0isize);
        let progress = |seq: u64| {
            if seq == steady {
                early.set(peak() - base);
                reset_peak();
            }
        };
        let options = VerifyOptions {
            until: Some(Point::Seq(n)),
            progress: Some(&progress),
            ..Default::default()
        };
        let report = verify(&reader, &options).unwrap_or_else(|e| panic!("{e}"));
        let verify_steady = peak() - base;
        let verify_peak = early.get().max(verify_steady);
        let held = live() - base;
        let (_, sqlite_peak) = sqlite_heap(false);
        let rss = proc_kib("VmHWM:").unwrap_or(0) * 1024;
        stop_counting();
        assert!(report.is_ok(), "verify up to {n} failed");
        assert_eq!(report.entries, n);
        let m = |b: isize| format!("{:.1}", b as f64 / (1024.0 * 1024.0));
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            m(world),
            m(fold_peak),
            m(fold_steady),
            m(verify_peak),
            m(verify_steady),
            m(verify_steady - fold_steady),
            m(held),
            sqlite_peak as f64 / (1024.0 * 1024.0),
            rss as f64 / (1024.0 * 1024.0),
        );
        if rejected > 0 || !report.rejected.is_empty() {
            println!("  (entries the fold rejected: {rejected})");
        }
        drop(report);
    }
    println!();
}

/// The checkpoints of the log: seq and detail (read through the object index).
fn checkpoint_details(reader: &LogReader) -> Vec<(u64, CheckpointDetail)> {
    let filter = Filter::new()
        .object(&checkpoint_key())
        .kinds(&[EntryKind::Marker]);
    reader
        .query(&filter)
        .filter_map(|e| {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            match &e.body {
                Body::Marker(m) => CheckpointDetail::of(m).map(|d| {
                    (
                        e.seq,
                        d.unwrap_or_else(|err| panic!("checkpoint {}: {err}", e.seq)),
                    )
                }),
                _ => None,
            }
        })
        .collect()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// How big checkpoints are, and what building, appending and loading one costs (medians of a
/// few runs, timed by hand: appending needs a new entry each time).
fn checkpoint_figures(reader: &LogReader) {
    let checkpoints = checkpoint_details(reader);
    println!();
    let Some((last_seq, last)) = checkpoints.last().cloned() else {
        println!("checkpoints: none in the log");
        return;
    };
    let mut sizes: Vec<u64> = checkpoints.iter().map(|(_, d)| d.bytes).collect();
    sizes.sort_unstable();
    let per_thousand: Vec<f64> = checkpoints
        .iter()
        .filter(|(_, d)| d.applications > 0)
        .map(|(_, d)| d.bytes as f64 * 1000.0 / d.applications as f64)
        .collect();
    let avg = per_thousand.iter().sum::<f64>() / per_thousand.len().max(1) as f64;
    println!(
        "checkpoints: {} in the log (every {} entries), {} to {} bytes (median {}); per 1,000 \
         Applications: {} on average; the last, at entry {last_seq}: {} Applications, {} \
         objects, {} pending, {}",
        checkpoints.len(),
        LOAD.checkpoint_every,
        sizes[0],
        sizes[sizes.len() - 1],
        sizes[sizes.len() / 2],
        mib(avg),
        last.applications,
        last.objects,
        last.pending,
        mib(last.bytes as f64)
    );
    let start = start_from(reader, last_seq).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(start.checkpoint, Some(last_seq), "{:?}", start.notes);
    let fold = start.fold;
    const RUNS: usize = 5;
    let build = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                black_box(fold.checkpoint().unwrap_or_else(|e| panic!("{e}")));
                t.elapsed()
            })
            .collect(),
    );
    let read = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                black_box(reader.get(last_seq).unwrap_or_else(|e| panic!("{e}")));
                t.elapsed()
            })
            .collect(),
    );
    let load = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                black_box(start_from(reader, last_seq).unwrap_or_else(|e| panic!("{e}")));
                t.elapsed()
            })
            .collect(),
    );
    // Appending: into a log of its own in the system's temporary directory (on disk, unlike
    // the generated log, which may be in /dev/shm), with durable commits as the controller's.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut log = Log::open(&dir.path().join("append.db")).unwrap_or_else(|e| panic!("{e}"));
    let checkpoint = fold.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    let append = median(
        (0..RUNS)
            .map(|i| {
                let at = chrono::Utc::now() + chrono::TimeDelta::seconds(i as i64);
                let entry = checkpoint.clone().entry(at, "asked");
                let t = Instant::now();
                log.append(&[entry]).unwrap_or_else(|e| panic!("{e}"));
                t.elapsed()
            })
            .collect(),
    );
    drop(log);
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "checkpoint of {} Applications ({}): build (encode the fold) {}, append (one durable \
         commit) {}, so the controller stalls ~{}; load: read and decode the entry {}, all of \
         start_from (find, read, digest, rebuild the world) {}",
        last.applications,
        mib(last.bytes as f64),
        ms(build),
        ms(append),
        ms(build + append),
        ms(read),
        ms(load)
    );
}

/// `verify --from` over the last `TAIL` entries (checkpoint loaded): where its time goes
/// (one run each, by hand: finding and loading the checkpoint, folding on to SEQ, the chain
/// from the checkpoint on, the whole verify) and its peak live heap; then the same from the
/// last checkpoint before the end, the nearest one can get to "the last 10,000 entries".
fn verify_from_figures(path: &Path, entries: u64) {
    let reader = LogReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let _ = reader.range(1..=1).count();
    let from = entries.saturating_sub(TAIL - 1).max(1);
    let secs = |t: Instant| format!("{:.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let start = start_from(&reader, from).unwrap_or_else(|e| panic!("{e}"));
    let load = secs(t);
    let t = Instant::now();
    let mut fold = start.fold;
    for e in reader.range(start.first..from) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        fold.apply(e.seq, e.at, &e.body);
    }
    let fold_to = secs(t);
    drop(fold);
    let t = Instant::now();
    let chain = reader
        .verify_from(start.first)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(chain.is_ok());
    let chain = secs(t);
    let verify_from = |from: u64| {
        count_from_zero();
        let t = Instant::now();
        let report = verify(
            &reader,
            &VerifyOptions {
                from,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let took = secs(t);
        let p = peak();
        stop_counting();
        assert!(report.is_ok(), "verify --from {from} failed");
        println!(
            "verify --from {from}: {took} in all; from the checkpoint at {:?}, {} entries read, \
             {} plans recomputed; peak live heap {}",
            report.started_from,
            report.entries,
            report.plans_identical,
            mib(p as f64)
        );
    };
    println!(
        "verify --from {from} (the last {TAIL} entries), by parts: find and load the checkpoint at \
         {:?} {load}, fold its {} entries on to {from} {fold_to}, the chain from it {chain}",
        start.checkpoint,
        from - start.first
    );
    verify_from(from);
    if let Some(last) = checkpoint_details(&reader)
        .iter()
        .map(|(seq, _)| *seq)
        .rfind(|&seq| seq <= from + TAIL / 10)
        && last != start.first
    {
        verify_from(last);
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let entries = std::env::var("REPLAY_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { ENTRIES } else { SMOKE_ENTRIES });
    let smoke_dir = (!full).then(|| tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
    let path = match &smoke_dir {
        Some(d) => d.path().join("replay.db"),
        None => cache_path(entries),
    };
    if reusable(&path, entries) {
        println!("reusing {} ({entries} entries)", path.display());
    } else {
        println!("generating {} ({entries} entries)", path.display());
        generate(&path, entries);
    }
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    print_mix(&reader);

    // A bench over a log that does not verify measures nothing.
    let started = Instant::now();
    let report = verify(&reader, &VerifyOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed().as_secs_f64();
    assert!(
        report.is_ok(),
        "the generated log does not verify: {:?}",
        report
            .divergence
            .as_ref()
            .map(|d| &d.why)
            .or(report.chain_problem.as_ref())
            .or(report.stopped.as_ref())
    );
    assert!(report.plans > 0 && report.plans == report.plans_identical);
    assert_eq!(report.entries, entries);
    println!(
        "sanity: verify ok in {took:.1} s ({:.0} entries/s): {} events, {} plans ({} actions), {} outcomes, {} markers, {} rejected, {} checkpoints found holding the fold",
        entries as f64 / took,
        report.events,
        report.plans,
        report.actions,
        report.outcomes,
        report.markers,
        report.rejected.len(),
        report.checkpoints
    );
    drop(report);

    let points: Vec<u64> = if full && entries == ENTRIES {
        vec![100_000, 250_000, ENTRIES]
    } else {
        vec![entries / 10, entries / 4, entries]
    };
    // A multiple of `PROGRESS_EVERY`, where verify's progress callback is called.
    let steady = (entries / 20).next_multiple_of(logbook::replay::PROGRESS_EVERY);
    memory_table(&path, &points, steady);
    checkpoint_figures(&reader);
    verify_from_figures(&path, entries);
    if !full {
        println!("(smoke run; `cargo bench --bench replay` for the full one)");
        return;
    }

    // Replaying a million entries takes minutes (the planner recomputes every plan), so
    // criterion times the first `TIMED` entries, ten samples each; the chain check, which is
    // fast, runs over the whole log. The whole log's verify is the sanity run above.
    let timed = std::env::var("REPLAY_TIMED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(TIMED)
        .min(entries);
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("replay_verify");
    group
        .throughput(Throughput::Elements(timed))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("b_verify_skip_chain", |b| {
        b.iter(|| {
            let options = VerifyOptions {
                skip_chain: true,
                until: Some(Point::Seq(timed)),
                ..Default::default()
            };
            let r = verify(&reader, &options).unwrap_or_else(|e| panic!("{e}"));
            assert!(r.is_ok());
            r.plans
        })
    });
    group.bench_function("d_read_decode", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for e in reader.range(..=timed) {
                n += black_box(&e.unwrap_or_else(|e| panic!("{e}"))).seq & 1;
            }
            n
        })
    });
    group.bench_function("e_read_fold", |b| {
        b.iter(|| black_box(fold_upto(&reader, timed).last_seq()))
    });
    group.finish();
    // `logbook-replay verify --from SEQ` on the last `TAIL` entries, chain checked from the
    // checkpoint on: finding and loading the checkpoint, folding from it to SEQ, recomputing
    // the plans of the last `TAIL` entries.
    let from = entries.saturating_sub(TAIL - 1).max(1);
    let mut group = c.benchmark_group("replay_verify_from");
    group
        .throughput(Throughput::Elements(entries - from + 1))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("f_verify_from_last_10k", |b| {
        b.iter(|| {
            let options = VerifyOptions {
                from,
                ..Default::default()
            };
            let r = verify(&reader, &options).unwrap_or_else(|e| panic!("{e}"));
            assert!(r.is_ok() && r.started_from.is_some());
            r.plans_identical
        })
    });
    group.bench_function("g_load_checkpoint", |b| {
        b.iter(|| {
            let start = start_from(&reader, from).unwrap_or_else(|e| panic!("{e}"));
            assert!(start.checkpoint.is_some());
            start.first
        })
    });
    group.finish();
    let mut group = c.benchmark_group("replay_chain");
    group
        .throughput(Throughput::Elements(entries))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("c_chain_only", |b| {
        b.iter(|| {
            let r = reader.verify().unwrap_or_else(|e| panic!("{e}"));
            assert!(r.is_ok());
            r.checked
        })
    });
    group.finish();
    c.final_summary();
}
