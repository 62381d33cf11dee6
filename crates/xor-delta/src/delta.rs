//! The in-memory delta.

use bindspace_core::{Addr, Fingerprint, SchemaVersion, StateRoot};

/// What happened to one address between two versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The address was occupied and is now empty (tag 0).
    Deleted,
    /// The address was empty and now holds this fingerprint (tag 1).
    Created(Fingerprint),
    /// The address stays occupied; XOR its fingerprint with this (tag 2, never zero).
    Changed(Xor),
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

/// A sparse XOR mask: the non-zero words of `old ^ new`, by index. Never empty.
///
/// ```
/// use bindspace_xor_delta::Xor;
/// let x = Xor::between(&[1, 2, 3], &[1, 7, 3]).unwrap();
/// assert_eq!(x.nonzero(), &[(1, 2 ^ 7)]);
/// let mut fp = [1, 2, 3];
/// x.apply_to(&mut fp);
/// assert_eq!(fp, [1, 7, 3]);
/// assert!(Xor::between(&[4], &[4]).is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xor {
    width: usize,
    words: Vec<(u16, u64)>,
}

impl Xor {
    /// The mask taking `old` to `new` (equal widths), or `None` if they are equal.
    pub fn between(old: &[u64], new: &[u64]) -> Option<Xor> {
        debug_assert_eq!(old.len(), new.len());
        // Blocks of 8 words are OR-reduced branch-free (vectorised); only a block that
        // differs is walked word by word. Most changes touch a few words.
        const B: usize = 8;
        let mut words = Vec::new();
        let (oc, nc) = (old.chunks_exact(B), new.chunks_exact(B));
        let tail = oc.remainder().len();
        for (c, (o, n)) in oc.zip(nc).enumerate() {
            if o.iter().zip(n).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0 {
                continue;
            }
            for (j, (a, b)) in o.iter().zip(n).enumerate() {
                if a != b {
                    words.push(((c * B + j) as u16, a ^ b));
                }
            }
        }
        let start = old.len() - tail;
        for (j, (a, b)) in old[start..].iter().zip(&new[start..]).enumerate() {
            if a != b {
                words.push(((start + j) as u16, a ^ b));
            }
        }
        (!words.is_empty()).then_some(Xor {
            width: old.len(),
            words,
        })
    }

    /// From non-zero `(index, word)` pairs in ascending index order; `None` if empty
    /// or malformed (unsorted, zero words, index past `width`).
    pub fn from_nonzero(width: usize, words: Vec<(u16, u64)>) -> Option<Xor> {
        let sorted = words.windows(2).all(|w| w[0].0 < w[1].0);
        let valid = words.iter().all(|&(i, w)| w != 0 && (i as usize) < width);
        (!words.is_empty() && sorted && valid).then_some(Xor { width, words })
    }

    /// Words per fingerprint.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The non-zero words, ascending by index.
    pub fn nonzero(&self) -> &[(u16, u64)] {
        &self.words
    }

    /// XORs the mask into `fp`.
    pub fn apply_to(&self, fp: &mut [u64]) {
        for &(i, w) in &self.words {
            fp[i as usize] ^= w;
        }
    }

    /// `self` then `other` as one mask, or `None` if they cancel out.
    pub fn then(&self, other: &Xor) -> Option<Xor> {
        let mut out = Vec::with_capacity(self.words.len() + other.words.len());
        let (mut a, mut b) = (self.words.iter().peekable(), other.words.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(i, x)), Some(&&(j, y))) if i == j => {
                    if x != y {
                        out.push((i, x ^ y));
                    }
                    a.next();
                    b.next();
                }
                (Some(&&(i, x)), Some(&&(j, _))) if i < j => {
                    out.push((i, x));
                    a.next();
                }
                (Some(_), Some(&&(j, y))) => {
                    out.push((j, y));
                    b.next();
                }
                (Some(&&p), None) => {
                    out.push(p);
                    a.next();
                }
                (None, Some(&&p)) => {
                    out.push(p);
                    b.next();
                }
                (None, None) => break,
            }
        }
        (!out.is_empty()).then_some(Xor {
            width: self.width,
            words: out,
        })
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
    /// The prefix digests of the state the delta produces, when known (computed
    /// deltas always; decoded format-1 deltas never): [`crate::apply`] checks them.
    pub end_root: Option<StateRoot>,
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
            end_root: None,
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
                    s.nonzero_words += x.nonzero().len();
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
