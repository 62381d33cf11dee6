//! State roots: a digest of a space's content kept current from the writes themselves,
//! so every restorable point can record one and every restore can check it.
//!
//! The tree: a leaf per address (keyed blake3 of its words; all zeros for an empty
//! address), a group node per 16 addresses (hash of 16 leaves), a prefix node per
//! 8-bit prefix (hash of its 16 groups), and the root (hash of the space's shape and
//! its prefix nodes). A write marks its address stale in O(1); [`BindSpace::state_root`]
//! rehashes only the stale leaves, their groups and their prefixes, so a root after a 1%
//! change costs about 1% of hashing the space plus a few 512-byte nodes. A prefix node
//! is never rehashed from its 256 fingerprints unless all of them are stale.
//!
//! Byte layout of the trailer artifacts carry: `docs/FORMATS.md`, "State roots".

use std::fmt;
use std::sync::{Mutex, OnceLock};

use crate::bitmap::Bitmap;
use crate::le::words_as_bytes;
use crate::{BindSpace, Digest, Error, Result, SchemaVersion};

/// Addresses per group node.
pub const GROUP: usize = 16;
/// Addresses per prefix node (one 8-bit prefix).
pub const PREFIX: usize = 256;
/// Stale addresses beyond this fraction of the space make the next root a full rebuild
/// (cheaper than the bookkeeping, and it bounds the stale list's memory).
const REBUILD_DIVISOR: usize = 4;
/// Leaves hashed per task when rebuilding on the rayon pool.
const PAR_LEAVES: usize = 2048;

type Node = [u8; 32];

/// The keys of the four node kinds, so a leaf can never be read as a group or a root.
fn keys() -> &'static [Node; 4] {
    static KEYS: OnceLock<[Node; 4]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            blake3::derive_key("bindspace state root v1 leaf", b""),
            blake3::derive_key("bindspace state root v1 group", b""),
            blake3::derive_key("bindspace state root v1 prefix", b""),
            blake3::derive_key("bindspace state root v1 root", b""),
        ]
    })
}

fn leaf(words: &[u64], occupied: bool) -> Node {
    if !occupied {
        return [0; 32];
    }
    *blake3::keyed_hash(&keys()[0], &words_as_bytes(words)).as_bytes()
}

