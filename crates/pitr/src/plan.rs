//! The planner: from what the stores hold to the cheapest restore of a target.
//!
//! The newest full snapshot at or before the target (among the three newest, the one
//! whose delta path reaches furthest, then the fewest bytes), the cheapest delta path
//! from it (Dijkstra over delta edges weighted by bytes plus a small per-fetch cost: one
//! differential beats many incrementals), then the contiguous archived WAL segments
//! that replay to the exact version or time.
//!
//! It plans on one timeline (the newest unless asked, or the restore point's) and uses
//! only the artifacts of that timeline's [`History`]: an ancestor's up to the point
//! where the history branched off it, then the next timeline's own. Artifacts of
//! other histories are invisible to it, whatever their version numbers.

use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;

use bindspace_catalog::{ArtifactKind, ArtifactRef, History, Manifest, TimelineId, TimelineRecord};

use crate::inventory::{Inventory, Sources};
use crate::{Error, Result, Target};

/// One artifact of a plan and the stores that hold it, in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The artifact.
    pub artifact: ArtifactRef,
    /// Names of the stores holding it.
    pub stores: Vec<String>,
    /// Indices of those stores in the plan's [`Sources`].
    pub(crate) idx: Vec<usize>,
    /// For a WAL segment of an ancestor timeline: its last record the history uses
    /// (the branch point); `u64::MAX` otherwise.
    pub until: u64,
}

/// A state root some record holds for a version of the restored history: a backup
/// entry, a restore point, a timeline's branch point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRoot {
    /// Who recorded it ("incremental t1-incr-60", "restore point \"pre-deploy\"", …).
    pub by: String,
    /// The root, hex as recorded.
    pub root: String,
}

/// A restore, before it runs. It owns the [`Sources`] it was planned from:
/// [`restore`](crate::restore) fetches from exactly those.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePlan {
    /// What was asked for.
    pub target: Target,
    /// The timeline restored (its history decides which artifacts count).
    pub timeline: TimelineId,
    /// That timeline's history: which timeline's artifacts hold which versions.
    pub history: History,
    /// The version the restore ends at; for a time target, the newest version the
    /// sources reach (the restore stops at the last record at or before the time, and
    /// the restored space tells the version).
    pub version: u64,
    /// For time targets: replay stops at the last record at or before this time.
    pub time_limit: Option<u64>,
    /// For a time target before a timeline of the history existed: its branch point
    /// `(version, timeline, parent, created_us)`. A result at that version cannot be
    /// told from the parent having moved past it by then, so the restore refuses it.
    pub before_branch: Option<(u64, TimelineId, TimelineId, u64)>,
    /// The full snapshot it starts from.
    pub base: Step,
    /// Deltas applied in order.
    pub deltas: Vec<Step>,
    /// WAL segments replayed in order.
    pub wal: Vec<Step>,
    /// Bytes fetched in all.
    pub estimated_bytes: u64,
    /// Stores that could not be listed (down, unreachable), with why.
    pub unavailable: Vec<String>,
    /// The state roots recorded for versions of this history, by version: the restore
    /// checks every state it passes through that has one (base, each delta, WAL
    /// records, the result).
    pub recorded: BTreeMap<u64, Vec<RecordedRoot>>,
    pub(crate) sources: Sources,
}

