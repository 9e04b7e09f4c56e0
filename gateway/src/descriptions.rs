//! The devices' descriptions (wire version 5): the described envelopes compact readings
//! refer to by fingerprint, kept per `(site, device)`.
//!
//! A described envelope is learned when it is accepted (and stored durably with it, see
//! [`crate::store::Item::Description`]); the store's copies are loaded at start, so compact
//! readings of a device described before a restart still resolve. A compact reading whose
//! description is not here is refused without an acknowledgement: its collector sends it
//! again, described ([`crate::ingest::Rejection::Undescribed`]).
//!
//! Bounded: at most [`PER_DEVICE`] descriptions per device (the newest), and at most
//! [`MAX_DEVICES`] devices and [`MAX_BYTES`] bytes; beyond either the map is emptied, and
//! compact readings go through the round trip above until their devices are described again
//! — a few full readings, never a lost one.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use devtel_protocol::compact;

/// Descriptions kept per device: the current one and those before it that readings still in
/// flight (or in a collector's spool) may refer to.
pub const PER_DEVICE: usize = 4;
/// Most devices with descriptions in memory.
pub const MAX_DEVICES: usize = 100_000;
/// Most bytes of descriptions in memory.
pub const MAX_BYTES: usize = 128 << 20;

/// What committing a batch's descriptions leaves in a store, worked out at once: the same as
/// storing them one by one, each followed by keeping the newest [`PER_DEVICE`] of its device
/// (by `received_ms`, newer first, then by fingerprint), as the SQLite store does. A store
/// then writes a whole batch in two statements. Pure.
///
/// `stored`: what the store holds of the batch's devices, `(site, device, fingerprint,
/// received_ms)`; `batch`: the descriptions in commit order, `(site, device, fingerprint,
/// received_ms)`. Returns the stored ones to delete (site, device, fingerprint) and the
/// indices into `batch` of the descriptions to write (insert or update), at most one per
/// fingerprint of a device (its last occurrence).
pub fn plan_commit<'a>(
    stored: &'a [(String, String, u32, u64)],
    batch: &[(&'a str, &'a str, u32, u64)],
) -> (Vec<(&'a str, &'a str, u32)>, Vec<usize>) {
    /// A description held: fingerprint, received, the batch index it came from (none: as
    /// stored).
    type Held = (u32, u64, Option<usize>);
    let mut devices: HashMap<(&str, &str), Vec<Held>> = HashMap::new();
    for (site, device, fingerprint, received_ms) in stored {
        devices
            .entry((site.as_str(), device.as_str()))
            .or_default()
            .push((*fingerprint, *received_ms, None));
    }
    for (i, (site, device, fingerprint, received_ms)) in batch.iter().enumerate() {
        let held = devices.entry((*site, *device)).or_default();
        match held.iter_mut().find(|h| h.0 == *fingerprint) {
            Some(h) => *h = (*fingerprint, *received_ms, Some(i)),
            None => held.push((*fingerprint, *received_ms, Some(i))),
        }
        held.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        held.truncate(PER_DEVICE);
    }
    let delete = stored
        .iter()
        .filter(|(site, device, fingerprint, _)| {
            devices
                .get(&(site.as_str(), device.as_str()))
                .is_none_or(|held| !held.iter().any(|h| h.0 == *fingerprint))
        })
        .map(|(site, device, fingerprint, _)| (site.as_str(), device.as_str(), *fingerprint))
        .collect();
    let mut write: Vec<usize> = devices
        .values()
        .flat_map(|held| held.iter().filter_map(|h| h.2))
        .collect();
    write.sort_unstable();
    (delete, write)
}

/// The descriptions in memory.
#[derive(Debug, Default)]
pub struct Descriptions {
    devices: HashMap<(String, String), VecDeque<(u32, Bytes)>>,
    bytes: usize,
    cleared: u64,
}