fn node(key: usize, children: &[Node]) -> Node {
    let mut h = blake3::Hasher::new_keyed(&keys()[key]);
    for c in children {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

fn root_of(schema: &SchemaVersion, prefixes: &[Digest]) -> Digest {
    let mut h = blake3::Hasher::new_keyed(&keys()[3]);
    for v in [
        schema.major,
        schema.minor,
        schema.patch,
        schema.fingerprint_words,
    ] {
        h.update(&v.to_le_bytes());
    }
    h.update(&schema.address_space.to_le_bytes());
    h.update(&schema.features.to_le_bytes());
    for p in prefixes {
        h.update(&p.0);
    }
    Digest(*h.finalize().as_bytes())
}

/// A space's state root and the prefix digests it is made of (one per 256 addresses).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StateRoot {
    root: Digest,
    prefixes: Vec<Digest>,
}

impl StateRoot {
    /// The root over `prefixes` for a space of `schema`'s shape; `None` if the count is
    /// not one per 256 addresses.
    pub fn from_prefixes(schema: &SchemaVersion, prefixes: Vec<Digest>) -> Option<StateRoot> {
        (prefixes.len() == Self::prefix_count(schema)).then(|| StateRoot {
            root: root_of(schema, &prefixes),
            prefixes,
        })
    }

    /// A root as something recorded it (a WAL checkpoint): `root` is not recomputed
    /// from `prefixes`, so a bogus record simply fails [`StateRoot::check`].
    pub fn from_recorded(root: Digest, prefixes: Vec<Digest>) -> StateRoot {
        StateRoot { root, prefixes }
    }

    /// A root recorded without its prefix digests (a format-3 delta carries only the
    /// root): [`StateRoot::check`] compares the roots, and a mismatch cannot name
    /// prefixes.
    pub fn root_only(root: Digest) -> StateRoot {
        StateRoot {
            root,
            prefixes: Vec::new(),
        }
    }

    /// Whether the prefix digests are known (not [`StateRoot::root_only`]).
    pub fn has_prefixes(&self) -> bool {
        !self.prefixes.is_empty()
    }

    /// Prefix digests a space of `schema` has.
    pub fn prefix_count(schema: &SchemaVersion) -> usize {
        schema.address_space as usize / PREFIX
    }

    /// Bytes of the trailer an artifact of `schema` carries: 32 per prefix.
    pub fn trailer_len(schema: &SchemaVersion) -> usize {
        Self::prefix_count(schema) * 32
    }

    /// The root digest.
    pub fn root(&self) -> Digest {
        self.root
    }

    /// The prefix digests, by prefix.
    pub fn prefixes(&self) -> &[Digest] {
        &self.prefixes
    }

    /// The prefixes whose digests differ (all of them if the shapes differ; none when
    /// either side knows only its root).
    pub fn differing_prefixes(&self, other: &StateRoot) -> Vec<u8> {
        if !self.has_prefixes() || !other.has_prefixes() {
            return Vec::new();
        }
        if self.prefixes.len() != other.prefixes.len() {
            return (0..self.prefixes.len().max(other.prefixes.len()))
                .map(|p| p as u8)
                .collect();
        }
        (self.prefixes.iter().zip(&other.prefixes))
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(p, _)| p as u8)
            .collect()
    }

    /// Appends the trailer (the prefix digests in order) to `out`.
    pub fn encode_trailer(&self, out: &mut Vec<u8>) {
        for p in &self.prefixes {
            out.extend_from_slice(&p.0);
        }
    }

    /// Reads a trailer of exactly [`StateRoot::trailer_len`] bytes.
    pub fn decode_trailer(schema: &SchemaVersion, bytes: &[u8]) -> Result<StateRoot> {
        if bytes.len() != Self::trailer_len(schema) {
            return Err(Error::Malformed {
                what: "state root trailer",
                reason: format!(
                    "{} bytes, a space of {} addresses needs {}",
                    bytes.len(),
                    schema.address_space,
                    Self::trailer_len(schema)
                ),
            });
        }
        let prefixes = bytes
            .chunks_exact(32)
            .map(|c| Digest(c.try_into().expect("chunks of 32")))
            .collect();
        Ok(StateRoot::from_prefixes(schema, prefixes).expect("count checked above"))
    }

    /// Checks `actual` (what a restore produced) against `self` (what was recorded):
    /// a mismatch names the prefixes that differ (when `self` recorded them).
    pub fn check(&self, actual: &StateRoot, what: &str) -> Result<()> {
        if self.root == actual.root && (!self.has_prefixes() || self.prefixes == actual.prefixes) {
            return Ok(());
        }
        let prefixes = self.differing_prefixes(actual);
        let what = if !self.has_prefixes() {
            format!("{what} (only its root was recorded, not its prefix digests)")
        } else if !actual.has_prefixes() {
            format!("{what} (the result's prefix digests are unknown)")
        } else if prefixes.is_empty() {
            format!("{what} (every prefix digest matches: the schemas differ)")
        } else {
            what.to_owned()
        };
        Err(Error::RootMismatch {
            what,
            expected: self.root.to_string(),
            actual: actual.root.to_string(),
            prefixes,
        })
    }
}

impl fmt::Debug for StateRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StateRoot({}, {} prefixes)",
            self.root,
            self.prefixes.len()
        )
    }
}

impl fmt::Display for StateRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

/// Formats prefix numbers for messages: `0x03, 0x41` (at most 16, then a count);
/// none: "unknown" ([`StateRoot::check`] says why in the message).
pub fn prefix_list(prefixes: &[u8]) -> String {
    if prefixes.is_empty() {
        return "unknown".into();
    }
    let mut s: Vec<String> = prefixes
        .iter()
        .take(16)
        .map(|p| format!("{p:#04x}"))
        .collect();
    if prefixes.len() > 16 {
        s.push(format!("and {} more", prefixes.len() - 16));
    }
    s.join(", ")
}

#[cfg(test)]
mod check_tests {
    use super::*;

    fn root(schema: &SchemaVersion, fill: u8) -> StateRoot {
        let n = StateRoot::prefix_count(schema);
        StateRoot::from_prefixes(schema, vec![Digest([fill; 32]); n]).expect("count")
    }

