//! Many spaces in one repository (issue 19): engines in separate processes write their
//! own spaces of one repository, on a local directory, S3 (moto), a Redis Cluster and
//! PostgreSQL at once: one alone, two more concurrently, then seventeen more
//! concurrently. Each space restores its own history exactly from each store alone;
//! the lease, retention and verify of one never touch another; and listing one space
//! makes the same store calls and reads the same bytes whether the repository holds
//! one space or twenty.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: a panic is the report; real processes on the wall clock

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{ArtifactKind, BackupKind, BackupStore, Repository, SpaceName};
use bindspace_core::workload::Workload;
use bindspace_core::{Clock, SystemClock};
use bindspace_pitr::Target;
use bindspace_testkit::{service_env, unique_name};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use object_store::path::Path as OsPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

mod common;

const CHILD_ENV: &str = "BINDSPACE_SPACES_CHILD";
const WORDS: u16 = 8;
const ADDRS: u32 = 256;

fn config(dests: Vec<String>, space: &str) -> BackupConfig {
    BackupConfig {
        fingerprint_words: WORDS,
        address_space: ADDRS,
        destinations: dests,
        background_jobs: false,
        sync: "never".into(),
        space: space.into(),
        ..BackupConfig::default()
    }
}

/// One engine's run, in its own process: a full, four rounds of writes each backed up
/// (incrementals, and a second full in the third round), a guaranteed restore point,
/// writes only the WAL holds; it prints
/// `STATE version digest` for every state the parent will restore.
#[test]
fn space_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // only as a child of the test below
    };
    let mut parts = spec.split('|');
    let (dir, space, seed) = (
        PathBuf::from(parts.next().unwrap()),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().parse::<u64>().unwrap(),
    );
    let dests: Vec<String> = parts.map(String::from).collect();
    let engine = Engine::open(&dir, config(dests, &space)).unwrap();
    let state = |e: &Engine| println!("STATE {} {}", e.version(), e.read(|s| s.digest()));
    // how long the backups took, for the figures (docs/BENCHMARKS.md)
    let (mut backups, mut backup_us) = (0u64, 0u128);
    let mut backup = |e: &Engine, kind| {
        let t = std::time::Instant::now();
        e.backup_now(kind).unwrap();
        backup_us += t.elapsed().as_micros();
        backups += 1;
    };
    backup(&engine, BackupKind::Full);
    state(&engine);
    let mut w = Workload::new(seed, engine.read(|s| s.schema()));
    for round in 0..4 {
        for _ in 0..40 {
            let op = engine.read(|s| w.next_op(s));
            engine.apply(vec![op.into()]).unwrap();
        }
        // a second full in the third round: retention has a chain to delete
        let kind = if round == 2 {
            BackupKind::Full
        } else {
            BackupKind::Incremental
        };
        backup(&engine, kind);
        state(&engine);
        if round == 2 {
            let v = engine.restore_point("mid", true).unwrap();
            println!("POINT {v} {}", engine.read(|s| s.digest()));
            state(&engine);
        }
    }
    for _ in 0..25 {
        let op = engine.read(|s| w.next_op(s));
        engine.apply(vec![op.into()]).unwrap();
    }
    state(&engine);
    engine.close().unwrap(); // archives the rest of the WAL
    println!("BACKUPS {backups} {backup_us}");
    println!("DONE");
}

