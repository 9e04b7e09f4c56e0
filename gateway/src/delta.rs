//! A byte delta of one payload against another: how the store keeps a reading without what it
//! repeats.
//!
//! Consecutive readings of a device are the same bytes but for a few fields (levels, counters,
//! status, uptime): model, serial, supply and tray descriptions, seat names come again in every
//! reading. The store keeps one *reference* payload per device and, for each envelope, the
//! delta of its payload against that reference; a new reference is written when the delta is
//! no longer small (descriptions changed). This works on the encoded bytes, so it needs no
//! knowledge of the reading kinds and holds for every wire version.
//!
//! Format: a sequence of operations, each a varint `(n << 2) | op`, with a cursor into the
//! reference that starts at 0:
//! - `COPY n` (op 0): the next `n` bytes of the reference (the cursor moves on by `n`);
//! - `INSERT n` (op 1): the `n` bytes that follow in the delta (the cursor moves on by `n` too:
//!   a changed field mostly has the length it had);
//! - `FORWARD n` / `BACK n` (op 2 / 3): the cursor moves by `n` (a field that got longer or
//!   shorter).
//!
//! [`apply`] never panics and never produces more than [`MAX_OUTPUT`] bytes, whatever the
//! delta; [`diff`] and [`apply`] round-trip exactly (property-tested).

use devtel_protocol::MAX_ENCODED_LEN;

/// The most bytes [`apply`] produces: the largest valid envelope.
pub const MAX_OUTPUT: usize = MAX_ENCODED_LEN;

/// Shortest run of equal bytes worth a `COPY` after a difference.
const MIN_MATCH: usize = 4;

/// Most changed bytes, and most bytes of shift, [`diff`] looks past in one step before it
/// searches the whole window.
const MAX_SUBSTITUTION: usize = 8;
const MAX_SHIFT: usize = 4;

/// How far around the cursor [`diff`] looks for the reference again after a difference.
const WINDOW: usize = 48;

const COPY: u64 = 0;
const INSERT: u64 = 1;
const FORWARD: u64 = 2;
const BACK: u64 = 3;

/// A delta that does not apply to its reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta ends inside an operation.
    #[error("delta truncated")]
    Truncated,
    /// A copy or a cursor move beyond the reference.
    #[error("delta reaches beyond its reference")]
    OutOfReference,
    /// The result would exceed [`MAX_OUTPUT`].
    #[error("delta result exceeds {MAX_OUTPUT} bytes")]
    TooLong,
}

/// The delta that turns `reference` into `target`.
pub fn diff(reference: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    diff_into(reference, target, &mut out);
    out
}

/// [`diff`] into `out` (cleared first), so that a caller can reuse one buffer.
pub fn diff_into(reference: &[u8], target: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (mut i, mut j) = (0usize, 0usize); // target position, reference cursor
    let mut literal_start = 0usize;
    while i < target.len() {
        let run = common_prefix(&target[i..], reference.get(j..).unwrap_or(&[]));
        if run >= MIN_MATCH || (run > 0 && i + run == target.len()) {
            literal(out, &target[literal_start..i]);
            op(out, COPY, run);
            i += run;
            j += run;
            literal_start = i;
            continue;
        }
        // A few changed bytes after which the reference continues, at most a few bytes
        // shifted (a counter, a level, a timestamp, a varint that grew): one search of a
        // small neighbourhood, where looking for the reference across the window would be
        // repeated for every changed byte. Checked first; it is by far the most common case.
        if let Some((d, shift)) = realign(reference, j, &target[i..]) {
            i += d;
            j += d;
            if shift != 0 {
                literal(out, &target[literal_start..i]);
                literal_start = i;
                op(
                    out,
                    if shift > 0 { FORWARD } else { BACK },
                    shift.unsigned_abs(),
                );
                j = j.saturating_add_signed(shift);
            }
            continue;
        }
        if let Some(k) = resync(reference, j, &target[i..]) {
            literal(out, &target[literal_start..i]);
            literal_start = i;
            if k > j {
                op(out, FORWARD, k - j);
            } else {
                op(out, BACK, j - k);
            }
            j = k;
            continue;
        }
        // A changed byte: part of the literal, and the cursor moves on with it.
        i += 1;
        j += 1;
    }
    literal(out, &target[literal_start..]);
}

