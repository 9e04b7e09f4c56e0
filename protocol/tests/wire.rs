//! Golden-byte tests: they pin the wire format. If one fails, the bytes on the wire changed:
//! that needs a new FORMAT_VERSION and an update of WIRE.md, never just new expected bytes.

use devtel_protocol::{
    decode, encode, Capacity, CounterUnit, DeviceKind, DeviceStatus, Envelope, Error, ErrorBits,
    Level, MarkerCounter, NoResponse, NoResponseCause, PageCounters, PrinterReading, PrinterStatus,
    Reading, Supply, SupplyClass, SupplyType, SupplyUnit, Vendor, MAX_ENCODED_LEN,
};

fn id(s: &str) -> devtel_protocol::Id {
    s.try_into().unwrap()
}

/// The worked example of WIRE.md: a small colour printer with one black toner at -3.
fn example() -> Envelope {
    let mut env = Envelope::new(id("s1"), id("gw1"), 7, 300, 1_700_000_000_000);
    let mut printer = PrinterReading {
        device: id("c1"),
        unit: id("it"),
        model: Some("MX".try_into().unwrap()),
        serial: None,
        vendor: Some(Vendor::Sharp),
        firmware: None,
        uptime_ticks: Some(150),
        status: PrinterStatus {
            device: Some(DeviceStatus::Warning),
            printer: None,
            errors: Some(ErrorBits::from_octets(&[0x20])),
        },
        markers: Default::default(),
        supplies: Default::default(),
        counters: PageCounters {
            mono: Some(300),
            ..PageCounters::default()
        },
        trays: Default::default(),
        alerts: Default::default(),
        console: None,
        covers: Default::default(),
        truncated: false,
    };
    printer
        .markers
        .push(MarkerCounter {
            index: 1,
            unit: Some(CounterUnit::Impressions),
            life_count: 121_104,
        })
        .unwrap();
    printer
        .supplies
        .push(Supply {
            index: 1,
            kind: Some(SupplyType::Toner),
            class: Some(SupplyClass::Consumed),
            unit: Some(SupplyUnit::Percent),
            colour: Some("black".try_into().unwrap()),
            description: "K".try_into().unwrap(),
            max_capacity: Some(Capacity::Value(100)),
            level: Some(Level::SomeRemaining),
        })
        .unwrap();
    env.readings.push(Reading::Printer(printer)).unwrap();
    env
}

#[rustfmt::skip]
const EXAMPLE_BYTES: &[u8] = &[
    0x05,                         // version = 5 (u8, raw byte)
    0x00,                         // described (a full envelope, not a compact reading)
    0x02, b's', b'1',             // site = "s1" (varint length, UTF-8)
    0x03, b'g', b'w', b'1',       // collector = "gw1"
    0x07,                         // epoch = 7
    0xac, 0x02,                   // seq = 300 (varint: 0x2c|0x80, 0x02)
    0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, // timestamp_ms = 1_700_000_000_000 (varint u64)
    0x01,                         // readings: 1 element
    0x00,                         //   Reading::Printer (variant 0)
    0x02, b'c', b'1',             //   device = "c1"
    0x02, b'i', b't',             //   unit = "it"
    0x01, 0x02, b'M', b'X',       //   model = Some("MX")
    0x00,                         //   serial = None
    0x01, 0x0d,                   //   vendor = Some(Vendor::Sharp) (variant 13)
    0x00,                         //   firmware = None
    0x01, 0x96, 0x01,             //   uptime_ticks = Some(150)
    0x01, 0x03,                   //   status.device = Some(DeviceStatus::Warning) (variant 3)
    0x00,                         //   status.printer = None
    0x01, 0x80, 0x40,             //   status.errors = Some(ErrorBits(0x2000)) (varint u16 8192)
    0x01,                         //   markers: 1 element
    0x01,                         //     index = 1
    0x01, 0x05,                   //     unit = Some(CounterUnit::Impressions) (variant 5)
    0x90, 0xb2, 0x07,             //     life_count = 121104 (varint)
    0x01,                         //   supplies: 1 element
    0x01,                         //     index = 1
    0x01, 0x03,                   //     kind = Some(SupplyType::Toner) (variant 3)
    0x01, 0x02,                   //     class = Some(SupplyClass::Consumed) (variant 2)
    0x01, 0x0f,                   //     unit = Some(SupplyUnit::Percent) (variant 15)
    0x01, 0x05, b'b', b'l', b'a', b'c', b'k', // colour = Some("black")
    0x01, b'K',                   //     description = "K"
    0x01, 0x00, 0x64,             //     max_capacity = Some(Capacity::Value(100))
    0x01, 0x03,                   //     level = Some(Level::SomeRemaining) (variant 3)
    0x00,                         //   counters.total = None
    0x01, 0xac, 0x02,             //   counters.mono = Some(300)
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // counters.colour..duplex = None (6 fields)
    0x00,                         //   trays: 0 elements
    0x00,                         //   alerts: 0 elements
    0x00,                         //   console = None
    0x00,                         //   covers: 0 elements
    0x00,                         //   truncated = false
];

/// The worked example as version 4 wrote it: the same bytes without the marker byte.
fn example_v4_bytes() -> Vec<u8> {
    assert_eq!(&EXAMPLE_BYTES[..2], &[0x05, 0x00]);
    [&[0x04][..], &EXAMPLE_BYTES[2..]].concat()
}

/// The worked example as version 3 wrote it: version 4's bytes without the site (the three
/// bytes after the version), still decoded.
fn example_v3_bytes() -> Vec<u8> {
    let v4 = example_v4_bytes();
    assert_eq!(&v4[..4], &[0x04, 0x02, b's', b'1']);
    [&[0x03][..], &v4[4..]].concat()
}

