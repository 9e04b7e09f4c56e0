//! Delivery: from the poller through the spool to the broker, at least once, in effect exactly
//! once (receivers drop repeats by `(collector, epoch, seq)`).
//!
//! One task ([`run`]) owns the [`Spool`] and the rumqttc event loop:
//! 1. Readings arrive over a bounded channel ([`Intake`]). Each batch is encoded, appended to the
//!    spool and synced (the spool's fsync policy) before any of it is published.
//! 2. At most `mqtt.inflight` records are unacknowledged at once. The next record alternates
//!    between the newest readings (the current poll round, so live data is never starved) and
//!    the oldest unacknowledged ones (replay after an outage or restart, oldest first).
//! 3. A PUBACK removes its record from the spool. rumqttc reports packet ids only in events, so
//!    the task matches `Outgoing::Publish(pkid)` events to its publishes in order.
//! 4. After a reconnect into a *new* session (the broker forgot us, e.g. it restarted without
//!    persistence) rumqttc drops its unacknowledged publishes; the task puts them back into
//!    the replay queue, so nothing depends on the broker's memory. In a resumed session rumqttc
//!    resends them itself with their packet ids.
//! 5. Reconnects wait a capped exponential backoff with jitter ([`devtel_daemon::backoff`]).
//! 6. A retained status on `devtel/v1/collectors/{site}` says `online` (on every connect and
//!    after every poll round, with the counters), and the broker publishes the last will
//!    `offline` if the collector vanishes; a clean stop publishes `offline` itself.
//! 7. When the intake closes (shutdown), the task publishes for at most the drain time, then
//!    disconnects and persists the spool. What is still unacknowledged stays in the spool.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devtel_protocol::{encode_to_vec, topic, Envelope, Id, MAX_ENCODED_LEN};
use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::config::{Mqtt, Tls};
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
    /// Publishes handed to the MQTT client (replays included).
    pub published: AtomicU64,
    /// Readings acknowledged by the broker (and removed from the spool).
    pub acknowledged: AtomicU64,
    /// Unacknowledged readings dropped because the spool was full.
    pub dropped: AtomicU64,
    /// Spool records found corrupt (torn tail after power loss, failed checksum).
    pub corrupt: AtomicU64,
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
            acknowledged: get(&self.acknowledged),
            dropped: get(&self.dropped),
            corrupt: get(&self.corrupt),
            lost: get(&self.lost),
            reconnects: get(&self.reconnects),
            connection_errors: get(&self.connection_errors),
            spool_pending: get(&self.spool_pending),
            spool_bytes: get(&self.spool_bytes),
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
    pub acknowledged: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub lost: u64,
    pub reconnects: u64,
    pub connection_errors: u64,
    pub spool_pending: u64,
    pub spool_bytes: u64,
}

/// What the poller hands to the delivery task.
#[derive(Debug)]
pub enum Intake {
    /// One envelope to spool and publish.
    Envelope(Box<Envelope>),
    /// A poll round ended: publish the status with fresh counters.
    RoundDone,
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
    updated_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<Counters>,
}

