//! `bindspace explain`: how a restore would run (artifacts, stores, bytes), without
//! running it.

use anyhow::Result;
use serde_json::json;

use crate::args::{RepoArgs, TargetArgs, TimelineArg, runtime};
use crate::output::emit;

/// `bindspace explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    timeline: TimelineArg,
}

pub fn run(a: &Args) -> Result<()> {
    let rt = runtime()?;
    let sources = a.repo.sources(&rt)?;
    let plan = rt.block_on(bindspace_pitr::plan_on(
        &sources,
        &a.target.target(),
        a.timeline.timeline,
    ))?;
    let step = |s: &bindspace_pitr::Step| json!({"artifact": s.artifact.id.to_string(), "timeline": s.artifact.id.timeline(), "bytes": s.artifact.len, "stores": s.stores, "until": (s.until != u64::MAX).then_some(s.until)});
    emit(
        a.repo.json,
        json!({
            "target": plan.target.to_string(),
            "timeline": plan.timeline,
            "history": plan.history.stretches.iter().map(|s| json!({"timeline": s.timeline, "from": s.lo, "to": (s.hi != u64::MAX).then_some(s.hi)})).collect::<Vec<_>>(),
            "version": plan.version,
            "full": step(&plan.base),
            "deltas": plan.deltas.iter().map(step).collect::<Vec<_>>(),
            "wal": plan.wal.iter().map(step).collect::<Vec<_>>(),
            "estimated_bytes": plan.estimated_bytes,
            "unavailable": plan.unavailable,
            "recorded_roots": plan.recorded.iter().map(|(v, rs)| json!({"version": v, "roots": rs.iter().map(|r| json!({"root": r.root, "by": r.by})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            // a time target's version is known only when the replay stops
            "result_root_recorded": plan.time_limit.is_none().then(|| plan.recorded.contains_key(&plan.version)),
        }),
        || plan.to_string(),
    );
    Ok(())
}
