//! The MQTT topic scheme: the one table of topics, built and parsed only here.
//!
//! | topic | direction | payload |
//! |---|---|---|
//! | `devtel/v1/telemetry/{site}/{unit}/{device}` | collector → gateway | postcard [`crate::Envelope`] |
//! | `devtel/v1/units/{unit}` | gateway → integrators, retained | JSON unit document |
//! | `devtel/v1/collectors/{site}` | collector → anyone, retained; also the last will | JSON collector status (`online`/`offline`, version, start time, counters) |
//! | `devtel/v1/devices/{device}` | gateway → integrators, retained | JSON device document (state and figures) |
//! | `devtel/v1/acks/{site}/{collector}` | gateway → collector | postcard [`crate::Ack`]: what the gateway stored |
//! | `devtel/v1/deadletter/{cause}/{original topic}` | gateway → operators | the rejected message's payload, unchanged, or a JSON descriptor when it is too large |
//!
//! Every variable segment is an identifier that [`validate_segment`] accepts: 1 to
//! [`crate::MAX_ID_LEN`] bytes of ASCII letters, digits, `.`, `_` and `-`. That keeps MQTT wildcards
//! (`+`, `#`), separators (`/`), `$`-prefixed system topics and non-ASCII out of topics, so a topic
//! always parses back to exactly the parts it was built from.

use core::fmt::{self, Write};

use heapless::String;

use crate::MAX_ID_LEN;

/// First segment of every devtel topic.
pub const ROOT: &str = "devtel";
/// The major protocol version segment; it changes only with an incompatible scheme.
pub const VERSION: &str = "v1";
/// Segment of collector → gateway telemetry.
pub const TELEMETRY: &str = "telemetry";
/// Segment of the gateway's per-unit documents.
pub const UNITS: &str = "units";
/// Segment of the collectors' retained status (birth message and last will).
pub const COLLECTORS: &str = "collectors";

/// Segment of the gateway's acknowledgements to collectors.
pub const ACKS: &str = "acks";

/// Segment of the gateway's per-device documents.
pub const DEVICES: &str = "devices";
/// Segment of the gateway's dead-letter copies of rejected messages.
pub const DEAD_LETTER: &str = "deadletter";
/// Segment of the gateway's events (a device unreachable, a supply low, ...).
pub const EVENTS: &str = "events";
/// Subscription filter for all events.
pub const EVENTS_FILTER: &str = "devtel/v1/events/#";

/// Subscription filter for all telemetry.
pub const TELEMETRY_FILTER: &str = "devtel/v1/telemetry/#";
/// Subscription filter for all unit documents.
pub const UNITS_FILTER: &str = "devtel/v1/units/+";
/// Subscription filter for all device documents.
pub const DEVICES_FILTER: &str = "devtel/v1/devices/+";
/// Subscription filter for every dead-letter copy.
pub const DEAD_LETTER_FILTER: &str = "devtel/v1/deadletter/#";
/// Subscription filter for all collectors' status.
pub const COLLECTORS_FILTER: &str = "devtel/v1/collectors/+";

/// Longest topic this scheme produces, in bytes.
pub const MAX_TOPIC_LEN: usize = 128 + 3 * MAX_ID_LEN;

/// A built topic.
pub type TopicString = String<MAX_TOPIC_LEN>;

/// A topic parsed into its typed parts, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `devtel/v1/telemetry/{site}/{unit}/{device}`.
    Telemetry {
        /// The collector's site.
        site: &'a str,
        /// The device's administrative unit.
        unit: &'a str,
        /// The device id.
        device: &'a str,
    },
    /// `devtel/v1/units/{unit}`.
    Unit {
        /// The administrative unit.
        unit: &'a str,
    },
    /// `devtel/v1/collectors/{site}`.
    Collector {
        /// The collector's site.
        site: &'a str,
    },
    /// `devtel/v1/devices/{device}`.
    Device {
        /// The device id.
        device: &'a str,
    },
    /// `devtel/v1/acks/{site}/{collector}`.
    Ack {
        /// The collector's site.
        site: &'a str,
        /// The collector.
        collector: &'a str,
    },
}

/// Why a topic could not be built or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// A segment is empty.
    EmptySegment,
    /// A segment is longer than [`MAX_ID_LEN`].
    SegmentTooLong,
    /// A segment contains a byte outside `[A-Za-z0-9._-]`.
    InvalidCharacter,
    /// Not a devtel v1 topic, or the wrong number of segments.
    NotDevtel,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::EmptySegment => "empty identifier",
            TopicError::SegmentTooLong => "identifier longer than 64 bytes",
            TopicError::InvalidCharacter => {
                "identifier may only contain ASCII letters, digits, '.', '_' and '-'"
            }
            TopicError::NotDevtel => "not a devtel/v1 topic",
        })
    }
}

