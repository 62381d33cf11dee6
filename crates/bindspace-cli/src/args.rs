//! Arguments shared by the repository commands, and the helpers every command uses to
//! reach a repository (runtime, stores, progress spinner).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bindspace_catalog::Repository;
use bindspace_core::{Addr, Clock, SystemClock};
use bindspace_pitr::{Sources, Target};

/// Where the repository lives.
#[derive(clap::Args, Debug, Clone)]
pub struct RepoArgs {
    /// Repository destination URL, primary first (repeatable): file:///dir, s3://bucket/prefix,
    /// redis://host:port, redis+cluster://host:port,host:port, postgresql://user@host:port/db.
    /// Default: $BINDSPACE_REPO.
    #[arg(
        long = "repo",
        env = "BINDSPACE_REPO",
        value_delimiter = ',',
        required = true
    )]
    pub repo: Vec<String>,
    /// Each store request (an upload part, a chunk batch, a catalog commit) fails as a
    /// timeout after this many seconds; a whole backup or restore may take longer.
    #[arg(long, env = "BINDSPACE_STORE_TIMEOUT_SECS", default_value_t = 30)]
    pub store_timeout_secs: u64,
    /// The space of the repository to work on: many engines share one repository,
    /// each under its own name (`bindspace spaces` lists them); `default` is the
    /// repository's root, where everything written before spaces lives.
    #[arg(long, env = "BINDSPACE_SPACE", default_value = "default")]
    pub space: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// The URLs of a comma-separated `--repo`, with a Redis Cluster's node list (which is
