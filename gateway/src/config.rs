//! Gateway configuration: a strict TOML file validated into [`Config`]; errors name the key.

use std::net::SocketAddr;

use devtel_protocol::broker;
use serde::Deserialize;

/// The example configuration, shipped as `gateway.example.toml`.
pub const EXAMPLE: &str = include_str!("../gateway.example.toml");

/// The TOML file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Broker URL, `mqtt://host[:port]`.
    #[serde(default = "default_broker")]
    pub broker: String,
    /// MQTT client id.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Address the HTTP API listens on.
    #[serde(default = "default_http_listen")]
    pub http_listen: String,
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
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Broker host.
    pub broker_host: String,
    /// Broker port.
    pub broker_port: u16,
    /// MQTT client id.
    pub client_id: String,
    /// HTTP listen address (port 0 picks a free port; the bound address is logged).
    pub http_listen: SocketAddr,
}

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        let url = broker::parse(&raw.broker).map_err(|e| ConfigError::Invalid {
            key: "broker",
            reason: format!("{:?}: {e}", raw.broker),
        })?;
        if url.tls {
            return Err(ConfigError::Invalid {
                key: "broker",
                reason: "mqtts:// (TLS) is not supported yet; use mqtt://".into(),
            });
        }
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
        Ok(Config {
            broker_host: url.host.to_string(),
            broker_port: url.port,
            client_id: raw.client_id,
            http_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = Config::from_toml("brokr = \"mqtt://x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokr"), "{err}");
    }
}
