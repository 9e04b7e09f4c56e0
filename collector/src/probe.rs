//! `devtel-collector probe`: poll one device once, classify it and show what devtel would report.

use devtel_protocol::{PhoneReading, PrinterReading, Vendor};
use serde_json::{json, Value as Json};

use crate::devices::{phone, printer, vendor, DeviceIdentity};
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
    let mut client = Client::new(target, opts).await?;
    let mut vb = VarbindSet::new();
    execute(&mut client, &printer::plan(), &mut vb).await?;
    if vb.is_empty() {
        return Err(SnmpError::Timeout {
            attempts: 0,
            timeout: opts.timeout,
        });
    }
    execute(&mut client, &vendor::plan(vendor::identify(&vb)), &mut vb).await?;
    execute(&mut client, &phone::plan(), &mut vb).await?;
    Ok(classify(&vb))
}

/// Classifies fetched varbinds (pure; tests feed recordings).
pub fn classify(vb: &VarbindSet) -> Probed {
    let id = DeviceIdentity {
        device: "probe".try_into().unwrap_or_default(),
        unit: "probe".try_into().unwrap_or_default(),
    };
    if let Ok(r) = printer::map(&id, vb) {
        return Probed::Copier(Box::new(r));
    }
    if phone::is_phone(vb) {
        if let Ok(r) = phone::map(&id, vb) {
            return Probed::Phone(Box::new(r));
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

/// The `--json` object.
pub fn to_json(p: &Probed) -> Json {
    match p {
        Probed::Copier(r) => report::printer_json(r),
        Probed::Phone(r) => report::phone_json(r),
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
