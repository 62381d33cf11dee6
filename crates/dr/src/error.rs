//! The crate's one error type.

use bindspace_core::ErrorKind;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a verification could not run at all (damage it finds is a finding in its
/// [`crate::Report`], never an error). Prescriptive: [`Error::kind`] says whether
/// trying again can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No store of the repository could be read.
    #[error("no store could be read: {0}")]
    NoStore(String),
    /// A replication refused before copying anything: no repository at the source,
    /// none at the target under `--must-exist`, another repository there, or a target
    /// catalog that must be repaired first.
    #[error("replication refused: {0}")]
    Refused(String),
    /// A catalog store failed while recording results or repairing.
    #[error(transparent)]
    Store(#[from] bindspace_catalog::Error),
}

impl Error {
    /// What the error means, for exit codes and retries.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoStore(_) => ErrorKind::Unavailable,
            Error::Refused(_) => ErrorKind::Invalid,
            Error::Store(e) => e.kind(),
        }
    }

    /// Whether trying again can help.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}
