//! The planner on in-memory stores holding artifacts of chosen sizes (the planner
//! reads only listings and catalogs, never the bytes).

use std::sync::Arc;

use bindspace_catalog::{
    ArtifactId, BackupEntry, BackupKind, BackupStatus, BackupStore, Manifest, RestorePoint,
};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_testkit::{Fault, FaultyStore, Op};
use bytes::Bytes;

use crate::{Error, Sources, Target, plan, plan_on};

fn memory() -> Arc<dyn BackupStore> {
    Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap())
}

async fn put(s: &dyn BackupStore, id: ArtifactId, len: usize) {
    s.put(id, Bytes::from(vec![7u8; len])).await.unwrap();
}

fn full(v: u64) -> ArtifactId {
    ArtifactId::snapshot(v)
}

fn delta(from: u64, to: u64) -> ArtifactId {
    ArtifactId::delta(from, to)
}

fn wal(first: u64, last: u64) -> ArtifactId {
    ArtifactId::wal(first, last)
}

fn entry(artifact: ArtifactId, start_us: u64) -> BackupEntry {
    let (from, to) = artifact.versions();
    BackupEntry {
        id: format!("{artifact}"),
        kind: match artifact {
            ArtifactId::Snapshot { .. } => BackupKind::Full,
            ArtifactId::Delta { .. } => BackupKind::Incremental,
            ArtifactId::WalSegment { .. } => BackupKind::Wal,
        },
        parent: None,
        from_version: from,
        to_version: to,
        start_us,
        end_us: start_us + 1,
        schema: bindspace_core::SchemaVersion::CURRENT.into(),
        size: 1,
        blake3: "00".repeat(32),
        artifact,
        locations: vec!["memory".into()],
        status: BackupStatus::Complete,
        timeline: 1,
        root: None,
        format: None,
    }
}

fn ids(p: &crate::RestorePlan) -> Vec<String> {
    p.steps().map(|s| s.artifact.id.to_string()).collect()
}

#[tokio::test]
async fn the_newest_base_at_or_before_the_target_is_used() {
    let s = memory();
    for v in [10, 20, 30] {
        put(&*s, full(v), 1000).await;
    }
    put(&*s, delta(20, 25), 100).await;
    let p = plan(vec![s.clone()], &Target::Version(25)).await.unwrap();
    assert_eq!(ids(&p), ["snapshot 20", "delta 20..25"]);
    assert_eq!(p.version, 25);
    assert_eq!(p.estimated_bytes, 1100);
    let p = plan(vec![s.clone()], &Target::Version(30)).await.unwrap();
    assert_eq!(ids(&p), ["snapshot 30"]);
    let p = plan(vec![s], &Target::Latest).await.unwrap();
    assert_eq!((ids(&p), p.version), (vec!["snapshot 30".to_string()], 30));
}

#[tokio::test]
async fn a_differential_beats_the_incrementals_it_covers() {
    let s = memory();
    put(&*s, full(10), 5000).await;
    for v in 10..15 {
        put(&*s, delta(v, v + 1), 1000).await;
    }
    // as many bytes as the five incrementals together: fewer fetches win
    put(&*s, delta(10, 15), 5000).await;
    let p = plan(vec![s.clone()], &Target::Version(15)).await.unwrap();
    assert_eq!(ids(&p), ["snapshot 10", "delta 10..15"]);
    // a differential much larger than the incrementals loses to them
    let s2 = memory();
    put(&*s2, full(10), 5000).await;
    for v in 10..12 {
        put(&*s2, delta(v, v + 1), 100).await;
    }
    put(&*s2, delta(10, 12), 90_000).await;
    let p = plan(vec![s2], &Target::Version(12)).await.unwrap();
    assert_eq!(ids(&p), ["snapshot 10", "delta 10..11", "delta 11..12"]);
}

