//! Copier/printer readings: status, lifetime page counters and supplies, as the Printer-MIB
//! (RFC 3805) and HOST-RESOURCES-MIB (RFC 2790) define them.
//!
//! Design constraints:
//! - Raw values survive: every enumeration keeps unknown codes (`Unrecognised(i32)`), supply
//!   levels and capacities keep the MIB's special values -1/-2/-3 as variants ([`Level`],
//!   [`Capacity`]) and are never turned into numbers, and a missing column is `None`, distinct
//!   from any value the device could send.
//! - Interpretation ([`PrinterStatus::health`], [`Supply::level_percent`], [`ErrorBits`]) is a
//!   pure function of the reading, so collector and gateway always agree on it.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::{
    Id, Vendor, MAX_ALERTS, MAX_COLOUR_LEN, MAX_CONSOLE_LEN, MAX_COVERS, MAX_DESCRIPTION_LEN,
    MAX_MARKERS, MAX_MODEL_LEN, MAX_NAME_LEN, MAX_SUPPLIES, MAX_TRAYS,
};

/// One poll of a copier or printer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrinterReading {
    /// The device's configured id (unique per deployment; a topic segment).
    pub device: Id,
    /// The administrative unit the device is assigned to (a topic segment).
    pub unit: Id,
    /// Model string: hrDeviceDescr of the printer row, else sysDescr.
    pub model: Option<String<MAX_MODEL_LEN>>,
    /// Serial number: prtGeneralSerialNumber, else the vendor's private serial object.
    pub serial: Option<String<MAX_MODEL_LEN>>,
    /// Vendor, from the sysObjectID enterprise number (confirmed by a vendor object for OEM
    /// families), else from sysDescr.
    pub vendor: Option<Vendor>,
    /// Firmware version, from the vendor's private object where one is known.
    pub firmware: Option<String<MAX_MODEL_LEN>>,
    /// sysUpTime in hundredths of a second (the SNMP agent's uptime; wraps after ~497 days).
    pub uptime_ticks: Option<u32>,
    /// hrDeviceStatus, hrPrinterStatus and hrPrinterDetectedErrorState of the printer row.
    pub status: PrinterStatus,
    /// prtMarkerTable rows with a lifetime counter, in table order.
    pub markers: Vec<MarkerCounter, MAX_MARKERS>,
    /// prtMarkerSuppliesTable rows, in table order.
    pub supplies: Vec<Supply, MAX_SUPPLIES>,
    /// Page counters split by colour and function, from the vendor's private MIB.
    pub counters: PageCounters,
    /// prtInputTable rows (paper trays), in table order.
    pub trays: Vec<Tray, MAX_TRAYS>,
    /// prtAlertTable rows (active alerts), in table order.
    pub alerts: Vec<Alert, MAX_ALERTS>,
    /// prtConsoleDisplayBufferText lines joined with " | "; `None` when empty.
    pub console: Option<String<MAX_CONSOLE_LEN>>,
    /// prtCoverTable rows.
    pub covers: Vec<Cover, MAX_COVERS>,
    /// True when the device reported more rows or longer strings than the wire format keeps.
    pub truncated: bool,
}

impl PrinterReading {
    /// Makes `self` a copy of `other` element by element: only what `other` holds is copied,
    /// where `*self = other.clone()` moves the whole fixed capacity (kilobytes) through a
    /// temporary. For keeping a device's last reading up to date in place.
    pub fn assign_from(&mut self, other: &Self) {
        let PrinterReading {
            device,
            unit,
            model,
            serial,
            vendor,
            firmware,
            uptime_ticks,
            status,
            markers,
            supplies,
            counters,
            trays,
            alerts,
            console,
            covers,
            truncated,
        } = other;
        self.device.clone_from(device);
        self.unit.clone_from(unit);
        self.model.clone_from(model);
        self.serial.clone_from(serial);
        self.vendor.clone_from(vendor);
        self.firmware.clone_from(firmware);
        self.uptime_ticks = *uptime_ticks;
        self.status.clone_from(status);
        crate::assign(&mut self.markers, markers);
        crate::assign(&mut self.supplies, supplies);
        self.counters.clone_from(counters);
        crate::assign(&mut self.trays, trays);
        crate::assign(&mut self.alerts, alerts);
        self.console.clone_from(console);
        crate::assign(&mut self.covers, covers);
        self.truncated = *truncated;
    }

    /// The lifetime page counter of the first marker (prtMarkerLifeCount), if any.
    pub fn life_count(&self) -> Option<&MarkerCounter> {
        self.markers.first()
    }
}

