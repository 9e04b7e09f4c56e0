//! The store the gateway runs on: the embedded SQLite file (the default) or a PostgreSQL
//! server that replicas share ([`crate::pgstore`]). [`Backend`] gives the ingest thread one
//! blocking interface over both; PostgreSQL's calls run on the runtime through
//! [`Handle::block_on`] (the ingest thread is no runtime thread).
//!
//! **Following.** On PostgreSQL every replica applies what the others committed: the
//! [`Backend::follow_page`] step reads the envelopes above its cursor (ids grow in commit
//! order, so everything up to the cursor is applied) and skips the ids it committed itself,
//! which it applied when it committed them. A snapshot is taken right after a step, when the
//! aggregator holds exactly the envelopes up to the cursor, so `through` is the cursor.
//!
//! **A store that goes away.** A commit that fails is retried by the caller with backoff and
//! nothing is acknowledged meanwhile; a connection that has ended is opened again before the
//! next try. Nothing is lost and nothing counted twice: what was not committed comes again
//! from the broker, what was committed is a repeat by its identity.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use devtel_protocol::Envelope;
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::config::{Config, Postgres};
use crate::pgstore::PgStore;
use crate::store::{Committed, Item, Pruned, RawRange, Replay, Store, StoreError};

/// Most envelopes one follow step reads.
pub const FOLLOW_PAGE: i64 = 1_000;

/// The gateway's store.
#[derive(Debug)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite(Store),
    /// A PostgreSQL server, possibly shared with other replicas.
    Postgres(Pg),
}

/// The PostgreSQL side of [`Backend`].
#[derive(Debug)]
pub struct Pg {
    store: PgStore,
    config: tokio_postgres::Config,
    handle: Handle,
    /// Every envelope with an id up to this is applied.
    cursor: i64,
    /// Ids above the cursor this replica committed (and applied) itself, oldest first.
    own: VecDeque<Range<i64>>,
}

/// What the replicas' status pages show, and how HTTP reads a PostgreSQL store.
#[derive(Debug)]
pub struct Replica {
    /// `user@host:port/dbname` of the PostgreSQL store.
    pub store: String,
    /// The group (`[cluster] group`), when one.
    pub group: Option<String>,
    /// This replica's name (its MQTT client id).
    pub name: String,
    /// Holds the publisher lease (always true without a group).
    pub publisher: AtomicBool,
    /// Every envelope with an id up to this is applied.
    pub cursor: AtomicI64,
    /// The newest id in the store at the last follow step.
    pub store_last_id: AtomicI64,
    /// When the last follow step ended, ms since the Unix epoch.
    pub followed_at_ms: AtomicU64,
    /// Envelopes applied from other replicas' commits.
    pub followed: AtomicU64,
    /// Follow steps that failed (tried again at the next).
    pub follow_errors: AtomicU64,
    /// Descriptions another replica received, read from the store for compact readings that
    /// came here ([`Replica::look_up`]).
    pub descriptions_fetched: AtomicU64,
    /// Site claims another replica made, read from the store for readings that came here.
    pub claims_fetched: AtomicU64,
    /// Lookups of descriptions or claims that failed.
    pub lookup_errors: AtomicU64,
    /// The connection for HTTP reads (history, conflicts), opened when first needed.
    pub config: tokio_postgres::Config,
    reader: tokio::sync::Mutex<Option<PgStore>>,
    /// The check stage's connection for [`Replica::look_up`] (not behind a long HTTP read).
    looker: tokio::sync::Mutex<Option<PgStore>>,
}

