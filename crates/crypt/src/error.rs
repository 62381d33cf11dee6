//! The crate's one error type.

use bindspace_core::ErrorKind;

/// What can go wrong opening a keyring or an artifact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase or key file opens no key slot of this keyring (the keyring
    /// itself is intact: its checksum holds).
    #[error("wrong passphrase or key file: it opens no key slot of this repository's keyring")]
    WrongKey,
    /// Bytes that fail their checksum or authentication: damaged, or not what they
    /// claim to be (an object copied under another's name).
    #[error("{what}: {reason}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A key epoch the keyring does not hold (retired, or from another repository).
    #[error(
        "sealed with key epoch {0}, which this keyring does not hold (retired, or another repository's)"
    )]
    UnknownEpoch(u32),
    /// An operation the keyring refuses (removing its last slot, a bad cost setting).
    #[error("{0}")]
    Refused(String),
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Entropy(String),
}

impl Error {
    /// What the error means for the caller: whether a retry can help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::WrongKey | Error::Refused(_) | Error::UnknownEpoch(_) => ErrorKind::Invalid,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Entropy(_) => ErrorKind::Unavailable,
        }
    }

    pub(crate) fn corrupt(what: &'static str, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            what,
            reason: reason.into(),
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
