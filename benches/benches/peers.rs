//! Side by side with the tools an operator would use instead (issue 22): the bytes a
//! second backup adds and its wall time, ours against `xdelta3`, `zstd --patch-from`,
//! `restic` and `borg`, on one pair of full spaces A → B written as native snapshot
//! files, for three change patterns; then the restore of B from each.
//!
//! Run it with `cargo xtask bench --peers` (installs the four tools from Debian when
//! missing). Not criterion: each measure is one command over 82 MB, repeated
//! `BINDSPACE_PEERS_RUNS` times (default 3) from scratch; the table gives the median
//! time and the bytes of the first run, and goes to stdout and to
//! `<target>/criterion/peers/table.md`.
//!
//! - **ours, backup**: the engine's incremental (`Engine::backup_now`: dirty tracking,
//!   encode, blake3, put into a local-directory repository, catalog commit), then an
//!   `fsync` of every file of the repository (the store does not sync its files
//!   itself); bytes = what the repository grew by.
//! - **A and B** are snapshot files in format 1 (no state-root trailer: the trailer's
//!   prefix digests change with nearly every prefix and would be 8 KiB of random bytes
//!   every peer must carry while our delta does not; format 1 differs only in the
//!   payload's blake3).
//! - **xdelta3**: `xdelta3 -e -f -B 134217728 -s A B out` (a source window over the
//!   whole file; the default 64 MiB misses changes past it); bytes = the patch.
//! - **zstd**: `zstd -q -f --long=27 --patch-from=A B -o out` (level 3); bytes = the
//!   patch.
//! - **restic / borg**: a repository holding a first backup of A (`restic init`,
//!   `borg init -e none`), the file then replaced by B, and the timed second `restic
//!   backup` / `borg create`; bytes = what the repository grew by.
//!
//! Every patch and restore is checked against B byte for byte (a fast wrong answer
//! would not count).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bindspace::Engine;
use bindspace_benches::bench_config;
use bindspace_catalog::BackupKind;
use bindspace_core::workload::Workload;
use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion, snapshot};
use bindspace_pitr::Target;
use bindspace_wal::Op;

/// One of the three change patterns from A to B.
struct Pattern {
    name: &'static str,
    /// Distinct addresses changed.
    addrs: usize,
    /// Words changed in each (`None`: the fingerprint is rewritten whole).
    words: Option<usize>,
}

const PATTERNS: [Pattern; 3] = [
    Pattern {
        name: "1% of addresses, one word each",
        addrs: 655,
        words: Some(1),
    },
    Pattern {
        name: "10% of addresses, four words each",
        addrs: 6_554,
        words: Some(4),
    },
    Pattern {
        name: "1% of addresses rewritten whole",
        addrs: 655,
        words: None,
    },
];

/// What one run of one pattern measured: `(tool, bytes added, backup time, restore time)`.
type Run = Vec<(&'static str, u64, Duration, Option<Duration>)>;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` (nothing criterion-shaped here)
    }
    let runs: usize = std::env::var("BINDSPACE_PEERS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for tool in ["xdelta3", "zstd", "restic", "borg"] {
        let ok = Command::new(tool)
            .arg(if tool == "xdelta3" { "-V" } else { "--version" })
            .output()
            .is_ok();
        assert!(
            ok,
            "{tool} is missing: `cargo xtask bench --peers` installs it"
        );
    }
    let mut table = String::from(
        "| change A → B | tool | bytes the second backup adds | backup time | restore of B |\n|---|---|---:|---:|---:|\n",
    );
    for p in &PATTERNS {
        let all: Vec<Run> = (0..runs).map(|r| run_pattern(p, r as u64)).collect();
        for (i, (tool, bytes, _, _)) in all[0].iter().enumerate() {
            let backup = median(all.iter().map(|r| r[i].2).collect());
            let restore = all[0][i]
                .3
                .map(|_| median(all.iter().map(|r| r[i].3.expect("same tools")).collect()));
            table.push_str(&format!(
                "| {} | {tool} | {} | {} | {} |\n",
                p.name,
                thousands(*bytes),
                ms(backup),
                restore.map_or("—".into(), ms),
            ));
        }
    }
    println!("\n{table}");
    bindspace_benches::write_figures("peers", "table.md", &table);
}

