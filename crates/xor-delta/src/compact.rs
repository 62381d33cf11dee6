//! The compact delta layout (format 3): the entries' heads as one zstd-compressed
//! stream, then the words they carry, then the end state's root.
//! Byte layout: `docs/FORMATS.md`, section "Delta", format 3.
//!
//! Payload: `entry_count u32 | heads_len u32 | packed_len u32 | packed heads |
//! words | root (32)`. The heads stream holds, per entry in address order, the gap
//! from the previous address + 1 (LEB128), a kind byte, and for a change the words it
//! touches: kind 2 lists them (`count`, then index gaps, LEB128: each index minus the
//! previous one minus 1, the first as is), kind 4 marks them in a bitmap of
//! `ceil(words / 8)` bytes (used when the list would not be shorter). The words follow
//! in entry order: a created or replaced fingerprint whole, a change's non-zero XOR
//! words in index order.

use bindspace_core::header::FORMAT_COMPACT_DELTA;
use bindspace_core::le::copy_bytes_to_words;
use bindspace_core::{Addr, ArtifactHeader, Digest, Fingerprint, HEADER_LEN, StateRoot};

use crate::{Change, Delta, Entry, Error, Result, Xor};

const DELETED: u8 = 0;
const CREATED: u8 = 1;
const CHANGED_LIST: u8 = 2;
const REPLACED: u8 = 3;
const CHANGED_BITMAP: u8 = 4;
/// zstd level of the heads stream (small; level 3 is zstd's default).
const LEVEL: i32 = 3;
/// Bytes of the fixed part: entry count, heads length, packed length.
const FIXED: usize = 12;
/// Bytes of the end root.
const ROOT: usize = 32;

fn bitmap_len(words: usize) -> usize {
    words.div_ceil(8)
}

/// The most head bytes one entry can take: a gap and a count of at most 3 bytes each
/// (both below 2^21), the kind, and at most a bitmap (a list is used only when
/// shorter).
fn max_head_len(words: usize) -> usize {
    3 + 1 + 3 + bitmap_len(words)
}

fn varint_len(v: usize) -> usize {
    match v {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        _ => 3,
    }
}

/// Bytes of a change as a word list: its count, then its index gaps.
fn list_len(x: &Xor) -> usize {
    let mut prev: Option<usize> = None;
    let mut n = varint_len(x.nonzero().len());
    for &(i, _) in x.nonzero() {
        let i = i as usize;
        n += varint_len(prev.map_or(i, |p| i - p - 1));
        prev = Some(i);
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The heads stream of `delta` (uncompressed) and the number of words it carries.
fn heads(delta: &Delta) -> (Vec<u8>, usize) {
    let words = delta.schema.words();
    let mut out = Vec::with_capacity(delta.entries.len() * 4);
    let mut carried = 0;
    let mut next = 0usize;
    for e in &delta.entries {
        let a = e.addr.index();
        assert!(a >= next, "delta entries must ascend by address");
        put_varint(&mut out, a - next);
        next = a + 1;
        match &e.change {
            Change::Deleted => out.push(DELETED),
            Change::Created(fp) | Change::Replaced(fp) => {
                assert_eq!(fp.words(), words, "fingerprint width");
                out.push(if matches!(e.change, Change::Created(_)) {
                    CREATED
                } else {
                    REPLACED
                });
                carried += words;
            }
            Change::Changed(x) => {
                assert_eq!(x.width(), words, "fingerprint width");
                if list_len(x) < bitmap_len(words) {
                    out.push(CHANGED_LIST);
                    put_varint(&mut out, x.nonzero().len());
                    let mut prev: Option<usize> = None;
                    for &(i, _) in x.nonzero() {
                        let i = i as usize;
                        put_varint(&mut out, prev.map_or(i, |p| i - p - 1));
                        prev = Some(i);
                    }
                } else {
                    out.push(CHANGED_BITMAP);
                    let at = out.len();
                    out.resize(at + bitmap_len(words), 0);
                    for &(i, _) in x.nonzero() {
                        out[at + i as usize / 8] |= 1 << (i % 8);
                    }
                }
                carried += x.nonzero().len();
            }
        }
    }
    (out, carried)
}

fn pack(heads: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(heads, LEVEL).expect("zstd compresses a buffer in memory")
}

/// Encoded size of `delta` in format 3, header included (compresses the heads).
pub(crate) fn encoded_len(delta: &Delta) -> usize {
    let (h, carried) = heads(delta);
    HEADER_LEN + FIXED + pack(&h).len() + carried * 8 + ROOT
}

/// Encodes `delta` as a format-3 artifact ending with `root`.
pub(crate) fn encode(delta: &Delta, root: &StateRoot) -> Vec<u8> {
    let (h, carried) = heads(delta);
    let packed = pack(&h);
    let mut out = Vec::with_capacity(HEADER_LEN + FIXED + packed.len() + carried * 8 + ROOT);
    out.resize(HEADER_LEN, 0);
    let n = |v: usize| {
        u32::try_from(v)
            .expect("heads of at most 65,536 entries")
            .to_le_bytes()
    };
    out.extend_from_slice(&n(delta.entries.len()));
    out.extend_from_slice(&n(h.len()));
    out.extend_from_slice(&n(packed.len()));
    out.extend_from_slice(&packed);
    for e in &delta.entries {
        match &e.change {
            Change::Deleted => {}
            Change::Created(fp) | Change::Replaced(fp) => {
                out.extend_from_slice(&bindspace_core::le::words_as_bytes(fp));
            }
            Change::Changed(x) => {
                for &(_, w) in x.nonzero() {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
    }
    out.extend_from_slice(&root.root().0);
    crate::codec::write_header(delta, &mut out, FORMAT_COMPACT_DELTA);
    out
}

fn malformed(offset: usize, reason: impl Into<String>) -> Error {
    Error::Malformed {
        offset,
        reason: reason.into(),
    }
}

/// A cursor over the heads stream (offsets in messages are into that stream).
struct Heads<'a> {
    b: &'a [u8],
    at: usize,
}

impl Heads<'_> {
    fn byte(&mut self, what: &str) -> Result<u8> {
        let v = *self
            .b
            .get(self.at)
            .ok_or_else(|| malformed(self.at, format!("the entry heads end inside {what}")))?;
        self.at += 1;
        Ok(v)
    }

    /// A LEB128 number of at most 3 bytes (below 2^21), in its shortest form (so
    /// every delta has one encoding of its heads).
    fn varint(&mut self, what: &str) -> Result<usize> {
        let start = self.at;
        let mut v = 0usize;
        for shift in [0, 7, 14] {
            let b = self.byte(what)?;
            v |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(malformed(start, format!("{what} not in its shortest form")));
                }
                return Ok(v);
            }
        }
        Err(malformed(start, format!("{what} longer than 3 bytes")))
    }
}

/// The words region: the carried words, read in entry order.
struct Words<'a> {
    b: &'a [u8],
    at: usize,
    /// Offset of the region in the payload, for messages.
    base: usize,
}

