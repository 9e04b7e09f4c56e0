use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::util::*;

/// The devices of the skeleton test: (recording = community, device id, unit).
const DEVICES: &[(&str, &str, &str)] = &[
    ("ricoh_mpc3002", "ricoh-2og", "ba.it"),
    ("sharp", "sharp-3og", "ba.it"),
    ("konica_c250i", "konica-eg", "jugendamt.team-2"),
];

/// The collector's `[[devices]]` of [`DEVICES`], polled from the simulator at `sim_port`.
fn copiers(sim_port: u16) -> String {
    DEVICES
        .iter()
        .map(|(recording, id, unit)| {
            format!(
                "[[devices]]\nid = \"{id}\"\nkind = \"copier\"\naddress = \"127.0.0.1\"\nport = {sim_port}\nversion = \"2c\"\ncommunity = \"{recording}\"\nunit = \"{unit}\"\n"
            )
        })
        .collect()
}

/// Subscribes to every unit and device document and collects the retained ones.
fn unit_documents(
    rt: &tokio::runtime::Runtime,
    broker: u16,
) -> std::sync::mpsc::Receiver<(String, Value)> {
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let mut options = MqttOptions::new("e2e-integrator", "127.0.0.1", broker);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        for filter in [
            devtel_protocol::topic::UNITS_FILTER,
            devtel_protocol::topic::DEVICES_FILTER,
        ] {
            client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        }
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(doc) = serde_json::from_slice::<Value>(&p.payload) {
                        let _ = tx.send((p.topic.clone(), doc));
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    rx
}

/// Checks one device of a unit document against the raw recording.
fn assert_device_matches_recording(doc: &Value, recording: &str, device: &str) {
    let d = doc["devices"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["device"] == device))
        .unwrap_or_else(|| panic!("{device} missing in {doc}"));
    let life: u64 = recorded(recording, "1.3.6.1.2.1.43.10.2.1.4.1.1")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(d["page_count"], life, "{device} page count");
    let indexes = recorded_supply_indexes(recording);
    let supplies = d["supplies"].as_array().unwrap();
    assert_eq!(
        supplies
            .iter()
            .map(|s| s["index"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        indexes,
        "{device} supplies"
    );
    for s in supplies {
        let i = s["index"].as_u64().unwrap();
        let level: i64 = recorded(recording, &format!("1.3.6.1.2.1.43.11.1.1.9.1.{i}"))
            .unwrap()
            .parse()
            .unwrap();
        let max: i64 = recorded(recording, &format!("1.3.6.1.2.1.43.11.1.1.8.1.{i}"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(s["level"], level, "{device} supply {i} level");
        assert_eq!(s["max_capacity"], max, "{device} supply {i} max capacity");
        let descr = recorded(recording, &format!("1.3.6.1.2.1.43.11.1.1.6.1.{i}")).unwrap();
        assert_eq!(s["description"], descr, "{device} supply {i} description");
        if level >= 0 && max > 0 {
            assert_eq!(
                s["level_percent"],
                (level * 100 / max).min(100),
                "{device} supply {i} percent"
            );
        } else {
            assert!(
                s["level_percent"].is_null(),
                "{device} supply {i}: no percent for {level}/{max}"
            );
        }
    }
}

#[test]
fn recorded_copiers_are_polled_aggregated_per_unit_and_published() {
    let dir = temp_dir("pipeline");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut broker, broker_port) = broker(&dir);
    let (mut sim, sim_port) = snmpsim(&dir);
    rt.block_on(wait_for_agent(&mut sim, sim_port, "ricoh_mpc3002"));
    // Single seats are shown with privacy = "per-seat", to the seats token only.
    let seats_token = "e2e-seats-token-7a1c";
    let http = free_tcp_port();
    let mut gateway = start_gateway_full(
        &dir,
        "gateway",
        broker_port,
        http,
        "privacy = \"per-seat\"\n",
        "",
        &[
            ("DEVTEL_GATEWAY_TOKEN", "e2e-plain-token-93b2"),
            ("DEVTEL_GATEWAY_SEAT_TOKEN", seats_token),
        ],
    );
    let plain = [("Authorization", "Bearer e2e-plain-token-93b2")];
    let scoped = [("Authorization", "Bearer e2e-seats-token-7a1c")];
    let get_as = |headers: &[(&str, &str)], path: &str| -> Option<Value> {
        match http_get_with(http, path, headers)? {
            (200, body) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    };
    let docs = unit_documents(&rt, broker_port);

    let spool = dir.join("spool");
    let spool = spool.display();
    let metrics_port = free_tcp_port();
    let mut collector_conf = format!(
        "site = \"e2e-site\"\ncollector_id = \"e2e-collector\"\nbroker = \"mqtt://127.0.0.1:{broker_port}\"\npoll_interval = \"2s\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n[spool]\ndir = \"{spool}\"\n[snmp]\ntimeout = \"1s\"\nretries = 2\n"
    );
    collector_conf.push_str(&copiers(sim_port));
    // A desk-sharing floor: four ports of the recorded TP-Link switch are dock seats, laptops
    // counted in the data VLAN 10.
    collector_conf.push_str(&format!(
        "[[devices]]\nid = \"switch-desks\"\nkind = \"dock\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"tplink_sg2008\"\nunit = \"ba.desks\"\nseats = [\"5\", \"6\", \"7\", \"8\"]\ndata_vlans = [10]\n"
    ));
    let conf = dir.join("collector.toml");
    fs::write(&conf, collector_conf).unwrap();
    let mut collector = Proc::spawn(
        "collector",
        &dir,
        Command::new(bin("devtel-collector"))
            .args(["run", "--config"])
            .arg(&conf),
    );

    // The gateway's HTTP view: both units, every device with readings.
    let it = wait_for(
        "unit ba.it with both copiers",
        Duration::from_secs(60),
        || {
            collector.assert_running();
            gateway.assert_running();
            get_as(&plain, "/api/units/ba.it").filter(|d| {
                d["devices_total"] == 2
                    && d["devices"]
                        .as_array()
                        .is_some_and(|ds| ds.iter().all(|x| x["page_count"].is_u64()))
            })
        },
    );
    // The collector's own /metrics: its polls and what the gateway acknowledged.
    let (status, metrics) = http_get(metrics_port, "/metrics").expect("collector /metrics");
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    assert!(
        value("devtel_collector_polls_total") >= DEVICES.len() as f64,
        "{metrics}"
    );
    assert!(
        value("devtel_collector_acknowledged_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(value("devtel_collector_lost_total"), 0.0);
    assert!(metrics.contains("devtel_collector_info{site=\"e2e-site\",collector=\"e2e-collector\""));
    let team = wait_for("unit jugendamt.team-2", Duration::from_secs(30), || {
        get_as(&plain, "/api/units/jugendamt.team-2")
            .filter(|d| d["devices"][0]["page_count"].is_u64())
    });
    for (recording, id, unit) in DEVICES {
        let doc = if *unit == "ba.it" { &it } else { &team };
        assert_device_matches_recording(doc, recording, id);
    }
    let page = |rec: &str| -> u64 {
        recorded(rec, "1.3.6.1.2.1.43.10.2.1.4.1.1")
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(it["pages"]["total"], page("ricoh_mpc3002") + page("sharp"));
    assert_eq!(
        it["pages"]["total"],
        271_871 + 121_104,
        "the recorded counters themselves"
    );
    assert_eq!(
        it["pages"]["by_counter_unit"]["sheets"], 271_871,
        "Ricoh counts sheets"
    );
    assert_eq!(
        it["pages"]["by_counter_unit"]["impressions"], 121_104,
        "Sharp counts impressions"
    );
    assert_eq!(team["pages"]["total"], page("konica_c250i"));
    // Status from hrDeviceStatus + hrPrinterDetectedErrorState: Ricoh warning(3); Sharp lowToner;
    // Konica serviceRequested.
    assert_eq!(it["status"]["warning"], 2, "{it}");
    let sharp = it["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "sharp-3og")
        .unwrap();
    assert_eq!(sharp["conditions"], serde_json::json!(["lowToner"]));
    assert_eq!(
        team["devices"][0]["conditions"],
        serde_json::json!(["serviceRequested"])
    );
    assert_eq!(
        team["devices"][0]["serial"],
        recorded("konica_c250i", "1.3.6.1.2.1.43.5.1.1.17.1").unwrap()
    );

    // The dock switch's first reading may come a moment after the copiers' documents.
    let unit_ids = || -> Vec<String> {
        get_as(&plain, "/api/units")
            .and_then(|l| l.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|u| u["unit"].as_str().map(String::from))
            .collect()
    };
    let ids = wait_for("all three units", Duration::from_secs(30), || {
        Some(unit_ids()).filter(|ids| ids.len() >= 3)
    });
    assert_eq!(ids, ["ba.desks", "ba.it", "jugendamt.team-2"]);

    // Dock seats: occupied = link up and a MAC learned in VLAN 10 on that port, derived here
    // from the raw recording (ifOperStatus and dot1qTpFdbPort.<fdbId 10>.<mac> lines).
    let desks = wait_for("unit ba.desks", Duration::from_secs(30), || {
        get_as(&scoped, "/api/units/ba.desks").filter(|d| {
            d["devices"][0]["seats"]
                .as_array()
                .is_some_and(|s| s.len() == 4)
        })
    });
    // Four seats: fewer than five, so the unit's and the switch's seat
    // figures are withheld, whoever asks; without the seats token no seat is listed.
    assert_eq!(desks["seats_withheld"], true, "{desks}");
    assert_eq!(desks["seats"]["total"], 0);
    assert_eq!(desks["devices"][0]["seats_withheld"], true);
    let unscoped = get_as(&plain, "/api/units/ba.desks").unwrap();
    assert_eq!(unscoped["devices"][0]["seats"], serde_json::json!([]));
    assert!(http_get(http, "/api/units/ba.desks").is_some_and(|(s, _)| s == 401));
    let fdb = recorded_under("tplink_sg2008", "1.3.6.1.2.1.17.7.1.2.2.1.2");
    let (mut occupied, mut empty) = (0, 0);
    for port in 5..=8 {
        let up = recorded("tplink_sg2008", &format!("1.3.6.1.2.1.2.2.1.8.{port}")).unwrap() == "1";
        let macs = fdb
            .iter()
            .filter(|(suffix, value)| suffix.starts_with("10.") && *value == port.to_string())
            .count();
        let seat = desks["devices"][0]["seats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["if_index"] == port)
            .unwrap()
            .clone();
        let expected = match (up, macs) {
            (false, _) => "empty",
            (true, 0) => "idle",
            (true, _) => "occupied",
        };
        assert_eq!(seat["occupancy"], expected, "port {port}: {seat}");
        assert_eq!(seat["clients"], macs, "port {port}");
        occupied += usize::from(expected == "occupied");
        empty += usize::from(expected == "empty");
    }
    assert!(occupied > 0 && empty > 0, "the recording has both");
    // The stored readings show no single seat without the seats token, and all of them with.
    let history = |headers: &[(&str, &str)]| {
        get_as(headers, "/api/devices/switch-desks/history").unwrap()["readings"][0]["reading"]
            ["Dock"]["seats"]
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(history(&plain), Some(0));
    assert_eq!(history(&scoped), Some(4));
    // No client address reaches the gateway: the collector sends none by default.
    assert!(desks["devices"][0]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["client_mac"].is_null()));
    assert_eq!(desks["devices"][0]["kind"], "dock");
    assert_eq!(desks["devices"][0]["status"], "ok");
    assert_eq!(
        http_get_with(http, "/api/units/unknown-unit", &plain).map(|r| r.0),
        Some(404)
    );

    // An integrator sees the same figures in the retained unit documents.
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    wait_for("retained unit documents", Duration::from_secs(30), || {
        while let Ok((topic, doc)) = docs.try_recv() {
            latest.insert(topic, doc);
        }
        let ok = latest
            .get("devtel/v1/units/ba.it")
            .is_some_and(|d| d["pages"]["total"] == it["pages"]["total"])
            && latest
                .get("devtel/v1/units/jugendamt.team-2")
                .is_some_and(|d| d["pages"]["total"] == team["pages"]["total"]);
        ok.then_some(())
    });
    // The unit document links its devices; each link leads to the device's retained
    // document, which matches the recording.
    let retained = latest["devtel/v1/units/ba.it"].clone();
    let links = retained["devices"].as_array().unwrap().clone();
    assert_eq!(
        links.len(),
        DEVICES.iter().filter(|d| d.2 == "ba.it").count(),
        "{retained}"
    );
    for (recording, id, _) in DEVICES.iter().filter(|d| d.2 == "ba.it") {
        let link = links.iter().find(|l| l["device"] == *id).unwrap();
        assert_eq!(link["kind"], "copier");
        let topic = link["topic"].as_str().unwrap().to_string();
        let device = wait_for(
            "the linked device document",
            Duration::from_secs(30),
            || {
                while let Ok((topic, doc)) = docs.try_recv() {
                    latest.insert(topic, doc);
                }
                latest.get(&topic).cloned()
            },
        );
        assert_eq!(device["device"], *id);
        assert_eq!(link["status"], device["status"]);
        assert_device_matches_recording(&serde_json::json!({ "devices": [device] }), recording, id);
    }

    // Both daemons stop cleanly on SIGTERM.
    assert!(
        collector.terminate(Duration::from_secs(15)),
        "collector did not exit 0 on SIGTERM:\n{}",
        collector.log()
    );
    assert!(
        gateway.terminate(Duration::from_secs(15)),
        "gateway did not exit 0 on SIGTERM:\n{}",
        gateway.log()
    );
    broker.assert_running();
}

#[test]
fn garbage_on_the_telemetry_topic_is_rejected_and_counted_without_harm() {
    let dir = temp_dir("garbage");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_broker, broker_port) = broker(&dir);
    let (mut gateway, http) = start_gateway(&dir, broker_port);
    let dead = rt.block_on(async {
        let (client, mut eventloop) = AsyncClient::new(
            MqttOptions::new("e2e-garbage", "127.0.0.1", broker_port),
            16,
        );
        client
            .subscribe("devtel/v1/deadletter/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        while !matches!(
            eventloop.poll().await,
            Ok(Event::Incoming(Packet::SubAck(_)))
        ) {}
        let t = "devtel/v1/telemetry/s/u/d";
        client
            .publish(t, QoS::AtLeastOnce, false, vec![0xde, 0xad, 0xbe, 0xef])
            .await
            .unwrap();
        client
            .publish(t, QoS::AtLeastOnce, false, vec![7, 1, 2])
            .await
            .unwrap();
        client
            .publish(t, QoS::AtLeastOnce, false, Vec::new())
            .await
            .unwrap();
        client
            .publish(
                "devtel/v1/collectors/s",
                QoS::AtLeastOnce,
                false,
                b"not json".to_vec(),
            )
            .await
            .unwrap();
        // Every rejected message comes back, unchanged, on the dead-letter topic of its cause.
        let mut dead = Vec::new();
        let collect = async {
            while dead.len() < 4 {
                if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                    dead.push((p.topic.clone(), p.payload.to_vec()));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), collect)
            .await
            .expect("four dead letters");
        dead.sort();
        dead
    });
    assert_eq!(
        dead,
        [
            (
                "devtel/v1/deadletter/bad_status/devtel/v1/collectors/s".to_string(),
                b"not json".to_vec()
            ),
            (
                "devtel/v1/deadletter/undecodable/devtel/v1/telemetry/s/u/d".to_string(),
                vec![]
            ),
            (
                "devtel/v1/deadletter/version/devtel/v1/telemetry/s/u/d".to_string(),
                vec![7, 1, 2]
            ),
            (
                "devtel/v1/deadletter/version/devtel/v1/telemetry/s/u/d".to_string(),
                vec![0xde, 0xad, 0xbe, 0xef]
            ),
        ]
    );
    let health = wait_for("rejections counted", Duration::from_secs(10), || {
        gateway.assert_running();
        http_json(http, "/healthz").filter(|h| h["ingest"]["received"] == 4)
    });
    assert_eq!(health["ingest"]["rejected"]["version"], 2, "{health}"); // 0xde and 7 are not version 1
    assert_eq!(health["ingest"]["rejected"]["undecodable"], 1, "{health}"); // empty payload
    assert_eq!(health["ingest"]["rejected"]["bad_status"], 1, "{health}");
    assert_eq!(health["ingest"]["dead_lettered"], 4, "{health}");
    assert_eq!(health["devices"], 0);
    assert_eq!(
        http_json(http, "/api/units").unwrap(),
        serde_json::json!([])
    );
}

/// The same envelope published again after the gateway stored it (a collector resending what
/// it had no acknowledgement for, a broker redelivering after a restart) is recognised by the
/// store, applied once, and counted both in the ingest counters and in the collector's delivery
/// ledger, so that `/healthz` and `/api/collectors` tell the same story.
#[test]
fn an_envelope_published_again_after_its_commit_is_applied_once_and_counted_as_a_repeat() {
    let dir = temp_dir("repeat");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_broker, broker_port) = broker(&dir);
    let (mut gateway, http) = start_gateway(&dir, broker_port);
    let mut envelope = devtel_protocol::Envelope::new(
        "site".try_into().unwrap(),
        "replayer".try_into().unwrap(),
        7,
        41,
        1_796_000_000_000,
    );
    envelope
        .readings
        .push(devtel_protocol::Reading::NoResponse(
            devtel_protocol::NoResponse {
                device: "copier-1".try_into().unwrap(),
                unit: "ba.it".try_into().unwrap(),
                kind: devtel_protocol::DeviceKind::Copier,
                cause: devtel_protocol::NoResponseCause::Timeout,
            },
        ))
        .unwrap();
    let payload = devtel_protocol::encode_to_vec(&envelope).unwrap();
    let topic = devtel_protocol::topic::telemetry("site", "ba.it", "copier-1").unwrap();
    let (client, mut eventloop) = AsyncClient::new(
        MqttOptions::new("e2e-replayer", "127.0.0.1", broker_port),
        16,
    );
    rt.spawn(async move { while eventloop.poll().await.is_ok() {} });
    let publish = || {
        rt.block_on(client.publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone()))
            .unwrap();
    };

    publish();
    wait_for("the first copy applied", Duration::from_secs(10), || {
        gateway.assert_running();
        http_json(http, "/healthz").filter(|h| h["ingest"]["applied"] == 1)
    });
    publish();
    let health = wait_for("the second copy counted", Duration::from_secs(10), || {
        gateway.assert_running();
        http_json(http, "/healthz").filter(|h| h["ingest"]["duplicates"] == 1)
    });
    assert_eq!(health["ingest"]["applied"], 1, "{health}");
    assert_eq!(health["ingest"]["received"], 2, "{health}");
    let epochs = &http_json(http, "/api/collectors").unwrap()["replayer"]["epochs"];
    assert_eq!(epochs[0]["received"], 1, "{epochs}");
    assert_eq!(epochs[0]["repeats"], 1, "{epochs}");
    crate::delivery::assert_no_double_counting(http);
}

/// A document without what differs between two runs of the same readings: poll times,
/// sequence numbers, the availability window's poll counts and the seat hours watched (how
/// long each run polled).
fn without_run_details(mut doc: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in [
                    "updated_at_ms",
                    "last_seen_ms",
                    "seq",
                    "availability",
                    "occupied_seat_hours",
                    "watched_seat_hours",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut doc);
    doc
}

/// Wire version 5 end to end: the same recordings polled by a collector that sends compact
/// readings and by one that sends every reading in full (version 4, as for a gateway not yet
/// upgraded), each to its own broker and gateway, give the same unit and device documents.
#[test]
fn compact_readings_give_the_documents_of_full_ones() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim_dir = temp_dir("compact-sim");
    let (mut sim, sim_port) = snmpsim(&sim_dir);
    rt.block_on(wait_for_agent(&mut sim, sim_port, "ricoh_mpc3002"));
    struct Run {
        _dir: TestDir,
        _broker: Broker,
        gateway: Proc,
        collector: Proc,
        http: u16,
        metrics: u16,
    }
    let mut runs = Vec::new();
    for wire in ["compact", "full"] {
        let dir = temp_dir(&format!("compact-{wire}"));
        let (broker, broker_port) = broker(&dir);
        let http = free_tcp_port();
        let gateway = start_gateway_as(&dir, "gateway", broker_port, http, "");
        let metrics = free_tcp_port();
        let spool = dir.join("spool");
        let mut conf = format!(
            "site = \"e2e-site\"\ncollector_id = \"e2e-collector\"\nbroker = \"mqtt://127.0.0.1:{broker_port}\"\npoll_interval = \"1s\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n[delivery]\nwire = \"{wire}\"\n[spool]\ndir = \"{}\"\n[snmp]\ntimeout = \"1s\"\nretries = 2\n",
            spool.display()
        );
        conf.push_str(&copiers(sim_port));
        conf.push_str(&format!(
            "[[devices]]\nid = \"switch-desks\"\nkind = \"dock\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"procurve\"\nunit = \"ba.desks\"\n[[devices]]\nid = \"phone-1\"\nkind = \"phone\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"grandstream-ht_ht814v2\"\nunit = \"ba.it\"\n"
        ));
        let path = dir.join("collector.toml");
        fs::write(&path, conf).unwrap();
        let collector = Proc::spawn(
            "collector",
            &dir,
            Command::new(bin("devtel-collector"))
                .args(["run", "--config"])
                .arg(&path),
        );
        runs.push(Run {
            _dir: dir,
            _broker: broker,
            gateway,
            collector,
            http,
            metrics,
        });
    }
    let devices = DEVICES.len() as f64 + 2.0;
    let metric = |port: u16, name: &str| -> Option<f64> {
        let (_, body) = http_get(port, "/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    // Every device described once and then sent compact several times; the full run as many
    // readings.
    wait_for(
        "compact readings acknowledged",
        Duration::from_secs(90),
        || {
            for r in &mut runs {
                r.collector.assert_running();
                r.gateway.assert_running();
            }
            let compact = metric(runs[0].metrics, "devtel_collector_published_compact_total")?;
            let acked = |r: &Run| metric(r.metrics, "devtel_collector_acknowledged_total");
            (compact >= 3.0 * devices
                && acked(&runs[0])? >= 5.0 * devices
                && acked(&runs[1])? >= 5.0 * devices)
                .then_some(())
        },
    );
    // What went over the wire.
    let wire = |r: &Run| -> [f64; 4] {
        [
            "devtel_collector_published_described_total",
            "devtel_collector_published_compact_total",
            "devtel_collector_published_bytes_total",
            "devtel_collector_lost_total",
        ]
        .map(|name| metric(r.metrics, name).unwrap_or_else(|| panic!("{name}")))
    };
    let (on_compact, on_full) = (wire(&runs[0]), wire(&runs[1]));
    for r in &mut runs {
        assert!(
            r.collector.terminate(Duration::from_secs(15)),
            "collector did not exit 0:\n{}",
            r.collector.log()
        );
    }
    let (compact, full) = (&runs[0], &runs[1]);
    assert_eq!((on_compact[3], on_full[3]), (0.0, 0.0), "nothing lost");
    assert_eq!(on_full[1], 0.0, "wire = \"full\" sends nothing compact");
    let per_reading = |w: [f64; 4]| w[2] / (w[0] + w[1]);
    assert!(
        per_reading(on_compact) * 3.0 < per_reading(on_full),
        "bytes per reading: compact run {:.0}, full run {:.0}",
        per_reading(on_compact),
        per_reading(on_full)
    );
    // The gateways hold the same figures.
    let units = |r: &Run| http_json(r.http, "/api/units").unwrap();
    let ids: Vec<String> = units(full)
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unit"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["ba.desks", "ba.it", "jugendamt.team-2"]);
    assert_eq!(
        without_run_details(units(compact)),
        without_run_details(units(full))
    );
    for unit in &ids {
        let path = format!("/api/units/{unit}");
        let (a, b) = (
            http_json(compact.http, &path).unwrap(),
            http_json(full.http, &path).unwrap(),
        );
        assert!(a["devices_total"].as_u64().unwrap() >= 1, "{a}");
        assert_eq!(without_run_details(a), without_run_details(b), "{unit}");
    }
    let devices_doc = |r: &Run| without_run_details(http_json(r.http, "/api/devices").unwrap());
    assert_eq!(devices_doc(compact), devices_doc(full));
    // The compact run sent compact readings and no gateway refused one; the full run none.
    let gateway_metric = |r: &Run, name: &str| -> f64 {
        let (status, body) = http_get(r.http, "/metrics").unwrap();
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in\n{body}"))
    };
    assert_eq!(
        gateway_metric(
            compact,
            "devtel_gateway_rejected_total{cause=\"undescribed\"}"
        ),
        0.0
    );
}
