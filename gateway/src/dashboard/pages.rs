//! The dashboard's pages, rendered from the aggregator's documents and figures.

use std::collections::BTreeMap;

use jiff::civil::Date;
use maud::{html, Markup};

use super::svg::{self, Bar, Line};
use super::{encode, layout, Ctx, Nav};
use crate::aggregate::{Aggregator, DeviceDoc, DeviceFullDoc, SupplyOrder, UnitDoc};
use crate::report::MonthlyReport;

/// A device whose newest reading is this much older than the newest poll of all is stale.
pub const STALE_MS: u64 = 30 * 60_000;

fn as_of(ctx: &Ctx, agg: &Aggregator) -> Option<String> {
    (agg.as_of_ms() > 0).then(|| ctx.lang.datetime(&agg.calendar().zoned(agg.as_of_ms())))
}

fn when(ctx: &Ctx, agg: &Aggregator, ms: u64) -> String {
    ctx.lang.datetime(&agg.calendar().zoned(ms))
}

fn unit_href(id: &str) -> String {
    format!("/units/{}", encode(id))
}

fn device_href(id: &str) -> String {
    format!("/devices/{}", encode(id))
}

fn status_badge(ctx: &Ctx, status: &str) -> Markup {
    html! { span class={ "status status-" (status) } { (ctx.lang.status(status)) } }
}

/// Whether a device's newest reading is well behind the newest poll.
fn stale(agg: &Aggregator, d: &DeviceDoc) -> bool {
    agg.as_of_ms().saturating_sub(d.last_seen_ms) > STALE_MS
}

fn colour_class(colour: Option<&str>) -> &'static str {
    match colour.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
        Some("black") => "c-black",
        Some("cyan") => "c-cyan",
        Some("magenta") => "c-magenta",
        Some("yellow") => "c-yellow",
        _ => "c-other",
    }
}

fn colour_stroke(colour: Option<&str>) -> &'static str {
    match colour_class(colour) {
        "c-black" => "#1b1f24",
        "c-cyan" => "#0093d3",
        "c-magenta" => "#c2187a",
        "c-yellow" => "#c9a200",
        _ => "#6b7785",
    }
}

fn availability_cell(ctx: &Ctx, percent: Option<f64>, meets: Option<bool>) -> Markup {
    html! {
        @match (percent, meets) {
            (Some(p), Some(true)) => span class="met" { (ctx.lang.percent(p, 2)) " ✓ " span class="sr-only" { (ctx.t("Ziel erreicht", "target met")) } },
            (Some(p), _) => span class="missed" { (ctx.lang.percent(p, 2)) " ✗ " span class="sr-only" { (ctx.t("Ziel verfehlt", "target missed")) } },
            _ => span class="muted" { "–" },
        }
    }
}

/// Units in tree order with their depth.
fn tree(agg: &Aggregator) -> Vec<(usize, UnitDoc)> {
    let docs: BTreeMap<String, UnitDoc> = agg
        .units()
        .into_iter()
        .map(|u| (u.unit.clone(), u))
        .collect();
    let mut out = Vec::new();
    fn walk(
        id: &str,
        depth: usize,
        docs: &BTreeMap<String, UnitDoc>,
        out: &mut Vec<(usize, UnitDoc)>,
    ) {
        let Some(doc) = docs.get(id) else { return };
        out.push((depth, doc.clone()));
        if depth < 16 {
            for c in &doc.children {
                walk(c, depth + 1, docs, out);
            }
        }
    }
    for (id, doc) in &docs {
        let root = doc.parent.as_ref().is_none_or(|p| !docs.contains_key(p));
        if root {
            walk(id, 0, &docs, &mut out);
        }
    }
    out
}

