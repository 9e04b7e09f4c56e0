//! Which readings go out described and which compact (wire version 5), without I/O.
//!
//! The spool holds every reading in full (a described envelope). At publish time the
//! [`Describer`] decides, per reading, whether the gateway can take it as a compact reading
//! (`devtel_protocol::compact`): only against a description of the same device that the
//! gateway has confirmed (its acknowledgement named the described envelope; with
//! `acknowledge = "broker"`, the broker's PUBACK), whose skeleton is the reading's, of the same
//! collector run, not older than `describe_every`, and only when the compact reading is at most
//! an eighth of the described one (or at most [`RENEW_FROM`] bytes). Everything else goes described, and a described reading
//! becomes the device's next description once it is confirmed. A reading published again
//! (unconfirmed in time, or at a reconnect) always goes described: a gateway that did not
//! take a compact reading (it lacks the description) gets the full one the next time.
//!
//! State per device: the confirmed description and at most one sent but unconfirmed, each a
//! fingerprint, digests and the slot values in a few bytes; bounded by the configured devices.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use devtel_protocol::compact::{self, Base, Slots};
use devtel_protocol::{decode_into, Ack, Envelope, Id};

/// Default longest time a device goes without being described again.
pub const DEFAULT_DESCRIBE_EVERY: Duration = Duration::from_secs(12 * 3600);

/// A compact reading larger than this share (1/n) of its description's size, and than
/// [`RENEW_FROM`], is sent described instead, which renews the description: the values drift
/// from the description's over the day (a dock's seats), and a fresh one makes the next
/// compact readings small again.
pub const RENEW_RATIO: usize = 8;

/// Compact readings up to this size are never renewed for their size (a phone's description is
/// only six or seven times its compact reading).
pub const RENEW_FROM: usize = 64;

/// A description as the describer keeps it, in one allocation (a site box keeps thousands):
/// fingerprint (`u32`), the described payload's length (`u32`), the digest of its skeleton
/// envelope (site, collector, epoch and the reading's skeleton), its epoch, `seq` and
/// `timestamp_ms` (`u64` each, little-endian), then its slot values, each a varint (0: none,
/// else zigzag + 1).
#[derive(Debug)]
struct Description(Box<[u8]>);

const HEADER: usize = 40;

impl Description {
    fn new(fingerprint: u32, len: usize, words: [u64; 4], values: &[Option<i64>]) -> Description {
        let mut packed = [0u8; compact::MAX_PACKED_SLOTS_LEN];
        // The buffer holds any slot values (MAX_PACKED_SLOTS_LEN).
        let slots = compact::pack_slots(values, &mut packed).map_or(&[][..], |s| &*s);
        let mut out = Vec::with_capacity(HEADER + slots.len());
        out.extend_from_slice(&fingerprint.to_le_bytes());
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(slots);
        Description(out.into_boxed_slice())
    }
    fn u32_at(&self, at: usize) -> u32 {
        self.0
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }
    fn u64_at(&self, at: usize) -> u64 {
        self.0
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
    fn fingerprint(&self) -> u32 {
        self.u32_at(0)
    }
    fn len(&self) -> usize {
        self.u32_at(4) as usize
    }
    fn skeleton(&self) -> u64 {
        self.u64_at(8)
    }
    fn epoch(&self) -> u64 {
        self.u64_at(16)
    }
    fn seq(&self) -> u64 {
        self.u64_at(24)
    }
    fn timestamp_ms(&self) -> u64 {
        self.u64_at(32)
    }
    fn slots(&self) -> &[u8] {
        self.0.get(HEADER..).unwrap_or_default()
    }
}

/// A device's descriptions: the one compact readings refer to, and the one sent last and
/// not yet confirmed.
#[derive(Debug, Default)]
struct Known {
    confirmed: Option<Description>,
    sent: Option<Description>,
}

/// Counters of what went out how.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Readings published described (full).
    pub described: u64,
    /// Readings published compact.
    pub compact: u64,
    /// Payload bytes published (both).
    pub bytes: u64,
}

/// The publish-time choice between described and compact readings; see the module docs.
#[derive(Debug)]
pub struct Describer {
    every_ms: u64,
    compact: bool,
    devices: HashMap<u64, Known>,
    /// Devices with a description sent and not confirmed.
    unconfirmed: usize,
    scratch: Box<Envelope>,
    /// The skeleton's encoding and the compact reading are written here.
    buf: Vec<u8>,
    counts: Counts,
}

