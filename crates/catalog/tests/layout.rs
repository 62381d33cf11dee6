//! The repository descriptor: layout 2 manifests decode from their golden file, layout
//! 1 manifests read as timeline 1, and a layout this build does not know is refused by
//! name (never misread, never overwritten).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_catalog::{
    ArtifactId, BackupEntry, BackupKind, BackupStatus, Error, ExpiredTimeline, Manifest,
    NEWEST_LAYOUT, RestorePoint, TimelineRecord,
};

fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

fn entry(id: &str, artifact: ArtifactId, kind: BackupKind) -> BackupEntry {
    let (from, to) = artifact.versions();
    BackupEntry {
        id: id.into(),
        kind,
        parent: None,
        from_version: from,
        to_version: to,
        start_us: 1_700_000_000_000_000,
        end_us: 1_700_000_000_500_000,
        schema: bindspace_core::SchemaVersion::CURRENT.into(),
        size: 4096,
        blake3: "ab".repeat(32),
        artifact,
        locations: vec!["file:///var/backups/bindspace".into()],
        status: BackupStatus::Complete,
        timeline: artifact.timeline(),
        root: Some("cd".repeat(32)),
        format: None,
    }
}

/// The manifest the golden file holds (layout 2).
fn layout2() -> Manifest {
    Manifest {
        layout: 2,
        repository_id: Some("5f0c4a1e9b2d7788".into()),
        timelines: vec![TimelineRecord {
            id: 2,
            parent: 1,
            branch_version: 50,
            created_us: 1_700_000_100_000_000,
            reason: "engine opened a restored checkpoint".into(),
            root: None,
            claim: None,
        }],
        entries: vec![
            entry("full-40", ArtifactId::snapshot(40), BackupKind::Full),
            entry(
                "t2-full-80",
                ArtifactId::snapshot(80).on(2),
                BackupKind::Full,
            ),
        ],
        expired: vec![],
        verified: Default::default(),
        drills: Vec::new(),
        superseded: Vec::new(),
        keyring: None,
        compression: None,
        compact_deltas: false,
        restore_points: vec![RestorePoint {
            name: "before-deploy".into(),
            version: 90,
            created_us: 1_700_000_200_000_000,
            guaranteed: true,
            timeline: 2,
            root: None,
        }],
    }
}

#[test]
fn the_layout2_manifest_golden_decodes() {
    let p = path("manifest-layout2");
    if !p.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::write(&p, layout2().encode(4)).unwrap();
    }
    let bytes = std::fs::read(&p).unwrap();
    let (g, m) = Manifest::decode("golden", "manifest-layout2", &bytes).unwrap();
    assert_eq!(g, 4);
    assert_eq!(m, layout2());
    assert_eq!(m.encode(g), bytes, "encodes back to the same bytes");
}

/// Layout 3: a timeline expired by retention. Written only then (layout 2 otherwise).
fn layout3() -> Manifest {
    let mut m = layout2();
    m.expired.push(ExpiredTimeline {
        id: 1,
        expired_us: 1_790_000_000_000_000,
        reason: "abandoned: nothing backed up on it for 1000 h (since 1700000000500000 µs), the policy expires after 720 h".into(),
    });
    m.layout = m.layout_needed();
    m
}

#[test]
fn the_layout3_manifest_golden_decodes() {
    assert_eq!(layout2().layout_needed(), 2, "no expiry: layout 2");
    assert_eq!(layout3().layout, 3);
    let p = path("manifest-layout3");
    if !p.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::write(&p, layout3().encode(9)).unwrap();
    }
    let bytes = std::fs::read(&p).unwrap();
    let (g, m) = Manifest::decode("golden", "manifest-layout3", &bytes).unwrap();
    assert_eq!(g, 9);
    assert_eq!(m, layout3());
    assert_eq!(m.expiry(1).unwrap().expired_us, 1_790_000_000_000_000);
    assert_eq!(m.newest_live_timeline(), 2);
    assert_eq!(m.encode(g), bytes, "encodes back to the same bytes");
}

/// Layout 4: an encrypted repository (its keyring in the catalog). The keyring is the
/// golden one of `bindspace-crypt` (passphrase `golden passphrase`).
fn layout4() -> Manifest {
    let mut m = layout2();
    m.keyring = Some(
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../crypt/tests/golden/keyring-v1.json"),
        )
        .unwrap(),
    );
    m.layout = m.layout_needed();
    m
}

