//! [`FaultyStore`]: a [`BackupStore`] wrapper that injects faults into chosen calls and
//! counts every call (after neon's `UnreliableWrapper` and object_store's throttled and
//! limited adapters).
//!
//! ```
//! use std::sync::Arc;
//! use bindspace_catalog::{ArtifactKind, BackupStore};
//! use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
//! use bindspace_testkit::{Fault, FaultyStore, Op};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let inner = ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap();
//! let s = FaultyStore::new(Arc::new(inner));
//! s.inject(Op::List, Fault::Fail, Some(1)); // the next listing fails, then heals
//! assert!(s.list(ArtifactKind::Snapshot, 0, u64::MAX).await.is_err());
//! assert!(s.list(ArtifactKind::Snapshot, 0, u64::MAX).await.is_ok());
//! assert_eq!(s.calls(Op::List), 2);
//! # });
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bindspace_catalog::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Error, Lease, Manifest, Result, TimelineId,
};
use bytes::Bytes;

/// A store operation (one per [`BackupStore`] method).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`BackupStore::put`].
    Put,
    /// [`BackupStore::get`].
    Get,
    /// [`BackupStore::list`].
    List,
    /// [`BackupStore::delete`].
    Delete,
    /// [`BackupStore::holds`].
    Holds,
    /// [`BackupStore::read_manifest`].
    ReadManifest,
    /// [`BackupStore::commit_manifest`].
    CommitManifest,
    /// [`BackupStore::acquire_lease`].
    AcquireLease,
    /// [`BackupStore::release_lease`].
    ReleaseLease,
    /// [`BackupStore::renew_lease`].
    RenewLease,
    /// [`BackupStore::list_since`].
    ListSince,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 11] = [
        Op::Put,
        Op::Get,
        Op::List,
        Op::Delete,
        Op::Holds,
        Op::ReadManifest,
        Op::CommitManifest,
        Op::AcquireLease,
        Op::ReleaseLease,
        Op::RenewLease,
        Op::ListSince,
    ];

    fn index(self) -> usize {
        Op::ALL
            .iter()
            .position(|o| *o == self)
            .expect("every Op is in ALL")
    }
}

/// What happens to a call a rule matches. `Corrupt` and `DropAfter` change data, so they
/// apply to `get` and `put`; on any other operation the call goes through unchanged
/// (it still counts as injected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with a retryable [`Error::Unavailable`] and does nothing.
    Fail,
    /// The call waits this long, then goes through.
    Delay(Duration),
    /// `get` returns the bytes with one bit flipped (a store that does not notice);
    /// `put` stores them so, returning the reference of the bytes it was given.
    Corrupt,
    /// The connection drops after this many bytes: `get` returns only them (a short
    /// read the store did not notice); `put` stores only them under the id and then
    /// fails with [`Error::Unavailable`] (a partial object left behind).
    DropAfter(usize),
}

#[derive(Debug)]
struct Rule {
    op: Op,
    fault: Fault,
    /// How many more calls it applies to; `None`: until [`FaultyStore::heal`].
    remaining: Option<u64>,
}

/// A [`BackupStore`] that injects faults (see the module docs). Rules apply in the
/// order they were added; the first that matches a call takes it.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn BackupStore>,
    rules: Mutex<Vec<Rule>>,
    calls: [AtomicU64; 11],
    injected: AtomicU64,
}

