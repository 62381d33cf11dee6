//! # bindspace-schema-migrate
//!
//! Backups live longer than code. This crate decides whether data written under one
//! [`SchemaVersion`](bindspace_core::SchemaVersion) can be read under another
//! ([`compatibility`]), and if a migration is needed, plans it ([`plan`]), refuses to run
//! a plan that did not validate ([`Plan::validate`]), and runs it offline on a space
//! ([`apply`]), on a whole backup chain ([`restore_chain`]: deltas are applied in the
//! width they were written in, then the result is migrated), or online on a running
//! `bindspace-wal` `DurableSpace` through [`SpaceMigration`].
//!
//! What it is not: no I/O, no scheduling; the CLI (`bindspace migrate`) and the engine
//! call it.
//!
//! ## Compatibility rules
//!
//! - Same major, same shape (words, address space) and same features: **compatible**,
//!   whatever the minor and patch.
//! - Different major: **incompatible** (a different format generation).
//! - Words differ: [`Migration::FingerprintResize`]. Growing pads with zero words (zero
//!   is neutral for XOR, so old deltas stay meaningful); shrinking truncates, which
//!   loses the dropped words wherever they are non-zero and therefore needs consent.
//! - Address space grows: [`Migration::AddressSpaceExpand`], up to 65,536 (the 16-bit
//!   address of format v1); shrinking it is incompatible.
//! - Features added: [`Migration::FeatureUpgrade`], each feature bit from the
//!   [`features`] registry with its own data migration; removing a feature, or a bit
//!   this build does not know, is incompatible.
//!
//! ```
//! use bindspace_core::{BindSpace, SchemaVersion};
//! use bindspace_schema_migrate::{Consent, compatibility, Compatibility, plan, apply};
//!
//! let from = SchemaVersion::CURRENT;
//! let to = from.with_words(200);
//! assert!(matches!(compatibility(from, to), Compatibility::NeedsMigration(_)));
//! let space = BindSpace::new(from).unwrap();
//! let validated = plan(&space, to).unwrap().validate(Consent::default()).unwrap();
//! let grown = apply(&space, &validated, &mut |_| {}).unwrap();
//! assert_eq!(grown.words(), 200);
//! ```

mod apply;
mod compat;
mod error;
pub mod features;
mod plan;

pub use apply::{Progress, SpaceMigration, apply, migrate_entry, restore_chain};
pub use compat::{Compatibility, Migration, compatibility};
pub use error::{Error, Result};
pub use plan::{Consent, Plan, ValidatedPlan, Warning, plan};
