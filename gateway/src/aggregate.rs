//! The aggregator: per-device latest state, per-device history figures ([`crate::ledger`]) and
//! per-unit rollups over the administrative hierarchy, with no I/O and no clock.
//!
//! Design constraints:
//! - State is keyed by device; unit figures are *derived* from the devices in the unit and its
//!   descendants, never accumulated. Envelopes are deduplicated by (collector, epoch, seq), and
//!   the ledger's figures do not depend on arrival order, so a redelivered or reordered stream
//!   gives the same figures, and so does replaying the store after a crash.
//! - "Now" is the newest poll time seen (`as_of`), never the wall clock: the same readings give
//!   the same documents on every run and every replica.
//! - A reading older than the device's current one still counts in the history figures; it
//!   only does not replace the current state (counted as stale).
//! - A device that stops answering keeps its last known counters and supplies; only its status
//!   becomes `unreachable`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use devtel_protocol::topic;
use devtel_protocol::{
    CounterUnit, DeviceKind, DockReading, Envelope, Health, NoResponseCause, PhoneReading,
    PrinterReading, Reading, SupplyState,
};
use jiff::civil::Date;
use serde::Serialize;

use crate::deliveries::{Deliveries, Delivery, EpochReport};
use crate::ledger::{DayFigures, DeviceLedger, LedgerSettings};
use crate::meter::fnv1a;
use crate::units::{Units, UNASSIGNED};

/// What happened to one reading offered to [`Aggregator::ingest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the device's current state changed.
    Applied,
    /// The same (collector, epoch, seq) was received before (a redelivery): not applied again.
    Duplicate,
    /// Older than the device's current reading: counted in the history, state unchanged.
    Stale,
}

/// Settings of the aggregation.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// The administrative hierarchy.
    pub units: Units,
    /// Calendar, late window, seat hold.
    pub ledger: LedgerSettings,
    /// Availability target in percent (e.g. 99.9).
    pub sla_target_percent: f64,
    /// Days of the availability window ending at `as_of`.
    pub availability_days: u32,
    /// `privacy = "per-seat"`: device documents list their seats (else only counts, and
    /// those only from [`MIN_SEATS_SHOWN`] seats).
    pub per_seat: bool,
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            units: Units::default(),
            ledger: LedgerSettings::default(),
            sla_target_percent: 99.0,
            availability_days: 30,
            per_seat: false,
        }
    }
}

/// Fewest seats whose counts and occupancy a document shows (a unit's, or a dock switch's):
/// below, the figures would tell about single people at their desks, so they are withheld
/// (`seats_withheld`).
pub const MIN_SEATS_SHOWN: u32 = 5;

/// Per-device state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct DeviceState {
    /// The unit the device is counted in (configured, or [`UNASSIGNED`]).
    unit: String,
    /// The unit its collector reported.
    reported_unit: String,
    kind: DeviceKind,
    collector: String,
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    /// The last poll's outcome when the device did not answer.
    no_response: Option<NoResponseCause>,
    /// The last successful reading (kept while the device is unreachable). Boxed, as are the
    /// two below: a reading is kilobytes (heapless), and the map moves its values around.
    last_reading: Option<Box<PrinterReading>>,
    /// The last successful phone reading (kept while the phone is unreachable).
    last_phone: Option<Box<PhoneReading>>,
    /// The last successful dock-switch reading (kept while the switch is unreachable).
    last_dock: Option<Box<DockReading>>,
    /// The newest poll time at which the device answered (0: never); with `no_response`,
    /// "unreachable since the answer at ...".
    answered_ms: u64,
}

/// [`DeviceState`] as format 1 of the snapshots held it.
#[derive(Debug, Clone, serde::Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct DeviceStateV1 {
    unit: String,
    reported_unit: String,
    kind: DeviceKind,
    collector: String,
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    no_response: Option<NoResponseCause>,
    last_reading: Option<Box<PrinterReading>>,
    last_phone: Option<Box<PhoneReading>>,
    last_dock: Option<Box<DockReading>>,
}

impl From<DeviceStateV1> for DeviceState {
    fn from(v1: DeviceStateV1) -> Self {
        DeviceState {
            answered_ms: if v1.no_response.is_none() {
                v1.timestamp_ms
            } else {
                0
            },
            unit: v1.unit,
            reported_unit: v1.reported_unit,
            kind: v1.kind,
            collector: v1.collector,
            epoch: v1.epoch,
            seq: v1.seq,
            timestamp_ms: v1.timestamp_ms,
            no_response: v1.no_response,
            last_reading: v1.last_reading,
            last_phone: v1.last_phone,
            last_dock: v1.last_dock,
        }
    }
}

/// A boxed copy of a reading, made in a stack frame of its own. Inlined into
/// [`Aggregator::ingest`], the temporaries of every reading kind (heapless, up to 15 KB each)
/// gave it a 36 KB frame, and touching that frame on every call was a fifth of the time
/// aggregation took.
#[inline(never)]
fn boxed<T: Clone>(reading: &T) -> Box<T> {
    Box::new(reading.clone())
}

/// All state of the gateway's figures. Serialized as a snapshot's body (the settings are not
/// part of it: a snapshot carries their digest, and a restore takes them from the config).
///
/// A clone is cheap and shares the state (each device's state and ledger behind an [`Arc`],
/// copied on write): readers answer from a clone taken under the lock that ingest needs,
/// and ingest then copies only what it changes while a reader still holds the clone.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Aggregator {
    #[serde(skip)]
    settings: Arc<CoreSettings>,
    devices: BTreeMap<String, Arc<DeviceState>>,
    ledgers: BTreeMap<String, Arc<DeviceLedger>>,
    deliveries: Arc<Deliveries>,
    as_of_ms: u64,
    unassigned_readings: u64,
    /// The first day whose figures are kept (figures retention), once a day has been pruned.
    figures_from: Option<Date>,
    /// The poll time from which the figures retention is next looked at (hourly, not per
    /// envelope: it needs a local date).
    next_prune_ms: u64,
}

/// Format version of [`Aggregator::snapshot`]: a snapshot of another version is not
/// restored (the store replays instead).
pub const SNAPSHOT_VERSION: u8 = 2;

/// The aggregator as format 1 held it (ledgers without meter reads, seat hours and day
/// levels): read only to carry closed days (see [`Aggregator::carry_closed_days`]).
#[derive(Debug, Default, serde::Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct AggregatorV1 {
    devices: BTreeMap<String, DeviceStateV1>,
    ledgers: BTreeMap<String, crate::ledger::DeviceLedgerV1>,
    deliveries: Deliveries,
    as_of_ms: u64,
    unassigned_readings: u64,
    figures_from: Option<Date>,
    next_prune_ms: u64,
}

impl From<AggregatorV1> for Aggregator {
    fn from(v1: AggregatorV1) -> Self {
        Aggregator {
            settings: Arc::default(),
            devices: (v1.devices.into_iter())
                .map(|(k, d)| (k, Arc::new(d.into())))
                .collect(),
            ledgers: (v1.ledgers.into_iter())
                .map(|(k, l)| (k, Arc::new(l.into())))
                .collect(),
            deliveries: Arc::new(v1.deliveries),
            as_of_ms: v1.as_of_ms,
            unassigned_readings: v1.unassigned_readings,
            figures_from: v1.figures_from,
            next_prune_ms: v1.next_prune_ms,
        }
    }
}

/// Why [`Aggregator::restore`] refused a snapshot. Never a reason to fail: the caller replays
/// the store instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Written by another format version.
    #[error("snapshot format {found}, this gateway reads {SNAPSHOT_VERSION}")]
    Version {
        /// Its version.
        found: u8,
    },
    /// Taken under other aggregation settings (units, calendar, late window, ...): its
    /// figures may differ from what these settings give.
    #[error("snapshot taken with other aggregation settings")]
    Settings,
    /// The bytes are not a snapshot.
    #[error("snapshot does not decode")]
    Malformed,
}

/// A stable digest of the settings that shape the state (all of them: a change of any makes
/// a snapshot be replayed over, never wrong).
fn settings_fingerprint(settings: &CoreSettings) -> u64 {
    fnv1a(format!("{settings:?}").as_bytes())
}

/// The settings digest and the aggregator (without settings) of a snapshot of this format,
/// or with `older`, also of format 1.
fn decode_snapshot(bytes: &[u8], older: bool) -> Result<(u64, Aggregator), SnapshotError> {
    let (&version, rest) = bytes.split_first().ok_or(SnapshotError::Malformed)?;
    match version {
        SNAPSHOT_VERSION => postcard::from_bytes(rest).map_err(|_| SnapshotError::Malformed),
        1 if older => postcard::from_bytes::<(u64, AggregatorV1)>(rest)
            .map(|(digest, v1)| (digest, v1.into()))
            .map_err(|_| SnapshotError::Malformed),
        found => Err(SnapshotError::Version { found }),
    }
}

/// What one envelope changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Per reading.
    pub outcomes: Vec<Outcome>,
    /// Units whose documents changed (with their ancestors), sorted.
    pub units: Vec<String>,
    /// Devices whose documents changed, sorted.
    pub devices: Vec<String>,
    /// Readings counted in [`UNASSIGNED`] because their unit is not configured.
    pub unassigned: usize,
}

