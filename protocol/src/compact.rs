//! Version 5's compact reading: what changes from poll to poll, against a description.
//!
//! Most of a reading repeats in every poll of a device: its identity (model, serial,
//! firmware), the descriptions of its supplies, trays and seats, their colorants and
//! capacities. What changes are a few numbers — uptime, page counters, levels, states. So a
//! version-5 collector sends a device's reading in full now and then (a **described**
//! envelope: the envelope of version 4 with a marker byte), and in between only the numbers,
//! against the last described one it knows the gateway holds (a **compact** reading):
//!
//! - The numbers of a reading are its **slots** ([`slots`]): a fixed list per kind, whose
//!   length follows from the reading's rows (markers, supplies, trays, lines, seats).
//!   Everything else is its **skeleton** ([`split`]).
//! - A compact reading names its description by [`fingerprint`] (CRC-32 of the described
//!   payload), carries its `seq` and `timestamp_ms` as differences to the description's, and
//!   for each slot one bit — changed or not — and, for a changed one, its difference to the
//!   description's value.
//! - [`expand`] turns the description and a compact reading back into the full envelope. It
//!   equals the one the collector polled, byte for byte once encoded: [`split`] refuses a
//!   reading whose slots and skeleton would not give it back, and the collector then sends it
//!   described.
//!
//! `WIRE.md` specifies the bytes.

use heapless::Vec;

use crate::{
    printer::{DeviceStatus, ErrorBits, Level, PrinterState},
    DockReading, Envelope, Error, HookState, LinkStatus, Occupancy, PhoneReading, PrinterReading,
    Reading, Registration, FORMAT_VERSION, MAX_LINES, MAX_MARKERS, MAX_SEATS, MAX_SUPPLIES,
    MAX_TRAYS,
};

/// Second byte of a version-5 described envelope (a full reading, and a description).
pub const DESCRIBED: u8 = 0;
/// Second byte of a version-5 compact reading.
pub const COMPACT: u8 = 1;

/// Most slots of one reading (a dock with [`MAX_SEATS`] seats has the most).
pub const MAX_SLOTS: usize = {
    let printer = 4 + MAX_MARKERS + MAX_SUPPLIES + 8 + 2 * MAX_TRAYS;
    let phone = 1 + 2 * MAX_LINES;
    let dock = 1 + 5 * MAX_SEATS;
    let mut max = printer;
    if phone > max {
        max = phone;
    }
    if dock > max {
        max = dock;
    }
    max
};

/// Upper bound of an encoded compact reading: header, bitmap and a 19-byte varint per slot.
pub const MAX_COMPACT_LEN: usize = 2 + 4 + 10 + 10 + 3 + MAX_SLOTS.div_ceil(8) + 19 * MAX_SLOTS;

/// A reading's slot values, in slot order.
pub type Slots = Vec<Option<i64>, MAX_SLOTS>;

/// The fingerprint of a described envelope: CRC-32 (IEEE) of its whole payload.
pub fn fingerprint(described_payload: &[u8]) -> u32 {
    crc32fast::hash(described_payload)
}

/// One number of a reading, read and written as an `Option<i64>`.
trait Slot {
    fn get(&self) -> Result<Option<i64>, Error>;
    fn set(&mut self, v: Option<i64>) -> Result<(), Error>;
    /// The value a skeleton holds: `None`, or zero where the field is not optional.
    fn blank(&mut self);
    /// Whether setting `v` gives exactly the field as it is (a field kept in a form its raw
    /// value does not restore, e.g. a known code held as unrecognised, does not).
    fn restores(&self, v: Option<i64>) -> bool;
}

fn restores_copy<T: Slot + Copy + PartialEq>(x: &T, v: Option<i64>) -> bool {
    let mut t = *x;
    t.set(v).is_ok() && t == *x
}

fn int<T: TryFrom<i64>>(v: i64) -> Result<T, Error> {
    T::try_from(v).map_err(|_| Error::Malformed)
}

macro_rules! optional_int {
    ($($t:ty),*) => {$(
        impl Slot for Option<$t> {
            fn get(&self) -> Result<Option<i64>, Error> {
                Ok(self.map(i64::from))
            }
            fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
                *self = v.map(int).transpose()?;
                Ok(())
            }
            fn blank(&mut self) {
                *self = None;
            }
            fn restores(&self, v: Option<i64>) -> bool {
                restores_copy(self, v)
            }
        }
    )*};
}
optional_int!(u32, u8);