#[test]
fn a_version_4_envelope_still_decodes_and_is_still_written_on_request() {
    let mut expected = example();
    expected.version = 4;
    assert_eq!(decode(&example_v4_bytes()).unwrap(), expected);
    // A collector talking to a gateway not yet upgraded writes version 4.
    let mut buf = [0u8; MAX_ENCODED_LEN];
    assert_eq!(
        encode(&expected, &mut buf).unwrap(),
        &example_v4_bytes()[..]
    );
    assert_eq!(
        devtel_protocol::encode_to_vec(&expected).unwrap(),
        example_v4_bytes()
    );
    let id = devtel_protocol::peek_identity(&example_v4_bytes()).unwrap();
    assert_eq!((id.version, id.seq), (4, 300));
}

#[test]
fn worked_example_has_the_documented_bytes() {
    let mut buf = [0u8; MAX_ENCODED_LEN];
    let bytes = encode(&example(), &mut buf).unwrap();
    assert_eq!(bytes, EXAMPLE_BYTES, "{:02x?}", bytes);
    assert_eq!(
        devtel_protocol::encode_to_vec(&example()).unwrap(),
        EXAMPLE_BYTES
    );
    assert_eq!(decode(EXAMPLE_BYTES).unwrap(), example());
}

#[test]
fn a_version_3_envelope_still_decodes_without_a_site() {
    let mut expected = example();
    expected.version = 3;
    expected.site.clear();
    assert_eq!(decode(&example_v3_bytes()).unwrap(), expected);
    // It is read, never written: this build encodes versions 4 and 5 only.
    let mut buf = [0u8; MAX_ENCODED_LEN];
    assert_eq!(
        encode(&expected, &mut buf),
        Err(Error::UnsupportedVersion(3))
    );
    // A version-3 envelope cannot smuggle a site, a version-4 one must name one.
    let mut sited = expected.clone();
    sited.site = id("s1");
    assert_eq!(sited.validate(), Err(Error::InvalidId));
    let mut unsited = example();
    unsited.site.clear();
    assert_eq!(encode(&unsited, &mut buf), Err(Error::InvalidId));
}

#[test]
fn no_response_has_the_documented_bytes() {
    let mut env = Envelope::new(id("s1"), id("gw1"), 0, 0, 0);
    env.readings
        .push(Reading::NoResponse(NoResponse {
            device: id("p"),
            unit: id("u"),
            kind: DeviceKind::Copier,
            cause: NoResponseCause::Timeout,
        }))
        .unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x05, 0x00, 0x02, b's', b'1',             // version 5, described, site "s1"
        0x03, b'g', b'w', b'1', 0x00, 0x00, 0x00, // collector, epoch 0, seq 0, timestamp 0
        0x01, 0x01,                               // 1 reading, Reading::NoResponse (variant 1)
        0x01, b'p', 0x01, b'u',                   // device "p", unit "u"
        0x00, 0x00,                               // kind Copier (0), cause Timeout (0)
    ];
    let mut buf = [0u8; 64];
    assert_eq!(encode(&env, &mut buf).unwrap(), expected);
    assert_eq!(decode(expected).unwrap(), env);
}

#[test]
fn unknown_codes_and_special_values_survive_the_round_trip() {
    let mut env = example();
    let Reading::Printer(p) = &mut env.readings[0] else {
        unreachable!()
    };
    p.status.device = Some(DeviceStatus::from_raw(42));
    p.supplies[0].level = Some(Level::from_raw(-7));
    p.supplies[0].max_capacity = Some(Capacity::Unknown);
    let mut buf = [0u8; MAX_ENCODED_LEN];
    let bytes = encode(&env, &mut buf).unwrap();
    let back = decode(bytes).unwrap();
    assert_eq!(back, env);
    let Reading::Printer(p) = &back.readings[0] else {
        unreachable!()
    };
    assert_eq!(p.status.device.unwrap().raw(), 42);
    assert_eq!(p.supplies[0].level.unwrap().raw(), -7);
    assert_eq!(p.supplies[0].max_capacity.unwrap().raw(), -2);
}

