//! The collector against Prometheus snmp_exporter, each started as its own process and doing
//! the same SNMP work on the same devices in the same run: N copiers (default 5,000) served by
//! devtel's simulator (a third process) from the corpus recordings, SNMP v2c, max-repetitions
//! 25, 64 in flight.
//!
//! - **snmp_exporter** (the peer; Debian's `prometheus-snmp-exporter`, which
//!   `scripts/bench-collector.sh` installs): one module per recording, generated from devtel's
//!   own copier plan — the GET of the plan's scalars and its walks, then the vendor's objects
//!   that devtel's follow-up plan asks that device for — and N scrapes, 64 at a time.
//! - **devtel-collector run**: the daemon as deployed, with the same N devices, one poll round,
//!   every reading spooled and published to a Mosquitto broker (acknowledged by PUBACK).
//!
//! For each it prints wall time, CPU (user + system, from `/proc/{pid}/stat`) and peak RSS
//! (`VmHWM` from `/proc/{pid}/status`), each side `DEVTEL_BENCH_RUNS` times (3) in turn, and
//! the ratios of the medians. Also the collector at 100 devices (`DEVTEL_BENCH_SMALL`).
//! Asserts nothing.
//!
//! Run: `bash scripts/bench-collector.sh` (env DEVTEL_BENCH_DEVICES, DEVTEL_BENCH_SMALL,
//! DEVTEL_BENCH_CONCURRENCY, DEVTEL_BENCH_WIRE = the collector's wire form, DEVTEL_BENCH_EXPORTER
//! = path of the snmp_exporter binary,
//! DEVTEL_BENCH_COLLECTOR = path of the collector binary measured).

mod common;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devtel_devices::snmp::VarbindSet;
use devtel_devices::{copier, Kind as _, Plan};

use common::{env_usize, PRINTERS};

/// What `/proc` says of a process.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    user_s: f64,
    system_s: f64,
    hwm_kib: u64,
    /// Resident at the time of reading: anonymous (heap, stacks) and file-backed (the
    /// binary's own pages, shared libraries), from `RssAnon` and `RssFile`.
    anon_kib: u64,
    file_kib: u64,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let ticks = 100.0; // USER_HZ on Linux
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may hold spaces).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name and state.
        Usage {
            user_s: field(11) / ticks,
            system_s: field(12) / ticks,
            hwm_kib: kib("VmHWM:"),
            anon_kib: kib("RssAnon:"),
            file_kib: kib("RssFile:"),
        }
    }

    fn cpu_s(&self) -> f64 {
        self.user_s + self.system_s
    }

    fn minus(&self, before: &Usage) -> Usage {
        Usage {
            user_s: self.user_s - before.user_s,
            system_s: self.system_s - before.system_s,
            ..*self
        }
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What devtel polls of recording `name`: the copier plan and the follow-up planned from the
/// recording's own answers (its vendor's objects).
fn plans(name: &str) -> (Plan, Plan) {
    let vb = devtel_devices::corpus::varbinds(name);
    (copier::Copier.plan(), copier::Copier.follow_up(&vb))
}

/// The deepest index under `root` in `vb` (at least 1), so that the exporter's catch-all
/// metric for the walk gives every varbind its own series.
fn depth(vb: &VarbindSet, root: &devtel_devices::snmp::Oid) -> usize {
    vb.subtree(root).map(|(s, _)| s.len()).max().unwrap_or(1)
}

/// snmp_exporter 0.21's configuration: one module per recording (the community selects it in
/// the simulator), walking and getting exactly what devtel polls of that device.
fn exporter_config() -> (String, usize) {
    let mut yml = String::new();
    let mut objects = 0;
    for name in PRINTERS {
        let (first, follow_up) = plans(name);
        let vb = devtel_devices::corpus::varbinds(name);
        let get: Vec<_> = first.get.iter().chain(&follow_up.get).collect();
        let walk: Vec<_> = first.walk.iter().chain(&follow_up.walk).collect();
        objects += get.len() + walk.len();
        let _ = writeln!(
            yml,
            "{name}:\n  version: 2\n  auth:\n    community: {name}\n  max_repetitions: 25\n  retries: 1\n  timeout: 2s"
        );
        yml.push_str("  walk:\n");
        for w in &walk {
            let _ = writeln!(yml, "    - {w}");
        }
        yml.push_str("  get:\n");
        for g in &get {
            let _ = writeln!(yml, "    - {g}");
        }
        yml.push_str("  metrics:\n");
        for (i, w) in walk.iter().enumerate() {
            let indexes: Vec<String> = (1..=depth(&vb, w))
                .map(|d| format!("{{labelname: i{d}, type: Integer32}}"))
                .collect();
            let _ = writeln!(
                yml,
                "    - {{name: w{i}, oid: {w}, type: gauge, help: walk, indexes: [{}]}}",
                indexes.join(", ")
            );
        }
        for (i, g) in get.iter().enumerate() {
            let _ = writeln!(
                yml,
                "    - {{name: g{i}, oid: {g}, type: gauge, help: get}}"
            );
        }
    }
    (yml, objects)
}

/// One HTTP/1.0 GET; the status code and the body's length.
fn http_get(port: u16, path: &str) -> Option<(u16, usize)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    Some((status, body))
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} not ready in {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A metric's value in a Prometheus text page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Run {
    wall_s: f64,
    usage: Usage,
    sim: Usage,
    ok: usize,
    failed: usize,
}

