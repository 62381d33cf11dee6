//! FaultyStore does what each fault says, to the calls it says, and counts them.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use bindspace_catalog::{ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Error};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_testkit::{Fault, FaultyStore, Op};
use bytes::Bytes;

fn memory() -> Arc<dyn BackupStore> {
    Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap())
}

fn payload() -> Bytes {
    (0..1000u32).map(|i| i as u8).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn fail_applies_to_the_next_n_calls_of_one_operation_only() {
    let s = FaultyStore::new(memory());
    s.inject(Op::Put, Fault::Fail, Some(2));
    for _ in 0..2 {
        let e = s.put(ArtifactId::snapshot(1), payload()).await.unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
    }
    // a failed put did nothing
    assert!(
        s.list(ArtifactKind::Snapshot, 0, u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    let r = s.put(ArtifactId::snapshot(1), payload()).await.unwrap();
    assert_eq!(s.get(&r).await.unwrap(), payload());
    assert_eq!(s.calls(Op::Put), 3);
    assert_eq!(s.calls(Op::List), 1);
    assert_eq!(s.calls(Op::Get), 1);
    assert_eq!(s.injected(), 2);
}

#[tokio::test]
async fn corrupt_and_drop_after_change_what_get_returns() {
    let s = FaultyStore::new(memory());
    let r = s.put(ArtifactId::delta(1, 2), payload()).await.unwrap();
    s.inject(Op::Get, Fault::Corrupt, Some(1));
    s.inject(Op::Get, Fault::DropAfter(10), Some(1));
    let corrupt = s.get(&r).await.unwrap();
    assert_eq!(corrupt.len(), payload().len());
    assert_ne!(corrupt, payload());
    assert_eq!(s.get(&r).await.unwrap(), payload().slice(..10));
    assert_eq!(s.get(&r).await.unwrap(), payload());
}

#[tokio::test]
async fn a_put_that_drops_or_corrupts_leaves_bytes_the_honest_reference_does_not_serve() {
    let s = FaultyStore::new(memory());
    s.inject(Op::Put, Fault::DropAfter(100), Some(1));
    let e = s.put(ArtifactId::snapshot(5), payload()).await.unwrap_err();
    assert!(e.is_retryable());
    // the partial object is there, under a reference of its own (100 bytes)...
    let listed = s.list(ArtifactKind::Snapshot, 0, u64::MAX).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].len, 100, "the partial object is there");
    // ...and the reference of the whole payload finds nothing
    let whole = ArtifactRef {
        id: ArtifactId::snapshot(5),
        len: payload().len() as u64,
        blake3: *blake3::hash(&payload()).as_bytes(),
    };
    assert!(s.get(&whole).await.is_err());
    // a corrupt put returns the honest reference, which the stored bytes do not match
    s.inject(Op::Put, Fault::Corrupt, Some(1));
    let r = s.put(ArtifactId::snapshot(6), payload()).await.unwrap();
    let err = s.get(&r).await.unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::NotFound { .. }),
        "{err:?}"
    );
    let stored = s.list(ArtifactKind::Snapshot, 6, 6).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(
        stored[0].blake3, r.blake3,
        "what is stored is not what was given"
    );
}

#[tokio::test]
async fn delay_waits_then_goes_through_and_heal_clears_every_rule() {
    let s = FaultyStore::new(memory());
    s.inject(
        Op::ReadManifest,
        Fault::Delay(Duration::from_millis(200)),
        None,
    );
    s.inject(Op::List, Fault::Fail, None);
    let started = Instant::now();
    assert!(s.read_manifest().await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(s.list(ArtifactKind::Delta, 0, 9).await.is_err());
    assert!(s.list(ArtifactKind::Delta, 0, 9).await.is_err());
    s.heal();
    assert!(s.list(ArtifactKind::Delta, 0, 9).await.is_ok());
    assert_eq!(s.calls(Op::List), 3);
}