/// Starts the engine of `space` in its own process.
fn spawn(root: &Path, space: &str, seed: u64, dests: &[String]) -> Child {
    let dir = root.join(space);
    let mut spec = format!("{}|{space}|{seed}", dir.display());
    for d in dests {
        spec.push('|');
        spec.push_str(d);
    }
    Command::new(std::env::current_exe().unwrap())
        .args(["space_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Backups the children made, and the µs they took (summed over processes).
static BACKUPS: AtomicU64 = AtomicU64::new(0);
static BACKUP_US: AtomicU64 = AtomicU64::new(0);

fn take_backups() -> (u64, u64) {
    (
        BACKUPS.swap(0, Ordering::Relaxed),
        BACKUP_US.swap(0, Ordering::Relaxed),
    )
}

/// Waits for a child; the states it recorded (version → digest).
fn states(mut child: Child, space: &str) -> BTreeMap<u64, String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut states = BTreeMap::new();
    let mut done = false;
    for l in out.lines().map_while(Result::ok) {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["STATE", v, d] => {
                states.insert(v.parse().unwrap(), d.to_string());
            }
            // the restore point, under version 0 (which no other state has: the
            // full is taken after the log's first version)
            ["POINT", v, d] => {
                states.insert(v.parse().unwrap(), d.to_string());
                states.insert(0, d.to_string());
            }
            ["BACKUPS", n, us] => {
                BACKUPS.fetch_add(n.parse().unwrap(), Ordering::Relaxed);
                BACKUP_US.fetch_add(us.parse().unwrap(), Ordering::Relaxed);
            }
            ["DONE"] => done = true,
            _ => {}
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success() && done,
        "the engine of {space} failed: {status}"
    );
    assert!(states.len() >= 6, "{space}: {states:?}");
    states
}

/// Counts what an object store is asked and the bytes it returns.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    calls: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl Counting {
    fn new(inner: Arc<dyn ObjectStore>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            calls: Arc::default(),
            bytes: Arc::default(),
        })
    }
    fn tally(&self, bytes: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn take(&self) -> (u64, u64) {
        (
            self.calls.swap(0, Ordering::Relaxed),
            self.bytes.swap(0, Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &OsPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.tally(0);
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &OsPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.tally(0);
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &OsPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let r = self.inner.get_opts(location, options).await?;
        self.tally(r.range.end - r.range.start);
        Ok(r)
    }
    async fn get_ranges(
        &self,
        location: &OsPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await?;
        self.tally(r.iter().map(|b| b.len() as u64).sum());
        Ok(r)
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<OsPath>>,
    ) -> BoxStream<'static, object_store::Result<OsPath>> {
        self.tally(0);
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&OsPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.tally(0);
        // every entry listed counts as its key's bytes read
        let bytes = self.bytes.clone();
        self.inner
            .list(prefix)
            .inspect_ok(move |m| {
                bytes.fetch_add(m.location.as_ref().len() as u64, Ordering::Relaxed);
            })
            .boxed()
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&OsPath>,
    ) -> object_store::Result<ListResult> {
        let r = self.inner.list_with_delimiter(prefix).await?;
        self.tally(
            r.objects
                .iter()
                .map(|m| m.location.as_ref().len() as u64)
                .chain(r.common_prefixes.iter().map(|p| p.as_ref().len() as u64))
                .sum(),
        );
        Ok(r)
    }
    async fn copy_opts(
        &self,
        from: &OsPath,
        to: &OsPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.tally(0);
        self.inner.copy_opts(from, to, options).await
    }
}

/// What listing one space costs on one store: its catalog and every listing, counted
/// at the object store's requests (object stores, where a listing could walk other
/// spaces' objects) and at the store's calls (entries listed, catalog bytes).
#[derive(Debug, PartialEq, Eq)]
struct Cost {
    requests: u64,
    bytes: u64,
    listed: usize,
    catalog_bytes: usize,
}

async fn listing_cost(store: &dyn BackupStore, counter: Option<&Counting>) -> Cost {
    if let Some(c) = counter {
        c.take();
    }
    let (g, m) = store.read_manifest().await.unwrap().unwrap();
    let mut listed = 0;
    for k in ArtifactKind::ALL {
        listed += store.list(k, 0, u64::MAX).await.unwrap().len();
    }
    let (requests, bytes) = counter.map_or((0, 0), Counting::take);
    Cost {
        requests,
        bytes,
        listed,
        catalog_bytes: m.encode(g).len(),
    }
}

/// The object-store destinations of `space` over a counting object store.
fn counted(url: &str, space: &SpaceName) -> (Arc<dyn BackupStore>, Arc<Counting>) {
    let plain = bindspace_store_s3::ObjectBackupStore::from_url(url, Default::default()).unwrap();
    let counter = Counting::new(plain.object_store());
    let store = bindspace_store_s3::ObjectBackupStore::new(
        counter.clone(),
        plain.root().clone(),
        url,
        Default::default(),
    )
    .in_space(space);
    #[cfg(feature = "lance")]
    if url.starts_with("s3://") {
        return (
            Arc::new(bindspace_store_s3::LanceBackupStore::new(store)),
            counter,
        );
    }
    (Arc::new(store), counter)
}

/// A space's store to list, and the counter of its object store requests.
type Probe = (Arc<dyn BackupStore>, Option<Arc<Counting>>);

/// Every artifact of `space` on every destination.
async fn artifacts(urls: &[String], space: &SpaceName) -> Vec<Vec<bindspace_catalog::ArtifactRef>> {
    let mut out = Vec::new();
    for u in urls {
        let s = bindspace::stores::open_in(u, space, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let mut all = Vec::new();
        for k in ArtifactKind::ALL {
            all.extend(s.list(k, 0, u64::MAX).await.unwrap());
        }
        out.push(all);
    }
    out
}

/// Restores every recorded state of `space` from each destination alone.
async fn check_restores(urls: &[String], space: &SpaceName, states: &BTreeMap<u64, String>) {
    for u in urls {
        let store = bindspace::stores::open_in(u, space, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let stores = [store];
        for (&v, want) in states.range(1..) {
            let (got, _) = bindspace_pitr::restore_to(stores.as_slice(), &Target::Version(v))
                .await
                .unwrap_or_else(|e| panic!("{space} from {u} at {v}: {e}"));
            assert_eq!(got.version(), v, "{space} from {u}");
            assert_eq!(&got.digest().to_string(), want, "{space} from {u} at {v}");
        }
        // the guaranteed restore point, by name
        let (got, _) =
            bindspace_pitr::restore_to(stores.as_slice(), &Target::RestorePoint("mid".into()))
                .await
                .unwrap();
        let want = &states[&0];
        assert_eq!(
            &got.digest().to_string(),
            want,
            "{space} from {u}: restore point"
        );
    }
}

#[test]
fn twenty_engines_share_one_repository_and_each_restores_its_own_history() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let (Some(s3), Some(cluster), Some(pg)) = (
        service_env("BINDSPACE_TEST_S3_URL", "an S3 server"),
        service_env("BINDSPACE_TEST_REDIS_CLUSTER_URL", "a Redis Cluster"),
        service_env("BINDSPACE_TEST_PG_URL", "a PostgreSQL server"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = format!("file://{}", tmp.path().join("repo").display());
    let urls = vec![
        local.clone(),
        format!("{}/{}", s3.trim_end_matches('/'), unique_name("spaces")),
        cluster,
        pg,
    ];
    // the Redis Cluster and PostgreSQL are shared with other tests: this run's spaces
    // carry its own name
    let run = unique_name("sp").replace('_', "-").to_lowercase();
    let names: Vec<SpaceName> = (0..20)
        .map(|i| SpaceName::new(&format!("{run}-{i:02}")).unwrap())
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut states = BTreeMap::new();

    // one space: what listing it costs
    let t = std::time::Instant::now();
    let first = spawn(tmp.path(), names[0].as_str(), 100, &urls);
    states.insert(0, states_of(first, &names[0]));
    let (alone_n, alone_us) = take_backups();
    let alone_wall = t.elapsed();
    let probes: Vec<Probe> = urls
        .iter()
        .map(|u| {
            if u.starts_with("file://") || u.starts_with("s3://") {
                let (s, c) = counted(u, &names[0]);
                (s, Some(c))
            } else {
                let s = rt
                    .block_on(bindspace::stores::open_in(
                        u,
                        &names[0],
                        std::time::Duration::from_secs(30),
                    ))
                    .unwrap();
                (s, None)
            }
        })
        .collect();
    let cost = |rt: &tokio::runtime::Runtime| -> Vec<Cost> {
        probes
            .iter()
            .map(|(s, c)| rt.block_on(listing_cost(s.as_ref(), c.as_deref())))
            .collect()
    };
    let alone = cost(&rt);
    let before: Vec<_> = rt.block_on(artifacts(&urls, &names[0]));

    // two more spaces written concurrently, then seventeen more: each engine in its
    // own process
    let together = |range: std::ops::Range<usize>, states: &mut BTreeMap<usize, _>| {
        let children: Vec<_> = range
            .map(|i| {
                (
                    i,
                    spawn(tmp.path(), names[i].as_str(), 100 + i as u64, &urls),
                )
            })
            .collect();
        for (i, c) in children {
            states.insert(i, states_of(c, &names[i]));
        }
    };
    together(1..3, &mut states);
    for i in 0..3 {
        rt.block_on(check_restores(&urls, &names[i], &states[&i]));
    }
    take_backups();
    let t = std::time::Instant::now();
    together(3..20, &mut states);
    let wall = t.elapsed();
    let (n, us) = take_backups();
    eprintln!(
        "FIGURES one engine alone: {alone_n} backups in {alone_wall:?} ({:.1} backups/s), {:.1} ms each; \
         17 engines concurrently: {n} backups in {wall:?} ({:.1} backups/s), {:.1} ms each",
        alone_n as f64 / alone_wall.as_secs_f64(),
        alone_us as f64 / alone_n as f64 / 1000.0,
        n as f64 / wall.as_secs_f64(),
        us as f64 / n as f64 / 1000.0,
    );

    // each space restores its own history exactly, from each store alone
    for (i, s) in states.range(3..) {
        rt.block_on(check_restores(&urls, &names[*i], s));
    }
    // the first space's listing costs what it did when it was alone
    let with_twenty = cost(&rt);
    eprintln!("listing one space: alone {alone:?}; beside 19 others {with_twenty:?}");
    assert_eq!(alone, with_twenty);
    assert!(alone[0].requests > 0 && alone[1].requests > 0, "{alone:?}");
    // and every store lists this run's twenty spaces
    for u in &urls {
        let conn = rt
            .block_on(bindspace::stores::Connection::open(
                u,
                std::time::Duration::from_secs(30),
            ))
            .unwrap();
        // a space only opened (a mistyped name: on PostgreSQL that creates its
        // schema) is not listed
        let typo = SpaceName::new(&format!("{run}-typo")).unwrap();
        let opened = rt.block_on(conn.space(&typo)).unwrap();
        assert!(rt.block_on(opened.read_manifest()).unwrap().is_none());
        let listed = rt.block_on(conn.spaces()).unwrap();
        for n in &names {
            assert!(listed.contains(n), "{u} does not list {n}: {listed:?}");
        }
        assert!(!listed.contains(&typo), "{u} lists a space never written");
    }

    // leases are per space: one held in the second space leaves the first free
    let now = SystemClock.now_us();
    for u in &urls {
        let open = |n: &SpaceName| {
            rt.block_on(bindspace::stores::open_in(
                u,
                n,
                std::time::Duration::from_secs(30),
            ))
            .unwrap()
        };
        let (a, b) = (open(&names[0]), open(&names[1]));
        let held = rt
            .block_on(b.acquire_lease("test", now, 60_000_000))
            .unwrap();
        let mine = rt
            .block_on(a.acquire_lease("test", now, 60_000_000))
            .unwrap_or_else(|e| panic!("{u}: another space's lease blocked this one: {e}"));
        let again = rt.block_on(b.acquire_lease("other", now, 60_000_000));
        assert!(again.is_err(), "{u}: the lease of a space still excludes");
        rt.block_on(a.release_lease(&mine)).unwrap();
        rt.block_on(b.release_lease(&held)).unwrap();
    }

    // retention of the second space deletes in it alone
    let repo_of = |n: &SpaceName| {
        let stores = rt
            .block_on(bindspace::stores::open_all_in(
                &urls,
                n,
                std::time::Duration::from_secs(30),
            ))
            .unwrap();
        Repository::new(stores, Arc::new(SystemClock), "spaces test").unwrap()
    };
    let policy = bindspace_catalog::RetentionPolicy {
        keep_all_within_us: 0,
        max_count: Some(1),
        ..Default::default()
    };
    let second_before = rt.block_on(artifacts(&urls, &names[1]));
    let (_, deleted) = rt
        .block_on(repo_of(&names[1]).apply_retention(&policy, SystemClock.now_us()))
        .unwrap();
    assert!(deleted > 0, "retention deleted nothing of the second space");
    assert_ne!(rt.block_on(artifacts(&urls, &names[1])), second_before);
    assert_eq!(
        rt.block_on(artifacts(&urls, &names[0])),
        before,
        "retention of another space touched the first"
    );
    // verify: each space is clean, and checks its own artifacts only
    for n in &names[..2] {
        let report = rt
            .block_on(bindspace_dr::verify(
                &repo_of(n),
                &SystemClock,
                &bindspace_dr::VerifyOptions::default(),
            ))
            .unwrap();
        assert_eq!(
            report.outcome(),
            bindspace_dr::Outcome::Clean,
            "{n}: {report}"
        );
        let own: usize = rt.block_on(artifacts(&urls, n)).iter().map(Vec::len).sum();
        let checked: usize = report.stores.iter().map(|s| s.checked).sum();
        assert!(
            checked > 0 && checked <= own,
            "{n}: checked {checked} artifacts, and it holds {own}"
        );
    }
    rt.block_on(check_restores(&urls, &names[0], &states[&0]));
}

fn states_of(child: Child, space: &SpaceName) -> BTreeMap<u64, String> {
    states(child, space.as_str())
}

#[test]
fn a_data_directory_keeps_the_space_it_writes() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let dir = tmp.path().join("data");
    let e = Engine::open(&dir, config(vec![repo.clone()], "orders")).unwrap();
    e.write(
        bindspace_core::Addr(1),
        bindspace_core::Fingerprint::from_words(vec![7; 8]),
    )
    .unwrap();
    e.backup_now(BackupKind::Full).unwrap();
    e.close().unwrap();
    // its history is in the space orders: opening it as another space is refused
    // before anything is written there
    let err = Engine::open(&dir, config(vec![repo.clone()], "billing"))
        .map(|_| ())
        .expect_err("another space is refused");
    assert!(err.to_string().contains("\"orders\""), "{err}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let billing = rt
        .block_on(bindspace::stores::open_in(
            &repo,
            &SpaceName::new("billing").unwrap(),
            std::time::Duration::from_secs(30),
        ))
        .unwrap();
    assert!(rt.block_on(billing.read_manifest()).unwrap().is_none());
    Engine::open(&dir, config(vec![repo.clone()], "orders"))
        .unwrap()
        .close()
        .unwrap();
    // a directory written before spaces (a timeline, no space file) wrote `default`
    std::fs::remove_file(dir.join("space")).unwrap();
    let err = Engine::open(&dir, config(vec![repo.clone()], "orders"))
        .map(|_| ())
        .expect_err("a directory from before spaces wrote the space default");
    assert!(err.to_string().contains("\"default\""), "{err}");
    // and a bad name is refused as configuration
    let err = Engine::open(tmp.path().join("new"), config(vec![repo], "Not A Name"))
        .map(|_| ())
        .expect_err("a bad space name");
    assert!(err.to_string().contains("not a space name"), "{err}");
}

/// An engine of `space` writes a history with two fulls; its states by version.
fn write_history(dir: &Path, dests: &[String], space: &str, seed: u64) -> BTreeMap<u64, String> {
    let engine = Engine::open(dir, config(dests.to_vec(), space)).unwrap();
    let mut w = Workload::new(seed, engine.read(|s| s.schema()));
    let mut states = BTreeMap::new();
    for kind in [
        BackupKind::Full,
        BackupKind::Incremental,
        BackupKind::Full,
        BackupKind::Incremental,
    ] {
        for _ in 0..30 {
            let op = engine.read(|s| w.next_op(s));
            engine.apply(vec![op.into()]).unwrap();
        }
        engine.backup_now(kind).unwrap();
        states.insert(engine.version(), engine.read(|s| s.digest()).to_string());
    }
    engine.close().unwrap();
    states
}

#[test]
fn the_default_space_beside_a_named_one_keeps_to_itself() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    // the root space and a named one on one local directory and one Redis server
    // (where `default` keeps the seed's `ladybug:` beside `ladybug:{named}:`); the
    // named space also writes a second directory, the default's replica
    let Some(redis) = service_env("BINDSPACE_TEST_REDIS_URL", "a Redis server") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (redis, _con) = common::own_redis_db(&rt, &redis, 10);
    let local = format!("file://{}", tmp.path().join("repo").display());
    let replica = format!("file://{}", tmp.path().join("replica").display());
    let named = SpaceName::new("named").unwrap();
    let root = SpaceName::default();
    write_history(
        &tmp.path().join("a"),
        &[local.clone(), redis.clone()],
        "default",
        1,
    );
    let states = write_history(
        &tmp.path().join("b"),
        &[local.clone(), redis.clone(), replica.clone()],
        named.as_str(),
        2,
    );
    let all = vec![local.clone(), redis.clone(), replica.clone()];
    let before = rt.block_on(artifacts(&all, &named));
    let open_all = |urls: &[String], space: &SpaceName| {
        rt.block_on(bindspace::stores::open_all_in(
            urls,
            space,
            std::time::Duration::from_secs(30),
        ))
        .unwrap()
    };
    // retention, verify --repair and a pruning replication of the root space
    let repo = Repository::new(open_all(&all[..2], &root), Arc::new(SystemClock), "test").unwrap();
    let policy = bindspace_catalog::RetentionPolicy {
        keep_all_within_us: 0,
        max_count: Some(1),
        ..Default::default()
    };
    let (_, deleted) = rt
        .block_on(repo.apply_retention(&policy, SystemClock.now_us()))
        .unwrap();
    assert!(deleted > 0, "retention of the root space deleted nothing");
    let report = rt
        .block_on(bindspace_dr::verify(
            &repo,
            &SystemClock,
            &bindspace_dr::VerifyOptions {
                repair: true,
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(report.outcome(), bindspace_dr::Outcome::Clean, "{report}");
    let mut follower = bindspace_dr::Follower::new(
        open_all(&all[..1], &root).remove(0),
        open_all(&all[2..], &root).remove(0),
        bindspace_dr::ReplicateOptions {
            prune: true,
            ..Default::default()
        },
    );
    rt.block_on(follower.run(&SystemClock, &mut || true))
        .unwrap();
    // the named space: every artifact where it was, every state restores
    assert_eq!(
        rt.block_on(artifacts(&all, &named)),
        before,
        "the root space's retention, repair or pruning touched a named space"
    );
    for u in &all {
        let store = rt
            .block_on(bindspace::stores::open_in(
                u,
                &named,
                std::time::Duration::from_secs(30),
            ))
            .unwrap();
        let stores = [store];
        for (&v, want) in &states {
            let (got, _) = rt
                .block_on(bindspace_pitr::restore_to(
                    stores.as_slice(),
                    &Target::Version(v),
                ))
                .unwrap_or_else(|e| panic!("{u} at {v}: {e}"));
            assert_eq!(&got.digest().to_string(), want, "{u} at {v}");
        }
    }
    // and the root space's own listing holds none of the named space's artifacts
    let root_listed = rt.block_on(artifacts(&all[..2], &root));
    for (mine, theirs) in root_listed.iter().zip(&before) {
        for r in mine {
            assert!(
                !theirs.contains(r),
                "the root space lists {r:?} of the named one"
            );
        }
    }
}
