//! Issue 18 (standby, first part): `bindspace::Standby` restores the newest state once,
//! then follows the archive by applying each WAL record archived after it (no second
//! restore from a full), serving reads equal to the primary's state at that version;
//! a standby that cannot reach its store fails the catch-up and its lag grows; a
//! promotion opens a writing engine on a new timeline that branches where the standby
//! stood, whose writes restore from the repository; the old primary is fenced (a write
//! it acknowledged after the promotion never reaches the repository, every later write
//! and a reopen fail with `Fenced`), its history restoring up to the takeover. A
//! 256-address space on the embedded default.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;

use bindspace::{BackupConfig, Engine, Standby};
use bindspace_catalog::{BackupKind, BackupStore};
use bindspace_core::{Addr, Digest, Fingerprint, ManualClock};
use bindspace_pitr::Target;
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_testkit::{Fault, FaultyStore, Op};

fn cfg() -> BackupConfig {
    BackupConfig {
        fingerprint_words: 4,
        address_space: 256,
        background_jobs: false,
        sync: "never".into(),
        wal_segment_bytes: 1 << 10,
        ..BackupConfig::default()
    }
}

/// A repository in `dir/repo`.
fn local_repo(dir: &std::path::Path) -> Arc<dyn BackupStore> {
    Arc::new(
        ObjectBackupStore::from_url(
            &format!("file://{}", dir.join("repo").display()),
            StoreOptions::default(),
        )
        .unwrap(),
    )
}

/// An engine in `data` on `repo`.
fn open(
    data: std::path::PathBuf,
    clock: &Arc<ManualClock>,
    repo: &Arc<dyn BackupStore>,
) -> bindspace::Result<Engine> {
    Engine::builder(data)
        .config(cfg())
        .clock(clock.clone())
        .store(repo.clone())
        .open()
}

