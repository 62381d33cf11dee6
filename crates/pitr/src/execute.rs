//! Running a plan: fetch each artifact from the first store that serves it intact
//! (checked here against the plan's length and blake3, whatever the store checked),
//! up to [`PREFETCH`] ahead of the one being applied; decode, apply, replay.
//!
//! Every state the restore passes through that a catalog recorded a root for (the
//! base, each delta's end, a WAL record's version, a branch point, the result) is
//! checked against it; the artifacts check their own prefix digests as they decode.
//! The result says whether it was verified ([`Verification`]).

use std::sync::Arc;

use bindspace_catalog::{ArtifactKind, blake3_hex};
use bindspace_core::{BindSpace, Digest, StateRoot, snapshot};
use bindspace_wal::{Op, Record, RecordOp, Replayer};
use bytes::Bytes;

use crate::error::StoreFailure;
use crate::inventory::Sources;
use crate::plan::{RecordedRoot, RestorePlan, Step, plan_on};
use crate::{Error, Result, Target};

/// How many artifacts are fetched ahead of the one being applied.
pub const PREFETCH: usize = 4;

/// Fetches an artifact from the first of its stores that serves it intact: the bytes
/// must have the length and blake3 the plan recorded, or the next store is tried.
pub(crate) async fn fetch(sources: &Sources, s: &Step) -> Result<Bytes> {
    let mut failures = Vec::new();
    for &i in &s.idx {
        let store = sources.get(i);
        // the stored bytes are checked (an encrypted store's are sealed), then opened
        let got = match store.get_stored(&s.artifact).await.and_then(|b| {
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
        }) {
            Ok(b) => store.open_stored(&s.artifact, b).await,
            Err(e) => Err(e),
        };
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
pub(crate) async fn fetch_in_order(
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

/// What a restore proved about its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The result's version.
    pub version: u64,
    /// The result's state root.
    pub root: Digest,
    /// What recorded the root the result matched; `None`: no root was recorded for
    /// the result's version (artifacts written before roots existed, or a version
    /// between recorded points), so the result is unverified.
    pub verified_by: Option<String>,
    /// Recorded roots checked on the way (base, deltas, WAL, branch points, result).
    pub checked: usize,
    /// Artifacts that carried their own prefix digests (checked as they decoded).
    pub self_checked: usize,
    /// Artifacts no store served intact, which the restore planned around (another
    /// path to the same state).
    pub planned_around: Vec<String>,
    /// When the result was the live state, µs since the epoch: the time of the last WAL
    /// record applied, else of the last delta, else of the full (what a drill's RPO is
    /// measured from).
    pub state_time_us: u64,
}

impl Verification {
    /// Whether the result matched a recorded root.
    pub fn is_verified(&self) -> bool {
        self.verified_by.is_some()
    }
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.verified_by {
            Some(by) => write!(f, "verified: root {} matches {by}", self.root)?,
            None => write!(
                f,
                "unverified: no root recorded for version {} (root {})",
                self.version, self.root
            )?,
        }
        write!(
            f,
            "; {} recorded roots checked on the way, {} artifacts checked their own",
            self.checked, self.self_checked
        )?;
        if !self.planned_around.is_empty() {
            write!(
                f,
                "; planned around {} (no store served it intact)",
                self.planned_around.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Checks `space` against the roots recorded for its version, if any; returns who
/// recorded the matching one.
pub(crate) fn check_recorded(
    space: &BindSpace,
    recorded: &std::collections::BTreeMap<u64, Vec<RecordedRoot>>,
    checked: &mut usize,
) -> Result<Option<String>> {
    let Some(list) = recorded.get(&space.version()) else {
        return Ok(None);
    };
    let actual = space.state_root();
    for r in list {
        *checked += 1;
        if Digest::from_hex(&r.root) != Some(actual.root()) {
            return Err(Error::RootMismatch {
                version: space.version(),
                by: r.by.clone(),
                expected: r.root.clone(),
                actual: actual.root().to_string(),
            });
        }
    }
    Ok(list.first().map(|r| r.by.clone()))
}

/// Runs a plan against the stores that planned it: full, deltas, WAL replay, with the
/// next artifacts fetched while the current one is decoded and applied. The result is
/// at `plan.version`, checked against every recorded root on the way (see
/// [`restore_verified`], which also says whether the result itself was verified).
pub async fn restore(plan: &RestorePlan) -> Result<BindSpace> {
    restore_verified(plan).await.map(|(s, _)| s)
}

/// [`restore`], with what it proved about the result. An artifact that no store serves
/// intact is planned around (the target again, without it) while another path exists;
/// the restore fails only when none does.
pub async fn restore_verified(plan: &RestorePlan) -> Result<(BindSpace, Verification)> {
    let mut exclude: std::collections::BTreeSet<bindspace_catalog::ArtifactRef> =
        std::collections::BTreeSet::new();
    let mut current = plan.clone();
    loop {
        let err = match run_plan(&current).await {
            Ok((space, mut v)) => {
                v.planned_around = exclude.iter().map(|r| r.id.to_string()).collect();
                return Ok((space, v));
            }
            Err(e) => e,
        };
        // only damage is planned around: a store that could not be reached may serve
        // the artifact on a retry, and a time target's result depends on the path
        let Error::Fetch { artifact, failures } = &err else {
            return Err(err);
        };
        if plan.time_limit.is_some() || failures.iter().any(|f| f.error.kind().is_retryable()) {
            return Err(err);
        }
        let Some(bad) = current
            .steps()
            .find(|s| &s.artifact.id.to_string() == artifact)
            .map(|s| s.artifact)
        else {
            return Err(err);
        };
        if !exclude.insert(bad) || exclude.len() > 8 {
            return Err(err);
        }
        match crate::plan::replan(plan, &exclude).await {
            // the same reach, or nothing: "latest" without the newest artifact would
            // quietly be an older state
            Ok(p) if p.version == plan.version => {
                tracing::warn!(artifact = %bad.id, plan = %p, "no store serves it intact: planned around it");
                current = p;
            }
            // no other path: the fetch failure is the reason
            _ => return Err(err),
        }
    }
}

/// Runs one plan: base, deltas, WAL, checked on the way.
async fn run_plan(plan: &RestorePlan) -> Result<(BindSpace, Verification)> {
    let steps: Vec<Step> = plan.steps().cloned().collect();
    let n_deltas = plan.deltas.len();
    let mut space: Option<BindSpace> = None;
    let mut replayer: Option<Replayer<_>> = None;
    let mut applied = 0usize;
    let limit = (plan.version, plan.time_limit.unwrap_or(u64::MAX));
    // the replayer outlives each segment (a batch may span two); what it releases is
    // applied right after each segment
    let pending_wal = Arc::new(std::sync::Mutex::new(Vec::<Record>::new()));
    let (mut checked, mut self_checked) = (0usize, 0usize);
    let mut last_by = None;
    let mut state_time_us = 0;
    fetch_in_order(plan.sources(), steps, |s, bytes| {
        match (&mut space, s.artifact.id.kind()) {
            (None, _) => {
                let snap = snapshot::decode(&bytes)?;
                state_time_us = snap.header.time_to_us;
                self_checked += usize::from(snap.root.is_some());
                last_by = check_recorded(&snap.space, &plan.recorded, &mut checked)?
                    .map(|by| (snap.space.version(), by));
                space = Some(snap.space);
            }
            (Some(sp), ArtifactKind::Delta) => {
                let d = bindspace_xor_delta::decode(&bytes)?;
                self_checked += usize::from(d.end_root.is_some());
                bindspace_xor_delta::apply(sp, &d)?;
                state_time_us = d.timestamp_us;
                last_by =
                    check_recorded(sp, &plan.recorded, &mut checked)?.map(|by| (sp.version(), by));
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
                    rep.feed_sealed_segment_upto(&bytes, s.artifact.id.versions(), &path, s.until)?;
                let released =
                    std::mem::take(&mut *pending_wal.lock().unwrap_or_else(|e| e.into_inner()));
                for r in released {
                    // a checkpoint checks the replayed state against its root here
                    bindspace_wal::apply_record(sp, &r)?;
                    state_time_us = r.timestamp_us;
                    last_by =
                        check_recorded(sp, &plan.recorded, &mut checked)?.map(|by| (r.version, by));
                    if let RecordOp::Op(Op::Checkpoint(_)) = r.op {
                        checked += 1;
                        if last_by.is_none() {
                            let by = format!("WAL checkpoint at version {}", r.version);
                            last_by = Some((r.version, by));
                        }
                    }
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
    if plan.time_limit.is_some() {
        plan.check_time_result(space.version())?;
    }
    // the last check was at the result's version only if nothing came after it
    let verified_by = match last_by {
        Some((v, by)) if v == space.version() => Some(by),
        _ => None,
    };
    let root: StateRoot = space.state_root();
    let v = Verification {
        version: space.version(),
        root: root.root(),
        verified_by,
        checked,
        self_checked,
        planned_around: Vec::new(),
        state_time_us,
    };
    tracing::info!(version = v.version, verification = %v, "restored");
    Ok((space, v))
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
