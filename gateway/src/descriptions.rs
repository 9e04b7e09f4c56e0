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
