//! The BindSpace itself: a flat arena of fingerprints, an occupancy bitmap, a version
//! counter and a dirty log.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bitmap::Bitmap;
use crate::le::words_as_bytes;
use crate::root::RootCell;
use crate::{Addr, Error, Result, SchemaVersion};

/// Sentinel in the dirty log for "the address was empty when first touched".
const NO_PREIMAGE: u32 = u32::MAX;

/// An in-memory BindSpace.
///
/// Storage is one flat arena of `address_space × words` `u64`s plus an occupancy
/// bitmap; an empty slot's words are always zero, so the arena is canonical and the
/// [`digest`](BindSpace::digest) depends on content only.
///
/// Every committed change bumps [`version`](BindSpace::version) by one: the WAL's LSN
/// is the same number.
///
/// Dirty tracking: the space records, per epoch, which addresses changed and what they
/// held when first touched (a pre-image). [`BindSpace::mark`] starts a new epoch. A
/// write costs O(1) extra (plus one copy of the old fingerprint on the first touch of
/// an address in the epoch); listing the changes costs O(changed addresses).
///
/// ```
/// use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
/// let mut space = BindSpace::new(SchemaVersion::CURRENT.with_words(4)).unwrap();
/// let mark = space.mark();
/// let v = space.write(Addr::new(1, 2), &[1, 2, 3, 4]).unwrap();
/// assert_eq!(v, 1);
/// assert_eq!(space.read(Addr::new(1, 2)), Some(&[1u64, 2, 3, 4][..]));
/// let changed: Vec<_> = space.dirty_since(&mark).unwrap().map(|c| c.addr).collect();
/// assert_eq!(changed, vec![Addr::new(1, 2)]);
/// ```
#[derive(Clone)]
pub struct BindSpace {
    pub(crate) schema: SchemaVersion,
    words: usize,
    pub(crate) arena: Vec<u64>,
    pub(crate) occupied: Bitmap,
    len: usize,
    version: u64,
    dirty: DirtyLog,
    pub(crate) roots: RootCell,
}

#[derive(Clone)]
struct DirtyLog {
    epoch: u64,
    base_version: u64,
    touched: Bitmap,
    /// (address, index of its pre-image in `preimages` or `NO_PREIMAGE`), in first-touch order.
    list: Vec<(Addr, u32)>,
    preimages: Vec<u64>,
}

/// Epochs are unique in the process (0 is never handed out), so a mark taken on one
/// space is stale on every other space except its clones: a space rebuilt by a
/// migration or a decode cannot mistake an old space's mark for its own.
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// The start of a dirty-tracking epoch, returned by [`BindSpace::mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    epoch: u64,
    version: u64,
}

impl Mark {
    /// The space's version when the mark was taken.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// One address that changed since a mark: what it held then and what it holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirtyEntry<'a> {
    /// The address.
    pub addr: Addr,
    /// Its fingerprint when the mark was taken (`None` = empty).
    pub before: Option<&'a [u64]>,
    /// Its fingerprint now (`None` = empty).
    pub after: Option<&'a [u64]>,
}

