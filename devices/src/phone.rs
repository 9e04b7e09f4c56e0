//! IP phones, analogue adapters, SIP intercoms and VoIP gateways to [`PhoneReading`].
//!
//! Phone agents expose little (field guide §4.3); what the corpus devices do expose:
//! - Grandstream HT8xx (net-snmp's generic sysObjectID; GS-HT8XX-MIB under 42397): per-port
//!   hook and registration state as *strings*, one scalar per port, with the instance suffix
//!   `.0` or `.0.0` depending on firmware; firmware parts; the WAN MAC as text. Its "PartNo" is
//!   a product part number, not a unit serial, so it is not reported as one.
//! - 2N Helios IP (TEL2N-MIB under 6530.11): product, serial, firmware and the SIP account
//!   table with state down/goingup/up/goingdown.
//! - innovaphone and its OEM Ascom IPBS: model and firmware in sysDescr as
//!   `MODEL[firmware], Bootcode[...], Hardware[...]`.
//! - Allworx: firmware in applVersion; Cisco SPA: the model in sysDescr.
//! - Everything else: sysDescr as the model, the first Ethernet MAC of IF-MIB.

use devtel_protocol::{
    DeviceKind, HookState, PhoneLine, PhoneReading, Reading, Registration, Vendor, MAX_MODEL_LEN,
    MAX_NAME_LEN,
};

use crate::dock::Selection;
use crate::snmp::{oid, Oid, Value, VarbindSet};
use crate::{text, vendor, DeviceIdentity, Kind, MapError, Mapped, Plan};

/// OIDs this mapping reads.
pub mod oids {
    /// sysDescr.0
    pub const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
    /// sysObjectID.0
    pub const SYS_OBJECT_ID: &str = "1.3.6.1.2.1.1.2.0";
    /// sysUpTime.0
    pub const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";
    /// sysName.0
    pub const SYS_NAME: &str = "1.3.6.1.2.1.1.5.0";
    /// ifPhysAddress column.
    pub const IF_PHYS_ADDRESS: &str = "1.3.6.1.2.1.2.2.1.6";
    /// applVersion column (NETWORK-SERVICES-MIB).
    pub const APPL_VERSION: &str = "1.3.6.1.2.1.27.1.1.4";
    /// Grandstream HT8xx tree.
    pub const GRANDSTREAM_HT: &str = "1.3.6.1.4.1.42397.1.2";
    /// 2N Helios IP tree.
    pub const HELIOS: &str = "1.3.6.1.4.1.6530.11";
}

/// What to fetch for a phone.
pub fn plan() -> Plan {
    Plan {
        get: [
            oids::SYS_DESCR,
            oids::SYS_OBJECT_ID,
            oids::SYS_UPTIME,
            oids::SYS_NAME,
        ]
        .iter()
        .map(|s| oid(s))
        .collect(),
        walk: [
            oids::IF_PHYS_ADDRESS,
            oids::APPL_VERSION,
            oids::GRANDSTREAM_HT,
            oids::HELIOS,
        ]
        .iter()
        .map(|s| oid(s))
        .collect(),
    }
}

/// Whether the answering device looks like a VoIP endpoint: a known VoIP tree answers, or its
/// sysObjectID is a VoIP vendor's (innovaphone 6666, Ascom 27614, Allworx 38516, 2N 6530,
/// Cisco small-business voice 9.6.1.23).
pub fn is_phone(vb: &VarbindSet) -> bool {
    const VOIP_OBJECT_IDS: &[&str] = &[
        "1.3.6.1.4.1.6666",
        "1.3.6.1.4.1.27614",
        "1.3.6.1.4.1.38516",
        "1.3.6.1.4.1.6530",
        "1.3.6.1.4.1.9.6.1.23",
    ];
    let trees = [oids::GRANDSTREAM_HT, oids::HELIOS];
    trees.iter().any(|t| vb.subtree(&oid(t)).next().is_some())
        || vb
            .get(&oid(oids::SYS_OBJECT_ID))
            .and_then(Value::as_oid)
            .is_some_and(|o| VOIP_OBJECT_IDS.iter().any(|p| o.starts_with(&oid(p))))
}

/// The phone kind: IP phones, analogue adapters, SIP intercoms, VoIP gateways.
pub struct Phone;

impl Kind for Phone {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Phone
    }

    fn plan(&self) -> Plan {
        plan()
    }

    fn detect_plan(&self) -> Plan {
        Plan {
            get: vec![oid(oids::SYS_OBJECT_ID)],
            walk: vec![oid(oids::GRANDSTREAM_HT), oid(oids::HELIOS)],
        }
    }

    fn detect(&self, vb: &VarbindSet) -> bool {
        is_phone(vb)
    }

    fn map(
        &self,
        id: &DeviceIdentity,
        _seats: &Selection,
        vb: &VarbindSet,
    ) -> Result<Mapped, MapError> {
        map(id, vb).map(|r| Mapped::plain(Reading::Phone(r)))
    }
}

