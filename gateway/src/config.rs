//! Gateway configuration: a strict TOML file validated into [`Config`]; errors name the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use devtel_protocol::broker;
use serde::Deserialize;

use crate::aggregate::CoreSettings;
use crate::calendar::Calendar;
use crate::ledger::LedgerSettings;
use crate::units::{UnitDef, Units};

/// Default database file when neither `[store] path` nor `$STATE_DIRECTORY` is set.
pub const DEFAULT_STORE_PATH: &str = "/var/lib/devtel-gateway/devtel.sqlite";

/// The example configuration, shipped as `gateway.example.toml`.
pub const EXAMPLE: &str = include_str!("../gateway.example.toml");

/// The TOML file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Broker URL, `mqtt://host[:port]` or `mqtts://host[:port]`, or `embedded`: the broker
    /// runs inside the gateway (`[embedded_broker]`).
    #[serde(default = "default_broker")]
    pub broker: String,
    /// The embedded broker's listeners, users and limits (with `broker = "embedded"`).
    #[serde(default)]
    pub embedded_broker: Option<RawEmbeddedBroker>,
    /// MQTT credentials, TLS, keep-alive, in-flight window, reconnect cap.
    #[serde(default)]
    pub mqtt: devtel_daemon::mqtt::RawMqtt,
    /// MQTT client id.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Address the HTTP API listens on.
    #[serde(default = "default_http_listen")]
    pub http_listen: String,
    /// The durable store.
    #[serde(default)]
    pub store: RawStore,
    /// Replicas sharing one PostgreSQL store and one shared subscription.
    #[serde(default)]
    pub cluster: Option<RawCluster>,
    /// How figures are computed.
    #[serde(default)]
    pub aggregation: RawAggregation,
    /// The administrative units.
    #[serde(default)]
    pub units: Vec<UnitDef>,
    /// Prices for the monthly cost-allocation report.
    #[serde(default)]
    pub prices: Vec<crate::pricing::RawPrice>,
    /// The dashboard.
    #[serde(default)]
    pub dashboard: RawDashboard,
    /// Home Assistant MQTT discovery.
    #[serde(default)]
    pub home_assistant: RawHomeAssistant,
    /// Checks of what arrives.
    #[serde(default)]
    pub ingest: RawIngest,
    /// The HTTP API's token and limits.
    #[serde(default)]
    pub http: RawHttp,
    /// What documents show about people at docked desks: `minimal` (the default: seat counts
    /// of units and switches with at least 5 seats) or `per-seat` (also each seat, to the
    /// seats token only; see the README on the staff council).
    #[serde(default)]
    pub privacy: RawPrivacy,
    /// The sites, their collectors and (optionally) their devices. When given, the whole
    /// list: other sites are refused (`crate::sites`).
    #[serde(default)]
    pub sites: Vec<RawSite>,
}

/// `[embedded_broker]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbeddedBroker {
    /// Plain MQTT listener; `""` for none.
    #[serde(default = "default_embedded_listen")]
    pub listen: String,
    /// MQTT over TLS listener (with `tls_cert_file` and `tls_key_file`).
    #[serde(default)]
    pub tls_listen: Option<String>,
    /// The broker's certificate chain, PEM.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key, PEM.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Users and password hashes as `devtel-gateway broker-access` writes them (`passwd`):
    /// the sites' users, integrators. Without it, only loopback listeners, for anonymous
    /// clients.
    #[serde(default)]
    pub passwd_file: Option<PathBuf>,
    /// The gateway's own user name (it logs in with a secret made at each start).
    #[serde(default = "default_gateway_user")]
    pub gateway_user: String,
    /// Most connections at once, per listener.
    #[serde(default = "default_broker_connections")]
    pub max_connections: usize,
    /// Largest MQTT packet taken, bytes.
    #[serde(default = "default_broker_packet")]
    pub max_packet_bytes: u32,
    /// Most messages queued for one client.
    #[serde(default = "default_broker_queued")]
    pub max_queued: usize,
    /// Most subscriptions of one client.
    #[serde(default = "default_broker_subscriptions")]
    pub max_subscriptions: usize,
    /// Most retained messages (unit and device documents, collector statuses).
    #[serde(default = "default_broker_retained")]
    pub max_retained: usize,
}

impl Default for RawEmbeddedBroker {
    fn default() -> Self {
        RawEmbeddedBroker {
            listen: default_embedded_listen(),
            tls_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            passwd_file: None,
            gateway_user: default_gateway_user(),
            max_connections: default_broker_connections(),
            max_packet_bytes: default_broker_packet(),
            max_queued: default_broker_queued(),
            max_subscriptions: default_broker_subscriptions(),
            max_retained: default_broker_retained(),
        }
    }
}

fn default_embedded_listen() -> String {
    "127.0.0.1:1883".into()
}
fn default_gateway_user() -> String {
    crate::broker_access::DEFAULT_GATEWAY_USER.into()
}
fn default_broker_connections() -> usize {
    10_000
}
fn default_broker_packet() -> u32 {
    u32::try_from(devtel_protocol::MAX_PACKET_LEN).unwrap_or(u32::MAX)
}
fn default_broker_queued() -> usize {
    10_000
}
fn default_broker_subscriptions() -> usize {
    100
}
fn default_broker_retained() -> usize {
    200_000
}

/// The value of `broker` that runs the broker inside the gateway.
pub const EMBEDDED: &str = "embedded";

