//! Issue 16, item 9: the store timeout bounds each request, not a whole upload. A large
//! artifact on a slow link (every part slow, the whole longer than the timeout) is
//! stored; a single request that hangs still fails as `Timeout`. On tokio's paused
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
    let os: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(
        InMemory::new(),
        ThrottleConfig {
            wait_put_per_call: per_request,
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
