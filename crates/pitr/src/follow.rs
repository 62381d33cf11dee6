//! Following a repository (a warm standby): a space restored at some version of a
//! history takes every WAL record archived after it, in order, checked as a restore
//! checks them (each WAL checkpoint against its root, each catalog-recorded root on
//! the way), without restoring from a full again.

use std::sync::Arc;

use bindspace_catalog::{ArtifactKind, History, TimelineId};
use bindspace_core::BindSpace;
use bindspace_wal::{Record, Replayer};

use crate::execute::{check_recorded, fetch_in_order};
use crate::inventory::{Inventory, Listing, Sources};
use crate::plan::{merged_timelines, recorded_roots, wal_chain};
use crate::{Error, Result};

/// What [`advance`] applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advance {
    /// The version before.
    pub from: u64,
    /// The version after (`from` when nothing new was archived).
    pub to: u64,
    /// WAL segments read.
    pub segments: usize,
    /// Recorded roots the states on the way were checked against.
    pub checked: usize,
    /// Whether the space now holds everything archived on the history: every store
    /// was listed and no segment past `to` is archived (a gap stops it short).
    pub complete: bool,
    /// Where the next step may list from ([`advance_since`]): the first version of
    /// the archived segment that holds the next record, or else the version after the
    /// newest archived segment before it (where the segment that will hold it starts:
    /// a history's WAL is contiguous); `None` (list everything) when this history has
    /// no such segment yet, or does not own the next record.
    pub next_since: Option<u64>,
    /// Live histories that branch from the followed one (not expired, not taken
    /// over), as the catalogs record them: where the primary writes after a rewind or
    /// a restart past a WAL cut, or an investigation. A follower that stays on its
    /// history no longer follows a writer that moved there.
    pub branched: Vec<bindspace_catalog::TimelineRecord>,
}

/// Applies to `space` (a state of `timeline`'s history at its version) every WAL
/// record the stores archived after that version on the history, contiguous from it;
/// stops at the first record no store holds. Records are applied whole, each state
/// checked after it; on an error the space may hold records applied before the error
/// (and the state that failed its check): the caller must not serve it (the
/// [`Advance`] is not returned then, and the version may have moved).
pub async fn advance(
    space: &mut BindSpace,
    sources: impl Into<Sources>,
    timeline: TimelineId,
) -> Result<Advance> {
    advance_since(space, sources, timeline, None).await
}

/// [`advance`], listing only the history's WAL segments that start at `since` or later
/// (the [`Advance::next_since`] of the step before; `None` lists everything): a step
/// of a follower whose cost grows with what was archived since, not with the archive.
/// A segment that starts before `since` and was archived after the step before (none
/// does while one writer archives its WAL in order) is found by the next step that
/// lists everything, so a follower lists everything now and then.
pub async fn advance_since(
    space: &mut BindSpace,
    sources: impl Into<Sources>,
    timeline: TimelineId,
    since: Option<u64>,
) -> Result<Advance> {
    let sources: Sources = sources.into();
    let from = space.version();
    let inv = match since {
        None => Inventory::take(&sources).await,
        Some(first) => {
            Inventory::take_listing(&sources, Listing::WalSince { timeline, first }).await
        }
    };
    if inv.unlisted == sources.stores().len() {
        return Err(Error::NoStoreReadable {
            target: format!("the WAL after version {from}"),
            detail: inv.unavailable.join("; "),
            retryable: inv.unavailable_retryable,
        });
    }
    let not = |reason: String| Error::NotRestorable {
        target: format!("the WAL after version {from} on timeline {timeline}"),
        reason,
    };
    let timelines = merged_timelines(&inv.manifests).map_err(not)?;
    let history = History::of(&timelines, timeline).map_err(not)?;
    let segments: Vec<_> = inv
        .of_kind(ArtifactKind::WalSegment)
        .filter(|(r, _)| history.uses(&r.id))
        .collect();
    // contiguous segments from the next record on, as the planner takes them
    let (steps, covered) = wal_chain(&sources, &history, &segments, from, u64::MAX);
    let next = covered + 1;
    // archived past where the contiguous run ends (a gap), or stores not listed: the
    // space cannot be said to hold everything
    let beyond = segments.iter().any(|(r, _)| {
        let (_, last) = r.id.versions();
        last.min(history.wal_limit(&r.id)) >= next
    });
    let next_since = |to: u64| {
        if history.owner_of_record(to + 1) != Some(timeline) {
            return None;
        }
        let newest = segments
            .iter()
            .filter(|(r, _)| r.id.timeline() == timeline && r.id.versions().0 <= to + 1)
            .map(|(r, _)| r.id.versions())
            .max();
        match newest {
            Some((first, last)) if last > to => Some(first),
            Some((_, last)) => Some(last + 1),
            // nothing listed from `since` on: it still holds
            None => since,
        }
    };
    let branched: Vec<bindspace_catalog::TimelineRecord> = timelines
        .timelines
        .iter()
        .filter(|t| t.parent == timeline)
        .filter(|t| {
            inv.manifests.iter().all(|m| {
                !m.expired.iter().any(|x| x.id == t.id)
                    && !m.superseded.iter().any(|x| x.id == t.id)
            })
        })
        .cloned()
        .collect();
    let mut out = Advance {
        branched,
        from,
        to: from,
        segments: steps.len(),
        checked: 0,
        complete: !beyond && inv.unavailable.is_empty(),
        next_since: next_since(from),
    };
    if steps.is_empty() {
        return Ok(out);
    }
    let recorded = recorded_roots(&inv.manifests, &timelines, &history);
    let pending = Arc::new(std::sync::Mutex::new(Vec::<Record>::new()));
    let sink = pending.clone();
    let mut replayer = Replayer::new(from, (u64::MAX, u64::MAX), move |r: &Record| {
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r.clone());
        Ok(())
    });
    let mut checked = 0usize;
    fetch_in_order(&sources, steps, |s, bytes| {
        let path = std::path::PathBuf::from(s.artifact.id.to_string());
        let more =
            replayer.feed_sealed_segment_upto(&bytes, s.artifact.id.versions(), &path, s.until)?;
        let released = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
        for r in released {
            // a checkpoint record checks the replayed state against its root here
            bindspace_wal::apply_record(space, &r)?;
            check_recorded(space, &recorded, &mut checked)?;
        }
        Ok(more)
    })
    .await?;
    out.to = space.version();
    out.checked = checked;
    out.next_since = next_since(out.to);
    tracing::info!(
        from,
        to = out.to,
        segments = out.segments,
        "followed the WAL archive"
    );
    Ok(out)
}
