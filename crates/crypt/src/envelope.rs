//! A sealed artifact: the plaintext in segments of [`SEGMENT_LEN`] bytes, each
//! encrypted and authenticated on its own (XChaCha20-Poly1305 in the STREAM
//! construction, big-endian 32-bit counter and a last-segment flag), so a large
//! artifact seals and opens through a bounded buffer, a truncated one is refused,
//! and segments cannot be reordered.
//!
//! Layout (`docs/FORMATS.md`, "Sealed artifact"): a 40-byte head, then the segments.
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `BSSEALED` |
//! | 8..10 | envelope format (1), u16 LE |
//! | 10..12 | reserved, zero |
//! | 12..16 | key epoch, u32 LE |
//! | 16..20 | segment length, u32 LE (1 KiB ..= 16 MiB) |
//! | 20..39 | nonce prefix (19 bytes; `Keys::seal` derives them from the key, context and plaintext) |
//! | 39 | reserved, zero |
//! | 40.. | segments: each `min(segment length, rest)` bytes + a 16-byte tag; the last (possibly empty) flagged last |
//!
//! Every segment's associated data is the caller's context (what the artifact is:
//! repository, kind, timeline, versions) followed by the 40 head bytes, so a sealed
//! object copied under another artifact's name, or with its head altered, fails to open.

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::Payload;

use crate::{Entropy, Error, Key, Result};

/// The eight bytes a sealed artifact starts with.
pub const ENVELOPE_MAGIC: [u8; 8] = *b"BSSEALED";
/// The envelope format this build writes and reads.
pub const ENVELOPE_FORMAT: u16 = 1;
/// The head's length.
pub const HEAD_LEN: usize = 40;
/// Plaintext bytes per segment (1 MiB).
pub const SEGMENT_LEN: u32 = 1 << 20;
const TAG_LEN: usize = 16;
const MIN_SEGMENT: u32 = 1 << 10;
const MAX_SEGMENT: u32 = 1 << 24;

/// Whether `bytes` start like a sealed artifact (an unencrypted artifact or segment
/// starts with its own magic, never this one).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&ENVELOPE_MAGIC)
}

/// A sealed artifact's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The key epoch whose data key sealed it.
    pub epoch: u32,
    /// Plaintext bytes per segment.
    pub segment_len: u32,
    /// The random nonce prefix.
    pub nonce_prefix: [u8; 19],
}

