//! Log round trips: every entry kind written and read back unchanged, deduplication by id,
//! chained hashes, filtered queries, cursors, and readers alongside a writer.

use logbook_testkit::log as log_common;

use log_common::*;
use logbook::log::{Filter, Log, LogError, LogReader};
use logbook::record::{Appended, Body, EntryKind, MarkerKind, NewEntry, ObjKey, OutcomeResult};
use std::time::Duration;

fn new_log() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("logbook.db");
    (dir, path)
}

fn open(path: &std::path::Path) -> Log {
    Log::open(path).unwrap_or_else(|e| panic!("{e}"))
}

fn all(reader: &LogReader) -> Vec<logbook::record::Entry> {
    reader
        .range(..)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_kind_round_trips() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    let batch = one_of_each();
    let appended = log.append(&batch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(appended.len(), batch.len());
    for (i, a) in appended.iter().enumerate() {
        assert_eq!(
            *a,
            Appended::Added {
                seq: i as u64 + 1,
                id: batch[i].id
            }
        );
    }
    drop(log);

    let reader = Log::open_read_only(&path).unwrap_or_else(|e| panic!("{e}"));
    let entries = all(&reader);
    assert_eq!(entries.len(), batch.len());
    let kinds: Vec<EntryKind> = entries.iter().map(|e| e.kind()).collect();
    for k in EntryKind::ALL {
        assert!(kinds.contains(&k), "no {k} entry among {kinds:?}");
    }
    for (i, (got, want)) in entries.iter().zip(&batch).enumerate() {
        assert_eq!(got.seq, i as u64 + 1);
        assert_eq!(got.id, want.id);
        assert_eq!(got.at, want.at, "timestamps keep nanoseconds");
        assert_eq!(got.keys, want.keys);
        assert_eq!(
            got.body,
            want.body,
            "entry {} ({}) changed in the round trip",
            got.seq,
            got.kind()
        );
        assert_eq!(got.format, 1);
        // Single lookups agree with the scan.
        assert_eq!(
            reader
                .get(got.seq)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_ref(),
            Some(got)
        );
        assert_eq!(
            reader
                .find(got.id)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_ref(),
            Some(got)
        );
    }
    // The JSON inside came back exactly, big and negative numbers, nulls and unicode included.
    let Body::Event(ev) = &entries[1].body else {
        panic!("entry 2 is {:?}", entries[1].kind())
    };
    let object = ev.object.as_ref().map(|o| {
        o.parse()
            .unwrap_or_else(|e| panic!("entry 2's object: {e}"))
    });
    assert_eq!(object, Some(deployment("web", 1)));
    assert_eq!(
        object.as_ref().and_then(|o| o["spec"]["big"].as_u64()),
        Some(u64::MAX)
    );
    assert_eq!(
        object.as_ref().and_then(|o| o["spec"]["small"].as_i64()),
        Some(i64::MIN)
    );
    assert!(reader.get(99).unwrap_or_else(|e| panic!("{e}")).is_none());
    assert_eq!(
        reader.last_seq().unwrap_or_else(|e| panic!("{e}")),
        batch.len() as u64
    );
}

#[test]
fn hashes_chain_from_genesis_and_continue_after_reopen() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    log.append(&many(10)).unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    let mut log = open(&path);
    let more: Vec<NewEntry> = many(25).into_iter().skip(10).collect();
    log.append(&more).unwrap_or_else(|e| panic!("{e}"));
    let entries = all(log.reader());
    assert_eq!(entries.len(), 25);
    assert_eq!(entries[0].prev_hash, [0u8; 32]);
    for w in entries.windows(2) {
        assert_eq!(
            w[1].prev_hash, w[0].hash,
            "entry {} does not link to {}",
            w[1].seq, w[0].seq
        );
        assert_ne!(w[1].hash, w[0].hash);
    }
    let report = log.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checked, 25);
    assert_eq!(report.last_good_seq, 25);
    assert_eq!(report.head, entries[24].hash);
    assert!(report.append_only_guard);
}