fn status_json(identity: &Identity, state: &str, counters: Option<Counters>) -> Vec<u8> {
    let started = UNIX_EPOCH + Duration::from_millis(identity.started_ms);
    let status = Status {
        state,
        site: &identity.site,
        collector: &identity.collector,
        version: env!("CARGO_PKG_VERSION"),
        epoch: identity.epoch,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        started_at_ms: identity.started_ms,
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

/// Why TLS could not be set up (named file, clear cause).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{key} {path}: {reason}")]
    File {
        /// The config key.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_err = |key: &'static str, path: &std::path::Path, reason: String| TlsError::File {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let certs = |key: &'static str, path: &std::path::Path| {
        let iter =
            CertificateDer::pem_file_iter(path).map_err(|e| file_err(key, path, e.to_string()))?;
        let certs = iter
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err(key, path, e.to_string()))?;
        if certs.is_empty() {
            return Err(file_err(key, path, "no PEM certificate in the file".into()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs("mqtt.ca_file", &tls.ca_file)? {
        roots.add(cert).map_err(|e| {
            file_err(
                "mqtt.ca_file",
                &tls.ca_file,
                format!("unusable certificate: {e}"),
            )
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match &tls.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certs("mqtt.client_cert", cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_err("mqtt.client_key", key, e.to_string()))?;
            builder.with_client_auth_cert(chain, key_der)?
        }
    })
}

/// MQTT options: persistent session, in-flight window, last will, credentials and TLS.
///
/// # Errors
/// [`TlsError`] when the TLS files are unusable.
pub fn options(mqtt: &Mqtt, client_id: &str, identity: &Identity) -> Result<MqttOptions, TlsError> {
    let mut options = MqttOptions::new(client_id, mqtt.host.clone(), mqtt.port);
    options.set_keep_alive(mqtt.keep_alive);
    options.set_max_packet_size(MAX_ENCODED_LEN + 1024, MAX_ENCODED_LEN + 1024);
    options.set_clean_session(false);
    options.set_inflight(mqtt.inflight);
    if let Ok(status_topic) = topic::collector(&identity.site) {
        options.set_last_will(LastWill::new(
            status_topic.as_str(),
            status_json(identity, "offline", None),
            QoS::AtLeastOnce,
            true,
        ));
    }
    if let Some((user, password)) = &mqtt.credentials {
        options.set_credentials(user.clone(), password.expose().to_string());
    }
    if let Some(tls) = &mqtt.tls {
        let config = tls_config(tls)?;
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
        ));
    }
    Ok(options)
}

/// A connection error in words site IT can act on.
pub fn describe(error: &ConnectionError) -> String {
    let text = error.to_string();
    let hint = if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        Some("the broker's certificate is not signed by the CA in mqtt.ca_file")
    } else if text.contains("NotValidForName") {
        Some("the broker's certificate does not name the host in `broker`")
    } else if text.contains("BadUserNamePassword") || text.contains("NotAuthorized") {
        Some("the broker refused mqtt.username / password")
    } else if text.contains("Connection refused") {
        Some("nothing listens at the broker address")
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{hint} ({text})"),
        None => text,
    }
}

/// A publish handed to rumqttc whose packet id is not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    Record(u64),
    Status,
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

/// Delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Most unacknowledged publishes.
    pub window: usize,
    /// How long a reading counts as live (preferred over the replay); normally the poll interval.
    pub live_for: Duration,
    /// Longest wait for acknowledgements at shutdown.
    pub drain: Duration,
    /// Reconnect backoff cap.
    pub backoff_cap: Duration,
}

struct Sender {
    client: AsyncClient,
    spool: Spool,
    stats: Arc<Stats>,
    identity: Identity,
    status_topic: Option<String>,
    delivery: Delivery,
    /// Packet id → what it carries.
    inflight: HashMap<u16, Tracked>,
    /// Handed to rumqttc, packet id not yet seen, in order.
    unassigned: VecDeque<Tracked>,
    /// Records handed to rumqttc and not yet acknowledged, with their spool payload: a copy
    /// survives the record's segment being dropped for space, and serves resends.
    outstanding: HashMap<u64, Vec<u8>>,
    /// Outstanding records to publish again (their session was lost), oldest first.
    resend: VecDeque<u64>,
    /// Replay position: the oldest id that may still need sending.
    cursor: u64,
    /// Recently appended ids, newest readings first in line.
    live: VecDeque<(u64, Instant)>,
    take_live: bool,
    connected: bool,
    connected_once: bool,
}

impl Sender {
    fn update_gauges(&self) {
        let s = self.spool.stats();
        self.stats
            .spool_pending
            .store(self.spool.pending(), Ordering::Relaxed);
        self.stats
            .spool_bytes
            .store(self.spool.bytes(), Ordering::Relaxed);
        self.stats.dropped.store(s.dropped, Ordering::Relaxed);
        self.stats.corrupt.store(s.corrupt, Ordering::Relaxed);
    }

