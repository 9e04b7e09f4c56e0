//! SNMP values as owned data: what a poll returns, independent of how it was fetched.
//!
//! Device mappings never see the network: they take a [`VarbindSet`] (what a poll or a recording
//! returned) and produce a typed reading. The collector's SNMP client fills a `VarbindSet` from
//! a real agent; [`crate::snmprec`] fills one from a recorded walk, so the same mapping code is
//! tested on real device data without any I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Sub-identifiers kept inline: every scalar and table cell the device kinds poll has at most
/// 16 (a printer's supply level, 1.3.6.1.2.1.43.11.1.1.9.1.1, has 13); longer ones (forwarding
/// database rows indexed by a MAC address) go to the heap.
type Parts = smallvec::SmallVec<[u32; 16]>;

/// An object identifier as its sub-identifiers. Ordering is SNMP's lexicographic OID order.
///
/// Inline rather than a `Vec`: a poll of a copier handles a few hundred OIDs (the plan, each
/// varbind of the answers, the mapping's lookups), and a heap allocation for each was the
/// largest part of the collector's allocator time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Oid(Parts);

impl Oid {
    /// The sub-identifiers.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// Whether `self` lies in the subtree rooted at `root` (or equals it).
    pub fn starts_with(&self, root: &Oid) -> bool {
        self.0.starts_with(&root.0)
    }

    /// The sub-identifiers after `root`, if `self` is in its subtree.
    pub fn suffix(&self, root: &Oid) -> Option<&[u32]> {
        self.0.strip_prefix(root.0.as_slice())
    }

    /// `self` with `parts` appended.
    pub fn child(&self, parts: &[u32]) -> Oid {
        let mut v = self.0.clone();
        v.extend_from_slice(parts);
        Oid(v)
    }
}

impl From<&[u32]> for Oid {
    fn from(parts: &[u32]) -> Self {
        Oid(Parts::from_slice(parts))
    }
}

impl FromIterator<u32> for Oid {
    fn from_iter<I: IntoIterator<Item = u32>>(parts: I) -> Self {
        Oid(parts.into_iter().collect())
    }
}

impl From<Vec<u32>> for Oid {
    fn from(parts: Vec<u32>) -> Self {
        Oid(Parts::from_slice(&parts))
    }
}

/// Parsing a dotted OID failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OID {0:?}: expected dotted decimal such as 1.3.6.1.2.1.1.1.0")]
pub struct OidParseError(pub String);

impl FromStr for Oid {
    type Err = OidParseError;

    /// Parses `1.3.6.1...`, with or without a leading dot.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || OidParseError(s.to_string());
        let body = s.strip_prefix('.').unwrap_or(s);
        let mut parts = Parts::new();
        // Each part: decimal digits, no sign, fits in u32; parts separated by single dots.
        let (mut part, mut digits) = (0u32, 0usize);
        for &b in body.as_bytes() {
            match b {
                b'0'..=b'9' => {
                    part = part
                        .checked_mul(10)
                        .and_then(|p| p.checked_add(u32::from(b - b'0')))
                        .ok_or_else(invalid)?;
                    digits += 1;
                }
                b'.' if digits > 0 => {
                    parts.push(part);
                    (part, digits) = (0, 0);
                }
                _ => return Err(invalid()),
            }
        }
        if digits == 0 {
            return Err(invalid());
        }
        parts.push(part);
        Ok(Oid(parts))
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

/// Builds an [`Oid`] from a literal known to be valid (compile-time constants in mappings).
///
/// # Panics
/// When `s` is not a dotted OID; only ever called with constants that a unit test covers.
pub fn oid(s: &str) -> Oid {
    match s.parse() {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// An SNMP value, owned, with its SNMP type kept (Counter32 ≠ Gauge32 ≠ INTEGER matters for
/// counter semantics) and the v2c exceptions as distinct variants, never 0 or "".
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Value {
    /// INTEGER / Integer32 (signed: -1/-2/-3 are meaningful in the Printer-MIB).
    Integer(i64),
    /// OCTET STRING: bytes, not text.
    OctetString(Vec<u8>),
    /// OBJECT IDENTIFIER (boxed: rare among values, and an inline [`Oid`] would more than
    /// double the size of every value).
    ObjectId(Box<Oid>),
    /// IpAddress.
    IpAddress([u8; 4]),
    /// Counter32.
    Counter32(u32),
    /// Gauge32 / Unsigned32.
    Gauge32(u32),
    /// TimeTicks (1/100 s).
    TimeTicks(u32),
    /// Opaque.
    Opaque(Vec<u8>),
    /// Counter64 (v2c/v3 only).
    Counter64(u64),
    /// NULL.
    Null,
    /// v2c exception noSuchObject.
    NoSuchObject,
    /// v2c exception noSuchInstance.
    NoSuchInstance,
    /// v2c exception endOfMibView.
    EndOfMibView,
}

impl Value {
    /// Whether this is one of the v2c exceptions (no value).
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView
        )
    }

    /// An INTEGER that fits Integer32.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Integer(v) => i32::try_from(*v).ok(),
            _ => None,
        }
    }

    /// An unsigned 32-bit value: Counter32, Gauge32, TimeTicks, or a non-negative INTEGER
    /// (some agents send counters as INTEGER).
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => Some(*v),
            Value::Integer(v) => u32::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The bytes of an OCTET STRING or Opaque.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::OctetString(b) | Value::Opaque(b) => Some(b),
            _ => None,
        }
    }

    /// An OCTET STRING as text (UTF-8, invalid bytes replaced), trimmed; `None` when empty.
    /// For identification strings; supply descriptions go through `devices::text::bounded`.
    pub fn as_text(&self) -> Option<String> {
        let text = String::from_utf8_lossy(self.as_bytes()?).trim().to_string();
        (!text.is_empty()).then_some(text)
    }

    /// An OBJECT IDENTIFIER value.
    pub fn as_oid(&self) -> Option<&Oid> {
        match self {
            Value::ObjectId(o) => Some(o),
            _ => None,
        }
    }
}

