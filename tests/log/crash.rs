//! Crash safety: a writer killed with SIGKILL at random points, many times, leaves every
//! committed entry readable and the chain verifiable. The writer is this test binary re-run as a
//! child (`crash::crash_child_writer`), selected by an environment variable.

use logbook_testkit::log as log_common;

use log_common::*;
use logbook::log::{Log, LogReader};
use logbook::record::{MarkerKind, NewEntry, entry_uuid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

const CHILD_DB: &str = "LOGBOOK_LOG_CRASH_CHILD_DB";
const CHILD_ROUND: &str = "LOGBOOK_LOG_CRASH_CHILD_ROUND";
const SEED_ENV: &str = "LOGBOOK_LOG_CRASH_SEED";
const ROUNDS: u32 = 30;
/// A child that is never killed stops by itself after this long, so none outlives the test.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

/// The child: append batches forever, reporting each commit on stdout. Does nothing unless run
/// by `a_writer_killed_at_random_points_loses_no_committed_entry`.
#[test]
fn crash_child_writer() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let round: u64 = std::env::var(CHILD_ROUND)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let started = std::time::Instant::now();
    let mut log = Log::open(Path::new(&db)).unwrap_or_else(|e| panic!("child: {e}"));
    let last = log.last_seq().unwrap_or_else(|e| panic!("child: {e}"));
    report(&format!("open {last}"));
    let mut batch_no = 0u64;
    let mut previous: Option<NewEntry> = None;
    while started.elapsed() < CHILD_LIFETIME {
        let size = 20 + (batch_no * 37 + round * 11) % 180;
        let mut batch: Vec<NewEntry> = many(size)
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                // Unique per round, batch and position; content varies with the kind.
                e.id = entry_uuid(e.at, "crash", format!("{round}/{batch_no}/{i}").as_bytes());
                e
            })
            .collect();
        // Now and then, an entry delivered twice (it must be deduplicated, not duplicated).
        if let Some(p) = previous.take().filter(|_| batch_no % 3 == 1) {
            batch.insert(size as usize / 2, p);
        }
        let mut last = marker(MarkerKind::Config, batch_no);
        let last_id = entry_uuid(
            last.at,
            "crash",
            format!("{round}/{batch_no}/last").as_bytes(),
        );
        last.id = last_id;
        batch.push(last);
        let appended = log.append(&batch).unwrap_or_else(|e| panic!("child: {e}"));
        let seq = appended.last().map_or(0, |a| a.seq());
        report(&format!("committed {seq} {last_id}"));
        if batch_no % 4 == 2 {
            log.set_cursor("published", seq / 2)
                .unwrap_or_else(|e| panic!("child: {e}"));
        }
        previous = batch.first().cloned();
        batch_no += 1;
    }
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    // Written only after the commit returned: the parent may trust every line it reads.
    let _ = writeln!(out, "LOGBOOK-CRASH {line}");
    let _ = out.flush();
}

/// Kills and reaps the child when dropped, however the test ends.
struct ChildGuard(Child);

impl ChildGuard {
    fn sigkill(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        // The child may already have exited; then there is nothing to kill.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.sigkill();
        let _ = self.0.wait();
    }
}

enum Line {
    Open(u64),
    Committed(u64, uuid::Uuid),
}

fn parse(line: &str) -> Option<Line> {
    // The first report shares its line with libtest's "test crash::crash_child_writer ... ".
    let rest = &line[line.find("LOGBOOK-CRASH ")? + "LOGBOOK-CRASH ".len()..];
    let mut parts = rest.split_whitespace();
    match parts.next()? {
        "open" => Some(Line::Open(parts.next()?.parse().ok()?)),
        "committed" => Some(Line::Committed(
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        )),
        _ => None,
    }
}

