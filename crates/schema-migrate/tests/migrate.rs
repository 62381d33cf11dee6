//! Compatibility, plans, offline and online migrations, restores of golden backups
//! written under schema 1.0.0.
#![allow(clippy::disallowed_methods)] // tests time real servers and processes on the wall clock
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bindspace_core::workload::Workload;
use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion, snapshot};
use bindspace_schema_migrate::{
    Compatibility, Consent, Error, Migration, SpaceMigration, apply, compatibility, features,
    migrate_entry, plan, restore_chain,
};

const V1_0: SchemaVersion = SchemaVersion::V1_0_0;
/// 1.1: zero-is-empty.
const V1_1: SchemaVersion = SchemaVersion {
    minor: 1,
    features: features::ZERO_IS_EMPTY.bit,
    ..SchemaVersion::V1_0_0
};
/// 1.2: 200-word fingerprints.
const V1_2: SchemaVersion = SchemaVersion {
    minor: 2,
    fingerprint_words: 200,
    ..V1_1
};

const CONSENT: Consent = Consent {
    allow_truncate: true,
};

fn migrate(space: &BindSpace, to: SchemaVersion, consent: Consent) -> Result<BindSpace, Error> {
    let p = plan(space, to)?.validate(consent)?;
    apply(space, &p, &mut |_| {})
}

#[test]
fn grow_then_shrink_restores_the_original_exactly() {
    let space = Workload::new(1, V1_0).filled_space(0.2).unwrap();
    let grown = migrate(&space, V1_0.with_words(200), Consent::default()).unwrap();
    assert_eq!(grown.words(), 200);
    assert_eq!(grown.version(), space.version());
    for (a, fp) in space.iter() {
        let g = grown.read(a).unwrap();
        assert_eq!(&g[..156], fp, "{a}");
        assert!(g[156..].iter().all(|&w| w == 0), "{a} padded with zeros");
    }
    let back = migrate(&grown, V1_0, CONSENT).unwrap();
    assert_eq!(back.digest(), space.digest());
    assert!(back.content_eq(&space));
}

#[test]
fn shrinking_without_consent_is_refused_and_changes_nothing() {
    let space = Workload::new(2, V1_0.with_words(200))
        .filled_space(0.01)
        .unwrap();
    let before = space.digest();
    let p = plan(&space, V1_0).unwrap();
    assert!(p.is_lossy());
    let text = p.to_string();
    assert!(
        text.contains(&format!(
            "shrinking 200 → 156 words drops 44 words on {} occupied addresses",
            space.len()
        )),
        "{text}"
    );
    match p.validate(Consent::default()) {
        Err(e @ Error::NeedsConsent { .. }) => {
            assert!(e.to_string().contains("--allow-truncate"), "{e}")
        }
        other => panic!("a lossy plan validated without consent: {other:?}"),
    }
    assert_eq!(space.digest(), before);
}

