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
    OLDEST_VERSION,
};

/// The first format version whose envelopes name their site.
pub const SITE_VERSION: u8 = 4;

/// One transmission from a collector.
///
/// `Deserialize` is written out in [`de`] rather than derived: it decodes the readings in
/// place, into the envelope's own storage, where the derived code moves each reading (up to
/// 15 KB) and then the envelope (30 KB) through several temporaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    /// Wire format version; always [`FORMAT_VERSION`] for envelopes this build writes.
    pub version: u8,
    /// The site the collector publishes for: the `{site}` of its topic (since version 4; an
    /// envelope of version 3 has none, and decodes with an empty site).
    pub site: Id,
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
    pub fn new(site: Id, collector: Id, epoch: u64, seq: u64, timestamp_ms: u64) -> Self {
        Envelope {
            version: FORMAT_VERSION,
            site,
            collector,
            epoch,
            seq,
            timestamp_ms,
            readings: Vec::new(),
        }
    }

    /// Checks the invariants the type system cannot: identifiers are topic segments (the site
    /// too, but in a version-3 envelope, which has none) and there is at least one reading.
    ///
    /// # Errors
    /// [`Error::InvalidId`] or [`Error::NoReadings`].
    pub fn validate(&self) -> Result<(), Error> {
        topic::validate_segment(&self.collector).map_err(|_| Error::InvalidId)?;
        if self.version >= SITE_VERSION {
            topic::validate_segment(&self.site).map_err(|_| Error::InvalidId)?;
        } else if !self.site.is_empty() {
            return Err(Error::InvalidId);
        }
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
    /// The site (empty in a version-3 envelope).
    pub site: Id,
    /// The sending collector's id.
    pub collector: Id,
    /// The collector run.
    pub epoch: u64,
    /// Sequence number within the epoch.
    pub seq: u64,
}

/// Reads the identity at the start of an encoded envelope of a version this build reads (a
/// spool written before an upgrade holds older ones). The rest of the payload is not checked:
/// this is for a sender's bookkeeping of its own spooled envelopes, not for accepting
/// untrusted input (use [`crate::decode`] for that).
///
/// # Errors
/// [`Error::Empty`], [`Error::UnsupportedVersion`], [`Error::Malformed`] or
/// [`Error::InvalidId`].
pub fn peek_identity(bytes: &[u8]) -> Result<Identity, Error> {
    let first = *bytes.first().ok_or(Error::Empty)?;
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&first) {
        return Err(Error::UnsupportedVersion(first));
    }
    let mut rest = &bytes[1..];
    if first >= crate::COMPACT_VERSION {
        // Compact readings name no collector: only described envelopes have an identity here.
        if rest.first() != Some(&crate::compact::DESCRIBED) {
            return Err(Error::Malformed);
        }
        rest = &rest[1..];
    }
    let (site, rest): (Id, &[u8]) = if first >= SITE_VERSION {
        postcard::take_from_bytes(rest).map_err(|_| Error::Malformed)?
    } else {
        (Id::new(), rest)
    };
    let ((collector, epoch, seq), _rest): ((Id, u64, u64), &[u8]) =
        postcard::take_from_bytes(rest).map_err(|_| Error::Malformed)?;
    topic::validate_segment(&collector).map_err(|_| Error::InvalidId)?;
    if first >= SITE_VERSION {
        topic::validate_segment(&site).map_err(|_| Error::InvalidId)?;
    }
    Ok(Identity {
        version: first,
        site,
        collector,
        epoch,
        seq,
    })
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

    /// Every kind, in declaration order.
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Copier, DeviceKind::Phone, DeviceKind::Dock];

    /// The kind named `name` ([`DeviceKind::name`]; `printer` is also a copier).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "printer" => Some(DeviceKind::Copier),
            _ => Self::ALL.into_iter().find(|k| k.name() == name),
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

/// Deserialization of [`Envelope`] in place: the field order and the calls made to the
/// deserializer are exactly those of `#[derive(Deserialize)]` (a struct is a tuple of its fields
/// in declaration order, an enum a `u32` variant index and then its content), so the wire format
/// is the derived one; `tests::in_place_decoding_is_the_derived_format` pins it against a
/// derived twin.
pub(crate) mod de {
    use core::fmt;

    use heapless::Vec;
    use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use super::{Envelope, Reading};
    use crate::{DockReading, Id, PrinterReading, MAX_READINGS};

    // `marker` (from version 5) comes second on the wire; postcard only counts the names.
    const FIELDS: &[&str] = &[
        "version",
        "marker",
        "site",
        "collector",
        "epoch",
        "seq",
        "timestamp_ms",
        "readings",
    ];
    const VARIANTS: &[&str] = &["Printer", "NoResponse", "Phone", "Dock"];

