//! Issue 17's chaos drills, automated against the real servers `cargo xtask test`
//! starts: random bytes of a random artifact damaged in each store kind (a local
//! directory's file, an S3 object, a Redis chunk, a PostgreSQL row), then an artifact
//! deleted from each: `verify` names it, `--repair` heals it from another store, and
//! every recorded state restores exactly again from each store alone. A full disk
//! (a tmpfs) during a backup: a clean error, nothing committed, the next backup
//! succeeds once there is room. The S3 server frozen (SIGSTOP) during a drill: that
//! store is reported unavailable within the drill's timeout and the others are still
//! measured. Before the damage, the repository is clean at every verify level on every
//! store kind; after the repairs, a drill restores the sentinel from each alone.
//! 256-address spaces. The damage is seeded: `BINDSPACE_CHAOS_SEED` replays
//! a run.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{ArtifactKind, ArtifactRef, BackupKind, BackupStore, VerifyLevel};
use bindspace_core::{Addr, Clock, Fingerprint, ManualClock, SystemClock};
use bindspace_dr::{DrillOptions, Outcome, Sentinel, VerifyOptions, drill, history, verify};
use bindspace_pitr::Target;
use bindspace_store_redis::{RedisBackupStore, RedisOptions};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_testkit::servers::Server;
use bindspace_testkit::simdisk::SeedRng;
use bindspace_testkit::{must_not_skip, service_env, unique_name};
use object_store::ObjectStoreExt;

mod common;

