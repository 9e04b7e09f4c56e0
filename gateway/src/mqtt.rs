//! The gateway's MQTT side: receive, commit, apply, then acknowledge — to the broker and to
//! the collectors. The decisions live in [`crate::batch`]; this module moves the bytes.
//!
//! - The MQTT 5 event loop is driven by [`devtel_daemon::mqtt::spawn_poller`] (never
//!   cancelled midway, which would lose acknowledgements). The gateway's task subscribes on
//!   every ConnAck, bounds every received message ([`Inbound`]: an oversize payload is
//!   reduced to its size and SHA-256 right here) and hands it to the processor over a bounded
//!   channel without ever waiting (the processor's acknowledgements go out through the same
//!   event loop). The broker should send at most [`RECEIVE_MAXIMUM`] unacknowledged QoS 1
//!   messages (MQTT 5 Receive Maximum), which the channel always has room for; what a broker
//!   sends beyond that (Mosquitto 2.0 does under a burst) waits in a bounded backlog, and
//!   beyond the backlog it is held back — not acknowledged, counted, and sent again by the
//!   broker after the reconnect the gateway makes once it has caught up
//!   ([`Intake::deliver`]). Nothing queues without bound and nothing QoS 1 is dropped. The
//!   Maximum Packet Size announced in CONNECT makes the broker drop what the client could not
//!   read, so no message can break the connection and come back forever.
//! - The processor runs on two threads (SQLite is blocking): one takes what has arrived as
//!   one batch (up to [`MAX_BATCH`]) and checks it (decoding is the largest cost), the other
//!   commits the batch before it — so the two overlap — and runs the rest of the plan of
//!   [`crate::batch`]: commit in one transaction, apply, then acknowledge: a devtel
//!   [`devtel_protocol::Ack`] per collector epoch on `devtel/v1/acks/{site}/{collector}`,
//!   dead-letter copies of what was rejected, and the MQTT acknowledgement of every message
//!   of the batch. At most two batches are decoded at any time (the hand-over is a
//!   rendezvous). A crash before the commit
//!   loses nothing (not acknowledged: redelivered, or sent again by the collector); a crash
//!   after it repeats nothing (the store's UNIQUE identity makes the repeat a counted
//!   duplicate, which is acknowledged again). A batch that cannot be applied (a poisoned lock)
//!   is never acknowledged: the gateway stops, and its next start rebuilds from the store.
//! - Changed unit and device documents are published retained at most once per
//!   [`DOC_INTERVAL`] (and whenever the intake goes idle).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use devtel_daemon::mqtt::Polled;
use devtel_protocol::{encode_ack, topic, MAX_ACK_LEN, MAX_PACKET_LEN};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::aggregate::Outcome;
use crate::backend::Backend;
use crate::batch::{self, Checked, Inbound};
use crate::config::Config;
use crate::ingest::Rejection;
use crate::store::{Committed, Item};
use crate::Shared;

/// Most messages in one store transaction.
pub const MAX_BATCH: usize = 1024;

/// Most unacknowledged QoS 1 messages the broker may send the gateway (MQTT 5 Receive
/// Maximum): two batches, so the next one arrives while one commits.
pub const RECEIVE_MAXIMUM: u16 = 2 * MAX_BATCH as u16;

/// Capacity of the channel between the event loop and the processor: everything the broker
/// may send unacknowledged (QoS 1) plus a share for QoS 0 messages ([`Intake::deliver`]).
const CHANNEL: usize = RECEIVE_MAXIMUM as usize + 256;

/// Most boxes of committed envelopes kept for decoding the next batch into (an envelope's box
/// is about 30 KB whatever it holds; see [`Spares`]).
const MAX_SPARES: usize = MAX_BATCH;

/// A batch of at least [`LINGER_FROM`] messages (a stream is arriving) waits up to this long
/// for [`LINGER_UNTIL`] before it is committed.
const LINGER: Duration = Duration::from_millis(10);
const LINGER_FROM: usize = 32;
const LINGER_UNTIL: usize = MAX_BATCH / 2;

/// While messages are held back, how often the event loop checks whether the ingest queue
/// has drained (see [`Intake::maybe_resync`]).
const RESYNC_CHECK: Duration = Duration::from_millis(20);

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

/// The gateway's MQTT 5 options: its `[mqtt]` settings, manual acknowledgements and the
/// Receive Maximum that bounds what the broker sends ahead.
///
/// # Errors
/// When the TLS files are unusable.
pub fn options(config: &Config) -> Result<MqttOptions, devtel_daemon::mqtt::TlsError> {
    devtel_daemon::mqtt::options(
        &config.mqtt,
        devtel_daemon::mqtt::Session {
            client_id: config.client_id.clone(),
            last_will: None,
            receive_maximum: Some(RECEIVE_MAXIMUM),
            manual_acks: true,
        },
    )
}

/// Why the MQTT side stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The processor could not apply a committed batch (it was not acknowledged).
    #[error("ingest stopped: {0}")]
    Ingest(String),
}