#[tokio::test]
async fn an_unlistable_store_is_skipped_and_reported() {
    let down = FaultyStore::new(memory());
    let up = memory();
    put(&**down.inner(), full(10), 100).await;
    put(&*up, full(10), 100).await;
    put(&*up, wal(11, 20), 100).await;
    down.inject(Op::List, Fault::Fail, None);
    let down_dyn: Arc<dyn BackupStore> = down.clone();
    let p = plan(vec![down_dyn, up.clone()], &Target::Version(15))
        .await
        .unwrap();
    assert_eq!(p.unavailable.len(), 1, "{:?}", p.unavailable);
    assert!(
        p.unavailable[0].contains("injected fault"),
        "{:?}",
        p.unavailable
    );
    assert_eq!(p.base.stores, vec![up.name()]);
    assert_eq!(
        p.base.idx,
        vec![1],
        "the index is into the plan's own sources"
    );
    assert_eq!(p.wal[0].stores, vec![up.name()]);
    // When the only store holding a full cannot be listed, the error says so.
    let lonely = FaultyStore::new(memory());
    put(&**lonely.inner(), full(10), 100).await;
    lonely.inject(Op::List, Fault::Fail, None);
    let only_wal = memory();
    put(&*only_wal, wal(11, 20), 100).await;
    let lonely: Arc<dyn BackupStore> = lonely;
    let err = plan(vec![lonely, only_wal], &Target::Latest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotRestorable { .. }), "{err:?}");
    assert!(err.to_string().contains("could not read"), "{err}");
    assert_eq!(err.kind(), bindspace_core::ErrorKind::NotRestorable);
}

#[tokio::test]
async fn a_time_target_uses_only_what_was_reached_by_then() {
    let s = memory();
    put(&*s, full(10), 100).await;
    put(&*s, full(20), 100).await;
    put(&*s, wal(11, 30), 100).await;
    let m = Manifest {
        entries: vec![entry(full(10), 100), entry(full(20), 200)],
        restore_points: vec![],
        ..Manifest::default()
    };
    s.commit_manifest(0, &m).await.unwrap();
    let p = plan(vec![s.clone()], &Target::Time(150)).await.unwrap();
    assert_eq!(ids(&p), ["snapshot 10", "wal segment 11..=30"]);
    assert_eq!(p.time_limit, Some(150));
    let p = plan(vec![s], &Target::Time(250)).await.unwrap();
    assert_eq!(p.base.artifact.id, full(20));
}

