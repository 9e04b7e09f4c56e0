//! The monthly cost-allocation report: per cost centre (a unit's own `cost_centre`, else its
//! nearest ancestor's), its units and their copiers with the meter reads that bound the
//! month, pages, cost and the month's availability against the SLA target. Built from the
//! aggregator's figures only, so the same readings give the same report (after a restart, on
//! a replica). Pure; [`csv`] writes it in the dialect German Excel opens.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::Serialize;

use crate::aggregate::{Aggregator, AvailabilityDoc, CounterEvents, PageFigures};
use crate::ledger::{DayFigures, MeterRead};
use crate::pricing::{cost_cents, PriceSource, Prices, CURRENCY};

/// The report of one month.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MonthlyReport {
    /// `YYYY-MM`.
    pub month: String,
    /// First local day.
    pub from: String,
    /// Last local day covered: the month's last, or `as_of` while the month runs.
    pub to: String,
    /// Whether the month is over (`as_of` is later).
    pub complete: bool,
    /// The local date of the newest poll.
    pub as_of: String,
    /// IANA time zone of the days and meter read times.
    pub timezone: String,
    /// Currency of every `*_cents`.
    pub currency: &'static str,
    /// The availability target.
    pub sla_target_percent: f64,
    /// All copiers' pages.
    pub pages: PageFigures,
    /// All copiers' cost (sum of the device lines), cents.
    pub cost_cents: i64,
    /// Copiers that reported in the month but have no price (their cost is 0 in the sums).
    pub devices_without_price: usize,
    /// Per cost centre, sorted (`null` last: units without a cost centre up their lineage).
    pub cost_centres: Vec<CostCentreReport>,
    /// Every unit with its figures rolled up over its descendants (what `/api/consumption`
    /// gives for the same month), and its availability.
    pub units: Vec<UnitRollup>,
}

/// One cost centre.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostCentreReport {
    /// The cost centre; `null` for units that have none.
    pub cost_centre: Option<String>,
    /// Pages of its copiers.
    pub pages: PageFigures,
    /// Cost of its copiers, cents.
    pub cost_cents: i64,
    /// Its units that have copiers directly in them, in hierarchy order.
    pub units: Vec<UnitLines>,
}

/// A unit's own copiers (not its descendants').
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitLines {
    /// Unit id.
    pub unit: String,
    /// Display name.
    pub name: Option<String>,
    /// Root first.
    pub path: Vec<String>,
    /// Pages of the copiers directly in it.
    pub pages: PageFigures,
    /// Their cost, cents.
    pub cost_cents: i64,
    /// The month's availability of the unit (with descendants, every device kind).
    pub availability: AvailabilityDoc,
    /// Its copiers.
    pub devices: Vec<DeviceLine>,
}

/// A unit rolled up over its descendants.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitRollup {
    /// Unit id.
    pub unit: String,
    /// Display name.
    pub name: Option<String>,
    /// The parent's id.
    pub parent: Option<String>,
    /// Its own cost centre, else its nearest ancestor's.
    pub cost_centre: Option<String>,
    /// Pages of its copiers and its descendants'.
    pub pages: PageFigures,
    /// Their cost, cents.
    pub cost_cents: i64,
    /// Availability of all its devices and its descendants'.
    pub availability: AvailabilityDoc,
}

/// One copier's month.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceLine {
    /// Device id.
    pub device: String,
    /// Model now.
    pub model: Option<String>,
    /// Serial number now.
    pub serial: Option<String>,
    /// The newest read before the month (else the device's first read in it).
    pub start: Option<MeterDoc>,
    /// The month's newest read.
    pub end: Option<MeterDoc>,
    /// Pages in the month, from counter deltas (resets and replacements bill 0 across).
    pub pages: PageFigures,
    /// Pages billed at the mono price: the mono counter, or where the device does not
    /// split its counter, the total less colour pages (whichever is more).
    pub billed_mono: u64,
    /// Pages billed at the colour price.
    pub billed_colour: u64,
    /// The price applied.
    pub price: Option<PriceDoc>,
    /// Pages at the price, rounded to cents, plus the monthly fee; 0 without a price.
    pub cost_cents: i64,
    /// Counter events in the month.
    pub counter_events: CounterEvents,
    /// What to look at: `first_reading` (no read before the month: starts at the device's
    /// first), `reset`, `wrap`, `replaced` (serial changed), `no_price`, `no_reading` (no
    /// read in the month).
    pub marks: Vec<&'static str>,
}