/// Validates `[embedded_broker]`.
fn embedded_settings(
    raw: &RawEmbeddedBroker,
    sites: &[String],
) -> Result<crate::embedded::Settings, ConfigError> {
    let invalid = |key: &'static str, reason: String| ConfigError::Invalid { key, reason };
    let addr = |key: &'static str, text: &str| -> Result<SocketAddr, ConfigError> {
        text.parse().map_err(|_| {
            invalid(
                key,
                format!("{text:?} is not an address such as 0.0.0.0:1883"),
            )
        })
    };
    let listen = match raw.listen.as_str() {
        "" => None,
        text => Some(addr("embedded_broker.listen", text)?),
    };
    let tls = match (&raw.tls_listen, &raw.tls_cert_file, &raw.tls_key_file) {
        (None, None, None) => None,
        (Some(l), Some(cert), Some(key)) => {
            for (k, p) in [
                ("embedded_broker.tls_cert_file", cert),
                ("embedded_broker.tls_key_file", key),
            ] {
                std::fs::metadata(p)
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .ok_or_else(|| invalid(k, format!("{}: not a readable file", p.display())))?;
            }
            Some((
                addr("embedded_broker.tls_listen", l)?,
                cert.clone(),
                key.clone(),
            ))
        }
        _ => {
            return Err(invalid(
                "embedded_broker.tls_listen",
                "give tls_listen, tls_cert_file and tls_key_file together".into(),
            ))
        }
    };
    if listen.is_none() && tls.is_none() {
        return Err(invalid(
            "embedded_broker.listen",
            "no listener: give listen or tls_listen".into(),
        ));
    }
    let passwords = match &raw.passwd_file {
        None => {
            let open = [listen, tls.as_ref().map(|t| t.0)]
                .into_iter()
                .flatten()
                .find(|a| !a.ip().is_loopback());
            if let Some(a) = open {
                return Err(invalid(
                    "embedded_broker.passwd_file",
                    format!("required for a listener beyond loopback ({a}): write it with `devtel-gateway broker-access`"),
                ));
            }
            None
        }
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "embedded_broker.passwd_file",
                    format!("{}: {e}", path.display()),
                )
            })?;
            let p = crate::broker_access::Passwords::parse(&text).map_err(|e| {
                invalid(
                    "embedded_broker.passwd_file",
                    format!("{}: {e}", path.display()),
                )
            })?;
            Some(p)
        }
    };
    if raw.gateway_user.is_empty() || sites.contains(&raw.gateway_user) {
        return Err(invalid(
            "embedded_broker.gateway_user",
            "must not be empty nor a site's id".into(),
        ));
    }
    let ranges: [(&'static str, usize, usize, usize); 4] = [
        (
            "embedded_broker.max_connections",
            raw.max_connections,
            1,
            1_000_000,
        ),
        ("embedded_broker.max_queued", raw.max_queued, 1, 10_000_000),
        (
            "embedded_broker.max_subscriptions",
            raw.max_subscriptions,
            1,
            100_000,
        ),
        (
            "embedded_broker.max_retained",
            raw.max_retained,
            1,
            10_000_000,
        ),
    ];
    for (key, value, lo, hi) in ranges {
        if !(lo..=hi).contains(&value) {
            return Err(invalid(key, format!("must be {lo} to {hi}")));
        }
    }
    // At most what the gateway itself reads: rmqtt closes a subscriber's connection when a
    // message exceeds the Maximum Packet Size the subscriber announced (instead of dropping
    // the message for it), so the broker must refuse such a message at the door.
    let packet = usize::try_from(raw.max_packet_bytes).unwrap_or(usize::MAX);
    let (lo, hi) = (
        devtel_protocol::MAX_ENCODED_LEN + 1024,
        devtel_protocol::MAX_PACKET_LEN,
    );
    if !(lo..=hi).contains(&packet) {
        return Err(invalid(
            "embedded_broker.max_packet_bytes",
            format!("must be {lo} to {hi} (the largest envelope and some room, to what the gateway reads)"),
        ));
    }
    Ok(crate::embedded::Settings {
        listen,
        tls,
        passwords,
        sites: sites.to_vec(),
        gateway_user: raw.gateway_user.clone(),
        max_connections: raw.max_connections,
        max_packet_bytes: raw.max_packet_bytes,
        max_queued: raw.max_queued,
        max_subscriptions: raw.max_subscriptions,
        max_retained: raw.max_retained,
        discovery_prefix: None,
    })
}

/// `privacy` (shared by both daemons).
pub use devtel_daemon::Privacy as RawPrivacy;

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// File whose first line is the bearer token (else [`TOKEN_ENV`]).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// File whose first line is the seats token (else [`SEAT_TOKEN_ENV`]): it also grants
    /// single dock seats, with `privacy = "per-seat"`.
    #[serde(default)]
    pub seat_token_file: Option<PathBuf>,
    /// Longest a request may take.
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most requests at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Most requests at once from one address.
    #[serde(default = "default_max_per_client")]
    pub max_per_client: usize,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            token_file: None,
            seat_token_file: None,
            timeout: default_http_timeout(),
            max_in_flight: default_max_in_flight(),
            max_per_client: default_max_per_client(),
        }
    }
}

fn default_http_timeout() -> Duration {
    crate::guard::DEFAULT_TIMEOUT
}

fn default_max_in_flight() -> usize {
    crate::guard::DEFAULT_MAX_IN_FLIGHT
}

fn default_max_per_client() -> usize {
    crate::guard::DEFAULT_MAX_PER_CLIENT
}

/// Environment variable read for the HTTP token when `[http] token_file` is not set.
pub const TOKEN_ENV: &str = "DEVTEL_GATEWAY_TOKEN";

/// Environment variable read for the seats token when `[http] seat_token_file` is not set.
pub const SEAT_TOKEN_ENV: &str = "DEVTEL_GATEWAY_SEAT_TOKEN";

