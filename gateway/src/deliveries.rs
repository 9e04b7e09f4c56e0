//! Which envelopes arrived, per collector and epoch: the gateway's end of "every reading exactly
//! once in effect". I/O-free.
//!
//! An envelope is identified by `(collector, epoch, seq)` (see the protocol's envelope). The
//! tracker keeps, per `(collector, epoch)`, the received sequence numbers as disjoint ranges,
//! so memory grows with the number of holes, not with the number of envelopes. It answers:
//! - is this envelope a repeat? (then it must not be applied again);
//! - which sequence numbers are missing below the highest one seen (lost or still underway)?

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most holes listed per epoch in a report (the count is always exact).
pub const MAX_LISTED_GAPS: usize = 20;

/// A set of sequence numbers as disjoint half-open ranges `start -> end`: memory grows with
/// the holes, not with the numbers. Also what the store keeps to recognise redeliveries.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqSet {
    ranges: BTreeMap<u64, u64>,
    /// `u64::MAX`, which no half-open range can hold.
    max: bool,
}

impl SeqSet {
    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        if seq == u64::MAX {
            return self.max;
        }
        self.containing(seq).is_some()
    }

    /// Inserts `seq`; false when it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        self.insert_noting(seq, &mut Vec::new())
    }

    /// Inserts `seq` as [`SeqSet::insert`] does, adding to `removed` the starts of the ranges
    /// it merged away (for a stored copy to follow).
    pub fn insert_noting(&mut self, seq: u64, removed: &mut Vec<u64>) -> bool {
        if seq == u64::MAX {
            return !std::mem::replace(&mut self.max, true);
        }
        if self.contains(seq) {
            return false;
        }
        let end = seq + 1;
        let mut start = seq;
        let mut new_end = end;
        // Merge with a range ending exactly at seq.
        if let Some((&s, &e)) = self.ranges.range(..seq).next_back() {
            if e == seq {
                start = s;
                self.ranges.remove(&s);
                removed.push(s);
            }
        }
        // Merge with a range starting right after seq.
        if let Some(&e) = self.ranges.get(&end) {
            new_end = e;
            self.ranges.remove(&end);
            removed.push(end);
        }
        self.ranges.insert(start, new_end);
        true
    }

    /// The range holding `seq` as `(first, last)`, both included (`(MAX, MAX)` for
    /// `u64::MAX`): how the store keeps the set.
    pub fn inclusive_containing(&self, seq: u64) -> Option<(u64, u64)> {
        if seq == u64::MAX {
            return self.max.then_some((u64::MAX, u64::MAX));
        }
        self.containing(seq).map(|(s, e)| (s, e - 1))
    }

    /// Adds `[first, last]`, both included; for loading a stored set.
    pub fn insert_inclusive(&mut self, first: u64, last: u64) {
        if last == u64::MAX {
            self.max = true;
            self.insert_range(first, u64::MAX);
        } else {
            self.insert_range(first, last.saturating_add(1));
        }
    }

    /// Adds the range `[start, end)` (merging with what it touches); for loading a stored set.
    pub fn insert_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .filter(|(rs, re)| **re >= start && **rs <= end)
            .map(|(a, b)| (*a, *b))
            .collect();
        for (rs, re) in touching {
            self.ranges.remove(&rs);
            s = s.min(rs);
            e = e.max(re);
        }
        self.ranges.insert(s, e);
    }

    /// The range `[start, end)` holding `seq`, if any.
    pub fn containing(&self, seq: u64) -> Option<(u64, u64)> {
        self.ranges
            .range(..=seq)
            .next_back()
            .filter(|(_, end)| seq < **end)
            .map(|(s, e)| (*s, *e))
    }

    /// The ranges `[start, end)`, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(s, e)| (*s, *e))
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum::<u64>() + u64::from(self.max)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && !self.max
    }

    /// The holes between the ranges, as `[from, to)`.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut prev_end: Option<u64> = None;
        for (&s, &e) in &self.ranges {
            if let Some(p) = prev_end {
                gaps.push((p, s));
            }
            prev_end = Some(e);
        }
        gaps
    }
}

/// Received sequence numbers of one epoch, with its repeats and poll times.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Ranges {
    set: SeqSet,
    repeats: u64,
    first_poll_ms: u64,
    last_poll_ms: u64,
}

/// The tracker.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Deliveries {
    /// Per collector, per epoch (nested, so that a lookup needs no owned key).
    by_stream: BTreeMap<String, BTreeMap<u64, Ranges>>,
}

/// What [`Deliveries::record`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// First time this identity is seen.
    New,
    /// Seen before: a redelivery, not to be applied again.
    Repeat,
}