/// The three status objects of the printer row, each `None` when the device does not answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrinterStatus {
    /// hrDeviceStatus (1.3.6.1.2.1.25.3.2.1.5.dev).
    pub device: Option<DeviceStatus>,
    /// hrPrinterStatus (1.3.6.1.2.1.25.3.5.1.1.dev).
    pub printer: Option<PrinterState>,
    /// hrPrinterDetectedErrorState (1.3.6.1.2.1.25.3.5.1.2.dev).
    pub errors: Option<ErrorBits>,
}

/// A coarse, derived health for dashboards and rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Health {
    /// Running, no condition that needs attention.
    Ok,
    /// Working, but something needs attention soon (low toner or paper, service requested).
    Warning,
    /// Not printing: down, or a condition such as jam, open door, no paper or no toner.
    Error,
    /// The device did not say.
    Unknown,
}

impl Health {
    /// Lower-case name used in JSON and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Warning => "warning",
            Health::Error => "error",
            Health::Unknown => "unknown",
        }
    }
}

impl PrinterStatus {
    /// Combines the three objects following RFC 2790/3805 and HP's reading of them: hrDeviceStatus
    /// `down` or a stopping condition is an error; `warning` or a warning condition is a warning;
    /// `running`/`testing` otherwise is ok. `offline` alone is ignored (CUPS found it unreliable),
    /// and so is `serviceRequested` for the error level (it only warns).
    pub fn health(&self) -> Health {
        let bits = self.errors.unwrap_or_default();
        let stopping = Condition::STOPPING.iter().any(|c| bits.contains(*c));
        let warning = Condition::WARNING.iter().any(|c| bits.contains(*c));
        match self.device {
            Some(DeviceStatus::Down) => Health::Error,
            _ if stopping => Health::Error,
            Some(DeviceStatus::Warning) => Health::Warning,
            _ if warning => Health::Warning,
            Some(DeviceStatus::Running) | Some(DeviceStatus::Testing) => Health::Ok,
            // No hrDeviceStatus but a printer status that shows it working.
            None if matches!(
                self.printer,
                Some(PrinterState::Idle)
                    | Some(PrinterState::Printing)
                    | Some(PrinterState::Warmup)
            ) =>
            {
                Health::Ok
            }
            _ => Health::Unknown,
        }
    }
}

crate::code_enum! {
    /// hrDeviceStatus (RFC 2790).
    pub enum DeviceStatus {
        /// unknown(1)
        Unknown = 1 => "unknown",
        /// running(2)
        Running = 2 => "running",
        /// warning(3): a non-critical alert is active.
        Warning = 3 => "warning",
        /// testing(4)
        Testing = 4 => "testing",
        /// down(5): a critical alert is active, or the device is offline.
        Down = 5 => "down",
    }
}

crate::code_enum! {
    /// hrPrinterStatus (RFC 2790).
    pub enum PrinterState {
        /// other(1): usually together with hrDeviceStatus down, or standby.
        Other = 1 => "other",
        /// unknown(2)
        Unknown = 2 => "unknown",
        /// idle(3)
        Idle = 3 => "idle",
        /// printing(4)
        Printing = 4 => "printing",
        /// warmup(5)
        Warmup = 5 => "warmup",
    }
}

/// hrPrinterDetectedErrorState as a 16-bit field in the MIB's own bit order: MIB bit *n* is
/// `0x8000 >> n`, i.e. bit 0 is the most significant bit of the first octet. Agents send 0, 1 or
/// 2 octets; missing octets are zero. (No bits beyond 15 are defined; extra octets are ignored.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBits(pub u16);

impl ErrorBits {
    /// Builds the field from the raw OCTET STRING.
    pub fn from_octets(octets: &[u8]) -> Self {
        let hi = octets.first().copied().unwrap_or(0);
        let lo = octets.get(1).copied().unwrap_or(0);
        ErrorBits(u16::from_be_bytes([hi, lo]))
    }

    /// Whether `condition` is set.
    pub const fn contains(self, condition: Condition) -> bool {
        self.0 & condition.mask() != 0
    }

