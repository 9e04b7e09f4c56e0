//! Per-device history figures by local day: pages, counter events, cartridge replacements,
//! availability, phone line registration and dock occupancy. I/O-free and deterministic.
//!
//! # Why the result does not depend on arrival order
//! Figures that come from *pairs* of consecutive readings (page deltas, replacements, seat
//! occupancy) are kept per device as a time-ordered series. Inserting a reading between two
//! neighbours takes back the pair they formed and adds the two new pairs, so the figures are
//! always those of the sorted series, whatever order the readings arrived in. Figures that
//! come from single readings (polls, availability, line registration) are plain sums. Together
//! with the gateway's delivery dedup, the figures are a function of the *set* of readings: a
//! redelivery or a replica that saw the same readings in another order gets the same numbers.
//!
//! # Bounded memory
//! A series keeps the points of the last [`LedgerSettings::late_window_ms`] before its newest
//! point, plus one baseline before that. A reading older than the baseline arrives too late to
//! be placed: it still counts as a poll, but its pair figures stay with the interval that
//! already covers it (the lifetime counters make the page total the same; only the day the
//! pages are attributed to can differ). Such readings are counted as `late`.

use std::collections::{BTreeMap, VecDeque};
use std::ops::AddAssign;

use devtel_protocol::{Health, Reading};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::meter::{self, PagePoint, SeatPoint, SupplyPoint};

/// Where a reading sits in a device's series: poll time, then the envelope's identity, so two
/// distinct readings never share a key and the order is the same on every replica.
pub type Key = (u64, u64, u64, u64);

/// Settings of the ledger.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// Local days and working hours.
    pub calendar: Calendar,
    /// How far behind a device's newest reading a reading may arrive and still be placed.
    pub late_window_ms: u64,
    /// A dock seat's state is held for at most this long after a poll (a missed poll does not
    /// make a seat occupied for the rest of the day).
    pub max_hold_ms: u64,
    /// Day figures are kept for this many days before the newest poll's day (see
    /// [`DeviceLedger::prune_days`]).
    pub figures_retention_days: u32,
}

/// Default of [`LedgerSettings::figures_retention_days`]: ten years, the retention of
/// accounting records (cost allocation is built on the day figures).
pub const DEFAULT_FIGURES_RETENTION_DAYS: u32 = 3653;

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            calendar: Calendar::utc_office_hours(),
            late_window_ms: 3 * 86_400_000,
            max_hold_ms: 15 * 60_000,
            figures_retention_days: DEFAULT_FIGURES_RETENTION_DAYS,
        }
    }
}

/// One device's figures on one local day. Signed so a taken-back pair can be subtracted; every
/// field is ≥ 0 once all pairs are in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// Pages (vendor total, else prtMarkerLifeCount).
    pub pages_total: i64,
    /// Mono pages where the device counts them.
    pub pages_mono: i64,
    /// Colour pages where the device counts them.
    pub pages_colour: i64,
    /// Counter resets and implausible jumps (billed as 0 pages).
    pub counter_resets: i64,
    /// Counter32 wraps (billed correctly).
    pub counter_wraps: i64,
    /// Serial number changes (device replaced; no delta across).
    pub serial_changes: i64,
    /// Consumables replaced (level jumped up).
    pub cartridges_replaced: i64,
    /// Polls recorded.
    pub polls: i64,
    /// Polls where the device answered and was not in an error condition.
    pub polls_available: i64,
    /// Phone lines seen over all polls.
    pub line_polls: i64,
    /// …of which registered.
    pub line_polls_registered: i64,
    /// Seat-milliseconds watched within working hours.
    pub seat_ms_watched: i64,
    /// Seat-milliseconds occupied within working hours.
    pub seat_ms_occupied: i64,
}

