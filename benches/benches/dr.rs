//! Issue 17: the figures of `verify` and of restore drills, each against its baseline
//! in the same run, on the repository of the PITR bench (a full space, a full + 24
//! incrementals + 10,000 WAL records) in a local directory, and on the S3 server when
//! `BINDSPACE_TEST_S3_URL` is set.
//!
//! - checksum verify (every artifact read back and checked, the result recorded) vs a
//!   bare read of the same objects (`object_store` gets, no checks), and the store's
//!   own checked reads between them;
//! - a repeat checksum verify with nothing due: bytes read (must be 0);
//! - deep verify of the 25 backed-up versions: time per version vs one plain restore;
//! - a drill through the engine (its sentinel restore point; RTO);
//! - replication into a fresh local directory vs a bare copy of the same objects, and
//!   a replica's lag under steady writes (p50/p99);
//! - RPO under steady writes: library drills of the latest state (no sentinel, so the
//!   RPO is the age of the newest restorable state) while a writer runs and the engine
//!   archives every 250 ms, RPO and RTO p50/p99.
//!
//! The one-shot figures go to `<target>/criterion/dr/figures.txt`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bindspace::{BackupConfig, Engine};
use bindspace_benches::{bench_config as cfg, build_chain};
use bindspace_catalog::{ArtifactKind, BackupStore, VerifyLevel};
use bindspace_core::workload::Workload;
use bindspace_core::{SchemaVersion, SystemClock};
use bindspace_dr::{DrillOptions, ReplicateOptions, VerifyOptions, drill, replicate, verify};
use bindspace_pitr::Target;
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use object_store::ObjectStoreExt;

fn every_level(level: VerifyLevel) -> VerifyOptions {
    VerifyOptions {
        level,
        recheck: Duration::ZERO,
        deep_samples: 0,
        ..VerifyOptions::default()
    }
}

