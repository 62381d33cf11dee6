//! Timelines: the histories a repository holds, how each branched from its parent, and
//! which artifacts of which timeline describe a given history ([`History`]).
//!
//! A timeline `T` that branched from `P` at version `b` shares `P`'s states up to and
//! including `b`, and has its own after it. A restore on `T` may therefore use `P`'s
//! artifacts whose states lie at or below `b` (a full at `v ≤ b`, a delta `x..y` with
//! `y ≤ b`, WAL records `r ≤ b`), then `T`'s own; never `P`'s past `b`.

use serde::{Deserialize, Serialize};

use crate::{ArtifactId, FIRST_TIMELINE, Manifest, TimelineId};

/// The largest timeline id (key names spell it in 8 digits).
pub const MAX_TIMELINE: TimelineId = 99_999_999;

/// How a timeline began: "timeline `id` branched from `parent` at `branch_version`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRecord {
    /// Its id (2 and up; 1 is the first history and has no record).
    pub id: TimelineId,
    /// The timeline it continues from.
    pub parent: TimelineId,
    /// The last version it shares with its parent.
    pub branch_version: u64,
    /// When it was created, µs since the epoch.
    pub created_us: u64,
    /// Why: `engine opened a restored checkpoint`, `rewind`, …
    pub reason: String,
    /// The state root at the branch point, hex, when known: a restore through the
    /// branch point checks the state there against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// While the data directory that asked for it has not yet recorded it: the token
    /// in its `timeline.pending`. Whoever clears it (a conditional commit) owns the
    /// timeline; a copy of that directory that finds it cleared branches anew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// One stretch of a history: the states `lo..=hi` are those of `timeline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    /// Whose artifacts describe these states.
    pub timeline: TimelineId,
    /// First state (version) of the stretch.
    pub lo: u64,
    /// Last state; `u64::MAX` for the target timeline's own open end.
    pub hi: u64,
}

/// The history that leads to a timeline, oldest stretch first: timeline 1 from
/// version 0, then each descendant from its branch point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// The timeline whose history this is.
    pub timeline: TimelineId,
    /// Its stretches, oldest first; consecutive stretches share their boundary version.
    pub stretches: Vec<Stretch>,
}

impl History {
    /// The history of `timeline` in `m`, or why there is none (unknown timeline, a
    /// broken parent link).
    pub fn of(m: &Manifest, timeline: TimelineId) -> Result<History, String> {
        let mut stretches = Vec::new();
        let mut cur = timeline;
        let mut hi = u64::MAX;
        for _ in 0..=m.timelines.len() {
            if cur == FIRST_TIMELINE {
                stretches.push(Stretch {
                    timeline: cur,
                    lo: 0,
                    hi,
                });
                stretches.reverse();
                return Ok(History {
                    timeline,
                    stretches,
                });
            }
            let rec = m
                .timelines
                .iter()
                .find(|t| t.id == cur)
                .ok_or_else(|| format!("the catalog has no timeline {cur}"))?;
            if rec.branch_version < hi {
                stretches.push(Stretch {
                    timeline: cur,
                    lo: rec.branch_version,
                    hi,
                });
                hi = rec.branch_version;
            }
            cur = rec.parent;
        }
        Err(format!("the parents of timeline {timeline} form a cycle"))
    }

    /// The timeline whose artifacts describe state `v`, preferring the newest at a
    /// boundary (both sides hold the same state there).
    pub fn owner_of_state(&self, v: u64) -> Option<TimelineId> {
        self.stretches
            .iter()
            .rev()
            .find(|s| s.lo <= v && v <= s.hi)
            .map(|s| s.timeline)
    }

    /// The timeline whose WAL holds record `r` of this history (the record that takes
    /// state `r - 1` to `r`; both must lie in its stretch).
    pub fn owner_of_record(&self, r: u64) -> Option<TimelineId> {
        self.stretches
            .iter()
            .find(|s| s.lo < r && r <= s.hi)
            .map(|s| s.timeline)
    }

