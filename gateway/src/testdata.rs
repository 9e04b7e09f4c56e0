//! Readings of real recorded devices (`../shared/corpus`), mapped by the collector's own
//! mapping, for the gateway's unit tests.

use devtel_protocol::PrinterReading;

/// The corpus folder (`DEVTEL_CORPUS` overrides).
pub fn corpus() -> std::path::PathBuf {
    std::env::var_os("DEVTEL_CORPUS")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
        })
}

/// The printer reading of recording `name`, mapped as the collector maps it.
pub fn printer(name: &str) -> PrinterReading {
    let path = corpus().join("snmprec").join(format!("{name}.snmprec"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (varbinds, _) = devtel_collector::snmprec::parse(&text);
    let id = devtel_collector::devices::DeviceIdentity {
        device: name.try_into().unwrap(),
        unit: "u".try_into().unwrap(),
    };
    devtel_collector::devices::printer::map(&id, &varbinds).unwrap()
}
