//! Dock seats seen from the access switch (field guide §5) to [`DockReading`].
//!
//! Docks have no agent; a seat is a switch port. Per port the mapping combines:
//! - IF-MIB: name, label (ifAlias), type, link state, speed, last change;
//! - the forwarding database: Q-BRIDGE `dot1qTpFdbPort.<fdbId>.<mac>` (fdbId → VLAN through
//!   `dot1qVlanFdbId`; without that table the fdbId is taken as the VLAN, as on Linksys), else
//!   BRIDGE `dot1dTpFdbPort.<mac>`. The port value is a bridge port mapped through
//!   `dot1dBasePortIfIndex`, unless the switch's own MACs show that it puts the ifIndex there
//!   (RouterOS). Rows whose index is not a MAC (FortiSwitch numbers its rows) are rejected, port
//!   0 rows and the switch's own MACs are dropped. No recorded switch has the status column, so
//!   a row present is taken as learned;
//! - LLDP: a neighbour with the telephone capability (or LLDP-MED class 3) is a phone in front of
//!   the dock: its MACs are not clients and the seat carries its model, firmware and serial
//!   (LLDP-MED inventory). A neighbour that is a bridge, router or access point marks an uplink.
//!   RouterOS indexes its LLDP rows by one number and names the local port in MIKROTIK-MIB.
//!
//! Occupancy: uplink (not Ethernet, a bridge neighbour, or more than [`UPLINK_MACS`] MACs) →
//! link not up → empty, FDB unreadable → unknown, client MACs → occupied, else idle.

use std::collections::{BTreeMap, BTreeSet};

use devtel_protocol::{
    DeviceKind, DockReading, LinkStatus, Neighbour, Occupancy, Reading, Seat, MAX_MODEL_LEN,
    MAX_NAME_LEN, MAX_NEIGHBOUR_MODEL_LEN,
};

use crate::snmp::{oid, Value, VarbindSet};
use crate::{text, vendor, DeviceIdentity, Kind, MapError, Plan};

/// A port with more learned MACs than this is an uplink or a small switch under the desk,
/// not a seat (a docked laptop, a VM and a dock NIC make three).
pub const UPLINK_MACS: usize = 8;

/// OIDs this mapping reads.
pub mod oids {
    /// sysDescr.0
    pub const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
    /// sysObjectID.0
    pub const SYS_OBJECT_ID: &str = "1.3.6.1.2.1.1.2.0";
    /// sysUpTime.0
    pub const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";
    /// dot1dBaseBridgeAddress.0: the switch's own MAC.
    pub const BRIDGE_ADDRESS: &str = "1.3.6.1.2.1.17.1.1.0";
    /// sysServices.0: the OSI layers the device serves, as bits (2 = datalink, 4 = network).
    pub const SYS_SERVICES: &str = "1.3.6.1.2.1.1.7.0";
    /// ipForwarding.0: forwarding(1) for a router, notForwarding(2) for a host.
    pub const IP_FORWARDING: &str = "1.3.6.1.2.1.4.1.0";
    /// ifDescr column.
    pub const IF_DESCR: &str = "1.3.6.1.2.1.2.2.1.2";
    /// ifType column.
    pub const IF_TYPE: &str = "1.3.6.1.2.1.2.2.1.3";
    /// ifPhysAddress column.
    pub const IF_PHYS_ADDRESS: &str = "1.3.6.1.2.1.2.2.1.6";
    /// ifOperStatus column.
    pub const IF_OPER_STATUS: &str = "1.3.6.1.2.1.2.2.1.8";
    /// ifLastChange column.
    pub const IF_LAST_CHANGE: &str = "1.3.6.1.2.1.2.2.1.9";
    /// ifName column.
    pub const IF_NAME: &str = "1.3.6.1.2.1.31.1.1.1.1";
    /// ifHighSpeed column (Mb/s).
    pub const IF_HIGH_SPEED: &str = "1.3.6.1.2.1.31.1.1.1.15";
    /// ifAlias column.
    pub const IF_ALIAS: &str = "1.3.6.1.2.1.31.1.1.1.18";
    /// dot1dBasePortIfIndex column.
    pub const BASE_PORT_IF_INDEX: &str = "1.3.6.1.2.1.17.1.4.1.2";
    /// dot1dTpFdbPort column (index: MAC).
    pub const DOT1D_FDB_PORT: &str = "1.3.6.1.2.1.17.4.3.1.2";
    /// dot1qTpFdbPort column (index: fdbId, MAC).
    pub const DOT1Q_FDB_PORT: &str = "1.3.6.1.2.1.17.7.1.2.2.1.2";
    /// dot1qVlanFdbId column (index: timeMark, VLAN).
    pub const VLAN_FDB_ID: &str = "1.3.6.1.2.1.17.7.1.4.2.1.3";
    /// lldpRemTable entry.
    pub const LLDP_REM: &str = "1.0.8802.1.1.2.1.4.1.1";
    /// lldpLocPortId column.
    pub const LLDP_LOC_PORT_ID: &str = "1.0.8802.1.1.2.1.3.7.1.3";
    /// lldpXMedRemDeviceClass column.
    pub const LLDP_MED_CLASS: &str = "1.0.8802.1.1.2.1.5.4795.1.3.1.1.3";
    /// lldpXMedRemInventoryEntry.
    pub const LLDP_MED_INVENTORY: &str = "1.0.8802.1.1.2.1.5.4795.1.3.3.1";
    /// MIKROTIK-MIB mtxrNeighborInterfaceID column (RouterOS LLDP local port).
    pub const MIKROTIK_NEIGHBOUR_IF: &str = "1.3.6.1.4.1.14988.1.1.11.1.1.8";
    /// entPhysicalSoftwareRev column.
    pub const ENT_SOFTWARE_REV: &str = "1.3.6.1.2.1.47.1.1.1.1.10";
    /// entPhysicalFirmwareRev column.
    pub const ENT_FIRMWARE_REV: &str = "1.3.6.1.2.1.47.1.1.1.1.9";
    /// entPhysicalModelName column.
    pub const ENT_MODEL_NAME: &str = "1.3.6.1.2.1.47.1.1.1.1.13";
}

/// What to fetch from an access switch.
pub fn plan() -> Plan {
    use oids::*;
    Plan {
        get: [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, BRIDGE_ADDRESS]
            .iter()
            .map(|s| oid(s))
            .collect(),
        walk: [
            IF_DESCR,
            IF_TYPE,
            IF_PHYS_ADDRESS,
            IF_OPER_STATUS,
            IF_LAST_CHANGE,
            IF_NAME,
            IF_HIGH_SPEED,
            IF_ALIAS,
            BASE_PORT_IF_INDEX,
            DOT1Q_FDB_PORT,
            DOT1D_FDB_PORT,
            VLAN_FDB_ID,
            LLDP_REM,
            LLDP_LOC_PORT_ID,
            LLDP_MED_CLASS,
            LLDP_MED_INVENTORY,
            MIKROTIK_NEIGHBOUR_IF,
            ENT_MODEL_NAME,
            ENT_SOFTWARE_REV,
            ENT_FIRMWARE_REV,
        ]
        .iter()
        .map(|s| oid(s))
        .collect(),
    }
}