/// The overview: the unit tree with rolled-up figures.
pub fn overview(ctx: &Ctx, agg: &Aggregator) -> Markup {
    let l = ctx.lang;
    let units = tree(agg);
    let month = agg.as_of_date().first_of_month();
    let target = agg.settings().sla_target_percent;
    let main = html! {
        h1 { (ctx.t("Übersicht", "Overview")) }
        p class="muted" {
            (ctx.t("Zahlen je Einheit einschließlich ihrer Untereinheiten. Seiten: ", "Figures per unit including its sub-units. Pages: "))
            (l.month(month)) ". "
            (ctx.t("Verfügbarkeit: letzte ", "Availability: last ")) (agg.settings().availability_days)
            (ctx.t(" Tage, Ziel ", " days, target ")) (l.percent(target, 1)) "."
        }
        @if units.is_empty() {
            p { (ctx.t("Noch keine Einheiten und keine Messwerte.", "No units and no readings yet.")) }
        } @else {
            table {
                caption { (ctx.t("Einheiten", "Units")) }
                thead { tr {
                    th scope="col" { (ctx.t("Einheit", "Unit")) }
                    th scope="col" { (ctx.t("Kostenstelle", "Cost centre")) }
                    th scope="col" class="num" { (ctx.t("in Ordnung", "OK")) }
                    th scope="col" class="num" { (ctx.t("Warnung", "Warning")) }
                    th scope="col" class="num" { (ctx.t("Störung", "Error")) }
                    th scope="col" class="num" { (ctx.t("nicht erreichbar", "Unreachable")) }
                    th scope="col" class="num" { (ctx.t("Verfügbarkeit", "Availability")) }
                    th scope="col" class="num" { (ctx.t("Seiten s/w", "Pages mono")) }
                    th scope="col" class="num" { (ctx.t("Seiten Farbe", "Pages colour")) }
                    th scope="col" class="num" { (ctx.t("Plätze belegt", "Seats occupied")) }
                    th scope="col" class="num" { (ctx.t("Toner bestellen", "Supplies to order")) }
                } }
                tbody {
                    @for (depth, u) in &units {
                        tr class={ "depth-" (depth.min(&4)) } data-unit=(u.unit) {
                            th scope="row" { a href=(unit_href(&u.unit)) { (u.name.as_deref().unwrap_or(&u.unit)) } }
                            td { (crate::report::cost_centre_of(agg, &u.unit).unwrap_or_default()) }
                            td class="num" data-field="ok" { (l.int(u.status.ok as i64)) }
                            td class="num" data-field="warning" { (l.int(u.status.warning as i64)) }
                            td class="num" data-field="error" { (l.int(u.status.error as i64)) }
                            td class="num" data-field="unreachable" { (l.int(u.status.unreachable as i64)) }
                            td class="num" data-field="availability" { (availability_cell(ctx, u.availability.percent, u.availability.meets_sla)) }
                            td class="num" data-field="pages-mono" { (l.int(u.pages.month.mono)) }
                            td class="num" data-field="pages-colour" { (l.int(u.pages.month.colour)) }
                            td class="num" data-field="seats" { (l.int(u.seats.occupied as i64)) " / " (l.int(u.seats.total as i64)) }
                            td class="num" data-field="to-order" {
                                @if u.supplies_to_order.is_empty() { "0" } @else {
                                    a href={ "/supplies?unit=" (encode(&u.unit)) } { (l.int(u.supplies_to_order.len() as i64)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(
        ctx,
        ctx.t("Übersicht", "Overview"),
        as_of(ctx, agg),
        Nav::Overview,
        true,
        main,
    )
}

/// The summed day figures of `devices` over `[from, to]`, by day.
fn daily(
    agg: &Aggregator,
    devices: &[String],
    from: Date,
    to: Date,
) -> BTreeMap<Date, crate::ledger::DayFigures> {
    let mut by_day: BTreeMap<Date, crate::ledger::DayFigures> = BTreeMap::new();
    for d in devices {
        for (day, f) in agg.device_days(d, from, to) {
            *by_day.entry(day).or_default() += &f;
        }
    }
    by_day
}

/// Pages per day of `devices` over `[from, to]`, as bars.
fn pages_bars(ctx: &Ctx, agg: &Aggregator, devices: &[String], from: Date, to: Date) -> Vec<Bar> {
    let by_day = daily(agg, devices, from, to);
    days(from, to)
        .into_iter()
        .map(|day| {
            let f = by_day.get(&day).copied().unwrap_or_default();
            let unsplit = (f.pages_total - f.pages_mono - f.pages_colour).max(0);
            Bar {
                label: ctx.lang.day(day),
                segments: vec![
                    (f.pages_mono as f64, "mono"),
                    (f.pages_colour as f64, "colour"),
                    (unsplit as f64, "unsplit"),
                ],
                title: format!(
                    "{}: {} {}",
                    ctx.lang.date(day),
                    ctx.lang.int(f.pages_total),
                    ctx.t("Seiten", "pages")
                ),
            }
        })
        .collect()
}

fn days(from: Date, to: Date) -> Vec<Date> {
    let mut out = Vec::new();
    let mut d = from;
    while d <= to && out.len() < 400 {
        out.push(d);
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    out
}

/// Availability per day of `devices` over `[from, to]`, with the target line.
fn availability_chart(
    ctx: &Ctx,
    agg: &Aggregator,
    devices: &[String],
    from: Date,
    to: Date,
) -> Markup {
    let target = agg.settings().sla_target_percent;
    let by_day = daily(agg, devices, from, to);
    let mut lowest = target;
    let bars: Vec<Bar> = days(from, to)
        .into_iter()
        .map(|day| {
            let f = by_day.get(&day).copied().unwrap_or_default();
            let p = (f.polls > 0).then(|| f.polls_available as f64 * 100.0 / f.polls as f64);
            if let Some(p) = p {
                lowest = lowest.min(p);
            }
            Bar {
                label: ctx.lang.day(day),
                segments: p
                    .map(|p| vec![(p, if p >= target { "ok" } else { "bad" })])
                    .unwrap_or_default(),
                title: format!(
                    "{}: {}",
                    ctx.lang.date(day),
                    p.map_or("–".into(), |p| ctx.lang.percent(p, 2))
                ),
            }
        })
        .collect();
    // Zoom to where the target is: from a little under the lowest day or the target.
    let lo = (lowest - (100.0 - lowest).max(0.5)).floor().max(0.0);
    // Bars stand on the axis' bottom: a day's bar is its share above `lo`.
    let bars: Vec<Bar> = bars
        .into_iter()
        .map(|mut b| {
            for s in &mut b.segments {
                s.0 = (s.0 - lo).max(0.0);
            }
            b
        })
        .collect();
    svg::bars(
        ctx.t("Verfügbarkeit je Tag", "Availability per day"),
        &bars,
        lo,
        Some(100.0),
        Some((
            target,
            format!(
                "{} {}",
                ctx.t("Ziel", "target"),
                ctx.lang.percent(target, 1)
            ),
        )),
        |v| ctx.lang.percent(v, 1),
    )
}

fn pages_legend(ctx: &Ctx) -> Markup {
    html! {
        p class="legend" {
            span { i style="background:#4a535d" {} (ctx.t("s/w", "mono")) }
            span { i style="background:#c2187a" {} (ctx.t("Farbe", "colour")) }
            span { i style="background:#8a939d" {} (ctx.t("ohne Aufteilung", "not split")) }
        }
    }
}

fn supply_bars(ctx: &Ctx, d: &DeviceDoc, r: Option<&devtel_protocol::PrinterReading>) -> Markup {
    html! {
        @for s in &d.supplies {
            @let state = r.and_then(|r| r.supplies.iter().find(|x| x.index == s.index)).map(|x| x.state().name()).unwrap_or("unknown");
            @let label = format!("{}: {}", s.description, s.level_percent.map_or_else(|| ctx.lang.supply_state(state).to_string(), |p| ctx.lang.percent(f64::from(p), 0)));
            div class="supply" {
                span { (s.description) }
                div class="bar" role="img" aria-label=(label) title=(label) {
                    @if let Some(p) = s.level_percent {
                        span class=(colour_class(s.colour.as_deref())) style={ "width:" (p) "%" } {}
                    }
                }
                span {
                    @if let Some(p) = s.level_percent { (ctx.lang.percent(f64::from(p), 0)) " · " }
                    span class={ @if matches!(state, "low" | "empty" | "almost_full" | "full") { "missed" } } { (ctx.lang.supply_state(state)) }
                }
            }
        }
    }
}

/// The column heads of [`device_row_cells`].
fn device_head_cells(ctx: &Ctx) -> Markup {
    html! {
        th scope="col" { (ctx.t("Gerät", "Device")) }
        th scope="col" { (ctx.t("Modell", "Model")) }
        th scope="col" { (ctx.t("Zustand", "Status")) }
        th scope="col" { (ctx.t("Zuletzt gesehen", "Last seen")) }
    }
}

/// A device's first cells in the unit page's tables: link, model, status, last seen.
fn device_row_cells(ctx: &Ctx, agg: &Aggregator, d: &DeviceDoc) -> Markup {
    html! {
        th scope="row" { a href=(device_href(&d.device)) { (d.device) } }
        td { (d.model.as_deref().unwrap_or("–")) }
        td {
            (status_badge(ctx, d.status))
            @if stale(agg, d) { " " span class="stale" { (ctx.t("veraltet", "stale")) } }
        }
        td { (when(ctx, agg, d.last_seen_ms)) }
    }
}

/// A unit's page; `devices` are the documents of the unit's devices with descendants (read
/// before, one at a time, see [`device_docs`]).
pub fn unit(ctx: &Ctx, agg: &Aggregator, id: &str, devices: Vec<DeviceFullDoc>) -> Option<Markup> {
    let doc = agg.unit(id)?;
    let l = ctx.lang;
    let today = agg.as_of_date();
    let month = today.first_of_month();
    let all: Vec<String> = devices.iter().map(|d| d.device.device.clone()).collect();
    let name = doc.name.clone().unwrap_or_else(|| doc.unit.clone());
    let by_kind = |k: &str| {
        devices
            .iter()
            .filter(|f| f.device.kind == k)
            .collect::<Vec<_>>()
    };
    let copiers = by_kind("copier");
    let phones = by_kind("phone");
    let docks = by_kind("dock");
    // Seat time per hour only where the unit's seat figures are shown at all.
    let hours = if doc.seats_withheld {
        std::collections::BTreeMap::new()
    } else {
        agg.seat_hours(&all, month)
    };
    let replacements = agg.replacements(&all, month, today);
    let target = agg.settings().sla_target_percent;
    let main = html! {
        p class="crumbs" {
            a href="/" { (ctx.t("Übersicht", "Overview")) }
            @for p in &doc.path[..doc.path.len().saturating_sub(1)] {
                " › " a href=(unit_href(p)) { (agg.settings().units.get(p).and_then(|u| u.name.clone()).unwrap_or_else(|| p.clone())) }
            }
        }
        h1 { (name) }
        @if let Some(cc) = crate::report::cost_centre_of(agg, id) {
            p { (ctx.t("Kostenstelle", "Cost centre")) ": " strong { (cc) } }
        }
        div class="cards" {
            section class="card" {
                h2 { (ctx.t("Geräte", "Devices")) }
                div class="big" data-field="devices" { (l.int(doc.devices_total as i64)) }
                div {
                    (l.int(doc.status.ok as i64)) " " (ctx.t("in Ordnung", "OK")) ", "
                    (l.int(doc.status.warning as i64)) " " (ctx.t("Warnung", "warning")) ", "
                    (l.int(doc.status.error as i64)) " " (ctx.t("Störung", "error")) ", "
                    (l.int(doc.status.unreachable as i64)) " " (ctx.t("nicht erreichbar", "unreachable"))
                }
            }
            section class="card" {
                h2 { (ctx.t("Verfügbarkeit", "Availability")) }
                div class="big" data-field="availability" { (availability_cell(ctx, doc.availability.percent, doc.availability.meets_sla)) }
                div { (ctx.t("Ziel ", "Target ")) (l.percent(target, 1)) ", " (l.date(doc.availability.from.parse().unwrap_or(today))) "–" (l.date(today)) }
            }
            section class="card" {
                h2 { (ctx.t("Seiten ", "Pages ")) (l.month(month)) }
                div class="big" data-field="pages-month" { (l.int(doc.pages.month.total)) }
                div { (l.int(doc.pages.month.mono)) " " (ctx.t("s/w", "mono")) ", " (l.int(doc.pages.month.colour)) " " (ctx.t("Farbe", "colour")) }
            }
            @if doc.seats.total > 0 {
                section class="card" {
                    h2 { (ctx.t("Arbeitsplätze jetzt", "Seats now")) }
                    div class="big" data-field="seats" { (l.int(doc.seats.occupied as i64)) " / " (l.int(doc.seats.total as i64)) }
                    div { (ctx.t("belegt", "occupied")) }
                }
            }
            @if doc.phone_lines.lines_now > 0 {
                section class="card" {
                    h2 { (ctx.t("Telefonleitungen", "Phone lines")) }
                    div class="big" data-field="lines" { (l.int(i64::from(doc.phone_lines.registered_now))) " / " (l.int(i64::from(doc.phone_lines.lines_now))) }
                    div { (ctx.t("angemeldet", "registered")) }
                }
            }
            section class="card" {
                h2 { (ctx.t("Kartuschen getauscht", "Cartridges replaced")) }
                div class="big" data-field="replaced" { (l.int(doc.cartridges_replaced_month)) }
                div { (l.month(month)) }
            }
        }
        @if !doc.children.is_empty() {
            h2 { (ctx.t("Untereinheiten", "Sub-units")) }
            ul {
                @for c in &doc.children {
                    li { a href=(unit_href(c)) { (agg.settings().units.get(c).and_then(|u| u.name.clone()).unwrap_or_else(|| c.clone())) } }
                }
            }
        }
        h2 { (ctx.t("Seiten je Tag", "Pages per day")) " – " (l.month(month)) }
        (pages_legend(ctx))
        (svg::bars(ctx.t("Seiten je Tag", "Pages per day"), &pages_bars(ctx, agg, &all, month, today), 0.0, None, None, |v| l.int(v as i64)))
        h2 { (ctx.t("Verfügbarkeit je Tag", "Availability per day")) " – " (l.month(month)) }
        (availability_chart(ctx, agg, &all, month, today))
        @if !hours.is_empty() {
            h2 { (ctx.t("Belegung nach Uhrzeit", "Seat occupancy by hour")) " – " (l.month(month)) }
            @let bars: Vec<Bar> = hours.iter().map(|(h, s)| {
                let p = if s.watched_ms > 0 { s.occupied_ms as f64 * 100.0 / s.watched_ms as f64 } else { 0.0 };
                Bar { label: format!("{h}"), segments: vec![(p, "seats")], title: format!("{h}–{} {}: {}", h + 1, ctx.t("Uhr", "h"), l.percent(p, 1)) }
            }).collect();
            (svg::bars(ctx.t("Belegte Plätze nach Uhrzeit", "Seats occupied by hour"), &bars, 0.0, Some(100.0), None, |v| l.percent(v, 0)))
        }
        @if !copiers.is_empty() {
            h2 { (l.kinds("copier")) }
            table {
                caption class="sr-only" { (l.kinds("copier")) }
                thead { tr {
                    (device_head_cells(ctx))
                    th scope="col" { (ctx.t("Verbrauchsmaterial", "Supplies")) }
                    th scope="col" class="num" { (ctx.t("Zählerstand", "Page counter")) }
                    th scope="col" class="num" { (ctx.t("Seiten im Monat", "Pages this month")) }
                } }
                tbody {
                    @for f in &copiers {
                        @let d = &f.device;
                        tr data-device=(d.device) {
                            (device_row_cells(ctx, agg, d))
                            td { (supply_bars(ctx, d, agg.printer_reading(&d.device))) }
                            td class="num" { (d.page_count.map_or("–".into(), |c| l.int(c as i64))) }
                            td class="num" data-field="pages-month" { (l.int(f.pages_month.total)) }
                        }
                    }
                }
            }
        }
        @if !phones.is_empty() {
            h2 { (l.kinds("phone")) }
            table {
                thead { tr {
                    (device_head_cells(ctx))
                    th scope="col" { (ctx.t("Leitungen", "Lines")) }
                } }
                tbody {
                    @for f in &phones {
                        @let d = &f.device;
                        tr data-device=(d.device) {
                            (device_row_cells(ctx, agg, d))
                            td { @for line in &d.lines { div { (line.number.as_deref().unwrap_or("–")) ": " (l.registration(line.registration)) } } }
                        }
                    }
                }
            }
        }
        @if !docks.is_empty() {
            h2 { (l.kinds("dock")) }
            table {
                thead { tr {
                    (device_head_cells(ctx))
                    th scope="col" class="num" { (ctx.t("Plätze belegt", "Seats occupied")) }
                } }
                tbody {
                    @for f in &docks {
                        @let d = &f.device;
                        tr data-device=(d.device) {
                            (device_row_cells(ctx, agg, d))
                            td class="num" {
                                @match &d.seat_counts {
                                    Some(c) => { (l.int(i64::from(c.occupied))) " / " (l.int(i64::from(c.total))) }
                                    None => { "–" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !replacements.is_empty() {
            h2 { (ctx.t("Getauschte Kartuschen", "Cartridges replaced")) " – " (l.month(month)) }
            table {
                thead { tr {
                    th scope="col" { (ctx.t("Gerät", "Device")) }
                    th scope="col" { (ctx.t("Verbrauchsmaterial", "Supply")) }
                    th scope="col" class="num" { (ctx.t("Anzahl", "Count")) }
                } }
                tbody {
                    @for r in &replacements {
                        tr {
                            th scope="row" { a href=(device_href(&r.device)) { (r.device) } }
                            td { (r.description.as_deref().unwrap_or("–")) }
                            td class="num" { (r.count) }
                        }
                    }
                }
            }
        }
    };
    Some(layout(
        ctx,
        &name,
        as_of(ctx, agg),
        Nav::Overview,
        true,
        main,
    ))
}

/// A device's page.
pub fn device(ctx: &Ctx, agg: &Aggregator, id: &str) -> Option<Markup> {
    let full = agg.device(id)?;
    let full = if ctx.seats {
        full
    } else {
        full.without_seats()
    };
    let d = &full.device;
    let l = ctx.lang;
    let r = agg.printer_reading(id);
    let today = agg.as_of_date();
    let from = today
        .checked_sub(jiff::Span::new().days(29))
        .unwrap_or(today);
    let ids = [id.to_string()];
    let level_from = today
        .checked_sub(jiff::Span::new().days(59))
        .unwrap_or(today);
    let (levels, replaced) = agg.supply_levels(id, level_from, today);
    let level_days = days(level_from, today);
    let index_of = |day: Date| level_days.iter().position(|d| *d == day);
    let lines: Vec<Line> = d
        .supplies
        .iter()
        .filter(|s| s.level_percent.is_some())
        .map(|s| Line {
            name: s.description.clone(),
            colour: colour_stroke(s.colour.as_deref()),
            points: levels
                .iter()
                .filter_map(|(day, lv)| {
                    let (_, p) = lv.iter().find(|(i, _)| *i == s.index)?;
                    Some((index_of(*day)?, f64::from(*p)))
                })
                .collect(),
        })
        .collect();
    let markers: Vec<(usize, String)> = replaced
        .iter()
        .filter_map(|(day, index)| {
            let s = d.supplies.iter().find(|s| s.index == *index);
            Some((
                index_of(*day)?,
                format!(
                    "{}: {} {}",
                    l.date(*day),
                    s.map_or("–", |s| s.description.as_str()),
                    ctx.t("getauscht", "replaced")
                ),
            ))
        })
        .collect();
    let title = format!("{} {}", ctx.t("Gerät", "Device"), d.device);
    let unit_name = agg
        .settings()
        .units
        .get(&d.unit)
        .and_then(|u| u.name.clone())
        .unwrap_or_else(|| d.unit.clone());
    let main = html! {
        p class="crumbs" { a href="/" { (ctx.t("Übersicht", "Overview")) } " › " a href=(unit_href(&d.unit)) { (unit_name) } }
        h1 { (d.device) " " (status_badge(ctx, d.status)) }
        @if d.status == "unreachable" {
            p class="stale" role="status" {
                (ctx.t("Nicht erreichbar", "Unreachable"))
                @if let Some(cause) = d.no_response_cause { " (" (l.cause(cause)) ")" }
                @match agg.answered_ms(id) {
                    Some(t) => { " – " (ctx.t("letzte Antwort ", "last answer ")) (when(ctx, agg, t)) },
                    None => { " – " (ctx.t("hat noch nie geantwortet", "has never answered")) },
                }
            }
        } @else if stale(agg, d) {
            p class="stale" role="status" { (ctx.t("Veraltet: letzter Messwert ", "Stale: last reading ")) (when(ctx, agg, d.last_seen_ms)) }
        }
        h2 { (ctx.t("Gerät", "Identity")) }
        table class="identity" {
            tbody {
                tr { th scope="row" { (ctx.t("Einheit", "Unit")) } td { a href=(unit_href(&d.unit)) { (unit_name) } } }
                tr { th scope="row" { (ctx.t("Art", "Kind")) } td { (l.kinds(d.kind)) } }
                tr { th scope="row" { (ctx.t("Modell", "Model")) } td { (d.model.as_deref().unwrap_or("–")) } }
                tr { th scope="row" { (ctx.t("Seriennummer", "Serial number")) } td { (d.serial.as_deref().unwrap_or("–")) } }
                @if let Some(fw) = r.and_then(|r| r.firmware.as_ref()) {
                    tr { th scope="row" { "Firmware" } td { (fw.as_str()) } }
                }
                tr { th scope="row" { (ctx.t("Zuletzt gesehen", "Last seen")) } td data-field="last-seen" { (when(ctx, agg, d.last_seen_ms)) } }
                tr { th scope="row" { (ctx.t("Standort-Collector", "Collector")) } td { (d.collector) } }
                @if let Some(s) = d.device_status {
                    tr { th scope="row" { (ctx.t("Gerätezustand", "Device state")) } td { (l.device_state(s)) } }
                }
                @if let Some(s) = d.printer_status {
                    tr { th scope="row" { (ctx.t("Druckerzustand", "Printer state")) } td { (l.device_state(s)) } }
                }
                @if let Some(c) = r.and_then(|r| r.console.as_ref()) {
                    tr { th scope="row" { (ctx.t("Anzeige am Gerät", "Display")) } td { (c.as_str()) } }
                }
            }
        }
        @if !d.conditions.is_empty() {
            h2 { (ctx.t("Meldungen", "Conditions")) }
            ul { @for c in &d.conditions { li { (l.condition(c)) } } }
        }
        @if let Some(r) = r.filter(|r| !r.alerts.is_empty()) {
            h2 { (ctx.t("Aktive Warnungen", "Active alerts")) }
            table {
                thead { tr { th scope="col" { (ctx.t("Schwere", "Severity")) } th scope="col" { (ctx.t("Meldung", "Message")) } } }
                tbody {
                    @for a in &r.alerts {
                        tr {
                            td { (a.severity.map_or("–", |s| match s.name() { "critical" => ctx.t("kritisch", "critical"), "warning" | "warningBinaryChangeEvent" => ctx.t("Warnung", "warning"), _ => ctx.t("sonstige", "other") })) }
                            td { (a.description.as_ref().map_or("–", |s| s.as_str())) }
                        }
                    }
                }
            }
        }
        @if !d.supplies.is_empty() {
            h2 { (ctx.t("Verbrauchsmaterial", "Supplies")) }
            (supply_bars(ctx, d, r))
        }
        @if let Some(r) = r.filter(|r| !r.trays.is_empty()) {
            h2 { (ctx.t("Papierfächer", "Trays")) }
            table {
                thead { tr {
                    th scope="col" { (ctx.t("Fach", "Tray")) }
                    th scope="col" { (ctx.t("Papier", "Media")) }
                    th scope="col" class="num" { (ctx.t("Füllstand", "Level")) }
                } }
                tbody {
                    @for t in &r.trays {
                        tr {
                            th scope="row" { (t.name.as_ref().map_or_else(|| format!("{} {}", ctx.t("Fach", "Tray"), t.index), |n| n.to_string())) }
                            td { (t.media.as_ref().map_or("–", |m| m.as_str())) }
                            td class="num" { (t.level_percent().map_or("–".into(), |p| l.percent(f64::from(p), 0))) }
                        }
                    }
                }
            }
        }
        @if let Some(r) = r {
            h2 { (ctx.t("Zähler", "Counters")) }
            table {
                thead { tr { th scope="col" { (ctx.t("Zähler", "Counter")) } th scope="col" class="num" { (ctx.t("Stand", "Value")) } } }
                tbody {
                    @for m in &r.markers {
                        tr { th scope="row" { (ctx.t("Markierwerk ", "Marker ")) (m.index) } td class="num" { (l.int(i64::from(m.life_count))) } }
                    }
                    @for (label, v) in [
                        (ctx.t("Gesamt", "Total"), r.counters.total),
                        (ctx.t("Schwarz-weiß", "Mono"), r.counters.mono),
                        (ctx.t("Farbe", "Colour"), r.counters.colour),
                        (ctx.t("Druck", "Print"), r.counters.print),
                        (ctx.t("Kopie", "Copy"), r.counters.copy),
                        (ctx.t("Scan", "Scan"), r.counters.scan),
                        (ctx.t("Fax", "Fax"), r.counters.fax),
                        (ctx.t("Duplex", "Duplex"), r.counters.duplex),
                    ] {
                        @if let Some(v) = v {
                            tr { th scope="row" { (label) } td class="num" { (l.int(i64::try_from(v).unwrap_or(i64::MAX))) } }
                        }
                    }
                }
            }
            h2 { (ctx.t("Seiten je Tag", "Pages per day")) " – " (ctx.t("letzte 30 Tage", "last 30 days")) }
            (pages_legend(ctx))
            (svg::bars(ctx.t("Seiten je Tag", "Pages per day"), &pages_bars(ctx, agg, &ids, from, today), 0.0, None, None, |v| l.int(v as i64)))
            @if !lines.is_empty() {
                h2 { (ctx.t("Füllstände", "Supply levels")) " – " (ctx.t("letzte 60 Tage", "last 60 days")) }
                p class="legend" {
                    @for line in &lines { span { i style={ "background:" (line.colour) } {} (line.name) } }
                    span { (ctx.t("senkrechte Linie: getauscht", "vertical line: replaced")) }
                }
                @let labels: Vec<String> = level_days.iter().map(|d| l.day(*d)).collect();
                (svg::levels(ctx.t("Füllstände", "Supply levels"), &labels, &lines, &markers))
            }
        }
        @if !d.lines.is_empty() {
            h2 { (ctx.t("Leitungen", "Lines")) }
            table {
                thead { tr { th scope="col" { (ctx.t("Leitung", "Line")) } th scope="col" { (ctx.t("Rufnummer", "Number")) } th scope="col" { (ctx.t("Anmeldung", "Registration")) } } }
                tbody { @for line in &d.lines { tr { th scope="row" { (line.index) } td { (line.number.as_deref().unwrap_or("–")) } td { (l.registration(line.registration)) } } } }
            }
        }
        @if let Some(c) = &d.seat_counts {
            h2 { (ctx.t("Arbeitsplätze jetzt", "Seats now")) }
            p data-field="seat-counts" {
                (l.int(i64::from(c.occupied))) " / " (l.int(i64::from(c.total))) " " (ctx.t("belegt", "occupied"))
                ", " (l.int(i64::from(c.idle))) " " (ctx.t("frei", "idle"))
                ", " (l.int(i64::from(c.empty))) " " (ctx.t("ohne Verbindung", "no link"))
            }
        }
        @if d.seats_withheld {
            p class="note" { (ctx.t("Weniger als 5 Arbeitsplätze: keine Belegungszahlen (Datenschutz).", "Fewer than 5 seats: no occupancy figures (privacy).")) }
        }
        @if !d.seats.is_empty() {
            h2 { (ctx.t("Arbeitsplätze", "Seats")) }
            table {
                thead { tr { th scope="col" { (ctx.t("Anschluss", "Port")) } th scope="col" { (ctx.t("Belegung", "Occupancy")) } th scope="col" class="num" { (ctx.t("Geschwindigkeit", "Speed")) } } }
                tbody {
                    @for s in &d.seats {
                        tr {
                            th scope="row" { (s.label.as_deref().or(s.name.as_deref()).map_or_else(|| s.if_index.to_string(), str::to_string)) }
                            td { (l.occupancy(s.occupancy)) }
                            td class="num" { (s.speed_mbps.map_or("–".into(), |m| format!("{} Mbit/s", l.int(i64::from(m))))) }
                        }
                    }
                }
            }
        }
        @if d.kind != "copier" {
            h2 { (ctx.t("Verfügbarkeit je Tag", "Availability per day")) " – " (ctx.t("letzte 30 Tage", "last 30 days")) }
            (availability_chart(ctx, agg, &ids, from, today))
        }
    };
    Some(layout(
        ctx,
        &title,
        as_of(ctx, agg),
        Nav::Overview,
        true,
        main,
    ))
}

/// Supplies to order of `unit` (with descendants) or of all devices, most urgent first.
pub fn to_order(agg: &Aggregator, unit: Option<&str>) -> Vec<(String, SupplyOrder)> {
    let ids = match unit {
        Some(u) => agg.device_ids_in(u, true),
        None => agg.device_ids(),
    };
    let mut out: Vec<(String, SupplyOrder)> = ids
        .iter()
        .filter_map(|id| agg.device(id))
        .flat_map(|f| {
            let unit = f.device.unit.clone();
            f.supplies_to_order
                .into_iter()
                .map(move |s| (unit.clone(), s))
        })
        .collect();
    let urgency = |s: &SupplyOrder| match s.state {
        "empty" | "full" => 0,
        _ => 1,
    };
    out.sort_by(|(ua, a), (ub, b)| {
        urgency(a)
            .cmp(&urgency(b))
            .then(
                a.level_percent
                    .unwrap_or(0)
                    .cmp(&b.level_percent.unwrap_or(0)),
            )
            .then(ua.cmp(ub))
            .then(a.device.cmp(&b.device))
            .then(a.supply_index.cmp(&b.supply_index))
    });
    out
}

/// The supplies-to-order page.
pub fn supplies(
    ctx: &Ctx,
    agg: &Aggregator,
    unit: Option<&str>,
    rows: Vec<(String, SupplyOrder)>,
) -> Markup {
    let l = ctx.lang;
    let units = tree(agg);
    let csv = match unit {
        Some(u) => format!("/supplies.csv?unit={}&lang={}", encode(u), l.code()),
        None => format!("/supplies.csv?lang={}", l.code()),
    };
    let main = html! {
        h1 { (ctx.t("Toner bestellen", "Supplies to order")) }
        p class="muted" { (ctx.t("Fast leere und leere Verbrauchsmaterialien, fast volle und volle Resttonerbehälter; das Dringendste zuerst.", "Low and empty supplies, almost full and full waste containers; most urgent first.")) }
        form class="filter" method="get" action="/supplies" {
            label for="unit" { (ctx.t("Einheit", "Unit")) }
            select id="unit" name="unit" {
                option value="" selected[unit.is_none()] { (ctx.t("alle Einheiten", "all units")) }
                @for (depth, u) in &units {
                    option value=(u.unit) selected[unit == Some(u.unit.as_str())] { (" ".repeat(*depth * 2)) (u.name.as_deref().unwrap_or(&u.unit)) }
                }
            }
            button type="submit" { (ctx.t("Anzeigen", "Show")) }
        }
        p class="actions" {
            a href=(csv) { (ctx.t("Als CSV herunterladen", "Download as CSV")) }
            a href="javascript:window.print()" { (ctx.t("Drucken", "Print")) }
        }
        @if rows.is_empty() {
            p { (ctx.t("Nichts zu bestellen.", "Nothing to order.")) }
        } @else {
            table id="to-order" {
                caption { (l.int(rows.len() as i64)) " " (ctx.t("Positionen", "items")) }
                thead { tr {
                    th scope="col" { (ctx.t("Einheit", "Unit")) }
                    th scope="col" { (ctx.t("Gerät", "Device")) }
                    th scope="col" { (ctx.t("Modell", "Model")) }
                    th scope="col" { (ctx.t("Verbrauchsmaterial", "Supply")) }
                    th scope="col" { (ctx.t("Farbe", "Colour")) }
                    th scope="col" { (ctx.t("Zustand", "State")) }
                    th scope="col" class="num" { (ctx.t("Füllstand", "Level")) }
                } }
                tbody {
                    @for (u, s) in &rows {
                        tr data-device=(s.device) {
                            td { a href=(unit_href(u)) { (agg.settings().units.get(u).and_then(|d| d.name.clone()).unwrap_or_else(|| u.clone())) } }
                            th scope="row" { a href=(device_href(&s.device)) { (s.device) } }
                            td { (s.model.as_deref().unwrap_or("–")) }
                            td { (s.description) }
                            td { (s.colour.as_deref().map_or_else(|| "–".to_string(), |c| l.colour(c))) }
                            td { span class="missed" { (l.supply_state(s.state)) } }
                            td class="num" { (s.level_percent.map_or("–".into(), |p| l.percent(f64::from(p), 0))) }
                        }
                    }
                }
            }
        }
    };
    layout(
        ctx,
        ctx.t("Toner bestellen", "Supplies to order"),
        as_of(ctx, agg),
        Nav::Supplies,
        true,
        main,
    )
}

/// The supplies to order as CSV (the report's dialect: BOM, `;`, CRLF).
pub fn supplies_csv(ctx: &Ctx, agg: &Aggregator, rows: Vec<(String, SupplyOrder)>) -> String {
    let l = ctx.lang;
    let mut out = String::from("\u{feff}");
    let header = [
        ctx.t("Einheit", "Unit"),
        ctx.t("Einheit-ID", "Unit id"),
        ctx.t("Kostenstelle", "Cost centre"),
        ctx.t("Gerät", "Device"),
        ctx.t("Modell", "Model"),
        ctx.t("Verbrauchsmaterial", "Supply"),
        ctx.t("Farbe", "Colour"),
        ctx.t("Zustand", "State"),
        ctx.t("Füllstand (%)", "Level (%)"),
    ];
    crate::report::csv_row(&mut out, header.iter().map(|s| s.to_string()));
    for (u, s) in rows {
        crate::report::csv_row(
            &mut out,
            [
                agg.settings()
                    .units
                    .get(&u)
                    .and_then(|d| d.name.clone())
                    .unwrap_or_else(|| u.clone()),
                u.clone(),
                crate::report::cost_centre_of(agg, &u).unwrap_or_default(),
                s.device.clone(),
                s.model.clone().unwrap_or_default(),
                s.description.clone(),
                s.colour.as_deref().map(|c| l.colour(c)).unwrap_or_default(),
                l.supply_state(s.state).to_string(),
                s.level_percent.map(|p| p.to_string()).unwrap_or_default(),
            ],
        );
    }
    out
}

/// The collectors page.
pub fn collectors(
    ctx: &Ctx,
    agg: &Aggregator,
    statuses: &BTreeMap<String, serde_json::Value>,
) -> Markup {
    let l = ctx.lang;
    let deliveries = agg.deliveries();
    // Rows by collector: site, status, deliveries.
    let mut rows: BTreeMap<String, (Option<String>, Option<&serde_json::Value>)> = BTreeMap::new();
    for (site, status) in statuses {
        let collector = status
            .get("collector")
            .and_then(|c| c.as_str())
            .unwrap_or(site)
            .to_string();
        rows.insert(collector, (Some(site.clone()), Some(status)));
    }
    for c in deliveries.keys() {
        rows.entry(c.clone()).or_insert((None, None));
    }
    let main = html! {
        h1 { (ctx.t("Standorte und Collectoren", "Sites and collectors")) }
        @if rows.is_empty() {
            p { (ctx.t("Noch hat sich kein Collector gemeldet.", "No collector has reported yet.")) }
        } @else {
            table id="collectors" {
                thead { tr {
                    th scope="col" { (ctx.t("Collector", "Collector")) }
                    th scope="col" { (ctx.t("Standort", "Site")) }
                    th scope="col" { (ctx.t("Zustand", "State")) }
                    th scope="col" { (ctx.t("Zuletzt gemeldet", "Last seen")) }
                    th scope="col" class="num" { (ctx.t("Rückstand", "Backlog")) }
                    th scope="col" class="num" { (ctx.t("Empfangen", "Received")) }
                    th scope="col" class="num" { (ctx.t("Fehlende Messwerte", "Missing readings")) }
                    th scope="col" class="num" { (ctx.t("Uhrsprünge", "Clock jumps")) }
                    th scope="col" { "Version" }
                } }
                tbody {
                    @for (collector, (site, status)) in &rows {
                        @let epochs = deliveries.get(collector).map(Vec::as_slice).unwrap_or(&[]);
                        @let missing: u64 = epochs.iter().map(|e| e.missing).sum();
                        @let received: u64 = epochs.iter().map(|e| e.received).sum();
                        @let last_poll = epochs.iter().map(|e| e.last_poll_ms).max();
                        @let state = status.and_then(|s| s.get("state")).and_then(|s| s.as_str()).unwrap_or("unknown");
                        @let updated = status.and_then(|s| s.get("updated_at_ms")).and_then(serde_json::Value::as_u64);
                        @let backlog = status.and_then(|s| s.pointer("/counters/awaiting_gateway")).and_then(serde_json::Value::as_u64);
                        tr data-collector=(collector) {
                            th scope="row" { (collector) }
                            td { (site.as_deref().unwrap_or("–")) }
                            td { @if state == "online" { span class="status status-ok" { "online" } } @else { span class="status status-unreachable" { (state) } } }
                            td { (updated.or(last_poll).map_or("–".into(), |t| when(ctx, agg, t))) }
                            td class="num" data-field="backlog" { (backlog.map_or("–".into(), |b| l.int(i64::try_from(b).unwrap_or(i64::MAX)))) }
                            td class="num" data-field="received" { (l.int(i64::try_from(received).unwrap_or(i64::MAX))) }
                            td class="num" data-field="missing" { span class=[(missing > 0).then_some("missed")] { (l.int(i64::try_from(missing).unwrap_or(i64::MAX))) } }
                            @let jumps = status.and_then(|s| s.pointer("/counters/clock_jumps")).and_then(serde_json::Value::as_u64);
                            td class="num" data-field="clock-jumps" { span class=[(jumps.unwrap_or(0) > 0).then_some("missed")] { (jumps.map_or("–".into(), |j| l.int(i64::try_from(j).unwrap_or(i64::MAX)))) } }
                            td { (status.and_then(|s| s.get("version")).and_then(|v| v.as_str()).unwrap_or("–")) }
                        }
                    }
                }
            }
        }
    };
    layout(
        ctx,
        ctx.t("Standorte", "Collectors"),
        as_of(ctx, agg),
        Nav::Collectors,
        true,
        main,
    )
}

fn meter_cell(ctx: &Ctx, m: Option<&crate::report::MeterDoc>, agg: &Aggregator) -> Markup {
    let l = ctx.lang;
    html! {
        @match m {
            Some(m) => {
                (m.total.or(m.marker.map(u64::from)).map_or("–".into(), |v| l.int(i64::try_from(v).unwrap_or(i64::MAX))))
                br;
                small class="muted" { (when(ctx, agg, m.timestamp_ms)) }
            },
            None => "–",
        }
    }
}

/// The printable monthly report, one section (printed page) per cost centre.
pub fn report(ctx: &Ctx, agg: &Aggregator, r: &MonthlyReport, month: Date) -> Markup {
    let l = ctx.lang;
    let prev = month.checked_sub(jiff::Span::new().months(1)).ok();
    let next = month
        .checked_add(jiff::Span::new().months(1))
        .ok()
        .filter(|n| *n <= agg.as_of_date());
    let title = format!(
        "{} {}",
        ctx.t("Kostenstellenbericht", "Cost allocation"),
        l.month(month)
    );
    let main = html! {
        h1 { (title) }
        p class="muted" {
            (l.date(r.from.parse().unwrap_or(month))) " – " (l.date(r.to.parse().unwrap_or(month)))
            @if !r.complete { " · " strong { (ctx.t("Monat läuft noch", "month not over")) } }
            " · " (ctx.t("Preise in EUR", "prices in EUR"))
        }
        p class="actions" {
            @if let Some(p) = prev { a href={ "/reports/monthly?month=" (p.strftime("%Y-%m")) } { "‹ " (l.month(p)) } }
            @if let Some(n) = next { a href={ "/reports/monthly?month=" (n.strftime("%Y-%m")) } { (l.month(n)) " ›" } }
            a href={ "/api/reports/monthly?month=" (r.month) "&format=csv&lang=" (l.code()) } { (ctx.t("CSV für Excel", "CSV for Excel")) }
            a href={ "/api/reports/monthly?month=" (r.month) } { "JSON" }
            a href="javascript:window.print()" { (ctx.t("Drucken", "Print")) }
        }
        table class="summary" {
            tbody {
                tr { th scope="row" { (ctx.t("Seiten gesamt", "Pages total")) } td class="num" data-field="pages-total" { (l.int(r.pages.total)) } }
                tr { th scope="row" { (ctx.t("davon s/w", "of which mono")) } td class="num" { (l.int(r.pages.mono)) } }
                tr { th scope="row" { (ctx.t("davon Farbe", "of which colour")) } td class="num" { (l.int(r.pages.colour)) } }
                tr { th scope="row" { (ctx.t("Kosten gesamt", "Cost total")) } td class="num" data-field="cost-total" { (l.money(r.cost_cents)) } }
                @if r.devices_without_price > 0 {
                    tr { th scope="row" { (ctx.t("Geräte ohne Preis", "Devices without a price")) } td class="num missed" { (r.devices_without_price) } }
                }
            }
        }
        @for c in &r.cost_centres {
            section class="cost-centre" {
                h2 { (ctx.t("Kostenstelle ", "Cost centre ")) (c.cost_centre.as_deref().unwrap_or(ctx.t("(ohne)", "(none)"))) }
                p class="print-only" { (title) }
                @for u in &c.units {
                    h3 {
                        (u.name.as_deref().unwrap_or(&u.unit))
                        " · " (ctx.t("Verfügbarkeit ", "availability ")) (availability_cell(ctx, u.availability.percent, u.availability.meets_sla))
                    }
                    table {
                        thead { tr {
                            th scope="col" { (ctx.t("Gerät", "Device")) }
                            th scope="col" { (ctx.t("Modell", "Model")) }
                            th scope="col" class="num" { (ctx.t("Zählerstand Beginn", "Start reading")) }
                            th scope="col" class="num" { (ctx.t("Zählerstand Ende", "End reading")) }
                            th scope="col" class="num" { (ctx.t("Seiten s/w", "Mono")) }
                            th scope="col" class="num" { (ctx.t("Seiten Farbe", "Colour")) }
                            th scope="col" class="num" { (ctx.t("Seiten gesamt", "Total")) }
                            th scope="col" class="num" { (ctx.t("Kosten", "Cost")) }
                            th scope="col" { (ctx.t("Hinweise", "Notes")) }
                        } }
                        tbody {
                            @for d in &u.devices {
                                tr data-device=(d.device) {
                                    th scope="row" { a href=(device_href(&d.device)) { (d.device) } }
                                    td { (d.model.as_deref().unwrap_or("–")) }
                                    td class="num" { (meter_cell(ctx, d.start.as_ref(), agg)) }
                                    td class="num" { (meter_cell(ctx, d.end.as_ref(), agg)) }
                                    td class="num" { (l.int(d.pages.mono)) }
                                    td class="num" { (l.int(d.pages.colour)) }
                                    td class="num" { (l.int(d.pages.total)) }
                                    td class="num" { (l.money(d.cost_cents)) }
                                    td { (d.marks.iter().map(|m| l.mark(m)).collect::<Vec<_>>().join(", ")) }
                                }
                            }
                            tr class="total" {
                                th scope="row" colspan="4" { (ctx.t("Summe ", "Total ")) (u.name.as_deref().unwrap_or(&u.unit)) }
                                td class="num" { (l.int(u.pages.mono)) }
                                td class="num" { (l.int(u.pages.colour)) }
                                td class="num" { (l.int(u.pages.total)) }
                                td class="num" { (l.money(u.cost_cents)) }
                                td {}
                            }
                        }
                    }
                }
                p { strong { (ctx.t("Summe Kostenstelle: ", "Cost centre total: ")) (l.int(c.pages.total)) " " (ctx.t("Seiten", "pages")) ", " (l.money(c.cost_cents)) } }
            }
        }
    };
    layout(ctx, &title, as_of(ctx, agg), Nav::Report, false, main)
}

/// The documents of `unit`'s devices (with descendants).
pub fn device_docs(agg: &Aggregator, unit: &str) -> Option<Vec<DeviceFullDoc>> {
    if !agg.has_unit(unit) {
        return None;
    }
    Some(
        (agg.device_ids_in(unit, true).iter())
            .filter_map(|d| agg.device(d))
            .collect(),
    )
}
