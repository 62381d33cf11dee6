//! The conformance suite every [`BackupStore`] passes, run unchanged against each
//! implementation (memory, local directory, S3 server, Redis, PostgreSQL).
//!
//! Give it a store over an empty repository and a [`Tamper`] that can change stored
//! bytes behind the store's back.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupEntry, BackupKind, BackupStatus, BackupStore,
    Error, Manifest, RestorePoint,
};

/// Damages stored bytes without going through the store's checks.
#[async_trait]
pub trait Tamper: Send + Sync {
    /// Changes the stored bytes of `r` (flip a byte, truncate, replace).
    async fn tamper(&self, r: &ArtifactRef);
}

fn payload(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn entry(id: &str, to: u64) -> BackupEntry {
    BackupEntry {
        id: id.to_owned(),
        kind: BackupKind::Full,
        parent: None,
        from_version: to,
        to_version: to,
        start_us: 1,
        end_us: 2,
        schema: bindspace_core::SchemaVersion::CURRENT.into(),
        size: 3,
        blake3: "00".repeat(32),
        artifact: ArtifactId::snapshot(to),
        locations: vec!["conformance".into()],
        status: BackupStatus::Complete,
        timeline: 1,
        root: None,
        format: None,
    }
}

/// Runs every check; panics with the store's name and the failed expectation.
/// `big` is the size of the large artifact (at least a few MiB exercises multipart).
pub async fn run(store: Arc<dyn BackupStore>, tamper: &dyn Tamper, big: usize) {
    let name = store.name();
    round_trips(&*store, big).await;
    list_by_range(&*store).await;
    list_since(&*store).await;
    delete(&*store).await;
    manifest_commits(store.clone()).await;
    lease(&*store).await;
    fencing(&*store).await;
    holds(&*store).await;
    corruption(&*store, tamper).await;
    eprintln!("conformance: {name}: all checks passed");
}

/// Every artifact kind round-trips byte-identical, including an empty and a large one.
pub async fn round_trips(store: &dyn BackupStore, big: usize) {
    let cases = [
        (ArtifactId::snapshot(7), payload(1, big)),
        (ArtifactId::delta(7, 9), payload(2, 1000)),
        (ArtifactId::wal(1, 9), payload(3, 4096)),
        (ArtifactId::delta(9, 9), Bytes::new()),
    ];
    for (id, bytes) in cases {
        let r = store
            .put(id, bytes.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: put {id}: {e}", store.name()));
        assert_eq!(
            r,
            ArtifactRef::of(id, &bytes),
            "{}: put returned a wrong reference",
            store.name()
        );
        let got = store
            .get(&r)
            .await
            .unwrap_or_else(|e| panic!("{}: get {id}: {e}", store.name()));
        assert!(got == bytes, "{}: {id} did not round-trip", store.name());
        // listed with the same reference
        let (lo, hi) = id.versions();
        let listed = store.list(id.kind(), lo, hi).await.expect("list");
        assert!(
            listed.contains(&r),
            "{}: {id} not listed: {listed:?}",
            store.name()
        );
        store.delete(id).await.expect("cleanup");
    }
}

/// Listing returns exactly the artifacts overlapping the range, ascending.
pub async fn list_by_range(store: &dyn BackupStore) {
    for v in (10..=50).step_by(10) {
        store
            .put(ArtifactId::delta(v, v + 10), payload(v as u8, 10))
            .await
            .expect("put");
        store
            .put(ArtifactId::snapshot(v), payload(v as u8, 10))
            .await
            .expect("put");
    }
    let ids = |v: Vec<ArtifactRef>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(ArtifactKind::Delta, 25, 41).await.expect("list")),
        vec![
            ArtifactId::delta(20, 30),
            ArtifactId::delta(30, 40),
            ArtifactId::delta(40, 50)
        ],
        "{}: delta range",
        store.name()
    );
    assert_eq!(
        ids(store
            .list(ArtifactKind::Snapshot, 0, 30)
            .await
            .expect("list")),
        vec![
            ArtifactId::snapshot(10),
            ArtifactId::snapshot(20),
            ArtifactId::snapshot(30)
        ],
        "{}: snapshot range",
        store.name()
    );
    assert!(
        store
            .list(ArtifactKind::WalSegment, 0, u64::MAX)
            .await
            .expect("list")
            .is_empty()
    );
    for v in (10..=50).step_by(10) {
        store
            .delete(ArtifactId::delta(v, v + 10))
            .await
            .expect("delete");
        store.delete(ArtifactId::snapshot(v)).await.expect("delete");
    }
}

