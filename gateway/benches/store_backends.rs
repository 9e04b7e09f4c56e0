//! The store on PostgreSQL against the store on SQLite, in one run: commit rates per batch size
//! (as ingest commits: every commit durable — SQLite WAL with synchronous=FULL, PostgreSQL
//! with its default fsync and synchronous_commit), and the replay rate (what a replica that
//! restarts, or follows the others, reads per second).
//!
//! `cargo bench -p devtel-gateway --bench store_backends` (needs Debian's PostgreSQL, which
//! `scripts/setup-test-env.sh` installs, and `../shared/corpus`). Knob: `DEVTEL_BENCH_READINGS`
//! (default 20,000). The server is a fresh cluster in a temporary folder
//! (`devtel_gateway::pg_harness`), on the same machine and disk as the SQLite file.

use std::time::{Duration, Instant};

use devtel_gateway::pg_harness::TempPostgres;
use devtel_gateway::pgstore::PgStore;
use devtel_gateway::store::{Committed, Item, Store};

mod common;
use common::{env, workload};

fn items(work: &[(String, Vec<u8>)]) -> Vec<Item> {
    work.iter()
        .map(|(_, p)| Item::Envelope {
            envelope: Box::new(devtel_protocol::decode(p).unwrap()),
            payload: p.clone().into(),
            received_ms: 0,
        })
        .collect()
}

fn rate(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("DEVTEL_BENCH_READINGS", 20_000) as usize;
    let work = workload(n);
    let all = items(&work);
    let dir = std::env::temp_dir().join(format!("devtel-bench-stores-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pg = TempPostgres::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{n} envelopes of real copier readings, {} B average payload",
        work.iter().map(|(_, p)| p.len()).sum::<usize>() / n
    );
    println!("| per commit | SQLite readings/s | PostgreSQL readings/s | PostgreSQL / SQLite |");
    println!("|---|---|---|---|");
    let mut last_db = String::new();
    for batch in [1usize, 16, 256, 1024] {
        let count = if batch == 1 { n.min(1_000) } else { n };
        let db = dir.join(format!("b{batch}.sqlite"));
        let _ = std::fs::remove_file(&db);
        let mut sqlite = Store::open(&db).unwrap();
        let started = Instant::now();
        for chunk in all[..count].chunks(batch) {
            let done = sqlite.commit(chunk).unwrap();
            assert!(done.iter().all(|c| *c == Committed::New));
        }
        let s = rate(count, started.elapsed());

        let name = format!("bench_{batch}");
        let config = rt.block_on(pg.database(&name));
        let mut postgres = rt.block_on(PgStore::connect(&config)).unwrap();
        let started = Instant::now();
        for chunk in all[..count].chunks(batch) {
            let done = rt.block_on(postgres.commit(chunk)).unwrap();
            assert!(done.iter().all(|c| *c == Committed::New));
        }
        let p = rate(count, started.elapsed());
        println!("| {batch} | {s:.0} | {p:.0} | {:.2}x |", p / s);
        last_db = name;
    }

    // Replay of the whole store (the last database and file hold all n).
    let sqlite = Store::open(&dir.join("b1024.sqlite")).unwrap();
    let started = Instant::now();
    let mut count = 0;
    sqlite.replay(|_| count += 1).unwrap();
    let s = rate(count, started.elapsed());
    let mut config = pg.config();
    config.dbname(&last_db);
    let postgres = rt.block_on(PgStore::connect(&config)).unwrap();
    let started = Instant::now();
    let mut followed = 0;
    let (_, cursor) = rt
        .block_on(postgres.replay_after(0, |_, _| followed += 1))
        .unwrap();
    let p = rate(followed, started.elapsed());
    assert_eq!((count, followed, cursor), (n, n, n as i64));
    println!(
        "replay of {n} envelopes: SQLite {s:.0}/s, PostgreSQL {p:.0}/s ({:.2}x) — a replica's catch-up rate",
        p / s
    );
    let _ = std::fs::remove_dir_all(&dir);
}