#[test]
fn a_standby_follows_the_archive_and_promotes_onto_a_new_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let repo = local_repo(dir.path());
    // the standby reads the repository through two stores (both the same directory):
    // one of them failing leaves it not caught up, not "lag 0"
    let faulty = FaultyStore::new(repo.clone());
    let second = FaultyStore::new(repo.clone());
    let primary = open(dir.path().join("primary"), &clock, &repo).unwrap();
    let mut at: BTreeMap<u64, Digest> = BTreeMap::new();
    let write = |at: &mut BTreeMap<u64, Digest>, from: u64, n: u64| {
        for v in from..from + n {
            primary
                .write(
                    Addr((v * 7 % 256) as u16),
                    Fingerprint::from_words(vec![v; 4]),
                )
                .unwrap();
            clock.advance(1_000);
            at.insert(primary.version(), primary.read(|s| s.digest()));
            if v == 10 {
                primary.backup_now(BackupKind::Full).unwrap();
            }
        }
        primary.archive_now().unwrap();
    };
    write(&mut at, 1, 30);
    let mut standby =
        Standby::open_with_clock(vec![faulty.clone(), second.clone()], None, clock.clone())
            .unwrap();
    let v0 = standby.version();
    assert!(v0 >= 30, "{v0}");
    assert_eq!(standby.read(|s| s.digest()).unwrap(), at[&v0]);
    // follows: new WAL only, no full fetched again
    write(&mut at, 31, 40);
    let gets = faulty.calls(Op::Get);
    let a = standby.catch_up().unwrap();
    assert!(a.to > a.from && a.segments > 0, "{a:?}");
    assert_eq!(standby.version(), primary.version());
    assert_eq!(
        standby.read(|s| s.digest()).unwrap(),
        at[&standby.version()]
    );
    assert!(
        faulty.calls(Op::Get) - gets <= a.segments as u64,
        "only the new segments were read"
    );
    // nothing new: nothing applied; the lag counts from the last complete catch-up
    clock.advance(2_000_000);
    assert_eq!(standby.lag_ms(), Some(2_000));
    // and, after its first catch-up, without listing whole prefixes
    let (lists, since) = (faulty.calls(Op::List), faulty.calls(Op::ListSince));
    let a = standby.catch_up().unwrap();
    assert_eq!(
        faulty.calls(Op::List),
        lists,
        "a catch-up listed whole prefixes"
    );
    assert!(faulty.calls(Op::ListSince) > since);
    assert_eq!((a.from, a.to, a.segments), (a.from, a.from, 0), "{a:?}");
    assert!(a.complete, "{a:?}");
    assert_eq!(standby.lag_ms(), Some(0));
    // one store unreachable: the other serves the new WAL, but the standby cannot know
    // it holds everything: not complete, and the lag grows (review: it read 0)
    write(&mut at, 71, 10);
    faulty.inject(Op::List, Fault::Fail, None);
    faulty.inject(Op::ListSince, Fault::Fail, None);
    clock.advance(10_000_000);
    let a = standby.catch_up().unwrap();
    assert!(!a.complete && a.to > a.from, "{a:?}");
    assert!(standby.lag_ms().unwrap() >= 10_000);
    // both unreachable: the catch-up fails, the lag grows on
    second.inject(Op::List, Fault::Fail, None);
    second.inject(Op::ListSince, Fault::Fail, None);
    clock.advance(20_000_000);
    assert!(standby.catch_up().is_err());
    assert!(standby.lag_ms().unwrap() >= 30_000);
    faulty.heal();
    second.heal();

    // promote: a writing engine on a new timeline from where the standby stood
    let promoted = standby
        .promote(
            Engine::builder(dir.path().join("promoted"))
                .config(cfg())
                .clock(clock.clone())
                .store(repo.clone()),
        )
        .unwrap();
    let branch = promoted.version();
    assert_eq!(branch, primary.version());
    assert_ne!(promoted.timeline(), primary.timeline());
    assert_eq!(promoted.read(|s| s.digest()), at[&branch]);
    promoted
        .write(Addr(200), Fingerprint::from_words(vec![999; 4]))
        .unwrap();
    let mine = promoted.read(|s| s.digest());
    promoted.backup_now(BackupKind::Full).unwrap();
    promoted.archive_now().unwrap();
    // the old primary is fenced: a write it acknowledges locally never reaches the
    // repository (its archive is refused), and from then on every write fails
    let before_fence = primary.read(|s| s.digest());
    primary
        .write(Addr(201), Fingerprint::from_words(vec![777; 4]))
        .unwrap();
    let err = primary.archive_now().unwrap_err();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    let err = primary
        .write(Addr(202), Fingerprint::from_words(vec![778; 4]))
        .unwrap_err();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    let err = primary.backup_now(BackupKind::Full).unwrap_err();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    // the promoted engine writes on
    promoted
        .write(Addr(203), Fingerprint::from_words(vec![1; 4]))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (space, plan) = rt
        .block_on(bindspace_pitr::restore_to_on(
            vec![repo.clone()],
            &Target::Latest,
            Some(promoted.timeline()),
        ))
        .unwrap();
    assert_eq!(plan.timeline, promoted.timeline());
    assert_eq!(
        space.digest(),
        mine,
        "the promoted history restores as written"
    );
    // its branch point restores from the first history's artifacts, checked against
    // the root the promotion recorded
    let (space, _) = rt
        .block_on(bindspace_pitr::restore_to_on(
            vec![repo.clone()],
            &Target::Version(branch),
            Some(promoted.timeline()),
        ))
        .unwrap();
    assert_eq!(space.digest(), at[&branch], "the branch point");
    // the old primary's history still restores, up to where it was taken over: its
    // write after the promotion is not in the repository
    let (space, _) = rt
        .block_on(bindspace_pitr::restore_to_on(
            vec![repo.clone()],
            &Target::Latest,
            Some(primary.timeline()),
        ))
        .unwrap();
    assert_eq!(
        space.digest(),
        before_fence,
        "the old history, without its fenced write"
    );
    assert_ne!(space.digest(), mine);
    // reopening the old primary's directory is refused too
    primary.close().ok();
    let err = open(dir.path().join("primary"), &clock, &repo)
        .err()
        .unwrap();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    // a promotion into a directory that holds something is refused
    std::fs::create_dir_all(dir.path().join("busy")).unwrap();
    std::fs::write(dir.path().join("busy/timeline"), "timeline 1\n").unwrap();
    let standby = Standby::open_with_clock(vec![repo.clone()], Some(1), clock.clone()).unwrap();
    let err = standby
        .promote(
            Engine::builder(dir.path().join("busy"))
                .config(cfg())
                .store(repo.clone()),
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("not empty"), "{err}");
    // and a second promotion over the history already taken over is refused (two
    // promotions would be two writers)
    let standby = Standby::open_with_clock(vec![repo.clone()], Some(1), clock.clone()).unwrap();
    let err = standby
        .promote(
            Engine::builder(dir.path().join("second"))
                .config(cfg())
                .store(repo.clone()),
        )
        .err()
        .unwrap();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    assert!(!dir.path().join("second").exists(), "nothing was built");
    promoted.close().unwrap();
}