fn run_pattern(p: &Pattern, run: u64) -> Run {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir_in(std::env::temp_dir()).expect("tempdir");
    let t = tmp.path();
    let repo = t.join("repo");
    let dest = format!("file://{}", repo.display());
    let engine = Engine::open(t.join("data"), bench_config(dest.clone(), false)).expect("engine");

    // A: every address filled; the engine's full backup of it.
    let mut w = Workload::new(22 + run, SchemaVersion::CURRENT);
    let mut space = w.filled_space(1.0).expect("fill");
    let ops: Vec<Op> = space
        .iter()
        .map(|(a, fp)| Op::Write(a, Fingerprint::from_words(fp.to_vec())))
        .collect();
    for c in ops.chunks(1024) {
        engine.apply(c.to_vec()).expect("populate");
    }
    engine.backup_now(BackupKind::Full).expect("full");
    sync_tree(&repo);
    let a = t.join("A.snap");
    std::fs::write(&a, snapshot::encode_as(&space, 0, 1)).expect("write A");

    // B: the pattern's changes, through the engine and into our copy of the space.
    let changes = changes(p, &mut w, &space);
    for (addr, fp) in &changes {
        space.write(*addr, fp).expect("write");
    }
    let ops: Vec<Op> = changes
        .into_iter()
        .map(|(addr, fp)| Op::Write(addr, Fingerprint::from_words(fp)))
        .collect();
    for c in ops.chunks(1024) {
        engine.apply(c.to_vec()).expect("change");
    }
    let b_bytes = snapshot::encode_as(&space, 0, 1);
    let b = t.join("B.snap");
    std::fs::write(&b, &b_bytes).expect("write B");
    let mut out: Run = Vec::new();

    // ours: the incremental, synced
    let before = tree_bytes(&repo);
    let start = Instant::now();
    let entry = engine
        .backup_now(BackupKind::Incremental)
        .expect("incremental")
        .expect("something changed");
    sync_tree(&repo);
    let backup = start.elapsed();
    let added = tree_bytes(&repo) - before;
    // the repository grew by the artifact and a new catalog generation (the store
    // keeps 16: in a young repository each commit adds a whole manifest)
    println!(
        "{}: ours adds {added} bytes: the delta artifact {} + the catalog {}",
        p.name,
        entry.size,
        added - entry.size
    );
    let version = engine.version();
    engine.close().expect("close");
    // ours: restore of B (full + the incremental, checked against the recorded root),
    // written out as a snapshot file like the peers' restored files
    let stores = rt
        .block_on(bindspace::stores::open_all(std::slice::from_ref(&dest)))
        .expect("stores");
    let restored = t.join("B.restored");
    let start = Instant::now();
    let (got, plan) = rt
        .block_on(bindspace_pitr::restore_to(
            &stores,
            &Target::Version(version),
        ))
        .expect("restore");
    std::fs::write(&restored, snapshot::encode_as(&got, 0, 1)).expect("write restored");
    let restore = start.elapsed();
    assert_eq!(plan.deltas.len(), 1, "{plan}");
    // (its file's header differs from B's in versions, so the content is compared)
    assert!(got.content_eq(&space), "our restore is not B");
    out.push(("ours (incremental)", added, backup, Some(restore)));

    // xdelta3
    let patch = t.join("B.vcdiff");
    let backup = timed(
        Command::new("xdelta3")
            .args(["-e", "-f", "-B", "134217728", "-s"])
            .args([&a, &b, &patch]),
    );
    let restore = timed(
        Command::new("xdelta3")
            .args(["-d", "-f", "-B", "134217728", "-s"])
            .args([&a, &patch, &restored]),
    );
    same_file(&restored, &b_bytes, "xdelta3");
    out.push(("xdelta3", len(&patch), backup, Some(restore)));

    // zstd --patch-from
    let patch = t.join("B.zst");
    let backup = timed(
        Command::new("zstd")
            .args(["-q", "-f", "--long=27"])
            .arg(format!("--patch-from={}", a.display()))
            .arg(&b)
            .arg("-o")
            .arg(&patch),
    );
    let restore = timed(
        Command::new("zstd")
            .args(["-d", "-q", "-f", "--long=27"])
            .arg(format!("--patch-from={}", a.display()))
            .arg(&patch)
            .arg("-o")
            .arg(&restored),
    );
    same_file(&restored, &b_bytes, "zstd");
    out.push(("zstd --patch-from", len(&patch), backup, Some(restore)));

    // restic and borg: a first backup of A, then the timed second one of B
    let src = t.join("src");
    std::fs::create_dir_all(&src).expect("src");
    let file = src.join("space.snap");
    let restic_repo = t.join("restic");
    let restic = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.arg("-q")
            .args(args)
            .env("RESTIC_REPOSITORY", &restic_repo)
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_CACHE_DIR", t.join("restic-cache"));
        c
    };
    let borg_repo = t.join("borg");
    let borg = |args: &[&str]| {
        let mut c = Command::new("borg");
        c.args(args)
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_BASE_DIR", t.join("borg-home"));
        c
    };
    std::fs::copy(&a, &file).expect("A");
    timed(&mut restic(&["init"]));
    timed(restic(&["backup"]).arg(&src));
    let borg_at = |name: &str| format!("{}::{name}", borg_repo.display());
    timed(borg(&["init", "-e", "none"]).arg(&borg_repo));
    timed(borg(&["create"]).arg(borg_at("a")).arg(&src));
    std::fs::write(&file, &b_bytes).expect("B");
    let before = tree_bytes(&restic_repo);
    let backup = timed(restic(&["backup"]).arg(&src));
    let added = tree_bytes(&restic_repo) - before;
    let target = t.join("restic-out");
    let restore = timed(restic(&["restore", "latest", "--target"]).arg(&target));
    same_file(
        &target.join(file.strip_prefix("/").expect("absolute")),
        &b_bytes,
        "restic",
    );
    out.push(("restic", added, backup, Some(restore)));

    let before = tree_bytes(&borg_repo);
    let backup = timed(borg(&["create"]).arg(borg_at("b")).arg(&src));
    let added = tree_bytes(&borg_repo) - before;
    let target = t.join("borg-out");
    std::fs::create_dir_all(&target).expect("borg-out");
    let restore = timed(borg(&["extract"]).arg(borg_at("b")).current_dir(&target));
    same_file(
        &target.join(file.strip_prefix("/").expect("absolute")),
        &b_bytes,
        "borg",
    );
    out.push(("borg", added, backup, Some(restore)));
    out
}

