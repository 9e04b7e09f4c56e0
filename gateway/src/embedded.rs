//! The MQTT broker inside the gateway (`broker = "embedded"`), from the rmqtt crate: the
//! collectors connect to it as to Mosquitto, and so does the gateway itself, over loopback.
//!
//! Who may do what is decided by the pure rules of [`crate::broker_access`] (the same as the
//! Mosquitto ACL that `broker-access` writes): a site's user publishes its own telemetry and
//! status and reads its own acknowledgements, an integrator reads the documents, the gateway
//! (authenticated by a secret made at start, never written anywhere) reads everything in
//! and publishes acknowledgements and documents. Without a password file the broker takes
//! anonymous clients on loopback only, without topic checks (one box, the demo).
//!
//! Everything the network can grow is bounded: connections, packet size, subscriptions and
//! queued messages per client, retained messages; what is refused is counted ([`Stats`])
//! and logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::net::Builder;
use rmqtt::retain::{DefaultRetainStorage, RetainStorage};
use rmqtt::server::MqttServer;
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    AuthResult, ClientId, Id, IsOnline, NodeId, PublishAclResult, Retain, SharedGroup,
    SubscribeAclResult, SubscriptionIdentifier, SubscriptionOptions, TopicFilter, TopicName,
};
use tracing::{info, warn};

use crate::broker_access::{may_publish, may_subscribe, may_use_discovery, Passwords, Role};

/// The validated `[embedded_broker]` section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Plain MQTT listener.
    pub listen: Option<SocketAddr>,
    /// MQTT over TLS: address, certificate chain (PEM), private key (PEM).
    pub tls: Option<(SocketAddr, PathBuf, PathBuf)>,
    /// Users and their hashes; `None`: anonymous clients, on loopback only.
    pub passwords: Option<Passwords>,
    /// The sites (their ids are their user names).
    pub sites: Vec<String>,
    /// The gateway's own user name.
    pub gateway_user: String,
    /// Most client connections at once, per listener.
    pub max_connections: usize,
    /// Largest packet taken.
    pub max_packet_bytes: u32,
    /// Most messages queued for one client (offline or slow).
    pub max_queued: usize,
    /// Most subscriptions of one client.
    pub max_subscriptions: usize,
    /// Most retained messages.
    pub max_retained: usize,
    /// Home Assistant's discovery prefix, when the gateway publishes discovery configs
    /// there (integrators may read it).
    pub discovery_prefix: Option<String>,
}

/// What the broker refused, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections refused for a wrong or missing user or password.
    pub connects_refused: AtomicU64,
    /// Publishes refused by the topic rules.
    pub publishes_refused: AtomicU64,
    /// Subscriptions refused by the topic rules.
    pub subscribes_refused: AtomicU64,
    /// Retained messages not kept because `max_retained` were kept already.
    pub retained_refused: AtomicU64,
}

/// A started broker.
#[derive(Debug)]
pub struct Running {
    /// Where the gateway's own client connects (loopback).
    pub local: SocketAddr,
    /// The gateway's user and the secret it logs in with.
    pub credentials: (String, devtel_daemon::mqtt::Secret),
    /// What was refused.
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the listeners and every connection (after the gateway's own client is done).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        info!("embedded broker stopped");
    }
}

/// A failure starting the broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound or its TLS files are unusable.
    #[error("embedded broker listener {addr}: {reason}")]
    Listener {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// No random bytes for the gateway's secret.
    #[error("the system random generator failed")]
    Random,
}

