//! The aggregator: per-device latest state and per-unit rollups, with no I/O and no clock.
//!
//! Design constraints:
//! - State is keyed by device; unit figures are *derived* from the devices currently in the unit,
//!   never accumulated. So applying the same envelope twice, or envelopes in any order, gives the
//!   same figures (a redelivered QoS 1 message cannot double count).
//! - A reading older than the device's current one (by envelope timestamp, then sequence) is
//!   ignored and counted as stale.
//! - A device that stops answering keeps its last known counters and supplies; only its status
//!   becomes `unreachable`.
//! - Every document is a pure function of the state; the MQTT and HTTP layers only serialize it.

use std::collections::{BTreeMap, BTreeSet};

use devtel_protocol::{
    CounterUnit, DeviceKind, DockReading, Envelope, Health, NoResponseCause, PhoneReading,
    PrinterReading, Reading,
};
use serde::Serialize;

use crate::deliveries::{Deliveries, Delivery, EpochReport};

/// What happened to one reading offered to [`Aggregator::ingest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the device's state changed.
    Applied,
    /// The same (collector, epoch, seq) was received before (a redelivery): not applied again.
    Duplicate,
    /// Older than the device's current reading.
    Stale,
}

/// Per-device state.
#[derive(Debug, Clone)]
struct DeviceState {
    unit: String,
    kind: DeviceKind,
    collector: String,
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    /// The last poll's outcome when the device did not answer.
    no_response: Option<NoResponseCause>,
    /// The last successful reading (kept while the device is unreachable).
    last_reading: Option<PrinterReading>,
    /// The last successful phone reading (kept while the phone is unreachable).
    last_phone: Option<PhoneReading>,
    /// The last successful dock-switch reading (kept while the switch is unreachable).
    last_dock: Option<DockReading>,
}

