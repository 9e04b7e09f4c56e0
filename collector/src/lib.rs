//! devtel collector: polls a site's devices over SNMP and publishes compact telemetry over MQTT.
//!
//! # Layout
//! - [`config`]: the TOML file, validated into [`config::Config`].
//! - [`snmp`]: owned SNMP values ([`snmp::VarbindSet`]) and the v1/v2c [`snmp::client::Client`].
//! - [`devices`]: one module per device kind; each maps varbinds to a typed reading, purely.
//! - [`poller`]: runs a kind's plan against one device within a deadline.
//! - [`publisher`]: encodes envelopes and publishes them at QoS 1; owns the MQTT event loop.
//! - [`snmprec`]: reads snmpsim recordings (tests replay real devices through it).
//! - [`sim`]: an SNMP v1/v2c simulator serving those recordings (demo, tests, load tests).
//!
//! [`run`] wires these together: every `poll_interval` it polls all devices (bounded
//! concurrency, a deadline per device), wraps each reading in an envelope with the next sequence
//! number and publishes it.

pub mod config;
pub mod devices;
pub mod discover;
pub mod poller;
pub mod probe;
pub mod publisher;
pub mod report;
pub mod sim;
pub mod snmp;
pub mod snmprec;
pub mod spool;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devtel_protocol::{Envelope, Reading};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::publisher::{PublishStats, Publisher};

/// Runs the collector until `shutdown` is cancelled.
///
/// # Errors
/// Only for failures that make running pointless; device and broker trouble is logged,
/// counted and retried instead.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let stats = Arc::new(PublishStats::default());
    let client_id = format!("devtel-collector-{}", config.collector_id);
    let (publisher, eventloop) = Publisher::new(
        &config.broker_host,
        config.broker_port,
        &client_id,
        config.site.clone(),
        stats.clone(),
    );
    let loop_shutdown = CancellationToken::new();
    let driver = tokio::spawn(publisher::drive(
        eventloop,
        stats.clone(),
        loop_shutdown.clone(),
        Duration::from_secs(5),
    ));

    info!(
        site = %config.site,
        collector = %config.collector_id,
        devices = config.devices.len(),
        interval = ?config.poll_interval,
        broker = %format!("{}:{}", config.broker_host, config.broker_port),
        "collector started"
    );

    let fleet = Arc::new(config.devices.clone());
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
        let publisher = &publisher;
        let completed = poller::poll_fleet(
            &fleet,
            config.snmp,
            config.device_deadline,
            config.concurrency,
            &shutdown,
            |reading| {
                match reading {
                    Reading::NoResponse(_) => silent += 1,
                    _ => answered += 1,
                }
                let mut envelope = Envelope::new(collector_id.clone(), 0, seq, now_ms());
                seq += 1;
                let pushed = envelope.readings.push(reading).is_ok();
                async move {
                    if !pushed {
                        return; // capacity is at least 1
                    }
                    if let Err(error) = publisher.publish(envelope).await {
                        warn!(%error, "reading not published");
                    }
                }
            },
        )
        .await;
        if !completed {
            break;
        }
        info!(
            round,
            answered,
            silent,
            published = stats.published.load(Ordering::Relaxed),
            acknowledged = stats.acknowledged.load(Ordering::Relaxed),
            connection_errors = stats.connection_errors.load(Ordering::Relaxed),
            encode_failed = stats.encode_failed.load(Ordering::Relaxed),
            "poll round finished"
        );
    }

    info!("shutting down: disconnecting from the broker");
    publisher.disconnect().await;
    loop_shutdown.cancel();
    if let Err(error) = driver.await {
        warn!(%error, "MQTT task ended abnormally");
    }
    info!(
        published = stats.published.load(Ordering::Relaxed),
        acknowledged = stats.acknowledged.load(Ordering::Relaxed),
        "collector stopped"
    );
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
