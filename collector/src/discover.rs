//! `devtel-collector discover`: sweep address ranges, classify whatever answers SNMP (copier,
//! phone, dock switch) with the same code as `probe`, and write a ready `[[devices]]` snippet.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::probe::{self, Probed};
use crate::report;
use crate::snmp::client::{Options, SnmpError, Target, Version};

/// Most addresses one sweep accepts (a /16).
pub const MAX_ADDRESSES: usize = 65_536;

/// Why the targets of a sweep were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    /// Not an address and not a CIDR range.
    #[error("{0:?} is neither an IP address nor a CIDR range such as 10.20.30.0/24")]
    BadTarget(String),
    /// The ranges hold too many addresses.
    #[error("the ranges hold more than {MAX_ADDRESSES} addresses (a /16); sweep smaller ranges")]
    TooMany,
}

/// The addresses of `targets` (addresses or CIDR ranges), in order, without repeats. A range
/// of an IPv4 /30 or larger skips its network and broadcast addresses.
///
/// # Errors
/// [`DiscoverError::BadTarget`] for text that is neither, [`DiscoverError::TooMany`] above
/// [`MAX_ADDRESSES`].
pub fn expand(targets: &[String]) -> Result<Vec<IpAddr>, DiscoverError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for t in targets {
        let t = t.trim();
        let net: IpNet = match (t.parse::<IpNet>(), t.parse::<IpAddr>()) {
            (Ok(net), _) => net,
            (_, Ok(addr)) => IpNet::from(addr),
            _ => return Err(DiscoverError::BadTarget(t.to_string())),
        };
        let width = u32::from(net.max_prefix_len() - net.prefix_len());
        if width > MAX_ADDRESSES.trailing_zeros() {
            return Err(DiscoverError::TooMany);
        }
        for addr in net.hosts() {
            if seen.insert(addr) {
                out.push(addr);
                if out.len() > MAX_ADDRESSES {
                    return Err(DiscoverError::TooMany);
                }
            }
        }
    }
    Ok(out)
}

/// A device that answered.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its address.
    pub address: IpAddr,
    /// What it is.
    pub probed: Probed,
}