/// All state of the gateway's figures.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    devices: BTreeMap<String, DeviceState>,
    deliveries: Deliveries,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies every reading of `envelope`. Returns each reading's outcome and the units whose
    /// documents changed (sorted, without repeats).
    pub fn ingest(&mut self, envelope: &Envelope) -> (Vec<Outcome>, Vec<String>) {
        let mut outcomes = Vec::with_capacity(envelope.readings.len());
        let mut changed = BTreeSet::new();
        let delivery = self.deliveries.record(
            &envelope.collector,
            envelope.epoch,
            envelope.seq,
            envelope.timestamp_ms,
        );
        if delivery == Delivery::Repeat {
            outcomes.resize(envelope.readings.len(), Outcome::Duplicate);
            return (outcomes, Vec::new());
        }
        for reading in &envelope.readings {
            let device = reading.device().to_string();
            let key = (envelope.timestamp_ms, envelope.epoch, envelope.seq);
            if let Some(current) = self.devices.get(&device) {
                if key < (current.timestamp_ms, current.epoch, current.seq) {
                    outcomes.push(Outcome::Stale);
                    continue;
                }
            }
            let previous = self.devices.remove(&device);
            if let Some(prev) = &previous {
                changed.insert(prev.unit.clone());
            }
            let (no_response, last_reading, last_phone, last_dock) = match reading {
                Reading::Printer(r) => (None, Some(r.clone()), None, None),
                Reading::Phone(p) => (None, None, Some(p.clone()), None),
                Reading::Dock(d) => (None, None, None, Some(d.clone())),
                Reading::NoResponse(n) => {
                    let previous = previous.map(|p| (p.last_reading, p.last_phone, p.last_dock));
                    let (printer, phone, dock) = previous.unwrap_or_default();
                    (Some(n.cause), printer, phone, dock)
                }
            };
            changed.insert(reading.unit().to_string());
            self.devices.insert(
                device,
                DeviceState {
                    unit: reading.unit().to_string(),
                    kind: reading.kind(),
                    collector: envelope.collector.to_string(),
                    epoch: envelope.epoch,
                    seq: envelope.seq,
                    timestamp_ms: envelope.timestamp_ms,
                    no_response,
                    last_reading,
                    last_phone,
                    last_dock,
                },
            );
            outcomes.push(Outcome::Applied);
        }
        (outcomes, changed.into_iter().collect())
    }

    /// Per collector and epoch: envelopes received, repeats dropped, sequence numbers missing.
    pub fn deliveries(&self) -> BTreeMap<String, Vec<EpochReport>> {
        self.deliveries.report()
    }

    /// Ids of all units that have devices, sorted.
    pub fn unit_ids(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.devices.values().map(|d| d.unit.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// The document of `unit`, or `None` when no device is in it.
    pub fn unit(&self, unit: &str) -> Option<UnitDoc> {
        let devices: Vec<DeviceDoc> = self
            .devices
            .iter()
            .filter(|(_, d)| d.unit == unit)
            .map(|(id, d)| device_doc(id, d))
            .collect();
        if devices.is_empty() {
            return None;
        }
        let mut status = StatusCounts::default();
        let mut pages = Pages::default();
        let mut updated_at_ms = 0;
        let mut seats = SeatCounts::default();
        for d in &devices {
            for seat in &d.seats {
                match (d.status, seat.occupancy) {
                    (_, "uplink") => continue,
                    ("unreachable", _) | (_, "unknown") => seats.unknown += 1,
                    (_, "occupied") => seats.occupied += 1,
                    (_, "idle") => seats.idle += 1,
                    _ => seats.empty += 1,
                }
                seats.total += 1;
                if seat.phone.is_some() {
                    seats.with_phone += 1;
                }
            }
            updated_at_ms = updated_at_ms.max(d.last_seen_ms);
            match d.status {
                "ok" => status.ok += 1,
                "warning" => status.warning += 1,
                "error" => status.error += 1,
                "unreachable" => status.unreachable += 1,
                _ => status.unknown += 1,
            }
            if let Some(count) = d.page_count {
                pages.total += count;
                let unit = d.page_count_unit.unwrap_or("unspecified");
                *pages.by_counter_unit.entry(unit).or_default() += count;
            }
        }
        let known = seats.occupied + seats.idle + seats.empty;
        if known > 0 {
            // One decimal: 2 of 3 seats is 66.7 %.
            seats.occupied_percent =
                Some((f64::from(seats.occupied) * 1000.0 / f64::from(known)).round() / 10.0);
        }
        Some(UnitDoc {
            unit: unit.to_string(),
            updated_at_ms,
            devices_total: devices.len(),
            status,
            pages,
            seats,
            devices,
        })
    }

    /// All unit documents.
    pub fn units(&self) -> Vec<UnitDoc> {
        self.unit_ids()
            .iter()
            .filter_map(|u| self.unit(u))
            .collect()
    }

    /// Number of devices known.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }
}

/// The per-unit document: served at `/api/units/{unit}` and published retained on
/// `devtel/v1/units/{unit}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitDoc {
    /// Unit id.
    pub unit: String,
    /// Newest device reading in the unit, ms since the Unix epoch.
    pub updated_at_ms: u64,
    /// Devices in the unit.
    pub devices_total: usize,
    /// Devices by status.
    pub status: StatusCounts,
    /// Lifetime page counters summed over the unit's devices.
    pub pages: Pages,
    /// Dock seats of the unit's dock switches, by occupancy (uplinks not counted).
    pub seats: SeatCounts,
    /// The devices, by id.
    pub devices: Vec<DeviceDoc>,
}

/// Devices per status.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StatusCounts {
    /// Running, nothing to do.
    pub ok: u32,
    /// Needs attention soon.
    pub warning: u32,
    /// Not printing.
    pub error: u32,
    /// Did not answer the last poll.
    pub unreachable: u32,
    /// Answered without a usable status.
    pub unknown: u32,
}

/// Dock seats of a unit, by occupancy now.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SeatCounts {
    /// Seats watched (uplinks excluded).
    pub total: u32,
    /// A laptop is docked.
    pub occupied: u32,
    /// Link up, nobody docked.
    pub idle: u32,
    /// Link down.
    pub empty: u32,
    /// The switch is unreachable or could not say (no forwarding database).
    pub unknown: u32,
    /// Seats with a phone in front of the dock.
    pub with_phone: u32,
    /// occupied / (occupied + idle + empty) in percent, one decimal; null without such seats.
    pub occupied_percent: Option<f64>,
}

/// Page totals of a unit.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Pages {
    /// Sum of every device's lifetime counter (prtMarkerLifeCount of the first marker).
    pub total: u64,
    /// The same sum split by the counters' unit (impressions count a duplex sheet twice,
    /// sheets once; `unspecified` when the device does not say).
    pub by_counter_unit: BTreeMap<&'static str, u64>,
}

