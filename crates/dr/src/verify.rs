//! The verification run: read back what every store holds (least recently verified
//! first, within a time budget), check it at the level asked, compare the catalogs,
//! repair from another store when asked, and record what was found intact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bindspace_catalog::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupKind, BackupStore, Manifest, Repository,
    VerifyLevel, VerifyLog, parse_blake3_hex,
};
use bindspace_core::Clock;

use crate::report::{Finding, Report, StoreReport};
use crate::{Result, checks, deep};

/// What to verify and how.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// How thoroughly.
    pub level: VerifyLevel,
    /// Stop reading new artifacts after this long (least recently verified are read
    /// first, so repeated runs cover everything); `None`: no limit.
    pub max_duration: Option<Duration>,
    /// Put back missing or damaged copies from another store that holds them intact.
    pub repair: bool,
    /// Re-read an artifact verified at this level once this long has passed.
    pub recheck: Duration,
    /// Deep level: random points in time restored besides restore points and backups.
    pub deep_samples: usize,
    /// Seed of that sample.
    pub seed: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            level: VerifyLevel::Checksum,
            max_duration: None,
            repair: false,
            recheck: Duration::from_secs(30 * 86_400),
            deep_samples: 3,
            seed: 0,
        }
    }
}

/// One store as read at the start of the run.
pub(crate) struct Seen {
    pub store: Arc<dyn BackupStore>,
    pub manifest: Manifest,
    /// Whether the store has a readable catalog (its newest generation, or an older
    /// intact one when `catalog_damage` says the newest is damaged).
    pub has_catalog: bool,
    /// Why the store's newest catalog generation could not be used.
    pub catalog_damage: Option<String>,
    /// The store's newest catalog generation as read (damaged or not): a rebuild
    /// commits over exactly this one, so a store that moved on meanwhile (another
    /// repair, a commit) conflicts instead of being overwritten.
    pub newest: u64,
    /// Everything it lists, by id.
    pub listed: BTreeMap<ArtifactId, ArtifactRef>,
}

impl Seen {
    /// Whether its catalog needs rebuilding: damaged, or lost while artifacts remain.
    fn catalog_broken(&self) -> bool {
        self.catalog_damage.is_some() || (!self.has_catalog && !self.listed.is_empty())
    }
}

/// Describes an artifact for people.
pub(crate) fn describe(id: &ArtifactId) -> String {
    match id.timeline() {
        1 => id.to_string(),
        t => format!("{id} on timeline {t}"),
    }
}

/// The reference a catalog entry records for its artifact.
pub(crate) fn recorded(e: &bindspace_catalog::BackupEntry) -> Option<ArtifactRef> {
    Some(ArtifactRef {
        id: e.artifact,
        len: e.size,
        blake3: parse_blake3_hex(&e.blake3)?,
    })
}

async fn look(store: &Arc<dyn BackupStore>) -> bindspace_catalog::Result<Seen> {
    let mut listed = BTreeMap::new();
    for kind in [
        ArtifactKind::Snapshot,
        ArtifactKind::Delta,
        ArtifactKind::WalSegment,
    ] {
        for r in store.list(kind, 0, u64::MAX).await? {
            listed.insert(r.id, r);
        }
    }
    // past a damaged newest generation to the newest intact one; a catalog with no
    // intact generation is a lost one (damage, with the reason)
    let (manifest, has_catalog, catalog_damage, newest) =
        match bindspace_catalog::read_catalog(store.as_ref()).await {
            Ok(Some(r)) => (r.manifest, true, r.damage, r.newest),
            Ok(None) => (Manifest::default(), false, None, 0),
            Err(e) if e.is_corruption() => (
                Manifest::default(),
                false,
                Some(e.to_string()),
                store.manifest_generation().await?,
            ),
            Err(e) => return Err(e),
        };
    Ok(Seen {
        store: store.clone(),
        manifest,
        has_catalog,
        catalog_damage,
        newest,
        listed,
    })
}

