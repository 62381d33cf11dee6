//! `bindspace dr drill|report`: restore drills that measure RTO and RPO, and their
//! history.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bindspace::{BackupConfig, Engine};
use bindspace_core::{Clock, ErrorKind, SystemClock};
use bindspace_dr::{DrillOptions, DrillTarget};

use crate::args::{RepoArgs, runtime, spinner};
use crate::exit::DrillFailed;
use crate::output::emit_serialized;

/// `dr` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum DrOp {
    /// Restore from each store alone and from all together; measure RTO and RPO; exit
    /// 7 when a target is missed or a store cannot restore alone.
    Drill(DrillArgs),
    /// The drills the catalog keeps, with trends.
    Report(RepoArgs),
}

/// `bindspace dr drill`.
#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// An engine data directory: the drill opens the engine and writes a sentinel
    /// restore point first (the canary). A directory a running engine holds is
    /// refused: drill through that engine instead (`Engine::drill`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Drill only this store alone (repeatable; default every store, and all together).
    #[arg(long = "from")]
    from: Vec<String>,
    /// latest, random, or point:NAME.
    #[arg(long, default_value = "latest")]
    target: String,
    /// The slowest acceptable restore from one source, seconds.
    #[arg(long, default_value_t = bindspace_dr::DEFAULT_RTO_TARGET.as_secs())]
    rto_target_secs: u64,
    /// The oldest acceptable newest restorable state, seconds.
    #[arg(long, default_value_t = bindspace_dr::DEFAULT_RPO_TARGET.as_secs())]
    rpo_target_secs: u64,
    /// A source that has not restored after this many seconds is unavailable.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

pub fn run(op: DrOp) -> Result<()> {
    match op {
        DrOp::Drill(a) => drill(&a),
        DrOp::Report(r) => report(&r),
    }
}

fn drill(a: &DrillArgs) -> Result<()> {
    let seed = SystemClock.now_us();
    let Some(target) = DrillTarget::parse(&a.target, seed) else {
        bail!(
            "--target {:?}: expected latest, random or point:NAME",
            a.target
        );
    };
    let mut opts = DrillOptions {
        target,
        rto_target: Duration::from_secs(a.rto_target_secs),
        rpo_target: Duration::from_secs(a.rpo_target_secs),
        source_timeout: Duration::from_secs(a.timeout_secs),
        only: Vec::new(),
    };
    let p = spinner("drilling restores");
    let report = match &a.data {
        Some(dir) => {
            let cfg = BackupConfig {
                destinations: a.repo.urls(),
                space: a.repo.space.clone(),
                background_jobs: false,
                ..BackupConfig::load(None)?
            };
            let engine = match Engine::open(dir, cfg) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::Busy => {
                    p.finish_and_clear();
                    return Err(e).with_context(|| {
                        format!(
                            "{} is held by a running engine: drill through it (its HTTP API's drill endpoint, or Engine::drill in the process)",
                            dir.display()
                        )
                    });
                }
                Err(e) => return Err(e).context(format!("opening {}", dir.display())),
            };
            opts.only = resolve_from(&a.from, &engine.repository().names())?;
            let r = engine.drill(&opts);
            engine.close()?;
            r?
        }
        None => {
            let rt = runtime()?;
            let repo = a.repo.repository(&rt)?;
            opts.only = resolve_from(&a.from, &repo.names())?;
            rt.block_on(bindspace_dr::drill(&repo, &SystemClock, &opts, None))?
        }
    };
    p.finish_and_clear();
    emit_serialized(a.repo.json, &report, || report.to_string())?;
    if report.passed() {
        Ok(())
    } else {
        Err(DrillFailed(report.missed.len()).into())
    }
}

/// `--from` values matched against the store names (a URL as given, or its redacted
/// form as names show it).
fn resolve_from(from: &[String], names: &[String]) -> Result<Vec<String>> {
    from.iter()
        .map(|f| {
            let redacted = bindspace_catalog::redact_url(f);
            names
                .iter()
                .find(|n| *n == f || **n == redacted)
                .cloned()
                .with_context(|| {
                    format!("--from {f:?} is none of the stores: {}", names.join(", "))
                })
        })
        .collect()
}

fn report(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let repo = r.repository(&rt)?;
    let m = crate::args::catalog(&rt, &repo)?;
    let drills = bindspace_dr::history(&m);
    emit_serialized(r.json, &drills, || {
        use std::fmt::Write as _;
        let now = crate::output::now_us();
        let rows: Vec<Vec<String>> = drills
            .iter()
            .map(|d| {
                let rto = d.runs.iter().map(|x| x.rto_ms).max().unwrap_or(0);
                let rpo = d.runs.iter().filter_map(|x| x.rpo_ms).max();
                vec![
                    bindspace_http::time::rfc3339(d.started_us),
                    bindspace_http::time::ago(d.started_us, now),
                    if d.passed() { "passed" } else { "FAILED" }.to_owned(),
                    format!("{rto} ms"),
                    rpo.map_or("-".into(), |v| format!("{v} ms")),
                    d.target.to_string(),
                ]
            })
            .collect();
        let mut s = crate::output::table(
            &[
                "started",
                "age",
                "result",
                "worst RTO",
                "worst RPO",
                "target",
            ],
            &rows,
            &[3, 4],
        );
        // trends: the newest half against the older half
        let worst = |d: &bindspace_dr::DrillReport| d.runs.iter().map(|x| x.rto_ms).max();
        let rtos: Vec<u64> = drills.iter().filter_map(worst).collect();
        if rtos.len() >= 2 {
            let (old, new) = rtos.split_at(rtos.len() / 2);
            let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
            let _ = writeln!(
                s,
                "trend: worst RTO {:.0} ms (older half) -> {:.0} ms (newer half); {} of {} passed",
                mean(old),
                mean(new),
                drills.iter().filter(|d| d.passed()).count(),
                drills.len()
            );
        } else if drills.is_empty() {
            s.push_str("no drills recorded yet: run `bindspace dr drill`\n");
        }
        s
    })
}
