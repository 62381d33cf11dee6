//! Repair of catalogs that disagree: a backup or restore point one store's catalog
//! records and another's lacks (after a tier lost its data and was re-seeded, or a
//! commit that reached only some stores) is added where it is missing, its artifact
//! copied there first and checked on both ends. Only additions: records that conflict
//! (the same backup with different bytes) stay disagreements for a person to settle.

use std::collections::BTreeSet;

use bindspace_catalog::{BackupKind, Manifest, Repository};

use crate::checks;
use crate::report::{Finding, Report};
use crate::verify::{Seen, describe, recorded};

/// Adds to every store's catalog what the others record and it lacks (see the module
/// docs), then (when `recheck`: the run compared catalogs) recomputes the
/// disagreements on the catalogs as they are now. Runs under the repository's lease
/// (the caller holds it).
pub(crate) async fn sync_catalogs(
    repo: &Repository,
    seen: &[Option<Seen>],
    report: &mut Report,
    recheck: bool,
) {
    // only stores whose catalog is read intact take part (a damaged one is rebuilt first)
    let usable = |s: &&Seen| s.has_catalog && s.catalog_damage.is_none();
    let mut now: Vec<Option<Manifest>> = seen
        .iter()
        .map(|s| s.as_ref().filter(usable).map(|s| s.manifest.clone()))
        .collect();
    for i in 0..seen.len() {
        let Some(s) = seen[i].as_ref().filter(usable) else {
            continue;
        };
        let mut add = Manifest::default();
        let mut healed = Vec::new();
        let mut taken = BTreeSet::new();
        for (j, o) in seen.iter().enumerate() {
            let Some(o) = o.as_ref().filter(|o| j != i && usable(o)) else {
                continue;
            };
            for e in &o.manifest.entries {
                if e.kind == BackupKind::Wal
                    || s.manifest.entries.iter().any(|x| x.id == e.id)
                    || !taken.insert(e.id.clone())
                {
                    continue;
                }
                let d = describe(&e.artifact);
                match copy_artifact(s, o, e).await {
                    Ok(copied) => {
                        add.entries.push(e.clone());
                        add_timeline(&mut add, &o.manifest, e.timeline);
                        healed.push(format!(
                            "backup {} ({d}{}) recorded from {}'s catalog",
                            e.id,
                            if copied { ", copied" } else { "" },
                            o.store.name()
                        ));
                    }
                    Err(why) => {
                        taken.remove(&e.id); // another store's copy may do
                        report.stores[i].unrepaired.push(Finding {
                            artifact: format!("backup {} ({d})", e.id),
                            detail: format!("not added from {}: {why}", o.store.name()),
                        });
                    }
                }
            }
            // an expiry one store records holds everywhere (restores on that history
            // are refused with why)
            for x in &o.manifest.expired {
                if !s.manifest.expired.iter().any(|y| y.id == x.id)
                    && !add.expired.iter().any(|y| y.id == x.id)
                {
                    add.expired.push(x.clone());
                    healed.push(format!(
                        "the expiry of timeline {} recorded from {}'s catalog",
                        x.id,
                        o.store.name()
                    ));
                }
            }
            // a takeover one store records fences the old writer everywhere
            for x in &o.manifest.superseded {
                if s.manifest.supersession(x.id).is_none()
                    && !add.superseded.iter().any(|y| y.id == x.id)
                {
                    add.superseded.push(x.clone());
                    healed.push(format!(
                        "the takeover of timeline {} recorded from {}'s catalog",
                        x.id,
                        o.store.name()
                    ));
                }
            }
            // an encrypted repository's keyring (or its newer revision) goes where it
            // is missing: without it this store alone opens nothing it holds
            if let Some(k) = &o.manifest.keyring
                && bindspace_catalog::keyring_is_newer(s.manifest.keyring.as_deref(), k)
                && bindspace_catalog::keyring_is_newer(add.keyring.as_deref(), k)
            {
                add.keyring = Some(k.clone());
                healed.push(format!(
                    "the repository's keyring recorded from {}'s catalog",
                    o.store.name()
                ));
            }
            if o.manifest.compression.is_some()
                && s.manifest.compression.is_none()
                && add.compression.is_none()
            {
                add.compression.clone_from(&o.manifest.compression);
                healed.push(format!(
                    "compression ({}) recorded from {}'s catalog",
                    o.manifest.compression.as_deref().unwrap_or_default(),
                    o.store.name()
                ));
            }
            for p in &o.manifest.restore_points {
                if s.manifest.restore_points.iter().any(|x| x.name == p.name)
                    || add.restore_points.iter().any(|x| x.name == p.name)
                {
                    continue;
                }
                add.restore_points.push(p.clone());
                add_timeline(&mut add, &o.manifest, p.timeline);
                healed.push(format!(
                    "restore point {} recorded from {}'s catalog",
                    p.name,
                    o.store.name()
                ));
            }
        }
        if healed.is_empty() {
            continue;
        }
        let res = repo
            .update_catalog_at(i, |m| {
                m.merge_from(&add);
                Ok(())
            })
            .await;
        match res {
            Ok(()) => {
                tracing::info!(store = %s.store.name(), added = healed.len(), "catalog brought up to the others");
                if let Some(m) = now[i].as_mut() {
                    m.merge_from(&add);
                }
                report.stores[i].repaired.extend(healed);
            }
            Err(e) => report.stores[i].unrepaired.push(Finding {
                artifact: "catalog".into(),
                detail: format!("what the other catalogs record was not added: {e}"),
            }),
        }
    }
    if !recheck {
        return;
    }
    // the disagreements left: those among the catalogs as they are now
    let names: Vec<String> = seen
        .iter()
        .map(|s| s.as_ref().map(|s| s.store.name()).unwrap_or_default())
        .collect();
    let live: Vec<(&str, &Manifest)> = names
        .iter()
        .zip(&now)
        .filter_map(|(n, m)| Some((n.as_str(), m.as_ref()?)))
        .collect();
    report.disagreements.clear();
    if let Some(((first, fm), rest)) = live.split_first() {
        for (other, om) in rest {
            checks::agree(first, fm, other, om, report);
        }
    }
}

