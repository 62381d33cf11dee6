//! The engine's one error type, and what each error means for the caller.

use bindspace_core::ErrorKind;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The WAL refused or failed.
    #[error(transparent)]
    Wal(#[from] bindspace_wal::Error),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] bindspace_catalog::Error),
    /// A restore failed.
    #[error(transparent)]
    Pitr(#[from] bindspace_pitr::Error),
    /// A space or snapshot is invalid.
    #[error(transparent)]
    Core(#[from] bindspace_core::Error),
    /// A delta failed.
    #[error(transparent)]
    Delta(#[from] bindspace_xor_delta::Error),
    /// A drill or verification could not run.
    #[error(transparent)]
    Dr(#[from] bindspace_dr::Error),
    /// A standby was promoted over this engine's history: it is fenced and takes no
    /// more writes (reopen on the promoted engine's repository, not here).
    #[error("fenced: {0}")]
    Fenced(String),
    /// The passphrase or key file opens no key slot of the encrypted repository (the
    /// keyring is intact: this is not damage).
    #[error(
        "wrong passphrase or key file: it opens no key slot of the encrypted repository at {0}"
    )]
    WrongKey(String),
    /// The encrypted repository's keyring is damaged, altered, or not this
    /// repository's: no store holds an intact copy that belongs here.
    #[error("keyring: {0}")]
    KeyringDamaged(String),
    /// Local file I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// What the error means for the caller (and for the engine's own retry loop): a
    /// retryable kind is retried with backoff; any other makes the next backup a full.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Invalid,
            Error::Wal(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::Pitr(e) => e.kind(),
            Error::Core(e) => e.kind(),
            Error::Delta(e) => e.kind(),
            Error::Dr(e) => e.kind(),
            Error::Io { .. } => ErrorKind::Unavailable,
            Error::Fenced(_) => ErrorKind::Fenced,
            Error::WrongKey(_) => ErrorKind::Invalid,
            Error::KeyringDamaged(_) => ErrorKind::Corrupt,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an I/O error to [`Error::Io`] saying what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