    fn intake(&mut self, envelope: &Envelope) {
        let Some(first) = envelope.readings.first() else {
            return;
        };
        let topic = match topic::telemetry(&self.identity.site, first.unit(), first.device()) {
            Ok(t) => t,
            Err(e) => {
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, device = first.device(), "reading lost: no valid topic");
                return;
            }
        };
        let bytes = match encode_to_vec(envelope) {
            Ok(b) => b,
            Err(e) => {
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, device = first.device(), seq = envelope.seq, "reading lost: could not be encoded");
                return;
            }
        };
        match self.spool.append(&spool_payload(&topic, &bytes)) {
            Ok(id) => {
                self.stats.spooled.fetch_add(1, Ordering::Relaxed);
                self.live.push_back((id, Instant::now()));
                if self.live.len() > 100_000 {
                    self.live.pop_front();
                }
            }
            Err(e) => {
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, device = first.device(), seq = envelope.seq, "reading lost: could not be spooled");
            }
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.spool.sync() {
            error!(error = %e, "spool sync failed; readings are published but may not survive a power cut");
        }
    }

    /// The next record to publish: alternately the newest live reading and the oldest pending.
    fn pick(&mut self) -> Option<u64> {
        for _ in 0..2 {
            if self.take_live {
                self.take_live = false;
                while let Some((id, at)) = self.live.pop_front() {
                    if at.elapsed() <= self.delivery.live_for
                        && !self.outstanding.contains_key(&id)
                        && self.spool.is_pending(id)
                    {
                        return Some(id);
                    }
                }
            } else {
                self.take_live = true;
                let mut from = self.cursor;
                while let Some(id) = self.spool.next_pending(from) {
                    if self.outstanding.contains_key(&id) {
                        from = id + 1;
                        continue;
                    }
                    self.cursor = id + 1;
                    return Some(id);
                }
                self.cursor = from;
            }
        }
        None
    }

    fn fill_window(&mut self) {
        while self.connected && self.inflight.len() + self.unassigned.len() < self.delivery.window {
            // Resends of a lost session first, from the copies kept in memory.
            let (id, payload, fresh) = if let Some(id) = self.resend.pop_front() {
                match self.outstanding.get(&id) {
                    Some(p) => (id, p.clone(), false),
                    None => continue,
                }
            } else {
                let Some(id) = self.pick() else { break };
                match self.spool.read(id) {
                    Ok(Some(p)) => (id, p, true),
                    Ok(None) => continue,
                    Err(e) => {
                        warn!(error = %e, "spooled reading skipped");
                        continue;
                    }
                }
            };
            let Some((topic, envelope)) = split_payload(&payload) else {
                warn!(id, "spooled record has no topic; skipped");
                let _ = self.spool.ack(id);
                continue;
            };
            match self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, envelope.to_vec())
            {
                Ok(()) => {
                    self.unassigned.push_back(Tracked::Record(id));
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                    if fresh {
                        self.spool.mark_sent(id);
                        self.outstanding.insert(id, payload);
                    }
                }
                Err(e) => {
                    debug!(error = %e, "MQTT request queue full; retrying later");
                    if fresh {
                        self.cursor = self.cursor.min(id);
                    } else {
                        self.resend.push_front(id);
                    }
                    break;
                }
            }
        }
        self.update_gauges();
    }

    fn publish_status(&mut self, state: &str) {
        let Some(t) = self.status_topic.clone() else {
            return;
        };
        let counters = Some(self.stats.snapshot());
        let body = status_json(&self.identity, state, counters);
        if self
            .client
            .try_publish(t, QoS::AtLeastOnce, true, body)
            .is_ok()
        {
            self.unassigned.push_back(Tracked::Status);
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.connected = true;
                if self.connected_once {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.connected_once = true;
                if !ack.session_present {
                    // rumqttc dropped its unacknowledged publishes: send them again, oldest first.
                    let mut ids: Vec<u64> = self.outstanding.keys().copied().collect();
                    ids.sort_unstable();
                    if !ids.is_empty() {
                        info!(
                            resend = ids.len(),
                            "new MQTT session: unacknowledged readings are sent again"
                        );
                    }
                    self.resend = ids.into();
                    self.inflight.clear();
                    self.unassigned.clear();
                }
                info!(
                    session_present = ack.session_present,
                    pending = self.spool.pending(),
                    "connected to MQTT broker"
                );
                self.publish_status("online");
            }
            // A packet id already in flight is rumqttc resending it in a resumed session.
            Event::Outgoing(Outgoing::Publish(pkid))
                if pkid != 0 && !self.inflight.contains_key(&pkid) =>
            {
                if let Some(tracked) = self.unassigned.pop_front() {
                    self.inflight.insert(pkid, tracked);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(Tracked::Record(id)) = self.inflight.remove(&ack.pkid) {
                    self.outstanding.remove(&id);
                    self.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = self.spool.ack(id) {
                        warn!(error = %e, "spool acknowledgement not recorded; the reading may be sent again");
                    }
                }
            }
            _ => {}
        }
    }

    fn idle(&self) -> bool {
        self.outstanding.is_empty() && self.spool.pending() == 0
    }
}

