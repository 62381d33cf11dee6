//! # bindspace-pitr
//!
//! Point-in-time recovery. Given the stores a repository lives in (any
//! [`BackupStore`]: object store, Redis, PostgreSQL, in priority order) and a
//! [`Target`], [`plan`] picks the newest full snapshot at or before the target, the
//! cheapest delta path from it (by bytes: one differential beats many incrementals),
//! then the archived WAL segments that replay to the exact version or time. It lists
//! every store, so a tier that is down or lacks a link is simply not used: Redis
//! flushed → snapshots from S3, deltas from PostgreSQL, WAL from the archive. The plan
//! prints as an explanation ([`RestorePlan`]'s `Display`), and [`restore`] runs it,
//! fetching each artifact from the first store that serves it intact.
//!
//! Flashback reads: [`as_of`] reads one address at a target without applying deltas or
//! WAL to any other address; [`versions`] lists an address's history from the WAL.
//!
//! What it is not: no scheduling, no writing of backups (`bindspace-catalog`'s
//! `Repository` and the engine do that).

use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::sync::Arc;

use bindspace_catalog::{ArtifactKind, ArtifactRef, BackupStore, Manifest};
use bindspace_core::{Addr, BindSpace, snapshot};
use bindspace_wal::{Op, Record, RecordOp, Replayer};
use bytes::Bytes;

mod error;
pub use error::{Error, Result};

/// What to restore to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The newest state any store can reach.
    Latest,
    /// Exactly this version.
    Version(u64),
    /// The last state at or before this time (µs since the epoch).
    Time(u64),
    /// A named restore point from the catalog.
    RestorePoint(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Latest => write!(f, "latest"),
            Target::Version(v) => write!(f, "version {v}"),
            Target::Time(t) => write!(f, "time {t} µs"),
            Target::RestorePoint(n) => write!(f, "restore point {n:?}"),
        }
    }
}

/// One artifact of a plan and the stores that hold it, in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The artifact.
    pub artifact: ArtifactRef,
    /// Names of the stores holding it.
    pub stores: Vec<String>,
    idx: Vec<usize>,
}

/// A restore, before it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePlan {
    /// What was asked for.
    pub target: Target,
    /// The version the restore ends at; for a time target, the newest version the
    /// sources reach (the restore stops at the last record at or before the time, and
    /// the restored space tells the version).
    pub version: u64,
    /// For time targets: replay stops at the last record at or before this time.
    pub time_limit: Option<u64>,
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
}

impl fmt::Display for RestorePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "target:  {} → version {}", self.target, self.version)?;
        let line = |f: &mut fmt::Formatter<'_>, what: &str, s: &Step| {
            writeln!(
                f,
                "{what:<8} {} ({} bytes) from {}",
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
        for u in &self.unavailable {
            writeln!(f, "skipped: {u}")?;
        }
        Ok(())
    }
}

/// Everything the stores hold, merged.
struct Inventory {
    /// artifact → indices of the stores holding it
    artifacts: BTreeMap<ArtifactRef, Vec<usize>>,
    manifests: Vec<Manifest>,
    unavailable: Vec<String>,
}

