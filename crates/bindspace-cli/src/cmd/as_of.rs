//! `bindspace as-of ADDR`: one address as of a target, without a full restore.

use anyhow::Result;
use serde_json::json;

use crate::args::{RepoArgs, TargetArgs, TimelineArg, parse_addr, runtime};
use crate::output::emit;

/// `bindspace as-of`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The address, `pp:ss` or a number.
    addr: String,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    timeline: TimelineArg,
}

pub fn run(a: &Args) -> Result<()> {
    let addr = parse_addr(&a.addr)?;
    let rt = runtime()?;
    let sources = a.repo.sources(&rt)?;
    let v = rt.block_on(bindspace_pitr::as_of(
        &sources,
        addr,
        &a.target.target(),
        a.timeline.timeline,
    ))?;
    emit(
        a.repo.json,
        json!({ "addr": addr.to_string(), "value": v }),
        || match &v {
            None => format!("{addr}: empty"),
            Some(w) => format!("{addr}: {} words, first {:#018x}", w.len(), w[0]),
        },
    );
    Ok(())
}
