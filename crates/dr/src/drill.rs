//! Restore drills: restore a target from each store alone and from all together, time
//! each restore (RTO: start to a restored space whose root checks), measure how far
//! behind the newest restorable state is (RPO), compare both with targets, and keep
//! the report in every store's catalog (`bindspace dr report` shows the history).

use std::sync::Arc;
use std::time::Duration;

use bindspace_catalog::{BackupKind, BackupStore, DrillRecord, Repository, TimelineId};
use bindspace_core::Clock;
use bindspace_pitr::{Sources, Target};
use serde::{Deserialize, Serialize};

use crate::Result;

/// What a drill restores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillTarget {
    /// The newest restorable state.
    Latest,
    /// A restore point or backup of a live history, picked with this seed.
    Random(u64),
    /// A named restore point.
    Point(String),
}

impl DrillTarget {
    /// Parses `latest`, `random` (seeded by `seed`) or `point:NAME`.
    pub fn parse(s: &str, seed: u64) -> Option<DrillTarget> {
        match s {
            "latest" => Some(DrillTarget::Latest),
            "random" => Some(DrillTarget::Random(seed)),
            _ => s
                .strip_prefix("point:")
                .filter(|n| !n.is_empty())
                .map(|n| DrillTarget::Point(n.to_owned())),
        }
    }
}

/// The drill's targets and limits.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// What to restore; with a [`Sentinel`] and [`DrillTarget::Latest`], the sentinel's
    /// restore point is restored (its root is known, so the result is checked).
    pub target: DrillTarget,
    /// The slowest acceptable restore from any one source.
    pub rto_target: Duration,
    /// The oldest acceptable newest restorable state.
    pub rpo_target: Duration,
    /// A source that has not restored after this long is reported unavailable (a
    /// frozen store), and the drill goes on with the others.
    pub source_timeout: Duration,
    /// Only these stores (by name) are drilled alone; empty: every store.
    pub only: Vec<String>,
}

/// Far below the floor the reference design sets (container restart < 10 s, Redis
/// failure < 5 min, complete disaster < 2 h): a 256-address space restores in
/// milliseconds, a full 82 MB space in seconds.
pub const DEFAULT_RTO_TARGET: Duration = Duration::from_secs(60);
/// The WAL is archived at least every segment or checkpoint; five minutes of loss is
/// the most a default configuration should ever allow.
pub const DEFAULT_RPO_TARGET: Duration = Duration::from_secs(300);

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            target: DrillTarget::Latest,
            rto_target: DEFAULT_RTO_TARGET,
            rpo_target: DEFAULT_RPO_TARGET,
            source_timeout: Duration::from_secs(300),
            only: Vec::new(),
        }
    }
}

/// The canary a running engine wrote for the drill: a restore point at the state it
/// had, with that state's root, archived to every store before the drill began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sentinel {
    /// The restore point's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// Its history.
    pub timeline: TimelineId,
    /// The state root there, hex.
    pub root: String,
    /// When it was written, µs since the epoch.
    pub created_us: u64,
}

/// One source's restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRun {
    /// The store, or `all stores`.
    pub source: String,
    /// `restored` (the root checked), `unverified` (restored, but no root is recorded
    /// for the result: not a pass), `failed` or `unavailable` (timed out or unreachable).
    pub status: String,
    /// Wall time from the start of this source's restore to its end, ms.
    pub rto_ms: u64,
    /// The version restored.
    pub version: Option<u64>,
    /// The drill's start minus when the newest state this source restores was live, ms.
    pub rpo_ms: Option<u64>,
    /// Whether the sentinel restored from this source with its recorded root.
    pub sentinel: Option<bool>,
    /// The restore's account of itself, or why it failed.
    pub detail: String,
}

/// A drill's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReport {
    /// Start and end, µs since the epoch.
    pub started_us: u64,
    /// End.
    pub finished_us: u64,
    /// What was restored.
    pub target: String,
    /// The canary, when a running engine wrote one.
    pub sentinel: Option<Sentinel>,
    /// Targets, ms.
    pub rto_target_ms: u64,
    /// RPO target, ms.
    pub rpo_target_ms: u64,
    /// Each store alone, then all together.
    pub runs: Vec<DrillRun>,
    /// What missed: a source that cannot restore, an RTO or RPO over its target.
    pub missed: Vec<String>,
}

impl DrillReport {
    /// Whether every source restored and every target was met.
    pub fn passed(&self) -> bool {
        self.missed.is_empty()
    }
}