/// Shortest token taken.
pub const MIN_TOKEN_LEN: usize = 16;

/// One `[[sites]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// The site id (the `{site}` of its topics).
    pub id: String,
    /// The collectors that publish for it (at least one).
    pub collectors: Vec<String>,
    /// Devices that belong to it; others belong to the first site that reports them.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// `[ingest]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// How far an envelope's poll time may lead the gateway's clock.
    #[serde(default = "default_max_clock_skew", with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// Most devices the gateway takes (first sightings beyond are refused).
    #[serde(default = "default_max_devices")]
    pub max_devices: usize,
    /// Most collectors the gateway takes.
    #[serde(default = "default_max_collectors")]
    pub max_collectors: usize,
}

impl Default for RawIngest {
    fn default() -> Self {
        RawIngest {
            max_clock_skew: default_max_clock_skew(),
            max_devices: default_max_devices(),
            max_collectors: default_max_collectors(),
        }
    }
}

fn default_max_devices() -> usize {
    crate::sites::DEFAULT_MAX_DEVICES
}

fn default_max_collectors() -> usize {
    crate::sites::DEFAULT_MAX_COLLECTORS
}

fn default_max_clock_skew() -> Duration {
    Duration::from_millis(crate::batch::DEFAULT_MAX_CLOCK_SKEW_MS)
}

/// `[home_assistant]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHomeAssistant {
    /// Publish a retained discovery config per device and sensor (off by default).
    #[serde(default)]
    pub discovery: bool,
    /// Home Assistant's discovery prefix (default `homeassistant`).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `[dashboard]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDashboard {
    /// How often an open page refreshes its content.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for RawDashboard {
    fn default() -> Self {
        RawDashboard {
            refresh: default_refresh(),
        }
    }
}

fn default_refresh() -> Duration {
    Duration::from_secs(u64::from(crate::dashboard::REFRESH_SECONDS))
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// SQLite database file.
    pub path: Option<PathBuf>,
    /// A PostgreSQL server instead of the SQLite file: `postgres://user@host:port/dbname`
    /// (libpq's URL or key=value form).
    pub url: Option<String>,
    /// The PostgreSQL password's file (its first line); else [`STORE_PASSWORD_ENV`], else
    /// the URL's.
    pub password_file: Option<PathBuf>,
    /// At most this long between snapshots of the figures while envelopes arrive.
    #[serde(default = "default_snapshot_interval", with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// A snapshot at the latest after this many envelopes.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Per-device day figures are kept this long before the newest poll's day.
    #[serde(default = "default_figures_retention", with = "humantime_serde")]
    pub figures_retention: Duration,
    /// Raw envelopes are kept this long after they were received.
    #[serde(default = "default_raw_retention", with = "humantime_serde")]
    pub raw_retention: Duration,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: None,
            url: None,
            password_file: None,
            snapshot_interval: default_snapshot_interval(),
            snapshot_every: default_snapshot_every(),
            figures_retention: default_figures_retention(),
            raw_retention: default_raw_retention(),
        }
    }
}

/// The environment variable the PostgreSQL password may come from.
pub const STORE_PASSWORD_ENV: &str = "DEVTEL_STORE_PASSWORD";

/// `[cluster]`: this gateway is one replica of a group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// The group: the shared subscription's name and the publisher lease's key.
    pub group: String,
}

/// Where the figures are stored.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// The connection (its `Debug` hides the password).
    pub config: tokio_postgres::Config,
    /// `user@host:port/dbname`, for logs and `/healthz`.
    pub shown: String,
}

/// The `[store]` PostgreSQL settings, checked: the URL parses, names a host and a database,
/// and the password comes from one place.
fn postgres(raw: &RawStore) -> Result<Option<Postgres>, ConfigError> {
    let invalid = |key: &'static str, reason: String| ConfigError::Invalid { key, reason };
    let Some(url) = &raw.url else {
        if raw.password_file.is_some() {
            return Err(invalid(
                "store.password_file",
                "only applies with store.url".into(),
            ));
        }
        return Ok(None);
    };
    if raw.path.is_some() {
        return Err(invalid(
            "store.url",
            "give either store.path (SQLite) or store.url (PostgreSQL), not both".into(),
        ));
    }
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        invalid(
            "store.url",
            format!("not a PostgreSQL URL such as postgres://devtel@db.example/devtel: {e}"),
        )
    })?;
    if config.get_hosts().is_empty() {
        return Err(invalid("store.url", "names no host".into()));
    }
    let Some(dbname) = config.get_dbname().map(str::to_string) else {
        return Err(invalid("store.url", "names no database".into()));
    };
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(invalid(
            "store.url",
            "sslmode=require: TLS to PostgreSQL is not built in yet; connect over a trusted network or a local TLS tunnel (stunnel, pgbouncer)".into(),
        ));
    }
    let from_env = std::env::var(STORE_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    match (&raw.password_file, from_env) {
        (Some(path), _) => {
            let text = devtel_daemon::secret_file(path)
                .map_err(|e| invalid("store.password_file", format!("{}: {e}", path.display())))?;
            config.password(text.trim_end());
        }
        (None, Some(password)) => {
            config.password(password);
        }
        (None, None) => {}
    }
    let user = config.get_user().unwrap_or("").to_string();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    config.application_name("devtel-gateway");
    // An unreachable server is an error in bounded time (the commit is retried), not a hang.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(Some(Postgres {
        config,
        shown: format!("postgres://{user}@{host}:{port}/{dbname}"),
    }))
}