/// `list_since` returns exactly one history's artifacts from a first version on, in
/// key order, whatever other histories hold around them.
pub async fn list_since(store: &dyn BackupStore) {
    let ids = [
        ArtifactId::wal(1, 10),
        ArtifactId::wal(11, 20),
        ArtifactId::wal(21, 30),
        ArtifactId::wal(11, 15).on(2),
        ArtifactId::wal(16, 40).on(2),
        ArtifactId::wal(30, 31).on(3),
        ArtifactId::wal(5, 9).on(12),
    ];
    for (i, id) in ids.iter().enumerate() {
        store.put(*id, payload(i as u8, 10)).await.expect("put");
    }
    let since = |t, first| async move {
        store
            .list_since(ArtifactKind::WalSegment, t, first)
            .await
            .expect("list_since")
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        since(1, 11).await,
        vec![ArtifactId::wal(11, 20), ArtifactId::wal(21, 30)],
        "{}: timeline 1 from 11",
        store.name()
    );
    assert_eq!(
        since(1, 0).await,
        ids[..3].to_vec(),
        "{}: timeline 1 whole",
        store.name()
    );
    assert_eq!(
        since(2, 12).await,
        vec![ArtifactId::wal(16, 40).on(2)],
        "{}: timeline 2 from 12",
        store.name()
    );
    assert_eq!(
        since(3, 31).await,
        vec![],
        "{}: timeline 3 past its end",
        store.name()
    );
    assert_eq!(
        since(12, 1).await,
        vec![ArtifactId::wal(5, 9).on(12)],
        "{}: timeline 12",
        store.name()
    );
    assert_eq!(
        since(4, 0).await,
        vec![],
        "{}: no such timeline",
        store.name()
    );
    for id in ids {
        store.delete(id).await.expect("delete");
    }
}

/// A deleted artifact is gone; deleting it again is fine.
pub async fn delete(store: &dyn BackupStore) {
    let id = ArtifactId::wal(100, 200);
    let r = store.put(id, payload(9, 64)).await.expect("put");
    store.delete(id).await.expect("delete");
    store
        .delete(id)
        .await
        .expect("deleting twice is not an error");
    assert!(
        store
            .list(ArtifactKind::WalSegment, 100, 200)
            .await
            .expect("list")
            .is_empty()
    );
    match store.get(&r).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{}: get after delete: {other:?}", store.name()),
    }
}

/// Optimistic concurrency: exactly one of two committers from the same generation wins,
/// and no update is lost.
pub async fn manifest_commits(store: Arc<dyn BackupStore>) {
    let name = store.name();
    assert!(
        store.read_manifest().await.expect("read").is_none(),
        "{name}: fresh repository has a manifest"
    );
    let mut m = Manifest::default();
    m.entries.push(entry("a", 1));
    assert_eq!(store.commit_manifest(0, &m).await.expect("first commit"), 1);
    match store.commit_manifest(0, &m).await {
        Err(Error::Conflict {
            expected: 0, found, ..
        }) => assert_eq!(found, 1),
        other => panic!("{name}: stale commit was not a conflict: {other:?}"),
    }
    let (g, back) = store.read_manifest().await.expect("read").expect("present");
    assert_eq!((g, &back), (1, &m));
    // Two concurrent committers from generation 1.
    let mut m1 = back.clone();
    m1.entries.push(entry("b", 2));
    let mut m2 = back.clone();
    m2.restore_points.push(RestorePoint {
        name: "p".into(),
        version: 1,
        created_us: 3,
        guaranteed: true,
        timeline: 1,
        root: None,
    });
    let (s1, s2) = (store.clone(), store.clone());
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move { s1.commit_manifest(1, &m1).await.map(|g| (g, m1)) }),
        tokio::spawn(async move { s2.commit_manifest(1, &m2).await.map(|g| (g, m2)) }),
    );
    let (r1, r2) = (r1.expect("task"), r2.expect("task"));
    let (winner, loser) = match (r1, r2) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("{name}: expected exactly one winner, got {a:?} and {b:?}"),
    };
    assert!(
        matches!(loser, Error::Conflict { .. }),
        "{name}: loser got {loser:?}"
    );
    let (g, now) = store.read_manifest().await.expect("read").expect("present");
    assert_eq!(g, 2);
    assert_eq!(
        now, winner.1,
        "{name}: the stored manifest is not the winner's"
    );
    // The loser retries on top of the winner: nothing lost.
    let mut retry = now.clone();
    retry.entries.push(entry("c", 3));
    assert_eq!(store.commit_manifest(2, &retry).await.expect("retry"), 3);
    assert_eq!(
        store.read_manifest().await.expect("read").expect("present"),
        (3, retry)
    );
    // what a repair commits over, and the older generations a read falls back to
    assert_eq!(store.manifest_generation().await.expect("generation"), 3);
    let older = store.older_manifests().await.expect("older");
    assert!(
        older.windows(2).all(|w| w[0] > w[1]) && older.iter().all(|&g| g < 3),
        "{name}: older generations not newest first below the newest: {older:?}"
    );
    for g in older {
        let back = store
            .read_manifest_at(g)
            .await
            .expect("an older generation");
        let want = if g == 1 { &m } else { &now };
        assert_eq!(&back, want, "{name}: generation {g}");
    }
}

