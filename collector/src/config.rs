//! Collector configuration: a strict TOML file ([`RawConfig`]) validated into [`Config`].
//!
//! Only the validated [`Config`] travels beyond this module. Every rejection names the key
//! (`devices[2].unit: ...`), so site IT can fix a file from the one-line error.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use devtel_protocol::{broker, topic, DeviceKind, Id};

use devtel_devices::dock::Selection;
use serde::Deserialize;

use crate::snmp::client::{Options as SnmpOptions, Target, Usm, UsmParts, Version};

/// The example configuration, shipped as `collector.example.toml` and printed by
/// `devtel-collector print-example-config`.
pub const EXAMPLE: &str = include_str!("../collector.example.toml");

/// The TOML file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Site id: the `{site}` segment of telemetry topics.
    pub site: String,
    /// Collector id in envelopes and the MQTT client id; defaults to `site`.
    pub collector_id: Option<String>,
    /// Broker URL, `mqtt://host[:port]`.
    #[serde(default = "default_broker")]
    pub broker: String,
    /// Time between the starts of two polls of a device.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// SNMP timing.
    #[serde(default)]
    pub snmp: RawSnmp,
    /// MQTT session, credentials and TLS.
    #[serde(default)]
    pub mqtt: devtel_daemon::mqtt::RawMqtt,
    /// End-to-end delivery.
    #[serde(default)]
    pub delivery: RawDelivery,
    /// The on-disk spool.
    #[serde(default)]
    pub spool: RawSpool,
    /// The devices to poll.
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    /// What leaves the site box about dock clients: `minimal` (the default: counts only) or
    /// `per-seat` (also a salted pseudonym per seat; see the README on the staff council).
    #[serde(default)]
    pub privacy: RawPrivacy,
    /// Address of the collector's own Prometheus `/metrics` (none by default), e.g.
    /// `127.0.0.1:9464`.
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

/// `[snmp]`: timing and limits for every device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnmp {
    /// Time to wait for one response.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Resends after a timeout.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// GetBulk max-repetitions.
    #[serde(default = "default_max_repetitions")]
    pub max_repetitions: u32,
    /// Whole-poll deadline per device: a slow device never delays the others beyond this.
    #[serde(default = "default_device_deadline", with = "humantime_serde")]
    pub device_deadline: Duration,
    /// Devices polled at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for RawSnmp {
    fn default() -> Self {
        RawSnmp {
            timeout: default_timeout(),
            retries: default_retries(),
            max_repetitions: default_max_repetitions(),
            device_deadline: default_device_deadline(),
            concurrency: default_concurrency(),
        }
    }
}

/// `[delivery]`: who releases a reading from the spool, and when it is sent again.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// `"gateway"` (the gateway's acknowledgement, end to end) or `"broker"` (PUBACK).
    pub acknowledge: Option<String>,
    /// How long a reading with the broker waits for the gateway before it is sent again.
    #[serde(default, with = "humantime_serde")]
    pub ack_timeout: Option<Duration>,
    /// Most readings with the broker and not yet confirmed by the gateway.
    pub max_awaiting: Option<usize>,
    /// `"compact"` (wire version 5: a device's description now and then, its values in
    /// between) or `"full"` (every reading in full, as version 4: for a gateway not yet
    /// upgraded to version 5).
    pub wire: Option<String>,
    /// Longest time a device goes without being described again (`"compact"` only).
    #[serde(default, with = "humantime_serde")]
    pub describe_every: Option<Duration>,
}

/// `[spool]`: where readings wait for the broker's acknowledgement.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    /// Directory of the spool.
    pub dir: Option<PathBuf>,
    /// Most disk space, e.g. `"256 MiB"` or a number of bytes.
    pub max_size: Option<toml::Value>,
    /// `"always"`, `"never"` or a duration such as `"1s"`.
    pub fsync: Option<String>,
}

/// `[[devices]]`: one device. Its `Debug` never prints the community or the passwords.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    /// Device id, unique in the deployment (a topic segment).
    pub id: String,
    /// `copier` (printers and MFPs).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Host name or IP address.
    pub address: String,
    /// UDP port.
    #[serde(default = "default_snmp_port")]
    pub port: u16,
    /// `1` or `2c`.
    #[serde(default = "default_version")]
    pub version: String,
    /// SNMP community (v1/v2c).
    #[serde(default = "default_community")]
    pub community: String,
    /// SNMPv3 user (required for version 3).
    pub user: Option<String>,
    /// SNMPv3 authentication protocol: MD5, SHA (SHA-1), SHA-224, SHA-256, SHA-384, SHA-512.
    pub auth_protocol: Option<String>,
    /// SNMPv3 authentication password (at least 8 characters).
    pub auth_password: Option<String>,
    /// SNMPv3 privacy protocol: DES, AES (AES-128), AES-192, AES-256.
    pub priv_protocol: Option<String>,
    /// SNMPv3 privacy password (at least 8 characters).
    pub priv_password: Option<String>,
    /// SNMPv3 context name.
    pub context: Option<String>,
    /// Administrative unit id (a topic segment).
    pub unit: String,
    /// Further SNMP contexts whose answers complete the reading (v3 contextName, or
    /// `community@context` on v1/v2c), e.g. `["Jetdirect"]` for HP print servers that show
    /// their supplies only there.
    #[serde(default)]
    pub contexts: Vec<String>,
    /// Docks only: the switch ports that are dock seats, by ifName, ifDescr, ifAlias or
    /// ifIndex. Empty: every Ethernet port of the switch.
    #[serde(default)]
    pub seats: Vec<String>,
    /// Docks only: count client MACs only in these VLANs (the desks' data VLANs).
    #[serde(default)]
    pub data_vlans: Vec<u16>,
    /// Docks only: MAC prefixes (OUIs such as "00:04:f2", or whole MACs) of infrastructure that
    /// is never a docked laptop.
    #[serde(default)]
    pub ignore_macs: Vec<String>,
}

