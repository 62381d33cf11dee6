//! # bindspace-catalog
//!
//! The repository model every tier shares, and the one storage interface they all
//! implement, so any backup restores from any tier into any other.
//!
//! What it is:
//! - [`BackupStore`]: typed artifacts (snapshots, deltas, WAL segments) addressed by
//!   [`ArtifactId`] and verified by blake3 on every read; the catalog [`Manifest`]
//!   committed with optimistic concurrency ([`BackupStore::commit_manifest`] fails
//!   with [`Error::Conflict`] when someone else committed first); a [`Lease`] so one
//!   backup writer runs per repository;
//! - [`BackupStoreExt`]: conveniences on top (copy between stores), not to be
//!   overridden;
//! - with the `conformance` feature, the suite every implementation must pass
//!   ([`conformance::run`]); the servers tests run against live in the test-only
//!   `bindspace-testkit` (no library crate starts a process).
//!
//! - [`Repository`]: destinations written together, the lease held around every
//!   backup, the catalog committed only after every byte is stored;
//!   [`retention`]: which backups a policy keeps, as a pure function.
//!
//! - [`StoreArchiver`]: the WAL's archiver on any set of stores; `ChunkAssembler`
//!   (in [`chunks`]): artifacts stored in chunks, reassembled and verified the same way
//!   by every chunked store.
//!
//! What it is not: no concrete store (those are `bindspace-store-*`), no scheduling,
//! no restore planning (`bindspace-pitr`).
//!
//! ```
//! use bindspace_catalog::{ArtifactId, Manifest};
//! let id = ArtifactId::delta(10, 20);
//! assert_eq!(id.to_string(), "delta 10..20");
//! assert_eq!(Manifest::default().entries.len(), 0);
//! ```

mod archiver;
mod artifact;
pub mod chunks;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod fallback;
mod lease;
mod manifest;
pub mod packed;
mod repo;
pub mod retention;
mod sealed;
mod space;
mod store;
pub mod timeline;
mod util;
mod verified;

pub use archiver::StoreArchiver;
pub use artifact::{
    ArtifactId, ArtifactKind, ArtifactRef, FIRST_TIMELINE, TimelineId, blake3_hex, parse_blake3_hex,
};
pub use bindspace_crypt::is_sealed;
pub use error::{Error, Result};
pub use fallback::{CatalogRead, read_catalog};
pub use lease::Lease;
pub use manifest::{
    BackupEntry, BackupKind, BackupStatus, DRILLS_KEPT, DrillRecord, ExpiredTimeline, LAYOUT,
    Manifest, NEWEST_LAYOUT, RestorePoint, Superseded,
};
pub use repo::{LEASE_TTL_US, NewBackup, Repository};
pub use retention::RetentionPolicy;
pub use sealed::{LOCKED, SealedStore, keyring_for_copy, keyring_is_newer, seal_context};
pub use space::{SPACE_NAME_MAX, SpaceName};
pub use store::{BackupStore, BackupStoreExt};
pub use timeline::{History, TimelineRecord};
pub use util::{redact_url, timed};
pub use verified::{Verified, VerifyLevel, VerifyLog, WalVerified};