impl Slot for Option<u64> {
    fn get(&self) -> Result<Option<i64>, Error> {
        // A counter beyond i64 cannot be a slot: the reading goes described.
        self.map(|v| i64::try_from(v).map_err(|_| Error::Encode))
            .transpose()
    }
    fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
        *self = v.map(int).transpose()?;
        Ok(())
    }
    fn blank(&mut self) {
        *self = None;
    }
    fn restores(&self, v: Option<i64>) -> bool {
        restores_copy(self, v)
    }
}

/// A field that is always present: a slot value of `None` is malformed.
struct Required<'a, T>(&'a mut T);

macro_rules! required_int {
    ($($t:ty),*) => {$(
        impl Slot for Required<'_, $t> {
            fn get(&self) -> Result<Option<i64>, Error> {
                Ok(Some(i64::from(*self.0)))
            }
            fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
                *self.0 = int(v.ok_or(Error::Malformed)?)?;
                Ok(())
            }
            fn blank(&mut self) {
                *self.0 = 0;
            }
            fn restores(&self, v: Option<i64>) -> bool {
                let mut t = *self.0;
                Required(&mut t).set(v).is_ok() && t == *self.0
            }
        }
    )*};
}
required_int!(u32, u16);

impl Slot for Option<Level> {
    fn get(&self) -> Result<Option<i64>, Error> {
        Ok(self.map(Level::raw))
    }
    fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
        *self = v.map(|v| int(v).map(Level::from_raw)).transpose()?;
        Ok(())
    }
    fn blank(&mut self) {
        *self = None;
    }
    fn restores(&self, v: Option<i64>) -> bool {
        restores_copy(self, v)
    }
}

impl Slot for Option<ErrorBits> {
    fn get(&self) -> Result<Option<i64>, Error> {
        Ok(self.map(|e| i64::from(e.0)))
    }
    fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
        *self = v.map(|v| int(v).map(ErrorBits)).transpose()?;
        Ok(())
    }
    fn blank(&mut self) {
        *self = None;
    }
    fn restores(&self, v: Option<i64>) -> bool {
        restores_copy(self, v)
    }
}

macro_rules! code_slot {
    ($($t:ty),*) => {$(
        impl Slot for Option<$t> {
            fn get(&self) -> Result<Option<i64>, Error> {
                Ok(self.map(|c| i64::from(c.raw())))
            }
            fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
                *self = v.map(|v| int(v).map(<$t>::from_raw)).transpose()?;
                Ok(())
            }
            fn blank(&mut self) {
                *self = None;
            }
            fn restores(&self, v: Option<i64>) -> bool {
                restores_copy(self, v)
            }
        }
    )*};
}
code_slot!(DeviceStatus, PrinterState, LinkStatus);

/// Enums without SNMP codes, as their variant index.
macro_rules! index_enum {
    ($t:ty: $($v:ident),+) => {
        impl IndexEnum for $t {
            const ALL: &'static [$t] = &[$(<$t>::$v),+];
        }
    };
}
trait IndexEnum: Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn index(self) -> i64 {
        Self::ALL.iter().position(|v| *v == self).unwrap_or(0) as i64
    }
    fn from_index(i: i64) -> Result<Self, Error> {
        usize::try_from(i)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or(Error::Malformed)
    }
}
index_enum!(Registration: Registered, NotRegistered, Unknown);
index_enum!(HookState: OnHook, OffHook, Unknown);
index_enum!(Occupancy: Empty, Idle, Occupied, Uplink, Unknown);

impl<T: IndexEnum> Slot for Required<'_, T> {
    fn get(&self) -> Result<Option<i64>, Error> {
        Ok(Some(self.0.index()))
    }
    fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
        *self.0 = T::from_index(v.ok_or(Error::Malformed)?)?;
        Ok(())
    }
    fn blank(&mut self) {
        *self.0 = T::ALL[0];
    }
    fn restores(&self, v: Option<i64>) -> bool {
        let mut t = *self.0;
        Required(&mut t).set(v).is_ok() && t == *self.0
    }
}

struct Indexed<'a, T>(&'a mut Option<T>);

impl<T: IndexEnum> Slot for Indexed<'_, T> {
    fn get(&self) -> Result<Option<i64>, Error> {
        Ok(self.0.map(T::index))
    }
    fn set(&mut self, v: Option<i64>) -> Result<(), Error> {
        *self.0 = v.map(T::from_index).transpose()?;
        Ok(())
    }
    fn blank(&mut self) {
        *self.0 = None;
    }
    fn restores(&self, v: Option<i64>) -> bool {
        let mut t = *self.0;
        Indexed(&mut t).set(v).is_ok() && t == *self.0
    }
}

