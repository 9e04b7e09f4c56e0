//! Spool write cost: bytes on disk per reading and readings per second for each fsync policy,
//! with real copier readings (the corpus recordings mapped by devtel), next to two peers
//! measured in the same run on the same disk:
//! - the floor: the same envelope bytes appended to a plain file with no framing, no checksum
//!   and the same sync pattern;
//! - JSON lines of the same readings (what a JSON-based buffer such as a Telegraf-style disk
//!   buffer or a message log would store), for the size.
//!
//! Run: `cargo bench -p devtel-collector --bench spool_write` (env: DEVTEL_BENCH_READINGS,
//! DEVTEL_BENCH_DIR for the disk to measure, default the system temp dir). Prints figures;
//! asserts nothing.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use devtel_collector::publisher::spool_payload;
use devtel_collector::spool::{Fsync, Spool, SpoolConfig};
use devtel_devices::snmprec;
use devtel_devices::{copier, DeviceIdentity};
use devtel_protocol::{encode_to_vec, topic, Envelope, Reading};

use common::{env_usize, PRINTERS};

/// (spool payload, JSON line) of each recorded copier.
fn readings() -> Vec<(Vec<u8>, Vec<u8>)> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/snmprec");
    PRINTERS
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let text = fs::read_to_string(corpus.join(format!("{name}.snmprec"))).ok()?;
            let (vb, _) = snmprec::parse(&text);
            let id = DeviceIdentity {
                device: format!("copier-{i}").as_str().try_into().unwrap(),
                unit: "bezirksamt.buergeramt".try_into().unwrap(),
            };
            let reading = Reading::Printer(copier::map(&id, &vb).ok()?);
            let mut env = Envelope::new(
                "site".try_into().unwrap(),
                "rathaus-gw1".try_into().unwrap(),
                1_795_000_000_000,
                1_000_000 + i as u64,
                1_795_000_000_000,
            );
            let t = topic::telemetry("berlin-mitte", reading.unit(), reading.device()).unwrap();
            let json = serde_json::to_vec(&reading).unwrap();
            env.readings.push(reading).unwrap();
            let bytes = encode_to_vec(&env).unwrap();
            let mut line = json;
            line.push(b'\n');
            Some((spool_payload(&t, &bytes), line))
        })
        .collect()
}

