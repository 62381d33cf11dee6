//! Issue 16, item 9: the store timeout bounds each request, not a whole upload or
//! download. A large artifact on a slow link (every part slow, the whole longer than the
//! timeout) is stored and read back; a single request that hangs still fails as
//! `Timeout`. On tokio's paused
//! clock, so the test takes no wall time.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use bindspace_catalog::{ArtifactId, BackupStore, Error};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::throttle::{ThrottleConfig, ThrottledStore};

fn slow_store(per_request: Duration) -> ObjectBackupStore {
    slow_store_both(per_request, Duration::ZERO, Duration::ZERO)
}

/// A store whose every put request takes `put`, and every get request `get` plus
/// `get_byte` for each byte it returns.
fn slow_store_both(put: Duration, get: Duration, get_byte: Duration) -> ObjectBackupStore {
    let os: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(
        InMemory::new(),
        ThrottleConfig {
            wait_put_per_call: put,
            wait_get_per_call: get,
            wait_get_per_byte: get_byte,
            ..ThrottleConfig::default()
        },
    ));
    let opts = StoreOptions {
        op_timeout: Duration::from_secs(1),
        multipart_threshold: 1 << 20,
        part_size: 5 << 20,
        ..StoreOptions::default()
    };
    ObjectBackupStore::new(os, Path::from("repo"), "memory://", opts)
}

fn artifact() -> bytes::Bytes {
    (0..(21u32 << 20))
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

#[tokio::test(start_paused = true)]
async fn a_large_upload_slower_than_the_timeout_succeeds_part_by_part() {
    // five parts of 0.6 s each: 3 s in all, under a 1 s timeout per request
    let store = slow_store(Duration::from_millis(600));
    let bytes = artifact();
    let started = tokio::time::Instant::now();
    let r = store
        .put(ArtifactId::snapshot(7), bytes.clone())
        .await
        .unwrap();
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the upload took {:?}: not slower than the timeout, the test shows nothing",
        started.elapsed()
    );
    assert_eq!(store.get(&r).await.unwrap(), bytes);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_hangs_still_times_out() {
    let store = slow_store(Duration::from_secs(5));
    match store.put(ArtifactId::snapshot(8), artifact()).await {
        Err(e @ Error::Timeout { .. }) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("part 1 of 5"), "{e}");
        }
        other => panic!("a hung part: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_large_download_slower_than_the_timeout_arrives_range_by_range() {
    // 21 MiB at 140 ns a byte: 3 s in all, ranges of 5 MiB under a 1 s timeout each
    let store = slow_store_both(Duration::ZERO, Duration::ZERO, Duration::from_nanos(140));
    let bytes = artifact();
    let r = store
        .put(ArtifactId::snapshot(9), bytes.clone())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let got = store.get(&r).await.unwrap();
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the download took {:?}: not slower than the timeout, the test shows nothing",
        started.elapsed()
    );
    assert_eq!(got, bytes);
}

#[tokio::test(start_paused = true)]
async fn a_download_request_that_hangs_still_times_out() {
    let store = slow_store_both(Duration::ZERO, Duration::from_secs(5), Duration::ZERO);
    let r = store
        .put(ArtifactId::snapshot(10), artifact())
        .await
        .unwrap();
    match store.get(&r).await {
        Err(e @ Error::Timeout { .. }) => assert!(e.is_retryable()),
        other => panic!("a hung range: {other:?}"),
    }
}