/// Runs the MQTT side until `shutdown`. Cancels `shutdown` itself when ingest cannot go on.
///
/// # Errors
/// [`MqttError`] when ingest stopped on its own.
pub async fn run(
    options: MqttOptions,
    reconnect_max: Duration,
    shared: Arc<Shared>,
    store: Backend,
    shutdown: CancellationToken,
) -> Result<(), MqttError> {
    let (client, eventloop) = AsyncClient::new(options, 4096);
    let (tx, rx) = mpsc::channel::<Inbound>(test_queue().unwrap_or(CHANNEL));
    let broker_max = Arc::new(AtomicUsize::new(MAX_PACKET_LEN));
    let processor = {
        let out = Out {
            client: client.clone(),
            handle: Handle::current(),
            broker_max: broker_max.clone(),
        };
        let shared = shared.clone();
        let stop = shutdown.clone();
        std::thread::Builder::new()
            .name("devtel-ingest".into())
            .spawn(move || {
                let result = process(rx, &out, &shared, store, &stop);
                if result.is_err() {
                    stop.cancel();
                }
                result
            })
    };
    let processor = match processor {
        Ok(p) => p,
        Err(error) => {
            shutdown.cancel();
            return Err(MqttError::Ingest(format!(
                "cannot start the ingest thread: {error}"
            )));
        }
    };

    let devtel_daemon::mqtt::Poller {
        mut events,
        task: poller,
        redial,
    } = devtel_daemon::mqtt::spawn_poller(eventloop, reconnect_max, 1024, |event| {
        // What the loop below acts on; the acknowledgements' own events are not needed.
        matches!(
            event,
            Event::Incoming(Packet::ConnAck(_) | Packet::SubAck(_) | Packet::Publish(_))
        )
    });
    let mut intake = Intake::new();
    let telemetry = telemetry_filter(&shared);
    // One wait for shutdown across the loop: a fresh one per event registered and removed a
    // waiter each time.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        let polled = tokio::select! {
            () = &mut cancelled => break,
            permit = tx.reserve(), if intake.has_backlog() => match (permit, intake.pop()) {
                (Ok(permit), Some(message)) => {
                    permit.send(message);
                    intake.maybe_resync(&tx, &client, &redial, &shared);
                    continue;
                }
                _ => break,
            },
            polled = events.recv() => polled,
            // Held-back messages wait for the queue to drain; no event may come meanwhile
            // (the broker's window is full, and acknowledgements' events are not passed on).
            () = tokio::time::sleep(RESYNC_CHECK), if intake.held_back > 0 && !intake.resyncing => {
                intake.maybe_resync(&tx, &client, &redial, &shared);
                continue;
            }
        };
        let Some(polled) = polled else { break };
        match polled {
            Polled::Event(Event::Incoming(Packet::ConnAck(ack))) => {
                let limit = ack
                    .properties
                    .as_ref()
                    .and_then(|p| p.max_packet_size)
                    .map_or(MAX_PACKET_LEN, |m| (m as usize).min(MAX_PACKET_LEN));
                broker_max.store(limit, Ordering::Relaxed);
                info!(
                    session_present = ack.session_present,
                    broker_max_packet = limit,
                    "connected to MQTT broker; subscribing to {telemetry} and {}",
                    topic::COLLECTORS_FILTER
                );
                shared.mqtt_connected.store(true, Ordering::Relaxed);
                if !ack.session_present {
                    shared.republish.store(true, Ordering::Relaxed);
                }
                // Subscribe on every connect: a broker that lost the session lost the
                // subscriptions too.
                let client = client.clone();
                let telemetry = telemetry.clone();
                tokio::spawn(async move {
                    for filter in [telemetry.as_str(), topic::COLLECTORS_FILTER] {
                        if let Err(error) = client.subscribe(filter, QoS::AtLeastOnce).await {
                            warn!(%error, filter, "subscribe request failed");
                        }
                    }
                });
            }
            Polled::Event(Event::Incoming(Packet::SubAck(_))) => info!("subscribed"),
            Polled::Event(Event::Incoming(Packet::Publish(p))) => {
                if !intake.deliver(&tx, &shared, &p) {
                    break;
                }
            }
            Polled::Event(_) => {}
            Polled::Failed { error, retry_in } => {
                shared.mqtt_connected.store(false, Ordering::Relaxed);
                if std::mem::take(&mut intake.resyncing) {
                    info!(
                        ?retry_in,
                        "disconnected to have held-back messages redelivered; reconnecting"
                    );
                } else {
                    warn!(%error, ?retry_in, "MQTT connection error");
                }
            }
        }
        intake.maybe_resync(&tx, &client, &redial, &shared);
    }
    // Let the processor finish its batch (it may still acknowledge) while the poller keeps
    // moving requests; messages arriving now are not acknowledged and come again next time.
    drop(tx);
    let mut join = tokio::task::spawn_blocking(move || processor.join());
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    let result = loop {
        tokio::select! {
            r = &mut join => match r {
                Ok(Ok(result)) => break result,
                _ => break Err(MqttError::Ingest("the ingest thread panicked".into())),
            },
            () = &mut deadline => {
                warn!("ingest thread did not stop within 10 s");
                break Ok(());
            }
            polled = events.recv() => if polled.is_none() {
                break Ok(());
            }
        }
    };
    disconnect(&client, &mut events).await;
    drop(events);
    let _ = poller.await;
    result
}

/// The telemetry subscription: the group's shared subscription for a replica (the broker
/// gives each message to one replica of the group), else the plain filter.
fn telemetry_filter(shared: &Shared) -> String {
    match shared.replica.as_ref().and_then(|r| r.group.as_deref()) {
        Some(group) => format!("$share/{group}/{}", topic::TELEMETRY_FILTER),
        None => topic::TELEMETRY_FILTER.to_string(),
    }
}

/// Most QoS 1 messages held by the event loop while the channel to the processor is full.
/// A compliant broker never fills the channel; Mosquitto 2.0 does under a burst (each PUBACK
/// that arrives while messages are queued for the gateway lets one more than the Receive
/// Maximum through).
const MAX_BACKLOG: usize = 16 * 1024;

/// Most payload bytes in that backlog.
const MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

/// For tests: with this variable set to N, the channel to the processor and the backlog hold
/// N messages each — far less than the broker may send unacknowledged — so that the
/// held-back path (reconnect, redelivery) can be driven against a real, compliant broker.
/// Unset in production.
pub const QUEUE_ENV: &str = "DEVTEL_TEST_INGEST_QUEUE";

fn test_queue() -> Option<usize> {
    std::env::var(QUEUE_ENV)
        .ok()?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// The event loop's side of the channel to the processor: it never waits (the processor's
/// acknowledgements go out through the same event loop, so waiting could stop both).
struct Intake {
    max_backlog: usize,
    /// QoS 1 messages for which the channel had no room, oldest first.
    backlog: VecDeque<Inbound>,
    backlog_bytes: usize,
    /// QoS 1 messages not taken (backlog full) since the last reconnect.
    held_back: u64,
    /// A reconnect was asked for; the connection error that follows is expected.
    resyncing: bool,
    overflow_logged: Option<Instant>,
}

impl Intake {
    fn new() -> Intake {
        Intake {
            max_backlog: test_queue().unwrap_or(MAX_BACKLOG),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            held_back: 0,
            resyncing: false,
            overflow_logged: None,
        }
    }

    fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    fn pop(&mut self) -> Option<Inbound> {
        let m = self.backlog.pop_front()?;
        self.backlog_bytes -= m.payload.len();
        Some(m)
    }

    /// Bounds `p` and hands it to the processor, or holds it; false when the processor is
    /// gone.
    ///
    /// - QoS 1 goes to the channel, or when that is full to the bounded backlog, in order. A
    ///   message that finds the backlog full too is *held back*: not acknowledged, counted,
    ///   and once the processor has caught up the gateway reconnects, which makes the broker
    ///   send it again (MQTT 5 resends what was not acknowledged, from its session).
    /// - QoS 0 cannot come again. It is let in only while the channel has more room than the
    ///   broker may send unacknowledged ([`RECEIVE_MAXIMUM`]), so it never takes the place of
    ///   a QoS 1 message; otherwise it is dropped and counted as an overflow.
    fn deliver(&mut self, tx: &mpsc::Sender<Inbound>, shared: &Shared, p: &Publish) -> bool {
        let acknowledged = p.qos != QoS::AtMostOnce;
        let message = Inbound::new(&p.topic, p.payload.clone(), p.pkid, acknowledged);
        if !acknowledged && (!self.backlog.is_empty() || tx.capacity() <= RECEIVE_MAXIMUM as usize)
        {
            self.log_full(
                shared,
                &message,
                "QoS 0 message dropped: the ingest queue is full",
            );
            shared
                .stats
                .reject(Rejection::Overflow, &message.topic, message.size);
            return true;
        }
        let message = if self.backlog.is_empty() {
            match tx.try_send(message) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(m)) => m,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        } else {
            message
        };
        if self.backlog.len() < self.max_backlog
            && self.backlog_bytes + message.payload.len() <= MAX_BACKLOG_BYTES
        {
            self.backlog_bytes += message.payload.len();
            self.backlog.push_back(message);
        } else {
            self.held_back += 1;
            shared.stats.update(|c| c.held_back += 1);
            self.log_full(
                shared,
                &message,
                "message held back (not acknowledged): the broker sends beyond the Receive Maximum; it comes again after a reconnect",
            );
        }
        true
    }

    /// Reconnects once the processor has taken everything, if messages were held back.
    fn maybe_resync(
        &mut self,
        tx: &mpsc::Sender<Inbound>,
        client: &AsyncClient,
        redial: &devtel_daemon::mqtt::Redial,
        shared: &Shared,
    ) {
        if self.resyncing
            || self.held_back == 0
            || !self.backlog.is_empty()
            || tx.capacity() < tx.max_capacity()
        {
            return;
        }
        info!(
            held_back = self.held_back,
            "the ingest queue has drained; reconnecting so that the broker sends the held-back messages again"
        );
        redial.after_disconnect();
        if client.try_disconnect().is_ok() {
            self.held_back = 0;
            self.resyncing = true;
            shared.stats.update(|c| c.redelivery_reconnects += 1);
        } else {
            redial.cancel();
        }
    }

    fn log_full(&mut self, shared: &Shared, m: &Inbound, what: &'static str) {
        let now = Instant::now();
        if self
            .overflow_logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
        {
            self.overflow_logged = Some(now);
            let c = shared.stats.snapshot();
            warn!(
                topic = m.topic,
                backlog = self.backlog.len(),
                held_back_total = c.held_back,
                overflow_total = c.rejected.get("overflow").copied().unwrap_or(0),
                "{what}"
            );
        }
    }
}

