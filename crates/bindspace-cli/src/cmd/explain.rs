//! `bindspace explain`: how a restore would run (artifacts, stores, bytes), without
//! running it.

use anyhow::Result;
use serde_json::json;

use crate::args::{RepoArgs, TargetArgs, runtime};
use crate::output::emit;

/// `bindspace explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    target: TargetArgs,
}

pub fn run(a: &Args) -> Result<()> {
    let rt = runtime()?;
    let sources = a.repo.sources(&rt)?;
    let plan = rt.block_on(bindspace_pitr::plan(&sources, &a.target.target()))?;
    let step = |s: &bindspace_pitr::Step| json!({"artifact": s.artifact.id.to_string(), "bytes": s.artifact.len, "stores": s.stores});
    emit(
        a.repo.json,
        json!({
            "target": plan.target.to_string(),
            "version": plan.version,
            "full": step(&plan.base),
            "deltas": plan.deltas.iter().map(step).collect::<Vec<_>>(),
            "wal": plan.wal.iter().map(step).collect::<Vec<_>>(),
            "estimated_bytes": plan.estimated_bytes,
            "unavailable": plan.unavailable,
        }),
        || plan.to_string(),
    );
    Ok(())
}