// Issue 18: a switchover stops the primary cleanly, lets the standby catch up to its
// last version and promotes: 0 versions lost (the promoted engine starts from exactly
// the primary's final state), and the old history is fenced.
#[test]
fn a_switchover_loses_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let repo = local_repo(dir.path());
    let primary = open(dir.path().join("primary"), &clock, &repo).unwrap();
    for v in 1..=40u64 {
        primary
            .write(
                Addr((v * 3 % 256) as u16),
                Fingerprint::from_words(vec![v; 4]),
            )
            .unwrap();
        clock.advance(1_000);
        if v == 10 {
            primary.backup_now(BackupKind::Full).unwrap();
        }
    }
    primary.archive_now().unwrap();
    let standby = Standby::open_with_clock(vec![repo.clone()], None, clock.clone()).unwrap();
    // more writes the standby has not seen, not yet archived when the switchover starts
    for v in 41..=55u64 {
        primary
            .write(Addr(v as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
    }
    let (last, state) = (primary.version(), primary.read(|s| s.digest()));
    assert!(standby.version() < last);
    let promoted = standby
        .switchover(
            primary,
            Engine::builder(dir.path().join("promoted"))
                .config(cfg())
                .clock(clock.clone())
                .store(repo.clone()),
        )
        .unwrap();
    assert_eq!(promoted.version(), last, "0 versions lost");
    assert_eq!(promoted.read(|s| s.digest()), state);
    assert_ne!(promoted.timeline(), 1);
    promoted
        .write(Addr(250), Fingerprint::from_words(vec![1; 4]))
        .unwrap();
    // the old primary's directory is fenced
    let err = open(dir.path().join("primary"), &clock, &repo)
        .err()
        .unwrap();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    promoted.close().unwrap();
}

// Review of the incremental catch-up: a standby restored from a full taken while the
// active WAL segment was open, with no archived segment before it (retention swept it),
// must still find that segment once it is archived (it starts before the standby's
// version): it lists everything until its history has a segment to start from, and
// never reports `complete` while an archived record is missing.
#[test]
fn a_standby_restored_mid_segment_finds_the_segment_that_started_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let repo = local_repo(dir.path());
    let primary = Engine::builder(dir.path().join("primary"))
        .config(BackupConfig {
            wal_segment_bytes: 1 << 20,
            ..cfg()
        })
        .clock(clock.clone())
        .store(repo.clone())
        .open()
        .unwrap();
    let write = |from: u64, n: u64| {
        for v in from..from + n {
            primary
                .write(Addr((v % 256) as u16), Fingerprint::from_words(vec![v; 4]))
                .unwrap();
            clock.advance(1_000);
        }
    };
    write(1, 15);
    primary.archive_now().unwrap();
    write(16, 5);
    primary.backup_now(BackupKind::Full).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // the WAL below the full, as retention leaves it
    let swept: Vec<_> = rt
        .block_on(repo.list(bindspace_catalog::ArtifactKind::WalSegment, 0, u64::MAX))
        .unwrap()
        .into_iter()
        .filter(|r| r.id.versions().1 <= primary.version())
        .collect();
    for r in &swept {
        rt.block_on(repo.delete(r.id)).unwrap();
    }
    let mut standby = Standby::open_with_clock(vec![repo.clone()], None, clock.clone()).unwrap();
    let at = standby.version();
    assert!(standby.catch_up().unwrap().complete);
    write(21, 10);
    primary.archive_now().unwrap();
    let segs = rt
        .block_on(repo.list(bindspace_catalog::ArtifactKind::WalSegment, 0, u64::MAX))
        .unwrap();
    // the segment holding the next record started before the standby's version
    assert!(
        segs.iter()
            .any(|r| r.id.versions().0 <= at && r.id.versions().1 > at),
        "not the case under test: {segs:?} (standby at {at})"
    );
    let a = standby.catch_up().unwrap();
    assert_eq!(standby.version(), primary.version(), "{a:?}");
    assert_eq!(
        standby.read(|s| s.digest()).unwrap(),
        primary.read(|s| s.digest())
    );
    primary.close().unwrap();
}

