//! WAL hot paths against their physical baselines, measured in the same run (issue 3):
//! appends with `SyncPolicy::Never` vs a plain `write` of the same frame bytes; group
//! commit at 1, 8 and 32 writers vs the machine's `write + fdatasync` rate; recovery of
//! 1 million records vs reading the same bytes.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
use bindspace_wal::{
    Op, Record, RecordOp, SyncPolicy, Wal, WalOptions, apply_record, encode_frame,
};
use criterion::{Criterion, criterion_group, criterion_main};

const WORDS: usize = 156;

fn op(i: u64) -> Op {
    Op::Write(Addr(i as u16), Fingerprint::from_words(vec![i; WORDS]))
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal");
    g.sample_size(30).measurement_time(Duration::from_secs(5));

    // Never: the log's own overhead over the bytes it writes.
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(
        dir.path(),
        WalOptions {
            sync: SyncPolicy::Never,
            ..WalOptions::default()
        },
    )
    .expect("open");
    let mut i = 0u64;
    g.bench_function("append_never", |b| {
        b.iter(|| {
            i += 1;
            wal.append(&[op(i)]).expect("append")
        })
    });
    drop(wal);
    let mut frame = Vec::new();
    encode_frame(
        &Record {
            version: 1,
            timestamp_us: 0,
            in_batch: false,
            op: RecordOp::Op(op(1)),
        },
        &mut frame,
    );
    let mut f = File::create(dir.path().join("plain")).expect("create");
    g.bench_function("plain_write", |b| {
        b.iter(|| f.write_all(black_box(&frame)).expect("write"))
    });

    // The machine's fsync rate: one small write + fdatasync.
    let mut f = File::create(dir.path().join("fsync")).expect("create");
    g.bench_function("write_fdatasync", |b| {
        b.iter(|| {
            f.write_all(&frame).expect("write");
            f.sync_data().expect("fdatasync")
        })
    });

    // What one full group costs the disk: 32 frames in one write + fdatasync, per frame
    // (the floor of group commit with 32 writers; the rest is the hand-off).
    let group: Vec<u8> = frame.repeat(32);
    g.bench_function("write_fdatasync_32_frames_per_frame", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters.div_ceil(32) {
                f.write_all(&group).expect("write");
                f.sync_data().expect("fdatasync");
            }
            start
                .elapsed()
                .mul_f64(iters as f64 / (iters.div_ceil(32) * 32) as f64)
        })
    });

    // Group commit: time per durable append with N concurrent writers.
    for writers in [1usize, 8, 32] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = Wal::open(dir.path(), WalOptions::default()).expect("open");
        let wal = Arc::new(wal);
        g.bench_function(format!("group_commit_{writers}"), |b| {
            b.iter_custom(|iters| {
                let per = (iters as usize).div_ceil(writers) as u64;
                let start = Instant::now();
                let hs: Vec<_> = (0..writers)
                    .map(|t| {
                        let wal = Arc::clone(&wal);
                        std::thread::spawn(move || {
                            for k in 0..per {
                                wal.append(&[op(t as u64 * 1000 + k)]).expect("append");
                            }
                        })
                    })
                    .collect();
                hs.into_iter().for_each(|h| h.join().expect("writer"));
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per * writers as u64) as f64)
            })
        });
        // the figure itself: acknowledged appends per fdatasync over the whole bench
        let s = wal.stats();
        eprintln!(
            "wal/group_commit_{writers}: {} appends, {} fdatasyncs, {:.1} appends per fdatasync",
            s.durable_version,
            s.syncs,
            s.durable_version as f64 / s.syncs.max(1) as f64
        );
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    const RECORDS: u64 = 1_000_000;
    const SMALL: usize = 8;
    let schema = SchemaVersion::CURRENT.with_words(SMALL as u16);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (wal, _) = Wal::open(
            dir.path(),
            WalOptions {
                sync: SyncPolicy::Never,
                ..WalOptions::default()
            },
        )
        .expect("open");
        for i in 0..RECORDS {
            let fp = Fingerprint::from_words(vec![i; SMALL]);
            wal.append(&[Op::Write(Addr(i as u16), fp)])
                .expect("append");
        }
    }
    let mut g = c.benchmark_group("wal");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("recover_1M", |b| {
        b.iter(|| {
            let (wal, rec) = Wal::open(dir.path(), WalOptions::default()).expect("open");
            let mut space = BindSpace::new(schema).expect("schema");
            wal.replay(0, bindspace_wal::ReplayTarget::Latest, |r| {
                apply_record(&mut space, r)
            })
            .expect("replay");
            assert_eq!(space.version(), rec.last_version);
            space.version()
        })
    });
    g.bench_function("read_1M_bytes", |b| {
        b.iter(|| {
            let mut n = 0;
            for e in std::fs::read_dir(dir.path()).expect("dir") {
                n += std::fs::read(e.expect("entry").path()).expect("read").len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, appends, recovery);
criterion_main!(benches);
