//! The one shape of a device kind, and the one place that dispatches on [`DeviceKind`].
//!
//! Each kind ([`Copier`], [`Phone`], [`Dock`]) says what to fetch ([`Kind::plan`], then
//! [`Kind::follow_up`] once the first answers came back), how to recognise a device of its
//! kind ([`Kind::detect`], on what [`Kind::detect_plan`] fetched) and how to map the answers
//! ([`Kind::map`]). The poller, the probe and discovery run these; none of them matches on
//! the kind itself.

use devtel_protocol::{DeviceKind, Reading};

use crate::copier::Copier;
use crate::dock::{Dock, Selection};
use crate::phone::Phone;
use crate::snmp::VarbindSet;
use crate::{DeviceIdentity, MapError, Plan};

/// What a device kind is to devtel: plan, detect, map. Pure functions of what the device
/// answered; the caller does the SNMP.
pub trait Kind: Sync {
    /// Which kind this is.
    fn kind(&self) -> DeviceKind;

    /// The first stage of a poll: scalars to GET and subtrees to walk.
    fn plan(&self) -> Plan;

    /// A second stage, planned from the first stage's answers (a copier's vendor objects,
    /// once sysObjectID tells the vendor). Empty for most kinds.
    fn follow_up(&self, _first: &VarbindSet) -> Plan {
        Plan::default()
    }

    /// The SNMP contexts to poll after the default one, beyond the `configured` ones (an HP
    /// copier's `Jetdirect`), given the default context's answers.
    fn contexts(&self, configured: &[String], _answered: &VarbindSet) -> Vec<String> {
        configured.to_vec()
    }

    /// What [`Kind::detect`] needs to see of a device nobody has classified yet: a small
    /// subset of the poll.
    fn detect_plan(&self) -> Plan;

    /// Whether the device that answered `vb` is of this kind. Kinds are asked in the order
    /// of [`KINDS`]; the first that says yes wins.
    fn detect(&self, vb: &VarbindSet) -> bool;

    /// Maps one poll. `seats` is the configured seat selection (docks only).
    ///
    /// # Errors
    /// When the answers hold none of what this kind is read from.
    fn map(
        &self,
        id: &DeviceIdentity,
        seats: &Selection,
        vb: &VarbindSet,
    ) -> Result<Mapped, MapError>;
}

/// A mapped poll, and what the mapping noticed that the operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The reading.
    pub reading: Reading,
    /// Configured seats that match no port of the switch (docks).
    pub unmatched_seats: Vec<String>,
    /// Forwarding-database rows ignored because their index is not a MAC address (docks).
    pub rejected_fdb_rows: usize,
}

impl Mapped {
    /// A reading with nothing to report beside it.
    pub fn plain(reading: Reading) -> Self {
        Mapped {
            reading,
            unmatched_seats: Vec::new(),
            rejected_fdb_rows: 0,
        }
    }
}

/// Every kind, in the order detection asks them: a copier's agent also answers IF-MIB and
/// often BRIDGE-MIB, and a phone's answers IF-MIB, so the most specific kinds come first.
pub const KINDS: [&dyn Kind; 3] = [&Copier, &Phone, &Dock];

/// The kind `kind`.
pub fn of(kind: DeviceKind) -> &'static dyn Kind {
    match kind {
        DeviceKind::Copier => &Copier,
        DeviceKind::Phone => &Phone,
        DeviceKind::Dock => &Dock,
    }
}

/// The kind of the device that answered `vb`, if it is one devtel maps.
pub fn detect(vb: &VarbindSet) -> Option<DeviceKind> {
    KINDS.iter().find(|k| k.detect(vb)).map(|k| k.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_names_itself() {
        for kind in DeviceKind::ALL {
            assert_eq!(of(kind).kind(), kind);
            assert_eq!(KINDS.iter().filter(|k| k.kind() == kind).count(), 1);
            assert!(!of(kind).plan().is_empty());
            assert!(!of(kind).detect_plan().is_empty());
        }
    }
}
