//! What `devtel-collector probe` prints: a reading as one JSON object (a stable interface for
//! site IT scripts, documented in the README) or as a few lines of text. Pure functions.

use devtel_protocol::{
    alert_code_name, DockReading, Level, PhoneReading, PrinterReading, Seat, Supply, Tray, Vendor,
};
use serde_json::{json, Value};

/// `probe --json` for a copier/printer. Every field named in the README is always present
/// (`null` when unknown); raw Printer-MIB integers keep their special values (-1/-2/-3).
pub fn printer_json(r: &PrinterReading) -> Value {
    let life = r.life_count();
    json!({
        "kind": "copier",
        "vendor": r.vendor.map(vendor_name),
        "model": r.model.as_deref(),
        "serial": r.serial.as_deref(),
        "firmware": r.firmware.as_deref(),
        "uptime_ticks": r.uptime_ticks,
        "status": r.status.health().name(),
        "device_status": r.status.device.map(|s| s.name()),
        "printer_status": r.status.printer.map(|s| s.name()),
        "conditions": r
            .status
            .errors
            .map(|e| e.conditions().map(|c| c.name()).collect::<Vec<_>>())
            .unwrap_or_default(),
        "counters": {
            "total": life.map(|m| m.life_count),
            "total_unit": life.and_then(|m| m.unit).map(|u| u.name()),
            "vendor_total": r.counters.total,
            "mono": r.counters.mono,
            "colour": r.counters.colour,
            "print": r.counters.print,
            "copy": r.counters.copy,
            "scan": r.counters.scan,
            "fax": r.counters.fax,
            "duplex": r.counters.duplex,
        },
        "supplies": r.supplies.iter().map(supply_json).collect::<Vec<_>>(),
        "trays": r.trays.iter().map(tray_json).collect::<Vec<_>>(),
        "alerts": r.alerts.iter().map(|a| json!({
            "index": a.index,
            "severity": a.severity.map(|s| s.name()),
            "training": a.training.map(|t| t.name()),
            "group": a.group,
            "group_index": a.group_index,
            "code": a.code,
            "code_name": a.code.and_then(alert_code_name),
            "description": a.description.as_deref(),
        })).collect::<Vec<_>>(),
        "covers": r.covers.iter().map(|c| json!({
            "index": c.index,
            "description": c.description.as_deref(),
            "status": c.status.map(|s| s.name()),
        })).collect::<Vec<_>>(),
        "console": r.console.as_deref(),
        "truncated": r.truncated,
    })
}

/// A vendor's name; an enterprise number devtel has no name for is shown as `enterprise:N`.
pub fn vendor_name(v: Vendor) -> String {
    match v {
        Vendor::Unrecognised(pen) => format!("enterprise:{pen}"),
        known => known.name().to_string(),
    }
}

fn supply_json(s: &Supply) -> Value {
    json!({
        "index": s.index,
        "description": s.description.as_str(),
        "kind": s.kind.map(|k| k.name()),
        "class": s.class.map(|c| c.name()),
        "colour": s.colour.as_deref(),
        "unit": s.unit.map(|u| u.name()),
        "level": s.level.map(Level::raw),
        "max_capacity": s.max_capacity.map(|c| c.raw()),
        "level_percent": s.level_percent(),
        "state": s.state().name(),
    })
}

fn tray_json(t: &Tray) -> Value {
    json!({
        "index": t.index,
        "name": t.name.as_deref(),
        "kind": t.kind.map(|k| k.name()),
        "media": t.media.as_deref(),
        "level": t.level.map(Level::raw),
        "max_capacity": t.max_capacity.map(|c| c.raw()),
        "level_percent": t.level_percent(),
    })
}

/// The human-readable form of [`printer_json`].
pub fn printer_text(host: &str, r: &PrinterReading) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let or = |s: Option<&str>| s.unwrap_or("?").to_string();
    let _ = writeln!(
        out,
        "{host}: copier, {} {} (serial {}, firmware {})",
        r.vendor.map(vendor_name).unwrap_or_else(|| "?".into()),
        or(r.model.as_deref()),
        or(r.serial.as_deref()),
        or(r.firmware.as_deref()),
    );
    let conditions: Vec<_> = r
        .status
        .errors
        .map(|e| e.conditions().map(|c| c.name()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "status: {} (device {}, printer {}){}",
        r.status.health().name(),
        or(r.status.device.map(|s| s.name())),
        or(r.status.printer.map(|s| s.name())),
        if conditions.is_empty() {
            String::new()
        } else {
            format!("; conditions: {}", conditions.join(", "))
        }
    );
    if let Some(m) = r.life_count() {
        let _ = writeln!(
            out,
            "pages: {} {} (prtMarkerLifeCount)",
            m.life_count,
            or(m.unit.map(|u| u.name()))
        );
    }
    let c = &r.counters;
    let parts: Vec<String> = [
        ("total", c.total),
        ("mono", c.mono),
        ("colour", c.colour),
        ("print", c.print),
        ("copy", c.copy),
        ("scan", c.scan),
        ("fax", c.fax),
        ("duplex", c.duplex),
    ]
    .iter()
    .filter_map(|(n, v)| v.map(|v| format!("{n} {v}")))
    .collect();
    if !parts.is_empty() {
        let _ = writeln!(out, "vendor counters: {}", parts.join(", "));
    }
    for s in &r.supplies {
        let pct = s
            .level_percent()
            .map(|p| format!("{p}%"))
            .unwrap_or_else(|| format!("level {}", s.level.map(Level::raw).unwrap_or(-2)));
        let _ = writeln!(
            out,
            "  supply {:>2} {:<40} {:<14} {:<8} {:>6} {}",
            s.index,
            s.description.as_str(),
            or(s.kind.map(|k| k.name())),
            or(s.colour.as_deref()),
            pct,
            s.state().name()
        );
    }
    for t in &r.trays {
        let _ = writeln!(
            out,
            "  tray {:>2} {:<20} level {} of {}",
            t.index,
            or(t.name.as_deref()),
            t.level.map(Level::raw).unwrap_or(-2),
            t.max_capacity.map(|c| c.raw()).unwrap_or(-2)
        );
    }
    for a in &r.alerts {
        let _ = writeln!(
            out,
            "  alert {} {} {}",
            or(a.severity.map(|s| s.name())),
            or(a.code.and_then(alert_code_name)),
            or(a.description.as_deref())
        );
    }
    out
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    devtel_protocol::MacDisplay(mac).to_string()
}

