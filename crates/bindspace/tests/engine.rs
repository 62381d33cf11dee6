//! The engine's schedule and retry loop on a manual clock, against a fault-injecting
//! store: a failing destination is retried with backoff and reported, a failure a retry
//! cannot cure makes the next backup a full, and every restore afterwards is exact.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{ArtifactKind, BackupKind, BackupStore};
use bindspace_core::{Addr, Fingerprint, ManualClock};
use bindspace_pitr::Target;
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_testkit::{Fault, FaultyStore, Op};

const MS: u64 = 1_000;

fn config() -> BackupConfig {
    BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        delta_interval_ms: 100,
        full_snapshot_interval_ms: 100_000,
        // archiving stays out of the way: only backups put artifacts here
        archive_interval_ms: 10_000_000,
        max_delta_chain: 50,
        sync: "never".into(),
        ..BackupConfig::default()
    }
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>, store: &Arc<FaultyStore>) -> Engine {
    Engine::builder(dir)
        .config(config())
        .clock(clock.clone())
        .store(store.clone())
        .open()
        .unwrap()
}

type Setup = (
    tempfile::TempDir,
    Arc<ManualClock>,
    Arc<FaultyStore>,
    Engine,
);

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let inner: Arc<dyn BackupStore> =
        Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap());
    let store = FaultyStore::new(inner);
    let engine = open(dir.path(), &clock, &store);
    (dir, clock, store, engine)
}

/// The digest of the engine's space now.
fn digest(e: &Engine) -> bindspace_core::Digest {
    e.read(|s| s.digest())
}

fn write(e: &Engine, a: u16, x: u64) -> u64 {
    e.write(Addr(a), Fingerprint::from_words(vec![x; 8]))
        .unwrap()
}

#[test]
fn nothing_runs_until_the_clock_says_so() {
    let (_dir, clock, store, engine) = setup();
    write(&engine, 1, 1);
    engine.tick();
    assert_eq!(engine.status().backups_ok, 0, "not due yet");
    clock.advance(99 * MS);
    engine.tick();
    assert_eq!(engine.status().backups_ok, 0, "still not due");
    assert_eq!(store.calls(Op::Put), 0);
    clock.advance(MS);
    engine.tick();
    let s = engine.status();
    assert_eq!(s.backups_ok, 1, "{s:?}");
    assert_eq!(s.last_backup_version, 1);
}

#[test]
fn a_failing_destination_is_retried_with_backoff_then_the_backup_lands() {
    let (_dir, clock, store, engine) = setup();
    let v = write(&engine, 1, 1);
    store.inject(Op::Put, Fault::Fail, Some(2));
    clock.advance(100 * MS);
    engine.tick();
    let s = engine.status();
    assert_eq!((s.backups_ok, s.backups_failed), (0, 1), "{s:?}");
    assert!(
        s.last_error.as_deref().unwrap().contains("injected fault"),
        "{s:?}"
    );
    // backoff: 100 ms (capped at the interval); nothing before it
    clock.advance(50 * MS);
    engine.tick();
    assert_eq!(engine.status().backups_failed, 1);
    clock.advance(50 * MS);
    engine.tick();
    assert_eq!(engine.status().backups_failed, 2);
    clock.advance(100 * MS);
    engine.tick();
    let s = engine.status();
    assert_eq!((s.backups_ok, s.backups_failed), (1, 2), "{s:?}");
    assert_eq!(s.last_error, None);
    assert_eq!(store.injected(), 2);
    assert_eq!(store.calls(Op::Put), 3);
    let (space, plan) = engine.restore(&Target::Latest).unwrap();
    assert_eq!(plan.version, v);
    assert_eq!(space.digest(), engine.read(|s| s.digest()));
}

