//! The log: recovery on open, group-committed appends, segment rolling, archiving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bindspace_core::{Clock, SystemClock};

use crate::archive::{Archiver, SealedSegment};
use crate::fsio::{Fs, FsFile, FsLock, RealFs};
use crate::group::{GroupCommit, Poisoned};
use crate::record::{
    FRAME_HEADER, Op, Record, RecordOp, encode_frame, mark_synced_before, validate_op,
};
use crate::replay::{ReplayTarget, Replayer};
use crate::segment::{self, SEGMENT_HEADER};
use crate::sync::{Mutex, lock};
use crate::{Error, Result};

/// When an append counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After `fdatasync`: group commit, concurrent appenders share one sync.
    Always,
    /// After `write`; a background thread syncs at this interval (a crash of the
    /// machine, not of the process, may lose up to one interval).
    Interval(Duration),
    /// After `write`; never synced by the log (tests, bulk loads).
    Never,
}

/// How to open a log.
#[derive(Clone)]
pub struct WalOptions {
    /// A segment is sealed and a new one started before a write that would take it
    /// past this size (one group may exceed it). Default 64 MiB.
    pub segment_size: u64,
    /// Durability of an acknowledged append. Default [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// Appenders block while this many bytes wait for a leader. Default 16 MiB.
    pub max_pending_bytes: usize,
    /// Open a log with mid-log corruption by keeping only what precedes it (later
    /// segments are moved to a `salvaged-*` directory, never deleted). Default false.
    pub salvage: bool,
    /// Version of the first record of an empty log (e.g. one past a restored
    /// snapshot). Default 1.
    pub start_version: u64,
    /// Check every checkpoint record's state root while [`crate::DurableSpace`]
    /// replays the log (default true). Off, a mismatch is reported in
    /// [`Recovery::checkpoint_mismatches`] instead of refusing to open: the escape
    /// hatch when the log itself is known good (a recovery migrator that differs from
    /// the online one), never a default.
    pub verify_checkpoints: bool,
    /// Source of record timestamps.
    pub clock: Arc<dyn Clock>,
    /// The file system the log lives on (the real one; a simulated disk in the
    /// power-loss tests).
    pub fs: Arc<dyn Fs>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            sync: SyncPolicy::Always,
            max_pending_bytes: 16 << 20,
            salvage: false,
            start_version: 1,
            verify_checkpoints: true,
            clock: Arc::new(SystemClock),
            fs: RealFs::shared(),
        }
    }
}

impl std::fmt::Debug for WalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalOptions")
            .field("segment_size", &self.segment_size)
            .field("sync", &self.sync)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("salvage", &self.salvage)
            .field("start_version", &self.start_version)
            .field("verify_checkpoints", &self.verify_checkpoints)
            .finish_non_exhaustive()
    }
}

/// A tail that recovery cut off: an incomplete or damaged last frame, or a batch whose
/// commit never made it to disk. Usually a write a crash interrupted (never
/// acknowledged); but a whole frame that fails its checksum can also be an
/// acknowledged record damaged on disk afterwards, which the log alone cannot tell
/// apart. So the cut bytes are never destroyed: they are kept in `kept`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailTruncated {
    /// The segment file.
    pub segment: PathBuf,
    /// Bytes removed.
    pub bytes: u64,
    /// Where the removed bytes were kept, when there were frame bytes to keep:
    /// `cut-<first>-<offset>.bin` beside the segments when they may hold acknowledged
    /// records, `torn-<first>-<offset>.bin` when they cannot.
    pub kept: Option<PathBuf>,
    /// Whether the cut may hold acknowledged records: a whole frame failed its
    /// checksum or made no sense (bit rot of a synced record looks like that, and so
    /// do pages of an unsynced write that landed out of order), or a whole frame
    /// header whose length runs past the end (bit rot in a length looks so). Not
    /// when the last frame is too short to hold its header, or a batch simply lacks
    /// its commit (the write never finished, so it was never acknowledged). Whoever continues the log must not
    /// give the cut versions new contents under the same history (the engine starts a
    /// new timeline).
    pub may_hold_acknowledged: bool,
}

/// What `salvage` discarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Salvaged {
    /// The segment with the bad frame.
    pub segment: PathBuf,
    /// Offset of the bad frame (the segment was cut there).
    pub offset: u64,
    /// Where the bytes after it and the later segments were moved.
    pub moved_to: PathBuf,
}