#[test]
fn an_id_already_in_the_log_is_reported_not_written_twice() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    let batch = one_of_each();
    log.append(&batch).unwrap_or_else(|e| panic!("{e}"));
    // The same outcome delivered again, plus one new entry, plus the new entry again.
    let again = outcome(&action("web"), 1, OutcomeResult::Applied);
    let fresh = outcome(&action("web"), 2, OutcomeResult::NoOp);
    let res = log
        .append(&[again.clone(), fresh.clone(), fresh.clone()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        res,
        vec![
            Appended::AlreadyPresent {
                seq: 6,
                id: again.id
            },
            Appended::Added {
                seq: 8,
                id: fresh.id
            },
            Appended::AlreadyPresent {
                seq: 8,
                id: fresh.id
            },
        ]
    );
    assert!(!res[0].is_new() && res[1].is_new());
    assert_eq!(log.last_seq().unwrap_or_else(|e| panic!("{e}")), 8);
    assert!(log.verify().unwrap_or_else(|e| panic!("{e}")).is_ok());
    assert!(log.append(&[]).unwrap_or_else(|e| panic!("{e}")).is_empty());
}

#[test]
fn a_batch_with_a_bad_entry_writes_nothing() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    log.append(&many(3)).unwrap_or_else(|e| panic!("{e}"));
    let mut bad = marker(MarkerKind::Stop, 99);
    bad.at = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    let batch = vec![marker(MarkerKind::Start, 98), bad.clone()];
    let err = log
        .append(&batch)
        .err()
        .unwrap_or_else(|| panic!("an out-of-range timestamp was accepted"));
    assert!(
        matches!(&err, LogError::InvalidEntry { id, .. } if *id == bad.id),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("logbook.db") && msg.contains("timestamp"),
        "{msg}"
    );
    assert_eq!(log.last_seq().unwrap_or_else(|e| panic!("{e}")), 3);
}

#[test]
fn the_database_refuses_update_and_delete_of_entries() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    log.append(&many(4)).unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    let conn = raw(&path);
    for sql in [
        "UPDATE entries SET payload = x'00' WHERE seq = 2",
        "DELETE FROM entries WHERE seq = 4",
        "DELETE FROM entries",
        "UPDATE meta SET value = '2' WHERE key = 'version'",
    ] {
        let err = conn
            .execute_batch(sql)
            .err()
            .unwrap_or_else(|| panic!("`{sql}` was allowed"));
        let msg = err.to_string();
        assert!(
            msg.contains("append-only") || msg.contains("written once"),
            "`{sql}`: {msg}"
        );
    }
    drop(conn);
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all(&reader).len(), 4);
    assert!(reader.verify().unwrap_or_else(|e| panic!("{e}")).is_ok());
}

#[test]
fn queries_filter_by_application_object_kind_time_and_seq() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    let batch = many(200);
    log.append(&batch).unwrap_or_else(|e| panic!("{e}"));
    let reader = log.reader();
    let everything = all(reader);

    let check = |filter: Filter, pred: &dyn Fn(&logbook::record::Entry) -> bool| {
        let got: Vec<u64> = reader
            .query(&filter)
            .map(|e| e.map(|e| e.seq))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<u64> = everything
            .iter()
            .filter(|e| pred(e))
            .map(|e| e.seq)
            .collect();
        let want: Vec<u64> = match filter.limit {
            Some(n) => want.into_iter().take(n).collect(),
            None => want,
        };
        assert!(
            !want.is_empty() || filter.limit == Some(0),
            "{filter:?} matches nothing: a weak test"
        );
        assert_eq!(got, want, "{filter:?}");
    };
    check(Filter::new().application("shop/app-3"), &|e| {
        e.keys.application.as_deref() == Some("shop/app-3")
    });
    let obj = ObjKey::new("Deployment", "shop", "app-2");
    check(Filter::new().object(&obj), &|e| {
        e.keys.object_kind.as_deref() == Some("Deployment")
            && e.keys.object_name.as_deref() == Some("app-2")
            && e.keys.namespace.as_deref() == Some("shop")
    });
    check(
        Filter::new().kinds(&[EntryKind::Plan, EntryKind::Marker]),
        &|e| matches!(e.kind(), EntryKind::Plan | EntryKind::Marker),
    );
    check(
        Filter::new().object(&obj).kinds(&[EntryKind::Outcome]),
        &|e| e.kind() == EntryKind::Outcome && e.keys.object_name.as_deref() == Some("app-2"),
    );
    check(Filter::new().namespace("shop").seqs(50..=120), &|e| {
        e.keys.namespace.as_deref() == Some("shop") && (50..=120).contains(&e.seq)
    });
    let (since, until) = (at(1050), at(1150));
    check(Filter::new().between(Some(since), Some(until)), &|e| {
        e.at >= since && e.at < until
    });
    check(Filter::new().kinds(&[EntryKind::Event]).limit(7), &|e| {
        e.kind() == EntryKind::Event
    });
    check(Filter::new().seqs(190..), &|e| e.seq >= 190);
    check(Filter::new().seqs(..3), &|e| e.seq < 3);
    check(Filter::new().limit(0), &|_| false);
    assert_eq!(reader.range(5..5).count(), 0);
    assert_eq!(reader.range(..0).count(), 0);
    assert_eq!(reader.range(201..).count(), 0);
}

