//! The gateway's delivery decisions, I/O-free: what a received message is ([`Inbound`]), what
//! a batch of them becomes ([`check`]), what is acknowledged to whom once the batch is
//! committed and applied ([`acknowledgements`]), and what a rejected message's dead-letter copy
//! looks like ([`dead_letter`]). The MQTT side (`mqtt.rs`) only moves bytes between these
//! decisions, the store and the broker.
//!
//! # The plan of one batch
//! 1. **check**: each message becomes an [`Item`] to commit or a [`Rejected`] with its cause.
//!    Nothing a broker can deliver is an error of the batch: too large, undecodable, the wrong
//!    version or topic, a status that is not JSON — each is a counted rejection.
//! 2. **commit** the items in one transaction (the store says which envelopes are new).
//! 3. **apply** the new ones to the aggregator.
//! 4. **acknowledge**, only when 1–3 succeeded: a devtel [`Ack`] per collector epoch (what is
//!    stored, and what was refused for good), dead-letter copies of the rejected messages, and
//!    the MQTT acknowledgement of every message of the batch, so the broker stops
//!    redelivering them. A batch that could not be applied is never acknowledged.

use std::collections::BTreeMap;

use bytes::Bytes;
use devtel_protocol::ack::{MAX_REJECTED_RANGES, MAX_STORED_RANGES};
use devtel_protocol::topic::{self, TopicString};
use devtel_protocol::{compact, peek_identity, Ack, Envelope, Id, SeqRange, MAX_ENCODED_LEN};
use serde::Serialize;

use crate::descriptions::Descriptions;
use crate::ingest::{self, Rejection};
use crate::sites::{OwnerKind, Owners};
use crate::store::Item;

/// Longest topic kept of a received message; a longer one is cut (no devtel topic is that
/// long, so it is rejected as [`Rejection::Topic`]).
pub const MAX_KEPT_TOPIC: usize = topic::MAX_TOPIC_LEN;

/// A received message as the ingest sees it: bounded whatever arrived. A payload larger than
/// [`MAX_ENCODED_LEN`] is not kept (only its size and SHA-256), a topic longer than
/// [`MAX_KEPT_TOPIC`] is cut.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The topic (cut to [`MAX_KEPT_TOPIC`] bytes at a character boundary; invalid UTF-8
    /// replaced).
    pub topic: String,
    /// Length of the topic as received, in bytes.
    pub topic_len: usize,
    /// The payload; empty when it was larger than [`MAX_ENCODED_LEN`].
    pub payload: Bytes,
    /// Size of the payload as received.
    pub size: usize,
    /// SHA-256 of a payload that was not kept.
    pub sha256: Option<[u8; 32]>,
    /// MQTT packet id (for the acknowledgement; 0 for QoS 0).
    pub pkid: u16,
    /// Whether it came with QoS 1 or 2 (needs an MQTT acknowledgement).
    pub acknowledged: bool,
}

impl Inbound {
    /// Bounds a received message: see the type's documentation.
    pub fn new(topic: &[u8], payload: Bytes, pkid: u16, acknowledged: bool) -> Inbound {
        let size = payload.len();
        let (payload, sha256) = if size > MAX_ENCODED_LEN {
            let digest = ring::digest::digest(&ring::digest::SHA256, &payload);
            let mut sha = [0u8; 32];
            sha.copy_from_slice(digest.as_ref());
            (Bytes::new(), Some(sha))
        } else {
            (payload, None)
        };
        let kept = &topic[..topic.len().min(MAX_KEPT_TOPIC)];
        let mut text = String::from_utf8_lossy(kept).into_owned();
        while text.len() > MAX_KEPT_TOPIC {
            text.pop();
        }
        Inbound {
            topic: text,
            topic_len: topic.len(),
            payload,
            size,
            sha256,
            pkid,
            acknowledged,
        }
    }

    /// Whether the payload was too large to keep.
    pub fn oversize(&self) -> bool {
        self.size > MAX_ENCODED_LEN
    }

    /// Whether the topic was cut.
    pub fn topic_cut(&self) -> bool {
        self.topic_len > self.topic.len()
    }
}

/// Where an envelope's acknowledgement goes: the topic's site and the envelope's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckTarget {
    /// The site of the telemetry topic.
    pub site: String,
    /// The collector of the envelope.
    pub collector: Id,
    /// Its epoch.
    pub epoch: u64,
    /// Its sequence number.
    pub seq: u64,
}

/// A message the batch refused.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Index of the message in the batch.
    pub index: usize,
    /// Why.
    pub cause: Rejection,
    /// For an envelope that decoded but was refused for good: whom to tell, so the collector
    /// does not send it forever.
    pub target: Option<AckTarget>,
}

/// A checked batch.
#[derive(Debug, Default)]
pub struct Checked {
    /// What to commit, in batch order.
    pub items: Vec<Item>,
    /// For each item: the index of its message in the batch.
    pub sources: Vec<usize>,
    /// For each item: where its acknowledgement goes (envelopes only).
    pub targets: Vec<Option<AckTarget>>,
    /// The refused messages.
    pub rejected: Vec<Rejected>,
    /// Described envelopes' descriptions, with the index of their message: [`admit`] moves
    /// those of admitted messages to the items.
    pub descriptions: Vec<(usize, Item)>,
}

impl Checked {
    /// Once the batch is committed and applied: its envelopes' boxes, for [`check`] to decode
    /// the next batch into, adding to `spares` up to `max` boxes.
    pub fn into_spares(self, spares: &mut Vec<Box<Envelope>>, max: usize) {
        for item in self.items {
            if spares.len() >= max {
                break;
            }
            if let Item::Envelope { envelope, .. } = item {
                spares.push(envelope);
            }
        }
    }
}

/// Default of the largest lead of an envelope's poll time over the gateway's clock
/// (`[ingest] max_clock_skew`): 10 minutes.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 10 * 60_000;