/// Calls `f` with every slot of `reading`, in slot order. This is the one list of what is a
/// slot; everything not visited here is skeleton.
fn visit(
    reading: &mut Reading,
    f: &mut dyn FnMut(&mut dyn Slot) -> Result<(), Error>,
) -> Result<(), Error> {
    match reading {
        Reading::Printer(r) => visit_printer(r, f),
        Reading::Phone(r) => visit_phone(r, f),
        Reading::Dock(r) => visit_dock(r, f),
        Reading::NoResponse(_) => Ok(()),
    }
}

fn visit_printer(
    r: &mut PrinterReading,
    f: &mut dyn FnMut(&mut dyn Slot) -> Result<(), Error>,
) -> Result<(), Error> {
    f(&mut r.uptime_ticks)?;
    f(&mut r.status.device)?;
    f(&mut r.status.printer)?;
    f(&mut r.status.errors)?;
    for m in &mut r.markers {
        f(&mut Required(&mut m.life_count))?;
    }
    for s in &mut r.supplies {
        f(&mut s.level)?;
    }
    let c = &mut r.counters;
    for counter in [
        &mut c.total,
        &mut c.mono,
        &mut c.colour,
        &mut c.print,
        &mut c.copy,
        &mut c.scan,
        &mut c.fax,
        &mut c.duplex,
    ] {
        f(counter)?;
    }
    for t in &mut r.trays {
        f(&mut t.level)?;
        f(&mut t.status)?;
    }
    Ok(())
}

fn visit_phone(
    r: &mut PhoneReading,
    f: &mut dyn FnMut(&mut dyn Slot) -> Result<(), Error>,
) -> Result<(), Error> {
    f(&mut r.uptime_ticks)?;
    for l in &mut r.lines {
        f(&mut Required(&mut l.registration))?;
        f(&mut Indexed(&mut l.hook))?;
    }
    Ok(())
}

fn visit_dock(
    r: &mut DockReading,
    f: &mut dyn FnMut(&mut dyn Slot) -> Result<(), Error>,
) -> Result<(), Error> {
    f(&mut r.uptime_ticks)?;
    for s in &mut r.seats {
        f(&mut s.link)?;
        f(&mut s.speed_mbps)?;
        f(&mut s.last_change_ticks)?;
        f(&mut Required(&mut s.clients))?;
        f(&mut Required(&mut s.occupancy))?;
    }
    Ok(())
}

/// The slot values of `reading`.
///
/// # Errors
/// [`Error::Encode`] when a value is not a slot value (a counter beyond `i64`).
pub fn slots(reading: &Reading, out: &mut Slots) -> Result<(), Error> {
    // `visit` takes the reading mutably for `join`; reading values does not change it, but
    // the borrow needs a copy here (`expand` reads its own envelope's without one).
    slots_of(&mut reading.clone(), out)
}

fn slots_of(reading: &mut Reading, out: &mut Slots) -> Result<(), Error> {
    out.clear();
    visit(reading, &mut |s| {
        out.push(s.get()?).map_err(|_| Error::Encode)
    })
}

/// Writes `values` into the slots of `reading` (a skeleton or a description).
///
/// # Errors
/// [`Error::Malformed`] when there are more or fewer values than slots, or a value does not
/// fit its field.
pub fn join(reading: &mut Reading, values: &[Option<i64>]) -> Result<(), Error> {
    let mut it = values.iter();
    visit(reading, &mut |s| s.set(*it.next().ok_or(Error::Malformed)?))?;
    if it.next().is_some() {
        return Err(Error::Malformed);
    }
    Ok(())
}

/// Makes `skeleton` a copy of `reading` with every slot blanked, and `values` its slot values.
///
/// # Errors
/// [`Error::Encode`] when joining the two would not give `reading` back (a value outside what
/// a slot carries, or a field kept in a form the device's raw value does not restore): such a
/// reading is sent described.
pub fn split(reading: &Reading, skeleton: &mut Reading, values: &mut Slots) -> Result<(), Error> {
    *skeleton = reading.clone();
    split_in_place(skeleton, values)
}

/// [`split`] without a copy: `reading` becomes its skeleton. On an error it is partly
/// blanked and not to be used.
///
/// # Errors
/// As [`split`].
pub fn split_in_place(reading: &mut Reading, values: &mut Slots) -> Result<(), Error> {
    values.clear();
    visit(reading, &mut |s| {
        let v = s.get()?;
        if !s.restores(v) {
            return Err(Error::Encode);
        }
        values.push(v).map_err(|_| Error::Encode)?;
        s.blank();
        Ok(())
    })
}

