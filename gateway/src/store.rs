//! The durable store: an embedded SQLite database (WAL, full sync) holding every accepted
//! envelope exactly as it arrived, and the collectors' latest statuses.
//!
//! Design constraints:
//! - The store is the truth; the aggregator is a function of it. At start the aggregator is
//!   rebuilt by replaying the envelopes, so there is no second copy of the figures that could
//!   disagree with the first after a crash.
//! - An envelope is identified by (collector, epoch, seq). The stored sequence numbers are
//!   kept as ranges per (collector, epoch) (`stored_seqs`, written in the transaction that
//!   stores the envelopes): whatever the broker redelivers after a crash is stored at most
//!   once. (Before schema 5, a UNIQUE constraint on the envelope rows did this.)
//! - Since schema 5 the envelopes of a commit are one row, a pack (`crate::pack`).
//! - Every batch is one transaction; the MQTT side acknowledges a message only after the
//!   transaction that holds it has committed.
//! - The schema is versioned (`PRAGMA user_version`) and migrated forward at open; a database
//!   written by a newer gateway is refused, not rewritten.
//! - u64 values (epochs, sequence numbers, timestamps) are stored bit-for-bit as SQLite's i64.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use devtel_protocol::{decode, Envelope};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::deliveries::SeqSet;
use crate::pack::{Entry, Packer};

/// Schema migrations, in order; migration `i` brings the database to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: envelopes, their readings (for history lookups), collector statuses.
    "CREATE TABLE envelopes (
        id INTEGER PRIMARY KEY,
        collector TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        payload BLOB NOT NULL,
        UNIQUE (collector, epoch, seq)
    );
    CREATE TABLE readings (
        envelope INTEGER NOT NULL REFERENCES envelopes (id),
        device TEXT NOT NULL,
        unit TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL
    );
    CREATE INDEX readings_by_device ON readings (device, timestamp_ms);
    CREATE TABLE collector_status (
        site TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        received_ms INTEGER NOT NULL
    );",
    // 2: the per-device history index is filled in bulk, HISTORY_INDEX_EVERY envelopes at a
    // time, instead of row by row in every commit (it was half of the commit's cost: each
    // batch dirtied one index page per device). Envelopes carry their device; those above
    // the `history_indexed_through` cursor are found by a scan of that bounded tail. The
    // readings' unit column was never read and is not kept.
    "CREATE TABLE device_history (
        device TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        envelope INTEGER NOT NULL,
        PRIMARY KEY (device, timestamp_ms, envelope)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO device_history (device, timestamp_ms, envelope)
        SELECT device, timestamp_ms, envelope FROM readings;
    DROP TABLE readings;
    ALTER TABLE envelopes ADD COLUMN device TEXT;
    CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO store_meta (key, value)
        SELECT 'history_indexed_through', coalesce(max(id), 0) FROM envelopes;",
    // 3: compact payloads. What repeats in every reading of a device (model, serial, supply,
    // tray and seat descriptions) is kept once, in a reference payload per device and change;
    // an envelope keeps the delta of its payload against its reference (`crate::delta`).
    // Envelopes stored before keep their full payload (`ref` NULL). No foreign key on `ref`:
    // the reference is written in the same transaction, a missing one makes the delta fail
    // to apply (counted, never a wrong envelope), and the check cost 0.5 µs per row.
    "CREATE TABLE refs (
        id INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        payload BLOB NOT NULL
    );
    CREATE INDEX refs_by_device ON refs (device, id);
    ALTER TABLE envelopes ADD COLUMN ref INTEGER;",
    // 4: history spans. An indexing run keeps one row per device (`crate::span`: its
    // envelopes' poll times and ids, a few bytes each) instead of one `device_history` row
    // per envelope, which cost two B-tree seeks per reading. `device_history` keeps what
    // was indexed before, and a second device of an envelope (rare); both are read.
    "CREATE TABLE history_spans (
        device TEXT NOT NULL,
        last_ms INTEGER NOT NULL,
        through INTEGER NOT NULL,
        first_ms INTEGER NOT NULL,
        entries BLOB NOT NULL,
        PRIMARY KEY (device, last_ms, through)
    ) WITHOUT ROWID;",
    // 5: packs. The envelopes of a commit are one row (`crate::pack`), numbered on from the
    // envelope ids before (a pack's key is the id of its first envelope); a row per envelope
    // cost a table and a unique-index insert per reading. Redeliveries are recognised from
    // the stored sequence ranges, filled from `envelopes` when migrating (see
    // `fill_stored_seqs`); `envelopes` keeps what was stored before and stays readable.
    "CREATE TABLE packs (
        first_id INTEGER PRIMARY KEY,
        count INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE TABLE stored_seqs (
        collector TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (collector, epoch, first)
    ) WITHOUT ROWID;",
    // 6: snapshots of the figures (`Aggregator::snapshot`), each covering the envelopes up to
    // `through`: a start restores the newest and replays only what came after it.
    "CREATE TABLE snapshots (
        through INTEGER PRIMARY KEY,
        taken_ms INTEGER NOT NULL,
        body BLOB NOT NULL
    );",
    // 7: raw retention (`Store::prune_raw`). A pack knows when its newest envelope was
    // received (filled from the bodies when migrating, see `fill_pack_received`); history
    // spans and the rows indexed before them are found by the envelope ids they cover, so
    // that those of deleted envelopes go with them.
    "ALTER TABLE packs ADD COLUMN received_ms INTEGER;
    CREATE INDEX history_spans_by_through ON history_spans (through);
    CREATE INDEX device_history_by_envelope ON device_history (envelope);
    INSERT OR IGNORE INTO store_meta (key, value) VALUES ('raw_pruned_through', 0);
    INSERT OR IGNORE INTO store_meta (key, value) VALUES ('raw_pruned_envelopes', 0);
    INSERT OR IGNORE INTO store_meta (key, value) VALUES ('raw_pruned_before_ms', 0);",
    // 8: site identity and conflicts. `owners`: which site a collector and a device belong
    // to (`crate::sites`), claimed at first sight in the commit that stores it. `conflicts`:
    // repeats of a stored (collector, epoch, seq) with other bytes, kept aside for
    // inspection (bounded, see MAX_CONFLICTS_KEPT). A pack's `digests`: per entry, a hash of
    // its identity and one of its payload (16 bytes), so that a repeat is compared with what
    // was stored without reading the payloads back (see `Recent`).
    "CREATE TABLE owners (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        site TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID;
    CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        collector TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        payload BLOB NOT NULL
    );
    ALTER TABLE packs ADD COLUMN digests BLOB;",
    // 9: descriptions (wire version 5, `crate::descriptions`): the newest described
    // envelopes per device that compact readings refer to by fingerprint, at most
    // `descriptions::PER_DEVICE` each.
    "CREATE TABLE descriptions (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        fingerprint INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (site, device, fingerprint)
    ) WITHOUT ROWID;",
];

/// Conflicting repeats kept aside; beyond, the oldest go (the count goes on).
pub const MAX_CONFLICTS_KEPT: i64 = 10_000;

/// The newest envelopes whose digests the writer keeps in memory to tell a redelivery from a
/// conflicting repeat (`Recent`): 131,072 (about 4 MB), loaded from the newest packs at start.
/// A repeat of an older envelope is taken as a redelivery and counted
/// (`repeats_unverified`): the window holds what a collector can still be sending again
/// (its unacknowledged envelopes), many times over.
pub const RECENT_DIGESTS: usize = 1 << 17;

/// Snapshots kept: the newest and the one before (should the newest not restore).
pub const SNAPSHOTS_KEPT: i64 = 2;

/// The migration (its index in [`MIGRATIONS`]) after which `stored_seqs` is filled.
const PACKS_MIGRATION: usize = 4;

/// The migration after which the packs' `received_ms` is filled.
const RETENTION_MIGRATION: usize = 6;

/// Most packs (and most rows stored before packs) one [`Store::prune_raw`] step deletes: a
/// step is a short transaction between two commits.
pub const PRUNE_STEP_ROWS: i64 = 16;

/// Most history spans one [`Store::prune_raw`] step deletes.
const SPANS_STEP: i64 = 128;

/// Most free pages one [`Store::prune_raw`] step gives back to the file system (1 MiB at the
/// default page size: moving pages is most of a step's time).
const VACUUM_STEP_PAGES: i64 = 256;

/// A new reference payload is written for a device when the delta against its current one
/// is longer than this share of the payload (1/`NEW_REFERENCE_RATIO`).
const NEW_REFERENCE_RATIO: usize = 4;

/// Most devices whose current reference payload the writer keeps in memory, and most bytes
/// of them. Beyond either the map is emptied and each device's next envelope starts a new
/// reference (bounded memory whatever the network sends; a few extra reference rows at
/// worst).
pub const MAX_REFERENCES_IN_MEMORY: usize = 100_000;
/// See [`MAX_REFERENCES_IN_MEMORY`].
pub const MAX_REFERENCE_BYTES_IN_MEMORY: usize = 64 << 20;

/// The history index is brought up to date when this many envelopes are above its cursor
/// (see migration 2): at most this many rows are scanned beside the index by a history query.
pub const HISTORY_INDEX_EVERY: i64 = 8192;

/// The schema version this gateway writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// PostgreSQL reported an error (or the connection to it failed).
    #[error("PostgreSQL: {source}")]
    Postgres {
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// PostgreSQL did not answer in time.
    #[error("PostgreSQL: no answer in time {what}")]
    Timeout {
        /// What was being done.
        what: &'static str,
    },
    /// The database was written by a newer gateway.
    #[error("database {path} has schema version {found}, newer than this gateway's {SCHEMA_VERSION}; upgrade the gateway")]
    TooNew {
        /// The database file.
        path: String,
        /// Its version.
        found: i64,
    },
    /// A failed commit left the writer unable to read back what is stored; it takes no more
    /// commits (the gateway stops, and its next start reads the store afresh).
    #[error("database {path}: the writer's view of the store was lost after a failed commit")]
    Poisoned {
        /// The database file.
        path: String,
    },
    /// A backup could not be made.
    #[error("backup {path}: {reason}")]
    Backup {
        /// The backup file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The database directory could not be created.
    #[error("creating {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A description among the items of a commit: site, device, fingerprint, received, payload.
pub(crate) type Described<'a> = (&'a str, &'a str, u32, u64, &'a bytes::Bytes);

/// The descriptions among `items`, in item order (both stores write them together, see
/// [`crate::descriptions::plan_commit`]).
pub(crate) fn described(items: &[Item]) -> Vec<Described<'_>> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Description {
                site,
                device,
                fingerprint,
                payload,
                received_ms,
            } => Some((
                site.as_str(),
                device.as_str(),
                *fingerprint,
                *received_ms,
                payload,
            )),
            _ => None,
        })
        .collect()
}

/// One message to commit.
#[derive(Debug, Clone)]
pub enum Item {
    /// An accepted telemetry envelope with its original payload.
    Envelope {
        /// The decoded envelope.
        envelope: Box<Envelope>,
        /// Exactly the bytes received.
        payload: bytes::Bytes,
        /// When the gateway received it, ms since the Unix epoch.
        received_ms: u64,
    },
    /// The first sighting of a collector or device: which site it belongs to from now on.
    Claim(crate::sites::Claim),
    /// A described envelope (wire version 5) that compact readings of its device may refer
    /// to; it is also committed as an [`Item::Envelope`].
    Description {
        /// The site of its topic.
        site: String,
        /// Its device.
        device: String,
        /// [`devtel_protocol::compact::fingerprint`] of the payload.
        fingerprint: u32,
        /// The described payload.
        payload: bytes::Bytes,
        /// When received.
        received_ms: u64,
    },
    /// A collector's retained status; `None` clears it.
    Status {
        /// Site.
        site: String,
        /// The JSON status.
        status: Option<String>,
        /// When received.
        received_ms: u64,
    },
}

/// A conflicting repeat kept aside: the bytes that came second for an identity already
/// stored with other bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Row id (grows).
    pub id: i64,
    /// The site of its topic.
    pub site: String,
    /// Its collector.
    pub collector: String,
    /// Its epoch.
    pub epoch: u64,
    /// Its sequence number.
    pub seq: u64,
    /// When it came.
    pub received_ms: u64,
    /// Exactly the bytes received.
    pub payload: Vec<u8>,
}

/// Counts of a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replay {
    /// Envelopes replayed.
    pub envelopes: u64,
    /// Rows that no longer decode (never expected; skipped and counted).
    pub undecodable: u64,
}

