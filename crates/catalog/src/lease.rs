//! The backup lease: one writer per repository.

use serde::{Deserialize, Serialize};

/// A held lease. `token` fences: a store refuses a release or renewal whose token is not
/// the current one, so a writer whose lease expired and was taken over cannot undo the
/// new holder's lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (e.g. `host:pid`).
    pub holder: String,
    /// When it was taken, µs since the epoch.
    pub since_us: u64,
    /// When it lapses unless renewed.
    pub expires_us: u64,
    /// Fencing token, unique per acquisition.
    pub token: String,
}

impl Lease {
    /// Encodes for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a lease always serialises")
    }
    /// The same lease (same token) extended to `now_us + ttl_us`: what a renewal stores.
    pub fn extended(&self, now_us: u64, ttl_us: u64) -> Lease {
        Lease {
            expires_us: now_us.saturating_add(ttl_us),
            ..self.clone()
        }
    }

    /// [`crate::Error::LeaseLost`] for this lease on `store`, saying what holds instead.
    pub fn lost(&self, store: &str, detail: impl Into<String>) -> crate::Error {
        crate::Error::LeaseLost {
            store: store.to_owned(),
            holder: self.holder.clone(),
            token: self.token.clone(),
            detail: detail.into(),
        }
    }

    /// Decodes from storage.
    pub fn from_json(b: &[u8]) -> Option<Self> {
        serde_json::from_slice(b).ok()
    }
}
