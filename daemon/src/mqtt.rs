//! The one MQTT edge of both daemons: the `[mqtt]` config section, credentials, TLS, the
//! MQTT 5 client options, connection errors in words, the reconnect policy and the task that
//! drives the client's event loop ([`spawn_poller`]).
//!
//! Both daemons speak MQTT 5 (rumqttc's `v5` client) for one reason above the others: the
//! Maximum Packet Size they announce in CONNECT ([`devtel_protocol::MAX_PACKET_LEN`]) makes
//! the broker drop what they could not read, instead of redelivering it forever. Sessions are
//! persistent (clean start off, [`SESSION_EXPIRY`]), so a broker keeps what is addressed to a
//! daemon while it is away.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use devtel_protocol::{broker, MAX_PACKET_LEN};
use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::v5::{ConnectionError, Event, EventLoop, MqttOptions};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Environment variable read for the MQTT password when the config names none.
pub const PASSWORD_ENV: &str = "DEVTEL_MQTT_PASSWORD";

/// How long the broker keeps a daemon's session (subscriptions, queued messages) after it
/// disconnected, in seconds: a week. Nothing is lost beyond it — collectors send again what the
/// gateway has not acknowledged — it only bounds what a broker holds for a daemon that is gone.
pub const SESSION_EXPIRY: u32 = 7 * 24 * 3600;

/// `[mqtt]` as written in either daemon's config file. Its `Debug` never prints the
/// password.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// User name for the broker.
    pub username: Option<String>,
    /// Password (prefer `password_file` or the [`PASSWORD_ENV`] environment variable).
    pub password: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) that signed the broker's certificate (`mqtts://`).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for brokers that require one.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// MQTT keep-alive.
    #[serde(default, with = "humantime_serde")]
    pub keep_alive: Option<Duration>,
    /// Most unacknowledged publishes at once.
    pub inflight: Option<u16>,
    /// Longest wait between reconnect attempts (the backoff's cap).
    #[serde(default, with = "humantime_serde")]
    pub reconnect_max: Option<Duration>,
}

impl std::fmt::Debug for RawMqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMqtt")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("keep_alive", &self.keep_alive)
            .field("inflight", &self.inflight)
            .field("reconnect_max", &self.reconnect_max)
            .finish()
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// TLS files for `mqtts://`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// CA certificate(s), PEM.
    pub ca_file: PathBuf,
    /// Client certificate and key, PEM.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Validated broker address and `[mqtt]` settings.
#[derive(Debug, Clone)]
pub struct Mqtt {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS, for `mqtts://`.
    pub tls: Option<Tls>,
    /// User name and password.
    pub credentials: Option<(String, Secret)>,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// In-flight window of outgoing QoS 1 publishes.
    pub inflight: u16,
    /// Reconnect backoff cap.
    pub reconnect_max: Duration,
}

impl Mqtt {
    /// `mqtt://host:port` or `mqtts://host:port`, for logs and `check-config`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// The URL and, when logging in, the user: what `check-config` shows.
    pub fn describe(&self) -> String {
        match &self.credentials {
            Some((user, _)) => format!("{} as {user}", self.url()),
            None => self.url(),
        }
    }
}

/// A problem with the broker URL or an `[mqtt]` key; `key` is the full key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct MqttConfigError {
    /// The offending key (`broker`, `mqtt.ca_file`, ...).
    pub key: &'static str,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> MqttConfigError {
    MqttConfigError {
        key,
        reason: reason.into(),
    }
}

/// Checks now that a PEM file exists and is a file, so a typo is a config error, not a
/// connection error an hour later.
fn readable(key: &'static str, path: &Path) -> Result<(), MqttConfigError> {
    std::fs::metadata(path)
        .and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a file"))
            }
        })
        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))
}