/// Maps one poll of a phone.
///
/// # Errors
/// [`MapError::NotAPhone`] when the device answered without even a sysDescr or sysObjectID.
pub fn map(id: &DeviceIdentity, vb: &VarbindSet) -> Result<PhoneReading, MapError> {
    let descr = string(vb, oids::SYS_DESCR);
    if descr.is_none() && vb.get(&oid(oids::SYS_OBJECT_ID)).is_none() {
        return Err(MapError::NotAPhone);
    }
    let descr = descr.unwrap_or_default();
    let mut r = PhoneReading {
        device: id.device.clone(),
        unit: id.unit.clone(),
        vendor: vendor::identify(vb),
        uptime_ticks: vb.get(&oid(oids::SYS_UPTIME)).and_then(Value::as_u32),
        mac: first_ethernet_mac(vb),
        ..PhoneReading::default()
    };
    let mut model: Option<String> = None;
    let mut firmware: Option<String> = None;
    let mut serial: Option<String> = None;

    let gs = oid(oids::GRANDSTREAM_HT);
    let helios = oid(oids::HELIOS);
    if vb.subtree(&gs).next().is_some() {
        r.vendor = Some(Vendor::Grandstream);
        // sysDescr says only "HT8XX"; sysName is the model unless an admin renamed the device.
        model = string(vb, oids::SYS_NAME)
            .filter(|n| n.to_ascii_uppercase().starts_with("HT8"))
            .or_else(|| descr.split_whitespace().nth(1).map(str::to_string));
        let core = scalar_text(vb, &gs.child(&[3, 2]));
        let base = scalar_text(vb, &gs.child(&[3, 3]));
        firmware = core.or(base);
        if r.mac.is_none() {
            r.mac = scalar_text(vb, &gs.child(&[4, 7])).and_then(|t| parse_mac(&t));
        }
        grandstream_lines(vb, &gs, &mut r);
    } else if vb.subtree(&helios).next().is_some() {
        model = scalar_text(vb, &helios.child(&[1]));
        serial = scalar_text(vb, &helios.child(&[3]));
        firmware = scalar_text(vb, &helios.child(&[4]));
        helios_lines(vb, &helios, &mut r);
    } else if let Some((m, fw)) = bracketed(&descr) {
        model = Some(m);
        firmware = Some(fw);
    } else if let Some(spa) = descr
        .split_whitespace()
        .find(|w| w.starts_with("SPA") && w.len() > 3)
    {
        model = Some(spa.to_string());
    }
    if model.is_none() && !descr.is_empty() {
        model = Some(descr.clone());
    }
    if firmware.is_none() {
        firmware = vb
            .subtree(&oid(oids::APPL_VERSION))
            .find_map(|(_, v)| v.as_text());
    }
    let mut truncated = false;
    r.model = model.and_then(|m| text::bounded::<MAX_MODEL_LEN>(m.as_bytes(), &mut truncated));
    r.firmware =
        firmware.and_then(|f| text::bounded::<MAX_MODEL_LEN>(f.as_bytes(), &mut truncated));
    r.serial = serial.and_then(|s| text::bounded::<MAX_MODEL_LEN>(s.as_bytes(), &mut truncated));
    r.truncated |= truncated;
    Ok(r)
}

fn string(vb: &VarbindSet, o: &str) -> Option<String> {
    vb.get(&oid(o)).and_then(Value::as_text)
}

/// A Grandstream scalar: `object.0` or `object.0.0` (firmware-dependent).
fn scalar_text(vb: &VarbindSet, object: &Oid) -> Option<String> {
    vb.subtree(object)
        .find(|(suffix, _)| !suffix.is_empty() && suffix.iter().all(|s| *s == 0))
        .and_then(|(_, v)| v.as_text())
}

