//! The native snapshot format (artifact kind 1): a full space at one version.
//! Byte layout: `docs/FORMATS.md`, section "Snapshot".
//!
//! Payload = occupancy bitmap (`address_space / 8` bytes) followed by the fingerprints
//! of the occupied addresses in ascending order, `words × 8` little-endian bytes each.
//! A full space is therefore one contiguous copy of the arena. Format 2 appends the
//! space's prefix digests (its [`StateRoot`] trailer); decoding checks the loaded space
//! against them, so a payload altered under a recomputed blake3 fails, naming the
//! prefixes, unless the trailer was rewritten to match: the root a catalog recorded
//! for the artifact is what makes it tamper-evident (restores check it).

use std::io;

use crate::header::{ArtifactHeader, ArtifactKind, FORMAT_VERSION, HEADER_LEN};
use crate::le::{copy_bytes_to_words, words_as_bytes};
use crate::space::hash_into;
use crate::{BindSpace, Error, Result, StateRoot};

/// A decoded snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its header.
    pub header: ArtifactHeader,
    /// The space, at `header.to_version`.
    pub space: BindSpace,
    /// The state root the artifact recorded (format 2; checked against `space`), or
    /// `None` for a format-1 artifact, written before roots existed.
    pub root: Option<StateRoot>,
}

fn payload_len(space: &BindSpace, trailer: &[u8]) -> u64 {
    (space.address_space() / 8 + space.len() * space.words() * 8 + trailer.len()) as u64
}

/// Feeds the payload to `sink` in as few slices as the occupancy allows.
fn for_each_payload_chunk(space: &BindSpace, trailer: &[u8], mut sink: impl FnMut(&[u8])) {
    sink(&words_as_bytes(space.occupancy().as_words()));
    for (_, words) in space.occupied_runs() {
        sink(&words_as_bytes(words));
    }
    sink(trailer);
}

/// The trailer format `format` carries for `space` (empty for format 1).
fn trailer_for(space: &BindSpace, format: u16) -> Vec<u8> {
    let mut t = Vec::new();
    if format >= crate::header::FORMAT_WITH_ROOTS {
        space.state_root().encode_trailer(&mut t);
    }
    t
}

fn header_for(
    space: &BindSpace,
    time_us: u64,
    hash: [u8; 32],
    trailer: &[u8],
    format: u16,
) -> ArtifactHeader {
    let v = space.version();
    ArtifactHeader::with_hash(
        ArtifactKind::Snapshot,
        space.schema(),
        (v, v),
        (time_us, time_us),
        payload_len(space, trailer),
        hash,
    )
    .as_format(format)
}

/// Encodes `space` as a complete snapshot artifact taken at `time_us`.
///
/// ```
/// use bindspace_core::{snapshot, Addr, BindSpace, SchemaVersion};
/// let mut s = BindSpace::new(SchemaVersion::CURRENT.with_words(2)).unwrap();
/// s.write(Addr::new(0, 1), &[7, 8]).unwrap();
/// let bytes = snapshot::encode(&s, 1_700_000_000_000_000);
/// let back = snapshot::decode(&bytes).unwrap();
/// assert_eq!(back.space, s);
/// ```
pub fn encode(space: &BindSpace, time_us: u64) -> Vec<u8> {
    encode_as(space, time_us, FORMAT_VERSION)
}

/// [`encode`] in artifact format `format` (1 or 2): re-encodes an artifact exactly as
/// an older build wrote it (the Lance tier stores spaces, not bytes).
pub fn encode_as(space: &BindSpace, time_us: u64, format: u16) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into_as(space, time_us, format, &mut out);
    out
}

/// Like [`encode`], into `out` (cleared first), so a backup loop can reuse one buffer.
///
/// The copy and the hash run on two threads at once, each reading the space.
pub fn encode_into(space: &BindSpace, time_us: u64, out: &mut Vec<u8>) {
    encode_into_as(space, time_us, FORMAT_VERSION, out)
}

fn encode_into_as(space: &BindSpace, time_us: u64, format: u16, out: &mut Vec<u8>) {
    let trailer = trailer_for(space, format);
    let len = payload_len(space, &trailer) as usize;
    out.clear();
    out.reserve(HEADER_LEN + len);
    out.resize(HEADER_LEN, 0);
    let ((), hash) = rayon_core::join(
        || for_each_payload_chunk(space, &trailer, |c| out.extend_from_slice(c)),
        || {
            let mut h = blake3::Hasher::new();
            for_each_payload_chunk(space, &trailer, |c| {
                h.update(c);
            });
            h.finalize()
        },
    );
    let header = header_for(space, time_us, *hash.as_bytes(), &trailer, format);
    out[..HEADER_LEN].copy_from_slice(&header.encode());
}

