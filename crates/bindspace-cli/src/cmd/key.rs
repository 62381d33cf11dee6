//! `bindspace key`: an encrypted repository's keys. `list` shows the key slots and
//! epochs; `add` and `remove` change who can open it (O(1): the master key is
//! re-wrapped, no artifact is touched); `rotate` starts a new data-key epoch
//! (`--reencrypt` then re-seals older artifacts and retires their epochs; `--master`
//! replaces the master key instead); `reencrypt` resumes an interrupted re-encryption;
//! `export` prints the master key for offline safekeeping. The secret that opens the
//! repository comes from the environment, as for every command.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bindspace_catalog::Repository;
use bindspace_crypt::{Argon2Cost, OsEntropy, SlotSecret};
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::emit;

/// Key subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum KeyOp {
    /// The key slots (who can open the repository) and the data-key epochs.
    List(RepoArgs),
    /// Add a key slot: a new passphrase ($BINDSPACE_NEW_PASSPHRASE or
    /// --new-passphrase-file) or a new key file (--new-key-file, written here).
    Add(AddArgs),
    /// Remove a key slot (never the last one).
    Remove(RemoveArgs),
    /// Start a new data-key epoch: new artifacts are sealed with it, older ones keep
    /// opening. --reencrypt re-seals them and retires the old epochs; --master
    /// replaces the master key instead.
    Rotate(RotateArgs),
    /// Re-seal every artifact an older epoch sealed under the current one, then retire
    /// the older epochs (resumes an interrupted `rotate --reencrypt`).
    Reencrypt(RepoArgs),
    /// Print the master key for offline safekeeping. Whoever holds it opens every
    /// backup; $BINDSPACE_MASTER_KEY_FILE opens the repository with it.
    Export(ExportArgs),
}

/// `bindspace key add`.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// A label for the slot (who or what it is for).
    #[arg(long, default_value = "")]
    label: String,
    /// The new passphrase, from the first line of this file (mode 0600).
    #[arg(long, conflicts_with = "new_key_file")]
    new_passphrase_file: Option<PathBuf>,
    /// Write a new random key file here (mode 0600; never over an existing file) and
    /// add a slot it opens.
    #[arg(long)]
    new_key_file: Option<PathBuf>,
}

/// `bindspace key remove`.
#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The slot's id (`bindspace key list`).
    slot: u32,
}

/// `bindspace key rotate`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Then re-seal every older artifact under the new epoch and retire the old
    /// epochs (resumable: `bindspace key reencrypt`).
    #[arg(long, conflicts_with = "master")]
    reencrypt: bool,
    /// Replace the master key instead: every epoch key is re-wrapped, and only the
    /// slot the given secret opens is kept (re-wrapped); other slots are removed.
    #[arg(long)]
    master: bool,
}

/// `bindspace key export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Say you understand that the printed key opens every backup.
    #[arg(long)]
    i_understand: bool,
}

/// Runs one key subcommand.
pub fn run(op: KeyOp) -> Result<()> {
    match op {
        KeyOp::List(r) => list(&r),
        KeyOp::Add(a) => add(&a),
        KeyOp::Remove(a) => remove(&a),
        KeyOp::Rotate(a) => rotate(&a),
        KeyOp::Reencrypt(r) => reencrypt(&r),
        KeyOp::Export(a) => export(&a),
    }
}

fn secret() -> Result<SlotSecret> {
    crate::args::secret_or_prompt(false)?.context(
        "the repository's passphrase is needed: set BINDSPACE_PASSPHRASE (or BINDSPACE_PASSPHRASE_FILE, BINDSPACE_KEY_FILE, BINDSPACE_MASTER_KEY_FILE)",
    )
}

fn raw_repo(r: &RepoArgs, rt: &tokio::runtime::Runtime) -> Result<Repository> {
    Ok(Repository::new(
        r.raw_stores(rt)?,
        Arc::new(bindspace_core::SystemClock),
        format!("bindspace key pid {}", std::process::id()),
    )?)
}

