//! [`LanceBackupStore`]: the S3 tier's store, whose full snapshots are versions of the
//! repository's Lance dataset instead of native snapshot objects (the cold tier keeps fulls as Lance datasets).
//!
//! It is an [`ObjectBackupStore`] for everything else (deltas, WAL segments, the
//! catalog, the lease). A native snapshot handed to `put` is decoded and written as a
//! new dataset version tagged `snapshot-{version:020}`; the version's metadata keeps
//! the native artifact's time, length and blake3. `get` reads the version back,
//! re-encodes it and checks it against the caller's reference, so a restore through
//! Lance is verified end to end like any other artifact. Bytes that would not come back
//! identical (not a snapshot, another version, a header field the encoder does not
//! write) are kept as a native object instead, so nothing put is ever changed.

use async_trait::async_trait;
use bindspace_catalog::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Error, Lease, Manifest, Result, TimelineId,
};
use bindspace_core::{BindSpace, snapshot};
use bytes::Bytes;

use crate::ObjectBackupStore;
use crate::lance_snapshots::{LanceSnapshots, META_FORMAT, META_NATIVE, META_TIME};

/// An [`ObjectBackupStore`] keeping full snapshots in Lance (see the module docs).
///
/// ```no_run
/// # async fn f() -> bindspace_catalog::Result<()> {
/// use bindspace_store_s3::{LanceBackupStore, ObjectBackupStore, StoreOptions};
/// let store = ObjectBackupStore::from_url("s3://bucket/repo", StoreOptions::default())?;
/// let cold = LanceBackupStore::new(store); // snapshots land in s3://bucket/repo/snapshots.lance
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LanceBackupStore {
    inner: ObjectBackupStore,
    lance: LanceSnapshots,
}

/// A snapshot as the catalog knows it: the native artifact's time, length and blake3.
struct Native {
    time_us: u64,
    format: u16,
    len: u64,
    blake3: [u8; 32],
}

fn hex(b: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*b).to_hex().to_string()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(s).ok().map(|h| *h.as_bytes())
}

impl LanceBackupStore {
    /// Wraps `inner`; the dataset is `snapshots.lance` under its root.
    pub fn new(inner: ObjectBackupStore) -> Self {
        let lance = LanceSnapshots::new(&inner);
        LanceBackupStore { inner, lance }
    }

    /// The same connection on another space of the repository (its own dataset, below
    /// `spaces/{name}/`; see [`ObjectBackupStore::in_space`]).
    pub fn in_space(&self, space: &bindspace_catalog::SpaceName) -> Self {
        if space.is_default() {
            return self.clone();
        }
        LanceBackupStore::new(self.inner.in_space(space))
    }

    /// The Lance dataset the snapshots live in (point lookups, listing versions).
    pub fn lance(&self) -> &LanceSnapshots {
        &self.lance
    }

    /// The object store underneath.
    pub fn inner(&self) -> &ObjectBackupStore {
        &self.inner
    }

    /// The decoded space, its time and artifact format, if `bytes` is a snapshot at
    /// `version` that re-encodes to exactly `bytes` (so `get` can give them back).
    async fn lance_form(bytes: Bytes, version: u64) -> Option<(BindSpace, u64, u16)> {
        tokio::task::spawn_blocking(move || {
            let s = snapshot::decode(&bytes).ok()?;
            let (time, format) = (s.header.time_to_us, s.header.format);
            (s.space.version() == version
                && snapshot::encode_as(&s.space, time, format) == bytes[..])
                .then_some((s.space, time, format))
        })
        .await
        .ok()
        .flatten()
    }

    async fn native_of(&self, id: ArtifactId, dataset_version: u64) -> Result<Native> {
        let meta = self.lance.metadata(dataset_version).await?;
        let bad = |what: &str| Error::BadManifest {
            store: self.inner.name(),
            what: self.lance.location(),
            detail: format!("dataset version {dataset_version} ({id}): {what}"),
        };
        let time_us = meta
            .get(META_TIME)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("no bindspace.time_us"))?;
        let (len, blake3) = meta
            .get(META_NATIVE)
            .and_then(|n| n.split_once(' '))
            .and_then(|(l, h)| Some((l.parse().ok()?, unhex(h)?)))
            .ok_or_else(|| bad("no valid bindspace.native"))?;
        let format = match meta.get(META_FORMAT) {
            None => 1,
            Some(f) => f.parse().map_err(|_| bad("bad bindspace.format"))?,
        };
        Ok(Native {
            time_us,
            format,
            len,
            blake3,
        })
    }
}

#[async_trait]
impl BackupStore for LanceBackupStore {
    fn name(&self) -> String {
        self.inner.name()
    }