impl Envelope {
    /// A new head for sealing under `epoch` (a random nonce prefix: XChaCha's 192-bit
    /// nonces make random prefixes safe without a counter).
    pub fn new(epoch: u32, segment_len: u32, rng: &mut dyn Entropy) -> Result<Envelope> {
        if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&segment_len) {
            return Err(Error::Refused(format!(
                "segment length {segment_len}: between {MIN_SEGMENT} and {MAX_SEGMENT} bytes"
            )));
        }
        let mut nonce_prefix = [0u8; 19];
        rng.fill(&mut nonce_prefix)?;
        Ok(Envelope {
            epoch,
            segment_len,
            nonce_prefix,
        })
    }

    /// A head with a given nonce prefix ([`crate::Keys::seal`] derives it).
    pub fn with_prefix(epoch: u32, segment_len: u32, nonce_prefix: [u8; 19]) -> Result<Envelope> {
        if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&segment_len) {
            return Err(Error::Refused(format!(
                "segment length {segment_len}: between {MIN_SEGMENT} and {MAX_SEGMENT} bytes"
            )));
        }
        Ok(Envelope {
            epoch,
            segment_len,
            nonce_prefix,
        })
    }

    /// The head's bytes.
    pub fn encode(&self) -> [u8; HEAD_LEN] {
        let mut b = [0u8; HEAD_LEN];
        b[..8].copy_from_slice(&ENVELOPE_MAGIC);
        b[8..10].copy_from_slice(&ENVELOPE_FORMAT.to_le_bytes());
        b[12..16].copy_from_slice(&self.epoch.to_le_bytes());
        b[16..20].copy_from_slice(&self.segment_len.to_le_bytes());
        b[20..39].copy_from_slice(&self.nonce_prefix);
        b
    }

    /// The head of a sealed artifact, checked (not authenticated: that is the
    /// segments' job, which cover it).
    pub fn decode(bytes: &[u8]) -> Result<Envelope> {
        const WHAT: &str = "sealed artifact head";
        if !is_sealed(bytes) {
            return Err(Error::corrupt(WHAT, "no BSSEALED magic: not encrypted"));
        }
        if bytes.len() < HEAD_LEN {
            return Err(Error::corrupt(
                WHAT,
                format!("{} bytes, a head is {HEAD_LEN}", bytes.len()),
            ));
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let format = u16_at(8);
        if format != ENVELOPE_FORMAT {
            return Err(Error::corrupt(
                WHAT,
                format!("envelope format {format}; this build reads {ENVELOPE_FORMAT}"),
            ));
        }
        if u16_at(10) != 0 || bytes[39] != 0 {
            return Err(Error::corrupt(WHAT, "reserved bytes are not zero"));
        }
        let segment_len = u32_at(16);
        if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&segment_len) {
            return Err(Error::corrupt(
                WHAT,
                format!("segment length {segment_len} out of range"),
            ));
        }
        let mut nonce_prefix = [0u8; 19];
        nonce_prefix.copy_from_slice(&bytes[20..39]);
        Ok(Envelope {
            epoch: u32_at(12),
            segment_len,
            nonce_prefix,
        })
    }

    /// The sealed length of `plaintext_len` bytes.
    pub fn sealed_len(&self, plaintext_len: u64) -> u64 {
        let seg = u64::from(self.segment_len);
        // at least one (the last, possibly empty) segment
        let segments = plaintext_len.div_ceil(seg).max(1);
        HEAD_LEN as u64 + plaintext_len + segments * TAG_LEN as u64
    }

    fn stream(&self, key: &Key) -> StreamBE32<XChaCha20Poly1305> {
        StreamBE32::new(key.bytes().into(), (&self.nonce_prefix).into())
    }

    fn aad(&self, context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(context.len() + HEAD_LEN + 8);
        aad.extend_from_slice(&(context.len() as u64).to_le_bytes());
        aad.extend_from_slice(context);
        aad.extend_from_slice(&self.encode());
        aad
    }

    /// Seals `plaintext` with `key` (this epoch's data key), bound to `context`:
    /// the head and every segment. Segments are sealed in parallel on the rayon pool
    /// (each is independent in STREAM: its nonce carries its position).
    pub fn seal(&self, key: &Key, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let stream = self.stream(key);
        let aad = self.aad(context);
        let seg = self.segment_len as usize;
        let n = plaintext.len().div_ceil(seg).max(1);
        u32::try_from(n)
            .map_err(|_| Error::Refused("an artifact of more than 2^32 segments".into()))?;
        let total = usize::try_from(self.sealed_len(plaintext.len() as u64))
            .map_err(|_| Error::Refused("an artifact too large to seal here".into()))?;
        let mut out = vec![0u8; total];
        out[..HEAD_LEN].copy_from_slice(&self.encode());
        let job = Job {
            stream: &stream,
            aad: &aad,
            seg,
            n,
        };
        job.seal(plaintext, &mut out[HEAD_LEN..], 0, n)?;
        Ok(out)
    }

    /// Opens a sealed artifact with `key`, bound to `context`. Every segment is
    /// authenticated; a damaged, truncated, extended or misplaced artifact is
    /// [`Error::Corrupt`] naming the segment (the first in order that fails).
    /// Segments are opened in parallel on the rayon pool.
    pub fn open(&self, key: &Key, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        const WHAT: &str = "sealed artifact";
        let body = sealed
            .get(HEAD_LEN..)
            .ok_or_else(|| Error::corrupt(WHAT, "shorter than its head"))?;
        let seg = self.segment_len as usize;
        if body.len() < TAG_LEN {
            return Err(Error::corrupt(
                WHAT,
                "no segment after the head (truncated)",
            ));
        }
        let n = body.len().div_ceil(seg + TAG_LEN);
        let last_len = body.len() - (n - 1) * (seg + TAG_LEN);
        if last_len < TAG_LEN {
            return Err(Error::corrupt(
                WHAT,
                format!("segment {} is shorter than its tag (truncated)", n - 1),
            ));
        }
        u32::try_from(n).map_err(|_| Error::corrupt(WHAT, "too many segments"))?;
        let stream = self.stream(key);
        let aad = self.aad(context);
        // sized by the bytes present, never by a length the artifact claims
        let mut out = vec![0u8; body.len() - n * TAG_LEN];
        let job = Job {
            stream: &stream,
            aad: &aad,
            seg,
            n,
        };
        job.open(body, &mut out, 0, n)?;
        Ok(out)
    }
}

