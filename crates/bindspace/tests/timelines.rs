//! Histories that never mix: the "bad deploy" runbook on one repository. Engine 1
//! writes versions 1..=100; version 50 is restored into a new data directory and engine
//! 2 continues from it (timeline 2, branched at 50) to 110; engine 3 continues from
//! engine 2's version 90 to 120 (copied by hand without an origin it is refused first). An
//! oracle records the digest of every version of every history; every version of
//! every timeline is restored on that timeline and must match, and no history's
//! artifacts are replaced or deleted by another's. Runs on the embedded default (a
//! local directory) and on S3 + PostgreSQL + Redis.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bindspace::{BackupConfig, Engine, Origin};
use bindspace_catalog::{ArtifactKind, ArtifactRef, BackupKind, BackupStore};
use bindspace_core::{Addr, BindSpace, Clock, Digest, Fingerprint, ManualClock, snapshot};
use bindspace_pitr::Target;
use bindspace_testkit::unique_name;

mod common;

fn config() -> BackupConfig {
    BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        background_jobs: false,
        max_delta_chain: 50,
        sync: "never".into(),
        ..BackupConfig::default()
    }
}

/// Digests of every version of every timeline: (timeline, version) → digest.
type Oracle = BTreeMap<(u32, u64), Digest>;

struct Repo {
    urls: Vec<String>,
    stores: Vec<Arc<dyn BackupStore>>,
    rt: tokio::runtime::Runtime,
    clock: Arc<ManualClock>,
}

impl Repo {
    fn new(urls: Vec<String>) -> Repo {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let stores = rt.block_on(bindspace::stores::open_all(&urls)).unwrap();
        Repo {
            urls,
            stores,
            rt,
            clock: Arc::new(ManualClock::new(1_700_000_000_000_000)),
        }
    }

    /// A repository on the embedded default: `<dir>/repo`.
    fn embedded(dir: &Path) -> Repo {
        Repo::new(vec![format!("file://{}", dir.join("repo").display())])
    }

    fn try_open(&self, dir: &Path) -> bindspace::Result<Engine> {
        let mut b = Engine::builder(dir)
            .config(config())
            .clock(self.clock.clone());
        for u in &self.urls {
            b = b.store_url(u);
        }
        b.open()
    }

    fn open(&self, dir: &Path) -> Engine {
        self.try_open(dir).unwrap()
    }

    fn restore(&self, t: Option<u32>, target: Target) -> bindspace_pitr::Result<BindSpace> {
        self.restore_verified(t, target).map(|(s, _)| s)
    }

    fn restore_verified(
        &self,
        t: Option<u32>,
        target: Target,
    ) -> bindspace_pitr::Result<(BindSpace, bindspace_pitr::Verification)> {
        self.rt.block_on(async {
            let plan = bindspace_pitr::plan_on(&self.stores, &target, t).await?;
            bindspace_pitr::restore_verified(&plan).await
        })
    }

