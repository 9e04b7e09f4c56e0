//! An SNMP v1/v2c/v3 client over `snmp2`, with the deadlines and walk rules real devices need.
//!
//! - SNMPv3 (USM): every new session first discovers the agent's engine id, boots and time
//!   (RFC 3414 §4); snmp2 then keeps the engine time advancing locally. Engine state lives in the
//!   session of one device address and is never shared between devices, even when two agents
//!   claim the same engine id (cloned images do). An authentication failure (unknown user, wrong
//!   password or protocol) is [`SnmpError::Auth`], never data, and is not retried.
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
use std::sync::Arc;
use std::time::Duration;

use snmp2::AsyncSession;
use tracing::{debug, warn};

use super::transport::Transport;
use super::{ber, Oid, Value, VarbindSet};

/// SNMP protocol version of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SNMPv1: GetNext walks, per-PDU errors.
    V1,
    /// SNMPv2c: GetBulk walks, per-varbind exceptions.
    V2c,
    /// SNMPv3 with the user-based security model: GetBulk walks, [`Target::usm`] credentials.
    V3,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V1 => "1",
            Version::V2c => "2c",
            Version::V3 => "3",
        })
    }
}

/// SNMPv3 authentication protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (old devices).
    Md5,
    /// HMAC-SHA-96.
    Sha1,
    /// HMAC-SHA-224 (RFC 7860).
    Sha224,
    /// HMAC-SHA-256 (RFC 7860).
    Sha256,
    /// HMAC-SHA-384 (RFC 7860).
    Sha384,
    /// HMAC-SHA-512 (RFC 7860).
    Sha512,
}

impl AuthProtocol {
    /// Parses the names net-snmp accepts (`MD5`, `SHA`, `SHA-256`, ...), case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().replace('-', "").as_str() {
            "md5" => AuthProtocol::Md5,
            "sha" | "sha1" => AuthProtocol::Sha1,
            "sha224" => AuthProtocol::Sha224,
            "sha256" => AuthProtocol::Sha256,
            "sha384" => AuthProtocol::Sha384,
            "sha512" => AuthProtocol::Sha512,
            _ => return None,
        })
    }

    /// The config name (`SHA-256`, ...), accepted by [`AuthProtocol::parse`].
    pub const fn name(self) -> &'static str {
        match self {
            AuthProtocol::Md5 => "MD5",
            AuthProtocol::Sha1 => "SHA",
            AuthProtocol::Sha224 => "SHA-224",
            AuthProtocol::Sha256 => "SHA-256",
            AuthProtocol::Sha384 => "SHA-384",
            AuthProtocol::Sha512 => "SHA-512",
        }
    }

    fn to_snmp2(self) -> snmp2::v3::AuthProtocol {
        use snmp2::v3::AuthProtocol as A;
        match self {
            AuthProtocol::Md5 => A::Md5,
            AuthProtocol::Sha1 => A::Sha1,
            AuthProtocol::Sha224 => A::Sha224,
            AuthProtocol::Sha256 => A::Sha256,
            AuthProtocol::Sha384 => A::Sha384,
            AuthProtocol::Sha512 => A::Sha512,
        }
    }
}

/// SNMPv3 privacy (encryption) protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    /// CBC-DES (RFC 3414), for old devices only.
    Des,
    /// CFB128-AES-128 (RFC 3826).
    Aes128,
    /// CFB128-AES-192 (key extension per draft-blumenthal / Cisco "Reeder").
    Aes192,
    /// CFB128-AES-256.
    Aes256,
}