/// The pattern's changes to `space`: distinct addresses, each with its new fingerprint.
fn changes(p: &Pattern, w: &mut Workload, space: &BindSpace) -> Vec<(Addr, Vec<u64>)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(p.addrs);
    while out.len() < p.addrs {
        let a = w.addr();
        if !seen.insert(a) {
            continue;
        }
        let mut noise = w.fingerprint();
        let noise = noise.words_mut();
        let fp = match p.words {
            None => noise.to_vec(),
            Some(k) => {
                let mut fp = space.read(a).expect("a full space").to_vec();
                // k distinct words at random positions, each given a new value
                let n = fp.len();
                let mut picked = Vec::with_capacity(k);
                let mut j = 0;
                while picked.len() < k {
                    let i = (noise[j] % n as u64) as usize;
                    if !picked.contains(&i) {
                        picked.push(i);
                        fp[i] ^= noise[n - 1 - picked.len()] | 1;
                    }
                    j += 1;
                }
                fp
            }
        };
        out.push((a, fp));
    }
    out
}

fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("a peer tool runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn same_file(path: &Path, want: &[u8], who: &str) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{who}: {}: {e}", path.display()));
    assert!(
        got == want,
        "{who} restored something other than B: {} bytes vs {}, first difference at {:?}",
        got.len(),
        want.len(),
        got.iter().zip(want).position(|(a, b)| a != b)
    );
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("patch").len()
}

/// Bytes of every file under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("dir") {
        let e = e.expect("entry");
        let m = e.metadata().expect("metadata");
        n += if m.is_dir() {
            tree_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

/// `fsync` of every file and directory under `dir` (clean ones cost a syscall).
fn sync_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("dir") {
        let e = e.expect("entry");
        if e.metadata().expect("metadata").is_dir() {
            sync_tree(&e.path());
        } else {
            std::fs::File::open(e.path())
                .and_then(|f| f.sync_all())
                .expect("fsync");
        }
    }
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .expect("fsync dir");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
