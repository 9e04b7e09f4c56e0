//! `devtel-collector probe`: poll one device once, classify it and show what devtel would report.

use devtel_protocol::{DockReading, PhoneReading, PrinterReading, Vendor};
use serde_json::{json, Value as Json};

use crate::devices::{dock, phone, printer, vendor, DeviceIdentity, Plan};
use crate::poller::execute;
use crate::report;
use crate::snmp::client::{Client, Options, SnmpError, Target};
use crate::snmp::{oid, Value, VarbindSet};

/// What a probe found.
#[derive(Debug, Clone)]
pub enum Probed {
    /// A copier or printer.
    Copier(Box<PrinterReading>),
    /// A phone, analogue adapter or other VoIP endpoint.
    Phone(Box<PhoneReading>),
    /// An access switch, shown as dock seats (every Ethernet port).
    Dock(Box<DockReading>),
    /// A device that answered but matches no device kind devtel maps.
    Unknown {
        /// Vendor by sysObjectID / sysDescr.
        vendor: Option<Vendor>,
        /// sysDescr.
        description: Option<String>,
        /// sysObjectID.
        object_id: Option<String>,
    },
}

/// Polls `target` once with every kind's plan and classifies the answer.
///
/// # Errors
/// When the device does not answer usefully: timeouts, authentication failures, network and
/// protocol errors.
pub async fn probe(target: Target, opts: Options) -> Result<Probed, SnmpError> {
    let mut client = Client::new(target.clone(), opts).await?;
    let mut vb = VarbindSet::new();
    execute(&mut client, &printer::plan(), &mut vb).await?;
    if vb.is_empty() {
        return Err(SnmpError::Timeout {
            attempts: 0,
            timeout: opts.timeout,
        });
    }
    execute(&mut client, &vendor::plan(vendor::identify(&vb)), &mut vb).await?;
    let contexts = crate::poller::extra_contexts(devtel_protocol::DeviceKind::Copier, &[], &vb);
    crate::poller::complete_from_contexts(&target, opts, &printer::plan(), &contexts, &mut vb)
        .await;
    execute(&mut client, &phone::plan(), &mut vb).await?;
    if !phone::is_phone(&vb) && printer::map(&probe_id(), &vb).is_err() {
        // A switch has BRIDGE-MIB base ports; only then is its FDB worth walking.
        let bridge = Plan {
            get: vec![oid(dock::oids::BRIDGE_ADDRESS)],
            walk: vec![oid(dock::oids::BASE_PORT_IF_INDEX)],
        };
        execute(&mut client, &bridge, &mut vb).await?;
        if dock::is_switch(&vb) {
            execute(&mut client, &dock::plan(), &mut vb).await?;
        }
    }
    Ok(classify(&vb))
}

/// Classifies fetched varbinds (pure; tests feed recordings).
pub fn classify(vb: &VarbindSet) -> Probed {
    let id = probe_id();
    if let Ok(r) = printer::map(&id, vb) {
        return Probed::Copier(Box::new(r));
    }
    if phone::is_phone(vb) {
        if let Ok(r) = phone::map(&id, vb) {
            return Probed::Phone(Box::new(r));
        }
    }
    if dock::is_switch(vb) {
        if let Ok(m) = dock::map(&id, &dock::Selection::default(), vb) {
            // The probe's output ends up in tickets and chats: client addresses are
            // personal data and stay out of it, as they stay out of what is sent.
            let mut reading = devtel_protocol::Reading::Dock(m.reading);
            crate::privacy::apply(&mut reading, &crate::privacy::Privacy::Minimal);
            if let devtel_protocol::Reading::Dock(r) = reading {
                return Probed::Dock(Box::new(r));
            }
        }
    }
    Probed::Unknown {
        vendor: vendor::identify(vb),
        description: vb.get(&oid("1.3.6.1.2.1.1.1.0")).and_then(Value::as_text),
        object_id: vb
            .get(&oid("1.3.6.1.2.1.1.2.0"))
            .and_then(Value::as_oid)
            .map(ToString::to_string),
    }
}