/// The store.
pub struct Store {
    conn: Connection,
    path: String,
    /// Envelopes with an id up to this are in `device_history` (the writer's copy of
    /// `store_meta.history_indexed_through`).
    indexed_through: i64,
    /// Per device: the id and bytes of its current reference payload (migration 3).
    references: HashMap<String, (i64, Vec<u8>)>,
    /// The payload bytes in `references`.
    reference_bytes: usize,
    /// Per collector and epoch: the sequence numbers stored (the writer's copy of
    /// `stored_seqs`).
    seqs: HashMap<String, HashMap<u64, SeqSet>>,
    /// The id the next stored envelope gets.
    next_id: i64,
    /// The newest pack while it is small: the next commit appends to it (a quiet site commits
    /// one envelope at a time, and a pack per envelope cost its row and its texts each time).
    open: Option<OpenPack>,
    /// The digests of the newest envelopes (see [`RECENT_DIGESTS`]).
    recent: Recent,
    /// Repeats too old to be compared ([`RECENT_DIGESTS`]), taken as redeliveries.
    repeats_unverified: u64,
}

/// What a commit did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Stored (an envelope, a status, a claim).
    New,
    /// An envelope stored before, with the same bytes: a redelivery.
    Repeat,
    /// An envelope whose identity is stored with other bytes: kept aside in `conflicts`,
    /// neither stored again nor counted as a redelivery.
    Conflict,
}

/// The digests of the newest stored envelopes: identity hash → payload hash, oldest evicted
/// first.
#[derive(Debug, Default)]
struct Recent {
    map: HashMap<u64, u64>,
    order: std::collections::VecDeque<u64>,
}

