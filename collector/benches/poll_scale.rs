//! Poller scale benchmark: one collector process polling N devices (default 5,000) with the full
//! copier plan (standard tables plus the vendor's private objects) against devtel's own SNMP
//! simulator serving the corpus recordings, and the same SNMP work done by net-snmp's
//! `snmpbulkwalk` (the peer) for a sample of devices in the same run.
//!
//! Run: `cargo bench -p devtel-collector --bench poll_scale` (env: DEVTEL_BENCH_DEVICES,
//! DEVTEL_BENCH_CONCURRENCY, DEVTEL_BENCH_PEER_SAMPLE). Prints figures; asserts nothing.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devtel_collector::config::Device;
use devtel_collector::poller;
use devtel_collector::sim::{self, Agents};
use devtel_collector::snmp::client::{Options, Target, Version};
use devtel_devices::copier;
use devtel_protocol::{DeviceKind, Envelope, Reading};
use tokio_util::sync::CancellationToken;

use common::{env_usize, PRINTERS};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let devices = env_usize("DEVTEL_BENCH_DEVICES", 5_000);
    let concurrency = env_usize("DEVTEL_BENCH_CONCURRENCY", 64);
    let sample = env_usize("DEVTEL_BENCH_PEER_SAMPLE", 100);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/snmprec");
    let agents = Arc::new(Agents::load(&corpus).expect("corpus recordings"));

    // The simulator gets its own thread and runtime, as a separate device fleet would.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let port = socket.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let sim_stop = stop.clone();
    let sim_agents = agents.clone();
    let sim_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let socket = tokio::net::UdpSocket::from_std(socket).unwrap();
            sim::serve(socket, sim_agents, sim_stop).await;
        });
    });

    let fleet: Vec<Device> = (0..devices)
        .map(|i| Device {
            dock: None,
            contexts: Vec::new(),
            id: format!("copier-{i}").as_str().try_into().unwrap(),
            unit: "bench".try_into().unwrap(),
            kind: DeviceKind::Copier,
            target: Target {
                host: "127.0.0.1".into(),
                port,
                version: Version::V2c,
                community: PRINTERS[i % PRINTERS.len()].into(),
                usm: None,
            },
        })
        .collect();
    let opts = Options {
        timeout: Duration::from_secs(2),
        retries: 1,
        ..Options::default()
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let (answered, silent, bytes) = rt.block_on(async {
        let fleet = Arc::new(fleet);
        let (mut answered, mut silent, mut bytes) = (0usize, 0usize, 0usize);
        let never = CancellationToken::new();
        // The collector's own round: bounded concurrency, readings consumed as they finish.
        let transport = devtel_collector::snmp::transport::Transport::bind()
            .await
            .unwrap();
        poller::poll_fleet(
            &fleet,
            opts,
            Some(&transport),
            Duration::from_secs(30),
            concurrency,
            &never,
            |reading| {
                match reading {
                    Reading::NoResponse(_) => silent += 1,
                    _ => answered += 1,
                }
                let mut env = Envelope::new(
                    "site".try_into().unwrap(),
                    "bench".try_into().unwrap(),
                    0,
                    0,
                    0,
                );
                env.readings.push(reading).unwrap();
                bytes += devtel_protocol::encode_to_vec(&env).unwrap().len();
                async {}
            },
        )
        .await;
        (answered, silent, bytes)
    });
    let elapsed = started.elapsed();
    let rss_after = peak_rss_kib();
    let per_minute = devices as f64 / elapsed.as_secs_f64() * 60.0;
    println!(
        "devtel poller: {devices} copiers, concurrency {concurrency}, full copier + vendor plan"
    );
    println!(
        "  {:.2} s, {:.0} devices/min, answered {answered}, no response {silent}, {:.0} B/reading encoded",
        elapsed.as_secs_f64(),
        per_minute,
        bytes as f64 / devices as f64
    );
    println!(
        "  peak RSS {} KiB (before polling {} KiB)",
        rss_after, rss_before
    );

    // Peer: net-snmp's snmpbulkwalk doing the same walks (system scalars + the printer tables)
    // for a sample of devices, `concurrency` processes at a time.
    let roots: Vec<String> = copier::plan()
        .walk
        .iter()
        .map(ToString::to_string)
        .collect();
    let have_peer = std::process::Command::new("snmpbulkwalk")
        .arg("-V")
        .output()
        .is_ok();
    if !have_peer {
        println!("peer: snmpbulkwalk not installed (scripts/setup-test-env.sh installs it)");
    } else {
        let started = Instant::now();
        let mut running: Vec<std::process::Child> = Vec::new();
        for i in 0..sample {
            let community = PRINTERS[i % PRINTERS.len()];
            let mut cmd = std::process::Command::new("sh");
            let walks: Vec<String> = roots
                .iter()
                .map(|r| {
                    format!(
                        "snmpbulkwalk -v2c -c {community} -Cr25 -On -Oq -t 2 -r 1 127.0.0.1:{port} {r}"
                    )
                })
                .collect();
            cmd.arg("-c")
                .arg(format!(
                    "snmpget -v2c -c {community} -On 127.0.0.1:{port} 1.3.6.1.2.1.1.1.0 1.3.6.1.2.1.1.2.0 1.3.6.1.2.1.1.3.0; {}",
                    walks.join("; ")
                ))
                .env("MIBS", "")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            running.push(cmd.spawn().unwrap());
            if running.len() >= concurrency.min(16) {
                for mut c in running.drain(..) {
                    let _ = c.wait();
                }
            }
        }
        for mut c in running {
            let _ = c.wait();
        }
        let peer = started.elapsed();
        let peer_per_minute = sample as f64 / peer.as_secs_f64() * 60.0;
        println!(
            "peer net-snmp snmpget+snmpbulkwalk (same walks, no vendor plan, no mapping): {sample} devices in {:.2} s = {:.0} devices/min",
            peer.as_secs_f64(),
            peer_per_minute
        );
        println!(
            "ratio devtel / net-snmp: {:.1}x",
            per_minute / peer_per_minute
        );
    }
    println!(
        "simulator: answered {} requests",
        agents.answered.load(std::sync::atomic::Ordering::Relaxed)
    );
    stop.cancel();
    let _ = sim_thread.join();
}
