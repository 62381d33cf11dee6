//! `bindspace backup`: one backup of an engine data directory that no engine has open.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bindspace::{BackupConfig, Engine};
use bindspace_catalog::BackupKind;
use serde_json::json;

use crate::args::{RepoArgs, spinner};
use crate::output::{emit, emit_serialized};

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

/// `bindspace backup`.
#[derive(clap::Args, Debug)]
pub struct Args {
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
}

pub fn run(a: Args) -> Result<()> {
    // the engine runs its own runtime
    let cfg = BackupConfig {
        destinations: a.repo.urls(),
        space: a.repo.space.clone(),
        background_jobs: false,
        lease_hold_ms: a.hold_lease_ms,
        ..BackupConfig::load(None)?
    };
    let engine = Engine::open(&a.data, cfg)
        .with_context(|| format!("opening the engine data directory {}", a.data.display()))?;
    let k = if a.kind.incremental {
        BackupKind::Incremental
    } else if a.kind.differential {
        BackupKind::Differential
    } else {
        BackupKind::Full
    };
    let p = spinner("backing up");
    #[allow(clippy::disallowed_methods)] // the operator sees how long it took
    let started = Instant::now();
    let entry = engine.backup_now(k);
    p.finish_and_clear();
    let entry = entry?;
    engine.close()?;
    match entry {
        None => emit(
            a.repo.json,
            json!({ "backup": null, "reason": "no changes" }),
            || "nothing changed since the last backup".into(),
        ),
        Some(e) => emit_serialized(a.repo.json, &e, || {
            format!(
                "{} backup {} of versions {}..={} ({} bytes) in {:.1?} to {}",
                e.kind.name(),
                e.id,
                e.from_version,
                e.to_version,
                e.size,
                started.elapsed(),
                e.locations.join(", ")
            )
        })?,
    }
    Ok(())
}