/// Step 1 of the plan: turns every message of `batch` into an item or a rejection. Envelopes
/// are decoded into the boxes of `spares` while there are any (what an earlier batch is done
/// with; see [`Checked::into_spares`]). An envelope polled more than `max_skew_ms` after
/// `received_ms` is refused for good as [`Rejection::Future`].
pub fn check(
    batch: &[Inbound],
    received_ms: u64,
    max_skew_ms: u64,
    spares: &mut Vec<Box<Envelope>>,
    descriptions: &mut Descriptions,
) -> Checked {
    let mut out = Checked::default();
    for (index, message) in batch.iter().enumerate() {
        match check_one(message, received_ms, max_skew_ms, spares, descriptions) {
            Ok((item, target)) => {
                // A described envelope (wire version 5) is also a description: compact
                // readings of its device may refer to it from now on. (Not the envelope a
                // compact reading stands for: its payload is a described one too, but no
                // collector refers to it.)
                if let Item::Envelope {
                    envelope, payload, ..
                } = &item
                {
                    if described(&message.payload) {
                        if let Some(device) = envelope.readings.first().map(|r| r.device()) {
                            let site = envelope.site.as_str();
                            let fingerprint = descriptions.learn(site, device, payload);
                            out.descriptions.push((
                                index,
                                Item::Description {
                                    site: site.to_string(),
                                    device: device.to_string(),
                                    fingerprint,
                                    payload: payload.clone(),
                                    received_ms,
                                },
                            ));
                        }
                    }
                }
                out.items.push(item);
                out.sources.push(index);
                out.targets.push(target);
            }
            Err((cause, target)) => out.rejected.push(Rejected {
                index,
                cause,
                target,
            }),
        }
    }
    out
}

/// The devices (site, device) of `batch`'s compact readings whose descriptions are not in
/// `descriptions` and not described within the batch, each once: on a replica, what to look
/// up in the shared store before [`check`] (another replica may have received the described
/// envelope). Pure; at most one per message.
pub fn undescribed(batch: &[Inbound], descriptions: &Descriptions) -> Vec<(String, String)> {
    let mut in_batch: Vec<(&str, &str)> = Vec::new();
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    for message in batch {
        if message.topic_cut() || message.oversize() {
            continue;
        }
        let Ok(topic::Topic::Telemetry { site, device, .. }) = topic::parse(&message.topic) else {
            continue;
        };
        if described(&message.payload) {
            in_batch.push((site, device));
        } else if compact::is_compact(&message.payload) {
            let Ok(c) = compact::decode_compact(&message.payload) else {
                continue;
            };
            if descriptions.get(site, device, c.fingerprint).is_none()
                && !wanted.contains(&(site, device))
            {
                wanted.push((site, device));
            }
        }
    }
    wanted
        .into_iter()
        .filter(|w| !in_batch.contains(w))
        .map(|(s, d)| (s.to_string(), d.to_string()))
        .collect()
}

/// The collectors and devices of `checked`'s envelopes that `owners` knows no site of, each
/// once: on a replica, what to look up in the shared store before [`admit`] (another replica
/// may have seen them first, and its claim holds). Pure.
pub fn unclaimed(checked: &Checked, owners: &Owners) -> Vec<(OwnerKind, String)> {
    let mut out: Vec<(OwnerKind, String)> = Vec::new();
    let mut ask = |kind: OwnerKind, id: &str| {
        if !owners.knows(kind, id) && !out.iter().any(|(k, i)| *k == kind && i == id) {
            out.push((kind, id.to_string()));
        }
    };
    for item in &checked.items {
        if let Item::Envelope { envelope, .. } = item {
            ask(OwnerKind::Collector, envelope.collector.as_str());
            for reading in &envelope.readings {
                ask(OwnerKind::Device, reading.device());
            }
        }
    }
    out
}

type Checked1 = Result<(Item, Option<AckTarget>), (Rejection, Option<AckTarget>)>;

/// Whether `payload` is a described envelope of wire version 5 with one reading (what a
/// collector makes a description of).
fn described(payload: &[u8]) -> bool {
    payload.first() == Some(&devtel_protocol::COMPACT_VERSION)
        && payload.get(1) == Some(&compact::DESCRIBED)
}

/// A compact reading as the envelope it stands for, and that envelope's payload as its
/// collector spooled it (described): what is stored, compared with repeats and replayed.
fn expand(
    site: &str,
    device: &str,
    payload: &[u8],
    spare: Option<Box<Envelope>>,
    descriptions: &Descriptions,
) -> Result<(Box<Envelope>, Bytes), Rejection> {
    let c = compact::decode_compact(payload).map_err(|_| Rejection::Undecodable)?;
    let description = descriptions
        .get(site, device, c.fingerprint)
        .ok_or(Rejection::Undescribed)?;
    let mut envelope =
        spare.unwrap_or_else(|| Box::new(Envelope::new(Id::new(), Id::new(), 0, 0, 0)));
    devtel_protocol::decode_into(description, &mut envelope).map_err(|_| Rejection::Undecodable)?;
    compact::expand(&c, &mut envelope).map_err(|_| Rejection::Undecodable)?;
    let full = devtel_protocol::encode_to_vec(&envelope).map_err(|_| Rejection::Undecodable)?;
    Ok((envelope, Bytes::from(full)))
}

