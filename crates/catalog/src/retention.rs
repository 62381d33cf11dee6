//! Retention: which backups to keep, as a pure function of the catalog, the policy and
//! the time, so it can be shown (`--dry-run`) before anything is deleted.
//!
//! Selection, newest first:
//! 1. every backup that ended within `keep_all_within_us` of now;
//! 2. grandfather-father-son: for each of hourly / daily / weekly / monthly / yearly,
//!    the newest backup in each of the last N buckets that hold one (buckets are fixed
//!    lengths counted from the Unix epoch: 1 h, 1 d, 7 d, 30 d, 365 d);
//! 3. `max_age_us` drops selected backups older than that; `max_count` keeps only the
//!    newest that many of what is selected;
//! 4. then everything the selection depends on is kept whatever the policy says: the
//!    parent chain of each kept backup down to its full, the chain of each
//!    `guaranteed` restore point (on the point's own timeline's history), the chain
//!    each timeline needs at its branch point (its parent's newest backup at or below
//!    it: a branch's first states are restored from its ancestors' artifacts), and on
//!    each timeline's history the WAL archives newer than its oldest kept full.
//!
//! Abandoned timelines expire only by policy (`expire_abandoned_after_us`, off by
//! default), never silently: a timeline nothing was backed up on for that long is
//! **expired** (recorded in the catalog with when and why, listed in the plan), unless
//! it is the most recently active timeline or holds a guaranteed restore point. The
//! policy then selects nothing of it, and its own needs (its branch point, its WAL)
//! no longer keep anything; what a live timeline's history needs of it stays. Restores
//! and backups on an expired timeline are refused, naming when and why.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{BackupEntry, BackupKind, History, Manifest};

const HOUR: u64 = 3_600_000_000;
const DAY: u64 = 24 * HOUR;

/// What to keep (seed: `RetentionPolicy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionPolicy {
    /// Keep everything newer than this (µs).
    pub keep_all_within_us: u64,
    /// Hourly buckets kept.
    pub hourly: u32,
    /// Daily buckets kept.
    pub daily: u32,
    /// Weekly buckets kept.
    pub weekly: u32,
    /// Monthly (30-day) buckets kept.
    pub monthly: u32,
    /// Yearly (365-day) buckets kept.
    pub yearly: u32,
    /// At most this many backups selected by the rules above.
    pub max_count: Option<usize>,
    /// Nothing older than this is selected (µs).
    pub max_age_us: Option<u64>,
    /// Expire a timeline nothing was backed up on for this long (µs); `None`: never.
    pub expire_abandoned_after_us: Option<u64>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_all_within_us: DAY,
            hourly: 24,
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
            max_count: None,
            max_age_us: None,
            expire_abandoned_after_us: None,
        }
    }
}

/// Why a backup is kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeepReason {
    /// Inside the keep-all window.
    Recent,
    /// Newest in a bucket of this rule (`hourly`, `daily`, ...).
    Bucket(&'static str),
    /// A kept backup or a guaranteed restore point needs it.
    Dependency(String),
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepReason::Recent => f.write_str("recent"),
            KeepReason::Bucket(rule) => write!(f, "newest {rule}"),
            KeepReason::Dependency(id) => write!(f, "needed by {id}"),
        }
    }
}

/// The outcome: what stays, what goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Kept backup ids, with why.
    pub keep: BTreeMap<String, Vec<KeepReason>>,
    /// Backup ids to delete, oldest first.
    pub delete: Vec<String>,
    /// Timelines this plan expires (abandoned for longer than the policy allows).
    pub expire: Vec<crate::ExpiredTimeline>,
}

/// Bucket lengths of the GFS rules.
pub const BUCKETS: [(&str, u64); 5] = [
    ("hourly", HOUR),
    ("daily", DAY),
    ("weekly", 7 * DAY),
    ("monthly", 30 * DAY),
    ("yearly", 365 * DAY),
];

fn count(p: &RetentionPolicy, rule: &str) -> u32 {
    match rule {
        "hourly" => p.hourly,
        "daily" => p.daily,
        "weekly" => p.weekly,
        "monthly" => p.monthly,
        _ => p.yearly,
    }
}

