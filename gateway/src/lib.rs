//! devtel gateway: subscribes to collector telemetry, aggregates it per administrative unit,
//! publishes retained JSON unit documents for MQTT integrators and serves an HTTP API.
//!
//! # Layout
//! - [`config`]: the TOML file, validated into [`config::Config`].
//! - [`aggregate`]: the I/O-free aggregator and the JSON documents derived from it.
//! - [`units`], [`calendar`]: the administrative hierarchy; local days and working hours.
//! - [`meter`], [`ledger`]: counter deltas and per-device history figures (I/O-free).
//! - [`ingest`]: checks of an MQTT message, with counted rejections.
//! - [`store`]: the durable SQLite store every figure is rebuilt from.
//! - [`batch`]: the I/O-free plan of a batch: check, acknowledgements, dead-letter copies.
//! - [`mqtt`]: receive, commit, apply, acknowledge (to the broker and to the collectors);
//!   dead letters; retained documents.
//! - [`deliveries`]: which envelopes arrived per collector and epoch (repeats, missing ones).
//! - [`http`]: the HTTP API and `/metrics` (see `docs/api.md`).
//!
//! [`run`] starts the MQTT and HTTP sides on a shared [`Shared`] state and stops both on
//! the shutdown token.

pub mod aggregate;
pub mod backend;
pub mod batch;
pub mod broker_access;
pub mod calendar;
pub mod config;
pub mod dashboard;
pub mod deliveries;
pub mod delta;
pub mod descriptions;
pub mod embedded;
pub mod events;
pub mod guard;
pub mod ha;
pub mod http;
pub mod ingest;
pub mod lease;
pub mod ledger;
pub mod meter;
pub mod metrics;
pub mod mqtt;
pub mod pack;
#[doc(hidden)]
pub mod pg_harness;
pub mod pgstore;
pub mod pricing;
pub mod report;
pub mod sites;
pub mod span;
pub mod store;
#[cfg(test)]
mod testdata;
pub mod units;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::aggregate::Aggregator;
use crate::backend::Backend;
use crate::config::Config;
use crate::ingest::IngestStats;
use crate::store::Store;
use crate::units::Units;

/// State shared by the MQTT and HTTP sides. The mutex is a std one: nothing awaits while
/// holding it, and every critical section is a short in-memory update or read.
#[derive(Debug, Default)]
pub struct Shared {
    /// Per-device state and unit rollups: changed by ingest ([`Shared::write`]), read from
    /// copies ([`Shared::read`]).
    aggregator: Mutex<Aggregator>,
    /// The copy readers share while one of them holds it, and the number of changes it
    /// reflects.
    view: Mutex<(u64, std::sync::Weak<Aggregator>)>,
    /// Changes made through [`Shared::write`] (counted under the aggregator's lock).
    changes: std::sync::atomic::AtomicU64,
    /// Ingest counters.
    pub stats: IngestStats,
    /// Whether the MQTT connection is up (for `/healthz`).
    pub mqtt_connected: AtomicBool,
    /// The latest retained status of every collector site (`devtel/v1/collectors/{site}`).
    pub collectors: Mutex<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The configured units (also inside the aggregator's settings; here for lock-free reads).
    pub units: Units,
    /// The SQLite database, for history queries (none in unit tests and on PostgreSQL).
    pub store_path: Option<PathBuf>,
    /// The PostgreSQL store and this replica's part (none on SQLite).
    pub replica: Option<backend::Replica>,
    /// When the commit thread snapshots the figures.
    pub snapshots: config::SnapshotPolicy,
    /// The envelope id the newest stored snapshot covers (0: none yet).
    pub snapshot_through: std::sync::atomic::AtomicI64,
    /// When the newest stored snapshot was taken, ms since the Unix epoch (0: none yet).
    pub snapshot_taken_ms: std::sync::atomic::AtomicU64,
    /// How long raw envelopes are kept after they were received (`None`: for ever, in unit
    /// tests).
    pub raw_retention: Option<std::time::Duration>,
    /// What the raw retention has deleted, and the oldest poll held (the commit thread's
    /// copy, for `/metrics` and the history API).
    pub raw_range: Mutex<store::RawRange>,
    /// Prices of the monthly cost-allocation report.
    pub prices: pricing::Prices,
    /// Seconds between the dashboard's refreshes (0: the default).
    pub dashboard_refresh_s: u32,
    /// Home Assistant's discovery prefix, when the gateway publishes discovery configs.
    pub home_assistant: Option<String>,
    /// How far an envelope's poll time may lead the gateway's clock (0: the default,
    /// [`batch::DEFAULT_MAX_CLOCK_SKEW_MS`]).
    pub max_clock_skew: u64,
    /// Which site each collector and device belongs to (the check stage's).
    pub owners: Mutex<sites::Owners>,
    /// The devices' descriptions compact readings refer to (the check stage's).
    pub descriptions: Mutex<descriptions::Descriptions>,
    /// The HTTP token and limits.
    pub guard: Arc<guard::Guard>,
    /// How long readers held the aggregator's lock (that ingest needs) to take their copy.
    pub lock_holds: LockHolds,
    /// What the embedded broker refused (none with an external broker).
    pub broker: Option<Arc<embedded::Stats>>,
    /// Set when the broker has no session of the gateway (a first start, an embedded broker,
    /// a broker that lost its store): every document is published again, so the retained
    /// ones are complete.
    pub republish: AtomicBool,
}

/// How long readers (HTTP requests, publications, snapshots) held the aggregator's lock to
/// take their copy: the longest hold and how many took longer than [`LockHolds::SLOW`].
#[derive(Debug, Default)]
pub struct LockHolds {
    /// Longest hold, µs.
    pub max_us: std::sync::atomic::AtomicU64,
    /// Holds in all.
    pub count: std::sync::atomic::AtomicU64,
    /// Holds longer than [`LockHolds::SLOW`].
    pub slow: std::sync::atomic::AtomicU64,
}

impl LockHolds {
    /// A hold longer than this delays ingest noticeably.
    pub const SLOW: std::time::Duration = std::time::Duration::from_millis(5);

