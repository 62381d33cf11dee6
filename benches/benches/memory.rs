//! Peak memory of a full backup and of a restore (issue 22): peak RSS minus the RSS
//! before, as a share of the space's own size (65,536 addresses × 156 words, 81.8 MB).
//!
//! Not criterion: one measurement each, in this process, with the peak reset before
//! each (`/proc/self/clear_refs` ← 5 resets `VmHWM`). A local-directory repository,
//! and the S3 server too when `BINDSPACE_TEST_S3_URL` is set (`cargo xtask services
//! up`). Figures go to stdout and `<target>/criterion/memory/figures.txt`.
//!
//! ```sh
//! cargo bench -p bindspace-benches --features pitr --bench memory
//! ```

use bindspace::Engine;
use bindspace_benches::bench_config;
use bindspace_catalog::BackupKind;
use bindspace_core::workload::Workload;
use bindspace_core::{Fingerprint, SchemaVersion};
use bindspace_pitr::Target;
use bindspace_wal::Op;

fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number of kB");
    kb * 1024
}

/// Resets the peak and returns the RSS now.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    status("VmRSS:")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut dests = vec![(
        "local",
        format!("file://{}", tmp.path().join("repo").display()),
    )];
    if let Ok(s3) = std::env::var("BINDSPACE_TEST_S3_URL") {
        dests.push(("s3", format!("{s3}/bench-memory-{}", std::process::id())));
    }
    let space_bytes = 65_536 * 156 * 8;
    let mut lines = Vec::new();
    for (name, dest) in &dests {
        let engine = Engine::open(
            tmp.path().join(format!("data-{name}")),
            bench_config(dest.clone(), false),
        )
        .expect("engine");
        {
            let mut w = Workload::new(5, SchemaVersion::CURRENT);
            let full = w.filled_space(1.0).expect("fill");
            let ops: Vec<Op> = full
                .iter()
                .map(|(a, fp)| Op::Write(a, Fingerprint::from_words(fp.to_vec())))
                .collect();
            drop(full);
            for c in ops.chunks(1024) {
                engine.apply(c.to_vec()).expect("populate");
            }
        }
        let before = reset_peak();
        engine.backup_now(BackupKind::Full).expect("full");
        let peak = status("VmHWM:");
        let share = peak.saturating_sub(before) as f64 / space_bytes as f64;
        lines.push(format!(
            "{name} full backup: RSS before {:.1} MB, peak {:.1} MB, peak - before = {:.2}x the space (target <= 1.5x)",
            before as f64 / 1e6,
            peak as f64 / 1e6,
            share
        ));
        let version = engine.version();
        engine.close().expect("close");

        let stores = rt
            .block_on(bindspace::stores::open_all(std::slice::from_ref(dest)))
            .expect("stores");
        let before = reset_peak();
        let (space, _) = rt
            .block_on(bindspace_pitr::restore_to(
                &stores,
                &Target::Version(version),
            ))
            .expect("restore");
        let peak = status("VmHWM:");
        assert_eq!(space.len(), 65_536);
        drop(space);
        let share = peak.saturating_sub(before) as f64 / space_bytes as f64;
        lines.push(format!(
            "{name} restore of that full: RSS before {:.1} MB, peak {:.1} MB, peak - before = {:.2}x the space (target <= 1.3x)",
            before as f64 / 1e6,
            peak as f64 / 1e6,
            share
        ));
    }
    let text = lines.join("\n") + "\n";
    print!("{text}");
    bindspace_benches::write_figures("memory", "figures.txt", &text);
}