/// A blake3 digest of a whole space's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Digest {
    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Digest> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *o = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Digest(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Buffers at least this large are hashed with blake3's multi-threaded `update_rayon`.
pub(crate) const RAYON_HASH_MIN: usize = 1 << 20;

/// Hashes `bytes` into `hasher`, using all cores for large inputs.
pub(crate) fn hash_into(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() >= RAYON_HASH_MIN {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
}

impl BindSpace {
    /// Addresses per progress step of [`BindSpace::map_into`] (a multiple of 64).
    pub const MAP_STEP: usize = 4096;

    /// An empty space of the given schema at version 0.
    pub fn new(schema: SchemaVersion) -> Result<Self> {
        schema.validate()?;
        let words = schema.words();
        let cap = schema.address_space as usize;
        Ok(BindSpace {
            schema,
            words,
            // vec![0; n] allocates zeroed memory lazily, so an empty space costs little RSS.
            arena: vec![0; cap * words],
            occupied: Bitmap::new(cap),
            len: 0,
            version: 0,
            dirty: DirtyLog {
                epoch: 0,
                base_version: 0,
                touched: Bitmap::new(cap),
                list: Vec::new(),
                preimages: Vec::new(),
            },
            roots: RootCell::new(cap),
        })
    }

    /// A minimal valid space (256 addresses, one word) to stand in while a real one is
    /// moved out.
    pub(crate) fn placeholder() -> Self {
        BindSpace::new(SchemaVersion::CURRENT.with_words(1).with_address_space(256))
            .expect("a one-word, 256-address schema is valid")
    }

    /// The space's schema.
    pub fn schema(&self) -> SchemaVersion {
        self.schema
    }
    /// Words per fingerprint.
    pub fn words(&self) -> usize {
        self.words
    }
    /// Number of addresses.
    pub fn address_space(&self) -> usize {
        self.occupied.bits()
    }
    /// The version of the last committed change.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Sets the version, for restore and replay, which reproduce a version recorded
    /// elsewhere. Normal writes bump it themselves.
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    /// Number of occupied addresses.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no address is occupied.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check_addr(&self, addr: Addr) -> Result<usize> {
        let i = addr.index();
        if i >= self.address_space() {
            return Err(Error::AddrOutOfRange {
                addr,
                address_space: self.schema.address_space,
            });
        }
        Ok(i)
    }

    fn slot(&self, i: usize) -> &[u64] {
        &self.arena[i * self.words..(i + 1) * self.words]
    }

    /// The fingerprint at `addr`, if any. Out-of-range addresses read as empty.
    pub fn read(&self, addr: Addr) -> Option<&[u64]> {
        let i = addr.index();
        (i < self.address_space() && self.occupied.get(i)).then(|| self.slot(i))
    }

    /// Whether `addr` is occupied.
    pub fn contains(&self, addr: Addr) -> bool {
        self.read(addr).is_some()
    }

    /// Records `addr`'s pre-image on its first touch in this epoch.
    fn touch(&mut self, i: usize) {
        if self.dirty.touched.set(i) {
            return;
        }
        let pre = if self.occupied.get(i) {
            let at = self.dirty.preimages.len();
            let (s, e) = (i * self.words, (i + 1) * self.words);
            self.dirty.preimages.extend_from_slice(&self.arena[s..e]);
            u32::try_from(at / self.words).expect("at most 65,536 pre-images per epoch")
        } else {
            NO_PREIMAGE
        };
        self.dirty.list.push((Addr(i as u16), pre));
    }

    /// Writes `fp` at `addr` and bumps the version, which it returns.
    pub fn write(&mut self, addr: Addr, fp: &[u64]) -> Result<u64> {
        let i = self.check_addr(addr)?;
        if fp.len() != self.words {
            return Err(Error::WordCount {
                expected: self.words,
                found: fp.len(),
            });
        }
        self.touch(i);
        self.roots.get_mut().note(i);
        let (s, e) = (i * self.words, (i + 1) * self.words);
        self.arena[s..e].copy_from_slice(fp);
        if !self.occupied.set(i) {
            self.len += 1;
        }
        self.version += 1;
        Ok(self.version)
    }

    /// Empties `addr` and bumps the version, which it returns with whether the address
    /// was occupied. Deleting an empty address is a committed no-op: it still takes a
    /// version, so the WAL and the space agree on numbering.
    pub fn delete(&mut self, addr: Addr) -> Result<(u64, bool)> {
        let i = self.check_addr(addr)?;
        let was = self.occupied.get(i);
        if was {
            self.touch(i);
            self.roots.get_mut().note(i);
            self.occupied.clear(i);
            let (s, e) = (i * self.words, (i + 1) * self.words);
            self.arena[s..e].fill(0);
            self.len -= 1;
        }
        self.version += 1;
        Ok((self.version, was))
    }

    /// Occupied addresses and their fingerprints, ascending by address.
    pub fn iter(&self) -> impl Iterator<Item = (Addr, &[u64])> + '_ {
        self.occupied
            .iter_ones()
            .map(move |i| (Addr(i as u16), self.slot(i)))
    }

    /// Maximal runs of consecutive occupied addresses with their words, contiguous in
    /// the arena: the fast path for encoders (a full space is one run).
    pub fn occupied_runs(&self) -> impl Iterator<Item = (std::ops::Range<usize>, &[u64])> + '_ {
        self.occupied.runs().map(move |r| {
            (
                r.clone(),
                &self.arena[r.start * self.words..r.end * self.words],
            )
        })
    }

    /// The arena words of the addresses in `range` (`range.len() × words` words; zero
    /// where an address is empty). Lets scans compare whole blocks with one `memcmp`.
    pub fn raw_words(&self, range: std::ops::Range<usize>) -> &[u64] {
        &self.arena[range.start * self.words..range.end * self.words]
    }

    /// The occupancy bitmap.
    pub fn occupancy(&self) -> &Bitmap {
        &self.occupied
    }

    /// Replaces the whole content from an occupancy bitmap and a filler that writes the
    /// words of each run of occupied addresses. Used by decoders: bypasses version bumps
    /// (the caller sets the version) and starts a new dirty epoch, so earlier marks go
    /// stale. Slots that were occupied and are not any more are zeroed; the rest of the
    /// arena is reused as is, which keeps a reload into a warm space free of page faults.
    pub(crate) fn load_raw(
        &mut self,
        occupancy: &[u64],
        mut fill: impl FnMut(std::ops::Range<usize>, &mut [u64]) -> Result<()>,
    ) -> Result<()> {
        let words = self.words;
        for (wi, (&old, &new)) in self.occupied.as_words().iter().zip(occupancy).enumerate() {
            let mut gone = old & !new;
            while gone != 0 {
                let i = wi * 64 + gone.trailing_zeros() as usize;
                gone &= gone - 1;
                self.arena[i * words..(i + 1) * words].fill(0);
            }
        }
        self.occupied.as_words_mut().copy_from_slice(occupancy);
        self.roots.get_mut().invalidate();
        self.len = self.occupied.count_ones();
        let runs: Vec<_> = self.occupied.runs().collect();
        for r in runs {
            let dst = &mut self.arena[r.start * words..r.end * words];
            fill(r, dst)?;
        }
        self.mark();
        Ok(())
    }

    /// A new space of `schema` (at least as many addresses as this one) built address by
    /// address from this one, at the same version: for every occupied address, `f(src,
    /// dst)` gets its fingerprint and the zeroed destination slot and returns whether
    /// the address stays occupied (a dropped slot is zeroed again). The arena is filled
    /// in one pass, in parallel on the rayon pool, without per-address bookkeeping: the
    /// fast path for schema migrations. `progress(done)` is called with the number of
    /// occupied source addresses done, every [`BindSpace::MAP_STEP`] addresses and at the end.
    pub fn map_into<F>(
        &self,
        schema: SchemaVersion,
        f: F,
        progress: &mut dyn FnMut(usize),
    ) -> Result<BindSpace>
    where
        F: Fn(&[u64], &mut [u64]) -> bool + Sync,
    {
        let mut out = BindSpace::new(schema)?;
        let n = self.address_space();
        if out.address_space() < n {
            return Err(Error::InvalidSchema {
                reason: format!(
                    "cannot map a space of {n} addresses into one of {}",
                    out.address_space()
                ),
            });
        }
        let ow = out.words;
        let mut keep = self.occupied.as_words().to_vec();
        let fill = |first: usize, dst: &mut [u64], keep: &mut [u64]| {
            for (k, bits) in keep.iter_mut().enumerate() {
                let mut rest = *bits;
                while rest != 0 {
                    let j = k * 64 + rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    let d = &mut dst[j * ow..(j + 1) * ow];
                    if !f(self.slot(first + j), d) {
                        d.fill(0);
                        *bits &= !(1u64 << (j % 64));
                    }
                }
            }
        };
        let mut done = 0;
        let steps = out.arena[..n * ow]
            .chunks_mut(Self::MAP_STEP * ow)
            .zip(keep.chunks_mut(Self::MAP_STEP / 64));
        for (step, (dst, kw)) in steps.enumerate() {
            let first = step * Self::MAP_STEP;
            // halves on 64-address boundaries, so each half owns whole bitmap words
            let half = kw.len() / 2;
            let (da, db) = dst.split_at_mut(half * 64 * ow);
            let (ka, kb) = kw.split_at_mut(half);
            done += ka
                .iter()
                .chain(kb.iter())
                .map(|w| w.count_ones() as usize)
                .sum::<usize>();
            rayon_core::join(|| fill(first, da, ka), || fill(first + half * 64, db, kb));
            progress(done);
        }
        out.occupied.as_words_mut()[..keep.len()].copy_from_slice(&keep);
        out.len = out.occupied.count_ones();
        out.version = self.version;
        out.mark();
        Ok(out)
    }

    /// Starts a new dirty-tracking epoch and returns its mark. Costs O(addresses
    /// changed in the previous epoch).
    pub fn mark(&mut self) -> Mark {
        for &(a, _) in &self.dirty.list {
            self.dirty.touched.clear(a.index());
        }
        self.dirty.list.clear();
        self.dirty.preimages.clear();
        self.dirty.epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
        self.dirty.base_version = self.version;
        Mark {
            epoch: self.dirty.epoch,
            version: self.version,
        }
    }

    /// [`BindSpace::mark`], dated `version` (at most the space's): for a caller that
    /// knows the records since `version` changed nothing (a WAL checkpoint), so a
    /// delta from this mark continues a backup taken at `version`.
    ///
    /// # Panics
    /// If `version` is past the space's version (a caller's bug, not data).
    pub fn mark_unchanged_since(&mut self, version: u64) -> Mark {
        assert!(
            version <= self.version,
            "a mark at {version} for a space at {}",
            self.version
        );
        let mut m = self.mark();
        m.version = version;
        self.dirty.base_version = version;
        m
    }

    /// Number of distinct addresses touched since the current mark.
    pub fn dirty_count(&self) -> usize {
        self.dirty.list.len()
    }

    /// The addresses changed since `mark`, in first-touch order, with their old and new
    /// content. Addresses touched but restored to their old content are included with
    /// `before == after`; callers that want only real changes compare them.
    pub fn dirty_since(&self, mark: &Mark) -> Result<impl Iterator<Item = DirtyEntry<'_>> + '_> {
        if mark.epoch != self.dirty.epoch {
            return Err(Error::StaleMark {
                mark_epoch: mark.epoch,
                current_epoch: self.dirty.epoch,
            });
        }
        let w = self.words;
        Ok(self.dirty.list.iter().map(move |&(addr, pre)| DirtyEntry {
            addr,
            before: (pre != NO_PREIMAGE)
                .then(|| &self.dirty.preimages[pre as usize * w..(pre as usize + 1) * w]),
            after: self.read(addr),
        }))
    }

    /// A blake3 digest of the content (schema shape, occupancy, fingerprints), not of
    /// the version or the dirty log. Two spaces with equal digests hold equal content.
    pub fn digest(&self) -> Digest {
        let mut h = blake3::Hasher::new();
        h.update(b"bindspace-digest-v1");
        h.update(&(self.words as u32).to_le_bytes());
        h.update(&self.schema.address_space.to_le_bytes());
        h.update(&words_as_bytes(self.occupied.as_words()));
        hash_into(&mut h, &words_as_bytes(&self.arena));
        Digest(*h.finalize().as_bytes())
    }

    /// Content equality: same schema, occupancy and fingerprints (version ignored).
    pub fn content_eq(&self, other: &BindSpace) -> bool {
        self.schema == other.schema && self.occupied == other.occupied && self.arena == other.arena
    }
}

