//! From an MQTT message to an accepted envelope: topic check, size check, decode, consistency
//! check, and the counters the gateway exposes. Every rejection has a cause, is counted by
//! cause, logged at most once per cause and [`LOG_INTERVAL`] (with the count since), published
//! to the dead-letter topic by the MQTT side, and never touches the state.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use devtel_protocol::{decode_into, topic, Envelope, Error as WireError, MAX_ENCODED_LEN};
use tracing::warn;

use crate::aggregate::Outcome;

/// A cause is logged at most once per this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum Rejection {
    /// The topic is not `devtel/v1/telemetry/{site}/{unit}/{device}`.
    #[error("topic is not a devtel v1 telemetry topic")]
    Topic,
    /// The payload is larger than any valid envelope.
    #[error("payload larger than {MAX_ENCODED_LEN} bytes")]
    Oversize,
    /// The payload's format version is not one this gateway reads.
    #[error("unsupported format version")]
    Version,
    /// The payload is not a valid envelope.
    #[error("payload does not decode")]
    Undecodable,
    /// The reading's unit or device differs from the topic's.
    #[error("topic and payload disagree on unit or device")]
    TopicMismatch,
    /// A collector status that is not a JSON object.
    #[error("collector status is not a JSON object")]
    BadStatus,
    /// An envelope polled more than the allowed clock skew after the gateway received it: a
    /// site clock far ahead (or a forged time) would move "today" for every unit for good.
    #[error("poll time too far ahead of the gateway's clock")]
    Future,
    /// A version-4 envelope whose site is not its topic's.
    #[error("the envelope names another site than its topic")]
    SiteMismatch,
    /// A site that `[[sites]]` does not list.
    #[error("site not configured in [[sites]]")]
    UnknownSite,
    /// A collector id that belongs to another site (or, with `[[sites]]`, is not listed for
    /// this one).
    #[error("collector belongs to another site")]
    ForeignCollector,
    /// A device that belongs to another site.
    #[error("device belongs to another site")]
    ForeignDevice,
    /// A new collector id beyond `[ingest] max_collectors`.
    #[error("too many collectors")]
    TooManyCollectors,
    /// A new device id beyond `[ingest] max_devices`.
    #[error("too many devices")]
    TooManyDevices,
    /// A QoS 0 message that found the ingest queue full (QoS 0 cannot come again). QoS 1
    /// messages are never dropped this way: see [`Counts::held_back`].
    #[error("QoS 0 message dropped: the ingest queue is full")]
    Overflow,
    /// A compact reading (wire version 5) whose description this gateway does not have.
    /// Not acknowledged: its collector sends the reading again, described.
    #[error("compact reading of an unknown description")]
    Undescribed,
}

impl Rejection {
    /// Counter label and dead-letter topic segment.
    pub const fn name(self) -> &'static str {
        match self {
            Rejection::Topic => "topic",
            Rejection::Oversize => "oversize",
            Rejection::Version => "version",
            Rejection::Undecodable => "undecodable",
            Rejection::TopicMismatch => "topic_mismatch",
            Rejection::BadStatus => "bad_status",
            Rejection::Future => "future",
            Rejection::SiteMismatch => "site_mismatch",
            Rejection::UnknownSite => "unknown_site",
            Rejection::ForeignCollector => "foreign_collector",
            Rejection::ForeignDevice => "foreign_device",
            Rejection::TooManyCollectors => "too_many_collectors",
            Rejection::TooManyDevices => "too_many_devices",
            Rejection::Overflow => "overflow",
            Rejection::Undescribed => "undescribed",
        }
    }

    /// Every cause, for metrics that list them all.
    pub const ALL: [Rejection; 15] = [
        Rejection::Topic,
        Rejection::Oversize,
        Rejection::Version,
        Rejection::Undecodable,
        Rejection::TopicMismatch,
        Rejection::BadStatus,
        Rejection::Future,
        Rejection::SiteMismatch,
        Rejection::UnknownSite,
        Rejection::ForeignCollector,
        Rejection::ForeignDevice,
        Rejection::TooManyCollectors,
        Rejection::TooManyDevices,
        Rejection::Overflow,
        Rejection::Undescribed,
    ];
}

/// Checks a telemetry message and decodes it (boxed: an envelope is tens of kilobytes, and it
/// travels on through the batch), into `spare` when there is one (a box of an envelope that
/// is done with, see [`crate::batch::check`]).
///
/// # Errors
/// The [`Rejection`] cause.
pub fn check(
    topic_name: &str,
    payload: &[u8],
    spare: Option<Box<Envelope>>,
) -> Result<Box<Envelope>, Rejection> {
    let Ok(topic::Topic::Telemetry { site, unit, device }) = topic::parse(topic_name) else {
        return Err(Rejection::Topic);
    };
    check_telemetry(site, unit, device, payload, spare)
}

