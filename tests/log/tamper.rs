//! Tamper evidence: rows edited, removed, reordered or rewritten through raw SQL on a copy of a
//! log (append-only triggers dropped first) are caught by `verify`, which names the right seq.

use logbook_testkit::log as log_common;

use log_common::*;
use logbook::log::{Log, LogReader, Problem, VerifyReport};
use std::path::{Path, PathBuf};

const N: u64 = 20;

/// A closed, intact log of N entries, and a place for copies.
fn original() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("original.db");
    let mut log = Log::open(&path).unwrap_or_else(|e| panic!("{e}"));
    log.append(&many(N)).unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    (dir, path)
}

/// Copies the log, drops its triggers, runs `tamper` on the copy, and verifies the copy.
fn tampered(name: &str, tamper: impl FnOnce(&rusqlite::Connection)) -> VerifyReport {
    let (dir, path) = original();
    let copy = dir.path().join(format!("{name}.db"));
    copy_log(&path, &copy);
    let conn = raw(&copy);
    exec(
        &conn,
        "DROP TRIGGER entries_append_only_update; DROP TRIGGER entries_append_only_delete;",
    );
    tamper(&conn);
    drop(conn);
    let report = verify(&copy);
    // The original is untouched and intact.
    assert!(verify(&path).is_ok());
    report
}

fn verify(path: &Path) -> VerifyReport {
    let reader = LogReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    reader.verify().unwrap_or_else(|e| panic!("{e}"))
}

fn expect(report: &VerifyReport, problem: Problem) {
    assert_eq!(report.problem.as_ref(), Some(&problem), "{report}");
    assert_eq!(report.first_bad_seq(), Some(problem.seq()));
    assert!(!report.is_ok());
    // Everything before the first bad entry was checked and counted.
    assert_eq!(report.last_good_seq, problem.seq() - 1, "{report}");
    let text = report.to_string();
    assert!(
        text.contains(&problem.seq().to_string()) && text.contains(".db"),
        "{text}"
    );
}

#[test]
fn an_untouched_copy_verifies() {
    let report = tampered("untouched", |_| {});
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checked, N);
    assert!(
        !report.append_only_guard,
        "the triggers were dropped: verify should say so"
    );
    assert!(
        report
            .to_string()
            .contains("append-only triggers are missing")
    );
}