/// Equality of content *and* version (the dirty log is not compared).
impl PartialEq for BindSpace {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.content_eq(other)
    }
}
impl Eq for BindSpace {}

impl fmt::Debug for BindSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindSpace")
            .field("schema", &self.schema)
            .field("version", &self.version)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BindSpace {
        BindSpace::new(SchemaVersion::CURRENT.with_words(3).with_address_space(512))
            .expect("valid schema")
    }

    #[test]
    fn write_read_delete_track_len_and_version() {
        let mut s = small();
        assert_eq!(s.write(Addr(7), &[1, 2, 3]).unwrap(), 1);
        assert_eq!(s.write(Addr(7), &[4, 5, 6]).unwrap(), 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s.delete(Addr(7)).unwrap(), (3, true));
        assert_eq!(s.delete(Addr(7)).unwrap(), (4, false));
        assert_eq!(s.read(Addr(7)), None);
        assert!(s.is_empty());
        assert_eq!(
            s.digest(),
            small().digest(),
            "deletes leave a canonical arena"
        );
    }

    #[test]
    fn map_into_equals_writing_each_address() {
        // 8,192 addresses: two progress steps, each split over two halves
        let from = SchemaVersion::CURRENT
            .with_words(3)
            .with_address_space(8192);
        let to = from.with_words(5);
        let mut s = BindSpace::new(from).unwrap();
        for i in (0..8192u16).filter(|i| i % 3 != 0) {
            s.write(Addr(i), &[u64::from(i), 1, u64::from(i % 2)])
                .unwrap();
        }
        let mut steps = vec![];
        let f = |src: &[u64], dst: &mut [u64]| {
            dst[0] = src[0];
            dst[4] = src[1];
            src[2] == 0 // odd addresses are dropped
        };
        let out = s.map_into(to, f, &mut |d| steps.push(d)).unwrap();
        let mut expected = BindSpace::new(to).unwrap();
        for (a, fp) in s.iter() {
            let mut d = [0u64; 5];
            if f(fp, &mut d) {
                expected.write(a, &d).unwrap();
            }
        }
        assert!(out.content_eq(&expected));
        assert_eq!(out.digest(), expected.digest(), "dropped slots are zeroed");
        assert_eq!((out.version(), out.len()), (s.version(), expected.len()));
        assert_eq!(steps.len(), 2);
        assert_eq!(steps.last().copied(), Some(s.len()));
        // into more addresses is fine, into fewer is refused
        assert!(
            s.map_into(to.with_address_space(65536), f, &mut |_| {})
                .is_ok()
        );
        assert!(matches!(
            s.map_into(to.with_address_space(4096), f, &mut |_| {}),
            Err(Error::InvalidSchema { .. })
        ));
    }

    #[test]
    fn a_mark_is_stale_on_any_other_space_but_valid_on_clones() {
        let mut a = small();
        let mark = a.mark();
        let clone = a.clone();
        assert!(clone.dirty_since(&mark).is_ok());
        let mut b = small();
        b.mark(); // same number of marks as `a`, still another space
        assert!(matches!(b.dirty_since(&mark), Err(Error::StaleMark { .. })));
        let mapped = a.map_into(
            a.schema(),
            |s, d| {
                d.copy_from_slice(s);
                true
            },
            &mut |_| {},
        );
        assert!(matches!(
            mapped.unwrap().dirty_since(&mark),
            Err(Error::StaleMark { .. })
        ));
        assert!(matches!(
            small().dirty_since(&mark),
            Err(Error::StaleMark { .. })
        ));
    }

    #[test]
    fn write_rejects_bad_shape_without_change() {
        let mut s = small();
        assert!(matches!(
            s.write(Addr(1), &[1, 2]),
            Err(Error::WordCount {
                expected: 3,
                found: 2
            })
        ));
        assert!(matches!(
            s.write(Addr(600), &[1, 2, 3]),
            Err(Error::AddrOutOfRange { .. })
        ));
        assert_eq!(s, small());
    }

    #[test]
    fn dirty_log_keeps_first_preimage_and_resets_on_mark() {
        let mut s = small();
        s.write(Addr(1), &[1, 1, 1]).unwrap();
        let m = s.mark();
        s.write(Addr(1), &[2, 2, 2]).unwrap();
        s.write(Addr(1), &[3, 3, 3]).unwrap();
        s.write(Addr(2), &[9, 9, 9]).unwrap();
        let d: Vec<_> = s.dirty_since(&m).unwrap().collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].before, Some(&[1u64, 1, 1][..]));
        assert_eq!(d[0].after, Some(&[3u64, 3, 3][..]));
        assert_eq!(d[1].before, None);
        let m2 = s.mark();
        assert!(matches!(s.dirty_since(&m), Err(Error::StaleMark { .. })));
        assert_eq!(s.dirty_since(&m2).unwrap().count(), 0);
    }

    #[test]
    fn schema_limits_are_enforced() {
        assert!(BindSpace::new(SchemaVersion::CURRENT.with_words(0)).is_err());
        assert!(BindSpace::new(SchemaVersion::CURRENT.with_words(5000)).is_err());
        assert!(BindSpace::new(SchemaVersion::CURRENT.with_address_space(300)).is_err());
        assert!(BindSpace::new(SchemaVersion::CURRENT.with_address_space(1 << 17)).is_err());
    }
}
