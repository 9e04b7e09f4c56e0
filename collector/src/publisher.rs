//! Delivery: from the poller through the spool to the broker and on to the gateway, at least
//! once, in effect exactly once (the gateway drops repeats by `(collector, epoch, seq)`).
//!
//! One task ([`run`]) owns the [`Spool`], the [`Outbox`] (the I/O-free bookkeeping of what is
//! sent, with the broker and confirmed) and the MQTT client; it only moves events between
//! them. The client's event loop is driven by [`devtel_daemon::mqtt::spawn_poller`] and its
//! events arrive over a bounded channel (a poll cancelled midway would lose a PUBLISH and
//! hold its packet id until the connection ends):
//! 1. Readings arrive over a bounded channel ([`Intake`]). Each batch is encoded, appended to the
//!    spool and synced (the spool's fsync policy) before any of it is published.
//! 2. The outbox says what to publish next: what goes again first, then alternately the newest
//!    readings (live data is never starved) and the oldest pending ones (the backlog).
//! 3. A PUBACK means "with the broker". With `acknowledge = "gateway"` (the default) only the
//!    gateway's acknowledgement on `devtel/v1/acks/{site}/{collector}` removes a reading from
//!    the spool; what the gateway does not confirm within the resend delay, and what was with
//!    the broker at a reconnect, is published again. With `"broker"` the PUBACK releases.
//! 4. Reconnects wait a capped exponential backoff with jitter ([`devtel_daemon::mqtt`]).
//! 5. A retained status on `devtel/v1/collectors/{site}` says `online` (on every connect and
//!    after every poll round, with the counters), and the broker publishes the last will
//!    `offline` if the collector vanishes; a clean stop publishes `offline` itself.
//! 6. When the intake closes (shutdown), the task delivers for at most the drain time, then
//!    disconnects and persists the spool. What is unconfirmed stays in the spool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devtel_daemon::mqtt::Polled;
use devtel_protocol::{decode_ack, encode_to_vec, peek_identity, topic, Envelope, Id};
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::describe::Describer;
use crate::outbox::{Acknowledge, Outbox};
use crate::spool::Spool;

/// Counters of the whole collector, shared by the poller and the delivery task; published in
/// the status message and logged after every round.
#[derive(Debug, Default)]
pub struct Stats {
    /// Device polls finished (answered or not).
    pub polls: AtomicU64,
    /// Polls that ended without an answer before the deadline.
    pub timeouts: AtomicU64,
    /// Polls that ended without a usable answer for another reason (network, auth, garbage).
    pub failed: AtomicU64,
    /// Readings written to the spool.
    pub spooled: AtomicU64,
    /// Publishes handed to the MQTT client (repeats included).
    pub published: AtomicU64,
    /// Of those, readings published described (in full).
    pub published_described: AtomicU64,
    /// Of those, readings published compact (wire version 5).
    pub published_compact: AtomicU64,
    /// Payload bytes of the published readings.
    pub published_bytes: AtomicU64,
    /// Publishes the broker acknowledged (PUBACK).
    pub broker_acked: AtomicU64,
    /// Publishes the broker refused (PUBACK with an error reason, e.g. not authorized).
    pub broker_refused: AtomicU64,
    /// Readings released from the spool by an acknowledgement (the gateway's, or the broker's
    /// with `acknowledge = "broker"`).
    pub acknowledged: AtomicU64,
    /// Of those, readings the gateway refused for good (e.g. topic and payload disagree).
    pub rejected: AtomicU64,
    /// Readings published again (not confirmed in time, or with the broker at a reconnect).
    pub resent: AtomicU64,
    /// Readings with the broker and not yet confirmed by the gateway (gauge).
    pub awaiting_gateway: AtomicU64,
    /// Age of the oldest of those, seconds (gauge).
    pub awaiting_gateway_oldest_s: AtomicU64,
    /// Messages on the acknowledgement topic that were not a valid acknowledgement for us.
    pub bad_acks: AtomicU64,
    /// Acknowledgements (or PUBACKs) that named nothing the spool still holds: repeats, or an
    /// epoch this spool no longer has.
    pub unknown_acks: AtomicU64,
    /// Unacknowledged readings dropped because the spool was full.
    pub dropped: AtomicU64,
    /// Corrupt places in the spool (torn tail after power loss, a corrupt stretch skipped at
    /// open, a failed checksum on read, a segment file that is not the spool's).
    pub corrupt: AtomicU64,
    /// Spool segment files that could not be placed (moved aside as `.unplaced`).
    pub spool_unplaced: AtomicU64,
    /// Spool writes the disk refused (full, I/O error); the reading was kept in memory.
    pub spool_write_errors: AtomicU64,
    /// Failed spool fsyncs (what was not durable was written again).
    pub spool_sync_failures: AtomicU64,
    /// Readings kept in memory because the disk refuses writes (gauge).
    pub spool_in_memory: AtomicU64,
    /// Readings that could not be encoded or spooled (logged with the cause).
    pub lost: AtomicU64,
    /// Successful reconnects after the first connection.
    pub reconnects: AtomicU64,
    /// Connection errors.
    pub connection_errors: AtomicU64,
    /// Readings in the spool not yet acknowledged (gauge).
    pub spool_pending: AtomicU64,
    /// Bytes the spool occupies on disk (gauge).
    pub spool_bytes: AtomicU64,
    /// Jumps of the site box's wall clock seen (see [`crate::clock`]).
    pub clock_jumps: AtomicU64,
    /// The last jump, ms (positive: forward), as two's complement.
    pub clock_last_jump_ms: AtomicU64,
}