    /// The conditions that are set, in bit order.
    pub fn conditions(self) -> impl Iterator<Item = Condition> {
        Condition::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

/// One named bit of hrPrinterDetectedErrorState (bit number = discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Condition {
    LowPaper = 0,
    NoPaper = 1,
    LowToner = 2,
    NoToner = 3,
    DoorOpen = 4,
    Jammed = 5,
    Offline = 6,
    ServiceRequested = 7,
    InputTrayMissing = 8,
    OutputTrayMissing = 9,
    MarkerSupplyMissing = 10,
    OutputNearFull = 11,
    OutputFull = 12,
    InputTrayEmpty = 13,
    OverduePreventMaint = 14,
}

impl Condition {
    /// All defined conditions, in bit order.
    pub const ALL: [Condition; 15] = [
        Condition::LowPaper,
        Condition::NoPaper,
        Condition::LowToner,
        Condition::NoToner,
        Condition::DoorOpen,
        Condition::Jammed,
        Condition::Offline,
        Condition::ServiceRequested,
        Condition::InputTrayMissing,
        Condition::OutputTrayMissing,
        Condition::MarkerSupplyMissing,
        Condition::OutputNearFull,
        Condition::OutputFull,
        Condition::InputTrayEmpty,
        Condition::OverduePreventMaint,
    ];

    /// Conditions that stop the device from printing.
    pub const STOPPING: [Condition; 8] = [
        Condition::NoPaper,
        Condition::NoToner,
        Condition::DoorOpen,
        Condition::Jammed,
        Condition::InputTrayMissing,
        Condition::OutputTrayMissing,
        Condition::MarkerSupplyMissing,
        Condition::OutputFull,
    ];

    /// Conditions that need attention soon.
    pub const WARNING: [Condition; 6] = [
        Condition::LowPaper,
        Condition::LowToner,
        Condition::ServiceRequested,
        Condition::OutputNearFull,
        Condition::InputTrayEmpty,
        Condition::OverduePreventMaint,
    ];

    /// The MIB bit number.
    pub const fn bit(self) -> u8 {
        self as u8
    }

    /// The mask of this condition within [`ErrorBits`].
    pub const fn mask(self) -> u16 {
        0x8000 >> (self as u16)
    }

    /// The MIB's name.
    pub const fn name(self) -> &'static str {
        match self {
            Condition::LowPaper => "lowPaper",
            Condition::NoPaper => "noPaper",
            Condition::LowToner => "lowToner",
            Condition::NoToner => "noToner",
            Condition::DoorOpen => "doorOpen",
            Condition::Jammed => "jammed",
            Condition::Offline => "offline",
            Condition::ServiceRequested => "serviceRequested",
            Condition::InputTrayMissing => "inputTrayMissing",
            Condition::OutputTrayMissing => "outputTrayMissing",
            Condition::MarkerSupplyMissing => "markerSupplyMissing",
            Condition::OutputNearFull => "outputNearFull",
            Condition::OutputFull => "outputFull",
            Condition::InputTrayEmpty => "inputTrayEmpty",
            Condition::OverduePreventMaint => "overduePreventMaint",
        }
    }
}

/// One prtMarkerTable row: the lifetime counter of a marking engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerCounter {
    /// prtMarkerIndex.
    pub index: u32,
    /// prtMarkerCounterUnit; `None` when the device does not answer it.
    pub unit: Option<CounterUnit>,
    /// prtMarkerLifeCount (Counter32), in `unit`.
    pub life_count: u32,
}

crate::code_enum! {
    /// prtMarkerCounterUnit (PrtMarkerCounterUnitTC).
    pub enum CounterUnit {
        /// tenThousandthsOfInches(3)
        TenThousandthsOfInches = 3 => "tenThousandthsOfInches",
        /// micrometers(4)
        Micrometers = 4 => "micrometers",
        /// characters(5)
        Characters = 5 => "characters",
        /// lines(6)
        Lines = 6 => "lines",
        /// impressions(7): a duplex sheet is two impressions.
        Impressions = 7 => "impressions",
        /// sheets(8): a duplex sheet is one sheet.
        Sheets = 8 => "sheets",
        /// dotRow(9)
        DotRow = 9 => "dotRow",
        /// hours(11)
        Hours = 11 => "hours",
        /// feet(16)
        Feet = 16 => "feet",
        /// meters(17)
        Meters = 17 => "meters",
    }
}

/// One prtMarkerSuppliesTable row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    /// prtMarkerSuppliesIndex (the last OID component).
    pub index: u32,
    /// prtMarkerSuppliesType.
    pub kind: Option<SupplyType>,
    /// prtMarkerSuppliesClass: consumed (toner) or filled (waste).
    pub class: Option<SupplyClass>,
    /// prtMarkerSuppliesSupplyUnit.
    pub unit: Option<SupplyUnit>,
    /// Colour: prtMarkerColorantValue through the colorant index, else derived from the
    /// description; lower case ("black", "cyan", ...). `None` when not tied to one colour.
    pub colour: Option<String<MAX_COLOUR_LEN>>,
    /// prtMarkerSuppliesDescription, decoded and trimmed.
    pub description: String<MAX_DESCRIPTION_LEN>,
    /// prtMarkerSuppliesMaxCapacity.
    pub max_capacity: Option<Capacity>,
    /// prtMarkerSuppliesLevel (remaining space for a receptacle).
    pub level: Option<Level>,
}