/// GS-HT8XX-MIB ports: `…2.2.{1 hook, 2 registration, 7 account}.<port>.0[.0]`.
fn grandstream_lines(vb: &VarbindSet, gs: &Oid, r: &mut PhoneReading) {
    let ports = gs.child(&[2]);
    let column = |col: u32| -> Vec<(u32, String)> {
        vb.subtree(&ports.child(&[col]))
            .filter_map(|(suffix, v)| match suffix {
                [port, rest @ ..] if !rest.is_empty() && rest.iter().all(|s| *s == 0) => Some((
                    *port,
                    String::from_utf8_lossy(v.as_bytes()?).trim().to_string(),
                )),
                _ => None,
            })
            .collect()
    };
    let hooks = column(1);
    let regs = column(2);
    let accounts = column(7);
    let mut indexes: Vec<u32> = hooks.iter().chain(&regs).map(|(p, _)| *p).collect();
    indexes.sort_unstable();
    indexes.dedup();
    for index in indexes {
        let find = |list: &[(u32, String)]| {
            list.iter()
                .find(|(p, _)| *p == index)
                .map(|(_, v)| v.to_lowercase())
        };
        let registration = match find(&regs).as_deref() {
            Some("registered") => Registration::Registered,
            Some("not registered") => Registration::NotRegistered,
            _ => Registration::Unknown,
        };
        let hook = find(&hooks).map(|h| match h.as_str() {
            "on hook" => HookState::OnHook,
            "off hook" => HookState::OffHook,
            _ => HookState::Unknown,
        });
        let number = accounts
            .iter()
            .find(|(p, _)| *p == index)
            .and_then(|(_, n)| text::bounded::<MAX_NAME_LEN>(n.as_bytes(), &mut r.truncated));
        let line = PhoneLine {
            index,
            number,
            registration,
            hook,
        };
        if r.lines.push(line).is_err() {
            r.truncated = true;
            break;
        }
    }
}

/// TEL2N-MIB hipSipTable `…11.6.1.{2 number, 3 state}.<account>`: state up(2) is registered,
/// down(0) is not, goingup/goingdown are in between.
fn helios_lines(vb: &VarbindSet, helios: &Oid, r: &mut PhoneReading) {
    let table = helios.child(&[6, 1]);
    let states = table.child(&[3]);
    for (suffix, state) in vb.subtree(&states) {
        let [index] = suffix else { continue };
        let registration = match state.as_i32() {
            Some(2) => Registration::Registered,
            Some(0) => Registration::NotRegistered,
            _ => Registration::Unknown,
        };
        let number = vb
            .get(&table.child(&[2, *index]))
            .and_then(Value::as_bytes)
            .and_then(|b| text::bounded::<MAX_NAME_LEN>(b, &mut r.truncated));
        let line = PhoneLine {
            index: *index,
            number,
            registration,
            hook: None,
        };
        if r.lines.push(line).is_err() {
            r.truncated = true;
            break;
        }
    }
}

/// innovaphone / Ascom sysDescr: `MODEL[firmware], Bootcode[...], Hardware[...]`.
fn bracketed(descr: &str) -> Option<(String, String)> {
    let descr = descr.trim();
    let (head, rest) = descr.split_once('[')?;
    let model = head.split_whitespace().last()?.to_string();
    let (firmware, rest) = rest.split_once(']')?;
    rest.contains("Bootcode[")
        .then(|| (model, firmware.trim().to_string()))
}

/// The first 6-byte, non-zero ifPhysAddress.
fn first_ethernet_mac(vb: &VarbindSet) -> Option<[u8; 6]> {
    vb.subtree(&oid(oids::IF_PHYS_ADDRESS))
        .filter_map(|(_, v)| <[u8; 6]>::try_from(v.as_bytes()?).ok())
        .find(|m| m.iter().any(|b| *b != 0))
}

