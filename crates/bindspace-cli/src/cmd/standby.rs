//! `bindspace standby run|promote`: a warm standby that follows the repository's
//! archive (`run`: restore once, then apply what lands, printing the version and lag),
//! and its promotion into a writing engine on a new timeline (`promote`: catch up,
//! then open a data directory that branches where the standby stood).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bindspace::{BackupConfig, Engine, Standby};
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::emit;

/// `standby` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum StandbyOp {
    /// Restore the newest state, then keep applying what the repository archives
    /// (one line per catch-up: version and lag), until interrupted.
    Run(RunArgs),
    /// Catch up once, then start a writing engine in DATA on a new timeline that
    /// branches there (the old primary keeps its own history).
    Promote(PromoteArgs),
}

/// `bindspace standby run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Seconds between catch-ups (fractions allowed, at least 0.01).
    #[arg(long, default_value_t = 1.0)]
    interval_secs: f64,
    /// Catch up once and stop (a check, or a cron job).
    #[arg(long)]
    once: bool,
    /// The history to follow (default the newest live one: with several, name the
    /// primary's).
    #[arg(long)]
    timeline: Option<u32>,
}

/// `bindspace standby promote`.
#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The new engine's data directory (absent or empty).
    #[arg(long)]
    data: PathBuf,
    /// The history to take over (default the newest live one).
    #[arg(long)]
    timeline: Option<u32>,
}

pub fn run(op: StandbyOp) -> Result<()> {
    match op {
        StandbyOp::Run(a) => follow(&a),
        StandbyOp::Promote(a) => promote(&a),
    }
}

fn open(repo: &RepoArgs, timeline: Option<u32>) -> Result<Standby> {
    let rt = runtime()?;
    let stores = repo.sources(&rt)?.stores().to_vec();
    Ok(Standby::open(stores, timeline)?)
}

fn follow(a: &RunArgs) -> Result<()> {
    let mut standby = open(&a.repo, a.timeline)?;
    loop {
        let res = standby.catch_up();
        let lag = standby.lag_ms();
        match res {
            Ok(adv) => emit(
                a.repo.json,
                json!({
                    "version": standby.version(),
                    "timeline": standby.timeline(),
                    "applied_from": adv.from,
                    "segments": adv.segments,
                    "lag_ms": lag,
                    "complete": adv.complete,
                }),
                || {
                    format!(
                        "standby at version {} of timeline {} (+{} versions from {} segments); lag {} ms",
                        standby.version(),
                        standby.timeline(),
                        adv.to - adv.from,
                        adv.segments,
                        lag.unwrap_or(0)
                    )
                },
            ),
            Err(e) if !a.once => eprintln!(
                "bindspace: standby catch-up failed: {e}; lag {} ms",
                lag.unwrap_or(0)
            ),
            Err(e) => return Err(e.into()),
        }
        if a.once {
            return Ok(());
        }
        // an operator's command, ended by an interrupt: nothing to wake it earlier
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_secs_f64(
            a.interval_secs.clamp(0.01, 86_400.0),
        ));
    }
}

fn promote(a: &PromoteArgs) -> Result<()> {
    let standby = open(&a.repo, a.timeline)?;
    let from = standby.timeline();
    let cfg = BackupConfig {
        destinations: a.repo.urls(),
        space: a.repo.space.clone(),
        background_jobs: false,
        ..BackupConfig::load(None)?
    };
    let engine = standby.promote(Engine::builder(&a.data).config(cfg))?;
    let (version, timeline) = (engine.version(), engine.timeline());
    engine.close()?;
    emit(
        a.repo.json,
        json!({"data": a.data, "version": version, "timeline": timeline, "branched_from": from}),
        || {
            format!(
                "promoted: {} starts timeline {timeline} at version {version} (branched from timeline {from}); open an engine there to write",
                a.data.display()
            )
        },
    );
    Ok(())
}
