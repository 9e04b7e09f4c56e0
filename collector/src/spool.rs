//! The on-disk spool: every encoded envelope is appended here before it is published, and is
//! removed only after the broker acknowledged it (PUBACK) or by the explicit drop-oldest policy.
//!
//! # Invariants
//! 1. **Write before publish.** The sender appends a record, then calls [`Spool::sync`], and
//!    only then may the record be handed to MQTT. Under [`Fsync::Always`] the record is on stable
//!    storage before its first byte goes on the network.
//! 2. **Only two ways out.** A record leaves the spool through [`Spool::ack`] or through the
//!    drop-oldest policy when the spool is full ([`SpoolStats::dropped`], logged). Nothing else
//!    removes a record; a record that fails its checksum on disk is counted
//!    ([`SpoolStats::corrupt`]) and logged. A record the disk refuses (full, I/O error) is kept
//!    in memory, in order, up to [`MAX_IN_MEMORY`], and written when the disk takes writes
//!    again; the failed write is cut back to the last whole record first, so later records
//!    stay readable. A record already handed to the broker
//!    ([`Spool::mark_sent`]) whose segment is dropped for space is not counted as dropped: the
//!    sender keeps its copy in memory until the PUBACK.
//! 3. **Dense ids.** Record ids are 0, 1, 2, ... per spool directory, in append order, never
//!    reused: a new segment never starts below the persisted ack watermark or the end of the
//!    previous segment.
//! 4. **Framing.** A segment file `{first_id:020}.seg` is an 8-byte magic followed by records
//!    `[len: u32 LE][crc32(len bytes ‖ payload): u32 LE][payload]`. At a record whose length or
//!    checksum does not hold, opening resynchronises on the next offset where both hold (the
//!    stretch between is counted and logged; the records after it are replayed whatever the
//!    watermark says, since their ids moved). A torn tail after power loss is truncated away
//!    (and counted) instead of crashing or being replayed as garbage.
//! 5. **Bounded.** The segments together never exceed `max_bytes` after an append: the oldest
//!    segments are dropped first (whole segments, so the dropped readings are always the oldest).
//! 6. **At least once, never skipped.** The `acked` file holds a watermark below which every
//!    record was acknowledged or dropped. It is written after acks (at most every
//!    [`WATERMARK_EVERY`] and at shutdown) and is never ahead of the truth, so a restart resends
//!    at most records that were already acknowledged; receivers drop those by their
//!    `(collector, epoch, seq)`. It never skips an unacknowledged one.
//!
//! # Durability (`spool.fsync`)
//! - `always` (default): `fdatasync` after every batch of appends, before publishing. A power cut
//!   loses nothing that was polled before the batch was synced. A failed fsync is never taken
//!   as success: what was written since the last good sync is written again (the kernel may
//!   have dropped those pages) and synced on the next try.
//! - a duration such as `"1s"`: sync at most that often. A crash of the process loses nothing (the
//!   data is in the kernel); a power cut may lose the readings of the last interval.
//! - `never`: leave it to the kernel (about 30 s on Linux). For SD cards that must be spared.
//!
//! The spool is synchronous (plain `std::fs`): its writes are small appends to the page cache,
//! and the sender calls it from one task.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

/// First bytes of every segment file (format version 1 of the spool).
const MAGIC: &[u8; 8] = b"DTSPOOL1";
/// Bytes before each payload: length and checksum.
pub const RECORD_HEADER: usize = 8;
/// Largest payload accepted (a record larger than this on disk is taken as corruption).
pub const MAX_RECORD: usize = 1 << 20;
/// Most payload bytes kept in memory while the disk refuses writes.
pub const MAX_IN_MEMORY: usize = 4 << 20;
/// Most bytes written but not yet synced that are kept to be written again if the fsync
/// fails; beyond it the spool syncs before it writes more.
pub const MAX_UNSYNCED: usize = 4 << 20;
/// How often the ack watermark is written while acks come in.
pub const WATERMARK_EVERY: Duration = Duration::from_secs(1);

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every batch of appends, before the records are published.
    Always,
    /// At most once per interval.
    Every(Duration),
    /// Never explicitly.
    Never,
}

/// Spool limits and policy.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Directory holding the segments (created if missing).
    pub dir: PathBuf,
    /// Most bytes on disk; beyond it the oldest readings are dropped.
    pub max_bytes: u64,
    /// Size at which a new segment file is started.
    pub segment_bytes: u64,
    /// Sync policy.
    pub fsync: Fsync,
}

impl SpoolConfig {
    /// A config with the segment size derived from `max_bytes` (1/16 of it, 4 KiB to 4 MiB),
    /// so that dropping one segment drops a small share of the spool.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64, fsync: Fsync) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(4096, 4 << 20),
            fsync,
        }
    }
}

/// Spool failures. Every one names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A payload is larger than the whole spool may be.
    #[error("a record of {len} bytes does not fit a spool of {max} bytes")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The spool's `max_bytes`.
        max: u64,
    },
    /// The disk refuses writes and the readings kept in memory meanwhile fill their bound.
    #[error("the spool cannot write to disk and holds {held} readings ({bytes} bytes) in memory, its limit")]
    NoRoom {
        /// Readings held in memory.
        held: usize,
        /// Their bytes.
        bytes: usize,
    },
    /// A record's checksum failed when it was read back.
    #[error("spool record {id} in {path} is corrupt")]
    Corrupt {
        /// The record id.
        id: u64,
        /// The segment file.
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Counters since the spool was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records appended.
    pub appended: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// Unacknowledged records dropped because the spool was full.
    pub dropped: u64,
    /// Corrupt places found: torn tails and corrupt stretches skipped at open (the scan
    /// resynchronises on the next record whose framing and checksum hold), failed checksums on
    /// read, segment files that are not the spool's.
    pub corrupt: u64,
    /// Bytes skipped past corrupt records at open.
    pub skipped_bytes: u64,
    /// Segment files that could not be placed (ids overlapping their predecessor): moved
    /// aside as `.unplaced`, their readings not replayed.
    pub unplaced: u64,
    /// Writes that failed (disk full, I/O error): the record was cut back and kept in memory.
    pub write_errors: u64,
    /// Failed fsyncs: what was not synced was written again and is synced on the next try.
    pub sync_failures: u64,
    /// Readings that were only in memory when the spool closed (the disk never took them).
    pub lost_in_memory: u64,
    /// Unacknowledged records found at open (to be replayed).
    pub recovered: u64,
}