/// A switch with fewer Ethernet bridge ports than this is not an access switch with seats:
/// access points, routers, servers and NAS boxes bridge one or two.
pub const MIN_SWITCH_PORTS: usize = 3;

/// A device that routes (ipForwarding) with fewer Ethernet bridge ports than this is a router
/// with a small built-in switch, not an access switch; layer-3 access switches have more.
pub const MIN_ROUTING_SWITCH_PORTS: usize = 8;

/// IANAifTypes of radio interfaces (ieee80211(71), radioMAC(188), ieee80216WMAN(237)): the
/// device is an access point or a wireless router.
const RADIO_IF_TYPES: &[i32] = &[71, 188, 237];

/// Interface names of radios that Linux-based access points report as Ethernet (ifType 6):
/// `wlan0`, `wifi0`, `ath0`, `ra0`, `rai0`, `wds0`, `apcli0` (UniFi, OpenWrt, MediaTek).
const RADIO_NAMES: &[&str] = &[
    "wlan", "wifi", "ath", "ra", "rai", "wds", "wdsi", "apcli", "apclii",
];

/// Whether the answering device is an access switch whose ports can be dock seats.
///
/// BRIDGE-MIB alone says little: routers, access points and hosts answer parts of it (RouterOS
/// its spanning-tree scalars and an all-zero bridge address, a Cisco 870 one bridge port on its
/// ADSL line). What tells an access switch is the number of its bridge ports that are
/// Ethernet ports, at least [`MIN_SWITCH_PORTS`] (where the base-port table is missing, as
/// on UniFi switches, its Ethernet interfaces are counted), with no radio interface, a
/// datalink layer in sysServices when it states one (hosts say 72 or 76) and, if it forwards
/// IP, at least [`MIN_ROUTING_SWITCH_PORTS`] of them.
pub fn is_switch(vb: &VarbindSet) -> bool {
    let base_ports: BTreeSet<u32> = vb
        .subtree(&oid(oids::BASE_PORT_IF_INDEX))
        .filter_map(|(_, v)| v.as_u32())
        .collect();
    let bridge_address = vb
        .get(&oid(oids::BRIDGE_ADDRESS))
        .and_then(Value::as_bytes)
        .is_some_and(|mac| mac.iter().any(|&b| b != 0));
    if base_ports.is_empty() && !bridge_address {
        return false;
    }
    if let Some(services) = vb.get(&oid(oids::SYS_SERVICES)).and_then(Value::as_i32) {
        if services & 2 == 0 {
            return false;
        }
    }
    let interfaces = interfaces(vb);
    if interfaces.values().any(Interface::is_radio) {
        return false;
    }
    let ethernet = |i: &u32| {
        interfaces
            .get(i)
            .and_then(|i| i.if_type)
            .is_some_and(is_ethernet)
    };
    let ports = if base_ports.is_empty() {
        interfaces.keys().filter(|i| ethernet(i)).count()
    } else {
        base_ports.iter().filter(|i| ethernet(i)).count()
    };
    let forwarding = vb.get(&oid(oids::IP_FORWARDING)).and_then(Value::as_i32) == Some(1);
    ports >= MIN_SWITCH_PORTS && !(forwarding && ports < MIN_ROUTING_SWITCH_PORTS)
}

/// The dock kind: access switches whose ports are dock seats.
pub struct Dock;

impl Kind for Dock {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Dock
    }

    fn plan(&self) -> Plan {
        plan()
    }

    fn detect_plan(&self) -> Plan {
        use oids::*;
        Plan {
            get: [SYS_OBJECT_ID, SYS_SERVICES, IP_FORWARDING, BRIDGE_ADDRESS]
                .iter()
                .map(|s| oid(s))
                .collect(),
            walk: vec![
                oid(IF_DESCR),
                oid(IF_TYPE),
                oid(IF_NAME),
                oid(BASE_PORT_IF_INDEX),
            ],
        }
    }

    fn detect(&self, vb: &VarbindSet) -> bool {
        is_switch(vb)
    }

    fn map(
        &self,
        id: &DeviceIdentity,
        seats: &Selection,
        vb: &VarbindSet,
    ) -> Result<crate::Mapped, MapError> {
        map(id, seats, vb).map(|m| crate::Mapped {
            reading: Reading::Dock(m.reading),
            unmatched_seats: m.unmatched,
            rejected_fdb_rows: m.rejected_fdb_rows,
        })
    }
}

/// Which ports are seats, and which MACs count as clients. From the device's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Ports by ifName, ifDescr, ifAlias or ifIndex (case-insensitive). Empty: every Ethernet
    /// port of the switch.
    pub ports: Vec<String>,
    /// Count clients only in these VLANs. Empty: every VLAN.
    pub data_vlans: Vec<u16>,
    /// MAC prefixes (1 to 6 bytes, e.g. an OUI) of infrastructure that is never a client.
    pub ignore_macs: Vec<Vec<u8>>,
}

/// A mapped switch poll plus what the configuration asked for but the switch does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The reading.
    pub reading: DockReading,
    /// Configured ports that match no interface of the switch.
    pub unmatched: Vec<String>,
    /// FDB rows rejected because their index is not a MAC address.
    pub rejected_fdb_rows: usize,
}

#[derive(Debug, Default, Clone)]
struct Interface {
    descr: Option<String>,
    name: Option<String>,
    alias: Option<String>,
    if_type: Option<i32>,
    phys: Option<[u8; 6]>,
    oper: Option<i32>,
    last_change: Option<u32>,
    speed: Option<u32>,
}

impl Interface {
    /// A radio: by ifType, or by a radio's name on a Linux access point that calls it Ethernet.
    fn is_radio(&self) -> bool {
        let radio_name = |n: &String| {
            let stem = n.trim_end_matches(|c: char| c.is_ascii_digit());
            stem.len() < n.len() && RADIO_NAMES.contains(&stem)
        };
        self.if_type.is_some_and(|t| RADIO_IF_TYPES.contains(&t))
            || self.name.iter().chain(&self.descr).any(radio_name)
    }
}

/// One learned MAC: where and in which VLANs.
#[derive(Debug, Clone)]
struct Learned {
    mac: [u8; 6],
    if_index: u32,
    /// VLANs of the row's fdbId; empty when the table does not say (BRIDGE-MIB).
    vlans: Vec<u16>,
}

#[derive(Debug, Default, Clone)]
struct LldpNeighbour {
    local_if: Option<u32>,
    macs: Vec<[u8; 6]>,
    sys_name: Option<String>,
    sys_desc: Option<String>,
    caps_supported: u16,
    caps_enabled: Option<u16>,
    med_class: Option<i32>,
    med_model: Option<String>,
    med_firmware: Option<String>,
    med_serial: Option<String>,
}

const CAP_BRIDGE: u16 = 1 << 2;
const CAP_WLAN_AP: u16 = 1 << 3;
const CAP_ROUTER: u16 = 1 << 4;
const CAP_TELEPHONE: u16 = 1 << 5;