fn check_one(
    message: &Inbound,
    received_ms: u64,
    max_skew_ms: u64,
    spares: &mut Vec<Box<Envelope>>,
    descriptions: &Descriptions,
) -> Checked1 {
    if message.topic_cut() {
        return Err((Rejection::Topic, None));
    }
    match topic::parse(&message.topic) {
        Ok(topic::Topic::Collector { site }) => {
            if message.oversize() {
                return Err((Rejection::Oversize, None));
            }
            if message.payload.is_empty() {
                return Ok((
                    Item::Status {
                        site: site.to_string(),
                        status: None,
                        received_ms,
                    },
                    None,
                ));
            }
            match serde_json::from_slice::<serde_json::Value>(&message.payload) {
                Ok(v) if v.is_object() => Ok((
                    Item::Status {
                        site: site.to_string(),
                        status: Some(v.to_string()),
                        received_ms,
                    },
                    None,
                )),
                _ => Err((Rejection::BadStatus, None)),
            }
        }
        Ok(topic::Topic::Telemetry { site, unit, device }) => {
            if message.oversize() {
                return Err((Rejection::Oversize, None));
            }
            let checked = if compact::is_compact(&message.payload) {
                expand(site, device, &message.payload, spares.pop(), descriptions).and_then(
                    |(envelope, full)| {
                        ingest::check_envelope(site, unit, device, envelope).map(|e| (e, full))
                    },
                )
            } else {
                ingest::check_telemetry(site, unit, device, &message.payload, spares.pop())
                    .map(|e| (e, message.payload.clone()))
            };
            match checked {
                Ok((envelope, payload)) => {
                    let target = AckTarget {
                        site: site.to_string(),
                        collector: envelope.collector.clone(),
                        epoch: envelope.epoch,
                        seq: envelope.seq,
                    };
                    if envelope.timestamp_ms > received_ms.saturating_add(max_skew_ms) {
                        // Refused for good: the collector is told, so it lets go.
                        spares.push(envelope);
                        return Err((Rejection::Future, Some(target)));
                    }
                    Ok((
                        Item::Envelope {
                            envelope,
                            payload,
                            received_ms,
                        },
                        Some(target),
                    ))
                }
                Err(cause) => {
                    // Decoded but refused for good: the collector is told, so it lets go.
                    let target = match cause {
                        Rejection::TopicMismatch | Rejection::SiteMismatch => {
                            peek_identity(&message.payload).ok().map(|id| AckTarget {
                                site: site.to_string(),
                                collector: id.collector,
                                epoch: id.epoch,
                                seq: id.seq,
                            })
                        }
                        _ => None,
                    };
                    Err((cause, target))
                }
            }
        }
        _ => Err((Rejection::Topic, None)),
    }
}

/// Step 1b, in the same stage as [`check`] (one thread, batches in order): whether each
/// envelope's site may speak for its collector and devices ([`Owners`]). A refused one moves
/// to the rejections, with its acknowledgement target, so its collector lets go; the first
/// sightings of the admitted ones are appended as [`Item::Claim`]s, committed with them.
pub fn admit(checked: &mut Checked, owners: &mut Owners) {
    let items = std::mem::take(&mut checked.items);
    let sources = std::mem::take(&mut checked.sources);
    let targets = std::mem::take(&mut checked.targets);
    let mut claims = Vec::new();
    let mut claimed_by = Vec::new();
    for ((item, source), target) in items.into_iter().zip(sources).zip(targets) {
        if let (Item::Envelope { envelope, .. }, Some(t)) = (&item, &target) {
            let before = claims.len();
            let devices = envelope.readings.iter().map(|r| r.device());
            if let Err(cause) = owners.admit(&t.site, &t.collector, devices, &mut claims) {
                checked.rejected.push(Rejected {
                    index: source,
                    cause,
                    target,
                });
                continue;
            }
            claimed_by.extend(std::iter::repeat_n(source, claims.len() - before));
        }
        checked.items.push(item);
        checked.sources.push(source);
        checked.targets.push(target);
    }
    for (claim, source) in claims.into_iter().zip(claimed_by) {
        checked.items.push(Item::Claim(claim));
        checked.sources.push(source);
        checked.targets.push(None);
    }
    // The descriptions of the admitted envelopes are committed with them.
    let refused: std::collections::BTreeSet<usize> =
        checked.rejected.iter().map(|r| r.index).collect();
    for (source, description) in std::mem::take(&mut checked.descriptions) {
        if !refused.contains(&source) {
            checked.items.push(description);
            checked.sources.push(source);
            checked.targets.push(None);
        }
    }
    checked.rejected.sort_by_key(|r| r.index);
}

/// Step 4 of the plan: the devtel acknowledgements of a committed and applied batch. Per
/// `(site, collector, epoch)`: `stored` are the ranges `stored_ranges` reports around the
/// batch's envelopes (new or repeated: both are stored), `rejected` the refused envelopes'
/// sequence numbers. More ranges than one [`Ack`] holds are split over several.
pub fn acknowledgements(
    checked: &Checked,
    stored_ranges: impl Fn(&str, u64, &[u64]) -> Vec<(u64, u64)>,
) -> Vec<(TopicString, Ack)> {
    type Key = (String, Id, u64);
    let mut stored: BTreeMap<Key, Vec<u64>> = BTreeMap::new();
    let mut rejected: BTreeMap<Key, Vec<u64>> = BTreeMap::new();
    for (item, target) in checked.items.iter().zip(&checked.targets) {
        if let (Item::Envelope { .. }, Some(t)) = (item, target) {
            let key = (t.site.clone(), t.collector.clone(), t.epoch);
            stored.entry(key).or_default().push(t.seq);
        }
    }
    for r in &checked.rejected {
        if let Some(t) = &r.target {
            let key = (t.site.clone(), t.collector.clone(), t.epoch);
            rejected.entry(key).or_default().push(t.seq);
        }
    }
    let mut keys: Vec<&Key> = stored.keys().chain(rejected.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let (site, collector, epoch) = key;
        let Ok(topic) = topic::ack(site, collector) else {
            continue;
        };
        let stored_list: Vec<SeqRange> = stored
            .get(key)
            .map(|seqs| stored_ranges(collector, *epoch, seqs))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(s, e)| SeqRange::from_bounds(s, e))
            .collect();
        let rejected_list = rejected
            .get(key)
            .map(|seqs| merge(seqs.clone()))
            .unwrap_or_default();
        let mut stored_chunks = stored_list.chunks(MAX_STORED_RANGES);
        let mut rejected_chunks = rejected_list.chunks(MAX_REJECTED_RANGES);
        loop {
            let (s, r) = (stored_chunks.next(), rejected_chunks.next());
            if s.is_none() && r.is_none() {
                break;
            }
            let mut ack = Ack::new(collector.clone(), *epoch);
            ack.stored.extend(s.unwrap_or_default().iter().copied());
            ack.rejected.extend(r.unwrap_or_default().iter().copied());
            out.push((topic.clone(), ack));
        }
    }
    out
}