    #[tracing::instrument(skip_all, fields(store = %self.inner.name(), artifact = %id))]
    async fn put(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        let ArtifactId::Snapshot { version, timeline } = id else {
            return self.inner.put(id, bytes).await;
        };
        let r = ArtifactRef::of(id, &bytes);
        let Some((space, time, format)) = Self::lance_form(bytes.clone(), version).await else {
            tracing::debug!("not a snapshot that round-trips: kept as a native object");
            return self.inner.put(id, bytes).await;
        };
        let meta = vec![
            (META_TIME.to_owned(), time.to_string()),
            (META_FORMAT.to_owned(), format.to_string()),
            (
                META_NATIVE.to_owned(),
                format!("{} {}", r.len, hex(&r.blake3)),
            ),
        ];
        let snap = self.lance.write_with(&space, meta).await?;
        self.lance
            .tag(timeline, version, snap.dataset_version)
            .await?;
        // an older native copy of the same id is superseded (removed only now, so a
        // failure before the tag leaves it in place)
        self.inner.delete(id).await?;
        Ok(r)
    }

    #[tracing::instrument(skip_all, fields(store = %self.inner.name(), artifact = %r.id))]
    async fn get(&self, r: &ArtifactRef) -> Result<Bytes> {
        let ArtifactId::Snapshot { version, timeline } = r.id else {
            return self.inner.get(r).await;
        };
        let Some(dv) = self.lance.tagged_version(timeline, version).await? else {
            return self.inner.get(r).await;
        };
        let native = self.native_of(r.id, dv).await?;
        let space = self.lance.restore(dv).await?;
        let bytes = tokio::task::spawn_blocking(move || {
            snapshot::encode_as(&space, native.time_us, native.format)
        })
        .await
        .map_err(|e| Error::Invalid {
            store: self.inner.name(),
            detail: format!("encoding task: {e}"),
        })?;
        let got = ArtifactRef::of(r.id, &bytes);
        if got.blake3 != r.blake3 || got.len != r.len || got.blake3 != native.blake3 {
            return Err(Error::Corrupt {
                store: self.inner.name(),
                artifact: r.id,
                detail: format!(
                    "Lance dataset version {dv} re-encodes to {} bytes, blake3 {}; expected {} bytes, blake3 {}",
                    got.len,
                    hex(&got.blake3),
                    r.len,
                    hex(&r.blake3)
                ),
            });
        }
        Ok(bytes.into())
    }

    async fn list(&self, kind: ArtifactKind, lo: u64, hi: u64) -> Result<Vec<ArtifactRef>> {
        let mut out = self.inner.list(kind, lo, hi).await?;
        if kind != ArtifactKind::Snapshot {
            return Ok(out);
        }
        for (t, v, dv) in self.lance.tagged().await? {
            if !(lo..=hi).contains(&v) {
                continue;
            }
            let id = ArtifactId::snapshot(v).on(t);
            let n = self.native_of(id, dv).await?;
            out.retain(|r| r.id != id);
            out.push(ArtifactRef {
                id,
                len: n.len,
                blake3: n.blake3,
            });
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn delete(&self, id: ArtifactId) -> Result<()> {
        self.inner.delete(id).await?;
        if let ArtifactId::Snapshot { version, timeline } = id {
            self.lance.forget(timeline, version).await?;
        }
        Ok(())
    }

    async fn read_manifest(&self) -> Result<Option<(u64, Manifest)>> {
        self.inner.read_manifest().await
    }

    async fn manifest_generation(&self) -> Result<u64> {
        self.inner.manifest_generation().await
    }

    async fn older_manifests(&self) -> Result<Vec<u64>> {
        self.inner.older_manifests().await
    }

    async fn read_manifest_at(&self, generation: u64) -> Result<Manifest> {
        self.inner.read_manifest_at(generation).await
    }

    async fn commit_manifest(&self, expected_generation: u64, manifest: &Manifest) -> Result<u64> {
        self.inner
            .commit_manifest(expected_generation, manifest)
            .await
    }

    async fn list_since(
        &self,
        kind: ArtifactKind,
        timeline: TimelineId,
        first: u64,
    ) -> Result<Vec<ArtifactRef>> {
        if kind != ArtifactKind::Snapshot {
            return self.inner.list_since(kind, timeline, first).await;
        }
        let mut v: Vec<ArtifactRef> = self
            .list(kind, first, u64::MAX)
            .await?
            .into_iter()
            .filter(|r| r.id.timeline() == timeline)
            .collect();
        v.sort_by_key(|r| r.id);
        Ok(v)
    }

    async fn holds(&self, r: &ArtifactRef) -> Result<bool> {
        if r.id.kind() != ArtifactKind::Snapshot {
            return self.inner.holds(r).await;
        }
        let (lo, hi) = r.id.versions();
        Ok(self.list(r.id.kind(), lo, hi).await?.contains(r))
    }

    async fn commit_manifest_fenced(
        &self,
        expected_generation: u64,
        manifest: &Manifest,
        lease: &Lease,
        now_us: u64,
    ) -> Result<u64> {
        self.inner
            .commit_manifest_fenced(expected_generation, manifest, lease, now_us)
            .await
    }

    async fn renew_lease(&self, lease: &Lease, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.inner.renew_lease(lease, now_us, ttl_us).await
    }

    async fn acquire_lease(&self, holder: &str, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.inner.acquire_lease(holder, now_us, ttl_us).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.inner.release_lease(lease).await
    }
}