async fn inventory(stores: &[Arc<dyn BackupStore>]) -> Inventory {
    let mut inv = Inventory {
        artifacts: BTreeMap::new(),
        manifests: Vec::new(),
        unavailable: Vec::new(),
    };
    for (i, s) in stores.iter().enumerate() {
        let mut listed = Vec::new();
        let mut failed = None;
        for kind in ArtifactKind::ALL {
            match s.list(kind, 0, u64::MAX).await {
                Ok(v) => listed.extend(v),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            tracing::warn!(store = %s.name(), error = %e, "store unavailable for restore");
            inv.unavailable.push(format!("{}: {e}", s.name()));
            continue;
        }
        for r in listed {
            inv.artifacts.entry(r).or_default().push(i);
        }
        if let Ok(Some((_, m))) = s.read_manifest().await {
            inv.manifests.push(m);
        }
    }
    inv
}

fn step(stores: &[Arc<dyn BackupStore>], r: &ArtifactRef, idx: &[usize]) -> Step {
    Step {
        artifact: *r,
        stores: idx.iter().map(|&i| stores[i].name()).collect(),
        idx: idx.to_vec(),
    }
}

/// Plans a restore to `target` from whatever `stores` hold (see the crate docs).
pub async fn plan(stores: &[Arc<dyn BackupStore>], target: &Target) -> Result<RestorePlan> {
    let inv = inventory(stores).await;
    let not = |reason: String| Error::NotRestorable {
        target: target.to_string(),
        reason,
    };
    if inv.artifacts.is_empty() && !inv.unavailable.is_empty() {
        return Err(not(format!(
            "no store could be read: {}",
            inv.unavailable.join("; ")
        )));
    }
    // Resolve the target to a version bound and an optional time bound.
    let (max_version, time_limit) = match target {
        Target::Latest => (u64::MAX, None),
        Target::Version(v) => (*v, None),
        Target::Time(t) => (u64::MAX, Some(*t)),
        Target::RestorePoint(name) => {
            let rp = inv
                .manifests
                .iter()
                .flat_map(|m| &m.restore_points)
                .find(|p| &p.name == name)
                .ok_or_else(|| not(format!("no catalog names a restore point {name:?}")))?;
            (rp.version, None)
        }
    };
    // For a time target, an artifact is usable if a catalog entry shows its version was
    // reached by then (the backup started at or before the time).
    let reached_by = |r: &ArtifactRef| -> bool {
        let Some(t) = time_limit else { return true };
        inv.manifests
            .iter()
            .flat_map(|m| &m.entries)
            .any(|e| e.artifact == r.id && e.start_us <= t)
    };
    let of_kind = |k: ArtifactKind| inv.artifacts.iter().filter(move |(r, _)| r.id.kind() == k);
    let mut bases: Vec<(&ArtifactRef, &Vec<usize>)> = of_kind(ArtifactKind::Snapshot)
        .filter(|(r, _)| r.id.versions().0 <= max_version && reached_by(r))
        .collect();
    bases.sort_by_key(|(r, _)| std::cmp::Reverse(r.id.versions().0));
    if bases.is_empty() {
        return Err(not(format!(
            "no full snapshot at or before it in {}",
            stores
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let deltas: Vec<(&ArtifactRef, &Vec<usize>)> = of_kind(ArtifactKind::Delta)
        .filter(|(r, _)| {
            let (a, b) = r.id.versions();
            a < b && b <= max_version && reached_by(r)
        })
        .collect();
    let segments: Vec<(&ArtifactRef, &Vec<usize>)> = of_kind(ArtifactKind::WalSegment).collect();

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
    let (reached, _, bi, path) = best.expect("at least one base");
    let (base_ref, base_idx) = bases[bi];
    // WAL: contiguous segments from reached + 1 on.
    let mut wal = Vec::new();
    let mut next = reached + 1;
    let mut covered = reached;
    loop {
        if covered >= max_version {
            break;
        }
        let Some((r, idx)) = segments
            .iter()
            .filter(|(r, _)| {
                let (a, b) = r.id.versions();
                a <= next && b >= next
            })
            .max_by_key(|(r, _)| r.id.versions().1)
        else {
            break;
        };
        wal.push(step(stores, r, idx));
        covered = r.id.versions().1;
        next = covered + 1;
    }
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
        .map(|&i| step(stores, deltas[i].0, deltas[i].1))
        .collect();
    let base = step(stores, base_ref, base_idx);
    let estimated_bytes = base.artifact.len
        + deltas.iter().map(|d| d.artifact.len).sum::<u64>()
        + wal.iter().map(|w| w.artifact.len).sum::<u64>();
    Ok(RestorePlan {
        target: target.clone(),
        version,
        time_limit,
        base,
        deltas,
        wal,
        estimated_bytes,
        unavailable: inv.unavailable,
    })
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

/// Fetches an artifact from the first store that serves it intact.
async fn fetch(stores: &[Arc<dyn BackupStore>], s: &Step) -> Result<Bytes> {
    let mut errors = Vec::new();
    for &i in &s.idx {
        match stores[i].get(&s.artifact).await {
            Ok(b) => return Ok(b),
            Err(e) => {
                tracing::warn!(store = %stores[i].name(), artifact = %s.artifact.id, error = %e, "fetch failed, trying the next store");
                errors.push(e.to_string());
            }
        }
    }
    Err(Error::Fetch {
        artifact: s.artifact.id.to_string(),
        errors,
    })
}

/// How many artifacts are fetched ahead of the one being applied.
const PREFETCH: usize = 4;

/// Fetches `steps` in order, up to [`PREFETCH`] ahead on the runtime's other workers,
/// handing each to `each` as soon as it and all before it are in; `each` returns
/// `false` to stop early (the rest are abandoned).
async fn fetch_in_order(
    stores: &[Arc<dyn BackupStore>],
    steps: Vec<Step>,
    mut each: impl FnMut(&Step, Bytes) -> Result<bool>,
) -> Result<()> {
    let stores: Arc<[Arc<dyn BackupStore>]> = stores.into();
    let mut window = std::collections::VecDeque::new();
    let mut todo = steps.into_iter();
    loop {
        while window.len() < PREFETCH {
            let Some(s) = todo.next() else { break };
            let (st, s2) = (stores.clone(), s.clone());
            window.push_back((s, tokio::spawn(async move { fetch(&st, &s2).await })));
        }
        let Some((s, task)) = window.pop_front() else {
            return Ok(());
        };
        let bytes = task.await.map_err(|e| Error::Fetch {
            artifact: s.artifact.id.to_string(),
            errors: vec![format!("the fetch task failed: {e}")],
        })??;
        if !each(&s, bytes)? {
            for (_, t) in window {
                t.abort();
            }
            return Ok(());
        }
    }
}

/// Runs a plan: full, deltas, WAL replay, with the next artifacts fetched while the
/// current one is decoded and applied. The result is at `plan.version`.
pub async fn restore(stores: &[Arc<dyn BackupStore>], plan: &RestorePlan) -> Result<BindSpace> {
    let mut steps = vec![plan.base.clone()];
    steps.extend(plan.deltas.iter().cloned());
    steps.extend(plan.wal.iter().cloned());
    let n_deltas = plan.deltas.len();
    let mut space: Option<BindSpace> = None;
    let mut replayer: Option<Replayer<_>> = None;
    let mut applied = 0usize;
    let limit = (plan.version, plan.time_limit.unwrap_or(u64::MAX));
    // the replayer outlives each segment (a batch may span two); what it releases is
    // applied right after each segment
    let pending_wal = Arc::new(std::sync::Mutex::new(Vec::<Record>::new()));
    fetch_in_order(stores, steps, |s, bytes| {
        match (&mut space, s.artifact.id.kind()) {
            (None, _) => space = Some(snapshot::decode(&bytes)?.space),
            (Some(sp), ArtifactKind::Delta) => {
                let d = bindspace_xor_delta::decode(&bytes)?;
                bindspace_xor_delta::apply(sp, &d)?;
                applied += 1;
            }
            (Some(sp), _) => {
                debug_assert_eq!(applied, n_deltas, "WAL after every delta");
                let rep = replayer.get_or_insert_with(|| {
                    let out = pending_wal.clone();
                    Replayer::new(sp.version(), limit, move |r: &Record| {
                        out.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(r.clone());
                        Ok(())
                    })
                });
                let path = std::path::PathBuf::from(s.artifact.id.to_string());
                let more = rep.feed_segment(&bytes, s.artifact.id.versions().0, &path)?;
                let released =
                    std::mem::take(&mut *pending_wal.lock().unwrap_or_else(|e| e.into_inner()));
                for r in released {
                    bindspace_wal::apply_record(sp, &r)?;
                }
                return Ok(more);
            }
        }
        Ok(true)
    })
    .await?;
    let space = space.expect("the base was fetched first");
    if plan.time_limit.is_none() && space.version() != plan.version {
        return Err(Error::NotRestorable {
            target: plan.target.to_string(),
            reason: format!(
                "replay ended at version {}, the plan promised {}",
                space.version(),
                plan.version
            ),
        });
    }
    Ok(space)
}

async fn replay_wal(
    stores: &[Arc<dyn BackupStore>],
    plan: &RestorePlan,
    after: u64,
    apply: impl FnMut(&Record) -> bindspace_wal::Result<()>,
) -> Result<u64> {
    let mut rep = Replayer::new(
        after,
        (plan.version, plan.time_limit.unwrap_or(u64::MAX)),
        apply,
    );
    for w in &plan.wal {
        let bytes = fetch(stores, w).await?;
        let path = std::path::PathBuf::from(w.artifact.id.to_string());
        if !rep.feed_segment(&bytes, w.artifact.id.versions().0, &path)? {
            break;
        }
    }
    Ok(rep.finish()?)
}

/// Plans and runs a restore to `target`.
pub async fn restore_to(
    stores: &[Arc<dyn BackupStore>],
    target: &Target,
) -> Result<(BindSpace, RestorePlan)> {
    let p = plan(stores, target).await?;
    let space = restore(stores, &p).await?;
    Ok((space, p))
}

/// The fingerprint at `addr` as of `target`, touching only that address after the
/// base snapshot: deltas and WAL records for other addresses are skipped, not applied.
pub async fn as_of(
    stores: &[Arc<dyn BackupStore>],
    addr: Addr,
    target: &Target,
) -> Result<Option<Vec<u64>>> {
    let p = plan(stores, target).await?;
    let base = snapshot::decode(&fetch(stores, &p.base).await?)?.space;
    let mut cur = base.read(addr).map(<[u64]>::to_vec);
    let version = base.version();
    drop(base);
    let mut at = version;
    for d in &p.deltas {
        let delta = bindspace_xor_delta::decode(&fetch(stores, d).await?)?;
        if let Some(change) = delta.get(addr) {
            use bindspace_xor_delta::Change;
            cur = match change {
                Change::Deleted => None,
                Change::Created(fp) | Change::Replaced(fp) => Some(fp.as_ref().to_vec()),
                Change::Changed(x) => {
                    let mut words = cur.ok_or_else(|| Error::NotRestorable {
                        target: target.to_string(),
                        reason: format!(
                            "delta {}..{} changes {addr}, which is empty there",
                            delta.from_version, delta.to_version
                        ),
                    })?;
                    x.apply_to(&mut words);
                    Some(words)
                }
            };
        }
        at = delta.to_version;
    }
    replay_wal(stores, &p, at, |r| {
        match &r.op {
            RecordOp::Op(Op::Write(a, fp)) if *a == addr => cur = Some(fp.as_ref().to_vec()),
            RecordOp::Op(Op::Delete(a)) if *a == addr => cur = None,
            _ => {}
        }
        Ok(())
    })
    .await?;
    Ok(cur)
}

/// The history of `addr` in the WAL archive between versions `lo..=hi`: each version
/// that wrote or deleted it, with the value after (Oracle's VERSIONS BETWEEN).
pub async fn versions(
    stores: &[Arc<dyn BackupStore>],
    addr: Addr,
    lo: u64,
    hi: u64,
) -> Result<Vec<(u64, Option<Vec<u64>>)>> {
    let inv = inventory(stores).await;
    let mut out = Vec::new();
    let mut segs: Vec<(&ArtifactRef, &Vec<usize>)> = inv
        .artifacts
        .iter()
        .filter(|(r, _)| r.id.kind() == ArtifactKind::WalSegment && r.id.overlaps(lo, hi))
        .collect();
    segs.sort_by_key(|(r, _)| r.id.versions());
    let mut seen_to = lo.saturating_sub(1);
    for (r, idx) in segs {
        let s = step(stores, r, idx);
        let bytes = fetch(stores, &s).await?;
        let first = r.id.versions().0;
        let mut rep = Replayer::new(
            seen_to.max(first.saturating_sub(1)),
            (hi, u64::MAX),
            |rec: &Record| {
                if rec.version >= lo {
                    match &rec.op {
                        RecordOp::Op(Op::Write(a, fp)) if *a == addr => {
                            out.push((rec.version, Some(fp.as_ref().to_vec())))
                        }
                        RecordOp::Op(Op::Delete(a)) if *a == addr => out.push((rec.version, None)),
                        _ => {}
                    }
                }
                Ok(())
            },
        );
        rep.feed_segment(&bytes, first, std::path::Path::new("archive"))?;
        seen_to = rep.finish()?;
    }
    Ok(out)
}
