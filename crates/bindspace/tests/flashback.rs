//! Flashback reads answer exactly what a restore would, or say they cannot: `as_of` at
//! every version equals the restored space's value, a version inside a batch is
//! refused as a restore refuses it (not answered with the value before the batch), and
//! `versions` over a range whose archived WAL has a hole fails naming the hole instead
//! of skipping it. A 256-address space on the embedded default.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{ArtifactKind, BackupKind, BackupStore};
use bindspace_core::{Addr, Fingerprint, ManualClock};
use bindspace_pitr::Target;
use bindspace_wal::Op;

const A: Addr = Addr(7);

struct Setup {
    _dir: tempfile::TempDir,
    stores: Vec<Arc<dyn BackupStore>>,
    rt: tokio::runtime::Runtime,
    /// The version of the batch's first record (inside the batch).
    in_batch: u64,
    last: u64,
}

/// Versions up to ~120 writing address 7 every third version (and others between), a
/// full at 20 and an incremental at 60, one 3-op batch, small WAL segments, archived.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("repo").display());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = Engine::builder(dir.path().join("data"))
        .config(BackupConfig {
            fingerprint_words: 4,
            address_space: 256,
            background_jobs: false,
            sync: "never".into(),
            wal_segment_bytes: 1 << 10,
            ..BackupConfig::default()
        })
        .clock(clock.clone())
        .store_url(&url)
        .open()
        .unwrap();
    let mut in_batch = 0;
    while engine.version() < 120 {
        let v = engine.version() + 1;
        let fp = Fingerprint::from_words(vec![v; 4]);
        if v == 90 {
            let last = engine
                .apply(vec![
                    Op::Write(A, fp.clone()),
                    Op::Delete(Addr(8)),
                    Op::Write(Addr(9), fp),
                ])
                .unwrap();
            assert_eq!(last, v + 3, "three records and the commit");
            in_batch = v;
        } else if v.is_multiple_of(3) {
            engine.write(A, fp).unwrap();
        } else if v.is_multiple_of(11) {
            engine.delete(A).unwrap();
        } else {
            engine.write(Addr((v % 200) as u16 + 20), fp).unwrap();
        }
        clock.advance(1_000);
        match engine.version() {
            20 => drop(engine.backup_now(BackupKind::Full).unwrap()),
            60 => drop(engine.backup_now(BackupKind::Incremental).unwrap()),
            _ => {}
        }
    }
    let last = engine.version();
    engine.archive_now().unwrap();
    drop(engine);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = rt.block_on(bindspace::stores::open_all(&[url])).unwrap();
    Setup {
        _dir: dir,
        stores,
        rt,
        in_batch,
        last,
    }
}

#[test]
fn as_of_answers_what_a_restore_holds_at_every_version_or_refuses_as_it_does() {
    let s = setup();
    let mut answered = 0;
    for v in 20..=s.last {
        let t = Target::Version(v);
        let restored = s.rt.block_on(bindspace_pitr::restore_to(&s.stores, &t));
        let asof = s.rt.block_on(bindspace_pitr::as_of(&s.stores, A, &t, None));
        match (restored, asof) {
            (Ok((space, _)), Ok(value)) => {
                assert_eq!(value.as_deref(), space.read(A), "as-of {A} at version {v}");
                answered += 1;
            }
            (Err(r), Err(a)) => {
                // both refuse (a version inside the batch): as-of says why too
                assert!(
                    (s.in_batch..s.in_batch + 3).contains(&v),
                    "version {v}: {r}"
                );
                assert!(a.to_string().contains("replay ended at version"), "{a}");
            }
            (r, a) => panic!(
                "version {v}: restore {:?}, as-of {:?}",
                r.map(|x| x.0.version()),
                a
            ),
        }
    }
    assert!(answered > 90, "{answered}");
}

#[test]
fn versions_over_a_hole_in_the_archived_wal_fails_naming_it() {
    let s = setup();
    let all =
        s.rt.block_on(bindspace_pitr::versions(&s.stores, A, 0, s.last, None))
            .unwrap();
    assert!(all.len() > 30, "{all:?}");
    // the answer matches the WAL: every third version wrote A, every 11th deleted it
    assert!(all.iter().any(|x| x.value.is_none()));
    // a segment in the middle goes missing
    let segs =
        s.rt.block_on(s.stores[0].list(ArtifactKind::WalSegment, 0, u64::MAX))
            .unwrap();
    assert!(segs.len() >= 4, "{segs:?}");
    let hole = segs[segs.len() / 2].id;
    s.rt.block_on(s.stores[0].delete(hole)).unwrap();
    let (a, b) = hole.versions();
    let err =
        s.rt.block_on(bindspace_pitr::versions(&s.stores, A, 0, s.last, None))
            .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("versions {a}..={b}")),
        "names the hole {a}..={b}: {msg}"
    );
    // a range wholly inside the hole (no segment overlaps it) fails too: an empty
    // answer would say nothing wrote A there
    let inside =
        s.rt.block_on(bindspace_pitr::versions(&s.stores, A, a, b, None));
    let msg = format!("{inside:?}");
    assert!(
        inside.is_err() && msg.contains(&format!("versions {a}..={b}")),
        "names the hole {a}..={b}: {msg}"
    );
    // a range that ends inside the hole fails too (it would stop short of its end)
    let into =
        s.rt.block_on(bindspace_pitr::versions(&s.stores, A, a - 1, b - 1, None));
    assert!(
        format!("{into:?}").contains(&format!("versions {a}..=")),
        "names the hole: {into:?}"
    );
    // a range that does not cross the hole still answers
    let before =
        s.rt.block_on(bindspace_pitr::versions(&s.stores, A, 0, a - 1, None))
            .unwrap();
    assert_eq!(
        before,
        all.iter()
            .filter(|x| x.version < a)
            .cloned()
            .collect::<Vec<_>>()
    );
}