#[test]
fn other_versions_trailing_bytes_and_truncation_are_errors() {
    let mut bytes = EXAMPLE_BYTES.to_vec();
    for other in [1, 2, 6, 0xff] {
        bytes[0] = other;
        assert_eq!(decode(&bytes), Err(Error::UnsupportedVersion(other)));
    }
    // Version 5's second byte: a compact reading, or nothing known, is not an envelope.
    for marker in [1, 2, 0xff] {
        let mut bytes = EXAMPLE_BYTES.to_vec();
        bytes[1] = marker;
        assert_eq!(decode(&bytes), Err(Error::Malformed));
    }
    assert_eq!(decode(&[]), Err(Error::Empty));
    let mut long = EXAMPLE_BYTES.to_vec();
    long.push(0);
    assert_eq!(decode(&long), Err(Error::TrailingBytes(1)));
    for cut in 1..EXAMPLE_BYTES.len() {
        assert!(
            decode(&EXAMPLE_BYTES[..cut]).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
}

#[test]
fn invalid_identifiers_are_rejected_both_ways() {
    let mut env = example();
    env.collector = id("a/b");
    let mut buf = [0u8; MAX_ENCODED_LEN];
    assert_eq!(encode(&env, &mut buf), Err(Error::InvalidId));
    // The same bytes with '/' smuggled in by hand: "gw1" -> "g/1", and "s1" -> "/1".
    let mut bytes = EXAMPLE_BYTES.to_vec();
    bytes[7] = b'/';
    assert_eq!(decode(&bytes), Err(Error::InvalidId));
    let mut bytes = EXAMPLE_BYTES.to_vec();
    bytes[3] = b'/';
    assert_eq!(decode(&bytes), Err(Error::InvalidId));
    let empty = Envelope::new(id("s1"), id("gw1"), 1, 1, 1);
    assert_eq!(encode(&empty, &mut buf), Err(Error::NoReadings));
}

/// An envelope with every identity field at its largest and no readings yet.
fn largest_empty_envelope() -> Envelope {
    let id = "x".repeat(devtel_protocol::MAX_ID_LEN);
    Envelope::new(
        id.as_str().try_into().unwrap(),
        id.as_str().try_into().unwrap(),
        u64::MAX,
        u64::MAX,
        u64::MAX,
    )
}

/// The largest printer envelope: every reading, list and string at its capacity.
fn largest_printer_envelope() -> Envelope {
    use devtel_protocol::*;
    let full = |n: usize| "x".repeat(n);
    let mut env = largest_empty_envelope();
    while !env.readings.is_full() {
        let mut p = PrinterReading {
            device: full(MAX_ID_LEN).as_str().try_into().unwrap(),
            unit: full(MAX_ID_LEN).as_str().try_into().unwrap(),
            model: Some(full(MAX_MODEL_LEN).as_str().try_into().unwrap()),
            serial: Some(full(MAX_MODEL_LEN).as_str().try_into().unwrap()),
            vendor: Some(Vendor::Unrecognised(i32::MIN)),
            firmware: Some(full(MAX_MODEL_LEN).as_str().try_into().unwrap()),
            uptime_ticks: Some(u32::MAX),
            status: PrinterStatus {
                device: Some(DeviceStatus::Unrecognised(i32::MIN)),
                printer: Some(PrinterState::Unrecognised(i32::MIN)),
                errors: Some(ErrorBits(u16::MAX)),
            },
            markers: Default::default(),
            supplies: Default::default(),
            counters: PageCounters {
                total: Some(u64::MAX),
                mono: Some(u64::MAX),
                colour: Some(u64::MAX),
                print: Some(u64::MAX),
                copy: Some(u64::MAX),
                scan: Some(u64::MAX),
                fax: Some(u64::MAX),
                duplex: Some(u64::MAX),
            },
            trays: Default::default(),
            alerts: Default::default(),
            console: Some(full(MAX_CONSOLE_LEN).as_str().try_into().unwrap()),
            covers: Default::default(),
            truncated: true,
        };
        let name = || Some(full(MAX_NAME_LEN).as_str().try_into().unwrap());
        while !p.trays.is_full() {
            p.trays
                .push(Tray {
                    index: u32::MAX,
                    kind: Some(InputType::Unrecognised(i32::MIN)),
                    name: name(),
                    media: name(),
                    unit: Some(SupplyUnit::Unrecognised(i32::MIN)),
                    max_capacity: Some(Capacity::Invalid(i32::MIN)),
                    level: Some(Level::Invalid(i32::MIN)),
                    status: Some(u8::MAX),
                })
                .unwrap();
        }
        while !p.alerts.is_full() {
            p.alerts
                .push(Alert {
                    index: u32::MAX,
                    severity: Some(AlertSeverity::Unrecognised(i32::MIN)),
                    training: Some(AlertTraining::Unrecognised(i32::MIN)),
                    group: Some(i32::MIN),
                    group_index: Some(i32::MIN),
                    code: Some(i32::MIN),
                    description: Some(full(MAX_DESCRIPTION_LEN).as_str().try_into().unwrap()),
                })
                .unwrap();
        }
        while !p.covers.is_full() {
            p.covers
                .push(Cover {
                    index: u32::MAX,
                    description: name(),
                    status: Some(CoverStatus::Unrecognised(i32::MIN)),
                })
                .unwrap();
        }
        while !p.markers.is_full() {
            p.markers
                .push(MarkerCounter {
                    index: u32::MAX,
                    unit: Some(CounterUnit::Unrecognised(i32::MIN)),
                    life_count: u32::MAX,
                })
                .unwrap();
        }
        while !p.supplies.is_full() {
            p.supplies
                .push(Supply {
                    index: u32::MAX,
                    kind: Some(SupplyType::Unrecognised(i32::MIN)),
                    class: Some(SupplyClass::Unrecognised(i32::MIN)),
                    unit: Some(SupplyUnit::Unrecognised(i32::MIN)),
                    colour: Some(full(MAX_COLOUR_LEN).as_str().try_into().unwrap()),
                    description: full(MAX_DESCRIPTION_LEN).as_str().try_into().unwrap(),
                    max_capacity: Some(Capacity::Invalid(i32::MIN)),
                    level: Some(Level::Invalid(i32::MIN)),
                })
                .unwrap();
        }
        env.readings.push(Reading::Printer(p)).unwrap();
    }
    env
}

/// The largest dock envelope: every seat with every field at its longest.
fn largest_dock_envelope() -> Envelope {
    use devtel_protocol::*;
    let full = |n: usize| "x".repeat(n);
    let mut env = largest_empty_envelope();
    while !env.readings.is_full() {
        let name = || Some(full(MAX_NAME_LEN).as_str().try_into().unwrap());
        let mut d = DockReading {
            device: full(MAX_ID_LEN).as_str().try_into().unwrap(),
            unit: full(MAX_ID_LEN).as_str().try_into().unwrap(),
            vendor: Some(Vendor::Unrecognised(i32::MIN)),
            model: Some(full(MAX_MODEL_LEN).as_str().try_into().unwrap()),
            firmware: Some(full(MAX_MODEL_LEN).as_str().try_into().unwrap()),
            uptime_ticks: Some(u32::MAX),
            fdb_read: true,
            seats: Default::default(),
            truncated: true,
        };
        while !d.seats.is_full() {
            d.seats
                .push(Seat {
                    if_index: u32::MAX,
                    name: name(),
                    label: name(),
                    link: Some(LinkStatus::Unrecognised(i32::MIN)),
                    speed_mbps: Some(u32::MAX),
                    last_change_ticks: Some(u32::MAX),
                    clients: u16::MAX,
                    client_mac: Some([0xff; 6]),
                    phone: Some(Neighbour {
                        mac: Some([0xff; 6]),
                        model: Some(full(MAX_NEIGHBOUR_MODEL_LEN).as_str().try_into().unwrap()),
                        firmware: name(),
                        serial: name(),
                    }),
                    occupancy: Occupancy::Unknown,
                })
                .unwrap();
        }
        env.readings.push(Reading::Dock(d)).unwrap();
    }
    env
}

#[test]
fn the_largest_envelope_fits_max_encoded_len() {
    let mut buf = vec![0u8; 4 * MAX_ENCODED_LEN];
    let printer_len = encode(&largest_printer_envelope(), &mut buf).unwrap().len();
    let dock_len = encode(&largest_dock_envelope(), &mut buf).unwrap().len();
    let len = printer_len.max(dock_len);
    assert!(
        len <= MAX_ENCODED_LEN,
        "worst case {len} > MAX_ENCODED_LEN {MAX_ENCODED_LEN}"
    );
    // And not absurdly oversized either: the bound should stay meaningful.
    assert!(
        len * 2 > MAX_ENCODED_LEN,
        "worst case {len} is far below MAX_ENCODED_LEN"
    );
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_valid_payloads_never_panic(pos in 0usize..EXAMPLE_BYTES.len(), val in any::<u8>()) {
            let mut bytes = EXAMPLE_BYTES.to_vec();
            bytes[pos] = val;
            if let Ok(env) = decode(&bytes) {
                // Whatever decodes is a valid envelope that re-encodes and decodes to itself
                // (bytes may differ: postcard accepts non-canonical varints).
                let mut buf = [0u8; MAX_ENCODED_LEN];
                let again = encode(&env, &mut buf).unwrap();
                prop_assert_eq!(decode(again).unwrap(), env);
            }
        }
    }
}

#[test]
fn phone_reading_has_the_documented_bytes() {
    use devtel_protocol::{HookState, PhoneLine, PhoneReading, Registration};
    let mut phone = PhoneReading {
        device: id("p"),
        unit: id("u"),
        vendor: Some(Vendor::Grandstream),
        model: Some("HT".try_into().unwrap()),
        mac: Some([1, 2, 3, 4, 5, 6]),
        ..PhoneReading::default()
    };
    phone
        .lines
        .push(PhoneLine {
            index: 1,
            number: None,
            registration: Registration::NotRegistered,
            hook: Some(HookState::OffHook),
        })
        .unwrap();
    let mut env = Envelope::new(id("s1"), id("gw1"), 0, 0, 0);
    env.readings.push(Reading::Phone(phone)).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x05, 0x00, 0x02, b's', b'1', // version 5, described, site "s1"
        0x03, b'g', b'w', b'1', 0x00, 0x00, 0x00, // collector, epoch 0, seq 0, timestamp 0
        0x01, 0x02,                   // 1 reading, Reading::Phone (variant 2)
        0x01, b'p', 0x01, b'u',       // device "p", unit "u"
        0x01, 0x10,                   // vendor Some(Grandstream: index 16)
        0x01, 0x02, b'H', b'T',       // model Some("HT")
        0x00, 0x00,                   // firmware None, serial None
        0x01, 1, 2, 3, 4, 5, 6,       // mac Some([u8; 6]) (fixed array: no length)
        0x00,                         // uptime_ticks None
        0x01,                         // 1 line
        0x01, 0x00, 0x01,             //   index 1, number None, NotRegistered (variant 1)
        0x01, 0x01,                   //   hook Some(OffHook: variant 1)
        0x00,                         // truncated false
    ];
    let mut buf = [0u8; 128];
    assert_eq!(encode(&env, &mut buf).unwrap(), expected);
    assert_eq!(decode(expected).unwrap(), env);
}