impl Replica {
    /// The state of a replica on `postgres`, in `group`, named `name`, at `cursor`.
    pub fn new(postgres: &Postgres, group: Option<String>, name: String, cursor: i64) -> Self {
        Replica {
            store: postgres.shown.clone(),
            publisher: AtomicBool::new(group.is_none()),
            group,
            name,
            cursor: AtomicI64::new(cursor),
            store_last_id: AtomicI64::new(cursor),
            followed_at_ms: AtomicU64::new(0),
            followed: AtomicU64::new(0),
            follow_errors: AtomicU64::new(0),
            descriptions_fetched: AtomicU64::new(0),
            claims_fetched: AtomicU64::new(0),
            lookup_errors: AtomicU64::new(0),
            config: postgres.config.clone(),
            reader: tokio::sync::Mutex::new(None),
            looker: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether this replica publishes the retained documents.
    pub fn publishes(&self) -> bool {
        self.publisher.load(Ordering::Relaxed)
    }

    /// Envelopes committed that this replica has not applied yet (at the last step).
    pub fn lag(&self) -> i64 {
        (self.store_last_id.load(Ordering::Relaxed) - self.cursor.load(Ordering::Relaxed)).max(0)
    }

    /// Name, group, role and cursor, for `/healthz`.
    pub fn status(&self) -> serde_json::Value {
        let cursor = self.cursor.load(Ordering::Relaxed);
        serde_json::json!({
            "name": self.name,
            "group": self.group,
            "role": if self.publishes() { "publisher" } else { "follower" },
            "store": self.store,
            "cursor": cursor,
            "store_last_id": self.store_last_id.load(Ordering::Relaxed),
            "cursor_lag": self.lag(),
            "followed_at_ms": self.followed_at_ms.load(Ordering::Relaxed),
            "followed_envelopes": self.followed.load(Ordering::Relaxed),
            "follow_errors": self.follow_errors.load(Ordering::Relaxed),
            "descriptions_fetched": self.descriptions_fetched.load(Ordering::Relaxed),
            "claims_fetched": self.claims_fetched.load(Ordering::Relaxed),
            "lookup_errors": self.lookup_errors.load(Ordering::Relaxed),
        })
    }

    /// Runs `f` on the reader connection (opened, or opened again after it ended).
    ///
    /// # Errors
    /// [`StoreError`] from connecting or from `f`.
    pub async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&PgStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        on(&self.reader, &self.config, f).await
    }

    /// Runs `f` on the check stage's own connection: what another replica committed that
    /// this one's check needs now (with `$share`, a compact reading may come here while the
    /// described envelope it refers to went to another; a device's first reading may have
    /// gone to another, which claimed it for its site). A lookup that takes longer than
    /// [`LOOKUP_TIMEOUT`] fails (the connection is opened again at the next).
    ///
    /// # Errors
    /// [`StoreError`] from connecting or reading; [`StoreError::Timeout`].
    pub async fn look_up<T>(
        &self,
        what: &'static str,
        f: impl AsyncFnOnce(&PgStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, on(&self.looker, &self.config, f)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may be stuck mid-query: the next lookup opens another.
                *self.looker.lock().await = None;
                Err(StoreError::Timeout { what })
            }
        }
    }
}

/// Longest a lookup (descriptions, site claims) holds the check stage.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `f` on the connection in `slot` (opened, or opened again after it ended).
async fn on<T>(
    slot: &tokio::sync::Mutex<Option<PgStore>>,
    config: &tokio_postgres::Config,
    f: impl AsyncFnOnce(&PgStore) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut held = slot.lock().await;
    let store = match held.take() {
        Some(store) if !store.is_closed() => store,
        _ => PgStore::connect(config).await?,
    };
    let result = f(&store).await;
    *held = Some(store);
    result
}

impl Backend {
    /// Opens the store `config` names. Must not be called on a runtime thread (it blocks).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be opened or migrated.
    pub fn open(config: &Config, handle: &Handle) -> Result<Backend, StoreError> {
        match &config.postgres {
            None => Ok(Backend::Sqlite(Store::open(&config.store_path)?)),
            Some(postgres) => {
                let store = handle.block_on(PgStore::connect(&postgres.config))?;
                info!(store = postgres.shown, "connected to the PostgreSQL store");
                Ok(Backend::Postgres(Pg {
                    store,
                    config: postgres.config.clone(),
                    handle: handle.clone(),
                    cursor: 0,
                    own: VecDeque::new(),
                }))
            }
        }
    }

