//! Decoding of SNMP DisplayStrings into bounded wire strings.

/// Decodes an OCTET STRING for display: UTF-8 when valid, else ISO-8859-1; control
/// characters and whitespace at both ends removed. Cut at `N` bytes on a character boundary,
/// setting `truncated`. Empty strings give `None`.
pub fn bounded<const N: usize>(bytes: &[u8], truncated: &mut bool) -> Option<heapless::String<N>> {
    let joined = join_hex_continuation(bytes);
    let bytes = joined.as_deref().unwrap_or(bytes);
    let decoded: String = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    };
    // Trailing NULs (HP Jetdirect pads with them) and leading control bytes (HP's private
    // strings start with a 0x01 0x15 header) are not text.
    let trimmed = decoded.trim_matches(|c: char| c.is_control() || c.is_whitespace());
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

/// Some HP agents send strings longer than 16 bytes as the first 16 bytes, a newline and
/// the rest as space-separated hex pairs ("HP LaserJet MF\n50 20 4D 31 33 30 6E 77" is
/// "HP LaserJet MFP M130nw"; LibreNMS decodes the same). Returns the joined bytes when the
/// text after the first newline is exactly such hex pairs.
fn join_hex_continuation(bytes: &[u8]) -> Option<Vec<u8>> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let rest = std::str::from_utf8(&bytes[nl + 1..]).ok()?;
    let mut out = bytes[..nl].to_vec();
    let mut pairs = 0;
    for token in rest.split_ascii_whitespace() {
        if token.len() != 2 {
            return None;
        }
        out.push(u8::from_str_radix(token, 16).ok()?);
        pairs += 1;
    }
    (pairs > 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hp_hex_continuation_lines_are_joined() {
        let mut t = false;
        let raw = b"\x01\x15HP LaserJet MF\n50 20 4D 31 33 30 6E 77 ";
        assert_eq!(
            bounded::<64>(raw, &mut t).as_deref(),
            Some("HP LaserJet MFP M130nw")
        );
        // A real second line that is not hex stays as it is (trimmed at the ends only).
        assert_eq!(
            bounded::<64>(b"Line one\nLine two", &mut t).as_deref(),
            Some("Line one\nLine two")
        );
    }

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
