//! `bindspace verify`: prove what the repository holds will restore (checksum,
//! standard or deep level), optionally repairing damaged copies from another store.

use anyhow::Result;

use crate::args::{RepoArgs, runtime};
use crate::exit::VerifyOutcome;
use crate::output::emit_serialized;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// checksum: read back and compare with the catalog; standard: also decode and
    /// check chains, WAL holes, catalogs and schemas; deep: also restore and compare
    /// with recorded state roots.
    #[arg(long, default_value = "standard", value_parser = ["checksum", "standard", "deep"])]
    pub level: String,
    /// Stop reading new artifacts after this many seconds (least recently verified
    /// are read first, so repeated runs cover everything).
    #[arg(long)]
    pub max_duration_secs: Option<u64>,
    /// Put back copies missing or damaged in one store from another that holds them
    /// intact (checked on both ends).
    #[arg(long)]
    pub repair: bool,
    /// Re-read an artifact verified at this level after this many days.
    #[arg(long, default_value_t = 30)]
    pub recheck_days: u64,
    /// Deep level: random points in time restored besides restore points and backups.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
}

pub fn run(a: &Args) -> Result<()> {
    let rt = runtime()?;
    let repo = a.repo.repository(&rt)?;
    let opts = bindspace_dr::VerifyOptions {
        level: bindspace_dr::VerifyLevel::parse(&a.level).expect("clap allows only known levels"),
        max_duration: a.max_duration_secs.map(std::time::Duration::from_secs),
        repair: a.repair,
        recheck: std::time::Duration::from_secs(a.recheck_days.saturating_mul(86_400)),
        deep_samples: a.samples,
        // a different sample each run; the report names the versions it restored
        seed: bindspace_core::Clock::now_us(&bindspace_core::SystemClock),
    };
    let report = rt.block_on(bindspace_dr::verify(
        &repo,
        &bindspace_core::SystemClock,
        &opts,
    ))?;
    emit_serialized(a.repo.json, &report, || report.to_string())?;
    match report.outcome() {
        bindspace_dr::Outcome::Clean => Ok(()),
        o => Err(VerifyOutcome(o).into()),
    }
}
