//! Every repository command run as a process against the local store, `--json` output
//! parsed and checked; bad arguments and unknown targets; two concurrent backups.
#![allow(clippy::disallowed_methods)] // tests time real servers and processes on the wall clock
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use bindspace::{BackupConfig, Engine};
use bindspace_core::workload::{Op, Workload};
use bindspace_core::{Addr, BindSpace, SchemaVersion};
use serde_json::Value;

fn bindspace(repo: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(args)
        .args(["--repo", repo])
        .output()
        .unwrap()
}

fn json(repo: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = bindspace(repo, &a);
    assert!(
        out.status.success(),
        "bindspace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bindspace {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn fails(repo: &str, args: &[&str], code: i32, needle: &str) {
    let out = bindspace(repo, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "bindspace {args:?}: {err}");
    assert!(err.contains(needle), "bindspace {args:?}: {err}");
    if code != 2 {
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    }
}

const WORDS: u16 = 8;

fn schema() -> SchemaVersion {
    SchemaVersion::CURRENT
        .with_words(WORDS)
        .with_address_space(512)
}

fn cfg(repo: &str) -> BackupConfig {
    BackupConfig {
        fingerprint_words: WORDS,
        address_space: 512,
        destinations: vec![repo.to_owned()],
        background_jobs: false,
        sync: "never".into(),
        wal_segment_bytes: 8 << 10,
        ..BackupConfig::default()
    }
}

/// Writes `n` seeded ops through an engine in `data`; returns the digests by version.
fn write(
    data: &Path,
    repo: &str,
    seed: u64,
    n: usize,
    shadow: &mut BindSpace,
) -> BTreeMap<u64, String> {
    let engine = Engine::open(data, cfg(repo)).unwrap();
    let mut w = Workload::new(seed, schema());
    let mut d = BTreeMap::new();
    for _ in 0..n {
        let op = w.next_op(shadow);
        let v = match &op {
            Op::Write(a, fp) => engine.write(*a, fp.clone()).unwrap(),
            Op::Delete(a) => engine.delete(*a).unwrap(),
        };
        bindspace_testkit::shadow::follow(shadow, &op, v);
        d.insert(v, shadow.digest().to_string());
    }
    engine.close().unwrap();
    d
}

#[test]
fn every_command_as_a_process_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let data = tmp.path().join("data");
    let mut shadow = BindSpace::new(schema()).unwrap();

    assert_eq!(json(&repo, &["init"])["initialized"][0], repo.as_str());
    // each backup logs a WAL checkpoint, which takes a version: versions come from
    // the shadow, not from counting writes
    let mut digests = write(&data, &repo, 1, 300, &mut shadow);
    let v300 = shadow.version();
    let full = json(
        &repo,
        &["backup", "--full", "--data", data.to_str().unwrap()],
    );
    assert_eq!(full["kind"], "full");
    assert_eq!(full["to_version"], v300);
    digests.extend(write(&data, &repo, 2, 200, &mut shadow));
    let v500 = shadow.version();
    let incr = json(
        &repo,
        &["backup", "--incremental", "--data", data.to_str().unwrap()],
    );
    assert_eq!(incr["kind"], "incremental");
    assert_eq!(
        (incr["from_version"].as_u64(), incr["to_version"].as_u64()),
        (Some(v300), Some(v500))
    );
    assert_eq!(incr["parent"], full["id"]);
    digests.extend(write(&data, &repo, 3, 100, &mut shadow));
    let v600 = shadow.version();
    let diff = json(
        &repo,
        &["backup", "--differential", "--data", data.to_str().unwrap()],
    );
    // after a restart the differential is a scan against the restored full
    assert_eq!(diff["kind"], "differential");
    assert_eq!(
        (diff["from_version"].as_u64(), diff["to_version"].as_u64()),
        (Some(v300), Some(v600))
    );
    assert_eq!(diff["parent"], full["id"]);

    let list = json(&repo, &["list"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let id = full["id"].as_str().unwrap();
    assert_eq!(json(&repo, &["show", id])["to_version"], v300);

    // explain and restore to a version between backups: WAL replay
    let mid = v300 + 150;
    let mid_s = mid.to_string();
    let ex = json(&repo, &["explain", "--to-version", &mid_s]);
    assert_eq!(ex["version"], mid);
    assert!(!ex["wal"].as_array().unwrap().is_empty(), "{ex}");
    let out_file = tmp.path().join("at-450.snap");
    let r = json(
        &repo,
        &[
            "restore",
            "--to-version",
            &mid_s,
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(r["version"], mid);
    assert_eq!(r["digest"], digests[&mid].as_str());
    let snap = bindspace_core::snapshot::decode(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(snap.space.digest().to_string(), digests[&mid]);

    // cross-backend: restore the latest into another repository, then from there
    let other = format!("file://{}", tmp.path().join("other").display());
    let r = json(&repo, &["restore", "--latest", "--to", &other]);
    // the differential's WAL checkpoint (same state), archived as the command closed
    assert_eq!(r["version"], v600 + 1);
    let back = json(&other, &["restore", "--latest"]);
    assert_eq!(back["digest"], digests[&v600].as_str());

    // restore points
    let rp = json(
        &repo,
        &[
            "restore-point",
            "create",
            "before-upgrade",
            "--version",
            &v500.to_string(),
            "--guaranteed",
        ],
    );
    assert_eq!(rp["version"], v500);
    assert_eq!(
        json(&repo, &["restore-point", "list"])[0]["name"],
        "before-upgrade"
    );
    let r = json(&repo, &["restore", "--to-point", "before-upgrade"]);
    assert_eq!(r["digest"], digests[&v500].as_str());

    // flashback reads
    let (addr, value) = shadow
        .iter()
        .next()
        .map(|(a, fp)| (a, fp.to_vec()))
        .unwrap();
    let a = addr.0.to_string();
    let asof = json(&repo, &["as-of", &a, "--latest"]);
    let got: Vec<u64> = serde_json::from_value(asof["value"].clone()).unwrap();
    assert_eq!(got, value);
    let hist = json(&repo, &["versions", &a]);
    let last = hist["versions"].as_array().unwrap().last().unwrap().clone();
    let got: Vec<u64> = serde_json::from_value(last["value"].clone()).unwrap();
    assert_eq!(got, value);

    // retention: a dry run deletes nothing; everything is recent, so all are kept
    let ret = json(&repo, &["retention", "apply", "--dry-run"]);
    assert_eq!(ret["delete"].as_array().unwrap().len(), 0);
    assert_eq!(ret["keep"].as_array().unwrap().len(), 3);
    // in words, not Rust debug values
    let human = bindspace(&repo, &["retention", "apply", "--dry-run"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("keep") && text.contains("recent"), "{text}");
    assert!(
        !text.contains("Recent") && !text.contains("Bucket(") && !text.contains("[\""),
        "{text}"
    );

    // compact: a new full at the latest version
    let c = json(&repo, &["compact"]);
    assert_eq!(c["version"], v600 + 1); // the differential's WAL checkpoint
    assert_eq!(json(&repo, &["list"]).as_array().unwrap().len(), 4);

    assert_eq!(
        json(&repo, &["restore-point", "drop", "before-upgrade"])["dropped"],
        "before-upgrade"
    );

    // errors: one line, non-zero, documented codes
    fails(
        &repo,
        &["restore", "--to-version", "99999"],
        4,
        "cannot restore to version 99999",
    );
    fails(
        &repo,
        &["restore", "--to-point", "nope"],
        4,
        "no catalog names a restore point \"nope\"",
    );
    fails(&repo, &["show", "nope"], 1, "no backup \"nope\"");
    fails(&repo, &["restore"], 2, "required");
    fails(
        &repo,
        &["restore", "--latest", "--to-version", "3"],
        2,
        "cannot be used with",
    );
    fails(&repo, &["as-of", "zz", "--latest"], 1, "address \"zz\"");
    fails("nonsense", &["list"], 1, "not a URL");
}

#[test]
fn two_backups_on_one_repository_one_runs_the_other_says_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write(&a, &repo, 1, 50, &mut BindSpace::new(schema()).unwrap());
    write(&b, &repo, 2, 50, &mut BindSpace::new(schema()).unwrap());
    let before = json(&repo, &["list"]).as_array().unwrap().len();
    let first = Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args([
            "backup",
            "--full",
            "--hold-lease-ms",
            "4000",
            "--json",
            "--repo",
            &repo,
            "--data",
        ])
        .arg(&a)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the first holds the lease (its lock object exists)
    let locks = tmp.path().join("repo/locks");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first backup never took the lease"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = bindspace(&repo, &["backup", "--full", "--data", b.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{err}");
    assert!(err.contains("backup in progress"), "{err}");
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    let after = json(&repo, &["list"]).as_array().unwrap().clone();
    assert_eq!(after.len(), before + 1, "exactly the first backup landed");
    // and the second one's data is nowhere in the catalog
    assert!(after.iter().all(|e| e["to_version"] == 50));
}

/// The operator's guide, docs/OPERATIONS.md, "Complete data loss": the data directory
/// is gone; `bindspace restore --latest --out <new data dir>/checkpoint.snap` and the
/// engine starts from it at the newest archived version.
#[test]
fn runbook_complete_data_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let data = tmp.path().join("data");
    let mut shadow = BindSpace::new(schema()).unwrap();
    let digests = write(&data, &repo, 9, 400, &mut shadow);
    json(
        &repo,
        &["backup", "--full", "--data", data.to_str().unwrap()],
    );
    let digests2 = write(&data, &repo, 10, 150, &mut shadow);
    let last = shadow.version(); // the backup's WAL checkpoint took a version too
    std::fs::remove_dir_all(&data).unwrap(); // the disk is lost
    // the runbook's commands
    let explain = json(&repo, &["explain", "--latest"]);
    assert_eq!(explain["version"], last, "{explain}");
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let snap = fresh.join("checkpoint.snap");
    let r = json(
        &repo,
        &["restore", "--latest", "--out", snap.to_str().unwrap()],
    );
    assert_eq!(r["digest"], digests2[&last].as_str());
    // the engine comes back on the restored checkpoint and keeps going
    let engine = Engine::open(&fresh, cfg(&repo)).unwrap();
    assert_eq!(engine.version(), last);
    assert_eq!(engine.read(|s| s.digest().to_string()), digests2[&last]);
    assert!(digests.contains_key(&400));
    let v = engine
        .write(
            Addr(1),
            bindspace_core::Fingerprint::from_words(vec![7; WORDS as usize]),
        )
        .unwrap();
    assert_eq!(v, last + 1);
    engine.close().unwrap();
}

fn bindspace_repos(repos: &[&str], args: &[&str]) -> Value {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bindspace"));
    c.args(args).arg("--json");
    for r in repos {
        c.args(["--repo", r]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "bindspace {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// docs/OPERATIONS.md, "Redis data loss": the warm tier is flushed; `bindspace explain
/// --latest` plans from the other tier only, and `bindspace restore --latest --to
/// redis://…` re-seeds Redis with a full that restores on its own. Then `bindspace
/// verify` names the catalogs' disagreement, `verify --repair` heals it, and `bindspace
/// dr drill` restores from both tiers.
#[test]
fn runbook_redis_data_loss() {
    let Some(redis) = bindspace_testkit::service_env("BINDSPACE_TEST_REDIS_URL", "a Redis server")
    else {
        return;
    };
    // Redis database 3 is this test's own, so a flush loses nothing else
    let redis = format!("{}/3", redis.trim_end_matches('/'));
    let flush = || {
        let mut con = redis::Client::open(redis.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("FLUSHDB").query::<()>(&mut con).unwrap();
    };
    flush();
    let tmp = tempfile::tempdir().unwrap();
    let local = format!("file://{}", tmp.path().join("repo").display());
    let data = tmp.path().join("data");
    let repos = [local.as_str(), redis.as_str()];
    let mut shadow = BindSpace::new(schema()).unwrap();
    bindspace_repos(&repos, &["init"]);
    let engine_cfg = BackupConfig {
        destinations: vec![local.clone(), redis.clone()],
        ..cfg(&local)
    };
    let write_both = |seed, n, shadow: &mut BindSpace| {
        let engine = Engine::open(&data, engine_cfg.clone()).unwrap();
        let mut w = Workload::new(seed, schema());
        for _ in 0..n {
            let op = w.next_op(shadow);
            let v = match &op {
                Op::Write(a, fp) => engine.write(*a, fp.clone()).unwrap(),
                Op::Delete(a) => engine.delete(*a).unwrap(),
            };
            bindspace_testkit::shadow::follow(shadow, &op, v);
        }
        engine.close().unwrap();
        shadow.digest().to_string()
    };
    write_both(21, 300, &mut shadow);
    let d = data.to_str().unwrap();
    bindspace_repos(&repos, &["backup", "--full", "--data", d]);
    let digest = write_both(22, 120, &mut shadow);
    bindspace_repos(&repos, &["backup", "--incremental", "--data", d]);
    // the backup's WAL checkpoint (same state), archived as the command closed
    let latest = shadow.version() + 1;
    // both tiers hold the chain
    let ex = bindspace_repos(&repos, &["explain", "--latest"]);
    assert_eq!(ex["version"], latest, "{ex}");
    assert_eq!(ex["full"]["stores"].as_array().unwrap().len(), 2, "{ex}");

    flush(); // the warm tier loses everything

    // the runbook's commands
    let ex = bindspace_repos(&repos, &["explain", "--latest"]);
    assert_eq!(ex["version"], latest, "{ex}");
    assert_eq!(ex["full"]["stores"], serde_json::json!([local]), "{ex}");
    let r = bindspace_repos(&repos, &["restore", "--latest", "--to", &redis]);
    assert_eq!(r["digest"], digest.as_str());
    // Redis alone restores the latest again
    let back = bindspace_repos(&[&redis], &["restore", "--latest"]);
    assert_eq!(back["version"], latest);
    assert_eq!(back["digest"], digest.as_str());
    // the re-seeded tier is this repository's again: the engine opens over both and
    // keeps writing (a fresh repository id on Redis would make them two repositories)
    let digest = write_both(23, 10, &mut shadow);
    bindspace_repos(&repos, &["backup", "--full", "--data", d]);
    let back = bindspace_repos(&[&redis], &["restore", "--latest"]);
    assert_eq!(back["digest"], digest.as_str());
    // proving restorability on a real server ("Proving restorability"). The re-seeded
    // tier's catalog lacks the backups made before the flush, and records the re-seed's
    // full, which the other lacks: verify names the disagreement (exit 5); --repair
    // copies each backup over, checked, and records it (exit 6); then verify at the
    // standard level is clean over both tiers (exit 0), and a drill through the data
    // directory restores its sentinel from each tier alone and from both (exit 0)
    let verify = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bindspace"));
        c.args([
            "verify",
            "--level",
            "standard",
            "--recheck-days",
            "0",
            "--json",
        ])
        .args(extra);
        for r in &repos {
            c.args(["--repo", r]);
        }
        let out = c.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), v)
    };
    let (code, v) = verify(&[]);
    assert_eq!(code, Some(5), "{v}");
    assert!(!v["disagreements"].as_array().unwrap().is_empty(), "{v}");
    let (code, v) = verify(&["--repair"]);
    assert_eq!(code, Some(6), "{v}");
    assert_eq!(v["disagreements"], serde_json::json!([]), "{v}");
    let v = bindspace_repos(
        &repos,
        &["verify", "--level", "standard", "--recheck-days", "0"],
    );
    let stores = v["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2, "{v}");
    assert!(
        stores.iter().all(|s| s["checked"].as_u64().unwrap() > 0),
        "{v}"
    );
    let drill = bindspace_repos(&repos, &["dr", "drill", "--data", d]);
    let runs = drill["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{drill}");
    assert!(
        runs.iter()
            .all(|r| r["status"] == "restored" && r["sentinel"] == true),
        "{drill}"
    );
    flush();
}

/// docs/OPERATIONS.md, "Container restart": the engine's process is killed (SIGKILL)
/// mid-write; `Engine::open` on the same data dir has every acknowledged write, and
/// `bindspace list` / `bindspace explain --latest` work as the runbook says.
#[test]
fn runbook_container_restart() {
    const CHILD: &str = "BINDSPACE_RUNBOOK_CHILD";
    if let Ok(dirs) = std::env::var(CHILD) {
        // the "container": an engine with background jobs, writing until killed
        let (data, repo) = dirs.split_once('\n').unwrap();
        let cfg = BackupConfig {
            background_jobs: true,
            sync: "always".into(),
            archive_interval_ms: 20,
            delta_interval_ms: 100,
            full_snapshot_interval_ms: 400,
            ..cfg(repo)
        };
        let engine = Engine::open(Path::new(data), cfg).unwrap();
        let mut shadow = BindSpace::new(schema()).unwrap();
        let mut w = Workload::new(31, schema());
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        loop {
            let op = w.next_op(&shadow);
            let v = match &op {
                Op::Write(a, fp) => engine.write(*a, fp.clone()).unwrap(),
                Op::Delete(a) => engine.delete(*a).unwrap(),
            };
            op.apply(&mut shadow).unwrap();
            writeln!(out, "ack {v}").unwrap();
            out.flush().unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let data = tmp.path().join("data");
    json(&repo, &["init"]);
    // this same test binary, running only this test, as the child
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["runbook_container_restart", "--exact", "--nocapture"])
        .env(CHILD, format!("{}\n{repo}", data.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    let mut acks = Vec::new(); // the version of each op, in order
    let started = std::time::Instant::now();
    {
        use std::io::BufRead as _;
        let lines = std::io::BufReader::new(child.stdout.as_mut().unwrap()).lines();
        for line in lines {
            if let Some(v) = line.unwrap().strip_prefix("ack ") {
                acked = v.parse().unwrap();
                acks.push(acked);
            }
            // long enough for archiving, deltas and a full to have run
            if acked >= 2_000 && started.elapsed() > std::time::Duration::from_millis(1_500) {
                break;
            }
        }
    }
    // while the engine runs, nothing else may write its data dir: busy (exit 3)
    fails(
        &repo,
        &["backup", "--full", "--data", data.to_str().unwrap()],
        3,
        "in use by another writer",
    );
    child.kill().unwrap(); // SIGKILL: no close, no final archive
    child.wait().unwrap();
    assert!(acked >= 2_000, "the child acknowledged only {acked} writes");

    // the runbook: nothing to do but start again
    let engine = Engine::open(&data, cfg(&repo)).unwrap();
    let recovered = engine.version();
    assert!(
        recovered >= acked,
        "acknowledged {acked}, recovered {recovered}"
    );
    // the same seeded workload is what the engine holds: every acknowledged op (at
    // the versions acknowledged: backups' WAL checkpoints took the others), then some
    // of the ops that were durable but not yet reported when the child died
    let mut shadow = BindSpace::new(schema()).unwrap();
    let mut w = Workload::new(31, schema());
    for v in &acks {
        let op = w.next_op(&shadow);
        shadow.set_version(v - 1);
        op.apply(&mut shadow).unwrap();
    }
    let held = engine.read(|s| s.digest());
    let mut extra = 0;
    while shadow.digest() != held {
        assert!(
            extra < recovered - acked,
            "no prefix of the workload is what the engine holds"
        );
        let op = w.next_op(&shadow);
        op.apply(&mut shadow).unwrap();
        extra += 1;
    }
    // the background jobs had backed up before the kill
    let listed = json(&repo, &["list"]);
    assert!(!listed.as_array().unwrap().is_empty(), "{listed}");
    engine.close().unwrap(); // archives the WAL tail
    let ex = json(&repo, &["explain", "--latest"]);
    assert_eq!(ex["version"], recovered, "{ex}");
    let r = json(&repo, &["restore", "--latest"]);
    assert_eq!(r["digest"], shadow.digest().to_string().as_str());
}

/// Issue 16, item 7: a mistyped repository URL says no repository is there (it created
/// an empty one and listed "0 backups"), and a restore that could not read one of the
/// destinations says so (it restored from the others without a word).
#[test]
fn a_wrong_url_or_a_skipped_destination_is_said() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = format!("file://{}", tmp.path().join("typo").display());
    fails(&typo, &["list"], 1, "no repository at");
    assert!(!tmp.path().join("typo").exists(), "nothing created");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &format!("file://{}", empty.display()),
        &["restore", "--latest"],
        1,
        "no catalog there",
    );
    // two destinations; the second cannot be listed
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let urls = [
        format!("file://{}", a.display()),
        format!("file://{}", b.display()),
    ];
    let both = urls.join(",");
    json(&both, &["init"]);
    let data = tmp.path().join("data");
    let mut shadow = BindSpace::new(schema()).unwrap();
    let engine = Engine::open(
        &data,
        BackupConfig {
            destinations: urls.to_vec(),
            ..cfg(&urls[0])
        },
    )
    .unwrap();
    let mut w = Workload::new(5, schema());
    for _ in 0..20 {
        let op = w.next_op(&shadow);
        match &op {
            Op::Write(a, fp) => engine.write(*a, fp.clone()).unwrap(),
            Op::Delete(a) => engine.delete(*a).unwrap(),
        };
        op.apply(&mut shadow).unwrap();
    }
    engine
        .backup_now(bindspace_catalog::BackupKind::Full)
        .unwrap();
    engine.close().unwrap();
    std::fs::remove_dir_all(b.join("snapshots")).unwrap();
    std::fs::write(b.join("snapshots"), b"not a directory").unwrap();
    let out = bindspace(&both, &["restore", "--latest", "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: could not read"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unavailable"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["digest"], shadow.digest().to_string());
    // a destination whose catalog is lost but whose artifacts are there is still a
    // repository: the restore plans from what it lists
    std::fs::remove_dir_all(a.join("catalog")).unwrap();
    let only_a = &urls[0];
    let r = json(only_a, &["restore", "--latest", "--timeline", "1"]);
    assert_eq!(r["digest"], shadow.digest().to_string());
}
