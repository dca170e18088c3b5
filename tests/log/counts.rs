//! The timeline's queries of the log, against the entries themselves: counts per lane, entry
//! kind and time bucket (`LogReader::counts`), the seq where the controller's time crosses a
//! moment (`LogReader::seq_at_time`), and a seq range's time span (`LogReader::time_span`).

use chrono::{DateTime, Utc};
use logbook::log::reader::Lane;
use logbook::log::{Filter, LogReader};
use logbook::reconcile::PlannerConfig;
use logbook::record::{Entry, EntryKind};
use logbook_testkit::history::standard;
use std::collections::BTreeMap;

fn ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().expect("a time in range")
}

#[test]
fn counts_are_the_entries_by_lane_kind_and_bucket() {
    let h = standard(PlannerConfig::default());
    let entries: Vec<Entry> = h.entries();
    let reader = LogReader::open(&h.path).expect("opens");
    let origin = entries[entries.len() / 2].at;
    let width = 1_000_000; // 1 ms: entries fall on both sides of the origin
    let bucket = |t: DateTime<Utc>| (ns(t) - ns(origin)).div_euclid(width);
    let check = |filter: &Filter, keep: &dyn Fn(&Entry) -> bool| {
        let mut want: BTreeMap<(Lane, EntryKind, i64), u64> = BTreeMap::new();
        for e in entries.iter().filter(|e| keep(e)) {
            *want
                .entry((Lane::of(&e.keys), e.kind(), bucket(e.at)))
                .or_default() += 1;
        }
        let got: BTreeMap<(Lane, EntryKind, i64), u64> = reader
            .counts(filter, origin, width)
            .expect("counts")
            .into_iter()
            .map(|c| ((c.lane, c.entry_kind, c.bucket), c.count))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{filter:?}");
    };
    check(&Filter::new(), &|_| true);
    assert!(
        reader
            .counts(&Filter::new(), origin, width)
            .expect("counts")
            .iter()
            .any(|c| c.bucket < 0),
        "entries before the origin fall in negative buckets"
    );
    check(
        &Filter::new()
            .application("shop/web")
            .kinds(&[EntryKind::Action, EntryKind::Outcome]),
        &|e| {
            e.keys.application.as_deref() == Some("shop/web")
                && matches!(e.kind(), EntryKind::Action | EntryKind::Outcome)
        },
    );
    check(
        &Filter::new().namespace("blog").object_kind("Deployment"),
        &|e| {
            e.keys.namespace.as_deref() == Some("blog")
                && e.keys.object_kind.as_deref() == Some("Deployment")
        },
    );
    let (from, to) = (entries[3].at, entries[20].at);
    check(
        &Filter::new().between(Some(from), Some(to)).seqs(2..=40),
        &|e| e.at >= from && e.at < to && (2..=40).contains(&e.seq),
    );
}

#[test]
fn time_finds_its_seq_among_the_controllers_entries() {
    let h = standard(PlannerConfig::default());
    let entries: Vec<Entry> = h.entries();
    let reader = LogReader::open(&h.path).expect("opens");
    let last = entries.len() as u64;
    // Brute force: the first entry that is not an outcome at or after t.
    let want = |t: DateTime<Utc>| {
        entries
            .iter()
            .find(|e| e.kind() != EntryKind::Outcome && e.at >= t)
            .map_or(last + 1, |e| e.seq)
    };
    let mut moments: Vec<DateTime<Utc>> = entries.iter().map(|e| e.at).collect();
    moments.extend(
        entries
            .iter()
            .map(|e| e.at + chrono::Duration::nanoseconds(1)),
    );
    for t in moments {
        assert_eq!(reader.seq_at_time(t).expect("searches"), want(t), "{t}");
    }
    let min = entries.iter().map(|e| e.at).min().expect("entries");
    let max = entries.iter().map(|e| e.at).max().expect("entries");
    assert_eq!(reader.time_span(1, last).expect("reads"), Some((min, max)));
    assert_eq!(reader.time_span(last + 1, last + 9).expect("reads"), None);
}