/// Validates the broker URL (`broker` key) with the `[mqtt]` section.
///
/// # Errors
/// [`MqttConfigError`] naming the key.
pub fn settings(broker_url: &str, raw: &RawMqtt) -> Result<Mqtt, MqttConfigError> {
    let url =
        broker::parse(broker_url).map_err(|e| invalid("broker", format!("{broker_url:?}: {e}")))?;
    let tls = if url.tls {
        let ca_file = raw.ca_file.clone().ok_or_else(|| {
            invalid(
                "mqtt.ca_file",
                "required for mqtts:// (the PEM file of the CA that signed the broker's certificate)",
            )
        })?;
        readable("mqtt.ca_file", &ca_file)?;
        let client = match (&raw.client_cert, &raw.client_key) {
            (Some(cert), Some(key)) => {
                readable("mqtt.client_cert", cert)?;
                readable("mqtt.client_key", key)?;
                Some((cert.clone(), key.clone()))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid("mqtt.client_key", "required with mqtt.client_cert"))
            }
            (None, Some(_)) => {
                return Err(invalid("mqtt.client_cert", "required with mqtt.client_key"))
            }
        };
        Some(Tls { ca_file, client })
    } else {
        for (key, set) in [
            ("mqtt.ca_file", raw.ca_file.is_some()),
            ("mqtt.client_cert", raw.client_cert.is_some()),
            ("mqtt.client_key", raw.client_key.is_some()),
        ] {
            if set {
                return Err(invalid(key, "only applies to an mqtts:// broker"));
            }
        }
        None
    };
    let password = match (&raw.password, &raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "mqtt.password_file",
                "give either mqtt.password or mqtt.password_file, not both",
            ))
        }
        (Some(p), None) => Some(p.clone()),
        (None, Some(path)) => Some(
            crate::secret_file(path)
                .map_err(|e| invalid("mqtt.password_file", format!("{}: {e}", path.display())))?,
        ),
        (None, None) => std::env::var(PASSWORD_ENV).ok(),
    };
    let credentials = match (&raw.username, password) {
        (Some(user), password) => {
            if user.is_empty() {
                return Err(invalid("mqtt.username", "must not be empty"));
            }
            Some((user.clone(), Secret(password.unwrap_or_default())))
        }
        (None, _) if raw.password.is_some() || raw.password_file.is_some() => {
            return Err(invalid("mqtt.username", "required with a password"))
        }
        (None, _) => None,
    };
    let keep_alive = raw.keep_alive.unwrap_or(Duration::from_secs(30));
    if keep_alive < Duration::from_secs(5) || keep_alive > Duration::from_secs(65_535) {
        return Err(invalid("mqtt.keep_alive", "must be between 5s and 18h"));
    }
    let inflight = raw.inflight.unwrap_or(32);
    if inflight == 0 || inflight > 1000 {
        return Err(invalid("mqtt.inflight", "must be between 1 and 1000"));
    }
    let reconnect_max = raw.reconnect_max.unwrap_or(Duration::from_secs(30));
    if reconnect_max < Duration::from_secs(1) || reconnect_max > Duration::from_secs(3600) {
        return Err(invalid("mqtt.reconnect_max", "must be between 1s and 1h"));
    }
    Ok(Mqtt {
        host: url.host.to_string(),
        port: url.port,
        tls,
        credentials,
        keep_alive,
        inflight,
        reconnect_max,
    })
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
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls client configuration of `tls`: its CA as the only root, and the client
/// certificate when one is configured. Uses the ring provider (builds on a Pi without cmake).
///
/// # Errors
/// [`TlsError`] naming the file.
pub fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_err = |key: &'static str, path: &Path, reason: String| TlsError::File {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let certs = |key: &'static str, path: &Path| {
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

/// What a daemon adds to the common options.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// MQTT client id (also identifies the persistent session).
    pub client_id: String,
    /// Last will, published by the broker when the daemon vanishes.
    pub last_will: Option<LastWill>,
    /// Most QoS 1 messages the broker may send before they are acknowledged (MQTT 5 Receive
    /// Maximum): the bound of what is buffered between the network and the consumer.
    pub receive_maximum: Option<u16>,
    /// Acknowledge received QoS 1 messages explicitly (the gateway: only after its commit).
    pub manual_acks: bool,
}