/// What opening the log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Last valid version (`start_version - 1` for an empty log).
    pub last_version: u64,
    /// Segments found.
    pub segments: usize,
    /// Valid records found.
    pub records: u64,
    /// A torn tail that was cut off, if any.
    pub tail_truncated: Option<TailTruncated>,
    /// What salvage discarded, if it had to.
    pub salvaged: Option<Salvaged>,
    /// Checkpoint records whose root the replayed state did not match, when
    /// [`WalOptions::verify_checkpoints`] was off (with it on, opening fails instead).
    pub checkpoint_mismatches: Vec<String>,
    /// Records replayed as nothing, with why (a delete outside the space, logged by a
    /// build that did not check it before logging).
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug)]
struct SegmentMeta {
    first: u64,
    /// Last version written (`first - 1` while empty).
    last: u64,
    path: PathBuf,
    archived: bool,
}

struct Writer {
    file: Box<dyn FsFile>,
    size: u64,
    /// Written since the last sync, for the interval syncer.
    unsynced: bool,
    /// Everything written so far is durable (whatever the policy): the next group's
    /// first frame says so.
    all_durable: bool,
    segments: Vec<SegmentMeta>,
}

struct Inner {
    dir: PathBuf,
    /// `LOCK` in the directory, exclusively locked while this log is open, so a second
    /// writer (another process, or the same one twice) cannot interleave frames.
    _lock: FsLock,
    opts: WalOptions,
    gc: GroupCommit,
    writer: Mutex<Writer>,
    flushes: AtomicU64,
    syncs: AtomicU64,
    bytes: AtomicU64,
}

/// Counters since the log was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Group writes (one per leader turn).
    pub flushes: u64,
    /// `fdatasync` calls.
    pub syncs: u64,
    /// Frame bytes written.
    pub bytes: u64,
    /// Highest durable version.
    pub durable_version: u64,
}

/// A write-ahead log in a directory.
///
/// ```
/// use bindspace_core::{Addr, Fingerprint};
/// use bindspace_wal::{Op, Wal, WalOptions, ReplayTarget};
///
/// let dir = tempfile::tempdir().unwrap();
/// let (wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
/// assert_eq!(rec.last_version, 0);
/// let v = wal.append(&[Op::Write(Addr::new(1, 2), Fingerprint::zeroed(4))]).unwrap();
/// assert_eq!(v, 1);
/// drop(wal);
/// let (wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
/// assert_eq!(rec.last_version, 1);
/// let mut seen = vec![];
/// wal.replay(0, ReplayTarget::Latest, |r| { seen.push(r.version); Ok(()) }).unwrap();
/// assert_eq!(seen, vec![1]);
/// ```
pub struct Wal {
    inner: Arc<Inner>,
    stop_syncer: Option<mpsc::Sender<()>>,
    syncer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.dir)
            .field("durable", &self.inner.gc.durable())
            .finish_non_exhaustive()
    }
}

fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(Error::io("sync directory", dir))
}

fn create_segment(fs: &dyn Fs, dir: &Path, first: u64) -> Result<(Box<dyn FsFile>, PathBuf)> {
    let path = dir.join(segment::file_name(first));
    let mut f = fs
        .create_new(&path)
        .map_err(Error::io("create segment", &path))?;
    f.write_all(&segment::encode_header(first))
        .and_then(|_| f.sync_data())
        .map_err(Error::io("write segment header", &path))?;
    sync_dir(fs, dir)?;
    Ok((f, path))
}

/// Takes the directory's `LOCK` (see [`Fs::try_lock`]).
fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<FsLock> {
    let path = dir.join("LOCK");
    match fs.try_lock(&path) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(Error::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io("lock", &path)(e)),
    }
}

fn truncate(fs: &dyn Fs, path: &Path, len: u64) -> Result<()> {
    fs.truncate(path, len).map_err(Error::io("truncate", path))
}