    fn stretch(&self, t: TimelineId) -> Option<&Stretch> {
        self.stretches.iter().find(|s| s.timeline == t)
    }

    /// Whether every state `id` touches lies in its own timeline's stretch of this
    /// history (for a WAL segment: whether any of its records does; see
    /// [`History::wal_limit`]).
    pub fn uses(&self, id: &ArtifactId) -> bool {
        let Some(s) = self.stretch(id.timeline()) else {
            return false;
        };
        let (a, b) = id.versions();
        match id {
            ArtifactId::Snapshot { .. } | ArtifactId::Delta { .. } => s.lo <= a && b <= s.hi,
            // record r takes state r-1 to r: both must be in the stretch
            ArtifactId::WalSegment { .. } => b > s.lo && a <= s.hi,
        }
    }

    /// The last WAL record of this segment's timeline that the history may replay.
    pub fn wal_limit(&self, id: &ArtifactId) -> u64 {
        self.stretch(id.timeline()).map_or(0, |s| s.hi)
    }

    /// The stretch boundaries: the versions where the history passes from a parent to
    /// a child timeline, with the child.
    pub fn branch_points(&self) -> impl Iterator<Item = (u64, TimelineId)> + '_ {
        self.stretches.iter().skip(1).map(|s| (s.lo, s.timeline))
    }
}

