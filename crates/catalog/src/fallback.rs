//! Reading a store's catalog past a damaged newest generation, and merging catalogs
//! into one when a repair rebuilds it.
//!
//! A store that keeps older generations (a local directory, S3: the last 16) is read
//! from the newest one that decodes; the damage is reported with what was used
//! instead, never silently. A rebuild ([`Manifest::merge_from`]) only adds: what an
//! intact generation or another store's catalog names is kept.

use crate::{BackupStore, Error, Manifest, Result};

/// A store's catalog as read: the newest intact generation, and the damage that made
/// the read fall back, if any.
#[derive(Clone, Debug)]
pub struct CatalogRead {
    /// The catalog.
    pub manifest: Manifest,
    /// Its generation.
    pub generation: u64,
    /// The store's newest generation (what a commit or repair goes over): the same as
    /// `generation` unless the newest is damaged.
    pub newest: u64,
    /// Why the newest generation could not be used (`None`: it was).
    pub damage: Option<String>,
}

impl CatalogRead {
    /// Whether the read fell back past a damaged generation.
    pub fn fell_back(&self) -> bool {
        self.damage.is_some()
    }
}

/// Reads `store`'s catalog: the newest generation, or when its bytes are damaged the
/// newest older generation that decodes, with a warning. `Ok(None)`: no catalog.
/// Fails with the newest generation's error when no kept generation decodes (or the
/// store keeps none), and with any error that is not damage (a store that is down).
pub async fn read_catalog(store: &dyn BackupStore) -> Result<Option<CatalogRead>> {
    // a commit landing between the reads below would make a good newest generation
    // look damaged: the fallback counts only when the newest did not move meanwhile
    let mut tries = 0;
    loop {
        match read_once(store).await? {
            Some(r) if r.fell_back() && tries < 3 => {
                if store.manifest_generation().await? == r.newest {
                    return Ok(Some(r));
                }
                tries += 1;
            }
            r => return Ok(r),
        }
    }
}

