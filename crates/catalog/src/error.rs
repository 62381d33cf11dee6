//! The crate's one error type, shared by every store implementation.

use bindspace_core::ErrorKind;

use crate::ArtifactId;

/// Result alias for this crate and the stores.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a backup store. Prescriptive: [`Error::is_retryable`]
/// says whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The artifact or object does not exist.
    #[error("{store}: {what} not found")]
    NotFound {
        /// Which store.
        store: String,
        /// What was looked for.
        what: String,
    },
    /// Someone else committed the manifest first.
    #[error(
        "{store}: catalog commit conflict: expected generation {expected}, the store is at {found}"
    )]
    Conflict {
        /// Which store.
        store: String,
        /// Generation the committer started from.
        expected: u64,
        /// Generation found.
        found: u64,
    },
    /// Another backup writer holds the repository's lease.
    #[error(
        "{store}: backup in progress, held by {holder} since {since_us} (µs since the epoch; lease expires at {expires_us})"
    )]
    BackupInProgress {
        /// Which store.
        store: String,
        /// Who holds it.
        holder: String,
        /// Since when.
        since_us: u64,
        /// Until when, unless renewed.
        expires_us: u64,
    },
    /// Stored bytes do not match their recorded length or blake3.
    #[error("{store}: {artifact} is corrupt: {detail}")]
    Corrupt {
        /// Which store.
        store: String,
        /// Which artifact.
        artifact: ArtifactId,
        /// What does not match.
        detail: String,
    },
    /// A repository of a layout this build does not know (written by a newer one).
    #[error(
        "{store}: repository layout {layout} is not known to this build (it reads layouts 1 to {known}); use a newer bindspace"
    )]
    UnknownLayout {
        /// Which store.
        store: String,
        /// The layout found.
        layout: u32,
        /// The newest this build knows.
        known: u32,
    },
    /// The newest catalog generation is damaged: reads fall back to the newest intact
    /// one, and nothing is committed over it until a repair rebuilds it.
    #[error(
        "{store}: the newest catalog generation is damaged ({detail}); reads use {fallback}, and nothing is written to this store until a repair rebuilds its catalog (`bindspace verify --repair`)"
    )]
    CatalogDamaged {
        /// Which store.
        store: String,
        /// What is wrong with the newest generation.
        detail: String,
        /// What reads use instead.
        fallback: String,
    },
    /// A manifest that does not parse or verify.
    #[error("{store}: catalog manifest {what} is invalid: {detail}")]
    BadManifest {
        /// Which store.
        store: String,
        /// Which manifest object.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The store could not be reached or failed (network, server, disk). Retrying may
    /// help.
    #[error("{store}: {op} failed: {source}")]
    Unavailable {
        /// Which store.
        store: String,
        /// What was being done.
        op: String,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The operation did not finish in the configured time.
    #[error("{store}: {op} timed out after {after_ms} ms")]
    Timeout {
        /// Which store.
        store: String,
        /// What was being done.
        op: String,
        /// The limit.
        after_ms: u64,
    },
    /// A timeline a retention policy expired: backups, WAL archiving, restore points,
    /// A standby was promoted over this timeline: its old writer must stop (what it
    /// writes is never archived or backed up).
    #[error(
        "timeline {timeline} was taken over by {} (a standby promoted at {at_us} µs): this writer is fenced and must stop; its writes since are not in the repository", by.map_or("a promoted standby".to_owned(), |t| format!("timeline {t}"))
    )]
    TimelineSuperseded {
        /// The timeline.
        timeline: crate::TimelineId,
        /// The timeline that took over, once known.
        by: Option<crate::TimelineId>,
        /// When, µs since the epoch.
        at_us: u64,
    },
    /// branches and restores on it are refused.
    #[error(
        "timeline {timeline} was expired by the retention policy at {expired_us} µs since the epoch ({reason}): backups, WAL archiving, restore points, branches and restores on it are refused; restore another timeline (`bindspace timeline list`)"
    )]
    TimelineExpired {
        /// The timeline.
        timeline: u32,
        /// When it expired.
        expired_us: u64,
        /// Why.
        reason: String,
    },
    /// A lease holder's lease is no longer the repository's current one (it expired and
    /// another writer took it over, or it was released): its catalog commits and
    /// renewals are refused, so a stalled writer cannot overwrite its successor's work.
    /// The lease lives on the primary destination, whose catalog is committed first:
    /// a refused commit reached no secondary either. What the holder committed while
    /// its lease was current stays (when renewal finds the lease lost between the
    /// primary's commit and the secondaries', those may lag the primary until the next
    /// commit; secondaries are not fenced).
    #[error(
        "{store}: the backup lease {token} held by {holder} is no longer current ({detail}); the leased work stopped and commits nothing more under it"
    )]
    LeaseLost {
        /// Which store.
        store: String,
        /// Who held it.
        holder: String,
        /// Its fencing token.
        token: String,
        /// What the store holds instead.
        detail: String,
    },
    /// A request this store cannot serve as asked (bad URL, unsupported option).
    #[error("{store}: {detail}")]
    Invalid {
        /// Which store.
        store: String,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    /// What the error means for the caller (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unavailable { .. } | Error::Timeout { .. } => ErrorKind::Unavailable,
            Error::Conflict { .. } | Error::BackupInProgress { .. } | Error::LeaseLost { .. } => {
                ErrorKind::Busy
            }
            Error::Corrupt { .. } | Error::BadManifest { .. } | Error::CatalogDamaged { .. } => {
                ErrorKind::Corrupt
            }
            Error::NotFound { .. } | Error::TimelineExpired { .. } => ErrorKind::NotRestorable,
            Error::TimelineSuperseded { .. } => ErrorKind::Fenced,
            Error::Invalid { .. } | Error::UnknownLayout { .. } => ErrorKind::Invalid,
        }
    }

    /// Whether the same call might succeed later (the store was down or slow).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }
    /// The store the error happened on, when it names one (metrics label failures with
    /// it).
    pub fn store(&self) -> Option<&str> {
        match self {
            Error::NotFound { store, .. }
            | Error::Conflict { store, .. }
            | Error::BackupInProgress { store, .. }
            | Error::Corrupt { store, .. }
            | Error::UnknownLayout { store, .. }
            | Error::CatalogDamaged { store, .. }
            | Error::BadManifest { store, .. }
            | Error::Unavailable { store, .. }
            | Error::Timeout { store, .. }
            | Error::LeaseLost { store, .. }
            | Error::Invalid { store, .. } => Some(store),
            Error::TimelineSuperseded { .. } | Error::TimelineExpired { .. } => None,
        }
    }

    /// Whether stored bytes are damaged (another copy might serve; a retry will not).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::BadManifest { .. } | Error::CatalogDamaged { .. }
        )
    }
}