impl Supply {
    /// `100 * level / max_capacity`, clamped to 0..=100, only where both are real numbers and the
    /// capacity is positive. For a receptacle (waste) this is the remaining *space*.
    pub fn level_percent(&self) -> Option<u8> {
        match (self.level, self.max_capacity) {
            (Some(Level::Value(level)), Some(Capacity::Value(max))) if max > 0 => {
                let pct = (u64::from(level) * 100 / u64::from(max)).min(100);
                Some(pct as u8)
            }
            _ => None,
        }
    }
}

/// prtMarkerSuppliesLevel with its special values kept distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// A real level (>= 0) in the supply's unit.
    Value(u32),
    /// -1: other / no restriction.
    Other,
    /// -2: unknown.
    Unknown,
    /// -3: some remaining (for a receptacle: some space remaining).
    SomeRemaining,
    /// A negative value the MIB does not define (kept raw).
    Invalid(i32),
}

impl Level {
    /// Maps the raw Integer32.
    pub const fn from_raw(raw: i32) -> Self {
        match raw {
            -1 => Level::Other,
            -2 => Level::Unknown,
            -3 => Level::SomeRemaining,
            v if v >= 0 => Level::Value(v as u32),
            v => Level::Invalid(v),
        }
    }

    /// The raw Integer32 exactly as the device sent it.
    pub const fn raw(self) -> i64 {
        match self {
            Level::Value(v) => v as i64,
            Level::Other => -1,
            Level::Unknown => -2,
            Level::SomeRemaining => -3,
            Level::Invalid(v) => v as i64,
        }
    }
}

/// prtMarkerSuppliesMaxCapacity with its special values kept distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Capacity {
    /// A real capacity (>= 0) in the supply's unit.
    Value(u32),
    /// -1: other / no restriction.
    Other,
    /// -2: unknown.
    Unknown,
    /// A negative value the MIB does not define (kept raw).
    Invalid(i32),
}

impl Capacity {
    /// Maps the raw Integer32.
    pub const fn from_raw(raw: i32) -> Self {
        match raw {
            -1 => Capacity::Other,
            -2 => Capacity::Unknown,
            v if v >= 0 => Capacity::Value(v as u32),
            v => Capacity::Invalid(v),
        }
    }

    /// The raw Integer32 exactly as the device sent it.
    pub const fn raw(self) -> i64 {
        match self {
            Capacity::Value(v) => v as i64,
            Capacity::Other => -1,
            Capacity::Unknown => -2,
            Capacity::Invalid(v) => v as i64,
        }
    }
}

crate::code_enum! {
    /// prtMarkerSuppliesClass.
    pub enum SupplyClass {
        /// other(1)
        Other = 1 => "other",
        /// supplyThatIsConsumed(3): toner, ink, drum.
        Consumed = 3 => "supplyThatIsConsumed",
        /// receptacleThatIsFilled(4): waste toner; the level is the remaining space.
        Receptacle = 4 => "receptacleThatIsFilled",
    }
}