#[test]
fn the_layout4_manifest_golden_decodes_and_its_keyring_opens() {
    assert_eq!(layout4().layout, 4);
    let p = path("manifest-layout4");
    if !p.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::write(&p, layout4().encode(11)).unwrap();
    }
    let bytes = std::fs::read(&p).unwrap();
    let (g, m) = Manifest::decode("golden", "manifest-layout4", &bytes).unwrap();
    assert_eq!((g, &m), (11, &layout4()));
    assert_eq!(m.encode(g), bytes, "encodes back to the same bytes");
    let ring = bindspace_crypt::Keyring::decode(m.keyring.as_deref().unwrap().as_bytes()).unwrap();
    ring.unlock(&bindspace_crypt::SlotSecret::Passphrase(
        "golden passphrase".into(),
    ))
    .unwrap();
    // merging into a copy without one carries the keyring (a replica must open it)
    let mut copy = layout2();
    copy.merge_from(&m);
    assert_eq!(
        (copy.keyring.as_deref(), copy.layout),
        (m.keyring.as_deref(), 4)
    );
}

/// Layout 5: compression on (packed artifacts).
fn layout5() -> Manifest {
    let mut m = layout2();
    m.compression = Some("zstd".into());
    m.layout = m.layout_needed();
    m
}

#[test]
fn the_layout5_manifest_golden_decodes_and_merges_carry_compression() {
    assert_eq!(layout5().layout, 5);
    let p = path("manifest-layout5");
    if !p.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::write(&p, layout5().encode(12)).unwrap();
    }
    let bytes = std::fs::read(&p).unwrap();
    let (g, m) = Manifest::decode("golden", "manifest-layout5", &bytes).unwrap();
    assert_eq!((g, &m), (12, &layout5()));
    assert_eq!(m.encode(g), bytes, "encodes back to the same bytes");
    // a copy without it takes it (a build that cannot unpack must refuse every copy)
    let mut copy = layout2();
    copy.merge_from(&m);
    assert_eq!(
        (copy.compression.as_deref(), copy.layout_needed()),
        (Some("zstd"), 5)
    );
}

/// Layout 6: compact deltas (an entry says its artifact is a format-3 delta).
fn layout6() -> Manifest {
    let mut m = layout2();
    let mut e = entry(
        "t2-incr-85",
        ArtifactId::delta(80, 85).on(2),
        BackupKind::Incremental,
    );
    e.parent = Some("t2-full-80".into());
    e.format = Some(3);
    m.entries.push(e);
    m.layout = m.layout_needed();
    m
}

#[test]
fn the_layout6_manifest_golden_decodes_and_an_older_build_refuses_it() {
    assert_eq!(layout6().layout, 6);
    let p = path("manifest-layout6");
    if !p.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::write(&p, layout6().encode(13)).unwrap();
    }
    let bytes = std::fs::read(&p).unwrap();
    let (g, m) = Manifest::decode("golden", "manifest-layout6", &bytes).unwrap();
    assert_eq!((g, &m), (13, &layout6()));
    assert_eq!(m.encode(g), bytes, "encodes back to the same bytes");
    assert!(
        String::from_utf8_lossy(&bytes).contains("\"format\": 3"),
        "the entry says its format"
    );
    // a copy without such an entry takes it and with it the layout
    let mut copy = layout2();
    copy.merge_from(&m);
    assert_eq!(copy.layout_needed(), 6);
    // once retention removed the last such entry, the layout it needs falls back
    let mut pruned = m.clone();
    pruned.entries.retain(|e| e.format.is_none());
    assert_eq!(pruned.layout_needed(), 2);
    // entries written before carry no format, and keep reading as they were
    let (_, old) = Manifest::decode(
        "golden",
        "manifest-layout5",
        &std::fs::read(path("manifest-layout5")).unwrap(),
    )
    .unwrap();
    assert!(old.entries.iter().all(|e| e.format.is_none()));
}

#[test]
fn a_layout1_manifest_reads_as_timeline_1() {
    let local = "repo-layout1/local/catalog/manifest-00000000000000000007";
    let (_, m) = Manifest::decode("golden", local, &std::fs::read(path(local)).unwrap()).unwrap();
    assert_eq!(m.layout, 1);
    assert!(m.timelines.is_empty());
    assert!(!m.entries.is_empty());
    assert!(
        m.entries
            .iter()
            .all(|e| e.timeline == 1 && e.artifact.timeline() == 1)
    );
    assert!(m.restore_points.iter().all(|p| p.timeline == 1));
}