impl RestorePlan {
    /// Refuses a time-target result at the branch point of a timeline that did not
    /// exist yet at the target time (see [`RestorePlan::before_branch`]).
    pub(crate) fn check_time_result(&self, version: u64) -> Result<()> {
        match self.before_branch {
            Some((b, child, parent, created)) if version == b => Err(Error::NotRestorable {
                target: self.target.to_string(),
                reason: format!(
                    "timeline {child} did not exist yet then (created {}); its history reaches version {b}, its branch point on timeline {parent}, by that time, but whether timeline {parent} had already gone past {b} cannot be told from timeline {child}'s history: restore with --timeline {parent} for what the repository held then",
                    bindspace_core::clock::rfc3339(created)
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The stores this plan fetches from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Every step in the order it is applied: base, deltas, WAL.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        std::iter::once(&self.base)
            .chain(self.deltas.iter())
            .chain(self.wal.iter())
    }
}

impl fmt::Display for RestorePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "target:  {} on timeline {} → version {}",
            self.target, self.timeline, self.version
        )?;
        if self.history.stretches.len() > 1 {
            let h: Vec<String> = self
                .history
                .stretches
                .iter()
                .map(|s| match s.hi {
                    u64::MAX => format!("timeline {} from {}", s.timeline, s.lo),
                    hi => format!("timeline {} {}..={hi}", s.timeline, s.lo),
                })
                .collect();
            writeln!(f, "history: {}", h.join(", then "))?;
        }
        let line = |f: &mut fmt::Formatter<'_>, what: &str, s: &Step| {
            let until = match s.until {
                u64::MAX => String::new(),
                u => format!(" up to version {u} (the branch point)"),
            };
            writeln!(
                f,
                "{what:<8} {}{until} ({} bytes) from {}",
                s.artifact.id,
                s.artifact.len,
                s.stores.join(", ")
            )
        };
        line(f, "full:", &self.base)?;
        for d in &self.deltas {
            line(f, "delta:", d)?;
        }
        for w in &self.wal {
            line(f, "wal:", w)?;
        }
        writeln!(f, "fetch:   {} bytes", self.estimated_bytes)?;
        if let Some((b, child, parent, _)) = self.before_branch {
            writeln!(
                f,
                "note:    timeline {child} did not exist yet at that time: a result at its branch point {b} is refused (use --timeline {parent})"
            )?;
        }
        // WAL checkpoints the replay passes are checked as it goes; they are found in
        // the log, so they are not listed here
        // the recorded roots the restore checks: at the base, at each delta's end, then
        // at every WAL record it replays (a time target may stop before some)
        let ends: Vec<u64> = self
            .steps()
            .take(1 + self.deltas.len())
            .map(|s| s.artifact.id.versions().1)
            .collect();
        let reached = ends.last().copied().unwrap_or(0);
        let end = if self.time_limit.is_some() {
            u64::MAX
        } else {
            self.version
        };
        let mut on_path: Vec<String> = Vec::new();
        let mut line = |v: u64, r: &[RecordedRoot], note: &str| {
            on_path.push(format!("version {v}: {} ({}){note}", r[0].root, r[0].by));
        };
        for v in &ends {
            if let Some(r) = self.recorded.get(v) {
                line(*v, r, "");
            }
        }
        if !self.wal.is_empty() && reached < end {
            let note = if self.time_limit.is_some() {
                ", if the replay reaches it"
            } else {
                ""
            };
            for (v, r) in self.recorded.range(reached + 1..=end) {
                line(*v, r, note);
            }
        }
        if self.time_limit.is_none() && !self.recorded.contains_key(&self.version) {
            writeln!(
                f,
                "verify:  unverified: no root recorded for version {}",
                self.version
            )?;
        }
        for r in on_path {
            writeln!(f, "root:    {r}")?;
        }
        for u in &self.unavailable {
            writeln!(f, "skipped: {u}")?;
        }
        Ok(())
    }
}

pub(crate) fn step(sources: &Sources, r: &ArtifactRef, idx: &[usize]) -> Step {
    Step {
        artifact: *r,
        stores: idx.iter().map(|&i| sources.get(i).name()).collect(),
        idx: idx.to_vec(),
        until: u64::MAX,
    }
}

/// Plans a restore to `target` on the newest timeline (a restore point's own
/// timeline for a restore point) from whatever `sources` hold (see the module docs).
pub async fn plan(sources: impl Into<Sources>, target: &Target) -> Result<RestorePlan> {
    plan_on(sources, target, None).await
}

/// [`plan`] on timeline `timeline` (`None`: the newest, or the restore point's).
pub async fn plan_on(
    sources: impl Into<Sources>,
    target: &Target,
    timeline: Option<TimelineId>,
) -> Result<RestorePlan> {
    let sources = sources.into();
    let inv = Inventory::take(&sources).await;
    plan_from(sources, inv, target, timeline)
}

