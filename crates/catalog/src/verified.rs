//! What verification found intact, recorded in each store's catalog: per artifact and
//! per level, when its copy in that store was last read back and checked, so a repeat
//! run reads only what is new or due. Archived WAL is recorded as verified ranges per
//! timeline (one record per stretch, not per segment: the manifest is rewritten whole
//! on every commit).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ArtifactId, ArtifactKind, ArtifactRef, TimelineId, blake3_hex};

/// How thoroughly an artifact was checked; each level includes those below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyLevel {
    /// Read back; length and blake3 match the catalog, without decoding.
    Checksum,
    /// Also decoded: headers, payload hashes, WAL frames, schemas, chains.
    Standard,
    /// Also restored, and the result checked against a recorded state root.
    Deep,
}

impl VerifyLevel {
    /// Its name: `checksum`, `standard`, `deep`.
    pub fn name(self) -> &'static str {
        match self {
            VerifyLevel::Checksum => "checksum",
            VerifyLevel::Standard => "standard",
            VerifyLevel::Deep => "deep",
        }
    }

    /// The level named `s`.
    pub fn parse(s: &str) -> Option<VerifyLevel> {
        [
            VerifyLevel::Checksum,
            VerifyLevel::Standard,
            VerifyLevel::Deep,
        ]
        .into_iter()
        .find(|l| l.name() == s)
    }
}

impl std::fmt::Display for VerifyLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One check of an artifact's copy: at which level, and when (µs since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// The level.
    pub level: VerifyLevel,
    /// When, µs since the epoch.
    pub at_us: u64,
}

/// Archived WAL of one timeline, versions `first..=last`, found intact at `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalVerified {
    /// The timeline.
    pub timeline: TimelineId,
    /// First version.
    pub first: u64,
    /// Last version.
    pub last: u64,
    /// The level and time.
    #[serde(flatten)]
    pub verified: Verified,
}

/// A store's verification record ([`crate::Manifest::verified`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyLog {
    /// Snapshots and deltas, by `kind/key name.blake3 prefix` (a copy with new bytes
    /// under the same id is a new artifact, never verified yet): the newest check at
    /// each level.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, Vec<Verified>>,
    /// WAL stretches, by timeline then first version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wal: Vec<WalVerified>,
}

fn key(r: &ArtifactRef) -> String {
    let kind = match r.id.kind() {
        ArtifactKind::Snapshot => "snapshot",
        ArtifactKind::Delta => "delta",
        ArtifactKind::WalSegment => "wal",
    };
    let hash = blake3_hex(&r.blake3);
    format!("{kind}/{}.{}", r.id.key_name(), &hash[..16])
}

