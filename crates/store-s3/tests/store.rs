//! The BackupStore conformance suite on memory, a local directory and a real S3 server
//! (moto, started by `cargo xtask test`), plus cross-backend copy and the WAL archiver.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use async_trait::async_trait;
use bindspace_catalog::conformance::{self, Tamper};
use bindspace_catalog::{ArtifactRef, BackupStore, BackupStoreExt};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

mod common;
use common::s3_url;

/// Flips a byte of the stored object behind the store's back.
struct FlipByte(ObjectBackupStore);

#[async_trait]
impl Tamper for FlipByte {
    async fn tamper(&self, r: &ArtifactRef) {
        let os: Arc<dyn ObjectStore> = self.0.object_store();
        let path = self.0.object_path(r);
        let mut b = os.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
        let mid = b.len() / 2;
        b[mid] ^= 0x10;
        os.put(&path, PutPayload::from(b)).await.unwrap();
    }
}

async fn conformance_on(url: &str, big: usize) {
    let store = ObjectBackupStore::from_url(
        url,
        StoreOptions {
            multipart_threshold: 6 << 20,
            part_size: 5 << 20,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let tamper = FlipByte(store.clone());
    conformance::run(Arc::new(store), &tamper, big).await;
}

/// The S3 tier's store: full snapshots in Lance, everything else as objects. The
/// suite's snapshot payloads are not BindSpace snapshots, so they stay native objects
/// (tests/lance.rs covers real ones).
#[cfg(feature = "lance")]
async fn conformance_lance_on(url: &str) {
    let store = ObjectBackupStore::from_url(url, StoreOptions::default()).unwrap();
    let tamper = FlipByte(store.clone());
    let lance = bindspace_store_s3::LanceBackupStore::new(store);
    conformance::run(Arc::new(lance), &tamper, 7 << 20).await;
}

#[cfg(feature = "lance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_lance_store_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    conformance_lance_on(&format!("file://{}", dir.path().display())).await;
}

#[cfg(feature = "lance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_lance_store_s3_server() {
    let Some(url) = s3_url("conformance-lance") else {
        return;
    };
    conformance_lance_on(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_memory() {
    conformance_on("memory://", 7 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    conformance_on(&format!("file://{}", dir.path().display()), 7 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_s3_server() {
    let Some(url) = s3_url("conformance") else {
        return;
    };
    // 13 MiB: a three-part multipart upload
    conformance_on(&url, 13 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_backup_copied_to_s3_restores_byte_identical() {
    let Some(url) = s3_url("cross") else { return };
    let dir = tempfile::tempdir().unwrap();
    let local = ObjectBackupStore::from_url(
        &format!("file://{}", dir.path().display()),
        StoreOptions::default(),
    )
    .unwrap();
    let s3 = ObjectBackupStore::from_url(&url, StoreOptions::default()).unwrap();
    let space = conformance::write_chain(&local, 3, 2).await;
    assert_eq!(local.copy_all_to(&s3).await.unwrap(), 3);
    // restore from S3 alone
    assert_eq!(conformance::restore_chain(&s3).await, space);
    // byte-identical artifacts on both sides
    for kind in bindspace_catalog::ArtifactKind::ALL {
        assert_eq!(
            local.list(kind, 0, u64::MAX).await.unwrap(),
            s3.list(kind, 0, u64::MAX).await.unwrap()
        );
    }
}

#[test]
fn wal_segments_archive_into_the_store_and_replay_from_it() {
    use bindspace_core::{Addr, Fingerprint};
    use bindspace_wal::{Archiver, Op, ReplayTarget, SyncPolicy, Wal, WalOptions};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let arch_dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BackupStore> = Arc::new(
        ObjectBackupStore::from_url(
            &format!("file://{}", arch_dir.path().display()),
            StoreOptions::default(),
        )
        .unwrap(),
    );
    let archiver = bindspace_catalog::StoreArchiver::new(store.clone(), rt.handle().clone());
    let opts = WalOptions {
        sync: SyncPolicy::Never,
        segment_size: 2048,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), opts).unwrap();
    for i in 1..=60u64 {
        wal.append(&[Op::Write(
            Addr(i as u16),
            Fingerprint::from_words(vec![i; 8]),
        )])
        .unwrap();
    }
    let sealed = wal.sealed_segments();
    assert!(sealed.len() >= 2);
    let removed = wal.checkpoint(sealed.last().unwrap().1, &archiver).unwrap();
    assert_eq!(removed.len(), sealed.len());
    assert_eq!(
        wal.checkpoint(sealed.last().unwrap().1, &archiver)
            .unwrap()
            .len(),
        0
    );
    // everything up to the checkpoint now comes from the store
    let mut n = 0;
    let mut r =
        bindspace_wal::Replayer::new(0, (u64::MAX, u64::MAX), |_rec: &bindspace_wal::Record| {
            n += 1;
            Ok(())
        });
    for s in archiver.list().unwrap() {
        let bytes = archiver.fetch(&s).unwrap();
        r.feed_segment(&bytes, s.first_version, std::path::Path::new("archive"))
            .unwrap();
    }
    assert_eq!(r.finish().unwrap(), sealed.last().unwrap().1);
    assert_eq!(n as u64, sealed.last().unwrap().1);
    let mut rest = 0;
    wal.replay(sealed.last().unwrap().1, ReplayTarget::Latest, |_| {
        rest += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n + rest, 60);
}

// Issue 18: an `s3://` URL names its server itself (two regions or servers in one
// command); an option it does not know, or a credential, is refused, not ignored.
#[test]
fn an_s3_url_names_its_endpoint_and_refuses_unknown_options() {
    let ok = ObjectBackupStore::from_url(
        "s3://bucket/prefix?endpoint=http://127.0.0.1:9&allow_http=true&region=eu-west-1",
        StoreOptions::default(),
    )
    .unwrap();
    assert_eq!(ok.root().as_ref(), "prefix");
    for bad in [
        "s3://bucket/prefix?secret_access_key=x",
        "s3://bucket/prefix?endpont=http://127.0.0.1:9",
    ] {
        let e = ObjectBackupStore::from_url(bad, StoreOptions::default()).unwrap_err();
        assert!(e.to_string().contains("unknown URL option"), "{bad}: {e}");
    }
}