    #[test]
    fn a_root_alone_checks_the_root_and_says_the_prefixes_are_unknown() {
        let schema = SchemaVersion::CURRENT.with_words(4).with_address_space(512);
        let (a, b) = (root(&schema, 1), root(&schema, 2));
        let only = StateRoot::root_only(a.root());
        assert!(!only.has_prefixes());
        only.check(&a, "x").expect("the same root");
        let e = only.check(&b, "delta 1..2").unwrap_err().to_string();
        assert!(e.contains("delta 1..2 (only its root was recorded"), "{e}");
        assert!(e.contains("prefixes that differ: unknown"), "{e}");
        // with prefixes on both sides the differing ones are named
        let e = a.check(&b, "full").unwrap_err().to_string();
        assert!(e.contains("prefixes that differ: 0x00, 0x01"), "{e}");
        // a recorded root with prefixes never passes against a root alone
        assert!(a.check(&only, "x").is_err());
        assert!(only.differing_prefixes(&a).is_empty());
    }
}

/// The cached tree inside a [`BindSpace`].
#[derive(Clone)]
pub(crate) struct RootCache {
    leaves: Vec<Node>,
    groups: Vec<Node>,
    prefixes: Vec<Digest>,
    root: Digest,
    stale: Bitmap,
    list: Vec<u16>,
    /// Everything is stale: the next root rebuilds the tree (also the initial state).
    all: bool,
    /// Whether writes are tracked at all (off: every root is a rebuild).
    tracking: bool,
}

impl RootCache {
    pub fn new(addresses: usize) -> Self {
        RootCache {
            leaves: Vec::new(),
            groups: Vec::new(),
            prefixes: Vec::new(),
            root: Digest([0; 32]),
            stale: Bitmap::new(addresses),
            list: Vec::new(),
            all: true,
            tracking: true,
        }
    }

    /// Address `i` changed: O(1).
    #[inline]
    pub fn note(&mut self, i: usize) {
        if self.all || self.stale.set(i) {
            return;
        }
        self.list.push(i as u16);
        if self.list.len() > self.stale.bits() / REBUILD_DIVISOR {
            self.invalidate();
        }
    }

    /// Everything changed.
    pub fn invalidate(&mut self) {
        self.all = true;
        self.list.clear();
        self.stale.clear_all();
    }

    pub fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
        self.invalidate();
    }

    /// Brings the tree up to date with `arena`/`occupied` and returns the root.
    pub fn refresh(
        &mut self,
        schema: &SchemaVersion,
        arena: &[u64],
        occupied: &Bitmap,
    ) -> StateRoot {
        let n = occupied.bits();
        let words = schema.words();
        if self.leaves.len() != n {
            self.leaves = vec![[0; 32]; n];
            self.groups = vec![[0; 32]; n / GROUP];
            self.prefixes = vec![Digest([0; 32]); n / PREFIX];
            self.all = true;
        }
        let hash_leaf = |i: usize| leaf(&arena[i * words..(i + 1) * words], occupied.get(i));
        if self.all {
            par_fill(&mut self.leaves, 0, &hash_leaf);
            for (g, out) in self.groups.iter_mut().enumerate() {
                *out = node(1, &self.leaves[g * GROUP..(g + 1) * GROUP]);
            }
            for (p, out) in self.prefixes.iter_mut().enumerate() {
                *out = Digest(node(2, &self.groups[p * GROUP..(p + 1) * GROUP]));
            }
            self.stale.clear_all();
            self.list.clear();
            self.all = !self.tracking;
        } else if !self.list.is_empty() {
            let mut list = std::mem::take(&mut self.list);
            list.sort_unstable();
            let hashed = par_map(&list, &|i| hash_leaf(usize::from(i)));
            for (&i, h) in list.iter().zip(hashed) {
                self.leaves[usize::from(i)] = h;
                self.stale.clear(usize::from(i));
            }
            let mut last_group = usize::MAX;
            let mut last_prefix = usize::MAX;
            for &i in &list {
                let g = usize::from(i) / GROUP;
                if g != last_group {
                    last_group = g;
                    self.groups[g] = node(1, &self.leaves[g * GROUP..(g + 1) * GROUP]);
                }
            }
            for &i in &list {
                let p = usize::from(i) / PREFIX;
                if p != last_prefix {
                    last_prefix = p;
                    self.prefixes[p] = Digest(node(2, &self.groups[p * GROUP..(p + 1) * GROUP]));
                }
            }
            list.clear();
            self.list = list;
        } else {
            return StateRoot {
                root: self.root,
                prefixes: self.prefixes.clone(),
            };
        }
        self.root = root_of(schema, &self.prefixes);
        StateRoot {
            root: self.root,
            prefixes: self.prefixes.clone(),
        }
    }
}