crate::code_enum! {
    /// prtMarkerSuppliesType (IANA PrtMarkerSuppliesTypeTC, 2016).
    pub enum SupplyType {
        /// other(1)
        Other = 1 => "other",
        /// unknown(2)
        Unknown = 2 => "unknown",
        /// toner(3)
        Toner = 3 => "toner",
        /// wasteToner(4)
        WasteToner = 4 => "wasteToner",
        /// ink(5)
        Ink = 5 => "ink",
        /// inkCartridge(6)
        InkCartridge = 6 => "inkCartridge",
        /// inkRibbon(7)
        InkRibbon = 7 => "inkRibbon",
        /// wasteInk(8)
        WasteInk = 8 => "wasteInk",
        /// opc(9): photoconductor drum.
        Opc = 9 => "opc",
        /// developer(10)
        Developer = 10 => "developer",
        /// fuserOil(11)
        FuserOil = 11 => "fuserOil",
        /// solidWax(12)
        SolidWax = 12 => "solidWax",
        /// ribbonWax(13)
        RibbonWax = 13 => "ribbonWax",
        /// wasteWax(14)
        WasteWax = 14 => "wasteWax",
        /// fuser(15)
        Fuser = 15 => "fuser",
        /// coronaWire(16)
        CoronaWire = 16 => "coronaWire",
        /// fuserOilWick(17)
        FuserOilWick = 17 => "fuserOilWick",
        /// cleanerUnit(18)
        CleanerUnit = 18 => "cleanerUnit",
        /// fuserCleaningPad(19)
        FuserCleaningPad = 19 => "fuserCleaningPad",
        /// transferUnit(20)
        TransferUnit = 20 => "transferUnit",
        /// tonerCartridge(21)
        TonerCartridge = 21 => "tonerCartridge",
        /// fuserOiler(22)
        FuserOiler = 22 => "fuserOiler",
        /// water(23)
        Water = 23 => "water",
        /// wasteWater(24)
        WasteWater = 24 => "wasteWater",
        /// glueWaterAdditive(25)
        GlueWaterAdditive = 25 => "glueWaterAdditive",
        /// wastePaper(26)
        WastePaper = 26 => "wastePaper",
        /// bindingSupply(27)
        BindingSupply = 27 => "bindingSupply",
        /// bandingSupply(28)
        BandingSupply = 28 => "bandingSupply",
        /// stitchingWire(29)
        StitchingWire = 29 => "stitchingWire",
        /// shrinkWrap(30)
        ShrinkWrap = 30 => "shrinkWrap",
        /// paperWrap(31)
        PaperWrap = 31 => "paperWrap",
        /// staples(32)
        Staples = 32 => "staples",
        /// inserts(33)
        Inserts = 33 => "inserts",
        /// covers(34)
        Covers = 34 => "covers",
        /// matteToner(35)
        MatteToner = 35 => "matteToner",
        /// matteInk(36)
        MatteInk = 36 => "matteInk",
    }
}

crate::code_enum! {
    /// prtMarkerSuppliesSupplyUnit.
    pub enum SupplyUnit {
        /// other(1)
        Other = 1 => "other",
        /// unknown(2)
        Unknown = 2 => "unknown",
        /// tenThousandthsOfInches(3)
        TenThousandthsOfInches = 3 => "tenThousandthsOfInches",
        /// micrometers(4)
        Micrometers = 4 => "micrometers",
        /// impressions(7)
        Impressions = 7 => "impressions",
        /// sheets(8)
        Sheets = 8 => "sheets",
        /// hours(11)
        Hours = 11 => "hours",
        /// thousandthsOfOunces(12)
        ThousandthsOfOunces = 12 => "thousandthsOfOunces",
        /// tenthsOfGrams(13)
        TenthsOfGrams = 13 => "tenthsOfGrams",
        /// hundrethsOfFluidOunces(14)
        HundrethsOfFluidOunces = 14 => "hundrethsOfFluidOunces",
        /// tenthsOfMilliliters(15)
        TenthsOfMilliliters = 15 => "tenthsOfMilliliters",
        /// feet(16)
        Feet = 16 => "feet",
        /// meters(17)
        Meters = 17 => "meters",
        /// items(18)
        Items = 18 => "items",
        /// percent(19)
        Percent = 19 => "percent",
    }
}

/// The state of a supply, derived from level, capacity and class (see [`Supply::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SupplyState {
    /// Enough left (or, for a receptacle, enough space left).
    Ok,
    /// A consumable at or below [`LOW_PERCENT`] — order a replacement.
    Low,
    /// A consumable at zero.
    Empty,
    /// A receptacle (waste container) with at most [`LOW_PERCENT`] space left.
    AlmostFull,
    /// A receptacle with no space left.
    Full,
    /// -3: some remaining (some space remaining for a receptacle), no number.
    SomeRemaining,
    /// -1: no restriction (the device does not meter it).
    NoRestriction,
    /// Unknown: no level, -2, or a level without a usable capacity.
    Unknown,
}

impl SupplyState {
    /// snake_case name used in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            SupplyState::Ok => "ok",
            SupplyState::Low => "low",
            SupplyState::Empty => "empty",
            SupplyState::AlmostFull => "almost_full",
            SupplyState::Full => "full",
            SupplyState::SomeRemaining => "some_remaining",
            SupplyState::NoRestriction => "no_restriction",
            SupplyState::Unknown => "unknown",
        }
    }
}

/// A consumable at or below this percentage is [`SupplyState::Low`]; a receptacle with at most
/// this much space left is [`SupplyState::AlmostFull`].
pub const LOW_PERCENT: u8 = 10;

impl Supply {
    /// Whether the supply fills up (waste toner, waste ink, ...) rather than being consumed:
    /// its class says receptacleThatIsFilled, or, without a class, its type is a waste type.
    pub fn is_receptacle(&self) -> bool {
        match self.class {
            Some(SupplyClass::Receptacle) => true,
            Some(SupplyClass::Consumed) => false,
            _ => matches!(
                self.kind,
                Some(
                    SupplyType::WasteToner
                        | SupplyType::WasteInk
                        | SupplyType::WasteWax
                        | SupplyType::WasteWater
                        | SupplyType::WastePaper
                )
            ),
        }
    }

