//! Flashback reads: one address as of a target ([`as_of`]), and an address's history
//! from the WAL archive ([`versions`]), without restoring the whole space.

use bindspace_catalog::{ArtifactKind, ArtifactRef, History, TimelineId};
use bindspace_core::{Addr, snapshot};
use bindspace_wal::{Op, Record, RecordOp, Replayer};

use crate::execute::fetch;
use crate::inventory::{Inventory, Sources};
use crate::plan::{RestorePlan, merged_timelines, plan_on, step};
use crate::{Error, Result, Target};

/// One version of an address in the WAL archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrVersion {
    /// The version that wrote or deleted it.
    pub version: u64,
    /// The value after that version; `None`: deleted.
    pub value: Option<Vec<u64>>,
}

async fn replay_wal(
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
        let bytes = fetch(plan.sources(), w).await?;
        let path = std::path::PathBuf::from(w.artifact.id.to_string());
        if !rep.feed_sealed_segment_upto(&bytes, w.artifact.id.versions(), &path, w.until)? {
            break;
        }
    }
    Ok(rep.finish()?)
}

/// The fingerprint at `addr` as of `target` on `timeline` (`None`: the newest, or the
/// restore point's), touching only that address after the base snapshot: deltas and
/// WAL records for other addresses are skipped, not applied.
pub async fn as_of(
    sources: impl Into<Sources>,
    addr: Addr,
    target: &Target,
    timeline: Option<TimelineId>,
) -> Result<Option<Vec<u64>>> {
    let p = plan_on(sources, target, timeline).await?;
    let base = snapshot::decode(&fetch(p.sources(), &p.base).await?)?.space;
    let mut cur = base.read(addr).map(<[u64]>::to_vec);
    let version = base.version();
    drop(base);
    let mut at = version;
    for d in &p.deltas {
        let delta = bindspace_xor_delta::decode(&fetch(p.sources(), d).await?)?;
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
    let reached = replay_wal(&p, at, |r| {
        match &r.op {
            RecordOp::Op(Op::Write(a, fp)) if *a == addr => cur = Some(fp.as_ref().to_vec()),
            RecordOp::Op(Op::Delete(a)) if *a == addr => cur = None,
            _ => {}
        }
        Ok(())
    })
    .await?;
    // what a restore refuses, as-of refuses too (a version inside a batch is not a
    // state: answering the value before the batch would name the wrong one)
    if p.time_limit.is_some() {
        p.check_time_result(reached)?;
    }
    if p.time_limit.is_none() && reached != p.version {
        return Err(Error::NotRestorable {
            target: target.to_string(),
            reason: format!(
                "replay ended at version {reached}, the plan promised {}",
                p.version
            ),
        });
    }
    Ok(cur)
}

/// The history of `addr` in the WAL archive between versions `lo..=hi` on `timeline`
/// (`None`: the newest): each version that wrote or deleted it, with the value after
/// (Oracle's VERSIONS BETWEEN). Only the WAL of that timeline's history is read.
pub async fn versions(
    sources: impl Into<Sources>,
    addr: Addr,
    lo: u64,
    hi: u64,
    timeline: Option<TimelineId>,
) -> Result<Vec<AddrVersion>> {
    let sources = sources.into();
    let inv = Inventory::take(&sources).await;
    let not = |reason: String| Error::NotRestorable {
        target: format!("versions {lo}..={hi} of {addr}"),
        reason,
    };
    let timelines = merged_timelines(&inv.manifests).map_err(not)?;
    let timeline = timeline.unwrap_or_else(|| timelines.newest_live_timeline());
    timelines
        .check_live(timeline)
        .map_err(|e| not(e.to_string()))?;
    let history = History::of(&timelines, timeline).map_err(not)?;
    let mut out = Vec::new();
    let ours: Vec<(&ArtifactRef, &Vec<usize>)> = inv
        .of_kind(ArtifactKind::WalSegment)
        .filter(|(r, _)| history.uses(&r.id))
        .collect();
    let mut segs: Vec<(&ArtifactRef, &Vec<usize>)> = ours
        .iter()
        .copied()
        .filter(|(r, _)| r.id.overlaps(lo, hi))
        .collect();
    segs.sort_by_key(|(r, _)| r.id.versions());
    if segs.is_empty() && hi >= lo.max(1) {
        // no segment overlaps the range, yet the archive goes on past it: the range is
        // a hole (swept by retention, or missing), not a stretch where nothing wrote
        let after = ours
            .iter()
            .map(|(r, _)| r.id.versions().0)
            .filter(|&f| f > hi)
            .min();
        if let Some(after) = after {
            let before = ours
                .iter()
                .map(|(r, _)| r.id.versions().1)
                .filter(|&l| l < lo)
                .max()
                .unwrap_or(0);
            return Err(not(format!(
                "the archived WAL of this history has no records for versions {}..={} (a segment missing, or removed by retention); ask for a range that does not cross it",
                before + 1,
                after - 1
            )));
        }
    }
    let mut seen_to = lo.saturating_sub(1);
    for (r, idx) in segs {
        let s = step(&sources, r, idx);
        let bytes = fetch(&sources, &s).await?;
        let first = r.id.versions().0;
        if first > seen_to + 1 && seen_to < hi {
            // never skipped silently: the answer would miss whatever the hole wrote
            // (the archive's end cannot be told from a missing newest segment: the
            // answer covers what is archived)
            return Err(not(format!(
                "the archived WAL of this history has no records for versions {}..={} (a segment missing, or removed by retention); ask for a range that does not cross it",
                seen_to + 1,
                first - 1
            )));
        }
        let mut rep = Replayer::new(
            seen_to.max(first.saturating_sub(1)),
            (hi, u64::MAX),
            |rec: &Record| {
                if rec.version >= lo {
                    let value = match &rec.op {
                        RecordOp::Op(Op::Write(a, fp)) if *a == addr => {
                            Some(Some(fp.as_ref().to_vec()))
                        }
                        RecordOp::Op(Op::Delete(a)) if *a == addr => Some(None),
                        _ => None,
                    };
                    if let Some(value) = value {
                        out.push(AddrVersion {
                            version: rec.version,
                            value,
                        });
                    }
                }
                Ok(())
            },
        );
        rep.feed_sealed_segment_upto(
            &bytes,
            r.id.versions(),
            std::path::Path::new(&r.id.to_string()),
            history.wal_limit(&r.id),
        )?;
        seen_to = rep.finish()?;
    }
    // the range runs into a hole the archive continues after: the answer would stop
    // short of `hi` without a word
    if seen_to < hi
        && let Some(after) = ours
            .iter()
            .map(|(r, _)| r.id.versions().0)
            .filter(|&f| f > seen_to + 1)
            .min()
    {
        return Err(not(format!(
            "the archived WAL of this history has no records for versions {}..={} (a segment missing, or removed by retention); ask for a range that does not cross it",
            seen_to + 1,
            after - 1
        )));
    }
    Ok(out)
}
