//! Foundation hot paths, each beside the baseline its target is a ratio to (the
//! foundation issue's targets). `cargo xtask bench` runs this and prints the ratios from criterion's
//! estimates; `docs/BENCHMARKS.md` records them.

use std::hint::black_box;
use std::time::Duration;

use bindspace_core::workload::Workload;
use bindspace_core::{Addr, BindSpace, HEADER_LEN, SchemaVersion, snapshot};
use bindspace_xor_delta as xd;
use criterion::{Criterion, criterion_group, criterion_main};

/// The seed's incremental algorithm, kept as the baseline: scan every address, compare
/// `Option<fingerprint>`s, XOR every changed pair.
fn seed_baseline(old: &BindSpace, new: &BindSpace) -> Vec<(Addr, Option<Vec<u64>>)> {
    let mut out = Vec::new();
    for a in 0..=u16::MAX {
        let a = Addr(a);
        let (o, n) = (old.read(a), new.read(a));
        if o != n {
            let x = match (o, n) {
                (Some(o), Some(n)) => Some(o.iter().zip(n).map(|(x, y)| x ^ y).collect()),
                (None, Some(n)) => Some(n.to_vec()),
                _ => None,
            };
            out.push((a, x));
        }
    }
    out
}

fn foundation(c: &mut Criterion) {
    let schema = SchemaVersion::CURRENT;
    let mut wl = Workload::new(1, schema);
    let full = wl.filled_space(1.0).expect("valid");
    let bytes = full.len() * full.words() * 8;

    let mut g = c.benchmark_group("foundation");
    g.sample_size(20).measurement_time(Duration::from_secs(6));

    // Baseline for the "within Nx of memcpy" targets: one copy of the arena's bytes.
    let src = vec![7u8; bytes];
    let mut dst = vec![0u8; bytes];
    g.bench_function("memcpy_82MB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });

    // 1% of addresses changed in one word: dirty tracking vs the seed's full scan.
    let mut live = full.clone();
    let before = live.clone();
    let mark = live.mark();
    wl.touch_occupied(&mut live, 655, 1).expect("valid");
    g.bench_function("compute_dirty_1pct", |b| {
        b.iter(|| xd::compute_dirty(black_box(&live), &mark, 0).expect("fresh mark"))
    });
    g.bench_function("seed_baseline_1pct", |b| {
        b.iter(|| seed_baseline(black_box(&before), black_box(&live)))
    });
    g.bench_function("compute_scan_full", |b| {
        b.iter(|| xd::compute(black_box(&before), black_box(&live), 0).expect("shape"))
    });

    let encoded = snapshot::encode(&full, 0);
    g.throughput(criterion::Throughput::Bytes(bytes as u64));
    // Warm: the output buffer / target space is reused, as in a backup or standby loop
    // (the memcpy baseline reuses its destination too).
    let mut buf = Vec::new();
    g.bench_function("snapshot_encode_full", |b| {
        b.iter(|| snapshot::encode_into(black_box(&full), 0, &mut buf))
    });
    let mut target = full.clone();
    g.bench_function("snapshot_decode_full", |b| {
        b.iter(|| snapshot::decode_into(black_box(&encoded), &mut target).expect("valid"))
    });
    // Cold: fresh memory each time, which adds ~20,000 page faults for 82 MB.
    g.bench_function("snapshot_encode_fresh", |b| {
        b.iter(|| snapshot::encode(black_box(&full), 0))
    });
    g.bench_function("snapshot_decode_fresh", |b| {
        b.iter(|| snapshot::decode(black_box(&encoded)).expect("valid"))
    });
    g.finish();

    // Not a timing: the encoded size of that 1% delta, for the bytes-per-address target.
    let d = xd::compute_dirty(&live, &mark, 0).expect("fresh mark");
    let per_addr = (xd::encode(&d).len() - HEADER_LEN - 4) as f64 / d.entries.len() as f64;
    let line = format!(
        "delta_bytes_per_changed_addr {per_addr:.1} ({} addresses, one word each)\n",
        d.entries.len()
    );
    print!("{line}");
    bindspace_benches::write_figures("foundation", "sizes.txt", &line);
}

/// State roots: what keeping them costs a writer, and what bringing the root current
/// after a 1% incremental costs next to hashing the whole space.
fn roots(c: &mut Criterion) {
    let schema = SchemaVersion::CURRENT;
    let mut wl = Workload::new(2, schema);
    let full = wl.filled_space(1.0).expect("valid");
    // 655 distinct occupied addresses (1%) and the fingerprints written there
    let mut addrs: Vec<Addr> = (0..655u32)
        .map(|i| Addr(((i * 40_503) % 65_536) as u16))
        .collect();
    addrs.sort();
    addrs.dedup();
    let fps: Vec<Vec<u64>> = addrs
        .iter()
        .enumerate()
        .map(|(i, _)| vec![i as u64 ^ 0x5555; full.words()])
        .collect();

    let mut g = c.benchmark_group("roots");
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    // the writer's own cost: 655 writes, with the per-write root bookkeeping on or off
    // (the root is brought current, and the dirty epoch restarted, outside the timing)
    for (name, on) in [
        ("writes_1pct_roots_on", true),
        ("writes_1pct_roots_off", false),
    ] {
        let mut live = full.clone();
        live.set_root_tracking(on);
        live.state_root();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    if on {
                        live.state_root();
                    }
                    live.mark();
                    let t = std::time::Instant::now();
                    for (a, fp) in addrs.iter().zip(&fps) {
                        black_box(live.write(*a, fp).expect("valid"));
                    }
                    took += t.elapsed();
                }
                took
            })
        });
    }
    // the root after those 655 writes, from a current tree
    let mut live = full.clone();
    live.state_root();
    g.bench_function("root_update_1pct", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for i in 0..iters {
                for (a, fp) in addrs.iter().zip(&fps) {
                    let mut fp = fp.clone();
                    fp[0] ^= i;
                    live.write(*a, &fp).expect("valid");
                }
                live.mark();
                let t = std::time::Instant::now();
                black_box(live.state_root());
                took += t.elapsed();
            }
            took
        })
    });
    g.bench_function("digest_full", |b| b.iter(|| black_box(&full).digest()));
    g.bench_function("root_rebuild_full", |b| {
        b.iter(|| black_box(&full).state_root_rebuilt())
    });
    g.finish();
}

criterion_group!(benches, foundation, roots);
criterion_main!(benches);