impl core::error::Error for TopicError {}

/// Checks that `segment` can be an identifier and a topic segment.
///
/// # Errors
/// [`TopicError::EmptySegment`], [`TopicError::SegmentTooLong`] or [`TopicError::InvalidCharacter`].
pub fn validate_segment(segment: &str) -> Result<(), TopicError> {
    if segment.is_empty() {
        return Err(TopicError::EmptySegment);
    }
    if segment.len() > MAX_ID_LEN {
        return Err(TopicError::SegmentTooLong);
    }
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(TopicError::InvalidCharacter);
    }
    Ok(())
}

fn build(parts: &[&str]) -> Result<TopicString, TopicError> {
    let mut topic = TopicString::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            topic.push('/').map_err(|_| TopicError::SegmentTooLong)?;
        }
        topic
            .write_str(part)
            .map_err(|_| TopicError::SegmentTooLong)?;
    }
    Ok(topic)
}

/// `devtel/v1/telemetry/{site}/{unit}/{device}`.
///
/// # Errors
/// When a part is not a valid segment ([`validate_segment`]).
pub fn telemetry(site: &str, unit: &str, device: &str) -> Result<TopicString, TopicError> {
    for part in [site, unit, device] {
        validate_segment(part)?;
    }
    build(&[ROOT, VERSION, TELEMETRY, site, unit, device])
}

/// `devtel/v1/units/{unit}`.
///
/// # Errors
/// When `unit` is not a valid segment.
pub fn unit(unit: &str) -> Result<TopicString, TopicError> {
    validate_segment(unit)?;
    build(&[ROOT, VERSION, UNITS, unit])
}

/// `devtel/v1/collectors/{site}`.
///
/// # Errors
/// When `site` is not a valid segment.
pub fn collector(site: &str) -> Result<TopicString, TopicError> {
    validate_segment(site)?;
    build(&[ROOT, VERSION, COLLECTORS, site])
}

/// `devtel/v1/devices/{device}`.
///
/// # Errors
/// When `device` is not a valid segment.
pub fn device(device: &str) -> Result<TopicString, TopicError> {
    validate_segment(device)?;
    build(&[ROOT, VERSION, DEVICES, device])
}

/// `devtel/v1/events/{unit}/{device}`: what someone must act on about `device` (JSON, not
/// retained).
///
/// # Errors
/// When a part is not a valid segment.
pub fn event(unit: &str, device: &str) -> Result<TopicString, TopicError> {
    validate_segment(unit)?;
    validate_segment(device)?;
    build(&[ROOT, VERSION, EVENTS, unit, device])
}

/// `devtel/v1/acks/{site}/{collector}`: where the gateway acknowledges what it stored of
/// `collector`'s readings, and what the collector subscribes to.
///
/// # Errors
/// When a part is not a valid segment.
pub fn ack(site: &str, collector: &str) -> Result<TopicString, TopicError> {
    validate_segment(site)?;
    validate_segment(collector)?;
    build(&[ROOT, VERSION, ACKS, site, collector])
}

/// `devtel/v1/deadletter/{cause}`: the prefix of a dead-letter topic; the rejected message's
/// own topic follows after a `/` (MQTT 3.1.1 has no headers to carry it).
///
/// # Errors
/// When `cause` is not a valid segment.
pub fn dead_letter_prefix(cause: &str) -> Result<TopicString, TopicError> {
    validate_segment(cause)?;
    build(&[ROOT, VERSION, DEAD_LETTER, cause])
}

