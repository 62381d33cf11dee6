//! The registry of named features: each a bit in `SchemaVersion::features` and the data
//! migration that turns a space without it into one with it.

use bindspace_core::BindSpace;

/// A feature a schema can carry.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    /// Its bit in `SchemaVersion::features`.
    pub bit: u64,
    /// Its name, as the CLI takes it.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
    /// What turning it on does to an occupied fingerprint: `None` empties the address.
    pub migrate_entry: fn(&[u64]) -> Option<Vec<u64>>,
    /// Whether the entry migration can lose information (then the plan counts the
    /// affected addresses and asks for consent when there are any).
    pub lossy: bool,
}

/// `zero-is-empty`: an all-zero fingerprint means an empty address. With it, XOR
/// deltas need no separate "created"/"deleted" bookkeeping for zero values, and
/// `write(addr, 0)` is a delete. Turning it on empties every address that holds an
/// all-zero fingerprint (the plan counts them and warns: occupancy is information).
pub const ZERO_IS_EMPTY: Feature = Feature {
    bit: 1,
    name: "zero-is-empty",
    description: "an all-zero fingerprint means an empty address",
    migrate_entry: |fp| {
        if fp.iter().all(|&w| w == 0) {
            None
        } else {
            Some(fp.to_vec())
        }
    },
    lossy: true,
};

/// Every feature this build knows, by bit.
pub const REGISTRY: &[Feature] = &[ZERO_IS_EMPTY];

/// The feature with this bit.
pub fn by_bit(bit: u64) -> Option<&'static Feature> {
    REGISTRY.iter().find(|f| f.bit == bit)
}

/// The feature with this name.
pub fn by_name(name: &str) -> Option<&'static Feature> {
    REGISTRY.iter().find(|f| f.name == name)
}

/// Bits of `features` this build does not know.
pub fn unknown_bits(features: u64) -> u64 {
    REGISTRY.iter().fold(features, |acc, f| acc & !f.bit)
}

/// How many occupied addresses of `space` the feature's migration would change or
/// empty.
pub fn affected(feature: &Feature, space: &BindSpace) -> usize {
    space
        .iter()
        .filter(|(_, fp)| (feature.migrate_entry)(fp).as_deref() != Some(*fp))
        .count()
}
