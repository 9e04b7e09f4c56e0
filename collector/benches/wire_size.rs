//! What one reading of each recorded device costs on the wire: devtel's envelope (the current
//! format version, as the collector publishes it) next to Telegraf's line protocol for the
//! same values, as Telegraf's SNMP input writes them (one line per scalar group and per table
//! row, the row's text columns as tags, `agent_host` and `host` tags, nanosecond timestamps).
//!
//! Version 5 is measured twice: single compact readings 5 min and 12 h after the description,
//! and a simulated working day of five-minute polls through the collector's own
//! [`Describer`] (descriptions included: first reading, changes, renewals), which is what a
//! site's uplink carries.
//!
//! Run: `cargo bench -p devtel-collector --bench wire_size`. Prints figures; asserts nothing.
//! Targets: at most 48 B per copier reading on average, 300 B per 48-port switch reading.

use std::fmt::Write as _;

use devtel_collector::describe::{Describer, DEFAULT_DESCRIBE_EVERY};
use devtel_devices::dock::Selection;
use devtel_devices::{corpus, DeviceIdentity};
use devtel_protocol::{
    compact, encode_to_vec, DockReading, Envelope, PhoneReading, PrinterReading, Reading,
    FORMAT_VERSION,
};

const SITE: &str = "berlin-mitte-rathaus";
const COLLECTOR: &str = "rathaus-gw1";
const AGENT: &str = "10.20.30.41";
/// 2026-01-05T08:00Z in ms; the collector's epoch is its start time in ms.
const TS_MS: u64 = 1_767_600_000_000;

fn envelope(reading: &Reading, version: u8, seq: u64, ts: u64) -> Envelope {
    let mut e = Envelope::new(
        SITE.try_into().unwrap(),
        COLLECTOR.try_into().unwrap(),
        TS_MS - 86_400_000,
        seq,
        ts,
    );
    e.version = version;
    e.readings.push(reading.clone()).unwrap();
    e
}

/// Version 4's envelope: everything in every reading.
fn full_bytes(reading: &Reading) -> usize {
    encode_to_vec(&envelope(reading, 4, SEQ, TS_MS))
        .unwrap()
        .len()
}

/// The envelopes one collector of [`FLEET`] devices numbers in `minutes` of five-minute rounds.
const FLEET: u64 = 100;
const SEQ: u64 = 123_456;

/// Version 5: the compact reading `minutes` after the device was last described, with the
/// values a device in use has changed by then (uptime, pages printed, a supply used, seats
/// docked and undocked). `None` when the reading cannot be sent compact.
fn compact_bytes(reading: &Reading, minutes: u64) -> Option<usize> {
    let base = envelope(reading, FORMAT_VERSION, SEQ, TS_MS);
    let described = encode_to_vec(&base).ok()?;
    let mut base_slots = compact::Slots::new();
    compact::slots(&base.readings[0], &mut base_slots).ok()?;
    let later = advance(reading, minutes);
    let mut skeleton = later.clone();
    let mut values = compact::Slots::new();
    compact::split(&later, &mut skeleton, &mut values).ok()?;
    let b = compact::Base {
        fingerprint: compact::fingerprint(&described),
        seq: SEQ,
        timestamp_ms: TS_MS,
        slots: &base_slots,
    };
    let seq = SEQ + FLEET * minutes / 5;
    let ts = TS_MS + minutes * 60_000 + 1234;
    let mut buf = [0u8; compact::MAX_COMPACT_LEN];
    let bytes = compact::encode_compact(&b, seq, ts, &values, &mut buf).ok()?;
    // What the gateway makes of it is the reading polled.
    let c = compact::decode_compact(bytes).ok()?;
    let mut back = base.clone();
    compact::expand(&c, &mut back).ok()?;
    assert_eq!(back, envelope(&later, FORMAT_VERSION, seq, ts));
    Some(bytes.len())
}

