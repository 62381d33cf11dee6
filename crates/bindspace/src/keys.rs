//! An encrypted repository's keys: where the secret comes from, and the stores wrapped
//! so everything they put is sealed ([`bindspace_catalog::SealedStore`]), and packed
//! (compressed) where it pays once the catalog says compression is on.

use std::path::Path;
use std::sync::Arc;

use bindspace_catalog::{ArtifactKind, ArtifactRef, BackupStore, Repository, SealedStore};
use bindspace_crypt::{Argon2Cost, Entropy, Keyring, SlotSecret};

use crate::{Error, Result};

/// The secret that opens an encrypted repository, from the environment:
/// `BINDSPACE_PASSPHRASE`, else `BINDSPACE_PASSPHRASE_FILE` (the file's first line),
/// else `BINDSPACE_KEY_FILE` (a key file), else `BINDSPACE_MASTER_KEY_FILE` (the master
/// key from `bindspace key export`); none when none is set. A file that group or others
/// may read is refused.
pub fn secret_from_env() -> Result<Option<SlotSecret>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(p) = var("BINDSPACE_PASSPHRASE") {
        return Ok(Some(SlotSecret::Passphrase(p)));
    }
    if let Some(f) = var("BINDSPACE_PASSPHRASE_FILE") {
        return passphrase_file(Path::new(&f)).map(Some);
    }
    if let Some(f) = var("BINDSPACE_KEY_FILE") {
        return Ok(Some(SlotSecret::KeyFile(secret_file(
            Path::new(&f),
            "key file",
        )?)));
    }
    if let Some(f) = var("BINDSPACE_MASTER_KEY_FILE") {
        return Ok(Some(SlotSecret::MasterKey(secret_file(
            Path::new(&f),
            "master key file",
        )?)));
    }
    Ok(None)
}

/// A file holding a secret: read whole, refused when group or others may read it.
pub fn secret_file(path: &Path, what: &str) -> Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Config(format!("reading the {what} {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::Config(format!(
                "the {what} {} may be read by group or others (mode {:o}): `chmod 600` it first",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
    }
    std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("reading the {what} {}: {e}", path.display())))
}

