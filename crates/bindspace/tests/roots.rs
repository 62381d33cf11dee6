//! Restores that prove themselves: every backup and restore point records the state
//! root of its version, restores check each state they pass through against what was
//! recorded and say whether the result was verified, and an artifact altered in a store
//! behind the catalog's back (under a valid blake3) fails the restore, naming the
//! prefixes that differ. A 512-address space (two prefixes), on the embedded default.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{ArtifactId, ArtifactKind, BackupKind, BackupStore};
use bindspace_core::{Addr, ArtifactHeader, Fingerprint, HEADER_LEN, ManualClock, snapshot};
use bindspace_pitr::{Target, Verification};

fn config() -> BackupConfig {
    BackupConfig {
        fingerprint_words: 4,
        address_space: 512,
        background_jobs: false,
        sync: "never".into(),
        ..BackupConfig::default()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
    stores: Vec<Arc<dyn BackupStore>>,
    rt: tokio::runtime::Runtime,
}

/// Versions 1..=60 spread over both prefixes: a full at 20, incrementals at 40 and
/// 60, a restore point after 45 (it takes version 46), the WAL archived.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("repo").display());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = Engine::builder(dir.path().join("data"))
        .config(config())
        .clock(clock.clone())
        .store_url(&url)
        .open()
        .unwrap();
    while engine.version() < 60 {
        let v = engine.version() + 1;
        engine
            .write(
                Addr((v * 131 % 512) as u16),
                Fingerprint::from_words(vec![v; 4]),
            )
            .unwrap();
        clock.advance(1_000);
        match v {
            20 => drop(engine.backup_now(BackupKind::Full).unwrap()),
            40 | 60 => drop(engine.backup_now(BackupKind::Incremental).unwrap()),
            45 => assert_eq!(engine.restore_point("checked", false).unwrap(), 46),
            _ => {}
        }
    }
    engine.archive_now().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = rt.block_on(bindspace::stores::open_all(&[url])).unwrap();
    Setup {
        _dir: dir,
        engine,
        stores,
        rt,
    }
}

impl Setup {
    fn manifest(&self) -> bindspace_catalog::Manifest {
        self.rt
            .block_on(self.stores[0].read_manifest())
            .unwrap()
            .unwrap()
            .1
    }

    fn restore(&self, t: Target) -> bindspace_pitr::Result<(u64, Verification)> {
        self.rt.block_on(async {
            let plan = bindspace_pitr::plan(&self.stores, &t).await?;
            let (s, v) = bindspace_pitr::restore_verified(&plan).await?;
            assert_eq!(s.state_root().root(), v.root);
            Ok((s.version(), v))
        })
    }

    fn artifact(&self, kind: ArtifactKind, to: u64) -> (ArtifactId, Vec<u8>) {
        let r = self
            .rt
            .block_on(self.stores[0].list(kind, 0, u64::MAX))
            .unwrap()
            .into_iter()
            .find(|r| r.id.versions().1 == to)
            .unwrap();
        let b = self.rt.block_on(self.stores[0].get(&r)).unwrap();
        (r.id, b.to_vec())
    }

    /// Puts `bytes` in place of artifact `id` with a header re-sealed over the new
    /// payload: the store's and the plan's length and blake3 checks all pass.
    fn forge(&self, id: ArtifactId, mut bytes: Vec<u8>, edit: impl FnOnce(&mut [u8])) {
        edit(&mut bytes[HEADER_LEN..]);
        self.rt
            .block_on(self.stores[0].put(id, resealed(&bytes).into()))
            .unwrap();
    }
}

/// `bytes` with the header sealed again over its (edited) payload: length and blake3
/// checks pass.
fn resealed(bytes: &[u8]) -> Vec<u8> {
    let h = ArtifactHeader::decode(bytes).unwrap();
    let payload = &bytes[HEADER_LEN..];
    ArtifactHeader::for_payload(
        h.kind,
        h.schema,
        (h.from_version, h.to_version),
        (h.time_from_us, h.time_to_us),
        payload,
    )
    .as_format(h.format)
    .seal(payload)
}

