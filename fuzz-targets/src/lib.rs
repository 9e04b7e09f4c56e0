//! The bodies of devtel's fuzz targets: every decoder of untrusted input, and a differential
//! check of the aggregator. Each must return, never panic or hang, whatever the bytes; where a
//! property holds for every input (a decoded envelope encodes back to the same bytes, the
//! aggregator's documents do not depend on the order readings arrive in) it is asserted.
//!
//! `fuzz/` runs them under libFuzzer (`scripts/fuzz.sh`); this crate's test replays the seeds
//! and the committed regressions (`fuzz-targets/regressions/{target}/`) on every CI run.

use devtel_protocol::{topic, Envelope, Reading};

/// A fuzz target: takes any bytes, returns or panics on a violated property.
pub type Target = fn(&[u8]);

/// Every target, by name (the name of its `fuzz/fuzz_targets/{name}.rs`).
pub const TARGETS: &[(&str, Target)] = &[
    ("protocol_decode", protocol_decode),
    ("gateway_ingest", gateway_ingest),
    ("topic_and_broker_url", topic_and_broker_url),
    ("snmp_reply", snmp_reply),
    ("snmp_v3_reply", snmp_v3_reply),
    ("simulator_request", simulator_request),
    ("snmprec_parse", snmprec_parse),
    ("spool_scan", spool_scan),
    ("collector_config", collector_config),
    ("gateway_config", gateway_config),
    ("aggregator_order", aggregator_order),
];

/// `protocol::decode` (and the acknowledgement and identity decoders): a decoded envelope
/// is valid, encodes (version 4; version 3 is read, not written), and its encoding decodes
/// to the same envelope and is no longer than the input. Not the same bytes: postcard reads
/// overlong varints (`80 00` for 0, `ff 00` for 127: found by this target), so one envelope
/// has several encodings. The gateway compares a repeat by its bytes, so a re-encoded copy
/// of a stored envelope is a conflict kept aside, never taken for the stored one.
pub fn protocol_decode(data: &[u8]) {
    if let Ok(envelope) = devtel_protocol::decode(data) {
        assert!(envelope.validate().is_ok());
        if envelope.version == devtel_protocol::FORMAT_VERSION {
            let again =
                devtel_protocol::encode_to_vec(&envelope).expect("a decoded envelope encodes");
            assert_eq!(
                devtel_protocol::decode(&again).as_ref(),
                Ok(&envelope),
                "encode-decode is the identity"
            );
            assert!(again.len() <= data.len(), "the encoding is the shortest");
        }
        let identity =
            devtel_protocol::peek_identity(data).expect("the identity of a valid envelope");
        assert_eq!(
            (identity.collector, identity.epoch, identity.seq),
            (envelope.collector.clone(), envelope.epoch, envelope.seq)
        );
    }
    if let Ok(ack) = devtel_protocol::decode_ack(data) {
        assert!(ack.validate().is_ok());
        let mut buf = [0u8; devtel_protocol::MAX_ACK_LEN];
        let again = devtel_protocol::encode_ack(&ack, &mut buf).expect("a decoded ack encodes");
        // As for envelopes: the same acknowledgement, in its shortest encoding.
        assert!(again.len() <= data.len());
        assert_eq!(devtel_protocol::decode_ack(again).as_ref(), Ok(&ack));
    }
    let _ = devtel_protocol::peek_identity(data);
}

/// Splits `data` at its first NUL into a text (lossy UTF-8) and the rest.
fn text_and_rest(data: &[u8]) -> (String, &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(at) => (
            String::from_utf8_lossy(&data[..at]).into_owned(),
            &data[at + 1..],
        ),
        None => (String::from_utf8_lossy(data).into_owned(), &[]),
    }
}

/// The gateway's ingest check: topic (up to the first NUL) and payload. An accepted envelope
/// is about the topic's unit and device.
pub fn gateway_ingest(data: &[u8]) {
    let (t, payload) = text_and_rest(data);
    if let Ok(envelope) = devtel_gateway::ingest::check(&t, payload, None) {
        let Ok(topic::Topic::Telemetry { unit, device, .. }) = topic::parse(&t) else {
            panic!("accepted on a topic that is not a telemetry topic: {t:?}");
        };
        assert!(envelope
            .readings
            .iter()
            .all(|r| r.unit() == unit && r.device() == device));
    }
}