    /// Restores `version` of timeline `t` as a new data directory's checkpoint, with an
    /// origin file (as `bindspace restore --out` writes) or without (copied by hand).
    fn seed_dir(&self, t: u32, version: u64, with_origin: bool) -> tempfile::TempDir {
        let space = self.restore(Some(t), Target::Version(version)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("checkpoint.snap");
        std::fs::write(&snap, snapshot::encode(&space, self.clock.now_us())).unwrap();
        if with_origin {
            Origin {
                repository_id: None,
                timeline: t,
                version,
                root: Some(space.state_root().root().to_string()),
            }
            .write(&snap)
            .unwrap();
        }
        dir
    }

    /// The primary's catalog.
    fn manifest(&self) -> bindspace_catalog::Manifest {
        self.rt
            .block_on(self.stores[0].read_manifest())
            .unwrap()
            .unwrap()
            .1
    }

    /// Its timeline records as (id, parent, branch version).
    fn branches(&self) -> Vec<(u32, u32, u64)> {
        self.manifest()
            .timelines
            .iter()
            .map(|t| (t.id, t.parent, t.branch_version))
            .collect()
    }

    fn artifacts(&self) -> Vec<(String, ArtifactRef)> {
        let mut out = Vec::new();
        for s in &self.stores {
            for k in ArtifactKind::ALL {
                for r in self.rt.block_on(s.list(k, 0, u64::MAX)).unwrap() {
                    out.push((s.name(), r));
                }
            }
        }
        out
    }
}

/// Writes versions up to `to`, a different content per timeline (`salt`), recording
/// each version's digest; backs up at the versions in `backups`, then archives the WAL.
fn write(
    e: &Engine,
    repo: &Repo,
    oracle: &mut Oracle,
    to: u64,
    salt: u64,
    backups: &[(u64, BackupKind)],
) {
    let t = e.timeline();
    oracle.insert((t, e.version()), e.read(|s| s.digest()));
    while e.version() < to {
        let v = e.version() + 1;
        let addr = Addr::new(0, ((v * 37 + salt) % 256) as u8);
        if v.is_multiple_of(11) {
            e.delete(addr).unwrap();
        } else {
            e.write(addr, Fingerprint::from_words(vec![v ^ salt; 8]))
                .unwrap();
        }
        repo.clock.advance(1_000);
        oracle.insert((t, v), e.read(|s| s.digest()));
        if let Some((_, kind)) = backups.iter().find(|(at, _)| *at == v) {
            let b = e.backup_now(*kind).unwrap().unwrap();
            assert_eq!(b.timeline, t);
            assert_eq!(b.to_version, v);
            assert_eq!(b.kind, *kind, "asked for {kind:?} at {v}");
        }
    }
    e.archive_now().unwrap();
}

/// Restores every version the oracle holds on its own timeline; returns mismatches
/// and the versions whose result was verified against a recorded root.
fn check_all(
    repo: &Repo,
    oracle: &Oracle,
    from: &BTreeMap<u32, u64>,
) -> (usize, std::collections::BTreeSet<(u32, u64)>) {
    let mut bad = 0;
    let mut verified = std::collections::BTreeSet::new();
    for (&(t, v), want) in oracle {
        if v < from[&t] {
            continue; // before the timeline's first full: nothing to restore from
        }
        match repo.restore_verified(Some(t), Target::Version(v)) {
            Ok((s, ver)) if s.digest() == *want && s.version() == v => {
                if ver.is_verified() {
                    verified.insert((t, v));
                }
            }
            Ok((s, _)) => {
                eprintln!(
                    "timeline {t} version {v}: got version {} {}",
                    s.version(),
                    s.digest()
                );
                bad += 1;
            }
            Err(e) => {
                eprintln!("timeline {t} version {v}: {e}");
                bad += 1;
            }
        }
    }
    (bad, verified)
}

fn scenario(urls: Vec<String>) {
    use BackupKind::{Full, Incremental};
    let repo = Repo::new(urls);
    let mut oracle = Oracle::new();
    // E1: timeline 1, versions 1..=100
    let d1 = tempfile::tempdir().unwrap();
    let e1 = repo.open(d1.path());
    assert_eq!(e1.timeline(), 1);
    write(
        &e1,
        &repo,
        &mut oracle,
        100,
        0,
        &[
            (20, Full),
            (40, Full),
            (60, Incremental),
            (80, Incremental),
            (100, Full),
        ],
    );
    e1.close().unwrap();
    let timeline_1: Vec<_> = repo.artifacts();
    // engine 2 starts at this very time: just before it, timeline 1 stood at 100
    let e1_end = bindspace_core::Clock::now_us(&*repo.clock) - 1;

    // the bad deploy: back to version 50, continue as engine 2
    let d2 = repo.seed_dir(1, 50, true);
    let e2 = repo.open(d2.path());
    assert_eq!(
        e2.timeline(),
        2,
        "a restored checkpoint starts a new timeline"
    );
    write(
        &e2,
        &repo,
        &mut oracle,
        110,
        1,
        &[(80, Full), (100, Incremental)],
    );
    // what the reviewer saw: from engine 2, versions 70 and 100 are engine 2's
    for v in [70, 100, 110] {
        let (s, p) = e2.restore(&Target::Version(v)).unwrap();
        assert_eq!(p.timeline, 2);
        assert_eq!(s.digest(), oracle[&(2, v)], "engine 2's version {v}");
        assert_ne!(
            s.digest(),
            oracle.get(&(1, v)).copied().unwrap_or(Digest([0; 32]))
        );
    }
    e2.close().unwrap();

    // a time before timeline 2 existed: its history is timeline 1's up to 50. Just
    // before timeline 1's full at 40 that is what timeline 2 restores; at a time when
    // timeline 1 had gone past 50 (the end of engine 1's run), answering with 50
    // would be a guess: refused, naming the way to what the repository held then
    let full40 = repo
        .manifest()
        .entries
        .into_iter()
        .find(|e| e.timeline == 1 && e.to_version == 40)
        .unwrap();
    let s = repo
        .restore(Some(2), Target::Time(full40.end_us - 1))
        .unwrap();
    assert_eq!((s.version(), s.digest()), (40, oracle[&(1, 40)]));
    let err = repo
        .restore(Some(2), Target::Time(e1_end))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timeline 2 did not exist yet") && err.contains("--timeline 1"),
        "{err}"
    );
    let s = repo.restore(Some(1), Target::Time(e1_end)).unwrap();
    assert_eq!(s.digest(), oracle[&(1, 100)]);

