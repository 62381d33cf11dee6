//! Hostile and damaged delta bytes: typed errors, never a panic.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_core::workload::Workload;
use bindspace_core::{ArtifactHeader, ArtifactKind, HEADER_LEN, SchemaVersion};
use bindspace_xor_delta::{self as xd, Error};
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    let schema = SchemaVersion::CURRENT.with_words(4).with_address_space(256);
    let mut w = Workload::new(77, schema);
    let a = w.filled_space(0.5).expect("valid");
    let mut b = a.clone();
    w.run(&mut b, 60).expect("valid");
    xd::encode(&xd::compute(&a, &b, 1).expect("shape"))
}

/// `payload` under a correct header, so the structural checks are what is exercised.
fn reseal(payload: &[u8]) -> Vec<u8> {
    let bytes = sample();
    let h = ArtifactHeader::decode(&bytes).expect("valid");
    ArtifactHeader::for_payload(
        h.kind,
        h.schema,
        (h.from_version, h.to_version),
        (h.time_from_us, h.time_to_us),
        payload,
    )
    .seal(payload)
}

#[test]
fn truncation_at_every_length_is_an_error() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let e = xd::decode(&bytes[..len]).expect_err("truncated");
        assert!(e.is_corruption(), "{len}: {e:?}");
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    let bytes = sample();
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        let e = xd::decode(&b).expect_err("flip detected");
        assert!(
            e.is_corruption()
                || matches!(
                    e,
                    Error::Core(bindspace_core::Error::UnsupportedFormat { .. })
                ),
            "bit {i}: {e:?}"
        );
    }
}

#[test]
fn wrong_magic_and_wrong_version_are_named() {
    let mut b = sample();
    b[..4].copy_from_slice(b"RIFF");
    assert!(matches!(
        xd::decode(&b),
        Err(Error::Core(bindspace_core::Error::BadMagic { .. }))
    ));
    let mut b = sample();
    b[8] = 9;
    assert!(matches!(
        xd::decode(&b),
        Err(Error::Core(bindspace_core::Error::UnsupportedFormat {
            found: 9,
            ..
        }))
    ));
}

#[test]
fn structural_lies_under_a_valid_checksum_are_malformed() {
    let bytes = sample();
    let payload = &bytes[HEADER_LEN..];
    // entry count far beyond the space
    let mut p = payload.to_vec();
    p[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        xd::decode(&reseal(&p)),
        Err(Error::Malformed { .. })
    ));
    // entry count one more than present
    let mut p = payload.to_vec();
    let n = u32::from_le_bytes(p[..4].try_into().expect("4"));
    p[..4].copy_from_slice(&(n + 1).to_le_bytes());
    assert!(matches!(
        xd::decode(&reseal(&p)),
        Err(Error::Malformed { .. })
    ));
    // trailing garbage
    let mut p = payload.to_vec();
    p.push(0);
    assert!(matches!(
        xd::decode(&reseal(&p)),
        Err(Error::Malformed { .. })
    ));
    // unknown tag on the first entry
    let mut p = payload.to_vec();
    p[6] = 7;
    assert!(matches!(
        xd::decode(&reseal(&p)),
        Err(Error::Malformed { .. })
    ));
    // addresses out of order: duplicate the first entry's address into the second
    let hostile = [2u8, 0, 0, 0, 5, 0, 0, 5, 0, 0];
    assert!(matches!(
        xd::decode(&reseal(&hostile)),
        Err(Error::Malformed { .. })
    ));
    // address outside a 256-address space
    let hostile = [1u8, 0, 0, 0, 0, 1, 0];
    assert!(matches!(
        xd::decode(&reseal(&hostile)),
        Err(Error::Malformed { .. })
    ));
    // change bitmap marking a word past the width (4 words: bitmap bit 5)
    let hostile = [1u8, 0, 0, 0, 9, 0, 2, 0b0010_0000, 1, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        xd::decode(&reseal(&hostile)),
        Err(Error::Malformed { .. })
    ));
    // an empty change
    let hostile = [1u8, 0, 0, 0, 9, 0, 2, 0];
    assert!(matches!(
        xd::decode(&reseal(&hostile)),
        Err(Error::Malformed { .. })
    ));
}