#[test]
fn a_different_major_is_refused_with_its_reason() {
    let v2 = SchemaVersion { major: 2, ..V1_0 };
    match compatibility(V1_0, v2) {
        Compatibility::Incompatible { reason } => assert!(reason.contains("major"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let space = BindSpace::new(V1_0).unwrap();
    let e = plan(&space, v2).unwrap_err();
    assert!(e.to_string().contains("major version 1 → 2"), "{e}");
}

#[test]
fn the_compatibility_rules() {
    assert_eq!(compatibility(V1_0, V1_0), Compatibility::Compatible);
    // minor and patch alone change no bytes
    let patch = SchemaVersion { patch: 3, ..V1_0 };
    assert_eq!(compatibility(V1_0, patch), Compatibility::Compatible);
    let small = V1_0.with_address_space(4096);
    assert_eq!(
        compatibility(small, V1_0),
        Compatibility::NeedsMigration(vec![Migration::AddressSpaceExpand {
            from: 4096,
            to: 65536
        }])
    );
    assert!(matches!(
        compatibility(V1_0, small),
        Compatibility::Incompatible { .. }
    ));
    // beyond 16-bit addresses: not expressible in format v1
    assert!(matches!(
        compatibility(V1_0, V1_0.with_address_space(65536 * 2)),
        Compatibility::Incompatible { .. }
    ));
    // features never turn off, unknown ones are refused
    assert!(matches!(
        compatibility(V1_1, V1_0),
        Compatibility::Incompatible { .. }
    ));
    let unknown = SchemaVersion {
        features: 1 << 40,
        ..V1_0
    };
    assert!(matches!(
        compatibility(V1_0, unknown),
        Compatibility::Incompatible { .. }
    ));
    assert_eq!(
        compatibility(V1_0, V1_2),
        Compatibility::NeedsMigration(vec![
            Migration::FingerprintResize { from: 156, to: 200 },
            Migration::FeatureUpgrade { features: 1 }
        ])
    );
}

#[test]
fn migrations_chain_and_agree_with_the_direct_path() {
    let mut space = Workload::new(3, V1_0).filled_space(0.05).unwrap();
    // a few all-zero fingerprints, which zero-is-empty turns into empty addresses
    for i in 0..7u16 {
        space.write(Addr(60000 + i), &[0; 156]).unwrap();
    }
    let p = plan(&space, V1_1).unwrap();
    assert!(p.is_lossy(), "{p}");
    assert!(p.to_string().contains("7 become empty"), "{p}");
    let step1 = migrate(&space, V1_1, CONSENT).unwrap();
    assert_eq!(step1.len(), space.len() - 7);
    let step2 = migrate(&step1, V1_2, Consent::default()).unwrap();
    let direct = migrate(&space, V1_2, CONSENT).unwrap();
    assert_eq!(step2.schema(), V1_2);
    assert!(step2.content_eq(&direct));
}

#[test]
fn a_plan_runs_only_on_the_state_it_was_made_for() {
    let mut space = Workload::new(4, V1_0).filled_space(0.01).unwrap();
    let p = plan(&space, V1_0.with_words(160))
        .unwrap()
        .validate(Consent::default())
        .unwrap();
    space.write(Addr(1), &[1; 156]).unwrap();
    assert!(matches!(
        apply(&space, &p, &mut |_| {}),
        Err(Error::StalePlan { .. })
    ));
}

#[test]
fn progress_is_reported_to_the_end() {
    let space = Workload::new(5, V1_0).filled_space(0.3).unwrap();
    let p = plan(&space, V1_0.with_words(200))
        .unwrap()
        .validate(Consent::default())
        .unwrap();
    let mut seen = vec![];
    apply(&space, &p, &mut |pr| seen.push(pr)).unwrap();
    assert!(seen.len() >= space.len() / 4096);
    let last = seen.last().unwrap();
    assert_eq!((last.done, last.total), (space.len(), space.len()));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
}

// ---- golden backups written under schema 1.0.0 -------------------------------------

fn golden(name: &str) -> PathBuf {
    // read at run time: clones sharing one target dir may run a binary built in another
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/chain-1.0.0")
        .join(name)
}

/// Writes the golden chain if it is missing and `BINDSPACE_BLESS` is set (never
/// overwrites: a format change adds a new golden directory).
fn bless_chain_if_missing() {
    if golden("full.bin").exists() || std::env::var_os("BINDSPACE_BLESS").is_none() {
        return;
    }
    std::fs::create_dir_all(golden("")).unwrap();
    let mut w = Workload::new(1000, V1_0);
    let mut space = w.filled_space(0.005).unwrap();
    std::fs::write(
        golden("full.bin"),
        snapshot::encode(&space, 1_790_000_000_000_000),
    )
    .unwrap();
    let mut digests = vec![format!("full {} {}", space.version(), space.digest())];
    for i in 1..=2 {
        let mark = space.mark();
        w.run(&mut space, 100).unwrap();
        let d =
            bindspace_xor_delta::compute_dirty(&space, &mark, 1_790_000_000_000_000 + i).unwrap();
        std::fs::write(
            golden(&format!("delta-{i}.bin")),
            bindspace_xor_delta::encode(&d),
        )
        .unwrap();
        digests.push(format!("delta-{i} {} {}", space.version(), space.digest()));
    }
    std::fs::write(golden("expect"), digests.join("\n") + "\n").unwrap();
}

fn golden_chain() -> (Vec<u8>, Vec<Vec<u8>>, String) {
    bless_chain_if_missing();
    let full = std::fs::read(golden("full.bin"))
        .expect("tests/golden/chain-1.0.0 is committed (BINDSPACE_BLESS=1 writes it once)");
    let deltas = (1..=2)
        .map(|i| std::fs::read(golden(&format!("delta-{i}.bin"))).unwrap())
        .collect();
    let expect = std::fs::read_to_string(golden("expect")).unwrap();
    (full, deltas, expect)
}

#[test]
fn a_golden_1_0_0_chain_restores_with_todays_code() {
    let (full, deltas, expect) = golden_chain();
    let (space, p) = restore_chain(
        &full,
        deltas.iter().map(Vec::as_slice),
        V1_0,
        Consent::default(),
    )
    .unwrap();
    assert!(p.steps.is_empty());
    let last = expect.lines().last().unwrap();
    assert_eq!(
        last,
        format!("delta-2 {} {}", space.version(), space.digest())
    );
}

#[test]
fn a_golden_1_0_0_chain_restores_into_200_words_word_by_word() {
    let (full, deltas, _) = golden_chain();
    let (old, _) = restore_chain(
        &full,
        deltas.iter().map(Vec::as_slice),
        V1_0,
        Consent::default(),
    )
    .unwrap();
    // deltas of the old width are applied before the resize: this must not fail
    let (wide, p) = restore_chain(
        &full,
        deltas.iter().map(Vec::as_slice),
        V1_0.with_words(200),
        Consent::default(),
    )
    .unwrap();
    assert_eq!(
        p.steps,
        vec![Migration::FingerprintResize { from: 156, to: 200 }]
    );
    assert_eq!(wide.len(), old.len());
    assert_eq!(wide.version(), old.version());
    for (a, fp) in old.iter() {
        let w = wide.read(a).unwrap();
        for (i, word) in w.iter().enumerate() {
            let want = fp.get(i).copied().unwrap_or(0);
            assert_eq!(*word, want, "{a} word {i}");
        }
    }
}

// ---- online --------------------------------------------------------------------------

#[test]
fn an_online_migration_keeps_every_acknowledged_write() {
    use bindspace_wal::{DurableSpace, SyncPolicy, WalOptions};
    let dir = tempfile::tempdir().unwrap();
    let base = Workload::new(6, V1_0).filled_space(0.3).unwrap();
    let (ds, _) = DurableSpace::open(
        dir.path(),
        base,
        WalOptions {
            sync: SyncPolicy::Never,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let ds = Arc::new(ds);
    let stop = Arc::new(AtomicBool::new(false));
    // The writer writes old-width values until the switch refuses them, then the same
    // values zero-padded: so every acknowledged write has an old-width meaning.
    let writer = {
        let (ds, stop) = (ds.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acked: Vec<(Addr, Vec<u64>)> = vec![];
            let mut w = Workload::new(7, V1_0);
            let mut wide = false;
            let mut refused = 0;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) || i < 2000 {
                i += 1;
                let a = w.addr();
                let fp = w.fingerprint();
                let mut words = fp.as_ref().to_vec();
                if wide {
                    words.resize(200, 0);
                }
                match ds.write(a, Fingerprint::from_words(words)) {
                    Ok(_) => acked.push((a, fp.as_ref().to_vec())),
                    Err(e) => {
                        assert!(!wide, "a new-width write failed: {e}");
                        assert!(e.to_string().contains("words"), "{e}");
                        refused += 1;
                        wide = true;
                    }
                }
            }
            (acked, refused)
        })
    };
    // backups' WAL checkpoints land before, during and after the switch: the online
    // catch-up skips those of the old schema, a reopen checks every one
    let checkpointer = {
        let (ds, stop) = (ds.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += usize::from(ds.checkpoint().unwrap().is_some());
                std::thread::yield_now();
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    let target = V1_0.with_words(200);
    let validated = ds
        .read(|s| plan(s, target))
        .unwrap()
        .validate(Consent::default())
        .unwrap();
    let m = SpaceMigration::from_plan(&validated);
    let switched = ds
        .change_schema_online(
            m.target(),
            |s| m.migrate_space(s, &mut |_| {}).map_err(|e| e.to_string()),
            |fp| m.migrate_entry(fp),
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    stop.store(true, Ordering::Relaxed);
    let (acked, refused) = writer.join().unwrap();
    let checkpoints = checkpointer.join().unwrap();
    assert!(checkpoints > 0, "{checkpoints}");
    // one at the end, in the new schema (unless the newest record already is one)
    ds.checkpoint().unwrap();
    assert_eq!(ds.last_checkpoint(), ds.read(|s| s.version()));
    assert!(refused <= 1, "only the write racing the switch is refused");
    let final_space = ds.read(|s| s.clone());
    assert_eq!(final_space.schema(), target);
    assert!(final_space.version() > switched);
    // every acknowledged write is present (the last one per address)
    let mut last = std::collections::HashMap::new();
    for (a, fp) in &acked {
        last.insert(*a, fp.clone());
    }
    for (a, fp) in &last {
        let got = final_space.read(*a).unwrap();
        assert_eq!(&got[..156], &fp[..], "{a}");
        assert!(got[156..].iter().all(|&w| w == 0));
    }
    // and the whole equals an offline migration of the final state in the old schema
    let mut old_final = BindSpace::new(V1_0).unwrap();
    for (a, fp) in final_space.iter() {
        old_final.write(a, &fp[..156]).unwrap();
    }
    old_final.set_version(final_space.version());
    let offline = migrate(&old_final, target, Consent::default()).unwrap();
    assert!(offline.content_eq(&final_space));

    // the log replays across the schema change with a migrator
    drop(ds);
    let base = Workload::new(6, V1_0).filled_space(0.3).unwrap();
    let (reopened, _) =
        DurableSpace::open_with_migrator(dir.path(), base, WalOptions::default(), &|s, to| {
            let p = plan(s, to).map_err(|e| e.to_string())?;
            let p = p.validate(Consent::default()).map_err(|e| e.to_string())?;
            apply(s, &p, &mut |_| {}).map_err(|e| e.to_string())
        })
        .unwrap();
    reopened.read(|s| assert!(s.content_eq(&final_space)));
}

// ---- properties ----------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    fn small_schema() -> impl Strategy<Value = SchemaVersion> {
        (
            1u16..12,
            prop::sample::select(vec![256u32, 512, 1024]),
            0u64..2,
        )
            .prop_map(|(w, a, f)| SchemaVersion {
                fingerprint_words: w,
                address_space: a,
                features: f,
                ..V1_0
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Validation never approves, without consent, a plan that loses data; and
        /// whatever a plan says is lossless is undone exactly by the reverse resize.
        #[test]
        fn no_silent_data_loss(
            from in small_schema(),
            to in small_schema(),
            seed in 0u64..1000,
            zeros in 0usize..3,
        ) {
            let mut space = Workload::new(seed, from).filled_space(0.2).unwrap();
            for i in 0..zeros {
                space.write(Addr(i as u16), &vec![0; from.words()]).unwrap();
            }
            let Ok(p) = plan(&space, to) else {
                // refused: fine, nothing runs
                prop_assert!(!matches!(compatibility(from, to), Compatibility::Compatible));
                return Ok(());
            };
            let out = apply(&space, &p.clone().validate(CONSENT).unwrap(), &mut |_| {}).unwrap();
            // information kept iff every occupied address survives with its words
            let kept = space.iter().all(|(a, fp)| match out.read(a) {
                None => false,
                Some(g) => {
                    let n = fp.len().min(g.len());
                    g[..n] == fp[..n]
                        && fp[n..].iter().all(|&w| w == 0)
                        && g[n..].iter().all(|&w| w == 0)
                }
            });
            if !kept {
                prop_assert!(p.is_lossy(), "lost data without a lossy warning: {p}");
                prop_assert!(p.clone().validate(Consent::default()).is_err());
            }
            // the entry function agrees with the space migration, address by address
            prop_assert_eq!(out.version(), space.version());
            let mut expected_len = 0;
            for (a, fp) in space.iter() {
                let e = migrate_entry(&p.steps, fp);
                expected_len += usize::from(e.is_some());
                prop_assert_eq!(e.as_deref(), out.read(a));
            }
            prop_assert_eq!(out.len(), expected_len);
        }
    }
}
