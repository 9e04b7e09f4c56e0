//! The store on PostgreSQL, for gateway replicas that share one (issue 18; not yet selectable
//! in the config): the same items, the same answers ([`Committed`]) and the same replay as the
//! SQLite [`Store`](crate::store::Store), on a server that operations already run, replicate
//! and back up (`pg_dump`, streaming replication).
//!
//! Layout: one row per envelope with exactly the bytes received (PostgreSQL compresses large
//! values itself), unique by identity `(collector, epoch, seq)`; the statuses, site claims,
//! descriptions and conflicts as in SQLite. Migrations are numbered as there and recorded in
//! `store_meta.schema_version`.
//!
//! **Ids in commit order.** A replica follows what the others committed by the envelope id
//! (`replay_after` with its cursor). A sequence would not do: a transaction that took id 10
//! may commit after one that took 11, and a follower that read 11 would never see 10. Every
//! commit therefore takes the row `store_meta.next_id` `FOR UPDATE`: commits that store
//! envelopes run one after the other and ids grow in commit order, so "everything above my
//! cursor" is complete at any moment. At a few hundred readings per second that
//! serialisation costs nothing that matters.

use std::collections::BTreeMap;

use devtel_protocol::decode;
use devtel_protocol::Envelope;
use tokio_postgres::{Client, NoTls};

use crate::store::{
    Committed, Conflict, Item, Pruned, RawRange, Replay, StoreError, MAX_CONFLICTS_KEPT,
    SNAPSHOTS_KEPT,
};

/// The schema, one migration per entry, applied in order in one transaction each.
const MIGRATIONS: &[&str] = &[
    // 1: what the SQLite store keeps, envelopes as received.
    "CREATE TABLE envelopes (
        id BIGINT PRIMARY KEY,
        collector TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        timestamp_ms BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        payload BYTEA NOT NULL,
        UNIQUE (collector, epoch, seq)
    );
    CREATE INDEX envelopes_by_device ON envelopes (device, timestamp_ms);
    CREATE TABLE collector_status (
        site TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        received_ms BIGINT NOT NULL
    );
    CREATE TABLE owners (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        site TEXT NOT NULL,
        since_ms BIGINT NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE TABLE conflicts (
        id BIGSERIAL PRIMARY KEY,
        site TEXT NOT NULL,
        collector TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        payload BYTEA NOT NULL
    );
    CREATE TABLE descriptions (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        fingerprint BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        payload BYTEA NOT NULL,
        PRIMARY KEY (site, device, fingerprint)
    );
    INSERT INTO store_meta (key, value) VALUES ('next_id', 1);",
    // 2: snapshots of the aggregator, and the raw retention: what it deleted, and the
    // identities of the deleted envelopes as sequence ranges per collector epoch, so that a
    // redelivery of a deleted envelope is still a repeat (as SQLite's `stored_seqs`).
    "CREATE TABLE snapshots (
        through BIGINT PRIMARY KEY,
        taken_ms BIGINT NOT NULL,
        body BYTEA NOT NULL
    );
    CREATE TABLE pruned_seqs (
        collector TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        first BIGINT NOT NULL,
        last BIGINT NOT NULL,
        PRIMARY KEY (collector, epoch, first)
    );
    INSERT INTO store_meta (key, value) VALUES
        ('raw_pruned_through', 0), ('raw_pruned_envelopes', 0), ('raw_pruned_before_ms', 0);",
];

/// Envelopes deleted per retention step at most (one transaction each).
pub const PRUNE_STEP_ENVELOPES: i64 = 5_000;

/// The schema version this gateway writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Envelopes read per query of a replay.
const REPLAY_PAGE: i64 = 1_000;

fn bits(v: u64) -> i64 {
    v as i64
}

fn unbits(v: i64) -> u64 {
    v as u64
}

/// Rows of (kind, id, site) as claims (a kind this gateway does not know is left out).
fn claims(rows: &[tokio_postgres::Row]) -> Vec<crate::sites::Claim> {
    rows.iter()
        .filter_map(|r| {
            Some(crate::sites::Claim {
                kind: crate::sites::OwnerKind::from_name(r.get(0))?,
                id: r.get(1),
                site: r.get(2),
            })
        })
        .collect()
}

/// Rows of (site, device, payload) as descriptions.
fn descriptions(rows: &[tokio_postgres::Row]) -> Vec<(String, String, bytes::Bytes)> {
    rows.iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                bytes::Bytes::copy_from_slice(r.get::<_, &[u8]>(2)),
            )
        })
        .collect()
}

fn pg(source: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres { source }
}

/// Brings the schema up to [`SCHEMA_VERSION`]; replicas starting together migrate one after
/// the other (an advisory lock held for the migration's transaction).
async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('devtel-store-migration', 0));
         CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
         INSERT INTO store_meta (key, value) VALUES ('schema_version', 0) ON CONFLICT DO NOTHING;",
    )
    .await
    .map_err(pg)?;
    let version: i64 = tx
        .query_one(
            "SELECT value FROM store_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: "PostgreSQL".into(),
            found: version,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute(
            "UPDATE store_meta SET value = $1 WHERE key = 'schema_version'",
            &[&(i as i64 + 1)],
        )
        .await
        .map_err(pg)?;
        tracing::info!(version = i + 1, "PostgreSQL store migrated");
    }
    tx.commit().await.map_err(pg)
}

/// The store on a PostgreSQL server.
pub struct PgStore {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
    hot: Hot,
    /// The ids the last commit gave its new envelopes.
    committed: std::ops::Range<i64>,
    /// Repeats of deleted envelopes, taken as redeliveries (their bytes are gone).
    repeats_unverified: u64,
}