/// The backups `entry` needs to restore: itself and its parents down to a full.
pub fn chain_of<'m>(m: &'m Manifest, entry: &'m BackupEntry) -> Vec<&'m BackupEntry> {
    let mut out = vec![entry];
    let mut cur = entry;
    while let Some(p) = &cur.parent {
        match m.entries.iter().find(|e| &e.id == p) {
            Some(parent) if !out.iter().any(|x| x.id == parent.id) => {
                out.push(parent);
                cur = parent;
            }
            _ => break,
        }
    }
    out
}

/// The backups of one timeline (newest first) that `policy` selects at `now_us`.
fn select<'m>(
    points: &[&'m BackupEntry],
    policy: &RetentionPolicy,
    now_us: u64,
) -> Vec<(&'m BackupEntry, KeepReason)> {
    let mut selected: Vec<(&BackupEntry, KeepReason)> = Vec::new();
    for e in points {
        if now_us.saturating_sub(e.end_us) <= policy.keep_all_within_us {
            selected.push((e, KeepReason::Recent));
        }
    }
    for (rule, len) in BUCKETS {
        let n = count(policy, rule) as usize;
        let mut seen = BTreeSet::new();
        for e in points {
            let bucket = e.end_us / len;
            if seen.len() >= n && !seen.contains(&bucket) {
                break;
            }
            if seen.insert(bucket) {
                selected.push((e, KeepReason::Bucket(rule)));
            }
        }
    }
    if let Some(age) = policy.max_age_us {
        selected.retain(|(e, _)| now_us.saturating_sub(e.end_us) <= age);
    }
    if let Some(max) = policy.max_count {
        let mut ids: Vec<(u64, u64, &str)> = selected
            .iter()
            .map(|(e, _)| (e.end_us, e.to_version, e.id.as_str()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        ids.reverse();
        let allowed: BTreeSet<&str> = ids.iter().take(max).map(|x| x.2).collect();
        selected.retain(|(e, _)| allowed.contains(e.id.as_str()));
    }
    selected
}

/// What retention knows beyond the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The newest archived WAL record's time, by timeline: an engine whose backups
    /// fail (or are rare) still archives, and its timeline is not abandoned.
    pub wal_activity_us: BTreeMap<crate::TimelineId, u64>,
    /// The timelines to expire, when already decided (on the primary destination's
    /// catalog: every destination expires the same set); `None`: decide here.
    pub expire: Option<Vec<crate::ExpiredTimeline>>,
    /// The primary's timeline records, when `expire` was decided there.
    pub timelines: Vec<crate::TimelineRecord>,
}

/// The timelines `policy` expires at `now_us` (not yet expired in `m`): nothing backed
/// up on or archived for them for longer than `expire_abandoned_after_us`, not the
/// most recently active timeline, no guaranteed restore point on them.
pub fn abandoned(
    m: &Manifest,
    policy: &RetentionPolicy,
    now_us: u64,
    evidence: &Evidence,
) -> Vec<crate::ExpiredTimeline> {
    let Some(after) = policy.expire_abandoned_after_us else {
        return Vec::new();
    };
    // last activity: its newest backup, its newest archived WAL, or its creation
    let activity = |t: u32| {
        let created = m.timeline(t).map_or(0, |r| r.created_us);
        let wal = evidence.wal_activity_us.get(&t).copied().unwrap_or(0);
        m.entries
            .iter()
            .filter(|e| e.timeline == t)
            .map(|e| e.end_us)
            .max()
            .unwrap_or(0)
            .max(created)
            .max(wal)
    };
    let live: Vec<u32> = m
        .timeline_ids()
        .into_iter()
        .filter(|t| m.expiry(*t).is_none())
        .collect();
    // the most recently active among those whose activity could be read (an unreadable
    // one, at u64::MAX, is never expired, but must not take this place from the
    // timeline really being written)
    let most_recent = live
        .iter()
        .copied()
        .filter(|t| activity(*t) != u64::MAX)
        .max_by_key(|t| (activity(*t), *t));
    live.into_iter()
        .filter(|t| Some(*t) != most_recent)
        .filter(|t| !m.restore_points.iter().any(|p| p.guaranteed && p.timeline == *t))
        .filter(|t| now_us.saturating_sub(activity(*t)) > after)
        .map(|t| crate::ExpiredTimeline {
            id: t,
            expired_us: now_us,
            reason: format!(
                "abandoned: nothing backed up or archived on it for {} h (since {} µs), the policy expires after {} h",
                now_us.saturating_sub(activity(t)) / HOUR,
                activity(t),
                after / HOUR
            ),
        })
        .collect()
}

/// Applies `policy` to the catalog at `now_us`, with nothing known beyond it.
pub fn plan(m: &Manifest, policy: &RetentionPolicy, now_us: u64) -> RetentionPlan {
    plan_with(m, policy, now_us, &Evidence::default())
}

/// Applies `policy` to the catalog at `now_us`, with what is known beyond it.
pub fn plan_with(
    m: &Manifest,
    policy: &RetentionPolicy,
    now_us: u64,
    evidence: &Evidence,
) -> RetentionPlan {
    let expire: Vec<crate::ExpiredTimeline> = match &evidence.expire {
        // decided elsewhere: only what this catalog records and has not expired yet
        Some(decided) => decided
            .iter()
            .filter(|e| m.timeline_ids().contains(&e.id) && m.expiry(e.id).is_none())
            .cloned()
            .collect(),
        None => abandoned(m, policy, now_us, evidence),
    };
    let expired = |t: u32| m.expiry(t).is_some() || expire.iter().any(|e| e.id == t);
    let mut keep: BTreeMap<String, Vec<KeepReason>> = BTreeMap::new();
    let mut points: Vec<&BackupEntry> = m
        .entries
        .iter()
        .filter(|e| e.kind != BackupKind::Wal)
        .collect();
    points.sort_by_key(|e| std::cmp::Reverse((e.end_us, e.to_version)));
    // The policy applies to each timeline on its own: a busy branch never pushes
    // another history's backups out of the buckets or the count.
    let mut selected: Vec<(&BackupEntry, KeepReason)> = Vec::new();
    let timelines: BTreeSet<u32> = points
        .iter()
        .map(|e| e.timeline)
        .filter(|t| !expired(*t))
        .collect();
    for t in timelines {
        let mine: Vec<&BackupEntry> = points.iter().copied().filter(|e| e.timeline == t).collect();
        selected.extend(select(&mine, policy, now_us));
    }
    for (e, why) in &selected {
        keep.entry(e.id.clone()).or_default().push(why.clone());
    }
    // a floor no policy goes under: the newest full of every live timeline (with
    // `max_count = 0` the full just written went)
    for t in m.timeline_ids().into_iter().filter(|t| !expired(*t)) {
        if let Some(f) = points
            .iter()
            .filter(|e| e.timeline == t && e.kind == BackupKind::Full)
            .max_by_key(|e| (e.to_version, e.end_us))
        {
            keep.entry(f.id.clone())
                .or_default()
                .push(KeepReason::Dependency(format!(
                    "the newest full of timeline {t}"
                )));
        }
    }
    // Dependencies: chains of kept backups and of guaranteed restore points.
    let roots: Vec<String> = keep.keys().cloned().collect();
    for id in roots {
        let e = m
            .entries
            .iter()
            .find(|e| e.id == id)
            .expect("selected from m");
        for dep in chain_of(m, e).into_iter().skip(1) {
            keep.entry(dep.id.clone())
                .or_default()
                .push(KeepReason::Dependency(id.clone()));
        }
    }
    // Histories: a catalog whose timelines do not form one tree deletes nothing.
    let mut histories = Vec::new();
    for t in m.timeline_ids() {
        match History::of(m, t) {
            Ok(h) => histories.push(h),
            Err(why) => {
                tracing::warn!(
                    timeline = t,
                    why,
                    "retention deletes nothing: the timelines are inconsistent"
                );
                return RetentionPlan {
                    keep: m
                        .entries
                        .iter()
                        .map(|e| (e.id.clone(), vec![KeepReason::Dependency(why.clone())]))
                        .collect(),
                    delete: Vec::new(),
                    expire: Vec::new(),
                };
            }
        }
    }
    let history = |t| histories.iter().find(|h: &&History| h.timeline == t);
    // Guaranteed restore points, and every branch point: the newest backup at or
    // below it on that timeline's history, and its chain.
    let mut pinned: Vec<(u32, u64, String)> = m
        .restore_points
        .iter()
        .filter(|p| p.guaranteed)
        .map(|p| (p.timeline, p.version, format!("restore point {}", p.name)))
        .collect();
    // an expired timeline's own branch point no longer keeps its parent's artifacts
    pinned.extend(m.timelines.iter().filter(|t| !expired(t.id)).map(|t| {
        (
            t.id,
            t.branch_version,
            format!("timeline {} branches at {}", t.id, t.branch_version),
        )
    }));
    for (t, version, why) in pinned {
        let Some(h) = history(t) else { continue };
        if let Some(base) = points
            .iter()
            .filter(|e| e.to_version <= version && h.uses(&e.artifact))
            .max_by_key(|e| (e.to_version, e.end_us))
        {
            for dep in chain_of(m, base) {
                keep.entry(dep.id.clone())
                    .or_default()
                    .push(KeepReason::Dependency(why.clone()));
            }
        }
    }
    // On each history, WAL archives newer than its oldest kept full serve PITR
    // between kept backups.
    for h in histories.iter().filter(|h| !expired(h.timeline)) {
        let oldest_full = m
            .entries
            .iter()
            .filter(|e| {
                e.kind == BackupKind::Full && keep.contains_key(&e.id) && h.uses(&e.artifact)
            })
            .map(|e| e.to_version)
            .min();
        for e in m.entries.iter().filter(|e| e.kind == BackupKind::Wal) {
            if h.uses(&e.artifact) && oldest_full.is_some_and(|v| e.to_version > v) {
                keep.entry(e.id.clone())
                    .or_default()
                    .push(KeepReason::Dependency("point-in-time recovery".into()));
            }
        }
    }
    let mut delete: Vec<&BackupEntry> = m
        .entries
        .iter()
        .filter(|e| !keep.contains_key(&e.id))
        .collect();
    delete.sort_by_key(|e| (e.end_us, e.to_version));
    RetentionPlan {
        keep,
        delete: delete.into_iter().map(|e| e.id.clone()).collect(),
        expire,
    }
}

/// Which archived WAL segments a catalog still needs after a retention run: on every
/// live timeline's history from which that run removed a full, the records after its
/// oldest remaining full (the states before it lost their backups; every kept backup
/// and guaranteed restore point has a full at or below it). A history that lost no full
/// keeps all of its WAL: the empty space at version 0 is a base too, so its earliest
/// states stay reachable until retention removes backups of it. Segments no live
/// history uses (an expired timeline's, past what its live descendants need) are
/// needed by nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalNeeds {
    /// Each live history with the version its WAL is needed after.
    histories: Vec<(History, u64)>,
}