/// The payload `delta` describes against `reference`.
///
/// # Errors
/// [`DeltaError`] for a delta that is not one of `reference`.
pub fn apply(reference: &[u8], delta: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let mut out = Vec::with_capacity(reference.len());
    let (mut at, mut j) = (0usize, 0usize); // delta position, reference cursor
    while at < delta.len() {
        let tag = varint(delta, &mut at)?;
        let n = usize::try_from(tag >> 2).map_err(|_| DeltaError::TooLong)?;
        match tag & 3 {
            COPY => {
                let end = j.checked_add(n).ok_or(DeltaError::OutOfReference)?;
                let bytes = reference.get(j..end).ok_or(DeltaError::OutOfReference)?;
                grow(&mut out, bytes)?;
                j = end;
            }
            INSERT => {
                let end = at.checked_add(n).ok_or(DeltaError::Truncated)?;
                let bytes = delta.get(at..end).ok_or(DeltaError::Truncated)?;
                grow(&mut out, bytes)?;
                at = end;
                j = j.saturating_add(n);
            }
            FORWARD => {
                j = j
                    .checked_add(n)
                    .filter(|j| *j <= reference.len())
                    .ok_or(DeltaError::OutOfReference)?;
            }
            _ => j = j.checked_sub(n).ok_or(DeltaError::OutOfReference)?,
        }
    }
    Ok(out)
}