/// One epoch of one collector in a report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EpochReport {
    /// The epoch.
    pub epoch: u64,
    /// Distinct envelopes received.
    pub received: u64,
    /// Envelopes received again and dropped.
    pub repeats: u64,
    /// Lowest sequence number received.
    pub first_seq: u64,
    /// Highest sequence number received.
    pub last_seq: u64,
    /// Sequence numbers missing between the first and the last.
    pub missing: u64,
    /// The first holes, as `[from, to)` ranges.
    pub gaps: Vec<(u64, u64)>,
    /// Earliest poll time of the epoch's envelopes (ms since the Unix epoch).
    pub first_poll_ms: u64,
    /// Latest poll time of the epoch's envelopes.
    pub last_poll_ms: u64,
}

impl Deliveries {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an envelope identity; `poll_ms` is the envelope's timestamp.
    pub fn record(&mut self, collector: &str, epoch: u64, seq: u64, poll_ms: u64) -> Delivery {
        let epochs = match self.by_stream.get_mut(collector) {
            Some(epochs) => epochs,
            None => self.by_stream.entry(collector.to_string()).or_default(),
        };
        let stream = epochs.entry(epoch).or_insert_with(|| Ranges {
            first_poll_ms: poll_ms,
            last_poll_ms: poll_ms,
            ..Ranges::default()
        });
        stream.first_poll_ms = stream.first_poll_ms.min(poll_ms);
        stream.last_poll_ms = stream.last_poll_ms.max(poll_ms);
        if stream.set.insert(seq) {
            Delivery::New
        } else {
            stream.repeats += 1;
            Delivery::Repeat
        }
    }

    /// Adds what `older` received (a snapshot's tracker, whose envelopes the store may no
    /// longer hold): the union of the sequence numbers, the wider poll-time span, the larger
    /// repeat count.
    pub fn merge_older(&mut self, older: &Deliveries) {
        for (collector, epochs) in &older.by_stream {
            let mine = self.by_stream.entry(collector.clone()).or_default();
            for (epoch, theirs) in epochs {
                match mine.get_mut(epoch) {
                    None => {
                        mine.insert(*epoch, theirs.clone());
                    }
                    Some(stream) => {
                        for (start, end) in theirs.set.ranges() {
                            stream.set.insert_range(start, end);
                        }
                        if theirs.set.contains(u64::MAX) {
                            stream.set.insert(u64::MAX);
                        }
                        stream.first_poll_ms = stream.first_poll_ms.min(theirs.first_poll_ms);
                        stream.last_poll_ms = stream.last_poll_ms.max(theirs.last_poll_ms);
                        stream.repeats = stream.repeats.max(theirs.repeats);
                    }
                }
            }
        }
    }

    /// The received ranges `[start, end)` of `(collector, epoch)` that hold any of `seqs`,
    /// sorted and disjoint: what a gateway acknowledgement says is stored. Sequence numbers not
    /// received are left out.
    pub fn covering(
        &self,
        collector: &str,
        epoch: u64,
        seqs: impl IntoIterator<Item = u64>,
    ) -> Vec<(u64, u64)> {
        let Some(stream) = self.by_stream.get(collector).and_then(|e| e.get(&epoch)) else {
            return Vec::new();
        };
        let found: std::collections::BTreeSet<(u64, u64)> = seqs
            .into_iter()
            .filter_map(|seq| stream.set.containing(seq))
            .collect();
        found.into_iter().collect()
    }

