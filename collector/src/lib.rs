//! devtel collector: polls a site's devices over SNMP and publishes compact telemetry over MQTT.
//!
//! # Layout
//! - [`config`]: the TOML file, validated into [`config::Config`].
//! - [`snmp`]: the SNMP v1/v2c/v3 [`snmp::client::Client`], which fills the owned values of
//!   `devtel-devices` ([`snmp::VarbindSet`]).
//! - `devtel-devices` (its own crate): one module per device kind, each a pure plan, detection
//!   and mapping from varbinds to a typed reading, and the snmprec reader.
//! - [`poller`]: runs a kind's plan against one device within a deadline.
//! - [`spool`]: the on-disk spool every reading passes through before it is published.
//! - [`outbox`]: the I/O-free delivery bookkeeping (window, resends, acknowledgements).
//! - [`publisher`]: the delivery loop: spool, outbox and the MQTT 5 client (status, TLS).
//! - [`probe`], [`discover`], [`report`]: one device polled and printed; address sweeps; the
//!   text and JSON of both.
//! - [`sim`]: an SNMP v1/v2c simulator serving those recordings (demo, tests, load tests).
//!
//! [`run`] wires these together: every `poll_interval` it polls all devices (bounded
//! concurrency, a deadline per device), wraps each reading in an envelope with the next sequence
//! number and publishes it.

pub mod clock;
pub mod config;
pub mod describe;
pub mod discover;
pub mod fleet;
pub mod metrics;
pub mod outbox;
pub mod poller;
pub mod privacy;
pub mod probe;
pub mod publisher;
pub mod report;
pub mod sim;
pub mod snmp;
pub mod spool;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use devtel_protocol::{Envelope, NoResponseCause, Reading};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::outbox::Outbox;
use crate::publisher::{Identity, Intake, Record, Stats, Timing};
use crate::spool::{Spool, SpoolConfig};

