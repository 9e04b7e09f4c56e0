//! Test harness: temp dirs, free ports, real peer processes that are killed on drop, and small
//! clients (HTTP, MQTT, SNMP readiness) for assertions.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/corpus` (or `$DEVTEL_CORPUS`).
pub fn corpus() -> PathBuf {
    std::env::var_os("DEVTEL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpus"))
}

/// A fresh directory for one test under target/e2e, removed when the test passes and kept
/// (with the processes' logs) when it fails.
pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files and logs kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

pub fn temp_dir(name: &str) -> TestDir {
    let dir = root()
        .join("target/e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    TestDir(dir)
}

/// A TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free TCP port")
}

/// A UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free UDP port")
}

/// A devtel binary next to the test executable's directory (target/<profile>/).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A child process that is killed when dropped; its stderr goes to `<dir>/<name>.log`.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Path, command: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = command
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({command:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited with {status}:\n{}", self.name, self.log());
        }
    }

    /// Sends SIGTERM and waits up to `within` for the exit; returns whether it exited with 0.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the broker-agnostic tests run against the gateway's embedded broker
/// (`DEVTEL_TEST_BROKER=embedded`) rather than Mosquitto.
pub fn embedded() -> bool {
    std::env::var("DEVTEL_TEST_BROKER").is_ok_and(|b| b == "embedded")
}

/// Ports given to an embedded broker: a gateway started on one runs the broker there.
static EMBEDDED_PORTS: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The broker of a broker-agnostic test.
pub enum Broker {
    /// A Mosquitto process.
    Mosquitto(Proc),
    /// The broker inside the gateway that is started on its port.
    Embedded,
}

impl Broker {
    /// Panics with the log if the broker's process has exited (the embedded broker's is the
    /// gateway, checked by the test).
    pub fn assert_running(&mut self) {
        if let Broker::Mosquitto(p) = self {
            p.assert_running();
        }
    }
}

/// Mosquitto on a free port, or with `DEVTEL_TEST_BROKER=embedded` a free port that the
/// next gateway started on it serves with its embedded broker.
pub fn broker(dir: &Path) -> (Broker, u16) {
    if embedded() {
        let port = free_tcp_port();
        EMBEDDED_PORTS.lock().unwrap().insert(port);
        (Broker::Embedded, port)
    } else {
        let (proc, port) = mosquitto(dir);
        (Broker::Mosquitto(proc), port)
    }
}

/// An embedded broker on a free port for a test of the embedded broker itself (whatever
/// `DEVTEL_TEST_BROKER` says); `[embedded_broker]` keys in the gateway's `top` replace the
/// default table.
pub fn embedded_broker_port() -> u16 {
    let port = free_tcp_port();
    EMBEDDED_PORTS.lock().unwrap().insert(port);
    port
}

/// Mosquitto on a free port with a generated config.
pub fn mosquitto(dir: &Path) -> (Proc, u16) {
    let port = free_tcp_port();
    let proc = mosquitto_with(
        dir,
        "mosquitto",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        port,
    );
    (proc, port)
}

/// Mosquitto with persistence in `<dir>/mosquitto-db/` on `port`: stop it with SIGTERM (it
/// saves sessions and queued messages) and start it again on the same port to simulate an
/// outage.
pub fn persistent_mosquitto(dir: &Path, port: u16) -> Proc {
    let db = dir.join("mosquitto-db");
    fs::create_dir_all(&db).expect("mosquitto db dir");
    mosquitto_with(
        dir,
        "mosquitto",
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n",
            db.display()
        ),
        port,
    )
}

