//! `devtel-collector probe`: poll one device once, classify it and show what devtel would report.

use devtel_devices::dock::Selection;
use devtel_devices::{vendor, DeviceIdentity, Kind};
use devtel_protocol::{DockReading, PhoneReading, PrinterReading, Reading, Vendor};
use serde_json::{json, Value as Json};

use crate::poller::{execute, fetch};
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

/// Polls `target` once and classifies the answer: each kind's detection objects in the order
/// of [`devtel_devices::KINDS`], then, for the first kind that recognises the device, what the
/// collector would poll of it.
///
/// # Errors
/// When the device does not answer usefully: timeouts, authentication failures, network and
/// protocol errors.
pub async fn probe(target: Target, opts: Options) -> Result<Probed, SnmpError> {
    let mut client = Client::new(target.clone(), opts).await?;
    let mut vb = VarbindSet::new();
    for kind in devtel_devices::KINDS {
        execute(&mut client, &kind.detect_plan(), &mut vb).await?;
        if vb.is_empty() {
            return Err(SnmpError::Timeout {
                attempts: 0,
                timeout: opts.timeout,
            });
        }
        if kind.detect(&vb) {
            fetch(&mut client, &target, opts, kind, &[], &mut vb).await?;
            return Ok(mapped(kind, &vb).unwrap_or_else(|| unknown(&vb)));
        }
    }
    Ok(unknown(&vb))
}

/// Classifies fetched varbinds (pure; tests feed recordings).
pub fn classify(vb: &VarbindSet) -> Probed {
    devtel_devices::detect(vb)
        .and_then(|kind| mapped(devtel_devices::of(kind), vb))
        .unwrap_or_else(|| unknown(vb))
}

/// `vb` mapped as a device of `kind`.
fn mapped(kind: &dyn Kind, vb: &VarbindSet) -> Option<Probed> {
    let id = DeviceIdentity {
        device: "probe".try_into().unwrap_or_default(),
        unit: "probe".try_into().unwrap_or_default(),
    };
    let mut reading = kind.map(&id, &Selection::default(), vb).ok()?.reading;
    // The probe's output ends up in tickets and chats: client addresses are personal data and
    // stay out of it, as they stay out of what is sent.
    crate::privacy::apply(&mut reading, &crate::privacy::Privacy::Minimal);
    match reading {
        Reading::Printer(r) => Some(Probed::Copier(Box::new(r))),
        Reading::Phone(r) => Some(Probed::Phone(Box::new(r))),
        Reading::Dock(r) => Some(Probed::Dock(Box::new(r))),
        Reading::NoResponse(_) => None,
    }
}

/// A device that answered but is of no kind devtel maps.
fn unknown(vb: &VarbindSet) -> Probed {
    Probed::Unknown {
        vendor: vendor::identify(vb),
        description: vb.get(&oid("1.3.6.1.2.1.1.1.0")).and_then(Value::as_text),
        object_id: vb
            .get(&oid("1.3.6.1.2.1.1.2.0"))
            .and_then(Value::as_oid)
            .map(ToString::to_string),
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
    use devtel_devices::corpus;

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
        for name in corpus::names() {
            let name = name.as_str();
            let (vb, _) = devtel_devices::snmprec::parse(&corpus::recording(name));
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
        let (vb, _) = devtel_devices::snmprec::parse(
            "1.3.6.1.2.1.1.1.0|4|Some appliance\n1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1\n",
        );
        let unknown = to_json(&classify(&vb));
        assert_eq!(unknown["kind"], "unknown");
        assert_eq!(unknown["vendor"], "enterprise:99999");
    }
}
