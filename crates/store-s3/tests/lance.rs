//! Lance snapshots: seven versions written, the dataset reopened, each restored
//! bit-for-bit; a point lookup equals the full restore's value. On the local directory
//! always, and on the S3 server under `cargo xtask test`. And [`LanceBackupStore`]:
//! native snapshot artifacts in, the same bytes out, through Lance.
#![cfg(feature = "lance")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_catalog::{ArtifactId, ArtifactKind, BackupStore, Error};
use bindspace_core::workload::Workload;
use bindspace_core::{Addr, SchemaVersion, snapshot};
use bindspace_store_s3::lance_snapshots::LanceSnapshots;
use bindspace_store_s3::{LanceBackupStore, ObjectBackupStore, StoreOptions};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

mod common;
use common::s3_url;

async fn seven_versions(url: &str) {
    let store = ObjectBackupStore::from_url(url, StoreOptions::default()).unwrap();
    let schema = SchemaVersion::CURRENT.with_words(16);
    let mut w = Workload::new(8, schema);
    let mut space = w.filled_space(0.2).unwrap();
    let mut written = vec![];
    {
        let lance = LanceSnapshots::new(&store);
        // more than four: a local directory lists unsorted, which once made the fifth
        // commit see a stale latest manifest
        for _ in 0..7 {
            let snap = lance.write(&space).await.unwrap();
            written.push((snap, space.clone()));
            w.run(&mut space, 500).unwrap();
        }
    }
    // reopen from scratch
    let lance = LanceSnapshots::new(&store);
    let listed = lance.list().await.unwrap();
    assert_eq!(listed, written.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    for (snap, expected) in &written {
        let restored = lance.restore(snap.dataset_version).await.unwrap();
        assert_eq!(
            &restored, expected,
            "dataset version {}",
            snap.dataset_version
        );
        for a in [0u16, 1, 77, 4095, 65535] {
            let got = lance.read(snap.dataset_version, Addr(a)).await.unwrap();
            assert_eq!(
                got.as_deref(),
                restored.read(Addr(a)),
                "addr {a} at {}",
                snap.dataset_version
            );
        }
        let occupied = restored.iter().next().unwrap().0;
        assert!(
            lance
                .read(snap.dataset_version, occupied)
                .await
                .unwrap()
                .is_some()
        );
    }
}

/// Fulls of a Lance store live in Lance only: the native layout holds none.
async fn assert_no_native_snapshots(inner: &ObjectBackupStore) {
    let native = inner
        .list(ArtifactKind::Snapshot, 0, u64::MAX)
        .await
        .unwrap();
    assert!(native.is_empty(), "native snapshot objects: {native:?}");
}

fn local_url(dir: &tempfile::TempDir) -> String {
    format!("file://{}", dir.path().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lance_snapshots_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    seven_versions(&local_url(&dir)).await;
    // the dataset went through the repository's own object store, under its root
    assert!(dir.path().join("snapshots.lance").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lance_snapshots_on_the_s3_server() {
    if let Some(url) = s3_url("lance") {
        seven_versions(&url).await;
    }
}

/// Files under `snapshots.lance/data/`.
async fn data_files(store: &ObjectBackupStore) -> Vec<object_store::path::Path> {
    use futures::TryStreamExt;
    let prefix = store.root().clone().join("snapshots.lance").join("data");
    store
        .object_store()
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap()
}

async fn through_the_lance_store(url: &str) {
    let inner = ObjectBackupStore::from_url(url, StoreOptions::default()).unwrap();
    let store = LanceBackupStore::new(inner.clone());
    let schema = SchemaVersion::CURRENT.with_words(16);
    let mut w = Workload::new(9, schema);
    let mut space = w.filled_space(0.3).unwrap();
    let mut put = vec![];
    for round in 0..3u64 {
        let bytes = bytes::Bytes::from(snapshot::encode(&space, 1_000 + round));
        let id = ArtifactId::snapshot(space.version());
        let r = store.put(id, bytes.clone()).await.unwrap();
        put.push((r, bytes));
        w.run(&mut space, 300).unwrap();
    }
    // in Lance, not as native objects
    assert_no_native_snapshots(&inner).await;
    assert_eq!(store.lance().tagged().await.unwrap().len(), 3);
    // a fresh store over the same place lists and returns the very bytes put
    let store = LanceBackupStore::new(inner.clone());
    let listed = store
        .list(ArtifactKind::Snapshot, 0, u64::MAX)
        .await
        .unwrap();
    assert_eq!(listed, put.iter().map(|(r, _)| *r).collect::<Vec<_>>());
    for (r, bytes) in &put {
        assert_eq!(&store.get(r).await.unwrap(), bytes, "{}", r.id);
    }
    // a reference that does not match what Lance holds is reported, not served
    let mut wrong = put[0].0;
    wrong.blake3[0] ^= 1;
    assert!(matches!(
        store.get(&wrong).await,
        Err(Error::Corrupt { .. })
    ));
    // putting one again (a retried backup) moves its tag; the old version goes
    let files = data_files(&inner).await.len();
    assert_eq!(
        store.put(put[0].0.id, put[0].1.clone()).await.unwrap(),
        put[0].0
    );
    assert_eq!(
        store.put(put[0].0.id, put[0].1.clone()).await.unwrap(),
        put[0].0
    );
    assert_eq!(store.get(&put[0].0).await.unwrap(), put[0].1);
    assert_eq!(
        store
            .list(ArtifactKind::Snapshot, 0, u64::MAX)
            .await
            .unwrap(),
        listed
    );
    // (Lance keeps the newest version's files until a newer write: +1 at most)
    assert!(
        data_files(&inner).await.len() <= files + 1,
        "re-puts leave no garbage"
    );
    // deleting one removes its tag and its data files; the others still restore
    let before = data_files(&inner).await.len();
    store.delete(put[1].0.id).await.unwrap();
    assert!(
        data_files(&inner).await.len() < before,
        "data files reclaimed"
    );
    assert_eq!(
        store
            .list(ArtifactKind::Snapshot, 0, u64::MAX)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store.get(&put[1].0).await.is_err());
    for i in [0, 2] {
        assert_eq!(store.get(&put[i].0).await.unwrap(), put[i].1);
    }
    // bytes that are not a snapshot at that version stay a native object, unchanged
    let odd = ArtifactId::snapshot(999_999);
    let r = store.put(odd, put[0].1.clone()).await.unwrap();
    assert_eq!(store.get(&r).await.unwrap(), put[0].1);
    assert_eq!(
        inner
            .list(ArtifactKind::Snapshot, 0, u64::MAX)
            .await
            .unwrap(),
        vec![r]
    );
    // damage to the Lance data behind the store's back never comes back as a snapshot
    let os = inner.object_store();
    for f in data_files(&inner).await {
        let mut b = os.get(&f).await.unwrap().bytes().await.unwrap().to_vec();
        for i in (0..b.len()).step_by(997) {
            b[i] ^= 0x40;
        }
        os.put(&f, PutPayload::from(b)).await.unwrap();
    }
    for i in [0, 2] {
        let got = store.get(&put[i].0).await;
        assert!(
            got.is_err(),
            "damaged Lance data was served for {}",
            put[i].0.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lance_store_keeps_snapshots_in_lance_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    through_the_lance_store(&local_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lance_store_keeps_snapshots_in_lance_on_the_s3_server() {
    if let Some(url) = s3_url("lance-store") {
        through_the_lance_store(&url).await;
    }
}

/// The Lance form of the v1 golden snapshot (`tests/golden/lance-v1/`, made from
/// `snapshot-v1.bin` by this store; `BINDSPACE_BLESS=1` writes it when missing, never
/// over an existing one): a dataset written by an earlier build must keep giving back
/// the very bytes that went in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lance_v1_golden_still_restores_byte_identical() {
    let root = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    )
    .join("../../tests/golden");
    let native = std::fs::read(root.join("snapshot-v1.bin")).expect("committed golden");
    let golden = root.join("lance-v1");
    let id = ArtifactId::snapshot(snapshot::decode(&native).unwrap().space.version());
    if !golden.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::create_dir_all(&golden).unwrap();
        let url = format!("file://{}", golden.canonicalize().unwrap().display());
        let store = LanceBackupStore::new(
            ObjectBackupStore::from_url(&url, StoreOptions::default()).unwrap(),
        );
        store.put(id, native.clone().into()).await.unwrap();
    }
    assert!(
        golden.join("snapshots.lance").is_dir(),
        "tests/golden/lance-v1 is committed"
    );
    // read from a copy: nothing may change the committed files
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&golden, dir.path());
    let url = format!("file://{}", dir.path().display());
    let inner = ObjectBackupStore::from_url(&url, StoreOptions::default()).unwrap();
    assert_no_native_snapshots(&inner).await;
    let store = LanceBackupStore::new(inner);
    let listed = store
        .list(ArtifactKind::Snapshot, 0, u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![bindspace_catalog::ArtifactRef::of(id, &native)]
    );
    assert_eq!(store.get(&listed[0]).await.unwrap(), native);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