    // a third history from the second's version 90. Copied by hand (no origin file)
    // into a repository of several histories, it is refused: which history it came
    // from cannot be told, and a guess could graft it onto the wrong one
    let d3 = repo.seed_dir(2, 90, false);
    let err = repo.try_open(d3.path()).unwrap_err().to_string();
    assert!(
        err.contains("no origin") && err.contains("2 timelines"),
        "{err}"
    );
    let seeded = snapshot::decode(&std::fs::read(d3.path().join("checkpoint.snap")).unwrap())
        .unwrap()
        .space;
    Origin {
        repository_id: None,
        timeline: 2,
        version: 90,
        root: Some(seeded.state_root().root().to_string()),
    }
    .write(&d3.path().join("checkpoint.snap"))
    .unwrap();
    let e3 = repo.open(d3.path());
    assert_eq!(e3.timeline(), 3);
    write(
        &e3,
        &repo,
        &mut oracle,
        120,
        2,
        &[(100, Full), (110, Incremental)],
    );
    e3.close().unwrap();

    assert_eq!(repo.branches(), vec![(2, 1, 50), (3, 2, 90)]);

    // every version of every history, on its own timeline
    let first = BTreeMap::from([(1, 20), (2, 50), (3, 90)]);
    let (bad, verified) = check_all(&repo, &oracle, &first);
    assert_eq!(bad, 0, "mismatches");
    // every backup and every branch point (the origin's root) is a recorded root, and
    // verified as such; nothing else claims to be (the oracle holds each timeline
    // from its branch point on)
    let recorded: std::collections::BTreeSet<(u32, u64)> = [
        (1, 20),
        (1, 40),
        (1, 60),
        (1, 80),
        (1, 100),
        (2, 50),
        (2, 80),
        (2, 100),
        (3, 90),
        (3, 100),
        (3, 110),
    ]
    .into();
    assert_eq!(verified, recorded);
    // the default is the newest timeline; a restore point names its own
    assert_eq!(
        repo.restore(None, Target::Latest).unwrap().digest(),
        oracle[&(3, 120)]
    );
    // timeline 1 ends at 101 (the WAL checkpoint its last backup wrote: the same
    // state, verified by the checkpoint's root), timeline 2 at 111: nothing past them
    // is invented
    assert!(repo.restore(Some(1), Target::Version(102)).is_err());
    assert!(repo.restore(Some(2), Target::Version(112)).is_err());
    let (latest, ver) = repo.restore_verified(Some(1), Target::Latest).unwrap();
    assert_eq!(
        (latest.version(), latest.digest()),
        (101, oracle[&(1, 100)])
    );
    assert_eq!(
        ver.verified_by.as_deref(),
        Some("WAL checkpoint at version 101")
    );

    // nothing of timeline 1 was replaced or deleted by the later histories
    let now = repo.artifacts();
    for a in &timeline_1 {
        assert!(now.contains(a), "{} lost {}", a.0, a.1.id);
    }
}