impl Recent {
    fn insert(&mut self, key: u64, digest: u64) {
        if self.map.insert(key, digest).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > RECENT_DIGESTS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// A stable 64-bit hash (kept in the store): FNV-1a's multiply-xor over 8-byte little-endian
/// words, then the remaining bytes one by one, each part closed by a separator (eight times
/// fewer steps than bytewise FNV on a 400-byte payload). Not a defence against crafted
/// collisions: a forger does not know the payload it would have to collide with (the real
/// one is sent after the forgery).
fn fnv(parts: &[&[u8]]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        let mut words = part.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            h ^= u64::from_le_bytes(word);
            h = h.wrapping_mul(PRIME);
        }
        for b in words.remainder() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
        h ^= 0xff;
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The identity hash of (collector, epoch, seq).
fn identity_key(collector: &str, epoch: u64, seq: u64) -> u64 {
    fnv(&[
        collector.as_bytes(),
        &epoch.to_le_bytes(),
        &seq.to_le_bytes(),
    ])
}

/// A pack the next commit appends to (see [`OPEN_PACK_ENTRIES`]).
#[derive(Debug)]
struct OpenPack {
    first_id: i64,
    packer: Packer,
    received_ms: u64,
    /// 16 bytes per entry: identity hash and payload hash (little-endian).
    digests: Vec<u8>,
}

/// A pack stays open for the next commit while it holds fewer entries than this and fewer
/// bytes than [`OPEN_PACK_BYTES`]. Each append rewrites the row, so the bounds keep that
/// rewrite small.
pub const OPEN_PACK_ENTRIES: usize = 64;
/// See [`OPEN_PACK_ENTRIES`].
pub const OPEN_PACK_BYTES: usize = 1024;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn bits(v: u64) -> i64 {
    v as i64
}

fn unbits(v: i64) -> u64 {
    v as u64
}

impl Store {
    /// Opens (creating) the database at `path` and migrates it.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened, is not a database, or is too new.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let name = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: name.clone(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: name,
            indexed_through: 0,
            references: HashMap::new(),
            reference_bytes: 0,
            seqs: HashMap::new(),
            next_id: 1,
            open: None,
            recent: Recent::default(),
            repeats_unverified: 0,
        };
        store.init()?;
        store.indexed_through = store
            .conn
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'history_indexed_through'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| store.err(e))?;
        store.load_references()?;
        store.load_seqs()?;
        store.load_recent()?;
        Ok(store)
    }

    /// The digests of the newest envelopes, from the newest packs' `digests`.
    fn load_recent(&mut self) -> Result<(), StoreError> {
        let mut newest_first: Vec<Vec<u8>> = Vec::new();
        let mut entries = 0;
        {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT digests FROM packs WHERE digests IS NOT NULL
                     ORDER BY first_id DESC",
                )
                .map_err(|e| self.err(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
            while let Some(row) = rows.next().map_err(|e| self.err(e))? {
                let digests: Vec<u8> = row.get(0).map_err(|e| self.err(e))?;
                entries += digests.len() / 16;
                newest_first.push(digests);
                if entries >= RECENT_DIGESTS {
                    break;
                }
            }
        }
        let mut recent = Recent::default();
        for digests in newest_first.iter().rev() {
            for pair in digests.chunks_exact(16) {
                let (key, digest) = pair.split_at(8);
                let (Ok(key), Ok(digest)) = (key.try_into(), digest.try_into()) else {
                    continue;
                };
                recent.insert(u64::from_le_bytes(key), u64::from_le_bytes(digest));
            }
        }
        self.recent = recent;
        Ok(())
    }

    /// Repeats taken as redeliveries without a comparison (too old for the digests kept).
    pub fn repeats_unverified(&self) -> u64 {
        self.repeats_unverified
    }

    /// The stored claims: which site each collector and device belongs to.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn owners(&self) -> Result<Vec<crate::sites::Claim>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, id, site FROM owners")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, id, site) = row.map_err(|e| self.err(e))?;
            if let Some(kind) = crate::sites::OwnerKind::from_name(&kind) {
                out.push(crate::sites::Claim { kind, id, site });
            }
        }
        Ok(out)
    }

    /// The stored descriptions (wire version 5), oldest first per device: `(site, device,
    /// payload)`.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn descriptions(&self) -> Result<Vec<(String, String, bytes::Bytes)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT site, device, payload FROM descriptions
                 ORDER BY site, device, received_ms, fingerprint",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (site, device, payload) = row.map_err(|e| self.err(e))?;
            out.push((site, device, bytes::Bytes::from(payload)));
        }
        Ok(out)
    }

    /// The conflicting repeats kept aside, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn conflicts(&self, limit: usize) -> Result<Vec<Conflict>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, site, collector, epoch, seq, received_ms, payload FROM conflicts
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(Conflict {
                    id: r.get(0)?,
                    site: r.get(1)?,
                    collector: r.get(2)?,
                    epoch: unbits(r.get(3)?),
                    seq: unbits(r.get(4)?),
                    received_ms: unbits(r.get(5)?),
                    payload: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The stored sequence ranges and the next envelope id, from the database.
    fn load_seqs(&mut self) -> Result<(), StoreError> {
        let mut seqs: HashMap<String, HashMap<u64, SeqSet>> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT collector, epoch, first, last FROM stored_seqs")
                .map_err(|e| self.err(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
            while let Some(row) = rows.next().map_err(|e| self.err(e))? {
                let collector: String = row.get(0).map_err(|e| self.err(e))?;
                let epoch = unbits(row.get(1).map_err(|e| self.err(e))?);
                let first = unbits(row.get(2).map_err(|e| self.err(e))?);
                let last = unbits(row.get(3).map_err(|e| self.err(e))?);
                seqs.entry(collector)
                    .or_default()
                    .entry(epoch)
                    .or_default()
                    .insert_inclusive(first, last);
            }
        }
        // The newest pack by its key (a max over an expression of all packs read the whole
        // table at every start: 4 s for 90 days of 1,000 devices).
        let last_id: i64 = self
            .conn
            .query_row(
                "SELECT max(coalesce((SELECT max(id) FROM envelopes), 0),
                            coalesce((SELECT first_id + count - 1 FROM packs
                                      ORDER BY first_id DESC LIMIT 1), 0),
                            coalesce((SELECT value FROM store_meta
                                      WHERE key = 'raw_pruned_through'), 0))",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        self.seqs = seqs;
        self.next_id = last_id + 1;
        Ok(())
    }

    /// Each device's newest reference payload, so that a restart does not start new ones.
    fn load_references(&mut self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT device, id, payload FROM refs
                 WHERE id IN (SELECT max(id) FROM refs GROUP BY device) LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([MAX_REFERENCES_IN_MEMORY as i64], |r| {
                Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
            })
            .map_err(|e| self.err(e))?;
        let mut references = HashMap::new();
        let mut bytes = 0;
        for row in rows {
            let (device, (id, payload)): (String, (i64, Vec<u8>)) = row.map_err(|e| self.err(e))?;
            bytes += payload.len();
            if bytes > MAX_REFERENCE_BYTES_IN_MEMORY {
                break;
            }
            references.insert(device, (id, payload));
        }
        drop(stmt);
        self.reference_bytes = references.values().map(|(_, p)| p.len()).sum();
        self.references = references;
        Ok(())
    }

    /// A read-only connection to the database at `path` (HTTP history queries run beside the
    /// writer; WAL lets them read without blocking it).
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be opened.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Sqlite {
            path: name.clone(),
            source,
        })?;
        let store = Store {
            conn,
            path: name,
            indexed_through: 0,
            references: HashMap::new(),
            reference_bytes: 0,
            seqs: HashMap::new(),
            next_id: 0,
            open: None,
            recent: Recent::default(),
            repeats_unverified: 0,
        };
        store
            .conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn init(&mut self) -> Result<(), StoreError> {
        // WAL: readers do not block the writer; synchronous=FULL: a committed transaction
        // survives a power cut, which is what an MQTT acknowledgement promises.
        self.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| self.err(e))?;
        // Pages freed by the raw retention go back to the file system (`Store::prune_raw`).
        // A new database takes this before its first table; an older one once, below.
        self.conn
            .execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
            .map_err(|e| self.err(e))?;
        self.conn
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch(
                "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
                 PRAGMA cache_size = -16384;",
            )
            .map_err(|e| self.err(e))?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            tx.execute_batch(sql)
                .and_then(|()| match i {
                    PACKS_MIGRATION => fill_stored_seqs(&tx),
                    RETENTION_MIGRATION => fill_pack_received(&tx),
                    _ => Ok(()),
                })
                .and_then(|()| tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)))
                .and_then(|()| tx.commit())
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
            tracing::info!(path = %self.path, version = i + 1, "database migrated");
        }
        let auto_vacuum: i64 = self
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if auto_vacuum != 2 {
            // A store created before schema 7: rewritten once so that it can give pages back.
            let started = std::time::Instant::now();
            self.conn.execute_batch("VACUUM").map_err(|e| self.err(e))?;
            tracing::info!(path = %self.path, ms = started.elapsed().as_millis() as u64, "database rewritten once for incremental vacuum");
        }
        Ok(())
    }

    /// Commits `items` in one transaction. Returns, per item, what became of it: new, a
    /// redelivery of an envelope stored before, or a conflicting repeat (kept aside).
    ///
    /// # Errors
    /// [`StoreError`]; nothing of the batch is stored then.
    pub fn commit(&mut self, items: &[Item]) -> Result<Vec<Committed>, StoreError> {
        let result = self.try_commit(items);
        if result.is_err() {
            // The transaction was rolled back, but the sequence ranges in memory took its
            // envelopes: read them again, so that a redelivery is not taken for a repeat.
            if let Err(error) = self.load_seqs() {
                tracing::error!(%error, "stored sequence ranges could not be read again");
                self.seqs.clear();
                self.next_id = i64::MAX;
            }
        }
        result
    }

    fn try_commit(&mut self, items: &[Item]) -> Result<Vec<Committed>, StoreError> {
        if self.next_id == i64::MAX {
            return Err(StoreError::Poisoned {
                path: self.path.clone(),
            });
        }
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        let mut out = Vec::with_capacity(items.len());
        let mut last_id = self.indexed_through;
        let mut next_id = self.next_id;
        // References written in this transaction: known to the writer once it commits.
        let mut new_refs: HashMap<String, (i64, Vec<u8>)> = HashMap::new();
        // Per collector and epoch touched: the starts of stored ranges merged away, and the
        // sequence numbers added (their final ranges are written at the end).
        let mut touched: HashMap<String, HashMap<u64, Touched>> = HashMap::new();
        // The delta of the envelope at hand (one buffer for the commit).
        let mut delta = Vec::new();
        // The open pack is continued (and dropped should this commit fail: the row keeps
        // what was committed, and the next commit starts a new pack).
        let (mut packer, mut pack_first, mut pack_received, mut digests, mut continuing) =
            match self.open.take() {
                Some(open) => (
                    open.packer,
                    open.first_id,
                    open.received_ms,
                    open.digests,
                    true,
                ),
                None => (Packer::new(), next_id, 0, Vec::new(), false),
            };
        // Digests of this commit's envelopes, for `recent` once it is durable.
        let mut new_digests: Vec<(u64, u64)> = Vec::new();
        let appended_from = packer.len();
        {
            let mut insert_pack = tx
                .prepare_cached(
                    "INSERT INTO packs (first_id, count, body, received_ms, digests)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(wrap)?;
            let mut update_pack = tx
                .prepare_cached(
                    "UPDATE packs SET count = ?2, body = ?3, received_ms = ?4, digests = ?5
                     WHERE first_id = ?1",
                )
                .map_err(wrap)?;
            // Writes the pack at hand: a new row, or the open one rewritten.
            let mut write_pack = |first: i64,
                                  packer: &Packer,
                                  received: u64,
                                  digests: &[u8],
                                  continuing: bool|
             -> Result<(), StoreError> {
                let values = params![
                    first,
                    packer.len() as i64,
                    packer.body(),
                    bits(received),
                    digests
                ];
                if !continuing {
                    insert_pack.execute(values).map_err(wrap)?;
                } else if update_pack.execute(values).map_err(wrap)? != 1 {
                    return Err(wrap(rusqlite::Error::QueryReturnedNoRows));
                }
                Ok(())
            };
            let mut insert_ref = tx
                .prepare_cached("INSERT INTO refs (device, payload) VALUES (?1, ?2)")
                .map_err(wrap)?;
            let mut insert_history = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO device_history (device, timestamp_ms, envelope)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(wrap)?;
            let mut upsert_status = tx
                .prepare_cached(
                    "INSERT INTO collector_status (site, status, received_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (site) DO UPDATE SET status = ?2, received_ms = ?3",
                )
                .map_err(wrap)?;
            let mut delete_status = tx
                .prepare_cached("DELETE FROM collector_status WHERE site = ?1")
                .map_err(wrap)?;
            let mut upsert_description = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO descriptions (site, device, fingerprint, received_ms, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(wrap)?;
            let mut stored_descriptions = tx
                .prepare_cached(
                    "SELECT fingerprint, received_ms FROM descriptions WHERE site = ?1 AND device = ?2",
                )
                .map_err(wrap)?;
            let mut delete_description = tx
                .prepare_cached(
                    "DELETE FROM descriptions WHERE site = ?1 AND device = ?2 AND fingerprint = ?3",
                )
                .map_err(wrap)?;
            let mut insert_owner = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO owners (kind, id, site, since_ms) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(wrap)?;
            let mut insert_conflict = tx
                .prepare_cached(
                    "INSERT INTO conflicts (site, collector, epoch, seq, received_ms, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(wrap)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            for item in items {
                match item {
                    Item::Envelope {
                        envelope,
                        payload,
                        received_ms,
                    } => {
                        let collector = envelope.collector.as_str();
                        let set = match self.seqs.get_mut(collector) {
                            Some(epochs) => epochs.entry(envelope.epoch).or_default(),
                            None => self
                                .seqs
                                .entry(collector.to_string())
                                .or_default()
                                .entry(envelope.epoch)
                                .or_default(),
                        };
                        let changes = match touched.get_mut(collector) {
                            Some(epochs) => epochs.entry(envelope.epoch).or_default(),
                            None => touched
                                .entry(collector.to_string())
                                .or_default()
                                .entry(envelope.epoch)
                                .or_default(),
                        };
                        let key = identity_key(collector, envelope.epoch, envelope.seq);
                        let digest = fnv(&[payload]);
                        if !set.insert_noting(envelope.seq, &mut changes.removed) {
                            let earlier = new_digests
                                .iter()
                                .rev()
                                .find(|(k, _)| *k == key)
                                .map(|(_, d)| *d)
                                .or_else(|| self.recent.map.get(&key).copied());
                            match earlier {
                                Some(d) if d != digest => {
                                    insert_conflict
                                        .execute(params![
                                            envelope.site.as_str(),
                                            collector,
                                            bits(envelope.epoch),
                                            bits(envelope.seq),
                                            bits(*received_ms),
                                            &payload[..]
                                        ])
                                        .map_err(wrap)?;
                                    out.push(Committed::Conflict);
                                }
                                Some(_) => out.push(Committed::Repeat),
                                None => {
                                    self.repeats_unverified += 1;
                                    out.push(Committed::Repeat);
                                }
                            }
                            continue;
                        }
                        new_digests.push((key, digest));
                        digests.extend_from_slice(&key.to_le_bytes());
                        digests.extend_from_slice(&digest.to_le_bytes());
                        changes.added.push(envelope.seq);
                        // Validated envelopes hold at least one reading.
                        let device = envelope.readings.first().map_or("", |r| r.device());
                        // The delta against the device's reference, or a new reference.
                        let current = new_refs
                            .get(device)
                            .or_else(|| self.references.get(device))
                            .map(|(id, bytes)| {
                                crate::delta::diff_into(bytes, payload, &mut delta);
                                *id
                            })
                            .filter(|_| delta.len() * NEW_REFERENCE_RATIO <= payload.len());
                        let reference = match current {
                            Some(id) => id,
                            None => {
                                insert_ref
                                    .execute(params![device, &payload[..]])
                                    .map_err(wrap)?;
                                let id = tx.last_insert_rowid();
                                new_refs.insert(device.to_string(), (id, payload.to_vec()));
                                crate::delta::diff_into(payload, payload, &mut delta);
                                id
                            }
                        };
                        packer.push(&Entry {
                            collector,
                            epoch: envelope.epoch,
                            seq: envelope.seq,
                            timestamp_ms: envelope.timestamp_ms,
                            received_ms: *received_ms,
                            device,
                            reference: Some(reference),
                            stored: &delta,
                        });
                        pack_received = pack_received.max(*received_ms);
                        let id = next_id;
                        next_id += 1;
                        last_id = id;
                        // The envelope's device is found through its pack entry until the
                        // next bulk indexing; another device in the same envelope (the gateway
                        // accepts one device per envelope, the store does not rely on it) is
                        // indexed at once.
                        for r in envelope.readings.iter().skip(1) {
                            if r.device() != device {
                                insert_history
                                    .execute(params![r.device(), bits(envelope.timestamp_ms), id])
                                    .map_err(wrap)?;
                            }
                        }
                        if packer.len() == crate::pack::MAX_ENTRIES {
                            write_pack(pack_first, &packer, pack_received, &digests, continuing)?;
                            packer.take();
                            digests.clear();
                            pack_first = next_id;
                            pack_received = 0;
                            continuing = false;
                        }
                        out.push(Committed::New);
                    }
                    // Written together below.
                    Item::Description { .. } => out.push(Committed::New),
                    Item::Claim(claim) => {
                        insert_owner
                            .execute(params![claim.kind.name(), claim.id, claim.site, bits(now)])
                            .map_err(wrap)?;
                        out.push(Committed::New);
                    }
                    Item::Status {
                        site,
                        status: Some(status),
                        received_ms,
                    } => {
                        upsert_status
                            .execute(params![site, status, bits(*received_ms)])
                            .map_err(wrap)?;
                        out.push(Committed::New);
                    }
                    Item::Status {
                        site, status: None, ..
                    } => {
                        delete_status.execute(params![site]).map_err(wrap)?;
                        out.push(Committed::New);
                    }
                }
            }
            // The descriptions: what storing them one by one, each keeping its device's newest
            // PER_DEVICE, leaves, with one write per surviving description instead of two
            // statements per item (a collector describes every reading for a while after it
            // starts).
            let described = described(items);
            if !described.is_empty() {
                let mut devices: Vec<(&str, &str)> = described.iter().map(|d| (d.0, d.1)).collect();
                devices.sort_unstable();
                devices.dedup();
                let mut stored: Vec<(String, String, u32, u64)> = Vec::new();
                for (site, device) in devices {
                    let rows = stored_descriptions
                        .query_map(params![site, device], |r| {
                            Ok((r.get::<_, u32>(0)?, unbits(r.get(1)?)))
                        })
                        .map_err(wrap)?;
                    for row in rows {
                        let (fingerprint, received_ms) = row.map_err(wrap)?;
                        stored.push((site.into(), device.into(), fingerprint, received_ms));
                    }
                }
                let keys: Vec<(&str, &str, u32, u64)> =
                    described.iter().map(|d| (d.0, d.1, d.2, d.3)).collect();
                let (delete, write) = crate::descriptions::plan_commit(&stored, &keys);
                for (site, device, fingerprint) in delete {
                    delete_description
                        .execute(params![site, device, fingerprint])
                        .map_err(wrap)?;
                }
                for i in write {
                    let (site, device, fingerprint, received_ms, payload) = described[i];
                    upsert_description
                        .execute(params![
                            site,
                            device,
                            fingerprint,
                            bits(received_ms),
                            &payload[..]
                        ])
                        .map_err(wrap)?;
                }
            }
            // Written when it took entries in this commit (an open pack that did not is
            // unchanged).
            if !packer.is_empty() && (!continuing || packer.len() > appended_from) {
                write_pack(pack_first, &packer, pack_received, &digests, continuing)?;
            }
            if out.contains(&Committed::Conflict) {
                tx.execute(
                    "DELETE FROM conflicts WHERE id <= (SELECT max(id) FROM conflicts) - ?1",
                    [MAX_CONFLICTS_KEPT],
                )
                .map_err(wrap)?;
            }
            let mut delete_range = tx
                .prepare_cached(
                    "DELETE FROM stored_seqs WHERE collector = ?1 AND epoch = ?2 AND first = ?3",
                )
                .map_err(wrap)?;
            let mut put_range = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO stored_seqs (collector, epoch, first, last)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(wrap)?;
            for (collector, epoch, Touched { removed, added }) in touched
                .iter()
                .flat_map(|(c, epochs)| epochs.iter().map(move |(e, t)| (c, e, t)))
            {
                for first in removed {
                    delete_range
                        .execute(params![collector, bits(*epoch), bits(*first)])
                        .map_err(wrap)?;
                }
                let set = self.seqs.get(collector).and_then(|e| e.get(epoch));
                let mut ranges: Vec<(u64, u64)> = added
                    .iter()
                    .filter_map(|seq| set.and_then(|s| s.inclusive_containing(*seq)))
                    .collect();
                ranges.sort_unstable();
                ranges.dedup();
                for (first, last) in ranges {
                    put_range
                        .execute(params![collector, bits(*epoch), bits(first), bits(last)])
                        .map_err(wrap)?;
                }
            }
        }
        let indexed_through = if last_id - self.indexed_through >= HISTORY_INDEX_EVERY {
            index_history(&tx, self.indexed_through, last_id).map_err(wrap)?;
            last_id
        } else {
            self.indexed_through
        };
        tx.commit().map_err(wrap)?;
        if !packer.is_empty()
            && packer.len() < OPEN_PACK_ENTRIES
            && packer.body().len() < OPEN_PACK_BYTES
        {
            self.open = Some(OpenPack {
                first_id: pack_first,
                packer,
                received_ms: pack_received,
                digests,
            });
        }
        for (key, digest) in new_digests {
            self.recent.insert(key, digest);
        }
        self.indexed_through = indexed_through;
        self.next_id = next_id;
        self.remember(
            new_refs,
            MAX_REFERENCES_IN_MEMORY,
            MAX_REFERENCE_BYTES_IN_MEMORY,
        );
        Ok(out)
    }

    /// Takes the references a commit wrote as the devices' current ones, within `max` devices
    /// and `max_bytes` (beyond either, the map starts empty again).
    fn remember(
        &mut self,
        new_refs: HashMap<String, (i64, Vec<u8>)>,
        max: usize,
        max_bytes: usize,
    ) {
        let added: usize = new_refs.values().map(|(_, p)| p.len()).sum();
        if self.references.len() + new_refs.len() > max || self.reference_bytes + added > max_bytes
        {
            self.references.clear();
            self.reference_bytes = 0;
        }
        for (device, reference) in new_refs {
            self.reference_bytes += reference.1.len();
            if let Some((_, old)) = self.references.insert(device, reference) {
                self.reference_bytes -= old.len();
            }
        }
    }

    /// Calls `f` with every stored envelope, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn replay(&self, f: impl FnMut(Envelope)) -> Result<Replay, StoreError> {
        self.replay_after(0, f)
    }

    /// Calls `f` with every stored envelope with an id above `after`, oldest first (what
    /// came after a snapshot).
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn replay_after(
        &self,
        after: i64,
        mut f: impl FnMut(Envelope),
    ) -> Result<Replay, StoreError> {
        let mut replay = Replay::default();
        let mut deliver =
            |id: i64, p: Option<std::borrow::Cow<'_, [u8]>>| match p.map(|p| decode(&p[..])) {
                Some(Ok(envelope)) => {
                    replay.envelopes += 1;
                    f(envelope);
                }
                _ => {
                    replay.undecodable += 1;
                    tracing::warn!(id, "stored envelope no longer decodes; skipped");
                }
            };
        // Rows stored before schema 5, then the packs (their ids follow).
        {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT e.id, e.payload,
                     CASE WHEN e.ref IS NULL THEN NULL ELSE coalesce(r.payload, x'') END
                     FROM envelopes e LEFT JOIN refs r ON r.id = e.ref WHERE e.id > ?1
                     ORDER BY e.id",
                )
                .map_err(|e| self.err(e))?;
            let mut rows = stmt.query([after]).map_err(|e| self.err(e))?;
            while let Some(row) = rows.next().map_err(|e| self.err(e))? {
                let id: i64 = row.get(0).map_err(|e| self.err(e))?;
                let stored = row.get_ref(1).map_err(|e| self.err(e))?;
                let reference = row.get_ref(2).map_err(|e| self.err(e))?;
                let p = stored
                    .as_blob()
                    .ok()
                    .and_then(|s| payload(s, reference.as_blob_or_null().ok().flatten()));
                deliver(id, p);
            }
        }
        let mut refs = RefCache::default();
        let mut damaged_packs = 0;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT first_id, count, body FROM packs
                 WHERE first_id >= coalesce((SELECT max(first_id) FROM packs WHERE first_id <= ?1), ?1)
                 ORDER BY first_id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([after]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let first: i64 = row.get(0).map_err(|e| self.err(e))?;
            let count: i64 = row.get(1).map_err(|e| self.err(e))?;
            let body = row.get_ref(2).map_err(|e| self.err(e))?;
            let Some(entries) = body.as_blob().ok().and_then(crate::pack::decode) else {
                damaged_packs += unbits(count);
                tracing::warn!(first, count, "a stored pack no longer decodes; skipped");
                continue;
            };
            for (i, entry) in entries.iter().enumerate() {
                let id = first + i as i64;
                if id > after {
                    let p = refs.payload(&self.conn, entry).map_err(|e| self.err(e))?;
                    deliver(id, p);
                }
            }
        }
        replay.undecodable += damaged_packs;
        Ok(replay)
    }

    /// The stored collector statuses by site.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn statuses(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT site, status FROM collector_status ORDER BY site")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Envelopes holding a reading of `device` polled in `[from_ms, to_ms)`, oldest first, at
    /// most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn history(
        &self,
        device: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let to = i64::try_from(to_ms).unwrap_or(i64::MAX);
        let from = i64::try_from(from_ms).unwrap_or(i64::MAX);
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        // All parts are read in one transaction, so that an indexing in between cannot move
        // an envelope from one part to another.
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        // (poll time, envelope id) of the candidates, cut back to the first `limit` whenever
        // they grow well beyond it (bounded memory for a long range).
        let mut found: Vec<(i64, i64)> = Vec::new();
        let keep = |found: &mut Vec<(i64, i64)>| {
            found.sort_unstable();
            found.dedup();
            found.truncate(limit);
        };
        let cut = limit.saturating_mul(2).saturating_add(65_536);
        // The spans that overlap the range.
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT entries FROM history_spans
                     WHERE device = ?1 AND last_ms >= ?2 AND first_ms < ?3",
                )
                .map_err(|e| self.err(e))?;
            let mut rows = stmt
                .query(params![device, from, to])
                .map_err(|e| self.err(e))?;
            while let Some(row) = rows.next().map_err(|e| self.err(e))? {
                let bytes = row
                    .get_ref(0)
                    .and_then(|v| Ok(v.as_blob()?))
                    .map_err(|e| self.err(e))?;
                match crate::span::decode(bytes) {
                    Some(entries) => found.extend(
                        entries
                            .into_iter()
                            .filter(|(ts, _)| *ts >= from && *ts < to),
                    ),
                    None => tracing::warn!(device, "a stored history span is damaged; skipped"),
                }
                if found.len() > cut {
                    keep(&mut found);
                }
            }
        }
        // What was indexed row by row (before schema 4, a second device of an envelope), and
        // the tail not yet indexed (at most HISTORY_INDEX_EVERY envelopes and a batch): rows
        // from before schema 5, then packs.
        for sql in [
            "SELECT timestamp_ms, envelope FROM device_history
             WHERE device = ?1 AND timestamp_ms >= ?2 AND timestamp_ms < ?3
             ORDER BY timestamp_ms, envelope LIMIT ?4",
            "SELECT timestamp_ms, id FROM envelopes
             WHERE id > (SELECT value FROM store_meta WHERE key = 'history_indexed_through')
               AND device = ?1 AND timestamp_ms >= ?2 AND timestamp_ms < ?3
             ORDER BY timestamp_ms, id LIMIT ?4",
        ] {
            let mut stmt = tx.prepare_cached(sql).map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(params![device, from, to, limit_sql], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(|e| self.err(e))?;
            for row in rows {
                found.push(row.map_err(|e| self.err(e))?);
            }
        }
        {
            let cursor: i64 = tx
                .query_row(
                    "SELECT value FROM store_meta WHERE key = 'history_indexed_through'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            for_each_pack_entry(&tx, cursor, i64::MAX, |id, entry| {
                let ts = bits(entry.timestamp_ms);
                if entry.device == device && ts >= from && ts < to {
                    found.push((ts, id));
                }
                if found.len() > cut {
                    keep(&mut found);
                }
            })
            .map_err(|e| self.err(e))?;
        }
        keep(&mut found);
        // The payloads, fetched in id order (a pack is read and decoded once for all its
        // envelopes asked for), returned in (poll time, id) order.
        let mut payloads: Vec<Option<Vec<u8>>> = vec![None; found.len()];
        let mut order: Vec<(i64, usize)> = found
            .iter()
            .enumerate()
            .map(|(pos, (_, id))| (*id, pos))
            .collect();
        order.sort_unstable();
        let mut fetch_row = tx
            .prepare_cached(
                "SELECT e.payload,
                     CASE WHEN e.ref IS NULL THEN NULL ELSE coalesce(r.payload, x'') END
                 FROM envelopes e LEFT JOIN refs r ON r.id = e.ref WHERE e.id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut fetch_pack = tx
            .prepare_cached(
                "SELECT first_id, body FROM packs WHERE first_id <= ?1
                 ORDER BY first_id DESC LIMIT 1",
            )
            .map_err(|e| self.err(e))?;
        let mut refs = RefCache::default();
        let mut i = 0;
        while let Some(&(id, pos)) = order.get(i) {
            i += 1;
            let row: Option<(Vec<u8>, Option<Vec<u8>>)> = fetch_row
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some((stored, reference)) = row {
                payloads[pos] = payload(&stored, reference.as_deref()).map(|p| p.into_owned());
                continue;
            }
            let pack: Option<(i64, Vec<u8>)> = fetch_pack
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(|e| self.err(e))?;
            let Some((first, body)) = pack else { continue };
            let Some(entries) = crate::pack::decode(&body) else {
                tracing::warn!(first, "a stored pack no longer decodes; skipped");
                continue;
            };
            // This id and the following ones that are in the same pack.
            let mut j = i - 1;
            while let Some(&(id, pos)) = order.get(j) {
                let Some(entry) = usize::try_from(id - first)
                    .ok()
                    .and_then(|at| entries.get(at))
                else {
                    break;
                };
                payloads[pos] = refs
                    .payload(&tx, entry)
                    .map_err(|e| self.err(e))?
                    .map(|p| p.into_owned());
                j += 1;
            }
            i = i.max(j);
        }
        Ok(payloads
            .into_iter()
            .flatten()
            .filter_map(|p| decode(&p).ok())
            .collect())
    }

    /// Number of stored envelopes.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn envelope_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM envelopes)
                        + coalesce((SELECT sum(count) FROM packs), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(unbits)
            .map_err(|e| self.err(e))
    }

    /// The newest envelope of a collector's epoch, when any (diagnostics and tests).
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn last_seq(&self, collector: &str, epoch: u64) -> Result<Option<u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT last FROM stored_seqs WHERE collector = ?1 AND epoch = ?2")
            .map_err(|e| self.err(e))?;
        let lasts = stmt
            .query_map(params![collector, bits(epoch)], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        let mut max = None;
        for last in lasts {
            let last = unbits(last.map_err(|e| self.err(e))?);
            max = max.max(Some(last));
        }
        Ok(max)
    }
}

