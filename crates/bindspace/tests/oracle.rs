//! Oracle PITR: an engine runs a seeded workload with short intervals (fulls,
//! incrementals, differentials, restore points and WAL archiving all happening in the
//! background, on the engine's manual clock: a ticker thread wakes the jobs every 20
//! operations while the writer goes on, so backups run beside writes); the test records the digest at every version, then restores random
//! targets (versions, times, restore points) from each destination mix and compares.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::BackupKind;
use bindspace_core::workload::{Op, Workload};
use bindspace_core::{BindSpace, Digest, ManualClock, SchemaVersion};
use bindspace_pitr::Target;
use bindspace_testkit::unique_name;

mod common;

const WORDS: u16 = 16;
const ADDRS: u32 = 1024;

struct Run {
    digests: BTreeMap<u64, Digest>,
    /// (version, time of its WAL record)
    times: Vec<(u64, u64)>,
    points: Vec<(String, u64)>,
    /// versions taken by backups' WAL checkpoints
    checkpoints: std::collections::BTreeSet<u64>,
}

fn config_in(dests: Vec<String>, space: &str) -> BackupConfig {
    BackupConfig {
        space: space.into(),
        fingerprint_words: WORDS,
        address_space: ADDRS,
        destinations: dests,
        delta_interval_ms: 25,
        full_snapshot_interval_ms: 300,
        max_delta_chain: 6,
        archive_interval_ms: 15,
        sync: "never".into(),
        wal_segment_bytes: 16 << 10,
        ..BackupConfig::default()
    }
}

/// Runs the workload; returns what the oracle knows.
fn run_workload(dir: &std::path::Path, dests: Vec<String>, ops: usize) -> Run {
    run_workload_in(dir, dests, bindspace_catalog::SpaceName::DEFAULT, ops)
}

/// [`run_workload`] in one space of the repository.
fn run_workload_in(dir: &std::path::Path, dests: Vec<String>, space: &str, ops: usize) -> Run {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000_000));
    let engine =
        Engine::open_with_clock(dir, config_in(dests.clone(), space), clock.clone()).unwrap();
    let schema = SchemaVersion::CURRENT
        .with_words(WORDS)
        .with_address_space(ADDRS);
    let mut shadow = BindSpace::new(schema).unwrap();
    let mut run = Run {
        digests: BTreeMap::new(),
        times: vec![],
        points: vec![],
        checkpoints: Default::default(),
    };
    run.digests.insert(0, shadow.digest());
    // a full of the empty space: every later version is reachable
    engine.backup_now(BackupKind::Full).unwrap();
    let mut w = Workload::new(77, schema);
    // The ticker runs what is due while this thread keeps writing.
    let (wake, woken) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let engine = &engine;
        scope.spawn(move || {
            while woken.recv().is_ok() {
                engine.tick();
            }
        });
        for i in 0..ops {
            clock.advance(1_000);
            let now = bindspace_core::Clock::now_us(&*clock);
            let v = if i % 250 == 249 {
                let name = format!("rp-{i}");
                let v = engine.restore_point(&name, i % 500 == 499).unwrap();
                shadow.set_version(v);
                run.points.push((name, v));
                v
            } else {
                let op = w.next_op(&shadow);
                let v = match &op {
                    Op::Write(a, fp) => engine.write(*a, fp.clone()).unwrap(),
                    Op::Delete(a) => engine.delete(*a).unwrap(),
                };
                bindspace_testkit::shadow::follow(&mut shadow, &op, v);
                v
            };
            assert_eq!(shadow.version(), v);
            run.digests.insert(v, shadow.digest());
            run.times.push((v, now));
            if i % 300 == 150 {
                engine.backup_now(BackupKind::Differential).unwrap();
            }
            if i % 20 == 0 {
                // the background jobs run what the manual clock says is due
                wake.send(()).unwrap();
            }
        }
        drop(wake);
    });
    engine.tick();
    let status = engine.status();
    assert!(status.backups_ok >= 3, "{status:?}");
    assert!(status.segments_archived >= 3, "{status:?}");
    assert_eq!(status.last_error, None, "{status:?}");
    // the versions the workload did not take are the WAL checkpoints backups wrote:
    // each changes nothing, so its state is the one before it
    for v in 1..=engine.version() {
        if !run.digests.contains_key(&v) {
            let before = run.digests[&(v - 1)];
            run.digests.insert(v, before);
            run.checkpoints.insert(v);
        }
    }
    assert!(!run.checkpoints.is_empty(), "backups write WAL checkpoints");
    engine.close().unwrap();
    // and the archived WAL says so: each of them is a checkpoint record, and no other
    // record is one
    assert_eq!(checkpoint_records(&dests, space), run.checkpoints);
    run
}

/// The versions of the checkpoint records in the first destination's archived WAL.
fn checkpoint_records(dests: &[String], space: &str) -> std::collections::BTreeSet<u64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(bindspace::stores::open_in(
            &dests[0],
            &bindspace_catalog::SpaceName::new(space).unwrap(),
            std::time::Duration::from_secs(30),
        ))
        .unwrap();
    let mut out = std::collections::BTreeSet::new();
    for r in rt
        .block_on(store.list(bindspace_catalog::ArtifactKind::WalSegment, 0, u64::MAX))
        .unwrap()
    {
        let bytes = rt.block_on(store.get(&r)).unwrap();
        bindspace_wal::segment::scan(&bytes, r.id.versions().0, |rec| {
            if let bindspace_wal::RecordOp::Op(bindspace_wal::Op::Checkpoint(_)) = rec.op {
                out.insert(rec.version);
            }
        });
    }
    out
}

