//! The gateway's MQTT client.
//!
//! One task owns the rumqttc event loop and only moves data: it subscribes on every ConnAck
//! (from a spawned task, so the loop is never blocked) and forwards telemetry messages over a
//! bounded channel. A second task ingests them and publishes the changed unit documents,
//! retained, on `devtel/v1/units/{unit}` (an empty retained message clears a unit that no
//! longer has devices).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use devtel_protocol::topic;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::{ingest, Shared};

/// Largest MQTT packet accepted. Larger than any valid envelope, so oversize payloads reach
/// [`ingest`] and are rejected there with a cause instead of breaking the connection.
const MAX_PACKET: usize = 1024 * 1024;

/// Runs the MQTT side until `shutdown`.
pub async fn run(config: Config, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut options = MqttOptions::new(
        config.client_id.clone(),
        config.broker_host.clone(),
        config.broker_port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    // Persistent session: while the gateway is away, a broker with persistence keeps queueing
    // its QoS 1 telemetry.
    options.set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let (tx, rx) = mpsc::channel::<(String, bytes::Bytes)>(1024);
    let processor = tokio::spawn(process(rx, client.clone(), shared.clone()));

    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    info!(session_present = ack.session_present, "connected to MQTT broker; subscribing to {} and {}", topic::TELEMETRY_FILTER, topic::COLLECTORS_FILTER);
                    failures = 0;
                    shared.mqtt_connected.store(true, Ordering::Relaxed);
                    // Subscribe on every connect: a broker that lost the session lost the
                    // subscriptions too.
                    let client = client.clone();
                    tokio::spawn(async move {
                        for filter in [topic::TELEMETRY_FILTER, topic::COLLECTORS_FILTER] {
                            if let Err(error) = client.subscribe(filter, QoS::AtLeastOnce).await {
                                warn!(%error, filter, "subscribe request failed");
                            }
                        }
                    });
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => info!("subscribed"),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic, p.payload)).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    shared.mqtt_connected.store(false, Ordering::Relaxed);
                    if !devtel_daemon::pause_before_reconnect(&mut failures, &error, &shutdown).await {
                        break;
                    }
                }
            }
        }
    }
    drop(tx);
    if let Err(error) = processor.await {
        warn!(%error, "ingest task ended abnormally");
    }
    if client.disconnect().await.is_ok() {
        let drained = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        if drained.is_err() {
            debug!("broker did not take the DISCONNECT in time");
        }
    }
}

async fn process(
    mut rx: mpsc::Receiver<(String, bytes::Bytes)>,
    client: AsyncClient,
    shared: Arc<Shared>,
) {
    while let Some((topic_name, payload)) = rx.recv().await {
        if let Ok(topic::Topic::Collector { site }) = topic::parse(&topic_name) {
            collector_status(&shared, site, &payload);
            continue;
        }
        let Ok(changed) = ingest::handle(&shared.aggregator, &shared.stats, &topic_name, &payload)
        else {
            continue;
        };
        for unit in changed {
            let doc = match shared.aggregator.lock() {
                Ok(agg) => agg.unit(&unit),
                Err(_) => continue,
            };
            let body = match doc.map(|d| serde_json::to_vec(&d)).transpose() {
                Ok(body) => body.unwrap_or_default(),
                Err(error) => {
                    warn!(%error, unit, "unit document not serialized");
                    continue;
                }
            };
            let Ok(t) = topic::unit(&unit) else { continue };
            if let Err(error) = client
                .publish(t.as_str(), QoS::AtLeastOnce, true, body)
                .await
            {
                warn!(%error, unit, "unit document not published");
            }
        }
    }
}

/// Keeps the latest retained status of a collector site (an empty payload clears it).
fn collector_status(shared: &Shared, site: &str, payload: &[u8]) {
    let Ok(mut collectors) = shared.collectors.lock() else {
        return;
    };
    if payload.is_empty() {
        collectors.remove(site);
        return;
    }
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(status) if status.is_object() => {
            if let Some(state) = status.get("state").and_then(|s| s.as_str()) {
                debug!(site, state, "collector status");
            }
            collectors.insert(site.to_string(), status);
        }
        _ => warn!(
            site,
            bytes = payload.len(),
            "collector status is not a JSON object; ignored"
        ),
    }
}