/// `plan` made again without the artifacts in `exclude` (each failed verification in
/// every store that held it): another path to the same target, if there is one.
pub(crate) async fn replan(
    plan: &RestorePlan,
    exclude: &std::collections::BTreeSet<ArtifactRef>,
) -> Result<RestorePlan> {
    let mut inv = Inventory::take(&plan.sources).await;
    inv.artifacts.retain(|r, _| !exclude.contains(r));
    plan_from(plan.sources.clone(), inv, &plan.target, Some(plan.timeline))
}

/// The timelines every readable catalog records, merged; catalogs that disagree about
/// a timeline are refused (two histories would be mixed).
pub(crate) fn merged_timelines(manifests: &[Manifest]) -> std::result::Result<Manifest, String> {
    let mut out = Manifest::default();
    for m in manifests {
        for t in &m.timelines {
            match out.timeline(t.id) {
                Some(known)
                    if known.parent != t.parent || known.branch_version != t.branch_version =>
                {
                    return Err(format!(
                        "the catalogs disagree about timeline {}: branched from {} at {} in one, from {} at {} in another",
                        t.id, known.parent, known.branch_version, t.parent, t.branch_version
                    ));
                }
                Some(_) => {}
                None => out.timelines.push(t.clone()),
            }
        }
        // a timeline any catalog says was expired is expired
        for e in &m.expired {
            match out.expired.iter_mut().find(|x| x.id == e.id) {
                Some(x) if x.expired_us <= e.expired_us => {}
                Some(x) => *x = e.clone(),
                None => out.expired.push(e.clone()),
            }
        }
    }
    out.timelines.sort_by_key(|t: &TimelineRecord| t.id);
    Ok(out)
}

/// The WAL segments of `history` that continue a state at version `reached`, contiguous
/// record by record up to `max_version` (an ancestor's segment cut at the branch
/// point), and the last version they cover (`reached` when none does).
pub(crate) fn wal_chain(
    sources: &Sources,
    history: &History,
    segments: &[(&ArtifactRef, &Vec<usize>)],
    reached: u64,
    max_version: u64,
) -> (Vec<Step>, u64) {
    let mut wal = Vec::new();
    let mut next = reached + 1;
    let mut covered = reached;
    while covered < max_version {
        // record `next` belongs to the timeline that holds state `next - 1` and `next`
        let Some(owner) = history.owner_of_record(next) else {
            break;
        };
        let Some((r, idx)) = segments
            .iter()
            .filter(|(r, _)| {
                let (a, b) = r.id.versions();
                r.id.timeline() == owner && a <= next && b >= next
            })
            .max_by_key(|(r, _)| r.id.versions().1)
        else {
            break;
        };
        let mut s = step(sources, r, idx);
        let limit = history.wal_limit(&r.id);
        if limit < r.id.versions().1 {
            s.until = limit;
        }
        covered = r.id.versions().1.min(limit);
        wal.push(s);
        next = covered + 1;
    }
    (wal, covered)
}