/// Runs the collector until `shutdown` is cancelled: stop polling, spool what was polled,
/// deliver for up to 5 s, disconnect, persist the spool.
///
/// # Errors
/// Only for failures that make running pointless (the spool directory is unusable, the TLS
/// files are); device and broker trouble is logged, counted and retried instead.
pub async fn run(mut config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started_ms = publisher::now_ms();
    let dir = config.spool.dir.clone();
    let epoch = spool::next_epoch(&dir, started_ms)
        .with_context(|| format!("spool.dir {}", dir.display()))?;
    let privacy = match config.privacy {
        config::RawPrivacy::Minimal => privacy::Privacy::Minimal,
        config::RawPrivacy::PerSeat => {
            let path = dir.join(privacy::SALT_FILE);
            let salt = privacy::load_salt(&path)
                .with_context(|| format!("pseudonym salt {}", path.display()))?;
            privacy::Privacy::PerSeat { salt }
        }
    };
    info!(privacy = ?config.privacy, "dock clients: {}", match config.privacy {
        config::RawPrivacy::Minimal => "counts only, no addresses",
        config::RawPrivacy::PerSeat => "counts and salted pseudonyms",
    });
    let mut outbox = Outbox::new(
        outbox::Settings {
            window: usize::from(config.mqtt.inflight),
            max_awaiting: config.delivery.max_awaiting,
            ack_timeout: config.delivery.ack_timeout,
            acknowledge: config.delivery.acknowledge,
            live_for: config.poll_interval,
        },
        0,
    );
    let mut foreign = 0u64;
    let spool = Spool::open_with(
        SpoolConfig::new(&dir, config.spool.max_bytes, config.spool.fsync),
        |id, payload| match publisher::record_identity(payload) {
            Some((epoch, seq)) => outbox.recovered(id, epoch, seq),
            None => foreign += 1,
        },
    )
    .with_context(|| format!("spool.dir {}", dir.display()))?;
    if foreign > 0 {
        tracing::warn!(
            records = foreign,
            "spooled readings of an older format: released by the broker's PUBACK, the gateway cannot confirm them"
        );
    }
    let identity = Identity {
        site: config.site.clone(),
        collector: config.collector_id.clone(),
        epoch,
        started_ms,
    };
    let client_id = format!("devtel-collector-{}", config.collector_id);
    let options = publisher::options(&config.mqtt, &client_id, &identity)?;
    let stats = Arc::new(Stats::default());
    if let Some(listen) = config.metrics_listen {
        let (identity, stats, stop) = (identity.clone(), stats.clone(), shutdown.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("metrics_listen {listen}"))?;
        tokio::spawn(metrics::serve(listener, identity, stats, stop));
    }
    // Encoded records of a few hundred bytes each: at most about 256 KB waiting for the spool.
    let (tx, rx) = mpsc::channel::<Intake>(256);
    let timing = Timing {
        drain: Duration::from_secs(5),
        backoff_cap: config.mqtt.reconnect_max,
    };
    info!(
        site = %config.site,
        collector = %config.collector_id,
        epoch,
        devices = config.devices.len(),
        interval = ?config.poll_interval,
        broker = %config.mqtt.url(),
        acknowledge = config.delivery.acknowledge.name(),
        spool = %dir.display(),
        spooled = spool.pending(),
        "collector started"
    );
    let sender = tokio::spawn(publisher::run(
        options,
        identity,
        publisher::Delivery {
            spool,
            outbox,
            describer: describe::Describer::for_devices(
                config.delivery.compact,
                config.delivery.describe_every,
                config.devices.len(),
            ),
        },
        rx,
        stats.clone(),
        timing,
    ));

    // The device list moves into the poll loop's Arc: one copy of it, not two (at 5,000
    // devices each copy is about 2.5 MB).
    let fleet = Arc::new(std::mem::take(&mut config.devices));
    // One socket for every v1/v2c request (snmp::transport).
    let transport = snmp::transport::Transport::bind()
        .await
        .context("binding the SNMP socket")?;
    let mut seq: u64 = 0;
    let mut ticker = tokio::time::interval(config.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        round += 1;
        let (mut answered, mut silent) = (0u32, 0u32);
        let collector_id = config.collector_id.clone();
        let site = config.site.clone();
        let tx = &tx;
        let stats_ref = &stats;
        let compact = config.delivery.compact;
        let completed = poller::poll_fleet(
            &fleet,
            config.snmp,
            Some(&transport),
            config.device_deadline,
            config.concurrency,
            &shutdown,
            |mut reading| {
                privacy::apply(&mut reading, &privacy);
                stats_ref.polls.fetch_add(1, Ordering::Relaxed);
                match &reading {
                    Reading::NoResponse(r) if r.cause == NoResponseCause::Timeout => {
                        silent += 1;
                        stats_ref.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    Reading::NoResponse(_) => {
                        silent += 1;
                        stats_ref.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => answered += 1,
                }
                let mut envelope = Envelope::new(
                    site.clone(),
                    collector_id.clone(),
                    epoch,
                    seq,
                    publisher::now_ms(),
                );
                seq += 1;
                // Capacity is at least 1, so the push succeeds.
                let record = envelope
                    .readings
                    .push(reading)
                    .ok()
                    .and_then(|()| Record::encode(&mut envelope, compact, stats_ref));
                async move {
                    // A closed intake means delivery is gone (shutdown).
                    if let Some(record) = record {
                        let _ = tx.send(Intake::Record(record)).await;
                    }
                }
            },
        )
        .await;
        if !completed {
            break;
        }
        let _ = tx.send(Intake::RoundDone).await;
        let c = stats.snapshot();
        info!(
            round,
            answered,
            silent,
            spooled = c.spooled,
            published = c.published,
            acknowledged = c.acknowledged,
            awaiting_gateway = c.awaiting_gateway,
            awaiting_gateway_oldest_s = c.awaiting_gateway_oldest_s,
            resent = c.resent,
            pending = c.spool_pending,
            dropped = c.dropped,
            reconnects = c.reconnects,
            "poll round finished"
        );
    }

    info!("stopping: polling stopped, delivering pending readings");
    drop(tx);
    let spool = sender.await.context("delivery task failed")?;
    let c = stats.snapshot();
    info!(
        polls = c.polls,
        spooled = c.spooled,
        acknowledged = c.acknowledged,
        dropped = c.dropped,
        lost = c.lost,
        left_in_spool = spool.pending(),
        "collector stopped"
    );
    Ok(())
}

/// Entry points for the fuzz targets (`fuzz/`): the private decoding paths, each of which
/// must return (never panic, never hang) whatever the bytes.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::snmp::client::{response_from_pdu, AuthProtocol, PrivProtocol, Usm};

    /// An SNMP v1/v2c reply: BER → PDU → devtel's response.
    pub fn snmp_reply(bytes: &[u8]) {
        if let Ok(pdu) = snmp2::Pdu::from_bytes(bytes) {
            let _ = response_from_pdu(&pdu);
        }
    }

    /// An SNMPv3 reply under authPriv (SHA-256, AES-128) with a known engine: the USM
    /// header, the authentication check and the decryption run before the PDU is read. The
    /// keys are localised once (a megabyte of hashing) and the state cloned for each input.
    pub fn snmp_v3_reply(bytes: &[u8]) {
        static SECURITY: std::sync::OnceLock<Option<snmp2::v3::Security>> =
            std::sync::OnceLock::new();
        let security = SECURITY.get_or_init(|| {
            let usm = Usm {
                user: "fuzz".into(),
                auth: Some((AuthProtocol::Sha256, "fuzz-auth-pass".into())),
                privacy: Some((PrivProtocol::Aes128, "fuzz-priv-pass".into())),
                context: String::new(),
            };
            usm.security()
                .with_engine_id(&[0x80, 0x00, 0x1f, 0x88, 0x04, 0x64, 0x65, 0x76])
                .ok()
                .map(|s| s.with_engine_boots_and_time(1, 100))
        });
        let Some(mut security) = security.clone() else {
            return;
        };
        if let Ok(pdu) = snmp2::Pdu::from_bytes_with_security(bytes, Some(&mut security)) {
            let _ = response_from_pdu(&pdu);
        }
    }

    /// A spool segment's records: the scan's offsets are increasing, within the data, and
    /// the skipped stretches lie between them.
    pub fn spool_scan(bytes: &[u8]) {
        let scan = crate::spool::scan(bytes);
        let mut last = None;
        for &o in &scan.offsets {
            assert!((o as usize) < bytes.len().max(1));
            assert!(last.is_none_or(|l| l < o));
            last = Some(o);
        }
        assert!(scan.valid_len <= bytes.len());
        for (at, len) in &scan.skipped {
            assert!(at + len <= bytes.len());
        }
    }
}
