//! Gateway ingest with durable commits, next to Mosquitto's own delivery rate in the same run.
//!
//! `cargo bench -p devtel-gateway --bench ingest` (needs `mosquitto`, installed by
//! `scripts/setup-test-env.sh`, and `../shared/corpus`). Knobs: `DEVTEL_BENCH_READINGS`
//! (default 50,000); `DEVTEL_BENCH_ONLY=devtel` runs the gateway alone (for a profiler).
//!
//! 1. **Peer**: a plain rumqttc subscriber (QoS 1, manual acks, no processing) receives N
//!    envelopes from a publisher through Mosquitto: the broker's delivery rate on this machine.
//! 2. **devtel**: the gateway's MQTT side (the same code `devtel-gateway run` uses) receives
//!    the same N envelopes, commits them to SQLite (WAL, synchronous=FULL) in batches,
//!    aggregates them and acknowledges after each commit. Timed until the last is committed.
//!    The same again on a PostgreSQL store (a server in a temporary folder, started by
//!    `devtel_gateway::pg_harness`; `DEVTEL_BENCH_POSTGRES=0` leaves it out): what one replica
//!    of a group does per message.
//! 3. **Core**: store commit + aggregation without MQTT, per batch size, to show what one
//!    fsync per batch costs.
//!
//! Inputs are real copier readings: corpus recordings mapped by the collector's mapping, each
//! envelope with its own sequence number, poll time and advancing page counter.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devtel_gateway::aggregate::Aggregator;
use devtel_gateway::backend::{Backend, Replica};
use devtel_gateway::config::Config;
use devtel_gateway::pg_harness::TempPostgres;
use devtel_gateway::store::{Item, Store};
use devtel_gateway::Shared;
use devtel_protocol::{topic, Envelope};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

mod common;
use common::{free_port, workload};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto(dir: &Path, port: u16) -> Broker {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nuser root\n"),
    )
    .unwrap();
    let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto");
    let child = Command::new(exe)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (run scripts/setup-test-env.sh)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = BROKER_PID.set(child.id());
    Broker(child)
}

static BROKER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Where the machine's CPU went during a run: the broker's CPU seconds and the idle seconds of
/// all cores, from /proc (Linux; zeros elsewhere).
#[derive(Clone, Copy, Default)]
struct Machine {
    broker: f64,
    idle: f64,
    total: f64,
}

impl Machine {
    fn now() -> Machine {
        let broker = BROKER_PID
            .get()
            .map_or(0.0, |pid| stat_cpu(Path::new(&format!("/proc/{pid}/stat"))));
        // First line of /proc/stat: cpu user nice system idle iowait irq softirq steal ...
        let ticks: Vec<f64> = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(8)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
        Machine {
            broker,
            idle: idle / 100.0,
            total: ticks.iter().sum::<f64>() / 100.0,
        }
    }

    /// Since `before`, per reading: broker CPU (µs) and the share of all cores left idle.
    fn since(self, before: Machine, n: usize) -> String {
        let total = (self.total - before.total).max(1e-9);
        format!(
            "broker {:.1} us/reading, cores idle {:.0} %",
            (self.broker - before.broker) * 1e6 / n as f64,
            100.0 * (self.idle - before.idle) / total
        )
    }
}

/// Publishes every message with QoS 1 and returns when all are acknowledged. Inflight 1,000 (the
/// most a collector may set): with 100 the publisher's round trips, not the broker, set the
/// pace of every run.
async fn publish_all(port: u16, work: &[(String, Vec<u8>)]) {
    let mut o = MqttOptions::new("bench-pub", "127.0.0.1", port);
    o.set_inflight(1000);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 1000);
    let msgs: Vec<(String, Vec<u8>)> = work.to_vec();
    let n = msgs.len();
    tokio::spawn(async move {
        for (t, p) in msgs {
            client.publish(t, QoS::AtLeastOnce, false, p).await.unwrap();
        }
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(Packet::PubAck(_)) = ev.poll().await.unwrap() {
            acked += 1;
        }
    }
}

