//! Bad input: files that are not logbook logs, logs from a newer logbook, damaged logs and
//! undecodable entries get a clear error naming the file (and the entry), no panic, and nothing
//! is written to the file.

use logbook_testkit::log as log_common;

use log_common::*;
use logbook::log::store::SCHEMA_VERSION;
use logbook::log::{Log, LogError, LogReader};
use std::path::{Path, PathBuf};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
}

/// A closed log of `n` entries.
fn log_with(dir: &Path, name: &str, n: u64) -> PathBuf {
    let path = dir.join(name);
    let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
    for chunk in many(n).chunks(500) {
        log.append(chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    drop(log);
    path
}

/// Both ways of opening `path` fail, the message names the file, and the file is unchanged.
fn refused(path: &Path) -> (LogError, LogError) {
    let before = read(path);
    let w = Log::open(path)
        .err()
        .unwrap_or_else(|| panic!("{} was opened for writing", path.display()));
    let r = LogReader::open(path)
        .err()
        .unwrap_or_else(|| panic!("{} was opened for reading", path.display()));
    for e in [&w, &r] {
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string()),
            "the message does not name the file: {msg}"
        );
        assert_eq!(e.path(), path);
    }
    assert_eq!(read(path), before, "{} was modified", path.display());
    (w, r)
}

fn assert_not_a_log(e: &LogError, why: &str) {
    assert!(
        matches!(e, LogError::NotALog { .. }),
        "expected NotALog, got {e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("is not a logbook log") && msg.contains(why),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let d = dir();
    let noise = d.path().join("noise.db");
    let bytes: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write(&noise, &bytes);
    let (w, r) = refused(&noise);
    assert_not_a_log(&w, "not an SQLite database");
    assert_not_a_log(&r, "not an SQLite database");

    let text = d.path().join("notes.txt");
    write(&text, b"hello, this is not a log\n");
    let (w, _) = refused(&text);
    assert_not_a_log(&w, "not an SQLite database");
    // No SQLite side files were created next to them.
    assert!(!d.path().join("noise.db-wal").exists() && !d.path().join("notes.txt-shm").exists());
}

#[test]
fn another_applications_sqlite_database_is_refused() {
    let d = dir();
    let other = d.path().join("other.sqlite");
    let conn = raw(&other);
    exec(
        &conn,
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY, payload BLOB); INSERT INTO entries VALUES (1, x'00');",
    );
    drop(conn);
    let (w, r) = refused(&other);
    assert_not_a_log(&w, "application_id");
    assert_not_a_log(&r, "application_id");

    // Same application_id but none of logbook's tables: corrupt, not silently adopted.
    let impostor = d.path().join("impostor.db");
    let conn = raw(&impostor);
    exec(
        &conn,
        "PRAGMA application_id = 1280264002; PRAGMA user_version = 1; CREATE TABLE t (x);",
    );
    drop(conn);
    let (w, _) = refused(&impostor);
    assert!(matches!(w, LogError::Corrupt { .. }), "{w:?}");
    assert!(w.to_string().contains("meta"), "{w}");
}

#[test]
fn a_log_from_a_newer_logbook_is_refused() {
    let d = dir();
    // Schema version raised in the header.
    let newer = log_with(d.path(), "newer.db", 3);
    exec(
        &raw(&newer),
        &format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1),
    );
    let (w, r) = refused(&newer);
    for e in [&w, &r] {
        assert!(
            matches!(
                e,
                LogError::NewerVersion {
                    found,
                    supported: SCHEMA_VERSION,
                    ..
                } if *found == SCHEMA_VERSION + 1
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("newer than this build"), "{e}");
    }
    // Schema version raised in the meta table only.
    let newer_meta = log_with(d.path(), "newer-meta.db", 3);
    exec(
        &raw(&newer_meta),
        "DROP TRIGGER meta_read_only_update; UPDATE meta SET value = '7' WHERE key = 'version';",
    );
    let (w, _) = refused(&newer_meta);
    assert!(
        matches!(w, LogError::NewerVersion { found: 7, .. }),
        "{w:?}"
    );
}