fn dr(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut g = c.benchmark_group("dr");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut dests = vec![(
        "local",
        format!("file://{}", tmp.path().join("repo").display()),
    )];
    if let Ok(s3) = std::env::var("BINDSPACE_TEST_S3_URL") {
        dests.push(("s3", format!("{s3}/bench-dr-{}", std::process::id())));
    }
    let clock = SystemClock;
    let mut figures = String::new();
    for (name, dest) in &dests {
        let data = tmp.path().join(format!("data-{name}"));
        let latest = build_chain(&data, cfg(dest.clone(), false));
        let engine = Engine::open(&data, cfg(dest.clone(), false)).expect("engine");
        let repo = engine.repository().clone();
        let raw = ObjectBackupStore::from_url(dest, StoreOptions::default()).expect("store");
        let mut refs = Vec::new();
        for kind in [
            ArtifactKind::Snapshot,
            ArtifactKind::Delta,
            ArtifactKind::WalSegment,
        ] {
            refs.extend(rt.block_on(raw.list(kind, 0, u64::MAX)).expect("list"));
        }
        let bytes: u64 = refs.iter().map(|r| r.len).sum();
        let os = raw.object_store();
        g.bench_function(format!("{name}_bare_read"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut n = 0;
                    for r in &refs {
                        let got = os.get(&raw.object_path(r)).await.expect("get");
                        n += got.bytes().await.expect("bytes").len();
                    }
                    n
                })
            })
        });
        // the store's own checked read (ranged GETs of large objects, blake3): what
        // verify pays per artifact before its bookkeeping
        g.bench_function(format!("{name}_store_get"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut n = 0;
                    for r in &refs {
                        n += raw.get(r).await.expect("get").len();
                    }
                    n
                })
            })
        });
        g.bench_function(format!("{name}_checksum_verify"), |b| {
            b.iter(|| {
                let r = rt
                    .block_on(verify(&repo, &clock, &every_level(VerifyLevel::Checksum)))
                    .expect("verify");
                assert_eq!(r.stores[0].bytes_read, bytes, "{r}");
                r.stores[0].checked
            })
        });
        // nothing due: a repeat run reads no artifact bytes
        let repeat = rt
            .block_on(verify(&repo, &clock, &VerifyOptions::default()))
            .expect("verify");
        // deep: every backed-up version restored and checked against its root
        let t = Instant::now();
        let deep = rt
            .block_on(verify(&repo, &clock, &every_level(VerifyLevel::Deep)))
            .expect("deep verify");
        let deep_time = t.elapsed();
        let verified = deep.deep.iter().filter(|d| d.status == "verified").count();
        let stores = repo.destinations().to_vec();
        let t = Instant::now();
        for _ in 0..3 {
            rt.block_on(bindspace_pitr::restore_to(
                stores.clone(),
                &Target::Version(latest),
            ))
            .expect("restore");
        }
        let restore = t.elapsed() / 3;
        let per = deep_time / verified.max(1) as u32;
        writeln!(
            figures,
            "{name}: {} artifacts, {:.1} MB; repeat checksum verify with nothing due read {} bytes; \
             deep verify of {} versions ({verified} verified) took {:.2} s: {:.0} ms per version vs \
             one plain restore of the newest {:.0} ms = {:.2}x",
            refs.len(),
            bytes as f64 / 1e6,
            repeat.stores[0].bytes_read,
            deep.deep.len(),
            deep_time.as_secs_f64(),
            per.as_secs_f64() * 1e3,
            restore.as_secs_f64() * 1e3,
            per.as_secs_f64() / restore.as_secs_f64(),
        )
        .expect("string");
        // through the engine: its sentinel restore point (checked against its root)
        let opts = DrillOptions::default();
        g.bench_function(format!("{name}_drill_sentinel"), |b| {
            b.iter(|| {
                let r = engine.drill(&opts).expect("drill");
                assert_eq!(r.runs[0].status, "restored", "{r}");
                r.runs[0].rto_ms
            })
        });
        // replication into a fresh local directory vs a bare copy of the same objects
        // (object_store get + put, no checks, no catalog)
        let from: Arc<dyn BackupStore> =
            Arc::new(ObjectBackupStore::from_url(dest, StoreOptions::default()).expect("store"));
        let fresh = |what: &str| {
            let d = tempfile::tempdir_in(tmp.path()).expect("tempdir");
            let url = format!("file://{}", d.path().join(what).display());
            (d, url)
        };
        g.bench_function(format!("{name}_replicate_to_local"), |b| {
            b.iter_batched(
                || fresh("replica"),
                |(_d, url)| {
                    let to: Arc<dyn BackupStore> = Arc::new(
                        ObjectBackupStore::from_url(&url, StoreOptions::default()).expect("store"),
                    );
                    let r = rt
                        .block_on(replicate(&from, &to, &clock, &ReplicateOptions::default()))
                        .expect("replicate");
                    assert!(r.caught_up, "{r}");
                    r.bytes_copied
                },
                criterion::BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("{name}_bare_copy_to_local"), |b| {
            b.iter_batched(
                || fresh("copy"),
                |(_d, url)| {
                    let to =
                        ObjectBackupStore::from_url(&url, StoreOptions::default()).expect("store");
                    let dst = to.object_store();
                    rt.block_on(async {
                        for r in &refs {
                            let got = os.get(&raw.object_path(r)).await.expect("get");
                            let bytes = got.bytes().await.expect("bytes");
                            dst.put(&to.object_path(r), bytes.into())
                                .await
                                .expect("put");
                        }
                    })
                },
                criterion::BatchSize::PerIteration,
            )
        });
        engine.close().expect("close");
    }
    g.finish();

    // replica lag under steady writes: an engine archiving every 250 ms with a local
    // replica brought up to date every 250 ms; its lag sampled from the status
    let dir = tmp.path().join("lag");
    let engine = Arc::new(
        Engine::open(
            &dir,
            BackupConfig {
                replicas: vec![format!("file://{}", dir.join("replica").display())],
                replicate_interval_ms: 250,
                ..cfg(format!("file://{}", dir.join("repo").display()), true)
            },
        )
        .expect("engine"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, stop) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut w = Workload::new(4, SchemaVersion::CURRENT);
            while !stop.load(Ordering::Relaxed) {
                let a = w.addr();
                engine.write(a, w.fingerprint()).expect("write");
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut lags = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(Some(l)) = engine.status().replica_lag_ms.values().next() {
            lags.push(*l);
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    if let Ok(engine) = Arc::try_unwrap(engine) {
        engine.close().expect("close");
    }
    lags.sort_unstable();
    let at = |p: f64| {
        lags.get(((lags.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    writeln!(
        figures,
        "replica lag under steady writes (archive and replicate every 250 ms, incrementals every 1 s, a full every 5 s), {} samples: p50 {} ms, p99 {} ms, max {} ms",
        lags.len(),
        at(0.5),
        at(0.99),
        lags.last().copied().unwrap_or(0)
    )
    .expect("string");

    // RPO under steady writes: sampled, not timed by criterion
    let dir = tmp.path().join("rpo");
    let engine = Arc::new(
        Engine::open(
            &dir,
            cfg(format!("file://{}", dir.join("repo").display()), true),
        )
        .expect("engine"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, stop) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut w = Workload::new(3, SchemaVersion::CURRENT);
            while !stop.load(Ordering::Relaxed) {
                let a = w.addr();
                engine.write(a, w.fingerprint()).expect("write");
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let (mut rpo, mut rto) = (Vec::new(), Vec::new());
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let r = rt
            .block_on(drill(
                engine.repository(),
                &clock,
                &DrillOptions::default(),
                None,
            ))
            .expect("drill");
        if let Some(p) = r.runs[0].rpo_ms {
            rpo.push(p);
            rto.push(r.runs[0].rto_ms);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let pct = |v: &mut Vec<u64>, p: f64| {
        v.sort_unstable();
        v.get(((v.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    writeln!(
        figures,
        "drills of the latest state under steady writes (archive every 250 ms, incrementals every 1 s, a full every 5 s), {} drills: RPO p50 {} ms, p99 {} ms; RTO p50 {} ms, p99 {} ms",
        rpo.len(),
        pct(&mut rpo, 0.5),
        pct(&mut rpo, 0.99),
        pct(&mut rto, 0.5),
        pct(&mut rto, 0.99),
    )
    .expect("string");
    // the writer has stopped: the engine has one owner again
    if let Ok(engine) = Arc::try_unwrap(engine) {
        engine.close().expect("close");
    }
    print!("{figures}");
    bindspace_benches::write_figures("dr", "figures.txt", &figures);
}

criterion_group!(benches, dr);
criterion_main!(benches);
