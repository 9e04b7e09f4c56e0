//! What the gateway's benches share.
#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};

/// The recorded devices (`DEVTEL_CORPUS`, else `../shared/corpus` beside the project).
pub fn corpus() -> PathBuf {
    std::env::var_os("DEVTEL_CORPUS")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// A TCP port free on localhost now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The copier recordings the ingest and dashboard benches use.
pub const PRINTERS: &[&str] = &[
    "ricoh_mpc3002",
    "sharp",
    "konica_c250i",
    "jetdirect_m130nw",
    "utax",
    "samsungprinter_m4080fx",
    "epson",
    "okilan_9450g",
];

/// The printer reading of recording `name` as the collector maps it (device `name`, unit `u`).
pub fn printer(name: &str) -> devtel_protocol::PrinterReading {
    let path = corpus().join("snmprec").join(format!("{name}.snmprec"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (varbinds, _) = devtel_collector::snmprec::parse(&text);
    let id = devtel_collector::devices::DeviceIdentity {
        device: name.try_into().unwrap(),
        unit: "u".try_into().unwrap(),
    };
    devtel_collector::devices::printer::map(&id, &varbinds).expect(name)
}

/// A number from the environment, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
