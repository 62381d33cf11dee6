//! The crate's one error type.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong planning or running a migration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No migration leads from one schema to the other.
    #[error("schema {from} cannot become {to}: {reason}")]
    Incompatible {
        /// Source schema.
        from: String,
        /// Target schema.
        to: String,
        /// Why.
        reason: String,
    },
    /// The plan loses data and the caller did not consent.
    #[error("the migration loses data and needs explicit consent (--allow-truncate): {}", warnings.join("; "))]
    NeedsConsent {
        /// The lossy warnings.
        warnings: Vec<String>,
    },
    /// The plan was made for another space (different schema or version).
    #[error(
        "the plan was made for schema {planned} at version {planned_version}, the space is {found} at version {found_version}"
    )]
    StalePlan {
        /// Planned source schema.
        planned: String,
        /// Planned source version.
        planned_version: u64,
        /// Actual schema.
        found: String,
        /// Actual version.
        found_version: u64,
    },
    /// The space or an artifact of the chain is invalid.
    #[error(transparent)]
    Core(#[from] bindspace_core::Error),
    /// A delta of the chain is invalid or does not apply.
    #[error(transparent)]
    Delta(#[from] bindspace_xor_delta::Error),
}

impl Error {
    /// What the error means for the caller: a migration that cannot or may not run as
    /// asked is [`Invalid`](bindspace_core::ErrorKind::Invalid); the wrapped errors
    /// keep their own kind.
    pub fn kind(&self) -> bindspace_core::ErrorKind {
        match self {
            Error::Core(e) => e.kind(),
            Error::Delta(e) => e.kind(),
            _ => bindspace_core::ErrorKind::Invalid,
        }
    }
}