impl Stats {
    /// A snapshot for JSON and logs.
    pub fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            polls: get(&self.polls),
            timeouts: get(&self.timeouts),
            failed: get(&self.failed),
            spooled: get(&self.spooled),
            published: get(&self.published),
            published_described: get(&self.published_described),
            published_compact: get(&self.published_compact),
            published_bytes: get(&self.published_bytes),
            broker_acked: get(&self.broker_acked),
            broker_refused: get(&self.broker_refused),
            acknowledged: get(&self.acknowledged),
            rejected: get(&self.rejected),
            resent: get(&self.resent),
            awaiting_gateway: get(&self.awaiting_gateway),
            awaiting_gateway_oldest_s: get(&self.awaiting_gateway_oldest_s),
            bad_acks: get(&self.bad_acks),
            unknown_acks: get(&self.unknown_acks),
            dropped: get(&self.dropped),
            corrupt: get(&self.corrupt),
            spool_unplaced: get(&self.spool_unplaced),
            spool_write_errors: get(&self.spool_write_errors),
            spool_sync_failures: get(&self.spool_sync_failures),
            spool_in_memory: get(&self.spool_in_memory),
            lost: get(&self.lost),
            reconnects: get(&self.reconnects),
            connection_errors: get(&self.connection_errors),
            spool_pending: get(&self.spool_pending),
            spool_bytes: get(&self.spool_bytes),
            clock_jumps: get(&self.clock_jumps),
            clock_last_jump_ms: get(&self.clock_last_jump_ms) as i64,
        }
    }
}

/// [`Stats`] at one moment (the `counters` object of the status message).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Counters {
    pub polls: u64,
    pub timeouts: u64,
    pub failed: u64,
    pub spooled: u64,
    pub published: u64,
    pub published_described: u64,
    pub published_compact: u64,
    pub published_bytes: u64,
    pub broker_acked: u64,
    pub broker_refused: u64,
    pub acknowledged: u64,
    pub rejected: u64,
    pub resent: u64,
    pub awaiting_gateway: u64,
    pub awaiting_gateway_oldest_s: u64,
    pub bad_acks: u64,
    pub unknown_acks: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub spool_unplaced: u64,
    pub spool_write_errors: u64,
    pub spool_sync_failures: u64,
    pub spool_in_memory: u64,
    pub lost: u64,
    pub reconnects: u64,
    pub connection_errors: u64,
    pub spool_pending: u64,
    pub spool_bytes: u64,
    pub clock_jumps: u64,
    pub clock_last_jump_ms: i64,
}

