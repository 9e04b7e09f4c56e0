//! What happened between two consecutive readings of one device: pages printed, counter
//! events, cartridge replacements, seat occupancy. Pure functions of the two points; the
//! [`crate::ledger`] applies them to neighbours in time order.
//!
//! Counter rules (field guide §6.1, checked in this order):
//! 1. **Serial changed** (both known, different): a replaced device. No delta across it.
//! 2. **Counter went down**: for prtMarkerLifeCount (SNMP Counter32) a **wrap** when the old value
//!    was above 90 % of 2³², the new one below 10 %, and the wrapped difference is plausible;
//!    otherwise (and always for vendor INTEGER counters) a **reset**: 0 pages for the interval,
//!    the new value is the next baseline.
//! 3. **Implausible jump** (more than [`MAX_PAGES_PER_SECOND`] over the interval, e.g. a service
//!    engineer setting a read-write counter): a discontinuity, counted as a reset, 0 pages.
//! 4. Otherwise the difference. A gap (the device was silent for days) is not special: the
//!    lifetime counter carries the pages over it, attributed to the reading that ends the gap.

use devtel_protocol::{PrinterReading, Supply};
use serde::{Deserialize, Serialize};

/// Fastest believable print rate over an interval (the fastest production copiers run at about
/// 2.5 pages/s); anything above is a counter discontinuity, not printing.
pub const MAX_PAGES_PER_SECOND: u64 = 20;

/// A consumable whose level rises by at least this many percentage points between two polls
/// was replaced.
pub const REPLACEMENT_JUMP_PERCENT: u8 = 30;

/// The counters of one printer reading that consumption is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PagePoint {
    /// Poll time, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Hash of the serial number, when known.
    pub serial: Option<u64>,
    /// prtMarkerLifeCount of the first marker (Counter32).
    pub marker: Option<u32>,
    /// Vendor total (INTEGER).
    pub total: Option<u64>,
    /// Vendor mono (INTEGER).
    pub mono: Option<u64>,
    /// Vendor colour (INTEGER).
    pub colour: Option<u64>,
}

impl PagePoint {
    /// The point of a printer reading polled at `ts_ms`; `None` without any page counter.
    pub fn of(r: &PrinterReading, ts_ms: u64) -> Option<Self> {
        let p = PagePoint {
            ts_ms,
            serial: r.serial.as_ref().map(|s| fnv1a(s.as_bytes())),
            marker: r.life_count().map(|m| m.life_count),
            total: r.counters.total,
            mono: r.counters.mono,
            colour: r.counters.colour,
        };
        (p.marker.is_some() || p.total.is_some() || p.mono.is_some() || p.colour.is_some())
            .then_some(p)
    }
}

/// Pages and counter events between two points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageDelta {
    /// Total pages (vendor total where both points have it, else prtMarkerLifeCount).
    pub total: u64,
    /// Mono pages (vendor counter).
    pub mono: u64,
    /// Colour pages (vendor counter).
    pub colour: u64,
    /// A counter went down or jumped implausibly (1 or 0).
    pub reset: u64,
    /// prtMarkerLifeCount wrapped at 2³² (1 or 0).
    pub wrap: u64,
    /// The serial number changed: another device (1 or 0).
    pub serial_change: u64,
}

enum Step {
    Pages(u64),
    Wrap(u64),
    Reset,
}

fn step(prev: u64, next: u64, counter32: bool, max: u64) -> Step {
    if next >= prev {
        let d = next - prev;
        return if d <= max {
            Step::Pages(d)
        } else {
            Step::Reset
        };
    }
    const TWO32: u64 = 1 << 32;
    if counter32 && prev > TWO32 / 10 * 9 && next < TWO32 / 10 {
        let d = (TWO32 - prev) + next;
        if d <= max {
            return Step::Wrap(d);
        }
    }
    Step::Reset
}

/// Pages between `prev` and `next` (`next` later), by the rules in the module text.
pub fn pages(prev: &PagePoint, next: &PagePoint) -> PageDelta {
    let mut out = PageDelta::default();
    if let (Some(a), Some(b)) = (prev.serial, next.serial) {
        if a != b {
            out.serial_change = 1;
            return out;
        }
    }
    let secs = next.ts_ms.saturating_sub(prev.ts_ms).div_ceil(1000).max(1);
    let max = secs.saturating_mul(MAX_PAGES_PER_SECOND);
    let mut reset = false;
    let mut wrap = false;
    let mut apply = |a: Option<u64>, b: Option<u64>, counter32: bool| -> Option<u64> {
        let (a, b) = (a?, b?);
        Some(match step(a, b, counter32, max) {
            Step::Pages(d) => d,
            Step::Wrap(d) => {
                wrap = true;
                d
            }
            Step::Reset => {
                reset = true;
                0
            }
        })
    };
    let vendor_total = apply(prev.total, next.total, false);
    let marker = apply(prev.marker.map(u64::from), next.marker.map(u64::from), true);
    out.total = vendor_total.or(marker).unwrap_or(0);
    out.mono = apply(prev.mono, next.mono, false).unwrap_or(0);
    out.colour = apply(prev.colour, next.colour, false).unwrap_or(0);
    out.reset = u64::from(reset);
    out.wrap = u64::from(wrap && !reset);
    out
}

/// Levels of a printer's consumables (not waste receptacles) whose percentage is known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SupplyPoint {
    /// Poll time.
    pub ts_ms: u64,
    /// Serial hash.
    pub serial: Option<u64>,
    /// (prtMarkerSuppliesIndex, percent), in index order.
    pub levels: Vec<(u32, u8)>,
}