impl LldpNeighbour {
    /// Telephone supported or enabled, or LLDP-MED class 3 (voice endpoint). Phones with a
    /// PC port also claim "bridge", so the telephone bit wins.
    fn is_phone(&self) -> bool {
        (self.caps_supported | self.caps_enabled.unwrap_or(0)) & CAP_TELEPHONE != 0
            || self.med_class == Some(3)
    }
    /// A bridge, router or access point (by enabled capabilities, else supported ones).
    fn is_network(&self) -> bool {
        let caps = self.caps_enabled.unwrap_or(self.caps_supported);
        !self.is_phone() && caps & (CAP_BRIDGE | CAP_ROUTER | CAP_WLAN_AP) != 0
    }
}

/// Maps one poll of an access switch.
///
/// # Errors
/// [`MapError::NotASwitch`] when the device answered no interface table.
pub fn map(
    id: &DeviceIdentity,
    selection: &Selection,
    vb: &VarbindSet,
) -> Result<Mapping, MapError> {
    let interfaces = interfaces(vb);
    if interfaces.is_empty() {
        return Err(MapError::NotASwitch);
    }
    let mut truncated = false;
    let mut reading = DockReading {
        device: id.device.clone(),
        unit: id.unit.clone(),
        vendor: vendor::identify(vb),
        uptime_ticks: vb.get(&oid(oids::SYS_UPTIME)).and_then(Value::as_u32),
        ..DockReading::default()
    };
    let first_text = |root: &str| vb.subtree(&oid(root)).find_map(|(_, v)| v.as_text());
    let model = first_text(oids::ENT_MODEL_NAME).or_else(|| {
        vb.get(&oid(oids::SYS_DESCR))
            .and_then(Value::as_text)
            .map(|d| d.lines().next().unwrap_or_default().to_string())
    });
    let firmware =
        first_text(oids::ENT_SOFTWARE_REV).or_else(|| first_text(oids::ENT_FIRMWARE_REV));
    reading.model =
        model.and_then(|m| text::bounded::<MAX_MODEL_LEN>(m.as_bytes(), &mut truncated));
    reading.firmware =
        firmware.and_then(|f| text::bounded::<MAX_MODEL_LEN>(f.as_bytes(), &mut truncated));

    // The switch's own MACs, with the interfaces that carry them.
    let mut own: BTreeMap<[u8; 6], BTreeSet<u32>> = BTreeMap::new();
    for (&index, i) in &interfaces {
        if let Some(mac) = i.phys.filter(|m| m.iter().any(|b| *b != 0)) {
            own.entry(mac).or_default().insert(index);
        }
    }
    if let Some(mac) = vb
        .get(&oid(oids::BRIDGE_ADDRESS))
        .and_then(Value::as_bytes)
        .and_then(|b| <[u8; 6]>::try_from(b).ok())
    {
        own.entry(mac).or_default();
    }

    let base_ports: BTreeMap<u32, u32> = vb
        .subtree(&oid(oids::BASE_PORT_IF_INDEX))
        .filter_map(|(suffix, v)| match suffix {
            [port] => Some((*port, v.as_u32()?)),
            _ => None,
        })
        .collect();
    let (learned, rejected_fdb_rows) = fdb(vb, &base_ports, &interfaces, &own);
    reading.fdb_read = !learned.is_empty();
    let neighbours = lldp(vb, &interfaces);
    let phone_macs: BTreeSet<[u8; 6]> = neighbours
        .iter()
        .filter(|n| n.is_phone())
        .flat_map(|n| n.macs.iter().copied())
        .collect();

    // Seat selection.
    let bridged: BTreeSet<u32> = base_ports.values().copied().collect();
    let mut unmatched = Vec::new();
    let seats: Vec<u32> = if selection.ports.is_empty() {
        interfaces
            .iter()
            .filter(|(_, i)| i.if_type.is_some_and(is_ethernet))
            // Switch ports, not VLAN interfaces (which some agents type as Ethernet too).
            .filter(|(index, _)| bridged.is_empty() || bridged.contains(*index))
            .map(|(&index, _)| index)
            .collect()
    } else {
        let mut chosen = BTreeSet::new();
        for wanted in &selection.ports {
            match find_port(&interfaces, wanted) {
                Some(index) => {
                    chosen.insert(index);
                }
                None => unmatched.push(wanted.clone()),
            }
        }
        chosen.into_iter().collect()
    };

    for index in seats {
        let Some(i) = interfaces.get(&index) else {
            continue;
        };
        let on_port: BTreeSet<[u8; 6]> = learned
            .iter()
            .filter(|l| l.if_index == index && !phone_macs.contains(&l.mac))
            .map(|l| l.mac)
            .collect();
        let clients: BTreeSet<[u8; 6]> = learned
            .iter()
            .filter(|l| l.if_index == index && on_port.contains(&l.mac))
            .filter(|l| {
                selection.data_vlans.is_empty()
                    || l.vlans.is_empty()
                    || l.vlans.iter().any(|v| selection.data_vlans.contains(v))
            })
            .filter(|l| !selection.ignore_macs.iter().any(|p| l.mac.starts_with(p)))
            .map(|l| l.mac)
            .collect();
        let here: Vec<&LldpNeighbour> = neighbours
            .iter()
            .filter(|n| n.local_if == Some(index))
            .collect();
        let phone = here.iter().find(|n| n.is_phone()).map(|n| {
            let mut t = false;
            let neighbour = Neighbour {
                mac: n.macs.first().copied(),
                model: n
                    .med_model
                    .as_ref()
                    .or(n.sys_desc.as_ref())
                    .or(n.sys_name.as_ref())
                    .and_then(|m| text::bounded::<MAX_NEIGHBOUR_MODEL_LEN>(m.as_bytes(), &mut t)),
                firmware: n
                    .med_firmware
                    .as_ref()
                    .and_then(|f| text::bounded::<MAX_NAME_LEN>(f.as_bytes(), &mut t)),
                serial: n
                    .med_serial
                    .as_ref()
                    .and_then(|s| text::bounded::<MAX_NAME_LEN>(s.as_bytes(), &mut t)),
            };
            truncated |= t;
            neighbour
        });
        let link = i.oper.map(LinkStatus::from_raw);
        let uplink = !i.if_type.is_some_and(is_ethernet)
            || here.iter().any(|n| n.is_network())
            || on_port.len() > UPLINK_MACS;
        let occupancy = if uplink {
            Occupancy::Uplink
        } else {
            match link {
                None => Occupancy::Unknown,
                Some(LinkStatus::Up) if !reading.fdb_read => Occupancy::Unknown,
                Some(LinkStatus::Up) if !clients.is_empty() => Occupancy::Occupied,
                Some(LinkStatus::Up) => Occupancy::Idle,
                Some(_) => Occupancy::Empty,
            }
        };
        let seat = Seat {
            if_index: index,
            name: i
                .name
                .as_ref()
                .or(i.descr.as_ref())
                .and_then(|n| text::bounded::<MAX_NAME_LEN>(n.as_bytes(), &mut truncated)),
            label: i
                .alias
                .as_ref()
                .and_then(|a| text::bounded::<MAX_NAME_LEN>(a.as_bytes(), &mut truncated)),
            link,
            speed_mbps: i.speed,
            last_change_ticks: i.last_change,
            clients: u16::try_from(clients.len()).unwrap_or(u16::MAX),
            client_mac: clients.iter().next().copied(),
            phone,
            occupancy,
        };
        if reading.seats.push(seat).is_err() {
            truncated = true;
            break;
        }
    }
    reading.truncated = truncated;
    Ok(Mapping {
        reading,
        unmatched,
        rejected_fdb_rows,
    })
}

