//! What a restore returns to: the latest state, a version, a time or a named point.

use std::fmt;

/// What to restore to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The newest state any store can reach.
    Latest,
    /// Exactly this version.
    Version(u64),
    /// The last state at or before this time (µs since the epoch).
    Time(u64),
    /// A named restore point from the catalog.
    RestorePoint(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Latest => write!(f, "latest"),
            Target::Version(v) => write!(f, "version {v}"),
            Target::Time(t) => write!(f, "time {}", bindspace_core::clock::rfc3339_exact(*t)),
            Target::RestorePoint(n) => write!(f, "restore point {n:?}"),
        }
    }
}