/// The lease excludes a second writer, names the holder, expires, and fences.
pub async fn lease(store: &dyn BackupStore) {
    let name = store.name();
    let l1 = store
        .acquire_lease("writer-1", 1_000, 60_000_000)
        .await
        .expect("acquire");
    assert_eq!(l1.holder, "writer-1");
    match store.acquire_lease("writer-2", 2_000, 60_000_000).await {
        Err(e @ Error::BackupInProgress { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("backup in progress") && msg.contains("writer-1"),
                "{name}: {msg}"
            );
        }
        other => panic!("{name}: second writer got {other:?}"),
    }
    store.release_lease(&l1).await.expect("release");
    let l2 = store
        .acquire_lease("writer-2", 3_000, 1_000)
        .await
        .expect("free after release");
    // expired: taken over
    let l3 = store
        .acquire_lease("writer-3", 10_000, 60_000_000)
        .await
        .expect("expired lease is taken over");
    assert_ne!(l2.token, l3.token);
    // the old holder's release must not free the new holder's lease
    store
        .release_lease(&l2)
        .await
        .expect("stale release is a no-op");
    assert!(
        matches!(
            store.acquire_lease("writer-4", 20_000, 1_000).await,
            Err(Error::BackupInProgress { .. })
        ),
        "{name}: a stale release freed the current lease"
    );
    store.release_lease(&l3).await.expect("release");
}

/// A lease fences the catalog: commits under it land while it is current (renewal
/// keeps it so past its first expiry); once it expired and another writer took it over,
/// or it was released, its commits and renewals are refused and change nothing.
pub async fn fencing(store: &dyn BackupStore) {
    let name = store.name();
    const S: u64 = 1_000_000;
    let (g, mut m) = store
        .read_manifest()
        .await
        .expect("read")
        .unwrap_or((0, Manifest::default()));
    let l1 = store
        .acquire_lease("writer-1", 1_000 * S, 60 * S)
        .await
        .expect("acquire");
    m.entries.push(entry("fenced-1", 1));
    let g1 = store
        .commit_manifest_fenced(g, &m, &l1, 1_001 * S)
        .await
        .expect("a commit under the current lease");
    let l1 = store
        .renew_lease(&l1, 1_050 * S, 60 * S)
        .await
        .expect("renewal of the current lease");
    assert_eq!(l1.expires_us, 1_110 * S, "{name}: renewed expiry");
    m.entries.push(entry("fenced-2", 2));
    let g2 = store
        .commit_manifest_fenced(g1, &m, &l1, 1_100 * S)
        .await
        .expect("a renewed lease commits past its first expiry");
    // expired by the clock and taken over: the stalled holder commits nothing
    let l2 = store
        .acquire_lease("writer-2", 1_200 * S, 60 * S)
        .await
        .expect("an expired lease is taken over");
    let mut stale = m.clone();
    stale.entries.push(entry("stale", 3));
    match store
        .commit_manifest_fenced(g2, &stale, &l1, 1_200 * S + 1)
        .await
    {
        Err(e @ Error::LeaseLost { .. }) => {
            assert!(e.to_string().contains("writer-1"), "{name}: {e}");
            assert!(!e.is_retryable(), "{name}: a lost lease is not retried");
        }
        other => panic!("{name}: a commit under a lost lease got {other:?}"),
    }
    assert!(
        matches!(
            store.renew_lease(&l1, 1_200 * S + 2, 60 * S).await,
            Err(Error::LeaseLost { .. })
        ),
        "{name}: a lost lease was renewed"
    );
    let (g3, now) = store.read_manifest().await.expect("read").expect("present");
    assert_eq!(
        (g3, &now),
        (g2, &m),
        "{name}: a fenced-out commit changed the catalog"
    );
    store.release_lease(&l2).await.expect("release");
    assert!(
        matches!(
            store
                .commit_manifest_fenced(g2, &stale, &l2, 1_200 * S + 3)
                .await,
            Err(Error::LeaseLost { .. })
        ),
        "{name}: a released lease still commits"
    );
}

