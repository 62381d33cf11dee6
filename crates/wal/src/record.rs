//! Records and frames. Byte layout: `docs/FORMATS.md`, section "WAL".
//!
//! Frame: `len u32 | crc32c u32 | record`, where `crc32c` covers the four `len` bytes
//! and the record. Record: `version u64 | timestamp_us u64 | flags u8 | op u8 | body`.

use bindspace_core::le::{copy_bytes_to_words, words_as_bytes};
use bindspace_core::{
    ADDRESS_SPACE, Addr, Digest, Fingerprint, MAX_FINGERPRINT_WORDS, SchemaVersion, StateRoot,
};

/// Bytes before the record: `len` and `crc32c`.
pub const FRAME_HEADER: usize = 8;
/// Fixed record prefix: version, timestamp, flags, op.
const RECORD_PREFIX: usize = 18;
/// Most prefix digests a checkpoint carries (one per 256 addresses of the largest space).
const MAX_PREFIXES: usize = ADDRESS_SPACE / 256;
/// The largest write (the widest fingerprint).
const MAX_WRITE: usize = RECORD_PREFIX + 4 + MAX_FINGERPRINT_WORDS * 8;
/// The largest checkpoint (root, count, every prefix digest).
const MAX_CHECKPOINT: usize = RECORD_PREFIX + 32 + 2 + MAX_PREFIXES * 32;
/// Largest record any op can produce; a frame declaring more is damaged, and is
/// rejected before anything is allocated.
pub const MAX_RECORD: usize = if MAX_WRITE > MAX_CHECKPOINT {
    MAX_WRITE
} else {
    MAX_CHECKPOINT
};
/// Longest restore-point name in bytes.
pub const MAX_NAME: usize = 1024;

/// `flags` bit 0: this record belongs to a batch whose `BatchCommit` follows.
const IN_BATCH: u8 = 1;
/// `flags` bit 1 (segment format 3): every frame before this one in the log was
/// durable when this one was written. Set on the first frame of a group written after
/// a sync; a damaged frame that such a later frame follows was acknowledged
/// (corruption), one that none follows may be a write a power loss tore (a crash).
const SYNCED_BEFORE: u8 = 2;
/// Byte offset of `flags` in a frame.
const FLAGS_AT: usize = FRAME_HEADER + 16;

/// What a caller asks the log to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Store a fingerprint.
    Write(Addr, Fingerprint),
    /// Empty an address.
    Delete(Addr),
    /// Name the state at this version.
    RestorePoint(String),
    /// From this version on, the space has this schema.
    SchemaChange(SchemaVersion),
    /// The state at this version (the same as before it: it changes nothing) has this
    /// root; written at each backup, checked by every replay that passes it. Segment
    /// format 2 and later.
    Checkpoint(StateRoot),
}

/// What a record holds: an [`Op`] or the end of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOp {
    /// A caller's operation.
    Op(Op),
    /// Closes a batch of `count` records; until it is durable, none of them count.
    BatchCommit {
        /// Records in the batch (not counting this one).
        count: u32,
    },
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its version (= LSN). Every record takes exactly one version.
    pub version: u64,
    /// Wall-clock time of the append, µs since the epoch; never decreases.
    pub timestamp_us: u64,
    /// Whether it belongs to a batch still to be closed by a `BatchCommit`.
    pub in_batch: bool,
    /// The content.
    pub op: RecordOp,
}

/// Why bytes are not a valid frame. `Incomplete` may be a torn write; the others mean
/// the bytes are damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the frame needs.
    Incomplete,
    /// A length no record can have.
    BadLength(u32),
    /// The checksum does not match.
    BadChecksum,
    /// Checksum fine, content invalid.
    BadRecord(String),
}

fn op_code(op: &RecordOp) -> u8 {
    match op {
        RecordOp::Op(Op::Write(..)) => 1,
        RecordOp::Op(Op::Delete(_)) => 2,
        RecordOp::Op(Op::RestorePoint(_)) => 3,
        RecordOp::Op(Op::SchemaChange(_)) => 4,
        RecordOp::BatchCommit { .. } => 5,
        RecordOp::Op(Op::Checkpoint(_)) => 6,
    }
}

