//! Recovery: torn tails at every offset, bit flips in sealed segments, salvage, batch
//! atomicity, replay targets, checkpoint and archive.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bindspace_core::{Addr, BindSpace, Fingerprint, ManualClock, SchemaVersion};
use bindspace_wal::segment::{self, SEGMENT_HEADER};
use bindspace_wal::{
    Archiver, DirArchiver, Error, Op, Record, RecordOp, ReplayTarget, SyncPolicy, Wal, WalOptions,
    apply_record,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

const WORDS: usize = 4;

fn opts(segment_size: u64) -> WalOptions {
    WalOptions {
        segment_size,
        // every append synced: damage is then provably to acknowledged records (under
        // `Never` a log proves nothing, and damage reads as a torn write)
        sync: SyncPolicy::Always,
        ..WalOptions::default()
    }
}

fn op(i: u64) -> Op {
    if i % 7 == 3 {
        Op::Delete(Addr((i * 31) as u16))
    } else {
        Op::Write(
            Addr((i * 31) as u16),
            Fingerprint::from_words(vec![i; WORDS]),
        )
    }
}

/// Writes `n` single-op appends; returns the records as the log should hold them.
fn write_log(dir: &Path, n: u64, segment_size: u64) -> Vec<(u64, Op)> {
    let (wal, _) = Wal::open(dir, opts(segment_size)).unwrap();
    (1..=n)
        .map(|i| {
            let v = wal.append(&[op(i)]).unwrap();
            assert_eq!(v, i);
            (v, op(i))
        })
        .collect()
}

fn replay_all(wal: &Wal) -> Vec<(u64, Op)> {
    let mut out = vec![];
    wal.replay(0, ReplayTarget::Latest, |r| {
        if let RecordOp::Op(o) = &r.op {
            out.push((r.version, o.clone()));
        }
        Ok(())
    })
    .unwrap();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// Start offsets of every frame in a segment file.
fn frame_offsets(path: &Path, first: u64) -> Vec<usize> {
    let bytes = std::fs::read(path).unwrap();
    let mut offs = vec![];
    let mut off = SEGMENT_HEADER;
    segment::scan(&bytes, first, |r: &Record| {
        offs.push(off);
        off += bindspace_wal::decode_frame(&bytes[off..]).unwrap().1;
        let _ = r;
    });
    offs
}

#[test]
fn torn_tail_at_every_offset_of_the_last_frame_is_cut_cleanly() {
    let src = tempfile::tempdir().unwrap();
    let written = write_log(src.path(), 20, 1 << 20);
    let segs = segment::list(src.path()).unwrap();
    assert_eq!(segs.len(), 1);
    let (first, path) = &segs[0];
    let last_frame = *frame_offsets(path, *first).last().unwrap();
    let full_len = std::fs::metadata(path).unwrap().len() as usize;
    for cut in last_frame..full_len {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let seg = dir.path().join(path.file_name().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let (wal, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(rec.last_version, 19, "cut at {cut}");
        let t = rec.tail_truncated.as_ref().map(|t| t.bytes);
        assert_eq!(
            t,
            (cut > last_frame).then_some((cut - last_frame) as u64),
            "cut at {cut}"
        );
        assert_eq!(replay_all(&wal), written[..19], "cut at {cut}");
        // and the log continues at the cut version
        assert_eq!(wal.append(&[op(20)]).unwrap(), 20);
        drop(wal);
        let (wal, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(rec.tail_truncated, None);
        assert_eq!(replay_all(&wal), written);
    }
}

#[test]
fn a_thousand_bit_flips_in_a_sealed_segment_are_all_detected() {
    let src = tempfile::tempdir().unwrap();
    let written = write_log(src.path(), 60, 1200);
    let segs = segment::list(src.path()).unwrap();
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let sealed = &segs[0].1;
    let len = std::fs::metadata(sealed).unwrap().len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut detected = 0;
    for _ in 0..1000 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let p = dir.path().join(sealed.file_name().unwrap());
        let mut bytes = std::fs::read(&p).unwrap();
        let bit = rng.random_range(0..len * 8);
        bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
        std::fs::write(&p, &bytes).unwrap();
        match Wal::open(dir.path(), opts(1200)) {
            Err(Error::Corruption { .. } | Error::BadSegment { .. }) => detected += 1,
            other => panic!("bit {bit}: flip not detected: {other:?}"),
        }
        // Salvage keeps only records that are exactly what was written.
        if let Ok((wal, rec)) = Wal::open(
            dir.path(),
            WalOptions {
                salvage: true,
                ..opts(1200)
            },
        ) {
            assert!(rec.salvaged.is_some());
            let got = replay_all(&wal);
            assert_eq!(
                got,
                written[..got.len()],
                "bit {bit}: salvage yielded a wrong record"
            );
        }
    }
    assert_eq!(detected, 1000);
}

#[test]
fn corruption_mid_log_refuses_to_open_and_salvage_moves_the_rest_aside() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_log(dir.path(), 30, 1 << 20);
    let (first, path) = segment::list(dir.path()).unwrap().remove(0);
    let offs = frame_offsets(&path, first);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offs[10] + 12] ^= 0xff; // inside record 11
    std::fs::write(&path, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts(1 << 20)).unwrap_err();
    match &err {
        Error::Corruption { offset, .. } => assert_eq!(*offset as usize, offs[10]),
        e => panic!("{e:?}"),
    }
    assert!(err.to_string().contains("salvage"), "{err}");
    let (wal, rec) = Wal::open(
        dir.path(),
        WalOptions {
            salvage: true,
            ..opts(1 << 20)
        },
    )
    .unwrap();
    let s = rec.salvaged.unwrap();
    assert_eq!(s.offset as usize, offs[10]);
    assert!(
        s.moved_to.join("tail.bin").exists(),
        "the bytes after the damage are kept aside"
    );
    assert_eq!(replay_all(&wal), written[..10]);
    assert_eq!(wal.append(&[op(1)]).unwrap(), 11);
}

#[test]
fn a_batch_without_its_commit_is_not_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    wal.append(&[op(1)]).unwrap();
    let v = wal.append(&[op(2), op(3), op(4)]).unwrap();
    assert_eq!(v, 5);
    drop(wal);
    let (first, path) = segment::list(dir.path()).unwrap().remove(0);
    let offs = frame_offsets(&path, first);
    assert_eq!(offs.len(), 5);
    // Lose the commit record (as if the crash hit between the writes).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(offs[4] as u64)
        .unwrap();
    let (wal, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(rec.last_version, 1);
    let cut = rec.tail_truncated.unwrap();
    assert!(
        !cut.may_hold_acknowledged,
        "a batch without its commit was never acknowledged"
    );
    assert!(
        cut.kept
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("torn-")
    );
    assert_eq!(replay_all(&wal), vec![(1, op(1))]);
}

#[test]
fn replay_stops_at_a_version_a_time_and_never_inside_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let (wal, _) = Wal::open(
        dir.path(),
        WalOptions {
            clock: clock.clone(),
            ..opts(1 << 20)
        },
    )
    .unwrap();
    wal.append(&[op(1)]).unwrap(); // v1 @1000
    clock.advance(1_000);
    wal.append(&[op(2), op(3)]).unwrap(); // v2,v3 + commit v4 @2000
    clock.advance(1_000);
    wal.append(&[Op::RestorePoint("before-5".into())]).unwrap(); // v5 @3000
    wal.append(&[op(6)]).unwrap(); // v6 @3000
    let upto = |t| {
        let mut vs = vec![];
        let reached = wal
            .replay(0, t, |r| {
                vs.push(r.version);
                Ok(())
            })
            .unwrap();
        (reached, vs)
    };
    assert_eq!(upto(ReplayTarget::Version(3)), (1, vec![1]));
    assert_eq!(upto(ReplayTarget::Version(4)), (4, vec![1, 2, 3, 4]));
    assert_eq!(upto(ReplayTarget::Time(1_999)), (1, vec![1]));
    assert_eq!(upto(ReplayTarget::Time(2_000)), (4, vec![1, 2, 3, 4]));
    assert_eq!(upto(ReplayTarget::Latest), (6, vec![1, 2, 3, 4, 5, 6]));
    // into a space: the versions line up with the log's
    let mut space = BindSpace::new(SchemaVersion::CURRENT.with_words(WORDS as u16)).unwrap();
    wal.replay(0, ReplayTarget::Latest, |r| apply_record(&mut space, r))
        .unwrap();
    assert_eq!(space.version(), 6);
}

#[test]
fn checkpoint_archives_then_removes_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let arch_dir = tempfile::tempdir().unwrap();
    let archiver = DirArchiver::new(arch_dir.path()).unwrap();
    let written = write_log(dir.path(), 100, 1200);
    let (wal, _) = Wal::open(dir.path(), opts(1200)).unwrap();
    let sealed = wal.sealed_segments();
    assert!(sealed.len() >= 3);
    assert_eq!(wal.archive_sealed(&archiver).unwrap(), sealed.len());
    assert_eq!(
        wal.archive_sealed(&archiver).unwrap(),
        0,
        "nothing sent twice"
    );
    let snapshot_at = sealed[1].1; // last version of the second segment
    let removed = wal.checkpoint(snapshot_at, &archiver).unwrap();
    assert_eq!(removed.len(), 2);
    assert!(removed.iter().all(|p| !p.exists()));
    assert!(
        wal.checkpoint(snapshot_at, &archiver).unwrap().is_empty(),
        "idempotent"
    );
    // Everything after the snapshot still replays locally ...
    let mut vs = vec![];
    wal.replay(snapshot_at, ReplayTarget::Latest, |r| {
        vs.push(r.version);
        Ok(())
    })
    .unwrap();
    assert_eq!(vs.first(), Some(&(snapshot_at + 1)));
    assert_eq!(vs.last(), Some(&100));
    // ... and what left the disk is in the archive, verified.
    let listed = archiver.list().unwrap();
    assert_eq!(listed.len(), sealed.len());
    let bytes = archiver.fetch(&listed[0]).unwrap();
    let mut got = vec![];
    let mut r = bindspace_wal::Replayer::new(0, (u64::MAX, u64::MAX), |rec: &Record| {
        if let RecordOp::Op(o) = &rec.op {
            got.push((rec.version, o.clone()));
        }
        Ok(())
    });
    r.feed_segment(&bytes, listed[0].first_version, &PathBuf::from("archived"))
        .unwrap();
    assert_eq!(got, written[..got.len()]);
    // A damaged archive copy is refused on fetch.
    let p = arch_dir.path().join(format!(
        "{:020}-{:020}.wal",
        listed[0].first_version, listed[0].last_version
    ));
    let mut b = std::fs::read(&p).unwrap();
    b[40] ^= 1;
    std::fs::write(&p, b).unwrap();
    assert!(archiver.fetch(&listed[0]).is_err());
    assert!(!archiver.contains(&listed[0]).unwrap());
}

