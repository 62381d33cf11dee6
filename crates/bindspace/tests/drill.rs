//! Issue 17: restore drills through the running engine. A sentinel restore point is
//! written, archived and restored from each store alone and from all together; RTO
//! and RPO are measured and compared with targets; a store that cannot restore alone,
//! or a newest state older than the RPO target, fails the drill; every report is kept
//! in every store's catalog. Local directories, a 256-address space.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bindspace::BackupConfig;
use bindspace_catalog::BackupKind;
use bindspace_core::{Addr, Fingerprint, ManualClock};
use bindspace_dr::{DrillOptions, DrillTarget, drill, history};

mod common;
use common::engine_on;

#[test]
fn a_drill_restores_the_sentinel_from_each_store_and_fails_when_one_cannot() {
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
    for v in 1..=40u64 {
        engine
            .write(
                Addr((v * 5 % 256) as u16),
                Fingerprint::from_words(vec![v; 4]),
            )
            .unwrap();
        clock.advance(1_000);
        if v == 15 {
            engine.backup_now(BackupKind::Full).unwrap();
        }
    }
    let report = engine.drill(&DrillOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    let sources: Vec<&str> = report.runs.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(sources.len(), 3, "{report}");
    assert_eq!(sources[2], "all stores");
    let sentinel = report.sentinel.clone().unwrap();
    for r in &report.runs {
        assert_eq!(r.status, "restored", "{report}");
        assert_eq!(r.sentinel, Some(true), "{report}");
        assert_eq!(r.version, Some(sentinel.version), "{report}");
        // the clock stood still: the newest restorable state is the sentinel's, now
        assert_eq!(r.rpo_ms, Some(0), "{report}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = engine.repository().clone();
    for s in repo.destinations() {
        let m = rt.block_on(s.read_manifest()).unwrap().unwrap().1;
        assert!(
            m.restore_points
                .iter()
                .all(|p| !p.name.starts_with("drill-")),
            "the sentinel is dropped afterwards"
        );
        assert_eq!(
            history(&m),
            std::slice::from_ref(&report),
            "kept in {}",
            s.name()
        );
    }

    // a random target restores too (a backup or restore point, seeded)
    let r = engine
        .drill(&DrillOptions {
            target: DrillTarget::Random(7),
            ..DrillOptions::default()
        })
        .unwrap();
    assert!(r.passed(), "{r}");
    assert!(r.target.contains("random"), "{r}");

    // b loses its full: it cannot restore alone, and the drill says so (the others
    // still restore, and are still measured)
    for f in std::fs::read_dir(b.join("snapshots/native")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let r = engine.drill(&DrillOptions::default()).unwrap();
    assert!(!r.passed(), "{r}");
    assert_eq!(r.runs[0].status, "restored", "{r}");
    assert_eq!(r.runs[1].status, "failed", "{r}");
    assert_eq!(r.runs[2].status, "restored", "{r}");
    assert!(
        r.missed
            .iter()
            .any(|m| m.contains(&repo.destinations()[1].name())),
        "{r}"
    );
    assert!(r.to_string().contains("result: FAILED"), "{r}");

    // ten minutes with nothing archived: the newest restorable state is older than
    // the five-minute RPO target
    clock.advance(600_000_000);
    let r = rt
        .block_on(drill(
            &repo,
            clock.as_ref(),
            &DrillOptions {
                only: vec![repo.destinations()[0].name()],
                ..DrillOptions::default()
            },
            None,
        ))
        .unwrap();
    assert_eq!(r.runs.len(), 1, "{r}");
    // no sentinel, and nothing recorded the latest state's root: restored, not proven
    assert_eq!(r.runs[0].status, "unverified", "{r}");
    assert!(r.runs[0].rpo_ms.unwrap() >= 600_000, "{r}");
    assert!(r.missed.iter().any(|m| m.contains("RPO")), "{r}");
    let kept = history(&rt.block_on(repo.manifest()).unwrap());
    assert_eq!(kept.len(), 4);
    assert_eq!(kept.iter().filter(|d| d.passed()).count(), 2);

    // review: a restore slower than the RTO target fails the drill. A clock that moves
    // a second each time it is read makes every restore take one.
    struct Slow(std::sync::atomic::AtomicU64);
    impl bindspace_core::Clock for Slow {
        fn now_us(&self) -> u64 {
            self.0
                .fetch_add(1_000_000, std::sync::atomic::Ordering::SeqCst)
        }
    }
    let slow = Slow(bindspace_core::Clock::now_us(clock.as_ref()).into());
    let r = rt
        .block_on(drill(
            &repo,
            &slow,
            &DrillOptions {
                only: vec![repo.destinations()[0].name()],
                rto_target: std::time::Duration::from_millis(500),
                rpo_target: std::time::Duration::from_secs(86_400),
                ..DrillOptions::default()
            },
            None,
        ))
        .unwrap();
    assert!(r.runs[0].rto_ms >= 1_000, "{r}");
    assert!(
        r.missed
            .iter()
            .any(|m| m.contains("RTO") && m.contains("over the target 500 ms")),
        "{r}"
    );
    assert!(!r.passed(), "{r}");
}