fn probe_id() -> DeviceIdentity {
    DeviceIdentity {
        device: "probe".try_into().unwrap_or_default(),
        unit: "probe".try_into().unwrap_or_default(),
    }
}

/// The `--json` object.
pub fn to_json(p: &Probed) -> Json {
    match p {
        Probed::Copier(r) => report::printer_json(r),
        Probed::Phone(r) => report::phone_json(r),
        Probed::Dock(r) => report::dock_json(r),
        Probed::Unknown {
            vendor,
            description,
            object_id,
        } => json!({
            "kind": "unknown",
            "vendor": vendor.map(report::vendor_name),
            "model": description,
            "serial": null,
            "status": "unknown",
            "sys_object_id": object_id,
            "counters": {},
            "supplies": [],
            "trays": [],
            "alerts": [],
            "conditions": [],
        }),
    }
}

/// The text form.
pub fn to_text(host: &str, p: &Probed) -> String {
    match p {
        Probed::Copier(r) => report::printer_text(host, r),
        Probed::Dock(r) => report::dock_text(host, r),
        Probed::Phone(r) => {
            let mut out = format!(
                "{host}: phone, {} {} (serial {}, firmware {}), status {}\n",
                r.vendor
                    .map(report::vendor_name)
                    .unwrap_or_else(|| "?".into()),
                r.model.as_deref().unwrap_or("?"),
                r.serial.as_deref().unwrap_or("?"),
                r.firmware.as_deref().unwrap_or("?"),
                r.health().name()
            );
            for l in &r.lines {
                out.push_str(&format!(
                    "  line {} {} {}{}\n",
                    l.index,
                    l.number.as_deref().unwrap_or("-"),
                    l.registration.name(),
                    l.hook
                        .map(|h| format!(", {}", h.name()))
                        .unwrap_or_default()
                ));
            }
            out
        }
        Probed::Unknown {
            vendor,
            description,
            object_id,
        } => format!(
            "{host}: unknown device kind (vendor {}, sysObjectID {}): {}\n",
            vendor
                .map(report::vendor_name)
                .unwrap_or_else(|| "?".into()),
            object_id.as_deref().unwrap_or("?"),
            description.as_deref().unwrap_or("no sysDescr")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::printer::tests_support::{corpus, recording};
    use crate::snmprec;

    /// Every recording of the corpus is classified as the kind of device it is.
    #[test]
    fn every_recording_gets_its_kind() {
        const PHONES: &[&str] = &[
            "allworx_voip",
            "ascom_ipbs3",
            "ciscospa_spa112",
            "grandstream-ht_ht802",
            "grandstream-ht_ht814v2",
            "heliosip",
            "innovaphone",
        ];
        const SWITCHES: &[&str] = &[
            "fortiswitch_s248ep",
            "linksys-ss_lgs318p",
            "procurve",
            "routeros_crs317",
            "tplink_sg2008",
            "zynos_xs1930-12hp",
        ];
        let mut seen = 0;
        for entry in std::fs::read_dir(corpus().join("snmprec")).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let Some(name) = file.strip_suffix(".snmprec") else {
                continue;
            };
            if name.contains('@') {
                continue; // a context companion, not a device
            }
            let (vb, _) = snmprec::parse(&recording(name));
            let kind = to_json(&classify(&vb))["kind"]
                .as_str()
                .unwrap()
                .to_string();
            let expected = if PHONES.contains(&name) {
                "phone"
            } else if SWITCHES.contains(&name) {
                "dock"
            } else {
                "copier"
            };
            assert_eq!(kind, expected, "{name}");
            seen += 1;
        }
        assert!(seen >= 32, "{seen}");
        let (vb, _) = snmprec::parse(
            "1.3.6.1.2.1.1.1.0|4|Some appliance\n1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1\n",
        );
        let unknown = to_json(&classify(&vb));
        assert_eq!(unknown["kind"], "unknown");
        assert_eq!(unknown["vendor"], "enterprise:99999");
    }
}