/// Restores `n` random targets from `stores`; returns mismatches.
fn check(
    stores: &[Arc<dyn bindspace_catalog::BackupStore>],
    run: &Run,
    n: usize,
    seed: u64,
) -> usize {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let last = *run.digests.keys().next_back().unwrap();
    let mut mismatches = 0;
    let mut x = seed;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut targets: Vec<(Target, u64)> = run
        .points
        .iter()
        .map(|(n, v)| (Target::RestorePoint(n.clone()), *v))
        .collect();
    targets.push((Target::Latest, last));
    while targets.len() < n {
        if next(2) == 0 {
            let v = next(last + 1);
            targets.push((Target::Version(v), v));
        } else {
            let (v, t) = run.times[next(run.times.len() as u64) as usize];
            targets.push((Target::Time(t), v));
        }
    }
    for (t, want) in targets {
        let (space, plan) = rt
            .block_on(bindspace_pitr::restore_to(stores, &t))
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        // a time target also takes the WAL checkpoints stamped at the same time as the
        // last write before it (they change nothing)
        let only_checkpoints_after = matches!(t, Target::Time(_))
            && space.version() > want
            && (want + 1..=space.version()).all(|v| run.checkpoints.contains(&v));
        let version_ok = space.version() == want || only_checkpoints_after;
        if !version_ok || space.digest() != run.digests[&want] {
            eprintln!(
                "MISMATCH {t}: got version {}, want {want}\n{plan}",
                space.version()
            );
            mismatches += 1;
        }
    }
    mismatches
}

fn open_stores(urls: &[String]) -> Vec<Arc<dyn bindspace_catalog::BackupStore>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(bindspace::stores::open_all(urls)).unwrap()
}

#[test]
fn oracle_pitr_on_the_embedded_default_and_a_second_directory() {
    let data = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let urls = vec![
        format!("file://{}", data.path().join("repo").display()),
        format!("file://{}", second.path().display()),
    ];
    let run = run_workload(data.path(), urls.clone(), 1500);
    let all = open_stores(&urls);
    let mut total = 0;
    for (name, mix) in [
        ("both", all.clone()),
        ("primary", vec![all[0].clone()]),
        ("second", vec![all[1].clone()]),
    ] {
        let m = check(&mix, &run, 50, 0x9e37_79b9 + name.len() as u64);
        eprintln!("oracle: {name}: 50 targets, {m} mismatches");
        total += m;
    }
    assert_eq!(total, 0);
}

#[test]
fn oracle_pitr_across_object_store_redis_and_postgres_with_tier_loss() {
    let Some(srv) = common::real_servers() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    // this test's own PostgreSQL, so it can stop it
    let mut pg =
        bindspace_testkit::servers::Server::postgres(srv.pg_bin.as_ref(), data.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (redis, mut con) = common::own_redis_db(&rt, &srv.redis, 2);
    let urls = vec![
        format!("{}/{}", srv.s3.trim_end_matches('/'), unique_name("oracle")),
        pg.url.clone(),
        redis.clone(),
    ];
    let run = run_workload(data.path(), urls.clone(), 800);
    #[cfg(feature = "lance")]
    {
        // the S3 tier keeps its fulls as Lance versions, not native objects, so every
        // restore below that starts from an S3 full reads it back from Lance
        use bindspace_catalog::{ArtifactKind, BackupStore};
        let s3 =
            bindspace_store_s3::ObjectBackupStore::from_url(&urls[0], Default::default()).unwrap();
        let native = rt.block_on(s3.list(ArtifactKind::Snapshot, 0, u64::MAX));
        assert_eq!(native.unwrap(), vec![]);
        let lance = bindspace_store_s3::lance_snapshots::LanceSnapshots::new(&s3);
        let tagged = rt.block_on(lance.tagged()).unwrap();
        assert!(tagged.len() >= 2, "{tagged:?}");
    }
    let all = open_stores(&urls);
    assert_eq!(check(&all, &run, 50, 1), 0, "all tiers");
    // Redis loses its data: S3 + PostgreSQL + the WAL archive still restore
    rt.block_on(redis::cmd("FLUSHDB").query_async::<()>(&mut con))
        .unwrap();
    assert_eq!(check(&all, &run, 30, 2), 0, "after FLUSHDB");
    // PostgreSQL down as well: the object store's own catalog and artifacts serve
    pg.stop_immediate().unwrap();
    assert_eq!(
        check(&all, &run, 30, 3),
        0,
        "Redis flushed and PostgreSQL down"
    );
}

#[test]
fn oracle_pitr_with_a_redis_cluster_as_one_destination() {
    let Some(cluster) =
        bindspace_testkit::service_env("BINDSPACE_TEST_REDIS_CLUSTER_URL", "a Redis Cluster")
    else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    // the cluster is shared: this run writes a space of its own
    let space = unique_name("oracle").replace('_', "-").to_lowercase();
    let urls = vec![
        format!("file://{}", data.path().join("repo").display()),
        cluster,
    ];
    let run = run_workload_in(data.path(), urls.clone(), &space, 600);
    let space = bindspace_catalog::SpaceName::new(&space).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let all = rt
        .block_on(bindspace::stores::open_all_in(
            &urls,
            &space,
            std::time::Duration::from_secs(30),
        ))
        .unwrap();
    assert_eq!(check(&all, &run, 30, 11), 0, "both");
    assert_eq!(check(&all[1..], &run, 40, 12), 0, "the Redis Cluster alone");
}
