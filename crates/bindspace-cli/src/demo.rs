//! `bindspace demo` on the embedded default: everything in one local directory.
//!
//! The engine runs on a local directory (no server at all): every write goes through
//! the WAL, backups are a full, one incremental per round and a differential, the WAL
//! is archived to the repository in the background; restores go through the PITR
//! planner to exact versions, a time and a restore point that no backup holds alone.
//! It ends with the proof an operator would run: a restore drill through the engine
//! (a sentinel restore point restored and timed) and a standard-level verify.

// The demo shows the operator how long each step took, and waits a moment so its
// time target falls between two writes.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bindspace::{BackupConfig, Engine};
use bindspace_catalog::BackupKind;
use bindspace_core::workload::Workload;
use bindspace_core::{Clock, Digest, SystemClock};
use bindspace_pitr::Target;
use bindspace_wal::Op;

use crate::DemoArgs;

/// Ops per WAL append (one atomic batch, one fsync shared by all of them).
const BATCH: usize = 32;

struct Row {
    what: String,
    version: u64,
    bytes: u64,
    took: Duration,
    note: String,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    ensure!(
        (0.0..=1.0).contains(&args.fill),
        "--fill must be between 0.0 and 1.0"
    );
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("bindspace-demo-{}", std::process::id())),
            true,
        ),
    };
    let res = run_in(args, &dir);
    if temporary {
        let _ = fs::remove_dir_all(&dir);
        if res.is_ok() {
            println!("(a temporary directory, removed again: `--dir DIR` keeps it)");
        }
    }
    res
}

/// Runs `n` workload ops through the engine in atomic batches; returns the last version.
fn run_ops(engine: &Engine, wl: &mut Workload, n: usize) -> Result<u64> {
    let mut left = n;
    let mut last = engine.version();
    while left > 0 {
        let k = left.min(BATCH);
        // ops are drawn against the current state, then logged and applied together
        let ops: Vec<Op> = engine.read(|s| (0..k).map(|_| wl.next_op(s).into()).collect());
        last = engine.apply(ops)?;
        left -= k;
    }
    Ok(last)
}