/// [`check`] for a telemetry topic already parsed into its `site`, `unit` and `device`.
///
/// # Errors
/// The [`Rejection`] cause.
pub fn check_telemetry(
    site: &str,
    unit: &str,
    device: &str,
    payload: &[u8],
    spare: Option<Box<Envelope>>,
) -> Result<Box<Envelope>, Rejection> {
    if payload.len() > MAX_ENCODED_LEN {
        return Err(Rejection::Oversize);
    }
    let mut envelope = spare.unwrap_or_else(|| {
        Box::new(Envelope::new(
            devtel_protocol::Id::new(),
            devtel_protocol::Id::new(),
            0,
            0,
            0,
        ))
    });
    decode_into(payload, &mut envelope).map_err(|e| match e {
        WireError::UnsupportedVersion(_) => Rejection::Version,
        _ => Rejection::Undecodable,
    })?;
    check_envelope(site, unit, device, envelope)
}

/// The checks of [`check_telemetry`] after decoding: the envelope agrees with its topic.
///
/// # Errors
/// [`Rejection::TopicMismatch`] or [`Rejection::SiteMismatch`].
pub fn check_envelope(
    site: &str,
    unit: &str,
    device: &str,
    envelope: Box<Envelope>,
) -> Result<Box<Envelope>, Rejection> {
    if envelope
        .readings
        .iter()
        .any(|r| r.unit() != unit || r.device() != device)
    {
        return Err(Rejection::TopicMismatch);
    }
    // Version 3 named no site: the topic's stands for it.
    if envelope.version >= devtel_protocol::SITE_VERSION && envelope.site != site {
        return Err(Rejection::SiteMismatch);
    }
    Ok(envelope)
}

/// Ingest counters.
#[derive(Debug, Default)]
pub struct IngestStats {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    counts: Counts,
    /// Per cause: when it was last logged (never: `None`) and how often it came since.
    logged: BTreeMap<&'static str, (Option<Instant>, u64)>,
}

/// A snapshot of the ingest counters.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    /// Messages received (telemetry and statuses).
    pub received: u64,
    /// Readings applied to a device's current state.
    pub applied: u64,
    /// Readings already stored before (redelivery).
    pub duplicates: u64,
    /// Readings older than the device's current one (still counted in the history).
    pub stale: u64,
    /// Envelopes that repeated a stored identity with other bytes: kept aside
    /// (`/api/conflicts`), neither stored again nor counted as duplicates.
    pub conflicts: u64,
    /// Repeats too old to be compared with what was stored, taken as redeliveries.
    pub repeats_unverified: u64,
    /// Readings whose unit is not configured, counted in `unassigned`.
    pub unassigned: u64,
    /// Rejected messages by cause.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Messages copied to the dead-letter topic.
    pub dead_lettered: u64,
    /// QoS 1 messages not taken because the ingest queue and its backlog were full (a broker
    /// sending beyond the Receive Maximum). Not acknowledged: they come again after the
    /// reconnect the gateway makes once it has caught up ([`Counts::redelivery_reconnects`]).
    pub held_back: u64,
    /// Reconnects made to have held-back messages sent again.
    pub redelivery_reconnects: u64,
    /// Acknowledgements published to collectors.
    pub acks_published: u64,
    /// Unit and device documents not published (larger than the broker's packet limit, or the
    /// client's queue refused them).
    pub documents_not_published: u64,
    /// Events published (`devtel/v1/events/...`).
    pub events_published: u64,
    /// Store commits.
    pub commits: u64,
    /// Messages in those commits.
    pub committed_messages: u64,
    /// Seconds spent in store commits.
    pub commit_seconds: f64,
    /// The slowest commit, seconds.
    pub commit_seconds_max: f64,
    /// Store errors (the batch is not acknowledged and comes again).
    pub store_errors: u64,
    /// Seconds between the newest applied reading's poll and its commit.
    pub lag_seconds: f64,
}

