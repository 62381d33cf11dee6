//! Issue 17: `bindspace_dr::verify` proves a repository restorable, names damage and
//! repairs it. An engine on the embedded default writing to two local directories;
//! a delta damaged in one, a WAL segment deleted from the other: verify names both
//! (the WAL hole with the store that fills it), a repeat run with nothing due reads
//! nothing, repair puts both back checked on both ends, and afterwards every recorded
//! state restores exactly from each store alone. A 256-address space.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{BackupKind, VerifyLevel};
use bindspace_core::{Addr, Clock, Fingerprint, ManualClock};
use bindspace_dr::{Outcome, VerifyOptions, verify};
use bindspace_pitr::Target;

mod common;
use common::{engine_on, files};

/// A checksum-level verify with repair, as `bindspace verify --repair` runs it.
fn repair_run(
    rt: &tokio::runtime::Runtime,
    repo: &bindspace_catalog::Repository,
    clock: &Arc<ManualClock>,
) -> bindspace_dr::Report {
    let opts = VerifyOptions {
        repair: true,
        ..VerifyOptions::default()
    };
    rt.block_on(verify(repo, clock.as_ref(), &opts)).unwrap()
}

#[test]
fn verify_names_damage_in_each_store_repairs_it_and_everything_restores() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = engine_on(dir.path(), &clock, &a, &b, 1 << 10);
    let mut states = Vec::new();
    for v in 1..=90u64 {
        engine
            .write(
                Addr((v * 7 % 256) as u16),
                Fingerprint::from_words(vec![v; 4]),
            )
            .unwrap();
        clock.advance(1_000);
        match v {
            20 => drop(engine.backup_now(BackupKind::Full).unwrap()),
            40 | 60 => drop(engine.backup_now(BackupKind::Incremental).unwrap()),
            50 => drop(engine.restore_point("mid", true).unwrap()),
            _ => {}
        }
        states.push((engine.version(), engine.read(|s| s.digest())));
    }
    engine.archive_now().unwrap();
    let repo = engine.repository().clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = |level| VerifyOptions {
        level,
        ..VerifyOptions::default()
    };

    // a healthy repository is clean at every level; deep restores check their roots
    for level in [
        VerifyLevel::Checksum,
        VerifyLevel::Standard,
        VerifyLevel::Deep,
    ] {
        clock.advance(31 * 86_400 * 1_000_000); // everything due again
        let r = rt
            .block_on(verify(&repo, clock.as_ref(), &opts(level)))
            .unwrap();
        assert_eq!(r.outcome(), Outcome::Clean, "{level}: {r}");
        assert!(r.stores.iter().all(|s| s.checked > 5), "{r}");
        if level == VerifyLevel::Deep {
            assert!(r.deep.len() >= 4, "{r}");
            assert!(r.deep.iter().any(|d| d.status == "verified"), "{r}");
            assert!(r.deep.iter().all(|d| d.status != "failed"), "{r}");
        }
    }
    // nothing new or due: a repeat run reads no artifact bytes
    let r = rt
        .block_on(verify(&repo, clock.as_ref(), &opts(VerifyLevel::Checksum)))
        .unwrap();
    assert!(
        r.stores
            .iter()
            .all(|s| s.bytes_read == 0 && s.checked == 0 && s.fresh > 5),
        "{r}"
    );

    // damage: one byte of a delta in a, one WAL segment gone from b
    let delta = files(&a, "deltas")[0].clone();
    let mut bytes = std::fs::read(&delta).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&delta, &bytes).unwrap();
    let wal = files(&b, "wal/0");
    let gone = wal[wal.len() / 2].clone();
    std::fs::remove_file(&gone).unwrap();

    clock.advance(31 * 86_400 * 1_000_000);
    let r = rt
        .block_on(verify(&repo, clock.as_ref(), &opts(VerifyLevel::Standard)))
        .unwrap();
    assert_eq!(r.outcome(), Outcome::DamageFound, "{r}");
    assert_eq!(r.stores[0].damaged.len(), 1, "{r}");
    assert!(r.stores[0].damaged[0].artifact.starts_with("delta"), "{r}");
    assert_eq!(r.wal_gaps.len(), 1, "{r}");
    assert_eq!(r.wal_gaps[0].store, r.stores[1].store, "{r}");
    assert_eq!(
        r.wal_gaps[0].held_by,
        vec![r.stores[0].store.clone()],
        "{r}"
    );
    let text = r.to_string();
    assert!(
        text.contains("DAMAGE FOUND") && text.contains("WAL gap"),
        "{text}"
    );

    // repair: both put back, checked on both ends
    let r = rt
        .block_on(verify(
            &repo,
            clock.as_ref(),
            &VerifyOptions {
                repair: true,
                recheck: Duration::ZERO,
                ..opts(VerifyLevel::Standard)
            },
        ))
        .unwrap();
    assert_eq!(r.outcome(), Outcome::AllRepaired, "{r}");
    assert_eq!(
        r.stores[0].repaired.len() + r.stores[1].repaired.len(),
        2,
        "{r}"
    );
    assert!(gone.exists(), "the WAL segment is back in b");
    let r = rt
        .block_on(verify(
            &repo,
            clock.as_ref(),
            &VerifyOptions {
                recheck: Duration::ZERO,
                ..opts(VerifyLevel::Standard)
            },
        ))
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Clean, "{r}");

    // every recorded state from the full on restores exactly from each store alone
    for store in repo.destinations() {
        for (v, want) in states.iter().filter(|(v, _)| *v >= 20) {
            let (space, _) = rt
                .block_on(bindspace_pitr::restore_to(
                    vec![store.clone()],
                    &Target::Version(*v),
                ))
                .unwrap();
            assert_eq!(&space.digest(), want, "version {v} from {}", store.name());
        }
    }
}