impl FaultyStore {
    /// Wraps `inner`; no faults until [`FaultyStore::inject`].
    pub fn new(inner: Arc<dyn BackupStore>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: Default::default(),
            injected: AtomicU64::new(0),
        })
    }

    /// From the next call of `op` on, `fault` for `times` calls (`None`: until
    /// [`FaultyStore::heal`]).
    pub fn inject(&self, op: Op, fault: Fault, times: Option<u64>) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Rule {
                op,
                fault,
                remaining: times,
            });
    }

    /// Removes every rule.
    pub fn heal(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many calls of `op` were made (faulty or not).
    pub fn calls(&self, op: Op) -> u64 {
        self.calls[op.index()].load(Ordering::SeqCst)
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn BackupStore> {
        &self.inner
    }

    /// Counts the call and takes the fault that applies to it, if any.
    fn enter(&self, op: Op) -> Option<Fault> {
        self.calls[op.index()].fetch_add(1, Ordering::SeqCst);
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let i = rules.iter().position(|r| r.op == op)?;
        let fault = rules[i].fault;
        if let Some(n) = &mut rules[i].remaining {
            *n -= 1;
            if *n == 0 {
                rules.remove(i);
            }
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }

    fn unavailable(&self, op: Op) -> Error {
        Error::Unavailable {
            store: self.inner.name(),
            op: format!("{op:?}"),
            source: Box::new(std::io::Error::other("injected fault")),
        }
    }

    /// Runs the fault that is not specific to the operation's data (fail, delay);
    /// returns the data fault to apply, if any.
    async fn before(&self, op: Op) -> Result<Option<Fault>> {
        match self.enter(op) {
            None => Ok(None),
            Some(Fault::Fail) => Err(self.unavailable(op)),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(None)
            }
            Some(f) => Ok(Some(f)),
        }
    }
}

fn flip_a_bit(b: &Bytes) -> Bytes {
    let mut v = b.to_vec();
    if let Some(x) = v.get_mut(b.len() / 2) {
        *x ^= 0x10;
    }
    v.into()
}

#[async_trait]
impl BackupStore for FaultyStore {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn seals(&self) -> bool {
        self.inner.seals()
    }

    async fn put(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        match self.before(Op::Put).await? {
            Some(Fault::Corrupt) => {
                let honest = ArtifactRef {
                    id,
                    len: bytes.len() as u64,
                    blake3: *blake3_of(&bytes).as_bytes(),
                };
                self.inner.put(id, flip_a_bit(&bytes)).await?;
                Ok(honest)
            }
            Some(Fault::DropAfter(k)) => {
                let _ = self.inner.put(id, bytes.slice(..k.min(bytes.len()))).await;
                Err(self.unavailable(Op::Put))
            }
            _ => self.inner.put(id, bytes).await,
        }
    }

    async fn get(&self, r: &ArtifactRef) -> Result<Bytes> {
        let fault = self.before(Op::Get).await?;
        let bytes = self.inner.get(r).await?;
        Ok(match fault {
            Some(Fault::Corrupt) => flip_a_bit(&bytes),
            Some(Fault::DropAfter(k)) => bytes.slice(..k.min(bytes.len())),
            _ => bytes,
        })
    }

    async fn list(&self, kind: ArtifactKind, lo: u64, hi: u64) -> Result<Vec<ArtifactRef>> {
        self.before(Op::List).await?;
        self.inner.list(kind, lo, hi).await
    }

    async fn delete(&self, id: ArtifactId) -> Result<()> {
        self.before(Op::Delete).await?;
        self.inner.delete(id).await
    }

    async fn read_manifest(&self) -> Result<Option<(u64, Manifest)>> {
        self.before(Op::ReadManifest).await?;
        self.inner.read_manifest().await
    }

    async fn manifest_generation(&self) -> Result<u64> {
        self.before(Op::ReadManifest).await?;
        self.inner.manifest_generation().await
    }

    async fn older_manifests(&self) -> Result<Vec<u64>> {
        self.before(Op::ReadManifest).await?;
        self.inner.older_manifests().await
    }

    async fn read_manifest_at(&self, generation: u64) -> Result<Manifest> {
        self.before(Op::ReadManifest).await?;
        self.inner.read_manifest_at(generation).await
    }

    async fn commit_manifest(&self, expected_generation: u64, manifest: &Manifest) -> Result<u64> {
        self.before(Op::CommitManifest).await?;
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
        self.before(Op::ListSince).await?;
        self.inner.list_since(kind, timeline, first).await
    }

    async fn holds(&self, r: &ArtifactRef) -> Result<bool> {
        self.before(Op::Holds).await?;
        self.inner.holds(r).await
    }

    /// Counts (and faults) as [`Op::CommitManifest`].
    async fn commit_manifest_fenced(
        &self,
        expected_generation: u64,
        manifest: &Manifest,
        lease: &Lease,
        now_us: u64,
    ) -> Result<u64> {
        self.before(Op::CommitManifest).await?;
        self.inner
            .commit_manifest_fenced(expected_generation, manifest, lease, now_us)
            .await
    }

    async fn renew_lease(&self, lease: &Lease, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.before(Op::RenewLease).await?;
        self.inner.renew_lease(lease, now_us, ttl_us).await
    }

    async fn acquire_lease(&self, holder: &str, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.before(Op::AcquireLease).await?;
        self.inner.acquire_lease(holder, now_us, ttl_us).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.before(Op::ReleaseLease).await?;
        self.inner.release_lease(lease).await
    }
}

fn blake3_of(b: &[u8]) -> blake3::Hash {
    blake3::hash(b)
}
