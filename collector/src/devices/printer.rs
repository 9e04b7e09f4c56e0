//! Copiers and printers: Printer-MIB (RFC 3805) and HOST-RESOURCES-MIB (RFC 2790) to
//! [`PrinterReading`].
//!
//! [`plan`] says what to fetch; [`map`] is a pure function from the fetched varbinds to the
//! reading. Rules taken from the field guide (`shared/docs/mib-field-guide.md` §1):
//! - the printer's hrDeviceIndex is found (hrDeviceType = hrDevicePrinter), never assumed to be 1;
//! - supply levels and capacities keep -1/-2/-3 as variants;
//! - a supply's colour comes from prtMarkerColorantValue through its colorant index, else from
//!   its description (EN/DE/FR words), else it has none;
//! - a missing column leaves its field `None`; the device still maps.

use devtel_protocol::{
    Capacity, CounterUnit, DeviceStatus, ErrorBits, Level, MarkerCounter, PrinterReading,
    PrinterState, PrinterStatus, Supply, SupplyClass, SupplyType, SupplyUnit, MAX_COLOUR_LEN,
};

use super::{text, DeviceIdentity, MapError, Plan};
use crate::snmp::{oid, Oid, Value, VarbindSet};

/// OIDs this mapping reads.
pub mod oids {
    /// sysDescr.0
    pub const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
    /// sysObjectID.0
    pub const SYS_OBJECT_ID: &str = "1.3.6.1.2.1.1.2.0";
    /// sysUpTime.0
    pub const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";
    /// hrDeviceType column.
    pub const HR_DEVICE_TYPE: &str = "1.3.6.1.2.1.25.3.2.1.2";
    /// hrDeviceDescr column.
    pub const HR_DEVICE_DESCR: &str = "1.3.6.1.2.1.25.3.2.1.3";
    /// hrDeviceStatus column.
    pub const HR_DEVICE_STATUS: &str = "1.3.6.1.2.1.25.3.2.1.5";
    /// hrPrinterTable entry (status and detected error state).
    pub const HR_PRINTER_ENTRY: &str = "1.3.6.1.2.1.25.3.5.1";
    /// hrPrinterStatus column.
    pub const HR_PRINTER_STATUS: &str = "1.3.6.1.2.1.25.3.5.1.1";
    /// hrPrinterDetectedErrorState column.
    pub const HR_PRINTER_ERRORS: &str = "1.3.6.1.2.1.25.3.5.1.2";
    /// hrDeviceType value of a printer row.
    pub const HR_DEVICE_PRINTER: &str = "1.3.6.1.2.1.25.3.1.5";
    /// prtGeneralSerialNumber column.
    pub const PRT_SERIAL: &str = "1.3.6.1.2.1.43.5.1.1.17";
    /// prtMarkerCounterUnit column.
    pub const PRT_MARKER_COUNTER_UNIT: &str = "1.3.6.1.2.1.43.10.2.1.3";
    /// prtMarkerLifeCount column.
    pub const PRT_MARKER_LIFE_COUNT: &str = "1.3.6.1.2.1.43.10.2.1.4";
    /// prtMarkerSuppliesEntry (columns 2..9).
    pub const PRT_SUPPLIES_ENTRY: &str = "1.3.6.1.2.1.43.11.1.1";
    /// prtMarkerColorantValue column.
    pub const PRT_COLORANT_VALUE: &str = "1.3.6.1.2.1.43.12.1.1.4";
}

/// What to fetch for a printer: a GET of the system scalars and a walk of each table.
pub fn plan() -> Plan {
    Plan {
        get: vec![
            oid(oids::SYS_DESCR),
            oid(oids::SYS_OBJECT_ID),
            oid(oids::SYS_UPTIME),
        ],
        walk: [
            oids::HR_DEVICE_TYPE,
            oids::HR_DEVICE_DESCR,
            oids::HR_DEVICE_STATUS,
            oids::HR_PRINTER_ENTRY,
            oids::PRT_SERIAL,
            oids::PRT_MARKER_COUNTER_UNIT,
            oids::PRT_MARKER_LIFE_COUNT,
            oids::PRT_SUPPLIES_ENTRY,
            oids::PRT_COLORANT_VALUE,
        ]
        .iter()
        .map(|s| oid(s))
        .collect(),
    }
}