fn list(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let stores = r.raw_stores(&rt)?;
    let ring = rt
        .block_on(bindspace::keys::keyring_of(&stores))?
        .context("the repository is not encrypted: it has no keys")?;
    let slots: Vec<_> = ring
        .slots()
        .into_iter()
        .map(|s| json!({ "id": s.id, "kind": s.kind, "label": s.label }))
        .collect();
    let epochs: Vec<_> = ring
        .epochs()
        .into_iter()
        .map(|e| json!({ "id": e.id, "created_us": e.created_us, "current": e.current, "retired": e.retired }))
        .collect();
    emit(
        r.json,
        json!({ "repository_id": ring.repository_id(), "revision": ring.revision(), "slots": slots, "epochs": epochs }),
        || {
            let mut out = format!(
                "repository {} (keyring revision {})\nkey slots:\n",
                ring.repository_id(),
                ring.revision()
            );
            for s in ring.slots() {
                out.push_str(&format!("  {:>3}  {:<10}  {}\n", s.id, s.kind, s.label));
            }
            out.push_str("data-key epochs:\n");
            for e in ring.epochs() {
                let state = match (e.current, e.retired) {
                    (true, _) => "current",
                    (_, true) => "retired",
                    _ => "readable",
                };
                out.push_str(&format!(
                    "  {:>3}  {:<8}  since {}\n",
                    e.id,
                    state,
                    crate::output::when(e.created_us, crate::output::now_us())
                ));
            }
            out
        },
    );
    Ok(())
}

fn add(a: &AddArgs) -> Result<()> {
    let rt = runtime()?;
    let opener = secret()?;
    let new = match (&a.new_passphrase_file, &a.new_key_file) {
        (Some(f), _) => bindspace::keys::passphrase_file(f)?,
        (None, Some(f)) => bindspace::keys::new_key_file(f, &mut OsEntropy)?,
        (None, None) => match std::env::var("BINDSPACE_NEW_PASSPHRASE") {
            Ok(p) if !p.is_empty() => SlotSecret::Passphrase(p),
            _ => bail!(
                "the new slot's secret: set BINDSPACE_NEW_PASSPHRASE, or give --new-passphrase-file or --new-key-file"
            ),
        },
    };
    let repo = raw_repo(&a.repo, &rt)?;
    let (id, ring) = rt.block_on(bindspace::keys::change_keyring(
        &repo,
        &opener,
        |ring, keys| ring.add_slot(keys, &new, Argon2Cost::DEFAULT, &a.label, &mut OsEntropy),
    ))?;
    emit(
        a.repo.json,
        json!({ "added_slot": id, "revision": ring.revision() }),
        || format!("added key slot {id}; {} slots now", ring.slots().len()),
    );
    Ok(())
}

fn remove(a: &RemoveArgs) -> Result<()> {
    let rt = runtime()?;
    let opener = secret()?;
    let repo = raw_repo(&a.repo, &rt)?;
    let ((), ring) = rt.block_on(bindspace::keys::change_keyring(
        &repo,
        &opener,
        |ring, _| ring.remove_slot(a.slot),
    ))?;
    emit(
        a.repo.json,
        json!({ "removed_slot": a.slot, "revision": ring.revision() }),
        || {
            format!(
                "removed key slot {}; {} left (its secret no longer opens the repository)",
                a.slot,
                ring.slots().len()
            )
        },
    );
    Ok(())
}