impl std::fmt::Display for DrillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "restore drill of {} (RTO target {} ms, RPO target {} ms)",
            self.target, self.rto_target_ms, self.rpo_target_ms
        )?;
        if let Some(s) = &self.sentinel {
            writeln!(
                f,
                "  sentinel: restore point {:?} at version {} of timeline {}",
                s.name, s.version, s.timeline
            )?;
        }
        for r in &self.runs {
            let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
            writeln!(
                f,
                "  {}: {} in {} ms, version {}, RPO {}{}",
                r.source,
                r.status,
                r.rto_ms,
                r.version.map_or("-".to_owned(), |v| v.to_string()),
                ms(r.rpo_ms),
                match r.sentinel {
                    Some(true) => ", sentinel restored",
                    Some(false) => ", SENTINEL NOT RESTORED",
                    None => "",
                }
            )?;
            if r.status != "restored" {
                writeln!(f, "    {}", r.detail)?;
            }
        }
        for m in &self.missed {
            writeln!(f, "  MISSED: {m}")?;
        }
        write!(
            f,
            "result: {}",
            if self.passed() { "passed" } else { "FAILED" }
        )
    }
}

/// Picks the target: the sentinel's point for `latest` when there is one, a seeded
/// restore point or backup for `random`.
async fn resolve(
    repo: &Repository,
    opts: &DrillOptions,
    sentinel: Option<&Sentinel>,
) -> Result<(String, Target, Option<TimelineId>)> {
    Ok(match (&opts.target, sentinel) {
        (DrillTarget::Latest, Some(s)) => (
            format!("the sentinel restore point {:?}", s.name),
            Target::RestorePoint(s.name.clone()),
            Some(s.timeline),
        ),
        (DrillTarget::Latest, None) => ("the latest state".into(), Target::Latest, None),
        (DrillTarget::Point(n), _) => (
            format!("restore point {n:?}"),
            Target::RestorePoint(n.clone()),
            None,
        ),
        (DrillTarget::Random(seed), _) => {
            let m = repo.manifest().await?;
            let mut picks: Vec<(String, Target, Option<TimelineId>)> = m
                .restore_points
                .iter()
                .filter(|p| m.check_live(p.timeline).is_ok())
                .map(|p| {
                    (
                        format!("restore point {:?} (random)", p.name),
                        Target::RestorePoint(p.name.clone()),
                        Some(p.timeline),
                    )
                })
                .collect();
            picks.extend(
                m.entries
                    .iter()
                    .filter(|e| e.kind != BackupKind::Wal && m.check_live(e.timeline).is_ok())
                    .map(|e| {
                        (
                            format!(
                                "version {} on timeline {} (backup {}, random)",
                                e.to_version, e.timeline, e.id
                            ),
                            Target::Version(e.to_version),
                            Some(e.timeline),
                        )
                    }),
            );
            let h = blake3::hash(&seed.to_le_bytes());
            let mut eight = [0u8; 8];
            eight.copy_from_slice(&h.as_bytes()[..8]);
            match picks.len() {
                0 => (
                    "the latest state (nothing to pick)".into(),
                    Target::Latest,
                    None,
                ),
                n => picks.swap_remove((u64::from_le_bytes(eight) % n as u64) as usize),
            }
        }
    })
}

/// One source: restore the target (timed), then the newest state when the target was
/// not it (for the RPO).
async fn run_source(
    source: String,
    stores: Vec<Arc<dyn BackupStore>>,
    target: &Target,
    timeline: Option<TimelineId>,
    sentinel: Option<&Sentinel>,
    clock: &dyn Clock,
    started_us: u64,
) -> DrillRun {
    let sources = Sources::new(stores);
    let t0 = clock.now_us();
    let res = async {
        let plan = bindspace_pitr::plan_on(sources.clone(), target, timeline).await?;
        bindspace_pitr::restore_verified(&plan).await
    }
    .await;
    let rto_ms = clock.now_us().saturating_sub(t0) / 1_000;
    let (space, v) = match res {
        Ok(x) => x,
        Err(e) => {
            let status = if e.kind().is_retryable() || e.to_string().contains("unavailable") {
                "unavailable"
            } else {
                "failed"
            };
            return DrillRun {
                source,
                status: status.into(),
                rto_ms,
                version: None,
                rpo_ms: None,
                sentinel: sentinel.map(|_| false),
                detail: e.to_string(),
            };
        }
    };
    let root = space.state_root().root().to_string();
    let is_sentinel = |s: &Sentinel| matches!(target, Target::RestorePoint(n) if *n == s.name);
    // the newest restorable state: this result when the target was the latest or the
    // sentinel (written just before), else a second restore (the newest state's time
    // is only known from its records)
    let newest = if matches!(target, Target::Latest) || sentinel.is_some_and(is_sentinel) {
        Some((v.version, v.state_time_us))
    } else {
        match bindspace_pitr::plan_on(sources, &Target::Latest, timeline).await {
            Ok(p) => bindspace_pitr::restore_verified(&p)
                .await
                .ok()
                .map(|(_, l)| (l.version, l.state_time_us.max(v.state_time_us))),
            Err(_) => None,
        }
    };
    // the sentinel restored with its root, or (another target) the newest state
    // restorable from this source reaches it
    let sentinel_ok = sentinel.map(|s| {
        if is_sentinel(s) {
            v.version == s.version && root == s.root
        } else {
            newest.is_some_and(|(nv, _)| nv >= s.version)
        }
    });
    let newest_time = newest.map(|(_, t)| t);
    // "restored" only when the result itself was checked: against a recorded root,
    // or (the sentinel) against the root the engine recorded for it
    let status =
        if v.is_verified() || (sentinel.is_some_and(is_sentinel) && sentinel_ok == Some(true)) {
            "restored"
        } else {
            "unverified"
        };
    DrillRun {
        source,
        status: status.into(),
        rto_ms,
        version: Some(v.version),
        rpo_ms: newest_time.map(|t| started_us.saturating_sub(t) / 1_000),
        sentinel: sentinel_ok,
        detail: v.to_string(),
    }
}

