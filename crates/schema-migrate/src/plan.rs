//! Plans: what a migration will do, what it costs and what it loses, validated before
//! anything runs.

use std::fmt;
use std::time::Duration;

use bindspace_core::{BindSpace, SchemaVersion};

use crate::compat::{Compatibility, Migration, compatibility};
use crate::{Error, Result, features};

/// What the caller allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Consent {
    /// Lossy steps may run (shrinking fingerprints, features that empty addresses).
    pub allow_truncate: bool,
}

/// Something the operator must know before a plan runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The step it is about.
    pub step: Migration,
    /// What happens, with numbers.
    pub message: String,
    /// Whether data is lost (then consent is required).
    pub lossy: bool,
    /// Occupied addresses affected.
    pub addresses: usize,
}

/// A migration of one space, before it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The space's schema.
    pub from: SchemaVersion,
    /// The schema it will have.
    pub to: SchemaVersion,
    /// The space's version when planned (a plan is for that state only).
    pub source_version: u64,
    /// Steps, in order (empty: nothing to do).
    pub steps: Vec<Migration>,
    /// Occupied addresses.
    pub occupied: usize,
    /// Bytes of fingerprint data after the migration.
    pub estimated_output_bytes: u64,
    /// Rough duration, from the bytes read and written at ~1 GB/s (the offline resize
    /// bench measures the real rate; see docs/BENCHMARKS.md).
    pub estimated_duration: Duration,
    /// What the operator must know.
    pub warnings: Vec<Warning>,
    /// Whether writers must stop. Every step here runs online (copy, catch up, switch),
    /// so this is false; it exists so a future step that cannot is visible in plans.
    pub downtime: bool,
}

/// A plan that passed [`Plan::validate`]: the only thing [`crate::apply`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedPlan(Plan);

impl ValidatedPlan {
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.0
    }
}

impl Plan {
    /// Whether any step loses data.
    pub fn is_lossy(&self) -> bool {
        self.warnings.iter().any(|w| w.lossy)
    }

    /// Checks the plan against `consent`: a lossy plan needs `allow_truncate`.
    pub fn validate(self, consent: Consent) -> Result<ValidatedPlan> {
        if self.is_lossy() && !consent.allow_truncate {
            return Err(Error::NeedsConsent {
                warnings: self
                    .warnings
                    .iter()
                    .filter(|w| w.lossy)
                    .map(|w| w.message.clone())
                    .collect(),
            });
        }
        Ok(ValidatedPlan(self))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "source:   {} at version {}",
            self.from, self.source_version
        )?;
        writeln!(f, "target:   {}", self.to)?;
        if self.steps.is_empty() {
            writeln!(f, "steps:    none (compatible as is)")?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "step {}:   {s}", i + 1)?;
        }
        writeln!(
            f,
            "size:     {} occupied addresses, {:.1} MB after",
            self.occupied,
            self.estimated_output_bytes as f64 / 1e6
        )?;
        writeln!(f, "duration: ~{:?} (estimate)", self.estimated_duration)?;
        writeln!(
            f,
            "downtime: {}",
            if self.downtime {
                "needed"
            } else {
                "none (runs online)"
            }
        )?;
        for w in &self.warnings {
            writeln!(
                f,
                "{}: {}",
                if w.lossy { "DATA LOSS" } else { "note" },
                w.message
            )?;
        }
        Ok(())
    }
}

/// Plans the migration of `space` to `to`: the steps, and what each does to this
/// space's data, counted address by address.
pub fn plan(space: &BindSpace, to: SchemaVersion) -> Result<Plan> {
    let from = space.schema();
    let steps = match compatibility(from, to) {
        Compatibility::Compatible => Vec::new(),
        Compatibility::NeedsMigration(steps) => steps,
        Compatibility::Incompatible { reason } => {
            return Err(Error::Incompatible {
                from: from.to_string(),
                to: to.to_string(),
                reason,
            });
        }
    };
    // Count, per step, the occupied addresses it changes in a way that loses bits.
    let mut lost = vec![0usize; steps.len()];
    let mut emptied = 0usize;
    let mut occupied_after = 0usize;
    for (_, fp) in space.iter() {
        let mut cur = Some(fp.to_vec());
        for (i, step) in steps.iter().enumerate() {
            let Some(words) = cur.take() else { break };
            cur = match *step {
                Migration::FingerprintResize { to, .. } => {
                    let to = usize::from(to);
                    if words.len() > to && words[to..].iter().any(|&w| w != 0) {
                        lost[i] += 1;
                    }
                    Some(resize(words, to))
                }
                Migration::AddressSpaceExpand { .. } => Some(words),
                Migration::FeatureUpgrade { features: bits } => {
                    let mut w = Some(words);
                    for f in features::REGISTRY.iter().filter(|f| bits & f.bit != 0) {
                        let before = w.take().expect("present until a feature empties it");
                        w = (f.migrate_entry)(&before);
                        if w.as_ref() != Some(&before) && f.lossy {
                            lost[i] += 1;
                        }
                        if w.is_none() {
                            emptied += 1;
                            break;
                        }
                    }
                    w
                }
            };
        }
        if cur.is_some() {
            occupied_after += 1;
        }
    }
    let occupied = space.len();
    let mut warnings = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Migration::FingerprintResize { from: a, to: b } if b < a => warnings.push(Warning {
                step: *step,
                message: format!(
                    "shrinking {a} → {b} words drops {} words on {occupied} occupied addresses ({} of them hold non-zero bits there)",
                    a - b,
                    lost[i]
                ),
                lossy: occupied > 0,
                addresses: occupied,
            }),
            Migration::FeatureUpgrade { features: bits } if lost[i] > 0 => {
                let names: Vec<&str> = features::REGISTRY
                    .iter()
                    .filter(|f| bits & f.bit != 0)
                    .map(|f| f.name)
                    .collect();
                warnings.push(Warning {
                    step: *step,
                    message: format!(
                        "turning on {} changes {} occupied addresses ({emptied} become empty)",
                        names.join(", "),
                        lost[i]
                    ),
                    lossy: true,
                    addresses: lost[i],
                });
            }
            Migration::FingerprintResize { from: a, to: b } => warnings.push(Warning {
                step: *step,
                message: format!(
                    "growing {a} → {b} words pads {occupied} occupied addresses with zero words"
                ),
                lossy: false,
                addresses: occupied,
            }),
            _ => {}
        }
    }
    let out_bytes = (occupied_after * to.words() * 8) as u64;
    let in_bytes = (occupied * from.words() * 8) as u64;
    Ok(Plan {
        from,
        to,
        source_version: space.version(),
        steps,
        occupied,
        estimated_output_bytes: out_bytes,
        estimated_duration: Duration::from_nanos(in_bytes + out_bytes),
        warnings,
        downtime: false,
    })
}

pub(crate) fn resize(mut words: Vec<u64>, to: usize) -> Vec<u64> {
    words.resize(to, 0);
    words
}
