use std::sync::Arc;
use std::time::Duration;

use devtel_collector::sim::{self, Agents};
use devtel_collector::snmp::client::{Client, Options, Target, Version};
use devtel_collector::snmp::VarbindSet;
use devtel_devices::copier;
use tokio_util::sync::CancellationToken;

use crate::util::*;

/// What the collector fetches for a printer, from one agent.
async fn fetch(port: u16, community: &str, version: Version) -> VarbindSet {
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        version,
        community: community.into(),
        usm: None,
    };
    let opts = Options {
        timeout: Duration::from_secs(2),
        retries: 1,
        ..Options::default()
    };
    let mut client = Client::new(target, opts).await.unwrap();
    let plan = copier::plan();
    let mut vb = VarbindSet::new();
    client
        .get(&plan.get, &mut vb)
        .await
        .unwrap_or_else(|e| panic!("{community}: {e}"));
    for root in &plan.walk {
        client
            .walk(root, &mut vb)
            .await
            .unwrap_or_else(|e| panic!("{community} {root}: {e}"));
    }
    vb
}

/// devtel's own simulator is a stand-in for snmpsim: for every recording, the collector fetches
/// exactly the same varbinds from both, over v2c (GetBulk) and, from ours, over v1 (GetNext).
#[test]
fn own_simulator_answers_like_snmpsim_for_every_recording() {
    let dir = temp_dir("simulator");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut snmpsim_proc, snmpsim_port) = snmpsim(&dir);
    rt.block_on(async {
        wait_for_agent(&mut snmpsim_proc, snmpsim_port, "ricoh_mpc3002").await;
        let agents = Arc::new(Agents::load(&corpus().join("snmprec")).unwrap());
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let stop = CancellationToken::new();
        tokio::spawn(sim::serve(socket, agents.clone(), stop.clone()));

        let mut names: Vec<String> = std::fs::read_dir(corpus().join("snmprec"))
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".snmprec")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        assert!(names.len() >= 30, "corpus has {} recordings", names.len());
        let mut compared = 0;
        for name in &names {
            // snmpsim stops serving this recording at its corrupt line 23 (a known defect that
            // devtel's reader skips), so the two legitimately differ.
            if name == "okilan_9450g" {
                continue;
            }
            let theirs = fetch(snmpsim_port, name, Version::V2c).await;
            let ours = fetch(port, name, Version::V2c).await;
            assert_eq!(ours, theirs, "{name}: v2c answers differ");
            let ours_v1 = fetch(port, name, Version::V1).await;
            assert_eq!(ours_v1, theirs, "{name}: v1 answers differ");
            compared += usize::from(!theirs.is_empty());
        }
        assert!(compared >= 25, "only {compared} recordings returned data");
        stop.cancel();
    });
}

