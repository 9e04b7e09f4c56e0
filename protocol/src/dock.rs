//! Docking-station seats, seen from the access switch (field guide §5).
//!
//! USB-C/Thunderbolt docks have no management agent. A "dock seat" is therefore a switch port
//! (one per shared desk); a [`DockReading`] is one poll of one access switch and carries every
//! seat the collector watches on it, with the evidence behind each seat's [`Occupancy`]: link
//! state, the client MACs learned on the port (after removing the switch's own MACs and phones)
//! and a phone found in front of the dock by LLDP.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::{Id, Vendor, MAX_MODEL_LEN, MAX_NAME_LEN, MAX_NEIGHBOUR_MODEL_LEN, MAX_SEATS};

/// One poll of an access switch whose ports are dock seats.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DockReading {
    /// The switch's configured id.
    pub device: Id,
    /// The administrative unit the seats belong to.
    pub unit: Id,
    /// Switch vendor by sysObjectID.
    pub vendor: Option<Vendor>,
    /// Switch model.
    pub model: Option<String<MAX_MODEL_LEN>>,
    /// Switch firmware.
    pub firmware: Option<String<MAX_MODEL_LEN>>,
    /// sysUpTime in hundredths of a second (absent on some switches).
    pub uptime_ticks: Option<u32>,
    /// True when the forwarding database could be read: without it, an up port's occupancy is
    /// unknown.
    pub fdb_read: bool,
    /// The seats, in ifIndex order.
    pub seats: Vec<Seat, MAX_SEATS>,
    /// True when the switch had more seats or longer strings than kept.
    pub truncated: bool,
}

impl DockReading {
    /// Makes `self` a copy of `other` element by element (see
    /// [`crate::PrinterReading::assign_from`]).
    pub fn assign_from(&mut self, other: &Self) {
        let DockReading {
            device,
            unit,
            vendor,
            model,
            firmware,
            uptime_ticks,
            fdb_read,
            seats,
            truncated,
        } = other;
        self.device.clone_from(device);
        self.unit.clone_from(unit);
        self.vendor.clone_from(vendor);
        self.model.clone_from(model);
        self.firmware.clone_from(firmware);
        self.uptime_ticks = *uptime_ticks;
        self.fdb_read = *fdb_read;
        crate::assign(&mut self.seats, seats);
        self.truncated = *truncated;
    }
}

/// The locally-administered bit of a MAC address's first byte: set in the pseudonyms devtel's
/// collector sends for dock clients (`privacy = "per-seat"`), never in a vendor's address.
pub const LOCALLY_ADMINISTERED: u8 = 0x02;

/// Whether `mac` is locally administered (a pseudonym, not a device's burnt-in address).
pub const fn is_locally_administered(mac: &[u8; 6]) -> bool {
    mac[0] & LOCALLY_ADMINISTERED != 0
}

/// One dock seat: a switch port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// ifIndex of the port.
    pub if_index: u32,
    /// ifName (or ifDescr when the switch has no ifName).
    pub name: Option<String<MAX_NAME_LEN>>,
    /// ifAlias: the label site IT gave the port (often the desk number).
    pub label: Option<String<MAX_NAME_LEN>>,
    /// ifOperStatus.
    pub link: Option<LinkStatus>,
    /// ifHighSpeed in Mb/s (0 while down on most switches).
    pub speed_mbps: Option<u32>,
    /// ifLastChange: sysUpTime (hundredths of a second) at the last link change, 0 when the
    /// change happened before the agent started.
    pub last_change_ticks: Option<u32>,
    /// Client MACs learned on the port (the switch's own MACs, phones and MACs outside the
    /// seat's data VLANs are not counted).
    pub clients: u16,
    /// A client on the port: personal data. devtel's collector sends none by default; with
    /// `privacy = "per-seat"` a salted pseudonym of the lowest client MAC (locally
    /// administered, so never a real address), never the address itself.
    pub client_mac: Option<[u8; 6]>,
    /// A phone on this port (LLDP telephone capability or LLDP-MED class 3).
    pub phone: Option<Neighbour>,
    /// The derived occupancy.
    pub occupancy: Occupancy,
}

/// An LLDP neighbour on a seat (a desk phone in front of the dock).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Neighbour {
    /// Chassis or port MAC of the neighbour.
    pub mac: Option<[u8; 6]>,
    /// LLDP-MED model name, else lldpRemSysDesc (usually model and firmware), else
    /// lldpRemSysName.
    pub model: Option<String<MAX_NEIGHBOUR_MODEL_LEN>>,
    /// LLDP-MED firmware (else software) revision.
    pub firmware: Option<String<MAX_NAME_LEN>>,
    /// LLDP-MED serial number.
    pub serial: Option<String<MAX_NAME_LEN>>,
}

crate::code_enum! {
    /// ifOperStatus (RFC 2863).
    pub enum LinkStatus {
        /// up(1)
        Up = 1 => "up",
        /// down(2): no dock, or a dock without power.
        Down = 2 => "down",
        /// testing(3)
        Testing = 3 => "testing",
        /// unknown(4)
        Unknown = 4 => "unknown",
        /// dormant(5)
        Dormant = 5 => "dormant",
        /// notPresent(6)
        NotPresent = 6 => "notPresent",
        /// lowerLayerDown(7)
        LowerLayerDown = 7 => "lowerLayerDown",
    }
}

/// What a seat is doing (field guide §5.2 occupancy algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Occupancy {
    /// Link down: no dock, or a dock without power.
    Empty,
    /// Link up but no client MAC learned: a dock without a laptop, or a sleeping laptop whose
    /// MAC has aged out.
    Idle,
    /// A client MAC is learned on the port: someone works here.
    Occupied,
    /// The port looks like an uplink or trunk (not ethernet, a bridge neighbour, or many
    /// MACs): not a seat, whatever the configuration says.
    Uplink,
    /// Up, but the switch's forwarding database could not be read.
    Unknown,
}

impl Occupancy {
    /// snake_case name used in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Occupancy::Empty => "empty",
            Occupancy::Idle => "idle",
            Occupancy::Occupied => "occupied",
            Occupancy::Uplink => "uplink",
            Occupancy::Unknown => "unknown",
        }
    }
}

impl DockReading {
    /// Derived health: ok when the switch answered with its forwarding database, unknown when
    /// occupancy could not be told (no FDB).
    pub fn health(&self) -> crate::Health {
        if self.fdb_read {
            crate::Health::Ok
        } else {
            crate::Health::Unknown
        }
    }

    /// Seats by occupancy: (occupied, idle, empty, other) where other is uplink or unknown.
    pub fn tally(&self) -> (usize, usize, usize, usize) {
        let count = |o: Occupancy| self.seats.iter().filter(|s| s.occupancy == o).count();
        let occupied = count(Occupancy::Occupied);
        let idle = count(Occupancy::Idle);
        let empty = count(Occupancy::Empty);
        (
            occupied,
            idle,
            empty,
            self.seats.len() - occupied - idle - empty,
        )
    }
}

#[cfg(test)]
mod tests {
    /// `decode` returns an [`Envelope`](crate::Envelope) by value and debug builds copy it a
    /// few times on the way; the largest reading (a dock switch) must keep it small enough for
    /// a 2 MiB thread stack (measured: 30 KB in memory, 1.0–1.5 MiB of stack for a debug-build
    /// decode + re-encode round trip).
    #[test]
    fn an_envelope_stays_small_in_memory() {
        assert!(core::mem::size_of::<crate::Envelope>() <= 32 * 1024);
        assert!(core::mem::size_of::<super::DockReading>() <= 16 * 1024);
    }
}