/// Default of `[store] raw_retention`: 400 days. It covers the late window (days) and the
/// history API's usual questions (this month, last quarter), and an audit of the last
/// billing periods: a whole previous year's cost allocation can be checked reading by
/// reading until a month after its end. The figures themselves are kept far longer
/// (`figures_retention`), in the snapshots.
pub const DEFAULT_RAW_RETENTION: Duration = Duration::from_secs(400 * 86_400);

fn default_raw_retention() -> Duration {
    DEFAULT_RAW_RETENTION
}

fn default_figures_retention() -> Duration {
    Duration::from_secs(u64::from(crate::ledger::DEFAULT_FIGURES_RETENTION_DAYS) * 86_400)
}

fn default_snapshot_interval() -> Duration {
    Duration::from_secs(3_600)
}

fn default_snapshot_every() -> u64 {
    100_000
}

/// When the figures are snapshotted (and at every clean stop): a start restores the newest
/// snapshot and replays only the envelopes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// At most this long between snapshots while envelopes arrive.
    pub interval: Duration,
    /// At the latest after this many envelopes.
    pub every: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            interval: default_snapshot_interval(),
            every: default_snapshot_every(),
        }
    }
}

/// `[aggregation]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregation {
    /// IANA time zone of the administration.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Working days.
    #[serde(default = "default_days")]
    pub working_days: Vec<String>,
    /// Working hours start, `HH:MM`.
    #[serde(default = "default_start")]
    pub working_hours_start: String,
    /// Working hours end, `HH:MM`.
    #[serde(default = "default_end")]
    pub working_hours_end: String,
    /// Availability target in percent.
    #[serde(default = "default_sla")]
    pub sla_target_percent: f64,
    /// Days in the availability window.
    #[serde(default = "default_window_days")]
    pub availability_days: u32,
    /// How late a reading may arrive and still be placed in the history.
    #[serde(default = "default_late_window", with = "humantime_serde")]
    pub late_window: Duration,
    /// How long a dock seat's state holds after a poll.
    #[serde(default = "default_seat_hold", with = "humantime_serde")]
    pub seat_hold: Duration,
}

impl Default for RawAggregation {
    fn default() -> Self {
        RawAggregation {
            timezone: default_timezone(),
            working_days: default_days(),
            working_hours_start: default_start(),
            working_hours_end: default_end(),
            sla_target_percent: default_sla(),
            availability_days: default_window_days(),
            late_window: default_late_window(),
            seat_hold: default_seat_hold(),
        }
    }
}