async fn disconnect(client: &AsyncClient, events: &mut mpsc::Receiver<Polled>) {
    if client.try_disconnect().is_ok() {
        let drained = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(polled) = events.recv().await {
                if matches!(
                    polled,
                    Polled::Event(Event::Outgoing(rumqttc::Outgoing::Disconnect))
                ) {
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

/// What the processor publishes through.
struct Out {
    client: AsyncClient,
    handle: Handle,
    /// The broker's Maximum Packet Size (from CONNACK), at most ours.
    broker_max: Arc<AtomicUsize>,
}

impl Out {
    /// Publishes QoS 1 unless the packet would exceed the broker's limit (then false).
    fn publish(&self, topic: String, retain: bool, payload: Bytes) -> bool {
        let limit = self.broker_max.load(Ordering::Relaxed);
        if 64 + topic.len() + payload.len() > limit {
            warn!(
                topic,
                bytes = payload.len(),
                limit,
                "not published: larger than the broker's packet limit"
            );
            return false;
        }
        let result = self.handle.block_on(self.client.publish_bytes(
            topic,
            QoS::AtLeastOnce,
            retain,
            payload,
        ));
        if let Err(error) = result {
            debug!(%error, "publish not queued");
            return false;
        }
        true
    }

    /// Acknowledges the QoS 1 messages of a batch to the broker, in one entry into the
    /// runtime (one per message was a measurable share of the commit thread).
    fn ack_all(&self, batch: &[Inbound]) {
        self.handle.block_on(async {
            for message in batch.iter().filter(|m| m.acknowledged) {
                let mut p = Publish::new("", QoS::AtLeastOnce, Bytes::new(), None);
                p.pkid = message.pkid;
                if let Err(error) = self.client.ack(&p).await {
                    debug!(%error, "acknowledgement not queued");
                }
            }
        });
    }
}

/// Documents waiting to be republished.
#[derive(Default)]
struct Dirty {
    units: BTreeSet<String>,
    devices: BTreeSet<String>,
    since: Option<Instant>,
    /// Each device's document as last published, for its events (at most one per device
    /// the aggregator holds, which is bounded by `[ingest] max_devices`).
    published: std::collections::HashMap<String, crate::aggregate::DeviceFullDoc>,
    /// Home Assistant discovery: the configs published per device (again when they change,
    /// and all again when the broker held no session of the gateway).
    discovered: std::collections::HashMap<String, Vec<(String, serde_json::Value)>>,
}

impl Dirty {
    /// Whether to publish now: a change waits at most [`DOC_INTERVAL`] while ingest is busy
    /// (a burst republishes a unit once a second, not per batch), and goes out as soon as the
    /// intake is idle.
    fn due(&self, now: Instant, idle: bool) -> bool {
        self.since
            .is_some_and(|t| idle || now.saturating_duration_since(t) >= DOC_INTERVAL)
    }
}

/// The boxes of committed envelopes, handed back to the check stage. Allocating a fresh
/// 30 KB box per message and freeing a whole batch of them at once made the allocator give
/// the pages back and fault them in again for the next batch (1.8 µs per reading of the
/// check thread, measured with `cargo bench -p devtel-gateway --bench ingest`). At most
/// [`MAX_SPARES`] (30 MB) are kept, and none once the intake is idle.
#[derive(Default)]
struct Spares(std::sync::Mutex<Vec<Box<devtel_protocol::Envelope>>>);

impl Spares {
    /// Up to `n` boxes.
    fn take(&self, n: usize) -> Vec<Box<devtel_protocol::Envelope>> {
        let Ok(mut spares) = self.0.lock() else {
            return Vec::new();
        };
        let keep = spares.len().saturating_sub(n);
        spares.split_off(keep)
    }

    /// Gives back what `checked` and an unused rest of `take` hold.
    fn give_back(&self, checked: Checked, unused: Vec<Box<devtel_protocol::Envelope>>) {
        if let Ok(mut spares) = self.0.lock() {
            spares.extend(unused);
            spares.truncate(MAX_SPARES);
            checked.into_spares(&mut spares, MAX_SPARES);
        }
    }

    fn clear(&self) {
        if let Ok(mut spares) = self.0.lock() {
            *spares = Vec::new();
        }
    }
}

/// A batch checked and ready to commit.
struct Ready {
    batch: Vec<Inbound>,
    checked: Checked,
    received_ms: u64,
}

/// The processor: a checking stage (decode, bounds, topic) on its own thread feeds the
/// committing stage (commit, apply, acknowledge) on this one, so decoding the next batch
/// overlaps committing this one. The hand-over is a rendezvous: at most two batches are
/// decoded at any time.
fn process(
    rx: mpsc::Receiver<Inbound>,
    out: &Out,
    shared: &Arc<Shared>,
    mut store: Backend,
    stop: &CancellationToken,
) -> Result<(), MqttError> {
    let (to_commit, ready) = std::sync::mpsc::sync_channel::<Ready>(0);
    let spares = Arc::new(Spares::default());
    let checker = {
        let handle = out.handle.clone();
        let shared = shared.clone();
        let spares = spares.clone();
        std::thread::Builder::new()
            .name("devtel-check".into())
            .spawn(move || check_stage(rx, &handle, &shared, &spares, &to_commit))
            .map_err(|e| MqttError::Ingest(format!("cannot start the check thread: {e}")))?
    };
    let mut dirty = Dirty::default();
    let mut clock = SnapshotClock {
        policy: shared.snapshots,
        through: shared.snapshot_through.load(Ordering::Relaxed),
        at: Instant::now(),
    };
    // A start that replayed a long tail snapshots at once.
    if clock.due(store.last_id(), Instant::now(), false) {
        take_snapshot(shared, &mut store, &mut clock);
    }
    let mut followed_at = Instant::now();
    let mut retention = shared
        .raw_retention
        .map(|keep| RetentionClock::new(keep, Instant::now()));
    let result = loop {
        let (next, idle) = match ready.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => (Some(r), false),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => (None, true),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
        };
        if let Some(r) = next {
            match handle_batch(&r, out, shared, &mut store, stop, &mut dirty) {
                Ok(true) => {
                    spares.give_back(r.checked, Vec::new());
                    note_first_envelope(shared, &store);
                }
                Ok(false) => break Ok(()), // stopping before the commit succeeded
                Err(e) => {
                    error!(error = %e, messages = r.batch.len(), "batch not acknowledged; the gateway stops (its next start rebuilds from the store)");
                    break Err(e);
                }
            }
        }
        if store.postgres().is_some() && (idle || followed_at.elapsed() >= FOLLOW_EVERY) {
            if let Err(e) = follow(shared, &mut store, &mut dirty) {
                break Err(e);
            }
            followed_at = Instant::now();
        }
        // On PostgreSQL right after a follow step: the figures hold exactly the envelopes up
        // to the cursor.
        if store.settled() && clock.due(store.last_id(), Instant::now(), true) {
            take_snapshot(shared, &mut store, &mut clock);
        }
        if idle {
            spares.clear();
        }
        // Of a group, the publisher alone deletes (two replicas would delete the same rows).
        let prunes = shared
            .replica
            .as_ref()
            .is_none_or(crate::backend::Replica::publishes);
        if let Some(clock) = retention
            .as_mut()
            .filter(|c| prunes && c.due(Instant::now()))
        {
            prune_step(shared, &mut store, clock);
        }
        if shared.republish.swap(false, Ordering::Relaxed) {
            dirty.discovered.clear();
            if let Ok(agg) = shared.read() {
                dirty.units.extend(agg.unit_ids());
                dirty.devices.extend(agg.device_ids());
                dirty.since.get_or_insert_with(Instant::now);
                info!(
                    units = dirty.units.len(),
                    devices = dirty.devices.len(),
                    "the broker holds no session of the gateway: every document is published again"
                );
            }
        }
        if dirty.due(Instant::now(), idle) {
            publish_documents(out, shared, &mut dirty);
        }
    };
    // Ends the check stage (its next hand-over fails), which closes the intake channel.
    drop(ready);
    // A panic there ended the hand-over as a clean stop would: it is an error (the gateway
    // stops, and its next start rebuilds from the store), never a silent end of ingest.
    let result = match (checker.join(), result) {
        (Err(_), Ok(())) => {
            error!("the check thread panicked");
            Err(MqttError::Ingest("the check thread panicked".into()))
        }
        (_, result) => result,
    };
    // A clean stop leaves a snapshot of everything applied (never after a batch that was not
    // applied: the figures could then differ from the store's).
    let result = match result {
        Ok(()) if store.postgres().is_some() => follow(shared, &mut store, &mut dirty),
        other => other,
    };
    if result.is_ok() && store.settled() && store.last_id() > clock.through {
        take_snapshot(shared, &mut store, &mut clock);
    }
    publish_documents(out, shared, &mut dirty);
    result
}

/// How often a replica on PostgreSQL applies what the others committed (and at once when
/// its own intake is idle): figures agree across replicas within about this.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Longest one follow applies pages before the intake's next batch (catching up after a
/// restart goes on at the next step).
const FOLLOW_BUDGET: Duration = Duration::from_millis(200);

/// Applies what other replicas committed above the cursor, marking the changed documents.
/// A store that cannot be read is logged and tried again at the next step (the figures lag
/// meanwhile, which `/healthz` shows); an aggregator that cannot be written stops ingest.
fn follow(shared: &Shared, store: &mut Backend, dirty: &mut Dirty) -> Result<(), MqttError> {
    let Some(replica) = &shared.replica else {
        return Ok(());
    };
    let started = Instant::now();
    loop {
        let (envelopes, more) = match store.follow_page() {
            Ok(page) => page,
            Err(error) => {
                replica.follow_errors.fetch_add(1, Ordering::Relaxed);
                shared.stats.log_limited("follow", |since| {
                    warn!(%error, since_last_log = since, "following the other replicas' commits failed; tried again shortly");
                });
                return Ok(());
            }
        };
        if !envelopes.is_empty() {
            let mut agg = shared
                .write()
                .map_err(|_| MqttError::Ingest("the aggregator lock is poisoned".into()))?;
            for envelope in &envelopes {
                agg.ingest_into(
                    envelope,
                    &mut crate::aggregate::Marks {
                        units: &mut dirty.units,
                        devices: &mut dirty.devices,
                    },
                );
            }
            drop(agg);
            if dirty.since.is_none() && !(dirty.units.is_empty() && dirty.devices.is_empty()) {
                dirty.since = Some(Instant::now());
            }
            replica
                .followed
                .fetch_add(envelopes.len() as u64, Ordering::Relaxed);
        }
        let cursor = store.last_id();
        replica.cursor.store(cursor, Ordering::Relaxed);
        if !more {
            replica.store_last_id.store(cursor, Ordering::Relaxed);
            break;
        }
        if started.elapsed() >= FOLLOW_BUDGET {
            if let Ok(last) = store.store_last_id() {
                replica.store_last_id.store(last, Ordering::Relaxed);
            }
            break;
        }
    }
    replica.followed_at_ms.store(now_ms(), Ordering::Relaxed);
    Ok(())
}

/// When the commit thread snapshots the figures: after [`SnapshotPolicy::every`] envelopes,
/// or after [`SnapshotPolicy::interval`] when envelopes came meanwhile. Pure.
///
/// [`SnapshotPolicy::every`]: crate::config::SnapshotPolicy::every
/// [`SnapshotPolicy::interval`]: crate::config::SnapshotPolicy::interval
#[derive(Debug)]
struct SnapshotClock {
    policy: crate::config::SnapshotPolicy,
    /// The envelope id the newest snapshot covers.
    through: i64,
    /// When it was taken (or tried).
    at: Instant,
}

impl SnapshotClock {
    /// Whether to snapshot now, with `last_id` the newest stored envelope; `by_time`: the
    /// interval counts too (not at start, where only a long tail does).
    fn due(&self, last_id: i64, now: Instant, by_time: bool) -> bool {
        let new = last_id.saturating_sub(self.through);
        new > 0
            && (u64::try_from(new).unwrap_or(u64::MAX) >= self.policy.every
                || (by_time && now.saturating_duration_since(self.at) >= self.policy.interval))
    }
}

/// Snapshots the figures into the store. A failure is logged and tried again after the
/// interval: the next start then replays more, nothing is lost.
fn take_snapshot(shared: &Shared, store: &mut Backend, clock: &mut SnapshotClock) {
    let started = Instant::now();
    let through = store.last_id();
    // From a copy: serializing takes a while, and ingest need not wait for it.
    let bytes = match shared.read() {
        Ok(agg) => agg.snapshot(),
        Err(_) => return,
    };
    let taken_ms = now_ms();
    clock.at = Instant::now();
    match store.save_snapshot(through, taken_ms, &bytes) {
        Ok(()) => {
            clock.through = through;
            shared.snapshot_through.store(through, Ordering::Relaxed);
            shared.snapshot_taken_ms.store(taken_ms, Ordering::Relaxed);
            info!(
                through,
                bytes = bytes.len(),
                ms = started.elapsed().as_millis() as u64,
                "figures snapshotted"
            );
        }
        Err(error) => warn!(%error, "snapshot not stored; the next start replays more"),
    }
}

/// When the commit thread takes a step of the raw retention: every [`RetentionClock::every`]
/// (a minute, or the retention when shorter), and at once again while a run has more to
/// delete. Pure.
#[derive(Debug)]
struct RetentionClock {
    /// How long raw envelopes are kept.
    keep: Duration,
    /// Between runs.
    every: Duration,
    /// The next run.
    next: Instant,
    /// The run in progress: envelopes and pages so far, and when it began.
    run: Option<(u64, u64, Instant)>,
}

impl RetentionClock {
    fn new(keep: Duration, now: Instant) -> Self {
        RetentionClock {
            keep,
            every: keep.min(Duration::from_secs(60)),
            next: now,
            run: None,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.run.is_some() || now >= self.next
    }

    /// Notes a step's outcome; `Some` with the run's totals when the run is over.
    fn step_done(
        &mut self,
        step: crate::store::Pruned,
        now: Instant,
    ) -> Option<(u64, u64, Duration)> {
        let (envelopes, pages, began) = self.run.take().unwrap_or((0, 0, now));
        let (envelopes, pages) = (envelopes + step.envelopes, pages + step.pages);
        if step.more {
            self.run = Some((envelopes, pages, began));
            return None;
        }
        self.next = now + self.every;
        Some((envelopes, pages, now.saturating_duration_since(began)))
    }
}

/// Notes the oldest poll held once the store holds an envelope (until then there is none;
/// afterwards the retention runs keep it).
fn note_first_envelope(shared: &Shared, store: &Backend) {
    let Ok(mut held) = shared.raw_range.lock() else {
        return;
    };
    if held.oldest_poll_ms.is_none() {
        match store.raw_range() {
            Ok(range) => *held = range,
            Err(error) => warn!(%error, "the retained range could not be read"),
        }
    }
}

/// One step of the raw retention (a short transaction between two commits). A failure is
/// logged and tried again at the next run: nothing is deleted then.
fn prune_step(shared: &Shared, store: &mut Backend, clock: &mut RetentionClock) {
    let cutoff = now_ms().saturating_sub(u64::try_from(clock.keep.as_millis()).unwrap_or(u64::MAX));
    let step = match store.prune_raw(cutoff) {
        Ok(step) => step,
        Err(error) => {
            warn!(%error, "raw retention step failed; tried again at the next run");
            crate::store::Pruned::default()
        }
    };
    if let Some((envelopes, pages, took)) = clock.step_done(step, Instant::now()) {
        if envelopes > 0 {
            match store.raw_range() {
                Ok(range) => {
                    info!(
                        envelopes,
                        freed_pages = pages,
                        ms = took.as_millis() as u64,
                        pruned_total = range.pruned_envelopes,
                        oldest_poll_ms = range.oldest_poll_ms,
                        "raw retention: envelopes received before the cutoff deleted"
                    );
                    if let Ok(mut held) = shared.raw_range.lock() {
                        *held = range;
                    }
                }
                Err(error) => warn!(%error, "raw retention: the retained range could not be read"),
            }
        }
    }
}

/// Takes what has arrived as one batch (up to [`MAX_BATCH`]), checks it and hands it on.
fn check_stage(
    mut rx: mpsc::Receiver<Inbound>,
    handle: &Handle,
    shared: &Shared,
    spares: &Spares,
    to_commit: &std::sync::mpsc::SyncSender<Ready>,
) {
    while let Some(first) = handle.block_on(rx.recv()) {
        let mut batch = vec![first];
        let lingering_until = tokio::time::Instant::now() + LINGER;
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // A stream, not a lone message: gather a larger batch for a while, so that a
            // busy gateway commits (and fsyncs) less often per message.
            if batch.len() < LINGER_FROM || batch.len() >= LINGER_UNTIL {
                break;
            }
            match handle
                .block_on(async { tokio::time::timeout_at(lingering_until, rx.recv()).await })
            {
                Ok(Some(m)) => batch.push(m),
                Ok(None) | Err(_) => break,
            }
        }
        let received_ms = now_ms();
        shared.stats.update(|c| c.received += batch.len() as u64);
        if let Some(replica) = &shared.replica {
            look_up_descriptions(replica, handle, shared, &batch);
        }
        let mut boxes = spares.take(batch.len());
        let mut checked = match shared.descriptions.lock() {
            Ok(mut descriptions) => batch::check(
                &batch,
                received_ms,
                shared.max_clock_skew_ms(),
                &mut boxes,
                &mut descriptions,
            ),
            Err(_) => break, // a panic in this stage before: stop as for a closed channel
        };
        if let Some(replica) = &shared.replica {
            look_up_claims(replica, handle, shared, &checked);
        }
        if let Ok(mut owners) = shared.owners.lock() {
            batch::admit(&mut checked, &mut owners);
        }
        if !boxes.is_empty() {
            spares.give_back(Checked::default(), boxes);
        }
        for r in &checked.rejected {
            let m = &batch[r.index];
            shared.stats.reject(r.cause, &m.topic, m.size);
        }
        let ready = Ready {
            batch,
            checked,
            received_ms,
        };
        if to_commit.send(ready).is_err() {
            break; // the committing stage stopped
        }
    }
}

/// On a replica: learns from the store the descriptions of compact readings in `batch` that
/// another replica received described ([`crate::backend::Replica::look_up`]). Without this,
/// `$share` would hand about half of a device's compact readings to a replica that refuses
/// them as undescribed. A lookup that fails leaves them refused: their collector sends them
/// again, described.
fn look_up_descriptions(
    replica: &crate::backend::Replica,
    handle: &Handle,
    shared: &Shared,
    batch: &[Inbound],
) {
    let wanted = match shared.descriptions.lock() {
        Ok(descriptions) => batch::undescribed(batch, &descriptions),
        Err(_) => return,
    };
    if wanted.is_empty() {
        return;
    }
    let looked = replica.look_up("looking up descriptions", async |s| {
        s.descriptions_of(&wanted).await
    });
    match handle.block_on(looked) {
        Ok(found) => {
            replica
                .descriptions_fetched
                .fetch_add(found.len() as u64, Ordering::Relaxed);
            if let Ok(mut descriptions) = shared.descriptions.lock() {
                for (site, device, payload) in &found {
                    descriptions.learn(site, device, payload);
                }
            }
        }
        Err(error) => {
            replica.lookup_errors.fetch_add(1, Ordering::Relaxed);
            shared.stats.log_limited("lookup", |since| {
                warn!(%error, devices = wanted.len(), since_last_log = since, "looking up descriptions in the store failed; the compact readings are refused until their collectors send them described");
            });
        }
    }
}

/// On a replica: takes from the store the site claims another replica made of collectors and
/// devices in `checked` that this one has not seen, so that the site rules hold across the
/// group (a device first reported by site a is a's on every replica). A lookup that fails is
/// logged; the batch is then admitted on what this replica knows (as at its start), and the
/// store keeps the first claim.
fn look_up_claims(
    replica: &crate::backend::Replica,
    handle: &Handle,
    shared: &Shared,
    checked: &Checked,
) {
    let wanted = match shared.owners.lock() {
        Ok(owners) => batch::unclaimed(checked, &owners),
        Err(_) => return,
    };
    if wanted.is_empty() {
        return;
    }
    let looked = replica.look_up("looking up site claims", async |s| {
        s.owners_of(&wanted).await
    });
    match handle.block_on(looked) {
        Ok(found) => {
            replica
                .claims_fetched
                .fetch_add(found.len() as u64, Ordering::Relaxed);
            if let Ok(mut owners) = shared.owners.lock() {
                for claim in found {
                    owners.restore(claim);
                }
            }
        }
        Err(error) => {
            replica.lookup_errors.fetch_add(1, Ordering::Relaxed);
            shared.stats.log_limited("lookup", |since| {
                warn!(%error, ids = wanted.len(), since_last_log = since, "looking up site claims in the store failed; admitted on this replica's own");
            });
        }
    }
}

/// Longest pause between two tries of a failing commit: a store that comes back (a
/// PostgreSQL server restarted, a SQLite lock released) is used again within this.
const COMMIT_RETRY_MAX: Duration = Duration::from_secs(5);

/// Commits `items`, retrying with backoff (nothing is acknowledged meanwhile) until it works;
/// `None` when the gateway stops first.
fn commit(
    store: &mut Backend,
    items: &[Item],
    shared: &Shared,
    stop: &CancellationToken,
) -> Option<Vec<Committed>> {
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        match store.commit(items) {
            Ok(new) => {
                let secs = started.elapsed().as_secs_f64();
                let conflicts = new.iter().filter(|c| **c == Committed::Conflict).count();
                if conflicts > 0 {
                    shared.stats.log_limited("conflict", |since| {
                        warn!(
                            conflicts,
                            since_last_log = since,
                            "an envelope repeated a stored identity with other bytes; kept aside (GET /api/conflicts)"
                        );
                    });
                }
                let unverified = store.repeats_unverified();
                shared.stats.update(|c| {
                    c.conflicts += conflicts as u64;
                    c.repeats_unverified = unverified;
                    c.commits += 1;
                    c.committed_messages += items.len() as u64;
                    c.commit_seconds += secs;
                    c.commit_seconds_max = c.commit_seconds_max.max(secs);
                });
                return Some(new);
            }
            Err(e) => {
                shared.stats.update(|c| c.store_errors += 1);
                error!(error = %e, messages = items.len(), "store commit failed; the batch stays unacknowledged and is retried");
                let pause =
                    devtel_daemon::backoff(attempt, COMMIT_RETRY_MAX, devtel_daemon::jitter());
                attempt = attempt.saturating_add(1);
                // The pause ends early when the gateway stops: a store that stays broken must
                // not hold a shutdown for the whole backoff.
                let until = Instant::now() + pause;
                loop {
                    if stop.is_cancelled() {
                        return None;
                    }
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
            }
        }
    }
}

fn check_failpoint(checked: &Checked, new: &[Committed]) {
    if let Some(n) = failpoint() {
        use std::sync::atomic::AtomicU64;
        static STORED: AtomicU64 = AtomicU64::new(0);
        let stored_envelope = checked
            .items
            .iter()
            .zip(new)
            .any(|(i, c)| *c == Committed::New && matches!(i, Item::Envelope { .. }));
        if stored_envelope && STORED.fetch_add(1, Ordering::Relaxed) + 1 >= n {
            error!("{FAILPOINT_ENV}={n}: aborting after the commit, before the acknowledgement");
            std::process::abort();
        }
    }
}

/// What applying a batch produced, for the acknowledgement step.
struct Applied {
    acks: Vec<(topic::TopicString, devtel_protocol::Ack)>,
    /// Items whose unit is not configured (their payload is copied to the dead letters).
    unassigned: Vec<usize>,
    newest_poll: u64,
}

/// Step 3: applies the new envelopes and statuses, and computes the acknowledgements while
/// the aggregator is locked.
fn apply(
    checked: &Checked,
    committed: &[Committed],
    shared: &Shared,
    dirty: &mut Dirty,
) -> Result<Applied, MqttError> {
    let poisoned = |what: &str| MqttError::Ingest(format!("the {what} lock is poisoned"));
    let mut agg = shared.write().map_err(|_| poisoned("aggregator"))?;
    let mut applied = Applied {
        acks: Vec::new(),
        unassigned: Vec::new(),
        newest_poll: 0,
    };
    // Counted once for the batch (the counters are behind a lock).
    let mut outcomes = Vec::with_capacity(checked.items.len());
    for (i, (item, committed)) in checked.items.iter().zip(committed).enumerate() {
        match item {
            // Kept aside by the store: the figures are those of the bytes stored first.
            Item::Envelope { .. } if *committed == Committed::Conflict => {}
            Item::Claim(_) | Item::Description { .. } => {}
            // A repeat the store recognised is one the aggregator holds too: ingesting it
            // records the repeat in the collector's delivery ledger and counts its readings as
            // duplicates, so `/api/collectors` and the ingest counters agree.
            Item::Envelope { envelope, .. } => {
                let changes = agg.ingest_into(
                    envelope,
                    &mut crate::aggregate::Marks {
                        units: &mut dirty.units,
                        devices: &mut dirty.devices,
                    },
                );
                outcomes.extend_from_slice(&changes.outcomes);
                if changes.unassigned > 0 {
                    shared
                        .stats
                        .update(|c| c.unassigned += changes.unassigned as u64);
                    applied.unassigned.push(i);
                }
                if changes.outcomes.iter().any(|o| *o != Outcome::Duplicate) {
                    applied.newest_poll = applied.newest_poll.max(envelope.timestamp_ms);
                }
                // The sets are empty until the first change after a publication.
                if dirty.since.is_none() && !(dirty.units.is_empty() && dirty.devices.is_empty()) {
                    dirty.since = Some(Instant::now());
                }
            }
            Item::Status { site, status, .. } => {
                let mut collectors = shared
                    .collectors
                    .lock()
                    .map_err(|_| poisoned("collectors"))?;
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
    shared.stats.outcomes(&outcomes);
    applied.acks = batch::acknowledgements(checked, |collector, epoch, seqs| {
        agg.stored_ranges(collector, epoch, seqs.iter().copied())
    });
    Ok(applied)
}

/// Runs the plan of one batch (see [`crate::batch`]). `Ok(false)` when stopping before the
/// commit succeeded (nothing acknowledged); an error when the batch could not be applied.
fn handle_batch(
    ready: &Ready,
    out: &Out,
    shared: &Shared,
    store: &mut Backend,
    stop: &CancellationToken,
    dirty: &mut Dirty,
) -> Result<bool, MqttError> {
    let Ready {
        batch,
        checked,
        received_ms,
    } = ready;
    let (batch, checked, received_ms) = (&batch[..], checked, *received_ms);
    let Some(new) = commit(store, &checked.items, shared, stop) else {
        return Ok(false);
    };
    check_failpoint(checked, &new);
    let applied = apply(checked, &new, shared, dirty)?;
    if applied.newest_poll > 0 {
        let lag = received_ms.saturating_sub(applied.newest_poll) as f64 / 1000.0;
        shared.stats.update(|c| c.lag_seconds = lag);
    }

    // Step 4: acknowledge.
    let limit = out.broker_max.load(Ordering::Relaxed);
    for &i in &applied.unassigned {
        if let Item::Envelope { envelope, .. } = &checked.items[i] {
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
            // A copy: the reading itself is kept and counted in `unassigned`.
            dead_letter(
                out,
                shared,
                "unknown_unit",
                &batch[checked.sources[i]],
                limit,
            );
        }
    }
    // A compact reading without its description is no message for operators: it comes
    // again, described (counted as `undescribed`).
    for r in checked
        .rejected
        .iter()
        .filter(|r| r.cause != crate::ingest::Rejection::Undescribed)
    {
        dead_letter(out, shared, r.cause.name(), &batch[r.index], limit);
    }
    let mut buf = [0u8; MAX_ACK_LEN];
    for (topic, ack) in &applied.acks {
        match encode_ack(ack, &mut buf) {
            Ok(bytes) => {
                if out.publish(topic.to_string(), false, Bytes::copy_from_slice(bytes)) {
                    shared.stats.update(|c| c.acks_published += 1);
                }
            }
            Err(e) => warn!(error = %e, %topic, "acknowledgement not encoded"),
        }
    }
    out.ack_all(batch);
    Ok(true)
}

fn dead_letter(out: &Out, shared: &Shared, cause: &str, message: &Inbound, limit: usize) {
    if let Some((topic, body)) = batch::dead_letter(cause, message, limit) {
        if out.publish(topic, false, body) {
            shared.stats.update(|c| c.dead_lettered += 1);
        }
    }
}

fn publish_documents(out: &Out, shared: &Shared, dirty: &mut Dirty) {
    // Of a group, the lease holder alone publishes; a replica that becomes it publishes
    // everything (`Shared::republish`).
    if shared.replica.as_ref().is_some_and(|r| !r.publishes()) {
        dirty.units.clear();
        dirty.devices.clear();
        dirty.since = None;
        return;
    }
    let units = std::mem::take(&mut dirty.units);
    let devices = std::mem::take(&mut dirty.devices);
    dirty.since = None;
    let mut docs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut events: Vec<(String, Vec<u8>)> = Vec::new();
    let mut discovery: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let Ok(agg) = shared.read() else {
            return;
        };
        for unit in units {
            let Ok(t) = topic::unit(&unit) else { continue };
            // Integrators on the broker never get single seats.
            let body = agg
                .unit(&unit)
                .map(crate::aggregate::UnitDoc::without_seats)
                .and_then(|d| crate::aggregate::unit_message(&d).ok())
                .unwrap_or_default();
            docs.push((t.to_string(), body));
        }
        for device in devices {
            let Ok(t) = topic::device(&device) else {
                continue;
            };
            let doc = agg
                .device(&device)
                .map(crate::aggregate::DeviceFullDoc::without_seats);
            if let (Some(doc), Some(prefix)) = (&doc, &shared.home_assistant) {
                let site = shared.owners.lock().ok().and_then(|o| {
                    o.site_of_collector(&doc.device.collector)
                        .map(str::to_string)
                });
                let configs = crate::ha::configs(doc, site.as_deref(), prefix);
                if dirty.discovered.get(&device) != Some(&configs) {
                    let old = dirty.discovered.insert(device.clone(), configs.clone());
                    // A sensor gone (a supply removed): its retained config is cleared.
                    for (topic, _) in old.unwrap_or_default() {
                        if !configs.iter().any(|(t, _)| *t == topic) {
                            discovery.push((topic, Vec::new()));
                        }
                    }
                    for (topic, config) in configs {
                        discovery.push((topic, config.to_string().into_bytes()));
                    }
                }
            }
            if let Some(doc) = &doc {
                for e in crate::events::between(dirty.published.get(&device), doc) {
                    let Ok(topic) = topic::event(&e.unit, &e.device) else {
                        continue;
                    };
                    if let Ok(body) = serde_json::to_vec(&e) {
                        events.push((topic.to_string(), body));
                    }
                }
            }
            let body = doc
                .as_ref()
                .and_then(|d| serde_json::to_vec(d).ok())
                .unwrap_or_default();
            match doc {
                Some(doc) => dirty.published.insert(device, doc),
                None => dirty.published.remove(&device),
            };
            docs.push((t.to_string(), body));
        }
    }
    for (t, body) in docs {
        if !out.publish(t, true, Bytes::from(body)) {
            shared.stats.update(|c| c.documents_not_published += 1);
        }
    }
    // Discovery configs after the documents they read, so that Home Assistant finds the
    // state at once.
    for (t, body) in discovery {
        if !out.publish(t, true, Bytes::from(body)) {
            shared.stats.update(|c| c.documents_not_published += 1);
        }
    }
    for (t, body) in events {
        if out.publish(t, false, Bytes::from(body)) {
            shared.stats.update(|c| c.events_published += 1);
        } else {
            shared.stats.update(|c| c.documents_not_published += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_runs_every_minute_and_steps_on_while_a_run_has_more() {
        let t0 = Instant::now();
        let step = |envelopes, more| crate::store::Pruned {
            envelopes,
            pages: 1,
            more,
        };
        let mut clock = RetentionClock::new(Duration::from_secs(400 * 86_400), t0);
        assert!(clock.due(t0), "at start");
        assert_eq!(clock.step_done(step(64, true), t0), None);
        assert!(clock.due(t0), "more to do");
        let later = t0 + Duration::from_millis(5);
        assert_eq!(
            clock.step_done(step(10, false), later),
            Some((74, 2, Duration::from_millis(5)))
        );
        assert!(!clock.due(later + Duration::from_secs(59)));
        assert!(clock.due(later + Duration::from_secs(60)));
        // A retention shorter than a minute is looked at as often as it lasts.
        let mut short = RetentionClock::new(Duration::from_secs(2), t0);
        assert_eq!(
            short.step_done(step(0, false), t0),
            Some((0, 1, Duration::ZERO))
        );
        assert!(!short.due(t0 + Duration::from_secs(1)));
        assert!(short.due(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn snapshots_come_after_enough_envelopes_or_time_and_never_without_new_ones() {
        let t0 = Instant::now();
        let clock = SnapshotClock {
            policy: crate::config::SnapshotPolicy {
                interval: Duration::from_secs(600),
                every: 100,
            },
            through: 1_000,
            at: t0,
        };
        let later = t0 + Duration::from_secs(601);
        assert!(!clock.due(1_000, later, true), "nothing new");
        assert!(!clock.due(1_099, t0, true));
        assert!(clock.due(1_100, t0, true), "enough envelopes");
        assert!(
            clock.due(1_001, later, true),
            "the interval, with something new"
        );
        assert!(
            !clock.due(1_001, later, false),
            "at start only a long tail counts"
        );
        assert!(clock.due(1_100, t0, false));
        assert!(
            !clock.due(900, later, true),
            "below the snapshot: nothing new"
        );
    }
    use crate::aggregate::Aggregator;

    fn publish(qos: QoS, pkid: u16) -> Publish {
        let mut p = Publish::new(
            "devtel/v1/telemetry/s/u/d",
            qos,
            Bytes::from_static(b"\x01\x02"),
            None,
        );
        p.pkid = pkid;
        p
    }

    fn client() -> (AsyncClient, rumqttc::v5::EventLoop) {
        AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), 16)
    }

    /// A store whose database another connection holds the write lock of: every commit fails
    /// (SQLITE_BUSY after the busy timeout) until the returned connection lets go.
    fn locked_store(name: &str) -> (Backend, rusqlite::Connection, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("devtel-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let store = crate::store::Store::open(&path).unwrap();
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        (Backend::Sqlite(store), blocker, dir)
    }

    fn envelope_count(store: &Backend) -> u64 {
        match store {
            Backend::Sqlite(store) => store.envelope_count().unwrap(),
            Backend::Postgres(_) => panic!("a SQLite store"),
        }
    }

    fn one_envelope() -> Vec<Item> {
        vec![crate::testdata::no_response_item("d", 0, 1)]
    }

    #[test]
    fn a_failing_store_is_retried_until_the_batch_is_stored() {
        let (mut store, blocker, dir) = locked_store("retry");
        let shared = Arc::new(Shared::new(Aggregator::new()));
        let releaser = std::thread::spawn({
            let shared = shared.clone();
            move || {
                // Let go once the gateway has seen the store fail.
                while shared.stats.snapshot().store_errors == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                blocker.execute_batch("ROLLBACK").unwrap();
            }
        });
        let stop = CancellationToken::new();
        let items = one_envelope();
        assert_eq!(
            commit(&mut store, &items, &shared, &stop),
            Some(vec![Committed::New])
        );
        releaser.join().unwrap();
        let c = shared.stats.snapshot();
        assert!(c.store_errors >= 1, "{c:?}");
        assert_eq!((c.commits, c.committed_messages), (1, 1), "{c:?}");
        assert_eq!(envelope_count(&store), 1);
        // The same batch again (a redelivery after a restart) is stored once.
        assert_eq!(
            commit(&mut store, &items, &shared, &stop),
            Some(vec![Committed::Repeat])
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stop_ends_the_retries_of_a_store_that_stays_broken_without_storing() {
        let (mut store, blocker, dir) = locked_store("retry-stop");
        let shared = Arc::new(Shared::new(Aggregator::new()));
        let stop = CancellationToken::new();
        let stopper = std::thread::spawn({
            let (shared, stop) = (shared.clone(), stop.clone());
            move || {
                while shared.stats.snapshot().store_errors == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                stop.cancel();
                Instant::now()
            }
        });
        assert_eq!(commit(&mut store, &one_envelope(), &shared, &stop), None);
        let stopped = stopper.join().unwrap();
        // Out of the backoff within a slice of it, not after the whole pause.
        assert!(
            stopped.elapsed() < Duration::from_millis(500),
            "{:?}",
            stopped.elapsed()
        );
        drop(blocker);
        assert_eq!(envelope_count(&store), 0);
        assert_eq!(shared.stats.snapshot().commits, 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn qos1_beyond_channel_and_backlog_is_held_back_and_resent_after_the_queue_drains() {
        let shared = Shared::new(Aggregator::new());
        let (tx, mut rx) = mpsc::channel::<Inbound>(4);
        let (client, _eventloop) = client();
        let redial = devtel_daemon::mqtt::Redial::default();
        let mut intake = Intake::new();
        intake.max_backlog = 3;
        for pkid in 1..=10 {
            assert!(intake.deliver(&tx, &shared, &publish(QoS::AtLeastOnce, pkid)));
            intake.maybe_resync(&tx, &client, &redial, &shared);
        }
        // 4 in the channel, 3 waiting in order, 3 held back (not acknowledged).
        assert_eq!(
            intake.backlog.iter().map(|m| m.pkid).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        let c = shared.stats.snapshot();
        assert_eq!((c.held_back, c.redelivery_reconnects), (3, 0));
        assert!(
            c.rejected.values().all(|n| *n == 0),
            "nothing QoS 1 is dropped"
        );
        assert!(
            !redial.requested(),
            "no reconnect while messages are queued"
        );
        // The processor takes the channel; the backlog moves up in order.
        let mut taken = Vec::new();
        while let Ok(m) = rx.try_recv() {
            taken.push(m.pkid);
            if let Ok(permit) = tx.try_reserve() {
                if let Some(m) = intake.pop() {
                    permit.send(m);
                }
            }
            intake.maybe_resync(&tx, &client, &redial, &shared);
        }
        assert_eq!(taken, [1, 2, 3, 4, 5, 6, 7]);
        // Drained: one reconnect, asked for once, that the poller turns into a redial.
        assert!(redial.requested());
        assert_eq!(shared.stats.snapshot().redelivery_reconnects, 1);
        assert!(intake.resyncing);
        intake.maybe_resync(&tx, &client, &redial, &shared);
        assert_eq!(shared.stats.snapshot().redelivery_reconnects, 1);
    }

    #[tokio::test]
    async fn qos0_only_takes_room_that_qos1_cannot_need() {
        let shared = Shared::new(Aggregator::new());
        let (tx, _rx) = mpsc::channel::<Inbound>(CHANNEL);
        let mut intake = Intake::new();
        // QoS 0 fills only the share above the Receive Maximum ...
        for _ in 0..CHANNEL {
            assert!(intake.deliver(&tx, &shared, &publish(QoS::AtMostOnce, 0)));
        }
        assert_eq!(CHANNEL - tx.capacity(), CHANNEL - RECEIVE_MAXIMUM as usize);
        let c = shared.stats.snapshot();
        assert_eq!(c.rejected["overflow"], RECEIVE_MAXIMUM as u64);
        // ... so every QoS 1 message the broker may send unacknowledged still fits.
        for pkid in 1..=RECEIVE_MAXIMUM {
            assert!(intake.deliver(&tx, &shared, &publish(QoS::AtLeastOnce, pkid)));
        }
        assert!(intake.backlog.is_empty());
        assert_eq!(tx.capacity(), 0);
        assert_eq!(shared.stats.snapshot().held_back, 0);
    }

    #[test]
    fn documents_go_out_once_a_second_while_busy_and_at_once_when_idle() {
        let t0 = Instant::now();
        let mut dirty = Dirty::default();
        assert!(!dirty.due(t0, true), "nothing changed");
        dirty.since = Some(t0);
        assert!(!dirty.due(t0 + Duration::from_millis(999), false));
        assert!(dirty.due(t0 + DOC_INTERVAL, false));
        assert!(dirty.due(t0 + Duration::from_millis(1), true));
    }

    #[tokio::test]
    async fn a_closed_processor_stops_the_intake() {
        let shared = Shared::new(Aggregator::new());
        let (tx, rx) = mpsc::channel::<Inbound>(4);
        drop(rx);
        let mut intake = Intake::new();
        assert!(!intake.deliver(&tx, &shared, &publish(QoS::AtLeastOnce, 1)));
    }
}
