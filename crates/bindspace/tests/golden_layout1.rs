//! Golden repositories of layout 1 (written by the code of 0.1, commit cc4953d, before
//! timelines): a local directory, a Redis export and a PostgreSQL dump of the same
//! backups (fulls at 10 and 40, an incremental, a differential, WAL to 61, a
//! guaranteed restore point at 46). The current code reads them as timeline 1: every
//! version from the first full on restores to the digest recorded when it was written,
//! before and after the repository is upgraded in place to layout 2 and written to.
//! Generator: `tests/golden/repo-layout1/README.md`.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bindspace_catalog::{BackupStore, LAYOUT, NewBackup, Repository};
use bindspace_core::ManualClock;
use bindspace_pitr::Target;
use bindspace_testkit::servers::Server;
use bindspace_testkit::service_env;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/repo-layout1")
}

fn expected() -> BTreeMap<u64, String> {
    let j: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(golden().join("expect.json")).unwrap()).unwrap();
    j.into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v))
        .collect()
}

/// Restores every version 10..=61 and the restore point; returns mismatches.
fn check(rt: &tokio::runtime::Runtime, stores: &[Arc<dyn BackupStore>]) -> usize {
    let want = expected();
    let mut bad = 0;
    for (&v, digest) in want.range(10..) {
        match rt.block_on(bindspace_pitr::restore_to(stores, &Target::Version(v))) {
            Ok((s, p)) if s.digest().to_string() == *digest && p.timeline == 1 => {}
            Ok((s, _)) => {
                eprintln!("version {v}: digest {}", s.digest());
                bad += 1;
            }
            Err(e) => {
                eprintln!("version {v}: {e}");
                bad += 1;
            }
        }
    }
    let (s, _) = rt
        .block_on(bindspace_pitr::restore_to(
            stores,
            &Target::RestorePoint("before-deploy".into()),
        ))
        .unwrap();
    // the restore point record took version 46 (written after version 45)
    assert_eq!(s.version(), 46);
    assert_eq!(s.digest().to_string(), want[&46]);
    // written before roots existed: never claimed as verified
    let (_, ver) = rt
        .block_on(async {
            let p = bindspace_pitr::plan(stores, &Target::Version(40)).await?;
            bindspace_pitr::restore_verified(&p).await
        })
        .unwrap();
    assert!(
        ver.to_string()
            .starts_with("unverified: no root recorded for version 40"),
        "{ver}"
    );
    assert_eq!((ver.checked, ver.self_checked), (0, 0));
    bad
}

/// Reads the golden, upgrades it in place (init) and writes one more backup through
/// the current code; every version still restores.
fn check_and_upgrade(urls: &[String]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = rt.block_on(bindspace::stores::open_all(urls)).unwrap();
    let (_, m) = rt.block_on(stores[0].read_manifest()).unwrap().unwrap();
    assert_eq!(m.layout, 1, "a layout-1 catalog reads as layout 1");
    assert!(m.timelines.is_empty());
    assert!(m.entries.iter().all(|e| e.timeline == 1));
    assert_eq!(check(&rt, &stores), 0, "before the upgrade");
    let clock = Arc::new(ManualClock::new(1_800_000_000_000_000));
    let repo = Repository::new(stores.clone(), clock, "golden test").unwrap();
    rt.block_on(repo.init()).unwrap();
    let (_, m) = rt.block_on(stores[0].read_manifest()).unwrap().unwrap();
    assert_eq!(m.layout, LAYOUT);
    assert!(m.repository_id.is_some());
    let (latest, _) = rt
        .block_on(bindspace_pitr::restore_to(&stores, &Target::Latest))
        .unwrap();
    rt.block_on(repo.write_backup(NewBackup::full(&latest, 1_800_000_000_000_000)))
        .unwrap();
    assert_eq!(check(&rt, &stores), 0, "after the upgrade");
}

#[test]
fn the_layout1_local_directory_restores_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    bindspace_testkit::copy_dir(&golden().join("local"), dir.path());
    check_and_upgrade(&[format!("file://{}", dir.path().display())]);
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_layout1_redis_export_restores_and_upgrades() {
    let Some(bin) = service_env("BINDSPACE_REDIS_SERVER", "redis-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::redis(bin.as_ref(), dir.path(), false).unwrap();
    let mut con = redis::Client::open(server.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let dump: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(golden().join("redis.json")).unwrap()).unwrap();
    for k in dump {
        let key = unhex(k["key"].as_str().unwrap());
        if let Some(v) = k["string"].as_str() {
            redis::cmd("SET")
                .arg(&key)
                .arg(unhex(v))
                .query::<()>(&mut con)
                .unwrap();
        } else {
            for pair in k["hash"].as_array().unwrap() {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg(unhex(pair[0].as_str().unwrap()))
                    .arg(unhex(pair[1].as_str().unwrap()))
                    .query::<()>(&mut con)
                    .unwrap();
            }
        }
    }
    check_and_upgrade(std::slice::from_ref(&server.url));
}

#[test]
fn the_layout1_postgres_dump_restores_and_migrates() {
    let Some(bin) = service_env("BINDSPACE_PG_BIN", "PostgreSQL's server binaries") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::postgres(bin.as_ref(), dir.path()).unwrap();
    let st = std::process::Command::new(Path::new(&bin).join("psql"))
        .args([
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
        ])
        .arg(server.port.to_string())
        .arg("-f")
        .arg(golden().join("postgres.sql"))
        .arg("postgres")
        .status()
        .unwrap();
    assert!(st.success(), "loading the dump");
    // opening the store applies migration 3 (timelines) to the layout-1 tables
    check_and_upgrade(std::slice::from_ref(&server.url));
}