impl VerifyLog {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.artifacts.is_empty() && self.wal.is_empty()
    }

    /// When `r` was last found intact at `level` or a higher one (`None`: never).
    pub fn last(&self, r: &ArtifactRef, level: VerifyLevel) -> Option<u64> {
        if let ArtifactId::WalSegment {
            first,
            last,
            timeline,
        } = r.id
        {
            return self
                .wal
                .iter()
                .filter(|w| {
                    w.timeline == timeline
                        && w.first <= first
                        && last <= w.last
                        && w.verified.level >= level
                })
                .map(|w| w.verified.at_us)
                .max();
        }
        self.artifacts
            .get(&key(r))?
            .iter()
            .filter(|v| v.level >= level)
            .map(|v| v.at_us)
            .max()
    }

    /// Records that `r` was found intact at `level` at `at_us`.
    pub fn record(&mut self, r: &ArtifactRef, level: VerifyLevel, at_us: u64) {
        let v = Verified { level, at_us };
        let ArtifactId::WalSegment {
            first,
            last,
            timeline,
        } = r.id
        else {
            let slot = self.artifacts.entry(key(r)).or_default();
            slot.retain(|x| x.level != level);
            slot.push(v);
            slot.sort_by_key(|x| x.level);
            return;
        };
        // cut the new stretch out of older records of the same level, then merge it
        // with neighbours checked at the same time (one run makes one record)
        let mut out = Vec::with_capacity(self.wal.len() + 2);
        for w in self.wal.drain(..) {
            if w.timeline != timeline
                || w.verified.level != level
                || w.last < first
                || w.first > last
            {
                out.push(w);
                continue;
            }
            if w.first < first {
                out.push(WalVerified {
                    last: first - 1,
                    ..w
                });
            }
            if w.last > last {
                out.push(WalVerified {
                    first: last + 1,
                    ..w
                });
            }
        }
        out.push(WalVerified {
            timeline,
            first,
            last,
            verified: v,
        });
        out.sort_by_key(|w| (w.timeline, w.verified.level, w.first));
        let mut merged: Vec<WalVerified> = Vec::with_capacity(out.len());
        for w in out {
            match merged.last_mut() {
                Some(m)
                    if m.timeline == w.timeline
                        && m.verified == w.verified
                        && m.last.checked_add(1) == Some(w.first) =>
                {
                    m.last = w.last
                }
                _ => merged.push(w),
            }
        }
        self.wal = merged;
    }

    /// Drops the records of snapshots and deltas `keep` says are gone (retention
    /// removed them) and of WAL on timelines `keep_timeline` rejects.
    pub fn prune(
        &mut self,
        keep: impl Fn(&str) -> bool,
        keep_timeline: impl Fn(TimelineId) -> bool,
    ) {
        self.artifacts.retain(|k, _| keep(k));
        self.wal.retain(|w| keep_timeline(w.timeline));
    }

    /// The key [`VerifyLog::artifacts`] files `r` under.
    pub fn key_of(r: &ArtifactRef) -> String {
        key(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: ArtifactId) -> ArtifactRef {
        ArtifactRef::of(id, b"x")
    }

    #[test]
    fn wal_records_merge_within_a_run_and_split_across_runs() {
        let mut log = VerifyLog::default();
        let c = VerifyLevel::Checksum;
        for (a, b) in [(1, 10), (11, 20), (21, 30)] {
            log.record(&r(ArtifactId::wal(a, b)), c, 100);
        }
        assert_eq!(log.wal.len(), 1, "one run, one stretch: {:?}", log.wal);
        assert_eq!(log.last(&r(ArtifactId::wal(11, 20)), c), Some(100));
        // a later run re-checks the middle: three stretches, the middle newer
        log.record(&r(ArtifactId::wal(11, 20)), c, 200);
        assert_eq!(log.wal.len(), 3, "{:?}", log.wal);
        assert_eq!(log.last(&r(ArtifactId::wal(11, 20)), c), Some(200));
        assert_eq!(log.last(&r(ArtifactId::wal(21, 30)), c), Some(100));
        // a higher level counts for a lower one, never the reverse
        assert_eq!(
            log.last(&r(ArtifactId::wal(1, 10)), VerifyLevel::Standard),
            None
        );
        log.record(&r(ArtifactId::wal(1, 10)), VerifyLevel::Standard, 300);
        assert_eq!(log.last(&r(ArtifactId::wal(1, 10)), c), Some(300));
        // never verified: another timeline, or past the end
        assert_eq!(log.last(&r(ArtifactId::wal(1, 10).on(2)), c), None);
        assert_eq!(log.last(&r(ArtifactId::wal(31, 40)), c), None);
    }

    #[test]
    fn artifact_records_keep_the_newest_per_level() {
        let mut log = VerifyLog::default();
        let id = r(ArtifactId::snapshot(7));
        log.record(&id, VerifyLevel::Checksum, 1);
        log.record(&id, VerifyLevel::Checksum, 5);
        log.record(&id, VerifyLevel::Deep, 3);
        assert_eq!(log.artifacts[&VerifyLog::key_of(&id)].len(), 2);
        assert_eq!(log.last(&id, VerifyLevel::Checksum), Some(5));
        assert_eq!(log.last(&id, VerifyLevel::Standard), Some(3));
        // other bytes under the same id: never verified
        let other = ArtifactRef::of(id.id, b"y");
        assert_eq!(log.last(&other, VerifyLevel::Checksum), None);
        log.prune(|_| false, |_| true);
        assert_eq!(log.last(&id, VerifyLevel::Checksum), None);
    }
}