#[test]
fn long_ranges_stream_in_order_across_chunks() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    let batch = many(2600);
    for chunk in batch.chunks(1000) {
        log.append(chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut expect = 1;
    for e in log.range(..) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.seq, expect);
        assert_eq!(e.id, batch[(expect - 1) as usize].id);
        expect += 1;
    }
    assert_eq!(expect, 2601);
    let tail: Vec<u64> = log
        .range(1020..=1030)
        .map(|e| e.map(|e| e.seq))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tail, (1020..=1030).collect::<Vec<_>>());
    let limited = log.query(&Filter::new().seqs(1000..).limit(1500)).count();
    assert_eq!(limited, 1500);
}

#[test]
fn a_read_only_reader_follows_a_writer() {
    let deadline = Deadline::after(Duration::from_secs(30));
    let (_dir, path) = new_log();
    let mut log = open(&path);
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reader.last_seq().unwrap_or_else(|e| panic!("{e}")), 0);
    let batch = many(300);
    let mut seen = 0u64;
    for (i, chunk) in batch.chunks(60).enumerate() {
        log.append(chunk).unwrap_or_else(|e| panic!("{e}"));
        // An iterator opened now sees what was committed, reading from where it left off.
        for e in reader.range(seen + 1..) {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(e.seq, seen + 1);
            seen = e.seq;
        }
        assert_eq!(seen, (i as u64 + 1) * 60);
        deadline.check("following the writer");
    }
    // A scan ends where the log ended when its last chunk was fetched; a new one sees more.
    let mut it = reader.range(..);
    let first = it.next();
    assert!(matches!(first, Some(Ok(ref e)) if e.seq == 1));
    log.append(&many(301).split_off(300))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(it.count() as u64, 299);
    assert_eq!(reader.range(300..).count(), 2);
    let report = reader.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.last_good_seq, 301);
    // The reader cannot write.
    assert!(raw_readonly_write_fails(&path));
}

fn raw_readonly_write_fails(path: &std::path::Path) -> bool {
    // A LogReader exposes no write; its connection is opened read-only. Check SQLite agrees that
    // a read-only connection to the file refuses writes (the property LogReader relies on).
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch("INSERT INTO cursors (name, seq) VALUES ('x', 1)")
        .is_err()
}

#[test]
fn cursors_are_durable_and_outside_the_chain() {
    let (_dir, path) = new_log();
    let mut log = open(&path);
    log.append(&many(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.cursor("nats").unwrap_or_else(|e| panic!("{e}")), None);
    log.set_cursor("nats", 4).unwrap_or_else(|e| panic!("{e}"));
    log.set_cursor("nats", 9).unwrap_or_else(|e| panic!("{e}"));
    log.set_cursor("other", 0).unwrap_or_else(|e| panic!("{e}"));
    let err = log
        .set_cursor("nats", 11)
        .err()
        .unwrap_or_else(|| panic!("cursor past the end accepted"));
    assert!(err.to_string().contains("ends at seq 10"), "{err}");
    drop(log);
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reader.cursor("nats").unwrap_or_else(|e| panic!("{e}")),
        Some(9)
    );
    assert_eq!(
        reader.cursor("other").unwrap_or_else(|e| panic!("{e}")),
        Some(0)
    );
    assert!(reader.verify().unwrap_or_else(|e| panic!("{e}")).is_ok());
}