#[test]
fn dock_reading_has_the_documented_bytes() {
    use devtel_protocol::{DockReading, LinkStatus, Neighbour, Occupancy, Seat};
    let mut dock = DockReading {
        device: id("s"),
        unit: id("u"),
        vendor: Some(Vendor::TpLink),
        fdb_read: true,
        ..DockReading::default()
    };
    dock.seats
        .push(Seat {
            if_index: 7,
            name: Some("p7".try_into().unwrap()),
            label: None,
            link: Some(LinkStatus::Up),
            speed_mbps: Some(1000),
            last_change_ticks: Some(0),
            clients: 1,
            client_mac: Some([0, 0x0e, 0x84, 0xf6, 0, 0xcb]),
            phone: Some(Neighbour {
                mac: None,
                model: Some("VVX".try_into().unwrap()),
                firmware: None,
                serial: None,
            }),
            occupancy: Occupancy::Occupied,
        })
        .unwrap();
    let mut env = Envelope::new(id("s1"), id("gw1"), 0, 0, 0);
    env.readings.push(Reading::Dock(dock)).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x05, 0x00, 0x02, b's', b'1', // version 5, described, site "s1"
        0x03, b'g', b'w', b'1', 0x00, 0x00, 0x00, // collector, epoch 0, seq 0, timestamp 0
        0x01, 0x03,                   // 1 reading, Reading::Dock (variant 3)
        0x01, b's', 0x01, b'u',       // device "s", unit "u"
        0x01, 0x17,                   // vendor Some(TP-Link: index 23)
        0x00, 0x00, 0x00,             // model, firmware, uptime_ticks None
        0x01,                         // fdb_read true
        0x01,                         // 1 seat
        0x07,                         //   if_index 7
        0x01, 0x02, b'p', b'7',       //   name Some("p7")
        0x00,                         //   label None
        0x01, 0x01,                   //   link Some(up: index 1)
        0x01, 0xe8, 0x07,             //   speed_mbps Some(1000)
        0x01, 0x00,                   //   last_change_ticks Some(0)
        0x01,                         //   clients 1
        0x01, 0x00, 0x0e, 0x84, 0xf6, 0x00, 0xcb, // client_mac Some
        0x01, 0x00,                   //   phone Some: mac None,
        0x01, 0x03, b'V', b'V', b'X', //     model Some("VVX"),
        0x00, 0x00,                   //     firmware None, serial None
        0x02,                         //   occupancy occupied (variant 2)
        0x00,                         // truncated false
    ];
    let mut buf = [0u8; 128];
    assert_eq!(encode(&env, &mut buf).unwrap(), expected);
    assert_eq!(decode(expected).unwrap(), env);
}