/// The seed of this run (printed, so a failure can be replayed).
fn seed() -> u64 {
    let s = std::env::var("BINDSPACE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c4_a05d);
    eprintln!("chaos seed {s} (BINDSPACE_CHAOS_SEED={s} replays it)");
    s
}

/// How one store kind is damaged from outside bindspace, as a failing disk, a
/// careless operator or an eviction would.
enum Raw {
    /// A local directory or an S3 bucket: the object itself.
    Object(ObjectBackupStore),
    /// Redis: the artifact's chunk keys.
    Redis(RedisBackupStore, redis::aio::MultiplexedConnection),
    /// PostgreSQL: the rows, through `psql`.
    Postgres { psql: std::path::PathBuf, port: u16 },
}

impl Raw {
    /// XORs the byte at `at` of `r` with `x` (non-zero).
    async fn flip(&mut self, r: &ArtifactRef, at: u64, x: u8) {
        match self {
            Raw::Object(s) => {
                let os = s.object_store();
                let path = s.object_path(r);
                let mut bytes = os.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
                bytes[at as usize] ^= x;
                os.put(&path, bytes.into()).await.unwrap();
            }
            Raw::Redis(s, con) => {
                let chunk = RedisOptions::default().chunk_size as u64;
                let prefix: String = redis::cmd("HGET")
                    .arg(s.meta_key(r.id))
                    .arg("chunk_prefix")
                    .query_async(con)
                    .await
                    .unwrap();
                let key = format!("{prefix}{}", at / chunk);
                let off = (at % chunk) as usize;
                let old: Vec<u8> = redis::cmd("GETRANGE")
                    .arg(&key)
                    .arg(off)
                    .arg(off)
                    .query_async(con)
                    .await
                    .unwrap();
                assert_eq!(old.len(), 1, "chunk {key} has no byte {off}");
                let _: () = redis::cmd("SETRANGE")
                    .arg(&key)
                    .arg(off)
                    .arg(&[old[0] ^ x][..])
                    .query_async(con)
                    .await
                    .unwrap();
            }
            Raw::Postgres { psql, port } => {
                let (kind, first, last) = pg_key(r);
                sql(
                    psql,
                    *port,
                    &format!(
                        "UPDATE bindspace.artifact_chunks c
                         SET data = set_byte(c.data, ({at} % a.chunk_size)::int,
                                             get_byte(c.data, ({at} % a.chunk_size)::int) # {x})
                         FROM bindspace.artifacts a
                         WHERE a.timeline = c.timeline AND a.kind = c.kind
                           AND a.first_version = c.first_version AND a.last_version = c.last_version
                           AND a.kind = '{kind}' AND a.first_version = {first}
                           AND a.last_version = {last} AND c.seq = {at} / a.chunk_size"
                    ),
                );
            }
        }
    }

    /// Removes `r` from the store behind bindspace's back.
    async fn remove(&mut self, r: &ArtifactRef) {
        match self {
            Raw::Object(s) => s.object_store().delete(&s.object_path(r)).await.unwrap(),
            Raw::Redis(s, con) => {
                // evicted: the metadata key and the first chunk
                let meta = s.meta_key(r.id);
                let prefix: String = redis::cmd("HGET")
                    .arg(&meta)
                    .arg("chunk_prefix")
                    .query_async(con)
                    .await
                    .unwrap();
                let chunk0 = format!("{prefix}0");
                let n: u64 = redis::cmd("DEL")
                    .arg(&meta)
                    .arg(&chunk0)
                    .query_async(con)
                    .await
                    .unwrap();
                assert_eq!(n, 2, "{meta} and {chunk0}");
            }
            Raw::Postgres { psql, port } => {
                let (kind, first, last) = pg_key(r);
                sql(
                    psql,
                    *port,
                    &format!(
                        "DELETE FROM bindspace.artifacts WHERE kind = '{kind}'
                         AND first_version = {first} AND last_version = {last}"
                    ),
                );
            }
        }
    }
}

fn pg_key(r: &ArtifactRef) -> (&'static str, u64, u64) {
    let (first, last) = r.id.versions();
    let kind = match r.id.kind() {
        ArtifactKind::Snapshot => "snapshot",
        ArtifactKind::Delta => "delta",
        ArtifactKind::WalSegment => "wal",
    };
    (kind, first, last)
}

fn sql(psql: &Path, port: u16, statement: &str) {
    let out = Command::new(psql)
        .args([
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
        ])
        .arg(port.to_string())
        .args(["-d", "postgres", "-c", statement])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deltas and WAL segments `store` holds (an S3 store's fulls are Lance datasets,
/// damaged differently; every store kind holds these two).
async fn candidates(store: &Arc<dyn BackupStore>) -> Vec<ArtifactRef> {
    let mut v = store.list(ArtifactKind::Delta, 0, u64::MAX).await.unwrap();
    v.extend(
        store
            .list(ArtifactKind::WalSegment, 0, u64::MAX)
            .await
            .unwrap(),
    );
    v
}

#[test]
fn damage_and_loss_in_each_real_store_kind_is_named_repaired_and_restores_exactly() {
    let Some(srv) = common::real_servers() else {
        return;
    };
    let mut rng = SeedRng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let pg = Server::postgres(srv.pg_bin.as_ref(), dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (redis_url, con) = common::own_redis_db(&rt, &srv.redis, 6);
    let local = dir.path().join("local");
    let urls = [
        format!("file://{}", local.display()),
        format!("{}/{}", srv.s3.trim_end_matches('/'), unique_name("chaos")),
        redis_url.clone(),
        pg.url.clone(),
    ];
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let mut b = Engine::builder(dir.path().join("data"))
        .config(BackupConfig {
            fingerprint_words: 4,
            address_space: 256,
            background_jobs: false,
            sync: "never".into(),
            wal_segment_bytes: 1 << 10,
            ..BackupConfig::default()
        })
        .clock(clock.clone());
    for u in &urls {
        b = b.store_url(u);
    }
    let engine = b.open().unwrap();
    let mut states = Vec::new();
    for v in 1..=90u64 {
        engine
            .write(
                Addr((v * 11 % 256) as u16),
                Fingerprint::from_words(vec![v; 4]),
            )
            .unwrap();
        clock.advance(1_000);
        match v {
            15 => drop(engine.backup_now(BackupKind::Full).unwrap()),
            25 | 35 | 50 | 65 | 80 => drop(engine.backup_now(BackupKind::Incremental).unwrap()),
            40 => drop(engine.restore_point("chaos", true).unwrap()),
            _ => {}
        }
        states.push((engine.version(), engine.read(|s| s.digest())));
    }
    engine.archive_now().unwrap();
    let repo = engine.repository().clone();
    let stores = repo.destinations().to_vec();
    let mut raw = [
        Raw::Object(ObjectBackupStore::from_url(&urls[0], StoreOptions::default()).unwrap()),
        Raw::Object(ObjectBackupStore::from_url(&urls[1], StoreOptions::default()).unwrap()),
        Raw::Redis(
            rt.block_on(RedisBackupStore::connect(
                &redis_url,
                RedisOptions::default(),
            ))
            .unwrap(),
            con,
        ),
        Raw::Postgres {
            psql: Path::new(&srv.pg_bin).join("psql"),
            port: pg.port,
        },
    ];

    // healthy first: clean at every level on every store kind (deep: restore points
    // and backups restored and checked against their roots)
    for level in [
        VerifyLevel::Checksum,
        VerifyLevel::Standard,
        VerifyLevel::Deep,
    ] {
        let r = rt
            .block_on(verify(
                &repo,
                clock.as_ref(),
                &VerifyOptions {
                    level,
                    ..VerifyOptions::default()
                },
            ))
            .unwrap();
        assert_eq!(r.outcome(), Outcome::Clean, "{level}: {r}");
        assert!(r.stores.iter().all(|s| s.checked + s.fresh >= 8), "{r}");
    }

    // a different artifact per store, so each is intact in the three others
    // what some restorable state needs (the WAL up to the first full restores nothing:
    // there is no base below it, and verify rightly does not miss it)
    let mut pool = rt.block_on(candidates(&stores[0]));
    pool.retain(|r| r.id.versions().1 > 15);
    assert!(pool.len() >= 8, "{pool:?}");
    let mut pick = |rng: &mut SeedRng| pool.swap_remove(rng.below(pool.len() as u64) as usize);
    for round in ["damaged", "deleted"] {
        let mut hit = Vec::new();
        for (i, r) in raw.iter_mut().enumerate() {
            let a = pick(&mut rng);
            assert!(
                rt.block_on(candidates(&stores[i])).contains(&a),
                "{} holds {}",
                stores[i].name(),
                a.id
            );
            if round == "damaged" {
                let (at, x) = (rng.below(a.len), 1 + rng.below(255) as u8);
                eprintln!("{}: {} byte {at} ^= {x:#x}", stores[i].name(), a.id);
                rt.block_on(r.flip(&a, at, x));
            } else {
                eprintln!("{}: {} deleted", stores[i].name(), a.id);
                rt.block_on(r.remove(&a));
            }
            hit.push(a);
        }
        clock.advance(31 * 86_400 * 1_000_000); // everything due again
        let found = rt
            .block_on(verify(&repo, clock.as_ref(), &VerifyOptions::default()))
            .unwrap();
        assert_eq!(found.outcome(), Outcome::DamageFound, "{round}: {found}");
        for (s, a) in found.stores.iter().zip(&hit) {
            let named = s
                .damaged
                .iter()
                .chain(&s.missing)
                .any(|f| f.artifact == a.id.to_string())
                || found.wal_gaps.iter().any(|g| {
                    let (first, last) = a.id.versions();
                    g.store == s.store && g.first <= last && g.last >= first
                });
            assert!(named, "{round}: {} not named in {}: {found}", a.id, s.store);
        }
        let healed = rt
            .block_on(verify(
                &repo,
                clock.as_ref(),
                &VerifyOptions {
                    repair: true,
                    recheck: Duration::ZERO,
                    ..VerifyOptions::default()
                },
            ))
            .unwrap();
        assert_eq!(healed.outcome(), Outcome::AllRepaired, "{round}: {healed}");
        for (s, a) in healed.stores.iter().zip(&hit) {
            assert!(
                s.repaired.iter().any(|d| d.starts_with(&a.id.to_string())),
                "{round}: {} not healed in {}: {healed}",
                a.id,
                s.store
            );
        }
        let clean = rt
            .block_on(verify(
                &repo,
                clock.as_ref(),
                &VerifyOptions {
                    recheck: Duration::ZERO,
                    ..VerifyOptions::default()
                },
            ))
            .unwrap();
        assert_eq!(clean.outcome(), Outcome::Clean, "{round}: {clean}");
        // every fifth recorded state from the full on, from each store alone
        for store in &stores {
            for (v, want) in states.iter().filter(|(v, _)| *v >= 15 && v % 5 == 0) {
                let (space, _) = rt
                    .block_on(bindspace_pitr::restore_to(
                        vec![store.clone()],
                        &Target::Version(*v),
                    ))
                    .unwrap();
                assert_eq!(&space.digest(), want, "{round}: {v} from {}", store.name());
            }
        }
    }
    // the catalogs Redis and PostgreSQL keep (one generation each) damaged: writes
    // refuse naming the repair (review: they said only "invalid manifest"), reads use
    // the other stores' catalogs, and the repair rebuilds both from them
    let [_, _, Raw::Redis(_, con), Raw::Postgres { psql, port }] = &mut raw else {
        panic!("the stores are in the order above")
    };
    let _: () = rt
        .block_on(
            redis::cmd("SETRANGE")
                .arg(RedisOptions::default().prefix + "catalog:manifest")
                .arg(40)
                .arg(&b"\xde\xad"[..])
                .query_async(con),
        )
        .unwrap();
    sql(
        psql,
        *port,
        "UPDATE bindspace.catalog SET manifest = set_byte(manifest, 40, get_byte(manifest, 40) # 90)",
    );
    let before = engine.version();
    let e = engine
        .restore_point("refused", false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("verify --repair"), "{e}");
    assert_eq!(engine.version(), before, "refused before its WAL record");
    // refused means refused everywhere: no store's catalog records it (review: the
    // stores before the refusing one had committed it)
    for s in &stores[..2] {
        let m = rt.block_on(s.read_manifest()).unwrap().unwrap().1;
        assert!(
            m.restore_points.iter().all(|p| p.name != "refused"),
            "{} records the refused point",
            s.name()
        );
    }
    let (m, warning) = rt.block_on(repo.read_catalog()).unwrap();
    assert!(m.restore_points.iter().any(|p| p.name == "chaos"));
    assert!(
        warning.is_none(),
        "the primary's catalog is intact: {warning:?}"
    );
    clock.advance(31 * 86_400 * 1_000_000);
    let healed = rt
        .block_on(verify(
            &repo,
            clock.as_ref(),
            &VerifyOptions {
                repair: true,
                ..VerifyOptions::default()
            },
        ))
        .unwrap();
    assert_eq!(healed.outcome(), Outcome::AllRepaired, "{healed}");
    for s in &healed.stores[2..] {
        assert!(
            s.catalog.is_some() && s.catalog_rebuilt.is_some(),
            "{healed}"
        );
    }
    engine.restore_point("after-repair", false).unwrap();

    // and a drill through the engine restores its sentinel from each store kind alone
    let report = engine.drill(&DrillOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.runs.len(), 5, "{report}");
    engine.close().unwrap();
}

/// Every file under `dir`, as paths.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A tmpfs of `size` on `dir`, or `None` (saying why) under a plain `cargo test`
/// without root; under CI or xtask it must mount.
fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Mount(dir.to_path_buf())),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            };
            assert!(!must_not_skip(), "cannot mount a tmpfs: {why}");
            eprintln!("SKIP: cannot mount a tmpfs ({why}); needs root, runs under xtask");
            None
        }
    }
}