#[test]
fn a_damaged_delta_makes_the_next_backup_a_full_and_restores_stay_exact() {
    let (_dir, clock, store, engine) = setup();
    let mut digests = std::collections::BTreeMap::new();
    // each backup also logs a WAL checkpoint, which takes a version
    let v = write(&engine, 1, 1);
    digests.insert(v, digest(&engine));
    clock.advance(100 * MS);
    engine.tick(); // the first backup is a full
    let v = write(&engine, 2, 2);
    digests.insert(v, digest(&engine));
    clock.advance(100 * MS);
    engine.tick(); // an incremental
    write(&engine, 3, 3);
    // A differential composes the incrementals it reads back: the store hands back a
    // damaged one. Not retryable: the chain is broken and the next backup is a full.
    store.inject(Op::Get, Fault::Corrupt, None);
    let err = engine.backup_now(BackupKind::Differential).unwrap_err();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Corrupt, "{err}");
    store.heal();
    let v = write(&engine, 4, 4);
    digests.insert(v, digest(&engine));
    clock.advance(100 * MS);
    engine.tick();
    let m = engine.repository().destinations()[0].clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, manifest) = rt.block_on(m.read_manifest()).unwrap().unwrap();
    let kinds: Vec<BackupKind> = manifest.entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [BackupKind::Full, BackupKind::Incremental, BackupKind::Full],
        "{manifest:?}"
    );
    for (v, want) in &digests {
        let (space, _) = engine.restore(&Target::Version(*v)).unwrap();
        assert_eq!((space.version(), space.digest()), (*v, *want));
    }
    let (space, _) = engine.restore(&Target::Latest).unwrap();
    assert_eq!(space.digest(), engine.read(|s| s.digest()));
}

/// After a restart past the last backup, a full, then an incremental whose write fails:
/// the next incremental must not start where the failed one ended (a gap no restore can
/// cross without the WAL archive, which this repository does not have).
#[test]
fn a_restart_then_a_full_then_a_failed_incremental_leaves_no_gap() {
    let (dir, clock, store, first) = setup();
    write(&first, 1, 1);
    first.backup_now(BackupKind::Full).unwrap();
    let v = write(&first, 2, 2);
    drop(first); // no close: nothing archived, the repository ends at version 1
    let engine = open(dir.path(), &clock, &store);
    assert_eq!(engine.version(), v);
    let v = write(&engine, 3, 3);
    let full = engine.backup_now(BackupKind::Full).unwrap().unwrap();
    assert_eq!((full.kind, full.to_version), (BackupKind::Full, v));
    write(&engine, 4, 4);
    store.inject(Op::Put, Fault::Fail, Some(1));
    let err = engine.backup_now(BackupKind::Incremental).unwrap_err();
    assert!(err.kind().is_retryable(), "{err}");
    // a failed backup asked for (by the CLI or the API) counts like a background one
    let s = engine.status();
    assert_eq!((s.backups_ok, s.backups_failed), (1, 1), "{s:?}");
    assert!(
        s.last_error.as_deref().unwrap().starts_with("backup: "),
        "{s:?}"
    );
    let v = write(&engine, 5, 5);
    let want = digest(&engine);
    let next = engine.backup_now(BackupKind::Incremental).unwrap().unwrap();
    assert_eq!(
        next.kind,
        BackupKind::Full,
        "a failed write breaks the chain"
    );
    let (space, plan) = engine
        .restore(&Target::Version(v))
        .unwrap_or_else(|e| panic!("version {v} must be restorable from the backups alone: {e}"));
    assert_eq!(space.digest(), want, "{plan}");
}