    /// The PostgreSQL side, when that is the store.
    pub fn postgres(&self) -> Option<&Pg> {
        match self {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    /// Commits `items` in one transaction, as [`Store::commit`].
    ///
    /// # Errors
    /// [`StoreError`]; nothing of the batch is stored then.
    pub fn commit(&mut self, items: &[Item]) -> Result<Vec<Committed>, StoreError> {
        match self {
            Backend::Sqlite(store) => store.commit(items),
            Backend::Postgres(pg) => {
                pg.reconnect_if_closed()?;
                let committed = pg.handle.block_on(pg.store.commit(items))?;
                let ids = pg.store.committed_ids();
                if !ids.is_empty() {
                    pg.own.push_back(ids);
                }
                Ok(committed)
            }
        }
    }

    /// The id every envelope up to which the figures hold: SQLite's newest, PostgreSQL's
    /// cursor.
    pub fn last_id(&self) -> i64 {
        match self {
            Backend::Sqlite(store) => store.last_id(),
            Backend::Postgres(pg) => pg.cursor,
        }
    }

    /// Whether the figures hold exactly the envelopes up to [`Backend::last_id`] (on
    /// PostgreSQL: none of this replica's own commits is above the cursor), so that a
    /// snapshot may be taken through it.
    pub fn settled(&self) -> bool {
        match self {
            Backend::Sqlite(_) => true,
            Backend::Postgres(pg) => pg.own.is_empty(),
        }
    }

    /// Repeats of deleted envelopes taken as redeliveries.
    pub fn repeats_unverified(&self) -> u64 {
        match self {
            Backend::Sqlite(store) => store.repeats_unverified(),
            Backend::Postgres(pg) => pg.store.repeats_unverified(),
        }
    }

    /// Sets the cursor after a rebuild replayed through `cursor`.
    pub fn set_cursor(&mut self, cursor: i64) {
        if let Backend::Postgres(pg) = self {
            pg.cursor = cursor;
        }
    }

    /// One follow step (PostgreSQL): up to [`FOLLOW_PAGE`] envelopes others committed above
    /// the cursor, which moves past them (the caller applies them), and whether more wait.
    /// Nothing on SQLite.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read (the cursor stays).
    pub fn follow_page(&mut self) -> Result<(Vec<Envelope>, bool), StoreError> {
        let Backend::Postgres(pg) = self else {
            return Ok((Vec::new(), false));
        };
        pg.reconnect_if_closed()?;
        let page = pg
            .handle
            .block_on(pg.store.replay_page(pg.cursor, FOLLOW_PAGE))?;
        let own = &pg.own;
        let others: Vec<Envelope> = page
            .envelopes
            .into_iter()
            .filter(|(id, _)| !own.iter().any(|r| r.contains(id)))
            .map(|(_, e)| e)
            .collect();
        pg.cursor = page.cursor;
        while pg.own.front().is_some_and(|r| r.end <= pg.cursor + 1) {
            pg.own.pop_front();
        }
        Ok((others, page.more))
    }

    /// The newest id in the store (PostgreSQL; SQLite's own newest).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub fn store_last_id(&self) -> Result<i64, StoreError> {
        match self {
            Backend::Sqlite(store) => Ok(store.last_id()),
            Backend::Postgres(pg) => pg.handle.block_on(pg.store.last_id()),
        }
    }

    /// Stores a snapshot, as [`Store::save_snapshot`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn save_snapshot(
        &mut self,
        through: i64,
        taken_ms: u64,
        body: &[u8],
    ) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(store) => store.save_snapshot(through, taken_ms, body),
            Backend::Postgres(pg) => {
                pg.reconnect_if_closed()?;
                pg.handle
                    .block_on(pg.store.save_snapshot(through, taken_ms, body))
            }
        }
    }

    /// The stored snapshots, newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn snapshots(&self) -> Result<Vec<(i64, u64, Vec<u8>)>, StoreError> {
        match self {
            Backend::Sqlite(store) => store.snapshots(),
            Backend::Postgres(pg) => pg.handle.block_on(pg.store.snapshots()),
        }
    }

    /// Every envelope after `after` through `f`; returns the counts and the last id read.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn replay_after(
        &self,
        after: i64,
        mut f: impl FnMut(Envelope),
    ) -> Result<(Replay, i64), StoreError> {
        match self {
            Backend::Sqlite(store) => {
                let replay = store.replay_after(after, f)?;
                Ok((replay, store.last_id()))
            }
            Backend::Postgres(pg) => pg
                .handle
                .block_on(pg.store.replay_after(after, |_, e| f(e))),
        }
    }

    /// One step of the raw retention, as [`Store::prune_raw`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn prune_raw(&mut self, before_ms: u64) -> Result<Pruned, StoreError> {
        match self {
            Backend::Sqlite(store) => store.prune_raw(before_ms),
            Backend::Postgres(pg) => {
                pg.reconnect_if_closed()?;
                pg.handle.block_on(pg.store.prune_raw(before_ms))
            }
        }
    }

    /// What the retention deleted and the oldest poll held.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn raw_range(&self) -> Result<RawRange, StoreError> {
        match self {
            Backend::Sqlite(store) => store.raw_range(),
            Backend::Postgres(pg) => pg.handle.block_on(pg.store.raw_range()),
        }
    }

    /// The site claims.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn owners(&self) -> Result<Vec<crate::sites::Claim>, StoreError> {
        match self {
            Backend::Sqlite(store) => store.owners(),
            Backend::Postgres(pg) => pg.handle.block_on(pg.store.owners()),
        }
    }

    /// The stored descriptions: `(site, device, payload)`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn descriptions(&self) -> Result<Vec<(String, String, bytes::Bytes)>, StoreError> {
        match self {
            Backend::Sqlite(store) => store.descriptions(),
            Backend::Postgres(pg) => pg.handle.block_on(pg.store.descriptions()),
        }
    }

    /// The collectors' latest statuses, by site.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn statuses(&self) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        match self {
            Backend::Sqlite(store) => store.statuses(),
            Backend::Postgres(pg) => pg.handle.block_on(pg.store.statuses()),
        }
    }
}

impl Pg {
    /// A connection that has ended (the server restarted, the network broke) is opened again.
    fn reconnect_if_closed(&mut self) -> Result<(), StoreError> {
        if self.store.is_closed() {
            let store = self.handle.block_on(PgStore::connect(&self.config))?;
            warn!("the connection to the PostgreSQL store ended; connected again");
            self.store = store;
        }
        Ok(())
    }

    /// The cursor: every envelope up to it is applied.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }
}