    /// The supply's state. Consumables: 0 is empty, up to [`LOW_PERCENT`] is low. Receptacles
    /// (whose level is the remaining *space*): 0 is full, up to [`LOW_PERCENT`] almost full.
    /// Ricoh's -100 ("near empty") counts as low. No percentage is invented where the MIB gives
    /// none: -3 stays "some remaining", -2 and unusable capacities are unknown.
    pub fn state(&self) -> SupplyState {
        let receptacle = self.is_receptacle();
        let (low, zero) = if receptacle {
            (SupplyState::AlmostFull, SupplyState::Full)
        } else {
            (SupplyState::Low, SupplyState::Empty)
        };
        match self.level {
            None | Some(Level::Unknown) => SupplyState::Unknown,
            Some(Level::Other) => SupplyState::NoRestriction,
            Some(Level::SomeRemaining) => SupplyState::SomeRemaining,
            Some(Level::Invalid(-100)) if !receptacle => SupplyState::Low,
            Some(Level::Invalid(_)) => SupplyState::Unknown,
            Some(Level::Value(0)) => zero,
            Some(Level::Value(_)) => match self.level_percent() {
                Some(p) if p <= LOW_PERCENT => low,
                Some(_) => SupplyState::Ok,
                None => SupplyState::Unknown,
            },
        }
    }
}

/// Page counters beyond prtMarkerLifeCount, from the vendor's private MIB. Each is `None` when
/// the device does not expose it. Units are the vendor's (mostly impressions; see the collector's
/// per-vendor notes); `total` is the vendor's machine total, which can legitimately differ from
/// prtMarkerLifeCount (misfeeds, A3 counted twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PageCounters {
    /// The vendor's total page counter.
    pub total: Option<u64>,
    /// Black-and-white pages.
    pub mono: Option<u64>,
    /// Colour pages (full colour plus single/two-colour where the vendor splits them).
    pub colour: Option<u64>,
    /// Pages printed from the network/print function.
    pub print: Option<u64>,
    /// Pages copied.
    pub copy: Option<u64>,
    /// Pages (originals) scanned.
    pub scan: Option<u64>,
    /// Fax pages printed.
    pub fax: Option<u64>,
    /// Duplex: sheets or sides through the duplex unit, as the vendor counts them.
    pub duplex: Option<u64>,
}

/// One prtInputTable row: a paper tray or feeder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tray {
    /// prtInputIndex.
    pub index: u32,
    /// prtInputType.
    pub kind: Option<InputType>,
    /// prtInputName ("Tray 1", "Bypass"), else prtInputDescription.
    pub name: Option<String<MAX_NAME_LEN>>,
    /// prtInputMediaName ("A4", "iso_a4_210x297mm").
    pub media: Option<String<MAX_NAME_LEN>>,
    /// prtInputCapacityUnit (same codes as the supplies unit).
    pub unit: Option<SupplyUnit>,
    /// prtInputMaxCapacity.
    pub max_capacity: Option<Capacity>,
    /// prtInputCurrentLevel (-3: at least one sheet remains).
    pub level: Option<Level>,
    /// prtInputStatus (PrtSubUnitStatusTC, raw).
    pub status: Option<u8>,
}

impl Tray {
    /// `100 * level / max_capacity` where both are real numbers and the capacity is positive.
    pub fn level_percent(&self) -> Option<u8> {
        match (self.level, self.max_capacity) {
            (Some(Level::Value(level)), Some(Capacity::Value(max))) if max > 0 => {
                Some((u64::from(level) * 100 / u64::from(max)).min(100) as u8)
            }
            _ => None,
        }
    }
}

crate::code_enum! {
    /// prtInputType.
    pub enum InputType {
        /// other(1)
        Other = 1 => "other",
        /// unknown(2)
        Unknown = 2 => "unknown",
        /// sheetFeedAutoRemovableTray(3)
        RemovableTray = 3 => "sheetFeedAutoRemovableTray",
        /// sheetFeedAutoNonRemovableTray(4)
        NonRemovableTray = 4 => "sheetFeedAutoNonRemovableTray",
        /// sheetFeedManual(5): the bypass tray.
        Manual = 5 => "sheetFeedManual",
        /// continuousRoll(6)
        ContinuousRoll = 6 => "continuousRoll",
        /// continuousFanFold(7)
        ContinuousFanFold = 7 => "continuousFanFold",
        /// sheetFeedPull(8)
        SheetFeedPull = 8 => "sheetFeedPull",
    }
}