fn default_broker() -> String {
    broker::DEFAULT_URL.into()
}
const fn default_poll_interval() -> Duration {
    Duration::from_secs(300)
}
const fn default_timeout() -> Duration {
    Duration::from_secs(2)
}
const fn default_retries() -> u32 {
    1
}
const fn default_max_repetitions() -> u32 {
    25
}
const fn default_device_deadline() -> Duration {
    Duration::from_secs(30)
}
const fn default_concurrency() -> usize {
    64
}
fn default_kind() -> String {
    "copier".into()
}
const fn default_snmp_port() -> u16 {
    161
}
fn default_version() -> String {
    "2c".into()
}
impl std::fmt::Debug for RawDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |set: bool| if set { "***" } else { "-" };
        f.debug_struct("RawDevice")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("version", &self.version)
            .field("community", &"***")
            .field("user", &self.user)
            .field("auth_protocol", &self.auth_protocol)
            .field("auth_password", &hidden(self.auth_password.is_some()))
            .field("priv_protocol", &self.priv_protocol)
            .field("priv_password", &hidden(self.priv_password.is_some()))
            .field("context", &self.context)
            .field("unit", &self.unit)
            .finish_non_exhaustive()
    }
}

fn default_community() -> String {
    "public".into()
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or has unknown/missing keys.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A value is invalid.
    #[error("{key}: {reason}")]
    Invalid {
        /// The offending key, e.g. `devices[2].unit`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Default spool directory (systemd's `StateDirectory`, when set, takes its place).
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/devtel-collector/spool";
/// Default spool size.
pub const DEFAULT_SPOOL_BYTES: u64 = 256 << 20;
/// Default first resend delay of a reading the gateway has not confirmed: long enough for a
/// gateway restart, short enough that a broker that lost messages costs minutes, not hours.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(120);
/// Default most readings with the broker and not confirmed: below Mosquitto's default
/// `max_queued_messages` (1,000), so a gateway that is away never makes the broker drop.
pub const DEFAULT_MAX_AWAITING: usize = 500;

/// Validated `[delivery]` settings.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Who releases a reading.
    pub acknowledge: crate::outbox::Acknowledge,
    /// First resend delay of a reading with the broker and not confirmed by the gateway.
    pub ack_timeout: Duration,
    /// Most readings with the broker and not confirmed.
    pub max_awaiting: usize,
    /// Whether readings may go compact (`wire = "compact"`, the default).
    pub compact: bool,
    /// Longest time a device goes without being described again.
    pub describe_every: Duration,
}

/// Validated `[spool]` settings.
#[derive(Debug, Clone)]
pub struct Spool {
    /// Directory.
    pub dir: PathBuf,
    /// Most bytes on disk.
    pub max_bytes: u64,
    /// Sync policy.
    pub fsync: crate::spool::Fsync,
}

/// `privacy` (shared by both daemons).
pub use devtel_daemon::Privacy as RawPrivacy;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Site id.
    pub site: Id,
    /// Collector id.
    pub collector_id: Id,
    /// Broker connection.
    pub mqtt: devtel_daemon::mqtt::Mqtt,
    /// End-to-end delivery.
    pub delivery: Delivery,
    /// Spool.
    pub spool: Spool,
    /// Poll interval.
    pub poll_interval: Duration,
    /// SNMP request options.
    pub snmp: SnmpOptions,
    /// Per-device poll deadline.
    pub device_deadline: Duration,
    /// Concurrent device polls.
    pub concurrency: usize,
    /// Devices.
    pub devices: Vec<Device>,
    /// Whether seats carry pseudonyms of their clients (the salt is read at start).
    pub privacy: RawPrivacy,
    /// Where the collector's own `/metrics` listens, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// One validated device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Device id.
    pub id: Id,
    /// Administrative unit.
    pub unit: Id,
    /// Kind.
    pub kind: DeviceKind,
    /// SNMP target.
    pub target: Target,
    /// Docks: which ports are seats and which MACs count, when configured (boxed: most
    /// devices are no docks, and a collector holds thousands of devices). See [`Device::seats`].
    pub dock: Option<Box<Selection>>,
    /// Further SNMP contexts polled after the default one.
    pub contexts: Vec<String>,
}

impl Device {
    /// Which ports are seats and which MACs count: the configured selection, else every
    /// Ethernet port and every client.
    pub fn seats(&self) -> &Selection {
        static EVERY_PORT: Selection = Selection {
            ports: Vec::new(),
            data_vlans: Vec::new(),
            ignore_macs: Vec::new(),
        };
        self.dock.as_deref().unwrap_or(&EVERY_PORT)
    }
}