    fn note(&self, held: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = u64::try_from(held.as_micros()).unwrap_or(u64::MAX);
        self.max_us.fetch_max(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
        if held > Self::SLOW {
            self.slow.fetch_add(1, Relaxed);
        }
    }
}

/// The aggregator's lock is poisoned (a thread panicked holding it).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the aggregator's lock is poisoned")]
pub struct Poisoned;

impl Shared {
    /// The figures as they are now, for a reader: a copy that shares the state with the
    /// aggregator (see [`Aggregator`]), taken under the lock in about a microsecond per
    /// device, so that a reader computes and renders without holding what ingest needs.
    /// Readers that ask while another still holds a copy of the same state share it.
    ///
    /// # Errors
    /// [`Poisoned`].
    pub fn read(&self) -> Result<Arc<Aggregator>, Poisoned> {
        use std::sync::atomic::Ordering::Acquire;
        {
            let view = self.view.lock().map_err(|_| Poisoned)?;
            // A writer counts its change as it takes the lock: an unchanged count means no
            // change since the copy was taken.
            if view.0 == self.changes.load(Acquire) {
                if let Some(copy) = view.1.upgrade() {
                    return Ok(copy);
                }
            }
        }
        let guard = self.aggregator.lock().map_err(|_| Poisoned)?;
        let since = Instant::now();
        let changes = self.changes.load(Acquire);
        let copy = Arc::new(guard.clone());
        drop(guard);
        self.lock_holds.note(since.elapsed());
        *self.view.lock().map_err(|_| Poisoned)? = (changes, Arc::downgrade(&copy));
        Ok(copy)
    }

    /// The aggregator, for ingest: readers wait meanwhile.
    ///
    /// # Errors
    /// [`Poisoned`].
    pub fn write(&self) -> Result<std::sync::MutexGuard<'_, Aggregator>, Poisoned> {
        let guard = self.aggregator.lock().map_err(|_| Poisoned)?;
        // Under the lock: a reader that takes it next sees the count of this change.
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(guard)
    }
}

impl Shared {
    /// How far an envelope's poll time may lead the gateway's clock, ms.
    pub fn max_clock_skew_ms(&self) -> u64 {
        if self.max_clock_skew == 0 {
            batch::DEFAULT_MAX_CLOCK_SKEW_MS
        } else {
            self.max_clock_skew
        }
    }

