//! # bindspace-store-s3
//!
//! The cold tier: [`ObjectBackupStore`] implements `bindspace-catalog`'s
//! [`BackupStore`](bindspace_catalog::BackupStore) on any `object_store` backend: S3
//! (and S3-compatible servers), GCS and Azure behind cargo features, a local directory
//! (the embedded default, no server at all) and memory (tests). With the `lance`
//! feature, full snapshots are also written as versions of one Lance dataset
//! (`snapshots.lance`) through the same `Arc<dyn ObjectStore>`.
//!
//! What it is not: no scheduling and no restore planning; no Redis or PostgreSQL.
//!
//! Layout under the repository root:
//!
//! | key | holds |
//! |---|---|
//! | `snapshots/native/{version:020}.{blake3}` | native snapshots |
//! | `snapshots.lance/` | the Lance dataset (feature `lance`; `LanceBackupStore` keeps full snapshots only here) |
//! | `deltas/{from:020}-{to:020}.{blake3}` | XOR deltas |
//! | `wal/0/{first:020}-{last:020}.{blake3}` | archived WAL segments |
//! | `catalog/manifest-{generation:020}` | catalog manifests, one object per generation |
//! | `locks/backup-{seq:020}[.released]` | the backup lease, one object per acquisition |
//! | `spaces/{name}/…` | every other space of the repository, each with this same layout ([`ObjectBackupStore::in_space`]); the root is the space `default` |
//!
//! Every conditional write is `PutMode::Create` (put-if-absent), which S3, GCS, Azure,
//! the local file system and memory all support, so two writers can never both win.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use bindspace_catalog::{ArtifactId, BackupStore};
//! use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("file://{}", dir.path().display());
//! let store = ObjectBackupStore::from_url(&url, StoreOptions::default()).unwrap();
//! let r = store.put(ArtifactId::snapshot(1), "bytes".into()).await.unwrap();
//! assert_eq!(store.get(&r).await.unwrap(), "bytes");
//! # });
//! ```

#[cfg(feature = "lance")]
pub mod lance_snapshots;
#[cfg(feature = "lance")]
mod lance_store;
mod store;

#[cfg(feature = "lance")]
pub use lance_store::LanceBackupStore;

pub use store::{ObjectBackupStore, SPACES_DIR, StoreOptions};
