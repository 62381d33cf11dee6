//! Issue 6: RTO, RPO and backup overhead, each against its baseline in the same run.
//!
//! - RTO: restore of a fully populated space at the newest version from a full + 24
//!   incrementals + 10,000 WAL records (local directory; and the S3 server when
//!   `BINDSPACE_TEST_S3_URL` is set), vs merely reading and decoding the full snapshot.
//! - RPO: under a steady write workload with WAL archiving every 250 ms (and the
//!   backups of [`cfg`] running), the age of the oldest write the archive does not hold
//!   yet, sampled every 20 ms; percentiles go to `<target>/criterion/pitr/rpo.txt`.
//! - Backup overhead: writer throughput with the engine's background jobs on vs off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bindspace::Engine;
use bindspace_benches::{bench_config as cfg, build_chain};
use bindspace_catalog::ArtifactKind;
use bindspace_core::workload::Workload;
use bindspace_core::{SchemaVersion, snapshot};
use bindspace_pitr::Target;
use criterion::{Criterion, criterion_group, criterion_main};

fn pitr(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut g = c.benchmark_group("pitr");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut dests = vec![(
        "local",
        format!("file://{}", tmp.path().join("repo").display()),
    )];
    if let Ok(s3) = std::env::var("BINDSPACE_TEST_S3_URL") {
        dests.push(("s3", format!("{s3}/bench-pitr-{}", std::process::id())));
    }
    for (name, dest) in &dests {
        let data = tmp.path().join(format!("data-{name}"));
        let latest = build_chain(&data, cfg(dest.clone(), false));
        let stores = rt
            .block_on(bindspace::stores::open_all(std::slice::from_ref(dest)))
            .expect("stores");
        let plan = rt
            .block_on(bindspace_pitr::plan(&stores, &Target::Version(latest)))
            .expect("plan");
        assert_eq!(plan.deltas.len(), 24, "{plan}");
        g.bench_function(format!("{name}_restore_full_24_deltas_10k_wal"), |b| {
            b.iter(|| {
                rt.block_on(bindspace_pitr::restore_to(
                    &stores,
                    &Target::Version(latest),
                ))
                .expect("restore")
                .0
                .version()
            })
        });
        let full = rt
            .block_on(stores[0].list(ArtifactKind::Snapshot, 0, u64::MAX))
            .expect("list")[0];
        g.bench_function(format!("{name}_read_decode_full"), |b| {
            b.iter(|| {
                let bytes = rt.block_on(stores[0].get(&full)).expect("get");
                snapshot::decode(&bytes).expect("decode").space.len()
            })
        });
    }

    // Backup overhead: the same writer with background jobs off, on at the bench's
    // cadence (a full every 5 s), and on at the default cadence (archive every second,
    // an incremental a minute, a full an hour: the first of each is due one interval
    // after open, so a run of criterion's ~13 s sees the archiving alone). The WAL is
    // never synced in all three (the default syncs every append, which would measure
    // the disk).
    let defaults = |dest: String| bindspace::BackupConfig {
        destinations: vec![dest],
        sync: "never".into(),
        ..bindspace::BackupConfig::default()
    };
    for (id, background) in [
        ("writes_jobs_off", None),
        ("writes_jobs_on", Some(false)),
        ("writes_jobs_on_defaults", Some(true)),
    ] {
        let dir = tmp.path().join(id);
        let dest = format!("file://{}", dir.join("repo").display());
        let config = match background {
            None => cfg(dest, false),
            Some(false) => cfg(dest, true),
            Some(true) => defaults(dest),
        };
        let engine = Engine::open(&dir, config).expect("engine");
        let mut w = Workload::new(2, SchemaVersion::CURRENT);
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    let a = w.addr();
                    engine.write(a, w.fingerprint()).expect("write");
                }
                t.elapsed()
            })
        });
        engine.close().expect("close");
    }
    g.finish();

    // RPO: sampled, not timed by criterion.
    let dir = tmp.path().join("rpo");
    let engine = Arc::new(
        Engine::open(
            &dir,
            cfg(format!("file://{}", dir.join("repo").display()), true),
        )
        .expect("engine"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::Mutex::new(Vec::<(u64, Instant)>::new()));
    let writer = {
        let (engine, stop, written) = (engine.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut w = Workload::new(3, SchemaVersion::CURRENT);
            while !stop.load(Ordering::Relaxed) {
                let a = w.addr();
                let v = engine.write(a, w.fingerprint()).expect("write");
                written.lock().expect("lock").push((v, Instant::now()));
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let mut ages = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    std::thread::sleep(Duration::from_millis(500));
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        let archived = engine.status().last_archived_version;
        let now = Instant::now();
        let w = written.lock().expect("lock");
        // the newest version written that the archive does not hold yet: its age is
        // what a disk loss now would cost
        if let Some((_, t)) = w.iter().find(|(v, _)| *v > archived) {
            ages.push(now.duration_since(*t).as_secs_f64());
        } else {
            ages.push(0.0);
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    ages.sort_by(f64::total_cmp);
    let pct = |p: f64| ages[((ages.len() - 1) as f64 * p) as usize];
    let report = format!(
        "RPO under steady writes (archive every 250 ms, incrementals every 1 s, a full every 5 s), {} samples: p50 {:.3} s, p99 {:.3} s, max {:.3} s (target p99 <= 1 s)",
        ages.len(),
        pct(0.5),
        pct(0.99),
        ages.last().copied().unwrap_or(0.0)
    );
    println!("{report}");
    bindspace_benches::write_figures("pitr", "rpo.txt", &(report + "\n"));
}

criterion_group!(benches, pitr);
criterion_main!(benches);