    /// State around `aggregator`, without a store.
    pub fn new(aggregator: Aggregator) -> Self {
        Shared {
            units: aggregator.settings().units.clone(),
            aggregator: Mutex::new(aggregator),
            ..Shared::default()
        }
    }
}

/// Runs the gateway until `shutdown` is cancelled.
///
/// # Errors
/// When the HTTP listener cannot be bound, the TLS files are unusable, or ingest stopped
/// because a batch could not be applied.
pub async fn run(mut config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let core = config.core.clone();
    let opened = config.clone();
    let handle = tokio::runtime::Handle::current();
    let (store, aggregator, (statuses, held)) = tokio::task::spawn_blocking(move || {
        let shown = opened.postgres.as_ref().map_or_else(
            || opened.store_path.display().to_string(),
            |p| p.shown.clone(),
        );
        let mut store = Backend::open(&opened, &handle)
            .with_context(|| format!("opening the store {shown}"))?;
        let (aggregator, statuses) = rebuild_from(&core, &mut store, &shown)?;
        let held = Held {
            owners: store.owners()?,
            descriptions: store.descriptions()?,
            raw_range: store.raw_range()?,
            newest_snapshot: store
                .snapshots()?
                .into_iter()
                .next()
                .map(|(t, at, _)| (t, at)),
        };
        anyhow::Ok((store, aggregator, (statuses, held)))
    })
    .await
    .context("rebuilding from the store")??;
    // The embedded broker starts once the figures are rebuilt, so the gateway subscribes
    // moments after the first collector can connect.
    let broker = match config.embedded_broker.take() {
        Some(settings) => {
            let running = embedded::start(settings)
                .await
                .context("starting the embedded broker")?;
            config.mqtt.host = running.local.ip().to_string();
            config.mqtt.port = running.local.port();
            config.mqtt.credentials = Some(running.credentials.clone());
            Some(running)
        }
        None => None,
    };
    let options = mqtt::options(&config).context("[mqtt] TLS")?;
    let mut shared = Shared::new(aggregator);
    match &config.postgres {
        None => shared.store_path = Some(config.store_path.clone()),
        Some(postgres) => {
            shared.replica = Some(backend::Replica::new(
                postgres,
                config.group.clone(),
                config.client_id.clone(),
                store.last_id(),
            ));
        }
    }
    shared.snapshots = config.snapshots;
    shared.raw_retention = Some(config.raw_retention);
    shared.prices = config.prices.clone();
    shared.max_clock_skew = u64::try_from(config.max_clock_skew.as_millis()).unwrap_or(u64::MAX);
    let mut owners = config.owners();
    for claim in held.owners {
        owners.restore(claim);
    }
    let (collectors, devices) = owners.counts();
    info!(
        collectors,
        devices,
        sites = config.sites.len(),
        "site ownership loaded"
    );
    shared.owners = Mutex::new(owners);
    let mut descriptions = descriptions::Descriptions::default();
    for (site, device, payload) in held.descriptions {
        descriptions.learn(&site, &device, &payload);
    }
    let (described, description_bytes, _) = descriptions.stats();
    info!(
        devices = described,
        bytes = description_bytes,
        "descriptions loaded"
    );
    shared.descriptions = Mutex::new(descriptions);
    shared.guard = guard::Guard::new(config.http.clone());
    shared.broker = broker.as_ref().map(|b| b.stats.clone());
    shared.home_assistant = config.home_assistant.clone();
    shared.dashboard_refresh_s =
        u32::try_from(config.dashboard_refresh.as_secs()).unwrap_or(u32::MAX);
    shared.raw_range = Mutex::new(held.raw_range);
    if let Some((through, taken_ms)) = held.newest_snapshot {
        shared.snapshot_through = through.into();
        shared.snapshot_taken_ms = taken_ms.into();
    }
    if let Ok(mut c) = shared.collectors.lock() {
        *c = statuses;
    }
    let shared = Arc::new(shared);
    let lease = match (&config.postgres, &config.group) {
        (Some(postgres), Some(group)) => Some(spawn_lease(
            postgres.config.clone(),
            group.clone(),
            shared.clone(),
            shutdown.clone(),
        )),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http_listen))?;
    let bound = listener.local_addr().context("reading the HTTP address")?;
    info!(http = %bound, broker = %config.mqtt.describe(), token = config.http.token.is_some(), "gateway started");