/// Where [`Aggregator::ingest_into`] notes the units (with their ancestors) and devices
/// whose documents changed.
#[derive(Debug)]
pub struct Marks<'a> {
    /// Unit ids.
    pub units: &'a mut BTreeSet<String>,
    /// Device ids.
    pub devices: &'a mut BTreeSet<String>,
}

impl Marks<'_> {
    fn unit(&mut self, id: &str) {
        if !self.units.contains(id) {
            self.units.insert(id.to_string());
        }
    }

    fn device(&mut self, id: &str) {
        if !self.devices.contains(id) {
            self.devices.insert(id.to_string());
        }
    }
}

impl Aggregator {
    /// An empty aggregator with default settings (no units configured, UTC office hours).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty aggregator.
    pub fn with_settings(settings: CoreSettings) -> Self {
        Aggregator {
            settings: Arc::new(settings),
            ..Self::default()
        }
    }

    /// The settings.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// All state of the figures as bytes: the devices' current state, each ledger's day
    /// figures and the points it keeps to place late readings, the deliveries per collector
    /// epoch, and a digest of the settings. [`Aggregator::restore`] reads it back.
    pub fn snapshot(&self) -> Vec<u8> {
        let out = vec![SNAPSHOT_VERSION];
        let state = (settings_fingerprint(&self.settings), self);
        // Writing to a vector cannot fail; an error would leave a snapshot that does not
        // decode, which a restore refuses.
        postcard::to_extend(&state, out).unwrap_or_default()
    }

    /// The aggregator a [`Aggregator::snapshot`] was taken of, under `settings`.
    ///
    /// # Errors
    /// [`SnapshotError`] when the snapshot is of another format version, was taken under
    /// other settings, or does not decode.
    pub fn restore(settings: CoreSettings, bytes: &[u8]) -> Result<Aggregator, SnapshotError> {
        let (fingerprint, mut aggregator) = decode_snapshot(bytes, false)?;
        if fingerprint != settings_fingerprint(&settings) {
            return Err(SnapshotError::Settings);
        }
        aggregator.settings = Arc::new(settings);
        Ok(aggregator)
    }

    /// After a replay of what the raw retention left (the snapshots did not restore under
    /// these settings), takes the figures of the days before `first_exact` from `bytes`, a
    /// snapshot of this format taken under other settings: the closed days keep the figures
    /// they had (what was billed), the days from `first_exact` on are those of the replay.
    /// Devices the replay did not see come from the snapshot, counted in the unit their
    /// collector reported resolved under these settings; the deliveries are merged.
    ///
    /// A snapshot of the previous format (1) is read too: an upgrade keeps the closed days.
    ///
    /// # Errors
    /// [`SnapshotError`] when the snapshot is of an unknown format or does not decode (nothing
    /// changes then).
    pub fn carry_closed_days(
        &mut self,
        first_exact: Date,
        bytes: &[u8],
    ) -> Result<usize, SnapshotError> {
        let (_, old) = decode_snapshot(bytes, true)?;
        let mut carried = 0;
        for (device, old_ledger) in old.ledgers {
            let ledger = Arc::make_mut(self.ledgers.entry(device).or_default());
            carried += ledger.carry_closed_days(first_exact, Arc::unwrap_or_clone(old_ledger));
        }
        for (device, mut state) in old.devices {
            if !self.devices.contains_key(&device) {
                Arc::make_mut(&mut state).unit = self
                    .settings
                    .units
                    .resolve(&state.reported_unit)
                    .to_string();
                self.devices.insert(device, state);
            }
        }
        Arc::make_mut(&mut self.deliveries).merge_older(&old.deliveries);
        self.as_of_ms = self.as_of_ms.max(old.as_of_ms);
        self.unassigned_readings = self.unassigned_readings.max(old.unassigned_readings);
        self.figures_from = match (self.figures_from, old.figures_from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(carried)
    }

    /// After a replay of what the raw retention left, with no snapshot to take the closed
    /// days from: drops the days before `first_exact` (partial: their first readings are
    /// deleted), so that they show as not held, never as too few pages.
    pub fn drop_days_before(&mut self, first_exact: Date) {
        for ledger in self.ledgers.values_mut() {
            Arc::make_mut(ledger).prune_days(first_exact);
        }
        self.figures_from = Some(
            self.figures_from
                .map_or(first_exact, |f| f.max(first_exact)),
        );
    }

    /// Applies every reading of `envelope`.
    pub fn ingest(&mut self, envelope: &Envelope) -> Changes {
        let (mut units, mut devices) = (BTreeSet::new(), BTreeSet::new());
        let mut changes = self.ingest_into(
            envelope,
            &mut Marks {
                units: &mut units,
                devices: &mut devices,
            },
        );
        changes.units = units.into_iter().collect();
        changes.devices = devices.into_iter().collect();
        changes
    }

    /// [`Aggregator::ingest`], noting the units and devices whose documents changed in
    /// `marks` (the returned [`Changes`] leaves them empty): a unit or device already noted
    /// costs no allocation.
    pub fn ingest_into(&mut self, envelope: &Envelope, marks: &mut Marks<'_>) -> Changes {
        let mut changes = Changes::default();
        let delivery = Arc::make_mut(&mut self.deliveries).record(
            &envelope.collector,
            envelope.epoch,
            envelope.seq,
            envelope.timestamp_ms,
        );
        if delivery == Delivery::Repeat {
            changes
                .outcomes
                .resize(envelope.readings.len(), Outcome::Duplicate);
            return changes;
        }
        let collector_hash = fnv1a(envelope.collector.as_bytes());
        if envelope.timestamp_ms > self.as_of_ms {
            self.as_of_ms = envelope.timestamp_ms;
            if self.as_of_ms >= self.next_prune_ms {
                self.prune_figures();
                self.next_prune_ms = self.as_of_ms.saturating_add(3_600_000);
            }
        }
        for (i, reading) in envelope.readings.iter().enumerate() {
            let device = reading.device();
            let unit = self.settings.units.resolve(reading.unit());
            if unit == UNASSIGNED {
                changes.unassigned += 1;
                self.unassigned_readings += 1;
            }
            let key = (
                envelope.timestamp_ms,
                envelope.epoch,
                envelope.seq,
                collector_hash.wrapping_add(i as u64),
            );
            let ledger = Arc::make_mut(match self.ledgers.get_mut(device) {
                Some(ledger) => ledger,
                None => self.ledgers.entry(device.to_string()).or_default(),
            });
            ledger.record(&self.settings.ledger, key, reading);
            marks.device(device);
            self.settings.units.each_in_lineage(unit, |u| marks.unit(u));
            let newer = (envelope.timestamp_ms, envelope.epoch, envelope.seq);
            // The device's state is updated where it is (no new keys or strings for what did
            // not change).
            let answered = !matches!(reading, Reading::NoResponse(_));
            let state = match self.devices.get_mut(device) {
                Some(current) => {
                    let current = Arc::make_mut(current);
                    let answered_before = current.answered_ms;
                    if answered {
                        current.answered_ms = current.answered_ms.max(envelope.timestamp_ms);
                    }
                    if newer < (current.timestamp_ms, current.epoch, current.seq) {
                        // Late behind a silent poll, but the newest answer yet: it is what
                        // the device last said, whichever came first.
                        if answered && envelope.timestamp_ms > answered_before {
                            remember(current, reading);
                        }
                        changes.outcomes.push(Outcome::Stale);
                        continue;
                    }
                    if current.unit != unit {
                        self.settings
                            .units
                            .each_in_lineage(&current.unit, |u| marks.unit(u));
                        current.unit = unit.to_string();
                    }
                    if current.reported_unit != reading.unit() {
                        current.reported_unit = reading.unit().to_string();
                    }
                    if current.collector != envelope.collector.as_str() {
                        current.collector = envelope.collector.to_string();
                    }
                    current
                }
                None => {
                    Arc::make_mut(self.devices.entry(device.to_string()).or_insert_with(|| {
                        Arc::new(DeviceState {
                            unit: unit.to_string(),
                            reported_unit: reading.unit().to_string(),
                            kind: reading.kind(),
                            collector: envelope.collector.to_string(),
                            epoch: envelope.epoch,
                            seq: envelope.seq,
                            timestamp_ms: envelope.timestamp_ms,
                            no_response: None,
                            last_reading: None,
                            last_phone: None,
                            last_dock: None,
                            answered_ms: if answered { envelope.timestamp_ms } else { 0 },
                        })
                    }))
                }
            };
            state.kind = reading.kind();
            state.epoch = envelope.epoch;
            state.seq = envelope.seq;
            state.timestamp_ms = envelope.timestamp_ms;
            match reading {
                Reading::NoResponse(n) => state.no_response = Some(n.cause),
                _ => {
                    state.no_response = None;
                    remember(state, reading);
                }
            }
            changes.outcomes.push(Outcome::Applied);
        }
        changes
    }

    /// Per collector and epoch: envelopes received, repeats dropped, sequence numbers missing.
    pub fn deliveries(&self) -> BTreeMap<String, Vec<EpochReport>> {
        self.deliveries.report()
    }

    /// The stored ranges `[start, end)` of `(collector, epoch)` around `seqs` (see
    /// [`Deliveries::covering`]): what the gateway acknowledges to the collector.
    pub fn stored_ranges(
        &self,
        collector: &str,
        epoch: u64,
        seqs: impl IntoIterator<Item = u64>,
    ) -> Vec<(u64, u64)> {
        self.deliveries.covering(collector, epoch, seqs)
    }

    /// The newest poll time seen, ms since the Unix epoch (0 before the first reading).
    pub fn as_of_ms(&self) -> u64 {
        self.as_of_ms
    }

    /// Drops the day figures older than the figures retention, once per new first day kept
    /// (each device's ledger, so once a day at most in steady operation).
    fn prune_figures(&mut self) {
        let days = i64::from(self.settings.ledger.figures_retention_days);
        let Ok(first_kept) = self.as_of_date().checked_sub(jiff::Span::new().days(days)) else {
            return;
        };
        if self.figures_from.is_some_and(|f| f >= first_kept) {
            return;
        }
        for ledger in self.ledgers.values_mut() {
            Arc::make_mut(ledger).prune_days(first_kept);
        }
        self.figures_from = Some(first_kept);
    }

    /// The first day whose figures are kept, once the figures retention has dropped days.
    pub fn figures_from(&self) -> Option<Date> {
        self.figures_from
    }

    /// The local date of `as_of`.
    pub fn as_of_date(&self) -> Date {
        self.settings.ledger.calendar.date(self.as_of_ms)
    }

    /// Readings counted in [`UNASSIGNED`] so far.
    pub fn unassigned_readings(&self) -> u64 {
        self.unassigned_readings
    }

    /// Readings that arrived too late to be placed in a series, over all devices.
    pub fn late_readings(&self) -> u64 {
        self.ledgers.values().map(|l| l.late).sum()
    }

    /// Ids of all units: configured ones, [`UNASSIGNED`] when it has devices, and (when no unit
    /// is configured) every unit a device reported. Sorted.
    pub fn unit_ids(&self) -> Vec<String> {
        let mut set: BTreeSet<String> = self.devices.values().map(|d| d.unit.clone()).collect();
        set.extend(self.settings.units.defs().map(|d| d.id.clone()));
        set.into_iter().collect()
    }

    /// Whether `unit` is known (configured or has devices).
    pub fn has_unit(&self, unit: &str) -> bool {
        self.settings.units.get(unit).is_some() || self.devices.values().any(|d| d.unit == unit)
    }

    /// `unit` and all its descendants.
    fn subtree(&self, unit: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![unit.to_string()];
        while let Some(u) = stack.pop() {
            if out.insert(u.clone()) {
                stack.extend(self.settings.units.children(&u).iter().cloned());
            }
        }
        out
    }

    /// Devices counted in `unit` or (with `rollup`) any of its descendants.
    pub fn device_ids_in(&self, unit: &str, rollup: bool) -> Vec<String> {
        let units = if rollup {
            self.subtree(unit)
        } else {
            BTreeSet::from([unit.to_string()])
        };
        self.devices
            .iter()
            .filter(|(_, d)| units.contains(&d.unit))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Sum of the day figures of `devices` over `[from, to]`.
    pub fn figures<'a>(
        &self,
        devices: impl IntoIterator<Item = &'a String>,
        from: Date,
        to: Date,
    ) -> DayFigures {
        let mut out = DayFigures::default();
        for d in devices {
            if let Some(l) = self.ledgers.get(d) {
                out += &l.sum(from, to);
            }
        }
        out
    }

    /// Day figures of one device in `[from, to]`, by day.
    pub fn device_days(&self, device: &str, from: Date, to: Date) -> Vec<(Date, DayFigures)> {
        self.ledgers
            .get(device)
            .map(|l| l.days.range(from..=to).map(|(d, f)| (*d, *f)).collect())
            .unwrap_or_default()
    }

    /// Consumables replaced per (device, supply description) in `[from, to]`.
    pub fn replacements<'a>(
        &self,
        devices: impl IntoIterator<Item = &'a String>,
        from: Date,
        to: Date,
    ) -> Vec<ReplacementDoc> {
        let mut out = Vec::new();
        for d in devices {
            let Some(l) = self.ledgers.get(d) else {
                continue;
            };
            let mut by_index: BTreeMap<u32, i64> = BTreeMap::new();
            for ((date, index), n) in &l.replaced {
                if *date >= from && *date <= to {
                    *by_index.entry(*index).or_default() += n;
                }
            }
            let supplies = self
                .devices
                .get(d)
                .and_then(|s| s.last_reading.as_deref())
                .map(|r| r.supplies.as_slice())
                .unwrap_or(&[]);
            for (index, count) in by_index.into_iter().filter(|(_, n)| *n > 0) {
                let supply = supplies.iter().find(|s| s.index == index);
                out.push(ReplacementDoc {
                    device: d.clone(),
                    supply_index: index,
                    description: supply.map(|s| s.description.to_string()),
                    colour: supply.and_then(|s| s.colour.as_ref().map(|c| c.to_string())),
                    count,
                });
            }
        }
        out
    }