/// The planner proper, on an inventory already taken.
pub(crate) fn plan_from(
    sources: Sources,
    inv: Inventory,
    target: &Target,
    timeline: Option<TimelineId>,
) -> Result<RestorePlan> {
    let not = |reason: String| Error::NotRestorable {
        target: target.to_string(),
        reason,
    };
    if let Some(refused) = &inv.unknown_layout {
        return Err(not(refused.clone()));
    }
    if inv.unlisted == sources.stores().len() {
        return Err(Error::NoStoreReadable {
            target: target.to_string(),
            detail: inv.unavailable.join("; "),
            retryable: inv.unavailable_retryable,
        });
    }
    let timelines = merged_timelines(&inv.manifests).map_err(not)?;
    // artifacts of a history no readable catalog records: which timeline is the newest
    // cannot be told, and the default must not fall back to an older history
    let unrecorded: std::collections::BTreeSet<TimelineId> = inv
        .artifacts
        .keys()
        .map(|r| r.id.timeline())
        .filter(|&t| t != bindspace_catalog::FIRST_TIMELINE && timelines.timeline(t).is_none())
        .collect();
    if !unrecorded.is_empty() && timeline.is_none() {
        return Err(not(format!(
            "the stores hold artifacts of timeline(s) {unrecorded:?} that no readable catalog records{}: the newest history cannot be told; repair the catalog, or name the timeline (--timeline 1 for the first history)",
            if inv.unavailable.is_empty() {
                String::new()
            } else {
                format!(" (unreadable: {})", inv.unavailable.join("; "))
            }
        )));
    }
    // Resolve the target to a timeline, a version bound and an optional time bound.
    let (timeline, max_version, time_limit) = match target {
        Target::Latest => (timeline, u64::MAX, None),
        Target::Version(v) => (timeline, *v, None),
        Target::Time(t) => (timeline, u64::MAX, Some(*t)),
        Target::RestorePoint(name) => {
            let rp = inv
                .manifests
                .iter()
                .flat_map(|m| &m.restore_points)
                .find(|p| &p.name == name)
                .ok_or_else(|| {
                    not(if inv.unavailable.is_empty() {
                        format!("no catalog names a restore point {name:?}")
                    } else {
                        format!(
                            "no readable catalog names a restore point {name:?} (could not read: {})",
                            inv.unavailable.join("; ")
                        )
                    })
                })?;
            // every catalog that names it must name the same state
            if let Some(other) = inv
                .manifests
                .iter()
                .flat_map(|m| &m.restore_points)
                .filter(|p| &p.name == name)
                .find(|p| {
                    (p.timeline, p.version) != (rp.timeline, rp.version)
                        || matches!((&p.root, &rp.root), (Some(a), Some(b)) if a != b)
                })
            {
                return Err(not(format!(
                    "the catalogs disagree about it: version {} of timeline {} in one, version {} of timeline {} in another{}; drop it and create it again",
                    rp.version,
                    rp.timeline,
                    other.version,
                    other.timeline,
                    if (other.timeline, other.version) == (rp.timeline, rp.version) {
                        " (with different roots)"
                    } else {
                        ""
                    }
                )));
            }
            if let Some(t) = timeline
                && t != rp.timeline
            {
                return Err(not(format!(
                    "it names version {} of timeline {}, not of timeline {t}",
                    rp.version, rp.timeline
                )));
            }
            (Some(rp.timeline), rp.version, None)
        }
    };
    let timeline = timeline.unwrap_or_else(|| timelines.newest_live_timeline());
    timelines
        .check_live(timeline)
        .map_err(|e| not(e.to_string()))?;
    let history = History::of(&timelines, timeline).map_err(not)?;
    let before_branch = time_limit.and_then(|t| {
        history.stretches.windows(2).find_map(|w| {
            let rec = timelines.timeline(w[1].timeline)?;
            (rec.created_us > t).then_some((w[1].lo, w[1].timeline, w[0].timeline, rec.created_us))
        })
    });
    // For a time target, an artifact is usable if a catalog entry shows its version was
    // reached by then (the backup started at or before the time).
    let reached_by = |r: &ArtifactRef| -> bool {
        let Some(t) = time_limit else { return true };
        inv.manifests
            .iter()
            .flat_map(|m| &m.entries)
            .any(|e| e.artifact == r.id && e.start_us <= t)
    };
    let mut bases: Vec<(&ArtifactRef, &Vec<usize>)> = inv
        .of_kind(ArtifactKind::Snapshot)
        .filter(|(r, _)| r.id.versions().0 <= max_version && history.uses(&r.id) && reached_by(r))
        .collect();
    bases.sort_by_key(|(r, _)| std::cmp::Reverse(r.id.versions().0));
    if bases.is_empty() {
        let mut reason = format!(
            "no full snapshot at or before it on timeline {timeline}'s history in {}",
            sources.names().join(", ")
        );
        if let Some(t) = time_limit {
            reason.push_str(&nearest_to_time(&inv, &history, t));
        }
        if !inv.unavailable.is_empty() {
            reason.push_str(&format!(
                " (could not read: {})",
                inv.unavailable.join("; ")
            ));
        }
        return Err(not(reason));
    }
    let deltas: Vec<(&ArtifactRef, &Vec<usize>)> = inv
        .of_kind(ArtifactKind::Delta)
        .filter(|(r, _)| {
            let (a, b) = r.id.versions();
            a < b && b <= max_version && history.uses(&r.id) && reached_by(r)
        })
        .collect();
    let segments: Vec<(&ArtifactRef, &Vec<usize>)> = inv
        .of_kind(ArtifactKind::WalSegment)
        .filter(|(r, _)| history.uses(&r.id))
        .collect();

    // Among the three newest bases: the one whose delta path reaches furthest, then
    // the fewest bytes.
    let mut best: Option<(u64, u64, usize, Vec<usize>)> = None; // (reach, cost, base, path)
    for (bi, (base, _)) in bases.iter().enumerate().take(3) {
        let (reach, cost, path) = cheapest_path(base.id.versions().0, &deltas);
        let cost = cost + base.len;
        let better = match &best {
            None => true,
            Some((r, c, _, _)) => reach > *r || (reach == *r && cost < *c),
        };
        if better {
            best = Some((reach, cost, bi, path));
        }
    }
    let (reached, _, bi, path) = best.expect("bases is not empty (checked above)");
    let (base_ref, base_idx) = bases[bi];
    // WAL: contiguous segments from reached + 1 on.
    let (wal, covered) = wal_chain(&sources, &history, &segments, reached, max_version);
    let next = covered + 1;
    let version = match target {
        Target::Version(_) | Target::RestorePoint(_) => {
            if covered < max_version {
                return Err(not(format!(
                    "the newest state reachable is version {covered} (full {} + {} deltas + {} WAL segments); the WAL archive has no segment holding version {next}",
                    base_ref.id.versions().0,
                    path.len(),
                    wal.len()
                )));
            }
            max_version
        }
        Target::Latest | Target::Time(_) => covered,
    };
    let deltas: Vec<Step> = path
        .iter()
        .map(|&i| step(&sources, deltas[i].0, deltas[i].1))
        .collect();
    let base = step(&sources, base_ref, base_idx);
    let recorded = recorded_roots(&inv.manifests, &timelines, &history);
    let estimated_bytes = base.artifact.len
        + deltas.iter().map(|d| d.artifact.len).sum::<u64>()
        + wal.iter().map(|w| w.artifact.len).sum::<u64>();
    Ok(RestorePlan {
        target: target.clone(),
        timeline,
        history,
        version,
        time_limit,
        before_branch,
        base,
        deltas,
        wal,
        estimated_bytes,
        unavailable: inv.unavailable,
        recorded,
        sources,
    })
}