/// N scrapes of snmp_exporter, `concurrency` at a time.
fn exporter(bin: &Path, dir: &Path, sim: u32, sim_port: u16, n: usize, concurrency: usize) -> Run {
    let (yml, _) = exporter_config();
    let config = dir.join("snmp.yml");
    std::fs::write(&config, yml).expect("snmp.yml");
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("snmp_exporter starts");
    let exporter = Proc(child);
    let pid = exporter.0.id();
    wait_for("snmp_exporter", Duration::from_secs(10), || {
        http_get(port, "/metrics").is_some()
    });
    let before = Usage::of(pid);
    let sim_before = Usage::of(sim);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, ok) = (next.clone(), ok.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let module = PRINTERS[i % PRINTERS.len()];
                let path = format!("/snmp?target=127.0.0.1:{sim_port}&module={module}");
                if let Some((200, body)) = http_get(port, &path) {
                    if body > 0 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let wall_s = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    Run {
        wall_s,
        usage: Usage::of(pid).minus(&before),
        sim: Usage::of(sim).minus(&sim_before),
        ok,
        failed: n - ok,
    }
}

/// One poll round of `devtel-collector run` over `n` devices, until the broker has
/// acknowledged every reading.
fn collector(dir: &Path, sim: u32, sim_port: u16, n: usize, concurrency: usize) -> Run {
    let broker_port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {broker_port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
        ),
    )
    .expect("mosquitto.conf");
    let _broker = Proc(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (scripts/setup-test-env.sh installs it)"),
    );
    wait_for("mosquitto", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", broker_port)).is_ok()
    });
    let metrics_port = free_port();
    // `DEVTEL_BENCH_WIRE`: the collector's `[delivery] wire` ("compact", the default, or "full").
    let wire = std::env::var("DEVTEL_BENCH_WIRE").unwrap_or_else(|_| "compact".into());
    let spool = dir.join(format!("spool-{n}"));
    let _ = std::fs::remove_dir_all(&spool);
    let mut toml = format!(
        "site = \"bench\"\ncollector_id = \"bench\"\nbroker = \"mqtt://127.0.0.1:{broker_port}\"\n\
         poll_interval = \"1h\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\
         [delivery]\nacknowledge = \"broker\"\nwire = \"{wire}\"\n[spool]\ndir = \"{}\"\n\
         [snmp]\ntimeout = \"2s\"\nretries = 1\nmax_repetitions = 25\nconcurrency = {concurrency}\n",
        spool.display()
    );
    for i in 0..n {
        let _ = write!(
            toml,
            "[[devices]]\nid = \"copier-{i}\"\nkind = \"copier\"\naddress = \"127.0.0.1\"\nport = {sim_port}\n\
             community = \"{}\"\nunit = \"bench\"\n",
            PRINTERS[i % PRINTERS.len()]
        );
    }
    let config = dir.join(format!("collector-{n}.toml"));
    std::fs::write(&config, toml).expect("collector config");
    let sim_before = Usage::of(sim);
    let started = Instant::now();
    let child = Command::new(collector_bin())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("devtel-collector starts");
    let collector = Proc(child);
    let pid = collector.0.id();
    let mut page = String::new();
    wait_for("the collector's round", Duration::from_secs(600), || {
        let Some(text) = http_text(metrics_port, "/metrics") else {
            return false;
        };
        page = text;
        metric(&page, "devtel_collector_broker_acked_total") >= n as f64
    });
    let wall_s = started.elapsed().as_secs_f64();
    let usage = Usage::of(pid);
    let failed = metric(&page, "devtel_collector_failed_total") as usize;
    Run {
        wall_s,
        usage,
        sim: Usage::of(sim).minus(&sim_before),
        ok: n - failed,
        failed,
    }
}

