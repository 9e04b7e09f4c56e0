//! devtel's wire protocol: what a collector sends to the gateway over MQTT, and the topics it
//! is sent on. Both daemons depend on this crate; nobody else encodes a payload or formats a topic.
//!
//! The crate is `#![no_std]` without default features, allocates nothing and performs no I/O:
//! every string and list is a bounded `heapless` container whose capacity is a named constant
//! below, so a message has a known maximum size ([`MAX_ENCODED_LEN`]) and decoding untrusted bytes
//! can fail but never panic.
//!
//! # Layout
//! - [`envelope`]: [`Envelope`], the unit of transmission (format version, collector id, sequence
//!   number, timestamp, readings) and [`Reading`], one device's poll result.
//! - [`printer`]: [`PrinterReading`] and its parts (status, marker counters, supplies) with the
//!   Printer-MIB / HOST-RESOURCES-MIB semantics kept intact (special values are variants, not
//!   numbers).
//! - [`compact`]: version 5's compact reading — a reading's changing numbers against the
//!   device's last described envelope, named by fingerprint.
//! - [`ack`]: [`Ack`], the gateway's acknowledgement of what it stored, per collector epoch.
//! - [`code`]: the `code_enum!` pattern for SNMP enumerations that may carry values nobody has seen.
//! - [`topic`]: the MQTT topic scheme, built and parsed only here.
//! - [`broker`]: broker URLs (`mqtt://`, `mqtts://`) as both daemons accept them.
//! - [`encode`] / [`decode`]: the postcard codec with explicit versioning; see `WIRE.md` for the
//!   byte-level specification.
//!
//! # Versioning
//! Postcard is not self-describing: fields are positional and enum variants are varint indexes. So
//! (a) the first byte of every payload is [`FORMAT_VERSION`] and the major version is also in the
//! topic (`devtel/v1/...`), (b) enums are append-only, and (c) any change to the bytes of an
//! existing message bumps [`FORMAT_VERSION`]. [`decode`] rejects other versions and trailing bytes.
//! From version 5 the second byte tells a described envelope ([`compact::DESCRIBED`], what
//! [`encode`] writes and [`decode`] reads) from a compact reading ([`compact::COMPACT`], see
//! [`compact::decode_compact`]).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod ack;
pub mod broker;
pub mod code;
pub mod compact;
pub mod dock;
pub mod envelope;
mod error;
pub mod phone;
pub mod printer;
pub mod topic;
pub mod vendor;

pub use ack::{decode_ack, encode_ack, Ack, SeqRange, ACK_VERSION, MAX_ACK_LEN};
pub use dock::{DockReading, LinkStatus, Neighbour, Occupancy, Seat};
pub use envelope::{
    peek_identity, DeviceKind, Envelope, Identity, NoResponse, NoResponseCause, Reading,
    SITE_VERSION,
};
pub use error::Error;
pub use phone::{HookState, PhoneLine, PhoneReading, Registration};
pub use printer::{
    alert_code_name, Alert, AlertSeverity, AlertTraining, Capacity, Condition, CounterUnit, Cover,
    CoverStatus, DeviceStatus, ErrorBits, Health, InputType, Level, MarkerCounter, PageCounters,
    PrinterReading, PrinterState, PrinterStatus, Supply, SupplyClass, SupplyState, SupplyType,
    SupplyUnit, Tray,
};
pub use vendor::Vendor;

/// Displays a MAC address as JSON and logs show it: `aa:bb:cc:dd:ee:ff`.
pub struct MacDisplay<'a>(pub &'a [u8; 6]);

impl core::fmt::Display for MacDisplay<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The format version this crate writes. First byte of every payload.
pub const FORMAT_VERSION: u8 = 5;

/// The first version of described and compact readings ([`compact`]): its payloads have a
/// second byte, [`compact::DESCRIBED`] or [`compact::COMPACT`].
pub const COMPACT_VERSION: u8 = 5;

/// The oldest format version this crate still reads: a site upgrades its collector and the
/// gateway one at a time, and a collector's spool may hold envelopes written before.
pub const OLDEST_VERSION: u8 = 3;

/// Longest identifier (collector, site, unit, device) in bytes. Identifiers are also topic segments.
pub const MAX_ID_LEN: usize = 64;
/// Most dock seats (switch ports) per dock reading; a bigger switch is configured as several
/// devices with explicit seat lists.
pub const MAX_SEATS: usize = 48;
/// Longest model text of a seat's LLDP neighbour.
pub const MAX_NEIGHBOUR_MODEL_LEN: usize = 48;
/// Most readings in one envelope. A collector normally sends one device per envelope.
pub const MAX_READINGS: usize = 2;
/// Most marker (page counter) rows kept per printer. Devices with more are truncated, flagged.
pub const MAX_MARKERS: usize = 4;
/// Most supply rows kept per printer (a large colour copier has about 15).
pub const MAX_SUPPLIES: usize = 32;
/// Longest supply description kept, in bytes (Printer-MIB allows 255; real ones are < 60).
pub const MAX_DESCRIPTION_LEN: usize = 96;
/// Longest colorant name kept, in bytes ("black", "light cyan", ...).
pub const MAX_COLOUR_LEN: usize = 24;
/// Longest model string and serial number kept, in bytes.
pub const MAX_MODEL_LEN: usize = 64;
/// Longest short name kept (tray, cover, line, port names), in bytes.
pub const MAX_NAME_LEN: usize = 32;
/// Most paper trays kept per printer.
pub const MAX_TRAYS: usize = 8;
/// Most active alerts kept per printer.
pub const MAX_ALERTS: usize = 8;
/// Most covers kept per printer.
pub const MAX_COVERS: usize = 4;
/// Most lines (accounts, FXS ports) kept per phone.
pub const MAX_LINES: usize = 8;
/// Longest console display text kept, in bytes (all lines joined).
pub const MAX_CONSOLE_LEN: usize = 96;

