//! `bindspace retention apply`: delete what a policy does not keep (never what a kept
//! backup or a guaranteed restore point needs).

use std::fmt::Write as _;

use anyhow::Result;
use bindspace_catalog::{RetentionPolicy, retention};
use bindspace_core::SystemClock;
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::emit;

/// Retention policy flags.
#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Keep everything newer than this many hours.
    #[arg(long, default_value_t = 24)]
    pub keep_all_hours: u64,
    /// Hourly buckets kept.
    #[arg(long, default_value_t = 24)]
    pub hourly: u32,
    /// Daily buckets kept.
    #[arg(long, default_value_t = 7)]
    pub daily: u32,
    /// Weekly buckets kept.
    #[arg(long, default_value_t = 4)]
    pub weekly: u32,
    /// Monthly buckets kept.
    #[arg(long, default_value_t = 12)]
    pub monthly: u32,
    /// Yearly buckets kept.
    #[arg(long, default_value_t = 3)]
    pub yearly: u32,
    /// At most this many backups selected.
    #[arg(long)]
    pub max_count: Option<usize>,
    /// Nothing older than this many days selected.
    #[arg(long)]
    pub max_age_days: Option<u64>,
    /// Expire timelines nothing was backed up on for this many days (never the most
    /// recently active one, nor one with a guaranteed restore point): restores and
    /// backups on them are refused afterwards, naming when and why. Off by default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub expire_abandoned_days: Option<u64>,
}

impl PolicyArgs {
    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_all_within_us: self.keep_all_hours * 3_600_000_000,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            max_count: self.max_count,
            max_age_us: self.max_age_days.map(|d| d * 86_400_000_000),
            expire_abandoned_after_us: self
                .expire_abandoned_days
                .map(|d| d.saturating_mul(86_400_000_000)),
        }
    }
}

/// `retention` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum RetentionOp {
    /// Apply a policy: delete what it does not keep (never what a kept backup or a
    /// guaranteed restore point needs).
    Apply {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Show what would go, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Now, from the system clock; `BINDSPACE_NOW_US` (µs since the epoch) stands in for
/// it, to rehearse a policy as of another day (and in tests).
fn now_us() -> Result<u64> {
    match std::env::var("BINDSPACE_NOW_US") {
        Err(_) => Ok(bindspace_core::Clock::now_us(&SystemClock)),
        Ok(v) => {
            let us = v.parse().map_err(|_| {
                anyhow::anyhow!("BINDSPACE_NOW_US={v:?}: µs since the epoch, or unset")
            })?;
            eprintln!(
                "warning: BINDSPACE_NOW_US is set: retention runs as of {us} µs since the epoch, not now"
            );
            Ok(us)
        }
    }
}

pub fn run(op: RetentionOp) -> Result<()> {
    let RetentionOp::Apply {
        repo: r,
        policy,
        dry_run,
    } = op;
    let rt = runtime()?;
    let repo = r.repository(&rt)?;
    let now = now_us()?;
    // a dry run plans on the catalog as it is; a real run plans again inside each
    // catalog's commit, under the lease
    let (plan, deleted) = if dry_run {
        let m = crate::args::catalog(&rt, &repo)?;
        let evidence = retention::Evidence {
            wal_activity_us: rt.block_on(repo.wal_activity())?,
            expire: None,
            timelines: Vec::new(),
        };
        (
            retention::plan_with(&m, &policy.policy(), now, &evidence),
            0,
        )
    } else {
        rt.block_on(repo.apply_retention(&policy.policy(), now))?
    };
    let expire: Vec<_> = plan
        .expire
        .iter()
        .map(|e| json!({"timeline": e.id, "reason": e.reason}))
        .collect();
    emit(
        r.json,
        json!({
            "keep": plan.keep.keys().collect::<Vec<_>>(),
            "delete": plan.delete,
            "deleted": deleted,
            "expire": expire,
            "dry_run": dry_run,
        }),
        || {
            let mut s = String::new();
            for (id, why) in &plan.keep {
                let why: Vec<String> = why.iter().map(ToString::to_string).collect();
                let _ = writeln!(s, "keep   {id:<24} {}", why.join(", "));
            }
            for id in &plan.delete {
                let _ = writeln!(
                    s,
                    "{} {id}",
                    if dry_run { "would delete" } else { "delete" }
                );
            }
            for e in &plan.expire {
                let _ = writeln!(
                    s,
                    "{} timeline {}: {}",
                    if dry_run { "would expire" } else { "expire" },
                    e.id,
                    e.reason
                );
            }
            let _ = write!(
                s,
                "{} kept, {} {}",
                plan.keep.len(),
                plan.delete.len(),
                if dry_run {
                    "would go (dry run)"
                } else {
                    "deleted"
                }
            );
            s
        },
    );
    Ok(())
}
