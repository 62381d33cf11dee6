//! Compression (issue 20): a repository with compression on packs the artifacts that
//! pay (a delta of a few flipped bits per word) and stores raw those that do not (a
//! full of random fingerprints); restores are exact, with and without encryption (the
//! packed bytes are then sealed).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bindspace::{BackupConfig, Engine, keys};
use bindspace_catalog::packed::is_packed;
use bindspace_catalog::{ArtifactKind, BackupKind, BackupStore, Repository, SealedStore};
use bindspace_core::{Addr, Clock, Fingerprint, SystemClock};
use bindspace_crypt::{Argon2Cost, OsEntropy, SlotSecret};
use bindspace_pitr::{Sources, Target};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fp(a: u64, flip: u64) -> Fingerprint {
    Fingerprint::from_words(
        (0..64)
            .map(|w| {
                ((a << 32) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    ^ 0x5bd1_e995
                    ^ (flip << (w % 61))
            })
            .collect::<Vec<u64>>(),
    )
}

/// Every artifact `raw` holds, with whether it is stored packed.
fn packed_kinds(
    rt: &tokio::runtime::Runtime,
    raw: &Arc<dyn BackupStore>,
) -> Vec<(ArtifactKind, bool)> {
    let mut out = Vec::new();
    for k in ArtifactKind::ALL {
        for r in rt.block_on(raw.list(k, 0, u64::MAX)).unwrap() {
            let b = rt.block_on(raw.get(&r)).unwrap();
            out.push((k, is_packed(&b)));
        }
    }
    out
}

fn run(encrypted: bool) {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let url = format!("file://{}", repo_dir.display());
    let rt = rt();
    let raw = rt
        .block_on(bindspace::stores::open_all(std::slice::from_ref(&url)))
        .unwrap();
    let repo = Repository::new(raw.clone(), Arc::new(SystemClock), "test").unwrap();
    rt.block_on(repo.init()).unwrap();
    let secret = SlotSecret::Passphrase("packed and sealed".into());
    if encrypted {
        rt.block_on(keys::encrypt_new(
            &repo,
            &secret,
            Argon2Cost::TEST,
            SystemClock.now_us(),
            &mut OsEntropy,
        ))
        .unwrap();
    }
    rt.block_on(repo.set_compression("zstd")).unwrap();
    let mut b = Engine::builder(dir.path().join("data")).config(BackupConfig {
        fingerprint_words: 64,
        address_space: 256,
        background_jobs: false,
        destinations: vec![url.clone()],
        ..BackupConfig::default()
    });
    if encrypted {
        b = b.secret(secret.clone());
    }
    let e = b.open().unwrap();
    let mut points = Vec::new();
    for a in 0..256u16 {
        e.write(Addr(a), fp(u64::from(a), 0)).unwrap();
    }
    e.backup_now(BackupKind::Full).unwrap();
    e.restore_point("full", true).unwrap();
    points.push(("full", e.read(|s| (s.version(), s.digest()))));
    // a few bits flipped per word: the delta packs
    for a in 0..256u16 {
        e.write(Addr(a), fp(u64::from(a), 1)).unwrap();
    }
    e.backup_now(BackupKind::Incremental).unwrap();
    e.restore_point("bits", true).unwrap();
    points.push(("bits", e.read(|s| (s.version(), s.digest()))));
    e.archive_now().unwrap();
    e.close().unwrap();

    let stores = rt
        .block_on(keys::unlock(raw.clone(), encrypted.then_some(&secret)))
        .unwrap();
    let keys_for_open = if encrypted {
        let ring = rt.block_on(keys::keyring_of(&raw)).unwrap().unwrap();
        Some(ring.unlock(&secret).unwrap())
    } else {
        None
    };
    // what is stored: in the plain repository, packed deltas and a raw full
    if !encrypted {
        let kinds = packed_kinds(&rt, &raw[0]);
        assert!(
            kinds.contains(&(ArtifactKind::Delta, true)),
            "the delta of flipped bits is packed: {kinds:?}"
        );
        assert!(
            kinds.contains(&(ArtifactKind::Snapshot, false)),
            "a full of random fingerprints stays raw: {kinds:?}"
        );
    } else {
        // sealed: what the seal holds is packed; the seal's bytes reveal nothing
        let inner: Vec<_> = ArtifactKind::ALL
            .iter()
            .flat_map(|k| rt.block_on(raw[0].list(*k, 0, u64::MAX)).unwrap())
            .collect();
        let plain_store = SealedStore::new(raw[0].clone(), Arc::new(keys_for_open.unwrap()));
        let mut packed_delta = false;
        for r in &inner {
            let stored = rt.block_on(raw[0].get(r)).unwrap();
            assert!(bindspace_crypt::is_sealed(&stored) && !is_packed(&stored));
            // opened (and unpacked): a delta longer than its sealed bytes was packed
            let body = rt
                .block_on(plain_store.open_stored(r, stored.clone()))
                .unwrap();
            if r.id.kind() == ArtifactKind::Delta && body.len() as u64 > r.len {
                packed_delta = true;
            }
        }
        assert!(
            packed_delta,
            "the delta was packed before sealing (its sealed bytes are smaller than the delta)"
        );
    }
    for (name, want) in &points {
        let (space, _) = rt
            .block_on(bindspace_pitr::restore_to(
                Sources::new(stores.clone()),
                &Target::RestorePoint((*name).into()),
            ))
            .unwrap();
        assert_eq!(&(space.version(), space.digest()), want, "{name}");
    }
    // checksum and decode verification both clean
    let r = Repository::new(stores, Arc::new(SystemClock), "verify").unwrap();
    let report = rt
        .block_on(bindspace_dr::verify(
            &r,
            &SystemClock,
            &bindspace_dr::VerifyOptions {
                level: bindspace_dr::VerifyLevel::Standard,
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(report.outcome(), bindspace_dr::Outcome::Clean, "{report:?}");
}

#[test]
fn a_compressed_repository_packs_what_pays_and_restores_exactly() {
    run(false);
}

#[test]
fn a_compressed_encrypted_repository_packs_then_seals_and_restores_exactly() {
    run(true);
}
