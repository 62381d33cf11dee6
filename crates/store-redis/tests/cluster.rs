//! The store on a Redis Cluster (three masters with a replica each): the conformance
//! suite unchanged, the seed's key names readable with `redis-cli -c`, one hash slot
//! per space, and a master killed mid-put (the put fails cleanly; after the failover,
//! and the dead node's restart, the retry completes).
#![allow(clippy::disallowed_methods)] // tests time real servers and processes on the wall clock
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bindspace_catalog::conformance::{self, Tamper};
use bindspace_catalog::{ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Manifest, SpaceName};
use bindspace_store_redis::{RedisBackupStore, RedisOptions};
use common::small_chunks;

mod common;
use bindspace_testkit::cluster::RedisCluster;
use bindspace_testkit::{service_env, unique_name};
use bytes::Bytes;

async fn raw(url: &str) -> redis::cluster_async::ClusterConnection {
    let nodes: Vec<String> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|n| format!("redis://{n}"))
        .collect();
    redis::cluster::ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// Flips the first byte of an artifact's first chunk behind the store's back.
struct ReplaceChunk {
    url: String,
    store: RedisBackupStore,
}

#[async_trait]
impl Tamper for ReplaceChunk {
    async fn tamper(&self, r: &ArtifactRef) {
        let mut c = raw(&self.url).await;
        common::flip_first_chunk(&mut c, self.store.meta_key(r.id)).await;
    }
}