    /// The first day of the availability window ending at `as_of`, and `as_of`'s date.
    pub fn availability_window(&self) -> (Date, Date) {
        let to = self.as_of_date();
        let days = i64::from(self.settings.availability_days.max(1)) - 1;
        let from = to.checked_sub(jiff::Span::new().days(days)).unwrap_or(to);
        (from, to)
    }

    /// Availability over the window for a sum of figures.
    pub fn availability(&self, f: &DayFigures) -> AvailabilityDoc {
        let (from, to) = self.availability_window();
        self.availability_over(from, to, f)
    }

    /// The document of `unit` (figures rolled up over its descendants), or `None` when the
    /// unit is neither configured nor has devices.
    pub fn unit(&self, unit: &str) -> Option<UnitDoc> {
        if !self.has_unit(unit) {
            return None;
        }
        let all = self.device_ids_in(unit, true);
        let own: BTreeSet<String> = self.device_ids_in(unit, false).into_iter().collect();
        let mut status = StatusCounts::default();
        let mut pages = Pages::default();
        let mut updated_at_ms = 0;
        let mut seats = SeatCounts::default();
        let mut devices = Vec::new();
        let mut to_order = Vec::new();
        let mut lines_now = (0u32, 0u32);
        for id in &all {
            let Some(state) = self.devices.get(id) else {
                continue;
            };
            let d = device_doc(id, state);
            seats.add(&d);
            for l in &d.lines {
                lines_now.0 += 1;
                lines_now.1 += u32::from(l.registration == "registered");
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
            to_order.extend(supplies_to_order(&d, state.last_reading.as_deref()));
            if own.contains(id) {
                devices.push(self.shown(d));
            }
        }
        seats.finish();
        let seats_withheld = seats.total > 0 && seats.total < MIN_SEATS_SHOWN;
        let today = self.as_of_date();
        let month_start = today.first_of_month();
        let day = self.figures(&all, today, today);
        let month = self.figures(&all, month_start, today);
        let (from, to) = self.availability_window();
        let window = self.figures(&all, from, to);
        pages.today = PageFigures::of(&day);
        pages.month = PageFigures::of(&month);
        let def = self.settings.units.get(unit);
        let mut path = self.settings.units.lineage(unit);
        path.reverse();
        Some(UnitDoc {
            unit: unit.to_string(),
            name: def.and_then(|d| d.name.clone()),
            parent: def.and_then(|d| d.parent.clone()),
            cost_centre: def.and_then(|d| d.cost_centre.clone()),
            path,
            children: self.settings.units.children(unit).to_vec(),
            as_of: today.to_string(),
            updated_at_ms,
            devices_total: all.len(),
            devices_direct: own.len(),
            status,
            pages,
            availability: self.availability(&window),
            phone_lines: LinesDoc {
                lines_now: lines_now.0,
                registered_now: lines_now.1,
                window_registered_percent: (window.line_polls > 0)
                    .then(|| percent(window.line_polls_registered, window.line_polls, 2)),
            },
            seats: if seats_withheld {
                SeatCounts::default()
            } else {
                seats
            },
            occupancy_month: if seats_withheld {
                OccupancyDoc::default()
            } else {
                OccupancyDoc::of(&month)
            },
            seats_withheld,
            cartridges_replaced_month: month.cartridges_replaced,
            counter_events_month: CounterEvents::of(&month),
            supplies_to_order: to_order,
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

    /// Ids of all devices, sorted.
    pub fn device_ids(&self) -> Vec<String> {
        self.devices.keys().cloned().collect()
    }

    /// The document of one device with its figures (today, month, availability window).
    pub fn device(&self, id: &str) -> Option<DeviceFullDoc> {
        let state = self.devices.get(id)?;
        let today = self.as_of_date();
        let ids = [id.to_string()];
        let day = self.figures(&ids, today, today);
        let month = self.figures(&ids, today.first_of_month(), today);
        let (from, to) = self.availability_window();
        let window = self.figures(&ids, from, to);
        let doc = device_doc(id, state);
        let to_order = supplies_to_order(&doc, state.last_reading.as_deref());
        let doc = self.shown(doc);
        let withheld = doc.seats_withheld;
        Some(DeviceFullDoc {
            supplies_to_order: to_order,
            device: doc,
            as_of: today.to_string(),
            pages_today: PageFigures::of(&day),
            pages_month: PageFigures::of(&month),
            availability: self.availability(&window),
            occupancy_month: if withheld {
                OccupancyDoc::default()
            } else {
                OccupancyDoc::of(&month)
            },
            cartridges_replaced_month: month.cartridges_replaced,
            counter_events_month: CounterEvents::of(&month),
            late_readings: self.ledgers.get(id).map_or(0, |l| l.late),
        })
    }

    /// A device document as shown: its seats' counts (from [`MIN_SEATS_SHOWN`] seats), and
    /// the seats themselves only with `privacy = "per-seat"`.
    fn shown(&self, mut d: DeviceDoc) -> DeviceDoc {
        if !d.seats.is_empty() {
            let mut counts = SeatCounts::default();
            counts.add(&d);
            counts.finish();
            d.seats_withheld = counts.total > 0 && counts.total < MIN_SEATS_SHOWN;
            d.seat_counts = (!d.seats_withheld).then_some(counts);
        }
        if !self.settings.per_seat {
            d.seats.clear();
        }
        d
    }

    /// Number of devices known.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Availability of a sum of figures over `[from, to]`.
    pub fn availability_over(&self, from: Date, to: Date, f: &DayFigures) -> AvailabilityDoc {
        let percent = (f.polls > 0).then(|| percent(f.polls_available, f.polls, 3));
        AvailabilityDoc {
            from: from.to_string(),
            to: to.to_string(),
            polls: f.polls,
            polls_available: f.polls_available,
            percent,
            sla_target_percent: self.settings.sla_target_percent,
            meets_sla: percent.map(|p| p >= self.settings.sla_target_percent),
        }
    }

    /// What the monthly report needs of one device over the local month starting at `month`
    /// (its first day), up to `to`: its document, its figures and its bounding meter reads.
    pub fn device_month(&self, id: &str, month: Date, to: Date) -> Option<DeviceMonth> {
        let state = self.devices.get(id)?;
        let ledger = self.ledgers.get(id);
        Some(DeviceMonth {
            doc: device_doc(id, state),
            figures: ledger.map(|l| l.sum(month, to)).unwrap_or_default(),
            meters: ledger.and_then(|l| l.month_meters(month)),
        })
    }

    /// Seat time by local hour of the day over the month starting at `month`, of `devices`.
    pub fn seat_hours<'a>(
        &self,
        devices: impl IntoIterator<Item = &'a String>,
        month: Date,
    ) -> BTreeMap<u8, crate::ledger::SeatHours> {
        let mut out: BTreeMap<u8, crate::ledger::SeatHours> = BTreeMap::new();
        for d in devices {
            let Some(l) = self.ledgers.get(d) else {
                continue;
            };
            for ((_, hour), h) in l.seat_hours.range((month, 0)..=(month, 23)) {
                let e = out.entry(*hour).or_default();
                e.watched_ms += h.watched_ms;
                e.occupied_ms += h.occupied_ms;
            }
        }
        out
    }

    /// A device's supply levels at the end of each day in `[from, to]`, and the days on
    /// which a supply was replaced, by supply index.
    pub fn supply_levels(
        &self,
        device: &str,
        from: Date,
        to: Date,
    ) -> (DayLevels, Vec<(Date, u32)>) {
        let Some(l) = self.ledgers.get(device) else {
            return (Vec::new(), Vec::new());
        };
        let levels = l
            .day_levels
            .range(from..=to)
            .map(|(d, r)| (*d, r.levels.clone()))
            .collect();
        let replaced = l
            .replaced
            .range((from, 0)..=(to, u32::MAX))
            .filter(|(_, n)| **n > 0)
            .map(|(k, _)| *k)
            .collect();
        (levels, replaced)
    }

    /// The last printer reading of a device (kept while it is unreachable).
    pub fn printer_reading(&self, id: &str) -> Option<&PrinterReading> {
        self.devices.get(id)?.last_reading.as_deref()
    }

    /// The newest poll time at which `id` answered (`None`: never).
    pub fn answered_ms(&self, id: &str) -> Option<u64> {
        self.devices
            .get(id)
            .map(|d| d.answered_ms)
            .filter(|t| *t > 0)
    }

    /// The local calendar.
    pub fn calendar(&self) -> &crate::calendar::Calendar {
        &self.settings.ledger.calendar
    }
}

/// Per day, the (supply index, percent) of a device's last reading of the day.
pub type DayLevels = Vec<(Date, Vec<(u32, u8)>)>;

/// One device's month for the report (see [`Aggregator::device_month`]).
#[derive(Debug, Clone)]
pub struct DeviceMonth {
    /// Its document now (identity, unit, status).
    pub doc: DeviceDoc,
    /// Its figures over the month.
    pub figures: DayFigures,
    /// The newest meter read before the month (else its first) and the month's newest.
    pub meters: Option<(crate::ledger::MeterRead, crate::ledger::MeterRead)>,
}

/// `100 * part / whole` rounded to `decimals`.
/// What the device last said: `reading` (an answer) replaces the last one of every kind; a
/// silent poll keeps them, so they stay visible while the device is unreachable.
fn remember(state: &mut DeviceState, reading: &Reading) {
    match reading {
        Reading::Printer(r) => {
            (state.last_phone, state.last_dock) = (None, None);
            match state.last_reading.as_deref_mut() {
                Some(last) => last.assign_from(r),
                None => state.last_reading = Some(boxed(r)),
            }
        }
        Reading::Phone(p) => {
            (state.last_reading, state.last_dock) = (None, None);
            state.last_phone = Some(boxed(p));
        }
        Reading::Dock(d) => {
            (state.last_reading, state.last_phone) = (None, None);
            match state.last_dock.as_deref_mut() {
                Some(last) => last.assign_from(d),
                None => state.last_dock = Some(boxed(d)),
            }
        }
        Reading::NoResponse(_) => {}
    }
}

fn percent(part: i64, whole: i64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (part as f64 * 100.0 * scale / whole as f64).round() / scale
}

/// Consumables of a device that need ordering: low or empty (waste receptacles: almost full
/// or full).
fn supplies_to_order(d: &DeviceDoc, r: Option<&PrinterReading>) -> Vec<SupplyOrder> {
    let Some(r) = r else { return Vec::new() };
    r.supplies
        .iter()
        .filter_map(|s| {
            let state = s.state();
            matches!(
                state,
                SupplyState::Low | SupplyState::Empty | SupplyState::AlmostFull | SupplyState::Full
            )
            .then(|| SupplyOrder {
                device: d.device.clone(),
                model: d.model.clone(),
                supply_index: s.index,
                description: s.description.to_string(),
                colour: s.colour.as_ref().map(|c| c.to_string()),
                kind: s.kind.map(|k| k.name()),
                state: state.name(),
                level_percent: s.level_percent(),
            })
        })
        .collect()
}

/// The per-unit document: served at `/api/units/{unit}` and published retained on
/// `devtel/v1/units/{unit}`. Every figure covers the unit and all its descendants; `devices`
/// lists only the devices directly in the unit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitDoc {
    /// Unit id.
    pub unit: String,
    /// Display name (configured units).
    pub name: Option<String>,
    /// Parent unit id.
    pub parent: Option<String>,
    /// Cost centre.
    pub cost_centre: Option<String>,
    /// Ids from the top-level unit down to this one.
    pub path: Vec<String>,
    /// Configured child units.
    pub children: Vec<String>,
    /// The local date "today" and "month" refer to: the day of the newest poll seen.
    pub as_of: String,
    /// Newest device reading in the unit, ms since the Unix epoch.
    pub updated_at_ms: u64,
    /// Devices in the unit and its descendants.
    pub devices_total: usize,
    /// Devices directly in the unit.
    pub devices_direct: usize,
    /// Devices by status now.
    pub status: StatusCounts,
    /// Page counters now, and pages printed today and this month.
    pub pages: Pages,
    /// Availability over the window, against the SLA target.
    pub availability: AvailabilityDoc,
    /// Phone line registration.
    pub phone_lines: LinesDoc,
    /// Dock seats of the unit's dock switches now, by occupancy (uplinks not counted); zero
    /// when withheld.
    pub seats: SeatCounts,
    /// Seat occupancy within working hours this month; zero when withheld.
    pub occupancy_month: OccupancyDoc,
    /// The unit has fewer than [`MIN_SEATS_SHOWN`] seats: its seat figures are withheld.
    pub seats_withheld: bool,
    /// Consumables replaced this month.
    pub cartridges_replaced_month: i64,
    /// Counter discontinuities this month.
    pub counter_events_month: CounterEvents,
    /// Supplies to order now: low/empty consumables, almost full/full waste receptacles.
    pub supplies_to_order: Vec<SupplyOrder>,
    /// The devices directly in the unit, by id.
    pub devices: Vec<DeviceDoc>,
}

impl UnitDoc {
    /// Without its devices' seat lists (for whoever may not see single seats).
    pub fn without_seats(mut self) -> UnitDoc {
        for d in &mut self.devices {
            d.seats.clear();
        }
        self
    }
}

impl DeviceFullDoc {
    /// Without the seat list (for whoever may not see single seats).
    pub fn without_seats(mut self) -> DeviceFullDoc {
        self.device.seats.clear();
        self
    }
}

/// One device with its figures: `/api/devices/{id}` and retained `devtel/v1/devices/{id}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceFullDoc {
    /// Current state.
    #[serde(flatten)]
    pub device: DeviceDoc,
    /// The local date "today" and "month" refer to.
    pub as_of: String,
    /// Pages today.
    pub pages_today: PageFigures,
    /// Pages this month.
    pub pages_month: PageFigures,
    /// Availability over the window.
    pub availability: AvailabilityDoc,
    /// Seat occupancy this month (dock switches).
    pub occupancy_month: OccupancyDoc,
    /// Consumables replaced this month.
    pub cartridges_replaced_month: i64,
    /// Counter discontinuities this month.
    pub counter_events_month: CounterEvents,
    /// Supplies to order now.
    pub supplies_to_order: Vec<SupplyOrder>,
    /// Readings that arrived too late to be placed in the history (beyond the late window).
    pub late_readings: u64,
}

/// Pages printed in a period.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PageFigures {
    /// All pages (vendor total, else prtMarkerLifeCount).
    pub total: i64,
    /// Mono pages (devices with a mono counter).
    pub mono: i64,
    /// Colour pages (devices with a colour counter).
    pub colour: i64,
}