#[test]
fn an_edited_payload_is_caught() {
    let r = tampered("payload", |c| {
        exec(
            c,
            "UPDATE entries SET payload = CAST(payload || x'00' AS BLOB) WHERE seq = 7",
        )
    });
    expect(&r, Problem::Edited { seq: 7 });
    // One bit flipped in the middle of a payload.
    let r = tampered("payload-bit", |c| {
        let mut payload: Vec<u8> = c
            .query_row("SELECT payload FROM entries WHERE seq = 13", [], |r| {
                r.get(0)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let mid = payload.len() / 2;
        payload[mid] ^= 0x01;
        c.execute("UPDATE entries SET payload = ?1 WHERE seq = 13", [&payload])
            .unwrap_or_else(|e| panic!("{e}"));
    });
    expect(&r, Problem::Edited { seq: 13 });
}

#[test]
fn an_edited_audit_key_is_caught() {
    let r = tampered("key", |c| {
        exec(
            c,
            "UPDATE entries SET application = 'shop/evil' WHERE seq = 3",
        )
    });
    expect(&r, Problem::Edited { seq: 3 });
    let r = tampered("key-null", |c| {
        exec(c, "UPDATE entries SET namespace = NULL WHERE seq = 1")
    });
    expect(&r, Problem::Edited { seq: 1 });
}

#[test]
fn an_edited_timestamp_kind_id_or_format_is_caught() {
    expect(
        &tampered("at", |c| {
            exec(c, "UPDATE entries SET at_ns = at_ns + 1 WHERE seq = 10")
        }),
        Problem::Edited { seq: 10 },
    );
    expect(
        &tampered("kind", |c| {
            exec(c, "UPDATE entries SET kind = 'marker' WHERE seq = 12")
        }),
        Problem::Edited { seq: 12 },
    );
    expect(
        &tampered("id", |c| {
            exec(c, "UPDATE entries SET id = randomblob(16) WHERE seq = 15")
        }),
        Problem::Edited { seq: 15 },
    );
    expect(
        &tampered("format", |c| {
            exec(c, "UPDATE entries SET format = 2 WHERE seq = 20")
        }),
        Problem::Edited { seq: 20 },
    );
}

#[test]
fn an_edited_link_is_caught() {
    let r = tampered("prev", |c| {
        exec(
            c,
            "UPDATE entries SET prev_hash = zeroblob(32) WHERE seq = 9",
        )
    });
    expect(&r, Problem::Edited { seq: 9 });
}

#[test]
fn a_rewritten_entry_with_a_recomputed_hash_breaks_the_chain_at_the_next() {
    // The forger edits entry 5 and recomputes its hash correctly: entry 6 no longer links.
    let r = tampered("rehash", |c| {
        exec(
            c,
            "UPDATE entries SET application = 'shop/evil' WHERE seq = 5",
        );
        let hash = c
            .query_row(
                "SELECT id, at_ns, kind, namespace, application, object_kind, object_name, format, payload, prev_hash \
                 FROM entries WHERE seq = 5",
                [],
                |r| {
                    let (id, kind, payload, prev): (Vec<u8>, String, Vec<u8>, Vec<u8>) =
                        (r.get(0)?, r.get(2)?, r.get(8)?, r.get(9)?);
                    let keys: [Option<String>; 4] = [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?];
                    let prev: [u8; 32] = prev.as_slice().try_into().unwrap_or_else(|_| panic!("prev_hash not 32 bytes"));
                    let input = logbook::log::chain::HashInput {
                        seq: 5,
                        id: &id,
                        at_ns: r.get(1)?,
                        kind: &kind,
                        keys: [keys[0].as_deref(), keys[1].as_deref(), keys[2].as_deref(), keys[3].as_deref()],
                        format: r.get(7)?,
                        payload: &payload,
                    };
                    Ok(logbook::log::chain::entry_hash(&prev, &input))
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        c.execute(
            "UPDATE entries SET hash = ?1 WHERE seq = 5",
            [hash.as_slice()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    });
    expect(&r, Problem::ChainBroken { seq: 6 });
    assert!(r.to_string().contains("entry 5 was rewritten"), "{r}");
}

#[test]
fn a_removed_entry_is_caught() {
    expect(
        &tampered("del", |c| exec(c, "DELETE FROM entries WHERE seq = 5")),
        Problem::Missing {
            seq: 5,
            next_present: 6,
        },
    );
    expect(
        &tampered("del-range", |c| {
            exec(c, "DELETE FROM entries WHERE seq BETWEEN 5 AND 7")
        }),
        Problem::Missing {
            seq: 5,
            next_present: 8,
        },
    );
    expect(
        &tampered("del-first", |c| {
            exec(c, "DELETE FROM entries WHERE seq = 1")
        }),
        Problem::Missing {
            seq: 1,
            next_present: 2,
        },
    );
}

#[test]
fn entries_removed_from_the_end_are_caught() {
    expect(
        &tampered("del-last", |c| {
            exec(c, "DELETE FROM entries WHERE seq >= 18")
        }),
        Problem::Truncated {
            last_seq: 17,
            allocated: Some(N),
        },
    );
    expect(
        &tampered("del-last-and-trace", |c| {
            exec(
                c,
                "DELETE FROM entries WHERE seq = 20; DELETE FROM sqlite_sequence WHERE name = 'entries'",
            )
        }),
        Problem::Truncated {
            last_seq: 19,
            allocated: None,
        },
    );
    expect(
        &tampered("del-all", |c| exec(c, "DELETE FROM entries")),
        Problem::Truncated {
            last_seq: 0,
            allocated: Some(N),
        },
    );
}

#[test]
fn a_removed_entry_with_the_rest_renumbered_is_caught() {
    let r = tampered("renumber", |c| {
        exec(c, "DELETE FROM entries WHERE seq = 5");
        for seq in 6..=N {
            exec(
                c,
                &format!("UPDATE entries SET seq = {} WHERE seq = {seq}", seq - 1),
            );
        }
        exec(
            c,
            &format!(
                "UPDATE sqlite_sequence SET seq = {} WHERE name = 'entries'",
                N - 1
            ),
        );
    });
    expect(
        &r,
        Problem::Reordered {
            seq: 5,
            written_as: 6,
        },
    );
}

#[test]
fn swapped_entries_are_caught() {
    let swap = |a: u64, b: u64| {
        move |c: &rusqlite::Connection| {
            exec(
                c,
                &format!(
                    "UPDATE entries SET seq = -1 WHERE seq = {a}; UPDATE entries SET seq = {a} WHERE seq = {b}; \
                     UPDATE entries SET seq = {b} WHERE seq = -1;"
                ),
            )
        }
    };
    expect(
        &tampered("swap-adjacent", swap(5, 6)),
        Problem::Reordered {
            seq: 5,
            written_as: 6,
        },
    );
    expect(
        &tampered("swap-far", swap(3, 17)),
        Problem::Reordered {
            seq: 3,
            written_as: 17,
        },
    );
    expect(
        &tampered("swap-first", swap(1, 2)),
        Problem::Reordered {
            seq: 1,
            written_as: 2,
        },
    );
}

#[test]
fn a_moved_entry_leaving_a_gap_is_caught() {
    let r = tampered("move-to-end", |c| {
        exec(
            c,
            &format!("UPDATE entries SET seq = {} WHERE seq = 4", N + 1),
        )
    });
    expect(
        &r,
        Problem::Missing {
            seq: 4,
            next_present: 5,
        },
    );
}

#[test]
fn a_forged_entry_in_place_of_another_is_caught() {
    // Replace entry 8's row with a copy of entry 3's content under a fresh id.
    let r = tampered("forged", |c| {
        exec(
            c,
            "DELETE FROM entries WHERE seq = 8; \
             INSERT INTO entries SELECT 8, randomblob(16), at_ns, kind, namespace, application, object_kind, \
             object_name, format, payload, prev_hash, hash FROM entries WHERE seq = 3;",
        )
    });
    expect(&r, Problem::Edited { seq: 8 });
}

#[test]
fn a_wrong_type_in_a_hashed_column_is_reported_not_panicked() {
    // STRICT tables refuse wrong types, so rebuild the table without STRICT on the copy first.
    let r = tampered("malformed", |c| {
        exec(
            c,
            "ALTER TABLE entries RENAME TO old_entries; \
             CREATE TABLE entries AS SELECT * FROM old_entries; DROP TABLE old_entries; \
             UPDATE entries SET hash = 'not a hash' WHERE seq = 11;",
        )
    });
    assert_eq!(r.first_bad_seq(), Some(11), "{r}");
    assert!(
        matches!(r.problem, Some(Problem::Malformed { seq: 11, .. })),
        "{r}"
    );
}