/// Streams the snapshot into `w` without building it in memory: one pass to hash, one
/// to write. Returns the bytes written.
pub fn write_to(space: &BindSpace, time_us: u64, w: &mut impl io::Write) -> io::Result<u64> {
    let trailer = trailer_for(space, FORMAT_VERSION);
    let mut h = blake3::Hasher::new();
    for_each_payload_chunk(space, &trailer, |c| hash_into(&mut h, c));
    let header = header_for(
        space,
        time_us,
        *h.finalize().as_bytes(),
        &trailer,
        FORMAT_VERSION,
    );
    w.write_all(&header.encode())?;
    let mut res = Ok(());
    for_each_payload_chunk(space, &trailer, |c| {
        if res.is_ok() {
            res = w.write_all(c);
        }
    });
    res?;
    Ok(HEADER_LEN as u64 + header.payload_len)
}

/// Decodes and fully verifies a snapshot artifact.
///
/// Rejects, with a typed error and without panicking: short input, wrong magic, an
/// unknown format version, a damaged header, another artifact kind, a payload that does
/// not match its length or blake3, and a payload whose structure disagrees with the
/// schema. Allocates only after the payload verified, and only what the verified
/// schema implies (bounded by [`crate::MAX_FINGERPRINT_WORDS`] × 65,536 words).
/// A format-2 snapshot whose content disagrees with its recorded prefix digests is
/// [`Error::RootMismatch`], naming the prefixes.
pub fn decode(bytes: &[u8]) -> Result<Snapshot> {
    let mut space = None;
    let (header, root) = decode_impl(bytes, &mut space)?;
    let space = space.expect("decode_impl fills the space on success");
    Ok(Snapshot {
        header,
        space,
        root,
    })
}

/// Like [`decode`], into an existing space whose memory is reused when its schema
/// matches (a restore loop, a standby that reloads). On error the space's content is
/// unspecified but valid: the caller must not use it as a restore result.
pub fn decode_into(bytes: &[u8], space: &mut BindSpace) -> Result<ArtifactHeader> {
    let mut slot = Some(std::mem::replace(space, BindSpace::placeholder()));
    let res = decode_impl(bytes, &mut slot);
    *space = slot.expect("decode_impl leaves a space in the slot");
    res.map(|(h, _)| h)
}

fn decode_impl(
    bytes: &[u8],
    slot: &mut Option<BindSpace>,
) -> Result<(ArtifactHeader, Option<StateRoot>)> {
    let header = ArtifactHeader::decode(bytes)?;
    header.expect_kind(ArtifactKind::Snapshot)?;
    let whole = &bytes[HEADER_LEN..];
    if whole.len() as u64 != header.payload_len {
        return Err(Error::PayloadLength {
            declared: header.payload_len,
            actual: whole.len() as u64,
        });
    }
    let trailer_len = if header.has_roots() {
        StateRoot::trailer_len(&header.schema)
    } else {
        0
    };
    if whole.len() < trailer_len {
        return Err(Error::Truncated {
            what: "snapshot state root trailer",
            needed: trailer_len as u64,
            available: whole.len() as u64,
        });
    }
    let (payload, trailer) = whole.split_at(whole.len() - trailer_len);
    if header.from_version != header.to_version {
        return Err(Error::Malformed {
            what: "snapshot",
            reason: format!(
                "from_version {} differs from to_version {}",
                header.from_version, header.to_version
            ),
        });
    }
    let schema = header.schema;
    let words = schema.words();
    let bitmap_len = schema.address_space as usize / 8;
    if payload.len() < bitmap_len {
        return Err(Error::Truncated {
            what: "snapshot occupancy bitmap",
            needed: bitmap_len as u64,
            available: payload.len() as u64,
        });
    }
    let (bitmap_bytes, body) = payload.split_at(bitmap_len);
    let mut occupancy = vec![0u64; bitmap_len / 8];
    copy_bytes_to_words(bitmap_bytes, &mut occupancy);
    let count: usize = occupancy.iter().map(|w| w.count_ones() as usize).sum();
    let expected = count * words * 8;
    if body.len() != expected {
        return Err(Error::Malformed {
            what: "snapshot",
            reason: format!(
                "{count} occupied addresses of {words} words need {expected} bytes, found {}",
                body.len()
            ),
        });
    }
    // The structure is consistent with the verified header, so the allocation is what
    // the schema implies. Copy and verify the payload hash on two threads at once; the
    // space is dropped unseen if the hash disagrees.
    if slot.as_ref().is_none_or(|s| s.schema() != schema) {
        *slot = Some(BindSpace::new(schema)?);
    }
    let space = slot.as_mut().expect("filled just above");
    let (loaded, verified) = rayon_core::join(
        || {
            let mut at = 0usize;
            space.load_raw(&occupancy, |_, dst| {
                let n = dst.len() * 8;
                copy_bytes_to_words(&body[at..at + n], dst);
                at += n;
                Ok(())
            })
        },
        || header.verify_payload(whole),
    );
    verified?;
    loaded?;
    space.set_version(header.to_version);
    let root = if header.has_roots() {
        let recorded = StateRoot::decode_trailer(&schema, trailer)?;
        recorded.check(
            &space.state_root(),
            &format!("snapshot at version {}", header.to_version),
        )?;
        Some(recorded)
    } else {
        None
    };
    Ok((header, root))
}