/// Topic parsing and broker URLs: whatever parses as a topic is rebuilt to the same text.
pub fn topic_and_broker_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = topic::parse(&text) {
        let rebuilt = match parsed {
            topic::Topic::Telemetry { site, unit, device } => topic::telemetry(site, unit, device),
            topic::Topic::Unit { unit } => topic::unit(unit),
            topic::Topic::Collector { site } => topic::collector(site),
            topic::Topic::Device { device } => topic::device(device),
            topic::Topic::Ack { site, collector } => topic::ack(site, collector),
        };
        assert_eq!(rebuilt.expect("a parsed topic rebuilds").as_str(), text);
    }
    let _ = devtel_protocol::broker::parse(&text);
}

/// An SNMP v1/v2c reply (BER → PDU → devtel's response).
pub fn snmp_reply(data: &[u8]) {
    devtel_collector::fuzzing::snmp_reply(data);
}

/// An SNMPv3 reply under authPriv.
pub fn snmp_v3_reply(data: &[u8]) {
    devtel_collector::fuzzing::snmp_v3_reply(data);
}

fn agents() -> &'static devtel_collector::sim::Agents {
    static AGENTS: std::sync::OnceLock<devtel_collector::sim::Agents> = std::sync::OnceLock::new();
    AGENTS.get_or_init(|| {
        let mut agents = devtel_collector::sim::Agents::default();
        let (varbinds, _) = devtel_devices::snmprec::parse(SMALL_RECORDING);
        agents.insert("public", varbinds);
        agents
    })
}

/// A few lines in snmprec form (a printer's system group, a counter, a table), so that the
/// simulator has something to walk.
pub const SMALL_RECORDING: &str = "1.3.6.1.2.1.1.1.0|4|SHARP MX-2651\n1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.2385.3.1.112\n1.3.6.1.2.1.1.3.0|67|1234567\n1.3.6.1.2.1.1.5.0|4x|6d782d32363531\n1.3.6.1.2.1.25.3.2.1.5.1|2|3\n1.3.6.1.2.1.43.10.2.1.4.1.1|65|121104\n1.3.6.1.2.1.43.11.1.1.9.1.1|2|-3\n1.3.6.1.2.1.43.11.1.1.9.1.2|2|40\n1.3.6.1.4.1.2385.1.1.19.2.1.3.5.4.60|70|18446744073709551615\n";

/// The simulator's request handling: a request datagram gets an answer or none; an answer
/// is an SNMP message devtel's own decoder reads.
pub fn simulator_request(data: &[u8]) {
    if let Some(reply) = agents().respond(data) {
        devtel_collector::fuzzing::snmp_reply(&reply);
    }
}

/// snmprec parsing (lossy UTF-8 text).
pub fn snmprec_parse(data: &[u8]) {
    let _ = devtel_devices::snmprec::parse(&String::from_utf8_lossy(data));
}

/// Spool segment scanning.
pub fn spool_scan(data: &[u8]) {
    devtel_collector::fuzzing::spool_scan(data);
}

/// The collector's configuration parser.
pub fn collector_config(data: &[u8]) {
    let _ = devtel_collector::config::Config::from_toml(&String::from_utf8_lossy(data));
}

/// The gateway's configuration parser.
pub fn gateway_config(data: &[u8]) {
    let _ = devtel_gateway::config::Config::from_toml(&String::from_utf8_lossy(data));
}

/// The readings described by `data`: 6 bytes each (device, sequence number, poll time,
/// counter and kind), at most 32, from one collector epoch, about four copiers in two units. Poll times
/// lie within 4,000 minutes, inside the default late window of 3 days: beyond it figures
/// depend on arrival order by design (a reading later than the window counts as a poll, its
/// pages stay in the interval that covers it).
fn readings(data: &[u8]) -> Vec<Envelope> {
    const T0: u64 = 1_796_000_000_000;
    data.chunks_exact(6)
        .take(32)
        .map(|c| {
            let device = format!("copier-{}", c[0] % 4);
            let unit = if c[0] % 4 < 2 { "ba.it" } else { "ba.fb2" };
            let seq = u64::from(c[1] % 32);
            let minute = u64::from(u16::from_le_bytes([c[2], c[3]]) % 4000);
            let ts = T0 + minute * 60_000;
            let mut e = Envelope::new(
                "site".try_into().expect("an id"),
                "c".try_into().expect("an id"),
                1,
                seq,
                ts,
            );
            let reading = if c[5] % 8 == 0 {
                Reading::NoResponse(devtel_protocol::NoResponse {
                    device: device.as_str().try_into().expect("an id"),
                    unit: unit.try_into().expect("an id"),
                    kind: devtel_protocol::DeviceKind::Copier,
                    cause: devtel_protocol::NoResponseCause::Timeout,
                })
            } else {
                let mut p = devtel_protocol::PrinterReading {
                    device: device.as_str().try_into().expect("an id"),
                    unit: unit.try_into().expect("an id"),
                    ..Default::default()
                };
                // Counters mostly grow with time, and sometimes go back (a reset).
                let total = minute * 3 + u64::from(c[4] % 8);
                p.counters.total = Some(if c[5] % 16 == 1 {
                    u64::from(c[4])
                } else {
                    total
                });
                p.counters.colour = (c[5] % 3 == 0).then_some(total / 4);
                Reading::Printer(p)
            };
            let _ = e.readings.push(reading);
            e
        })
        .collect()
}

