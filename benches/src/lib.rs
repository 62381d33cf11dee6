//! Benchmarks only; see `benches/`. Setup the benches share.

/// Writes the one-shot figures of a bench (not criterion's) to
/// `<target>/criterion/<group>/<file>`, beside criterion's own results, where `cargo
/// xtask bench --report-only` and readers find them. `<target>` is `CARGO_TARGET_DIR`,
/// else the workspace's `target`. Best effort: a bench's figures are also printed.
pub fn write_figures(group: &str, file: &str, text: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("criterion").join(group);
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(file), text);
}

/// The engine settings of the PITR and dr benches: incrementals every second, a full
/// every 5 s, the WAL archived every 250 ms (far more often than the defaults, so a
/// 10 s run sees every job), no WAL sync, no background verify.
#[cfg(feature = "pitr")]
pub fn bench_config(dest: String, background: bool) -> bindspace::BackupConfig {
    bindspace::BackupConfig {
        destinations: vec![dest],
        background_jobs: background,
        sync: "never".into(),
        delta_interval_ms: 1_000,
        full_snapshot_interval_ms: 5_000,
        archive_interval_ms: 250,
        verify_interval_ms: 0,
        ..bindspace::BackupConfig::default()
    }
}

/// Fills every address of a fresh engine at `data` (configured by `cfg`, background
/// jobs off), takes a full, then 24 incrementals of 655 writes each, then 10,000 more
/// WAL records; returns the final version. The repository of the PITR and dr benches.
#[cfg(feature = "pitr")]
pub fn build_chain(data: &std::path::Path, cfg: bindspace::BackupConfig) -> u64 {
    use bindspace::Engine;
    use bindspace_catalog::BackupKind;
    use bindspace_core::SchemaVersion;
    use bindspace_core::workload::Workload;
    let engine = Engine::open(data, cfg).expect("engine");
    let mut w = Workload::new(1, SchemaVersion::CURRENT);
    let full = w.filled_space(1.0).expect("fill");
    let ops: Vec<bindspace_wal::Op> = full
        .iter()
        .map(|(a, fp)| {
            bindspace_wal::Op::Write(a, bindspace_core::Fingerprint::from_words(fp.to_vec()))
        })
        .collect();
    for c in ops.chunks(1024) {
        engine.apply(c.to_vec()).expect("populate");
    }
    engine.backup_now(BackupKind::Full).expect("full");
    for _ in 0..24 {
        for _ in 0..655 {
            let a = w.addr();
            engine.write(a, w.fingerprint()).expect("write");
        }
        engine
            .backup_now(BackupKind::Incremental)
            .expect("incremental");
    }
    for _ in 0..10_000 {
        let a = w.addr();
        engine.write(a, w.fingerprint()).expect("write");
    }
    let v = engine.version();
    engine.close().expect("close");
    v
}
