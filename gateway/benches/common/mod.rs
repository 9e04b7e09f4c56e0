//! What the gateway's benches share.
#![allow(dead_code)] // each bench uses part of it

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
    let id = devtel_devices::DeviceIdentity {
        device: name.try_into().unwrap(),
        unit: "u".try_into().unwrap(),
    };
    devtel_devices::copier::map(&id, &devtel_devices::corpus::varbinds(name)).expect(name)
}

/// A number from the environment, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
