//! A history span: the `(poll time, envelope id)` entries of one device from one run of the
//! store's history indexing, kept as one compact row instead of one index row per envelope.
//!
//! An index row per envelope cost two B-tree seeks per reading when the run inserted it (a
//! fifth of the commit) and about 30 bytes; a span costs one insert per device and run, and
//! 3–5 bytes per entry. Pure functions; [`decode`] never panics and stays within
//! [`MAX_ENTRIES`] whatever the bytes.
//!
//! Format: the entries sorted by `(time, id)`, each as two varints, the zigzag-encoded
//! differences of time and id from the entry before (the first from `(0, 0)`).

use crate::delta::{put_varint, varint};

/// Most entries [`decode`] returns (a run indexes a few thousand envelopes).
pub const MAX_ENTRIES: usize = 1 << 20;

/// The span of `entries`, which must be sorted.
pub fn encode(entries: &[(i64, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 4);
    let mut prev = (0i64, 0i64);
    for &(ts, id) in entries {
        put_varint(&mut out, zigzag(ts.wrapping_sub(prev.0)));
        put_varint(&mut out, zigzag(id.wrapping_sub(prev.1)));
        prev = (ts, id);
    }
    out
}

/// The entries of a span; `None` when the bytes are not one (truncated, too long).
pub fn decode(bytes: &[u8]) -> Option<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    let (mut at, mut prev) = (0usize, (0i64, 0i64));
    while at < bytes.len() {
        if out.len() == MAX_ENTRIES {
            return None;
        }
        let ts = prev.0.wrapping_add(unzigzag(varint(bytes, &mut at).ok()?));
        let id = prev.1.wrapping_add(unzigzag(varint(bytes, &mut at).ok()?));
        prev = (ts, id);
        out.push(prev);
    }
    Some(out)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_minute_poll_costs_a_few_bytes_per_entry() {
        let entries: Vec<(i64, i64)> = (0..1000)
            .map(|i| (1_795_000_000_000 + i * 60_000, 7 + i * 100))
            .collect();
        let bytes = encode(&entries);
        assert!(bytes.len() <= 8 + 1000 * 5, "{}", bytes.len());
        assert_eq!(decode(&bytes), Some(entries));
        assert_eq!(decode(&[]), Some(vec![]));
        assert_eq!(decode(&[0x80]), None, "truncated");
    }

    proptest! {
        #[test]
        fn any_sorted_entries_round_trip(mut entries in proptest::collection::vec(any::<(i64, i64)>(), 0..200)) {
            entries.sort_unstable();
            prop_assert_eq!(decode(&encode(&entries)), Some(entries));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(entries) = decode(&bytes) {
                prop_assert!(entries.len() <= bytes.len() / 2);
            }
        }
    }
}