/// Rebuilds the catalog of every store whose catalog is damaged or lost, under the
/// repository's lease: its newest intact generation (if any) merged with every other
/// store's catalog, without the backups whose artifacts no store holds any more
/// (retention removed them in a generation that is now unreadable). Nothing any
/// intact catalog names is lost. Each rebuilt store is read again.
async fn rebuild_catalogs(
    repo: &Repository,
    looked: &mut [bindspace_catalog::Result<Seen>],
    reports: &mut [StoreReport],
) {
    let broken: Vec<usize> = (0..looked.len())
        .filter(|&i| looked[i].as_ref().is_ok_and(Seen::catalog_broken))
        .collect();
    if broken.is_empty() {
        return;
    }
    let leased = repo
        .with_lease(async |repo| {
            for &i in &broken {
                let Ok(s) = &looked[i] else { continue };
                let mut m = s.manifest.clone();
                let mut from = Vec::new();
                if s.has_catalog {
                    from.push("its newest intact generation".to_owned());
                }
                for o in looked.iter().flatten() {
                    if o.store.name() != s.store.name() && o.has_catalog {
                        let added = m.merge_from(&o.manifest);
                        from.push(format!("{} ({added} records)", o.store.name()));
                    }
                }
                if from.is_empty() {
                    reports[i].unrepaired.push(Finding {
                        artifact: "catalog".into(),
                        detail: "not rebuilt: no intact generation is kept and no other store has a catalog".into(),
                    });
                    continue;
                }
                // a backup is left out only when every store was listed and none
                // holds its artifact (a store that is down may hold the only copy)
                let all_listed = looked.iter().all(|o| o.is_ok());
                let held = |id: &ArtifactId| looked.iter().flatten().any(|o| o.listed.contains_key(id));
                let before = m.entries.len();
                if all_listed {
                    m.entries
                        .retain(|e| e.kind == BackupKind::Wal || held(&e.artifact));
                }
                let dropped = before - m.entries.len();
                let store = &s.store;
                // over the generation seen damaged: a store that moved on meanwhile
                // (a concurrent repair) conflicts rather than being overwritten
                let g = repo.replace_catalog_at(i, s.newest, &m).await?;
                let mut how = format!(
                    "generation {g} from {}: {} backups, {} restore points",
                    from.join(" and "),
                    m.entries.len(),
                    m.restore_points.len()
                );
                // every commit reaches every store: another store's intact newest
                // generation names what this one's damaged generation did; when no
                // store has one, what only the damaged generations named (the last
                // restore point or backup made) is lost, and that is said, not
                // called repaired
                let covered = looked.iter().flatten().any(|o| {
                    o.store.name() != store.name() && o.has_catalog && o.catalog_damage.is_none()
                });
                // evidence either way: artifacts the rebuilt catalog names no backup for
                // (a commit that reached only this store before its damage, or an
                // interrupted backup: kept, listed)
                let orphans: Vec<String> = s
                    .listed
                    .keys()
                    .filter(|id| !matches!(id, ArtifactId::WalSegment { .. }))
                    .filter(|id| !m.entries.iter().any(|e| &e.artifact == *id))
                    .map(describe)
                    .collect();
                if s.catalog_damage.is_some() && (!covered || !orphans.is_empty()) {
                    let mut detail = format!(
                        "rebuilt, but what only its damaged generation {} named cannot be recovered",
                        s.newest
                    );
                    if covered {
                        detail.push_str(" (another store's catalog is intact but lacks a backup this store holds)");
                    } else {
                        detail.push_str(" (no other store has an intact catalog to compare: a restore point or backup made last may be lost)");
                    }
                    if !orphans.is_empty() {
                        detail.push_str(&format!(
                            "; artifacts no backup names now, kept: {}",
                            orphans.join(", ")
                        ));
                    }
                    reports[i].unrepaired.push(Finding {
                        artifact: "catalog".into(),
                        detail,
                    });
                }
                if dropped > 0 {
                    how.push_str(&format!(
                        "; {dropped} backups left out: no store holds their artifacts"
                    ));
                }
                tracing::info!(store = %store.name(), how = %how, "catalog rebuilt");
                reports[i].catalog_rebuilt = Some(how);
            }
            Ok(())
        })
        .await;
    if let Err(e) = leased {
        tracing::warn!(error = %e, "catalog repair not run");
        for &i in &broken {
            if reports[i].catalog_rebuilt.is_none() {
                reports[i].unrepaired.push(Finding {
                    artifact: "catalog".into(),
                    detail: format!("not rebuilt: {e}"),
                });
            }
        }
    }
    for &i in &broken {
        if reports[i].catalog_rebuilt.is_some() {
            let store = looked[i].as_ref().map(|s| s.store.clone());
            if let Ok(store) = store {
                looked[i] = look(&store).await;
            }
        }
    }
}

