//! Dashboard rendering: the HTML of a unit page of 100 recorded copiers (30 days of polls),
//! against the JSON of the same unit's API document in the same run, and the size of every
//! page and asset, and the longest a request held the lock that ingest needs (to take its
//! copy of the figures). Then ingest beside the requests: how long an envelope waited for
//! the lock while the pages were served, against ingest alone in the same run.
//! `cargo bench -p devtel-gateway --bench dashboard`
//! (`DEVTEL_DASH_DEVICES`, default 100; `DEVTEL_DASH_DAYS`, default 30).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::{env, printer, PRINTERS};
use devtel_gateway::aggregate::Aggregator;
use devtel_gateway::Shared;
use devtel_protocol::{Envelope, Level, Reading};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Poll `k` (every 15 minutes from 2026-11-03) of copier `d` of `devices`.
fn poll(
    templates: &[devtel_protocol::PrinterReading],
    devices: usize,
    d: usize,
    k: u64,
) -> Envelope {
    let t0 = 1_793_750_400_000u64; // 2026-11-03
    let ts = t0 + k * 900_000;
    let mut r = templates[d % templates.len()].clone();
    r.device = format!("copier-{d:03}").as_str().try_into().unwrap();
    for m in r.markers.iter_mut() {
        m.life_count = m.life_count.wrapping_add((k * 3) as u32);
    }
    for c in [&mut r.counters.total, &mut r.counters.mono] {
        if let Some(v) = c.as_mut() {
            *v += k * 3;
        }
    }
    for s in r.supplies.iter_mut() {
        if let Some(Level::Value(v)) = s.level.as_mut() {
            *v = v.saturating_sub((k / 50) as u32);
        }
    }
    let mut e = Envelope::new(
        "site".try_into().unwrap(),
        "c".try_into().unwrap(),
        1,
        k * devices as u64 + d as u64,
        ts,
    );
    e.readings.push(Reading::Printer(r)).unwrap();
    e
}

fn aggregator(devices: usize, days: u64) -> Aggregator {
    let templates: Vec<_> = PRINTERS.iter().map(|n| printer(n)).collect();
    let mut agg = Aggregator::new();
    for k in 0..days * 96 {
        for d in 0..devices {
            agg.ingest(&poll(&templates, devices, d, k));
        }
    }
    agg
}

/// Ingests the polls after `first_poll`, one envelope a millisecond, until `stop`: how
/// long each waited for the lock, and how long it held it.
fn ingest_beside(
    shared: Arc<Shared>,
    devices: usize,
    first_poll: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Duration>, Vec<Duration>)> {
    std::thread::spawn(move || {
        let templates: Vec<_> = PRINTERS.iter().map(|n| printer(n)).collect();
        let (mut waits, mut holds) = (Vec::new(), Vec::new());
        let mut n = 0usize;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let e = poll(
                &templates,
                devices,
                n % devices,
                first_poll + (n / devices) as u64,
            );
            let asked = Instant::now();
            let mut agg = shared.write().unwrap();
            let got = Instant::now();
            agg.ingest(&e);
            drop(agg);
            waits.push(got - asked);
            holds.push(got.elapsed());
            n += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        (waits, holds)
    })
}

#[derive(Clone, Copy)]
enum Phase {
    Alone,
    Pages,
    UnderLock,
}

fn quantiles(mut v: Vec<Duration>) -> (f64, f64, usize) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = v.get(v.len() * 99 / 100).copied().unwrap_or_default();
    (ms(p99), ms(v.last().copied().unwrap_or_default()), v.len())
}

async fn get(app: &axum::Router, uri: &str) -> (Duration, usize) {
    let start = Instant::now();
    let resp = app
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{uri}: {}", resp.status());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (start.elapsed(), body.len())
}

async fn median(app: &axum::Router, uri: &str, n: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let (t, s) = get(app, uri).await;
        times.push(t);
        size = s;
    }
    times.sort();
    (times[n / 2], size)
}

