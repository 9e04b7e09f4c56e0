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
//! 3. **Core**: store commit + aggregation without MQTT, per batch size, to show what one
//!    fsync per batch costs.
//!
//! Inputs are real copier readings: corpus recordings mapped by the collector's mapping, each
//! envelope with its own sequence number, poll time and advancing page counter.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devtel_gateway::aggregate::Aggregator;
use devtel_gateway::config::Config;
use devtel_gateway::store::{Item, Store};
use devtel_gateway::Shared;
use devtel_protocol::{encode_to_vec, topic, Envelope, Reading};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const PRINTERS: &[&str] = &[
    "ricoh_mpc3002",
    "sharp",
    "konica_c250i",
    "jetdirect_m130nw",
    "utax",
    "samsungprinter_m4080fx",
    "epson",
    "okilan_9450g",
];

fn corpus() -> PathBuf {
    std::env::var_os("DEVTEL_CORPUS")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// (topic, payload) for `n` readings over 100 devices.
fn workload(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut readings = Vec::new();
    for name in PRINTERS {
        let text =
            std::fs::read_to_string(corpus().join("snmprec").join(format!("{name}.snmprec")))
                .expect("corpus recording");
        let (vb, _) = devtel_collector::snmprec::parse(&text);
        let id = devtel_collector::devices::DeviceIdentity {
            device: (*name).try_into().unwrap(),
            unit: "u".try_into().unwrap(),
        };
        readings.push(devtel_collector::devices::printer::map(&id, &vb).expect("a printer"));
    }
    let t0 = 1_795_000_000_000u64;
    (0..n)
        .map(|i| {
            let device = i % 100;
            let mut r = readings[device % readings.len()].clone();
            let unit = format!("ba.unit-{}", device % 10);
            let dev = format!("copier-{device:03}");
            r.device = dev.as_str().try_into().unwrap();
            r.unit = unit.as_str().try_into().unwrap();
            if let Some(m) = r.markers.first_mut() {
                m.life_count = m.life_count.wrapping_add((i / 100) as u32 * 7);
            }
            let mut e = Envelope::new(
                "bench".try_into().unwrap(),
                1,
                i as u64,
                t0 + (i / 100) as u64 * 60_000,
            );
            e.readings.push(Reading::Printer(r)).unwrap();
            let payload = encode_to_vec(&e).unwrap();
            let t = topic::telemetry("site", &unit, &dev).unwrap().to_string();
            (t, payload)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    Broker(child)
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

/// Peer: a subscriber that acknowledges and does nothing else.
async fn peer(port: u16, work: &[(String, Vec<u8>)]) -> Duration {
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
    let started = Instant::now();
    let publisher = tokio::spawn({
        let work = work.to_vec();
        async move { publish_all(port, &work).await }
    });
    let mut got = 0;
    while got < n {
        if let Event::Incoming(Packet::Publish(p)) = ev.poll().await.unwrap() {
            client.ack(&p).await.unwrap();
            got += 1;
        }
    }
    let elapsed = started.elapsed();
    publisher.await.unwrap();
    client.disconnect().await.ok();
    elapsed
}

/// Peer: Mosquitto's own C client, `mosquitto_sub -q 1 -C N`, timed until it has received N.
async fn mosquitto_sub(port: u16, work: &[(String, Vec<u8>)]) -> Option<Duration> {
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
    let started = Instant::now();
    let publisher = tokio::spawn({
        let work = work.to_vec();
        async move { publish_all(port, &work).await }
    });
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
    publisher.await.ok()?;
    status.success().then_some(elapsed)
}

const CLIENT: &str = "bench-gateway";

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
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name in parentheses: utime and stime are 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .sum()
}

/// One devtel run: its time, messages per commit, commits, and the CPU seconds of its check
/// and commit threads.
type DevtelRun = (Duration, f64, u64, f64, f64);

async fn devtel(port: u16, dir: &Path, work: &[(String, Vec<u8>)]) -> DevtelRun {
    let db = dir.join("ingest.sqlite");
    let _ = std::fs::remove_file(&db);
    let config = Config::from_toml(&format!(
        "broker = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"{CLIENT}\"\nhttp_listen = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n[aggregation]\ntimezone = \"UTC\"\n",
        db.display()
    ))
    .unwrap();
    let store = Store::open(&db).unwrap();
    let shared = Arc::new(Shared::new(Aggregator::with_settings(config.core.clone())));
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
    let started = Instant::now();
    let publisher = tokio::spawn({
        let work = work.to_vec();
        async move { publish_all(port, &work).await }
    });
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
    publisher.await.unwrap();
    let c = shared.stats.snapshot();
    let (check_cpu, commit_cpu) = (thread_cpu("devtel-check"), thread_cpu("devtel-ingest"));
    stop.cancel();
    task.await.unwrap().unwrap();
    clear_session(port, CLIENT).await;
    let per_commit = c.committed_messages as f64 / c.commits.max(1) as f64;
    (elapsed, per_commit, c.commits, check_cpu, commit_cpu)
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
            if let (Item::Envelope { envelope, .. }, true) = (item, is_new) {
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
    let mut place = Box::new(Envelope::new("x".try_into().unwrap(), 0, 0, 0));
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
        devtel_daemon::init_tracing(0);
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
        .enable_all()
        .build()
        .unwrap();

    let port = free_port();
    let _broker = mosquitto(&dir, port);
    // Warm the broker up, then measure each side more than once so neither gets the cold
    // start; the best run of each is reported.
    let _ = rt.block_on(peer(port, &work[..n.min(2_000)]));
    let mut peers = Vec::new();
    let mut subs = Vec::new();
    let mut devtels = Vec::new();
    // The runtime's worker threads: the publisher alone (mosquitto_sub runs), the publisher
    // and the gateway's MQTT client (devtel runs).
    let (mut publisher_cpu, mut runtime_cpu) = (Vec::new(), Vec::new());
    // For profiling one side alone: DEVTEL_BENCH_ONLY=devtel runs only the gateway.
    let only_devtel = std::env::var("DEVTEL_BENCH_ONLY").is_ok_and(|v| v == "devtel");
    for _ in 0..2 {
        if only_devtel {
            devtels.push(rt.block_on(devtel(port, &dir, &work)));
            eprintln!("devtel: {:.2?}", devtels.last().map(|d| d.0));
            continue;
        }
        peers.push(rt.block_on(peer(port, &work)));
        eprintln!("peer (rumqttc): {:.2?}", peers.last());
        let before = thread_cpu("tokio-rt-worker");
        subs.extend(rt.block_on(mosquitto_sub(port, &work)));
        publisher_cpu.push(thread_cpu("tokio-rt-worker") - before);
        eprintln!("peer (mosquitto_sub): {:.2?}", subs.last());
        let before = thread_cpu("tokio-rt-worker");
        devtels.push(rt.block_on(devtel(port, &dir, &work)));
        runtime_cpu.push(thread_cpu("tokio-rt-worker") - before);
        eprintln!("devtel: {:.2?}", devtels.last().map(|d| d.0));
    }
    if only_devtel {
        let runs: Vec<Duration> = devtels.iter().map(|d| d.0).collect();
        println!("devtel gateway alone (no peers): runs {runs:.2?}");
        return;
    }
    let best_peer = peers.iter().min().copied().unwrap_or_default();
    let (devtel_time, per_commit, commits, check_cpu, commit_cpu) = devtels
        .iter()
        .min_by_key(|d| d.0)
        .copied()
        .unwrap_or_default();
    let (p, d) = (rate(n, best_peer), rate(n, devtel_time));
    println!("mosquitto -> rumqttc QoS1 subscriber that only acks (peer): {p:>9.0} readings/s (runs: {peers:.2?})");
    match subs.iter().min() {
        Some(t) => println!("mosquitto -> mosquitto_sub -q 1 (peer):                     {:>9.0} readings/s (runs: {subs:.2?})", rate(n, *t)),
        None => println!("mosquitto_sub not available (apt-get install mosquitto-clients)"),
    }
    let runs: Vec<Duration> = devtels.iter().map(|d| d.0).collect();
    println!("devtel gateway: check, commit (full sync), aggregate, ack:   {d:>9.0} readings/s (runs: {runs:.2?}), {commits} commits, {per_commit:.1} messages per commit");
    let us = |secs: f64| secs * 1e6 / n as f64;
    println!(
        "devtel CPU per reading (fastest run): check thread {:.1} us, commit thread {:.1} us (commit, aggregate, acknowledge); the MQTT client shares the runtime with the publisher",
        us(check_cpu),
        us(commit_cpu)
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "devtel MQTT client CPU per reading: {:.1} us (runtime threads during devtel runs, {:.1} us, less the publisher alone, {:.1} us)",
        us(mean(&runtime_cpu) - mean(&publisher_cpu)),
        us(mean(&runtime_cpu)),
        us(mean(&publisher_cpu))
    );
    println!("ratio devtel / rumqttc peer: {:.2}x", d / p);
    if let Some(t) = subs.iter().min() {
        println!("ratio devtel / mosquitto_sub: {:.2}x", d / rate(n, *t));
    }

    for batch in [1, 16, 256, 1024] {
        let count = if batch == 1 { n.min(2_000) } else { n };
        let t = core(&dir, &work[..count], batch);
        println!(
            "core (commit + aggregate, no MQTT), {batch:>4} per commit: {:>10.0} readings/s",
            rate(count, t)
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
