//! What the gateway's benches share.
#![allow(dead_code)] // each bench uses part of it

use devtel_protocol::{encode_to_vec, topic, Envelope, Reading};

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

/// (topic, payload) for `n` readings of real copiers over 100 devices: each envelope with its
/// own sequence number, poll time and advancing page counter.
pub fn workload(n: usize) -> Vec<(String, Vec<u8>)> {
    let readings: Vec<_> = PRINTERS.iter().map(|n| printer(n)).collect();
    let t0 = 1_795_000_000_000u64;
    (0..n)
        .map(|i| {
            let device = i % 100;
            let mut r = readings[device % readings.len()].clone();
            let unit = format!("ba.unit-{}", device % 10);
            let dev = format!("copier-{device:03}");
            r.device = dev.as_str().try_into().unwrap();
            r.unit = unit.as_str().try_into().unwrap();
            if let Some(m) = r.markers.first_mut() {
                m.life_count = m.life_count.wrapping_add((i / 100) as u32 * 7);
            }
            let mut e = Envelope::new(
                "site".try_into().unwrap(),
                "bench".try_into().unwrap(),
                1,
                i as u64,
                t0 + (i / 100) as u64 * 60_000,
            );
            e.readings.push(Reading::Printer(r)).unwrap();
            let payload = encode_to_vec(&e).unwrap();
            let t = topic::telemetry("site", &unit, &dev).unwrap().to_string();
            (t, payload)
        })
        .collect()
}
