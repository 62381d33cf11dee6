//! `bindspace restore-point create|list|drop`: named versions in the catalog.

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
            // restoring it proves it restorable before the point becomes durable; its
            // root is recorded only when the restore verified the state against a
            // recorded root (a state reached by WAL replay past the last one is not
            // proven, so a root taken from it would certify whatever the WAL held)
            let (space, ver) = rt.block_on(bindspace_pitr::restore_verified(&plan))?;
            let v = space.version();
            let rp = rt.block_on(repo.create_restore_point_on(
                &name,
                plan.timeline,
                v,
                guaranteed,
                ver.is_verified().then(|| ver.root.to_string()),
            ))?;
            emit_serialized(r.json, &rp, || {
                format!(
                    "restore point {name:?} at version {v} of timeline {}{}, root {}",
                    plan.timeline,
                    if guaranteed { " (guaranteed)" } else { "" },
                    rp.root.as_deref().unwrap_or(
                        "not recorded (the version lies between recorded points: the engine's own restore points record one)"
                    )
                ) + if version.is_none() {
                    "\n(no --version: the newest restorable version, which is the last one archived; writes since are not in it)"
                } else {
                    ""
                }
            })
        }
        PointOp::List(r) => {
            let repo = r.repository(&rt)?;
            let m = crate::args::catalog(&rt, &repo)?;
            emit_serialized(r.json, &m.restore_points, || {
                let now = crate::output::now_us();
                let rows: Vec<Vec<String>> = m
                    .restore_points
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.timeline.to_string(),
                            p.version.to_string(),
                            bindspace_http::time::rfc3339(p.created_us),
                            bindspace_http::time::ago(p.created_us, now),
                            if p.guaranteed { "yes" } else { "no" }.to_owned(),
                            p.root
                                .as_deref()
                                .map_or("-", |r| r.get(..16).unwrap_or(r))
                                .to_owned(),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    return "no restore points: `bindspace restore-point create NAME` makes one"
                        .to_owned();
                }
                crate::output::table(
                    &[
                        "name",
                        "timeline",
                        "version",
                        "created",
                        "age",
                        "guaranteed",
                        "root",
                    ],
                    &rows,
                    &[1, 2],
                )
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
