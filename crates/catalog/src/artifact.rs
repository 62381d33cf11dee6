//! Artifact identities and references.

use std::fmt;

use crate::{Error, Result};

/// What kind of artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArtifactKind {
    /// A full snapshot (native format).
    Snapshot,
    /// An XOR delta between two versions.
    Delta,
    /// A sealed WAL segment.
    WalSegment,
}

impl ArtifactKind {
    /// All kinds.
    pub const ALL: [ArtifactKind; 3] = [
        ArtifactKind::Snapshot,
        ArtifactKind::Delta,
        ArtifactKind::WalSegment,
    ];
}

/// A timeline: one history of the space (see `docs/OPERATIONS.md`, "Timelines").
/// Timeline 1 is the first; a history that continues from a restored state gets a new
/// one, so two histories never share an artifact identity.
pub type TimelineId = u32;

/// The first timeline, and the one every artifact of layout 1 belongs to.
pub const FIRST_TIMELINE: TimelineId = 1;

fn first_timeline() -> TimelineId {
    FIRST_TIMELINE
}

fn is_first_timeline(t: &TimelineId) -> bool {
    *t == FIRST_TIMELINE
}

/// An artifact's identity: its timeline, its kind and the versions it covers.
///
/// Field order matters: ids sort by kind, then versions, then timeline.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArtifactId {
    /// A full snapshot at a version.
    Snapshot {
        /// The version.
        version: u64,
        /// The history it belongs to.
        #[serde(default = "first_timeline", skip_serializing_if = "is_first_timeline")]
        timeline: TimelineId,
    },
    /// A delta from one version to another.
    Delta {
        /// Version it applies to.
        from: u64,
        /// Version it produces.
        to: u64,
        /// The history it belongs to.
        #[serde(default = "first_timeline", skip_serializing_if = "is_first_timeline")]
        timeline: TimelineId,
    },
    /// A WAL segment holding versions `first..=last`.
    WalSegment {
        /// First version.
        first: u64,
        /// Last version.
        last: u64,
        /// The history it belongs to.
        #[serde(default = "first_timeline", skip_serializing_if = "is_first_timeline")]
        timeline: TimelineId,
    },
}