impl AddAssign<&DayFigures> for DayFigures {
    fn add_assign(&mut self, o: &DayFigures) {
        self.pages_total += o.pages_total;
        self.pages_mono += o.pages_mono;
        self.pages_colour += o.pages_colour;
        self.counter_resets += o.counter_resets;
        self.counter_wraps += o.counter_wraps;
        self.serial_changes += o.serial_changes;
        self.cartridges_replaced += o.cartridges_replaced;
        self.polls += o.polls;
        self.polls_available += o.polls_available;
        self.line_polls += o.line_polls;
        self.line_polls_registered += o.line_polls_registered;
        self.seat_ms_watched += o.seat_ms_watched;
        self.seat_ms_occupied += o.seat_ms_occupied;
    }
}

/// A time-ordered series of points with a bounded past. Points arrive almost always in
/// order, so they live in a ring buffer: the newest is appended, the oldest pruned from the
/// front, and a late one is placed by binary search.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Series<P> {
    points: VecDeque<(Key, P)>,
    pruned: bool,
}

impl<P> Default for Series<P> {
    fn default() -> Self {
        Series {
            points: VecDeque::new(),
            pruned: false,
        }
    }
}

impl<P> Series<P> {
    /// Inserts `point` at `key`, calling `pair(sign, prev, next)` for the pair it splits (−1)
    /// and the pairs it forms (+1). False when the key is present or older than the baseline.
    fn insert(
        &mut self,
        key: Key,
        point: P,
        window_ms: u64,
        mut pair: impl FnMut(i64, &P, &P),
    ) -> bool {
        let at = match self.points.back() {
            // The common case: the device's newest reading.
            Some((last, _)) if key > *last => self.points.len(),
            None => 0,
            Some(_) => match self.points.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(_) => return false,
                Err(0) if self.pruned => return false, // older than the baseline
                Err(at) => at,
            },
        };
        let prev = at
            .checked_sub(1)
            .and_then(|i| self.points.get(i))
            .map(|(_, p)| p);
        let next = self.points.get(at).map(|(_, p)| p);
        if let (Some(a), Some(b)) = (prev, next) {
            pair(-1, a, b);
        }
        if let Some(a) = prev {
            pair(1, a, &point);
        }
        if let Some(b) = next {
            pair(1, &point, b);
        }
        self.points.insert(at, (key, point));
        // Keep one baseline older than the window before the newest point.
        let newest = self.points.back().map_or(0, |(k, _)| k.0);
        while self
            .points
            .get(1)
            .is_some_and(|(second, _)| second.0.saturating_add(window_ms) < newest)
        {
            self.points.pop_front();
            self.pruned = true;
        }
        true
    }

    fn len(&self) -> usize {
        self.points.len()
    }
}

/// One device's history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceLedger {
    pages: Series<PagePoint>,
    supplies: Series<SupplyPoint>,
    seats: Series<SeatPoint>,
    /// Figures per local day.
    pub days: BTreeMap<Date, DayFigures>,
    /// Replacements per (day, supply index).
    pub replaced: BTreeMap<(Date, u32), i64>,
    /// Readings that arrived too late to be placed in a series.
    pub late: u64,
}

impl DeviceLedger {
    /// Drops the day figures and replacement counts of the days before `first_kept` (figures
    /// retention; the points that place late readings are bounded by the late window).
    pub fn prune_days(&mut self, first_kept: Date) {
        self.days = self.days.split_off(&first_kept);
        self.replaced = self.replaced.split_off(&(first_kept, 0));
    }

    /// Points held in memory (for sizing).
    pub fn points(&self) -> usize {
        self.pages.len() + self.supplies.len() + self.seats.len()
    }

    /// Sum of the days in `[from, to]`.
    pub fn sum(&self, from: Date, to: Date) -> DayFigures {
        let mut out = DayFigures::default();
        for (_, f) in self.days.range(from..=to) {
            out += f;
        }
        out
    }