#[test]
fn every_backup_and_restore_point_records_a_root_and_restores_verify_against_it() {
    let s = setup();
    let m = s.manifest();
    for e in m.entries.iter().filter(|e| e.kind != BackupKind::Wal) {
        assert!(e.root.is_some(), "{} records no root", e.id);
    }
    assert!(m.restore_points[0].root.is_some());

    // recorded points: verified against their record, checks on the way counted
    let (v, ver) = s.restore(Target::Version(40)).unwrap();
    assert_eq!(v, 40);
    assert!(
        ver.verified_by
            .as_deref()
            .unwrap()
            .starts_with("incremental"),
        "{ver}"
    );
    assert_eq!((ver.checked, ver.self_checked), (2, 2), "{ver}");
    let (v, ver) = s.restore(Target::RestorePoint("checked".into())).unwrap();
    assert_eq!(v, 46);
    assert_eq!(
        ver.verified_by.as_deref(),
        Some("restore point \"checked\"")
    );
    // each backup logs a WAL checkpoint right after it: a replay that ends on one is
    // verified by it (the newest is the one after the incremental at 60)
    let (v, ver) = s.restore(Target::Version(41)).unwrap();
    assert_eq!(v, 41);
    assert_eq!(
        ver.verified_by.as_deref(),
        Some("WAL checkpoint at version 41")
    );
    let (v, ver) = s.restore(Target::Latest).unwrap();
    assert_eq!(v, 61);
    assert_eq!(
        ver.verified_by.as_deref(),
        Some("WAL checkpoint at version 61")
    );
    // the root agrees with the engine's own
    assert_eq!(ver.root, s.engine.read(|sp| sp.state_root().root()));
    // and the engine's own restore says the same
    let (_, plan, ver) = s
        .engine
        .restore_verified(&Target::RestorePoint("checked".into()))
        .unwrap();
    assert_eq!(plan.version, 46);
    assert_eq!(
        ver.verified_by.as_deref(),
        Some("restore point \"checked\"")
    );

    // between recorded points: the base and delta were checked, the result is not
    // claimed as verified
    let (v, ver) = s.restore(Target::Version(50)).unwrap();
    assert_eq!(v, 50);
    assert!(!ver.is_verified());
    assert!(ver.checked >= 3, "full, incremental, restore point: {ver}");
    assert!(
        ver.to_string()
            .starts_with("unverified: no root recorded for version 50"),
        "{ver}"
    );
    // explain says so before anything runs
    let plan =
        s.rt.block_on(bindspace_pitr::plan(&s.stores, &Target::Version(50)))
            .unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("unverified: no root recorded for version 50"),
        "{text}"
    );
    assert!(text.contains("root:    version 40:"), "{text}");
}

#[test]
fn a_word_changed_in_a_stored_full_under_a_valid_blake3_fails_naming_the_prefix() {
    let s = setup();
    let (id, bytes) = s.artifact(ArtifactKind::Snapshot, 20);
    let snap = snapshot::decode(&bytes).unwrap();
    // the first fingerprint stored at or after address 256 (prefix 1)
    let before = snap
        .space
        .iter()
        .take_while(|(a, _)| a.index() < 256)
        .count();
    s.forge(id, bytes, |payload| {
        payload[512 / 8 + before * 4 * 8] ^= 0x10
    });
    for t in [Target::Version(20), Target::Version(50), Target::Latest] {
        let err = s.restore(t.clone()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("prefixes that differ: 0x01") && msg.contains("version 20"),
            "{t}: {msg}"
        );
        assert_eq!(err.kind(), bindspace_core::ErrorKind::Corrupt);
    }
}

