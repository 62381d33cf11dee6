//! The crate's one error type.

use bindspace_core::ErrorKind;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed.
    #[error("WAL {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another open log holds the directory (a running engine, or a second open in
    /// this process): two writers would interleave frames.
    #[error("WAL directory {} is in use by another writer (is an engine running on it?)", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// An earlier write or sync failed; the log acknowledges nothing more until it is
    /// reopened, because after a failed fsync the kernel may have dropped the dirty
    /// pages and a retry could report success for lost data.
    #[error("WAL is poisoned and acknowledges nothing until reopened: {reason}")]
    Poisoned {
        /// The failure that poisoned it.
        reason: String,
    },
    /// A damaged frame with valid frames after it: not a torn tail. Opening refuses
    /// unless `WalOptions::salvage` is set.
    #[error("WAL corruption in {} at offset {offset}: {detail} (valid records follow; open with salvage to keep only what precedes it)", segment.display())]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the bad frame.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A segment whose header is damaged or does not match its name.
    #[error("bad WAL segment {}: {detail}", segment.display())]
    BadSegment {
        /// The segment file.
        segment: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Replay needs records the log no longer (or never) had.
    #[error("WAL gap: need version {need}, the log continues at {have}")]
    Gap {
        /// The version that was needed.
        need: u64,
        /// The version found instead.
        have: u64,
    },
    /// An operation that cannot be logged.
    #[error("invalid WAL operation: {reason}")]
    InvalidOp {
        /// Why.
        reason: String,
    },
    /// The archiver failed or did not confirm a segment.
    #[error("archiving WAL segment {first}..={last} failed: {source}")]
    Archive {
        /// First version of the segment.
        first: u64,
        /// Last version of the segment.
        last: u64,
        /// The archiver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Applying a record to a space failed.
    #[error(transparent)]
    Core(#[from] bindspace_core::Error),
}

impl Error {
    /// What the error means for the caller. A failed file operation or archive may
    /// succeed later ([`Unavailable`](ErrorKind::Unavailable)); a poisoned log needs a
    /// reopen, which a retry of the same call will not do
    /// ([`Internal`](ErrorKind::Internal)); a directory held by another writer is
    /// [`Busy`](ErrorKind::Busy); damaged frames and segments are
    /// [`Corrupt`](ErrorKind::Corrupt); records the log never had are
    /// [`NotRestorable`](ErrorKind::NotRestorable).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::Archive { .. } => ErrorKind::Unavailable,
            Error::Locked { .. } => ErrorKind::Busy,
            Error::Poisoned { .. } => ErrorKind::Internal,
            Error::Corruption { .. } | Error::BadSegment { .. } => ErrorKind::Corrupt,
            Error::Gap { .. } => ErrorKind::NotRestorable,
            Error::InvalidOp { .. } => ErrorKind::Invalid,
            Error::Core(e) => e.kind(),
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