/// `probe --json` against recordings served by devtel's own simulator: the stable fields and
/// their values, read independently from the raw recording lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_json_reports_the_recorded_values() {
    let dir = temp_dir("probe-json");
    let (_sim, port) = own_simulator(&dir).await;
    let probe = |community: &str| {
        let out = std::process::Command::new(bin("devtel-collector"))
            .args([
                "probe",
                "-c",
                community,
                "-p",
                &port.to_string(),
                "--json",
                "127.0.0.1",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let j = probe("sharp");
    assert_eq!(j["kind"], "copier");
    assert_eq!(j["vendor"], "Sharp");
    assert_eq!(
        j["serial"],
        recorded("sharp", "1.3.6.1.2.1.43.5.1.1.17.1").unwrap()
    );
    let life: u64 = recorded("sharp", "1.3.6.1.2.1.43.10.2.1.4.1.1")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(j["counters"]["total"], life);
    let raw = |o: &str| -> u64 { recorded("sharp", o).unwrap().parse().unwrap() };
    assert_eq!(
        j["counters"]["mono"],
        raw("1.3.6.1.4.1.2385.1.1.19.2.1.3.5.4.61")
    );
    assert_eq!(
        j["counters"]["copy"],
        raw("1.3.6.1.4.1.2385.1.1.19.2.1.3.4.4.60")
    );
    assert_eq!(j["conditions"], serde_json::json!(["lowToner"]));
    let supplies = j["supplies"].as_array().unwrap();
    let indexes: Vec<u64> = supplies
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, recorded_supply_indexes("sharp"), "table order");
    for s in supplies {
        let i = s["index"].as_u64().unwrap();
        let level: i64 = recorded("sharp", &format!("1.3.6.1.2.1.43.11.1.1.9.1.{i}"))
            .unwrap()
            .parse()
            .unwrap();
        let max: i64 = recorded("sharp", &format!("1.3.6.1.2.1.43.11.1.1.8.1.{i}"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(s["level"], level, "supply {i}");
        assert_eq!(s["max_capacity"], max, "supply {i}");
        if level >= 0 && max > 0 {
            assert_eq!(
                s["level_percent"],
                (level * 100 / max).min(100),
                "supply {i}"
            );
        } else {
            assert!(
                s["level_percent"].is_null(),
                "supply {i}: no percent without numbers"
            );
        }
        for key in ["description", "kind", "colour", "state"] {
            assert!(s.get(key).is_some(), "supply {i}: {key}");
        }
    }
    // An analogue adapter: kind phone, one line per FXS port, registration as recorded.
    let ata = probe("grandstream-ht_ht802");
    assert_eq!(ata["kind"], "phone");
    assert_eq!(ata["vendor"], "Grandstream");
    let reg = |port: u32| {
        let raw = recorded(
            "grandstream-ht_ht802",
            &format!("1.3.6.1.4.1.42397.1.2.2.2.{port}.0"),
        )
        .unwrap();
        // Plain or hex-encoded in the recording ("4e6f74..." is "Not Registered").
        if raw == "Registered" {
            "registered"
        } else {
            "not_registered"
        }
    };
    let lines = ata["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["registration"], reg(1));
    assert_eq!(lines[1]["registration"], reg(2));
    assert_eq!(ata["status"], "warning");
    // An HP Jetdirect print server that shows its supplies only in SNMP context "Jetdirect"
    // (recorded as `jetdirect_supplies_context@Jetdirect`): found without configuration.
    let hp = probe("jetdirect_supplies_context");
    assert_eq!(hp["kind"], "copier");
    let supplies = hp["supplies"].as_array().unwrap();
    assert_eq!(supplies.len(), 4, "{hp}");
    for s in supplies {
        let i = s["index"].as_u64().unwrap();
        let level: i64 = recorded(
            "jetdirect_supplies_context@Jetdirect",
            &format!("1.3.6.1.2.1.43.11.1.1.9.1.{i}"),
        )
        .unwrap()
        .parse()
        .unwrap();
        assert_eq!(s["level"], level, "supply {i}");
    }

    // An access switch: dock seats. Port 44 carries the recorded Polycom phone (LLDP); its
    // MAC is learned on the port but is not counted as a docked laptop.
    let sw = probe("procurve");
    assert_eq!(sw["kind"], "dock");
    assert_eq!(sw["vendor"], "HP");
    let seats = sw["seats"].as_array().unwrap();
    let p44 = seats.iter().find(|s| s["if_index"] == 44).unwrap();
    assert_eq!(
        p44["phone"]["model"],
        recorded("procurve", "1.0.8802.1.1.2.1.4.1.1.10.0.44.2").unwrap()
    );
    assert_eq!(p44["clients"], 0);
    assert_eq!(
        p44["label"],
        recorded("procurve", "1.3.6.1.2.1.31.1.1.1.18.44").unwrap()
    );
    let tally = &sw["occupancy"];
    let count = |o: &str| seats.iter().filter(|s| s["occupancy"] == o).count();
    assert_eq!(tally["occupied"], count("occupied"));
    assert_eq!(tally["empty"], count("empty"));
    assert!(count("occupied") > 0);
}

/// `discover` sweeps a range, classifies what answers like `probe`, prints plain progress lines
/// when stderr is no terminal, and a snippet that is a valid collector config.
#[tokio::test]
async fn discover_sweeps_a_range_and_writes_a_valid_config_snippet() {
    let dir = temp_dir("discover");
    let (_sim, port) = own_simulator(&dir).await;
    let discover = |community: &str| {
        let out = std::process::Command::new(bin("devtel-collector"))
            .args([
                "discover",
                "127.0.0.0/30",
                "-p",
                &port.to_string(),
                "--timeout",
                "300ms",
                "--unit",
                "ba.it",
            ])
            // From the environment: a command line shows in the process list.
            .env("DEVTEL_SNMP_COMMUNITY", community)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (snippet, progress) = discover("sharp");
    let serial = recorded("sharp", "1.3.6.1.2.1.43.5.1.1.17.1").unwrap();
    assert!(
        progress.contains("127.0.0.1: copier Sharp") && progress.contains(&serial),
        "{progress}"
    );
    assert!(
        progress.contains("2 addresses swept, 1 answered"),
        "{progress}"
    );
    assert!(snippet.contains("kind = \"copier\""), "{snippet}");
    // The snippet names where the community comes from, never the community itself.
    assert!(
        snippet.contains("community = \"env:DEVTEL_SNMP_COMMUNITY\""),
        "{snippet}"
    );
    assert!(!snippet.contains("\"sharp\""), "{snippet}");
    // The snippet is a valid config once a site is named (and the variable set).
    let conf = dir.join("discovered.toml");
    std::fs::write(&conf, format!("site = \"s\"\n{snippet}")).unwrap();
    let check = std::process::Command::new(bin("devtel-collector"))
        .args(["check-config", "--config"])
        .arg(&conf)
        .env("DEVTEL_SNMP_COMMUNITY", "sharp")
        .output()
        .unwrap();
    assert!(
        check.status.success() && String::from_utf8_lossy(&check.stdout).contains("ok (1 devices;"),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // A switch becomes a dock entry.
    let (snippet, _) = discover("procurve");
    assert!(snippet.contains("kind = \"dock\""), "{snippet}");

    // Bad ranges are usage errors.
    let out = std::process::Command::new(bin("devtel-collector"))
        .args(["discover", "10.0.0.0/8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("65536"));
}

/// `--log-format json`: every log line is one JSON object with a timestamp, a level, a target
/// and the message among its fields (for journald, Loki, Elasticsearch).
#[test]
fn log_lines_are_json_objects_with_log_format_json() {
    let dir = temp_dir("json-logs");
    let port = free_udp_port();
    let mut sim = Proc::spawn(
        "simulator",
        &dir,
        std::process::Command::new(bin("devtel-collector"))
            .args(["--log-format", "json", "simulate", "--recordings"])
            .arg(corpus().join("snmprec"))
            .args(["--listen", &format!("127.0.0.1:{port}")]),
    );
    wait_for(
        "the simulator's start line",
        Duration::from_secs(10),
        || {
            sim.assert_running();
            sim.log().contains("simulator answering").then_some(())
        },
    );
    assert!(sim.terminate(Duration::from_secs(10)), "{}", sim.log());
    let log = sim.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{log}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "target"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"agents\"")),
        "structured fields: {log}"
    );
}