/// A write in an archived WAL segment forged under a valid frame checksum (and a
/// blake3 the store recomputes): the replay reaches the WAL checkpoint the next backup
/// wrote and fails there, naming the prefix.
#[test]
fn a_word_changed_in_an_archived_wal_segment_fails_at_the_next_checkpoint() {
    let s = setup();
    // the incremental at 40 is gone, and its catalog entry (with the root it recorded):
    // version 50 is the full at 20 and WAL 21..50, and only the WAL's checkpoint at 41
    // records the state in between
    let (delta, _) = s.artifact(ArtifactKind::Delta, 40);
    s.rt.block_on(s.stores[0].delete(delta)).unwrap();
    let (generation, mut m) = s.rt.block_on(s.stores[0].read_manifest()).unwrap().unwrap();
    m.entries.retain(|e| e.to_version != 40);
    s.rt.block_on(s.stores[0].commit_manifest(generation, &m))
        .unwrap();
    let r =
        s.rt.block_on(s.stores[0].list(ArtifactKind::WalSegment, 0, u64::MAX))
            .unwrap()
            .into_iter()
            .find(|r| (r.id.versions().0..=r.id.versions().1).contains(&30))
            .unwrap();
    let mut seg = s.rt.block_on(s.stores[0].get(&r)).unwrap().to_vec();
    let first = r.id.versions().0;
    let mut off = bindspace_wal::segment::SEGMENT_HEADER;
    loop {
        let (rec, n) = bindspace_wal::decode_frame(&seg[off..]).unwrap();
        if rec.version == 30 {
            // the write at 30 went to address 30 * 131 % 512 = 346: prefix 1
            let bindspace_wal::RecordOp::Op(bindspace_wal::Op::Write(a, fp)) = &rec.op else {
                panic!("version 30 is a write: {rec:?}");
            };
            assert_eq!(a.0, 346);
            let mut forged = fp.clone();
            forged.words_mut()[0] ^= 1;
            let rec = bindspace_wal::Record {
                op: bindspace_wal::RecordOp::Op(bindspace_wal::Op::Write(*a, forged)),
                ..rec
            };
            let mut bytes = vec![];
            bindspace_wal::encode_frame(&rec, &mut bytes);
            seg[off..off + n].copy_from_slice(&bytes);
            break;
        }
        off += n;
    }
    assert!(first <= 30);
    s.rt.block_on(s.stores[0].put(r.id, seg.into())).unwrap();
    let err = s.restore(Target::Version(50)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("WAL checkpoint at version 41"), "{msg}");
    assert!(msg.contains("prefixes that differ: 0x01"), "{msg}");
    assert_eq!(err.kind(), bindspace_core::ErrorKind::Corrupt);
    // before the checkpoint nothing recorded the state: the forgery is not caught
    // there, and the restore says it is unverified rather than verified
    let (_, ver) = s.restore(Target::Version(35)).unwrap();
    assert!(!ver.is_verified(), "{ver}");
}

/// Format-3 deltas raise the repository layout to 6: a build that cannot read them
/// refuses the catalog at open instead of failing when a restore reaches one.
#[test]
fn incrementals_in_format_3_raise_the_layout_to_6() {
    let s = setup();
    let (_, m) = s.rt.block_on(s.stores[0].read_manifest()).unwrap().unwrap();
    assert_eq!(m.layout, 6);
    assert!(m.compact_deltas, "marked before the first delta was stored");
    let (deltas, others): (Vec<_>, Vec<_>) = m
        .entries
        .iter()
        .partition(|e| e.artifact.kind() == ArtifactKind::Delta);
    assert!(!deltas.is_empty());
    assert!(deltas.iter().all(|e| e.format == Some(3)), "{deltas:?}");
    assert!(others.iter().all(|e| e.format.is_none()));
}

/// A delta forged under a valid blake3 fails its root check. A format-3 delta records
/// the end state's root alone (not its prefix digests), so the message says the
/// prefixes are not recorded; the restore is refused all the same.
#[test]
fn a_word_changed_in_a_stored_delta_fails_its_root_check() {
    let s = setup();
    let (id, bytes) = s.artifact(ArtifactKind::Delta, 40);
    assert_eq!(
        u16::from_le_bytes([bytes[8], bytes[9]]),
        3,
        "written as format 3"
    );
    s.forge(id, bytes, |payload| {
        // the last byte of the last carried word, just before the 32-byte root
        let at = payload.len() - 32 - 1;
        payload[at] ^= 0x01;
    });
    let msg = s.restore(Target::Version(40)).unwrap_err().to_string();
    assert!(msg.contains("delta 20..40"), "{msg}");
    assert!(msg.contains("state root"), "{msg}");
    assert!(
        msg.contains("(only its root was recorded, not its prefix digests)"),
        "{msg}"
    );
}