/// The dock keys of a device, validated; refused on other kinds.
fn selection(
    d: &RawDevice,
    kind: DeviceKind,
    key: &dyn Fn(&str) -> String,
) -> Result<Selection, ConfigError> {
    if kind != DeviceKind::Dock {
        for (name, set) in [
            ("seats", !d.seats.is_empty()),
            ("data_vlans", !d.data_vlans.is_empty()),
            ("ignore_macs", !d.ignore_macs.is_empty()),
        ] {
            if set {
                return Err(invalid(key(name), "only applies to kind = \"dock\""));
            }
        }
        return Ok(Selection::default());
    }
    if d.seats.len() > devtel_protocol::MAX_SEATS {
        return Err(invalid(
            key("seats"),
            format!(
                "at most {} seats per device; configure a larger switch as several devices",
                devtel_protocol::MAX_SEATS
            ),
        ));
    }
    if let Some(bad) = d.seats.iter().find(|s| s.trim().is_empty()) {
        return Err(invalid(key("seats"), format!("{bad:?} names no port")));
    }
    if let Some(bad) = d.data_vlans.iter().find(|v| !(1..=4094).contains(*v)) {
        return Err(invalid(
            key("data_vlans"),
            format!("VLAN {bad} is not between 1 and 4094"),
        ));
    }
    let ignore_macs = d
        .ignore_macs
        .iter()
        .map(|m| {
            mac_prefix(m).ok_or_else(|| {
                invalid(
                    key("ignore_macs"),
                    format!("{m:?} is not a MAC prefix like \"00:04:f2\" (1 to 6 hex bytes)"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Selection {
        ports: d.seats.iter().map(|s| s.trim().to_string()).collect(),
        data_vlans: d.data_vlans.clone(),
        ignore_macs,
    })
}

/// "00:04:f2", "00-04-F2", "0004f2" → bytes (1 to 6 of them).
fn mac_prefix(text: &str) -> Option<Vec<u8>> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 12 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A secret as configured: the value itself, or `env:NAME` (the environment variable
/// `NAME`), or `file:PATH` (the first line of the file, e.g. one only the collector's user
/// may read), so that a config file can be shared without its secrets.
///
/// # Errors
/// An unset variable or an unreadable file, naming the key (never the value).
pub fn secret(key: &str, value: &str) -> Result<String, ConfigError> {
    if let Some(name) = value.strip_prefix("env:") {
        return std::env::var(name)
            .map_err(|_| invalid(key, format!("the environment variable {name} is not set")));
    }
    if let Some(path) = value.strip_prefix("file:") {
        return devtel_daemon::secret_file(std::path::Path::new(path))
            .map(|t| t.trim_end().to_string())
            .map_err(|e| invalid(key, format!("{path}: {e}")));
    }
    Ok(value.to_string())
}

fn ident(key: &str, value: &str) -> Result<Id, ConfigError> {
    topic::validate_segment(value).map_err(|e| invalid(key, format!("{value:?}: {e}")))?;
    Id::try_from(value).map_err(|_| invalid(key, "too long"))
}

/// The SNMPv3 credentials of a device: required for version 3, refused for 1/2c (a v3 key on a
/// v2c device is a mistake worth reporting, not ignoring).
fn usm(
    d: &RawDevice,
    version: Version,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<Usm>, ConfigError> {
    let v3_keys = [
        ("user", d.user.is_some()),
        ("auth_protocol", d.auth_protocol.is_some()),
        ("auth_password", d.auth_password.is_some()),
        ("priv_protocol", d.priv_protocol.is_some()),
        ("priv_password", d.priv_password.is_some()),
        ("context", d.context.is_some()),
    ];
    if version != Version::V3 {
        if let Some((k, _)) = v3_keys.iter().find(|(_, set)| *set) {
            return Err(invalid(key(k), "only applies to version = \"3\""));
        }
        return Ok(None);
    }
    let auth_password = d
        .auth_password
        .as_deref()
        .map(|v| secret(&key("auth_password"), v))
        .transpose()?;
    let priv_password = d
        .priv_password
        .as_deref()
        .map(|v| secret(&key("priv_password"), v))
        .transpose()?;
    Usm::from_parts(UsmParts {
        user: d.user.as_deref(),
        auth_protocol: d.auth_protocol.as_deref(),
        auth_password: auth_password.as_deref(),
        priv_protocol: d.priv_protocol.as_deref(),
        priv_password: priv_password.as_deref(),
        context: d.context.as_deref(),
    })
    .map(Some)
    .map_err(|e| invalid(key(e.field), e.reason))
}

fn delivery(raw: &RawDelivery) -> Result<Delivery, ConfigError> {
    use crate::outbox::Acknowledge;
    let acknowledge = match raw.acknowledge.as_deref() {
        None | Some("gateway") => Acknowledge::Gateway,
        Some("broker") => Acknowledge::Broker,
        Some(other) => {
            return Err(invalid(
                "delivery.acknowledge",
                format!("{other:?}: expected \"gateway\" or \"broker\""),
            ))
        }
    };
    let ack_timeout = raw.ack_timeout.unwrap_or(DEFAULT_ACK_TIMEOUT);
    if ack_timeout < Duration::from_secs(1) || ack_timeout > Duration::from_secs(86_400) {
        return Err(invalid("delivery.ack_timeout", "must be between 1s and 1d"));
    }
    let max_awaiting = raw.max_awaiting.unwrap_or(DEFAULT_MAX_AWAITING);
    if max_awaiting == 0 || max_awaiting > 100_000 {
        return Err(invalid(
            "delivery.max_awaiting",
            "must be between 1 and 100000",
        ));
    }
    if acknowledge == Acknowledge::Broker
        && (raw.ack_timeout.is_some() || raw.max_awaiting.is_some())
    {
        let key = if raw.ack_timeout.is_some() {
            "delivery.ack_timeout"
        } else {
            "delivery.max_awaiting"
        };
        return Err(invalid(key, "only applies to acknowledge = \"gateway\""));
    }
    let compact = match raw.wire.as_deref() {
        None | Some("compact") => true,
        Some("full") => false,
        Some(other) => {
            return Err(invalid(
                "delivery.wire",
                format!("{other:?}: expected \"compact\" or \"full\""),
            ))
        }
    };
    let describe_every = raw
        .describe_every
        .unwrap_or(crate::describe::DEFAULT_DESCRIBE_EVERY);
    if describe_every < Duration::from_secs(60) || describe_every > Duration::from_secs(7 * 86_400)
    {
        return Err(invalid(
            "delivery.describe_every",
            "must be between 1m and 7d",
        ));
    }
    if !compact && raw.describe_every.is_some() {
        return Err(invalid(
            "delivery.describe_every",
            "only applies to wire = \"compact\"",
        ));
    }
    Ok(Delivery {
        acknowledge,
        ack_timeout,
        max_awaiting,
        compact,
        describe_every,
    })
}

/// `"256 MiB"`, `"64MB"`, `"1 GiB"`, `"100000"` or a number → bytes.
fn parse_size(value: &toml::Value) -> Option<u64> {
    match value {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let number: u64 = number.parse().ok()?;
            let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" => 1_000,
                "kib" => 1 << 10,
                "m" | "mb" => 1_000_000,
                "mib" => 1 << 20,
                "g" | "gb" => 1_000_000_000,
                "gib" => 1 << 30,
                _ => return None,
            };
            number.checked_mul(factor)
        }
        _ => None,
    }
}

fn spool(raw: &RawSpool) -> Result<Spool, ConfigError> {
    use crate::spool::Fsync;
    let dir = match &raw.dir {
        Some(dir) if dir.as_os_str().is_empty() => {
            return Err(invalid("spool.dir", "must not be empty"))
        }
        Some(dir) => dir.clone(),
        None => std::env::var_os("STATE_DIRECTORY")
            .and_then(|d| std::env::split_paths(&d).next())
            .map_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR), |d| d.join("spool")),
    };
    let max_bytes = match &raw.max_size {
        None => DEFAULT_SPOOL_BYTES,
        Some(value) => parse_size(value).ok_or_else(|| {
            invalid(
                "spool.max_size",
                format!("{value} is not a size like \"256 MiB\", \"64MB\" or a number of bytes"),
            )
        })?,
    };
    if max_bytes < 16 * 1024 {
        return Err(invalid("spool.max_size", "must be at least 16 KiB"));
    }
    let fsync = match raw.fsync.as_deref() {
        None | Some("always") => Fsync::Always,
        Some("never") => Fsync::Never,
        Some(other) => match humantime::parse_duration(other) {
            Ok(d) if !d.is_zero() => Fsync::Every(d),
            _ => {
                return Err(invalid(
                    "spool.fsync",
                    format!(
                        "{other:?}: expected \"always\", \"never\" or an interval such as \"1s\""
                    ),
                ))
            }
        },
    };
    Ok(Spool {
        dir,
        max_bytes,
        fsync,
    })
}

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// A big fleet's file is read one `[[devices]]` section at a time ([`sections`]): a TOML
    /// document in memory takes about 2 KB per device, 10 MB at 5,000 devices, which a site
    /// box need not hold at once. Where the file cannot be cut safely, or a part of it does not
    /// parse, it is read whole, so that errors name their line as before.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first offending key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        if let Some(result) = sections(text).and_then(|s| Config::from_sections(&s)) {
            return result;
        }
        let raw: RawConfig = toml::from_str(text)?;
        Config::try_from(raw)
    }

    /// The configuration from its sections, each device parsed and validated on its own;
    /// `None` when any part does not parse (the whole document then tells where).
    fn from_sections(sections: &Sections<'_>) -> Option<Result<Config, ConfigError>> {
        let raw: RawConfig = toml::from_str(&sections.rest).ok()?;
        if !raw.devices.is_empty() {
            return None;
        }
        let mut config = Config::settings(&raw);
        let mut seen = HashSet::new();
        let mut devices = Vec::with_capacity(sections.devices.len());
        for (i, text) in sections.devices.iter().enumerate() {
            let d: RawDevice = toml::from_str(text).ok()?;
            // After the first invalid device the remaining sections are still parsed: a
            // syntax error further down comes first, as when the document is read whole.
            if config.is_ok() {
                match device(i, &d, &mut seen) {
                    Ok(device) => devices.push(device),
                    Err(e) => config = Err(e),
                }
            }
        }
        Some(config.map(|mut c| {
            c.devices = devices;
            c
        }))
    }

    /// Everything but the devices, validated.
    fn settings(raw: &RawConfig) -> Result<Config, ConfigError> {
        let site = ident("site", &raw.site)?;
        let collector_id = match &raw.collector_id {
            Some(c) => ident("collector_id", c)?,
            None => site.clone(),
        };
        let mqtt = devtel_daemon::mqtt::settings(&raw.broker, &raw.mqtt)
            .map_err(|e| invalid(e.key, e.reason))?;
        let delivery = delivery(&raw.delivery)?;
        let spool = spool(&raw.spool)?;
        if raw.poll_interval < Duration::from_secs(1) {
            return Err(invalid("poll_interval", "must be at least 1s"));
        }
        if raw.snmp.timeout.is_zero() {
            return Err(invalid("snmp.timeout", "must be greater than 0"));
        }
        if raw.snmp.max_repetitions == 0 || raw.snmp.max_repetitions > 200 {
            return Err(invalid("snmp.max_repetitions", "must be between 1 and 200"));
        }
        if raw.snmp.concurrency == 0 {
            return Err(invalid("snmp.concurrency", "must be at least 1"));
        }
        if raw.snmp.device_deadline < raw.snmp.timeout {
            return Err(invalid(
                "snmp.device_deadline",
                "must not be shorter than snmp.timeout",
            ));
        }
        let metrics_listen = match raw.metrics_listen.as_deref() {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{text:?} is not an address such as 127.0.0.1:9464"),
                )
            })?),
        };
        Ok(Config {
            site,
            collector_id,
            mqtt,
            delivery,
            spool,
            poll_interval: raw.poll_interval,
            snmp: SnmpOptions {
                timeout: raw.snmp.timeout,
                retries: raw.snmp.retries,
                max_repetitions: raw.snmp.max_repetitions,
                max_rows: 10_000,
            },
            device_deadline: raw.snmp.device_deadline,
            concurrency: raw.snmp.concurrency,
            devices: Vec::new(),
            privacy: raw.privacy,
            metrics_listen,
        })
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let mut config = Config::settings(&raw)?;
        let mut seen = HashSet::new();
        config.devices = raw
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| device(i, d, &mut seen))
            .collect::<Result<_, _>>()?;
        Ok(config)
    }
}

