//! `bindspace-wal`'s [`Archiver`] on a [`BackupStore`]: sealed segments go to `wal/`.

use std::sync::Arc;

use bindspace_catalog::{ArtifactId, ArtifactKind, ArtifactRef, BackupStore};
use bindspace_wal::{ArchiveError, Archiver, SealedSegment};
use bytes::Bytes;

/// Archives WAL segments into any [`BackupStore`]. The WAL is synchronous, so this
/// blocks on a tokio runtime handle it is given (call it from a blocking thread, e.g.
/// `spawn_blocking`, never from inside an async task).
#[derive(Debug, Clone)]
pub struct StoreArchiver {
    store: Arc<dyn BackupStore>,
    rt: tokio::runtime::Handle,
}

impl StoreArchiver {
    /// An archiver into `store`, running its I/O on `rt`.
    pub fn new(store: Arc<dyn BackupStore>, rt: tokio::runtime::Handle) -> Self {
        StoreArchiver { store, rt }
    }

    fn to_ref(s: &SealedSegment) -> ArtifactRef {
        ArtifactRef {
            id: ArtifactId::WalSegment {
                first: s.first_version,
                last: s.last_version,
            },
            len: s.len,
            blake3: s.blake3,
        }
    }
}

impl Archiver for StoreArchiver {
    fn archive(&self, s: &SealedSegment, bytes: &[u8]) -> Result<(), ArchiveError> {
        let id = Self::to_ref(s).id;
        let r = self
            .rt
            .block_on(self.store.put(id, Bytes::copy_from_slice(bytes)))?;
        if r.blake3 != s.blake3 {
            return Err("the store hashed the segment differently".into());
        }
        Ok(())
    }

    fn contains(&self, s: &SealedSegment) -> Result<bool, ArchiveError> {
        let want = Self::to_ref(s);
        let listed = self.rt.block_on(self.store.list(
            ArtifactKind::WalSegment,
            s.first_version,
            s.last_version,
        ))?;
        Ok(listed.contains(&want))
    }

    fn list(&self) -> Result<Vec<SealedSegment>, ArchiveError> {
        let listed = self
            .rt
            .block_on(self.store.list(ArtifactKind::WalSegment, 0, u64::MAX))?;
        Ok(listed
            .into_iter()
            .filter_map(|r| match r.id {
                ArtifactId::WalSegment { first, last } => Some(SealedSegment {
                    first_version: first,
                    last_version: last,
                    blake3: r.blake3,
                    len: r.len,
                }),
                _ => None,
            })
            .collect())
    }

    fn fetch(&self, s: &SealedSegment) -> Result<Vec<u8>, ArchiveError> {
        Ok(self.rt.block_on(self.store.get(&Self::to_ref(s)))?.to_vec())
    }
}
