//! The common artifact header that starts every snapshot and delta.
//! Byte layout: `docs/FORMATS.md`, section "Artifact header".
//!
//! Formats 1, 2 and 3 share the 128-byte header; in format 2 the payload ends with the
//! end state's prefix digests (a [`crate::StateRoot`] trailer, covered by the payload
//! blake3). Format 3 exists for deltas only (a compact entry layout ending with the end
//! state's root alone). This build writes 2 for snapshots, 3 for deltas with a root,
//! and reads every format up to those.

use crate::le::{u16_at, u32_at, u64_at};
use crate::{Error, Result, SchemaVersion};

/// The eight bytes every artifact starts with.
pub const MAGIC: [u8; 8] = *b"BNDSPACE";
/// The artifact format this build writes for snapshots, and the newest snapshot
/// format it reads.
pub const FORMAT_VERSION: u16 = 2;
/// The compact delta format (deltas only): the newest delta format this build writes
/// and reads.
pub const FORMAT_COMPACT_DELTA: u16 = 3;
/// The first format whose payload ends with a state root trailer.
pub const FORMAT_WITH_ROOTS: u16 = 2;
/// Header length in bytes.
pub const HEADER_LEN: usize = 128;
/// Bytes of the header covered by its own check (everything before the check).
const CHECKED_LEN: usize = 112;

/// What an artifact holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ArtifactKind {
    /// A full snapshot of a space.
    Snapshot,
    /// A sparse XOR delta between two versions.
    Delta,
}

impl ArtifactKind {
    fn to_u8(self) -> u8 {
        match self {
            ArtifactKind::Snapshot => 1,
            ArtifactKind::Delta => 2,
        }
    }
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(ArtifactKind::Snapshot),
            2 => Some(ArtifactKind::Delta),
            _ => None,
        }
    }
    /// The newest format of this kind this build reads.
    pub fn newest_format(self) -> u16 {
        match self {
            ArtifactKind::Snapshot => FORMAT_VERSION,
            ArtifactKind::Delta => FORMAT_COMPACT_DELTA,
        }
    }
    /// Lower-case name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::Snapshot => "snapshot",
            ArtifactKind::Delta => "delta",
        }
    }
}

/// Payload compression. Version 1 defines only `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
}

