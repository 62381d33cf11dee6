//! Repository replication: an incremental copy of one store's repository into another
//! store of any kind (S3 in one region to S3 in another, to Redis, to PostgreSQL).
//! Every artifact the target does not hold is copied and checked by blake3 on both ends
//! (the source's copy against its listing, the target's read back), then the target's
//! catalog gains the source's backups, restore points and histories. Nothing on the
//! target is deleted unless pruning. Resumable by construction: what the target lists
//! is not sent again, and a put is atomic, so an interrupted run re-sends at most the
//! artifact it was putting.

use std::collections::BTreeSet;
use std::sync::Arc;

use bindspace_catalog::{ArtifactKind, ArtifactRef, BackupStore, Manifest, read_catalog};
use bindspace_core::Clock;
use serde::Serialize;
use tracing::Instrument;

use crate::report::Finding;
use crate::verify::describe;
use crate::{Error, Result};

/// How a replication runs.
#[derive(Clone, Debug, Default)]
pub struct ReplicateOptions {
    /// Also delete from the target what the source no longer has: artifacts, and the
    /// backups and restore points its catalog records (`--prune`).
    pub prune: bool,
    /// Refuse when the target holds no repository yet, so a mistyped URL never starts a
    /// new one (`--must-exist`).
    pub must_exist: bool,
}

/// What one replication run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplicationReport {
    /// The source store.
    pub from: String,
    /// The target store.
    pub to: String,
    /// When the run started (the source state it copies is the one listed then), µs.
    pub started_us: u64,
    /// When it finished, µs.
    pub finished_us: u64,
    /// Artifacts copied in this run.
    pub copied: Vec<String>,
    /// Their bytes.
    pub bytes_copied: u64,
    /// Artifacts the target already held.
    pub already_held: usize,
    /// Records the target's catalog gained (backups, restore points, histories).
    pub catalog_added: usize,
    /// What pruning removed from the target.
    pub pruned: Vec<String>,
    /// Artifacts that could not be copied, and why (the next run tries them again).
    pub failed: Vec<Finding>,
    /// Whether the target now holds everything the source held when the run started.
    pub caught_up: bool,
}

impl std::fmt::Display for ReplicationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "replicate {} -> {}", self.from, self.to)?;
        writeln!(
            f,
            "  copied {} artifacts ({:.1} MB), {} already there; catalog +{} records",
            self.copied.len(),
            self.bytes_copied as f64 / 1e6,
            self.already_held,
            self.catalog_added
        )?;
        for p in &self.pruned {
            writeln!(f, "  pruned: {p}")?;
        }
        for x in &self.failed {
            writeln!(f, "  NOT COPIED: {}: {}", x.artifact, x.detail)?;
        }
        write!(
            f,
            "result: {}",
            if self.caught_up {
                "caught up"
            } else {
                "BEHIND (run again)"
            }
        )
    }
}

/// Replication lag with a heartbeat: the time since the target last held everything
/// the source held (the start of the last run that caught up). A copy that stalls or
/// fails shows it growing; it is never reported as 0 for a run that did not finish.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lag {
    caught_up_at: Option<u64>,
}

impl Lag {
    /// Takes a run's outcome into account.
    pub fn record(&mut self, run: &ReplicationReport) {
        if run.caught_up {
            self.caught_up_at = Some(
                self.caught_up_at
                    .map_or(run.started_us, |t| t.max(run.started_us)),
            );
        }
    }

    /// The lag at `now_us` in ms; `None` before any run caught up.
    pub fn ms(&self, now_us: u64) -> Option<u64> {
        self.caught_up_at.map(|t| now_us.saturating_sub(t) / 1_000)
    }
}

/// Everything `store` lists, snapshots first, then deltas, then WAL, each oldest first
/// (so a target that is copied part way already restores the older states).
async fn everything(store: &Arc<dyn BackupStore>) -> bindspace_catalog::Result<Vec<ArtifactRef>> {
    let mut out = Vec::new();
    for kind in [
        ArtifactKind::Snapshot,
        ArtifactKind::Delta,
        ArtifactKind::WalSegment,
    ] {
        let mut v = store.list(kind, 0, u64::MAX).await?;
        v.sort_by_key(|r| (r.id.versions(), r.id.timeline()));
        out.extend(v);
    }
    Ok(out)
}

/// Copies `r` from `from` to `to`: read and checked against the listing, put, and read
/// back from the target (blake3 on both ends). The bytes copied, or why not.
async fn copy_one(
    from: &Arc<dyn BackupStore>,
    to: &Arc<dyn BackupStore>,
    r: &ArtifactRef,
) -> std::result::Result<u64, String> {
    let bytes = from
        .get(r)
        .await
        .map_err(|e| format!("reading it from the source: {e}"))?;
    let n = bytes.len() as u64;
    let put = to
        .put(r.id, bytes)
        .await
        .map_err(|e| format!("storing it: {e}"))?;
    if put != *r {
        return Err("the target stored it with another checksum".into());
    }
    to.get(r)
        .await
        .map_err(|e| format!("it does not read back intact from the target: {e}"))?;
    Ok(n)
}