fn default_timezone() -> String {
    "Europe/Berlin".into()
}
fn default_days() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri"]
        .map(String::from)
        .to_vec()
}
fn default_start() -> String {
    "07:00".into()
}
fn default_end() -> String {
    "18:00".into()
}
fn default_sla() -> f64 {
    99.0
}
fn default_window_days() -> u32 {
    30
}
fn default_late_window() -> Duration {
    Duration::from_secs(3 * 86_400)
}
fn default_seat_hold() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_broker() -> String {
    broker::DEFAULT_URL.into()
}
fn default_client_id() -> String {
    "devtel-gateway".into()
}
fn default_http_listen() -> String {
    "127.0.0.1:8080".into()
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML, or unknown keys.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A value is invalid.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A `[[prices]]` entry is invalid (the error names it, e.g. `prices[2].mono`).
    #[error(transparent)]
    Price(#[from] crate::pricing::PriceError),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Broker connection.
    pub mqtt: devtel_daemon::mqtt::Mqtt,
    /// The broker inside the gateway (`broker = "embedded"`); `mqtt` then points to it once
    /// it has started.
    pub embedded_broker: Option<crate::embedded::Settings>,
    /// MQTT client id.
    pub client_id: String,
    /// HTTP listen address (port 0 picks a free port; the bound address is logged).
    pub http_listen: SocketAddr,
    /// SQLite database file (unused with `postgres`).
    pub store_path: PathBuf,
    /// The PostgreSQL store, when `[store] url` is set.
    pub postgres: Option<Postgres>,
    /// `[cluster] group`: the replica group (needs `postgres`).
    pub group: Option<String>,
    /// When the figures are snapshotted.
    pub snapshots: SnapshotPolicy,
    /// How long raw envelopes are kept after they were received.
    pub raw_retention: Duration,
    /// Units, calendar and targets.
    pub core: CoreSettings,
    /// Prices of the monthly report.
    pub prices: crate::pricing::Prices,
    /// How often an open dashboard page refreshes its content.
    pub dashboard_refresh: Duration,
    /// The Home Assistant discovery prefix, when discovery is on.
    pub home_assistant: Option<String>,
    /// How far an envelope's poll time may lead the gateway's clock.
    pub max_clock_skew: Duration,
    /// `[[sites]]`.
    pub sites: Vec<crate::sites::SiteEntry>,
    /// The HTTP token and limits.
    pub http: crate::guard::Settings,
    /// Most devices and collectors taken.
    pub max_devices: usize,
    /// See `max_devices`.
    pub max_collectors: usize,
}

impl Config {
    /// The site rules of this configuration, before any claim.
    pub fn owners(&self) -> crate::sites::Owners {
        crate::sites::Owners::new(&self.sites, self.max_collectors, self.max_devices)
    }

    /// Parses and validates a TOML document.
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        let embedded = raw.broker == EMBEDDED;
        if embedded {
            let m = &raw.mqtt;
            if m.username.is_some()
                || m.password.is_some()
                || m.password_file.is_some()
                || m.ca_file.is_some()
                || m.client_cert.is_some()
                || m.client_key.is_some()
            {
                return Err(ConfigError::Invalid {
                    key: "mqtt",
                    reason: "credentials and TLS files do not apply to the embedded broker (the gateway logs in to it by itself)".into(),
                });
            }
        } else if raw.embedded_broker.is_some() {
            return Err(ConfigError::Invalid {
                key: "embedded_broker",
                reason: format!("only applies with broker = \"{EMBEDDED}\""),
            });
        }
        // With the embedded broker the address is set when it has started.
        let url = if embedded {
            "mqtt://127.0.0.1"
        } else {
            raw.broker.as_str()
        };
        let mqtt =
            devtel_daemon::mqtt::settings(url, &raw.mqtt).map_err(|e| ConfigError::Invalid {
                key: e.key,
                reason: e.reason,
            })?;
        if raw.client_id.is_empty() || raw.client_id.len() > 64 {
            return Err(ConfigError::Invalid {
                key: "client_id",
                reason: "must be 1 to 64 characters".into(),
            });
        }
        let http_listen = raw.http_listen.parse().map_err(|_| ConfigError::Invalid {
            key: "http_listen",
            reason: format!(
                "{:?} is not an address such as 127.0.0.1:8080",
                raw.http_listen
            ),
        })?;
        let store_path = raw.store.path.clone().unwrap_or_else(|| {
            std::env::var_os("STATE_DIRECTORY")
                .map(PathBuf::from)
                .map_or_else(
                    || PathBuf::from(DEFAULT_STORE_PATH),
                    |d| d.join("devtel.sqlite"),
                )
        });
        let a = &raw.aggregation;
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid { key, reason };
        let postgres = postgres(&raw.store)?;
        let group = match &raw.cluster {
            None => None,
            Some(c) => {
                if postgres.is_none() {
                    return Err(invalid(
                        "cluster",
                        "replicas share a PostgreSQL store: set store.url".into(),
                    ));
                }
                if embedded {
                    return Err(invalid(
                        "cluster",
                        "replicas share an external broker; the embedded one is the gateway's own"
                            .into(),
                    ));
                }
                // A shared subscription's name: no level separator or wildcard.
                if c.group.is_empty()
                    || c.group.len() > 64
                    || !c
                        .group
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                {
                    return Err(invalid(
                        "cluster.group",
                        "1 to 64 characters of a-z, A-Z, 0-9, - and _".into(),
                    ));
                }
                Some(c.group.clone())
            }
        };
        if raw.store.snapshot_interval < Duration::from_secs(1)
            || raw.store.snapshot_interval > Duration::from_secs(7 * 86_400)
        {
            return Err(invalid(
                "store.snapshot_interval",
                "must be 1 s to 7 days".into(),
            ));
        }
        if raw.store.snapshot_every == 0 || raw.store.snapshot_every > 100_000_000 {
            return Err(invalid(
                "store.snapshot_every",
                "must be 1 to 100,000,000 envelopes".into(),
            ));
        }
        let retention_days = raw.store.figures_retention.as_secs() / 86_400;
        if !(32..=36_525).contains(&retention_days)
            || u128::from(retention_days) * 86_400_000 <= a.late_window.as_millis()
            || retention_days < u64::from(a.availability_days)
        {
            return Err(invalid(
                "store.figures_retention",
                "must be 32 days to 100 years, and longer than the late window and the availability window".into(),
            ));
        }
        if raw.store.raw_retention < Duration::from_secs(1)
            || raw.store.raw_retention > Duration::from_secs(36_525 * 86_400)
        {
            return Err(invalid(
                "store.raw_retention",
                "must be 1 s to 100 years".into(),
            ));
        }
        if raw.store.raw_retention < a.late_window {
            tracing::warn!(
                raw_retention = ?raw.store.raw_retention,
                late_window = ?a.late_window,
                "[store] raw_retention is shorter than the late window: the history API will not show the readings a late one is placed between"
            );
        }
        let snapshots = SnapshotPolicy {
            interval: raw.store.snapshot_interval,
            every: raw.store.snapshot_every,
        };
        let calendar = Calendar::new(
            &a.timezone,
            &a.working_days,
            &a.working_hours_start,
            &a.working_hours_end,
        )
        .map_err(|e| {
            let key = match e {
                crate::calendar::CalendarError::TimeZone(_) => "aggregation.timezone",
                crate::calendar::CalendarError::Day(_) => "aggregation.working_days",
                _ => "aggregation.working_hours_start",
            };
            invalid(key, e.to_string())
        })?;
        if !(a.sla_target_percent > 0.0 && a.sla_target_percent <= 100.0) {
            return Err(invalid(
                "aggregation.sla_target_percent",
                format!("{} is not a percentage in (0, 100]", a.sla_target_percent),
            ));
        }
        if a.availability_days == 0 || a.availability_days > 3660 {
            return Err(invalid(
                "aggregation.availability_days",
                "must be 1 to 3660 days".into(),
            ));
        }
        if a.seat_hold.is_zero() {
            return Err(invalid(
                "aggregation.seat_hold",
                "must be more than 0".into(),
            ));
        }
        let units = Units::new(raw.units).map_err(|e| invalid("units", e.to_string()))?;
        let prices = crate::pricing::Prices::new(&raw.prices)?;
        if raw.dashboard.refresh < Duration::from_secs(2)
            || raw.dashboard.refresh > Duration::from_secs(3_600)
        {
            return Err(invalid("dashboard.refresh", "must be 2 s to 1 h".into()));
        }
        if raw.ingest.max_clock_skew < Duration::from_secs(1)
            || raw.ingest.max_clock_skew > Duration::from_secs(7 * 86_400)
        {
            return Err(invalid(
                "ingest.max_clock_skew",
                "must be 1 s to 7 days".into(),
            ));
        }
        for (key, n) in [
            ("ingest.max_devices", raw.ingest.max_devices),
            ("ingest.max_collectors", raw.ingest.max_collectors),
        ] {
            if !(1..=10_000_000).contains(&n) {
                return Err(invalid(key, "must be 1 to 10,000,000".into()));
            }
        }
        let sites = sites(&raw.sites)?;
        let home_assistant = match (&raw.home_assistant.discovery, &raw.home_assistant.prefix) {
            (false, _) => None,
            (true, prefix) => {
                let prefix = prefix
                    .clone()
                    .unwrap_or_else(|| crate::ha::DEFAULT_PREFIX.into());
                let plain = !prefix.is_empty()
                    && prefix.len() <= 64
                    && prefix.split('/').all(|l| {
                        !l.is_empty()
                            && l.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
                    })
                    && !prefix.starts_with("devtel");
                if !plain {
                    return Err(ConfigError::Invalid {
                        key: "home_assistant.prefix",
                        reason: format!("{prefix:?}: topic levels of letters, digits, '_' or '-', not under devtel/"),
                    });
                }
                Some(prefix)
            }
        };
        let embedded_broker = if embedded {
            let ids: Vec<String> = raw.sites.iter().map(|s| s.id.clone()).collect();
            let mut settings = embedded_settings(
                raw.embedded_broker
                    .as_ref()
                    .unwrap_or(&RawEmbeddedBroker::default()),
                &ids,
            )?;
            settings.discovery_prefix = home_assistant.clone();
            Some(settings)
        } else {
            None
        };
        let http = http_settings(&raw.http, &http_listen)?;
        let core = CoreSettings {
            units,
            ledger: LedgerSettings {
                calendar,
                late_window_ms: u64::try_from(a.late_window.as_millis()).unwrap_or(u64::MAX),
                max_hold_ms: u64::try_from(a.seat_hold.as_millis()).unwrap_or(u64::MAX),
                figures_retention_days: u32::try_from(retention_days).unwrap_or(u32::MAX),
            },
            sla_target_percent: a.sla_target_percent,
            availability_days: a.availability_days,
            per_seat: raw.privacy == RawPrivacy::PerSeat,
        };
        Ok(Config {
            mqtt,
            embedded_broker,
            client_id: raw.client_id,
            http_listen,
            store_path,
            postgres,
            group,
            snapshots,
            raw_retention: raw.store.raw_retention,
            core,
            prices,
            dashboard_refresh: raw.dashboard.refresh,
            home_assistant,
            max_clock_skew: raw.ingest.max_clock_skew,
            sites,
            http,
            max_devices: raw.ingest.max_devices,
            max_collectors: raw.ingest.max_collectors,
        })
    }
}

