//! `bindspace restore-point create|list|drop`: named versions in the catalog.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use bindspace_pitr::Target;
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::{emit, emit_serialized};

/// `restore-point` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PointOp {
    /// Name a version (default: the latest restorable).
    Create {
        #[command(flatten)]
        repo: RepoArgs,
        /// Its name.
        name: String,
        /// The version (default: latest).
        #[arg(long)]
        version: Option<u64>,
        /// Keep what restoring it needs safe from retention.
        #[arg(long)]
        guaranteed: bool,
        #[command(flatten)]
        timeline: crate::args::TimelineArg,
    },
    /// List restore points.
    List(RepoArgs),
    /// Remove one.
    Drop {
        #[command(flatten)]
        repo: RepoArgs,
        /// Its name.
        name: String,
    },
}

pub fn run(p: PointOp) -> Result<()> {
    let rt = runtime()?;
    match p {
        PointOp::Create {
            repo: r,
            name,
            version,
            guaranteed,
            timeline,
        } => {
            let repo = r.repository(&rt)?;
            // the version must exist on the timeline the point names: planning it checks
            let target = version.map_or(Target::Latest, Target::Version);
            let plan = rt.block_on(bindspace_pitr::plan_on(
                repo.destinations(),
                &target,
                timeline.timeline,
            ))?;
            let v = plan.version;
            let rp = rt.block_on(repo.create_restore_point_on(
                &name,
                plan.timeline,
                v,
                guaranteed,
                None,
            ))?;
            emit_serialized(r.json, &rp, || {
                format!(
                    "restore point {name:?} at version {v} of timeline {}{}",
                    plan.timeline,
                    if guaranteed { " (guaranteed)" } else { "" }
                )
            })
        }
        PointOp::List(r) => {
            let repo = r.repository(&rt)?;
            let m = rt.block_on(repo.manifest())?;
            emit_serialized(r.json, &m.restore_points, || {
                let mut s = String::new();
                for p in &m.restore_points {
                    let _ = writeln!(
                        s,
                        "{:<24} version {:>10}{}",
                        p.name,
                        p.version,
                        if p.guaranteed { "  guaranteed" } else { "" }
                    );
                }
                s
            })
        }
        PointOp::Drop { repo: r, name } => {
            let repo = r.repository(&rt)?;
            if !rt.block_on(repo.drop_restore_point(&name))? {
                bail!("no restore point {name:?}");
            }
            emit(r.json, json!({ "dropped": name }), || {
                format!("dropped restore point {name:?}")
            });
            Ok(())
        }
    }
}