/// ethernetCsmacd(6), fastEther(62), fastEtherFX(69), gigabitEthernet(117).
fn is_ethernet(if_type: i32) -> bool {
    matches!(if_type, 6 | 62 | 69 | 117)
}

fn find_port(interfaces: &BTreeMap<u32, Interface>, wanted: &str) -> Option<u32> {
    let wanted = wanted.trim();
    let same = |s: &Option<String>| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(wanted));
    interfaces
        .iter()
        .find(|(_, i)| same(&i.name))
        .or_else(|| interfaces.iter().find(|(_, i)| same(&i.descr)))
        .or_else(|| interfaces.iter().find(|(_, i)| same(&i.alias)))
        .map(|(&index, _)| index)
        .or_else(|| {
            wanted
                .parse::<u32>()
                .ok()
                .filter(|n| interfaces.contains_key(n))
        })
}

fn interfaces(vb: &VarbindSet) -> BTreeMap<u32, Interface> {
    let mut out: BTreeMap<u32, Interface> = BTreeMap::new();
    let mut column = |root: &str, set: &mut dyn FnMut(&mut Interface, &Value)| {
        for (suffix, value) in vb.subtree(&oid(root)) {
            if let [index] = suffix {
                set(out.entry(*index).or_default(), value);
            }
        }
    };
    column(oids::IF_DESCR, &mut |i, v| i.descr = v.as_text());
    column(oids::IF_TYPE, &mut |i, v| i.if_type = v.as_i32());
    column(oids::IF_PHYS_ADDRESS, &mut |i, v| {
        i.phys = v.as_bytes().and_then(|b| <[u8; 6]>::try_from(b).ok())
    });
    column(oids::IF_OPER_STATUS, &mut |i, v| i.oper = v.as_i32());
    column(oids::IF_LAST_CHANGE, &mut |i, v| i.last_change = v.as_u32());
    column(oids::IF_NAME, &mut |i, v| i.name = v.as_text());
    column(oids::IF_HIGH_SPEED, &mut |i, v| i.speed = v.as_u32());
    column(oids::IF_ALIAS, &mut |i, v| i.alias = v.as_text());
    out
}

fn mac_of(suffix: &[u32]) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = suffix
        .iter()
        .map(|&b| u8::try_from(b).ok())
        .collect::<Option<_>>()?;
    <[u8; 6]>::try_from(bytes.as_slice()).ok()
}

/// The learned MACs (own MACs and port 0 dropped) and the number of rows rejected for an index
/// that is not a MAC.
fn fdb(
    vb: &VarbindSet,
    base_ports: &BTreeMap<u32, u32>,
    interfaces: &BTreeMap<u32, Interface>,
    own: &BTreeMap<[u8; 6], BTreeSet<u32>>,
) -> (Vec<Learned>, usize) {
    // fdbId → VLANs (procurve maps one fdbId to two VLANs).
    let mut fdb_vlans: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
    for (suffix, value) in vb.subtree(&oid(oids::VLAN_FDB_ID)) {
        if let ([_time_mark, vlan], Some(fdb_id)) = (suffix, value.as_u32()) {
            if let Ok(vlan) = u16::try_from(*vlan) {
                fdb_vlans.entry(fdb_id).or_default().push(vlan);
            }
        }
    }
    let vlans_of = |fdb_id: u32| -> Vec<u16> {
        match fdb_vlans.get(&fdb_id) {
            Some(v) => v.clone(),
            // No dot1qVlanFdbId (Linksys): the fdbId is the VLAN.
            None if fdb_vlans.is_empty() => {
                u16::try_from(fdb_id).map(|v| vec![v]).unwrap_or_default()
            }
            None => Vec::new(),
        }
    };
    let mut rows: Vec<([u8; 6], Vec<u16>, u32)> = Vec::new();
    let mut rejected = 0;
    for (suffix, value) in vb.subtree(&oid(oids::DOT1Q_FDB_PORT)) {
        match (suffix.split_first(), value.as_u32()) {
            (Some((fdb_id, mac)), Some(port)) if mac.len() == 6 => match mac_of(mac) {
                Some(mac) => rows.push((mac, vlans_of(*fdb_id), port)),
                None => rejected += 1,
            },
            _ => rejected += 1,
        }
    }
    if rows.is_empty() {
        for (suffix, value) in vb.subtree(&oid(oids::DOT1D_FDB_PORT)) {
            match (mac_of(suffix), value.as_u32()) {
                (Some(mac), Some(port)) => rows.push((mac, Vec::new(), port)),
                _ => rejected += 1,
            }
        }
    }

    // Which does the switch put in the port column: bridge ports or ifIndexes? Its own MACs
    // tell: they are learned on the interface that owns them (RouterOS).
    let (mut as_if_index, mut as_bridge_port) = (0, 0);
    for (mac, _, port) in &rows {
        if let Some(owners) = own.get(mac) {
            if owners.contains(port) {
                as_if_index += 1;
            }
            if base_ports.get(port).is_some_and(|i| owners.contains(i)) {
                as_bridge_port += 1;
            }
        }
    }
    let values_are_if_index = base_ports.is_empty() || as_if_index > as_bridge_port;
    let resolve = |port: u32| -> Option<u32> {
        if values_are_if_index {
            return interfaces.contains_key(&port).then_some(port);
        }
        base_ports
            .get(&port)
            .copied()
            // A value that is no bridge port but an interface: LibreNMS's fallback too.
            .or_else(|| interfaces.contains_key(&port).then_some(port))
    };
    let learned = rows
        .into_iter()
        .filter(|(mac, _, port)| *port != 0 && !own.contains_key(mac))
        .filter_map(|(mac, vlans, port)| {
            Some(Learned {
                mac,
                if_index: resolve(port)?,
                vlans,
            })
        })
        .collect();
    (learned, rejected)
}

/// LLDP capabilities as a bit set (bit n = capability n of LLDP-MIB's LldpSystemCapabilitiesMap).
/// Agents send BITS octets (MSB of the first octet is bit 0); RouterOS sends an INTEGER with
/// bit n = 2^n; net-snmp's text rendering "24 2 5" (hex byte, then bit numbers) arrives as a
/// string from recordings.
fn capabilities(value: &Value) -> u16 {
    if let Some(v) = value.as_i32() {
        return (v & 0xffff) as u16;
    }
    let Some(bytes) = value.as_bytes() else {
        return 0;
    };
    if let Ok(text) = std::str::from_utf8(bytes) {
        let mut tokens = text.split_ascii_whitespace();
        let rendered = tokens
            .next()
            .is_some_and(|t| t.len() == 2 && t.chars().all(|c| c.is_ascii_hexdigit()));
        if rendered {
            return tokens
                .filter_map(|t| t.parse::<u32>().ok())
                .filter(|&b| b < 16)
                .fold(0, |acc, b| acc | (1 << b));
        }
    }
    let mut caps = 0u16;
    for (n, byte) in bytes.iter().take(2).enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                caps |= 1 << (n * 8 + bit);
            }
        }
    }
    caps
}