mod acknowledgements {
    use devtel_protocol::ack::{MAX_REJECTED_RANGES, MAX_STORED_RANGES};
    use devtel_protocol::{
        decode_ack, encode_ack, peek_identity, Ack, Error, SeqRange, MAX_ACK_LEN, MAX_ENCODED_LEN,
        MAX_PACKET_LEN,
    };

    /// The worked example of WIRE.md: gateway acknowledges seq 0..300 and 302..310 of
    /// collector "gw1", epoch 7, as stored, and 300 as rejected (301 is still missing).
    fn example() -> Ack {
        let mut ack = Ack::new("gw1".try_into().unwrap(), 7);
        ack.stored.extend([
            SeqRange {
                start: 0,
                count: 300,
            },
            SeqRange {
                start: 302,
                count: 8,
            },
        ]);
        ack.rejected.extend([SeqRange {
            start: 300,
            count: 1,
        }]);
        ack
    }

    #[rustfmt::skip]
    const EXAMPLE_BYTES: &[u8] = &[
        0x01,                         // version = 1 (acknowledgement format)
        0x03, b'g', b'w', b'1',       // collector = "gw1"
        0x07,                         // epoch = 7
        0x02,                         // stored: 2 ranges
        0x00, 0xac, 0x02,             //   start 0, count 300
        0xae, 0x02, 0x08,             //   start 302, count 8
        0x01,                         // rejected: 1 range
        0xac, 0x02, 0x01,             //   start 300, count 1
    ];

    #[test]
    fn worked_example_has_the_documented_bytes() {
        let mut buf = [0u8; MAX_ACK_LEN];
        let bytes = encode_ack(&example(), &mut buf).unwrap();
        assert_eq!(bytes, EXAMPLE_BYTES, "{bytes:02x?}");
        let back = decode_ack(EXAMPLE_BYTES).unwrap();
        assert_eq!(back, example());
        assert!(back.covers(0) && back.covers(299) && back.covers(300) && back.covers(309));
        assert!(!back.covers(301) && !back.covers(310));
    }

    #[test]
    fn the_largest_ack_fits_max_ack_len_and_limits_are_ordered() {
        let mut ack = Ack::new("x".repeat(64).as_str().try_into().unwrap(), u64::MAX);
        // Sorted, disjoint ranges with the longest varints (10-byte starts, 9-byte counts).
        for i in 0..MAX_STORED_RANGES as u64 {
            let start = (1 << 63) + i * (1 << 57);
            ack.stored
                .push(SeqRange {
                    start,
                    count: 1 << 56,
                })
                .unwrap();
        }
        for i in 0..MAX_REJECTED_RANGES as u64 {
            let start = (1 << 62) + i * (1 << 57);
            ack.rejected
                .push(SeqRange {
                    start,
                    count: 1 << 56,
                })
                .unwrap();
        }
        let mut buf = vec![0u8; 4 * MAX_ACK_LEN];
        let len = encode_ack(&ack, &mut buf).unwrap().len();
        assert!(
            len <= MAX_ACK_LEN && len * 2 > MAX_ACK_LEN,
            "worst case {len}"
        );
        // The size limits, stated once in the protocol crate, are consistent.
        let topic = devtel_protocol::topic::MAX_TOPIC_LEN;
        assert!(MAX_ENCODED_LEN + topic + 16 < MAX_PACKET_LEN);
        assert!(MAX_ACK_LEN + topic + 16 < MAX_PACKET_LEN);
    }

