//! Lance snapshots: seven versions written, the dataset reopened, each restored
//! bit-for-bit; a point lookup equals the full restore's value. On the local directory
//! always, and on the S3 server under `cargo xtask test`.
#![cfg(feature = "lance")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_core::workload::Workload;
use bindspace_core::{Addr, SchemaVersion};
use bindspace_store_s3::lance_snapshots::LanceSnapshots;
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lance_snapshots_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    seven_versions(&format!("file://{}", dir.path().display())).await;
    // the dataset went through the repository's own object store, under its root
    assert!(dir.path().join("snapshots.lance").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lance_snapshots_on_the_s3_server() {
    let Some(base) =
        bindspace_catalog::conformance::service_env("BINDSPACE_TEST_S3_URL", "an S3 server")
    else {
        return;
    };
    seven_versions(&format!("{base}/lance-{}", std::process::id())).await;
}