/// After a restart past the last backup and then a full, the next incremental continues
/// from that full by dirty tracking (not by a scan from the old backup).
#[test]
fn after_a_restart_and_a_full_the_next_incremental_continues_from_the_full() {
    let (dir, clock, store, first) = setup();
    write(&first, 1, 1);
    first.backup_now(BackupKind::Full).unwrap();
    write(&first, 2, 2);
    drop(first);
    let engine = open(dir.path(), &clock, &store);
    let v3 = write(&engine, 3, 3);
    let full = engine.backup_now(BackupKind::Full).unwrap().unwrap();
    let v4 = write(&engine, 4, 4);
    let inc = engine.backup_now(BackupKind::Incremental).unwrap().unwrap();
    assert_eq!(inc.kind, BackupKind::Incremental);
    assert_eq!(inc.parent.as_deref(), Some(full.id.as_str()));
    assert_eq!((inc.from_version, inc.to_version), (v3, v4));
    let (space, _) = engine.restore(&Target::Version(v4)).unwrap();
    assert_eq!(space.digest(), digest(&engine));
}

/// Each backup logs a WAL checkpoint (one version, no change to the space): a backup
/// with nothing written since finds nothing to do, and takes no version either, so an
/// idle engine's schedule never backs up its own checkpoints.
#[test]
fn a_backup_logs_one_checkpoint_and_an_idle_one_takes_no_version() {
    let (_dir, _clock, _store, engine) = setup();
    let v = write(&engine, 1, 1);
    let full = engine.backup_now(BackupKind::Full).unwrap().unwrap();
    assert_eq!(full.to_version, v);
    assert_eq!(engine.version(), v + 1, "the checkpoint after the full");
    for _ in 0..3 {
        assert!(
            engine
                .backup_now(BackupKind::Incremental)
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(engine.version(), v + 1);
    let w = write(&engine, 2, 2);
    let inc = engine.backup_now(BackupKind::Incremental).unwrap().unwrap();
    assert_eq!((inc.from_version, inc.to_version), (v, w));
    assert_eq!(engine.version(), w + 1);
    let (space, plan) = engine.restore(&Target::Latest).unwrap();
    assert_eq!(plan.version, w);
    assert_eq!(space.digest(), digest(&engine));
}

/// A restart right after a backup (only its WAL checkpoint after it) continues the
/// chain by dirty tracking: the next incremental starts at the backup's version and
/// reads nothing back from the store (no restore-and-scan).
#[test]
fn a_restart_right_after_a_backup_continues_by_dirty_tracking() {
    let (dir, clock, store, first) = setup();
    write(&first, 1, 1);
    let full = first.backup_now(BackupKind::Full).unwrap().unwrap();
    drop(first);
    let engine = open(dir.path(), &clock, &store);
    assert_eq!(engine.version(), full.to_version + 1);
    let gets = store.calls(Op::Get);
    let w = write(&engine, 2, 2);
    let inc = engine.backup_now(BackupKind::Incremental).unwrap().unwrap();
    assert_eq!(inc.kind, BackupKind::Incremental);
    assert_eq!((inc.from_version, inc.to_version), (full.to_version, w));
    assert_eq!(
        store.calls(Op::Get),
        gets,
        "nothing read back to scan against"
    );
    let (space, _) = engine.restore(&Target::Version(w)).unwrap();
    assert_eq!(space.digest(), digest(&engine));
}

/// A restore point whose name is taken is refused before its WAL record is written:
/// nothing becomes durable, no version is taken.
#[test]
fn a_taken_restore_point_name_is_refused_before_the_wal_records_it() {
    let (_dir, _clock, _store, engine) = setup();
    write(&engine, 1, 1);
    engine.backup_now(BackupKind::Full).unwrap();
    let v = engine.restore_point("before", false).unwrap();
    let err = engine.restore_point("before", false).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert_eq!(engine.version(), v, "the refused point took no version");
}

/// Issue 16, item 1: an out-of-range delete is refused before it is logged, and the
/// next write returns (it used to wait forever behind the failed record).
#[test]
fn an_out_of_range_delete_is_refused_and_the_next_write_returns() {
    let (_dir, _clock, _store, engine) = setup();
    let v = write(&engine, 1, 1);
    let err = engine.delete(Addr(1000)).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    // on a thread of its own: a wedged write fails the test instead of hanging it
    let engine = Arc::new(engine);
    let (tx, rx) = std::sync::mpsc::channel();
    let e = engine.clone();
    std::thread::spawn(move || tx.send(write(&e, 2, 2)));
    let next = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the write after a refused delete returns");
    assert_eq!(next, v + 1, "the refused delete took no version");
}

/// The escape hatch for a WAL checkpoint that does not match on reopen: with
/// verification off the engine opens on the log as it is, and the next backup is a
/// full (an incremental would chain onto a state the backups never recorded).
#[test]
fn opened_past_a_checkpoint_mismatch_the_next_backup_is_a_full() {
    let (dir, clock, store, first) = setup();
    write(&first, 1, 1);
    first.backup_now(BackupKind::Full).unwrap(); // the local checkpoint.snap is here
    let v = write(&first, 3, 3);
    first.backup_now(BackupKind::Incremental).unwrap(); // its WAL checkpoint at v + 1
    drop(first);
    // the write at v (after the local checkpoint.snap), altered on disk under a valid
    // frame checksum
    let wal = dir.path().join("wal");
    let seg = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut off = bindspace_wal::segment::SEGMENT_HEADER;
    loop {
        let (rec, n) = bindspace_wal::decode_frame(&bytes[off..]).unwrap();
        if rec.version == v {
            let mut forged = vec![];
            bindspace_wal::encode_frame(
                &bindspace_wal::Record {
                    op: bindspace_wal::RecordOp::Op(bindspace_wal::Op::Write(
                        Addr(3),
                        Fingerprint::from_words(vec![9; 8]),
                    )),
                    ..rec
                },
                &mut forged,
            );
            bytes[off..off + n].copy_from_slice(&forged);
            break;
        }
        off += n;
    }
    std::fs::write(&seg, &bytes).unwrap();
    assert!(
        Engine::builder(dir.path())
            .config(config())
            .clock(clock.clone())
            .store(store.clone())
            .open()
            .is_err(),
        "refused by default"
    );
    let engine = Engine::builder(dir.path())
        .config(BackupConfig {
            verify_wal_checkpoints: false,
            ..config()
        })
        .clock(clock.clone())
        .store(store.clone())
        .open()
        .unwrap();
    write(&engine, 2, 2);
    let next = engine.backup_now(BackupKind::Incremental).unwrap().unwrap();
    assert_eq!(next.kind, BackupKind::Full, "{next:?}");
}

/// Issue 16, item 2: a guaranteed restore point made before the first full restores
/// (it was acknowledged, and then "no full snapshot at or before it"): the engine takes
/// a full first.
#[test]
fn a_guaranteed_restore_point_before_the_first_full_restores() {
    let (_dir, _clock, _store, engine) = setup();
    for a in 1..=5 {
        write(&engine, a, a as u64);
    }
    let want = digest(&engine);
    let v = engine.restore_point("early", true).unwrap();
    for a in 6..=9 {
        write(&engine, a, a as u64);
    }
    engine.backup_now(BackupKind::Full).unwrap();
    engine.archive_now().unwrap();
    let (space, plan) = engine
        .restore(&Target::RestorePoint("early".into()))
        .unwrap();
    assert_eq!((plan.version, space.digest()), (v, want));
}

/// Issue 16, item 11: a differential whose read-back fails for a reason a retry can
/// cure (the store was unavailable) lands as an incremental, and the chain goes on (it
/// used to break, making the next backup a full).
#[test]
fn a_differential_that_cannot_read_back_lands_as_an_incremental() {
    let (_dir, _clock, store, engine) = setup();
    write(&engine, 1, 1);
    engine.backup_now(BackupKind::Full).unwrap();
    write(&engine, 2, 2);
    engine.backup_now(BackupKind::Incremental).unwrap();
    let w = write(&engine, 3, 3);
    store.inject(Op::Get, Fault::Fail, Some(1));
    let b = engine
        .backup_now(BackupKind::Differential)
        .unwrap()
        .unwrap();
    assert_eq!((b.kind, b.to_version), (BackupKind::Incremental, w));
    write(&engine, 4, 4);
    let next = engine.backup_now(BackupKind::Incremental).unwrap().unwrap();
    assert_eq!(next.kind, BackupKind::Incremental, "the chain went on");
    let (space, _) = engine.restore(&Target::Latest).unwrap();
    assert_eq!(space.digest(), digest(&engine));
}

/// Issue 16, item 12: an idle engine does not rewrite its full at the same version
/// (new header time, other bytes under the catalog entry that recorded the first).
#[test]
fn an_idle_engine_does_not_rewrite_its_full() {
    let (_dir, clock, store, engine) = setup();
    write(&engine, 1, 1);
    assert!(engine.backup_now(BackupKind::Full).unwrap().is_some());
    let puts = store.calls(Op::Put);
    clock.advance(1_000);
    assert!(engine.backup_now(BackupKind::Full).unwrap().is_none());
    assert_eq!(store.calls(Op::Put), puts, "nothing stored again");
    write(&engine, 2, 2);
    assert!(engine.backup_now(BackupKind::Full).unwrap().is_some());
}

/// Issue 16, item 3: retention removes the archived WAL that no kept full needs (it
/// used to keep every segment forever, until listing the archive outlasted the store
/// timeout), and everything from the oldest kept full on still restores exactly.
#[test]
fn retention_removes_the_archived_wal_no_kept_full_needs_and_the_rest_restores() {
    const HOUR_US: u64 = 3_600_000_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let inner: Arc<dyn BackupStore> =
        Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap());
    let store = FaultyStore::new(inner.clone());
    let mut cfg = config();
    cfg.background_jobs = false;
    // the newest backup of each of the last two hours: two fulls stay
    cfg.retention = bindspace_catalog::retention::RetentionPolicy {
        keep_all_within_us: 0,
        hourly: 2,
        daily: 0,
        weekly: 0,
        monthly: 0,
        yearly: 0,
        ..Default::default()
    };
    let engine = Engine::builder(dir.path())
        .config(cfg)
        .clock(clock.clone())
        .store(store.clone())
        .open()
        .unwrap();
    let mut states = std::collections::BTreeMap::new();
    for round in 0..5u64 {
        for i in 0..6u64 {
            let v = write(&engine, (i + 10 * round) as u16, round * 100 + i);
            states.insert(v, digest(&engine));
            engine.archive_now().unwrap(); // one segment per write
        }
        clock.advance(HOUR_US);
        engine.backup_now(BackupKind::Full).unwrap().unwrap();
    }
    for i in 0..4u64 {
        let v = write(&engine, (60 + i) as u16, 900 + i);
        states.insert(v, digest(&engine));
    }
    engine.archive_now().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(inner.read_manifest()).unwrap().unwrap().1;
    let fulls: Vec<u64> = m
        .entries
        .iter()
        .filter(|e| e.kind == BackupKind::Full)
        .map(|e| e.to_version)
        .collect();
    assert_eq!(fulls.len(), 2, "the policy keeps two fulls: {fulls:?}");
    let oldest = *fulls.iter().min().unwrap();
    let wal = rt
        .block_on(inner.list(bindspace_catalog::ArtifactKind::WalSegment, 0, u64::MAX))
        .unwrap();
    let needless: Vec<String> = wal
        .iter()
        .filter(|r| r.id.versions().1 <= oldest)
        .map(|r| r.id.to_string())
        .collect();
    assert!(
        needless.is_empty(),
        "archived WAL at or below the oldest kept full ({oldest}) is still there: {needless:?}"
    );
    assert!(
        wal.iter().any(|r| r.id.versions().0 <= oldest + 1),
        "the WAL right after the oldest kept full was removed too: {wal:?}"
    );
    // every recorded state from the oldest kept full on restores exactly, through
    // the WAL retention kept
    let mut restored = 0;
    for (&v, want) in states.range(oldest..) {
        let (space, plan) = engine.restore(&Target::Version(v)).unwrap();
        assert_eq!((plan.version, space.digest()), (v, *want), "version {v}");
        restored += 1;
    }
    assert!(restored >= 10, "{restored} versions checked");
    // an older one says it cannot, rather than returning something else
    let (&early, _) = states.iter().next().unwrap();
    assert!(engine.restore(&Target::Version(early)).is_err());
}

// Retention asked for now (the API's `POST /retention?confirm=true`) deletes under the
// lease and counts in the status like the retention after each full.
#[test]
fn retention_now_counts_what_it_deletes() {
    let (dir, clock, store, first) = setup();
    write(&first, 1, 1);
    first.backup_now(BackupKind::Full).unwrap();
    write(&first, 2, 2);
    first.backup_now(BackupKind::Incremental).unwrap();
    clock.advance(1_000 * MS);
    write(&first, 3, 3);
    first.backup_now(BackupKind::Full).unwrap();
    first.close().unwrap();
    let mut cfg = config();
    cfg.retention.max_count = Some(1);
    cfg.retention.keep_all_within_us = 0;
    let engine = Engine::builder(dir.path())
        .config(cfg)
        .clock(clock.clone())
        .store(store.clone())
        .open()
        .unwrap();
    let want = digest(&engine);
    let (plan, n) = engine.retention_now().unwrap();
    assert!(n >= 2 && plan.delete.len() >= 2, "{plan:?} {n}");
    assert_eq!(engine.status().retention_deleted, n as u64);
    let (space, _) = engine.restore(&Target::Latest).unwrap();
    assert_eq!(space.digest(), want, "what stays restores the latest state");
}

/// No format-3 delta is ever stored under a catalog an older build would open: a
/// catalog this build backs up to says layout 6 (`compact_deltas`) from its first
/// full on, and one that does not (written by an older build) gets it by a commit of
/// its own before the first delta is uploaded. An older build's planner lists
/// artifacts, so a delta stored where the entry's own commit then failed would
/// otherwise be reached mid-restore.
#[test]
fn no_format_3_delta_is_stored_under_a_catalog_below_layout_6() {
    let (_dir, _clock, store, engine) = setup();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let manifest = || rt.block_on(store.inner().read_manifest()).unwrap().unwrap();
    write(&engine, 1, 1);
    engine.backup_now(BackupKind::Full).unwrap();
    let (g, mut m) = manifest();
    assert!(m.compact_deltas, "a full by this build marks the catalog");
    assert_eq!(m.layout, 6);
    // the catalog as an older build left it: unmarked, layout 2
    m.compact_deltas = false;
    m.layout = m.layout_needed();
    assert!(m.layout < 6);
    rt.block_on(store.inner().commit_manifest(g, &m)).unwrap();
    // every catalog commit fails: the incremental is refused before its delta is stored
    write(&engine, 2, 2);
    store.inject(Op::CommitManifest, Fault::Fail, None);
    assert!(engine.backup_now(BackupKind::Incremental).is_err());
    let deltas = rt
        .block_on(store.inner().list(ArtifactKind::Delta, 0, u64::MAX))
        .unwrap();
    assert!(deltas.is_empty(), "{deltas:?}");
    assert!(!manifest().1.compact_deltas);
    // healed: the catalog says layout 6 first, then holds the delta
    store.heal();
    let mut x = 3;
    let e = loop {
        write(&engine, 3, x);
        x += 1;
        // (the failed incremental broke the chain: the next backup may be a full)
        let e = engine.backup_now(BackupKind::Incremental).unwrap().unwrap();
        if e.kind == BackupKind::Incremental {
            break e;
        }
        assert!(x < 6, "an incremental after a full");
    };
    let m = manifest().1;
    assert!(m.compact_deltas);
    assert_eq!(m.layout, 6);
    let entry = m.entries.iter().find(|x| x.id == e.id).unwrap();
    assert_eq!(entry.format, Some(3));
}