    #[test]
    fn other_versions_garbage_and_trailing_bytes_are_errors() {
        assert_eq!(decode_ack(&[]), Err(Error::Empty));
        assert_eq!(decode_ack(&[3, 0]), Err(Error::UnsupportedVersion(3)));
        let mut long = EXAMPLE_BYTES.to_vec();
        long.push(0);
        assert_eq!(decode_ack(&long), Err(Error::TrailingBytes(1)));
        for cut in 1..EXAMPLE_BYTES.len() {
            assert!(decode_ack(&EXAMPLE_BYTES[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn an_envelope_identity_is_read_without_decoding_the_readings() {
        let id = peek_identity(super::EXAMPLE_BYTES).unwrap();
        assert_eq!(
            (id.site.as_str(), id.collector.as_str(), id.epoch, id.seq),
            ("s1", "gw1", 7, 300)
        );
        // Only the header is needed: the readings may be cut off.
        let id = peek_identity(&super::EXAMPLE_BYTES[..12]).unwrap();
        assert_eq!(id.seq, 300);
        // A spool written before the upgrade holds version-3 envelopes.
        let id = peek_identity(&super::example_v3_bytes()).unwrap();
        assert_eq!(
            (id.version, id.site.as_str(), id.collector.as_str(), id.seq),
            (3, "", "gw1", 300)
        );
        assert_eq!(
            peek_identity(&[4, 1, b'/', 1, b'a', 0, 0]),
            Err(Error::InvalidId)
        );
        assert_eq!(
            peek_identity(&[2, 1, b'a']),
            Err(Error::UnsupportedVersion(2))
        );
        assert_eq!(peek_identity(&[3, 1, b'/', 0, 0]), Err(Error::InvalidId));
        assert_eq!(peek_identity(&[3, 5]), Err(Error::Malformed));
    }

    mod garbage {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                if let Ok(ack) = decode_ack(&bytes) {
                    prop_assert!(ack.validate().is_ok());
                }
                let _ = peek_identity(&bytes);
            }

            #[test]
            fn mutated_examples_never_panic(pos in 0usize..EXAMPLE_BYTES.len(), val in any::<u8>()) {
                let mut bytes = EXAMPLE_BYTES.to_vec();
                bytes[pos] = val;
                if let Ok(ack) = decode_ack(&bytes) {
                    let mut buf = [0u8; MAX_ACK_LEN];
                    let again = encode_ack(&ack, &mut buf).unwrap();
                    prop_assert_eq!(decode_ack(again).unwrap(), ack);
                }
            }
        }
    }
}

/// `Envelope`'s `Deserialize` is written by hand (it decodes in place); these tests pin it to
/// the format `#[derive(Deserialize)]` reads, with a derived twin of the struct.
mod in_place {
    use super::*;
    use devtel_protocol::{decode_into, DockReading, PhoneReading, MAX_READINGS};
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize, Serialize)]
    struct Twin<const N: usize> {
        version: u8,
        site: devtel_protocol::Id,
        collector: devtel_protocol::Id,
        epoch: u64,
        seq: u64,
        timestamp_ms: u64,
        readings: heapless::Vec<Reading, N>,
    }

    /// What the derived code decodes, with `decode`'s checks.
    fn derived(bytes: &[u8]) -> Option<Envelope> {
        // Version 5's marker byte (described) is not a field of the twin.
        if bytes.get(1) != Some(&devtel_protocol::compact::DESCRIBED) {
            return None;
        }
        let bytes = [&bytes[..1], &bytes[2..]].concat();
        let (twin, rest): (Twin<MAX_READINGS>, &[u8]) = postcard::take_from_bytes(&bytes).ok()?;
        let mut envelope = Envelope::new(
            twin.site,
            twin.collector,
            twin.epoch,
            twin.seq,
            twin.timestamp_ms,
        );
        envelope.version = twin.version;
        envelope.readings = twin.readings;
        (rest.is_empty()
            && envelope.version == devtel_protocol::FORMAT_VERSION
            && envelope.validate().is_ok())
        .then_some(envelope)
    }

    fn two_kinds() -> Envelope {
        let mut env = Envelope::new(id("s1"), id("gw1"), 9, 12, 1_700_000_000_123);
        let mut dock = DockReading {
            device: id("s"),
            unit: id("u"),
            ..DockReading::default()
        };
        dock.seats
            .push(devtel_protocol::Seat {
                if_index: 3,
                name: Some("p3".try_into().unwrap()),
                label: None,
                link: None,
                speed_mbps: Some(1000),
                last_change_ticks: None,
                clients: 1,
                client_mac: Some([2, 0, 0, 0, 0, 1]),
                phone: None,
                occupancy: devtel_protocol::Occupancy::Occupied,
            })
            .unwrap();
        env.readings
            .push(Reading::Phone(PhoneReading {
                device: id("p"),
                unit: id("u"),
                model: Some("HT".try_into().unwrap()),
                ..PhoneReading::default()
            }))
            .unwrap();
        env.readings.push(Reading::Dock(dock)).unwrap();
        env
    }

    fn bytes(env: &Envelope) -> Vec<u8> {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        encode(env, &mut buf).unwrap().to_vec()
    }

    /// The derived twin needs about 2 MiB of stack for the largest dock envelope in a debug
    /// build (the in-place decoder under 512 KiB): the comparisons run on a roomier thread.
    pub(crate) fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(16 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn in_place_decoding_is_the_derived_format() {
        on_big_stack(in_place_decoding_is_the_derived_format_on_this_thread);
    }

    fn in_place_decoding_is_the_derived_format_on_this_thread() {
        for env in [
            example(),
            two_kinds(),
            largest_printer_envelope(),
            largest_dock_envelope(),
        ] {
            let b = bytes(&env);
            assert_eq!(decode(&b).unwrap(), env);
            assert_eq!(derived(&b).unwrap(), env);
        }
        // One reading more than the capacity: both refuse it.
        let mut three = Twin::<3> {
            version: devtel_protocol::FORMAT_VERSION,
            site: id("s1"),
            collector: id("gw1"),
            epoch: 1,
            seq: 1,
            timestamp_ms: 1,
            readings: heapless::Vec::new(),
        };
        for r in example().readings.iter().chain(two_kinds().readings.iter()) {
            three.readings.push(r.clone()).unwrap();
        }
        let mut buf = [0u8; 4 * MAX_ENCODED_LEN];
        let b = postcard::to_slice(&three, &mut buf[1..]).unwrap().len();
        buf[0] = devtel_protocol::FORMAT_VERSION;
        buf[1] = devtel_protocol::compact::DESCRIBED;
        let b = &buf[..b + 1];
        assert!(derived(b).is_none());
        assert_eq!(decode(b), Err(Error::Malformed));
    }

    #[test]
    fn decoding_into_a_used_envelope_replaces_everything() {
        let mut place = two_kinds();
        decode_into(EXAMPLE_BYTES, &mut place).unwrap();
        assert_eq!(place, example());
        // Full lists of another envelope are cleared, not appended to.
        let mut place = largest_printer_envelope();
        decode_into(EXAMPLE_BYTES, &mut place).unwrap();
        assert_eq!(place, example());
        let mut place = largest_dock_envelope();
        decode_into(&bytes(&two_kinds()), &mut place).unwrap();
        assert_eq!(place, two_kinds());
        // Slots of the same kind are decoded into, other kinds replaced, the rest cut off.
        on_big_stack(|| {
            // A printer, then a dock (MAX_READINGS is 2).
            let mut mixed = example();
            for r in two_kinds().readings.iter().skip(1) {
                mixed.readings.push(r.clone()).unwrap();
            }
            assert_eq!(mixed.readings.len(), MAX_READINGS);
            for env in [
                example(),
                two_kinds(),
                largest_dock_envelope(),
                largest_printer_envelope(),
                mixed.clone(),
            ] {
                let mut place = mixed.clone();
                decode_into(&bytes(&env), &mut place).unwrap();
                assert_eq!(place, env);
                let mut place = env.clone();
                decode_into(&bytes(&mixed), &mut place).unwrap();
                assert_eq!(place, mixed);
            }
        });
    }

    #[test]
    fn assigning_a_reading_in_place_makes_an_exact_copy() {
        let printer = |e: Envelope| match e.readings.into_iter().next() {
            Some(Reading::Printer(r)) => r,
            _ => panic!("a printer envelope"),
        };
        let dock = |e: Envelope| match e.readings.into_iter().next() {
            Some(Reading::Dock(d)) => d,
            _ => panic!("a dock envelope"),
        };
        on_big_stack(move || {
            let (full, small) = (printer(largest_printer_envelope()), printer(example()));
            // Full lists are cleared, not appended to; empty ones are filled.
            let mut place = full.clone();
            place.assign_from(&small);
            assert_eq!(place, small);
            place.assign_from(&full);
            assert_eq!(place, full);
            let full = dock(largest_dock_envelope());
            let mut place = DockReading::default();
            place.assign_from(&full);
            assert_eq!(place, full);
            place.assign_from(&DockReading::default());
            assert_eq!(place, DockReading::default());
        });
    }

    proptest! {
        #[test]
        fn mutated_payloads_decode_as_the_derived_code_decodes(
            pos in 0usize..65536, val in any::<u8>(), cut in 0usize..4096,
        ) {
            let disagreements = on_big_stack(move || {
                let mut out = Vec::new();
                for env in [example(), two_kinds(), largest_printer_envelope(), largest_dock_envelope()] {
                    let mut b = bytes(&env);
                    let pos = pos % b.len();
                    b[pos] = val;
                    b.truncate(b.len() - cut % 8);
                    let (ours, theirs) = (decode(&b).ok(), derived(&b));
                    if ours != theirs {
                        out.push(format!("{ours:?} != {theirs:?}"));
                    }
                }
                out
            });
            prop_assert!(disagreements.is_empty(), "{:?}", disagreements);
        }
    }
}

/// Version 5's compact reading: the worked example five minutes later.
mod compact_reading {
    use super::*;
    use devtel_protocol::compact::{
        decode_compact, encode_compact, expand, fingerprint, is_compact, slots, split, Base, Slots,
        MAX_COMPACT_LEN,
    };
    use proptest::prelude::*;

    fn later() -> Envelope {
        let mut env = example();
        env.seq = 310;
        env.timestamp_ms += 300_000;
        let Reading::Printer(p) = &mut env.readings[0] else {
            unreachable!()
        };
        p.uptime_ticks = Some(30_150);
        p.markers[0].life_count += 5;
        p.counters.mono = Some(305);
        env
    }

    /// `env` as a compact reading against `base` (encoded as the collector encodes it).
    fn compact(base: &Envelope, env: &Envelope) -> Result<Vec<u8>, Error> {
        let described = devtel_protocol::encode_to_vec(base).unwrap();
        let mut base_slots = Slots::new();
        slots(&base.readings[0], &mut base_slots)?;
        let mut skeleton = env.readings[0].clone();
        let mut values = Slots::new();
        split(&env.readings[0], &mut skeleton, &mut values)?;
        let b = Base {
            fingerprint: fingerprint(&described),
            seq: base.seq,
            timestamp_ms: base.timestamp_ms,
            slots: &base_slots,
        };
        let mut buf = [0u8; MAX_COMPACT_LEN];
        Ok(encode_compact(&b, env.seq, env.timestamp_ms, &values, &mut buf)?.to_vec())
    }

    fn expanded(base: &Envelope, bytes: &[u8]) -> Result<Envelope, Error> {
        let c = decode_compact(bytes)?;
        let mut env = base.clone();
        expand(&c, &mut env)?;
        Ok(env)
    }

    /// CRC-32 (IEEE) of `EXAMPLE_BYTES`.
    const EXAMPLE_FINGERPRINT: u32 = 0x390d_bf22;

    #[rustfmt::skip]
    const LATER_BYTES: &[u8] = &[
        0x05, 0x01,                   // version 5, compact
        0x22, 0xbf, 0x0d, 0x39,       // fingerprint of the description (u32, little-endian)
        0x14,                         // seq - description's seq = 10 (zigzag varint)
        0xc0, 0xcf, 0x24,             // timestamp_ms - description's = 300000 (zigzag varint)
        0x0e,                         // 14 slots
        0x91, 0x00,                   // changed: slots 0, 4, 7 (bit i of byte i/8)
        0xe1, 0xd4, 0x03,             // slot 0 uptime: +30000 (zigzag 60000, + 1)
        0x0b,                         // slot 4 marker life count: +5 (zigzag 10, + 1)
        0x0b,                         // slot 7 counters.mono: +5
    ];

    #[test]
    fn the_worked_example_five_minutes_later_has_the_documented_bytes() {
        assert_eq!(fingerprint(EXAMPLE_BYTES), EXAMPLE_FINGERPRINT);
        assert_eq!(devtel_protocol::compact::MAX_SLOTS, 241, "WIRE.md names it");
        let bytes = compact(&example(), &later()).unwrap();
        assert_eq!(bytes, LATER_BYTES, "{bytes:02x?}");
        assert!(is_compact(LATER_BYTES) && !is_compact(EXAMPLE_BYTES));
        let c = decode_compact(LATER_BYTES).unwrap();
        assert_eq!((c.fingerprint, c.slot_count()), (EXAMPLE_FINGERPRINT, 14));
        assert_eq!(expanded(&example(), LATER_BYTES).unwrap(), later());
        // The same reading again: nothing changed but seq and time.
        let again = compact(&later(), &later()).unwrap();
        assert_eq!(&again[6..], &[0x00, 0x00, 0x0e, 0x00, 0x00]);
        // A compact reading is not an envelope, and names no collector.
        assert_eq!(decode(LATER_BYTES), Err(Error::Malformed));
        assert!(devtel_protocol::peek_identity(LATER_BYTES).is_err());
    }

    #[test]
    fn broken_compact_readings_are_errors() {
        assert_eq!(decode_compact(&[]), Err(Error::Empty));
        assert_eq!(
            decode_compact(&[0x04, 0x01]),
            Err(Error::UnsupportedVersion(4))
        );
        assert_eq!(decode_compact(EXAMPLE_BYTES), Err(Error::Malformed));
        for cut in 1..LATER_BYTES.len() {
            assert!(decode_compact(&LATER_BYTES[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = LATER_BYTES.to_vec();
        long.push(0);
        assert_eq!(decode_compact(&long), Err(Error::TrailingBytes(1)));
        // A bit beyond the slot count.
        let mut bits = LATER_BYTES.to_vec();
        bits[12] = 0x40;
        assert_eq!(decode_compact(&bits), Err(Error::Malformed));
        // Against a description with other rows: refused, not misread.
        let mut other = example();
        let Reading::Printer(p) = &mut other.readings[0] else {
            unreachable!()
        };
        p.supplies.clear();
        assert_eq!(expanded(&other, LATER_BYTES), Err(Error::Malformed));
        // A value that does not fit its field (uptime is a u32).
        let mut big = later();
        big.seq = 310;
        let mut bytes = compact(&example(), &big).unwrap();
        bytes[13..16].copy_from_slice(&[0xff, 0xff, 0x7f]);
        let mut wide = bytes[..13].to_vec();
        wide.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        wide.extend_from_slice(&bytes[16..]);
        assert_eq!(expanded(&example(), &wide), Err(Error::Malformed));
    }

    #[test]
    fn readings_the_slots_would_not_restore_are_not_compacted() {
        // A counter beyond i64, and a code kept as unrecognised although it is a known one.
        let mut huge = later();
        let Reading::Printer(p) = &mut huge.readings[0] else {
            unreachable!()
        };
        p.counters.total = Some(u64::MAX);
        assert_eq!(compact(&example(), &huge), Err(Error::Encode));
        let mut odd = later();
        let Reading::Printer(p) = &mut odd.readings[0] else {
            unreachable!()
        };
        p.status.device = Some(DeviceStatus::Unrecognised(3));
        let mut skeleton = odd.readings[0].clone();
        let mut values = Slots::new();
        assert_eq!(
            split(&odd.readings[0], &mut skeleton, &mut values),
            Err(Error::Encode)
        );
    }

    proptest! {
        #[test]
        fn random_values_come_back_exactly(
            values in proptest::collection::vec(proptest::option::of(any::<u32>()), 14),
            seq in any::<u64>(), ts in any::<u64>(),
        ) {
            let mut env = example();
            env.seq = seq;
            env.timestamp_ms = ts;
            let mut slots = Slots::new();
            for (i, v) in values.iter().enumerate() {
                // The status codes, the marker's life count (never absent) and the supply
                // level (an Integer32) as the device would send them.
                let v = match i {
                    1 | 2 => v.map(|v| i64::from(v % 8)),
                    4 => Some(i64::from(v.unwrap_or(0))),
                    3 => v.map(|v| i64::from(v as u16)),
                    5 => v.map(|v| i64::from(v as i32)),
                    _ => v.map(i64::from),
                };
                slots.push(v).unwrap();
            }
            devtel_protocol::compact::join(&mut env.readings[0], &slots).unwrap();
            match compact(&example(), &env) {
                Ok(bytes) => prop_assert_eq!(expanded(&example(), &bytes).unwrap(), env),
                // Only a code kept unrecognised although known may refuse.
                Err(e) => prop_assert_eq!(e, Error::Encode),
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut b = bytes.clone();
            if b.len() >= 2 { b[0] = 5; b[1] = 1; }
            if let Ok(c) = decode_compact(&b) {
                let mut env = example();
                let _ = expand(&c, &mut env);
            }
        }

        #[test]
        fn mutated_compact_readings_never_panic(pos in 0usize..LATER_BYTES.len(), val in any::<u8>()) {
            let mut b = LATER_BYTES.to_vec();
            b[pos] = val;
            if let Ok(c) = decode_compact(&b) {
                let mut env = example();
                let _ = expand(&c, &mut env);
            }
        }
    }

    #[test]
    fn every_kind_at_its_largest_comes_back_exactly() {
        super::in_place::on_big_stack(|| {
            for mut base in [largest_printer_envelope(), largest_dock_envelope()] {
                // One reading per envelope, as the collector sends; counters beyond i64 are
                // sent described (see above).
                base.readings.truncate(1);
                if let Reading::Printer(p) = &mut base.readings[0] {
                    let c = &mut p.counters;
                    for v in [&mut c.total, &mut c.mono, &mut c.colour, &mut c.print] {
                        *v = Some(i64::MAX as u64);
                    }
                    for v in [&mut c.copy, &mut c.scan, &mut c.fax, &mut c.duplex] {
                        *v = Some(0);
                    }
                }
                let mut env = base.clone();
                env.seq = env.seq.saturating_sub(5000);
                env.timestamp_ms = env.timestamp_ms.saturating_sub(300_000);
                let mut values = Slots::new();
                slots(&env.readings[0], &mut values).unwrap();
                for (i, v) in values.iter_mut().enumerate() {
                    if i % 3 == 0 {
                        *v = v.map(|v| v / 2);
                    }
                }
                devtel_protocol::compact::join(&mut env.readings[0], &values).unwrap();
                let bytes = compact(&base, &env).unwrap();
                assert!(bytes.len() <= MAX_COMPACT_LEN);
                assert_eq!(expanded(&base, &bytes).unwrap(), env);
            }
        });
    }
}