/// Verifies every store of `repo` at `opts.level`; see the crate docs. Damage is a
/// finding in the report; an error means the run itself could not proceed.
pub async fn verify(repo: &Repository, clock: &dyn Clock, opts: &VerifyOptions) -> Result<Report> {
    verify_paced(repo, clock, opts, &mut |_| true).await
}

/// [`verify`], paced: `pace` is called after each artifact read (and each deep
/// restore) with the bytes asked for so far in this run, and may wait (a rate limit)
/// before it returns; `false` stops the reading there (the run still records and
/// reports what it read; `not_reached` counts the rest). The engine's background
/// verify paces itself this way, on its job thread.
pub async fn verify_paced(
    repo: &Repository,
    clock: &dyn Clock,
    opts: &VerifyOptions,
    pace: &mut dyn FnMut(u64) -> bool,
) -> Result<Report> {
    let started_us = clock.now_us();
    let deadline = opts
        .max_duration
        .map(|d| started_us.saturating_add(d.as_micros() as u64));
    let recheck_us = opts.recheck.as_micros() as u64;
    // a deep run's reads are standard-level checks; deep is what restored
    let read_level = opts.level.min(VerifyLevel::Standard);
    let stores = repo.destinations();
    let mut reports: Vec<StoreReport> = stores
        .iter()
        .map(|s| StoreReport {
            store: s.name(),
            ..StoreReport::default()
        })
        .collect();
    let mut looked = Vec::with_capacity(stores.len());
    for s in stores {
        looked.push(look(s).await);
    }
    for (i, x) in looked.iter().enumerate() {
        if let Ok(x) = x
            && x.catalog_broken()
        {
            reports[i].catalog = Some(match &x.catalog_damage {
                Some(d) if x.has_catalog => format!("{d}; read its newest intact generation"),
                Some(d) => format!("{d}; no intact generation is kept"),
                None => "lost: the store holds artifacts but no catalog".into(),
            });
        }
    }
    if opts.repair {
        rebuild_catalogs(repo, &mut looked, &mut reports).await;
    }
    let mut seen: Vec<Option<Seen>> = Vec::with_capacity(stores.len());
    for (i, (s, x)) in stores.iter().zip(looked).enumerate() {
        match x {
            Ok(x) if !x.has_catalog && !x.listed.is_empty() => {
                // artifacts without a catalog: the catalog was lost, not an empty store
                reports[i].unavailable = Some(format!(
                    "the store holds {} artifacts but no catalog (lost or unreadable); nothing was checked or recorded there",
                    x.listed.len()
                ));
                seen.push(None);
            }
            Ok(x) => seen.push(Some(x)),
            Err(e) => {
                tracing::warn!(store = %s.name(), error = %e, "store not checked");
                reports[i].unavailable = Some(e.to_string());
                seen.push(None);
            }
        }
    }
    if seen.iter().all(Option::is_none) {
        return Err(crate::Error::NoStore(
            reports
                .iter()
                .filter_map(|r| r.unavailable.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }

    // what each store should hold, and the work: (last verified, store, reference)
    let mut work: Vec<(Option<u64>, usize, ArtifactRef)> = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let Some(s) = s else { continue };
        let rep = &mut reports[i];
        let mut named = BTreeSet::new();
        for e in s
            .manifest
            .entries
            .iter()
            .filter(|e| e.kind != BackupKind::Wal)
        {
            named.insert(e.artifact);
            let Some(want) = recorded(e) else {
                // the catalog entry is what is broken: no copy of bytes mends it
                rep.unreadable.push(Finding {
                    artifact: describe(&e.artifact),
                    detail: format!("the catalog records an unreadable blake3 {:?}", e.blake3),
                });
                continue;
            };
            match s.listed.get(&e.artifact) {
                None => rep.missing.push(Finding {
                    artifact: describe(&e.artifact),
                    detail: format!("backup {} names it; the store does not hold it", e.id),
                }),
                Some(have) if *have != want => rep.damaged.push(Finding {
                    artifact: describe(&e.artifact),
                    detail: format!(
                        "the store holds a different copy ({} bytes, blake3 {}) from the one backup {} recorded ({} bytes, blake3 {})",
                        have.len,
                        bindspace_catalog::blake3_hex(&have.blake3),
                        e.id,
                        want.len,
                        e.blake3
                    ),
                }),
                Some(_) => work.push((s.manifest.verified.last(&want, read_level), i, want)),
            }
        }
        // WAL segments another store archived and this one lacks (the archiver
        // writes each segment to every store), where this store's histories still
        // need them (what its retention swept below its oldest full is not missing)
        let floors = checks::wal_floors(&s.manifest);
        let mut missing_wal = BTreeSet::new();
        for o in seen.iter().flatten() {
            for id in o.listed.keys().filter(|id| {
                id.kind() == ArtifactKind::WalSegment
                    && !s.listed.contains_key(*id)
                    && checks::needs_wal(&floors, id)
            }) {
                let f = Finding {
                    artifact: describe(id),
                    detail: format!(
                        "{} archived it; this store does not hold it",
                        o.store.name()
                    ),
                };
                if missing_wal.insert(*id) {
                    rep.missing.push(f);
                }
            }
        }
        for r in s.listed.values() {
            match r.id.kind() {
                ArtifactKind::WalSegment => {
                    work.push((s.manifest.verified.last(r, read_level), i, *r))
                }
                _ if !named.contains(&r.id) => rep.orphans.push(describe(&r.id)),
                _ => {}
            }
        }
    }
    // least recently verified first (never verified before anything)
    work.sort_by_key(|(last, i, r)| (*last, *i, r.id));
    let mut intact: Vec<Vec<ArtifactRef>> = vec![Vec::new(); stores.len()];
    // an encrypted repository (a catalog holds its keyring): a plaintext object is damage
    let encrypted = seen.iter().flatten().any(|s| s.manifest.keyring.is_some());
    let mut reached = 0;
    // bytes asked for so far (a read that failed counts: it used the link too)
    let mut attempted = 0u64;
    let mut stopped = false;
    for (last, i, r) in &work {
        if last.is_some_and(|t| started_us.saturating_sub(t) < recheck_us) {
            reports[*i].fresh += 1;
            reached += 1;
            continue;
        }
        if deadline.is_some_and(|d| clock.now_us() >= d) {
            break;
        }
        if stopped {
            break;
        }
        reached += 1;
        let store = &stores[*i];
        let rep = &mut reports[*i];
        // the stored bytes against the catalog's checksum (no key needed), then, above
        // the checksum level, opened (an encrypted store's) and decoded
        let read = match store.get_stored(r).await {
            Ok(stored) if encrypted && !bindspace_catalog::is_sealed(&stored) => {
                Err(bindspace_catalog::Error::Corrupt {
                    store: store.name(),
                    artifact: r.id,
                    detail: "stored unencrypted in an encrypted repository (its keyring is in the catalog): every object there must be sealed".into(),
                })
            }
            Ok(stored) if opts.level >= VerifyLevel::Standard => {
                let len = stored.len();
                store.open_stored(r, stored).await.map(|b| (len, Some(b)))
            }
            Ok(stored) => Ok((stored.len(), None)),
            Err(e) => Err(e),
        };
        match read {
            Ok((len, opened)) => {
                rep.bytes_read += len as u64;
                let decoded = match &opened {
                    Some(bytes) => checks::decode(&r.id, bytes),
                    None => Ok(()),
                };
                match decoded {
                    Ok(()) => {
                        rep.checked += 1;
                        intact[*i].push(*r);
                    }
                    Err(detail) => rep.damaged.push(Finding {
                        artifact: describe(&r.id),
                        detail,
                    }),
                }
            }
            Err(e) => {
                let f = Finding {
                    artifact: describe(&r.id),
                    detail: e.to_string(),
                };
                match e.kind() {
                    bindspace_core::ErrorKind::Corrupt => rep.damaged.push(f),
                    bindspace_core::ErrorKind::NotRestorable => rep.missing.push(f),
                    _ => rep.unreadable.push(f),
                }
            }
        }
        attempted = attempted.saturating_add(r.len);
        if !pace(attempted) {
            stopped = true;
        }
    }
    let not_reached = work.len() - reached;

    let mut report = Report {
        level: opts.level,
        started_us,
        finished_us: started_us,
        stores: reports,
        chains: Vec::new(),
        wal_gaps: Vec::new(),
        disagreements: Vec::new(),
        schemas: Vec::new(),
        deep: Vec::new(),
        not_reached,
    };
    if opts.level >= VerifyLevel::Standard {
        checks::repository(&seen, &mut report);
    }
    if opts.repair {
        // under the repository's lease: a retention run or backup deleting while a
        // repair puts copies back would leave what it removed restored as orphans
        let leased = repo
            .with_lease(async |repo| {
                repair(&seen, &mut report, &mut intact).await;
                // catalogs that lack what another records (a re-seeded tier) are
                // brought up to it; the disagreements are then those left
                let agree_checked = opts.level >= VerifyLevel::Standard;
                crate::sync::sync_catalogs(repo, &seen, &mut report, agree_checked).await;
                Ok(())
            })
            .await;
        if let Err(e) = leased {
            tracing::warn!(error = %e, "repair not run");
            for s in report.stores.iter_mut() {
                let broken: Vec<String> = s
                    .missing
                    .iter()
                    .chain(&s.damaged)
                    .map(|f| f.artifact.clone())
                    .filter(|a| !s.repaired.iter().any(|r| r.starts_with(a.as_str())))
                    .collect();
                for artifact in broken {
                    s.unrepaired.push(Finding {
                        artifact,
                        detail: format!("not repaired: {e}"),
                    });
                }
            }
        }
        // which WAL holes the copies filled: the stores' archives as they are now
        for g in report.wal_gaps.iter_mut() {
            let Some(s) = seen.iter().flatten().find(|s| s.store.name() == g.store) else {
                continue;
            };
            if let Ok(now) = look(&s.store).await {
                g.repaired = checks::covers(&now, g.timeline, g.first, g.last);
            }
        }
    }
    let mut deep_ok: Vec<ArtifactId> = Vec::new();
    // the restores once every read is done (a run cut short by its budget or its pace
    // leaves them to the run that reaches everything)
    if opts.level >= VerifyLevel::Deep && report.not_reached == 0 && !stopped {
        deep_ok = deep::run(stores, &seen, opts, &mut report, &mut |b| {
            pace(attempted.saturating_add(b))
        })
        .await;
    }
    record(
        repo,
        &seen,
        &intact,
        &deep_ok,
        opts.level,
        started_us,
        &mut report,
    )
    .await;
    report.finished_us = clock.now_us();
    tracing::info!(level = %opts.level, outcome = ?report.outcome(), "verify finished");
    Ok(report)
}

/// Puts back every missing or damaged copy that another store holds intact, checking
/// it on both ends.
async fn repair(seen: &[Option<Seen>], report: &mut Report, intact: &mut [Vec<ArtifactRef>]) {
    for i in 0..seen.len() {
        let Some(s) = &seen[i] else { continue };
        let broken: Vec<ArtifactId> = seen
            .iter()
            .flatten()
            .flat_map(|o| {
                o.manifest
                    .entries
                    .iter()
                    .filter(|e| e.kind != BackupKind::Wal)
                    .map(|e| e.artifact)
                    .chain(o.listed.keys().copied())
            })
            .filter(|id| {
                let d = describe(id);
                let r = &report.stores[i];
                (r.missing.iter().any(|f| f.artifact == d)
                    || r.damaged.iter().any(|f| f.artifact == d))
                    && !r.repaired.contains(&d)
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in broken {
            let want = s
                .manifest
                .entries
                .iter()
                .find(|e| e.artifact == id && e.kind != BackupKind::Wal)
                .and_then(recorded);
            let mut healed = None;
            // why each other store's copy did not heal it (said when none did)
            let mut why = Vec::new();
            for (j, o) in seen.iter().enumerate() {
                let Some(o) = o.as_ref().filter(|_| j != i) else {
                    continue;
                };
                // the catalog's record where there is one, else the other store's own
                let Some(r) = want.or_else(|| o.listed.get(&id).copied()) else {
                    continue;
                };
                let bytes = match o.store.get_stored(&r).await {
                    Ok(b) => b,
                    Err(e) => {
                        why.push(format!("{}: {e}", o.store.name()));
                        continue;
                    }
                };
                let plain = match o.store.open_stored(&r, bytes.clone()).await {
                    Ok(p) => p,
                    Err(e) => {
                        why.push(format!("{}: {e}", o.store.name()));
                        continue;
                    }
                };
                // a copy whose checksum matches but which does not decode heals nothing
                if let Err(e) = checks::decode(&id, &plain) {
                    why.push(format!("{}'s copy does not decode: {e}", o.store.name()));
                    continue;
                }
                match s.store.put_stored(id, bytes).await {
                    Ok(put) if put == r => {}
                    Ok(put) => {
                        why.push(format!(
                            "the copy from {} was stored as {} bytes with another checksum",
                            o.store.name(),
                            put.len
                        ));
                        continue;
                    }
                    Err(e) => {
                        why.push(format!(
                            "putting back the copy from {}: {e}",
                            o.store.name()
                        ));
                        continue;
                    }
                }
                match s.store.get(&r).await {
                    Ok(_) => {
                        healed = Some((o.store.name(), r));
                        break;
                    }
                    Err(e) => why.push(format!(
                        "the copy from {} was put back but does not read back intact: {e}",
                        o.store.name()
                    )),
                }
            }
            let d = describe(&id);
            match healed {
                Some((from, r)) => {
                    tracing::info!(store = %s.store.name(), artifact = %d, from = %from, "repaired");
                    report.stores[i].repaired.push(format!("{d} (from {from})"));
                    intact[i].push(r);
                }
                None => report.stores[i].unrepaired.push(Finding {
                    artifact: d,
                    detail: if why.is_empty() {
                        "no other store holds it".into()
                    } else {
                        why.join("; ")
                    },
                }),
            }
        }
    }
}

/// Records in each store's catalog what was found intact there. A store whose
/// catalog cannot take the record keeps the findings in the report (only the record
/// of checks is lost: those artifacts are read again next time).
async fn record(
    repo: &Repository,
    seen: &[Option<Seen>],
    intact: &[Vec<ArtifactRef>],
    deep_ok: &[ArtifactId],
    level: VerifyLevel,
    at_us: u64,
    report: &mut Report,
) {
    let deep_ok: BTreeSet<ArtifactId> = deep_ok.iter().copied().collect();
    for (i, s) in seen.iter().enumerate() {
        // a damaged catalog takes no commit until a repair rebuilds it
        if s.as_ref().is_none_or(|s| s.catalog_damage.is_some()) || intact[i].is_empty() {
            continue;
        }
        let refs = &intact[i];
        let res = repo
            .update_catalog_at(i, |m| {
                for r in refs {
                    m.verified
                        .record(r, level.min(VerifyLevel::Standard), at_us);
                    if deep_ok.contains(&r.id) {
                        m.verified.record(r, VerifyLevel::Deep, at_us);
                    }
                }
                let live: BTreeSet<String> = m
                    .entries
                    .iter()
                    .filter_map(recorded)
                    .map(|r| VerifyLog::key_of(&r))
                    .collect();
                let timelines = m.timeline_ids();
                m.verified
                    .prune(|k| live.contains(k), |t| timelines.contains(&t));
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(store = %report.stores[i].store, error = %e, "verification not recorded");
            report.stores[i].unreadable.push(Finding {
                artifact: "catalog".into(),
                detail: format!("recording what was verified failed: {e}"),
            });
        }
    }
}
