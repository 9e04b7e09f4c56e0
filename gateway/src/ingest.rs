//! From an MQTT message to the aggregator: topic check, size check, decode, consistency check.
//! Every rejection has a cause, is counted by cause and logged (first occurrences, then every
//! 100th per cause so a flood does not flood the log), and never touches the state.

use std::collections::BTreeMap;
use std::sync::Mutex;

use devtel_protocol::{decode, topic, Error as WireError, MAX_ENCODED_LEN};
use tracing::warn;

use crate::aggregate::{Aggregator, Outcome};

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
}

impl Rejection {
    /// Counter label.
    pub const fn name(self) -> &'static str {
        match self {
            Rejection::Topic => "topic",
            Rejection::Oversize => "oversize",
            Rejection::Version => "version",
            Rejection::Undecodable => "undecodable",
            Rejection::TopicMismatch => "topic_mismatch",
        }
    }
}

/// Ingest counters.
#[derive(Debug, Default)]
pub struct IngestStats {
    inner: Mutex<Counts>,
}

/// A snapshot of the ingest counters.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    /// Messages received.
    pub received: u64,
    /// Readings applied.
    pub applied: u64,
    /// Readings already applied before (redelivery).
    pub duplicates: u64,
    /// Readings older than the device's current one.
    pub stale: u64,
    /// Rejected messages by cause.
    pub rejected: BTreeMap<&'static str, u64>,
}

impl IngestStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> Counts {
        self.inner.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.inner.lock() {
            f(&mut c);
        }
    }
}

/// Handles one message. Returns the units whose documents changed.
///
/// # Errors
/// A [`Rejection`]; it has been counted and logged.
pub fn handle(
    aggregator: &Mutex<Aggregator>,
    stats: &IngestStats,
    topic_name: &str,
    payload: &[u8],
) -> Result<Vec<String>, Rejection> {
    stats.update(|c| c.received += 1);
    let result = check_and_apply(aggregator, topic_name, payload);
    match &result {
        Ok((outcomes, _)) => stats.update(|c| {
            for o in outcomes {
                match o {
                    Outcome::Applied => c.applied += 1,
                    Outcome::Duplicate => c.duplicates += 1,
                    Outcome::Stale => c.stale += 1,
                }
            }
        }),
        Err(rejection) => {
            let mut count = 0;
            stats.update(|c| {
                let n = c.rejected.entry(rejection.name()).or_default();
                *n += 1;
                count = *n;
            });
            if count <= 3 || count % 100 == 0 {
                warn!(topic = %topic_name, bytes = payload.len(), cause = rejection.name(), total = count, "message rejected: {rejection}");
            }
        }
    }
    result.map(|(_, changed)| changed)
}

fn check_and_apply(
    aggregator: &Mutex<Aggregator>,
    topic_name: &str,
    payload: &[u8],
) -> Result<(Vec<Outcome>, Vec<String>), Rejection> {
    let Ok(topic::Topic::Telemetry { unit, device, .. }) = topic::parse(topic_name) else {
        return Err(Rejection::Topic);
    };
    if payload.len() > MAX_ENCODED_LEN {
        return Err(Rejection::Oversize);
    }
    let envelope = decode(payload).map_err(|e| match e {
        WireError::UnsupportedVersion(_) => Rejection::Version,
        _ => Rejection::Undecodable,
    })?;
    if envelope
        .readings
        .iter()
        .any(|r| r.unit() != unit || r.device() != device)
    {
        return Err(Rejection::TopicMismatch);
    }
    let mut agg = aggregator.lock().map_err(|_| Rejection::Undecodable)?;
    Ok(agg.ingest(&envelope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::{
        encode, DeviceKind, Envelope, NoResponse, NoResponseCause, Reading, FORMAT_VERSION,
    };

    fn payload(unit: &str, device: &str) -> Vec<u8> {
        let mut e = Envelope::new("c".try_into().unwrap(), 1, 1, 1);
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
    fn garbage_is_rejected_by_cause_and_counted_and_state_stays_untouched() {
        let agg = Mutex::new(Aggregator::new());
        let stats = IngestStats::default();
        let t = "devtel/v1/telemetry/s/u/d";
        assert_eq!(handle(&agg, &stats, t, b""), Err(Rejection::Undecodable));
        assert_eq!(
            handle(&agg, &stats, t, &[FORMAT_VERSION, 0xff, 0xff]),
            Err(Rejection::Undecodable)
        );
        assert_eq!(handle(&agg, &stats, t, &[9, 0]), Err(Rejection::Version));
        assert_eq!(
            handle(&agg, &stats, "devtel/v1/units/u", &payload("u", "d")),
            Err(Rejection::Topic)
        );
        assert_eq!(
            handle(&agg, &stats, t, &vec![1; MAX_ENCODED_LEN + 1]),
            Err(Rejection::Oversize)
        );
        assert_eq!(
            handle(&agg, &stats, t, &payload("u", "other")),
            Err(Rejection::TopicMismatch)
        );
        assert_eq!(agg.lock().unwrap().device_count(), 0);
        assert_eq!(
            handle(&agg, &stats, t, &payload("u", "d")),
            Ok(vec!["u".to_string()])
        );
        let c = stats.snapshot();
        assert_eq!((c.received, c.applied), (7, 1));
        assert_eq!(c.rejected.get("undecodable"), Some(&2));
        assert_eq!(c.rejected.values().sum::<u64>(), 6);
    }
}
