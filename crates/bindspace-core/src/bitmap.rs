//! A fixed-size bitmap over addresses, stored as `u64` words (bit `i` of word `i / 64`),
//! which serialises to bytes with bit `i` in byte `i / 8` at position `i % 8`.

/// A fixed-size set of bit positions.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Bitmap {
    words: Vec<u64>,
}

impl Bitmap {
    /// A bitmap of `bits` zero bits (`bits` must be a multiple of 64).
    pub fn new(bits: usize) -> Self {
        debug_assert_eq!(bits % 64, 0);
        Bitmap {
            words: vec![0; bits / 64],
        }
    }
    /// Number of bits.
    pub fn bits(&self) -> usize {
        self.words.len() * 64
    }
    /// Whether bit `i` is set.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }
    /// Sets bit `i`; returns whether it was set before.
    #[inline]
    pub fn set(&mut self, i: usize) -> bool {
        let w = &mut self.words[i / 64];
        let was = *w & (1 << (i % 64)) != 0;
        *w |= 1 << (i % 64);
        was
    }
    /// Clears bit `i`; returns whether it was set before.
    #[inline]
    pub fn clear(&mut self, i: usize) -> bool {
        let w = &mut self.words[i / 64];
        let was = *w & (1 << (i % 64)) != 0;
        *w &= !(1 << (i % 64));
        was
    }
    /// Number of set bits.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// The set positions in ascending order.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
    /// Maximal runs `start..end` of consecutive set bits, ascending.
    pub fn runs(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let bits = self.bits();
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            // skip zeros a word at a time where possible
            while pos < bits {
                let w = self.words[pos / 64] >> (pos % 64);
                if w == 0 {
                    pos = (pos / 64 + 1) * 64;
                    continue;
                }
                pos += w.trailing_zeros() as usize;
                break;
            }
            if pos >= bits {
                return None;
            }
            let start = pos;
            while pos < bits {
                let w = !self.words[pos / 64] >> (pos % 64);
                let ones = if w == 0 {
                    64 - pos % 64
                } else {
                    w.trailing_zeros() as usize
                };
                pos += ones;
                if ones == 0 || !pos.is_multiple_of(64) {
                    break;
                }
            }
            Some(start..pos.min(bits))
        })
    }
    /// The raw words.
    pub fn as_words(&self) -> &[u64] {
        &self.words
    }
    /// The raw words, mutably.
    pub(crate) fn as_words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }
    /// Clears every bit.
    pub fn clear_all(&mut self) {
        self.words.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_exactly_the_set_bits() {
        let mut b = Bitmap::new(256);
        for i in [0, 1, 2, 63, 64, 65, 127, 128, 200, 255] {
            b.set(i);
        }
        let runs: Vec<_> = b.runs().collect();
        assert_eq!(runs, vec![0..3, 63..66, 127..129, 200..201, 255..256]);
        let mut full = Bitmap::new(128);
        (0..128).for_each(|i| {
            full.set(i);
        });
        assert_eq!(full.runs().collect::<Vec<_>>(), vec![0..128]);
        assert_eq!(Bitmap::new(128).runs().count(), 0);
    }

    #[test]
    fn iter_ones_is_ascending_and_complete() {
        let mut b = Bitmap::new(192);
        for i in [5, 70, 191] {
            b.set(i);
        }
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![5, 70, 191]);
        assert_eq!(b.count_ones(), 3);
    }
}