/// `holds` answers for exactly the stored artifact: not for another length or hash,
/// not after it was deleted.
pub async fn holds(store: &dyn BackupStore) {
    let name = store.name();
    let id = ArtifactId::wal(7_000, 7_009);
    let r = store.put(id, payload(9, 300)).await.expect("put");
    assert!(
        store.holds(&r).await.expect("holds"),
        "{name}: holds what it stored"
    );
    let other_hash = ArtifactRef {
        blake3: [7; 32],
        ..r
    };
    assert!(
        !store.holds(&other_hash).await.expect("holds"),
        "{name}: another hash"
    );
    let other_len = ArtifactRef { len: 301, ..r };
    assert!(
        !store.holds(&other_len).await.expect("holds"),
        "{name}: another length"
    );
    store.delete(id).await.expect("delete");
    assert!(
        !store.holds(&r).await.expect("holds"),
        "{name}: after delete"
    );
}

/// Bytes changed behind the store's back are detected on read, naming the artifact.
pub async fn corruption(store: &dyn BackupStore, tamper: &dyn Tamper) {
    let id = ArtifactId::delta(1000, 1001);
    let r = store.put(id, payload(5, 5000)).await.expect("put");
    tamper.tamper(&r).await;
    match store.get(&r).await {
        Err(e @ Error::Corrupt { .. }) => {
            assert!(
                e.to_string().contains("delta 1000..1001"),
                "{}: {e}",
                store.name()
            );
            assert!(e.is_corruption() && !e.is_retryable());
        }
        other => panic!(
            "{}: tampered artifact was not detected: {:?}",
            store.name(),
            other.map(|b| b.len())
        ),
    }
    store.delete(id).await.expect("cleanup");
}

/// Writes a real chain into `store`: a full snapshot of a 30%-filled 32-word space, then
/// `deltas` XOR deltas of 500 random operations each. Returns the final space.
pub async fn write_chain(
    store: &dyn BackupStore,
    seed: u64,
    deltas: usize,
) -> bindspace_core::BindSpace {
    use bindspace_core::{SchemaVersion, snapshot, workload::Workload};
    let mut w = Workload::new(seed, SchemaVersion::CURRENT.with_words(32));
    let mut space = w.filled_space(0.3).expect("fill");
    let full = snapshot::encode(&space, 0);
    store
        .put(ArtifactId::snapshot(space.version()), full.into())
        .await
        .unwrap_or_else(|e| panic!("{}: put snapshot: {e}", store.name()));
    for _ in 0..deltas {
        let mark = space.mark();
        w.run(&mut space, 500).expect("workload");
        let d = bindspace_xor_delta::compute_dirty(&space, &mark, 0).expect("delta");
        store
            .put(
                ArtifactId::delta(d.from_version, d.to_version),
                bindspace_xor_delta::encode(&d).into(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: put delta: {e}", store.name()));
    }
    space
}

/// Restores the newest snapshot of `store` and applies every delta after it, reading
/// from `store` alone.
pub async fn restore_chain(store: &dyn BackupStore) -> bindspace_core::BindSpace {
    let snaps = store
        .list(ArtifactKind::Snapshot, 0, u64::MAX)
        .await
        .expect("list snapshots");
    let newest = snaps.last().expect("the store holds a snapshot");
    let mut space = bindspace_core::snapshot::decode(&store.get(newest).await.expect("get"))
        .expect("decode snapshot")
        .space;
    for r in store
        .list(ArtifactKind::Delta, space.version(), u64::MAX)
        .await
        .expect("list deltas")
    {
        let d = bindspace_xor_delta::decode(&store.get(&r).await.expect("get delta"))
            .expect("decode delta");
        bindspace_xor_delta::apply(&mut space, &d).expect("apply delta");
    }
    space
}
