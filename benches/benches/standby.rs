//! Issue 18: the figures of a warm standby, sampled (not timed by criterion):
//!
//! - standby lag under steady writes: an engine writing full-size fingerprints without
//!   pause (archiving every 250 ms, incrementals every 1 s, a full every 5 s), a
//!   `Standby` catching up every 100 ms; after each catch-up, the age of the oldest
//!   acknowledged write it does not hold yet (0 when it holds every one), p50/p99;
//! - switchover time: from `Standby::switchover` (the primary closed cleanly, its WAL
//!   archived to the end, the standby caught up and checked against the primary's
//!   final state, promoted) to the first write the new engine accepts, over several
//!   rounds.
//!
//! The figures go to `<target>/criterion/standby/figures.txt`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bindspace::{Engine, Standby};
use bindspace_benches::bench_config as cfg;
use bindspace_core::SchemaVersion;
use bindspace_core::workload::Workload;

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0)
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut figures = String::new();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let store = || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(bindspace::stores::open_with(&repo, Duration::from_secs(30)))
            .expect("store")
    };

    // standby lag under steady writes
    let engine = Arc::new(
        Engine::open(tmp.path().join("primary"), cfg(repo.clone(), true)).expect("engine"),
    );
    engine
        .backup_now(bindspace_catalog::BackupKind::Full)
        .expect("full");
    let stop = Arc::new(AtomicBool::new(false));
    // when each acknowledged version was written
    let written: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let writer = {
        let (engine, stop, written) = (engine.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut w = Workload::new(5, SchemaVersion::CURRENT);
            while !stop.load(Ordering::Relaxed) {
                let a = w.addr();
                let v = engine.write(a, w.fingerprint()).expect("write");
                written.lock().expect("lock").push((v, Instant::now()));
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let mut standby = Standby::open(vec![store()], None).expect("standby");
    let mut lags = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        standby.catch_up().expect("catch up");
        let at = standby.version();
        let now = Instant::now();
        let w = written.lock().expect("lock");
        // the oldest acknowledged write the standby does not hold
        let i = w.partition_point(|(v, _)| *v <= at);
        lags.push(w.get(i).map_or(0, |(_, t)| (now - *t).as_millis() as u64));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let rate = {
        let w = written.lock().expect("lock");
        let secs = match (w.first(), w.last()) {
            (Some((_, a)), Some((_, b))) => (*b - *a).as_secs_f64().max(1e-3),
            _ => 1.0,
        };
        w.len() as f64 / secs
    };
    let max = lags.iter().copied().max().unwrap_or(0);
    writeln!(
        figures,
        "standby lag under steady writes ({rate:.0} writes/s of 156-word fingerprints; archive every 250 ms, incrementals every 1 s, a full every 5 s; a catch-up every 100 ms), {} catch-ups: age of the oldest write not applied p50 {} ms, p99 {} ms, max {} ms",
        lags.len(),
        pct(&mut lags, 0.5),
        pct(&mut lags, 0.99),
        max
    )
    .expect("string");

    // switchover, round after round: each promoted engine is the next primary
    let Ok(mut primary) = Arc::try_unwrap(engine) else {
        panic!("the writer has stopped: the engine has one owner");
    };
    let mut times = Vec::new();
    let mut w = Workload::new(6, SchemaVersion::CURRENT);
    for round in 0..5 {
        for _ in 0..2_000 {
            primary.write(w.addr(), w.fingerprint()).expect("write");
        }
        primary.archive_now().expect("archive");
        let standby = Standby::open(vec![store()], None).expect("standby");
        for _ in 0..500 {
            primary.write(w.addr(), w.fingerprint()).expect("write");
        }
        let next = Engine::builder(tmp.path().join(format!("promoted-{round}")))
            .config(cfg(repo.clone(), true));
        let t = Instant::now();
        let promoted = standby.switchover(primary, next).expect("switchover");
        promoted
            .write(w.addr(), w.fingerprint())
            .expect("first write");
        times.push(t.elapsed().as_millis() as u64);
        primary = promoted;
    }
    primary.close().expect("close");
    let max = times.iter().copied().max().unwrap_or(0);
    writeln!(
        figures,
        "switchover (500 writes not yet archived when it starts; close, catch up, check, promote, first write), {} rounds: p50 {} ms, max {} ms",
        times.len(),
        pct(&mut times, 0.5),
        max
    )
    .expect("string");

    print!("{figures}");
    bindspace_benches::write_figures("standby", "figures.txt", &figures);
}
