//! High availability end to end: two gateway replicas share one PostgreSQL (a real server in a
//! temporary folder) and one shared subscription on a real Mosquitto, while a collector
//! streams recorded devices. Each replica is SIGKILLed at random points and restarted, and
//! PostgreSQL is stopped for 30 s. At the end both replicas serve the documents of a single
//! SQLite gateway that ran without interruption on the same readings, no collector epoch
//! misses anything, and at no moment did two replicas publish.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::durability::{collector_conf, documents, stop_collector, wait_all_held, Rng, UNITS};
use crate::util::*;
use devtel_gateway::pg_harness::TempPostgres;

const GROUP: &str = "devtel";

/// Replica `name` on `url`, in the group, snapshotting about once a second (so that kills
/// land before, between and during snapshots); waits until it has subscribed.
fn start_replica(dir: &std::path::Path, name: &str, broker: u16, http: u16, url: &str) -> Proc {
    let conf = dir.join(format!("{name}.toml"));
    std::fs::write(
        &conf,
        format!(
            "broker = \"mqtt://127.0.0.1:{broker}\"\nclient_id = \"{name}\"\nhttp_listen = \"127.0.0.1:{http}\"\n\
             [store]\nurl = \"{url}\"\nsnapshot_every = 7\nsnapshot_interval = \"1s\"\n{UNITS}\n[cluster]\ngroup = \"{GROUP}\"\n"
        ),
    )
    .unwrap();
    let mut gw = Proc::spawn(
        name,
        dir,
        Command::new(bin("devtel-gateway"))
            .args(["run", "--config"])
            .arg(&conf),
    );
    wait_for(
        &format!("{name} subscribed"),
        Duration::from_secs(30),
        || {
            gw.assert_running();
            let up = http_json(http, "/healthz").filter(|h| h["mqtt_connected"] == true);
            up.filter(|_| gw.log().contains("subscribed"))
        },
    );
    gw
}

fn role(http: u16) -> Option<String> {
    let h = http_json(http, "/healthz")?;
    Some(h["replica"]["role"].as_str()?.to_string())
}

