//! `bindspace init`: an empty catalog on every destination; `--encrypt` makes the new
//! repository encrypted (a keyring opened by the passphrase or key file from the
//! environment).

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::emit;

/// `bindspace init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// Encrypt the new repository: everything stored is sealed with keys only the
    /// passphrase ($BINDSPACE_PASSPHRASE or $BINDSPACE_PASSPHRASE_FILE) or key file
    /// ($BINDSPACE_KEY_FILE) opens. Only for a repository without backups.
    #[arg(long)]
    encrypt: bool,
    /// Pack artifacts with zstd where it saves at least 10% (a sample is tried first;
    /// random fingerprints stay raw). Also switches it on for an existing repository:
    /// new artifacts are packed, old ones stay as they are.
    #[arg(long)]
    compress: bool,
}

pub fn run(a: &Args) -> Result<()> {
    let rt = runtime()?;
    let urls = &a.repo.urls();
    if a.encrypt {
        let secret = crate::args::secret_or_prompt(true)?.context(
            "--encrypt needs the passphrase: type it at a terminal, or set BINDSPACE_PASSPHRASE or BINDSPACE_PASSPHRASE_FILE (or BINDSPACE_KEY_FILE)",
        )?;
        // the raw stores: the keyring goes into their catalogs
        let stores = rt.block_on(bindspace::stores::open_all_in(
            urls,
            &a.repo.space_name()?,
            a.repo.timeout(),
        ))?;
        let repo = bindspace_catalog::Repository::new(
            stores,
            std::sync::Arc::new(bindspace_core::SystemClock),
            format!("bindspace cli pid {}", std::process::id()),
        )?;
        let ring = rt.block_on(bindspace::keys::encrypt_new(
            &repo,
            &secret,
            bindspace_crypt::Argon2Cost::DEFAULT,
            bindspace_core::Clock::now_us(&bindspace_core::SystemClock),
            &mut bindspace_crypt::OsEntropy,
        ))?;
        if a.compress {
            rt.block_on(repo.set_compression("zstd"))?;
        }
        emit(
            a.repo.json,
            json!({ "initialized": repo.names(), "encrypted": true, "compressed": a.compress, "repository_id": ring.repository_id() }),
            || {
                format!(
                    "initialized {} (encrypted: keep the passphrase; without it nothing in the repository can be read)",
                    repo.names().join(", ")
                )
            },
        );
        return Ok(());
    }
    if bindspace::keys::secret_from_env()?.is_some() {
        bail!(
            "a passphrase or key file is set in the environment but --encrypt was not given: refusing to make a plaintext repository (add --encrypt, or unset BINDSPACE_PASSPHRASE / _FILE / BINDSPACE_KEY_FILE)"
        );
    }
    let repo = a.repo.repository_or_new(&rt)?;
    rt.block_on(repo.init())?;
    if a.compress {
        rt.block_on(repo.set_compression("zstd"))?;
    }
    emit(
        a.repo.json,
        json!({ "initialized": repo.names(), "compressed": a.compress }),
        || {
            format!(
                "initialized {}{}",
                repo.names().join(", "),
                if a.compress { " (compression on)" } else { "" }
            )
        },
    );
    Ok(())
}