/// Supplies table columns.
const COL_COLORANT_INDEX: u32 = 3;
const COL_CLASS: u32 = 4;
const COL_TYPE: u32 = 5;
const COL_DESCRIPTION: u32 = 6;
const COL_UNIT: u32 = 7;
const COL_MAX_CAPACITY: u32 = 8;
const COL_LEVEL: u32 = 9;

/// Maps one poll of a printer.
///
/// # Errors
/// [`MapError::NotAPrinter`] when the varbinds hold no Printer-MIB or hrPrinter data at all.
pub fn map(id: &DeviceIdentity, vb: &VarbindSet) -> Result<PrinterReading, MapError> {
    let dev = printer_index(vb).ok_or(MapError::NotAPrinter)?;
    let mut truncated = false;

    let at = |column: &str, index: &[u32]| vb.get(&oid(column).child(index));

    let model = at(oids::HR_DEVICE_DESCR, &[dev])
        .or_else(|| vb.get(&oid(oids::SYS_DESCR)))
        .and_then(Value::as_bytes)
        .and_then(|b| text::bounded(b, &mut truncated));
    let serial = at(oids::PRT_SERIAL, &[dev])
        .and_then(Value::as_bytes)
        .and_then(|b| text::bounded(b, &mut truncated));
    let uptime_ticks = vb.get(&oid(oids::SYS_UPTIME)).and_then(Value::as_u32);

    let status = PrinterStatus {
        device: at(oids::HR_DEVICE_STATUS, &[dev])
            .and_then(Value::as_i32)
            .map(DeviceStatus::from_raw),
        printer: at(oids::HR_PRINTER_STATUS, &[dev])
            .and_then(Value::as_i32)
            .map(PrinterState::from_raw),
        errors: at(oids::HR_PRINTER_ERRORS, &[dev])
            .and_then(Value::as_bytes)
            .map(ErrorBits::from_octets),
    };

    let mut reading = PrinterReading {
        device: id.device.clone(),
        unit: id.unit.clone(),
        model,
        serial,
        uptime_ticks,
        status,
        markers: Default::default(),
        supplies: Default::default(),
        truncated,
    };

    let life_root = oid(oids::PRT_MARKER_LIFE_COUNT);
    for (suffix, value) in vb.subtree(&life_root) {
        let [d, marker] = suffix else { continue };
        if *d != dev {
            continue;
        }
        let Some(life_count) = value.as_u32() else {
            continue;
        };
        let unit = at(oids::PRT_MARKER_COUNTER_UNIT, &[dev, *marker])
            .and_then(Value::as_i32)
            .map(CounterUnit::from_raw);
        if reading
            .markers
            .push(MarkerCounter {
                index: *marker,
                unit,
                life_count,
            })
            .is_err()
        {
            reading.truncated = true;
        }
    }

    let supplies_root = oid(oids::PRT_SUPPLIES_ENTRY);
    let supply_indexes = supply_indexes(vb, &supplies_root, dev);
    for index in supply_indexes {
        let col = |c: u32| vb.get(&supplies_root.child(&[c, dev, index]));
        let int = |c: u32| col(c).and_then(Value::as_i32);
        let description = col(COL_DESCRIPTION)
            .and_then(Value::as_bytes)
            .and_then(|b| text::bounded(b, &mut reading.truncated))
            .unwrap_or_default();
        let colorant = int(COL_COLORANT_INDEX)
            .filter(|c| *c > 0)
            .and_then(|c| at(oids::PRT_COLORANT_VALUE, &[dev, c as u32]).and_then(Value::as_bytes));
        let colour = colour_of(colorant, &description);
        let supply = Supply {
            index,
            kind: int(COL_TYPE).map(SupplyType::from_raw),
            class: int(COL_CLASS).map(SupplyClass::from_raw),
            unit: int(COL_UNIT).map(SupplyUnit::from_raw),
            colour,
            description,
            max_capacity: int(COL_MAX_CAPACITY).map(Capacity::from_raw),
            level: int(COL_LEVEL).map(Level::from_raw),
        };
        if reading.supplies.push(supply).is_err() {
            reading.truncated = true;
            break;
        }
    }

    Ok(reading)
}

