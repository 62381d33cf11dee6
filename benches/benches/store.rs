//! The cold tier against plain object_store calls on the same bytes, same run (issue 4):
//! full-snapshot upload and download through `ObjectBackupStore` (framing, blake3,
//! verification) vs a bare `put`/`get`, on the local directory and on the S3 server
//! when `BINDSPACE_TEST_S3_URL` is set (`cargo xtask bench` starts one); and, with
//! `--features lance`, Lance snapshot write/read vs the native format.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bindspace_catalog::{ArtifactId, BackupStore};
use bindspace_core::workload::Workload;
use bindspace_core::{SchemaVersion, snapshot};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn store_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let space = Workload::new(1, SchemaVersion::CURRENT)
        .filled_space(1.0)
        .expect("valid");
    let encoded = bytes::Bytes::from(snapshot::encode(&space, 0));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut targets = vec![("local", format!("file://{}", dir.path().display()))];
    if let Ok(s3) = std::env::var("BINDSPACE_TEST_S3_URL") {
        targets.push(("s3", format!("{s3}/bench-{}", std::process::id())));
    }
    let mut g = c.benchmark_group("store");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(criterion::Throughput::Bytes(encoded.len() as u64));
    for (name, url) in &targets {
        let store = ObjectBackupStore::from_url(url, StoreOptions::default()).expect("store");
        let os: Arc<dyn ObjectStore> = store.object_store();
        let plain = store.root().clone().join("plain-object");
        // ours: encode + blake3 + upload (multipart) / download + verify + decode
        g.bench_function(format!("{name}_snapshot_upload"), |b| {
            b.iter(|| {
                let bytes = bytes::Bytes::from(snapshot::encode(black_box(&space), 0));
                rt.block_on(store.put(ArtifactId::snapshot(1), bytes))
                    .expect("put")
            })
        });
        let r = rt
            .block_on(store.put(ArtifactId::snapshot(1), encoded.clone()))
            .expect("put");
        g.bench_function(format!("{name}_snapshot_download"), |b| {
            b.iter(|| {
                let bytes = rt.block_on(store.get(&r)).expect("get");
                snapshot::decode(&bytes).expect("decode").space.len()
            })
        });
        // baseline: the same bytes, bare object_store
        g.bench_function(format!("{name}_plain_put"), |b| {
            b.iter(|| {
                rt.block_on(os.put(&plain, PutPayload::from_bytes(encoded.clone())))
                    .expect("put")
            })
        });
        g.bench_function(format!("{name}_plain_get"), |b| {
            b.iter(|| {
                rt.block_on(async { os.get(&plain).await?.bytes().await })
                    .expect("get")
                    .len()
            })
        });
    }
    g.finish();
    #[cfg(feature = "lance")]
    lance_benches(c, &rt, &space, dir.path());
}

/// Lance snapshot write/read vs the native format through the same store, same run
/// (`--features lance`; run in the `test` profile, Lance's release build is long).
#[cfg(feature = "lance")]
fn lance_benches(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    space: &bindspace_core::BindSpace,
    dir: &std::path::Path,
) {
    let url = format!("file://{}", dir.join("lance").display());
    let store = ObjectBackupStore::from_url(&url, StoreOptions::default()).expect("store");
    let mut g = c.benchmark_group("store_lance");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("local_native_write", |b| {
        b.iter(|| {
            let bytes = bytes::Bytes::from(snapshot::encode(black_box(space), 0));
            rt.block_on(store.put(ArtifactId::snapshot(1), bytes))
                .expect("put")
        })
    });
    let r = rt
        .block_on(store.put(
            ArtifactId::snapshot(1),
            bytes::Bytes::from(snapshot::encode(space, 0)),
        ))
        .expect("put");
    g.bench_function("local_native_read", |b| {
        b.iter(|| {
            let bytes = rt.block_on(store.get(&r)).expect("get");
            snapshot::decode(&bytes).expect("decode").space.len()
        })
    });
    // the S3 tier's store: the same native bytes in and out, kept as Lance versions
    // (decode + Lance write + tag / Lance read + re-encode + blake3 check)
    let url = format!("file://{}", dir.join("lance-store").display());
    let lance = bindspace_store_s3::LanceBackupStore::new(
        ObjectBackupStore::from_url(&url, StoreOptions::default()).expect("store"),
    );
    let native = bytes::Bytes::from(snapshot::encode(space, 0));
    let id = ArtifactId::snapshot(space.version());
    g.bench_function("local_lance_write", |b| {
        b.iter(|| {
            rt.block_on(lance.put(id, native.clone()))
                .expect("lance put")
        })
    });
    let r = rt
        .block_on(lance.put(id, native.clone()))
        .expect("lance put");
    let tagged = rt.block_on(lance.lance().tagged()).expect("tags");
    assert_eq!(
        tagged.len(),
        1,
        "the snapshot is held by Lance, not natively"
    );
    g.bench_function("local_lance_read", |b| {
        b.iter(|| {
            let bytes = rt.block_on(lance.get(&r)).expect("lance get");
            snapshot::decode(&bytes).expect("decode").space.len()
        })
    });
    g.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