/// Sequence numbers as sorted, disjoint ranges.
fn merge(mut seqs: Vec<u64>) -> Vec<SeqRange> {
    seqs.sort_unstable();
    seqs.dedup();
    let mut out: Vec<SeqRange> = Vec::new();
    for seq in seqs {
        match out.last_mut() {
            Some(last) if last.end() == seq => last.count += 1,
            _ => out.push(SeqRange {
                start: seq,
                count: 1,
            }),
        }
    }
    out
}

/// The JSON that stands in for a dead-letter copy too large to publish.
#[derive(Debug, Serialize)]
struct Descriptor<'a> {
    cause: &'a str,
    topic: &'a str,
    topic_bytes: usize,
    size: usize,
    sha256: String,
}

/// The dead-letter copy of `message`, refused for `cause`: on
/// `devtel/v1/deadletter/{cause}/{original topic}` (just `devtel/v1/deadletter/{cause}` when
/// the topic was cut), the payload unchanged when the packet stays within `max_packet` bytes,
/// the payload within [`MAX_ENCODED_LEN`] and the topic was kept whole; otherwise a small JSON descriptor: cause,
/// topic, sizes and the payload's SHA-256.
pub fn dead_letter(cause: &str, message: &Inbound, max_packet: usize) -> Option<(String, Bytes)> {
    let prefix = topic::dead_letter_prefix(cause).ok()?;
    let topic = if message.topic_cut() || message.topic.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}/{}", message.topic)
    };
    // Fixed header, topic length, packet id and properties: well under 64 bytes.
    let packet = 64 + topic.len() + message.size;
    if !message.oversize() && !message.topic_cut() && packet <= max_packet {
        return Some((topic, message.payload.clone()));
    }
    let sha = message.sha256.unwrap_or_else(|| {
        let digest = ring::digest::digest(&ring::digest::SHA256, &message.payload);
        let mut sha = [0u8; 32];
        sha.copy_from_slice(digest.as_ref());
        sha
    });
    let descriptor = Descriptor {
        cause,
        topic: &message.topic,
        topic_bytes: message.topic_len,
        size: message.size,
        sha256: sha.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let body = serde_json::to_vec(&descriptor).ok()?;
    Some((topic, Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::{encode_to_vec, DeviceKind, Envelope, NoResponse, NoResponseCause};

    fn envelope(collector: &str, epoch: u64, seq: u64, unit: &str, device: &str) -> Vec<u8> {
        envelope_at("s1", collector, epoch, seq, unit, device)
    }

    fn envelope_at(
        site: &str,
        collector: &str,
        epoch: u64,
        seq: u64,
        unit: &str,
        device: &str,
    ) -> Vec<u8> {
        let mut e = Envelope::new(
            site.try_into().unwrap(),
            collector.try_into().unwrap(),
            epoch,
            seq,
            1_000 + seq,
        );
        e.readings
            .push(devtel_protocol::Reading::NoResponse(NoResponse {
                device: device.try_into().unwrap(),
                unit: unit.try_into().unwrap(),
                kind: DeviceKind::Copier,
                cause: NoResponseCause::Timeout,
            }))
            .unwrap();
        encode_to_vec(&e).unwrap()
    }

    fn inbound(topic: &str, payload: Vec<u8>) -> Inbound {
        Inbound::new(topic.as_bytes(), Bytes::from(payload), 1, true)
    }

    /// Wire version 5: compact readings against descriptions, delivered shuffled, repeated
    /// and (where the gateway lacks the description) sent again described, as the collector
    /// does, give the documents and figures of the same readings sent in full.
    mod compact_readings {
        use super::*;
        use crate::aggregate::Aggregator;
        use devtel_protocol::compact::{self, Base, Slots};
        use devtel_protocol::{decode, Reading};
        use proptest::prelude::*;

        const TOPIC: &str = "devtel/v1/telemetry/s1/u1/k1";

        fn konica() -> Reading {
            let vb = devtel_devices::corpus::varbinds("konica");
            let ident = devtel_devices::DeviceIdentity {
                device: "k1".try_into().unwrap(),
                unit: "u1".try_into().unwrap(),
            };
            devtel_devices::of(DeviceKind::Copier)
                .map(&ident, &Default::default(), &vb)
                .unwrap()
                .reading
        }

        /// The readings of `steps`: pages printed, a supply level, and now and then a new
        /// cartridge (another supply description: a new skeleton) or no answer.
        fn readings(steps: &[(u8, u16, u8)]) -> Vec<Envelope> {
            let mut r = konica();
            let mut ts = 1_795_000_000_000u64;
            let mut out = Vec::new();
            for (seq, (change, pages, level)) in steps.iter().enumerate() {
                ts += 300_000;
                let mut reading = r.clone();
                if let Reading::Printer(p) = &mut r {
                    let add = u64::from(*pages);
                    p.counters.total = p.counters.total.map(|t| t + add);
                    p.counters.mono = p.counters.mono.map(|t| t + add / 2);
                    p.uptime_ticks = p.uptime_ticks.map(|t| t.wrapping_add(30_000));
                    for m in &mut p.markers {
                        m.life_count += u32::from(*pages);
                    }
                    if let Some(s) = p.supplies.first_mut() {
                        s.level = Some(devtel_protocol::Level::Value(u32::from(*level)));
                        if change % 5 == 1 {
                            let d = if s.description.ends_with('*') {
                                "TN-626K"
                            } else {
                                "TN-626K*"
                            };
                            s.description = d.try_into().unwrap();
                        }
                    }
                    reading = r.clone();
                }
                if change % 7 == 3 {
                    reading = Reading::NoResponse(NoResponse {
                        device: "k1".try_into().unwrap(),
                        unit: "u1".try_into().unwrap(),
                        kind: DeviceKind::Copier,
                        cause: NoResponseCause::Timeout,
                    });
                }
                let mut e = Envelope::new(
                    "s1".try_into().unwrap(),
                    "c".try_into().unwrap(),
                    7,
                    seq as u64,
                    ts,
                );
                e.readings.push(reading).unwrap();
                out.push(e);
            }
            out
        }

        /// What a collector sends for each reading: compact against the last described one
        /// of the same skeleton, described when the skeleton changed and every ninth time
        /// (more compact readings than the gateway keeps descriptions per device).
        fn wire(envelopes: &[Envelope]) -> Vec<Vec<u8>> {
            let mut base: Option<(Envelope, Vec<u8>, Reading)> = None;
            let mut out = Vec::new();
            for (i, e) in envelopes.iter().enumerate() {
                let full = encode_to_vec(e).unwrap();
                let mut skeleton = e.readings[0].clone();
                let mut values = Slots::new();
                compact::split(&e.readings[0], &mut skeleton, &mut values).unwrap();
                match &base {
                    Some((b, described, b_skeleton)) if *b_skeleton == skeleton && i % 9 != 0 => {
                        let mut b_slots = Slots::new();
                        compact::slots(&b.readings[0], &mut b_slots).unwrap();
                        let at = Base {
                            fingerprint: compact::fingerprint(described),
                            seq: b.seq,
                            timestamp_ms: b.timestamp_ms,
                            slots: &b_slots,
                        };
                        let mut buf = vec![0u8; compact::MAX_COMPACT_LEN];
                        let n =
                            compact::encode_compact(&at, e.seq, e.timestamp_ms, &values, &mut buf)
                                .unwrap()
                                .len();
                        buf.truncate(n);
                        out.push(buf);
                    }
                    _ => {
                        base = Some((e.clone(), full.clone(), skeleton));
                        out.push(full);
                    }
                }
            }
            out
        }

        fn seen(agg: &Aggregator) -> impl PartialEq + std::fmt::Debug {
            let from = jiff::civil::Date::constant(2026, 1, 1);
            let to = jiff::civil::Date::constant(2027, 12, 31);
            let ids = agg.device_ids();
            (
                agg.unit("u1"),
                ids.iter().map(|d| agg.device(d)).collect::<Vec<_>>(),
                agg.figures(&ids, from, to),
                agg.deliveries(),
            )
        }

        #[test]
        fn a_replica_asks_for_the_descriptions_another_received() {
            // With `$share` the described envelope went to another replica: this one asks the
            // store for the device's descriptions (once per device and batch), and once it
            // has learned what the store holds it takes the compact readings.
            let steps: Vec<(u8, u16, u8)> = (0..6u16).map(|i| (0, i * 3, 50)).collect();
            let sent = wire(&readings(&steps));
            assert!(!compact::is_compact(&sent[0]));
            assert!(sent[1..].iter().all(|p| compact::is_compact(p)));
            let mut here = Descriptions::default();
            let mut batch: Vec<Inbound> = sent[1..]
                .iter()
                .map(|p| inbound(TOPIC, p.clone()))
                .collect();
            // Not looked up: a status, a broken compact reading, a reading of another device
            // that is known here.
            batch.push(inbound("devtel/v1/collector/s1", b"{}".to_vec()));
            batch.push(inbound(TOPIC, sent[1][..3].to_vec()));
            assert_eq!(
                undescribed(&batch, &here),
                [("s1".to_string(), "k1".to_string())]
            );
            let refused = check(
                &batch,
                1_796_000_000_000,
                DEFAULT_MAX_CLOCK_SKEW_MS,
                &mut Vec::new(),
                &mut here,
            );
            assert_eq!(
                refused
                    .rejected
                    .iter()
                    .filter(|r| r.cause == Rejection::Undescribed)
                    .count(),
                sent.len() - 1
            );
            // Described within the batch: nothing to look up.
            let with_description: Vec<Inbound> =
                sent.iter().map(|p| inbound(TOPIC, p.clone())).collect();
            assert!(undescribed(&with_description, &here).is_empty());
            // What the store answers is learned: the readings resolve.
            here.learn("s1", "k1", &Bytes::from(sent[0].clone()));
            assert!(undescribed(&batch, &here).is_empty());
            let taken = check(
                &batch[..sent.len() - 1],
                1_796_000_000_000,
                DEFAULT_MAX_CLOCK_SKEW_MS,
                &mut Vec::new(),
                &mut here,
            );
            assert!(taken.rejected.is_empty());
            assert_eq!(taken.items.len(), sent.len() - 1);
        }

        #[test]
        fn in_order_every_compact_reading_finds_its_description() {
            // Eight compact readings after each description: more than the gateway keeps
            // descriptions per device, so the envelopes they stand for must not count as ones.
            let steps: Vec<(u8, u16, u8)> = (0..40u16).map(|i| (0, i * 3, 50)).collect();
            let envelopes = readings(&steps);
            let sent = wire(&envelopes);
            assert_eq!(sent.iter().filter(|p| compact::is_compact(p)).count(), 35);
            let mut descriptions = Descriptions::default();
            for (i, payload) in sent.iter().enumerate() {
                let batch = [inbound(TOPIC, payload.clone())];
                let checked = check(
                    &batch,
                    1_796_000_000_000,
                    DEFAULT_MAX_CLOCK_SKEW_MS,
                    &mut Vec::new(),
                    &mut descriptions,
                );
                assert!(
                    checked.rejected.is_empty(),
                    "reading {i}: {:?}",
                    checked.rejected[0].cause
                );
                let described = checked.descriptions.len();
                assert_eq!(
                    described,
                    usize::from(!compact::is_compact(payload)),
                    "reading {i}"
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            #[test]
            fn shuffled_and_repeated_they_give_the_documents_of_full_readings(
                steps in proptest::collection::vec((0u8..35, 0u16..400, 0u8..101), 1..40),
                order in proptest::collection::vec(any::<u32>(), 40),
                repeats in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
                batch_len in 1usize..6,
            ) {
                let envelopes = readings(&steps);
                let full: Vec<Vec<u8>> = envelopes.iter().map(|e| encode_to_vec(e).unwrap()).collect();
                let sent = wire(&envelopes);
                prop_assert!(sent.iter().zip(&full).all(|(s, f)| s.len() <= f.len()));

                // Delivery: shuffled, some twice.
                let mut queue: Vec<(u32, usize)> = order.iter().copied().zip(0..sent.len()).collect();
                queue.sort();
                let mut queue: std::collections::VecDeque<(usize, Vec<u8>)> =
                    queue.into_iter().map(|(_, i)| (i, sent[i].clone())).collect();
                for r in &repeats {
                    let i = r.index(sent.len());
                    queue.push_back((i, sent[i].clone()));
                }
                let mut descriptions = Descriptions::default();
                let mut agg = Aggregator::new();
                let mut taken = Vec::new();
                let mut rounds = 0;
                while !queue.is_empty() {
                    rounds += 1;
                    prop_assert!(rounds < 1000);
                    let take: Vec<(usize, Vec<u8>)> = (0..batch_len).filter_map(|_| queue.pop_front()).collect();
                    let batch: Vec<Inbound> = take.iter().map(|(_, p)| inbound(TOPIC, p.clone())).collect();
                    let checked = check(&batch, 1_796_000_000_000, DEFAULT_MAX_CLOCK_SKEW_MS, &mut Vec::new(), &mut descriptions);
                    for r in &checked.rejected {
                        // Not acknowledged: the collector sends it again, described.
                        prop_assert_eq!(r.cause, Rejection::Undescribed);
                        prop_assert!(r.target.is_none());
                        let i = take[r.index].0;
                        queue.push_back((i, full[i].clone()));
                    }
                    for (item, source) in checked.items.iter().zip(&checked.sources) {
                        if let Item::Envelope { envelope, payload, .. } = item {
                            let i = take[*source].0;
                            // Stored as the collector spooled it, whatever form it came in.
                            prop_assert_eq!(&payload[..], &full[i][..]);
                            prop_assert_eq!(&**envelope, &decode(&full[i]).unwrap());
                            agg.ingest(envelope);
                            taken.push(i);
                        }
                    }
                }
                // Sending everything in full, in the order the gateway took them.
                let mut reference = Aggregator::new();
                for i in &taken {
                    reference.ingest(&decode(&full[*i]).unwrap());
                }
                prop_assert_eq!(seen(&agg), seen(&reference));
                // Every reading was taken.
                let mut all = taken.clone();
                all.sort();
                all.dedup();
                prop_assert_eq!(all.len(), envelopes.len());
            }
        }
    }

    #[test]
    fn every_kind_of_bad_message_is_a_counted_cause_not_an_error() {
        let good = "devtel/v1/telemetry/s1/u/d";
        let long_topic = format!("devtel/v1/telemetry/s1/u/{}", "d".repeat(70_000));
        let batch = vec![
            inbound(good, envelope("c", 7, 0, "u", "d")),
            inbound(good, vec![0x55; 2 << 20]),
            inbound(good, vec![3, 0xff, 0xff]),
            inbound(good, vec![9, 1, 2]),
            inbound(
                "devtel/v1/telemetry/s1/u/other",
                envelope("c", 7, 1, "u", "d"),
            ),
            inbound("devtel/v1/units/u", envelope("c", 7, 2, "u", "d")),
            inbound("devtel/v1/collectors/s1", b"not json".to_vec()),
            inbound(
                "devtel/v1/collectors/s1",
                b"{\"state\":\"online\"}".to_vec(),
            ),
            inbound(&long_topic, envelope("c", 7, 3, "u", "d")),
            // Site s2's envelope on site s1's topic.
            inbound(good, envelope_at("s2", "c", 7, 4, "u", "d")),
        ];
        assert!(
            batch[1].payload.is_empty(),
            "an oversize payload is not kept"
        );
        assert_eq!(batch[8].topic.len(), MAX_KEPT_TOPIC);
        let checked = check(
            &batch,
            5,
            DEFAULT_MAX_CLOCK_SKEW_MS,
            &mut Vec::new(),
            &mut Descriptions::default(),
        );
        assert_eq!(checked.items.len(), 2);
        assert_eq!(checked.sources, [0, 7]);
        let causes: Vec<(usize, Rejection, bool)> = checked
            .rejected
            .iter()
            .map(|r| (r.index, r.cause, r.target.is_some()))
            .collect();
        assert_eq!(
            causes,
            [
                (1, Rejection::Oversize, false),
                (2, Rejection::Undecodable, false),
                (3, Rejection::Version, false),
                (4, Rejection::TopicMismatch, true),
                (5, Rejection::Topic, false),
                (6, Rejection::BadStatus, false),
                (8, Rejection::Topic, false),
                (9, Rejection::SiteMismatch, true),
            ]
        );
    }

    #[test]
    fn an_envelope_from_beyond_the_clock_skew_is_refused_for_good() {
        let t = "devtel/v1/telemetry/s1/u/d";
        // Poll times 1,000 + seq ms; received at 1,500 with 200 ms allowed: up to 1,700.
        let batch = vec![
            inbound(t, envelope("c", 7, 100, "u", "d")),
            inbound(t, envelope("c", 7, 700, "u", "d")),
            inbound(t, envelope("c", 7, 701, "u", "d")),
            inbound(t, envelope("c", 7, u64::MAX - 1_000, "u", "d")),
        ];
        let mut spares = Vec::new();
        let checked = check(
            &batch,
            1_500,
            200,
            &mut spares,
            &mut Descriptions::default(),
        );
        assert_eq!(checked.sources, [0, 1]);
        let refused: Vec<(usize, Rejection, Option<u64>)> = checked
            .rejected
            .iter()
            .map(|r| (r.index, r.cause, r.target.as_ref().map(|t| t.seq)))
            .collect();
        assert_eq!(
            refused,
            [
                (2, Rejection::Future, Some(701)),
                (3, Rejection::Future, Some(u64::MAX - 1_000))
            ],
            "refused with whom to tell"
        );
        // The first refused envelope's box took the second, whose box is kept for later.
        assert_eq!(spares.len(), 1, "a refused envelope's box is used again");
        // The collector is told they are refused, so it lets go of them.
        let acks = acknowledgements(&checked, |_, _, _| vec![(100, 101), (700, 701)]);
        assert_eq!(acks.len(), 1);
        assert_eq!(
            acks[0]
                .1
                .rejected
                .iter()
                .map(|r| r.start)
                .collect::<Vec<_>>(),
            [701, u64::MAX - 1_000]
        );
    }

    #[test]
    fn acknowledgements_cover_stored_ranges_and_refusals_per_epoch() {
        let t = "devtel/v1/telemetry/s1/u/d";
        let batch = vec![
            inbound(t, envelope("c", 7, 4, "u", "d")),
            inbound(t, envelope("c", 7, 5, "u", "d")),
            inbound(t, envelope("c", 8, 0, "u", "d")),
            inbound(
                "devtel/v1/telemetry/s2/u/d",
                envelope_at("s2", "k", 1, 9, "u", "d"),
            ),
            inbound("devtel/v1/telemetry/s1/u/x", envelope("c", 7, 6, "u", "d")),
        ];
        let checked = check(
            &batch,
            5,
            DEFAULT_MAX_CLOCK_SKEW_MS,
            &mut Vec::new(),
            &mut Descriptions::default(),
        );
        // What the gateway holds: 0..6 of (c, 7) (4 and 5 just now), 0 of (c, 8), 9 of (k, 1).
        let acks = acknowledgements(&checked, |collector, epoch, seqs| {
            assert!(!seqs.is_empty());
            match (collector, epoch) {
                ("c", 7) => vec![(0, 6)],
                ("c", 8) => vec![(0, 1)],
                ("k", 1) => vec![(9, 10)],
                _ => vec![],
            }
        });
        type View = (String, String, u64, Vec<(u64, u64)>, Vec<(u64, u64)>);
        let view: Vec<View> = acks
            .iter()
            .map(|(topic, a)| {
                (
                    topic.to_string(),
                    a.collector.to_string(),
                    a.epoch,
                    a.stored.iter().map(|r| (r.start, r.count)).collect(),
                    a.rejected.iter().map(|r| (r.start, r.count)).collect(),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                (
                    "devtel/v1/acks/s1/c".into(),
                    "c".into(),
                    7,
                    vec![(0, 6)],
                    vec![(6, 1)]
                ),
                (
                    "devtel/v1/acks/s1/c".into(),
                    "c".into(),
                    8,
                    vec![(0, 1)],
                    vec![]
                ),
                (
                    "devtel/v1/acks/s2/k".into(),
                    "k".into(),
                    1,
                    vec![(9, 1)],
                    vec![]
                ),
            ]
        );
        for (_, a) in &acks {
            a.validate().unwrap();
        }
    }

    #[test]
    fn a_site_speaks_only_for_its_own_collector_and_devices() {
        let mut owners = Owners::default();
        let a = "devtel/v1/telemetry/a/u/d";
        let b = "devtel/v1/telemetry/b/u/d";
        let batch = vec![
            inbound(a, envelope_at("a", "ca", 1, 0, "u", "d")),
            // Site b reports a's device (with a collector of its own), then publishes as a's
            // collector, then reports a device of its own.
            inbound(b, envelope_at("b", "cb", 1, 0, "u", "d")),
            inbound(
                "devtel/v1/telemetry/b/u/e",
                envelope_at("b", "ca", 1, 1, "u", "e"),
            ),
            inbound(
                "devtel/v1/telemetry/b/u/e",
                envelope_at("b", "cb", 1, 1, "u", "e"),
            ),
        ];
        let mut checked = check(
            &batch,
            5,
            DEFAULT_MAX_CLOCK_SKEW_MS,
            &mut Vec::new(),
            &mut Descriptions::default(),
        );
        admit(&mut checked, &mut owners);
        let causes: Vec<(usize, Rejection, Option<String>)> = checked
            .rejected
            .iter()
            .map(|r| (r.index, r.cause, r.target.as_ref().map(|t| t.site.clone())))
            .collect();
        assert_eq!(
            causes,
            [
                (1, Rejection::ForeignDevice, Some("b".into())),
                (2, Rejection::ForeignCollector, Some("b".into())),
            ]
        );
        // The admitted envelopes, then the claims they made (committed with them).
        let claims: Vec<(usize, String, String)> = checked
            .items
            .iter()
            .zip(&checked.sources)
            .filter_map(|(item, source)| match item {
                Item::Claim(c) => Some((*source, c.id.clone(), c.site.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(checked.sources[..2], [0, 3]);
        assert_eq!(
            claims,
            [
                (0, "ca".into(), "a".into()),
                (0, "d".into(), "a".into()),
                (3, "cb".into(), "b".into()),
                (3, "e".into(), "b".into()),
            ]
        );
        assert!(checked.targets[2..].iter().all(Option::is_none));
        // Each envelope is described (wire version 5): the admitted ones' descriptions are
        // committed with them, after the claims; the refused ones' are not.
        let described: Vec<(usize, &str, &str)> = checked
            .items
            .iter()
            .zip(&checked.sources)
            .filter_map(|(item, source)| match item {
                Item::Description { site, device, .. } => {
                    Some((*source, site.as_str(), device.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(described, [(0, "a", "d"), (3, "b", "e")]);
        assert!(matches!(
            checked.items.last(),
            Some(Item::Description { .. })
        ));
        assert!(checked.descriptions.is_empty());
    }

    #[test]
    fn a_replica_asks_for_the_owners_it_does_not_know() {
        // Collector ca and device d are known here (claimed by site a); cb, e and f are not:
        // another replica may have seen them first. Each is asked for once.
        let mut owners = Owners::default();
        let mut claims = Vec::new();
        owners.admit("a", "ca", ["d"], &mut claims).unwrap();
        let batch = [
            inbound(
                "devtel/v1/telemetry/a/u/d",
                envelope_at("a", "ca", 1, 1, "u", "d"),
            ),
            inbound(
                "devtel/v1/telemetry/b/u/e",
                envelope_at("b", "cb", 1, 1, "u", "e"),
            ),
            inbound(
                "devtel/v1/telemetry/b/u/e",
                envelope_at("b", "cb", 1, 2, "u", "e"),
            ),
            inbound(
                "devtel/v1/telemetry/b/u/f",
                envelope_at("b", "cb", 1, 3, "u", "f"),
            ),
            inbound("devtel/v1/telemetry/b/u/g", b"not an envelope".to_vec()),
        ];
        let checked = check(
            &batch,
            5,
            DEFAULT_MAX_CLOCK_SKEW_MS,
            &mut Vec::new(),
            &mut Descriptions::default(),
        );
        assert_eq!(
            unclaimed(&checked, &owners),
            [
                (OwnerKind::Collector, "cb".to_string()),
                (OwnerKind::Device, "e".to_string()),
                (OwnerKind::Device, "f".to_string()),
            ]
        );
        // What the store answers is taken: b's device e is now refused from site a.
        owners.restore(crate::sites::Claim {
            kind: OwnerKind::Device,
            id: "e".into(),
            site: "b".into(),
        });
        let theft = [inbound(
            "devtel/v1/telemetry/a/u/e",
            envelope_at("a", "ca", 1, 4, "u", "e"),
        )];
        let mut checked = check(
            &theft,
            5,
            DEFAULT_MAX_CLOCK_SKEW_MS,
            &mut Vec::new(),
            &mut Descriptions::default(),
        );
        assert!(unclaimed(&checked, &owners).is_empty());
        admit(&mut checked, &mut owners);
        assert_eq!(checked.rejected[0].cause, Rejection::ForeignDevice);
    }

    #[test]
    fn many_ranges_are_split_over_several_acknowledgements() {
        let t = "devtel/v1/telemetry/s1/u/d";
        let batch: Vec<Inbound> = (0..100)
            .map(|i| inbound(t, envelope("c", 1, i * 2, "u", "d")))
            .collect();
        let checked = check(
            &batch,
            5,
            DEFAULT_MAX_CLOCK_SKEW_MS,
            &mut Vec::new(),
            &mut Descriptions::default(),
        );
        let acks = acknowledgements(&checked, |_, _, seqs| {
            seqs.iter().map(|s| (*s, s + 1)).collect()
        });
        assert_eq!(
            acks.len(),
            4,
            "100 ranges in acknowledgements of at most 32"
        );
        let covered: u64 = acks
            .iter()
            .flat_map(|(_, a)| a.stored.iter().map(|r| r.count))
            .sum();
        assert_eq!(covered, 100);
        assert!(acks.iter().all(|(_, a)| a.validate().is_ok()));
    }

    #[test]
    fn dead_letters_are_copies_within_the_limit_and_descriptors_beyond() {
        let small = inbound("devtel/v1/telemetry/s/u/d", vec![1, 2, 3]);
        let (topic, body) = dead_letter("undecodable", &small, 1 << 20).unwrap();
        assert_eq!(
            topic,
            "devtel/v1/deadletter/undecodable/devtel/v1/telemetry/s/u/d"
        );
        assert_eq!(&body[..], &[1, 2, 3]);
        let huge = inbound("devtel/v1/telemetry/s/u/d", vec![0x55; 2 << 20]);
        let (topic, body) = dead_letter("oversize", &huge, 4 << 20).unwrap();
        assert!(topic.ends_with("/devtel/v1/telemetry/s/u/d"));
        let d: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(d["size"], 2 << 20);
        assert_eq!(d["cause"], "oversize");
        let expected = ring::digest::digest(&ring::digest::SHA256, &vec![0x55u8; 2 << 20]);
        let hex: String = expected
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(d["sha256"], hex);
        // A copy the broker would not take (its Maximum Packet Size) becomes a descriptor too.
        let (_, body) = dead_letter("undecodable", &small, 40).unwrap();
        assert!(body.starts_with(b"{\"cause\""));
        let cut = Inbound::new(&vec![b'a'; 70_000], Bytes::from_static(b"x"), 1, true);
        let (topic, body) = dead_letter("topic", &cut, 1 << 20).unwrap();
        assert_eq!(topic, "devtel/v1/deadletter/topic");
        let d: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(d["topic_bytes"], 70_000);
    }
}