#[test]
fn three_histories_on_the_embedded_default_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    scenario(vec![format!(
        "file://{}",
        dir.path().join("repo").display()
    )]);
}

#[test]
fn three_histories_on_s3_postgres_and_redis_never_mix() {
    let Some(srv) = common::real_servers() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let pg =
        bindspace_testkit::servers::Server::postgres(srv.pg_bin.as_ref(), data.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (redis, _) = common::own_redis_db(&rt, &srv.redis, 5);
    scenario(vec![
        format!(
            "{}/{}",
            srv.s3.trim_end_matches('/'),
            unique_name("timelines")
        ),
        pg.url.clone(),
        redis,
    ]);
}

/// A repository on the embedded default: timeline 1 written to 30, a full at 10, the
/// WAL archived.
fn thirty_on_timeline_1() -> (tempfile::TempDir, Repo, Oracle) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::embedded(dir.path());
    let mut oracle = Oracle::new();
    let d1 = tempfile::tempdir().unwrap();
    let e1 = repo.open(d1.path());
    write(&e1, &repo, &mut oracle, 30, 0, &[(10, BackupKind::Full)]);
    e1.close().unwrap();
    (dir, repo, oracle)
}

#[test]
fn a_restored_checkpoint_started_twice_makes_two_sibling_timelines() {
    let (_dir, repo, mut oracle) = thirty_on_timeline_1();
    // an origin naming another repository is refused, nothing is branched
    let other = repo.seed_dir(1, 20, false);
    Origin {
        repository_id: Some("0000000000000000".into()),
        timeline: 1,
        version: 20,
        root: None,
    }
    .write(&other.path().join("checkpoint.snap"))
    .unwrap();
    let err = repo.try_open(other.path()).unwrap_err().to_string();
    assert!(
        err.contains("another") || err.contains("not this repository's"),
        "{err}"
    );
    let (a, b) = (repo.seed_dir(1, 20, true), repo.seed_dir(1, 20, true));
    // both branch at the same moment: the conditional commit gives each its own id
    let barrier = std::sync::Barrier::new(2);
    let open = |dir: &Path| {
        barrier.wait();
        repo.open(dir)
    };
    let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
    let (ea, eb) = std::thread::scope(|s| {
        let ja = s.spawn(|| open(&pa));
        let jb = s.spawn(|| open(&pb));
        (ja.join().unwrap(), jb.join().unwrap())
    });
    let mut ids = [ea.timeline(), eb.timeline()];
    ids.sort_unstable();
    assert_eq!(ids, [2, 3]);
    // name them by the id each got
    let (ea, eb, a, _b) = if ea.timeline() == 2 {
        (ea, eb, a, b)
    } else {
        (eb, ea, b, a)
    };
    write(&ea, &repo, &mut oracle, 40, 5, &[(35, BackupKind::Full)]);
    write(&eb, &repo, &mut oracle, 40, 9, &[(35, BackupKind::Full)]);
    drop((ea, eb));
    assert_eq!(repo.branches(), vec![(2, 1, 20), (3, 1, 20)]);
    let first = BTreeMap::from([(1, 10), (2, 20), (3, 20)]);
    assert_eq!(check_all(&repo, &oracle, &first).0, 0);
    assert_ne!(oracle[&(2, 40)], oracle[&(3, 40)]);
    // reopening a directory stays on its timeline
    let ea = repo.open(a.path());
    assert_eq!(ea.timeline(), 2);
}

#[test]
fn a_data_directory_from_before_timelines_continues_timeline_1() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::embedded(dir.path());
    let mut oracle = Oracle::new();
    let d = tempfile::tempdir().unwrap();
    let e = repo.open(d.path());
    // a full at 10 (the checkpoint), an incremental at 30: the checkpoint is below
    // what the repository holds, the WAL after it is not
    write(
        &e,
        &repo,
        &mut oracle,
        30,
        0,
        &[(10, BackupKind::Full), (30, BackupKind::Incremental)],
    );
    e.close().unwrap();
    // as a 0.1 engine left it: no `timeline` file
    std::fs::remove_file(d.path().join("timeline")).unwrap();
    let e = repo.open(d.path());
    assert_eq!(e.timeline(), 1, "its own history continues");
    write(
        &e,
        &repo,
        &mut oracle,
        40,
        0,
        &[(40, BackupKind::Incremental)],
    );
    drop(e);
    assert!(repo.branches().is_empty());
    assert_eq!(check_all(&repo, &oracle, &BTreeMap::from([(1, 10)])).0, 0);
}

