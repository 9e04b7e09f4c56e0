//! The gateway's figures survive crashes exactly: one gateway is SIGKILLed at random points
//! while a collector streams through Mosquitto, and ends with the same documents as a second
//! gateway on the same broker that ran without interruption.
//!
//! Both gateways have persistent MQTT sessions with manual acknowledgements, so the broker
//! redelivers whatever the killed one had received but not committed; its store turns
//! redeliveries of committed envelopes into counted duplicates.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::util::*;

/// (recording, device id, kind, unit). `ba.archive` is not configured: unassigned.
const DEVICES: &[(&str, &str, &str, &str)] = &[
    ("epson", "epson-1", "copier", "ba.it"),
    ("samsungprinter_m4080fx", "samsung-1", "copier", "ba.it"),
    ("lexmarkprinter", "lexmark-1", "copier", "ba.fb2.bsz"),
    ("sharp", "sharp-1", "copier", "ba.fb2.bsz"),
    ("konica_c250i", "konica-1", "copier", "ba.archive"),
    ("grandstream-ht_ht802", "ata-1", "phone", "ba.fb2.bsz"),
    ("tplink_sg2008", "desks-1", "dock", "ba.fb2"),
];

pub(crate) const UNITS: &str = "[aggregation]\ntimezone = \"Europe/Berlin\"\nworking_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nworking_hours_start = \"00:00\"\nworking_hours_end = \"24:00\"\nsla_target_percent = 99.9\n\
[[units]]\nid = \"ba\"\nname = \"Bezirksamt\"\n\
[[units]]\nid = \"ba.it\"\nparent = \"ba\"\ncost_centre = \"9100\"\n\
[[units]]\nid = \"ba.fb2\"\nparent = \"ba\"\n\
[[units]]\nid = \"ba.fb2.bsz\"\nparent = \"ba.fb2\"\ncost_centre = \"2100\"\n";

/// A small xorshift generator; the seed is printed so a failing run can be repeated with
/// `DEVTEL_TEST_SEED`.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Rng {
        let seed = std::env::var("DEVTEL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64
                    | 1
            });
        eprintln!("DEVTEL_TEST_SEED={seed}");
        Rng(seed)
    }

    pub(crate) fn millis(&mut self, range: std::ops::Range<u64>) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(range.start + self.0 % (range.end - range.start))
    }
}

pub(crate) fn collector_conf(
    dir: &std::path::Path,
    broker: u16,
    sim_port: u16,
) -> std::path::PathBuf {
    let mut conf = format!(
        "site = \"durable-site\"\ncollector_id = \"durable\"\nbroker = \"mqtt://127.0.0.1:{broker}\"\npoll_interval = \"1s\"\n[mqtt]\nreconnect_max = \"2s\"\n[spool]\ndir = \"{}\"\n[snmp]\ntimeout = \"1s\"\nretries = 1\n",
        dir.join("spool").display()
    );
    for (recording, id, kind, unit) in DEVICES {
        conf.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nkind = \"{kind}\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"{recording}\"\nunit = \"{unit}\"\n"
        ));
        if *kind == "dock" {
            conf.push_str("seats = [\"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\"]\n");
        }
    }
    let path = dir.join("collector.toml");
    std::fs::write(&path, conf).unwrap();
    path
}

