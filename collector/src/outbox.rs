//! The collector's delivery bookkeeping, without I/O: which spooled readings to publish next,
//! which are with the MQTT client, which the broker has taken, and which the gateway has
//! confirmed — the only thing that removes a reading from the spool (with
//! [`Acknowledge::Gateway`], the default).
//!
//! The publisher's loop (`publisher.rs`) feeds it events — connected, a packet id assigned, a
//! PUBACK, a gateway [`Ack`], a tick — and asks it what to publish ([`Outbox::next_publish`]).
//! Time comes in as `tokio::time::Instant`, so the tests run it under paused time.
//!
//! # A record's way
//! 1. **pending**: in the spool, not handed to MQTT (or handed and lost with a session).
//! 2. **sending**: handed to the MQTT client; the outbox keeps a copy of the payload, so its
//!    segment may be dropped for space without losing it. At most `window` at once.
//! 3. **with the broker**: PUBACKed. At most `max_awaiting` sending + with the broker, so a
//!    gateway that is away never gets more queued at the broker than that per collector.
//! 4. **released**: named in a gateway acknowledgement (stored or refused for good) — or, with
//!    [`Acknowledge::Broker`], PUBACKed. Only now does the spool let it go.
//!
//! A record with the broker but not confirmed within the resend delay (`ack_timeout`, doubled
//! while no acknowledgement comes, up to [`MAX_BACKOFF`] times it) is published again; so is
//! every one with the broker after a reconnect (the broker may have lost it). Repeats are
//! harmless: the gateway drops them by `(collector, epoch, seq)` and acknowledges them again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use devtel_protocol::Ack;
use tokio::time::Instant;

use crate::spool::{Spool, SpoolError};

/// The resend delay grows to at most this many times `ack_timeout` while the gateway stays
/// silent (a metered uplink is not flooded by a gateway that is down for a day).
pub const MAX_BACKOFF: u32 = 8;

/// What the outbox needs of the spool. [`Spool`] is the real one; tests use a map.
pub trait Records {
    /// The first unacknowledged id at or after `from`.
    fn next_pending(&self, from: u64) -> Option<u64>;
    /// Whether `id` is in the spool and not acknowledged.
    fn is_pending(&self, id: u64) -> bool;
    /// A record's payload (`Ok(None)` when it is gone).
    ///
    /// # Errors
    /// When it cannot be read (corrupt records are taken out by the spool itself).
    fn read(&mut self, id: u64) -> Result<Option<Vec<u8>>, SpoolError>;
    /// The record is handed to MQTT (the outbox holds a copy).
    fn mark_sent(&mut self, id: u64);
    /// The record is released.
    ///
    /// # Errors
    /// When the spool cannot record it (it is then sent again after a restart).
    fn ack(&mut self, id: u64) -> Result<(), SpoolError>;
    /// Unacknowledged records.
    fn pending(&self) -> u64;
}

impl Records for Spool {
    fn next_pending(&self, from: u64) -> Option<u64> {
        Spool::next_pending(self, from)
    }
    fn is_pending(&self, id: u64) -> bool {
        Spool::is_pending(self, id)
    }
    fn read(&mut self, id: u64) -> Result<Option<Vec<u8>>, SpoolError> {
        Spool::read(self, id)
    }
    fn mark_sent(&mut self, id: u64) {
        Spool::mark_sent(self, id);
    }
    fn ack(&mut self, id: u64) -> Result<(), SpoolError> {
        Spool::ack(self, id)
    }
    fn pending(&self) -> u64 {
        Spool::pending(self)
    }
}

/// Who releases a reading from the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledge {
    /// The gateway's acknowledgement that it stored it (end to end; the default).
    Gateway,
    /// The broker's PUBACK (for a setup without a devtel gateway).
    Broker,
}

impl Acknowledge {
    /// The config value.
    pub const fn name(self) -> &'static str {
        match self {
            Acknowledge::Gateway => "gateway",
            Acknowledge::Broker => "broker",
        }
    }
}

/// Delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Most records handed to MQTT and not PUBACKed (`[mqtt] inflight`).
    pub window: usize,
    /// Most records sending or with the broker and not confirmed by the gateway.
    pub max_awaiting: usize,
    /// First resend delay of a record with the broker and not confirmed.
    pub ack_timeout: Duration,
    /// Who releases a reading.
    pub acknowledge: Acknowledge,
    /// How long a reading counts as live (preferred over the replay); the poll interval.
    pub live_for: Duration,
}

/// A publish handed to MQTT whose packet id is not known yet, or known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    Record(u64),
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Handed to the MQTT client, no PUBACK yet.
    Sending,
    /// PUBACKed at this time (or refused by the broker then): waiting for the gateway.
    WithBroker(Instant),
    /// Queued to be published again.
    Queued,
}

#[derive(Debug)]
struct Outstanding {
    payload: Vec<u8>,
    state: State,
}

/// A run of records with consecutive ids and sequence numbers of one epoch.
#[derive(Debug, Clone, Copy)]
struct Run {
    epoch: u64,
    first_seq: u64,
    len: u64,
}

/// Which spool id holds which `(epoch, seq)`: runs, since both grow by one per reading.
#[derive(Debug, Default)]
struct Index {
    runs: BTreeMap<u64, Run>,
}

impl Index {
    fn add(&mut self, id: u64, epoch: u64, seq: u64) {
        if let Some((first, run)) = self.runs.iter_mut().next_back() {
            if *first + run.len == id && run.epoch == epoch && run.first_seq + run.len == seq {
                run.len += 1;
                return;
            }
        }
        self.runs.insert(
            id,
            Run {
                epoch,
                first_seq: seq,
                len: 1,
            },
        );
    }

    fn identity(&self, id: u64) -> Option<(u64, u64)> {
        let (first, run) = self.runs.range(..=id).next_back()?;
        let offset = id - first;
        (offset < run.len).then(|| (run.epoch, run.first_seq + offset))
    }

    /// The id ranges `[from, to)` holding sequence numbers `[start, end)` of `epoch`.
    fn ids(&self, epoch: u64, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.runs
            .iter()
            .filter(|(_, r)| r.epoch == epoch)
            .filter_map(|(first, r)| {
                let lo = start.max(r.first_seq);
                let hi = end.min(r.first_seq.saturating_add(r.len));
                (lo < hi).then(|| (first + (lo - r.first_seq), first + (hi - r.first_seq)))
            })
            .collect()
    }

    /// Forgets runs that end at or below `below` (all released).
    fn prune(&mut self, below: u64) {
        while let Some((&first, run)) = self.runs.iter().next() {
            if first + run.len <= below && self.runs.len() > 1 {
                self.runs.remove(&first);
            } else {
                break;
            }
        }
    }
}

/// Counters of the outbox (the publisher adds them to the status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Publishes handed to MQTT (repeats included).
    pub published: u64,
    /// PUBACKs of records.
    pub broker_acked: u64,
    /// PUBACKs with an error reason (the broker did not take the message).
    pub broker_refused: u64,
    /// Records released (removed from the spool) by an acknowledgement.
    pub acknowledged: u64,
    /// Of those, refused for good by the gateway.
    pub rejected: u64,
    /// Records published again (timeout or reconnect).
    pub resent: u64,
    /// Acknowledgements that named nothing the spool still holds (repeats, unknown epochs),
    /// and PUBACKs of records already released.
    pub unknown_acks: u64,
}

/// What to publish next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// The record.
    pub id: u64,
    /// Its spool payload (`[topic length][topic][envelope]`).
    pub payload: Vec<u8>,
    /// Whether it was published before (a resend).
    pub repeat: bool,
}

/// The state machine. See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    settings: Settings,
    index: Index,
    inflight: HashMap<u16, Tracked>,
    unassigned: VecDeque<Tracked>,
    outstanding: BTreeMap<u64, Outstanding>,
    resend: VecDeque<u64>,
    cursor: u64,
    live: VecDeque<(u64, Instant)>,
    take_live: bool,
    connected: bool,
    resend_after: Duration,
    /// Whether an acknowledgement came since the last timeout resend.
    progress: bool,
    counts: Counts,
}

/// Most recent ids remembered as live.
const MAX_LIVE: usize = 100_000;

