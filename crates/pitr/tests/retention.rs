//! A year of backups under a simulated clock: daily fulls and incrementals every six
//! hours. The kept set must equal the policy computed independently here, and every
//! kept backup and guaranteed restore point must still restore after the deletion.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bindspace_catalog::retention::{self, RetentionPolicy};
use bindspace_catalog::{
    ArtifactId, BackupEntry, BackupKind, BackupStatus, BackupStore, Manifest, Repository,
    RestorePoint, blake3_hex,
};
use bindspace_core::workload::Workload;
use bindspace_core::{Digest, ManualClock, SchemaVersion, snapshot};
use bindspace_pitr::Target;
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};

const HOUR: u64 = 3_600_000_000;
const DAY: u64 = 24 * HOUR;
const T0: u64 = 1_767_225_600_000_000; // 2026-01-01

/// The policy, computed the long way: walk bucket indices down from now.
fn expected_keep(m: &Manifest, p: &RetentionPolicy, now: u64) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    for e in &m.entries {
        if now - e.end_us <= p.keep_all_within_us {
            keep.insert(e.id.clone());
        }
    }
    for (len, n) in [
        (HOUR, p.hourly),
        (DAY, p.daily),
        (7 * DAY, p.weekly),
        (30 * DAY, p.monthly),
        (365 * DAY, p.yearly),
    ] {
        let mut found = 0;
        let mut bucket = now / len;
        let oldest = m.entries.iter().map(|e| e.end_us / len).min().unwrap();
        while found < n && bucket >= oldest {
            let newest = m
                .entries
                .iter()
                .filter(|e| e.end_us / len == bucket)
                .max_by_key(|e| (e.end_us, e.to_version));
            if let Some(e) = newest {
                keep.insert(e.id.clone());
                found += 1;
            }
            if bucket == 0 {
                break;
            }
            bucket -= 1;
        }
    }
    // parents, transitively
    let by_id: BTreeMap<&str, &BackupEntry> =
        m.entries.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut todo: Vec<String> = keep.iter().cloned().collect();
    for rp in m.restore_points.iter().filter(|r| r.guaranteed) {
        let base = m
            .entries
            .iter()
            .filter(|e| e.to_version <= rp.version)
            .max_by_key(|e| (e.to_version, e.end_us))
            .unwrap();
        todo.push(base.id.clone());
    }
    while let Some(id) = todo.pop() {
        keep.insert(id.clone());
        if let Some(p) = by_id[id.as_str()].parent.clone()
            && !keep.contains(&p)
        {
            todo.push(p);
        }
    }
    keep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_backups_keeps_exactly_the_policy_and_everything_kept_restores() {
    let store =
        Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap());
    let stores: Vec<Arc<dyn BackupStore>> = vec![store.clone()];
    let clock = Arc::new(ManualClock::new(T0));
    let repo = Repository::new(stores.clone(), clock.clone(), "test").unwrap();
    let schema = SchemaVersion::CURRENT.with_words(2).with_address_space(256);
    let mut w = Workload::new(5, schema);
    let mut space = w.filled_space(0.3).unwrap();
    let mut mark = space.mark();
    let mut m = Manifest::default();
    let mut digests: BTreeMap<u64, Digest> = BTreeMap::new();
    let mut last_id: Option<String> = None;
    for step in 0..365 * 4 {
        let now = T0 + step as u64 * 6 * HOUR;
        w.run(&mut space, 5).unwrap();
        let (kind, artifact, bytes) = if step % 4 == 0 {
            mark = space.mark();
            (
                BackupKind::Full,
                ArtifactId::snapshot(space.version()),
                snapshot::encode(&space, now),
            )
        } else {
            let d = bindspace_xor_delta::compute_dirty(&space, &mark, now).unwrap();
            mark = space.mark();
            (
                BackupKind::Incremental,
                ArtifactId::delta(d.from_version, d.to_version),
                bindspace_xor_delta::encode(&d),
            )
        };
        let r = store.put(artifact, bytes.into()).await.unwrap();
        let id = format!("b{step}");
        m.entries.push(BackupEntry {
            id: id.clone(),
            kind,
            parent: if kind == BackupKind::Full {
                None
            } else {
                last_id.clone()
            },
            from_version: artifact.versions().0,
            to_version: artifact.versions().1,
            start_us: now,
            end_us: now + 1_000,
            schema: schema.into(),
            size: r.len,
            blake3: blake3_hex(&r.blake3),
            artifact,
            locations: vec![store.name()],
            status: BackupStatus::Complete,
            timeline: 1,
            root: None,
            format: None,
        });
        digests.insert(space.version(), space.digest());
        last_id = Some(id);
        if step == 401 {
            m.restore_points.push(RestorePoint {
                name: "quarter-close".into(),
                version: space.version(),
                created_us: now,
                guaranteed: true,
                timeline: 1,
                root: None,
            });
        }
        if step == 803 {
            m.restore_points.push(RestorePoint {
                name: "scratch".into(),
                version: space.version(),
                created_us: now,
                guaranteed: false,
                timeline: 1,
                root: None,
            });
        }
    }
    store.commit_manifest(0, &m).await.unwrap();
    let now = T0 + 365 * DAY;
    clock.set(now);
    let policy = RetentionPolicy {
        keep_all_within_us: DAY,
        hourly: 24,
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 2,
        max_count: None,
        max_age_us: None,
        expire_abandoned_after_us: None,
    };
    let plan = retention::plan(&m, &policy, now);
    let kept: BTreeSet<String> = plan.keep.keys().cloned().collect();
    assert_eq!(kept, expected_keep(&m, &policy, now));
    assert!(kept.len() < m.entries.len() / 10, "kept {}", kept.len());
    assert_eq!(kept.len() + plan.delete.len(), m.entries.len());
    eprintln!(
        "retention: {} backups over a year, {} kept, {} deleted",
        m.entries.len(),
        kept.len(),
        plan.delete.len()
    );
    // delete, then every kept backup and the guaranteed point restore bit for bit
    assert_eq!(
        repo.delete_backups(&plan.delete).await.unwrap(),
        plan.delete.len()
    );
    let after = repo.manifest().await.unwrap();
    assert_eq!(after.entries.len(), kept.len());
    let mut targets: Vec<u64> = after.entries.iter().map(|e| e.to_version).collect();
    let rp = after
        .restore_points
        .iter()
        .find(|p| p.name == "quarter-close")
        .unwrap()
        .version;
    targets.push(rp);
    for v in targets {
        let (space, _) = bindspace_pitr::restore_to(&stores, &Target::Version(v))
            .await
            .unwrap_or_else(|e| panic!("kept version {v} no longer restores: {e}"));
        assert_eq!(space.digest(), digests[&v], "version {v}");
    }
    let (space, _) =
        bindspace_pitr::restore_to(&stores, &Target::RestorePoint("quarter-close".into()))
            .await
            .unwrap();
    assert_eq!(space.digest(), digests[&rp]);
}
