//! `bindspace replicate --from URL --to URL [--follow] [--prune] [--must-exist]`: copy a
//! repository into another store of any kind, incrementally and checked on both ends;
//! `--follow` keeps copying, printing the lag (the time since the target last held
//! everything the source did) after each run.

use std::time::Duration;

use anyhow::Result;
use bindspace_core::{Clock, SystemClock};
use bindspace_dr::{Follower, Lag, ReplicateOptions};

use crate::args::runtime;
use crate::output::emit_serialized;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository to copy (one store URL).
    #[arg(long)]
    pub from: String,
    /// Where to copy it (one store URL, of any kind).
    #[arg(long)]
    pub to: String,
    /// Keep copying: a run every `--interval-secs`, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between runs with `--follow` (fractions allowed, at least 0.01).
    #[arg(long, default_value_t = 5.0)]
    pub interval_secs: f64,
    /// Also delete from the target what the source no longer has.
    #[arg(long)]
    pub prune: bool,
    /// Refuse when the target holds no repository yet (a mistyped URL must not start
    /// a new one).
    #[arg(long)]
    pub must_exist: bool,
    /// The space to copy (`default`: the repository's root).
    #[arg(long, env = "BINDSPACE_SPACE", default_value = "default")]
    pub space: String,
    /// The space it is copied into at `--to` (default: the same name).
    #[arg(long)]
    pub to_space: Option<String>,
    /// Each store request fails as a timeout after this many seconds.
    #[arg(long, env = "BINDSPACE_STORE_TIMEOUT_SECS", default_value_t = 30)]
    pub store_timeout_secs: u64,
    /// Machine-readable output (one JSON report per run).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &Args) -> Result<()> {
    let rt = runtime()?;
    let timeout = Duration::from_secs(a.store_timeout_secs.max(1));
    let space = bindspace_catalog::SpaceName::new(&a.space)?;
    let to_space = match &a.to_space {
        Some(s) => bindspace_catalog::SpaceName::new(s)?,
        None => space.clone(),
    };
    let from = rt.block_on(bindspace::stores::open_in(&a.from, &space, timeout))?;
    let to = rt.block_on(bindspace::stores::open_in(&a.to, &to_space, timeout))?;
    let opts = ReplicateOptions {
        prune: a.prune,
        must_exist: a.must_exist,
    };
    let clock = SystemClock;
    let mut lag = Lag::default();
    // its runs after the first list only what is new
    let mut follower = Follower::new(from, to, opts);
    loop {
        let res = rt.block_on(follower.run(&clock, &mut || true));
        let now = clock.now_us();
        match res {
            Ok(report) => {
                lag.record(&report);
                #[derive(serde::Serialize)]
                struct Run<'a> {
                    #[serde(flatten)]
                    report: &'a bindspace_dr::ReplicationReport,
                    lag_ms: Option<u64>,
                }
                let out = Run {
                    report: &report,
                    lag_ms: lag.ms(now),
                };
                emit_serialized(a.json, &out, || {
                    format!("{report}\nlag: {}", describe_lag(lag.ms(now)))
                })?;
                if !a.follow {
                    anyhow::ensure!(
                        report.caught_up,
                        "{} artifacts were not copied (run again)",
                        report.failed.len()
                    );
                    return Ok(());
                }
            }
            // following: a failed run (a store down) is reported and retried, the lag
            // growing meanwhile; a refusal (no repository, another one) ends it
            Err(e) if a.follow && e.kind() != bindspace_core::ErrorKind::Invalid => {
                eprintln!(
                    "bindspace: replication run failed: {e}; lag {}",
                    describe_lag(lag.ms(now))
                );
            }
            Err(e) => return Err(e.into()),
        }
        // an operator's command, ended by an interrupt: nothing to wake it earlier
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_secs_f64(
            a.interval_secs.clamp(0.01, 86_400.0),
        ));
    }
}

fn describe_lag(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{ms} ms"),
        None => "unknown (not caught up yet)".into(),
    }
}
