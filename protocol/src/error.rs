//! The one error type of the protocol crate.

use core::fmt;

/// Why a payload could not be encoded or decoded. Every variant is a normal, expected outcome for
/// untrusted input: callers count and log it, they never panic on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The payload was empty.
    Empty,
    /// The payload's format version (its first byte) is not one this build reads; or an envelope
    /// to encode carries a version other than [`crate::FORMAT_VERSION`].
    UnsupportedVersion(u8),
    /// The bytes after the version do not form a valid envelope (truncated, bad varint, unknown
    /// enum variant, over-capacity list or string, invalid UTF-8).
    Malformed,
    /// A complete envelope was followed by this many unexpected bytes.
    TrailingBytes(usize),
    /// An identifier (collector, unit, device) is empty, too long or not a valid topic segment.
    InvalidId,
    /// An envelope carried no readings.
    NoReadings,
    /// The output buffer was too small; [`crate::MAX_ENCODED_LEN`] always suffices.
    BufferTooSmall,
    /// The serializer failed for another reason (not expected with the crate's own types).
    Encode,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("empty payload"),
            Error::UnsupportedVersion(v) => write!(
                f,
                "unsupported format version {v} (this build reads versions {} to {})",
                crate::OLDEST_VERSION,
                crate::FORMAT_VERSION
            ),
            Error::Malformed => f.write_str("malformed payload"),
            Error::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the envelope"),
            Error::InvalidId => f.write_str("invalid identifier (must be a valid topic segment)"),
            Error::NoReadings => f.write_str("envelope carries no readings"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
            Error::Encode => f.write_str("serializer error"),
        }
    }
}

impl core::error::Error for Error {}