/// Runs delivery until `intake` closes and the drain ends. See the module documentation.
pub async fn run(
    options: MqttOptions,
    identity: Identity,
    spool: Spool,
    mut intake: mpsc::Receiver<Intake>,
    stats: Arc<Stats>,
    delivery: Delivery,
) -> Spool {
    let (client, mut eventloop) = AsyncClient::new(options, delivery.window * 2 + 16);
    let status_topic = topic::collector(&identity.site)
        .ok()
        .map(|t| t.as_str().to_string());
    let cursor = spool.next_pending(0).unwrap_or(0);
    let mut s = Sender {
        client,
        spool,
        stats,
        identity,
        status_topic,
        delivery,
        inflight: HashMap::new(),
        unassigned: VecDeque::new(),
        outstanding: HashMap::new(),
        resend: VecDeque::new(),
        cursor,
        live: VecDeque::new(),
        take_live: true,
        connected: false,
        connected_once: false,
    };
    s.update_gauges();
    let mut failures = 0u32;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut drain_until: Option<tokio::time::Instant> = None;

    loop {
        tokio::select! {
            message = intake.recv(), if drain_until.is_none() => match message {
                Some(first) => {
                    let mut round_done = false;
                    let mut next = Some(first);
                    // Take the whole batch that is waiting, then sync once (group commit).
                    while let Some(message) = next.take() {
                        match message {
                            Intake::Envelope(envelope) => s.intake(&envelope),
                            Intake::RoundDone => round_done = true,
                        }
                        next = intake.try_recv().ok();
                    }
                    s.sync();
                    s.update_gauges();
                    if round_done && s.connected {
                        s.publish_status("online");
                    }
                }
                None => {
                    s.sync();
                    drain_until = Some(tokio::time::Instant::now() + s.delivery.drain);
                    info!(pending = s.spool.pending(), "intake closed; delivering what is pending before disconnecting");
                }
            },
            event = eventloop.poll(), if retry_at.is_none() => match event {
                Ok(event) => {
                    if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                        failures = 0;
                    }
                    s.on_event(event);
                }
                Err(e) => {
                    s.connected = false;
                    s.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                    let delay = devtel_daemon::backoff(failures, s.delivery.backoff_cap, devtel_daemon::jitter());
                    failures = failures.saturating_add(1);
                    warn!(error = %describe(&e), retry_in = ?delay, pending = s.spool.pending(), "MQTT connection error");
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
            },
            _ = async { if let Some(at) = retry_at { tokio::time::sleep_until(at).await } }, if retry_at.is_some() => {
                retry_at = None;
            }
            _ = tick.tick() => {
                s.sync();
                if let Err(e) = s.spool.persist() {
                    warn!(error = %e, "spool watermark not written");
                }
            }
            _ = async { if let Some(at) = drain_until { tokio::time::sleep_until(at).await } }, if drain_until.is_some() => {
                warn!(pending = s.spool.pending(), "drain time over; unacknowledged readings stay in the spool for the next start");
                break;
            }
        }
        s.fill_window();
        if drain_until.is_some() && s.idle() {
            break;
        }
    }

    // Clean stop: retained offline status, then DISCONNECT (the will is not published then).
    if s.connected {
        s.publish_status("offline");
        let _ = s.client.try_disconnect();
        let flushed = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(event) => s.on_event(event),
                }
            }
        })
        .await;
        if flushed.is_err() {
            debug!("broker did not take the DISCONNECT in time");
        }
    }
    if let Err(e) = s.spool.close() {
        error!(error = %e, "spool not closed cleanly");
    }
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
    }

    #[test]
    fn status_names_state_version_and_counters() {
        let identity = Identity {
            site: "s".try_into().unwrap(),
            collector: "c".try_into().unwrap(),
            epoch: 1_700_000_000_000,
            started_ms: 1_700_000_000_000,
        };
        let will: serde_json::Value =
            serde_json::from_slice(&status_json(&identity, "offline", None)).unwrap();
        assert_eq!(will["state"], "offline");
        assert_eq!(will["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(will["version"], env!("CARGO_PKG_VERSION"));
        assert!(will.get("counters").is_none());
        let stats = Stats::default();
        stats.dropped.store(7, Ordering::Relaxed);
        let online: serde_json::Value =
            serde_json::from_slice(&status_json(&identity, "online", Some(stats.snapshot())))
                .unwrap();
        assert_eq!(online["counters"]["dropped"], 7);
        assert_eq!(online["epoch"], 1_700_000_000_000u64);
    }

    #[test]
    fn connection_errors_get_a_hint() {
        let refused = ConnectionError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ));
        assert!(describe(&refused).starts_with("nothing listens"));
    }
}
