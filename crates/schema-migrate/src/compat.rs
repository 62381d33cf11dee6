//! Which schema can become which, and by what steps.

use std::fmt;

use bindspace_core::{ADDRESS_SPACE, MAX_FINGERPRINT_WORDS, SchemaVersion};

use crate::features;

/// One step of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migration {
    /// Change the words per fingerprint: pad with zeros or truncate.
    FingerprintResize {
        /// Words before.
        from: u16,
        /// Words after.
        to: u16,
    },
    /// Make more addresses usable (whole prefixes, up to 65,536).
    AddressSpaceExpand {
        /// Addresses before.
        from: u32,
        /// Addresses after.
        to: u32,
    },
    /// Turn on features from the [`features`](crate::features) registry.
    FeatureUpgrade {
        /// The bits turned on.
        features: u64,
    },
}

impl Migration {
    /// The schema after this step.
    pub fn apply_to(&self, s: SchemaVersion) -> SchemaVersion {
        match *self {
            Migration::FingerprintResize { to, .. } => s.with_words(to),
            Migration::AddressSpaceExpand { to, .. } => s.with_address_space(to),
            Migration::FeatureUpgrade { features } => SchemaVersion {
                features: s.features | features,
                ..s
            },
        }
    }
}

impl fmt::Display for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Migration::FingerprintResize { from, to } if to >= from => {
                write!(f, "grow fingerprints {from} → {to} words (zero padding)")
            }
            Migration::FingerprintResize { from, to } => {
                write!(f, "shrink fingerprints {from} → {to} words (truncation)")
            }
            Migration::AddressSpaceExpand { from, to } => {
                write!(f, "expand the address space {from} → {to} addresses")
            }
            Migration::FeatureUpgrade { features } => {
                let names: Vec<&str> = features::REGISTRY
                    .iter()
                    .filter(|x| features & x.bit != 0)
                    .map(|x| x.name)
                    .collect();
                write!(f, "turn on feature(s) {}", names.join(", "))
            }
        }
    }
}

/// Whether data of one schema can be read under another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compatibility {
    /// Readable as is.
    Compatible,
    /// Readable after these steps, in order.
    NeedsMigration(Vec<Migration>),
    /// Not readable; why.
    Incompatible {
        /// Why.
        reason: String,
    },
}

/// The compatibility of data written under `from` with a reader at `to` (the rules are
/// in the crate documentation).
pub fn compatibility(from: SchemaVersion, to: SchemaVersion) -> Compatibility {
    let no = |reason: String| Compatibility::Incompatible { reason };
    if from.major != to.major {
        return no(format!(
            "major version {} → {}: a different format generation",
            from.major, to.major
        ));
    }
    for (s, which) in [(from, "source"), (to, "target")] {
        if let Err(e) = s.validate() {
            return no(format!("the {which} schema is invalid: {e}"));
        }
    }
    if to.words() > MAX_FINGERPRINT_WORDS {
        return no(format!(
            "{} words exceed this build's maximum {MAX_FINGERPRINT_WORDS}",
            to.words()
        ));
    }
    if to.address_space < from.address_space {
        return no(format!(
            "the address space cannot shrink ({} → {}): addresses would disappear",
            from.address_space, to.address_space
        ));
    }
    if to.address_space as usize > ADDRESS_SPACE {
        return no(format!(
            "format v1 addresses are 16-bit: at most {ADDRESS_SPACE} addresses, not {}",
            to.address_space
        ));
    }
    let removed = from.features & !to.features;
    if removed != 0 {
        return no(format!(
            "features {removed:#x} cannot be turned off once data was written with them"
        ));
    }
    let unknown = features::unknown_bits(to.features);
    if unknown != 0 {
        return no(format!(
            "feature bits {unknown:#x} are unknown to this build"
        ));
    }
    let mut steps = Vec::new();
    if from.fingerprint_words != to.fingerprint_words {
        steps.push(Migration::FingerprintResize {
            from: from.fingerprint_words,
            to: to.fingerprint_words,
        });
    }
    if from.address_space != to.address_space {
        steps.push(Migration::AddressSpaceExpand {
            from: from.address_space,
            to: to.address_space,
        });
    }
    let added = to.features & !from.features;
    if added != 0 {
        steps.push(Migration::FeatureUpgrade { features: added });
    }
    if steps.is_empty() {
        Compatibility::Compatible
    } else {
        Compatibility::NeedsMigration(steps)
    }
}
