//! The gateway's MQTT side: receive, commit, then acknowledge.
//!
//! - One task owns the rumqttc event loop and only moves data: it subscribes on every ConnAck
//!   and forwards every PUBLISH to the processor. Acknowledgements are manual: the broker
//!   keeps a message (and redelivers it after a reconnect) until the processor has committed
//!   it to the store. The session is persistent (`clean_session = false`), so a broker with
//!   persistence queues telemetry while the gateway is away.
//! - The processor runs on its own thread (SQLite is blocking). It takes whatever has arrived
//!   as one batch (up to [`MAX_BATCH`]): checks each message, commits the accepted envelopes
//!   and statuses in one transaction, applies the new ones to the aggregator, copies rejected
//!   messages to the dead-letter topic, and only then acknowledges the whole batch. A crash at
//!   any point either loses nothing (not acknowledged: redelivered) or repeats nothing (stored:
//!   the UNIQUE identity turns the redelivery into a counted duplicate).
//! - Changed unit and device documents are published retained at most once per
//!   [`DOC_INTERVAL`] (and whenever the intake goes idle), so a burst of readings costs one
//!   document per unit, not one per reading.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devtel_protocol::topic;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::ingest::{self, Rejection};
use crate::store::{Item, Store};
use crate::Shared;

/// Largest MQTT packet accepted. Larger than any valid envelope, so oversize payloads reach
/// [`ingest`] and are rejected there with a cause instead of breaking the connection.
const MAX_PACKET: usize = 1024 * 1024;

/// Most messages in one store transaction.
pub const MAX_BATCH: usize = 1024;

/// Unit and device documents are republished at most this often.
pub const DOC_INTERVAL: Duration = Duration::from_secs(1);

/// Failpoint for crash tests: with this variable set to N, the gateway aborts right after its
/// Nth commit that stored a new envelope, before acknowledging it — the worst moment for a
/// crash. Unset in production.
pub const FAILPOINT_ENV: &str = "DEVTEL_FAILPOINT_ABORT_AFTER_COMMITS";

fn failpoint() -> Option<u64> {
    static N: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::env::var(FAILPOINT_ENV).ok()?.parse().ok())
}