#[test]
fn a_resumed_checkpoint_after_a_crash_between_archive_and_delete_completes() {
    let dir = tempfile::tempdir().unwrap();
    let arch = DirArchiver::new(tempfile::tempdir().unwrap().keep()).unwrap();
    write_log(dir.path(), 40, 1200);
    {
        let (wal, _) = Wal::open(dir.path(), opts(1200)).unwrap();
        wal.archive_sealed(&arch).unwrap(); // archived, never deleted: "crash" here
    }
    let (wal, _) = Wal::open(dir.path(), opts(1200)).unwrap();
    let last_sealed = wal.sealed_segments().last().unwrap().1;
    let removed = wal.checkpoint(last_sealed, &arch).unwrap();
    assert_eq!(removed.len(), wal.sealed_segments().len() + removed.len());
    assert!(wal.sealed_segments().is_empty());
}

#[test]
fn invalid_ops_are_refused_before_logging() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    assert!(matches!(wal.append(&[]), Err(Error::InvalidOp { .. })));
    assert!(matches!(
        wal.append(&[Op::RestorePoint(String::new())]),
        Err(Error::InvalidOp { .. })
    ));
    assert!(matches!(
        wal.append(&[Op::Write(Addr(1), Fingerprint::zeroed(5000))]),
        Err(Error::InvalidOp { .. })
    ));
    assert_eq!(
        wal.append(&[op(1)]).unwrap(),
        1,
        "nothing was consumed by the refusals"
    );
}

