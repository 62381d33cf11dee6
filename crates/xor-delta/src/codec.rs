//! The delta artifact (kind 2): common header + tagged entries.
//! Byte layout: `docs/FORMATS.md`, section "Delta".
//!
//! Payload: `entry_count u32`, then per entry, strictly ascending by address,
//! `addr u16 | tag u8 | body`:
//! - tag 0 deleted: no body;
//! - tag 1 created, tag 3 replaced: `words × u64`;
//! - tag 2 changed: a bitmap of `ceil(words / 8)` bytes marking the non-zero XOR
//!   words (bit `i` in byte `i / 8`), then those words in order.
//!
//! Format 2 ends the payload with the end state's prefix digests (a `StateRoot`
//! trailer, 32 bytes per 256 addresses). Format 3 (`compact.rs`), written for every
//! delta with an end root, packs the entries' heads and ends with the root alone; a
//! delta without an end root is written as format 1. Formats 1 and 2 are still read
//! (and written on request, [`encode_format`]). All integers little-endian.

use bindspace_core::header::{FORMAT_COMPACT_DELTA, FORMAT_WITH_ROOTS};
use bindspace_core::le::{copy_bytes_to_words, words_as_bytes};
use bindspace_core::{Addr, ArtifactHeader, ArtifactKind, Fingerprint, HEADER_LEN, StateRoot};

use crate::{Change, Delta, Entry, Error, Result, Xor};

fn bitmap_len(words: usize) -> usize {
    words.div_ceil(8)
}

/// Encoded size of `delta` as [`encode`] writes it, header included (format 3
/// compresses the entries' heads to know).
pub fn encoded_len(delta: &Delta) -> usize {
    if delta.end_root.is_some() {
        crate::compact::encoded_len(delta)
    } else {
        encoded_len_v1v2(delta)
    }
}

fn encoded_len_v1v2(delta: &Delta) -> usize {
    let words = delta.schema.words();
    HEADER_LEN
        + 4
        + delta
            .entries
            .iter()
            .map(|e| {
                3 + match &e.change {
                    Change::Deleted => 0,
                    Change::Created(_) | Change::Replaced(_) => words * 8,
                    Change::Changed(x) => bitmap_len(words) + 8 * x.nonzero().len(),
                }
            })
            .sum::<usize>()
        + delta
            .end_root
            .as_ref()
            .map_or(0, |_| StateRoot::trailer_len(&delta.schema))
}

/// Encodes `delta` as a complete, checksummed artifact: format 3 when it carries an
/// end root, else format 1.
///
/// # Panics
/// If the delta breaks its own invariants (entries not ascending, fingerprints of the
/// wrong width): deltas built by this crate never do.
pub fn encode(delta: &Delta) -> Vec<u8> {
    match &delta.end_root {
        Some(root) => crate::compact::encode(delta, root),
        None => encode_v1v2(delta),
    }
}

/// Encodes `delta` in an older format, exactly as a build of that format wrote it
/// (goldens, compatibility tests): 1 drops the end root, 2 needs its prefix digests,
/// 3 is [`encode`]'s.
///
/// # Panics
/// On a format other than 1, 2 or 3, format 2 or 3 without an end root, or format 2
/// of a delta whose end root has no prefix digests (decoded from format 3).
pub fn encode_format(delta: &Delta, format: u16) -> Vec<u8> {
    match format {
        1 => encode_v1v2(&Delta {
            end_root: None,
            ..delta.clone()
        }),
        2 => {
            let root = delta.end_root.as_ref().expect("format 2 needs an end root");
            assert!(
                root.has_prefixes(),
                "format 2 needs the end root's prefix digests"
            );
            encode_v1v2(delta)
        }
        3 => crate::compact::encode(
            delta,
            delta.end_root.as_ref().expect("format 3 needs an end root"),
        ),
        f => panic!("no delta format {f}"),
    }
}

