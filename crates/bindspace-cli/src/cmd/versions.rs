//! `bindspace versions ADDR`: an address's history from the WAL archive.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::json;

use crate::args::{RepoArgs, TimelineArg, parse_addr, runtime};
use crate::output::emit;

/// `bindspace versions`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The address, `pp:ss` or a number.
    addr: String,
    /// From this version.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Up to this version.
    #[arg(long, default_value_t = u64::MAX)]
    to: u64,
    #[command(flatten)]
    timeline: TimelineArg,
}

pub fn run(a: &Args) -> Result<()> {
    let addr = parse_addr(&a.addr)?;
    let rt = runtime()?;
    let sources = a.repo.sources(&rt)?;
    let h = rt.block_on(bindspace_pitr::versions(
        &sources,
        addr,
        a.from,
        a.to,
        a.timeline.timeline,
    ))?;
    let rows: Vec<_> = h
        .iter()
        .map(|v| json!({ "version": v.version, "value": v.value }))
        .collect();
    emit(
        a.repo.json,
        json!({ "addr": addr.to_string(), "versions": rows }),
        || {
            let mut s = String::new();
            for v in &h {
                let _ = match &v.value {
                    None => writeln!(s, "{:>10}  deleted", v.version),
                    Some(w) => writeln!(s, "{:>10}  written, first word {:#018x}", v.version, w[0]),
                };
            }
            let _ = write!(s, "{} versions of {addr}", h.len());
            s
        },
    );
    Ok(())
}