/// The token (from `[http] token_file` or [`TOKEN_ENV`]; required when the API listens
/// beyond loopback) and the limits.
fn http_settings(
    raw: &RawHttp,
    listen: &SocketAddr,
) -> Result<crate::guard::Settings, ConfigError> {
    let invalid = |key: &'static str, reason: String| ConfigError::Invalid { key, reason };
    let token = read_token(raw.token_file.as_deref(), TOKEN_ENV, "http.token_file")?;
    let seat_token = read_token(
        raw.seat_token_file.as_deref(),
        SEAT_TOKEN_ENV,
        "http.seat_token_file",
    )?;
    if seat_token.is_some() && token.is_none() {
        return Err(invalid(
            "http.seat_token_file",
            "a seats token needs the token ([http] token_file) beside it".into(),
        ));
    }
    if seat_token.is_some() && seat_token == token {
        return Err(invalid(
            "http.seat_token_file",
            "the seats token must differ from the token".into(),
        ));
    }
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(invalid(
            "http.token_file",
            format!("required when http_listen ({listen}) is not a loopback address: give [http] token_file or set {TOKEN_ENV}"),
        ));
    }
    if raw.timeout < Duration::from_millis(100) || raw.timeout > Duration::from_secs(600) {
        return Err(invalid("http.timeout", "must be 100 ms to 10 min".into()));
    }
    for (key, n) in [
        ("http.max_in_flight", raw.max_in_flight),
        ("http.max_per_client", raw.max_per_client),
    ] {
        if !(1..=100_000).contains(&n) {
            return Err(invalid(key, "must be 1 to 100,000".into()));
        }
    }
    Ok(crate::guard::Settings {
        token: token.map(crate::guard::Token::new),
        seat_token: seat_token.map(crate::guard::Token::new),
        timeout: raw.timeout,
        max_in_flight: raw.max_in_flight,
        max_per_client: raw.max_per_client,
    })
}

/// A token from `file` (its first line) or the environment variable `env`, checked.
fn read_token(
    file: Option<&std::path::Path>,
    env: &str,
    key: &'static str,
) -> Result<Option<String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { key, reason };
    let token = match file {
        Some(path) => Some(
            devtel_daemon::secret_file(path)
                .map_err(|e| invalid(format!("{}: {e}", path.display())))?
                .trim()
                .to_string(),
        ),
        None => std::env::var(env)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    };
    if let Some(t) = &token {
        if t.len() < MIN_TOKEN_LEN || !t.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid(format!(
                "the token must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
            )));
        }
    }
    Ok(token)
}

