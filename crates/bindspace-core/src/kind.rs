//! [`ErrorKind`]: what any bindspace error means for the caller, shared by every
//! crate's error type (after SlateDB's RFC 0007), so a CLI maps kinds to exit codes in
//! one `match` and a retry loop asks the error instead of guessing.

use std::fmt;

/// What an error means for the caller. Every crate's error has a `kind()`.
///
/// `#[non_exhaustive]`: later kinds (e.g. `Fenced`, `Unauthorized`) come with their own
/// exit code and HTTP status; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A server, network or disk did not answer or failed: the same call may succeed
    /// later.
    Unavailable,
    /// Someone else holds what the call needs (a lease, a lock, a newer catalog
    /// generation): retry after they are done.
    Busy,
    /// What was asked for cannot be produced from what is stored (a missing artifact, a
    /// gap, an unknown restore point). Retrying will not help; another repository or
    /// target might.
    NotRestorable,
    /// Stored bytes are damaged (checksum, length, format). Another copy might serve;
    /// a retry of the same read will not.
    Corrupt,
    /// The request itself is wrong (bad argument, configuration, address or schema).
    Invalid,
    /// A bug or a broken invariant inside bindspace.
    Internal,
    /// A newer writer took over this history (a standby was promoted): this writer
    /// must stop. Retrying will not help.
    Fenced,
}

impl ErrorKind {
    /// Whether trying the same call again later can help.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Busy)
    }

    /// A short lowercase name (`unavailable`, `busy`, …) for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Busy => "busy",
            ErrorKind::NotRestorable => "not_restorable",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Internal => "internal",
            ErrorKind::Fenced => "fenced",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
