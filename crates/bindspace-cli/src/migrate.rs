//! `bindspace migrate plan|apply`: schema migrations of a native snapshot file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bindspace_core::{SchemaVersion, snapshot};
use bindspace_schema_migrate::{Consent, apply, features, plan};

/// Where a migration goes: the source's schema with these changes.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// Native snapshot file to migrate.
    #[arg(long)]
    pub snapshot: PathBuf,
    /// Target schema version `MAJOR.MINOR.PATCH` (default: the source's).
    #[arg(long)]
    pub to: Option<String>,
    /// Target words per fingerprint (default: the source's).
    #[arg(long)]
    pub words: Option<u16>,
    /// Target address-space size (default: the source's).
    #[arg(long)]
    pub address_space: Option<u32>,
    /// Turn on a feature by name (repeatable); `bindspace migrate plan --help` lists them.
    #[arg(long = "feature")]
    pub features: Vec<String>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `migrate plan` and `migrate apply`.
#[derive(clap::Subcommand, Debug)]
pub enum MigrateCommand {
    /// Show what a migration would do: steps, size, duration, data-loss warnings.
    Plan(TargetArgs),
    /// Run a migration that validates, writing the result to `--out`.
    Apply {
        #[command(flatten)]
        target: TargetArgs,
        /// Where to write the migrated snapshot.
        #[arg(long)]
        out: PathBuf,
        /// Allow steps that lose data (shrinking fingerprints, features that empty
        /// addresses).
        #[arg(long)]
        allow_truncate: bool,
    },
}

fn target_schema(from: SchemaVersion, a: &TargetArgs) -> Result<SchemaVersion> {
    let mut to = from;
    if let Some(v) = &a.to {
        let parts: Vec<u16> = v
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("--to {v:?} is not MAJOR.MINOR.PATCH"))?;
        let [major, minor, patch] = parts[..] else {
            bail!("--to {v:?} is not MAJOR.MINOR.PATCH");
        };
        (to.major, to.minor, to.patch) = (major, minor, patch);
    }
    if let Some(w) = a.words {
        to.fingerprint_words = w;
    }
    if let Some(n) = a.address_space {
        to.address_space = n;
    }
    for name in &a.features {
        let Some(f) = features::by_name(name) else {
            let known: Vec<&str> = features::REGISTRY.iter().map(|f| f.name).collect();
            bail!("unknown feature {name:?} (known: {})", known.join(", "));
        };
        to.features |= f.bit;
    }
    Ok(to)
}

fn plan_json(p: &bindspace_schema_migrate::Plan) -> serde_json::Value {
    serde_json::json!({
        "from": p.from.to_string(),
        "to": p.to.to_string(),
        "source_version": p.source_version,
        "steps": p.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "occupied": p.occupied,
        "estimated_output_bytes": p.estimated_output_bytes,
        "estimated_ms": p.estimated_duration.as_millis() as u64,
        "downtime": p.downtime,
        "lossy": p.is_lossy(),
        "warnings": p.warnings.iter().map(|w| serde_json::json!({
            "message": w.message, "lossy": w.lossy, "addresses": w.addresses,
        })).collect::<Vec<_>>(),
    })
}

pub fn run(cmd: &MigrateCommand) -> Result<()> {
    let t = match cmd {
        MigrateCommand::Plan(t) | MigrateCommand::Apply { target: t, .. } => t,
    };
    let bytes =
        std::fs::read(&t.snapshot).with_context(|| format!("reading {}", t.snapshot.display()))?;
    let decoded = snapshot::decode(&bytes)
        .with_context(|| format!("{} is not a native snapshot", t.snapshot.display()))?;
    let space = decoded.space;
    let to = target_schema(space.schema(), t)?;
    let p = plan(&space, to)?;
    crate::output::emit(t.json, plan_json(&p), || p.to_string());
    let MigrateCommand::Apply {
        out,
        allow_truncate,
        ..
    } = cmd
    else {
        return Ok(());
    };
    let validated = p.validate(Consent {
        allow_truncate: *allow_truncate,
    })?;
    let bar = indicatif::ProgressBar::new(space.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "migrating {bar:40} {pos}/{len} addresses ({elapsed})",
        )
        .expect("a valid template"),
    );
    let migrated = apply(&space, &validated, &mut |pr| {
        bar.set_position(pr.done as u64)
    })?;
    bar.finish_and_clear();
    let encoded = snapshot::encode(&migrated, decoded.header.time_to_us);
    bindspace_wal::fsio::write_atomic_bytes(out, &encoded)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "migrated {} addresses to {}; wrote {} ({} bytes)",
        migrated.len(),
        migrated.schema(),
        out.display(),
        encoded.len()
    );
    Ok(())
}
