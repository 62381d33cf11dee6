//! The fleet runbook (docs/OPERATIONS.md, "A fleet on one repository"), every command a
//! `bindspace` process: two engines share one repository (a local directory and the
//! Redis Cluster), each in its own space; `spaces` lists them, `list`, `restore`,
//! `verify` and `backup` take `--space` (or `BINDSPACE_SPACE`), and a mistyped space
//! is named as such.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::{Command, Output};

use bindspace::{BackupConfig, Engine};
use bindspace_core::workload::Workload;
use bindspace_core::{Digest, snapshot};
use serde_json::Value;

fn bindspace(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(args)
        .env_remove("BINDSPACE_SPACE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = bindspace(&[args, &["--json"]].concat(), env);
    assert!(
        out.status.success(),
        "bindspace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An engine of `space` on `data` writes `n` seeded ops; the digest it ends at.
fn write(
    data: &std::path::Path,
    repo: &[String],
    space: &str,
    seed: u64,
    n: usize,
) -> (u64, Digest) {
    let cfg = BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        destinations: repo.to_vec(),
        background_jobs: false,
        sync: "never".into(),
        space: space.into(),
        ..BackupConfig::default()
    };
    let engine = Engine::open(data, cfg).unwrap();
    let mut w = Workload::new(seed, engine.read(|s| s.schema()));
    for _ in 0..n {
        let op = engine.read(|s| w.next_op(s));
        engine.apply(vec![op.into()]).unwrap();
    }
    let end = (engine.version(), engine.read(|s| s.digest()));
    engine.close().unwrap();
    end
}

#[test]
fn a_fleet_shares_one_repository_each_engine_in_its_own_space() {
    let dir = tempfile::tempdir().unwrap();
    let local = format!("file://{}", dir.path().join("repo").display());
    let mut dests = vec![local];
    // the Redis Cluster too, when there is one (always under cargo xtask test)
    if let Some(cluster) =
        bindspace_testkit::service_env("BINDSPACE_TEST_REDIS_CLUSTER_URL", "a Redis Cluster")
    {
        dests.push(cluster);
    }
    let repo = dests.join(",");
    // the cluster is shared with other tests: this run's spaces carry its name
    let run = bindspace_testkit::unique_name("fleet")
        .replace('_', "-")
        .to_lowercase();
    let (orders, billing) = (format!("{run}-orders"), format!("{run}-billing"));

    // 1. each space's catalog, once
    for s in [&orders, &billing] {
        ok(&["init", "--repo", &repo, "--space", s], &[]);
    }
    // 2. each engine writes its own space (config `space = "…"`); a backup of its
    //    data directory names the space
    let a = dir.path().join("orders-data");
    let b = dir.path().join("billing-data");
    let (va, da) = write(&a, &dests, &orders, 1, 120);
    let (vb, db) = write(&b, &dests, &billing, 2, 80);
    for (data, s) in [(&a, &orders), (&b, &billing)] {
        ok(
            &[
                "backup",
                "--repo",
                &repo,
                "--space",
                s,
                "--data",
                data.to_str().unwrap(),
                "--full",
            ],
            &[],
        );
    }
    // 3. the repository's spaces
    let spaces = ok(&["spaces", "--repo", &repo], &[]);
    let names: Vec<&str> = spaces
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["space"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&orders.as_str()) && names.contains(&billing.as_str()),
        "{spaces}"
    );
    // a destination that is down is named, and the others still list
    let dead = format!("{repo},redis://127.0.0.1:1");
    let out = bindspace(&["spaces", "--repo", &dead, "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed.to_string().contains(&orders), "{listed}");
    // 4. each space lists and restores its own history
    let list = ok(&["list", "--repo", &repo, "--space", &orders], &[]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    for (s, v, d) in [(&orders, va, da), (&billing, vb, db)] {
        let out = dir.path().join(format!("{s}.snap"));
        ok(
            &[
                "restore",
                "--repo",
                &repo,
                "--latest",
                "--out",
                out.to_str().unwrap(),
            ],
            &[("BINDSPACE_SPACE", s)],
        );
        let got = snapshot::decode(&std::fs::read(&out).unwrap())
            .unwrap()
            .space;
        assert!(got.version() >= v, "{s}");
        assert_eq!(got.digest(), d, "{s}: restored another space's state");
    }
    // 5. verify one space (it exits non-zero unless clean)
    let report = ok(&["verify", "--repo", &repo, "--space", &billing], &[]);
    let checked: u64 = report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["checked"].as_u64().unwrap())
        .sum();
    assert!(checked > 0, "{report}");
    // 6. one space replicated to another store, and moved into a new space there
    let dr = format!("file://{}", dir.path().join("dr").display());
    ok(
        &[
            "replicate",
            "--from",
            &dests[0],
            "--to",
            &dr,
            "--space",
            &orders,
        ],
        &[],
    );
    let copy = format!("{run}-copy");
    ok(
        &[
            "restore",
            "--repo",
            &repo,
            "--space",
            &orders,
            "--latest",
            "--to",
            &dr,
            "--to-space",
            &copy,
        ],
        &[],
    );
    for s in [&orders, &copy] {
        let out = dir.path().join(format!("dr-{s}.snap"));
        ok(
            &[
                "restore",
                "--repo",
                &dr,
                "--space",
                s,
                "--latest",
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        let got = snapshot::decode(&std::fs::read(&out).unwrap())
            .unwrap()
            .space;
        assert_eq!(got.digest(), da, "{s} at the replica");
    }
    let there = ok(&["spaces", "--repo", &dr], &[]);
    assert_eq!(there.as_array().unwrap().len(), 2, "{there}");
    // 7. a mistyped space is named as such, not an empty listing
    let out = bindspace(
        &["list", "--repo", &repo, "--space", &format!("{run}-ordres")],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no space") && err.contains("bindspace spaces"),
        "{err}"
    );
    let out = bindspace(&["list", "--repo", &repo, "--space", "Orders"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a space name"));
}