/// The varbinds of one poll (or one recording), ordered by OID.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct VarbindSet(BTreeMap<Oid, Value>);

impl VarbindSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a varbind. Exceptions (noSuchObject, ...) are not stored: absent is absent.
    pub fn insert(&mut self, oid: Oid, value: Value) {
        if !value.is_exception() {
            self.0.insert(oid, value);
        }
    }

    /// The value at exactly `oid`.
    pub fn get(&self, oid: &Oid) -> Option<&Value> {
        self.0.get(oid)
    }

    /// Every varbind in the subtree under `root`, as (suffix after root, value), in OID order.
    pub fn subtree<'a>(
        &'a self,
        root: &'a Oid,
    ) -> impl Iterator<Item = (&'a [u32], &'a Value)> + 'a {
        self.0
            .range(root.clone()..)
            .map_while(move |(oid, value)| oid.suffix(root).map(|s| (s, value)))
            .filter(|(suffix, _)| !suffix.is_empty())
    }

    /// Number of varbinds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every varbind of `other` whose OID is not present yet.
    pub fn merge_missing(&mut self, other: VarbindSet) {
        for (oid, value) in other.0 {
            self.0.entry(oid).or_insert(value);
        }
    }

    /// The first varbind strictly after `oid` (GetNext semantics).
    pub fn next_after(&self, oid: &Oid) -> Option<(&Oid, &Value)> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.0.range((Excluded(oid.clone()), Unbounded)).next()
    }
}

impl FromIterator<(Oid, Value)> for VarbindSet {
    fn from_iter<T: IntoIterator<Item = (Oid, Value)>>(iter: T) -> Self {
        let mut set = VarbindSet::new();
        for (oid, value) in iter {
            set.insert(oid, value);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_parse_print_and_order_like_snmp() {
        let a: Oid = ".1.3.6.1.2.1.43.11.1.1.9.1.2".parse().unwrap();
        assert_eq!(a.to_string(), "1.3.6.1.2.1.43.11.1.1.9.1.2");
        let b = oid("1.3.6.1.2.1.43.11.1.1.9.1.10");
        assert!(a < b, "numeric, not string, order");
        assert!(oid("1.3.6.1.2.1.43.11.1.1.9.1") < a);
        assert!("1.3..6".parse::<Oid>().is_err());
        assert!("".parse::<Oid>().is_err());
        assert!("1.3.x".parse::<Oid>().is_err());
        for bad in [".", "1.3.", "1.-3", "1.+3", " 1.3", "1.4294967296", "1 .3"] {
            assert!(bad.parse::<Oid>().is_err(), "{bad:?}");
        }
        assert_eq!(oid("0").as_slice(), &[0]);
        assert_eq!(oid("1.4294967295").as_slice(), &[1, u32::MAX]);
        // Past the inline length (a forwarding-database row: bridge column + MAC) too.
        let long = "1.3.6.1.2.1.17.7.1.2.2.1.2.1.0.27.33.58.91.255";
        let row: Oid = long.parse().unwrap();
        assert_eq!(row.as_slice().len(), 20);
        assert_eq!(row.to_string(), long);
        assert!(row.starts_with(&oid("1.3.6.1.2.1.17.7.1.2.2.1.2")));
        assert_eq!(
            row.suffix(&oid("1.3.6.1.2.1.17.7.1.2.2.1.2.1")),
            Some(&[0, 27, 33, 58, 91, 255][..])
        );
        assert!(row > oid("1.3.6.1.2.1.17.7.1.2.2.1.2.1.0.27"));
    }

    /// A poll holds every varbind of its answers (64 polls in flight by default): the sizes
    /// the collector's memory figures depend on.
    #[test]
    fn varbinds_stay_small() {
        assert!(
            std::mem::size_of::<Value>() <= 32,
            "{}",
            std::mem::size_of::<Value>()
        );
        assert!(
            std::mem::size_of::<Oid>() <= 72,
            "{}",
            std::mem::size_of::<Oid>()
        );
    }

    #[test]
    fn subtree_yields_suffixes_in_order_and_stops_at_the_boundary() {
        let set: VarbindSet = [
            (oid("1.3.6.1.2.1.43.11.1.1.9.1.1"), Value::Integer(40)),
            (oid("1.3.6.1.2.1.43.11.1.1.9.1.2"), Value::Integer(-3)),
            (oid("1.3.6.1.2.1.43.11.1.1.90.1.1"), Value::Integer(7)),
            (oid("1.3.6.1.2.1.43.11.1.1.8.1.1"), Value::Integer(100)),
            (oid("1.3.6.1.2.1.43.11.1.1.9.1.3"), Value::NoSuchInstance),
        ]
        .into_iter()
        .collect();
        let root = oid("1.3.6.1.2.1.43.11.1.1.9");
        let got: Vec<_> = set
            .subtree(&root)
            .map(|(s, v)| (s.to_vec(), v.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![1, 1], Value::Integer(40)),
                (vec![1, 2], Value::Integer(-3))
            ]
        );
    }
}