impl PageFigures {
    /// From summed day figures.
    pub fn of(f: &DayFigures) -> Self {
        PageFigures {
            total: f.pages_total,
            mono: f.pages_mono,
            colour: f.pages_colour,
        }
    }
}

/// Counter discontinuities in a period.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct CounterEvents {
    /// Resets and implausible jumps (billed 0).
    pub resets: i64,
    /// Counter32 wraps (billed correctly).
    pub wraps: i64,
    /// Devices replaced (serial number changed).
    pub serial_changes: i64,
}

impl CounterEvents {
    /// From summed day figures.
    pub fn of(f: &DayFigures) -> Self {
        CounterEvents {
            resets: f.counter_resets,
            wraps: f.counter_wraps,
            serial_changes: f.serial_changes,
        }
    }
}

/// Availability over a window against the SLA target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AvailabilityDoc {
    /// First local day of the window.
    pub from: String,
    /// Last local day of the window.
    pub to: String,
    /// Polls in the window.
    pub polls: i64,
    /// Polls where the device answered and was not in an error condition.
    pub polls_available: i64,
    /// polls_available / polls in percent (3 decimals); null without polls.
    pub percent: Option<f64>,
    /// The configured target.
    pub sla_target_percent: f64,
    /// percent >= target; null without polls.
    pub meets_sla: Option<bool>,
}