/// Runs the MQTT side until `shutdown`.
pub async fn run(config: Config, shared: Arc<Shared>, store: Store, shutdown: CancellationToken) {
    let mut options = MqttOptions::new(
        config.client_id.clone(),
        config.broker_host.clone(),
        config.broker_port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    options.set_clean_session(false);
    options.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    let (tx, rx) = std_mpsc::channel::<Publish>();
    let processor = {
        let client = client.clone();
        let shared = shared.clone();
        let handle = Handle::current();
        let stop = shutdown.clone();
        std::thread::Builder::new()
            .name("devtel-ingest".into())
            .spawn(move || process(&rx, &client, &shared, store, &handle, &stop))
    };
    let processor = match processor {
        Ok(p) => p,
        Err(error) => {
            error!(%error, "cannot start the ingest thread");
            return;
        }
    };

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
                    if tx.send(p).is_err() {
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
    // Let the processor finish its batch (it may still acknowledge) while the event loop keeps
    // moving requests; messages arriving now are not acknowledged and come again next time.
    drop(tx);
    let mut join = tokio::task::spawn_blocking(move || processor.join());
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = &mut join => {
                if !matches!(r, Ok(Ok(()))) {
                    warn!("ingest thread ended abnormally");
                }
                break;
            }
            _ = &mut deadline => {
                warn!("ingest thread did not stop within 10 s");
                break;
            }
            event = eventloop.poll() => if event.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Documents waiting to be republished.
#[derive(Default)]
struct Dirty {
    units: BTreeSet<String>,
    devices: BTreeSet<String>,
    since: Option<Instant>,
}

fn process(
    rx: &std_mpsc::Receiver<Publish>,
    client: &AsyncClient,
    shared: &Shared,
    mut store: Store,
    handle: &Handle,
    stop: &CancellationToken,
) {
    let mut dirty = Dirty::default();
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(p) => Some(p),
            Err(std_mpsc::RecvTimeoutError::Timeout) => None,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = Vec::new();
        if let Some(p) = first {
            batch.push(p);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
        }
        if !batch.is_empty()
            && !handle_batch(&batch, client, shared, &mut store, handle, stop, &mut dirty)
        {
            break;
        }
        let due = dirty.since.is_some_and(|t| t.elapsed() >= DOC_INTERVAL);
        if due || (batch.is_empty() && dirty.since.is_some()) {
            publish_documents(client, shared, handle, &mut dirty);
        }
    }
    publish_documents(client, shared, handle, &mut dirty);
}

/// Commits, applies and acknowledges one batch. False when shutting down before the commit
/// succeeded (the batch stays unacknowledged).
fn handle_batch(
    batch: &[Publish],
    client: &AsyncClient,
    shared: &Shared,
    store: &mut Store,
    handle: &Handle,
    stop: &CancellationToken,
    dirty: &mut Dirty,
) -> bool {
    let received_ms = now_ms();
    let mut items = Vec::with_capacity(batch.len());
    // For each item, the index of its message in `batch`.
    let mut sources = Vec::with_capacity(batch.len());
    let mut dead: Vec<(&'static str, &Publish)> = Vec::new();
    shared.stats.update(|c| c.received += batch.len() as u64);
    let units = &shared.units;
    for (index, p) in batch.iter().enumerate() {
        let before = items.len();
        check_one(p, units, received_ms, shared, &mut items, &mut dead);
        if items.len() > before {
            sources.push(index);
        }
    }

    // Commit; on a store error retry (nothing is acknowledged meanwhile) until it works or
    // the gateway stops.
    let mut attempt = 0u32;
    let new = loop {
        let started = Instant::now();
        match store.commit(&items) {
            Ok(new) => {
                let secs = started.elapsed().as_secs_f64();
                shared.stats.update(|c| {
                    c.commits += 1;
                    c.committed_messages += items.len() as u64;
                    c.commit_seconds += secs;
                    c.commit_seconds_max = c.commit_seconds_max.max(secs);
                });
                break new;
            }
            Err(e) => {
                shared.stats.update(|c| c.store_errors += 1);
                error!(error = %e, messages = items.len(), "store commit failed; the batch stays unacknowledged and is retried");
                let pause = devtel_daemon::backoff(
                    attempt,
                    Duration::from_secs(30),
                    devtel_daemon::jitter(),
                );
                attempt = attempt.saturating_add(1);
                if stop.is_cancelled() {
                    return false;
                }
                std::thread::sleep(pause);
            }
        }
    };

    if let Some(n) = failpoint() {
        use std::sync::atomic::AtomicU64;
        static STORED: AtomicU64 = AtomicU64::new(0);
        let stored_envelope = items
            .iter()
            .zip(&new)
            .any(|(i, is_new)| *is_new && matches!(i, Item::Envelope { .. }));
        if stored_envelope && STORED.fetch_add(1, Ordering::Relaxed) + 1 >= n {
            error!("{FAILPOINT_ENV}={n}: aborting after the commit, before the acknowledgement");
            std::process::abort();
        }
    }

    // Apply what is new.
    let mut newest_poll = 0u64;
    let mut unassigned: Vec<usize> = Vec::new();
    if let Ok(mut agg) = shared.aggregator.lock() {
        for (i, (item, is_new)) in items.iter().zip(&new).enumerate() {
            match item {
                Item::Envelope { envelope, .. } if *is_new => {
                    let changes = agg.ingest(envelope);
                    shared.stats.outcomes(&changes.outcomes);
                    if changes.unassigned > 0 {
                        shared
                            .stats
                            .update(|c| c.unassigned += changes.unassigned as u64);
                        unassigned.push(i);
                    }
                    newest_poll = newest_poll.max(envelope.timestamp_ms);
                    if dirty.since.is_none()
                        && !(changes.units.is_empty() && changes.devices.is_empty())
                    {
                        dirty.since = Some(Instant::now());
                    }
                    dirty.units.extend(changes.units);
                    dirty.devices.extend(changes.devices);
                }
                Item::Envelope { envelope, .. } => {
                    shared
                        .stats
                        .update(|c| c.duplicates += envelope.readings.len() as u64);
                }
                Item::Status { site, status, .. } => {
                    if let Ok(mut collectors) = shared.collectors.lock() {
                        match status
                            .as_deref()
                            .map(serde_json::from_str::<serde_json::Value>)
                        {
                            Some(Ok(v)) => {
                                collectors.insert(site.clone(), v);
                            }
                            _ => {
                                collectors.remove(site);
                            }
                        }
                    }
                }
            }
        }
    }
    if newest_poll > 0 {
        let lag = received_ms.saturating_sub(newest_poll) as f64 / 1000.0;
        shared.stats.update(|c| c.lag_seconds = lag);
    }
    for i in unassigned {
        if let Item::Envelope {
            envelope, payload, ..
        } = &items[i]
        {
            let unit = envelope
                .readings
                .first()
                .map(|r| r.unit().to_string())
                .unwrap_or_default();
            shared.stats.log_limited("unknown_unit", |since| {
                warn!(
                    unit,
                    since_last_log = since,
                    "reading for a unit that is not configured; counted in \"unassigned\""
                );
            });
            // Copy (the reading itself is kept and counted in `unassigned`).
            let topic_name = &batch[sources[i]].topic;
            dead_letter(
                client,
                shared,
                handle,
                "unknown_unit",
                topic_name,
                payload.clone(),
            );
        }
    }
    for (cause, p) in dead {
        dead_letter(client, shared, handle, cause, &p.topic, p.payload.to_vec());
    }
    // Only now: acknowledge.
    handle.block_on(async {
        for p in batch {
            if let Err(error) = client.ack(p).await {
                debug!(%error, "acknowledgement not queued");
            }
        }
    });
    true
}

fn dead_letter(
    client: &AsyncClient,
    shared: &Shared,
    handle: &Handle,
    cause: &str,
    original_topic: &str,
    payload: Vec<u8>,
) {
    let Ok(prefix) = topic::dead_letter_prefix(cause) else {
        return;
    };
    let t = format!("{prefix}/{original_topic}");
    let result = handle.block_on(client.publish(t, QoS::AtLeastOnce, false, payload));
    match result {
        Ok(()) => shared.stats.update(|c| c.dead_lettered += 1),
        Err(error) => debug!(%error, "dead-letter copy not queued"),
    }
}

fn publish_documents(client: &AsyncClient, shared: &Shared, handle: &Handle, dirty: &mut Dirty) {
    let units = std::mem::take(&mut dirty.units);
    let devices = std::mem::take(&mut dirty.devices);
    dirty.since = None;
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let Ok(agg) = shared.aggregator.lock() else {
            return;
        };
        for unit in units {
            let Ok(t) = topic::unit(&unit) else { continue };
            let body = agg
                .unit(&unit)
                .and_then(|d| serde_json::to_vec(&d).ok())
                .unwrap_or_default();
            out.push((t.to_string(), body));
        }
        for device in devices {
            let Ok(t) = topic::device(&device) else {
                continue;
            };
            let body = agg
                .device(&device)
                .and_then(|d| serde_json::to_vec(&d).ok())
                .unwrap_or_default();
            out.push((t.to_string(), body));
        }
    }
    handle.block_on(async {
        for (t, body) in out {
            if let Err(error) = client.publish(t, QoS::AtLeastOnce, true, body).await {
                warn!(%error, "document not published");
            }
        }
    });
}

/// Checks one message: an [`Item`] to commit, or a rejection (counted, queued for the
/// dead-letter topic).
fn check_one<'a>(
    p: &'a Publish,
    units: &crate::units::Units,
    received_ms: u64,
    shared: &Shared,
    items: &mut Vec<Item>,
    dead: &mut Vec<(&'static str, &'a Publish)>,
) {
    if let Ok(topic::Topic::Collector { site }) = topic::parse(&p.topic) {
        if p.payload.is_empty() {
            items.push(Item::Status {
                site: site.to_string(),
                status: None,
                received_ms,
            });
            return;
        }
        match serde_json::from_slice::<serde_json::Value>(&p.payload) {
            Ok(v) if v.is_object() => items.push(Item::Status {
                site: site.to_string(),
                status: Some(v.to_string()),
                received_ms,
            }),
            _ => {
                shared
                    .stats
                    .reject(Rejection::BadStatus, &p.topic, p.payload.len());
                dead.push((Rejection::BadStatus.name(), p));
            }
        }
        return;
    }
    match ingest::check(&p.topic, &p.payload) {
        Ok(envelope) => {
            let unit_ids = envelope
                .readings
                .iter()
                .map(|r| units.resolve(r.unit()).to_string())
                .collect();
            items.push(Item::Envelope {
                envelope: Box::new(envelope),
                payload: p.payload.to_vec(),
                received_ms,
                units: unit_ids,
            });
        }
        Err(rejection) => {
            shared.stats.reject(rejection, &p.topic, p.payload.len());
            dead.push((rejection.name(), p));
        }
    }
}