/// Mosquitto with `config` (listeners, auth) plus logging to stderr; waits for `port`.
pub fn mosquitto_with(dir: &Path, name: &str, config: &str, port: u16) -> Proc {
    assert!(
        !embedded(),
        "DEVTEL_TEST_BROKER=embedded: this test needs Mosquitto and belongs to the Mosquitto run"
    );
    let conf = dir.join(format!("{name}.conf"));
    // `user root`: started as root (CI containers), Mosquitto would otherwise switch to its own
    // user, which cannot read the test's keys or write its database. Ignored when not root.
    fs::write(&conf, format!("{config}user root\nlog_dest stderr\n")).expect("mosquitto.conf");
    let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto");
    let mut proc = Proc::spawn(name, dir, Command::new(exe).arg("-c").arg(&conf));
    wait_for("mosquitto to listen", Duration::from_secs(10), || {
        proc.assert_running();
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    proc
}

/// snmpsim serving every recording of the corpus on a free UDP port; communities are the
/// recording names.
pub fn snmpsim(dir: &Path) -> (Proc, u16) {
    let port = free_udp_port();
    let exe = std::env::var_os("DEVTEL_SNMPSIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/snmpsim-command-responder"));
    assert!(
        exe.exists(),
        "{} not found: run scripts/setup-test-env.sh",
        exe.display()
    );
    let cache = dir.join("snmpsim-cache");
    fs::create_dir_all(&cache).expect("cache dir");
    let proc = Proc::spawn(
        "snmpsim",
        dir,
        Command::new(exe)
            .env("SNMPSIM_ALLOW_ROOT", "true")
            .arg(format!("--data-dir={}", corpus().join("snmprec").display()))
            .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
            .arg(format!("--cache-dir={}", cache.display()))
            .arg("--logging-method=null"),
    );
    (proc, port)
}

/// Waits until the agent answers sysDescr for `community`, using the collector's own client.
pub async fn wait_for_agent(proc: &mut Proc, port: u16, community: &str) {
    use devtel_collector::snmp::client::{Client, Options, Target, Version};
    use devtel_collector::snmp::{oid, VarbindSet};
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        version: Version::V2c,
        community: community.into(),
        usm: None,
    };
    let opts = Options {
        timeout: Duration::from_millis(500),
        retries: 0,
        ..Options::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        proc.assert_running();
        let mut client = Client::new(target.clone(), opts).await.expect("client");
        let mut vb = VarbindSet::new();
        if client
            .get(&[oid("1.3.6.1.2.1.1.1.0")], &mut vb)
            .await
            .is_ok()
            && !vb.is_empty()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "snmpsim did not answer within 60 s:\n{}",
            proc.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A minimal HTTP/1.1 GET; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_with(port, path, &[])
}

/// [`http_get`] with extra request headers.
pub fn http_get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// GET a JSON document with status 200.
pub fn http_json(port: u16, path: &str) -> Option<serde_json::Value> {
    match http_get(port, path)? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// The raw value of `oid` in a recording, by plain text search (independent of devtel's reader).
pub fn recorded(name: &str, oid: &str) -> Option<String> {
    let text = fs::read_to_string(corpus().join("snmprec").join(format!("{name}.snmprec"))).ok()?;
    let prefix = format!("{oid}|");
    text.lines().find_map(|l| {
        l.strip_prefix(&prefix)?
            .split_once('|')
            .map(|(_, v)| v.to_string())
    })
}

/// Every (OID suffix, value) of a recording under `prefix` (a plain text scan of the file).
pub fn recorded_under(name: &str, prefix: &str) -> Vec<(String, String)> {
    let text = fs::read_to_string(corpus().join("snmprec").join(format!("{name}.snmprec")))
        .unwrap_or_default();
    let prefix = format!("{prefix}.");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let mut parts = rest.splitn(3, '|');
            let suffix = parts.next()?.to_string();
            let value = parts.nth(1)?.to_string();
            Some((suffix, value))
        })
        .collect()
}

/// The supply indexes of a recording (prtMarkerSuppliesLevel rows of printer 1).
pub fn recorded_supply_indexes(name: &str) -> Vec<u64> {
    let text = fs::read_to_string(corpus().join("snmprec").join(format!("{name}.snmprec")))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("1.3.6.1.2.1.43.11.1.1.9.1."))
        .filter_map(|rest| rest.split('|').next()?.parse().ok())
        .collect()
}

/// An SNMPv3 user of [`snmpd`]: (user, auth protocol + password, privacy protocol + password).
pub type SnmpdUser = (
    &'static str,
    Option<(&'static str, &'static str)>,
    Option<(&'static str, &'static str)>,
);

/// See [`SnmpdUser`].
pub const SNMPD_USERS: &[SnmpdUser] = &[
    (
        "devtel",
        Some(("SHA-256", "auth-secret-1")),
        Some(("AES", "priv-secret-1")),
    ),
    (
        "u256",
        Some(("SHA-512", "auth-secret-2")),
        Some(("AES-256", "priv-secret-2")),
    ),
    (
        "u192",
        Some(("SHA", "auth-secret-3")),
        Some(("AES-192", "priv-secret-3")),
    ),
    (
        "udes",
        Some(("MD5", "auth-secret-4")),
        Some(("DES", "priv-secret-4")),
    ),
    ("uauth", Some(("SHA-224", "auth-secret-5")), None),
    ("unone", None, None),
];

/// The sysDescr [`snmpd`] answers.
pub const SNMPD_SYS_DESCR: &str = "devtel test agent";

