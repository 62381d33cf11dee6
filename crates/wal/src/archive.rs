//! Where sealed segments go before they may leave the local disk.

use std::path::PathBuf;

use crate::Result;

/// A sealed segment as archived: its version range and the blake3 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    /// First version in the segment.
    pub first_version: u64,
    /// Last version in the segment.
    pub last_version: u64,
    /// blake3 of the whole file.
    pub blake3: [u8; 32],
    /// File length.
    pub len: u64,
}

/// Boxed error of an archiver implementation.
pub type ArchiveError = Box<dyn std::error::Error + Send + Sync>;

/// Somewhere sealed segments are kept (an object store, another disk). The WAL deletes
/// a local segment only after [`Archiver::contains`] confirms the archived copy.
pub trait Archiver: Send + Sync {
    /// Stores the segment durably. Must be idempotent: storing the same segment twice
    /// is not an error.
    fn archive(&self, segment: &SealedSegment, bytes: &[u8]) -> Result<(), ArchiveError>;
    /// Whether the archive holds exactly this segment (same range, same blake3).
    fn contains(&self, segment: &SealedSegment) -> Result<bool, ArchiveError>;
    /// The archived segments, ascending by first version.
    fn list(&self) -> Result<Vec<SealedSegment>, ArchiveError>;
    /// The bytes of an archived segment, verified against its blake3.
    fn fetch(&self, segment: &SealedSegment) -> Result<Vec<u8>, ArchiveError>;
}

/// An [`Archiver`] into a local directory: `{first:020}-{last:020}.wal` plus a
/// `.blake3` file holding the hex digest, each written to a temporary name, synced
/// and renamed.
#[derive(Clone, Debug)]
pub struct DirArchiver {
    dir: PathBuf,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl DirArchiver {
    /// An archiver into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(DirArchiver { dir })
    }

    fn path(&self, s: &SealedSegment, ext: &str) -> PathBuf {
        self.dir.join(format!(
            "{:020}-{:020}.{ext}",
            s.first_version, s.last_version
        ))
    }
}

impl Archiver for DirArchiver {
    fn archive(&self, s: &SealedSegment, bytes: &[u8]) -> Result<(), ArchiveError> {
        let _span = tracing::info_span!(
            "wal.archive.dir",
            first = s.first_version,
            last = s.last_version
        )
        .entered();
        crate::fsio::write_atomic_bytes(&self.path(s, "wal"), bytes)?;
        crate::fsio::write_atomic_bytes(&self.path(s, "blake3"), hex(&s.blake3).as_bytes())?;
        Ok(())
    }

    fn contains(&self, s: &SealedSegment) -> Result<bool, ArchiveError> {
        let Ok(recorded) = std::fs::read_to_string(self.path(s, "blake3")) else {
            return Ok(false);
        };
        if recorded.trim() != hex(&s.blake3) {
            return Ok(false);
        }
        let Ok(bytes) = std::fs::read(self.path(s, "wal")) else {
            return Ok(false);
        };
        Ok(blake3::hash(&bytes).as_bytes() == &s.blake3)
    }

    fn list(&self) -> Result<Vec<SealedSegment>, ArchiveError> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".blake3"))
            else {
                continue;
            };
            let Some((a, b)) = stem.split_once('-') else {
                continue;
            };
            let (Ok(first_version), Ok(last_version)) = (a.parse(), b.parse()) else {
                continue;
            };
            let digest = std::fs::read_to_string(&p)?;
            let mut blake3 = [0u8; 32];
            if digest.trim().len() != 64 {
                return Err(format!("{}: not a blake3 hex digest", p.display()).into());
            }
            for (i, byte) in blake3.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&digest.trim()[i * 2..i * 2 + 2], 16)
                    .map_err(|_| format!("{}: not a blake3 hex digest", p.display()))?;
            }
            let len = std::fs::metadata(p.with_extension("wal"))?.len();
            out.push(SealedSegment {
                first_version,
                last_version,
                blake3,
                len,
            });
        }
        out.sort_by_key(|s| s.first_version);
        Ok(out)
    }

    fn fetch(&self, s: &SealedSegment) -> Result<Vec<u8>, ArchiveError> {
        let bytes = std::fs::read(self.path(s, "wal"))?;
        if blake3::hash(&bytes).as_bytes() != &s.blake3 {
            return Err(format!(
                "archived segment {}..={} does not match its blake3",
                s.first_version, s.last_version
            )
            .into());
        }
        Ok(bytes)
    }
}