/// `reading` as a device in use reports it `minutes` later: about one page a minute per
/// copier (a third in colour where it counts colour), one percent of a supply per 200 pages,
/// a seat in ten docked or undocked per hour.
fn advance(reading: &Reading, minutes: u64) -> Reading {
    let mut r = reading.clone();
    let ticks = (minutes * 6_000) as u32;
    let bump = |v: &mut Option<u32>| {
        if let Some(v) = v {
            *v = v.wrapping_add(ticks);
        }
    };
    let pages = minutes;
    match &mut r {
        Reading::Printer(p) => {
            bump(&mut p.uptime_ticks);
            let c = &mut p.counters;
            let colour = c.colour.map(|_| pages / 3).unwrap_or(0);
            for (v, by) in [
                (&mut c.total, pages),
                (&mut c.mono, pages - colour),
                (&mut c.colour, colour),
                (&mut c.print, pages * 2 / 3),
                (&mut c.copy, pages / 3),
            ] {
                if let Some(v) = v {
                    *v += by;
                }
            }
            for m in &mut p.markers {
                m.life_count += pages as u32;
            }
            if let Some(s) = p.supplies.first_mut() {
                if let Some(devtel_protocol::Level::Value(v)) = &mut s.level {
                    *v = v.saturating_sub((pages / 200) as u32);
                }
            }
        }
        Reading::Dock(d) => {
            bump(&mut d.uptime_ticks);
            let changes = (d.seats.len() as u64 * minutes / 600).max(1) as usize;
            for s in d.seats.iter_mut().take(changes) {
                s.clients = if s.clients == 0 { 1 } else { 0 };
                s.occupancy = if s.clients == 0 {
                    devtel_protocol::Occupancy::Empty
                } else {
                    devtel_protocol::Occupancy::Occupied
                };
                bump(&mut s.last_change_ticks);
            }
        }
        Reading::Phone(p) => bump(&mut p.uptime_ticks),
        Reading::NoResponse(_) => {}
    }
    r
}

/// A line-protocol tag value: spaces, commas and equals signs escaped.
fn tag(s: &str) -> String {
    s.replace(' ', "\\ ")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

struct Lines {
    out: String,
    device: String,
    unit: String,
}

impl Lines {
    fn new(r: &Reading) -> Lines {
        Lines {
            out: String::new(),
            device: tag(r.device()),
            unit: tag(r.unit()),
        }
    }

    /// One line: `measurement,tags fields timestamp`; fields with no value are left out, as
    /// Telegraf does for objects the agent did not answer.
    fn line(&mut self, measurement: &str, tags: &[(&str, String)], fields: &[(&str, Option<i64>)]) {
        self.line_with_text(measurement, tags, &[], fields);
    }

    /// A line whose `text` columns are string fields (as Telegraf keeps a device's model,
    /// serial and firmware), not tags.
    fn line_with_text(
        &mut self,
        measurement: &str,
        tags: &[(&str, String)],
        text: &[(&str, String)],
        fields: &[(&str, Option<i64>)],
    ) {
        let fields: Vec<String> = text
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .chain(
                fields
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}i"))),
            )
            .collect();
        if fields.is_empty() {
            return;
        }
        let _ = write!(
            self.out,
            "{measurement},agent_host={AGENT},device={},host={COLLECTOR},unit={}",
            self.device, self.unit
        );
        for (k, v) in tags {
            if !v.is_empty() {
                let _ = write!(self.out, ",{k}={}", tag(v));
            }
        }
        let _ = writeln!(self.out, " {} {}", fields.join(","), TS_MS * 1_000_000);
    }
}

fn printer_lines(r: &PrinterReading, reading: &Reading) -> usize {
    let mut l = Lines::new(reading);
    let text = |s: Option<&str>| s.unwrap_or("").to_string();
    let c = &r.counters;
    l.line_with_text(
        "printer",
        &[],
        &[
            ("model", text(r.model.as_deref())),
            ("serial", text(r.serial.as_deref())),
            ("firmware", text(r.firmware.as_deref())),
        ],
        &[
            ("uptime", r.uptime_ticks.map(i64::from)),
            ("device_status", r.status.device.map(|s| i64::from(s.raw()))),
            (
                "printer_status",
                r.status.printer.map(|s| i64::from(s.raw())),
            ),
            ("errors", r.status.errors.map(|e| i64::from(e.0))),
            ("total", c.total.map(|v| v as i64)),
            ("mono", c.mono.map(|v| v as i64)),
            ("colour", c.colour.map(|v| v as i64)),
            ("print", c.print.map(|v| v as i64)),
            ("copy", c.copy.map(|v| v as i64)),
            ("scan", c.scan.map(|v| v as i64)),
            ("fax", c.fax.map(|v| v as i64)),
            ("duplex", c.duplex.map(|v| v as i64)),
        ],
    );
    for m in &r.markers {
        l.line(
            "printer_marker",
            &[("index", m.index.to_string())],
            &[
                ("life_count", Some(i64::from(m.life_count))),
                ("unit", m.unit.map(|u| i64::from(u.raw()))),
            ],
        );
    }
    for s in &r.supplies {
        l.line(
            "printer_supply",
            &[
                ("index", s.index.to_string()),
                ("description", s.description.to_string()),
                ("colour", text(s.colour.as_deref())),
            ],
            &[
                ("level", s.level.map(|v| v.raw())),
                ("max_capacity", s.max_capacity.map(|v| v.raw())),
                ("type", s.kind.map(|k| i64::from(k.raw()))),
                ("class", s.class.map(|k| i64::from(k.raw()))),
                ("unit", s.unit.map(|k| i64::from(k.raw()))),
            ],
        );
    }
    for t in &r.trays {
        l.line(
            "printer_tray",
            &[
                ("index", t.index.to_string()),
                ("name", text(t.name.as_deref())),
                ("media", text(t.media.as_deref())),
            ],
            &[
                ("level", t.level.map(|v| v.raw())),
                ("max_capacity", t.max_capacity.map(|v| v.raw())),
                ("status", t.status.map(i64::from)),
            ],
        );
    }
    l.out.len()
}

