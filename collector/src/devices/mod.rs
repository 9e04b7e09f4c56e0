//! Device kinds: one module per kind, each a pure mapping from varbinds to a typed reading.
//!
//! Every kind exposes the same two functions:
//! - `plan() -> Plan`: which OIDs to GET and which subtrees to walk;
//! - `map(&DeviceIdentity, &VarbindSet) -> Result<Reading, MapError>`: no I/O, no clock.
//!
//! The poller executes the plan against the device and hands the result to `map`; unit tests
//! hand it recorded walks of real devices instead.

pub mod printer;

use devtel_protocol::Id;

use crate::snmp::Oid;

/// What a poll of one device kind fetches.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Scalars fetched with one GET.
    pub get: Vec<Oid>,
    /// Subtrees walked, in order.
    pub walk: Vec<Oid>,
}

/// Who a reading is about: the configured ids, copied into the reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Device id.
    pub device: Id,
    /// Administrative unit.
    pub unit: Id,
}

/// Why varbinds could not be mapped to a reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The device answered, but has no Printer-MIB / hrPrinter data.
    #[error("the device exposes no Printer-MIB data (is it configured with the right kind?)")]
    NotAPrinter,
}

/// Decoding of SNMP DisplayStrings into bounded wire strings.
pub mod text {
    /// Decodes an OCTET STRING for display: UTF-8 when valid, else ISO-8859-1; trailing NULs and
    /// whitespace removed (HP Jetdirect pads with NULs). Cut at `N` bytes on a character boundary,
    /// setting `truncated`. Empty strings give `None`.
    pub fn bounded<const N: usize>(
        bytes: &[u8],
        truncated: &mut bool,
    ) -> Option<heapless::String<N>> {
        let decoded: String = match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
        };
        let trimmed = decoded
            .trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
            .trim_start();
        if trimmed.is_empty() {
            return None;
        }
        let mut out = heapless::String::<N>::new();
        for c in trimmed.chars() {
            if out.push(c).is_err() {
                *truncated = true;
                break;
            }
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn utf8_latin1_nul_padding_and_truncation() {
            let mut t = false;
            assert_eq!(
                bounded::<16>(b"Black Toner\0\0", &mut t).as_deref(),
                Some("Black Toner")
            );
            assert_eq!(
                bounded::<16>("Gelb Tönerkartusche".as_bytes(), &mut t).as_deref(),
                Some("Gelb Tönerkartu")
            );
            assert!(t, "cut at 16 bytes on a char boundary");
            let mut t = false;
            assert_eq!(
                bounded::<16>(b"Tr\xe4ger", &mut t).as_deref(),
                Some("Träger")
            );
            assert!(!t);
            assert_eq!(bounded::<16>(b"  \0", &mut t), None);
        }
    }
}