#[test]
fn a_full_disk_during_a_backup_commits_nothing_and_the_next_backup_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    // a full of 256 addresses of 156 words is ~320 KiB: one fits, a second does not
    let Some(mount) = tmpfs(&repo_dir, "600k") else {
        return;
    };
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let engine = Engine::builder(dir.path().join("data"))
        .config(BackupConfig {
            address_space: 256,
            background_jobs: false,
            sync: "never".into(),
            ..BackupConfig::default()
        })
        .clock(clock.clone())
        .store_url(format!("file://{}", repo_dir.display()))
        .open()
        .unwrap();
    let fill = |round: u64| {
        for a in 0..256u64 {
            engine
                .write(
                    Addr(a as u16),
                    Fingerprint::from_words(vec![a ^ round; 156]),
                )
                .unwrap();
        }
        clock.advance(1_000);
    };
    fill(1);
    engine.backup_now(BackupKind::Full).unwrap();
    fill(2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = engine.repository().destinations()[0].clone();
    let before = rt.block_on(store.read_manifest()).unwrap().unwrap().1;
    let err = engine.backup_now(BackupKind::Full).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.to_lowercase().contains("no space") || msg.contains("ENOSPC") || msg.contains("full"),
        "{msg}"
    );
    // nothing committed: the catalog names what it named before, and every backup it
    // names still restores
    let after = rt.block_on(store.read_manifest()).unwrap().unwrap().1;
    assert_eq!(before.entries, after.entries, "{msg}");
    // and nothing half-written is left taking the room: the one full's file alone
    let left: Vec<String> = walk(&repo_dir)
        .into_iter()
        .filter(|p| !p.contains("/catalog/") && !p.contains("/wal/") && !p.contains("/locks/"))
        .collect();
    eprintln!("{msg}\n{left:#?}");
    assert_eq!(left.len(), 1, "{left:?}");
    // room again: the next backup succeeds and restores exactly
    let st = Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(&mount.0)
        .status()
        .unwrap();
    assert!(st.success());
    let want = engine.read(|s| s.digest());
    let id = engine.backup_now(BackupKind::Full).unwrap();
    engine.archive_now().unwrap();
    let (space, _) = rt
        .block_on(bindspace_pitr::restore_to(
            vec![store.clone()],
            &Target::Version(engine.version()),
        ))
        .unwrap();
    assert_eq!(space.digest(), want, "backup {id:?}");
    engine.close().unwrap();
}

