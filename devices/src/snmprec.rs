//! Reader for snmpsim's `.snmprec` recordings (`OID|TYPE|VALUE`, one per line).
//!
//! Used to unit-test device mappings on walks of real devices, and by anything that needs to
//! replay a recording. TYPE is the BER tag in decimal (2 INTEGER, 4 OCTET STRING, 5 NULL, 6 OID,
//! 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 68 Opaque, 70 Counter64), optionally
//! followed by `x` when VALUE is hex-encoded. Real recordings contain broken lines; they are
//! reported per line and skipped, never fatal.

use crate::snmp::{Oid, Value, VarbindSet};

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a recording. Returns the varbinds and the lines that were skipped.
pub fn parse(text: &str) -> (VarbindSet, Vec<LineError>) {
    let mut set = VarbindSet::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        // Trailing whitespace is not part of a value (snmpsim strips it too).
        let line = line.trim_end();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            // A recording should not repeat an OID; like snmpsim, the first occurrence answers.
            Ok((oid, _)) if set.get(&oid).is_some() => errors.push(LineError {
                line: line_no,
                reason: format!("duplicate OID {oid}; first occurrence kept"),
            }),
            Ok((oid, value)) => set.insert(oid, value),
            Err(reason) => errors.push(LineError {
                line: line_no,
                reason,
            }),
        }
    }
    (set, errors)
}

fn parse_line(line: &str) -> Result<(Oid, Value), String> {
    let mut parts = line.splitn(3, '|');
    let (Some(oid), Some(tag), Some(raw)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected OID|TYPE|VALUE".into());
    };
    let oid: Oid = oid.parse().map_err(|e| format!("{e}"))?;
    let (tag, hex) = match tag.strip_suffix('x') {
        Some(t) => (t, true),
        None => (tag, false),
    };
    let tag: u8 = tag.parse().map_err(|_| format!("unknown type {tag:?}"))?;
    let bytes = || -> Result<Vec<u8>, String> {
        if hex {
            decode_hex(raw).ok_or_else(|| format!("invalid hex {raw:?}"))
        } else {
            Ok(raw.as_bytes().to_vec())
        }
    };
    let number = |what: &str| -> Result<u64, String> {
        raw.trim()
            .parse::<u64>()
            .map_err(|_| format!("invalid {what} {raw:?}"))
    };
    let u32_of = |what: &str| -> Result<u32, String> {
        u32::try_from(number(what)?).map_err(|_| format!("{what} out of range: {raw}"))
    };
    let value = match tag {
        2 => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("invalid INTEGER {raw:?}"))?,
        ),
        4 => Value::OctetString(bytes()?),
        5 => Value::Null,
        6 => Value::ObjectId(Box::new(raw.parse().map_err(|e| format!("{e}"))?)),
        64 => {
            let b = if hex {
                bytes()?
            } else {
                raw.split('.')
                    .map(|p| p.parse::<u8>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("invalid IpAddress {raw:?}"))?
            };
            let arr: [u8; 4] = b
                .try_into()
                .map_err(|_| format!("IpAddress not 4 bytes: {raw:?}"))?;
            Value::IpAddress(arr)
        }
        65 => Value::Counter32(u32_of("Counter32")?),
        66 => Value::Gauge32(u32_of("Gauge32")?),
        67 => Value::TimeTicks(u32_of("TimeTicks")?),
        68 => Value::Opaque(bytes()?),
        70 => Value::Counter64(number("Counter64")?),
        other => return Err(format!("unsupported type {other}")),
    };
    Ok((oid, value))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::oid;

    #[test]
    fn reads_every_type_and_hex_values() {
        let text = "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.367.1.1\n\
                    1.3.6.1.2.1.1.3.0|67|90117500\n\
                    1.3.6.1.2.1.25.3.5.1.2.1|4x|0100\n\
                    1.3.6.1.2.1.43.11.1.1.9.1.13|2|-3\n\
                    1.3.6.1.2.1.43.10.2.1.4.1.1|65|271871\n\
                    1.3.6.1.2.1.4.20.1.1.10.0.0.1|64|10.0.0.1\n\
                    1.3.6.1.2.1.31.1.1.1.6.1|70|18446744073709551615\n";
        let (set, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            set.get(&oid("1.3.6.1.2.1.25.3.5.1.2.1")),
            Some(&Value::OctetString(vec![1, 0]))
        );
        assert_eq!(
            set.get(&oid("1.3.6.1.2.1.43.11.1.1.9.1.13")),
            Some(&Value::Integer(-3))
        );
        assert_eq!(
            set.get(&oid("1.3.6.1.2.1.43.10.2.1.4.1.1")),
            Some(&Value::Counter32(271_871))
        );
        assert_eq!(
            set.get(&oid("1.3.6.1.2.1.1.3.0")),
            Some(&Value::TimeTicks(90_117_500))
        );
        assert_eq!(
            set.get(&oid("1.3.6.1.2.1.4.20.1.1.10.0.0.1")),
            Some(&Value::IpAddress([10, 0, 0, 1]))
        );
        assert_eq!(
            set.get(&oid("1.3.6.1.2.1.31.1.1.1.6.1")),
            Some(&Value::Counter64(u64::MAX))
        );
    }

    #[test]
    fn broken_lines_are_reported_and_skipped() {
        // Line 2 is the corrupt counter recorded from the Oki 9450G.
        let text = "1.3.6.1.2.1.1.1.0|4|ok\n1.3.6.1.2.1.2.2.1.17.1|65|6git3159\nnonsense\n1.3|99|x\n1.3.6|4x|abc\n1.3.6.1.2.1.1.1.0|4|again\n";
        let (set, errors) = parse(text);
        assert_eq!(set.len(), 1);
        assert_eq!(
            set.get(&crate::snmp::oid("1.3.6.1.2.1.1.1.0")),
            Some(&Value::OctetString(b"ok".to_vec()))
        );
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6]
        );
    }
}
