//! # bindspace-wal
//!
//! A durable write-ahead log for a BindSpace: what turns "backed up every hour" into
//! "no acknowledged write is ever lost", and what lets point-in-time recovery reach
//! any single version.
//!
//! What it is:
//! - segment files of checksummed frames (`len | crc32c | record`, layout in
//!   `docs/FORMATS.md`), named by their first version;
//! - [`Wal::append`]: durable under a [`SyncPolicy`], with group commit (concurrent
//!   appenders share one `fdatasync`) and backpressure; a failed write or sync poisons
//!   the log until it is reopened;
//! - recovery in [`Wal::open`]: a torn tail is cut and reported, mid-log corruption
//!   refuses to open unless salvage is asked for;
//! - replay to a version or a time ([`Wal::replay`], [`Replayer`]);
//! - [`DurableSpace`]: append → apply → acknowledge, one version for log and space;
//! - checkpoint and archive through the [`Archiver`] trait ([`DirArchiver`] here, the
//!   object-store one lives in `bindspace-store-s3`).
//!
//! What it is not: no async runtime (callers on tokio use `spawn_blocking`), no
//! object-store or network code, no snapshots (that is `bindspace-core`).
//!
//! ```
//! use bindspace_core::{Addr, Fingerprint};
//! use bindspace_wal::{Op, SyncPolicy, Wal, WalOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let opts = WalOptions { sync: SyncPolicy::Always, ..WalOptions::default() };
//! let (wal, _) = Wal::open(dir.path(), opts).unwrap();
//! let v = wal
//!     .append(&[Op::Write(Addr::new(0, 1), Fingerprint::zeroed(156)), Op::Delete(Addr::new(0, 2))])
//!     .unwrap();
//! assert_eq!(v, 3); // two ops and the batch commit
//! ```

mod archive;
mod durable;
mod error;
pub mod fsio;
#[doc(hidden)]
pub mod group;
mod record;
mod replay;
pub mod segment;
mod sync;
mod wal;

pub use archive::{ArchiveError, Archiver, DirArchiver, SealedSegment};
pub use durable::DurableSpace;
pub use error::{Error, Result};
pub use record::{
    FrameError, MAX_NAME, MAX_RECORD, Op, Record, RecordOp, decode_frame, encode_frame,
};
pub use replay::{ReplayTarget, Replayer, apply_record};
pub use wal::{Recovery, Salvaged, SyncPolicy, TailTruncated, Wal, WalOptions, WalStats};
