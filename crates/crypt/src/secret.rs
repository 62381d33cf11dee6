//! 256-bit keys (wiped when dropped, never printed) and where randomness comes from
//! (the operating system, or a seed in tests: injected, like the clock).

use zeroize::Zeroize;

use crate::{Error, Result};

/// A 256-bit key: the master key, an epoch's data key, or a key-encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Key {
    /// A key of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// A new random key.
    pub fn random(rng: &mut dyn Entropy) -> Result<Key> {
        let mut k = [0u8; 32];
        rng.fill(&mut k)?;
        Ok(Key(k))
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 lower-case hex digits (for `bindspace key export`).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A key from 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Option<Key> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut k = [0u8; 32];
        for (i, out) in k.iter_mut().enumerate() {
            *out = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Key(k))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Where random bytes come from: [`OsEntropy`] in production, [`SeededEntropy`] where
/// a test needs the same bytes every run (golden files).
pub trait Entropy: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<()>;
}

/// The operating system's randomness (`getrandom`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        getrandom::fill(buf).map_err(|e| Error::Entropy(e.to_string()))
    }
}

/// Deterministic bytes from a seed (blake3 in XOF mode): for tests and golden files
/// only, never for real keys.
pub struct SeededEntropy(blake3::OutputReader);

impl SeededEntropy {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        let mut h = blake3::Hasher::new_derive_key("bindspace-crypt seeded entropy (tests only)");
        h.update(&seed.to_le_bytes());
        SeededEntropy(h.finalize_xof())
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.0.fill(buf);
        Ok(())
    }
}
