//! Replaying records in order, whole batches only, up to a target.

use std::path::Path;

use bindspace_core::BindSpace;

use crate::record::{Op, Record, RecordOp};
use crate::segment;
use crate::{Error, Result};

/// How far to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayTarget {
    /// Everything durable.
    Latest,
    /// Up to and including this version. A version inside a batch resolves to the
    /// version before the batch: a half-applied batch is never a state.
    Version(u64),
    /// Every record stamped at or before this time (µs since the epoch).
    Time(u64),
}

impl ReplayTarget {
    pub(crate) fn capped(self, durable: u64) -> (u64, u64) {
        match self {
            ReplayTarget::Latest => (durable, u64::MAX),
            ReplayTarget::Version(v) => (v.min(durable), u64::MAX),
            ReplayTarget::Time(t) => (durable, t),
        }
    }
}

/// Feeds records in version order to `apply`, holding back the records of a batch until
/// its commit, and stopping at the target.
pub struct Replayer<F> {
    after: u64,
    max_version: u64,
    max_time: u64,
    next: u64,
    batch: Vec<Record>,
    apply: F,
    done: bool,
}

impl<F: FnMut(&Record) -> Result<()>> Replayer<F> {
    /// Replays records after version `after`, up to `(max_version, max_time)`.
    pub fn new(after: u64, (max_version, max_time): (u64, u64), apply: F) -> Self {
        Replayer {
            after,
            max_version,
            max_time,
            next: after + 1,
            batch: Vec::new(),
            apply,
            done: false,
        }
    }

    /// Feeds one record; returns whether more are wanted.
    pub fn feed(&mut self, rec: &Record) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        if rec.version <= self.after {
            return Ok(true);
        }
        if rec.version != self.next {
            return Err(Error::Gap {
                need: self.next,
                have: rec.version,
            });
        }
        self.next += 1;
        if rec.in_batch {
            self.batch.push(rec.clone());
            return Ok(true);
        }
        if rec.version > self.max_version || rec.timestamp_us > self.max_time {
            self.done = true;
            return Ok(false);
        }
        for r in std::mem::take(&mut self.batch) {
            (self.apply)(&r)?;
        }
        (self.apply)(rec)?;
        self.after = rec.version;
        Ok(true)
    }

    /// Feeds the records of one segment's bytes (header checked, frames validated).
    /// Stops at the first bad frame: a live segment may end in an unfinished write.
    pub fn feed_segment(&mut self, bytes: &[u8], first: u64, path: &Path) -> Result<bool> {
        self.feed_segment_upto(bytes, first, path, u64::MAX)
    }

    /// [`Replayer::feed_segment`], ignoring the records after version `last`: a segment
    /// of a parent timeline that runs past the point where the replayed history
    /// branched off it. Returns whether more are wanted.
    pub fn feed_segment_upto(
        &mut self,
        bytes: &[u8],
        first: u64,
        path: &Path,
        last: u64,
    ) -> Result<bool> {
        let header_first = segment::decode_header(bytes).map_err(|detail| Error::BadSegment {
            segment: path.to_path_buf(),
            detail,
        })?;
        if header_first != first {
            return Err(Error::BadSegment {
                segment: path.to_path_buf(),
                detail: format!("header says first version {header_first}, expected {first}"),
            });
        }
        let mut res = Ok(true);
        segment::scan(bytes, first, |rec| {
            if rec.version <= last && matches!(res, Ok(true)) {
                res = self.feed(rec);
            }
        });
        res
    }

    /// [`Replayer::feed_segment_upto`] for a sealed segment (an archived one) that
    /// claims to hold `first..=last`: any bad frame, or records ending before `last`,
    /// is corruption, never a place to stop quietly (a sealed segment has no
    /// unfinished tail).
    pub fn feed_sealed_segment_upto(
        &mut self,
        bytes: &[u8],
        (first, last): (u64, u64),
        path: &Path,
        until: u64,
    ) -> Result<bool> {
        let scan = segment::scan(bytes, first, |_| {});
        let corrupt = |offset: usize, detail: String| Error::Corruption {
            segment: path.to_path_buf(),
            offset: offset as u64,
            detail,
        };
        if let Some(p) = &scan.problem {
            return Err(corrupt(p.offset, format!("{:?}", p.error)));
        }
        if scan.last_version != Some(last) {
            return Err(corrupt(
                scan.valid_len,
                format!(
                    "the sealed segment holds versions up to {:?}, its name says {last}",
                    scan.last_version
                ),
            ));
        }
        self.feed_segment_upto(bytes, first, path, until)
    }

    /// The last version applied.
    pub fn finish(self) -> Result<u64> {
        Ok(self.after)
    }
}

/// Applies one record to `space`: data ops through the space's own write/delete (the
/// versions must line up), the others by moving the version; a checkpoint first checks
/// the space's state root against the one it recorded (a mismatch names the prefixes).
pub fn apply_record(space: &mut BindSpace, rec: &Record) -> Result<()> {
    if space.version() + 1 != rec.version {
        return Err(Error::Gap {
            need: space.version() + 1,
            have: rec.version,
        });
    }
    match &rec.op {
        RecordOp::Op(Op::Write(a, fp)) => {
            space.write(*a, fp)?;
        }
        // an address outside the space holds nothing: deleting it changes nothing
        // (builds before the check logged such deletes; the log must still replay)
        RecordOp::Op(Op::Delete(a)) if a.index() >= space.address_space() => {
            tracing::warn!(version = rec.version, addr = %a, "delete outside the space skipped");
            space.set_version(rec.version);
        }
        RecordOp::Op(Op::Delete(a)) => {
            space.delete(*a)?;
        }
        RecordOp::Op(Op::SchemaChange(s)) if *s != space.schema() => {
            return Err(Error::InvalidOp {
                reason: format!(
                    "schema change at version {} from {} to {s} needs bindspace-schema-migrate",
                    rec.version,
                    space.schema()
                ),
            });
        }
        RecordOp::Op(Op::Checkpoint(recorded)) => {
            recorded.check(
                &space.state_root(),
                &format!("WAL checkpoint at version {}", rec.version),
            )?;
            space.set_version(rec.version);
        }
        RecordOp::Op(Op::RestorePoint(_) | Op::SchemaChange(_)) | RecordOp::BatchCommit { .. } => {
            space.set_version(rec.version);
        }
    }
    Ok(())
}
