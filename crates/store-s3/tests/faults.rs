//! Faults against a real S3 server (moto): the server stopped mid-upload and the server
//! frozen. Each test runs its own moto instance, so killing or freezing it disturbs no
//! other test. Skips (saying why) outside `cargo xtask test` / CI when moto is missing.
#![allow(clippy::disallowed_methods)] // tests time real servers and processes on the wall clock
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bindspace_catalog::{ArtifactId, BackupStore, Error, Manifest};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_testkit::servers::Server;
use bindspace_testkit::service_env;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A private moto server with bucket `faults` (testkit's one implementation), or `None`
/// (skip, said why) outside xtask/CI when moto is missing.
fn moto(dir: &std::path::Path) -> Option<Server> {
    let bin = service_env("BINDSPACE_MOTO_SERVER", "moto_server binary")?;
    Some(Server::moto(bin.as_ref(), dir, &["faults"]).unwrap())
}

fn store(port: u16, op_timeout: Duration) -> ObjectBackupStore {
    let opts = StoreOptions {
        op_timeout,
        max_retries: 0,
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        client_options: vec![
            ("aws_endpoint".into(), format!("http://127.0.0.1:{port}")),
            ("aws_allow_http".into(), "true".into()),
            ("aws_access_key_id".into(), "testing".into()),
            ("aws_secret_access_key".into(), "testing".into()),
            ("aws_region".into(), "us-east-1".into()),
        ],
    };
    ObjectBackupStore::from_url("s3://faults/repo", opts).unwrap()
}

/// A TCP proxy that forwards to `upstream` until `budget` request bytes have passed,
/// then drops every connection and refuses new ones until `up` is set again: the
/// server "stopping" mid-upload without losing its data.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    budget: Arc<AtomicU64>,
}

async fn proxy(upstream: u16) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicBool::new(true));
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let (up2, budget2) = (up.clone(), budget.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if !up2.load(Ordering::SeqCst) {
                continue; // dropped: connection refused/reset
            }
            let (up3, budget3) = (up2.clone(), budget2.clone());
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let c2s = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let left = budget3.load(Ordering::SeqCst);
                        budget3.store(left.saturating_sub(n as u64), Ordering::SeqCst);
                        if left < n as u64 || !up3.load(Ordering::SeqCst) {
                            up3.store(false, Ordering::SeqCst);
                            return; // the server "stops" here
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let s2c = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !up3.load(Ordering::SeqCst) || cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! { _ = c2s => {}, _ = s2c => {} }
            });
        }
    });
    Proxy { port, up, budget }
}

fn big(seed: u8) -> bytes::Bytes {
    (0..(20usize << 20))
        .map(|i| (i as u8) ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_upload_fails_cleanly_and_a_retry_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(m) = moto(tmp.path()) else { return };
    let p = proxy(m.port).await;
    let through = store(p.port, Duration::from_secs(20));
    let direct = store(m.port, Duration::from_secs(20));
    // A good backup first: artifact + catalog generation 1.
    let r1 = through.put(ArtifactId::snapshot(1), big(1)).await.unwrap();
    let mut m1 = Manifest::default();
    m1.restore_points.push(bindspace_catalog::RestorePoint {
        name: "good".into(),
        version: 1,
        created_us: 0,
        guaranteed: false,
        timeline: 1,
        root: None,
    });
    assert_eq!(through.commit_manifest(0, &m1).await.unwrap(), 1);
    // The next backup's upload dies 8 MiB in: the server "stops".
    p.budget.store(8 << 20, Ordering::SeqCst);
    let started = Instant::now();
    let err = through
        .put(ArtifactId::snapshot(2), big(2))
        .await
        .unwrap_err();
    println!(
        "upload during the outage failed after {:.1?}: {err}",
        started.elapsed()
    );
    assert!(
        err.is_retryable(),
        "a stopped server is a retryable failure: {err:?}"
    );
    assert!(
        err.to_string().contains("faults/repo") || err.to_string().contains("s3://"),
        "error names the store: {err}"
    );
    // While it is down, the catalog cannot be read through it either, but it was never
    // touched: the direct path shows generation 1 and the good artifact only.
    assert!(through.read_manifest().await.is_err());
    assert_eq!(
        direct.read_manifest().await.unwrap().unwrap(),
        (1, m1.clone())
    );
    let snaps = direct
        .list(bindspace_catalog::ArtifactKind::Snapshot, 0, u64::MAX)
        .await
        .unwrap();
    assert_eq!(snaps, vec![r1], "no partial artifact is visible");
    // The server comes back: the retry completes and commits.
    p.budget.store(u64::MAX, Ordering::SeqCst);
    p.up.store(true, Ordering::SeqCst);
    let r2 = through.put(ArtifactId::snapshot(2), big(2)).await.unwrap();
    let mut m2 = m1.clone();
    m2.restore_points.push(bindspace_catalog::RestorePoint {
        name: "retried".into(),
        version: 2,
        created_us: 0,
        guaranteed: false,
        timeline: 1,
        root: None,
    });
    assert_eq!(through.commit_manifest(1, &m2).await.unwrap(), 2);
    assert_eq!(direct.get(&r2).await.unwrap(), big(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_hits_the_timeout_instead_of_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(m) = moto(tmp.path()) else { return };
    let s = store(m.port, Duration::from_secs(2));
    s.put(
        ArtifactId::delta(1, 2),
        bytes::Bytes::from_static(b"before"),
    )
    .await
    .unwrap();
    m.freeze();
    let started = Instant::now();
    let err = s.read_manifest().await.unwrap_err();
    let took = started.elapsed();
    println!("frozen server: {err} after {took:.1?}");
    assert!(
        matches!(err, Error::Timeout { .. } | Error::Unavailable { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: the timeout did not fire"
    );
    let err = s
        .put(
            ArtifactId::delta(2, 3),
            bytes::Bytes::from_static(b"during"),
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    m.thaw();
    // thawed: works again
    let listed = s
        .list(bindspace_catalog::ArtifactKind::Delta, 0, u64::MAX)
        .await
        .unwrap();
    assert!(listed.iter().any(|r| r.id == ArtifactId::delta(1, 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_upload_fails_cleanly_and_a_restarted_one_takes_the_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut m) = moto(tmp.path()) else {
        return;
    };
    let port = m.port;
    let s = store(port, Duration::from_secs(20));
    let s2 = s.clone();
    let upload = tokio::spawn(async move { s2.put(ArtifactId::snapshot(9), big(9)).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    m.kill(); // SIGKILL: moto keeps everything in memory, so this is "S3 lost"
    let started = Instant::now();
    let err = upload
        .await
        .unwrap()
        .expect_err("the upload cannot succeed against a killed server");
    println!(
        "killed server: {err} (reported {:.1?} after the kill)",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err:?}");
    // A restarted (empty) server on the same port: the retried backup goes through.
    m.start().unwrap();
    let r = s.put(ArtifactId::snapshot(9), big(9)).await.unwrap();
    assert_eq!(s.commit_manifest(0, &Manifest::default()).await.unwrap(), 1);
    assert_eq!(s.get(&r).await.unwrap(), big(9));
}