/// `payload` under a correct format-3 header for 256 addresses of `words` words.
fn sealed3(words: u16, payload: &[u8]) -> Vec<u8> {
    let schema = SchemaVersion::CURRENT
        .with_words(words)
        .with_address_space(256);
    ArtifactHeader::for_payload(ArtifactKind::Delta, schema, (1, 2), (0, 0), payload)
        .as_format(3)
        .seal(payload)
}

/// `payload` under a correct format-3 header of the 4-word sample's shape.
fn reseal3(payload: &[u8]) -> Vec<u8> {
    sealed3(4, payload)
}

/// A format-3 payload: `count`, the heads (declared as `heads_len`, packed), the
/// words, a root.
fn v3(count: u32, heads: &[u8], heads_len: u32, words: &[u64]) -> Vec<u8> {
    let packed = zstd::bulk::compress(heads, 3).unwrap();
    let mut p = Vec::new();
    p.extend_from_slice(&count.to_le_bytes());
    p.extend_from_slice(&heads_len.to_le_bytes());
    p.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    p.extend_from_slice(&packed);
    for w in words {
        p.extend_from_slice(&w.to_le_bytes());
    }
    p.extend_from_slice(&[7; 32]);
    p
}

/// 64 words (a bitmap of 8 bytes, so short word lists are the canonical form).
const W: u16 = 64;

fn malformed(payload: &[u8], why: &str) {
    match xd::decode(&sealed3(W, payload)) {
        Err(Error::Malformed { reason, .. }) => eprintln!("{why}: {reason}"),
        other => panic!("{why}: {other:?}"),
    }
}

#[test]
fn a_computed_delta_is_written_as_format_3() {
    let bytes = sample();
    assert_eq!(ArtifactHeader::decode(&bytes).unwrap().format, 3);
}