struct Figures {
    per_second: f64,
    bytes_per_reading: f64,
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// devtel's spool: `n` appends, synced every `batch` appends (the policy decides whether a
/// sync writes), then every record acknowledged.
fn spool_run(
    dir: &Path,
    data: &[(Vec<u8>, Vec<u8>)],
    n: usize,
    batch: usize,
    fsync: Fsync,
) -> Figures {
    let d = fresh(dir, "spool");
    let mut spool = Spool::open(SpoolConfig::new(&d, 1 << 30, fsync)).unwrap();
    let started = Instant::now();
    for i in 0..n {
        spool.append(&data[i % data.len()].0).unwrap();
        if (i + 1) % batch == 0 {
            spool.sync().unwrap();
        }
    }
    spool.sync().unwrap();
    let elapsed = started.elapsed();
    let bytes = spool.bytes();
    Figures {
        per_second: n as f64 / elapsed.as_secs_f64(),
        bytes_per_reading: bytes as f64 / n as f64,
    }
}

/// The floor: the same bytes appended to one plain file, synced by the same policy.
fn plain_run(dir: &Path, data: &[Vec<u8>], n: usize, batch: usize, fsync: Fsync) -> Figures {
    let d = fresh(dir, "plain");
    let path = d.join("plain.log");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let started = Instant::now();
    let mut last_sync = Instant::now();
    for i in 0..n {
        file.write_all(&data[i % data.len()]).unwrap();
        let due = match fsync {
            Fsync::Always => true,
            Fsync::Every(interval) => last_sync.elapsed() >= interval,
            Fsync::Never => false,
        };
        if due && (i + 1) % batch == 0 {
            file.sync_data().unwrap();
            last_sync = Instant::now();
        }
    }
    if fsync != Fsync::Never {
        file.sync_data().unwrap();
    }
    let elapsed = started.elapsed();
    Figures {
        per_second: n as f64 / elapsed.as_secs_f64(),
        bytes_per_reading: fs::metadata(&path).unwrap().len() as f64 / n as f64,
    }
}

fn main() {
    let n = env_usize("DEVTEL_BENCH_READINGS", 20_000);
    let base = std::env::var_os("DEVTEL_BENCH_DIR")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(format!("devtel-spool-bench-{}", std::process::id()));
    let data = readings();
    let envelopes: Vec<Vec<u8>> = data.iter().map(|(p, _)| p.clone()).collect();
    let json: Vec<Vec<u8>> = data.iter().map(|(_, j)| j.clone()).collect();
    let avg = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / v.len() as f64;
    println!(
        "spool write cost, {} recorded copiers cycled, disk under {}",
        data.len(),
        base.display()
    );
    println!(
        "  payload per reading: {:.0} B (topic + postcard envelope); the same reading as JSON: {:.0} B ({:.1}x)",
        avg(&envelopes),
        avg(&json),
        avg(&json) / avg(&envelopes)
    );

    // (label, batch, policy, readings): fsync per reading is slow, so fewer readings.
    let always_n = (n / 10).max(200);
    let cases = [
        (
            "fsync always, 1 reading per sync",
            1,
            Fsync::Always,
            always_n,
        ),
        (
            "fsync always, 64 readings per sync (a poll round)",
            64,
            Fsync::Always,
            n,
        ),
        (
            "fsync every 1s",
            64,
            Fsync::Every(std::time::Duration::from_secs(1)),
            n,
        ),
        ("fsync never", 64, Fsync::Never, n),
    ];
    for (label, batch, fsync, count) in cases {
        let s = spool_run(&base, &data, count, batch, fsync);
        let p = plain_run(&base, &envelopes, count, batch, fsync);
        println!("  {label} ({count} readings):");
        println!(
            "    devtel spool: {:>10.0} readings/s, {:.0} B on disk per reading",
            s.per_second, s.bytes_per_reading
        );
        println!(
            "    plain append: {:>10.0} readings/s, {:.0} B per reading  -> spool at {:.2}x the floor's rate, +{:.0} B framing",
            p.per_second,
            p.bytes_per_reading,
            s.per_second / p.per_second,
            s.bytes_per_reading - p.bytes_per_reading
        );
    }
    let j = plain_run(&base, &json, n, 64, Fsync::Never);
    println!(
        "  JSON lines, no sync ({n} readings): {:.0} readings/s, {:.0} B per reading",
        j.per_second, j.bytes_per_reading
    );

    // Replay: read every record back (what a restart after an outage does).
    let d = fresh(&base, "replay");
    let mut spool = Spool::open(SpoolConfig::new(&d, 1 << 30, Fsync::Never)).unwrap();
    for i in 0..n {
        spool.append(&data[i % data.len()].0).unwrap();
    }
    spool.close().unwrap();
    drop(spool);
    let started = Instant::now();
    let mut spool = Spool::open(SpoolConfig::new(&d, 1 << 30, Fsync::Never)).unwrap();
    let opened = started.elapsed();
    let mut from = 0;
    let mut read = 0usize;
    while let Some(id) = spool.next_pending(from) {
        read += spool.read(id).unwrap().map_or(0, |p| p.len());
        spool.ack(id).unwrap();
        from = id + 1;
    }
    let elapsed = started.elapsed();
    println!(
        "  replay: open + checksum of {n} records {:.1} ms, read + ack all {:.0} readings/s ({} MB)",
        opened.as_secs_f64() * 1000.0,
        n as f64 / elapsed.as_secs_f64(),
        read / 1_000_000
    );
    let _ = fs::remove_dir_all(&base);
}
