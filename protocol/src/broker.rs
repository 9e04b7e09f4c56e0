//! Broker addresses as both daemons accept them: `mqtt://host[:port]` or `mqtts://host[:port]`.

use core::fmt;

/// The broker both daemons use when the config names none: a local Mosquitto.
pub const DEFAULT_URL: &str = "mqtt://127.0.0.1:1883";

/// Default port of `mqtt://`.
pub const DEFAULT_PORT: u16 = 1883;
/// Default port of `mqtts://` (MQTT over TLS).
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// A parsed broker address, borrowing the host from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerUrl<'a> {
    /// Host name or address (IPv6 without brackets).
    pub host: &'a str,
    /// TCP port.
    pub port: u16,
    /// Whether the scheme is `mqtts` (TLS).
    pub tls: bool,
}

/// Why a broker address was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerUrlError {
    /// Scheme is not `mqtt://` or `mqtts://`.
    Scheme,
    /// Host is empty.
    Host,
    /// Port is not a number in 1..=65535.
    Port,
    /// Path, query or credentials are not accepted in the URL.
    Extra,
}

impl fmt::Display for BrokerUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerUrlError::Scheme => "expected mqtt://host[:port] or mqtts://host[:port]",
            BrokerUrlError::Host => "missing host",
            BrokerUrlError::Port => "port must be a number from 1 to 65535",
            BrokerUrlError::Extra => "no path, query or user:password@ in the broker URL (credentials go in their own keys)",
        })
    }
}

impl core::error::Error for BrokerUrlError {}

/// Parses `mqtt://host[:port]`, `mqtts://host[:port]`, `mqtt://[::1]:1883`.
///
/// # Errors
/// See [`BrokerUrlError`].
pub fn parse(url: &str) -> Result<BrokerUrl<'_>, BrokerUrlError> {
    let (rest, tls) = if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true)
    } else {
        return Err(BrokerUrlError::Scheme);
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(BrokerUrlError::Extra);
    }
    let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(BrokerUrlError::Host)?;
        match after.strip_prefix(':') {
            Some(p) => (host, parse_port(p)?),
            None if after.is_empty() => (host, default_port),
            None => return Err(BrokerUrlError::Port),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (rest, default_port),
        }
    };
    if host.is_empty() {
        return Err(BrokerUrlError::Host);
    }
    Ok(BrokerUrl { host, port, tls })
}

fn parse_port(p: &str) -> Result<u16, BrokerUrlError> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(BrokerUrlError::Port),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(
            parse("mqtt://localhost"),
            Ok(BrokerUrl {
                host: "localhost",
                port: 1883,
                tls: false
            })
        );
        assert_eq!(
            parse("mqtts://broker.example:8884"),
            Ok(BrokerUrl {
                host: "broker.example",
                port: 8884,
                tls: true
            })
        );
        assert_eq!(
            parse("mqtts://b"),
            Ok(BrokerUrl {
                host: "b",
                port: 8883,
                tls: true
            })
        );
        assert_eq!(
            parse("mqtt://[::1]:1884/"),
            Ok(BrokerUrl {
                host: "::1",
                port: 1884,
                tls: false
            })
        );
    }

    #[test]
    fn rejects_the_rest_with_a_reason() {
        assert_eq!(parse("tcp://h:1"), Err(BrokerUrlError::Scheme));
        assert_eq!(parse("localhost:1883"), Err(BrokerUrlError::Scheme));
        assert_eq!(parse("mqtt://:1883"), Err(BrokerUrlError::Host));
        assert_eq!(parse("mqtt://h:0"), Err(BrokerUrlError::Port));
        assert_eq!(parse("mqtt://h:99999"), Err(BrokerUrlError::Port));
        assert_eq!(parse("mqtt://u:p@h"), Err(BrokerUrlError::Extra));
        assert_eq!(parse("mqtt://h/path"), Err(BrokerUrlError::Extra));
    }
}
