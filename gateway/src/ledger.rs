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

/// Supply levels are kept per day for this many days before the newest poll's day (the
/// device page's chart); older days are dropped.
pub const SUPPLY_LEVEL_DAYS: i64 = 93;

/// A reading's page counters with the key it was polled at: a meter read for billing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterRead {
    /// Where the reading sits in the device's series (poll time first).
    pub key: Key,
    /// Its counters.
    pub point: PagePoint,
}

/// Seat time within working hours in one hour of the day, summed over a month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatHours {
    /// Seat-milliseconds watched.
    pub watched_ms: i64,
    /// Seat-milliseconds occupied.
    pub occupied_ms: i64,
}

/// The consumables' levels of a device's last reading of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelsRead {
    /// The reading's key.
    pub key: Key,
    /// (prtMarkerSuppliesIndex, percent), in index order.
    pub levels: Vec<(u32, u8)>,
}

/// One device's history.
///
/// Besides the additive day figures it keeps, each a function of the *set* of readings (the
/// newest or oldest by key, whatever the arrival order): the last meter read of every local
/// month and the first one ever (the monthly report's start and end readings), the seat time
/// per hour of the day per month (occupancy by hour), and the last supply levels of each of
/// the last [`SUPPLY_LEVEL_DAYS`] days (the device's level chart).
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
    /// The newest meter read of each local month, by the month's first day.
    pub month_last_meter: BTreeMap<Date, MeterRead>,
    /// The oldest meter read of the device.
    pub first_meter: Option<MeterRead>,
    /// Seat time per (first day of the month, local hour of the day).
    pub seat_hours: BTreeMap<(Date, u8), SeatHours>,
    /// The newest supply levels of each day.
    pub day_levels: BTreeMap<Date, LevelsRead>,
}

/// The first day of `date`'s month.
pub fn month_of(date: Date) -> Date {
    date.first_of_month()
}

/// The history of a device as format 1 of the snapshots held it (before meter reads, seat
/// hours and day levels): read to carry closed days over a format change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceLedgerV1 {
    pages: Series<PagePoint>,
    supplies: Series<SupplyPoint>,
    seats: Series<SeatPoint>,
    days: BTreeMap<Date, DayFigures>,
    replaced: BTreeMap<(Date, u32), i64>,
    late: u64,
}

#[cfg(test)]
impl From<&DeviceLedger> for DeviceLedgerV1 {
    fn from(l: &DeviceLedger) -> Self {
        DeviceLedgerV1 {
            pages: l.pages.clone(),
            supplies: l.supplies.clone(),
            seats: l.seats.clone(),
            days: l.days.clone(),
            replaced: l.replaced.clone(),
            late: l.late,
        }
    }
}

impl From<DeviceLedgerV1> for DeviceLedger {
    fn from(v1: DeviceLedgerV1) -> Self {
        DeviceLedger {
            pages: v1.pages,
            supplies: v1.supplies,
            seats: v1.seats,
            days: v1.days,
            replaced: v1.replaced,
            late: v1.late,
            ..DeviceLedger::default()
        }
    }
}

impl DeviceLedger {
    /// Drops the day figures and replacement counts of the days before `first_kept` (figures
    /// retention; the points that place late readings are bounded by the late window).
    pub fn prune_days(&mut self, first_kept: Date) {
        self.days = self.days.split_off(&first_kept);
        self.replaced = self.replaced.split_off(&(first_kept, 0));
        // The month before the first kept one holds the first kept month's start reading.
        let first_month = month_of(first_kept);
        let keep_meters_from = first_month
            .checked_sub(jiff::Span::new().months(1))
            .unwrap_or(first_month);
        self.month_last_meter = self.month_last_meter.split_off(&keep_meters_from);
        self.seat_hours = self.seat_hours.split_off(&(first_month, 0));
    }

    /// Takes into this ledger, for the days before `first_exact`, what `old` holds (the
    /// figures of closed days when the raw readings behind them are gone), and merges the
    /// newest / oldest reads of both (each a subset of the same set of readings).
    pub fn carry_closed_days(&mut self, first_exact: Date, old: DeviceLedger) -> usize {
        let exact_days = self.days.split_off(&first_exact);
        let exact_replaced = self.replaced.split_off(&(first_exact, 0));
        self.days = old.days;
        self.replaced = old.replaced;
        self.days.retain(|d, _| *d < first_exact);
        self.replaced.retain(|(d, _), _| *d < first_exact);
        let carried = self.days.len();
        self.days.extend(exact_days);
        self.replaced.extend(exact_replaced);
        self.late = self.late.max(old.late);
        for (month, read) in old.month_last_meter {
            let e = self.month_last_meter.entry(month).or_insert(read);
            if read.key > e.key {
                *e = read;
            }
        }
        self.first_meter = match (self.first_meter, old.first_meter) {
            (Some(a), Some(b)) => Some(if b.key < a.key { b } else { a }),
            (a, b) => a.or(b),
        };
        // Seat time is a sum of pairs: whole months from the old ledger where the replay
        // lacks their start, the replay's otherwise.
        let exact_month = month_of(first_exact);
        let exact_hours = self.seat_hours.split_off(&(exact_month, 0));
        self.seat_hours = old.seat_hours;
        self.seat_hours.retain(|(m, _), _| *m < exact_month);
        self.seat_hours.extend(exact_hours);
        for (day, read) in old.day_levels {
            let e = self.day_levels.entry(day).or_insert_with(|| read.clone());
            if read.key > e.key {
                *e = read;
            }
        }
        carried
    }