/// Validates `[[sites]]`: identifiers, at least one collector per site, and no site, collector
/// or device listed twice.
fn sites(raw: &[RawSite]) -> Result<Vec<crate::sites::SiteEntry>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "sites",
        reason,
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, site) in raw.iter().enumerate() {
        let check = |what: &str, id: &str| {
            devtel_protocol::topic::validate_segment(id)
                .map_err(|_| invalid(format!("sites[{i}].{what}: {id:?} is not an identifier")))
        };
        check("id", &site.id)?;
        if site.collectors.is_empty() {
            return Err(invalid(format!(
                "sites[{i}].collectors: a site needs at least one collector"
            )));
        }
        for (what, ids) in [
            ("site", std::slice::from_ref(&site.id)),
            ("collector", &site.collectors[..]),
            ("device", &site.devices[..]),
        ] {
            for id in ids {
                check(what, id)?;
                if !seen.insert((what, id.clone())) {
                    return Err(invalid(format!(
                        "sites[{i}]: {what} {id:?} is listed twice"
                    )));
                }
            }
        }
        out.push(crate::sites::SiteEntry {
            id: site.id.clone(),
            collectors: site.collectors.clone(),
            devices: site.devices.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systemd_unit_is_well_formed_and_matches_the_defaults() {
        let unit = include_str!("../dist/devtel-gateway.service");
        let keys = devtel_daemon::unit_keys(unit).unwrap();
        assert!(keys["Service.ExecStart"]
            .ends_with("devtel-gateway run --config /etc/devtel/gateway.toml"));
        assert!(keys["Service.ExecStartPre"].contains("check-config"));
        assert_eq!(keys["Service.KillSignal"], "SIGTERM");
        // The state directory is where the default database lives.
        assert_eq!(
            DEFAULT_STORE_PATH,
            format!("/var/lib/{}/devtel.sqlite", keys["Service.StateDirectory"])
        );
        assert_eq!(keys["Service.DynamicUser"], "yes");
        assert_eq!(keys["Install.WantedBy"], "multi-user.target");
    }

    #[test]
    fn the_embedded_broker_is_configured_and_bounded() {
        let c = Config::from_toml("broker = \"embedded\"").unwrap();
        let b = c.embedded_broker.expect("embedded");
        assert_eq!(b.listen, Some("127.0.0.1:1883".parse().unwrap()));
        assert!(b.passwords.is_none() && b.tls.is_none());
        assert_eq!(b.max_packet_bytes as usize, devtel_protocol::MAX_PACKET_LEN);
        assert_eq!(b.discovery_prefix, None);
        let ha =
            Config::from_toml("broker = \"embedded\"\n[home_assistant]\ndiscovery = true").unwrap();
        assert_eq!(ha.home_assistant.as_deref(), Some("homeassistant"));
        assert_eq!(
            ha.embedded_broker.unwrap().discovery_prefix.as_deref(),
            Some("homeassistant")
        );
        let err = Config::from_toml("[home_assistant]\ndiscovery = true\nprefix = \"devtel/x\"")
            .unwrap_err();
        assert!(
            err.to_string().starts_with("home_assistant.prefix:"),
            "{err}"
        );
        assert!(Config::from_toml("").unwrap().embedded_broker.is_none());
        for (toml, key) in [
            // Beyond loopback only with users and passwords.
            ("broker = \"embedded\"\n[embedded_broker]\nlisten = \"0.0.0.0:1883\"", "embedded_broker.passwd_file"),
            ("broker = \"embedded\"\n[embedded_broker]\nlisten = \"\"", "embedded_broker.listen"),
            ("broker = \"embedded\"\n[embedded_broker]\nlisten = \"nowhere\"", "embedded_broker.listen"),
            ("broker = \"embedded\"\n[embedded_broker]\ntls_listen = \"0.0.0.0:8883\"", "embedded_broker.tls_listen"),
            ("broker = \"embedded\"\n[embedded_broker]\npasswd_file = \"/nonexistent\"", "embedded_broker.passwd_file"),
            ("broker = \"embedded\"\n[embedded_broker]\nmax_retained = 0", "embedded_broker.max_retained"),
            ("broker = \"embedded\"\n[embedded_broker]\nmax_packet_bytes = 100", "embedded_broker.max_packet_bytes"),
            ("broker = \"embedded\"\n[embedded_broker]\nmax_packet_bytes = 4194305", "embedded_broker.max_packet_bytes"),
            ("broker = \"embedded\"\n[mqtt]\nusername = \"x\"", "mqtt"),
            ("[embedded_broker]\nlisten = \"127.0.0.1:1883\"", "embedded_broker"),
            ("broker = \"embedded\"\n[embedded_broker]\ngateway_user = \"a\"\n[[sites]]\nid = \"a\"\ncollectors = [\"c\"]", "embedded_broker.gateway_user"),
        ] {
            let err = Config::from_toml(toml).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{toml}: {err}");
        }
    }

    #[test]
    fn example_parses_and_errors_name_the_key() {
        Config::from_toml(EXAMPLE).unwrap();
        assert!(Config::from_toml("").is_ok(), "every key has a default");
        let err = Config::from_toml("http_listen = \"localhost\"")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("http_listen:"), "{err}");
        let err = Config::from_toml("broker = \"http://x\"")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("broker:"), "{err}");
        let err = Config::from_toml("[mqtt]\ninflight = 0")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("mqtt.inflight:"), "{err}");
        let err = Config::from_toml("broker = \"mqtts://x\"")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("mqtt.ca_file:"), "TLS needs its CA: {err}");
        let err = Config::from_toml("brokr = \"mqtt://x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokr"), "{err}");
        for (text, key) in [
            (
                "[aggregation]\ntimezone = \"Europe/Nowhere\"",
                "aggregation.timezone",
            ),
            ("[dashboard]\nrefresh = \"1s\"", "dashboard.refresh"),
            ("[ingest]\nmax_clock_skew = \"0s\"", "ingest.max_clock_skew"),
            ("[[prices]]\nmono = -1\ncolour = 0", "prices[0].mono"),
            (
                "[aggregation]\nworking_days = [\"mo\"]",
                "aggregation.working_days",
            ),
            (
                "[aggregation]\nworking_hours_start = \"19:00\"",
                "aggregation.working_hours_start",
            ),
            (
                "[aggregation]\nsla_target_percent = 120.0",
                "aggregation.sla_target_percent",
            ),
            (
                "[aggregation]\navailability_days = 0",
                "aggregation.availability_days",
            ),
            ("[aggregation]\nseat_hold = \"0s\"", "aggregation.seat_hold"),
            (
                "[store]\nsnapshot_interval = \"0s\"",
                "store.snapshot_interval",
            ),
            ("[store]\nsnapshot_every = 0", "store.snapshot_every"),
            (
                "[store]\nfigures_retention = \"2days\"",
                "store.figures_retention",
            ),
            (
                "[store]\nfigures_retention = \"40days\"\n[aggregation]\navailability_days = 90",
                "store.figures_retention",
            ),
            ("[store]\nraw_retention = \"0s\"", "store.raw_retention"),
            ("[[units]]\nid = \"a\"\nparent = \"b\"", "units"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.starts_with(key), "{text}: {err}");
        }
        let err = Config::from_toml("[aggregation]\nlate_window = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("late_window"), "{err}");
    }

    #[test]
    fn snapshots_default_to_an_hour_or_100000_envelopes() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.snapshots, SnapshotPolicy::default());
        assert_eq!(c.raw_retention, DEFAULT_RAW_RETENTION);
        assert_eq!(
            (c.snapshots.interval, c.snapshots.every),
            (Duration::from_secs(3_600), 100_000)
        );
        let c =
            Config::from_toml("[store]\nsnapshot_interval = \"30s\"\nsnapshot_every = 7").unwrap();
        assert_eq!(
            (c.snapshots.interval, c.snapshots.every),
            (Duration::from_secs(30), 7)
        );
        assert_eq!(
            Config::from_toml(EXAMPLE).unwrap().snapshots,
            SnapshotPolicy::default()
        );
        assert_eq!(
            Config::from_toml("")
                .unwrap()
                .core
                .ledger
                .figures_retention_days,
            3653,
            "ten years"
        );
        let c = Config::from_toml("[store]\nfigures_retention = \"400days\"").unwrap();
        assert_eq!(c.core.ledger.figures_retention_days, 400);
    }

    #[test]
    fn example_units_form_a_hierarchy() {
        let c = Config::from_toml(EXAMPLE).unwrap();
        let units = &c.core.units;
        assert!(units.is_configured());
        let leaf = units
            .defs()
            .find(|d| units.children(&d.id).is_empty() && d.parent.is_some())
            .unwrap();
        assert!(
            units.lineage(&leaf.id).len() >= 3,
            "{:?}",
            units.lineage(&leaf.id)
        );
        assert_eq!(c.core.sla_target_percent, 99.9);
    }

    #[test]
    fn a_postgres_store_and_a_cluster_are_checked() {
        let c = Config::from_toml(
            "broker = \"mqtt://b\"\nclient_id = \"gw-a\"\n[store]\nurl = \"postgres://devtel@db.example:5433/figures\"\n[cluster]\ngroup = \"devtel\"",
        )
        .unwrap();
        let p = c.postgres.as_ref().unwrap();
        assert_eq!(p.shown, "postgres://devtel@db.example:5433/figures");
        assert_eq!(p.config.get_dbname(), Some("figures"));
        assert_eq!(
            p.config.get_connect_timeout(),
            Some(&Duration::from_secs(10))
        );
        assert_eq!(c.group.as_deref(), Some("devtel"));
        // The password from its file, never shown.
        let dir = std::env::temp_dir().join(format!("devtel-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let c = Config::from_toml(&format!(
            "[store]\nurl = \"host=db dbname=figures user=devtel\"\npassword_file = \"{}\"",
            file.display()
        ))
        .unwrap();
        let p = c.postgres.unwrap();
        assert_eq!(p.config.get_password(), Some(&b"s3cret"[..]));
        assert!(!format!("{:?}", p.config).contains("s3cret"));
        let _ = std::fs::remove_dir_all(&dir);
        // Without a url the SQLite file, as before.
        let c = Config::from_toml("").unwrap();
        assert!(c.postgres.is_none() && c.group.is_none());

        for (text, key) in [
            ("[store]\nurl = \"mysql://x/y\"", "store.url"),
            ("[store]\nurl = \"postgres://devtel@db\"", "store.url"),
            ("[store]\nurl = \"postgres://devtel@db/x?sslmode=require\"", "store.url"),
            ("[store]\nurl = \"postgres://db/x\"\npath = \"a.sqlite\"", "store.url"),
            ("[store]\npassword_file = \"/etc/hostname\"", "store.password_file"),
            ("[store]\nurl = \"postgres://db/x\"\npassword_file = \"/nonexistent\"", "store.password_file"),
            ("[cluster]\ngroup = \"devtel\"", "cluster"),
            ("[store]\nurl = \"postgres://db/x\"\n[cluster]\ngroup = \"a/b\"", "cluster.group"),
            ("[store]\nurl = \"postgres://db/x\"\n[cluster]\ngroup = \"\"", "cluster.group"),
            ("broker = \"embedded\"\n[store]\nurl = \"postgres://db/x\"\n[cluster]\ngroup = \"g\"", "cluster"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{text}: {err}");
        }
    }
}
