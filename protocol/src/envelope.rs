//! The envelope: what one MQTT publish from a collector to the gateway carries.
//!
//! Direction: collector → gateway, on [`crate::topic::telemetry`] topics.
//!
//! Design constraints:
//! - `version` is the first field and a `u8`, so it is the first byte on the wire whatever
//!   follows ([`crate::decode`] checks it before anything else).
//! - `(collector, epoch, seq)` identifies an envelope forever: the gateway uses it to drop
//!   redeliveries and to see gaps. `epoch` changes at every collector start and only grows (the
//!   collector persists it next to its spool and never goes below the start's wall-clock
//!   milliseconds, so even a wiped spool directory yields a new epoch); within an epoch the
//!   collector numbers its envelopes 0, 1, 2, ... without reuse. A spooled envelope replayed after
//!   a restart keeps the epoch and seq it was written with.
//! - Every identifier is a valid topic segment ([`crate::topic::validate_segment`]); [`Envelope::validate`]
//!   enforces it on both encode and decode.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::{
    topic, DockReading, Error, Id, PhoneReading, PrinterReading, FORMAT_VERSION, MAX_READINGS,
};

/// One transmission from a collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Wire format version; always [`FORMAT_VERSION`] for envelopes this build writes.
    pub version: u8,
    /// The sending collector's id.
    pub collector: Id,
    /// The collector run that wrote this envelope: grows with every collector start.
    pub epoch: u64,
    /// Sequence number within the epoch (0, 1, 2, ...), for deduplication and gap detection.
    pub seq: u64,
    /// When the poll finished, in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: u64,
    /// One or more device readings (normally exactly one: topics are per device).
    pub readings: Vec<Reading, MAX_READINGS>,
}

impl Envelope {
    /// An envelope of the current format version with no readings yet.
    pub fn new(collector: Id, epoch: u64, seq: u64, timestamp_ms: u64) -> Self {
        Envelope {
            version: FORMAT_VERSION,
            collector,
            epoch,
            seq,
            timestamp_ms,
            readings: Vec::new(),
        }
    }

    /// Checks the invariants the type system cannot: identifiers are topic segments and there
    /// is at least one reading.
    ///
    /// # Errors
    /// [`Error::InvalidId`] or [`Error::NoReadings`].
    pub fn validate(&self) -> Result<(), Error> {
        topic::validate_segment(&self.collector).map_err(|_| Error::InvalidId)?;
        if self.readings.is_empty() {
            return Err(Error::NoReadings);
        }
        for reading in &self.readings {
            topic::validate_segment(reading.device()).map_err(|_| Error::InvalidId)?;
            topic::validate_segment(reading.unit()).map_err(|_| Error::InvalidId)?;
        }
        Ok(())
    }
}

/// The identity of an envelope: who wrote it, in which run, with which number. Read from the
/// first bytes of an encoded envelope by [`peek_identity`] without decoding the readings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Format version (the first byte).
    pub version: u8,
    /// The sending collector's id.
    pub collector: Id,
    /// The collector run.
    pub epoch: u64,
    /// Sequence number within the epoch.
    pub seq: u64,
}

/// Reads the identity at the start of an encoded envelope of the current format version. The
/// rest of the payload is not checked: this is for a sender's bookkeeping of its own spooled
/// envelopes, not for accepting untrusted input (use [`crate::decode`] for that).
///
/// # Errors
/// [`Error::Empty`], [`Error::UnsupportedVersion`], [`Error::Malformed`] or
/// [`Error::InvalidId`].
pub fn peek_identity(bytes: &[u8]) -> Result<Identity, Error> {
    let first = *bytes.first().ok_or(Error::Empty)?;
    if first != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion(first));
    }
    let (identity, _rest): (Identity, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|_| Error::Malformed)?;
    topic::validate_segment(&identity.collector).map_err(|_| Error::InvalidId)?;
    Ok(identity)
}

/// The result of polling one device.
// Boxing the large variant would need `alloc`; the protocol crate is alloc-free by design, and
// a reading is built once per poll, so its size on the stack is not a concern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reading {
    /// A copier or printer answered.
    Printer(PrinterReading),
    /// The device did not answer usefully.
    NoResponse(NoResponse),
    /// A phone, analogue adapter or other VoIP endpoint answered.
    Phone(PhoneReading),
    /// An access switch answered for its dock seats.
    Dock(DockReading),
}

impl Reading {
    /// The device id.
    pub fn device(&self) -> &str {
        match self {
            Reading::Printer(r) => &r.device,
            Reading::NoResponse(r) => &r.device,
            Reading::Phone(r) => &r.device,
            Reading::Dock(r) => &r.device,
        }
    }

    /// The administrative unit.
    pub fn unit(&self) -> &str {
        match self {
            Reading::Printer(r) => &r.unit,
            Reading::NoResponse(r) => &r.unit,
            Reading::Phone(r) => &r.unit,
            Reading::Dock(r) => &r.unit,
        }
    }

    /// The kind of device.
    pub fn kind(&self) -> DeviceKind {
        match self {
            Reading::Printer(_) => DeviceKind::Copier,
            Reading::NoResponse(r) => r.kind,
            Reading::Phone(_) => DeviceKind::Phone,
            Reading::Dock(_) => DeviceKind::Dock,
        }
    }
}

/// What kind of device a reading is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceKind {
    /// Copier, printer or multi-function device (Printer-MIB).
    Copier,
    /// IP phone or VoIP adapter.
    Phone,
    /// Docking station seat, seen from the access switch.
    Dock,
}

impl DeviceKind {
    /// Lower-case name used in configs, JSON and logs.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Copier => "copier",
            DeviceKind::Phone => "phone",
            DeviceKind::Dock => "dock",
        }
    }
}

/// A device that was polled but gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoResponse {
    /// The device's configured id.
    pub device: Id,
    /// The administrative unit the device is assigned to.
    pub unit: Id,
    /// The configured kind.
    pub kind: DeviceKind,
    /// Why there is no reading.
    pub cause: NoResponseCause,
}

/// Why a device gave no reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoResponseCause {
    /// No answer before the deadline.
    Timeout,
    /// The network refused or failed (ICMP unreachable, no route, name not resolved).
    Network,
    /// The device rejected our credentials (SNMPv3 report, wrong community answered as error).
    Auth,
    /// The device answered, but not with anything usable (malformed or empty).
    BadResponse,
}

impl NoResponseCause {
    /// Lower-case name used in JSON and logs.
    pub const fn name(self) -> &'static str {
        match self {
            NoResponseCause::Timeout => "timeout",
            NoResponseCause::Network => "network",
            NoResponseCause::Auth => "auth",
            NoResponseCause::BadResponse => "bad_response",
        }
    }
}
