//! The bad-deploy runbook as an operator runs it (docs/OPERATIONS.md, "Timelines"),
//! every step a `bindspace` process: a history is written, rewound to before the bad
//! deploy, continued on a new timeline; then either history restores by version with
//! `--timeline`, `timeline list|show` and `explain` name the histories, and
//! `restore --out` writes the origin an engine branches from.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bindspace::{BackupConfig, Engine};
use bindspace_core::workload::{Op, Workload};
use bindspace_core::{BindSpace, SchemaVersion, snapshot};
use serde_json::Value;

/// `bindspace ARGS --repo REPO` with `env` set.
fn bindspace(repo: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(args)
        .args(["--repo", repo])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Its JSON output; it must succeed.
fn json_with(repo: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = bindspace(repo, &[args, &["--json"]].concat(), env);
    assert!(
        out.status.success(),
        "bindspace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json(repo: &str, args: &[&str]) -> Value {
    json_with(repo, args, &[])
}

fn schema() -> SchemaVersion {
    SchemaVersion::CURRENT.with_words(8).with_address_space(256)
}

fn cfg(repo: &str) -> BackupConfig {
    BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        destinations: vec![repo.to_owned()],
        background_jobs: false,
        sync: "never".into(),
        wal_segment_bytes: 4 << 10,
        ..BackupConfig::default()
    }
}

/// Writes `n` seeded ops through the engine of `data` (a full backup first when
/// `full_at_start`); returns the timeline and the digests by version.
fn write(
    data: &Path,
    repo: &str,
    seed: u64,
    n: usize,
    shadow: &mut BindSpace,
    full_after: usize,
) -> (u32, BTreeMap<u64, String>) {
    let engine = Engine::open(data, cfg(repo)).unwrap();
    let mut w = Workload::new(seed, schema());
    let mut d = BTreeMap::new();
    for i in 0..n {
        let op = w.next_op(shadow);
        let v = match &op {
            Op::Write(a, fp) => engine.write(*a, fp.clone()).unwrap(),
            Op::Delete(a) => engine.delete(*a).unwrap(),
        };
        bindspace_testkit::shadow::follow(shadow, &op, v);
        d.insert(v, shadow.digest().to_string());
        if i + 1 == full_after {
            engine
                .backup_now(bindspace_catalog::BackupKind::Full)
                .unwrap();
        }
    }
    let t = engine.timeline();
    engine.close().unwrap();
    (t, d)
}

#[test]
fn the_bad_deploy_runbook_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let mut shadow = BindSpace::new(schema()).unwrap();
    // timeline 1: 200 versions, a full at 100, the WAL archived on close
    let (t1, h1) = write(&data, &repo, 1, 200, &mut shadow, 100);
    assert_eq!(t1, 1);

    // the deploy at 150 was bad: rewind the (stopped) engine's directory
    let r = json(&repo, &["rewind", "--data", d, "--to-version", "150"]);
    assert_eq!(
        (r["from_timeline"].as_u64(), r["version"].as_u64()),
        (Some(1), Some(150))
    );
    assert_eq!(r["timeline"], 2);
    assert!(Path::new(r["kept"].as_str().unwrap()).join("wal").is_dir());

    // the engine continues on timeline 2 from version 150
    let out = tmp.path().join("at150.snap");
    let o = json(
        &repo,
        &[
            "restore",
            "--to-version",
            "150",
            "--timeline",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o["digest"].as_str(), Some(h1[&150].as_str()));
    let origin: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("at150.snap.origin")).unwrap())
            .unwrap();
    assert_eq!(
        (origin["timeline"].as_u64(), origin["version"].as_u64()),
        (Some(1), Some(150))
    );
    let mut shadow2 = snapshot::decode(&std::fs::read(&out).unwrap())
        .unwrap()
        .space;
    let (t2, h2) = write(&data, &repo, 2, 60, &mut shadow2, 30);
    assert_eq!(t2, 2);

    // either history, by version
    for v in [120, 150, 151, 180, 200] {
        let a = json(
            &repo,
            &["restore", "--to-version", &v.to_string(), "--timeline", "1"],
        );
        assert_eq!(
            a["digest"].as_str(),
            Some(h1[&v].as_str()),
            "timeline 1 version {v}"
        );
        assert_eq!(a["timeline"], 1);
    }
    for v in [150, 151, 180, 210] {
        // the newest timeline is the default
        let b = json(&repo, &["restore", "--to-version", &v.to_string()]);
        let want = if v == 150 { &h1[&150] } else { &h2[&v] };
        assert_eq!(
            b["digest"].as_str(),
            Some(want.as_str()),
            "timeline 2 version {v}"
        );
        assert_eq!(b["timeline"], 2);
    }
    assert_ne!(h1[&180], h2[&180]);

    // a restore point names the version of the timeline it was planned on
    let rp = json(&repo, &["restore-point", "create", "after-fix"]);
    assert_eq!(
        (rp["timeline"].as_u64(), rp["version"].as_u64()),
        (Some(2), h2.keys().next_back().copied())
    );
    let rp = json(
        &repo,
        &[
            "restore-point",
            "create",
            "old",
            "--timeline",
            "1",
            "--version",
            "190",
        ],
    );
    assert_eq!(rp["timeline"], 1);
    let r = json(&repo, &["restore", "--to-point", "old"]);
    assert_eq!(r["digest"].as_str(), Some(h1[&190].as_str()));
    // 190 lies past timeline 1's last full (100), reached by WAL replay: nothing
    // proved the state, so the point records no root and the restore says so
    assert!(rp["root"].is_null(), "{rp}");
    assert_eq!(r["verified"], false, "{r}");
    // a point at a verified state (the full at 100) records its root; a restore of
    // it verifies
    let at_full = json(
        &repo,
        &[
            "restore-point",
            "create",
            "at-full",
            "--timeline",
            "1",
            "--version",
            "100",
        ],
    );
    let r = json(&repo, &["restore", "--to-point", "at-full"]);
    assert_eq!(r["digest"].as_str(), Some(h1[&100].as_str()));
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["root"], at_full["root"]);

    // the operator's views name the histories
    let l = json(&repo, &["timeline", "list"]);
    assert_eq!(l["timelines"].as_array().unwrap().len(), 2);
    assert_eq!(l["timelines"][1]["parent"], 1);
    assert_eq!(l["timelines"][1]["branch_version"], 150);
    let s = json(&repo, &["timeline", "show", "2"]);
    assert_eq!(s["history"][0]["to"], 150);
    // 150 was reached by WAL replay past the full at 100 (unverified): the branch
    // point records no root, so nothing is later "verified" against it
    assert!(s["branch_root"].is_null(), "{s}");
    assert_eq!(s["history"][1]["timeline"], 2);
    let e = json(&repo, &["explain", "--to-version", "170"]);
    assert_eq!(e["timeline"], 2);
    assert!(
        !e["recorded_roots"].as_array().unwrap().is_empty(),
        "explain prints the roots on the way: {e}"
    );
    let list = json(&repo, &["list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .filter(|b| b["kind"] != "wal")
            .all(|b| b["root"].is_string()),
        "list --json prints every backup's root: {list}"
    );
    assert_eq!(e["history"].as_array().unwrap().len(), 2);
    let list = json(&repo, &["list"]);
    let timelines: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timeline"].as_u64().unwrap())
        .collect();
    assert!(
        timelines.contains(&1) && timelines.contains(&2),
        "{timelines:?}"
    );

    // months later, the old history is expired by policy, never silently: the dry run
    // says so, the real run records it, and timeline 1 is refused by name while
    // timeline 2 (whose history runs through timeline 1 up to 150) still restores
    let policy = [
        "--keep-all-hours",
        "100000",
        "--expire-abandoned-days",
        "30",
    ];
    // 0 days would expire every timeline but one the moment it is idle: refused
    let out = bindspace(
        &repo,
        &["retention", "apply", "--expire-abandoned-days", "0"],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 is not in 1.."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the policy as of 40 days from now
    let later = (bindspace_core::Clock::now_us(&bindspace_core::SystemClock) + 40 * 86_400_000_000)
        .to_string();
    let json = |repo: &str, args: &[&str]| json_with(repo, args, &[("BINDSPACE_NOW_US", &later)]);
    let dry = json(
        &repo,
        &[&["retention", "apply", "--dry-run"][..], &policy].concat(),
    );
    assert_eq!(dry["expire"][0]["timeline"], 1, "{dry}");
    assert!(json(&repo, &["timeline", "list"])["timelines"][0]["expired"].is_null());
    let before = wal_segments(&repo);
    assert!(
        before.iter().any(|&(t, lo, _)| t == 1 && lo > 150),
        "timeline 1 archived WAL past 150: {before:?}"
    );
    let run = json(&repo, &[&["retention", "apply"][..], &policy].concat());
    assert_eq!(run["expire"][0]["timeline"], 1, "{run}");
    assert!(
        run["expire"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("abandoned"),
        "{run}"
    );
    // timeline 1's archived WAL past its branch point went; what timeline 2 needs stayed
    let wal = wal_segments(&repo);
    assert!(wal.iter().any(|&(t, lo, _)| t == 1 && lo <= 150), "{wal:?}");
    assert!(wal.iter().all(|&(t, lo, _)| t != 1 || lo <= 150), "{wal:?}");
    let l = json(&repo, &["timeline", "list"]);
    assert!(l["timelines"][0]["expired"]["reason"].is_string(), "{l}");
    assert!(l["timelines"][1]["expired"].is_null(), "{l}");
    let out = bindspace(
        &repo,
        &["restore", "--to-version", "120", "--timeline", "1"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("timeline 1 was expired by the retention policy"),
        "{err}"
    );
    for v in [120, 150, 151, 180] {
        let b = json(&repo, &["restore", "--to-version", &v.to_string()]);
        let want = if v <= 150 { &h1[&v] } else { &h2[&v] };
        assert_eq!(b["digest"].as_str(), Some(want.as_str()), "version {v}");
        assert_eq!(b["timeline"], 2);
    }
    // nothing new lands on the expired timeline
    let out = bindspace(
        &repo,
        &[
            "restore-point",
            "create",
            "late",
            "--timeline",
            "1",
            "--version",
            "120",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expired"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The archived WAL segments of the repository, as `(timeline, first, last)`.
fn wal_segments(repo: &str) -> Vec<(u32, u64, u64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = rt
        .block_on(bindspace::stores::open_all(&[repo.to_owned()]))
        .unwrap();
    rt.block_on(stores[0].list(bindspace_catalog::ArtifactKind::WalSegment, 0, u64::MAX))
        .unwrap()
        .into_iter()
        .map(|r| (r.id.timeline(), r.id.versions().0, r.id.versions().1))
        .collect()
}
