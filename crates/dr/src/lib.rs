//! # bindspace-dr
//!
//! Disaster recovery for bindspace: proof that what a repository holds will restore.
//!
//! [`verify`] reads back what every store of a [`Repository`](bindspace_catalog::Repository)
//! holds, at one of three [levels](VerifyLevel), each including those below:
//!
//! - **checksum**: every artifact read back and checked against the blake3 and
//!   length its catalog records, without decoding; missing and damaged copies and
//!   orphans (objects no catalog entry names) are listed per store;
//! - **standard**: every header and WAL frame decoded; every delta's base present; each
//!   history's WAL archive checked for holes (each with the stores that fill it); the
//!   stores' catalogs compared; every schema one this build reads;
//! - **deep**: every restore point, every backup's version and a seeded sample of
//!   other points in time restored and compared with the state root recorded for it (no root
//!   recorded: "unverifiable", never "verified").
//!
//! Least recently verified artifacts are read first, within an optional time budget;
//! what was found intact is recorded in each store's catalog
//! ([`VerifyLog`](bindspace_catalog::VerifyLog)), so a repeat run reads only what is new
//! or due (every artifact again after [`VerifyOptions::recheck`]). With
//! [`VerifyOptions::repair`], a copy missing or damaged in one store and intact in
//! another is put back and checked on both ends.
//!
//! [`drill`] restores a target (by default the sentinel restore point a running engine
//! writes, `bindspace::Engine::drill`) from each store alone and from all together,
//! times each (RTO), measures how old the newest restorable state is (RPO), compares
//! both with targets and keeps the report in every store's catalog ([`history`]).
//!
//! What it is not: no concrete store (it works on any
//! [`BackupStore`](bindspace_catalog::BackupStore)), no scheduling (the engine runs it).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use bindspace_catalog::{BackupStore, NewBackup, Repository, VerifyLevel};
//! use bindspace_core::{BindSpace, Clock, ManualClock, SchemaVersion};
//! use bindspace_dr::{Outcome, VerifyOptions, verify};
//!
//! let store: Arc<dyn BackupStore> = Arc::new(
//!     bindspace_store_s3::ObjectBackupStore::from_url("memory://", Default::default()).unwrap(),
//! );
//! let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
//! let repo = Repository::new(vec![store], clock.clone(), "doc").unwrap();
//! repo.init().await.unwrap();
//! let space = BindSpace::new(SchemaVersion::CURRENT.with_words(4).with_address_space(256)).unwrap();
//! repo.write_backup(NewBackup::full(&space, clock.now_us())).await.unwrap();
//!
//! let opts = VerifyOptions { level: VerifyLevel::Standard, ..VerifyOptions::default() };
//! let report = verify(&repo, clock.as_ref(), &opts).await.unwrap();
//! assert_eq!(report.outcome(), Outcome::Clean);
//! assert_eq!(report.stores[0].checked, 1);
//! // a second run reads nothing: the full was verified moments ago
//! let again = verify(&repo, clock.as_ref(), &opts).await.unwrap();
//! assert_eq!((again.stores[0].checked, again.stores[0].fresh), (0, 1));
//! # });
//! ```

mod checks;
mod deep;
mod drill;
mod error;
mod replicate;
mod report;
mod sync;
mod verify;

pub use bindspace_catalog::VerifyLevel;
pub use drill::{
    DEFAULT_RPO_TARGET, DEFAULT_RTO_TARGET, DrillOptions, DrillReport, DrillRun, DrillTarget,
    Sentinel, drill, history,
};
pub use error::{Error, Result};
pub use replicate::{
    Follower, Lag, ReplicateOptions, ReplicationReport, replicate, replicate_until,
};
pub use report::{DeepCheck, Finding, Outcome, Report, StoreReport, WalGap};
pub use verify::{VerifyOptions, verify, verify_paced};