/// Fills `out[j] = f(first + j)` on the rayon pool.
fn par_fill(out: &mut [Node], first: usize, f: &(dyn Fn(usize) -> Node + Sync)) {
    if out.len() <= PAR_LEAVES {
        for (j, o) in out.iter_mut().enumerate() {
            *o = f(first + j);
        }
        return;
    }
    let mid = out.len() / 2;
    let (a, b) = out.split_at_mut(mid);
    rayon_core::join(|| par_fill(a, first, f), || par_fill(b, first + mid, f));
}

/// `items.map(f)` on the rayon pool for long lists.
fn par_map(items: &[u16], f: &(dyn Fn(u16) -> Node + Sync)) -> Vec<Node> {
    if items.len() <= PAR_LEAVES {
        return items.iter().map(|&i| f(i)).collect();
    }
    let (a, b) = items.split_at(items.len() / 2);
    let (mut x, y) = rayon_core::join(|| par_map(a, f), || par_map(b, f));
    x.extend(y);
    x
}

/// The cache's cell in a space: writers (`&mut`) reach it without locking, readers
/// (`&`) take the uncontended lock to bring it up to date.
pub(crate) struct RootCell(Mutex<RootCache>);

impl RootCell {
    pub fn new(addresses: usize) -> Self {
        RootCell(Mutex::new(RootCache::new(addresses)))
    }
    #[inline]
    pub fn get_mut(&mut self) -> &mut RootCache {
        self.0.get_mut().unwrap_or_else(|e| e.into_inner())
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, RootCache> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clone for RootCell {
    fn clone(&self) -> Self {
        RootCell(Mutex::new(self.lock().clone()))
    }
}

impl BindSpace {
    /// The state root of the current content (schema shape, occupancy, fingerprints; not
    /// the version). Incremental: rehashes only what changed since the last call.
    ///
    /// ```
    /// use bindspace_core::{Addr, BindSpace, SchemaVersion};
    /// let schema = SchemaVersion::CURRENT.with_words(2).with_address_space(512);
    /// let mut a = BindSpace::new(schema).unwrap();
    /// let empty = a.state_root();
    /// a.write(Addr::new(1, 7), &[1, 2]).unwrap();
    /// let one = a.state_root();
    /// assert_eq!(empty.differing_prefixes(&one), vec![1]);
    /// a.delete(Addr::new(1, 7)).unwrap();
    /// assert_eq!(a.state_root(), empty);
    /// ```
    pub fn state_root(&self) -> StateRoot {
        self.roots
            .lock()
            .refresh(&self.schema, &self.arena, &self.occupied)
    }

    /// The state root rebuilt from every fingerprint, ignoring the cache (what
    /// [`BindSpace::state_root`] must equal; the baseline its cost is measured against).
    pub fn state_root_rebuilt(&self) -> StateRoot {
        RootCache::new(self.address_space()).refresh(&self.schema, &self.arena, &self.occupied)
    }

    /// Takes over the root tree of `copy`, a clone of this space taken when `mark` was
    /// (a backup computes the root on its copy, outside the writers' lock): the
    /// addresses written since the mark are marked stale again. Does nothing if `mark`
    /// is not this space's current mark.
    pub fn adopt_root(&mut self, copy: &BindSpace, mark: &crate::Mark) {
        if copy.schema != self.schema {
            return;
        }
        let Ok(changed) = self.dirty_since(mark) else {
            return;
        };
        let changed: Vec<usize> = changed.map(|d| d.addr.index()).collect();
        let mut cache = copy.roots.lock().clone();
        for i in changed {
            cache.note(i);
        }
        *self.roots.get_mut() = cache;
    }

    /// Turns the per-write root bookkeeping on (the default) or off (every
    /// [`BindSpace::state_root`] then rebuilds): for measuring what it costs writers.
    pub fn set_root_tracking(&mut self, on: bool) {
        self.roots.get_mut().set_tracking(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Addr;
    use proptest::prelude::*;

    fn schema() -> SchemaVersion {
        SchemaVersion::CURRENT
            .with_words(3)
            .with_address_space(1024)
    }

    proptest! {
        /// The incremental root equals a rebuild after any sequence of writes and
        /// deletes, with roots taken at arbitrary points in between.
        #[test]
        fn incremental_equals_rebuild(ops in prop::collection::vec((0u16..1024, any::<u8>(), any::<bool>(), any::<bool>()), 0..300)) {
            let mut s = BindSpace::new(schema()).unwrap();
            for (a, w, del, take) in ops {
                if del {
                    s.delete(Addr(a)).unwrap();
                } else {
                    s.write(Addr(a), &[u64::from(w), 0, 1]).unwrap();
                }
                if take {
                    prop_assert_eq!(s.state_root(), s.state_root_rebuilt());
                }
            }
            prop_assert_eq!(s.state_root(), s.state_root_rebuilt());
            let t = StateRoot::decode_trailer(&s.schema(), &{
                let mut v = Vec::new();
                s.state_root().encode_trailer(&mut v);
                v
            }).unwrap();
            prop_assert_eq!(t, s.state_root());
        }
    }

    #[test]
    fn roots_name_the_prefixes_that_differ_and_tell_empty_from_zero() {
        let mut a = BindSpace::new(schema()).unwrap();
        let mut b = a.clone();
        a.write(Addr::new(2, 9), &[0, 0, 0]).unwrap();
        assert_ne!(
            a.state_root(),
            b.state_root(),
            "a zero fingerprint is not empty"
        );
        b.write(Addr::new(3, 1), &[5, 5, 5]).unwrap();
        assert_eq!(
            a.state_root().differing_prefixes(&b.state_root()),
            vec![2, 3]
        );
        let err = a.state_root().check(&b.state_root(), "test").unwrap_err();
        assert!(err.to_string().contains("0x02, 0x03"), "{err}");
        // another shape, same content: another root
        let wide = BindSpace::new(schema().with_address_space(2048)).unwrap();
        let narrow = BindSpace::new(schema()).unwrap();
        assert_ne!(wide.state_root().root(), narrow.state_root().root());
    }

    #[test]
    fn many_writes_fall_back_to_a_rebuild_and_clones_keep_their_own_tree() {
        let mut s = BindSpace::new(schema()).unwrap();
        s.state_root();
        for i in 0..1024u16 {
            s.write(Addr(i), &[u64::from(i), 1, 2]).unwrap();
        }
        let c = s.clone();
        s.delete(Addr(5)).unwrap();
        assert_eq!(s.state_root(), s.state_root_rebuilt());
        assert_eq!(c.state_root(), c.state_root_rebuilt());
        assert_ne!(s.state_root(), c.state_root());
        let mut off = c.clone();
        off.set_root_tracking(false);
        off.write(Addr(9), &[1, 1, 1]).unwrap();
        assert_eq!(off.state_root(), off.state_root_rebuilt());
    }

    #[test]
    fn a_live_space_adopts_the_tree_its_backup_copy_computed() {
        let mut live = BindSpace::new(schema()).unwrap();
        for i in 0..300u16 {
            live.write(Addr(i * 3), &[u64::from(i), 0, 0]).unwrap();
        }
        let mark = live.mark();
        let copy = live.clone();
        // writes after the copy was taken
        live.write(Addr(5), &[7, 7, 7]).unwrap();
        live.delete(Addr(3)).unwrap();
        let at_copy = copy.state_root();
        live.adopt_root(&copy, &mark);
        assert_eq!(live.state_root(), live.state_root_rebuilt());
        assert_ne!(live.state_root(), at_copy);
        // a stale mark adopts nothing (the space keeps its own tree)
        let old = live.mark();
        live.mark();
        live.write(Addr(9), &[1, 2, 3]).unwrap();
        live.adopt_root(&copy, &old);
        assert_eq!(live.state_root(), live.state_root_rebuilt());
    }

    #[test]
    fn bad_trailers_are_refused() {
        assert!(StateRoot::decode_trailer(&schema(), &[0; 31]).is_err());
        assert!(StateRoot::decode_trailer(&schema(), &[0; 4 * 32 + 1]).is_err());
        assert!(StateRoot::decode_trailer(&schema(), &[0; 4 * 32]).is_ok());
    }
}
