//! Home Assistant MQTT discovery (opt-in, `[home_assistant] discovery = true`): one retained
//! config message per device and sensor, so that Home Assistant shows every copier, phone
//! adapter and dock switch as a device with its sensors, fed by the retained device documents
//! devtel publishes anyway (`devtel/v1/devices/{device}`).
//!
//! Pure: [`configs`] gives the (topic, payload) pairs for one device document. Per
//! Home Assistant's MQTT sensor schema:
//! - topic `{prefix}/sensor/devtel_{device}/{sensor}/config`;
//! - `unique_id`, a `device` block (identifiers, name, model, serial number), `origin`;
//! - `availability` from the collector's retained status (`devtel/v1/collectors/{site}`,
//!   `state` online / offline) and from the device's own status (unreachable is offline),
//!   `availability_mode: all`;
//! - counters with `state_class: total_increasing`, levels and shares with `measurement`.

use serde_json::{json, Value};

use crate::aggregate::DeviceFullDoc;

/// The default discovery prefix of Home Assistant.
pub const DEFAULT_PREFIX: &str = "homeassistant";

/// A node or object id as Home Assistant takes it: `[a-zA-Z0-9_-]`.
fn node_id(device: &str) -> String {
    let id: String = device
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("devtel_{id}")
}

/// The discovery topic and config of every sensor of `doc`; `site` is the site of the
/// device's collector (for the availability), `prefix` the discovery prefix.
pub fn configs(doc: &DeviceFullDoc, site: Option<&str>, prefix: &str) -> Vec<(String, Value)> {
    let d = &doc.device;
    let node = node_id(&d.device);
    let state_topic = format!("devtel/v1/devices/{}", d.device);
    let mut availability = vec![json!({
        "topic": state_topic,
        "value_template": "{{ 'offline' if value_json.status == 'unreachable' else 'online' }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    })];
    if let Some(site) = site {
        availability.insert(
            0,
            json!({
                "topic": format!("devtel/v1/collectors/{site}"),
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }),
        );
    }
    // No manufacturer: the document names the model only, and a model's first word is not
    // always its maker's name.
    let mut device = json!({
        "identifiers": [node],
        "name": d.device,
        "model": d.model.as_deref().unwrap_or(d.kind),
    });
    if let Some(serial) = &d.serial {
        device["serial_number"] = json!(serial);
    }
    // (object id, name, value template, unit, state class, device class, icon)
    type Sensor = (
        String,
        String,
        String,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    let mut sensors: Vec<Sensor> = vec![(
        "status".into(),
        "Status".into(),
        "{{ value_json.status }}".into(),
        None,
        None,
        Some("enum"),
        "mdi:list-status",
    )];
    sensors.push((
        "availability".into(),
        "Availability".into(),
        "{{ value_json.availability.percent }}".into(),
        Some("%"),
        Some("measurement"),
        None,
        "mdi:percent",
    ));
    match d.kind {
        "copier" => {
            sensors.push((
                "page_count".into(),
                "Page count".into(),
                "{{ value_json.page_count }}".into(),
                Some("pages"),
                Some("total_increasing"),
                None,
                "mdi:counter",
            ));
            sensors.push((
                "pages_today".into(),
                "Pages today".into(),
                "{{ value_json.pages_today.total }}".into(),
                Some("pages"),
                Some("total_increasing"),
                None,
                "mdi:printer",
            ));
            sensors.push((
                "cartridges_replaced_month".into(),
                "Cartridges replaced this month".into(),
                "{{ value_json.cartridges_replaced_month }}".into(),
                None,
                Some("total_increasing"),
                None,
                "mdi:printer-3d-nozzle",
            ));
            for s in doc.device.supplies.iter().filter(|s| s.level_percent.is_some()) {
                let what = s.colour.clone().unwrap_or_else(|| format!("supply {}", s.index));
                sensors.push((
                    format!("supply_{}", s.index),
                    format!("{} level", capitalised(&what)),
                    format!(
                        "{{{{ (value_json.supplies | selectattr('index', 'eq', {}) | first).level_percent }}}}",
                        s.index
                    ),
                    Some("%"),
                    Some("measurement"),
                    None,
                    "mdi:water-percent",
                ));
            }
        }
        "phone" => sensors.push((
            "lines_registered".into(),
            "Lines registered".into(),
            "{{ value_json.lines | selectattr('registration', 'eq', 'registered') | list | length }}"
                .into(),
            None,
            Some("measurement"),
            None,
            "mdi:phone-check",
        )),
        "dock" if d.seat_counts.is_some() => sensors.push((
            "seats_occupied".into(),
            "Seats occupied".into(),
            "{{ value_json.seat_counts.occupied }}".into(),
            None,
            Some("measurement"),
            None,
            "mdi:desk",
        )),
        _ => {}
    }
    sensors
        .into_iter()
        .map(
            |(object, name, template, unit, class, device_class, icon)| {
                let mut config = json!({
                    "name": name,
                    "unique_id": format!("{node}_{object}"),
                    "state_topic": state_topic,
                    "value_template": template,
                    "availability": availability,
                    "availability_mode": "all",
                    "device": device,
                    "icon": icon,
                    "origin": {"name": "devtel", "sw_version": env!("CARGO_PKG_VERSION")},
                });
                if let Some(unit) = unit {
                    config["unit_of_measurement"] = json!(unit);
                }
                if let Some(class) = class {
                    config["state_class"] = json!(class);
                }
                if let Some(dc) = device_class {
                    config["device_class"] = json!(dc);
                    if dc == "enum" {
                        config["options"] =
                            json!(["ok", "warning", "error", "unknown", "unreachable"]);
                    }
                }
                (format!("{prefix}/sensor/{node}/{object}/config"), config)
            },
        )
        .collect()
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use devtel_protocol::{Envelope, Reading};

    /// The keys Home Assistant's MQTT sensor takes (home-assistant.io/integrations/sensor.mqtt),
    /// of the `device` block and of an `availability` entry.
    const SENSOR_KEYS: &[&str] = &[
        "availability",
        "availability_mode",
        "availability_template",
        "availability_topic",
        "default_entity_id",
        "device",
        "device_class",
        "enabled_by_default",
        "encoding",
        "entity_category",
        "entity_picture",
        "expire_after",
        "force_update",
        "icon",
        "json_attributes_template",
        "json_attributes_topic",
        "last_reset_value_template",
        "name",
        "object_id",
        "options",
        "origin",
        "payload_available",
        "payload_not_available",
        "platform",
        "qos",
        "state_class",
        "state_topic",
        "suggested_display_precision",
        "unique_id",
        "unit_of_measurement",
        "value_template",
    ];
    const DEVICE_KEYS: &[&str] = &[
        "configuration_url",
        "connections",
        "hw_version",
        "identifiers",
        "manufacturer",
        "model",
        "model_id",
        "name",
        "serial_number",
        "suggested_area",
        "sw_version",
        "via_device",
    ];
    const AVAILABILITY_KEYS: &[&str] = &[
        "payload_available",
        "payload_not_available",
        "topic",
        "value_template",
    ];

    fn doc_of(reading: Reading, device: &str) -> DeviceFullDoc {
        let mut agg = Aggregator::new();
        let mut e = Envelope::new(
            "site".try_into().unwrap(),
            "c1".try_into().unwrap(),
            1,
            1,
            1_795_420_800_000,
        );
        e.readings.push(reading).unwrap();
        agg.ingest(&e);
        agg.device(device).unwrap()
    }

    fn docs() -> Vec<DeviceFullDoc> {
        let mut out = Vec::new();
        for name in ["ricoh_mpc3002", "jetdirect_m130nw", "konica_c250i"] {
            out.push(doc_of(
                Reading::Printer(crate::testdata::printer(name)),
                name,
            ));
        }
        out.push(doc_of(crate::testdata::dock("u", 4, 8), "sw"));
        let mut phone = devtel_protocol::PhoneReading {
            device: "ata.1".try_into().unwrap(),
            unit: "u".try_into().unwrap(),
            ..Default::default()
        };
        phone
            .lines
            .push(devtel_protocol::PhoneLine {
                index: 1,
                number: None,
                registration: devtel_protocol::Registration::Registered,
                hook: None,
            })
            .unwrap();
        out.push(doc_of(Reading::Phone(phone), "ata.1"));
        out
    }

    #[test]
    fn every_config_follows_home_assistants_mqtt_sensor_schema_and_renders() {
        let env = minijinja::Environment::new();
        let mut seen_kinds = std::collections::BTreeSet::new();
        for doc in docs() {
            let state = serde_json::to_value(&doc).unwrap();
            let configs = configs(&doc, Some("site-a"), DEFAULT_PREFIX);
            assert!(configs.len() >= 3, "{}", doc.device.device);
            let mut ids = std::collections::BTreeSet::new();
            for (topic, c) in &configs {
                // <prefix>/<component>/<node_id>/<object_id>/config, ids of [a-zA-Z0-9_-].
                let parts: Vec<&str> = topic.split('/').collect();
                assert_eq!(parts.len(), 5, "{topic}");
                assert_eq!(
                    (parts[0], parts[1], parts[4]),
                    ("homeassistant", "sensor", "config")
                );
                for id in &parts[2..4] {
                    assert!(
                        id.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)),
                        "{topic}"
                    );
                }
                let obj = c.as_object().unwrap();
                for key in obj.keys() {
                    assert!(SENSOR_KEYS.contains(&key.as_str()), "{key} in {topic}");
                }
                for key in [
                    "name",
                    "unique_id",
                    "state_topic",
                    "value_template",
                    "device",
                ] {
                    assert!(obj.contains_key(key), "{key} missing in {topic}");
                }
                assert!(
                    ids.insert(c["unique_id"].as_str().unwrap().to_string()),
                    "unique ids"
                );
                for key in c["device"].as_object().unwrap().keys() {
                    assert!(DEVICE_KEYS.contains(&key.as_str()), "device.{key}");
                }
                assert!(c["device"]["identifiers"]
                    .as_array()
                    .is_some_and(|i| !i.is_empty()));
                let avail = c["availability"].as_array().unwrap();
                assert_eq!(avail.len(), 2, "collector and device");
                assert_eq!(avail[0]["topic"], "devtel/v1/collectors/site-a");
                for a in avail {
                    for key in a.as_object().unwrap().keys() {
                        assert!(
                            AVAILABILITY_KEYS.contains(&key.as_str()),
                            "availability.{key}"
                        );
                    }
                }
                assert!(
                    ["all", "any", "latest"].contains(&c["availability_mode"].as_str().unwrap())
                );
                if let Some(class) = c.get("state_class") {
                    assert!(["measurement", "total", "total_increasing"]
                        .contains(&class.as_str().unwrap()));
                }
                // The templates render on the published documents: a number for every sensor
                // with a state class, one of the options for the enum.
                let value = env
                    .render_str(
                        c["value_template"].as_str().unwrap(),
                        minijinja::context! { value_json => state },
                    )
                    .unwrap_or_else(|e| panic!("{topic}: {e}"));
                if c.get("state_class").is_some() {
                    let ok = value.parse::<f64>().is_ok() || value == "none" || value == "None";
                    assert!(ok, "{topic}: {value:?}");
                }
                if c["device_class"] == "enum" {
                    assert!(
                        c["options"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|o| o == value.as_str()),
                        "{value}"
                    );
                }
                let online = env
                    .render_str(
                        avail[1]["value_template"].as_str().unwrap(),
                        minijinja::context! { value_json => state },
                    )
                    .unwrap();
                assert_eq!(online, "online");
                let collector = serde_json::json!({"state": "offline"});
                let off = env
                    .render_str(
                        avail[0]["value_template"].as_str().unwrap(),
                        minijinja::context! { value_json => collector },
                    )
                    .unwrap();
                assert_eq!(off, "offline");
            }
            seen_kinds.insert(doc.device.kind);
            // Counters are total_increasing; a copier's supplies each have a level sensor.
            if doc.device.kind == "copier" {
                let pc = configs
                    .iter()
                    .find(|(t, _)| t.ends_with("/page_count/config"))
                    .unwrap();
                assert_eq!(pc.1["state_class"], "total_increasing");
                let levels = doc
                    .device
                    .supplies
                    .iter()
                    .filter(|s| s.level_percent.is_some())
                    .count();
                let sensors = configs
                    .iter()
                    .filter(|(t, _)| t.contains("/supply_"))
                    .count();
                assert_eq!(levels, sensors);
                let page_count = env
                    .render_str(
                        "{{ value_json.page_count }}",
                        minijinja::context! { value_json => state },
                    )
                    .unwrap();
                assert_eq!(page_count, doc.device.page_count.unwrap().to_string());
            }
        }
        assert_eq!(seen_kinds.len(), 3);
    }

    #[test]
    fn without_a_known_site_only_the_device_says_whether_it_is_available() {
        let doc = docs().remove(0);
        let configs = configs(&doc, None, "ha");
        assert!(configs
            .iter()
            .all(|(t, _)| t.starts_with("ha/sensor/devtel_ricoh_mpc3002/")));
        let avail = configs[0].1["availability"].as_array().unwrap();
        assert_eq!(avail.len(), 1);
        assert_eq!(avail[0]["topic"], "devtel/v1/devices/ricoh_mpc3002");
    }
}