/// The publisher on a thread of its own (`bench-publisher`, a current-thread runtime), so the
/// CPU of the gateway's MQTT client, on the bench's runtime, is measured apart from it.
struct Publisher(std::thread::JoinHandle<f64>);

fn spawn_publisher(port: u16, work: &[(String, Vec<u8>)]) -> Publisher {
    let work = work.to_vec();
    let thread = std::thread::Builder::new()
        .name("bench-publisher".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(publish_all(port, &work));
            own_cpu()
        })
        .unwrap();
    Publisher(thread)
}

impl Publisher {
    /// Waits for the publisher and returns the CPU seconds its thread used.
    async fn join(self) -> f64 {
        tokio::task::spawn_blocking(move || self.0.join().unwrap())
            .await
            .unwrap()
    }
}

/// Peer: a subscriber that acknowledges and does nothing else.
async fn peer(port: u16, work: &[(String, Vec<u8>)]) -> (Duration, String) {
    let mut o = MqttOptions::new("bench-sub", "127.0.0.1", port);
    o.set_manual_acks(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 10_000);
    client
        .subscribe(topic::TELEMETRY_FILTER, QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = ev.poll().await.unwrap() {
            break;
        }
    }
    let n = work.len();
    let machine = Machine::now();
    let started = Instant::now();
    let publisher = spawn_publisher(port, work);
    let mut got = 0;
    while got < n {
        if let Event::Incoming(Packet::Publish(p)) = ev.poll().await.unwrap() {
            client.ack(&p).await.unwrap();
            got += 1;
        }
    }
    let elapsed = started.elapsed();
    let machine = Machine::now().since(machine, n);
    publisher.join().await;
    client.disconnect().await.ok();
    (elapsed, machine)
}

/// Peer: Mosquitto's own C client, `mosquitto_sub -q 1 -C N`, timed until it has received N.
async fn mosquitto_sub(port: u16, work: &[(String, Vec<u8>)]) -> Option<(Duration, String)> {
    let mut child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t"])
        .arg(topic::TELEMETRY_FILTER)
        .args(["-C", &work.len().to_string(), "-i", "bench-mosquitto-sub"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Its output to a pipe is block-buffered, so there is no SUBACK line to wait for; a local
    // subscription takes milliseconds.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if child.try_wait().ok()?.is_some() {
        return None;
    }
    let machine = Machine::now();
    let started = Instant::now();
    let publisher = spawn_publisher(port, work);
    let pid = child.id();
    let waited = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await;
    let Ok(status) = waited else {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        eprintln!("mosquitto_sub did not receive every message within 120 s");
        return None;
    };
    let status = status.ok()?.ok()?;
    let elapsed = started.elapsed();
    let machine = Machine::now().since(machine, work.len());
    publisher.join().await;
    status.success().then_some((elapsed, machine))
}

const CLIENT: &str = "bench-gateway";
/// Rounds of the three runs (rumqttc peer, mosquitto_sub, devtel), interleaved; the fastest
/// run of each is compared. On this 2-core machine single runs vary by about 10 %.
const ROUNDS: usize = 3;
/// Thread name of the bench's runtime, which runs the gateway's MQTT client.
const RUNTIME: &str = "bench-runtime";

/// Ends the persistent session of `id`, so the broker stops queueing for it between runs.
async fn clear_session(port: u16, id: &str) {
    let (client, mut ev) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 10);
    while !matches!(ev.poll().await, Ok(Event::Incoming(Packet::ConnAck(_)))) {}
    client.disconnect().await.ok();
    while ev.poll().await.is_ok() {}
}

/// devtel: the gateway's MQTT side with its store.
/// CPU seconds (user + system) so far of this process's threads named `name`, from
/// /proc/self/task (Linux; 0 elsewhere).
fn thread_cpu(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| stat_cpu(&t.path().join("stat")))
        .sum()
}

/// CPU seconds so far of the calling thread.
fn own_cpu() -> f64 {
    stat_cpu(Path::new("/proc/thread-self/stat"))
}

/// User + system CPU seconds from a /proc `stat` file (0 when unreadable).
fn stat_cpu(path: &Path) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name in parentheses: utime and stime are 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>()
        / ticks
}