    /// The meter reads that bound the local month starting at `month` (its first day): the
    /// newest read before the month (else the device's first read, when that lies in the
    /// month), and the month's newest read. `None` without a read in the month.
    pub fn month_meters(&self, month: Date) -> Option<(MeterRead, MeterRead)> {
        let end = *self.month_last_meter.get(&month)?;
        let before = self
            .month_last_meter
            .range(..month)
            .next_back()
            .map(|(_, r)| *r);
        let start = before.or(self.first_meter)?;
        Some((start, end))
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
                    let read = MeterRead { key, point };
                    let last = self
                        .month_last_meter
                        .entry(month_of(cal.date(ts)))
                        .or_insert(read);
                    if key > last.key {
                        *last = read;
                    }
                    if self.first_meter.is_none_or(|f| key < f.key) {
                        self.first_meter = Some(read);
                    }
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
                    let day = cal.date(ts);
                    let newest = self.day_levels.last_key_value().map(|(d, _)| *d);
                    let recent = newest.is_none_or(|n| {
                        n.checked_sub(jiff::Span::new().days(SUPPLY_LEVEL_DAYS))
                            .is_ok_and(|first| day >= first)
                    });
                    if recent {
                        let read = LevelsRead {
                            key,
                            levels: point.levels.clone(),
                        };
                        match self.day_levels.entry(day) {
                            std::collections::btree_map::Entry::Vacant(v) => {
                                v.insert(read);
                            }
                            std::collections::btree_map::Entry::Occupied(mut o) => {
                                if key > o.get().key {
                                    o.insert(read);
                                }
                            }
                        }
                        let newest = self.day_levels.last_key_value().map(|(d, _)| *d);
                        if let Some(Ok(first)) =
                            newest.map(|n| n.checked_sub(jiff::Span::new().days(SUPPLY_LEVEL_DAYS)))
                        {
                            if self
                                .day_levels
                                .first_key_value()
                                .is_some_and(|(d, _)| *d < first)
                            {
                                self.day_levels = self.day_levels.split_off(&first);
                            }
                        }
                    }
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
        let hours = &mut self.seat_hours;
        let cal = &settings.calendar;
        let hold = settings.max_hold_ms;
        self.seats
            .insert(key, point, settings.late_window_ms, |sign, a, b| {
                let end = b.ts_ms.min(a.ts_ms.saturating_add(hold));
                cal.working_overlap_hours(a.ts_ms, end, |date, hour, ms| {
                    let watched = sign * i64::from(a.watched) * ms as i64;
                    let occupied = sign * i64::from(a.occupied) * ms as i64;
                    let f = days.entry(date).or_default();
                    f.seat_ms_watched += watched;
                    f.seat_ms_occupied += occupied;
                    let key = (month_of(date), hour);
                    let h = hours.entry(key).or_default();
                    h.watched_ms += watched;
                    h.occupied_ms += occupied;
                    if *h == SeatHours::default() {
                        hours.remove(&key);
                    }
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
            // Meter reads: the newest of each month and the oldest, whatever the order.
            let counted: Vec<&(Key, Reading)> = delivery.iter()
                .filter(|(_, r)| matches!(r, Reading::Printer(_))).collect();
            let mut newest: BTreeMap<Date, Key> = BTreeMap::new();
            for (key, _) in &counted {
                let e = newest.entry(month_of(cal.date(key.0))).or_insert(*key);
                *e = (*e).max(*key);
            }
            let held: BTreeMap<Date, Key> =
                ledger.month_last_meter.iter().map(|(m, r)| (*m, r.key)).collect();
            prop_assert_eq!(held, newest);
            prop_assert_eq!(
                ledger.first_meter.map(|r| r.key),
                counted.iter().map(|(k, _)| *k).min()
            );
        }
    }

    #[test]
    fn month_meters_are_the_newest_read_before_and_in_the_month() {
        let settings = LedgerSettings::default();
        let ms = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64;
        let reads = [
            ("2026-10-30T08:00:00Z", 1_000u64),
            ("2026-10-31T23:00:00Z", 1_200),
            ("2026-11-05T09:00:00Z", 1_500),
            ("2026-11-30T17:00:00Z", 2_100),
        ];
        let mut l = DeviceLedger::default();
        for (i, (at, mono)) in reads.iter().enumerate().rev() {
            let s = Sim {
                serial: 1,
                marker: *mono as u32,
                mono: *mono,
                colour: 0,
                toner: 50,
            };
            l.record(&settings, (ms(at), 1, i as u64, 0), &printer(&s));
        }
        let month = |s: &str| s.parse::<Date>().unwrap();
        let (start, end) = l.month_meters(month("2026-11-01")).unwrap();
        assert_eq!(
            (start.key.0, start.point.mono),
            (ms(reads[1].0), Some(1_200))
        );
        assert_eq!((end.key.0, end.point.mono), (ms(reads[3].0), Some(2_100)));
        // The month's pages are the difference of the two.
        let nov = l.sum(month("2026-11-01"), month("2026-11-30"));
        assert_eq!(nov.pages_mono, 900);
        // The device's first month starts at its first read.
        let (start, end) = l.month_meters(month("2026-10-01")).unwrap();
        assert_eq!(
            (start.point.mono, end.point.mono),
            (Some(1_000), Some(1_200))
        );
        assert!(l.month_meters(month("2026-12-01")).is_none());
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
        // By hour: 09:00–10:55 UTC, the same totals, and the same whatever the order.
        assert_eq!(forward.seat_hours, backward.seat_hours);
        let hours: Vec<u8> = forward.seat_hours.keys().map(|(_, h)| *h).collect();
        assert_eq!(hours, [9, 10]);
        let occupied_by_hour: i64 = forward.seat_hours.values().map(|h| h.occupied_ms).sum();
        assert_eq!(occupied_by_hour, occupied);
        let first_hour = forward.seat_hours.values().next().unwrap();
        assert_eq!(first_hour.watched_ms, 12 * 10 * 300_000);
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