#[test]
fn an_entry_in_a_newer_payload_format_names_the_file_and_seq() {
    let d = dir();
    let path = log_with(d.path(), "future.db", 4);
    // A newer logbook appended entry 5 in payload format 3.
    exec(
        &raw(&path),
        "INSERT INTO entries SELECT 5, randomblob(16), at_ns, kind, namespace, application, object_kind, \
         object_name, 3, x'c1c1', hash, randomblob(32) FROM entries WHERE seq = 4;",
    );
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let results: Vec<_> = reader.range(..).collect();
    assert_eq!(results.len(), 5);
    assert!(results[..4].iter().all(|r| r.is_ok()));
    let Err(e) = &results[4] else {
        panic!("entry 5 decoded: {:?}", results[4])
    };
    assert!(
        matches!(
            e,
            LogError::NewerEntryFormat {
                seq: 5,
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("future.db") && msg.contains("entry 5") && msg.contains("format 3"),
        "{msg}"
    );
    assert_eq!(e.seq(), Some(5));
    assert!(matches!(
        reader.get(5),
        Err(LogError::NewerEntryFormat { seq: 5, .. })
    ));
}

#[test]
fn an_undecodable_entry_names_the_file_and_seq() {
    let d = dir();
    let path = log_with(d.path(), "garbled.db", 6);
    let conn = raw(&path);
    exec(
        &conn,
        "DROP TRIGGER entries_append_only_update; UPDATE entries SET payload = x'c1ffee' WHERE seq = 3;",
    );
    exec(
        &conn,
        "UPDATE entries SET kind = 'plan' WHERE seq = 5 AND kind != 'plan';",
    );
    drop(conn);
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let results: Vec<_> = reader.range(..).collect();
    // Entries before the damage are delivered, then the error, then the scan ends.
    assert_eq!(results.len(), 3, "{results:?}");
    let Err(e) = &results[2] else {
        panic!("entry 3 decoded")
    };
    assert!(matches!(e, LogError::CorruptEntry { seq: 3, .. }), "{e:?}");
    assert!(
        e.to_string().contains("garbled.db entry 3 is corrupt"),
        "{e}"
    );
    // A payload of the wrong kind does not decode either.
    let e = reader
        .get(5)
        .err()
        .unwrap_or_else(|| panic!("entry 5 decoded as a plan"));
    assert!(matches!(e, LogError::CorruptEntry { seq: 5, .. }), "{e:?}");
    // verify names the first edited entry.
    let report = reader.verify().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.first_bad_seq(), Some(3), "{report}");
}

#[test]
fn a_truncated_log_gives_an_error_not_a_panic() {
    let d = dir();
    let path = log_with(d.path(), "truncated.db", 3000);
    let full = read(&path);
    assert!(
        full.len() > 64 * 1024,
        "log too small for the test: {} bytes",
        full.len()
    );
    for keep in [full.len() / 2, full.len() - 4096, 4096, 100] {
        let cut = d.path().join(format!("cut-{keep}.db"));
        write(&cut, &full[..keep]);
        let before = read(&cut);
        let outcome = match LogReader::open(&cut) {
            Err(e) => Err(e),
            Ok(r) => match r.verify() {
                Err(e) => Err(e),
                Ok(report) if report.is_ok() => {
                    // Nothing wrong seen by verify: then reading everything must fail.
                    r.range(..).find_map(|x| x.err()).map_or(Ok(()), Err)
                }
                Ok(report) => {
                    assert!(report.to_string().contains("cut-"), "{report}");
                    Ok(())
                }
            },
        };
        if let Err(e) = outcome {
            assert!(e.to_string().contains(&cut.display().to_string()), "{e}");
        }
        let w = Log::open(&cut);
        if let Err(e) = &w {
            assert!(e.to_string().contains(&cut.display().to_string()), "{e}");
        }
        drop(w);
        // A truncated file cannot pass as a complete log: at least one of open/verify/read failed.
        let r = LogReader::open(&cut);
        let clean = matches!(&r, Ok(r) if r.verify().map(|v| v.is_ok()).unwrap_or(false)
            && r.range(..).all(|x| x.is_ok()) && r.last_seq().unwrap_or(0) == 3000);
        assert!(!clean, "a log cut to {keep} bytes looks complete");
        assert_eq!(read(&cut), before, "{} was modified", cut.display());
    }
}

#[test]
fn garbage_in_the_middle_of_a_log_gives_an_error_not_a_panic() {
    let d = dir();
    let path = log_with(d.path(), "smashed.db", 3000);
    let mut bytes = read(&path);
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid..mid + 8192].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    write(&path, &bytes);
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let verified = reader.verify();
    let scanned: Result<Vec<_>, _> = reader.range(..).collect();
    match (&verified, &scanned) {
        (Ok(report), Ok(all)) => panic!(
            "damage went unnoticed: {report}, {} entries read",
            all.len()
        ),
        _ => {
            for e in [verified.as_ref().err(), scanned.as_ref().err()]
                .into_iter()
                .flatten()
            {
                assert!(e.to_string().contains("smashed.db"), "{e}");
            }
            if let Ok(report) = &verified {
                assert!(!report.is_ok());
            }
        }
    }
    drop(reader);
    assert_eq!(read(&path), bytes, "reading a damaged log modified it");
}

#[test]
fn odd_paths_get_clear_errors() {
    let d = dir();
    let e = Log::open(d.path())
        .err()
        .unwrap_or_else(|| panic!("a directory was opened as a log"));
    assert_not_a_log(&e, "directory");
    let e = LogReader::open(d.path())
        .err()
        .unwrap_or_else(|| panic!("a directory was opened as a log"));
    assert_not_a_log(&e, "directory");

    let missing = d.path().join("missing.db");
    let e = LogReader::open(&missing)
        .err()
        .unwrap_or_else(|| panic!("a missing file was opened"));
    assert!(
        matches!(e, LogError::Io { .. }) && e.to_string().contains("missing.db"),
        "{e}"
    );
    assert!(!missing.exists(), "the reader created the file");

    let nowhere = d.path().join("no/such/dir/log.db");
    let e = Log::open(&nowhere)
        .err()
        .unwrap_or_else(|| panic!("a log was created in a missing directory"));
    assert!(e.to_string().contains("log.db"), "{e}");

    // An empty file: the reader refuses it, the writer makes a log of it.
    let empty = d.path().join("empty.db");
    write(&empty, b"");
    let e = LogReader::open(&empty)
        .err()
        .unwrap_or_else(|| panic!("an empty file was read as a log"));
    assert_not_a_log(&e, "empty");
    let mut log = Log::open(&empty).unwrap_or_else(|e| panic!("{e}"));
    log.append(&many(2)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.last_seq().unwrap_or_else(|e| panic!("{e}")), 2);
    drop(log);
    // Creation leaves no temporary files behind.
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(names.iter().all(|n| !n.contains("creating")), "{names:?}");
}