impl Wal {
    /// Opens (or creates) the log in `dir`, validating every frame of every segment.
    ///
    /// A torn tail is cut off and reported in [`Recovery::tail_truncated`]; a damaged
    /// frame followed by valid ones is [`Error::Corruption`] unless
    /// [`WalOptions::salvage`] is set.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal, Recovery)> {
        let dir = dir.as_ref().to_path_buf();
        let _span = tracing::info_span!("wal.open", dir = %dir.display()).entered();
        let fs = Arc::clone(&opts.fs);
        let fs = &*fs;
        crate::fsio::create_dir_all_durable(fs, &dir)
            .map_err(Error::io("create directory", &dir))?;
        let lock = lock_dir(fs, &dir)?;
        let found = segment::list_on(fs, &dir).map_err(Error::io("list", &dir))?;
        let mut rec = Recovery {
            last_version: opts.start_version.saturating_sub(1),
            segments: found.len(),
            records: 0,
            tail_truncated: None,
            salvaged: None,
            checkpoint_mismatches: Vec::new(),
            skipped: Vec::new(),
        };
        let mut metas: Vec<SegmentMeta> = Vec::new();
        let mut expected: Option<u64> = None;
        // the newest segment's format: appends never go to one older than this build's
        let mut last_format = segment::SEGMENT_FORMAT;
        // the newest record's time: new records are never stamped before it
        let mut newest_ts = 0u64;
        for (i, (first, path)) in found.iter().enumerate() {
            let is_last = i + 1 == found.len();
            let bytes = fs.read(path).map_err(Error::io("read segment", path))?;
            let header_first = match segment::decode_header(&bytes) {
                Ok(v) => v,
                // A crash while creating the newest segment leaves a short header, or
                // (the size landed before the data) a bad one; its header was synced
                // before any frame was written to it, so with no valid frame in it, it
                // held nothing acknowledged. Removed, its bytes kept aside.
                Err(_)
                    if is_last
                        && (bytes.len() < SEGMENT_HEADER
                            || !segment::holds_valid_frame(&bytes, expected.unwrap_or(*first))) =>
                {
                    let kept = if bytes.iter().any(|&b| b != 0) {
                        let to = dir.join(format!("torn-{first:020}-0.bin"));
                        crate::fsio::write_atomic_on(fs, &to, &bytes)
                            .map_err(Error::io("keep the torn segment", &to))?;
                        Some(to)
                    } else {
                        None
                    };
                    fs.remove_file(path)
                        .map_err(Error::io("remove torn segment", path))?;
                    sync_dir(fs, &dir)?;
                    rec.tail_truncated = Some(TailTruncated {
                        segment: path.clone(),
                        bytes: bytes.len() as u64,
                        kept,
                        may_hold_acknowledged: false,
                    });
                    rec.segments -= 1;
                    continue;
                }
                Err(detail) => {
                    return Err(Error::BadSegment {
                        segment: path.clone(),
                        detail,
                    });
                }
            };
            if header_first != *first {
                return Err(Error::BadSegment {
                    segment: path.clone(),
                    detail: format!("header says first version {header_first}, name says {first}"),
                });
            }
            last_format = segment::header_format(&bytes);
            if let Some(e) = expected
                && e != *first
            {
                return Err(Error::Gap {
                    need: e,
                    have: *first,
                });
            }
            let mut n = 0u64;
            let scan = segment::scan(&bytes, *first, |r| {
                n += 1;
                newest_ts = newest_ts.max(r.timestamp_us);
            });
            let mut cut_at: Option<usize> = None;
            if let Some(p) = &scan.problem {
                // Damage that a later frame proves was durable, or in a sealed segment,
                // is corruption. Otherwise it may be a write a power loss tore (pages of
                // one unsynced write can land out of order, so valid frames may follow):
                // a crash, cut and kept aside. Segments before format 3 carry no such
                // proof, so any valid frame after the damage counts as one.
                let proven = if segment::header_format(&bytes) >= 3 {
                    p.synced_after
                } else {
                    p.valid_after
                };
                if proven || !is_last {
                    let detail = format!("{:?}", p.error);
                    if !opts.salvage {
                        return Err(Error::Corruption {
                            segment: path.clone(),
                            offset: p.offset as u64,
                            detail,
                        });
                    }
                    let moved_to = dir.join(format!("salvaged-{:020}-{}", first, p.offset));
                    fs.create_dir_all(&moved_to)
                        .map_err(Error::io("create", &moved_to))?;
                    sync_dir(fs, &dir)?;
                    // durable before anything is cut: the tail (fsynced), the moved
                    // segments (both directories fsynced after the renames)
                    // from the cut, not the damage: the frames of a batch open there
                    // are cut too, and kept here
                    let from = scan.open_batch.map_or(p.offset, |(o, _)| o.min(p.offset));
                    crate::fsio::write_atomic_on(fs, &moved_to.join("tail.bin"), &bytes[from..])
                        .map_err(Error::io("save salvaged tail", &moved_to))?;
                    for (_, later) in &found[i + 1..] {
                        let to = moved_to.join(later.file_name().expect("segment file name"));
                        fs.rename(later, &to)
                            .map_err(Error::io("move salvaged segment", later))?;
                    }
                    sync_dir(fs, &moved_to)?;
                    sync_dir(fs, &dir)?;
                    tracing::warn!(segment = %path.display(), offset = p.offset, %detail, "WAL salvaged: kept only the records before a corrupt frame");
                    rec.salvaged = Some(Salvaged {
                        segment: path.clone(),
                        offset: p.offset as u64,
                        moved_to,
                    });
                }
                cut_at = Some(p.offset);
            }
            let mut last = scan.last_version.unwrap_or(first - 1);
            // A batch without its commit at the end was never acknowledged.
            if let Some((off, v)) = scan.open_batch {
                n -= last - v + 1;
                last = v - 1;
                cut_at = Some(cut_at.map_or(off, |c| c.min(off)));
            }
            if let Some(off) = cut_at {
                // only a frame too short to hold its own header is surely a write
                // that never finished: a whole header with a length past the end can
                // be bit rot in the length of an acknowledged record
                let may_hold_acknowledged = scan.problem.as_ref().is_some_and(|p| {
                    p.error != crate::FrameError::Incomplete
                        || bytes.len() - p.offset >= FRAME_HEADER
                });
                // kept first, durably: the cut may hold an acknowledged record damaged
                // after the fact (salvage keeps its own copy)
                let kept = if rec.salvaged.is_none() && off < bytes.len() {
                    let kind = if may_hold_acknowledged { "cut" } else { "torn" };
                    let to = dir.join(format!("{kind}-{first:020}-{off}.bin"));
                    crate::fsio::write_atomic_on(fs, &to, &bytes[off..])
                        .map_err(Error::io("keep the cut tail", &to))?;
                    Some(to)
                } else {
                    None
                };
                truncate(fs, path, off as u64)?;
                if rec.salvaged.is_none() {
                    tracing::warn!(segment = %path.display(), bytes = bytes.len() - off, kept = ?kept, "WAL tail cut (kept aside)");
                    rec.tail_truncated = Some(TailTruncated {
                        segment: path.clone(),
                        bytes: (bytes.len() - off) as u64,
                        kept,
                        may_hold_acknowledged,
                    });
                }
            }
            rec.records += n;
            rec.last_version = last;
            expected = Some(last + 1);
            metas.push(SegmentMeta {
                first: *first,
                last,
                path: path.clone(),
                archived: false,
            });
            if rec.salvaged.is_some() {
                rec.segments = metas.len();
                break;
            }
        }
        let next = rec.last_version + 1;
        if last_format < segment::SEGMENT_FORMAT
            && let Some(m) = metas.pop_if(|m| m.last < m.first)
        {
            // an empty segment of an older format: start it again in this build's
            fs.remove_file(&m.path)
                .map_err(Error::io("remove old-format segment", &m.path))?;
            sync_dir(fs, &dir)?;
        }
        let (file, size) = match metas.last() {
            Some(m) => {
                let mut f = fs
                    .open_append(&m.path)
                    .map_err(Error::io("open segment for append", &m.path))?;
                // what was read back may be only in the page cache (a process crash
                // under an interval policy, or before the segment's directory entry
                // was synced): durable before anything new says it is
                f.sync_data().map_err(Error::io("sync segment", &m.path))?;
                sync_dir(fs, &dir)?;
                let size = f.len().map_err(Error::io("stat", &m.path))?;
                (f, size)
            }
            None => {
                let (f, path) = create_segment(fs, &dir, next)?;
                metas.push(SegmentMeta {
                    first: next,
                    last: next - 1,
                    path,
                    archived: false,
                });
                (f, SEGMENT_HEADER as u64)
            }
        };
        tracing::info!(
            last_version = rec.last_version,
            records = rec.records,
            segments = metas.len(),
            "WAL opened"
        );
        let inner = Arc::new(Inner {
            _lock: lock,
            gc: GroupCommit::new(next, opts.max_pending_bytes),
            dir,
            writer: Mutex::new(Writer {
                file,
                size,
                unsynced: false,
                // the segment appended to was synced above (a new one at creation)
                all_durable: true,
                segments: metas,
            }),
            opts,
            flushes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        });
        inner.gc.seed_timestamp(newest_ts);
        let mut wal = Wal {
            inner,
            stop_syncer: None,
            syncer: None,
        };
        if last_format < segment::SEGMENT_FORMAT {
            // a segment of an older format is sealed as it is: an older binary reading
            // it must never meet a record it does not know
            wal.roll()?;
        }
        if let SyncPolicy::Interval(every) = wal.inner.opts.sync {
            let (tx, rx) = mpsc::channel::<()>();
            let inner = Arc::clone(&wal.inner);
            wal.syncer = Some(std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    if let Err(e) = inner.sync_now() {
                        inner.gc.poison(e);
                        return;
                    }
                }
            }));
            wal.stop_syncer = Some(tx);
        }
        Ok((wal, rec))
    }

    /// Appends `ops` and returns the last version they took once durable under the
    /// configured [`SyncPolicy`]. One op takes one version; several ops form an atomic
    /// batch closed by a commit record, which takes one more version (the one
    /// returned). Concurrent appenders share writes and syncs (group commit).
    pub fn append(&self, ops: &[Op]) -> Result<u64> {
        let last = self.submit(ops)?;
        self.wait_durable(last)?;
        Ok(last)
    }

    /// First half of [`Wal::append`]: assigns versions and queues the frames. Returns
    /// the last version; nothing is durable until [`Wal::wait_durable`] says so.
    pub fn submit(&self, ops: &[Op]) -> Result<u64> {
        if ops.is_empty() {
            return Err(Error::InvalidOp {
                reason: "an append needs at least one operation".into(),
            });
        }
        for op in ops {
            validate_op(op).map_err(|reason| Error::InvalidOp { reason })?;
        }
        let now = self.inner.opts.clock.now_us();
        self.inner
            .gc
            .submit(now, |first, ts, buf| {
                let batch = ops.len() > 1;
                for (i, op) in ops.iter().enumerate() {
                    let rec = Record {
                        version: first + i as u64,
                        timestamp_us: ts,
                        in_batch: batch,
                        op: RecordOp::Op(op.clone()),
                    };
                    encode_frame(&rec, buf);
                }
                if batch {
                    let rec = Record {
                        version: first + ops.len() as u64,
                        timestamp_us: ts,
                        in_batch: false,
                        op: RecordOp::BatchCommit {
                            count: ops.len() as u32,
                        },
                    };
                    encode_frame(&rec, buf);
                }
                ops.len() as u64 + u64::from(batch)
            })
            .map_err(|Poisoned(reason)| Error::Poisoned { reason })
    }

    /// Second half of [`Wal::append`]: blocks until `version` is durable.
    pub fn wait_durable(&self, version: u64) -> Result<()> {
        let inner = &self.inner;
        inner
            .gc
            .wait_durable(version, &mut |bytes, first, last| {
                inner.flush(bytes, first, last)
            })
            .map_err(|Poisoned(reason)| Error::Poisoned { reason })
    }

    /// Highest durable version.
    pub fn durable_version(&self) -> u64 {
        self.inner.gc.durable()
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> WalStats {
        WalStats {
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            syncs: self.inner.syncs.load(Ordering::Relaxed),
            bytes: self.inner.bytes.load(Ordering::Relaxed),
            durable_version: self.inner.gc.durable(),
        }
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Makes everything written durable now, whatever the sync policy (before a
    /// checkpoint file that holds these versions is written: it must never be ahead of
    /// the log on disk). A failed sync poisons the log.
    pub fn sync(&self) -> Result<()> {
        if let Some(reason) = self.inner.gc.poisoned() {
            return Err(Error::Poisoned { reason });
        }
        let mut w = lock(&self.inner.writer);
        if let Err(e) = w.file.sync_data() {
            let reason = format!("fdatasync before a checkpoint failed: {e}");
            self.inner.gc.poison(reason.clone());
            return Err(Error::Poisoned { reason });
        }
        w.unsynced = false;
        w.all_durable = true;
        self.inner.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Stops the log acknowledging anything until it is reopened (a caller found the
    /// state and the log out of step).
    pub fn poison(&self, reason: String) {
        self.inner.gc.poison(reason);
    }

    /// Why the log is poisoned, if it is.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.gc.poisoned()
    }

    /// Seals the current segment now if it holds records, so it can be archived
    /// (bounds the recovery point when archiving on a timer).
    pub fn roll(&self) -> Result<()> {
        let mut w = lock(&self.inner.writer);
        // a poisoned log starts nothing new: an empty next segment would make the old
        // one's torn tail look like corruption on reopen
        if let Some(reason) = self.inner.gc.poisoned() {
            return Err(Error::Poisoned { reason });
        }
        let cur = w
            .segments
            .last()
            .expect("there is always a current segment");
        if cur.last >= cur.first {
            let next = cur.last + 1;
            if let Err(reason) = self.inner.roll_locked(&mut w, next) {
                // and a failed roll poisons it: writes must not go on into a segment
                // whose seal may not be durable
                self.inner.gc.poison(reason.clone());
                return Err(Error::Poisoned { reason });
            }
        }
        Ok(())
    }

    /// Sealed segments (all but the current one), as `(first, last, path)`.
    pub fn sealed_segments(&self) -> Vec<(u64, u64, PathBuf)> {
        let w = lock(&self.inner.writer);
        let n = w.segments.len();
        w.segments[..n - 1]
            .iter()
            .map(|m| (m.first, m.last, m.path.clone()))
            .collect()
    }

    /// Archives every sealed segment not yet confirmed by `archiver`. Idempotent and
    /// resumable: a segment the archive already holds (same blake3) is not sent again.
    /// Returns how many were sent.
    pub fn archive_sealed(&self, archiver: &dyn Archiver) -> Result<usize> {
        let todo: Vec<SegmentMeta> = {
            let w = lock(&self.inner.writer);
            let n = w.segments.len();
            w.segments[..n - 1]
                .iter()
                .filter(|m| !m.archived)
                .cloned()
                .collect()
        };
        let mut sent = 0;
        for m in todo {
            if self.archive_one(&m, archiver)? {
                sent += 1;
            }
            let mut w = lock(&self.inner.writer);
            if let Some(x) = w.segments.iter_mut().find(|x| x.first == m.first) {
                x.archived = true;
            }
        }
        Ok(sent)
    }

    fn archive_one(&self, m: &SegmentMeta, archiver: &dyn Archiver) -> Result<bool> {
        let _span = tracing::info_span!("wal.archive", first = m.first, last = m.last).entered();
        let bytes = (self.inner.opts.fs)
            .read(&m.path)
            .map_err(Error::io("read segment", &m.path))?;
        let seg = SealedSegment {
            first_version: m.first,
            last_version: m.last,
            blake3: *blake3::hash(&bytes).as_bytes(),
            len: bytes.len() as u64,
        };
        let err = |source| Error::Archive {
            first: m.first,
            last: m.last,
            source,
        };
        if archiver.contains(&seg).map_err(err)? {
            return Ok(false);
        }
        // damage is never archived as if it were healthy: the archive is what restores
        let scan = segment::scan(&bytes, m.first, |_| {});
        let bad = match (&scan.problem, scan.last_version) {
            (Some(p), _) => Some((p.offset, format!("{:?}", p.error))),
            (None, v) if v != Some(m.last) => Some((
                scan.valid_len,
                format!("holds versions up to {v:?}, the log expects {}", m.last),
            )),
            _ => None,
        };
        if let Some((offset, detail)) = bad {
            return Err(Error::Corruption {
                segment: m.path.clone(),
                offset: offset as u64,
                detail: format!("{detail}; not archived"),
            });
        }

        archiver.archive(&seg, &bytes).map_err(err)?;
        if !archiver.contains(&seg).map_err(err)? {
            return Err(err(
                "the archive does not confirm the segment it just stored".into(),
            ));
        }
        Ok(true)
    }

    /// After a snapshot at `snapshot_version`: archives every sealed segment wholly at
    /// or below it, then removes it from the local disk once the archive confirms it.
    /// Returns the removed files.
    pub fn checkpoint(
        &self,
        snapshot_version: u64,
        archiver: &dyn Archiver,
    ) -> Result<Vec<PathBuf>> {
        let _span = tracing::info_span!("wal.checkpoint", snapshot_version).entered();
        let done: Vec<SegmentMeta> = {
            let w = lock(&self.inner.writer);
            let n = w.segments.len();
            w.segments[..n - 1]
                .iter()
                .filter(|m| m.last <= snapshot_version)
                .cloned()
                .collect()
        };
        let mut removed = Vec::new();
        for m in done {
            self.archive_one(&m, archiver)?;
            (self.inner.opts.fs)
                .remove_file(&m.path)
                .map_err(Error::io("remove archived segment", &m.path))?;
            lock(&self.inner.writer)
                .segments
                .retain(|x| x.first != m.first);
            removed.push(m.path);
        }
        if !removed.is_empty() {
            sync_dir(&*self.inner.opts.fs, &self.inner.dir)?;
        }
        Ok(removed)
    }

    /// Replays durable records with versions after `after` up to `target`, in order,
    /// whole batches only, from the segments on the local disk.
    /// Returns the last version applied (`after` if none).
    pub fn replay(
        &self,
        after: u64,
        target: ReplayTarget,
        apply: impl FnMut(&Record) -> Result<()>,
    ) -> Result<u64> {
        let _span = tracing::info_span!("wal.replay", after, ?target).entered();
        let durable = self.durable_version();
        let target = target.capped(durable);
        let paths: Vec<(u64, PathBuf)> = {
            let w = lock(&self.inner.writer);
            w.segments
                .iter()
                .map(|m| (m.first, m.path.clone()))
                .collect()
        };
        let mut r = Replayer::new(after, target, apply);
        for (i, (first, path)) in paths.iter().enumerate() {
            if paths.get(i + 1).is_some_and(|(next, _)| *next <= after + 1) {
                continue; // wholly before what we need
            }
            let bytes = (self.inner.opts.fs)
                .read(path)
                .map_err(Error::io("read segment", path))?;
            if !r.feed_segment(&bytes, *first, path)? {
                break;
            }
        }
        r.finish()
    }
}

impl Inner {
    fn flush(&self, bytes: &[u8], first: u64, last: u64) -> std::result::Result<(), String> {
        let _span = tracing::debug_span!("wal.flush", bytes = bytes.len(), first, last).entered();
        let mut w = lock(&self.writer);
        if w.size > SEGMENT_HEADER as u64 && w.size + bytes.len() as u64 > self.opts.segment_size {
            self.roll_locked(&mut w, first)?;
        }
        let path = w.segments.last().expect("current segment").path.clone();
        let failed = |e: std::io::Error| format!("write to {} failed: {e}", path.display());
        if w.all_durable {
            // the group's first frame says everything before it is durable
            let len = u32::from_le_bytes(bytes[0..4].try_into().expect("a frame")) as usize;
            let mut head = bytes[..FRAME_HEADER + len].to_vec();
            mark_synced_before(&mut head);
            w.file.write_all(&head).map_err(failed)?;
            w.file.write_all(&bytes[head.len()..]).map_err(failed)?;
        } else {
            w.file.write_all(bytes).map_err(failed)?;
        }
        w.all_durable = false;
        w.size += bytes.len() as u64;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        match self.opts.sync {
            SyncPolicy::Always => {
                w.file
                    .sync_data()
                    .map_err(|e| format!("fdatasync of {} failed: {e}", path.display()))?;
                w.all_durable = true;
                self.syncs.fetch_add(1, Ordering::Relaxed);
            }
            SyncPolicy::Interval(_) => w.unsynced = true,
            SyncPolicy::Never => {}
        }
        w.segments.last_mut().expect("current segment").last = last;
        Ok(())
    }

    fn roll_locked(&self, w: &mut Writer, first: u64) -> std::result::Result<(), String> {
        let _span = tracing::info_span!("wal.roll", first).entered();
        w.file
            .sync_data()
            .map_err(|e| format!("sealing sync failed: {e}"))?;
        w.all_durable = true;
        let (file, path) =
            create_segment(&*self.opts.fs, &self.dir, first).map_err(|e| e.to_string())?;
        w.file = file;
        w.size = SEGMENT_HEADER as u64;
        w.unsynced = false;
        w.segments.push(SegmentMeta {
            first,
            last: first - 1,
            path,
            archived: false,
        });
        Ok(())
    }

    fn sync_now(&self) -> std::result::Result<(), String> {
        let mut w = lock(&self.writer);
        if w.unsynced {
            w.file
                .sync_data()
                .map_err(|e| format!("interval fdatasync failed: {e}"))?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
            w.unsynced = false;
            w.all_durable = true;
        }
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        drop(self.stop_syncer.take());
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
        let _ = self.inner.sync_now();
    }
}
