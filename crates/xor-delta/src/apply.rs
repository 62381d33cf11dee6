//! Applying a delta to a space.

use bindspace_core::BindSpace;

use crate::{Change, Delta, Error, Result};

/// Applies `delta` to `space`, which then holds the delta's `to_version`.
///
/// Refuses, leaving the space bit-for-bit untouched: a delta for another version, for
/// another word count or address space, or with any entry that does not fit the
/// space's content (checked for every entry before the first change).
///
/// When the delta records its end state's root, the result is checked against it
/// afterwards: [`Error::Core`] with `RootMismatch`, naming the prefixes that differ when
/// the delta records their digests (format 2; format 3 records the root alone). The
/// space then holds a wrong state and must be discarded.
pub fn apply(space: &mut BindSpace, delta: &Delta) -> Result<()> {
    if space.words() != delta.schema.words()
        || space.schema().address_space != delta.schema.address_space
    {
        return Err(Error::SchemaMismatch {
            left: space.schema(),
            right: delta.schema,
        });
    }
    if space.version() != delta.from_version {
        return Err(Error::VersionMismatch {
            delta_from: delta.from_version,
            space_version: space.version(),
        });
    }
    for e in &delta.entries {
        if e.addr.index() >= space.address_space() {
            return Err(Error::Precondition {
                addr: e.addr,
                reason: "address outside the space",
            });
        }
        let present = space.contains(e.addr);
        let reason = match (&e.change, present) {
            (Change::Created(_), true) => "created, but the address is occupied",
            (Change::Deleted, false) => "deleted, but the address is empty",
            (Change::Changed(_), false) => "changed, but the address is empty",
            (Change::Replaced(_), false) => "replaced, but the address is empty",
            _ => continue,
        };
        return Err(Error::Precondition {
            addr: e.addr,
            reason,
        });
    }
    let mut scratch = vec![0u64; space.words()];
    for e in &delta.entries {
        match &e.change {
            Change::Deleted => {
                space.delete(e.addr)?;
            }
            Change::Created(fp) | Change::Replaced(fp) => {
                space.write(e.addr, fp)?;
            }
            Change::Changed(x) => {
                if x.width() != scratch.len() {
                    return Err(Error::Precondition {
                        addr: e.addr,
                        reason: "change mask of another width",
                    });
                }
                scratch.copy_from_slice(space.read(e.addr).expect("presence checked above"));
                x.apply_to(&mut scratch);
                space.write(e.addr, &scratch)?;
            }
        }
    }
    space.set_version(delta.to_version);
    if let Some(root) = &delta.end_root {
        root.check(
            &space.state_root(),
            &format!("delta {}..{} applied", delta.from_version, delta.to_version),
        )?;
    }
    Ok(())
}