/// A meter read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MeterDoc {
    /// Poll time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Local time, RFC 3339 with offset.
    pub time: String,
    /// Vendor total counter.
    pub total: Option<u64>,
    /// Vendor mono counter.
    pub mono: Option<u64>,
    /// Vendor colour counter.
    pub colour: Option<u64>,
    /// prtMarkerLifeCount.
    pub marker: Option<u32>,
}

/// The price applied to a device.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PriceDoc {
    /// Which entry.
    pub source: PriceSource,
    /// µEUR per mono page.
    pub mono_micro: i64,
    /// µEUR per colour page.
    pub colour_micro: i64,
    /// Cents per month.
    pub monthly_fee_cents: i64,
}

/// Why there is no report for a month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not `YYYY-MM`.
    #[error("month must be YYYY-MM, not {0:?}")]
    Month(String),
    /// After the newest poll's month.
    #[error("month {0} has not begun (the newest poll is of {1})")]
    Future(String, String),
    /// Before the figures retention.
    #[error("month {0} is before the figures held (from {1})")]
    Pruned(String, String),
}

/// Parses `YYYY-MM` into the month's first day.
///
/// # Errors
/// [`ReportError::Month`].
pub fn parse_month(text: &str) -> Result<Date, ReportError> {
    let bad = || ReportError::Month(text.chars().take(32).collect());
    let (y, m) = text.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i16 = y.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Date::new(y, m, 1).map_err(|_| bad())
}