#[test]
fn format_3_structural_lies_under_a_valid_checksum_are_malformed() {
    // the well-formed ones first: word 2 changed at address 5, as a list (64 words)
    // and as a bitmap (4 words, where a list is never shorter than the 1-byte bitmap)
    let ok = v3(1, &[5, 2, 1, 2], 4, &[9]);
    let d = xd::decode(&sealed3(W, &ok)).unwrap();
    assert_eq!(d.entries.len(), 1);
    assert_eq!(d.entries[0].addr.index(), 5);
    let d = xd::decode(&sealed3(4, &v3(1, &[5, 4, 0b0100], 3, &[9]))).unwrap();
    assert_eq!(d.entries[0].addr.index(), 5);
    // counts and lengths
    malformed(
        &v3(257, &[5, 2, 1, 2], 4, &[9]),
        "more entries than addresses",
    );
    malformed(&v3(2, &[5, 2, 1, 2], 4, &[9]), "an entry missing");
    malformed(&v3(1, &[5, 2, 1, 2], 3, &[9]), "heads longer than declared");
    malformed(
        &v3(1, &[5, 2, 1, 2], 5, &[9]),
        "heads shorter than declared",
    );
    malformed(
        &v3(1, &[5, 2, 1, 2], 1_000, &[9]),
        "heads longer than any entry",
    );
    malformed(
        &v3(1, &[5, 2, 1, 2, 0], 5, &[9]),
        "head bytes after the last entry",
    );
    malformed(
        &v3(1, &[5, 2, 1, 2], 4, &[9, 9]),
        "words after the last entry",
    );
    malformed(&v3(1, &[5, 2, 1, 2], 4, &[]), "a word missing");
    let mut p = ok.clone();
    p[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    malformed(&p, "packed heads past the end");
    let mut p = ok.clone();
    p[12] ^= 0xff; // the zstd magic
    malformed(&p, "heads that are not zstd");
    malformed(&[0; 40], "too short for a format-3 delta");
    // two frames: the heads, then a second frame
    let mut two = ok.clone();
    let frame = zstd::bulk::compress(&[5u8, 2, 1, 2], 3).unwrap();
    let packed_len = u32::from_le_bytes(two[8..12].try_into().unwrap()) as usize;
    two.splice(12 + packed_len..12 + packed_len, frame.iter().copied());
    two[8..12].copy_from_slice(&((packed_len + frame.len()) as u32).to_le_bytes());
    malformed(&two, "two zstd frames");
    // entries (addresses ascend by construction: a gap counts from the previous + 1)
    malformed(&v3(1, &[0x80, 0x02, 0], 3, &[]), "address 256 of 256");
    malformed(
        &v3(2, &[0xff, 0x01, 0, 0, 0], 5, &[]),
        "the second address outside",
    );
    malformed(&v3(1, &[5, 9], 2, &[]), "an unknown kind");
    malformed(&v3(1, &[5, 2, 0], 3, &[]), "a change of no words");
    malformed(
        &v3(1, &[5, 2, 65, 0], 4, &[1; 65]),
        "more changed words than the width",
    );
    malformed(
        &v3(1, &[5, 2, 1, 64], 4, &[9]),
        "a word index past the width",
    );
    malformed(
        &v3(1, &[5, 2, 2, 60, 3], 5, &[9, 9]),
        "indices past the width by gaps",
    );
    malformed(
        &v3(1, &[5, 2, 1, 2], 4, &[0]),
        "a changed word that is zero",
    );
    malformed(
        &v3(1, &[5, 4, 0, 0, 0, 0, 0, 0, 0, 0], 10, &[]),
        "an empty bitmap",
    );
    malformed(
        &v3(1, &[5, 4, 0, 0, 0, 0, 0, 0, 0, 1], 10, &[9]),
        "a bitmap where the list is shorter",
    );
    malformed(
        &v3(1, &[5, 4, 0, 0], 4, &[]),
        "heads ending inside a bitmap",
    );
    malformed(
        &v3(1, &[5, 2, 0x80, 0x80, 0x80, 0x01], 6, &[]),
        "a count of 4 bytes",
    );
    malformed(
        &v3(1, &[5, 1], 2, &[1, 2, 3]),
        "a created fingerprint cut short",
    );
    // one encoding per delta
    malformed(
        &v3(1, &[0x85, 0x00, 2, 1, 2], 5, &[9]),
        "an address gap not in its shortest form",
    );
    malformed(
        &v3(1, &[5, 2, 0x81, 0x00, 2], 5, &[9]),
        "a count not in its shortest form",
    );
    let list: Vec<u8> = [5u8, 2, 8].into_iter().chain([0; 8]).collect();
    malformed(
        &v3(1, &list, 11, &[9; 8]),
        "a list not shorter than the bitmap",
    );
    match xd::decode(&sealed3(4, &v3(1, &[5, 2, 1, 2], 4, &[9]))) {
        Err(Error::Malformed { reason, .. }) => assert!(reason.contains("not shorter"), "{reason}"),
        other => panic!("a 4-word list: {other:?}"),
    }
}

proptest! {
    #[test]
    fn format_3_heads_of_any_bytes_never_panic(count in 0u32..300, heads in prop::collection::vec(any::<u8>(), 0..200), words in prop::collection::vec(any::<u64>(), 0..40)) {
        let _ = xd::decode(&reseal3(&v3(count, &heads, heads.len() as u32, &words)));
    }

    #[test]
    fn arbitrary_payloads_under_valid_headers_never_panic(p in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = xd::decode(&reseal(&p));
        let _ = xd::decode(&reseal3(&p));
    }

    #[test]
    fn arbitrary_bytes_never_panic(p in prop::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(xd::decode(&p).is_err());
    }
}