/// `C0:74:AD:8B:10:93` (or with `-`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text
        .trim()
        .split([':', '-'])
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    <[u8; 6]>::try_from(parts.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    //! Every VoIP recording of the corpus, against its raw lines and LibreNMS's extraction.
    use super::*;
    use crate::copier::tests_support::{corpus, recording};
    use crate::snmprec;

    fn mapped(name: &str) -> PhoneReading {
        let (vb, _) = snmprec::parse(&recording(name));
        let id = DeviceIdentity {
            device: "p".try_into().unwrap(),
            unit: "u".try_into().unwrap(),
        };
        map(&id, &vb).unwrap()
    }

    fn lines(r: &PhoneReading) -> Vec<(u32, &'static str, Option<&'static str>)> {
        r.lines
            .iter()
            .map(|l| (l.index, l.registration.name(), l.hook.map(HookState::name)))
            .collect()
    }

    #[test]
    fn grandstream_ht802_ports_with_dot_zero_suffix() {
        let r = mapped("grandstream-ht_ht802");
        assert_eq!(r.vendor, Some(Vendor::Grandstream));
        assert_eq!(r.model.as_deref(), Some("HT802"));
        // LibreNMS: version "Core: 1.0.63.1, Base: 1.0.63.3"; devtel reports the core version.
        assert_eq!(r.firmware.as_deref(), Some("1.0.63.1"));
        // LibreNMS reports PartNo 9610003725A as the serial; the MIB says it is a part number.
        assert_eq!(r.serial, None);
        assert_eq!(r.mac, Some([0xC0, 0x74, 0xAD, 0x8B, 0x10, 0x93]));
        assert_eq!(r.uptime_ticks, Some(96_977_174));
        // LibreNMS state sensors: regStatus1 0 (Registered), regStatus2 1 (Not Registered),
        // hookStatus1/2 0 (On Hook).
        assert_eq!(
            lines(&r),
            [
                (1, "registered", Some("on_hook")),
                (2, "not_registered", Some("on_hook"))
            ]
        );
        assert_eq!(r.lines[0].number.as_deref(), Some("3079"));
        assert_eq!(r.health(), devtel_protocol::Health::Warning);
    }

    #[test]
    fn grandstream_ht814v2_ports_with_dot_zero_zero_suffix() {
        let r = mapped("grandstream-ht_ht814v2");
        assert_eq!(r.vendor, Some(Vendor::Grandstream));
        assert_eq!(r.model.as_deref(), Some("HT814V2"));
        assert_eq!(r.firmware.as_deref(), Some("1.0.5.2"));
        assert_eq!(
            lines(&r),
            [
                (1, "registered", Some("on_hook")),
                (2, "registered", Some("on_hook")),
                (3, "not_registered", Some("on_hook")),
                (4, "not_registered", Some("on_hook")),
            ]
        );
        assert_eq!(r.lines[1].number.as_deref(), Some("4201"));
    }

    #[test]
    fn helios_intercom_sip_accounts() {
        let r = mapped("heliosip");
        // LibreNMS: hardware "2N IP Force", version "2.22.0.31.8", serial "54-2354-8708".
        assert_eq!(r.vendor, Some(Vendor::TwoN));
        assert_eq!(r.model.as_deref(), Some("2N IP Force"));
        assert_eq!(r.firmware.as_deref(), Some("2.22.0.31.8"));
        assert_eq!(r.serial.as_deref(), Some("54-2354-8708"));
        assert_eq!(r.mac, Some([0x8C, 0x1F, 0xB4, 0x00, 0xF2, 0x05]));
        assert_eq!(
            lines(&r),
            [(1, "registered", None), (2, "not_registered", None)]
        );
        assert_eq!(r.lines[0].number.as_deref(), Some("2499"));
    }

    #[test]
    fn sysdescr_identified_voip_devices() {
        // Ascom IPBS3 (innovaphone OEM): LibreNMS hardware "IPBS3-A3/2B", version
        // "IPBS3[12.0.11], Bootcode[12.0.11]"; devtel keeps the model token and the firmware.
        let r = mapped("ascom_ipbs3");
        assert_eq!(r.vendor, Some(Vendor::Ascom));
        assert_eq!(r.model.as_deref(), Some("IPBS3"));
        assert_eq!(r.firmware.as_deref(), Some("12.0.11"));
        assert_eq!(r.mac, Some([0x00, 0x01, 0x3E, 0x6C, 0xEA, 0x80]));
        // innovaphone: LibreNMS extracts nothing; the same format gives model and firmware.
        let r = mapped("innovaphone");
        assert_eq!(r.vendor, Some(Vendor::Innovaphone));
        assert_eq!(r.model.as_deref(), Some("IP3011"));
        assert_eq!(r.firmware.as_deref(), Some("13.2195"));
        // Allworx: LibreNMS version = applVersion.1 "8.3.5.4", hardware = sysDescr.
        let r = mapped("allworx_voip");
        assert_eq!(r.vendor, Some(Vendor::Allworx));
        assert_eq!(r.model.as_deref(), Some("Allworx Connect 731"));
        assert_eq!(r.firmware.as_deref(), Some("8.3.5.4"));
        // Cisco SPA112: a two-line recording; the sysObjectID value has a leading dot.
        let r = mapped("ciscospa_spa112");
        assert_eq!(r.vendor, Some(Vendor::Cisco));
        assert_eq!(r.model.as_deref(), Some("SPA112"));
        assert!(r.lines.is_empty());
        assert_eq!(r.health(), devtel_protocol::Health::Unknown);
    }

    #[test]
    fn every_voip_recording_is_a_phone_and_no_printer_or_switch_is() {
        for entry in std::fs::read_dir(corpus().join("snmprec")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let (vb, _) = snmprec::parse(&std::fs::read_to_string(&path).unwrap());
            let voip = [
                "grandstream-ht_ht802",
                "grandstream-ht_ht814v2",
                "ciscospa_spa112",
                "heliosip",
                "ascom_ipbs3",
                "innovaphone",
                "allworx_voip",
            ];
            assert_eq!(is_phone(&vb), voip.contains(&name.as_str()), "{name}");
        }
    }

    #[test]
    fn macs_parse_from_text() {
        assert_eq!(
            parse_mac("EC:74:D7:2C:BD:92"),
            Some([0xEC, 0x74, 0xD7, 0x2C, 0xBD, 0x92])
        );
        assert_eq!(parse_mac("EC:74:D7"), None);
        assert_eq!(parse_mac("zz:74:D7:2C:BD:92"), None);
    }
}
