//! Eight threads appending through group commit.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
use bindspace_wal::{DurableSpace, SyncPolicy, WalOptions};

#[test]
fn eight_threads_appending_share_syncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schema = SchemaVersion::CURRENT.with_words(16);
    let opts = WalOptions {
        sync: SyncPolicy::Always,
        segment_size: 256 << 10,
        ..WalOptions::default()
    };
    let (ds, _) =
        DurableSpace::open(dir.path(), BindSpace::new(schema).unwrap(), opts.clone()).unwrap();
    let ds = Arc::new(ds);
    let per_thread = 400u64;
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            let ds = Arc::clone(&ds);
            std::thread::spawn(move || {
                let mut versions = vec![];
                for i in 0..per_thread {
                    // each thread owns its addresses, so the final content is known
                    let addr = Addr((t * 1000 + i % 500) as u16);
                    let v = ds
                        .write(addr, Fingerprint::from_words(vec![t << 32 | i; 16]))
                        .unwrap();
                    // acknowledged means visible
                    assert!(ds.read(|s| s.version() >= v));
                    versions.push(v);
                }
                versions
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let total = 8 * per_thread;
    assert_eq!(all, (1..=total).collect::<Vec<_>>(), "every version once");
    let stats = ds.wal().stats();
    assert_eq!(stats.durable_version, total);
    assert!(
        stats.syncs < total,
        "group commit shared syncs: {} syncs for {total} appends",
        stats.syncs
    );
    println!(
        "8 threads: {total} durable appends, {} fdatasyncs, {} flushes",
        stats.syncs, stats.flushes
    );
    let digest = ds.read(|s| s.digest());
    drop(ds);
    let (ds, rec) = DurableSpace::open(dir.path(), BindSpace::new(schema).unwrap(), opts).unwrap();
    assert_eq!(rec.last_version, total);
    assert_eq!(ds.read(|s| s.digest()), digest);
    for t in 0..8u64 {
        let last_i = per_thread - 1;
        let addr = Addr((t * 1000 + last_i % 500) as u16);
        assert_eq!(
            ds.read(|s| s.read(addr).map(|w| w[0])),
            Some(t << 32 | last_i)
        );
    }
}
