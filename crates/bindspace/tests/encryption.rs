//! Encryption at rest (issue 20): a repository whose catalog holds a keyring gets
//! every artifact sealed. What the stores hold contains no run of a fingerprint's
//! bytes, restores are exact with the passphrase, refused without it or with a wrong
//! one (which is not "corrupt"), an artifact stored under another's name does not
//! open, plaintext is refused both ways, and copies between stores move the sealed
//! bytes unchanged.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashSet;
use std::sync::Arc;

use bindspace::{BackupConfig, Engine, keys};
use bindspace_catalog::{
    ArtifactId, BackupKind, BackupStore, BackupStoreExt, Repository, SealedStore,
};
use bindspace_core::{Addr, Clock, Fingerprint, SystemClock};
use bindspace_crypt::{Argon2Cost, Keyring, OsEntropy, SlotSecret};
use bindspace_pitr::{Sources, Target};
use bytes::Bytes;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn pass(p: &str) -> SlotSecret {
    SlotSecret::Passphrase(p.into())
}

/// A fingerprint of 8 words that look random (no run of it occurs by chance).
fn fp(a: u64, round: u64) -> Fingerprint {
    Fingerprint::from_words(
        (0..8)
            .map(|w| {
                ((a << 40) ^ (round << 20) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995
            })
            .collect::<Vec<u64>>(),
    )
}

fn bytes_of(f: &Fingerprint) -> Vec<u8> {
    f.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Two local-directory destinations under `dir`, as URLs.
fn two_stores(dir: &std::path::Path) -> Vec<String> {
    ["a", "b"]
        .iter()
        .map(|n| {
            let p = dir.join(n);
            std::fs::create_dir_all(&p).unwrap();
            format!("file://{}", p.display())
        })
        .collect()
}

/// An engine on a 256-address space of 8-word fingerprints in `dir/data`, backing up
/// to `urls`, opened with `secret`.
fn engine(dir: &std::path::Path, urls: &[String], secret: &SlotSecret) -> Engine {
    Engine::builder(dir.join("data"))
        .config(BackupConfig {
            fingerprint_words: 8,
            address_space: 256,
            background_jobs: false,
            destinations: urls.to_vec(),
            ..BackupConfig::default()
        })
        .secret(secret.clone())
        .open()
        .unwrap()
}

/// An encrypted repository over `urls` whose second store fails on demand.
struct Faulty {
    raw: Vec<Arc<dyn BackupStore>>,
    faulty: Arc<bindspace_testkit::FaultyStore>,
    stores: Vec<Arc<dyn BackupStore>>,
    repo: Repository,
}

fn encrypted_with_faulty_second(
    rt: &tokio::runtime::Runtime,
    urls: &[String],
    secret: &SlotSecret,
) -> Faulty {
    let raw = rt.block_on(bindspace::stores::open_all(urls)).unwrap();
    let faulty = bindspace_testkit::FaultyStore::new(raw[1].clone());
    let stores: Vec<Arc<dyn BackupStore>> = vec![raw[0].clone(), faulty.clone()];
    let repo = Repository::new(stores.clone(), Arc::new(SystemClock), "test").unwrap();
    rt.block_on(keys::encrypt_new(
        &repo,
        secret,
        Argon2Cost::TEST,
        SystemClock.now_us(),
        &mut OsEntropy,
    ))
    .unwrap();
    Faulty {
        raw,
        faulty,
        stores,
        repo,
    }
}

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn an_encrypted_repository_holds_no_fingerprint_bytes_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let url = format!("file://{}", repo_dir.display());
    let rt = rt();
    let stores = rt
        .block_on(bindspace::stores::open_all(std::slice::from_ref(&url)))
        .unwrap();
    let repo = Repository::new(stores.clone(), Arc::new(SystemClock), "test").unwrap();
    let secret = pass("correct horse battery staple");
    rt.block_on(keys::encrypt_new(
        &repo,
        &secret,
        Argon2Cost::TEST,
        SystemClock.now_us(),
        &mut OsEntropy,
    ))
    .unwrap();
    // a second time with the same passphrase completes what is there (a partial
    // run); with another: refused
    let again = |s: &SlotSecret| {
        rt.block_on(keys::encrypt_new(
            &repo,
            s,
            Argon2Cost::TEST,
            1,
            &mut OsEntropy,
        ))
    };
    assert!(again(&secret).is_ok());
    let err = again(&pass("another")).unwrap_err();
    assert!(err.to_string().contains("already encrypted"), "{err}");
    let cfg = BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        background_jobs: false,
        destinations: vec![url.clone()],
        ..BackupConfig::default()
    };
    let data = dir.path().join("data");
    let e = Engine::builder(&data)
        .config(cfg.clone())
        .secret(secret.clone())
        .open()
        .unwrap();
    let mut written = Vec::new();
    for a in 0..200u16 {
        let f = fp(u64::from(a), 0);
        written.push(bytes_of(&f));
        e.write(Addr(a), f).unwrap();
    }
    e.backup_now(BackupKind::Full).unwrap();
    for a in 0..60u16 {
        let f = fp(u64::from(a), 1);
        written.push(bytes_of(&f));
        e.write(Addr(a * 3), f).unwrap();
    }
    e.backup_now(BackupKind::Incremental).unwrap();
    for a in 0..20u16 {
        let f = fp(u64::from(a), 2);
        written.push(bytes_of(&f));
        e.write(Addr(a + 7), f).unwrap();
    }
    e.archive_now().unwrap();
    let want = e.read(|s| (s.version(), s.digest()));
    e.close().unwrap();

    // no 32-byte run of any fingerprint anywhere in the repository
    let mut runs = HashSet::new();
    for b in &written {
        for w in b.windows(32) {
            runs.insert(<[u8; 32]>::try_from(w).unwrap());
        }
    }
    let mut all = Vec::new();
    files(&repo_dir, &mut all);
    let mut scanned = 0usize;
    for p in &all {
        let b = std::fs::read(p).unwrap();
        scanned += b.len();
        for (i, w) in b.windows(32).enumerate() {
            assert!(
                !runs.contains(w),
                "{} holds fingerprint bytes at {i}",
                p.display()
            );
        }
    }
    assert!(
        all.len() >= 4 && scanned > 200 * 64,
        "{} files, {scanned} bytes",
        all.len()
    );

    // with the passphrase: exact; without: refused, saying what to set; a wrong one:
    // its own error, not damage
    let unlocked = rt
        .block_on(keys::unlock(stores.clone(), Some(&secret)))
        .unwrap();
    let (space, _) = rt
        .block_on(bindspace_pitr::restore_to(
            Sources::new(unlocked.clone()),
            &Target::Latest,
        ))
        .unwrap();
    assert_eq!((space.version(), space.digest()), want);
    let locked = rt.block_on(keys::unlock(stores.clone(), None)).unwrap();
    let err = rt
        .block_on(bindspace_pitr::restore_to(
            Sources::new(locked),
            &Target::Latest,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("BINDSPACE_PASSPHRASE"), "{err}");
    let err = rt
        .block_on(keys::unlock(stores.clone(), Some(&pass("tr0ub4dor"))))
        .unwrap_err();
    assert!(matches!(err, bindspace::Error::WrongKey(_)), "{err}");
    let err = Engine::builder(&data)
        .config(cfg.clone())
        .open()
        .unwrap_err();
    assert!(err.to_string().contains("BINDSPACE_PASSPHRASE"), "{err}");
    let err = Engine::builder(&data)
        .config(cfg)
        .secret(pass("tr0ub4dor"))
        .open()
        .unwrap_err();
    assert!(matches!(err, bindspace::Error::WrongKey(_)), "{err}");
}

#[test]
fn sealed_stores_refuse_swaps_and_plaintext_and_copy_sealed_bytes_unchanged() {
    let rt = rt();
    let mem = || -> Arc<dyn BackupStore> {
        Arc::new(
            bindspace_store_s3::ObjectBackupStore::from_url("memory://", Default::default())
                .unwrap(),
        )
    };
    let (_, keys) =
        Keyring::create("repo-x", &pass("p"), Argon2Cost::TEST, 1, &mut OsEntropy).unwrap();
    let keys = Arc::new(keys);
    let (a_inner, b_inner) = (mem(), mem());
    let a = SealedStore::new(a_inner.clone(), keys.clone());
    let b = SealedStore::new(b_inner.clone(), keys.clone());
    let plain = Bytes::from(vec![7u8; 5000]);
    let d1 = rt
        .block_on(a.put(ArtifactId::delta(1, 2), plain.clone()))
        .unwrap();
    let d2 = rt
        .block_on(a.put(ArtifactId::delta(2, 3), plain.clone()))
        .unwrap();
    assert_eq!(rt.block_on(a.get(&d1)).unwrap(), plain);
    let stored = rt.block_on(a_inner.get(&d1)).unwrap();
    assert!(bindspace_crypt::is_sealed(&stored) && stored != plain);
    // the sealed bytes of 1..2 stored as 2..3: the checksum matches what is stored,
    // the seal does not
    let swapped = rt.block_on(a_inner.put(d2.id, stored.clone())).unwrap();
    let err = rt.block_on(a.get(&swapped)).unwrap_err();
    assert!(
        err.is_corruption() && err.to_string().contains("delta 2..3"),
        "{err}"
    );
    // plaintext: neither read nor stored as if sealed
    let raw = rt
        .block_on(a_inner.put(ArtifactId::delta(5, 6), plain.clone()))
        .unwrap();
    let err = rt.block_on(a.get(&raw)).unwrap_err();
    assert!(err.to_string().contains("unencrypted"), "{err}");
    let err = rt
        .block_on(b.put_stored(ArtifactId::delta(5, 6), plain.clone()))
        .unwrap_err();
    assert!(err.to_string().contains("plaintext"), "{err}");
    // a copy moves the sealed bytes: the same reference on both ends, no key needed
    let copied = rt.block_on(a.copy_artifact_to(&d1, &b)).unwrap();
    assert_eq!(copied, d1);
    let locked = SealedStore::locked(b_inner.clone());
    assert_eq!(rt.block_on(locked.get_stored(&d1)).unwrap(), stored);
    let err = rt.block_on(locked.get(&d1)).unwrap_err();
    assert!(err.to_string().contains("no key was given"), "{err}");
    assert_eq!(rt.block_on(b.get(&d1)).unwrap(), plain);
}

// Two destinations: sealing is deterministic, so the backup and the WAL archive land
// with the same bytes in both (the catalog records one checksum), and each store alone
// restores the state exactly.
#[test]
fn two_destinations_hold_the_same_sealed_bytes_and_each_restores_alone() {
    let dir = tempfile::tempdir().unwrap();
    let urls = two_stores(dir.path());
    let rt = rt();
    let stores = rt.block_on(bindspace::stores::open_all(&urls)).unwrap();
    let repo = Repository::new(stores.clone(), Arc::new(SystemClock), "test").unwrap();
    let secret = pass("two stores");
    rt.block_on(keys::encrypt_new(
        &repo,
        &secret,
        Argon2Cost::TEST,
        SystemClock.now_us(),
        &mut OsEntropy,
    ))
    .unwrap();
    let e = engine(dir.path(), &urls, &secret);
    for a in 0..50u16 {
        e.write(Addr(a), fp(u64::from(a), 0)).unwrap();
    }
    e.backup_now(BackupKind::Full).unwrap();
    e.write(Addr(3), fp(3, 1)).unwrap();
    e.archive_now().unwrap();
    let want = e.read(|s| (s.version(), s.digest()));
    e.close().unwrap();
    for s in &stores {
        let one = rt
            .block_on(keys::unlock(vec![s.clone()], Some(&secret)))
            .unwrap();
        let (space, _) = rt
            .block_on(bindspace_pitr::restore_to(
                Sources::new(one),
                &Target::Latest,
            ))
            .unwrap();
        assert_eq!((space.version(), space.digest()), want, "{}", s.name());
    }
}

/// Every stored artifact of `dirs`' stores and the epoch that sealed it.
fn epochs_stored(rt: &tokio::runtime::Runtime, stores: &[Arc<dyn BackupStore>]) -> Vec<u32> {
    let mut out = Vec::new();
    for s in stores {
        for k in bindspace_catalog::ArtifactKind::ALL {
            for r in rt.block_on(s.list(k, 0, u64::MAX)).unwrap() {
                let b = rt.block_on(s.get(&r)).unwrap();
                out.push(bindspace_crypt::Keys::epoch_of(&b).unwrap());
            }
        }
    }
    out
}

// Key rotation, slot changes and an interrupted re-encryption in the middle of a
// chain: every restore point made before and after restores exactly; a removed slot's
// passphrase no longer opens; the old epoch is retired only once nothing is sealed
// with it; a writer opened before the rotation picks up the new epoch.
#[test]
fn rotation_slot_changes_and_an_interrupted_reencryption_keep_every_restore_point() {
    let dir = tempfile::tempdir().unwrap();
    let urls = two_stores(dir.path());
    let rt = rt();
    let first = pass("first passphrase");
    // the second destination fails on demand (an interrupted re-encryption)
    let Faulty {
        raw,
        faulty,
        stores,
        repo,
    } = encrypted_with_faulty_second(&rt, &urls, &first);
    let e = engine(dir.path(), &urls, &first);
    let mut points = Vec::new();
    let step = |e: &Engine, round: u64, kind: BackupKind, points: &mut Vec<_>| {
        for a in 0..40u16 {
            e.write(Addr(a * 5 + round as u16), fp(u64::from(a), round))
                .unwrap();
        }
        e.backup_now(kind).unwrap();
        let name = format!("p{round}");
        e.restore_point(&name, true).unwrap();
        points.push((name, e.read(|s| (s.version(), s.digest()))));
    };
    step(&e, 0, BackupKind::Full, &mut points);
    step(&e, 1, BackupKind::Incremental, &mut points);
    // a new epoch while the engine runs; a second slot; the first one removed
    let (epoch, _) = rt
        .block_on(keys::change_keyring(&repo, &first, |ring, keys| {
            ring.rotate(keys, SystemClock.now_us(), &mut OsEntropy)
        }))
        .unwrap();
    assert_eq!(epoch, 2);
    let second = pass("second passphrase");
    rt.block_on(keys::change_keyring(&repo, &first, |ring, keys| {
        ring.add_slot(keys, &second, Argon2Cost::TEST, "second", &mut OsEntropy)
    }))
    .unwrap();
    rt.block_on(keys::change_keyring(&repo, &second, |ring, _| {
        ring.remove_slot(1)
    }))
    .unwrap();
    step(&e, 2, BackupKind::Incremental, &mut points);
    e.archive_now().unwrap();
    e.close().unwrap();
    let sealed_with = epochs_stored(&rt, &raw);
    assert!(
        sealed_with.contains(&1) && sealed_with.contains(&2),
        "the engine opened before the rotation seals new artifacts under epoch 2: {sealed_with:?}"
    );
    // the removed slot's passphrase opens nothing now
    let err = rt
        .block_on(keys::unlock(stores.clone(), Some(&first)))
        .unwrap_err();
    assert!(matches!(err, bindspace::Error::WrongKey(_)), "{err}");

    // interrupted: after the first artifact, the second store's catalog commits fail
    // (its artifacts are re-sealed but its catalog still names the old bytes)
    let f = faulty.clone();
    let err = rt
        .block_on(keys::reencrypt(
            &stores,
            Arc::new(SystemClock),
            &second,
            |n, _| {
                if n == 1 {
                    f.inject(
                        bindspace_testkit::Op::CommitManifest,
                        bindspace_testkit::Fault::Fail,
                        None,
                    );
                }
            },
        ))
        .err();
    let partial = epochs_stored(&rt, &raw);
    assert!(err.is_some() && partial.contains(&1), "{err:?} {partial:?}");
    // meanwhile, every restore point still restores from the first store (the epoch
    // is not retired; the second store's catalog names bytes its re-sealed copy
    // replaced, until the resumed run records them)
    faulty.heal();
    let check_all = |stores: Vec<Arc<dyn BackupStore>>, expect_ok: bool| {
        let unlocked = rt.block_on(keys::unlock(stores, Some(&second))).unwrap();
        for (name, want) in &points {
            let got = rt.block_on(bindspace_pitr::restore_to(
                Sources::new(unlocked.clone()),
                &Target::RestorePoint(name.clone()),
            ));
            if expect_ok {
                let (space, _) = got.unwrap();
                assert_eq!(&(space.version(), space.digest()), want, "{name}");
            }
        }
    };
    check_all(vec![stores[0].clone()], true);
    // resumed: completes, fixes the stale catalog, retires epoch 1
    let done = rt
        .block_on(keys::reencrypt(
            &stores,
            Arc::new(SystemClock),
            &second,
            |_, _| (),
        ))
        .unwrap();
    assert!(done.left.is_empty(), "{done:?}");
    assert_eq!(done.retired, vec![1], "{done:?}");
    assert!(done.entries_updated > 0, "{done:?}");
    let after = epochs_stored(&rt, &raw);
    assert!(after.iter().all(|e| *e == 2), "{after:?}");
    let ring = rt.block_on(keys::keyring_of(&stores)).unwrap().unwrap();
    assert!(ring.epochs().iter().any(|e| e.id == 1 && e.retired));
    // each store alone restores every point exactly, and verifies clean
    for s in &raw {
        check_all(vec![s.clone()], true);
    }
    let unlocked = rt
        .block_on(keys::unlock(raw.clone(), Some(&second)))
        .unwrap();
    let r = Repository::new(unlocked, Arc::new(SystemClock), "verify").unwrap();
    let report = rt
        .block_on(bindspace_dr::verify(
            &r,
            &SystemClock,
            &bindspace_dr::VerifyOptions::default(),
        ))
        .unwrap();
    assert_eq!(report.outcome(), bindspace_dr::Outcome::Clean, "{report:?}");
}

mod common;

// A rotation that reached only the first of two destinations (the second's catalog
// commit failed), then a re-encryption: the second store's artifacts are re-sealed
// under the new epoch (never under the older keyring its own catalog still holds),
// the old epoch is retired, and each store alone restores every point exactly.
#[test]
fn a_rotation_that_reached_one_store_then_a_reencryption_leaves_both_readable() {
    let dir = tempfile::tempdir().unwrap();
    let urls = two_stores(dir.path());
    let rt = rt();
    let secret = pass("half a rotation");
    let Faulty {
        raw,
        faulty,
        stores,
        repo,
    } = encrypted_with_faulty_second(&rt, &urls, &secret);
    let e = engine(dir.path(), &urls, &secret);
    for a in 0..60u16 {
        e.write(Addr(a), fp(u64::from(a), 0)).unwrap();
    }
    e.backup_now(BackupKind::Full).unwrap();
    e.restore_point("p", true).unwrap();
    let want = e.read(|s| (s.version(), s.digest()));
    e.close().unwrap();
    // a key change that reached both (revision 1), then a rotation that reached only
    // the first (revision 2): the second store's catalog holds revision 1
    rt.block_on(keys::change_keyring(&repo, &secret, |ring, keys| {
        ring.add_slot(
            keys,
            &pass("spare"),
            Argon2Cost::TEST,
            "spare",
            &mut OsEntropy,
        )
    }))
    .unwrap();
    faulty.inject(
        bindspace_testkit::Op::CommitManifest,
        bindspace_testkit::Fault::Fail,
        None,
    );
    let half = rt.block_on(keys::change_keyring(&repo, &secret, |ring, keys| {
        ring.rotate(keys, SystemClock.now_us(), &mut OsEntropy)
    }));
    assert!(half.is_err(), "the second store's commit failed");
    faulty.heal();
    let done = rt
        .block_on(keys::reencrypt(
            &stores,
            Arc::new(SystemClock),
            &secret,
            |_, _| (),
        ))
        .unwrap();
    assert!(done.left.is_empty() && done.retired == vec![1], "{done:?}");
    assert!(epochs_stored(&rt, &raw).iter().all(|e| *e == 2));
    for s in &raw {
        let one = rt
            .block_on(keys::unlock(vec![s.clone()], Some(&secret)))
            .unwrap();
        let (space, _) = rt
            .block_on(bindspace_pitr::restore_to(
                Sources::new(one),
                &Target::RestorePoint("p".into()),
            ))
            .unwrap();
        assert_eq!((space.version(), space.digest()), want, "{}", s.name());
    }
}

/// Every 32-byte run of `written` found in `blob` (the name says where).
fn runs_in(runs: &HashSet<[u8; 32]>, name: &str, blob: &[u8]) {
    for (i, w) in blob.windows(32).enumerate() {
        assert!(!runs.contains(w), "{name} holds fingerprint bytes at {i}");
    }
}

// With encryption (and compression) on, no 32-byte run of any fingerprint appears in
// any store: every object of the S3 bucket's prefix, every Redis value, every
// PostgreSQL bytea; each store alone restores the state exactly.
#[test]
fn s3_redis_and_postgres_of_an_encrypted_repository_hold_no_fingerprint_bytes() {
    let Some(srv) = common::real_servers() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let pg = bindspace_testkit::servers::Server::postgres(srv.pg_bin.as_ref(), dir.path()).unwrap();
    let (redis, mut con) = common::own_redis_db(&rt, &srv.redis, 9);
    let s3 = format!(
        "{}/{}",
        srv.s3.trim_end_matches('/'),
        bindspace_testkit::unique_name("sealed")
    );
    let urls = vec![s3.clone(), redis.clone(), pg.url.clone()];
    let raw = rt.block_on(bindspace::stores::open_all(&urls)).unwrap();
    let repo = Repository::new(raw.clone(), Arc::new(SystemClock), "test").unwrap();
    let secret = pass("servers too");
    rt.block_on(keys::encrypt_new(
        &repo,
        &secret,
        Argon2Cost::TEST,
        SystemClock.now_us(),
        &mut OsEntropy,
    ))
    .unwrap();
    rt.block_on(repo.set_compression("zstd")).unwrap();
    let e = engine(dir.path(), &urls, &secret);
    let mut written = Vec::new();
    for round in 0..3u64 {
        for a in 0..120u16 {
            let f = fp(u64::from(a), round);
            written.push(bytes_of(&f));
            e.write(Addr(a + round as u16), f).unwrap();
        }
        e.backup_now(if round == 0 {
            BackupKind::Full
        } else {
            BackupKind::Incremental
        })
        .unwrap();
    }
    e.archive_now().unwrap();
    let want = e.read(|s| (s.version(), s.digest()));
    e.close().unwrap();
    let mut runs = HashSet::new();
    for b in &written {
        for w in b.windows(32) {
            runs.insert(<[u8; 32]>::try_from(w).unwrap());
        }
    }

    // S3: every object under the repository's prefix
    let s3_store =
        bindspace_store_s3::ObjectBackupStore::from_url(&s3, Default::default()).unwrap();
    let os = s3_store.object_store();
    let listed: Vec<object_store::ObjectMeta> = rt.block_on(async {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        os.list(Some(s3_store.root())).try_collect().await.unwrap()
    });
    let mut s3_bytes = 0;
    for o in &listed {
        let b = rt.block_on(async {
            object_store::ObjectStoreExt::get(os.as_ref(), &o.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
        s3_bytes += b.len();
        runs_in(&runs, &format!("s3 {}", o.location), &b);
    }
    assert!(
        listed.len() >= 4 && s3_bytes > 120 * 64,
        "{} objects",
        listed.len()
    );

    // Redis: every value of every key
    let keys: Vec<String> = rt
        .block_on(redis::cmd("KEYS").arg("*").query_async(&mut con))
        .unwrap();
    let mut redis_values = 0;
    for k in &keys {
        let t: String = rt
            .block_on(redis::cmd("TYPE").arg(k).query_async(&mut con))
            .unwrap();
        let values: Vec<Vec<u8>> = match t.as_str() {
            "string" => vec![
                rt.block_on(redis::cmd("GET").arg(k).query_async(&mut con))
                    .unwrap(),
            ],
            "hash" => rt
                .block_on(redis::cmd("HVALS").arg(k).query_async(&mut con))
                .unwrap(),
            "list" => rt
                .block_on(
                    redis::cmd("LRANGE")
                        .arg(k)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con),
                )
                .unwrap(),
            "set" => rt
                .block_on(redis::cmd("SMEMBERS").arg(k).query_async(&mut con))
                .unwrap(),
            "zset" => rt
                .block_on(
                    redis::cmd("ZRANGE")
                        .arg(k)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con),
                )
                .unwrap(),
            other => panic!("key {k} of type {other}: not scanned"),
        };
        for v in values {
            redis_values += 1;
            runs_in(&runs, &format!("redis {k}"), &v);
        }
    }
    assert!(
        redis_values >= 4,
        "{redis_values} values in {} keys",
        keys.len()
    );

    // PostgreSQL: every bytea column of every table
    let psql = std::path::Path::new(&srv.pg_bin).join("psql");
    let sql = |q: &str| -> String {
        let out = std::process::Command::new(&psql)
            .args(["-At", "-d", &pg.url, "-c", q])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let columns = sql(
        "SELECT format('SELECT encode(%I, ''hex'') FROM %I.%I', column_name, table_schema, table_name) FROM information_schema.columns WHERE data_type = 'bytea' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    );
    let mut pg_values = 0;
    for q in columns.lines().filter(|l| !l.is_empty()) {
        for hex in sql(q).lines() {
            let b: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            pg_values += 1;
            runs_in(&runs, &format!("postgres {q}"), &b);
        }
    }
    assert!(pg_values >= 2, "{pg_values} bytea values");

    // each store alone restores exactly
    for s in &raw {
        let one = rt
            .block_on(keys::unlock(vec![s.clone()], Some(&secret)))
            .unwrap();
        let (space, _) = rt
            .block_on(bindspace_pitr::restore_to(
                Sources::new(one),
                &Target::Latest,
            ))
            .unwrap();
        assert_eq!((space.version(), space.digest()), want, "{}", s.name());
    }
}

// A put under way while the epoch it sealed with is rotated out and retired (a slow
// upload across a whole `key reencrypt`): the store seals it again under the current
// epoch, so it still opens.
#[test]
fn a_put_that_spans_a_retirement_is_sealed_again() {
    let rt = rt();
    let mem: Arc<dyn BackupStore> = Arc::new(
        bindspace_store_s3::ObjectBackupStore::from_url("memory://", Default::default()).unwrap(),
    );
    let slow = bindspace_testkit::FaultyStore::new(mem.clone());
    let repo = Repository::new(vec![mem.clone()], Arc::new(SystemClock), "test").unwrap();
    let secret = pass("slow put");
    let ring = rt
        .block_on(keys::encrypt_new(
            &repo,
            &secret,
            Argon2Cost::TEST,
            SystemClock.now_us(),
            &mut OsEntropy,
        ))
        .unwrap();
    let sealed = Arc::new(SealedStore::new(
        slow.clone(),
        Arc::new(ring.unlock(&secret).unwrap()),
    ));
    slow.inject(
        bindspace_testkit::Op::Put,
        bindspace_testkit::Fault::Delay(std::time::Duration::from_millis(400)),
        Some(1),
    );
    let plain = Bytes::from(vec![42u8; 10_000]);
    let (s2, p2) = (sealed.clone(), plain.clone());
    let put = rt.spawn(async move { s2.put(ArtifactId::delta(1, 2), p2).await });
    #[allow(clippy::disallowed_methods)] // the put must be under way (a test's wall clock)
    std::thread::sleep(std::time::Duration::from_millis(100));
    rt.block_on(keys::change_keyring(&repo, &secret, |ring, keys| {
        ring.rotate(keys, SystemClock.now_us(), &mut OsEntropy)?;
        ring.retire(keys, 1)
    }))
    .unwrap();
    let r = rt.block_on(put).unwrap().unwrap();
    let fresh = rt
        .block_on(keys::unlock(vec![mem.clone()], Some(&secret)))
        .unwrap();
    assert_eq!(rt.block_on(fresh[0].get(&r)).unwrap(), plain);
    let stored = rt.block_on(mem.get(&r)).unwrap();
    assert_eq!(bindspace_crypt::Keys::epoch_of(&stored).unwrap(), 2);
}
