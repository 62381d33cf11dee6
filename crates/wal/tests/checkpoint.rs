//! WAL checkpoint records (op 6, segment format 2): the state root they carry is
//! checked by every replay through them, a word changed under a valid CRC is caught at
//! the next checkpoint naming its prefix, golden segments of formats 1 and 2 keep
//! decoding, a format-1 log is continued in a new format-2 segment, and frames of
//! every op round-trip (property tests).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use bindspace_core::{Addr, BindSpace, Digest, Fingerprint, SchemaVersion, StateRoot};
use bindspace_wal::segment::{self, SEGMENT_HEADER};
use bindspace_wal::{
    DurableSpace, Error, FrameError, MAX_RECORD, Op, Record, RecordOp, SyncPolicy, WalOptions,
    apply_record, decode_frame, encode_frame,
};
use proptest::prelude::*;

const WORDS: u16 = 8;

fn schema() -> SchemaVersion {
    SchemaVersion::CURRENT
        .with_words(WORDS)
        .with_address_space(512)
}

fn opts() -> WalOptions {
    WalOptions {
        sync: SyncPolicy::Never,
        ..WalOptions::default()
    }
}

fn fp(x: u64) -> Fingerprint {
    Fingerprint::from_words(vec![x; WORDS as usize])
}

fn open(dir: &std::path::Path) -> bindspace_wal::Result<DurableSpace> {
    DurableSpace::open(dir, BindSpace::new(schema()).unwrap(), opts()).map(|(d, _)| d)
}

#[test]
fn a_checkpoint_records_the_root_once_and_a_restart_replays_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let ds = open(dir.path()).unwrap();
    ds.write(Addr(3), fp(1)).unwrap();
    ds.write(Addr(300), fp(2)).unwrap();
    let (v, root) = ds.checkpoint().unwrap().unwrap();
    assert_eq!(v, 3, "a checkpoint takes one version");
    assert_eq!(root, ds.read(|s| s.state_root_rebuilt()));
    assert_eq!(ds.last_checkpoint(), 3);
    // nothing new to attest: no record, no version
    assert_eq!(ds.checkpoint().unwrap(), None);
    assert_eq!(ds.read(|s| s.version()), 3);
    drop(ds);
    // a restart whose last record is a checkpoint knows it
    let ds = open(dir.path()).unwrap();
    assert_eq!(ds.read(|s| s.version()), 3);
    assert_eq!(ds.last_checkpoint(), 3);
    assert_eq!(ds.checkpoint().unwrap(), None);
    ds.delete(Addr(3)).unwrap();
    assert_eq!(
        ds.last_checkpoint(),
        3,
        "the newest checkpoint, not the newest record"
    );
    let (v, root) = ds.checkpoint().unwrap().unwrap();
    assert_eq!(v, 5);
    drop(ds);
    let ds = open(dir.path()).unwrap();
    assert_eq!(ds.read(|s| s.state_root()), root);
}

/// A checkpoint (or schema change) handed to `apply` is refused before it is logged: a
/// durable one with a wrong root would stop every writer after it, and every reopen.
#[test]
fn a_checkpoint_or_schema_change_through_apply_is_refused_before_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let ds = open(dir.path()).unwrap();
    ds.write(Addr(3), fp(1)).unwrap();
    let wrong = StateRoot::from_recorded(Digest([7; 32]), vec![Digest([7; 32]); 2]);
    for op in [Op::Checkpoint(wrong), Op::SchemaChange(schema())] {
        let err = ds.apply(vec![op]).unwrap_err();
        assert!(matches!(err, Error::InvalidOp { .. }), "{err}");
    }
    assert_eq!(ds.read(|s| s.version()), 1, "nothing was logged");
    assert_eq!(ds.write(Addr(4), fp(2)).unwrap(), 2, "writers go on");
    drop(ds);
    assert_eq!(open(dir.path()).unwrap().read(|s| s.version()), 2);
}

/// The log's frames of `dir`'s only segment: `(offset, record)`.
fn frames(bytes: &[u8]) -> Vec<(usize, usize, Record)> {
    let mut off = SEGMENT_HEADER;
    let mut out = vec![];
    while off < bytes.len() {
        let (rec, n) = decode_frame(&bytes[off..]).unwrap();
        out.push((off, n, rec));
        off += n;
    }
    out
}