/// One prtAlertTable row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// prtAlertIndex, from the OID (RFC 1759 agents do not make it readable).
    pub index: u32,
    /// prtAlertSeverityLevel.
    pub severity: Option<AlertSeverity>,
    /// prtAlertTrainingLevel: who should act.
    pub training: Option<AlertTraining>,
    /// prtAlertGroup (raw PrtAlertGroupTC: 8 input, 11 markerSupplies, 6 cover, ...).
    pub group: Option<i32>,
    /// prtAlertGroupIndex: the row in the group's table (-1: not applicable).
    pub group_index: Option<i32>,
    /// prtAlertCode (raw PrtAlertCodeTC; see [`alert_code_name`]).
    pub code: Option<i32>,
    /// prtAlertDescription, decoded and trimmed.
    pub description: Option<String<MAX_DESCRIPTION_LEN>>,
}

crate::code_enum! {
    /// prtAlertSeverityLevel.
    pub enum AlertSeverity {
        /// other(1)
        Other = 1 => "other",
        /// critical(3)
        Critical = 3 => "critical",
        /// warningUnaryChangeEvent(4)
        Warning = 4 => "warning",
        /// warningBinaryChangeEvent(5)
        WarningBinary = 5 => "warningBinaryChangeEvent",
    }
}

crate::code_enum! {
    /// prtAlertTrainingLevel.
    pub enum AlertTraining {
        /// other(1)
        Other = 1 => "other",
        /// unknown(2)
        Unknown = 2 => "unknown",
        /// untrained(3): any user.
        Untrained = 3 => "untrained",
        /// trained(4): the key operator.
        Trained = 4 => "trained",
        /// fieldService(5): a service technician.
        FieldService = 5 => "fieldService",
        /// management(6)
        Management = 6 => "management",
        /// noInterventionRequired(7)
        NoInterventionRequired = 7 => "noInterventionRequired",
    }
}

/// The IANA name of a prtAlertCode, for the codes facility management acts on.
pub fn alert_code_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "other",
        2 => "unknown",
        3 => "coverOpen",
        4 => "coverClosed",
        5 => "interlockOpen",
        6 => "interlockClosed",
        7 => "configurationChange",
        8 => "jam",
        9 => "subunitMissing",
        10 => "subunitLifeAlmostOver",
        11 => "subunitLifeOver",
        12 => "subunitAlmostEmpty",
        13 => "subunitEmpty",
        14 => "subunitAlmostFull",
        15 => "subunitFull",
        16 => "subunitNearLimit",
        17 => "subunitAtLimit",
        18 => "subunitOpened",
        19 => "subunitClosed",
        20 => "subunitTurnedOn",
        21 => "subunitTurnedOff",
        22 => "subunitOffline",
        23 => "subunitPowerSaver",
        24 => "subunitWarmingUp",
        25 => "subunitAdded",
        26 => "subunitRemoved",
        29 => "subunitRecoverableFailure",
        30 => "subunitUnrecoverableFailure",
        501 => "doorOpen",
        502 => "doorClosed",
        503 => "powerUp",
        504 => "powerDown",
        505 => "printerNMSReset",
        506 => "printerManualReset",
        507 => "printerReadyToPrint",
        801 => "inputMediaTrayMissing",
        807 => "inputMediaSupplyLow",
        808 => "inputMediaSupplyEmpty",
        809 => "inputMediaChangeRequest",
        810 => "inputManualInputRequest",
        901 => "outputMediaTrayMissing",
        902 => "outputMediaTrayAlmostFull",
        903 => "outputMediaTrayFull",
        1001 => "markerFuserUnderTemperature",
        1002 => "markerFuserOverTemperature",
        1101 => "markerTonerEmpty",
        1102 => "markerInkEmpty",
        1104 => "markerTonerAlmostEmpty",
        1105 => "markerInkAlmostEmpty",
        1107 => "markerWasteTonerReceptacleAlmostFull",
        1108 => "markerWasteInkReceptacleAlmostFull",
        1109 => "markerWasteTonerReceptacleFull",
        1110 => "markerWasteInkReceptacleFull",
        1111 => "markerOpcLifeAlmostOver",
        1112 => "markerOpcLifeOver",
        1113 => "markerDeveloperAlmostEmpty",
        1114 => "markerDeveloperEmpty",
        1115 => "markerTonerCartridgeMissing",
        1301 => "mediaPathMediaTrayMissing",
        1302 => "mediaPathMediaTrayAlmostFull",
        1303 => "mediaPathMediaTrayFull",
        _ => return None,
    })
}

