//! Events: what someone must act on, derived from two successive documents of a device.
//! Published (QoS 1, not retained) on `devtel/v1/events/{unit}/{device}` as small JSON
//! messages (docs/api.md): a device unreachable and back, a supply low or empty (a waste
//! receptacle almost full or full), a cartridge replaced, the SLA at risk and met again.
//!
//! Pure: [`between`] compares the document last published with the next one. A device seen
//! for the first time (also after a restart of the gateway) gives no event: nothing changed
//! that anyone saw.

use serde::Serialize;

use crate::aggregate::DeviceFullDoc;

/// One event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// What happened: `device_unreachable`, `device_reachable`, `supply_low`, `supply_empty`,
    /// `receptacle_almost_full`, `receptacle_full`, `cartridge_replaced`, `sla_at_risk`,
    /// `sla_met`.
    pub event: &'static str,
    /// The device.
    pub device: String,
    /// Its unit.
    pub unit: String,
    /// `copier`, `phone` or `dock`.
    pub kind: &'static str,
    /// When the device was polled, ms since the Unix epoch.
    pub at_ms: u64,
    /// The device's model, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why the device did not answer (`device_unreachable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// The supply (supply and receptacle events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supply: Option<SupplyRef>,
    /// Cartridges replaced since the last document (`cartridge_replaced`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Availability over the window, percent (SLA events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_percent: Option<f64>,
    /// The SLA target, percent (SLA events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla_target_percent: Option<f64>,
}

/// The supply an event is about.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SupplyRef {
    /// prtMarkerSuppliesIndex.
    pub index: u32,
    /// Description as the device gives it.
    pub description: String,
    /// Colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    /// Level in percent where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level_percent: Option<u8>,
}

/// The events between the document last published (`before`) and the next (`after`).
pub fn between(before: Option<&DeviceFullDoc>, after: &DeviceFullDoc) -> Vec<Event> {
    let Some(before) = before else {
        return Vec::new();
    };
    let d = &after.device;
    let event = |name: &'static str| Event {
        event: name,
        device: d.device.clone(),
        unit: d.unit.clone(),
        kind: d.kind,
        at_ms: d.last_seen_ms,
        model: d.model.clone(),
        cause: None,
        supply: None,
        count: None,
        availability_percent: None,
        sla_target_percent: None,
    };
    let mut out = Vec::new();
    let (was, is) = (before.device.status, d.status);
    if is == "unreachable" && was != "unreachable" {
        out.push(Event {
            cause: d.no_response_cause,
            ..event("device_unreachable")
        });
    } else if was == "unreachable" && is != "unreachable" {
        out.push(event("device_reachable"));
    }
    for order in &after.supplies_to_order {
        let previous = before
            .supplies_to_order
            .iter()
            .find(|o| o.supply_index == order.supply_index)
            .map(|o| o.state);
        if previous == Some(order.state) {
            continue;
        }
        let name = match order.state {
            "low" => "supply_low",
            "empty" => "supply_empty",
            "almost_full" => "receptacle_almost_full",
            "full" => "receptacle_full",
            _ => continue,
        };
        // Worse only: empty after low is news, low after empty (a reading in between) is not.
        let rank = |s: Option<&str>| match s {
            Some("low" | "almost_full") => 1,
            Some("empty" | "full") => 2,
            _ => 0,
        };
        if rank(Some(order.state)) <= rank(previous) {
            continue;
        }
        out.push(Event {
            supply: Some(SupplyRef {
                index: order.supply_index,
                description: order.description.clone(),
                colour: order.colour.clone(),
                level_percent: order.level_percent,
            }),
            ..event(name)
        });
    }
    let replaced = after.cartridges_replaced_month - before.cartridges_replaced_month;
    // A new month starts the count again: only an increase is a replacement.
    if replaced > 0 && after.as_of.get(..7) == before.as_of.get(..7) {
        out.push(Event {
            count: Some(replaced),
            ..event("cartridge_replaced")
        });
    }
    let (a, b) = (&after.availability, &before.availability);
    let sla = |name| Event {
        availability_percent: a.percent,
        sla_target_percent: Some(a.sla_target_percent),
        ..event(name)
    };
    match (b.meets_sla, a.meets_sla) {
        (Some(true) | None, Some(false)) => out.push(sla("sla_at_risk")),
        (Some(false), Some(true)) => out.push(sla("sla_met")),
        _ => {}
    }
    out
}
