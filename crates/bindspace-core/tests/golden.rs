//! Format version 1 golden files: bytes written by an earlier build must keep decoding
//! to the same content. A format change adds a new golden file; it never edits one.
//! `BINDSPACE_BLESS=1` writes a golden file that does not exist yet (never overwrites).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use bindspace_core::workload::Workload;
use bindspace_core::{SchemaVersion, snapshot};

fn golden(name: &str) -> PathBuf {
    // read at run time: clones sharing one target dir may run a binary built in another
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

/// The space the v1 golden snapshot was made from: seed 2026, 8 words, 2 prefixes.
pub fn golden_space() -> bindspace_core::BindSpace {
    let schema = SchemaVersion::CURRENT.with_words(8).with_address_space(512);
    let mut w = Workload::new(2026, schema);
    let mut s = w.filled_space(0.25).expect("valid");
    w.run(&mut s, 100).expect("valid");
    s
}

/// Decodes `snapshot-v{format}.bin` (writing it first under `BINDSPACE_BLESS` if it is
/// missing), checks the recorded content and that re-encoding in that format gives the
/// same bytes.
fn check_golden(format: u16) {
    let path = golden(&format!("snapshot-v{format}.bin"));
    let expect_path = golden(&format!("snapshot-v{format}.expect"));
    let describe = |s: &bindspace_core::BindSpace| {
        let mut out = format!(
            "version {}\nlen {}\ndigest {}\n",
            s.version(),
            s.len(),
            s.digest()
        );
        if format >= 2 {
            out.push_str(&format!("root {}\n", s.state_root()));
        }
        out
    };
    if !path.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        let s = golden_space();
        std::fs::write(
            &path,
            snapshot::encode_as(&s, 1_790_000_000_000_000, format),
        )
        .expect("write golden");
        std::fs::write(&expect_path, describe(&s)).expect("write expectations");
    }
    let bytes = std::fs::read(&path).expect("the golden snapshot is committed");
    let expect = std::fs::read_to_string(&expect_path).expect("expectations are committed");
    let snap = snapshot::decode(&bytes).expect("the golden snapshot decodes");
    assert_eq!(describe(&snap.space), expect);
    assert_eq!(snap.header.format, format);
    assert_eq!(snap.header.schema.fingerprint_words, 8);
    assert_eq!(snap.header.time_to_us, 1_790_000_000_000_000);
    assert_eq!(
        snap.root.is_some(),
        format >= 2,
        "format 1 records no root, format 2 does"
    );
    // Re-encoding in the same format reproduces the bytes exactly (the Lance tier
    // relies on it).
    assert_eq!(
        snapshot::encode_as(&snap.space, snap.header.time_to_us, format),
        bytes
    );
}

#[test]
fn snapshot_v1_golden_still_decodes() {
    check_golden(1);
}

#[test]
fn snapshot_v2_golden_decodes_with_its_root() {
    check_golden(2);
    assert_eq!(
        snapshot::encode(&golden_space(), 1_790_000_000_000_000),
        std::fs::read(golden("snapshot-v2.bin")).unwrap(),
        "format 2 is what this build writes"
    );
}

#[test]
fn a_word_changed_under_a_recomputed_blake3_fails_naming_its_prefix() {
    let s = golden_space();
    let mut bytes = snapshot::encode(&s, 7);
    // the first fingerprint of prefix 1 (addresses 256..): find its offset
    let bitmap = 512 / 8;
    let before = s.iter().take_while(|(a, _)| a.index() < 256).count();
    let at = bindspace_core::HEADER_LEN + bitmap + before * 8 * 8;
    bytes[at] ^= 1;
    // forge: recompute the payload blake3 and re-seal the header
    let header = bindspace_core::ArtifactHeader::decode(&bytes).unwrap();
    let payload = bytes[bindspace_core::HEADER_LEN..].to_vec();
    let forged = bindspace_core::ArtifactHeader::for_payload(
        header.kind,
        header.schema,
        (header.from_version, header.to_version),
        (header.time_from_us, header.time_to_us),
        &payload,
    )
    .seal(&payload);
    let err = snapshot::decode(&forged).unwrap_err();
    assert!(
        matches!(&err, bindspace_core::Error::RootMismatch { prefixes, .. } if prefixes == &vec![1]),
        "{err}"
    );
    assert!(err.to_string().contains("0x01"), "{err}");
}