/// One device in a unit document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceDoc {
    /// Device id.
    pub device: String,
    /// Unit id.
    pub unit: String,
    /// `copier`, `phone` or `dock`.
    pub kind: &'static str,
    /// `ok`, `warning`, `error`, `unknown` or `unreachable`.
    pub status: &'static str,
    /// Why the last poll got no answer (`timeout`, `network`, `auth`, `bad_response`), else null.
    pub no_response_cause: Option<&'static str>,
    /// Collector that sent the last reading.
    pub collector: String,
    /// Its sequence number.
    pub seq: u64,
    /// When the device was last polled, ms since the Unix epoch.
    pub last_seen_ms: u64,
    /// Model string.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// hrDeviceStatus name.
    pub device_status: Option<&'static str>,
    /// hrPrinterStatus name.
    pub printer_status: Option<&'static str>,
    /// Set hrPrinterDetectedErrorState conditions.
    pub conditions: Vec<&'static str>,
    /// Lifetime page counter (first marker).
    pub page_count: Option<u64>,
    /// Its unit (`impressions`, `sheets`, ...).
    pub page_count_unit: Option<&'static str>,
    /// Supplies in table order.
    pub supplies: Vec<SupplyDoc>,
    /// Phone lines (phones only): number, `registered`/`not_registered`/`unknown`, hook state.
    pub lines: Vec<LineDoc>,
    /// Dock seats (dock switches only), in ifIndex order.
    pub seats: Vec<SeatDoc>,
}

/// One dock seat (a switch port) in a device document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SeatDoc {
    /// ifIndex.
    pub if_index: u32,
    /// ifName.
    pub name: Option<String>,
    /// ifAlias (the desk label).
    pub label: Option<String>,
    /// `up`, `down`, ...
    pub link: Option<&'static str>,
    /// Link speed in Mb/s.
    pub speed_mbps: Option<u32>,
    /// When the link last changed (ms since the Unix epoch), from ifLastChange and sysUpTime;
    /// null when the switch does not say or the change predates its agent's start.
    pub link_since_ms: Option<u64>,
    /// `occupied`, `idle`, `empty`, `uplink` or `unknown`.
    pub occupancy: &'static str,
    /// Client MACs learned on the port.
    pub clients: u16,
    /// The lowest client MAC, `aa:bb:cc:dd:ee:ff`.
    pub client_mac: Option<String>,
    /// The phone in front of the dock: model, else its MAC.
    pub phone: Option<String>,
}

/// One phone line in a device document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineDoc {
    /// Line / port number.
    pub index: u32,
    /// Extension, when the device exposes it.
    pub number: Option<String>,
    /// `registered`, `not_registered` or `unknown`.
    pub registration: &'static str,
    /// `on_hook`, `off_hook`, `unknown`, or null.
    pub hook: Option<&'static str>,
}

/// One supply in a device document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SupplyDoc {
    /// prtMarkerSuppliesIndex.
    pub index: u32,
    /// Description.
    pub description: String,
    /// prtMarkerSuppliesType name.
    pub kind: Option<&'static str>,
    /// Colour, lower case.
    pub colour: Option<String>,
    /// Raw prtMarkerSuppliesLevel: -1 other, -2 unknown, -3 some remaining are kept as sent.
    pub level: Option<i64>,
    /// Raw prtMarkerSuppliesMaxCapacity: -1 other, -2 unknown kept as sent.
    pub max_capacity: Option<i64>,
    /// Percent, only where level >= 0 and max_capacity > 0.
    pub level_percent: Option<u8>,
}

/// Wall time of a link change: the poll time minus (sysUpTime − ifLastChange), both in
/// hundredths of a second; TimeTicks wrap after 497 days, so the difference is taken modulo
/// 2^32. ifLastChange 0 means "before the agent started": unknown.
fn link_since_ms(poll_ms: u64, uptime: Option<u32>, last_change: Option<u32>) -> Option<u64> {
    let (uptime, last_change) = (uptime?, last_change?);
    if last_change == 0 {
        return None;
    }
    let ago_ms = u64::from(uptime.wrapping_sub(last_change)) * 10;
    poll_ms.checked_sub(ago_ms)
}