impl SupplyPoint {
    /// The point of a printer reading; `None` without a consumable with a known level.
    pub fn of(r: &PrinterReading, ts_ms: u64) -> Option<Self> {
        let mut levels: Vec<(u32, u8)> = r
            .supplies
            .iter()
            .filter(|s: &&Supply| !s.is_receptacle())
            .filter_map(|s| Some((s.index, s.level_percent()?)))
            .collect();
        levels.sort_unstable();
        levels.dedup_by_key(|(i, _)| *i);
        (!levels.is_empty()).then(|| SupplyPoint {
            ts_ms,
            serial: r.serial.as_ref().map(|s| fnv1a(s.as_bytes())),
            levels,
        })
    }
}

/// Supply indexes replaced between `prev` and `next`: the level rose by at least
/// [`REPLACEMENT_JUMP_PERCENT`] on the same device.
pub fn replacements(prev: &SupplyPoint, next: &SupplyPoint) -> Vec<u32> {
    if let (Some(a), Some(b)) = (prev.serial, next.serial) {
        if a != b {
            return Vec::new();
        }
    }
    next.levels
        .iter()
        .filter_map(|&(index, now)| {
            let (_, before) = prev.levels.iter().find(|(i, _)| *i == index)?;
            (now >= before.saturating_add(REPLACEMENT_JUMP_PERCENT)).then_some(index)
        })
        .collect()
}

/// Seats of a dock switch at one poll: occupied and watched (occupied + idle + empty; uplinks
/// and seats the switch could not tell are not watched). A switch that did not answer is a
/// point with nothing watched, so the last state is not held across an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SeatPoint {
    /// Poll time.
    pub ts_ms: u64,
    /// Seats with a laptop docked.
    pub occupied: u32,
    /// Seats whose state is known.
    pub watched: u32,
}

/// Stable 64-bit FNV-1a (serial numbers, collector names): the same on every run and machine.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts_s: u64, marker: Option<u32>, total: Option<u64>) -> PagePoint {
        PagePoint {
            ts_ms: ts_s * 1000,
            serial: Some(1),
            marker,
            total,
            mono: None,
            colour: None,
        }
    }

    #[test]
    fn plain_increase_and_first_reading() {
        let d = pages(&p(0, Some(100), Some(110)), &p(600, Some(150), Some(170)));
        assert_eq!((d.total, d.reset, d.wrap), (60, 0, 0), "vendor total wins");
        let d = pages(&p(0, Some(100), None), &p(600, Some(150), Some(170)));
        assert_eq!(d.total, 50, "vendor total only where both points have it");
    }

    #[test]
    fn counter32_wraps_only_near_the_top_and_when_plausible() {
        let top = u32::MAX - 99;
        let d = pages(&p(0, Some(top), None), &p(600, Some(400), None));
        assert_eq!((d.total, d.wrap, d.reset), (100 + 400, 1, 0));
        // A drop from the middle is a reset, billed 0.
        let d = pages(&p(0, Some(2_000_000_000), None), &p(600, Some(400), None));
        assert_eq!((d.total, d.wrap, d.reset), (0, 0, 1));
        // A wrap that would mean 1 M pages in 10 s is not believed.
        let d = pages(&p(0, Some(top), None), &p(10, Some(1_000_000), None));
        assert_eq!((d.total, d.reset), (0, 1));
    }

    #[test]
    fn vendor_integer_counters_never_wrap() {
        let d = pages(
            &p(0, None, Some(u64::from(u32::MAX) - 5)),
            &p(600, None, Some(3)),
        );
        assert_eq!((d.total, d.wrap, d.reset), (0, 0, 1));
    }

    #[test]
    fn serial_change_and_implausible_jumps_bill_nothing() {
        let mut b = p(600, Some(50), Some(50));
        b.serial = Some(2);
        let d = pages(&p(0, Some(100), Some(100)), &b);
        assert_eq!((d.total, d.serial_change), (0, 1));
        // 1 M pages in 10 minutes: a counter set by hand.
        let d = pages(&p(0, None, Some(100)), &p(600, None, Some(1_000_100)));
        assert_eq!((d.total, d.reset), (0, 1));
        // A week-long gap carries its pages.
        let d = pages(&p(0, None, Some(100)), &p(7 * 86_400, None, Some(20_100)));
        assert_eq!(d.total, 20_000);
    }

    #[test]
    fn replacement_is_a_jump_up_on_the_same_device() {
        let a = SupplyPoint {
            ts_ms: 0,
            serial: Some(1),
            levels: vec![(1, 5), (2, 60), (3, 40)],
        };
        let mut b = SupplyPoint {
            ts_ms: 1,
            serial: Some(1),
            levels: vec![(1, 100), (2, 70), (3, 38)],
        };
        assert_eq!(replacements(&a, &b), [1]);
        b.serial = Some(9);
        assert!(replacements(&a, &b).is_empty());
    }

    #[test]
    fn real_recordings_give_page_points() {
        // The Sharp MX-3570N recording: vendor total and prtMarkerLifeCount both present.
        let r = crate::testdata::printer("sharp");
        let point = PagePoint::of(&r, 0).unwrap();
        assert!(point.total.is_some() && point.marker.is_some());
        assert!(point.mono.is_some() && point.colour.is_some());
    }
}