/// Parses a topic of this scheme.
///
/// # Errors
/// [`TopicError::NotDevtel`] for foreign topics, or a segment error.
pub fn parse(topic: &str) -> Result<Topic<'_>, TopicError> {
    // As `topic.split('/')`, by a plain byte scan: segments are short, and this runs for
    // every message the gateway receives.
    let mut rest = Some(topic);
    let mut next = || {
        let s = rest?;
        match s.bytes().position(|b| b == b'/') {
            Some(i) => {
                rest = s.get(i + 1..);
                s.get(..i)
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    };
    if next() != Some(ROOT) || next() != Some(VERSION) {
        return Err(TopicError::NotDevtel);
    }
    let kind = next();
    let parsed = match kind {
        Some(TELEMETRY) => {
            let (site, unit, device) = match (next(), next(), next()) {
                (Some(s), Some(u), Some(d)) => (s, u, d),
                _ => return Err(TopicError::NotDevtel),
            };
            for part in [site, unit, device] {
                validate_segment(part)?;
            }
            Topic::Telemetry { site, unit, device }
        }
        Some(UNITS) => {
            let unit = next().ok_or(TopicError::NotDevtel)?;
            validate_segment(unit)?;
            Topic::Unit { unit }
        }
        Some(COLLECTORS) => {
            let site = next().ok_or(TopicError::NotDevtel)?;
            validate_segment(site)?;
            Topic::Collector { site }
        }
        Some(DEVICES) => {
            let device = next().ok_or(TopicError::NotDevtel)?;
            validate_segment(device)?;
            Topic::Device { device }
        }
        Some(ACKS) => {
            let (site, collector) = match (next(), next()) {
                (Some(s), Some(c)) => (s, c),
                _ => return Err(TopicError::NotDevtel),
            };
            validate_segment(site)?;
            validate_segment(collector)?;
            Topic::Ack { site, collector }
        }
        _ => return Err(TopicError::NotDevtel),
    };
    if next().is_some() {
        return Err(TopicError::NotDevtel);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_topic_round_trips() {
        let t = telemetry("berlin-mitte", "ba.it.team-2", "copier-3.12").unwrap();
        assert_eq!(
            t.as_str(),
            "devtel/v1/telemetry/berlin-mitte/ba.it.team-2/copier-3.12"
        );
        assert_eq!(
            parse(&t).unwrap(),
            Topic::Telemetry {
                site: "berlin-mitte",
                unit: "ba.it.team-2",
                device: "copier-3.12"
            }
        );
    }

    #[test]
    fn unit_topic_round_trips() {
        let t = unit("ba.it").unwrap();
        assert_eq!(t.as_str(), "devtel/v1/units/ba.it");
        assert_eq!(parse(&t).unwrap(), Topic::Unit { unit: "ba.it" });
        let c = collector("berlin-mitte").unwrap();
        assert_eq!(c.as_str(), "devtel/v1/collectors/berlin-mitte");
        assert_eq!(
            parse(&c).unwrap(),
            Topic::Collector {
                site: "berlin-mitte"
            }
        );
        assert!(collector("a/b").is_err());
        let d = device("sharp-3og").unwrap();
        assert_eq!(d.as_str(), "devtel/v1/devices/sharp-3og");
        assert_eq!(
            parse(&d).unwrap(),
            Topic::Device {
                device: "sharp-3og"
            }
        );
        assert!(DEVICES_FILTER.starts_with(DEVICES_FILTER.trim_end_matches('+')));
        let dl = dead_letter_prefix("undecodable").unwrap();
        assert_eq!(dl.as_str(), "devtel/v1/deadletter/undecodable");
        assert!(dead_letter_prefix("a/b").is_err());
        assert_eq!(
            parse(&dl),
            Err(TopicError::NotDevtel),
            "not a topic the gateway reads"
        );
    }

    #[test]
    fn ack_topic_round_trips() {
        let t = ack("berlin-mitte", "gw-1").unwrap();
        assert_eq!(t.as_str(), "devtel/v1/acks/berlin-mitte/gw-1");
        assert_eq!(
            parse(&t).unwrap(),
            Topic::Ack {
                site: "berlin-mitte",
                collector: "gw-1"
            }
        );
        assert!(ack("s", "+").is_err());
        assert!(parse("devtel/v1/acks/s").is_err());
        assert!(parse("devtel/v1/acks/s/c/x").is_err());
    }

    #[test]
    fn wildcards_separators_and_system_topics_are_rejected() {
        for bad in ["", "a/b", "+", "#", "$SYS", "ü", "a b"] {
            assert!(telemetry("s", bad, "d").is_err(), "{bad:?} accepted");
        }
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(validate_segment(&long), Err(TopicError::SegmentTooLong));
        assert!(validate_segment(&long[..MAX_ID_LEN]).is_ok());
    }

    #[test]
    fn foreign_and_malformed_topics_do_not_parse() {
        for bad in [
            "devtel/v2/units/a",
            "devtel/v1/units",
            "devtel/v1/units/a/b",
            "devtel/v1/telemetry/s/u",
            "devtel/v1/telemetry/s/u/d/x",
            "devtel/v1/telemetry/s//d",
            "other/v1/units/a",
            "devtel/v1/unknown/a",
            "devtel/v1/units/a/",
            "devtel/v1/units//",
            "/devtel/v1/units/a",
            "devtel//v1/units/a",
            "devtel/v1/telemetry/s/u/d/",
            "devtel",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn filters_match_the_built_topics() {
        assert!(TELEMETRY_FILTER.starts_with("devtel/v1/telemetry/"));
        assert!(UNITS_FILTER.starts_with(unit("x").unwrap().trim_end_matches('x')));
        assert!(COLLECTORS_FILTER.starts_with(collector("x").unwrap().trim_end_matches('x')));
    }
}
