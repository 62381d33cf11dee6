//! Issue 16, item 12: a repository's lease is renewed while its holder works, and
//! fences the holder's catalog commits: a holder that stalled past its lease, which
//! another writer then took over, commits nothing. On tokio's paused clock and a
//! manual clock, so no test waits on the wall clock.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use bindspace_catalog::{BackupStore, Error, Repository};
use bindspace_core::ManualClock;
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};

const TTL: Duration = Duration::from_secs(60);

fn setup() -> (Arc<dyn BackupStore>, Arc<ManualClock>, Repository) {
    let store: Arc<dyn BackupStore> =
        Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let repo = Repository::new(vec![store.clone()], clock.clone(), "writer-a")
        .unwrap()
        .with_lease_ttl(TTL);
    (store, clock, repo)
}

async fn generation(store: &Arc<dyn BackupStore>) -> u64 {
    store.read_manifest().await.unwrap().map_or(0, |(g, _)| g)
}

#[tokio::test(start_paused = true)]
async fn a_holder_working_longer_than_its_lease_keeps_it_by_renewal() {
    let (store, clock, repo) = setup();
    repo.init().await.unwrap();
    let before = generation(&store).await;
    repo.with_lease(async |r| {
        // five minutes of work under a one-minute lease
        for _ in 0..10 {
            clock.advance(30_000_000);
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        r.update_catalog(|_| Ok(())).await
    })
    .await
    .unwrap();
    assert_eq!(generation(&store).await, before + 1);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_holder_whose_lease_was_taken_over_commits_nothing() {
    let (store, clock, _) = setup();
    // a second destination: the lease lives on the primary only, whose fenced commit
    // comes first, so a stale holder reaches no secondary either
    let second: Arc<dyn BackupStore> =
        Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap());
    let both = vec![store.clone(), second.clone()];
    let repo = Repository::new(both.clone(), clock.clone(), "writer-a")
        .unwrap()
        .with_lease_ttl(TTL);
    repo.init().await.unwrap();
    let other = Repository::new(both, clock.clone(), "writer-b")
        .unwrap()
        .with_lease_ttl(TTL);
    let before = generation(&store).await;
    let before_second = generation(&second).await;
    let res = repo
        .with_lease(async |r| {
            // stalled (no renewal ran: tokio's clock stood still) past its expiry,
            // while another writer took the lease over and committed
            clock.advance(61_000_000);
            other
                .with_lease(async |o| o.update_catalog(|_| Ok(())).await)
                .await?;
            r.update_catalog(|_| Ok(())).await
        })
        .await;
    match res {
        Err(e @ Error::LeaseLost { .. }) => assert!(e.to_string().contains("writer-a"), "{e}"),
        other => panic!("the stalled holder's commit: {other:?}"),
    }
    assert_eq!(
        generation(&store).await,
        before + 1,
        "only the new holder's commit landed"
    );
    assert_eq!(
        generation(&second).await,
        before_second + 1,
        "only the new holder's commit landed on the secondary"
    );
}
