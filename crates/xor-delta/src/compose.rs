//! Composing two consecutive deltas into one.

use std::cmp::Ordering;

use bindspace_core::Fingerprint;

use crate::{Change, Delta, Entry, Error, Result, Xor};

/// `compose(d1, d2)` is one delta with the effect of applying `d1` then `d2`: the way a
/// differential backup is built from incrementals without touching the live space.
///
/// Per address: XOR changes combine by XOR (a zero result drops the entry); create then
/// change is a create of the combined value; create then delete is nothing; delete then
/// create is a replace. Combinations that cannot follow each other (e.g. create after
/// change) are a [`Error::Contradiction`]: the deltas do not describe one history.
pub fn compose(d1: &Delta, d2: &Delta) -> Result<Delta> {
    if d1.to_version != d2.from_version {
        return Err(Error::NotContiguous {
            first_to: d1.to_version,
            second_from: d2.from_version,
        });
    }
    if d1.schema.words() != d2.schema.words() || d1.schema.address_space != d2.schema.address_space
    {
        return Err(Error::SchemaMismatch {
            left: d1.schema,
            right: d2.schema,
        });
    }
    let mut out = Vec::with_capacity(d1.entries.len() + d2.entries.len());
    let (mut i, mut j) = (0, 0);
    while i < d1.entries.len() || j < d2.entries.len() {
        let ord = match (d1.entries.get(i), d2.entries.get(j)) {
            (Some(a), Some(b)) => a.addr.cmp(&b.addr),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                out.push(d1.entries[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(d2.entries[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                let (a, b) = (&d1.entries[i], &d2.entries[j]);
                if let Some(change) = combine(a, &b.change)? {
                    out.push(Entry {
                        addr: a.addr,
                        change,
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(Delta {
        from_version: d1.from_version,
        to_version: d2.to_version,
        timestamp_us: d2.timestamp_us,
        schema: d2.schema,
        entries: out,
        end_root: d2.end_root.clone(),
    })
}

fn xor(a: &Fingerprint, b: &Xor) -> Fingerprint {
    let mut x = a.clone();
    b.apply_to(x.words_mut());
    x
}

fn combine(first: &Entry, second: &Change) -> Result<Option<Change>> {
    use Change::*;
    let contradiction = |reason| {
        Err(Error::Contradiction {
            addr: first.addr,
            reason,
        })
    };
    Ok(match (&first.change, second) {
        (Created(fp), Changed(x)) => Some(Created(xor(fp, x))),
        (Created(_), Deleted) => None,
        (Created(_), Replaced(fp)) => Some(Created(fp.clone())),
        (Changed(x1), Changed(x2)) => x1.then(x2).map(Changed),
        (Changed(_) | Replaced(_), Deleted) => Some(Deleted),
        (Changed(_) | Replaced(_), Replaced(fp)) => Some(Replaced(fp.clone())),
        (Replaced(fp), Changed(x)) => Some(Replaced(xor(fp, x))),
        (Deleted, Created(fp)) => Some(Replaced(fp.clone())),
        (Created(_) | Changed(_) | Replaced(_), Created(_)) => {
            return contradiction("created where the first delta left the address occupied");
        }
        (Deleted, Deleted | Changed(_) | Replaced(_)) => {
            return contradiction("changed where the first delta left the address empty");
        }
    })
}