/// A MAC as 6 bytes or as text "AA:BB:CC:DD:EE:FF" (RouterOS).
fn mac_value(value: &Value) -> Option<[u8; 6]> {
    let bytes = value.as_bytes()?;
    <[u8; 6]>::try_from(bytes)
        .ok()
        .or_else(|| super::phone::parse_mac(std::str::from_utf8(bytes).ok()?))
}

fn lldp(vb: &VarbindSet, interfaces: &BTreeMap<u32, Interface>) -> Vec<LldpNeighbour> {
    // Local port number → ifIndex: equal when that ifIndex exists, else by lldpLocPortId text.
    let loc_port_ids: BTreeMap<u32, String> = vb
        .subtree(&oid(oids::LLDP_LOC_PORT_ID))
        .filter_map(|(s, v)| match s {
            [n] => Some((*n, v.as_text()?)),
            _ => None,
        })
        .collect();
    let local_if = |port: u32| -> Option<u32> {
        if interfaces.contains_key(&port) {
            return Some(port);
        }
        let id = loc_port_ids.get(&port)?;
        find_port(interfaces, id)
    };
    let mikrotik: BTreeMap<u32, u32> = vb
        .subtree(&oid(oids::MIKROTIK_NEIGHBOUR_IF))
        .filter_map(|(s, v)| match s {
            [n] => Some((*n, v.as_u32()?)),
            _ => None,
        })
        .collect();

    // Rows keyed by their index after the column: [timeMark, localPort, remIndex] or [idx].
    let mut rows: BTreeMap<Vec<u32>, LldpNeighbour> = BTreeMap::new();
    let mut chassis_subtype: BTreeMap<Vec<u32>, i32> = BTreeMap::new();
    let mut port_subtype: BTreeMap<Vec<u32>, i32> = BTreeMap::new();
    for (suffix, value) in vb.subtree(&oid(oids::LLDP_REM)) {
        let Some((&column, index)) = suffix.split_first() else {
            continue;
        };
        if index.is_empty() {
            continue;
        }
        let key = index.to_vec();
        match column {
            4 => {
                if let Some(s) = value.as_i32() {
                    chassis_subtype.insert(key.clone(), s);
                }
            }
            6 => {
                if let Some(s) = value.as_i32() {
                    port_subtype.insert(key.clone(), s);
                }
            }
            _ => {}
        }
        let n = rows.entry(key).or_default();
        match column {
            5 | 7 => {
                let subtype = if column == 5 {
                    chassis_subtype.get(index).copied()
                } else {
                    port_subtype.get(index).copied()
                };
                // macAddress is subtype 4 for chassis ids, 3 for port ids.
                if subtype == Some(if column == 5 { 4 } else { 3 }) {
                    if let Some(mac) = mac_value(value) {
                        n.macs.push(mac);
                    }
                }
            }
            9 => n.sys_name = value.as_text(),
            10 => n.sys_desc = value.as_text(),
            11 => n.caps_supported = capabilities(value),
            12 => n.caps_enabled = Some(capabilities(value)),
            _ => {}
        }
    }
    // LLDP-MED, indexed like lldpRemTable.
    for (suffix, value) in vb.subtree(&oid(oids::LLDP_MED_CLASS)) {
        if let Some(n) = rows.get_mut(suffix) {
            n.med_class = value.as_i32();
        }
    }
    for (suffix, value) in vb.subtree(&oid(oids::LLDP_MED_INVENTORY)) {
        let Some((&column, index)) = suffix.split_first() else {
            continue;
        };
        let Some(n) = rows.get_mut(index) else {
            continue;
        };
        match column {
            2 => n.med_firmware = value.as_text(),
            3 if n.med_firmware.is_none() => n.med_firmware = value.as_text(),
            4 => n.med_serial = value.as_text(),
            6 => n.med_model = value.as_text(),
            _ => {}
        }
    }
    rows.into_iter()
        .map(|(index, mut n)| {
            n.local_if = match index.as_slice() {
                [_time_mark, port, _rem] => local_if(*port),
                [idx] => mikrotik.get(idx).copied(),
                _ => None,
            };
            n
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The six switch recordings of the corpus, against their raw lines and LibreNMS's ports.
    use super::*;
    use crate::copier::tests_support::{expected_json, raw, recording};
    use crate::snmprec;

    const SWITCHES: &[&str] = &[
        "linksys-ss_lgs318p",
        "zynos_xs1930-12hp",
        "fortiswitch_s248ep",
        "tplink_sg2008",
        "procurve",
        "routeros_crs317",
    ];

    fn mapped_with(name: &str, selection: &Selection) -> Mapping {
        let (vb, _) = snmprec::parse(&recording(name));
        let id = DeviceIdentity {
            device: "sw".try_into().unwrap(),
            unit: "u".try_into().unwrap(),
        };
        map(&id, selection, &vb).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn mapped(name: &str) -> DockReading {
        mapped_with(name, &Selection::default()).reading
    }

    fn seat(r: &DockReading, if_index: u32) -> &Seat {
        r.seats
            .iter()
            .find(|s| s.if_index == if_index)
            .unwrap_or_else(|| panic!("no seat {if_index}"))
    }

    fn ports(names: &[&str]) -> Selection {
        Selection {
            ports: names.iter().map(|s| s.to_string()).collect(),
            ..Selection::default()
        }
    }

    #[test]
    fn tplink_occupied_idle_empty_and_uplink() {
        let r = mapped("tplink_sg2008");
        assert!(r.fdb_read);
        assert_eq!(r.vendor, Some(devtel_protocol::Vendor::TpLink));
        assert_eq!(r.seats.len(), 8, "8 copper ports");
        // Port 7: one MAC in VLAN 10, `…2.2.1.2.10.0.14.132.246.0.203|2|7`.
        let p7 = seat(&r, 7);
        assert_eq!(p7.occupancy, Occupancy::Occupied);
        assert_eq!(p7.client_mac, Some([0x00, 0x0e, 0x84, 0xf6, 0x00, 0xcb]));
        assert_eq!(p7.clients, 1);
        assert_eq!(p7.name.as_deref(), Some("port 7: Gigabit Copper"));
        assert_eq!(p7.speed_mbps, Some(100));
        assert_eq!(p7.last_change_ticks, Some(0));
        // Port 5: down.
        let p5 = seat(&r, 5);
        assert_eq!(p5.link, Some(LinkStatus::Down));
        assert_eq!(p5.occupancy, Occupancy::Empty);
        assert_eq!(p5.last_change_ticks, Some(956025383));
        // Port 1 "Core: Hl": 36 MACs in five VLANs, the uplink.
        let p1 = seat(&r, 1);
        assert_eq!(p1.occupancy, Occupancy::Uplink);
        assert_eq!(p1.label.as_deref(), Some("Core: Hl"));

        // Counting only the data VLAN 10 leaves port 7 occupied; VLAN 99 does not.
        let vlan = |v: u16| Selection {
            data_vlans: vec![v],
            ..Selection::default()
        };
        let r10 = mapped_with("tplink_sg2008", &vlan(10)).reading;
        assert_eq!(seat(&r10, 7).occupancy, Occupancy::Occupied);
        let r99 = mapped_with("tplink_sg2008", &vlan(99)).reading;
        assert_eq!(seat(&r99, 7).occupancy, Occupancy::Idle);
        // An ignored OUI is infrastructure, not a client.
        let ignore = Selection {
            ignore_macs: vec![vec![0x00, 0x0e, 0x84]],
            ..Selection::default()
        };
        let ri = mapped_with("tplink_sg2008", &ignore).reading;
        assert_eq!(seat(&ri, 7).occupancy, Occupancy::Idle);
    }

    #[test]
    fn configured_seats_by_name_alias_or_index_and_unmatched_ones_reported() {
        let m = mapped_with(
            "tplink_sg2008",
            &ports(&["PORT 7: Gigabit Copper", "Cust: Wi", "5", "desk-99"]),
        );
        let indexes: Vec<u32> = m.reading.seats.iter().map(|s| s.if_index).collect();
        assert_eq!(indexes, vec![3, 5, 7]);
        assert_eq!(m.unmatched, vec!["desk-99".to_string()]);
    }

    #[test]
    fn procurve_phone_in_front_of_port_44_is_not_a_client_and_trunk_is_an_uplink() {
        let m = mapped_with("procurve", &ports(&["44", "Trk1", "31", "3"]));
        let r = &m.reading;
        let p44 = seat(r, 44);
        let phone = p44.phone.as_ref().expect("Polycom phone on port 44");
        assert_eq!(phone.mac, Some([0x00, 0x04, 0xf2, 0xc6, 0x70, 0x78]));
        assert_eq!(phone.model.as_deref(), Some("Polycom;SoundPointIP"));
        // The phone's MAC is in the FDB on port 44 (fdbId 15), but it is not a laptop.
        assert!(raw(
            "procurve",
            "1.3.6.1.2.1.17.7.1.2.2.1.2.15.0.4.242.198.112.120"
        )
        .is_some());
        assert_eq!(p44.clients, 0);
        assert_eq!(p44.occupancy, Occupancy::Idle);
        // Trk1: a LAG (ifType 161) with 1,019 MACs.
        assert_eq!(seat(r, 962).occupancy, Occupancy::Uplink);
        assert_eq!(seat(r, 962).name.as_deref(), Some("Trk1"));
        // Port 31: two MACs; port 3: camera S:CAM1 (the cameras send LLDP as bridges).
        assert_eq!(seat(r, 31).clients, 2);
        assert_eq!(seat(r, 31).occupancy, Occupancy::Occupied);
        // The switch's own MAC on port 0 is never a client anywhere.
        let own = [0x70, 0x10, 0x6f, 0x8f, 0x78, 0x00];
        assert!(r.seats.iter().all(|s| s.client_mac != Some(own)));
    }

    #[test]
    fn routeros_fdb_values_are_if_indexes_and_lldp_has_one_arc_indexes() {
        let m = mapped_with(
            "routeros_crs317",
            &ports(&["server-trunk", "sfp-sfpplus8", "sfp-sfpplus14"]),
        );
        let r = &m.reading;
        assert_eq!(r.vendor, Some(devtel_protocol::Vendor::MikroTik));
        // `dot1dTpFdbPort … |2|22`: 22 is the ifIndex of server-trunk (31 MACs), not bridge
        // port 22 (→ ifIndex 8, a down SFP).
        assert_eq!(seat(r, 22).name.as_deref(), Some("server-trunk"));
        assert_eq!(seat(r, 22).occupancy, Occupancy::Uplink);
        assert_eq!(seat(r, 8).clients, 0);
        // Two Cisco 7941G phones behind sfp-sfpplus14 (LLDP idx 84/85 → ifIndex 14).
        let phone = seat(r, 14).phone.as_ref().expect("phone on sfp-sfpplus14");
        assert_eq!(phone.mac, Some([0x00, 0x17, 0x95, 0xb0, 0xf3, 0x81]));
        assert_eq!(
            phone.model.as_deref(),
            Some("Cisco IP Phone 7941G,V, SCCP41.9-2-1S")
        );
    }

    #[test]
    fn fortiswitch_fdb_rows_numbered_not_by_mac_are_rejected_and_occupancy_unknown() {
        let m = mapped_with("fortiswitch_s248ep", &Selection::default());
        assert_eq!(m.rejected_fdb_rows, 99);
        assert!(!m.reading.fdb_read);
        let up = m
            .reading
            .seats
            .iter()
            .filter(|s| s.link == Some(LinkStatus::Up))
            .collect::<Vec<_>>();
        assert!(!up.is_empty());
        assert!(up.iter().all(|s| s.occupancy == Occupancy::Unknown));
        assert!(m.reading.truncated, "52 Ethernet ports > 48 seats");
    }

    #[test]
    fn linksys_port_zero_own_mac_and_fdb_id_as_vlan() {
        // gi8 "Camera Entrance": `…2.2.1.2.20.0.98.110.133.240.187|2|56`, VLAN 20 (no
        // dot1qVlanFdbId on this switch: the fdbId is the VLAN).
        let r = mapped("linksys-ss_lgs318p");
        let gi8 = seat(&r, 56);
        assert_eq!(gi8.name.as_deref(), Some("gi8"));
        assert_eq!(gi8.occupancy, Occupancy::Occupied);
        assert_eq!(gi8.client_mac, Some([0x00, 0x62, 0x6e, 0x85, 0xf0, 0xbb]));
        let data = Selection {
            data_vlans: vec![1],
            ..Selection::default()
        };
        let r1 = mapped_with("linksys-ss_lgs318p", &data).reading;
        assert_eq!(seat(&r1, 56).occupancy, Occupancy::Idle);
        let own = [0x58, 0xef, 0x68, 0xe1, 0xee, 0xf2];
        assert!(r.seats.iter().all(|s| s.client_mac != Some(own)));
    }

    /// Every switch: every seat's name, label, link and speed against LibreNMS's ports, and
    /// the client count against the raw FDB lines (counted here by text, with the switch's own
    /// MAC and LLDP phones taken out), on the switches whose bridge ports are ifIndexes.
    #[test]
    fn corpus_table() {
        let mut compared = 0;
        let mut summary = String::new();
        for name in SWITCHES {
            let m = mapped_with(name, &Selection::default());
            let r = &m.reading;
            let (occupied, idle, empty, other) = r.tally();
            let uplinks: Vec<String> = r
                .seats
                .iter()
                .filter(|s| s.occupancy == Occupancy::Uplink)
                .map(|s| s.name.as_deref().unwrap_or("?").to_string())
                .collect();
            summary += &format!(
                "{name}: {} seats, {occupied} occupied, {idle} idle, {empty} empty, {other} other, uplinks {uplinks:?}\n",
                r.seats.len()
            );
            assert!(!r.seats.is_empty(), "{name}: no seats");
            if let Some(json) = expected_json(name) {
                let ports = json["ports"]["poller"]["ports"]
                    .as_array()
                    .or_else(|| json["ports"]["discovery"]["ports"].as_array())
                    .unwrap_or_else(|| panic!("{name}: no ports"));
                for s in &r.seats {
                    let Some(p) = ports
                        .iter()
                        .find(|p| p["ifIndex"].as_u64() == Some(u64::from(s.if_index)))
                    else {
                        panic!("{name}: LibreNMS has no port {}", s.if_index)
                    };
                    let ctx = format!("{name} ifIndex {}", s.if_index);
                    assert_eq!(s.name.as_deref(), p["ifName"].as_str(), "{ctx}");
                    // LibreNMS stores ifDescr as the alias when ifAlias is empty.
                    if let Some(alias) = p["ifAlias"].as_str() {
                        let ours = s.label.as_deref().or(p["ifDescr"].as_str()).unwrap();
                        // Labels are cut at 32 bytes, with the reading flagged.
                        assert!(alias.starts_with(ours), "{ctx}: {ours} vs {alias}");
                        assert!(ours == alias || r.truncated, "{ctx}");
                    }
                    assert_eq!(
                        s.link.map(LinkStatus::name),
                        p["ifOperStatus"].as_str(),
                        "{ctx}"
                    );
                    if let (Some(speed), Some(bps)) = (s.speed_mbps, p["ifSpeed"].as_u64()) {
                        if speed > 0 {
                            assert_eq!(u64::from(speed) * 1_000_000, bps, "{ctx}");
                        }
                    }
                    compared += 1;
                }
            }
            if [
                "linksys-ss_lgs318p",
                "zynos_xs1930-12hp",
                "tplink_sg2008",
                "procurve",
            ]
            .contains(name)
            {
                let text = recording(name);
                for s in &r.seats {
                    let mut macs = BTreeSet::new();
                    for line in text.lines() {
                        let Some(rest) = line.strip_prefix("1.3.6.1.2.1.17.7.1.2.2.1.2.") else {
                            continue;
                        };
                        let mut parts = rest.split('|');
                        let index = parts.next().unwrap_or_default();
                        let port = parts.nth(1).unwrap_or_default();
                        if port == s.if_index.to_string() {
                            let mac: Vec<&str> = index.split('.').skip(1).collect();
                            macs.insert(mac.join("."));
                        }
                    }
                    if let Some(phone) = s.phone.as_ref().and_then(|p| p.mac) {
                        macs.remove(&phone.map(|b| b.to_string()).join("."));
                    }
                    if s.occupancy != Occupancy::Uplink {
                        assert_eq!(usize::from(s.clients), macs.len(), "{name} {}", s.if_index);
                        assert_eq!(
                            s.occupancy == Occupancy::Occupied,
                            !macs.is_empty() && s.link == Some(LinkStatus::Up),
                            "{name} {}",
                            s.if_index
                        );
                    }
                }
            }
        }
        assert!(compared >= 100, "{compared}");
        eprintln!("{summary}");
    }

    #[test]
    fn lldp_capabilities_in_every_encoding() {
        // BITS octets: MSB of the first octet is bit 0 → 0x24 = bridge(2) + telephone(5).
        assert_eq!(
            capabilities(&Value::OctetString(vec![0x24, 0x00])),
            CAP_BRIDGE | CAP_TELEPHONE
        );
        // net-snmp's rendering, as recordings carry it.
        assert_eq!(
            capabilities(&Value::OctetString(b"24 2 5".to_vec())),
            CAP_BRIDGE | CAP_TELEPHONE
        );
        assert_eq!(capabilities(&Value::OctetString(b"00".to_vec())), 0);
        // RouterOS INTEGER, LSB first: 36 = 4 + 32.
        assert_eq!(
            capabilities(&Value::Integer(36)),
            CAP_BRIDGE | CAP_TELEPHONE
        );
    }

    /// No recording has LLDP-MED; this fixture follows LLDP-EXT-MED-MIB: a phone that sends
    /// class 3 and its inventory, on a switch with lldpLocPortNum ≠ ifIndex.
    #[test]
    fn lldp_med_inventory_names_the_phone() {
        let fixture = "\
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.9.1.2
1.3.6.1.2.1.2.2.1.2.10101|4|GigabitEthernet1/0/1
1.3.6.1.2.1.2.2.1.3.10101|2|6
1.3.6.1.2.1.2.2.1.8.10101|2|1
1.3.6.1.2.1.17.1.4.1.2.1|2|10101
1.3.6.1.2.1.17.7.1.2.2.1.2.100.0.4.242.1.2.3|2|1
1.3.6.1.2.1.17.7.1.2.2.1.2.10.164.187.109.1.2.3|2|1
1.0.8802.1.1.2.1.3.7.1.3.1|4|GigabitEthernet1/0/1
1.0.8802.1.1.2.1.4.1.1.4.0.1.1|2|4
1.0.8802.1.1.2.1.4.1.1.5.0.1.1|4x|0004f2010203
1.0.8802.1.1.2.1.4.1.1.10.0.1.1|4|Poly VVX 450
1.0.8802.1.1.2.1.4.1.1.12.0.1.1|4x|0400
1.0.8802.1.1.2.1.5.4795.1.3.1.1.3.0.1.1|2|3
1.0.8802.1.1.2.1.5.4795.1.3.3.1.2.0.1.1|4|6.4.3.5000
1.0.8802.1.1.2.1.5.4795.1.3.3.1.4.0.1.1|4|0004F2010203X
1.0.8802.1.1.2.1.5.4795.1.3.3.1.6.0.1.1|4|VVX 450
";
        let (vb, _) = snmprec::parse(fixture);
        let id = DeviceIdentity {
            device: "sw".try_into().unwrap(),
            unit: "u".try_into().unwrap(),
        };
        let m = map(&id, &Selection::default(), &vb).unwrap();
        let s = seat(&m.reading, 10101);
        let phone = s.phone.as_ref().unwrap();
        assert_eq!(phone.model.as_deref(), Some("VVX 450"));
        assert_eq!(phone.firmware.as_deref(), Some("6.4.3.5000"));
        assert_eq!(phone.serial.as_deref(), Some("0004F2010203X"));
        assert_eq!(phone.mac, Some([0x00, 0x04, 0xf2, 0x01, 0x02, 0x03]));
        // The laptop behind the phone (data VLAN 10) is the client; the phone (VLAN 100) not.
        assert_eq!(s.clients, 1);
        assert_eq!(s.client_mac, Some([0xa4, 0xbb, 0x6d, 0x01, 0x02, 0x03]));
        assert_eq!(s.occupancy, Occupancy::Occupied);
    }

    #[test]
    fn not_a_switch() {
        let (vb, _) = snmprec::parse(&recording("ricoh_mpc3002"));
        let id = DeviceIdentity {
            device: "sw".try_into().unwrap(),
            unit: "u".try_into().unwrap(),
        };
        assert!(!is_switch(&vb));
        for name in SWITCHES {
            let (vb, _) = snmprec::parse(&recording(name));
            assert!(is_switch(&vb), "{name}");
        }
        let (empty, _) = snmprec::parse("1.3.6.1.2.1.1.1.0|4|x\n");
        assert_eq!(
            map(&id, &Selection::default(), &empty),
            Err(MapError::NotASwitch)
        );
    }

    /// Devices that answer BRIDGE-MIB (or parts of it) but are no access switch, written from
    /// public full walks of real devices (OpenNMS's linkd test walks, snmpsim's recorded
    /// Windows XP, LibreNMS's test recordings): only the objects detection reads.
    mod not_switches {
        use super::*;

        fn interfaces(rows: &[(u32, &str, i32)]) -> String {
            rows.iter()
                .map(|(i, descr, t)| {
                    format!("1.3.6.1.2.1.2.2.1.2.{i}|4|{descr}\n1.3.6.1.2.1.2.2.1.3.{i}|2|{t}\n")
                })
                .collect()
        }

        fn detected(text: &str) -> bool {
            is_switch(&snmprec::parse(text).0)
        }

        /// Cisco 870: an ADSL router with a four-port switch; its one bridge port is the
        /// ADSL line (AAL5), it forwards IP.
        #[test]
        fn a_soho_router_bridging_its_adsl_line() {
            let mut text = String::from(
                "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.9.1.569\n1.3.6.1.2.1.1.7.0|2|6\n\
                 1.3.6.1.2.1.4.1.0|2|1\n1.3.6.1.2.1.17.1.1.0|4x|00000C83D9A8\n\
                 1.3.6.1.2.1.17.1.4.1.2.9|2|10\n",
            );
            text += &interfaces(&[
                (1, "FastEthernet0", 6),
                (2, "FastEthernet1", 6),
                (3, "FastEthernet2", 6),
                (4, "FastEthernet3", 6),
                (5, "ATM0", 1),
                (9, "ATM0-aal5 layer", 49),
                (10, "ATM0.0-aal5 layer", 49),
                (12, "Vlan1", 53),
                (14, "BVI1", 6),
            ]);
            assert!(!detected(&text));
            // The same router bridging its four FastEthernet ports still routes with fewer
            // than eight: not an access switch.
            let four = text.replace(
                "1.3.6.1.2.1.17.1.4.1.2.9|2|10\n",
                "1.3.6.1.2.1.17.1.4.1.2.1|2|1\n1.3.6.1.2.1.17.1.4.1.2.2|2|2\n\
                 1.3.6.1.2.1.17.1.4.1.2.3|2|3\n1.3.6.1.2.1.17.1.4.1.2.4|2|4\n",
            );
            assert!(!detected(&four));
            // Not forwarding, it is a (small) switch.
            assert!(detected(
                &four.replace("1.3.6.1.2.1.4.1.0|2|1", "1.3.6.1.2.1.4.1.0|2|2")
            ));
        }

        /// MikroTik hAP ac lite: four radios (ifType 71) beside five Ethernet ports, and an
        /// all-zero bridge address.
        #[test]
        fn a_wireless_router() {
            let mut text = String::from(
                "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.14988.1\n\
                 1.3.6.1.2.1.17.1.1.0|4x|000000000000\n1.3.6.1.2.1.17.2.1.0|2|3\n",
            );
            let rows = [
                (1, "wlan1", 71),
                (2, "wlan2", 71),
                (3, "WAN", 6),
                (4, "ether2", 6),
                (5, "ether3", 6),
                (6, "ether4", 6),
                (7, "ether5", 6),
                (10, "bridge-local", 209),
            ];
            text += &interfaces(&rows);
            assert!(!detected(&text));
            // With a real bridge address and no radios, the five Ethernet ports make a switch.
            let wired: Vec<_> = rows.iter().copied().filter(|r| r.2 != 71).collect();
            let wired = text
                .lines()
                .take(3)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .replace("000000000000", "4C5E0C010203")
                + &interfaces(&wired);
            assert!(detected(&wired));
        }

        /// MikroTik RB411AR ("ARS-AP") and a RouterOS CHR: spanning-tree scalars only.
        #[test]
        fn routers_with_spanning_tree_scalars_only() {
            let mut text = String::from(
                "1.3.6.1.2.1.1.7.0|2|78\n1.3.6.1.2.1.4.1.0|2|1\n1.3.6.1.2.1.17.2.1.0|2|3\n",
            );
            text += &interfaces(&[(1, "ether1", 6), (2, "wlan1", 71)]);
            assert!(!detected(&text));
            let chr = "1.3.6.1.2.1.1.7.0|2|78\n1.3.6.1.2.1.4.1.0|2|1\n1.3.6.1.2.1.17.2.1.0|2|3\n"
                .to_string()
                + &interfaces(&[(1, "ether1", 6), (2, "ether2", 6), (3, "ether3", 6)]);
            assert!(!detected(&chr));
        }

        /// A UniFi access point: Linux calls its radios Ethernet (ifType 6). Given a bridge
        /// address and no base-port table (as UniFi switches answer), the radio names tell.
        #[test]
        fn an_access_point_whose_radios_say_ethernet() {
            let mut rows = vec![(1, "lo".to_string(), 24), (2, "eth0".to_string(), 6)];
            rows.extend((3..=10).map(|i| (i, format!("ra{}", i - 3), 6)));
            rows.extend((11..=14).map(|i| (i, format!("wds{}", i - 11), 6)));
            rows.push((29, "br0".to_string(), 6));
            let rows: Vec<_> = rows.iter().map(|(i, d, t)| (*i, d.as_str(), *t)).collect();
            let text = "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10\n\
                        1.3.6.1.2.1.17.1.1.0|4x|802AA8010203\n"
                .to_string()
                + &interfaces(&rows);
            assert!(!detected(&text));
        }

        /// Hosts: a Linux KVM host (sysServices 72, bridges br0 and virbr0, IP forwarding) and
        /// a Windows host (76), given a bridge address they do not have.
        #[test]
        fn servers() {
            let linux = "1.3.6.1.2.1.1.7.0|2|72\n1.3.6.1.2.1.4.1.0|2|1\n\
                         1.3.6.1.2.1.17.1.1.0|4x|001122334455\n"
                .to_string()
                + &interfaces(&[
                    (1, "lo", 24),
                    (2, "eth0", 6),
                    (4, "br0", 6),
                    (5, "virbr0", 6),
                    (9, "vnet0", 6),
                    (11, "eth1", 6),
                ]);
            assert!(!detected(&linux));
            assert!(!detected(&linux.replace("|2|72", "|2|76")));
            // Without sysServices, IP forwarding over fewer than eight ports still says router.
            let quiet: String = linux.lines().skip(1).map(|l| format!("{l}\n")).collect();
            assert!(!detected(&quiet));
        }

        /// Netgear GS108T, an eight-port managed switch (sysServices 7, not forwarding): a dock
        /// switch; and so is every switch of the corpus.
        #[test]
        fn access_switches_are_switches() {
            let mut text = String::from(
                "1.3.6.1.2.1.1.7.0|2|7\n1.3.6.1.2.1.4.1.0|2|2\n\
                 1.3.6.1.2.1.17.1.1.0|4x|00223FF00B7B\n",
            );
            for i in 1..=8 {
                text += &format!("1.3.6.1.2.1.17.1.4.1.2.{i}|2|{i}\n");
                text += &interfaces(&[(i, &format!("Port {i} Gigabit Ethernet"), 6)]);
            }
            assert!(detected(&text));
            for name in [
                "fortiswitch_s248ep",
                "linksys-ss_lgs318p",
                "procurve",
                "routeros_crs317",
                "tplink_sg2008",
                "zynos_xs1930-12hp",
            ] {
                assert!(detected(&recording(name)), "{name}");
            }
        }
    }
}
