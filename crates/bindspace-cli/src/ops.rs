//! The repository commands: init, backup, list, show, restore, explain, restore-point,
//! retention, compact, as-of, versions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{BackupKind, NewBackup, Repository, RetentionPolicy, retention};
use bindspace_core::{Addr, SystemClock, snapshot};
use bindspace_pitr::Target;
use serde_json::json;

/// Exit code: another backup holds the repository's lease.
pub const EXIT_BUSY: u8 = 3;
/// Exit code: the target cannot be restored from what the stores hold.
pub const EXIT_NOT_RESTORABLE: u8 = 4;

/// Where the repository lives.
#[derive(clap::Args, Debug, Clone)]
pub struct RepoArgs {
    /// Repository destination URL, primary first (repeatable): file:///dir, s3://bucket/prefix,
    /// redis://host:port, postgresql://user@host:port/db. Default: $BINDSPACE_REPO.
    #[arg(
        long = "repo",
        env = "BINDSPACE_REPO",
        value_delimiter = ',',
        required = true
    )]
    pub repo: Vec<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// What to restore to (exactly one).
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// The newest restorable state.
    #[arg(long)]
    pub latest: bool,
    /// Exactly this version.
    #[arg(long)]
    pub to_version: Option<u64>,
    /// The last state at or before this time: µs since the epoch, or seconds with an
    /// `s` suffix.
    #[arg(long, value_parser = parse_time)]
    pub to_time: Option<u64>,
    /// A named restore point.
    #[arg(long)]
    pub to_point: Option<String>,
}

fn parse_time(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.strip_suffix('s') {
        Some(n) => (n, 1_000_000),
        None => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("{s:?} is not µs since the epoch (or seconds with an s suffix)"))
}

impl TargetArgs {
    fn target(&self) -> Target {
        if let Some(v) = self.to_version {
            Target::Version(v)
        } else if let Some(t) = self.to_time {
            Target::Time(t)
        } else if let Some(p) = &self.to_point {
            Target::RestorePoint(p.clone())
        } else {
            Target::Latest
        }
    }
}

/// Backup kinds on the command line.
#[derive(clap::Args, Debug, Clone)]
#[group(multiple = false)]
pub struct KindArgs {
    /// A full snapshot (the default for a new repository).
    #[arg(long)]
    pub full: bool,
    /// The changes since the last backup.
    #[arg(long)]
    pub incremental: bool,
    /// The changes since the last full, composed from the incrementals.
    #[arg(long)]
    pub differential: bool,
}

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
}

