//! The deep level: restore every restore point, every backup's version and a seeded
//! sample of other times from all stores together, and compare each result with the
//! state root recorded for it. A result with no recorded root is "unverifiable", never
//! "verified".

use std::sync::Arc;

use bindspace_catalog::{ArtifactId, BackupKind, BackupStore, TimelineId};
use bindspace_pitr::{Sources, Target};

use crate::VerifyOptions;
use crate::report::{DeepCheck, Report};
use crate::verify::Seen;

/// Runs the deep checks; returns the artifacts of backups whose version restored and
/// matched its recorded root.
pub(crate) async fn run(
    stores: &[Arc<dyn BackupStore>],
    seen: &[Option<Seen>],
    opts: &VerifyOptions,
    report: &mut Report,
    pace: &mut dyn FnMut(u64) -> bool,
) -> Vec<ArtifactId> {
    let Some(m) = seen.iter().flatten().next().map(|s| &s.manifest) else {
        return Vec::new();
    };
    let sources = Sources::new(stores.to_vec());
    let mut targets: Vec<(String, Target, Option<TimelineId>, Option<ArtifactId>)> = Vec::new();
    for p in &m.restore_points {
        if m.check_live(p.timeline).is_ok() {
            targets.push((
                format!("restore point {}", p.name),
                Target::RestorePoint(p.name.clone()),
                Some(p.timeline),
                None,
            ));
        }
    }
    for e in m.entries.iter().filter(|e| e.kind != BackupKind::Wal) {
        if m.check_live(e.timeline).is_ok() {
            targets.push((
                format!(
                    "backup {} (version {} on timeline {})",
                    e.id, e.to_version, e.timeline
                ),
                Target::Version(e.to_version),
                Some(e.timeline),
                Some(e.artifact),
            ));
        }
    }
    // a seeded sample of times between the oldest and the newest backup of each live
    // history (a time names a state; a sampled version could fall inside a batch)
    for t in m
        .timeline_ids()
        .into_iter()
        .filter(|t| m.check_live(*t).is_ok())
    {
        let times: Vec<u64> = m
            .entries
            .iter()
            .filter(|e| e.timeline == t && e.kind != BackupKind::Wal)
            .map(|e| e.end_us)
            .collect();
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
            continue;
        };
        for k in 0..opts.deep_samples {
            let h = blake3::hash(
                &[
                    opts.seed.to_le_bytes(),
                    (k as u64).to_le_bytes(),
                    u64::from(t).to_le_bytes(),
                ]
                .concat(),
            );
            let mut eight = [0u8; 8];
            eight.copy_from_slice(&h.as_bytes()[..8]);
            let span = (hi - lo).saturating_add(1);
            let at = lo + u64::from_le_bytes(eight) % span;
            targets.push((
                format!("time {at} µs on timeline {t} (sampled)"),
                Target::Time(at),
                Some(t),
                None,
            ));
        }
    }
    let mut ok = Vec::new();
    let n = targets.len();
    let mut restored = 0u64;
    for (k, (what, target, timeline, artifact)) in targets.into_iter().enumerate() {
        // paced (and stoppable) before each restore, not only after
        if !pace(restored) {
            report.not_reached += n - k;
            break;
        }
        let res = match bindspace_pitr::plan_on(sources.clone(), &target, timeline).await {
            Ok(plan) => {
                restored = restored.saturating_add(plan.estimated_bytes);
                bindspace_pitr::restore_verified(&plan).await
            }
            Err(e) => Err(e),
        };
        let (status, detail) = match res {
            // a restore that went around damage proves the other path, not this one
            Ok((_, v)) if !v.planned_around.is_empty() => ("degraded", v.to_string()),
            Ok((_, v)) if v.is_verified() => {
                ok.extend(artifact);
                ("verified", v.to_string())
            }
            Ok((_, v)) => ("unverifiable", v.to_string()),
            Err(e) => ("failed", e.to_string()),
        };
        tracing::info!(target = %what, status, "deep check");
        report.deep.push(DeepCheck {
            target: what,
            status,
            detail,
        });
    }
    ok
}