/// What [`backup`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup {
    /// Envelopes in the copy.
    pub envelopes: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Copies the database at `path` to a new file `dest` while a gateway may be writing it
/// (SQLite's `VACUUM INTO` from a read-only connection: one read transaction, so the copy is
/// the store as of one commit, compacted), then checks the copy (`PRAGMA integrity_check`).
/// To restore: stop the gateway, put the copy in place of the database file (removing its
/// `-wal` and `-shm` files), start the gateway.
///
/// # Errors
/// [`StoreError`] when `dest` exists already, the database cannot be read, the copy cannot be
/// written, or it fails its check.
pub fn backup(path: &Path, dest: &Path) -> Result<Backup, StoreError> {
    let name = dest.display().to_string();
    if dest.exists() {
        return Err(StoreError::Backup {
            path: name,
            reason: "exists already; a backup never overwrites a file".into(),
        });
    }
    let source = Store::open_read_only(path)?;
    source
        .conn
        .execute("VACUUM INTO ?1", params![name])
        .map_err(|e| source.err(e))?;
    let copy = Store::open_read_only(dest)?;
    let check: String = copy
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| copy.err(e))?;
    if check != "ok" {
        return Err(StoreError::Backup {
            path: name,
            reason: format!("the copy fails its integrity check: {check}"),
        });
    }
    let envelopes = copy.envelope_count()?;
    let bytes = std::fs::metadata(dest).map_or(0, |m| m.len());
    Ok(Backup { envelopes, bytes })
}

/// What a commit changed in the sequence ranges of one collector's epoch.
#[derive(Debug, Default)]
struct Touched {
    /// Starts of stored ranges merged into others.
    removed: Vec<u64>,
    /// Sequence numbers stored.
    added: Vec<u64>,
}

impl Store {
    /// The id of the newest stored envelope (0 when none).
    pub fn last_id(&self) -> i64 {
        self.next_id - 1
    }

    /// Stores a snapshot covering the envelopes up to `through`, and drops all but the newest
    /// [`SNAPSHOTS_KEPT`], in one transaction.
    ///
    /// # Errors
    /// [`StoreError`]; nothing changes then.
    pub fn save_snapshot(
        &mut self,
        through: i64,
        taken_ms: u64,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshots (through, taken_ms, body) VALUES (?1, ?2, ?3)",
            params![through, bits(taken_ms), body],
        )
        .map_err(wrap)?;
        tx.execute(
            "DELETE FROM snapshots WHERE through NOT IN
             (SELECT through FROM snapshots ORDER BY through DESC LIMIT ?1)",
            params![SNAPSHOTS_KEPT],
        )
        .map_err(wrap)?;
        failpoint_in("snapshot");
        tx.commit().map_err(wrap)
    }

    /// The stored snapshots, newest first: `(through, taken_ms, body)`.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn snapshots(&self) -> Result<Vec<(i64, u64, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT through, taken_ms, body FROM snapshots ORDER BY through DESC")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                // A body that is not a blob (a damaged row) reads as empty: refused by the
                // restore, never a failed start.
                let body = r.get_ref(2)?.as_blob().map(<[u8]>::to_vec);
                Ok((r.get(0)?, unbits(r.get(1)?), body.unwrap_or_default()))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// Test hook, read once: `prune:N` or `snapshot:N` makes the process abort inside the Nth
/// retention step that deletes something, or the Nth snapshot, before its transaction commits
/// (what a power cut or SIGKILL there leaves). Unset in operation.
pub const FAILPOINT_IN_ENV: &str = "DEVTEL_FAILPOINT_ABORT_IN";

fn failpoint_in(what: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SET: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let set = SET.get_or_init(|| {
        let v = std::env::var(FAILPOINT_IN_ENV).ok()?;
        let (name, n) = v.split_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    });
    if let Some((name, n)) = set.as_ref().filter(|(name, _)| name == what) {
        if SEEN.fetch_add(1, Ordering::Relaxed) + 1 >= *n {
            tracing::error!("{FAILPOINT_IN_ENV}={name}:{n}: aborting before the commit");
            std::process::abort();
        }
    }
}

/// What one [`Store::prune_raw`] step deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Envelopes deleted.
    pub envelopes: u64,
    /// Free pages given back to the file system.
    pub pages: u64,
    /// Whether there is more to do now (the caller takes another step soon).
    pub more: bool,
}

