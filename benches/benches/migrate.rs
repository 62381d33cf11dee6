//! Schema migration (issue 7), each beside its baseline in the same run: an offline
//! resize of a fully populated space vs a memcpy of the same bytes; writer throughput
//! while online migrations run back to back vs without them.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bindspace_core::workload::Workload;
use bindspace_core::{Fingerprint, SchemaVersion};
use bindspace_schema_migrate::{Consent, SpaceMigration, apply, plan};
use bindspace_wal::{DurableSpace, SyncPolicy, WalOptions};
use criterion::{Criterion, criterion_group, criterion_main};

fn migrate(c: &mut Criterion) {
    let from = SchemaVersion::CURRENT;
    let to = from.with_words(200);
    let full = Workload::new(1, from).filled_space(1.0).expect("valid");
    let bytes = full.len() * full.words() * 8;
    let mut g = c.benchmark_group("migrate");
    g.sample_size(10).measurement_time(Duration::from_secs(8));

    let src = vec![7u64; bytes / 8];
    let mut dst = vec![0u64; bytes / 8];
    g.bench_function("memcpy_82MB", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    let validated = plan(&full, to)
        .expect("plan")
        .validate(Consent::default())
        .expect("growing is lossless");
    g.bench_function("resize_156_to_200_full", |b| {
        b.iter(|| apply(black_box(&full), &validated, &mut |_| {}).expect("apply"))
    });

    // Online: a writer appends (SyncPolicy::Never) while a migrator flips 156 ↔ 200
    // words back to back; the baseline is the same writer alone.
    let base = Workload::new(2, from).filled_space(0.25).expect("valid");
    for (name, migrating) in [
        ("online_writes_alone", false),
        ("online_writes_during_migration", true),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                let (ds, _) = DurableSpace::open(
                    dir.path(),
                    base.clone(),
                    WalOptions {
                        sync: SyncPolicy::Never,
                        ..WalOptions::default()
                    },
                )
                .expect("open");
                let ds = Arc::new(ds);
                let stop = Arc::new(AtomicBool::new(false));
                let migrator = migrating.then(|| {
                    let (ds, stop) = (ds.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let mut n = 0u32;
                        while !stop.load(Ordering::Relaxed) {
                            let target = if ds.read(|s| s.words()) == 156 {
                                to
                            } else {
                                from
                            };
                            let p = ds
                                .read(|s| plan(s, target))
                                .expect("plan")
                                .validate(Consent {
                                    allow_truncate: true,
                                })
                                .expect("valid");
                            let m = SpaceMigration::from_plan(&p);
                            ds.change_schema_online(
                                target,
                                |s| m.migrate_space(s, &mut |_| {}).map_err(|e| e.to_string()),
                                |fp| m.migrate_entry(fp),
                            )
                            .expect("online migration");
                            n += 1;
                        }
                        n
                    })
                });
                let mut w = Workload::new(3, from);
                let start = Instant::now();
                let mut done = 0;
                while done < iters {
                    let a = w.addr();
                    let mut words = w.fingerprint().as_ref().to_vec();
                    words.resize(ds.read(|s| s.words()), 0);
                    // a write racing a switch is refused; the writer retries it
                    if ds.write(a, Fingerprint::from_words(words)).is_ok() {
                        done += 1;
                    }
                }
                let took = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                if let Some(m) = migrator {
                    black_box(m.join().expect("migrator"));
                }
                took
            })
        });
    }
    g.finish();
}

criterion_group!(benches, migrate);
criterion_main!(benches);
