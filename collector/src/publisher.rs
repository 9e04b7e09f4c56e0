//! MQTT publishing: one task owns the rumqttc event loop; the collector hands it envelopes.
//!
//! - QoS 1 on `devtel/v1/telemetry/{site}/{unit}/{device}`, one envelope per device poll.
//! - The event loop reconnects by itself when polled again; between attempts we wait a capped
//!   exponential backoff (`devtel_daemon::backoff`) so a dead broker is not hammered.
//! - rumqttc keeps unacknowledged QoS 1 publishes and resends them after a reconnect. (A disk
//!   spool that survives a collector restart is a later step.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use devtel_protocol::{encode_to_vec, topic, Envelope, MAX_ENCODED_LEN};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Counters of the MQTT side, shared with the status log.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Envelopes handed to the MQTT client.
    pub published: AtomicU64,
    /// PUBACKs received from the broker.
    pub acknowledged: AtomicU64,
    /// Envelopes that could not be encoded (a bug or an over-long field; logged).
    pub encode_failed: AtomicU64,
    /// Connection errors seen by the event loop.
    pub connection_errors: AtomicU64,
}

/// Why an envelope was not handed to the MQTT client. Carries the envelope back.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Encoding failed.
    #[error("could not encode envelope {seq}: {error}")]
    Encode {
        /// Envelope sequence number.
        seq: u64,
        /// Cause.
        error: devtel_protocol::Error,
    },
    /// The topic could not be built (the config validates ids, so this is a bug).
    #[error("could not build topic: {0}")]
    Topic(topic::TopicError),
    /// The MQTT client is gone (shutting down).
    #[error("MQTT client closed")]
    Closed(Box<Envelope>),
}

/// A handle to publish envelopes.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    site: devtel_protocol::Id,
    stats: Arc<PublishStats>,
}

impl Publisher {
    /// Creates the client and its event loop. Spawn [`drive`] with the event loop.
    pub fn new(
        host: &str,
        port: u16,
        client_id: &str,
        site: devtel_protocol::Id,
        stats: Arc<PublishStats>,
    ) -> (Publisher, EventLoop) {
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(MAX_ENCODED_LEN + 1024, MAX_ENCODED_LEN + 1024);
        let (client, eventloop) = AsyncClient::new(options, 256);
        (
            Publisher {
                client,
                site,
                stats,
            },
            eventloop,
        )
    }

    /// Encodes `envelope` and publishes it at QoS 1 on its device's topic.
    ///
    /// # Errors
    /// [`PublishError`]; the envelope is handed back when the client is closed.
    pub async fn publish(&self, envelope: Envelope) -> Result<(), PublishError> {
        let Some(first) = envelope.readings.first() else {
            return Err(PublishError::Encode {
                seq: envelope.seq,
                error: devtel_protocol::Error::NoReadings,
            });
        };
        let topic = topic::telemetry(&self.site, first.unit(), first.device())
            .map_err(PublishError::Topic)?;
        let payload = match encode_to_vec(&envelope) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.stats.encode_failed.fetch_add(1, Ordering::Relaxed);
                return Err(PublishError::Encode {
                    seq: envelope.seq,
                    error,
                });
            }
        };
        debug!(%topic, seq = envelope.seq, bytes = payload.len(), "publishing");
        match self
            .client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
            .await
        {
            Ok(()) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => Err(PublishError::Closed(Box::new(envelope))),
        }
    }

    /// Sends DISCONNECT.
    pub async fn disconnect(&self) {
        if let Err(error) = self.client.disconnect().await {
            debug!(%error, "disconnect request not sent");
        }
    }
}

/// Drives the event loop until `shutdown`, then until DISCONNECT went out or `drain` elapsed.
pub async fn drive(
    mut eventloop: EventLoop,
    stats: Arc<PublishStats>,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!("connected to MQTT broker");
                    failures = 0;
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(error) => {
                    stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                    if !devtel_daemon::pause_before_reconnect(&mut failures, &error, &shutdown).await {
                        break;
                    }
                }
            }
        }
    }
    // Let in-flight publishes and the DISCONNECT go out.
    let drained = tokio::time::timeout(drain, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            ?drain,
            "broker did not take the queued messages and DISCONNECT in time"
        );
    }
}
