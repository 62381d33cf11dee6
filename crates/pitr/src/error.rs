//! The crate's one error type.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// No store served an artifact intact.
    #[error("no store served {artifact} intact: {}", errors.join("; "))]
    Fetch {
        /// The artifact.
        artifact: String,
        /// Each store's failure.
        errors: Vec<String>,
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
