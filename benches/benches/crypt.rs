//! Encryption and compression at rest (issue 20): a full backup of a full 82 MB space
//! into a local directory (encode + seal/pack + blake3 + write) plain, sealed, and
//! packed then sealed; the same without the write (the CPU path alone); and
//! compression ratio and speed on the artifacts a repository holds. The
//! ratios are printed once (they do not vary); criterion times each path.
//!   cargo bench -p bindspace-benches --features crypt --bench crypt

use std::hint::black_box;
use std::time::Duration;

use bindspace_catalog::packed::{self, FAST_LEVEL, FULL_LEVEL};
use bindspace_catalog::{ArtifactId, ArtifactRef, BackupStore, SealedStore};
use bindspace_core::workload::Workload;
use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion, snapshot};
use bindspace_crypt::{Argon2Cost, Keyring, SeededEntropy, SlotSecret};
use bindspace_store_s3::ObjectBackupStore;
use bindspace_wal::{Op, Record, RecordOp, encode_frame, segment};
use bindspace_xor_delta as xd;
use criterion::{Criterion, criterion_group, criterion_main};

/// `count` occupied addresses changed: every word gets `bits` random bits flipped, or
/// (`bits == 0`) the whole fingerprint is rewritten. Returns the changed space and the
/// WAL segment holding the same writes.
fn changed(
    wl: &mut Workload,
    base: &BindSpace,
    count: usize,
    bits: u32,
    seed: u64,
) -> (BindSpace, Vec<u8>) {
    let mut s = base.clone();
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut wal = segment::encode_header(base.version() + 1).to_vec();
    let step = (base.len() / count.max(1)).max(1);
    for (i, (a, _)) in base.iter().step_by(step).take(count).enumerate() {
        let fp = if bits == 0 {
            wl.fingerprint()
        } else {
            let mut w = base.read(a).expect("occupied").to_vec();
            for word in &mut w {
                for _ in 0..bits {
                    *word ^= 1 << (next() % 64);
                }
            }
            Fingerprint::from_words(w)
        };
        s.write(Addr(a.0), &fp).expect("valid");
        encode_frame(
            &Record {
                version: base.version() + 1 + i as u64,
                timestamp_us: 1_700_000_000_000_000 + i as u64,
                in_batch: false,
                op: RecordOp::Op(Op::Write(a, fp)),
            },
            &mut wal,
        );
    }
    (s, wal)
}

fn crypt(c: &mut Criterion) {
    let schema = SchemaVersion::CURRENT;
    let mut wl = Workload::new(7, schema);
    let full = wl.filled_space(1.0).expect("valid");
    let (ring, keys) = Keyring::create(
        "bench-repo",
        &SlotSecret::Passphrase("bench".into()),
        Argon2Cost::TEST,
        1,
        &mut SeededEntropy::new(1),
    )
    .expect("keyring");
    let _ = ring;
    let id = ArtifactId::snapshot(full.version());
    let ctx = bindspace_catalog::seal_context(&id);

    // compression ratios, printed once
    let snap = snapshot::encode(&full, 1);
    let mut rows = vec![(
        "full space, random fingerprints".to_string(),
        snap.clone(),
        FULL_LEVEL,
    )];
    for (label, bits) in [
        ("few bits flipped per word (2)", 2),
        ("whole fingerprints rewritten", 0),
    ] {
        let (next, wal) = changed(&mut wl, &full, full.len() / 10, bits, 9);
        let delta = xd::encode(&xd::compute(&full, &next, 2).expect("same schema"));
        rows.push((
            format!("incremental, 10% of addresses, {label}"),
            delta,
            FAST_LEVEL,
        ));
        rows.push((
            format!("WAL segment, the same writes, {label}"),
            wal,
            FAST_LEVEL,
        ));
    }
    println!("\ncompression (zstd, stored only when it saves 10%):");
    for (label, bytes, level) in &rows {
        #[allow(clippy::disallowed_methods)] // a one-off figure printed beside criterion's
        let t = std::time::Instant::now();
        let packed = packed::pack(bytes, *level);
        let secs = t.elapsed().as_secs_f64();
        let z = zstd::bulk::compress(bytes, *level).expect("zstd").len();
        println!(
            "  {label}: {} bytes; zstd -{level} would give {:.3} of it; stored {} ({:.3}); {:.0} MB/s",
            bytes.len(),
            z as f64 / bytes.len() as f64,
            if packed.is_some() { "packed" } else { "raw" },
            packed
                .as_ref()
                .map_or(1.0, |p| p.len() as f64 / bytes.len() as f64),
            bytes.len() as f64 / secs / 1e6
        );
    }

    let mut g = c.benchmark_group("crypt");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("full_plain", |b| {
        b.iter(|| {
            let bytes = snapshot::encode(black_box(&full), 1);
            black_box(ArtifactRef::of(id, &bytes))
        })
    });
    g.bench_function("full_sealed", |b| {
        b.iter(|| {
            let bytes = snapshot::encode(black_box(&full), 1);
            let sealed = keys.seal(&ctx, &bytes).expect("seal");
            black_box(ArtifactRef::of(id, &sealed))
        })
    });
    g.bench_function("full_packed_sealed", |b| {
        b.iter(|| {
            let bytes = snapshot::encode(black_box(&full), 1);
            let body = packed::pack(&bytes, FULL_LEVEL);
            let sealed = keys
                .seal(&ctx, body.as_deref().unwrap_or(&bytes))
                .expect("seal");
            black_box(ArtifactRef::of(id, &sealed))
        })
    });
    // the whole put into a local directory (object_store's local files)
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = std::sync::Arc::new(keys);
    let raw: std::sync::Arc<dyn BackupStore> = std::sync::Arc::new(
        ObjectBackupStore::from_url(
            &format!("file://{}", dir.path().display()),
            Default::default(),
        )
        .expect("local store"),
    );
    let stores: [(&str, std::sync::Arc<dyn BackupStore>); 3] = [
        ("backup_local_plain", raw.clone()),
        (
            "backup_local_sealed",
            std::sync::Arc::new(SealedStore::new(raw.clone(), keys.clone())),
        ),
        (
            "backup_local_packed_sealed",
            std::sync::Arc::new(SealedStore::new(raw.clone(), keys.clone()).with_packing(true)),
        ),
    ];
    for (name, store) in stores {
        g.bench_function(name, |b| {
            b.iter(|| {
                let bytes = bytes::Bytes::from(snapshot::encode(black_box(&full), 1));
                rt.block_on(store.put(id, bytes)).expect("put")
            })
        });
    }
    let sealed = keys.seal(&ctx, &snap).expect("seal");
    g.bench_function("open_full", |b| {
        b.iter(|| black_box(keys.open(&ctx, black_box(&sealed)).expect("open")))
    });
    g.finish();
}

criterion_group!(benches, crypt);
criterion_main!(benches);
