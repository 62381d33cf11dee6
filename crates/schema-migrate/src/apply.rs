//! Running a validated plan: offline on a space or a backup chain, online through
//! [`SpaceMigration`].

use std::sync::atomic::{AtomicUsize, Ordering};

use bindspace_core::{BindSpace, SchemaVersion, snapshot};

use crate::compat::Migration;
use crate::plan::{Consent, Plan, ValidatedPlan, plan, resize};
use crate::{Error, Result, features};

/// How far a migration is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Occupied addresses done.
    pub done: usize,
    /// Occupied addresses in all.
    pub total: usize,
}

/// One fingerprint through `steps`: `None` when a step empties the address.
pub fn migrate_entry(steps: &[Migration], fp: &[u64]) -> Option<Vec<u64>> {
    let mut words = fp.to_vec();
    for step in steps {
        match *step {
            Migration::FingerprintResize { to, .. } => words = resize(words, usize::from(to)),
            Migration::AddressSpaceExpand { .. } => {}
            Migration::FeatureUpgrade { features: bits } => {
                for f in features::REGISTRY.iter().filter(|f| bits & f.bit != 0) {
                    words = (f.migrate_entry)(&words)?;
                }
            }
        }
    }
    Some(words)
}

/// The steps of a validated plan, detached from the state it was planned on, for an
/// online migration: the running space keeps changing while it is copied, so the
/// copy is migrated with [`SpaceMigration::migrate_space`] and the writes made
/// meanwhile with [`SpaceMigration::migrate_entry`] (e.g. by
/// `bindspace_wal::DurableSpace::change_schema_online`). Consent was given for the
/// kinds of steps in the plan; later writes go through the same steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceMigration {
    steps: Vec<Migration>,
    to: SchemaVersion,
}

impl SpaceMigration {
    /// The migration a validated plan describes.
    pub fn from_plan(p: &ValidatedPlan) -> Self {
        SpaceMigration {
            steps: p.plan().steps.clone(),
            to: p.plan().to,
        }
    }

    /// The schema after it.
    pub fn target(&self) -> SchemaVersion {
        self.to
    }

    /// When every step only resizes fingerprints or grows the address space: how many
    /// leading words survive the whole chain (the narrowest width on the way); the rest
    /// of the target width is zero.
    fn kept_words(&self) -> Option<usize> {
        let mut keep = usize::MAX;
        for step in &self.steps {
            match *step {
                Migration::FingerprintResize { from, to } => {
                    keep = keep.min(usize::from(from)).min(usize::from(to))
                }
                Migration::AddressSpaceExpand { .. } => {}
                Migration::FeatureUpgrade { .. } => return None,
            }
        }
        Some(keep.min(self.to.words()))
    }

    /// One fingerprint through the steps.
    pub fn migrate_entry(&self, fp: &[u64]) -> Option<Vec<u64>> {
        migrate_entry(&self.steps, fp)
    }

    /// A whole space through the steps, keeping its version.
    pub fn migrate_space(
        &self,
        space: &BindSpace,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<BindSpace> {
        let _span = tracing::info_span!("migrate", from = %space.schema(), to = %self.to).entered();
        let total = space.len();
        let mut step = |done| progress(Progress { done, total });
        let misfit = AtomicUsize::new(usize::MAX); // the width a step got wrong, if any
        let out = match self.kept_words() {
            // resizes (and address-space growth) only: copy the words that survive
            Some(keep) => {
                let keep = keep.min(space.words());
                space.map_into(
                    self.to,
                    |src, dst| {
                        dst[..keep].copy_from_slice(&src[..keep]);
                        true
                    },
                    &mut step,
                )?
            }
            None => space.map_into(
                self.to,
                |src, dst| match self.migrate_entry(src) {
                    Some(words) if words.len() == dst.len() => {
                        dst.copy_from_slice(&words);
                        true
                    }
                    Some(words) => {
                        misfit.store(words.len(), Ordering::Relaxed);
                        false
                    }
                    None => false,
                },
                &mut step,
            )?,
        };
        let found = misfit.into_inner();
        if found != usize::MAX {
            // a feature migration changed the width: a bug in the registry, not data
            return Err(bindspace_core::Error::WordCount {
                expected: self.to.words(),
                found,
            }
            .into());
        }
        Ok(out)
    }
}

/// Runs a validated plan on the space it was made for; returns the migrated space, at
/// the same version. `progress` is called every 4,096 addresses and at the end.
pub fn apply(
    space: &BindSpace,
    plan: &ValidatedPlan,
    progress: &mut dyn FnMut(Progress),
) -> Result<BindSpace> {
    let p = plan.plan();
    if p.from != space.schema() || p.source_version != space.version() {
        return Err(Error::StalePlan {
            planned: p.from.to_string(),
            planned_version: p.source_version,
            found: space.schema().to_string(),
            found_version: space.version(),
        });
    }
    SpaceMigration::from_plan(plan).migrate_space(space, progress)
}

/// Restores a backup chain written under an older schema into `to`: the native
/// snapshot is decoded in its own schema, the encoded deltas are applied in the width
/// they were written in, and only then is the result planned, validated against
/// `consent` and migrated. Returns the space and the plan that ran.
pub fn restore_chain<'a>(
    snapshot_bytes: &[u8],
    deltas: impl IntoIterator<Item = &'a [u8]>,
    to: SchemaVersion,
    consent: Consent,
) -> Result<(BindSpace, Plan)> {
    let mut space = snapshot::decode(snapshot_bytes)?.space;
    for d in deltas {
        let delta = bindspace_xor_delta::decode(d)?;
        bindspace_xor_delta::apply(&mut space, &delta)?;
    }
    let validated = plan(&space, to)?.validate(consent)?;
    let out = apply(&space, &validated, &mut |_| {})?;
    Ok((out, validated.plan().clone()))
}