/// What the poller hands to the delivery task.
#[derive(Debug)]
pub enum Intake {
    /// One reading to spool and publish, already encoded ([`Record::encode`]).
    Record(Record),
    /// A poll round ended: publish the status with fresh counters.
    RoundDone,
}

/// A polled envelope as the spool keeps it: topic and encoded envelope ([`spool_payload`]).
///
/// Encoded where it is polled, so that what waits in the intake channel is the few hundred
/// bytes of the record, not the in-memory envelope (about 3.6 KB with its inline strings).
#[derive(Debug)]
pub struct Record {
    payload: Vec<u8>,
    epoch: u64,
    seq: u64,
}

impl Record {
    /// Encodes `envelope` for the spool: wire version 5 (`compact`, the describer decides at
    /// publish time what goes compact) or version 4 (`wire = "full"`). `None` when it has no
    /// valid topic or cannot be encoded; the reading is then lost, counted in `stats.lost`
    /// and logged.
    pub fn encode(envelope: &mut Envelope, compact: bool, stats: &Stats) -> Option<Record> {
        let first = envelope.readings.first()?;
        let topic = match topic::telemetry(&envelope.site, first.unit(), first.device()) {
            Ok(t) => t,
            Err(e) => {
                stats.lost.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, device = first.device(), "reading lost: no valid topic");
                return None;
            }
        };
        // `wire = "full"`: version 4, what a gateway before version 5 reads.
        if !compact {
            envelope.version = devtel_protocol::SITE_VERSION;
        }
        match encode_to_vec(envelope) {
            Ok(bytes) => Some(Record {
                payload: spool_payload(&topic, &bytes),
                epoch: envelope.epoch,
                seq: envelope.seq,
            }),
            Err(e) => {
                stats.lost.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, device = first.device(), seq = envelope.seq, "reading lost: could not be encoded");
                None
            }
        }
    }
}

/// Who this collector is, for the status message and the last will.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Site id (the status topic's segment).
    pub site: Id,
    /// Collector id.
    pub collector: Id,
    /// This run's epoch.
    pub epoch: u64,
    /// Start time, ms since the Unix epoch.
    pub started_ms: u64,
}

/// The retained JSON on `devtel/v1/collectors/{site}`.
#[derive(Debug, Serialize)]
struct Status<'a> {
    state: &'a str,
    site: &'a str,
    collector: &'a str,
    version: &'a str,
    epoch: u64,
    started_at: String,
    started_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledge: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<Counters>,
}