/// A crash after the catalog recorded a new timeline but before the data directory's
/// `timeline` file was written: reopening takes up that timeline (no orphan, and no
/// refusal for "several timelines" when the checkpoint has no origin), by clearing the
/// record's claim in a conditional commit: a copy of the directory reopening after
/// that does not take it up too.
#[test]
fn an_open_interrupted_after_the_catalog_recorded_the_branch_takes_it_up() {
    let (_dir, repo, mut oracle) = thirty_on_timeline_1();
    // the state of the interrupted open: a checkpoint at 20 copied in by hand (no
    // origin: below what the repository holds, it must branch), the pending branch
    // written down, the catalog's record committed, no `timeline` file
    let d2 = repo.seed_dir(1, 20, false);
    let reason = "engine opened a checkpoint below what the repository holds, without an origin";
    let created_us = bindspace_core::Clock::now_us(&*repo.clock);
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        d2.path().join("checkpoint.snap"),
        copy.path().join("checkpoint.snap"),
    )
    .unwrap();
    for d in [d2.path(), copy.path()] {
        std::fs::write(
            d.join("timeline.pending"),
            serde_json::to_vec(&bindspace::PendingTimeline {
                parent: 1,
                branch_version: 20,
                created_us,
                reason: reason.into(),
                token: "t0k3n".into(),
            })
            .unwrap(),
        )
        .unwrap();
    }
    let repository =
        bindspace_catalog::Repository::new(repo.stores.clone(), repo.clock.clone(), "test")
            .unwrap();
    let rec = repo
        .rt
        .block_on(repository.create_timeline_at(
            1,
            20,
            reason,
            None,
            created_us,
            Some("t0k3n".into()),
        ))
        .unwrap();
    assert_eq!(rec.id, 2);
    // reopening takes it up
    let e2 = repo.open(d2.path());
    assert_eq!(e2.timeline(), 2);
    assert!(!d2.path().join("timeline.pending").exists());
    assert_eq!(repo.manifest().timeline(2).unwrap().claim, None, "claimed");
    // a copy of the interrupted directory reopening now, before anything was written
    // on timeline 2, finds the claim taken: it does not take timeline 2 as well (no
    // origin and several histories: refused, as for any copy)
    let err = repo.try_open(copy.path()).unwrap_err().to_string();
    assert!(err.contains("no origin"), "{err}");
    write(&e2, &repo, &mut oracle, 25, 3, &[(22, BackupKind::Full)]);
    drop(e2);
    assert_eq!(repo.branches(), vec![(2, 1, 20)], "no orphan");
    // and later, with timeline 2 backed up, the same
    let err = repo.try_open(copy.path()).unwrap_err().to_string();
    assert!(err.contains("no origin"), "{err}");
    assert_eq!(repo.branches(), vec![(2, 1, 20)]);
}

/// A checkpoint copied in by hand (no origin) below what the archived WAL holds, with
/// no backup past it: it branches. It used to continue timeline 1 (only backups
/// counted as "held"), so its versions 21.. collided with the archived 21..=30.
#[test]
fn a_checkpoint_below_the_archived_wal_branches_even_past_the_last_backup() {
    let (_dir, repo, _oracle) = thirty_on_timeline_1();
    let d2 = repo.seed_dir(1, 20, false);
    let e2 = repo.open(d2.path());
    assert_eq!(e2.timeline(), 2);
    assert_eq!(repo.branches(), vec![(2, 1, 20)]);
}