/// The probe JSON of a dock switch: the common keys plus `seats` and an `occupancy` tally.
pub fn dock_json(r: &DockReading) -> Value {
    let (occupied, idle, empty, other) = r.tally();
    json!({
        "kind": "dock",
        "vendor": r.vendor.map(vendor_name),
        "model": r.model.as_deref(),
        "serial": null,
        "firmware": r.firmware.as_deref(),
        "uptime_ticks": r.uptime_ticks,
        "status": r.health().name(),
        "fdb_read": r.fdb_read,
        "occupancy": {"occupied": occupied, "idle": idle, "empty": empty, "other": other},
        "seats": r.seats.iter().map(seat_json).collect::<Vec<_>>(),
        "counters": {},
        "supplies": [],
        "trays": [],
        "alerts": [],
        "conditions": [],
        "truncated": r.truncated,
    })
}

/// One seat as JSON (shared by the probe and the gateway's documents).
pub fn seat_json(s: &Seat) -> Value {
    json!({
        "if_index": s.if_index,
        "name": s.name.as_deref(),
        "label": s.label.as_deref(),
        "link": s.link.map(|l| l.name()),
        "speed_mbps": s.speed_mbps,
        "last_change_ticks": s.last_change_ticks,
        "occupancy": s.occupancy.name(),
        "clients": s.clients,
        "client_mac": s.client_mac.map(|m| mac_text(&m)),
        "phone": s.phone.as_ref().map(|p| json!({
            "mac": p.mac.map(|m| mac_text(&m)),
            "model": p.model.as_deref(),
            "firmware": p.firmware.as_deref(),
            "serial": p.serial.as_deref(),
        })),
    })
}

/// The text form of a dock switch: one line per seat.
pub fn dock_text(host: &str, r: &DockReading) -> String {
    let (occupied, idle, empty, other) = r.tally();
    let mut out = format!(
        "{host}: dock switch, {} {} (firmware {}): {} seats, {occupied} occupied, {idle} idle, {empty} empty, {other} uplink/unknown{}\n",
        r.vendor.map(vendor_name).unwrap_or_else(|| "?".into()),
        r.model.as_deref().unwrap_or("?"),
        r.firmware.as_deref().unwrap_or("?"),
        r.seats.len(),
        if r.fdb_read { "" } else { " (forwarding database not readable)" },
    );
    for s in &r.seats {
        out.push_str(&format!(
            "  {:>6} {:<24} {:<9} {:<8}{}{}{}\n",
            s.if_index,
            s.name.as_deref().unwrap_or("?"),
            s.occupancy.name(),
            s.link.map(|l| l.name()).unwrap_or("?"),
            s.label
                .as_deref()
                .map(|l| format!(" \"{l}\""))
                .unwrap_or_default(),
            s.client_mac
                .map(|m| format!(
                    " client {}{}",
                    mac_text(&m),
                    if s.clients > 1 {
                        format!(" (+{} more)", s.clients - 1)
                    } else {
                        String::new()
                    }
                ))
                .unwrap_or_default(),
            s.phone
                .as_ref()
                .map(|p| format!(" phone {}", p.model.as_deref().unwrap_or("?")))
                .unwrap_or_default(),
        ));
    }
    out
}

/// `probe --json` for a phone: the common identification fields, `status` from line
/// registration, and `lines`; the copier-only lists are present and empty.
pub fn phone_json(r: &PhoneReading) -> Value {
    json!({
        "kind": "phone",
        "vendor": r.vendor.map(vendor_name),
        "model": r.model.as_deref(),
        "serial": r.serial.as_deref(),
        "firmware": r.firmware.as_deref(),
        "mac": r.mac.map(|m| mac_text(&m)),
        "uptime_ticks": r.uptime_ticks,
        "status": r.health().name(),
        "lines": r.lines.iter().map(|l| json!({
            "index": l.index,
            "number": l.number.as_deref(),
            "registration": l.registration.name(),
            "hook": l.hook.map(|h| h.name()),
        })).collect::<Vec<_>>(),
        "counters": {},
        "supplies": [],
        "trays": [],
        "alerts": [],
        "conditions": [],
        "truncated": r.truncated,
    })
}
