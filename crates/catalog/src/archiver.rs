//! `bindspace-wal`'s [`Archiver`] on any [`BackupStore`]s (object store, Redis,
//! PostgreSQL): a sealed segment is a `WalSegment` artifact in each.

use std::sync::Arc;

use crate::{ArtifactId, ArtifactKind, ArtifactRef, BackupStore, FIRST_TIMELINE, TimelineId};
use bindspace_wal::{ArchiveError, Archiver, SealedSegment};
use bytes::Bytes;

/// Archives WAL segments into one or more [`BackupStore`]s: a segment counts as
/// archived only when every store holds it (so the WAL deletes nothing locally that one
/// tier lacks). The WAL is synchronous, so this blocks on a tokio runtime handle it is
/// given (call it from a blocking thread, never from inside an async task).
#[derive(Debug, Clone)]
pub struct StoreArchiver {
    stores: Vec<Arc<dyn BackupStore>>,
    rt: tokio::runtime::Handle,
    timeline: TimelineId,
    /// What each store was given for a segment this archiver stored (an encrypted
    /// store holds the sealed bytes, whose reference the segment alone does not tell).
    stored: Arc<std::sync::Mutex<std::collections::HashMap<ArtifactRef, Vec<ArtifactRef>>>>,
}

impl StoreArchiver {
    /// An archiver into `store`, running its I/O on `rt`.
    pub fn new(store: Arc<dyn BackupStore>, rt: tokio::runtime::Handle) -> Self {
        Self::to_all(vec![store], rt)
    }

    /// An archiver into every one of `stores` (the first also serves `list` and
    /// `fetch`). Panics on an empty list: there is nowhere to archive.
    pub fn to_all(stores: Vec<Arc<dyn BackupStore>>, rt: tokio::runtime::Handle) -> Self {
        assert!(!stores.is_empty(), "an archiver needs at least one store");
        StoreArchiver {
            stores,
            rt,
            timeline: FIRST_TIMELINE,
            stored: Arc::default(),
        }
    }

    /// The same archiver for the WAL of timeline `t` (default: 1): its segments are
    /// that timeline's artifacts, and it sees no other timeline's.
    pub fn on_timeline(mut self, t: TimelineId) -> Self {
        self.timeline = t;
        self
    }

    fn to_ref(&self, s: &SealedSegment) -> ArtifactRef {
        ArtifactRef {
            id: ArtifactId::wal(s.first_version, s.last_version).on(self.timeline),
            len: s.len,
            blake3: s.blake3,
        }
    }
}

impl Archiver for StoreArchiver {
    fn archive(&self, s: &SealedSegment, bytes: &[u8]) -> Result<(), ArchiveError> {
        let want = self.to_ref(s);
        // never into a timeline retention expired: its archive would be swept away
        // while the engine took the segment as safe (the local copy stays instead)
        for store in &self.stores {
            // past a damaged newest generation: WAL keeps reaching every store while
            // the catalog waits for a repair
            if let Some(r) = self.rt.block_on(crate::read_catalog(store.as_ref()))? {
                r.manifest.check_writable(self.timeline)?;
                crate::repo::check_sealing(store.as_ref(), &r.manifest)?;
            }
        }
        let mut refs = Vec::with_capacity(self.stores.len());
        for store in &self.stores {
            // an encrypted store holds (and answers with) the sealed bytes' reference
            let r = self
                .rt
                .block_on(store.put(want.id, Bytes::copy_from_slice(bytes)))?;
            // (after the put: it seals under the epoch the keyring names now)
            let expect = store.stored_ref(want.id, bytes)?;
            if r != expect {
                return Err(format!("{} hashed the segment differently", store.name()).into());
            }
            refs.push(r);
        }
        self.stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(want, refs);
        Ok(())
    }

    fn contains(&self, s: &SealedSegment) -> Result<bool, ArchiveError> {
        let want = self.to_ref(s);
        // one small request per store (never a listing: its cost would grow with the
        // archive, and archiving runs once per segment)
        let stored = self
            .stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&want)
            .cloned();
        for (i, store) in self.stores.iter().enumerate() {
            // what this archiver stored there (sealed), else the segment as it is (an
            // encrypted store then answers no, and the segment is stored again: the
            // same sealed bytes)
            let r = stored.as_ref().and_then(|v| v.get(i)).unwrap_or(&want);
            if !self.rt.block_on(store.holds(r))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn list(&self) -> Result<Vec<SealedSegment>, ArchiveError> {
        let listed =
            self.rt
                .block_on(self.stores[0].list(ArtifactKind::WalSegment, 0, u64::MAX))?;
        Ok(listed
            .into_iter()
            .filter_map(|r| match r.id {
                ArtifactId::WalSegment {
                    first,
                    last,
                    timeline,
                } if timeline == self.timeline => Some(SealedSegment {
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
        Ok(self
            .rt
            .block_on(self.stores[0].get(&self.to_ref(s)))?
            .to_vec())
    }
}
