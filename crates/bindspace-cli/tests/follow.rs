//! Issue 18: `bindspace replicate --follow` between two S3 servers (two regions, each
//! named in its URL) under steady writes. The target is frozen (SIGSTOP): the lag the
//! follower prints grows; the follower is killed (SIGKILL) while it is frozen, the
//! target thawed and the follower started again: at most one artifact is sent again.
//! After writes stop the lag comes back to the time one run takes, and the replica
//! alone restores, at every backup version and at the newest version, exactly the
//! state the primary's workload had there. The follower's runs after its first list
//! only what is new. Lag p50/p99 are printed (figures in docs/BENCHMARKS.md).
#![allow(clippy::unwrap_used)]
// tests: a panic is the failure report
// real processes frozen and killed in real time: the test waits on the wall clock
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::{ArtifactKind, BackupStore};
use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
use bindspace_testkit::servers::Server;
use bindspace_testkit::service_env;
use serde_json::Value;

/// What the follower printed: its JSON reports and its failed runs' lags.
#[derive(Default)]
struct Printed {
    reports: Vec<(Instant, Value)>,
    failed_lags: Vec<(Instant, Option<u64>)>,
}

/// `bindspace replicate --follow` as a process; what it prints is gathered in `out`.
fn follower(from: &str, to: &str, out: &Arc<Mutex<Printed>>) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(["replicate", "--from", from, "--to", to, "--follow"])
        .args([
            "--interval-secs",
            "0.2",
            "--store-timeout-secs",
            "2",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let o = out.clone();
    std::thread::spawn(move || {
        // one JSON document per run, pretty-printed: gathered until it parses
        let mut doc = String::new();
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            doc.push_str(&line);
            doc.push('\n');
            if let Ok(v) = serde_json::from_str::<Value>(&doc) {
                o.lock().unwrap().reports.push((Instant::now(), v));
                doc.clear();
            }
        }
    });
    let o = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if let Some(rest) = line.split("; lag ").nth(1) {
                let ms = rest.split(' ').next().and_then(|n| n.parse().ok());
                o.lock().unwrap().failed_lags.push((Instant::now(), ms));
            }
            eprintln!("follower: {line}");
        }
    });
    child
}