// Issue 18 on a real server: a standby follows an S3 repository (moto) under writes,
// each catch-up after the first listing only the new WAL, and is promoted; the old
// primary is fenced there, and the promoted engine's history restores from S3 alone.
#[test]
fn a_standby_follows_an_s3_repository_and_is_promoted_there() {
    let Some(s3) = bindspace_testkit::service_env("BINDSPACE_TEST_S3_URL", "an S3 server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "{}/{}",
        s3.trim_end_matches('/'),
        bindspace_testkit::unique_name("standby")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = rt
        .block_on(bindspace::stores::open_with(
            &url,
            std::time::Duration::from_secs(10),
        ))
        .unwrap();
    let counted = FaultyStore::new(repo.clone());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let primary = open(dir.path().join("primary"), &clock, &repo).unwrap();
    let write = |from: u64, n: u64| {
        for v in from..from + n {
            primary
                .write(
                    Addr((v * 5 % 256) as u16),
                    Fingerprint::from_words(vec![v; 4]),
                )
                .unwrap();
            clock.advance(1_000);
            if v == 10 {
                primary.backup_now(BackupKind::Full).unwrap();
            }
        }
        primary.archive_now().unwrap();
    };
    write(1, 30);
    let mut standby = Standby::open_with_clock(vec![counted.clone()], None, clock.clone()).unwrap();
    assert_eq!(standby.version(), primary.version());
    standby.catch_up().unwrap();
    let lists = counted.calls(Op::List);
    for round in 0..3 {
        write(31 + round * 20, 20);
        let a = standby.catch_up().unwrap();
        assert!(a.complete && a.segments > 0, "{a:?}");
        assert_eq!(standby.version(), primary.version());
        assert_eq!(
            standby.read(|s| s.digest()).unwrap(),
            primary.read(|s| s.digest())
        );
    }
    assert_eq!(
        counted.calls(Op::List),
        lists,
        "a catch-up listed whole prefixes"
    );
    let promoted = standby
        .promote(
            Engine::builder(dir.path().join("promoted"))
                .config(cfg())
                .clock(clock.clone())
                .store(repo.clone()),
        )
        .unwrap();
    // the last catch-up before a promotion lists everything
    assert!(
        counted.calls(Op::List) > lists,
        "the promotion's catch-up listed only the new WAL"
    );
    assert_eq!(promoted.read(|s| s.digest()), primary.read(|s| s.digest()));
    promoted
        .write(Addr(7), Fingerprint::from_words(vec![4242; 4]))
        .unwrap();
    promoted.backup_now(BackupKind::Full).unwrap();
    let mine = promoted.read(|s| s.digest());
    // the old primary's next archive is refused there
    primary
        .write(Addr(8), Fingerprint::from_words(vec![777; 4]))
        .unwrap();
    let err = primary.archive_now().unwrap_err();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Fenced, "{err}");
    let (space, _) = rt
        .block_on(bindspace_pitr::restore_to(
            vec![repo.clone()],
            &Target::Latest,
        ))
        .unwrap();
    assert_eq!(space.digest(), mine);
    promoted.close().unwrap();
    drop(primary);
}