/// Starts the broker's listeners; returns once they are bound.
///
/// # Errors
/// [`StartError`].
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let secret = {
        let mut bytes = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| StartError::Random)?;
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let stats = Arc::new(Stats::default());
    let scx = ServerContext::new()
        .mqtt_max_sessions(
            isize::try_from(settings.max_connections.saturating_mul(2)).unwrap_or(isize::MAX),
        )
        .build()
        .await;
    *scx.extends.retain_mut().await = Box::new(BoundedRetain {
        inner: DefaultRetainStorage::new(),
        max: settings.max_retained,
        stats: stats.clone(),
    });
    *scx.extends.shared_subscription_mut().await = Box::new(RoundRobin(AtomicUsize::new(0)));
    let register = scx.extends.hook_mgr().register();
    let access = Arc::new(Access {
        passwords: settings.passwords.clone(),
        sites: settings.sites.clone(),
        gateway_user: settings.gateway_user.clone(),
        discovery: settings.discovery_prefix.clone(),
        secret: secret.clone(),
        stats: stats.clone(),
    });
    for typ in [
        Type::ClientAuthenticate,
        Type::MessagePublishCheckAcl,
        Type::ClientSubscribeCheckAcl,
    ] {
        register.add(typ, Box::new(Hook(access.clone()))).await;
    }
    register.start().await;

    let anonymous = settings.passwords.is_none();
    let builder = |name: &str, addr: SocketAddr| {
        Builder::new()
            .name(name)
            .laddr(addr)
            .reuseaddr(Some(true))
            .allow_anonymous(anonymous)
            .max_connections(settings.max_connections)
            .max_packet_size(settings.max_packet_bytes)
            .max_mqueue_len(settings.max_queued)
            .max_subscriptions(settings.max_subscriptions)
            .max_inflight(std::num::NonZeroU16::new(256).unwrap_or(std::num::NonZeroU16::MIN))
            .session_expiry_interval(Duration::from_secs(2 * 3600))
            .max_session_expiry_interval(Duration::from_secs(24 * 3600))
            .message_expiry_interval(Duration::from_secs(24 * 3600))
    };
    let failed = |addr: SocketAddr| {
        move |e: rmqtt::Error| StartError::Listener {
            addr,
            reason: e.to_string(),
        }
    };
    let mut server = MqttServer::new(scx);
    let mut local = None;
    if let Some(addr) = settings.listen {
        let l = builder("tcp", addr)
            .bind()
            .and_then(|l| l.tcp())
            .map_err(failed(addr))?;
        server = server.listener(l);
        local = loopback_of(addr);
    }
    if let Some((addr, cert, key)) = &settings.tls {
        let l = builder("tls", *addr)
            .tls_cert(Some(cert.display().to_string()))
            .tls_key(Some(key.display().to_string()))
            .bind()
            .and_then(|l| l.tls())
            .map_err(failed(*addr))?;
        server = server.listener(l);
    }
    let local = match local {
        Some(local) => local,
        None => {
            // No plain listener the gateway can reach over loopback: one of its own.
            let addr = free_loopback_port().map_err(|e| StartError::Listener {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                reason: e.to_string(),
            })?;
            let l = builder("internal", addr)
                .bind()
                .and_then(|l| l.tcp())
                .map_err(failed(addr))?;
            server = server.listener(l);
            addr
        }
    };
    let server = server.build();
    let task = tokio::spawn(async move {
        if let Err(error) = server.run().await {
            warn!(%error, "embedded broker stopped");
        }
    });
    info!(
        listen = ?settings.listen,
        tls = ?settings.tls.as_ref().map(|t| t.0),
        users = settings.passwords.as_ref().map(|p| p.users().count()),
        "embedded broker started"
    );
    Ok(Running {
        local,
        credentials: (
            settings.gateway_user,
            devtel_daemon::mqtt::Secret::new(secret),
        ),
        stats,
        task,
    })
}

/// The loopback address that reaches a listener on `addr`, if any.
fn loopback_of(addr: SocketAddr) -> Option<SocketAddr> {
    let ip = addr.ip();
    if ip.is_loopback() {
        Some(addr)
    } else if ip.is_unspecified() {
        let lo: std::net::IpAddr = if ip.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        Some(SocketAddr::new(lo, addr.port()))
    } else {
        None
    }
}

fn free_loopback_port() -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    probe.local_addr()
}

/// Authentication and the topic rules.
struct Access {
    passwords: Option<Passwords>,
    sites: Vec<String>,
    gateway_user: String,
    discovery: Option<String>,
    secret: String,
    stats: Arc<Stats>,
}

impl Access {
    /// The role of a logged-in user; `None`: anonymous (no topic checks).
    fn role(&self, user: Option<&str>) -> Option<Role> {
        user.map(|u| Role::of(u, &self.gateway_user, &self.sites))
    }

    /// Whether `user` may publish to the topic (`write`) or subscribe to the filter: the
    /// rules of [`crate::broker_access`], Home Assistant's prefix included.
    fn allows(&self, user: Option<&str>, topic: &str, write: bool) -> bool {
        let Some(role) = self.role(user) else {
            return true;
        };
        let rule = if write { may_publish } else { may_subscribe };
        rule(&role, topic) || may_use_discovery(&role, self.discovery.as_deref(), topic, write)
    }

    fn authenticate(&self, user: Option<&str>, password: Option<&[u8]>) -> bool {
        match (user, password) {
            (Some(u), Some(p)) if u == self.gateway_user => same_secret(p, self.secret.as_bytes()),
            (Some(u), Some(p)) => self.passwords.as_ref().is_some_and(|pw| pw.verify(u, p)),
            // Anonymous clients only without a password file (on loopback listeners).
            (None, _) => self.passwords.is_none(),
            (Some(_), None) => false,
        }
    }
}

