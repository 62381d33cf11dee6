//! Repository replication: an incremental copy of one store's repository into another
//! store of any kind (S3 in one region to S3 in another, to Redis, to PostgreSQL).
//! Every artifact the target does not hold is copied and checked by blake3 on both ends
//! (the source's copy against its listing, the target's read back), then the target's
//! catalog gains the source's backups, restore points and histories. Nothing on the
//! target is deleted unless pruning. Resumable by construction: what the target lists
//! is not sent again, and a put is atomic, so an interrupted run re-sends at most the
//! artifact it was putting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bindspace_catalog::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupKind, BackupStore, Manifest, TimelineId,
    read_catalog,
};
use bindspace_core::Clock;
use serde::Serialize;
use tracing::Instrument;

use crate::report::Finding;
use crate::verify::{describe, recorded};
use crate::{Error, Result};

/// How a replication runs.
#[derive(Clone, Debug, Default)]
pub struct ReplicateOptions {
    /// Make the target a mirror (`--prune`): delete from it what the source no longer
    /// has (artifacts, backups, restore points), and where a record or artifact differs
    /// under the same name, the source's replaces the target's. Never point it at a
    /// store an engine writes to. Without it, nothing on the target is deleted or
    /// replaced: such differences are reported as conflicts.
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
    /// Records or artifacts that differ between the two under the same name, left as
    /// the target has them (a re-created restore point, a history branched on both
    /// sides after a failover): a person decides, or `--prune` makes the source's win.
    pub conflicts: Vec<String>,
    /// Whether the target now holds everything the source held when the run started.
    pub caught_up: bool,
    /// Whether the run listed both stores whole; a [`Follower`]'s other runs list only
    /// the WAL archived since its last run, and take the rest from the catalog.
    pub listed_everything: bool,
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
        for c in &self.conflicts {
            writeln!(f, "  CONFLICT: {c}")?;
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
        .get_stored(r)
        .await
        .map_err(|e| format!("reading it from the source: {e}"))?;
    let n = bytes.len() as u64;
    let put = to
        .put_stored(r.id, bytes)
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
    replicate_until(from, to, clock, opts, &mut || true).await
}

/// [`replicate`], asking `go` before each artifact it copies: `false` stops the copying
/// there (what was copied is still recorded in the target's catalog; the run is not
/// caught up). An engine's replication job stops this way when the engine closes.
pub async fn replicate_until(
    from: &Arc<dyn BackupStore>,
    to: &Arc<dyn BackupStore>,
    clock: &dyn Clock,
    opts: &ReplicateOptions,
    go: &mut dyn FnMut() -> bool,
) -> Result<ReplicationReport> {
    Follower::new(from.clone(), to.clone(), opts.clone())
        .run(clock, go)
        .await
}

/// A replication that keeps running (`--follow`, an engine's replicas): its first run
/// lists both stores whole; the runs after it find what is new without listing whole
/// prefixes: the backups from the source's catalog, the WAL from each history's
/// newest segment on ([`BackupStore::list_since`]), the target's holdings from what
/// the runs before found and copied. A run that did not catch up, every
/// [`Follower::LIST_EVERYTHING_EVERY`]th run, and every run with `--prune` list
/// everything again (so an artifact that appeared out of order, or one deleted from
/// the target behind its back, is found within that many runs).
#[derive(Debug)]
pub struct Follower {
    from: Arc<dyn BackupStore>,
    to: Arc<dyn BackupStore>,
    opts: ReplicateOptions,
    /// what the target holds, as the last run left it (`None`: list it)
    held: Option<BTreeSet<ArtifactRef>>,
    /// per history, the first version of the newest WAL segment the source listed
    wal_since: BTreeMap<TimelineId, u64>,
    /// runs since the last that listed everything
    runs_since_listing: u32,
    /// the target's catalog generation as the last run left it: one that went back
    /// or vanished (the bucket wiped, the replica re-created) makes a run list everything
    target_generation: Option<u64>,
}

impl Follower {
    /// Every this many runs, a run lists everything.
    pub const LIST_EVERYTHING_EVERY: u32 = 16;

