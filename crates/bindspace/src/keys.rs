//! An encrypted repository's keys: where the secret comes from, and the stores wrapped
//! so everything they put is sealed ([`bindspace_catalog::SealedStore`]).

use std::path::Path;
use std::sync::Arc;

use bindspace_catalog::{BackupStore, Repository, SealedStore};
use bindspace_crypt::{Argon2Cost, Entropy, Keyring, SlotSecret};

use crate::{Error, Result};

/// The secret that opens an encrypted repository, from the environment:
/// `BINDSPACE_PASSPHRASE`, else `BINDSPACE_PASSPHRASE_FILE` (the file's first line),
/// else `BINDSPACE_KEY_FILE` (a key file); none when none is set.
pub fn secret_from_env() -> Result<Option<SlotSecret>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(p) = var("BINDSPACE_PASSPHRASE") {
        return Ok(Some(SlotSecret::Passphrase(p)));
    }
    if let Some(f) = var("BINDSPACE_PASSPHRASE_FILE") {
        return passphrase_file(Path::new(&f)).map(Some);
    }
    if let Some(f) = var("BINDSPACE_KEY_FILE") {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| Error::Config(format!("reading the key file {f}: {e}")))?;
        return Ok(Some(SlotSecret::KeyFile(text)));
    }
    Ok(None)
}

/// A passphrase from the first line of a file.
pub fn passphrase_file(path: &Path) -> Result<SlotSecret> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "reading the passphrase file {}: {e}",
            path.display()
        ))
    })?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(Error::Config(format!(
            "the passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(SlotSecret::Passphrase(line))
}

/// The repository's keyring, from the first store whose catalog has an intact one
/// (read past a damaged newest generation, as every command reads the catalog);
/// `Ok(None)` when a catalog was read and none has one (not encrypted).
pub async fn keyring_of(stores: &[Arc<dyn BackupStore>]) -> Result<Option<Keyring>> {
    let mut read_any = false;
    let mut last_err: Option<Error> = None;
    for s in stores {
        match bindspace_catalog::read_catalog(s.as_ref()).await {
            Ok(Some(r)) => {
                read_any = true;
                if let Some(k) = r.manifest.keyring {
                    match Keyring::decode(k.as_bytes()) {
                        Ok(ring) => return Ok(Some(ring)),
                        // another store's copy may be intact
                        Err(e) => {
                            last_err = Some(Error::Config(format!(
                                "the keyring in {}'s catalog: {e}",
                                s.name()
                            )));
                        }
                    }
                }
            }
            Ok(None) => read_any = true,
            Err(e) => last_err = Some(e.into()),
        }
    }
    match (read_any, last_err) {
        (_, Some(e @ Error::Config(_))) | (false, Some(e)) => Err(e),
        _ => Ok(None),
    }
}

/// Every store wrapped for the repository's encryption: sealed with the keys `secret`
/// opens, or locked without a secret (catalog, listings and copies work; contents are
/// refused, saying why). A repository that is not encrypted keeps its stores as they
/// are, and refuses a secret: writing plaintext while the operator believes it is
/// encrypted is what must not happen silently.
pub async fn unlock(
    stores: Vec<Arc<dyn BackupStore>>,
    secret: Option<&SlotSecret>,
) -> Result<Vec<Arc<dyn BackupStore>>> {
    let ring = keyring_of(&stores).await?;
    let names = || {
        stores
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (ring, secret) {
        (None, None) => Ok(stores),
        (None, Some(_)) => Err(Error::Config(format!(
            "a passphrase or key file was given, but the repository at {} is not encrypted (`bindspace init --encrypt` makes an encrypted one); refusing to write plaintext",
            names()
        ))),
        (Some(_), None) => Ok(stores
            .into_iter()
            .map(|s| Arc::new(SealedStore::locked(s)) as Arc<dyn BackupStore>)
            .collect()),
        (Some(ring), Some(secret)) => {
            let keys = Arc::new(ring.unlock(secret).map_err(|e| match e {
                bindspace_crypt::Error::WrongKey => Error::WrongKey(names()),
                other => Error::Config(other.to_string()),
            })?);
            Ok(stores
                .into_iter()
                .map(|s| Arc::new(SealedStore::new(s, keys.clone())) as Arc<dyn BackupStore>)
                .collect())
        }
    }
}

/// Makes a new, empty repository encrypted: a keyring with one slot opened by `secret`,
/// bound to the repository's id, in every destination's catalog. Refused for a
/// repository that already holds backups (they are plaintext) or already has a keyring.
pub async fn encrypt_new(
    repo: &Repository,
    secret: &SlotSecret,
    cost: Argon2Cost,
    now_us: u64,
    rng: &mut dyn Entropy,
) -> Result<Keyring> {
    repo.init().await?;
    let (m, _) = repo.read_catalog().await?;
    if m.keyring.is_some() {
        return Err(Error::Config("the repository is already encrypted".into()));
    }
    if !m.entries.is_empty() {
        return Err(Error::Config(format!(
            "the repository already holds {} backups, in plaintext: encryption is chosen when a repository is created (`bindspace init --encrypt` on an empty one, then `restore --to` into it)",
            m.entries.len()
        )));
    }
    let id = m
        .repository_id
        .clone()
        .ok_or_else(|| Error::Config("the repository has no id after init".into()))?;
    let (ring, _keys) = Keyring::create(&id, secret, cost, now_us, rng)
        .map_err(|e| Error::Config(e.to_string()))?;
    let text = String::from_utf8(ring.encode()).expect("a keyring is JSON");
    repo.set_keyring(&text).await?;
    Ok(ring)
}