/// The unit documents and the four devices' documents, compared as values (the JSON of
/// the same took a third of each run).
type Documents = (
    Vec<devtel_gateway::aggregate::UnitDoc>,
    Vec<Option<devtel_gateway::aggregate::DeviceFullDoc>>,
);

fn documents(agg: &devtel_gateway::aggregate::Aggregator) -> Documents {
    let devices = ["copier-0", "copier-1", "copier-2", "copier-3"];
    (agg.units(), devices.iter().map(|d| agg.device(d)).collect())
}

/// Differential check of the aggregator: readings ingested one by one as they arrive
/// (repeats and all) give the same documents as a rebuild that replays what the store holds
/// (each identity once, the first bytes, in store order), and, by the parity of the input's
/// length, as the same set in reverse order or as a restore of the snapshot (one of the two
/// per run, so that a run builds three aggregators, not four).
pub fn aggregator_order(data: &[u8]) {
    use devtel_gateway::aggregate::{Aggregator, CoreSettings};
    let arrived = readings(data);
    let mut live = Aggregator::with_settings(CoreSettings::default());
    let mut stored: Vec<&Envelope> = Vec::new();
    for e in &arrived {
        match stored.iter().find(|s| s.seq == e.seq) {
            // A conflicting repeat: the store keeps it aside, the figures never see it.
            Some(s) if *s != e => continue,
            Some(_) => {}
            None => stored.push(e),
        }
        live.ingest(e);
    }
    let mut rebuilt = Aggregator::with_settings(CoreSettings::default());
    for e in &stored {
        rebuilt.ingest(e);
    }
    let expected = documents(&rebuilt);
    assert_eq!(documents(&live), expected, "live against rebuilt");
    if data.len() % 2 == 0 {
        let mut reversed = Aggregator::with_settings(CoreSettings::default());
        for e in stored.iter().rev() {
            reversed.ingest(e);
        }
        assert_eq!(
            documents(&reversed),
            expected,
            "reverse order against rebuilt"
        );
    } else {
        let restored = Aggregator::restore(CoreSettings::default(), &live.snapshot())
            .expect("a snapshot restores");
        assert_eq!(documents(&restored), expected, "restored against rebuilt");
    }
}