/// Device `i` of the file, validated; `seen` holds the ids of the devices before it.
fn device(i: usize, d: &RawDevice, seen: &mut HashSet<Id>) -> Result<Device, ConfigError> {
    let key = |k: &str| format!("devices[{i}].{k}");
    let id = ident(&key("id"), &d.id)?;
    if !seen.insert(id.clone()) {
        return Err(invalid(
            key("id"),
            format!("{:?} is used by another device", d.id),
        ));
    }
    let unit = ident(&key("unit"), &d.unit)?;
    let kind = DeviceKind::from_name(&d.kind).ok_or_else(|| {
        invalid(
            key("kind"),
            format!("unknown kind {:?}; expected copier, phone or dock", d.kind),
        )
    })?;
    let seats = selection(d, kind, &key)?;
    if let Some(bad) = d.contexts.iter().find(|c| {
        c.is_empty() || c.len() > 32 || c.chars().any(|ch| ch.is_whitespace() || ch == '@')
    }) {
        return Err(invalid(
            key("contexts"),
            format!("{bad:?}: a context name is 1 to 32 characters without spaces or '@'"),
        ));
    }
    let version = match d.version.as_str() {
        "1" => Version::V1,
        "2c" | "2" => Version::V2c,
        "3" => Version::V3,
        other => {
            return Err(invalid(
                key("version"),
                format!("unknown SNMP version {other:?}; expected \"1\", \"2c\" or \"3\""),
            ))
        }
    };
    let usm = usm(d, version, &key)?;
    if d.address.trim().is_empty() {
        return Err(invalid(key("address"), "must not be empty"));
    }
    if d.port == 0 {
        return Err(invalid(key("port"), "must be between 1 and 65535"));
    }
    let community = secret(&key("community"), &d.community)?;
    if community.is_empty() {
        return Err(invalid(key("community"), "must not be empty"));
    }
    Ok(Device {
        id,
        unit,
        kind,
        target: Target {
            host: d.address.trim().to_string(),
            port: d.port,
            version,
            community,
            usm: usm.map(Box::new),
        },
        dock: (seats != Selection::default()).then(|| Box::new(seats)),
        contexts: d.contexts.clone(),
    })
}