#[test]
fn a_writer_killed_at_random_points_loses_no_committed_entry() {
    let deadline = Deadline::after(Duration::from_secs(180));
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0106_b00c);
    eprintln!("crash test seed {seed} (set {SEED_ENV} to reproduce another)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));

    let mut committed: Vec<(u64, uuid::Uuid)> = Vec::new();
    let mut rounds_with_commits = 0;
    let mut rounds_killed_before_commit = 0;
    for round in 0..ROUNDS {
        deadline.check(&format!("round {round}"));
        let child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &db)
            .env(CHILD_ROUND, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the child writer: {e}"));
        let mut guard = ChildGuard(child);
        let stdout = guard
            .0
            .stdout
            .take()
            .unwrap_or_else(|| panic!("child stdout not captured"));
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(parsed) = parse(&line)
                    && tx.send(parsed).is_err()
                {
                    break;
                }
            }
        });

        // Kill after a random number of commits (0: possibly while opening or creating), plus
        // a random delay so the kill also lands in the middle of a batch.
        let wait_commits = rng.random_range(0..4u32);
        let delay = Duration::from_micros(rng.random_range(0..20_000));
        let mut seen = 0;
        let mut round_commits = 0;
        let mut opened = false;
        while seen < wait_commits || (!opened && wait_commits > 0) {
            match rx.recv_timeout(deadline.remaining().min(Duration::from_secs(30))) {
                Ok(Line::Open(last)) => {
                    opened = true;
                    let reported = committed.iter().map(|(s, _)| *s).max().unwrap_or(0);
                    assert!(
                        last >= reported,
                        "round {round}: the child opened a log ending at {last}, {reported} was committed"
                    );
                }
                Ok(Line::Committed(seq, id)) => {
                    seen += 1;
                    round_commits += 1;
                    committed.push((seq, id));
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("round {round}: the child reported nothing in time")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = guard.0.wait();
                    let mut err = String::new();
                    if let Some(mut e) = guard.0.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!(
                        "round {round}: the child writer exited ({status:?}) before being killed:\n{err}"
                    );
                }
            }
        }
        std::thread::sleep(delay);
        guard.sigkill();
        let status = guard
            .0
            .wait()
            .unwrap_or_else(|e| panic!("wait for the child: {e}"));
        // Lines written before the kill are still in the pipe: collect them all.
        while let Ok(line) = rx.recv() {
            if let Line::Committed(seq, id) = line {
                round_commits += 1;
                committed.push((seq, id));
            }
        }
        let _ = reader.join();
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "round {round}: the child was not killed by SIGKILL: {status:?}"
            );
        }
        if round_commits > 0 {
            rounds_with_commits += 1;
        } else {
            rounds_killed_before_commit += 1;
        }
        drop(guard);

        // After every kill: everything reported committed is there, and the chain verifies.
        if !db.exists() {
            assert!(
                committed.is_empty(),
                "round {round}: the log is gone but entries were committed"
            );
            continue;
        }
        check(&db, &committed, round);
    }
    eprintln!(
        "{ROUNDS} rounds: {rounds_with_commits} with commits, {rounds_killed_before_commit} killed before committing, \
         {} commits reported",
        committed.len()
    );
    assert!(
        rounds_with_commits >= ROUNDS as usize / 2,
        "too few rounds reached a commit: a weak test"
    );

    // A writer can carry on where the killed ones stopped.
    let mut log = Log::open(&db).unwrap_or_else(|e| panic!("{e}"));
    let before = log.last_seq().unwrap_or_else(|e| panic!("{e}"));
    log.append(&[marker(MarkerKind::Start, 1_000_000)])
        .unwrap_or_else(|e| panic!("{e}"));
    let report = log.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.last_good_seq, before + 1);
    // No temporary files from interrupted creations are left next to the log, except perhaps
    // one from a child killed while creating it.
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".creating-"))
        .count();
    assert!(
        leftovers <= 1,
        "{leftovers} temporary files left by interrupted creations"
    );
}

fn check(db: &Path, committed: &[(u64, uuid::Uuid)], round: u32) {
    let reader = LogReader::open(db).unwrap_or_else(|e| panic!("round {round}: {e}"));
    let last = reader
        .last_seq()
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    let reported = committed.iter().map(|(s, _)| *s).max().unwrap_or(0);
    assert!(
        last >= reported,
        "round {round}: the log ends at {last} but {reported} was committed"
    );
    for (seq, id) in committed {
        let entry = reader
            .get(*seq)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let entry =
            entry.unwrap_or_else(|| panic!("round {round}: committed entry {seq} is missing"));
        assert_eq!(
            entry.id, *id,
            "round {round}: entry {seq} is not the one committed"
        );
    }
    let mut n = 0;
    for e in reader.range(..) {
        let e = e.unwrap_or_else(|e| panic!("round {round}: {e}"));
        n += 1;
        assert_eq!(e.seq, n);
    }
    assert_eq!(n, last);
    let report = reader
        .verify()
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    assert!(report.is_ok(), "round {round}: {report}");
    assert_eq!(report.last_good_seq, last);
    if let Some(c) = reader
        .cursor("published")
        .unwrap_or_else(|e| panic!("round {round}: {e}"))
    {
        assert!(c <= last, "round {round}: cursor {c} past the end {last}");
    }
}