/// MQTT 5 options: persistent session, Maximum Packet Size, in-flight window, credentials,
/// TLS and the daemon's own [`Session`] settings.
///
/// # Errors
/// [`TlsError`] when the TLS files are unusable.
pub fn options(mqtt: &Mqtt, session: Session) -> Result<MqttOptions, TlsError> {
    let mut options = MqttOptions::new(session.client_id, mqtt.host.clone(), mqtt.port);
    options.set_keep_alive(mqtt.keep_alive);
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(SESSION_EXPIRY));
    // Announced in CONNECT: the broker drops for us what we could not read.
    options.set_max_packet_size(Some(u32::try_from(MAX_PACKET_LEN).unwrap_or(u32::MAX)));
    options.set_outgoing_inflight_upper_limit(mqtt.inflight);
    options.set_manual_acks(session.manual_acks);
    if let Some(max) = session.receive_maximum {
        options.set_receive_maximum(Some(max));
    }
    if let Some(will) = session.last_will {
        options.set_last_will(will);
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

/// A connection error in words site IT can act on: the hint names the key to fix.
pub fn describe(error: &ConnectionError) -> String {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code;
    let text = error.to_string();
    let hint = match error {
        ConnectionError::ConnectionRefused(
            Code::BadUserNamePassword | Code::NotAuthorized | Code::BadAuthenticationMethod,
        ) => Some("the broker refused mqtt.username / password"),
        ConnectionError::ConnectionRefused(
            Code::UnsupportedProtocolVersion | Code::RefusedProtocolVersion,
        ) => Some("the broker does not speak MQTT 5 (devtel needs e.g. Mosquitto 1.6 or newer)"),
        _ if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") => {
            Some("the broker's certificate is not signed by the CA in mqtt.ca_file")
        }
        _ if text.contains("NotValidForName") => {
            Some("the broker's certificate does not name the host in `broker`")
        }
        ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Some("nothing listens at the broker address")
        }
        _ => None,
    };
    match hint {
        Some(hint) => format!("{hint} ({text})"),
        None => text,
    }
}

/// What the poller reports to its daemon.
#[derive(Debug)]
// Nearly every message is an `Event`: boxing it would allocate per packet to save bytes on
// the rare failure.
#[allow(clippy::large_enum_variant)]
pub enum Polled {
    /// A packet received or sent.
    Event(Event),
    /// The connection failed; the poller reconnects after `retry_in`.
    Failed {
        /// [`describe`]d error.
        error: String,
        /// The wait before the next attempt ([`Reconnect`]).
        retry_in: Duration,
    },
}

/// The task that drives a client's event loop ([`spawn_poller`]).
pub struct Poller {
    /// What the event loop reports, in order.
    pub events: mpsc::Receiver<Polled>,
    /// The task; it ends when `events` is dropped or after a final DISCONNECT.
    pub task: JoinHandle<()>,
    /// Asks for a reconnect after the next DISCONNECT.
    pub redial: Redial,
}

/// See [`Redial::after_disconnect`].
#[derive(Debug, Clone, Default)]
pub struct Redial(Arc<AtomicBool>);

