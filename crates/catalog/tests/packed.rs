//! Packed artifacts (compression, `bindspace_catalog::packed`): what is packed unpacks
//! to the same bytes, what does not pay stays raw, damage is refused with a typed
//! error, and the golden files of packed formats 1 and 2 keep unpacking.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_catalog::packed::{FAST_LEVEL, FULL_LEVEL, is_packed, pack, unpack};
use bindspace_catalog::{ArtifactId, Error};
use bytes::Bytes;
use proptest::prelude::*;

/// Bytes like a delta where a few bits flip per word: mostly zeros.
fn sparse(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x = seed | 1;
    for i in (0..len).step_by(37) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = (x & 0xff) as u8;
    }
    v
}

/// Bytes like random fingerprints.
fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    let mut r = h.finalize_xof();
    out.resize(len, 0);
    r.fill(&mut out);
    out
}

fn id() -> ArtifactId {
    ArtifactId::delta(3, 9)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn packed_bytes_unpack_to_the_same_bytes(len in 0usize..200_000, seed in any::<u64>(), full in any::<bool>()) {
        let raw = sparse(len, seed);
        let level = if full { FULL_LEVEL } else { FAST_LEVEL };
        let stored = pack(&raw, level).unwrap_or_else(|| raw.clone());
        let back = unpack("t", id(), Bytes::from(stored)).unwrap();
        prop_assert_eq!(back.as_ref(), raw.as_slice());
    }

    #[test]
    fn every_bit_flip_past_the_magic_and_every_truncation_is_refused(seed in any::<u64>(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let raw = sparse(20_000, seed);
        let packed = pack(&raw, FAST_LEVEL).unwrap();
        let i = 8 + at.index(packed.len() - 8);
        let mut bad = packed.clone();
        bad[i] ^= 1 << bit;
        let r = unpack("t", id(), Bytes::from(bad));
        prop_assert!(matches!(r, Err(Error::Corrupt { .. })), "flip at {}: {:?}", i, r.map(|b| b.len()));
        let cut = 24 + at.index(packed.len() - 24);
        let r = unpack("t", id(), Bytes::copy_from_slice(&packed[..cut]));
        prop_assert!(matches!(r, Err(Error::Corrupt { .. })), "cut at {}", cut);
    }
}

#[test]
fn only_what_pays_is_packed() {
    // random fingerprints: stored raw (the sample already says so)
    assert!(pack(&random(3 << 20, 1), FULL_LEVEL).is_none());
    assert!(pack(&random(100_000, 2), FAST_LEVEL).is_none());
    // tiny: raw
    assert!(pack(&[0u8; 100], FAST_LEVEL).is_none());
    // a sparse delta: packed, well under 90%
    let d = sparse(1 << 20, 3);
    let p = pack(&d, FAST_LEVEL).unwrap();
    assert!(is_packed(&p) && p.len() * 10 < d.len() * 9, "{}", p.len());
    // raw bytes pass through unpack unchanged
    let r = random(4096, 4);
    assert_eq!(
        unpack("t", id(), Bytes::from(r.clone())).unwrap().as_ref(),
        r.as_slice()
    );
}

#[test]
fn a_head_naming_too_much_is_refused_before_anything_is_read() {
    let mut p = pack(&sparse(10_000, 5), FAST_LEVEL).unwrap();
    p[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = unpack("t", id(), Bytes::from(p)).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}

/// Packed format 1 checks the content, not every byte of the frame: a flip in bits
/// of the frame its decoder never reads unpacks to exactly the original (the case a
/// gate run found: byte 41 of a 20,000-byte sparse buffer packed at level 1). Format 2
/// refuses it.
#[test]
fn a_flip_format_1_could_not_see_is_refused_by_format_2() {
    let raw = sparse(20_000, 4266483215264916);
    let v2 = pack(&raw, FAST_LEVEL).unwrap();
    // the same frame under a format 1 head
    let frame = &v2[32..];
    let mut v1 = Vec::new();
    v1.extend_from_slice(b"BSPACKED");
    v1.extend_from_slice(&1u16.to_le_bytes());
    v1.extend_from_slice(&v2[10..20]);
    v1.extend_from_slice(&blake3::hash(&v1).as_bytes()[..4]);
    v1.extend_from_slice(frame);
    assert_eq!(
        unpack("t", id(), Bytes::from(v1.clone())).unwrap().as_ref(),
        raw.as_slice()
    );
    let mut harmless = None;
    for i in 24..v1.len() {
        for bit in 0..8 {
            let mut bad = v1.clone();
            bad[i] ^= 1 << bit;
            match unpack("t", id(), Bytes::from(bad)) {
                Ok(back) => {
                    // never other bytes
                    assert_eq!(back.as_ref(), raw.as_slice(), "flip at {i}");
                    harmless.get_or_insert((i, bit));
                }
                Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
            }
        }
    }
    let (i, bit) = harmless.expect("format 1 lets some flip through (the case found)");
    let mut bad = v2.clone();
    bad[i - 24 + 32] ^= 1 << bit;
    let e = unpack("t", id(), Bytes::from(bad)).unwrap_err();
    assert!(e.to_string().contains("compressed bytes"), "{e}");
}

#[test]
fn the_golden_file_of_packed_format_2_unpacks() {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/packed-v2.bin");
    let want = sparse(50_000, 42);
    if !p.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::write(&p, pack(&want, FAST_LEVEL).unwrap()).unwrap();
    }
    let golden = std::fs::read(&p).unwrap();
    assert!(is_packed(&golden));
    assert_eq!(u16::from_le_bytes([golden[8], golden[9]]), 2);
    assert_eq!(
        unpack("golden", id(), Bytes::from(golden))
            .unwrap()
            .as_ref(),
        want.as_slice()
    );
}

#[test]
fn the_golden_file_of_packed_format_1_unpacks() {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/packed-v1.bin");
    let want = sparse(50_000, 42);
    // written by the build of format 1: never blessed again
    let golden = std::fs::read(&p).unwrap();
    assert!(is_packed(&golden));
    assert_eq!(
        unpack("golden", id(), Bytes::from(golden))
            .unwrap()
            .as_ref(),
        want.as_slice()
    );
}