/// Waits up to `secs` for `done` over what was printed.
fn wait_for(out: &Arc<Mutex<Printed>>, secs: u64, what: &str, done: impl Fn(&Printed) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done(&out.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cfg(repo: &str) -> BackupConfig {
    BackupConfig {
        fingerprint_words: 4,
        address_space: 256,
        sync: "never".into(),
        wal_segment_bytes: 16 << 10,
        archive_interval_ms: 200,
        delta_interval_ms: 700,
        full_snapshot_interval_ms: 3_600_000,
        verify_interval_ms: 0,
        destinations: vec![repo.into()],
        ..BackupConfig::default()
    }
}

/// The state at version `v` of the writer's workload: the writes it acknowledged at
/// versions up to `v` (a checkpoint takes a version of its own).
fn state_at(acked: &[(u64, u64)], v: u64) -> BindSpace {
    let mut s =
        BindSpace::new(SchemaVersion::CURRENT.with_words(4).with_address_space(256)).unwrap();
    for &(_, i) in acked.iter().take_while(|(w, _)| *w <= v) {
        s.write(Addr((i % 256) as u16), &[i; 4]).unwrap();
    }
    s
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The artifact names a store holds.
fn names(rt: &tokio::runtime::Runtime, s: &Arc<dyn BackupStore>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kind in ArtifactKind::ALL {
        for r in rt.block_on(s.list(kind, 0, u64::MAX)).unwrap() {
            out.insert(r.id.to_string());
        }
    }
    out
}

#[test]
fn follow_between_two_s3_servers_survives_a_frozen_target_and_a_kill() {
    let Some(moto) = service_env("BINDSPACE_MOTO_SERVER", "moto_server binary") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Server::moto(moto.as_ref(), dir.path(), &["region-a"]).unwrap();
    let b = Server::moto(moto.as_ref(), dir.path(), &["region-b"]).unwrap();
    let from = format!("s3://region-a/repo?endpoint={}&allow_http=true", a.url);
    let to = format!("s3://region-b/repo?endpoint={}&allow_http=true", b.url);

    // the writer: one version every 4 ms, archived every 200 ms, a delta every 700 ms
    let engine = Arc::new(Engine::open(dir.path().join("data"), cfg(&from)).unwrap());
    engine
        .backup_now(bindspace_catalog::BackupKind::Full)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, stop) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            // (the version the write took, i): the i-th write sets [i; 4] at i mod 256
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let v = engine
                    .write(Addr((i % 256) as u16), Fingerprint::from_words(vec![i; 4]))
                    .unwrap();
                acked.push((v, i));
                std::thread::sleep(Duration::from_millis(4));
            }
            acked
        })
    };

    let out = Arc::new(Mutex::new(Printed::default()));
    let mut child = follower(&from, &to, &out);
    // following under writes: several runs caught up, copying as the writer archives
    wait_for(&out, 60, "five caught-up runs", |p| {
        p.reports
            .iter()
            .filter(|(_, r)| r["caught_up"] == true && !r["copied"].as_array().unwrap().is_empty())
            .count()
            >= 5
    });
    let mut steady: Vec<u64> = {
        let p = out.lock().unwrap();
        // after its first run, a run lists only what is new (unless the run before it
        // fell short: then it lists everything again)
        assert_eq!(p.reports[0].1["listed_everything"], true);
        for w in p.reports.windows(2) {
            let failed_between = p
                .failed_lags
                .iter()
                .any(|(t, _)| w[0].0 < *t && *t < w[1].0);
            assert!(
                w[1].1["listed_everything"] == false
                    || w[0].1["caught_up"] == false
                    || failed_between,
                "a run after a caught-up one listed whole prefixes: {}",
                w[1].1
            );
        }
        p.reports
            .iter()
            .filter_map(|(_, r)| r["lag_ms"].as_u64())
            .collect()
    };

    // the target frozen: runs fail within the store timeout and the lag grows
    b.freeze();
    let frozen_at = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let lag_frozen = {
        let p = out.lock().unwrap();
        let lags: Vec<u64> = p
            .failed_lags
            .iter()
            .filter(|(t, _)| *t > frozen_at)
            .filter_map(|(_, l)| *l)
            .chain(
                p.reports
                    .iter()
                    .filter(|(t, _)| *t > frozen_at)
                    .filter_map(|(_, r)| r["lag_ms"].as_u64()),
            )
            .collect();
        assert!(
            lags.len() >= 2,
            "no run reported while the target was frozen"
        );
        assert!(
            lags.windows(2).any(|w| w[1] > w[0]) && *lags.iter().max().unwrap() >= 1_500,
            "the lag did not grow while frozen: {lags:?}"
        );
        *lags.iter().max().unwrap()
    };
    // killed while frozen, thawed, started again: what the target lists is not sent again
    child.kill().unwrap();
    child.wait().unwrap();
    b.thaw();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt
        .block_on(bindspace::stores::open_with(&to, Duration::from_secs(10)))
        .unwrap();
    let held_before = names(&rt, &target);
    let resumed_from = out.lock().unwrap().reports.len();
    let mut child = follower(&from, &to, &out);
    wait_for(&out, 60, "the resumed follower's first run", |p| {
        p.reports.len() > resumed_from
    });
    let resent: Vec<String> = {
        let p = out.lock().unwrap();
        p.reports[resumed_from].1["copied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .filter(|c| held_before.contains(c))
            .collect()
    };
    assert!(resent.len() <= 1, "sent again after the kill: {resent:?}");

    // writes stop; the engine closes (its WAL archived to the end); the follower catches
    // up and the lag comes back to the time one run takes
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let acked = writer.join().unwrap();
    let last = engine.version();
    assert_eq!(state_at(&acked, last).digest(), engine.read(|s| s.digest()));
    Arc::try_unwrap(engine).ok().unwrap().close().unwrap();
    let closed_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    wait_for(&out, 60, "a caught-up run after the writes stopped", |p| {
        p.reports
            .iter()
            .any(|(_, r)| r["caught_up"] == true && r["started_us"].as_u64().unwrap() > closed_us)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    {
        let p = out.lock().unwrap();
        let (_, r) = p
            .reports
            .iter()
            .find(|(_, r)| r["caught_up"] == true && r["started_us"].as_u64().unwrap() > closed_us)
            .unwrap();
        let run_ms =
            (r["finished_us"].as_u64().unwrap() - r["started_us"].as_u64().unwrap()) / 1_000;
        let lag = r["lag_ms"].as_u64().unwrap();
        assert!(
            lag <= run_ms + 50,
            "lag {lag} ms after a {run_ms} ms run: {r}"
        );
        steady.extend(
            p.reports[resumed_from + 1..]
                .iter()
                .filter_map(|(_, r)| r["lag_ms"].as_u64()),
        );
    }
    eprintln!(
        "replicate --follow, S3 to S3 (moto), 250 writes/s: lag p50 {} ms, p99 {} ms over {} runs; {} ms while the target was frozen 5 s; {} re-sent after the kill",
        percentile(&mut steady, 0.5),
        percentile(&mut steady, 0.99),
        steady.len(),
        lag_frozen,
        resent.len()
    );

    // the replica alone restores every backup version and the newest exactly
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_bindspace"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let backups = run(&["list", "--json", "--repo", &to]);
    let mut versions: BTreeSet<u64> = backups
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_version"].as_u64().unwrap())
        .collect();
    assert!(versions.len() >= 3, "{backups}");
    versions.insert(last);
    for v in versions {
        let r = run(&[
            "restore",
            "--to-version",
            &v.to_string(),
            "--json",
            "--repo",
            &to,
        ]);
        assert_eq!(
            r["digest"].as_str().unwrap(),
            state_at(&acked, v).digest().to_string(),
            "version {v} from the replica"
        );
    }
}
