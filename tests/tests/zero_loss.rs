//! Zero loss end to end, against real Mosquitto, devtel's simulator and the real daemons: a
//! reading leaves the collector's spool only when the gateway has stored it, whatever the
//! broker does with its queues and sessions; and no message on a subscribed topic can stop
//! the gateway's ingest.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::delivery::{
    assert_every_seq_once, collector_view, n, spooled_so_far, start_collector, COPIERS,
};
use crate::util::*;

/// Mosquitto's default `max_queued_messages`.
const BROKER_QUEUE: u64 = 1_000;

/// A collector polling `devices` simulated copiers every second.
fn fleet_conf(
    dir: &Path,
    name: &str,
    broker: u16,
    sim: u16,
    devices: usize,
    delivery: &str,
) -> PathBuf {
    let mut conf = format!(
        "site = \"{name}-site\"\ncollector_id = \"{name}\"\nbroker = \"mqtt://127.0.0.1:{broker}\"\npoll_interval = \"1s\"\n[mqtt]\nreconnect_max = \"2s\"\n[delivery]\n{delivery}\n[spool]\ndir = \"{}\"\n[snmp]\ntimeout = \"1s\"\nretries = 1\n",
        dir.join(format!("{name}-spool")).display()
    );
    for i in 0..devices {
        let (recording, id) = COPIERS[i % COPIERS.len()];
        conf.push_str(&format!(
            "[[devices]]\nid = \"{id}-{i}\"\naddress = \"127.0.0.1\"\nport = {sim}\ncommunity = \"{recording}\"\nunit = \"ba.it\"\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, conf).unwrap();
    path
}

/// Mosquitto as a site would run it: persistence on, every limit at its default.
fn default_mosquitto(dir: &Path, port: u16, persistence: bool) -> Proc {
    let db = dir.join("mosquitto-db");
    fs::create_dir_all(&db).unwrap();
    let persistence = if persistence {
        format!(
            "persistence true\npersistence_location {}/\nautosave_interval 1\n",
            db.display()
        )
    } else {
        "persistence false\n".to_string()
    };
    mosquitto_with(
        dir,
        "mosquitto",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n{persistence}"),
        port,
    )
}

/// The envelopes a gateway rebuilt its figures from at start (its log says so).
fn rebuilt(gateway: &Proc) -> u64 {
    let log = gateway.log();
    let line = log
        .lines()
        .find(|l| l.contains("figures rebuilt from the store"))
        .unwrap_or_else(|| panic!("no rebuild line in\n{log}"));
    // Replayed envelopes, and those the snapshot it started from already held.
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    field("envelopes=") + field("snapshot_envelopes=")
}

/// Stops `collector` cleanly and checks the final accounting: every sequence number of its
/// one epoch arrived exactly once, nothing dropped or lost, nothing left in the spool; the
/// running `gateway` applied each envelope it did not rebuild from its store exactly once.
fn stop_and_check_complete(http: u16, name: &str, collector: &mut Proc, gateway: &Proc) -> Value {
    assert!(
        collector.terminate(Duration::from_secs(20)),
        "{}",
        collector.log()
    );
    let (epochs, status) = wait_for("the offline status", Duration::from_secs(20), || {
        collector_view(http, name).filter(|(_, s)| s["state"] == "offline")
    });
    let counters = status["counters"].clone();
    let spooled = n(&counters, "spooled");
    assert_eq!(epochs.len(), 1, "{epochs:?}");
    let e = &epochs[0];
    assert_every_seq_once(e, spooled, &status);
    for key in ["dropped", "lost", "spool_pending", "awaiting_gateway"] {
        assert_eq!(n(&counters, key), 0, "{key}: {status}");
    }
    assert_eq!(n(&counters, "acknowledged"), spooled, "{status}");
    let health = http_json(http, "/healthz").unwrap();
    let ingest = &health["ingest"];
    assert_eq!(
        n(ingest, "applied") + n(ingest, "stale") + rebuilt(gateway),
        n(e, "received"),
        "each envelope applied once: {health} {e}"
    );
    assert_eq!(n(ingest, "duplicates"), n(e, "repeats"), "{health} {e}");
    counters
}

#[test]
fn a_gateway_outage_three_times_the_brokers_queue_loses_no_reading() {
    let dir = temp_dir("gateway-outage");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_tcp_port();
    let broker = default_mosquitto(&dir, port, true);
    let (_sim, sim_port) = rt.block_on(own_simulator(&dir));
    let http = free_tcp_port();
    let mut gateway = start_gateway_as(&dir, "gateway", port, http, "");
    let conf = fleet_conf(&dir, "fleet", port, sim_port, 120, "");
    let mut collector = start_collector(&dir, "collector", &conf);
    wait_for("first deliveries", Duration::from_secs(30), || {
        collector.assert_running();
        collector_view(http, "fleet")
            .filter(|(e, _)| e.first().is_some_and(|e| n(e, "received") >= 120))
    });

    // The gateway goes away (an upgrade) while the collector polls 3x what the broker queues.
    assert!(
        gateway.terminate(Duration::from_secs(15)),
        "{}",
        gateway.log()
    );
    let at_stop = spooled_so_far(&collector);
    wait_for(
        "3x the broker's queue polled",
        Duration::from_secs(120),
        || {
            collector.assert_running();
            (spooled_so_far(&collector) >= at_stop + 3 * BROKER_QUEUE).then_some(())
        },
    );
    let at_return = spooled_so_far(&collector);
    let mut gateway = start_gateway_as(&dir, "gateway", port, http, "");

    wait_for(
        "the whole outage delivered",
        Duration::from_secs(90),
        || {
            collector.assert_running();
            gateway.assert_running();
            collector_view(http, "fleet")
                .filter(|(e, _)| n(&e[0], "received") >= at_return && n(&e[0], "missing") == 0)
        },
    );
    stop_and_check_complete(http, "fleet", &mut collector, &gateway);
    // Flow control kept the broker's queue below its limit: it never had to drop.
    assert!(
        !broker.log().contains("dropped"),
        "the broker dropped messages:\n{}",
        broker.log()
    );
}

#[test]
fn a_broker_restarted_without_persistence_while_the_gateway_is_down_loses_no_reading() {
    let dir = temp_dir("broker-amnesia");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_tcp_port();
    let mut broker = default_mosquitto(&dir, port, false);
    let (_sim, sim_port) = rt.block_on(own_simulator(&dir));
    let http = free_tcp_port();
    let mut gateway = start_gateway_as(&dir, "gateway", port, http, "");
    let conf = fleet_conf(&dir, "amnesia", port, sim_port, 10, "ack_timeout = \"3s\"");
    let mut collector = start_collector(&dir, "collector", &conf);
    wait_for("first deliveries", Duration::from_secs(30), || {
        collector.assert_running();
        collector_view(http, "amnesia")
            .filter(|(e, _)| e.first().is_some_and(|e| n(e, "received") >= 10))
    });

    assert!(gateway.terminate(Duration::from_secs(15)));
    let at_stop = spooled_so_far(&collector);
    wait_for(
        "readings queued for the absent gateway",
        Duration::from_secs(30),
        || (spooled_so_far(&collector) >= at_stop + 100).then_some(()),
    );
    // The broker forgets everything: the gateway's session, its queue, the collector's session.
    assert!(broker.terminate(Duration::from_secs(10)));
    broker = default_mosquitto(&dir, port, false);
    let after_restart = spooled_so_far(&collector);
    wait_for(
        "the collector back on the new broker",
        Duration::from_secs(30),
        || {
            collector.assert_running();
            (spooled_so_far(&collector) >= after_restart + 30
                && collector.log().contains("session_present=false"))
            .then_some(())
        },
    );
    let at_return = spooled_so_far(&collector);
    let mut gateway = start_gateway_as(&dir, "gateway", port, http, "");
    wait_for("everything delivered", Duration::from_secs(90), || {
        collector.assert_running();
        gateway.assert_running();
        collector_view(http, "amnesia")
            .filter(|(e, _)| n(&e[0], "received") >= at_return && n(&e[0], "missing") == 0)
    });
    let counters = stop_and_check_complete(http, "amnesia", &mut collector, &gateway);
    assert!(
        n(&counters, "resent") > 0,
        "what the broker forgot was sent again: {counters}"
    );
    broker.assert_running();
}

/// A small deterministic generator for the random payloads.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn sha256_hex(bytes: &[u8], dir: &Path) -> String {
    let file = dir.join("payload.bin");
    fs::write(&file, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&file).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn no_message_can_stop_ingest() {
    let dir = temp_dir("hostile");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // On Mosquitto with its defaults, or (DEVTEL_TEST_BROKER=embedded) on the gateway's own
    // broker, which refuses a packet beyond devtel's limit at the door (it closes the
    // publisher's connection): there the message beyond the limit is not sent.
    let (_broker, port, top) = if embedded() {
        let port = embedded_broker_port();
        let top = format!("[embedded_broker]\nlisten = \"127.0.0.1:{port}\"\n");
        (None, port, top)
    } else {
        let port = free_tcp_port();
        (
            Some(default_mosquitto(&dir, port, false)),
            port,
            String::new(),
        )
    };
    let (_sim, sim_port) = rt.block_on(own_simulator(&dir));
    let http = free_tcp_port();
    let mut gateway = start_gateway_full(&dir, "gateway", port, http, &top, "", &[]);
    let conf = fleet_conf(&dir, "site", port, sim_port, 3, "");
    let mut collector = start_collector(&dir, "collector", &conf);
    wait_for("first deliveries", Duration::from_secs(30), || {
        collector.assert_running();
        collector_view(http, "site")
            .filter(|(e, _)| e.first().is_some_and(|e| n(e, "received") >= 3))
    });

    let limit = devtel_protocol::MAX_PACKET_LEN;
    let big = vec![0x55u8; 2 << 20];
    let just_under = vec![0x03u8; limit - 1024];
    let beyond = vec![0x07u8; limit + 1024];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let random: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let len = 1 + (rng.next() % 300) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        })
        .collect();
    // A valid envelope on a topic that names another device.
    let mut envelope = devtel_protocol::Envelope::new(
        "site-site".try_into().unwrap(),
        "site".try_into().unwrap(),
        1,
        424_242,
        1,
    );
    envelope
        .readings
        .push(devtel_protocol::Reading::NoResponse(
            devtel_protocol::NoResponse {
                device: "real-device".try_into().unwrap(),
                unit: "ba.it".try_into().unwrap(),
                kind: devtel_protocol::DeviceKind::Copier,
                cause: devtel_protocol::NoResponseCause::Timeout,
            },
        ))
        .unwrap();
    let mismatched = devtel_protocol::encode_to_vec(&envelope).unwrap();
    // A valid envelope polled a day from now: it would move "today" for every unit.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut ahead = devtel_protocol::Envelope::new(
        "site-site".try_into().unwrap(),
        "forger".try_into().unwrap(),
        1,
        7,
        now_ms + 86_400_000,
    );
    ahead
        .readings
        .push(devtel_protocol::Reading::NoResponse(
            devtel_protocol::NoResponse {
                device: "future-device".try_into().unwrap(),
                unit: "ba.it".try_into().unwrap(),
                kind: devtel_protocol::DeviceKind::Copier,
                cause: devtel_protocol::NoResponseCause::Timeout,
            },
        ))
        .unwrap();
    let ahead = devtel_protocol::encode_to_vec(&ahead).unwrap();
    // Forgeries of site identity (a broker that lets anyone publish anywhere): another site
    // reports this site's device; another site publishes as this site's collector; an
    // envelope names another site than its topic.
    let real_device = format!("{}-0", COPIERS[0].1);
    let forged = |site: &str, collector: &str, device: &str, seq: u64| {
        let mut e = devtel_protocol::Envelope::new(
            site.try_into().unwrap(),
            collector.try_into().unwrap(),
            1,
            seq,
            now_ms,
        );
        e.readings
            .push(devtel_protocol::Reading::NoResponse(
                devtel_protocol::NoResponse {
                    device: device.try_into().unwrap(),
                    unit: "ba.it".try_into().unwrap(),
                    kind: devtel_protocol::DeviceKind::Copier,
                    cause: devtel_protocol::NoResponseCause::Timeout,
                },
            ))
            .unwrap();
        devtel_protocol::encode_to_vec(&e).unwrap()
    };
    let identity_forgeries = [
        (
            format!("devtel/v1/telemetry/evil-site/ba.it/{real_device}"),
            forged("evil-site", "evil", &real_device, 1),
        ),
        (
            "devtel/v1/telemetry/evil-site/ba.it/evil-device".to_string(),
            forged("evil-site", "site", "evil-device", 2),
        ),
        (
            "devtel/v1/telemetry/site-site/ba.it/evil-device".to_string(),
            forged("elsewhere", "evil", "evil-device", 3),
        ),
    ];
    // A repeat of a stored envelope's identity with other bytes.
    let history = http_json(http, &format!("/api/devices/{real_device}/history")).unwrap();
    let stored = &history["readings"][0];
    let (stored_epoch, stored_seq) = (n(stored, "epoch"), n(stored, "seq"));
    assert_eq!(stored["collector"], "site", "{stored}");
    let conflicting = {
        let mut e = devtel_protocol::Envelope::new(
            "site-site".try_into().unwrap(),
            "site".try_into().unwrap(),
            stored_epoch,
            stored_seq,
            n(stored, "timestamp_ms"),
        );
        e.readings
            .push(devtel_protocol::Reading::NoResponse(
                devtel_protocol::NoResponse {
                    device: real_device.as_str().try_into().unwrap(),
                    unit: "ba.it".try_into().unwrap(),
                    kind: devtel_protocol::DeviceKind::Copier,
                    cause: devtel_protocol::NoResponseCause::Timeout,
                },
            ))
            .unwrap();
        devtel_protocol::encode_to_vec(&e).unwrap()
    };
    let conflicting_topic = format!("devtel/v1/telemetry/site-site/ba.it/{real_device}");

    let evil = "devtel/v1/telemetry/evil/u0/c0";
    let dead = rt.block_on(async {
        let mut o = MqttOptions::new("e2e-evil", "127.0.0.1", port);
        o.set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        client
            .subscribe("devtel/v1/deadletter/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        while !matches!(
            eventloop.poll().await,
            Ok(Event::Incoming(Packet::SubAck(_)))
        ) {}
        let publisher = tokio::spawn({
            let client = client.clone();
            let (big, just_under, beyond) = (big.clone(), just_under.clone(), beyond.clone());
            async move {
                let mut oversize = vec![big, just_under];
                if !embedded() {
                    oversize.push(beyond);
                }
                for payload in oversize {
                    client
                        .publish(evil, QoS::AtLeastOnce, false, payload)
                        .await
                        .unwrap();
                }
                for (i, payload) in random.into_iter().enumerate() {
                    let t = format!("devtel/v1/telemetry/evil/u{i}/c{i}");
                    client
                        .publish(t, QoS::AtLeastOnce, false, payload)
                        .await
                        .unwrap();
                }
                client
                    .publish(
                        "devtel/v1/telemetry/site-site/ba.it/future-device",
                        QoS::AtLeastOnce,
                        false,
                        ahead,
                    )
                    .await
                    .unwrap();
                for (t, payload) in identity_forgeries {
                    client
                        .publish(t, QoS::AtLeastOnce, false, payload)
                        .await
                        .unwrap();
                }
                client
                    .publish(conflicting_topic, QoS::AtLeastOnce, false, conflicting)
                    .await
                    .unwrap();
                client
                    .publish(
                        "devtel/v1/telemetry/site-site/ba.it/other-device",
                        QoS::AtLeastOnce,
                        false,
                        mismatched,
                    )
                    .await
                    .unwrap();
            }
        });
        // Collect the dead letters of the two oversize messages and of the mismatch.
        let mut dead: Vec<(String, Vec<u8>)> = Vec::new();
        let collect = async {
            loop {
                if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                    let done = p.topic.starts_with("devtel/v1/deadletter/topic_mismatch/");
                    if !p.topic.contains("/undecodable/") && !p.topic.contains("/version/") {
                        dead.push((p.topic.clone(), p.payload.to_vec()));
                    }
                    if done {
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), collect)
            .await
            .expect("the dead letters");
        publisher.await.unwrap();
        dead
    });

    // Counted by cause: both oversize messages the gateway could read, every random payload,
    // the mismatch. The one beyond the packet limit never reached the gateway.
    let health = wait_for("every rejection counted", Duration::from_secs(30), || {
        gateway.assert_running();
        http_json(http, "/healthz").filter(|h| {
            let r = &h["ingest"]["rejected"];
            let random = ["version", "undecodable", "topic"]
                .iter()
                .map(|c| r[c].as_u64().unwrap_or(0))
                .sum::<u64>();
            r["oversize"] == 2
                && r["topic_mismatch"] == 1
                && r["future"] == 1
                && random == 1000
                && r["foreign_device"] == 1
                && r["foreign_collector"] == 1
                && r["site_mismatch"] == 1
                && h["ingest"]["conflicts"] == 1
        })
    });
    // The conflicting repeat is kept aside; the stored reading is the collector's.
    let conflicts = http_json(http, "/api/conflicts").unwrap();
    let kept = &conflicts["conflicts"];
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{conflicts}");
    assert_eq!(
        (n(&kept[0], "epoch"), n(&kept[0], "seq")),
        (stored_epoch, stored_seq)
    );
    assert_eq!(kept[0]["devices"][0], real_device.as_str());
    let again = http_json(http, &format!("/api/devices/{real_device}/history")).unwrap();
    let same = again["readings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| n(r, "epoch") == stored_epoch && n(r, "seq") == stored_seq)
        .unwrap();
    assert_eq!(same, stored, "the stored reading is unchanged");
    assert_eq!(health["ingest"]["repeats_unverified"], 0, "{health}");
    assert_eq!(health["mqtt_connected"], true, "{health}");
    let oversize: Vec<&(String, Vec<u8>)> = dead
        .iter()
        .filter(|(t, _)| t == "devtel/v1/deadletter/oversize/devtel/v1/telemetry/evil/u0/c0")
        .collect();
    assert_eq!(
        oversize.len(),
        2,
        "{:?}",
        dead.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    let descriptor: Value = serde_json::from_slice(&oversize[0].1).unwrap();
    assert_eq!(descriptor["size"], big.len(), "{descriptor}");
    assert_eq!(descriptor["sha256"], sha256_hex(&big, &dir), "{descriptor}");
    let descriptor: Value = serde_json::from_slice(&oversize[1].1).unwrap();
    assert_eq!(descriptor["size"], just_under.len(), "{descriptor}");
    let mismatch = dead
        .iter()
        .find(|(t, _)| t.contains("/topic_mismatch/"))
        .unwrap();
    assert_eq!(
        mismatch.1,
        devtel_protocol::encode_to_vec(&envelope).unwrap(),
        "copied unchanged"
    );

    // An absurd query is refused at once, naming the bound (it would build millions of
    // periods), and ingest is not held up by it (below).
    let asked = std::time::Instant::now();
    let (status, body) = http_get(
        http,
        "/api/consumption?unit=ba.it&from=0001-01-01&to=9999-12-31&by=day",
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("range: "), "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    // The embedded broker refuses the packet beyond the limit at the door: the publisher's
    // connection ends, the gateway's does not (checked below: no connection error).
    if embedded() {
        let refused = rt.block_on(async {
            let mut o = MqttOptions::new("e2e-beyond", "127.0.0.1", port);
            o.set_max_packet_size(8 << 20, 8 << 20);
            let (client, mut eventloop) = AsyncClient::new(o, 4);
            client
                .publish(evil, QoS::AtLeastOnce, false, beyond.clone())
                .await
                .unwrap();
            let until = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                match tokio::time::timeout_at(until, eventloop.poll()).await {
                    Ok(Err(_)) => break true,
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break false,
                    Ok(Ok(_)) => {}
                    Err(_) => break false,
                }
            }
        });
        assert!(
            refused,
            "the embedded broker took a packet beyond the limit"
        );
    }

    // And ingest goes on: the collector's readings polled after all this are applied within
    // seconds, its connection never broke, nothing was applied from the garbage.
    let before = collector_view(http, "site")
        .map(|(e, _)| n(&e[0], "received"))
        .unwrap();
    wait_for(
        "readings after the garbage",
        Duration::from_secs(15),
        || {
            collector.assert_running();
            collector_view(http, "site").filter(|(e, _)| n(&e[0], "received") >= before + 6)
        },
    );
    assert!(
        !gateway.log().contains("MQTT connection error"),
        "{}",
        gateway.log()
    );
    // Nothing of the forgeries became a device ("evil-device" was never taken).
    let devices = http_json(http, "/api/devices").unwrap();
    assert_eq!(devices.as_array().map(Vec::len), Some(3), "{devices}");
    // The envelope from the future moved nothing: "now" is still the real readings' time.
    let newest = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["last_seen_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        newest < now_ms + 600_000,
        "newest poll {newest}, test began {now_ms}"
    );
    assert!(dead.iter().any(|(t, p)| {
        t == "devtel/v1/deadletter/future/devtel/v1/telemetry/site-site/ba.it/future-device"
            && !p.is_empty()
    }));
    let counters = stop_and_check_complete(http, "site", &mut collector, &gateway);
    assert_eq!(n(&counters, "rejected"), 0);
    // The mismatched envelope claimed this collector's name with epoch 1: its "rejected"
    // acknowledgement reached the real collector, which holds no such epoch.
    assert!(n(&counters, "unknown_acks") >= 1, "{counters}");
}

/// A broker may send more than the gateway can hold (Mosquitto 2.0 lets more than the
/// Receive Maximum through under a burst). Here the gateway's queue is cut to 256 messages
/// (channel and backlog) while Mosquitto may send it 2,048 unacknowledged, so it must hold
/// messages back — unacknowledged, counted — and reconnect once it has caught up so that the
/// broker sends them again: every envelope arrives, none is applied twice. The gateway is
/// stopped (SIGSTOP) at the start of the burst so that the broker's queue for it is long
/// when it resumes while more arrives; the broker's own queue limit is out of the way
/// (`max_queued_messages 0`) so that only the gateway's behaviour is measured.
#[test]
fn a_broker_sending_beyond_the_receive_maximum_loses_nothing() {
    const N: u64 = 8_000;
    let dir = temp_dir("overshoot");
    let port = free_tcp_port();
    let _broker = mosquitto_with(
        &dir,
        "mosquitto",
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
        ),
        port,
    );
    let http = free_tcp_port();
    let mut gateway = start_gateway_with(
        &dir,
        "gateway",
        port,
        http,
        "",
        &[("DEVTEL_TEST_INGEST_QUEUE", "256")],
    );
    let pid = gateway.child.id().to_string();
    let signal = move |sig: &'static str| {
        assert!(Command::new("kill")
            .args([sig, pid.as_str()])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut o = MqttOptions::new("e2e-burst", "127.0.0.1", port);
        o.set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let publisher = tokio::spawn(async move {
            for seq in 0..N {
                let device = format!("copier-{:02}", seq % 50);
                let mut e = devtel_protocol::Envelope::new(
                    "burst-site".try_into().unwrap(),
                    "burst".try_into().unwrap(),
                    1,
                    seq,
                    1_795_000_000_000 + seq * 1000,
                );
                e.readings
                    .push(devtel_protocol::Reading::NoResponse(
                        devtel_protocol::NoResponse {
                            device: device.as_str().try_into().unwrap(),
                            unit: "ba.it".try_into().unwrap(),
                            kind: devtel_protocol::DeviceKind::Copier,
                            cause: devtel_protocol::NoResponseCause::Timeout,
                        },
                    ))
                    .unwrap();
                let t = devtel_protocol::topic::telemetry("burst-site", "ba.it", &device).unwrap();
                let payload = devtel_protocol::encode_to_vec(&e).unwrap();
                client
                    .publish(t.as_str(), QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
        });
        let resume = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            signal("-CONT");
        });
        let mut acked = 0;
        while acked < N {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
                acked += 1;
            }
        }
        publisher.await.unwrap();
        resume.await.unwrap();
    });
    let (epochs, _) = wait_for("every envelope stored", Duration::from_secs(120), || {
        gateway.assert_running();
        collector_view(http, "burst").filter(|(e, _)| n(&e[0], "received") >= N)
    });
    let e = &epochs[0];
    assert_eq!(
        (n(e, "first_seq"), n(e, "last_seq"), n(e, "missing")),
        (0, N - 1, 0),
        "{e}"
    );
    let health = http_json(http, "/healthz").unwrap();
    let ingest = &health["ingest"];
    assert!(
        n(ingest, "held_back") > 0 && n(ingest, "redelivery_reconnects") > 0,
        "the broker sent more than 512 unacknowledged messages, so some were held back: {health}\n{}",
        gateway.log()
    );
    assert_eq!(
        n(ingest, "applied") + n(ingest, "stale"),
        N,
        "each envelope applied once, the redelivered ones counted as duplicates: {health}"
    );
    let rejected = ingest["rejected"].as_object().unwrap();
    assert!(rejected.values().all(|v| v == 0), "{health}");
    assert!(
        gateway
            .log()
            .contains("reconnecting so that the broker sends the held-back messages again"),
        "{}",
        gateway.log()
    );
}

