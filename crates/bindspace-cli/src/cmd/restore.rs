//! `bindspace restore`: a version, time or restore point, to a snapshot file or into
//! another repository as a full backup.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use bindspace_catalog::NewBackup;
use bindspace_core::snapshot;
use serde_json::json;

use crate::args::{RepoArgs, TargetArgs, TimelineArg, runtime, spinner};
use crate::output::emit;

/// `bindspace restore`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    timeline: TimelineArg,
    /// Write the restored space as a native snapshot file, with `FILE.origin` naming the
    /// repository, timeline and version it came from: an engine started on it as its
    /// `checkpoint.snap` continues on a new timeline.
    #[arg(long, conflicts_with = "to")]
    out: Option<PathBuf>,
    /// Write it as a full backup into another repository (cross-backend). An
    /// encrypted destination is opened with --to-passphrase-file, else
    /// $BINDSPACE_TO_PASSPHRASE, else the source's secret; an empty one made by
    /// `init --encrypt` takes the restored state as its first full (plaintext history
    /// into a new encrypted repository).
    #[arg(long)]
    to: Option<String>,
    /// The encrypted destination's passphrase, from the first line of this file.
    #[arg(long, requires = "to")]
    to_passphrase_file: Option<PathBuf>,
    /// The space at `--to` (default: the same as `--space`): restoring one space of a
    /// repository into another space, of this repository or another, moves its state.
    #[arg(long, requires = "to")]
    to_space: Option<String>,
}

pub fn run(a: &Args) -> Result<()> {
    let rt = runtime()?;
    let sources = a.repo.sources(&rt)?;
    let t = a.target.target();
    let p = spinner(&format!("restoring to {t}"));
    #[allow(clippy::disallowed_methods)] // the operator sees how long it took
    let started = Instant::now();
    let res = rt.block_on(async {
        let plan = bindspace_pitr::plan_on(&sources, &t, a.timeline.timeline).await?;
        let (space, verification) = bindspace_pitr::restore_verified(&plan).await?;
        Ok::<_, bindspace_pitr::Error>((space, plan, verification))
    });
    p.finish_and_clear();
    let (space, plan, verification) = res?;
    // never silent: a newer state may be in what could not be read
    for u in &plan.unavailable {
        eprintln!(
            "warning: could not read {u}; restored from the other destinations (a newer state may be there)"
        );
    }
    let took = started.elapsed();
    if let Some(path) = &a.out {
        // encoded only here: a restore that writes nothing holds only the space
        let bytes = snapshot::encode(&space, 0);
        bindspace_wal::fsio::write_atomic_bytes(path, &bytes)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        let repository_id = plan
            .sources()
            .stores()
            .first()
            .and_then(|s| rt.block_on(s.read_manifest()).ok().flatten())
            .and_then(|(_, m)| m.repository_id);
        bindspace::Origin::of_restore(repository_id, &plan, &verification).write(path)?;
    }
    if let Some(url) = &a.to {
        // the destination becomes (or must already be) a store of this repository, with
        // its timelines, and the full keeps the timeline it was restored from
        // (the first source whose catalog reads: a down primary does not leave the
        // destination without the repository's id)
        let source = plan
            .sources()
            .stores()
            .iter()
            .find_map(|s| rt.block_on(s.read_manifest()).ok().flatten())
            .map(|(_, m)| m)
            .unwrap_or_default();
        let to_space = match &a.to_space {
            Some(s) => bindspace_catalog::SpaceName::new(s)?,
            None => a.repo.space_name()?,
        };
        let raw = rt.block_on(bindspace::stores::open_all_in(
            std::slice::from_ref(url),
            &to_space,
            a.repo.timeout(),
        ))?;
        let mut source = source;
        let theirs = rt.block_on(raw[0].read_manifest())?.map(|(_, m)| m);
        if let Some(d) = theirs
            .filter(|d| source.keyring.is_none() && d.keyring.is_some() && d.entries.is_empty())
        {
            // a new encrypted repository: its keyring is bound to its own id, which
            // it keeps; the restored state becomes its first full
            source.repository_id = d.repository_id;
        }
        // the descriptor first (it brings an encrypted source's keyring), then the
        // stores unlocked: the full is sealed there when the destination is encrypted
        let clock = std::sync::Arc::new(bindspace_core::SystemClock);
        let holder = format!("bindspace cli pid {}", std::process::id());
        rt.block_on(
            bindspace_catalog::Repository::new(raw.clone(), clock.clone(), holder.clone())?
                .adopt_descriptor(&source),
        )?;
        let secret = match &a.to_passphrase_file {
            Some(f) => Some(bindspace::keys::passphrase_file(f)?),
            None => match std::env::var("BINDSPACE_TO_PASSPHRASE") {
                Ok(p) if !p.is_empty() => Some(bindspace_crypt::SlotSecret::Passphrase(p)),
                _ => bindspace::keys::secret_from_env()?,
            },
        };
        let stores = rt.block_on(bindspace::keys::unlock(raw, secret.as_ref()))?;
        let dst = bindspace_catalog::Repository::new(stores, clock, holder)?;
        rt.block_on(dst.write_backup(NewBackup::full(&space, 0).on(plan.timeline)))?;
    }
    // a time after the newest state: said so, only when nothing newer is recorded
    // anywhere (a missing WAL segment or an unread store is not "the newest")
    let after_newest = match t {
        bindspace_pitr::Target::Time(at)
            if space.version() == plan.version
                && verification.state_time_us <= at
                && plan.unavailable.is_empty() =>
        {
            let newer = plan.sources().stores().iter().any(|s| {
                rt.block_on(s.read_manifest())
                    .ok()
                    .flatten()
                    .is_none_or(|(_, m)| {
                        m.entries.iter().any(|e| {
                            plan.history.uses(&e.artifact) && e.to_version > space.version()
                        })
                    })
            });
            (!newer).then_some(at)
        }
        _ => None,
    };
    emit(
        a.repo.json,
        json!({
            "target": t.to_string(),
            "timeline": plan.timeline,
            "version": space.version(),
            "addresses": space.len(),
            "digest": space.digest().to_string(),
            "root": verification.root.to_string(),
            "verified": verification.is_verified(),
            "verified_by": verification.verified_by,
            "roots_checked": verification.checked,
            "verification": verification.to_string(),
            "fetched_bytes": plan.estimated_bytes,
            "took_ms": took.as_millis() as u64,
            "out": a.out.as_ref().map(|p| p.display().to_string()),
            "to": a.to,
            "unavailable": plan.unavailable,
            "after_newest_state": after_newest.is_some(),
        }),
        || {
            let mut s = format!(
                "restored {t} → version {} of timeline {} ({} addresses, digest {}) in {took:.1?}",
                space.version(),
                plan.timeline,
                space.len(),
                space.digest()
            );
            let _ = write!(s, "\n{verification}");
            if let Some(at) = after_newest {
                let _ = write!(
                    s,
                    "\nnote: {} is after the newest state timeline {} holds (version {}{}): this is that state; any writes after it were not archived",
                    bindspace_core::clock::rfc3339_exact(at),
                    plan.timeline,
                    space.version(),
                    match verification.state_time_us {
                        0 => String::new(),
                        us => format!(
                            ", written {}",
                            crate::output::when(us, crate::output::now_us())
                        ),
                    }
                );
            }
            if let Some(p) = &a.out {
                let _ = write!(s, "\nwrote {}", p.display());
            }
            if let Some(u) = &a.to {
                let _ = write!(s, "\nwrote a full backup to {u}");
            }
            s
        },
    );
    Ok(())
}
