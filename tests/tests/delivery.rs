//! The collector never loses a reading: broker outages, a SIGKILL during an outage, a full
//! spool, TLS and passwords — against real Mosquitto, the real gateway and devtel's simulator.
//!
//! The gateway's `/api/collectors` is the referee: per collector and epoch it lists how many
//! distinct envelopes arrived, how many repeats it dropped and which sequence numbers are
//! missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

pub(crate) const COPIERS: &[(&str, &str)] = &[
    ("sharp", "sharp-3og"),
    ("ricoh_mpc3002", "ricoh-2og"),
    ("konica_c250i", "konica-eg"),
];

/// A collector config polling three recorded copiers every second.
pub(crate) fn collector_conf(
    dir: &Path,
    name: &str,
    broker: &str,
    sim_port: u16,
    mqtt: &str,
    spool: &str,
) -> PathBuf {
    let mut conf = format!(
        "site = \"{name}-site\"\ncollector_id = \"{name}\"\nbroker = \"{broker}\"\npoll_interval = \"1s\"\n[mqtt]\nreconnect_max = \"2s\"\n{mqtt}\n[spool]\ndir = \"{}\"\n{spool}\n[snmp]\ntimeout = \"1s\"\nretries = 1\n",
        dir.join(format!("{name}-spool")).display()
    );
    for (recording, id) in COPIERS {
        conf.push_str(&format!(
            "[[devices]]\nid = \"{name}-{id}\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"{recording}\"\nunit = \"ba.it\"\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, conf).unwrap();
    let check = Command::new(bin("devtel-collector"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    path
}

pub(crate) fn start_collector(dir: &Path, name: &str, conf: &Path) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(bin("devtel-collector"))
            .args(["run", "--config"])
            .arg(conf),
    )
}

/// The gateway's view of `collector`: its epochs (ascending) and its retained status.
/// The collector's epochs and status from `/api/collectors`, once it has delivered a reading
/// (its status may come first).
pub(crate) fn collector_view(http: u16, collector: &str) -> Option<(Vec<Value>, Value)> {
    let all = http_json(http, "/api/collectors")?;
    let entry = all.get(collector)?;
    let epochs = entry["epochs"].as_array()?.clone();
    if epochs.is_empty() {
        return None;
    }
    Some((epochs, entry.get("status").cloned().unwrap_or(Value::Null)))
}

pub(crate) fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The `spooled=N` of the collector's last "poll round finished" log line.
pub(crate) fn spooled_so_far(proc: &Proc) -> u64 {
    proc.log()
        .lines()
        .filter(|l| l.contains("poll round finished"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("spooled="))
                .and_then(|v| v.parse().ok())
        })
        .next_back()
        .unwrap_or(0)
}

/// Checks the gateway's ingest counters: every distinct envelope applied (or stale) once, and
/// every repeat counted as a duplicate, never applied.
pub(crate) fn assert_no_double_counting(http: u16) {
    let health = http_json(http, "/healthz").unwrap();
    let all = http_json(http, "/api/collectors").unwrap();
    let (mut distinct, mut repeats) = (0, 0);
    for entry in all.as_object().unwrap().values() {
        for e in entry["epochs"].as_array().unwrap() {
            distinct += n(e, "received");
            repeats += n(e, "repeats");
        }
    }
    let ingest = &health["ingest"];
    assert_eq!(
        n(ingest, "applied") + n(ingest, "stale"),
        distinct,
        "{health} {all}"
    );
    assert_eq!(n(ingest, "duplicates"), repeats, "{health} {all}");
}

/// One site for the delivery tests: Mosquitto with persistence on a fixed port (so it can be
/// stopped and started again), devtel's simulator and the gateway.
struct Rig {
    dir: TestDir,
    port: u16,
    broker: Proc,
    sim_port: u16,
    http: u16,
    gateway: Proc,
    _sim: Proc,
    _rt: tokio::runtime::Runtime,
}

impl Rig {
    fn new(name: &str) -> Rig {
        let dir = temp_dir(name);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let port = free_tcp_port();
        let broker = persistent_mosquitto(&dir, port);
        let (sim, sim_port) = rt.block_on(own_simulator(&dir));
        let (gateway, http) = start_gateway(&dir, port);
        Rig {
            dir,
            port,
            broker,
            sim_port,
            http,
            gateway,
            _sim: sim,
            _rt: rt,
        }
    }

    /// A collector config for this site's broker and simulator.
    fn conf(&self, name: &str, spool: &str) -> PathBuf {
        let broker = format!("mqtt://127.0.0.1:{}", self.port);
        collector_conf(&self.dir, name, &broker, self.sim_port, "", spool)
    }

    fn stop_broker(&mut self) {
        assert!(
            self.broker.terminate(Duration::from_secs(10)),
            "{}",
            self.broker.log()
        );
    }

    fn start_broker(&mut self) {
        self.broker = persistent_mosquitto(&self.dir, self.port);
    }
}

#[test]
fn a_30s_broker_outage_loses_no_reading_and_counts_none_twice() {
    let mut rig = Rig::new("outage");
    let http = rig.http;
    let conf = rig.conf("outage", "");
    let mut collector = start_collector(&rig.dir, "collector", &conf);

    wait_for("first deliveries", Duration::from_secs(30), || {
        collector.assert_running();
        collector_view(http, "outage").filter(|(e, _)| e.len() == 1 && n(&e[0], "received") >= 6)
    });

    // The broker goes away for 30 s while the collector keeps polling.
    rig.stop_broker();
    let at_outage = spooled_so_far(&collector);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        collector.assert_running();
        rig.gateway.assert_running();
    }
    let at_return = spooled_so_far(&collector);
    assert!(
        at_return >= at_outage + 60,
        "the collector kept polling into the spool: {at_outage} -> {at_return}"
    );
    rig.start_broker();

    // Everything polled during the outage arrives, with no hole.
    let (epochs, _) = wait_for("the outage backlog", Duration::from_secs(60), || {
        collector.assert_running();
        collector_view(http, "outage")
            .filter(|(e, _)| n(&e[0], "received") >= at_return + 3 && n(&e[0], "missing") == 0)
    });
    assert_eq!(n(&epochs[0], "first_seq"), 0);

    // A clean stop delivers the rest and says so.
    assert!(
        collector.terminate(Duration::from_secs(15)),
        "{}",
        collector.log()
    );
    let (epochs, status) = wait_for("the offline status", Duration::from_secs(15), || {
        collector_view(http, "outage").filter(|(_, s)| s["state"] == "offline")
    });
    let counters = &status["counters"];
    let spooled = n(counters, "spooled");
    assert_every_seq_once(&epochs[0], spooled, &status);
    assert_eq!(n(counters, "dropped"), 0);
    assert_eq!(n(counters, "lost"), 0);
    assert_eq!(n(counters, "spool_pending"), 0);
    assert!(n(counters, "reconnects") >= 1, "{status}");
    assert!(n(counters, "connection_errors") >= 1, "{status}");
    assert_eq!(n(counters, "polls"), spooled);
    assert_no_double_counting(http);
    assert!(collector.log().contains("MQTT connection error"));
}

/// SIGKILLs `first` (no flush, no goodbye), brings the broker back and starts the collector
/// again; waits until the killed run's epoch holds at least what it had spooled, without a
/// hole, and the new run delivers. Returns the new process, the two epochs and what the killed
/// run had spooled.
fn kill_restart_and_wait(
    rig: &mut Rig,
    mut first: Proc,
    conf: &Path,
    name: &str,
) -> (Proc, Vec<Value>, u64) {
    let http = rig.http;
    let spooled_before_kill = spooled_so_far(&first);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    rig.start_broker();
    let mut second = start_collector(&rig.dir, "collector-2", conf);
    let (epochs, _) = wait_for(
        "the killed run's readings and the new run's",
        Duration::from_secs(60),
        || {
            second.assert_running();
            collector_view(http, name).filter(|(e, _)| {
                e.len() == 2
                    && n(&e[0], "received") >= spooled_before_kill
                    && n(&e[0], "missing") == 0
                    && n(&e[1], "received") >= 3
            })
        },
    );
    (second, epochs, spooled_before_kill)
}

/// One epoch that holds every sequence number from 0 to `spooled - 1` exactly once.
pub(crate) fn assert_every_seq_once(e: &Value, spooled: u64, status: &Value) {
    assert_eq!(
        (
            n(e, "first_seq"),
            n(e, "last_seq") + 1,
            n(e, "received"),
            n(e, "missing")
        ),
        (0, spooled, spooled, 0),
        "every sequence number exactly once: {e} {status}"
    );
}

#[test]
fn a_collector_killed_during_an_outage_delivers_its_spool_after_restart() {
    let mut rig = Rig::new("sigkill");
    let http = rig.http;
    let conf = rig.conf("killed", "");
    let mut first = start_collector(&rig.dir, "collector-1", &conf);
    wait_for("first deliveries", Duration::from_secs(30), || {
        first.assert_running();
        collector_view(http, "killed").filter(|(e, _)| n(&e[0], "received") >= 3)
    });

    rig.stop_broker();
    wait_for("a spool backlog", Duration::from_secs(30), || {
        first.assert_running();
        (spooled_so_far(&first) >= 20).then_some(())
    });
    let (second, epochs, _) = kill_restart_and_wait(&mut rig, first, &conf, "killed");
    let (old, new) = (&epochs[0], &epochs[1]);
    assert!(n(new, "epoch") > n(old, "epoch"));
    assert_eq!(n(old, "first_seq"), 0);
    assert_eq!(n(old, "received"), n(old, "last_seq") + 1, "{old}");
    assert_eq!(
        n(new, "first_seq"),
        0,
        "the new run numbers from 0 in its own epoch"
    );
    assert!(
        second
            .log()
            .contains("spool opened with unacknowledged readings"),
        "{}",
        second.log()
    );
    assert_no_double_counting(http);
}

#[test]
fn a_full_spool_drops_the_oldest_readings_counted_and_nothing_else() {
    let mut rig = Rig::new("spoolfull");
    let http = rig.http;
    // The gateway's session exists; now the broker goes away before the collector starts.
    rig.stop_broker();
    let conf = rig.conf("full", "max_size = \"16 KiB\"");
    let mut collector = start_collector(&rig.dir, "collector", &conf);
    wait_for("the spool to overflow", Duration::from_secs(60), || {
        collector.assert_running();
        collector
            .log()
            .contains("spool full: dropped the oldest unacknowledged readings")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let at_return = spooled_so_far(&collector);
    rig.start_broker();
    wait_for("the backlog to arrive", Duration::from_secs(60), || {
        collector.assert_running();
        collector_view(http, "full").filter(|(e, s)| {
            let dropped = s["counters"]["dropped"].as_u64().unwrap_or(0);
            dropped > 0
                && n(&e[0], "received") + dropped >= at_return + 3
                && n(&e[0], "missing") == 0
        })
    });
    assert!(collector.terminate(Duration::from_secs(15)));
    let (epochs, status) = wait_for("the offline status", Duration::from_secs(15), || {
        collector_view(http, "full").filter(|(_, s)| s["state"] == "offline")
    });
    let counters = &status["counters"];
    let (spooled, dropped) = (n(counters, "spooled"), n(counters, "dropped"));
    assert!(dropped > 0, "{status}");
    let e = &epochs[0];
    // Exactly `dropped` readings are missing, all of them from the outage's backlog; every
    // later one arrived.
    assert_eq!(
        (n(e, "last_seq") + 1, n(e, "received")),
        (spooled, spooled - dropped),
        "{e} {status}"
    );
    assert_eq!(n(e, "first_seq") + n(e, "missing"), dropped, "{e} {status}");
    let gaps = e["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().all(|g| g[1].as_u64().unwrap() <= at_return),
        "only readings of the outage were dropped: {e}"
    );
    assert_eq!(n(counters, "lost"), 0);
    assert_no_double_counting(http);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (installed by scripts/setup-test-env.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a broker certificate for 127.0.0.1 signed by it, plus an unrelated CA.
pub fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        let subject = format!("/CN=devtel test {ca}");
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject,
        ]);
        openssl(dir, &args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &args);
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "broker.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

#[test]
fn tls_with_a_generated_ca_and_a_password_file_works_and_a_wrong_ca_is_named() {
    let dir = temp_dir("tls");
    let rt = tokio::runtime::Runtime::new().unwrap();
    make_pki(&dir);
    let secret = "s3cret-Pa55word";
    let passwd = dir.join("passwd");
    let out = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["site-collector", secret])
        .output()
        .expect("mosquitto_passwd");
    assert!(out.status.success(), "{out:?}");
    fs::write(dir.join("password.txt"), format!("{secret}\n")).unwrap();

    let (plain, tls) = (free_tcp_port(), free_tcp_port());
    let d = dir.display();
    let _broker = mosquitto_with(
        &dir,
        "mosquitto",
        &format!(
            "per_listener_settings true\nlistener {plain} 127.0.0.1\nallow_anonymous true\nlistener {tls} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/broker.pem\nkeyfile {d}/broker.key\nallow_anonymous false\npassword_file {}\n",
            passwd.display()
        ),
        plain,
    );
    let (_sim, sim_port) = rt.block_on(own_simulator(&dir));
    // The gateway listens on the plain listener; the collector must come in over TLS.
    let (_gateway, http) = start_gateway(&dir, plain);

    let good = collector_conf(
        &dir,
        "tls-ok",
        &format!("mqtts://127.0.0.1:{tls}"),
        sim_port,
        &format!(
            "ca_file = \"{d}/ca.pem\"\nusername = \"site-collector\"\npassword_file = \"{d}/password.txt\""
        ),
        "",
    );
    let mut ok = start_collector(&dir, "collector-ok", &good);
    let (_, status) = wait_for("readings over TLS", Duration::from_secs(30), || {
        ok.assert_running();
        collector_view(http, "tls-ok").filter(|(e, s)| {
            s["state"] == "online" && e.first().is_some_and(|e| n(e, "received") >= 3)
        })
    });
    assert_eq!(status["site"], "tls-ok-site");

    let wrong = collector_conf(
        &dir,
        "tls-wrong-ca",
        &format!("mqtts://127.0.0.1:{tls}"),
        sim_port,
        &format!(
            "ca_file = \"{d}/other-ca.pem\"\nusername = \"site-collector\"\npassword_file = \"{d}/password.txt\""
        ),
        "",
    );
    let mut bad = start_collector(&dir, "collector-wrong-ca", &wrong);
    wait_for("the wrong-CA error", Duration::from_secs(20), || {
        bad.assert_running();
        bad.log()
            .contains("the broker's certificate is not signed by the CA in mqtt.ca_file")
            .then_some(())
    });
    assert!(collector_view(http, "tls-wrong-ca").is_none());

    // A wrong password is refused by the broker, with a hint naming the keys.
    fs::write(dir.join("wrong.txt"), "not-the-password\n").unwrap();
    let refused = collector_conf(
        &dir,
        "tls-bad-login",
        &format!("mqtts://127.0.0.1:{tls}"),
        sim_port,
        &format!(
            "ca_file = \"{d}/ca.pem\"\nusername = \"site-collector\"\npassword_file = \"{d}/wrong.txt\""
        ),
        "",
    );
    let mut login = start_collector(&dir, "collector-bad-login", &refused);
    wait_for("the login error", Duration::from_secs(20), || {
        login.assert_running();
        login
            .log()
            .contains("the broker refused mqtt.username / password")
            .then_some(())
    });

    for proc in [&ok, &bad, &login] {
        assert!(
            !proc.log().contains(secret),
            "the password never appears in logs"
        );
    }
    assert!(ok.terminate(Duration::from_secs(15)));
}

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the spool's disk and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` until it refuses writes.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    let _ = f.sync_all();
    path
}

/// The spool's disk fills up while the broker is away: readings are kept in memory, written
/// when space returns, and survive a SIGKILL after that; every reading arrives, none is lost
/// or dropped.
#[test]
fn a_full_disk_keeps_readings_in_memory_until_space_returns() {
    let mut rig = Rig::new("diskfull");
    let http = rig.http;
    let _disk = Tmpfs::mount(&rig.dir.join("full-spool"), "512k");
    let conf = rig.conf("full", "max_size = \"64 MiB\"");
    let mut first = start_collector(&rig.dir, "collector-1", &conf);
    wait_for("first deliveries", Duration::from_secs(30), || {
        first.assert_running();
        collector_view(http, "full").filter(|(e, _)| n(&e[0], "received") >= 3)
    });

    rig.stop_broker();
    let filler = fill(&rig.dir.join("full-spool"));
    wait_for("writes refused", Duration::from_secs(30), || {
        first.assert_running();
        first
            .log()
            .contains("spool write failed; readings are kept in memory")
            .then_some(())
    });
    let refused_at = spooled_so_far(&first);
    wait_for(
        "readings polled while the disk is full",
        Duration::from_secs(30),
        || {
            first.assert_running();
            (spooled_so_far(&first) >= refused_at + 9).then_some(())
        },
    );
    fs::remove_file(&filler).unwrap();
    wait_for(
        "the memory written to disk",
        Duration::from_secs(30),
        || {
            first.assert_running();
            first
                .log()
                .contains("the spool's disk takes writes again")
                .then_some(())
        },
    );
    // A round spooled to disk directly; what was only in memory would be gone after the kill.
    std::thread::sleep(Duration::from_millis(1500));
    let (mut second, epochs, spooled_before_kill) =
        kill_restart_and_wait(&mut rig, first, &conf, "full");
    let old = &epochs[0];
    assert_eq!(n(old, "first_seq"), 0);
    assert_eq!(n(old, "received"), n(old, "last_seq") + 1, "{old}");
    assert!(n(old, "received") >= spooled_before_kill, "{old}");
    assert!(second.terminate(Duration::from_secs(15)));
    let (_, status) = wait_for("the offline status", Duration::from_secs(15), || {
        collector_view(http, "full").filter(|(_, s)| s["state"] == "offline")
    });
    let counters = &status["counters"];
    for key in ["dropped", "lost", "spool_in_memory"] {
        assert_eq!(n(counters, key), 0, "{key}: {status}");
    }
    assert_no_double_counting(http);
}
