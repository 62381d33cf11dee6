//! The schema version every artifact and catalog entry carries.

use std::fmt;

use crate::{ADDRESS_SPACE, Error, FINGERPRINT_WORDS, MAX_FINGERPRINT_WORDS, Result};

/// The shape and feature set of a BindSpace, recorded in every artifact header.
///
/// `major` changes are incompatible; everything else is either compatible or
/// reachable by a named migration (see the `bindspace-schema-migrate` crate).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SchemaVersion {
    /// Incompatible format generations.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
    /// Fixes that change no bytes.
    pub patch: u16,
    /// Words per fingerprint.
    pub fingerprint_words: u16,
    /// Usable addresses: a multiple of 256 (whole prefixes), at most 65,536.
    pub address_space: u32,
    /// Feature bits (see `bindspace-schema-migrate` for the registry).
    pub features: u64,
}

impl SchemaVersion {
    /// Schema 1.0.0: 156-word fingerprints, 65,536 addresses, no features.
    pub const V1_0_0: SchemaVersion = SchemaVersion {
        major: 1,
        minor: 0,
        patch: 0,
        fingerprint_words: FINGERPRINT_WORDS as u16,
        address_space: ADDRESS_SPACE as u32,
        features: 0,
    };

    /// The schema this build writes by default.
    pub const CURRENT: SchemaVersion = SchemaVersion::V1_0_0;

    /// The current schema with another fingerprint width.
    pub const fn with_words(self, fingerprint_words: u16) -> Self {
        SchemaVersion {
            fingerprint_words,
            ..self
        }
    }

    /// The current schema with another address-space size.
    pub const fn with_address_space(self, address_space: u32) -> Self {
        SchemaVersion {
            address_space,
            ..self
        }
    }

    /// Words per fingerprint as a `usize`.
    pub const fn words(&self) -> usize {
        self.fingerprint_words as usize
    }

    /// Checks the shape is one this build can hold in memory.
    pub fn validate(&self) -> Result<()> {
        let words = self.words();
        if words == 0 || words > MAX_FINGERPRINT_WORDS {
            return Err(Error::InvalidSchema {
                reason: format!("fingerprint_words {words} is outside 1..={MAX_FINGERPRINT_WORDS}"),
            });
        }
        let a = self.address_space as usize;
        if a == 0 || a > ADDRESS_SPACE || !a.is_multiple_of(256) {
            return Err(Error::InvalidSchema {
                reason: format!(
                    "address_space {a} must be a non-zero multiple of 256 no larger than {ADDRESS_SPACE}"
                ),
            });
        }
        Ok(())
    }
}

impl Default for SchemaVersion {
    fn default() -> Self {
        SchemaVersion::CURRENT
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{} ({} words, {} addresses, features {:#x})",
            self.major,
            self.minor,
            self.patch,
            self.fingerprint_words,
            self.address_space,
            self.features
        )
    }
}