/// The hrDeviceIndex of the printer: the first hrDeviceTable row of type hrDevicePrinter, else
/// the first index of the marker or supplies tables, else of hrPrinterTable.
fn printer_index(vb: &VarbindSet) -> Option<u32> {
    let printer_type = oid(oids::HR_DEVICE_PRINTER);
    let type_root = oid(oids::HR_DEVICE_TYPE);
    let from_type = vb
        .subtree(&type_root)
        .find(|(_, v)| v.as_oid() == Some(&printer_type))
        .and_then(|(suffix, _)| suffix.first().copied());
    let first_index = |root: &str, skip_column: bool| {
        let root = oid(root);
        let first = vb
            .subtree(&root)
            .next()
            .and_then(|(s, _)| s.get(usize::from(skip_column)).copied());
        first
    };
    from_type
        .or_else(|| first_index(oids::PRT_MARKER_LIFE_COUNT, false))
        .or_else(|| first_index(oids::PRT_SUPPLIES_ENTRY, true))
        .or_else(|| first_index(oids::HR_PRINTER_ENTRY, true))
}

/// Supply indexes of printer `dev`, in table order, from any column present.
fn supply_indexes(vb: &VarbindSet, root: &Oid, dev: u32) -> Vec<u32> {
    let mut indexes: Vec<u32> = vb
        .subtree(root)
        .filter_map(|(suffix, _)| match suffix {
            [_column, d, index] if *d == dev => Some(*index),
            _ => None,
        })
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    indexes
}

/// The supply's colour: the colorant value when there is one, else a colour word in the
/// description. Lower case; `None` when neither names a colour.
fn colour_of(
    colorant: Option<&[u8]>,
    description: &str,
) -> Option<heapless::String<MAX_COLOUR_LEN>> {
    if let Some(bytes) = colorant {
        let mut ignored = false;
        if let Some(name) = text::bounded::<MAX_COLOUR_LEN>(bytes, &mut ignored) {
            let lower = name.to_lowercase();
            if !lower.is_empty() && lower != "unknown" && lower != "other" {
                return heapless::String::try_from(lower.as_str()).ok();
            }
        }
    }
    let d = description.to_lowercase();
    const WORDS: &[(&str, &[&str])] = &[
        ("black", &["black", "schwarz", "noir", "negro"]),
        ("cyan", &["cyan", "zyan", "cian"]),
        ("magenta", &["magenta"]),
        ("yellow", &["yellow", "gelb", "jaune", "amarillo"]),
    ];
    WORDS
        .iter()
        .find(|(_, words)| words.iter().any(|w| d.contains(w)))
        .and_then(|(colour, _)| heapless::String::try_from(*colour).ok())
}

#[cfg(test)]
mod tests {
    //! The mapping on walks of real devices (`../shared/corpus`). Expected values are read from
    //! the raw recording lines independently of the snmprec reader, and compared with what
    //! LibreNMS extracted (`expected/*.json`), with every deliberate difference explained.

    use super::*;
    use crate::snmprec;
    use devtel_protocol::{Condition, Health};