impl Outbox {
    /// An outbox over a spool whose first pending record is `cursor`.
    pub fn new(settings: Settings, cursor: u64) -> Outbox {
        Outbox {
            settings,
            index: Index::default(),
            inflight: HashMap::new(),
            unassigned: VecDeque::new(),
            outstanding: BTreeMap::new(),
            resend: VecDeque::new(),
            cursor,
            live: VecDeque::new(),
            take_live: true,
            connected: false,
            resend_after: settings.ack_timeout,
            progress: true,
            counts: Counts::default(),
        }
    }

    /// Where the backlog replay starts (the spool's first pending record).
    pub fn set_cursor(&mut self, cursor: u64) {
        self.cursor = cursor;
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Counters so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Makes a spooled record's identity known (at start, for every record in the spool).
    pub fn recovered(&mut self, id: u64, epoch: u64, seq: u64) {
        self.index.add(id, epoch, seq);
    }

    /// A reading was appended to the spool: known by identity and first in line as live.
    pub fn appended(&mut self, id: u64, epoch: u64, seq: u64, now: Instant) {
        self.index.add(id, epoch, seq);
        self.live.push_back((id, now));
        if self.live.len() > MAX_LIVE {
            self.live.pop_front();
        }
    }

    /// Connected (ConnAck). Without a resumed session the client dropped what it had not sent
    /// or not got acknowledged: all of it goes again; in gateway mode, so does everything with
    /// the broker (the broker may have lost it).
    pub fn connected(&mut self, session_present: bool) {
        self.connected = true;
        let mut again: Vec<u64> = Vec::new();
        for (id, o) in &mut self.outstanding {
            let go = match o.state {
                State::Sending => !session_present,
                State::WithBroker(_) => self.settings.acknowledge == Acknowledge::Gateway,
                State::Queued => false,
            };
            if go {
                o.state = State::Queued;
                again.push(*id);
            }
        }
        if !session_present {
            self.inflight.clear();
            self.unassigned.clear();
        }
        self.counts.resent += again.len() as u64;
        // Oldest first, ahead of earlier queued ones.
        for id in again.into_iter().rev() {
            self.resend.push_front(id);
        }
    }

    /// The connection broke.
    pub fn disconnected(&mut self) {
        self.connected = false;
    }

    /// Whether connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// How many records may still be handed to MQTT now.
    fn room(&self) -> bool {
        let sending = self.inflight.len() + self.unassigned.len();
        if sending >= self.settings.window {
            return false;
        }
        match self.settings.acknowledge {
            Acknowledge::Broker => true,
            Acknowledge::Gateway => {
                let awaiting = self
                    .outstanding
                    .values()
                    .filter(|o| o.state != State::Queued)
                    .count();
                awaiting < self.settings.max_awaiting
            }
        }
    }

    /// The next record to publish, if the window has room: first what goes again, then
    /// alternately the newest live reading and the oldest pending one. Call
    /// [`Outbox::published`] or [`Outbox::not_published`] with it.
    pub fn next_publish(&mut self, records: &mut impl Records, now: Instant) -> Option<Next> {
        if !self.connected || !self.room() {
            return None;
        }
        while let Some(id) = self.resend.pop_front() {
            if let Some(o) = self.outstanding.get(&id) {
                if o.state == State::Queued {
                    return Some(Next {
                        id,
                        payload: o.payload.clone(),
                        repeat: true,
                    });
                }
            }
        }
        loop {
            let id = self.pick(records, now)?;
            match records.read(id) {
                Ok(Some(payload)) => {
                    return Some(Next {
                        id,
                        payload,
                        repeat: false,
                    })
                }
                Ok(None) | Err(_) => continue,
            }
        }
    }

    fn pick(&mut self, records: &impl Records, now: Instant) -> Option<u64> {
        for _ in 0..2 {
            if self.take_live {
                self.take_live = false;
                while let Some((id, at)) = self.live.pop_front() {
                    if now.saturating_duration_since(at) <= self.settings.live_for
                        && !self.outstanding.contains_key(&id)
                        && records.is_pending(id)
                    {
                        return Some(id);
                    }
                }
            } else {
                self.take_live = true;
                let mut from = self.cursor;
                while let Some(id) = records.next_pending(from) {
                    if self.outstanding.contains_key(&id) {
                        from = id + 1;
                        continue;
                    }
                    self.cursor = id + 1;
                    return Some(id);
                }
                self.cursor = from;
            }
        }
        None
    }

    /// `next` was handed to the MQTT client.
    pub fn published(&mut self, next: Next, records: &mut impl Records) {
        self.unassigned.push_back(Tracked::Record(next.id));
        self.counts.published += 1;
        if !next.repeat {
            records.mark_sent(next.id);
        }
        self.outstanding.insert(
            next.id,
            Outstanding {
                payload: next.payload,
                state: State::Sending,
            },
        );
    }

    /// `next` could not be handed over (the client's queue is full): it comes again.
    pub fn not_published(&mut self, next: Next) {
        if next.repeat {
            self.resend.push_front(next.id);
        } else {
            self.cursor = self.cursor.min(next.id);
        }
    }

    /// A status message was handed to the MQTT client.
    pub fn status_published(&mut self) {
        self.unassigned.push_back(Tracked::Status);
    }

    /// The client sent a PUBLISH with `pkid` (a packet id already in flight is the client
    /// resending it in a resumed session).
    pub fn outgoing_publish(&mut self, pkid: u16) {
        if pkid == 0 || self.inflight.contains_key(&pkid) {
            return;
        }
        if let Some(tracked) = self.unassigned.pop_front() {
            self.inflight.insert(pkid, tracked);
        }
    }

    /// The spooled payload and `(epoch, seq)` of the record the publish `pkid` carries, if
    /// it is one.
    pub fn inflight_record(&self, pkid: u16) -> Option<(&[u8], (u64, u64))> {
        match self.inflight.get(&pkid)? {
            Tracked::Record(id) => Some((
                &self.outstanding.get(id)?.payload,
                self.index.identity(*id)?,
            )),
            Tracked::Status => None,
        }
    }

    /// A PUBACK for `pkid`; `accepted` is false for an error reason code (the broker did not
    /// take the message: it goes again after the resend delay).
    ///
    /// # Errors
    /// When the spool cannot record a release (broker mode).
    pub fn puback(
        &mut self,
        pkid: u16,
        accepted: bool,
        records: &mut impl Records,
        now: Instant,
    ) -> Result<(), SpoolError> {
        let Some(Tracked::Record(id)) = self.inflight.remove(&pkid) else {
            return Ok(());
        };
        let Some(o) = self.outstanding.get_mut(&id) else {
            return Ok(()); // already released by the gateway
        };
        if !accepted {
            self.counts.broker_refused += 1;
            o.state = State::WithBroker(now);
            return Ok(());
        }
        self.counts.broker_acked += 1;
        // A record whose identity is unknown cannot be confirmed by a gateway: the broker's
        // word is all there will be.
        let broker_releases =
            self.settings.acknowledge == Acknowledge::Broker || self.index.identity(id).is_none();
        if broker_releases {
            return self.release(id, false, records);
        }
        o.state = State::WithBroker(now);
        Ok(())
    }

    fn release(
        &mut self,
        id: u64,
        rejected: bool,
        records: &mut impl Records,
    ) -> Result<(), SpoolError> {
        let held = self.outstanding.remove(&id).is_some();
        if !held && !records.is_pending(id) {
            self.counts.unknown_acks += 1;
            return Ok(());
        }
        self.counts.acknowledged += 1;
        if rejected {
            self.counts.rejected += 1;
        }
        records.ack(id)
    }

    /// A gateway acknowledgement for this collector: releases every named record the spool
    /// still holds; names it does not hold are counted in [`Counts::unknown_acks`].
    ///
    /// # Errors
    /// When the spool cannot record a release.
    pub fn gateway_ack(&mut self, ack: &Ack, records: &mut impl Records) -> Result<(), SpoolError> {
        let mut result = Ok(());
        let mut found = 0u64;
        let named: u64 = ack
            .stored
            .iter()
            .chain(&ack.rejected)
            .fold(0u64, |n, r| n.saturating_add(r.count));
        for (list, rejected) in [(&ack.stored[..], false), (&ack.rejected[..], true)] {
            for range in list {
                for (lo, hi) in self.index.ids(ack.epoch, range.start, range.end()) {
                    let mut from = lo;
                    while let Some(id) = records.next_pending(from).filter(|id| *id < hi) {
                        found += 1;
                        if let Err(e) = self.release(id, rejected, records) {
                            result = Err(e);
                        }
                        from = id + 1;
                    }
                    // Records held in memory whose segment was dropped for space.
                    let held: Vec<u64> =
                        self.outstanding.range(lo..hi).map(|(id, _)| *id).collect();
                    for id in held {
                        found += 1;
                        if let Err(e) = self.release(id, rejected, records) {
                            result = Err(e);
                        }
                    }
                }
            }
        }
        if found > 0 {
            self.progress = true;
            self.resend_after = self.settings.ack_timeout;
        }
        // What was named but not held: repeats of earlier acknowledgements, or an epoch this
        // spool no longer has. Cumulative ranges name much that was released long ago, so
        // only a count of "found nothing" is informative.
        if found == 0 && named > 0 {
            self.counts.unknown_acks += 1;
        }
        if let Some(first) = records.next_pending(0) {
            self.index.prune(first);
        }
        result
    }

    /// Time passes: records with the broker and unconfirmed for the resend delay go again.
    /// The delay doubles (up to [`MAX_BACKOFF`] times `ack_timeout`) while no acknowledgement
    /// comes in between.
    pub fn tick(&mut self, now: Instant) {
        if !self.connected || self.settings.acknowledge == Acknowledge::Broker {
            return;
        }
        let mut due: Vec<u64> = Vec::new();
        for (id, o) in &mut self.outstanding {
            if let State::WithBroker(since) = o.state {
                if now.saturating_duration_since(since) >= self.resend_after {
                    o.state = State::Queued;
                    due.push(*id);
                }
            }
        }
        if due.is_empty() {
            return;
        }
        if !self.progress {
            let cap = self.settings.ack_timeout * MAX_BACKOFF;
            self.resend_after = (self.resend_after * 2).min(cap);
        }
        self.progress = false;
        self.counts.resent += due.len() as u64;
        self.resend.extend(due);
    }

    /// The current resend delay.
    pub fn resend_after(&self) -> Duration {
        self.resend_after
    }

    /// Records with the broker (or refused by it) and not confirmed, and the age of the oldest.
    pub fn awaiting(&self, now: Instant) -> (u64, Duration) {
        let mut count = 0u64;
        let mut oldest = Duration::ZERO;
        for o in self.outstanding.values() {
            if let State::WithBroker(since) = o.state {
                count += 1;
                oldest = oldest.max(now.saturating_duration_since(since));
            }
        }
        (count, oldest)
    }

    /// Records handed over and not released (sending, with the broker, queued again).
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Nothing held and nothing pending: a drain may end.
    pub fn idle(&self, records: &impl Records) -> bool {
        self.outstanding.is_empty() && records.pending() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::SeqRange;
    use std::collections::BTreeSet;

    /// The spool as a map: id → payload, plus what was acknowledged.
    #[derive(Default)]
    struct Mem {
        records: BTreeMap<u64, Vec<u8>>,
        sent: BTreeSet<u64>,
        acked: Vec<u64>,
        next: u64,
    }

    impl Mem {
        fn append(&mut self) -> u64 {
            let id = self.next;
            self.records.insert(id, format!("record {id}").into_bytes());
            self.next += 1;
            id
        }
    }

    impl Records for Mem {
        fn next_pending(&self, from: u64) -> Option<u64> {
            self.records.range(from..).next().map(|(id, _)| *id)
        }
        fn is_pending(&self, id: u64) -> bool {
            self.records.contains_key(&id)
        }
        fn read(&mut self, id: u64) -> Result<Option<Vec<u8>>, SpoolError> {
            Ok(self.records.get(&id).cloned())
        }
        fn mark_sent(&mut self, id: u64) {
            self.sent.insert(id);
        }
        fn ack(&mut self, id: u64) -> Result<(), SpoolError> {
            if self.records.remove(&id).is_some() {
                self.acked.push(id);
            }
            Ok(())
        }
        fn pending(&self) -> u64 {
            self.records.len() as u64
        }
    }

    const EPOCH: u64 = 1_700_000_000_000;

    fn settings(acknowledge: Acknowledge) -> Settings {
        Settings {
            window: 4,
            max_awaiting: 10,
            ack_timeout: Duration::from_secs(120),
            acknowledge,
            live_for: Duration::from_secs(60),
        }
    }

    /// A collector run: an outbox, its spool, a packet id counter, and the broker's view.
    struct Rig {
        outbox: Outbox,
        spool: Mem,
        pkid: u16,
        /// Packet id → record id of what the "client" sent and the broker has not PUBACKed.
        wire: BTreeMap<u16, u64>,
        published: Vec<u64>,
    }

    impl Rig {
        fn new(acknowledge: Acknowledge) -> Rig {
            Rig {
                outbox: Outbox::new(settings(acknowledge), 0),
                spool: Mem::default(),
                pkid: 0,
                wire: BTreeMap::new(),
                published: Vec::new(),
            }
        }

        /// Polls `n` readings: spooled with consecutive sequence numbers from `seq`.
        fn poll(&mut self, n: u64, seq: u64) {
            for i in 0..n {
                let id = self.spool.append();
                self.outbox.appended(id, EPOCH, seq + i, Instant::now());
            }
        }

        /// Publishes what the outbox hands out; the "client" assigns packet ids.
        fn send(&mut self) -> Vec<u64> {
            let mut sent = Vec::new();
            while let Some(next) = self.outbox.next_publish(&mut self.spool, Instant::now()) {
                let id = next.id;
                self.outbox.published(next, &mut self.spool);
                self.pkid = self.pkid % 60_000 + 1;
                self.outbox.outgoing_publish(self.pkid);
                self.wire.insert(self.pkid, id);
                sent.push(id);
            }
            self.published.extend(&sent);
            sent
        }

        /// The broker PUBACKs everything on the wire.
        fn pubacks(&mut self) {
            for (pkid, _) in std::mem::take(&mut self.wire) {
                self.outbox
                    .puback(pkid, true, &mut self.spool, Instant::now())
                    .unwrap();
            }
        }

        fn ack(&mut self, epoch: u64, stored: &[(u64, u64)], rejected: &[(u64, u64)]) {
            let mut ack = Ack::new("c".try_into().unwrap(), epoch);
            for &(start, count) in stored {
                ack.stored.push(SeqRange { start, count }).unwrap();
            }
            for &(start, count) in rejected {
                ack.rejected.push(SeqRange { start, count }).unwrap();
            }
            self.outbox.gateway_ack(&ack, &mut self.spool).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_puback_without_the_gateways_ack_keeps_the_reading_and_sends_it_again() {
        let mut rig = Rig::new(Acknowledge::Gateway);
        rig.outbox.connected(false);
        rig.poll(3, 0);
        assert_eq!(rig.send(), [0, 1, 2]);
        rig.pubacks();
        assert_eq!(rig.spool.pending(), 3, "the broker's word does not release");
        assert_eq!(rig.outbox.awaiting(Instant::now()).0, 3);
        // The gateway's acknowledgement is lost; two minutes later they go again.
        tokio::time::advance(Duration::from_secs(119)).await;
        rig.outbox.tick(Instant::now());
        assert!(rig.send().is_empty());
        let (_, oldest) = rig.outbox.awaiting(Instant::now());
        assert_eq!(oldest, Duration::from_secs(119));
        tokio::time::advance(Duration::from_secs(1)).await;
        rig.outbox.tick(Instant::now());
        assert_eq!(
            rig.send(),
            [0, 1, 2],
            "resent from the copies, oldest first"
        );
        assert_eq!(rig.spool.sent.len(), 3);
        rig.pubacks();
        // This time the acknowledgement arrives: all three leave the spool.
        rig.ack(EPOCH, &[(0, 3)], &[]);
        assert_eq!(rig.spool.acked, [0, 1, 2]);
        assert_eq!(rig.outbox.outstanding(), 0);
        let c = rig.outbox.counts();
        assert_eq!((c.published, c.resent, c.acknowledged), (6, 3, 3));
        assert!(rig.outbox.idle(&rig.spool));
    }

    #[tokio::test(start_paused = true)]
    async fn the_resend_delay_doubles_while_the_gateway_is_silent_and_resets_on_progress() {
        let mut rig = Rig::new(Acknowledge::Gateway);
        rig.outbox.connected(false);
        rig.poll(1, 0);
        rig.send();
        rig.pubacks();
        let mut resends_at = Vec::new();
        for second in 1..=1_800u64 {
            tokio::time::advance(Duration::from_secs(1)).await;
            rig.outbox.tick(Instant::now());
            if !rig.send().is_empty() {
                resends_at.push(second);
                rig.pubacks();
            }
        }
        // After 120 s, then 120 s later (the delay doubles only after a silent resend), then
        // 240, 480: the cap of 8 x 120 s.
        assert_eq!(resends_at, [120, 240, 480, 960]);
        assert_eq!(rig.outbox.resend_after(), Duration::from_secs(960));
        rig.ack(EPOCH, &[(0, 1)], &[]);
        assert_eq!(rig.outbox.resend_after(), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconnect_with_the_session_lost_sends_everything_unconfirmed_again() {
        let mut rig = Rig::new(Acknowledge::Gateway);
        rig.outbox.connected(false);
        rig.poll(6, 0);
        assert_eq!(rig.send(), [0, 1, 2, 3], "window of 4");
        // Two PUBACKed, two still on the wire when the broker restarts without persistence.
        let first_two: Vec<u16> = rig.wire.keys().copied().take(2).collect();
        for pkid in first_two {
            rig.wire.remove(&pkid);
            rig.outbox
                .puback(pkid, true, &mut rig.spool, Instant::now())
                .unwrap();
        }
        assert_eq!(rig.send(), [4, 5], "room for two more");
        rig.outbox.disconnected();
        rig.wire.clear();
        assert!(rig.send().is_empty(), "nothing goes while disconnected");
        rig.outbox.connected(false);
        let again = rig.send();
        assert_eq!(again, [0, 1, 2, 3], "window of 4, oldest first");
        rig.pubacks();
        assert_eq!(rig.send(), [4, 5]);
        rig.pubacks();
        rig.ack(EPOCH, &[(0, 6)], &[]);
        assert_eq!(rig.spool.acked, [0, 1, 2, 3, 4, 5]);
        // A resumed session: the client resends what is in flight itself; only what was with
        // the broker goes again from here.
        rig.poll(2, 6);
        rig.send();
        let first: u16 = *rig.wire.keys().next().unwrap();
        rig.wire.remove(&first);
        rig.outbox
            .puback(first, true, &mut rig.spool, Instant::now())
            .unwrap();
        rig.outbox.disconnected();
        rig.outbox.connected(true);
        assert_eq!(rig.send(), [6], "only the one with the broker");
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_out_of_order_and_unknown_acks_release_exactly_what_they_name() {
        let mut rig = Rig::new(Acknowledge::Gateway);
        rig.outbox.connected(false);
        rig.poll(4, 10);
        rig.send();
        rig.pubacks();
        rig.ack(EPOCH, &[(12, 2)], &[]);
        assert_eq!(rig.spool.acked, [2, 3], "seq 12, 13 are ids 2, 3");
        rig.ack(EPOCH, &[(12, 2)], &[]);
        assert_eq!(rig.spool.acked, [2, 3], "a repeat changes nothing");
        assert_eq!(rig.outbox.counts().unknown_acks, 1);
        rig.ack(EPOCH + 1, &[(10, 4)], &[]);
        assert_eq!(rig.spool.acked.len(), 2, "another epoch names nothing here");
        rig.ack(EPOCH, &[(0, u64::MAX / 2)], &[]);
        assert_eq!(
            rig.spool.acked,
            [2, 3, 0, 1],
            "a huge range releases what is held"
        );
        // The PUBACK of a record the gateway confirmed first is harmless.
        rig.poll(1, 14);
        rig.send();
        rig.ack(EPOCH, &[(14, 1)], &[]);
        rig.pubacks();
        assert_eq!(rig.spool.acked, [2, 3, 0, 1, 4]);
        assert!(rig.outbox.idle(&rig.spool));
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_on_a_shared_subscription_each_ack_their_share_and_the_union_releases() {
        let mut rig = Rig::new(Acknowledge::Gateway);
        rig.outbox.connected(false);
        rig.poll(6, 0);
        rig.send();
        rig.pubacks();
        // The broker split the stream: replica A stored 0, 2, 4 and B 1, 3, 5. Each
        // acknowledges only what it committed, cumulatively.
        rig.ack(EPOCH, &[(0, 1)], &[]);
        rig.ack(EPOCH, &[(1, 1)], &[]);
        rig.ack(EPOCH, &[(0, 1), (2, 1)], &[]);
        rig.ack(EPOCH, &[(1, 1), (3, 1)], &[]);
        assert_eq!(rig.spool.acked, [0, 1, 2, 3]);
        // Silence from A on 5 and from B on 4 holds nothing back: each names its own.
        rig.ack(EPOCH, &[(1, 1), (3, 1), (5, 1)], &[]);
        assert_eq!(rig.spool.acked, [0, 1, 2, 3, 5]);
        assert!(
            !rig.outbox.idle(&rig.spool),
            "seq 4 still awaits its replica"
        );
        rig.ack(EPOCH, &[(0, 1), (2, 1), (4, 1)], &[]);
        assert_eq!(rig.spool.acked, [0, 1, 2, 3, 5, 4]);
        assert!(rig.outbox.idle(&rig.spool));
    }

    #[tokio::test(start_paused = true)]
    async fn readings_refused_by_the_gateway_are_released_and_counted() {
        let mut rig = Rig::new(Acknowledge::Gateway);
        rig.outbox.connected(false);
        rig.poll(3, 0);
        rig.send();
        rig.pubacks();
        rig.ack(EPOCH, &[(0, 1), (2, 1)], &[(1, 1)]);
        assert_eq!(rig.spool.pending(), 0);
        let c = rig.outbox.counts();
        assert_eq!((c.acknowledged, c.rejected), (3, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_gateway_away_gets_at_most_max_awaiting_queued_at_the_broker() {
        let mut rig = Rig::new(Acknowledge::Gateway);
        rig.outbox.connected(false);
        rig.poll(50, 0);
        for _ in 0..20 {
            rig.send();
            rig.pubacks();
        }
        assert_eq!(rig.published.len(), 10, "max_awaiting");
        assert_eq!(rig.spool.pending(), 50);
        // The gateway comes back and confirms: the window opens again.
        rig.ack(EPOCH, &[(0, 10)], &[]);
        assert_eq!(rig.send().len(), 4);
        // A refused PUBACK (e.g. not authorized) keeps the record; it goes again later.
        let pkid = *rig.wire.keys().next().unwrap();
        let id = rig.wire.remove(&pkid).unwrap();
        rig.outbox
            .puback(pkid, false, &mut rig.spool, Instant::now())
            .unwrap();
        assert!(rig.spool.is_pending(id));
        assert_eq!(rig.outbox.counts().broker_refused, 1);
        tokio::time::advance(Duration::from_secs(120)).await;
        rig.outbox.tick(Instant::now());
        assert_eq!(rig.send().first(), Some(&id));
    }

    #[tokio::test(start_paused = true)]
    async fn in_broker_mode_the_puback_releases() {
        let mut rig = Rig::new(Acknowledge::Broker);
        rig.outbox.connected(false);
        rig.poll(6, 0);
        rig.send();
        rig.pubacks();
        assert_eq!(rig.spool.acked, [0, 1, 2, 3]);
        rig.send();
        rig.pubacks();
        assert_eq!(rig.spool.pending(), 0);
        tokio::time::advance(Duration::from_secs(3600)).await;
        rig.outbox.tick(Instant::now());
        assert!(rig.send().is_empty(), "nothing is ever resent");
    }

    #[tokio::test(start_paused = true)]
    async fn live_readings_alternate_with_the_backlog() {
        let mut rig = Rig::new(Acknowledge::Broker);
        // A backlog of 6 from before (recovered), then 3 live readings.
        for _ in 0..6 {
            let id = rig.spool.append();
            rig.outbox.recovered(id, EPOCH - 1, id);
        }
        rig.poll(3, 0);
        rig.outbox.connected(false);
        let order = rig.send();
        assert_eq!(order, [6, 0, 7, 1], "newest live, oldest backlog, ...");
    }
}
