//! The gateway's acknowledgement: what a gateway has finished with, per collector epoch.
//!
//! Direction: gateway → collector, on [`crate::topic::ack`] topics
//! (`devtel/v1/acks/{site}/{collector}`), QoS 1, not retained.
//!
//! A collector removes a reading from its spool only when an acknowledgement names it: a
//! PUBACK only says that the *broker* took the message. An acknowledgement lists sequence
//! numbers of one `(collector, epoch)` as ranges:
//! - `stored`: committed to the gateway's durable store (new or already there). A gateway
//!   sends the ranges of *everything* it holds around what it just committed, so a lost
//!   acknowledgement is healed by the next one.
//! - `rejected`: decoded, but refused for good (e.g. its topic does not match it). Sending it
//!   again would be refused again, so the collector counts it and lets it go.
//!
//! Ranges are sorted, non-empty and disjoint within each list. Several gateway replicas each
//! acknowledge what they committed; the collector takes the union.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::{topic, Error, Id};

/// The acknowledgement format version: first byte of every acknowledgement payload.
pub const ACK_VERSION: u8 = 1;
/// Most `stored` ranges in one acknowledgement; a gateway with more sends several.
pub const MAX_STORED_RANGES: usize = 32;
/// Most `rejected` ranges in one acknowledgement.
pub const MAX_REJECTED_RANGES: usize = 8;
/// Upper bound of an encoded [`Ack`], checked by a test against the largest possible one.
pub const MAX_ACK_LEN: usize = 1024;

/// Sequence numbers `start, start + 1, ..., start + count - 1` of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// First sequence number.
    pub start: u64,
    /// How many (at least 1).
    pub count: u64,
}

impl SeqRange {
    /// The half-open range `[start, end)`; `None` when it is empty or reversed.
    pub fn from_bounds(start: u64, end: u64) -> Option<SeqRange> {
        (end > start).then(|| SeqRange {
            start,
            count: end - start,
        })
    }

    /// One past the last sequence number (saturating).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.count)
    }

    /// Whether `seq` is in the range.
    pub fn contains(&self, seq: u64) -> bool {
        seq >= self.start && seq - self.start < self.count
    }
}

/// One acknowledgement from a gateway to a collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Always [`ACK_VERSION`] for acknowledgements this build writes.
    pub version: u8,
    /// The collector the sequence numbers belong to (also in the topic).
    pub collector: Id,
    /// The collector run (see [`crate::Envelope::epoch`]).
    pub epoch: u64,
    /// Sequence numbers the gateway has stored durably.
    pub stored: Vec<SeqRange, MAX_STORED_RANGES>,
    /// Sequence numbers the gateway decoded and refused for good.
    pub rejected: Vec<SeqRange, MAX_REJECTED_RANGES>,
}

impl Ack {
    /// An empty acknowledgement of the current version.
    pub fn new(collector: Id, epoch: u64) -> Ack {
        Ack {
            version: ACK_VERSION,
            collector,
            epoch,
            stored: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// Whether `seq` is stored or rejected by this acknowledgement.
    pub fn covers(&self, seq: u64) -> bool {
        self.stored
            .iter()
            .chain(&self.rejected)
            .any(|r| r.contains(seq))
    }

    /// Checks what the type system cannot: a valid collector id, at least one range, and
    /// ranges that are non-empty, do not overflow, and are sorted and disjoint in each list.
    ///
    /// # Errors
    /// [`Error::InvalidId`] or [`Error::Malformed`].
    pub fn validate(&self) -> Result<(), Error> {
        topic::validate_segment(&self.collector).map_err(|_| Error::InvalidId)?;
        if self.stored.is_empty() && self.rejected.is_empty() {
            return Err(Error::Malformed);
        }
        for list in [&self.stored[..], &self.rejected[..]] {
            let mut previous_end: Option<u64> = None;
            for r in list {
                if r.count == 0 || r.start.checked_add(r.count).is_none() {
                    return Err(Error::Malformed);
                }
                if previous_end.is_some_and(|end| r.start < end) {
                    return Err(Error::Malformed);
                }
                previous_end = Some(r.end());
            }
        }
        Ok(())
    }
}

/// Encodes `ack` into `buf` and returns the written prefix.
///
/// # Errors
/// [`Error::UnsupportedVersion`] when `ack.version` is not [`ACK_VERSION`], the
/// [`Ack::validate`] errors, and [`Error::BufferTooSmall`] (never with [`MAX_ACK_LEN`] bytes).
pub fn encode_ack<'a>(ack: &Ack, buf: &'a mut [u8]) -> Result<&'a mut [u8], Error> {
    if ack.version != ACK_VERSION {
        return Err(Error::UnsupportedVersion(ack.version));
    }
    ack.validate()?;
    postcard::to_slice(ack, buf).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => Error::BufferTooSmall,
        _ => Error::Encode,
    })
}

/// Decodes one acknowledgement. Never panics, whatever the input.
///
/// # Errors
/// [`Error::Empty`], [`Error::UnsupportedVersion`], [`Error::Malformed`] (including invalid
/// ranges), [`Error::TrailingBytes`] and [`Error::InvalidId`].
pub fn decode_ack(bytes: &[u8]) -> Result<Ack, Error> {
    let first = *bytes.first().ok_or(Error::Empty)?;
    if first != ACK_VERSION {
        return Err(Error::UnsupportedVersion(first));
    }
    let (ack, rest): (Ack, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|_| Error::Malformed)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes(rest.len()));
    }
    ack.validate()?;
    Ok(ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, count: u64) -> SeqRange {
        SeqRange { start, count }
    }

    #[test]
    fn invalid_ranges_are_refused_both_ways() {
        let mut ack = Ack::new("c".try_into().unwrap(), 1);
        let mut buf = [0u8; MAX_ACK_LEN];
        assert_eq!(encode_ack(&ack, &mut buf), Err(Error::Malformed), "empty");
        for bad in [
            [range(5, 0), range(9, 1)],
            [range(5, 2), range(6, 1)],
            [range(5, 2), range(1, 1)],
            [range(1, 1), range(u64::MAX, 2)],
        ] {
            ack.stored.clear();
            ack.stored.extend(bad);
            assert_eq!(encode_ack(&ack, &mut buf), Err(Error::Malformed), "{bad:?}");
            // The same bytes written by someone else are refused on decode.
            let raw = postcard::to_slice(&ack, &mut buf).unwrap().to_vec();
            assert_eq!(decode_ack(&raw), Err(Error::Malformed), "{bad:?}");
        }
        ack.stored.clear();
        ack.stored.extend([range(0, 5), range(5, 1)]);
        assert!(ack.validate().is_ok(), "adjacent ranges are disjoint");
        assert!(ack.covers(5) && !ack.covers(6));
        assert_eq!(SeqRange::from_bounds(3, 3), None);
        assert_eq!(SeqRange::from_bounds(3, 7), Some(range(3, 4)));
    }
}