#[test]
fn an_unknown_layout_is_refused_by_name() {
    let m = Manifest {
        layout: NEWEST_LAYOUT + 1,
        ..Manifest::default()
    };
    let e = Manifest::decode("s", "m", &m.encode(1)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnknownLayout {
                layout: 7,
                known: 6,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("layout 7"), "{e}");
    // a header of a future manifest format is refused the same way
    let e = Manifest::decode("s", "m", b"bindspace-manifest v9 1 00\n{}").unwrap_err();
    assert!(matches!(e, Error::UnknownLayout { layout: 9, .. }), "{e}");
}

// A replica takes the source's newer keyring but keeps the epoch keys the source
// retired (it may hold history sealed under them that the source expired); after a
// master-key replacement it keeps its own keyring, saying why.
#[test]
fn a_copy_keeps_the_epoch_keys_its_source_retired() {
    use bindspace_crypt::{Argon2Cost, Keyring, SeededEntropy, SlotSecret};
    let pass = SlotSecret::Passphrase("replica".into());
    let rng = &mut SeededEntropy::new(5);
    let (mut ring, mut keys) = Keyring::create("r", &pass, Argon2Cost::TEST, 1, rng).unwrap();
    let text = |k: &Keyring| String::from_utf8(k.encode()).unwrap();
    let old_keys_sealed = keys.seal(b"ctx", b"sealed under epoch 1").unwrap();
    let before = text(&ring);
    ring.rotate(&mut keys, 2, rng).unwrap();
    ring.retire(&mut keys, 1).unwrap();
    let after = text(&ring);
    let kept = bindspace_catalog::keyring_for_copy(Some(&before), &after)
        .unwrap()
        .unwrap();
    let kept = Keyring::decode(kept.as_bytes()).unwrap();
    assert!(
        kept.epochs().iter().all(|e| !e.retired),
        "{:?}",
        kept.epochs()
    );
    assert!(kept.revision() > 0);
    // the replica opens what epoch 1 sealed, and epoch 2 is current
    let k = kept.unlock(&pass).unwrap();
    assert_eq!(
        k.open(b"ctx", &old_keys_sealed).unwrap(),
        b"sealed under epoch 1"
    );
    assert_eq!(k.current_epoch(), 2);
    // not older: nothing changes; no keyring yet: the source's
    assert_eq!(
        bindspace_catalog::keyring_for_copy(Some(&after), &before),
        Ok(None)
    );
    assert_eq!(
        bindspace_catalog::keyring_for_copy(None, &after),
        Ok(Some(after.clone()))
    );
    // the revocation flow (a slot added, the first removed, then a rotation and a
    // retirement): the same master key, so the copy keeps epoch 1's key
    let mut ring3 = Keyring::decode(before.as_bytes()).unwrap();
    let mut keys3 = ring3.unlock(&pass).unwrap();
    let other = SlotSecret::Passphrase("other".into());
    ring3
        .add_slot(&keys3, &other, Argon2Cost::TEST, "other", rng)
        .unwrap();
    ring3.remove_slot(1).unwrap();
    ring3.rotate(&mut keys3, 4, rng).unwrap();
    ring3.retire(&mut keys3, 1).unwrap();
    let kept3 = bindspace_catalog::keyring_for_copy(Some(&before), &text(&ring3))
        .unwrap()
        .unwrap();
    let k3 = Keyring::decode(kept3.as_bytes())
        .unwrap()
        .unlock(&other)
        .unwrap();
    assert_eq!(
        k3.open(b"ctx", &old_keys_sealed).unwrap(),
        b"sealed under epoch 1"
    );
    // a new master key and a retirement: the copy keeps its own, saying why
    let mut ring2 = Keyring::decode(before.as_bytes()).unwrap();
    let mut keys2 = ring2.unlock(&pass).unwrap();
    ring2.rotate(&mut keys2, 3, rng).unwrap();
    ring2
        .rotate_master(
            &mut keys2,
            &[(pass.clone(), "kept".into())],
            Argon2Cost::TEST,
            rng,
        )
        .unwrap();
    ring2.retire(&mut keys2, 1).unwrap();
    let err = bindspace_catalog::keyring_for_copy(Some(&before), &text(&ring2)).unwrap_err();
    assert!(err.contains("re-seed this copy"), "{err}");
}