async fn read_once(store: &dyn BackupStore) -> Result<Option<CatalogRead>> {
    let damage = match store.read_manifest().await {
        Ok(found) => {
            return Ok(found.map(|(generation, manifest)| CatalogRead {
                manifest,
                generation,
                newest: generation,
                damage: None,
            }));
        }
        Err(e) if e.is_corruption() => e,
        Err(e) => return Err(e),
    };
    let newest = store.manifest_generation().await?;
    for g in store.older_manifests().await? {
        if g >= newest {
            continue; // committed since the newest was read
        }
        match store.read_manifest_at(g).await {
            Ok(manifest) => {
                tracing::warn!(
                    store = %store.name(), damaged = newest, used = g, error = %damage,
                    "catalog: the newest generation is damaged; reading an older one"
                );
                return Ok(Some(CatalogRead {
                    manifest,
                    generation: g,
                    newest,
                    damage: Some(damage.to_string()),
                }));
            }
            // damaged too, or pruned by a commit meanwhile: the next older one
            Err(e) if e.is_corruption() || matches!(e, Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(damage)
}

/// Reads `store`'s catalog for a write: a damaged newest generation (whether an older
/// one decodes or, as in Redis and PostgreSQL which keep one, none does) refuses with
/// [`Error::CatalogDamaged`], naming the repair; other errors pass through.
pub(crate) async fn read_for_write(store: &dyn BackupStore) -> Result<Option<(u64, Manifest)>> {
    match read_catalog(store).await {
        Ok(Some(r)) if r.fell_back() => Err(damaged(store, &r)),
        Ok(r) => Ok(r.map(|r| (r.generation, r.manifest))),
        Err(e) if e.is_corruption() => Err(Error::CatalogDamaged {
            store: store.name(),
            detail: e.to_string(),
            fallback: "another store's catalog (this store keeps no older generation that decodes)"
                .into(),
        }),
        Err(e) => Err(e),
    }
}

/// The error a write gets from a store whose newest catalog is damaged.
pub(crate) fn damaged(store: &dyn BackupStore, read: &CatalogRead) -> Error {
    Error::CatalogDamaged {
        store: store.name(),
        detail: read.damage.clone().unwrap_or_default(),
        fallback: format!("generation {}", read.generation),
    }
}

impl Manifest {
    /// Adds what `other` names and this catalog lacks: its repository id (when this has
    /// none), timelines, expired and superseded timelines, backups (by id) and restore
    /// points (by name). Nothing here is removed or changed; returns how many records were added.
    pub fn merge_from(&mut self, other: &Manifest) -> usize {
        let mut added = 0;
        if self.repository_id.is_none() && other.repository_id.is_some() {
            self.repository_id = other.repository_id.clone();
            added += 1;
        }
        // an encrypted repository's keyring travels with its catalog (a copy without it
        // could not open its artifacts); of two copies the newer revision holds (a key
        // change that reached only some stores)
        if let Some(theirs) = &other.keyring
            && crate::keyring_is_newer(self.keyring.as_deref(), theirs)
        {
            self.keyring = Some(theirs.clone());
            added += 1;
        }
        // compression switched on anywhere holds everywhere (a build that cannot
        // unpack must refuse every copy)
        if self.compression.is_none() && other.compression.is_some() {
            self.compression.clone_from(&other.compression);
            added += 1;
        }
        // so are format-3 deltas (a build that cannot read them must refuse every copy)
        if !self.compact_deltas && other.compact_deltas {
            self.compact_deltas = true;
            added += 1;
        }
        for t in &other.timelines {
            if !self.timelines.iter().any(|x| x.id == t.id) {
                self.timelines.push(t.clone());
                added += 1;
            }
        }
        self.timelines.sort_by_key(|t| t.id);
        for x in &other.expired {
            if !self.expired.iter().any(|y| y.id == x.id) {
                self.expired.push(x.clone());
                added += 1;
            }
        }
        for e in &other.entries {
            if !self.entries.iter().any(|x| x.id == e.id) {
                self.entries.push(e.clone());
                added += 1;
            }
        }
        // oldest first, as a writer keeps them (stable: ties keep their order)
        self.entries.sort_by_key(|e| e.end_us);
        for p in &other.restore_points {
            if !self.restore_points.iter().any(|x| x.name == p.name) {
                self.restore_points.push(p.clone());
                added += 1;
            }
        }
        for x in &other.superseded {
            if !self.superseded.iter().any(|y| y.id == x.id) {
                self.superseded.push(x.clone());
                added += 1;
            }
        }
        self.layout = self.layout.max(other.layout);
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArtifactId, BackupEntry, BackupKind, BackupStatus, RestorePoint};

    fn entry(id: &str, v: u64) -> BackupEntry {
        BackupEntry {
            id: id.into(),
            kind: BackupKind::Full,
            parent: None,
            from_version: v,
            to_version: v,
            start_us: v,
            end_us: v,
            schema: bindspace_core::SchemaVersion::default().into(),
            size: 1,
            blake3: String::new(),
            artifact: ArtifactId::snapshot(v),
            locations: vec![],
            status: BackupStatus::Complete,
            timeline: 1,
            root: None,
            format: None,
        }
    }

    fn point(name: &str, v: u64) -> RestorePoint {
        RestorePoint {
            name: name.into(),
            version: v,
            created_us: v,
            guaranteed: false,
            timeline: 1,
            root: None,
        }
    }

    #[test]
    fn merge_adds_only_what_is_missing_and_keeps_order() {
        let mut a = Manifest::default();
        a.entries.push(entry("f20", 20));
        a.restore_points.push(point("p", 20));
        let mut b = Manifest {
            repository_id: Some("r".into()),
            ..Manifest::default()
        };
        b.entries.push(entry("f10", 10));
        b.entries.push(entry("f20", 99)); // same id: the first catalog's record stays
        b.restore_points.push(point("p", 99));
        b.restore_points.push(point("q", 10));
        assert_eq!(a.merge_from(&b), 3);
        assert_eq!(a.repository_id.as_deref(), Some("r"));
        let ids: Vec<_> = a
            .entries
            .iter()
            .map(|e| (e.id.as_str(), e.to_version))
            .collect();
        assert_eq!(ids, [("f10", 10), ("f20", 20)]);
        assert_eq!(a.restore_points.len(), 2);
        assert_eq!(a.restore_points[0].version, 20);
        assert_eq!(a.merge_from(&b), 0, "merging twice adds nothing");
    }
}
