//! `rewind`: the bad-deploy runbook in one step. Restores a data directory's history
//! to an earlier version, time or restore point, in place, and starts a new timeline
//! from there; the directory's old WAL and checkpoint are kept beside it, renamed, and
//! archived first, so nothing is lost.

use std::path::{Path, PathBuf};

use bindspace_catalog::TimelineId;
use bindspace_core::{Clock, snapshot};
use bindspace_pitr::Target;

use crate::datadir::{DataDir, Origin};
use crate::error::io;
use crate::{BackupConfig, Engine, Result};

/// What a rewind did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewound {
    /// The timeline rewound (the directory's).
    pub from_timeline: TimelineId,
    /// The version it went back to.
    pub version: u64,
    /// The new timeline the directory now writes.
    pub timeline: TimelineId,
    /// Where the old WAL and checkpoint went.
    pub kept: PathBuf,
}

/// Rewinds the data directory `dir` to `target` on its own timeline (or `timeline`):
/// archives its WAL (the engine must not be running: its lock is taken), restores
/// the target from the repository, moves the old `wal/`, `checkpoint.snap` and
/// `timeline` aside into `rewound-<time>/`, writes the restored state as the
/// checkpoint with its origin, and opens the directory once so the new timeline is
/// recorded in every destination before this returns.
pub fn rewind(
    dir: &Path,
    cfg: BackupConfig,
    clock: std::sync::Arc<dyn Clock>,
    target: &Target,
    timeline: Option<TimelineId>,
) -> Result<Rewound> {
    let cfg = BackupConfig {
        background_jobs: false,
        ..cfg
    };
    let open = || {
        Engine::builder(dir)
            .config(cfg.clone())
            .clock(clock.clone())
            .open()
    };
    // 1. everything the directory wrote reaches the archive first
    let engine = open()?;
    let from_timeline = timeline.unwrap_or(engine.timeline());
    let repository_id = engine
        .inner_runtime()
        .block_on(engine.repository().manifest())?
        .repository_id;
    engine.archive_now()?;
    // a restore point names its own timeline unless one was asked for
    let on = match target {
        Target::RestorePoint(_) if timeline.is_none() => None,
        _ => Some(from_timeline),
    };
    let (space, plan, verification) = engine.inner_runtime().block_on(async {
        let plan = bindspace_pitr::plan_on(engine.repository().destinations(), target, on).await?;
        let (space, v) = bindspace_pitr::restore_verified(&plan).await?;
        Ok::<_, bindspace_pitr::Error>((space, plan, v))
    })?;
    engine.close()?;
    // 2. the old state moves aside, the restored one takes its place. Order matters
    // for a crash half way: the `timeline` file goes first (a directory without it
    // never extends a timeline blindly), the WAL next, then the new origin, then the
    // new checkpoint (an origin that does not match the checkpoint is refused loudly).
    let d = DataDir::create(dir)?;
    let kept = dir.join(format!("rewound-{}", clock.now_us()));
    std::fs::create_dir_all(&kept).map_err(io(format!("creating {}", kept.display())))?;
    for name in ["checkpoint.snap", "checkpoint.snap.origin", "timeline"] {
        let from = dir.join(name);
        if from.exists() {
            std::fs::copy(&from, kept.join(name)).map_err(io(format!(
                "copying {} to {}",
                from.display(),
                kept.display()
            )))?;
        }
    }
    let timeline_file = dir.join("timeline");
    match std::fs::remove_file(&timeline_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("removing {}", timeline_file.display()))(e)),
    }
    let wal = dir.join("wal");
    if wal.exists() {
        std::fs::rename(&wal, kept.join("wal")).map_err(io(format!(
            "moving {} to {}",
            wal.display(),
            kept.display()
        )))?;
    }
    Origin::of_restore(repository_id, &plan, &verification).write(&dir.join("checkpoint.snap"))?;
    d.write_checkpoint(&snapshot::encode(&space, clock.now_us()))?;
    // 3. the new timeline, recorded before anything of it is written
    let engine = open()?;
    let out = Rewound {
        from_timeline: plan.timeline,
        version: space.version(),
        timeline: engine.timeline(),
        kept,
    };
    engine.close()?;
    tracing::warn!(?out, "data directory rewound");
    Ok(out)
}