/// Probes every address, at most `concurrency` at a time, calling `each` as each finishes
/// (with the error for silent ones: most addresses of a range are). Returns the devices that
/// answered, by address.
pub async fn sweep<F>(
    addresses: Vec<IpAddr>,
    template: &Target,
    opts: Options,
    concurrency: usize,
    mut each: F,
) -> Vec<Found>
where
    F: FnMut(IpAddr, &Result<Probed, SnmpError>),
{
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut found = Vec::new();
    let mut take = |joined: Result<(IpAddr, Result<Probed, SnmpError>), tokio::task::JoinError>,
                    found: &mut Vec<Found>| {
        if let Ok((address, result)) = joined {
            each(address, &result);
            if let Ok(probed) = result {
                found.push(Found { address, probed });
            }
        }
    };
    for address in addresses {
        let Ok(permit) = semaphore.clone().acquire_owned().await else {
            break;
        };
        let target = Target {
            host: address.to_string(),
            ..template.clone()
        };
        tasks.spawn(async move {
            let _permit = permit;
            (address, probe::probe(target, opts).await)
        });
        while let Some(joined) = tasks.try_join_next() {
            take(joined, &mut found);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        take(joined, &mut found);
    }
    found.sort_by_key(|f| f.address);
    found
}

/// The kind and a one-line description of a probed device.
pub fn describe(p: &Probed) -> (&'static str, String) {
    let join = |parts: &[Option<String>]| {
        let text: Vec<String> = parts.iter().flatten().cloned().collect();
        if text.is_empty() {
            "?".to_string()
        } else {
            text.join(" ")
        }
    };
    match p {
        Probed::Copier(r) => (
            "copier",
            join(&[
                r.vendor.map(report::vendor_name),
                r.model.as_ref().map(|m| m.to_string()),
                r.serial.as_ref().map(|s| format!("(serial {s})")),
            ]),
        ),
        Probed::Phone(r) => (
            "phone",
            join(&[
                r.vendor.map(report::vendor_name),
                r.model.as_ref().map(|m| m.to_string()),
            ]),
        ),
        Probed::Dock(r) => (
            "dock",
            join(&[
                r.vendor.map(report::vendor_name),
                r.model.as_ref().map(|m| m.to_string()),
                Some(format!("({} seats)", r.seats.len())),
            ]),
        ),
        Probed::Unknown {
            vendor,
            description,
            ..
        } => (
            "unknown",
            join(&[vendor.map(report::vendor_name), description.clone()]),
        ),
    }
}

/// A `[[devices]]` entry per device of a known kind (unknown ones as comments), with the
/// sweep's SNMP settings. SNMPv3 passwords are never written: the snippet says where they go.
pub fn snippet(found: &[Found], template: &Target, unit: &str) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let known = found
        .iter()
        .filter(|f| !matches!(f.probed, Probed::Unknown { .. }))
        .count();
    let mut out = format!(
        "# devtel-collector discover: {known} device(s) of a known kind, {} other(s).\n# Set `unit` to each device's administrative unit.\n",
        found.len() - known
    );
    for f in found {
        let (kind, text) = describe(&f.probed);
        let text = text.replace('\n', " ");
        if kind == "unknown" {
            out.push_str(&format!(
                "\n# {}: answers SNMP but is no copier, phone or switch: {text}\n",
                f.address
            ));
            continue;
        }
        let id = format!("{kind}-{}", f.address.to_string().replace(['.', ':'], "-"));
        out.push_str(&format!(
            "\n# {text}\n[[devices]]\nid = {}\nkind = \"{kind}\"\naddress = {}\n",
            quote(&id),
            quote(&f.address.to_string())
        ));
        if template.port != 161 {
            out.push_str(&format!("port = {}\n", template.port));
        }
        out.push_str(&format!("version = \"{}\"\n", template.version));
        match (&template.version, &template.usm) {
            (Version::V3, Some(usm)) => {
                out.push_str(&format!("user = {}\n", quote(&usm.user)));
                if let Some((protocol, _)) = &usm.auth {
                    out.push_str(&format!(
                        "auth_protocol = \"{}\"\nauth_password = \"env:DEVTEL_SNMP_AUTH_PASSWORD\"   # the password used for the sweep\n",
                        protocol.name()
                    ));
                }
                if let Some((protocol, _)) = &usm.privacy {
                    out.push_str(&format!(
                        "priv_protocol = \"{}\"\npriv_password = \"env:DEVTEL_SNMP_PRIV_PASSWORD\"\n",
                        protocol.name()
                    ));
                }
                if !usm.context.is_empty() {
                    out.push_str(&format!("context = {}\n", quote(&usm.context)));
                }
            }
            // The snippet is pasted into configs and tickets: it names where the community
            // comes from, never a community other than the well-known default.
            _ if template.community == "public" => out.push_str("community = \"public\"\n"),
            _ => out.push_str(
                "community = \"env:DEVTEL_SNMP_COMMUNITY\"   # the community used for the sweep\n",
            ),
        }
        out.push_str(&format!("unit = {}\n", quote(unit)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_to_hosts_without_repeats() {
        let a = expand(&[
            "10.0.0.0/30".into(),
            "10.0.0.2".into(),
            "10.0.0.9/32".into(),
        ])
        .unwrap();
        let text: Vec<String> = a.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["10.0.0.1", "10.0.0.2", "10.0.0.9"]);
        assert_eq!(expand(&["192.168.1.0/24".into()]).unwrap().len(), 254);
        assert_eq!(expand(&["10.0.0.0/8".into()]), Err(DiscoverError::TooMany));
        assert_eq!(
            expand(&["printer-3og".into()]),
            Err(DiscoverError::BadTarget("printer-3og".into()))
        );
        assert_eq!(expand(&["10.0.0.0/16".into()]).unwrap().len(), 65_534);
    }
}