fn dock_lines(r: &DockReading, reading: &Reading) -> usize {
    let mut l = Lines::new(reading);
    let text = |s: Option<&str>| s.unwrap_or("").to_string();
    l.line_with_text(
        "switch",
        &[],
        &[
            ("model", text(r.model.as_deref())),
            ("firmware", text(r.firmware.as_deref())),
        ],
        &[("uptime", r.uptime_ticks.map(i64::from))],
    );
    for s in &r.seats {
        l.line(
            "switch_port",
            &[
                ("ifIndex", s.if_index.to_string()),
                ("ifName", text(s.name.as_deref())),
                ("ifAlias", text(s.label.as_deref())),
            ],
            &[
                ("ifOperStatus", s.link.map(|v| i64::from(v.raw()))),
                ("ifHighSpeed", s.speed_mbps.map(i64::from)),
                ("ifLastChange", s.last_change_ticks.map(i64::from)),
                ("clients", Some(i64::from(s.clients))),
            ],
        );
    }
    l.out.len()
}

fn phone_lines(r: &PhoneReading, reading: &Reading) -> usize {
    let mut l = Lines::new(reading);
    let text = |s: Option<&str>| s.unwrap_or("").to_string();
    l.line_with_text(
        "phone",
        &[],
        &[
            ("model", text(r.model.as_deref())),
            ("firmware", text(r.firmware.as_deref())),
            ("serial", text(r.serial.as_deref())),
        ],
        &[("uptime", r.uptime_ticks.map(i64::from))],
    );
    for line in &r.lines {
        l.line(
            "phone_line",
            &[
                ("index", line.index.to_string()),
                ("number", text(line.number.as_deref())),
            ],
            &[
                ("registration", Some(line.registration as i64)),
                ("hook", line.hook.map(|h| h as i64)),
            ],
        );
    }
    l.out.len()
}

/// A small deterministic generator (xorshift64*), so every run simulates the same day.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Five-minute polls in a day.
const DAY_POLLS: u64 = 288;

/// One device's day through the collector's describer: bytes per reading on average
/// (descriptions included) and how many readings went described.
fn day(reading: &Reading, seed: u64) -> (f64, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut describer = Describer::new(true, DEFAULT_DESCRIBE_EVERY);
    let mut r = reading.clone();
    for i in 0..DAY_POLLS {
        // Working hours 08:00 to 18:00.
        let working = (96..216).contains(&i);
        match &mut r {
            Reading::Printer(p) => {
                p.uptime_ticks = p.uptime_ticks.map(|t| t.wrapping_add(30_000));
                let pages = if working { rng.below(12) } else { 0 };
                let colour = p.counters.colour.map(|_| rng.below(pages + 1)).unwrap_or(0);
                let c = &mut p.counters;
                for (v, by) in [
                    (&mut c.total, pages),
                    (&mut c.mono, pages - colour),
                    (&mut c.colour, colour),
                    (&mut c.print, pages / 2),
                    (&mut c.copy, pages - pages / 2),
                ] {
                    if let Some(v) = v {
                        *v += by;
                    }
                }
                for m in &mut p.markers {
                    m.life_count += pages as u32;
                }
                // A supply loses a percent now and then.
                let n = p.supplies.len() as u64;
                if pages > 0 && rng.below(20) == 0 {
                    if let Some(s) = p.supplies.get_mut(rng.below(n) as usize) {
                        if let Some(devtel_protocol::Level::Value(v)) = &mut s.level {
                            *v = v.saturating_sub(1);
                        }
                    }
                }
            }
            Reading::Dock(d) => {
                d.uptime_ticks = d.uptime_ticks.map(|t| t.wrapping_add(30_000));
                let now = d.uptime_ticks.unwrap_or(0);
                for s in &mut d.seats {
                    // About twice a working day per seat: docked in the morning, undocked in
                    // the evening, now and then in between.
                    if working && rng.below(60) == 0 {
                        let docked = s.clients == 0;
                        s.clients = u16::from(docked);
                        s.link = Some(devtel_protocol::LinkStatus::Up);
                        s.occupancy = if docked {
                            devtel_protocol::Occupancy::Occupied
                        } else {
                            devtel_protocol::Occupancy::Idle
                        };
                        s.last_change_ticks = Some(now);
                    }
                }
            }
            Reading::Phone(p) => {
                p.uptime_ticks = p.uptime_ticks.map(|t| t.wrapping_add(30_000));
            }
            Reading::NoResponse(_) => {}
        }
        let seq = SEQ + i * FLEET;
        let e = envelope(&r, FORMAT_VERSION, seq, TS_MS + i * 300_000);
        let spooled = encode_to_vec(&e).unwrap();
        if describer.payload(&spooled, false).is_none() {
            // Described: the gateway's acknowledgement comes within the poll interval.
            let topic = devtel_protocol::topic::telemetry(SITE, r.unit(), r.device()).unwrap();
            describer.confirmed(&topic, e.epoch, seq);
        }
    }
    let c = describer.counts();
    (c.bytes as f64 / DAY_POLLS as f64, c.described)
}