fn encode_v1v2(delta: &Delta) -> Vec<u8> {
    let words = delta.schema.words();
    let total = encoded_len_v1v2(delta);
    let mut out = Vec::with_capacity(total);
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(
        &u32::try_from(delta.entries.len())
            .expect("at most 65,536 entries")
            .to_le_bytes(),
    );
    let mut prev: Option<Addr> = None;
    for e in &delta.entries {
        assert!(prev < Some(e.addr), "delta entries must ascend by address");
        prev = Some(e.addr);
        out.extend_from_slice(&e.addr.0.to_le_bytes());
        out.push(e.change.tag());
        match &e.change {
            Change::Deleted => {}
            Change::Created(fp) | Change::Replaced(fp) => {
                assert_eq!(fp.words(), words, "fingerprint width");
                out.extend_from_slice(&words_as_bytes(fp));
            }
            Change::Changed(x) => {
                assert_eq!(x.width(), words, "fingerprint width");
                let at = out.len();
                out.resize(at + bitmap_len(words), 0);
                for &(i, _) in x.nonzero() {
                    out[at + i as usize / 8] |= 1 << (i % 8);
                }
                for &(_, w) in x.nonzero() {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
    }
    if let Some(root) = &delta.end_root {
        assert_eq!(
            root.prefixes().len(),
            StateRoot::prefix_count(&delta.schema),
            "end root of the delta's shape"
        );
        root.encode_trailer(&mut out);
    }
    debug_assert_eq!(out.len(), total);
    let format = if delta.end_root.is_some() {
        FORMAT_WITH_ROOTS
    } else {
        1
    };
    write_header(delta, &mut out, format);
    out
}

/// Fills `out`'s first [`HEADER_LEN`] bytes with the delta's header of `format`, over
/// the payload after them. Formats 1, 2 and 3 share it.
pub(crate) fn write_header(delta: &Delta, out: &mut [u8], format: u16) {
    let header = ArtifactHeader::for_payload(
        ArtifactKind::Delta,
        delta.schema,
        (delta.from_version, delta.to_version),
        (delta.timestamp_us, delta.timestamp_us),
        &out[HEADER_LEN..],
    )
    .as_format(format);
    out[..HEADER_LEN].copy_from_slice(&header.encode());
}

/// The `(index, word)` pairs a change bitmap marks (bit `i` in byte `i / 8`), each
/// word read by `word` (which refuses a zero one); a bit at or past `words` is
/// malformed at `start`. Formats 2 and 3 share it.
pub(crate) fn bitmap_changes(
    bm: &[u8],
    words: usize,
    start: usize,
    mut word: impl FnMut() -> Result<u64>,
) -> Result<Vec<(u16, u64)>> {
    let mut x = Vec::new();
    for (byte_i, &byte) in bm.iter().enumerate() {
        let mut bits = byte;
        while bits != 0 {
            let i = byte_i * 8 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if i >= words {
                return Err(Error::Malformed {
                    offset: start,
                    reason: format!("change bitmap marks word {i} of {words}"),
                });
            }
            x.push((i as u16, word()?));
        }
    }
    Ok(x)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.b.len() - self.at < n {
            return Err(Error::Malformed {
                offset: self.at,
                reason: format!(
                    "{what} needs {n} bytes, only {} remain",
                    self.b.len() - self.at
                ),
            });
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
}

/// Decodes and fully verifies a delta artifact of format 1, 2 or 3.
///
/// Every malformation is a typed error: bad header or checksum (via
/// [`bindspace_core::Error`]), entries out of order or outside the address space,
/// unknown tags, bitmap bits past the word count, an all-zero change, trailing bytes.
/// Allocation is bounded by the (verified) input length; in format 3 the entry heads
/// are unpacked into at most `entry_count × (7 + ceil(words / 8))` bytes, `entry_count`
/// at most the space's address count.
pub fn decode(bytes: &[u8]) -> Result<Delta> {
    let (header, whole) = ArtifactHeader::open(bytes, ArtifactKind::Delta)?;
    if header.format == FORMAT_COMPACT_DELTA {
        return crate::compact::decode(&header, whole);
    }
    let schema = header.schema;
    let (payload, end_root) = if header.has_roots() {
        let n = StateRoot::trailer_len(&schema);
        if whole.len() < n {
            return Err(Error::Malformed {
                offset: 0,
                reason: format!(
                    "{} payload bytes cannot hold the {n}-byte state root trailer",
                    whole.len()
                ),
            });
        }
        let (p, t) = whole.split_at(whole.len() - n);
        (p, Some(StateRoot::decode_trailer(&schema, t)?))
    } else {
        (whole, None)
    };
    let words = schema.words();
    let bm_len = bitmap_len(words);
    let mut r = Reader { b: payload, at: 0 };
    let count =
        u32::from_le_bytes(r.take(4, "entry count")?.try_into().expect("took 4 bytes")) as usize;
    if count > schema.address_space as usize {
        return Err(Error::Malformed {
            offset: 0,
            reason: format!(
                "{count} entries for a space of {} addresses",
                schema.address_space
            ),
        });
    }
    // Each entry takes at least 3 bytes: never reserve more than the input can hold.
    let mut entries = Vec::with_capacity(count.min(payload.len() / 3));
    let mut prev: Option<u16> = None;
    for _ in 0..count {
        let start = r.at;
        let h = r.take(3, "entry head")?;
        let addr = u16::from_le_bytes([h[0], h[1]]);
        if prev.is_some_and(|p| p >= addr) {
            return Err(Error::Malformed {
                offset: start,
                reason: format!("entry {} not after {}", Addr(addr), Addr(prev.unwrap_or(0))),
            });
        }
        if addr as u32 >= schema.address_space {
            return Err(Error::Malformed {
                offset: start,
                reason: format!("address {} outside the space", Addr(addr)),
            });
        }
        prev = Some(addr);
        let full = |r: &mut Reader<'_>| -> Result<Fingerprint> {
            let b = r.take(words * 8, "fingerprint")?;
            let mut fp = Fingerprint::zeroed(words);
            copy_bytes_to_words(b, fp.words_mut());
            Ok(fp)
        };
        let change = match h[2] {
            0 => Change::Deleted,
            1 => Change::Created(full(&mut r)?),
            3 => Change::Replaced(full(&mut r)?),
            2 => {
                let bm = r.take(bm_len, "change bitmap")?;
                let x = bitmap_changes(bm, words, start, || {
                    let w = r.take(8, "changed word")?;
                    let w = u64::from_le_bytes(w.try_into().expect("took 8 bytes"));
                    if w == 0 {
                        return Err(Error::Malformed {
                            offset: r.at - 8,
                            reason: "changed word marked non-zero is zero".into(),
                        });
                    }
                    Ok(w)
                })?;
                Change::Changed(Xor::from_nonzero(words, x).ok_or_else(|| Error::Malformed {
                    offset: start,
                    reason: "change with an empty bitmap".into(),
                })?)
            }
            t => {
                return Err(Error::Malformed {
                    offset: start + 2,
                    reason: format!("unknown entry tag {t}"),
                });
            }
        };
        entries.push(Entry {
            addr: Addr(addr),
            change,
        });
    }
    if r.at != payload.len() {
        return Err(Error::Malformed {
            offset: r.at,
            reason: format!(
                "{} trailing bytes after the last entry",
                payload.len() - r.at
            ),
        });
    }
    Ok(Delta {
        from_version: header.from_version,
        to_version: header.to_version,
        timestamp_us: header.time_to_us,
        schema,
        entries,
        end_root,
    })
}