#[test]
fn entry_uuids_are_stable_tagged_and_time_ordered() {
    use logbook::record::entry_uuid;
    let a = entry_uuid(at(0), "event", b"uid-1/42");
    assert_eq!(a, entry_uuid(at(0), "event", b"uid-1/42"));
    assert_ne!(a, entry_uuid(at(0), "outcome", b"uid-1/42"));
    assert_ne!(a, entry_uuid(at(0), "event", b"uid-1/43"));
    // Tag and content are length-delimited: moving a byte across the boundary changes the id.
    assert_ne!(
        entry_uuid(at(0), "eventu", b"id-1/42"),
        entry_uuid(at(0), "event", b"uid-1/42")
    );
    assert_eq!(a.get_version_num(), 8);
    assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
    // The id starts with the entry's time in Unix milliseconds, so ids sort by time (as
    // stored: the index compares the 16 bytes) whatever the content.
    assert_eq!(
        a.as_bytes()[..6],
        at(0).timestamp_millis().to_be_bytes()[2..]
    );
    let ids: Vec<_> = (0..200i64)
        .map(|n| entry_uuid(at(n), "event", format!("uid-{}/{n}", 199 - n).as_bytes()))
        .collect();
    assert!(ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
    // Same content at another time is another entry.
    assert_ne!(a, entry_uuid(at(1), "event", b"uid-1/42"));
}

#[test]
fn time_ordered_ids_deduplicate_after_a_reopen() {
    let (_dir, path) = new_log();
    let entries = one_of_each();
    {
        let mut log = open(&path);
        log.append(&entries).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut log = open(&path);
    let again = log.append(&entries).unwrap_or_else(|e| panic!("{e}"));
    assert!(again.iter().all(|a| !a.is_new()), "{again:?}");
    assert_eq!(
        again.iter().map(|a| a.seq()).collect::<Vec<_>>(),
        (1..=entries.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        log.last_seq().unwrap_or_else(|e| panic!("{e}")),
        entries.len() as u64
    );
}

#[test]
fn embedded_objects_come_back_as_the_same_json_after_a_reopen() {
    use logbook::record::{Change, Json, ObservedEvent};
    let (_dir, path) = new_log();
    let objects: Vec<serde_json::Value> = vec![
        deployment("web", 1),
        serde_json::json!({"kind": "ConfigMap", "data": {"z": "last", "a": "first", "quote": "\"\\\u{7}"}}),
        serde_json::json!({"kind": "Empty"}),
    ];
    let written: Vec<NewEntry> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let key = logbook::record::ObjKey::new("Deployment", "shop", &format!("o-{i}"));
            let ev = ObservedEvent {
                change: Change::Upsert,
                key,
                api_version: "v1".into(),
                uid: format!("uid-{i}"),
                resource_version: i.to_string(),
                object: Some(Json::from_value(o)),
                synthesized: false,
            };
            let when = at(i as i64);
            let id = logbook::record::entry_uuid(when, "event", format!("uid-{i}/{i}").as_bytes());
            NewEntry::event(id, when, ev, None)
        })
        .collect();
    {
        let mut log = open(&path);
        log.append(&written).unwrap_or_else(|e| panic!("{e}"));
    }
    let reader = LogReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let read = all(&reader);
    assert_eq!(read.len(), objects.len());
    for ((entry, want), sent) in read.iter().zip(&objects).zip(&written) {
        let Body::Event(ev) = &entry.body else {
            panic!("entry {} is {:?}", entry.seq, entry.kind())
        };
        let json = ev
            .object
            .as_ref()
            .unwrap_or_else(|| panic!("entry {} lost its object", entry.seq));
        // The same text as written (canonical: keys sorted, compact) ...
        assert_eq!(json.as_str(), Json::from_value(want).as_str());
        assert_eq!(entry.body, sent.body);
        // ... and the same value once parsed.
        let parsed = json
            .parse()
            .unwrap_or_else(|e| panic!("entry {}: {e}", entry.seq));
        assert_eq!(&parsed, want);
    }
    assert!(reader.verify().unwrap_or_else(|e| panic!("{e}")).is_ok());
}