fn run_in(args: &DemoArgs, dir: &Path) -> Result<()> {
    let clock = SystemClock;
    let data = dir.join("data");
    if data.exists() {
        bail!(
            "{} already holds a demo; pass an empty --dir",
            dir.display()
        );
    }
    let repo_url = format!("file://{}", data.join("repo").display());
    let mut rows = Vec::new();
    eprintln!(
        "bindspace demo: engine data and repository in {}",
        data.display()
    );
    let cfg = BackupConfig {
        fingerprint_words: args.words,
        // the demo triggers backups itself so its output is the same every run; the
        // background job still seals and archives the WAL every 100 ms
        delta_interval_ms: 3_600_000,
        full_snapshot_interval_ms: 24 * 3_600_000,
        archive_interval_ms: 100,
        ..BackupConfig::default()
    };
    let engine = Engine::open(&data, cfg.clone())?;
    let schema = engine.read(|s| s.schema());

    // 1. A populated space, every write through the WAL.
    let t = Instant::now();
    let mut wl = Workload::new(args.seed, schema);
    let fill = wl.filled_space(args.fill)?;
    let all: Vec<Op> = fill
        .iter()
        .map(|(a, fp)| Op::Write(a, bindspace_core::Fingerprint::from_words(fp.to_vec())))
        .collect();
    for chunk in all.chunks(256) {
        engine.apply(chunk.to_vec())?;
    }
    rows.push(Row {
        what: "populate (WAL)".into(),
        version: engine.version(),
        bytes: 0,
        took: t.elapsed(),
        note: format!("{} of {} addresses", fill.len(), fill.address_space()),
    });

    // 2. Full backup, then rounds of writes, each backed up as an incremental from
    //    dirty tracking; a differential and a restore point along the way. In the
    //    middle of the last round, remember a version and a time no backup holds.
    let mut backups = 0;
    let mut backup = |kind: BackupKind, rows: &mut Vec<Row>| -> Result<u64> {
        let t = Instant::now();
        let e = engine
            .backup_now(kind)?
            .context("the workload changed the space, so a backup is due")?;
        backups += 1;
        rows.push(Row {
            what: format!("{} backup", e.kind.name()),
            version: e.to_version,
            bytes: e.size,
            took: t.elapsed(),
            note: format!("{} (versions {}..={})", e.id, e.from_version, e.to_version),
        });
        Ok(e.to_version)
    };
    backup(BackupKind::Full, &mut rows)?;
    let mut boundary = 0;
    let mut boundary_digest = None;
    let mut mid: Option<(u64, u64, Digest)> = None;
    for round in 1..=args.rounds {
        if round == args.rounds {
            let v = run_ops(&engine, &mut wl, args.ops / 2)?;
            mid = Some((v, clock.now_us(), engine.read(|s| s.digest())));
            std::thread::sleep(Duration::from_millis(2));
            run_ops(&engine, &mut wl, args.ops - args.ops / 2)?;
        } else {
            run_ops(&engine, &mut wl, args.ops)?;
        }
        let kind = if round == args.rounds.div_ceil(2) && args.rounds > 1 {
            BackupKind::Differential
        } else {
            BackupKind::Incremental
        };
        let v = backup(kind, &mut rows)?;
        if round == args.rounds.div_ceil(2) {
            boundary = v;
            boundary_digest = Some(engine.read(|s| s.digest()));
        }
    }
    let boundary_digest = boundary_digest.context("the middle round records its state")?;
    let point_version = engine.restore_point("demo-point", true)?;
    let point_digest = engine.read(|s| s.digest());
    // 3. Writes after the last backup: only the WAL (archived) has them.
    let latest = run_ops(&engine, &mut wl, args.ops / 3 + 1)?;
    let latest_digest = engine.read(|s| s.digest());
    let status = engine.status();
    engine.close()?; // seals and archives the rest of the WAL
    rows.push(Row {
        what: "WAL archive".into(),
        version: latest,
        bytes: 0,
        took: Duration::ZERO,
        note: format!(
            "{} segments archived to the repository",
            status.segments_archived
        ),
    });

    // 4. Point-in-time restores from the repository alone.
    let rt = tokio::runtime::Runtime::new().context("starting the I/O runtime")?;
    let stores = rt.block_on(bindspace::stores::open_all(std::slice::from_ref(&repo_url)))?;
    let (mid_version, mid_time, mid_digest) = mid.expect("the last round records a midpoint");
    let targets = [
        ("PITR latest", Target::Latest, latest, latest_digest),
        (
            "PITR mid-round",
            Target::Version(mid_version),
            mid_version,
            mid_digest,
        ),
        (
            "PITR at a delta",
            Target::Version(boundary),
            boundary,
            boundary_digest,
        ),
        (
            "PITR restore point",
            Target::RestorePoint("demo-point".into()),
            point_version,
            point_digest,
        ),
        ("PITR time", Target::Time(mid_time), mid_version, mid_digest),
    ];
    let n_targets = targets.len();
    for (label, target, version, want) in targets {
        let t = Instant::now();
        let (restored, plan) = rt.block_on(bindspace_pitr::restore_to(&stores, &target))?;
        let took = t.elapsed();
        ensure!(
            restored.version() == version,
            "{label}: restored version {} != {version}",
            restored.version()
        );
        let got = restored.digest();
        ensure!(
            got == want,
            "{label}: digest mismatch at version {version}: restored {got}, recorded {want}"
        );
        rows.push(Row {
            what: label.to_string(),
            version,
            bytes: plan.estimated_bytes,
            took,
            note: format!(
                "digest ok ({}…): full + {} deltas + {} WAL segments",
                &want.to_string()[..12],
                plan.deltas.len(),
                plan.wal.len()
            ),
        });
    }

    // 5. Proof the repository will restore: a restore drill through the engine (a
    //    sentinel restore point, restored and timed), then a verification.
    let t = Instant::now();
    let engine = Engine::open(&data, cfg)?;
    let drill = engine.drill(&bindspace_dr::DrillOptions::default());
    engine.close()?;
    let drill = drill?;
    ensure!(drill.passed(), "the restore drill failed:\n{drill}");
    let run = drill
        .runs
        .first()
        .context("the drill restores from the store")?;
    rows.push(Row {
        what: "restore drill".into(),
        version: run.version.unwrap_or(0),
        bytes: 0,
        took: t.elapsed(),
        note: format!(
            "sentinel restored, RTO {} ms, RPO {} ms",
            run.rto_ms,
            run.rpo_ms.unwrap_or(0)
        ),
    });
    let t = Instant::now();
    let repo = bindspace_catalog::Repository::new(stores.clone(), Arc::new(SystemClock), "demo")?;
    let report = rt.block_on(bindspace_dr::verify(
        &repo,
        &SystemClock,
        &bindspace_dr::VerifyOptions {
            level: bindspace_dr::VerifyLevel::Standard,
            ..bindspace_dr::VerifyOptions::default()
        },
    ))?;
    ensure!(
        report.outcome() == bindspace_dr::Outcome::Clean,
        "verify found damage:\n{report}"
    );
    rows.push(Row {
        what: "verify (standard)".into(),
        version: latest,
        bytes: report.stores.iter().map(|s| s.bytes_read).sum(),
        took: t.elapsed(),
        note: format!(
            "clean: {} artifacts read back and decoded",
            report.stores.iter().map(|s| s.checked).sum::<usize>()
        ),
    });

    println!(
        "{:<20} {:>10} {:>14} {:>10}  note",
        "step", "version", "bytes", "time"
    );
    for r in &rows {
        println!(
            "{:<20} {:>10} {:>14} {:>10.1?}  {}",
            r.what, r.version, r.bytes, r.took, r.note
        );
    }
    println!(
        "demo ok: {backups} backups + WAL, {n_targets} point-in-time restores verified by blake3 digest"
    );
    println!("repository: {repo_url}");
    Ok(())
}