fn rotate(a: &RotateArgs) -> Result<()> {
    let rt = runtime()?;
    let opener = secret()?;
    let repo = raw_repo(&a.repo, &rt)?;
    if a.master {
        if matches!(opener, SlotSecret::MasterKey(_)) {
            bail!(
                "a master-key rotation keeps the slot the given secret opens: give a passphrase or key file, not the master key"
            );
        }
        let before = rt
            .block_on(bindspace::keys::keyring_of(repo.destinations()))?
            .map(|r| r.slots().len())
            .unwrap_or(0);
        let ((), ring) = rt.block_on(bindspace::keys::change_keyring(
            &repo,
            &opener,
            |ring, keys| {
                ring.rotate_master(
                    keys,
                    &[(opener.clone(), "kept at master-key rotation".into())],
                    Argon2Cost::DEFAULT,
                    &mut OsEntropy,
                )
            },
        ))?;
        emit(
            a.repo.json,
            json!({ "master_rotated": true, "slots_removed": before.saturating_sub(1), "revision": ring.revision() }),
            || {
                format!(
                    "replaced the master key; every epoch key re-wrapped; kept the slot this secret opens, removed {} other slot(s). Writers open with the passphrase again; export the new master key if you keep one offline",
                    before.saturating_sub(1)
                )
            },
        );
        return Ok(());
    }
    let (epoch, ring) = rt.block_on(bindspace::keys::change_keyring(
        &repo,
        &opener,
        |ring, keys| ring.rotate(keys, crate::output::now_us(), &mut OsEntropy),
    ))?;
    if !a.reencrypt {
        emit(
            a.repo.json,
            json!({ "epoch": epoch, "revision": ring.revision() }),
            || {
                format!(
                    "epoch {epoch} is current: new artifacts are sealed with it, older ones keep opening (`bindspace key reencrypt` re-seals them and retires the old epochs)"
                )
            },
        );
        return Ok(());
    }
    reencrypt_with(&a.repo, &rt, &opener)
}

fn reencrypt(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let opener = secret()?;
    reencrypt_with(r, &rt, &opener)
}

fn reencrypt_with(r: &RepoArgs, rt: &tokio::runtime::Runtime, opener: &SlotSecret) -> Result<()> {
    let stores = r.raw_stores(rt)?;
    let bar = if r.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    let done = rt.block_on(bindspace::keys::reencrypt(
        &stores,
        Arc::new(bindspace_core::SystemClock),
        opener,
        |n, total| {
            bar.set_length(total as u64);
            bar.set_position(n as u64);
        },
    ))?;
    bar.finish_and_clear();
    emit(
        r.json,
        json!({
            "resealed": done.resealed,
            "already_current": done.current,
            "entries_updated": done.entries_updated,
            "retired_epochs": done.retired,
            "left": done.left,
        }),
        || {
            let mut out = format!(
                "re-sealed {} artifacts ({} already current); {} catalog entries updated",
                done.resealed, done.current, done.entries_updated
            );
            if !done.retired.is_empty() {
                out.push_str(&format!("; retired epochs {:?}", done.retired));
            }
            for l in &done.left {
                out.push_str(&format!("\nleft: {l}"));
            }
            out
        },
    );
    if !done.left.is_empty() {
        bail!(
            "{} objects were not re-sealed (listed above): the old epochs stay until a run leaves none",
            done.left.len()
        );
    }
    Ok(())
}

fn export(a: &ExportArgs) -> Result<()> {
    if !a.i_understand {
        bail!(
            "`key export` prints the master key: whoever holds it opens every backup of this repository, whatever passphrases are set. Keep it offline (paper, a safe). Run again with --i-understand"
        );
    }
    let rt = runtime()?;
    let opener = secret()?;
    let stores = a.repo.raw_stores(&rt)?;
    let ring = rt
        .block_on(bindspace::keys::keyring_of(&stores))?
        .context("the repository is not encrypted: it has no keys")?;
    let keys = bindspace::keys::open_keys(&ring, &opener, &a.repo.urls().join(", "))?;
    eprintln!(
        "warning: the master key of repository {} follows. Whoever holds it opens every backup; store it offline. To open the repository with it: BINDSPACE_MASTER_KEY_FILE=<a file holding it, mode 0600>",
        ring.repository_id()
    );
    emit(
        a.repo.json,
        json!({ "repository_id": ring.repository_id(), "master_key": keys.export_master() }),
        || keys.export_master(),
    );
    Ok(())
}