    /// Records one distinct reading polled at `key.0`.
    pub fn record(&mut self, settings: &LedgerSettings, key: Key, reading: &Reading) {
        let cal = &settings.calendar;
        let ts = key.0;
        let window = settings.late_window_ms;
        let day = self.days.entry(cal.date(ts)).or_default();
        day.polls += 1;
        let (available, lines) = match reading {
            Reading::NoResponse(_) => (false, None),
            Reading::Printer(r) => (r.status.health() != Health::Error, None),
            Reading::Phone(p) => (true, Some(&p.lines)),
            Reading::Dock(_) => (true, None),
        };
        day.polls_available += i64::from(available);
        if let Some(lines) = lines {
            day.line_polls += lines.len() as i64;
            day.line_polls_registered += lines
                .iter()
                .filter(|l| l.registration == devtel_protocol::Registration::Registered)
                .count() as i64;
        }
        let mut placed = true;
        let days = &mut self.days;
        match reading {
            Reading::Printer(r) => {
                if let Some(point) = PagePoint::of(r, ts) {
                    placed &= self.pages.insert(key, point, window, |sign, a, b| {
                        let d = meter::pages(a, b);
                        let f = days.entry(cal.date(b.ts_ms)).or_default();
                        f.pages_total += sign * d.total as i64;
                        f.pages_mono += sign * d.mono as i64;
                        f.pages_colour += sign * d.colour as i64;
                        f.counter_resets += sign * d.reset as i64;
                        f.counter_wraps += sign * d.wrap as i64;
                        f.serial_changes += sign * d.serial_change as i64;
                    });
                }
                if let Some(point) = SupplyPoint::of(r, ts) {
                    let replaced = &mut self.replaced;
                    placed &= self.supplies.insert(key, point, window, |sign, a, b| {
                        let date = cal.date(b.ts_ms);
                        for index in meter::replacements(a, b) {
                            days.entry(date).or_default().cartridges_replaced += sign;
                            // A taken-back pair leaves no zero entry behind.
                            let n = replaced.entry((date, index)).or_default();
                            *n += sign;
                            if *n == 0 {
                                replaced.remove(&(date, index));
                            }
                        }
                    });
                }
            }
            Reading::Dock(d) => {
                let (occupied, idle, empty, _) = d.tally();
                let point = SeatPoint {
                    ts_ms: ts,
                    occupied: occupied as u32,
                    watched: (occupied + idle + empty) as u32,
                };
                placed &= self.insert_seats(settings, key, point);
            }
            Reading::NoResponse(n) if n.kind == devtel_protocol::DeviceKind::Dock => {
                let point = SeatPoint {
                    ts_ms: ts,
                    occupied: 0,
                    watched: 0,
                };
                placed &= self.insert_seats(settings, key, point);
            }
            _ => {}
        }
        if !placed {
            self.late += 1;
        }
    }