/// The collector measured: `DEVTEL_BENCH_COLLECTOR` (e.g. the `site` profile's build,
/// `target/site/devtel-collector`), else this bench's own build.
fn collector_bin() -> PathBuf {
    std::env::var_os("DEVTEL_BENCH_COLLECTOR")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_devtel-collector")))
}

fn http_text(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn row(name: &str, n: usize, r: &Run) {
    println!(
        "| {name} | {n} | {}/{} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} / {:.1} | {:.2} |",
        r.ok,
        r.failed,
        r.wall_s,
        r.usage.user_s,
        r.usage.system_s,
        r.usage.cpu_s(),
        r.usage.hwm_kib as f64 / 1024.0,
        r.usage.anon_kib as f64 / 1024.0,
        r.usage.file_kib as f64 / 1024.0,
        r.sim.cpu_s(),
    );
}

fn main() {
    let n = env_usize("DEVTEL_BENCH_DEVICES", 5_000);
    let small = env_usize("DEVTEL_BENCH_SMALL", 100);
    let concurrency = env_usize("DEVTEL_BENCH_CONCURRENCY", 64);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-exporter");
    std::fs::create_dir_all(&dir).expect("bench folder");

    let sim_port = free_udp_port();
    let simulator = Proc(
        Command::new(env!("CARGO_BIN_EXE_devtel-collector"))
            .arg("simulate")
            .arg("--recordings")
            .arg(devtel_devices::corpus::dir().join("snmprec"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{sim_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the simulator starts"),
    );
    let sim = simulator.0.id();
    std::thread::sleep(Duration::from_millis(500));

    let (_, objects) = exporter_config();
    println!(
        "{n} copiers ({} recordings), SNMP v2c, max-repetitions 25, {concurrency} in flight; \
         {:.1} plan objects (GETs + walks) per device on average",
        PRINTERS.len(),
        objects as f64 / PRINTERS.len() as f64
    );
    println!("collector: {}", collector_bin().display());
    println!();
    println!("| process | devices | ok/failed | wall s | user s | system s | CPU s | peak RSS MiB | RSS at end anon / file MiB | simulator CPU s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");

    let exporter_bin = std::env::var_os("DEVTEL_BENCH_EXPORTER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-snmp-exporter"));
    // Each side RUNS times, in turn, so that a busy moment of the machine does not decide the
    // ratio; the figures compared are the medians.
    let runs = env_usize("DEVTEL_BENCH_RUNS", 3).max(1);
    let mut peer_runs = Vec::new();
    let mut devtel_runs = Vec::new();
    let mut small_runs = Vec::new();
    for _ in 0..runs {
        if exporter_bin.exists() {
            let r = exporter(&exporter_bin, &dir, sim, sim_port, n, concurrency);
            row("snmp_exporter (peer)", n, &r);
            peer_runs.push(r);
        }
        let r = collector(&dir, sim, sim_port, n, concurrency);
        row("devtel-collector run", n, &r);
        devtel_runs.push(r);
        let r = collector(&dir, sim, sim_port, small, concurrency);
        row("devtel-collector run", small, &r);
        small_runs.push(r);
    }
    let median = |runs: &mut Vec<Run>| -> Usage {
        runs.sort_by(|a, b| a.usage.cpu_s().total_cmp(&b.usage.cpu_s()));
        let mut hwm: Vec<u64> = runs.iter().map(|r| r.usage.hwm_kib).collect();
        hwm.sort_unstable();
        let mid = runs.len() / 2;
        Usage {
            hwm_kib: hwm[mid],
            ..runs[mid].usage
        }
    };
    let devtel = median(&mut devtel_runs);
    let small_usage = median(&mut small_runs);
    println!();
    println!(
        "medians of {runs}: devtel {:.2} s CPU ({:.0} % system), peak RSS {:.1} MiB at {n} devices, {:.1} MiB at {} devices",
        devtel.cpu_s(),
        100.0 * devtel.system_s / devtel.cpu_s(),
        devtel.hwm_kib as f64 / 1024.0,
        small_usage.hwm_kib as f64 / 1024.0,
        small,
    );
    if peer_runs.is_empty() {
        println!(
            "peer: {} not found (scripts/bench-collector.sh installs Debian's prometheus-snmp-exporter)",
            exporter_bin.display()
        );
    } else {
        let p = median(&mut peer_runs);
        println!(
            "snmp_exporter {:.2} s CPU, peak RSS {:.1} MiB: devtel uses {:.1}x less CPU and {:.1}x less memory",
            p.cpu_s(),
            p.hwm_kib as f64 / 1024.0,
            p.cpu_s() / devtel.cpu_s(),
            p.hwm_kib as f64 / devtel.hwm_kib.max(1) as f64,
        );
    }
}
