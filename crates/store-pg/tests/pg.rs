//! The BackupStore conformance suite and PostgreSQL-specific guarantees, against a real
//! server (started by `cargo xtask test`; a test skips under a plain `cargo test`
//! without one, and fails under xtask or CI).
#![allow(clippy::disallowed_methods)] // tests time real servers and processes on the wall clock
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bindspace_catalog::conformance::{self, Tamper};
use bindspace_catalog::{
    ArtifactId, ArtifactRef, BackupStore, BackupStoreExt, Error, Manifest, RestorePoint,
};
use bindspace_store_pg::{MIGRATIONS, PgBackupStore, PgOptions};
use bindspace_testkit::servers::Server;
use bindspace_testkit::{service_env, unique_name};

fn unique_schema(test: &str) -> String {
    unique_name(test)
}

fn opts(schema: String) -> PgOptions {
    PgOptions {
        schema,
        chunk_size: 1 << 20,
        ..PgOptions::default()
    }
}

/// Truncates a stored chunk behind the store's back.
struct TruncateChunk(PgBackupStore);

#[async_trait]
impl Tamper for TruncateChunk {
    async fn tamper(&self, r: &ArtifactRef) {
        let (a, b) = r.id.versions();
        let c = self.0.pool().get().await.unwrap();
        let n = c
            .execute(
                &format!(
                    "UPDATE {}.artifact_chunks SET data = substring(data from 1 for length(data) - 1)
                     WHERE first_version = $1 AND last_version = $2 AND seq = 0",
                    self.0.schema()
                ),
                &[&(a as i64), &(b as i64)],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_postgres() {
    let Some(url) = service_env("BINDSPACE_TEST_PG_URL", "a PostgreSQL server") else {
        return;
    };
    let store = PgBackupStore::connect(&url, opts(unique_schema("conf")))
        .await
        .unwrap();
    let tamper = TruncateChunk(store.clone());
    // 9 MiB: nine 1 MiB chunks
    conformance::run(Arc::new(store), &tamper, 9 << 20).await;
}

async fn schema_dump(store: &PgBackupStore, schema: &str) -> Vec<String> {
    let c = store.pool().get().await.unwrap();
    c.query(
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
         FROM information_schema.columns WHERE table_schema = $1
         ORDER BY table_name, ordinal_position",
        &[&schema],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_safe_to_race() {
    let Some(url) = service_env("BINDSPACE_TEST_PG_URL", "a PostgreSQL server") else {
        return;
    };
    let schema = unique_schema("mig");
    // two processes' worth of connects at once on a fresh schema
    let (a, b) = tokio::join!(
        PgBackupStore::connect(&url, opts(schema.clone())),
        PgBackupStore::connect(&url, opts(schema.clone()))
    );
    let (a, _b) = (a.unwrap(), b.unwrap());
    let before = schema_dump(&a, &schema).await;
    assert!(
        before
            .iter()
            .any(|c| c.starts_with("artifacts.blake3 bytea"))
    );
    assert!(
        before
            .iter()
            .any(|c| c.starts_with("backups.locations ARRAY"))
    );
    assert_eq!(a.migrate().await.unwrap(), Vec::<i32>::new(), "run twice");
    assert_eq!(schema_dump(&a, &schema).await, before, "same schema");
    let c = a.pool().get().await.unwrap();
    let n: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM {}.schema_migrations", a.schema()),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, MIGRATIONS.len(), "each migration recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_queryable_as_tables() {
    let Some(url) = service_env("BINDSPACE_TEST_PG_URL", "a PostgreSQL server") else {
        return;
    };
    let store = PgBackupStore::connect(&url, opts(unique_schema("tables")))
        .await
        .unwrap();
    let mut m = Manifest::default();
    let r = store
        .put(ArtifactId::snapshot(9), "x".into())
        .await
        .unwrap();
    m.entries.push(bindspace_catalog::BackupEntry {
        id: "full-9".into(),
        kind: bindspace_catalog::BackupKind::Full,
        parent: None,
        from_version: 9,
        to_version: 9,
        start_us: 1,
        end_us: 2,
        schema: bindspace_core::SchemaVersion::CURRENT.into(),
        size: r.len,
        blake3: bindspace_catalog::blake3_hex(&r.blake3),
        artifact: r.id,
        locations: vec![store.name()],
        status: bindspace_catalog::BackupStatus::Complete,
        timeline: 1,
        root: None,
        format: None,
    });
    m.restore_points.push(RestorePoint {
        name: "before-upgrade".into(),
        version: 9,
        created_us: 3,
        guaranteed: true,
        timeline: 1,
        root: None,
    });
    store.commit_manifest(0, &m).await.unwrap();
    let c = store.pool().get().await.unwrap();
    let row = c
        .query_one(
            &format!(
                "SELECT b.id, b.kind, b.status, b.entry->>'to_version', p.name, s.fingerprint_words
                 FROM {s}.backups b, {s}.restore_points p, {s}.schema_versions s",
                s = store.schema()
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "full-9");
    assert_eq!(row.get::<_, String>(1), "full");
    assert_eq!(row.get::<_, String>(2), "complete");
    assert_eq!(row.get::<_, String>(3), "9");
    assert_eq!(row.get::<_, String>(4), "before-upgrade");
    assert_eq!(row.get::<_, i32>(5), 156);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_during_a_commit_keeps_the_old_catalog_and_the_pool_recovers() {
    let Some(bin) = service_env("BINDSPACE_PG_BIN", "PostgreSQL's server binaries") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::postgres(bin.as_ref(), tmp.path()).unwrap();
    let store = PgBackupStore::connect(
        &server.url,
        PgOptions {
            op_timeout: Duration::from_secs(10),
            pool_size: 4,
            ..opts("bindspace".into())
        },
    )
    .await
    .unwrap();
    let mut old = Manifest::default();
    old.restore_points.push(RestorePoint {
        name: "old".into(),
        version: 1,
        created_us: 1,
        guaranteed: false,
        timeline: 1,
        root: None,
    });
    assert_eq!(store.commit_manifest(0, &old).await.unwrap(), 1);

    // Another session holds the catalog row, so the commit is in flight, waiting.
    let (blocker, conn) = tokio_postgres::connect(&server.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .execute("SELECT * FROM bindspace.catalog FOR UPDATE", &[])
        .await
        .unwrap();
    let mut new = old.clone();
    new.restore_points[0].name = "new".into();
    let commit = {
        let store = store.clone();
        let new = new.clone();
        tokio::spawn(async move { store.commit_manifest(1, &new).await })
    };
    // wait until the commit is blocked on the lock
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = blocker
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the commit never blocked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop_immediate().unwrap();
    let err = commit
        .await
        .unwrap()
        .expect_err("a commit cut off by a crash fails");
    assert!(err.is_retryable(), "{err}");
    eprintln!("commit failed cleanly: {err}");

    server.start().unwrap();
    // same store, same pool: broken connections are replaced, no process restart
    let mut back = None;
    for _ in 0..40 {
        match store.read_manifest().await {
            Ok(m) => {
                back = m;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    assert_eq!(back, Some((1, old)), "the catalog is the old one");
    assert_eq!(store.commit_manifest(1, &new).await.unwrap(), 2);
    assert_eq!(store.read_manifest().await.unwrap(), Some((2, new)));
}

/// A chain written to one tier restores from the other after a copy, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_cross_between_redis_and_postgres_both_ways() {
    let Some(pg_url) = service_env("BINDSPACE_TEST_PG_URL", "a PostgreSQL server") else {
        return;
    };
    let Some(redis_url) = service_env("BINDSPACE_TEST_REDIS_URL", "a Redis server") else {
        return;
    };
    use bindspace_store_redis::{RedisBackupStore, RedisOptions};
    let redis_opts = |p: &str| RedisOptions {
        prefix: format!("{}:", unique_schema(p)),
        ..RedisOptions::default()
    };
    // Redis → PostgreSQL
    let redis = RedisBackupStore::connect(&redis_url, redis_opts("r2p"))
        .await
        .unwrap();
    let pg = PgBackupStore::connect(&pg_url, opts(unique_schema("r2p")))
        .await
        .unwrap();
    let space = conformance::write_chain(&redis, 21, 5).await;
    assert_eq!(redis.copy_all_to(&pg).await.unwrap(), 6);
    assert_eq!(conformance::restore_chain(&pg).await, space);
    // PostgreSQL → Redis
    let pg = PgBackupStore::connect(&pg_url, opts(unique_schema("p2r")))
        .await
        .unwrap();
    let redis = RedisBackupStore::connect(&redis_url, redis_opts("p2r"))
        .await
        .unwrap();
    let space = conformance::write_chain(&pg, 22, 5).await;
    assert_eq!(pg.copy_all_to(&redis).await.unwrap(), 6);
    assert_eq!(conformance::restore_chain(&redis).await, space);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_chunk_is_detected_naming_the_artifact() {
    let Some(url) = service_env("BINDSPACE_TEST_PG_URL", "a PostgreSQL server") else {
        return;
    };
    let store = PgBackupStore::connect(&url, opts(unique_schema("replace")))
        .await
        .unwrap();
    let id = ArtifactId::wal(3, 4);
    let r = store.put(id, vec![3u8; 2 << 20].into()).await.unwrap();
    let c = store.pool().get().await.unwrap();
    c.execute(
        &format!(
            "UPDATE {}.artifact_chunks SET data = $1 WHERE seq = 1",
            store.schema()
        ),
        &[&vec![9u8; 1 << 20]],
    )
    .await
    .unwrap();
    match store.get(&r).await {
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains("wal segment 3..=4"), "{e}")
        }
        other => panic!("replacement not detected: {:?}", other.map(|b| b.len())),
    }
}

// Issue 16 (left from item 9): a download is timed per chunk, like an upload: 6 MiB at
// 2 MiB/s takes 3 s under a 1 s timeout and arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_slower_than_the_timeout_arrives_chunk_by_chunk() {
    let Some(url) = service_env("BINDSPACE_TEST_PG_URL", "a PostgreSQL server") else {
        return;
    };
    let schema = unique_schema("slowget");
    let fast = PgBackupStore::connect(&url, opts(schema.clone()))
        .await
        .unwrap();
    let bytes: bytes::Bytes = (0..6u32 << 20).map(|i| (i % 241) as u8).collect();
    let r = fast
        .put(ArtifactId::snapshot(5), bytes.clone())
        .await
        .unwrap();
    let (_link, slow_url) =
        bindspace_testkit::slowlink::SlowLink::for_url(&url, Some(2 << 20), None).unwrap();
    let slow = PgBackupStore::connect(
        &slow_url,
        PgOptions {
            op_timeout: Duration::from_secs(1),
            ..opts(schema)
        },
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let got = slow.get(&r).await.unwrap();
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the download took {:?}: not slower than the timeout, the test shows nothing",
        started.elapsed()
    );
    assert_eq!(got, bytes);
}