fn main() {
    let devices = env("DEVTEL_DASH_DEVICES", 100) as usize;
    let days = env("DEVTEL_DASH_DAYS", 30);
    let started = Instant::now();
    let agg = aggregator(devices, days);
    eprintln!(
        "bench dashboard: {devices} copiers in unit u, {days} days of 15-min polls, aggregated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let shared = Arc::new(Shared::new(agg));
    let app = devtel_gateway::http::router(shared.clone());
    // The longest a request of the kind held the aggregator (ingest waits meanwhile).
    let held = |shared: &Shared| {
        let us = shared
            .lock_holds
            .max_us
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        us as f64 / 1e3
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pages = [
        ("GET /units/u (HTML)", "/units/u"),
        ("GET / (overview)", "/"),
        ("GET /devices/copier-001", "/devices/copier-001"),
        ("GET /supplies", "/supplies"),
        (
            "GET /reports/monthly?month=2026-11",
            "/reports/monthly?month=2026-11",
        ),
        (
            "GET /api/reports/monthly csv",
            "/api/reports/monthly?month=2026-11&format=csv",
        ),
        ("GET /api/devices (all)", "/api/devices"),
        ("GET /api/units (all)", "/api/units"),
        (
            "GET /api/consumption by day, 92 d",
            "/api/consumption?unit=u&from=2026-09-01&to=2026-12-01&by=day",
        ),
        ("GET /assets/style.css", "/assets/style.css"),
        ("GET /assets/refresh.js", "/assets/refresh.js"),
    ];
    rt.block_on(async {
        let n = 30;
        held(&shared);
        let (json, json_size) = median(&app, "/api/units/u", n).await;
        println!(
            "{:<34} {:>9} {:>10}  vs JSON of the unit  {:>12}",
            "answer", "median", "bytes", "lock held max"
        );
        println!(
            "{:<34} {:>7.2}ms {:>10}  1.00x {:>17.2}ms",
            "GET /api/units/u (JSON, peer)",
            json.as_secs_f64() * 1e3,
            json_size,
            held(&shared)
        );
        for (label, uri) in pages {
            let (t, size) = median(&app, uri, n).await;
            println!(
                "{label:<34} {:>7.2}ms {size:>10}  {:.2}x {:>17.2}ms",
                t.as_secs_f64() * 1e3,
                t.as_secs_f64() / json.as_secs_f64(),
                held(&shared)
            );
        }
    });
    // Ingest alone (the peer), then beside every page above requested in turn, then beside
    // the unit's document computed under the lock (as readers did before they took copies).
    let seconds = env("DEVTEL_DASH_INGEST_SECONDS", 3);
    let mut first_poll = days * 96;
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10}",
        "ingest, an envelope a ms", "envelopes", "wait p99", "wait max", "held p99"
    );
    let mut alone_max = 0.0;
    for phase in [Phase::Alone, Phase::Pages, Phase::UnderLock] {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ingest = ingest_beside(shared.clone(), devices, first_poll, stop.clone());
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut requests = 0;
        rt.block_on(async {
            while Instant::now() < until {
                match phase {
                    Phase::Alone => tokio::time::sleep(Duration::from_millis(10)).await,
                    Phase::Pages => {
                        for (_, uri) in pages {
                            get(&app, uri).await;
                            requests += 1;
                        }
                    }
                    Phase::UnderLock => {
                        let doc = shared.write().unwrap().unit("u").unwrap();
                        std::hint::black_box(serde_json::to_vec(&doc).unwrap());
                        requests += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (waits, holds) = ingest.join().unwrap();
        first_poll += (waits.len() / devices) as u64 + 1;
        let (p99, max, count) = quantiles(waits);
        let (held_p99, _, _) = quantiles(holds);
        let label = match phase {
            Phase::Alone => {
                alone_max = max;
                "alone (peer)".to_string()
            }
            Phase::Pages => format!("beside {requests} page requests"),
            Phase::UnderLock => format!("beside {requests} unit docs under lock"),
        };
        println!(
            "{label:<34} {count:>10} {p99:>8.2}ms {max:>8.2}ms {held_p99:>8.3}ms{}",
            match phase {
                Phase::Alone => String::new(),
                _ => format!("  wait max {:.1}x alone", max / alone_max.max(1e-3)),
            }
        );
    }
}
