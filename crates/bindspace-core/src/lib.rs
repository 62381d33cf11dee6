//! # bindspace-core
//!
//! The in-memory **BindSpace** and the formats that describe it: 65,536 addresses
//! (8-bit prefix + 8-bit slot), each holding an optional fingerprint of a fixed number
//! of `u64` words (156 by default, 9,984 bits).
//!
//! What it is:
//! - [`BindSpace`]: a flat arena + occupancy bitmap + version counter, with dirty
//!   tracking since a [`Mark`], a blake3 content [`Digest`] and an incremental
//!   [`StateRoot`] (per-address leaves, 256 prefix digests, one root);
//! - the common [`ArtifactHeader`] every stored artifact starts with;
//! - the native [`snapshot`] format, encode and decode;
//! - the Arrow view ([`BindSpace::to_record_batch`], [`BindSpace::from_record_batch`]);
//! - an injected [`Clock`] and seeded [`workload`]s for tests, demos and benches.
//!
//! What it is not: it does no I/O (beyond `std::io::Write` for streaming an encoded
//! snapshot into a caller's sink), knows nothing of tokio, files, Redis or object
//! stores, and has no opinion on where snapshots live. Deltas are `bindspace-xor-delta`,
//! the log is `bindspace-wal`.
//!
//! ```
//! use bindspace_core::{snapshot, Addr, BindSpace, SchemaVersion};
//!
//! let mut space = BindSpace::new(SchemaVersion::CURRENT).unwrap();
//! let fp = vec![0xdead_beef_u64; space.words()];
//! space.write(Addr::new(0x0a, 0x01), &fp).unwrap();
//! assert_eq!(space.version(), 1);
//!
//! let bytes = snapshot::encode(&space, 0);
//! let restored = snapshot::decode(&bytes).unwrap().space;
//! assert_eq!(restored.digest(), space.digest());
//! ```

mod addr;
mod arrow;
mod bitmap;
pub mod clock;
mod error;
mod fingerprint;
pub mod header;
mod kind;
pub mod le;
mod root;
mod schema;
pub mod snapshot;
mod space;
pub mod workload;

pub use addr::{ADDRESS_SPACE, Addr, ParseAddrError};
pub use arrow::{META_ADDRESS_SPACE, META_FEATURES, META_SCHEMA, META_VERSION, arrow_schema};
pub use bitmap::Bitmap;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use fingerprint::{FINGERPRINT_WORDS, Fingerprint, MAX_FINGERPRINT_WORDS};
pub use header::{ArtifactHeader, ArtifactKind, Compression, HEADER_LEN};
pub use kind::ErrorKind;
pub use root::{StateRoot, prefix_list};
pub use schema::SchemaVersion;
pub use space::{BindSpace, Digest, DirtyEntry, Mark};