struct Segment {
    first_id: u64,
    path: PathBuf,
    file: File,
    /// Byte offset of each record's header.
    offsets: Vec<u32>,
    acked: Vec<bool>,
    /// Handed to the broker (the sender keeps a copy until the PUBACK).
    sent: Vec<bool>,
    unacked: usize,
    len: u64,
    /// A failed write could not be cut back: the next record goes to a new segment.
    broken: bool,
}

impl Segment {
    fn end_id(&self) -> u64 {
        self.first_id + self.offsets.len() as u64
    }
}

/// The spool. See the module documentation for its invariants.
pub struct Spool {
    config: SpoolConfig,
    segments: VecDeque<Segment>,
    next_id: u64,
    bytes: u64,
    unsynced: bool,
    last_sync: Instant,
    watermark_written: u64,
    last_watermark_write: Instant,
    stats: SpoolStats,
    /// Records the disk refused, oldest first; their ids follow the last record on disk.
    unwritten: VecDeque<Unwritten>,
    unwritten_bytes: usize,
    /// Frames written since the last successful sync: (segment, offset, bytes).
    unsynced_frames: Vec<(u64, u64, Vec<u8>)>,
    unsynced_bytes: usize,
    last_write_error_log: Option<Instant>,
    #[cfg(test)]
    faults: Faults,
}

/// A record kept in memory while the disk refuses writes.
struct Unwritten {
    id: u64,
    payload: Vec<u8>,
    acked: bool,
    sent: bool,
}

/// Injected failures (tests only).
#[cfg(test)]
#[derive(Default)]
struct Faults {
    /// Writes that write half their bytes, then fail.
    short_writes: u32,
    /// Syncs that fail after the kernel "lost" the unsynced bytes (they are zeroed).
    failed_syncs: u32,
}

fn checksum(len_bytes: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

/// Encodes one record (header and payload) into `out`.
fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The length of the record whose header starts at `pos` when its framing and checksum hold.
fn record_at(data: &[u8], pos: usize) -> Option<usize> {
    let header = data.get(pos..pos.checked_add(RECORD_HEADER)?)?;
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = data.get(pos + RECORD_HEADER..pos + RECORD_HEADER + len)?;
    (checksum(&len_bytes, payload) == crc).then_some(len)
}

/// What [`scan`] found in a segment.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Offsets of the valid records (relative to the data).
    pub(crate) offsets: Vec<u32>,
    /// End of the last valid record: what follows is a torn tail.
    pub(crate) valid_len: usize,
    /// Corrupt stretches skipped between valid records: (offset, length).
    pub(crate) skipped: Vec<(usize, usize)>,
    /// Index (in `offsets`) of the first record after a skipped stretch: its id and all later
    /// ones in this segment are shifted, so the watermark no longer applies to them.
    first_shifted: Option<usize>,
}

/// Splits `data` (a segment without its magic) into records. At a record whose framing or
/// checksum does not hold, the scan resynchronises on the next offset where both hold; what
/// lies between is skipped (and reported). After the last valid record comes the torn tail.
pub(crate) fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0usize;
    while pos < data.len() {
        if let Some(len) = record_at(data, pos) {
            out.offsets.push(pos as u32);
            pos += RECORD_HEADER + len;
            out.valid_len = pos;
            continue;
        }
        let Some(next) = (pos + 1..data.len()).find(|&q| record_at(data, q).is_some()) else {
            break;
        };
        out.skipped.push((pos, next - pos));
        out.first_shifted.get_or_insert(out.offsets.len());
        pos = next;
    }
    out
}

fn segment_path(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(format!("{first_id:020}.seg"))
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename).
fn write_atomically(path: &Path, contents: &[u8], sync: bool) -> Result<(), SpoolError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(contents).map_err(io_err(&tmp))?;
    if sync {
        file.sync_data().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if sync {
        if let Some(dir) = path.parent() {
            // Makes the rename itself durable.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir))?;
        }
    }
    Ok(())
}

