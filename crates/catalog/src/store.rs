//! The storage interface every tier implements.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ArtifactId, ArtifactKind, ArtifactRef, Lease, Manifest, Result, TimelineId};

/// A place backups live: an object store, Redis, PostgreSQL.
///
/// Implementations verify every artifact against its blake3 on read, make a manifest
/// commit atomic and conditional on the generation, and keep the lease exclusive. The
/// conformance suite (feature `conformance`) checks all of it.
#[async_trait]
pub trait BackupStore: Send + Sync + Debug {
    /// A short description for messages, e.g. `s3://bucket/prefix`.
    fn name(&self) -> String;

    /// Stores an artifact (replacing one with the same id) and returns its reference.
    /// Large artifacts are uploaded in parts where the store supports it.
    async fn put(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef>;

    /// Reads an artifact and verifies it against `r`; damage is [`crate::Error::Corrupt`].
    async fn get(&self, r: &ArtifactRef) -> Result<Bytes>;

    /// Artifacts of `kind` whose versions overlap `lo..=hi`, ascending.
    async fn list(&self, kind: ArtifactKind, lo: u64, hi: u64) -> Result<Vec<ArtifactRef>>;

    /// The artifacts of `kind` on `timeline` whose first version is at least `first`,
    /// in key order: what a follower (replication, a standby) asks for what landed after
    /// the last one it saw. A store that lists in key order answers it with a listing
    /// that starts there, so its cost grows with what is new, not with the archive;
    /// the default filters [`BackupStore::list`].
    async fn list_since(
        &self,
        kind: ArtifactKind,
        timeline: TimelineId,
        first: u64,
    ) -> Result<Vec<ArtifactRef>> {
        let mut v: Vec<ArtifactRef> = self
            .list(kind, first, u64::MAX)
            .await?
            .into_iter()
            .filter(|r| r.id.timeline() == timeline && r.id.versions().0 >= first)
            .collect();
        v.sort_by_key(|r| r.id);
        Ok(v)
    }

    /// Whether the store holds exactly `r` (same id, length and blake3), without reading
    /// its bytes. The archiver asks this of every segment, so a store answers it with one
    /// small request where it can (never a listing of the whole archive); the default
    /// lists the artifact's versions.
    async fn holds(&self, r: &ArtifactRef) -> Result<bool> {
        let (lo, hi) = r.id.versions();
        Ok(self.list(r.id.kind(), lo, hi).await?.contains(r))
    }

    /// Removes an artifact; removing a missing one is not an error.
    async fn delete(&self, id: ArtifactId) -> Result<()>;

    /// Whether everything this store puts is sealed (an encrypted repository's store,
    /// [`crate::SealedStore`]): a writer refuses to put plaintext into a repository
    /// whose catalog holds a keyring.
    fn seals(&self) -> bool {
        false
    }

    /// The reference [`BackupStore::put`] of `bytes` as `id` returns, without storing
    /// them (an encrypted store's is that of the sealed bytes): what a writer expects.
    fn stored_ref(&self, id: ArtifactId, bytes: &[u8]) -> Result<ArtifactRef> {
        Ok(ArtifactRef::of(id, bytes))
    }

    /// The bytes as stored, verified against `r` but not opened: what copies between
    /// stores move (replication, repair), so an encrypted artifact stays the bytes the
    /// catalog records. Only [`crate::SealedStore`] differs from [`BackupStore::get`].
    async fn get_stored(&self, r: &ArtifactRef) -> Result<Bytes> {
        self.get(r).await
    }

    /// Stores bytes exactly as another store held them ([`BackupStore::get_stored`]).
    /// An encrypted store refuses plaintext here.
    async fn put_stored(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        self.put(id, bytes).await
    }

    /// What [`BackupStore::get`] would return for stored bytes `stored` of `r` (an
    /// encrypted store opens them): to check a copy decodes before it is put back.
    async fn open_stored(&self, r: &ArtifactRef, stored: Bytes) -> Result<Bytes> {
        let _ = r;
        Ok(stored)
    }

    /// The newest manifest and its generation, or `None` for an empty repository.
    async fn read_manifest(&self) -> Result<Option<(u64, Manifest)>>;

    /// The newest manifest's generation whether or not its bytes decode (0: none):
    /// what a repair commits over. The default reads the manifest, so a store whose
    /// newest manifest is damaged must answer it another way.
    async fn manifest_generation(&self) -> Result<u64> {
        Ok(self.read_manifest().await?.map_or(0, |(g, _)| g))
    }

    /// Generations older than the newest that the store still keeps, newest first:
    /// what a read falls back to when the newest is damaged
    /// ([`crate::read_catalog`]). Stores that keep only their newest return none.
    async fn older_manifests(&self) -> Result<Vec<u64>> {
        Ok(Vec::new())
    }

    /// Reads generation `generation`, one [`BackupStore::older_manifests`] listed.
    async fn read_manifest_at(&self, generation: u64) -> Result<Manifest> {
        Err(crate::Error::NotFound {
            store: self.name(),
            what: format!("catalog generation {generation}"),
        })
    }

    /// Commits `manifest` as generation `expected_generation + 1`, only if the store is
    /// still at `expected_generation` (0 = no manifest yet); otherwise
    /// [`crate::Error::Conflict`]. Returns the new generation.
    async fn commit_manifest(&self, expected_generation: u64, manifest: &Manifest) -> Result<u64>;

    /// [`BackupStore::commit_manifest`] under `lease`: refused with
    /// [`crate::Error::LeaseLost`] unless `lease` is still the store's current lease
    /// (same token, not expired at `now_us`, not released). Stores with transactions or
    /// scripts check it in the same step as the commit; an object store checks just
    /// before its conditional create.
    async fn commit_manifest_fenced(
        &self,
        expected_generation: u64,
        manifest: &Manifest,
        lease: &Lease,
        now_us: u64,
    ) -> Result<u64>;

    /// Extends `lease` to `now_us + ttl_us`, only if it is still the current lease
    /// (otherwise [`crate::Error::LeaseLost`]). Returns the renewed lease (same token).
    async fn renew_lease(&self, lease: &Lease, now_us: u64, ttl_us: u64) -> Result<Lease>;

    /// Takes the repository's backup lease for `ttl_us`, or fails with
    /// [`crate::Error::BackupInProgress`] naming the holder. An expired lease is taken
    /// over.
    async fn acquire_lease(&self, holder: &str, now_us: u64, ttl_us: u64) -> Result<Lease>;

    /// Gives the lease back. A lease that was taken over (different token) is left alone.
    async fn release_lease(&self, lease: &Lease) -> Result<()>;
}

/// Conveniences on every [`BackupStore`]; not meant to be overridden.
#[async_trait]
pub trait BackupStoreExt: BackupStore {
    /// Copies one artifact into `dst`, verified on both ends.
    async fn copy_artifact_to(
        &self,
        r: &ArtifactRef,
        dst: &dyn BackupStore,
    ) -> Result<ArtifactRef> {
        let bytes = self.get_stored(r).await?;
        let copied = dst.put_stored(r.id, bytes).await?;
        debug_assert_eq!(copied.blake3, r.blake3);
        Ok(copied)
    }

    /// Copies every artifact of every kind into `dst`; returns how many.
    async fn copy_all_to(&self, dst: &dyn BackupStore) -> Result<usize> {
        let mut n = 0;
        for kind in ArtifactKind::ALL {
            for r in self.list(kind, 0, u64::MAX).await? {
                self.copy_artifact_to(&r, dst).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

impl<T: BackupStore + ?Sized> BackupStoreExt for T {}