/// What the raw retention has deleted so far, and what the store still holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawRange {
    /// Envelopes deleted by the retention, in all.
    pub pruned_envelopes: u64,
    /// Every envelope with an id up to this is deleted (0: none).
    pub pruned_through: i64,
    /// The cutoff of the newest step that deleted something: envelopes received before it
    /// are gone (0: none).
    pub pruned_before_ms: u64,
    /// The poll time of the oldest envelope held (`None`: the store holds none).
    pub oldest_poll_ms: Option<u64>,
}

impl Store {
    /// One step of the raw retention: deletes the oldest envelopes received before
    /// `before_ms`, at most [`PRUNE_STEP_ROWS`] packs (and as many rows stored before packs),
    /// then gives back up to [`VACUUM_STEP_PAGES`] free pages. Only envelopes that every kept
    /// snapshot covers are deleted (a start restores a snapshot and replays what is after
    /// it); without a snapshot nothing is. What is deleted is always the oldest part, in id
    /// order, and with it the history index entries and spans that point only into it. The
    /// stored sequence ranges stay: a redelivery of a deleted envelope is still recognised.
    ///
    /// # Errors
    /// [`StoreError`]; nothing changes then.
    pub fn prune_raw(&mut self, before_ms: u64) -> Result<Pruned, StoreError> {
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut pruned = Pruned::default();
        let tx = self.conn.transaction().map_err(wrap)?;
        let limit: Option<i64> = tx
            .query_row("SELECT min(through) FROM snapshots", [], |r| r.get(0))
            .map_err(wrap)?;
        let Some(limit) = limit else {
            return Ok(pruned);
        };
        let before = bits(before_ms);
        // Rows stored before packs (their ids are below every pack's), then packs.
        let mut through = None;
        let mut blocked = false;
        let mut rows = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, received_ms FROM envelopes WHERE id <= ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(wrap)?;
            let mut found = stmt.query(params![limit, PRUNE_STEP_ROWS]).map_err(wrap)?;
            while let Some(row) = found.next().map_err(wrap)? {
                rows += 1;
                let (id, received): (i64, i64) =
                    (row.get(0).map_err(wrap)?, row.get(1).map_err(wrap)?);
                if unbits(received) >= before_ms {
                    blocked = true;
                    break;
                }
                through = Some(id);
                pruned.envelopes += 1;
            }
        }
        if let Some(id) = through {
            tx.execute("DELETE FROM envelopes WHERE id <= ?1", params![id])
                .map_err(wrap)?;
        }
        if !blocked && rows < PRUNE_STEP_ROWS {
            let mut last_pack = None;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT first_id, count, received_ms FROM packs WHERE first_id <= ?1
                         ORDER BY first_id LIMIT ?2",
                    )
                    .map_err(wrap)?;
                let mut found = stmt
                    .query(params![limit, PRUNE_STEP_ROWS - rows])
                    .map_err(wrap)?;
                while let Some(row) = found.next().map_err(wrap)? {
                    rows += 1;
                    let (first, count): (i64, i64) =
                        (row.get(0).map_err(wrap)?, row.get(1).map_err(wrap)?);
                    let received: Option<i64> = row.get(2).map_err(wrap)?;
                    let last = first.saturating_add(count).saturating_sub(1);
                    if last > limit || received.is_none_or(|r| unbits(r) >= before_ms) {
                        blocked = true;
                        break;
                    }
                    last_pack = Some(first);
                    through = Some(last);
                    pruned.envelopes += unbits(count);
                }
            }
            if let Some(first) = last_pack {
                tx.execute("DELETE FROM packs WHERE first_id <= ?1", params![first])
                    .map_err(wrap)?;
                // A deleted pack is not appended to again.
                if self.open.as_ref().is_some_and(|o| o.first_id <= first) {
                    self.open = None;
                }
            }
        }
        // The history spans of deleted envelopes, at most SPANS_STEP per step (an indexing run
        // leaves one per device, spread over the table): those of an earlier step's
        // envelopes go first.
        let pruned_before: i64 = tx
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'raw_pruned_through'",
                [],
                |r| r.get(0),
            )
            .map_err(wrap)?;
        let spans_through = through.unwrap_or(pruned_before).max(pruned_before);
        let spans = tx
            .execute(
                "DELETE FROM history_spans WHERE (device, last_ms, through) IN
                 (SELECT device, last_ms, through FROM history_spans WHERE through <= ?1 LIMIT ?2)",
                params![spans_through, SPANS_STEP],
            )
            .map_err(wrap)?;
        let spans_left = spans as i64 >= SPANS_STEP;
        let Some(through) = through else {
            tx.commit().map_err(wrap)?;
            pruned.more = spans_left;
            return Ok(pruned);
        };
        tx.execute(
            "DELETE FROM device_history WHERE envelope <= ?1",
            params![through],
        )
        .map_err(wrap)?;
        tx.execute(
            "UPDATE store_meta SET value = CASE key
                 WHEN 'raw_pruned_through' THEN ?1
                 WHEN 'raw_pruned_envelopes' THEN value + ?2
                 ELSE ?3 END
             WHERE key IN ('raw_pruned_through', 'raw_pruned_envelopes', 'raw_pruned_before_ms')",
            params![through, bits(pruned.envelopes), before],
        )
        .map_err(wrap)?;
        failpoint_in("prune");
        tx.commit().map_err(wrap)?;
        let free = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
        };
        let free_before = free(&self.conn).map_err(wrap)?;
        // The pragma frees one page per step of the statement.
        {
            let mut vacuum = self
                .conn
                .prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))
                .map_err(wrap)?;
            let mut steps = vacuum.query([]).map_err(wrap)?;
            while steps.next().map_err(wrap)?.is_some() {}
        }
        let free_after = free(&self.conn).map_err(wrap)?;
        pruned.pages = unbits(free_before.saturating_sub(free_after));
        pruned.more = !blocked && rows >= PRUNE_STEP_ROWS || free_after > 0 || spans_left;
        Ok(pruned)
    }

    /// What the raw retention has deleted so far, and the poll time of the oldest envelope
    /// held.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub fn raw_range(&self) -> Result<RawRange, StoreError> {
        let meta = |key: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(
                    "SELECT value FROM store_meta WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()
                .map(Option::unwrap_or_default)
                .map_err(|e| self.err(e))
        };
        let oldest_row: Option<i64> = self
            .conn
            .query_row(
                "SELECT timestamp_ms FROM envelopes ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let oldest_poll_ms = match oldest_row {
            Some(ts) => Some(unbits(ts)),
            None => self
                .conn
                .query_row(
                    "SELECT body FROM packs ORDER BY first_id LIMIT 1",
                    [],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .optional()
                .map_err(|e| self.err(e))?
                .and_then(|body| {
                    crate::pack::decode(&body)?
                        .iter()
                        .map(|e| e.timestamp_ms)
                        .min()
                }),
        };
        Ok(RawRange {
            pruned_envelopes: unbits(meta("raw_pruned_envelopes")?),
            pruned_through: meta("raw_pruned_through")?,
            pruned_before_ms: unbits(meta("raw_pruned_before_ms")?),
            oldest_poll_ms,
        })
    }
}

/// Reference payloads by id, read as pack entries need them; at most
/// [`MAX_REFERENCES_IN_MEMORY`] and [`MAX_REFERENCE_BYTES_IN_MEMORY`] (beyond either the cache
/// starts empty again).
#[derive(Default)]
struct RefCache {
    map: HashMap<i64, Vec<u8>>,
    bytes: usize,
}

impl RefCache {
    /// The payload of `entry` (`None` when its delta does not apply: a damaged row or a
    /// missing reference, which reads as an empty one).
    fn payload<'e>(
        &mut self,
        conn: &Connection,
        entry: &Entry<'e>,
    ) -> rusqlite::Result<Option<std::borrow::Cow<'e, [u8]>>> {
        let Some(id) = entry.reference else {
            return Ok(payload(entry.stored, None));
        };
        if !self.map.contains_key(&id) {
            let bytes: Vec<u8> = conn
                .prepare_cached("SELECT payload FROM refs WHERE id = ?1")?
                .query_row(params![id], |r| r.get(0))
                .optional()?
                .unwrap_or_default();
            if self.map.len() >= MAX_REFERENCES_IN_MEMORY
                || self.bytes + bytes.len() > MAX_REFERENCE_BYTES_IN_MEMORY
            {
                self.map.clear();
                self.bytes = 0;
            }
            self.bytes += bytes.len();
            self.map.insert(id, bytes);
        }
        let reference = self.map.get(&id).map_or(&[][..], Vec::as_slice);
        Ok(payload(entry.stored, Some(reference)).map(|p| std::borrow::Cow::Owned(p.into_owned())))
    }
}

/// Calls `f` with the id and entry of every packed envelope with an id in `(after, through]`,
/// in id order. A pack that does not decode is skipped with a warning.
fn for_each_pack_entry(
    conn: &Connection,
    after: i64,
    through: i64,
    mut f: impl FnMut(i64, &Entry<'_>),
) -> rusqlite::Result<()> {
    // From the pack that holds `after + 1` (the newest starting at or below `after`, found on
    // the primary key; a pack may hold one envelope or thousands), to the last one holding an
    // id up to `through`.
    let mut stmt = conn.prepare_cached(
        "SELECT first_id, body FROM packs
         WHERE first_id >= coalesce((SELECT max(first_id) FROM packs WHERE first_id <= ?1), ?1)
           AND first_id <= ?2
         ORDER BY first_id",
    )?;
    let mut rows = stmt.query(params![after, through])?;
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        let Some(entries) = row.get_ref(1)?.as_blob().ok().and_then(crate::pack::decode) else {
            tracing::warn!(first, "a stored pack no longer decodes; skipped");
            continue;
        };
        for (i, entry) in entries.iter().enumerate() {
            let id = first + i as i64;
            if id > after && id <= through {
                f(id, entry);
            }
        }
    }
    Ok(())
}

/// Fills the packs' `received_ms` from their entries (migration 7). A pack that does not
/// decode gets 0: it goes with the first retention step, as it would be skipped by a replay.
fn fill_pack_received(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    let mut found: Vec<(i64, u64)> = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT first_id, body FROM packs")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let first: i64 = row.get(0)?;
            let newest = row
                .get_ref(1)?
                .as_blob()
                .ok()
                .and_then(crate::pack::decode)
                .and_then(|entries| entries.iter().map(|e| e.received_ms).max())
                .unwrap_or(0);
            found.push((first, newest));
        }
    }
    let mut put = tx.prepare("UPDATE packs SET received_ms = ?2 WHERE first_id = ?1")?;
    for (first, newest) in found {
        put.execute(params![first, bits(newest)])?;
    }
    Ok(())
}

/// Fills `stored_seqs` from the envelope rows stored before schema 5 (migration 5).
fn fill_stored_seqs(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    let mut sets: HashMap<String, HashMap<u64, SeqSet>> = HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT collector, epoch, seq FROM envelopes")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let collector = row.get_ref(0)?.as_str()?;
            let (epoch, seq) = (unbits(row.get(1)?), unbits(row.get(2)?));
            let epochs = match sets.get_mut(collector) {
                Some(epochs) => epochs,
                None => sets.entry(collector.to_string()).or_default(),
            };
            epochs.entry(epoch).or_default().insert(seq);
        }
    }
    let mut put = tx.prepare(
        "INSERT INTO stored_seqs (collector, epoch, first, last) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (collector, epochs) in &sets {
        for (epoch, set) in epochs {
            let mut ranges: Vec<(u64, u64)> = set.ranges().map(|(s, e)| (s, e - 1)).collect();
            if set.contains(u64::MAX) {
                ranges.push((u64::MAX, u64::MAX));
            }
            for (first, last) in ranges {
                put.execute(params![collector, bits(*epoch), bits(first), bits(last)])?;
            }
        }
    }
    Ok(())
}

/// An envelope's payload from what is stored: the delta against its reference (migration 3),
/// or the full payload when it has none. `None` when the delta does not apply (the queries
/// give a reference that has gone missing as an empty one, so that it fails here rather than
/// the delta being taken for a full payload).
fn payload<'a>(stored: &'a [u8], reference: Option<&[u8]>) -> Option<std::borrow::Cow<'a, [u8]>> {
    match reference {
        Some(reference) => match crate::delta::apply(reference, stored) {
            Ok(p) => Some(std::borrow::Cow::Owned(p)),
            Err(e) => {
                tracing::warn!(error = %e, "a stored delta does not apply to its reference");
                None
            }
        },
        None => Some(std::borrow::Cow::Borrowed(stored)),
    }
}