/// One prtCoverTable row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cover {
    /// prtCoverIndex.
    pub index: u32,
    /// prtCoverDescription.
    pub description: Option<String<MAX_NAME_LEN>>,
    /// prtCoverStatus.
    pub status: Option<CoverStatus>,
}

crate::code_enum! {
    /// prtCoverStatus.
    pub enum CoverStatus {
        /// other(1)
        Other = 1 => "other",
        /// unknown(2)
        Unknown = 2 => "unknown",
        /// coverOpen(3)
        Open = 3 => "coverOpen",
        /// coverClosed(4)
        Closed = 4 => "coverClosed",
        /// interlockOpen(5)
        InterlockOpen = 5 => "interlockOpen",
        /// interlockClosed(6)
        InterlockClosed = 6 => "interlockClosed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bits_are_msb_first_as_the_mib_numbers_them() {
        // Sharp MX-3570N answers 0x20 (one octet meaning: bit 2 = lowToner).
        let bits = ErrorBits::from_octets(&[0x20]);
        assert!(bits.contains(Condition::LowToner));
        assert_eq!(bits.conditions().count(), 1);
        // Konica C250i answers 0x01 0x00: bit 7 = serviceRequested.
        let bits = ErrorBits::from_octets(&[0x01, 0x00]);
        assert_eq!(
            bits.conditions().collect::<std::vec::Vec<_>>(),
            [Condition::ServiceRequested]
        );
        // 2nd octet MSB is bit 8 inputTrayMissing; 0x02 of octet 1 is bit 14.
        let bits = ErrorBits::from_octets(&[0x00, 0x82]);
        assert_eq!(
            bits.conditions().collect::<std::vec::Vec<_>>(),
            [Condition::InputTrayMissing, Condition::OverduePreventMaint]
        );
        assert_eq!(ErrorBits::from_octets(&[]), ErrorBits(0));
    }

    #[test]
    fn special_levels_are_variants_and_round_trip_to_raw() {
        for raw in [-5, -3, -2, -1, 0, 1, 100, i32::MAX] {
            assert_eq!(Level::from_raw(raw).raw(), i64::from(raw));
        }
        assert_eq!(Level::from_raw(-3), Level::SomeRemaining);
        assert_eq!(Capacity::from_raw(-2), Capacity::Unknown);
        for raw in [-4, -2, -1, 0, 7] {
            assert_eq!(Capacity::from_raw(raw).raw(), i64::from(raw));
        }
    }

    #[test]
    fn percent_only_where_defined() {
        let mut s = Supply {
            index: 1,
            kind: Some(SupplyType::Toner),
            class: Some(SupplyClass::Consumed),
            unit: Some(SupplyUnit::Percent),
            colour: None,
            description: String::new(),
            max_capacity: Some(Capacity::Value(200)),
            level: Some(Level::Value(50)),
        };
        assert_eq!(s.level_percent(), Some(25));
        s.level = Some(Level::SomeRemaining);
        assert_eq!(s.level_percent(), None);
        s.level = Some(Level::Value(300));
        assert_eq!(s.level_percent(), Some(100));
        s.max_capacity = Some(Capacity::Value(0));
        assert_eq!(s.level_percent(), None);
        s.max_capacity = Some(Capacity::Unknown);
        assert_eq!(s.level_percent(), None);
    }

    #[test]
    fn code_enums_keep_unknown_codes() {
        assert_eq!(DeviceStatus::from_raw(3), DeviceStatus::Warning);
        assert_eq!(DeviceStatus::from_raw(9), DeviceStatus::Unrecognised(9));
        assert_eq!(DeviceStatus::from_raw(9).raw(), 9);
        assert_eq!(SupplyType::from_raw(21).name(), "tonerCartridge");
    }

    #[test]
    fn health_combines_the_three_status_objects() {
        let st = |d: i32, e: &[u8]| PrinterStatus {
            device: Some(DeviceStatus::from_raw(d)),
            printer: None,
            errors: Some(ErrorBits::from_octets(e)),
        };
        assert_eq!(st(2, &[0]).health(), Health::Ok);
        assert_eq!(st(3, &[0]).health(), Health::Warning);
        assert_eq!(st(2, &[0x20]).health(), Health::Warning); // lowToner
        assert_eq!(st(2, &[0x04]).health(), Health::Error); // jammed
        assert_eq!(st(5, &[0]).health(), Health::Error);
        assert_eq!(st(2, &[0x02]).health(), Health::Ok); // offline alone is ignored
        assert_eq!(PrinterStatus::default().health(), Health::Unknown);
    }
}