    let mqtt = tokio::spawn(mqtt::run(
        options,
        config.mqtt.reconnect_max,
        shared.clone(),
        store,
        shutdown.clone(),
    ));
    let app = http::router(shared.clone());
    let http_shutdown = shutdown.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
    .await
    .context("serving HTTP")?;
    let ended = mqtt.await;
    if let Some(lease) = lease {
        let _ = lease.await;
    }
    // The gateway's own client is done (its last acknowledgements sent): now the broker.
    if let Some(broker) = broker {
        broker.stop().await;
    }
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error.into()),
        Err(error) => tracing::warn!(%error, "MQTT task ended abnormally"),
    }
    info!("gateway stopped");
    Ok(())
}

/// Runs the publisher lease of `group` and mirrors the role into `shared`: a replica that
/// becomes the publisher publishes every document again (what the previous one published
/// may be older than its own figures).
fn spawn_lease(
    config: tokio_postgres::Config,
    group: String,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = tokio::sync::watch::channel(lease::Role::Follower);
    let settings = lease::Settings::default().safe();
    let runner = tokio::spawn(lease::run(config, group, settings, tx, shutdown));
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let publisher = *rx.borrow_and_update() == lease::Role::Publisher;
            if let Some(replica) = &shared.replica {
                replica
                    .publisher
                    .store(publisher, std::sync::atomic::Ordering::Relaxed);
            }
            if publisher {
                shared
                    .republish
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _ = runner.await;
    })
}

type Statuses = std::collections::BTreeMap<String, serde_json::Value>;

/// What a start reads from the store besides the figures.
struct Held {
    owners: Vec<sites::Claim>,
    descriptions: Vec<(String, String, bytes::Bytes)>,
    raw_range: store::RawRange,
    newest_snapshot: Option<(i64, u64)>,
}

/// Opens the store and rebuilds the aggregator: from the newest snapshot that restores and
/// the envelopes after it, else from every stored envelope.
///
/// # Errors
/// When the store cannot be opened or read.
pub fn rebuild(
    settings: &aggregate::CoreSettings,
    path: &std::path::Path,
) -> anyhow::Result<(Store, Aggregator, Statuses)> {
    let mut backend = Backend::Sqlite(Store::open(path)?);
    let (aggregator, statuses) = rebuild_from(settings, &mut backend, &path.display().to_string())?;
    match backend {
        Backend::Sqlite(store) => Ok((store, aggregator, statuses)),
        Backend::Postgres(_) => anyhow::bail!("not the SQLite store"),
    }
}

/// Rebuilds the aggregator from `store` (named `shown` in the log): from the newest snapshot
/// that restores and the envelopes after it, else from every stored envelope. Leaves the
/// store's cursor after the last envelope replayed.
///
/// # Errors
/// When the store cannot be read.
pub fn rebuild_from(
    settings: &aggregate::CoreSettings,
    store: &mut Backend,
    shown: &str,
) -> anyhow::Result<(Aggregator, Statuses)> {
    let started = Instant::now();
    let mut from_snapshot = None;
    for (through, taken_ms, body) in store.snapshots()? {
        match Aggregator::restore(settings.clone(), &body) {
            Ok(aggregator) => {
                from_snapshot = Some((through, taken_ms, aggregator));
                break;
            }
            Err(error) => {
                tracing::warn!(through, %error, "snapshot not used; an older one or a full replay is");
            }
        }
    }
    let restored = from_snapshot.is_some();
    let (after, mut aggregator) = match from_snapshot {
        Some((through, taken_ms, aggregator)) => {
            info!(through, taken_ms, "figures restored from a snapshot");
            (through, aggregator)
        }
        None => (0, Aggregator::with_settings(settings.clone())),
    };
    // Distinct envelopes the snapshot holds (its deliveries), for the log's accounting.
    let snapshot_envelopes: u64 = aggregator
        .deliveries()
        .values()
        .flatten()
        .map(|e| e.received)
        .sum();
    let (replay, cursor) = store.replay_after(after, |e| {
        aggregator.ingest(&e);
    })?;
    store.set_cursor(cursor);
    let raw = store.raw_range()?;
    if !restored && raw.pruned_envelopes > 0 {
        carry_closed_days(store, &mut aggregator, raw.pruned_before_ms)?;
    }
    let statuses = store
        .statuses()?
        .into_iter()
        .filter_map(|(site, s)| Some((site, serde_json::from_str(&s).ok()?)))
        .collect();
    info!(
        store = shown,
        snapshot_through = after,
        cursor,
        snapshot_envelopes,
        envelopes = replay.envelopes,
        undecodable = replay.undecodable,
        devices = aggregator.device_count(),
        ms = started.elapsed().as_millis() as u64,
        "figures rebuilt from the store"
    );
    Ok((aggregator, statuses))
}