/// Appends the frame for `rec` to `out`.
///
/// # Panics
/// If the op is larger than any valid record (a name over [`MAX_NAME`] bytes, a
/// fingerprint over [`MAX_FINGERPRINT_WORDS`] words): callers check with [`validate_op`].
pub fn encode_frame(rec: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    out.extend_from_slice(&rec.version.to_le_bytes());
    out.extend_from_slice(&rec.timestamp_us.to_le_bytes());
    out.push(if rec.in_batch { IN_BATCH } else { 0 });
    out.push(op_code(&rec.op));
    match &rec.op {
        RecordOp::Op(Op::Write(a, fp)) => {
            out.extend_from_slice(&a.0.to_le_bytes());
            out.extend_from_slice(&(fp.words() as u16).to_le_bytes());
            out.extend_from_slice(&words_as_bytes(fp));
        }
        RecordOp::Op(Op::Delete(a)) => out.extend_from_slice(&a.0.to_le_bytes()),
        RecordOp::Op(Op::RestorePoint(name)) => {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        RecordOp::Op(Op::SchemaChange(s)) => {
            for v in [s.major, s.minor, s.patch, s.fingerprint_words] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&s.address_space.to_le_bytes());
            out.extend_from_slice(&s.features.to_le_bytes());
        }
        RecordOp::BatchCommit { count } => out.extend_from_slice(&count.to_le_bytes()),
        RecordOp::Op(Op::Checkpoint(root)) => {
            out.extend_from_slice(&root.root().0);
            out.extend_from_slice(&(root.prefixes().len() as u16).to_le_bytes());
            for p in root.prefixes() {
                out.extend_from_slice(&p.0);
            }
        }
    }
    let len = out.len() - start - FRAME_HEADER;
    assert!(
        len <= MAX_RECORD,
        "record of {len} bytes exceeds MAX_RECORD"
    );
    let len_bytes = (len as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), &out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Marks the frame at the start of `frame` (a whole, valid frame) as written after
/// everything before it was durable (see `SYNCED_BEFORE`), and re-seals its checksum.
pub(crate) fn mark_synced_before(frame: &mut [u8]) {
    let len = u32::from_le_bytes(frame[0..4].try_into().expect("a frame header")) as usize;
    frame[FLAGS_AT] |= SYNCED_BEFORE;
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&frame[0..4]),
        &frame[FRAME_HEADER..FRAME_HEADER + len],
    );
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Whether the valid frame at the start of `frame` says everything before it was
/// durable when it was written.
pub(crate) fn is_synced_before(frame: &[u8]) -> bool {
    frame.get(FLAGS_AT).is_some_and(|f| f & SYNCED_BEFORE != 0)
}

/// Checks an op fits in a record.
pub fn validate_op(op: &Op) -> Result<(), String> {
    match op {
        Op::Write(_, fp) if fp.words() == 0 || fp.words() > MAX_FINGERPRINT_WORDS => Err(format!(
            "fingerprint of {} words is outside 1..={MAX_FINGERPRINT_WORDS}",
            fp.words()
        )),
        Op::RestorePoint(n) if n.is_empty() || n.len() > MAX_NAME => Err(format!(
            "restore point name must be 1..={MAX_NAME} bytes, is {}",
            n.len()
        )),
        Op::SchemaChange(s) => s.validate().map_err(|e| e.to_string()),
        Op::Checkpoint(r) if r.prefixes().is_empty() || r.prefixes().len() > MAX_PREFIXES => {
            Err(format!(
                "a checkpoint carries 1..={MAX_PREFIXES} prefix digests, this one {}",
                r.prefixes().len()
            ))
        }
        _ => Ok(()),
    }
}