/// Repository subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Op {
    /// Create an empty catalog on every destination.
    Init(RepoArgs),
    /// Back up an engine data directory (not open in another process).
    Backup {
        #[command(flatten)]
        repo: RepoArgs,
        /// The engine's data directory.
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        kind: KindArgs,
        /// Hold the lease this long after the backup (drills of writer exclusion).
        #[arg(long, default_value_t = 0, hide = true)]
        hold_lease_ms: u64,
    },
    /// List the backups in the catalog.
    List(RepoArgs),
    /// Show one backup.
    Show {
        #[command(flatten)]
        repo: RepoArgs,
        /// Its id (from `list`).
        id: String,
    },
    /// Restore to a version, time or restore point.
    Restore {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Write the restored space as a native snapshot file.
        #[arg(long, conflicts_with = "to")]
        out: Option<PathBuf>,
        /// Write it as a full backup into another repository (cross-backend).
        #[arg(long)]
        to: Option<String>,
    },
    /// Show how a restore would run: artifacts, stores, bytes.
    Explain {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Named restore points.
    #[command(subcommand)]
    RestorePoint(PointOp),
    /// Retention.
    #[command(subcommand)]
    Retention(RetentionOp),
    /// Fold the chain into a new full at the latest version.
    Compact(RepoArgs),
    /// Read one address as of a target, without a full restore.
    AsOf {
        #[command(flatten)]
        repo: RepoArgs,
        /// The address, `pp:ss` or a number.
        addr: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// An address's history from the WAL archive.
    Versions {
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
    },
}

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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

async fn repository(urls: &[String]) -> Result<Repository> {
    let stores = bindspace::stores::open_all(urls).await?;
    Ok(Repository::new(
        stores,
        Arc::new(SystemClock),
        format!("bindspace cli pid {}", std::process::id()),
    )?)
}

fn parse_addr(s: &str) -> Result<Addr> {
    if let Ok(n) = s.parse::<u16>() {
        return Ok(Addr(n));
    }
    s.parse::<Addr>()
        .map_err(|e| anyhow::anyhow!("address {s:?}: {e}"))
}

fn spinner(msg: &str) -> indicatif::ProgressBar {
    let p = indicatif::ProgressBar::new_spinner();
    p.set_message(msg.to_owned());
    p.enable_steady_tick(Duration::from_millis(120));
    p
}

/// Maps library errors to exit codes.
pub fn classify(e: &anyhow::Error) -> u8 {
    for c in e.chain() {
        if let Some(bindspace_catalog::Error::BackupInProgress { .. }) = c.downcast_ref() {
            return EXIT_BUSY;
        }
        if let Some(bindspace_pitr::Error::NotRestorable { .. }) = c.downcast_ref() {
            return EXIT_NOT_RESTORABLE;
        }
        if let Some(bindspace::Error::Store(bindspace_catalog::Error::BackupInProgress {
            ..
        })) = c.downcast_ref()
        {
            return EXIT_BUSY;
        }
        if let Some(bindspace::Error::Pitr(bindspace_pitr::Error::NotRestorable { .. })) =
            c.downcast_ref()
        {
            return EXIT_NOT_RESTORABLE;
        }
    }
    1
}

pub fn run(op: Op) -> Result<()> {
    let rt = runtime()?;
    match op {
        Op::Init(r) => {
            let repo = rt.block_on(repository(&r.repo))?;
            rt.block_on(repo.init())?;
            if r.json {
                println!("{}", json!({ "initialized": repo.names() }));
            } else {
                println!("initialized {}", repo.names().join(", "));
            }
        }
        Op::Backup {
            repo,
            data,
            kind,
            hold_lease_ms,
        } => {
            drop(rt); // the engine runs its own
            let cfg = BackupConfig {
                destinations: repo.repo.clone(),
                background_jobs: false,
                lease_hold_ms: hold_lease_ms,
                ..BackupConfig::load(None)?
            };
            let engine = Engine::open(&data, cfg)
                .with_context(|| format!("opening the engine data directory {}", data.display()))?;
            let k = if kind.incremental {
                BackupKind::Incremental
            } else if kind.differential {
                BackupKind::Differential
            } else {
                BackupKind::Full
            };
            let p = spinner("backing up");
            let started = Instant::now();
            let entry = engine.backup_now(k);
            p.finish_and_clear();
            let entry = entry?;
            engine.close()?;
            match entry {
                None => {
                    if repo.json {
                        println!("{}", json!({ "backup": null, "reason": "no changes" }));
                    } else {
                        println!("nothing changed since the last backup");
                    }
                }
                Some(e) => {
                    if repo.json {
                        println!("{}", serde_json::to_string(&e)?);
                    } else {
                        println!(
                            "{} backup {} of versions {}..={} ({} bytes) in {:.1?} to {}",
                            e.kind.name(),
                            e.id,
                            e.from_version,
                            e.to_version,
                            e.size,
                            started.elapsed(),
                            e.locations.join(", ")
                        );
                    }
                }
            }
        }
        Op::List(r) => {
            let repo = rt.block_on(repository(&r.repo))?;
            let m = rt.block_on(repo.manifest())?;
            if r.json {
                println!("{}", serde_json::to_string(&m.entries)?);
            } else {
                println!(
                    "{:<24} {:<12} {:>10} {:>10} {:>12} {:<9} parent",
                    "id", "kind", "from", "to", "bytes", "status"
                );
                for e in &m.entries {
                    println!(
                        "{:<24} {:<12} {:>10} {:>10} {:>12} {:<9} {}",
                        e.id,
                        e.kind.name(),
                        e.from_version,
                        e.to_version,
                        e.size,
                        format!("{:?}", e.status).to_lowercase(),
                        e.parent.as_deref().unwrap_or("-")
                    );
                }
                println!(
                    "{} backups, {} restore points",
                    m.entries.len(),
                    m.restore_points.len()
                );
            }
        }
        Op::Show { repo: r, id } => {
            let repo = rt.block_on(repository(&r.repo))?;
            let m = rt.block_on(repo.manifest())?;
            let Some(e) = m.entries.iter().find(|e| e.id == id) else {
                bail!("no backup {id:?} in the catalog (see `bindspace list`)");
            };
            if r.json {
                println!("{}", serde_json::to_string(e)?);
            } else {
                println!("{}", serde_json::to_string_pretty(e)?);
            }
        }
        Op::Restore {
            repo: r,
            target,
            out,
            to,
        } => {
            let stores = rt.block_on(bindspace::stores::open_all(&r.repo))?;
            let t = target.target();
            let p = spinner(&format!("restoring to {t}"));
            let started = Instant::now();
            let res = rt.block_on(bindspace_pitr::restore_to(&stores, &t));
            p.finish_and_clear();
            let (space, plan) = res?;
            let took = started.elapsed();
            let bytes = snapshot::encode(&space, 0);
            if let Some(path) = &out {
                crate::demo::write_durably(path, |w| std::io::Write::write_all(w, &bytes))?;
            }
            if let Some(url) = &to {
                let dst = rt.block_on(repository(std::slice::from_ref(url)))?;
                rt.block_on(dst.init())?;
                rt.block_on(dst.write_backup(NewBackup {
                    kind: BackupKind::Full,
                    artifact: bindspace_catalog::ArtifactId::Snapshot {
                        version: space.version(),
                    },
                    bytes: bytes.clone().into(),
                    parent: None,
                    schema: space.schema(),
                }))?;
            }
            if r.json {
                println!(
                    "{}",
                    json!({
                        "target": t.to_string(),
                        "version": space.version(),
                        "addresses": space.len(),
                        "digest": space.digest().to_string(),
                        "fetched_bytes": plan.estimated_bytes,
                        "took_ms": took.as_millis() as u64,
                        "out": out.as_ref().map(|p| p.display().to_string()),
                        "to": to,
                    })
                );
            } else {
                println!(
                    "restored {t} → version {} ({} addresses, digest {}) in {took:.1?}",
                    space.version(),
                    space.len(),
                    space.digest()
                );
                if let Some(p) = out {
                    println!("wrote {}", p.display());
                }
                if let Some(u) = to {
                    println!("wrote a full backup to {u}");
                }
            }
        }
        Op::Explain { repo: r, target } => {
            let stores = rt.block_on(bindspace::stores::open_all(&r.repo))?;
            let plan = rt.block_on(bindspace_pitr::plan(&stores, &target.target()))?;
            if r.json {
                let step = |s: &bindspace_pitr::Step| json!({"artifact": s.artifact.id.to_string(), "bytes": s.artifact.len, "stores": s.stores});
                println!(
                    "{}",
                    json!({
                        "target": plan.target.to_string(),
                        "version": plan.version,
                        "full": step(&plan.base),
                        "deltas": plan.deltas.iter().map(step).collect::<Vec<_>>(),
                        "wal": plan.wal.iter().map(step).collect::<Vec<_>>(),
                        "estimated_bytes": plan.estimated_bytes,
                        "unavailable": plan.unavailable,
                    })
                );
            } else {
                print!("{plan}");
            }
        }
        Op::RestorePoint(p) => restore_point(&rt, p)?,
        Op::Retention(RetentionOp::Apply {
            repo: r,
            policy,
            dry_run,
        }) => {
            let repo = rt.block_on(repository(&r.repo))?;
            let m = rt.block_on(repo.manifest())?;
            let pol = RetentionPolicy {
                keep_all_within_us: policy.keep_all_hours * 3_600_000_000,
                hourly: policy.hourly,
                daily: policy.daily,
                weekly: policy.weekly,
                monthly: policy.monthly,
                yearly: policy.yearly,
                max_count: policy.max_count,
                max_age_us: policy.max_age_days.map(|d| d * 86_400_000_000),
            };
            let now = bindspace_core::Clock::now_us(&SystemClock);
            let plan = retention::plan(&m, &pol, now);
            let deleted = if dry_run {
                0
            } else {
                rt.block_on(repo.with_lease(async |repo| repo.delete_backups(&plan.delete).await))?
            };
            if r.json {
                println!(
                    "{}",
                    json!({
                        "keep": plan.keep.keys().collect::<Vec<_>>(),
                        "delete": plan.delete,
                        "deleted": deleted,
                        "dry_run": dry_run,
                    })
                );
            } else {
                for (id, why) in &plan.keep {
                    println!("keep   {id:<24} {why:?}");
                }
                for id in &plan.delete {
                    println!("{} {id}", if dry_run { "would delete" } else { "delete" });
                }
                println!(
                    "{} kept, {} {}",
                    plan.keep.len(),
                    plan.delete.len(),
                    if dry_run {
                        "would go (dry run)"
                    } else {
                        "deleted"
                    }
                );
            }
        }
        Op::Compact(r) => {
            let repo = rt.block_on(repository(&r.repo))?;
            let p = spinner("compacting");
            let res = rt.block_on(async {
                let (space, plan) =
                    bindspace_pitr::restore_to(repo.destinations(), &Target::Latest).await?;
                let entry = repo
                    .write_backup(NewBackup {
                        kind: BackupKind::Full,
                        artifact: bindspace_catalog::ArtifactId::Snapshot {
                            version: space.version(),
                        },
                        bytes: snapshot::encode(&space, 0).into(),
                        parent: None,
                        schema: space.schema(),
                    })
                    .await?;
                anyhow::Ok((entry, plan.deltas.len()))
            });
            p.finish_and_clear();
            let (entry, folded) = res?;
            if r.json {
                println!(
                    "{}",
                    json!({ "full": entry.id, "version": entry.to_version, "folded_deltas": folded })
                );
            } else {
                println!(
                    "new full {} at version {} folds {folded} deltas",
                    entry.id, entry.to_version
                );
            }
        }
        Op::AsOf {
            repo: r,
            addr,
            target,
        } => {
            let a = parse_addr(&addr)?;
            let stores = rt.block_on(bindspace::stores::open_all(&r.repo))?;
            let v = rt.block_on(bindspace_pitr::as_of(&stores, a, &target.target()))?;
            if r.json {
                println!("{}", json!({ "addr": a.to_string(), "value": v }));
            } else {
                match v {
                    None => println!("{a}: empty"),
                    Some(w) => println!("{a}: {} words, first {:#018x}", w.len(), w[0]),
                }
            }
        }
        Op::Versions {
            repo: r,
            addr,
            from,
            to,
        } => {
            let a = parse_addr(&addr)?;
            let stores = rt.block_on(bindspace::stores::open_all(&r.repo))?;
            let h = rt.block_on(bindspace_pitr::versions(&stores, a, from, to))?;
            if r.json {
                let rows: Vec<_> = h
                    .iter()
                    .map(|(v, w)| json!({ "version": v, "value": w }))
                    .collect();
                println!("{}", json!({ "addr": a.to_string(), "versions": rows }));
            } else {
                for (v, w) in &h {
                    match w {
                        None => println!("{v:>10}  deleted"),
                        Some(w) => println!("{v:>10}  written, first word {:#018x}", w[0]),
                    }
                }
                println!("{} versions of {a}", h.len());
            }
        }
    }
    Ok(())
}

fn restore_point(rt: &tokio::runtime::Runtime, p: PointOp) -> Result<()> {
    match p {
        PointOp::Create {
            repo: r,
            name,
            version,
            guaranteed,
        } => {
            let repo = rt.block_on(repository(&r.repo))?;
            let v = match version {
                Some(v) => v,
                None => {
                    rt.block_on(bindspace_pitr::plan(repo.destinations(), &Target::Latest))?
                        .version
                }
            };
            let rp = rt.block_on(repo.create_restore_point(&name, v, guaranteed))?;
            if r.json {
                println!("{}", serde_json::to_string(&rp)?);
            } else {
                println!(
                    "restore point {name:?} at version {v}{}",
                    if guaranteed { " (guaranteed)" } else { "" }
                );
            }
        }
        PointOp::List(r) => {
            let repo = rt.block_on(repository(&r.repo))?;
            let m = rt.block_on(repo.manifest())?;
            if r.json {
                println!("{}", serde_json::to_string(&m.restore_points)?);
            } else {
                for p in &m.restore_points {
                    println!(
                        "{:<24} version {:>10}{}",
                        p.name,
                        p.version,
                        if p.guaranteed { "  guaranteed" } else { "" }
                    );
                }
            }
        }
        PointOp::Drop { repo: r, name } => {
            let repo = rt.block_on(repository(&r.repo))?;
            if !rt.block_on(repo.drop_restore_point(&name))? {
                bail!("no restore point {name:?}");
            }
            if r.json {
                println!("{}", json!({ "dropped": name }));
            } else {
                println!("dropped restore point {name:?}");
            }
        }
    }
    Ok(())
}