// Review finding: a store whose catalog was lost while its artifacts remain is not
// "clean" (every artifact would read as an orphan), and verify writes no new catalog
// into it.
#[test]
fn a_store_that_lost_its_catalog_is_damage_not_a_clean_store_of_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = engine_on(
        dir.path(),
        &clock,
        &a,
        &b,
        BackupConfig::default().wal_segment_bytes,
    );
    engine
        .write(Addr(3), Fingerprint::from_words(vec![3; 4]))
        .unwrap();
    engine.backup_now(BackupKind::Full).unwrap();
    let repo = engine.repository().clone();
    std::fs::remove_dir_all(b.join("catalog")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(verify(&repo, clock.as_ref(), &VerifyOptions::default()))
        .unwrap();
    assert_eq!(r.outcome(), Outcome::DamageFound, "{r}");
    assert!(
        r.stores[1]
            .unavailable
            .as_deref()
            .is_some_and(|u| u.contains("no catalog")),
        "{r}"
    );
    assert!(!b.join("catalog").exists(), "verify wrote a catalog into b");

    // issue 17: a repair rebuilds it from the other store's catalog
    let r = repair_run(&rt, &repo, &clock);
    assert_eq!(r.outcome(), Outcome::AllRepaired, "{r}");
    assert!(r.stores[1].catalog_rebuilt.is_some(), "{r}");
    let rebuilt = rt.block_on(repo.destinations()[1].read_manifest()).unwrap();
    let want = rt.block_on(repo.destinations()[0].read_manifest()).unwrap();
    assert_eq!(
        rebuilt.unwrap().1.entries,
        want.unwrap().1.entries,
        "b's rebuilt catalog names a's backups"
    );
}

/// The newest `catalog/manifest-*` of the local store at `dir`.
fn newest_manifest(dir: &Path) -> PathBuf {
    files(dir, "catalog")
        .into_iter()
        .rfind(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("manifest-")
        })
        .unwrap()
}

/// Flips two bytes in the middle of `path`.
fn flip_two_bytes(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    bytes[mid + 1] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
}