/// Makes sure `s` holds the artifact of `e` (which `o` records): copied from `o` when
/// `s` does not list it, checked against the record on both ends. `Ok(true)`: copied.
async fn copy_artifact(
    s: &Seen,
    o: &Seen,
    e: &bindspace_catalog::BackupEntry,
) -> Result<bool, String> {
    let r = recorded(e).ok_or_else(|| format!("its checksum {:?} does not parse", e.blake3))?;
    if s.listed.get(&e.artifact) == Some(&r) {
        return Ok(false);
    }
    let bytes = o.store.get_stored(&r).await.map_err(|e| e.to_string())?;
    let plain = o
        .store
        .open_stored(&r, bytes.clone())
        .await
        .map_err(|e| e.to_string())?;
    checks::decode(&e.artifact, &plain).map_err(|d| format!("its copy does not decode: {d}"))?;
    let put = s
        .store
        .put_stored(e.artifact, bytes)
        .await
        .map_err(|e| e.to_string())?;
    if put != r {
        return Err("the copy was stored with another checksum".into());
    }
    s.store
        .get(&r)
        .await
        .map_err(|e| format!("the copy does not read back intact: {e}"))?;
    Ok(true)
}

/// Adds timeline `t`'s record (from `from`) to `add` if it is not there yet.
fn add_timeline(add: &mut Manifest, from: &Manifest, t: bindspace_catalog::TimelineId) {
    if add.timelines.iter().any(|x| x.id == t) {
        return;
    }
    if let Some(rec) = from.timelines.iter().find(|x| x.id == t) {
        add.timelines.push(rec.clone());
    }
}