fn read_number(path: &Path) -> Result<Option<u64>, SpoolError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Reads the epoch file in `dir`, raises it above both its old value and `now_ms`, and writes
/// it back durably before returning it: every collector start gets an epoch no earlier start
/// had, even if the directory was wiped (then the clock provides it) or the clock went back
/// (then the file does).
///
/// # Errors
/// When the directory or file cannot be read or written.
pub fn next_epoch(dir: &Path, now_ms: u64) -> Result<u64, SpoolError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join("epoch");
    let previous = read_number(&path)?;
    let epoch = previous.map_or(now_ms, |p| p.saturating_add(1).max(now_ms));
    write_atomically(&path, format!("{epoch}\n").as_bytes(), true)?;
    Ok(epoch)
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`: validates every segment, truncates a torn
    /// tail, deletes fully acknowledged segments, and makes the unacknowledged records
    /// available for replay ([`Spool::next_pending`]).
    ///
    /// # Errors
    /// When the directory or a segment cannot be read or written.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        Spool::open_with(config, |_, _| {})
    }

    /// [`Spool::open`], calling `visit(id, payload)` for every unacknowledged record found, in
    /// id order (the caller learns what it holds without reading it all again).
    ///
    /// # Errors
    /// As [`Spool::open`].
    pub fn open_with(
        config: SpoolConfig,
        mut visit: impl FnMut(u64, &[u8]),
    ) -> Result<Spool, SpoolError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let watermark = read_number(&dir.join("acked"))?.unwrap_or(0);
        let mut firsts: Vec<u64> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let now = Instant::now();
        let mut spool = Spool {
            config,
            segments: VecDeque::new(),
            next_id: watermark,
            bytes: 0,
            unsynced: false,
            last_sync: now,
            watermark_written: watermark,
            last_watermark_write: now,
            stats: SpoolStats::default(),
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            unsynced_frames: Vec::new(),
            unsynced_bytes: 0,
            last_write_error_log: None,
            #[cfg(test)]
            faults: Faults::default(),
        };
        let count = firsts.len();
        for (i, first_id) in firsts.into_iter().enumerate() {
            let is_last = i + 1 == count;
            spool.load_segment(first_id, watermark, is_last, &mut visit)?;
        }
        if let Some(last) = spool.segments.back() {
            spool.next_id = spool.next_id.max(last.end_id());
        }
        spool.stats.recovered = spool.pending();
        // Drop segments that are now fully acknowledged (except the newest, kept for appends).
        spool.collect_acked()?;
        if spool.stats.recovered > 0 || spool.stats.corrupt > 0 {
            info!(
                dir = %spool.config.dir.display(),
                pending = spool.stats.recovered,
                corrupt = spool.stats.corrupt,
                bytes = spool.bytes,
                "spool opened with unacknowledged readings; replaying them oldest first"
            );
        }
        Ok(spool)
    }

    fn load_segment(
        &mut self,
        first_id: u64,
        watermark: u64,
        is_last: bool,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), SpoolError> {
        let path = segment_path(&self.config.dir, first_id);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io_err(&path))?;
        if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
            if data.len() < MAGIC.len() && MAGIC.starts_with(&data) {
                // A segment torn while it was being created: nothing in it.
                drop(file);
                fs::remove_file(&path).map_err(io_err(&path))?;
                return Ok(());
            }
            let aside = path.with_extension("bad");
            warn!(path = %path.display(), moved_to = %aside.display(), "not a devtel spool segment; moved aside");
            drop(file);
            fs::rename(&path, &aside).map_err(io_err(&path))?;
            self.stats.corrupt += 1;
            return Ok(());
        }
        let found = scan(&data[MAGIC.len()..]);
        let valid_len = (MAGIC.len() + found.valid_len) as u64;
        if !found.skipped.is_empty() {
            let bytes: usize = found.skipped.iter().map(|s| s.1).sum();
            self.stats.corrupt += found.skipped.len() as u64;
            self.stats.skipped_bytes += bytes as u64;
            warn!(
                path = %path.display(),
                stretches = found.skipped.len(),
                skipped_bytes = bytes,
                kept_records = found.offsets.len(),
                "corrupt records inside a spool segment skipped; the records after them are replayed"
            );
        }
        if valid_len < data.len() as u64 {
            self.stats.corrupt += 1;
            warn!(
                path = %path.display(),
                kept_records = found.offsets.len(),
                discarded_bytes = data.len() as u64 - valid_len,
                "spool segment ends in a torn or corrupt record (power loss?); cut off there"
            );
            if is_last {
                file.set_len(valid_len).map_err(io_err(&path))?;
                file.sync_all().map_err(io_err(&path))?;
            }
        }
        // Appends go right after the last good record.
        file.seek(SeekFrom::Start(valid_len))
            .map_err(io_err(&path))?;
        // A segment must not start below ids already in use (invariant 3).
        if let Some(prev) = self.segments.back() {
            if first_id < prev.end_id() {
                let aside = path.with_extension("unplaced");
                self.stats.unplaced += 1;
                warn!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    records = found.offsets.len(),
                    overlaps_up_to = prev.end_id(),
                    "spool segment overlaps its predecessor and cannot be placed; moved aside, its readings are not replayed"
                );
                drop(file);
                fs::rename(&path, &aside).map_err(io_err(&path))?;
                return Ok(());
            }
        }
        let shifted_from = found.first_shifted.unwrap_or(usize::MAX);
        let offsets: Vec<u32> = found
            .offsets
            .into_iter()
            .map(|o| o + MAGIC.len() as u32)
            .collect();
        let is_acked = |i: usize| i < shifted_from && first_id + (i as u64) < watermark;
        for (i, &offset) in offsets.iter().enumerate() {
            let id = first_id + i as u64;
            if is_acked(i) {
                continue;
            }
            let start = offset as usize + RECORD_HEADER;
            let len = data
                .get(offset as usize..offset as usize + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            if let Some(payload) = data.get(start..start + len) {
                visit(id, payload);
            }
        }
        let acked: Vec<bool> = (0..offsets.len()).map(is_acked).collect();
        let unacked = acked.iter().filter(|a| !**a).count();
        self.bytes += valid_len;
        self.segments.push_back(Segment {
            first_id,
            path,
            file,
            sent: vec![false; offsets.len()],
            offsets,
            acked,
            unacked,
            len: valid_len,
            broken: false,
        });
        Ok(())
    }

    fn new_segment(&mut self, first_id: u64) -> Result<(), SpoolError> {
        let path = segment_path(&self.config.dir, first_id);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(MAGIC).map_err(io_err(&path))?;
        self.bytes += MAGIC.len() as u64;
        self.segments.push_back(Segment {
            first_id,
            path,
            file,
            offsets: Vec::new(),
            acked: Vec::new(),
            sent: Vec::new(),
            unacked: 0,
            len: MAGIC.len() as u64,
            broken: false,
        });
        Ok(())
    }

    /// Appends one payload and returns its id. When the spool would exceed `max_bytes`, the
    /// oldest segments are dropped first (counted in [`SpoolStats::dropped`] and logged).
    /// Call [`Spool::sync`] before publishing what was appended.
    ///
    /// When the disk refuses the write (full, I/O error), the segment is cut back to its last
    /// whole record and the reading is kept in memory, in order, up to [`MAX_IN_MEMORY`]; it
    /// can be read, published and acknowledged like any other, and is written as soon as the
    /// disk takes writes again (on the next append or [`Spool::persist`]).
    ///
    /// # Errors
    /// [`SpoolError::TooLarge`] for a payload that cannot fit at all; [`SpoolError::NoRoom`]
    /// when the disk refuses writes and memory holds its limit.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, SpoolError> {
        let record = (RECORD_HEADER + payload.len()) as u64;
        let fits_alone = MAGIC.len() as u64 + record;
        if payload.is_empty() || payload.len() > MAX_RECORD || fits_alone > self.config.max_bytes {
            return Err(SpoolError::TooLarge {
                len: payload.len(),
                max: self.config.max_bytes,
            });
        }
        let id = self.next_id;
        if self.flush_unwritten() {
            match self.write_record(id, payload) {
                Ok(()) => {
                    self.next_id += 1;
                    self.stats.appended += 1;
                    return Ok(id);
                }
                Err(e) => self.write_failed(&e),
            }
        }
        if self.unwritten_bytes + payload.len() > MAX_IN_MEMORY {
            return Err(SpoolError::NoRoom {
                held: self.unwritten.len(),
                bytes: self.unwritten_bytes,
            });
        }
        self.unwritten_bytes += payload.len();
        self.unwritten.push_back(Unwritten {
            id,
            payload: payload.to_vec(),
            acked: false,
            sent: false,
        });
        self.next_id += 1;
        self.stats.appended += 1;
        Ok(id)
    }

    fn write_failed(&mut self, e: &SpoolError) {
        self.stats.write_errors += 1;
        let now = Instant::now();
        if self
            .last_write_error_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
        {
            self.last_write_error_log = Some(now);
            warn!(
                error = %e,
                in_memory = self.unwritten.len(),
                write_errors = self.stats.write_errors,
                "spool write failed; readings are kept in memory (bounded) and written when the disk takes writes again"
            );
        }
    }

    /// Writes what is kept in memory, oldest first. True when nothing is left in memory.
    fn flush_unwritten(&mut self) -> bool {
        let mut written = 0usize;
        while let Some(front) = self.unwritten.pop_front() {
            match self.write_record(front.id, &front.payload) {
                Ok(()) => {
                    written += 1;
                    self.unwritten_bytes -= front.payload.len();
                    if front.sent {
                        self.mark_sent(front.id);
                    }
                    if front.acked {
                        self.mark_acked(front.id);
                    }
                }
                Err(e) => {
                    self.unwritten.push_front(front);
                    self.write_failed(&e);
                    return false;
                }
            }
        }
        if written > 0 {
            info!(
                written,
                "the spool's disk takes writes again; the readings kept in memory are written"
            );
            if let Err(e) = self.collect_acked() {
                warn!(error = %e, "acknowledged spool segment not deleted");
            }
        }
        true
    }

    /// Writes one record with id `id` (the next id on disk).
    fn write_record(&mut self, id: u64, payload: &[u8]) -> Result<(), SpoolError> {
        let record = (RECORD_HEADER + payload.len()) as u64;
        let fits_alone = MAGIC.len() as u64 + record;
        if self.config.fsync != Fsync::Never && self.unsynced_bytes + record as usize > MAX_UNSYNCED
        {
            // Keep what may have to be written again bounded.
            self.sync_now()?;
        }
        // A segment that could not be cut back after a failed write takes no more records.
        if self
            .segments
            .back()
            .is_some_and(|s| s.broken && s.offsets.is_empty())
        {
            if let Some(seg) = self.segments.pop_back() {
                self.bytes -= seg.len;
            }
        }
        let needs_new = match self.segments.back() {
            None => true,
            Some(s) => {
                s.broken
                    || s.end_id() != id
                    || (!s.offsets.is_empty() && s.len + record > self.config.segment_bytes)
            }
        };
        let extra = if needs_new { fits_alone } else { record };
        while self.bytes + extra > self.config.max_bytes {
            if !self.drop_oldest()? {
                break;
            }
        }
        if needs_new || self.segments.is_empty() {
            // Under `Always`, finish the old segment before starting the next.
            if self.unsynced && self.config.fsync == Fsync::Always {
                self.sync_now()?;
            }
            self.new_segment(id)?;
        }
        let mut buf = Vec::with_capacity(record as usize);
        frame(payload, &mut buf);
        let Some(seg) = self.segments.back_mut() else {
            unreachable!("a segment was just ensured");
        };
        let at = seg.len;
        #[cfg(test)]
        let written = if self.faults.short_writes > 0 {
            self.faults.short_writes -= 1;
            seg.file
                .write_all(&buf[..buf.len() / 2])
                .and_then(|()| Err(io::Error::other("injected short write")))
        } else {
            seg.file.write_all(&buf)
        };
        #[cfg(not(test))]
        let written = seg.file.write_all(&buf);
        if let Err(e) = written {
            // Cut back to the last whole record, so that later records stay readable.
            let cut = seg
                .file
                .set_len(at)
                .and_then(|()| seg.file.seek(SeekFrom::Start(at)).map(|_| ()));
            if cut.is_err() {
                seg.broken = true;
            }
            return Err(io_err(&seg.path)(e));
        }
        seg.offsets.push(at as u32);
        seg.acked.push(false);
        seg.sent.push(false);
        seg.unacked += 1;
        seg.len += record;
        let first_id = seg.first_id;
        self.bytes += record;
        self.unsynced = true;
        if self.config.fsync != Fsync::Never {
            self.unsynced_bytes += buf.len();
            self.unsynced_frames.push((first_id, at, buf));
        }
        Ok(())
    }

    /// Drops the oldest segment. Returns false when there is nothing to drop.
    fn drop_oldest(&mut self) -> Result<bool, SpoolError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(false);
        };
        // Records already handed to the broker are not lost: the sender holds them until their
        // PUBACK (and resends them from memory if the session is lost).
        let lost = (0..seg.offsets.len())
            .filter(|&i| !seg.acked[i] && !seg.sent[i])
            .count() as u64;
        self.stats.dropped += lost;
        self.bytes -= seg.len;
        if lost > 0 {
            warn!(
                dropped = lost,
                first_id = seg.first_id,
                total_dropped = self.stats.dropped,
                max_bytes = self.config.max_bytes,
                "spool full: dropped the oldest unacknowledged readings"
            );
        }
        fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
        Ok(true)
    }

    /// Makes appended records durable as the policy says. Call after a batch of appends and
    /// before publishing them.
    ///
    /// # Errors
    /// When `fdatasync` fails.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if !self.unsynced {
            return Ok(());
        }
        match self.config.fsync {
            Fsync::Always => self.sync_now(),
            Fsync::Every(interval) if self.last_sync.elapsed() >= interval => self.sync_now(),
            Fsync::Every(_) | Fsync::Never => Ok(()),
        }
    }

    /// Syncs every segment written since the last sync. A failed fsync means "not durable"
    /// (after one the kernel may have dropped the dirty pages and the next fsync would
    /// succeed without them): what was written since the last good sync is written again, and
    /// the records stay unsynced until a later sync succeeds.
    fn sync_now(&mut self) -> Result<(), SpoolError> {
        let mut firsts: Vec<u64> = self.unsynced_frames.iter().map(|f| f.0).collect();
        firsts.extend(self.segments.back().map(|s| s.first_id));
        firsts.sort_unstable();
        firsts.dedup();
        for first in firsts {
            let Some(seg) = self.segments.iter().find(|s| s.first_id == first) else {
                continue;
            };
            #[cfg(test)]
            let synced = if self.faults.failed_syncs > 0 {
                self.faults.failed_syncs -= 1;
                // The kernel lost the pages: zero what was not synced yet.
                for (f, offset, bytes) in &self.unsynced_frames {
                    if *f == first {
                        let _ = seg.file.write_all_at(&vec![0; bytes.len()], *offset);
                    }
                }
                Err(io::Error::other("injected fsync failure"))
            } else {
                seg.file.sync_data()
            };
            #[cfg(not(test))]
            let synced = seg.file.sync_data();
            if let Err(e) = synced {
                let path = seg.path.clone();
                self.stats.sync_failures += 1;
                self.rewrite_unsynced();
                return Err(io_err(&path)(e));
            }
        }
        self.unsynced_frames.clear();
        self.unsynced_bytes = 0;
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn rewrite_unsynced(&mut self) {
        let mut rewritten = 0usize;
        for (first, offset, bytes) in &self.unsynced_frames {
            if let Some(seg) = self.segments.iter().find(|s| s.first_id == *first) {
                if seg.file.write_all_at(bytes, *offset).is_ok() {
                    rewritten += 1;
                }
            }
        }
        warn!(
            rewritten,
            of = self.unsynced_frames.len(),
            sync_failures = self.stats.sync_failures,
            "spool fsync failed: what was not yet durable was written again; it is synced on the next try"
        );
    }

    fn locate(&self, id: u64) -> Option<(usize, usize)> {
        let i = self.segments.partition_point(|s| s.end_id() <= id);
        let seg = self.segments.get(i)?;
        let index = id.checked_sub(seg.first_id)? as usize;
        (index < seg.offsets.len()).then_some((i, index))
    }

    /// Reads a record's payload back. `Ok(None)` for ids no longer in the spool (acknowledged or
    /// dropped).
    ///
    /// # Errors
    /// [`SpoolError::Corrupt`] when its checksum fails (the record is then counted as corrupt
    /// and taken out of the spool); I/O errors.
    pub fn read(&mut self, id: u64) -> Result<Option<Vec<u8>>, SpoolError> {
        let Some((s, index)) = self.locate(id) else {
            return Ok(self
                .in_memory_record(id)
                .filter(|u| !u.acked)
                .map(|u| u.payload.clone()));
        };
        let seg = &self.segments[s];
        if seg.acked[index] {
            return Ok(None);
        }
        let offset = u64::from(seg.offsets[index]);
        let mut header = [0u8; RECORD_HEADER];
        seg.file
            .read_exact_at(&mut header, offset)
            .map_err(io_err(&seg.path))?;
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut payload = vec![0u8; len.min(MAX_RECORD)];
        let read = seg
            .file
            .read_exact_at(&mut payload, offset + RECORD_HEADER as u64);
        if read.is_err() || len > MAX_RECORD || checksum(&len_bytes, &payload) != crc {
            let path = seg.path.clone();
            self.stats.corrupt += 1;
            self.mark_acked(id);
            warn!(id, path = %path.display(), "spool record failed its checksum; skipped");
            return Err(SpoolError::Corrupt { id, path });
        }
        Ok(Some(payload))
    }

    /// Marks a record as handed to the broker: the caller keeps a copy until its PUBACK, so
    /// dropping its segment for space no longer loses it (and does not count it as dropped).
    pub fn mark_sent(&mut self, id: u64) {
        if let Some((s, i)) = self.locate(id) {
            self.segments[s].sent[i] = true;
        } else if let Some(i) = self.in_memory_index(id) {
            self.unwritten[i].sent = true;
        }
    }

    fn in_memory_index(&self, id: u64) -> Option<usize> {
        self.unwritten.binary_search_by_key(&id, |u| u.id).ok()
    }

    fn in_memory_record(&self, id: u64) -> Option<&Unwritten> {
        self.in_memory_index(id).map(|i| &self.unwritten[i])
    }

    /// Marks a record acknowledged; deletes segments that are fully acknowledged. Unknown ids
    /// (already acknowledged or dropped) are ignored.
    ///
    /// # Errors
    /// When a segment file cannot be deleted or the watermark cannot be written.
    pub fn ack(&mut self, id: u64) -> Result<(), SpoolError> {
        if self.mark_acked(id) {
            self.stats.acked += 1;
        }
        self.collect_acked()?;
        if self.last_watermark_write.elapsed() >= WATERMARK_EVERY {
            self.persist()?;
        }
        Ok(())
    }

    fn mark_acked(&mut self, id: u64) -> bool {
        let Some((s, index)) = self.locate(id) else {
            let Some(i) = self.in_memory_index(id) else {
                return false;
            };
            if self.unwritten[i].acked {
                return false;
            }
            self.unwritten[i].acked = true;
            // Acknowledged before the disk took it: it need not be written at all.
            while self.unwritten.front().is_some_and(|u| u.acked) {
                if let Some(u) = self.unwritten.pop_front() {
                    self.unwritten_bytes -= u.payload.len();
                }
            }
            return true;
        };
        let seg = &mut self.segments[s];
        if seg.acked[index] {
            return false;
        }
        seg.acked[index] = true;
        seg.unacked -= 1;
        true
    }

    /// Deletes fully acknowledged segments other than the newest.
    fn collect_acked(&mut self) -> Result<(), SpoolError> {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.unacked == 0) {
            if let Some(seg) = self.segments.pop_front() {
                self.bytes -= seg.len;
                fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            }
        }
        Ok(())
    }

    /// The lowest id that is not acknowledged (everything below it is acknowledged or dropped).
    pub fn watermark(&self) -> u64 {
        for seg in &self.segments {
            if seg.unacked > 0 {
                if let Some(i) = seg.acked.iter().position(|a| !a) {
                    return seg.first_id + i as u64;
                }
            }
        }
        self.unwritten
            .iter()
            .find(|u| !u.acked)
            .map_or(self.next_id, |u| u.id)
    }

    /// Writes the ack watermark if it moved (atomically; synced unless the policy is `never`).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn persist(&mut self) -> Result<(), SpoolError> {
        if !self.unwritten.is_empty() {
            self.flush_unwritten();
        }
        let watermark = self.watermark();
        self.last_watermark_write = Instant::now();
        if watermark == self.watermark_written {
            return Ok(());
        }
        let path = self.config.dir.join("acked");
        write_atomically(
            &path,
            format!("{watermark}\n").as_bytes(),
            self.config.fsync != Fsync::Never,
        )?;
        self.watermark_written = watermark;
        Ok(())
    }

    /// Syncs outstanding appends and writes the watermark: call at shutdown.
    ///
    /// # Errors
    /// I/O errors.
    pub fn close(&mut self) -> Result<(), SpoolError> {
        if !self.unwritten.is_empty() && !self.flush_unwritten() {
            let lost = self.unwritten.iter().filter(|u| !u.acked).count();
            self.stats.lost_in_memory += lost as u64;
            error!(
                lost,
                "spool closed while its disk refused writes: readings kept only in memory are lost"
            );
        }
        if self.unsynced && self.config.fsync != Fsync::Never {
            self.sync_now()?;
        }
        self.persist()
    }

    /// The first unacknowledged id at or after `from`, in id order (the replay order).
    pub fn next_pending(&self, from: u64) -> Option<u64> {
        let start = self.segments.partition_point(|s| s.end_id() <= from);
        for seg in self.segments.iter().skip(start) {
            if seg.unacked == 0 {
                continue;
            }
            let skip = from.saturating_sub(seg.first_id) as usize;
            if let Some(i) = seg.acked.iter().skip(skip).position(|a| !a) {
                return Some(seg.first_id + (skip + i) as u64);
            }
        }
        self.unwritten
            .iter()
            .find(|u| u.id >= from && !u.acked)
            .map(|u| u.id)
    }

    /// Whether `id` is in the spool and not acknowledged.
    pub fn is_pending(&self, id: u64) -> bool {
        match self.locate(id) {
            Some((s, i)) => !self.segments[s].acked[i],
            None => self.in_memory_record(id).is_some_and(|u| !u.acked),
        }
    }

    /// Unacknowledged records (on disk and in memory).
    pub fn pending(&self) -> u64 {
        let on_disk: u64 = self.segments.iter().map(|s| s.unacked as u64).sum();
        on_disk + self.unwritten.iter().filter(|u| !u.acked).count() as u64
    }

    /// Records kept in memory because the disk refused them.
    pub fn in_memory(&self) -> usize {
        self.unwritten.len()
    }

    /// Bytes on disk (segments).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Counters since opening.
    pub fn stats(&self) -> SpoolStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "devtel-spool-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn payload(i: u64, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i as usize * 31 + j) as u8 | 1).collect()
    }

    fn config(dir: &Path, max: u64) -> SpoolConfig {
        SpoolConfig::new(dir, max, Fsync::Always)
    }

    fn drain(spool: &mut Spool) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(id) = spool.next_pending(from) {
            out.push((id, spool.read(id).unwrap().unwrap()));
            from = id + 1;
        }
        out
    }

    #[test]
    fn records_survive_a_reopen_until_acked() {
        let tmp = TempDir::new("reopen");
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        for i in 0..100 {
            assert_eq!(spool.append(&payload(i, 300)).unwrap(), i);
        }
        spool.sync().unwrap();
        for i in 0..40 {
            spool.ack(i).unwrap();
        }
        spool.ack(55).unwrap();
        spool.close().unwrap();
        drop(spool);

        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(
            spool.stats().recovered,
            60,
            "watermark 40; 55 acked out of order is resent"
        );
        let got = drain(&mut spool);
        assert_eq!(got.first().map(|r| r.0), Some(40));
        assert_eq!(got.len(), 60);
        for (id, bytes) in &got {
            assert_eq!(bytes, &payload(*id, 300));
        }
        // New records continue the ids.
        assert_eq!(spool.append(b"next").unwrap(), 100);
    }

    #[test]
    fn acked_segments_are_deleted_and_ids_never_restart() {
        let tmp = TempDir::new("delete");
        let cfg = SpoolConfig {
            segment_bytes: 4096,
            ..config(&tmp.0, 1 << 20)
        };
        let mut spool = Spool::open(cfg.clone()).unwrap();
        for i in 0..200 {
            spool.append(&payload(i, 200)).unwrap();
        }
        let segments = || {
            fs::read_dir(&tmp.0)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "seg")
                })
                .count()
        };
        assert!(segments() > 5);
        for i in 0..200 {
            spool.ack(i).unwrap();
        }
        assert_eq!(segments(), 1, "only the newest segment stays");
        assert_eq!(spool.pending(), 0);
        spool.close().unwrap();
        drop(spool);
        let mut spool = Spool::open(cfg).unwrap();
        assert_eq!(spool.pending(), 0);
        assert_eq!(spool.append(b"x").unwrap(), 200);
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_them() {
        let tmp = TempDir::new("full");
        let cfg = SpoolConfig {
            segment_bytes: 4096,
            ..config(&tmp.0, 16 * 1024)
        };
        let mut spool = Spool::open(cfg).unwrap();
        for i in 0..200 {
            spool.append(&payload(i, 500)).unwrap();
            assert!(spool.bytes() <= 16 * 1024, "{} bytes", spool.bytes());
        }
        let stats = spool.stats();
        let got = drain(&mut spool);
        assert_eq!(
            stats.dropped + got.len() as u64,
            200,
            "every record is kept or counted"
        );
        // What is left is exactly the newest ones, contiguous up to the last.
        let first = got[0].0;
        assert_eq!(first, stats.dropped);
        assert_eq!(got.last().unwrap().0, 199);
        assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        assert!(matches!(
            spool.append(&vec![1u8; 20_000]),
            Err(SpoolError::TooLarge { .. })
        ));
    }

    #[test]
    fn records_in_flight_are_not_counted_as_dropped() {
        let tmp = TempDir::new("inflight");
        let cfg = SpoolConfig {
            segment_bytes: 4096,
            ..config(&tmp.0, 16 * 1024)
        };
        let mut spool = Spool::open(cfg).unwrap();
        for i in 0..10 {
            spool.append(&payload(i, 500)).unwrap();
        }
        for i in 0..3 {
            spool.mark_sent(i);
        }
        for i in 10..40 {
            spool.append(&payload(i, 500)).unwrap();
        }
        let kept = drain(&mut spool).len() as u64;
        let dropped = spool.stats().dropped;
        assert!(dropped > 0);
        assert_eq!(
            kept + dropped + 3,
            40,
            "the 3 in flight are neither kept nor lost"
        );
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue() {
        let tmp = TempDir::new("torn");
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        for i in 0..10 {
            spool.append(&payload(i, 100)).unwrap();
        }
        spool.close().unwrap();
        drop(spool);
        let seg = segment_path(&tmp.0, 0);
        // Power loss in the middle of record 9: half of it reached the disk.
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 50)
            .unwrap();
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(spool.stats().corrupt, 1);
        assert_eq!(spool.pending(), 9);
        assert_eq!(spool.append(&payload(9, 100)).unwrap(), 9);
        spool.close().unwrap();
        drop(spool);
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(
            spool.stats().corrupt,
            0,
            "the tail was truncated, not left to fail again"
        );
        let got = drain(&mut spool);
        assert_eq!(got.len(), 10);
        assert_eq!(got[9].1, payload(9, 100));
    }

    #[test]
    fn a_flipped_byte_is_detected_on_read() {
        let tmp = TempDir::new("flip");
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        for i in 0..3 {
            spool.append(&payload(i, 100)).unwrap();
        }
        let seg = segment_path(&tmp.0, 0);
        let file = OpenOptions::new().write(true).open(&seg).unwrap();
        // The middle of record 1's payload.
        file.write_all_at(&[0], (MAGIC.len() + 108 + 8 + 50) as u64)
            .unwrap();
        assert_eq!(spool.read(0).unwrap().unwrap(), payload(0, 100));
        assert!(matches!(
            spool.read(1),
            Err(SpoolError::Corrupt { id: 1, .. })
        ));
        assert_eq!(spool.stats().corrupt, 1);
        assert!(
            !spool.is_pending(1),
            "a corrupt record is not replayed forever"
        );
        assert_eq!(spool.read(2).unwrap().unwrap(), payload(2, 100));
    }

    fn payloads(spool: &mut Spool) -> Vec<Vec<u8>> {
        drain(spool).into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn a_short_write_is_cut_back_kept_in_memory_and_written_when_the_disk_takes_it() {
        let tmp = TempDir::new("short");
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        for i in 0..3 {
            spool.append(&payload(i, 100)).unwrap();
        }
        let seg = segment_path(&tmp.0, 0);
        let before = fs::metadata(&seg).unwrap().len();
        spool.faults.short_writes = 2;
        assert_eq!(spool.append(&payload(3, 100)).unwrap(), 3, "kept, not lost");
        assert_eq!(
            fs::metadata(&seg).unwrap().len(),
            before,
            "cut back to whole records"
        );
        assert_eq!(spool.in_memory(), 1);
        // Still refused: it queues behind the first, in order, and can be read meanwhile.
        assert_eq!(spool.append(&payload(4, 100)).unwrap(), 4);
        assert_eq!(spool.in_memory(), 2);
        assert_eq!(spool.read(4).unwrap().unwrap(), payload(4, 100));
        assert_eq!(spool.pending(), 5);
        assert_eq!(spool.stats().write_errors, 2);
        // The disk takes writes again: both are written before the next.
        assert_eq!(spool.append(&payload(5, 100)).unwrap(), 5);
        assert_eq!(spool.in_memory(), 0);
        spool.close().unwrap();
        drop(spool);
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(
            payloads(&mut spool),
            (0..6).map(|i| payload(i, 100)).collect::<Vec<_>>()
        );
        assert_eq!(spool.stats().corrupt, 0, "no torn record was left behind");
    }

    #[test]
    fn memory_is_bounded_and_an_acknowledged_reading_need_not_be_written() {
        let tmp = TempDir::new("memory");
        let mut spool = Spool::open(config(&tmp.0, 64 << 20)).unwrap();
        spool.faults.short_writes = u32::MAX;
        let len = 64 * 1024;
        let fit = MAX_IN_MEMORY / len;
        for i in 0..fit as u64 {
            assert_eq!(spool.append(&payload(i, len)).unwrap(), i);
        }
        assert!(matches!(
            spool.append(&payload(99, len)),
            Err(SpoolError::NoRoom { held, .. }) if held == fit
        ));
        // Acknowledged while only in memory: gone from memory, never written.
        for i in 0..fit as u64 - 1 {
            spool.ack(i).unwrap();
        }
        assert_eq!(spool.in_memory(), 1);
        spool.faults.short_writes = 0;
        spool.persist().unwrap();
        assert_eq!(spool.in_memory(), 0);
        spool.close().unwrap();
        drop(spool);
        let mut spool = Spool::open(config(&tmp.0, 64 << 20)).unwrap();
        let left = drain(&mut spool);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1, payload(fit as u64 - 1, len));
        assert!(
            left[0].0 >= fit as u64 - 1,
            "ids never go back: {}",
            left[0].0
        );
    }

    #[test]
    fn a_failed_fsync_writes_again_what_was_not_durable() {
        let tmp = TempDir::new("fsync");
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        spool.append(&payload(0, 100)).unwrap();
        spool.sync().unwrap();
        for i in 1..4 {
            spool.append(&payload(i, 100)).unwrap();
        }
        // The kernel drops the dirty pages and reports the failure once.
        spool.faults.failed_syncs = 1;
        assert!(spool.sync().is_err());
        assert_eq!(spool.stats().sync_failures, 1);
        // Not treated as synced: the next sync really syncs (the rewritten bytes).
        spool.sync().unwrap();
        drop(spool);
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(
            payloads(&mut spool),
            (0..4).map(|i| payload(i, 100)).collect::<Vec<_>>()
        );
        assert_eq!(spool.stats().corrupt, 0);
    }

    #[test]
    fn a_corrupt_record_inside_a_segment_is_skipped_and_the_rest_replayed() {
        let tmp = TempDir::new("resync");
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        for i in 0..10 {
            spool.append(&payload(i, 100)).unwrap();
        }
        for i in 0..3 {
            spool.ack(i).unwrap();
        }
        spool.close().unwrap();
        drop(spool);
        // Record 4's length field and payload are garbage now.
        let record = (RECORD_HEADER + 100) as u64;
        let file = OpenOptions::new()
            .write(true)
            .open(segment_path(&tmp.0, 0))
            .unwrap();
        file.write_all_at(&[0xff; 40], MAGIC.len() as u64 + 4 * record)
            .unwrap();
        let mut seen = Vec::new();
        let mut spool =
            Spool::open_with(config(&tmp.0, 1 << 20), |_, p| seen.push(p.to_vec())).unwrap();
        let want: Vec<Vec<u8>> = [3, 5, 6, 7, 8, 9]
            .iter()
            .map(|&i| payload(i, 100))
            .collect();
        assert_eq!(
            payloads(&mut spool),
            want,
            "everything after the corrupt record"
        );
        assert_eq!(seen, want);
        assert_eq!(spool.stats().corrupt, 1);
        assert_eq!(spool.stats().skipped_bytes, record);
        // New records follow, and a reopen sees the same.
        spool.append(&payload(10, 100)).unwrap();
        spool.close().unwrap();
        drop(spool);
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(payloads(&mut spool).len(), 7);
    }

    #[test]
    fn a_segment_that_cannot_be_placed_is_counted_and_moved_aside() {
        let tmp = TempDir::new("unplaced");
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        for i in 0..5 {
            spool.append(&payload(i, 100)).unwrap();
        }
        spool.close().unwrap();
        drop(spool);
        // A copy claiming ids from 2: overlaps ids 2..5 of the first segment.
        fs::copy(segment_path(&tmp.0, 0), segment_path(&tmp.0, 2)).unwrap();
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(spool.stats().unplaced, 1);
        assert!(segment_path(&tmp.0, 2).with_extension("unplaced").exists());
        assert_eq!(payloads(&mut spool).len(), 5);
    }

    #[test]
    fn epochs_grow_even_when_the_clock_goes_back_or_the_directory_is_wiped() {
        let tmp = TempDir::new("epoch");
        assert_eq!(next_epoch(&tmp.0, 1_000).unwrap(), 1_000);
        assert_eq!(next_epoch(&tmp.0, 900).unwrap(), 1_001, "clock went back");
        assert_eq!(next_epoch(&tmp.0, 5_000).unwrap(), 5_000);
        fs::remove_dir_all(&tmp.0).unwrap();
        assert_eq!(
            next_epoch(&tmp.0, 6_000).unwrap(),
            6_000,
            "wiped: the clock decides"
        );
    }

    #[test]
    fn foreign_files_are_moved_aside_not_overwritten() {
        let tmp = TempDir::new("foreign");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::write(segment_path(&tmp.0, 0), b"hello world, not a spool").unwrap();
        let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
        assert_eq!(spool.pending(), 0);
        assert_eq!(spool.stats().corrupt, 1);
        assert_eq!(spool.append(b"x").unwrap(), 0);
        assert_eq!(
            fs::read(segment_path(&tmp.0, 0).with_extension("bad")).unwrap(),
            b"hello world, not a spool"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Cutting the newest segment anywhere (a torn write) loses only records at or after
        /// the cut, never panics, and everything before the cut reads back intact.
        #[test]
        fn any_truncation_keeps_the_intact_prefix(
            lens in proptest::collection::vec(1usize..700, 1..40),
            cut_frac in 0.0f64..1.0,
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let tmp = TempDir::new("prop");
            let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
            let mut ends = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                spool.append(&payload(i as u64, *len)).unwrap();
                ends.push(fs::metadata(segment_path(&tmp.0, 0)).unwrap().len());
            }
            spool.close().unwrap();
            drop(spool);
            let seg = segment_path(&tmp.0, 0);
            let total = fs::metadata(&seg).unwrap().len();
            let cut = (total as f64 * cut_frac) as u64;
            let file = OpenOptions::new().write(true).open(&seg).unwrap();
            file.set_len(cut).unwrap();
            file.write_all_at(&garbage, cut).unwrap();
            let mut spool = Spool::open(config(&tmp.0, 1 << 20)).unwrap();
            let intact = ends.iter().filter(|e| **e <= cut).count();
            let got = drain(&mut spool);
            prop_assert!(got.len() >= intact);
            for (id, bytes) in got.iter().take(intact) {
                prop_assert_eq!(bytes, &payload(*id, lens[*id as usize]));
            }
            // Appends after recovery work and read back.
            let id = spool.append(b"after").unwrap();
            prop_assert_eq!(spool.read(id).unwrap().unwrap(), b"after".to_vec());
        }
    }
}