impl Descriptions {
    /// Learns `payload`, a described envelope of `device` at `site`; returns its fingerprint.
    pub fn learn(&mut self, site: &str, device: &str, payload: &Bytes) -> u32 {
        let fingerprint = compact::fingerprint(payload);
        let key = (site.to_string(), device.to_string());
        if !self.devices.contains_key(&key)
            && (self.devices.len() >= MAX_DEVICES || self.bytes + payload.len() > MAX_BYTES)
        {
            self.clear();
        }
        let list = self.devices.entry(key).or_default();
        if let Some(at) = list
            .iter()
            .position(|(f, p)| *f == fingerprint && p == payload)
        {
            // Known: it becomes the newest again.
            if let Some(d) = list.remove(at) {
                list.push_back(d);
            }
            return fingerprint;
        }
        list.push_back((fingerprint, payload.clone()));
        self.bytes += payload.len();
        while list.len() > PER_DEVICE {
            if let Some((_, old)) = list.pop_front() {
                self.bytes -= old.len();
            }
        }
        fingerprint
    }

    /// The described payload of `device` at `site` with `fingerprint` (the newest, should two
    /// share one).
    pub fn get(&self, site: &str, device: &str, fingerprint: u32) -> Option<&Bytes> {
        self.devices
            .get(&(site.to_string(), device.to_string()))?
            .iter()
            .rev()
            .find(|(f, _)| *f == fingerprint)
            .map(|(_, p)| p)
    }

    fn clear(&mut self) {
        self.devices.clear();
        self.bytes = 0;
        self.cleared += 1;
    }

    /// Devices with descriptions, their bytes, and how often the bounds emptied the map.
    pub fn stats(&self) -> (usize, usize, u64) {
        (self.devices.len(), self.bytes, self.cleared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_descriptions_per_device_are_kept_and_found_by_fingerprint() {
        let mut d = Descriptions::default();
        let payloads: Vec<Bytes> = (0..6u8).map(|i| Bytes::from(vec![5, 0, i])).collect();
        let fps: Vec<u32> = payloads.iter().map(|p| d.learn("s", "c1", p)).collect();
        assert_eq!(fps[0], compact::fingerprint(&payloads[0]));
        // The oldest two are gone, the newest four found.
        assert!(d.get("s", "c1", fps[0]).is_none() && d.get("s", "c1", fps[1]).is_none());
        for i in 2..6 {
            assert_eq!(d.get("s", "c1", fps[i]), Some(&payloads[i]));
        }
        // Another site's device of the same name is another device.
        assert!(d.get("t", "c1", fps[5]).is_none());
        // Learning a known one again keeps it (as the newest), no duplicate.
        d.learn("s", "c1", &payloads[2]);
        d.learn("s", "c1", &payloads[0]);
        assert_eq!(d.get("s", "c1", fps[2]), Some(&payloads[2]));
        assert!(d.get("s", "c1", fps[3]).is_none(), "the oldest went");
        assert_eq!(d.stats(), (1, 12, 0));
    }

    #[test]
    fn a_batch_planned_at_once_leaves_what_one_by_one_does() {
        let stored = [
            ("s".to_string(), "d".to_string(), 1, 5),
            ("s".to_string(), "d".to_string(), 2, 4),
        ];
        let batch = [
            ("s", "d", 3, 6),
            ("s", "d", 4, 6),
            ("s", "d", 5, 6), // 2 (the oldest) goes
            ("s", "d", 1, 1), // 1 again, now the oldest: stays as the fourth
            ("s", "d", 6, 6), // 1 goes, its update with it
            ("s", "e", 9, 2),
        ];
        let (mut delete, write) = plan_commit(&stored, &batch);
        delete.sort_unstable();
        assert_eq!(delete, [("s", "d", 1), ("s", "d", 2)]);
        assert_eq!(write, [0, 1, 2, 4, 5]);
        // Nothing new: nothing to do.
        assert_eq!(plan_commit(&stored, &[]), (Vec::new(), Vec::new()));
        // The same fingerprint twice: written once, as its last occurrence.
        assert_eq!(
            plan_commit(&[], &[("s", "d", 7, 1), ("s", "d", 7, 2)]),
            (Vec::new(), vec![1])
        );
    }

    #[test]
    fn beyond_its_bounds_the_map_starts_over() {
        let mut d = Descriptions::default();
        let p = Bytes::from(vec![5, 0, 1]);
        for i in 0..MAX_DEVICES {
            d.learn("s", &format!("d{i}"), &p);
        }
        assert_eq!(d.stats().0, MAX_DEVICES);
        let fp = d.learn("s", "one-more", &p);
        assert_eq!(d.stats(), (1, 3, 1));
        assert_eq!(d.get("s", "one-more", fp), Some(&p));
    }
}