/// An engine refuses to open on a timeline retention expired, naming why (its backups
/// and WAL archive would be refused, or swept away).
#[test]
fn an_engine_refuses_to_open_on_an_expired_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::embedded(dir.path());
    let mut oracle = Oracle::new();
    let d1 = tempfile::tempdir().unwrap();
    let e1 = repo.open(d1.path());
    write(&e1, &repo, &mut oracle, 30, 0, &[(10, BackupKind::Full)]);
    e1.close().unwrap();
    let d2 = repo.seed_dir(1, 20, true);
    let e2 = repo.open(d2.path());
    assert_eq!(e2.timeline(), 2);
    write(&e2, &repo, &mut oracle, 25, 1, &[(22, BackupKind::Full)]);
    e2.close().unwrap();
    repo.clock.advance(3 * 86_400_000_000);
    let repository =
        bindspace_catalog::Repository::new(repo.stores.clone(), repo.clock.clone(), "test")
            .unwrap();
    let policy = bindspace_catalog::RetentionPolicy {
        keep_all_within_us: 100 * 86_400_000_000,
        expire_abandoned_after_us: Some(86_400_000_000),
        ..bindspace_catalog::RetentionPolicy::default()
    };
    let now = bindspace_core::Clock::now_us(&*repo.clock);
    let (plan, _) = repo
        .rt
        .block_on(repository.apply_retention(&policy, now))
        .unwrap();
    assert_eq!(
        plan.expire.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![1]
    );
    let err = repo.try_open(d1.path()).unwrap_err().to_string();
    assert!(
        err.contains("timeline 1 was expired by the retention policy"),
        "{err}"
    );
    // a backup onto the expired timeline is refused before anything is stored
    let space = bindspace_core::BindSpace::new(
        bindspace_core::SchemaVersion::CURRENT
            .with_words(8)
            .with_address_space(256),
    )
    .unwrap();
    let listed = |rt: &tokio::runtime::Runtime| {
        rt.block_on(repo.stores[0].list(bindspace_catalog::ArtifactKind::Snapshot, 0, u64::MAX))
            .unwrap()
    };
    let before = listed(&repo.rt);
    let err = repo
        .rt
        .block_on(repository.write_backup(bindspace_catalog::NewBackup::full(&space, now).on(1)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("expired"), "{err}");
    assert_eq!(listed(&repo.rt), before, "nothing stored");
    // timeline 2 goes on
    assert_eq!(repo.open(d2.path()).timeline(), 2);
}

/// Issue 16, item 5: an acknowledged record damaged in the WAL after the fact is cut as
/// a torn tail (the log alone cannot tell it from a torn write). The engine must not
/// give the cut versions new contents under the same history: it starts a new timeline
/// where the log now ends, keeps the cut, and stays on the new timeline after that.
#[test]
fn a_cut_that_may_hold_acknowledged_writes_starts_a_new_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::embedded(dir.path());
    let d = tempfile::tempdir().unwrap();
    let e = repo.open(d.path());
    for i in 1..=20u64 {
        e.write(Addr(i as u16), Fingerprint::from_words(vec![i; 8]))
            .unwrap();
    }
    let acked = e.version();
    assert_eq!(e.timeline(), 1);
    drop(e); // a stop without `close` (which would seal the segment)
    // bit rot in the last frame of the newest segment
    let wal = d.path().join("wal");
    let newest = bindspace_wal::segment::list(&wal)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .rfind(|p| std::fs::metadata(p).unwrap().len() > 32)
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x04;
    std::fs::write(&newest, &bytes).unwrap();
    let e = repo.open(d.path());
    assert_eq!(e.version(), acked - 1, "the damaged record is cut");
    assert_eq!(
        e.timeline(),
        2,
        "a new history, not version {acked} again on timeline 1"
    );
    assert_eq!(repo.branches(), vec![(2, 1, acked - 1)]);
    assert_eq!(
        e.write(Addr(200), Fingerprint::from_words(vec![7; 8]))
            .unwrap(),
        acked
    );
    e.close().unwrap();
    let kept: Vec<String> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|x| x.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    assert!(
        kept.len() == 1 && kept[0].starts_with("settled-t2-cut-"),
        "the cut is kept, settled by timeline 2: {kept:?}"
    );
    // reopened, the directory stays on timeline 2
    assert_eq!(repo.open(d.path()).timeline(), 2);
}