    fn insert_seats(&mut self, settings: &LedgerSettings, key: Key, point: SeatPoint) -> bool {
        let days = &mut self.days;
        let cal = &settings.calendar;
        let hold = settings.max_hold_ms;
        self.seats
            .insert(key, point, settings.late_window_ms, |sign, a, b| {
                let end = b.ts_ms.min(a.ts_ms.saturating_add(hold));
                cal.working_overlap(a.ts_ms, end, |date, ms| {
                    let f = days.entry(date).or_default();
                    f.seat_ms_watched += sign * i64::from(a.watched) * ms as i64;
                    f.seat_ms_occupied += sign * i64::from(a.occupied) * ms as i64;
                });
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::{
        Capacity, DeviceKind, DeviceStatus, Level, NoResponse, NoResponseCause, PrinterReading,
        PrinterStatus, Supply,
    };
    use proptest::prelude::*;

    /// One step of a simulated copier, with what really happened.
    #[derive(Debug, Clone)]
    enum Event {
        Print(u32, u32),
        Reset,
        Replace,
        Silent,
        NewToner,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => (0u32..400, 0u32..200).prop_map(|(m, c)| Event::Print(m, c)),
            1 => Just(Event::Reset),
            1 => Just(Event::Replace),
            1 => Just(Event::Silent),
            1 => Just(Event::NewToner),
        ]
    }

    struct Sim {
        serial: u32,
        marker: u32,
        mono: u64,
        colour: u64,
        toner: u8,
    }

    fn printer(s: &Sim) -> Reading {
        let mut r = PrinterReading {
            device: "p".try_into().unwrap(),
            unit: "u".try_into().unwrap(),
            serial: Some(format!("S{}", s.serial).as_str().try_into().unwrap()),
            status: PrinterStatus {
                device: Some(DeviceStatus::Running),
                ..PrinterStatus::default()
            },
            ..PrinterReading::default()
        };
        r.markers
            .push(devtel_protocol::MarkerCounter {
                index: 1,
                unit: None,
                life_count: s.marker,
            })
            .unwrap();
        r.counters.mono = Some(s.mono);
        r.counters.colour = Some(s.colour);
        r.supplies
            .push(Supply {
                index: 1,
                kind: None,
                class: None,
                unit: None,
                colour: None,
                description: "Black".try_into().unwrap(),
                max_capacity: Some(Capacity::Value(100)),
                level: Some(Level::Value(u32::from(s.toner))),
            })
            .unwrap();
        Reading::Printer(r)
    }

    /// Runs events; returns the readings with their keys and, per day, the true figures.
    fn simulate(
        start_marker: u32,
        steps: &[(u64, Event)],
        cal: &Calendar,
    ) -> (Vec<(Key, Reading)>, BTreeMap<Date, DayFigures>) {
        let mut s = Sim {
            serial: 1,
            marker: start_marker,
            mono: 1000,
            colour: 500,
            toner: 90,
        };
        let mut truth: BTreeMap<Date, DayFigures> = BTreeMap::new();
        let mut out = Vec::new();
        let mut ts = 1_790_000_000_000u64;
        for (seq, (gap_s, e)) in steps.iter().enumerate() {
            ts += gap_s * 1000;
            let day = truth.entry(cal.date(ts)).or_default();
            day.polls += 1;
            let reading = match e {
                Event::Silent => Reading::NoResponse(NoResponse {
                    device: "p".try_into().unwrap(),
                    unit: "u".try_into().unwrap(),
                    kind: DeviceKind::Copier,
                    cause: NoResponseCause::Timeout,
                }),
                _ => {
                    match e {
                        Event::Print(m, c) => {
                            s.marker = s.marker.wrapping_add(m + c);
                            s.mono += u64::from(*m);
                            s.colour += u64::from(*c);
                            day.pages_total += i64::from(m + c);
                            day.pages_mono += i64::from(*m);
                            day.pages_colour += i64::from(*c);
                            if s.marker < m + c && !out.is_empty() {
                                day.counter_wraps += 1;
                            }
                            s.toner = s.toner.saturating_sub((m / 100) as u8);
                        }
                        Event::Reset if s.mono >= 2 && s.colour >= 2 && s.marker >= 2 => {
                            s.mono /= 2;
                            s.colour /= 2;
                            s.marker /= 2;
                            day.counter_resets += 1;
                        }
                        Event::Replace => {
                            s.serial += 1;
                            s.mono = 7;
                            s.colour = 3;
                            s.marker = 10;
                            day.serial_changes += 1;
                        }
                        Event::NewToner => {
                            if s.toner <= 60 {
                                day.cartridges_replaced += 1;
                                s.toner = 100;
                            }
                        }
                        Event::Reset | Event::Silent => {}
                    }
                    day.polls_available += 1;
                    printer(&s)
                }
            };
            out.push(((ts, 1, seq as u64, 7), reading));
        }
        // The first reading has no predecessor: it bills nothing and detects nothing.
        (out, truth)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random copier histories with resets, Counter32 wraps, device replacements, silent
        /// polls and toner changes, delivered shuffled and with duplicates: the ledger's figures
        /// per day equal what really happened.
        #[test]
        fn any_order_with_repeats_gives_the_true_figures(
            near_wrap in any::<bool>(),
            steps in proptest::collection::vec((60u64..3_600, event()), 1..60),
            order in proptest::collection::vec(any::<u32>(), 60),
            repeats in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
        ) {
            let settings = LedgerSettings::default();
            let cal = &settings.calendar;
            let start = if near_wrap { u32::MAX - 2_000 } else { 5_000 };
            // The first step only sets the baseline.
            let mut steps = steps;
            if let Some(first) = steps.first_mut() { first.1 = Event::Print(0, 0); }
            let (readings, truth) = simulate(start, &steps, cal);
            let delivery: Vec<(Key, Reading)> = readings;
            // Shuffled, then repeats anywhere.
            let n = delivery.len();
            let mut ranked: Vec<(u32, (Key, Reading))> =
                order.iter().copied().zip(delivery).collect();
            ranked.sort_by_key(|(rank, _)| *rank);
            let mut delivery: Vec<(Key, Reading)> = ranked.into_iter().map(|(_, r)| r).collect();
            for (i, r) in repeats.iter().enumerate() {
                let pick = delivery[r.index(n)].clone();
                delivery.insert((i * 7) % delivery.len(), pick);
            }
            let mut seen = std::collections::BTreeSet::new();
            let mut ledger = DeviceLedger::default();
            for (key, reading) in &delivery {
                if seen.insert(*key) {
                    ledger.record(&settings, *key, reading);
                }
            }
            prop_assert_eq!(ledger.late, 0);
            let got: BTreeMap<Date, DayFigures> = ledger.days.iter()
                .filter(|(_, f)| **f != DayFigures::default())
                .map(|(d, f)| (*d, *f)).collect();
            let want: BTreeMap<Date, DayFigures> = truth.into_iter()
                .filter(|(_, f)| *f != DayFigures::default()).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// The reference for seats: sort, then sum every consecutive pair.
    #[test]
    fn seat_hours_are_the_sorted_series_whatever_the_order() {
        let settings = LedgerSettings::default();
        // Monday 2026-11-23, 09:00 UTC on; polls every 5 min, one outage.
        let t0 = 1_795_424_400_000u64;
        let mut points = Vec::new();
        for i in 0..24u64 {
            let occupied = (i % 5) as u32;
            points.push((t0 + i * 300_000, occupied, 10u32));
        }
        let dock = |occupied: u32, watched: u32| crate::testdata::dock("u", occupied, watched);
        let mut forward = DeviceLedger::default();
        let mut backward = DeviceLedger::default();
        for (i, (ts, o, w)) in points.iter().enumerate() {
            forward.record(&settings, (*ts, 1, i as u64, 0), &dock(*o, *w));
        }
        for (i, (ts, o, w)) in points.iter().enumerate().rev() {
            backward.record(&settings, (*ts, 1, i as u64, 0), &dock(*o, *w));
        }
        assert_eq!(forward.days, backward.days);
        let f = forward.days.values().next().unwrap();
        // 23 intervals of 5 min, occupied 0,1,2,3,4,0,1,... seats.
        let occupied: i64 = points[..23].iter().map(|p| i64::from(p.1)).sum::<i64>() * 300_000;
        assert_eq!(f.seat_ms_occupied, occupied);
        assert_eq!(f.seat_ms_watched, 23 * 10 * 300_000);
    }

    #[test]
    fn a_reading_older_than_the_window_is_late_but_counted_as_a_poll() {
        let settings = LedgerSettings::default();
        let s = Sim {
            serial: 1,
            marker: 100,
            mono: 10,
            colour: 0,
            toner: 50,
        };
        let mut l = DeviceLedger::default();
        let day = 86_400_000;
        for i in 0..6u64 {
            l.record(
                &settings,
                (1_790_000_000_000 + i * day, 1, i, 0),
                &printer(&s),
            );
        }
        l.record(&settings, (1_790_000_000_000 + 500, 1, 99, 0), &printer(&s));
        assert_eq!(l.late, 1);
        assert_eq!(l.days.values().map(|d| d.polls).sum::<i64>(), 7);
        assert!(l.points() <= 2 * 5, "pruned to the window");
    }
}