fn status_json(
    identity: &Identity,
    state: &str,
    acknowledge: Option<Acknowledge>,
    counters: Option<Counters>,
) -> Vec<u8> {
    let started = UNIX_EPOCH + Duration::from_millis(identity.started_ms);
    let status = Status {
        state,
        site: &identity.site,
        collector: &identity.collector,
        version: env!("CARGO_PKG_VERSION"),
        epoch: identity.epoch,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        started_at_ms: identity.started_ms,
        acknowledge: acknowledge.map(Acknowledge::name),
        updated_at_ms: counters.map(|_| now_ms()),
        counters,
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// MQTT 5 options: the `[mqtt]` settings with the collector's client id and its last will.
///
/// # Errors
/// When the TLS files are unusable.
pub fn options(
    mqtt: &devtel_daemon::mqtt::Mqtt,
    client_id: &str,
    identity: &Identity,
) -> Result<MqttOptions, devtel_daemon::mqtt::TlsError> {
    let last_will = topic::collector(&identity.site).ok().map(|t| {
        LastWill::new(
            t.as_str(),
            status_json(identity, "offline", None, None),
            QoS::AtLeastOnce,
            true,
            None,
        )
    });
    devtel_daemon::mqtt::options(
        mqtt,
        devtel_daemon::mqtt::Session {
            client_id: client_id.to_string(),
            last_will,
            receive_maximum: None,
            manual_acks: false,
        },
    )
}

/// A spool record's payload: `[topic length: u16 LE][topic][envelope]`, so replay needs no
/// decoding.
pub fn spool_payload(topic: &str, envelope: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + topic.len() + envelope.len());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(envelope);
    out
}

fn split_payload(payload: &[u8]) -> Option<(&str, &[u8])> {
    let len = u16::from_le_bytes([*payload.first()?, *payload.get(1)?]) as usize;
    let topic = std::str::from_utf8(payload.get(2..2 + len)?).ok()?;
    Some((topic, payload.get(2 + len..)?))
}

/// The `(epoch, seq)` of a spooled record, for the outbox's index (`None`: a record of another
/// format, which only a broker's PUBACK can release).
pub fn record_identity(payload: &[u8]) -> Option<(u64, u64)> {
    let (_, envelope) = split_payload(payload)?;
    let id = peek_identity(envelope).ok()?;
    Some((id.epoch, id.seq))
}

/// Timing of the delivery task.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Longest wait for acknowledgements at shutdown.
    pub drain: Duration,
    /// Reconnect backoff cap.
    pub backoff_cap: Duration,
}

struct Sender {
    client: AsyncClient,
    spool: Spool,
    outbox: Outbox,
    stats: Arc<Stats>,
    identity: Identity,
    status_topic: Option<String>,
    ack_topic: Option<String>,
    connected_once: bool,
    last_bad_ack_log: Option<Instant>,
    clock: crate::clock::ClockWatch,
    describer: Describer,
}

impl Sender {
    fn update_gauges(&self) {
        let s = self.spool.stats();
        let o = self.outbox.counts();
        let st = &self.stats;
        st.spool_pending
            .store(self.spool.pending(), Ordering::Relaxed);
        st.spool_bytes.store(self.spool.bytes(), Ordering::Relaxed);
        st.dropped.store(s.dropped, Ordering::Relaxed);
        st.corrupt.store(s.corrupt, Ordering::Relaxed);
        st.spool_unplaced.store(s.unplaced, Ordering::Relaxed);
        st.spool_write_errors
            .store(s.write_errors, Ordering::Relaxed);
        st.spool_sync_failures
            .store(s.sync_failures, Ordering::Relaxed);
        st.spool_in_memory
            .store(self.spool.in_memory() as u64, Ordering::Relaxed);
        st.published.store(o.published, Ordering::Relaxed);
        let w = self.describer.counts();
        st.published_described.store(w.described, Ordering::Relaxed);
        st.published_compact.store(w.compact, Ordering::Relaxed);
        st.published_bytes.store(w.bytes, Ordering::Relaxed);
        st.broker_acked.store(o.broker_acked, Ordering::Relaxed);
        st.broker_refused.store(o.broker_refused, Ordering::Relaxed);
        st.acknowledged.store(o.acknowledged, Ordering::Relaxed);
        st.rejected.store(o.rejected, Ordering::Relaxed);
        st.resent.store(o.resent, Ordering::Relaxed);
        st.unknown_acks.store(o.unknown_acks, Ordering::Relaxed);
        let (awaiting, oldest) = self.outbox.awaiting(Instant::now());
        st.awaiting_gateway.store(awaiting, Ordering::Relaxed);
        st.awaiting_gateway_oldest_s
            .store(oldest.as_secs(), Ordering::Relaxed);
    }

    fn intake(&mut self, record: &Record) {
        match self.spool.append(&record.payload) {
            Ok(id) => {
                self.stats.spooled.fetch_add(1, Ordering::Relaxed);
                self.outbox
                    .appended(id, record.epoch, record.seq, Instant::now());
            }
            Err(e) => {
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, epoch = record.epoch, seq = record.seq, "reading lost: could not be spooled");
            }
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.spool.sync() {
            error!(error = %e, "spool sync failed; readings are published but may not survive a power cut");
        }
    }

