//! Issue 18: failover. A primary engine in a child process writes without pause
//! (version v sets address v mod 256 to [v; 4]), archiving every 50 ms, and is killed
//! with SIGKILL; a standby that followed the repository is promoted. Checked: the
//! promoted state is exactly the primary's state at the branch version (every write
//! archived before the kill is there, nothing else), the branch is at or past the last
//! version the primary reported archived, the promoted engine takes writes, and the
//! dead primary's directory is fenced. Measured (printed; figures, not assertions):
//! RTO, from the kill to the first write the promoted engine accepts, and RPO, the
//! acknowledged versions not archived when the primary died.
#![allow(clippy::unwrap_used)]
// tests: a panic is the failure report
// a real process killed in real time: the test waits and measures on the wall clock
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bindspace::{BackupConfig, Engine, Standby};
use bindspace_catalog::BackupStore;
use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};

const CHILD_ENV: &str = "BINDSPACE_FAILOVER_PRIMARY_DIR";

fn cfg(repo: &Path, background: bool) -> BackupConfig {
    BackupConfig {
        fingerprint_words: 4,
        address_space: 256,
        background_jobs: background,
        sync: "always".into(),
        wal_segment_bytes: 4 << 10,
        archive_interval_ms: 50,
        delta_interval_ms: 3_600_000,
        full_snapshot_interval_ms: 3_600_000,
        verify_interval_ms: 0,
        destinations: vec![format!("file://{}", repo.display())],
        ..BackupConfig::default()
    }
}

/// The state after versions 1..=v of the primary's workload.
fn state_at(v: u64) -> BindSpace {
    let mut s =
        BindSpace::new(SchemaVersion::CURRENT.with_words(4).with_address_space(256)).unwrap();
    for i in 1..=v {
        s.write(Addr((i % 256) as u16), &[i; 4]).unwrap();
    }
    s
}

/// The primary's role when spawned by the test: write forever, printing each
/// acknowledged version and the newest archived one.
#[test]
fn failover_primary_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return; // only as the child of the failover test
    };
    let dir = Path::new(&dir);
    let engine = Engine::open(dir.join("primary"), cfg(&dir.join("repo"), true)).unwrap();
    engine
        .backup_now(bindspace_catalog::BackupKind::Full)
        .unwrap();
    loop {
        let v = engine.version() + 1;
        let got = engine
            .write(Addr((v % 256) as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
        assert_eq!(got, v);
        println!("ACK {v} ARCHIVED {}", engine.status().last_archived_version);
    }
}

#[test]
fn a_killed_primary_is_replaced_by_its_standby_with_only_unarchived_versions_missing() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "failover_primary_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
    let reader = std::thread::spawn(move || {
        let mut last = (0, 0);
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let mut it = l.split_whitespace();
            if let (Some("ACK"), Some(a), Some("ARCHIVED"), Some(b)) =
                (it.next(), it.next(), it.next(), it.next())
            {
                last = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                let _ = tx.send(last);
            }
        }
        last
    });
    // the standby starts once something is archived
    let mut seen = (0, 0);
    while seen.1 < 50 {
        seen = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the primary writes");
    }
    let store: Arc<dyn BackupStore> = Arc::new(
        ObjectBackupStore::from_url(
            &format!("file://{}", repo_dir.display()),
            StoreOptions::default(),
        )
        .unwrap(),
    );
    let mut standby = Standby::open(vec![store.clone()], None).unwrap();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(40));
        standby.catch_up().unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let killed_at = std::time::Instant::now();
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    let (acked, archived) = reader.join().unwrap();
    let promoted = standby
        .promote(Engine::builder(dir.path().join("promoted")).config(cfg(&repo_dir, false)))
        .unwrap();
    let branch = promoted.version();
    promoted
        .write(Addr(0), Fingerprint::from_words(vec![u64::MAX; 4]))
        .unwrap();
    let rto = killed_at.elapsed();
    assert!(
        branch >= archived,
        "archived {archived} before the kill, the standby has {branch}"
    );
    // (one write at a time: at most the one in flight was durable, even archived,
    // before its acknowledgement was printed)
    assert!(
        branch <= acked + 1,
        "the standby holds {branch}, past the acknowledged {acked}"
    );
    let mut want = state_at(branch);
    want.write(Addr(0), &[u64::MAX; 4]).unwrap();
    assert_eq!(
        promoted.read(|s| s.digest()),
        want.digest(),
        "the promoted state is the primary's at {branch}, plus the new write"
    );
    // the dead primary's directory is fenced
    let err = Engine::open(dir.path().join("primary"), cfg(&repo_dir, false))
        .err()
        .unwrap();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    eprintln!(
        "failover: RTO {:.0} ms (kill to the first accepted write), RPO {} versions ({} acknowledged, {} restored at the branch; the last report said {} archived)",
        rto.as_secs_f64() * 1e3,
        acked.saturating_sub(branch),
        acked,
        branch,
        archived
    );
    promoted.close().unwrap();
}
