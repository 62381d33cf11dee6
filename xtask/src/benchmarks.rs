//! Turns criterion's estimates into the ratio table of `docs/BENCHMARKS.md`.

use std::path::Path;

use anyhow::{Context, Result};

/// A target stated as a ratio of two benches measured in the same run.
struct Ratio {
    what: &'static str,
    /// criterion `group/id` of the measured path
    ours: &'static str,
    /// criterion `group/id` of the baseline
    base: &'static str,
    /// `true`: target is `base / ours >= limit` (a speed-up); `false`: `ours / base <= limit`.
    speedup: bool,
    /// `None`: reported, no target.
    limit: Option<f64>,
}

const RATIOS: &[Ratio] = &[
    Ratio {
        what: "writer throughput with state roots maintained vs without (655 writes)",
        ours: "roots/writes_1pct_roots_on",
        base: "roots/writes_1pct_roots_off",
        speedup: true,
        limit: Some(0.95),
    },
    Ratio {
        what: "state root update after a 1% incremental vs hashing the full space (blake3 of 82 MB)",
        ours: "roots/root_update_1pct",
        base: "roots/digest_full",
        speedup: false,
        limit: Some(0.05),
    },
    Ratio {
        what: "state root rebuilt from every fingerprint vs hashing the full space",
        ours: "roots/root_rebuild_full",
        base: "roots/digest_full",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "compute_dirty at 1% vs the seed's full scan (speed-up)",
        ours: "foundation/compute_dirty_1pct",
        base: "foundation/seed_baseline_1pct",
        speedup: true,
        limit: Some(100.0),
    },
    Ratio {
        what: "compute by scan, two full spaces, vs memcpy of 82 MB",
        ours: "foundation/compute_scan_full",
        base: "foundation/memcpy_82MB",
        speedup: false,
        limit: Some(2.0),
    },
    Ratio {
        what: "snapshot encode + blake3, full space, vs memcpy",
        ours: "foundation/snapshot_encode_full",
        base: "foundation/memcpy_82MB",
        speedup: false,
        limit: Some(3.0),
    },
    Ratio {
        what: "snapshot decode + verify, full space, vs memcpy",
        ours: "foundation/snapshot_decode_full",
        base: "foundation/memcpy_82MB",
        speedup: false,
        limit: Some(3.0),
    },
    Ratio {
        what: "snapshot encode into fresh memory (page faults included) vs memcpy",
        ours: "foundation/snapshot_encode_fresh",
        base: "foundation/memcpy_82MB",
        speedup: false,
        limit: Some(3.0),
    },
    Ratio {
        what: "snapshot decode into a fresh space (page faults included) vs memcpy",
        ours: "foundation/snapshot_decode_fresh",
        base: "foundation/memcpy_82MB",
        speedup: false,
        limit: Some(3.0),
    },
    Ratio {
        what: "WAL append, SyncPolicy::Never, vs a plain write of the same frame",
        ours: "wal/append_never",
        base: "wal/plain_write",
        speedup: false,
        limit: Some(2.0),
    },
    Ratio {
        what: "durable appends per fdatasync, 1 writer",
        ours: "wal/group_commit_1",
        base: "wal/write_fdatasync",
        speedup: true,
        limit: None,
    },
    Ratio {
        what: "durable appends per fdatasync, 8 writers",
        ours: "wal/group_commit_8",
        base: "wal/write_fdatasync",
        speedup: true,
        limit: None,
    },
    Ratio {
        what: "durable appends per fdatasync, 32 writers",
        ours: "wal/group_commit_32",
        base: "wal/write_fdatasync",
        speedup: true,
        limit: Some(20.0),
    },
    Ratio {
        what: "group commit, 32 writers, time per append vs one 32-frame write + fdatasync / 32 (the hand-off)",
        ours: "wal/group_commit_32",
        base: "wal/write_fdatasync_32_frames_per_frame",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "WAL recovery (open + replay 1M records) vs reading the same bytes",
        ours: "wal/recover_1M",
        base: "wal/read_1M_bytes",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "full snapshot upload (local): encode + blake3 + put vs a bare put of the same bytes",
        ours: "store/local_snapshot_upload",
        base: "store/local_plain_put",
        speedup: false,
        limit: Some(1.3),
    },
    Ratio {
        what: "full snapshot download (local): get + verify + decode vs a bare get",
        ours: "store/local_snapshot_download",
        base: "store/local_plain_get",
        speedup: false,
        limit: Some(1.3),
    },
    Ratio {
        what: "full snapshot upload (s3): encode + blake3 + put vs a bare put of the same bytes",
        ours: "store/s3_snapshot_upload",
        base: "store/s3_plain_put",
        speedup: false,
        limit: Some(1.3),
    },
    Ratio {
        what: "full snapshot download (s3): get + verify + decode vs a bare get",
        ours: "store/s3_snapshot_download",
        base: "store/s3_plain_get",
        speedup: false,
        limit: Some(1.3),
    },
    Ratio {
        what: "Lance snapshot write vs native upload (local)",
        ours: "store_lance/local_lance_write",
        base: "store_lance/local_native_write",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "Lance snapshot read vs native download (local)",
        ours: "store_lance/local_lance_read",
        base: "store_lance/local_native_read",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "offline resize 156 → 200 words, full space, vs memcpy of 82 MB",
        ours: "migrate/resize_156_to_200_full",
        base: "migrate/memcpy_82MB",
        speedup: false,
        limit: Some(3.0),
    },
    Ratio {
        what: "writer throughput during back-to-back online migrations, share of alone",
        ours: "migrate/online_writes_during_migration",
        base: "migrate/online_writes_alone",
        speedup: true,
        limit: Some(0.7),
    },
    Ratio {
        what: "Redis: push of a 1%-changed delta vs one bare SET of the same bytes",
        ours: "warm/redis_delta_push_1pct",
        base: "warm/redis_bare_set_delta",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "Redis: full snapshot put vs pipelined bulk SET of the same chunks",
        ours: "warm/redis_snapshot_put",
        base: "warm/redis_bulk_set_same_chunks",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "PostgreSQL: full snapshot put vs a bare binary COPY of the same chunks",
        ours: "warm/pg_snapshot_put",
        base: "warm/pg_bare_copy_same_chunks",
        speedup: false,
        limit: None,
    },
    Ratio {
        what: "RTO (local): full + 24 deltas + 10k WAL records vs reading + decoding the full",
        ours: "pitr/local_restore_full_24_deltas_10k_wal",
        base: "pitr/local_read_decode_full",
        speedup: false,
        limit: Some(1.5),
    },
    Ratio {
        what: "RTO (s3): full + 24 deltas + 10k WAL records vs reading + decoding the full",
        ours: "pitr/s3_restore_full_24_deltas_10k_wal",
        base: "pitr/s3_read_decode_full",
        speedup: false,
        limit: Some(1.5),
    },
    Ratio {
        what: "writer throughput with background backups on (a full every 5 s), share of off",
        ours: "pitr/writes_jobs_on",
        base: "pitr/writes_jobs_off",
        speedup: true,
        limit: Some(0.8),
    },
    Ratio {
        what: "writer throughput with background backups on (default settings), share of off",
        ours: "pitr/writes_jobs_on_defaults",
        base: "pitr/writes_jobs_off",
        speedup: true,
        limit: Some(0.95),
    },
];