impl PrivProtocol {
    /// Parses `DES`, `AES` (= AES-128), `AES128`, `AES-192`, `AES256`, ... case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().replace('-', "").as_str() {
            "des" => PrivProtocol::Des,
            "aes" | "aes128" => PrivProtocol::Aes128,
            "aes192" => PrivProtocol::Aes192,
            "aes256" => PrivProtocol::Aes256,
            _ => return None,
        })
    }

    /// The config name (`AES`, ...), accepted by [`PrivProtocol::parse`].
    pub const fn name(self) -> &'static str {
        match self {
            PrivProtocol::Des => "DES",
            PrivProtocol::Aes128 => "AES",
            PrivProtocol::Aes192 => "AES-192",
            PrivProtocol::Aes256 => "AES-256",
        }
    }

    fn to_snmp2(self) -> snmp2::v3::Cipher {
        use snmp2::v3::Cipher as C;
        match self {
            PrivProtocol::Des => C::Des,
            PrivProtocol::Aes128 => C::Aes128,
            PrivProtocol::Aes192 => C::Aes192,
            PrivProtocol::Aes256 => C::Aes256,
        }
    }
}

/// SNMPv3 user-based security: the security level follows from what is set
/// (no `auth`: noAuthNoPriv; `auth` only: authNoPriv; both: authPriv).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Usm {
    /// USM user name.
    pub user: String,
    /// Authentication protocol and password.
    pub auth: Option<(AuthProtocol, String)>,
    /// Privacy protocol and password (requires `auth`).
    pub privacy: Option<(PrivProtocol, String)>,
    /// Context name (empty: the default context).
    pub context: String,
}

impl std::fmt::Debug for Usm {
    /// Never prints the passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usm")
            .field("user", &self.user)
            .field("auth", &self.auth.as_ref().map(|(p, _)| p))
            .field("privacy", &self.privacy.as_ref().map(|(p, _)| p))
            .field("context", &self.context)
            .finish()
    }
}

/// SNMPv3 credentials as written in a config file or on the command line, before validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsmParts<'a> {
    /// `user`
    pub user: Option<&'a str>,
    /// `auth_protocol` (default SHA-1 when a password is given)
    pub auth_protocol: Option<&'a str>,
    /// `auth_password`
    pub auth_password: Option<&'a str>,
    /// `priv_protocol` (default AES-128 when a password is given)
    pub priv_protocol: Option<&'a str>,
    /// `priv_password`
    pub priv_password: Option<&'a str>,
    /// `context`
    pub context: Option<&'a str>,
}

