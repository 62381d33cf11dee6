//! Compression of whole artifacts (zstd), where it pays: a packed artifact is a small
//! checked head, a checksum of the frame's own bytes (format 2) and one zstd frame
//! carrying its own content checksum. An artifact is
//! packed only when a sample of it, and then the whole, shrink by at least 10%;
//! random fingerprints do not, so most fulls stay raw. Packing happens before sealing
//! (an encrypted repository seals the packed bytes). Unpacking recognises the head, so
//! a repository holds packed and raw artifacts side by side (compression switched on
//! later, incompressible artifacts).

use std::io::Read;

use crate::{ArtifactId, ArtifactKind, Error, Result};

/// The head's first bytes.
pub const PACKED_MAGIC: [u8; 8] = *b"BSPACKED";
/// The packed format this build writes (it reads 1 and 2).
pub const PACKED_FORMAT: u16 = 2;
/// Head length in bytes of what this build writes (format 2).
pub const PACKED_HEAD_LEN: usize = 32;
/// Head length of packed format 1 (no checksum of the frame's bytes).
const HEAD_LEN_V1: usize = 24;
/// Codec byte of zstd.
const ZSTD: u8 = 1;
/// The zstd level for what the write path produces (WAL segments, deltas).
pub const FAST_LEVEL: i32 = 1;
/// The zstd level for fulls (written in the background).
pub const FULL_LEVEL: i32 = 6;
/// What a sample and the whole must save, at least, for an artifact to be packed.
pub const MIN_SAVING: f64 = 0.10;
/// The sample compressed first.
const SAMPLE: usize = 1 << 20;
/// Below this an artifact is stored raw (the head would eat the gain).
const TINY: usize = 512;
/// The largest artifact unpacked (a full 65,536-address space of 1,024-word
/// fingerprints is 512 MiB; a head naming more is refused before anything is read).
pub const MAX_UNPACKED: u64 = 1 << 30;

/// Whether `bytes` are a packed artifact.
pub fn is_packed(bytes: &[u8]) -> bool {
    bytes.len() >= HEAD_LEN_V1 && bytes[..8] == PACKED_MAGIC
}

/// The level an artifact of `kind` is packed with.
pub fn level_for(kind: ArtifactKind) -> i32 {
    match kind {
        ArtifactKind::Snapshot => FULL_LEVEL,
        ArtifactKind::Delta | ArtifactKind::WalSegment => FAST_LEVEL,
    }
}

/// The check of a head's bytes before it (format 1: bytes 0..20; 2: 0..28).
fn head_check(before: &[u8]) -> [u8; 4] {
    let h = blake3::hash(before);
    let mut c = [0u8; 4];
    c.copy_from_slice(&h.as_bytes()[..4]);
    c
}

/// The checksum of the frame's own bytes (format 2): the first 8 bytes of its blake3.
fn frame_check(frame: &[u8]) -> [u8; 8] {
    let h = blake3::hash(frame);
    let mut c = [0u8; 8];
    c.copy_from_slice(&h.as_bytes()[..8]);
    c
}

fn compress(bytes: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).ok()?;
    enc.include_checksum(true).ok()?;
    std::io::Write::write_all(&mut enc, bytes).ok()?;
    enc.finish().ok()
}

/// `bytes` packed at `level` when that saves at least [`MIN_SAVING`] (a sample first,
/// then the whole); `None`: store them raw. Deterministic for one zstd version.
pub fn pack(bytes: &[u8], level: i32) -> Option<Vec<u8>> {
    // (more than unpacking accepts would be stored but never read back)
    if bytes.len() < TINY || bytes.len() as u64 > MAX_UNPACKED {
        return None;
    }
    let pays = |raw: usize, packed: usize| (packed as f64) <= (raw as f64) * (1.0 - MIN_SAVING);
    let sample = &bytes[..bytes.len().min(SAMPLE)];
    if sample.len() < bytes.len() && !pays(sample.len(), compress(sample, level)?.len()) {
        return None;
    }
    let frame = compress(bytes, level)?;
    if !pays(bytes.len(), PACKED_HEAD_LEN + frame.len()) {
        return None;
    }
    let mut out = Vec::with_capacity(PACKED_HEAD_LEN + frame.len());
    out.extend_from_slice(&PACKED_MAGIC);
    out.extend_from_slice(&PACKED_FORMAT.to_le_bytes());
    out.push(ZSTD);
    out.push(level.clamp(-128, 127) as i8 as u8);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&frame_check(&frame));
    let check = head_check(&out);
    out.extend_from_slice(&check);
    out.extend_from_slice(&frame);
    Some(out)
}

/// The artifact `r` packed bytes hold, checked: head, size limit, the frame's content
/// checksum, the length the head names. Bytes that are not packed come back as they
/// are. Damage is [`Error::Corrupt`] naming the artifact and `store`.
pub fn unpack(store: &str, id: ArtifactId, bytes: bytes::Bytes) -> Result<bytes::Bytes> {
    if !is_packed(&bytes) {
        return Ok(bytes);
    }
    let corrupt = |detail: String| Error::Corrupt {
        store: store.to_owned(),
        artifact: id,
        detail: format!("packed artifact: {detail}"),
    };
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    let head_len = match format {
        1 => HEAD_LEN_V1,
        2 => PACKED_HEAD_LEN,
        _ => {
            return Err(corrupt(format!(
                "format {format}; this build reads 1 and 2"
            )));
        }
    };
    if bytes.len() < head_len {
        return Err(corrupt(format!(
            "{} bytes, shorter than the head of format {format}",
            bytes.len()
        )));
    }
    if bytes[head_len - 4..head_len] != head_check(&bytes[..head_len - 4]) {
        return Err(corrupt("its head check does not match".into()));
    }
    let frame = &bytes[head_len..];
    if format == 2 && bytes[20..28] != frame_check(frame) {
        return Err(corrupt(
            "the checksum of its compressed bytes does not match (they changed)".into(),
        ));
    }
    if bytes[10] != ZSTD {
        return Err(corrupt(format!("unknown codec {}", bytes[10])));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[12..20]);
    let raw_len = u64::from_le_bytes(len);
    if raw_len > MAX_UNPACKED {
        return Err(corrupt(format!(
            "names {raw_len} bytes unpacked, more than the {MAX_UNPACKED} allowed"
        )));
    }
    let dec = zstd::stream::read::Decoder::new(frame).map_err(|e| corrupt(format!("zstd: {e}")))?;
    // grows as it decodes (never sized by the head), at most one byte past the length
    let mut out = Vec::new();
    dec.take(raw_len + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("zstd: {e}")))?;
    if out.len() as u64 != raw_len {
        return Err(corrupt(format!(
            "unpacks to {} bytes, its head says {raw_len}",
            out.len()
        )));
    }
    Ok(bytes::Bytes::from(out))
}