    fn corpus() -> std::path::PathBuf {
        std::env::var_os("DEVTEL_CORPUS")
            .map(Into::into)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
            })
    }

    fn recording(name: &str) -> String {
        let path = corpus().join("snmprec").join(format!("{name}.snmprec"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Maps a recording, merged with its SNMP-context companions (`name@Context.snmprec`): the
    /// HP device of `jetdirect_supplies_context` shows its supplies only in context `Jetdirect`.
    fn mapped(name: &str) -> PrinterReading {
        let mut text = recording(name);
        for entry in std::fs::read_dir(corpus().join("snmprec")).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            if let Some(companion) = file
                .strip_prefix(&format!("{name}@"))
                .and(file.strip_suffix(".snmprec"))
            {
                text.push('\n');
                text.push_str(&recording(companion));
            }
        }
        let (vb, _) = snmprec::parse(&text);
        let id = DeviceIdentity {
            device: "dev".try_into().unwrap(),
            unit: "unit".try_into().unwrap(),
        };
        map(&id, &vb).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The raw value of `oid` in the recording, found by plain text search.
    fn raw(name: &str, oid: &str) -> Option<String> {
        let prefix = format!("{oid}|");
        recording(name).lines().find_map(|l| {
            l.strip_prefix(&prefix).map(|rest| {
                rest.split_once('|')
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default()
            })
        })
    }

    fn raw_int(name: &str, oid: &str) -> i64 {
        raw(name, oid)
            .unwrap_or_else(|| panic!("{name}: no {oid}"))
            .parse()
            .unwrap()
    }

    /// Checks every supply row against the raw lines: level, capacity, type, description.
    fn assert_supplies_match_recording(name: &str, reading: &PrinterReading) {
        let rec = recording(name);
        let level_prefix = "1.3.6.1.2.1.43.11.1.1.9.1.";
        let indexes: Vec<u32> = rec
            .lines()
            .filter_map(|l| l.strip_prefix(level_prefix))
            .filter_map(|rest| rest.split('|').next()?.parse().ok())
            .collect();
        assert_eq!(
            reading.supplies.iter().map(|s| s.index).collect::<Vec<_>>(),
            indexes,
            "{name}: supply rows"
        );
        for s in &reading.supplies {
            let i = s.index;
            assert_eq!(
                s.level.unwrap().raw(),
                raw_int(name, &format!("{level_prefix}{i}")),
                "{name} supply {i} level"
            );
            assert_eq!(
                s.max_capacity.unwrap().raw(),
                raw_int(name, &format!("1.3.6.1.2.1.43.11.1.1.8.1.{i}")),
                "{name} supply {i} capacity"
            );
            assert_eq!(
                i64::from(s.kind.unwrap().raw()),
                raw_int(name, &format!("1.3.6.1.2.1.43.11.1.1.5.1.{i}")),
                "{name} supply {i} type"
            );
            assert_eq!(
                s.description.as_str(),
                raw(name, &format!("1.3.6.1.2.1.43.11.1.1.6.1.{i}")).unwrap(),
                "{name} supply {i} description"
            );
        }
    }

    #[test]
    fn ricoh_mpc3002_colour_copier() {
        let r = mapped("ricoh_mpc3002");
        assert_eq!(r.serial.as_deref(), Some("W492KB03439"));
        assert_eq!(r.model.as_deref(), Some("RICOH Aficio MP C3002"));
        let life = r.life_count().unwrap();
        assert_eq!(
            i64::from(life.life_count),
            raw_int("ricoh_mpc3002", "1.3.6.1.2.1.43.10.2.1.4.1.1")
        );
        assert_eq!(life.life_count, 271_871);
        assert_eq!(life.unit, Some(CounterUnit::Sheets));
        assert_eq!(r.status.device, Some(DeviceStatus::Warning));
        assert_eq!(r.status.errors, Some(ErrorBits(0)));
        assert_eq!(r.status.health(), Health::Warning);
        assert_supplies_match_recording("ricoh_mpc3002", &r);
        let colours: Vec<_> = r.supplies.iter().map(|s| s.colour.as_deref()).collect();
        // No colorant table on this Ricoh: colours come from the descriptions.
        assert_eq!(
            colours,
            [
                Some("black"),
                None,
                Some("cyan"),
                Some("magenta"),
                Some("yellow")
            ]
        );
        assert_eq!(r.supplies[0].level_percent(), Some(40));
        assert_eq!(r.supplies[1].kind, Some(SupplyType::WasteToner));
    }

    #[test]
    fn sharp_mx3570_reports_low_toner_and_fourteen_supplies() {
        let r = mapped("sharp");
        assert_eq!(r.serial.as_deref(), Some("6509415X00"));
        assert_eq!(r.life_count().unwrap().life_count, 121_104);
        assert_eq!(r.life_count().unwrap().unit, Some(CounterUnit::Impressions));
        // hrPrinterDetectedErrorState is one octet 0x20: bit 2, lowToner (MSB-first).
        assert_eq!(
            r.status.errors.unwrap().conditions().collect::<Vec<_>>(),
            [Condition::LowToner]
        );
        assert_eq!(r.status.health(), Health::Warning);
        assert_eq!(r.supplies.len(), 14);
        assert_supplies_match_recording("sharp", &r);
        // Waste toner: capacity -2 (unknown) stays unknown, no percent is invented.
        let waste = &r.supplies[4];
        assert_eq!(waste.max_capacity, Some(Capacity::Unknown));
        assert_eq!(waste.level_percent(), None);
    }

    #[test]
    fn konica_c250i_keeps_some_remaining_and_unknown_apart() {
        let r = mapped("konica_c250i");
        assert_eq!(r.life_count().unwrap().life_count, 33_810);
        assert_eq!(
            r.life_count().unwrap().unit,
            None,
            "the recording has no prtMarkerCounterUnit"
        );
        assert_eq!(
            r.status.errors.unwrap().conditions().collect::<Vec<_>>(),
            [Condition::ServiceRequested]
        );
        assert_supplies_match_recording("konica_c250i", &r);
        let waste = r.supplies.iter().find(|s| s.index == 13).unwrap();
        assert_eq!(waste.level, Some(Level::SomeRemaining));
        assert_eq!(waste.max_capacity, Some(Capacity::Unknown));
        assert_eq!(waste.class, None, "no class column in this recording");
    }

    /// Every printer recording with LibreNMS supplies maps, and agrees with LibreNMS on the
    /// supply rows, descriptions and raw levels wherever LibreNMS kept the raw value.
    #[test]
    fn agrees_with_librenms_on_every_recorded_printer() {
        let dir = corpus().join("expected");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let Some(supplies) =
                json["printer-supplies"]["discovery"]["printer_supplies"].as_array()
            else {
                continue;
            };
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let reading = mapped(&name);
            for s in supplies {
                let oid = s["supply_oid"].as_str().unwrap();
                // LibreNMS also reads vendor tables; compare only the standard Printer-MIB rows.
                let Some(index) = oid.strip_prefix(".1.3.6.1.2.1.43.11.1.1.9.1.") else {
                    continue;
                };
                let index: u32 = index.parse().unwrap();
                let ours = reading
                    .supplies
                    .iter()
                    .find(|x| x.index == index)
                    .unwrap_or_else(|| panic!("{name}: supply {index} missing"));
                let theirs = s["supply_current"].as_i64().unwrap();
                match ours.level.unwrap() {
                    // LibreNMS stores -3 ("some remaining") as 50 and -1 as 0: no number exists.
                    Level::SomeRemaining => assert_eq!(theirs, 50, "{name} {index}"),
                    Level::Other => assert_eq!(theirs, 0, "{name} {index}"),
                    // LibreNMS stores a percentage when the capacity is a real number other than 100.
                    Level::Value(v) => {
                        let max = match ours.max_capacity {
                            Some(Capacity::Value(m)) if m > 0 => i64::from(m),
                            _ => 100, // LibreNMS treats -2 and 0 as 100
                        };
                        let pct = (i64::from(v) * 100 / max).min(100);
                        // Brother firmware reports state codes that LibreNMS remaps (0/1/2/3 -> 100/5/0/1).
                        if name != "brother" {
                            assert!(
                                theirs == i64::from(v) || (theirs - pct).abs() <= 1,
                                "{name} {index}: ours {v}/{max}, theirs {theirs}"
                            );
                        }
                    }
                    _ => {}
                }
                checked += 1;
            }
        }
        assert!(checked >= 40, "only {checked} supplies compared");
    }
}
