//! Snapshot and Arrow round trips, and rejection of bad input.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_core::header::{FORMAT_VERSION, MAGIC};
use bindspace_core::workload::Workload;
use bindspace_core::{BindSpace, Error, HEADER_LEN, SchemaVersion, snapshot};
use proptest::prelude::*;

fn random_space(seed: u64, words: u16, prefixes: u32, fill: f64, ops: usize) -> BindSpace {
    let schema = SchemaVersion::CURRENT
        .with_words(words)
        .with_address_space(prefixes * 256);
    let mut w = Workload::new(seed, schema);
    let mut s = w.filled_space(fill).expect("valid schema");
    w.run(&mut s, ops).expect("workload fits the schema");
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn snapshot_decode_inverts_encode(seed: u64, words in 1u16..8, prefixes in 1u32..3,
                                      fill in 0.0f64..1.0, ops in 0usize..300, t: u64) {
        let s = random_space(seed, words, prefixes, fill, ops);
        let bytes = snapshot::encode(&s, t);
        let back = snapshot::decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(&back.space, &s);
        prop_assert_eq!(back.space.digest(), s.digest());
        prop_assert_eq!(back.header.time_to_us, t);
        let mut streamed = Vec::new();
        let n = snapshot::write_to(&s, t, &mut streamed).expect("vec sink");
        prop_assert_eq!(n as usize, streamed.len());
        prop_assert_eq!(streamed, bytes);
    }

    #[test]
    fn arrow_view_round_trips(seed: u64, words in 1u16..8, fill in 0.0f64..1.0) {
        let s = random_space(seed, words, 1, fill, 50);
        let batch = s.to_record_batch();
        prop_assert_eq!(batch.num_rows(), s.len());
        prop_assert_eq!(BindSpace::from_record_batch(&batch).expect("own batch"), s);
    }

    #[test]
    fn any_single_bit_flip_is_rejected(seed: u64, bit in any::<prop::sample::Index>()) {
        let s = random_space(seed, 3, 1, 0.3, 0);
        let mut bytes = snapshot::encode(&s, 1);
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let err = snapshot::decode(&bytes).expect_err("a flipped bit must not decode");
        prop_assert!(err.is_corruption() || matches!(err, Error::UnsupportedFormat { .. }),
            "unexpected error class {err:?}");
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512),
                                keep_header in any::<bool>()) {
        let mut input = bytes;
        if keep_header && input.len() >= 8 {
            input[..8].copy_from_slice(&MAGIC);
        }
        prop_assert!(snapshot::decode(&input).is_err());
    }
}

fn sample() -> Vec<u8> {
    snapshot::encode(&random_space(1, 4, 1, 0.5, 20), 42)
}

#[test]
fn truncated_snapshots_are_rejected_at_every_length() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let err = snapshot::decode(&bytes[..len]).expect_err("truncated");
        assert!(err.is_corruption(), "len {len}: {err:?}");
    }
}

#[test]
fn wrong_magic_is_named() {
    let mut bytes = sample();
    bytes[0] = b'X';
    assert!(matches!(
        snapshot::decode(&bytes),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        snapshot::decode(b"PK\x03\x04 not ours"),
        Err(Error::BadMagic { .. })
    ));
}

#[test]
fn newer_format_version_is_refused_with_versions() {
    let mut bytes = sample();
    bytes[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        snapshot::decode(&bytes)
            .expect_err("future format")
            .to_string(),
        format!(
            "artifact format version {} is not supported (this build reads up to {FORMAT_VERSION})",
            FORMAT_VERSION + 1
        )
    );
}

/// Re-seals a header after editing its fields, so only the structural checks remain.
fn with_header(bytes: &[u8], edit: impl FnOnce(&mut bindspace_core::ArtifactHeader)) -> Vec<u8> {
    let mut h = bindspace_core::ArtifactHeader::decode(bytes).expect("valid header");
    edit(&mut h);
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&bytes[HEADER_LEN..]);
    out
}

#[test]
fn oversized_declared_length_is_rejected_without_allocating() {
    let bytes = with_header(&sample(), |h| h.payload_len = u64::MAX);
    assert!(matches!(
        snapshot::decode(&bytes),
        Err(Error::PayloadLength {
            declared: u64::MAX,
            ..
        })
    ));
}

#[test]
fn schema_beyond_limits_is_rejected_before_allocating() {
    let bytes = with_header(&sample(), |h| h.schema.fingerprint_words = u16::MAX);
    assert!(matches!(
        snapshot::decode(&bytes),
        Err(Error::InvalidSchema { .. })
    ));
}

#[test]
fn payload_that_disagrees_with_the_schema_is_malformed() {
    // Same payload and hash, but a header claiming a different word count.
    let bytes = with_header(&sample(), |h| h.schema.fingerprint_words = 5);
    assert!(matches!(
        snapshot::decode(&bytes),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn a_delta_is_not_a_snapshot() {
    let bytes = with_header(&sample(), |h| h.kind = bindspace_core::ArtifactKind::Delta);
    assert!(matches!(
        snapshot::decode(&bytes),
        Err(Error::WrongKind { .. })
    ));
}

#[test]
fn full_default_space_round_trips() {
    let s = random_space(9, 156, 256, 1.0, 0);
    assert_eq!(s.len(), 65_536);
    let bytes = snapshot::encode(&s, 0);
    // format 2: the payload ends with 256 prefix digests
    assert_eq!(bytes.len(), HEADER_LEN + 8192 + 65_536 * 156 * 8 + 256 * 32);
    assert_eq!(
        snapshot::decode(&bytes).expect("valid").space.digest(),
        s.digest()
    );
}

#[test]
fn decode_into_reuses_a_space_and_clears_what_is_gone() {
    let a = random_space(1, 4, 1, 0.9, 0);
    let b = random_space(2, 4, 1, 0.2, 0);
    let mut target = a.clone();
    let mark = target.mark();
    let h = snapshot::decode_into(&snapshot::encode(&b, 5), &mut target).expect("valid");
    assert_eq!(h.time_to_us, 5);
    assert_eq!(
        target, b,
        "slots occupied in `a` only must read as empty and hash as zero"
    );
    assert_eq!(target.digest(), b.digest());
    assert!(
        target.dirty_since(&mark).is_err(),
        "a reload starts a new dirty epoch"
    );
    // another schema: replaced, not mixed
    let c = random_space(3, 6, 2, 0.5, 0);
    snapshot::decode_into(&snapshot::encode(&c, 0), &mut target).expect("valid");
    assert_eq!(target, c);
    // a damaged artifact is an error
    let mut bad = snapshot::encode(&a, 0);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(
        snapshot::decode_into(&bad, &mut target)
            .expect_err("damaged")
            .is_corruption()
    );
}
