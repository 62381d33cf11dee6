//! Hostile and damaged delta bytes: typed errors, never a panic.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_core::workload::Workload;
use bindspace_core::{ArtifactHeader, HEADER_LEN, SchemaVersion};
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

proptest! {
    #[test]
    fn arbitrary_payloads_under_valid_headers_never_panic(p in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = xd::decode(&reseal(&p));
    }

    #[test]
    fn arbitrary_bytes_never_panic(p in prop::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(xd::decode(&p).is_err());
    }
}