#[tokio::test]
async fn a_restore_point_target_resolves_through_the_catalog() {
    let s = memory();
    put(&*s, full(10), 100).await;
    put(&*s, wal(11, 20), 100).await;
    let m = Manifest {
        entries: vec![],
        restore_points: vec![RestorePoint {
            name: "before-deploy".into(),
            version: 17,
            created_us: 5,
            guaranteed: true,
            timeline: 1,
            root: None,
        }],
        ..Manifest::default()
    };
    s.commit_manifest(0, &m).await.unwrap();
    let p = plan(
        vec![s.clone()],
        &Target::RestorePoint("before-deploy".into()),
    )
    .await
    .unwrap();
    assert_eq!(p.version, 17);
    assert_eq!(ids(&p), ["snapshot 10", "wal segment 11..=20"]);
    let err = plan(vec![s.clone()], &Target::RestorePoint("nope".into()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no catalog names a restore point"),
        "{err}"
    );
    // a second destination whose catalog names another version under that name: which
    // state the name means cannot be told, so nothing is restored
    let other = memory();
    put(&*other, full(10), 100).await;
    let mut m2 = m.clone();
    m2.restore_points[0].version = 19;
    other.commit_manifest(0, &m2).await.unwrap();
    let err = plan(
        vec![s.clone(), other.clone()],
        &Target::RestorePoint("before-deploy".into()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("the catalogs disagree about it"),
        "{err}"
    );
    // a catalog that cannot be read is named: the point may be in it
    let unreadable = FaultyStore::new(memory());
    put(&*unreadable, full(10), 100).await;
    unreadable.inject(Op::ReadManifest, Fault::Fail, None);
    let err = plan(
        vec![unreadable as Arc<dyn BackupStore>],
        &Target::RestorePoint("before-deploy".into()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("no readable catalog names")
            && err.to_string().contains("could not read"),
        "{err}"
    );
    // the same point in both: fine
    let agree = memory();
    agree.commit_manifest(0, &m).await.unwrap();
    let p = plan(
        vec![s, agree],
        &Target::RestorePoint("before-deploy".into()),
    )
    .await
    .unwrap();
    assert_eq!(p.version, 17);
}

#[tokio::test]
async fn a_gap_in_the_wal_archive_stops_latest_and_refuses_a_version_past_it() {
    let s = memory();
    put(&*s, full(10), 100).await;
    put(&*s, wal(11, 15), 100).await;
    put(&*s, wal(17, 20), 100).await; // 16 is missing
    let p = plan(vec![s.clone()], &Target::Latest).await.unwrap();
    assert_eq!(p.version, 15);
    let err = plan(vec![s.clone()], &Target::Version(18))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no segment holding version 16"),
        "{err}"
    );
    // a version before any full
    let err = plan(vec![s], &Target::Version(5)).await.unwrap_err();
    assert!(
        err.to_string().contains("no full snapshot at or before it"),
        "{err}"
    );
}

#[tokio::test]
async fn a_plan_names_and_runs_against_the_sources_that_planned_it() {
    let a = memory();
    let b = memory();
    put(&*b, full(3), 100).await;
    let sources = Sources::new(vec![a.clone(), b.clone()]);
    let p = plan(&sources, &Target::Latest).await.unwrap();
    assert_eq!(p.sources(), &sources);
    assert_ne!(p.sources(), &Sources::new(vec![b, a]));
    assert_eq!(p.base.idx, vec![1]);
}

fn branch(id: u32, parent: u32, at: u64) -> bindspace_catalog::TimelineRecord {
    bindspace_catalog::TimelineRecord {
        id,
        parent,
        branch_version: at,
        created_us: 0,
        reason: "test".into(),
        root: None,
        claim: None,
    }
}

#[tokio::test]
async fn each_timeline_plans_from_its_own_history_only() {
    // timeline 1: fulls at 0, 40, 100, WAL 1..=100; timeline 2 branched at 50: full at
    // 80, WAL 51..=110. Versions 51..=100 exist on both.
    let s = memory();
    for v in [0, 40, 100] {
        put(&*s, full(v), 1000).await;
    }
    put(&*s, wal(1, 60), 10).await;
    put(&*s, wal(61, 100), 10).await;
    put(&*s, full(80).on(2), 1000).await;
    put(&*s, wal(51, 90).on(2), 10).await;
    put(&*s, wal(91, 110).on(2), 10).await;
    let mut m = Manifest::default();
    m.timelines.push(branch(2, 1, 50));
    s.commit_manifest(0, &m).await.unwrap();
    let on = |t| Some(t);

    // the newest timeline by default
    let p = plan(vec![s.clone()], &Target::Version(70)).await.unwrap();
    assert_eq!(p.timeline, 2);
    assert_eq!(
        ids(&p),
        [
            "snapshot 40",
            "wal segment 1..=60",
            "wal segment 51..=90 on timeline 2"
        ]
    );
    assert_eq!(
        p.wal[0].until, 50,
        "timeline 1's WAL only up to the branch point"
    );
    let p = plan(vec![s.clone()], &Target::Version(100)).await.unwrap();
    assert_eq!(
        ids(&p),
        [
            "snapshot 80 on timeline 2",
            "wal segment 51..=90 on timeline 2",
            "wal segment 91..=110 on timeline 2"
        ],
        "never timeline 1's snapshot 100"
    );
    // the same versions on timeline 1
    let p = plan_on(vec![s.clone()], &Target::Version(100), on(1))
        .await
        .unwrap();
    assert_eq!(ids(&p), ["snapshot 100"]);
    let p = plan_on(vec![s.clone()], &Target::Version(70), on(1))
        .await
        .unwrap();
    assert_eq!(
        ids(&p),
        ["snapshot 40", "wal segment 1..=60", "wal segment 61..=100"]
    );
    // timeline 1 ends at 100: 110 is only on timeline 2
    assert!(matches!(
        plan_on(vec![s.clone()], &Target::Version(110), on(1)).await,
        Err(Error::NotRestorable { .. })
    ));
    let p = plan_on(vec![s.clone()], &Target::Latest, on(1))
        .await
        .unwrap();
    assert_eq!(p.version, 100);
    // a timeline nobody recorded
    let e = plan_on(vec![s.clone()], &Target::Latest, on(7))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no timeline 7"), "{e}");
    // a segment of timeline 2 is never used for timeline 1, even with 1's WAL missing
    s.delete(wal(61, 100)).await.unwrap();
    let e = plan_on(vec![s.clone()], &Target::Version(70), on(1))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no segment holding version 61"),
        "{e}"
    );
}

#[test]
fn recorded_roots_are_those_of_the_restored_history_only() {
    use bindspace_catalog::{RestorePoint, TimelineRecord};
    let point = |name: &str, t: u32, v: u64| RestorePoint {
        name: name.into(),
        version: v,
        created_us: 0,
        guaranteed: false,
        timeline: t,
        root: Some(format!("{name}-root")),
    };
    let mut m = Manifest::default();
    // timeline 2 branched from 1 at 50 (root recorded), timeline 3 from 1 at 70
    for (id, at) in [(2, 50), (3, 70)] {
        m.timelines.push(TimelineRecord {
            id,
            parent: 1,
            branch_version: at,
            created_us: 0,
            reason: "test".into(),
            root: Some(format!("branch-{id}")),
            claim: None,
        });
    }
    m.restore_points = vec![
        point("t1-below", 1, 40), // shared by every history
        point("t1-after", 1, 60), // timeline 1 only: past timeline 2's branch point
        point("t2-own", 2, 60),
        point("t2-below", 2, 30), // named on timeline 2 below its branch: shared state
        point("t3-own", 3, 60),
    ];
    let tls = super::merged_timelines(std::slice::from_ref(&m)).unwrap();
    let names = |t: u32| -> Vec<String> {
        let h = bindspace_catalog::History::of(&tls, t).unwrap();
        super::recorded_roots(std::slice::from_ref(&m), &tls, &h)
            .into_values()
            .flatten()
            .map(|r| r.by)
            .collect()
    };
    let t2 = names(2);
    assert!(t2.iter().any(|b| b.contains("t1-below")), "{t2:?}");
    assert!(t2.iter().any(|b| b.contains("t2-below")), "{t2:?}");
    assert!(t2.iter().any(|b| b.contains("t2-own")), "{t2:?}");
    assert!(
        t2.iter().any(|b| b.contains("timeline 2's branch point")),
        "{t2:?}"
    );
    assert!(
        !t2.iter()
            .any(|b| b.contains("t1-after") || b.contains("t3")),
        "{t2:?}"
    );
    let t1 = names(1);
    assert!(t1.iter().any(|b| b.contains("t1-after")), "{t1:?}");
    assert!(
        !t1.iter().any(|b| b.contains("t2") || b.contains("branch")),
        "{t1:?}"
    );
    // timeline 3 shares timeline 1's states up to 70, so the point at 60 on 1 is its
    assert!(names(3).iter().any(|b| b.contains("t1-after")));
}

#[tokio::test]
async fn artifacts_of_a_history_no_catalog_records_refuse_the_default_timeline() {
    // the catalog is gone (or unreadable) but timeline 2's artifacts are there: the
    // default must not quietly restore timeline 1
    let s = memory();
    put(&*s, full(10), 100).await;
    put(&*s, full(30).on(2), 100).await;
    let err = plan(vec![s.clone()], &Target::Latest).await.unwrap_err();
    assert!(err.to_string().contains("timeline(s) {2}"), "{err}");
    // naming the first history still works
    let p = plan_on(vec![s.clone()], &Target::Latest, Some(1))
        .await
        .unwrap();
    assert_eq!(ids(&p), ["snapshot 10"]);
}

#[tokio::test]
async fn a_catalog_of_an_unknown_layout_refuses_planning() {
    let s = memory();
    put(&*s, full(10), 100).await;
    let m = Manifest {
        layout: bindspace_catalog::NEWEST_LAYOUT + 1,
        ..Manifest::default()
    };
    s.commit_manifest(0, &m).await.unwrap();
    let err = plan(vec![s.clone()], &Target::Latest).await.unwrap_err();
    assert!(err.to_string().contains("layout"), "{err}");
}
