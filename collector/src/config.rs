//! Collector configuration: a strict TOML file ([`RawConfig`]) validated into [`Config`].
//!
//! Only the validated [`Config`] travels beyond this module. Every rejection names the key
//! (`devices[2].unit: ...`), so site IT can fix a file from the one-line error.

use std::collections::HashSet;
use std::time::Duration;

use devtel_protocol::{broker, topic, DeviceKind, Id};

use crate::devices::dock::Selection;
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
    /// The devices to poll.
    #[serde(default)]
    pub devices: Vec<RawDevice>,
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

/// `[[devices]]`: one device.
#[derive(Debug, Deserialize)]
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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Site id.
    pub site: Id,
    /// Collector id.
    pub collector_id: Id,
    /// Broker host.
    pub broker_host: String,
    /// Broker port.
    pub broker_port: u16,
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
    /// Docks: which ports are seats and which MACs count.
    pub seats: Selection,
    /// Further SNMP contexts polled after the default one.
    pub contexts: Vec<String>,
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
    Usm::from_parts(UsmParts {
        user: d.user.as_deref(),
        auth_protocol: d.auth_protocol.as_deref(),
        auth_password: d.auth_password.as_deref(),
        priv_protocol: d.priv_protocol.as_deref(),
        priv_password: d.priv_password.as_deref(),
        context: d.context.as_deref(),
    })
    .map(Some)
    .map_err(|e| invalid(key(e.field), e.reason))
}

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first offending key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        Config::try_from(raw)
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let site = ident("site", &raw.site)?;
        let collector_id = match &raw.collector_id {
            Some(c) => ident("collector_id", c)?,
            None => site.clone(),
        };
        let url = broker::parse(&raw.broker)
            .map_err(|e| invalid("broker", format!("{:?}: {e}", raw.broker)))?;
        if url.tls {
            return Err(invalid(
                "broker",
                "mqtts:// (TLS) is not supported yet; use mqtt://",
            ));
        }
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
        let mut seen = HashSet::new();
        let mut devices = Vec::with_capacity(raw.devices.len());
        for (i, d) in raw.devices.iter().enumerate() {
            let key = |k: &str| format!("devices[{i}].{k}");
            let id = ident(&key("id"), &d.id)?;
            if !seen.insert(id.clone()) {
                return Err(invalid(
                    key("id"),
                    format!("{:?} is used by another device", d.id),
                ));
            }
            let unit = ident(&key("unit"), &d.unit)?;
            let kind = match d.kind.as_str() {
                "copier" | "printer" => DeviceKind::Copier,
                "phone" => DeviceKind::Phone,
                "dock" => DeviceKind::Dock,
                other => {
                    return Err(invalid(
                        key("kind"),
                        format!("unknown kind {other:?}; expected copier, phone or dock"),
                    ))
                }
            };
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
            if d.community.is_empty() {
                return Err(invalid(key("community"), "must not be empty"));
            }
            devices.push(Device {
                id,
                unit,
                kind,
                target: Target {
                    host: d.address.trim().to_string(),
                    port: d.port,
                    version,
                    community: d.community.clone(),
                    usm,
                },
                seats,
                contexts: d.contexts.clone(),
            });
        }
        Ok(Config {
            site,
            collector_id,
            broker_host: url.host.to_string(),
            broker_port: url.port,
            poll_interval: raw.poll_interval,
            snmp: SnmpOptions {
                timeout: raw.snmp.timeout,
                retries: raw.snmp.retries,
                max_repetitions: raw.snmp.max_repetitions,
                max_rows: 10_000,
            },
            device_deadline: raw.snmp.device_deadline,
            concurrency: raw.snmp.concurrency,
            devices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::client::{AuthProtocol, PrivProtocol};

    #[test]
    fn the_example_config_parses() {
        let config = Config::from_toml(EXAMPLE).unwrap();
        assert!(!config.devices.is_empty());
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
        let sel = &dock.devices[0].seats;
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
}
