//! A pack: the envelopes of one commit, stored as one row (schema 5) instead of one row per
//! envelope.
//!
//! A row per envelope cost SQLite a table insert and an insert into the `(collector, epoch,
//! seq)` index for every reading, about 4.5 µs and 60 bytes beside the payload's delta; a pack
//! costs one insert per commit and a few bytes per envelope. Duplicates are recognised from the
//! stored sequence ranges (`stored_seqs`), no longer from a unique index. Pure functions;
//! [`decode`] never panics and stays within [`MAX_ENTRIES`] whatever the bytes.
//!
//! Format: the entries in id order (the pack's row id is the id of its first envelope, the
//! others follow one by one), each as
//! - the collector, as a text: a varint `t`; an odd `t` is the text number `(t - 1) / 2` of
//!   the pack's texts so far, an even `t` a new text of `t / 2` bytes that follow (it becomes
//!   the next number);
//! - epoch, sequence number, poll time and receive time: zigzag varints of the difference from
//!   the entry before (the first from 0);
//! - the device: a text as the collector;
//! - the reference payload's id: varint 0 for none, else the id + 1;
//! - what is stored (the delta against the reference, or the whole payload): varint length and
//!   the bytes.

use crate::delta::{put_varint, varint};

/// Most entries in one pack ([`decode`] refuses more; a commit of more starts a new pack).
pub const MAX_ENTRIES: usize = 1 << 16;

/// One stored envelope of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The collector's id.
    pub collector: &'a str,
    /// The collector's epoch.
    pub epoch: u64,
    /// The sequence number in the epoch.
    pub seq: u64,
    /// Poll time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// When the gateway received it, ms since the Unix epoch.
    pub received_ms: u64,
    /// The device of its first reading.
    pub device: &'a str,
    /// The id of the reference payload `stored` is a delta against; `None`: `stored` is the
    /// payload itself.
    pub reference: Option<i64>,
    /// The delta or the payload.
    pub stored: &'a [u8],
}

/// Builds the body of a pack.
#[derive(Debug, Default)]
pub struct Packer {
    out: Vec<u8>,
    count: usize,
    prev: Prev,
    /// The pack's texts so far, by their number.
    texts: std::collections::HashMap<String, u64>,
}

#[derive(Debug, Default, Clone)]
struct Prev {
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    received_ms: u64,
}

impl Packer {
    /// An empty pack.
    pub fn new() -> Packer {
        Packer::default()
    }

    /// Appends `entry`.
    pub fn push(&mut self, entry: &Entry<'_>) {
        put_text(&mut self.out, entry.collector, &mut self.texts);
        let p = &mut self.prev;
        put_varint(&mut self.out, zigzag(entry.epoch.wrapping_sub(p.epoch)));
        put_varint(&mut self.out, zigzag(entry.seq.wrapping_sub(p.seq)));
        put_varint(
            &mut self.out,
            zigzag(entry.timestamp_ms.wrapping_sub(p.timestamp_ms)),
        );
        put_varint(
            &mut self.out,
            zigzag(entry.received_ms.wrapping_sub(p.received_ms)),
        );
        put_text(&mut self.out, entry.device, &mut self.texts);
        put_varint(
            &mut self.out,
            entry.reference.map_or(0, |r| (r as u64).wrapping_add(1)),
        );
        put_varint(&mut self.out, entry.stored.len() as u64);
        self.out.extend_from_slice(entry.stored);
        (p.epoch, p.seq, p.timestamp_ms, p.received_ms) = (
            entry.epoch,
            entry.seq,
            entry.timestamp_ms,
            entry.received_ms,
        );
        self.count += 1;
    }

    /// Entries so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no entry was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The body so far (more entries may follow: a pack stays open for the next commit).
    pub fn body(&self) -> &[u8] {
        &self.out
    }

    /// The body, and the packer empty again.
    pub fn take(&mut self) -> Vec<u8> {
        self.count = 0;
        self.prev = Prev::default();
        self.texts.clear();
        std::mem::take(&mut self.out)
    }
}

fn put_text(out: &mut Vec<u8>, text: &str, texts: &mut std::collections::HashMap<String, u64>) {
    match texts.get(text) {
        Some(number) => put_varint(out, number * 2 + 1),
        None => {
            put_varint(out, text.len() as u64 * 2);
            out.extend_from_slice(text.as_bytes());
            let number = texts.len() as u64;
            texts.insert(text.to_string(), number);
        }
    }
}