fn device_doc(id: &str, d: &DeviceState) -> DeviceDoc {
    let r = d.last_reading.as_ref();
    let phone = d.last_phone.as_ref();
    let dock = d.last_dock.as_ref();
    let status = match (d.no_response, r, phone, dock) {
        (Some(_), ..) => "unreachable",
        (None, Some(r), _, _) => r.status.health().name(),
        (None, None, Some(p), _) => p.health().name(),
        (None, None, None, Some(d)) => d.health().name(),
        (None, None, None, None) => Health::Unknown.name(),
    };
    let mac = |m: &[u8; 6]| devtel_protocol::MacDisplay(m).to_string();
    let life = r.and_then(|r| r.life_count());
    DeviceDoc {
        device: id.to_string(),
        unit: d.unit.clone(),
        kind: d.kind.name(),
        status,
        no_response_cause: d.no_response.map(NoResponseCause::name),
        collector: d.collector.clone(),
        seq: d.seq,
        last_seen_ms: d.timestamp_ms,
        model: r
            .and_then(|r| r.model.as_ref())
            .or_else(|| phone.and_then(|p| p.model.as_ref()))
            .or_else(|| dock.and_then(|d| d.model.as_ref()))
            .map(|s| s.to_string()),
        serial: r
            .and_then(|r| r.serial.as_ref())
            .or_else(|| phone.and_then(|p| p.serial.as_ref()))
            .map(|s| s.to_string()),
        lines: phone
            .map(|p| {
                p.lines
                    .iter()
                    .map(|l| LineDoc {
                        index: l.index,
                        number: l.number.as_ref().map(|n| n.to_string()),
                        registration: l.registration.name(),
                        hook: l.hook.map(|h| h.name()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        seats: dock
            .map(|dock| {
                dock.seats
                    .iter()
                    .map(|s| SeatDoc {
                        if_index: s.if_index,
                        name: s.name.as_ref().map(|n| n.to_string()),
                        label: s.label.as_ref().map(|n| n.to_string()),
                        link: s.link.map(|l| l.name()),
                        speed_mbps: s.speed_mbps,
                        link_since_ms: link_since_ms(
                            d.timestamp_ms,
                            dock.uptime_ticks,
                            s.last_change_ticks,
                        ),
                        occupancy: s.occupancy.name(),
                        clients: s.clients,
                        client_mac: s.client_mac.as_ref().map(mac),
                        phone: s.phone.as_ref().and_then(|p| {
                            p.model
                                .as_ref()
                                .map(|m| m.to_string())
                                .or_else(|| p.mac.as_ref().map(mac))
                        }),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        device_status: r.and_then(|r| r.status.device).map(|s| s.name()),
        printer_status: r.and_then(|r| r.status.printer).map(|s| s.name()),
        conditions: r
            .and_then(|r| r.status.errors)
            .map(|e| e.conditions().map(|c| c.name()).collect())
            .unwrap_or_default(),
        page_count: life.map(|m| u64::from(m.life_count)),
        page_count_unit: life.and_then(|m| m.unit).map(CounterUnit::name),
        supplies: r
            .map(|r| {
                r.supplies
                    .iter()
                    .map(|s| SupplyDoc {
                        index: s.index,
                        description: s.description.to_string(),
                        kind: s.kind.map(|k| k.name()),
                        colour: s.colour.as_ref().map(|c| c.to_string()),
                        level: s.level.map(|l| l.raw()),
                        max_capacity: s.max_capacity.map(|c| c.raw()),
                        level_percent: s.level_percent(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::{
        Capacity, DeviceStatus, ErrorBits, Level, MarkerCounter, NoResponse, PrinterStatus, Supply,
    };

    fn printer(device: &str, unit: &str, pages: u32, toner: i32) -> Reading {
        let mut r = PrinterReading {
            device: device.try_into().unwrap(),
            unit: unit.try_into().unwrap(),
            model: None,
            serial: None,
            uptime_ticks: None,
            status: PrinterStatus {
                device: Some(DeviceStatus::Running),
                printer: None,
                errors: Some(ErrorBits(0)),
            },
            ..PrinterReading::default()
        };
        r.markers
            .push(MarkerCounter {
                index: 1,
                unit: Some(CounterUnit::Impressions),
                life_count: pages,
            })
            .unwrap();
        r.supplies
            .push(Supply {
                index: 1,
                kind: None,
                class: None,
                unit: None,
                colour: None,
                description: "Black".try_into().unwrap(),
                max_capacity: Some(Capacity::Value(100)),
                level: Some(Level::from_raw(toner)),
            })
            .unwrap();
        Reading::Printer(r)
    }

    fn envelope(collector: &str, seq: u64, ts: u64, reading: Reading) -> Envelope {
        let mut e = Envelope::new(collector.try_into().unwrap(), 1, seq, ts);
        e.readings.push(reading).unwrap();
        e
    }

    #[test]
    fn phones_report_line_registration_and_stay_known_when_silent() {
        use devtel_protocol::{HookState, PhoneLine, Registration};
        let mut p = PhoneReading {
            device: "ata1".try_into().unwrap(),
            unit: "u1".try_into().unwrap(),
            model: Some("HT802".try_into().unwrap()),
            ..PhoneReading::default()
        };
        for (index, registration) in [
            (1, Registration::Registered),
            (2, Registration::NotRegistered),
        ] {
            p.lines
                .push(PhoneLine {
                    index,
                    number: None,
                    registration,
                    hook: Some(HookState::OnHook),
                })
                .unwrap();
        }
        let mut agg = Aggregator::new();
        agg.ingest(&envelope("c", 0, 10, Reading::Phone(p)));
        let doc = agg.unit("u1").unwrap();
        assert_eq!(doc.status.warning, 1, "a line is not registered");
        let d = &doc.devices[0];
        assert_eq!((d.kind, d.model.as_deref()), ("phone", Some("HT802")));
        assert_eq!(d.lines[1].registration, "not_registered");
        assert_eq!(d.page_count, None);
        agg.ingest(&envelope(
            "c",
            1,
            20,
            Reading::NoResponse(NoResponse {
                device: "ata1".try_into().unwrap(),
                unit: "u1".try_into().unwrap(),
                kind: DeviceKind::Phone,
                cause: NoResponseCause::Timeout,
            }),
        ));
        let d = &agg.unit("u1").unwrap().devices[0];
        assert_eq!(d.status, "unreachable");
        assert_eq!(d.lines.len(), 2, "last known lines kept");
    }

    #[test]
    fn link_change_times_handle_unknown_and_wrapped_ticks() {
        // linksys: sysUpTime 514684700, gi1 ifLastChange 337747210 → 1,769,374.9 s earlier.
        assert_eq!(
            link_since_ms(10_000_000_000, Some(514_684_700), Some(337_747_210)),
            Some(10_000_000_000 - 1_769_374_900)
        );
        assert_eq!(
            link_since_ms(10_000, Some(500), Some(0)),
            None,
            "before the agent"
        );
        assert_eq!(link_since_ms(10_000, None, Some(5)), None, "no sysUpTime");
        // Uptime wrapped past 2^32 since the change: 10 ticks before the wrap, 5 after.
        assert_eq!(
            link_since_ms(1_000_000, Some(5), Some(u32::MAX - 9)),
            Some(1_000_000 - 150)
        );
    }

    #[test]
    fn dock_seats_roll_up_per_unit_and_turn_unknown_when_the_switch_is_silent() {
        use devtel_protocol::{DockReading, LinkStatus, Neighbour, Occupancy, Seat};
        let seat = |if_index: u32, occupancy: Occupancy, phone: bool| Seat {
            if_index,
            name: Some(format!("gi{if_index}").as_str().try_into().unwrap()),
            label: None,
            link: Some(if occupancy == Occupancy::Empty {
                LinkStatus::Down
            } else {
                LinkStatus::Up
            }),
            speed_mbps: Some(1000),
            last_change_ticks: Some(0),
            clients: u16::from(occupancy == Occupancy::Occupied),
            client_mac: (occupancy == Occupancy::Occupied).then_some([0, 0xe0, 0x4c, 1, 2, 3]),
            phone: phone.then(|| Neighbour {
                model: Some("VVX 450".try_into().unwrap()),
                ..Neighbour::default()
            }),
            occupancy,
        };
        let mut d = DockReading {
            device: "sw1".try_into().unwrap(),
            unit: "ba.floor-3".try_into().unwrap(),
            fdb_read: true,
            ..DockReading::default()
        };
        for s in [
            seat(1, Occupancy::Occupied, true),
            seat(2, Occupancy::Occupied, false),
            seat(3, Occupancy::Idle, false),
            seat(4, Occupancy::Empty, false),
            seat(5, Occupancy::Uplink, false),
        ] {
            d.seats.push(s).unwrap();
        }
        let mut agg = Aggregator::new();
        agg.ingest(&envelope("c", 0, 10, Reading::Dock(d)));
        let doc = agg.unit("ba.floor-3").unwrap();
        assert_eq!(doc.seats.total, 4, "the uplink is no seat");
        assert_eq!(
            (
                doc.seats.occupied,
                doc.seats.idle,
                doc.seats.empty,
                doc.seats.unknown
            ),
            (2, 1, 1, 0)
        );
        assert_eq!(doc.seats.with_phone, 1);
        assert_eq!(doc.seats.occupied_percent, Some(50.0));
        assert_eq!(doc.status.ok, 1);
        let dev = &doc.devices[0];
        assert_eq!(dev.kind, "dock");
        assert_eq!(
            dev.seats[0].client_mac.as_deref(),
            Some("00:e0:4c:01:02:03")
        );
        assert_eq!(dev.seats[0].phone.as_deref(), Some("VVX 450"));

        // The switch stops answering: its seats are unknown, not "still occupied".
        agg.ingest(&envelope(
            "c",
            1,
            20,
            Reading::NoResponse(NoResponse {
                device: "sw1".try_into().unwrap(),
                unit: "ba.floor-3".try_into().unwrap(),
                kind: DeviceKind::Dock,
                cause: NoResponseCause::Timeout,
            }),
        ));
        let doc = agg.unit("ba.floor-3").unwrap();
        assert_eq!(
            (doc.seats.total, doc.seats.unknown, doc.seats.occupied),
            (4, 4, 0)
        );
        assert_eq!(doc.seats.occupied_percent, None);
        assert_eq!(doc.status.unreachable, 1);
    }

    #[test]
    fn unit_totals_are_derived_from_the_latest_reading_of_each_device() {
        let mut agg = Aggregator::new();
        agg.ingest(&envelope("c", 0, 10, printer("a", "u1", 100, 50)));
        agg.ingest(&envelope("c", 1, 10, printer("b", "u1", 20, -3)));
        agg.ingest(&envelope("c", 2, 10, printer("x", "u2", 7, 1)));
        agg.ingest(&envelope("c", 3, 20, printer("a", "u1", 130, 45)));
        let u1 = agg.unit("u1").unwrap();
        assert_eq!(u1.pages.total, 150);
        assert_eq!(u1.pages.by_counter_unit.get("impressions"), Some(&150));
        assert_eq!(u1.devices_total, 2);
        assert_eq!(u1.status.ok, 2);
        assert_eq!(u1.devices[1].supplies[0].level, Some(-3));
        assert_eq!(u1.devices[1].supplies[0].level_percent, None);
        assert_eq!(agg.unit("u2").unwrap().pages.total, 7);
        assert_eq!(agg.unit_ids(), ["u1", "u2"]);
    }

    #[test]
    fn redelivered_and_older_envelopes_change_nothing() {
        let mut agg = Aggregator::new();
        let e1 = envelope("c", 5, 100, printer("a", "u", 100, 50));
        assert_eq!(agg.ingest(&e1).0, [Outcome::Applied]);
        let before = agg.unit("u");
        assert_eq!(agg.ingest(&e1), (vec![Outcome::Duplicate], vec![]));
        assert_eq!(
            agg.ingest(&envelope("c", 4, 90, printer("a", "u", 90, 60)))
                .0,
            [Outcome::Stale]
        );
        assert_eq!(agg.unit("u"), before);
    }

    #[test]
    fn an_unreachable_device_keeps_its_counters_but_changes_status() {
        let mut agg = Aggregator::new();
        agg.ingest(&envelope("c", 0, 10, printer("a", "u", 100, 50)));
        let silent = Reading::NoResponse(NoResponse {
            device: "a".try_into().unwrap(),
            unit: "u".try_into().unwrap(),
            kind: DeviceKind::Copier,
            cause: NoResponseCause::Timeout,
        });
        agg.ingest(&envelope("c", 1, 20, silent));
        let doc = agg.unit("u").unwrap();
        assert_eq!(doc.status.unreachable, 1);
        assert_eq!(doc.devices[0].no_response_cause, Some("timeout"));
        assert_eq!(doc.pages.total, 100);
    }

    #[test]
    fn a_device_that_moves_unit_leaves_the_old_one() {
        let mut agg = Aggregator::new();
        agg.ingest(&envelope("c", 0, 10, printer("a", "old", 100, 50)));
        let (_, changed) = agg.ingest(&envelope("c", 1, 20, printer("a", "new", 101, 50)));
        assert_eq!(changed, ["new", "old"]);
        assert_eq!(agg.unit("old"), None);
        assert_eq!(agg.unit("new").unwrap().pages.total, 101);
    }
}
