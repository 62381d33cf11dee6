//! The crate's one error type.

use crate::{Addr, ErrorKind};

/// Result alias used throughout `bindspace-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `bindspace-core`.
///
/// Decoding errors never panic and never allocate more than the input
/// justifies; each names what was being decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address does not exist in a space of this size.
    #[error("address {addr} is outside this space's {address_space} addresses")]
    AddrOutOfRange {
        /// The offending address.
        addr: Addr,
        /// How many addresses the space has.
        address_space: u32,
    },
    /// A fingerprint of the wrong width was offered to a space.
    #[error("fingerprint has {found} words, this space holds {expected}-word fingerprints")]
    WordCount {
        /// The space's word count.
        expected: usize,
        /// The fingerprint's word count.
        found: usize,
    },
    /// A schema or shape that this build cannot represent.
    #[error("invalid schema: {reason}")]
    InvalidSchema {
        /// Why it was refused.
        reason: String,
    },
    /// A dirty-tracking mark from an earlier epoch was used.
    #[error("mark of epoch {mark_epoch} is stale: the space is in epoch {current_epoch}")]
    StaleMark {
        /// The mark's epoch.
        mark_epoch: u64,
        /// The space's current epoch.
        current_epoch: u64,
    },
    /// The input ended before a complete structure was read.
    #[error("{what}: truncated, need {needed} bytes but only {available} are there")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The input does not start with the artifact magic.
    #[error("not a bindspace artifact (magic {found:02x?})")]
    BadMagic {
        /// The first eight bytes found.
        found: [u8; 8],
    },
    /// The artifact was written by a format version this build does not read.
    #[error(
        "artifact format version {found} is not supported (this build reads up to {supported})"
    )]
    UnsupportedFormat {
        /// Version in the header.
        found: u16,
        /// Highest version this build reads.
        supported: u16,
    },
    /// The artifact is of another kind than the decoder expects.
    #[error("artifact is a {found}, expected a {expected}")]
    WrongKind {
        /// What the caller asked for.
        expected: &'static str,
        /// What the header says.
        found: &'static str,
    },
    /// The header's own checksum does not match its bytes.
    #[error("artifact header checksum mismatch (header corrupted)")]
    HeaderChecksum,
    /// The payload does not hash to the blake3 recorded in the header.
    #[error(
        "artifact payload blake3 mismatch: header records {expected}, payload hashes to {actual}"
    )]
    PayloadChecksum {
        /// Hex blake3 recorded in the header.
        expected: String,
        /// Hex blake3 of the bytes found.
        actual: String,
    },
    /// The header's payload length disagrees with the bytes present.
    #[error("header declares a {declared}-byte payload but {actual} bytes follow")]
    PayloadLength {
        /// Length in the header.
        declared: u64,
        /// Bytes actually present.
        actual: u64,
    },
    /// A field holds a value this format does not define.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A space's state root differs from the one recorded for it: the content is not
    /// the state that was backed up (a damaged or forged artifact, or the wrong one).
    #[error(
        "{what}: state root {actual} differs from the recorded {expected}; prefixes that differ: {}",
        crate::root::prefix_list(prefixes)
    )]
    RootMismatch {
        /// What was checked ("snapshot at version 40", …).
        what: String,
        /// The recorded root (hex).
        expected: String,
        /// The root of what was produced (hex).
        actual: String,
        /// The prefixes whose digests differ.
        prefixes: Vec<u8>,
    },
    /// An Arrow batch that does not have the BindSpace schema.
    #[error("arrow batch rejected: {reason}")]
    Arrow {
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    /// What the error means for the caller: damaged bytes are [`ErrorKind::Corrupt`],
    /// everything else was asked wrongly ([`ErrorKind::Invalid`]).
    pub fn kind(&self) -> ErrorKind {
        if self.is_corruption()
            || matches!(
                self,
                Error::UnsupportedFormat { .. } | Error::WrongKind { .. }
            )
        {
            ErrorKind::Corrupt
        } else {
            ErrorKind::Invalid
        }
    }

    /// True when the error means stored bytes are damaged or hostile (retrying will not help;
    /// another copy of the artifact might).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Truncated { .. }
                | Error::BadMagic { .. }
                | Error::HeaderChecksum
                | Error::PayloadChecksum { .. }
                | Error::PayloadLength { .. }
                | Error::Malformed { .. }
                | Error::RootMismatch { .. }
        )
    }
}