/// Everything a user or integrator reads from a gateway, for comparison.
pub(crate) fn documents(http: u16) -> Value {
    let mut out = serde_json::Map::new();
    for path in ["/api/units", "/api/devices"] {
        out.insert(path.into(), http_json(http, path).unwrap());
    }
    for unit in ["ba", "ba.it", "ba.fb2", "ba.fb2.bsz", "unassigned"] {
        let path = format!("/api/consumption?unit={unit}&by=day");
        out.insert(path.clone(), http_json(http, &path).unwrap());
    }
    for (_, id, _, _) in DEVICES {
        let path = format!("/api/devices/{id}/history?limit=10000");
        let mut h = http_json(http, &path).unwrap();
        // Delivery metadata differs by design, and so does what the raw retention left of
        // the readings (compared on their own); the day figures must not.
        let polls: Vec<Value> = h["readings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["timestamp_ms"].clone())
            .collect();
        h["readings"] = Value::from(polls);
        for held in [
            "readings_held_from_ms",
            "readings_pruned_before_received_ms",
        ] {
            h.as_object_mut().unwrap().remove(held);
        }
        out.insert(path, h);
    }
    Value::Object(out)
}

/// Stops the collector; returns how many envelopes it produced, as its last status (read
/// through the gateway at `http`) says.
pub(crate) fn stop_collector(collector: &mut Proc, http: u16) -> u64 {
    assert!(
        collector.terminate(Duration::from_secs(15)),
        "{}",
        collector.log()
    );
    let status = wait_for(
        "the collector's final status",
        Duration::from_secs(10),
        || {
            let all = http_json(http, "/api/collectors")?;
            let s = all.get("durable")?.get("status")?.clone();
            (s["state"] == "offline").then_some(s)
        },
    );
    status["counters"]["spooled"]
        .as_u64()
        .unwrap_or_else(|| panic!("no spooled count: {status}"))
}

/// Waits (60 s at most) until the gateway `name` at `http` holds all `spooled` envelopes of
/// the collector's epoch, none missing; else fails with what it holds and its health.
pub(crate) fn wait_all_held(name: &str, http: u16, spooled: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = epoch_received(http);
        if held == Some((spooled, 0)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} holds (received, missing) {held:?} of {spooled}: {}\n{}",
            http_json(http, "/healthz").unwrap_or_default(),
            http_json(http, "/api/collectors").unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn epoch_received(http: u16) -> Option<(u64, u64)> {
    let all = http_json(http, "/api/collectors")?;
    let e = all.get("durable")?["epochs"].as_array()?.first()?.clone();
    Some((e["received"].as_u64()?, e["missing"].as_u64()?))
}

#[test]
fn a_gateway_killed_at_random_points_ends_with_the_figures_of_one_that_was_not() {
    let dir = temp_dir("durability");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_tcp_port();
    let _broker = persistent_mosquitto(&dir, port);
    // Counter32 values (page counters) grow 3 per second: pages are being printed.
    let (_sim, sim_port) = rt.block_on(own_simulator_with(&dir, &["--advance-counters", "3"]));

    let (http_ref, http_kill) = (free_tcp_port(), free_tcp_port());
    let reference = start_gateway_as(&dir, "gw-reference", port, http_ref, UNITS);
    // The victim snapshots its figures about once a second (7 devices poll every second), so
    // kills land before, between and during snapshots, and most restarts restore one and
    // replay the envelopes after it; the reference never snapshots while it runs.
    // Its raw retention deletes what it received more than 6 s before (after the backup
    // below, before most kills), in steps at every start and every 6 s.
    let victim_conf =
        format!("snapshot_every = 7\nsnapshot_interval = \"1s\"\nraw_retention = \"6s\"\n{UNITS}");
    let mut victim = start_gateway_as(&dir, "gw-victim", port, http_kill, &victim_conf);

    let conf = collector_conf(&dir, port, sim_port);
    let mut collector = Proc::spawn(
        "collector",
        &dir,
        Command::new(bin("devtel-collector"))
            .args(["run", "--config"])
            .arg(&conf),
    );

    // Kill the victim at random points while the collector streams. Every other round it
    // instead aborts itself right after a commit and before acknowledging it (a failpoint),
    // so the broker must redeliver what is already stored.
    // An online backup of the victim's store while the collector streams and the victim
    // snapshots: checked at the end.
    wait_for(
        "the victim's first snapshot",
        Duration::from_secs(30),
        || {
            victim.assert_running();
            http_get(http_kill, "/metrics")
                .filter(|(_, m)| m.contains("devtel_gateway_snapshot_age_seconds"))
        },
    );
    let backup = dir.join("backup.sqlite");
    let out = Command::new(bin("devtel-gateway"))
        .args(["backup", "--config"])
        .arg(dir.join("gw-victim.toml"))
        .arg(&backup)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("integrity ok"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut rng = Rng::new();
    let started = Instant::now();
    let (mut kills, mut aborts, mut redelivered) = (0, 0, 0);
    // Rounds: SIGKILL at a random point; abort right after a commit, before its
    // acknowledgement (the broker must redeliver what is stored); abort inside a retention
    // step and inside a snapshot, before their transactions commit.
    while started.elapsed() < Duration::from_secs(20) || kills + aborts < 6 {
        let round = kills + aborts;
        if round % 2 == 1 {
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
            let n = rng.millis(1..4).as_millis().to_string();
            let (env, value, said) = match round % 6 {
                1 => (
                    "DEVTEL_FAILPOINT_ABORT_AFTER_COMMITS",
                    n,
                    "aborting after the commit",
                ),
                3 => (
                    "DEVTEL_FAILPOINT_ABORT_IN",
                    "prune:1".to_string(),
                    "prune:1: aborting before the commit",
                ),
                _ => (
                    "DEVTEL_FAILPOINT_ABORT_IN",
                    format!("snapshot:{n}"),
                    "aborting before the commit",
                ),
            };
            // Same config as before (written by start_gateway_as), plus the failpoint.
            victim = Proc::spawn(
                "gw-victim",
                &dir,
                Command::new(bin("devtel-gateway"))
                    .args(["run", "--config"])
                    .arg(dir.join("gw-victim.toml"))
                    .env(env, &value),
            );
            let exited = wait_for(
                &format!("the failpoint abort {env}={value}"),
                Duration::from_secs(30),
                || victim.child.try_wait().unwrap(),
            );
            assert!(!exited.success(), "{}", victim.log());
            assert!(victim.log().contains(said), "{}", victim.log());
            aborts += 1;
            victim = start_gateway_as(&dir, "gw-victim", port, http_kill, &victim_conf);
            if round % 6 == 1 {
                // The unacknowledged batch comes again and is recognised as stored.
                let dups = wait_for("the redelivery", Duration::from_secs(20), || {
                    let h = http_json(http_kill, "/healthz")?;
                    let d = h["ingest"]["duplicates"].as_u64()?;
                    (d > 0).then_some(d)
                });
                redelivered += dups;
            }
        } else {
            std::thread::sleep(rng.millis(700..3_000));
            collector.assert_running();
            victim.assert_running();
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
            kills += 1;
            std::thread::sleep(rng.millis(0..1_500));
            victim = start_gateway_as(&dir, "gw-victim", port, http_kill, &victim_conf);
        }
    }
    eprintln!(
        "{kills} SIGKILLs, {aborts} aborts after commit, {redelivered} stored readings redelivered"
    );
    assert!(
        victim.log().contains("figures restored from a snapshot"),
        "the last restart restored a snapshot: {}",
        victim.log()
    );
    let spooled = stop_collector(&mut collector, http_ref);
    assert!(spooled >= 7 * 15, "{spooled} envelopes");
    for (name, http) in [("reference", http_ref), ("victim", http_kill)] {
        wait_all_held(name, http, spooled);
    }
    // Let both publish their last documents and settle.
    std::thread::sleep(Duration::from_millis(1_500));

    let mut want = documents(http_ref);
    let mut got = documents(http_kill);
    // The victim's raw retention deleted its oldest readings: what it holds of each device is
    // the newest part of what the reference holds, and a part of it only.
    for (_, id, _, _) in DEVICES {
        let path = format!("/api/devices/{id}/history?limit=10000");
        let all = want[&path]["readings"].take();
        let held = got[&path]["readings"].take();
        let (all, held) = (all.as_array().unwrap(), held.as_array().unwrap());
        assert!(
            !held.is_empty() && held.len() < all.len() && all.ends_with(held),
            "{id}: the victim holds the newest {} of {} readings",
            held.len(),
            all.len()
        );
    }
    if want != got {
        for (k, v) in want.as_object().unwrap() {
            if got.get(k) != Some(v) {
                panic!(
                    "{k} differs after {kills} kills and {aborts} aborts\nreference: {v}\nvictim:    {}",
                    got.get(k).unwrap_or(&Value::Null)
                );
            }
        }
        panic!("documents differ");
    }

    // The figures are real, not empty: pages were printed, and everything rolls up.
    let units = &want["/api/units"];
    let unit = |id: &str| {
        units
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["unit"] == id)
            .unwrap_or_else(|| panic!("no unit {id} in {units}"))
            .clone()
    };
    let ba = unit("ba");
    assert_eq!(ba["devices_total"], 6, "{ba}");
    assert_eq!(unit("unassigned")["devices_total"], 1);
    let it_pages = unit("ba.it")["pages"]["today"]["total"].as_i64().unwrap();
    let bsz_pages = unit("ba.fb2.bsz")["pages"]["today"]["total"]
        .as_i64()
        .unwrap();
    assert!(
        it_pages > 0,
        "the simulator's counters advance: {}",
        unit("ba.it")
    );
    assert_eq!(
        ba["pages"]["today"]["total"].as_i64().unwrap(),
        it_pages + bsz_pages,
        "ba = ba.it + ba.fb2 (whose only copiers are in ba.fb2.bsz)"
    );
    let polls = ba["availability"]["polls"].as_i64().unwrap();
    let unassigned_polls = unit("unassigned")["availability"]["polls"]
        .as_i64()
        .unwrap();
    assert_eq!(
        (polls + unassigned_polls) as u64,
        spooled,
        "every envelope is one poll, counted exactly once"
    );

    // The last victim was rebuilt from its store: it knows every device.
    let metrics = http_get(http_kill, "/metrics").unwrap().1;
    assert!(
        metrics.lines().any(|l| l == "devtel_gateway_devices 7"),
        "{metrics}"
    );
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert!(
        gauge("devtel_gateway_store_bytes").is_some_and(|b| b > 100_000.0),
        "{metrics}"
    );
    assert!(
        gauge("devtel_gateway_snapshot_age_seconds").is_some_and(|a| (0.0..300.0).contains(&a)),
        "{metrics}"
    );
    assert!(
        gauge("devtel_gateway_snapshot_through_envelope").is_some_and(|t| t > 0.0),
        "{metrics}"
    );
    assert!(redelivered > 0);
    let pruned = gauge("devtel_gateway_raw_pruned_envelopes_total").unwrap_or(0.0);
    assert!(
        pruned > 0.0 && pruned < spooled as f64,
        "{pruned} of {spooled}: {metrics}"
    );
    let held_from = gauge("devtel_gateway_raw_retained_from_timestamp_seconds").unwrap_or(0.0);
    let reference_metrics = http_get(http_ref, "/metrics").unwrap().1;
    let first_poll = reference_metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("devtel_gateway_raw_retained_from_timestamp_seconds ")?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(f64::MAX);
    assert!(
        held_from > first_poll,
        "the victim holds readings from {held_from}, the reference from {first_poll}"
    );
    drop(reference);
    drop(victim);

    // The backup restores: a gateway on it (from its snapshot and the envelopes after it)
    // serves the documents of a gateway on a second copy without snapshots (replaying every
    // envelope), so the snapshot and the envelopes in the copy are of one moment.
    // (start_gateway_as keeps `{name}.sqlite` in `dir`.)
    std::fs::copy(&backup, dir.join("gw-backup.sqlite")).unwrap();
    let full = dir.join("gw-backup-full.sqlite");
    std::fs::copy(&backup, &full).unwrap();
    let conn = rusqlite::Connection::open(&full).unwrap();
    let dropped = conn.execute("DELETE FROM snapshots", []).unwrap();
    assert!(dropped > 0, "the backup holds the victim's snapshots");
    drop(conn);
    let (http_b, http_c) = (free_tcp_port(), free_tcp_port());
    let on_backup = start_gateway_as(&dir, "gw-backup", port, http_b, UNITS);
    let on_full = start_gateway_as(&dir, "gw-backup-full", port, http_c, UNITS);
    for http in [http_b, http_c] {
        wait_for("a gateway on the backup", Duration::from_secs(30), || {
            http_json(http, "/api/units").filter(|u| u.as_array().is_some_and(|a| !a.is_empty()))
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let (b, c) = (documents(http_b), documents(http_c));
    assert_eq!(b, c, "snapshot + tail of the backup = full replay of it");
    assert!(
        on_backup.log().contains("figures restored from a snapshot"),
        "{}",
        on_backup.log()
    );
    drop((on_backup, on_full));
}
