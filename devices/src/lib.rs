//! devtel's device core: SNMP values as owned data and, per device kind, a pure mapping from
//! what a device answered to a typed wire reading. No I/O, no clock: the collector fetches, the
//! mappings decide, and the tests feed the same mappings recorded walks of real devices.
//!
//! # Layout
//! - [`snmp`]: [`snmp::Oid`], [`snmp::Value`] and [`snmp::VarbindSet`], what a poll returns.
//! - [`snmprec`]: reads snmpsim recordings into a `VarbindSet`.
//! - [`Kind`]: the one shape of a device kind (plan, detect, map), and [`of`] / [`KINDS`], the
//!   one place that dispatches on [`DeviceKind`]. The kinds: [`copier`], [`phone`], [`dock`].
//! - [`vendor`]: vendor identification and the vendors' private objects (copiers).
//! - [`text`]: SNMP DisplayStrings to bounded wire strings.
//! - [`corpus`]: the recorded devices beside the project, for tests and benches.

pub mod copier;
pub mod corpus;
pub mod dock;
mod kind;
pub mod phone;
pub mod snmp;
pub mod snmprec;
pub mod text;
pub mod vendor;

pub use devtel_protocol::DeviceKind;
use devtel_protocol::Id;
pub use kind::{detect, of, Kind, Mapped, KINDS};

use crate::snmp::Oid;

/// What a poll of one device kind fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Scalars fetched with one GET.
    pub get: Vec<Oid>,
    /// Subtrees walked, in order.
    pub walk: Vec<Oid>,
}

impl Plan {
    /// Whether there is nothing to fetch.
    pub fn is_empty(&self) -> bool {
        self.get.is_empty() && self.walk.is_empty()
    }
}

/// Who a reading is about: the configured ids, copied into the reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Device id.
    pub device: Id,
    /// Administrative unit.
    pub unit: Id,
}

/// Why varbinds could not be mapped to a reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The device answered, but has no Printer-MIB / hrPrinter data.
    #[error("the device exposes no Printer-MIB data (is it configured with the right kind?)")]
    NotAPrinter,
    /// The device answered without even sysDescr or sysObjectID.
    #[error("the device answered no system identification (sysDescr/sysObjectID)")]
    NotAPhone,
    /// The device answered, but has no interface table.
    #[error("the device exposes no interface table (IF-MIB); is it a switch?")]
    NotASwitch,
}
