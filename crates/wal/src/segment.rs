//! Segment files: a 32-byte header, then frames. Named by their first version
//! (`{first_version:020}.wal`) so a directory listing sorts them.

use std::path::{Path, PathBuf};

use crate::record::{FRAME_HEADER, FrameError, Record, RecordOp, decode_frame, is_synced_before};

/// Segment header length.
pub const SEGMENT_HEADER: usize = 32;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BNDSWAL\0";
/// Segment format version this build writes: 2 may hold checkpoint records (op 6);
/// 3 marks the first frame of each group written after a sync (flags bit 1), which
/// tells a torn unsynced write apart from damage to an acknowledged record.
pub const SEGMENT_FORMAT: u16 = 3;
/// The oldest segment format this build reads (1: no checkpoint records).
pub const OLDEST_SEGMENT_FORMAT: u16 = 1;
/// File name suffix.
pub const SUFFIX: &str = ".wal";

/// The header bytes of a segment starting at `first_version`.
pub fn encode_header(first_version: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&SEGMENT_FORMAT.to_le_bytes());
    h[16..24].copy_from_slice(&first_version.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header; returns its first version.
pub fn decode_header(b: &[u8]) -> Result<u64, String> {
    if b.len() < SEGMENT_HEADER {
        return Err(format!(
            "segment header needs {SEGMENT_HEADER} bytes, file has {}",
            b.len()
        ));
    }
    if b[0..8] != SEGMENT_MAGIC {
        return Err("not a bindspace WAL segment (bad magic)".into());
    }
    let crc = u32::from_le_bytes(b[28..32].try_into().expect("4 bytes"));
    if crc32c::crc32c(&b[0..28]) != crc {
        return Err("segment header checksum mismatch".into());
    }
    if b[10..16].iter().chain(&b[24..28]).any(|&x| x != 0) {
        return Err("reserved segment header bytes are not zero".into());
    }
    let format = header_format(b);
    if !(OLDEST_SEGMENT_FORMAT..=SEGMENT_FORMAT).contains(&format) {
        return Err(format!(
            "segment format {format} not supported (this build reads {OLDEST_SEGMENT_FORMAT}..={SEGMENT_FORMAT})"
        ));
    }
    Ok(u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")))
}

/// The format of a segment whose header [`decode_header`] accepted.
pub fn header_format(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[8], b[9]])
}

/// The file name of the segment starting at `first_version`.
pub fn file_name(first_version: u64) -> String {
    format!("{first_version:020}{SUFFIX}")
}

/// Segment files in `dir`, ascending by first version. Other files are ignored.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    list_on(&crate::fsio::RealFs, dir)
}

/// [`list`] on a given file system.
pub fn list_on(fs: &dyn crate::fsio::Fs, dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for path in fs.read_dir(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() == 20
            && let Ok(v) = stem.parse::<u64>()
        {
            out.push((v, path.clone()));
        }
    }
    out.sort();
    Ok(out)
}

/// Where a scan stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Offset of the first bad frame.
    pub offset: usize,
    /// What is wrong with it.
    pub error: FrameError,
    /// Whether a valid frame for a later version was found after it.
    pub valid_after: bool,
    /// Whether one of those says everything before it was durable when it was
    /// written (format 3): then the damaged frame had been synced, so it is
    /// corruption, never a torn write.
    pub synced_after: bool,
}

/// The result of validating one segment's frames.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Bytes of header and valid frames.
    pub valid_len: usize,
    /// Last valid version (`None` if no frame).
    pub last_version: Option<u64>,
    /// Offset and first version of a batch with no `BatchCommit` at the end.
    pub open_batch: Option<(usize, u64)>,
    /// The first bad frame, if any.
    pub problem: Option<Problem>,
}

/// Validates the frames of a segment whose header says it starts at `first_version`,
/// calling `each` for every valid record in order. Versions must ascend by one.
pub fn scan(bytes: &[u8], first_version: u64, mut each: impl FnMut(&Record)) -> Scan {
    let mut off = SEGMENT_HEADER;
    let mut expected = first_version;
    let mut scan = Scan {
        valid_len: off,
        ..Scan::default()
    };
    let mut batch: Option<(usize, u64, u32)> = None;
    while off < bytes.len() {
        let res = decode_frame(&bytes[off..]).and_then(|(rec, n)| {
            if rec.version != expected {
                return Err(FrameError::BadRecord(format!(
                    "version {} where {expected} was due",
                    rec.version
                )));
            }
            match (&rec.op, batch) {
                (RecordOp::BatchCommit { count }, Some((_, _, n))) if *count == n => {}
                (RecordOp::BatchCommit { count }, _) => {
                    return Err(FrameError::BadRecord(format!(
                        "batch commit of {count} records closes {} open ones",
                        batch.map_or(0, |b| b.2)
                    )));
                }
                (_, Some(_)) if !rec.in_batch => {
                    return Err(FrameError::BadRecord("batch left open".into()));
                }
                _ => {}
            }
            Ok((rec, n))
        });
        match res {
            Ok((rec, n)) => {
                match rec.op {
                    RecordOp::BatchCommit { .. } => batch = None,
                    _ if rec.in_batch => {
                        let b = batch.get_or_insert((off, rec.version, 0));
                        b.2 += 1;
                    }
                    _ => {}
                }
                each(&rec);
                scan.last_version = Some(rec.version);
                expected += 1;
                off += n;
                scan.valid_len = off;
            }
            Err(error) => {
                let (valid_after, synced_after) = valid_frames_after(bytes, off + 1, expected);
                scan.problem = Some(Problem {
                    offset: off,
                    error,
                    valid_after,
                    synced_after,
                });
                break;
            }
        }
    }
    scan.open_batch = batch.map(|(o, v, _)| (o, v));
    scan
}

/// Whether any offset past the header of `bytes` holds a valid frame for a version at
/// or after `min_version` (a segment whose header is damaged: did it ever hold
/// anything?).
pub fn holds_valid_frame(bytes: &[u8], min_version: u64) -> bool {
    valid_frames_after(bytes, SEGMENT_HEADER.min(bytes.len()), min_version).0
}

/// Whether any offset at or after `from` holds a valid frame for a version at or after
/// `min_version`, and whether any such frame (past `min_version`) is marked as written
/// after everything before it was durable. Cheap filters (version range, length) run
/// before the checksum.
fn valid_frames_after(bytes: &[u8], from: usize, min_version: u64) -> (bool, bool) {
    let end = bytes.len().saturating_sub(FRAME_HEADER + 18);
    let mut any = false;
    for o in from..=end {
        let v = u64::from_le_bytes(bytes[o + 8..o + 16].try_into().expect("8 bytes"));
        if v >= min_version
            && v < min_version.saturating_add(1 << 40)
            && decode_frame(&bytes[o..]).is_ok()
        {
            any = true;
            if v > min_version && is_synced_before(&bytes[o..]) {
                return (true, true);
            }
        }
    }
    (any, false)
}
