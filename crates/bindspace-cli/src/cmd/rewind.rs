//! `bindspace rewind --data DIR --to-…`: the bad-deploy runbook in one step. The data
//! directory (its engine stopped) goes back to a version, time or restore point of its
//! history and continues from there on a new timeline; the old WAL and checkpoint are
//! archived, then kept in `DIR/rewound-<time>/`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use bindspace::BackupConfig;
use bindspace_core::SystemClock;
use serde_json::json;

use crate::args::{RepoArgs, TargetArgs, TimelineArg, spinner};
use crate::output::emit;

/// `bindspace rewind`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The engine's data directory (no engine may have it open).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    /// The history to rewind: default the data directory's own.
    #[command(flatten)]
    timeline: TimelineArg,
}

pub fn run(a: &Args) -> Result<()> {
    let cfg = BackupConfig {
        destinations: a.repo.urls(),
        space: a.repo.space.clone(),
        ..BackupConfig::load(None)?
    };
    let t = a.target.target();
    let p = spinner(&format!("rewinding {} to {t}", a.data.display()));
    let res = bindspace::rewind(&a.data, cfg, Arc::new(SystemClock), &t, a.timeline.timeline);
    p.finish_and_clear();
    let r = res.with_context(|| format!("rewinding {}", a.data.display()))?;
    emit(
        a.repo.json,
        json!({
            "data": a.data.display().to_string(),
            "target": t.to_string(),
            "from_timeline": r.from_timeline,
            "version": r.version,
            "timeline": r.timeline,
            "kept": r.kept.display().to_string(),
        }),
        || {
            format!(
                "rewound {} to version {} of timeline {}; it now writes timeline {} (branched there)\nthe old WAL and checkpoint are in {}",
                a.data.display(),
                r.version,
                r.from_timeline,
                r.timeline,
                r.kept.display()
            )
        },
    );
    Ok(())
}