    fn fill_window(&mut self) {
        while let Some(next) = self.outbox.next_publish(&mut self.spool, Instant::now()) {
            let Some((topic, envelope)) = split_payload(&next.payload) else {
                warn!(id = next.id, "spooled record has no topic; skipped");
                let _ = self.spool.ack(next.id);
                continue;
            };
            let payload = self
                .describer
                .payload(envelope, next.repeat)
                .unwrap_or_else(|| envelope.to_vec());
            let (topic, envelope) = (topic.to_string(), payload);
            match self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, envelope)
            {
                Ok(()) => self.outbox.published(next, &mut self.spool),
                Err(e) => {
                    debug!(error = %e, "MQTT request queue full; retrying later");
                    self.outbox.not_published(next);
                    break;
                }
            }
        }
        self.update_gauges();
    }

    fn publish_status(&mut self, state: &str) {
        if let Some(jump_ms) = self.clock.observe(now_ms(), std::time::Instant::now()) {
            self.stats.clock_jumps.fetch_add(1, Ordering::Relaxed);
            self.stats
                .clock_last_jump_ms
                .store(jump_ms as u64, Ordering::Relaxed);
            warn!(
                jump_ms,
                "the wall clock jumped: poll times before and after differ by this much more than the time that passed"
            );
        }
        let Some(t) = self.status_topic.clone() else {
            return;
        };
        self.update_gauges();
        let counters = Some(self.stats.snapshot());
        let mode = Some(self.outbox.settings().acknowledge);
        let body = status_json(&self.identity, state, mode, counters);
        if self
            .client
            .try_publish(t, QoS::AtLeastOnce, true, body)
            .is_ok()
        {
            self.outbox.status_published();
        }
    }

    fn bad_ack(&mut self, why: &str) {
        self.stats.bad_acks.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if self
            .last_bad_ack_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
        {
            self.last_bad_ack_log = Some(now);
            warn!(
                why,
                total = self.stats.bad_acks.load(Ordering::Relaxed),
                "message on the acknowledgement topic ignored"
            );
        }
    }

    fn on_ack_message(&mut self, payload: &[u8]) {
        match decode_ack(payload) {
            Ok(ack) if ack.collector == self.identity.collector => {
                self.describer.acknowledged(&ack);
                if let Err(e) = self.outbox.gateway_ack(&ack, &mut self.spool) {
                    warn!(error = %e, "spool acknowledgement not recorded; the reading may be sent again");
                }
            }
            Ok(_) => self.bad_ack("for another collector"),
            Err(e) => self.bad_ack(&e.to_string()),
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                if self.connected_once {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.connected_once = true;
                let before = self.outbox.counts().resent;
                self.outbox.connected(ack.session_present);
                let again = self.outbox.counts().resent - before;
                info!(
                    session_present = ack.session_present,
                    pending = self.spool.pending(),
                    sent_again = again,
                    "connected to MQTT broker"
                );
                if let Some(t) = &self.ack_topic {
                    if let Err(e) = self.client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                        warn!(error = %e, topic = t, "acknowledgement subscription not queued");
                    }
                }
                self.publish_status("online");
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| !matches!(c, SubscribeReasonCode::Success(_)));
                if refused {
                    error!(topic = ?self.ack_topic, codes = ?ack.return_codes, "the broker refused the acknowledgement subscription: readings are delivered but never leave the spool (check the broker's ACL)");
                }
            }
            Event::Outgoing(rumqttc::Outgoing::Publish(pkid)) => {
                self.outbox.outgoing_publish(pkid);
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let accepted = matches!(
                    ack.reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                );
                if !accepted {
                    warn!(reason = ?ack.reason, "the broker refused a reading; it is sent again later");
                }
                if accepted && self.outbox.settings().acknowledge == Acknowledge::Broker {
                    // Without the gateway's word, the broker's PUBACK confirms a description
                    // (it delivers the device's topic in order).
                    if let Some((payload, (epoch, seq))) = self.outbox.inflight_record(ack.pkid) {
                        if let Some((topic, _)) = split_payload(payload) {
                            self.describer.confirmed(topic, epoch, seq);
                        }
                    }
                }
                if let Err(e) =
                    self.outbox
                        .puback(ack.pkid, accepted, &mut self.spool, Instant::now())
                {
                    warn!(error = %e, "spool acknowledgement not recorded; the reading may be sent again");
                }
            }
            Event::Incoming(Packet::Publish(p)) => {
                if self.ack_topic.as_deref().map(str::as_bytes) == Some(&p.topic[..]) {
                    self.on_ack_message(&p.payload);
                } else {
                    self.bad_ack("unexpected topic");
                }
            }
            _ => {}
        }
    }
}