// Issue 17, as a new user saw it: two flipped bytes in the newest catalog generation
// made every catalog read fail although the previous generation was intact. Reads fall
// back to the newest intact generation with a warning; writes refuse, saying how to
// go on; a repair rebuilds the catalog from that generation and the other store's,
// losing no restore point either names, and everything restores again.
#[test]
fn a_damaged_newest_catalog_falls_back_for_reads_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = engine_on(
        dir.path(),
        &clock,
        &a,
        &b,
        BackupConfig::default().wal_segment_bytes,
    );
    let mut at = std::collections::BTreeMap::new();
    for v in 1..=50u64 {
        engine
            .write(Addr(v as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
        clock.advance(1_000);
        match v {
            10 => drop(engine.backup_now(BackupKind::Full).unwrap()),
            20 => drop(engine.restore_point("early", true).unwrap()),
            30 => drop(engine.backup_now(BackupKind::Incremental).unwrap()),
            40 => drop(engine.restore_point("late", true).unwrap()),
            _ => {}
        }
        at.insert(engine.version(), engine.read(|s| s.digest()));
    }
    engine.archive_now().unwrap();
    let repo = engine.repository().clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let names = |m: &bindspace_catalog::Manifest| {
        m.restore_points
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    let (before, warning) = rt.block_on(repo.read_catalog()).unwrap();
    assert!(warning.is_none());
    assert_eq!(names(&before), ["early", "late"]);

    // the primary's newest generation (the one that added "late") is damaged
    flip_two_bytes(&newest_manifest(&a));
    let (m, warning) = rt.block_on(repo.read_catalog()).unwrap();
    let warning = warning.expect("a read past damage warns");
    assert!(
        warning.contains("damaged") && warning.contains("verify --repair"),
        "{warning}"
    );
    assert_eq!(names(&m), ["early"], "the previous generation is read");
    // writes refuse, saying how to go on; nothing is committed over the damage
    let e = engine
        .restore_point("refused", false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("verify --repair"), "{e}");
    // review: a backup refuses before it uploads anything (no orphans), while the WAL
    // keeps being archived to every store and the repository still opens (init)
    engine
        .write(Addr(200), Fingerprint::from_words(vec![200; 4]))
        .unwrap();
    at.insert(engine.version(), engine.read(|s| s.digest()));
    let fulls = files(&a, "snapshots/native").len();
    let e = engine.backup_now(BackupKind::Full).unwrap_err().to_string();
    assert!(e.contains("verify --repair"), "{e}");
    assert_eq!(
        files(&a, "snapshots/native").len(),
        fulls,
        "nothing uploaded"
    );
    assert!(engine.archive_now().unwrap() > 0, "WAL still archived");
    rt.block_on(repo.init()).unwrap();
    // a restore by name still finds "late" (the other store's catalog names it)
    let (space, _) = rt
        .block_on(bindspace_pitr::restore_to(
            repo.destinations().to_vec(),
            &Target::RestorePoint("late".into()),
        ))
        .unwrap();
    assert_eq!(space.digest(), at[&space.version()]);

    // verify names the damage; repair rebuilds the catalog, losing no restore point
    let r = rt
        .block_on(verify(&repo, clock.as_ref(), &VerifyOptions::default()))
        .unwrap();
    assert_eq!(r.outcome(), Outcome::DamageFound, "{r}");
    assert!(r.stores[0].catalog.is_some(), "{r}");
    assert!(r.to_string().contains("DAMAGED CATALOG"), "{r}");
    let r = repair_run(&rt, &repo, &clock);
    assert_eq!(r.outcome(), Outcome::AllRepaired, "{r}");
    let (m, warning) = rt.block_on(repo.read_catalog()).unwrap();
    assert!(warning.is_none(), "{warning:?}");
    assert_eq!(names(&m), ["early", "late"]);
    assert_eq!(m.entries, before.entries);
    engine.restore_point("after", false).unwrap();
    at.insert(engine.version(), engine.read(|s| s.digest()));
    engine.archive_now().unwrap();
    // each restore point restores exactly from the repaired store alone
    for name in ["early", "late", "after"] {
        let (space, _) = rt
            .block_on(bindspace_pitr::restore_to(
                vec![repo.destinations()[0].clone()],
                &Target::RestorePoint(name.into()),
            ))
            .unwrap();
        assert_eq!(space.digest(), at[&space.version()], "{name}");
    }

    // the same damage in both stores: "after" was named only by their newest (now
    // damaged) generations; the repair rebuilds from the older ones and says that
    // what only the damaged ones named is lost (review: it was called all repaired)
    for d in [&a, &b] {
        flip_two_bytes(&newest_manifest(d));
    }
    let r = repair_run(&rt, &repo, &clock);
    assert_eq!(r.outcome(), Outcome::DamageFound, "{r}");
    assert!(
        r.stores.iter().all(|s| s.catalog_rebuilt.is_some()
            && s.unrepaired
                .iter()
                .any(|f| f.detail.contains("cannot be recovered"))),
        "{r}"
    );
    let r = rt
        .block_on(verify(&repo, clock.as_ref(), &VerifyOptions::default()))
        .unwrap();
    assert!(r.stores.iter().all(|s| s.catalog.is_none()), "{r}");
    let (m, warning) = rt.block_on(repo.read_catalog()).unwrap();
    assert!(warning.is_none(), "{warning:?}");
    assert!(
        names(&m).starts_with(&["early".to_owned(), "late".to_owned()]),
        "{:?}",
        names(&m)
    );
}

// Review of the change: WAL that one store's retention swept (at or below its oldest
// full) while another store still holds it is not "missing" there, and repair does not
// bring it back.
#[test]
fn wal_swept_below_a_stores_oldest_full_is_neither_missing_nor_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = engine_on(dir.path(), &clock, &a, &b, 1 << 10);
    for v in 1..=60u64 {
        engine
            .write(Addr((v % 256) as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
        if v == 40 {
            engine.backup_now(BackupKind::Full).unwrap();
        }
    }
    engine.archive_now().unwrap();
    let repo = engine.repository().clone();
    // what a retention run on b alone would delete: segments wholly at or below 40
    let mut swept = Vec::new();
    for f in files(&b, "wal/0") {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let last: u64 = name.split(['-', '.']).nth(1).unwrap().parse().unwrap();
        if last <= 40 {
            std::fs::remove_file(&f).unwrap();
            swept.push(f);
        }
    }
    assert!(!swept.is_empty(), "the test needs segments below the full");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = repair_run(&rt, &repo, &clock);
    assert_eq!(r.outcome(), Outcome::Clean, "{r}");
    assert!(
        swept.iter().all(|f| !f.exists()),
        "repair resurrected swept WAL"
    );
}

// Repair runs under the repository's lease: while another writer holds it, nothing is
// put back and the damage is reported unrepaired, saying why.
#[test]
fn repair_under_a_lease_another_writer_holds_puts_nothing_back_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = engine_on(dir.path(), &clock, &a, &b, 1 << 10);
    engine
        .write(Addr(1), Fingerprint::from_words(vec![1; 4]))
        .unwrap();
    engine.backup_now(BackupKind::Full).unwrap();
    let repo = engine.repository().clone();
    let snap = files(&a, "snapshots/native")[0].clone();
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = repo.destinations()[0].clone();
    rt.block_on(primary.acquire_lease("someone else", clock.now_us(), 60_000_000))
        .unwrap();
    let r = repair_run(&rt, &repo, &clock);
    assert_eq!(r.outcome(), Outcome::DamageFound, "{r}");
    assert!(r.stores[0].repaired.is_empty(), "{r}");
    assert!(
        r.stores[0]
            .unrepaired
            .iter()
            .any(|f| f.detail.starts_with("not repaired")),
        "{r}"
    );
    assert_eq!(std::fs::read(&snap).unwrap(), bytes, "nothing was put back");
}

// Issue 17: the engine verifies its repository in the background every
// `verify_interval_ms` at `verify_level`, and reports the last run per level and the
// damage found in its status.
#[test]
fn the_engine_verifies_in_the_background_and_reports_damage_in_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = Engine::builder(dir.path().join("data"))
        .config(BackupConfig {
            fingerprint_words: 4,
            address_space: 256,
            sync: "never".into(),
            // only the verify is due within this test
            delta_interval_ms: 86_400_000,
            full_snapshot_interval_ms: 86_400_000,
            archive_interval_ms: 86_400_000,
            verify_interval_ms: 60_000,
            verify_level: "standard".into(),
            // unpaced: a pace waits on the engine's clock, which moves only here
            verify_max_bytes_per_sec: 0,
            ..BackupConfig::default()
        })
        .clock(clock.clone())
        .store_url(format!("file://{}", a.display()))
        .open()
        .unwrap();
    for v in 1..=30u64 {
        engine
            .write(Addr(v as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
        if v == 10 {
            engine.backup_now(BackupKind::Full).unwrap();
        }
    }
    engine.backup_now(BackupKind::Incremental).unwrap();
    assert_eq!(
        engine.status().verify_runs,
        0,
        "not before an interval passed"
    );
    clock.advance(61_000_000);
    engine.tick();
    let s = engine.status();
    assert_eq!(s.verify_runs, 1, "{s:?}");
    assert_eq!(s.verify_damage_found, 0, "{s:?}");
    assert_eq!(s.last_verify["standard"].1, "clean", "{s:?}");

    let delta = files(&a, "deltas")[0].clone();
    let mut bytes = std::fs::read(&delta).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    std::fs::write(&delta, &bytes).unwrap();
    // due again only after the recheck period: the damaged delta is re-read once
    // every artifact is due (30 days by default)
    clock.advance(31 * 86_400 * 1_000_000);
    engine.tick();
    let s = engine.status();
    assert!(s.verify_runs >= 2, "{s:?}");
    assert_eq!(s.verify_damage_found, 1, "{s:?}");
    let (_, outcome) = &s.last_verify["standard"];
    assert!(
        outcome.starts_with("damage found") && outcome.contains("delta"),
        "{outcome}"
    );
}

// Review of issue 17: the background verify is rate-limited on its own thread. At 100
// bytes a second, after each artifact it waits (on the engine's clock) until the bytes
// read so far are within the rate: no second read within that pause; the run records
// everything once, at its end; and closing the engine in the middle of a paced run
// returns at once instead of waiting the pace out.
#[test]
fn the_background_verify_is_paced_and_a_close_does_not_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let local: Arc<dyn bindspace_catalog::BackupStore> = Arc::new(
        bindspace_store_s3::ObjectBackupStore::from_url(
            &format!("file://{}", a.display()),
            Default::default(),
        )
        .unwrap(),
    );
    let counted = bindspace_testkit::FaultyStore::new(local);
    let open = || {
        Engine::builder(dir.path().join("data"))
            .config(BackupConfig {
                fingerprint_words: 4,
                address_space: 256,
                sync: "never".into(),
                wal_segment_bytes: 1 << 10,
                delta_interval_ms: 86_400_000,
                full_snapshot_interval_ms: 86_400_000,
                archive_interval_ms: 86_400_000,
                verify_interval_ms: 3_600_000,
                verify_max_bytes_per_sec: 100,
                ..BackupConfig::default()
            })
            .clock(clock.clone())
            .store(counted.clone())
            .open()
            .unwrap()
    };
    let engine = open();
    for v in 1..=40u64 {
        engine
            .write(Addr(v as u16), Fingerprint::from_words(vec![v; 4]))
            .unwrap();
        if v == 10 {
            engine.backup_now(BackupKind::Full).unwrap();
        }
    }
    engine.backup_now(BackupKind::Incremental).unwrap();
    engine.archive_now().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = engine.repository().destinations()[0].clone();
    let refs = common::all_artifacts(&rt, &store);
    assert!(refs.len() >= 4, "{refs:?}");
    let gets = || counted.calls(bindspace_testkit::Op::Get);
    let verified = || {
        let m = rt.block_on(store.read_manifest()).unwrap().unwrap().1;
        refs.iter()
            .filter(|r| m.verified.last(r, VerifyLevel::Checksum).is_some())
            .count()
    };
    let before = gets();
    // the first run a minute after opening, not an interval later: one artifact read,
    // then it waits out that artifact's bytes at 100 B/s
    clock.advance(61_000_000);
    engine.tick();
    assert_eq!(gets() - before, 1, "one read, then the pause");
    clock.advance(1_000_000);
    engine.tick();
    assert_eq!(gets() - before, 1, "no read within the pause");
    assert_eq!(verified(), 0, "recorded once, at the end of the run");
    // a second at a time: every artifact is over 100 bytes, so at most one read a
    // second, and the whole run takes about its bytes at 100 B/s
    let total: u64 = refs.iter().map(|r| r.len).sum();
    let largest = refs.iter().map(|r| r.len).max().unwrap();
    assert!(refs.iter().all(|r| r.len > 100), "{refs:?}");
    let mut seconds = 1;
    while engine.status().verify_runs == 0 {
        let was = gets();
        clock.advance(1_000_000);
        engine.tick();
        seconds += 1;
        assert!(gets() - was <= 1, "two reads within a second");
        assert!(seconds <= total / 100 + 2, "{seconds} s for {total} bytes");
    }
    assert!(
        seconds >= (total - largest) / 100,
        "{seconds} s for {total} bytes: faster than 100 B/s"
    );
    assert_eq!(
        verified(),
        refs.len(),
        "everything read, recorded at the end"
    );
    let s = engine.status();
    assert_eq!(s.last_verify["checksum"].1, "clean", "{s:?}");
    // nothing until an interval later
    let done = gets();
    clock.advance(60_000_000);
    engine.tick();
    assert_eq!(gets(), done);
    engine.close().unwrap();

    // a paced run in progress does not hold up a close: it stops after the artifact
    // being read (the clock here never moves again on its own)
    let engine = open();
    clock.advance(31 * 86_400 * 1_000_000); // everything due again
    engine.tick();
    let reads = gets();
    assert!(reads > done, "the run started");
    #[allow(clippy::disallowed_methods)]
    // the test bounds real time: close must not wait the pace out
    let t = std::time::Instant::now();
    engine.close().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "close waited {:?}",
        t.elapsed()
    );
}
