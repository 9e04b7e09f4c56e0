//! CPU per reading of the collector's delivery bookkeeping with gateway acknowledgements,
//! next to the same work released on the broker's PUBACK alone (`acknowledge = "broker"`,
//! what the collector did before gateway acknowledgements), measured in the same run.
//!
//! Both runs push the same real copier readings through the real spool (`fsync = "never"`, so
//! the disk does not hide the CPU cost) and the real outbox: append, publish, PUBACK, and in
//! gateway mode one acknowledgement per poll round of 100 readings, encoded and decoded as on
//! the wire. No network: this is the collector's own cost.
//!
//! Run: `cargo bench -p devtel-collector --bench delivery` (env: DEVTEL_BENCH_READINGS,
//! default 200,000). Prints figures; asserts nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use devtel_collector::outbox::{Acknowledge, Outbox, Settings};
use devtel_collector::publisher::spool_payload;
use devtel_collector::spool::{Fsync, Spool, SpoolConfig};
use devtel_devices::snmprec;
use devtel_devices::{copier, DeviceIdentity};
use devtel_protocol::{
    decode_ack, encode_ack, encode_to_vec, topic, Ack, Envelope, Reading, SeqRange, MAX_ACK_LEN,
};

use common::{env_usize, PRINTERS};

const ROUND: usize = 100;

fn payloads() -> Vec<Vec<u8>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/snmprec");
    PRINTERS
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let text = std::fs::read_to_string(corpus.join(format!("{name}.snmprec"))).ok()?;
            let (vb, _) = snmprec::parse(&text);
            let id = DeviceIdentity {
                device: format!("copier-{i}").as_str().try_into().unwrap(),
                unit: "ba.it".try_into().unwrap(),
            };
            let reading = copier::map(&id, &vb).ok()?;
            let mut e = Envelope::new(
                "site".try_into().unwrap(),
                "bench".try_into().unwrap(),
                1,
                0,
                1_795_000_000_000,
            );
            e.readings.push(Reading::Printer(reading)).unwrap();
            let t = topic::telemetry("site", "ba.it", &format!("copier-{i}")).unwrap();
            Some(spool_payload(t.as_str(), &encode_to_vec(&e).unwrap()))
        })
        .collect()
}

fn run(mode: Acknowledge, n: usize, payloads: &[Vec<u8>], dir: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(dir);
    let mut spool = Spool::open(SpoolConfig::new(dir, 1 << 30, Fsync::Never)).unwrap();
    let mut outbox = Outbox::new(
        Settings {
            window: ROUND,
            max_awaiting: 5 * ROUND,
            ack_timeout: Duration::from_secs(120),
            acknowledge: mode,
            live_for: Duration::from_secs(60),
        },
        0,
    );
    outbox.connected(false);
    let mut pkid: u16 = 0;
    let mut buf = [0u8; MAX_ACK_LEN];
    let started = Instant::now();
    let mut seq = 0u64;
    while (seq as usize) < n {
        let now = tokio::time::Instant::now();
        for _ in 0..ROUND {
            let p = &payloads[seq as usize % payloads.len()];
            let id = spool.append(p).unwrap();
            outbox.appended(id, 1, seq, now);
            seq += 1;
        }
        spool.sync().unwrap();
        let mut sent = Vec::new();
        while let Some(next) = outbox.next_publish(&mut spool, now) {
            outbox.published(next, &mut spool);
            pkid = pkid.checked_add(1).unwrap_or(1);
            outbox.outgoing_publish(pkid);
            sent.push(pkid);
        }
        for p in sent {
            outbox.puback(p, true, &mut spool, now).unwrap();
        }
        if mode == Acknowledge::Gateway {
            let mut ack = Ack::new("bench".try_into().unwrap(), 1);
            ack.stored
                .push(SeqRange {
                    start: 0,
                    count: seq,
                })
                .unwrap();
            let bytes = encode_ack(&ack, &mut buf).unwrap().to_vec();
            let ack = decode_ack(&bytes).unwrap();
            outbox.gateway_ack(&ack, &mut spool).unwrap();
        }
        spool.persist().unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(spool.pending(), 0, "every reading released");
    assert_eq!(outbox.counts().acknowledged as usize, seq as usize);
    elapsed
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("DEVTEL_BENCH_READINGS", 200_000) / ROUND * ROUND;
    let payloads = payloads();
    let bytes: usize = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len().max(1);
    let dir = std::env::temp_dir().join(format!("devtel-bench-delivery-{}", std::process::id()));
    println!("{n} copier readings, {bytes} B average spool record, {ROUND} per poll round");
    let mut broker = Vec::new();
    let mut gateway = Vec::new();
    for _ in 0..3 {
        broker.push(run(Acknowledge::Broker, n, &payloads, &dir));
        gateway.push(run(Acknowledge::Gateway, n, &payloads, &dir));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let per = |d: &Duration| d.as_secs_f64() * 1e6 / n as f64;
    let b = broker.iter().map(per).fold(f64::INFINITY, f64::min);
    let g = gateway.iter().map(per).fold(f64::INFINITY, f64::min);
    println!("released on PUBACK (acknowledge = \"broker\", peer): {b:.2} us per reading");
    println!("released on the gateway's ack (default):            {g:.2} us per reading");
    println!(
        "ack handling: {:.2} us per reading, ratio gateway / broker mode: {:.2}x",
        g - b,
        g / b
    );
}