/// Seed inputs for `target`: the golden bytes and what the recordings give (from
/// `corpus`, the shared recordings folder, when it is there), each a few hundred bytes to a
/// few kilobytes.
pub fn seeds(target: &str, corpus: Option<&std::path::Path>) -> Vec<Vec<u8>> {
    let recordings: Vec<String> = corpus
        .and_then(|c| std::fs::read_dir(c.join("snmprec")).ok())
        .map(|dir| {
            let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
            files.sort();
            files
                .into_iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .collect()
        })
        .unwrap_or_default();
    let envelopes = || -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = readings(&[3, 5, 1, 0, 7, 2, 1, 6, 2, 0, 9, 0])
            .iter()
            .filter_map(|e| devtel_protocol::encode_to_vec(e).ok())
            .collect();
        // Printer readings mapped from the recordings, as a collector would send them.
        for text in &recordings {
            let (varbinds, _) = devtel_devices::snmprec::parse(text);
            let id = devtel_devices::DeviceIdentity {
                device: "copier-1".try_into().expect("an id"),
                unit: "ba.it".try_into().expect("an id"),
            };
            if let Ok(p) = devtel_devices::copier::map(&id, &varbinds) {
                let mut e = Envelope::new(
                    "site".try_into().expect("an id"),
                    "c".try_into().expect("an id"),
                    1,
                    out.len() as u64,
                    1_796_000_000_000,
                );
                let _ = e.readings.push(Reading::Printer(p));
                if let Ok(bytes) = devtel_protocol::encode_to_vec(&e) {
                    out.push(bytes);
                }
            }
        }
        out
    };
    // SNMP requests a collector sends, answered by the simulator from the small recording.
    let requests = || -> Vec<Vec<u8>> {
        let get = |version: i64, pdu: u8, oids: &[&[u32]]| {
            use devtel_collector::snmp::ber;
            let mut vbs = Vec::new();
            for o in oids {
                vbs.extend(ber::tlv(0x30, &[ber::oid(o), vec![0x05, 0x00]].concat()));
            }
            let pdu_body = [
                ber::integer(42),
                ber::integer(0),
                ber::integer(if pdu == 0xa5 { 10 } else { 0 }),
                ber::tlv(0x30, &vbs),
            ]
            .concat();
            ber::tlv(
                0x30,
                &[
                    ber::integer(version),
                    ber::tlv(0x04, b"public"),
                    ber::tlv(pdu, &pdu_body),
                ]
                .concat(),
            )
        };
        vec![
            get(
                1,
                0xa0,
                &[&[1, 3, 6, 1, 2, 1, 1, 1, 0], &[1, 3, 6, 1, 2, 1, 1, 3, 0]],
            ),
            get(0, 0xa1, &[&[1, 3, 6, 1, 2, 1, 43]]),
            get(
                1,
                0xa5,
                &[&[1, 3, 6, 1, 2, 1, 43, 11], &[1, 3, 6, 1, 2, 1, 25]],
            ),
        ]
    };
    match target {
        "protocol_decode" => envelopes(),
        "gateway_ingest" => envelopes()
            .into_iter()
            .filter_map(|p| {
                let e = devtel_protocol::decode(&p).ok()?;
                let r = e.readings.first()?;
                let t = topic::telemetry(&e.site, r.unit(), r.device()).ok()?;
                Some([t.as_bytes(), &[0], &p].concat())
            })
            .collect(),
        "topic_and_broker_url" => [
            "devtel/v1/telemetry/berlin-mitte/ba.it.team-2/copier-3.12",
            "devtel/v1/units/ba.it",
            "devtel/v1/acks/s/c",
            "devtel/v1/collectors/s",
            "mqtts://broker.example:8883",
            "mqtt://127.0.0.1",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "snmp_reply" | "snmp_v3_reply" => requests()
            .iter()
            .filter_map(|r| agents().respond(r))
            .collect(),
        "simulator_request" => requests(),
        "snmprec_parse" => {
            let mut out: Vec<Vec<u8>> = recordings
                .iter()
                .map(|t| t.as_bytes().iter().take(4096).copied().collect())
                .collect();
            out.push(SMALL_RECORDING.as_bytes().to_vec());
            out
        }
        "spool_scan" => {
            // Records as the spool writes them, from a real spool.
            let dir = std::env::temp_dir().join(format!("devtel-fuzz-seed-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let mut out = Vec::new();
            let config = devtel_collector::spool::SpoolConfig::new(
                &dir,
                1 << 20,
                devtel_collector::spool::Fsync::Never,
            );
            if let Ok(mut spool) = devtel_collector::spool::Spool::open(config) {
                for e in envelopes().iter().take(8) {
                    let _ = spool.append(e);
                }
                let _ = spool.close();
            }
            if let Ok(files) = std::fs::read_dir(&dir) {
                for f in files.flatten() {
                    if let Ok(bytes) = std::fs::read(f.path()) {
                        if bytes.len() > 8 {
                            out.push(bytes[8..].to_vec());
                        }
                    }
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
            out
        }
        "collector_config" => vec![devtel_collector::config::EXAMPLE.as_bytes().to_vec()],
        "gateway_config" => vec![devtel_gateway::config::EXAMPLE.as_bytes().to_vec()],
        "aggregator_order" => vec![
            vec![
                0, 0, 1, 0, 5, 1, 0, 1, 2, 0, 7, 1, 1, 2, 2, 0, 3, 3, 0, 1, 2, 0, 7, 1,
            ],
            (0u8..120).map(|i| i.wrapping_mul(37)).collect(),
            // An odd length: the snapshot is restored rather than the order reversed.
            (0u8..121).map(|i| i.wrapping_mul(37)).collect(),
        ],
        _ => Vec::new(),
    }
}