/// comma-separated too: `redis+cluster://a:7000,b:7000`) put back together: a part
/// without `://` continues the URL before it.
pub fn join_urls(parts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(parts.len());
    for p in parts {
        match out.last_mut() {
            Some(last) if !p.contains("://") && last.contains("+cluster://") => {
                last.push(',');
                last.push_str(p);
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

impl RepoArgs {
    /// The destination URLs, primary first.
    pub fn urls(&self) -> Vec<String> {
        join_urls(&self.repo)
    }

    /// The space asked for, checked.
    pub fn space_name(&self) -> Result<bindspace_catalog::SpaceName> {
        Ok(bindspace_catalog::SpaceName::new(&self.space)?)
    }

    /// Opens the space on every destination.
    fn open(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Vec<Arc<dyn bindspace_catalog::BackupStore>>> {
        Ok(rt.block_on(bindspace::stores::open_all_in(
            &self.urls(),
            &self.space_name()?,
            self.timeout(),
        ))?)
    }

    /// The repository over every destination, which must exist (a mistyped URL during
    /// an incident says so, instead of creating an empty repository and reporting it).
    pub fn repository(&self, rt: &tokio::runtime::Runtime) -> Result<Repository> {
        self.check_local_paths()?;
        let repo = rt.block_on(repository(self.open(rt)?))?;
        check_exists(rt, repo.destinations(), &self.urls(), &self.space)?;
        Ok(repo)
    }

    /// The repository over every destination, created where missing (`init`).
    pub fn repository_or_new(&self, rt: &tokio::runtime::Runtime) -> Result<Repository> {
        rt.block_on(repository(self.open(rt)?))
    }

    /// The per-request store timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.store_timeout_secs.max(1))
    }

    /// The destinations as restore sources (which must exist, as for
    /// [`RepoArgs::repository`]).
    pub fn sources(&self, rt: &tokio::runtime::Runtime) -> Result<Sources> {
        self.check_local_paths()?;
        let stores = self.open(rt)?;
        check_exists(rt, &stores, &self.urls(), &self.space)?;
        let stores = rt.block_on(unlock(stores))?;
        Ok(Sources::new(stores))
    }

    /// The destinations as they are, not unlocked (key management reads and writes
    /// the keyring itself); they must exist, as for [`RepoArgs::repository`].
    pub fn raw_stores(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Vec<Arc<dyn bindspace_catalog::BackupStore>>> {
        self.check_local_paths()?;
        let stores = self.open(rt)?;
        check_exists(rt, &stores, &self.urls(), &self.space)?;
        Ok(stores)
    }

    /// A `file://` destination names a directory that exists (opening one creates it).
    pub fn check_local_paths(&self) -> Result<()> {
        for url in &self.urls() {
            if let Ok(u) = url::Url::parse(url)
                && u.scheme() == "file"
                && let Ok(path) = u.to_file_path()
                && !path.exists()
            {
                anyhow::bail!(
                    "no repository at {url}: {} does not exist (check the URL; `bindspace init` creates a repository)",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// At least one destination holds a catalog, or could not be read (then the command
/// goes on and reports it): none readable and none with a catalog is no repository.
fn check_exists(
    rt: &tokio::runtime::Runtime,
    stores: &[Arc<dyn bindspace_catalog::BackupStore>],
    urls: &[String],
    space: &str,
) -> Result<()> {
    // a catalog, an unreadable store, or artifacts without a catalog (a lost catalog:
    // restores still plan from what the store lists)
    let mut found = false;
    for s in stores {
        found |= match rt.block_on(s.read_manifest()) {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => bindspace_catalog::ArtifactKind::ALL.iter().any(|k| {
                rt.block_on(s.list(*k, 0, u64::MAX))
                    .map_or(true, |l| !l.is_empty())
            }),
        };
    }
    if !found && space == bindspace_catalog::SpaceName::DEFAULT {
        anyhow::bail!(
            "no repository at {}: no catalog there (check the URL; `bindspace init` creates a repository)",
            urls.join(", ")
        );
    }
    if !found {
        anyhow::bail!(
            "no space {space:?} in the repository at {}: no catalog there (check the name: `bindspace spaces` lists them; `bindspace init --space {space}` creates it)",
            urls.join(", ")
        );
    }
    Ok(())
}

/// Which history (timeline) a target is on.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct TimelineArg {
    /// The timeline (history) of the target: default the newest, or a restore point's
    /// own. `bindspace timeline list` shows them.
    #[arg(long)]
    pub timeline: Option<u32>,
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
    /// The last state at or before this time: RFC 3339 (`2025-12-24T15:30:00Z`, or
    /// with an offset), a time ago (`-15m`, `-2h`), µs since the epoch, or seconds
    /// with an `s` suffix.
    #[arg(long, value_parser = parse_time, allow_hyphen_values = true)]
    pub to_time: Option<u64>,
    /// A named restore point.
    #[arg(long)]
    pub to_point: Option<String>,
}

fn parse_time(s: &str) -> Result<u64, String> {
    parse_time_at(s, bindspace_core::SystemClock.now_us())
}

pub use bindspace_http::time::parse_time_at;

impl TargetArgs {
    /// The target asked for.
    pub fn target(&self) -> Target {
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

/// The I/O runtime a command runs its store calls on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

/// The repository's catalog, warning on stderr when its newest generation is damaged
/// and an older one (or another store's) was read instead.
pub fn catalog(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
) -> Result<bindspace_catalog::Manifest> {
    let (m, warning) = rt.block_on(repo.read_catalog())?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Ok(m)
}

/// The repository over `stores` (one space's, primary first), unlocked with the
/// secret from the environment when encrypted.
pub async fn repository(
    stores: Vec<Arc<dyn bindspace_catalog::BackupStore>>,
) -> Result<Repository> {
    let stores = unlock(stores).await?;
    Ok(Repository::new(
        stores,
        Arc::new(SystemClock),
        format!("bindspace cli pid {}", std::process::id()),
    )?)
}

/// The stores of an encrypted repository sealed with the secret from the environment
/// (`BINDSPACE_PASSPHRASE`, `_FILE`, `BINDSPACE_KEY_FILE`), or locked without one (the
/// catalog and listings still read); a plain repository's as they are.
pub async fn unlock(
    stores: Vec<Arc<dyn bindspace_catalog::BackupStore>>,
) -> Result<Vec<Arc<dyn bindspace_catalog::BackupStore>>> {
    let mut secret = bindspace::keys::secret_from_env()?;
    // none set, the repository encrypted and a person at a terminal: ask
    if secret.is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
        && bindspace::keys::keyring_of(&stores).await?.is_some()
    {
        secret = prompt_passphrase(false)?;
    }
    Ok(bindspace::keys::unlock(stores, secret.as_ref()).await?)
}

/// The secret from the environment, else, with a terminal at hand, a passphrase typed
/// at a prompt (echo off; `confirm`: asked twice, for a new one); `None` without either.
pub fn secret_or_prompt(confirm: bool) -> Result<Option<bindspace_crypt::SlotSecret>> {
    match bindspace::keys::secret_from_env()? {
        Some(s) => Ok(Some(s)),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => prompt_passphrase(confirm),
        None => Ok(None),
    }
}

fn prompt_passphrase(confirm: bool) -> Result<Option<bindspace_crypt::SlotSecret>> {
    let p = rpassword::prompt_password("bindspace passphrase: ")?;
    if p.is_empty() {
        anyhow::bail!("an empty passphrase");
    }
    if confirm && rpassword::prompt_password("again: ")? != p {
        anyhow::bail!("the two passphrases differ");
    }
    Ok(Some(bindspace_crypt::SlotSecret::Passphrase(p)))
}

/// An address as people type it (see [`bindspace_http::parse_addr`]).
pub fn parse_addr(s: &str) -> Result<Addr> {
    bindspace_http::parse_addr(s).map_err(anyhow::Error::msg)
}

/// A spinner on stderr for work that takes a while.
pub fn spinner(msg: &str) -> indicatif::ProgressBar {
    let p = indicatif::ProgressBar::new_spinner();
    p.set_message(msg.to_owned());
    p.enable_steady_tick(Duration::from_millis(120));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_keeps_its_nodes_in_a_comma_separated_list() {
        let parts: Vec<String> = "file:///a,redis+cluster://h1:7000,h2:7000,h3:7000,s3://b/p"
            .split(',')
            .map(String::from)
            .collect();
        assert_eq!(
            join_urls(&parts),
            [
                "file:///a",
                "redis+cluster://h1:7000,h2:7000,h3:7000",
                "s3://b/p"
            ]
        );
        // a stray part after any other URL stays its own (and is refused as a URL)
        let parts = ["file:///a".to_string(), "h2:7000".to_string()];
        assert_eq!(join_urls(&parts), parts);
    }

    #[test]
    fn addresses_people_type() {
        for (s, want) in [
            ("0a:01", 0x0a01),
            ("0a01", 0x0a01),
            ("0x0a01", 0x0a01),
            ("2561", 2561),
            ("0", 0),
            ("7", 7),
            ("1234", 1234),
            ("0101", 0x0101),
            ("ff:ff", 0xffff),
        ] {
            assert_eq!(parse_addr(s).map(|a| a.0).ok(), Some(want), "{s}");
        }
        for s in ["0a:1", "65536", "zz:01", "0x1", ""] {
            assert!(parse_addr(s).is_err(), "{s}");
        }
    }
}
