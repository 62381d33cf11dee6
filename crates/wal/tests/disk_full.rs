//! Disk full: appends into a small tmpfs until the device is full. The failing append
//! returns an error, the log is poisoned, and after reopening everything acknowledged
//! before is intact.
//!
//! Needs root to mount the tmpfs (CI and `cargo xtask test` run as root). Under a plain
//! `cargo test` without root it skips, saying why; under CI or xtask it fails instead.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use bindspace_core::{Addr, Fingerprint};
use bindspace_wal::{Error, Op, RecordOp, ReplayTarget, SyncPolicy, Wal, WalOptions};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn must_not_skip() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("BINDSPACE_XTASK").is_some()
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Mount(dir.to_path_buf()))
}

/// A tmpfs of `size` on `dir`; `None` (after saying why) where a plain `cargo test`
/// without root cannot mount one. Under CI or xtask it must.
fn tmpfs_or_skip(dir: &Path, size: &str) -> Option<Mount> {
    match mount_tmpfs(dir, size) {
        Ok(m) => Some(m),
        Err(why) if !must_not_skip() => {
            eprintln!("SKIP disk_full: {why} (needs root; runs under CI and cargo xtask test)");
            None
        }
        Err(why) => panic!("disk-full test cannot set up its file system: {why}"),
    }
}

#[test]
fn a_full_disk_poisons_the_log_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = tmpfs_or_skip(dir.path(), "192k") else {
        return;
    };
    let wal_dir = dir.path().join("wal");
    let opts = WalOptions {
        sync: SyncPolicy::Always,
        segment_size: 48 << 10,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(&wal_dir, opts.clone()).unwrap();
    let fp = |i: u64| Fingerprint::from_words(vec![i; 156]);
    let mut acked = 0u64;
    let err = loop {
        match wal.append(&[Op::Write(Addr(acked as u16), fp(acked + 1))]) {
            Ok(v) => acked = v,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "the 192 KiB file system never filled up");
    };
    assert!(acked > 10, "only {acked} appends fit");
    let msg = err.to_string();
    assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
    assert!(
        msg.contains("No space left") || msg.contains("space"),
        "{msg}"
    );
    // Poisoned: nothing is acknowledged any more, even small writes.
    let again = wal.append(&[Op::Delete(Addr(1))]).unwrap_err();
    assert!(matches!(again, Error::Poisoned { .. }), "{again:?}");
    // and nothing new is started: a roll (the archiver's) is refused, no empty segment
    let segments = || std::fs::read_dir(&wal_dir).unwrap().count();
    let before = segments();
    assert!(matches!(wal.roll(), Err(Error::Poisoned { .. })));
    assert_eq!(segments(), before);
    drop(wal);
    // Reopen on the still-full file system: every acknowledged write is there.
    let (wal, rec) = Wal::open(&wal_dir, opts).unwrap();
    assert!(
        rec.last_version >= acked,
        "recovered {} < acknowledged {acked}",
        rec.last_version
    );
    let mut n = 0;
    wal.replay(0, ReplayTarget::Version(acked), |r| {
        n += 1;
        match &r.op {
            RecordOp::Op(Op::Write(a, f)) => {
                assert_eq!(a.0 as u64, r.version - 1);
                assert_eq!(f, &fp(r.version));
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(n, acked);
    println!("disk full after {acked} acknowledged appends; all {n} intact after reopen");
}

/// Issue 16, item 4: a roll that fails (no space for the next segment) poisons the log:
/// writes do not go on into the old segment as if nothing happened.
#[test]
fn a_failed_roll_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = tmpfs_or_skip(dir.path(), "128k") else {
        return;
    };
    let wal_dir = dir.path().join("wal");
    let opts = WalOptions {
        sync: SyncPolicy::Always,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(&wal_dir, opts).unwrap();
    let acked = wal
        .append(&[Op::Write(Addr(1), Fingerprint::from_words(vec![1; 8]))])
        .unwrap();
    // something else fills the file system
    let filler = dir.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    use std::io::Write as _;
    while f.write_all(&[0u8; 4096]).is_ok() {}
    drop(f);
    let err = wal.roll().unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
    // even with space again, nothing more is acknowledged until the log is reopened
    std::fs::remove_file(&filler).unwrap();
    let again = wal
        .append(&[Op::Write(Addr(2), Fingerprint::from_words(vec![2; 8]))])
        .unwrap_err();
    assert!(matches!(again, Error::Poisoned { .. }), "{again:?}");
    drop(wal);
    let (_, rec) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    assert_eq!(rec.last_version, acked);
}