#[test]
fn a_second_writer_on_the_same_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    wal.append(&[op(1)]).unwrap();
    let err = Wal::open(dir.path(), opts(1 << 20)).unwrap_err();
    assert!(matches!(err, bindspace_wal::Error::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another writer"),
        "{err}"
    );
    // the refused open changed nothing
    assert_eq!(wal.append(&[op(2)]).unwrap(), 2);
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(rec.last_version, 2);
    assert_eq!(replay_all(&wal).len(), 2);
}

/// Issue 16, item 6: a sealed segment damaged on the local disk is not archived as if
/// it were healthy (the archive is what restores): archiving fails naming it.
#[test]
fn a_damaged_sealed_segment_is_not_archived() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(64 << 20)).unwrap();
    for i in 1..=10 {
        wal.append(&[op(i)]).unwrap();
    }
    wal.roll().unwrap();
    let (_, _, path) = wal.sealed_segments().remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x08;
    std::fs::write(&path, &bytes).unwrap();
    let err = wal
        .archive_sealed(&DirArchiver::new(archive.path()).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
    assert!(err.to_string().contains("not archived"), "{err}");
    assert_eq!(std::fs::read_dir(archive.path()).unwrap().count(), 0);
}

/// Issue 16, item 12: a clock that moved back across a restart does not make record
/// timestamps decrease (time targets rely on their order).
#[test]
fn timestamps_never_go_back_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(5_000_000));
    let with = |c: &Arc<ManualClock>| WalOptions {
        clock: c.clone(),
        ..opts(64 << 20)
    };
    let (wal, _) = Wal::open(dir.path(), with(&clock)).unwrap();
    wal.append(&[op(1)]).unwrap();
    drop(wal);
    let earlier = Arc::new(ManualClock::new(1_000_000));
    let (wal, _) = Wal::open(dir.path(), with(&earlier)).unwrap();
    wal.append(&[op(2)]).unwrap();
    let mut stamps = vec![];
    wal.replay(0, ReplayTarget::Latest, |r| {
        stamps.push(r.timestamp_us);
        Ok(())
    })
    .unwrap();
    assert_eq!(stamps, vec![5_000_000, 5_000_000]);
}

