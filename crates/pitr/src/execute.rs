//! Running a plan: fetch each artifact from the first store that serves it intact
//! (checked here against the plan's length and blake3, whatever the store checked),
//! up to [`PREFETCH`] ahead of the one being applied; decode, apply, replay.

use std::sync::Arc;

use bindspace_catalog::{ArtifactKind, blake3_hex};
use bindspace_core::{BindSpace, snapshot};
use bindspace_wal::{Record, Replayer};
use bytes::Bytes;

use crate::error::StoreFailure;
use crate::inventory::Sources;
use crate::plan::{RestorePlan, Step, plan_on};
use crate::{Error, Result, Target};

/// How many artifacts are fetched ahead of the one being applied.
pub const PREFETCH: usize = 4;

/// Fetches an artifact from the first of its stores that serves it intact: the bytes
/// must have the length and blake3 the plan recorded, or the next store is tried.
pub(crate) async fn fetch(sources: &Sources, s: &Step) -> Result<Bytes> {
    let mut failures = Vec::new();
    for &i in &s.idx {
        let store = sources.get(i);
        let got = store.get(&s.artifact).await.and_then(|b| {
            let hash = blake3::Hasher::new().update_rayon(&b).finalize();
            if b.len() as u64 == s.artifact.len && *hash.as_bytes() == s.artifact.blake3 {
                Ok(b)
            } else {
                Err(bindspace_catalog::Error::Corrupt {
                    store: store.name(),
                    artifact: s.artifact.id,
                    detail: format!(
                        "served {} bytes with blake3 {}, the plan expects {} bytes with blake3 {}",
                        b.len(),
                        hash.to_hex(),
                        s.artifact.len,
                        blake3_hex(&s.artifact.blake3)
                    ),
                })
            }
        });
        match got {
            Ok(b) => return Ok(b),
            Err(error) => {
                tracing::warn!(store = %store.name(), artifact = %s.artifact.id, error = %error, "fetch failed, trying the next store");
                failures.push(StoreFailure {
                    store: store.name(),
                    error,
                });
            }
        }
    }
    Err(Error::Fetch {
        artifact: s.artifact.id.to_string(),
        failures,
    })
}

/// Fetches `steps` in order, up to [`PREFETCH`] ahead on the runtime's other workers,
/// handing each to `each` as soon as it and all before it are in; `each` returns
/// `false` to stop early (the rest are abandoned).
async fn fetch_in_order(
    sources: &Sources,
    steps: Vec<Step>,
    mut each: impl FnMut(&Step, Bytes) -> Result<bool>,
) -> Result<()> {
    let mut window = std::collections::VecDeque::new();
    let mut todo = steps.into_iter();
    loop {
        while window.len() < PREFETCH {
            let Some(s) = todo.next() else { break };
            let (src, s2) = (sources.clone(), s.clone());
            window.push_back((s, tokio::spawn(async move { fetch(&src, &s2).await })));
        }
        let Some((s, task)) = window.pop_front() else {
            return Ok(());
        };
        let bytes = task.await.map_err(|e| Error::Internal {
            what: format!("the fetch task for {} failed: {e}", s.artifact.id),
        })??;
        if !each(&s, bytes)? {
            for (_, t) in window {
                t.abort();
            }
            return Ok(());
        }
    }
}

/// Runs a plan against the stores that planned it: full, deltas, WAL replay, with the
/// next artifacts fetched while the current one is decoded and applied. The result is
/// at `plan.version`.
pub async fn restore(plan: &RestorePlan) -> Result<BindSpace> {
    let steps: Vec<Step> = plan.steps().cloned().collect();
    let n_deltas = plan.deltas.len();
    let mut space: Option<BindSpace> = None;
    let mut replayer: Option<Replayer<_>> = None;
    let mut applied = 0usize;
    let limit = (plan.version, plan.time_limit.unwrap_or(u64::MAX));
    // the replayer outlives each segment (a batch may span two); what it releases is
    // applied right after each segment
    let pending_wal = Arc::new(std::sync::Mutex::new(Vec::<Record>::new()));
    fetch_in_order(plan.sources(), steps, |s, bytes| {
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
                let more =
                    rep.feed_segment_upto(&bytes, s.artifact.id.versions().0, &path, s.until)?;
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

/// Plans and runs a restore to `target` on the newest timeline (or the restore
/// point's).
pub async fn restore_to(
    sources: impl Into<Sources>,
    target: &Target,
) -> Result<(BindSpace, RestorePlan)> {
    restore_to_on(sources, target, None).await
}

/// Plans and runs a restore to `target` on `timeline` (`None`: as [`restore_to`]).
pub async fn restore_to_on(
    sources: impl Into<Sources>,
    target: &Target,
    timeline: Option<bindspace_catalog::TimelineId>,
) -> Result<(BindSpace, RestorePlan)> {
    let p = plan_on(sources, target, timeline).await?;
    let space = restore(&p).await?;
    Ok((space, p))
}
