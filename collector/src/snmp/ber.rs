//! The few BER encodings SNMP messages need (definite lengths, minimal integers): the
//! simulator's responses and the client's v1/v2c requests.

use crate::snmp::Value;

/// SEQUENCE.
pub const SEQUENCE: u8 = 0x30;
/// OCTET STRING.
pub const OCTET_STRING: u8 = 0x04;
/// GetRequest-PDU.
pub const GET: u8 = 0xa0;
/// GetNextRequest-PDU.
pub const GET_NEXT: u8 = 0xa1;
/// Response-PDU.
pub const RESPONSE: u8 = 0xa2;
/// GetBulkRequest-PDU (v2c).
pub const GET_BULK: u8 = 0xa5;

/// A v1 (`version` 0) or v2c (1) request: PDU `tag` with `request_id`, the two integers that
/// follow it (error-status and error-index, 0 and 0; for GetBulk non-repeaters and
/// max-repetitions) and each of `oids` bound to NULL.
pub fn request(
    version: i64,
    community: &[u8],
    tag: u8,
    request_id: i32,
    (first, second): (i64, i64),
    oids: &[&[u32]],
) -> Vec<u8> {
    let mut list = Vec::new();
    for o in oids {
        let mut pair = oid(o);
        pair.extend(tlv(0x05, &[]));
        list.extend(tlv(SEQUENCE, &pair));
    }
    let mut pdu = integer(i64::from(request_id));
    pdu.extend(integer(first));
    pdu.extend(integer(second));
    pdu.extend(tlv(SEQUENCE, &list));
    let mut message = integer(version);
    message.extend(tlv(OCTET_STRING, community));
    message.extend(tlv(tag, &pdu));
    tlv(SEQUENCE, &message)
}

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Two's complement, shortest form.
fn signed(tag: u8, v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(tag, &bytes[start..])
}

/// Unsigned, shortest form with a leading zero when the top bit is set.
fn unsigned(tag: u8, v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut content = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(&bytes[skip..]);
    tlv(tag, &content)
}

pub fn integer(v: i64) -> Vec<u8> {
    signed(0x02, v)
}

pub fn oid(parts: &[u32]) -> Vec<u8> {
    let mut content = Vec::new();
    let (first, rest) = match parts {
        [a, b, rest @ ..] => (a.saturating_mul(40).saturating_add(*b), rest),
        [a] => (a.saturating_mul(40), &[][..]),
        [] => (0, &[][..]),
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut groups = [0u8; 5];
        let mut n = 0;
        let mut v = arc;
        loop {
            groups[n] = (v & 0x7f) as u8;
            n += 1;
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            content.push(groups[i] | if i > 0 { 0x80 } else { 0 });
        }
    }
    tlv(0x06, &content)
}

pub fn value(v: &Value) -> Vec<u8> {
    match v {
        Value::Integer(i) => integer(*i),
        Value::OctetString(b) => tlv(OCTET_STRING, b),
        Value::ObjectId(o) => oid(o.as_slice()),
        Value::IpAddress(a) => tlv(0x40, a),
        Value::Counter32(x) => unsigned(0x41, u64::from(*x)),
        Value::Gauge32(x) => unsigned(0x42, u64::from(*x)),
        Value::TimeTicks(x) => unsigned(0x43, u64::from(*x)),
        Value::Opaque(b) => tlv(0x44, b),
        Value::Counter64(x) => unsigned(0x46, *x),
        Value::Null => tlv(0x05, &[]),
        Value::NoSuchObject => tlv(0x80, &[]),
        Value::NoSuchInstance => tlv(0x81, &[]),
        Value::EndOfMibView => tlv(0x82, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_x690() {
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(127), [0x02, 0x01, 0x7f]);
        assert_eq!(integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(-3), [0x02, 0x01, 0xfd]);
        assert_eq!(integer(-129), [0x02, 0x02, 0xff, 0x7f]);
        assert_eq!(
            value(&Value::Counter32(u32::MAX)),
            [0x41, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(value(&Value::Gauge32(0)), [0x42, 0x01, 0x00]);
        assert_eq!(
            oid(&[1, 3, 6, 1, 4, 1, 367]),
            [0x06, 0x07, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x6f]
        );
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