fn meter_doc(agg: &Aggregator, read: &MeterRead) -> MeterDoc {
    let p = &read.point;
    MeterDoc {
        timestamp_ms: p.ts_ms,
        time: agg
            .calendar()
            .zoned(p.ts_ms)
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        total: p.total,
        mono: p.mono,
        colour: p.colour,
        marker: p.marker,
    }
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn add_pages(a: &mut PageFigures, b: &PageFigures) {
    a.total += b.total;
    a.mono += b.mono;
    a.colour += b.colour;
}

/// The cost centre of `unit`: its own, else its nearest ancestor's.
pub fn cost_centre_of(agg: &Aggregator, unit: &str) -> Option<String> {
    let units = &agg.settings().units;
    units
        .lineage(unit)
        .iter()
        .find_map(|u| units.get(u).and_then(|d| d.cost_centre.clone()))
}

/// The report of the month starting at `month` (its first day).
///
/// # Errors
/// [`ReportError`] for a month after the newest poll's or before the figures held.
pub fn monthly(
    agg: &Aggregator,
    prices: &Prices,
    month: Date,
) -> Result<MonthlyReport, ReportError> {
    let as_of = agg.as_of_date();
    let label = month.strftime("%Y-%m").to_string();
    if month > as_of.first_of_month() {
        return Err(ReportError::Future(
            label,
            as_of.strftime("%Y-%m").to_string(),
        ));
    }
    let last = month.last_of_month();
    if let Some(held) = agg.figures_from() {
        if last < held {
            return Err(ReportError::Pruned(label, held.to_string()));
        }
    }
    let to = last.min(as_of);
    // Device lines of every copier, by unit.
    let mut by_unit: BTreeMap<String, Vec<DeviceLine>> = BTreeMap::new();
    let mut without_price = 0;
    for id in agg.device_ids() {
        let Some(dm) = agg.device_month(&id, month, to) else {
            continue;
        };
        if dm.doc.kind != "copier" {
            continue;
        }
        let f: DayFigures = dm.figures;
        let reported = f.polls > 0;
        let pages = PageFigures::of(&f);
        let billed_colour = nonneg(f.pages_colour);
        let billed_mono =
            nonneg(f.pages_mono).max(nonneg(f.pages_total).saturating_sub(billed_colour));
        let price = prices.of(&id, dm.doc.model.as_deref());
        let mut marks = Vec::new();
        let (start, end) = match &dm.meters {
            Some((s, e)) => {
                if s.point.ts_ms >= agg.calendar().day_bounds(month).map_or(0, |b| b.0) {
                    marks.push("first_reading");
                }
                (Some(meter_doc(agg, s)), Some(meter_doc(agg, e)))
            }
            None => {
                marks.push("no_reading");
                (None, None)
            }
        };
        if f.counter_resets > 0 {
            marks.push("reset");
        }
        if f.counter_wraps > 0 {
            marks.push("wrap");
        }
        if f.serial_changes > 0 {
            marks.push("replaced");
        }
        let cost = match (price, reported) {
            (Some((_, p)), true) => cost_cents(&p, billed_mono, billed_colour),
            (Some(_), false) => 0,
            (None, _) => {
                if reported {
                    without_price += 1;
                    marks.push("no_price");
                }
                0
            }
        };
        if !reported && dm.meters.is_none() {
            // Neither a poll nor a read in the month: not in this month's report.
            continue;
        }
        by_unit
            .entry(dm.doc.unit.clone())
            .or_default()
            .push(DeviceLine {
                device: id,
                model: dm.doc.model.clone(),
                serial: dm.doc.serial.clone(),
                start,
                end,
                pages,
                billed_mono,
                billed_colour,
                price: price.map(|(source, p)| PriceDoc {
                    source,
                    mono_micro: p.mono_micro,
                    colour_micro: p.colour_micro,
                    monthly_fee_cents: p.monthly_fee_cents,
                }),
                cost_cents: cost,
                counter_events: CounterEvents::of(&f),
                marks,
            });
    }
    let mut total = PageFigures::default();
    let mut total_cost = 0;
    let mut centres: BTreeMap<Option<String>, CostCentreReport> = BTreeMap::new();
    let mut unit_pages: BTreeMap<String, (PageFigures, i64)> = BTreeMap::new();
    let unit_ids = agg.unit_ids();
    for unit in &unit_ids {
        let Some(devices) = by_unit.remove(unit) else {
            continue;
        };
        let mut pages = PageFigures::default();
        let mut cost = 0;
        for d in &devices {
            add_pages(&mut pages, &d.pages);
            cost += d.cost_cents;
        }
        // Roll the unit's own lines up to it and its ancestors.
        for u in agg.settings().units.lineage(unit) {
            let e = unit_pages.entry(u).or_default();
            add_pages(&mut e.0, &pages);
            e.1 += cost;
        }
        add_pages(&mut total, &pages);
        total_cost += cost;
        let cc = cost_centre_of(agg, unit);
        let centre = centres
            .entry(cc.clone())
            .or_insert_with(|| CostCentreReport {
                cost_centre: cc,
                pages: PageFigures::default(),
                cost_cents: 0,
                units: Vec::new(),
            });
        add_pages(&mut centre.pages, &pages);
        centre.cost_cents += cost;
        let mut path = agg.settings().units.lineage(unit);
        path.reverse();
        let all = agg.device_ids_in(unit, true);
        centre.units.push(UnitLines {
            unit: unit.clone(),
            name: agg.settings().units.get(unit).and_then(|d| d.name.clone()),
            path,
            pages,
            cost_cents: cost,
            availability: agg.availability_over(month, to, &agg.figures(&all, month, to)),
            devices,
        });
    }
    let mut cost_centres: Vec<CostCentreReport> = centres.into_values().collect();
    // `None` sorts first in a BTreeMap; the units without a cost centre go last.
    cost_centres.sort_by_key(|c| c.cost_centre.is_none());
    for c in &mut cost_centres {
        c.units.sort_by(|a, b| a.path.cmp(&b.path));
    }
    let units = unit_ids
        .iter()
        .map(|unit| {
            let all = agg.device_ids_in(unit, true);
            let (pages, cost) = unit_pages.get(unit).cloned().unwrap_or_default();
            let def = agg.settings().units.get(unit);
            UnitRollup {
                unit: unit.clone(),
                name: def.and_then(|d| d.name.clone()),
                parent: def.and_then(|d| d.parent.clone()),
                cost_centre: cost_centre_of(agg, unit),
                pages,
                cost_cents: cost,
                availability: agg.availability_over(month, to, &agg.figures(&all, month, to)),
            }
        })
        .collect();
    Ok(MonthlyReport {
        month: label,
        from: month.to_string(),
        to: to.to_string(),
        complete: as_of > last,
        as_of: as_of.to_string(),
        timezone: agg.calendar().tz_name().to_string(),
        currency: CURRENCY,
        sla_target_percent: agg.settings().sla_target_percent,
        pages: total,
        cost_cents: total_cost,
        devices_without_price: without_price,
        cost_centres,
        units,
    })
}

/// The language of a CSV's headers and notes: German (`dd.mm.yyyy hh:mm`) or English (RFC 3339
/// times); decimal commas and `;` in both.
pub use crate::dashboard::i18n::Lang as CsvLang;

/// A field as the dialect writes it: quoted when it holds `;`, `"`, a line break or
/// surrounding blanks; a text starting with `=`, `+`, `-`, `@`, tab or CR (a formula to a
/// spreadsheet — model names come from the network) gets a leading `'`.
fn field(out: &mut String, text: &str) {
    let guarded;
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{text}");
        guarded.as_str()
    } else {
        text
    };
    if text.contains([';', '"', '\n', '\r']) || text.trim() != text {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Appends one CSV line of `cells` (see [`csv`] for the dialect).
pub fn csv_row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    for (i, c) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        field(out, &c);
    }
    out.push_str("\r\n");
}