/// A passphrase from the first line of a file (mode 0600 or stricter).
pub fn passphrase_file(path: &Path) -> Result<SlotSecret> {
    let text = secret_file(path, "passphrase file")?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(Error::Config(format!(
            "the passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(SlotSecret::Passphrase(line))
}

/// Writes a new random key file at `path` (mode 0600; an existing file is never
/// replaced) and returns it as a secret for a new slot.
pub fn new_key_file(path: &Path, rng: &mut dyn Entropy) -> Result<SlotSecret> {
    use std::io::Write;
    let text = Keyring::new_key_file(rng).map_err(|e| Error::Config(e.to_string()))?;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(|e| {
        Error::Config(format!(
            "creating the key file {} (an existing file is never replaced): {e}",
            path.display()
        ))
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::Config(format!("writing the key file {}: {e}", path.display())))?;
    Ok(SlotSecret::KeyFile(text))
}

/// What the stores' catalogs say of encryption: the newest keyring among them (the
/// highest revision of the repository's one; another destination's copy may be older
/// after a key change that reached only some), and the repository id a catalog names.
struct Survey {
    keyring: Option<Keyring>,
    repository_id: Option<String>,
    /// A catalog says compression is on.
    compression: bool,
}

async fn survey(stores: &[Arc<dyn BackupStore>]) -> Result<Survey> {
    let mut read_any = false;
    let mut damaged: Option<String> = None;
    let mut unread: Option<Error> = None;
    let mut out = Survey {
        keyring: None,
        repository_id: None,
        compression: false,
    };
    for s in stores {
        match bindspace_catalog::read_catalog(s.as_ref()).await {
            Ok(Some(r)) => {
                read_any = true;
                if out.repository_id.is_none() {
                    out.repository_id.clone_from(&r.manifest.repository_id);
                }
                out.compression |= r.manifest.compression.is_some();
                let Some(k) = r.manifest.keyring else {
                    continue;
                };
                match Keyring::decode(k.as_bytes()) {
                    Ok(ring) => match &out.keyring {
                        Some(have) if have.repository_id() != ring.repository_id() => {
                            return Err(Error::KeyringDamaged(format!(
                                "{} holds the keyring of repository {}, another destination that of {}: they are not one repository",
                                s.name(),
                                ring.repository_id(),
                                have.repository_id()
                            )));
                        }
                        Some(have) if have.revision() >= ring.revision() => {}
                        _ => out.keyring = Some(ring),
                    },
                    // another store's copy may be intact
                    Err(e) => damaged = Some(format!("the keyring in {}'s catalog: {e}", s.name())),
                }
            }
            Ok(None) => read_any = true,
            Err(e) => unread = Some(e.into()),
        }
    }
    if out.keyring.is_none() {
        if let Some(d) = damaged {
            return Err(Error::KeyringDamaged(d));
        }
        if !read_any && let Some(e) = unread {
            return Err(e);
        }
    }
    Ok(out)
}

/// The repository's keyring: the newest intact copy among the stores' catalogs (read
/// past a damaged newest generation, as every command reads the catalog); `Ok(None)`
/// when a catalog was read and none has one (not encrypted). A keyring that no store
/// holds intact is [`Error::KeyringDamaged`].
pub async fn keyring_of(stores: &[Arc<dyn BackupStore>]) -> Result<Option<Keyring>> {
    Ok(survey(stores).await?.keyring)
}

/// The keys `secret` opens in `ring`, with the errors people get.
pub fn open_keys(
    ring: &Keyring,
    secret: &SlotSecret,
    names: &str,
) -> Result<bindspace_crypt::Keys> {
    ring.unlock(secret).map_err(|e| match e {
        bindspace_crypt::Error::WrongKey => Error::WrongKey(names.to_owned()),
        e @ bindspace_crypt::Error::Corrupt { .. } => {
            Error::KeyringDamaged(format!("the keyring of {names}: {e}"))
        }
        other => Error::Config(other.to_string()),
    })
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
    let Survey {
        keyring: ring,
        repository_id,
        compression,
    } = survey(&stores).await?;
    if let (Some(ring), Some(id)) = (&ring, &repository_id)
        && ring.repository_id() != id
    {
        return Err(Error::KeyringDamaged(format!(
            "the keyring is repository {}'s, the catalog names repository {id}: a keyring copied from another repository opens nothing here",
            ring.repository_id()
        )));
    }
    let names = || {
        stores
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (ring, secret) {
        (None, None) if compression => Ok(stores
            .into_iter()
            .map(|s| Arc::new(SealedStore::packed(s)) as Arc<dyn BackupStore>)
            .collect()),
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
            let keys = Arc::new(open_keys(&ring, secret, &names())?);
            Ok(stores
                .into_iter()
                .map(|s| {
                    Arc::new(SealedStore::new(s, keys.clone()).with_packing(compression))
                        as Arc<dyn BackupStore>
                })
                .collect())
        }
    }
}

/// Makes a new, empty repository encrypted: a keyring with one slot opened by `secret`,
/// bound to the repository's id, in every destination's catalog. Refused for a
/// repository that holds anything (backups in its catalog, or any artifact on any
/// store: they are plaintext), checked under the repository's lease so no writer slips
/// one in. Run again after a partial run (a destination the keyring did not reach), it
/// completes it when `secret` opens the keyring already there.
pub async fn encrypt_new(
    repo: &Repository,
    secret: &SlotSecret,
    cost: Argon2Cost,
    now_us: u64,
    rng: &mut dyn Entropy,
) -> Result<Keyring> {
    // init also brings an existing keyring to every destination lacking it
    repo.init().await?;
    if let Some(ring) = keyring_of(repo.destinations()).await? {
        open_keys(&ring, secret, &repo.names().join(", ")).map_err(|e| match e {
            Error::WrongKey(_) => Error::Config(
                "the repository is already encrypted, with another passphrase or key file".into(),
            ),
            e => e,
        })?;
        return Ok(ring);
    }
    let ring = repo.with_lease(async |repo| {
        let (m, _) = repo.read_catalog().await?;
        if !m.entries.is_empty() {
            return Err(bindspace_catalog::Error::Invalid {
                store: repo.names().join(", "),
                detail: format!(
                    "the repository already holds {} backups, in plaintext: encryption is chosen when a repository is created (`bindspace init --encrypt` on an empty one, then `restore --to` into it)",
                    m.entries.len()
                ),
            });
        }
        for d in repo.destinations() {
            for kind in ALL_KINDS {
                let found = d.list(kind, 0, u64::MAX).await?;
                if let Some(r) = found.first() {
                    return Err(bindspace_catalog::Error::Invalid {
                        store: d.name(),
                        detail: format!(
                            "holds {} artifacts of kind {kind:?} (e.g. {}), stored in plaintext: only an empty repository is made encrypted",
                            found.len(),
                            r.id
                        ),
                    });
                }
            }
        }
        let id = m.repository_id.ok_or_else(|| bindspace_catalog::Error::Invalid {
            store: repo.names().join(", "),
            detail: "the repository has no id after init".into(),
        })?;
        let (ring, _keys) = Keyring::create(&id, secret, cost, now_us, rng).map_err(|e| {
            bindspace_catalog::Error::Invalid {
                store: repo.names().join(", "),
                detail: e.to_string(),
            }
        })?;
        // still under the lease: nothing is stored between the check and the keyring
        let text = String::from_utf8(ring.encode()).expect("a keyring is JSON");
        repo.set_keyring(&text).await?;
        Ok(ring)
    })
    .await?;
    Ok(ring)
}

const ALL_KINDS: [ArtifactKind; 3] = ArtifactKind::ALL;

/// Changes the keyring of the encrypted repository over `repo`'s (raw or sealed)
/// stores: reads the newest copy, opens it with `secret`, applies `change` and records
/// the result in every destination's catalog ([`Repository::replace_keyring`]).
/// Returns what `change` returned and the new keyring.
pub async fn change_keyring<T>(
    repo: &Repository,
    secret: &SlotSecret,
    change: impl FnOnce(&mut Keyring, &mut bindspace_crypt::Keys) -> bindspace_crypt::Result<T>,
) -> Result<(T, Keyring)> {
    let names = repo.names().join(", ");
    // under the repository's lease: two key changes at once would both write the next
    // revision, and the destinations could end up holding different keyrings
    let mut failed: Option<Error> = None;
    let mut change = Some(change);
    let done = repo
        .with_lease(async |repo| {
            let attempt = async {
                let mut ring = keyring_of(repo.destinations()).await?.ok_or_else(|| {
                    Error::Config(format!("the repository at {names} is not encrypted"))
                })?;
                let mut keys = open_keys(&ring, secret, &names)?;
                let change = change.take().expect("the lease runs this once");
                let out = change(&mut ring, &mut keys).map_err(|e| Error::Config(e.to_string()))?;
                let text = String::from_utf8(ring.encode()).expect("a keyring is JSON");
                repo.replace_keyring(&text).await?;
                Ok::<_, Error>((out, ring))
            };
            match attempt.await {
                Ok(v) => Ok(Some(v)),
                Err(Error::Store(e)) => Err(e),
                Err(e) => {
                    failed = Some(e);
                    Ok(None)
                }
            }
        })
        .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let (out, ring) = done.expect("no error means a result");
    tracing::info!(revision = ring.revision(), "keyring changed");
    Ok((out, ring))
}

/// What a re-encryption did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reencrypted {
    /// Artifacts re-sealed under the current epoch (counted once per store).
    pub resealed: usize,
    /// Artifacts already under the current epoch.
    pub current: usize,
    /// Catalog entries that now name the re-sealed bytes.
    pub entries_updated: usize,
    /// Epochs retired at the end (their keys deleted).
    pub retired: Vec<u32>,
    /// Objects left as they were, with why (plaintext in an encrypted repository, an
    /// artifact that does not open): nothing is retired while one is listed.
    pub left: Vec<String>,
}

/// Re-seals every artifact of every destination that an older epoch sealed under the
/// current one, brings each catalog entry to the new bytes, and then (when nothing
/// older is left) retires every older epoch. Resumable: run it again after an
/// interruption and it goes on where it stopped (an artifact already re-sealed is
/// current; a catalog entry that still names the old bytes is brought to the new ones
/// once they are found to open as that very artifact). Each artifact is done under the
/// repository's lease, so backups and retention interleave with it.
/// `progress(done, total)` is called after each artifact.
pub async fn reencrypt(
    stores: &[Arc<dyn BackupStore>],
    clock: Arc<dyn bindspace_core::Clock>,
    secret: &SlotSecret,
    mut progress: impl FnMut(usize, usize),
) -> Result<Reencrypted> {
    use std::collections::HashSet;
    let raw = Repository::new(stores.to_vec(), clock.clone(), "bindspace key reencrypt")?;
    let names = raw.names().join(", ");
    let found = survey(stores).await?;
    let ring = found
        .keyring
        .ok_or_else(|| Error::Config(format!("the repository at {names} is not encrypted")))?;
    let keys = Arc::new(open_keys(&ring, secret, &names)?);
    let current = keys.current_epoch();
    let concrete: Vec<Arc<SealedStore>> = stores
        .iter()
        .map(|s| {
            Arc::new(SealedStore::new(s.clone(), keys.clone()).with_packing(found.compression))
        })
        .collect();
    let sealed: Vec<Arc<dyn BackupStore>> = concrete
        .iter()
        .map(|s| s.clone() as Arc<dyn BackupStore>)
        .collect();
    let repo = Repository::new(sealed.clone(), clock, "bindspace key reencrypt")?;
    let mut out = Reencrypted::default();
    let mut work = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        for kind in ALL_KINDS {
            for r in s.list(kind, 0, u64::MAX).await? {
                work.push((i, r));
            }
        }
    }
    // what is known to be sealed under the current epoch (found so, or put so now)
    let mut known: HashSet<(usize, ArtifactRef)> = HashSet::new();
    let total = work.len();
    let catalogs = repo.writable_catalogs().await?;
    let busy = |e: &bindspace_catalog::Error| e.kind() == bindspace_core::ErrorKind::Busy;
    for (n, (i, listed)) in work.into_iter().enumerate() {
        let here = stores[i].name();
        let stored = match stores[i].get(&listed).await {
            Ok(b) => b,
            Err(e) => {
                out.left
                    .push(format!("{} on {here}: not read: {e}", listed.id));
                progress(n + 1, total);
                continue;
            }
        };
        if !bindspace_crypt::is_sealed(&stored) {
            out.left.push(format!(
                "{} on {here}: stored unencrypted in an encrypted repository",
                listed.id
            ));
        } else if bindspace_crypt::Keys::epoch_of(&stored).ok() == Some(current) {
            out.current += 1;
            known.insert((i, listed));
            // an interrupted run may have re-sealed it without the catalog knowing
            let hex = bindspace_catalog::blake3_hex(&listed.blake3);
            if catalogs.get(i).is_some_and(|m| {
                m.entries
                    .iter()
                    .any(|e| e.artifact == listed.id && (e.blake3 != hex || e.size != listed.len))
            }) {
                let d = sealed[i].clone();
                match repo
                    .with_lease(async |repo| point_entries(repo, i, &listed, &d).await)
                    .await
                {
                    Ok(n) => out.entries_updated += n,
                    Err(e) => out.left.push(format!(
                        "{} on {here}: its catalog entry names other bytes, and those stored were not recorded: {e}",
                        listed.id
                    )),
                }
            }
        } else {
            match sealed[i].open_stored(&listed, stored).await {
                Err(e) => out.left.push(format!("{} on {here}: {e}", listed.id)),
                Ok(plain) => {
                    let d = sealed[i].clone();
                    // under the lease: retention may have deleted it since it was
                    // listed (putting it back would revive what was deleted)
                    let done = repo
                        .with_lease(async |repo| {
                            if !d.holds(&listed).await? {
                                return Ok(None);
                            }
                            let new = d.put(listed.id, plain).await?;
                            let n = point_entries(repo, i, &listed, &d).await?;
                            Ok(Some((new, n)))
                        })
                        .await;
                    match done {
                        // the store may have moved to another keyring meanwhile: only
                        // what it sealed under `current` counts as done
                        Ok(Some((new, entries))) if concrete[i].sealing_epoch() == Some(current) => {
                            out.resealed += 1;
                            out.entries_updated += entries;
                            known.insert((i, new));
                            tracing::info!(artifact = %listed.id, store = %here, "re-sealed under epoch {current}");
                        }
                        Ok(Some((_, entries))) => {
                            out.entries_updated += entries;
                            out.left.push(format!(
                                "{} on {here}: re-sealed under epoch {:?}, not {current} (its catalog holds another keyring: run `bindspace key reencrypt` again)",
                                listed.id,
                                concrete[i].sealing_epoch()
                            ));
                        }
                        Ok(None) => {}
                        Err(e) if busy(&e) => out.left.push(format!(
                            "{} on {here}: not re-sealed, the repository is busy ({e}): run `bindspace key reencrypt` again",
                            listed.id
                        )),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        progress(n + 1, total);
    }
    if !out.left.is_empty() {
        return Ok(out);
    }
    let old: Vec<u32> = ring
        .epochs()
        .into_iter()
        .filter(|e| !e.current && !e.retired)
        .map(|e| e.id)
        .collect();
    if old.is_empty() {
        return Ok(out);
    }
    // under the lease, so no backup or repair lands between the last look and the
    // retirement: everything listed now that is not known to be under the current
    // epoch is read again (a writer sealing with older keys, a repair that copied an
    // old copy back under the same name)
    let raw_stores = stores.to_vec();
    let mut retire_failed: Option<Error> = None;
    let (left, retired) = repo
        .with_lease(async |repo| {
            let mut left = Vec::new();
            for (i, s) in raw_stores.iter().enumerate() {
                for kind in ALL_KINDS {
                    for r in s.list(kind, 0, u64::MAX).await? {
                        if known.contains(&(i, r)) {
                            continue;
                        }
                        let epoch = match s.get(&r).await {
                            Ok(b) => bindspace_crypt::Keys::epoch_of(&b).ok(),
                            Err(_) => None,
                        };
                        if epoch != Some(current) {
                            left.push(format!(
                                "{} on {}: stored meanwhile, not under epoch {current}: run `bindspace key reencrypt` again",
                                r.id,
                                s.name()
                            ));
                        }
                    }
                }
            }
            if !left.is_empty() {
                return Ok((left, Vec::new()));
            }
            match change_keyring(repo, secret, |ring, keys| {
                for id in &old {
                    ring.retire(keys, *id)?;
                }
                Ok(())
            })
            .await
            {
                Ok(_) => Ok((left, old.clone())),
                Err(Error::Store(e)) => Err(e),
                Err(e) => {
                    retire_failed = Some(e);
                    Ok((left, Vec::new()))
                }
            }
        })
        .await?;
    if let Some(e) = retire_failed {
        return Err(e);
    }
    out.left = left;
    out.retired = retired;
    Ok(out)
}

/// Brings destination `i`'s catalog entries for the artifact `was` (any stored bytes
/// of it) to what the store holds now, when that opens as this very artifact (its
/// seal binds the artifact's identity and the repository). Returns how many changed.
async fn point_entries(
    repo: &Repository,
    i: usize,
    was: &ArtifactRef,
    store: &Arc<dyn BackupStore>,
) -> bindspace_catalog::Result<usize> {
    let (lo, hi) = was.id.versions();
    let Some(now) = store
        .list(was.id.kind(), lo, hi)
        .await?
        .into_iter()
        .find(|r| r.id == was.id)
    else {
        return Ok(0);
    };
    let catalogs = repo.writable_catalogs().await?;
    let hex = bindspace_catalog::blake3_hex(&now.blake3);
    let stale = |m: &bindspace_catalog::Manifest| {
        m.entries
            .iter()
            .filter(|e| e.artifact == now.id && (e.blake3 != hex || e.size != now.len))
            .count()
    };
    let n = catalogs.get(i).map_or(0, stale);
    if n == 0 {
        return Ok(0);
    }
    // the bytes there now open as this artifact under the repository's keys
    store.get(&now).await?;
    repo.update_catalog_at(i, |m| {
        for e in m.entries.iter_mut().filter(|e| e.artifact == now.id) {
            e.blake3.clone_from(&hex);
            e.size = now.len;
        }
        Ok(())
    })
    .await?;
    Ok(n)
}