/// With the embedded broker, the broker dies with the gateway: everything it held in
/// memory (sessions, queues, unacknowledged deliveries) is gone. The collector keeps every
/// reading in its spool until the gateway acknowledged it, so SIGKILL of the gateway at
/// random points, and an outage of several seconds, lose nothing and count nothing twice.
#[test]
fn the_gateway_killed_with_its_embedded_broker_loses_no_reading() {
    let dir = temp_dir("embedded-kill");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = embedded_broker_port();
    let (_sim, sim_port) = rt.block_on(own_simulator(&dir));
    let http = free_tcp_port();
    let mut gateway = start_gateway_as(&dir, "gateway", port, http, "");
    let conf = fleet_conf(&dir, "fleet", port, sim_port, 20, "");
    let mut collector = start_collector(&dir, "collector", &conf);
    wait_for("first deliveries", Duration::from_secs(30), || {
        collector.assert_running();
        collector_view(http, "fleet")
            .filter(|(e, _)| e.first().is_some_and(|e| n(e, "received") >= 40))
    });
    let mut rng = crate::durability::Rng::new();
    for round in 0..4 {
        std::thread::sleep(rng.millis(500..3000));
        gateway.child.kill().unwrap();
        gateway.child.wait().unwrap();
        // The last round is an outage: the collector polls on and spools.
        if round == 3 {
            let at_stop = spooled_so_far(&collector);
            wait_for("polls during the outage", Duration::from_secs(30), || {
                collector.assert_running();
                (spooled_so_far(&collector) >= at_stop + 100).then_some(())
            });
        }
        gateway = start_gateway_as(&dir, "gateway", port, http, "");
    }
    let at_return = spooled_so_far(&collector);
    wait_for("everything delivered", Duration::from_secs(60), || {
        collector.assert_running();
        gateway.assert_running();
        collector_view(http, "fleet")
            .filter(|(e, _)| n(&e[0], "received") >= at_return && n(&e[0], "missing") == 0)
    });
    stop_and_check_complete(http, "fleet", &mut collector, &gateway);
}