/// A configuration file cut into its `[[devices]]` sections and the rest.
#[derive(Debug, PartialEq, Eq)]
struct Sections<'a> {
    /// Everything outside the device sections, in order.
    rest: String,
    /// Each `[[devices]]` section's body (without its header line).
    devices: Vec<&'a str>,
}

/// Cuts `text` at its table headers into the `[[devices]]` sections and the rest, or `None`
/// where that would be unsafe: a multi-line string (a header-like line could be inside it), or
/// a header under `devices` other than `[[devices]]` itself. A cut inside a multi-line array or
/// inline table leaves it unclosed in the part before, which then does not parse, and the
/// document is read whole.
fn sections(text: &str) -> Option<Sections<'_>> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    let mut rest = String::new();
    let mut devices: Vec<&str> = Vec::new();
    let mut device_start: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if !trimmed.starts_with('[') {
            if device_start.is_none() {
                rest.push_str(line);
            }
            continue;
        }
        let header: String = trimmed
            .split('#')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Some(from) = device_start.take() {
            devices.push(&text[from..start]);
        }
        if header == "[[devices]]" {
            device_start = Some(offset);
        } else if header.contains("devices") {
            return None;
        } else {
            rest.push_str(line);
        }
    }
    if let Some(from) = device_start {
        devices.push(&text[from..]);
    }
    Some(Sections { rest, devices })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::client::{AuthProtocol, PrivProtocol};

    #[test]
    fn the_example_config_parses() {
        let config = Config::from_toml(EXAMPLE).unwrap();
        assert!(!config.devices.is_empty());
        assert_eq!(config.spool.max_bytes, 256 << 20);
        assert_eq!(config.spool.fsync, crate::spool::Fsync::Always);
        assert_eq!(config.mqtt.inflight, 32);
    }

    #[test]
    fn the_systemd_unit_is_well_formed_and_matches_the_defaults() {
        let unit = include_str!("../dist/devtel-collector.service");
        let keys = devtel_daemon::unit_keys(unit).unwrap();
        for section in ["Unit", "Service", "Install"] {
            assert!(
                keys.keys().any(|k| k.starts_with(section)),
                "[{section}] missing"
            );
        }
        assert!(keys["Service.ExecStart"]
            .ends_with("devtel-collector run --config /etc/devtel/collector.toml"));
        assert!(keys["Service.ExecStartPre"].contains("check-config"));
        assert_eq!(keys["Service.KillSignal"], "SIGTERM");
        // The state directory is where the default spool lives.
        assert_eq!(
            DEFAULT_SPOOL_DIR,
            format!("/var/lib/{}/spool", keys["Service.StateDirectory"])
        );
        assert_eq!(keys["Install.WantedBy"], "multi-user.target");
    }

    #[test]
    fn sizes_and_fsync_policies_parse() {
        use crate::spool::Fsync;
        let base = "site = \"s\"\n";
        let spool = |extra: &str| {
            Config::from_toml(&format!("{base}[spool]\n{extra}\n"))
                .unwrap()
                .spool
        };
        assert_eq!(spool("max_size = \"64 MiB\"").max_bytes, 64 << 20);
        assert_eq!(spool("max_size = \"10MB\"").max_bytes, 10_000_000);
        assert_eq!(spool("max_size = 100000").max_bytes, 100_000);
        assert_eq!(spool("fsync = \"never\"").fsync, Fsync::Never);
        assert_eq!(
            spool("fsync = \"1s\"").fsync,
            Fsync::Every(Duration::from_secs(1))
        );
        assert_eq!(spool("dir = \"/tmp/x\"").dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn delivery_defaults_to_the_gateways_acknowledgement() {
        use crate::outbox::Acknowledge;
        let base = "site = \"s\"\n";
        let d = Config::from_toml(base).unwrap().delivery;
        assert_eq!(d.acknowledge, Acknowledge::Gateway);
        assert_eq!(d.ack_timeout, DEFAULT_ACK_TIMEOUT);
        assert_eq!(d.max_awaiting, DEFAULT_MAX_AWAITING);
        let d = Config::from_toml(&format!("{base}[delivery]\nacknowledge = \"broker\"\n"))
            .unwrap()
            .delivery;
        assert_eq!(d.acknowledge, Acknowledge::Broker);
        let d = Config::from_toml(&format!(
            "{base}[delivery]\nack_timeout = \"10s\"\nmax_awaiting = 50\n"
        ))
        .unwrap()
        .delivery;
        assert_eq!(
            (d.ack_timeout, d.max_awaiting),
            (Duration::from_secs(10), 50)
        );
        // Compact readings by default, described at least every 12 h.
        let d = Config::from_toml(base).unwrap().delivery;
        assert!(d.compact);
        assert_eq!(d.describe_every, crate::describe::DEFAULT_DESCRIBE_EVERY);
        let d = Config::from_toml(&format!(
            "{base}[delivery]
wire = \"full\"
"
        ))
        .unwrap()
        .delivery;
        assert!(!d.compact);
        let d = Config::from_toml(&format!(
            "{base}[delivery]
describe_every = \"1h\"
"
        ))
        .unwrap()
        .delivery;
        assert_eq!(d.describe_every, Duration::from_secs(3600));
    }

    #[test]
    fn errors_name_the_key() {
        let base = "site = \"s\"\n[[devices]]\nid = \"d1\"\naddress = \"10.0.0.1\"\nunit = \"u\"\n";
        assert!(Config::from_toml(base).is_ok());
        let cases = [
            (
                base.replace("unit = \"u\"", "unit = \"a/b\""),
                "devices[0].unit",
            ),
            (base.replace("site = \"s\"", "site = \"\""), "site"),
            (format!("{base}version = \"4\"\n"), "devices[0].version"),
            (format!("{base}version = \"3\"\n"), "devices[0].user"),
            (
                format!("{base}version = \"3\"\nuser = \"u\"\nauth_password = \"short\"\n"),
                "devices[0].auth_password",
            ),
            (
                format!("{base}version = \"3\"\nuser = \"u\"\nauth_password = \"longenough\"\nauth_protocol = \"sha3\"\n"),
                "devices[0].auth_protocol",
            ),
            (
                format!("{base}version = \"3\"\nuser = \"u\"\npriv_password = \"longenough\"\n"),
                "devices[0].priv_password",
            ),
            (format!("{base}user = \"u\"\n"), "devices[0].user"),
            (format!("{base}kind = \"toaster\"\n"), "devices[0].kind"),
            (format!("{base}seats = [\"gi1\"]\n"), "devices[0].seats"),
            (format!("{base}contexts = [\"a b\"]\n"), "devices[0].contexts"),
            (
                format!("{base}kind = \"dock\"\ndata_vlans = [4095]\n"),
                "devices[0].data_vlans",
            ),
            (
                format!("{base}kind = \"dock\"\nignore_macs = [\"00:04:g2\"]\n"),
                "devices[0].ignore_macs",
            ),
            (
                format!("{base}kind = \"dock\"\nseats = [\" \"]\n"),
                "devices[0].seats",
            ),
            (format!("broker = \"tcp://x\"\n{base}"), "broker"),
            (format!("poll_interval = \"0s\"\n{base}"), "poll_interval"),
            (
                format!("broker = \"mqtts://h\"\n{base}"),
                "mqtt.ca_file",
            ),
            (
                format!("broker = \"mqtts://h\"\n{base}[mqtt]\nca_file = \"/nonexistent/ca.pem\"\n"),
                "mqtt.ca_file",
            ),
            (
                format!("{base}[mqtt]\nca_file = \"/etc/hostname\"\n"),
                "mqtt.ca_file",
            ),
            (
                format!("{base}[mqtt]\npassword = \"x\"\n"),
                "mqtt.username",
            ),
            (
                format!("{base}[mqtt]\nusername = \"u\"\npassword = \"x\"\npassword_file = \"/etc/hostname\"\n"),
                "mqtt.password_file",
            ),
            (
                format!("{base}[mqtt]\nusername = \"u\"\npassword_file = \"/nonexistent\"\n"),
                "mqtt.password_file",
            ),
            (format!("{base}[mqtt]\ninflight = 0\n"), "mqtt.inflight"),
            (format!("{base}[mqtt]\nkeep_alive = \"1s\"\n"), "mqtt.keep_alive"),
            (format!("{base}[mqtt]\nreconnect_max = \"0s\"\n"), "mqtt.reconnect_max"),
            (format!("{base}[delivery]\nacknowledge = \"nobody\"\n"), "delivery.acknowledge"),
            (format!("{base}[delivery]\nack_timeout = \"0s\"\n"), "delivery.ack_timeout"),
            (format!("{base}[delivery]\nmax_awaiting = 0\n"), "delivery.max_awaiting"),
            (format!("{base}[delivery]\nwire = \"gzip\"\n"), "delivery.wire"),
            (
                format!("{base}[delivery]\ndescribe_every = \"10s\"\n"),
                "delivery.describe_every",
            ),
            (
                format!("{base}[delivery]\nwire = \"full\"\ndescribe_every = \"1h\"\n"),
                "delivery.describe_every",
            ),
            (
                format!("{base}[delivery]\nacknowledge = \"broker\"\nmax_awaiting = 9\n"),
                "delivery.max_awaiting",
            ),
            (format!("{base}[spool]\nmax_size = \"lots\"\n"), "spool.max_size"),
            (format!("{base}[spool]\nmax_size = \"1 KiB\"\n"), "spool.max_size"),
            (format!("{base}[spool]\nmax_size = -5\n"), "spool.max_size"),
            (format!("{base}[spool]\nfsync = \"sometimes\"\n"), "spool.fsync"),
            (format!("{base}[spool]\ndir = \"\"\n"), "spool.dir"),
            (
                format!("{base}[[devices]]\nid = \"d1\"\naddress = \"x\"\nunit = \"u\"\n"),
                "devices[1].id",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(&text).unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}: got {err}");
        }
        let v3 = Config::from_toml(&format!(
            "{base}version = \"3\"\nuser = \"devtel\"\nauth_protocol = \"SHA-256\"\nauth_password = \"auth-secret\"\npriv_protocol = \"AES\"\npriv_password = \"priv-secret\"\n"
        ))
        .unwrap();
        let usm = v3.devices[0].target.usm.as_ref().unwrap();
        assert_eq!(usm.level(), "authPriv");
        assert_eq!(usm.auth.as_ref().unwrap().0, AuthProtocol::Sha256);
        assert_eq!(usm.privacy.as_ref().unwrap().0, PrivProtocol::Aes128);
        assert!(
            !format!("{v3:?}").contains("secret"),
            "passwords never appear in debug output"
        );
        let dock = Config::from_toml(&format!(
            "{base}kind = \"dock\"\nseats = [\"gi1\", \"DESK-3.14\", \"12\"]\ndata_vlans = [10]\nignore_macs = [\"00:04:F2\", \"00-15-5d-01-02-03\"]\n"
        ))
        .unwrap();
        let sel = dock.devices[0].seats();
        assert_eq!(dock.devices[0].kind, DeviceKind::Dock);
        assert_eq!(sel.ports, ["gi1", "DESK-3.14", "12"]);
        assert_eq!(sel.data_vlans, [10]);
        assert_eq!(
            sel.ignore_macs,
            [
                vec![0x00, 0x04, 0xf2],
                vec![0x00, 0x15, 0x5d, 0x01, 0x02, 0x03]
            ]
        );
        let err = Config::from_toml(&format!("{base}colour = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }
    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let dir = std::env::temp_dir().join(format!("devtel-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("community");
        std::fs::write(&file, "from-a-file\nignored\n").unwrap();
        std::env::set_var("DEVTEL_TEST_AUTH_SECRET", "auth-from-env");
        let text = format!(
            "site = \"s\"\n[[devices]]\nid = \"d1\"\naddress = \"10.0.0.1\"\nunit = \"u\"\ncommunity = \"file:{}\"\n\
             [[devices]]\nid = \"d2\"\naddress = \"10.0.0.2\"\nunit = \"u\"\nversion = \"3\"\nuser = \"devtel\"\n\
             auth_password = \"env:DEVTEL_TEST_AUTH_SECRET\"\n",
            file.display()
        );
        let config = Config::from_toml(&text).unwrap();
        assert_eq!(config.devices[0].target.community, "from-a-file");
        let usm = config.devices[1].target.usm.as_ref().unwrap();
        assert_eq!(usm.auth.as_ref().unwrap().1, "auth-from-env");
        let err =
            Config::from_toml(&text.replace("DEVTEL_TEST_AUTH_SECRET", "DEVTEL_TEST_UNSET_X"))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("devices[1].auth_password") && err.contains("DEVTEL_TEST_UNSET_X"),
            "{err}"
        );
        assert!(!err.contains("auth-from-env"));
    }

    #[test]
    fn no_credential_appears_in_debug_output() {
        let text = "site = \"s\"\n[mqtt]\nusername = \"site-s\"\npassword = \"mqtt-secret\"\n\
            [[devices]]\nid = \"d1\"\naddress = \"10.0.0.1\"\nunit = \"u\"\ncommunity = \"community-secret\"\n\
            [[devices]]\nid = \"d2\"\naddress = \"10.0.0.2\"\nunit = \"u\"\nversion = \"3\"\nuser = \"devtel\"\n\
            auth_password = \"auth-secret\"\npriv_password = \"priv-secret\"\n";
        let raw: RawConfig = toml::from_str(text).unwrap();
        let config = Config::from_toml(text).unwrap();
        assert_eq!(config.devices[0].target.community, "community-secret");
        for shown in [
            format!("{raw:?}"),
            format!("{raw:#?}"),
            format!("{config:?}"),
        ] {
            assert!(!shown.contains("secret"), "{shown}");
            assert!(
                shown.contains("d1") && shown.contains("10.0.0.1"),
                "the rest is shown"
            );
        }
    }

    /// The whole document, read the way it was read before sections.
    fn whole(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        Config::try_from(raw)
    }

    #[test]
    fn read_by_sections_or_whole_a_file_gives_the_same_config_or_error() {
        let mut many = String::from("site = \"s\"\n# devices follow\n");
        for i in 0..50 {
            many += &format!(
                "[[devices]] # number {i}\nid = \"d{i}\"\naddress = \"10.0.0.{i}\"\nunit = \"u\"\n\
                 kind = \"{}\"\n",
                ["copier", "phone", "dock"][i % 3]
            );
            if i == 10 {
                many += "[snmp]\ntimeout = \"3s\"\n[[devices]]\nid = \"x\"\naddress = \"h\"\nunit = \"u\"\n\
                         seats = [\n  \"gi1\",\n  \"gi2\",\n]\nkind = \"dock\"\n";
            }
        }
        let by_sections = sections(&many).expect("cut into sections");
        assert_eq!(by_sections.devices.len(), 51);
        assert!(by_sections.rest.contains("[snmp]") && !by_sections.rest.contains("d1"));
        for text in [EXAMPLE, many.as_str()] {
            assert!(sections(text).is_some());
            let (a, b) = (Config::from_toml(text).unwrap(), whole(text).unwrap());
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        let config = Config::from_toml(&many).unwrap();
        assert_eq!(config.devices.len(), 51);
        assert_eq!(config.snmp.timeout, Duration::from_secs(3));
        assert_eq!(config.devices[11].seats().ports, ["gi1", "gi2"]);

        // Errors, wherever they are, read the same (with the line of a syntax error).
        let broken = [
            many.replace("id = \"d7\"", "id = \"d 7\""),
            many.replace("id = \"d40\"", "id = \"d3\""),
            many.replace(
                "unit = \"u\"\nkind = \"phone\"",
                "unit = \"u\"\nkind = \"phone\"\ncolour = 1",
            ),
            many.replace("address = \"10.0.0.30\"", "address = \"10.0.0.30"),
            many.replace("timeout = \"3s\"", "timeout = \"0s\""),
            many.replace("id = \"d2\"", "id = \"d 2\"")
                .replace("address = \"10.0.0.45\"", "address = "),
            many.replace("seats = [\n  \"gi1\",", "seats = [\n[\"gi1\"],"),
        ];
        for text in &broken {
            let (a, b) = (
                Config::from_toml(text).unwrap_err(),
                whole(text).unwrap_err(),
            );
            assert_eq!(a.to_string(), b.to_string());
        }
        assert!(Config::from_toml(&broken[3])
            .unwrap_err()
            .to_string()
            .contains("line"));

        // Where a cut is not safe, the file is read whole.
        let multi = format!("{many}[[devices]]\nid = \"m\"\naddress = \"h\"\nunit = \"u\"\ncommunity = \"\"\"\n[[devices]]\n\"\"\"\n");
        assert!(sections(&multi).is_none());
        let sub = format!("{many}[devices.extra]\n");
        assert!(sections(&sub).is_none());
        assert_eq!(
            Config::from_toml(&sub).unwrap_err().to_string(),
            whole(&sub).unwrap_err().to_string()
        );
    }
}