/// Runs a drill on `repo`: the target restored from each store alone (those named in
/// [`DrillOptions::only`], or all) and from all together, each within
/// [`DrillOptions::source_timeout`], timed by `clock`; the report is recorded in every
/// store's catalog that takes it. `sentinel`: the canary a running engine wrote
/// (`bindspace::Engine::drill` does this).
pub async fn drill(
    repo: &Repository,
    clock: &dyn Clock,
    opts: &DrillOptions,
    sentinel: Option<Sentinel>,
) -> Result<DrillReport> {
    let started_us = clock.now_us();
    let (what, target, timeline) = resolve(repo, opts, sentinel.as_ref()).await?;
    let stores = repo.destinations();
    let mut sources: Vec<(String, Vec<Arc<dyn BackupStore>>)> = stores
        .iter()
        .filter(|s| opts.only.is_empty() || opts.only.contains(&s.name()))
        .map(|s| (s.name(), vec![s.clone()]))
        .collect();
    if stores.len() > 1 && opts.only.is_empty() {
        sources.push(("all stores".into(), stores.to_vec()));
    }
    let mut runs = Vec::new();
    for (name, set) in sources {
        tracing::info!(source = %name, target = %what, "drill: restoring");
        let one = run_source(
            name.clone(),
            set,
            &target,
            timeline,
            sentinel.as_ref(),
            clock,
            started_us,
        );
        let run = match tokio::time::timeout(opts.source_timeout, one).await {
            Ok(r) => r,
            Err(_) => DrillRun {
                source: name,
                status: "unavailable".into(),
                rto_ms: opts.source_timeout.as_millis() as u64,
                version: None,
                rpo_ms: None,
                sentinel: sentinel.as_ref().map(|_| false),
                detail: format!(
                    "no restore within {:?}: the store did not answer",
                    opts.source_timeout
                ),
            },
        };
        runs.push(run);
    }
    let (rto_ms, rpo_ms) = (
        opts.rto_target.as_millis() as u64,
        opts.rpo_target.as_millis() as u64,
    );
    let mut missed = Vec::new();
    for r in &runs {
        match r.status.as_str() {
            "restored" => {}
            "unverified" => missed.push(format!(
                "{}: restored {what}, but no recorded root checks the result (unverified)",
                r.source
            )),
            other => {
                missed.push(format!("{} cannot restore {what}: {other}", r.source));
                continue;
            }
        }
        if r.rto_ms > rto_ms {
            missed.push(format!(
                "{}: RTO {} ms over the target {rto_ms} ms",
                r.source, r.rto_ms
            ));
        }
        match r.rpo_ms {
            Some(p) if p > rpo_ms => missed.push(format!(
                "{}: RPO {p} ms over the target {rpo_ms} ms",
                r.source
            )),
            None => missed.push(format!(
                "{}: the newest restorable state could not be measured",
                r.source
            )),
            _ => {}
        }
        if r.sentinel == Some(false) {
            missed.push(format!("{}: the sentinel did not restore", r.source));
        }
    }
    let report = DrillReport {
        started_us,
        finished_us: clock.now_us(),
        target: what,
        sentinel,
        rto_target_ms: rto_ms,
        rpo_target_ms: rpo_ms,
        runs,
        missed,
    };
    record(repo, &report).await;
    tracing::info!(passed = report.passed(), "drill finished");
    Ok(report)
}

/// Appends the report to every store's catalog that takes it (a store that cannot is
/// warned about; the report is still returned).
async fn record(repo: &Repository, report: &DrillReport) {
    let rec = DrillRecord {
        started_us: report.started_us,
        passed: report.passed(),
        report: serde_json::to_string(report).expect("a drill report always serialises"),
    };
    for i in 0..repo.destinations().len() {
        if let Err(e) = repo
            .update_catalog_at(i, |m| {
                m.record_drill(rec.clone());
                Ok(())
            })
            .await
        {
            tracing::warn!(store = %repo.destinations()[i].name(), error = %e, "drill report not recorded");
        }
    }
}

/// The drill reports a catalog holds, oldest first (records that do not parse are
/// skipped: a newer build's, say).
pub fn history(m: &bindspace_catalog::Manifest) -> Vec<DrillReport> {
    m.drills
        .iter()
        .filter_map(|d| serde_json::from_str(&d.report).ok())
        .collect()
}