impl ArtifactId {
    /// A full snapshot at `version` on timeline 1 ([`ArtifactId::on`] moves it).
    pub const fn snapshot(version: u64) -> Self {
        ArtifactId::Snapshot {
            version,
            timeline: FIRST_TIMELINE,
        }
    }
    /// A delta `from..to` on timeline 1.
    pub const fn delta(from: u64, to: u64) -> Self {
        ArtifactId::Delta {
            from,
            to,
            timeline: FIRST_TIMELINE,
        }
    }
    /// A WAL segment `first..=last` on timeline 1.
    pub const fn wal(first: u64, last: u64) -> Self {
        ArtifactId::WalSegment {
            first,
            last,
            timeline: FIRST_TIMELINE,
        }
    }
    /// The same artifact on timeline `t`.
    pub const fn on(self, t: TimelineId) -> Self {
        match self {
            ArtifactId::Snapshot { version, .. } => ArtifactId::Snapshot {
                version,
                timeline: t,
            },
            ArtifactId::Delta { from, to, .. } => ArtifactId::Delta {
                from,
                to,
                timeline: t,
            },
            ArtifactId::WalSegment { first, last, .. } => ArtifactId::WalSegment {
                first,
                last,
                timeline: t,
            },
        }
    }
    /// The history it belongs to.
    pub const fn timeline(&self) -> TimelineId {
        match *self {
            ArtifactId::Snapshot { timeline, .. }
            | ArtifactId::Delta { timeline, .. }
            | ArtifactId::WalSegment { timeline, .. } => timeline,
        }
    }
    /// Its kind.
    pub fn kind(&self) -> ArtifactKind {
        match self {
            ArtifactId::Snapshot { .. } => ArtifactKind::Snapshot,
            ArtifactId::Delta { .. } => ArtifactKind::Delta,
            ArtifactId::WalSegment { .. } => ArtifactKind::WalSegment,
        }
    }
    /// First and last version covered (a snapshot covers one).
    pub fn versions(&self) -> (u64, u64) {
        match *self {
            ArtifactId::Snapshot { version, .. } => (version, version),
            ArtifactId::Delta { from, to, .. } => (from, to),
            ArtifactId::WalSegment { first, last, .. } => (first, last),
        }
    }
    /// The canonical key name below the kind's directory (zero-padded, so names sort
    /// by version): `00000000000000000042` or `…0001-…0042` on timeline 1 (the names
    /// of layout 1, unchanged), `t00000002_00000000000000000042` on timeline 2.
    pub fn key_name(&self) -> String {
        let span = match *self {
            ArtifactId::Snapshot { version, .. } => format!("{version:020}"),
            ArtifactId::Delta { from, to, .. } => format!("{from:020}-{to:020}"),
            ArtifactId::WalSegment { first, last, .. } => format!("{first:020}-{last:020}"),
        };
        match self.timeline() {
            FIRST_TIMELINE => span,
            t => format!("t{t:08}_{span}"),
        }
    }
    /// Parses a [`ArtifactId::key_name`] of the given kind.
    pub fn parse_key_name(kind: ArtifactKind, name: &str) -> Option<Self> {
        let (timeline, span) = match name.strip_prefix('t') {
            Some(rest) => {
                let (t, span) = rest.split_once('_')?;
                let t: TimelineId = (t.len() == 8).then(|| t.parse().ok()).flatten()?;
                // timeline 1 has exactly one spelling, the unprefixed one
                (t > FIRST_TIMELINE).then_some((t, span))?
            }
            None => (FIRST_TIMELINE, name),
        };
        let num = |s: &str| {
            (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let id = match kind {
            ArtifactKind::Snapshot => ArtifactId::snapshot(num(span)?),
            ArtifactKind::Delta | ArtifactKind::WalSegment => {
                let (a, b) = span.split_once('-')?;
                let (a, b) = (num(a)?, num(b)?);
                if kind == ArtifactKind::Delta {
                    ArtifactId::delta(a, b)
                } else {
                    ArtifactId::wal(a, b)
                }
            }
        };
        Some(id.on(timeline))
    }
    /// Whether the versions it covers overlap `lo..=hi`.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        let (a, b) = self.versions();
        a <= hi && b >= lo
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactId::Snapshot { version, .. } => write!(f, "snapshot {version}"),
            ArtifactId::Delta { from, to, .. } => write!(f, "delta {from}..{to}"),
            ArtifactId::WalSegment { first, last, .. } => {
                write!(f, "wal segment {first}..={last}")
            }
        }?;
        match self.timeline() {
            FIRST_TIMELINE => Ok(()),
            t => write!(f, " on timeline {t}"),
        }
    }
}

/// A stored artifact: identity, length and blake3 of its bytes. A read verifies the
/// bytes against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactRef {
    /// Which artifact.
    pub id: ArtifactId,
    /// Length in bytes.
    pub len: u64,
    /// blake3 of the bytes.
    pub blake3: [u8; 32],
}

impl ArtifactRef {
    /// A reference to `bytes` stored as `id`.
    pub fn of(id: ArtifactId, bytes: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        if bytes.len() >= 1 << 20 {
            h.update_rayon(bytes);
        } else {
            h.update(bytes);
        }
        ArtifactRef {
            id,
            len: bytes.len() as u64,
            blake3: *h.finalize().as_bytes(),
        }
    }

    /// Checks `bytes` are this artifact, or names what is wrong.
    pub fn verify(&self, store: &str, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 != self.len {
            return Err(Error::Corrupt {
                store: store.to_owned(),
                artifact: self.id,
                detail: format!("{} bytes, expected {}", bytes.len(), self.len),
            });
        }
        let actual = ArtifactRef::of(self.id, bytes).blake3;
        if actual != self.blake3 {
            return Err(Error::Corrupt {
                store: store.to_owned(),
                artifact: self.id,
                detail: format!(
                    "blake3 {} does not match the recorded {}",
                    blake3_hex(&actual),
                    blake3_hex(&self.blake3)
                ),
            });
        }
        Ok(())
    }
}

/// Lower-case hex of a digest.
pub fn blake3_hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses 64 hex digits.
pub fn parse_blake3_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
