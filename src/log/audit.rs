//! Audit keys (schema version 2): which entries are about an Application, an object, a namespace
//! or a kind, kept in the `audit` table beside the entries (see `schema/log.sql`).
//! Owns the key encoding, the rows the writer adds for a batch, their decoding for the reader,
//! and the check `verify` makes that the rows list exactly the entries with each key.

use super::error::{LogError, LogResult};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

/// The span a row of `audit` belongs to is `seq >> SPAN_BITS` (4096 consecutive seqs).
pub(crate) const SPAN_BITS: u32 = 12;

/// The span of `seq`.
pub(crate) fn span(seq: u64) -> u64 {
    seq >> SPAN_BITS
}

/// One audit key, borrowed from an entry's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AuditKey<'a> {
    /// `application` (`namespace/name`).
    Application(&'a str),
    /// `object_kind`, with `namespace` and `object_name` (either may be NULL).
    Object {
        kind: &'a str,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    },
    /// `namespace`.
    Namespace(&'a str),
    /// The entry's kind.
    Kind(&'a str),
}

impl AuditKey<'_> {
    /// Appends the key's text, as stored in `audit.key`, to `out`: compact JSON, so that every
    /// key has one spelling and no two keys share one.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        // Serializing strings, `Option`s and tuples into a Vec cannot fail.
        let _ = match *self {
            AuditKey::Application(a) => serde_json::to_writer(out, &("application", a)),
            AuditKey::Object {
                kind,
                namespace,
                name,
            } => serde_json::to_writer(out, &("object", kind, namespace, name)),
            AuditKey::Namespace(ns) => serde_json::to_writer(out, &("namespace", ns)),
            AuditKey::Kind(k) => serde_json::to_writer(out, &("kind", k)),
        };
    }

    /// The key's text, as stored in `audit.key`.
    pub(crate) fn text(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The audit keys of an entry with `kind` and audit columns `keys` (namespace, application,
/// object_kind, object_name: the order of [`super::chain::HashInput::keys`]).
pub(crate) fn keys_of<'a>(
    kind: &'a str,
    keys: [Option<&'a str>; 4],
) -> impl Iterator<Item = AuditKey<'a>> {
    let [namespace, application, object_kind, object_name] = keys;
    let object = object_kind.map(|kind| AuditKey::Object {
        kind,
        namespace,
        name: object_name,
    });
    application
        .map(AuditKey::Application)
        .into_iter()
        .chain(object)
        .chain(namespace.map(AuditKey::Namespace))
        .chain(std::iter::once(AuditKey::Kind(kind)))
}

/// FNV-1a: the writer groups a batch's thousands of (span, key) pairs by hashing short strings,
/// where the standard library's DoS-resistant hash costs more than the grouping itself.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A row of `audit`: the seqs of one batch's entries with one key, within one span.
pub(crate) struct Row {
    pub(crate) span: i64,
    pub(crate) key: String,
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) seqs: Vec<u8>,
}

/// The rows a batch adds: fed each appended entry's seq and keys, in seq order.
#[derive(Default)]
pub(crate) struct Batch<'a> {
    groups: HashMap<(u64, AuditKey<'a>), Vec<u64>, BuildHasherDefault<Fnv>>,
}

impl<'a> Batch<'a> {
    /// Notes the entry appended at `seq` (seqs must come in increasing order).
    pub(crate) fn add(&mut self, seq: u64, kind: &'a str, keys: [Option<&'a str>; 4]) {
        for key in keys_of(kind, keys) {
            self.groups.entry((span(seq), key)).or_default().push(seq);
        }
    }

    /// The rows to insert, ordered by their primary key (span, key text, first).
    pub(crate) fn rows(self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .groups
            .into_iter()
            .map(|((span, key), seqs)| {
                let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
                Row {
                    span: clamp(span),
                    key: key.text(),
                    first: clamp(first),
                    last: clamp(last),
                    seqs: encode_seqs(&seqs),
                }
            })
            .collect();
        rows.sort_unstable_by(|a, b| (a.span, &a.key, a.first).cmp(&(b.span, &b.key, b.first)));
        rows
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The seqs after the first, as differences from the one before, each an unsigned LEB128.
fn encode_seqs(seqs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len());
    for pair in seqs.windows(2) {
        let mut d = pair[1] - pair[0];
        loop {
            let low = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
    }
    out
}

/// The seqs of a row (`first`, then those in `seqs`), or what is wrong with it: each must be
/// greater than the one before, all in one span, the last one `last`.
pub(crate) fn decode_seqs(first: i64, last: i64, seqs: &[u8]) -> Result<Vec<u64>, String> {
    let first = u64::try_from(first)
        .ok()
        .filter(|f| *f > 0)
        .ok_or_else(|| format!("its first seq {first} is not positive"))?;
    let mut out = vec![first];
    let (mut d, mut shift) = (0u64, 0u32);
    for b in seqs {
        if shift > 56 {
            return Err("its seq list holds a number too long".into());
        }
        d |= u64::from(b & 0x7f) << shift;
        if b & 0x80 != 0 {
            shift += 7;
            continue;
        }
        let prev = out[out.len() - 1];
        let next = prev
            .checked_add(d)
            .filter(|n| d > 0 && span(*n) == span(first))
            .ok_or_else(|| {
                format!("its seq list goes from {prev} to {prev}+{d}, not forward within the span")
            })?;
        out.push(next);
        (d, shift) = (0, 0);
    }
    if shift != 0 {
        return Err("its seq list ends in the middle of a number".into());
    }
    if i64::try_from(out[out.len() - 1]).ok() != Some(last) {
        return Err(format!(
            "its seq list ends at {}, not at its last seq {last}",
            out[out.len() - 1]
        ));
    }
    Ok(out)
}

/// Compares the `audit` table with the entries, span by span, and says what the first
/// difference is: an entry missing under one of its keys (audits by that key would not show
/// it), a row listing an entry that does not have its key, or a malformed row. `None` when they
/// agree. Memory holds one span (4096 entries) at a time.
pub(crate) fn check(conn: &rusqlite::Connection, path: &Path) -> LogResult<Option<String>> {
    let fail = |e| LogError::sqlite(path, "check the audit keys of", e);
    let mut entries = conn
        .prepare(
            "SELECT seq, kind, namespace, application, object_kind, object_name FROM entries \
             ORDER BY seq",
        )
        .map_err(fail)?;
    let mut entries = entries.query([]).map_err(fail)?;
    let mut rows = conn
        .prepare("SELECT span, key, first, last, seqs FROM audit ORDER BY span, key, first")
        .map_err(fail)?;
    let mut rows = rows.query([]).map_err(fail)?;

    // What the entries of the current span say, and what the rows of that span say.
    let mut expected: HashMap<String, Vec<u64>> = HashMap::new();
    let mut listed: HashMap<String, Vec<u64>> = HashMap::new();
    let mut buf = Vec::new();
    let mut next_entry = entries.next().map_err(fail)?;
    let mut next_row = rows.next().map_err(fail)?;
    loop {
        // The next span either side has.
        let entry_span = match next_entry {
            Some(row) => Some(row.get::<_, i64>(0).map_err(fail)?),
            None => None,
        }
        .map(|s| span(u64::try_from(s).unwrap_or(0)));
        let row_span = match next_row {
            Some(row) => Some(row.get::<_, i64>(0).map_err(fail)?),
            None => None,
        }
        .map(|s| u64::try_from(s).unwrap_or(u64::MAX));
        let current = match (entry_span, row_span) {
            (None, None) => return Ok(None),
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        expected.clear();
        listed.clear();
        while let Some(row) = next_entry {
            let seq = row.get::<_, i64>(0).map_err(fail)?;
            let Ok(seq) = u64::try_from(seq) else {
                // verify's walk reports an entry with a bad seq; nothing to compare it by.
                next_entry = entries.next().map_err(fail)?;
                continue;
            };
            if span(seq) != current {
                break;
            }
            let text = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_str_or_null().ok());
            // A column of the wrong type is verify's walk's to report; use what reads.
            let kind = text(1).flatten().unwrap_or("");
            let keys = [
                text(2).flatten(),
                text(3).flatten(),
                text(4).flatten(),
                text(5).flatten(),
            ];
            for key in keys_of(kind, keys) {
                buf.clear();
                key.write(&mut buf);
                let text = String::from_utf8_lossy(&buf);
                match expected.get_mut(text.as_ref()) {
                    Some(seqs) => seqs.push(seq),
                    None => {
                        expected.insert(text.into_owned(), vec![seq]);
                    }
                }
            }
            next_entry = entries.next().map_err(fail)?;
        }
        while let Some(row) = next_row {
            let row_span = u64::try_from(row.get::<_, i64>(0).map_err(fail)?).unwrap_or(u64::MAX);
            if row_span != current {
                break;
            }
            let key: String = row.get(1).map_err(fail)?;
            let first: i64 = row.get(2).map_err(fail)?;
            let last: i64 = row.get(3).map_err(fail)?;
            let Some(seqs) = row.get_ref(4).ok().and_then(|v| v.as_blob().ok()) else {
                return Ok(Some(format!(
                    "the audit row for {key} from seq {first} is malformed: its seqs are not a blob"
                )));
            };
            let seqs = match decode_seqs(first, last, seqs) {
                Ok(s) if span(s[0]) == current => s,
                Ok(_) => {
                    return Ok(Some(format!(
                        "the audit row for {key} from seq {first} is filed under span {current}, not its own"
                    )));
                }
                Err(problem) => {
                    return Ok(Some(format!(
                        "the audit row for {key} from seq {first} is malformed: {problem}"
                    )));
                }
            };
            let all = listed.entry(key.clone()).or_default();
            if all.last().is_some_and(|l| *l >= seqs[0]) {
                return Ok(Some(format!(
                    "the audit rows for {key} list seq {} twice or out of order",
                    seqs[0]
                )));
            }
            all.extend(seqs);
            next_row = rows.next().map_err(fail)?;
        }
        if let Some(problem) = compare(&expected, &listed) {
            return Ok(Some(problem));
        }
    }
}

/// The first difference between what one span's entries say and what its rows list.
fn compare(
    expected: &HashMap<String, Vec<u64>>,
    listed: &HashMap<String, Vec<u64>>,
) -> Option<String> {
    let mut problems: Vec<(u64, String)> = Vec::new();
    for (key, want) in expected {
        let have = listed.get(key).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(seq) = want.iter().find(|s| have.binary_search(s).is_err()) {
            problems.push((
                *seq,
                format!("entry {seq} is missing from the audit rows for {key} (audits by that key would not show it)"),
            ));
        }
    }
    for (key, have) in listed {
        let want = expected.get(key).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(seq) = have.iter().find(|s| want.binary_search(s).is_err()) {
            problems.push((
                *seq,
                format!("the audit rows for {key} list entry {seq}, which does not have that key"),
            ));
        }
    }
    problems.sort();
    problems.into_iter().next().map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_one_spelling_each() {
        let keys: Vec<String> = keys_of(
            "event",
            [
                Some("shop"),
                Some("shop/web"),
                Some("Deployment"),
                Some("web"),
            ],
        )
        .map(|k| k.text())
        .collect();
        assert_eq!(
            keys,
            [
                r#"["application","shop/web"]"#,
                r#"["object","Deployment","shop","web"]"#,
                r#"["namespace","shop"]"#,
                r#"["kind","event"]"#,
            ]
        );
        // No namespace, a quote in a name: still one unambiguous spelling.
        let key = AuditKey::Object {
            kind: "Namespace",
            namespace: None,
            name: Some("a\",\"b"),
        };
        assert_eq!(key.text(), r#"["object","Namespace",null,"a\",\"b"]"#);
        // No object key without an object kind; a plan has only its kind.
        assert_eq!(
            keys_of("plan", [None, None, None, Some("x")]).collect::<Vec<_>>(),
            [AuditKey::Kind("plan")]
        );
    }

    #[test]
    fn seq_lists_round_trip_and_bad_ones_are_named() {
        for seqs in [
            vec![5u64],
            vec![4095],
            vec![4096, 4097, 4300, 8191],
            vec![1, 2, 200, 201, 4000],
        ] {
            let blob = encode_seqs(&seqs);
            let (first, last) = (seqs[0] as i64, seqs[seqs.len() - 1] as i64);
            assert_eq!(decode_seqs(first, last, &blob), Ok(seqs));
        }
        assert!(decode_seqs(4095, 4096, &[1]).is_err(), "crosses a span");
        assert!(decode_seqs(10, 10, &[0]).is_err(), "does not move forward");
        assert!(decode_seqs(10, 12, &[1]).is_err(), "last does not match");
        assert!(decode_seqs(10, 11, &[0x81]).is_err(), "cut in a number");
        assert!(decode_seqs(0, 0, &[]).is_err(), "seq 0");
        assert!(decode_seqs(1, 1, &[0xff; 12]).is_err(), "too long");
    }

    #[test]
    fn a_batch_makes_one_row_per_key_and_span() {
        let mut batch = Batch::default();
        for seq in 4094..4099u64 {
            let app = if seq % 2 == 0 {
                Some("shop/a")
            } else {
                Some("shop/b")
            };
            batch.add(seq, "event", [Some("shop"), app, None, None]);
        }
        let rows: Vec<(i64, String, i64, i64)> = batch
            .rows()
            .into_iter()
            .map(|r| (r.span, r.key, r.first, r.last))
            .collect();
        assert_eq!(
            rows,
            [
                (0, r#"["application","shop/a"]"#.to_string(), 4094, 4094),
                (0, r#"["application","shop/b"]"#.to_string(), 4095, 4095),
                (0, r#"["kind","event"]"#.to_string(), 4094, 4095),
                (0, r#"["namespace","shop"]"#.to_string(), 4094, 4095),
                (1, r#"["application","shop/a"]"#.to_string(), 4096, 4098),
                (1, r#"["application","shop/b"]"#.to_string(), 4097, 4097),
                (1, r#"["kind","event"]"#.to_string(), 4096, 4098),
                (1, r#"["namespace","shop"]"#.to_string(), 4096, 4098),
            ]
        );
    }
}
