//! IP phone / VoIP endpoint readings: identification and per-line registration and hook state,
//! from the device's own agent (field guide §4.3: most phones expose little; analogue adapters
//! such as Grandstream's HT8xx and SIP intercoms expose line state).

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::{Id, Vendor, MAX_LINES, MAX_MODEL_LEN, MAX_NAME_LEN};

/// One poll of a phone, analogue adapter (ATA), intercom or VoIP gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PhoneReading {
    /// The device's configured id.
    pub device: Id,
    /// The administrative unit.
    pub unit: Id,
    /// Vendor by sysObjectID / sysDescr.
    pub vendor: Option<Vendor>,
    /// Model.
    pub model: Option<String<MAX_MODEL_LEN>>,
    /// Firmware version.
    pub firmware: Option<String<MAX_MODEL_LEN>>,
    /// Unit serial number (not a part number).
    pub serial: Option<String<MAX_MODEL_LEN>>,
    /// MAC address of the device's network port.
    pub mac: Option<[u8; 6]>,
    /// sysUpTime in hundredths of a second.
    pub uptime_ticks: Option<u32>,
    /// Lines / accounts / FXS ports, in index order.
    pub lines: Vec<PhoneLine, MAX_LINES>,
    /// True when the device reported more lines or longer strings than kept.
    pub truncated: bool,
}

impl PhoneReading {
    /// Derived health: every line registered is ok, any line not registered is a warning (the
    /// phone cannot make calls on it), no line information is unknown.
    pub fn health(&self) -> crate::Health {
        if self.lines.is_empty() {
            return crate::Health::Unknown;
        }
        if self
            .lines
            .iter()
            .any(|l| l.registration == Registration::NotRegistered)
        {
            crate::Health::Warning
        } else if self
            .lines
            .iter()
            .all(|l| l.registration == Registration::Registered)
        {
            crate::Health::Ok
        } else {
            crate::Health::Unknown
        }
    }
}

/// One line, account or port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneLine {
    /// Line / port number as the device numbers it.
    pub index: u32,
    /// Extension or phone number, when exposed.
    pub number: Option<String<MAX_NAME_LEN>>,
    /// SIP / H.323 registration.
    pub registration: Registration,
    /// Hook state (analogue ports).
    pub hook: Option<HookState>,
}

/// Registration state of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Registration {
    /// Registered with the PBX/registrar.
    Registered,
    /// Not registered: the line cannot place or receive calls.
    NotRegistered,
    /// Registering or unregistering, or a state string devtel does not know.
    Unknown,
}

impl Registration {
    /// snake_case name used in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Registration::Registered => "registered",
            Registration::NotRegistered => "not_registered",
            Registration::Unknown => "unknown",
        }
    }
}

/// Hook state of an analogue line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookState {
    /// On hook (idle).
    OnHook,
    /// Off hook (in use).
    OffHook,
    /// Any other state ("Not Connected", ...).
    Unknown,
}

impl HookState {
    /// snake_case name used in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            HookState::OnHook => "on_hook",
            HookState::OffHook => "off_hook",
            HookState::Unknown => "unknown",
        }
    }
}