#[test]
fn a_checkpoint_whose_root_differs_from_its_origin_is_refused() {
    let s = setup();
    let (space, _) =
        s.rt.block_on(bindspace_pitr::restore_to(&s.stores, &Target::Version(40)))
            .unwrap();
    let root = space.state_root().root().to_string();
    s.engine.close().unwrap();
    let open = |dir: &std::path::Path| {
        Engine::builder(dir)
            .config(config())
            .store(s.stores[0].clone())
            .open()
    };
    let seed = |root: String| {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("checkpoint.snap");
        std::fs::write(&snap, snapshot::encode(&space, 0)).unwrap();
        bindspace::Origin {
            repository_id: None,
            timeline: 1,
            version: 40,
            root: Some(root),
        }
        .write(&snap)
        .unwrap();
        dir
    };
    let wrong = seed("00".repeat(32));
    let err = open(wrong.path()).unwrap_err().to_string();
    assert!(err.contains("state root"), "{err}");
    let right = seed(root.clone());
    let e = open(right.path()).unwrap();
    assert_eq!(e.timeline(), 2);
    e.close().unwrap();
    // the branch point records the origin's root
    let m =
        s.rt.block_on(s.stores[0].read_manifest())
            .unwrap()
            .unwrap()
            .1;
    assert_eq!(m.timeline(2).unwrap().root.as_deref(), Some(root.as_str()));
}

#[test]
fn a_consistent_forgery_is_caught_by_the_catalog_root() {
    // the forger rewrites the whole full, trailer included: only the catalog knows
    let s = setup();
    let (id, bytes) = s.artifact(ArtifactKind::Snapshot, 20);
    let snap = snapshot::decode(&bytes).unwrap();
    let mut space = snap.space;
    space.write(Addr::new(1, 3), &[9, 9, 9, 9]).unwrap();
    space.set_version(20);
    let forged = snapshot::encode(&space, snap.header.time_to_us);
    s.rt.block_on(s.stores[0].put(id, forged.into())).unwrap();
    let err = s.restore(Target::Version(40)).unwrap_err();
    assert!(
        matches!(&err, bindspace_pitr::Error::RootMismatch { version: 20, by, .. } if by.starts_with("full")),
        "{err}"
    );
}

/// Two destinations; one's copy of the full is altered under a blake3 its store
/// recomputed (the catalogs still record the original): the restore takes the other
/// destination's copy, and verifies.
#[test]
fn a_forged_copy_in_one_destination_is_passed_over_for_the_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| format!("file://{}", dir.path().join(n).display()))
        .collect();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let mut b = Engine::builder(dir.path().join("data"))
        .config(config())
        .clock(clock.clone());
    for u in &urls {
        b = b.store_url(u);
    }
    let engine = b.open().unwrap();
    for v in 1..=20u64 {
        engine
            .write(
                Addr((v * 131 % 512) as u16),
                Fingerprint::from_words(vec![v; 4]),
            )
            .unwrap();
    }
    let full = engine.backup_now(BackupKind::Full).unwrap().unwrap();
    let want = engine.read(|s| s.digest());
    drop(engine);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = rt.block_on(bindspace::stores::open_all(&urls)).unwrap();
    let good = rt
        .block_on(stores[0].list(ArtifactKind::Snapshot, 0, u64::MAX))
        .unwrap()
        .remove(0);
    let bytes = rt.block_on(stores[0].get(&good)).unwrap().to_vec();
    // a forgery in store a whose blake3 sorts before the good one's, so a planner that
    // took the first copy it listed would take it
    rt.block_on(stores[0].delete(good.id)).unwrap();
    for i in 0usize.. {
        let mut b = bytes.clone();
        b[HEADER_LEN + 64 + i % 256] ^= 1 << (i / 256);
        let r = rt
            .block_on(stores[0].put(good.id, resealed(&b).into()))
            .unwrap();
        if r.blake3 < good.blake3 {
            break;
        }
        rt.block_on(stores[0].delete(good.id)).unwrap();
    }
    let listed = rt
        .block_on(stores[0].list(ArtifactKind::Snapshot, 0, u64::MAX))
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].blake3 < good.blake3);
    let plan = rt
        .block_on(bindspace_pitr::plan(
            &stores,
            &Target::Version(full.to_version),
        ))
        .unwrap();
    assert_eq!(plan.base.artifact.blake3, good.blake3, "{plan}");
    assert_eq!(plan.base.stores, vec![stores[1].name()]);
    let (space, ver) = rt
        .block_on(bindspace_pitr::restore_verified(&plan))
        .unwrap();
    assert_eq!(space.digest(), want);
    assert!(ver.is_verified(), "{ver}");
}