fn main() {
    struct Row {
        name: String,
        kind: &'static str,
        rows: usize,
        full: usize,
        soon: Option<usize>,
        later: Option<usize>,
        day: (f64, u64),
        lp: usize,
    }
    let mut rows = Vec::new();
    for name in corpus::names() {
        let vb = corpus::varbinds(&name);
        let Some(kind) = devtel_devices::detect(&vb) else {
            continue;
        };
        let id = DeviceIdentity {
            device: "copier-2og-east".try_into().unwrap(),
            unit: "ordnungsamt.buergeramt".try_into().unwrap(),
        };
        let Ok(mapped) = devtel_devices::of(kind).map(&id, &Selection::default(), &vb) else {
            continue;
        };
        let reading = mapped.reading;
        let (lp, n) = match &reading {
            Reading::Printer(r) => (printer_lines(r, &reading), r.supplies.len()),
            Reading::Dock(r) => (dock_lines(r, &reading), r.seats.len()),
            Reading::Phone(r) => (phone_lines(r, &reading), r.lines.len()),
            Reading::NoResponse(_) => continue,
        };
        rows.push(Row {
            name,
            kind: kind.name(),
            rows: n,
            full: full_bytes(&reading),
            soon: compact_bytes(&reading, 5),
            later: compact_bytes(&reading, DESCRIBE_EVERY_MIN),
            day: day(&reading, rows.len() as u64 + 1),
            lp,
        });
    }
    let b = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "Payload bytes of one reading. v4: everything in every reading (before version 5). \
         v5 compact: 5 min and {} h after the device's description. v5 day: {DAY_POLLS} \
         five-minute polls of a working day through the collector's describer, descriptions \
         included (how many in brackets). Line protocol: Telegraf's for the same values.",
        DESCRIBE_EVERY_MIN / 60
    );
    println!(
        "| recording | kind | supplies / seats / lines | v4 B | v5 compact 5 min B | v5 compact {} h B | v5 day B per reading | line protocol B |",
        DESCRIBE_EVERY_MIN / 60
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} ({}) | {} |",
            r.name,
            r.kind,
            r.rows,
            r.full,
            b(r.soon),
            b(r.later),
            r.day.0,
            r.day.1,
            r.lp
        );
    }
    println!();
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    for kind in ["copier", "dock", "phone"] {
        let of: Vec<&Row> = rows.iter().filter(|r| r.kind == kind).collect();
        if of.is_empty() {
            continue;
        }
        let full: Vec<usize> = of.iter().map(|r| r.full).collect();
        let later: Vec<usize> = of.iter().map(|r| r.later.unwrap_or(r.full)).collect();
        let soon: Vec<usize> = of.iter().map(|r| r.soon.unwrap_or(r.full)).collect();
        let lp: Vec<usize> = of.iter().map(|r| r.lp).collect();
        let day = of.iter().map(|r| r.day.0).sum::<f64>() / of.len() as f64;
        println!(
            "{kind}: {} recordings; per reading on average: v4 {:.0} B; v5 compact {:.0} B (5 min), \
             {:.0} B ({} h), {:.0} B over a day with its descriptions; line protocol {:.0} B. \
             v4 / v5 day {:.1}x, line protocol / v5 day {:.1}x",
            of.len(),
            mean(&full),
            mean(&soon),
            mean(&later),
            DESCRIBE_EVERY_MIN / 60,
            day,
            mean(&lp),
            mean(&full) / day,
            mean(&lp) / day,
        );
    }
    for r in rows.iter().filter(|r| r.kind == "dock" && r.rows >= 40) {
        println!(
            "48-port class switch {} ({} seats): v4 {} B; v5 compact {} B (5 min), {} B ({} h), \
             {:.0} B per reading over a day ({} described); line protocol {} B",
            r.name,
            r.rows,
            r.full,
            b(r.soon),
            b(r.later),
            DESCRIBE_EVERY_MIN / 60,
            r.day.0,
            r.day.1,
            r.lp
        );
    }
}

/// How long the collector goes without describing a device again (a change describes it at
/// once): its default.
const DESCRIBE_EVERY_MIN: u64 = 12 * 60;
