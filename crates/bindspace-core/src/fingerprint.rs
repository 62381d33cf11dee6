//! Fingerprints: a fixed (per space) number of `u64` words.

use std::fmt;
use std::ops::Deref;

use rand::{Rng, RngExt};

/// Default words per fingerprint (9,984 bits).
pub const FINGERPRINT_WORDS: usize = 156;

/// Largest word count this build accepts, from any source. Bounds the arena a decoder
/// may allocate for a header it has not yet verified against its payload.
pub const MAX_FINGERPRINT_WORDS: usize = 1024;

/// An owned fingerprint. Its width is a runtime property: schema migration resizes it.
///
/// ```
/// use bindspace_core::Fingerprint;
/// let mut a = Fingerprint::zeroed(4);
/// a.words_mut()[1] = 0b1010;
/// assert_eq!(a.words(), 4);
/// assert_eq!(a.count_ones(), 2);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(Box<[u64]>);

impl Fingerprint {
    /// A fingerprint of `words` zero words.
    pub fn zeroed(words: usize) -> Self {
        Fingerprint(vec![0; words].into_boxed_slice())
    }
    /// Wraps the given words.
    pub fn from_words(words: impl Into<Box<[u64]>>) -> Self {
        Fingerprint(words.into())
    }
    /// A fingerprint of uniformly random words.
    pub fn random(rng: &mut impl Rng, words: usize) -> Self {
        Fingerprint((0..words).map(|_| rng.random::<u64>()).collect())
    }
    /// Number of words.
    pub fn words(&self) -> usize {
        self.0.len()
    }
    /// The words, mutably.
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    /// XORs `other` into `self` word by word.
    ///
    /// # Panics
    /// If the widths differ (a programming error, never caused by input bytes).
    pub fn xor_assign(&mut self, other: &[u64]) {
        assert_eq!(
            self.0.len(),
            other.len(),
            "xor of fingerprints of different widths"
        );
        for (a, b) in self.0.iter_mut().zip(other) {
            *a ^= b;
        }
    }
}

impl Deref for Fingerprint {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        &self.0
    }
}

impl AsRef<[u64]> for Fingerprint {
    fn as_ref(&self) -> &[u64] {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({} words", self.0.len())?;
        for w in self.0.iter().take(2) {
            write!(f, " {w:016x}")?;
        }
        if self.0.len() > 2 {
            write!(f, " …")?;
        }
        write!(f, ")")
    }
}