// Review of the promotion: the old writer is fenced before the last catch-up (which
// lists everything), so a promotion that fails after fencing (the stores unlistable
// for that catch-up) must be resumable: the same directory resumes under its own
// fence record, while a promotion into another directory is refused (two writers).
#[test]
fn a_promotion_that_fails_after_fencing_resumes_into_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let repo = local_repo(dir.path());
    let faulty = FaultyStore::new(repo.clone());
    let primary = open(dir.path().join("primary"), &clock, &repo).unwrap();
    for v in 1..40u64 {
        primary
            .write(Addr((v % 256) as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
        clock.advance(1_000);
        if v == 10 {
            primary.backup_now(BackupKind::Full).unwrap();
        }
    }
    primary.archive_now().unwrap();
    let want = primary.read(|s| s.digest());
    let builder = |name: &str| {
        Engine::builder(dir.path().join(name))
            .config(cfg())
            .clock(clock.clone())
            .store(repo.clone())
    };
    let mut standby = Standby::open_with_clock(vec![faulty.clone()], None, clock.clone()).unwrap();
    standby.catch_up().unwrap();
    // the first catch-up lists only the new WAL; the one after the fence lists
    // everything and fails
    faulty.inject(Op::List, Fault::Fail, None);
    let err = standby.promote(builder("promoted")).unwrap_err();
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Unavailable, "{err}");
    faulty.heal();
    // fenced already
    primary
        .write(Addr(9), Fingerprint::from_words(vec![1; 4]))
        .unwrap();
    let e = primary.archive_now().unwrap_err();
    assert_eq!(e.kind(), bindspace_core::ErrorKind::Fenced, "{e}");
    // another directory: refused (its fence record would be another; the record's
    // time tells promotions apart); the same one: resumed
    clock.advance(1_000);
    let other = Standby::open_with_clock(vec![repo.clone()], None, clock.clone()).unwrap();
    let e = other.promote(builder("elsewhere")).unwrap_err();
    assert!(
        e.to_string().contains("taken over") || e.to_string().contains("superseded"),
        "{e}"
    );
    let again = Standby::open_with_clock(vec![repo.clone()], None, clock.clone()).unwrap();
    let promoted = again.promote(builder("promoted")).unwrap();
    assert_eq!(promoted.read(|s| s.digest()), want);
    assert_ne!(promoted.timeline(), primary.timeline());
    assert!(!dir.path().join("promoted").join("promotion.fence").exists());
    promoted
        .write(Addr(3), Fingerprint::from_words(vec![3; 4]))
        .unwrap();
    promoted.close().unwrap();
}

// Review of the standby: a primary that moves to a new history (a rewind) is no
// longer followed by a standby on the old one; the standby must say so (not caught
// up, its lag growing) and refuse to promote (which would fence a history nobody
// writes and leave the real writer unfenced), naming the new history.
#[test]
fn a_standby_whose_primary_moved_to_a_new_history_is_not_caught_up_and_not_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let repo = local_repo(dir.path());
    let primary = open(dir.path().join("primary"), &clock, &repo).unwrap();
    for v in 1..30u64 {
        primary
            .write(Addr((v % 256) as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
        clock.advance(1_000);
        if v == 10 {
            primary.backup_now(BackupKind::Full).unwrap();
        }
    }
    primary.archive_now().unwrap();
    let mut standby = Standby::open_with_clock(vec![repo.clone()], None, clock.clone()).unwrap();
    assert!(standby.catch_up().unwrap().complete);
    primary.close().unwrap();
    clock.advance(1_000_000);
    let rewound = bindspace::rewind(
        &dir.path().join("primary"),
        BackupConfig {
            destinations: vec![format!("file://{}", dir.path().join("repo").display())],
            ..cfg()
        },
        clock.clone(),
        &Target::Version(20),
        None,
    )
    .unwrap();
    let primary = open(dir.path().join("primary"), &clock, &repo).unwrap();
    assert_eq!(primary.timeline(), rewound.timeline);
    primary
        .write(Addr(1), Fingerprint::from_words(vec![5_000; 4]))
        .unwrap();
    primary.archive_now().unwrap();
    clock.advance(5_000_000);
    let a = standby.catch_up().unwrap();
    assert!(!a.complete, "{a:?}");
    assert!(standby.lag_ms().unwrap() >= 5_000);
    let e = standby
        .promote(
            Engine::builder(dir.path().join("promoted"))
                .config(cfg())
                .clock(clock.clone())
                .store(repo.clone()),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("timeline {} branched", rewound.timeline)),
        "{e}"
    );
    // nothing was fenced: the primary on its new history archives on
    primary
        .write(Addr(2), Fingerprint::from_words(vec![5_001; 4]))
        .unwrap();
    primary.archive_now().unwrap();
    primary.close().unwrap();
}
