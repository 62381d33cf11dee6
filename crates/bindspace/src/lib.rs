//! # bindspace
//!
//! The embeddable engine. [`Engine::open`] gives a durable BindSpace (every write goes
//! through the WAL before it is acknowledged) and protects it in the background:
//! the WAL's active segment is sealed and archived to every destination each
//! `archive_interval_ms` (the RPO when the local disk is lost), an incremental backup
//! goes out each `delta_interval_ms`, a full one each `full_snapshot_interval_ms` or
//! when the delta chain reaches `max_delta_chain` (compaction), and retention runs
//! after each full. A failing destination is retried with backoff and reported in
//! [`Engine::status`], never silently dropped. Writers only ever wait for a memcpy of
//! the space (full backups) or a walk of the addresses changed since the last backup.
//!
//! Restores go through [`bindspace_pitr`] over the same destinations
//! ([`Engine::restore`], or the `bindspace` CLI on a repository URL).
//!
//! Open it with [`Engine::open`], or [`Engine::builder`] to inject a clock (the
//! background schedule follows it: a test moves a manual clock and calls
//! [`Engine::tick`]) or destinations that are already open stores. Every error has a
//! [`kind`](Error::kind) that says whether a retry can help.
//!
//! What it is not: a network server; embed it, or serve its admin API with
//! `bindspace-http` (`bindspace serve`).
//!
//! ```
//! use bindspace::{BackupConfig, Engine};
//! use bindspace_core::{Addr, Fingerprint};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cfg = BackupConfig { fingerprint_words: 8, ..BackupConfig::default() };
//! let engine = Engine::open(dir.path(), cfg).unwrap();
//! let v = engine.write(Addr(7), Fingerprint::from_words(vec![1; 8])).unwrap();
//! let full = engine.backup_now(bindspace_catalog::BackupKind::Full).unwrap().expect("a full is always written");
//! assert_eq!(full.to_version, v);
//! let (space, _) = engine.restore(&bindspace_pitr::Target::Latest).unwrap();
//! assert_eq!(space.read(Addr(7)), Some(&[1u64; 8][..]));
//! ```

mod backup;
mod config;
mod datadir;
mod drill;
mod engine;
mod error;
mod jobs;
pub mod keys;
mod rewind;
mod schedule;
mod standby;
pub mod stores;

pub use config::BackupConfig;
pub use datadir::{Origin, PendingTimeline};
pub use engine::{DrillSummary, Engine, EngineBuilder, EngineStatus};
pub use error::{Error, Result};
pub use rewind::{Rewound, rewind};
pub use standby::Standby;