/// An identifier: a collector, site, administrative unit or device. See [`topic::validate_segment`].
pub type Id = heapless::String<MAX_ID_LEN>;

/// Upper bound of an encoded [`Envelope`], checked by a test against the largest possible message.
/// A buffer of this size always suffices for [`encode`].
pub const MAX_ENCODED_LEN: usize = 32 * 1024;

/// Largest MQTT packet a devtel daemon reads (fixed header, topic, properties and payload), and
/// the `max_packet_size` to give the broker. Both daemons announce it in CONNECT (MQTT 5's
/// Maximum Packet Size), so a broker never delivers them anything larger: it drops such a
/// message for them instead, and no message can break their connection. Anything smaller that
/// is not a valid message (a payload over [`MAX_ENCODED_LEN`], garbage, a wrong version) is
/// read, rejected by cause, counted and acknowledged.
///
/// This is the one statement of devtel's size limits: [`MAX_ENCODED_LEN`] (the largest valid
/// envelope) < [`MAX_PACKET_LEN`] (the largest packet read), checked by a test.
pub const MAX_PACKET_LEN: usize = 4 * 1024 * 1024;

/// Encodes `envelope` into `buf` and returns the written prefix.
///
/// # Errors
/// [`Error::UnsupportedVersion`] when `envelope.version` is neither [`FORMAT_VERSION`] nor
/// [`SITE_VERSION`] (version 4, for gateways not yet upgraded),
/// [`Error::InvalidId`] when an identifier is not a valid topic segment, and
/// [`Error::BufferTooSmall`] when `buf` is too short (never with [`MAX_ENCODED_LEN`] bytes).
pub fn encode<'a>(envelope: &Envelope, buf: &'a mut [u8]) -> Result<&'a mut [u8], Error> {
    check_writable(envelope)?;
    if envelope.version < COMPACT_VERSION {
        return postcard::to_slice(envelope, buf).map_err(serialize_error);
    }
    // The derived layout is `[version][fields]`; a described envelope is
    // `[version][DESCRIBED][fields]`: written one byte on, its version byte then moved.
    let rest = buf.get_mut(1..).ok_or(Error::BufferTooSmall)?;
    let n = postcard::to_slice(envelope, rest)
        .map_err(serialize_error)?
        .len();
    buf[0] = envelope.version;
    buf[1] = compact::DESCRIBED;
    Ok(&mut buf[..n + 1])
}

/// Versions [`encode`] writes: the current one, and the one before for a collector that
/// talks to a gateway not yet upgraded.
fn check_writable(envelope: &Envelope) -> Result<(), Error> {
    if envelope.version != FORMAT_VERSION && envelope.version != SITE_VERSION {
        return Err(Error::UnsupportedVersion(envelope.version));
    }
    envelope.validate()
}

fn serialize_error(e: postcard::Error) -> Error {
    match e {
        postcard::Error::SerializeBufferFull => Error::BufferTooSmall,
        _ => Error::Encode,
    }
}

/// Encodes `envelope` into a vector of exactly its encoded length (with the `std` feature).
///
/// # Errors
/// As [`encode`], except that there is no buffer to be too small.
#[cfg(feature = "std")]
pub fn encode_to_vec(envelope: &Envelope) -> Result<std::vec::Vec<u8>, Error> {
    check_writable(envelope)?;
    let mut out = postcard::to_allocvec(envelope).map_err(|_| Error::Encode)?;
    if envelope.version >= COMPACT_VERSION {
        out.insert(1, compact::DESCRIBED);
    }
    Ok(out)
}

/// Decodes one envelope from `bytes`. Never panics, whatever the input.
///
/// # Errors
/// [`Error::Empty`], [`Error::UnsupportedVersion`] (first byte is not a version from
/// [`OLDEST_VERSION`] to [`FORMAT_VERSION`]),
/// [`Error::Malformed`] (postcard could not decode the rest), [`Error::TrailingBytes`],
/// [`Error::InvalidId`] (an identifier that is not a valid topic segment) and
/// [`Error::NoReadings`].
pub fn decode(bytes: &[u8]) -> Result<Envelope, Error> {
    let mut envelope = Envelope::new(Id::new(), Id::new(), 0, 0, 0);
    decode_into(bytes, &mut envelope)?;
    Ok(envelope)
}

/// Decodes one envelope from `bytes` into `envelope`, as [`decode`] does, without moving the
/// decoded readings through temporaries: an envelope is about 30 KB in memory, and where
/// envelopes are decoded by the thousand per second (the gateway) those moves were most of
/// the decoding time. On an error `envelope` holds a partial decode and is not to be used.
///
/// # Errors
/// As [`decode`].
pub fn decode_into(bytes: &[u8], envelope: &mut Envelope) -> Result<(), Error> {
    use serde::de::DeserializeSeed;

    let first = *bytes.first().ok_or(Error::Empty)?;
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&first) {
        return Err(Error::UnsupportedVersion(first));
    }
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    envelope::de::InPlace(envelope)
        .deserialize(&mut deserializer)
        .map_err(|_| Error::Malformed)?;
    let rest = deserializer.finalize().map_err(|_| Error::Malformed)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes(rest.len()));
    }
    envelope.validate()
}

/// Makes `dst` a copy of `src` element by element (no temporary of the full capacity).
fn assign<T: Clone, const N: usize>(dst: &mut heapless::Vec<T, N>, src: &heapless::Vec<T, N>) {
    dst.clear();
    for x in src {
        // Both have capacity N, so every element fits.
        if dst.push(x.clone()).is_err() {
            break;
        }
    }
}
