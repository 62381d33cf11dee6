//! The crate's one error type.

use bindspace_core::ErrorKind;

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One store's failure to serve an artifact.
#[derive(Debug)]
pub struct StoreFailure {
    /// The store's name.
    pub store: String,
    /// What went wrong (typed: ask its `kind()`).
    pub error: bindspace_catalog::Error,
}

/// Why a restore could not be planned or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stores do not hold what the target needs.
    #[error("cannot restore to {target}: {reason}")]
    NotRestorable {
        /// The target.
        target: String,
        /// What is missing.
        reason: String,
    },
    /// No store could be read at all: the repository may be intact. A retry once a
    /// store answers can help when one was down or slow (`retryable`), not when each
    /// refused (a bad URL, a damaged index).
    #[error("cannot restore to {target}: no store could be read: {detail}")]
    NoStoreReadable {
        /// The target.
        target: String,
        /// Each store's failure.
        detail: String,
        /// Whether any failure might pass.
        retryable: bool,
    },
    /// No store served an artifact intact.
    #[error("no store served {artifact} intact: {}", failures.iter().map(|f| f.error.to_string()).collect::<Vec<_>>().join("; "))]
    Fetch {
        /// The artifact.
        artifact: String,
        /// Each store's failure, in the order they were tried.
        failures: Vec<StoreFailure>,
    },
    /// A state the restore passed through (or ended at) is not the state a catalog
    /// recorded for that version: an artifact was altered, or belongs to another history.
    #[error(
        "the restored state at version {version} has root {actual}, but {by} recorded {expected}: the artifacts do not reproduce the recorded state"
    )]
    RootMismatch {
        /// The version checked.
        version: u64,
        /// Who recorded the root.
        by: String,
        /// The recorded root (hex).
        expected: String,
        /// The root of the restored state (hex).
        actual: String,
    },
    /// A bug: a task or invariant of the restore broke.
    #[error("internal error: {what}")]
    Internal {
        /// What broke.
        what: String,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] bindspace_catalog::Error),
    /// A snapshot did not decode.
    #[error(transparent)]
    Core(#[from] bindspace_core::Error),
    /// A delta did not decode or apply.
    #[error(transparent)]
    Delta(#[from] bindspace_xor_delta::Error),
    /// A WAL segment did not decode or replay.
    #[error(transparent)]
    Wal(#[from] bindspace_wal::Error),
}

impl Error {
    /// What the error means for the caller. A failed fetch is
    /// [`Unavailable`](ErrorKind::Unavailable) when any store's failure might pass
    /// (a retry can help), else [`Corrupt`](ErrorKind::Corrupt) when a copy was
    /// damaged, else the first failure's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotRestorable { .. } => ErrorKind::NotRestorable,
            Error::NoStoreReadable {
                retryable: true, ..
            } => ErrorKind::Unavailable,
            Error::NoStoreReadable { .. } => ErrorKind::NotRestorable,
            Error::Fetch { failures, .. } => {
                let kinds: Vec<ErrorKind> = failures.iter().map(|f| f.error.kind()).collect();
                if kinds.iter().any(|k| k.is_retryable()) {
                    ErrorKind::Unavailable
                } else if kinds.contains(&ErrorKind::Corrupt) {
                    ErrorKind::Corrupt
                } else {
                    kinds.first().copied().unwrap_or(ErrorKind::NotRestorable)
                }
            }
            Error::Internal { .. } => ErrorKind::Internal,
            Error::RootMismatch { .. } => ErrorKind::Corrupt,
            Error::Store(e) => e.kind(),
            Error::Core(e) => e.kind(),
            Error::Delta(e) => e.kind(),
            Error::Wal(e) => e.kind(),
        }
    }
}