/// The statements of every commit, prepared once per connection (a round trip each saved per
/// commit: a quiet site commits one envelope at a time).
struct Hot {
    lock_next_id: tokio_postgres::Statement,
    stored: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    set_next_id: tokio_postgres::Statement,
    page: tokio_postgres::Statement,
}

/// A page of [`PgStore::replay_page`].
#[derive(Debug)]
pub struct Page {
    /// The envelopes that decode, with their ids.
    pub envelopes: Vec<(i64, Envelope)>,
    /// Stored envelopes that no longer decode (skipped, logged).
    pub undecodable: u64,
    /// The last id read (`after` when none).
    pub cursor: i64,
    /// The page was full: more may follow.
    pub more: bool,
}

impl Hot {
    async fn prepare(client: &Client) -> Result<Hot, StoreError> {
        Ok(Hot {
            lock_next_id: client.prepare("SELECT value FROM store_meta WHERE key = 'next_id' FOR UPDATE").await.map_err(pg)?,
            stored: client
                .prepare(
                    "SELECT k.i, e.payload FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                       WITH ORDINALITY AS k(collector, epoch, seq, i)
                     JOIN envelopes e ON e.collector = k.collector AND e.epoch = k.epoch AND e.seq = k.seq
                     UNION ALL
                     SELECT k.i, NULL FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                       WITH ORDINALITY AS k(collector, epoch, seq, i)
                     WHERE EXISTS (SELECT 1 FROM pruned_seqs p WHERE p.collector = k.collector
                       AND p.epoch = k.epoch AND p.first <= k.seq AND p.last >= k.seq)",
                )
                .await
                .map_err(pg)?,
            insert: client
                .prepare(
                    "INSERT INTO envelopes (id, collector, epoch, seq, site, device, timestamp_ms, received_ms, payload)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                                      $6::text[], $7::bigint[], $8::bigint[], $9::bytea[])",
                )
                .await
                .map_err(pg)?,
            set_next_id: client.prepare("UPDATE store_meta SET value = $1 WHERE key = 'next_id'").await.map_err(pg)?,
            page: client
                .prepare("SELECT id, payload FROM envelopes WHERE id > $1 ORDER BY id LIMIT $2")
                .await
                .map_err(pg)?,
        })
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl PgStore {
    /// Connects (the connection's driver runs on the current runtime) and migrates the
    /// schema. Replicas starting together migrate one after the other (an advisory lock
    /// held for the migration's transaction).
    ///
    /// # Errors
    /// [`StoreError::Postgres`] when the server cannot be reached or refuses;
    /// [`StoreError::TooNew`] when another gateway migrated the schema further.
    pub async fn connect(config: &tokio_postgres::Config) -> Result<PgStore, StoreError> {
        let (mut client, connection) = config.connect(NoTls).await.map_err(pg)?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "PostgreSQL connection ended");
            }
        });
        migrate(&mut client).await?;
        let hot = Hot::prepare(&client).await?;
        Ok(PgStore {
            client,
            driver,
            hot,
            committed: 0..0,
            repeats_unverified: 0,
        })
    }

    /// Commits `items` in one transaction; per item what became of it, as
    /// [`Store::commit`](crate::store::Store::commit): new, a redelivery (same bytes), or a
    /// conflicting repeat (kept aside in `conflicts`).
    ///
    /// The envelopes of a batch take three round trips whatever their number: the next id
    /// (locked), which of their identities are stored (with the bytes) or deleted by the
    /// retention, and one insert of the new ones. Repeats within the batch are judged against
    /// its first occurrence, as the SQLite store does.
    ///
    /// # Errors
    /// [`StoreError::Postgres`]; nothing of the batch is stored then.
    pub async fn commit(&mut self, items: &[Item]) -> Result<Vec<Committed>, StoreError> {
        let tx = self.client.transaction().await.map_err(pg)?;
        // Serialises the commits of all replicas: ids in commit order (module doc).
        let mut next_id: i64 = tx
            .query_one(&self.hot.lock_next_id, &[])
            .await
            .map_err(pg)?
            .get(0);
        let first_id = next_id;
        let mut out: Vec<Option<Committed>> = vec![None; items.len()];

        // The envelopes: the first occurrence of each identity in the batch is a candidate;
        // a later one is judged against it.
        type Identity<'a> = (&'a str, i64, i64);
        let mut first: std::collections::HashMap<Identity<'_>, usize> =
            std::collections::HashMap::new();
        let mut candidates: Vec<usize> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Item::Envelope { envelope, .. } = item {
                let key = (
                    envelope.collector.as_str(),
                    bits(envelope.epoch),
                    bits(envelope.seq),
                );
                if let std::collections::hash_map::Entry::Vacant(slot) = first.entry(key) {
                    slot.insert(i);
                    candidates.push(i);
                }
            }
        }
        let envelope_of = |i: usize| match &items[i] {
            Item::Envelope {
                envelope,
                payload,
                received_ms,
            } => Some((envelope, payload, *received_ms)),
            _ => None,
        };
        let (mut collectors, mut epochs, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
        for &i in &candidates {
            if let Some((e, _, _)) = envelope_of(i) {
                collectors.push(e.collector.as_str());
                epochs.push(bits(e.epoch));
                seqs.push(bits(e.seq));
            }
        }
        // Stored ones (with their bytes) and deleted ones (`None`), by item index.
        let mut stored: std::collections::HashMap<usize, Option<Vec<u8>>> =
            std::collections::HashMap::new();
        if !candidates.is_empty() {
            let rows = tx
                .query(&self.hot.stored, &[&collectors, &epochs, &seqs])
                .await
                .map_err(pg)?;
            for row in rows {
                // The query's ordinal counts the candidates from 1.
                let k = usize::try_from(row.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
                if let Some(&i) = candidates.get(k) {
                    stored.insert(i, row.get(1));
                }
            }
        }
        let mut new = Vec::new();
        let mut conflicts = Vec::new();
        let mut unverified = 0u64;
        for &i in &candidates {
            let Some((_, payload, _)) = envelope_of(i) else {
                continue;
            };
            out[i] = Some(match stored.get(&i) {
                None => {
                    new.push(i);
                    Committed::New
                }
                // Deleted by the retention: a repeat, its bytes are gone to compare.
                Some(None) => {
                    unverified += 1;
                    Committed::Repeat
                }
                Some(Some(bytes)) if bytes[..] == payload[..] => Committed::Repeat,
                Some(Some(_)) => {
                    conflicts.push(i);
                    Committed::Conflict
                }
            });
        }
        for (i, item) in items.iter().enumerate() {
            let Item::Envelope {
                envelope, payload, ..
            } = item
            else {
                continue;
            };
            if out[i].is_some() {
                continue;
            }
            let key = (
                envelope.collector.as_str(),
                bits(envelope.epoch),
                bits(envelope.seq),
            );
            let earlier = first.get(&key).copied().unwrap_or(i);
            let same = envelope_of(earlier).is_some_and(|(_, p, _)| p[..] == payload[..]);
            // Against the first occurrence: if that one was stored before, the stored bytes
            // decided its fate, and the same bytes decide this one's.
            out[i] = Some(match (out[earlier], same) {
                // Each conflicting occurrence is kept aside, as in SQLite.
                (Some(Committed::Conflict), true) => {
                    conflicts.push(i);
                    Committed::Conflict
                }
                (_, true) => Committed::Repeat,
                (Some(Committed::New), false) => {
                    conflicts.push(i);
                    Committed::Conflict
                }
                (_, false) => {
                    // The first occurrence repeated or conflicted with stored bytes: compare
                    // with those.
                    match stored.get(&earlier) {
                        Some(Some(bytes)) if bytes[..] == payload[..] => Committed::Repeat,
                        Some(None) => Committed::Repeat,
                        _ => {
                            conflicts.push(i);
                            Committed::Conflict
                        }
                    }
                }
            });
        }
        if !new.is_empty() {
            let mut ids = Vec::with_capacity(new.len());
            let (mut cs, mut es, mut ss, mut sites, mut devices, mut ts, mut rs, mut ps) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            for &i in &new {
                if let Some((e, payload, received_ms)) = envelope_of(i) {
                    ids.push(next_id);
                    next_id += 1;
                    cs.push(e.collector.as_str());
                    es.push(bits(e.epoch));
                    ss.push(bits(e.seq));
                    sites.push(e.site.as_str());
                    // Validated envelopes hold at least one reading.
                    devices.push(e.readings.first().map_or("", |r| r.device()));
                    ts.push(bits(e.timestamp_ms));
                    rs.push(bits(received_ms));
                    ps.push(&payload[..]);
                }
            }
            tx.execute(
                &self.hot.insert,
                &[&ids, &cs, &es, &ss, &sites, &devices, &ts, &rs, &ps],
            )
            .await
            .map_err(pg)?;
        }
        // Kept aside in the batch's order (their ids say which came last).
        conflicts.sort_unstable();
        for &i in &conflicts {
            if let Some((e, payload, received_ms)) = envelope_of(i) {
                tx.execute(
                    "INSERT INTO conflicts (site, collector, epoch, seq, received_ms, payload)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &e.site.as_str(),
                        &e.collector.as_str(),
                        &bits(e.epoch),
                        &bits(e.seq),
                        &bits(received_ms),
                        &&payload[..],
                    ],
                )
                .await
                .map_err(pg)?;
            }
        }

        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self::commit_descriptions(&tx, items).await?;
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Envelope { .. } => continue,
                Item::Description { .. } => {}
                Item::Claim(claim) => {
                    tx.execute(
                        "INSERT INTO owners (kind, id, site, since_ms) VALUES ($1, $2, $3, $4)
                         ON CONFLICT DO NOTHING",
                        &[&claim.kind.name(), &claim.id, &claim.site, &bits(now_ms)],
                    )
                    .await
                    .map_err(pg)?;
                }
                Item::Status {
                    site,
                    status: Some(status),
                    received_ms,
                } => {
                    tx.execute(
                        "INSERT INTO collector_status (site, status, received_ms) VALUES ($1, $2, $3)
                         ON CONFLICT (site) DO UPDATE SET status = EXCLUDED.status, received_ms = EXCLUDED.received_ms",
                        &[site, status, &bits(*received_ms)],
                    )
                    .await
                    .map_err(pg)?;
                }
                Item::Status {
                    site, status: None, ..
                } => {
                    tx.execute("DELETE FROM collector_status WHERE site = $1", &[site])
                        .await
                        .map_err(pg)?;
                }
            }
            out[i] = Some(Committed::New);
        }
        if next_id != first_id {
            tx.execute(&self.hot.set_next_id, &[&next_id])
                .await
                .map_err(pg)?;
        }
        if !conflicts.is_empty() {
            tx.execute(
                "DELETE FROM conflicts WHERE id <= (SELECT max(id) FROM conflicts) - $1",
                &[&MAX_CONFLICTS_KEPT],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.committed = first_id..next_id;
        self.repeats_unverified += unverified;
        Ok(out
            .into_iter()
            .map(|c| c.unwrap_or(Committed::New))
            .collect())
    }

    /// The descriptions among `items`, in three round trips whatever their number: what the
    /// store holds of their devices, the ones that go, the ones written — what storing them
    /// one by one, each keeping its device's newest [`PER_DEVICE`](crate::descriptions::PER_DEVICE),
    /// leaves ([`crate::descriptions::plan_commit`]). (A collector describes every reading of a
    /// device for a while after a start; one by one, that was two round trips each.)
    async fn commit_descriptions(
        tx: &tokio_postgres::Transaction<'_>,
        items: &[Item],
    ) -> Result<(), StoreError> {
        let batch = crate::store::described(items);
        if batch.is_empty() {
            return Ok(());
        }
        let mut devices: Vec<(&str, &str)> = batch.iter().map(|b| (b.0, b.1)).collect();
        devices.sort_unstable();
        devices.dedup();
        let (sites, names): (Vec<&str>, Vec<&str>) = devices.into_iter().unzip();
        let stored: Vec<(String, String, u32, u64)> = tx
            .query(
                "SELECT d.site, d.device, d.fingerprint, d.received_ms
                 FROM descriptions d
                 JOIN unnest($1::text[], $2::text[]) AS w(site, device)
                   ON d.site = w.site AND d.device = w.device",
                &[&sites, &names],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                    unbits(r.get(3)),
                )
            })
            .collect();
        let keys: Vec<(&str, &str, u32, u64)> =
            batch.iter().map(|b| (b.0, b.1, b.2, b.3)).collect();
        let (delete, write) = crate::descriptions::plan_commit(&stored, &keys);
        if !delete.is_empty() {
            let sites: Vec<&str> = delete.iter().map(|d| d.0).collect();
            let names: Vec<&str> = delete.iter().map(|d| d.1).collect();
            let fingerprints: Vec<i64> = delete.iter().map(|d| i64::from(d.2)).collect();
            tx.execute(
                "DELETE FROM descriptions d
                 USING unnest($1::text[], $2::text[], $3::bigint[]) AS w(site, device, fingerprint)
                 WHERE d.site = w.site AND d.device = w.device AND d.fingerprint = w.fingerprint",
                &[&sites, &names, &fingerprints],
            )
            .await
            .map_err(pg)?;
        }
        if !write.is_empty() {
            let rows: Vec<&crate::store::Described<'_>> =
                write.iter().map(|&i| &batch[i]).collect();
            let sites: Vec<&str> = rows.iter().map(|r| r.0).collect();
            let names: Vec<&str> = rows.iter().map(|r| r.1).collect();
            let fingerprints: Vec<i64> = rows.iter().map(|r| i64::from(r.2)).collect();
            let received: Vec<i64> = rows.iter().map(|r| bits(r.3)).collect();
            let payloads: Vec<&[u8]> = rows.iter().map(|r| &r.4[..]).collect();
            tx.execute(
                "INSERT INTO descriptions (site, device, fingerprint, received_ms, payload)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[])
                 ON CONFLICT (site, device, fingerprint)
                 DO UPDATE SET received_ms = EXCLUDED.received_ms, payload = EXCLUDED.payload",
                &[&sites, &names, &fingerprints, &received, &payloads],
            )
            .await
            .map_err(pg)?;
        }
        Ok(())
    }

    /// The ids the last successful commit gave its new envelopes (in item order; empty when
    /// it stored none).
    pub fn committed_ids(&self) -> std::ops::Range<i64> {
        self.committed.clone()
    }

    /// Repeats of envelopes the retention deleted, taken as redeliveries, since connecting.
    pub fn repeats_unverified(&self) -> u64 {
        self.repeats_unverified
    }

    /// Whether the connection has ended (a new [`PgStore::connect`] is needed).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Calls `f` with every stored envelope with an id above `after`, in id (= commit) order,
    /// a page at a time; returns the counts and the last id replayed (the follower's next
    /// cursor; `after` when there was nothing new).
    ///
    /// # Errors
    /// [`StoreError::Postgres`] when the server cannot be read.
    pub async fn replay_after(
        &self,
        after: i64,
        mut f: impl FnMut(i64, Envelope),
    ) -> Result<(Replay, i64), StoreError> {
        let mut replay = Replay::default();
        let mut cursor = after;
        loop {
            let page = self.replay_page(cursor, REPLAY_PAGE).await?;
            replay.undecodable += page.undecodable;
            replay.envelopes += page.envelopes.len() as u64;
            cursor = page.cursor;
            for (id, envelope) in page.envelopes {
                f(id, envelope);
            }
            if !page.more {
                return Ok((replay, cursor));
            }
        }
    }

    /// Up to `limit` stored envelopes with an id above `after`, in id order: a follower's
    /// step, bounded whatever the others committed meanwhile.
    ///
    /// # Errors
    /// [`StoreError::Postgres`] when the server cannot be read.
    pub async fn replay_page(&self, after: i64, limit: i64) -> Result<Page, StoreError> {
        let rows = self
            .client
            .query(&self.hot.page, &[&after, &limit])
            .await
            .map_err(pg)?;
        let mut page = Page {
            envelopes: Vec::with_capacity(rows.len()),
            undecodable: 0,
            cursor: after,
            more: rows.len() as i64 >= limit,
        };
        for row in &rows {
            let id: i64 = row.get(0);
            let payload: &[u8] = row.get(1);
            match decode(payload) {
                Ok(envelope) => page.envelopes.push((id, envelope)),
                Err(_) => {
                    page.undecodable += 1;
                    tracing::warn!(id, "stored envelope no longer decodes; skipped");
                }
            }
            page.cursor = id;
        }
        Ok(page)
    }

    /// The id of the newest stored envelope (0: none).
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn last_id(&self) -> Result<i64, StoreError> {
        let row = self
            .client
            .query_one(
                "SELECT value - 1 FROM store_meta WHERE key = 'next_id'",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    /// The stored envelopes.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn envelope_count(&self) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("SELECT count(*) FROM envelopes", &[])
            .await
            .map_err(pg)?;
        Ok(unbits(row.get(0)))
    }

    /// The newest sequence number stored of a collector's epoch.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn last_seq(&self, collector: &str, epoch: u64) -> Result<Option<u64>, StoreError> {
        let row = self
            .client
            .query_one(
                "SELECT max(seq) FROM envelopes WHERE collector = $1 AND epoch = $2",
                &[&collector, &bits(epoch)],
            )
            .await
            .map_err(pg)?;
        Ok(row.get::<_, Option<i64>>(0).map(unbits))
    }

    /// The collectors' retained statuses by site.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn statuses(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT site, status FROM collector_status ORDER BY site",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Which site each collector and device belongs to.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn owners(&self) -> Result<Vec<crate::sites::Claim>, StoreError> {
        let rows = self
            .client
            .query("SELECT kind, id, site FROM owners ORDER BY kind, id", &[])
            .await
            .map_err(pg)?;
        Ok(claims(&rows))
    }

    /// The stored claims of the `wanted` collectors and devices.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn owners_of(
        &self,
        wanted: &[(crate::sites::OwnerKind, String)],
    ) -> Result<Vec<crate::sites::Claim>, StoreError> {
        let (kinds, ids): (Vec<&str>, Vec<&str>) =
            wanted.iter().map(|(k, id)| (k.name(), id.as_str())).unzip();
        let rows = self
            .client
            .query(
                "SELECT o.kind, o.id, o.site FROM owners o
                 JOIN unnest($1::text[], $2::text[]) AS w(kind, id)
                   ON o.kind = w.kind AND o.id = w.id",
                &[&kinds, &ids],
            )
            .await
            .map_err(pg)?;
        Ok(claims(&rows))
    }

    /// The kept descriptions of the `wanted` devices (site, device): (site, device, payload),
    /// per device oldest first.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn descriptions_of(
        &self,
        wanted: &[(String, String)],
    ) -> Result<Vec<(String, String, bytes::Bytes)>, StoreError> {
        let (sites, devices): (Vec<&str>, Vec<&str>) =
            wanted.iter().map(|(s, d)| (s.as_str(), d.as_str())).unzip();
        let rows = self
            .client
            .query(
                "SELECT d.site, d.device, d.payload
                 FROM descriptions d
                 JOIN unnest($1::text[], $2::text[]) AS w(site, device)
                   ON d.site = w.site AND d.device = w.device
                 ORDER BY d.site, d.device, d.received_ms, d.fingerprint",
                &[&sites, &devices],
            )
            .await
            .map_err(pg)?;
        Ok(descriptions(&rows))
    }

    /// The kept descriptions: (site, device, payload), per device oldest first.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn descriptions(&self) -> Result<Vec<(String, String, bytes::Bytes)>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT site, device, payload FROM descriptions
                 ORDER BY site, device, received_ms, fingerprint",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(descriptions(&rows))
    }

    /// Stores a snapshot covering the envelopes up to `through` and keeps the newest
    /// [`SNAPSHOTS_KEPT`], in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Postgres`]; nothing changes then.
    pub async fn save_snapshot(
        &mut self,
        through: i64,
        taken_ms: u64,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.client.transaction().await.map_err(pg)?;
        tx.execute(
            "INSERT INTO snapshots (through, taken_ms, body) VALUES ($1, $2, $3)
             ON CONFLICT (through) DO UPDATE SET taken_ms = EXCLUDED.taken_ms, body = EXCLUDED.body",
            &[&through, &bits(taken_ms), &body],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "DELETE FROM snapshots WHERE through NOT IN
             (SELECT through FROM snapshots ORDER BY through DESC LIMIT $1)",
            &[&SNAPSHOTS_KEPT],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    /// The stored snapshots, newest first: `(through, taken_ms, body)`.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn snapshots(&self) -> Result<Vec<(i64, u64, Vec<u8>)>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT through, taken_ms, body FROM snapshots ORDER BY through DESC",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), unbits(r.get(1)), r.get(2)))
            .collect())
    }

    /// One step of the raw retention, as [`Store::prune_raw`](crate::store::Store::prune_raw):
    /// deletes the oldest envelopes received before `before_ms`, in id order and only those
    /// every kept snapshot covers (none without a snapshot), at most
    /// [`PRUNE_STEP_ENVELOPES`]; their identities stay as sequence ranges. Free space is
    /// PostgreSQL's (autovacuum): `pages` is 0.
    ///
    /// # Errors
    /// [`StoreError::Postgres`]; nothing changes then.
    pub async fn prune_raw(&mut self, before_ms: u64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let tx = self.client.transaction().await.map_err(pg)?;
        let limit: Option<i64> = tx
            .query_one("SELECT min(through) FROM snapshots", &[])
            .await
            .map_err(pg)?
            .get(0);
        let Some(limit) = limit else {
            return Ok(pruned);
        };
        let rows = tx
            .query(
                "SELECT id, received_ms FROM envelopes WHERE id <= $1 ORDER BY id LIMIT $2",
                &[&limit, &PRUNE_STEP_ENVELOPES],
            )
            .await
            .map_err(pg)?;
        let mut through = None;
        let mut blocked = false;
        for row in &rows {
            if unbits(row.get(1)) >= before_ms {
                blocked = true;
                break;
            }
            through = Some(row.get::<_, i64>(0));
            pruned.envelopes += 1;
        }
        let Some(through) = through else {
            return Ok(pruned);
        };
        // The deleted identities as runs of consecutive seqs per collector epoch (gaps stay
        // gaps: a seq never stored is still new when it comes).
        tx.execute(
            "INSERT INTO pruned_seqs (collector, epoch, first, last)
             SELECT collector, epoch, min(seq), max(seq) FROM
               (SELECT collector, epoch, seq,
                       seq - row_number() OVER (PARTITION BY collector, epoch ORDER BY seq) AS run
                FROM envelopes WHERE id <= $1) deleted
             GROUP BY collector, epoch, run",
            &[&through],
        )
        .await
        .map_err(pg)?;
        tx.execute("DELETE FROM envelopes WHERE id <= $1", &[&through])
            .await
            .map_err(pg)?;
        tx.execute(
            "UPDATE store_meta SET value = CASE key
                 WHEN 'raw_pruned_through' THEN $1
                 WHEN 'raw_pruned_envelopes' THEN value + $2
                 ELSE $3 END
             WHERE key IN ('raw_pruned_through', 'raw_pruned_envelopes', 'raw_pruned_before_ms')",
            &[&through, &bits(pruned.envelopes), &bits(before_ms)],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        pruned.more = !blocked && rows.len() as i64 >= PRUNE_STEP_ENVELOPES;
        Ok(pruned)
    }

    /// What the raw retention has deleted so far, and the poll time of the oldest envelope
    /// held.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn raw_range(&self) -> Result<RawRange, StoreError> {
        let row = self
            .client
            .query_one(
                "SELECT
                   (SELECT value FROM store_meta WHERE key = 'raw_pruned_envelopes'),
                   (SELECT value FROM store_meta WHERE key = 'raw_pruned_through'),
                   (SELECT value FROM store_meta WHERE key = 'raw_pruned_before_ms'),
                   (SELECT timestamp_ms FROM envelopes ORDER BY id LIMIT 1)",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(RawRange {
            pruned_envelopes: unbits(row.get(0)),
            pruned_through: row.get(1),
            pruned_before_ms: unbits(row.get(2)),
            oldest_poll_ms: row.get::<_, Option<i64>>(3).map(unbits),
        })
    }

    /// Envelopes of `device` polled in `[from_ms, to_ms)`, oldest first (then by id), at most
    /// `limit`. An envelope is found by the device of its first reading (the gateway accepts
    /// one device per envelope).
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn history(
        &self,
        device: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let from = i64::try_from(from_ms).unwrap_or(i64::MAX);
        let to = i64::try_from(to_ms).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT id, payload FROM envelopes
                 WHERE device = $1 AND timestamp_ms >= $2 AND timestamp_ms < $3
                 ORDER BY timestamp_ms, id LIMIT $4",
                &[
                    &device,
                    &from,
                    &to,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(pg)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            match decode(row.get::<_, &[u8]>(1)) {
                Ok(envelope) => out.push(envelope),
                Err(_) => {
                    tracing::warn!(
                        id = row.get::<_, i64>(0),
                        "stored envelope no longer decodes; skipped"
                    )
                }
            }
        }
        Ok(out)
    }

    /// The newest `limit` conflicting repeats, newest first.
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub async fn conflicts(&self, limit: usize) -> Result<Vec<Conflict>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT id, site, collector, epoch, seq, received_ms, payload FROM conflicts
                 ORDER BY id DESC LIMIT $1",
                &[&i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Conflict {
                id: r.get(0),
                site: r.get(1),
                collector: r.get(2),
                epoch: unbits(r.get(3)),
                seq: unbits(r.get(4)),
                received_ms: unbits(r.get(5)),
                payload: r.get(6),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg_harness::TempPostgres;
    use crate::sites::{Claim, OwnerKind};
    use crate::store::Store;
    use proptest::prelude::*;

    /// One thing a gateway commits, drawn small so that identities, sites and devices repeat.
    #[derive(Debug, Clone)]
    enum Op {
        /// Collector, epoch, seq, device; `variant` changes the bytes (a conflict when the
        /// identity is stored with the other variant).
        Envelope {
            collector: u8,
            epoch: u8,
            seq: u8,
            device: u8,
            variant: u8,
        },
        Status {
            site: u8,
            online: Option<bool>,
        },
        Claim {
            device: bool,
            id: u8,
            site: u8,
        },
        Description {
            device: u8,
            n: u8,
            at: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..2u8, 0..2u8, 0..4u8, 0..3u8, 0..2u8).prop_map(|(collector, epoch, seq, device, variant)| Op::Envelope { collector, epoch, seq, device, variant }),
            1 => (0..2u8, proptest::option::of(any::<bool>())).prop_map(|(site, online)| Op::Status { site, online }),
            1 => (any::<bool>(), 0..3u8, 0..2u8).prop_map(|(device, id, site)| Op::Claim { device, id, site }),
            1 => (0..2u8, 0..6u8, 0..4u8).prop_map(|(device, n, at)| Op::Description { device, n, at }),
        ]
    }

    fn item(op: &Op) -> Item {
        match *op {
            Op::Envelope {
                collector,
                epoch,
                seq,
                device,
                variant,
            } => {
                let ts = 1_700_000_000_000 + u64::from(seq) * 300_000 + u64::from(variant);
                crate::testdata::no_response_envelope(
                    &format!("c{collector}"),
                    // Epochs above i64::MAX too: stored as their bits.
                    if epoch == 0 { 7 } else { u64::MAX - 1 },
                    &format!("d{device}"),
                    u64::from(seq),
                    ts,
                )
            }
            Op::Status { site, online } => Item::Status {
                site: format!("s{site}"),
                status: online.map(|o| format!("{{\"online\":{o}}}")),
                received_ms: 10,
            },
            Op::Claim { device, id, site } => Item::Claim(Claim {
                kind: if device {
                    OwnerKind::Device
                } else {
                    OwnerKind::Collector
                },
                id: format!("x{id}"),
                site: format!("s{site}"),
            }),
            Op::Description { device, n, at } => {
                let payload = bytes::Bytes::from(vec![5, 0, n]);
                Item::Description {
                    site: "s".into(),
                    device: format!("d{device}"),
                    fingerprint: devtel_protocol::compact::fingerprint(&payload),
                    payload,
                    received_ms: 100 + u64::from(at),
                }
            }
        }
    }

    /// Everything a store gives back, comparable across the two backends.
    #[derive(Debug, PartialEq)]
    struct Contents {
        envelopes: Vec<String>,
        count: u64,
        last_seqs: Vec<Option<u64>>,
        statuses: BTreeMap<String, String>,
        owners: Vec<(String, String, String)>,
        descriptions: Vec<(String, String, bytes::Bytes)>,
        conflicts: Vec<(String, String, u64, u64, u64, Vec<u8>)>,
        /// Per device: its whole history, and the first two of it.
        history: Vec<(Vec<String>, Vec<String>)>,
    }

    const DEVICES: [&str; 3] = ["d0", "d1", "d2"];

    fn debug(envelopes: Vec<Envelope>) -> Vec<String> {
        envelopes.iter().map(|e| format!("{e:?}")).collect()
    }

    fn owners(mut claims: Vec<Claim>) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = claims
            .drain(..)
            .map(|c| (c.kind.name().to_string(), c.id, c.site))
            .collect();
        out.sort();
        out
    }

    fn conflicts(list: Vec<Conflict>) -> Vec<(String, String, u64, u64, u64, Vec<u8>)> {
        list.into_iter()
            .map(|c| {
                (
                    c.site,
                    c.collector,
                    c.epoch,
                    c.seq,
                    c.received_ms,
                    c.payload,
                )
            })
            .collect()
    }

    const EPOCHS: [u64; 2] = [7, u64::MAX - 1];

    fn sqlite_contents(s: &Store) -> Contents {
        let mut envelopes = Vec::new();
        s.replay(|e| envelopes.push(format!("{e:?}"))).unwrap();
        Contents {
            envelopes,
            count: s.envelope_count().unwrap(),
            last_seqs: ["c0", "c1"]
                .iter()
                .flat_map(|c| EPOCHS.map(|e| s.last_seq(c, e).unwrap()))
                .collect(),
            statuses: s.statuses().unwrap(),
            owners: owners(s.owners().unwrap()),
            descriptions: s.descriptions().unwrap(),
            conflicts: conflicts(s.conflicts(100).unwrap()),
            history: DEVICES
                .iter()
                .map(|d| {
                    (
                        debug(s.history(d, 0, u64::MAX, 100).unwrap()),
                        debug(s.history(d, 0, u64::MAX, 2).unwrap()),
                    )
                })
                .collect(),
        }
    }

    async fn pg_contents(s: &PgStore) -> Contents {
        let mut envelopes = Vec::new();
        let mut ids = Vec::new();
        let (_, last) = s
            .replay_after(0, |id, e| {
                ids.push(id);
                envelopes.push(format!("{e:?}"));
            })
            .await
            .unwrap();
        // Ids are dense and in order; the cursor is the last of them.
        assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
        assert_eq!(last, ids.last().copied().unwrap_or(0));
        assert_eq!(s.last_id().await.unwrap(), last);
        let mut last_seqs = Vec::new();
        for c in ["c0", "c1"] {
            for e in EPOCHS {
                last_seqs.push(s.last_seq(c, e).await.unwrap());
            }
        }
        let mut history = Vec::new();
        for d in DEVICES {
            history.push((
                debug(s.history(d, 0, u64::MAX, 100).await.unwrap()),
                debug(s.history(d, 0, u64::MAX, 2).await.unwrap()),
            ));
        }
        // A replica's lookup of some devices' descriptions answers what the whole list holds
        // of them, in the same order.
        let all = s.descriptions().await.unwrap();
        let mut pairs: Vec<(String, String)> =
            all.iter().map(|(s, d, _)| (s.clone(), d.clone())).collect();
        pairs.dedup();
        assert_eq!(s.descriptions_of(&pairs).await.unwrap(), all);
        if let Some((site, device)) = pairs.last() {
            let wanted = [
                (site.clone(), device.clone()),
                ("nowhere".into(), "none".into()),
            ];
            let of_one: Vec<_> = all
                .iter()
                .filter(|(s, d, _)| s == site && d == device)
                .cloned()
                .collect();
            assert!(!of_one.is_empty());
            assert_eq!(s.descriptions_of(&wanted).await.unwrap(), of_one);
        }
        // A replica's lookup of some claims answers what the whole list holds of them.
        let claims = s.owners().await.unwrap();
        let mut wanted: Vec<(crate::sites::OwnerKind, String)> =
            claims.iter().map(|c| (c.kind, c.id.clone())).collect();
        wanted.push((crate::sites::OwnerKind::Device, "never-seen".into()));
        assert_eq!(
            owners(s.owners_of(&wanted).await.unwrap()),
            owners(claims.clone())
        );
        Contents {
            history,
            envelopes,
            count: s.envelope_count().await.unwrap(),
            last_seqs,
            statuses: s.statuses().await.unwrap(),
            owners: owners(s.owners().await.unwrap()),
            descriptions: s.descriptions().await.unwrap(),
            conflicts: conflicts(s.conflicts(100).await.unwrap()),
        }
    }

    fn envelope(seq: u8, variant: u8) -> Item {
        item(&Op::Envelope {
            collector: 0,
            epoch: 0,
            seq,
            device: 0,
            variant,
        })
    }

    fn received(item: &Item) -> u64 {
        match item {
            Item::Envelope { received_ms, .. } => *received_ms,
            _ => unreachable!(),
        }
    }

    /// The raw retention on PostgreSQL: nothing without a snapshot, then only what the oldest
    /// kept snapshot covers and was received before the cutoff, oldest first; deleted
    /// identities stay repeats, a seq never stored stays new; snapshots keep the newest two.
    #[tokio::test]
    async fn retention_deletes_what_snapshots_cover_and_remembers_identities() {
        let pg = TempPostgres::start();
        let mut store = PgStore::connect(&pg.config()).await.unwrap();
        // Seqs 0..=9 without 4; received 5 min apart.
        let items: Vec<Item> = (0..10u8)
            .filter(|s| *s != 4)
            .map(|s| envelope(s, 0))
            .collect();
        assert!(store
            .commit(&items)
            .await
            .unwrap()
            .iter()
            .all(|c| *c == Committed::New));
        let cutoff = received(&items[6]); // seq 7: deleted are those received before it
        assert_eq!(store.prune_raw(cutoff).await.unwrap(), Pruned::default());

        store.save_snapshot(3, 1, b"first").await.unwrap();
        store.save_snapshot(8, 2, b"second").await.unwrap();
        // The oldest kept snapshot (through 3) limits the step.
        let step = store.prune_raw(cutoff).await.unwrap();
        assert_eq!((step.envelopes, step.more), (3, false));
        store.save_snapshot(9, 3, b"third").await.unwrap();
        let kept: Vec<i64> = store
            .snapshots()
            .await
            .unwrap()
            .iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(kept, vec![9, 8]);
        // Now through 8, but only what came before the cutoff: ids 4..=6 (seqs 3, 5, 6).
        let step = store.prune_raw(cutoff).await.unwrap();
        assert_eq!(step.envelopes, 3);
        let range = store.raw_range().await.unwrap();
        assert_eq!(
            (
                range.pruned_envelopes,
                range.pruned_through,
                range.pruned_before_ms
            ),
            (6, 6, cutoff)
        );
        let mut left = Vec::new();
        store
            .replay_after(0, |id, e| left.push((id, e.seq)))
            .await
            .unwrap();
        assert_eq!(left, vec![(7, 7), (8, 8), (9, 9)]);
        let Some(Item::Envelope {
            envelope: oldest, ..
        }) = items.get(6)
        else {
            unreachable!()
        };
        assert_eq!(range.oldest_poll_ms, Some(oldest.timestamp_ms));

        // Redeliveries of deleted envelopes are repeats (even with other bytes: they are gone
        // to compare); seq 4, never stored, is new; a stored one with other bytes conflicts.
        let again = store
            .commit(&[
                envelope(0, 0),
                envelope(5, 1),
                envelope(4, 0),
                envelope(8, 1),
            ])
            .await
            .unwrap();
        assert_eq!(
            again,
            vec![
                Committed::Repeat,
                Committed::Repeat,
                Committed::New,
                Committed::Conflict
            ]
        );
        assert_eq!(store.envelope_count().await.unwrap(), 4);
        assert_eq!(store.last_id().await.unwrap(), 10);
    }

    /// The same batches committed to the SQLite store and to PostgreSQL give the same answer
    /// per item and the same contents, also after reconnecting.
    #[test]
    fn postgres_answers_and_keeps_what_sqlite_does() {
        let pg = TempPostgres::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("devtel-pgstore-{}", std::process::id()));
        let case = std::cell::Cell::new(0u32);
        // What the cases met, so that the test cannot pass without repeats and conflicts.
        let seen = std::cell::RefCell::new(std::collections::HashSet::new());
        proptest!(ProptestConfig { cases: 48, ..ProptestConfig::default() }, |(batches in proptest::collection::vec(proptest::collection::vec(op(), 1..8), 1..10))| {
            let n = case.get();
            case.set(n + 1);
            let _ = std::fs::remove_dir_all(&dir);
            let mut sqlite = Store::open(&dir.join("devtel.sqlite")).unwrap();
            let db = format!("case_{n}");
            let config = rt.block_on(pg.database(&db));
            let mut postgres = rt.block_on(PgStore::connect(&config)).unwrap();
            for batch in &batches {
                let items: Vec<Item> = batch.iter().map(item).collect();
                let want = sqlite.commit(&items).unwrap();
                let got = rt.block_on(postgres.commit(&items)).unwrap();
                prop_assert_eq!(&got, &want, "batch {:?}", batch);
                seen.borrow_mut().extend(got.iter().map(|c| format!("{c:?}")));
            }
            let want = sqlite_contents(&sqlite);
            prop_assert_eq!(&rt.block_on(pg_contents(&postgres)), &want);
            // A second connection (a restart, another replica) migrates nothing and reads the same.
            drop(postgres);
            let again = rt.block_on(PgStore::connect(&config)).unwrap();
            prop_assert_eq!(&rt.block_on(pg_contents(&again)), &want);
        });
        let _ = std::fs::remove_dir_all(&dir);
        let seen = seen.into_inner();
        for outcome in ["New", "Repeat", "Conflict"] {
            assert!(seen.contains(outcome), "no case gave {outcome}: {seen:?}");
        }
    }
}