/// One devtel run: its time, its commits, and the CPU seconds of the gateway's threads and of
/// the publisher.
#[derive(Clone, Default)]
struct DevtelRun {
    elapsed: Duration,
    /// The broker's CPU and the idle cores during the run.
    machine: String,
    per_commit: f64,
    commits: u64,
    check_cpu: f64,
    commit_cpu: f64,
    /// The gateway's MQTT client: the bench's runtime threads (`bench-runtime`), which run
    /// nothing else but the 2 ms progress check.
    client_cpu: f64,
    publisher_cpu: f64,
}

/// `postgres`: the URL of an empty PostgreSQL database to commit to instead of SQLite (one
/// replica, no group: what each replica of a group does per message, without the lease).
async fn devtel(
    port: u16,
    dir: &Path,
    work: &[(String, Vec<u8>)],
    postgres: Option<&str>,
) -> DevtelRun {
    let db = dir.join("ingest.sqlite");
    let store_conf = match postgres {
        None => {
            let _ = std::fs::remove_file(&db);
            format!("path = \"{}\"", db.display())
        }
        Some(url) => format!("url = \"{url}\""),
    };
    let config = Config::from_toml(&format!(
        "broker = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"{CLIENT}\"\nhttp_listen = \"127.0.0.1:0\"\n[store]\n{store_conf}\n[aggregation]\ntimezone = \"UTC\"\n"
    ))
    .unwrap();
    let store = {
        let config = config.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Backend::open(&config, &handle).unwrap())
            .await
            .unwrap()
    };
    let mut shared = Shared::new(Aggregator::with_settings(config.core.clone()));
    if let Some(p) = &config.postgres {
        shared.replica = Some(Replica::new(p, None, CLIENT.into(), 0));
    }
    let shared = Arc::new(shared);
    let stop = tokio_util::sync::CancellationToken::new();
    let options = devtel_gateway::mqtt::options(&config).unwrap();
    let task = tokio::spawn(devtel_gateway::mqtt::run(
        options,
        config.mqtt.reconnect_max,
        shared.clone(),
        store,
        stop.clone(),
    ));
    while !shared
        .mqtt_connected
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // SUBACK
    let n = work.len() as u64;
    let client_before = thread_cpu(RUNTIME);
    let machine = Machine::now();
    let started = Instant::now();
    let publisher = spawn_publisher(port, work);
    let mut last = (0, Instant::now());
    loop {
        let c = shared.stats.snapshot();
        if c.applied + c.stale >= n {
            break;
        }
        if c.applied + c.stale > last.0 {
            last = (c.applied + c.stale, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            panic!("devtel stalled at {} of {n}: {c:?}", last.0);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let machine = Machine::now().since(machine, work.len());
    let client_cpu = thread_cpu(RUNTIME) - client_before;
    let publisher_cpu = publisher.join().await;
    let c = shared.stats.snapshot();
    let run = DevtelRun {
        elapsed,
        machine,
        per_commit: c.committed_messages as f64 / c.commits.max(1) as f64,
        commits: c.commits,
        check_cpu: thread_cpu("devtel-check"),
        commit_cpu: thread_cpu("devtel-ingest"),
        client_cpu,
        publisher_cpu,
    };
    stop.cancel();
    task.await.unwrap().unwrap();
    clear_session(port, CLIENT).await;
    run
}

/// A start on the last devtel run's store (its envelopes and the snapshot of its clean stop):
/// the time to rebuild the figures from the snapshot, the snapshot's size, and the time of a
/// full replay (the snapshot removed).
fn restart(dir: &Path) -> (Duration, usize, Duration) {
    let db = dir.join("ingest.sqlite");
    let core = Config::from_toml("[aggregation]\ntimezone = \"UTC\"\n")
        .unwrap()
        .core;
    let size: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT coalesce(max(length(body)), 0) FROM snapshots",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let started = Instant::now();
    drop(devtel_gateway::rebuild(&core, &db).unwrap());
    let from_snapshot = started.elapsed();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM snapshots", [])
        .unwrap();
    let started = Instant::now();
    drop(devtel_gateway::rebuild(&core, &db).unwrap());
    (from_snapshot, size as usize, started.elapsed())
}

/// A replica's start on the PostgreSQL store at `url` (the last run on it): the time to its
/// first answer from the snapshot of its clean stop, and that of a full catch-up (the
/// snapshots removed: every envelope read from the server and applied).
fn restart_postgres(rt: &tokio::runtime::Runtime, url: &str) -> (Duration, Duration) {
    let config = Config::from_toml(&format!(
        "[store]\nurl = \"{url}\"\n[aggregation]\ntimezone = \"UTC\"\n"
    ))
    .unwrap();
    let start = || {
        let started = Instant::now();
        let mut store = Backend::open(&config, rt.handle()).unwrap();
        drop(devtel_gateway::rebuild_from(&config.core, &mut store, "bench").unwrap());
        started.elapsed()
    };
    let from_snapshot = start();
    rt.block_on(async {
        let (client, connection) = url
            .parse::<tokio_postgres::Config>()
            .unwrap()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.execute("DELETE FROM snapshots", &[]).await.unwrap();
    });
    (from_snapshot, start())
}

/// Core: commit + aggregate without MQTT, `batch` envelopes per transaction.
fn core(dir: &Path, work: &[(String, Vec<u8>)], batch: usize) -> Duration {
    let db = dir.join(format!("core-{batch}.sqlite"));
    let _ = std::fs::remove_file(&db);
    let mut store = Store::open(&db).unwrap();
    let mut agg = Aggregator::new();
    let started = Instant::now();
    for chunk in work.chunks(batch) {
        let items: Vec<Item> = chunk
            .iter()
            .map(|(_, p)| {
                let e = devtel_protocol::decode(p).unwrap();
                Item::Envelope {
                    envelope: Box::new(e),
                    payload: p.clone().into(),
                    received_ms: 0,
                }
            })
            .collect();
        let new = store.commit(&items).unwrap();
        for (item, is_new) in items.iter().zip(new) {
            if let (Item::Envelope { envelope, .. }, devtel_gateway::store::Committed::New) =
                (item, is_new)
            {
                agg.ingest(envelope);
            }
        }
    }
    started.elapsed()
}

/// Where the core's time goes, per reading: decode, commit (1,024 per transaction), aggregate,
/// and of the commit the delta against the device's reference (with its average length).
fn core_split(dir: &Path, work: &[(String, Vec<u8>)]) -> (f64, f64, f64, f64, usize) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / work.len() as f64;
    // Decoded as ingest does: into a box that held an earlier envelope.
    let started = Instant::now();
    let mut readings = 0;
    let mut place = Box::new(Envelope::new(
        "site".try_into().unwrap(),
        "x".try_into().unwrap(),
        0,
        0,
        0,
    ));
    for (_, p) in work {
        devtel_protocol::decode_into(p, &mut place).unwrap();
        readings += place.readings.len();
    }
    let decode = per(started.elapsed());
    assert_eq!(readings, work.len());
    let envelopes: Vec<Envelope> = work
        .iter()
        .map(|(_, p)| devtel_protocol::decode(p).unwrap())
        .collect();
    let db = dir.join("split.sqlite");
    let _ = std::fs::remove_file(&db);
    let mut store = Store::open(&db).unwrap();
    let mut commit = Duration::ZERO;
    for (chunk, envs) in work.chunks(1024).zip(envelopes.chunks(1024)) {
        let items: Vec<Item> = chunk
            .iter()
            .zip(envs)
            .map(|((_, p), e)| Item::Envelope {
                envelope: Box::new(e.clone()),
                payload: p.clone().into(),
                received_ms: 0,
            })
            .collect();
        let started = Instant::now();
        store.commit(&items).unwrap();
        commit += started.elapsed();
    }
    let mut agg = Aggregator::new();
    let started = Instant::now();
    for e in &envelopes {
        agg.ingest(e);
    }
    let aggregate = per(started.elapsed());
    // The commit's delta against each device's first payload (the store's reference).
    let mut references = std::collections::HashMap::new();
    let started = Instant::now();
    let mut delta_bytes = 0;
    for ((_, p), e) in work.iter().zip(&envelopes) {
        let device = e.readings.first().map(|r| r.device().to_string());
        let reference = references.entry(device).or_insert_with(|| p.clone());
        delta_bytes += devtel_gateway::delta::diff(reference, p).len();
    }
    let delta = per(started.elapsed());
    (
        decode,
        per(commit),
        aggregate,
        delta,
        delta_bytes / work.len(),
    )
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        devtel_daemon::init_tracing(0, devtel_daemon::LogFormat::Text);
    }
    let n: usize = std::env::var("DEVTEL_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = std::env::temp_dir().join(format!("devtel-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let work = workload(n);
    let bytes: usize = work.iter().map(|(_, p)| p.len()).sum();
    println!(
        "workload: {n} envelopes of real copier readings, {} B average payload",
        bytes / n
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name(RUNTIME)
        .enable_all()
        .build()
        .unwrap();

    let port = free_port();
    let _broker = mosquitto(&dir, port);
    // Warm the broker up, then measure each side ROUNDS times, interleaved, so neither gets
    // the cold start or a quiet minute of the machine alone; the best run of each is reported.
    let _ = rt.block_on(peer(port, &work[..n.min(2_000)]));
    // For profiling one side alone: DEVTEL_BENCH_ONLY=devtel runs only the gateway.
    let only_devtel = std::env::var("DEVTEL_BENCH_ONLY").is_ok_and(|v| v == "devtel");
    let mut peers = Vec::new();
    let mut subs = Vec::new();
    let mut devtels = Vec::new();
    let mut on_postgres = Vec::new();
    let mut last_pg_url = None;
    // The same ingest on a PostgreSQL store (a fresh database per round on a server in a
    // temporary folder, same machine and disk); DEVTEL_BENCH_POSTGRES=0 leaves it out.
    let pg = (!only_devtel && std::env::var("DEVTEL_BENCH_POSTGRES").map_or(true, |v| v != "0"))
        .then(TempPostgres::start);
    for round in 0..ROUNDS {
        if only_devtel {
            devtels.push(rt.block_on(devtel(port, &dir, &work, None)));
            eprintln!("devtel: {:.2?}", devtels.last().map(|d| d.elapsed));
            continue;
        }
        let (t, m) = rt.block_on(peer(port, &work));
        eprintln!("peer (rumqttc): {t:.2?}; {m}");
        peers.push((t, m));
        if let Some((t, m)) = rt.block_on(mosquitto_sub(port, &work)) {
            eprintln!("peer (mosquitto_sub): {t:.2?}; {m}");
            subs.push((t, m));
        }
        if let Some(pg) = &pg {
            let name = format!("ingest_{round}");
            rt.block_on(pg.database(&name));
            let run = rt.block_on(devtel(port, &dir, &work, Some(&pg.url(&name))));
            eprintln!("devtel on PostgreSQL: {:.2?}; {}", run.elapsed, run.machine);
            on_postgres.push(run);
            last_pg_url = Some(pg.url(&name));
        }
        // SQLite last: the start measured below reads this run's store.
        let run = rt.block_on(devtel(port, &dir, &work, None));
        eprintln!("devtel: {:.2?}; {}", run.elapsed, run.machine);
        devtels.push(run);
    }
    if only_devtel {
        let runs: Vec<Duration> = devtels.iter().map(|d| d.elapsed).collect();
        println!("devtel gateway alone (no peers): runs {runs:.2?}");
        return;
    }
    let fastest = |runs: &[(Duration, String)]| runs.iter().min_by_key(|r| r.0).cloned();
    let times = |runs: &[(Duration, String)]| runs.iter().map(|r| r.0).collect::<Vec<_>>();
    let (best_peer, peer_machine) = fastest(&peers).unwrap_or_default();
    let best = devtels
        .iter()
        .min_by_key(|d| d.elapsed)
        .cloned()
        .unwrap_or_default();
    let (p, d) = (rate(n, best_peer), rate(n, best.elapsed));
    println!(
        "mosquitto -> rumqttc QoS1 subscriber that only acks (peer): {p:>9.0} readings/s (runs: {:.2?}; fastest: {peer_machine})",
        times(&peers)
    );
    let best_sub = fastest(&subs);
    match &best_sub {
        Some((t, m)) => println!(
            "mosquitto -> mosquitto_sub -q 1 (peer):                     {:>9.0} readings/s (runs: {:.2?}; fastest: {m})",
            rate(n, *t),
            times(&subs)
        ),
        None => println!("mosquitto_sub not available (apt-get install mosquitto-clients)"),
    }
    let runs: Vec<Duration> = devtels.iter().map(|d| d.elapsed).collect();
    println!(
        "devtel gateway: check, commit (full sync), aggregate, ack:   {d:>9.0} readings/s (runs: {runs:.2?}; fastest: {}), {} commits, {:.1} messages per commit",
        best.machine, best.commits, best.per_commit
    );
    let us = |secs: f64| secs * 1e6 / n as f64;
    println!(
        "devtel CPU per reading (fastest run): MQTT client {:.1} us, check thread {:.1} us, commit thread {:.1} us (commit, aggregate, acknowledge); the publisher {:.1} us",
        us(best.client_cpu),
        us(best.check_cpu),
        us(best.commit_cpu),
        us(best.publisher_cpu)
    );
    println!("ratio devtel / rumqttc peer: {:.2}x", d / p);
    if let Some((t, _)) = best_sub {
        println!("ratio devtel / mosquitto_sub: {:.2}x", d / rate(n, t));
    }
    if let Some(best_pg) = on_postgres.iter().min_by_key(|d| d.elapsed) {
        let runs: Vec<Duration> = on_postgres.iter().map(|d| d.elapsed).collect();
        let g = rate(n, best_pg.elapsed);
        println!(
            "devtel gateway on PostgreSQL (one replica):                 {g:>9.0} readings/s (runs: {runs:.2?}; fastest: {}), {} commits, {:.1} messages per commit; commit thread {:.1} us per reading",
            best_pg.machine, best_pg.commits, best_pg.per_commit, us(best_pg.commit_cpu)
        );
        println!(
            "ratio devtel on PostgreSQL / on SQLite: {:.2}x; / rumqttc peer: {:.2}x",
            g / d,
            g / p
        );
        if let Some((t, _)) = best_sub {
            println!(
                "ratio devtel on PostgreSQL / mosquitto_sub: {:.2}x",
                g / rate(n, t)
            );
        }
    }

    for batch in [1, 16, 256, 1024] {
        let count = if batch == 1 { n.min(2_000) } else { n };
        let t = core(&dir, &work[..count], batch);
        println!(
            "core (commit + aggregate, no MQTT), {batch:>4} per commit: {:>10.0} readings/s",
            rate(count, t)
        );
    }
    let (from_snapshot, snapshot_bytes, full_replay) = restart(&dir);
    println!(
        "start on the store of {n} envelopes: from its snapshot ({} KB) {from_snapshot:.2?}, full replay {full_replay:.2?} ({:.0}x)",
        snapshot_bytes / 1024,
        full_replay.as_secs_f64() / from_snapshot.as_secs_f64().max(1e-9)
    );
    if let Some(url) = &last_pg_url {
        let (from_snapshot, catch_up) = restart_postgres(&rt, url);
        println!(
            "replica start on PostgreSQL ({n} envelopes): from its snapshot {from_snapshot:.2?}, full catch-up {catch_up:.2?} ({:.0} envelopes/s; SQLite full replay {:.0}/s, {:.2}x)",
            rate(n, catch_up),
            rate(n, full_replay),
            full_replay.as_secs_f64() / catch_up.as_secs_f64()
        );
    }
    let (decode, commit, aggregate, delta, delta_len) = core_split(&dir, &work);
    println!(
        "core per reading: decode {decode:.1} us, commit {commit:.1} us (1,024 per transaction; of it delta {delta:.2} us, {delta_len} B), aggregate {aggregate:.1} us"
    );
    let db_bytes: u64 = ["core-1024.sqlite", "core-1024.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "database size: {:.0} B per reading ({} B payload)",
        db_bytes as f64 / n as f64,
        bytes / n
    );
    let _ = std::fs::remove_dir_all(&dir);
}