#[test]
fn an_s3_server_frozen_during_a_drill_is_reported_unavailable_and_the_others_still_restore() {
    let Some(moto) = service_env("BINDSPACE_MOTO_SERVER", "moto_server binary") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // a private server, so freezing it stops no other test
    let server = Server::moto(moto.as_ref(), dir.path(), &["frozen"]).unwrap();
    let s3 = common::moto_store(&server.url, "s3://frozen/repo", Duration::from_secs(2));
    let local = dir.path().join("local");
    let clock = Arc::new(SystemClock);
    let engine = Engine::builder(dir.path().join("data"))
        .config(BackupConfig {
            fingerprint_words: 4,
            address_space: 256,
            background_jobs: false,
            sync: "never".into(),
            ..BackupConfig::default()
        })
        .clock(clock.clone())
        .store_url(format!("file://{}", local.display()))
        .store(Arc::new(s3))
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
    // the canary as Engine::drill writes it; the server freezes before the restores
    let version = engine.restore_point("canary", true).unwrap();
    engine.archive_now().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(engine.repository().manifest()).unwrap();
    let point = m
        .restore_points
        .iter()
        .find(|p| p.name == "canary")
        .unwrap();
    let sentinel = Sentinel {
        name: "canary".into(),
        version,
        timeline: point.timeline,
        root: point.root.clone().unwrap_or_default(),
        created_us: clock.now_us(),
    };
    let repo = engine.repository().clone();
    server.freeze();
    let opts = DrillOptions {
        source_timeout: Duration::from_secs(8),
        ..DrillOptions::default()
    };
    #[allow(clippy::disallowed_methods)]
    // the test bounds real time: a frozen server must not stall it
    let started = Instant::now();
    let report = rt.block_on(drill(&repo, clock.as_ref(), &opts, Some(sentinel)));
    let took = started.elapsed();
    server.thaw();
    let report = report.unwrap();
    assert!(!report.passed(), "{report}");
    let by = |name: &str| {
        report
            .runs
            .iter()
            .find(|r| r.source.contains(name))
            .unwrap()
    };
    assert_eq!(by("s3://").status, "unavailable", "{report}");
    assert!(
        by("s3://").rto_ms <= 8_000,
        "within the source timeout: {report}"
    );
    assert_eq!(by("file://").status, "restored", "{report}");
    assert_eq!(by("file://").sentinel, Some(true), "{report}");
    assert_eq!(by("all stores").status, "restored", "{report}");
    assert!(
        report.missed.iter().any(|m| m.contains("s3://")),
        "{report}"
    );
    // each source within its timeout, and the whole drill within a bound of them
    assert!(took < Duration::from_secs(3 * 8 + 10), "{took:?}: {report}");
    // the report is kept where it could be written
    let m = rt
        .block_on(repo.destinations()[0].read_manifest())
        .unwrap()
        .unwrap()
        .1;
    assert_eq!(history(&m).len(), 1);
    engine.close().unwrap();
}