fn cluster_url() -> Option<String> {
    service_env("BINDSPACE_TEST_REDIS_CLUSTER_URL", "a Redis Cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_redis_cluster() {
    let Some(url) = cluster_url() else {
        return;
    };
    let store = RedisBackupStore::connect(&url, small_chunks(format!("{}:", unique_name("conf"))))
        .await
        .unwrap();
    assert!(store.is_cluster());
    // a named space too: the suite runs in it unchanged
    let store = store.in_space(&SpaceName::new("conformance").unwrap());
    let tamper = ReplaceChunk {
        url: url.clone(),
        store: store.clone(),
    };
    // 9 MiB: nine chunks in three pipelines, each in the space's one slot
    conformance::run(Arc::new(store), &tamper, 9 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_key_names_are_readable_with_redis_cli_and_share_one_slot() {
    let Some(url) = cluster_url() else {
        return;
    };
    let Some(cli) = service_env("BINDSPACE_REDIS_CLI", "redis-cli") else {
        return;
    };
    // the seed's prefix, a space of this run's own
    let space = SpaceName::new(&unique_name("seed")).unwrap();
    let store = RedisBackupStore::connect(&url, RedisOptions::default())
        .await
        .unwrap()
        .in_space(&space);
    store
        .put(ArtifactId::snapshot(5), Bytes::from_static(b"full"))
        .await
        .unwrap();
    store
        .put(ArtifactId::delta(5, 6), Bytes::from_static(b"d"))
        .await
        .unwrap();
    store.set_schema_version("1.0.0").await.unwrap();
    store.set_checkpoint("nightly", 6).await.unwrap();
    let first = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(&cli)
            .args(["-c", "-p", &first])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let p = format!("ladybug:{{{space}}}:");
    assert_eq!(store.key("latest"), format!("{p}latest"));
    assert_eq!(cli(&["GET", &format!("{p}latest")]), "5");
    assert_eq!(cli(&["GET", &format!("{p}schema:version")]), "1.0.0");
    assert_eq!(cli(&["GET", &format!("{p}checkpoint:nightly")]), "6");
    for key in ["snapshot:5", "delta:5:6"] {
        let key = format!("{p}{key}");
        assert_eq!(cli(&["TYPE", &key]), "hash", "{key}");
        assert_eq!(
            cli(&["HGET", &key, "len"]),
            if key.contains("snapshot") { "4" } else { "1" }
        );
    }
    // every key of the space, chunks included, in one slot
    let chunk = format!(
        "{}0",
        cli(&["HGET", &format!("{p}snapshot:5"), "chunk_prefix"])
    );
    assert_eq!(cli(&["GET", &chunk]), "full");
    let slot = cli(&["CLUSTER", "KEYSLOT", &format!("{p}latest")]);
    for key in [
        format!("{p}snapshot:5"),
        format!("{p}index:snapshot"),
        format!("{p}catalog:manifest"),
        format!("{p}lock:backup"),
        chunk,
    ] {
        assert_eq!(cli(&["CLUSTER", "KEYSLOT", &key]), slot, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_put_fails_cleanly_and_the_retry_completes_after_failover() {
    let Some(bin) = service_env("BINDSPACE_REDIS_SERVER", "a redis-server binary") else {
        return;
    };
    let Some(cli) = service_env("BINDSPACE_REDIS_CLI", "redis-cli") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // this test's own cluster: it kills one of its masters
    let mut cluster = RedisCluster::start(bin.as_ref(), cli.as_ref(), tmp.path()).unwrap();
    let opts = RedisOptions {
        op_timeout: Duration::from_secs(10),
        reconnect_retries: 2,
        ..small_chunks("ladybug:".into())
    };
    let space = SpaceName::new("orders").unwrap();
    let store = RedisBackupStore::connect(&cluster.url(), opts.clone())
        .await
        .unwrap()
        .in_space(&space);
    let v1 = store
        .put(ArtifactId::snapshot(1), vec![1u8; 3 << 20].into())
        .await
        .unwrap();
    // 96 MiB in 1 MiB chunks, 4 per pipeline: 24 round trips, each fsynced
    let big: Bytes = (0..96u32 << 20)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let upload = {
        let store = store.clone();
        let big = big.clone();
        tokio::spawn(async move { store.put(ArtifactId::snapshot(2), big).await })
    };
    let master = cluster.master_of(&store.key("latest")).unwrap();
    // wait until the upload is visibly under way on that master, then kill it
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n: usize = cluster.nodes[master]
            .pid()
            .map(|_| {
                let keys = cluster
                    .cli(
                        master,
                        &["--scan", "--pattern", "ladybug:{orders}:snapshot:2:*"],
                    )
                    .unwrap();
                keys.lines().count()
            })
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.nodes[master].kill();
    let err = tokio::time::timeout(Duration::from_secs(60), upload)
        .await
        .expect("the put ends: it neither hangs nor waits for the failover")
        .unwrap()
        .expect_err("the master died mid-put");
    assert!(err.is_retryable(), "a dead master is retryable: {err}");
    eprintln!("the put failed as it should: {err}");

    // its replica takes the slots over
    let promoted = cluster
        .wait_failover(&store.key("latest"), master, Duration::from_secs(60))
        .unwrap();
    eprintln!("node {promoted} took over from node {master}");
    // the snapshot before the put is intact on the new master. The failed put left
    // nothing the index names, or (when the client's retry reached the new master
    // before giving up) the whole artifact, committed: never a part of it
    let whole = ArtifactRef::of(ArtifactId::snapshot(2), &big);
    let mut listed = None;
    for _ in 0..40 {
        match store.list(ArtifactKind::Snapshot, 0, u64::MAX).await {
            Ok(l) => {
                listed = Some(l);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let listed = listed.expect("the new master answers");
    let committed = if listed == vec![v1] {
        false
    } else {
        assert_eq!(listed, vec![v1, whole]);
        true
    };
    eprintln!("after the failover the interrupted put is committed: {committed}");
    assert_eq!(
        store.latest().await.unwrap(),
        Some(if committed { 2 } else { 1 })
    );
    assert_eq!(store.get(&v1).await.unwrap().len(), 3 << 20);
    if committed {
        assert!(store.get(&whole).await.unwrap() == big);
    }

    // the new master has no replica yet: a commit cannot be made safe, and says so
    let err = store
        .put(ArtifactId::snapshot(2), big.clone())
        .await
        .expect_err("no replica acknowledges");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("replicas acknowledged"), "{err}");
    // and a catalog commit: it is on the master (the space is listed), not acknowledged
    let g = store.manifest_generation().await.unwrap();
    let err = store
        .commit_manifest(g, &Manifest::default())
        .await
        .expect_err("no replica acknowledges the catalog");
    assert!(err.to_string().contains("replicas acknowledged"), "{err}");
    assert!(store.spaces().await.unwrap().contains(&space));
    // (an operator who accepts that can turn the wait off on the URL: the retry
    // completes now)
    let unsafe_store =
        RedisBackupStore::connect(&format!("{}?replicas_acked=0", cluster.url()), opts.clone())
            .await
            .unwrap()
            .in_space(&space);
    let r = unsafe_store
        .put(ArtifactId::delta(1, 2), Bytes::from_static(b"delta"))
        .await
        .unwrap();
    assert_eq!(unsafe_store.get(&r).await.unwrap(), "delta");

    // the dead node comes back as the new master's replica: the retry completes
    cluster.nodes[master].start().unwrap();
    cluster.wait_ok(Duration::from_secs(60)).unwrap();
    cluster.wait_replicas(Duration::from_secs(60)).unwrap();
    let mut done = None;
    for _ in 0..40 {
        match store.put(ArtifactId::snapshot(2), big.clone()).await {
            Ok(r) => {
                done = Some(r);
                break;
            }
            Err(e) => {
                eprintln!("retry: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    let v2 = done.expect("the retry completes once the node is back as a replica");
    let g = store.manifest_generation().await.unwrap();
    store
        .commit_manifest(g, &Manifest::default())
        .await
        .unwrap();
    assert_eq!(store.latest().await.unwrap(), Some(2));
    assert!(store.get(&v2).await.unwrap() == big);
    assert_eq!(
        store
            .list(ArtifactKind::Snapshot, 0, u64::MAX)
            .await
            .unwrap(),
        vec![v1, v2]
    );
}
