//! The in-memory delta.

use bindspace_core::{Addr, Fingerprint, SchemaVersion};

/// What happened to one address between two versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The address was occupied and is now empty (tag 0).
    Deleted,
    /// The address was empty and now holds this fingerprint (tag 1).
    Created(Fingerprint),
    /// The address stays occupied; XOR its fingerprint with this (tag 2, never all zero).
    Changed(Fingerprint),
    /// The address was occupied and now holds this fingerprint, old value unknown
    /// (tag 3). Arises only from composing a delete with a later create.
    Replaced(Fingerprint),
}

impl Change {
    /// The wire tag.
    pub fn tag(&self) -> u8 {
        match self {
            Change::Deleted => 0,
            Change::Created(_) => 1,
            Change::Changed(_) => 2,
            Change::Replaced(_) => 3,
        }
    }
}

/// One address's change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The address.
    pub addr: Addr,
    /// Its change.
    pub change: Change,
}

/// The changes that take a space from `from_version` to `to_version`, sorted by
/// address, at most one entry per address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// Version the delta applies to.
    pub from_version: u64,
    /// Version it produces.
    pub to_version: u64,
    /// Wall-clock time of `to_version`, µs since the epoch.
    pub timestamp_us: u64,
    /// Schema of both ends (word count and address space must match the space).
    pub schema: SchemaVersion,
    /// Entries, strictly ascending by address.
    pub entries: Vec<Entry>,
}

/// Counts describing a delta.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Addresses created.
    pub created: usize,
    /// Addresses whose fingerprint changed in place.
    pub changed: usize,
    /// Addresses deleted.
    pub deleted: usize,
    /// Addresses replaced (delete then create, composed).
    pub replaced: usize,
    /// Words carried: non-zero XOR words of changes plus full fingerprints.
    pub nonzero_words: usize,
    /// Encoded size in bytes, header included.
    pub bytes: usize,
}

impl Delta {
    /// A delta with no entries (a version step that changed no content).
    pub fn empty(
        schema: SchemaVersion,
        from_version: u64,
        to_version: u64,
        timestamp_us: u64,
    ) -> Self {
        Delta {
            from_version,
            to_version,
            timestamp_us,
            schema,
            entries: Vec::new(),
        }
    }

    /// Whether the delta changes no address.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counts of [`DeltaStats`].
    pub fn stats(&self) -> DeltaStats {
        let mut s = DeltaStats {
            bytes: crate::encoded_len(self),
            ..Default::default()
        };
        for e in &self.entries {
            match &e.change {
                Change::Deleted => s.deleted += 1,
                Change::Created(fp) => {
                    s.created += 1;
                    s.nonzero_words += fp.words();
                }
                Change::Replaced(fp) => {
                    s.replaced += 1;
                    s.nonzero_words += fp.words();
                }
                Change::Changed(x) => {
                    s.changed += 1;
                    s.nonzero_words += x.iter().filter(|&&w| w != 0).count();
                }
            }
        }
        s
    }

    /// The entry for `addr`, if the delta touches it (binary search).
    pub fn get(&self, addr: Addr) -> Option<&Change> {
        self.entries
            .binary_search_by_key(&addr, |e| e.addr)
            .ok()
            .map(|i| &self.entries[i].change)
    }
}
