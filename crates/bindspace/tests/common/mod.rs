//! Setup shared by the engine's tests against real servers: which servers the test
//! environment provides, and a Redis database of a test's own, emptied; and the
//! two-local-directory engine the verify and drill tests share.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a part; a panic is the report

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bindspace::{BackupConfig, Engine};
use bindspace_core::ManualClock;
use bindspace_testkit::service_env;

/// The real servers `cargo xtask test` starts (a plain `cargo test` without them skips,
/// saying why).
pub struct RealServers {
    /// Redis, without a database number.
    pub redis: String,
    /// PostgreSQL's server binaries (each test starts its own server).
    pub pg_bin: String,
    /// The S3 bucket URL.
    pub s3: String,
}

pub fn real_servers() -> Option<RealServers> {
    Some(RealServers {
        redis: service_env("BINDSPACE_TEST_REDIS_URL", "a Redis server")?,
        pg_bin: service_env("BINDSPACE_PG_BIN", "PostgreSQL's server binaries")?,
        s3: service_env("BINDSPACE_TEST_S3_URL", "an S3 server")?,
    })
}

/// Database `db` of Redis at `base`, flushed, and a connection to it (to flush again).
/// Each test owns its number (1: store-redis, 2: oracle, 3: CLI, 5: timelines, 10:
/// spaces), so a flush loses nothing of another test's.
pub fn own_redis_db(
    rt: &tokio::runtime::Runtime,
    base: &str,
    db: u8,
) -> (String, redis::aio::MultiplexedConnection) {
    let url = format!("{}/{db}", base.trim_end_matches('/'));
    let mut con = rt
        .block_on(
            redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection(),
        )
        .unwrap();
    rt.block_on(redis::cmd("FLUSHDB").query_async::<()>(&mut con))
        .unwrap();
    (url, con)
}

/// Files under `dir/kind/`.
pub fn files(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// An engine on a 256-address space writing to local directories `a` and `b`.
pub fn engine_on(dir: &Path, clock: &Arc<ManualClock>, a: &Path, b: &Path, segment: u64) -> Engine {
    Engine::builder(dir.join("data"))
        .config(BackupConfig {
            fingerprint_words: 4,
            address_space: 256,
            background_jobs: false,
            sync: "never".into(),
            wal_segment_bytes: segment,
            ..BackupConfig::default()
        })
        .clock(clock.clone())
        .store_url(format!("file://{}", a.display()))
        .store_url(format!("file://{}", b.display()))
        .open()
        .unwrap()
}

/// A store in bucket path `path` (`s3://bucket/prefix`) of a private moto server at
/// `endpoint`, each request timing out after `op_timeout`, no retries (a frozen server
/// is noticed within the timeout).
pub fn moto_store(
    endpoint: &str,
    path: &str,
    op_timeout: std::time::Duration,
) -> bindspace_store_s3::ObjectBackupStore {
    bindspace_store_s3::ObjectBackupStore::from_url(
        path,
        bindspace_store_s3::StoreOptions {
            op_timeout,
            max_retries: 0,
            client_options: vec![
                ("aws_endpoint".into(), endpoint.into()),
                ("aws_allow_http".into(), "true".into()),
                ("aws_access_key_id".into(), "testing".into()),
                ("aws_secret_access_key".into(), "testing".into()),
                ("aws_region".into(), "us-east-1".into()),
            ],
            ..bindspace_store_s3::StoreOptions::default()
        },
    )
    .unwrap()
}

/// Everything `store` lists, of every artifact kind.
pub fn all_artifacts(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn bindspace_catalog::BackupStore>,
) -> Vec<bindspace_catalog::ArtifactRef> {
    bindspace_catalog::ArtifactKind::ALL
        .iter()
        .flat_map(|k| rt.block_on(store.list(*k, 0, u64::MAX)).unwrap())
        .collect()
}