/// The entries of a pack body; `None` when the bytes are not one (truncated, too many
/// entries, text that is not UTF-8, a text number not given yet).
pub fn decode(bytes: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut out: Vec<Entry<'_>> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut at = 0usize;
    let (mut epoch, mut seq, mut ts, mut received) = (0u64, 0u64, 0u64, 0u64);
    while at < bytes.len() {
        if out.len() == MAX_ENTRIES {
            return None;
        }
        let collector = text(bytes, &mut at, &mut texts)?;
        epoch = epoch.wrapping_add(unzigzag(varint(bytes, &mut at).ok()?));
        seq = seq.wrapping_add(unzigzag(varint(bytes, &mut at).ok()?));
        ts = ts.wrapping_add(unzigzag(varint(bytes, &mut at).ok()?));
        received = received.wrapping_add(unzigzag(varint(bytes, &mut at).ok()?));
        let device = text(bytes, &mut at, &mut texts)?;
        let reference = match varint(bytes, &mut at).ok()? {
            0 => None,
            r => Some(i64::try_from(r - 1).ok()?),
        };
        let stored = take(bytes, &mut at)?;
        out.push(Entry {
            collector,
            epoch,
            seq,
            timestamp_ms: ts,
            received_ms: received,
            device,
            reference,
            stored,
        });
    }
    Some(out)
}

fn text<'a>(bytes: &'a [u8], at: &mut usize, texts: &mut Vec<&'a str>) -> Option<&'a str> {
    let t = varint(bytes, at).ok()?;
    if t % 2 == 1 {
        return texts.get(usize::try_from(t / 2).ok()?).copied();
    }
    let len = usize::try_from(t / 2).ok()?;
    let end = at.checked_add(len).filter(|e| *e <= bytes.len())?;
    let s = std::str::from_utf8(&bytes[*at..end]).ok()?;
    *at = end;
    texts.push(s);
    Some(s)
}

fn take<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(bytes, at).ok()?).ok()?;
    let end = at.checked_add(len).filter(|e| *e <= bytes.len())?;
    let out = &bytes[*at..end];
    *at = end;
    Some(out)
}

fn zigzag(v: u64) -> u64 {
    let v = v as i64;
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> u64 {
    (((v >> 1) as i64) ^ -((v & 1) as i64)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry<'a>(collector: &'a str, seq: u64, device: &'a str, stored: &'a [u8]) -> Entry<'a> {
        Entry {
            collector,
            epoch: 3,
            seq,
            timestamp_ms: 1_795_000_000_000 + seq * 60_000,
            received_ms: 1_795_000_000_050 + seq * 60_000,
            device,
            reference: Some(40 + seq as i64 % 7),
            stored,
        }
    }

    #[test]
    fn a_commit_of_copier_deltas_costs_a_few_bytes_beside_them() {
        let delta = [7u8; 15];
        let devices: Vec<String> = (0..40).map(|i| format!("copier-{i:02}")).collect();
        let entries: Vec<Entry<'_>> = (0..600)
            .map(|i| entry("site-a", 1000 + i, &devices[i as usize % 40], &delta))
            .collect();
        let mut packer = Packer::new();
        for e in &entries {
            packer.push(e);
        }
        assert_eq!(packer.len(), 600);
        let body = packer.take();
        assert!(packer.is_empty());
        // Per entry: the 15-byte delta and a few bytes of numbers and text numbers (each name
        // is written once).
        assert!(body.len() <= 40 * 10 + 600 * (15 + 12), "{}", body.len());
        assert_eq!(decode(&body), Some(entries));
        assert_eq!(decode(&[]), Some(vec![]));
    }

    #[test]
    fn damaged_bodies_are_refused() {
        let mut packer = Packer::new();
        packer.push(&entry("c", 1, "d", b"payload"));
        let body = packer.take();
        for cut in 0..body.len() {
            assert_eq!(
                decode(&body[..cut]).map(|e| e.len()),
                if cut == 0 { Some(0) } else { None },
                "cut at {cut}"
            );
        }
        // A text number not given yet.
        assert_eq!(decode(&[1]), None);
        // Text that is not UTF-8.
        assert_eq!(decode(&[2, 0xff]), None);
    }

    fn arb_entry(
    ) -> impl Strategy<Value = (String, u64, u64, u64, u64, String, Option<i64>, Vec<u8>)> {
        (
            "[a-c]{1,3}",
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            "[a-d]{1,4}",
            proptest::option::of(0i64..i64::MAX),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
    }

    proptest! {
        #[test]
        fn any_entries_round_trip(raw in proptest::collection::vec(arb_entry(), 0..60)) {
            let entries: Vec<Entry<'_>> = raw
                .iter()
                .map(|(c, epoch, seq, ts, rx, d, r, s)| Entry {
                    collector: c,
                    epoch: *epoch,
                    seq: *seq,
                    timestamp_ms: *ts,
                    received_ms: *rx,
                    device: d,
                    reference: *r,
                    stored: s,
                })
                .collect();
            let mut packer = Packer::new();
            for e in &entries {
                packer.push(e);
            }
            let body = packer.take();
            prop_assert_eq!(decode(&body), Some(entries));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Some(entries) = decode(&bytes) {
                prop_assert!(entries.len() <= bytes.len() / 8);
            }
        }
    }
}