/// What a compact reading refers to: the description's fingerprint, sequence number,
/// timestamp and slot values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base<'a> {
    /// [`fingerprint`] of the described payload.
    pub fingerprint: u32,
    /// Its `seq`.
    pub seq: u64,
    /// Its `timestamp_ms`.
    pub timestamp_ms: u64,
    /// Its slot values.
    pub slots: &'a [Option<i64>],
}

/// Encodes the compact reading of `seq`, `timestamp_ms` and `values` against `base` into
/// `buf` and returns the written prefix.
///
/// # Errors
/// [`Error::Encode`] when `values` has another length than the base's slots, and
/// [`Error::BufferTooSmall`] (never with [`MAX_COMPACT_LEN`] bytes).
pub fn encode_compact<'b>(
    base: &Base<'_>,
    seq: u64,
    timestamp_ms: u64,
    values: &[Option<i64>],
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], Error> {
    if values.len() != base.slots.len() {
        return Err(Error::Encode);
    }
    let mut w = Writer { buf, at: 0 };
    w.byte(FORMAT_VERSION)?;
    w.byte(COMPACT)?;
    w.bytes(&base.fingerprint.to_le_bytes())?;
    w.varint(zigzag(i128::from(seq) - i128::from(base.seq)))?;
    w.varint(zigzag(
        i128::from(timestamp_ms) - i128::from(base.timestamp_ms),
    ))?;
    w.varint(values.len() as u128)?;
    let bitmap_at = w.at;
    for _ in 0..values.len().div_ceil(8) {
        w.byte(0)?;
    }
    for (i, (v, b)) in values.iter().zip(base.slots).enumerate() {
        if v == b {
            continue;
        }
        w.buf[bitmap_at + i / 8] |= 1 << (i % 8);
        w.varint(change(*v, *b))?;
    }
    let n = w.at;
    Ok(&mut w.buf[..n])
}

/// A decoded compact reading, borrowing its changed values from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact<'a> {
    /// The description's [`fingerprint`].
    pub fingerprint: u32,
    seq_delta: i128,
    ts_delta: i128,
    count: usize,
    bitmap: &'a [u8],
    changes: &'a [u8],
}

impl Compact<'_> {
    /// How many slots the reading has (its description must have as many).
    pub fn slot_count(&self) -> usize {
        self.count
    }
}

/// Whether `bytes` is a compact reading (version 5, second byte [`COMPACT`]).
pub fn is_compact(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FORMAT_VERSION) && bytes.get(1) == Some(&COMPACT)
}

/// Decodes a compact reading's structure. Never panics, whatever the input; the values are
/// checked against a description by [`expand`].
///
/// # Errors
/// [`Error::Empty`], [`Error::UnsupportedVersion`], [`Error::Malformed`] (not a compact
/// reading, truncated, a bad varint, more slots than [`MAX_SLOTS`]) and
/// [`Error::TrailingBytes`].
pub fn decode_compact(bytes: &[u8]) -> Result<Compact<'_>, Error> {
    let first = *bytes.first().ok_or(Error::Empty)?;
    if first != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion(first));
    }
    let mut r = Reader { bytes, at: 1 };
    if r.byte()? != COMPACT {
        return Err(Error::Malformed);
    }
    let fp = r.take(4)?;
    let fingerprint = u32::from_le_bytes([fp[0], fp[1], fp[2], fp[3]]);
    let seq_delta = unzigzag(r.varint()?);
    let ts_delta = unzigzag(r.varint()?);
    let count = usize::try_from(r.varint()?).map_err(|_| Error::Malformed)?;
    if count > MAX_SLOTS {
        return Err(Error::Malformed);
    }
    let bitmap = r.take(count.div_ceil(8))?;
    if count % 8 != 0 && bitmap.last().is_some_and(|b| b >> (count % 8) != 0) {
        return Err(Error::Malformed);
    }
    let start = r.at;
    let changed: u32 = bitmap.iter().map(|b| b.count_ones()).sum();
    for _ in 0..changed {
        r.varint()?;
    }
    let changes = &bytes[start..r.at];
    if r.at != bytes.len() {
        return Err(Error::TrailingBytes(bytes.len() - r.at));
    }
    Ok(Compact {
        fingerprint,
        seq_delta,
        ts_delta,
        count,
        bitmap,
        changes,
    })
}