/// What delivery works with: the spool, its bookkeeping and the choice of wire form.
#[allow(missing_debug_implementations)]
pub struct Delivery {
    /// The spooled readings.
    pub spool: Spool,
    /// Which of them are where; knows the identities of the records in `spool` (see
    /// [`record_identity`]).
    pub outbox: Outbox,
    /// Which go described and which compact.
    pub describer: Describer,
}

/// Runs delivery until `intake` closes and the drain ends. See the module documentation.
pub async fn run(
    options: MqttOptions,
    identity: Identity,
    delivery: Delivery,
    mut intake: mpsc::Receiver<Intake>,
    stats: Arc<Stats>,
    timing: Timing,
) -> Spool {
    let Delivery {
        spool,
        mut outbox,
        describer,
    } = delivery;
    let window = outbox.settings().window;
    let (client, eventloop) = AsyncClient::new(options, window * 2 + 16);
    let devtel_daemon::mqtt::Poller {
        mut events,
        task: poller,
        ..
    } = devtel_daemon::mqtt::spawn_poller(
        eventloop,
        timing.backoff_cap,
        window * 2 + 64,
        devtel_daemon::mqtt::every_event,
    );
    let status_topic = topic::collector(&identity.site)
        .ok()
        .map(|t| t.as_str().to_string());
    let ack_topic = (outbox.settings().acknowledge == Acknowledge::Gateway)
        .then(|| topic::ack(&identity.site, &identity.collector).ok())
        .flatten()
        .map(|t| t.as_str().to_string());
    outbox.set_cursor(spool.next_pending(0).unwrap_or(0));
    let mut s = Sender {
        client,
        spool,
        outbox,
        stats,
        identity,
        status_topic,
        ack_topic,
        connected_once: false,
        last_bad_ack_log: None,
        clock: crate::clock::ClockWatch::default(),
        describer,
    };
    s.update_gauges();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut drain_until: Option<Instant> = None;

    loop {
        tokio::select! {
            message = intake.recv(), if drain_until.is_none() => match message {
                Some(first) => {
                    let mut round_done = false;
                    let mut next = Some(first);
                    // Take the whole batch that is waiting, then sync once (group commit).
                    while let Some(message) = next.take() {
                        match message {
                            Intake::Record(record) => s.intake(&record),
                            Intake::RoundDone => round_done = true,
                        }
                        next = intake.try_recv().ok();
                    }
                    s.sync();
                    s.update_gauges();
                    if round_done && s.outbox.is_connected() {
                        s.publish_status("online");
                    }
                }
                None => {
                    s.sync();
                    drain_until = Some(Instant::now() + timing.drain);
                    info!(pending = s.spool.pending(), "intake closed; delivering what is pending before disconnecting");
                }
            },
            polled = events.recv() => match polled {
                Some(Polled::Event(event)) => s.on_event(event),
                Some(Polled::Failed { error, retry_in }) => {
                    s.outbox.disconnected();
                    s.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(%error, ?retry_in, pending = s.spool.pending(), "MQTT connection error");
                }
                None => {
                    error!("the MQTT event loop stopped; unconfirmed readings stay in the spool for the next start");
                    break;
                }
            },
            _ = tick.tick() => {
                s.sync();
                s.outbox.tick(Instant::now());
                if let Err(e) = s.spool.persist() {
                    warn!(error = %e, "spool watermark not written");
                }
            }
            _ = async { if let Some(at) = drain_until { tokio::time::sleep_until(at).await } }, if drain_until.is_some() => {
                warn!(pending = s.spool.pending(), "drain time over; unconfirmed readings stay in the spool for the next start");
                break;
            }
        }
        s.fill_window();
        if drain_until.is_some() && s.outbox.idle(&s.spool) {
            break;
        }
    }

    // Clean stop: retained offline status, then DISCONNECT (the will is not published then).
    if s.outbox.is_connected() {
        s.publish_status("offline");
        let _ = s.client.try_disconnect();
        let flushed = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match events.recv().await {
                    Some(Polled::Event(Event::Outgoing(rumqttc::Outgoing::Disconnect)))
                    | Some(Polled::Failed { .. })
                    | None => break,
                    Some(Polled::Event(event)) => s.on_event(event),
                }
            }
        })
        .await;
        if flushed.is_err() {
            debug!("broker did not take the DISCONNECT in time");
        }
    }
    drop(events);
    let _ = poller.await;
    if let Err(e) = s.spool.close() {
        error!(error = %e, "spool not closed cleanly");
    }
    s.stats
        .lost
        .fetch_add(s.spool.stats().lost_in_memory, Ordering::Relaxed);
    s.update_gauges();
    s.spool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_payload_round_trips_and_rejects_garbage() {
        let p = spool_payload("devtel/v1/telemetry/s/u/d", &[3, 1, 2]);
        assert_eq!(
            split_payload(&p),
            Some(("devtel/v1/telemetry/s/u/d", &[3u8, 1, 2][..]))
        );
        assert_eq!(split_payload(&[]), None);
        assert_eq!(split_payload(&[200, 0, b'a']), None);
        assert_eq!(split_payload(&[1, 0, 0xff]), None);
        assert_eq!(record_identity(&p), None, "not an envelope");
        let mut e = Envelope::new(
            "site".try_into().unwrap(),
            "c".try_into().unwrap(),
            9,
            41,
            5,
        );
        e.readings
            .push(devtel_protocol::Reading::NoResponse(
                devtel_protocol::NoResponse {
                    device: "d".try_into().unwrap(),
                    unit: "u".try_into().unwrap(),
                    kind: devtel_protocol::DeviceKind::Copier,
                    cause: devtel_protocol::NoResponseCause::Timeout,
                },
            ))
            .unwrap();
        let p = spool_payload("t", &encode_to_vec(&e).unwrap());
        assert_eq!(record_identity(&p), Some((9, 41)));
    }

    #[test]
    fn status_names_state_version_mode_and_counters() {
        let identity = Identity {
            site: "s".try_into().unwrap(),
            collector: "c".try_into().unwrap(),
            epoch: 1_700_000_000_000,
            started_ms: 1_700_000_000_000,
        };
        let will: serde_json::Value =
            serde_json::from_slice(&status_json(&identity, "offline", None, None)).unwrap();
        assert_eq!(will["state"], "offline");
        assert_eq!(will["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(will["version"], env!("CARGO_PKG_VERSION"));
        assert!(will.get("counters").is_none());
        let stats = Stats::default();
        stats.dropped.store(7, Ordering::Relaxed);
        stats.awaiting_gateway.store(3, Ordering::Relaxed);
        let online: serde_json::Value = serde_json::from_slice(&status_json(
            &identity,
            "online",
            Some(Acknowledge::Gateway),
            Some(stats.snapshot()),
        ))
        .unwrap();
        assert_eq!(online["counters"]["dropped"], 7);
        assert_eq!(online["counters"]["awaiting_gateway"], 3);
        assert_eq!(online["acknowledge"], "gateway");
        assert_eq!(online["epoch"], 1_700_000_000_000u64);
    }
}