    impl<'de> Deserialize<'de> for Envelope {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let mut envelope = Envelope::new(Id::new(), Id::new(), 0, 0, 0);
            InPlace(&mut envelope).deserialize(deserializer)?;
            Ok(envelope)
        }
    }

    /// Decodes an envelope into the one it holds. A reading decodes into the slot of the
    /// previous one of its kind at that position (every field is overwritten), so a reused
    /// envelope does not build, zero and copy a fresh reading of several kilobytes each time.
    pub(crate) struct InPlace<'a>(pub(crate) &'a mut Envelope);

    impl<'de> DeserializeSeed<'de> for InPlace<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_struct("Envelope", FIELDS, self)
        }
    }

    fn field<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
        seq: &mut A,
        index: usize,
    ) -> Result<T, A::Error> {
        seq.next_element()?
            .ok_or_else(|| de::Error::invalid_length(index, &"struct Envelope with 7 elements"))
    }

    impl<'de> Visitor<'de> for InPlace<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("struct Envelope")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let envelope = self.0;
            envelope.version = field(&mut seq, 0)?;
            // From version 5 a second byte tells a described envelope from a compact
            // reading; only the first is an envelope.
            if envelope.version >= crate::COMPACT_VERSION {
                let marker: u8 = field(&mut seq, 0)?;
                if marker != crate::compact::DESCRIBED {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Unsigned(u64::from(marker)),
                        &"a described envelope",
                    ));
                }
            }
            // Version 3 had no site: its fields follow the version directly.
            if envelope.version >= super::SITE_VERSION {
                envelope.site = field(&mut seq, 1)?;
            } else {
                envelope.site.clear();
            }
            envelope.collector = field(&mut seq, 2)?;
            envelope.epoch = field(&mut seq, 3)?;
            envelope.seq = field(&mut seq, 4)?;
            envelope.timestamp_ms = field(&mut seq, 5)?;
            seq.next_element_seed(Readings(&mut envelope.readings))?
                .ok_or_else(|| de::Error::invalid_length(6, &"struct Envelope with 7 elements"))
        }
    }

    /// The readings, each decoded straight into its slot.
    struct Readings<'a>(&'a mut Vec<Reading, MAX_READINGS>);

    impl<'de> DeserializeSeed<'de> for Readings<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Readings<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a sequence of at most {MAX_READINGS} readings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let readings = self.0;
            let mut at = 0;
            // As heapless does for its own vectors: one element beyond the capacity is an
            // invalid length, never a panic. On an error the readings are cut to what was
            // decoded, so nothing of the previous envelope is left beyond them.
            loop {
                match seq.next_element_seed(OneReading {
                    readings: &mut *readings,
                    at,
                }) {
                    Ok(Some(())) => at += 1,
                    Ok(None) => break,
                    Err(error) => {
                        readings.truncate(at);
                        return Err(error);
                    }
                }
            }
            readings.truncate(at);
            Ok(())
        }
    }

    /// The reading at position `at`: decoded into the slot there when it holds the same kind,
    /// else into a fresh one that replaces it or is pushed.
    struct OneReading<'a> {
        readings: &'a mut Vec<Reading, MAX_READINGS>,
        at: usize,
    }

    impl OneReading<'_> {
        /// Puts `reading` at the position, replacing what is there or appending; false when
        /// the vector is full.
        fn place(&mut self, reading: Reading) -> bool {
            match self.readings.get_mut(self.at) {
                Some(slot) => {
                    *slot = reading;
                    true
                }
                None => self.readings.push(reading).is_ok(),
            }
        }
    }

    impl<'de> DeserializeSeed<'de> for OneReading<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            if self.at >= MAX_READINGS {
                return Err(de::Error::invalid_length(
                    MAX_READINGS + 1,
                    &"at most MAX_READINGS readings",
                ));
            }
            deserializer.deserialize_enum("Reading", VARIANTS, self)
        }
    }

    impl<'de> Visitor<'de> for OneReading<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("enum Reading")
        }

        fn visit_enum<A: EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
            let (index, variant): (u32, _) = data.variant()?;
            let full =
                || de::Error::invalid_length(MAX_READINGS + 1, &"at most MAX_READINGS readings");
            // The two large kinds (kilobytes each) are decoded in their slot, the small ones
            // by value.
            let at = self.at;
            let reading = match index {
                0 => {
                    if !matches!(self.readings.get(at), Some(Reading::Printer(_)))
                        && !self.place(Reading::Printer(PrinterReading::default()))
                    {
                        return Err(full());
                    }
                    return match self.readings.get_mut(at) {
                        Some(Reading::Printer(slot)) => variant.newtype_variant_seed(Printer(slot)),
                        _ => Err(full()),
                    };
                }
                1 => Reading::NoResponse(variant.newtype_variant()?),
                2 => Reading::Phone(variant.newtype_variant()?),
                3 => {
                    if !matches!(self.readings.get(at), Some(Reading::Dock(_)))
                        && !self.place(Reading::Dock(DockReading::default()))
                    {
                        return Err(full());
                    }
                    return match self.readings.get_mut(at) {
                        Some(Reading::Dock(slot)) => variant.newtype_variant_seed(Dock(slot)),
                        _ => Err(full()),
                    };
                }
                other => {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Unsigned(other.into()),
                        &"variant index 0 <= i < 4",
                    ))
                }
            };
            // Checked above; a full vector cannot be reached here.
            if self.place(reading) {
                Ok(())
            } else {
                Err(full())
            }
        }
    }

    /// The next field of a struct decoded in place.
    fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
        seq: &mut A,
        index: usize,
        what: &'static str,
    ) -> Result<T, A::Error> {
        seq.next_element()?
            .ok_or_else(|| de::Error::invalid_length(index, &what))
    }

    /// The next field of a struct, a bounded vector, decoded into `place` element by element
    /// (as heapless decodes its vectors: an element beyond the capacity is an invalid length).
    fn next_vec<'de, T: Deserialize<'de>, const N: usize, A: SeqAccess<'de>>(
        seq: &mut A,
        place: &mut Vec<T, N>,
        index: usize,
        what: &'static str,
    ) -> Result<(), A::Error> {
        seq.next_element_seed(VecInPlace(place))?
            .ok_or_else(|| de::Error::invalid_length(index, &what))
    }

    struct VecInPlace<'a, T, const N: usize>(&'a mut Vec<T, N>);

    impl<'de, T: Deserialize<'de>, const N: usize> DeserializeSeed<'de> for VecInPlace<'_, T, N> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            self.0.clear();
            deserializer.deserialize_seq(self)
        }
    }

    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for VecInPlace<'_, T, N> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a sequence of at most {N} elements")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(value) = seq.next_element()? {
                if self.0.push(value).is_err() {
                    return Err(de::Error::invalid_length(N + 1, &self));
                }
            }
            Ok(())
        }
    }

    const PRINTER_FIELDS: &[&str] = &[
        "device",
        "unit",
        "model",
        "serial",
        "vendor",
        "firmware",
        "uptime_ticks",
        "status",
        "markers",
        "supplies",
        "counters",
        "trays",
        "alerts",
        "console",
        "covers",
        "truncated",
    ];
    const PRINTER: &str = "struct PrinterReading with 16 elements";

    /// A printer reading decoded into its slot, fields in declaration order (as derived).
    struct Printer<'a>(&'a mut PrinterReading);

    impl<'de> DeserializeSeed<'de> for Printer<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_struct("PrinterReading", PRINTER_FIELDS, self)
        }
    }

    impl<'de> Visitor<'de> for Printer<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("struct PrinterReading")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let (p, s) = (self.0, &mut seq);
            p.device = next(s, 0, PRINTER)?;
            p.unit = next(s, 1, PRINTER)?;
            p.model = next(s, 2, PRINTER)?;
            p.serial = next(s, 3, PRINTER)?;
            p.vendor = next(s, 4, PRINTER)?;
            p.firmware = next(s, 5, PRINTER)?;
            p.uptime_ticks = next(s, 6, PRINTER)?;
            p.status = next(s, 7, PRINTER)?;
            next_vec(s, &mut p.markers, 8, PRINTER)?;
            next_vec(s, &mut p.supplies, 9, PRINTER)?;
            p.counters = next(s, 10, PRINTER)?;
            next_vec(s, &mut p.trays, 11, PRINTER)?;
            next_vec(s, &mut p.alerts, 12, PRINTER)?;
            p.console = next(s, 13, PRINTER)?;
            next_vec(s, &mut p.covers, 14, PRINTER)?;
            p.truncated = next(s, 15, PRINTER)?;
            Ok(())
        }
    }

    const DOCK_FIELDS: &[&str] = &[
        "device",
        "unit",
        "vendor",
        "model",
        "firmware",
        "uptime_ticks",
        "fdb_read",
        "seats",
        "truncated",
    ];
    const DOCK: &str = "struct DockReading with 9 elements";

    /// A dock reading decoded into its slot, fields in declaration order (as derived).
    struct Dock<'a>(&'a mut DockReading);

    impl<'de> DeserializeSeed<'de> for Dock<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_struct("DockReading", DOCK_FIELDS, self)
        }
    }

    impl<'de> Visitor<'de> for Dock<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("struct DockReading")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let (d, s) = (self.0, &mut seq);
            d.device = next(s, 0, DOCK)?;
            d.unit = next(s, 1, DOCK)?;
            d.vendor = next(s, 2, DOCK)?;
            d.model = next(s, 3, DOCK)?;
            d.firmware = next(s, 4, DOCK)?;
            d.uptime_ticks = next(s, 5, DOCK)?;
            d.fdb_read = next(s, 6, DOCK)?;
            next_vec(s, &mut d.seats, 7, DOCK)?;
            d.truncated = next(s, 8, DOCK)?;
            Ok(())
        }
    }
}
