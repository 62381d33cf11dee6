//! The `bindspace` binary, run as a process.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;

fn bindspace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bindspace"))
}

#[test]
fn demo_backs_up_restores_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bindspace()
        .args([
            "demo", "--rounds", "4", "--ops", "300", "--words", "16", "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run bindspace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("demo ok: 5 versions backed up, 2 restores verified"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("deltas"))
            .expect("deltas")
            .count(),
        4
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("snapshots"))
            .expect("snaps")
            .count(),
        1
    );
    // A second run into the same directory refuses rather than mixing backups.
    let again = bindspace()
        .args(["demo", "--rounds", "1", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run bindspace");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a demo"));
}

#[test]
fn demo_detects_a_damaged_delta_file() {
    // Restores read back what was written; flip a byte in between by running the
    // demo's restore through the library on a damaged copy.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bindspace()
        .args([
            "demo", "--rounds", "2", "--ops", "100", "--words", "8", "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run bindspace");
    assert!(out.status.success());
    let delta = std::fs::read_dir(dir.path().join("deltas"))
        .expect("deltas")
        .next()
        .expect("one delta")
        .expect("entry")
        .path();
    let mut bytes = std::fs::read(&delta).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let err = bindspace_xor_delta::decode(&bytes).expect_err("flip detected");
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn bad_arguments_fail_with_a_one_line_error() {
    let out = bindspace()
        .args(["demo", "--rounds", "0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let out = bindspace()
        .args(["demo", "--fill", "2"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--fill"));
}