/// Unusable SNMPv3 credentials: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct UsmError {
    /// The field (`user`, `auth_protocol`, `auth_password`, `priv_protocol`, `priv_password`).
    pub field: &'static str,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl Usm {
    /// Validates credentials: user 1..=32 characters, passwords at least 8 characters (RFC 3414
    /// key localisation needs them), known protocols, privacy only with authentication.
    ///
    /// # Errors
    /// [`UsmError`] naming the first offending field.
    pub fn from_parts(parts: UsmParts<'_>) -> Result<Usm, UsmError> {
        let err = |field, reason: &str| UsmError {
            field,
            reason: reason.to_string(),
        };
        let user = match parts.user {
            Some(u) if !u.is_empty() && u.len() <= 32 => u.to_string(),
            Some(_) => return Err(err("user", "must be 1 to 32 characters")),
            None => return Err(err("user", "is required for SNMPv3")),
        };
        let password = |field, value: &str| {
            if value.len() < 8 {
                Err(err(
                    field,
                    "must be at least 8 characters (RFC 3414 keys need them)",
                ))
            } else {
                Ok(value.to_string())
            }
        };
        let auth = match (parts.auth_protocol, parts.auth_password) {
            (None, None) => None,
            (Some(_), None) => return Err(err("auth_password", "is required with auth_protocol")),
            (protocol, Some(pw)) => {
                let protocol = match protocol {
                    None => AuthProtocol::Sha1,
                    Some(p) => AuthProtocol::parse(p).ok_or_else(|| {
                        err(
                            "auth_protocol",
                            &format!("unknown protocol {p:?}; expected MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512"),
                        )
                    })?,
                };
                Some((protocol, password("auth_password", pw)?))
            }
        };
        let privacy = match (parts.priv_protocol, parts.priv_password) {
            (None, None) => None,
            (Some(_), None) => return Err(err("priv_password", "is required with priv_protocol")),
            (protocol, Some(pw)) => {
                if auth.is_none() {
                    return Err(err(
                        "priv_password",
                        "privacy needs authentication too: set auth_password",
                    ));
                }
                let protocol = match protocol {
                    None => PrivProtocol::Aes128,
                    Some(p) => PrivProtocol::parse(p).ok_or_else(|| {
                        err(
                            "priv_protocol",
                            &format!(
                                "unknown protocol {p:?}; expected DES, AES, AES-192 or AES-256"
                            ),
                        )
                    })?,
                };
                Some((protocol, password("priv_password", pw)?))
            }
        };
        Ok(Usm {
            user,
            auth,
            privacy,
            context: parts.context.unwrap_or_default().to_string(),
        })
    }

    /// The security level's name, as net-snmp spells it.
    pub fn level(&self) -> &'static str {
        match (&self.auth, &self.privacy) {
            (None, _) => "noAuthNoPriv",
            (Some(_), None) => "authNoPriv",
            (Some(_), Some(_)) => "authPriv",
        }
    }

    pub(crate) fn security(&self) -> snmp2::v3::Security {
        use snmp2::v3::{Auth, KeyExtension, Security};
        let (auth_protocol, auth_password) = match &self.auth {
            Some((p, pw)) => (p.to_snmp2(), pw.as_bytes()),
            None => (snmp2::v3::AuthProtocol::Md5, &[][..]),
        };
        let auth = match (&self.auth, &self.privacy) {
            (None, _) => Auth::NoAuthNoPriv,
            (Some(_), None) => Auth::AuthNoPriv,
            (Some(_), Some((cipher, pw))) => Auth::AuthPriv {
                cipher: cipher.to_snmp2(),
                privacy_password: pw.as_bytes().to_vec(),
            },
        };
        let mut security = Security::new(self.user.as_bytes(), auth_password)
            .with_auth(auth)
            .with_auth_protocol(auth_protocol);
        if let Some((cipher, _)) = &self.privacy {
            if cipher.to_snmp2().priv_key_needs_extension(&auth_protocol) {
                // The Blumenthal extension is what net-snmp and most agents implement.
                security = security.with_key_extension_method(KeyExtension::Blumenthal);
            }
        }
        if !self.context.is_empty() {
            security = security.with_context_name(&self.context);
        }
        security
    }
}

/// Where and how to reach one agent. Its `Debug` never prints the community.
#[derive(Clone)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// UDP port (161 on real devices).
    pub port: u16,
    /// Protocol version.
    pub version: Version,
    /// Community string (v1/v2c).
    pub community: String,
    /// User-based security (v3; required when `version` is [`Version::V3`]). Boxed: most
    /// devices have none, and a collector holds a target per device.
    pub usm: Option<Box<Usm>>,
}

impl std::fmt::Debug for Target {
    /// Never prints the community (a credential on v1/v2c).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("version", &self.version)
            .field("community", &"***")
            .field("usm", &self.usm)
            .finish()
    }
}