/// For a time with no full at or before it: the first restorable time of the history
/// and the restore point nearest after it, in words (litestream #564: "no backup
/// found" alone leaves the operator guessing).
fn nearest_to_time(inv: &Inventory, history: &History, t: u64) -> String {
    use bindspace_core::clock::rfc3339;
    let first = inv
        .manifests
        .iter()
        .flat_map(|m| &m.entries)
        .filter(|e| {
            e.artifact.kind() == ArtifactKind::Snapshot
                && history.uses(&e.artifact)
                && inv.artifacts.keys().any(|r| r.id == e.artifact)
        })
        .min_by_key(|e| e.start_us);
    let mut s = match first {
        Some(e) if e.start_us > t => format!(
            ": {} is before the first restorable time, {} (full {} at version {})",
            bindspace_core::clock::rfc3339_exact(t),
            bindspace_core::clock::rfc3339_exact(e.start_us),
            e.id,
            e.to_version
        ),
        Some(_) => String::new(),
        None => ": the history has no full yet (a backup must run first)".into(),
    };
    // a restore point that can be restored: on this history, at or after the first full
    if let Some(first) = first
        && let Some(p) = inv
            .manifests
            .iter()
            .flat_map(|m| &m.restore_points)
            .filter(|p| {
                p.created_us > t
                    && p.version >= first.to_version
                    && history
                        .stretches
                        .iter()
                        .any(|s| s.timeline == p.timeline && (s.lo..=s.hi).contains(&p.version))
            })
            .min_by_key(|p| p.created_us)
    {
        s.push_str(&format!(
            "; the nearest restore point after it is {:?} (version {}, made {})",
            p.name,
            p.version,
            rfc3339(p.created_us)
        ));
    }
    s
}