/// Adds the envelopes in `(after, through]` to the history index, one span per device, and
/// moves its cursor.
fn index_history(tx: &rusqlite::Transaction, after: i64, through: i64) -> rusqlite::Result<()> {
    // At most HISTORY_INDEX_EVERY envelopes and a batch.
    let mut by_device: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT device, timestamp_ms, id FROM envelopes
             WHERE id > ?1 AND id <= ?2 AND device IS NOT NULL",
        )?;
        let mut rows = select.query(params![after, through])?;
        while let Some(row) = rows.next()? {
            let device = row.get_ref(0)?.as_str()?;
            let entry = (row.get(1)?, row.get(2)?);
            match by_device.get_mut(device) {
                Some(entries) => entries.push(entry),
                None => {
                    by_device.insert(device.to_string(), vec![entry]);
                }
            }
        }
    }
    for_each_pack_entry(tx, after, through, |id, entry| {
        let e = (bits(entry.timestamp_ms), id);
        match by_device.get_mut(entry.device) {
            Some(entries) => entries.push(e),
            None => {
                by_device.insert(entry.device.to_string(), vec![e]);
            }
        }
    })?;
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO history_spans (device, last_ms, through, first_ms, entries)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (device, mut entries) in by_device {
        entries.sort_unstable();
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            continue;
        };
        insert.execute(params![
            device,
            last.0,
            through,
            first.0,
            crate::span::encode(&entries)
        ])?;
    }
    tx.execute(
        "UPDATE store_meta SET value = ?1 WHERE key = 'history_indexed_through'",
        params![through],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::{encode_to_vec, Reading};

    fn item(seq: u64, ts: u64) -> Item {
        item_for("d1", seq, ts)
    }

    fn item_for(device: &str, seq: u64, ts: u64) -> Item {
        crate::testdata::no_response_item(device, seq, ts)
    }

    #[test]
    fn the_newest_descriptions_per_device_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("devtel-store-desc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("devtel.sqlite");
        let description = |device: &str, n: u8, at: u64| {
            let payload = bytes::Bytes::from(vec![5, 0, n]);
            Item::Description {
                site: "s".into(),
                device: device.into(),
                fingerprint: devtel_protocol::compact::fingerprint(&payload),
                payload,
                received_ms: at,
            }
        };
        {
            let mut s = Store::open(&path).unwrap();
            let items: Vec<Item> = (0..6u8)
                .map(|n| description("k1", n, 100 + u64::from(n)))
                .collect();
            s.commit(&items).unwrap();
            // The same description again: one row, received anew.
            s.commit(&[description("k2", 9, 50), description("k1", 2, 200)])
                .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let kept: Vec<(String, String, Vec<u8>)> = s
            .descriptions()
            .unwrap()
            .into_iter()
            .map(|(site, device, p)| (site, device, p.to_vec()))
            .collect();
        let row = |d: &str, n: u8| ("s".to_string(), d.to_string(), vec![5, 0, n]);
        assert_eq!(
            kept,
            [
                row("k1", 3),
                row("k1", 4),
                row("k1", 5),
                row("k1", 2),
                row("k2", 9)
            ],
            "the newest {} of k1, oldest first, then k2",
            crate::descriptions::PER_DEVICE
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn envelopes_survive_reopen_once_each_with_u64_identity() {
        let dir = std::env::temp_dir().join(format!("devtel-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/devtel.sqlite");
        {
            let mut s = Store::open(&path).unwrap();
            assert_eq!(
                s.commit(&[item(0, 10), item(1, 20), item(0, 10)]).unwrap(),
                [Committed::New, Committed::New, Committed::Repeat],
                "a repeat in the same batch is not stored twice"
            );
            assert_eq!(
                s.commit(&[item(1, 20), item(2, 30)]).unwrap(),
                [Committed::Repeat, Committed::New]
            );
            s.commit(&[Item::Status {
                site: "s".into(),
                status: Some("{\"state\":\"online\"}".into()),
                received_ms: 5,
            }])
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let mut seqs = Vec::new();
        let replay = s
            .replay(|e| {
                assert_eq!(e.epoch, u64::MAX - 1);
                seqs.push(e.seq)
            })
            .unwrap();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(replay.undecodable, 0);
        assert_eq!(s.last_seq("c1", u64::MAX - 1).unwrap(), Some(2));
        assert_eq!(s.history("d1", 15, 31, 10).unwrap().len(), 2);
        assert_eq!(s.history("d1", 15, 31, 1).unwrap()[0].seq, 1);
        assert_eq!(s.statuses().unwrap()["s"], "{\"state\":\"online\"}");
        let ro = Store::open_read_only(&path).unwrap();
        assert_eq!(ro.envelope_count().unwrap(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A repeat of a stored identity with other bytes is a conflict, kept aside, also after a
    /// restart (the digests come back from the packs); the same bytes are a redelivery.
    #[test]
    fn a_repeat_with_other_bytes_is_a_conflict_kept_aside_across_a_restart() {
        let dir = temp("conflict");
        let path = dir.join("db.sqlite");
        // Same identity (c1, epoch, seq 3), other poll time: other bytes.
        let (first, forged) = (item(3, 1_000), item(3, 2_000));
        {
            let mut s = Store::open(&path).unwrap();
            assert_eq!(
                s.commit(&[first.clone(), forged.clone(), first.clone()])
                    .unwrap(),
                [Committed::New, Committed::Conflict, Committed::Repeat]
            );
            assert_eq!(s.conflicts(10).unwrap().len(), 1);
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(
            s.commit(&[forged.clone(), first.clone(), item(4, 3_000)])
                .unwrap(),
            [Committed::Conflict, Committed::Repeat, Committed::New]
        );
        assert_eq!(s.repeats_unverified(), 0);
        let kept = s.conflicts(10).unwrap();
        assert_eq!(kept.len(), 2);
        let Item::Envelope { payload, .. } = &forged else {
            unreachable!()
        };
        assert!(kept.iter().all(|c| c.payload == payload[..]));
        assert_eq!(
            (kept[0].collector.as_str(), kept[0].seq),
            ("c1", 3),
            "newest first"
        );
        // The stored envelope is the first one, once.
        let history = s.history("d1", 0, u64::MAX, 10).unwrap();
        assert_eq!(
            history.iter().map(|e| e.timestamp_ms).collect::<Vec<_>>(),
            [1_000, 3_000]
        );
    }

    /// The digests are kept in the store: the hash must never change.
    #[test]
    fn the_digest_hash_is_stable() {
        // Computed independently (a few lines of Python of the same definition).
        assert_eq!(fnv(&[b""]), 0xaf64_724c_8602_eb6e);
        assert_eq!(fnv(&[b"abcdefgh", b"ij"]), 0x1d84_786b_a90a_e153);
        assert_eq!(identity_key("c1", 5, 3), 0x8d0f_b385_0864_f128);
        assert_ne!(fnv(&[b"abcdefgh", b"ij"]), fnv(&[b"abcdefghi", b"j"]));
        assert_ne!(fnv(&[b"ab"]), fnv(&[b"ba"]));
    }

    #[test]
    fn claims_are_kept() {
        use crate::sites::{Claim, OwnerKind};
        let dir = temp("claims");
        let path = dir.join("db.sqlite");
        let claim = |kind, id: &str, site: &str| {
            Item::Claim(Claim {
                kind,
                id: id.into(),
                site: site.into(),
            })
        };
        {
            let mut s = Store::open(&path).unwrap();
            s.commit(&[
                claim(OwnerKind::Collector, "c1", "a"),
                claim(OwnerKind::Device, "d1", "a"),
            ])
            .unwrap();
            // A second claim of the same id does not move it.
            s.commit(&[claim(OwnerKind::Device, "d1", "b")]).unwrap();
        }
        let mut owners = Store::open(&path).unwrap().owners().unwrap();
        owners.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        assert_eq!(
            owners,
            [
                Claim {
                    kind: OwnerKind::Collector,
                    id: "c1".into(),
                    site: "a".into()
                },
                Claim {
                    kind: OwnerKind::Device,
                    id: "d1".into(),
                    site: "a".into()
                },
            ]
        );
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("devtel-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn cursor(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'history_indexed_through'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Envelopes of three devices, more than one bulk indexing: the history of each is the
    /// same whether a reading is in the index or still in the tail, in poll-time order, and
    /// the limit counts across both.
    #[test]
    fn history_is_the_same_across_the_indexed_part_and_the_tail() {
        let dir = temp("history");
        let path = dir.join("db.sqlite");
        let mut s = Store::open(&path).unwrap();
        let n = HISTORY_INDEX_EVERY as u64 + 3000;
        let devices = ["a", "b", "c"];
        // Poll times not in id order: every 10th envelope is a late one from long ago.
        let ts = |seq: u64| {
            if seq % 10 == 9 {
                seq / 10
            } else {
                1_000_000 + seq
            }
        };
        let all: Vec<Item> = (0..n)
            .map(|seq| item_for(devices[(seq % 3) as usize], seq, ts(seq)))
            .collect();
        for batch in all.chunks(1000) {
            assert!(s
                .commit(batch)
                .unwrap()
                .iter()
                .all(|c| *c == Committed::New));
        }
        let through = cursor(&path);
        assert!(
            through >= HISTORY_INDEX_EVERY && through < n as i64,
            "{through}"
        );
        let ro = Store::open_read_only(&path).unwrap();
        for (d, device) in devices.iter().enumerate() {
            let mut expected: Vec<(u64, u64)> = (0..n)
                .filter(|seq| seq % 3 == d as u64)
                .map(|seq| (ts(seq), seq))
                .collect();
            expected.sort();
            let got: Vec<(u64, u64)> = ro
                .history(device, 0, u64::MAX, usize::MAX)
                .unwrap()
                .iter()
                .map(|e| (e.timestamp_ms, e.seq))
                .collect();
            assert_eq!(got, expected, "{device}");
            // A window and a limit that cut across the index and the tail.
            let from = ts(through as u64 - 100);
            let window: Vec<(u64, u64)> = expected
                .iter()
                .copied()
                .filter(|(t, _)| *t >= from && *t < from + 500)
                .take(120)
                .collect();
            let got: Vec<(u64, u64)> = ro
                .history(device, from, from + 500, 120)
                .unwrap()
                .iter()
                .map(|e| (e.timestamp_ms, e.seq))
                .collect();
            assert_eq!(got, window, "{device}");
        }
        // Repeats are not indexed twice, and a reopened store keeps its cursor.
        assert!(s
            .commit(&all[..10])
            .unwrap()
            .iter()
            .all(|c| *c == Committed::Repeat));
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.indexed_through, through);
        assert_eq!(
            s.history("a", 0, u64::MAX, usize::MAX).unwrap().len(),
            n.div_ceil(3) as usize
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Polls of real recorded copiers with advancing counters, draining toner, a cartridge of
    /// another make and a copier replaced by another model: stored as deltas against one
    /// reference per device and change, and every envelope comes back exactly, after a reopen
    /// too.
    #[test]
    fn readings_are_stored_as_deltas_and_come_back_exactly() {
        use devtel_protocol::Level;
        let dir = temp("compact");
        let path = dir.join("db.sqlite");
        let names = crate::testdata::COPIERS;
        let bases: Vec<_> = names.iter().map(|n| crate::testdata::printer(n)).collect();
        let envelope = |seq: u64, poll: u64, d: usize| {
            // From poll 20 on, the first device is another model (replaced): new descriptions
            // throughout, a new reference.
            let mut r = if d == 0 && poll >= 20 {
                let mut other = bases[1].clone();
                other.device = bases[0].device.clone();
                other
            } else {
                bases[d].clone()
            };
            for m in r.markers.iter_mut() {
                m.life_count = m.life_count.wrapping_add(poll as u32 * 37);
            }
            r.counters.total = r.counters.total.map(|t| t + poll * 37);
            r.uptime_ticks = r.uptime_ticks.map(|t| t.wrapping_add(poll as u32 * 30_000));
            if let Some(s) = r.supplies.first_mut() {
                s.level = Some(Level::Value(100 - poll as u32));
                if d == 0 && poll >= 20 {
                    s.description = "Toner (replaced, other make)".try_into().unwrap();
                }
            }
            let mut e = Envelope::new(
                "site".try_into().unwrap(),
                "c1".try_into().unwrap(),
                5,
                seq,
                1_000 + poll * 300_000,
            );
            e.readings.push(Reading::Printer(r)).unwrap();
            e
        };
        let mut committed = Vec::new();
        let mut s = Store::open(&path).unwrap();
        for poll in 0..40u64 {
            let batch: Vec<Item> = (0..names.len())
                .map(|d| {
                    let e = envelope(poll * names.len() as u64 + d as u64, poll, d);
                    committed.push(e.clone());
                    Item::Envelope {
                        payload: encode_to_vec(&e).unwrap().into(),
                        envelope: Box::new(e),
                        received_ms: 0,
                    }
                })
                .collect();
            assert!(s
                .commit(&batch)
                .unwrap()
                .iter()
                .all(|c| *c == Committed::New));
            if poll == 30 {
                // A restart in between: the references are found again, none is added.
                drop(s);
                s = Store::open(&path).unwrap();
            }
        }
        let mut replayed = Vec::new();
        assert_eq!(s.replay(|e| replayed.push(e)).unwrap().undecodable, 0);
        assert_eq!(replayed, committed);
        let history = s.history("sharp", 0, u64::MAX, usize::MAX).unwrap();
        let expected: Vec<&Envelope> = committed
            .iter()
            .filter(|e| e.readings[0].device() == "sharp")
            .collect();
        assert_eq!(history.iter().collect::<Vec<_>>(), expected);

        let conn = Connection::open(&path).unwrap();
        let refs: i64 = conn
            .query_row("SELECT count(*) FROM refs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            refs,
            names.len() as i64 + 1,
            "one per device, one for the new model"
        );
        let (full, stored): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT sum(length(payload)) FROM refs),
                        (SELECT sum(length(body)) FROM packs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let n = committed.len() as i64;
        let payloads: i64 = committed
            .iter()
            .map(|e| encode_to_vec(e).unwrap().len() as i64)
            .sum();
        // Per reading: the delta and the envelope's identity (collector, epoch, seq, times,
        // reference, and the device's name, which each pack of 8 devices here holds once).
        assert!(
            stored * 8 < payloads,
            "{stored} B stored for {payloads} B of payloads"
        );
        assert!(stored / n <= 48, "{} B per reading", stored / n);
        assert!(full > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A commit that fails is rolled back whole; the redelivery of its envelopes is stored,
    /// not taken for repeats, and the open pack is closed.
    #[test]
    fn a_failed_commit_takes_nothing_and_its_redelivery_is_stored() {
        let dir = temp("failed");
        let path = dir.join("db.sqlite");
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.commit(&[item(0, 10)]).unwrap(), [Committed::New]);
        s.conn.busy_timeout(Duration::from_millis(20)).unwrap();
        // Another writer holds the database: the commit fails and is rolled back.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        assert!(s.commit(&[item(1, 20), item(2, 30)]).is_err());
        other.execute_batch("ROLLBACK").unwrap();
        // The broker redelivers what was not acknowledged: stored now, not taken for repeats.
        assert_eq!(
            s.commit(&[item(1, 20), item(2, 30), item(0, 10)]).unwrap(),
            [Committed::New, Committed::New, Committed::Repeat]
        );
        // A status alone leaves the open pack as it is; the next envelope joins it.
        let status = Item::Status {
            site: "s".into(),
            status: Some("{}".into()),
            received_ms: 1,
        };
        s.commit(&[status]).unwrap();
        assert_eq!(s.commit(&[item(4, 50)]).unwrap(), [Committed::New]);
        let packs = |s: &Store| -> Vec<(i64, i64)> {
            let mut stmt = s
                .conn
                .prepare("SELECT first_id, count FROM packs ORDER BY first_id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        // The failed commit closed the first pack (open for appends until then).
        assert_eq!(packs(&s), [(1, 1), (2, 3)]);
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert_eq!(
            s.commit(&[item(2, 30), item(3, 40)]).unwrap(),
            [Committed::Repeat, Committed::New],
            "the stored ranges survive a restart"
        );
        assert_eq!(
            packs(&s),
            [(1, 1), (2, 3), (5, 1)],
            "a start opens a new pack"
        );
        let mut seqs = Vec::new();
        s.replay(|e| seqs.push(e.seq)).unwrap();
        assert_eq!(seqs, [0, 1, 2, 4, 3]);
        assert_eq!(s.envelope_count().unwrap(), 5);
        assert_eq!(s.last_seq("c1", u64::MAX - 1).unwrap(), Some(4));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn snapshots_keep_the_newest_two_and_the_tail_after_one_replays() {
        let dir = temp("snapshots");
        let path = dir.join("db.sqlite");
        let mut s = Store::open(&path).unwrap();
        assert!(s.snapshots().unwrap().is_empty());
        s.commit(&[item(0, 10), item(1, 20)]).unwrap();
        let first = s.last_id();
        s.save_snapshot(first, 5, b"one").unwrap();
        s.commit(&[item(2, 30)]).unwrap();
        s.save_snapshot(s.last_id(), 6, b"two").unwrap();
        s.commit(&[item(3, 40), item(4, 50)]).unwrap();
        s.save_snapshot(s.last_id(), 7, b"three").unwrap();
        let kept = s.snapshots().unwrap();
        assert_eq!(
            kept.iter()
                .map(|k| (k.1, k.2.as_slice()))
                .collect::<Vec<_>>(),
            [(7, &b"three"[..]), (6, &b"two"[..])],
            "newest first, two kept"
        );
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.last_id(), kept[0].0);
        let tail = |after: i64| {
            let mut seqs = Vec::new();
            s.replay_after(after, |e| seqs.push(e.seq)).unwrap();
            seqs
        };
        assert_eq!(tail(first), [2, 3, 4]);
        assert_eq!(tail(kept[1].0), [3, 4]);
        assert_eq!(tail(kept[0].0), Vec::<u64>::new());
        assert_eq!(tail(0), [0, 1, 2, 3, 4]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn raw_retention_deletes_the_oldest_covered_envelopes_and_keeps_dedup() {
        let dir = temp("retention");
        let path = dir.join("db.sqlite");
        let mut s = Store::open(&path).unwrap();
        let pragma = |s: &Store, name: &str| -> i64 {
            s.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(pragma(&s, "auto_vacuum"), 2, "incremental");
        // One big commit (a pack that the history index covers with spans), then lone ones.
        let big: Vec<Item> = (0..9_000).map(|seq| item(seq, seq * 1000)).collect();
        s.commit(&big).unwrap();
        for seq in 9_000..9_300 {
            s.commit(&[item(seq, seq * 1000)]).unwrap();
        }
        let spans = |s: &Store| -> i64 {
            s.conn
                .query_row("SELECT count(*) FROM history_spans", [], |r| r.get(0))
                .unwrap()
        };
        assert!(spans(&s) > 0);
        let prune_all = |s: &mut Store, before: u64| {
            let mut total = 0;
            loop {
                let step = s.prune_raw(before).unwrap();
                total += step.envelopes;
                if !step.more {
                    return total;
                }
            }
        };
        // Nothing without a snapshot.
        assert_eq!(prune_all(&mut s, u64::MAX), 0);
        // Envelope ids are seq + 1. Two snapshots: only what both cover may go.
        s.save_snapshot(9_100, 1, b"older").unwrap();
        s.save_snapshot(9_200, 2, b"newer").unwrap();
        let pages = pragma(&s, "page_count");
        // Lone commits append to the open pack (up to OPEN_PACK_ENTRIES and OPEN_PACK_BYTES).
        // What a cutoff deletes: the packs from the oldest on, as long as all of a pack was
        // received before the cutoff and the snapshots cover it.
        let packs: Vec<(i64, i64, u64)> = {
            let mut stmt = s
                .conn
                .prepare("SELECT first_id, count, received_ms FROM packs ORDER BY first_id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, unbits(r.get(2)?))))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(packs[0], (1, 9_000, 8_999_001), "the big commit");
        assert!(packs.len() > 5, "the lone commits: {packs:?}");
        assert!(packs[1..].iter().all(|p| p.1 > 1), "appended: {packs:?}");
        let through = |cutoff: u64, limit: i64| -> i64 {
            packs
                .iter()
                .take_while(|(first, count, received)| {
                    *received < cutoff && first + count - 1 <= limit
                })
                .map(|(first, count, _)| first + count - 1)
                .last()
                .unwrap_or(0)
        };
        // Received before seq 9,050 was (received_ms = poll time + 1).
        let first_cut = through(9_050 * 1000 + 1, 9_100);
        assert!((9_000..9_050).contains(&first_cut));
        assert_eq!(prune_all(&mut s, 9_050 * 1000 + 1), first_cut as u64);
        assert_eq!(
            spans(&s),
            0,
            "spans pointing into deleted envelopes go with them"
        );
        assert!(
            pragma(&s, "page_count") < pages,
            "pages given back: {} of {pages}",
            pragma(&s, "page_count")
        );
        assert_eq!(pragma(&s, "freelist_count"), 0);
        // Later cutoffs stop at the older snapshot (9,100).
        let second_cut = through(u64::MAX, 9_100);
        assert!((9_050..=9_100).contains(&second_cut), "{second_cut}");
        assert_eq!(prune_all(&mut s, u64::MAX), (second_cut - first_cut) as u64);
        let range = s.raw_range().unwrap();
        assert_eq!(
            range,
            RawRange {
                pruned_envelopes: second_cut as u64,
                pruned_through: second_cut,
                pruned_before_ms: u64::MAX,
                oldest_poll_ms: Some(second_cut as u64 * 1000),
            }
        );
        let mut seqs = Vec::new();
        s.replay(|e| seqs.push(e.seq)).unwrap();
        assert_eq!(seqs, (second_cut as u64..9_300).collect::<Vec<_>>());
        assert_eq!(s.envelope_count().unwrap(), 9_300 - second_cut as u64);
        let history: Vec<u64> = s
            .history("d1", 0, u64::MAX, 10_000)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(history, seqs);
        // A redelivery of a deleted envelope is still known.
        assert_eq!(s.commit(&[item(5, 5_000)]).unwrap(), [Committed::Repeat]);
        // With everything deleted, ids still go on from where they were.
        s.save_snapshot(9_300, 3, b"all").unwrap();
        s.conn
            .execute("DELETE FROM snapshots WHERE through < 9300", [])
            .unwrap();
        assert_eq!(prune_all(&mut s, u64::MAX), 9_300 - second_cut as u64);
        assert_eq!(s.raw_range().unwrap().oldest_poll_ms, None);
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.last_id(), 9_300);
        assert_eq!(
            s.commit(&[item(9_300, 9_300_000)]).unwrap(),
            [Committed::New]
        );
        assert_eq!(s.last_id(), 9_301);
        assert_eq!(s.commit(&[item(7, 7_000)]).unwrap(), [Committed::Repeat]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_backup_under_load_is_a_consistent_prefix_that_opens() {
        let dir = temp("backup");
        let path = dir.join("db.sqlite");
        let mut s = Store::open(&path).unwrap();
        s.commit(&[item(0, 10)]).unwrap();
        // A writer keeps committing while the backups are taken.
        let writer = std::thread::spawn(move || {
            for seq in 1..400u64 {
                s.commit(&[item(seq, 10 + seq)]).unwrap();
            }
            s
        });
        let mut backups = Vec::new();
        for i in 0..4 {
            let dest = dir.join(format!("backup-{i}.sqlite"));
            let b = backup(&path, &dest).unwrap();
            assert!(b.envelopes >= 1 && b.bytes > 0, "{b:?}");
            backups.push((dest, b));
        }
        let s = writer.join().unwrap();
        let mut all = Vec::new();
        s.replay(|e| all.push(e)).unwrap();
        assert_eq!(all.len(), 400);
        for (dest, b) in &backups {
            // The copy is the store as of one commit: a prefix, envelope for envelope.
            let mut copy = Store::open(dest).unwrap();
            let mut got = Vec::new();
            let replay = copy.replay(|e| got.push(e)).unwrap();
            assert_eq!(replay.undecodable, 0);
            assert_eq!(got.len() as u64, b.envelopes);
            assert_eq!(got[..], all[..got.len()]);
            // And it takes commits as the original would: what it lacks is new to it.
            let next = got.len() as u64;
            assert_eq!(
                copy.commit(&[item(next, 10 + next), item(0, 10)]).unwrap(),
                [Committed::New, Committed::Repeat]
            );
        }
        let err = backup(&path, &backups[0].0).unwrap_err().to_string();
        assert!(err.contains("exists already"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A delta that no longer applies (a damaged row) is counted and skipped, never a panic
    /// and never a wrong envelope.
    #[test]
    fn a_damaged_delta_is_skipped_and_counted() {
        let dir = temp("damaged");
        let path = dir.join("db.sqlite");
        let mut s = Store::open(&path).unwrap();
        s.commit(&[item(0, 10), item(1, 20), item(2, 30)]).unwrap();
        // The pack rewritten with the delta of seq 1 damaged.
        let conn = Connection::open(&path).unwrap();
        let body: Vec<u8> = conn
            .query_row("SELECT body FROM packs", [], |r| r.get(0))
            .unwrap();
        let mut packer = Packer::new();
        for mut entry in crate::pack::decode(&body).unwrap() {
            if entry.seq == 1 {
                entry.stored = &[0xfc, 0x7f];
            }
            packer.push(&entry);
        }
        conn.execute("UPDATE packs SET body = ?1", [packer.take()])
            .unwrap();
        let mut seqs = Vec::new();
        let replay = s.replay(|e| seqs.push(e.seq)).unwrap();
        assert_eq!((seqs, replay.undecodable), (vec![0, 2], 1));
        assert_eq!(s.history("d1", 0, u64::MAX, 10).unwrap().len(), 2);
        // A reference that has gone missing: its deltas are not taken for full payloads.
        Connection::open(&path)
            .unwrap()
            .execute("DELETE FROM refs", [])
            .unwrap();
        let replay = s.replay(|_| panic!("nothing decodes")).unwrap();
        assert_eq!(replay.undecodable, 3);
        assert!(s.history("d1", 0, u64::MAX, 10).unwrap().is_empty());
        // A pack that no longer decodes: all its envelopes are counted.
        s.commit(&[item(3, 40), item(4, 50)]).unwrap();
        conn.execute("UPDATE packs SET body = x'05' WHERE count = 2", [])
            .unwrap();
        let replay = s.replay(|_| panic!("nothing decodes")).unwrap();
        assert_eq!(replay.undecodable, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_references_in_memory_stay_within_their_bounds() {
        let dir = temp("bounds");
        let mut s = Store::open(&dir.join("db.sqlite")).unwrap();
        let refs = |names: &[(&str, usize)]| -> HashMap<String, (i64, Vec<u8>)> {
            names
                .iter()
                .enumerate()
                .map(|(i, (d, len))| (d.to_string(), (i as i64, vec![0; *len])))
                .collect()
        };
        s.remember(refs(&[("a", 10), ("b", 10)]), 3, 100);
        assert_eq!((s.references.len(), s.reference_bytes), (2, 20));
        // A new reference for a known device replaces its old one.
        s.remember(refs(&[("a", 30)]), 3, 100);
        assert_eq!((s.references.len(), s.reference_bytes), (2, 40));
        // Beyond the device count: only the newest are kept.
        s.remember(refs(&[("c", 1), ("d", 1)]), 3, 100);
        assert_eq!((s.references.len(), s.reference_bytes), (2, 2));
        // Beyond the bytes.
        s.remember(refs(&[("e", 99)]), 3, 100);
        assert_eq!((s.references.len(), s.reference_bytes), (1, 99));
        assert!(s.references.contains_key("e"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store written by the schema of version 1 (the readings table) opens with the same
    /// history, and what comes after the migration joins it.
    /// A store as the release before packs wrote it (schema 4: one row per envelope, deltas
    /// against reference payloads) opens, and the figures rebuilt from it are those of its
    /// envelopes; envelopes stored after the migration join them.
    #[test]
    fn a_schema_4_store_migrates_and_gives_the_same_figures() {
        let dir = temp("v4");
        let path = dir.join("db.sqlite");
        let printer = |seq: u64| {
            let mut r = crate::testdata::printer("sharp");
            r.counters.total = r.counters.total.map(|t| t + seq * 11);
            let mut e = Envelope::new(
                "site".try_into().unwrap(),
                "c1".try_into().unwrap(),
                3,
                seq,
                1_795_000_000_000 + seq * 60_000,
            );
            e.readings.push(Reading::Printer(r)).unwrap();
            e
        };
        let old: Vec<Envelope> = (0..40).map(printer).collect();
        {
            let conn = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS[..4].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                    .unwrap();
            }
            let reference = encode_to_vec(&old[0]).unwrap();
            conn.execute(
                "INSERT INTO refs (device, payload) VALUES ('sharp', ?1)",
                [&reference],
            )
            .unwrap();
            let ref_id = conn.last_insert_rowid();
            for (i, e) in old.iter().enumerate() {
                let payload = encode_to_vec(e).unwrap();
                // As schema 4 wrote: a delta against the device's reference (a few stored
                // whole, as before schema 3).
                let (stored, reference) = if i % 10 == 9 {
                    (payload.clone(), None)
                } else {
                    (crate::delta::diff(&reference, &payload), Some(ref_id))
                };
                conn.execute(
                    "INSERT INTO envelopes
                     (collector, epoch, seq, timestamp_ms, received_ms, payload, device, ref)
                     VALUES ('c1', 3, ?1, ?2, 0, ?3, 'sharp', ?4)",
                    params![bits(e.seq), bits(e.timestamp_ms), stored, reference],
                )
                .unwrap();
            }
        }
        let settings = crate::aggregate::CoreSettings::default();
        let expected = |envelopes: &[Envelope]| {
            let mut agg = crate::aggregate::Aggregator::with_settings(settings.clone());
            for e in envelopes {
                agg.ingest(e);
            }
            agg
        };
        let (mut store, rebuilt, _) = crate::rebuild(&settings, &path).unwrap();
        assert_eq!(rebuilt.snapshot(), expected(&old).snapshot());
        let device = rebuilt.device("sharp");
        assert!(device.is_some());
        assert_eq!(device, expected(&old).device("sharp"));
        // A redelivery of an old envelope is recognised; new ones are stored in packs.
        let mut all = old.clone();
        let new: Vec<Envelope> = (40..45).map(printer).collect();
        let items: Vec<Item> = [&old[39]]
            .into_iter()
            .chain(new.iter())
            .map(|e| Item::Envelope {
                payload: encode_to_vec(e).unwrap().into(),
                envelope: Box::new(e.clone()),
                received_ms: 0,
            })
            .collect();
        assert_eq!(
            store.commit(&items).unwrap(),
            [
                Committed::Repeat,
                Committed::New,
                Committed::New,
                Committed::New,
                Committed::New,
                Committed::New
            ]
        );
        all.extend(new);
        drop(store);
        let (_, rebuilt, _) = crate::rebuild(&settings, &path).unwrap();
        assert_eq!(rebuilt.snapshot(), expected(&all).snapshot());
        let history = Store::open_read_only(&path)
            .unwrap()
            .history("sharp", 0, u64::MAX, 100)
            .unwrap();
        assert_eq!(history, all);
        // The raw retention deletes the old rows (all that a snapshot covers) as it does packs.
        let mut store = Store::open(&path).unwrap();
        store.save_snapshot(40, 1, b"through the old rows").unwrap();
        let mut deleted = 0;
        loop {
            let step = store.prune_raw(1).unwrap();
            deleted += step.envelopes;
            if !step.more {
                break;
            }
        }
        assert_eq!(deleted, 40);
        assert_eq!(
            store.prune_raw(1).unwrap().envelopes,
            0,
            "the pack is not covered"
        );
        let mut replayed = Vec::new();
        store.replay(|e| replayed.push(e)).unwrap();
        assert_eq!(replayed, all[40..]);
        assert_eq!(
            store.raw_range().unwrap().oldest_poll_ms,
            Some(all[40].timestamp_ms)
        );
        let redelivery = Item::Envelope {
            payload: encode_to_vec(&old[3]).unwrap().into(),
            envelope: Box::new(old[3].clone()),
            received_ms: 0,
        };
        assert_eq!(store.commit(&[redelivery]).unwrap(), [Committed::Repeat]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store of schema 6 (packs without their receive time, no incremental vacuum: the
    /// release before raw retention) migrates: its packs get their newest receive time, the
    /// file is rewritten once for incremental vacuum, and the retention deletes by it.
    #[test]
    fn a_schema_6_store_migrates_and_the_retention_reads_its_packs() {
        let dir = temp("v6");
        let path = dir.join("db.sqlite");
        {
            let mut s = Store::open(&path).unwrap();
            for seq in 0..100 {
                s.commit(&[item(seq, seq * 1000)]).unwrap();
            }
            s.save_snapshot(s.last_id(), 1, b"all").unwrap();
        }
        let settings = crate::aggregate::CoreSettings::default();
        let figures = |path: &Path| crate::rebuild(&settings, path).unwrap().1.snapshot();
        let before = figures(&path);
        {
            // Back to what schema 6 wrote.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP INDEX history_spans_by_through;
                 DROP INDEX device_history_by_envelope;
                 ALTER TABLE packs DROP COLUMN received_ms;
                 DROP TABLE owners;
                 DROP TABLE conflicts;
                 DROP TABLE descriptions;
                 ALTER TABLE packs DROP COLUMN digests;
                 DELETE FROM store_meta WHERE key LIKE 'raw_%';
                 PRAGMA user_version = 6;
                 PRAGMA auto_vacuum = NONE;
                 VACUUM;",
            )
            .unwrap();
            let mode: i64 = conn
                .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, 0);
        }
        let mut s = Store::open(&path).unwrap();
        let (mode, version): (i64, i64) = (
            s.conn
                .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
                .unwrap(),
            s.conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap(),
        );
        assert_eq!((mode, version), (2, SCHEMA_VERSION));
        assert_eq!(
            figures(&path),
            before,
            "the same figures after the migration"
        );
        let packs: Vec<(i64, i64, Vec<u8>)> = {
            let mut stmt = s
                .conn
                .prepare("SELECT count, received_ms, body FROM packs ORDER BY first_id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(packs.len() > 1, "lone commits filled several packs");
        for (_, received, body) in &packs {
            let newest = crate::pack::decode(body)
                .unwrap()
                .iter()
                .map(|e| e.received_ms)
                .max();
            assert_eq!(Some(unbits(*received)), newest);
        }
        // The first pack goes once its newest envelope is older than the cutoff.
        let (count, received, _) = &packs[0];
        assert_eq!(s.prune_raw(unbits(*received)).unwrap().envelopes, 0);
        assert_eq!(
            s.prune_raw(unbits(*received) + 1).unwrap().envelopes,
            unbits(*count)
        );
        let mut seqs = Vec::new();
        s.replay(|e| seqs.push(e.seq)).unwrap();
        assert_eq!(seqs, (unbits(*count)..100).collect::<Vec<_>>());
        assert_eq!(s.commit(&[item(3, 3_000)]).unwrap(), [Committed::Repeat]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_version_1_store_migrates_with_its_history() {
        let dir = temp("v1");
        let path = dir.join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            for seq in 0..5u64 {
                let Item::Envelope { payload, .. } = item_for("d1", seq, 100 + seq) else {
                    unreachable!()
                };
                conn.execute(
                    "INSERT INTO envelopes (collector, epoch, seq, timestamp_ms, received_ms, payload)
                     VALUES ('c1', ?1, ?2, ?3, 0, ?4)",
                    params![bits(u64::MAX - 1), bits(seq), bits(100 + seq), &payload[..]],
                )
                .unwrap();
                let id = conn.last_insert_rowid();
                conn.execute(
                    "INSERT INTO readings (envelope, device, unit, timestamp_ms) VALUES (?1, 'd1', 'u', ?2)",
                    params![id, bits(100 + seq)],
                )
                .unwrap();
            }
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.indexed_through, 5);
        let seqs = |s: &Store| -> Vec<u64> {
            s.history("d1", 0, u64::MAX, 100)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(seqs(&s), [0, 1, 2, 3, 4]);
        assert_eq!(
            s.commit(&[item(4, 104), item(5, 105)]).unwrap(),
            [Committed::Repeat, Committed::New]
        );
        assert_eq!(seqs(&s), [0, 1, 2, 3, 4, 5]);
        // Enough for an indexing run: the rows indexed before schema 4, the new spans and the
        // tail make one history.
        let more: Vec<Item> = (6..HISTORY_INDEX_EVERY as u64 + 1200)
            .map(|seq| item(seq, 100 + seq))
            .collect();
        for batch in more.chunks(1000) {
            s.commit(batch).unwrap();
        }
        assert!(s.indexed_through > 5 && s.indexed_through < more.len() as i64 + 5);
        let spans: i64 = s
            .conn
            .query_row("SELECT count(*) FROM history_spans", [], |r| r.get(0))
            .unwrap();
        assert_eq!(spans, 1, "one span for d1's run");
        let all: Vec<u64> = s
            .history("d1", 0, u64::MAX, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            all,
            (0..HISTORY_INDEX_EVERY as u64 + 1200).collect::<Vec<_>>()
        );
        let window: Vec<u64> = s
            .history("d1", 102, 110, 5)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            window,
            [2, 3, 4, 5, 6],
            "across the old index and a span, limited"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_newer_schema_and_a_non_database_are_refused_with_the_path() {
        let dir = std::env::temp_dir().join(format!("devtel-store-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        {
            let s = Store::open(&path).unwrap();
            s.conn.execute_batch("PRAGMA user_version = 99").unwrap();
        }
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
        let junk = dir.join("junk.sqlite");
        std::fs::write(
            &junk,
            b"this is not a database, just some bytes long enough....",
        )
        .unwrap();
        let err = Store::open(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.sqlite"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