/// Issue 16, item 6: an archived WAL segment damaged at a frame (its store's blake3
/// recomputed over the damage) fails the restore naming the segment; a time target
/// past it used to come back as an earlier state, reported as success.
#[test]
fn a_damaged_frame_in_an_archived_segment_fails_the_restore_even_for_a_time_target() {
    let s = setup();
    let segs =
        s.rt.block_on(s.stores[0].list(ArtifactKind::WalSegment, 0, u64::MAX))
            .unwrap();
    // the segment holding version 30, with its last frame's last byte flipped
    let r = segs
        .into_iter()
        .find(|r| (r.id.versions().0..=r.id.versions().1).contains(&30))
        .unwrap();
    let mut bytes = s.rt.block_on(s.stores[0].get(&r)).unwrap().to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    s.rt.block_on(s.stores[0].delete(r.id)).unwrap();
    s.rt.block_on(s.stores[0].put(r.id, bytes.into())).unwrap();
    // without the incremental at 40, version 50 replays the WAL from the full at 20
    let (delta, _) = s.artifact(ArtifactKind::Delta, 40);
    s.rt.block_on(s.stores[0].delete(delta)).unwrap();
    let (g, mut m) = s.rt.block_on(s.stores[0].read_manifest()).unwrap().unwrap();
    m.entries.retain(|e| e.to_version != 40);
    s.rt.block_on(s.stores[0].commit_manifest(g, &m)).unwrap();
    let t50 = 1_700_000_000_000_000 + 50 * 1_000;
    for t in [Target::Version(50), Target::Time(t50)] {
        let err = s.restore(t.clone()).unwrap_err();
        assert_eq!(err.kind(), bindspace_core::ErrorKind::Corrupt, "{t}: {err}");
        assert!(err.to_string().contains(&r.id.to_string()), "{t}: {err}");
    }
}

/// Issue 16, item 8: an artifact that no store serves intact (its bytes damaged on
/// disk) is planned around when another path to the same state exists: with the
/// incremental at 40 bad, version 50 and the latest come from the full at 20 and the
/// WAL, and are the states they were before the damage.
#[test]
fn a_damaged_artifact_is_planned_around_when_another_path_exists() {
    let s = setup();
    let restored = |t: Target| {
        s.rt.block_on(async {
            let plan = bindspace_pitr::plan(&s.stores, &t).await?;
            bindspace_pitr::restore(&plan).await
        })
        .map(|sp| (sp.version(), sp.digest()))
    };
    let before: Vec<_> = [Target::Version(50), Target::Latest]
        .into_iter()
        .map(|t| restored(t).unwrap())
        .collect();
    let (id, _) = s.artifact(ArtifactKind::Delta, 40);
    // flip a byte of its file in the repository directory
    let file = walk(s._dir.path())
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains("/deltas/")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&id.key_name())
        })
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[HEADER_LEN + 3] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let after: Vec<_> = [Target::Version(50), Target::Latest]
        .into_iter()
        .map(|t| restored(t).unwrap())
        .collect();
    assert_eq!(after, before);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