/// Phone line registration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinesDoc {
    /// Lines of the unit's phones at their last poll.
    pub lines_now: u32,
    /// …of which registered.
    pub registered_now: u32,
    /// Share of line polls in the availability window that found the line registered.
    pub window_registered_percent: Option<f64>,
}

/// Seat occupancy within working hours.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OccupancyDoc {
    /// Seat-hours occupied.
    pub occupied_seat_hours: f64,
    /// Seat-hours watched (seats whose state was known).
    pub watched_seat_hours: f64,
    /// occupied / watched in percent; null when nothing was watched.
    pub occupied_percent: Option<f64>,
}

impl SeatCounts {
    /// Counts the seats of `d` (uplinks excluded; an unreachable switch's seats are unknown).
    fn add(&mut self, d: &DeviceDoc) {
        for seat in &d.seats {
            match (d.status, seat.occupancy) {
                (_, "uplink") => continue,
                ("unreachable", _) | (_, "unknown") => self.unknown += 1,
                (_, "occupied") => self.occupied += 1,
                (_, "idle") => self.idle += 1,
                _ => self.empty += 1,
            }
            self.total += 1;
            if seat.phone.is_some() {
                self.with_phone += 1;
            }
        }
    }

    /// The occupied share, once every seat is counted.
    fn finish(&mut self) {
        let known = self.occupied + self.idle + self.empty;
        if known > 0 {
            // One decimal: 2 of 3 seats is 66.7 %.
            self.occupied_percent =
                Some((f64::from(self.occupied) * 1000.0 / f64::from(known)).round() / 10.0);
        }
    }
}

impl OccupancyDoc {
    /// From summed day figures.
    pub fn of(f: &DayFigures) -> Self {
        let hours = |ms: i64| (ms as f64 / 3_600_000.0 * 100.0).round() / 100.0;
        OccupancyDoc {
            occupied_seat_hours: hours(f.seat_ms_occupied),
            watched_seat_hours: hours(f.seat_ms_watched),
            occupied_percent: (f.seat_ms_watched > 0)
                .then(|| percent(f.seat_ms_occupied, f.seat_ms_watched, 1)),
        }
    }
}

/// A supply to order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SupplyOrder {
    /// Device id.
    pub device: String,
    /// Device model.
    pub model: Option<String>,
    /// prtMarkerSuppliesIndex.
    pub supply_index: u32,
    /// Description as the device gives it.
    pub description: String,
    /// Colour.
    pub colour: Option<String>,
    /// prtMarkerSuppliesType name.
    pub kind: Option<&'static str>,
    /// `low`, `empty`, `almost_full` or `full`.
    pub state: &'static str,
    /// Level in percent where known.
    pub level_percent: Option<u8>,
}

/// Replacements of one supply of one device in a period.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplacementDoc {
    /// Device id.
    pub device: String,
    /// prtMarkerSuppliesIndex.
    pub supply_index: u32,
    /// Description (from the device's latest reading).
    pub description: Option<String>,
    /// Colour.
    pub colour: Option<String>,
    /// Times replaced.
    pub count: i64,
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
    /// Pages printed today (local day of `as_of`), from counter deltas.
    pub today: PageFigures,
    /// Pages printed this month up to `as_of`, from counter deltas.
    pub month: PageFigures,
}

/// One device in a unit document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceDoc {
    /// Device id.
    pub device: String,
    /// Unit id the device is counted in (`unassigned` when its reported unit is not
    /// configured).
    pub unit: String,
    /// The unit its collector reported.
    pub reported_unit: String,
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
    /// Dock seats (dock switches only), in ifIndex order; only with `privacy = "per-seat"`
    /// (and over HTTP only for the seats scope).
    pub seats: Vec<SeatDoc>,
    /// A dock switch's seats by occupancy now (from [`MIN_SEATS_SHOWN`] seats).
    pub seat_counts: Option<SeatCounts>,
    /// A dock switch with fewer than [`MIN_SEATS_SHOWN`] seats: its seat figures are
    /// withheld.
    pub seats_withheld: bool,
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
    let r = d.last_reading.as_deref();
    let phone = d.last_phone.as_deref();
    let dock = d.last_dock.as_deref();
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
        reported_unit: d.reported_unit.clone(),
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
        seat_counts: None,
        seats_withheld: false,
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
                        // A pseudonym (locally administered) only: an address sent by a
                        // collector from before privacy is not shown.
                        client_mac: s
                            .client_mac
                            .filter(devtel_protocol::dock::is_locally_administered)
                            .as_ref()
                            .map(mac),
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

/// A device as the retained unit message lists it: where to find its document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceLink<'a> {
    /// Device id.
    pub device: &'a str,
    /// `copier`, `phone` or `dock`.
    pub kind: &'static str,
    /// Status at its last poll.
    pub status: &'static str,
    /// Why the last poll went unanswered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_response_cause: Option<&'static str>,
    /// The topic of its retained device document.
    pub topic: String,
}

/// Most entries of `supplies_to_order` in the retained unit message.
pub const MAX_ORDERS_IN_MESSAGE: usize = 1000;