/// One registration of [`Access`] per hook type.
struct Hook(Arc<Access>);

impl std::ops::Deref for Hook {
    type Target = Access;
    fn deref(&self) -> &Access {
        &self.0
    }
}

/// Equality of two byte strings in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[async_trait]
impl Handler for Hook {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(info) => {
                let user = info.username().map(|u| u.as_ref());
                let password = info.password().map(|p| p.as_ref());
                if self.authenticate(user, password) {
                    (
                        false,
                        Some(HookResult::AuthResult(AuthResult::Allow(false, None))),
                    )
                } else {
                    self.stats.connects_refused.fetch_add(1, Ordering::Relaxed);
                    warn!(user = user.unwrap_or(""), remote = ?info.id().remote_addr, "broker: connection refused (user or password)");
                    (
                        false,
                        Some(HookResult::AuthResult(AuthResult::BadUsernameOrPassword)),
                    )
                }
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let user = session.id.username.as_ref().map(|u| u.as_ref());
                let allowed = self.allows(user, &publish.topic, true);
                if allowed {
                    (
                        false,
                        Some(HookResult::PublishAclResult(PublishAclResult::allow())),
                    )
                } else {
                    self.stats.publishes_refused.fetch_add(1, Ordering::Relaxed);
                    warn!(user = user.unwrap_or(""), topic = %publish.topic, "broker: publish refused (not this user's topic)");
                    (
                        false,
                        Some(HookResult::PublishAclResult(PublishAclResult::rejected(
                            false, None,
                        ))),
                    )
                }
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let user = session.id.username.as_ref().map(|u| u.as_ref());
                let allowed = self.allows(user, &subscribe.topic_filter, false);
                if allowed {
                    let ok = SubscribeAclResult::new_success(subscribe.opts.qos(), None);
                    (false, Some(HookResult::SubscribeAclResult(ok)))
                } else {
                    self.stats
                        .subscribes_refused
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(user = user.unwrap_or(""), filter = %subscribe.topic_filter, "broker: subscription refused (not this user's topics)");
                    let no = SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized);
                    (false, Some(HookResult::SubscribeAclResult(no)))
                }
            }
            _ => (true, acc),
        }
    }
}

/// rmqtt's in-memory retained tree, with a bound on the number of messages.
struct BoundedRetain {
    inner: DefaultRetainStorage,
    max: usize,
    stats: Arc<Stats>,
}

#[async_trait]
impl RetainStorage for BoundedRetain {
    fn enable(&self) -> bool {
        true
    }

    fn need_sync(&self) -> bool {
        false
    }

    async fn set(
        &self,
        topic: &TopicName,
        retain: Retain,
        expiry_interval: Option<Duration>,
    ) -> rmqtt::Result<()> {
        let count = usize::try_from(RetainStorage::count(&self.inner).await).unwrap_or(0);
        if !retain.publish.payload.is_empty() && count >= self.max {
            let exists = !self.inner.get_message(topic).await?.is_empty();
            if !exists {
                self.stats.retained_refused.fetch_add(1, Ordering::Relaxed);
                warn!(%topic, max = self.max, "broker: retained message not kept (max_retained reached)");
                return Ok(());
            }
        }
        self.inner
            .set_with_timeout(topic, retain, expiry_interval)
            .await
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        self.inner.get_message(topic_filter).await
    }

    async fn count(&self) -> isize {
        RetainStorage::count(&self.inner).await
    }

    async fn max(&self) -> isize {
        RetainStorage::max(&self.inner).await
    }
}

/// `$share/{group}/...`: each message to one online member of the group, in turn.
struct RoundRobin(AtomicUsize);

#[async_trait]
impl SharedSubscription for RoundRobin {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _scx: &ServerContext,
        _group: &SharedGroup,
        _publisher_id: &Id,
        _topic: &TopicName,
        ncs: &[(
            NodeId,
            ClientId,
            SubscriptionOptions,
            Option<Vec<SubscriptionIdentifier>>,
            Option<IsOnline>,
        )],
    ) -> Option<(usize, IsOnline)> {
        let turn = self.0.fetch_add(1, Ordering::Relaxed);
        let online: Vec<usize> = (0..ncs.len())
            .filter(|&i| ncs[i].4.unwrap_or(true))
            .collect();
        if online.is_empty() {
            // Nobody online: queue for one of them (its session keeps it, bounded).
            return (!ncs.is_empty()).then(|| (turn % ncs.len(), false));
        }
        Some((online[turn % online.len()], true))
    }
}
