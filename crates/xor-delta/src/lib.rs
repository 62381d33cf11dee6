//! # bindspace-xor-delta
//!
//! Sparse XOR deltas between two versions of a BindSpace, the currency of incremental
//! and differential backups.
//!
//! What it is: the [`Delta`] type; [`compute`] by scanning two spaces; [`compute_dirty`]
//! from a space's dirty tracking in O(changed addresses); [`apply`], which checks every
//! precondition before touching the space; [`compose`] (a differential from a chain of
//! incrementals, without the live space); [`encode`]/[`decode`] in the tagged artifact
//! format (`docs/FORMATS.md`); and [`Delta::stats`].
//!
//! What it is not: no I/O, no storage, no scheduling. Where deltas live is the store
//! crates' business, when they are taken is the catalog's.
//!
//! ```
//! use bindspace_core::{Addr, BindSpace, SchemaVersion};
//! use bindspace_xor_delta as xd;
//!
//! let schema = SchemaVersion::CURRENT.with_words(4);
//! let mut live = BindSpace::new(schema).unwrap();
//! live.write(Addr::new(1, 1), &[1, 2, 3, 4]).unwrap();
//! let backup = live.clone();
//! let mark = live.mark();
//! live.write(Addr::new(1, 1), &[1, 2, 3, 5]).unwrap();
//! live.write(Addr::new(2, 0), &[9, 9, 9, 9]).unwrap();
//!
//! let delta = xd::compute_dirty(&live, &mark, 1_000).unwrap();
//! assert_eq!(delta, xd::compute(&backup, &live, 1_000).unwrap());
//! let bytes = xd::encode(&delta);
//! let mut restored = backup.clone();
//! xd::apply(&mut restored, &xd::decode(&bytes).unwrap()).unwrap();
//! assert_eq!(restored, live);
//! ```

mod apply;
mod codec;
mod compact;
mod compose;
mod compute;
mod delta;
mod error;

pub use apply::apply;
pub use codec::{decode, encode, encode_format, encoded_len};
pub use compose::compose;
pub use compute::{compute, compute_dirty};
pub use delta::{Change, Delta, DeltaStats, Entry, Xor};
pub use error::{Error, Result};
