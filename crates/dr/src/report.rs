//! What a verification found, for people (`Display`) and machines (`serde`), and the
//! outcome that becomes the exit code.

use bindspace_catalog::{TimelineId, VerifyLevel};
use serde::Serialize;

/// One artifact's trouble in one store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The artifact (`snapshot 40`, `wal 1..=17 on timeline 2`, …).
    pub artifact: String,
    /// What is wrong.
    pub detail: String,
}

/// One store's results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreReport {
    /// The store.
    pub store: String,
    /// Why the store could not be checked at all, if it could not.
    pub unavailable: Option<String>,
    /// Artifacts read back and found intact in this run.
    pub checked: usize,
    /// Artifacts not read: verified at this level within the re-check period.
    pub fresh: usize,
    /// Bytes read.
    pub bytes_read: u64,
    /// Artifacts its catalog names that it does not hold.
    pub missing: Vec<Finding>,
    /// Artifacts it holds damaged (length, checksum, format).
    pub damaged: Vec<Finding>,
    /// Artifacts that could not be read (the store failed, not the bytes).
    pub unreadable: Vec<Finding>,
    /// Snapshots and deltas it holds that no entry of its catalog names (an
    /// interrupted backup leaves these; nothing is deleted).
    pub orphans: Vec<String>,
    /// The store's catalog itself is damaged: its newest generation does not decode
    /// (what it was read from instead, if anything), or it was lost while artifacts
    /// remain.
    pub catalog: Option<String>,
    /// How a repair in this run rebuilt that catalog.
    pub catalog_rebuilt: Option<String>,
    /// Copies put back from another store (verified on both ends).
    pub repaired: Vec<String>,
    /// Missing or damaged copies no other store could supply.
    pub unrepaired: Vec<Finding>,
}

/// Where the WAL archive of a history has a hole, and whether another store fills it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalGap {
    /// The store whose archive has the hole.
    pub store: String,
    /// The timeline.
    pub timeline: TimelineId,
    /// First missing version.
    pub first: u64,
    /// Last missing version.
    pub last: u64,
    /// Stores whose archive covers the hole (empty: missing everywhere).
    pub held_by: Vec<String>,
    /// Whether a repair in this run filled it.
    pub repaired: bool,
}

/// The outcome of one deep check (a restore compared with its recorded root).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeepCheck {
    /// What was restored (`restore point nightly`, `version 80 on timeline 1`).
    pub target: String,
    /// `verified`, `unverifiable` (no root recorded: never called verified),
    /// `degraded` (restored only around damaged artifacts: damage) or `failed`.
    pub status: &'static str,
    /// The restore's account of itself, or why it failed.
    pub detail: String,
}

/// Everything a verification found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The level run.
    pub level: VerifyLevel,
    /// Start and end, µs since the epoch (on the injected clock).
    pub started_us: u64,
    /// End.
    pub finished_us: u64,
    /// Per store.
    pub stores: Vec<StoreReport>,
    /// Deltas whose base the catalog does not hold, or whose versions do not join.
    pub chains: Vec<String>,
    /// Holes in the WAL archives.
    pub wal_gaps: Vec<WalGap>,
    /// Where the stores' catalogs disagree.
    pub disagreements: Vec<String>,
    /// Schemas today's code cannot read.
    pub schemas: Vec<String>,
    /// Deep checks.
    pub deep: Vec<DeepCheck>,
    /// Artifacts due but left for the next run (the time budget ran out).
    pub not_reached: usize,
}

/// What a verification amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Nothing wrong.
    Clean,
    /// Damage (or something that could not be checked) remains.
    DamageFound,
    /// Damage was found and every piece of it repaired.
    AllRepaired,
}

impl Report {
    /// Whether anything unrepaired is wrong, or could not be checked.
    fn open_damage(&self) -> bool {
        self.stores.iter().any(|s| {
            s.unavailable.is_some()
                || !s.unreadable.is_empty()
                || !s.unrepaired.is_empty()
                || (s.catalog.is_some() && s.catalog_rebuilt.is_none())
        }) || self.wal_gaps.iter().any(|g| !g.repaired)
            || !self.chains.is_empty()
            || !self.disagreements.is_empty()
            || !self.schemas.is_empty()
            || self
                .deep
                .iter()
                .any(|d| d.status == "failed" || d.status == "degraded")
    }

    /// The outcome: clean, damage found, or damage found and all repaired.
    pub fn outcome(&self) -> Outcome {
        let unrepaired = self.stores.iter().any(|s| {
            let repaired = s.repaired.len();
            s.missing.len() + s.damaged.len() > repaired
        });
        let repaired = self
            .stores
            .iter()
            .any(|s| !s.repaired.is_empty() || s.catalog_rebuilt.is_some());
        if self.open_damage() || unrepaired {
            Outcome::DamageFound
        } else if repaired {
            Outcome::AllRepaired
        } else {
            Outcome::Clean
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "verify ({} level)", self.level)?;
        for s in &self.stores {
            match &s.unavailable {
                Some(why) => writeln!(f, "  {}: NOT CHECKED: {why}", s.store)?,
                None => writeln!(
                    f,
                    "  {}: {} checked ({:.1} MB read), {} verified recently, {} missing, {} damaged, {} orphaned",
                    s.store,
                    s.checked,
                    s.bytes_read as f64 / 1e6,
                    s.fresh,
                    s.missing.len(),
                    s.damaged.len(),
                    s.orphans.len()
                )?,
            }
            if let Some(c) = &s.catalog {
                writeln!(f, "    DAMAGED CATALOG: {c}")?;
            }
            if let Some(c) = &s.catalog_rebuilt {
                writeln!(f, "    catalog rebuilt: {c}")?;
            }
            for (what, list) in [
                ("missing", &s.missing),
                ("damaged", &s.damaged),
                ("unreadable", &s.unreadable),
                ("NOT REPAIRED", &s.unrepaired),
            ] {
                for x in list {
                    writeln!(f, "    {what}: {}: {}", x.artifact, x.detail)?;
                }
            }
            for o in &s.orphans {
                writeln!(f, "    orphan (no catalog entry names it): {o}")?;
            }
            for r in &s.repaired {
                writeln!(f, "    repaired: {r}")?;
            }
        }
        for c in &self.chains {
            writeln!(f, "  broken chain: {c}")?;
        }
        for g in &self.wal_gaps {
            let status = match (g.repaired, g.held_by.is_empty()) {
                (true, _) => format!("repaired from {}", g.held_by.join(", ")),
                (false, true) => "missing in every store".to_owned(),
                (false, false) => format!("missing, but {} has it", g.held_by.join(", ")),
            };
            writeln!(
                f,
                "  WAL gap in {}: timeline {} versions {}..={}: {status}",
                g.store, g.timeline, g.first, g.last
            )?;
        }
        for d in &self.disagreements {
            writeln!(f, "  catalogs disagree: {d}")?;
        }
        for s in &self.schemas {
            writeln!(f, "  unreadable schema: {s}")?;
        }
        for d in &self.deep {
            writeln!(f, "  {}: {} ({})", d.target, d.status, d.detail)?;
        }
        if self.not_reached > 0 {
            writeln!(
                f,
                "  {} artifacts due were left for the next run (time budget)",
                self.not_reached
            )?;
        }
        let verdict = match self.outcome() {
            Outcome::Clean => "clean",
            Outcome::DamageFound => "DAMAGE FOUND",
            Outcome::AllRepaired => "damage found and all of it repaired",
        };
        write!(f, "result: {verdict}")
    }
}