/// Median time in ns from `criterion/<id>/new/estimates.json`.
fn median_ns(criterion: &Path, id: &str) -> Result<f64> {
    let p = criterion.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let at = text.find("\"median\"").context("no median in estimates")?;
    let rest = &text[at..];
    let pe = rest
        .find("\"point_estimate\":")
        .context("no point_estimate")?
        + "\"point_estimate\":".len();
    let num: String = rest[pe..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    num.parse()
        .with_context(|| format!("bad number {num:?} in {}", p.display()))
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Prints the ratio table (markdown) for every ratio whose benches have run.
pub fn report() -> Result<()> {
    let criterion = crate::target_dir().join("criterion");
    println!("\n| target | ours | baseline | ratio | limit | met |");
    println!("|---|---|---|---|---|---|");
    for r in RATIOS {
        let (Ok(ours), Ok(base)) = (median_ns(&criterion, r.ours), median_ns(&criterion, r.base))
        else {
            continue;
        };
        let ratio = if r.speedup { base / ours } else { ours / base };
        let (limit, met) = match r.limit {
            None => ("—".to_string(), "(no target)"),
            Some(l) if r.speedup => (format!("≥ {l}x"), if ratio >= l { "yes" } else { "**no**" }),
            Some(l) => (format!("≤ {l}x"), if ratio <= l { "yes" } else { "**no**" }),
        };
        println!(
            "| {} | {} | {} | {ratio:.2}x | {limit} | {met} |",
            r.what,
            fmt_ns(ours),
            fmt_ns(base)
        );
    }
    for extra in ["foundation/sizes.txt", "pitr/rpo.txt"] {
        if let Ok(text) = std::fs::read_to_string(criterion.join(extra)) {
            println!("\n{}", text.trim());
        }
    }
    Ok(())
}