/// net-snmp's `snmpd` on a free UDP port with the users of [`SNMPD_USERS`] (read-only, each at
/// its own security level) and v2c community `ready` for readiness checks. Its persistent state
/// lives in `dir`, never in /var/lib/snmp.
pub fn snmpd(dir: &Path) -> (Proc, u16) {
    let port = free_udp_port();
    let exe = Path::new("/usr/sbin/snmpd");
    assert!(
        exe.exists(),
        "snmpd not found: run scripts/setup-test-env.sh"
    );
    let mut conf = String::new();
    for (user, auth, privacy) in SNMPD_USERS {
        let mut line = format!("createUser {user}");
        if let Some((p, pw)) = auth {
            line.push_str(&format!(" {p} \"{pw}\""));
        }
        if let Some((p, pw)) = privacy {
            line.push_str(&format!(" {p} \"{pw}\""));
        }
        let level = match (auth, privacy) {
            (None, _) => "noauth",
            (Some(_), None) => "auth",
            (Some(_), Some(_)) => "priv",
        };
        conf.push_str(&format!("{line}\nrouser {user} {level}\n"));
    }
    conf.push_str(&format!(
        "rocommunity ready 127.0.0.1\nsysDescr {SNMPD_SYS_DESCR}\nsysObjectID 1.3.6.1.4.1.8072.3.2.10\n"
    ));
    let conf_path = dir.join("snmpd.conf");
    fs::write(&conf_path, conf).expect("snmpd.conf");
    let persist = dir.join("snmpd-persist");
    let proc = Proc::spawn(
        "snmpd",
        dir,
        Command::new(exe)
            .env("MIBS", "")
            .env("MIBDIRS", "/nonexistent")
            .env("SNMP_PERSISTENT_DIR", &persist)
            .arg("-f")
            .arg("-Lo")
            .arg("-C")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.join("snmpd.pid"))
            .arg(format!("udp:127.0.0.1:{port}")),
    );
    (proc, port)
}

/// devtel's simulator serving the corpus on a free port, answering.
pub async fn own_simulator(dir: &std::path::Path) -> (Proc, u16) {
    own_simulator_with(dir, &[]).await
}

/// [`own_simulator`] with extra `simulate` arguments (e.g. `--advance-counters 3`).
pub async fn own_simulator_with(dir: &std::path::Path, extra: &[&str]) -> (Proc, u16) {
    let port = free_udp_port();
    let mut sim = Proc::spawn(
        "simulator",
        dir,
        std::process::Command::new(bin("devtel-collector"))
            .args([
                "simulate",
                "--recordings",
                corpus().join("snmprec").to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(extra),
    );
    wait_for_agent(&mut sim, port, "sharp").await;
    (sim, port)
}

/// The gateway on `broker`, with its HTTP API on a free port; waits until it is connected.
pub fn start_gateway(dir: &std::path::Path, broker: u16) -> (Proc, u16) {
    let http = free_tcp_port();
    (start_gateway_as(dir, "gateway", broker, http, ""), http)
}

/// Gateway `name` (also its MQTT client id and the stem of its database and log) on `broker`
/// with its HTTP API on `http` and `extra` TOML appended; waits until it has subscribed.
pub fn start_gateway_as(
    dir: &std::path::Path,
    name: &str,
    broker: u16,
    http: u16,
    extra: &str,
) -> Proc {
    start_gateway_with(dir, name, broker, http, extra, &[])
}

/// [`start_gateway_as`] with environment variables.
pub fn start_gateway_with(
    dir: &std::path::Path,
    name: &str,
    broker: u16,
    http: u16,
    extra: &str,
    env: &[(&str, &str)],
) -> Proc {
    start_gateway_full(dir, name, broker, http, "", extra, env)
}

/// [`start_gateway_with`] with top-level keys `top` (`extra` continues the `[store]` table).
pub fn start_gateway_full(
    dir: &std::path::Path,
    name: &str,
    broker: u16,
    http: u16,
    top: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Proc {
    let conf = dir.join(format!("{name}.toml"));
    let client_id = if name == "gateway" { "gw-test" } else { name };
    let (url, top) = if EMBEDDED_PORTS.lock().unwrap().contains(&broker) {
        let table = if top.contains("[embedded_broker]") {
            String::new()
        } else {
            format!("[embedded_broker]\nlisten = \"127.0.0.1:{broker}\"\n")
        };
        ("embedded".to_string(), format!("{top}\n{table}"))
    } else {
        (format!("mqtt://127.0.0.1:{broker}"), top.to_string())
    };
    fs::write(
        &conf,
        format!(
            "broker = \"{url}\"\nclient_id = \"{client_id}\"\nhttp_listen = \"127.0.0.1:{http}\"\n{top}\n[store]\npath = \"{}\"\n{extra}",
            dir.join(format!("{name}.sqlite")).display()
        ),
    )
    .unwrap();
    let mut gw = Proc::spawn(
        name,
        dir,
        Command::new(bin("devtel-gateway"))
            .args(["run", "--config"])
            .arg(&conf)
            .envs(env.iter().copied()),
    );
    wait_for("gateway subscribed", Duration::from_secs(20), || {
        gw.assert_running();
        let up = http_json(http, "/healthz").filter(|h| h["mqtt_connected"] == true);
        up.filter(|_| gw.log().contains("subscribed"))
    });
    gw
}