    /// A follower of `from` into `to`; nothing is read until [`Follower::run`].
    pub fn new(
        from: Arc<dyn BackupStore>,
        to: Arc<dyn BackupStore>,
        opts: ReplicateOptions,
    ) -> Follower {
        Follower {
            from,
            to,
            opts,
            held: None,
            wal_since: BTreeMap::new(),
            runs_since_listing: 0,
            target_generation: None,
        }
    }

    /// The store it copies into.
    pub fn target(&self) -> &Arc<dyn BackupStore> {
        &self.to
    }

    /// One run (see [`replicate_until`] for `go`).
    pub async fn run(
        &mut self,
        clock: &dyn Clock,
        go: &mut dyn FnMut() -> bool,
    ) -> Result<ReplicationReport> {
        let span = tracing::info_span!("replicate", from = %self.from.name(), to = %self.to.name());
        let everything = self.opts.prune
            || self.held.is_none()
            || self.runs_since_listing + 1 >= Follower::LIST_EVERYTHING_EVERY;
        let res = run(self, clock, go, everything).instrument(span).await;
        match &res {
            Ok(r) if r.caught_up => {
                self.runs_since_listing = if everything {
                    0
                } else {
                    self.runs_since_listing + 1
                };
            }
            // what it missed is found by listing everything
            _ => self.held = None,
        }
        res
    }
}

/// What a run copies from: the WAL segments `from` archived on each history since the
/// follower's last run, and the artifacts its catalog names.
async fn news(f: &Follower, source: &Manifest) -> bindspace_catalog::Result<Vec<ArtifactRef>> {
    let mut out: Vec<ArtifactRef> = source
        .entries
        .iter()
        .filter(|e| e.kind != BackupKind::Wal)
        .filter_map(recorded)
        .collect();
    out.sort_by_key(|r| {
        (
            r.id.kind() != ArtifactKind::Snapshot,
            r.id.versions(),
            r.id.timeline(),
        )
    });
    out.dedup();
    let histories: BTreeSet<TimelineId> = std::iter::once(bindspace_catalog::FIRST_TIMELINE)
        .chain(source.timelines.iter().map(|t| t.id))
        .chain(f.wal_since.keys().copied())
        .collect();
    for t in histories {
        let since = f.wal_since.get(&t).copied().unwrap_or(0);
        out.extend(
            f.from
                .list_since(ArtifactKind::WalSegment, t, since)
                .await?,
        );
    }
    Ok(out)
}

async fn run(
    f: &mut Follower,
    clock: &dyn Clock,
    go: &mut dyn FnMut() -> bool,
    mut list_everything: bool,
) -> Result<ReplicationReport> {
    let (from, to, opts) = (&f.from.clone(), &f.to.clone(), &f.opts.clone());
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
        if opts.prune {
            return Err(Error::Refused(format!(
                "{}: the newest catalog generation is damaged ({d}); --prune would delete what only it names (run `bindspace verify --repair` there first)",
                from.name()
            )));
        }
        // what only the damaged generation names is not replicated: not caught up
        report.failed.push(Finding {
            artifact: "the source's catalog".into(),
            detail: format!("read past a damaged newest generation: {d}"),
        });
    }
    let target = catalog_for_write(to).await?;
    // a target whose catalog went back or vanished since the last run was changed
    // behind the follower's back: what it remembers holding may be gone
    let generation = target.as_ref().map(|(g, _)| *g);
    if generation.unwrap_or(0) < f.target_generation.unwrap_or(0) {
        tracing::warn!(target = %to.name(), "the target's catalog went back: listing everything");
        list_everything = true;
    }
    report.listed_everything = list_everything;
    // taken: a run that fails part way leaves the next one to list everything
    let (wanted, mut held) = match (f.held.take(), list_everything) {
        (Some(held), false) => (news(f, &source.manifest).await?, held),
        _ => (
            everything(from).await?,
            everything(to).await?.into_iter().collect(),
        ),
    };
    let target_id = target.as_ref().and_then(|(_, m)| m.repository_id.clone());
    match (&source.manifest.repository_id, &target_id) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::Refused(format!(
                "{} holds another repository ({b}, the source is {a})",
                to.name()
            )));
        }
        _ if list_everything && target_id.is_none() && held.iter().any(|r| !wanted.contains(r)) => {
            return Err(Error::Refused(format!(
                "{} holds artifacts of no repository this one knows (no repository id in its catalog, artifacts the source does not have): not a replica of it",
                to.name()
            )));
        }
        _ if target.is_none() && opts.must_exist => {
            return Err(Error::Refused(format!(
                "{} holds no repository (--must-exist: nothing was copied; run once without it to start the replica)",
                to.name()
            )));
        }
        _ => {}
    }
    let held_by_id: BTreeMap<ArtifactId, ArtifactRef> = held.iter().map(|r| (r.id, *r)).collect();
    let mut left = wanted.iter().filter(|r| !held.contains(r)).count();
    // a source that may hold format-3 deltas (layout 6): the target's catalog says so
    // before any artifact is copied, so an older build never opens a replica that holds
    // one it cannot read (its planner lists artifacts, so even one whose catalog
    // record a failed commit below left out)
    let compact = source.manifest.compact_deltas
        || source.manifest.entries.iter().any(|e| e.format.is_some());
    if compact && left > 0 && !target.as_ref().is_some_and(|(_, m)| m.compact_deltas) {
        let mut tries = 0;
        loop {
            let (g, mut m) = catalog_for_write(to).await?.unwrap_or_default();
            m.compact_deltas = true;
            if m.repository_id.is_none() {
                m.repository_id.clone_from(&source.manifest.repository_id);
            }
            m.layout = m.layout_needed();
            match to.commit_manifest(g, &m).await {
                Ok(_) => break,
                Err(bindspace_catalog::Error::Conflict { .. }) if tries < 8 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    for r in &wanted {
        if held.contains(r) {
            report.already_held += 1;
            continue;
        }
        if !go() {
            report.failed.push(Finding {
                artifact: format!("{left} artifacts"),
                detail: "not copied: the run was stopped".into(),
            });
            break;
        }
        left -= 1;
        if let Some(other) = held_by_id.get(&r.id).filter(|_| !opts.prune) {
            report.conflicts.push(format!(
                "{}: the target holds other bytes under that name ({} bytes, not the source's {})",
                describe(&r.id),
                other.len,
                r.len
            ));
            continue;
        }
        match copy_one(from, to, r).await {
            Ok(n) => {
                tracing::debug!(artifact = %r.id, bytes = n, "replicated");
                report.copied.push(describe(&r.id));
                report.bytes_copied += n;
                if let Some(old) = held_by_id.get(&r.id) {
                    held.remove(old);
                }
                held.insert(*r);
            }
            // taken from the source's catalog, not its listing: one the source does
            // not hold is left out, as a run that lists everything leaves it out
            Err(_) if !list_everything && matches!(from.holds(r).await, Ok(false)) => {
                tracing::debug!(artifact = %r.id, "named by the source's catalog, not held there");
            }
            Err(detail) => report.failed.push(Finding {
                artifact: describe(&r.id),
                detail,
            }),
        }
    }
    // the catalog: the source's records whose artifacts the target now holds exactly
    // (a backup whose copy failed is recorded by the run that copies it)
    let mut tries = 0;
    loop {
        let (g, mut m) = catalog_for_write(to).await?.unwrap_or_default();
        let mut conflicts = Vec::new();
        let (added, pruned) =
            merge_into(&mut m, &source.manifest, &held, opts.prune, &mut conflicts);
        if added == 0 && pruned.is_empty() && g > 0 {
            f.target_generation = Some(g);
            report.conflicts.extend(conflicts);
            break;
        }
        m.layout = m.layout_needed();
        match to.commit_manifest(g, &m).await {
            Ok(committed) => {
                f.target_generation = Some(committed);
                report.catalog_added = added;
                report.pruned = pruned;
                report.conflicts.extend(conflicts);
                break;
            }
            Err(bindspace_catalog::Error::Conflict { .. }) if tries < 8 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
    if opts.prune {
        // after the catalog no longer names them; never what the source's catalog
        // still names (its copy may be lost at the source: this may be the last), and
        // WAL only below the oldest full the source keeps on that history
        let listed: BTreeSet<ArtifactId> = wanted.iter().map(|r| r.id).collect();
        let named: BTreeSet<ArtifactId> =
            source.manifest.entries.iter().map(|e| e.artifact).collect();
        let oldest_full = |t| {
            source
                .manifest
                .entries
                .iter()
                .filter(|e| e.kind == BackupKind::Full && e.timeline == t)
                .map(|e| e.to_version)
                .min()
        };
        for r in held
            .iter()
            .filter(|r| !listed.contains(&r.id) && !named.contains(&r.id))
        {
            if let ArtifactId::WalSegment { last, timeline, .. } = r.id
                && oldest_full(timeline).is_none_or(|f| last > f)
            {
                continue;
            }
            match to.delete(r.id).await {
                Ok(()) => report.pruned.push(describe(&r.id)),
                Err(e) => report.failed.push(Finding {
                    artifact: describe(&r.id),
                    detail: format!("not pruned: {e}"),
                }),
            }
        }
    }
    report.caught_up = report.failed.is_empty() && report.conflicts.is_empty();
    report.finished_us = clock.now_us();
    // where the next run lists each history's WAL from: the last segment of the
    // contiguous run the target holds from where this run listed (a segment that
    // lands out of order, after one past it, is still found)
    let mut by_timeline: BTreeMap<TimelineId, BTreeMap<u64, u64>> = BTreeMap::new();
    for r in held
        .iter()
        .filter(|r| r.id.kind() == ArtifactKind::WalSegment)
    {
        let (first, last) = r.id.versions();
        let e = by_timeline
            .entry(r.id.timeline())
            .or_default()
            .entry(first)
            .or_insert(last);
        *e = (*e).max(last);
    }
    for (t, segs) in by_timeline {
        let start = f
            .wal_since
            .get(&t)
            .copied()
            .filter(|_| !list_everything)
            .unwrap_or(0);
        let Some((&first, &last)) = segs.range(start..).next() else {
            continue;
        };
        let (mut cursor, mut end) = (first, last);
        while let Some(&next_last) = segs.get(&(end + 1)) {
            cursor = end + 1;
            end = next_last;
        }
        f.wal_since.insert(t, cursor);
    }
    // after pruning, the next run lists again
    f.held = (!opts.prune).then_some(held);
    tracing::info!(
        copied = report.copied.len(),
        bytes = report.bytes_copied,
        caught_up = report.caught_up,
        "replication run finished"
    );
    Ok(report)
}

/// Merges `source`'s records into the target's catalog `m`: histories, backups whose
/// artifact the target holds exactly (`held`), restore points, expired histories. A
/// record that differs under the same name (a history with another branch point, a
/// backup with other bytes, a restore point at another version) is a conflict: kept
/// as the target has it, with everything on that history left out, unless `mirror`
/// (then the source's replaces it, and what the source lacks is removed). Returns how
/// many records were added or replaced, and what was removed.
fn merge_into(
    m: &mut Manifest,
    source: &Manifest,
    held: &BTreeSet<ArtifactRef>,
    mirror: bool,
    conflicts: &mut Vec<String>,
) -> (usize, Vec<String>) {
    let mut changed = 0;
    // histories first: a timeline id the two assigned to different branches
    let mut apart: BTreeSet<TimelineId> = BTreeSet::new();
    for t in &source.timelines {
        match m.timelines.iter_mut().find(|x| x.id == t.id) {
            Some(x) if x != t && mirror => {
                *x = t.clone();
                changed += 1;
            }
            Some(x) if x != t => {
                conflicts.push(format!(
                    "timeline {}: the target's branches from timeline {} at version {}, the source's from timeline {} at version {}",
                    t.id, x.parent, x.branch_version, t.parent, t.branch_version
                ));
                apart.insert(t.id);
            }
            _ => {}
        }
    }
    // and every history that descends from one of those
    loop {
        let more: Vec<TimelineId> = source
            .timelines
            .iter()
            .filter(|t| apart.contains(&t.parent) && !apart.contains(&t.id))
            .map(|t| t.id)
            .collect();
        if more.is_empty() {
            break;
        }
        apart.extend(more);
    }
    // a replica keeps the epoch keys it may still need (see keyring_for_copy)
    let keyring = match &source.keyring {
        None => None,
        Some(k) => match bindspace_catalog::keyring_for_copy(m.keyring.as_deref(), k) {
            Ok(k) => k,
            Err(why) => {
                conflicts.push(why);
                None
            }
        },
    };
    let mut add = Manifest {
        repository_id: source.repository_id.clone(),
        keyring,
        compression: source.compression.clone(),
        compact_deltas: source.compact_deltas,
        layout: source.layout,
        timelines: source
            .timelines
            .iter()
            .filter(|t| !apart.contains(&t.id))
            .cloned()
            .collect(),
        expired: source
            .expired
            .iter()
            .filter(|x| !apart.contains(&x.id))
            .cloned()
            .collect(),
        superseded: source
            .superseded
            .iter()
            .filter(|x| !apart.contains(&x.id) && x.by.is_none_or(|b| !apart.contains(&b)))
            .cloned()
            .collect(),
        ..Manifest::default()
    };
    for e in source
        .entries
        .iter()
        .filter(|e| !apart.contains(&e.timeline))
    {
        let exact = e.kind == BackupKind::Wal || recorded(e).is_some_and(|r| held.contains(&r));
        match m.entries.iter_mut().find(|x| x.id == e.id) {
            Some(x) if x == e => {}
            Some(x) if mirror && exact => {
                *x = e.clone();
                changed += 1;
            }
            Some(_) if !mirror => conflicts.push(format!(
                "backup {}: the target records it differently",
                e.id
            )),
            Some(_) => {}
            None if exact => add.entries.push(e.clone()),
            None => {}
        }
    }
    for p in source
        .restore_points
        .iter()
        .filter(|p| !apart.contains(&p.timeline))
    {
        match m.restore_points.iter_mut().find(|x| x.name == p.name) {
            Some(x) if (x.version, x.timeline, &x.root) == (p.version, p.timeline, &p.root) => {}
            Some(x) if mirror => {
                *x = p.clone();
                changed += 1;
            }
            Some(x) => conflicts.push(format!(
                "restore point {}: the target's is version {} on timeline {}, the source's version {} on timeline {}",
                p.name, x.version, x.timeline, p.version, p.timeline
            )),
            None => add.restore_points.push(p.clone()),
        }
    }
    changed += m.merge_from(&add);
    let mut removed = Vec::new();
    if mirror {
        m.entries.retain(|e| {
            let keep = source.entries.iter().any(|x| x.id == e.id);
            if !keep {
                removed.push(format!("backup {}", e.id));
            }
            keep
        });
        m.restore_points.retain(|p| {
            let keep = source.restore_points.iter().any(|x| x.name == p.name);
            if !keep {
                removed.push(format!("restore point {}", p.name));
            }
            keep
        });
    }
    (changed, removed)
}
