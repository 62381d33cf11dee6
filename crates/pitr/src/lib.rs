//! # bindspace-pitr
//!
//! Point-in-time recovery. Given the stores a repository lives in (any
//! [`BackupStore`](bindspace_catalog::BackupStore): object store, Redis, PostgreSQL, in
//! priority order, as [`Sources`]) and a [`Target`], [`plan`] picks the newest full
//! snapshot at or before the target, the cheapest delta path from it (by bytes: one
//! differential beats many incrementals), then the archived WAL segments that replay to
//! the exact version or time. It lists every store, so a tier that is down or lacks a
//! link is simply not used: Redis flushed → snapshots from S3, deltas from PostgreSQL,
//! WAL from the archive. The plan prints as an explanation ([`RestorePlan`]'s
//! `Display`), owns the stores it was planned from, and [`restore`] runs it, fetching
//! each artifact from the first store that serves it intact (length and blake3 checked
//! here against the reference the plan was made from, whatever the store checked).
//! Every state it passes through that a catalog recorded a state root for is checked
//! against it, and [`restore_verified`] says whether the result itself was
//! ([`Verification`]: "verified", or "unverified: no root recorded").
//!
//! Flashback reads: [`as_of`] reads one address at a target without applying deltas or
//! WAL to any other address; [`versions`] lists an address's history from the WAL.
//!
//! Files: [`target`](Target), `inventory` ([`Sources`] and what they hold), `plan` (the
//! planner), `execute` (fetch, prefetch, apply, replay), `flashback`.
//!
//! What it is not: no scheduling, no writing of backups (`bindspace-catalog`'s
//! `Repository` and the engine do that).

mod error;
mod execute;
mod flashback;
mod follow;
mod inventory;
mod plan;
mod target;

pub use error::{Error, Result, StoreFailure};
pub use execute::{PREFETCH, Verification, restore, restore_to, restore_to_on, restore_verified};
pub use flashback::{AddrVersion, as_of, versions};
pub use follow::{Advance, advance, advance_since};
pub use inventory::Sources;
pub use plan::{RecordedRoot, RestorePlan, Step, plan, plan_on};
pub use target::Target;