impl Describer {
    /// A describer; with `compact` false every reading goes as spooled.
    pub fn new(compact: bool, describe_every: Duration) -> Describer {
        Describer::for_devices(compact, describe_every, 0)
    }

    /// A describer with room for `devices` devices from the start (no growing map, whose
    /// old and new tables are both held while it grows).
    pub fn for_devices(compact: bool, describe_every: Duration, devices: usize) -> Describer {
        Describer {
            every_ms: u64::try_from(describe_every.as_millis()).unwrap_or(u64::MAX),
            compact,
            devices: HashMap::with_capacity(if compact { devices } else { 0 }),
            unconfirmed: 0,
            scratch: Box::new(Envelope::new(Id::new(), Id::new(), 0, 0, 0)),
            buf: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// What went out how.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The payload to publish for the spooled envelope `spooled`: `None` to publish it as it
    /// is (described, or of an older version), or the compact reading. `repeat`: it was
    /// published before.
    pub fn payload(&mut self, spooled: &[u8], repeat: bool) -> Option<Vec<u8>> {
        let compact = self.choose(spooled, repeat);
        match &compact {
            Some(c) => {
                self.counts.compact += 1;
                self.counts.bytes += c.len() as u64;
            }
            None => {
                self.counts.described += 1;
                self.counts.bytes += spooled.len() as u64;
            }
        }
        compact
    }

    fn choose(&mut self, spooled: &[u8], repeat: bool) -> Option<Vec<u8>> {
        if !self.compact
            || spooled.get(..2) != Some(&[devtel_protocol::FORMAT_VERSION, compact::DESCRIBED][..])
        {
            return None;
        }
        decode_into(spooled, &mut self.scratch).ok()?;
        let envelope = &mut *self.scratch;
        let [reading] = &mut envelope.readings[..] else {
            return None;
        };
        let key = device_key(&envelope.site, reading.unit(), reading.device());
        let mut values = Slots::new();
        // The reading becomes its skeleton, in place (a reading is kilobytes).
        let split = compact::split_in_place(reading, &mut values);
        let (seq, timestamp_ms) = (envelope.seq, envelope.timestamp_ms);
        let digest = split
            .is_ok()
            .then(|| skeleton_digest(envelope, &mut self.buf))
            .flatten();
        let Some(digest) = digest else {
            // Not compactable: described. The gateway keeps it as a description too, which
            // may push out the one this device's compact readings refer to: none until the
            // next is confirmed.
            if let Some(known) = self.devices.get_mut(&key) {
                known.confirmed = None;
            }
            return None;
        };
        if !repeat {
            if let Some(d) = self.devices.get(&key).and_then(|k| k.confirmed.as_ref()) {
                if let Some(out) = compact_against(
                    d,
                    digest,
                    envelope.epoch,
                    seq,
                    timestamp_ms,
                    &values,
                    self.every_ms,
                    &mut self.buf,
                ) {
                    return Some(out);
                }
            }
        }
        // Described: it becomes the device's next description once confirmed, and the
        // confirmed one is retired now. So compact readings only ever refer to the newest
        // description the gateway got from this collector (it keeps the newest few per
        // device, and repeats and renewals add to them).
        let description = Description::new(
            compact::fingerprint(spooled),
            spooled.len(),
            [digest, envelope.epoch, seq, timestamp_ms],
            &values,
        );
        let known = self.devices.entry(key).or_default();
        known.confirmed = None;
        if known.sent.replace(description).is_none() {
            self.unconfirmed += 1;
        }
        None
    }

    /// The gateway acknowledged `ack`: described readings it names become descriptions.
    pub fn acknowledged(&mut self, ack: &Ack) {
        self.promote(|d| d.epoch() == ack.epoch && ack.stored.iter().any(|r| r.contains(d.seq())));
    }

    /// The envelope `(epoch, seq)` published on `topic` was confirmed by other means (the
    /// broker's PUBACK, with `acknowledge = "broker"`).
    pub fn confirmed(&mut self, topic: &str, epoch: u64, seq: u64) {
        let Ok(devtel_protocol::topic::Topic::Telemetry { site, unit, device }) =
            devtel_protocol::topic::parse(topic)
        else {
            return;
        };
        if let Some(known) = self.devices.get_mut(&device_key(site, unit, device)) {
            if known
                .sent
                .as_ref()
                .is_some_and(|d| d.epoch() == epoch && d.seq() == seq)
            {
                known.confirmed = known.sent.take();
                self.unconfirmed -= 1;
            }
        }
    }

    fn promote(&mut self, named: impl Fn(&Description) -> bool) {
        if self.unconfirmed == 0 {
            return;
        }
        for known in self.devices.values_mut() {
            if known.sent.as_ref().is_some_and(&named) {
                known.confirmed = known.sent.take();
                self.unconfirmed -= 1;
            }
        }
    }

    /// Devices with a confirmed description, and with one sent but not confirmed.
    pub fn described(&self) -> (usize, usize) {
        let confirmed = self.devices.values().filter(|k| k.confirmed.is_some());
        (confirmed.count(), self.unconfirmed)
    }
}

/// The compact reading of the envelope `(epoch, seq, timestamp_ms)` with skeleton digest
/// `skeleton` and slot `values` against `d`, if it may go compact.
#[allow(clippy::too_many_arguments)]
fn compact_against(
    d: &Description,
    skeleton: u64,
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    values: &[Option<i64>],
    every_ms: u64,
    buf: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    if d.skeleton() != skeleton
        || d.epoch() != epoch
        || timestamp_ms.abs_diff(d.timestamp_ms()) >= every_ms
    {
        return None;
    }
    let mut slots = Slots::new();
    compact::unpack_slots(d.slots(), &mut slots).ok()?;
    let base = Base {
        fingerprint: d.fingerprint(),
        seq: d.seq(),
        timestamp_ms: d.timestamp_ms(),
        slots: &slots,
    };
    buf.resize(compact::MAX_COMPACT_LEN, 0);
    let out = compact::encode_compact(&base, seq, timestamp_ms, values, buf).ok()?;
    let n = out.len();
    if n > RENEW_FROM && n * RENEW_RATIO > d.len() {
        return None;
    }
    Some(out.to_vec())
}

/// A device's key: its topic's parts.
fn device_key(site: &str, unit: &str, device: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (site, unit, device).hash(&mut h);
    h.finish()
}

/// A digest of `envelope` (its reading a skeleton) without its `seq` and `timestamp_ms`:
/// equal digests mean the description's skeleton is the reading's, in the same run. Encoded
/// into `buf`, which is kept for the next.
fn skeleton_digest(envelope: &mut Envelope, buf: &mut Vec<u8>) -> Option<u64> {
    let (seq, ts) = (envelope.seq, envelope.timestamp_ms);
    (envelope.seq, envelope.timestamp_ms) = (0, 0);
    buf.resize(devtel_protocol::MAX_ENCODED_LEN, 0);
    let digest = devtel_protocol::encode(envelope, buf).ok().map(|bytes| {
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        h.finish()
    });
    (envelope.seq, envelope.timestamp_ms) = (seq, ts);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::compact::{decode_compact, expand};
    use devtel_protocol::{decode, encode_to_vec, Reading, SeqRange};

    const TOPIC: &str = "devtel/v1/telemetry/s/it/k1";

    fn id(s: &str) -> Id {
        s.try_into().unwrap()
    }

    fn reading(seq: u64, pages: u64) -> Vec<u8> {
        let vb = devtel_devices::corpus::varbinds("konica");
        let ident = devtel_devices::DeviceIdentity {
            device: id("k1"),
            unit: id("it"),
        };
        let mut r = devtel_devices::of(devtel_protocol::DeviceKind::Copier)
            .map(&ident, &Default::default(), &vb)
            .unwrap()
            .reading;
        if let Reading::Printer(p) = &mut r {
            p.counters.total = p.counters.total.map(|t| t + pages);
            p.uptime_ticks = p.uptime_ticks.map(|t| t + seq as u32 * 30_000);
        }
        let mut e = Envelope::new(id("s"), id("c"), 7, seq, 1_767_600_000_000 + seq * 300_000);
        e.readings.push(r).unwrap();
        encode_to_vec(&e).unwrap()
    }

    fn ack(epoch: u64, seq: u64) -> Ack {
        let mut a = Ack::new(id("c"), epoch);
        a.stored
            .push(SeqRange {
                start: seq,
                count: 1,
            })
            .unwrap();
        a
    }

    /// What the gateway makes of `payload` holding `description`.
    fn expanded(description: &[u8], payload: &[u8]) -> Envelope {
        let c = decode_compact(payload).unwrap();
        assert_eq!(c.fingerprint, compact::fingerprint(description));
        let mut e = decode(description).unwrap();
        expand(&c, &mut e).unwrap();
        e
    }

    #[test]
    fn compact_only_against_a_confirmed_description_and_exactly_the_polled_reading() {
        let mut d = Describer::new(true, DEFAULT_DESCRIBE_EVERY);
        let first = reading(0, 0);
        assert_eq!(d.payload(&first, false), None, "first reading: described");
        // Not yet confirmed by the gateway: still described.
        assert_eq!(d.payload(&reading(1, 3), false), None);
        d.acknowledged(&ack(7, 0));
        // The second was sent described too and is the newer candidate; the first's ack
        // names only the first, which is no longer the candidate.
        assert_eq!(d.described(), (0, 1));
        d.acknowledged(&ack(7, 1));
        assert_eq!(d.described(), (1, 0));
        let third = reading(2, 10);
        let c = d.payload(&third, false).expect("compact");
        assert!(c.len() < 40, "{} bytes", c.len());
        assert_eq!(expanded(&reading(1, 3), &c), decode(&third).unwrap());
        // A repeat goes described (the gateway may lack the description) and retires the
        // confirmed description; a stranger's ack promotes nothing.
        assert_eq!(d.payload(&third, true), None);
        d.acknowledged(&ack(8, 2));
        assert_eq!(d.described(), (0, 1));
        assert_eq!(
            d.payload(&reading(3, 11), false),
            None,
            "no description to refer to"
        );
        d.acknowledged(&ack(7, 3));
        assert_eq!(d.described(), (1, 0));
        assert!(d.payload(&reading(4, 12), false).is_some());
        assert_eq!(
            d.counts(),
            Counts {
                described: 4,
                compact: 2,
                bytes: d.counts().bytes,
            }
        );
    }

    #[test]
    fn a_changed_skeleton_an_old_description_or_another_run_goes_described() {
        // Each case against a describer whose description (reading 0) is confirmed.
        let fresh = || {
            let mut d = Describer::new(true, Duration::from_secs(3600));
            assert_eq!(d.payload(&reading(0, 0), false), None);
            d.confirmed(TOPIC, 7, 0);
            assert!(d.payload(&reading(1, 1), false).is_some());
            d
        };
        // A supply's description changed (a new cartridge model).
        let mut e = decode(&reading(2, 2)).unwrap();
        if let Reading::Printer(p) = &mut e.readings[0] {
            p.supplies[0].description = "TN-999K".try_into().unwrap();
        }
        assert_eq!(fresh().payload(&encode_to_vec(&e).unwrap(), false), None);
        // 12 readings of 5 minutes on: the description is an hour old.
        let mut d = fresh();
        assert!(d.payload(&reading(11, 2), false).is_some());
        assert_eq!(d.payload(&reading(12, 2), false), None);
        // Another collector run (epoch).
        let mut e = decode(&reading(3, 2)).unwrap();
        e.epoch = 8;
        assert_eq!(fresh().payload(&encode_to_vec(&e).unwrap(), false), None);
        // Compact readings off: everything as spooled.
        let mut off = Describer::new(false, DEFAULT_DESCRIBE_EVERY);
        off.payload(&reading(0, 0), false);
        off.confirmed(TOPIC, 7, 0);
        assert_eq!(off.payload(&reading(1, 1), false), None);
    }

    #[test]
    fn slot_values_survive_their_compact_storage() {
        let values = [
            None,
            Some(0),
            Some(-1),
            Some(i64::MAX),
            Some(i64::MIN),
            Some(300),
        ];
        let unpack = |bytes: &[u8]| {
            let mut out = Slots::new();
            compact::unpack_slots(bytes, &mut out).map(|()| out)
        };
        let mut buf = [0u8; compact::MAX_PACKED_SLOTS_LEN];
        let packed = compact::pack_slots(&values, &mut buf).unwrap().to_vec();
        assert_eq!(&unpack(&packed).unwrap()[..], &values[..]);
        assert!(unpack(&[0x80]).is_err());
        // A description keeps what it was made of.
        let d = Description::new(7, 400, [1, 2, 3, u64::MAX], &values);
        assert_eq!(
            (
                d.fingerprint(),
                d.len(),
                d.skeleton(),
                d.epoch(),
                d.seq(),
                d.timestamp_ms()
            ),
            (7, 400, 1, 2, 3, u64::MAX)
        );
        assert_eq!(&unpack(d.slots()).unwrap()[..], &values[..]);
    }
}
