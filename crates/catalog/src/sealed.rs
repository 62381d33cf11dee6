//! A store that seals every artifact it puts and opens every one it gets (encryption
//! at rest, `bindspace-crypt`), over any other store, and packs (compresses,
//! [`crate::packed`]) what pays before sealing; [`SealedStore::packed`] only packs (an
//! unencrypted repository with compression on). What the inner store holds, and
//! what the catalog records (length, blake3), are the sealed bytes: checksum verify,
//! replication and repair work on the inner store without a key. Listing, deleting,
//! the catalog and the lease pass through.
//!
//! Each artifact is sealed bound to its identity (kind, timeline, versions) and the
//! repository, so an object copied under another artifact's name does not open. An
//! encrypted repository refuses to read a plaintext artifact.

use std::sync::Arc;

use async_trait::async_trait;
use bindspace_crypt::Keys;
use bytes::Bytes;

use crate::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Error, Lease, Manifest, Result, TimelineId,
};

/// [`BackupStore`] that encrypts what it stores.
pub struct SealedStore {
    inner: Arc<dyn BackupStore>,
    /// None: locked (no secret given): listing, the catalog and copies of stored bytes
    /// work; reading or writing an artifact's contents is refused, saying why.
    /// Some: the keys, and the keyring revision they were last brought to (a key
    /// rotation elsewhere is picked up before the next put).
    keys: Option<std::sync::Mutex<(u64, Arc<Keys>)>>,
    /// Not encrypted at all (only packing): what is stored is the packed or raw bytes.
    plain: bool,
    /// Pack what pays before sealing.
    pack: bool,
    /// The catalog generation whose keyring the keys were last checked against (0:
    /// none yet): an unchanged generation means an unchanged keyring, so a put costs
    /// one small generation query instead of reading and decoding the catalog.
    checked_generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SealedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedStore")
            .field("inner", &self.inner.name())
            .field(
                "epoch",
                &self.current_keys().ok().map(|k| k.current_epoch()),
            )
            .finish_non_exhaustive()
    }
}

/// Why a locked store refuses an artifact's contents.
pub const LOCKED: &str = "the repository is encrypted and no key was given: set BINDSPACE_PASSPHRASE (or BINDSPACE_PASSPHRASE_FILE, or BINDSPACE_KEY_FILE)";

/// Whether keyring `theirs` should replace `mine` (a catalog's copy): `mine` is
/// absent or does not decode while `theirs` does, or both are the same repository's
/// and `theirs` has the higher revision. Keyrings of different repositories never
/// replace each other.
pub fn keyring_is_newer(mine: Option<&str>, theirs: &str) -> bool {
    use bindspace_crypt::Keyring;
    let Ok(t) = Keyring::decode(theirs.as_bytes()) else {
        return false;
    };
    match mine.map(|m| Keyring::decode(m.as_bytes())) {
        None | Some(Err(_)) => true,
        Some(Ok(m)) => m.repository_id() == t.repository_id() && t.revision() > m.revision(),
    }
}

/// The keyring a copy of the repository (a replica) takes from `source`'s, over its
/// own `target`: `Ok(None)` when its own stays (not older); the source's, keeping the
/// epoch keys the source retired that the copy still holds (a copy may keep history
/// the source expired, sealed under them); refused (`Err`, saying why) when the source
/// retired epochs the copy holds after replacing the master key (the copy's wrapped
/// keys would not open under it: re-seal the copy first).
pub fn keyring_for_copy(
    target: Option<&str>,
    source: &str,
) -> std::result::Result<Option<String>, String> {
    use bindspace_crypt::Keyring;
    let Some(t) = target else {
        return Ok(Some(source.to_owned()));
    };
    if !keyring_is_newer(Some(t), source) {
        return Ok(None);
    }
    let (Ok(new), Ok(old)) = (
        Keyring::decode(source.as_bytes()),
        Keyring::decode(t.as_bytes()),
    ) else {
        // keyring_is_newer decoded the source; the copy's own does not decode
        return Ok(Some(source.to_owned()));
    };
    if let Some(kept) = new.keeping_retired_from(&old) {
        return Ok(Some(
            String::from_utf8(kept.encode()).expect("a keyring is JSON"),
        ));
    }
    let retired = new.retires_from(&old);
    if retired.is_empty() {
        return Ok(Some(source.to_owned()));
    }
    Err(format!(
        "the source's keyring (revision {}) replaced the master key and retired epochs {retired:?}, which this copy may still hold artifacts under: its keyring is kept (revision {}), and what the source seals from now on does not open here; re-seed this copy (`bindspace replicate` into an empty store) and retire this one once the new one verifies",
        new.revision(),
        old.revision()
    ))
}

/// What an artifact is, as bound into its seal.
pub fn seal_context(id: &ArtifactId) -> Vec<u8> {
    let (lo, hi) = id.versions();
    let kind = match id.kind() {
        ArtifactKind::Snapshot => "snapshot",
        ArtifactKind::Delta => "delta",
        ArtifactKind::WalSegment => "wal segment",
    };
    format!(
        "bindspace artifact {kind} timeline {} versions {lo}..={hi}",
        id.timeline()
    )
    .into_bytes()
}