impl Target {
    /// The same device in SNMP context `context`: the v3 contextName, or for v1/v2c the
    /// `community@context` convention of Cisco and HP agents (and snmpsim).
    pub fn in_context(&self, context: &str) -> Target {
        let mut t = self.clone();
        match (&self.version, &mut t.usm) {
            (Version::V3, Some(usm)) => usm.context = context.to_string(),
            _ => t.community = format!("{}@{context}", self.community),
        }
        t
    }
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
    /// SNMPv3 authentication failed: unknown user, wrong password or protocol, or an agent that
    /// does not accept the security level. Not retried: retrying a wrong password helps nobody.
    #[error("SNMPv3 authentication failed ({0}): check the user, passwords and protocols")]
    Auth(String),
    /// The target is configured inconsistently (e.g. v3 without credentials).
    #[error("invalid target: {0}")]
    Config(&'static str),
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
pub(crate) struct Response {
    error_status: u32,
    error_index: u32,
    /// In the order of the response; `None` for a value devtel does not represent (it still
    /// holds its place: a GetBulk's varbinds are told apart by position).
    varbinds: Vec<(Oid, Option<Value>)>,
}

/// One request to send.
enum Op {
    Get(Vec<Oid>),
    GetNext(Oid),
    /// One varbind per subtree, `u32` repetitions of each.
    GetBulk(Vec<Oid>, u32),
}

/// A client bound to one agent. Not shared: one device poll owns one client.
pub struct Client {
    target: Target,
    addr: SocketAddr,
    opts: Options,
    session: Option<AsyncSession>,
    /// The collector's shared socket for v1/v2c (see [`Client::over`]).
    transport: Option<Arc<Transport>>,
    next_req_id: i32,
    /// SNMPv3: the engine answered discovery.
    v3_discovered: bool,
    /// SNMPv3: an authenticated (and, with privacy, encrypted) request got an answer.
    v3_confirmed: bool,
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
        // The process id once per process, not a getpid per poll.
        static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let pid = *PID.get_or_init(std::process::id);
        let next_req_id = ((seed ^ pid) & 0x3fff_ffff) as i32;
        Ok(Client {
            target,
            addr,
            opts,
            session: None,
            transport: None,
            next_req_id,
            v3_discovered: false,
            v3_confirmed: false,
        })
    }

    /// Sends v1/v2c requests through `transport`, the collector's one socket, instead of a
    /// socket of this client's own. Only a request's last attempt, once the earlier ones went
    /// unanswered, goes out of a socket connected to the agent: it alone hears an ICMP
    /// refusal, which tells a host without SNMP (a network error) from a silent one.
    pub fn over(mut self, transport: Arc<Transport>) -> Self {
        if self.target.version != Version::V3 {
            self.transport = Some(transport);
        }
        self
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
                    Version::V3 => {
                        let usm = self
                            .target
                            .usm
                            .as_ref()
                            .ok_or(SnmpError::Config("SNMPv3 target without user"))?;
                        let mut session =
                            AsyncSession::new_v3(self.addr, req_id, usm.security()).await?;
                        self.discover(&mut session).await?;
                        session
                    }
                }
            }
        };
        Ok(self.session.insert(session))
    }

    /// SNMPv3 engine discovery on a fresh session, with the same timeout and retries as any
    /// request.
    async fn discover(&mut self, session: &mut AsyncSession) -> Result<(), SnmpError> {
        let attempts = self.opts.retries + 1;
        for attempt in 1..=attempts {
            match tokio::time::timeout(self.opts.timeout, session.init()).await {
                Ok(Ok(())) => {
                    self.v3_discovered = true;
                    return Ok(());
                }
                Ok(Err(snmp2::Error::AuthFailure(kind))) => {
                    return Err(SnmpError::Auth(kind.to_string()))
                }
                Ok(Err(snmp2::Error::Receive | snmp2::Error::Send)) => {
                    return Err(SnmpError::Network(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("{} refused or unreachable", self.addr),
                    )))
                }
                Ok(Err(e)) => return Err(SnmpError::Protocol(e)),
                Err(_) => debug!(addr = %self.addr, attempt, "SNMPv3 discovery timed out"),
            }
        }
        Err(SnmpError::Timeout {
            attempts,
            timeout: self.opts.timeout,
        })
    }

    async fn exchange(&mut self, op: &Op) -> Result<Response, SnmpError> {
        let attempts = self.opts.retries + 1;
        for attempt in 1..=attempts {
            let timeout = self.opts.timeout;
            if let Some(transport) = self.transport.clone() {
                if attempt < attempts || attempts == 1 {
                    match self.exchange_shared(&transport, op, timeout).await? {
                        Some(response) => return Ok(response),
                        None => {
                            debug!(addr = %self.addr, attempt, "SNMP request timed out");
                            continue;
                        }
                    }
                }
            }
            let session = self.session().await?;
            match tokio::time::timeout(timeout, exchange_once(session, op)).await {
                Ok(Ok(response)) => {
                    self.v3_confirmed = true;
                    return Ok(response);
                }
                Ok(Err(snmp2::Error::RequestIdMismatch)) | Err(_) => {
                    debug!(addr = %self.addr, attempt, "SNMP request timed out");
                    self.session = None;
                }
                // SNMPv3: the agent re-synchronised boots/time (a notInTimeWindow report);
                // snmp2 has taken the new values, so the request is simply sent again.
                Ok(Err(snmp2::Error::AuthUpdated)) => {
                    debug!(addr = %self.addr, attempt, "SNMPv3 engine time re-synchronised");
                }
                Ok(Err(snmp2::Error::AuthFailure(kind))) => {
                    self.session = None;
                    return Err(SnmpError::Auth(kind.to_string()));
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
        // An agent that answers engine discovery but never an encrypted request is dropping
        // what it cannot decrypt (net-snmp does so silently): say so instead of "no response".
        let encrypted = self
            .target
            .usm
            .as_ref()
            .is_some_and(|u| u.privacy.is_some());
        if encrypted && self.v3_discovered && !self.v3_confirmed {
            return Err(SnmpError::Auth(
                "the agent answered engine discovery but no encrypted request: \
                 wrong privacy password or protocol"
                    .into(),
            ));
        }
        Err(SnmpError::Timeout {
            attempts,
            timeout: self.opts.timeout,
        })
    }

    /// One attempt of `op` through the shared socket: `None` when unanswered in `timeout`.
    async fn exchange_shared(
        &mut self,
        transport: &Transport,
        op: &Op,
        timeout: Duration,
    ) -> Result<Option<Response>, SnmpError> {
        let version = match self.target.version {
            Version::V1 => 0,
            Version::V2c => 1,
            Version::V3 => return Err(SnmpError::Config("SNMPv3 over the shared socket")),
        };
        let id = transport.next_id();
        let community = self.target.community.as_bytes();
        let request = match op {
            Op::Get(oids) => {
                let parts: Vec<&[u32]> = oids.iter().map(Oid::as_slice).collect();
                ber::request(version, community, ber::GET, id, (0, 0), &parts)
            }
            Op::GetNext(oid) => ber::request(
                version,
                community,
                ber::GET_NEXT,
                id,
                (0, 0),
                &[oid.as_slice()],
            ),
            Op::GetBulk(oids, repetitions) => {
                let parts: Vec<&[u32]> = oids.iter().map(Oid::as_slice).collect();
                let reps = i64::from(*repetitions);
                ber::request(version, community, ber::GET_BULK, id, (0, reps), &parts)
            }
        };
        let Some(reply) = transport.exchange(self.addr, id, &request, timeout).await? else {
            return Ok(None);
        };
        let pdu = snmp2::Pdu::from_bytes(&reply).map_err(SnmpError::Protocol)?;
        if pdu.message_type != snmp2::MessageType::Response {
            return Err(SnmpError::Protocol(snmp2::Error::AsnWrongType));
        }
        if pdu.community != community {
            return Err(SnmpError::Protocol(snmp2::Error::CommunityMismatch));
        }
        response_from_pdu(&pdu)
            .map(Some)
            .map_err(SnmpError::Protocol)
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
            let response = self.exchange(&Op::Get(pending.clone())).await?;
            match (response.error_status, response.error_index) {
                (0, _) => {
                    for (oid, value) in response.varbinds {
                        if let Some(value) = value {
                            out.insert(oid, value);
                        }
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
            let op = match self.target.version {
                Version::V1 => Op::GetNext(last.clone()),
                Version::V2c | Version::V3 => Op::GetBulk(vec![last.clone()], repetitions),
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
                if value == Some(Value::EndOfMibView) || !oid.starts_with(root) {
                    return Ok(collected);
                }
                if oid <= last {
                    warn!(addr = %self.addr, %oid, previous = %last, "agent returned an OID that does not increase; walk stopped");
                    return Ok(collected);
                }
                last = oid.clone();
                collected += 1;
                if let Some(value) = value {
                    out.insert(oid, value);
                }
                if collected >= self.opts.max_rows {
                    warn!(addr = %self.addr, %root, collected, "walk stopped at the row cap");
                    return Ok(collected);
                }
            }
        }
    }

    /// Walks the subtrees under `roots` together and returns how many varbinds it collected.
    ///
    /// On v2c and v3 every GetBulk carries one varbind per unfinished subtree, and the
    /// repetitions are shared out so that an answer holds at most `max_repetitions` varbinds,
    /// as a walk of one subtree does: a copier's plan (13 tables, most of them a few rows) takes
    /// about 4 requests instead of 16. The answer's varbinds are row by row (RFC 3416 §4.2.3),
    /// so the k-th belongs to subtree k mod n; a subtree is finished at its first varbind
    /// outside it or at endOfMibView. An agent that refuses one subtree (an error-status
    /// naming its varbind) ends that subtree only, as the walks of one subtree did; tooBig
    /// halves the repetitions. On v1 (no GetBulk) the subtrees are walked one by one.
    ///
    /// # Errors
    /// Timeouts, network failures, malformed responses, and PDU errors that name no varbind.
    /// What was collected before the error stays in `out`.
    pub async fn walk_all(
        &mut self,
        roots: &[Oid],
        out: &mut VarbindSet,
    ) -> Result<usize, SnmpError> {
        if self.target.version == Version::V1 {
            let mut total = 0;
            for root in roots {
                match self.walk(root, out).await {
                    Ok(n) => total += n,
                    Err(SnmpError::ErrorStatus { status, index }) => {
                        debug!(%root, status, index, "subtree rejected")
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok(total);
        }
        struct Subtree<'a> {
            root: &'a Oid,
            last: Oid,
            collected: usize,
            done: bool,
        }
        let mut subtrees: Vec<Subtree<'_>> = roots
            .iter()
            .map(|root| Subtree {
                root,
                last: root.clone(),
                collected: 0,
                done: false,
            })
            .collect();
        let mut budget = self.opts.max_repetitions.max(1) as usize;
        let mut total = 0;
        loop {
            let batch: Vec<usize> = (0..subtrees.len())
                .filter(|&i| !subtrees[i].done)
                .take(budget)
                .collect();
            if batch.is_empty() {
                return Ok(total);
            }
            let repetitions = u32::try_from((budget / batch.len()).max(1)).unwrap_or(1);
            let from = batch.iter().map(|&i| subtrees[i].last.clone()).collect();
            let response = self.exchange(&Op::GetBulk(from, repetitions)).await?;
            match (response.error_status, response.error_index as usize) {
                (0, _) => {}
                (1, _) if budget > 1 => {
                    budget /= 2;
                    continue;
                }
                (status, index) if (1..=batch.len()).contains(&index) => {
                    let rejected = &mut subtrees[batch[index - 1]];
                    debug!(root = %rejected.root, status, index, "subtree rejected");
                    rejected.done = true;
                    continue;
                }
                (status, index) => {
                    return Err(SnmpError::ErrorStatus {
                        status,
                        index: index as u32,
                    })
                }
            }
            if response.varbinds.is_empty() {
                for &i in &batch {
                    subtrees[i].done = true;
                }
                continue;
            }
            for (k, (oid, value)) in response.varbinds.into_iter().enumerate() {
                let subtree = &mut subtrees[batch[k % batch.len()]];
                if subtree.done {
                    continue;
                }
                if value == Some(Value::EndOfMibView) || !oid.starts_with(subtree.root) {
                    subtree.done = true;
                    continue;
                }
                if oid <= subtree.last {
                    warn!(addr = %self.addr, %oid, previous = %subtree.last, "agent returned an OID that does not increase; walk stopped");
                    subtree.done = true;
                    continue;
                }
                subtree.last = oid.clone();
                // Counted whether kept or not, so that no table is endless.
                subtree.collected += 1;
                if let Some(value) = value {
                    out.insert(oid, value);
                    total += 1;
                }
                if subtree.collected >= self.opts.max_rows {
                    warn!(addr = %self.addr, root = %subtree.root, collected = subtree.collected, "walk stopped at the row cap");
                    subtree.done = true;
                }
            }
        }
    }
}

async fn exchange_once(session: &mut AsyncSession, op: &Op) -> Result<Response, snmp2::Error> {
    let convert = |oids: &[Oid]| {
        oids.iter()
            .map(to_snmp2)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| snmp2::Error::AsnParse)
    };
    let pdu = match op {
        Op::Get(oids) => {
            let oids = convert(oids)?;
            let refs: Vec<&snmp2::Oid<'_>> = oids.iter().collect();
            session.get_many(&refs).await?
        }
        Op::GetNext(oid) => {
            let oid = to_snmp2(oid).map_err(|_| snmp2::Error::AsnParse)?;
            session.getnext(&oid).await?
        }
        Op::GetBulk(oids, reps) => {
            let oids = convert(oids)?;
            let refs: Vec<&snmp2::Oid<'_>> = oids.iter().collect();
            session.getbulk(&refs, 0, *reps).await?
        }
    };
    response_from_pdu(&pdu)
}

/// Converts a decoded PDU to owned data. (snmp2 decodes varbinds lazily and its iterator ends
/// at the first varbind it cannot decode, without saying so; its reader state is private, so
/// such a reply reads as a shorter answer. A walk then continues from the last OID it got.)
pub(crate) fn response_from_pdu(pdu: &snmp2::Pdu<'_>) -> Result<Response, snmp2::Error> {
    let mut varbinds = Vec::new();
    for (name, value) in pdu.varbinds.clone() {
        let Some(oid) = from_snmp2(&name) else {
            return Err(snmp2::Error::AsnParse);
        };
        varbinds.push((oid, convert(value)));
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
    oid.iter()?.map(|p| u32::try_from(p).ok()).collect()
}

fn convert(value: snmp2::Value<'_>) -> Option<Value> {
    use snmp2::Value as S;
    Some(match value {
        S::Integer(v) => Value::Integer(v),
        S::OctetString(b) => Value::OctetString(b.to_vec()),
        S::ObjectIdentifier(o) => Value::ObjectId(Box::new(from_snmp2(&o)?)),
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

#[cfg(test)]
mod hostile_replies {
    //! Garbage and truncated replies: the client returns an error or data, never panics, never
    //! hangs past its timeout.

    use super::*;
    use crate::sim::Agents;
    use crate::snmp::oid;
    use proptest::prelude::*;
    use std::sync::Arc;
    use tokio::net::UdpSocket;

    fn agents() -> Arc<Agents> {
        let mut vb = VarbindSet::new();
        vb.insert(
            oid("1.3.6.1.2.1.1.1.0"),
            Value::OctetString(b"hostile test".to_vec()),
        );
        vb.insert(oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(4242));
        vb.insert(oid("1.3.6.1.2.1.43.11.1.1.9.1.1"), Value::Integer(-3));
        let mut a = Agents::default();
        a.insert("public", vb);
        Arc::new(a)
    }

    /// An agent that answers every request with `mutate(valid answer)`.
    async fn hostile_agent(
        mutate: impl Fn(Vec<u8>) -> Vec<u8> + Send + 'static,
    ) -> (u16, tokio::task::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let agents = agents();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(valid) = agents.respond(&buf[..n]) {
                    let _ = socket.send_to(&mutate(valid), peer).await;
                }
            }
        });
        (port, task)
    }

    async fn poll(port: u16, version: Version) -> Result<VarbindSet, SnmpError> {
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            version,
            community: "public".into(),
            usm: None,
        };
        let opts = Options {
            timeout: Duration::from_millis(200),
            retries: 0,
            ..Options::default()
        };
        let mut client = Client::new(target, opts).await?;
        let mut vb = VarbindSet::new();
        client
            .get(
                &[oid("1.3.6.1.2.1.1.1.0"), oid("1.3.6.1.2.1.1.3.0")],
                &mut vb,
            )
            .await?;
        client.walk(&oid("1.3.6.1.2.1.43"), &mut vb).await?;
        Ok(vb)
    }

    #[tokio::test]
    async fn the_unmodified_agent_answers() {
        let (port, task) = hostile_agent(|v| v).await;
        for version in [Version::V1, Version::V2c] {
            let vb = poll(port, version).await.unwrap();
            assert_eq!(
                vb.get(&oid("1.3.6.1.2.1.1.3.0")),
                Some(&Value::TimeTicks(4242))
            );
            assert_eq!(
                vb.get(&oid("1.3.6.1.2.1.43.11.1.1.9.1.1")),
                Some(&Value::Integer(-3))
            );
        }
        task.abort();
    }

    #[tokio::test]
    async fn every_truncation_of_a_reply_is_an_error_not_a_panic() {
        // The longest real reply of a poll, learnt from the unmodified agent.
        let longest = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = longest.clone();
        let (port, task) = hostile_agent(move |v| {
            seen.fetch_max(v.len(), std::sync::atomic::Ordering::Relaxed);
            v
        })
        .await;
        poll(port, Version::V2c).await.unwrap();
        task.abort();
        let len = longest.load(std::sync::atomic::Ordering::Relaxed);
        assert!(len > 40, "{len}");
        for cut in 0..len {
            let (port, task) = hostile_agent(move |mut v| {
                v.truncate(cut.min(v.len().saturating_sub(1)));
                v
            })
            .await;
            let started = std::time::Instant::now();
            let result = poll(port, Version::V2c).await;
            assert!(
                result.is_err(),
                "a reply cut at {cut} bytes decoded: {result:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "cut {cut}: hung"
            );
            task.abort();
        }
    }

    #[tokio::test]
    async fn flipped_bytes_give_errors_or_data_never_a_panic() {
        for pos in 0..90usize {
            for val in [0x00u8, 0xff, 0x80, 0x7f] {
                let (port, task) = hostile_agent(move |mut v| {
                    if let Some(b) = v.get_mut(pos) {
                        *b = val;
                    }
                    v
                })
                .await;
                let started = std::time::Instant::now();
                // Either outcome is fine; what matters is no panic and no hang.
                let _ = poll(port, Version::V2c).await;
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "pos {pos}: hung"
                );
                task.abort();
            }
        }
    }

    #[tokio::test]
    async fn random_datagrams_are_errors() {
        let (port, task) = hostile_agent(|v| {
            // Same length, pseudo-random content derived from the valid reply.
            v.iter()
                .enumerate()
                .map(|(i, b)| b.wrapping_mul(31).wrapping_add(i as u8).rotate_left(3))
                .collect()
        })
        .await;
        assert!(poll(port, Version::V2c).await.is_err());
        task.abort();
        let (port, task) = hostile_agent(|_| Vec::new()).await;
        assert!(poll(port, Version::V1).await.is_err());
        task.abort();
        // A reply that claims a 4 GiB length.
        let (port, task) =
            hostile_agent(|_| vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01]).await;
        assert!(poll(port, Version::V2c).await.is_err());
        task.abort();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The decoding path of every reply (snmp2's parser plus devtel's conversion) on
        /// arbitrary bytes.
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(pdu) = snmp2::Pdu::from_bytes(&bytes) {
                let _ = response_from_pdu(&pdu);
            }
        }
    }
}

#[cfg(test)]
mod context_tests {
    use super::*;

    #[test]
    fn a_context_is_the_community_suffix_on_v2c_and_the_context_name_on_v3() {
        let v2 = Target {
            host: "h".into(),
            port: 161,
            version: Version::V2c,
            community: "public".into(),
            usm: None,
        };
        assert_eq!(v2.in_context("Jetdirect").community, "public@Jetdirect");
        let v3 = Target {
            version: Version::V3,
            usm: Some(Box::new(Usm {
                user: "u".into(),
                auth: None,
                privacy: None,
                context: String::new(),
            })),
            ..v2
        };
        let in_ctx = v3.in_context("vlan-10");
        assert_eq!(in_ctx.usm.unwrap().context, "vlan-10");
        assert_eq!(in_ctx.community, "public", "v3 leaves the community alone");
    }
}