/// The decoded common header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactHeader {
    /// The artifact format (1: no state root trailer; 2: payload ends with one).
    pub format: u16,
    /// What the payload is.
    pub kind: ArtifactKind,
    /// Payload compression.
    pub compression: Compression,
    /// Key id for encrypted payloads; 0 = not encrypted (the only value version 1 reads).
    pub encryption_key_id: u32,
    /// Schema of the data in the payload.
    pub schema: SchemaVersion,
    /// First version covered (a snapshot: equal to `to_version`).
    pub from_version: u64,
    /// Version the artifact brings a space to.
    pub to_version: u64,
    /// Wall-clock time (µs since the epoch) of `from_version`.
    pub time_from_us: u64,
    /// Wall-clock time (µs since the epoch) of `to_version`.
    pub time_to_us: u64,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// blake3 of the payload.
    pub payload_blake3: [u8; 32],
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl ArtifactHeader {
    /// A header for `payload`, hashing it.
    pub fn for_payload(
        kind: ArtifactKind,
        schema: SchemaVersion,
        versions: (u64, u64),
        times_us: (u64, u64),
        payload: &[u8],
    ) -> Self {
        let mut h = blake3::Hasher::new();
        crate::space::hash_into(&mut h, payload);
        Self::with_hash(
            kind,
            schema,
            versions,
            times_us,
            payload.len() as u64,
            *h.finalize().as_bytes(),
        )
    }

    /// A header with a payload hash computed elsewhere (streaming encoders).
    pub fn with_hash(
        kind: ArtifactKind,
        schema: SchemaVersion,
        (from_version, to_version): (u64, u64),
        (time_from_us, time_to_us): (u64, u64),
        payload_len: u64,
        payload_blake3: [u8; 32],
    ) -> Self {
        ArtifactHeader {
            format: FORMAT_VERSION,
            kind,
            compression: Compression::None,
            encryption_key_id: 0,
            schema,
            from_version,
            to_version,
            time_from_us,
            time_to_us,
            payload_len,
            payload_blake3,
        }
    }

    /// The 128 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.format.to_le_bytes());
        b[10] = self.kind.to_u8();
        b[11] = match self.compression {
            Compression::None => 0,
        };
        b[12..16].copy_from_slice(&self.encryption_key_id.to_le_bytes());
        let s = &self.schema;
        b[16..18].copy_from_slice(&s.major.to_le_bytes());
        b[18..20].copy_from_slice(&s.minor.to_le_bytes());
        b[20..22].copy_from_slice(&s.patch.to_le_bytes());
        b[22..24].copy_from_slice(&s.fingerprint_words.to_le_bytes());
        b[24..28].copy_from_slice(&s.address_space.to_le_bytes());
        // 28..32 reserved, zero
        b[32..40].copy_from_slice(&s.features.to_le_bytes());
        b[40..48].copy_from_slice(&self.from_version.to_le_bytes());
        b[48..56].copy_from_slice(&self.to_version.to_le_bytes());
        b[56..64].copy_from_slice(&self.time_from_us.to_le_bytes());
        b[64..72].copy_from_slice(&self.time_to_us.to_le_bytes());
        b[72..80].copy_from_slice(&self.payload_len.to_le_bytes());
        b[80..112].copy_from_slice(&self.payload_blake3);
        let check = blake3::hash(&b[..CHECKED_LEN]);
        b[CHECKED_LEN..].copy_from_slice(&check.as_bytes()[..HEADER_LEN - CHECKED_LEN]);
        b
    }

    /// Decodes and checks the first [`HEADER_LEN`] bytes of `bytes`: magic, format
    /// version, header checksum, known kind, compression and encryption, a valid schema.
    /// Does not look at the payload.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            let mut found = [0u8; 8];
            let n = bytes.len().min(8);
            found[..n].copy_from_slice(&bytes[..n]);
            if bytes.len() < 8 && MAGIC.starts_with(&bytes[..n]) {
                return Err(Error::Truncated {
                    what: "artifact header",
                    needed: HEADER_LEN as u64,
                    available: bytes.len() as u64,
                });
            }
            return Err(Error::BadMagic { found });
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated {
                what: "artifact header",
                needed: HEADER_LEN as u64,
                available: bytes.len() as u64,
            });
        }
        let b = &bytes[..HEADER_LEN];
        let version = u16_at(b, 8);
        // the newest format of the kind the header names (checked again below)
        let newest =
            ArtifactKind::from_u8(b[10]).map_or(FORMAT_COMPACT_DELTA, |k| k.newest_format());
        if version == 0 || version > newest {
            return Err(Error::UnsupportedFormat {
                found: version,
                supported: newest,
            });
        }
        let check = blake3::hash(&b[..CHECKED_LEN]);
        if b[CHECKED_LEN..] != check.as_bytes()[..HEADER_LEN - CHECKED_LEN] {
            return Err(Error::HeaderChecksum);
        }
        let malformed = |reason: String| Error::Malformed {
            what: "artifact header",
            reason,
        };
        let kind = ArtifactKind::from_u8(b[10])
            .ok_or_else(|| malformed(format!("unknown artifact kind {}", b[10])))?;
        let compression = match b[11] {
            0 => Compression::None,
            c => return Err(malformed(format!("unknown compression {c}"))),
        };
        let encryption_key_id = u32_at(b, 12);
        if encryption_key_id != 0 {
            return Err(malformed(format!(
                "payload encrypted with key {encryption_key_id}; this build reads only unencrypted artifacts"
            )));
        }
        if u32_at(b, 28) != 0 {
            return Err(malformed("reserved bytes 28..32 are not zero".into()));
        }
        let schema = SchemaVersion {
            major: u16_at(b, 16),
            minor: u16_at(b, 18),
            patch: u16_at(b, 20),
            fingerprint_words: u16_at(b, 22),
            address_space: u32_at(b, 24),
            features: u64_at(b, 32),
        };
        schema.validate()?;
        let from_version = u64_at(b, 40);
        let to_version = u64_at(b, 48);
        if from_version > to_version {
            return Err(malformed(format!(
                "from_version {from_version} is after to_version {to_version}"
            )));
        }
        let mut payload_blake3 = [0u8; 32];
        payload_blake3.copy_from_slice(&b[80..112]);
        Ok(ArtifactHeader {
            format: version,
            kind,
            compression,
            encryption_key_id,
            schema,
            from_version,
            to_version,
            time_from_us: u64_at(b, 56),
            time_to_us: u64_at(b, 64),
            payload_len: u64_at(b, 72),
            payload_blake3,
        })
    }

    /// Fails unless the header is of kind `kind`.
    pub fn expect_kind(&self, kind: ArtifactKind) -> Result<()> {
        if self.kind != kind {
            return Err(Error::WrongKind {
                expected: kind.name(),
                found: self.kind.name(),
            });
        }
        Ok(())
    }

    /// Checks `payload` has the declared length and blake3.
    pub fn verify_payload(&self, payload: &[u8]) -> Result<()> {
        if payload.len() as u64 != self.payload_len {
            return Err(Error::PayloadLength {
                declared: self.payload_len,
                actual: payload.len() as u64,
            });
        }
        let mut h = blake3::Hasher::new();
        crate::space::hash_into(&mut h, payload);
        let actual = h.finalize();
        if actual.as_bytes() != &self.payload_blake3 {
            return Err(Error::PayloadChecksum {
                expected: hex(&self.payload_blake3),
                actual: hex(actual.as_bytes()),
            });
        }
        Ok(())
    }

    /// Decodes the header of a whole artifact and verifies its payload, returning both.
    pub fn open(bytes: &[u8], kind: ArtifactKind) -> Result<(Self, &[u8])> {
        let header = Self::decode(bytes)?;
        header.expect_kind(kind)?;
        let payload = &bytes[HEADER_LEN..];
        header.verify_payload(payload)?;
        Ok((header, payload))
    }

    /// Whether the payload ends with the end state's root: format 2, its prefix
    /// digests (a trailer); format 3 (deltas), the root alone.
    pub fn has_roots(&self) -> bool {
        self.format >= FORMAT_WITH_ROOTS
    }

    /// This header written as format `format` (1, 2, or 3 for a delta), for re-encoding an artifact
    /// exactly as it was first written.
    pub fn as_format(mut self, format: u16) -> Self {
        self.format = format;
        self
    }

    /// Header bytes followed by `payload`: a complete artifact.
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&self.encode());
        out.extend_from_slice(payload);
        out
    }
}