/// The catalog a store has for a write: `None` when it has none; refused when its
/// newest generation is damaged (a commit over it would lose what only it names).
async fn catalog_for_write(store: &Arc<dyn BackupStore>) -> Result<Option<(u64, Manifest)>> {
    match read_catalog(store.as_ref()).await? {
        Some(r) if r.fell_back() => Err(Error::Refused(format!(
            "{}: the newest catalog generation is damaged ({}); run `bindspace verify --repair` there first",
            store.name(),
            r.damage.unwrap_or_default()
        ))),
        Some(r) => Ok(Some((r.generation, r.manifest))),
        None => Ok(None),
    }
}

/// Replicates the repository in `from` into `to` (see the module docs). A run that
/// could not copy everything says so in its report (`caught_up` false, `failed`);
/// an error means it could not run at all (a store down, a refusal).
pub async fn replicate(
    from: &Arc<dyn BackupStore>,
    to: &Arc<dyn BackupStore>,
    clock: &dyn Clock,
    opts: &ReplicateOptions,
) -> Result<ReplicationReport> {
    let span = tracing::info_span!("replicate", from = %from.name(), to = %to.name());
    run(from, to, clock, opts).instrument(span).await
}

async fn run(
    from: &Arc<dyn BackupStore>,
    to: &Arc<dyn BackupStore>,
    clock: &dyn Clock,
    opts: &ReplicateOptions,
) -> Result<ReplicationReport> {
    let started_us = clock.now_us();
    let mut report = ReplicationReport {
        from: from.name(),
        to: to.name(),
        started_us,
        ..ReplicationReport::default()
    };
    // what the source holds, validated before anything is written to the target
    let source = read_catalog(from.as_ref())
        .await?
        .ok_or_else(|| Error::Refused(format!("{} holds no repository", from.name())))?;
    if let Some(d) = &source.damage {
        tracing::warn!(store = %from.name(), damage = %d, "source catalog read past a damaged generation");
    }
    let target = catalog_for_write(to).await?;
    match &target {
        None if opts.must_exist => {
            return Err(Error::Refused(format!(
                "{} holds no repository (--must-exist: nothing was copied)",
                to.name()
            )));
        }
        Some((_, m)) => {
            if let (Some(a), Some(b)) = (&source.manifest.repository_id, &m.repository_id)
                && a != b
            {
                return Err(Error::Refused(format!(
                    "{} holds another repository ({b}, the source is {a})",
                    to.name()
                )));
            }
        }
        None => {}
    }
    let wanted = everything(from).await?;
    let mut held: BTreeSet<ArtifactRef> = everything(to).await?.into_iter().collect();
    for r in &wanted {
        if held.contains(r) {
            report.already_held += 1;
            continue;
        }
        match copy_one(from, to, r).await {
            Ok(n) => {
                tracing::debug!(artifact = %r.id, bytes = n, "replicated");
                report.copied.push(describe(&r.id));
                report.bytes_copied += n;
                held.insert(*r);
            }
            Err(detail) => report.failed.push(Finding {
                artifact: describe(&r.id),
                detail,
            }),
        }
    }
    // the catalog: the source's records whose artifacts the target now holds (a
    // backup whose copy failed is recorded by the run that copies it)
    let held_ids: BTreeSet<_> = held.iter().map(|r| r.id).collect();
    let mut add = source.manifest.clone();
    add.entries
        .retain(|e| e.kind == bindspace_catalog::BackupKind::Wal || held_ids.contains(&e.artifact));
    let source_ids: BTreeSet<&str> = source
        .manifest
        .entries
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    let source_points: BTreeSet<&str> = source
        .manifest
        .restore_points
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mut tries = 0;
    loop {
        let (g, mut m) = catalog_for_write(to).await?.unwrap_or_default();
        let added = m.merge_from(&add);
        let mut pruned = Vec::new();
        if opts.prune {
            m.entries.retain(|e| {
                let keep = source_ids.contains(e.id.as_str());
                if !keep {
                    pruned.push(format!("backup {}", e.id));
                }
                keep
            });
            m.restore_points.retain(|p| {
                let keep = source_points.contains(p.name.as_str());
                if !keep {
                    pruned.push(format!("restore point {}", p.name));
                }
                keep
            });
        }
        if added == 0 && pruned.is_empty() && g > 0 {
            break;
        }
        m.layout = m.layout_needed();
        match to.commit_manifest(g, &m).await {
            Ok(_) => {
                report.catalog_added = added;
                report.pruned = pruned;
                break;
            }
            Err(bindspace_catalog::Error::Conflict { .. }) if tries < 8 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
    if opts.prune {
        // after the catalog no longer names them
        let keep: BTreeSet<_> = wanted.iter().map(|r| r.id).collect();
        for r in held.iter().filter(|r| !keep.contains(&r.id)) {
            match to.delete(r.id).await {
                Ok(()) => report.pruned.push(describe(&r.id)),
                Err(e) => report.failed.push(Finding {
                    artifact: describe(&r.id),
                    detail: format!("not pruned: {e}"),
                }),
            }
        }
    }
    report.caught_up = report.failed.is_empty();
    report.finished_us = clock.now_us();
    tracing::info!(
        copied = report.copied.len(),
        bytes = report.bytes_copied,
        caught_up = report.caught_up,
        "replication run finished"
    );
    Ok(report)
}
