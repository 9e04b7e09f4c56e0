//! Readings of real recorded devices (`../shared/corpus`), mapped by the collector's own
//! mapping, for the gateway's unit tests.

use devtel_protocol::{
    encode_to_vec, DeviceKind, Envelope, NoResponse, NoResponseCause, PrinterReading, Reading,
};

use crate::store::Item;

/// Copier recordings of several vendors.
pub const COPIERS: &[&str] = &[
    "ricoh_mpc3002",
    "sharp",
    "konica_c250i",
    "jetdirect_m130nw",
    "utax",
    "samsungprinter_m4080fx",
    "epson",
    "okilan_9450g",
];

/// An envelope of collector `c1` with one silent poll of `device` in unit `u`, ready to
/// commit.
pub fn no_response_item(device: &str, seq: u64, ts: u64) -> Item {
    no_response_envelope("c1", u64::MAX - 1, device, seq, ts)
}

/// An envelope of `collector`'s `epoch` with one silent poll of `device` in unit `u` at `ts`,
/// received 1 ms later.
pub fn no_response_envelope(collector: &str, epoch: u64, device: &str, seq: u64, ts: u64) -> Item {
    let mut e = Envelope::new(
        "site".try_into().unwrap(),
        collector.try_into().unwrap(),
        epoch,
        seq,
        ts,
    );
    e.readings
        .push(Reading::NoResponse(NoResponse {
            device: device.try_into().unwrap(),
            unit: "u".try_into().unwrap(),
            kind: DeviceKind::Copier,
            cause: NoResponseCause::Timeout,
        }))
        .unwrap();
    let payload = encode_to_vec(&e).unwrap();
    Item::Envelope {
        envelope: Box::new(e),
        payload: payload.into(),
        received_ms: ts + 1,
    }
}

/// A dock switch `sw` in `unit` with `watched` seats, the first `occupied` of them with a
/// laptop docked.
pub fn dock(unit: &str, occupied: u32, watched: u32) -> Reading {
    let mut d = devtel_protocol::DockReading {
        device: "sw".try_into().unwrap(),
        unit: unit.try_into().unwrap(),
        fdb_read: true,
        ..Default::default()
    };
    for i in 0..watched {
        d.seats
            .push(devtel_protocol::Seat {
                if_index: i + 1,
                name: None,
                label: None,
                link: None,
                speed_mbps: None,
                last_change_ticks: None,
                clients: u16::from(i < occupied),
                client_mac: None,
                phone: None,
                occupancy: if i < occupied {
                    devtel_protocol::Occupancy::Occupied
                } else {
                    devtel_protocol::Occupancy::Empty
                },
            })
            .unwrap();
    }
    Reading::Dock(d)
}

/// The printer reading of recording `name`, mapped as the collector maps it.
pub fn printer(name: &str) -> PrinterReading {
    let id = devtel_devices::DeviceIdentity {
        device: name.try_into().unwrap(),
        unit: "u".try_into().unwrap(),
    };
    devtel_devices::copier::map(&id, &devtel_devices::corpus::varbinds(name)).unwrap()
}
