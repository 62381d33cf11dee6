//! Crash test: a real writer process is killed with SIGKILL at random moments; after
//! each kill the log is reopened and every acknowledged write must be there, and every
//! record must be exactly what was written (nothing torn is visible).
//!
//! `cargo xtask test` runs 50 kills; `cargo xtask crash --kills 1000` the long version
//! (`BINDSPACE_CRASH_KILLS` sets the count).
#![allow(clippy::disallowed_methods)] // tests time real servers and processes on the wall clock
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
use bindspace_wal::{DurableSpace, Op, RecordOp, ReplayTarget, SyncPolicy, Wal, WalOptions};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

const CHILD_ENV: &str = "BINDSPACE_CRASH_CHILD";
const WORDS: usize = 8;
const SEED: u64 = 0x5eed;

fn opts() -> WalOptions {
    WalOptions {
        // small segments, so kills also land in segment rolls
        segment_size: 64 << 10,
        sync: SyncPolicy::Always,
        ..WalOptions::default()
    }
}

fn schema() -> SchemaVersion {
    SchemaVersion::CURRENT.with_words(WORDS as u16)
}

/// The op that version `v` carries, whoever writes it.
fn op_for(v: u64) -> Op {
    let mut r = Xoshiro256PlusPlus::seed_from_u64(SEED ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let addr = Addr(r.random_range(0..4096u32) as u16);
    if r.random_bool(0.1) {
        Op::Delete(addr)
    } else {
        Op::Write(addr, Fingerprint::random(&mut r, WORDS))
    }
}

/// The writer: appends batches of 1–3 ops forever, printing each acknowledged version.
fn run_writer(dir: &Path, limit: Option<u64>) -> u64 {
    let (ds, _) = DurableSpace::open(dir, BindSpace::new(schema()).unwrap(), opts()).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(std::process::id() as u64);
    let mut acked = ds.read(|s| s.version());
    while limit.is_none_or(|l| acked < l) {
        let n = rng.random_range(1..=3u64);
        let first = acked + 1;
        let ops: Vec<Op> = (first..first + n).map(op_for).collect();
        acked = ds.apply(ops).unwrap();
        println!("ACK {acked}");
    }
    acked
}

/// The writer role when spawned by the crash test; an in-process smoke run otherwise.
#[test]
fn crash_writer_child() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        run_writer(Path::new(&dir), None);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let acked = run_writer(dir.path(), Some(200));
    let (_, rec) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(rec.last_version, acked);
    assert_eq!(verify(dir.path(), 0).0, acked);
}

/// Replays records after `after`, checking each is exactly `op_for(version)`.
/// Returns (last version, records checked).
fn verify(dir: &Path, after: u64) -> (u64, u64) {
    let (wal, _) = Wal::open(dir, opts()).unwrap();
    let mut checked = 0;
    let last = wal
        .replay(after, ReplayTarget::Latest, |r| {
            if let RecordOp::Op(o) = &r.op {
                assert_eq!(
                    *o,
                    op_for(r.version),
                    "record {} is not what was written",
                    r.version
                );
            }
            checked += 1;
            Ok(())
        })
        .unwrap();
    (last, checked)
}

#[test]
fn killed_writer_loses_no_acknowledged_write() {
    let kills: u32 = std::env::var("BINDSPACE_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let (mut max_acked, mut verified, mut torn, mut checked) = (0u64, 0u64, 0u32, 0u64);
    let mut losses = 0u64;
    let started = Instant::now();
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").and_then(|v| v.parse::<u64>().ok()))
                .max()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(5..60)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "kill {kill}: the writer exited by itself: {status}"
        );
        if let Some(a) = reader.join().unwrap() {
            max_acked = max_acked.max(a);
        }
        let (_, rec) = Wal::open(dir.path(), opts()).unwrap();
        torn += u32::from(rec.tail_truncated.is_some());
        if rec.last_version < max_acked {
            losses += max_acked - rec.last_version;
        }
        let (last, n) = verify(dir.path(), verified);
        assert_eq!(last, rec.last_version);
        checked += n;
        verified = last;
    }
    println!(
        "crash test: {kills} kills (SIGKILL), {max_acked} versions acknowledged, {verified} recovered, \
         {checked} records verified byte-exact, {torn} torn tails truncated, {losses} acknowledged writes lost, in {:.1?}",
        started.elapsed()
    );
    assert_eq!(losses, 0, "acknowledged writes were lost");
    assert!(max_acked > 0, "no write was acknowledged in {kills} runs");
}