impl Manifest {
    /// Every timeline, the implicit first one included, as `(id, record)`.
    pub fn timeline_ids(&self) -> Vec<TimelineId> {
        let mut ids: Vec<TimelineId> = std::iter::once(FIRST_TIMELINE)
            .chain(self.timelines.iter().map(|t| t.id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The newest timeline (the highest id).
    pub fn newest_timeline(&self) -> TimelineId {
        self.timelines
            .iter()
            .map(|t| t.id)
            .max()
            .unwrap_or(FIRST_TIMELINE)
            .max(FIRST_TIMELINE)
    }

    /// The newest timeline a retention policy has not expired (the default target of a
    /// restore). Timeline 1 if every one has.
    pub fn newest_live_timeline(&self) -> TimelineId {
        self.timeline_ids()
            .into_iter()
            .rev()
            .find(|t| self.expiry(*t).is_none())
            .unwrap_or(FIRST_TIMELINE)
    }

    /// Whether (and when, why) timeline `t` was expired by a retention policy.
    pub fn expiry(&self, t: TimelineId) -> Option<&crate::ExpiredTimeline> {
        self.expired.iter().find(|e| e.id == t)
    }

    /// Refuses a new backup or restore point on an expired timeline, saying why.
    pub fn check_live(&self, t: TimelineId) -> crate::Result<()> {
        match self.expiry(t) {
            None => Ok(()),
            Some(e) => Err(crate::Error::TimelineExpired {
                timeline: t,
                expired_us: e.expired_us,
                reason: e.reason.clone(),
            }),
        }
    }

    /// Whether (by which timeline, when) a promoted standby took timeline `t` over.
    pub fn supersession(&self, t: TimelineId) -> Option<&crate::Superseded> {
        self.superseded.iter().find(|x| x.id == t)
    }

    /// Refuses a write (a backup, a WAL segment, a restore point) on timeline `t` when
    /// it expired ([`Manifest::check_live`]) or a promoted standby took it over (the
    /// old writer is fenced).
    pub fn check_writable(&self, t: TimelineId) -> crate::Result<()> {
        self.check_live(t)?;
        match self.supersession(t) {
            None => Ok(()),
            Some(x) => Err(crate::Error::TimelineSuperseded {
                timeline: t,
                by: x.by,
                at_us: x.at_us,
            }),
        }
    }

    /// The record of timeline `t` (none for timeline 1).
    pub fn timeline(&self, t: TimelineId) -> Option<&TimelineRecord> {
        self.timelines.iter().find(|r| r.id == t)
    }

    /// The newest version any artifact of timeline `t` reaches.
    pub fn timeline_end(&self, t: TimelineId) -> Option<u64> {
        self.entries
            .iter()
            .filter(|e| e.timeline == t)
            .map(|e| e.to_version)
            .max()
    }
}

/// Checks the timeline records of a decoded manifest: ids from 2 up, unique, each
/// parent older than its child (so parents never form a cycle).
pub(crate) fn check(m: &Manifest) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for t in &m.timelines {
        if t.id <= FIRST_TIMELINE || t.id > MAX_TIMELINE {
            return Err(format!("timeline record with id {}", t.id));
        }
        if !seen.insert(t.id) {
            return Err(format!("timeline {} recorded twice", t.id));
        }
        if t.parent >= t.id {
            return Err(format!(
                "timeline {} has parent {}: a parent is always older",
                t.id, t.parent
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u32, parent: u32, at: u64) -> TimelineRecord {
        TimelineRecord {
            id,
            parent,
            branch_version: at,
            created_us: 0,
            reason: "test".into(),
            root: None,
            claim: None,
        }
    }

    fn m(ts: Vec<TimelineRecord>) -> Manifest {
        Manifest {
            timelines: ts,
            ..Manifest::default()
        }
    }

    #[test]
    fn a_history_uses_the_parent_only_up_to_the_branch_point() {
        // 2 branched from 1 at 50, 3 from 2 at 70
        let m = m(vec![rec(2, 1, 50), rec(3, 2, 70)]);
        let h = History::of(&m, 3).unwrap();
        assert_eq!(
            h.stretches,
            vec![
                Stretch {
                    timeline: 1,
                    lo: 0,
                    hi: 50
                },
                Stretch {
                    timeline: 2,
                    lo: 50,
                    hi: 70
                },
                Stretch {
                    timeline: 3,
                    lo: 70,
                    hi: u64::MAX
                },
            ]
        );
        assert!(h.uses(&ArtifactId::snapshot(40)));
        assert!(h.uses(&ArtifactId::snapshot(50)));
        assert!(
            !h.uses(&ArtifactId::snapshot(60)),
            "timeline 1 past its branch point"
        );
        assert!(h.uses(&ArtifactId::snapshot(60).on(2)));
        assert!(!h.uses(&ArtifactId::snapshot(80).on(2)));
        assert!(h.uses(&ArtifactId::snapshot(80).on(3)));
        assert!(!h.uses(&ArtifactId::delta(40, 60)));
        assert!(h.uses(&ArtifactId::wal(41, 60)));
        assert_eq!(h.wal_limit(&ArtifactId::wal(41, 60)), 50);
        assert!(
            !h.uses(&ArtifactId::wal(51, 60)),
            "all its records are past 50"
        );
        assert!(
            !h.uses(&ArtifactId::snapshot(60).on(4)),
            "not in the history"
        );
        assert_eq!(h.owner_of_state(50), Some(2));
        assert_eq!(h.owner_of_record(50), Some(1));
        assert_eq!(h.owner_of_record(51), Some(2));
        assert_eq!(h.owner_of_record(1), Some(1));
        assert_eq!(
            h.branch_points().collect::<Vec<_>>(),
            vec![(50, 2), (70, 3)]
        );
    }

    #[test]
    fn a_branch_below_the_parents_own_branch_point_skips_the_parent() {
        // 3 branched from 2 at 30, below 2's own branch point (50): 2 adds nothing
        let m = m(vec![rec(2, 1, 50), rec(3, 2, 30)]);
        let h = History::of(&m, 3).unwrap();
        assert_eq!(
            h.stretches,
            vec![
                Stretch {
                    timeline: 1,
                    lo: 0,
                    hi: 30
                },
                Stretch {
                    timeline: 3,
                    lo: 30,
                    hi: u64::MAX
                },
            ]
        );
    }

    #[test]
    fn unknown_timelines_and_cycles_are_refused() {
        assert!(History::of(&m(vec![]), 2).is_err());
        assert!(check(&m(vec![rec(2, 3, 5), rec(3, 2, 5)])).is_err());
        assert!(check(&m(vec![rec(2, 1, 5), rec(2, 1, 6)])).is_err());
    }
}