#[test]
fn replicas_killed_at_random_points_and_a_stopped_store_end_with_the_figures_of_one_gateway() {
    let dir = temp_dir("replicas");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut pg = TempPostgres::start();
    rt.block_on(pg.database("devtel"));
    let url = pg.url("devtel");
    let port = free_tcp_port();
    // The reference gateway logs in as `observer`, which may read but not publish: its
    // acknowledgements never reach the collector, so only the replicas' acks count and
    // whatever the replica group misses is sent again, as it would be without the reference.
    let acl = dir.join("mosquitto.acl");
    std::fs::write(&acl, "topic readwrite #\nuser observer\ntopic read #\n").unwrap();
    let db = dir.join("mosquitto-db");
    std::fs::create_dir_all(&db).unwrap();
    let _broker = mosquitto_with(
        &dir,
        "mosquitto",
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {}\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n",
            acl.display(),
            db.display()
        ),
        port,
    );
    // Counter32 values (page counters) grow 3 per second: pages are being printed.
    let (_sim, sim_port) = rt.block_on(own_simulator_with(&dir, &["--advance-counters", "3"]));

    let http_ref = free_tcp_port();
    let reference = start_gateway_full(
        &dir,
        "gw-reference",
        port,
        http_ref,
        "[mqtt]\nusername = \"observer\"\n",
        UNITS,
        &[],
    );
    let names = ["gw-a", "gw-b"];
    let https = [free_tcp_port(), free_tcp_port()];
    let mut replicas = [
        start_replica(&dir, names[0], port, https[0], &url),
        start_replica(&dir, names[1], port, https[1], &url),
    ];
    let conf = collector_conf(&dir, port, sim_port);
    let mut collector = Proc::spawn(
        "collector",
        &dir,
        Command::new(bin("devtel-collector"))
            .args(["run", "--config"])
            .arg(&conf),
    );

    // Who publishes, sampled every 50 ms: never both.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = std::thread::spawn({
        let watching = watching.clone();
        move || {
            let mut changes = Vec::new();
            let mut last: Option<usize> = None;
            while watching.load(Ordering::Relaxed) {
                let roles = https.map(role);
                let publishers: Vec<usize> = (0..2)
                    .filter(|&i| roles[i].as_deref() == Some("publisher"))
                    .collect();
                assert!(publishers.len() <= 1, "two publishers at once: {roles:?}");
                if let Some(&p) = publishers.first() {
                    if last != Some(p) {
                        changes.push((Instant::now(), p));
                        last = Some(p);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            changes
        }
    });
    wait_for("a publisher", Duration::from_secs(20), || {
        https
            .iter()
            .any(|&h| role(h).as_deref() == Some("publisher"))
            .then_some(())
    });

    // SIGKILL each replica in turn at random points, restarting it after a random pause.
    let mut rng = Rng::new();
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(20) || kills < 6 {
        std::thread::sleep(rng.millis(700..3_000));
        collector.assert_running();
        let i = kills % 2;
        replicas[1 - i].assert_running();
        replicas[i].child.kill().unwrap();
        replicas[i].child.wait().unwrap();
        eprintln!("{} killed after {:?}", names[i], started.elapsed());
        kills += 1;
        std::thread::sleep(rng.millis(0..1_500));
        replicas[i] = start_replica(&dir, names[i], port, https[i], &url);
    }
    eprintln!("{kills} SIGKILLs of replicas");

    // The store stops for 30 s while the collector streams: the replicas stop
    // acknowledging (the collector spools), keep serving, and resume by themselves.
    let committed =
        |http: u16| http_json(http, "/healthz").and_then(|h| h["ingest"]["commits"].as_u64());
    pg.stop();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    for (i, replica) in replicas.iter_mut().enumerate() {
        replica.assert_running();
        let h = http_json(https[i], "/healthz").expect("a replica answers while the store is down");
        assert_eq!(
            h["replica"]["role"], "follower",
            "no publisher without the store: {h}"
        );
    }
    let before: Vec<u64> = https.iter().map(|&h| committed(h).unwrap()).collect();
    pg.restart();
    eprintln!("PostgreSQL stopped for {:?}", stopped.elapsed());
    for (i, &http) in https.iter().enumerate() {
        wait_for(
            &format!("{} committing again", names[i]),
            Duration::from_secs(30),
            || committed(http).filter(|&c| c > before[i]),
        );
    }
    wait_for("a publisher again", Duration::from_secs(30), || {
        https
            .iter()
            .any(|&h| role(h).as_deref() == Some("publisher"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let spooled = stop_collector(&mut collector, http_ref);
    assert!(spooled >= 7 * 40, "{spooled} envelopes");
    for (name, http) in [
        ("reference", http_ref),
        (names[0], https[0]),
        (names[1], https[1]),
    ] {
        wait_all_held(name, http, spooled);
    }
    // Let the publisher publish its last documents and both settle.
    std::thread::sleep(Duration::from_millis(1_500));
    let want = documents(http_ref);
    for (i, &http) in https.iter().enumerate() {
        let got = documents(http);
        if want != got {
            for (k, v) in want.as_object().unwrap() {
                assert_eq!(
                    got.get(k),
                    Some(v),
                    "{k} differs on {} after {kills} kills",
                    names[i]
                );
            }
            panic!("documents differ on {}", names[i]);
        }
    }
    // The figures are real: pages were printed, every envelope is one poll counted once.
    let units = want["/api/units"].as_array().unwrap().clone();
    let unit = |id: &str| {
        units
            .iter()
            .find(|u| u["unit"] == id)
            .unwrap_or_else(|| panic!("no unit {id}"))
            .clone()
    };
    assert!(unit("ba.it")["pages"]["today"]["total"].as_i64().unwrap() > 0);
    let polls = unit("ba")["availability"]["polls"].as_i64().unwrap()
        + unit("unassigned")["availability"]["polls"]
            .as_i64()
            .unwrap();
    assert_eq!(polls as u64, spooled, "every envelope counted exactly once");

    // Both replicas took part: each committed envelopes and applied the other's.
    for (i, &http) in https.iter().enumerate() {
        let h = http_json(http, "/healthz").unwrap();
        let r = &h["replica"];
        assert_eq!(r["group"], GROUP, "{h}");
        assert!(r["followed_envelopes"].as_u64().unwrap() > 0, "{h}");
        assert_eq!(r["cursor_lag"], 0, "{h}");
        let metrics = http_get(http, "/metrics").unwrap().1;
        assert!(
            metrics.contains(&format!(
                "devtel_gateway_replica_cursor_lag_envelopes{{replica=\"{}\",group=\"{GROUP}\"}} 0",
                names[i]
            )),
            "{metrics}"
        );
    }
    watching.store(false, Ordering::Relaxed);
    let changes = watcher.join().expect("never two publishers at once");
    // The role moved only when its holder died or the store went away, not back and forth.
    assert!(
        !changes.is_empty() && changes.len() <= kills + 2,
        "{} publisher changes for {kills} kills and one store outage",
        changes.len()
    );
    let last = changes.last().map(|&(_, p)| p).unwrap();
    assert_eq!(role(https[last]).as_deref(), Some("publisher"));
    assert_eq!(role(https[1 - last]).as_deref(), Some("follower"));
    drop(reference);
    drop(replicas);
}