impl Words<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.b.len() - self.at < n * 8 {
            return Err(malformed(
                self.base + self.at,
                format!(
                    "{n} words needed, {} bytes of words remain",
                    self.b.len() - self.at
                ),
            ));
        }
        let s = &self.b[self.at..self.at + n * 8];
        self.at += n * 8;
        Ok(s)
    }

    fn nonzero(&mut self) -> Result<u64> {
        let w = u64::from_le_bytes(self.take(1)?.try_into().expect("took 8 bytes"));
        if w == 0 {
            return Err(malformed(self.base + self.at - 8, "a changed word is zero"));
        }
        Ok(w)
    }
}

/// Decodes a format-3 payload (header and payload blake3 already checked).
pub(crate) fn decode(header: &ArtifactHeader, payload: &[u8]) -> Result<Delta> {
    let schema = header.schema;
    let words = schema.words();
    if payload.len() < FIXED + ROOT {
        return Err(malformed(
            0,
            format!(
                "{} payload bytes cannot hold a format-3 delta",
                payload.len()
            ),
        ));
    }
    let (body, root) = payload.split_at(payload.len() - ROOT);
    let u32_at =
        |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes")) as usize;
    let (count, heads_len, packed_len) = (u32_at(0), u32_at(4), u32_at(8));
    if count > schema.address_space as usize {
        return Err(malformed(
            0,
            format!(
                "{count} entries for a space of {} addresses",
                schema.address_space
            ),
        ));
    }
    // every entry takes at least 2 head bytes (gap, kind), at most `max_head_len`
    if heads_len < count * 2 || heads_len > count * max_head_len(words) {
        return Err(malformed(
            4,
            format!("{heads_len} bytes of entry heads cannot describe {count} entries"),
        ));
    }
    if packed_len > body.len() - FIXED {
        return Err(malformed(
            8,
            format!(
                "{packed_len} packed head bytes, only {} remain",
                body.len() - FIXED
            ),
        ));
    }
    let packed = &body[FIXED..FIXED + packed_len];
    // exactly one zstd frame
    match zstd::zstd_safe::find_frame_compressed_size(packed) {
        Ok(n) if n == packed_len => {}
        _ => {
            return Err(malformed(
                FIXED,
                format!("the {packed_len} packed head bytes are not one zstd frame"),
            ));
        }
    }
    // the capacity bounds the allocation; a stream inflating past it is refused
    let h = zstd::bulk::decompress(packed, heads_len)
        .map_err(|e| malformed(FIXED, format!("the entry heads do not unpack: {e}")))?;
    if h.len() != heads_len {
        return Err(malformed(
            FIXED,
            format!(
                "the entry heads unpack to {} bytes, not {heads_len}",
                h.len()
            ),
        ));
    }
    let mut hd = Heads { b: &h, at: 0 };
    let mut ws = Words {
        b: &body[FIXED + packed_len..],
        at: 0,
        base: FIXED + packed_len,
    };
    // (a delta of many deletions packs small: reserve no more than the input's size)
    let mut entries = Vec::with_capacity(count.min(payload.len()));
    let mut next = 0usize;
    for _ in 0..count {
        let start = hd.at;
        let a = next + hd.varint("an address gap")?;
        if a >= schema.address_space as usize {
            return Err(malformed(
                start,
                format!("address {a:#06x} outside the space"),
            ));
        }
        next = a + 1;
        let full = |ws: &mut Words<'_>| -> Result<Fingerprint> {
            let mut fp = Fingerprint::zeroed(words);
            copy_bytes_to_words(ws.take(words)?, fp.words_mut());
            Ok(fp)
        };
        let change = match hd.byte("an entry kind")? {
            DELETED => Change::Deleted,
            CREATED => Change::Created(full(&mut ws)?),
            REPLACED => Change::Replaced(full(&mut ws)?),
            CHANGED_LIST => {
                let list_at = hd.at;
                let n = hd.varint("a changed-word count")?;
                if n == 0 || n > words {
                    return Err(malformed(start, format!("{n} changed words of {words}")));
                }
                let mut x = Vec::with_capacity(n);
                let mut prev: Option<usize> = None;
                for _ in 0..n {
                    let gap = hd.varint("a word index")?;
                    let i = prev.map_or(gap, |p| p + 1 + gap);
                    if i >= words {
                        return Err(malformed(start, format!("changed word {i} of {words}")));
                    }
                    prev = Some(i);
                    x.push((i as u16, ws.nonzero()?));
                }
                if hd.at - list_at >= bitmap_len(words) {
                    return Err(malformed(
                        start,
                        "a word list not shorter than the bitmap (the encoder writes the bitmap)",
                    ));
                }
                Change::Changed(
                    Xor::from_nonzero(words, x)
                        .expect("indices checked ascending and in range, words non-zero"),
                )
            }
            CHANGED_BITMAP => {
                let bm_len = bitmap_len(words);
                if h.len() - hd.at < bm_len {
                    return Err(malformed(
                        hd.at,
                        "the entry heads end inside a change bitmap",
                    ));
                }
                let bm = &h[hd.at..hd.at + bm_len];
                hd.at += bm_len;
                let x = crate::codec::bitmap_changes(bm, words, start, || ws.nonzero())?;
                let x = Xor::from_nonzero(words, x)
                    .ok_or_else(|| malformed(start, "change with an empty bitmap"))?;
                if list_len(&x) < bitmap_len(words) {
                    return Err(malformed(
                        start,
                        "a bitmap where the word list is shorter (the encoder writes the list)",
                    ));
                }
                Change::Changed(x)
            }
            k => return Err(malformed(start, format!("unknown entry kind {k}"))),
        };
        entries.push(Entry {
            addr: Addr(a as u16),
            change,
        });
    }
    if hd.at != h.len() {
        return Err(malformed(
            hd.at,
            format!("{} entry head bytes after the last entry", h.len() - hd.at),
        ));
    }
    if ws.at != ws.b.len() {
        return Err(malformed(
            ws.base + ws.at,
            format!("{} bytes of words after the last entry", ws.b.len() - ws.at),
        ));
    }
    Ok(Delta {
        from_version: header.from_version,
        to_version: header.to_version,
        timestamp_us: header.time_to_us,
        schema,
        entries,
        end_root: Some(StateRoot::root_only(Digest(
            root.try_into().expect("split 32 bytes"),
        ))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_long_ones_are_refused() {
        for v in [0, 1, 127, 128, 16_383, 16_384, 65_535, (1 << 21) - 1] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut h = Heads { b: &b, at: 0 };
            assert_eq!(h.varint("v").unwrap(), v);
            assert_eq!(h.at, b.len());
        }
        let mut h = Heads {
            b: &[0x80, 0x80, 0x80, 0x01],
            at: 0,
        };
        assert!(h.varint("v").is_err());
        // a longer form of a shorter number: one encoding per delta
        for b in [&[0x80, 0x00][..], &[0x81, 0x80, 0x00]] {
            let mut h = Heads { b, at: 0 };
            assert!(h.varint("v").is_err(), "{b:?}");
        }
        for v in [0, 127, 128, 16_383, 16_384, (1 << 21) - 1] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
        }
    }
}