#[test]
fn a_word_changed_in_the_log_under_a_valid_crc_fails_at_the_checkpoint_naming_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let ds = open(dir.path()).unwrap();
    ds.write(Addr(300), fp(7)).unwrap(); // prefix 0x01
    ds.write(Addr(3), fp(8)).unwrap();
    ds.checkpoint().unwrap().unwrap();
    drop(ds);
    let path = dir.path().join(segment::file_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    // the first write, forged: another value, its frame checksum recomputed
    let (off, n, rec) = frames(&bytes).remove(0);
    assert_eq!(rec.op, RecordOp::Op(Op::Write(Addr(300), fp(7))));
    let mut forged = vec![];
    encode_frame(
        &Record {
            op: RecordOp::Op(Op::Write(Addr(300), fp(9))),
            ..rec
        },
        &mut forged,
    );
    assert_eq!(forged.len(), n);
    bytes[off..off + n].copy_from_slice(&forged);
    std::fs::write(&path, &bytes).unwrap();
    let err = open(dir.path()).unwrap_err();
    let Error::Core(bindspace_core::Error::RootMismatch { what, prefixes, .. }) = &err else {
        panic!("expected a root mismatch, got {err}");
    };
    assert_eq!(what, "WAL checkpoint at version 3");
    assert_eq!(prefixes, &[1]);
    assert!(err.to_string().contains("0x01"), "{err}");
    // the escape hatch: the log opens as it is, the mismatch reported
    let (ds, rec) = DurableSpace::open(
        dir.path(),
        BindSpace::new(schema()).unwrap(),
        WalOptions {
            verify_checkpoints: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(rec.checkpoint_mismatches.len(), 1, "{rec:?}");
    assert!(rec.checkpoint_mismatches[0].contains("0x01"), "{rec:?}");
    assert_eq!(
        ds.read(|s| (s.version(), s.read(Addr(300)).map(<[u64]>::to_vec))),
        (3, Some(fp(9).to_vec()))
    );
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

/// The records of the golden segments: every op of format 1, and in format 2 a
/// checkpoint of the state they leave.
fn golden_records(format: u16) -> Vec<Record> {
    let rec = |version: u64, in_batch: bool, op: RecordOp| Record {
        version,
        timestamp_us: 1_790_000_000_000_000 + version,
        in_batch,
        op,
    };
    let mut out = vec![
        rec(1, false, RecordOp::Op(Op::Write(Addr(1), fp(11)))),
        rec(2, true, RecordOp::Op(Op::Write(Addr(300), fp(22)))),
        rec(3, true, RecordOp::Op(Op::Delete(Addr(1)))),
        rec(4, false, RecordOp::BatchCommit { count: 2 }),
        rec(5, false, RecordOp::Op(Op::RestorePoint("golden".into()))),
        rec(6, false, RecordOp::Op(Op::SchemaChange(schema()))),
    ];
    if format >= 2 {
        let mut s = BindSpace::new(schema()).unwrap();
        for r in &out {
            apply_record(&mut s, r).unwrap();
        }
        out.push(rec(7, false, RecordOp::Op(Op::Checkpoint(s.state_root()))));
    }
    out
}

fn header(format: u16) -> [u8; SEGMENT_HEADER] {
    let mut h = segment::encode_header(1);
    h[8..10].copy_from_slice(&format.to_le_bytes());
    let crc = crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// CRC-32C (Castagnoli), bitwise: the golden bytes do not lean on the code under test.
fn crc32c(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &x in b {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn describe(records: &[Record]) -> String {
    let mut s = BindSpace::new(schema()).unwrap();
    let mut out = String::new();
    for r in records {
        let op = match &r.op {
            RecordOp::Op(Op::Write(a, f)) => format!("write {} {:?}", a.0, &f[..]),
            RecordOp::Op(Op::Delete(a)) => format!("delete {}", a.0),
            RecordOp::Op(Op::RestorePoint(n)) => format!("restore point {n:?}"),
            RecordOp::Op(Op::SchemaChange(v)) => format!("schema {v}"),
            RecordOp::Op(Op::Checkpoint(root)) => format!("checkpoint {root}"),
            RecordOp::BatchCommit { count } => format!("commit {count}"),
        };
        out.push_str(&format!(
            "{} {} {} {op}\n",
            r.version, r.timestamp_us, r.in_batch
        ));
        apply_record(&mut s, r).unwrap();
    }
    out.push_str(&format!(
        "replayed: version {} digest {} root {}\n",
        s.version(),
        s.digest(),
        s.state_root()
    ));
    out
}

/// The frames of a golden segment; in format 3 the first frame of each group (as
/// `SyncPolicy::Always` writes them: one group per append) carries flags bit 1, "all
/// before me was durable", its checksum sealed again here without the code under test.
fn golden_bytes(format: u16, records: &[Record]) -> Vec<u8> {
    let mut bytes = header(format).to_vec();
    let mut prev_in_batch = false;
    for r in records {
        let at = bytes.len();
        encode_frame(r, &mut bytes);
        if format >= 3 && !prev_in_batch {
            bytes[at + 8 + 16] |= 2;
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let mut covered = bytes[at..at + 4].to_vec();
            covered.extend_from_slice(&bytes[at + 8..at + 8 + len]);
            let crc = crc32c(&covered);
            bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        }
        prev_in_batch = r.in_batch;
    }
    bytes
}

/// Versions whose frame says all before it was durable (read from the raw bytes).
fn marked_versions(bytes: &[u8]) -> Vec<u64> {
    let mut out = vec![];
    let mut at = SEGMENT_HEADER;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if bytes[at + 8 + 16] & 2 != 0 {
            out.push(u64::from_le_bytes(
                bytes[at + 8..at + 16].try_into().unwrap(),
            ));
        }
        at += 8 + len;
    }
    out
}

fn check_golden(format: u16) {
    let path = golden(&format!("wal-segment-v{format}.wal"));
    let expect_path = golden(&format!("wal-segment-v{format}.expect"));
    if !path.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        let records = golden_records(format);
        let bytes = golden_bytes(format, &records);
        let mut expect = describe(&records);
        if format >= 3 {
            expect.push_str(&format!("marked: {:?}\n", marked_versions(&bytes)));
        }
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(&expect_path, expect).unwrap();
    }
    let bytes = std::fs::read(&path).expect("the golden segment is committed");
    let expect = std::fs::read_to_string(&expect_path).expect("expectations are committed");
    assert_eq!(segment::decode_header(&bytes), Ok(1));
    assert_eq!(segment::header_format(&bytes), format);
    let mut records = vec![];
    let scan = segment::scan(&bytes, 1, |r| records.push(r.clone()));
    assert!(scan.problem.is_none(), "{:?}", scan.problem);
    let mut got = describe(&records);
    if format >= 3 {
        got.push_str(&format!("marked: {:?}\n", marked_versions(&bytes)));
    }
    assert_eq!(got, expect);
    // the frames re-encode to the same bytes
    assert_eq!(golden_bytes(format, &records), bytes);
}

#[test]
fn golden_segment_format_1_still_replays() {
    check_golden(1);
}

#[test]
fn golden_segment_format_2_replays_and_checks_its_checkpoint() {
    check_golden(2);
}

/// Format 3: the group marks (issue 16, power loss) decode, and a log of format 3
/// written by this build marks exactly the first frame of each group.
#[test]
fn golden_segment_format_3_replays_with_its_group_marks() {
    check_golden(3);
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = bindspace_wal::Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(&[Op::Write(Addr(1), fp(1))]).unwrap();
    wal.append(&[Op::Write(Addr(2), fp(2)), Op::Delete(Addr(1))])
        .unwrap();
    wal.append(&[Op::RestorePoint("x".into())]).unwrap();
    drop(wal);
    let bytes = std::fs::read(dir.path().join(segment::file_name(1))).unwrap();
    assert_eq!(segment::header_format(&bytes), 3);
    assert_eq!(marked_versions(&bytes), vec![1, 2, 5]);
}

/// The log an earlier build could write: it made an out-of-range delete durable before
/// failing it (and wedged every writer after it). It still opens: the delete is replayed
/// as nothing and reported. `wal-segment-v1-out-of-range-delete.wal` pins it.
#[test]
fn a_logged_out_of_range_delete_replays_as_nothing_and_is_reported() {
    let path = golden("wal-segment-v1-out-of-range-delete.wal");
    if !path.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        let rec = |version: u64, op: Op| Record {
            version,
            timestamp_us: 1_790_000_000_000_000 + version,
            in_batch: false,
            op: RecordOp::Op(op),
        };
        let mut bytes = header(1).to_vec();
        for r in [
            rec(1, Op::Write(Addr(1), fp(11))),
            rec(2, Op::Delete(Addr(1000))),
            rec(3, Op::Write(Addr(300), fp(33))),
        ] {
            encode_frame(&r, &mut bytes);
        }
        std::fs::write(&path, bytes).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&path, dir.path().join(segment::file_name(1))).unwrap();
    let (ds, rec) =
        DurableSpace::open(dir.path(), BindSpace::new(schema()).unwrap(), opts()).unwrap();
    assert_eq!(ds.read(|s| (s.version(), s.len())), (3, 2));
    assert_eq!(rec.skipped.len(), 1, "{rec:?}");
    assert!(
        rec.skipped[0].starts_with("version 2: delete of"),
        "{rec:?}"
    );
    // and today's build refuses such a delete before the log: writers go on
    let err = ds.delete(Addr(1000)).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    assert_eq!(ds.write(Addr(2), fp(2)).unwrap(), 4);
}

/// A log written by a build before checkpoints: it is replayed as it is, and the first
/// append goes to a new segment of format 2 (an older build reading the old segment
/// never meets a record it does not know).
#[test]
fn a_format_1_log_is_continued_in_a_format_2_segment() {
    let dir = tempfile::tempdir().unwrap();
    let old = std::fs::read(golden("wal-segment-v1.wal")).unwrap();
    let old_path = dir.path().join(segment::file_name(1));
    std::fs::write(&old_path, &old).unwrap();
    let ds = open(dir.path()).unwrap();
    assert_eq!(ds.read(|s| s.version()), 6);
    let (v, _) = ds.checkpoint().unwrap().unwrap();
    assert_eq!(v, 7);
    drop(ds);
    assert_eq!(
        std::fs::read(&old_path).unwrap(),
        old,
        "the old segment is sealed"
    );
    let new = std::fs::read(dir.path().join(segment::file_name(7))).unwrap();
    assert_eq!(segment::header_format(&new), segment::SEGMENT_FORMAT);
    let ds = open(dir.path()).unwrap();
    assert_eq!(ds.read(|s| s.version()), 7);
}

fn arb_root() -> impl Strategy<Value = StateRoot> {
    (
        any::<[u8; 32]>(),
        prop::collection::vec(any::<[u8; 32]>(), 1..=256),
    )
        .prop_map(|(r, p)| StateRoot::from_recorded(Digest(r), p.into_iter().map(Digest).collect()))
}

fn arb_record() -> impl Strategy<Value = Record> {
    let op = prop_oneof![
        (any::<u16>(), prop::collection::vec(any::<u64>(), 1..=64))
            .prop_map(|(a, w)| RecordOp::Op(Op::Write(Addr(a), Fingerprint::from_words(w)))),
        any::<u16>().prop_map(|a| RecordOp::Op(Op::Delete(Addr(a)))),
        "[a-z0-9 -]{1,40}".prop_map(|n| RecordOp::Op(Op::RestorePoint(n))),
        Just(RecordOp::Op(Op::SchemaChange(schema()))),
        any::<u32>().prop_map(|count| RecordOp::BatchCommit { count }),
        arb_root().prop_map(|r| RecordOp::Op(Op::Checkpoint(r))),
    ];
    (any::<u64>(), any::<u64>(), any::<bool>(), op).prop_map(
        |(version, timestamp_us, in_batch, op)| Record {
            version,
            timestamp_us,
            in_batch,
            op,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_frame_round_trips_and_any_flipped_bit_is_rejected(
        rec in arb_record(),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut bytes = vec![];
        encode_frame(&rec, &mut bytes);
        prop_assert!(bytes.len() <= MAX_RECORD + 8);
        prop_assert_eq!(decode_frame(&bytes), Ok((rec, bytes.len())));
        prop_assert_eq!(decode_frame(&bytes[..bytes.len() - 1]).unwrap_err(), FrameError::Incomplete);
        let bit = flip.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_frame(&bytes).is_err());
    }

    #[test]
    fn any_bytes_decode_to_an_error_or_a_frame_that_re_encodes_the_same(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        if let Ok((rec, n)) = decode_frame(&bytes) {
            let mut again = vec![];
            encode_frame(&rec, &mut again);
            prop_assert_eq!(&again[..], &bytes[..n]);
        }
    }
}