/// The unit document as retained on `devtel/v1/units/{unit}`: its devices are linked (id,
/// kind, status and the topic of the device's own document) rather than embedded, and
/// `supplies_to_order` lists at most [`MAX_ORDERS_IN_MESSAGE`] entries (the most urgent
/// first: empty before low; `supplies_to_order_count` says how many there are). So the
/// message stays bounded for any unit size: about 130 bytes per device plus at most some
/// 200 KB of orders, against the 4 MiB packet limit. `GET /api/units/{unit}` embeds the full
/// entries and the whole list.
///
/// # Errors
/// When the document cannot be serialised (it always can).
pub fn unit_message(doc: &UnitDoc) -> Result<Vec<u8>, serde_json::Error> {
    let mut value = serde_json::to_value(doc)?;
    let links: Vec<DeviceLink> = doc
        .devices
        .iter()
        .map(|d| DeviceLink {
            device: &d.device,
            kind: d.kind,
            status: d.status,
            no_response_cause: d.no_response_cause,
            topic: topic::device(&d.device)
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
        })
        .collect();
    let mut orders: Vec<&SupplyOrder> = doc.supplies_to_order.iter().collect();
    // Stable: within a state, the document's order (by device) stays.
    orders.sort_by_key(|o| o.state != "empty" && o.state != "full");
    orders.truncate(MAX_ORDERS_IN_MESSAGE);
    if let Some(o) = value.as_object_mut() {
        o.insert("devices".into(), serde_json::to_value(links)?);
        o.insert(
            "supplies_to_order_count".into(),
            doc.supplies_to_order.len().into(),
        );
        o.insert("supplies_to_order".into(), serde_json::to_value(orders)?);
    }
    serde_json::to_vec(&value)
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

    /// A device's last answers and a silent poll after them, in every order of arrival: the
    /// same documents (what it last said is the newest answer, not the last to arrive).
    #[test]
    fn what_a_silent_device_last_said_does_not_depend_on_arrival_order() {
        let silent = || {
            Reading::NoResponse(NoResponse {
                device: "p1".try_into().unwrap(),
                unit: "u1".try_into().unwrap(),
                kind: DeviceKind::Copier,
                cause: NoResponseCause::Timeout,
            })
        };
        let polls = [
            envelope("c", 0, 1_795_000_000_000, printer("p1", "u1", 1_000, 80)),
            envelope("c", 1, 1_795_000_300_000, printer("p1", "u1", 1_050, 4)),
            envelope("c", 2, 1_795_000_600_000, silent()),
        ];
        let mut seen = Vec::new();
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let mut agg = Aggregator::new();
            for i in order {
                agg.ingest(&polls[i]);
            }
            let device = agg.device("p1").unwrap();
            assert_eq!(device.device.status, "unreachable", "{order:?}");
            assert_eq!(
                device.device.supplies[0].level,
                Some(4),
                "{order:?}: the newest answer"
            );
            seen.push((agg.unit("u1"), device));
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
    }

    fn envelope(collector: &str, seq: u64, ts: u64, reading: Reading) -> Envelope {
        let mut e = Envelope::new(
            "site".try_into().unwrap(),
            collector.try_into().unwrap(),
            1,
            seq,
            ts,
        );
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
    fn the_retained_unit_message_stays_small_for_a_thousand_copiers_or_two_hundred_switches() {
        use devtel_protocol::{DockReading, LinkStatus, Occupancy, Seat, MAX_PACKET_LEN};
        let mut agg = Aggregator::new();
        let names = [
            "ricoh_mpc3002",
            "sharp",
            "konica_c250i",
            "jetdirect_m130nw",
            "utax",
            "epson",
        ];
        let printers: Vec<PrinterReading> =
            names.iter().map(|n| crate::testdata::printer(n)).collect();
        let mut seq = 0;
        for i in 0..1000 {
            let mut r = printers[i % printers.len()].clone();
            r.device = format!("copier-{i:04}").as_str().try_into().unwrap();
            r.unit = "ba.big".try_into().unwrap();
            // Every supply low: the longest list of supplies to order.
            for s in r.supplies.iter_mut() {
                s.max_capacity = Some(Capacity::Value(100));
                s.level = Some(Level::from_raw(5));
            }
            seq += 1;
            agg.ingest(&envelope("c", seq, 1_000 + seq, Reading::Printer(r)));
        }
        for i in 0..200 {
            let mut d = DockReading {
                device: format!("switch-{i:03}").as_str().try_into().unwrap(),
                unit: "ba.docks".try_into().unwrap(),
                fdb_read: true,
                ..DockReading::default()
            };
            for port in 1..=48 {
                d.seats
                    .push(Seat {
                        if_index: port,
                        name: Some(
                            format!("GigabitEthernet1/0/{port}")
                                .as_str()
                                .try_into()
                                .unwrap(),
                        ),
                        label: Some(
                            format!("Raum 3.{port:02} Platz A")
                                .as_str()
                                .try_into()
                                .unwrap(),
                        ),
                        link: Some(LinkStatus::Up),
                        speed_mbps: Some(1000),
                        last_change_ticks: Some(0),
                        clients: 1,
                        client_mac: Some([0, 0xe0, 0x4c, 1, 2, port as u8]),
                        phone: None,
                        occupancy: Occupancy::Occupied,
                    })
                    .unwrap();
            }
            seq += 1;
            agg.ingest(&envelope("c", seq, 1_000 + seq, Reading::Dock(d)));
        }
        for (unit, devices) in [("ba.big", 1000), ("ba.docks", 200)] {
            let doc = agg.unit(unit).unwrap();
            assert_eq!(doc.devices.len(), devices);
            let embedded = serde_json::to_vec(&doc).unwrap().len();
            let message = unit_message(&doc).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&message).unwrap();
            assert_eq!(v["devices"].as_array().unwrap().len(), devices);
            assert_eq!(
                v["devices"][0]["topic"],
                format!("devtel/v1/devices/{}", doc.devices[0].device)
            );
            assert_eq!(v["devices_total"], devices, "the figures are all there");
            let orders = v["supplies_to_order"].as_array().unwrap().len();
            assert_eq!(
                orders,
                doc.supplies_to_order.len().min(MAX_ORDERS_IN_MESSAGE)
            );
            assert_eq!(v["supplies_to_order_count"], doc.supplies_to_order.len());
            // Well within the packet limit, with room for growth.
            assert!(
                message.len() < MAX_PACKET_LEN / 4,
                "{unit}: {} bytes (embedded: {embedded})",
                message.len()
            );
            eprintln!("{unit}: {} B linked, {embedded} B embedded", message.len());
        }
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
            // A pseudonym as the collector sends it with privacy = "per-seat" (locally
            // administered), on the first seat; an address (from an older collector) on the
            // others, which is not shown.
            client_mac: (occupancy == Occupancy::Occupied).then_some(if if_index == 1 {
                [0x02, 0xe0, 0x4c, 1, 2, 3]
            } else {
                [0, 0xe0, 0x4c, 1, 2, 3]
            }),
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
            seat(6, Occupancy::Idle, false),
        ] {
            d.seats.push(s).unwrap();
        }
        let mut agg = Aggregator::with_settings(CoreSettings {
            per_seat: true,
            ..CoreSettings::default()
        });
        let minimal_d = d.clone();
        agg.ingest(&envelope("c", 0, 10, Reading::Dock(d)));
        let doc = agg.unit("ba.floor-3").unwrap();
        assert_eq!(doc.seats.total, 5, "the uplink is no seat");
        assert_eq!(
            (
                doc.seats.occupied,
                doc.seats.idle,
                doc.seats.empty,
                doc.seats.unknown
            ),
            (2, 2, 1, 0)
        );
        assert_eq!(doc.seats.with_phone, 1);
        assert_eq!(doc.seats.occupied_percent, Some(40.0));
        assert!(!doc.seats_withheld);
        assert_eq!(doc.status.ok, 1);
        let dev = &doc.devices[0];
        assert_eq!(dev.kind, "dock");
        assert_eq!(
            dev.seats[0].client_mac.as_deref(),
            Some("02:e0:4c:01:02:03")
        );
        assert_eq!(dev.seats[1].client_mac, None, "an address is never shown");
        assert_eq!(dev.seats[0].phone.as_deref(), Some("VVX 450"));
        assert_eq!(dev.seat_counts.as_ref().map(|c| c.occupied), Some(2));
        // Whoever may not see single seats gets the counts only.
        assert!(doc.clone().without_seats().devices[0].seats.is_empty());

        // By default (privacy minimal) no document lists seats; the counts are there.
        let mut minimal = Aggregator::new();
        minimal.ingest(&envelope("c", 0, 10, Reading::Dock(minimal_d.clone())));
        let m = minimal.unit("ba.floor-3").unwrap();
        assert_eq!((m.seats.total, m.seats.occupied), (5, 2));
        assert!(m.devices[0].seats.is_empty());
        let json = serde_json::to_string(&minimal.device("sw1").unwrap()).unwrap();
        assert!(!json.contains(":e0:4c:"), "{json}");
        assert!(json.contains("\"seat_counts\":{\"total\":5"), "{json}");

        // A unit (and a switch) of fewer than 5 seats shows no seat figures at all.
        let mut small_d = minimal_d;
        small_d.seats.truncate(3);
        let mut small = Aggregator::new();
        small.ingest(&envelope("c", 0, 10, Reading::Dock(small_d)));
        let s = small.unit("ba.floor-3").unwrap();
        assert!(s.seats_withheld);
        assert_eq!((s.seats.total, s.seats.occupied), (0, 0));
        assert_eq!(s.occupancy_month.occupied_percent, None);
        let sw = small.device("sw1").unwrap();
        assert!(sw.device.seats_withheld && sw.device.seat_counts.is_none());

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
            (5, 5, 0)
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
    fn redelivered_envelopes_change_nothing_and_older_ones_only_the_history() {
        let mut agg = Aggregator::new();
        let e1 = envelope("c", 5, 100, printer("a", "u", 100, 50));
        assert_eq!(agg.ingest(&e1).outcomes, [Outcome::Applied]);
        let before = agg.unit("u").unwrap();
        let again = agg.ingest(&e1);
        assert_eq!(again.outcomes, [Outcome::Duplicate]);
        assert!(again.units.is_empty() && again.devices.is_empty());
        assert_eq!(agg.unit("u").unwrap(), before);
        assert_eq!(
            agg.ingest(&envelope("c", 4, 90, printer("a", "u", 90, 60)))
                .outcomes,
            [Outcome::Stale]
        );
        let after = agg.unit("u").unwrap();
        assert_eq!(after.devices, before.devices, "the current state stays");
        assert_eq!(after.status, before.status);
        // The older poll still happened: one more poll, and the 10 pages between the two.
        assert_eq!(after.availability.polls, 2);
        assert_eq!(after.pages.today.total, 10);
    }

    #[test]
    fn events_follow_what_changed_between_two_documents() {
        use crate::events::between;
        let names = |e: Vec<crate::events::Event>| e.iter().map(|e| e.event).collect::<Vec<_>>();
        let mut agg = Aggregator::new();
        let t0 = 1_795_420_800_000; // Monday 2026-11-23 08:00 UTC
        let minute = 60_000;
        let mut seq = 0;
        let mut step = |agg: &mut Aggregator, reading: Reading| {
            seq += 1;
            agg.ingest(&envelope("c", seq, t0 + seq * minute, reading));
            agg.device("p1").unwrap()
        };
        let first = step(&mut agg, printer("p1", "u1", 100, 80));
        assert!(between(None, &first).is_empty(), "first sight: no event");
        let low = step(&mut agg, printer("p1", "u1", 110, 5));
        let e = between(Some(&first), &low);
        assert_eq!(names(e.clone()), ["supply_low"]);
        assert_eq!(e[0].supply.as_ref().map(|s| s.level_percent), Some(Some(5)));
        assert_eq!((e[0].device.as_str(), e[0].unit.as_str()), ("p1", "u1"));
        let still_low = step(&mut agg, printer("p1", "u1", 111, 4));
        assert!(between(Some(&low), &still_low).is_empty(), "no repeat");
        let empty = step(&mut agg, printer("p1", "u1", 112, 0));
        assert_eq!(names(between(Some(&still_low), &empty)), ["supply_empty"]);
        let replaced = step(&mut agg, printer("p1", "u1", 113, 100));
        assert_eq!(
            names(between(Some(&empty), &replaced)),
            ["cartridge_replaced"]
        );
        let silent = Reading::NoResponse(NoResponse {
            device: "p1".try_into().unwrap(),
            unit: "u1".try_into().unwrap(),
            kind: DeviceKind::Copier,
            cause: NoResponseCause::Timeout,
        });
        let gone = step(&mut agg, silent.clone());
        let e = between(Some(&replaced), &gone);
        // One poll in six missed: the availability is under the 99 % target at once.
        assert_eq!(names(e.clone()), ["device_unreachable", "sla_at_risk"]);
        assert_eq!(e[0].cause, Some("timeout"));
        assert_eq!(
            e[1].sla_target_percent,
            Some(gone.availability.sla_target_percent)
        );
        // Nothing new while it stays silent.
        let mut last = gone;
        for _ in 0..3 {
            let next = step(&mut agg, silent.clone());
            assert!(between(Some(&last), &next).is_empty());
            last = next;
        }
        let back = step(&mut agg, printer("p1", "u1", 120, 100));
        assert_eq!(names(between(Some(&last), &back)), ["device_reachable"]);
        // Enough good polls bring it back over the target.
        let mut last = back;
        let mut met = Vec::new();
        for pages in 121..1_200 {
            let next = step(&mut agg, printer("p1", "u1", pages, 100));
            met.extend(names(between(Some(&last), &next)));
            last = next;
        }
        assert_eq!(met, ["sla_met"]);
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
        let changed = agg.ingest(&envelope("c", 1, 20, printer("a", "new", 101, 50)));
        assert_eq!(changed.units, ["new", "old"]);
        assert_eq!(agg.unit("old"), None);
        assert_eq!(agg.unit("new").unwrap().pages.total, 101);
    }

    fn hierarchy() -> CoreSettings {
        let def = |id: &str, parent: Option<&str>| crate::units::UnitDef {
            id: id.into(),
            name: Some(id.to_uppercase()),
            parent: parent.map(Into::into),
            cost_centre: Some(format!("cc-{id}")),
        };
        CoreSettings {
            units: Units::new(vec![
                def("ba", None),
                def("ba.it", Some("ba")),
                def("ba.fb2", Some("ba")),
                def("ba.fb2.bsz", Some("ba.fb2")),
            ])
            .unwrap(),
            sla_target_percent: 99.9,
            ..CoreSettings::default()
        }
    }

    /// A real Sharp MX-3570N reading (corpus) with its counters moved to `pages`.
    fn sharp(device: &str, unit: &str, pages: u64) -> Reading {
        let mut r = crate::testdata::printer("sharp");
        r.device = device.try_into().unwrap();
        r.unit = unit.try_into().unwrap();
        let base = r.counters.total.unwrap();
        r.counters.total = Some(base + pages);
        r.counters.mono = r.counters.mono.map(|m| m + pages);
        Reading::Printer(r)
    }

    #[test]
    fn figures_roll_up_the_hierarchy_and_unknown_units_are_unassigned() {
        let mut agg = Aggregator::with_settings(hierarchy());
        let t0 = 1_795_420_800_000; // Monday 2026-11-23 08:00 UTC
        let ten_min = 600_000;
        agg.ingest(&envelope("c", 0, t0, sharp("s1", "ba.it", 0)));
        agg.ingest(&envelope("c", 1, t0, sharp("s2", "ba.fb2.bsz", 0)));
        let c = agg.ingest(&envelope("c", 2, t0, sharp("s3", "ba.nope", 0)));
        assert_eq!(c.unassigned, 1);
        assert_eq!(c.units, [UNASSIGNED]);
        let c = agg.ingest(&envelope("c", 3, t0 + ten_min, sharp("s1", "ba.it", 50)));
        assert_eq!(
            c.units,
            ["ba", "ba.it"],
            "the unit and its ancestors changed"
        );
        agg.ingest(&envelope(
            "c",
            4,
            t0 + ten_min,
            sharp("s2", "ba.fb2.bsz", 20),
        ));
        agg.ingest(&envelope("c", 5, t0 + ten_min, sharp("s3", "ba.nope", 7)));

        let ba = agg.unit("ba").unwrap();
        assert_eq!((ba.devices_total, ba.devices_direct), (2, 0));
        assert_eq!(ba.children, ["ba.fb2", "ba.it"]);
        assert_eq!(ba.pages.today.total, 70);
        assert_eq!(ba.pages.today.mono, 70);
        assert_eq!(ba.pages.month.total, 70);
        assert_eq!(ba.availability.polls, 4);
        assert_eq!(ba.availability.meets_sla, Some(true));
        let bsz = agg.unit("ba.fb2.bsz").unwrap();
        assert_eq!(bsz.path, ["ba", "ba.fb2", "ba.fb2.bsz"]);
        assert_eq!(bsz.cost_centre.as_deref(), Some("cc-ba.fb2.bsz"));
        assert_eq!(bsz.pages.today.total, 20);
        assert_eq!(agg.unit("ba.fb2").unwrap().pages.today.total, 20);
        let un = agg.unit(UNASSIGNED).unwrap();
        assert_eq!(un.devices[0].reported_unit, "ba.nope");
        assert_eq!(un.pages.today.total, 7);
        assert_eq!(agg.unassigned_readings(), 2);
        assert_eq!(
            agg.unit_ids(),
            ["ba", "ba.fb2", "ba.fb2.bsz", "ba.it", UNASSIGNED]
        );
        // A configured unit without devices still has a document.
        assert_eq!(agg.unit("ba.fb2").unwrap().devices_direct, 0);
        assert!(agg.unit("nope").is_none());
        // The recorded Sharp needs nothing; one whose black toner is at 5 % does.
        assert!(
            ba.supplies_to_order.is_empty(),
            "{:?}",
            ba.supplies_to_order
        );
        let mut low = sharp("s2", "ba.fb2.bsz", 20);
        if let Reading::Printer(r) = &mut low {
            let s = r
                .supplies
                .iter_mut()
                .find(|s| s.colour.as_deref() == Some("black"))
                .unwrap();
            let Some(Capacity::Value(max)) = s.max_capacity else {
                panic!("{s:?}")
            };
            s.level = Some(Level::Value(max / 20));
        }
        agg.ingest(&envelope("c", 6, t0 + 2 * ten_min, low));
        let order = agg.unit("ba").unwrap().supplies_to_order;
        assert_eq!(order.len(), 1, "{order:?}");
        assert_eq!((order[0].device.as_str(), order[0].state), ("s2", "low"));
        assert_eq!(order[0].level_percent, Some(5));
        let s1 = agg.device("s1").unwrap();
        assert_eq!(s1.pages_today.total, 50);
        assert_eq!(s1.availability.polls, 2);
    }

    #[test]
    fn an_error_poll_counts_against_availability_and_the_sla() {
        let mut agg = Aggregator::with_settings(hierarchy());
        let t0 = 1_795_420_800_000;
        for i in 0..999u64 {
            agg.ingest(&envelope(
                "c",
                i,
                t0 + i * 60_000,
                printer("p", "ba.it", 100, 50),
            ));
        }
        let mut jammed = printer("p", "ba.it", 100, 50);
        if let Reading::Printer(r) = &mut jammed {
            r.status.device = Some(DeviceStatus::Down);
        }
        agg.ingest(&envelope("c", 999, t0 + 999 * 60_000, jammed));
        let a = agg.unit("ba").unwrap().availability;
        assert_eq!((a.polls, a.polls_available), (1000, 999));
        assert_eq!(a.percent, Some(99.9));
        assert_eq!(a.meets_sla, Some(true));
        agg.ingest(&envelope(
            "c",
            1000,
            t0 + 1000 * 60_000,
            Reading::NoResponse(NoResponse {
                device: "p".try_into().unwrap(),
                unit: "ba.it".try_into().unwrap(),
                kind: DeviceKind::Copier,
                cause: NoResponseCause::Timeout,
            }),
        ));
        let a = agg.unit("ba.it").unwrap().availability;
        assert_eq!(a.percent, Some(99.8));
        assert_eq!(a.meets_sla, Some(false));
    }

    #[test]
    fn figures_older_than_the_retention_are_dropped_and_the_rest_kept() {
        let short = CoreSettings {
            ledger: LedgerSettings {
                figures_retention_days: 40,
                ..LedgerSettings::default()
            },
            ..CoreSettings::default()
        };
        let mut kept = Aggregator::with_settings(short);
        let mut all = Aggregator::new();
        // A copier polled twice a day for 100 days, printing every time.
        let t0 = 1_790_000_000_000u64;
        for poll in 0..200u64 {
            let ts = t0 + poll * 43_200_000;
            let e = envelope(
                "c",
                poll,
                ts,
                printer("p1", "u1", 1_000 + poll as u32 * 10, 50),
            );
            kept.ingest(&e);
            all.ingest(&e);
        }
        let ids = all.device_ids();
        let today = all.as_of_date();
        let first_kept = today.checked_sub(jiff::Span::new().days(40)).unwrap();
        let before = first_kept.yesterday().unwrap();
        let start = kept.settings().ledger.calendar.date(t0);
        assert_eq!(kept.figures_from(), Some(first_kept));
        assert_eq!(
            kept.figures(&ids, first_kept, today),
            all.figures(&ids, first_kept, today),
            "the retained days are untouched"
        );
        assert_eq!(
            kept.figures(&ids, first_kept, today).pages_total,
            41 * 20 - 10
        );
        assert_eq!(kept.figures(&ids, start, before), DayFigures::default());
        assert!(all.figures(&ids, start, before).pages_total > 0);
        assert!(kept.snapshot().len() < all.snapshot().len());
    }

    /// Snapshots: what (snapshot + the envelopes after it) gives equals what replaying
    /// everything gives, wherever the cut falls, with late and repeated envelopes on both
    /// sides of it.
    mod snapshots {
        use super::*;
        use proptest::prelude::*;

        /// The state's bytes, the unit and device documents and the figures of all days.
        type Seen = (
            Vec<u8>,
            Vec<Option<UnitDoc>>,
            Vec<Option<DeviceFullDoc>>,
            DayFigures,
        );

        /// Everything a user sees of the figures, and the state itself.
        fn seen(agg: &Aggregator) -> Seen {
            let from = Date::constant(2026, 1, 1);
            let to = Date::constant(2027, 12, 31);
            let ids = agg.device_ids();
            (
                agg.snapshot(),
                ["u1", "u2"].iter().map(|u| agg.unit(u)).collect(),
                ids.iter().map(|d| agg.device(d)).collect(),
                agg.figures(&ids, from, to),
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn snapshot_and_tail_give_the_figures_of_a_full_replay(
                polls in proptest::collection::vec((0usize..4, 30u64..14_400, 0u32..400, 0i32..100), 1..60),
                order in proptest::collection::vec(any::<u32>(), 60),
                repeats in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
                cut in any::<proptest::sample::Index>(),
            ) {
                // Poll times move on; each device's counter grows; envelopes are then
                // delivered shuffled (late ones among them), some twice.
                let mut ts = 1_795_000_000_000u64;
                let mut pages = [1_000u32, 50_000];
                let mut envelopes: Vec<Envelope> = Vec::new();
                for (seq, (device, gap_s, printed, toner)) in polls.iter().enumerate() {
                    ts += gap_s * 1000;
                    let reading = match device {
                        0 | 1 => {
                            pages[*device] = pages[*device].wrapping_add(*printed);
                            let (id, unit) = if *device == 0 { ("p1", "u1") } else { ("p2", "u2") };
                            printer(id, unit, pages[*device], *toner)
                        }
                        2 => crate::testdata::dock("u1", *printed % 4, 3),
                        _ => Reading::NoResponse(NoResponse {
                            device: "p1".try_into().unwrap(),
                            unit: "u1".try_into().unwrap(),
                            kind: DeviceKind::Copier,
                            cause: NoResponseCause::Timeout,
                        }),
                    };
                    envelopes.push(envelope("c", seq as u64, ts, reading));
                }
                let n = envelopes.len();
                let mut ranked: Vec<(u32, Envelope)> = order.iter().copied().zip(envelopes).collect();
                ranked.sort_by_key(|(rank, _)| *rank);
                let mut delivery: Vec<Envelope> = ranked.into_iter().map(|(_, e)| e).collect();
                for (i, r) in repeats.iter().enumerate() {
                    let pick = delivery[r.index(n)].clone();
                    delivery.insert((i * 5) % delivery.len(), pick);
                }

                let mut full = Aggregator::new();
                for e in &delivery {
                    full.ingest(e);
                }
                let at = cut.index(delivery.len() + 1);
                let mut before = Aggregator::new();
                for e in &delivery[..at] {
                    before.ingest(e);
                }
                let bytes = before.snapshot();
                let mut resumed = Aggregator::restore(CoreSettings::default(), &bytes).unwrap();
                prop_assert_eq!(resumed.snapshot(), bytes, "a restore is exact");
                for e in &delivery[at..] {
                    resumed.ingest(e);
                }
                prop_assert_eq!(seen(&resumed), seen(&full));
                prop_assert_eq!(resumed.deliveries(), full.deliveries());
                prop_assert_eq!(resumed.late_readings(), full.late_readings());
            }
        }

        /// `agg` as a snapshot of format 1 would have held it.
        fn as_format_1(agg: &Aggregator) -> Vec<u8> {
            let v1 = AggregatorV1 {
                devices: agg
                    .devices
                    .iter()
                    .map(|(k, d)| {
                        let d = DeviceState::clone(d);
                        let v1 = DeviceStateV1 {
                            unit: d.unit,
                            reported_unit: d.reported_unit,
                            kind: d.kind,
                            collector: d.collector,
                            epoch: d.epoch,
                            seq: d.seq,
                            timestamp_ms: d.timestamp_ms,
                            no_response: d.no_response,
                            last_reading: d.last_reading,
                            last_phone: d.last_phone,
                            last_dock: d.last_dock,
                        };
                        (k.clone(), v1)
                    })
                    .collect(),
                ledgers: agg
                    .ledgers
                    .iter()
                    .map(|(k, l)| (k.clone(), crate::ledger::DeviceLedgerV1::from(&**l)))
                    .collect(),
                deliveries: (*agg.deliveries).clone(),
                as_of_ms: agg.as_of_ms,
                unassigned_readings: agg.unassigned_readings,
                figures_from: agg.figures_from,
                next_prune_ms: agg.next_prune_ms,
            };
            postcard::to_extend(&(settings_fingerprint(&agg.settings), &v1), vec![1u8]).unwrap()
        }

        /// An upgrade from format 1: its snapshot is not restored (the store is replayed), but
        /// when the raw retention has deleted the readings of closed days, their figures are
        /// still carried from it.
        #[test]
        fn a_format_1_snapshot_still_carries_the_closed_days() {
            let day = 86_400_000u64;
            let t0 = 1_795_000_000_000u64;
            let polls: Vec<Envelope> = (0..8u64)
                .flat_map(|i| {
                    [
                        envelope(
                            "c",
                            2 * i,
                            t0 + i * day,
                            printer("p1", "u1", 100 + 37 * i as u32, 90 - i as i32),
                        ),
                        envelope(
                            "c",
                            2 * i + 1,
                            t0 + i * day + 60_000,
                            printer("p2", "u2", 5_000 + 11 * i as u32, 50),
                        ),
                    ]
                })
                .collect();
            let mut old = Aggregator::new();
            for e in &polls {
                old.ingest(e);
            }
            let bytes = as_format_1(&old);
            assert_eq!(
                Aggregator::restore(CoreSettings::default(), &bytes).err(),
                Some(SnapshotError::Version { found: 1 })
            );
            // The raw retention left the readings from day 5 on.
            let first_exact = old.calendar().date(t0 + 5 * day);
            let mut replay = Aggregator::new();
            for e in &polls[10..] {
                replay.ingest(e);
            }
            let exact: Vec<_> = replay.device_days("p1", first_exact, Date::constant(2027, 1, 1));
            let carried = replay.carry_closed_days(first_exact, &bytes).unwrap();
            assert_eq!(carried, 10, "five closed days of two devices");
            let before = first_exact.yesterday().unwrap();
            for device in ["p1", "p2"] {
                assert_eq!(
                    replay.device_days(device, Date::constant(2026, 1, 1), before),
                    old.device_days(device, Date::constant(2026, 1, 1), before),
                    "{device}: closed days as billed"
                );
            }
            assert_eq!(
                replay.device_days("p1", first_exact, Date::constant(2027, 1, 1)),
                exact
            );
            // Format 1 had no meter reads: the replay's are kept.
            assert!(replay.ledgers["p1"]
                .month_last_meter
                .values()
                .all(|r| r.key.0 >= t0 + 5 * day));
        }

        #[test]
        fn a_snapshot_of_other_settings_or_format_is_refused() {
            let mut agg = Aggregator::new();
            agg.ingest(&envelope(
                "c",
                0,
                1_795_000_000_000,
                printer("p1", "u1", 5, 50),
            ));
            let bytes = agg.snapshot();
            let other = CoreSettings {
                ledger: LedgerSettings {
                    late_window_ms: 86_400_000,
                    ..LedgerSettings::default()
                },
                ..CoreSettings::default()
            };
            assert_eq!(
                Aggregator::restore(other, &bytes).err(),
                Some(SnapshotError::Settings)
            );
            let mut newer = bytes.clone();
            newer[0] = SNAPSHOT_VERSION + 1;
            assert_eq!(
                Aggregator::restore(CoreSettings::default(), &newer).err(),
                Some(SnapshotError::Version {
                    found: SNAPSHOT_VERSION + 1
                })
            );
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                assert_eq!(
                    Aggregator::restore(CoreSettings::default(), &bytes[..cut]).err(),
                    Some(SnapshotError::Malformed)
                );
            }
            assert!(Aggregator::restore(CoreSettings::default(), &bytes).is_ok());
        }
    }
}