impl WalNeeds {
    /// The needs of catalog `m` after retention removed `removed` from it, or why none
    /// can be told (timelines that do not form one tree: then everything stays).
    pub fn of(m: &Manifest, removed: &[BackupEntry]) -> Result<WalNeeds, String> {
        let mut histories = Vec::new();
        for t in m.timeline_ids() {
            let h = History::of(m, t)?;
            if m.expiry(t).is_some() {
                continue;
            }
            let oldest_full = m
                .entries
                .iter()
                .filter(|e| {
                    e.kind == BackupKind::Full
                        && matches!(
                            e.status,
                            crate::BackupStatus::Complete | crate::BackupStatus::Verified
                        )
                        && h.uses(&e.artifact)
                })
                .map(|e| e.to_version)
                .min()
                .unwrap_or(0);
            let lost_a_full = removed
                .iter()
                .any(|e| e.kind == BackupKind::Full && h.uses(&e.artifact));
            histories.push((h, if lost_a_full { oldest_full } else { 0 }));
        }
        Ok(WalNeeds { histories })
    }

    /// Whether the archived WAL segment `id` is still needed.
    pub fn needs(&self, id: &crate::ArtifactId) -> bool {
        let last = id.versions().1;
        self.histories
            .iter()
            .any(|(h, after)| h.uses(id) && last > *after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArtifactId, BackupStatus, TimelineRecord};

    fn full(id: &str, t: u32, v: u64, end_us: u64) -> BackupEntry {
        BackupEntry {
            id: id.into(),
            kind: BackupKind::Full,
            parent: None,
            from_version: v,
            to_version: v,
            start_us: end_us,
            end_us,
            schema: bindspace_core::SchemaVersion::CURRENT.into(),
            size: 1,
            blake3: "00".repeat(32),
            artifact: ArtifactId::snapshot(v).on(t),
            locations: vec![],
            status: BackupStatus::Complete,
            timeline: t,
            root: None,
            format: None,
        }
    }

    #[test]
    fn a_branch_keeps_the_parents_full_below_its_branch_point() {
        let mut m = Manifest::default();
        m.entries.push(full("full-10", 1, 10, 1));
        m.entries.push(full("full-60", 1, 60, 2));
        m.entries.push(full("full-100", 1, 100, 3));
        m.timelines.push(TimelineRecord {
            id: 2,
            parent: 1,
            branch_version: 50,
            created_us: 4,
            reason: "test".into(),
            root: None,
            claim: None,
        });
        let policy = RetentionPolicy {
            keep_all_within_us: 0,
            hourly: 1,
            daily: 0,
            weekly: 0,
            monthly: 0,
            yearly: 0,
            max_count: Some(1),
            max_age_us: None,
            expire_abandoned_after_us: None,
        };
        let p = plan(&m, &policy, 1_000_000_000);
        // full-60 is past the branch point: timeline 2 cannot use it
        assert_eq!(p.delete, vec!["full-60".to_string()]);
        assert!(
            p.keep["full-10"].contains(&KeepReason::Dependency("timeline 2 branches at 50".into()))
        );
        // a guaranteed point on timeline 2 before its own first full needs the same
        m.timelines.clear();
        m.restore_points.push(crate::RestorePoint {
            name: "p".into(),
            version: 55,
            created_us: 5,
            guaranteed: true,
            timeline: 1,
            root: None,
        });
        let p = plan(&m, &policy, 1_000_000_000);
        assert_eq!(p.delete, vec!["full-60".to_string()]);
        assert!(p.keep["full-10"].contains(&KeepReason::Dependency("restore point p".into())));
        // with neither, the policy alone decides
        m.restore_points.clear();
        let p = plan(&m, &policy, 1_000_000_000);
        assert_eq!(p.delete, vec!["full-10".to_string(), "full-60".to_string()]);
        // the policy counts per timeline: a newer backup on a branch does not push
        // timeline 1's newest out of `max_count = 1`
        m.entries.push(full("t2-full-70", 2, 70, 9));
        m.timelines.push(TimelineRecord {
            id: 2,
            parent: 1,
            branch_version: 0,
            created_us: 4,
            reason: "test".into(),
            root: None,
            claim: None,
        });
        let p = plan(&m, &policy, 1_000_000_000);
        assert!(p.keep.contains_key("full-100") && p.keep.contains_key("t2-full-70"));
        assert_eq!(p.delete, vec!["full-10".to_string(), "full-60".to_string()]);
    }

    fn branch(id: u32, parent: u32, at: u64, created_us: u64) -> TimelineRecord {
        TimelineRecord {
            id,
            parent,
            branch_version: at,
            created_us,
            reason: "test".into(),
            root: None,
            claim: None,
        }
    }

    fn wal(id: &str, t: u32, lo: u64, hi: u64, end_us: u64) -> BackupEntry {
        BackupEntry {
            kind: BackupKind::Wal,
            from_version: lo,
            artifact: ArtifactId::wal(lo, hi).on(t),
            ..full(id, t, hi, end_us)
        }
    }

    /// Timeline 1 (fulls at 10 and 100, WAL), timeline 2 branched at 50 and idle since
    /// day 1, timeline 3 branched from 2 at 70 and active: after 30 days, 2 expires
    /// (recorded, with why), its own artifacts go, what 3's history needs of it stays.
    #[test]
    fn an_abandoned_timeline_expires_by_policy_and_only_by_policy() {
        let day = DAY;
        let mut m = Manifest::default();
        m.entries.push(full("full-10", 1, 10, day));
        m.entries.push(wal("wal-1", 1, 11, 200, day));
        m.entries.push(full("full-100", 1, 100, 40 * day));
        m.timelines.push(branch(2, 1, 50, day));
        m.entries.push(full("t2-full-60", 2, 60, day));
        m.entries.push(full("t2-full-80", 2, 80, day));
        m.timelines.push(branch(3, 2, 70, 2 * day));
        m.entries.push(full("t3-full-90", 3, 90, 41 * day));
        let keep_all = RetentionPolicy {
            keep_all_within_us: 100 * day,
            ..RetentionPolicy::default()
        };
        let now = 42 * day;
        // off by default: nothing expires, everything recent is kept
        let p = plan(&m, &keep_all, now);
        assert!(p.expire.is_empty() && p.delete.is_empty(), "{p:?}");
        let policy = RetentionPolicy {
            expire_abandoned_after_us: Some(30 * day),
            ..keep_all.clone()
        };
        let p = plan(&m, &policy, now);
        assert_eq!(
            p.expire.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![2],
            "{p:?}"
        );
        assert!(
            p.expire[0]
                .reason
                .starts_with("abandoned: nothing backed up or archived on it for 984 h"),
            "{}",
            p.expire[0].reason
        );
        // timeline 3 branches from 2 at 70: 2's full at 60 stays (and 1's full at 10
        // for 2's own start is no longer needed by 2, but 3's history goes through 2
        // at 50 and 1 below it); 2's full at 80 is past 3's branch point: it goes
        assert_eq!(p.delete, vec!["t2-full-80".to_string()]);
        assert!(
            p.keep["t2-full-60"]
                .contains(&KeepReason::Dependency("timeline 3 branches at 70".into()))
        );
        // recorded expiry: a later plan does not expire it again, and still keeps
        // what timeline 3 needs
        m.entries.retain(|e| e.id != "t2-full-80");
        m.expired.extend(p.expire.clone());
        let p = plan(&m, &policy, now + day);
        assert!(p.expire.is_empty(), "{p:?}");
        assert!(p.delete.is_empty(), "{p:?}");
        // the most recently active timeline never expires, however old
        let p = plan(&m, &policy, 1_000 * day);
        let ids: Vec<u32> = p.expire.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1], "timeline 3 was the last one written: {p:?}");
        // archived WAL counts as activity: an engine whose backups fail still archives
        let busy = Evidence {
            wal_activity_us: BTreeMap::from([(1, 999 * day)]),
            expire: None,
            timelines: Vec::new(),
        };
        let p = plan_with(&m, &policy, 1_000 * day, &busy);
        assert_eq!(
            p.expire.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![3],
            "{p:?}"
        );
        // a set decided elsewhere is applied as it is
        let decided = Evidence {
            expire: Some(p.expire.clone()),
            ..Evidence::default()
        };
        let q = plan_with(&m, &policy, 1_000 * day, &decided);
        assert_eq!(q.expire, p.expire);
        // a timeline whose archived WAL could not be read (u64::MAX) is never expired,
        // and does not take "most recently active" from the timeline really written
        let unknown = Evidence {
            wal_activity_us: BTreeMap::from([(1, u64::MAX)]),
            ..Evidence::default()
        };
        let p = plan_with(&m, &policy, 1_000 * day, &unknown);
        assert!(p.expire.is_empty(), "{p:?}");
        // a guaranteed restore point keeps its timeline from expiring
        m.restore_points.push(crate::RestorePoint {
            name: "keep".into(),
            version: 100,
            created_us: day,
            guaranteed: true,
            timeline: 1,
            root: None,
        });
        assert!(plan(&m, &policy, 1_000 * day).expire.is_empty());
        // and a restore, a backup, a restore point or a branch on the expired one is
        // refused naming when and why
        let err = m.check_live(2).unwrap_err();
        assert!(matches!(
            err,
            crate::Error::TimelineExpired { timeline: 2, .. }
        ));
        assert!(err.to_string().contains("abandoned"), "{err}");
        assert_eq!(m.newest_live_timeline(), 3);
    }

    #[test]
    fn no_policy_deletes_the_newest_full() {
        let mut m = Manifest::default();
        m.entries.push(full("full-10", 1, 10, 1));
        m.entries.push(full("full-20", 1, 20, 2));
        let nothing = RetentionPolicy {
            keep_all_within_us: 0,
            hourly: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
            yearly: 0,
            max_count: Some(0),
            max_age_us: Some(0),
            expire_abandoned_after_us: None,
        };
        let p = plan(&m, &nothing, 1_000_000_000_000);
        assert_eq!(p.delete, vec!["full-10".to_string()]);
        assert!(p.keep.contains_key("full-20"), "{p:?}");
    }
}
