//! The store at scale (not run in CI): a synthetic site history, then what it costs to keep
//! and to come back from.
//!
//! `cargo bench -p devtel-gateway --bench scale` generates `DEVTEL_SCALE_DAYS` (default 30) of
//! 5-minute polls of `DEVTEL_SCALE_DEVICES` (default 1,000) devices in a district's mix (4 %
//! copiers, 92 % IP phones, 4 % 48-port access switches; real readings from the corpus,
//! counters, supplies and seats moving as in operation), commits and aggregates them as the
//! gateway does (commits of `DEVTEL_SCALE_BATCH` envelopes, default 16, snapshots by the
//! default policy), then prints:
//! - store size per reading and per device and year, by device kind, against the bytes
//!   received (the payloads);
//! - time from the start of the `devtel-gateway` binary to its first API answer, against a
//!   full replay of the same store (the start before snapshots), and its memory at rest;
//! - latency of history and consumption queries for a month and the whole history, against
//!   `/healthz` (the HTTP floor) in the same run;
//! - the commit + aggregate rate on the first and the last simulated day;
//! - a raw retention run deleting the oldest third: its rate and the space given back.
//!
//! A year (`DEVTEL_SCALE_DAYS=365`, about 105 million readings) takes about an hour here and
//! 4 GB of disk; the default month is extrapolated per year (the store grows linearly: every
//! table but the snapshots is per envelope).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devtel_gateway::aggregate::Aggregator;
use devtel_gateway::store::{Item, Store};
use devtel_protocol::{
    encode_to_vec, Capacity, DockReading, Envelope, Level, Occupancy, PhoneReading, PrinterReading,
    Reading,
};

mod common;
use common::{env, free_port};

const PRINTERS: &[&str] = &[
    "sharp",
    "konica_c250i",
    "ricoh_mpc3002",
    "canonprinter_ir-adv",
    "kyocera",
    "lexmarkprinter",
    "fujifilmprinter_c7580",
    "toshiba-tec_estudio2505",
];
const PHONES: &[&str] = &[
    "allworx_voip",
    "ascom_ipbs3",
    "ciscospa_spa112",
    "grandstream-ht_ht802",
    "heliosip",
    "innovaphone",
];
const SWITCH: &str = "fortiswitch_s248ep";
const POLL_MS: u64 = 300_000;
const DAY_MS: u64 = 86_400_000;
/// 2026-01-05T00:00Z, a Monday.
const T0: u64 = 1_767_571_200_000;
const UNITS: usize = 10;

fn varbinds(name: &str) -> devtel_devices::snmp::VarbindSet {
    devtel_devices::corpus::varbinds(name)
}