/// One seal or open: segments `first..first + count` of `n`, split in halves on the
/// rayon pool down to a few per task.
struct Job<'a> {
    stream: &'a StreamBE32<XChaCha20Poly1305>,
    aad: &'a [u8],
    seg: usize,
    n: usize,
}

/// Segments one task seals or opens in a row.
const SEGMENTS_PER_TASK: usize = 4;

impl Job<'_> {
    /// `plain`: the plaintext of these segments; `body`: their sealed slots.
    fn seal(&self, plain: &[u8], body: &mut [u8], first: usize, count: usize) -> Result<()> {
        if count > SEGMENTS_PER_TASK {
            let mid = count / 2;
            let (pa, pb) = plain.split_at((mid * self.seg).min(plain.len()));
            let (ba, bb) = body.split_at_mut(mid * (self.seg + TAG_LEN));
            let (a, b) = rayon_core::join(
                || self.seal(pa, ba, first, mid),
                || self.seal(pb, bb, first + mid, count - mid),
            );
            return a.and(b);
        }
        for k in 0..count {
            let i = first + k;
            let chunk = plain
                .get(k * self.seg..((k + 1) * self.seg).min(plain.len()))
                .unwrap_or(&[]);
            let ct = self
                .stream
                .encrypt(
                    i as u32,
                    i + 1 == self.n,
                    Payload {
                        msg: chunk,
                        aad: self.aad,
                    },
                )
                .map_err(|_| Error::Refused("encryption failed".into()))?;
            let at = k * (self.seg + TAG_LEN);
            body.get_mut(at..at + ct.len())
                .ok_or_else(|| Error::Refused("a sealed segment longer than its slot".into()))?
                .copy_from_slice(&ct);
        }
        Ok(())
    }

    /// `body`: the sealed slots of these segments; `plain`: where their plaintext goes.
    fn open(&self, body: &[u8], plain: &mut [u8], first: usize, count: usize) -> Result<()> {
        const WHAT: &str = "sealed artifact";
        if count > SEGMENTS_PER_TASK {
            let mid = count / 2;
            let (ba, bb) = body.split_at(mid * (self.seg + TAG_LEN));
            let (pa, pb) = plain.split_at_mut(mid * self.seg);
            let (a, b) = rayon_core::join(
                || self.open(ba, pa, first, mid),
                || self.open(bb, pb, first + mid, count - mid),
            );
            // the first failing segment in order is the one named
            return a.and(b);
        }
        for k in 0..count {
            let i = first + k;
            let at = k * (self.seg + TAG_LEN);
            let chunk = &body[at..(at + self.seg + TAG_LEN).min(body.len())];
            let pt = self
                .stream
                .decrypt(
                    i as u32,
                    i + 1 == self.n,
                    Payload {
                        msg: chunk,
                        aad: self.aad,
                    },
                )
                .map_err(|_| {
                    Error::corrupt(
                        WHAT,
                        format!(
                            "segment {i} of {} fails authentication (damaged, truncated, or not the artifact it is stored as)",
                            self.n
                        ),
                    )
                })?;
            let to = k * self.seg;
            plain
                .get_mut(to..to + pt.len())
                .ok_or_else(|| {
                    Error::corrupt(WHAT, format!("segment {i} opens longer than a segment"))
                })?
                .copy_from_slice(&pt);
        }
        Ok(())
    }
}
