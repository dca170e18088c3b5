//! The hash chain: the canonical bytes an entry's hash covers, and the hash itself.
//! Owns the hash input (documented in `schema/entries.md`); does no I/O and decodes no payloads.

use sha2::{Digest, Sha256};

/// The `prev_hash` of entry 1.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Domain separation: the first bytes of every hash input.
const DOMAIN: &[u8] = b"logbook-entry-v1\0";

/// The stored columns of an entry that its hash covers, exactly as stored.
#[derive(Clone, Copy, Debug)]
pub struct HashInput<'a> {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's id (16 bytes, as stored).
    pub id: &'a [u8],
    /// Nanoseconds since the Unix epoch, UTC.
    pub at_ns: i64,
    /// The kind, as stored (lowercase).
    pub kind: &'a str,
    /// The four audit keys in column order: namespace, application, object_kind, object_name.
    pub keys: [Option<&'a str>; 4],
    /// The payload format.
    pub format: i64,
    /// The payload bytes.
    pub payload: &'a [u8],
}

/// SHA-256 of `DOMAIN ‖ prev_hash ‖ canonical(entry)`; see `schema/entries.md`.
pub fn entry_hash(prev_hash: &[u8; 32], e: &HashInput<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev_hash);
    h.update(e.seq.to_be_bytes());
    bytes(&mut h, e.id);
    h.update(e.at_ns.to_be_bytes());
    bytes(&mut h, e.kind.as_bytes());
    for key in e.keys {
        match key {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                bytes(&mut h, s.as_bytes());
            }
        }
    }
    h.update(e.format.to_be_bytes());
    bytes(&mut h, e.payload);
    h.finalize().into()
}

/// A length-prefixed byte string: length as u64 big-endian, then the bytes.
fn bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(payload: &'a [u8], keys: [Option<&'a str>; 4]) -> HashInput<'a> {
        HashInput {
            seq: 7,
            id: &[1u8; 16],
            at_ns: 42,
            kind: "event",
            keys,
            format: 1,
            payload,
        }
    }

    #[test]
    fn hash_is_a_fixed_function_of_its_input() {
        let a = entry_hash(
            &GENESIS,
            &input(b"abc", [Some("ns"), None, Some("Deployment"), Some("web")]),
        );
        // Pinned: changing the hash input breaks every existing log, so it must be deliberate.
        assert_eq!(hex::encode(a), PINNED);
        let b = entry_hash(
            &GENESIS,
            &input(b"abc", [Some("ns"), None, Some("Deployment"), Some("web")]),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn every_field_and_boundary_matters() {
        let base = entry_hash(&GENESIS, &input(b"abc", [Some("ab"), None, None, None]));
        // Moving bytes across a field boundary changes the hash (length prefixes).
        assert_ne!(
            base,
            entry_hash(&GENESIS, &input(b"abc", [Some("a"), Some("b"), None, None]))
        );
        // None differs from an empty string.
        assert_ne!(
            entry_hash(&GENESIS, &input(b"", [None, None, None, None])),
            entry_hash(&GENESIS, &input(b"", [Some(""), None, None, None]))
        );
        let mut other = input(b"abc", [Some("ab"), None, None, None]);
        other.seq = 8;
        assert_ne!(base, entry_hash(&GENESIS, &other));
        let mut other = input(b"abc", [Some("ab"), None, None, None]);
        other.at_ns = 43;
        assert_ne!(base, entry_hash(&GENESIS, &other));
        let mut other = input(b"abc", [Some("ab"), None, None, None]);
        other.format = 2;
        assert_ne!(base, entry_hash(&GENESIS, &other));
        assert_ne!(
            base,
            entry_hash(&[1u8; 32], &input(b"abc", [Some("ab"), None, None, None]))
        );
    }

    const PINNED: &str = "ccc948a04600f10a399a2dfe06c1a5c429d4d99ed69d4b4926c959d5084e2025";
}