impl SealedStore {
    /// Seals what goes into `inner` with `keys` (the current epoch).
    pub fn new(inner: Arc<dyn BackupStore>, keys: Arc<Keys>) -> SealedStore {
        SealedStore {
            inner,
            // never brought back below the keyring the keys were opened from
            keys: Some(std::sync::Mutex::new((keys.revision(), keys))),
            plain: false,
            pack: false,
            checked_generation: Default::default(),
        }
    }

    /// An unencrypted repository's store that packs what pays (compression on).
    pub fn packed(inner: Arc<dyn BackupStore>) -> SealedStore {
        SealedStore {
            inner,
            keys: None,
            plain: true,
            pack: true,
            checked_generation: Default::default(),
        }
    }

    /// The same store, packing what pays before sealing (`on`) or not. Reading
    /// unpacks either way.
    pub fn with_packing(mut self, on: bool) -> SealedStore {
        self.pack = on;
        self
    }

    /// What the inner store is given for `bytes` as `id`: packed where it pays, then
    /// sealed (an encrypted repository's store).
    fn encode(&self, id: ArtifactId, bytes: &Bytes) -> Result<Bytes> {
        let packed = if self.pack {
            let _span = tracing::debug_span!("pack", artifact = %id, bytes = bytes.len()).entered();
            crate::packed::pack(bytes, crate::packed::level_for(id.kind()))
        } else {
            None
        };
        if self.plain {
            return Ok(packed.map_or_else(|| bytes.clone(), Bytes::from));
        }
        let body: &[u8] = packed.as_deref().unwrap_or(bytes);
        Ok(Bytes::from(self.seal(id, body)?))
    }

    /// The artifact stored bytes of `r` hold: opened (encrypted), then unpacked.
    fn decode(&self, r: &ArtifactRef, stored: Bytes) -> Result<Bytes> {
        let body = if self.plain {
            if bindspace_crypt::is_sealed(&stored) {
                return Err(self.corrupt(
                    r.id,
                    "sealed (encrypted) in a repository whose catalog holds no keyring".into(),
                ));
            }
            stored
        } else {
            self.open(r, &stored)?
        };
        crate::packed::unpack(&self.inner.name(), r.id, body)
    }

    /// An encrypted repository's store opened without its keys: the catalog, listings
    /// and copies of stored bytes work; contents are refused with [`LOCKED`].
    pub fn locked(inner: Arc<dyn BackupStore>) -> SealedStore {
        SealedStore {
            inner,
            keys: None,
            plain: false,
            pack: false,
            checked_generation: Default::default(),
        }
    }

    fn current_keys(&self) -> std::result::Result<Arc<Keys>, ()> {
        let k = self.keys.as_ref().ok_or(())?;
        Ok(k.lock().unwrap_or_else(|e| e.into_inner()).1.clone())
    }

    fn keys(&self, id: ArtifactId) -> Result<Arc<Keys>> {
        self.current_keys().map_err(|()| Error::Invalid {
            store: self.inner.name(),
            detail: format!("{id}: {LOCKED}"),
        })
    }

    /// Brings the keys to the keyring the store's catalog holds now, when it is a
    /// newer revision of the same repository's (a `bindspace key rotate` elsewhere):
    /// new artifacts are then sealed under its current epoch, and one retired later
    /// never receives new artifacts. The catalog is read past a damaged newest
    /// generation; one that cannot be read at all, or a keyring that does not decode,
    /// refuses the write (sealing on with keys that may be stale could seal under an
    /// epoch already retired: nothing could open it). A keyring the master key no
    /// longer opens (the master key was replaced) refuses it too: reopen with the
    /// passphrase.
    async fn refresh(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let Some(cell) = &self.keys else {
            return Ok(());
        };
        let generation = self.inner.manifest_generation().await?;
        if generation != 0 && generation == self.checked_generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(read) = crate::read_catalog(self.inner.as_ref()).await? else {
            return Ok(());
        };
        // what was read is checked below; a failure returns before this is recorded
        let checked = read.newest;
        let Some(text) = read.manifest.keyring else {
            return Ok(());
        };
        let ring = bindspace_crypt::Keyring::decode(text.as_bytes()).map_err(|e| Error::Invalid {
            store: self.inner.name(),
            detail: format!(
                "the catalog's keyring does not decode ({e}): refusing to seal with keys that may be stale"
            ),
        })?;
        let (known, keys) = cell.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if ring.revision() <= known {
            self.checked_generation.store(checked, Ordering::Release);
            return Ok(());
        }
        let fresh = ring
            .unlock_with_master(&keys.export_master())
            .map_err(|e| Error::Invalid {
                store: self.inner.name(),
                detail: format!(
                    "the repository's keyring changed (revision {}) and the keys this store was opened with do not open it ({e}): the master key was replaced; reopen with the passphrase",
                    ring.revision()
                ),
            })?;
        if fresh.current_epoch() != keys.current_epoch() {
            tracing::info!(store = %self.inner.name(), epoch = fresh.current_epoch(), "sealing under the keyring's new epoch");
        }
        let mut g = cell.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 < ring.revision() {
            *g = (ring.revision(), Arc::new(fresh));
        }
        self.checked_generation.store(checked, Ordering::Release);
        Ok(())
    }