/// A full replay after the raw retention deleted envelopes received before `pruned_before_ms`
/// holds only the days after that one exactly: the days before are taken from the newest
/// snapshot that decodes (taken under other settings, else it would have been restored), or,
/// with none, dropped and shown as not held.
fn carry_closed_days(
    store: &Backend,
    aggregator: &mut Aggregator,
    pruned_before_ms: u64,
) -> anyhow::Result<()> {
    let calendar = &aggregator.settings().ledger.calendar;
    let cut = calendar.date(pruned_before_ms);
    let first_exact = cut.tomorrow().unwrap_or(cut);
    for (through, _, body) in store.snapshots()? {
        match aggregator.carry_closed_days(first_exact, &body) {
            Ok(days) => {
                tracing::warn!(through, %first_exact, days, "the snapshots were taken under other settings and raw envelopes before {first_exact} are deleted: the day figures before it are those of the snapshot");
                return Ok(());
            }
            Err(error) => tracing::warn!(through, %error, "snapshot unreadable"),
        }
    }
    tracing::warn!(%first_exact, "no readable snapshot and raw envelopes before {first_exact} are deleted: day figures before it are not held");
    aggregator.drop_days_before(first_exact);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Item;

    fn envelope(item: &Item) -> &devtel_protocol::Envelope {
        match item {
            Item::Envelope { envelope, .. } => envelope,
            _ => unreachable!("an envelope item"),
        }
    }

    #[test]
    fn readers_answer_from_a_copy_that_ingest_does_not_wait_for_or_change() {
        let shared = std::sync::Arc::new(Shared::new(Aggregator::new()));
        let item = |device: &str, seq| crate::testdata::no_response_item(device, seq, 1_000 + seq);
        shared.write().unwrap().ingest(envelope(&item("d1", 0)));
        let copy = shared.read().unwrap();
        // A reader that asks meanwhile shares the copy; the lock is free.
        assert!(std::sync::Arc::ptr_eq(&copy, &shared.read().unwrap()));
        // Ingest goes on while the copy is held (from another thread: a reader holding the
        // lock would make it wait for ever), and the copy keeps what it was.
        let writer = shared.clone();
        std::thread::spawn(move || {
            let mut agg = writer.write().unwrap();
            agg.ingest(envelope(&item("d1", 1)));
            agg.ingest(envelope(&item("d2", 2)));
        })
        .join()
        .unwrap();
        assert_eq!(copy.device_ids(), ["d1"]);
        assert_eq!(copy.device("d1").unwrap().device.seq, 0);
        // A reader after the change gets a new copy with it.
        let now = shared.read().unwrap();
        assert!(!std::sync::Arc::ptr_eq(&copy, &now));
        assert_eq!(now.device_ids(), ["d1", "d2"]);
        assert_eq!(now.device("d1").unwrap().device.seq, 1);
        assert_eq!(now.snapshot(), {
            let mut direct = Aggregator::new();
            for (d, seq) in [("d1", 0), ("d1", 1), ("d2", 2)] {
                direct.ingest(envelope(&item(d, seq)));
            }
            direct.snapshot()
        });
        assert_eq!(
            shared
                .lock_holds
                .count
                .load(std::sync::atomic::Ordering::Relaxed),
            2,
            "two copies taken, one shared"
        );
    }

    #[test]
    fn a_start_restores_the_newest_usable_snapshot_and_replays_only_after_it() {
        let dir = std::env::temp_dir().join(format!("devtel-rebuild-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("db.sqlite");
        let settings = aggregate::CoreSettings::default();
        let items: Vec<Item> = (0..10)
            .map(|seq| crate::testdata::no_response_item("d1", seq, 2_000 + seq))
            .collect();
        let ingested = |settings: &aggregate::CoreSettings, first: Option<&Item>| {
            let mut agg = Aggregator::with_settings(settings.clone());
            for item in first.into_iter().chain(&items) {
                agg.ingest(envelope(item));
            }
            agg
        };
        // The snapshot (after the fifth envelope) holds one envelope the store does not:
        // seeing it after the start shows the snapshot was used.
        let marker = crate::testdata::no_response_item("marker", 1_000, 1_000);
        let mut snapshotted = Aggregator::with_settings(settings.clone());
        snapshotted.ingest(envelope(&marker));
        let mut store = Store::open(&path).unwrap();
        for (seq, item) in items.iter().enumerate() {
            store.commit(std::slice::from_ref(item)).unwrap();
            snapshotted.ingest(envelope(item));
            if seq == 4 {
                store
                    .save_snapshot(store.last_id(), 1, &snapshotted.snapshot())
                    .unwrap();
            }
        }
        drop(store);
        let (_, rebuilt, _) = rebuild(&settings, &path).unwrap();
        assert_eq!(
            rebuilt.snapshot(),
            ingested(&settings, Some(&marker)).snapshot(),
            "snapshot + tail"
        );
        // Under other settings the snapshot is not used: everything is replayed.
        let other = aggregate::CoreSettings {
            availability_days: 7,
            ..settings.clone()
        };
        let (_, replayed, _) = rebuild(&other, &path).unwrap();
        assert_eq!(
            replayed.snapshot(),
            ingested(&other, None).snapshot(),
            "full replay"
        );
        assert!(replayed.device("marker").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_replay_after_raw_retention_keeps_the_closed_days_of_a_snapshot() {
        let dir = std::env::temp_dir().join(format!("devtel-carry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("db.sqlite");
        let t0 = 1_793_491_200_000u64; // 2026-11-01T00:00Z
        let hour = 3_600_000u64;
        let items: Vec<Item> = (0..12 * 12u64)
            .map(|seq| {
                let mut r = crate::testdata::printer("sharp");
                r.counters.total = r.counters.total.map(|t| t + seq * 7);
                let ts = t0 + seq * 2 * hour;
                let mut e = devtel_protocol::Envelope::new(
                    "site".try_into().unwrap(),
                    "c1".try_into().unwrap(),
                    1,
                    seq,
                    ts,
                );
                e.readings
                    .push(devtel_protocol::Reading::Printer(r))
                    .unwrap();
                Item::Envelope {
                    payload: devtel_protocol::encode_to_vec(&e).unwrap().into(),
                    envelope: Box::new(e),
                    received_ms: ts + 1,
                }
            })
            .collect();
        let full = |settings: &aggregate::CoreSettings| {
            let mut agg = Aggregator::with_settings(settings.clone());
            for item in &items {
                agg.ingest(envelope(item));
            }
            agg
        };
        let all_days = |agg: &Aggregator| {
            agg.device_days(
                "sharp",
                jiff::civil::date(2026, 1, 1),
                jiff::civil::date(2027, 1, 1),
            )
        };
        let settings = aggregate::CoreSettings::default();
        let mut store = Store::open(&path).unwrap();
        for item in &items {
            store.commit(std::slice::from_ref(item)).unwrap();
        }
        store
            .save_snapshot(store.last_id(), 1, &full(&settings).snapshot())
            .unwrap();
        // Envelopes received before 2026-11-07 go, whole packs of lone commits (up to the
        // 72 of the first six days).
        while store.prune_raw(t0 + 6 * 24 * hour).unwrap().more {}
        let pruned = store.raw_range().unwrap().pruned_envelopes;
        assert!((24..=72).contains(&pruned), "{pruned}");
        drop(store);
        // The snapshot restores: every day as before.
        let (_, restored, _) = rebuild(&settings, &path).unwrap();
        assert_eq!(restored.snapshot(), full(&settings).snapshot());
        // Under other settings it does not: the days from 2026-11-08 are the replay's, those
        // before the snapshot's, and together they are what the whole history gives.
        let other = aggregate::CoreSettings {
            availability_days: 7,
            ..settings.clone()
        };
        let (_, carried, _) = rebuild(&other, &path).unwrap();
        let expected = all_days(&full(&other));
        assert_eq!(expected.len(), 12);
        assert!(expected.iter().all(|(_, f)| f.pages_total > 0));
        assert_eq!(all_days(&carried), expected);
        assert_eq!(carried.deliveries(), full(&other).deliveries());
        // With no snapshot of this format, the partial days are not shown at all.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE snapshots SET body = x'ff' || body", [])
            .unwrap();
        drop(conn);
        let (_, dropped, _) = rebuild(&other, &path).unwrap();
        assert_eq!(all_days(&dropped), expected[7..]);
        assert_eq!(dropped.figures_from(), Some(jiff::civil::date(2026, 11, 8)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