/// Every state root the catalogs record for versions of `history`: backup entries whose
/// artifacts the history uses, restore points on it, its branch points.
pub(crate) fn recorded_roots(
    manifests: &[Manifest],
    timelines: &Manifest,
    history: &History,
) -> BTreeMap<u64, Vec<RecordedRoot>> {
    let mut out: BTreeMap<u64, Vec<RecordedRoot>> = BTreeMap::new();
    let mut add = |v: u64, by: String, root: &str| {
        let list = out.entry(v).or_default();
        if !list.iter().any(|r| r.by == by && r.root == root) {
            list.push(RecordedRoot {
                by,
                root: root.to_owned(),
            });
        }
    };
    for m in manifests {
        for e in &m.entries {
            if let Some(root) = &e.root
                && e.artifact.kind() != ArtifactKind::WalSegment
                && history.uses(&e.artifact)
            {
                add(e.to_version, format!("{} {}", e.kind.name(), e.id), root);
            }
        }
        for p in &m.restore_points {
            // a point on a timeline of this history at or below where the history
            // leaves it (below its own branch point it names a shared state)
            if let Some(root) = &p.root
                && history
                    .stretches
                    .iter()
                    .any(|s| s.timeline == p.timeline && p.version <= s.hi)
            {
                add(p.version, format!("restore point {:?}", p.name), root);
            }
        }
    }
    // every catalog's record of each branch point (catalogs that disagree about its
    // root then fail the check there)
    for s in history.stretches.iter().skip(1) {
        for rec in manifests
            .iter()
            .filter_map(|m| m.timeline(s.timeline))
            .chain(timelines.timeline(s.timeline))
        {
            if let Some(root) = &rec.root {
                add(
                    rec.branch_version,
                    format!("timeline {}'s branch point", rec.id),
                    root,
                );
            }
        }
    }
    out
}

/// Dijkstra over delta edges from `start`: the furthest version reachable and the
/// cheapest (fewest bytes) path to it, as indices into `deltas`.
fn cheapest_path(start: u64, deltas: &[(&ArtifactRef, &Vec<usize>)]) -> (u64, u64, Vec<usize>) {
    let mut dist: BTreeMap<u64, (u64, Option<(u64, usize)>)> = BTreeMap::new();
    dist.insert(start, (0, None));
    let mut heap = BinaryHeap::new();
    heap.push(std::cmp::Reverse((0u64, start)));
    while let Some(std::cmp::Reverse((d, v))) = heap.pop() {
        if dist.get(&v).is_some_and(|(best, _)| *best < d) {
            continue;
        }
        for (i, (r, _)) in deltas.iter().enumerate() {
            let (a, b) = r.id.versions();
            if a != v {
                continue;
            }
            // a small per-artifact cost so equal-byte paths prefer fewer fetches
            let nd = d + r.len + 4096;
            if dist.get(&b).is_none_or(|(best, _)| nd < *best) {
                dist.insert(b, (nd, Some((v, i))));
                heap.push(std::cmp::Reverse((nd, b)));
            }
        }
    }
    let (&reach, &(cost, _)) = dist.iter().next_back().expect("start is in dist");
    let mut path = Vec::new();
    let mut cur = reach;
    while let Some((_, Some((prev, i)))) = dist.get(&cur) {
        path.push(*i);
        cur = *prev;
    }
    path.reverse();
    (reach, cost, path)
}

#[cfg(test)]
mod tests;
