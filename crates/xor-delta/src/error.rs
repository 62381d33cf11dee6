//! The crate's one error type.

use bindspace_core::{Addr, SchemaVersion};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong computing, applying, composing or decoding deltas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The delta starts at another version than the space is at.
    #[error("delta applies to version {delta_from}, but the space is at version {space_version}")]
    VersionMismatch {
        /// The delta's `from_version`.
        delta_from: u64,
        /// The space's version.
        space_version: u64,
    },
    /// The two sides have different shapes (word count or address space).
    #[error("schema mismatch: {left} vs {right}")]
    SchemaMismatch {
        /// One side's schema.
        left: SchemaVersion,
        /// The other side's schema.
        right: SchemaVersion,
    },
    /// An entry does not fit the space it is applied to (e.g. "created" where the
    /// address is occupied): the delta was not computed against this state.
    #[error("delta entry at {addr} does not fit the space: {reason}")]
    Precondition {
        /// The address.
        addr: Addr,
        /// What does not fit.
        reason: &'static str,
    },
    /// Two deltas that do not follow each other were composed.
    #[error(
        "cannot compose: first delta ends at version {first_to}, second starts at {second_from}"
    )]
    NotContiguous {
        /// End of the first.
        first_to: u64,
        /// Start of the second.
        second_from: u64,
    },
    /// Two entries of composed deltas contradict each other.
    #[error("cannot compose at {addr}: {reason}")]
    Contradiction {
        /// The address.
        addr: Addr,
        /// The contradiction.
        reason: &'static str,
    },
    /// The encoded delta's structure is invalid.
    #[error("malformed delta at payload offset {offset}: {reason}")]
    Malformed {
        /// Byte offset in the payload.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// Header or checksum errors from the common artifact format, and space errors.
    #[error(transparent)]
    Core(#[from] bindspace_core::Error),
}

impl Error {
    /// What the error means for the caller: damaged bytes are
    /// [`ErrorKind::Corrupt`](bindspace_core::ErrorKind::Corrupt); a delta that does not
    /// fit the space it is applied to was asked wrongly
    /// ([`Invalid`](bindspace_core::ErrorKind::Invalid)).
    pub fn kind(&self) -> bindspace_core::ErrorKind {
        match self {
            Error::Core(e) => e.kind(),
            e if e.is_corruption() => bindspace_core::ErrorKind::Corrupt,
            _ => bindspace_core::ErrorKind::Invalid,
        }
    }

    /// True when stored bytes are damaged or hostile.
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Malformed { .. } => true,
            Error::Core(e) => e.is_corruption(),
            _ => false,
        }
    }
}