/// Cents as `1234,56`.
pub fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{},{:02}", c / 100, c % 100)
}

/// µEUR as a decimal with a comma and no trailing zeros beyond two places (`0,0125`).
pub fn micro_euros(micro: i64) -> String {
    let c = micro.unsigned_abs();
    let mut frac = format!("{:06}", c % 1_000_000);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    let sign = if micro < 0 { "-" } else { "" };
    format!("{sign}{},{frac}", c / 1_000_000)
}

/// The report as CSV: UTF-8 with a byte-order mark, `;` between fields, CRLF line ends,
/// decimal commas, integers without thousands separators — what Excel in a German locale
/// opens as columns and numbers. One row per copier (`Art` = `Gerät`), one per cost centre
/// (`Summe Kostenstelle`) and one for all (`Gesamt`); the device rows of a cost centre sum
/// to its row, the cost-centre rows to the total.
pub fn csv(report: &MonthlyReport, lang: CsvLang) -> String {
    let de = lang == CsvLang::De;
    let headers: &[&str] = if de {
        &[
            "Art",
            "Monat",
            "Kostenstelle",
            "Einheit",
            "Einheit-ID",
            "Gerät",
            "Modell",
            "Seriennummer",
            "Beginn Zeit",
            "Beginn gesamt",
            "Beginn s/w",
            "Beginn Farbe",
            "Ende Zeit",
            "Ende gesamt",
            "Ende s/w",
            "Ende Farbe",
            "Seiten gesamt",
            "Seiten s/w",
            "Seiten Farbe",
            "Abgerechnet s/w",
            "Abgerechnet Farbe",
            "Preis s/w (EUR)",
            "Preis Farbe (EUR)",
            "Grundgebühr (EUR)",
            "Kosten (EUR)",
            "Hinweise",
        ]
    } else {
        &[
            "Row",
            "Month",
            "Cost centre",
            "Unit",
            "Unit id",
            "Device",
            "Model",
            "Serial",
            "Start time",
            "Start total",
            "Start mono",
            "Start colour",
            "End time",
            "End total",
            "End mono",
            "End colour",
            "Pages total",
            "Pages mono",
            "Pages colour",
            "Billed mono",
            "Billed colour",
            "Price mono (EUR)",
            "Price colour (EUR)",
            "Monthly fee (EUR)",
            "Cost (EUR)",
            "Notes",
        ]
    };
    let mut out = String::from("\u{feff}");
    let mut row = |cells: &[String]| csv_row(&mut out, cells.iter().cloned());
    row(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let time = |m: &Option<MeterDoc>| -> String {
        let Some(m) = m else { return String::new() };
        if de {
            // 2026-11-30T17:00:00+01:00 → 30.11.2026 17:00
            let (date, rest) = m.time.split_once('T').unwrap_or((&m.time, ""));
            let mut parts = date.split('-');
            let (y, mo, d) = (parts.next(), parts.next(), parts.next());
            match (y, mo, d) {
                (Some(y), Some(mo), Some(d)) => {
                    format!("{d}.{mo}.{y} {}", rest.get(..5).unwrap_or(""))
                }
                _ => m.time.clone(),
            }
        } else {
            m.time.clone()
        }
    };
    let [k_device, k_centre, k_total] = if de {
        ["Gerät", "Summe Kostenstelle", "Gesamt"]
    } else {
        ["device", "cost centre total", "total"]
    };
    let none_centre = if de { "(ohne)" } else { "(none)" };
    for c in &report.cost_centres {
        let cc = c
            .cost_centre
            .clone()
            .unwrap_or_else(|| none_centre.to_string());
        for u in &c.units {
            for d in &u.devices {
                let s = &d.start;
                let e = &d.end;
                row(&[
                    k_device.to_string(),
                    report.month.clone(),
                    cc.clone(),
                    u.name.clone().unwrap_or_else(|| u.unit.clone()),
                    u.unit.clone(),
                    d.device.clone(),
                    d.model.clone().unwrap_or_default(),
                    d.serial.clone().unwrap_or_default(),
                    time(s),
                    opt(s.as_ref().and_then(|m| m.total.or(m.marker.map(u64::from)))),
                    opt(s.as_ref().and_then(|m| m.mono)),
                    opt(s.as_ref().and_then(|m| m.colour)),
                    time(e),
                    opt(e.as_ref().and_then(|m| m.total.or(m.marker.map(u64::from)))),
                    opt(e.as_ref().and_then(|m| m.mono)),
                    opt(e.as_ref().and_then(|m| m.colour)),
                    d.pages.total.to_string(),
                    d.pages.mono.to_string(),
                    d.pages.colour.to_string(),
                    d.billed_mono.to_string(),
                    d.billed_colour.to_string(),
                    d.price
                        .as_ref()
                        .map(|p| micro_euros(p.mono_micro))
                        .unwrap_or_default(),
                    d.price
                        .as_ref()
                        .map(|p| micro_euros(p.colour_micro))
                        .unwrap_or_default(),
                    d.price
                        .as_ref()
                        .map(|p| euros(p.monthly_fee_cents))
                        .unwrap_or_default(),
                    euros(d.cost_cents),
                    d.marks
                        .iter()
                        .map(|m| lang.mark(m))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
        }
        let mut cells = vec![String::new(); headers.len()];
        cells[0] = k_centre.to_string();
        cells[1] = report.month.clone();
        cells[2] = cc;
        cells[16] = c.pages.total.to_string();
        cells[17] = c.pages.mono.to_string();
        cells[18] = c.pages.colour.to_string();
        cells[24] = euros(c.cost_cents);
        row(&cells);
    }
    let mut cells = vec![String::new(); headers.len()];
    cells[0] = k_total.to_string();
    cells[1] = report.month.clone();
    cells[16] = report.pages.total.to_string();
    cells[17] = report.pages.mono.to_string();
    cells[18] = report.pages.colour.to_string();
    cells[24] = euros(report.cost_cents);
    row(&cells);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::aggregate::CoreSettings;
    use crate::units::{UnitDef, Units};
    use devtel_protocol::{Envelope, PrinterReading, Reading};

    fn unit(id: &str, parent: Option<&str>, cc: Option<&str>) -> UnitDef {
        UnitDef {
            id: id.into(),
            name: Some(format!("Unit {id}")),
            parent: parent.map(Into::into),
            cost_centre: cc.map(Into::into),
        }
    }

    fn reading(device: &str, unit: &str, model: &str, mono: u64, colour: u64) -> Reading {
        let mut r = PrinterReading {
            device: device.try_into().unwrap(),
            unit: unit.try_into().unwrap(),
            model: Some(model.try_into().unwrap()),
            serial: Some("S1".try_into().unwrap()),
            ..Default::default()
        };
        r.counters.mono = Some(mono);
        r.counters.colour = Some(colour);
        r.counters.total = Some(mono + colour);
        Reading::Printer(r)
    }

    fn ms(s: &str) -> u64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
    }

    /// Two copiers over a month boundary in a hierarchy of four units and two cost centres.
    pub(crate) fn fleet() -> (Aggregator, Prices) {
        let units = Units::new(vec![
            unit("ba", None, Some("1000")),
            unit("ba.fb2", Some("ba"), Some("2000")),
            unit("ba.fb2.it", Some("ba.fb2"), None),
            unit("ba.x", Some("ba"), None),
        ])
        .unwrap();
        let mut settings = CoreSettings {
            units,
            ..CoreSettings::default()
        };
        settings.ledger.calendar = crate::calendar::Calendar::new(
            "Europe/Berlin",
            &[
                "mon".into(),
                "tue".into(),
                "wed".into(),
                "thu".into(),
                "fri".into(),
            ],
            "07:00",
            "18:00",
        )
        .unwrap();
        let mut agg = Aggregator::with_settings(settings);
        let polls = [
            (
                "a",
                "ba.fb2.it",
                "MX-3570N",
                "2026-10-30T10:00:00Z",
                1_000,
                500,
            ),
            // 31 Oct 23:30 UTC is already 1 Nov in Berlin: the first read of November.
            (
                "a",
                "ba.fb2.it",
                "MX-3570N",
                "2026-10-31T22:30:00Z",
                1_100,
                520,
            ),
            (
                "a",
                "ba.fb2.it",
                "MX-3570N",
                "2026-10-31T23:30:00Z",
                1_150,
                530,
            ),
            (
                "a",
                "ba.fb2.it",
                "MX-3570N",
                "2026-11-16T09:00:00Z",
                1_900,
                700,
            ),
            (
                "a",
                "ba.fb2.it",
                "MX-3570N",
                "2026-11-30T22:00:00Z",
                2_345,
                878,
            ),
            (
                "a",
                "ba.fb2.it",
                "MX-3570N",
                "2026-12-01T08:00:00Z",
                2_400,
                900,
            ),
            ("b", "ba.x", "M130nw", "2026-11-03T08:00:00Z", 40_000, 0),
            ("b", "ba.x", "M130nw", "2026-11-20T08:00:00Z", 41_234, 0),
        ];
        for (seq, (dev, unit, model, at, mono, colour)) in polls.iter().enumerate() {
            let mut e = Envelope::new(
                "site".try_into().unwrap(),
                "c".try_into().unwrap(),
                1,
                seq as u64,
                ms(at),
            );
            e.readings
                .push(reading(dev, unit, model, *mono, *colour))
                .unwrap();
            agg.ingest(&e);
        }
        let prices: Vec<crate::pricing::RawPrice> = toml::from_str::<toml::Table>(
            r#"
            [[prices]]
            mono = 0.01
            colour = 0.05
            [[prices]]
            model = "MX-3570N"
            mono = 0.008
            colour = 0.045
            monthly_fee = 12.5
            "#,
        )
        .unwrap()["prices"]
            .clone()
            .try_into()
            .unwrap();
        (agg, Prices::new(&prices).unwrap())
    }

    #[test]
    fn a_month_per_cost_centre_with_meter_reads_pages_and_cost() {
        let (agg, prices) = fleet();
        let r = monthly(&agg, &prices, parse_month("2026-11").unwrap()).unwrap();
        assert!(r.complete);
        assert_eq!(
            (r.from.as_str(), r.to.as_str()),
            ("2026-11-01", "2026-11-30")
        );
        // Cost centre 2000 (ba.fb2.it inherits it), then 1000 (ba.x inherits ba's).
        let centres: Vec<_> = r
            .cost_centres
            .iter()
            .map(|c| c.cost_centre.as_deref())
            .collect();
        assert_eq!(centres, [Some("1000"), Some("2000")]);
        let a = &r.cost_centres[1].units[0].devices[0];
        assert_eq!(a.device, "a");
        // Start: the newest read before 1 Nov local (22:30 UTC = 23:30 CET on 31 Oct).
        let start = a.start.as_ref().unwrap();
        assert_eq!(start.time, "2026-10-31T23:30:00+01:00");
        assert_eq!((start.mono, start.colour), (Some(1_100), Some(520)));
        let end = a.end.as_ref().unwrap();
        assert_eq!(end.time, "2026-11-30T23:00:00+01:00");
        assert_eq!((end.mono, end.colour), (Some(2_345), Some(878)));
        // Pages are the difference of the two reads.
        assert_eq!(
            (a.pages.mono, a.pages.colour, a.pages.total),
            (1_245, 358, 1_603)
        );
        // 1,245 × 0.008 + 358 × 0.045 = 9.96 + 16.11 = 26.07, plus the fee 12.50.
        assert_eq!(a.price.as_ref().unwrap().source, PriceSource::Model);
        assert_eq!(a.cost_cents, 3_857);
        let b = &r.cost_centres[0].units[0].devices[0];
        assert_eq!(b.marks, ["first_reading"]);
        assert_eq!(b.pages.mono, 1_234);
        assert_eq!(b.cost_cents, 1_234);
        assert_eq!(r.cost_cents, 3_857 + 1_234);
        // Rollups: ba covers both, ba.fb2 only a; they equal the consumption figures.
        let rollup = |u: &str| r.units.iter().find(|x| x.unit == u).unwrap().clone();
        assert_eq!(rollup("ba").pages.total, 1_603 + 1_234);
        assert_eq!(rollup("ba").cost_cents, r.cost_cents);
        assert_eq!(rollup("ba.fb2").cost_centre.as_deref(), Some("2000"));
        let all = agg.device_ids_in("ba", true);
        let month = parse_month("2026-11").unwrap();
        let f = agg.figures(&all, month, month.last_of_month());
        assert_eq!(rollup("ba").pages, PageFigures::of(&f));
        // Polls of November local time: three of a, two of b.
        assert_eq!(rollup("ba").availability.polls, 5);
        // The running month is not complete; a month not begun, or not a month, is refused.
        let dec = monthly(&agg, &prices, parse_month("2026-12").unwrap()).unwrap();
        assert!(!dec.complete);
        assert_eq!(dec.to, "2026-12-01");
        assert!(matches!(
            monthly(&agg, &prices, parse_month("2027-01").unwrap()),
            Err(ReportError::Future(..))
        ));
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-11-01"] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_for_german_excel_sums_to_its_totals() {
        let (agg, prices) = fleet();
        let r = monthly(&agg, &prices, parse_month("2026-11").unwrap()).unwrap();
        let text = csv(&r, CsvLang::De);
        assert!(text.starts_with('\u{feff}'), "byte-order mark");
        let rows: Vec<Vec<&str>> = text
            .trim_start_matches('\u{feff}')
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| l.split(';').collect())
            .collect();
        assert_eq!(rows[0][0], "Art");
        assert!(rows.iter().all(|r| r.len() == rows[0].len()));
        let col = |name: &str| rows[0].iter().position(|h| *h == name).unwrap();
        let (kind, total, cost) = (col("Art"), col("Seiten gesamt"), col("Kosten (EUR)"));
        let cents = |s: &str| -> i64 { s.replace(',', "").parse().unwrap() };
        let sum = |k: &str, c: usize| -> i64 {
            rows.iter()
                .filter(|r| r[kind] == k)
                .map(|r| cents(r[c]))
                .sum()
        };
        let gesamt = rows.iter().find(|r| r[kind] == "Gesamt").unwrap();
        assert_eq!(sum("Gerät", total), cents(gesamt[total]));
        assert_eq!(sum("Summe Kostenstelle", cost), cents(gesamt[cost]));
        assert_eq!(sum("Gerät", cost), cents(gesamt[cost]));
        assert_eq!(gesamt[cost], "50,91");
        let a = rows.iter().find(|r| r[col("Gerät")] == "a").unwrap();
        assert_eq!(a[col("Beginn Zeit")], "31.10.2026 23:30");
        assert_eq!(a[col("Preis s/w (EUR)")], "0,008");
        assert_eq!(a[col("Grundgebühr (EUR)")], "12,50");
        assert!(csv(&r, CsvLang::En).contains("Cost centre"));
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        field(&mut out, "=HYPERLINK(\"x\")");
        assert_eq!(out, "\"'=HYPERLINK(\"\"x\"\")\"");
        let mut out = String::new();
        field(&mut out, "a;b \"c\"");
        assert_eq!(out, "\"a;b \"\"c\"\"\"");
        assert_eq!(euros(-5), "-0,05");
        assert_eq!(micro_euros(12_500), "0,0125");
        assert_eq!(micro_euros(1_000_000), "1,00");
    }
}