    /// Per collector, its epochs in order.
    pub fn report(&self) -> BTreeMap<String, Vec<EpochReport>> {
        let mut out: BTreeMap<String, Vec<EpochReport>> = BTreeMap::new();
        for (collector, epoch, r) in self
            .by_stream
            .iter()
            .flat_map(|(c, epochs)| epochs.iter().map(move |(e, r)| (c, e, r)))
        {
            let gaps = r.set.gaps();
            let first_seq = r.set.ranges().next().map_or(0, |(s, _)| s);
            let last_seq = r.set.ranges().last().map_or(0, |(_, e)| e - 1);
            out.entry(collector.clone()).or_default().push(EpochReport {
                epoch: *epoch,
                received: r.set.len(),
                repeats: r.repeats,
                first_seq,
                last_seq,
                missing: gaps.iter().map(|(a, b)| b - a).sum(),
                gaps: gaps.into_iter().take(MAX_LISTED_GAPS).collect(),
                first_poll_ms: r.first_poll_ms,
                last_poll_ms: r.last_poll_ms,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_largest_sequence_number_is_held_too() {
        let mut set = SeqSet::default();
        assert!(set.insert(u64::MAX - 1));
        assert!(set.insert(u64::MAX));
        assert!(!set.insert(u64::MAX), "a repeat of u64::MAX is recognised");
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.inclusive_containing(u64::MAX),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(
            set.inclusive_containing(u64::MAX - 1),
            Some((u64::MAX - 1, u64::MAX - 1))
        );
        let mut loaded = SeqSet::default();
        loaded.insert_inclusive(u64::MAX - 1, u64::MAX - 1);
        loaded.insert_inclusive(u64::MAX, u64::MAX);
        assert_eq!(loaded, set);
        let mut d = Deliveries::new();
        assert_eq!(d.record("c", 1, u64::MAX, 0), Delivery::New);
        assert_eq!(d.record("c", 1, u64::MAX, 0), Delivery::Repeat);
    }

    #[test]
    fn repeats_are_recognised_and_gaps_listed() {
        let mut d = Deliveries::new();
        for seq in [0, 1, 2, 5, 6, 9] {
            assert_eq!(d.record("c", 7, seq, 10), Delivery::New);
        }
        assert_eq!(d.record("c", 7, 5, 11), Delivery::Repeat);
        assert_eq!(d.record("c", 8, 5, 11), Delivery::New, "another epoch");
        assert_eq!(
            d.record("other", 7, 5, 11),
            Delivery::New,
            "another collector"
        );
        let report = d.report();
        let c = &report["c"];
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].epoch, 7);
        assert_eq!(c[0].received, 6);
        assert_eq!(c[0].repeats, 1);
        assert_eq!((c[0].first_seq, c[0].last_seq), (0, 9));
        assert_eq!(c[0].gaps, vec![(3, 5), (7, 9)]);
        assert_eq!(c[0].missing, 4);
        // Filling the holes merges everything into one range.
        for seq in [3, 4, 7, 8] {
            assert_eq!(d.record("c", 7, seq, 12), Delivery::New);
        }
        let c = &d.report()["c"][0];
        assert_eq!((c.received, c.missing), (10, 0));
        assert!(c.gaps.is_empty());
    }

    #[test]
    fn covering_ranges_hold_the_asked_sequence_numbers() {
        let mut d = Deliveries::new();
        for seq in [0, 1, 2, 5, 6, 9] {
            d.record("c", 7, seq, 10);
        }
        assert_eq!(d.covering("c", 7, [1, 6, 2]), vec![(0, 3), (5, 7)]);
        assert_eq!(d.covering("c", 7, [3, 4]), vec![], "not received");
        assert_eq!(d.covering("c", 8, [1]), vec![], "another epoch");
        assert_eq!(d.covering("x", 7, [1]), vec![]);
    }

    proptest! {
        /// Against a plain set: same repeat decisions, same counts, same holes.
        #[test]
        fn matches_a_set(seqs in proptest::collection::vec(0u64..200, 0..400)) {
            let mut d = Deliveries::new();
            let mut set = std::collections::BTreeSet::new();
            for seq in &seqs {
                let expected = if set.insert(*seq) { Delivery::New } else { Delivery::Repeat };
                prop_assert_eq!(d.record("c", 1, *seq, 0), expected);
            }
            if let Some(r) = d.report().get("c") {
                let r = &r[0];
                prop_assert_eq!(r.received, set.len() as u64);
                prop_assert_eq!(r.repeats, (seqs.len() - set.len()) as u64);
                let lo = *set.iter().next().unwrap();
                let hi = *set.iter().next_back().unwrap();
                prop_assert_eq!((r.first_seq, r.last_seq), (lo, hi));
                prop_assert_eq!(r.missing, (hi - lo + 1) - set.len() as u64);
            }
        }

        /// A set rebuilt from its ranges (what the store loads), in any order and with
        /// overlaps, is the same set.
        #[test]
        fn a_set_rebuilt_from_its_ranges_is_the_same(
            seqs in proptest::collection::vec(0u64..300, 0..300),
            extra in proptest::collection::vec((0u64..300, 0u64..20), 0..20),
        ) {
            let mut set = SeqSet::default();
            let mut plain = std::collections::BTreeSet::new();
            for seq in &seqs {
                prop_assert_eq!(set.insert(*seq), plain.insert(*seq));
            }
            for (start, len) in &extra {
                set.insert_range(*start, start + len);
                plain.extend(*start..start + len);
            }
            prop_assert_eq!(set.len(), plain.len() as u64);
            for seq in 0..330 {
                prop_assert_eq!(set.contains(seq), plain.contains(&seq));
            }
            // The stored form: each number's inclusive range, loaded back.
            let mut stored = SeqSet::default();
            for seq in &plain {
                if let Some((first, last)) = set.inclusive_containing(*seq) {
                    stored.insert_inclusive(first, last);
                }
            }
            prop_assert_eq!(&stored, &set);
            let mut ranges: Vec<(u64, u64)> = set.ranges().collect();
            ranges.reverse();
            let mut rebuilt = SeqSet::default();
            for (s, e) in ranges.iter().chain(ranges.iter()) {
                rebuilt.insert_range(*s, *e);
            }
            prop_assert_eq!(rebuilt, set);
        }
    }
}