impl IngestStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> Counts {
        self.inner
            .lock()
            .map(|c| c.counts.clone())
            .unwrap_or_default()
    }

    /// Updates the counters.
    pub fn update(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.inner.lock() {
            f(&mut c.counts);
        }
    }

    /// Counts reading outcomes.
    pub fn outcomes(&self, outcomes: &[Outcome]) {
        self.update(|c| {
            for o in outcomes {
                match o {
                    Outcome::Applied => c.applied += 1,
                    Outcome::Duplicate => c.duplicates += 1,
                    Outcome::Stale => c.stale += 1,
                }
            }
        });
    }

    /// Counts a rejection and logs it (rate-limited per cause).
    pub fn reject(&self, rejection: Rejection, topic_name: &str, bytes: usize) {
        let cause = rejection.name();
        self.update(|c| *c.rejected.entry(cause).or_default() += 1);
        self.log_limited(cause, |since| {
            warn!(topic = %topic_name, bytes, cause, since_last_log = since, "message rejected: {rejection}");
        });
    }

    /// Runs `log(count since the last log)` when `cause` was not logged in the last
    /// [`LOG_INTERVAL`].
    pub fn log_limited(&self, cause: &'static str, log: impl FnOnce(u64)) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        // No `now - interval` arithmetic: an Instant shortly after boot cannot go back.
        let entry = inner.logged.entry(cause).or_insert((None, 0));
        entry.1 += 1;
        if entry
            .0
            .is_none_or(|last| now.duration_since(last) >= LOG_INTERVAL)
        {
            let since = entry.1;
            *entry = (Some(now), 0);
            drop(inner);
            log(since);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::{
        encode, DeviceKind, Envelope, NoResponse, NoResponseCause, Reading, FORMAT_VERSION,
    };

    fn payload(unit: &str, device: &str) -> Vec<u8> {
        let mut e = Envelope::new("site".try_into().unwrap(), "c".try_into().unwrap(), 1, 1, 1);
        e.readings
            .push(Reading::NoResponse(NoResponse {
                device: device.try_into().unwrap(),
                unit: unit.try_into().unwrap(),
                kind: DeviceKind::Copier,
                cause: NoResponseCause::Timeout,
            }))
            .unwrap();
        let mut buf = [0u8; 256];
        encode(&e, &mut buf).unwrap().to_vec()
    }

    #[test]
    fn garbage_is_rejected_by_cause() {
        let t = "devtel/v1/telemetry/site/u/d";
        assert_eq!(check(t, b"", None).unwrap_err(), Rejection::Undecodable);
        assert_eq!(
            check(t, &[FORMAT_VERSION, 0xff, 0xff], None).unwrap_err(),
            Rejection::Undecodable
        );
        assert_eq!(check(t, &[9, 0], None).unwrap_err(), Rejection::Version);
        assert_eq!(
            check("devtel/v1/units/u", &payload("u", "d"), None).unwrap_err(),
            Rejection::Topic
        );
        assert_eq!(
            check(t, &vec![1; MAX_ENCODED_LEN + 1], None).unwrap_err(),
            Rejection::Oversize
        );
        assert_eq!(
            check(t, &payload("u", "other"), None).unwrap_err(),
            Rejection::TopicMismatch
        );
        assert_eq!(check(t, &payload("u", "d"), None).unwrap().seq, 1);
        assert_eq!(
            check("devtel/v1/telemetry/other/u/d", &payload("u", "d"), None).unwrap_err(),
            Rejection::SiteMismatch
        );
    }

    /// Sites upgrade one at a time: a version-3 envelope (no site) from a collector not yet
    /// upgraded, or from a spool written before, is taken; its topic's site stands for it.
    #[test]
    fn a_version_3_envelope_is_still_taken() {
        let v5 = payload("u", "d");
        // Version 3 is version 5 without the marker byte and the site ("site": a length byte
        // and 4 bytes).
        assert_eq!(&v5[..7], &[5, 0, 4, b's', b'i', b't', b'e']);
        let mut v3 = vec![3];
        v3.extend_from_slice(&v5[7..]);
        for site in ["site", "another-site"] {
            let t = format!("devtel/v1/telemetry/{site}/u/d");
            let e = check(&t, &v3, None).unwrap();
            assert_eq!((e.version, e.site.as_str(), e.seq), (3, "", 1));
        }
    }

    #[test]
    fn a_spare_box_is_decoded_into_as_if_it_were_new() {
        let t = "devtel/v1/telemetry/site/u/d";
        let mut used = Envelope::new(
            "site".try_into().unwrap(),
            "other".try_into().unwrap(),
            9,
            9,
            9,
        );
        for device in ["x", "y"] {
            used.readings
                .push(Reading::NoResponse(NoResponse {
                    device: device.try_into().unwrap(),
                    unit: "v".try_into().unwrap(),
                    kind: DeviceKind::Phone,
                    cause: NoResponseCause::Auth,
                }))
                .unwrap();
        }
        let fresh = check(t, &payload("u", "d"), None).unwrap();
        let reused = check(t, &payload("u", "d"), Some(Box::new(used))).unwrap();
        assert_eq!(reused, fresh);
    }

    #[test]
    fn each_cause_is_logged_once_per_interval_and_always_counted() {
        let stats = IngestStats::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            stats.log_limited("a", |n| logged.push(("a", n)));
            stats.log_limited("b", |n| logged.push(("b", n)));
        }
        assert_eq!(logged, [("a", 1), ("b", 1)]);
        for _ in 0..3 {
            stats.reject(Rejection::Version, "t", 2);
        }
        assert_eq!(stats.snapshot().rejected["version"], 3);
    }
}