/// Issue 16, item 12: `Wal::sync` makes what was written durable under any policy (the
/// engine calls it before writing a checkpoint file, which must never be ahead of the
/// log on disk).
#[test]
fn sync_forces_an_fdatasync_under_any_policy() {
    let dir = tempfile::tempdir().unwrap();
    let never = WalOptions {
        sync: SyncPolicy::Never,
        ..opts(64 << 20)
    };
    let (wal, _) = Wal::open(dir.path(), never).unwrap();
    wal.append(&[op(1)]).unwrap();
    assert_eq!(wal.stats().syncs, 0);
    wal.sync().unwrap();
    assert_eq!(wal.stats().syncs, 1);
}

/// Issue 16, item 5 (part): an acknowledged record damaged on disk afterwards looks like
/// a torn tail to recovery, which cuts it; the cut bytes are never destroyed but kept
/// beside the segments, and the report says they may have been acknowledged.
#[test]
fn a_cut_tail_is_kept_not_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let o = WalOptions {
        sync: SyncPolicy::Always,
        ..opts(64 << 20)
    };
    let (wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    for i in 1..=20 {
        wal.append(&[op(i)]).unwrap();
    }
    drop(wal);
    let seg = dir.path().join(segment::file_name(1));
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10; // the body of the last frame
    std::fs::write(&seg, &bytes).unwrap();
    let (_, rec) = Wal::open(dir.path(), o).unwrap();
    assert_eq!(rec.last_version, 19);
    let cut = rec.tail_truncated.unwrap();
    assert!(
        cut.may_hold_acknowledged,
        "a whole frame failed its checksum"
    );
    let kept = std::fs::read(cut.kept.unwrap()).unwrap();
    assert_eq!(kept.len() as u64, cut.bytes);
    assert_eq!(
        &kept[..],
        &bytes[n - kept.len()..],
        "the damaged frame, byte for byte"
    );
}

/// Issue 16, power loss: pages of one unsynced write can land out of order, so a damaged
/// frame may be followed by valid frames of the same write. With no later frame saying
/// "all before me was durable" (format 3), that is a crash: the log opens, the tail is
/// cut and kept. The same damage with a later group after it is corruption.
#[test]
fn damage_inside_the_last_group_is_a_crash_and_before_a_later_group_corruption() {
    let batch: Vec<Op> = (1..=6).map(op).collect();
    for later_group in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
        wal.append(&[op(100)]).unwrap();
        wal.append(&batch).unwrap(); // one group: versions 2..=8
        if later_group {
            wal.append(&[op(101)]).unwrap();
        }
        drop(wal);
        let (first, path) = segment::list(dir.path()).unwrap().remove(0);
        let offs = frame_offsets(&path, first);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offs[3] + 20] ^= 0x40; // inside version 4, mid-group
        std::fs::write(&path, &bytes).unwrap();
        let opened = Wal::open(dir.path(), opts(1 << 20));
        if later_group {
            assert!(
                matches!(opened, Err(Error::Corruption { offset, .. }) if offset as usize == offs[3]),
                "{opened:?}"
            );
        } else {
            let (wal, rec) = opened.unwrap();
            assert_eq!(rec.last_version, 1, "the whole torn batch is cut");
            let cut = rec.tail_truncated.unwrap();
            assert!(cut.may_hold_acknowledged);
            let kept = std::fs::read(cut.kept.unwrap()).unwrap();
            assert_eq!(kept, bytes[offs[1]..], "the cut is kept byte for byte");
            assert_eq!(wal.append(&[op(7)]).unwrap(), 2);
        }
    }
}

/// Review of issue 16: bit rot in the length of the last, acknowledged frame makes it
/// look incomplete (its length runs past the end). That must still count as "may hold
/// acknowledged" (kept as `cut-`, so the engine branches), never as a torn write.
#[test]
fn a_damaged_length_of_the_last_frame_may_hold_an_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, 1 << 20);
    let (first, path) = segment::list(dir.path()).unwrap().remove(0);
    let offs = frame_offsets(&path, first);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offs[4] + 1] ^= 0x10; // length + 4096: past the end, within MAX_RECORD
    std::fs::write(&path, &bytes).unwrap();
    let (_, rec) = Wal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(rec.last_version, 4);
    let cut = rec.tail_truncated.unwrap();
    assert!(cut.may_hold_acknowledged, "{cut:?}");
    let name = cut
        .kept
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("cut-"), "{name}");
}