impl Redial {
    /// The next DISCONNECT the daemon sends is not the end: the poller reconnects at once
    /// (the gateway disconnects to have the broker resend what it did not acknowledge).
    pub fn after_disconnect(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a reconnect after the next DISCONNECT is pending.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Withdraws [`Redial::after_disconnect`] (the DISCONNECT could not be queued).
    pub fn cancel(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// For [`spawn_poller`]: pass every event on.
pub fn every_event(_: &Event) -> bool {
    true
}

/// Drives a client's event loop on its own task and hands its events to the daemon over a
/// bounded channel of `capacity`.
///
/// rumqttc's `EventLoop::poll` is not cancel-safe: a poll dropped while it writes (inside a
/// `select!` whose other branch won) loses the request it had already taken — a PUBACK that
/// then never reaches the broker, or a PUBLISH whose packet id stays in flight until the
/// connection ends. Under load the broker's window or the client's fills with such ghosts and
/// delivery stops for good. So the event loop is polled here and nowhere else, to completion
/// every time; the daemon receives from the channel (`recv` is cancel-safe) and selects freely.
///
/// After a connection error the poller waits as [`Reconnect`] says (capped at
/// `reconnect_max`) and polls again, which reconnects. After the daemon's DISCONNECT it passes
/// the event on and ends — a clean stop must not reconnect (a new connection dropped at exit
/// would make the broker publish the last will) — unless
/// [`Redial::after_disconnect`] was called, then it reconnects at once. It also
/// ends when the receiver is dropped; only then is a poll abandoned midway, with the event
/// loop itself.
///
/// Only events for which `wanted` is true are passed on (the daemon's own DISCONNECT always
/// is): a subscriber that needs no `Outgoing` events spares the channel one hand-over per
/// acknowledgement. [`every_event`] passes all.
pub fn spawn_poller(
    mut eventloop: EventLoop,
    reconnect_max: Duration,
    capacity: usize,
    wanted: fn(&Event) -> bool,
) -> Poller {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let redial = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let redial = redial.clone();
        async move {
            let mut reconnect = Reconnect::new(reconnect_max);
            // A DISCONNECT the daemon asked for, to reconnect: the connection error that
            // follows is expected, and the reconnect is immediate.
            let mut redialing = false;
            // One wait for the receiver to go, kept across polls: a fresh one per event
            // registered and removed a waiter each time.
            let closed = tx.closed();
            tokio::pin!(closed);
            loop {
                let polled = tokio::select! {
                    () = &mut closed => break,
                    polled = eventloop.poll() => polled,
                };
                let mut last = false;
                let (message, wait) = match polled {
                    Ok(event) => {
                        match &event {
                            Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_)) => {
                                reconnect.connected();
                            }
                            Event::Outgoing(rumqttc::Outgoing::Disconnect) => {
                                if redial.swap(false, Ordering::SeqCst) {
                                    redialing = true;
                                } else {
                                    last = true;
                                }
                            }
                            _ if !wanted(&event) => continue,
                            _ => {}
                        }
                        (Polled::Event(event), None)
                    }
                    Err(error) => {
                        let retry_in = if std::mem::take(&mut redialing) {
                            Duration::ZERO
                        } else {
                            reconnect.failed()
                        };
                        let error = describe(&error);
                        (Polled::Failed { error, retry_in }, Some(retry_in))
                    }
                };
                if tx.send(message).await.is_err() || last {
                    break;
                }
                if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                    tokio::select! {
                        () = &mut closed => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    });
    Poller {
        events: rx,
        task,
        redial: Redial(redial),
    }
}

/// The reconnect policy of both daemons: [`crate::backoff`] with jitter, capped, reset by a
/// successful connection. Pure: the caller sleeps.
#[derive(Debug, Clone)]
pub struct Reconnect {
    failures: u32,
    cap: Duration,
}

impl Reconnect {
    /// A policy whose longest wait is `cap`.
    pub fn new(cap: Duration) -> Reconnect {
        Reconnect { failures: 0, cap }
    }

    /// The wait before the next attempt after a failure.
    pub fn failed(&mut self) -> Duration {
        let delay = crate::backoff(self.failures, self.cap, crate::jitter());
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// A connection succeeded: the next failure waits the shortest time again.
    pub fn connected(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawMqtt {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn keys_are_validated_and_named() {
        let ok = settings("mqtt://broker.example", &RawMqtt::default()).unwrap();
        assert_eq!(ok.url(), "mqtt://broker.example:1883");
        assert_eq!((ok.inflight, ok.keep_alive), (32, Duration::from_secs(30)));
        let v6 = settings("mqtt://[::1]:1884", &RawMqtt::default()).unwrap();
        assert_eq!(v6.url(), "mqtt://[::1]:1884");
        let cases: &[(&str, &str, &str)] = &[
            ("tcp://x", "", "broker"),
            ("mqtts://h", "", "mqtt.ca_file"),
            (
                "mqtts://h",
                "ca_file = \"/nonexistent/ca.pem\"",
                "mqtt.ca_file",
            ),
            ("mqtt://h", "ca_file = \"/etc/hostname\"", "mqtt.ca_file"),
            ("mqtt://h", "password = \"x\"", "mqtt.username"),
            (
                "mqtt://h",
                "username = \"u\"\npassword = \"x\"\npassword_file = \"/etc/hostname\"",
                "mqtt.password_file",
            ),
            (
                "mqtt://h",
                "username = \"u\"\npassword_file = \"/nonexistent\"",
                "mqtt.password_file",
            ),
            ("mqtt://h", "username = \"\"", "mqtt.username"),
            ("mqtt://h", "inflight = 0", "mqtt.inflight"),
            ("mqtt://h", "keep_alive = \"1s\"", "mqtt.keep_alive"),
            ("mqtt://h", "reconnect_max = \"0s\"", "mqtt.reconnect_max"),
        ];
        for (url, text, key) in cases {
            let err = settings(url, &raw(text)).unwrap_err();
            assert_eq!(err.key, *key, "{url} {text}: {err}");
        }
    }

    #[test]
    fn the_password_comes_from_the_file_and_never_shows_in_debug() {
        let dir = std::env::temp_dir().join(format!("devtel-mqtt-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file-secret\nsecond line ignored\n").unwrap();
        let m = settings(
            "mqtt://h",
            &raw(&format!(
                "username = \"u\"\npassword_file = \"{}\"",
                file.display()
            )),
        )
        .unwrap();
        let (user, password) = m.credentials.clone().unwrap();
        assert_eq!(
            (user.as_str(), password.expose()),
            ("u", "from-file-secret")
        );
        assert!(!format!("{m:?}").contains("from-file-secret"));
        assert_eq!(m.describe(), "mqtt://h:1883 as u");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn options_announce_the_packet_limit_and_a_persistent_session() {
        let m = settings("mqtt://h", &RawMqtt::default()).unwrap();
        let o = options(
            &m,
            Session {
                client_id: "c".into(),
                receive_maximum: Some(100),
                ..Session::default()
            },
        )
        .unwrap();
        assert_eq!(o.max_packet_size(), Some(MAX_PACKET_LEN as u32));
        assert_eq!(o.session_expiry_interval(), Some(SESSION_EXPIRY));
        assert_eq!(o.receive_maximum(), Some(100));
        assert!(!o.clean_start());
    }

    #[test]
    fn connection_errors_get_a_hint_and_reconnects_back_off() {
        let refused = ConnectionError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ));
        assert!(describe(&refused).starts_with("nothing listens"));
        let login = ConnectionError::ConnectionRefused(
            rumqttc::v5::mqttbytes::v5::ConnectReturnCode::BadUserNamePassword,
        );
        assert!(describe(&login).contains("mqtt.username / password"));
        let mut r = Reconnect::new(Duration::from_secs(4));
        let waits: Vec<Duration> = (0..5).map(|_| r.failed()).collect();
        assert!(waits[0] <= Duration::from_secs(1));
        assert!(waits[4] >= Duration::from_secs(2) && waits[4] <= Duration::from_secs(4));
        r.connected();
        assert_eq!(r.failures(), 0);
        assert!(r.failed() <= Duration::from_secs(1));
    }
}