fn identity(device: &str, unit: &str) -> devtel_devices::DeviceIdentity {
    devtel_devices::DeviceIdentity {
        device: device.try_into().unwrap(),
        unit: unit.try_into().unwrap(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Copier,
    Phone,
    Switch,
}

const KINDS: [Kind; 3] = [Kind::Copier, Kind::Phone, Kind::Switch];

/// One device of the fleet: its kind, name, unit and template reading.
struct Device {
    kind: Kind,
    name: String,
    unit: String,
    template: Reading,
}

struct Templates {
    printers: Vec<PrinterReading>,
    phones: Vec<PhoneReading>,
    switch: DockReading,
}

fn templates() -> Templates {
    let id = identity("x", "u");
    Templates {
        printers: PRINTERS
            .iter()
            .map(|n| devtel_devices::copier::map(&id, &varbinds(n)).expect(n))
            .collect(),
        phones: PHONES
            .iter()
            .map(|n| devtel_devices::phone::map(&id, &varbinds(n)).expect(n))
            .collect(),
        switch: devtel_devices::dock::map(
            &id,
            &devtel_devices::dock::Selection::default(),
            &varbinds(SWITCH),
        )
        .expect(SWITCH)
        .reading,
    }
}

/// `n` devices: one copier and one switch in 25, the rest phones.
fn fleet(n: usize, t: &Templates) -> Vec<Device> {
    (0..n)
        .map(|i| {
            let kind = match i % 25 {
                0 => Kind::Copier,
                1 => Kind::Switch,
                _ => Kind::Phone,
            };
            let unit = format!("ba.unit-{}", i % UNITS);
            let name = format!("{kind:?}-{i:04}").to_lowercase();
            let template = match kind {
                Kind::Copier => {
                    let mut r = t.printers[(i / 25) % t.printers.len()].clone();
                    r.device = name.as_str().try_into().unwrap();
                    r.unit = unit.as_str().try_into().unwrap();
                    Reading::Printer(r)
                }
                Kind::Phone => {
                    let mut r = t.phones[i % t.phones.len()].clone();
                    r.device = name.as_str().try_into().unwrap();
                    r.unit = unit.as_str().try_into().unwrap();
                    Reading::Phone(r)
                }
                Kind::Switch => {
                    let mut r = t.switch.clone();
                    r.device = name.as_str().try_into().unwrap();
                    r.unit = unit.as_str().try_into().unwrap();
                    Reading::Dock(r)
                }
            };
            Device {
                kind,
                name,
                unit,
                template,
            }
        })
        .collect()
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Device `d`'s reading at poll `k` (poll time `ts`): counters advance in working hours,
/// toner goes down with the pages and is replaced when empty, seats fill in working hours,
/// uptime ticks on.
fn reading(d: &Device, k: u64, ts: u64, rng: &mut Rng) -> Reading {
    let minute_of_day = (ts % DAY_MS) / 60_000;
    let weekday = (ts - T0) / DAY_MS % 7 < 5;
    let working = weekday && (7 * 60..17 * 60).contains(&minute_of_day);
    let mut r = d.template.clone();
    match &mut r {
        Reading::Printer(p) => {
            // Pages go up in working hours (about 7 a poll, 850 a working day); the mono
            // share is two thirds.
            let pages = k * 7 + if working { rng.next() % 7 } else { 0 };
            for m in p.markers.iter_mut() {
                m.life_count = m.life_count.wrapping_add(pages as u32);
            }
            for (c, share) in [
                (&mut p.counters.total, 3),
                (&mut p.counters.mono, 2),
                (&mut p.counters.colour, 1),
            ] {
                if let Some(v) = c.as_mut() {
                    *v = v.wrapping_add(pages * share / 3);
                }
            }
            // Each supply runs down over a few weeks, then is replaced (full again).
            for (i, s) in p.supplies.iter_mut().enumerate() {
                if let (Some(Capacity::Value(max)), Some(Level::Value(_))) =
                    (s.max_capacity, s.level)
                {
                    if max > 0 {
                        let used = k / (30 + i as u64 * 7);
                        s.level = Some(Level::Value(max - (used % u64::from(max)) as u32));
                    }
                }
            }
        }
        Reading::Phone(p) => {
            p.uptime_ticks = p.uptime_ticks.map(|u| u.wrapping_add(k as u32 * 30_000));
        }
        Reading::Dock(s) => {
            s.uptime_ticks = s.uptime_ticks.map(|u| u.wrapping_add(k as u32 * 30_000));
            for (i, seat) in s.seats.iter_mut().enumerate() {
                let here = working && (rng.next() % 100) < 60 + (i as u64 % 3) * 10;
                seat.occupancy = if here {
                    Occupancy::Occupied
                } else {
                    Occupancy::Idle
                };
                seat.clients = u16::from(here);
            }
        }
        Reading::NoResponse(_) => {}
    }
    r
}

struct Generated {
    envelopes: u64,
    payload_bytes: [u64; 3],
    readings: [u64; 3],
    first_day: Duration,
    last_day: Duration,
    snapshots: u64,
    /// The longest snapshot (serialised and stored).
    snapshot_max: Duration,
}

/// Writes `days` of polls of `fleet` into the store at `db` as the gateway would: commits of
/// `batch`, each envelope aggregated, a snapshot after every 100,000 envelopes.
fn generate(db: &Path, fleet: &[Device], days: u64, batch: usize, quiet: bool) -> Generated {
    let snapshots = !quiet;
    let mut store = Store::open(db).unwrap();
    // The settings of the gateway started on the store below (its snapshots restore there).
    let config = devtel_gateway::config::Config::from_toml(&config_text(db, 1, 0)).unwrap();
    let mut agg = Aggregator::with_settings(config.core);
    let mut snapshot_max = Duration::ZERO;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Generated {
        envelopes: 0,
        payload_bytes: [0; 3],
        readings: [0; 3],
        first_day: Duration::ZERO,
        last_day: Duration::ZERO,
        snapshots: 0,
        snapshot_max: Duration::ZERO,
    };
    let polls_per_day = DAY_MS / POLL_MS;
    let n = fleet.len() as u64;
    let mut items = Vec::with_capacity(batch);
    let mut since_snapshot = 0;
    let started = Instant::now();
    for day in 0..days {
        let day_started = Instant::now();
        for p in 0..polls_per_day {
            let k = day * polls_per_day + p;
            for (i, d) in fleet.iter().enumerate() {
                let ts = T0 + k * POLL_MS + i as u64 * POLL_MS / n;
                let mut e = Envelope::new(
                    "site".try_into().unwrap(),
                    "site-1".try_into().unwrap(),
                    1,
                    out.envelopes,
                    ts,
                );
                e.readings.push(reading(d, k, ts, &mut rng)).unwrap();
                let payload = encode_to_vec(&e).unwrap();
                let kind = KINDS.iter().position(|x| *x == d.kind).unwrap();
                out.payload_bytes[kind] += payload.len() as u64;
                out.readings[kind] += 1;
                out.envelopes += 1;
                items.push(Item::Envelope {
                    envelope: Box::new(e),
                    payload: payload.into(),
                    received_ms: ts + 1_000,
                });
                if items.len() == batch {
                    commit(&mut store, &mut agg, &mut items);
                    since_snapshot += batch;
                    if snapshots && since_snapshot >= 100_000 {
                        let started = Instant::now();
                        store
                            .save_snapshot(store.last_id(), ts, &agg.snapshot())
                            .unwrap();
                        snapshot_max = snapshot_max.max(started.elapsed());
                        out.snapshots += 1;
                        since_snapshot = 0;
                    }
                }
            }
        }
        let took = day_started.elapsed();
        if !quiet {
            let (c, a) = std::mem::take(&mut *SPLIT.lock().unwrap());
            let per = |d: Duration| d.as_secs_f64() * 1e6 / (polls_per_day * n) as f64;
            println!(
                "  day {}: commit {:.1} µs, aggregate {:.1} µs per reading",
                day + 1,
                per(c),
                per(a)
            );
        }
        if day == 0 {
            out.first_day = took;
        }
        out.last_day = took;
        if !quiet && (day + 1) % 10 == 0 {
            println!(
                "  day {} of {days}: {} envelopes, {:.0?} so far",
                day + 1,
                out.envelopes,
                started.elapsed()
            );
        }
    }
    commit(&mut store, &mut agg, &mut items);
    out.snapshot_max = snapshot_max;
    if snapshots {
        store
            .save_snapshot(store.last_id(), T0 + days * DAY_MS, &agg.snapshot())
            .unwrap();
    }
    out
}

/// Rows of `table` in the store at `db`.
fn rows(db: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Time in the store's commits and in aggregation, for the progress lines.
static SPLIT: std::sync::Mutex<(Duration, Duration)> =
    std::sync::Mutex::new((Duration::ZERO, Duration::ZERO));

fn commit(store: &mut Store, agg: &mut Aggregator, items: &mut Vec<Item>) {
    if items.is_empty() {
        return;
    }
    let started = Instant::now();
    let new = store.commit(items).unwrap();
    let committed = started.elapsed();
    for (item, is_new) in items.iter().zip(new) {
        if let (Item::Envelope { envelope, .. }, devtel_gateway::store::Committed::New) =
            (item, is_new)
        {
            agg.ingest(envelope);
        }
    }
    if let Ok(mut split) = SPLIT.lock() {
        split.0 += committed;
        split.1 += started.elapsed() - committed;
    }
    items.clear();
}

/// Database and WAL after a checkpoint, in bytes.
fn store_bytes(db: &Path) -> u64 {
    if let Ok(conn) = rusqlite::Connection::open(db) {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    [db.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// One HTTP GET: status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The gateway's configuration: the store at `db`, a broker port nobody listens on (the
/// HTTP API answers without one), the district's units.
fn config_text(db: &Path, broker: u16, http: u16) -> String {
    let mut conf = format!(
        "broker = \"mqtt://127.0.0.1:{broker}\"\nclient_id = \"bench-scale\"\nhttp_listen = \"127.0.0.1:{http}\"\n[store]\npath = \"{}\"\n",
        db.display()
    );
    conf.push_str("[[units]]\nid = \"ba\"\n");
    for u in 0..UNITS {
        conf.push_str(&format!(
            "[[units]]\nid = \"ba.unit-{u}\"\nparent = \"ba\"\n"
        ));
    }
    conf
}

/// Starts the gateway binary on `db`; returns it, its HTTP port and the time to the first
/// answer of `/api/units`.
fn start_gateway(dir: &Path, db: &Path) -> (Gateway, u16, Duration) {
    let http = free_port();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config_text(db, free_port(), http)).unwrap();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_devtel-gateway"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let gateway = Gateway(child);
    loop {
        if let Some((200, _)) = get(http, "/api/units") {
            return (gateway, http, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(3_600),
            "the gateway did not answer"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Median of `n` GETs of `path`, and the size of the answer.
fn latency(port: u16, path: &str, n: usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..n {
        let started = Instant::now();
        let (status, body) = get(port, path).unwrap();
        times.push(started.elapsed());
        assert_eq!(status, 200, "{path}: {body}");
        size = body.len();
    }
    times.sort();
    (times[n / 2], size)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        devtel_daemon::init_tracing(0, devtel_daemon::LogFormat::Text);
    }
    let days = env("DEVTEL_SCALE_DAYS", 30).max(3);
    let devices = env("DEVTEL_SCALE_DEVICES", 1_000).max(25) as usize;
    let batch = env("DEVTEL_SCALE_BATCH", 16).max(1) as usize;
    let dir = std::env::temp_dir().join(format!("devtel-bench-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t = templates();

    // Per kind, on its own (20 devices, 3 days, no snapshot): bytes on disk per reading
    // against the bytes received, in commits of `batch` and of one envelope (a quiet site).
    println!(
        "store bytes per reading by kind (3 days of 20 devices, 5-minute polls, no snapshots):"
    );
    for kind in KINDS {
        let one: Vec<Device> = fleet(500, &t)
            .into_iter()
            .filter(|d| d.kind == kind)
            .take(20)
            .collect();
        for b in [batch, 1] {
            let db = dir.join(format!("{kind:?}-{b}.sqlite"));
            let g = generate(&db, &one, 3, b, true);
            let k = KINDS.iter().position(|x| *x == kind).unwrap();
            let bytes = store_bytes(&db);
            let n = g.readings[k];
            println!(
                "  {kind:?}, commits of {b:>2}: {:>5.0} B on disk per reading, {:>5.0} B received ({:.1}% of it); {} packs, {} reference payloads",
                bytes as f64 / n as f64,
                g.payload_bytes[k] as f64 / n as f64,
                100.0 * bytes as f64 / g.payload_bytes[k] as f64,
                rows(&db, "packs"),
                rows(&db, "refs"),
            );
        }
    }

    let fleet = fleet(devices, &t);
    let db = dir.join("site.sqlite");
    // Profiling aid: only the ingest comparison, on a store kept by an earlier run.
    if let Some(kept) = std::env::var_os("DEVTEL_SCALE_INGEST_ON") {
        ingest_comparison(&dir, Path::new(&kept), &fleet, days);
        return;
    }
    println!(
        "generating {days} days of {devices} devices ({} copiers, {} phones, {} switches), commits of {batch} ...",
        fleet.iter().filter(|d| d.kind == Kind::Copier).count(),
        fleet.iter().filter(|d| d.kind == Kind::Phone).count(),
        fleet.iter().filter(|d| d.kind == Kind::Switch).count(),
    );
    let started = Instant::now();
    let g = generate(&db, &fleet, days, batch, false);
    let took = started.elapsed();
    let per_day = (DAY_MS / POLL_MS) as f64 * devices as f64;
    println!(
        "  {} envelopes in {took:.0?}; commit + aggregate {:.0} readings/s on the first day, {:.0}/s on the last ({:.2}x); {} snapshots, the longest {:.0?}",
        g.envelopes,
        per_day / g.first_day.as_secs_f64(),
        per_day / g.last_day.as_secs_f64(),
        g.first_day.as_secs_f64() / g.last_day.as_secs_f64(),
        g.snapshots,
        g.snapshot_max
    );
    let bytes = store_bytes(&db);
    let received: u64 = g.payload_bytes.iter().sum();
    let snapshot: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT max(length(body)) FROM snapshots", [], |r| r.get(0))
        .unwrap();
    let year = 365.0 / days as f64;
    println!(
        "store: {:.1} MB, {:.1} B per reading ({:.1}% of the {:.0} B received); {:.1} MB per device and year; a year of this site {:.2} GB; snapshot {:.1} MB",
        bytes as f64 / 1e6,
        bytes as f64 / g.envelopes as f64,
        100.0 * bytes as f64 / received as f64,
        received as f64 / g.envelopes as f64,
        bytes as f64 * year / devices as f64 / 1e6,
        bytes as f64 * year / 1e9,
        snapshot as f64 / 1e6
    );

    ingest_comparison(&dir, &db, &fleet, days);

    // The start: the binary on this store (from its snapshot), then on a copy without
    // snapshots (a full replay: every start before snapshots).
    let (gateway, http, first_answer) = start_gateway(&dir, &db);
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kb(gateway.0.id());
    println!(
        "start to the first API answer: {first_answer:.2?}; memory at rest {:.0} MB",
        rss as f64 / 1024.0
    );

    // Queries, median of 5, against the HTTP floor.
    let (floor, _) = latency(http, "/healthz", 21);
    let copier = &fleet[0];
    let last_day = T0 + (days - 1) * DAY_MS;
    let date = |ms: u64| {
        jiff::Timestamp::from_millisecond(ms as i64)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
    };
    let month_from = date(last_day.saturating_sub(29 * DAY_MS).max(T0));
    let (first, last) = (date(T0), date(last_day));
    println!("queries (median of 5; /healthz {floor:.2?}):");
    for (what, path) in [
        (
            "history of a copier, a month",
            format!(
                "/api/devices/{}/history?from={month_from}&to={last}&limit=10000",
                copier.name
            ),
        ),
        (
            "history of a copier, all days",
            format!(
                "/api/devices/{}/history?from={first}&to={last}&limit=10000",
                copier.name
            ),
        ),
        (
            "consumption of the district by day, a month",
            format!("/api/consumption?unit=ba&from={month_from}&to={last}&by=day"),
        ),
        (
            "consumption of the district by day, all days",
            format!("/api/consumption?unit=ba&from={first}&to={last}&by=day"),
        ),
        (
            "consumption of a unit by month, all days",
            format!(
                "/api/consumption?unit={}&from={first}&to={last}&by=month",
                copier.unit
            ),
        ),
        ("the unit tree", "/api/units".to_string()),
    ] {
        let (median, size) = latency(http, &path, 5);
        println!(
            "  {what}: {median:.2?} ({:.0}x /healthz), {} KB",
            median.as_secs_f64() / floor.as_secs_f64(),
            size / 1024
        );
    }
    drop(gateway);

    let full = std::env::var("DEVTEL_SCALE_FULL_REPLAY").ok();
    if full.as_deref() == Some("0") || (g.envelopes > 30_000_000 && full.is_none()) {
        println!("start without snapshots: skipped (above 30 million envelopes, or DEVTEL_SCALE_FULL_REPLAY=0; =1 runs it)");
    } else {
        full_replay(&dir, &db, g.envelopes, first_answer);
    }
    retention(&db, days, bytes);
    if std::env::var_os("DEVTEL_SCALE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept: {}", dir.display());
    }
}

/// The start on a copy of the store without snapshots (a full replay).
fn full_replay(dir: &Path, db: &Path, envelopes: u64, from_snapshot: Duration) {
    let full = dir.join("full.sqlite");
    std::fs::copy(db, &full).unwrap();
    rusqlite::Connection::open(&full)
        .unwrap()
        .execute("DELETE FROM snapshots", [])
        .unwrap();
    let (gateway, _, full_start) = start_gateway(dir, &full);
    drop(gateway);
    let _ = std::fs::remove_file(&full);
    println!(
        "start without snapshots (full replay of {envelopes} envelopes): {full_start:.2?}, {:.0}x the start from the snapshot",
        full_start.as_secs_f64() / from_snapshot.as_secs_f64()
    );
}

/// Raw retention: the oldest third deleted in steps, as the commit thread runs it.
fn retention(db: &Path, days: u64, bytes: u64) {
    let cutoff = T0 + days / 3 * DAY_MS;
    let mut store = Store::open(db).unwrap();
    let started = Instant::now();
    let (mut deleted, mut steps, mut longest) = (0, 0, Duration::ZERO);
    loop {
        let step_started = Instant::now();
        let step = store.prune_raw(cutoff).unwrap();
        longest = longest.max(step_started.elapsed());
        deleted += step.envelopes;
        steps += 1;
        if !step.more {
            break;
        }
    }
    let took = started.elapsed();
    drop(store);
    let after = store_bytes(db);
    println!(
        "raw retention, the first {} days: {deleted} envelopes in {steps} steps, {took:.1?} ({:.0}/s, longest step {longest:.1?}); store {:.1} -> {:.1} MB",
        days / 3,
        deleted as f64 / took.as_secs_f64(),
        bytes as f64 / 1e6,
        after as f64 / 1e6
    );
}

/// Ingest on the store at `db` against an empty one, same run: 50,000 copier envelopes of a
/// second site in commits of 512 (the ingest bench's batches).
fn ingest_comparison(dir: &Path, db: &Path, fleet: &[Device], days: u64) {
    let work: Vec<Item> = {
        let copiers: Vec<&Device> = fleet.iter().filter(|d| d.kind == Kind::Copier).collect();
        let mut rng = Rng(7);
        (0..50_000u64)
            .map(|i| {
                let d = copiers[i as usize % copiers.len()];
                let k = days * (DAY_MS / POLL_MS) + i / copiers.len() as u64;
                let ts = T0 + k * POLL_MS;
                let mut e = Envelope::new(
                    "site".try_into().unwrap(),
                    "site-2".try_into().unwrap(),
                    1,
                    i,
                    ts,
                );
                e.readings.push(reading(d, k, ts, &mut rng)).unwrap();
                Item::Envelope {
                    payload: encode_to_vec(&e).unwrap().into(),
                    envelope: Box::new(e),
                    received_ms: ts,
                }
            })
            .collect()
    };
    let ingest = |db: &Path| {
        let mut store = Store::open(db).unwrap();
        let mut agg = Aggregator::new();
        let started = Instant::now();
        for chunk in work.chunks(512) {
            let mut items = chunk.to_vec();
            commit(&mut store, &mut agg, &mut items);
        }
        work.len() as f64 / started.elapsed().as_secs_f64()
    };
    let grown = dir.join("grown.sqlite");
    std::fs::copy(db, &grown).unwrap();
    let mut rates = Vec::new();
    for round in 0..3 {
        let empty = dir.join(format!("empty-{round}.sqlite"));
        rates.push((ingest(&empty), 0.0));
        let copy = dir.join(format!("grown-{round}.sqlite"));
        std::fs::copy(&grown, &copy).unwrap();
        // Written out before the clock starts (else the first commit's fsync flushes the copy).
        std::fs::File::open(&copy).unwrap().sync_all().unwrap();
        rates[round].1 = ingest(&copy);
        let _ = std::fs::remove_file(&copy);
        let _ = std::fs::remove_file(&empty);
    }
    let _ = std::fs::remove_file(&grown);
    let best = |f: fn(&(f64, f64)) -> f64| rates.iter().map(f).fold(0.0, f64::max);
    let (empty_rate, grown_rate) = (best(|r| r.0), best(|r| r.1));
    println!(
        "commit + aggregate, 50,000 copier readings in commits of 512 (fastest of 3): on this store {grown_rate:.0}/s, on an empty one {empty_rate:.0}/s ({:.2}x)",
        grown_rate / empty_rate
    );
}