/// Turns `envelope`, the decoded description of `compact`, into the envelope the compact
/// reading stands for: its `seq`, `timestamp_ms` and slot values.
///
/// # Errors
/// [`Error::Malformed`] when the description is not one (not version 5, not exactly one
/// reading, another slot count) or a value does not fit: on an error `envelope` is not to be
/// used.
pub fn expand(compact: &Compact<'_>, envelope: &mut Envelope) -> Result<(), Error> {
    if envelope.version != FORMAT_VERSION || envelope.readings.len() != 1 {
        return Err(Error::Malformed);
    }
    let mut values = Slots::new();
    slots_of(&mut envelope.readings[0], &mut values).map_err(|_| Error::Malformed)?;
    if values.len() != compact.count {
        return Err(Error::Malformed);
    }
    let mut r = Reader {
        bytes: compact.changes,
        at: 0,
    };
    for (i, v) in values.iter_mut().enumerate() {
        if compact.bitmap[i / 8] & (1 << (i % 8)) == 0 {
            continue;
        }
        *v = changed(r.varint()?, *v)?;
    }
    join(&mut envelope.readings[0], &values)?;
    let seq = i128::from(envelope.seq) + compact.seq_delta;
    let ts = i128::from(envelope.timestamp_ms) + compact.ts_delta;
    envelope.seq = u64::try_from(seq).map_err(|_| Error::Malformed)?;
    envelope.timestamp_ms = u64::try_from(ts).map_err(|_| Error::Malformed)?;
    envelope.validate().map_err(|_| Error::Malformed)
}

/// A slot value as its difference to `base`: 0 for none, else zigzag + 1.
fn change(v: Option<i64>, base: Option<i64>) -> u128 {
    match v {
        None => 0,
        Some(v) => zigzag(i128::from(v) - i128::from(base.unwrap_or(0))) + 1,
    }
}

/// The slot value that [`change`] made `d` of against `base`.
fn changed(d: u128, base: Option<i64>) -> Result<Option<i64>, Error> {
    match d {
        0 => Ok(None),
        d => {
            let v = i128::from(base.unwrap_or(0)) + unzigzag(d - 1);
            Ok(Some(i64::try_from(v).map_err(|_| Error::Malformed)?))
        }
    }
}

/// Upper bound of [`pack_slots`]' output.
pub const MAX_PACKED_SLOTS_LEN: usize = 19 * MAX_SLOTS;

/// Packs slot values as a compact reading packs its changed ones (against no base): for a
/// sender that keeps its descriptions' values, a few bytes each.
///
/// # Errors
/// [`Error::BufferTooSmall`] (never with [`MAX_PACKED_SLOTS_LEN`] bytes).
pub fn pack_slots<'b>(values: &[Option<i64>], buf: &'b mut [u8]) -> Result<&'b mut [u8], Error> {
    let mut w = Writer { buf, at: 0 };
    for v in values {
        w.varint(change(*v, None))?;
    }
    let n = w.at;
    Ok(&mut w.buf[..n])
}

/// The slot values [`pack_slots`] packed into `bytes`.
///
/// # Errors
/// [`Error::Malformed`] when `bytes` is not such a packing (or holds more than [`MAX_SLOTS`]).
pub fn unpack_slots(bytes: &[u8], out: &mut Slots) -> Result<(), Error> {
    out.clear();
    let mut r = Reader { bytes, at: 0 };
    while r.at < bytes.len() {
        out.push(changed(r.varint()?, None)?)
            .map_err(|_| Error::Malformed)?;
    }
    Ok(())
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn byte(&mut self, b: u8) -> Result<(), Error> {
        let slot = self.buf.get_mut(self.at).ok_or(Error::BufferTooSmall)?;
        *slot = b;
        self.at += 1;
        Ok(())
    }
    fn bytes(&mut self, bs: &[u8]) -> Result<(), Error> {
        bs.iter().try_for_each(|b| self.byte(*b))
    }
    fn varint(&mut self, mut v: u128) -> Result<(), Error> {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                return self.byte(low);
            }
            self.byte(low | 0x80)?;
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.bytes.get(self.at).ok_or(Error::Malformed)?;
        self.at += 1;
        Ok(b)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).ok_or(Error::Malformed)?;
        let s = self.bytes.get(self.at..end).ok_or(Error::Malformed)?;
        self.at = end;
        Ok(s)
    }
    /// An unsigned LEB128 varint of at most 19 bytes (128 bits), in its shortest form.
    fn varint(&mut self) -> Result<u128, Error> {
        let mut v: u128 = 0;
        for i in 0..19 {
            let b = self.byte()?;
            let bits = u128::from(b & 0x7f);
            if i == 18 && bits > 0x3 {
                return Err(Error::Malformed);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(Error::Malformed);
                }
                return Ok(v);
            }
        }
        Err(Error::Malformed)
    }
}