/// Decodes the frame at the start of `b`, returning the record and the frame's length.
pub fn decode_frame(b: &[u8]) -> Result<(Record, usize), FrameError> {
    if b.len() < FRAME_HEADER {
        return Err(FrameError::Incomplete);
    }
    let len = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
    if (len as usize) < RECORD_PREFIX || len as usize > MAX_RECORD {
        return Err(FrameError::BadLength(len));
    }
    let end = FRAME_HEADER + len as usize;
    if b.len() < end {
        return Err(FrameError::Incomplete);
    }
    let crc = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    let body = &b[FRAME_HEADER..end];
    if crc32c::crc32c_append(crc32c::crc32c(&b[0..4]), body) != crc {
        return Err(FrameError::BadChecksum);
    }
    decode_record(body)
        .map(|r| (r, end))
        .map_err(FrameError::BadRecord)
}

fn decode_record(b: &[u8]) -> Result<Record, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        b.get(at..at + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .ok_or_else(|| "record too short".to_string())
    };
    let version = u64::from_le_bytes(b[0..8].try_into().expect("prefix checked"));
    let timestamp_us = u64::from_le_bytes(b[8..16].try_into().expect("prefix checked"));
    let flags = b[16];
    if flags & !(IN_BATCH | SYNCED_BEFORE) != 0 {
        return Err(format!("unknown flags {flags:#x}"));
    }
    let body = &b[RECORD_PREFIX..];
    let exact = |n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err(format!(
                "op {} body is {} bytes, expected {n}",
                b[17],
                body.len()
            ))
        }
    };
    let op = match b[17] {
        1 => {
            let addr = u16_at(RECORD_PREFIX)?;
            let words = u16_at(RECORD_PREFIX + 2)? as usize;
            if words == 0 || words > MAX_FINGERPRINT_WORDS {
                return Err(format!("write of {words} words"));
            }
            exact(4 + words * 8)?;
            let mut fp = Fingerprint::zeroed(words);
            copy_bytes_to_words(&body[4..], fp.words_mut());
            RecordOp::Op(Op::Write(Addr(addr), fp))
        }
        2 => {
            exact(2)?;
            RecordOp::Op(Op::Delete(Addr(u16_at(RECORD_PREFIX)?)))
        }
        3 => {
            let n = u16_at(RECORD_PREFIX)? as usize;
            exact(2 + n)?;
            let name = std::str::from_utf8(&body[2..])
                .map_err(|_| "restore point name is not UTF-8".to_string())?;
            RecordOp::Op(Op::RestorePoint(name.to_owned()))
        }
        4 => {
            exact(20)?;
            let s = SchemaVersion {
                major: u16_at(RECORD_PREFIX)?,
                minor: u16_at(RECORD_PREFIX + 2)?,
                patch: u16_at(RECORD_PREFIX + 4)?,
                fingerprint_words: u16_at(RECORD_PREFIX + 6)?,
                address_space: u32::from_le_bytes(body[8..12].try_into().expect("20 bytes")),
                features: u64::from_le_bytes(body[12..20].try_into().expect("20 bytes")),
            };
            s.validate().map_err(|e| e.to_string())?;
            RecordOp::Op(Op::SchemaChange(s))
        }
        5 => {
            exact(4)?;
            RecordOp::BatchCommit {
                count: u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")),
            }
        }
        6 => {
            let n = u16_at(RECORD_PREFIX + 32)? as usize;
            if n == 0 || n > MAX_PREFIXES {
                return Err(format!("checkpoint of {n} prefix digests"));
            }
            exact(32 + 2 + n * 32)?;
            let digest = |b: &[u8]| Digest(b.try_into().expect("32 bytes"));
            let prefixes = body[34..].chunks_exact(32).map(digest).collect();
            RecordOp::Op(Op::Checkpoint(StateRoot::from_recorded(
                digest(&body[..32]),
                prefixes,
            )))
        }
        op => return Err(format!("unknown op {op}")),
    };
    Ok(Record {
        version,
        timestamp_us,
        in_batch: flags & IN_BATCH != 0,
        op,
    })
}

impl From<bindspace_core::workload::Op> for Op {
    fn from(op: bindspace_core::workload::Op) -> Self {
        match op {
            bindspace_core::workload::Op::Write(a, fp) => Op::Write(a, fp),
            bindspace_core::workload::Op::Delete(a) => Op::Delete(a),
        }
    }
}