fn grow(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), DeltaError> {
    if out.len() + bytes.len() > MAX_OUTPUT {
        return Err(DeltaError::TooLong);
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// How many leading bytes `a` and `b` share, compared eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut k = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            break;
        };
        let d = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if d != 0 {
            return k + (d.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    k + a[k..]
        .iter()
        .zip(&b[k..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// The nearest `(d, shift)` with `d <= MAX_SUBSTITUTION` and `|shift| <= MAX_SHIFT` such
/// that `rest` continues after its first `d` (changed) bytes with the reference at
/// `j + d + shift`, for [`MIN_MATCH`] bytes or all that remain. `(0, 0)` is excluded (the
/// caller saw no match there); a smaller `d` wins, then a smaller shift, forward first.
fn realign(reference: &[u8], j: usize, rest: &[u8]) -> Option<(usize, isize)> {
    for d in 0..=MAX_SUBSTITUTION.min(rest.len().saturating_sub(1)) {
        let after = &rest[d..];
        let want = &after[..after.len().min(MIN_MATCH)];
        // Compared as one word where a whole one is left (all but the payload's last bytes).
        let want_word = word(want);
        for shift in SHIFTS {
            if d == 0 && shift == 0 {
                continue;
            }
            let Some(at) = (j + d).checked_add_signed(shift) else {
                continue;
            };
            let found = match want_word {
                Some(w) => reference.get(at..at + MIN_MATCH).and_then(word) == Some(w),
                None => reference.get(at..at + want.len()) == Some(want),
            };
            if found {
                return Some((d, shift));
            }
        }
    }
    None
}

/// `bytes` as one little-endian word when it is [`MIN_MATCH`] long.
fn word(bytes: &[u8]) -> Option<u32> {
    <[u8; MIN_MATCH]>::try_from(bytes)
        .ok()
        .map(u32::from_le_bytes)
}

/// The shifts [`realign`] tries, nearest first.
const SHIFTS: [isize; 2 * MAX_SHIFT + 1] = {
    let mut out = [0isize; 2 * MAX_SHIFT + 1];
    let mut k = 1;
    while k <= MAX_SHIFT {
        out[2 * k - 1] = k as isize;
        out[2 * k] = -(k as isize);
        k += 1;
    }
    out
};

/// Where, within [`WINDOW`] of the cursor `j`, the reference continues with the next
/// [`MIN_MATCH`] bytes of `rest` (nearest first, forward before back at the same distance);
/// `None` when nowhere or at `j` itself. A run of changed bytes calls this once per byte, so
/// the window is searched with `memchr`'s vectorised substring search.
fn resync(reference: &[u8], j: usize, rest: &[u8]) -> Option<usize> {
    let probe = rest.get(..MIN_MATCH)?;
    let last = reference.len().checked_sub(MIN_MATCH)?; // the last position a match starts at
                                                        // Forward: positions j + 1 ..= min(last, j + WINDOW), the first match is the nearest.
    let forward_end = last.min(j.saturating_add(WINDOW));
    let forward = (j < forward_end)
        .then(|| memchr::memmem::find(&reference[j + 1..forward_end + MIN_MATCH], probe))
        .flatten()
        .map(|k| j + 1 + k);
    // Back: positions strictly nearer than the forward match, the last match is the nearest.
    let reach = forward.map_or(WINDOW, |k| k - j - 1);
    let (back_start, back_end) = (j.saturating_sub(reach), j.min(last + 1));
    let back = (back_start < back_end)
        .then(|| memchr::memmem::rfind(&reference[back_start..back_end - 1 + MIN_MATCH], probe))
        .flatten()
        .map(|k| back_start + k);
    back.or(forward)
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty() {
        op(out, INSERT, bytes.len());
        out.extend_from_slice(bytes);
    }
}

fn op(out: &mut Vec<u8>, kind: u64, n: usize) {
    put_varint(out, ((n as u64) << 2) | kind);
}

/// Appends `v` as a LEB128 varint (also the history spans' encoding, [`crate::span`]).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a LEB128 varint at `*at` and moves past it.
pub(crate) fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, DeltaError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(DeltaError::Truncated)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DeltaError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_changed_counter_costs_a_few_bytes() {
        let reference =
            b"model MX-3570 serial 12345 toner black 40% cyan 30% pages 0000120000".to_vec();
        let mut target = reference.clone();
        target[44] = b'3'; // black 40 -> 30
        let at = target.len() - 3;
        target[at] = b'7';
        let delta = diff(&reference, &target);
        assert!(delta.len() <= 12, "{} bytes: {delta:?}", delta.len());
        assert_eq!(apply(&reference, &delta).unwrap(), target);
        // Identical: one copy (a two-byte varint).
        assert_eq!(diff(&reference, &reference), [0x90, 0x02]); // 68 << 2
                                                                // Longer and shorter fields re-synchronise.
        let longer = [&reference[..20], b"-extra-", &reference[20..]].concat();
        assert!(diff(&reference, &longer).len() < 16);
        assert_eq!(
            apply(&reference, &diff(&reference, &longer)).unwrap(),
            longer
        );
        let shorter = [&reference[..20], &reference[30..]].concat();
        assert!(diff(&reference, &shorter).len() < 8);
        assert_eq!(
            apply(&reference, &diff(&reference, &shorter)).unwrap(),
            shorter
        );
    }

    #[test]
    fn a_delta_that_does_not_fit_its_reference_is_an_error() {
        assert_eq!(apply(b"abc", &[4 << 2]), Err(DeltaError::OutOfReference)); // copy 4
        assert_eq!(
            apply(b"abc", &[(2 << 2) | 1, b'x']),
            Err(DeltaError::Truncated)
        );
        assert_eq!(
            apply(b"abc", &[(1 << 2) | 3]),
            Err(DeltaError::OutOfReference)
        ); // back 1
        assert_eq!(
            apply(b"abc", &[(4 << 2) | 2]),
            Err(DeltaError::OutOfReference)
        ); // forward 4
        assert_eq!(apply(b"abc", &[0x80]), Err(DeltaError::Truncated));
        // Copies of the whole reference again and again stop at the bound.
        let reference = vec![7u8; 1024];
        let mut delta = Vec::new();
        for _ in 0..40 {
            op(&mut delta, COPY, 1024);
            op(&mut delta, BACK, 1024);
        }
        assert_eq!(apply(&reference, &delta), Err(DeltaError::TooLong));
        assert_eq!(apply(&[], &[]).unwrap(), Vec::<u8>::new());
    }

    proptest! {
        #[test]
        fn any_target_round_trips(
            reference in proptest::collection::vec(any::<u8>(), 0..600),
            target in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            prop_assert_eq!(apply(&reference, &diff(&reference, &target)).unwrap(), target);
        }

        #[test]
        fn edits_of_the_reference_round_trip_and_stay_small(
            reference in proptest::collection::vec(0u8..8, 64..600),
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..3, any::<u8>()), 1..6),
        ) {
            let mut target = reference.clone();
            for (at, kind, byte) in &edits {
                let i = at.index(target.len().max(1)).min(target.len().saturating_sub(1));
                match kind {
                    0 => target[i] = *byte,
                    1 => target.insert(i, *byte),
                    _ => { target.remove(i); }
                }
            }
            let delta = diff(&reference, &target);
            prop_assert_eq!(apply(&reference, &delta).unwrap(), target.clone());
            prop_assert!(delta.len() <= target.len() + 8);
        }

        #[test]
        fn garbage_deltas_never_panic(
            reference in proptest::collection::vec(any::<u8>(), 0..256),
            delta in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Ok(out) = apply(&reference, &delta) {
                prop_assert!(out.len() <= MAX_OUTPUT);
            }
        }
    }
}