    /// The epoch this store seals new artifacts with now (`None`: not sealing).
    pub fn sealing_epoch(&self) -> Option<u32> {
        self.current_keys().ok().map(|k| k.current_epoch())
    }

    /// The sealed bytes of `bytes` as `id` (deterministic: the same on every store).
    fn seal(&self, id: ArtifactId, bytes: &[u8]) -> Result<Vec<u8>> {
        self.keys(id)?
            .seal(&seal_context(&id), bytes)
            .map_err(|e| Error::Invalid {
                store: self.inner.name(),
                detail: format!("sealing {id}: {e}"),
            })
    }

    fn open(&self, r: &ArtifactRef, sealed: &[u8]) -> Result<Bytes> {
        if !bindspace_crypt::is_sealed(sealed) {
            return Err(self.corrupt(
                r.id,
                "stored unencrypted in an encrypted repository (refused: an encrypted repository reads only sealed artifacts)".into(),
            ));
        }
        match self.keys(r.id)?.open(&seal_context(&r.id), sealed) {
            Ok(plain) => Ok(Bytes::from(plain)),
            Err(e @ bindspace_crypt::Error::UnknownEpoch(_)) => Err(Error::Invalid {
                store: self.inner.name(),
                detail: format!("{}: {e}", r.id),
            }),
            Err(e) => Err(self.corrupt(r.id, e.to_string())),
        }
    }

    /// The store underneath, which holds the sealed bytes (copy and checksum-verify
    /// through it: no key needed, and the bytes stay the ones the catalog records).
    pub fn inner(&self) -> &Arc<dyn BackupStore> {
        &self.inner
    }

    fn corrupt(&self, id: ArtifactId, detail: String) -> Error {
        Error::Corrupt {
            store: self.inner.name(),
            artifact: id,
            detail,
        }
    }
}

#[async_trait]
impl BackupStore for SealedStore {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn seals(&self) -> bool {
        !self.plain
    }

    async fn put(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        if self.plain {
            let stored = self.encode(id, &bytes)?;
            return self.inner.put(id, stored).await;
        }
        self.keys(id)?;
        self.refresh().await?;
        let stored = self.encode(id, &bytes)?;
        let epoch = bindspace_crypt::Keys::epoch_of(&stored).ok();
        let r = self.inner.put(id, stored).await?;
        // a key change may have landed while the bytes were on their way (a rotation
        // and a retirement by `key reencrypt`): what was sealed under an epoch retired
        // since is sealed again under the current one, so nothing stays under it
        self.refresh().await?;
        if epoch.is_some_and(|e| !self.keys(id).is_ok_and(|k| k.has_epoch(e))) {
            tracing::info!(artifact = %id, "sealed again: its epoch was retired during the put");
            let again = self.encode(id, &bytes)?;
            return self.inner.put(id, again).await;
        }
        Ok(r)
    }

    fn stored_ref(&self, id: ArtifactId, bytes: &[u8]) -> Result<ArtifactRef> {
        Ok(ArtifactRef::of(
            id,
            &self.encode(id, &Bytes::copy_from_slice(bytes))?,
        ))
    }

    async fn get(&self, r: &ArtifactRef) -> Result<Bytes> {
        if !self.plain {
            self.keys(r.id)?;
        }
        let stored = self.inner.get(r).await?;
        match self.decode(r, stored.clone()) {
            // sealed under an epoch begun after these keys were opened (a long-running
            // reader, e.g. a standby, after `key rotate`): the keyring again, once
            Err(Error::Invalid { detail, .. })
                if detail.contains("which this keyring does not hold") =>
            {
                self.refresh().await?;
                self.decode(r, stored)
            }
            other => other,
        }
    }

    async fn get_stored(&self, r: &ArtifactRef) -> Result<Bytes> {
        self.inner.get(r).await
    }

    async fn put_stored(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        if !self.plain && !bindspace_crypt::is_sealed(&bytes) {
            return Err(Error::Invalid {
                store: self.inner.name(),
                detail: format!(
                    "{id}: refused: plaintext into an encrypted repository (an encrypted repository stores only sealed artifacts)"
                ),
            });
        }
        self.inner.put(id, bytes).await
    }

    async fn open_stored(&self, r: &ArtifactRef, stored: Bytes) -> Result<Bytes> {
        self.decode(r, stored)
    }

    async fn list(&self, kind: ArtifactKind, lo: u64, hi: u64) -> Result<Vec<ArtifactRef>> {
        self.inner.list(kind, lo, hi).await
    }

    async fn list_since(
        &self,
        kind: ArtifactKind,
        timeline: TimelineId,
        first: u64,
    ) -> Result<Vec<ArtifactRef>> {
        self.inner.list_since(kind, timeline, first).await
    }

    async fn holds(&self, r: &ArtifactRef) -> Result<bool> {
        self.inner.holds(r).await
    }

    async fn delete(&self, id: ArtifactId) -> Result<()> {
        self.inner.delete(id).await
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
