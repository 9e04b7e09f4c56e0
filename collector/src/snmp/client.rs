//! An SNMP v1/v2c client over `snmp2`, with the deadlines and walk rules real devices need.
//!
//! - Every request has a timeout (snmp2's async receive has none) and a bounded number of retries.
//! - After a timeout the socket is replaced: a late reply to the abandoned request would otherwise
//!   be read as the answer to the next one (snmp2 then reports a request-id mismatch, forever).
//! - Walks use GetBulk on v2c (max-repetitions halved on `tooBig`) and GetNext on v1, continue
//!   from the last OID actually returned, and stop at the end of the subtree, on `endOfMibView`,
//!   on an OID that does not increase (a looping agent) and at a row cap.
//! - Borrowed `snmp2::Pdu`s are converted to owned [`Value`]s at once.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use snmp2::AsyncSession;
use tracing::{debug, warn};

use super::{Oid, Value, VarbindSet};

/// SNMP protocol version of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SNMPv1: GetNext walks, per-PDU errors.
    V1,
    /// SNMPv2c: GetBulk walks, per-varbind exceptions.
    V2c,
}

/// Where and how to reach one agent.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// UDP port (161 on real devices).
    pub port: u16,
    /// Protocol version.
    pub version: Version,
    /// Community string.
    pub community: String,
}

/// Timing and walk limits.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Time to wait for one response.
    pub timeout: Duration,
    /// Resends after a timeout.
    pub retries: u32,
    /// GetBulk max-repetitions to start with.
    pub max_repetitions: u32,
    /// Most varbinds one walk collects (guards against endless tables).
    pub max_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(2),
            retries: 1,
            max_repetitions: 25,
            max_rows: 10_000,
        }
    }
}

/// Why an SNMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    /// No response within the timeout, after all retries.
    #[error("no response after {attempts} attempt(s) of {timeout:?}")]
    Timeout {
        /// Requests sent.
        attempts: u32,
        /// Per-request timeout.
        timeout: Duration,
    },
    /// Name resolution or socket failure (including ICMP port unreachable).
    #[error("network error: {0}")]
    Network(#[from] io::Error),
    /// The host name did not resolve to an address.
    #[error("{0} did not resolve to an address")]
    Resolve(String),
    /// The agent answered with something we could not decode or that does not match.
    #[error("malformed or mismatched response: {0}")]
    Protocol(snmp2::Error),
    /// The agent answered with a PDU-level error.
    #[error("agent returned error-status {status} at varbind {index}")]
    ErrorStatus {
        /// error-status (1 tooBig, 2 noSuchName, 5 genErr, ...).
        status: u32,
        /// error-index (1-based varbind, 0 = none).
        index: u32,
    },
}

/// A response converted to owned data.
struct Response {
    error_status: u32,
    error_index: u32,
    varbinds: Vec<(Oid, Value)>,
}

/// One request to send.
enum Op {
    Get(Vec<snmp2::Oid<'static>>),
    GetNext(snmp2::Oid<'static>),
    GetBulk(snmp2::Oid<'static>, u32),
}

/// A client bound to one agent. Not shared: one device poll owns one client.
pub struct Client {
    target: Target,
    addr: SocketAddr,
    opts: Options,
    session: Option<AsyncSession>,
    next_req_id: i32,
}

impl Client {
    /// Resolves the target. Sockets are opened lazily.
    ///
    /// # Errors
    /// [`SnmpError::Network`] or [`SnmpError::Resolve`] when the host does not resolve.
    pub async fn new(target: Target, opts: Options) -> Result<Self, SnmpError> {
        let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await?
            .next()
            .ok_or_else(|| SnmpError::Resolve(target.host.clone()))?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let next_req_id = ((seed ^ std::process::id()) & 0x3fff_ffff) as i32;
        Ok(Client {
            target,
            addr,
            opts,
            session: None,
            next_req_id,
        })
    }

    async fn session(&mut self) -> Result<&mut AsyncSession, SnmpError> {
        let session = match self.session.take() {
            Some(session) => session,
            None => {
                let community = self.target.community.as_bytes();
                let req_id = self.next_req_id;
                // Leave room so that request ids of consecutive sessions do not collide.
                self.next_req_id = self.next_req_id.wrapping_add(10_000) & 0x3fff_ffff;
                match self.target.version {
                    Version::V1 => AsyncSession::new_v1(self.addr, community, req_id).await?,
                    Version::V2c => AsyncSession::new_v2c(self.addr, community, req_id).await?,
                }
            }
        };
        Ok(self.session.insert(session))
    }

    async fn exchange(&mut self, op: &Op) -> Result<Response, SnmpError> {
        let attempts = self.opts.retries + 1;
        for attempt in 1..=attempts {
            let timeout = self.opts.timeout;
            let session = self.session().await?;
            match tokio::time::timeout(timeout, exchange_once(session, op)).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(snmp2::Error::RequestIdMismatch)) | Err(_) => {
                    debug!(addr = %self.addr, attempt, "SNMP request timed out");
                    self.session = None;
                }
                Ok(Err(snmp2::Error::Receive | snmp2::Error::Send)) => {
                    self.session = None;
                    return Err(SnmpError::Network(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("{} refused or unreachable", self.addr),
                    )));
                }
                Ok(Err(e)) => {
                    self.session = None;
                    return Err(SnmpError::Protocol(e));
                }
            }
        }
        Err(SnmpError::Timeout {
            attempts,
            timeout: self.opts.timeout,
        })
    }

