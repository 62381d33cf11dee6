//! Computing deltas: by scanning two spaces, or from a space's dirty log.

use bindspace_core::{Addr, BindSpace, Fingerprint, Mark};

use crate::{Change, Delta, Entry, Error, Result, Xor};

/// Addresses compared per block in the scan: one `memcmp` of 64 fingerprints skips an
/// unchanged block, which is the common case.
const BLOCK: usize = 64;

fn entry_for(addr: Addr, before: Option<&[u64]>, after: Option<&[u64]>) -> Option<Entry> {
    let change = match (before, after) {
        (None, None) => return None,
        (Some(_), None) => Change::Deleted,
        (None, Some(n)) => Change::Created(Fingerprint::from_words(n.to_vec())),
        (Some(o), Some(n)) => Change::Changed(Xor::between(o, n)?),
    };
    Some(Entry { addr, change })
}

fn check_shapes(old: &BindSpace, new: &BindSpace) -> Result<()> {
    if old.words() != new.words() || old.address_space() != new.address_space() {
        return Err(Error::SchemaMismatch {
            left: old.schema(),
            right: new.schema(),
        });
    }
    Ok(())
}

/// The delta from `old` to `new` by scanning both (O(address space × words), but
/// block-wise: unchanged blocks cost one `memcmp`). `timestamp_us` is the time of
/// `new`'s version.
pub fn compute(old: &BindSpace, new: &BindSpace, timestamp_us: u64) -> Result<Delta> {
    check_shapes(old, new)?;
    let mut entries = Vec::new();
    let (ob, nb) = (old.occupancy().as_words(), new.occupancy().as_words());
    for (blk, (ow, nw)) in ob.iter().zip(nb).enumerate() {
        let range = blk * BLOCK..(blk + 1) * BLOCK;
        if ow == nw && (*ow == 0 || old.raw_words(range.clone()) == new.raw_words(range.clone())) {
            continue;
        }
        for i in range {
            let a = Addr(i as u16);
            entries.extend(entry_for(a, old.read(a), new.read(a)));
        }
    }
    Ok(Delta {
        from_version: old.version(),
        to_version: new.version(),
        timestamp_us,
        schema: new.schema(),
        entries,
        end_root: Some(new.state_root()),
    })
}

/// The delta from the state at `mark` to `space` now, from the dirty log: O(addresses
/// changed since the mark), no scan. Addresses written back to their old value are
/// left out, so the result equals [`compute`] against a copy taken at the mark.
pub fn compute_dirty(space: &BindSpace, mark: &Mark, timestamp_us: u64) -> Result<Delta> {
    let mut entries: Vec<Entry> = Vec::with_capacity(space.dirty_count());
    entries.extend(
        space
            .dirty_since(mark)?
            .filter_map(|d| entry_for(d.addr, d.before, d.after)),
    );
    entries.sort_unstable_by_key(|e| e.addr);
    Ok(Delta {
        from_version: mark.version(),
        to_version: space.version(),
        timestamp_us,
        schema: space.schema(),
        entries,
        end_root: Some(space.state_root()),
    })
}