    /// GETs `oids` into `out`. Missing objects are simply absent. On v1, where one missing
    /// object fails the whole PDU with noSuchName, the offending varbind is dropped and the rest
    /// is asked again.
    ///
    /// # Errors
    /// Timeouts, network failures, malformed responses and PDU errors other than noSuchName.
    pub async fn get(&mut self, oids: &[Oid], out: &mut VarbindSet) -> Result<(), SnmpError> {
        let mut pending: Vec<Oid> = oids.to_vec();
        while !pending.is_empty() {
            let request = pending
                .iter()
                .map(to_snmp2)
                .collect::<Result<Vec<_>, _>>()?;
            let response = self.exchange(&Op::Get(request)).await?;
            match (response.error_status, response.error_index) {
                (0, _) => {
                    for (oid, value) in response.varbinds {
                        out.insert(oid, value);
                    }
                    return Ok(());
                }
                (2, index) if index >= 1 && (index as usize) <= pending.len() => {
                    pending.remove(index as usize - 1);
                }
                (status, index) => return Err(SnmpError::ErrorStatus { status, index }),
            }
        }
        Ok(())
    }

    /// Walks the subtree under `root` into `out`; returns the number of varbinds collected.
    ///
    /// # Errors
    /// Timeouts, network failures, malformed responses and unexpected PDU errors. What was
    /// collected before the error stays in `out`.
    pub async fn walk(&mut self, root: &Oid, out: &mut VarbindSet) -> Result<usize, SnmpError> {
        let mut last = root.clone();
        let mut collected = 0usize;
        let mut repetitions = self.opts.max_repetitions.max(1);
        loop {
            let from = to_snmp2(&last)?;
            let op = match self.target.version {
                Version::V1 => Op::GetNext(from),
                Version::V2c => Op::GetBulk(from, repetitions),
            };
            let response = self.exchange(&op).await?;
            match response.error_status {
                0 => {}
                // v1 signals the end of the MIB view with noSuchName.
                2 if self.target.version == Version::V1 => return Ok(collected),
                1 if repetitions > 1 => {
                    repetitions /= 2;
                    continue;
                }
                status => {
                    return Err(SnmpError::ErrorStatus {
                        status,
                        index: response.error_index,
                    })
                }
            }
            if response.varbinds.is_empty() {
                return Ok(collected);
            }
            for (oid, value) in response.varbinds {
                if value == Value::EndOfMibView || !oid.starts_with(root) {
                    return Ok(collected);
                }
                if oid <= last {
                    warn!(addr = %self.addr, %oid, previous = %last, "agent returned an OID that does not increase; walk stopped");
                    return Ok(collected);
                }
                last = oid.clone();
                out.insert(oid, value);
                collected += 1;
                if collected >= self.opts.max_rows {
                    warn!(addr = %self.addr, %root, collected, "walk stopped at the row cap");
                    return Ok(collected);
                }
            }
        }
    }
}

async fn exchange_once(session: &mut AsyncSession, op: &Op) -> Result<Response, snmp2::Error> {
    let pdu = match op {
        Op::Get(oids) => {
            let refs: Vec<&snmp2::Oid<'_>> = oids.iter().collect();
            session.get_many(&refs).await?
        }
        Op::GetNext(oid) => session.getnext(oid).await?,
        Op::GetBulk(oid, reps) => session.getbulk(&[oid], 0, *reps).await?,
    };
    let mut varbinds = Vec::new();
    for (name, value) in pdu.varbinds.clone() {
        let Some(oid) = from_snmp2(&name) else {
            return Err(snmp2::Error::AsnParse);
        };
        if let Some(value) = convert(value) {
            varbinds.push((oid, value));
        }
    }
    Ok(Response {
        error_status: pdu.error_status,
        error_index: pdu.error_index,
        varbinds,
    })
}

fn to_snmp2(oid: &Oid) -> Result<snmp2::Oid<'static>, SnmpError> {
    let parts: Vec<u64> = oid.as_slice().iter().map(|&p| u64::from(p)).collect();
    snmp2::Oid::from(&parts).map_err(|_| SnmpError::Protocol(snmp2::Error::AsnParse))
}

fn from_snmp2(oid: &snmp2::Oid<'_>) -> Option<Oid> {
    let parts = oid
        .iter()?
        .map(|p| u32::try_from(p).ok())
        .collect::<Option<Vec<u32>>>()?;
    Some(Oid::from(parts))
}

fn convert(value: snmp2::Value<'_>) -> Option<Value> {
    use snmp2::Value as S;
    Some(match value {
        S::Integer(v) => Value::Integer(v),
        S::OctetString(b) => Value::OctetString(b.to_vec()),
        S::ObjectIdentifier(o) => Value::ObjectId(from_snmp2(&o)?),
        S::IpAddress(a) => Value::IpAddress(a),
        S::Counter32(v) => Value::Counter32(v),
        S::Unsigned32(v) => Value::Gauge32(v),
        S::Timeticks(v) => Value::TimeTicks(v),
        S::Opaque(b) => Value::Opaque(b.to_vec()),
        S::Counter64(v) => Value::Counter64(v),
        S::Null => Value::Null,
        S::EndOfMibView => Value::EndOfMibView,
        S::NoSuchObject => Value::NoSuchObject,
        S::NoSuchInstance => Value::NoSuchInstance,
        _ => return None,
    })
}
